/*
 * fr_net.c: the transport under every HTTP request the runtime makes (the
 * providers' calls and the http operations, fr_http.c): one request in, one
 * response out, asynchronous underneath.
 *
 * A caller configures an easy handle (fr_net_handle, from a pool) and calls
 * fr_net_perform, which hands it to the event loop's thread (fr_loop.c) and
 * parks the calling fiber (a plain thread blocks) until it is done.  There
 * one libcurl multi handle drives every transfer through the loop's epoll:
 * a socket curl wants watched is an fr_watch, curl's timer is the loop's
 * driver deadline.  So ten thousand calls in flight cost ten thousand
 * sockets and parked fibers, not threads.  The multi handle keeps the
 * connection cache (HTTP/2 multiplexes over a few connections, HTTP/1.1
 * keeps them alive) and the DNS cache; TLS sessions are shared through a
 * CURLSH.  Only the loop thread touches the multi handle.
 *
 * File descriptors: the soft RLIMIT_NOFILE is raised to the hard limit on
 * first use, and connections are capped a little below it
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS): past the cap, transfers wait for a free
 * connection instead of failing, and the run says once that the limit is
 * what holds it back.
 *
 * libcurl is loaded with dlopen on the first request, not linked: a run
 * that makes none (--help, the mock, the journal's commands) does not pay
 * the ~17 ms and 8.5 MB that loading libcurl and its thirty libraries costs.
 * The price: a missing libcurl shows at the first request (with a message
 * naming the package), not when the binary starts.
 */
#define FR_WITH_CURL
#include <curl/curl.h>

#include "fr_internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define FD_RESERVE 64              /* descriptors kept for the journal, files, pipes */

fr_curl_api fr_curl;

static struct {
    pthread_once_t once;           /* libcurl is loaded once */
    bool loaded;                   /* and it was */
    char why[256];                 /* why not */
    CURLSH *share;                 /* TLS sessions of every handle */
    pthread_mutex_t share_mu;      /* the share's lock */
    pthread_mutex_t mu;            /* guards the pool and the completions */
    CURL **pool;                   /* idle easy handles */
    size_t npool, cap;             /* used and allocated slots */
    CURLM *multi;                  /* on the loop thread only */
    int64_t timeout_ns;            /* curl's next timeout (monotonic), -1 none */
    long max_conns;                /* the connection cap from the fd limit */
    rlim_t nofile;                 /* the soft fd limit after raising it */
    int active;                    /* transfers in the multi handle (loop thread) */
    bool warned;                   /* the fd limit was said to bind */
} N = { .once = PTHREAD_ONCE_INIT, .share_mu = PTHREAD_MUTEX_INITIALIZER,
        .mu = PTHREAD_MUTEX_INITIALIZER, .timeout_ns = -1 };

/* ---- loading libcurl -------------------------------------------------------- */

static void *open_libcurl(void)
{
    static const char *const names[] = { "libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (h)
            return h;
    }
    return NULL;
}

static void share_lock(CURL *c, curl_lock_data d, curl_lock_access a, void *p)
{
    pthread_mutex_lock(&N.share_mu);
}

static void share_unlock(CURL *c, curl_lock_data d, void *p)
{
    pthread_mutex_unlock(&N.share_mu);
}

/* libcurl's memory, cleared before it is freed: its header lists and the
 * request it builds from them hold the key, and a core dump or a later
 * allocation must not find it there (a run left a hundred copies behind). */
static void zfree(void *p)
{
    if (p) {
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
    }
}

static void *zrealloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {
        zfree(p);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    void *q = malloc(n);
    if (q) {
        memcpy(q, p, old < n ? old : n);
        zfree(p);
    }
    return q;
}

#define SYM(field, name)                                                        \
    if (!(*(void **)&fr_curl.field = dlsym(h, name))) {                          \
        snprintf(N.why, sizeof N.why, "libcurl has no %s (too old?)", name);    \
        return;                                                                 \
    }

static void load(void)
{
    void *h = open_libcurl();
    if (!h) {
        const char *e = dlerror();
        snprintf(N.why, sizeof N.why, "cannot load libcurl (%s); install the libcurl4 package",
                 e ? e : "not found");
        return;
    }
    SYM(global_init_mem, "curl_global_init_mem");
    SYM(easy_init, "curl_easy_init");
    SYM(easy_setopt, "curl_easy_setopt");
    SYM(easy_getinfo, "curl_easy_getinfo");
    SYM(easy_cleanup, "curl_easy_cleanup");
    SYM(easy_strerror, "curl_easy_strerror");
    SYM(easy_perform, "curl_easy_perform");
    SYM(slist_append, "curl_slist_append");
    SYM(slist_free_all, "curl_slist_free_all");
    SYM(getdate, "curl_getdate");
    SYM(share_init, "curl_share_init");
    SYM(share_setopt, "curl_share_setopt");
    SYM(multi_init, "curl_multi_init");
    SYM(multi_setopt, "curl_multi_setopt");
    SYM(multi_add_handle, "curl_multi_add_handle");
    SYM(multi_remove_handle, "curl_multi_remove_handle");
    SYM(multi_socket_action, "curl_multi_socket_action");
    SYM(multi_info_read, "curl_multi_info_read");
    SYM(multi_assign, "curl_multi_assign");
    SYM(multi_strerror, "curl_multi_strerror");
    CURLcode rc = fr_curl.global_init_mem(CURL_GLOBAL_DEFAULT, malloc, zfree, zrealloc, strdup,
                                          calloc);
    if (rc != CURLE_OK) {
        snprintf(N.why, sizeof N.why, "cannot start libcurl: %s", fr_curl.easy_strerror(rc));
        return;
    }
    N.share = fr_curl.share_init();
    if (N.share) {
        fr_curl.share_setopt(N.share, CURLSHOPT_LOCKFUNC, share_lock);
        fr_curl.share_setopt(N.share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        fr_curl.share_setopt(N.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    }
    N.loaded = true;
}

bool fr_curl_load(fr_buf *err)
{
    pthread_once(&N.once, load);
    if (!N.loaded && err)
        fr_buf_puts(err, N.why);
    return N.loaded;
}

/* ---- the handle pool --------------------------------------------------------- */

CURL *fr_net_handle(void)
{
    if (!fr_curl_load(NULL))
        return NULL;
    CURL *c = NULL;
    pthread_mutex_lock(&N.mu);
    if (N.npool > 0)
        c = N.pool[--N.npool];
    pthread_mutex_unlock(&N.mu);
    if (!c && (c = curl_easy_init()) && N.share)
        curl_easy_setopt(c, CURLOPT_SHARE, N.share);
    return c;
}

void fr_net_release(CURL *c)
{
    if (!c)
        return;
    curl_easy_setopt(c, CURLOPT_PRIVATE, NULL);
    pthread_mutex_lock(&N.mu);
    if (N.npool == N.cap) {
        size_t cap = N.cap ? N.cap * 2 : 16;
        CURL **p = fr_realloc(N.pool, cap * sizeof *p);
        if (p)
            N.pool = p, N.cap = cap;
    }
    if (N.npool < N.cap) {
        N.pool[N.npool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&N.mu);
    if (c)
        curl_easy_cleanup(c);
}

/* ---- descriptors ---------------------------------------------------------------- */

/* Raises the soft fd limit to the hard one; the connection cap below it. */
static void fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        N.max_conns = 1024 - FD_RESERVE;
        return;
    }
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = { want, rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &up) == 0)
            rl.rlim_cur = want;
    }
    N.nofile = rl.rlim_cur;
    rlim_t cur = rl.rlim_cur == RLIM_INFINITY ? (rlim_t)1 << 20 : rl.rlim_cur;
    N.max_conns = cur > 2 * FD_RESERVE ? (long)(cur - FD_RESERVE) : (long)(cur / 2);
}

/* ---- the multi handle, on the loop thread ------------------------------------- */

/* One request in flight: the fiber (or thread) that waits, and the result. */
typedef struct transfer {
    CURL *c;                       /* the configured handle */
    fr_waiter *w;                  /* who waits for it */
    CURLcode rc;                   /* curl's result */
    bool done;                     /* finished (guarded by N.mu) */
    struct transfer *prev, *next;  /* in the multi handle (loop thread) */
} transfer;

static transfer *in_multi;         /* the transfers in the multi handle (loop thread) */

static void unlink_transfer(transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        in_multi = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

/* A socket curl asked to watch. */
typedef struct sock {
    fr_watch w;                    /* the loop's watch (first: the callback casts) */
} sock;

static void finish(transfer *t, CURLcode rc)
{
    pthread_mutex_lock(&N.mu);
    t->rc = rc;
    t->done = true;
    fr_unpark(t->w);               /* under N.mu: the waiter cannot be gone yet */
    pthread_mutex_unlock(&N.mu);
}

static void reap(void)
{
    CURLMsg *m;
    int left;
    while ((m = fr_curl.multi_info_read(N.multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        transfer *t = NULL;
        CURL *c = m->easy_handle;
        CURLcode rc = m->data.result;
        curl_easy_getinfo(c, CURLINFO_PRIVATE, (char **)&t);
        fr_curl.multi_remove_handle(N.multi, c);
        N.active--;
        if (t) {
            unlink_transfer(t);
            finish(t, rc);
        }
    }
}

/* A socket callback failed: libcurl then refuses the multi handle for good,
 * so every transfer in it fails (transiently) and the next starts a new one. */
static void check_dead(CURLMcode mc)
{
    if (mc != CURLM_ABORTED_BY_CALLBACK)
        return;
    while (in_multi) {
        transfer *t = in_multi;
        unlink_transfer(t);
        fr_curl.multi_remove_handle(N.multi, t->c);
        finish(t, CURLE_OUT_OF_MEMORY);
    }
    N.active = 0;
    N.multi = NULL;                /* leaked: libcurl cannot clean up a dead one safely */
    N.timeout_ns = -1;
}

static void on_socket_ready(fr_watch *w, int what)
{
    int ev = ((what & FR_WATCH_IN) ? CURL_CSELECT_IN : 0) |
             ((what & FR_WATCH_OUT) ? CURL_CSELECT_OUT : 0);
    int running;
    CURLMcode mc = fr_curl.multi_socket_action(N.multi, w->fd, ev, &running);
    reap();
    check_dead(mc);
}

static int on_socket(CURL *c, curl_socket_t s, int what, void *userp, void *socketp)
{
    sock *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            fr_watch_retire(&k->w);    /* freed once the loop's events in hand are done */
            fr_curl.multi_assign(N.multi, s, NULL);
        }
        return 0;
    }
    if (!k) {
        if (!(k = calloc(1, sizeof *k)))   /* not the test hook: -1 kills the multi */
            return -1;
        k->w.fd = -1;
        k->w.fn = on_socket_ready;
        fr_curl.multi_assign(N.multi, s, k);
    }
    int want = (what == CURL_POLL_IN || what == CURL_POLL_INOUT ? FR_WATCH_IN : 0) |
               (what == CURL_POLL_OUT || what == CURL_POLL_INOUT ? FR_WATCH_OUT : 0);
    return fr_watch_set(&k->w, (int)s, want) ? 0 : -1;
}

static int on_timer(CURLM *m, long timeout_ms, void *userp)
{
    N.timeout_ns = timeout_ms < 0 ? -1 : fr_mono_ns() + (int64_t)timeout_ms * 1000000LL;
    return 0;
}

static int64_t deadline(void)
{
    return N.timeout_ns;
}

static void expire(void)
{
    int running;
    N.timeout_ns = -1;
    if (!N.multi)
        return;
    CURLMcode mc = fr_curl.multi_socket_action(N.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    reap();
    check_dead(mc);
}

static bool multi_start(void)
{
    if (N.max_conns == 0)
        fd_limit();
    N.multi = fr_curl.multi_init();
    if (!N.multi)
        return false;
    fr_curl.multi_setopt(N.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    fr_curl.multi_setopt(N.multi, CURLMOPT_TIMERFUNCTION, on_timer);
    fr_curl.multi_setopt(N.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, N.max_conns);
    /* keep idle connections for the next requests (libcurl's default keeps
     * four per transfer in the handle at the moment, and closes the rest) */
    fr_curl.multi_setopt(N.multi, CURLMOPT_MAXCONNECTS, N.max_conns);
    fr_loop_driver(deadline, expire);
    return true;
}

/* More transfers than connections: say once that the fd limit holds them. */
static void fd_warning(void)
{
    if (N.warned || N.active <= N.max_conns)
        return;
    N.warned = true;
    fprintf(stderr, "\r\033[Kwarning: more than %ld requests want to be in flight, but the limit"
            " on open files (ulimit -n: %llu, its hard limit) allows about %ld connections;"
            " the rest wait for a free one: raise the hard limit to run more at once\n",
            N.max_conns, (unsigned long long)N.nofile, N.max_conns);
}

static void add_transfer(void *arg)
{
    transfer *t = arg;
    if (!N.multi && !multi_start()) {
        finish(t, CURLE_OUT_OF_MEMORY);
        return;
    }
    CURLMcode mc = fr_curl.multi_add_handle(N.multi, t->c);
    if (mc != CURLM_OK) {
        finish(t, mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
        return;
    }
    t->prev = NULL;
    t->next = in_multi;
    if (in_multi)
        in_multi->prev = t;
    in_multi = t;
    N.active++;
    fd_warning();
}

CURLcode fr_net_perform(CURL *c)
{
    transfer t = { .c = c, .w = fr_waiter_self() };
    curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)&t);
    if (!fr_loop_post(add_transfer, &t))
        return CURLE_OUT_OF_MEMORY;
    for (;;) {
        pthread_mutex_lock(&N.mu);
        bool done = t.done;
        pthread_mutex_unlock(&N.mu);
        if (done)
            break;
        fr_park();
    }
    return t.rc;
}
