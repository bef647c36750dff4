/*
 * fr_sched.c: fibers.  The workflow's code runs as fibers, coroutines with a
 * small stack of their own, on a few worker threads (one per CPU), so that
 * ten thousand items can each wait for a call without ten thousand threads.
 * Generated code stays sequential: a fiber that waits (for a request, a
 * mock's latency, a backoff, a call slot, a budget, the journal) parks, its
 * worker runs another, and whatever it waited for unparks it later, on any
 * worker.
 *
 * The pieces:
 *   - a waiter is a fiber or a plain thread (rt_http calls the transport
 *     from threads of its own); fr_park parks the current one, fr_unpark
 *     wakes one.  A wake-up that comes before the park is kept (a token), so
 *     none is lost, and every wait loops on its condition, so an early or
 *     stale wake-up costs a loop;
 *   - fr_cond is a condition variable on a pthread mutex that parks fibers
 *     instead of blocking their worker; fr_sleep_until and timed waits use
 *     the event loop's timers (fr_loop.c);
 *   - fr_spawn starts a fiber that a fr_join counts; the spawner waits for
 *     the count to fall to zero (fan-outs, pipelines, parallel blocks);
 *   - fr_sched_call runs a function in a fiber from a plain thread and waits
 *     for it: fr_main runs the workflow's body that way.  The workers start
 *     with the first call and then wait for work as long as the process
 *     lives (idle, they cost nothing).
 *
 * A fiber's stack is mmap'd with a guard page below it (an overflow faults
 * instead of corrupting a neighbour), touched only as deep as it is used,
 * and kept for the next fiber.  Switching is a few instructions on x86-64
 * (callee-saved registers and the stack pointer) and ucontext elsewhere;
 * under AddressSanitizer each switch is announced to it.
 *
 * Fibers move between threads, so code that may park must not keep
 * anything thread-local across the park: the current fiber is read through
 * a function the compiler cannot inline, and errno is not read after a park.
 */
#include "fr_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define FR_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FR_ASAN 1
#endif
#endif
#ifdef FR_ASAN
#include <sanitizer/common_interface_defs.h>
#define STACK_SIZE (2u << 20)      /* ASan's frames are larger */
#else
#define STACK_SIZE (256u << 10)
#endif

#if !defined(__x86_64__) && !defined(FR_FIBER_UCONTEXT)
#define FR_FIBER_UCONTEXT 1
#endif
#ifdef FR_FIBER_UCONTEXT
#include <ucontext.h>
#endif

#define MAX_WORKERS 64
#define KEEP_STACKS 256            /* stacks kept for reuse at most */

enum { W_RUNNING, W_PARKED, W_NOTIFIED };

typedef struct worker worker;

struct fr_waiter {
    fr_fiber *fiber;               /* the fiber, NULL for a plain thread */
    atomic_int state;              /* W_*: a thread sleeps on it (futex) */
    fr_waiter *next, *prev;        /* in an fr_cond's list, while waiting */
    bool listed;                   /* in one (guarded by that cond's mutex) */
};

/* What a fiber asks its worker to do once it has switched away. */
enum { ACT_NONE, ACT_PARK, ACT_EXIT };

struct fr_fiber {
    fr_waiter w;                   /* its waiter */
    void *sp;                      /* its saved stack pointer while switched out */
#ifdef FR_FIBER_UCONTEXT
    ucontext_t uc;                 /* its context */
#endif
    char *stack;                   /* the mapping: guard page, then the stack */
    size_t stack_size;             /* the mapping's size */
    void (*fn)(void *);            /* what it runs */
    void *arg;                     /* with what */
    fr_join *join;                 /* counted by this join, or NULL */
    worker *on;                    /* the worker running it */
    int action;                    /* ACT_*, for the worker */
    fr_fiber *next;                /* in the run queue */
    void *asan_fake;               /* ASan's fake stack while switched out */
};

struct worker {
    void *sp;                      /* its own stack pointer while a fiber runs */
#ifdef FR_FIBER_UCONTEXT
    ucontext_t uc;                 /* its context */
#endif
    fr_fiber *cur;                 /* the fiber it runs, or NULL */
    const void *stack_lo;          /* its own stack, for ASan */
    size_t stack_len;
    pthread_t thread;              /* the thread */
};

static struct {
    pthread_mutex_t mu;            /* guards everything below */
    pthread_cond_t cv;             /* work arrived, or stop */
    fr_fiber *head, *tail;         /* the run queue */
    int idle;                      /* workers waiting on cv */
    int nworkers;                  /* workers running */
    worker *workers;               /* [nworkers] */
    char **stacks;                 /* stacks kept for reuse */
    size_t nstacks;                /* how many */
} S = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static _Thread_local worker *this_worker;  /* the worker this thread is, or NULL */
static _Thread_local fr_waiter thread_waiter;  /* a plain thread's waiter */

/* ---- switching ------------------------------------------------------------ */

#ifndef FR_FIBER_UCONTEXT
/* fr_switch(save, to): saves the callee-saved registers, MXCSR and the x87
 * control word on this stack, stores the stack pointer in *save, and resumes
 * the stack at to.  A new fiber's stack is laid out so that it "returns"
 * into fiber_trampoline with the fiber in %rbx. */
void fr_switch(void **save, void *to);
void fr_fiber_trampoline(void);
__asm__(".text\n"
        ".globl fr_switch\n.hidden fr_switch\n.type fr_switch,@function\n"
        "fr_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size fr_switch, .-fr_switch\n"
        ".globl fr_fiber_trampoline\n.hidden fr_fiber_trampoline\n"
        ".type fr_fiber_trampoline,@function\n"
        "fr_fiber_trampoline:\n"
        "  movq %rbx, %rdi\n  andq $-16, %rsp\n  call fr_fiber_entry\n  ud2\n"
        ".size fr_fiber_trampoline, .-fr_fiber_trampoline\n");
#endif

void fr_fiber_entry(fr_fiber *f) __attribute__((noreturn, used));
static fr_fiber *fr_fiber_self(void);

/* The worker switches into f (returns when f switches back). */
static void switch_in(worker *w, fr_fiber *f)
{
#ifdef FR_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, f->stack + sysconf(_SC_PAGESIZE),
                                   f->stack_size - (size_t)sysconf(_SC_PAGESIZE));
#endif
#ifdef FR_FIBER_UCONTEXT
    swapcontext(&w->uc, &f->uc);
#else
    fr_switch(&w->sp, f->sp);
#endif
#ifdef FR_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* The running fiber f switches back to its worker (exit: for good). */
static void switch_out(fr_fiber *f, bool exit)
{
    worker *w = f->on;
#ifdef FR_ASAN
    __sanitizer_start_switch_fiber(exit ? NULL : &f->asan_fake, w->stack_lo, w->stack_len);
#endif
#ifdef FR_FIBER_UCONTEXT
    swapcontext(&f->uc, &w->uc);
#else
    fr_switch(&f->sp, w->sp);
#endif
#ifdef FR_ASAN
    /* resumed, maybe by another worker: note its stack for the next switch */
    worker *now = f->on;
    __sanitizer_finish_switch_fiber(f->asan_fake, &now->stack_lo, &now->stack_len);
#endif
}

void fr_fiber_entry(fr_fiber *f)
{
#ifdef FR_ASAN
    worker *now = f->on;
    __sanitizer_finish_switch_fiber(NULL, &now->stack_lo, &now->stack_len);
#endif
    f->fn(f->arg);
    f->action = ACT_EXIT;
    switch_out(f, true);
    abort();                       /* an exited fiber is never resumed */
}

#ifdef FR_FIBER_UCONTEXT
static void uc_entry(unsigned hi, unsigned lo)
{
    fr_fiber_entry((fr_fiber *)(((uintptr_t)hi << 32) | lo));
}
#endif

/* ---- stacks ---------------------------------------------------------------- */

static char *stack_get(void)
{
    pthread_mutex_lock(&S.mu);
    char *s = S.nstacks ? S.stacks[--S.nstacks] : NULL;
    pthread_mutex_unlock(&S.mu);
    if (s)
        return s;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    s = mmap(NULL, STACK_SIZE + page, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (s == MAP_FAILED)
        return NULL;
    mprotect(s, page, PROT_NONE);  /* the guard page */
    return s;
}

static void stack_put(char *s)
{
    pthread_mutex_lock(&S.mu);
    if (S.nstacks < KEEP_STACKS) {
        if (!S.stacks)
            S.stacks = malloc(KEEP_STACKS * sizeof *S.stacks);
        if (S.stacks) {
            S.stacks[S.nstacks++] = s;
            s = NULL;
        }
    }
    pthread_mutex_unlock(&S.mu);
    if (s)
        munmap(s, STACK_SIZE + (size_t)sysconf(_SC_PAGESIZE));
}

/* ---- the run queue and the workers ---------------------------------------- */

static void enqueue(fr_fiber *f)
{
    pthread_mutex_lock(&S.mu);
    f->next = NULL;
    if (S.tail)
        S.tail->next = f;
    else
        S.head = f;
    S.tail = f;
    if (S.idle)
        pthread_cond_signal(&S.cv);
    pthread_mutex_unlock(&S.mu);
}

static void fiber_free(fr_fiber *f)
{
    stack_put(f->stack);
    free(f);
}

/* After f switched back: what it asked for. */
static void after_switch(fr_fiber *f)
{
    if (f->action == ACT_EXIT) {
        fr_join *j = f->join;
        fiber_free(f);
        if (j) {
            pthread_mutex_lock(&j->mu);
            if (--j->count == 0)
                fr_cond_broadcast(&j->done);
            pthread_mutex_unlock(&j->mu);
        }
        return;
    }
    /* ACT_PARK: parked unless a wake-up came first */
    int s = W_RUNNING;
    if (!atomic_compare_exchange_strong(&f->w.state, &s, W_PARKED)) {
        atomic_store(&f->w.state, W_RUNNING);        /* it was W_NOTIFIED */
        enqueue(f);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    this_worker = w;
    pthread_mutex_lock(&S.mu);
    for (;;) {
        while (!S.head) {
            S.idle++;
            pthread_cond_wait(&S.cv, &S.mu);
            S.idle--;
        }
        fr_fiber *f = S.head;
        if (!(S.head = f->next))
            S.tail = NULL;
        pthread_mutex_unlock(&S.mu);
        f->on = w;
        f->action = ACT_NONE;
        w->cur = f;
        switch_in(w, f);
        w->cur = NULL;
        after_switch(f);
        pthread_mutex_lock(&S.mu);
    }
    return NULL;
}

static int worker_count(void)
{
    const char *e = getenv("FLOWRT_THREADS");
    long n = e && *e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

/* Starts the workers (S.mu held); false when none could start. */
static bool workers_start(void)
{
    int n = worker_count();
    S.workers = calloc((size_t)n, sizeof *S.workers);
    if (!S.workers)
        return false;
    sigset_t all, old;
    sigfillset(&all);              /* signals go to the main thread */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 1u << 20);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&S.workers[i].thread, &at, worker_main, &S.workers[i]) != 0)
            break;
        S.nworkers++;
    }
    pthread_attr_destroy(&at);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (S.nworkers == 0) {
        free(S.workers);
        S.workers = NULL;
    }
    return S.nworkers > 0;
}

/* ---- waiters ---------------------------------------------------------------- */

/* The current fiber (never inlined: a fiber may resume on another thread,
 * and the compiler must not keep a thread-local's address across that). */
__attribute__((noinline)) static fr_fiber *fr_fiber_self(void)
{
    worker *w = this_worker;
    return w ? w->cur : NULL;
}

__attribute__((noinline)) fr_waiter *fr_waiter_self(void)
{
    fr_fiber *f = fr_fiber_self();
    return f ? &f->w : &thread_waiter;
}

static long futex(atomic_int *a, int op, int val)
{
    return syscall(SYS_futex, (int *)a, op, val, NULL, NULL, 0);
}

void fr_park(void)
{
    fr_fiber *f = fr_fiber_self();
    if (f) {
        f->action = ACT_PARK;
        switch_out(f, false);
        return;
    }
    fr_waiter *w = &thread_waiter;
    int s = W_RUNNING;
    if (!atomic_compare_exchange_strong(&w->state, &s, W_PARKED)) {
        atomic_store(&w->state, W_RUNNING);          /* a wake-up came first */
        return;
    }
    while (atomic_load(&w->state) == W_PARKED)
        futex(&w->state, FUTEX_WAIT_PRIVATE, W_PARKED);
}

void fr_unpark(fr_waiter *w)
{
    for (;;) {
        int s = atomic_load(&w->state);
        if (s == W_NOTIFIED)
            return;
        if (s == W_RUNNING) {
            if (atomic_compare_exchange_weak(&w->state, &s, W_NOTIFIED))
                return;
            continue;
        }
        if (atomic_compare_exchange_weak(&w->state, &s, W_RUNNING)) {
            if (w->fiber)
                enqueue(w->fiber);
            else
                futex(&w->state, FUTEX_WAKE_PRIVATE, 1);
            return;
        }
    }
}

bool fr_in_fiber(void)
{
    return fr_fiber_self() != NULL;
}

/* ---- condition variables ------------------------------------------------------ */

static void unlist(fr_cond *c, fr_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        c->tail = w->prev;
    w->next = w->prev = NULL;
    w->listed = false;
}

void fr_cond_wait(fr_cond *c, pthread_mutex_t *mu)
{
    fr_waiter *w = fr_waiter_self();
    w->next = NULL;
    w->prev = c->tail;
    if (c->tail)
        c->tail->next = w;
    else
        c->head = w;
    c->tail = w;
    w->listed = true;
    pthread_mutex_unlock(mu);
    fr_park();
    pthread_mutex_lock(mu);
    if (w->listed)                 /* woken by something else: take it out */
        unlist(c, w);
}

/* A timed wait's timer: unparks its waiter. */
typedef struct wtimer {
    fr_timer t;                    /* the loop's timer (first: the callback casts) */
    fr_waiter *w;                  /* whom it wakes */
    bool fired;                    /* it went off */
} wtimer;

static void wtimer_fire(fr_timer *t)
{
    wtimer *wt = (wtimer *)t;
    __atomic_store_n(&wt->fired, true, __ATOMIC_RELEASE);
    fr_unpark(wt->w);
}

bool fr_cond_timedwait(fr_cond *c, pthread_mutex_t *mu, int64_t deadline_ns)
{
    if (deadline_ns <= fr_mono_ns())
        return false;
    wtimer wt = { .t = { .slot = FR_TIMER_IDLE, .fn = wtimer_fire }, .w = fr_waiter_self() };
    if (!fr_timer_arm(&wt.t, deadline_ns)) {     /* no loop: wait without a bound */
        fr_cond_wait(c, mu);
        return true;
    }
    fr_cond_wait(c, mu);
    pthread_mutex_unlock(mu);
    fr_timer_cancel(&wt.t);        /* after this, it cannot fire any more */
    pthread_mutex_lock(mu);
    return !__atomic_load_n(&wt.fired, __ATOMIC_ACQUIRE);
}

void fr_cond_signal(fr_cond *c)
{
    fr_waiter *w = c->head;
    if (!w)
        return;
    unlist(c, w);
    fr_unpark(w);
}

void fr_cond_broadcast(fr_cond *c)
{
    while (c->head)
        fr_cond_signal(c);
}

/* ---- sleeping ------------------------------------------------------------------- */

void fr_sleep_until(int64_t deadline_ns)
{
    if (deadline_ns <= fr_mono_ns())
        return;
    wtimer wt = { .t = { .slot = FR_TIMER_IDLE, .fn = wtimer_fire }, .w = fr_waiter_self() };
    if (fr_in_fiber() && fr_timer_arm(&wt.t, deadline_ns)) {
        while (!__atomic_load_n(&wt.fired, __ATOMIC_ACQUIRE))
            fr_park();             /* an earlier wake-up was someone else's: again */
        fr_timer_cancel(&wt.t);    /* waits out the callback still unparking us */
        return;
    }
    struct timespec ts = { deadline_ns / 1000000000LL, deadline_ns % 1000000000LL };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void fr_sleep_ms(int64_t ms)
{
    if (ms > 0)
        fr_sleep_until(fr_mono_ns() + ms * 1000000LL);
}

/* ---- spawning and joining ------------------------------------------------------ */

void fr_join_init(fr_join *j)
{
    pthread_mutex_init(&j->mu, NULL);
    j->count = 0;
    j->done = (fr_cond){ NULL, NULL };
}

void fr_join_wait(fr_join *j)
{
    pthread_mutex_lock(&j->mu);
    while (j->count > 0)
        fr_cond_wait(&j->done, &j->mu);
    pthread_mutex_unlock(&j->mu);
    pthread_mutex_destroy(&j->mu);
}

/* The fiber and its stack come from calloc and mmap, not fr_malloc: as a
 * thread's creation was, starting a fiber is outside the allocation-failure
 * hook (its callers fall back: fewer workers, or the work done inline). */
bool fr_spawn(fr_join *j, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&S.mu);
    bool ok = S.nworkers > 0 || workers_start();
    pthread_mutex_unlock(&S.mu);
    fr_fiber *f = ok ? calloc(1, sizeof *f) : NULL;
    char *stack = f ? stack_get() : NULL;
    if (!stack) {
        free(f);
        return false;
    }
    f->w.fiber = f;
    atomic_init(&f->w.state, W_RUNNING);
    f->stack = stack;
    f->stack_size = STACK_SIZE + (size_t)sysconf(_SC_PAGESIZE);
    f->fn = fn, f->arg = arg, f->join = j;
#ifdef FR_FIBER_UCONTEXT
    getcontext(&f->uc);
    f->uc.uc_stack.ss_sp = stack + sysconf(_SC_PAGESIZE);
    f->uc.uc_stack.ss_size = STACK_SIZE;
    f->uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)f;
    makecontext(&f->uc, (void (*)(void))uc_entry, 2, (unsigned)(p >> 32), (unsigned)p);
#else
    /* the top: a zero return address, fr_fiber_trampoline to "return" to,
     * then %rbp .. %r15 (%rbx = f) and the MXCSR / x87 control words */
    uint64_t *top = (uint64_t *)(void *)(stack + f->stack_size);
    uint64_t *sp = top - 10;
    sp[0] = 0x1f80 | ((uint64_t)0x037f << 32); /* MXCSR, x87 control word */
    sp[1] = sp[2] = sp[3] = sp[4] = 0;  /* r15 .. r12 */
    sp[5] = (uint64_t)(uintptr_t)f;     /* rbx */
    sp[6] = 0;                          /* rbp: the end of the frame chain */
    sp[7] = (uint64_t)(uintptr_t)fr_fiber_trampoline;
    sp[8] = sp[9] = 0;
    f->sp = sp;
#endif
    if (j) {
        pthread_mutex_lock(&j->mu);
        j->count++;
        pthread_mutex_unlock(&j->mu);
    }
    enqueue(f);
    return true;
}

/* ---- from a plain thread -------------------------------------------------------- */

bool fr_sched_call(void (*fn)(void *), void *arg)
{
    if (fr_in_fiber()) {
        fn(arg);
        return true;
    }
    fr_join j;
    fr_join_init(&j);
    bool ok = fr_spawn(&j, fn, arg);
    fr_join_wait(&j);
    return ok;
}
