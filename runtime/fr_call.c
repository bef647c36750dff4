/*
 * fr_call.c: one agent call, from rendered prompt to validated answer.
 *
 * A call renders its system and prompt, then makes up to 1 + retries
 * attempts.  Each attempt first checks the time left and reserves its worst
 * case on the budgets (fr_budget.c), takes one of the run's call slots
 * (--concurrency), asks the provider (the mock or HTTP), gives the slot back
 * and settles the reservation on the reported usage, only once the journal
 * counts that usage instead of the hold (the answer's record, or a settle),
 * so that a crash never leaves on disk more than the ledger allowed.  The
 * backoff before a retry comes after the settle.  What came back decides
 * the next step:
 *   FR_ANSWER that validates     -> done
 *   FR_ANSWER that does not,
 *   FR_BAD_ANSWER                -> retry, telling the model what was wrong
 *   FR_TRANSIENT                 -> retry after backoff with full jitter
 *   FR_FATAL                     -> fail now
 * Each attempt is also counted by what went wrong with it, or what had to be
 * repaired, for the run summary (tally, below): per attempt, whether or not
 * another attempt followed.
 * The answer is kept in the caller's pool and returned borrowed.
 */
#include "fr_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BACKOFF_CAP_MS 30000
/* Tokens a request costs beyond its text: the provider's own framing (an
 * Anthropic forced tool call alone adds some 350), so reservations hold
 * enough however the provider counts. */
#define REQUEST_OVERHEAD_TOKENS 400

/* One call's state across its attempts. */
typedef struct call {
    fr_ctx *cx;                    /* the calling context */
    const fr_agent *agent;         /* who is called */
    const fr_model *model;         /* with which model */
    const char *where;             /* the call site, for messages */
    fr_buf system, prompt;         /* rendered */
    size_t schema_bytes;           /* the output schema's size, for the input estimate */
    char *feedback;                /* what was wrong with the last answer (malloc'd) */
    char *prev_answer;             /* the last answer's raw text (malloc'd) */
    char *last_error;              /* the last attempt's problem (malloc'd) */
    int attempts;                  /* made so far */
    int max_tokens;                /* the answer's cap: the agent's, or the model's once an
                                      answer was cut off */
    int extra;                     /* attempts allowed past retries (the raised cap's) */
    fr_stats tally;                /* the attempts' repairs and problems, for the summary */
    fr_jhook jh;                   /* the journal's and the trace's part of the call */
} call;

void fr_provider_call(fr_run *run, const fr_request *req, fr_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    resp->retry_after_asked_ms = -1;
    if (run->mock_all || strcmp(req->model->provider, "mock") == 0)
        fr_mock_call(&run->mock, req, resp);
    else
        fr_http_call(run->http, req, resp);
}

/* ---- call slots: --concurrency caps attempts in flight ------------------- */

void fr_slot_take(fr_run *run)
{
    if (run->concurrency <= 0) {           /* no cap: only count, for the progress line */
        __atomic_add_fetch(&run->inflight, 1, __ATOMIC_RELAXED);
        return;
    }
    pthread_mutex_lock(&run->mu);
    while (__atomic_load_n(&run->inflight, __ATOMIC_RELAXED) >= run->concurrency)
        pthread_cond_wait(&run->slot_cv, &run->mu);
    __atomic_add_fetch(&run->inflight, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&run->mu);
}

void fr_slot_give(fr_run *run)
{
    if (run->concurrency <= 0) {
        __atomic_sub_fetch(&run->inflight, 1, __ATOMIC_RELAXED);
        return;
    }
    pthread_mutex_lock(&run->mu);
    __atomic_sub_fetch(&run->inflight, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&run->mu);
    pthread_cond_signal(&run->slot_cv);
}

/* ---- backoff ------------------------------------------------------------- */

static uint64_t rand_next(void)
{
    static __thread uint64_t s;
    if (!s)
        s = ((uint64_t)(uintptr_t)&s * 0x9E3779B97F4A7C15u) ^ (uint64_t)fr_now_ms() ^ 1u;
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
}

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* "60 s", "7.5 s", "3 days" */
static void put_secs(char *b, size_t cap, int64_t ms)
{
    double s = (double)ms / 1000;
    if (s >= 2 * 86400)
        snprintf(b, cap, "%.0f days", s / 86400);
    else
        snprintf(b, cap, s >= 10 ? "%.0f s" : "%.1f s", s);
}

/* A long wait, or one the cap cut short: counted, and said unless one said
 * already ends with it. */
static void long_wait(fr_ctx *cx, int64_t d, int retry_after_ms, int64_t asked_ms,
                      const char *why)
{
    fr_run *run = cx->run;
    int64_t now = fr_now_ms();
    bool capped = asked_ms > retry_after_ms && retry_after_ms >= 0;
    pthread_mutex_lock(&run->mu);
    fr_stats *st = fr_stats_of(run, cx->phase);
    st->long_waits++;
    st->capped_waits += capped;
    if (d > st->longest_wait_ms)
        st->longest_wait_ms = d;
    bool say = now + d > run->wait_said_until + 1000;
    if (say)
        run->wait_said_until = now + d;
    pthread_mutex_unlock(&run->mu);
    if (!say)
        return;
    char wait[32], asked[32];
    put_secs(wait, sizeof wait, d);
    put_secs(asked, sizeof asked, asked_ms);
    fprintf(stderr, "%snote: waiting %s before the next attempt (%s%.*s): %s", run->progress
            ? "\r\033[K" : "", wait, cx->path_len ? "item " : "the workflow's call",
            (int)cx->path_len, cx->path, why && *why ? why : "a transient error");
    if (capped)
        fprintf(stderr, "; the server asked for %s, cut to %d s (--max-retry-after)\n", asked,
                run->max_wait_ms / 1000);
    else if (asked_ms >= 0 && asked_ms >= d)
        fprintf(stderr, "; the server asked for it (retry-after)\n");
    else
        fprintf(stderr, "; backing off after repeated failures (--retry-base-ms)\n");
}

/* Full jitter: a uniform delay in [0, min(cap, base * 2^attempt)], at least
 * what the server asked for (capped), never past the time left. */
void fr_backoff(fr_ctx *cx, int attempt, int retry_after_ms, int64_t asked_ms, const char *why)
{
    int64_t ceil_ms = cx->run->retry_base_ms;
    for (int i = 0; i < attempt && ceil_ms < BACKOFF_CAP_MS; i++)
        ceil_ms *= 2;
    if (ceil_ms > BACKOFF_CAP_MS)
        ceil_ms = BACKOFF_CAP_MS;
    int64_t d = ceil_ms > 0 ? (int64_t)(rand_next() % (uint64_t)(ceil_ms + 1)) : 0;
    if (retry_after_ms > d)
        d = retry_after_ms;
    int64_t left = fr_budget_time_left(cx);
    if (d > left)
        d = left;
    if (d >= FR_LONG_WAIT_MS || (asked_ms > retry_after_ms && retry_after_ms >= 0))
        long_wait(cx, d, retry_after_ms, asked_ms, why);
    sleep_ms(d);
}

/* ---- one attempt --------------------------------------------------------- */

static void set_str(char **slot, const char *s)
{
    fr_free(*slot);
    *slot = s ? fr_strdup(s) : NULL;
}

/* ceil(bytes / 3) + overhead: a conservative token count for the input. */
static int64_t input_estimate(const call *c)
{
    size_t bytes = c->system.len + c->prompt.len + c->schema_bytes;
    if (c->feedback)
        bytes += strlen(c->feedback);
    if (c->prev_answer)
        bytes += strlen(c->prev_answer);
    return (int64_t)((bytes + 2) / 3) + REQUEST_OVERHEAD_TOKENS;
}

/* A finished call's counts, with its attempts' tally, into its phase's stats. */
static void count(fr_run *run, int phase, int64_t calls, int64_t retries, int64_t failures,
                  const fr_stats *t)
{
    pthread_mutex_lock(&run->mu);
    fr_stats *st = fr_stats_of(run, phase);
    st->calls += calls, st->retries += retries, st->failures += failures;
    st->repaired += t->repaired, st->invalid += t->invalid, st->refused += t->refused;
    st->cut_off += t->cut_off, st->unparsable += t->unparsable;
    st->transient += t->transient, st->rate_limited += t->rate_limited;
    st->raised += t->raised;
    pthread_mutex_unlock(&run->mu);
}

/* The kind of a bad answer: as the provider said, else by its finish reason
 * (Anthropic's stop_reason, OpenAI's finish_reason), else unparsable. */
static fr_bad_kind bad_kind(const fr_response *r)
{
    if (r->bad != FR_BAD_NONE)
        return r->bad;
    const char *f = r->finish_reason ? r->finish_reason : "";
    if (strcmp(f, "max_tokens") == 0 || strcmp(f, "length") == 0)
        return FR_BAD_CUT_OFF;
    if (strcmp(f, "refusal") == 0 || strcmp(f, "content_filter") == 0)
        return FR_BAD_REFUSAL;
    return FR_BAD_UNPARSABLE;
}

/* Counts one attempt's repair or problem in t; valid says whether an
 * FR_ANSWER passed validation. */
static void tally(fr_stats *t, const fr_response *r, bool valid)
{
    switch (r->outcome) {
    case FR_ANSWER:
        t->repaired += r->repaired;
        t->invalid += !valid;
        break;
    case FR_BAD_ANSWER:
        switch (bad_kind(r)) {
        case FR_BAD_REFUSAL: t->refused++; break;
        case FR_BAD_CUT_OFF: t->cut_off++; break;
        case FR_BAD_NONE:
        case FR_BAD_UNPARSABLE: t->unparsable++; break;
        }
        break;
    case FR_TRANSIENT:
        t->transient++;
        t->rate_limited += r->http_status == 429;
        break;
    case FR_FATAL:
        break;
    }
}

/* A call the journal answered: the summary's "cached" column. */
static void count_cached(fr_run *run, int phase)
{
    pthread_mutex_lock(&run->mu);
    fr_stats_of(run, phase)->cached++;
    pthread_mutex_unlock(&run->mu);
}

/* Why no further attempt may be made (STOP_BUDGET: a signal that stops
 * the run is set, a budget's or the journal's). */
enum { GO_ON, STOP_FATAL, STOP_BUDGET };

/* An answer: validated, or turned into feedback for the next attempt. */
static json_t *take_answer(call *c, fr_response *r, int *stop)
{
    fr_buf err = { 0 };
    if (fr_validate_keys(r->output, c->agent->output, FR_KEYS_MODEL, &err)) {
        fr_buf_free(&err);
        /* [journal hook] after validation, record durably before use; the
         * answer is keyed as the schema told the model, the value by wire names */
        json_t *v = fr_keep(c->cx, fr_normalize_keys(r->output, c->agent->output, FR_KEYS_MODEL));
        if (!v) {
            set_str(&c->last_error, "out of memory");
            *stop = STOP_FATAL;
            return NULL;
        }
        fr_journal_call_record(&c->jh, c->cx, v, c->agent->output);
        return v;
    }
    set_str(&c->feedback, err.s ? err.s : "the answer does not match the schema");
    set_str(&c->last_error, c->feedback);
    char *raw = r->raw ? NULL : json_dumps(r->output, JSON_COMPACT | JSON_ENCODE_ANY);
    set_str(&c->prev_answer, r->raw ? r->raw : raw);
    fr_free(raw);
    fr_buf_free(&err);
    return NULL;
}

/* An answer cut off at max_tokens: the same cap would cut it off again, so
 * the next attempt gets the model's own output cap when that is larger (its
 * hold grows with it, and the summary counts it), else the call fails now. */
static int cut_off(call *c)
{
    int64_t most = c->model->max_output_tokens;
    if (most > c->max_tokens) {
        c->max_tokens = most > INT32_MAX ? INT32_MAX : (int)most;
        c->tally.raised++;
        c->extra = 1;
        fr_free(c->prev_answer);            /* a cut-off text is no answer to show */
        c->prev_answer = NULL;
        return GO_ON;
    }
    fr_buf b = { 0 };
    if (most > 0)
        fr_buf_printf(&b, "answer cut off at max_tokens (%d), the model's own maximum: ask "
                      "for a shorter answer", c->max_tokens);
    else
        fr_buf_printf(&b, "answer cut off at max_tokens (%d): raise the agent's max_tokens, "
                      "or declare the model's max_output_tokens", c->max_tokens);
    set_str(&c->last_error, b.s ? b.s : "answer cut off at max_tokens");
    fr_buf_free(&b);
    return STOP_FATAL;
}

/* Makes attempt number c->attempts; returns the answer, or NULL with *stop
 * saying whether another attempt may follow. */
/* Before an attempt: a journal that can be written, time left, the
 * budgets' hold (journaled), a call slot.  Waiting for the hold or the slot
 * takes time, so the deadline is checked again after.  False (FR_SIG_BUDGET
 * or FR_SIG_STOP set) when the attempt may not start. */
static bool start_attempt(call *c, fr_resv *resv, int *timeout)
{
    fr_ctx *cx = c->cx;
    if (fr_journal_stopped(cx))
        return false;
    if (fr_budget_time_left(cx) <= 0)
        return fr_budget_time_stop(cx) != NULL;
    if (!fr_budget_reserve(cx, c->model, input_estimate(c), c->max_tokens, resv))
        return false;
    if (!fr_journal_call_hold(&c->jh, cx, resv)) {   /* no request that is not journaled */
        fr_charge none = { 0 };
        fr_budget_settle(cx->run, resv, &none);
        return false;
    }
    fr_slot_take(cx->run);
    int64_t left = fr_budget_time_left(cx);
    if (left <= 0) {
        fr_slot_give(cx->run);
        fr_journal_call_settle(&c->jh, cx);
        fr_charge none = { 0 };
        fr_budget_settle(cx->run, resv, &none);
        return fr_budget_time_stop(cx) != NULL;
    }
    *timeout = c->agent->timeout_ms > 0 ? c->agent->timeout_ms : 600000;
    if (left < *timeout)
        *timeout = (int)left;
    return true;
}

static json_t *attempt(call *c, int *stop)
{
    fr_ctx *cx = c->cx;
    fr_run *run = cx->run;
    fr_resv resv;
    int timeout = 0;
    *stop = STOP_BUDGET;
    if (!start_attempt(c, &resv, &timeout))
        return NULL;
    fr_request req = {
        c->agent, c->model, c->system.s ? c->system.s : "", c->prompt.s ? c->prompt.s : "",
        c->feedback, c->prev_answer, c->attempts, timeout, c->max_tokens, c->agent->cache,
        FR_OUT_DEFAULT,
    };
    fr_response r;
    fr_provider_call(run, &req, &r);
    fr_slot_give(run);
    fr_charge ch;
    fr_charge_of(c->model, &resv, &r, &ch);
    /* [journal hook] per call/phase trace line: attempt, outcome, usage, latency */
    fr_journal_call_attempt(&c->jh, &r, &ch);
    c->attempts++;
    *stop = GO_ON;
    json_t *v = NULL;
    switch (r.outcome) {
    case FR_ANSWER:
        v = take_answer(c, &r, stop);
        break;
    case FR_BAD_ANSWER:
        set_str(&c->last_error, r.error ? r.error : "unusable answer");
        set_str(&c->feedback, c->last_error);
        set_str(&c->prev_answer, r.raw);
        if (bad_kind(&r) == FR_BAD_CUT_OFF)
            *stop = cut_off(c);
        break;
    case FR_TRANSIENT:
        set_str(&c->last_error, r.error ? r.error : "transient error");
        break;
    case FR_FATAL:
        set_str(&c->last_error, r.error ? r.error : "fatal error");
        *stop = STOP_FATAL;
        break;
    }
    /* a recorded answer already replaced the hold on disk */
    if (!v)
        fr_journal_call_settle(&c->jh, cx);
    fr_budget_settle(run, &resv, &ch);
    if (r.outcome == FR_TRANSIENT && c->attempts <= c->agent->retries)
        fr_backoff(cx, c->attempts - 1, r.retry_after_ms, r.retry_after_asked_ms, r.error);
    /* an answer that ran out of memory after validating is not invalid */
    tally(&c->tally, &r, v || *stop == STOP_FATAL);
    fr_response_free(&r);
    if (fr_journal_stopped(cx)) {  /* this attempt's record or settle failed */
        *stop = STOP_BUDGET;
        return NULL;
    }
    return v;
}

static void call_free(call *c)
{
    fr_buf_free(&c->system);
    fr_buf_free(&c->prompt);
    fr_free(c->feedback);
    fr_free(c->prev_answer);
    fr_free(c->last_error);
}

static size_t schema_bytes(const fr_agent *a, const fr_model *m)
{
    const char *s = strcmp(m->provider, "openai") == 0 ? a->schema_openai : a->schema_anthropic;
    return s ? strlen(s) : 0;
}

/* Whether m has a batch API: Anthropic's and OpenAI's own, not a local server. */
static bool batchable(const fr_model *m)
{
    return strcmp(m->provider, "anthropic") == 0 || strcmp(m->provider, "openai") == 0;
}

/* A batch fan-out's answer to this call, taken as its first attempt at the
 * batch price; NULL when there is none or it is invalid (the call goes on
 * with normal attempts, the invalid one's feedback told). */
static json_t *batch_answer(call *c, const char *key, int *stop)
{
    fr_response r;
    if (!fr_batch_take(c->cx->run, c->model, key, &r))
        return NULL;
    fr_model bm = *c->model;
    if (bm.usd_per_mtok_batch_in >= 0)
        bm.usd_per_mtok_in = bm.usd_per_mtok_batch_in;
    if (bm.usd_per_mtok_batch_out >= 0)
        bm.usd_per_mtok_out = bm.usd_per_mtok_batch_out;
    if (bm.usd_per_mtok_cache_read >= 0 && c->model->usd_per_mtok_batch_in >= 0)
        bm.usd_per_mtok_cache_read /= 2;
    fr_resv none = { c->cx->phase, 0, 0 };
    fr_charge ch;
    fr_charge_of(&bm, &none, &r, &ch);
    c->jh.jc.tier = "batch";
    fr_journal_call_attempt(&c->jh, &r, &ch);
    fr_budget_charge(c->cx->run, c->cx->phase, &ch);
    c->attempts++;
    json_t *v = NULL;
    if (r.outcome == FR_ANSWER)
        v = take_answer(c, &r, stop);
    else {
        set_str(&c->last_error, r.error ? r.error : "unusable answer");
        set_str(&c->feedback, c->last_error);
        set_str(&c->prev_answer, r.raw);
    }
    if (!v)
        fr_journal_call_settle(&c->jh, c->cx);
    tally(&c->tally, &r, v != NULL);
    fr_response_free(&r);
    if (*stop != GO_ON)
        *stop = GO_ON;                           /* a bad batch answer is retried normally */
    return v;
}

json_t *fr_call(fr_ctx *cx, const fr_agent *a, int site, const fr_model *using,
                json_t *const *args, const char *where)
{
    call c = { .cx = cx, .agent = a, .model = using ? using : a->model, .where = where,
               .max_tokens = a->max_tokens > 0 ? a->max_tokens : 1024 };
    if (!a->render(cx, args, &c.system, &c.prompt)) {
        call_free(&c);
        return NULL;
    }
    c.schema_bytes = schema_bytes(a, c.model);
    cx->seq++;
    /* [journal hook] before any request, ask the journal: a journaled answer
     * for (agent, site, cx->path, cx->seq, hash of system+prompt) is kept in
     * cx's pool and returned here without a request or a reservation. */
    json_t *v = fr_journal_call_begin(&c.jh, cx, a, site, c.model, c.system.s, c.prompt.s);
    if (v)
        count_cached(cx->run, cx->phase);
    int stop = GO_ON;
    if (!v && (fr_batch_collecting() || cx->run->batches)) {
        fr_jcall k = c.jh.jc;                    /* the journal's key, journal or not */
        fr_journal_key(&k, c.system.s, c.prompt.s ? c.prompt.s : "");
        if (fr_batch_collecting()) {             /* a batch fan-out's first pass */
            bool ok = !batchable(c.model) ||
                      fr_batch_collect(a, c.model, c.system.s, c.prompt.s, k.key, c.max_tokens);
            call_free(&c);
            cx->sig = ok ? FR_SIG_SKIP : FR_SIG_FAIL;   /* the item stops here this pass */
            return NULL;
        }
        v = batch_answer(&c, k.key, &stop);
    }
    while (!v && stop == GO_ON && c.attempts <= a->retries + c.extra)
        v = attempt(&c, &stop);
    if (c.attempts > 0)
        count(cx->run, cx->phase, 1, c.attempts - 1, v || stop == STOP_BUDGET ? 0 : 1,
              &c.tally);
    if (!v && stop != STOP_BUDGET)
        fr_fail(cx, where, "agent '%s' (model %s): %s after %d attempt%s", a->name,
                c.model->name, c.last_error ? c.last_error : "no answer", c.attempts,
                c.attempts == 1 ? "" : "s");
    fr_journal_call_end(&c.jh, cx, v);
    call_free(&c);
    return v;
}
