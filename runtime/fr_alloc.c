/*
 * fr_alloc.c: every allocation of the runtime, jansson's included, goes
 * through fr_malloc and friends, so a test can make the n-th allocation fail
 * and check that an error value comes back instead of a crash (SQLite's OOM
 * loop, curl's torture mode).
 *
 * The hook is one atomic countdown: fr_alloc_fail_after(n) arms it, each
 * allocation decrements it, and the one that takes it from 1 to 0 fails.  It
 * then stays disarmed, so the code that handles the failure can allocate its
 * error message.  A disarmed hook costs one relaxed atomic load.
 *
 * jansson is pointed at the same functions by a constructor that runs before
 * main, before any json_t exists, so jansson never frees what libc's malloc
 * did not give it.  jansson's parser ignores a failed allocation of its token
 * buffer (load.c lex_save) and then corrupts the heap, so the hook never
 * fails an allocation made inside fr_json_loadb: parse through it.
 */
#include "fr_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long countdown;      /* > 0: allocations left before the failing one */
static _Thread_local int shielded; /* > 0: inside jansson's parser, never fail */

/* True when this allocation is the one the test asked to fail. */
static bool alloc_fails(void)
{
    long n = atomic_load_explicit(&countdown, memory_order_relaxed);
    if (n <= 0 || shielded)
        return false;
    while (n > 0) {
        if (atomic_compare_exchange_weak(&countdown, &n, n - 1))
            return n == 1;
    }
    return false;
}

void fr_alloc_fail_after(long n)
{
    atomic_store(&countdown, n > 0 ? n : 0);
}

long fr_alloc_countdown(void)
{
    return atomic_load(&countdown);
}

void *fr_malloc(size_t n)
{
    if (alloc_fails())
        return NULL;
    return malloc(n ? n : 1);
}

void *fr_calloc(size_t n, size_t size)
{
    if (alloc_fails())
        return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *fr_realloc(void *p, size_t n)
{
    if (alloc_fails())
        return NULL;
    return realloc(p, n ? n : 1);
}

char *fr_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = fr_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void fr_free(void *p)
{
    free(p);
}

json_t *fr_json_loadb(const char *s, size_t n, size_t flags, json_error_t *err)
{
    shielded++;
    json_t *v = json_loadb(s, n, flags, err);
    shielded--;
    return v;
}

/* jansson's allocations count against the same hook. */
__attribute__((constructor)) static void alloc_init(void)
{
    json_set_alloc_funcs(fr_malloc, fr_free);
}
