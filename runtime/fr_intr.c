/*
 * fr_intr.c: Ctrl-C and SIGTERM.  A run stops without losing what it paid
 * for: on the first SIGINT or SIGTERM no new item and no new call starts,
 * the calls in flight may finish (and are journaled) for a grace period
 * (--grace, default 30 s), and the run ends as an interrupted one: what
 * finished, the command that resumes it, exit 130 (SIGINT) or 143
 * (SIGTERM).  A second signal, or the end of the grace period, stops at
 * once: what the journal was handed is committed, the calls still in
 * flight are abandoned (a resume pays for them again) and the process
 * exits with the same status.
 *
 * How: fr_intr_block blocks both signals in the main thread before the
 * runtime starts any thread (every thread inherits the mask; the workers,
 * the event loop and the journal's writer block all signals anyway), and
 * one thread of ours takes them with sigwait, so nothing runs in a signal
 * handler.  The first sets run->interrupted, which start_attempt (no call
 * starts), the fan-outs (no item starts) and the interruptible waits
 * (backoff) read, and wakes what waits for a call slot or a budget.
 */
#include "fr_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_GRACE_S 30

typedef struct intr {
    pthread_t th;                  /* the thread that takes the signals */
    bool started;                  /* th runs */
    pthread_mutex_t mu;            /* guards done, and the journal against run_end */
    bool done;                     /* the run is ending: a signal now is the default's */
    fr_run *run;                   /* the run */
    int grace_s;                   /* --grace */
    sigset_t set;                  /* SIGINT, SIGTERM */
} intr;

static intr I = { .mu = PTHREAD_MUTEX_INITIALIZER };

static const char *sig_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal";
}

void fr_intr_block(void)
{
    sigemptyset(&I.set);
    sigaddset(&I.set, SIGINT);
    sigaddset(&I.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &I.set, NULL);
}

int fr_interrupted(const fr_run *run)
{
    return __atomic_load_n(&run->interrupted, __ATOMIC_ACQUIRE);
}

bool fr_intr_stopped(fr_ctx *cx)
{
    int sig = fr_interrupted(cx->run);
    if (!sig)
        return false;
    if (cx->sig != FR_SIG_STOP) {
        fr_fail(cx, NULL, "interrupted by %s: no call starts after that", sig_name(sig));
        cx->sig = FR_SIG_STOP;
    }
    return true;
}

bool fr_intr_sleep_ms(fr_run *run, int64_t ms)
{
    if (ms <= 0 || fr_interrupted(run))
        return !fr_interrupted(run);
    int64_t until = fr_mono_ns() + ms * 1000000;
    pthread_mutex_lock(&run->mu);
    while (!fr_interrupted(run) && fr_mono_ns() < until)
        fr_cond_timedwait(&run->intr_cv, &run->mu, until);
    pthread_mutex_unlock(&run->mu);
    return !fr_interrupted(run);
}

/* One line on stderr, over the progress line if there is one. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s\n", I.run->progress ? "\r\033[K" : "", line);
}

/* The first signal: nothing new starts; what waits for a slot, a budget or
 * a backoff wakes up to see it. */
static void first(int sig)
{
    fr_run *run = I.run;
    __atomic_store_n(&run->interrupted, sig, __ATOMIC_RELEASE);
    int n = __atomic_load_n(&run->inflight, __ATOMIC_RELAXED);
    __atomic_store_n(&run->intr_inflight, n, __ATOMIC_RELEASE);
    fr_limit_stop();               /* a request waiting for its send slot is not in flight */
    if (I.grace_s > 0)
        say("interrupted by %s: no new item or call starts; the %d call%s in flight may "
            "finish for up to %d s (%s again stops at once)", sig_name(sig), n, n == 1 ? "" : "s",
            I.grace_s, sig == SIGINT ? "Ctrl-C" : "a second SIGTERM");
    pthread_mutex_lock(&run->mu);
    fr_cond_broadcast(&run->slot_cv);
    fr_cond_broadcast(&run->budget_cv);
    fr_cond_broadcast(&run->intr_cv);
    pthread_mutex_unlock(&run->mu);
}

/* A second signal or the grace period's end: commit what the journal was
 * handed, say what is lost and how to resume, exit. */
static void at_once(int sig, const char *why)
{
    fr_run *run = I.run;
    pthread_mutex_lock(&I.mu);     /* held to the end: the run cannot close its journal */
    if (I.done) {
        pthread_mutex_unlock(&I.mu);
        return;                    /* it is ending on its own */
    }
    int n = __atomic_load_n(&run->inflight, __ATOMIC_RELAXED);
    say("stopped at once (%s): %d call%s in flight abandoned (a resume pays for %s again)", why,
        n, n == 1 ? "" : "s", n == 1 ? "it" : "them");
    fr_journal_flush_run(run);
    const char *id = fr_journal_bound_id(run);
    if (id)
        say("what was answered is journaled: `%s --resume %s` finishes the run", fr_self_name(run->prog),
            id);
    else
        say("this run has no journal (--no-journal): nothing can be resumed");
    fflush(stderr);
    _exit(128 + sig);
}

static void *intr_main(void *arg)
{
    (void)arg;
    int sig = 0;
    while (sigwait(&I.set, &sig) != 0)
        ;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    pthread_mutex_lock(&I.mu);
    bool done = I.done;
    pthread_mutex_unlock(&I.mu);
    if (done)                      /* the run ended meanwhile: as if unhandled */
        _exit(128 + sig);
    if (I.grace_s <= 0) {
        first(sig);
        at_once(sig, "--grace 0");
        return NULL;
    }
    first(sig);
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += I.grace_s;
    int again;
    for (;;) {
        siginfo_t si;
        struct timespec now, left;
        clock_gettime(CLOCK_REALTIME, &now);
        left.tv_sec = ts.tv_sec - now.tv_sec;
        left.tv_nsec = ts.tv_nsec - now.tv_nsec;
        if (left.tv_nsec < 0)
            left.tv_sec--, left.tv_nsec += 1000000000;
        if (left.tv_sec < 0) {
            again = 0;
            break;
        }
        again = sigtimedwait(&I.set, &si, &left);
        if (again > 0 || errno == EAGAIN)
            break;
    }
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    char why[64];
    if (again > 0)
        snprintf(why, sizeof why, "a second %s", sig_name(again));
    else
        snprintf(why, sizeof why, "the grace period of %d s is over", I.grace_s);
    at_once(sig, why);
    return NULL;
}

bool fr_intr_start(fr_run *run, int grace_s)
{
    I.run = run;
    I.grace_s = grace_s < 0 ? DEFAULT_GRACE_S : grace_s;
    I.done = false;
    I.started = pthread_create(&I.th, NULL, intr_main, NULL) == 0;
    return I.started;
}

void fr_intr_done(fr_run *run)
{
    (void)run;
    pthread_mutex_lock(&I.mu);
    I.done = true;
    pthread_mutex_unlock(&I.mu);
}

void fr_intr_stop(void)
{
    fr_intr_done(NULL);
    if (I.started) {
        pthread_cancel(I.th);
        pthread_join(I.th, NULL);
        I.started = false;
    }
    pthread_sigmask(SIG_UNBLOCK, &I.set, NULL);   /* a signal pending now ends the process */
}
