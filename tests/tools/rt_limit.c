/*
 * rt_limit.c: the rate limiter (runtime/fr_limit.c) on a fake clock, with
 * no network and no wall clock, so every figure is deterministic.
 *
 *   rt_limit selftest      the unit checks; ends with "N failed"
 *   rt_limit sim [--calls N] [--workers W] [--rate R] [--jitter-us J]
 *                [--latency-ms L] [--headers anthropic|openai|none]
 *                [--rpm N] [--seed S]
 *
 * sim is a discrete-event simulation of a fan-out against a server as strict
 * as tests/tools/fakeserver.c: R requests a second and no burst (GCRA),
 * whole-second retry-after on a 429 (rounded up), the providers' rate-limit
 * headers (Anthropic: limit per minute, remaining, a reset in whole seconds
 * of RFC 3339; OpenAI: the reset as a duration in ms).  Each of W workers
 * takes the next call, waits for the limiter's slot, and its request
 * reaches the server after a delay of up to J microseconds (uniform, from a
 * fixed seed: the jitter of threads and sockets); the answer comes L ms
 * later; a 429'd call waits its retry-after and asks for a slot again, as
 * fr_call does.  It prints the achieved rate over the whole run.
 */
#include "fr_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS 1000000000LL
#define MS 1000000LL

static int64_t clock_ns;
static int64_t fake_now(void) { return clock_ns; }
static int failures;

#define CHECK(cond, ...) do { \
        if (!(cond)) { failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__); printf("\n"); } \
    } while (0)

static fr_limiter *fresh(double rpm, double tpm)
{
    fr_limiter *l = fr_limit_new(rpm, tpm);
    fr_limit_clock(l, fake_now);
    clock_ns = 1000 * NS;
    return l;
}

static const fr_rl no_headers = {
    { 0, -1, -1 }, { 0, -1, -1 }, { 0, -1, -1 }, { 0, -1, -1 },
};

/* Sends n requests as soon as the limiter allows; returns the time taken. */
static int64_t send_n(fr_limiter *l, int n, int64_t in, int64_t out)
{
    int64_t t0 = clock_ns;
    for (int i = 0; i < n; i++) {
        int64_t w;
        while ((w = fr_limit_try(l, in, out)) > 0)
            clock_ns += w;
    }
    return clock_ns - t0;
}

static double near(double a, double b) { return fabs(a - b) <= 1e-6 * (fabs(b) + 1); }

/* rpm: 600 paces at 95% of 10 a second from the first request. */
static void t_rpm(void)
{
    fr_limiter *l = fresh(600, 0);
    CHECK(near(fr_limit_rate(l), 9.5), "rate %g, want 9.5", fr_limit_rate(l));
    int64_t t = send_n(l, 20, 0, 0);
    /* 19 intervals of 1/9.5 s after the first */
    CHECK(llabs(t - (int64_t)(19 * NS / 9.5)) < MS, "20 sends took %lld ns", (long long)t);
    fr_limit_free(l);
}

/* No limit known: four requests go at once, the rest ten a second until the
 * first answer; after it nothing waits. */
static void t_unlimited(void)
{
    fr_limiter *l = fresh(0, 0);
    CHECK(send_n(l, 4, 100, 100) == 0, "the first four waited");
    int64_t w = fr_limit_try(l, 100, 100);
    CHECK(w == NS / 10, "the fifth before any answer: wait %lld, want 0.1 s", (long long)w);
    CHECK(send_n(l, 10, 100, 100) == NS, "ten more before any answer took %lld",
          (long long)(clock_ns - 1000 * NS));
    fr_limit_done(l, clock_ns - 5 * MS, 200);
    CHECK(send_n(l, 1000, 100, 100) == 0, "an unknown limit paced after the first answer");
    CHECK(fr_limit_rate(l) == 0, "rate %g", fr_limit_rate(l));
    fr_limit_free(l);

    l = fresh(60, 0);                   /* a known limit: no slow start, paced from the first */
    int64_t t = send_n(l, 5, 1, 1);
    CHECK(llabs(t - (int64_t)(4 * NS / 0.95)) < MS, "rpm: 60, 5 sends took %lld",
          (long long)t);
    fr_limit_free(l);
}

/* A stated limit paces at 95% of it; a lower rpm: wins; remaining 0 holds
 * until the reset, but no longer than one interval after the send. */
static void t_headers(void)
{
    fr_limiter *l = fresh(0, 0);
    fr_rl h = no_headers;
    h.requests.limit = 3000;
    fr_limit_headers(l, clock_ns, &h);
    CHECK(near(fr_limit_rate(l), 47.5), "stated 3000/min: rate %g, want 47.5",
          fr_limit_rate(l));
    fr_limit_free(l);

    l = fresh(1200, 0);                 /* rpm: 1200 is lower than the stated 3000 */
    fr_limit_headers(l, clock_ns, &h);
    CHECK(near(fr_limit_rate(l), 19), "rpm 1200 under 3000 stated: rate %g, want 19",
          fr_limit_rate(l));
    fr_limit_free(l);

    l = fresh(0, 0);
    int64_t sent = clock_ns;
    h.requests.remaining = 0;
    h.requests.reset_ns = sent + 1000 * MS;    /* Anthropic's whole second */
    fr_limit_headers(l, sent, &h);
    int64_t w = fr_limit_try(l, 0, 0);
    CHECK(w == 20 * MS, "remaining 0 at 3000/min: wait %lld ns, want one interval (20 ms)",
          (long long)w);
    fr_limit_free(l);

    l = fresh(0, 0);                    /* no limit stated: the whole reset */
    h.requests.limit = 0;
    fr_limit_headers(l, clock_ns, &h);
    CHECK(fr_limit_try(l, 0, 0) == 1000 * MS, "remaining 0, no limit: wait %lld",
          (long long)fr_limit_try(l, 0, 0));
    fr_limit_free(l);

    l = fresh(0, 0);                    /* no limit stated: the remainder spread until the reset */
    h.requests.remaining = 10;
    h.requests.reset_ns = clock_ns + 2 * NS;
    fr_limit_headers(l, clock_ns, &h);
    CHECK(near(fr_limit_rate(l), 5), "10 left for 2 s: rate %g, want 5", fr_limit_rate(l));
    fr_limit_free(l);
}

/* Token limits: tpm: counts input and max_tokens; Anthropic's input and
 * output limits count each on its own; OpenAI's token limit like tpm:. */
static void t_tokens(void)
{
    fr_limiter *l = fresh(0, 60000);   /* 1000 tokens a second, paced at 950 */
    int64_t t = send_n(l, 3, 300, 200);
    CHECK(llabs(t - (int64_t)(2 * 500 * NS / 950.0)) < MS, "tpm: 3 sends of 500 took %lld",
          (long long)t);
    fr_limit_free(l);

    fr_rl h = no_headers;
    h.input.limit = 600000;            /* 10,000 input tokens a second */
    h.output.limit = 60000;            /* 1,000 output tokens a second */
    l = fresh(0, 0);
    fr_limit_headers(l, clock_ns, &h);
    t = send_n(l, 2, 1000, 100);       /* output binds: 100 / 950 s */
    CHECK(llabs(t - (int64_t)(100 * NS / 950.0)) < MS, "OTPM binds: %lld", (long long)t);
    fr_limit_free(l);
    l = fresh(0, 0);
    fr_limit_headers(l, clock_ns, &h);
    t = send_n(l, 2, 9500, 1);         /* input binds: 9500 / 9500 s */
    CHECK(llabs(t - NS) < MS, "ITPM binds: %lld", (long long)t);
    fr_limit_free(l);

    l = fresh(0, 0);
    h = no_headers;
    h.tokens.limit = 60000;            /* OpenAI: input and max_tokens together */
    fr_limit_headers(l, clock_ns, &h);
    t = send_n(l, 2, 450, 500);
    CHECK(llabs(t - NS) < MS, "OpenAI TPM: %lld", (long long)t);
    /* nothing left: with the limit known, no longer than the last request
     * takes to refill (Anthropic's resets are whole seconds, late) */
    h.tokens.remaining = 0;
    h.tokens.reset_ns = clock_ns + 3 * NS;
    fr_limit_headers(l, clock_ns, &h);
    int64_t w = fr_limit_try(l, 1, 1);
    CHECK(w > 0 && w <= NS, "tokens remaining 0, limit known: wait %lld", (long long)w);
    fr_limit_free(l);
    l = fresh(0, 0);                   /* no limit stated: until the reset */
    fr_limit_done(l, clock_ns, 200);
    h = no_headers;
    h.input.remaining = 0;
    h.input.reset_ns = clock_ns + 3 * NS;
    fr_limit_headers(l, clock_ns, &h);
    CHECK(fr_limit_try(l, 1, 1) == 3 * NS, "input tokens remaining 0: wait %lld",
          (long long)fr_limit_try(l, 1, 1));
    fr_limit_free(l);
}

/* Under a stated limit a lone 429 (one in 64 answers) changes nothing; a
 * second cuts the rate to 95% of the rate it came at, which holds a second,
 * then closes in on the 429's rate without reaching it, and passes it only
 * after ten quiet seconds; a 429 for a request sent before the cut does not
 * cut again, one sent after it does. */
static void t_learn(void)
{
    fr_limiter *l = fresh(3000, 0);    /* paced at 47.5 */
    for (int i = 0; i < 30; i++)
        fr_limit_done(l, clock_ns, 200);
    fr_limit_done(l, clock_ns, 429);   /* one among many: the jitter of the way */
    CHECK(near(fr_limit_rate(l), 47.5), "a lone 429 cut the rate to %g", fr_limit_rate(l));
    for (int i = 0; i < 30; i++)
        fr_limit_done(l, clock_ns, 200);
    fr_limit_done(l, clock_ns, 429);   /* a second within 64 answers */
    double cut = 47.5 * 0.95;
    CHECK(near(fr_limit_rate(l), cut), "a 429 at 47.5: rate %g, want %g", fr_limit_rate(l), cut);
    fr_limit_done(l, clock_ns - 1, 429);    /* sent before the cut */
    CHECK(near(fr_limit_rate(l), cut), "a 429 sent before the cut cut again: %g",
          fr_limit_rate(l));
    clock_ns += NS / 2;
    CHECK(near(fr_limit_rate(l), cut), "the learned rate moved within its hold: %g",
          fr_limit_rate(l));
    clock_ns += NS / 2 + 4 * NS;       /* one TAU after the hold */
    double want = 47.5 - (47.5 - cut) * exp(-1);
    CHECK(near(fr_limit_rate(l), want), "a TAU after the hold: %g, want %g", fr_limit_rate(l),
          want);
    clock_ns += 4 * NS;                /* 9 s after the cut: still under the 429's rate */
    double now = fr_limit_rate(l);
    CHECK(now < 47.5, "reached the 429's rate within the quiet time: %g", now);
    fr_limit_done(l, clock_ns, 429);   /* sent after the cut: two cut from the rate now */
    CHECK(near(fr_limit_rate(l), now), "a lone 429 after the cut cut again: %g",
          fr_limit_rate(l));
    fr_limit_done(l, clock_ns, 429);
    CHECK(near(fr_limit_rate(l), now * 0.95), "a second 429: %g, want %g", fr_limit_rate(l),
          now * 0.95);
    fr_limit_free(l);

    /* no stated limit and nothing pacing: the sends a second are a guess,
     * doubled each second after the hold until a 429 comes at a paced rate,
     * which then holds, and is passed after ten quiet seconds */
    l = fresh(0, 0);
    fr_limit_done(l, clock_ns, 200);   /* the slow start is over */
    for (int i = 0; i < 40; i++) {
        send_n(l, 1, 0, 0);
        clock_ns += NS / 40;
    }
    fr_limit_done(l, clock_ns, 429);   /* 39 sends in the last second */
    CHECK(near(fr_limit_rate(l), 39 * 0.95), "40 sends a second then a 429: %g, want %g",
          fr_limit_rate(l), 39 * 0.95);
    clock_ns += 3 * NS;
    CHECK(near(fr_limit_rate(l), 39 * 0.95 * 4), "2 s after the hold: %g, want %g",
          fr_limit_rate(l), 39 * 0.95 * 4);
    double r = fr_limit_rate(l);
    fr_limit_done(l, clock_ns, 429);   /* at a paced rate */
    CHECK(near(fr_limit_rate(l), r * 0.95), "a 429 while doubling: %g, want %g",
          fr_limit_rate(l), r * 0.95);
    clock_ns += 21 * NS;               /* hold, quiet, then 10 s at 1%/s */
    want = r * 1.1 - r * 0.05 * exp(-20 / 4.0);
    CHECK(near(fr_limit_rate(l), want), "20 quiet seconds later: %g, want %g",
          fr_limit_rate(l), want);
    fr_limit_free(l);
}

/* An overload's retry-after pauses everyone; an operation's rps: caps. */
static void t_pause_cap(void)
{
    fr_limiter *l = fresh(0, 0);
    fr_limit_pause(l, 1500);
    CHECK(fr_limit_try(l, 0, 0) == 1500 * MS, "pause: wait %lld", (long long)fr_limit_try(l, 0, 0));
    clock_ns += 1500 * MS;
    CHECK(fr_limit_try(l, 0, 0) == 0, "still paused after the retry-after");
    fr_limit_cap(l, 5);
    fr_limit_cap(l, 8);                /* the lowest cap wins */
    CHECK(near(fr_limit_rate(l), 5), "cap: %g", fr_limit_rate(l));
    fr_limit_free(l);
}

/* ---- the simulation -------------------------------------------------------- */

typedef enum { H_ANTHROPIC, H_OPENAI, H_NONE } hdr_kind;

typedef struct sim {
    int calls, workers;            /* --calls, --workers */
    double rate;                   /* the server's requests a second */
    int64_t jitter_ns, latency_ns; /* the way there, the answer */
    hdr_kind headers;              /* what the server states */
    double rpm;                    /* the model's rpm:, 0 none */
    uint64_t seed;                 /* the jitter's */
} sim;

typedef struct worker {
    int state;                     /* 0 idle, 1 waiting for a slot, 2 in flight, 3 backing off */
    int64_t at;                    /* the next event: arrival, answer, wake */
    int64_t sent;                  /* when its request left */
    int status;                    /* the server's answer */
    fr_rl rl;                      /* and its headers */
    int attempt;                   /* attempts of the current call */
} worker;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* The server's answer to a request arriving at t (GCRA, no burst). */
static void serve(const sim *o, double *tat, int64_t t, int64_t sent, worker *w)
{
    double T = NS / o->rate;
    double ahead;
    w->rl = no_headers;
    if (*tat > (double)t) {
        w->status = 429;
        ahead = *tat - (double)t;
    } else {
        w->status = 200;
        *tat = (double)t + T;
        ahead = T;
    }
    if (o->headers == H_NONE)
        return;
    w->rl.requests.limit = o->rate * 60;
    w->rl.requests.remaining = ahead > 0 ? 0 : 1;
    if (o->headers == H_ANTHROPIC)            /* an RFC 3339 time: whole seconds, late */
        w->rl.requests.reset_ns = t + (int64_t)ceil(ahead / NS) * NS;
    else                                      /* a duration in ms from the request */
        w->rl.requests.reset_ns = sent + (int64_t)ceil(ahead / MS) * MS;
}

/* Runs o; the achieved share of the server's rate in *share; returns the
 * calls lost. */
static int run_sim(const sim *o, double *share, bool print)
{
    fr_limiter *l = fr_limit_new(o->rpm, 0);
    fr_limit_clock(l, fake_now);
    clock_ns = 0;
    worker *ws = calloc((size_t)o->workers, sizeof *ws);
    int next_call = 0, done = 0, sent = 0, limited = 0;
    double tat = 0;
    uint64_t seed = o->seed ? o->seed : 1;
    while (done < o->calls) {
        /* give slots to waiters, in order, while the limiter allows */
        int64_t slot_wait = -1;
        for (int i = 0; i < o->workers; i++) {
            worker *w = &ws[i];
            if (w->state == 0 && next_call < o->calls)
                next_call++, w->state = 1, w->attempt = 0;
            if (w->state != 1)
                continue;
            int64_t wt = fr_limit_try(l, 100, 100);
            if (wt > 0) {
                slot_wait = wt;
                break;
            }
            w->state = 2, w->sent = clock_ns, sent++;
            w->at = clock_ns + (int64_t)(rnd(&seed) % (uint64_t)(o->jitter_ns + 1));
            w->status = 0;
        }
        /* the next event */
        int64_t t = slot_wait > 0 ? clock_ns + slot_wait : INT64_MAX;
        for (int i = 0; i < o->workers; i++)
            if ((ws[i].state == 2 || ws[i].state == 3) && ws[i].at < t)
                t = ws[i].at;
        if (t == INT64_MAX)
            break;
        clock_ns = t;
        for (int i = 0; i < o->workers; i++) {
            worker *w = &ws[i];
            if (w->at != t || (w->state != 2 && w->state != 3))
                continue;
            if (w->state == 3) {                        /* backed off: ask again */
                w->state = 1;
            } else if (w->status == 0) {                /* arrives */
                serve(o, &tat, t, w->sent, w);
                w->at = t + o->latency_ns;
            } else {                                    /* the answer */
                fr_limit_headers(l, w->sent, &w->rl);
                fr_limit_done(l, w->sent, w->status);
                if (w->status == 200) {
                    done++;
                    if (getenv("SIM_TRACE") && (done % 10 == 0 || done > o->calls - 5))
                        fprintf(stderr, "done %d at %.3f\n", done, (double)t / NS);
                    w->state = 0;
                } else {
                    limited++;
                    w->attempt++;
                    int64_t ra = (int64_t)ceil((tat - (double)(t - o->latency_ns)) / NS) * NS;
                    w->state = 3, w->at = t + (ra > 0 ? ra : NS);
                }
            }
        }
    }
    double secs = (double)clock_ns / NS;
    double achieved = done / secs;
    *share = achieved / o->rate;
    if (print)
        printf("calls=%d done=%d requests=%d limited=%d seconds=%.3f rate=%.2f "
               "share=%.1f%%\n", o->calls, done, sent, limited, secs, achieved,
               100 * *share);
    free(ws);
    fr_limit_free(l);
    return o->calls - done;
}

/* The simulation, as a check: 400 calls at 50 a second with whole-second
 * retry-after reach at least 90% of 50 with either provider's headers and a
 * little jitter, and lose nothing; without headers the limiter finds the
 * rate from the 429s. */
static void t_sim(void)
{
    static const struct {
        hdr_kind h;
        int64_t jitter_us;
        double rpm, want;
    } cases[] = {
        { H_ANTHROPIC, 500, 0, 0.90 }, { H_OPENAI, 500, 0, 0.90 },
        { H_ANTHROPIC, 1000, 0, 0.88 }, { H_ANTHROPIC, 2000, 0, 0.80 },
        { H_NONE, 500, 3000, 0.90 }, { H_NONE, 500, 0, 0.80 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        sim o = { 400, 64, 50, cases[i].jitter_us * 1000, 5 * MS, cases[i].h, cases[i].rpm, 42 };
        double share;
        int lost = run_sim(&o, &share, false);
        CHECK(!lost && share >= cases[i].want, "sim %zu (headers %d, jitter %lld us, rpm %g): "
              "%.1f%% of the rate, want %.0f%%; %d calls lost", i, (int)cases[i].h,
              (long long)cases[i].jitter_us, cases[i].rpm, 100 * share, 100 * cases[i].want,
              lost);
    }
}

/* A stop (fr_limit_stop, as Ctrl-C calls it): a request waiting for its
 * slot gets -1 (it must not be sent), and so does every later one.  The
 * real clock: the waiter waits on the limiter until the stop wakes it (or
 * finds it stopped already), with no assertion on time.  Last: the stop is
 * for the whole process. */
typedef struct waiter {
    fr_limiter *l;
    int64_t got;
} waiter;

static void *wait_slot(void *arg)
{
    waiter *w = arg;
    w->got = fr_limit_acquire(w->l, 0, 0);
    return NULL;
}

static void t_stop(void)
{
    fr_limiter *l = fr_limit_new(1, 0);          /* one request a minute */
    CHECK(fr_limit_acquire(l, 0, 0) >= 0, "the first request waits");
    waiter w = { l, 0 };
    pthread_t t;
    pthread_create(&t, NULL, wait_slot, &w);
    fr_limit_stop();
    pthread_join(t, NULL);
    CHECK(w.got == -1, "a request waiting for its slot when the stop came: %lld",
          (long long)w.got);
    CHECK(fr_limit_acquire(l, 0, 0) == -1, "a request after the stop was given a slot");
    fr_limit_free(l);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "selftest") == 0) {
        t_rpm();
        t_unlimited();
        t_headers();
        t_tokens();
        t_learn();
        t_pause_cap();
        t_sim();
        t_stop();
        printf("%d failed\n", failures);
        return failures ? 1 : 0;
    }
    if (argc >= 2 && strcmp(argv[1], "sim") == 0) {
        sim o = { 400, 64, 50, 500 * 1000, 5 * MS, H_ANTHROPIC, 0, 42 };
        for (int i = 2; i + 1 < argc; i += 2) {
            const char *a = argv[i], *v = argv[i + 1];
            if (strcmp(a, "--calls") == 0) o.calls = atoi(v);
            else if (strcmp(a, "--workers") == 0) o.workers = atoi(v);
            else if (strcmp(a, "--rate") == 0) o.rate = atof(v);
            else if (strcmp(a, "--jitter-us") == 0) o.jitter_ns = atoll(v) * 1000;
            else if (strcmp(a, "--latency-ms") == 0) o.latency_ns = atoll(v) * MS;
            else if (strcmp(a, "--rpm") == 0) o.rpm = atof(v);
            else if (strcmp(a, "--seed") == 0) o.seed = strtoull(v, NULL, 10);
            else if (strcmp(a, "--headers") == 0)
                o.headers = strcmp(v, "openai") == 0 ? H_OPENAI : strcmp(v, "none") == 0
                            ? H_NONE : H_ANTHROPIC;
            else { fprintf(stderr, "rt_limit: unknown %s\n", a); return 2; }
        }
        double share;
        return run_sim(&o, &share, true) ? 1 : 0;
    }
    fprintf(stderr, "usage: rt_limit selftest | sim [--calls N] [--workers W] [--rate R] "
                    "[--jitter-us J] [--latency-ms L] [--headers anthropic|openai|none] "
                    "[--rpm N] [--seed S]\n");
    return 2;
}
