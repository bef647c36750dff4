/*
 * rt_sched.c: self-test of the fibers (fr_sched.c) and the event loop's
 * timers (fr_loop.c), driven by tests/sh/rt_sched.sh.
 *
 * Each check prints "ok - what" or "not ok - what: detail"; the exit status
 * is the number of failed checks.  Nothing here depends on how fast the
 * machine is: counts and orders are checked, and a time only as a lower
 * bound (a timer never fires early).
 */
#include "fr_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(bool ok, const char *what, const char *fmt, ...)
{
    if (ok) {
        printf("ok - %s\n", what);
        return;
    }
    va_list ap;
    printf("not ok - %s: ", what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failures++;
}

/* ---- many fibers wait at once ------------------------------------------- */

#define MANY 10000

typedef struct crowd {
    pthread_mutex_t mu;
    fr_cond all_in;                /* the last to arrive wakes the rest */
    int arrived, waiting, most_waiting, done;
} crowd;

static void crowd_member(void *arg)
{
    crowd *c = arg;
    pthread_mutex_lock(&c->mu);
    c->arrived++;
    if (c->arrived == MANY) {
        fr_cond_broadcast(&c->all_in);
    } else {
        c->waiting++;
        if (c->waiting > c->most_waiting)
            c->most_waiting = c->waiting;
        while (c->arrived < MANY)
            fr_cond_wait(&c->all_in, &c->mu);
        c->waiting--;
    }
    pthread_mutex_unlock(&c->mu);
    fr_sleep_ms(10);               /* and all sleep on the loop's timers at once */
    pthread_mutex_lock(&c->mu);
    c->done++;
    pthread_mutex_unlock(&c->mu);
}

static void test_many(void)
{
    crowd c = { .mu = PTHREAD_MUTEX_INITIALIZER };
    fr_join j;
    fr_join_init(&j);
    int started = 0;
    for (int i = 0; i < MANY && fr_spawn(&j, crowd_member, &c); i++)
        started++;
    fr_join_wait(&j);
    check(started == MANY && c.done == MANY && c.most_waiting == MANY - 1,
          "10,000 fibers wait on one condition at once, then sleep, on a few threads",
          "started %d, done %d, most waiting at once %d", started, c.done, c.most_waiting);
}

/* ---- a producer and a consumer ------------------------------------------- */

#define MESSAGES 100000

typedef struct chan {
    pthread_mutex_t mu;
    fr_cond not_empty, not_full;
    long buf[8];
    int n, head;
    long sum;                      /* what the consumer received */
    double fp;                     /* floating point kept across parks */
} chan;

static void producer(void *arg)
{
    chan *ch = arg;
    double x = 1.0;
    for (long i = 1; i <= MESSAGES; i++) {
        pthread_mutex_lock(&ch->mu);
        while (ch->n == 8)
            fr_cond_wait(&ch->not_full, &ch->mu);
        ch->buf[(ch->head + ch->n++) % 8] = i;
        fr_cond_signal(&ch->not_empty);
        pthread_mutex_unlock(&ch->mu);
        x = x * 1.0000001 + 0.5;   /* in registers across the parks */
    }
    ch->fp = x;
}

static void consumer(void *arg)
{
    chan *ch = arg;
    for (long got = 0; got < MESSAGES; got++) {
        pthread_mutex_lock(&ch->mu);
        while (ch->n == 0)
            fr_cond_wait(&ch->not_empty, &ch->mu);
        ch->sum += ch->buf[ch->head];
        ch->head = (ch->head + 1) % 8, ch->n--;
        fr_cond_signal(&ch->not_full);
        pthread_mutex_unlock(&ch->mu);
    }
}

static void test_channel(void)
{
    chan ch = { .mu = PTHREAD_MUTEX_INITIALIZER };
    fr_join j;
    fr_join_init(&j);
    bool ok = fr_spawn(&j, producer, &ch) && fr_spawn(&j, consumer, &ch);
    fr_join_wait(&j);
    double want = 1.0;
    for (long i = 1; i <= MESSAGES; i++)
        want = want * 1.0000001 + 0.5;
    check(ok && ch.sum == (long)MESSAGES * (MESSAGES + 1) / 2 && ch.fp == want,
          "a producer and a consumer pass 100,000 messages through a buffer of 8",
          "sum %ld, fp %.17g vs %.17g", ch.sum, ch.fp, want);
}

/* ---- timed waits, sleeps and wake-ups ------------------------------------- */

typedef struct timed {
    pthread_mutex_t mu;
    fr_cond never;                 /* nobody signals it */
    bool timed_out;
    int64_t waited_ns;
    int64_t slept_ns;
    int token_ok;
} timed;

static void timed_fiber(void *arg)
{
    timed *t = arg;
    int64_t t0 = fr_mono_ns();
    pthread_mutex_lock(&t->mu);
    bool ok = true;
    while (ok)
        ok = fr_cond_timedwait(&t->never, &t->mu, t0 + 30 * 1000000LL);
    pthread_mutex_unlock(&t->mu);
    t->timed_out = !ok;
    t->waited_ns = fr_mono_ns() - t0;
    t0 = fr_mono_ns();
    fr_sleep_ms(25);
    t->slept_ns = fr_mono_ns() - t0;
    /* a wake-up that comes before the park is kept */
    fr_unpark(fr_waiter_self());
    fr_park();
    t->token_ok = 1;
}

static void test_timed(void)
{
    timed t = { .mu = PTHREAD_MUTEX_INITIALIZER };
    fr_join j;
    fr_join_init(&j);
    fr_spawn(&j, timed_fiber, &t);
    fr_join_wait(&j);
    check(t.timed_out && t.waited_ns >= 30 * 1000000LL, "a timed wait ends at its deadline, not before",
          "timed out %d after %lld ns", t.timed_out, (long long)t.waited_ns);
    check(t.slept_ns >= 25 * 1000000LL, "a fiber's sleep lasts at least its time", "%lld ns",
          (long long)t.slept_ns);
    check(t.token_ok == 1, "an unpark before the park is not lost", "no");
}

/* ---- plain threads and fibers on one condition ----------------------------- */

typedef struct mixed {
    pthread_mutex_t mu;
    fr_cond go;
    bool open;
    int through;
} mixed;

static void *thread_waits(void *arg)
{
    mixed *m = arg;
    pthread_mutex_lock(&m->mu);
    while (!m->open)
        fr_cond_wait(&m->go, &m->mu);
    m->through++;
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static void fiber_waits(void *arg)
{
    thread_waits(arg);
}

static void fiber_opens(void *arg)
{
    mixed *m = arg;
    fr_sleep_ms(20);
    pthread_mutex_lock(&m->mu);
    m->open = true;
    fr_cond_broadcast(&m->go);
    pthread_mutex_unlock(&m->mu);
}

static void test_mixed(void)
{
    mixed m = { .mu = PTHREAD_MUTEX_INITIALIZER };
    pthread_t t[4];
    int nt = 0;
    for (int i = 0; i < 4; i++)
        nt += pthread_create(&t[nt], NULL, thread_waits, &m) == 0;
    fr_join j;
    fr_join_init(&j);
    for (int i = 0; i < 4; i++)
        fr_spawn(&j, fiber_waits, &m);
    fr_spawn(&j, fiber_opens, &m);
    fr_join_wait(&j);
    for (int i = 0; i < nt; i++)
        pthread_join(t[i], NULL);
    check(m.through == nt + 4, "plain threads and fibers wait on one condition, a fiber wakes all",
          "%d of %d through", m.through, nt + 4);
}

/* ---- nesting, deep stacks, a plain thread's sleep ----------------------------- */

static int leaves;

static void leaf(void *arg)
{
    fr_sleep_ms(1);
    __atomic_add_fetch(&leaves, 1, __ATOMIC_RELAXED);
    (void)arg;
}

static void branch(void *arg)
{
    fr_join j;
    fr_join_init(&j);
    for (int i = 0; i < 10; i++)
        fr_spawn(&j, leaf, arg);
    fr_join_wait(&j);
}

/* 100 KiB of stack, a kilobyte per frame, parking at the bottom. */
static long deep(int n)
{
    volatile char buf[1024];
    buf[0] = (char)n;
    buf[1023] = (char)(n >> 8);
    if (n == 0) {
        fr_sleep_ms(1);
        return buf[0];
    }
    return deep(n - 1) + buf[0] + buf[1023];
}

static long deep_sum;

static void deep_fiber(void *arg)
{
    deep_sum = deep(100);
    (void)arg;
}

static void test_nesting(void)
{
    fr_join j;
    fr_join_init(&j);
    for (int i = 0; i < 10; i++)
        fr_spawn(&j, branch, NULL);
    fr_spawn(&j, deep_fiber, NULL);
    fr_join_wait(&j);
    long want = 0;
    for (int n = 1; n <= 100; n++)
        want += (char)n + (char)(n >> 8);
    check(leaves == 100, "fibers spawn fibers and join them", "%d leaves", leaves);
    check(deep_sum == want, "a fiber uses 100 KiB of stack and parks at the bottom",
          "%ld vs %ld", deep_sum, want);
    int64_t t0 = fr_mono_ns();
    fr_sleep_ms(15);
    check(fr_mono_ns() - t0 >= 15 * 1000000LL && !fr_in_fiber(),
          "a plain thread's sleep sleeps the thread", "in fiber %d", fr_in_fiber());
}

/* ---- fr_sched_call from a plain thread ---------------------------------------- */

static void in_fiber(void *arg)
{
    *(bool *)arg = fr_in_fiber();
}

static void test_call(void)
{
    bool inside = false;
    bool ok = fr_sched_call(in_fiber, &inside);
    check(ok && inside, "fr_sched_call runs its function in a fiber and waits", "ok %d", ok);
}

int main(void)
{
    test_call();
    test_many();
    test_channel();
    test_timed();
    test_mixed();
    test_nesting();
    printf("rt_sched: %d failed\n", failures);
    return failures;
}
