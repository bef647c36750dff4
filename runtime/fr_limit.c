/*
 * fr_limit.c: the shared rate limiter of one endpoint.
 *
 * Endpoints sharing a base URL and key variable share one limiter (AIMD):
 * no pacing until the first 429; then the rate starts at half the successes
 * per second seen lately, every 429 holds all workers for its retry-after (a
 * shared pause) and halves the rate (once per round: a 429 for a request
 * sent before the last cut does not cut again), and each success adds
 * GAIN_PER_OK, so a fan-out backs off as a whole instead of each worker
 * hammering the server on its own, and is back at the server's rate within
 * a second or two.  Before any success the first cut starts from the sends
 * per second instead.  Another status with a retry-after (503, 529) pauses
 * everyone without cutting the rate: overload is not a rate limit.
 *
 * Known limits pace from the first request, without waiting for a 429: a
 * model's `rpm:` and `tpm:`, and the providers' rate-limit headers
 * (anthropic-ratelimit-requests-*, x-ratelimit-*-requests), whose limit sets
 * the rate (at SAFETY of it, so that clock jitter does not cross it) and
 * whose remaining 0 holds every send until the reset.  A 429 no longer
 * pauses everyone for its whole retry-after (only the request that got it
 * waits): the rate is set to a little under the rate at which the 429 came,
 * and remembered, so the fan-out goes on at the rate the server takes
 * instead of stopping and probing past the limit again.
 *
 * It knows nothing of HTTP: fr_http.c asks it for a send slot before each
 * request and tells it what came back (a success, a 429, a retry-after, the
 * rate-limit headers).
 */
#include "fr_internal.h"

#include <stdlib.h>
#include <time.h>

#define MIN_RATE 2.0               /* the limiter never paces slower (req/s): a lone
                                      caller waits out retry-after anyway */
#define CUT_FACTOR 0.5             /* multiplicative decrease on a 429 */
#define GAIN_PER_OK 0.5            /* additive increase per success (req/s): at rate r the
                                      rate grows by r/2 per second, so a halved rate is back
                                      in about 1.4 s */
#define CAP_FACTOR 2.0             /* the rate never exceeds this many times the successes
                                      per second lately (it would not bind anyway) */
#define FORGET_NS (30 * 1000000000LL) /* no 429 for this long: limit dropped */
#define SAFETY 0.95                /* pace at this share of a known limit */
#define LEARN 0.9                  /* after a 429: this share of the rate it came at */

struct fr_limiter {
    pthread_mutex_t mu;            /* guards the fields below */
    pthread_cond_t cv;             /* waiters for a send slot */
    bool sleeper;                  /* one waiter sleeps until the next slot; the rest wait on cv */
    double rate;                   /* learned requests per second (AIMD), 0: none */
    double known;                  /* a known limit (rpm:, the headers) in req/s, 0: none */
    double tok_rate;               /* tpm: / 60, tokens per second, 0: none */
    double cap;                    /* never more than this (an operation's rps:), 0: none */
    int64_t next_ns;               /* the next send slot (monotonic ns) */
    int64_t pause_ns;              /* nobody sends before this (retry-after) */
    int64_t cut_ns;                /* when the rate was last cut */
    int64_t win_ns;                /* start of the current one-second window */
    int win_ok, win_sent;          /* successes and sends in the current window */
    int last_ok, last_sent;        /* the same in the previous window */
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The rate to pace at: the learned one, never above a known limit or the cap. */
static double lim_rate(const fr_limiter *l)
{
    double k = l->known * SAFETY, r = l->rate;
    if (k > 0 && (r <= 0 || r > k))
        r = k;
    if (l->cap > 0 && (r <= 0 || r > l->cap))
        r = l->cap;
    return r;
}

/* The earliest time the next request may go. */
static int64_t lim_slot(const fr_limiter *l)
{
    int64_t t = l->pause_ns;
    if ((lim_rate(l) > 0 || l->tok_rate > 0) && l->next_ns > t)
        t = l->next_ns;
    return t;
}

/* Starts a new one-second counting window when the current one is over. */
static void lim_window(fr_limiter *l, int64_t now)
{
    if (now - l->win_ns < 1000000000LL)
        return;
    bool recent = now - l->win_ns < 2000000000LL;
    l->last_ok = recent ? l->win_ok : 0;
    l->last_sent = recent ? l->win_sent : 0;
    l->win_ok = l->win_sent = 0;
    l->win_ns = now;
}

/* Waits for a send slot; returns the send time.  Slots are not reserved
 * ahead (a rate that changes meanwhile applies at once): one waiter sleeps
 * until the next slot and takes it, then wakes one other to sleep for the
 * following one, so a thousand waiters cost one wake-up per request. */
int64_t fr_limit_acquire(fr_limiter *l, int64_t tokens)
{
    pthread_mutex_lock(&l->mu);
    for (;;) {
        int64_t now = mono_ns(), t = lim_slot(l);
        if (now >= t) {
            double r = lim_rate(l), iv_s = r > 0 ? 1 / r : 0;
            if (l->tok_rate > 0 && (double)tokens / l->tok_rate > iv_s)
                iv_s = (double)tokens / l->tok_rate;
            if (iv_s > 0) {
                int64_t iv = (int64_t)(iv_s * 1e9);
                l->next_ns = (l->next_ns > now - iv ? l->next_ns : now) + iv;
            }
            lim_window(l, now);
            l->win_sent++;
            pthread_cond_signal(&l->cv);
            pthread_mutex_unlock(&l->mu);
            return now;
        }
        if (l->sleeper) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        l->sleeper = true;
        struct timespec ts = { t / 1000000000LL, t % 1000000000LL };
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
        l->sleeper = false;
    }
}

/* Events per second lately: cur in the current window, last in the one before. */
static double lim_per_sec(const fr_limiter *l, int64_t now, int cur, int last)
{
    double secs = (double)(now - l->win_ns) / 1e9;
    double r = cur / (secs < 1 ? 1 : secs);
    return r > last ? r : last;
}

static double lim_observed(const fr_limiter *l, int64_t now)
{
    return lim_per_sec(l, now, l->win_ok, l->last_ok);
}

/* A retry-after from any status: nobody sends until it has passed. */
void fr_limit_pause(fr_limiter *l, int retry_after_ms)
{
    pthread_mutex_lock(&l->mu);
    int64_t until = mono_ns() + retry_after_ms * 1000000LL;
    if (retry_after_ms > 0 && until > l->pause_ns)
        l->pause_ns = until;
    pthread_mutex_unlock(&l->mu);
}

/* A 429: the rate becomes a little under the rate it came at (the sends per
 * second lately), once per round (a 429 for a request sent before the last
 * cut does not cut again); with nothing to go by, the rate is halved. */
void fr_limit_slow_down(fr_limiter *l, int64_t sent_ns)
{
    pthread_mutex_lock(&l->mu);
    int64_t now = mono_ns();
    if (sent_ns >= l->cut_ns) {
        double sent = lim_per_sec(l, now, l->win_sent, l->last_sent);
        double ok = lim_observed(l, now);
        double cur = lim_rate(l);
        double base = ok >= 1 ? ok * LEARN : cur > 0 ? cur * CUT_FACTOR : sent * CUT_FACTOR;
        if (cur > 0 && base > cur * LEARN)
            base = cur * LEARN;
        l->rate = base > MIN_RATE ? base : MIN_RATE;
        l->cut_ns = now;
    }
    pthread_mutex_unlock(&l->mu);
}

void fr_limit_headers(fr_limiter *l, double limit_per_min, double remaining, int64_t reset_ms)
{
    pthread_mutex_lock(&l->mu);
    if (limit_per_min > 0)
        l->known = limit_per_min / 60;
    if (remaining == 0 && reset_ms > 0) {          /* the quota is spent until the reset */
        /* a reset in whole seconds is late: with a known rate, one interval */
        if (l->known > 0 && reset_ms > (int64_t)(1000 / l->known))
            reset_ms = (int64_t)(1000 / l->known);
        int64_t until = mono_ns() + reset_ms * 1000000LL;
        if (until > l->next_ns)
            l->next_ns = until;
    }
    pthread_mutex_unlock(&l->mu);
}

/* The server took a request: count it and let the rate recover. */
void fr_limit_success(fr_limiter *l)
{
    pthread_mutex_lock(&l->mu);
    int64_t now = mono_ns();
    lim_window(l, now);
    l->win_ok++;
    if (l->rate > 0) {
        double cap = CAP_FACTOR * lim_observed(l, now);
        /* recover slowly towards the rate of the 429, not past it at once */
        l->rate += now - l->cut_ns < 2000000000LL ? 0 : GAIN_PER_OK / 10;
        if (l->rate > cap && cap > MIN_RATE)
            l->rate = cap;
        if (now - l->cut_ns > FORGET_NS)
            l->rate = 0;
    }
    pthread_mutex_unlock(&l->mu);
}

void fr_limit_cap(fr_limiter *l, double rps)
{
    pthread_mutex_lock(&l->mu);
    if (rps > 0 && (l->cap <= 0 || rps < l->cap))
        l->cap = rps;
    pthread_mutex_unlock(&l->mu);
}

fr_limiter *fr_limit_new(double rpm, double tpm)
{
    fr_limiter *l = fr_calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->known = rpm > 0 ? rpm / 60 : 0;
    l->tok_rate = tpm > 0 ? tpm / 60 : 0;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&l->mu, NULL);
    l->win_ns = mono_ns();
    return l;
}

void fr_limit_free(fr_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    fr_free(l);
}
