/*
 * fr_jrun.c: the run's side of the journal and the trace.
 *
 * fr_run.c, fr_call.c and fr_review.c call these hooks; run->journal points
 * at a jstate holding the journal (fr_journal.c, NULL with --no-journal) and
 * the trace (fr_trace.c, NULL without --trace).  They parse the journal's
 * flags, begin or resume the run, load what earlier processes spent into the
 * budgets, time the phases, key and record every agent call (its hold before
 * each request, its usage after), and route approve() and escalate() through
 * the journal's queue.  Without a journal or a trace every hook does nothing.
 */
#include "fr_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What run->journal points at. */
typedef struct jstate {
    fr_journal *j;                 /* the journal, NULL with --no-journal */
    fr_trace *trace;               /* --trace, or NULL */
    bool content;                  /* --trace-content: prompts and replies kept */
    bool resumed;                  /* this process resumed the run */
    double prior_usd;              /* what the run spent before this process */
    int64_t prior_tokens;          /* the same in tokens */
    double *ph_usd;                /* [nphases] prior dollars per phase */
    int64_t *ph_tokens;            /* [nphases] prior tokens per phase */
    int64_t *ph_active;            /* [nphases] prior active time per phase (ms) */
    bool holds;                    /* a usd or token cap exists: journal each request's hold */
    int64_t cached;                /* calls answered from the journal (atomic) */
    int broken;                    /* a journal write failed: no call may start (atomic) */
    char why[256];                 /* the first failure's SQLite error (set once, before broken) */
} jstate;

static void write_failed(jstate *s);

/* A flag's value: its =value, else the next argument; NULL after an error. */
static const char *jflag_value(const char *flag, const char *eq, int argc, char **argv,
                               int *i)
{
    if (eq)
        return eq;
    if (*i + 1 < argc)
        return argv[++*i];
    fprintf(stderr, "error: --%s needs a value\n", flag);
    return NULL;
}

int fr_jopts_flag(fr_jopts *o, const char *flag, const char *eq, int argc, char **argv,
                  int *i)
{
    bool sw = strcmp(flag, "no-journal") == 0 || strcmp(flag, "force") == 0 ||
              strcmp(flag, "retry-skipped") == 0 || strcmp(flag, "trace-content") == 0;
    if (sw && eq) {
        fprintf(stderr, "error: --%s takes no value\n", flag);
        return 2;
    }
    if (strcmp(flag, "no-journal") == 0)
        o->no_journal = true;
    else if (strcmp(flag, "force") == 0)
        o->force = true;
    else if (strcmp(flag, "retry-skipped") == 0)
        o->retry_skipped = true;
    else if (strcmp(flag, "trace-content") == 0)
        o->content = true;
    else if (strcmp(flag, "resume") == 0) {
        o->resume = true;
        if (eq)
            o->resume_id = eq;
        else if (*i + 1 < argc && argv[*i + 1][0] != '-')
            o->resume_id = argv[++*i];
    } else if (strcmp(flag, "journal") == 0)
        return (o->journal = jflag_value(flag, eq, argc, argv, i)) ? 0 : 2;
    else if (strcmp(flag, "trace") == 0)
        return (o->trace = jflag_value(flag, eq, argc, argv, i)) ? 0 : 2;
    else
        return -1;
    return 0;
}

/* The run's arguments as one JSON object, keys sorted (malloc'd). */
/* --mock is kept with them: a resume must not mix the mock's answers with a
 * real model's (or the other way round). */
/* --dry-run likewise: its writes were not sent, and what followed them saw
 * the mock's answers. */
static char *args_text(const fr_program *p, json_t *const *args, bool mock, bool dry)
{
    json_t *o = json_object();
    for (int k = 0; k < p->nparams; k++)      /* a budget may change on resume */
        if (!p->params[k].budget_only)
            json_object_set(o, p->params[k].name, args[k] ? args[k] : json_null());
    if (mock)
        json_object_set_new(o, "--mock", json_true());
    if (dry)
        json_object_set_new(o, "--dry-run", json_true());
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

/* The spend of the run before this process, per phase too, and the time it
 * spent in each phase. */
static bool load_prior(jstate *s, const fr_program *p)
{
    s->ph_usd = fr_calloc((size_t)p->nphases + 1, sizeof *s->ph_usd);
    s->ph_tokens = fr_calloc((size_t)p->nphases + 1, sizeof *s->ph_tokens);
    s->ph_active = fr_calloc((size_t)p->nphases + 1, sizeof *s->ph_active);
    if (!s->ph_usd || !s->ph_tokens || !s->ph_active)
        return false;
    bool ok = fr_journal_prior_spend(s->j, -1, &s->prior_usd, &s->prior_tokens);
    for (int i = 0; ok && s->resumed && i < p->nphases; i++)
        ok = fr_journal_prior_spend(s->j, i, &s->ph_usd[i], &s->ph_tokens[i]) &&
             fr_journal_phase_ms(s->j, i, &s->ph_active[i]);
    return ok;
}

/* Begins or resumes the run in the journal: -1 to go on, else the status. */
static int open_run(jstate *s, const fr_run *run, const fr_jopts *o, json_t *const *args)
{
    const fr_program *p = run->prog;
    fr_buf err = { 0 };
    char *path = o->journal ? fr_strdup(o->journal) : fr_journal_default_path(p->name);
    if (path && fr_shard_on())           /* each shard its own journal */
        path = fr_shard_of_journal(path);
    char *a = args_text(p, args, run->mock_all, run->dry_run);
    const char *src = p->source_hash ? p->source_hash : "";
    int st = -1;
    bool resume = o->resume;
    if (!path || !a || !(s->j = fr_journal_open(path, &err)))
        st = 1;
    else if (!resume && fr_shard_on() && fr_journal_pending(s->j, p->name, src, a)) {
        /* a shard started again (a lost node, a retried job) finishes its
         * unfinished run: nothing it journaled is paid for twice */
        resume = true;
        st = fr_journal_resume(s->j, p->name, NULL, src, a, 0, &err) ? -1 : 2;
        if (st < 0 && !run->quiet)
            fprintf(stderr, "shard %d of %d: resuming its unfinished run %s from %s\n",
                    fr_shard_index(), fr_shard_count(), fr_journal_run_id(s->j), path);
    } else if (resume)
        st = fr_journal_resume(s->j, p->name, o->resume_id, src, a,
                               (o->force ? FR_RESUME_FORCE : 0) |
                               (o->retry_skipped ? FR_RESUME_SKIPPED : 0), &err) ? -1 : 2;
    else
        st = fr_journal_begin(s->j, p->name, src, a, &err) ? -1 : 1;
    s->resumed = resume && st < 0;
    if (st < 0 && !load_prior(s, p))
        st = 1;
    if (st >= 0)
        fprintf(stderr, "error: %s\n", err.s ? err.s : "out of memory");
    fr_buf_free(&err);
    fr_free(path);
    fr_free(a);
    return st;
}

/* --trace FILE under the run's id (a fresh one without a journal). */
static int open_trace(jstate *s, fr_run *run, const char *path)
{
    char id[FR_RUN_ID_MAX];
    fr_buf err = { 0 };
    if (s->j)
        snprintf(id, sizeof id, "%s", fr_journal_run_id(s->j));
    else
        fr_journal_new_run_id(id);
    s->trace = fr_trace_open(path, id, run->prog, &err);
    if (!s->trace)
        fprintf(stderr, "error: %s\n", err.s ? err.s : "out of memory");
    fr_buf_free(&err);
    return s->trace ? -1 : 2;
}

/* Holds protect caps across a crash; without a usd or token cap a request
 * need not wait for its hold to be synced. */
static bool has_cap(const fr_run *run)
{
    bool cap = run->budget.usd >= 0 || run->budget.tokens >= 0;
    for (int i = 0; i < run->prog->nphases; i++)
        cap = cap || run->phase_budget[i].usd >= 0 || run->phase_budget[i].tokens >= 0;
    return cap;
}

int fr_journal_run_start(fr_run *run, const fr_jopts *o, json_t *const *args)
{
    jstate *s = fr_calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    run->journal = s;
    s->holds = has_cap(run);
    s->content = o->content;
    if (o->no_journal && o->resume) {
        fprintf(stderr, "error: --resume needs the journal; drop --no-journal\n");
        return 2;
    }
    if (o->no_journal && (run->prog->flags & FR_PROG_APPROVE)) {
        fprintf(stderr, "error: %s calls approve(), whose decisions live in the run journal:"
                " run it without --no-journal\n", run->prog->name);
        return 2;
    }
    if (o->retry_skipped && !o->resume) {
        fprintf(stderr, "error: --retry-skipped goes with --resume [RUN_ID]: it runs a run again"
                " for the items it skipped\n");
        return 2;
    }
    int st = o->no_journal ? -1 : open_run(s, run, o, args);
    if (st < 0 && s->j)
        fr_redact_salt(run->redact, fr_journal_run_id(s->j));
    if (st < 0 && (o->trace || fr_otlp_wanted()))   /* a file, a collector or both */
        st = open_trace(s, run, o->trace);
    if (st < 0 && s->resumed) {
        pthread_mutex_lock(&run->mu);
        run->wf.usd_spent += s->prior_usd;
        run->wf.tok_spent += s->prior_tokens;
        if (run->wf.deadline_ms >= 0)        /* the time cap counts earlier processes */
            run->wf.deadline_ms -= fr_journal_prior_active_ms(s->j);
        pthread_mutex_unlock(&run->mu);
    }
    return st;
}

struct fr_journal *fr_journal_of(fr_run *run)
{
    jstate *s = run->journal;
    return s ? s->j : NULL;
}

static const char *status_word(int status)
{
    switch (status) {
    case 0: return "done";
    case 3: return "waiting";
    case 4: return "budget";
    case 5: return "skipped";     /* done but for items a transient error dropped: resumable */
    case 130: case 143: return "interrupted";   /* Ctrl-C, SIGTERM: resumable */
    default: return "failed";
    }
}

/* Items the run's on_error: skip fan-outs dropped after errors. */
static int64_t items_skipped(fr_run *run)
{
    int64_t n = 0;
    pthread_mutex_lock(&run->mu);
    for (int i = 0; i <= run->prog->nphases; i++)
        n += run->stats[i].items_failed;
    pthread_mutex_unlock(&run->mu);
    return n;
}

bool fr_journal_flush_run(fr_run *run)
{
    jstate *s = run ? run->journal : NULL;
    if (!s || !s->j || fr_journal_flush(s->j))
        return true;
    write_failed(s);
    return false;
}

void fr_journal_run_end(fr_run *run, int status)
{
    jstate *s = run->journal;
    if (!s)
        return;
    if (s->j && fr_journal_run_id(s->j)[0]) {
        pthread_mutex_lock(&run->mu);
        double usd = run->wf.usd_spent;
        int64_t tok = run->wf.tok_spent;
        pthread_mutex_unlock(&run->mu);
        fr_journal_phase_clock_stop(s->j);            /* the interrupted phase's time */
        fr_journal_end(s->j, status_word(status), usd, tok, items_skipped(run));
    }
    fr_trace_end_open(s->trace, status == 0 || status == 5 ? "ok" : status == 3 ? "waiting"
                      : status == 4 ? "budget" : "error");
    fr_journal_close(s->j);
    fr_trace_run_end(s->trace, status_word(status), status == 0 || status == 3 || status == 5
                     ? NULL : status_word(status));
    fr_trace_close(s->trace);
    fr_free(s->ph_usd);
    fr_free(s->ph_tokens);
    fr_free(s->ph_active);
    fr_free(s);
    run->journal = NULL;
}

const char *fr_journal_bound_id(fr_run *run)
{
    jstate *s = run->journal;
    return s && s->j && fr_journal_run_id(s->j)[0] ? fr_journal_run_id(s->j) : NULL;
}

void fr_journal_summary(fr_run *run)
{
    jstate *s = run->journal;
    if (!s || !s->j)
        return;
    const char *id = fr_journal_run_id(s->j);
    int64_t cached = __atomic_load_n(&s->cached, __ATOMIC_RELAXED);
    if (s->resumed)
        fprintf(stderr, "resumed run %s: $%.4f, %lld tokens and %.1f s spent before, %lld call%s"
                " answered from the journal (cached)\n", id, s->prior_usd,
                (long long)s->prior_tokens, (double)fr_journal_prior_active_ms(s->j) / 1000,
                (long long)cached, cached == 1 ? "" : "s");
    else if (fr_journal_broken(run))
        fprintf(stderr, "run %s journaled in %s up to the write that failed\n", id,
                fr_journal_path(s->j));
    else
        fprintf(stderr, "run %s journaled in %s\n", id, fr_journal_path(s->j));
}

void fr_journal_phase_prior(const fr_run *run, int phase, double *usd, int64_t *tokens,
                            int64_t *active_ms)
{
    const jstate *s = run->journal;
    *usd = 0, *tokens = 0, *active_ms = 0;
    if (!s || !s->resumed || phase < 0 || phase >= run->prog->nphases)
        return;
    *usd = s->ph_usd[phase];
    *tokens = s->ph_tokens[phase];
    *active_ms = s->ph_active[phase];
}

void fr_journal_phase_begin(fr_ctx *cx, int phase)
{
    jstate *s = cx->run->journal;
    if (s)
        fr_trace_phase_begin(s->trace, phase);
    if (s && s->j && !cx->parent && phase >= 0 && phase < cx->run->prog->nphases)
        fr_journal_phase_clock(s->j, phase, s->resumed ? s->ph_active[phase] : 0);
}

void fr_journal_phase_end(fr_ctx *cx, int phase)
{
    jstate *s = cx->run->journal;
    if (s && s->j && !cx->parent && !fr_journal_phase_clock_stop(s->j))
        write_failed(s);
    if (s)
        fr_trace_phase_end(s->trace, phase, cx->sig == FR_OK ? "ok"
                           : cx->sig == FR_SIG_BUDGET ? "budget"
                           : cx->sig == FR_SIG_WAIT ? "waiting" : "error");
}

/* A journal write failed (a full disk, an I/O error): the run stops.  A
 * run that went on unjournaled would be paid for again on resume, whole;
 * stopped at once, a resume pays again for the calls in flight only. */
static pthread_mutex_t why_mu = PTHREAD_MUTEX_INITIALIZER;

static void write_failed(jstate *s)
{
    pthread_mutex_lock(&why_mu);
    if (!__atomic_load_n(&s->broken, __ATOMIC_ACQUIRE)) {
        snprintf(s->why, sizeof s->why, "%s", fr_journal_errmsg(s->j));
        __atomic_store_n(&s->broken, 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&why_mu);
}

bool fr_journal_serves(fr_run *run)
{
    jstate *s = run->journal;
    return s && s->j && s->resumed && fr_journal_answer_count(s->j) > 0;
}

bool fr_journal_owns_partial(fr_run *run)
{
    jstate *s = run->journal;
    return s && s->j && s->resumed &&
           fr_journal_count_runs(s->j, run->prog->name, "budget") == 0;
}

bool fr_journal_broken(fr_run *run)
{
    jstate *s = run->journal;
    if (!s || !s->j)
        return false;
    if (!__atomic_load_n(&s->broken, __ATOMIC_ACQUIRE) && fr_journal_failed(s->j))
        write_failed(s);           /* a queued write failed on the writer's thread */
    return __atomic_load_n(&s->broken, __ATOMIC_ACQUIRE);
}

bool fr_journal_stopped(fr_ctx *cx)
{
    jstate *s = cx->run->journal;
    if (!fr_journal_broken(cx->run))
        return false;
    if (cx->sig != FR_SIG_STOP) {
        fr_fail(cx, NULL, "journal %s cannot be written (%s): the run stops, and no call "
                "starts after that", fr_journal_path(s->j), s->why);
        cx->sig = FR_SIG_STOP;
    }
    return true;
}

void fr_journal_stop_help(fr_run *run)
{
    jstate *s = run->journal;
    if (!fr_journal_broken(run))
        return;
    int64_t ok, lost;
    fr_journal_answers(s->j, &ok, &lost);
    int64_t kept = ok + __atomic_load_n(&s->cached, __ATOMIC_RELAXED);
    fprintf(stderr, "help: what was journaled is kept (%lld answer%s of this run", (long long)kept,
            kept == 1 ? "" : "s");
    if (lost)
        fprintf(stderr, "; the %lld that came after the failed write, and the calls in flight,"
                " are paid for again", (long long)lost);
    fprintf(stderr, "): once the journal can be written again (free some space), `%s --resume"
            " %s` finishes the run without paying again for them\n", fr_self_name(run->prog),
            fr_journal_run_id(s->j));
}

fr_trace *fr_run_trace(fr_run *run)
{
    jstate *s = run->journal;
    return s ? s->trace : NULL;
}

/* ---- what each attempt of a call did ---------------------------------------
 * Every call journaled or traced keeps a detail: its attempts' outcomes,
 * errors, timing and usage, for `show` and `report`; with --trace-content
 * also the rendered system prompt and prompt (once: every attempt sends
 * them), and per attempt what was told the model on a retry and the raw
 * text it answered, failed and repaired attempts included. */

/* One attempt of a call's detail.  Strings are malloc'd (NULL: null). */
typedef struct jattempt {
    int n;                         /* 1, 2, ... */
    int64_t start_ms;              /* when it began (wall clock) */
    int64_t ms;                    /* how long it took */
    char outcome[24];              /* "answer", "transient", "invalid", ... */
    int status;                    /* the HTTP status, 0 if none */
    char *finish;                  /* the finish reason */
    char *error;                   /* what went wrong */
    int64_t tokens_in, tokens_out; /* its usage */
    double usd;                    /* and price */
    bool repaired;                 /* its JSON was repaired */
    bool loop;                     /* a tool loop's attempt: */
    int turn;                      /* of which turn */
    bool tools_off;                /* asked for the answer without tools */
    char *feedback;                /* --trace-content: what the model was told on a retry */
    char *reply;                   /* --trace-content: the raw text it answered */
} jattempt;

/* What fr_jhook's detail points at: plain fields, written as JSON text once
 * (for the journal, and parsed again only for a --trace-content line), so a
 * call pays for no JSON objects and no printf of its own. */
struct fr_jdetail {
    const char *model;             /* the model's name (the program's) */
    bool content;                  /* --trace-content: system and prompt kept */
    char *system, *prompt;         /* with content (malloc'd) */
    char *error;                   /* the call's final error, or NULL (no key) */
    bool redacted;                 /* the texts had the sensitive values taken out */
    int n, cap;                    /* attempts */
    jattempt *a;                   /* [cap] */
};

static void set_str(char **slot, const char *v)
{
    fr_free(*slot);
    *slot = v ? fr_strdup(v) : NULL;
}

static fr_jdetail *call_detail(jstate *s, const fr_model *m, const char *system,
                               const char *prompt)
{
    fr_jdetail *d = fr_calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->model = m->api_name;
    d->content = s->content;
    if (s->content) {
        set_str(&d->system, system ? system : "");
        set_str(&d->prompt, prompt ? prompt : "");
    }
    return d;
}

void fr_jdetail_free(fr_jdetail *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++) {
        jattempt *a = &d->a[i];
        fr_free(a->finish);
        fr_free(a->error);
        fr_free(a->feedback);
        fr_free(a->reply);
    }
    fr_free(d->a);
    fr_free(d->system);
    fr_free(d->prompt);
    fr_free(d->error);
    fr_free(d);
}

void fr_journal_call_drop(fr_jhook *h)
{
    fr_jdetail_free(h->detail);
    h->detail = NULL;
}

/* "answer" until fr_call says otherwise, or what the provider said. */
static const char *outcome_word(const fr_response *r)
{
    switch (r->outcome) {
    case FR_ANSWER: return "answer";
    case FR_TRANSIENT: return "transient";
    case FR_FATAL: return "fatal";
    case FR_TOOL_CALLS: return "tool_calls";
    case FR_BAD_ANSWER: break;
    }
    switch (r->bad) {
    case FR_BAD_REFUSAL: return "refused";
    case FR_BAD_CUT_OFF: return "cut_off";
    default: return "bad_answer";
    }
}

static void set_outcome(jattempt *a, const char *outcome)
{
    size_t n = strlen(outcome);
    if (n >= sizeof a->outcome)
        n = sizeof a->outcome - 1;
    memcpy(a->outcome, outcome, n);
    a->outcome[n] = '\0';
}

static void detail_attempt(fr_jhook *h, jstate *s, const fr_request *req,
                           const fr_response *r, const fr_charge *c, int64_t start_ms)
{
    fr_jdetail *d = h->detail;
    if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 2;
        jattempt *a = fr_realloc(d->a, (size_t)cap * sizeof *a);
        if (!a)
            return;
        d->a = a, d->cap = cap;
    }
    jattempt *a = &d->a[d->n++];
    memset(a, 0, sizeof *a);
    a->n = h->jc.attempts;
    a->start_ms = start_ms;
    a->ms = fr_wall_ms() - start_ms;
    set_outcome(a, outcome_word(r));
    a->status = r->http_status;
    set_str(&a->finish, r->finish_reason);
    set_str(&a->error, r->outcome == FR_ANSWER ? NULL : r->error);
    a->tokens_in = c->in;
    a->tokens_out = c->out;
    a->usd = c->usd;
    a->repaired = r->repaired;
    a->loop = h->loop;
    a->turn = h->turns;
    a->tools_off = h->loop && h->tools_off;
    if (s->content) {
        set_str(&a->feedback, req->feedback);
        set_str(&a->reply, r->raw);
    }
}

void fr_journal_call_outcome(fr_jhook *h, const char *outcome, const char *error)
{
    fr_jdetail *d = h->detail;
    if (!d || d->n == 0)
        return;
    set_outcome(&d->a[d->n - 1], outcome);
    set_str(&d->a[d->n - 1].error, error);
}

/* *slot with the run's sensitive values redacted. */
static void redact_str(fr_run *run, char **slot)
{
    if (!*slot || !fr_redact_active(run->redact))
        return;
    char *out = fr_redact_text(run->redact, *slot);
    if (!out)
        return;
    fr_free(*slot);
    *slot = out;
}

/* The detail's texts with the run's sensitive values redacted (once: the
 * journal's copy and the trace's are the same). */
static void redact_detail(fr_jhook *h, fr_run *run)
{
    fr_jdetail *d = h->detail;
    if (!d || d->redacted)
        return;
    d->redacted = true;
    redact_str(run, &d->system);
    redact_str(run, &d->prompt);
    redact_str(run, &d->error);
    for (int i = 0; i < d->n; i++) {
        redact_str(run, &d->a[i].error);
        redact_str(run, &d->a[i].feedback);
        redact_str(run, &d->a[i].reply);
    }
}

/* "key": then s as a JSON string (null for NULL), bytes that are not
 * UTF-8 written as '?' (as a jansson string cannot hold them). */
static void put_text(fr_buf *b, const char *key, const char *s)
{
    fr_buf_puts(b, key);
    if (!s) {
        fr_buf_put(b, "null", 4);
        return;
    }
    size_t n = strlen(s);
    if (fr_utf8_valid(s, n)) {
        fr_buf_json_string(b, s, n);
        return;
    }
    char *copy = fr_strdup(s);
    if (copy) {
        fr_repair_utf8(copy);
        fr_buf_json_string(b, copy, n);
    }
    fr_free(copy);
}

static void put_num(fr_buf *b, const char *key, int64_t v)
{
    fr_buf_puts(b, key);
    fr_buf_json_int(b, v);
}

/* s as put_text does, with the run's sensitive values redacted when run
 * is not NULL. */
static void put_redacted(fr_buf *b, const char *key, const char *s, fr_run *run)
{
    char *r = run && s && fr_redact_active(run->redact) ? fr_redact_text(run->redact, s) : NULL;
    put_text(b, key, r ? r : s);
    fr_free(r);
}

/* One attempt: {"n", "start_ms", "ms", "outcome", ["status",] "finish",
 * "error", "tokens_in", "tokens_out", "usd", ["repaired",] ["turn",]
 * ["tools_off",] ["feedback", "reply"]}; its texts redacted when run is
 * not NULL. */
static void put_attempt(fr_buf *b, const jattempt *a, bool first, bool content, fr_run *run)
{
    put_num(b, first ? "{\"n\":" : ",{\"n\":", a->n);
    put_num(b, ",\"start_ms\":", a->start_ms);
    put_num(b, ",\"ms\":", a->ms);
    put_text(b, ",\"outcome\":", a->outcome);
    if (a->status)
        put_num(b, ",\"status\":", a->status);
    put_text(b, ",\"finish\":", a->finish);
    put_redacted(b, ",\"error\":", a->error, run);
    put_num(b, ",\"tokens_in\":", a->tokens_in);
    put_num(b, ",\"tokens_out\":", a->tokens_out);
    fr_buf_puts(b, ",\"usd\":");
    fr_buf_json_real(b, a->usd);
    if (a->repaired)
        fr_buf_puts(b, ",\"repaired\":true");
    if (a->loop)
        put_num(b, ",\"turn\":", a->turn);
    if (a->tools_off)
        fr_buf_puts(b, ",\"tools_off\":true");
    if (content) {
        put_redacted(b, ",\"feedback\":", a->feedback, run);
        put_redacted(b, ",\"reply\":", a->reply, run);
    }
    fr_buf_puts(b, "}");
}

/* The detail as JSON: {"model", ["system", "prompt",] "attempts": [...],
 * ["error"]}, to b. */
void fr_jdetail_put(fr_buf *b, const fr_jdetail *d)
{
    put_text(b, "{\"model\":", d->model);
    if (d->content) {
        put_text(b, ",\"system\":", d->system);
        put_text(b, ",\"prompt\":", d->prompt);
    }
    fr_buf_puts(b, ",\"attempts\":[");
    for (int i = 0; i < d->n; i++)
        put_attempt(b, &d->a[i], i == 0, d->content, NULL);
    fr_buf_puts(b, "]");
    if (d->error)
        put_text(b, ",\"error\":", d->error);
    fr_buf_puts(b, "}");
}

/* The same as text (malloc'd). */
char *fr_jdetail_text(const fr_jdetail *d)
{
    fr_buf b = { 0 };
    fr_jdetail_put(&b, d);
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* A loop turn's row detail: {"model", "attempts"} with the call's attempts
 * of that turn, redacted (malloc'd; NULL: none, or out of memory). */
static char *turn_text(fr_jhook *h, fr_run *run, int turn)
{
    const fr_jdetail *d = h->detail;
    fr_buf b = { 0 };
    int n = 0;
    for (int i = 0; d && i < d->n; i++) {
        if (!d->a[i].loop || d->a[i].turn != turn)
            continue;
        if (n == 0) {
            put_text(&b, "{\"model\":", h->model->api_name);
            fr_buf_puts(&b, ",\"attempts\":[");
        }
        put_attempt(&b, &d->a[i], n++ == 0, d->content, run);
    }
    if (n == 0 || (fr_buf_puts(&b, "]}"), fr_buf_failed(&b))) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* The detail for the journal's row of the call, with the call's final
 * error when it failed: its text in r->detail (malloc'd, the caller frees
 * it) while the trace or a tool loop still needs it, else itself in
 * r->detail_own (the journal writes it on the writer's thread: off the
 * items' thread). */
static char *detail_text(fr_jhook *h, fr_ctx *cx, json_t *v, fr_jcall *r)
{
    jstate *s = cx->run->journal;
    if (!h->detail)
        return NULL;
    if (!v && cx->err)
        set_str(&h->detail->error, cx->err);
    redact_detail(h, cx->run);
    if (s->trace || h->loop)       /* the trace, a loop's turn rows: still needed */
        return (char *)(r->detail = fr_jdetail_text(h->detail));
    r->detail_own = h->detail;
    h->detail = NULL;
    return NULL;
}

/* A journaled answer v (of type t) with its hashed values put back from
 * the noted ones (consumed); NULL when one cannot be: the answer is asked
 * again, unless keep (a write, never sent twice: it keeps the marks). */
static json_t *put_back(fr_redact *r, json_t *v, const fr_type *t, bool keep)
{
    bool lost = false;
    json_t *u = v ? fr_redact_unmarked(r, v, &lost) : NULL;
    json_decref(v);
    if (u && !fr_redact_restore(r, u, t))
        lost = true;
    if (lost && !keep) {
        json_decref(u);
        return NULL;
    }
    return u;
}

/* Keys c by system and prompt, with the salt of a tool's call hashed in. */
static void salted_key(fr_jcall *c, const char *system, const char *req, const fr_under *u)
{
    if (!u || !u->salt) {
        fr_journal_key(c, system, req);
        return;
    }
    fr_buf b = { 0 };
    fr_buf_printf(&b, "%s\n%s", u->salt, system ? system : "");
    fr_journal_key(c, fr_buf_failed(&b) ? u->salt : b.s, req);
    fr_buf_free(&b);
}

json_t *fr_journal_call_begin(fr_jhook *h, fr_ctx *cx, const fr_agent *a, int site,
                              const fr_model *m, const char *system, const char *prompt,
                              const fr_under *u)
{
    jstate *s = cx->run->journal;
    memset(h, 0, sizeof *h);
    h->jc = (fr_jcall){ .agent = a->name, .site = site, .item = cx->path, .seq = cx->seq,
                        .phase = cx->phase, .model = m->api_name };
    h->model = m;
    h->start_us = fr_wall_us();
    h->start_ms = fr_now_ms();
    h->parent_span = u && u->span && *u->span ? u->span : NULL;
    salted_key(&h->jc, system, prompt ? prompt : "", u);
    if (u && u->key_out)
        snprintf(u->key_out, FR_JKEY_MAX, "%s", h->jc.key);
    if (s && s->trace && a->ntools)
        fr_trace_span(s->trace, h->span);
    if (s && (s->j || s->trace))
        h->detail = call_detail(s, m, system, prompt);
    if (!s || !s->j)
        return NULL;
    json_t *v = put_back(cx->run->redact, fr_journal_lookup(s->j, &h->jc), a->output, false);
    if (!v)
        return NULL;
    h->cached = true;
    __atomic_add_fetch(&s->cached, 1, __ATOMIC_RELAXED);
    return fr_keep(cx, v);
}

/* What of h's totals the call's own row records: all but what a tool
 * loop's turn rows already do. */
static fr_jcall own_row(const fr_jhook *h)
{
    fr_jcall r = h->jc;
    r.attempts -= h->put.attempts;
    r.tokens_in -= h->put.tokens_in;
    r.tokens_out -= h->put.tokens_out;
    r.cache_read -= h->put.cache_read;
    r.cache_write -= h->put.cache_write;
    r.usd -= h->put.usd;
    r.saved_usd -= h->put.saved_usd;
    return r;
}

bool fr_journal_call_hold(fr_jhook *h, fr_ctx *cx, const fr_resv *r)
{
    jstate *s = cx->run->journal;
    if (!s || !s->j || !s->holds)
        return true;
    fr_jcall own = own_row(h);
    int64_t tok = own.tokens_in + own.tokens_out + r->tokens;
    if (!fr_journal_reserve(s->j, &own, own.usd + r->usd, tok))
        write_failed(s);
    h->jc.row = own.row;           /* the row the hold made, for the call's later writes */
    return !fr_journal_stopped(cx);
}

/* The hold becomes what the call's attempts spent, so a crash before its
 * record counts that, not the hold the ledger is about to release. */
void fr_journal_call_settle(fr_jhook *h, fr_ctx *cx)
{
    jstate *s = cx->run->journal;
    if (!s || !s->j || !s->holds)
        return;
    fr_jcall own = own_row(h);
    bool ok = fr_journal_reserve(s->j, &own, own.usd, own.tokens_in + own.tokens_out);
    h->jc.row = own.row;
    if (!ok)
        write_failed(s);
}

/* error.type of an attempt that gave no usable answer. */
static void error_type(fr_jhook *h, const fr_response *r)
{
    const char *kind = r->outcome == FR_BAD_ANSWER ? "bad_answer"
                       : r->outcome == FR_FATAL ? "fatal"
                       : r->outcome == FR_TRANSIENT ? "transient" : "invalid_answer";
    if (r->http_status && r->outcome != FR_ANSWER)
        snprintf(h->error_type, sizeof h->error_type, "%d", r->http_status);
    else if (r->outcome == FR_TRANSIENT && r->error && strstr(r->error, "timed out"))
        snprintf(h->error_type, sizeof h->error_type, "timeout");
    else
        snprintf(h->error_type, sizeof h->error_type, "%s", kind);
}

void fr_journal_call_attempt(fr_jhook *h, fr_ctx *cx, const fr_request *req,
                             const fr_response *r, const fr_charge *c, int64_t start_ms)
{
    h->jc.attempts++;
    if (h->detail)
        detail_attempt(h, cx->run->journal, req, r, c, start_ms);
    h->jc.tokens_in += c->in;
    h->jc.tokens_out += c->out;
    h->jc.usd += c->usd;
    h->cache_read += c->cache_read;
    h->cache_write += c->cache_write;
    h->jc.cache_read += c->cache_read;
    h->jc.cache_write += c->cache_write;
    h->jc.saved_usd += c->saved;
    snprintf(h->finish, sizeof h->finish, "%s", r->finish_reason ? r->finish_reason : "");
    snprintf(h->response_id, sizeof h->response_id, "%s", r->response_id ? r->response_id : "");
    h->max_tokens = req->max_tokens;
    h->temperature = req->model->no_temperature ? -1 : req->agent->temperature;
    error_type(h, r);
}

void fr_journal_call_record(fr_jhook *h, fr_ctx *cx, json_t *v, const fr_type *t)
{
    jstate *s = cx->run->journal;
    h->error_type[0] = '\0';
    if (!s || !s->j || !v)
        return;
    fr_redact_note(cx->run->redact, v, t);
    json_t *hashed = fr_redact_hashed(cx->run->redact, v, t);   /* never in clear */
    json_t *marked = fr_redact_marked(cx->run->redact, hashed ? hashed : v);
    json_decref(hashed);
    h->jc.latency_ms = fr_now_ms() - h->start_ms;
    if (!marked)
        return;                    /* out of memory: the call is made again on resume */
    fr_jcall own = own_row(h);
    own.output = NULL;             /* the writer writes the answer as text */
    own.output_json = marked;
    own.output_type = t;
    char *detail = detail_text(h, cx, v, &own);
    /* queued: the item goes on; what must follow it on disk is queued after */
    if (!fr_journal_record_async(s->j, &own))
        write_failed(s);
    json_decref(marked);
    fr_free(detail);
}

/* A call's trace line, written once its record is durable (a trace never
 * shows a call the journal could lose to a kill). */
typedef struct tline {
    fr_trace *trace;               /* where */
    char *line;                    /* what (fr_malloc'd) */
} tline;

static void write_tline(void *arg)
{
    tline *t = arg;
    fr_trace_write(t->trace, t->line);
    fr_free(t);
}

static void trace_call(jstate *s, fr_jhook *h, fr_ctx *cx, json_t *v)
{
    if (!v && !h->error_type[0])
        snprintf(h->error_type, sizeof h->error_type, "%s",
                 cx->sig == FR_SIG_BUDGET ? "budget" : "error");
    json_t *content = NULL;        /* --trace-content: the detail, on the line */
    if (s->content && h->detail) {
        char *text = fr_jdetail_text(h->detail);
        content = text ? fr_json_loadb(text, strlen(text), 0, NULL) : NULL;
        fr_free(text);
    }
    fr_tcall t = {
        h->jc.agent, cx->run->mock_all ? "mock" : h->model->provider, h->model->api_name,
        cx->phase, cx->path, h->jc.attempts, h->jc.tokens_in, h->cache_read, h->cache_write,
        h->jc.tokens_out, h->jc.usd,
        h->start_us, fr_now_ms() - h->start_ms, h->finish[0] ? h->finish : NULL,
        v ? NULL : h->error_type, h->cached, h->jc.key[0] ? h->jc.key : NULL,
        h->span[0] ? h->span : NULL, h->parent_span, h->loop, h->turns, h->tool_calls,
        content, s->content, h->max_tokens, h->temperature, h->response_id,
    };
    if (!s->j || !fr_trace_file(s->trace)) {
        fr_trace_call(s->trace, &t);
        json_decref(content);
        return;
    }
    tline *tl = fr_malloc(sizeof *tl);
    if (tl && (tl->line = fr_trace_call_line(s->trace, &t)) != NULL) {
        tl->trace = s->trace;
        if (fr_journal_after(s->j, write_tline, tl)) {
            json_decref(content);
            return;
        }
        fr_free(tl->line);
    }
    fr_free(tl);
    fr_trace_call(s->trace, &t);   /* no memory to wait for the commit: now */
    json_decref(content);
}

void fr_journal_call_end(fr_jhook *h, fr_ctx *cx, json_t *v)
{
    jstate *s = cx->run->journal;
    if (s && s->j && !v && h->jc.attempts > h->put.attempts) {
        h->jc.output = NULL;
        h->jc.latency_ms = fr_now_ms() - h->start_ms;
        fr_jcall own = own_row(h);
        char *detail = detail_text(h, cx, v, &own);
        if (!fr_journal_record_async(s->j, &own))
            write_failed(s);
        fr_free(detail);
    }
    if (s && s->trace) {
        if (!v && cx->err && h->detail && !h->detail->redacted)
            set_str(&h->detail->error, cx->err);
        redact_detail(h, cx->run);
        trace_call(s, h, cx, v);
    }
    fr_journal_call_drop(h);
}

/* ---- a tool loop's turns ---------------------------------------------------- */

/* Turn t's row: the call's own fields, its key with "#t<turn>" (or "#r")
 * after it, no usage (the call's row has it). */
static void turn_row(fr_jcall *r, const fr_jhook *h, int turn, char what)
{
    *r = h->jc;
    size_t n = strlen(r->key);
    snprintf(r->key + n, sizeof r->key - n, "#%c%d", what, turn);
    r->output = NULL;
    r->tokens_in = r->tokens_out = r->cache_read = r->cache_write = 0;
    r->usd = r->saved_usd = 0;
    r->attempts = 0;
    r->tier = NULL;
    r->row = 0;                    /* a row of its own (fr_journal_lookup finds an earlier one) */
}

json_t *fr_journal_turn_get(fr_jhook *h, fr_ctx *cx, int turn, char what)
{
    jstate *s = cx->run->journal;
    if (!s || !s->j)
        return NULL;
    fr_jcall r;
    turn_row(&r, h, turn, what);
    json_t *v = fr_journal_lookup(s->j, &r);
    bool lost;
    json_t *u = fr_redact_unmarked(cx->run->redact, v, &lost);
    json_decref(v);
    return u;                      /* a mark not put back stays: see doc/language.md */
}

void fr_journal_turn_put(fr_jhook *h, fr_ctx *cx, int turn, char what, json_t *v,
                         json_t *detail)
{
    jstate *s = cx->run->journal;
    if (!s || !s->j || !v)
        return;
    fr_jcall r;
    turn_row(&r, h, turn, what);
    fr_journal_was_in_flight(s->j, &r);         /* finds an earlier process's row */
    if (what == 't') {                           /* the attempts no row records yet */
        fr_jcall own = own_row(h);
        r.attempts = own.attempts;
        r.tokens_in = own.tokens_in, r.tokens_out = own.tokens_out;
        r.cache_read = own.cache_read, r.cache_write = own.cache_write;
        r.usd = own.usd, r.saved_usd = own.saved_usd;
    }
    json_t *marked = fr_redact_marked(cx->run->redact, v);    /* never in clear */
    char *text = marked ? json_dumps(marked, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(marked);
    char *dtext = what == 't' ? turn_text(h, cx->run, turn) : NULL;
    if (!dtext && detail)
        dtext = json_dumps(detail, JSON_COMPACT | JSON_PRESERVE_ORDER);
    r.output = text;
    r.detail = dtext;              /* for show: NULL only loses what show prints */
    r.latency_ms = fr_now_ms() - h->start_ms;
    if (!text || !fr_journal_record(s->j, &r)) {
        write_failed(s);
    } else if (what == 't') {
        h->put.attempts += r.attempts;
        h->put.tokens_in += r.tokens_in, h->put.tokens_out += r.tokens_out;
        h->put.cache_read += r.cache_read, h->put.cache_write += r.cache_write;
        h->put.usd += r.usd, h->put.saved_usd += r.saved_usd;
    }
    fr_free(text);
    fr_free(dtext);
}

/* ---- approve() and escalate() -------------------------------------------- */

static char *item_text(json_t *v)
{
    return json_dumps(v ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY |
                      JSON_REAL_PRECISION(17));
}

/* The approved items in order, or NULL with FR_SIG_WAIT while any waits. */
static json_t *decided(fr_ctx *cx, json_t *list, const int *d, const char *title,
                       const char *where)
{
    size_t n = json_array_size(list), waiting = 0;
    for (size_t i = 0; i < n; i++)
        waiting += d[i] < 0;
    if (waiting) {
        const char *id = fr_journal_run_id(((jstate *)cx->run->journal)->j);
        const char *self = fr_self_name(cx->run->prog);
        fr_fail(cx, where, "%zu item%s of '%s' wait%s for a decision (run %s): see `%s review`,"
                " decide with `%s approve %s ...`, then run again with --resume", waiting,
                waiting == 1 ? "" : "s", title, waiting == 1 ? "s" : "", id, self, self, id);
        cx->sig = FR_SIG_WAIT;
        return NULL;
    }
    json_t *out = fr_list(cx);
    for (size_t i = 0; out && i < n; i++)
        if (d[i] == 1)
            fr_list_push(out, json_array_get(list, i));
    return out;
}

json_t *fr_journal_approve(fr_ctx *cx, json_t *list, json_t *title, int site,
                           const char *where)
{
    jstate *s = cx->run->journal;
    const char *t = json_string_value(title) ? json_string_value(title) : "";
    if (!s || !s->j)
        return fr_fail(cx, where, "approve() needs the run journal: run without --no-journal");
    size_t n = json_array_size(list);
    char **items = fr_calloc(n + 1, sizeof *items);
    int *d = fr_calloc(n + 1, sizeof *d);
    bool ok = items && d;
    for (size_t i = 0; ok && i < n; i++) {
        json_t *shown = fr_redact_json(cx->run->redact, json_array_get(list, i));
        ok = (items[i] = item_text(shown)) != NULL;
        json_decref(shown);
    }
    fr_buf err = { 0 };
    if (ok && !fr_journal_approvals(s->j, site, cx->path, t, n, items, d, &err))
        ok = fr_fail(cx, where, "approve(): %s", err.s ? err.s : "journal error") != NULL;
    json_t *v = ok ? decided(cx, list, d, t, where)
                   : cx->sig ? NULL : fr_fail(cx, where, "out of memory");
    for (size_t i = 0; items && i < n; i++)
        fr_free(items[i]);
    fr_free(items);
    fr_free(d);
    fr_buf_free(&err);
    return v;
}

void fr_journal_escalated(fr_ctx *cx, json_t *item, const char *why, const char *where)
{
    jstate *s = cx->run->journal;
    if (!s || !s->j)
        return;
    json_t *shown = fr_redact_json(cx->run->redact, item ? item : cx->item);
    char *text = item_text(shown);
    char *reason = fr_redact_text(cx->run->redact, why);
    json_decref(shown);
    if (!text || !fr_journal_escalate(s->j, where, cx->path, text, reason ? reason : why))
        write_failed(s);
    fr_free(text);
    fr_free(reason);
}

/* ---- http operations ----------------------------------------------------- */

const char *fr_journal_run_tag(fr_run *run)
{
    jstate *s = run->journal;
    if (s && s->j && fr_journal_run_id(s->j)[0])
        return fr_journal_run_id(s->j);
    pthread_mutex_lock(&run->mu);
    if (!run->run_tag[0])                  /* no journal: this process is the whole run */
        fr_journal_new_run_id(run->run_tag);
    pthread_mutex_unlock(&run->mu);
    return run->run_tag;
}

json_t *fr_journal_op_begin(fr_jhook *h, fr_ctx *cx, const fr_op *op, int site,
                            const char *request, bool *in_flight, const fr_under *u)
{
    jstate *s = cx->run->journal;
    memset(h, 0, sizeof *h);
    *in_flight = false;
    h->jc = (fr_jcall){ .agent = op->name, .site = site, .item = cx->path, .seq = cx->seq,
                        .phase = cx->phase, .model = "http" };
    h->start_us = fr_wall_us();
    h->start_ms = fr_now_ms();
    h->parent_span = u && u->span && *u->span ? u->span : NULL;
    /* the key is made without a journal too: idempotency keys derive from it */
    salted_key(&h->jc, op->method, request, u);
    if (u && u->key_out)
        snprintf(u->key_out, FR_JKEY_MAX, "%s", h->jc.key);
    if (!s || !s->j)
        return NULL;
    json_t *v = put_back(cx->run->redact, fr_journal_lookup(s->j, &h->jc),
                         op->output ? op->output : &fr_type_string, op->write);
    if (!v) {
        *in_flight = op->write && fr_journal_was_in_flight(s->j, &h->jc);
        return NULL;
    }
    h->cached = true;
    __atomic_add_fetch(&s->cached, 1, __ATOMIC_RELAXED);
    return fr_keep(cx, v);
}

/* A write is in flight from here until its record: durable before it leaves,
 * whatever the budgets, so a crash leaves it marked. */
bool fr_journal_op_hold(fr_jhook *h, fr_ctx *cx)
{
    jstate *s = cx->run->journal;
    if (s && s->j && !fr_journal_reserve(s->j, &h->jc, 0, 0))
        write_failed(s);
    return !fr_journal_stopped(cx);
}

void fr_journal_op_end(fr_jhook *h, fr_ctx *cx, json_t *v, fr_top *t)
{
    jstate *s = cx->run->journal;
    h->jc.attempts = t->attempts;
    if (s && s->j && !v && t->attempts > 0) {
        h->jc.output = NULL;
        h->jc.latency_ms = fr_now_ms() - h->start_ms;
        if (!fr_journal_record(s->j, &h->jc))
            write_failed(s);
    }
    if (s && s->trace) {
        t->start_us = h->start_us;
        t->latency_ms = fr_now_ms() - h->start_ms;
        t->key = h->jc.key[0] ? h->jc.key : NULL;
        t->parent_span_id = h->parent_span;
        const char *url = t->url;              /* a tool's argument may be in its path */
        char *shown = url ? fr_redact_text(cx->run->redact, url) : NULL;
        t->url = shown ? shown : url;
        fr_trace_op(s->trace, t);
        t->url = url;
        fr_free(shown);
    }
}
