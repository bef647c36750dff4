/*
 * fr_internal.h: libflowrt's one internal header, a section per .c file.
 * Generated code never includes it; it sees only flowrt.h.
 *
 * The seams between the parts of the runtime:
 *   fr_call (fr_call.c) renders the prompt, asks the journal, reserves the
 *   budget, then makes attempts through fr_provider_call, which dispatches to
 *   the mock (fr_mock.c) or to HTTP (fr_http.c with fr_anthropic.c and
 *   fr_openai.c).  An attempt's answer is repaired (fr_repair.c), validated
 *   (fr_validate.c) and, on failure, retried with the validation error told
 *   to the model.
 */
#ifndef FR_INTERNAL_H
#define FR_INTERNAL_H

#include "flowrt.h"

#include <pthread.h>
#include <stdio.h>

/* ---- fr_alloc.c: all runtime allocation goes through one hook ------------- */

void *fr_malloc(size_t n);                 /* NULL only when the hook says so */
void *fr_calloc(size_t n, size_t size);
void *fr_realloc(void *p, size_t n);
char *fr_strdup(const char *s);
void fr_free(void *p);
/* Tests: make the n-th allocation from now on fail (0: never). */
void fr_alloc_fail_after(long n);

/* ---- the provider seam ---------------------------------------------------- */

/* One attempt of one agent call, as the provider sees it. */
typedef struct fr_request {
    const fr_agent *agent;         /* the agent being called */
    const fr_model *model;         /* the model (the agent's, or `using`) */
    const char *system;            /* rendered system prompt, or "" */
    const char *prompt;            /* rendered user prompt */
    const char *feedback;          /* the previous attempt's problem, to tell the model, or NULL */
    const char *prev_answer;       /* the previous attempt's raw answer, or NULL */
    int attempt;                   /* 0 for the first */
    int timeout_ms;                /* for this attempt */
} fr_request;

typedef enum fr_outcome {
    FR_ANSWER,                     /* output holds the parsed (not yet validated) answer */
    FR_TRANSIENT,                  /* retry after backoff: network, 408/409/429/5xx/529, timeout */
    FR_BAD_ANSWER,                 /* retry with feedback: refusal, truncated, unparsable */
    FR_FATAL,                      /* do not retry: 400/401/403/404/413, missing key */
} fr_outcome;

typedef struct fr_response {
    fr_outcome outcome;            /* what happened */
    json_t *output;                /* FR_ANSWER: the answer (owned by the response) */
    char *raw;                     /* the raw answer text, for feedback (malloc'd or NULL) */
    char *error;                   /* what went wrong, for messages (malloc'd or NULL);
                                      never contains a secret */
    int http_status;               /* 0 when no HTTP exchange happened */
    int retry_after_ms;            /* from retry-after(-ms), -1 if none */
    char *finish_reason;           /* provider's stop/finish reason (malloc'd or NULL) */
    int64_t input_tokens;          /* usage as the provider reports it */
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_write_tokens;
} fr_response;

void fr_response_free(fr_response *r);

/* ---- fr_mock.c ------------------------------------------------------------ */

/* Mock settings from the command line (--mock-latency, --mock-fail-rate). */
typedef struct fr_mock_opts {
    int latency_ms;                /* sleep per attempt */
    double fail_rate;              /* probability an attempt fails transiently */
} fr_mock_opts;

/* A deterministic answer synthesized from the agent's output type, seeded
 * from the rendered prompt; simulated usage. */
void fr_mock_call(const fr_mock_opts *o, const fr_request *req, fr_response *resp);

/* ---- fr_http.c: real providers (anthropic, openai) ------------------------ */

typedef struct fr_http fr_http;

/* Checks every model's API key is in the environment (error names the
 * variable), sets up the shared connection cache and rate limiters. */
fr_http *fr_http_new(const fr_program *prog, bool mock_all, fr_buf *err);
void fr_http_free(fr_http *h);
void fr_http_call(fr_http *h, const fr_request *req, fr_response *resp);

/* ---- fr_run.c, fr_call.c, fr_budget.c, fr_par.c, fr_review.c: the run ----- */

/* What one phase (or the time before the first) did, for the summary. */
typedef struct fr_stats {
    int64_t calls;                 /* agent calls that made an attempt */
    int64_t retries;               /* attempts after a call's first */
    int64_t failures;              /* calls that failed after all their attempts */
    int64_t items_failed;          /* fan-out items dropped by on_error: skip */
    int64_t tokens_in;             /* input tokens, as the provider reported */
    int64_t tokens_out;            /* output tokens, as the provider reported */
    double usd;                    /* the actual usage, priced */
    int64_t start_ms;              /* when the phase began (monotonic), 0 if it never did */
    int64_t wall_ms;               /* its wall time, once it ended */
} fr_stats;

/* Spent and held against one budget (the workflow's or a phase's). */
typedef struct fr_spend {
    double usd_spent;              /* settled dollars */
    double usd_held;               /* dollars reserved by attempts in flight */
    int64_t tok_spent;             /* settled tokens */
    int64_t tok_held;              /* tokens reserved by attempts in flight */
    int64_t deadline_ms;           /* monotonic deadline of its time cap, -1 for none */
} fr_spend;

/* One attempt's hold on the budgets, until it is settled. */
typedef struct fr_resv {
    int phase;                     /* the phase charged besides the workflow, -1 for none */
    double usd;                    /* dollars held */
    int64_t tokens;                /* tokens held */
} fr_resv;

/* The first budget that stopped work, for fr_main's message. */
typedef struct fr_stop {
    bool hit;                      /* a budget stopped something */
    int phase;                     /* -1: the workflow's budget, else that phase's */
    const char *what;              /* "usd", "tokens" or "time" */
    double spent;                  /* settled + held when it stopped */
    double cap;                    /* the cap */
    double need;                   /* what the refused call would have held */
} fr_stop;

struct fr_run {
    const fr_program *prog;        /* the workflow being run */
    pthread_mutex_t mu;            /* guards the ledger, stats, stop, slots and partial */
    pthread_cond_t slot_cv;        /* signalled when a call slot frees */
    bool mock_all;                 /* --mock: every model answered by fr_mock_call */
    fr_mock_opts mock;             /* --mock-latency, --mock-fail-rate */
    int concurrency;               /* --concurrency: attempts in flight at most, 0 no cap */
    int retry_base_ms;             /* --retry-base-ms: backoff base */
    bool quiet;                    /* --quiet: no summary, no progress */
    fr_http *http;                 /* the providers' shared state */
    void *journal;                 /* the run journal (fr_journal.c), NULL when none */
    int inflight;                  /* attempts in flight now */
    int64_t start_ms;              /* run start (monotonic) */
    fr_spend wf;                   /* the workflow's budget */
    fr_spend *ph;                  /* each phase's budget [prog->nphases] */
    fr_stats *stats;               /* [prog->nphases + 1]: 0 is before the first phase */
    fr_stop stop;                  /* which budget stopped the run */
    json_t *partial;               /* finished items of the fan-out a budget stopped */
    size_t partial_total;          /* that fan-out's item count */
    int partial_phase;             /* the phase it ran in */
    int cur_phase;                 /* the root's current phase, for progress */
    size_t prog_done;              /* top-level fan-out: items done (atomic) */
    size_t prog_total;             /* top-level fan-out: items in all (atomic) */
    pthread_mutex_t review_mu;     /* guards the review file */
    FILE *review;                  /* <workflow>.review.jsonl once opened */
    int64_t escalated;             /* items escalated */
};

/* fr_budget.c */
int64_t fr_now_ms(void);                       /* monotonic milliseconds */
bool fr_budget_init(fr_run *run);              /* ledger and stats for run->prog */
void fr_budget_free(fr_run *run);
fr_stats *fr_stats_of(fr_run *run, int phase); /* phase -1: before the first */
/* Holds in_tokens + out_tokens at m's price against the workflow's and cx's
 * phase's budgets, or sets FR_SIG_BUDGET (and run->stop) and returns false. */
bool fr_budget_reserve(fr_ctx *cx, const fr_model *m, int64_t in_tokens,
                       int64_t out_tokens, fr_resv *r);
/* Replaces the hold r by the actual usage, priced at m. */
void fr_budget_settle(fr_run *run, const fr_resv *r, const fr_model *m,
                      int64_t in_tokens, int64_t out_tokens);
/* Milliseconds left before cx's nearest deadline, INT64_MAX for none. */
int64_t fr_budget_time_left(fr_ctx *cx);
/* Sets FR_SIG_BUDGET for the deadline that has passed; returns NULL. */
void *fr_budget_time_stop(fr_ctx *cx);

/* fr_par.c */
void fr_ctx_init_child(fr_ctx *parent, fr_ctx *c);   /* empty pool, parent's path */
void fr_ctx_set_item(fr_ctx *c, fr_ctx *parent, size_t index); /* path = parent.index */
void fr_ctx_fini(fr_ctx *c);                         /* releases pool and error */
bool fr_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* fr_call.c */
/* One attempt through the provider: the mock or HTTP. */
void fr_provider_call(fr_run *run, const fr_request *req, fr_response *resp);

/* fr_review.c */
bool fr_review_reset(fr_run *run);               /* truncate a previous run's file */
void fr_review_close(fr_run *run);
char *fr_review_path(const fr_program *prog);    /* "<workflow>.review.jsonl" (malloc'd) */

#endif
