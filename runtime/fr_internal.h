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

#endif
