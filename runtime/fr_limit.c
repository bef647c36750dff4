/*
 * fr_limit.c: the shared rate limiter of one endpoint.
 *
 * Endpoints sharing a base URL and key variable share one limiter, so a
 * fan-out is paced as a whole.  Every request waits here for its send slot.
 * Slots are spaced evenly, with no burst, in four dimensions at once, each a
 * GCRA (a "theoretical arrival time" that a send pushes on by its cost over
 * the dimension's rate):
 *   requests      1 per request, at the lowest of: a model's `rpm:`, the
 *                 provider's stated request limit (anthropic-ratelimit-
 *                 requests-limit, x-ratelimit-limit-requests), both at SAFETY
 *                 of the limit so that jitter on the way does not cross it;
 *                 the rate learned from 429s; an http operation's `rps:`;
 *   tokens        input estimate + max_tokens per request, at `tpm:` and at
 *                 OpenAI's x-ratelimit-limit-tokens (OpenAI counts max_tokens
 *                 when a request starts);
 *   input tokens  the input estimate, at Anthropic's anthropic-ratelimit-
 *                 input-tokens-limit (its ITPM);
 *   output tokens max_tokens, at anthropic-ratelimit-output-tokens-limit
 *                 (OTPM is estimated from max_tokens when a request starts).
 * A send a little late (a slow wake-up) is made up for by the next ones, up
 * to CATCH_UP behind the schedule, but two sends are never closer than
 * halfway between the pacing rate and the stated limit.
 *
 * The headers' remaining and reset say more: a dimension with nothing left
 * holds every send until the reset (for requests, at most one interval after
 * the request that said so was sent: the providers refill continuously, a
 * token bucket, and Anthropic states its reset in whole seconds), and a
 * server that states what remains but no limit gets its remainder spread
 * evenly until the reset.
 *
 * A 429 does not pause everyone for its whole retry-after (only the request
 * that got it waits, in fr_call's backoff).  Under a stated or declared
 * limit, one 429 among the last 64 answers is taken for the jitter of the
 * way there (two requests sent a slot apart that arrived closer): nothing
 * changes.  Otherwise the request rate becomes LEARN
 * of the rate at which the 429 came (the pacing rate then, or the sends per
 * second lately when nothing paced them: a guess, doubled each second after
 * HOLD until a 429 comes at a paced rate), and that rate is remembered: the
 * learned rate holds for HOLD, then closes in on the 429's rate without
 * reaching it, and passes it only after QUIET seconds without another 429,
 * slowly.  So a fan-out settles just under the rate the server takes, even
 * when the way there jitters, instead of stopping and probing past the
 * limit again.  A 429 for a request sent before the last change of rate (a
 * cut, or a newly stated limit) changes nothing: the change answered it.
 * Another status with a retry-after (503, 529) pauses everyone without
 * touching the rate: overload is not a rate limit.
 *
 * Slow start: with no limit known (no rpm:, tpm: or rps:), START_BURST
 * requests go at once and the rest at START_RATE a second until the
 * endpoint's first answer, so a fan-out of a thousand does not open with a
 * thousand requests against a limit one answer would have stated, nor wait
 * idle for an answer that takes seconds.
 *
 * It knows nothing of HTTP: fr_http.c asks for a slot before each request and
 * tells what came back.  Time comes from a clock that tests may replace
 * (fr_limit_clock), with fr_limit_try as the non-blocking core of
 * fr_limit_acquire, so that tests/tools/rt_limit.c checks all of the above
 * without a network or a wall clock.
 */
#include "fr_internal.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

#define NS 1000000000LL
#define SAFETY 0.95                /* pace at this share of a stated limit */
#define SHARED 0.90                /* ... and the schedule shared through Redis at this */
#define CATCH_UP_NS (50 * 1000000LL) /* sends behind the schedule by up to this catch up */
#define LEARN 0.95                 /* after a 429: this share of the rate it came at */
#define HOLD_NS NS                 /* the learned rate holds this long (the 429's retry-after) */
#define TAU 4.0                    /* then closes in on the 429's rate, e-folding in TAU s */
#define QUIET 10.0                 /* after this long without a 429 it may pass that rate */
#define GROW_PAST 0.01             /* by this share of it a second */
#define MIN_RATE 0.5               /* never paces slower (req/s) */
#define START_BURST 4              /* no limit known: requests at once before the first answer */
#define START_RATE 10.0            /* and the rest a second until it */
#define RING 256                   /* recent send times, for the rate of an unpaced 429 */

enum { D_REQ, D_TOK, D_IN, D_OUT, ND };

typedef struct dim {
    double decl;                   /* declared (rpm:, tpm:) per second, 0 none */
    double stated;                 /* the provider's stated limit per second, 0 none */
    double spread;                 /* remaining / time to reset, when no limit is stated */
    int64_t tat;                   /* the next send slot on the schedule (monotonic ns) */
    int64_t floor;                 /* and never before this: the stated limit itself */
    double last;                   /* the last request's cost */
} dim;

struct fr_limiter {
    struct fr_limiter *next, *prev; /* every limiter, for fr_limit_stop (under reg_mu) */
    pthread_mutex_t mu;            /* guards the fields below */
    fr_cond cv;                    /* waiters for a send slot (fibers park) */
    bool sleeper;                  /* one waiter sleeps until the next slot; the rest wait on cv */
    int64_t (*now)(void);          /* the clock (monotonic ns) */
    dim d[ND];                     /* requests, tokens, input tokens, output tokens */
    double cap;                    /* an operation's rps:, 0 none */
    char *name;                    /* its schedule's name in Redis (FLOWRT_REDIS_URL), or NULL */
    double learned;                /* the request rate set by the last 429, 0 none */
    double rate_429;               /* the rate that 429 came at */
    bool measured;                 /* a pacing rate (else a guess from unpaced sends) */
    int64_t cut_ns;                /* when */
    int64_t changed_ns;            /* the request rate last changed (a cut, a stated limit) */
    int64_t pause_ns;              /* nobody sends before this (an overload's retry-after) */
    bool answered;                 /* an answer came (the slow start is over) */
    uint64_t answers;              /* answers since the last change, a bit set for each 429 */
    int64_t ring[RING];            /* the last sends' times */
    unsigned nsent;                /* sends so far (ring index) */
};

/* Every limiter, so that a stop wakes their waiters; and the stop. */
static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static fr_limiter *reg_head;
static int stopped;                /* atomic: fr_limit_stop was called */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

/* The learned rate at t: LEARN of the 429's rate for HOLD, then closing in
 * on the 429's rate (never reaching it), and past it only after QUIET. */
static double learned_at(const fr_limiter *l, int64_t t)
{
    if (l->learned <= 0)
        return 0;
    double s = (double)(t - l->cut_ns - HOLD_NS) / NS;
    if (s <= 0)
        return l->learned;
    if (!l->measured)              /* a guess from unpaced sends: find the rate */
        return l->learned * pow(2, s);
    double past = s > QUIET ? (s - QUIET) * GROW_PAST : 0;
    return l->rate_429 * (1 + past) - (l->rate_429 - l->learned) * exp(-s / TAU);
}

/* The lowest of the positive rates a and b (0: neither). */
static double lowest(double a, double b)
{
    return a <= 0 ? b : b <= 0 || a < b ? a : b;
}

/* A dimension's stated and declared limits, or 0 when it has none. */
static double dim_limit(const fr_limiter *l, const dim *d)
{
    return lowest(d->decl, d->stated) * fr_shard_share();
}

/* Dimension i's pacing rate at t (per second), 0: not paced. */
static double dim_rate(const fr_limiter *l, int i, int64_t t)
{
    const dim *d = &l->d[i];
    double r = dim_limit(l, d) * SAFETY;
    if (r <= 0)
        r = d->spread;
    if (i == D_REQ)
        r = lowest(lowest(r, learned_at(l, t)), l->cap * fr_shard_share());
    return r;
}

/* Whether any limit is known before the first answer. */
static bool known(const fr_limiter *l)
{
    for (int i = 0; i < ND; i++)
        if (dim_limit(l, &l->d[i]) > 0)
            return true;
    return l->cap > 0;
}

/* The earliest time the next request may go (at t). */
/* The requests a second all dimensions allow at t (tokens at the last
 * request's costs), 0: not paced. */
static double req_rate(const fr_limiter *l, int64_t t)
{
    double r = dim_rate(l, D_REQ, t);
    for (int i = D_TOK; i < ND; i++) {
        double ri = dim_rate(l, i, t);
        if (ri > 0 && l->d[i].last > 0)
            r = lowest(r, ri / l->d[i].last);
    }
    return r;
}

static int64_t slot(fr_limiter *l, int64_t t0)
{
    /* slow start: with no limit known, START_BURST requests at once, then
     * START_RATE a second until the endpoint's first answer */
    if (!l->answered && !known(l) && l->nsent >= START_BURST) {
        int64_t next = l->ring[(l->nsent - 1) % RING] + (int64_t)(NS / START_RATE);
        if (t0 < next)
            return next;
    }
    int64_t t = l->pause_ns;
    for (int i = 0; i < ND; i++) {
        if (l->d[i].tat > t)
            t = l->d[i].tat;
        if (l->d[i].floor > t)
            t = l->d[i].floor;
    }
    return t;
}

/* Sends per second over the last second (the ring's times), for a 429
 * that came while nothing paced the sends. */
static double recent_rate(const fr_limiter *l, int64_t t)
{
    unsigned n = l->nsent < RING ? l->nsent : RING, k = 0;
    while (k < n && t - l->ring[(l->nsent - 1 - k) % RING] < NS)
        k++;
    return k;
}

/* Takes the slot at t for a request of the given costs. */
static void take(fr_limiter *l, int64_t t, int64_t in, int64_t out)
{
    const double cost[ND] = { 1, (double)(in + out), (double)in, (double)out };
    for (int i = 0; i < ND; i++) {
        double r = dim_rate(l, i, t);
        dim *d = &l->d[i];
        d->last = cost[i];
        if (r <= 0 || cost[i] <= 0)
            continue;
        int64_t iv = (int64_t)(cost[i] / r * NS);
        /* sends a little late (a slow wake-up) are made up for by the next
         * ones, up to CATCH_UP behind the schedule, but two sends are never
         * closer than the stated limit allows */
        double lim = dim_limit(l, d);
        d->tat = (t - d->tat <= CATCH_UP_NS ? d->tat : t) + iv;
        d->floor = t + (lim > r ? (int64_t)(cost[i] / ((lim + r) / 2) * NS) : iv);
    }
    l->ring[l->nsent++ % RING] = t;
}

int64_t fr_limit_try(fr_limiter *l, int64_t in_tokens, int64_t out_tokens)
{
    pthread_mutex_lock(&l->mu);
    int64_t t = l->now(), s = slot(l, t);
    if (t >= s)
        take(l, t, in_tokens, out_tokens);
    pthread_mutex_unlock(&l->mu);
    return t >= s ? 0 : s - t;
}

/* Waits for a send slot; returns the send time.  Slots are not reserved
 * ahead (a rate that changes meanwhile applies at once): one waiter sleeps
 * until the next slot and takes it, then wakes one other to sleep for the
 * following one, so a thousand waiters cost one wake-up per request. */
int64_t fr_limit_acquire(fr_limiter *l, int64_t in_tokens, int64_t out_tokens)
{
    pthread_mutex_lock(&l->mu);
    for (;;) {
        if (__atomic_load_n(&stopped, __ATOMIC_ACQUIRE)) {
            fr_cond_broadcast(&l->cv);
            pthread_mutex_unlock(&l->mu);
            return -1;             /* a stop: the request never leaves */
        }
        int64_t now = l->now(), t = slot(l, now);
        if (now >= t) {
            take(l, now, in_tokens, out_tokens);
            double rate[ND], cost[ND] = { 1, (double)(in_tokens + out_tokens),
                                          (double)in_tokens, (double)out_tokens };
            /* the shared schedule runs at SHARED of the limits stated or
             * declared (sends from other machines cannot be kept apart by
             * this one's floor), not at a rate this process learned from
             * 429s: those come of the other processes' jitter as much as
             * of its own; without a limit, at what this one paces */
            for (int i = 0; i < ND; i++)
                rate[i] = dim_limit(l, &l->d[i]) > 0 ? dim_limit(l, &l->d[i]) * SHARED
                          : dim_rate(l, i, now);
            fr_cond_signal(&l->cv);
            pthread_mutex_unlock(&l->mu);
            /* with a shared schedule, the slot every process agrees on */
            int64_t wait_us = l->name && fr_redis_on() ? fr_redis_slot(l->name, rate, cost) : 0;
            if (wait_us <= 0)
                return now;
            fr_sleep_ms((wait_us + 999) / 1000);
            return l->now();
        }
        if (l->sleeper) {
            fr_cond_wait(&l->cv, &l->mu);
            continue;
        }
        l->sleeper = true;
        fr_cond_timedwait(&l->cv, &l->mu, t);
        l->sleeper = false;
    }
}

void fr_limit_pause(fr_limiter *l, int retry_after_ms)
{
    pthread_mutex_lock(&l->mu);
    int64_t until = l->now() + retry_after_ms * 1000000LL;
    if (retry_after_ms > 0 && until > l->pause_ns)
        l->pause_ns = until;
    pthread_mutex_unlock(&l->mu);
}

void fr_limit_done(fr_limiter *l, int64_t sent_ns, int status)
{
    pthread_mutex_lock(&l->mu);
    if (!l->answered) {                /* the slow start is over */
        l->answered = true;
        fr_cond_broadcast(&l->cv);
    }
    if (status <= 0) {
        pthread_mutex_unlock(&l->mu);
        return;
    }
    int64_t t = l->now();
    if (sent_ns < l->changed_ns) {     /* sent before the pacing changed: answered */
        pthread_mutex_unlock(&l->mu);
        return;
    }
    l->answers = l->answers << 1 | (status == 429);
    /* under a stated limit, one 429 among the last 64 answers is the jitter
     * of the way there (the 429'd request waits and goes again); a second
     * is not */
    bool lone = known(l) && __builtin_popcountll(l->answers) < 2;
    if (status == 429 && !lone) {
        double r = req_rate(l, sent_ns);
        l->measured = r > 0;
        if (r <= 0)
            r = recent_rate(l, t);
        l->rate_429 = r > MIN_RATE ? r : MIN_RATE;
        l->learned = l->rate_429 * LEARN > MIN_RATE ? l->rate_429 * LEARN : MIN_RATE;
        l->cut_ns = l->changed_ns = t;
        l->answers = 0;
    }
    pthread_mutex_unlock(&l->mu);
}

/* One dimension's headers: its limit per minute, what remains, the reset. */
static void dim_headers(fr_limiter *l, int i, const fr_rl_dim *h, int64_t sent, int64_t t)
{
    dim *d = &l->d[i];
    if (h->limit > 0 && h->limit / 60 != d->stated) {
        d->stated = h->limit / 60;
        d->spread = 0;
        l->changed_ns = t;           /* the pacing changed: earlier 429s are answered */
        l->answers = 0;
    }
    if (h->remaining < 0 || h->reset_ns < 0)
        return;
    double lim = dim_limit(l, d);
    if (h->remaining == 0) {
        /* nothing left: hold until the reset, or, when a limit is known, no
         * longer than the last request takes to refill after its send (the
         * bucket refills continuously) */
        int64_t until = h->reset_ns;
        double refill = d->last > 0 ? d->last : 1;
        if (lim > 0 && sent + (int64_t)(refill / lim * NS) < until)
            until = sent + (int64_t)(refill / lim * NS);
        if (until > d->tat)
            d->tat = until;
    } else if (dim_limit(l, d) <= 0 && h->reset_ns > t) {
        d->spread = h->remaining / ((double)(h->reset_ns - t) / NS) * fr_shard_share();
    }
}

void fr_limit_headers(fr_limiter *l, int64_t sent_ns, const fr_rl *h)
{
    pthread_mutex_lock(&l->mu);
    int64_t t = l->now();
    dim_headers(l, D_REQ, &h->requests, sent_ns, t);
    dim_headers(l, D_TOK, &h->tokens, sent_ns, t);
    dim_headers(l, D_IN, &h->input, sent_ns, t);
    dim_headers(l, D_OUT, &h->output, sent_ns, t);
    pthread_mutex_unlock(&l->mu);
}

void fr_limit_cap(fr_limiter *l, double rps)
{
    pthread_mutex_lock(&l->mu);
    if (rps > 0 && (l->cap <= 0 || rps < l->cap))
        l->cap = rps;
    pthread_mutex_unlock(&l->mu);
}

double fr_limit_rate(fr_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    double r = req_rate(l, l->now());
    pthread_mutex_unlock(&l->mu);
    return r;
}

void fr_limit_clock(fr_limiter *l, int64_t (*now)(void))
{
    l->now = now ? now : mono_ns;
}

fr_limiter *fr_limit_new(double rpm, double tpm)
{
    fr_limiter *l = fr_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->now = mono_ns;
    l->d[D_REQ].decl = rpm > 0 ? rpm / 60 : 0;
    l->d[D_TOK].decl = tpm > 0 ? tpm / 60 : 0;
    pthread_mutex_init(&l->mu, NULL);
    pthread_mutex_lock(&reg_mu);
    l->next = reg_head;
    if (reg_head)
        reg_head->prev = l;
    reg_head = l;
    pthread_mutex_unlock(&reg_mu);
    return l;
}

void fr_limit_stop(void)
{
    __atomic_store_n(&stopped, 1, __ATOMIC_RELEASE);
    pthread_mutex_lock(&reg_mu);
    for (fr_limiter *l = reg_head; l; l = l->next) {
        pthread_mutex_lock(&l->mu);
        fr_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_unlock(&reg_mu);
}

void fr_limit_name(fr_limiter *l, const char *name)
{
    fr_free(l->name);
    l->name = fr_strdup(name);
}

void fr_limit_free(fr_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&reg_mu);
    if (l->prev)
        l->prev->next = l->next;
    else
        reg_head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&reg_mu);
    fr_free(l->name);
    pthread_mutex_destroy(&l->mu);
    fr_free(l);
}
