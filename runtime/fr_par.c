/*
 * fr_par.c: fan-out.  parallel for, pipeline for, parallel { }, and the item
 * paths that key journal entries and escalations.
 *
 * Workers are fibers (fr_sched.c): a worker that waits for a call parks and
 * costs a small stack, not a thread.  No fiber is created per item.  A
 * parallel for starts min(concurrency, items) workers (the caller is one of
 * them); each loops taking the next index from an atomic counter, so never
 * more than `concurrency` items are in flight.  Each worker owns one child context, reset per item: its path is
 * the parent's path plus "." and the index, its pool is released once the
 * item's value has been taken (a reference moved into the item's result
 * slot).  Results are collected in input order after the join.
 *
 * A pipeline starts each stage's own workers; items stream through queues
 * between stages, so item 1 can be in the last stage while item 50 is in the
 * first.  An item has its own context from its first stage to its last, and
 * its earlier stages' values (prev[]) live in that context's pool.  Items
 * admitted but not finished are bounded, so a fast first stage cannot pile
 * up the whole input in front of a slow one.
 *
 * A failed item is dropped with a warning under on_error: skip; under halt,
 * or when a budget stops it, no new item starts, the ones in flight finish,
 * and the fan-out returns NULL with the first item's signal.  A budget stop
 * also leaves the finished items in run->partial for fr_main.  An item that
 * waits for approval stops nothing: every item runs and queues its own
 * approvals, so one round of decisions and one --resume finish the run; the
 * fan-out then returns NULL with FR_SIG_WAIT (unless something stopped it).
 */
#include "fr_internal.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_CONCURRENCY 16

/* ---- child contexts and threads ------------------------------------------ */

void fr_ctx_init_child(fr_ctx *parent, fr_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->run = parent->run;
    c->parent = parent;
    c->phase = parent->phase;
    memcpy(c->path, parent->path, parent->path_len + 1);
    c->path_len = parent->path_len;
    c->item = parent->item;
}

/* Appends ".index" (or "index" at the top) to a path of len bytes. */
static size_t path_append(char *path, size_t len, size_t index)
{
    int n = snprintf(path + len, 128 - len, "%s%zu", len ? "." : "", index);
    if (n < 0 || (size_t)n >= 128 - len)
        return 127;
    return len + (size_t)n;
}

void fr_ctx_set_item(fr_ctx *c, fr_ctx *parent, size_t index)
{
    memcpy(c->path, parent->path, parent->path_len);
    c->path_len = path_append(c->path, parent->path_len, index);
    c->seq = 0;
}

void fr_ctx_fini(fr_ctx *c)
{
    fr_pool_free(c);
    fr_sig_clear(c);
}

void fr_item_enter(fr_ctx *cx, size_t index, size_t *saved)
{
    *saved = cx->path_len;
    cx->path_len = path_append(cx->path, cx->path_len, index);
}

void fr_item_leave(fr_ctx *cx, size_t saved)
{
    cx->path_len = saved;
    cx->path[saved] = '\0';
}

/* ---- what a fan-out shares: the first stop, the results ------------------ */

typedef struct fan {
    fr_ctx *parent;                /* the context that fanned out */
    const fr_par_opts *opts;       /* concurrency, on_error, where */
    json_t *list;                  /* the items, NULL when they stream from a reader */
    size_t n;                      /* items */
    json_t **slots;                /* each item's value (a reference), NULL if dropped */
    size_t nslots;                 /* n, or a streaming pipeline's window */
    const char *file;              /* a streamed pipeline's input file (the skipped file) */
    bool top;                      /* the root's fan-out: it drives the progress line */
    size_t done;                   /* atomic: items processed (finished or dropped) */
    int stop;                      /* atomic: take no new item */
    pthread_mutex_t mu;            /* guards the fields below */
    fr_sig sig;                    /* the stopping item's signal, FR_OK if none */
    char *msg;                     /* its message (fr_malloc'd) */
    const char *where;             /* its err_where */
    char path[128];                /* its path */
    size_t waits;                  /* items waiting for approval */
    char *wait_msg;                /* the first waiting item's message (fr_malloc'd) */
    const char *wait_where;        /* its err_where */
    char wait_path[128];           /* its path */
} fan;

static int limit_workers(fr_ctx *cx, int conc, size_t n)
{
    if (conc <= 0)
        conc = DEFAULT_CONCURRENCY;
    if (cx->run->concurrency > 0 && conc > cx->run->concurrency)
        conc = cx->run->concurrency;
    if ((size_t)conc > n)
        conc = (int)n;
    return conc < 1 ? 1 : conc;
}

/* nslots: n, or fewer for a streaming pipeline (its window) */
static bool fan_init(fan *f, fr_ctx *parent, const fr_par_opts *opts, json_t *list, size_t n,
                     size_t nslots)
{
    memset(f, 0, sizeof *f);
    f->parent = parent, f->opts = opts, f->list = list, f->n = n;
    f->top = parent->parent == NULL;
    f->nslots = nslots;
    f->slots = fr_calloc(nslots ? nslots : 1, sizeof *f->slots);
    pthread_mutex_init(&f->mu, NULL);
    if (f->top) {
        __atomic_store_n(&parent->run->prog_done, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&parent->run->prog_total, n, __ATOMIC_RELAXED);
    }
    return f->slots != NULL;
}

/* No new item starts: an item stopped the fan-out, or Ctrl-C came. */
static bool fan_stopped(fan *f)
{
    return __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) != 0 || fr_interrupted(f->parent->run);
}

static void item_done(fan *f)
{
    __atomic_add_fetch(&f->done, 1, __ATOMIC_RELAXED);
    if (f->top)
        __atomic_add_fetch(&f->parent->run->prog_done, 1, __ATOMIC_RELAXED);
}

/* An item waits for approval: note it and go on with the others. */
static void item_waits(fan *f, fr_ctx *c)
{
    pthread_mutex_lock(&f->mu);
    if (f->waits++ == 0) {
        f->wait_msg = fr_strdup(c->err ? c->err : "waiting for approval");
        f->wait_where = c->err_where;
        memcpy(f->wait_path, c->path, sizeof f->wait_path);
    }
    pthread_mutex_unlock(&f->mu);
}

/* Item index came back without a value: drop it (true), warning when it
 * failed (and writing it to the skipped file), note it when it waits, or
 * stop the fan-out (false: the item is not done). */
static bool item_failed(fan *f, fr_ctx *c, size_t index, long line)
{
    fr_sig s = c->sig;
    if (s == FR_SIG_SKIP || s == FR_SIG_ESCALATE || s == FR_OK)
        return true;
    if (s == FR_SIG_WAIT) {
        item_waits(f, c);
        return true;
    }
    const char *why = c->err ? c->err : "failed";
    if ((s == FR_SIG_FAIL || s == FR_SIG_USAGE || s == FR_SIG_HALT)
        && f->opts->on_error == FR_ON_ERROR_SKIP) {
        fr_run *run = c->run;
        fprintf(stderr, "%swarning: item %s skipped: %s%s%s\n",
                run->progress ? "\r\033[K" : "", c->path,
                c->err_where ? c->err_where : "", c->err_where ? ": " : "", why);
        pthread_mutex_lock(&run->mu);
        fr_stats_of(run, c->phase)->items_failed++;
        pthread_mutex_unlock(&run->mu);
        if (f->file)
            fr_skipped_at(c, f->opts->where, f->file, line);
        else
            fr_skipped(c, f->opts->where, f->list, index);
        return true;
    }
    pthread_mutex_lock(&f->mu);
    if (f->sig == FR_OK) {
        f->sig = s;
        f->msg = fr_strdup(why);
        f->where = c->err_where;
        memcpy(f->path, c->path, sizeof f->path);
    }
    pthread_mutex_unlock(&f->mu);
    /* A budget stop in a resumed run lets the other items through: no request
     * can start any more, so each either finishes from the journal or stops
     * at its first call, and the partial file holds everything finished so
     * far, not only what this process got to before the stop. */
    if (s != FR_SIG_BUDGET || !fr_journal_serves(c->run))
        __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
    return false;
}

/* Out of memory mid-fan-out: the fan-out fails and takes no new item. */
static void fan_oom(fan *f)
{
    pthread_mutex_lock(&f->mu);
    if (f->sig == FR_OK) {
        f->sig = FR_SIG_FAIL;
        f->msg = fr_strdup("out of memory");
    }
    pthread_mutex_unlock(&f->mu);
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
}

static char dropped;               /* a streaming pipeline's slot of a dropped item */
#define DROPPED ((json_t *)&dropped)

/* A streaming pipeline's reader failed (its file changed while read): the
 * fan-out fails with its message and takes no new item. */
static void fan_source_failed_f(fan *f, const char *why)
{
    pthread_mutex_lock(&f->mu);
    if (f->sig == FR_OK) {
        f->sig = FR_SIG_FAIL;
        f->msg = fr_strdup(why);
    }
    pthread_mutex_unlock(&f->mu);
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
}

/* The finished items in input order, as a new list (NULL when out of
 * memory); the slots are emptied.  (A streaming pipeline's values went to
 * its writer: an empty list, what is left in the window let go.) */
static json_t *collect(fan *f)
{
    json_t *out = json_array();
    bool ok = out != NULL;
    bool shard = fr_shard_on();
    for (size_t i = 0; i < f->nslots; i++) {
        if (!f->list && f->slots[i] != DROPPED)
            json_decref(f->slots[i]);
        else if (f->list && f->slots[i] && json_array_append_new(out, f->slots[i]) != 0)
            ok = false;                 /* jansson dropped the value */
        else if (f->list && f->slots[i] && shard)  /* a row keeps its position for merge */
            fr_shard_step(f->parent, f->list, i, out);
        f->slots[i] = NULL;
    }
    if (!ok)
        json_decref(out);
    return ok ? out : NULL;
}

/* The fan-out's items waited for approval: NULL with FR_SIG_WAIT on the
 * parent, saying how many and the first one's message. */
static void fan_waits(fan *f)
{
    fr_ctx *cx = f->parent;
    const char *msg = f->wait_msg ? f->wait_msg : "waiting for approval";
    if (f->waits == 1)
        fr_fail(cx, f->wait_where, "item %s: %s", f->wait_path, msg);
    else
        fr_fail(cx, f->wait_where, "%zu items wait; the first, item %s: %s", f->waits,
                f->wait_path, msg);
    cx->sig = FR_SIG_WAIT;
}

/* Ends a fan-out: its values (borrowed from the parent's pool), or NULL with
 * the stopping item's signal on the parent (a stop outranks a wait). */
static json_t *fan_finish(fan *f)
{
    fr_ctx *cx = f->parent;
    json_t *out = collect(f);
    json_t *ret = NULL;
    if (f->sig == FR_OK && f->done < f->n && fr_interrupted(cx->run)) {
        f->sig = FR_SIG_STOP;          /* Ctrl-C: the items left never started */
        f->msg = fr_strdup("interrupted");
        memcpy(f->path, cx->path, sizeof f->path);
    }
    if (f->sig == FR_SIG_STOP && f->top && fr_interrupted(cx->run)) {
        fr_run *run = cx->run;         /* how far it got, for the interrupted run's report */
        pthread_mutex_lock(&run->mu);
        run->partial_total = f->n;
        run->partial_done = f->done;
        run->partial_phase = cx->phase;
        pthread_mutex_unlock(&run->mu);
    }
    if (f->sig == FR_OK && f->waits) {
        json_decref(out);
        fan_waits(f);
    } else if (f->sig == FR_OK) {
        ret = fr_keep(cx, out);
    } else if (f->sig == FR_SIG_BUDGET) {
        fr_run *run = cx->run;
        pthread_mutex_lock(&run->mu);
        json_decref(run->partial);
        run->partial = out;
        run->partial_total = f->n;
        run->partial_done = f->done;
        run->partial_phase = cx->phase;
        pthread_mutex_unlock(&run->mu);
        fr_fail(cx, f->where, "%s", f->msg ? f->msg : "budget spent");
        cx->sig = FR_SIG_BUDGET;
    } else {
        json_decref(out);
        fr_fail(cx, f->where ? f->where : f->opts->where, "item %s: %s", f->path,
                f->msg ? f->msg : "failed");
        cx->sig = f->sig == FR_SIG_HALT ? FR_SIG_FAIL : f->sig;
    }
    fr_free(f->msg);
    fr_free(f->wait_msg);
    fr_free(f->slots);
    pthread_mutex_destroy(&f->mu);
    return ret;
}

/* ---- parallel for -------------------------------------------------------- */

/* One parallel for: the fan plus its body. */
typedef struct pfor {
    fan f;                         /* shared state */
    json_t *list;                  /* the items */
    fr_body_fn body;               /* the loop body */
    void *env;                     /* its captured variables */
    size_t next;                   /* atomic: the next index to take */
} pfor;

static void pfor_worker(void *arg)
{
    pfor *p = arg;
    fr_ctx c;
    fr_ctx_init_child(p->f.parent, &c);
    while (!fan_stopped(&p->f)) {
        size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
        if (i >= p->f.n)
            break;
        fr_ctx_set_item(&c, p->f.parent, i);
        c.item = json_array_get(p->list, i);
        c.sig = FR_OK;
        json_t *v = p->body(&c, c.item, i, p->env);
        if (v)
            p->f.slots[i] = json_incref(v);
        if (v || item_failed(&p->f, &c, i, -1))
            item_done(&p->f);
        fr_release(&c, 0);
        fr_sig_clear(&c);
    }
    fr_ctx_fini(&c);
}

/* parallel for x in xs (concurrency: N, on_error: skip|halt) { body } */
json_t *fr_parallel_for(fr_ctx *cx, json_t *list, const fr_par_opts *opts,
                        fr_body_fn body, void *env)
{
    if (fr_batch_collecting()) {           /* a batch fan-out's first pass stops here */
        cx->sig = FR_SIG_SKIP;
        return NULL;
    }
    if (opts->shard && fr_shard_on() && !(list = fr_shard_take(cx, list, opts)))
        return NULL;                       /* this shard's share of the items */
    if (opts->batch && !fr_batch_prepass(cx, list, opts, body, env))
        return NULL;                       /* a budget refused a batch: cx says which */
    pfor p = { .list = list, .body = body, .env = env };
    size_t n = json_array_size(list);
    if (!fan_init(&p.f, cx, opts, list, n, n))
        return fr_fail(cx, opts->where, "out of memory");
    int nw = limit_workers(cx, opts->concurrency, n);
    fr_join j;
    fr_join_init(&j);
    for (int i = 1; i < nw && fr_spawn(&j, pfor_worker, &p); i++)
        ;
    if (n)
        pfor_worker(&p);
    fr_join_wait(&j);
    return fan_finish(&p.f);
}

/* ---- pipeline ------------------------------------------------------------ */

/* One item on its way through the stages. */
typedef struct pitem {
    struct pitem *next;            /* queue link */
    size_t index;                  /* its input position */
    json_t *own;                   /* a streamed item (a reference), else NULL */
    long line;                     /* a streamed item's line in its file */
    fr_ctx cx;                     /* its context: prev[] values live in its pool */
    json_t *prev[];                /* the values of the stages it has passed */
} pitem;

/* A queue of items waiting for one stage. */
typedef struct pqueue {
    pitem *head, *tail;            /* FIFO */
    fr_cond cv;                    /* an item arrived, or the queue closed */
    int alive;                     /* workers of this stage still running */
} pqueue;

/* One pipeline: the fan plus stages, queues and admission. */
typedef struct pline {
    fan f;                         /* shared state */
    json_t *list;                  /* the items */
    int nstages;                   /* stages */
    const fr_stage *stages;        /* their bodies */
    void *env;                     /* captured variables */
    pthread_mutex_t mu;            /* guards queues and admission */
    pqueue *q;                     /* q[k]: items waiting for stage k (q[0]: admission) */
    size_t next;                   /* the next index to admit */
    size_t live;                   /* items admitted and not finished */
    size_t max_live;               /* admission bound */
    const fr_stream *st;           /* streaming: where items come from and values go */
    size_t out_next;               /* streaming: the next index to hand to st->put */
} pline;

/* A stage worker's argument. */
typedef struct pworker {
    pline *p;                       /* its pipeline */
    int k;                         /* its stage */
} pworker;

static pitem *pitem_new(pline *p, size_t index)
{
    pitem *it = fr_calloc(1, sizeof *it + (size_t)p->nstages * sizeof(json_t *));
    if (!it)
        return NULL;
    it->index = index;
    if (p->st && !(it->own = p->st->next(p->st->arg, &it->line))) {
        fr_free(it);
        return NULL;
    }
    fr_ctx_init_child(p->f.parent, &it->cx);
    fr_ctx_set_item(&it->cx, p->f.parent, index);
    it->cx.item = p->st ? it->own : json_array_get(p->list, index);
    return it;
}

static void pitem_free(pitem *it)
{
    json_decref(it->own);
    fr_ctx_fini(&it->cx);
    fr_free(it);
}

static void wake_all(pline *p)
{
    for (int k = 0; k < p->nstages; k++)
        fr_cond_broadcast(&p->q[k].cv);
}

static void fan_source_failed(pline *p);

/* Waits (p->mu held) for an item for stage k: NULL when there is none to come. */
static pitem *take(pline *p, int k)
{
    pqueue *q = &p->q[k];
    if (k == 0) {
        while (!fan_stopped(&p->f) && p->next < p->f.n &&
               (p->live >= p->max_live || (p->st && p->next - p->out_next >= p->f.nslots)))
            fr_cond_wait(&q->cv, &p->mu);
        if (fan_stopped(&p->f) || p->next >= p->f.n)
            return NULL;
        pitem *it = pitem_new(p, p->next++);
        if (p->next >= p->f.n)     /* the last item: the other admitters end */
            fr_cond_broadcast(&q->cv);
        if (it)
            p->live++;
        else if (p->st)
            fan_source_failed(p), wake_all(p);
        else
            fan_oom(&p->f), wake_all(p);
        return it;
    }
    while (!fan_stopped(&p->f) && !q->head && p->q[k - 1].alive > 0)
        fr_cond_wait(&q->cv, &p->mu);
    pitem *it = fan_stopped(&p->f) ? NULL : q->head;
    if (it && !(q->head = it->next))
        q->tail = NULL;
    return it;
}

static void push(pqueue *q, pitem *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    fr_cond_signal(&q->cv);
}

static void fan_source_failed(pline *p)
{
    const char *why = p->st->why ? p->st->why(p->st->arg) : NULL;
    fan_source_failed_f(&p->f, why ? why : "out of memory");
}

/* Streaming (p->mu held): the values now in input order go to the writer,
 * dropped items skipped; the window moves on. */
static void hand_on(pline *p)
{
    fan *f = &p->f;
    json_t **slot;
    while (*(slot = &f->slots[p->out_next % f->nslots]) != NULL) {
        json_t *v = *slot;
        *slot = NULL;
        p->out_next++;
        if (v != DROPPED) {
            bool ok = p->st->put(p->st->arg, v);
            json_decref(v);
            if (!ok && f->sig == FR_OK) {        /* the writer says why */
                f->sig = FR_SIG_FAIL;
                f->msg = fr_strdup("the output cannot be written");
                __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
                wake_all(p);
            }
        }
    }
}

/* An item leaves the pipeline (p->mu held): admission may go on. */
static void leave(pline *p, pitem *it, bool done)
{
    p->live--;
    fr_cond_signal(&p->q[0].cv);
    if (done)
        item_done(&p->f);
    if (done && p->st) {
        json_t **slot = &p->f.slots[it->index % p->f.nslots];
        if (!*slot)
            *slot = DROPPED;
        size_t was = p->out_next;
        hand_on(p);
        for (; was < p->out_next; was++)       /* each slot the window freed: an item */
            fr_cond_signal(&p->q[0].cv);
    }
    pitem_free(it);
}

/* Runs stage k on it; the value moves it on, or it leaves. (p->mu held on
 * return, not during the stage.) */
static void run_stage(pline *p, int k, pitem *it)
{
    fr_ctx *c = &it->cx;
    c->sig = FR_OK;
    json_t *v = p->stages[k].fn(c, c->item, it->prev, it->index, p->env);
    bool done = v || item_failed(&p->f, c, it->index, it->line);
    pthread_mutex_lock(&p->mu);
    if (v && k + 1 < p->nstages) {
        it->prev[k] = v;
        push(&p->q[k + 1], it);
        return;
    }
    if (v)
        p->f.slots[p->st ? it->index % p->f.nslots : it->index] = json_incref(v);
    leave(p, it, done);
    if (fan_stopped(&p->f))
        wake_all(p);
}

static void stage_worker(void *arg)
{
    pworker *w = arg;
    pline *p = w->p;
    pthread_mutex_lock(&p->mu);
    pitem *it;
    while ((it = take(p, w->k)) != NULL) {
        pthread_mutex_unlock(&p->mu);
        run_stage(p, w->k, it);
    }
    if (--p->q[w->k].alive == 0 && w->k + 1 < p->nstages)
        fr_cond_broadcast(&p->q[w->k + 1].cv);
    pthread_mutex_unlock(&p->mu);
}

static void pipe_drain(pline *p)
{
    for (int k = 0; k < p->nstages; k++) {
        pitem *it = p->q[k].head;
        while (it) {
            pitem *nx = it->next;
            pitem_free(it);
            it = nx;
        }
    }
}

static int stage_workers(pline *p, int k)
{
    return limit_workers(p->f.parent, p->stages[k].concurrency > 0
                         ? p->stages[k].concurrency : p->f.opts->concurrency, p->f.n);
}

/* A stage without workers: nothing can finish, so the pipeline stops. */
static void no_workers(pline *p)
{
    fan_oom(&p->f);
    pthread_mutex_lock(&p->mu);
    wake_all(p);
    pthread_mutex_unlock(&p->mu);
}

/* Starts each stage's workers, counted by j. */
static void pipe_start(pline *p, pworker *w, fr_join *j)
{
    for (int k = 0; k < p->nstages; k++)
        p->max_live += 2 * (size_t)stage_workers(p, k);
    for (int k = 0; k < p->nstages; k++) {
        int nw = stage_workers(p, k), started = 0;
        w[k] = (pworker){ p, k };
        for (int i = 0; i < nw; i++) {
            pthread_mutex_lock(&p->mu);
            bool ok = fr_spawn(j, stage_worker, &w[k]);
            if (ok)
                p->q[k].alive++, started++;
            pthread_mutex_unlock(&p->mu);
            if (!ok)
                break;
        }
        if (started == 0) {
            no_workers(p);
            break;
        }
    }
}

/* pipeline for x in xs (...) { stage a (concurrency: N) { } ... }, its
 * items from list or, streaming, from st */
static json_t *pipeline(fr_ctx *cx, json_t *list, const fr_stream *st,
                        const fr_par_opts *opts, int nstages, const fr_stage *stages, void *env)
{
    if (fr_batch_collecting()) {           /* a batch fan-out's first pass stops here */
        cx->sig = FR_SIG_SKIP;
        return NULL;
    }
    if (!st && opts->shard && fr_shard_on() && !(list = fr_shard_take(cx, list, opts)))
        return NULL;                       /* this shard's share of the items */
    pline p = { .list = list, .nstages = nstages, .stages = stages, .env = env, .st = st };
    size_t n = st ? st->n : json_array_size(list), window = n;
    if (st) {                      /* values waiting for an earlier one, at most */
        window = 64;
        for (int k = 0; k < nstages; k++)
            window += 8 * (size_t)limit_workers(cx, stages[k].concurrency > 0
                                                ? stages[k].concurrency : opts->concurrency, n);
        window = window < n ? window : n;
    }
    if (!fan_init(&p.f, cx, opts, list, n, window))
        return fr_fail(cx, opts->where, "out of memory");
    p.f.file = st ? st->file : NULL;
    p.q = fr_calloc((size_t)nstages, sizeof *p.q);
    pworker *w = fr_calloc((size_t)nstages, sizeof *w);
    pthread_mutex_init(&p.mu, NULL);
    if (p.q && w && n) {
        fr_join j;
        fr_join_init(&j);
        pipe_start(&p, w, &j);
        fr_join_wait(&j);
        pipe_drain(&p);
    } else if (n) {
        fan_oom(&p.f);
    }
    pthread_mutex_destroy(&p.mu);
    fr_free(p.q), fr_free(w);
    return fan_finish(&p.f);
}

json_t *fr_pipeline(fr_ctx *cx, json_t *list, const fr_par_opts *opts, int nstages,
                    const fr_stage *stages, void *env)
{
    return pipeline(cx, list, NULL, opts, nstages, stages, env);
}

json_t *fr_pipeline_stream(fr_ctx *cx, const fr_stream *st, const fr_par_opts *opts,
                           int nstages, const fr_stage *stages, void *env)
{
    return pipeline(cx, NULL, st, opts, nstages, stages, env);
}

/* ---- parallel { } -------------------------------------------------------- */

/* One statement of a parallel block. */
typedef struct ptask {
    fr_ctx cx;                     /* its child context */
    fr_task_fn fn;                 /* the statement */
    void *env;                     /* the block's variables */
    bool ok;                       /* it succeeded */
} ptask;

static void task_main(void *arg)
{
    ptask *pt = arg;
    pt->ok = pt->fn(&pt->cx, pt->env);
}

/* Makes room in cx's pool for need values in all, so merging cannot fail
 * half way (a value dropped there may be one the block's variables hold). */
static bool pool_room(fr_ctx *cx, size_t need)
{
    if (need <= cx->cap)
        return true;
    json_t **p = fr_realloc(cx->pool, need * sizeof *p);
    if (!p)
        return false;
    cx->pool = p;
    cx->cap = need;
    return true;
}

/* Moves a child's pool into the parent's (when there is room), and its
 * failure if it is the first. */
static void task_merge(fr_ctx *cx, ptask *pt, bool room, bool *failed)
{
    for (size_t i = 0; room && i < pt->cx.npool; i++)
        cx->pool[cx->npool++] = pt->cx.pool[i];
    if (room)
        pt->cx.npool = 0;
    if (!pt->ok && !*failed) {
        *failed = true;
        fr_sig_clear(cx);
        cx->sig = pt->cx.sig;
        cx->err = pt->cx.err;
        cx->err_where = pt->cx.err_where;
        pt->cx.err = NULL;
    }
    fr_ctx_fini(&pt->cx);
}

/* parallel { let a = f(x)  let b = g(x) } */
bool fr_parallel_block(fr_ctx *cx, int ntasks, const fr_task_fn *tasks, void *env)
{
    if (fr_batch_collecting()) {           /* a batch fan-out's first pass stops here */
        cx->sig = FR_SIG_SKIP;
        return false;
    }
    ptask *pt = fr_calloc((size_t)(ntasks > 0 ? ntasks : 1), sizeof *pt);
    if (!pt)
        return fr_fail(cx, NULL, "out of memory") != NULL;
    fr_join j;
    fr_join_init(&j);
    for (int i = 0; i < ntasks; i++) {
        fr_ctx_init_child(cx, &pt[i].cx);
        pt[i].cx.seq = cx->seq + ((uint32_t)i << 20);  /* distinct journal keys per task */
        pt[i].fn = tasks[i], pt[i].env = env;
        if (i + 1 == ntasks || !fr_spawn(&j, task_main, &pt[i]))
            task_main(&pt[i]);
    }
    fr_join_wait(&j);
    size_t need = cx->npool;
    for (int i = 0; i < ntasks; i++)
        need += pt[i].cx.npool;
    bool room = pool_room(cx, need), failed = false;
    for (int i = 0; i < ntasks; i++)
        task_merge(cx, &pt[i], room, &failed);
    if (!room && !failed)
        failed = true, fr_oom(cx);
    fr_free(pt);
    return !failed;
}

/* ---- sequential loops whose items wait for approval ----------------------- */

void fr_item_waits(fr_ctx *cx, size_t index, size_t *waits, json_t **first)
{
    if ((*waits)++ == 0) {
        fr_buf b = { 0 };
        fr_buf_printf(&b, "item %.*s%s%zu: %s", (int)cx->path_len, cx->path,
                      cx->path_len ? "." : "", index, cx->err ? cx->err : "waiting for approval");
        if (!fr_buf_failed(&b) && b.s)
            *first = fr_str(cx, b.s);
        fr_buf_free(&b);
    }
    fr_sig_clear(cx);
}

bool fr_loop_waited(fr_ctx *cx, size_t waits, json_t *first, const char *where)
{
    if (waits == 0)
        return true;
    const char *msg = first ? json_string_value(first) : "items wait for approval";
    if (waits == 1)
        fr_fail(cx, where, "%s", msg);
    else
        fr_fail(cx, where, "%zu items wait; the first, %s", waits, msg);
    cx->sig = FR_SIG_WAIT;
    return false;
}
