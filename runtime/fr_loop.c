/*
 * fr_loop.c: the event loop, one thread that waits for everything the
 * workflow waits for: timers (a mock's latency, a backoff, the limiter's
 * next slot, a timed wait), sockets (libcurl's transfers, fr_http.c) and
 * work posted to it from other threads.
 *
 * It is one epoll set with an eventfd for wake-ups.  Timers are a binary
 * min-heap of fr_timer structs that their owners embed (no allocation per
 * timer); a timer's callback runs on the loop thread with the timer lock
 * held, so fr_timer_cancel returns only once the callback cannot run any
 * more, and a callback must be short (it unparks a waiter) and must not arm
 * or cancel timers.  A driver (libcurl's multi handle) registers a deadline
 * function and an expiry callback, which run without the lock.
 *
 * The thread starts on first use, so a run that never waits on anything
 * never starts it, and lives as long as the process.
 */
#include "fr_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256             /* epoll events taken per wait */

/* A closure posted to the loop thread. */
typedef struct post {
    struct post *next;             /* the next posted */
    void (*fn)(void *);            /* what to run */
    void *arg;                     /* with what */
} post;

static struct {
    pthread_once_t once;           /* the thread starts once */
    bool ok;                       /* it started */
    int ep;                        /* the epoll set */
    int wake;                      /* eventfd: posted work, an earlier timer */
    pthread_t thread;              /* the loop thread */
    pthread_mutex_t mu;            /* guards the heap, the posts and the driver */
    fr_timer **heap;               /* armed timers, earliest first */
    size_t n, cap;                 /* used and allocated slots of heap */
    post *posts, **ptail;          /* posted closures, in order */
    int64_t (*drv_deadline)(void); /* the driver's next deadline (ns), or -1 */
    void (*drv_expire)(void);      /* called when it is reached */
    bool sleeping;                 /* the thread is in epoll_wait (wake it to add work) */
    fr_watch *retired;             /* watches to free once the events in hand are done */
} L = { .once = PTHREAD_ONCE_INIT, .ep = -1, .wake = -1 };

int64_t fr_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- the heap ------------------------------------------------------------ */

static void heap_set(size_t i, fr_timer *t)
{
    L.heap[i] = t;
    t->slot = i;
}

static void heap_up(size_t i)
{
    fr_timer *t = L.heap[i];
    while (i > 0 && L.heap[(i - 1) / 2]->at_ns > t->at_ns) {
        heap_set(i, L.heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, t);
}

static void heap_down(size_t i)
{
    fr_timer *t = L.heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= L.n)
            break;
        if (c + 1 < L.n && L.heap[c + 1]->at_ns < L.heap[c]->at_ns)
            c++;
        if (L.heap[c]->at_ns >= t->at_ns)
            break;
        heap_set(i, L.heap[c]);
        i = c;
    }
    heap_set(i, t);
}

static void heap_remove(fr_timer *t)
{
    size_t i = t->slot;
    fr_timer *last = L.heap[--L.n];
    t->slot = FR_TIMER_IDLE;
    if (i == L.n)
        return;
    heap_set(i, last);
    heap_up(i);
    heap_down(last->slot);
}

/* ---- the thread ---------------------------------------------------------- */

static void wake_up(void)
{
    uint64_t one = 1;
    ssize_t r = write(L.wake, &one, sizeof one);
    (void)r;                       /* a full counter wakes the loop as well */
}

/* Fires the timers that are due (lock held); returns the next deadline or -1. */
static int64_t fire_timers(int64_t now)
{
    while (L.n > 0 && L.heap[0]->at_ns <= now) {
        fr_timer *t = L.heap[0];
        heap_remove(t);
        t->fn(t);
    }
    return L.n > 0 ? L.heap[0]->at_ns : -1;
}

/* Runs the posted closures (taken under the lock, run without it). */
static void run_posts(void)
{
    pthread_mutex_lock(&L.mu);
    post *p = L.posts;
    L.posts = NULL;
    L.ptail = &L.posts;
    pthread_mutex_unlock(&L.mu);
    while (p) {
        post *next = p->next;
        p->fn(p->arg);
        fr_free(p);
        p = next;
    }
}

/* The epoll timeout in ms for the earliest of the two deadlines (-1: none). */
static int timeout_ms(int64_t a, int64_t b, int64_t now)
{
    int64_t d = a < 0 ? b : b < 0 ? a : a < b ? a : b;
    if (d < 0)
        return -1;
    int64_t ms = (d - now + 999999) / 1000000;  /* round up: never wake early */
    return ms <= 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

static void *loop_main(void *arg)
{
    struct epoll_event ev[MAX_EVENTS];
    for (;;) {
        run_posts();
        int64_t now = fr_mono_ns();
        pthread_mutex_lock(&L.mu);
        int64_t next = fire_timers(now);
        int64_t (*dl)(void) = L.drv_deadline;
        void (*exp)(void) = L.drv_expire;
        bool more = L.posts != NULL;
        L.sleeping = !more;
        pthread_mutex_unlock(&L.mu);
        int64_t dd = dl ? dl() : -1;
        if (dd >= 0 && dd <= now) {
            exp();
            continue;
        }
        int n = epoll_wait(L.ep, ev, MAX_EVENTS, more ? 0 : timeout_ms(next, dd, now));
        pthread_mutex_lock(&L.mu);
        L.sleeping = false;
        pthread_mutex_unlock(&L.mu);
        for (int i = 0; i < n; i++) {
            fr_watch *w = ev[i].data.ptr;
            if (!w) {
                uint64_t v;
                ssize_t r = read(L.wake, &v, sizeof v);
                (void)r;
                continue;
            }
            if (w->fd < 0)             /* retired by an earlier event of this batch */
                continue;
            int what = ((ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ? FR_WATCH_IN : 0) |
                       ((ev[i].events & (EPOLLOUT | EPOLLERR)) ? FR_WATCH_OUT : 0);
            w->fn(w, what);
        }
        while (L.retired) {            /* no event in hand points at them any more */
            fr_watch *w = L.retired;
            L.retired = w->next;
            free(w);
        }
    }
    return arg;
}

static void loop_start(void)
{
    pthread_mutex_init(&L.mu, NULL);
    L.ptail = &L.posts;
    L.ep = epoll_create1(EPOLL_CLOEXEC);
    L.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (L.ep < 0 || L.wake < 0 || epoll_ctl(L.ep, EPOLL_CTL_ADD, L.wake, &ev) != 0)
        return;
    sigset_t all, old;
    sigfillset(&all);              /* signals go to the other threads */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 1u << 20);
    L.ok = pthread_create(&L.thread, &at, loop_main, NULL) == 0;
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

bool fr_loop_ready(void)
{
    pthread_once(&L.once, loop_start);
    return L.ok;
}

bool fr_loop_on_thread(void)
{
    return L.ok && pthread_equal(pthread_self(), L.thread);
}

/* ---- timers -------------------------------------------------------------- */

bool fr_timer_arm(fr_timer *t, int64_t at_ns)
{
    if (!fr_loop_ready())
        return false;
    pthread_mutex_lock(&L.mu);
    if (t->slot != FR_TIMER_IDLE)
        heap_remove(t);
    bool ok = true;
    if (L.n == L.cap) {
        size_t cap = L.cap ? L.cap * 2 : 256;
        fr_timer **h = fr_realloc(L.heap, cap * sizeof *h);
        if (h)
            L.heap = h, L.cap = cap;
        else
            ok = false;
    }
    bool first = false;
    if (ok) {
        t->at_ns = at_ns;
        L.heap[L.n] = t;
        t->slot = L.n++;
        heap_up(t->slot);
        first = t->slot == 0;
    }
    bool wake = first && L.sleeping;
    pthread_mutex_unlock(&L.mu);
    if (wake)
        wake_up();
    return ok;
}

bool fr_timer_cancel(fr_timer *t)
{
    pthread_mutex_lock(&L.mu);
    bool armed = t->slot != FR_TIMER_IDLE;
    if (armed)
        heap_remove(t);
    pthread_mutex_unlock(&L.mu);
    return armed;
}

/* ---- posted work, watches, the driver ------------------------------------ */

bool fr_loop_post(void (*fn)(void *), void *arg)
{
    post *p = fr_malloc(sizeof *p);
    if (!p || !fr_loop_ready()) {
        fr_free(p);
        return false;
    }
    p->fn = fn, p->arg = arg, p->next = NULL;
    pthread_mutex_lock(&L.mu);
    bool wake = L.posts == NULL && L.sleeping;
    *L.ptail = p;
    L.ptail = &p->next;
    pthread_mutex_unlock(&L.mu);
    if (wake)
        wake_up();
    return true;
}

bool fr_watch_set(fr_watch *w, int fd, int what)
{
    struct epoll_event ev = { .data.ptr = w };
    ev.events = ((what & FR_WATCH_IN) ? EPOLLIN : 0) | ((what & FR_WATCH_OUT) ? EPOLLOUT : 0);
    if (w->fd == fd && w->what == what)
        return true;
    int op = w->fd < 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (w->fd >= 0 && w->fd != fd) {
        epoll_ctl(L.ep, EPOLL_CTL_DEL, w->fd, NULL);
        op = EPOLL_CTL_ADD;
    }
    w->fd = fd, w->what = what;
    if (epoll_ctl(L.ep, op, fd, &ev) == 0)
        return true;
    if (op == EPOLL_CTL_MOD && errno == ENOENT)
        return epoll_ctl(L.ep, EPOLL_CTL_ADD, fd, &ev) == 0;
    return false;
}

void fr_watch_clear(fr_watch *w)
{
    if (w->fd >= 0)
        epoll_ctl(L.ep, EPOLL_CTL_DEL, w->fd, NULL);
    w->fd = -1, w->what = 0;
}

void fr_watch_retire(fr_watch *w)
{
    fr_watch_clear(w);
    w->next = L.retired;
    L.retired = w;
}

void fr_loop_driver(int64_t (*deadline)(void), void (*expire)(void))
{
    if (!fr_loop_ready())
        return;
    pthread_mutex_lock(&L.mu);
    L.drv_deadline = deadline;
    L.drv_expire = expire;
    bool wake = L.sleeping;
    pthread_mutex_unlock(&L.mu);
    if (wake)
        wake_up();
}
