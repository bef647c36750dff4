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
 *
 * An agent with tools runs a tool loop: each turn is a request (with its
 * own 1 + retries attempts, as above) whose answer is either the typed
 * answer, which ends the loop, or the model's tool calls
 * (FR_TOOL_CALLS), which fr_tools.c makes; their results go back in the
 * next turn.  Once max_tool_calls calls are made the next turn asks for the
 * answer without tools.  Each attempt holds the worst case of the rest of
 * the loop (loop_worst: every turn still possible at max_tokens, each tool
 * result at its cap, the context growing by both) and settles on its
 * usage; the journal holds only that attempt's own worst case, since only
 * it is in flight.  The journal keeps each turn the model made before its
 * tools run ("#t<n>" after the call's key) and their results after ("#r<n>"),
 * so a resumed run replays the finished turns and tool calls instead of
 * making them again; the answer is journaled under the call's own key as
 * any answer is, so a finished loop is answered whole.  For `show`, a
 * turn's row keeps that turn's attempts and the results' row each call's
 * own journal key, time and error kind; both rows hold sensitive values
 * as their hash marks (fr_redact.c), put back when they are replayed.
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
/* Tokens a tool call's result costs beyond its text: the ids, the name, the
 * block around it and a cut result's note. */
#define TOOL_RESULT_FRAME_TOKENS 80
/* Input tokens a provider may count beyond a token a byte of the request's
 * text (its tool-use system prompt, message framing), at most: usage past
 * it is impossible (check_usage). */
#define USAGE_FRAMING_MAX 4096

/* One call's state across its attempts. */
typedef struct call {
    json_t *const *args;           /* the call's arguments (borrowed) */
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
    fr_outcome last;               /* the last attempt's outcome */
    int max_tokens;                /* the answer's cap: the agent's, or the model's once an
                                      answer was cut off */
    int extra;                     /* attempts allowed past retries (the raised cap's) */
    fr_stats tally;                /* the attempts' repairs and problems, for the summary */
    fr_jhook jh;                   /* the journal's and the trace's part of the call */
    /* a tool loop (the agent has tools) */
    json_t *history;               /* the turns so far, in the wire-neutral form */
    size_t history_bytes;          /* their size, for the input estimate */
    int calls_made;                /* tool calls made, or refused at the bound */
    bool tools_off;                /* the bound is reached: the model must answer */
    json_t *turn_out;              /* the last attempt's turn, when it asked for tools */
    int turns_asked;               /* turns requested (not replayed) */
    int turn_first;                /* attempts made before this turn's first */
    int tools_run;                 /* tool calls made in this process */
    int tools_cached;              /* tool results replayed from the journal */
    int tools_failed;              /* tool calls answered with an error */
    const fr_under *under;         /* a tool's call: where it belongs, or NULL */
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
    while (__atomic_load_n(&run->inflight, __ATOMIC_RELAXED) >= run->concurrency &&
           !fr_interrupted(run))        /* interrupted: the caller gives it back at once */
        fr_cond_wait(&run->slot_cv, &run->mu);
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
    fr_cond_signal(&run->slot_cv);
    pthread_mutex_unlock(&run->mu);
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
    fr_intr_sleep_ms(cx->run, d);          /* a fiber parks on a timer; Ctrl-C ends it */
}

/* ---- one attempt --------------------------------------------------------- */

static void set_str(char **slot, const char *s)
{
    fr_free(*slot);
    *slot = s ? fr_strdup(s) : NULL;
}

/* The request's text in bytes: its system, prompt, schema, tools and turns. */
static size_t input_bytes(const call *c)
{
    size_t bytes = c->system.len + c->prompt.len + c->schema_bytes + c->history_bytes;
    if (c->feedback)
        bytes += strlen(c->feedback);
    if (c->prev_answer)
        bytes += strlen(c->prev_answer);
    return bytes;
}

/* ceil(bytes / 3) + overhead: the input's token count as held.  Not a
 * bound (text of one byte a token, as some numbers and scripts are, counts
 * more): usage above the hold stops a run with a budget (fr_budget_over). */
static int64_t input_estimate(const call *c)
{
    return (int64_t)((input_bytes(c) + 2) / 3) + REQUEST_OVERHEAD_TOKENS;
}

/* Usage no request could cost is the server's fault, not a bill: counts
 * that are no counts (a string, a negative number), more input tokens than
 * a token a byte of the request's text plus USAGE_FRAMING_MAX, more output
 * than twice the max_tokens asked for (which caps the output, reasoning
 * included, on both wires).  The attempt becomes a bad answer
 * (FR_BAD_USAGE): its answer is not used, it is charged its hold, and the
 * call retries it (the model is told nothing: its answer was not wrong). */
static void check_usage(const call *c, fr_response *r)
{
    if (r->outcome != FR_ANSWER && r->outcome != FR_BAD_ANSWER && r->outcome != FR_TOOL_CALLS)
        return;
    if (!r->usage && !r->usage_bad)
        return;
    size_t bytes = input_bytes(c);
    int64_t in = r->input_tokens + r->cache_read_tokens + r->cache_write_tokens +
                 r->cache_write_1h_tokens;
    char why[160];
    if (r->usage_bad)
        snprintf(why, sizeof why, "counts that are not counts");
    else if (in > (int64_t)bytes + USAGE_FRAMING_MAX)
        snprintf(why, sizeof why, "%lld input tokens for a request of %zu bytes", (long long)in,
                 bytes);
    else if (r->output_tokens > 2 * (int64_t)c->max_tokens)
        snprintf(why, sizeof why, "%lld output tokens with max_tokens %d",
                 (long long)r->output_tokens, c->max_tokens);
    else
        return;
    fr_buf b = { 0 };
    fr_buf_printf(&b, "the answer from %s reported usage no request could cost (%s): not "
                  "used, charged what the attempt held", c->model->provider, why);
    json_decref(r->output), r->output = NULL;
    json_decref(r->turn), r->turn = NULL;
    fr_free(r->raw), r->raw = NULL;
    fr_free(r->error);
    r->error = fr_http_buf_take(&b);
    r->outcome = FR_BAD_ANSWER;
    r->bad = FR_BAD_USAGE;
    r->usage = false;
    r->input_tokens = r->output_tokens = r->cache_read_tokens = 0;
    r->cache_write_tokens = r->cache_write_1h_tokens = 0;
}

/* An attempt charged above its hold: said, naming the call, and counted;
 * it stops a run with a usd or tokens budget (fr_budget_over). */
static void check_over(const call *c, const fr_resv *held, const fr_charge *ch)
{
    if (!fr_budget_above(held, ch))
        return;
    fr_ctx *cx = c->cx;
    fr_buf b = { 0 };
    if (c->where)
        fr_buf_printf(&b, "%s: ", c->where);
    if (cx->path_len)
        fr_buf_printf(&b, "item %.*s: ", (int)cx->path_len, cx->path);
    fr_buf_printf(&b, "agent '%s' (model %s) reported %lld input and %lld output tokens "
                  "($%.4f), more than its attempt held (%lld tokens, $%.4f)", c->agent->name,
                  c->model->name, (long long)ch->in, (long long)ch->out, ch->usd,
                  (long long)held->tokens, held->usd);
    fr_budget_over(cx, held, ch, b.s && !fr_buf_failed(&b) ? b.s : "a call reported more "
                   "usage than its attempt held");
    fr_buf_free(&b);
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
    st->raised += t->raised, st->bad_usage += t->bad_usage;
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
        case FR_BAD_USAGE: t->bad_usage++; break;
        case FR_BAD_NONE:
        case FR_BAD_UNPARSABLE: t->unparsable++; break;
        }
        break;
    case FR_TRANSIENT:
        t->transient++;
        t->rate_limited += r->http_status == 429;
        break;
    case FR_FATAL:
    case FR_TOOL_CALLS:
        break;
    }
}

void fr_count_transient(fr_ctx *cx)
{
    fr_run *run = cx->run;
    pthread_mutex_lock(&run->mu);
    fr_stats_of(run, cx->phase)->failed_transient++;
    run->failed_transient++;
    pthread_mutex_unlock(&run->mu);
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
    fr_journal_call_outcome(&c->jh, "invalid", c->feedback);
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

/* A tool loop's worst case from here, for this attempt's hold: with L
 * calls left, every turn still possible answered at max_tokens M, and each
 * result at its cap R (plus its framing); turn k's input is this one's
 * plus the k answers and the results made before it.  Over the possible
 * numbers of turns T (1 .. L + 1, each turn but the last making at least
 * one call), the input is largest at
 *   T * in_now + M * T(T-1)/2 + R * ((T-1)(L-T+1) + T(T-1)/2)
 * and the output is (L + 1) * M at most. */
static void loop_worst(const call *c, int64_t in_now, int64_t *in, int64_t *out)
{
    int64_t m = c->max_tokens, left = c->agent->max_tool_calls - c->calls_made;
    int64_t r = (int64_t)c->agent->max_tool_result_tokens + TOOL_RESULT_FRAME_TOKENS;
    if (c->tools_off || left <= 0) {
        *in = in_now, *out = m;
        return;
    }
    int64_t best = in_now;
    for (int64_t t = 1; t <= left + 1; t++) {
        int64_t v = t * in_now + m * t * (t - 1) / 2 + r * ((t - 1) * (left - t + 1) +
                                                             t * (t - 1) / 2);
        if (v > best)
            best = v;
    }
    *in = best;
    *out = (left + 1) * m;
}

/* An attempt whose request never left: its hold on the journal and on the
 * budgets is given back, nothing paid. */
static void not_sent(call *c, fr_resv *resv)
{
    fr_journal_call_settle(&c->jh, c->cx);
    fr_charge none = { 0 };
    fr_budget_settle(c->cx->run, resv, &none);
}

/* Before an attempt: a journal that can be written, time left, the
 * budgets' hold (journaled), a call slot.  Waiting for the hold or the slot
 * takes time, so the deadline is checked again after.  A tool loop holds
 * the rest of the loop's worst case on the budgets, and this attempt's own
 * on the journal (turn).  False (FR_SIG_BUDGET or FR_SIG_STOP set) when the
 * attempt may not start. */
static bool start_attempt(call *c, fr_resv *resv, fr_resv *turn, int *timeout)
{
    fr_ctx *cx = c->cx;
    if (fr_journal_stopped(cx) || fr_intr_stopped(cx))
        return false;
    if (fr_budget_time_left(cx) <= 0)
        return fr_budget_time_stop(cx) != NULL;
    int64_t in = input_estimate(c), hold_in = in, hold_out = c->max_tokens;
    if (c->agent->ntools)
        loop_worst(c, in, &hold_in, &hold_out);
    if (!fr_budget_reserve(cx, c->model, hold_in, hold_out, resv))
        return false;
    *turn = *resv;
    if (c->agent->ntools)
        *turn = (fr_resv){ resv->phase, fr_hold_usd(c->model, in, c->max_tokens),
                           in + c->max_tokens };
    if (!fr_journal_call_hold(&c->jh, cx, turn)) {   /* no request that is not journaled */
        fr_charge none = { 0 };
        fr_budget_settle(cx->run, resv, &none);
        return false;
    }
    fr_slot_take(cx->run);
    int64_t left = fr_budget_time_left(cx);
    if (left <= 0 || fr_interrupted(cx->run)) {    /* it came while we waited for the slot */
        fr_slot_give(cx->run);
        not_sent(c, resv);
        return left <= 0 ? fr_budget_time_stop(cx) != NULL : !fr_intr_stopped(cx);
    }
    *timeout = c->agent->timeout_ms > 0 ? c->agent->timeout_ms : 600000;
    if (left < *timeout)
        *timeout = (int)left;
    return true;
}

/* A turn of tool calls: the loop's next step, or, past the bound (or for
 * an agent without tools), a bad answer told to the model. */
/* What is wrong with a turn's calls as the wire would carry them back: a
 * name that is none of the tools (the providers refuse a history that
 * calls one), a call without an id (its result could not answer it); NULL
 * when nothing is.  Told to the model instead of running the turn. */
static char *turn_problem(const fr_agent *a, json_t *turn)
{
    json_t *tc;
    size_t i;
    fr_buf b = { 0 };
    json_array_foreach(json_object_get(turn, "calls"), i, tc) {
        const char *name = json_string_value(json_object_get(tc, "name"));
        const char *id = json_string_value(json_object_get(tc, "id"));
        if (!fr_tool_find(a, name)) {
            fr_buf_printf(&b, "you called '%s', which is none of your tools (", name ? name : "");
            for (int k = 0; k < a->ntools; k++)
                fr_buf_printf(&b, "%s%s", k ? ", " : "", a->tools[k].name);
            fr_buf_puts(&b, "): call one of them, or answer");
            break;
        }
        if (!id || !*id) {
            fr_buf_printf(&b, "your call of '%s' has no id", name);
            break;
        }
    }
    return b.len ? fr_http_buf_take(&b) : (fr_buf_free(&b), NULL);
}

static void take_turn(call *c, fr_response *r)
{
    char *why = c->agent->ntools && !c->tools_off ? turn_problem(c->agent, r->turn) : NULL;
    if (why) {
        set_str(&c->last_error, why);
        set_str(&c->feedback, why);
        fr_free(c->prev_answer), c->prev_answer = NULL;
        fr_free(why);
        return;
    }
    if (c->agent->ntools && !c->tools_off) {
        c->turn_out = r->turn;
        r->turn = NULL;
        fr_free(c->feedback), c->feedback = NULL;
        fr_free(c->prev_answer), c->prev_answer = NULL;
        return;
    }
    fr_buf b = { 0 };
    if (c->agent->ntools)
        fr_buf_printf(&b, "you asked for tools, but the %d tool calls this agent may make are "
                      "made: answer now", c->agent->max_tool_calls);
    else
        fr_buf_puts(&b, "you asked for a tool, but there are none: answer");
    set_str(&c->last_error, b.s ? b.s : "a tool call instead of the answer");
    set_str(&c->feedback, c->last_error);
    fr_free(c->prev_answer), c->prev_answer = NULL;
    fr_buf_free(&b);
}

/* Makes attempt number c->attempts; returns the answer, or NULL with *stop
 * saying whether another attempt may follow (c->turn_out: the model asked
 * for tools). */
static json_t *attempt(call *c, int *stop)
{
    fr_ctx *cx = c->cx;
    fr_run *run = cx->run;
    fr_resv resv, turn;
    int timeout = 0;
    *stop = STOP_BUDGET;
    if (!start_attempt(c, &resv, &turn, &timeout))
        return NULL;
    fr_request req = {
        c->agent, c->model, c->system.s ? c->system.s : "", c->prompt.s ? c->prompt.s : "",
        c->feedback, c->prev_answer, c->attempts, timeout, c->max_tokens, c->agent->cache,
        FR_OUT_DEFAULT,
        c->history, c->tools_off, c->args, cx->path,
    };
    fr_response r;
    int64_t t0 = fr_wall_ms();
    fr_provider_call(run, &req, &r);
    fr_slot_give(run);
    if (r.unsent) {                /* a stop came while it waited to be sent: no attempt */
        fr_response_free(&r);
        not_sent(c, &resv);
        fr_intr_stopped(cx);
        return NULL;
    }
    check_usage(c, &r);
    fr_charge ch;
    fr_charge_of(c->model, &turn, &r, &ch);
    /* [journal hook] per call/phase trace line: attempt, outcome, usage, latency */
    fr_journal_call_attempt(&c->jh, cx, &req, &r, &ch, t0);
    c->attempts++;
    c->last = r.outcome;
    *stop = GO_ON;
    json_t *v = NULL;
    switch (r.outcome) {
    case FR_ANSWER:
        v = take_answer(c, &r, stop);
        break;
    case FR_BAD_ANSWER:
        set_str(&c->last_error, r.error ? r.error : "unusable answer");
        if (r.bad == FR_BAD_USAGE)
            break;                               /* the server's fault: nothing to tell */
        set_str(&c->feedback, c->last_error);
        set_str(&c->prev_answer, r.raw);
        fr_journal_call_outcome(&c->jh, bad_kind(&r) == FR_BAD_REFUSAL ? "refused"
                                : bad_kind(&r) == FR_BAD_CUT_OFF ? "cut_off" : "unparsable",
                                c->last_error);
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
    case FR_TOOL_CALLS:
        take_turn(c, &r);
        break;
    }
    /* a recorded answer already replaced the hold on disk */
    if (!v)
        fr_journal_call_settle(&c->jh, cx);
    fr_budget_settle(run, &resv, &ch);
    check_over(c, &turn, &ch);
    if (r.outcome == FR_TRANSIENT && c->attempts - c->turn_first <= c->agent->retries)
        fr_backoff(cx, c->attempts - 1, r.retry_after_ms, r.retry_after_asked_ms, r.error);
    /* an answer that ran out of memory after validating is not invalid */
    tally(&c->tally, &r, v || *stop == STOP_FATAL);
    if (r.outcome == FR_TOOL_CALLS && !c->turn_out)
        c->tally.invalid++;                      /* tools asked for past the bound */
    fr_response_free(&r);
    if (fr_journal_stopped(cx)) {  /* this attempt's record or settle failed */
        *stop = STOP_BUDGET;
        return NULL;
    }
    return v;
}

static void call_free(call *c)
{
    json_decref(c->history);
    json_decref(c->turn_out);
    fr_buf_free(&c->system);
    fr_buf_free(&c->prompt);
    fr_free(c->feedback);
    fr_free(c->prev_answer);
    fr_free(c->last_error);
    fr_journal_call_drop(&c->jh);  /* a call that ended before fr_journal_call_end */
}

static size_t schema_bytes(const fr_agent *a, const fr_model *m)
{
    const char *s = strcmp(m->provider, "openai") == 0 ? a->schema_openai : a->schema_anthropic;
    return (s ? strlen(s) : 0) + fr_tools_bytes(a);
}

/* Whether a call of a on m can go in a batch: on a model with a batch API
 * (fr_batch_api), and one request (no tool loop). */
static bool batchable(const fr_agent *a, const fr_model *m)
{
    return a->ntools == 0 && fr_batch_api(m);
}

/* A batch fan-out's answer to this call, taken as its first attempt at the
 * batch price; NULL when there is none or it is invalid (the call goes on
 * with normal attempts, the invalid one's feedback told). */
static json_t *batch_answer(call *c, const char *key, int *stop)
{
    fr_response r;
    if (!fr_batch_take(c->cx->run, c->model, key, &r))
        return NULL;
    fr_model bm;
    fr_batch_prices(c->model, &bm);
    /* what the batch held for it, at the batch price */
    int64_t in = input_estimate(c);
    fr_resv held = { c->cx->phase, fr_hold_usd(&bm, in, c->max_tokens), in + c->max_tokens };
    check_usage(c, &r);
    fr_charge ch;
    fr_charge_of(&bm, &held, &r, &ch);
    c->jh.jc.tier = "batch";
    fr_request req = { c->agent, c->model, c->system.s ? c->system.s : "",
                       c->prompt.s ? c->prompt.s : "", NULL, NULL, 0, 0, c->max_tokens,
                       c->agent->cache, FR_OUT_DEFAULT, NULL, false, c->args, c->cx->path };
    fr_journal_call_attempt(&c->jh, c->cx, &req, &r, &ch, fr_wall_ms());
    fr_budget_charge(c->cx->run, c->cx->phase, &ch);
    check_over(c, &held, &ch);
    c->attempts++;
    json_t *v = NULL;
    if (r.outcome == FR_ANSWER)
        v = take_answer(c, &r, stop);
    else {
        set_str(&c->last_error, r.error ? r.error : "unusable answer");
        if (r.bad != FR_BAD_USAGE) {
            set_str(&c->feedback, c->last_error);
            set_str(&c->prev_answer, r.raw);
        }
    }
    if (!v)
        fr_journal_call_settle(&c->jh, c->cx);
    tally(&c->tally, &r, v != NULL);
    fr_response_free(&r);
    if (*stop != GO_ON)
        *stop = GO_ON;                           /* a bad batch answer is retried normally */
    return v;
}

/* ---- the tool loop ------------------------------------------------------- */

/* The turn's line in the trace: its usage is what the call's totals grew by. */
static void trace_turn(call *c, int turn, const fr_jcall *before, int attempts, int64_t t0,
                       int64_t m0, json_t *made, bool ok)
{
    fr_trace *tr = fr_run_trace(c->cx->run);
    if (!tr)
        return;
    const fr_jcall *now = &c->jh.jc;
    fr_tturn t = {
        c->agent->name, c->cx->run->mock_all ? "mock" : c->model->provider, c->model->api_name,
        c->cx->phase, c->cx->path, c->jh.span, turn, attempts,
        now->tokens_in - before->tokens_in, now->tokens_out - before->tokens_out,
        now->usd - before->usd, t0, fr_now_ms() - m0,
        c->jh.finish[0] ? c->jh.finish : NULL,
        (int)json_array_size(json_object_get(made, "calls")), attempts == 0,
        ok ? NULL : c->jh.error_type[0] ? c->jh.error_type : "error",
    };
    fr_trace_turn(tr, &t);
}

/* Runs the calls of turn `turn` (the model's turn made): their results in
 * the history's form, or NULL when the run must stop (cx's signal set);
 * *detail gets what the journal's row keeps for show beside them: each
 * call's own journal key, time and error type. */
static json_t *run_tools(call *c, json_t *made, int turn, json_t **detail)
{
    json_t *calls = json_object_get(made, "calls");
    int n = (int)json_array_size(calls), left = c->agent->max_tool_calls - c->calls_made;
    fr_toolrun *runs = fr_calloc((size_t)(n > 0 ? n : 1), sizeof *runs);
    if (!runs) {
        fr_oom(c->cx);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        runs[i] = (fr_toolrun){ .call = json_array_get(calls, (size_t)i),
                                .index = c->calls_made + i, .over = i >= left };
    fr_toolloop l = { c->agent, c->jh.jc.site, c->jh.jc.key, c->jh.span, c->where, turn };
    bool ok = fr_tools_run(c->cx, &l, runs, n);
    json_t *res = ok ? json_array() : NULL, *info = ok ? json_array() : NULL;
    for (int i = 0; i < n; i++) {
        json_t *one_info = json_pack("{s:s, s:I, s:s?}", "key", runs[i].key, "ms",
                                     (json_int_t)runs[i].ms, "error_type",
                                     runs[i].error ? runs[i].error_type : NULL);
        if (info && one_info)
            json_array_append(info, one_info);
        json_decref(one_info);
        json_t *tc = runs[i].call;
        json_t *one = res ? json_pack("{s:O, s:O, s:s, s:b}", "id", json_object_get(tc, "id")
                                      ?: json_null(), "name", json_object_get(tc, "name")
                                      ?: json_null(), "content", runs[i].content
                                      ? runs[i].content : "", "error", runs[i].error) : NULL;
        if (res && (!one || json_array_append_new(res, one) != 0)) {
            json_decref(res);
            res = NULL;
            fr_oom(c->cx);
        }
        c->tools_failed += runs[i].error;
        c->tools_run += !runs[i].over;
        fr_free(runs[i].content);
    }
    fr_free(runs);
    json_t *turn_res = res ? json_pack("{s:o}", "results", res) : NULL;
    if (res && !turn_res)
        fr_oom(c->cx);
    *detail = turn_res && info ? json_pack("{s:o}", "calls", info) : NULL;
    if (!*detail)
        json_decref(info);
    return turn_res;
}

/* The execute_tool spans of a turn's calls whose results the journal
 * replayed (no tool ran). */
static void trace_replayed(call *c, json_t *made, json_t *res, int turn)
{
    fr_trace *tr = fr_run_trace(c->cx->run);
    json_t *tc = json_object_get(made, "calls");
    for (size_t i = 0; tr && i < json_array_size(tc); i++) {
        json_t *one = json_array_get(tc, i), *r = json_array_get(json_object_get(res, "results"), i);
        const fr_tool *t = fr_tool_find(c->agent, json_string_value(json_object_get(one, "name")));
        fr_ttool tl = {
            json_string_value(json_object_get(one, "name")),
            json_string_value(json_object_get(one, "id")), t ? t->description : NULL,
            t ? (t->op ? "http" : "agent") : NULL, c->agent->name, c->cx->phase, c->cx->path,
            NULL, c->jh.span, turn, fr_wall_us(), 0,
            json_is_true(json_object_get(r, "error")) ? "error" : NULL, true,
        };
        fr_trace_tool(tr, &tl);
    }
}

/* Adds a turn (the model's, or the tools' results) to the history. */
static bool push_turn(call *c, json_t *t)
{
    char *text = json_dumps(t, JSON_COMPACT);
    c->history_bytes += text ? strlen(text) : 0;
    fr_free(text);
    return json_array_append(c->history, t) == 0;
}

/* One turn: replayed from the journal, or requested (its attempts); the
 * model's turn when it asked for tools (a new reference), else NULL with
 * the answer in *v or the reason to stop in *stop. */
static json_t *one_turn(call *c, int turn, json_t **v, int *stop)
{
    fr_ctx *cx = c->cx;
    int64_t t0 = fr_wall_us(), m0 = fr_now_ms();
    fr_jcall before = c->jh.jc;
    json_t *made = fr_journal_turn_get(&c->jh, cx, turn, 't');
    if (made) {
        trace_turn(c, turn, &before, 0, t0, m0, made, true);
        return made;
    }
    int first = c->turn_first = c->attempts;
    while (!*v && !c->turn_out && *stop == GO_ON &&
           c->attempts - first <= c->agent->retries + c->extra)
        *v = attempt(c, stop);
    c->turns_asked += c->attempts > first;
    made = c->turn_out;
    c->turn_out = NULL;
    if (made)
        fr_journal_turn_put(&c->jh, cx, turn, 't', made, NULL);
    if (made && fr_journal_stopped(cx)) {        /* not journaled: its tools do not run */
        json_decref(made);
        made = NULL;
        *stop = STOP_BUDGET;
    }
    trace_turn(c, turn, &before, c->attempts - first, t0, m0, made, made || *v);
    return made;
}

/* The loop: turns until the answer, the bound, a failure or a budget. */
static json_t *tool_loop(call *c, int *stop)
{
    fr_ctx *cx = c->cx;
    json_t *v = NULL;
    c->history = json_array();
    c->jh.loop = true;
    if (!c->history) {
        set_str(&c->last_error, "out of memory");
        *stop = STOP_FATAL;
        return NULL;
    }
    for (int turn = 0; !v && *stop == GO_ON; turn++) {
        c->tools_off = c->jh.tools_off = c->calls_made >= c->agent->max_tool_calls;
        json_t *made = one_turn(c, turn, &v, stop);
        c->jh.turns++;
        if (!made)
            break;
        int n = (int)json_array_size(json_object_get(made, "calls"));
        json_t *res = fr_journal_turn_get(&c->jh, cx, turn, 'r'), *info = NULL;
        if (res) {
            c->tools_cached += n;
            trace_replayed(c, made, res, turn);
        } else if ((res = run_tools(c, made, turn, &info))) {
            fr_journal_turn_put(&c->jh, cx, turn, 'r', res, info);
            json_decref(info);
            if (fr_journal_stopped(cx)) {
                json_decref(made);
                json_decref(res);
                *stop = STOP_BUDGET;
                break;
            }
        } else {
            json_decref(made);
            *stop = STOP_BUDGET;
            break;
        }
        c->calls_made += n;
        c->jh.tool_calls += n;
        if (c->calls_made > c->agent->max_tool_calls)
            c->calls_made = c->agent->max_tool_calls;
        bool ok = push_turn(c, made) && push_turn(c, res);
        json_decref(made);
        json_decref(res);
        if (!ok) {
            set_str(&c->last_error, "out of memory");
            *stop = STOP_FATAL;
        }
    }
    return v;
}

/* A finished loop's counts, into its phase's stats. */
static void count_loop(call *c)
{
    fr_run *run = c->cx->run;
    pthread_mutex_lock(&run->mu);
    fr_stats *st = fr_stats_of(run, c->cx->phase);
    st->tool_loops++;
    st->tool_turns += c->turns_asked;
    st->tool_calls += c->tools_run;
    st->tool_cached += c->tools_cached;
    st->tool_errors += c->tools_failed;
    st->tool_capped += c->calls_made >= c->agent->max_tool_calls;
    pthread_mutex_unlock(&run->mu);
}

json_t *fr_call(fr_ctx *cx, const fr_agent *a, int site, const fr_model *using,
                json_t *const *args, const char *where)
{
    return fr_call_under(cx, a, site, using, args, where, NULL);
}

json_t *fr_call_under(fr_ctx *cx, const fr_agent *a, int site, const fr_model *using,
                      json_t *const *args, const char *where, const fr_under *u)
{
    call c = { .args = args, .cx = cx, .agent = a, .model = using ? using : a->model, .where = where,
               .max_tokens = a->max_tokens > 0 ? a->max_tokens : 1024, .under = u };
    if (!a->render(cx, args, &c.system, &c.prompt)) {
        call_free(&c);
        return NULL;
    }
    c.schema_bytes = schema_bytes(a, c.model);
    for (int i = 0; a->param_types && i < a->nparams; i++)   /* what must not be shown */
        fr_redact_note(cx->run->redact, args[i], a->param_types[i]);
    cx->seq++;
    /* [journal hook] before any request, ask the journal: a journaled answer
     * for (agent, site, cx->path, cx->seq, hash of system+prompt) is kept in
     * cx's pool and returned here without a request or a reservation. */
    json_t *v = fr_journal_call_begin(&c.jh, cx, a, site, c.model, c.system.s, c.prompt.s, u);
    if (v)
        count_cached(cx->run, cx->phase);
    int stop = GO_ON;
    if (!v && (fr_batch_collecting() || cx->run->batches)) {
        fr_jcall k = c.jh.jc;                    /* the journal's key, journal or not */
        fr_journal_key(&k, c.system.s, c.prompt.s ? c.prompt.s : "");
        if (fr_batch_collecting()) {             /* a batch fan-out's first pass */
            bool ok = !batchable(a, c.model) ||
                      fr_batch_collect(a, c.model, c.system.s, c.prompt.s, k.key, c.max_tokens);
            call_free(&c);
            cx->sig = ok ? FR_SIG_SKIP : FR_SIG_FAIL;   /* the item stops here this pass */
            return NULL;
        }
        if (batchable(a, c.model))
            v = batch_answer(&c, k.key, &stop);
    }
    if (!v && a->ntools > 0)
        v = tool_loop(&c, &stop);
    while (!v && a->ntools == 0 && stop == GO_ON && c.attempts <= a->retries + c.extra)
        v = attempt(&c, &stop);
    bool stopped = stop == STOP_BUDGET;
    if (c.attempts > 0)
        count(cx->run, cx->phase, 1, c.attempts - (a->ntools ? c.turns_asked : 1),
              v || stopped ? 0 : 1, &c.tally);
    if (c.jh.loop)
        count_loop(&c);
    if (!v && !stopped) {
        char *why = fr_redact_text(cx->run->redact, c.last_error ? c.last_error : "no answer");
        fr_fail(cx, where, "agent '%s' (model %s): %s after %d attempt%s", a->name,
                c.model->name, why ? why : "no answer", c.attempts, c.attempts == 1 ? "" : "s");
        fr_free(why);
    }
    if (!v && stop != STOP_BUDGET && c.attempts > 0 && c.last == FR_TRANSIENT)
        fr_count_transient(cx);
    fr_journal_call_end(&c.jh, cx, v);
    call_free(&c);
    return v;
}
