/*
 * fr_budget.c: the run's ledger of hard caps (usd, tokens, time) for the
 * workflow and for each phase, and the per-phase counters of the summary.
 *
 * A call never spends what it has not first reserved.  Before each attempt
 * fr_call holds the attempt's worst case (input estimate plus max_tokens, at
 * the model's price) against the workflow's budget and the current phase's,
 * both checked and held under the one run mutex, so however many attempts
 * run at once, settled + held never passes a cap.  An attempt that does not
 * fit while others hold reservations waits for them to settle (they usually
 * cost less than they hold); with nothing held, it is refused: the budget
 * stops the work.  When the attempt returns,
 * the hold is replaced by the usage the provider reported, each token class
 * (input, output, cache writes, cache reads) at its own price, or, for an
 * answer that came without usage, by the hold itself: never by $0.  Usage above
 * the hold is charged as reported, and stops the run where a usd or tokens cap
 * applies (fr_budget_over): the ledger cannot promise a cap past it.  Time caps are
 * deadlines: no attempt starts after one, and an attempt's timeout is cut to
 * the time left.  A cap < 0 is no cap.
 */
#include "fr_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the budgets the shards share (FLOWRT_REDIS_URL) ----------------------
 *
 * Each attempt's hold is taken here first, as always, then in Redis against
 * every shard's spent and held (fr_redis.c), and settled in both.  When
 * Redis goes, the caps become this shard's: what it spent and holds, plus
 * its share (1/N) of what was left when it last reached Redis. */

static const char RESERVE[] =
    "local usd, tok = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local out = {1}\n"
    "for i = 1, #KEYS do\n"
    "  local f = redis.call('HGETALL', KEYS[i])\n"
    "  local u, t, h = 0, 0, 0\n"
    "  for k = 1, #f, 2 do\n"
    "    local p, v = string.sub(f[k], 1, 2), tonumber(f[k + 1])\n"
    "    if p == 'su' or p == 'hu' then u = u + v end\n"
    "    if p == 'st' or p == 'ht' then t = t + v end\n"
    "    if (p == 'hu' or p == 'ht') and v > 0 then h = h + 1 end\n"
    "  end\n"
    "  local cu, ct = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])\n"
    "  if cu >= 0 and u + usd > cu then return {0, i, 1, u, h} end\n"
    "  if ct >= 0 and t + tok > ct then return {0, i, 2, t, h} end\n"
    "  out[#out + 1] = u\n"
    "  out[#out + 1] = t\n"
    "end\n"
    "for i = 1, #KEYS do\n"
    "  redis.call('HINCRBY', KEYS[i], 'hu:' .. ARGV[1], usd)\n"
    "  redis.call('HINCRBY', KEYS[i], 'ht:' .. ARGV[1], tok)\n"
    "  redis.call('PEXPIRE', KEYS[i], 604800000)\n"
    "end\n"
    "return out\n";

static const char SETTLE[] =
    "for i = 1, #KEYS do\n"
    "  redis.call('HINCRBY', KEYS[i], 'hu:' .. ARGV[1], 0 - tonumber(ARGV[2]))\n"
    "  redis.call('HINCRBY', KEYS[i], 'ht:' .. ARGV[1], 0 - tonumber(ARGV[3]))\n"
    "  redis.call('HINCRBY', KEYS[i], 'su:' .. ARGV[1], ARGV[4])\n"
    "  redis.call('HINCRBY', KEYS[i], 'st:' .. ARGV[1], ARGV[5])\n"
    "end\n"
    "return 1\n";

static const char SET[] =
    "redis.call('HSET', KEYS[1], 'su:' .. ARGV[1], ARGV[2], 'st:' .. ARGV[1], ARGV[3],"
    " 'hu:' .. ARGV[1], 0, 'ht:' .. ARGV[1], 0)\n"
    "redis.call('PEXPIRE', KEYS[1], 604800000)\n"
    "return 1\n";

static struct {
    bool on;                       /* the budgets are shared */
    fr_run *run;                   /* the run (for the fallback) */
    pthread_mutex_t mu;            /* guards seen */
    double seen_usd[2];            /* the last totals Redis gave: [0] the workflow's, */
    int64_t seen_tok[2];           /* [1] the last phase's (seen_phase) */
    int seen_phase;
} SB = { .mu = PTHREAD_MUTEX_INITIALIZER, .seen_phase = -1 };

static long long nano(double usd)
{
    return llround(usd * 1e9);
}

static void key_of(char *buf, size_t cap, int phase)
{
    if (phase < 0)
        snprintf(buf, cap, "flowrt:%s:budget", fr_redis_group());
    else
        snprintf(buf, cap, "flowrt:%s:budget:phase%d", fr_redis_group(), phase);
}

/* Redis went: each cap becomes this shard's spent and held plus 1/N of
 * what was left of it when it last reached Redis. */
static void shared_lost(void)
{
    fr_run *run = SB.run;
    if (!run || !SB.on)
        return;
    double n = fr_shard_count() > 0 ? fr_shard_count() : 1;
    pthread_mutex_lock(&SB.mu);
    double su = SB.seen_usd[0];
    int64_t st = SB.seen_tok[0];
    pthread_mutex_unlock(&SB.mu);
    pthread_mutex_lock(&run->mu);
    SB.on = false;
    fr_budget *b = &run->budget;
    fr_spend *s = &run->wf;
    if (b->usd >= 0) {
        double left = b->usd - su;
        b->usd = s->usd_spent + s->usd_held + (left > 0 ? left / n : 0);
    }
    if (b->tokens >= 0) {
        int64_t left = b->tokens - st;
        b->tokens = s->tok_spent + s->tok_held + (left > 0 ? (int64_t)((double)left / n) : 0);
    }
    for (int i = 0; i < run->prog->nphases; i++) {
        fr_budget *pb = &run->phase_budget[i];
        if (pb->usd >= 0 && pb->usd > b->usd)
            pb->usd = b->usd;
        if (pb->tokens >= 0 && pb->tokens > b->tokens)
            pb->tokens = b->tokens;
    }
    fr_cond_broadcast(&run->budget_cv);
    pthread_mutex_unlock(&run->mu);
}

void fr_budget_shared_start(fr_run *run)
{
    bool cap = run->budget.usd >= 0 || run->budget.tokens >= 0;
    for (int i = 0; i < run->prog->nphases; i++)
        cap = cap || run->phase_budget[i].usd >= 0 || run->phase_budget[i].tokens >= 0;
    if (!fr_shard_on() || !fr_redis_on() || !cap)
        return;                            /* nothing to share */
    SB.run = run;
    SB.on = true;
    fr_redis_on_lost(shared_lost);
    char key[300], shard[16], usd[32], tok[32];
    key_of(key, sizeof key, -1);
    snprintf(shard, sizeof shard, "%d", fr_shard_index());
    pthread_mutex_lock(&run->mu);
    snprintf(usd, sizeof usd, "%lld", nano(run->wf.usd_spent));   /* what the journal counts */
    snprintf(tok, sizeof tok, "%lld", (long long)run->wf.tok_spent);
    pthread_mutex_unlock(&run->mu);
    const char *keys[1] = { key }, *args[3] = { shard, usd, tok };
    long long out;
    int got;
    fr_redis_eval(SET, 1, keys, 3, args, &out, 1, &got);
}

/* A phase opens: its key holds what earlier processes spent in it. */
static void shared_phase(int phase, double usd, int64_t tokens)
{
    if (!SB.on)
        return;
    char key[300], shard[16], u[32], t[32];
    key_of(key, sizeof key, phase);
    snprintf(shard, sizeof shard, "%d", fr_shard_index());
    snprintf(u, sizeof u, "%lld", nano(usd));
    snprintf(t, sizeof t, "%lld", (long long)tokens);
    const char *keys[1] = { key }, *args[3] = { shard, u, t };
    long long out;
    int got;
    fr_redis_eval(SET, 1, keys, 3, args, &out, 1, &got);
}

/* The hold in Redis: 1 taken, 0 refused (stop_at, what, v say why), -1 Redis
 * is gone (the caps are now this shard's). */
static int shared_reserve(fr_ctx *cx, int phase, double usd, int64_t tok, int *stop_at,
                          const char **what, double v[3])
{
    fr_run *run = cx->run;
    char k0[300], k1[300], shard[16], u[32], t[32], c[4][32];
    const char *keys[2] = { k0, k1 }, *args[7] = { shard, u, t, c[0], c[1], c[2], c[3] };
    int nk = phase >= 0 ? 2 : 1;
    key_of(k0, sizeof k0, -1);
    key_of(k1, sizeof k1, phase);
    snprintf(shard, sizeof shard, "%d", fr_shard_index());
    snprintf(u, sizeof u, "%lld", nano(usd));
    snprintf(t, sizeof t, "%lld", (long long)tok);
    for (int i = 0; i < nk; i++) {
        const fr_budget *b = i == 0 ? &run->budget : &run->phase_budget[phase];
        snprintf(c[2 * i], sizeof c[0], "%lld", b->usd >= 0 ? nano(b->usd) : -1LL);
        snprintf(c[2 * i + 1], sizeof c[0], "%lld", (long long)b->tokens);
    }
    for (;;) {
        long long out[5];
        int got;
        if (!SB.on || !fr_redis_eval(RESERVE, nk, keys, 1 + 2 + 2 * nk, args, out, 5, &got))
            return -1;
        if (got >= 1 && out[0] == 1) {
            pthread_mutex_lock(&SB.mu);
            if (got >= 3)
                SB.seen_usd[0] = (double)out[1] / 1e9, SB.seen_tok[0] = out[2];
            pthread_mutex_unlock(&SB.mu);
            return 1;
        }
        if (got < 5)
            return -1;
        int k = (int)out[1] - 1;
        const fr_budget *b = k == 0 ? &run->budget : &run->phase_budget[phase];
        if (out[4] > 0 && !run->stop.hit) {   /* holds anywhere may settle for less */
            fr_sleep_ms(10);
            continue;
        }
        *stop_at = k == 0 ? -1 : phase;
        *what = out[2] == 1 ? "usd" : "tokens";
        v[0] = out[2] == 1 ? (double)out[3] / 1e9 : (double)out[3];
        v[1] = out[2] == 1 ? b->usd : (double)b->tokens;
        v[2] = out[2] == 1 ? usd : (double)tok;
        return 0;
    }
}

static void shared_settle(const fr_resv *r, double usd, int64_t tok)
{
    if (!SB.on)
        return;
    char k0[300], k1[300], shard[16], hu[32], ht[32], su[32], st[32];
    const char *keys[2] = { k0, k1 }, *args[5] = { shard, hu, ht, su, st };
    key_of(k0, sizeof k0, -1);
    key_of(k1, sizeof k1, r->phase);
    snprintf(shard, sizeof shard, "%d", fr_shard_index());
    snprintf(hu, sizeof hu, "%lld", nano(r->usd));
    snprintf(ht, sizeof ht, "%lld", (long long)r->tokens);
    snprintf(su, sizeof su, "%lld", nano(usd));
    snprintf(st, sizeof st, "%lld", (long long)tok);
    long long out;
    int got;
    fr_redis_eval(SETTLE, r->phase >= 0 ? 2 : 1, keys, 5, args, &out, 1, &got);
}

static void spend_init(fr_spend *s, const fr_budget *b, int64_t from_ms)
{
    memset(s, 0, sizeof *s);
    s->deadline_ms = b->time_ms >= 0 ? from_ms + b->time_ms : -1;
}

/* "30m", "90s", "1h30m", "500ms": milliseconds, or -1 if s is not a duration. */
int64_t fr_parse_duration(const char *s)
{
    int64_t total = 0;
    if (!*s)
        return -1;
    while (*s) {
        if (*s < '0' || *s > '9')
            return -1;
        int64_t n = 0;
        while (*s >= '0' && *s <= '9') {
            if (n > INT64_MAX / 10 - 10)
                return -1;
            n = n * 10 + (*s++ - '0');
        }
        int64_t unit = strncmp(s, "ms", 2) == 0 ? 1 : *s == 's' ? 1000 : *s == 'm' ? 60000
                       : *s == 'h' ? 3600000 : -1;
        if (unit < 0 || n > INT64_MAX / unit - total)
            return -1;
        total += n * unit;
        s += unit == 1 ? 2 : 1;
    }
    return total;
}

/* One key's parameter value into *out (null: no cap); false with a message
 * for a value that is no cap. */
static bool param_cap(const fr_program *p, json_t *const *args, int k, int which,
                      double *out)
{
    json_t *v = args[k - 1];
    const char *name = p->params[k - 1].name;
    if (!v || json_is_null(v)) {
        *out = -1;
        return true;
    }
    if (which == 2 && json_is_string(v)) {
        int64_t ms = fr_parse_duration(json_string_value(v));
        if (ms <= 0) {
            fprintf(stderr, "error: parameter '%s' sets a time budget: expected a duration such"
                    " as 90s, 30m or 2h, got '%s'\n", name, json_string_value(v));
            return false;
        }
        *out = (double)ms;
        return true;
    }
    double d = json_number_value(v) * (which == 2 ? 1000 : 1);
    if (!(d > 0)) {
        fprintf(stderr, "error: parameter '%s' sets a %s budget: it must be more than 0, got "
                "%g\n", name, which == 0 ? "usd" : which == 1 ? "tokens" : "time",
                json_number_value(v));
        return false;
    }
    *out = d;
    return true;
}

/* A declared budget with its parameters' values in. */
static bool resolve(const fr_program *p, json_t *const *args, const fr_budget *decl,
                    fr_budget *b)
{
    double v;
    *b = *decl;
    if (decl->usd_param) {
        if (!param_cap(p, args, decl->usd_param, 0, &v))
            return false;
        b->usd = v;
    }
    if (decl->tokens_param) {
        if (!param_cap(p, args, decl->tokens_param, 1, &v))
            return false;
        b->tokens = v < 0 ? -1 : (int64_t)v;
    }
    if (decl->time_param) {
        if (!param_cap(p, args, decl->time_param, 2, &v))
            return false;
        b->time_ms = v < 0 ? -1 : (int64_t)v;
    }
    b->usd_param = b->tokens_param = b->time_param = 0;
    return true;
}

/* A phase's cap above the workflow's is clipped to it; bit k of the result
 * says key k (usd, tokens, time) was. */
static unsigned clip(fr_budget *ph, const fr_budget *wf)
{
    unsigned bits = 0;
    if (wf->usd >= 0 && ph->usd > wf->usd)
        ph->usd = wf->usd, bits |= 1;
    if (wf->tokens >= 0 && ph->tokens > wf->tokens)
        ph->tokens = wf->tokens, bits |= 2;
    if (wf->time_ms >= 0 && ph->time_ms > wf->time_ms)
        ph->time_ms = wf->time_ms, bits |= 4;
    return bits;
}

const char *fr_cap_text(const fr_budget *b, int k, char *buf, size_t cap)
{
    if (k == 0)
        snprintf(buf, cap, b->usd < 0 ? "none" : "$%.4f", b->usd);
    else if (k == 1)
        snprintf(buf, cap, b->tokens < 0 ? "none" : "%lld", (long long)b->tokens);
    else if (b->time_ms < 0)
        snprintf(buf, cap, "none");
    else
        snprintf(buf, cap, "%.1f s", (double)b->time_ms / 1000);
    return buf;
}

/* A shard without a shared budget takes its share of each money and token
 * cap (time is each shard's own). */
static void share(fr_budget *b)
{
    double s = fr_shard_share();
    if (s >= 1)
        return;
    if (b->usd >= 0)
        b->usd *= s;
    if (b->tokens >= 0)
        b->tokens = (int64_t)((double)b->tokens * s);
}

int fr_budget_setup(fr_run *run, const fr_budget *cli, json_t *const *args)
{
    const fr_program *p = run->prog;
    if (!resolve(p, args, &p->budget, &run->budget))
        return 2;
    if (cli->usd >= 0)
        run->budget.usd = cli->usd, run->cli_caps |= 1;
    if (cli->tokens >= 0)
        run->budget.tokens = cli->tokens, run->cli_caps |= 2;
    if (cli->time_ms >= 0)
        run->budget.time_ms = cli->time_ms, run->cli_caps |= 4;
    share(&run->budget);
    for (int i = 0; i < p->nphases; i++) {
        if (!resolve(p, args, &p->phases[i].budget, &run->phase_budget[i]))
            return 2;
        share(&run->phase_budget[i]);
        run->phase_declared[i] = run->phase_budget[i];
        run->clipped[i] = (unsigned char)clip(&run->phase_budget[i], &run->budget);
    }
    spend_init(&run->wf, &run->budget, run->start_ms);
    return 0;
}

bool fr_budget_init(fr_run *run)
{
    const fr_program *p = run->prog;
    run->start_ms = fr_now_ms();
    run->budget = p->budget;
    spend_init(&run->wf, &p->budget, run->start_ms);
    run->ph = fr_calloc((size_t)p->nphases + 1, sizeof *run->ph);
    run->stats = fr_calloc((size_t)p->nphases + 1, sizeof *run->stats);
    run->phase_budget = fr_calloc((size_t)p->nphases + 1, sizeof *run->phase_budget);
    run->phase_declared = fr_calloc((size_t)p->nphases + 1, sizeof *run->phase_declared);
    run->clipped = fr_calloc((size_t)p->nphases + 1, 1);
    if (!run->ph || !run->stats || !run->phase_budget || !run->phase_declared || !run->clipped)
        return false;
    for (int i = 0; i < p->nphases; i++) {
        run->ph[i].deadline_ms = -1;
        run->phase_budget[i] = p->phases[i].budget;
    }
    return true;
}

void fr_budget_free(fr_run *run)
{
    fr_free(run->ph);
    fr_free(run->stats);
    fr_free(run->phase_budget);
    fr_free(run->phase_declared);
    fr_free(run->clipped);
    fr_free(run->over_desc);
    run->over_desc = NULL;
    run->phase_declared = NULL;
    run->phase_budget = NULL;
    run->clipped = NULL;
    run->ph = NULL;
    run->stats = NULL;
}

fr_stats *fr_stats_of(fr_run *run, int phase)
{
    if (phase < 0 || phase >= run->prog->nphases)
        return &run->stats[0];
    return &run->stats[phase + 1];
}

static const char *phase_name(fr_run *run, int phase)
{
    return phase >= 0 ? run->prog->phases[phase].name : "";
}

/* Records the first budget that stopped work (run->mu held). */
static void note_stop(fr_run *run, int phase, const char *what, double spent,
                      double cap, double need)
{
    if (run->stop.hit)
        return;
    run->stop = (fr_stop){ true, phase, what, spent, cap, need };
}

/* Sets cx's signal to FR_SIG_BUDGET with a short message; returns NULL. */
static void *budget_sig(fr_ctx *cx, int phase, const char *what)
{
    if (strcmp(what, "usage") == 0)
        fr_fail(cx, NULL, "stopped: a call reported more usage than it held");
    else if (phase >= 0)
        fr_fail(cx, NULL, "phase '%s' %s budget spent", phase_name(cx->run, phase), what);
    else
        fr_fail(cx, NULL, "workflow %s budget spent", what);
    cx->sig = FR_SIG_BUDGET;
    return NULL;
}

/* fits: settled + held + the new hold stays within each cap of b.  On no,
 * *what names the cap and spent/cap/need say by how much. */
static bool fits(const fr_spend *s, const fr_budget *b, double usd, int64_t tok,
                 const char **what, double out[3])
{
    if (b->usd >= 0 && s->usd_spent + s->usd_held + usd > b->usd) {
        *what = "usd";
        out[0] = s->usd_spent + s->usd_held, out[1] = b->usd, out[2] = usd;
        return false;
    }
    if (b->tokens >= 0 && s->tok_spent + s->tok_held + tok > b->tokens) {
        *what = "tokens";
        out[0] = (double)(s->tok_spent + s->tok_held), out[1] = (double)b->tokens;
        out[2] = (double)tok;
        return false;
    }
    return true;
}

static double or_else(double v, double dflt)
{
    return v >= 0 ? v : dflt;
}

double fr_price(const fr_model *m, int64_t in, int64_t out, int64_t cache_read,
                int64_t cache_write, int64_t cache_write_1h)
{
    double w5 = or_else(m->usd_per_mtok_cache_write, m->usd_per_mtok_in);
    double w1 = or_else(m->usd_per_mtok_cache_write_1h, w5);
    double rd = or_else(m->usd_per_mtok_cache_read, m->usd_per_mtok_in);
    return ((double)in * m->usd_per_mtok_in + (double)out * m->usd_per_mtok_out +
            (double)cache_read * rd + (double)cache_write * w5 + (double)cache_write_1h * w1) / 1e6;
}

/* The worst case of a hold: every input token at its dearest class. */
static double price(const fr_model *m, int64_t in, int64_t out)
{
    double w5 = or_else(m->usd_per_mtok_cache_write, m->usd_per_mtok_in);
    double dear = w5 > m->usd_per_mtok_in ? w5 : m->usd_per_mtok_in;
    return ((double)in * dear + (double)out * m->usd_per_mtok_out) / 1e6;
}

double fr_hold_usd(const fr_model *m, int64_t in, int64_t out)
{
    return price(m, in, out);
}

void fr_charge_of(const fr_model *m, const fr_resv *r, const fr_response *resp, fr_charge *c)
{
    memset(c, 0, sizeof *c);
    if (!resp->usage) {
        /* a provider that answered without usage (or with usage no request
         * could cost: FR_BAD_USAGE, counted as such) still billed it: charge
         * the hold */
        bool billed = resp->http_status == 200 || resp->outcome == FR_ANSWER ||
                      resp->outcome == FR_BAD_ANSWER;
        if (billed) {
            c->usd = r->usd;
            c->in = r->tokens;
        }
        c->held = billed && resp->bad != FR_BAD_USAGE;
        return;
    }
    int64_t w = resp->cache_write_tokens + resp->cache_write_1h_tokens;
    c->in = resp->input_tokens + resp->cache_read_tokens + w;
    c->out = resp->output_tokens;
    c->cache_read = resp->cache_read_tokens;
    c->cache_write = w;
    c->usd = fr_price(m, resp->input_tokens, resp->output_tokens, resp->cache_read_tokens,
                      resp->cache_write_tokens, resp->cache_write_1h_tokens);
    /* against the same input at the plain price */
    c->saved = fr_price(m, c->in, c->out, 0, 0, 0) - c->usd;
}

static void hold(fr_spend *s, double usd, int64_t tok)
{
    s->usd_held += usd, s->tok_held += tok;
    s->holds++;
}

static void settle_one(fr_spend *s, const fr_resv *r, double usd, int64_t tok)
{
    s->usd_held -= r->usd, s->tok_held -= r->tokens;
    if (--s->holds == 0)
        s->usd_held = 0, s->tok_held = 0;     /* no rounding left behind */
    s->usd_spent += usd, s->tok_spent += tok;
}

bool fr_budget_reserve(fr_ctx *cx, const fr_model *m, int64_t in_tokens,
                       int64_t out_tokens, fr_resv *r)
{
    fr_run *run = cx->run;
    const fr_program *p = run->prog;
    int phase = cx->phase >= 0 && cx->phase < p->nphases ? cx->phase : -1;
    double usd = price(m, in_tokens, out_tokens), v[3] = { 0, 0, 0 };
    int64_t tok = in_tokens + out_tokens;
    const char *what = NULL;
    int stop_at = -2;

    pthread_mutex_lock(&run->mu);
    for (;;) {
        if (fr_interrupted(run)) {  /* Ctrl-C: no call starts (FR_SIG_STOP) */
            pthread_mutex_unlock(&run->mu);
            return !fr_intr_stopped(cx);
        }
        if (run->stop.hit) {       /* a budget stopped the run: no request starts anywhere
                                      (a smaller one might still fit; the run is ending) */
            stop_at = run->stop.phase, what = run->stop.what;
            break;
        }
        fr_spend *s = NULL;
        if (!fits(&run->wf, &run->budget, usd, tok, &what, v))
            stop_at = -1, s = &run->wf;
        else if (phase >= 0 && !fits(&run->ph[phase], &run->phase_budget[phase], usd, tok,
                                     &what, v))
            stop_at = phase, s = &run->ph[phase];
        if (!s || s->holds == 0)
            break;
        /* others' holds may settle for less than they hold: wait and see */
        stop_at = -2;
        fr_cond_wait(&run->budget_cv, &run->mu);
    }
    if (stop_at != -2) {
        note_stop(run, stop_at, what, v[0], v[1], v[2]);
    } else {
        hold(&run->wf, usd, tok);
        if (phase >= 0)
            hold(&run->ph[phase], usd, tok);
    }
    pthread_mutex_unlock(&run->mu);
    if (stop_at != -2)
        return budget_sig(cx, stop_at, what) != NULL;
    *r = (fr_resv){ phase, usd, tok };
    if (SB.on) {
        int sr = shared_reserve(cx, phase, usd, tok, &stop_at, &what, v);
        if (sr == 1)
            return true;
        pthread_mutex_lock(&run->mu);        /* the local hold goes */
        settle_one(&run->wf, r, 0, 0);
        if (phase >= 0)
            settle_one(&run->ph[phase], r, 0, 0);
        if (sr == 0)
            note_stop(run, stop_at, what, v[0], v[1], v[2]);
        fr_cond_broadcast(&run->budget_cv);
        pthread_mutex_unlock(&run->mu);
        if (sr == 0)
            return budget_sig(cx, stop_at, what) != NULL;
        return fr_budget_reserve(cx, m, in_tokens, out_tokens, r); /* on this shard's caps */
    }
    return true;
}

void fr_budget_settle(fr_run *run, const fr_resv *r, const fr_charge *c)
{
    int64_t tok = c->in + c->out;
    pthread_mutex_lock(&run->mu);
    settle_one(&run->wf, r, c->usd, tok);
    if (r->phase >= 0)
        settle_one(&run->ph[r->phase], r, c->usd, tok);
    fr_stats *st = fr_stats_of(run, r->phase);
    st->tokens_in += c->in, st->tokens_out += c->out, st->usd += c->usd;
    st->cache_read += c->cache_read, st->cache_write += c->cache_write;
    st->usd_saved += c->saved;
    st->no_usage += c->held;
    fr_cond_broadcast(&run->budget_cv);
    pthread_mutex_unlock(&run->mu);
    shared_settle(r, c->usd, tok);
}

void fr_budget_charge(fr_run *run, int phase, const fr_charge *c)
{
    int64_t tok = c->in + c->out;
    if (phase >= run->prog->nphases)
        phase = -1;
    pthread_mutex_lock(&run->mu);
    run->wf.usd_spent += c->usd, run->wf.tok_spent += tok;
    if (phase >= 0)
        run->ph[phase].usd_spent += c->usd, run->ph[phase].tok_spent += tok;
    if (SB.on) {                             /* paid already (a batch's answer) */
        fr_resv none = { phase, 0, 0 };
        pthread_mutex_unlock(&run->mu);
        shared_settle(&none, c->usd, tok);
        pthread_mutex_lock(&run->mu);
    }
    fr_stats *st = fr_stats_of(run, phase);
    st->tokens_in += c->in, st->tokens_out += c->out, st->usd += c->usd;
    st->cache_read += c->cache_read, st->cache_write += c->cache_write;
    st->usd_saved += c->saved;
    pthread_mutex_unlock(&run->mu);
}

bool fr_budget_above(const fr_resv *r, const fr_charge *c)
{
    return c->in + c->out > r->tokens || c->usd > r->usd * (1 + 1e-9) + 1e-12;
}

static bool usage_capped(const fr_budget *b)
{
    return b->usd >= 0 || b->tokens >= 0;
}

void fr_budget_over(fr_ctx *cx, const fr_resv *r, const fr_charge *c, const char *desc)
{
    fr_run *run = cx->run;
    int phase = r->phase >= 0 && r->phase < run->prog->nphases ? r->phase : -1;
    pthread_mutex_lock(&run->mu);
    fr_stats_of(run, phase)->over_hold++;
    /* the cap it could pass: the workflow's, else its phase's */
    int whose = usage_capped(&run->budget) ? -1
                : phase >= 0 && usage_capped(&run->phase_budget[phase]) ? phase : -2;
    bool first = !run->over_desc;
    if (first)
        run->over_desc = fr_strdup(desc);
    if (whose != -2) {
        const fr_budget *b = whose < 0 ? &run->budget : &run->phase_budget[whose];
        const fr_spend *s = whose < 0 ? &run->wf : &run->ph[whose];
        bool usd = b->usd >= 0;
        note_stop(run, whose, "usage", usd ? s->usd_spent : (double)s->tok_spent,
                  usd ? b->usd : (double)b->tokens, 0);
    }
    bool progress = run->progress;
    pthread_mutex_unlock(&run->mu);
    if (first)
        fprintf(stderr, "%s%s: %s; %s\n", progress ? "\r\033[K" : "",
                whose != -2 ? "error" : "warning", desc,
                whose != -2 ? "no request starts after it, since no budget can be kept "
                "against usage above what was held" : "charged as reported");
}

/* The deadline nearest now of the workflow's and cx's phase's, and whose. */
static int64_t nearest_deadline(fr_ctx *cx, int *whose)
{
    fr_run *run = cx->run;
    int64_t d = run->wf.deadline_ms;
    *whose = -1;
    if (cx->phase >= 0 && cx->phase < run->prog->nphases) {
        int64_t pd = run->ph[cx->phase].deadline_ms;
        if (pd >= 0 && (d < 0 || pd < d))
            d = pd, *whose = cx->phase;
    }
    return d;
}

int64_t fr_budget_deadline(fr_ctx *cx)
{
    int whose;
    return nearest_deadline(cx, &whose);
}

int64_t fr_budget_time_left(fr_ctx *cx)
{
    int whose;
    int64_t d = nearest_deadline(cx, &whose);
    return d < 0 ? INT64_MAX : d - fr_now_ms();
}

/* The time spent is what the cap counts: the deadline is the cap after the
 * clock's start, moved earlier by the time earlier processes of a resumed
 * run spent, so cap - (deadline - now) counts those too. */
void *fr_budget_time_stop(fr_ctx *cx)
{
    fr_run *run = cx->run;
    int whose;
    int64_t deadline = nearest_deadline(cx, &whose);
    const fr_budget *b = whose >= 0 ? &run->phase_budget[whose] : &run->budget;
    double spent = (double)(b->time_ms - (deadline - fr_now_ms()));
    pthread_mutex_lock(&run->mu);
    note_stop(run, whose, "time", spent, (double)b->time_ms, 0);
    pthread_mutex_unlock(&run->mu);
    return budget_sig(cx, whose, "time");
}

/* A phase opens its budget: its time cap starts now, what earlier processes
 * of a resumed run spent in it counts (prior_*), and it cannot start once the
 * workflow's budget is spent. */
bool fr_budget_phase_open(fr_ctx *cx, int phase, double prior_usd, int64_t prior_tokens,
                          int64_t prior_active_ms)
{
    fr_run *run = cx->run;
    const fr_program *p = run->prog;
    int64_t now = fr_now_ms();
    pthread_mutex_lock(&run->mu);
    fr_stats_of(run, phase)->start_ms = now;
    if (phase >= 0 && phase < p->nphases) {
        fr_spend *s = &run->ph[phase];
        spend_init(s, &run->phase_budget[phase], now);
        s->usd_spent += prior_usd;
        s->tok_spent += prior_tokens;
        pthread_mutex_unlock(&run->mu);
        shared_phase(phase, prior_usd, prior_tokens);
        pthread_mutex_lock(&run->mu);
        if (s->deadline_ms >= 0)       /* its time cap counts earlier processes */
            s->deadline_ms -= prior_active_ms;
    }
    const char *what = NULL;
    const fr_budget *wb = &run->budget;
    if (wb->usd >= 0 && run->wf.usd_spent >= wb->usd)
        what = "usd";
    else if (wb->tokens >= 0 && run->wf.tok_spent >= wb->tokens)
        what = "tokens";
    if (what)
        note_stop(run, -1, what, what[0] == 'u' ? run->wf.usd_spent : (double)run->wf.tok_spent,
                  what[0] == 'u' ? wb->usd : (double)wb->tokens, 0);
    pthread_mutex_unlock(&run->mu);
    if (what)
        return budget_sig(cx, -1, what) != NULL;
    if (run->wf.deadline_ms >= 0 && now >= run->wf.deadline_ms)
        return fr_budget_time_stop(cx) != NULL;
    return true;
}
