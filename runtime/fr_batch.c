/*
 * fr_batch.c: `parallel for ... (batch: true)` through the providers' batch
 * APIs, at the batch price.
 *
 * A batch fan-out runs its body twice.  The first pass walks the items one
 * by one with a collector set for the thread: each item's first agent call
 * that the journal does not already hold is rendered, keyed as the journal
 * keys it, and collected instead of sent (the item stops there).  The
 * collected requests are grouped by model, split at the provider's limits
 * (Anthropic: 100,000 requests or 256 MB a batch; OpenAI: 50,000 requests or
 * 200 MB an input file), and each part is:
 *
 *   1. held against the budgets at its worst case (every request answered at
 *      max_tokens, at the batch price): a batch that does not fit is never
 *      submitted;
 *   2. submitted (Anthropic POST /v1/messages/batches; OpenAI: the JSONL
 *      uploaded with POST /files, purpose "batch", then POST /batches) and
 *      its id journaled before the first poll, so a killed run resumes by
 *      polling the same batch instead of submitting it again;
 *   3. polled until it ends, the progress on stderr; past the time budget or
 *      --batch-timeout it is cancelled, and what finished is kept;
 *   4. its results read (the results URL; the output and error files) and
 *      kept by custom_id for the second pass.
 *
 * The second pass is the ordinary parallel for: a call whose key has a batch
 * answer takes it as its first attempt (charged at the batch price, tier
 * "batch" in the journal) and validates it; an errored, expired or invalid
 * item goes on as a normal call with its retries (at the normal price).
 * Models without a batch API (mock, a provider other than anthropic or
 * openai) and --mock runs skip the first pass.
 */
#include "fr_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the first pass: collecting requests --------------------------------- */

typedef struct breq {
    const fr_agent *agent;         /* who is called */
    const fr_model *model;         /* on which model */
    char *system, *prompt;         /* rendered (malloc'd) */
    char key[FR_JKEY_MAX];         /* the journal's key of the call */
    int max_tokens;                /* the answer's cap */
    int part;                      /* which part of its model's batches */
    bool done;                     /* an answer came back for it */
} breq;

typedef struct bcollect {
    breq *v;                       /* the requests */
    size_t n, cap;                 /* used and allocated */
} bcollect;

static __thread bcollect *collecting;

bool fr_batch_collecting(void)
{
    return collecting != NULL;
}

bool fr_batch_collect(const fr_agent *a, const fr_model *m, const char *system,
                      const char *prompt, const char *key, int max_tokens)
{
    bcollect *c = collecting;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        breq *v = fr_realloc(c->v, cap * sizeof *v);
        if (!v)
            return false;
        c->v = v, c->cap = cap;
    }
    breq *r = &c->v[c->n];
    memset(r, 0, sizeof *r);
    r->agent = a, r->model = m, r->max_tokens = max_tokens;
    r->system = fr_strdup(system ? system : "");
    r->prompt = fr_strdup(prompt ? prompt : "");
    snprintf(r->key, sizeof r->key, "%s", key);
    if (!r->system || !r->prompt) {
        fr_free(r->system), fr_free(r->prompt);
        return false;
    }
    c->n++;
    return true;
}

/* ---- answers kept for the second pass ------------------------------------ */

struct fr_batch_store {
    pthread_mutex_t mu;            /* guards answers */
    json_t *answers;               /* key -> {"body": provider body, "wrapped": bool} */
};

static fr_batch_store *store_of(fr_run *run)
{
    pthread_mutex_lock(&run->mu);
    if (!run->batches) {
        run->batches = fr_calloc(1, sizeof *run->batches);
        if (run->batches) {
            pthread_mutex_init(&run->batches->mu, NULL);
            run->batches->answers = json_object();
        }
    }
    pthread_mutex_unlock(&run->mu);
    return run->batches;
}

void fr_batch_free(fr_run *run)
{
    if (!run->batches)
        return;
    json_decref(run->batches->answers);
    pthread_mutex_destroy(&run->batches->mu);
    fr_free(run->batches);
    run->batches = NULL;
}

bool fr_batch_take(fr_run *run, const fr_model *m, const char *key, fr_response *r)
{
    fr_batch_store *s = run->batches;
    if (!s || !key || !key[0])
        return false;
    pthread_mutex_lock(&s->mu);
    json_t *e = json_incref(json_object_get(s->answers, key));
    if (e)
        json_object_del(s->answers, key);
    pthread_mutex_unlock(&s->mu);
    if (!e)
        return false;
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
    r->http_status = 200;
    json_t *body = json_object_get(e, "body");
    bool wrapped = json_is_true(json_object_get(e, "wrapped"));
    if (strcmp(m->provider, "anthropic") == 0)
        fr_anthropic_parse(body, wrapped, r);
    else
        fr_openai_parse(body, wrapped, r);
    json_decref(e);
    return true;
}

/* ---- the wire --------------------------------------------------------------- */

typedef struct bctx {
    fr_run *run;
    const fr_model *model;
    bool anthropic;
    char base[512];                /* https://api.anthropic.com or .../v1 */
    const char *key;               /* the key, or NULL */
    char hdr[3][600];              /* headers */
    int nhdr;
} bctx;

static bool bctx_init(bctx *b, fr_run *run, const fr_model *m)
{
    memset(b, 0, sizeof *b);
    b->run = run, b->model = m;
    b->anthropic = strcmp(m->provider, "anthropic") == 0;
    const char *base = m->base_url;
    if (!base || !*base)
        base = getenv(b->anthropic ? "ANTHROPIC_BASE_URL" : "OPENAI_BASE_URL");
    if (!base || !*base)
        base = b->anthropic ? "https://api.anthropic.com" : "https://api.openai.com/v1";
    snprintf(b->base, sizeof b->base, "%s", base);
    size_t n = strlen(b->base);
    while (n && b->base[n - 1] == '/')
        b->base[--n] = '\0';
    bool keyless = m->api_key_env && !*m->api_key_env;
    const char *var = m->api_key_env && *m->api_key_env ? m->api_key_env
                      : b->anthropic ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
    b->key = keyless ? NULL : getenv(var);
    if (b->anthropic) {
        snprintf(b->hdr[0], sizeof b->hdr[0], "x-api-key: %s", b->key ? b->key : "");
        snprintf(b->hdr[1], sizeof b->hdr[1], "anthropic-version: 2023-06-01");
        b->nhdr = 2;
    } else if (b->key) {
        snprintf(b->hdr[0], sizeof b->hdr[0], "Authorization: Bearer %s", b->key);
        b->nhdr = 1;
    }
    return true;
}

/* One exchange; the answer's JSON (NULL, with *why, on failure). */
static json_t *xchg(bctx *b, const char *method, const char *path, const char *ctype,
                    const char *body, char **raw, char *why, size_t whycap)
{
    char url[1024], ct[256];
    const char *h[5];
    int nh = 0;
    for (int i = 0; i < b->nhdr; i++)
        h[nh++] = b->hdr[i];
    if (ctype) {
        snprintf(ct, sizeof ct, "Content-Type: %s", ctype);
        h[nh++] = ct;
    }
    snprintf(url, sizeof url, "%s%s", b->base, path);
    for (int attempt = 0;; attempt++) {
        fr_xreq rq = { method, url, h, nh, body, 120000 };
        fr_xres res;
        fr_http_exchange(b->run->http, &rq, &res);
        bool transient = res.status == 0 ? res.transient
                         : res.status == 429 || res.status == 408 || res.status >= 500;
        if (res.status >= 200 && res.status < 300) {
            json_t *v = raw ? NULL : json_loadb(res.body ? res.body : "", res.len, 0, NULL);
            if (raw) {
                *raw = res.body;
                res.body = NULL;
            }
            fr_xres_free(&res);
            if (!raw && !v)
                snprintf(why, whycap, "%s %s: the answer is not JSON", method, path);
            return raw ? json_true() : v;
        }
        if (!transient || attempt >= 5) {
            char *msg = res.body ? fr_strdup(res.body) : NULL;
            if (msg) {
                fr_http_scrub(&msg, b->key);
                fr_http_cut(msg, 300);
            }
            snprintf(why, whycap, "%s %s: %s%ld %s", method, path, res.status ? "HTTP " : "",
                     res.status, msg ? msg : res.error ? res.error : "");
            fr_free(msg);
            fr_xres_free(&res);
            return NULL;
        }
        int wait = res.retry_after_ms > 0 ? res.retry_after_ms : 500 << attempt;
        fr_xres_free(&res);
        fr_sleep_ms(wait);             /* a fiber parks; its thread runs others */
    }
}

/* custom_id of request i: letters, digits, '-' and '_', as both providers take. */
static void custom_id(char *out, size_t cap, size_t i)
{
    snprintf(out, cap, "item-%zu", i);
}

/* The request body of r, as a normal call would send it. */
static json_t *req_body(const breq *r, bool *wrapped)
{
    fr_request q = { r->agent, r->model, r->system, r->prompt, NULL, NULL, 0, 60000,
                     r->max_tokens, false, FR_OUT_DEFAULT, NULL, false, NULL, NULL };
    return strcmp(r->model->provider, "anthropic") == 0 ? fr_anthropic_body(&q, wrapped)
                                                         : fr_openai_body(&q, wrapped);
}

/* ---- one part: submit, poll, read ------------------------------------------- */

typedef struct bpart {
    breq **reqs;                   /* its requests */
    size_t n;                      /* how many */
    int index;                     /* its number in the fan-out */
    bool *wrapped;                 /* per request */
} bpart;

static json_t *submit_anthropic(bctx *b, bpart *p, char *why, size_t cap)
{
    json_t *rqs = json_array();
    for (size_t i = 0; i < p->n; i++) {
        char id[32];
        custom_id(id, sizeof id, i);
        json_array_append_new(rqs, json_pack("{s:s, s:o}", "custom_id", id, "params",
                                             req_body(p->reqs[i], &p->wrapped[i])));
    }
    json_t *o = json_pack("{s:o}", "requests", rqs);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    json_t *v = body ? xchg(b, "POST", "/v1/messages/batches", "application/json", body, NULL,
                            why, cap) : NULL;
    free(body);
    return v;
}

static json_t *submit_openai(bctx *b, bpart *p, char *file_id, size_t fcap, char *why,
                             size_t cap)
{
    fr_buf jl = { 0 }, mp = { 0 };
    for (size_t i = 0; i < p->n; i++) {
        char id[32];
        custom_id(id, sizeof id, i);
        json_t *line = json_pack("{s:s, s:s, s:s, s:o}", "custom_id", id, "method", "POST",
                                 "url", "/v1/chat/completions", "body",
                                 req_body(p->reqs[i], &p->wrapped[i]));
        char *s = json_dumps(line, JSON_COMPACT);
        json_decref(line);
        if (!s)
            return NULL;
        fr_buf_puts(&jl, s);
        fr_buf_puts(&jl, "\n");
        free(s);
    }
    const char *bd = "flowcbatchboundary7d3f";
    fr_buf_printf(&mp, "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                  "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"batch.jsonl\""
                  "\r\nContent-Type: application/jsonl\r\n\r\n", bd, bd);
    fr_buf_put(&mp, jl.s ? jl.s : "", jl.len);
    fr_buf_printf(&mp, "\r\n--%s--\r\n", bd);
    fr_buf_free(&jl);
    char ct[128];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", bd);
    json_t *f = xchg(b, "POST", "/files", ct, mp.s, NULL, why, cap);
    fr_buf_free(&mp);
    const char *fid = json_string_value(json_object_get(f, "id"));
    if (!fid) {
        if (f)
            snprintf(why, cap, "POST /files: no file id in the answer");
        json_decref(f);
        return NULL;
    }
    snprintf(file_id, fcap, "%s", fid);
    json_decref(f);
    json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s}}", "input_file_id", file_id, "endpoint",
                          "/v1/chat/completions", "completion_window", "24h", "metadata",
                          "flowc", "batch fan-out");
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    json_t *v = xchg(b, "POST", "/batches", "application/json", body, NULL, why, cap);
    free(body);
    return v;
}

/* The batch's status word and whether it has ended. */
static const char *status_of(bctx *b, json_t *v, bool *ended)
{
    const char *st = json_string_value(json_object_get(v, b->anthropic ? "processing_status"
                                                                         : "status"));
    st = st ? st : "?";
    *ended = b->anthropic ? strcmp(st, "ended") == 0
             : strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
               strcmp(st, "expired") == 0 || strcmp(st, "cancelled") == 0;
    return st;
}

static void progress(bctx *b, const char *id, json_t *v, size_t n)
{
    json_t *c = json_object_get(v, "request_counts");
    long long ok, err, busy;
    if (b->anthropic) {
        ok = json_integer_value(json_object_get(c, "succeeded"));
        err = json_integer_value(json_object_get(c, "errored")) +
              json_integer_value(json_object_get(c, "expired")) +
              json_integer_value(json_object_get(c, "canceled"));
        busy = json_integer_value(json_object_get(c, "processing"));
    } else {
        ok = json_integer_value(json_object_get(c, "completed"));
        err = json_integer_value(json_object_get(c, "failed"));
        busy = (long long)n - ok - err;
    }
    bool ended;
    const char *st = status_of(b, v, &ended);
    if (!b->run->quiet)
        fprintf(stderr, "batch %s (model %s, %s): %zu submitted, %lld in progress, %lld "
                "succeeded, %lld errored\n", id, b->model->name, st, n, busy, ok, err);
}

/* Reads one results file (JSON Lines) into the store; counts what came. */
static void read_results(bctx *b, bpart *p, const char *text, size_t *ok, size_t *bad)
{
    fr_batch_store *s = store_of(b->run);
    const char *line = text;
    while (s && line && *line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        json_t *v = len ? json_loadb(line, len, 0, NULL) : NULL;
        const char *cid = json_string_value(json_object_get(v, "custom_id"));
        size_t i = cid && strncmp(cid, "item-", 5) == 0 ? (size_t)strtoull(cid + 5, NULL, 10)
                                                        : (size_t)-1;
        json_t *body = NULL;
        if (v && i < p->n) {
            if (b->anthropic) {
                json_t *res = json_object_get(v, "result");
                const char *type = json_string_value(json_object_get(res, "type"));
                if (type && strcmp(type, "succeeded") == 0)
                    body = json_object_get(res, "message");
            } else {
                json_t *resp = json_object_get(v, "response");
                if (json_integer_value(json_object_get(resp, "status_code")) == 200)
                    body = json_object_get(resp, "body");
            }
        }
        if (body) {
            pthread_mutex_lock(&s->mu);
            json_object_set_new(s->answers, p->reqs[i]->key,
                                json_pack("{s:O, s:b}", "body", body, "wrapped",
                                          p->wrapped[i]));
            pthread_mutex_unlock(&s->mu);
            p->reqs[i]->done = true;
            (*ok)++;
        } else if (v) {
            (*bad)++;
        }
        json_decref(v);
        line = nl ? nl + 1 : NULL;
    }
}

static bool fetch_text(bctx *b, const char *path_or_url, char **text, char *why, size_t cap)
{
    char path[1024];
    const char *pth = path_or_url;
    size_t bl = strlen(b->base);
    /* Anthropic's results_url is absolute: keep its path under our base */
    const char *v1 = strstr(path_or_url, "/v1/messages/batches/");
    if (strncmp(path_or_url, b->base, bl) == 0)
        pth = path_or_url + bl;
    else if (v1)
        pth = v1;
    snprintf(path, sizeof path, "%s", pth);
    json_t *ok = xchg(b, "GET", path, NULL, NULL, text, why, cap);
    json_decref(ok);
    return ok != NULL;
}

static int64_t poll_ms(void)
{
    const char *e = getenv("FLOWRT_BATCH_POLL_MS");
    long v = e ? atol(e) : 0;
    return v > 0 ? v : 30000;
}

/* Submits (or finds the journaled) batch of part p, polls it to its end and
 * reads its results.  false with cx's signal set when the run must stop. */
static bool run_part(fr_ctx *cx, bctx *b, bpart *p, const char *fanout, int64_t deadline_ms)
{
    fr_run *run = cx->run;
    fr_journal *j = fr_journal_of(run);
    char id[160] = "", st[32] = "", file_id[160] = "", why[600] = "";
    bool resumed = fr_journal_batch_get(j, fanout, p->index, id, sizeof id, st, sizeof st);
    /* the worst case at the batch price is held while the batch runs */
    int64_t in = 0, out = 0;
    for (size_t i = 0; i < p->n; i++) {
        in += (int64_t)((strlen(p->reqs[i]->system) + strlen(p->reqs[i]->prompt) + 2) / 3) + 400;
        out += p->reqs[i]->max_tokens;
    }
    fr_model bm = *b->model;
    if (bm.usd_per_mtok_batch_in >= 0)
        bm.usd_per_mtok_in = bm.usd_per_mtok_batch_in;
    if (bm.usd_per_mtok_batch_out >= 0)
        bm.usd_per_mtok_out = bm.usd_per_mtok_batch_out;
    bm.usd_per_mtok_cache_write = -1;
    fr_resv hold;
    if (!fr_budget_reserve(cx, &bm, in, out, &hold))
        return false;
    json_t *v = NULL;
    if (!resumed) {
        v = b->anthropic ? submit_anthropic(b, p, why, sizeof why)
                         : submit_openai(b, p, file_id, sizeof file_id, why, sizeof why);
        const char *bid = json_string_value(json_object_get(v, "id"));
        if (!bid) {
            fr_charge none = { 0 };
            fr_budget_settle(run, &hold, &none);
            json_decref(v);
            fr_fail(cx, NULL, "batch of %zu requests to %s (model %s) not submitted: %s", p->n,
                    b->model->provider, b->model->name, why[0] ? why : "no batch id");
            return false;
        }
        snprintf(id, sizeof id, "%s", bid);
        bool ended;
        snprintf(st, sizeof st, "%s", status_of(b, v, &ended));
        if (!fr_journal_batch_put(j, fanout, p->index, b->model->provider, id,
                                  file_id[0] ? file_id : NULL, st, (int64_t)p->n, hold.usd))
            fprintf(stderr, "warning: batch %s could not be journaled: a resume would submit it"
                    " again\n", id);
    } else if (!run->quiet) {
        fprintf(stderr, "batch %s (model %s): resumed, polling it again (status %s when the "
                "run stopped)\n", id, b->model->name, st);
    }
    char path[256];
    snprintf(path, sizeof path, b->anthropic ? "/v1/messages/batches/%s" : "/batches/%s", id);
    bool ended = false, canceled = false;
    for (;;) {
        if (!v)
            v = xchg(b, "GET", path, NULL, NULL, NULL, why, sizeof why);
        if (!v)
            break;
        progress(b, id, v, p->n);
        snprintf(st, sizeof st, "%s", status_of(b, v, &ended));
        if (ended)
            break;
        if (!canceled && deadline_ms >= 0 && fr_now_ms() >= deadline_ms) {
            char cpath[300];
            snprintf(cpath, sizeof cpath, "%s/cancel", path);
            json_decref(xchg(b, "POST", cpath, b->anthropic ? NULL : "application/json",
                             b->anthropic ? NULL : "{}", NULL, why, sizeof why));
            canceled = true;
            fprintf(stderr, "batch %s: cancelled after the time limit; what finished is kept\n",
                    id);
        }
        json_decref(v);
        v = NULL;
        int64_t wait = poll_ms();
        fr_sleep_ms(wait);
    }
    fr_journal_batch_put(j, fanout, p->index, b->model->provider, id, NULL, st, (int64_t)p->n,
                         hold.usd);
    size_t ok = 0, bad = 0;
    if (ended) {
        const char *u[2] = { NULL, NULL };
        if (b->anthropic) {
            u[0] = json_string_value(json_object_get(v, "results_url"));
        } else {
            u[0] = json_string_value(json_object_get(v, "output_file_id"));
            u[1] = json_string_value(json_object_get(v, "error_file_id"));
        }
        for (int k = 0; k < 2; k++) {
            if (!u[k])
                continue;
            char fp[300], *text = NULL;
            if (b->anthropic)
                snprintf(fp, sizeof fp, "%s", u[k]);
            else
                snprintf(fp, sizeof fp, "/files/%s/content", u[k]);
            if (fetch_text(b, fp, &text, why, sizeof why))
                read_results(b, p, text, &ok, &bad);
            else
                fprintf(stderr, "warning: batch %s: cannot read its results: %s\n", id, why);
            fr_free(text);
        }
    } else {
        fprintf(stderr, "warning: batch %s: cannot poll it: %s\n", id, why);
    }
    json_decref(v);
    /* the hold goes: each answer is charged when the second pass takes it */
    fr_charge none = { 0 };
    fr_budget_settle(run, &hold, &none);
    if (!run->quiet)
        fprintf(stderr, "batch %s (model %s) %s: %zu answers, %zu errored or not finished:"
                " made as normal calls\n", id, b->model->name, canceled ? "cancelled" : st,
                ok, p->n - ok);
    return true;
}

/* ---- the first pass ------------------------------------------------------------- */

static size_t limit_requests(bool anthropic)
{
    const char *e = getenv("FLOWRT_BATCH_MAX_REQUESTS");
    long v = e ? atol(e) : 0;
    size_t lim = anthropic ? 100000 : 50000;
    return v > 0 && (size_t)v < lim ? (size_t)v : lim;
}

static size_t limit_bytes(bool anthropic)
{
    return anthropic ? (size_t)256 * 1000 * 1000 : (size_t)200 * 1000 * 1000;
}

bool fr_batch_prepass(fr_ctx *cx, json_t *list, const fr_par_opts *opts, fr_body_fn body,
                      void *env)
{
    fr_run *run = cx->run;
    if (run->mock_all)
        return true;
    bcollect c = { 0 };
    size_t n = json_array_size(list);
    fr_ctx child;
    fr_ctx_init_child(cx, &child);
    collecting = &c;
    for (size_t i = 0; i < n; i++) {
        fr_ctx_set_item(&child, cx, i);
        child.item = json_array_get(list, i);
        child.sig = FR_OK;
        body(&child, child.item, i, env);
        fr_release(&child, 0);
        fr_sig_clear(&child);
    }
    collecting = NULL;
    fr_ctx_fini(&child);
    bool ok = true;
    if (c.n && !store_of(run))
        ok = false;
    char fanout[300];
    snprintf(fanout, sizeof fanout, "%s@%s", opts->where ? opts->where : "", cx->path);
    int64_t deadline = fr_budget_deadline(cx);
    if (run->batch_timeout_ms > 0) {
        int64_t t = fr_now_ms() + run->batch_timeout_ms;
        deadline = deadline < 0 || t < deadline ? t : deadline;
    }
    /* parts: by model, in order, split at the provider's limits */
    int part = 0;
    for (size_t i = 0; ok && i < c.n;) {
        const fr_model *m = c.v[i].model;
        bctx b;
        bctx_init(&b, run, m);
        bpart p = { fr_calloc(c.n, sizeof(breq *)), 0, part++, fr_calloc(c.n, sizeof(bool)) };
        size_t bytes = 0;
        for (size_t k = i; k < c.n && p.reqs && p.wrapped; k++) {
            if (c.v[k].model != m || c.v[k].part < 0)
                continue;
            size_t sz = strlen(c.v[k].system) + strlen(c.v[k].prompt) + 4096;
            if (p.n >= limit_requests(b.anthropic) || bytes + sz > limit_bytes(b.anthropic))
                break;
            bytes += sz;
            c.v[k].part = -1;          /* taken */
            p.reqs[p.n++] = &c.v[k];
        }
        if (!p.reqs || !p.wrapped)
            ok = false;
        else if (p.n)
            ok = run_part(cx, &b, &p, fanout, deadline);
        fr_free(p.reqs);
        fr_free(p.wrapped);
        while (i < c.n && c.v[i].part < 0)
            i++;
    }
    for (size_t i = 0; i < c.n; i++)
        fr_free(c.v[i].system), fr_free(c.v[i].prompt);
    fr_free(c.v);
    return ok;
}
