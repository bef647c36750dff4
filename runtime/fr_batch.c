/*
 * fr_batch.c: `parallel for ... (batch: true)` through the providers' batch
 * APIs, at the batch price.
 *
 * A batch fan-out runs its body twice.  The first pass walks the items one
 * by one with a collector set for the thread: each item's first agent call
 * that the journal does not already hold is rendered, keyed as the journal
 * keys it, and collected instead of sent (the item stops there, as it does
 * at a nested parallel construct).  The collected requests are grouped by
 * model and split into parts at the provider's limits (Anthropic: 100,000
 * requests or 256 MB a batch; OpenAI: 50,000 requests or 200 MB an input
 * file), and then:
 *
 *   1. every part is held against the budgets at its worst case (each
 *      request answered at max_tokens, at the batch price) before any is
 *      submitted: a fan-out whose batches do not fit submits nothing;
 *   2. each part's intent is journaled (its token and members) before the
 *      request that creates it leaves, then it is submitted (Anthropic POST
 *      /v1/messages/batches; OpenAI: the JSONL uploaded with POST /files,
 *      purpose "batch", then POST /batches, the token in its metadata) and
 *      its id journaled.  A run killed between the provider's acceptance and
 *      that journal write finds its batch again on resume: OpenAI's by the
 *      token in its metadata (GET /batches), its uploaded file by name (GET
 *      /files); Anthropic's batches carry no metadata, so those created since
 *      the intent with as many requests (GET /v1/messages/batches) are
 *      candidates, polled to their end, and the one whose custom_ids carry
 *      the token is taken: a batch is never submitted twice;
 *   3. all parts are polled round-robin, every 60 s as both providers' guides
 *      do (FLOWRT_BATCH_POLL_MS for tests), one progress line for the
 *      fan-out; past the time budget or --batch-timeout they are cancelled,
 *      and what finished before the cancellation is kept;
 *   4. each ended part's results (Anthropic's results_url; OpenAI's output
 *      and error files) are kept by custom_id for the second pass.
 *
 * A custom_id is TOKEN-HASH: the part's random token (12 letters and digits)
 * and the first 40 hex digits of the SHA-256 of the call's journal key, 53
 * characters in all, inside Anthropic's documented ^[a-zA-Z0-9_-]{1,64}$
 * (API reference, Create a Message Batch, requests[].custom_id; OpenAI only
 * asks that custom_ids be unique in a batch).  An answer goes to its call by
 * that hash, never by its position, so a resume whose parts differ from the
 * killed run's still maps every answer right.
 *
 * The second pass is the ordinary parallel for: a call whose key has a batch
 * answer takes it as its first attempt (charged at the batch price, tier
 * "batch" in the journal) and validates it; an errored, expired, cancelled
 * or invalid item goes on as a normal call with its retries (at the normal
 * price).  Models without a batch API (mock, a provider other than anthropic
 * or openai, a base_url on this machine) and --mock runs skip the first pass.
 *
 * Sources (read 2026-12-08): Anthropic's batch-processing guide and API
 * reference (platform.claude.com/docs/en/build-with-claude/batch-processing,
 * /docs/en/api/messages/batches: limits, custom_id, processing_status
 * in_progress|canceling|ended, request_counts that stay in `processing` until
 * the whole batch ends, result types succeeded|errored|canceled|expired,
 * most recent batches listed first, the guide's 60 s polling loop) and the
 * SDK types of anthropic-sdk-python (MessageBatch, MessageBatchRequestCounts,
 * MessageBatchIndividualResponse, BatchListParams: after_id, limit 1-1000);
 * OpenAI's Batch and Files API reference and openai-python's types (Batch:
 * status validating|in_progress|finalizing|completed|failed|expired|
 * cancelling|cancelled, output_file_id, error_file_id, metadata of 16 pairs,
 * keys 64 and values 512 characters; BatchCreateParams: input file of 50,000
 * requests and 200 MB, completion_window "24h"; BatchListParams: after,
 * limit 1-100; FileListParams: purpose, order; a cancelled or expired batch
 * writes what finished to its output file, the rest to its error file with
 * batch_cancelled or batch_expired).
 */
#include "fr_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CID_TOKEN 12               /* letters and digits of a part's token */
#define CID_HASH 40                /* hex digits of the key's hash */
#define CID_LEN (CID_TOKEN + 1 + CID_HASH)
#define OVERHEAD_TOKENS 400        /* as fr_call.c's REQUEST_OVERHEAD_TOKENS */
#define FIND_SKEW_S 600            /* clock skew allowed when finding a batch again */
#define LIST_PAGES 50              /* pages of a list read at most when finding one */

/* Whether m has a batch API: Anthropic's and OpenAI's own, not a server on
 * this machine (the same rule as W0016's at compile time). */
bool fr_batch_api(const fr_model *m)
{
    if (strcmp(m->provider, "anthropic") != 0 && strcmp(m->provider, "openai") != 0)
        return false;
    const char *b = m->base_url;
    return !(b && (strstr(b, "://localhost") || strstr(b, "://127.") || strstr(b, "://[::1]") ||
                   strstr(b, "://0.0.0.0")));
}

/* m at its batch prices: input and output as declared; the prompt cache's
 * classes scaled as input is, since the discounts stack (Anthropic's pricing
 * page: every batch token class at half price; OpenAI's batch tier lists
 * cached input at half the standard cached price). */
void fr_batch_prices(const fr_model *m, fr_model *out)
{
    *out = *m;
    double k = m->usd_per_mtok_batch_in >= 0 && m->usd_per_mtok_in > 0
               ? m->usd_per_mtok_batch_in / m->usd_per_mtok_in : 1;
    if (m->usd_per_mtok_batch_in >= 0)
        out->usd_per_mtok_in = m->usd_per_mtok_batch_in;
    if (m->usd_per_mtok_batch_out >= 0)
        out->usd_per_mtok_out = m->usd_per_mtok_batch_out;
    if (m->usd_per_mtok_cache_read >= 0)
        out->usd_per_mtok_cache_read = m->usd_per_mtok_cache_read * k;
    if (m->usd_per_mtok_cache_write >= 0)
        out->usd_per_mtok_cache_write = m->usd_per_mtok_cache_write * k;
    if (m->usd_per_mtok_cache_write_1h >= 0)
        out->usd_per_mtok_cache_write_1h = m->usd_per_mtok_cache_write_1h * k;
}

/* ---- the first pass: collecting requests --------------------------------- */

typedef struct breq {
    const fr_agent *agent;         /* who is called */
    const fr_model *model;         /* on which model */
    char *system, *prompt;         /* rendered (fr_malloc'd) */
    char key[FR_JKEY_MAX];         /* the journal's key of the call */
    char h[CID_HASH + 1];          /* its hash: the custom_id's tail */
    int max_tokens;                /* the answer's cap */
    char *body;                    /* the request as JSON (params / body), once serialized */
    size_t blen;                   /* its bytes */
    bool wrapped;                  /* its answer comes wrapped (the body builder said) */
    int part;                      /* which part takes it, -1 none */
    bool answered;                 /* a batch answer came for it */
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
    r->agent = a, r->model = m, r->max_tokens = max_tokens, r->part = -1;
    r->system = fr_strdup(system ? system : "");
    r->prompt = fr_strdup(prompt ? prompt : "");
    snprintf(r->key, sizeof r->key, "%s", key);
    char hex[65];
    fr_sha256_hex(key, strlen(key), hex);
    memcpy(r->h, hex, CID_HASH);
    r->h[CID_HASH] = '\0';
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

static void bctx_init(bctx *b, fr_run *run, const fr_model *m)
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
}

/* One exchange, retried while it fails transiently: the answer's JSON, or
 * with raw its bytes in *raw (json_true() returned); NULL with *why. */
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
    if (raw && b->anthropic)
        h[nh++] = "Accept: application/binary";      /* as the SDK asks for results */
    snprintf(url, sizeof url, "%s%s", b->base, path);
    for (int attempt = 0;; attempt++) {
        fr_xreq rq = { method, url, h, nh, body, raw ? 600000 : 120000 };
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

/* "2026-12-08T10:00:00.123Z" -> seconds since the epoch, 0 when unreadable. */
static int64_t rfc3339_s(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || !strptime(s, "%Y-%m-%dT%H:%M:%S", &tm))
        return 0;
    return (int64_t)timegm(&tm);
}

/* A batch object's creation time in seconds since the epoch. */
static int64_t created_s(bctx *b, json_t *v)
{
    json_t *c = json_object_get(v, "created_at");
    return b->anthropic ? rfc3339_s(json_string_value(c)) : (int64_t)json_integer_value(c);
}

/* ---- a fan-out's parts ------------------------------------------------------- */

enum { P_SUBMIT, P_FIND, P_POLL, P_DONE };

typedef struct bpart {
    bctx b;                        /* the wire of its model */
    int index;                     /* its number in the journal */
    char token[CID_TOKEN + 1];     /* in its custom_ids (and OpenAI metadata) */
    breq **reqs;                   /* its members still wanted */
    size_t n, cap;                 /* used and allocated */
    size_t bytes;                  /* of its batch (Anthropic body; OpenAI file) */
    int64_t requests;              /* requests its batch has (as journaled) */
    int64_t since_s;               /* when its intent was journaled (epoch s) */
    char id[160], file_id[160];    /* its batch and (OpenAI) input file, "" unknown */
    char status[32];               /* the provider's last word */
    int state;                     /* P_SUBMIT ... P_DONE */
    bool resumed;                  /* it comes from the journal */
    char (*cand)[160];             /* Anthropic, P_FIND: batches that may be it */
    int ncand;                     /* how many are left */
    fr_resv hold;                  /* its worst case, held until it ended */
    bool held;                     /* hold taken */
    long long busy, ok, err;       /* its last request counts */
    size_t answers, failed;        /* results read: answers and errored lines */
    bool canceled;                 /* cancel sent */
} bpart;

typedef struct bfan {
    fr_ctx *cx;                    /* the fan-out's context */
    fr_run *run;
    fr_journal *j;                 /* NULL: no journal */
    char fanout[300];              /* where@path: the journal's name of the fan-out */
    const char *where;             /* file.flow:line:col */
    bcollect c;                    /* the requests */
    json_t *by_hash;               /* hash -> index in c.v */
    bpart *p;                      /* the parts */
    int np, pcap;                  /* used and allocated */
    char last[256];                /* the progress line last shown */
} bfan;

static void part_free(bpart *p)
{
    fr_free(p->reqs);
    fr_free(p->cand);
}

static bpart *part_new(bfan *f, const fr_model *m)
{
    if (f->np == f->pcap) {
        int cap = f->pcap ? f->pcap * 2 : 4;
        bpart *v = fr_realloc(f->p, (size_t)cap * sizeof *v);
        if (!v)
            return NULL;
        f->p = v, f->pcap = cap;
    }
    bpart *p = &f->p[f->np++];
    memset(p, 0, sizeof *p);
    bctx_init(&p->b, f->run, m);
    return p;
}

static bool part_add(bpart *p, breq *r, int pi)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        breq **v = fr_realloc(p->reqs, cap * sizeof *v);
        if (!v)
            return false;
        p->reqs = v, p->cap = cap;
    }
    p->reqs[p->n++] = r;
    r->part = pi;
    return true;
}

/* A fresh token: CID_TOKEN lowercase letters and digits. */
static void new_token(char *out)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[CID_TOKEN];
    FILE *u = fopen("/dev/urandom", "rb");
    size_t got = u ? fread(rnd, 1, sizeof rnd, u) : 0;
    if (u)
        fclose(u);
    uint64_t x = (uint64_t)fr_wall_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
    for (int i = 0; i < CID_TOKEN; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned v = (size_t)i < got ? rnd[i] : (unsigned)(x >> 33);
        out[i] = al[v % 36];
    }
    out[CID_TOKEN] = '\0';
}

/* The request body of r as a normal call would send it, serialized once. */
static bool serialize(breq *r)
{
    if (r->body)
        return true;
    fr_request q = { .agent = r->agent, .model = r->model, .system = r->system,
                     .prompt = r->prompt, .timeout_ms = 60000, .max_tokens = r->max_tokens,
                     .mode = FR_OUT_DEFAULT };
    json_t *v = strcmp(r->model->provider, "anthropic") == 0 ? fr_anthropic_body(&q, &r->wrapped)
                                                              : fr_openai_body(&q, &r->wrapped);
    char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    if (!s)
        return false;
    r->body = fr_strdup(s);
    free(s);
    r->blen = r->body ? strlen(r->body) : 0;
    return r->body != NULL;
}

static const char a_pre[] = "{\"custom_id\":\"", a_mid[] = "\",\"params\":";
static const char o_mid[] = "\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":";

/* Bytes one request adds to its batch: a line of the Anthropic body (and its
 * comma) or of the OpenAI file (and its newline). */
static size_t line_bytes(bool anthropic, const breq *r)
{
    return strlen(a_pre) + CID_LEN + strlen(anthropic ? a_mid : o_mid) + r->blen + 2;
}

static size_t limit_requests(bool anthropic)
{
    const char *e = getenv("FLOWRT_BATCH_MAX_REQUESTS");
    long v = e ? atol(e) : 0;
    size_t lim = anthropic ? 100000 : 50000;
    return v > 0 && (size_t)v < lim ? (size_t)v : lim;
}

/* 256 MB and 200 MB read as decimal megabytes, the smaller reading. */
static size_t limit_bytes(bool anthropic)
{
    const char *e = getenv("FLOWRT_BATCH_MAX_BYTES");
    long v = e ? atol(e) : 0;
    size_t lim = anthropic ? (size_t)256 * 1000 * 1000 : (size_t)200 * 1000 * 1000;
    return v > 0 && (size_t)v < lim ? (size_t)v : lim;
}

/* ---- planning: the journal's parts, then new ones ---------------------------- */

/* The parts a killed run journaled, with those of their members still
 * wanted; the next free part number, -1 when out of memory. */
static int plan_journaled(bfan *f)
{
    size_t nrows = 0;
    fr_jbatch *rows = fr_journal_batches(f->j, f->fanout, &nrows);
    bool ok = true;
    for (size_t i = 0; ok && i < nrows; i++) {
        fr_jbatch *row = &rows[i];
        bpart *p = NULL;
        int pi = f->np;
        for (char *s = row->ids; ok && s && *s;) {
            char *nl = strchr(s, '\n');
            size_t len = nl ? (size_t)(nl - s) : strlen(s);
            char h[CID_HASH + 1];
            snprintf(h, sizeof h, "%.*s", (int)(len < CID_HASH ? len : CID_HASH), s);
            json_t *ix = json_object_get(f->by_hash, h);
            breq *r = ix ? &f->c.v[json_integer_value(ix)] : NULL;
            if (r && r->part < 0 && strcmp(r->model->provider, row->provider) == 0 &&
                (!p || r->model == p->b.model)) {
                if (!p && !(p = part_new(f, r->model)))
                    ok = false;
                else
                    ok = serialize(r) && part_add(p, r, pi);
            }
            s = nl ? nl + 1 : NULL;
        }
        if (!p)
            continue;
        p->index = row->part;
        p->resumed = true;
        snprintf(p->token, sizeof p->token, "%s", row->token);
        snprintf(p->id, sizeof p->id, "%s", row->batch_id);
        snprintf(p->file_id, sizeof p->file_id, "%s", row->file_id);
        snprintf(p->status, sizeof p->status, "%s", row->status);
        p->requests = row->requests;
        p->since_s = row->created_ms / 1000;
        p->state = p->id[0] ? P_POLL : P_FIND;
        for (size_t k = 0; k < p->n; k++)
            p->bytes += line_bytes(p->b.anthropic, p->reqs[k]);
    }
    int next = 0;
    for (size_t i = 0; i < nrows; i++)
        next = rows[i].part >= next ? rows[i].part + 1 : next;
    for (int i = 0; i < f->np; i++)
        next = f->p[i].index >= next ? f->p[i].index + 1 : next;
    fr_jbatches_free(rows, nrows);
    return ok ? next : -1;
}

/* New parts for the requests no journaled part takes: by model, in order,
 * split at the provider's limits.  A request too big for any batch is left
 * to the second pass (a normal call). */
static bool plan_new(bfan *f, int next)
{
    for (size_t i = 0; i < f->c.n; i++) {
        breq *r = &f->c.v[i];
        if (r->part >= 0 || r->part == -2)
            continue;
        const fr_model *m = r->model;
        bool anth = strcmp(m->provider, "anthropic") == 0;
        size_t maxn = limit_requests(anth), maxb = limit_bytes(anth), head = anth ? 16 : 0;
        bpart *p = NULL;
        for (size_t k = i; k < f->c.n; k++) {
            breq *q = &f->c.v[k];
            if (q->part != -1 || q->model != m)
                continue;
            if (!serialize(q))
                return false;
            size_t lb = line_bytes(anth, q);
            if (lb + head > maxb) {
                q->part = -2;                     /* alone it is too big: a normal call */
                fprintf(stderr, "%swarning: %s: a request of %zu bytes is over the %zu-byte "
                        "batch limit of %s: it is made as a normal call\n",
                        f->run->progress ? "\r\033[K" : "", f->where, lb, maxb, m->provider);
                continue;
            }
            if (p && (p->n >= maxn || p->bytes + lb + head > maxb))
                p = NULL;                         /* this part is full: the next one */
            if (!p) {
                if (!(p = part_new(f, m)))
                    return false;
                p->index = next++;
                p->state = P_SUBMIT;
                new_token(p->token);
            }
            if (!part_add(p, q, (int)(p - f->p)))
                return false;
            p->bytes += lb;
            p->requests = (int64_t)p->n;
        }
    }
    return true;
}

/* ---- holding, submitting ------------------------------------------------------ */

/* Every part's worst case at the batch price, before any is submitted. */
static bool hold_all(bfan *f)
{
    for (int i = 0; i < f->np; i++) {
        bpart *p = &f->p[i];
        int64_t in = 0, out = 0;
        for (size_t k = 0; k < p->n; k++) {
            in += (int64_t)((p->reqs[k]->blen + 2) / 3) + OVERHEAD_TOKENS;
            out += p->reqs[k]->max_tokens;
        }
        fr_model bm;
        fr_batch_prices(p->b.model, &bm);
        if (!fr_budget_reserve(f->cx, &bm, in, out, &p->hold)) {
            for (int k = 0; k < i; k++) {
                fr_charge none = { 0 };
                fr_budget_settle(f->run, &f->p[k].hold, &none);
                f->p[k].held = false;
            }
            return false;
        }
        p->held = true;
    }
    return true;
}

static void cid(char *out, const bpart *p, const breq *r)
{
    snprintf(out, CID_LEN + 1, "%s-%s", p->token, r->h);
}

/* Its members' hashes, one a line (fr_malloc'd). */
static char *ids_text(const bpart *p)
{
    fr_buf b = { 0 };
    for (size_t i = 0; i < p->n; i++)
        fr_buf_put(&b, p->reqs[i]->h, CID_HASH), fr_buf_puts(&b, "\n");
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s ? b.s : fr_strdup("");
}

/* The batch as the provider takes it: Anthropic's body; OpenAI's file. */
static char *batch_text(const bpart *p)
{
    fr_buf b = { 0 };
    char id[CID_LEN + 1];
    if (p->b.anthropic)
        fr_buf_puts(&b, "{\"requests\":[");
    for (size_t i = 0; i < p->n; i++) {
        cid(id, p, p->reqs[i]);
        if (p->b.anthropic && i)
            fr_buf_puts(&b, ",");
        fr_buf_puts(&b, a_pre);
        fr_buf_puts(&b, id);
        fr_buf_puts(&b, p->b.anthropic ? a_mid : o_mid);
        fr_buf_put(&b, p->reqs[i]->body, p->reqs[i]->blen);
        fr_buf_puts(&b, p->b.anthropic ? "}" : "}\n");
    }
    if (p->b.anthropic)
        fr_buf_puts(&b, "]}");
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

static void counts(bpart *p, json_t *v);

static const char *status_of(const bpart *p, json_t *v, bool *ended)
{
    const char *st = json_string_value(json_object_get(v, p->b.anthropic ? "processing_status"
                                                                           : "status"));
    st = st ? st : "?";
    *ended = p->b.anthropic ? strcmp(st, "ended") == 0
             : strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
               strcmp(st, "expired") == 0 || strcmp(st, "cancelled") == 0;
    return st;
}

/* OpenAI: the input file, uploaded under a name that carries the token. */
static bool upload(bfan *f, bpart *p, char *why, size_t cap)
{
    char *jl = batch_text(p);
    if (!jl) {
        snprintf(why, cap, "out of memory");
        return false;
    }
    fr_buf mp = { 0 };
    const char *bd = "flowcbatchboundary7d3f";
    fr_buf_printf(&mp, "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                  "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"flowc-%s.jsonl\""
                  "\r\nContent-Type: application/jsonl\r\n\r\n", bd, bd, p->token);
    fr_buf_puts(&mp, jl);
    fr_buf_printf(&mp, "\r\n--%s--\r\n", bd);
    fr_free(jl);
    char ct[128];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", bd);
    json_t *v = fr_buf_failed(&mp) ? NULL : xchg(&p->b, "POST", "/files", ct, mp.s, NULL, why, cap);
    fr_buf_free(&mp);
    const char *fid = json_string_value(json_object_get(v, "id"));
    if (fid)
        snprintf(p->file_id, sizeof p->file_id, "%s", fid);
    else if (v)
        snprintf(why, cap, "POST /files: no file id in the answer");
    json_decref(v);
    if (fid && !fr_journal_batch_put(f->j, f->fanout, p->index, NULL, p->file_id, "submitting"))
        fprintf(stderr, "warning: file %s could not be journaled\n", p->file_id);
    return p->file_id[0] != '\0';
}

/* Submits part p (its intent journaled first); false with *why. */
static bool submit(bfan *f, bpart *p, char *why, size_t cap)
{
    char *ids = ids_text(p);
    bool ok = ids && fr_journal_batch_intent(f->j, f->fanout, p->index, p->b.model->provider,
                                             p->token, ids, (int64_t)p->n, p->hold.usd,
                                             fr_wall_ms());
    fr_free(ids);
    if (!ok) {
        /* without its intent a kill could not find the batch again: do not send it */
        snprintf(why, cap, "its intent could not be journaled (%s)",
                 f->j ? fr_journal_errmsg(f->j) : "out of memory");
        return false;
    }
    p->requests = (int64_t)p->n;
    p->since_s = fr_wall_ms() / 1000;
    json_t *v = NULL;
    if (p->b.anthropic) {
        char *body = batch_text(p);
        v = body ? xchg(&p->b, "POST", "/v1/messages/batches", "application/json", body, NULL,
                        why, cap) : NULL;
        fr_free(body);
    } else if (p->file_id[0] || upload(f, p, why, cap)) {
        char fan[513];
        snprintf(fan, sizeof fan, "%s", f->fanout);
        json_t *o = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "input_file_id", p->file_id,
                              "endpoint", "/v1/chat/completions", "completion_window", "24h",
                              "metadata", "flowc_token", p->token, "flowc_fanout", fan);
        char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        v = body ? xchg(&p->b, "POST", "/batches", "application/json", body, NULL, why, cap)
                 : NULL;
        free(body);
    }
    const char *bid = json_string_value(json_object_get(v, "id"));
    if (!bid) {
        if (v)
            snprintf(why, cap, "no batch id in the answer");
        json_decref(v);
        return false;
    }
    snprintf(p->id, sizeof p->id, "%s", bid);
    bool ended;
    snprintf(p->status, sizeof p->status, "%s", status_of(p, v, &ended));
    counts(p, v);
    if (p->busy + p->ok + p->err == 0)
        p->busy = (long long)p->n;             /* OpenAI's counts start at 0 while it validates */
    json_decref(v);
    if (!fr_journal_batch_put(f->j, f->fanout, p->index, p->id, NULL, p->status))
        fprintf(stderr, "%swarning: batch %s could not be journaled: a resume will look for it "
                "by its token %s\n", f->run->progress ? "\r\033[K" : "", p->id, p->token);
    if (!f->run->quiet)
        fprintf(stderr, "%sbatch %s (model %s): %zu requests submitted\n",
                f->run->progress ? "\r\033[K" : "", p->id, p->b.model->name, p->n);
    p->state = P_POLL;
    return true;
}

/* ---- finding a batch a killed run submitted ----------------------------------- */

/* Reads a list (GET path?limit=...) page by page, newest first, calling
 * each(f, p, batch) until it says stop or the batches are older than
 * p->since_s less the skew; false with *why when a page cannot be read. */
typedef bool (*each_fn)(bfan *f, bpart *p, json_t *obj);

static bool list_each(bfan *f, bpart *p, const char *path, bool files, each_fn each, char *why,
                      size_t cap)
{
    char after[200] = "", url[600];
    for (int page = 0; page < LIST_PAGES; page++) {
        if (p->b.anthropic)
            snprintf(url, sizeof url, "%s?limit=100%s%s", path, after[0] ? "&after_id=" : "",
                     after);
        else
            snprintf(url, sizeof url, "%s%slimit=100%s%s", path, strchr(path, '?') ? "&" : "?",
                     after[0] ? "&after=" : "", after);
        json_t *v = xchg(&p->b, "GET", url, NULL, NULL, NULL, why, cap);
        if (!v)
            return false;
        json_t *data = json_object_get(v, "data"), *o;
        size_t i;
        bool older = false;
        json_array_foreach(data, i, o) {
            int64_t t = files ? (int64_t)json_integer_value(json_object_get(o, "created_at"))
                              : created_s(&p->b, o);
            if (t && t < p->since_s - FIND_SKEW_S) {
                older = true;
                break;
            }
            if (!each(f, p, o)) {
                json_decref(v);
                return true;
            }
        }
        const char *last = json_string_value(json_object_get(v, "last_id"));
        if (!last && json_array_size(data))
            last = json_string_value(json_object_get(json_array_get(data, json_array_size(data)
                                                                    - 1), "id"));
        bool more = json_is_true(json_object_get(v, "has_more")) && last && !older;
        snprintf(after, sizeof after, "%s", last ? last : "");
        json_decref(v);
        if (!more)
            return true;
    }
    return true;
}

static bool known_elsewhere(bfan *f, const char *id)
{
    for (int i = 0; i < f->np; i++)
        if (strcmp(f->p[i].id, id) == 0)
            return true;
    return false;
}

static bool oai_batch_match(bfan *f, bpart *p, json_t *o)
{
    (void)f;
    const char *t = json_string_value(json_object_get(json_object_get(o, "metadata"),
                                                      "flowc_token"));
    const char *id = json_string_value(json_object_get(o, "id"));
    if (t && id && strcmp(t, p->token) == 0) {
        snprintf(p->id, sizeof p->id, "%s", id);
        return false;
    }
    return true;
}

static bool oai_file_match(bfan *f, bpart *p, json_t *o)
{
    (void)f;
    char name[64];
    snprintf(name, sizeof name, "flowc-%s.jsonl", p->token);
    const char *fn = json_string_value(json_object_get(o, "filename"));
    const char *id = json_string_value(json_object_get(o, "id"));
    if (fn && id && strcmp(fn, name) == 0) {
        snprintf(p->file_id, sizeof p->file_id, "%s", id);
        return false;
    }
    return true;
}

static bool anth_candidate(bfan *f, bpart *p, json_t *o)
{
    json_t *c = json_object_get(o, "request_counts");
    int64_t total = json_integer_value(json_object_get(c, "processing")) +
                    json_integer_value(json_object_get(c, "succeeded")) +
                    json_integer_value(json_object_get(c, "errored")) +
                    json_integer_value(json_object_get(c, "canceled")) +
                    json_integer_value(json_object_get(c, "expired"));
    const char *id = json_string_value(json_object_get(o, "id"));
    if (id && total == p->requests && !known_elsewhere(f, id)) {
        char (*v)[160] = fr_realloc(p->cand, (size_t)(p->ncand + 1) * sizeof *v);
        if (v) {
            p->cand = v;
            snprintf(p->cand[p->ncand++], sizeof p->cand[0], "%s", id);
        }
    }
    return true;
}

/* A part whose intent was journaled but not its id: its batch, found at the
 * provider (P_POLL), candidates to poll (P_FIND), or none (P_SUBMIT).  false
 * with *why when the provider cannot be asked: then nothing is submitted. */
static bool find(bfan *f, bpart *p, char *why, size_t cap)
{
    if (!p->b.anthropic) {
        if (!list_each(f, p, "/batches", false, oai_batch_match, why, cap))
            return false;
        if (p->id[0]) {
            fr_journal_batch_put(f->j, f->fanout, p->index, p->id, NULL, "found");
            if (!f->run->quiet)
                fprintf(stderr, "%sbatch %s (model %s): found again by its token %s, "
                        "submitted before the run stopped\n", f->run->progress ? "\r\033[K" : "",
                        p->id, p->b.model->name, p->token);
            p->state = P_POLL;
            return true;
        }
        /* its file, uploaded before the kill, is sent again only when it holds
         * exactly the requests still wanted */
        if ((int64_t)p->n == p->requests && !p->file_id[0] &&
            !list_each(f, p, "/files?purpose=batch&order=desc", true, oai_file_match, why, cap))
            return false;
        if ((int64_t)p->n != p->requests)
            p->file_id[0] = '\0';
        p->state = P_SUBMIT;
        return true;
    }
    if (!list_each(f, p, "/v1/messages/batches", false, anth_candidate, why, cap))
        return false;
    p->state = p->ncand ? P_FIND : P_SUBMIT;
    if (p->ncand && !f->run->quiet)
        fprintf(stderr, "%sbatch fan-out %s: %d batch%s created since the run stopped may be "
                "its part %d: polled to their end, the one with token %s is taken\n",
                f->run->progress ? "\r\033[K" : "", f->where, p->ncand, p->ncand == 1 ? "" : "es",
                p->index, p->token);
    return true;
}

/* ---- results ------------------------------------------------------------------ */

/* Reads one results file (JSON Lines): each line whose custom_id carries p's
 * token goes to its request (a success into the store); the count of lines
 * with the token. */
static size_t read_results(bfan *f, bpart *p, const char *text)
{
    fr_batch_store *s = f->run->batches;
    size_t mine = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        json_t *v = len ? json_loadb(line, len, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(v, "custom_id"));
        line = nl ? nl + 1 : NULL;
        if (!id || strlen(id) != CID_LEN || strncmp(id, p->token, CID_TOKEN) != 0 ||
            id[CID_TOKEN] != '-') {
            json_decref(v);
            continue;
        }
        mine++;
        json_t *ix = json_object_get(f->by_hash, id + CID_TOKEN + 1);
        breq *r = ix ? &f->c.v[json_integer_value(ix)] : NULL;
        json_t *body = NULL;
        if (p->b.anthropic) {
            json_t *res = json_object_get(v, "result");
            const char *type = json_string_value(json_object_get(res, "type"));
            if (type && strcmp(type, "succeeded") == 0)
                body = json_object_get(res, "message");
        } else {
            json_t *resp = json_object_get(v, "response");
            if (json_integer_value(json_object_get(resp, "status_code")) == 200)
                body = json_object_get(resp, "body");
        }
        if (body && r && !r->answered && s) {
            if (!r->body)
                serialize(r);              /* for `wrapped`: how its answer comes */
            pthread_mutex_lock(&s->mu);
            json_object_set_new(s->answers, r->key, json_pack("{s:O, s:b}", "body", body,
                                                               "wrapped", r->wrapped));
            pthread_mutex_unlock(&s->mu);
            r->answered = true;
            p->answers++;
        } else if (!body) {
            p->failed++;
        }
        json_decref(v);
    }
    return mine;
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

/* The results of ended batch v (id) for part p; the lines with p's token. */
static size_t results(bfan *f, bpart *p, const char *id, json_t *v)
{
    const char *u[2] = { NULL, NULL };
    char why[600];
    size_t mine = 0;
    if (p->b.anthropic) {
        u[0] = json_string_value(json_object_get(v, "results_url"));
    } else {
        u[0] = json_string_value(json_object_get(v, "output_file_id"));
        u[1] = json_string_value(json_object_get(v, "error_file_id"));
    }
    for (int k = 0; k < 2; k++) {
        if (!u[k])
            continue;
        char fp[300], *text = NULL;
        if (p->b.anthropic)
            snprintf(fp, sizeof fp, "%s", u[k]);
        else
            snprintf(fp, sizeof fp, "/files/%s/content", u[k]);
        if (fetch_text(&p->b, fp, &text, why, sizeof why))
            mine += read_results(f, p, text);
        else
            fprintf(stderr, "%swarning: batch %s: cannot read its results: %s\n",
                    f->run->progress ? "\r\033[K" : "", id, why);
        fr_free(text);
    }
    return mine;
}

/* ---- polling ------------------------------------------------------------------- */

static void counts(bpart *p, json_t *v)
{
    json_t *c = json_object_get(v, "request_counts");
    if (p->b.anthropic) {
        p->ok = json_integer_value(json_object_get(c, "succeeded"));
        p->err = json_integer_value(json_object_get(c, "errored")) +
                 json_integer_value(json_object_get(c, "expired")) +
                 json_integer_value(json_object_get(c, "canceled"));
        p->busy = json_integer_value(json_object_get(c, "processing"));
    } else {
        p->ok = json_integer_value(json_object_get(c, "completed"));
        p->err = json_integer_value(json_object_get(c, "failed"));
        p->busy = p->requests - p->ok - p->err;
        if (p->busy < 0)
            p->busy = 0;
    }
}

/* The progress line: the fan-out's parts summed, printed when it changes
 * and shown by the terminal's progress line while the batches run. */
static void show(bfan *f)
{
    long long sub = 0, busy = 0, ok = 0, err = 0;
    int nb = 0;
    for (int i = 0; i < f->np; i++) {
        bpart *p = &f->p[i];
        if (!p->id[0])
            continue;
        nb++;
        sub += p->requests, busy += p->busy, ok += p->ok, err += p->err;
    }
    char line[160];
    snprintf(line, sizeof line, "%d batch%s, %lld submitted, %lld in progress, %lld succeeded, "
             "%lld errored", nb, nb == 1 ? "" : "es", sub, busy, ok, err);
    pthread_mutex_lock(&f->run->mu);
    snprintf(f->run->batch_line, sizeof f->run->batch_line, "batch: %s", line);
    pthread_mutex_unlock(&f->run->mu);
    if (strcmp(line, f->last) == 0 || f->run->quiet)
        return;
    snprintf(f->last, sizeof f->last, "%s", line);
    fprintf(stderr, "%sbatch fan-out %s: %s\n", f->run->progress ? "\r\033[K" : "", f->where,
            line);
}

/* What an ended part brought: its answers, and what goes on as normal calls. */
static void report(bfan *f, bpart *p, const char *how)
{
    if (f->run->quiet)
        return;
    size_t rest = p->n - p->answers;
    fprintf(stderr, "%sbatch %s (model %s) %s: %zu answer%s", f->run->progress ? "\r\033[K" : "",
            p->id, p->b.model->name, how, p->answers, p->answers == 1 ? "" : "s");
    if (rest)
        fprintf(stderr, ", %zu errored or unfinished: made as normal calls", rest);
    fputc('\n', stderr);
}

static void ended(bfan *f, bpart *p, json_t *v)
{
    results(f, p, p->id, v);
    /* a batch that failed validation says why in errors.data */
    const char *msg = json_string_value(json_object_get(json_array_get(json_object_get(
        json_object_get(v, "errors"), "data"), 0), "message"));
    if (msg)
        fprintf(stderr, "%swarning: batch %s %s: %s\n", f->run->progress ? "\r\033[K" : "", p->id,
                p->status, msg);
    fr_journal_batch_put(f->j, f->fanout, p->index, NULL, NULL, p->status);
    p->state = P_DONE;
    report(f, p, p->canceled ? "cancelled" : p->status);
}

/* One poll of part p's batch. false: the run cannot go on (why says). */
static bool poll_part(bfan *f, bpart *p, char *why, size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, p->b.anthropic ? "/v1/messages/batches/%s" : "/batches/%s", p->id);
    json_t *v = xchg(&p->b, "GET", path, NULL, NULL, NULL, why, cap);
    if (!v)
        return false;
    bool end;
    const char *st = status_of(p, v, &end);
    if (strcmp(st, p->status) != 0) {
        snprintf(p->status, sizeof p->status, "%s", st);
        fr_journal_batch_put(f->j, f->fanout, p->index, NULL, NULL, p->status);
    }
    counts(p, v);
    if (end)
        ended(f, p, v);
    json_decref(v);
    return true;
}

/* One poll of each candidate of an Anthropic part: an ended one whose
 * results carry the token is its batch; one without is dropped; with none
 * left the part is submitted. */
static bool poll_candidates(bfan *f, bpart *p, char *why, size_t cap)
{
    for (int k = 0; k < p->ncand;) {
        char path[256];
        snprintf(path, sizeof path, "/v1/messages/batches/%s", p->cand[k]);
        json_t *v = xchg(&p->b, "GET", path, NULL, NULL, NULL, why, cap);
        if (!v)
            return false;
        bool end;
        status_of(p, v, &end);
        if (end && results(f, p, p->cand[k], v) > 0) {
            snprintf(p->id, sizeof p->id, "%s", p->cand[k]);
            snprintf(p->status, sizeof p->status, "ended");
            fr_journal_batch_put(f->j, f->fanout, p->index, p->id, NULL, p->status);
            counts(p, v);
            if (!f->run->quiet)
                fprintf(stderr, "%sbatch %s (model %s): found again by its token %s, submitted "
                        "before the run stopped\n", f->run->progress ? "\r\033[K" : "", p->id,
                        p->b.model->name, p->token);
            p->ncand = 0;
            p->state = P_DONE;
            p->answers = 0;                 /* recount: results() counted them */
            for (size_t i = 0; i < p->n; i++)
                p->answers += p->reqs[i]->answered;
            report(f, p, "ended");
            json_decref(v);
            return true;
        }
        json_decref(v);
        if (end)
            memmove(&p->cand[k], &p->cand[k + 1], (size_t)(p->ncand - k - 1) * sizeof p->cand[0]),
            p->ncand--;
        else
            k++;
    }
    if (p->ncand == 0 && p->state == P_FIND)
        p->state = P_SUBMIT;
    return true;
}

static void cancel_all(bfan *f)
{
    char why[600];
    for (int i = 0; i < f->np; i++) {
        bpart *p = &f->p[i];
        if (p->state == P_FIND) {              /* not known to be ours: left alone */
            fprintf(stderr, "%swarning: batch fan-out %s: part %d's batch was not found again "
                    "before the time limit: its %zu requests are made as normal calls\n",
                    f->run->progress ? "\r\033[K" : "", f->where, p->index, p->n);
            p->ncand = 0, p->state = P_DONE;
        }
        if (p->state != P_POLL || p->canceled)
            continue;
        char path[300];
        snprintf(path, sizeof path, p->b.anthropic ? "/v1/messages/batches/%s/cancel"
                                                   : "/batches/%s/cancel", p->id);
        json_decref(xchg(&p->b, "POST", path, NULL, NULL, NULL, why, sizeof why));
        p->canceled = true;
        fprintf(stderr, "%sbatch %s: cancelled at the time limit; what finished is kept, the rest "
                "is made as normal calls\n", f->run->progress ? "\r\033[K" : "", p->id);
    }
}

static int64_t poll_ms(void)
{
    const char *e = getenv("FLOWRT_BATCH_POLL_MS");
    long v = e ? atol(e) : 0;
    return v > 0 ? v : 60000;
}

/* Ctrl-C while a fan-out's batches run: the submitted ones go on at the
 * provider (their ids are journaled), and --resume polls them again. */
static void interrupted(bfan *f)
{
    int n = 0;
    for (int i = 0; i < f->np; i++)
        n += f->p[i].state == P_POLL || f->p[i].state == P_FIND;
    fprintf(stderr, "%sbatch fan-out %s: interrupted; %d submitted batch%s run%s on at the "
            "provider, and --resume polls %s again (nothing is submitted twice)\n",
            f->run->progress ? "\r\033[K" : "", f->where, n, n == 1 ? "" : "es",
            n == 1 ? "s" : "", n == 1 ? "it" : "them");
}

/* Submits what must be, then polls every part round-robin until all ended;
 * false (cx's signal set) when the run must stop. */
static bool drive(bfan *f)
{
    char why[600] = "";
    int64_t budget = fr_budget_deadline(f->cx), deadline = budget;
    int64_t grace = poll_ms() < 60000 ? poll_ms() : 60000;
    if (f->run->batch_timeout_ms > 0) {
        int64_t t = fr_now_ms() + f->run->batch_timeout_ms;
        deadline = deadline < 0 || t < deadline ? t : deadline;
    }
    bool canceled = false;
    for (;;) {
        if (fr_interrupted(f->run)) {          /* Ctrl-C: nothing more is submitted */
            interrupted(f);
            fr_intr_stopped(f->cx);
            return false;
        }
        bool pending = false;
        for (int i = 0; i < f->np; i++) {
            bpart *p = &f->p[i];
            bool ok = true;
            if (p->state == P_SUBMIT && !canceled && fr_interrupted(f->run))
                continue;                      /* said at the top of the next round */
            if (p->state == P_SUBMIT && !canceled)
                ok = submit(f, p, why, sizeof why);
            else if (p->state == P_SUBMIT)
                p->state = P_DONE;            /* past the limit: normal calls */
            else if (p->state == P_POLL)
                ok = poll_part(f, p, why, sizeof why);
            else if (p->state == P_FIND)
                ok = poll_candidates(f, p, why, sizeof why);
            if (!ok) {
                fr_fail(f->cx, f->where, "batch fan-out: part %d (%zu requests to %s, model %s): "
                        "%s", p->index, p->n, p->b.model->provider, p->b.model->name, why);
                return false;
            }
            pending |= p->state != P_DONE;
        }
        show(f);
        if (!pending)
            return true;
        if (canceled && budget >= 0 && fr_now_ms() >= budget + grace) {
            /* a time budget is a hard cap: what a slow cancellation finishes is
             * read by the resume, not waited for */
            for (int i = 0; i < f->np; i++)
                if (f->p[i].state != P_DONE) {
                    fprintf(stderr, "%sbatch %s: still cancelling at the time budget; --resume "
                            "reads what finished\n", f->run->progress ? "\r\033[K" : "",
                            f->p[i].id[0] ? f->p[i].id : "(not found)");
                    f->p[i].state = P_DONE;
                }
            return true;
        }
        if (!canceled && deadline >= 0 && fr_now_ms() >= deadline) {
            cancel_all(f);
            canceled = true;
            continue;                          /* poll again now: what was cancelled ends */
        }
        int64_t wait = poll_ms();
        if (deadline >= 0 && !canceled && deadline - fr_now_ms() < wait)
            wait = deadline - fr_now_ms() > 0 ? deadline - fr_now_ms() : 0;
        fr_intr_sleep_ms(f->run, wait);        /* a fiber parks; Ctrl-C wakes it */
    }
}

/* ---- the first pass ------------------------------------------------------------- */

static void fan_free(bfan *f)
{
    for (int i = 0; i < f->np; i++) {
        if (f->p[i].held) {
            fr_charge none = { 0 };          /* each answer is charged when a call takes it */
            fr_budget_settle(f->run, &f->p[i].hold, &none);
        }
        part_free(&f->p[i]);
    }
    fr_free(f->p);
    for (size_t i = 0; i < f->c.n; i++)
        fr_free(f->c.v[i].system), fr_free(f->c.v[i].prompt), fr_free(f->c.v[i].body);
    fr_free(f->c.v);
    json_decref(f->by_hash);
    pthread_mutex_lock(&f->run->mu);
    f->run->batch_line[0] = '\0';
    pthread_mutex_unlock(&f->run->mu);
}

static void collect_all(bfan *f, json_t *list, fr_body_fn body, void *env)
{
    size_t n = json_array_size(list);
    fr_ctx child;
    fr_ctx_init_child(f->cx, &child);
    collecting = &f->c;
    for (size_t i = 0; i < n; i++) {
        fr_ctx_set_item(&child, f->cx, i);
        child.item = json_array_get(list, i);
        child.sig = FR_OK;
        body(&child, child.item, i, env);
        fr_release(&child, 0);
        fr_sig_clear(&child);
    }
    collecting = NULL;
    fr_ctx_fini(&child);
}

bool fr_batch_prepass(fr_ctx *cx, json_t *list, const fr_par_opts *opts, fr_body_fn body,
                      void *env)
{
    fr_run *run = cx->run;
    if (run->mock_all || fr_batch_collecting())
        return true;
    bfan f = { .cx = cx, .run = run, .j = fr_journal_of(run),
               .where = opts->where ? opts->where : "" };
    snprintf(f.fanout, sizeof f.fanout, "%s@%s", f.where, cx->path);
    collect_all(&f, list, body, env);
    bool ok = true;
    if (f.c.n && (!store_of(run) || !(f.by_hash = json_object())))
        ok = false;
    for (size_t i = 0; ok && i < f.c.n; i++)
        ok = json_object_set_new(f.by_hash, f.c.v[i].h, json_integer((json_int_t)i)) == 0;
    int next = ok && f.c.n ? plan_journaled(&f) : 0;
    if (next < 0 || (ok && f.c.n && !plan_new(&f, next)))
        ok = false;
    if (!ok) {
        fan_free(&f);
        fr_fail(cx, opts->where, "out of memory");
        return false;
    }
    if (f.np == 0) {
        fan_free(&f);
        return true;
    }
    if (!hold_all(&f)) {                       /* the budget's signal is set */
        fan_free(&f);
        return false;
    }
    char why[600];
    for (int i = 0; ok && i < f.np; i++)
        if (f.p[i].state == P_FIND && !find(&f, &f.p[i], why, sizeof why)) {
            fr_fail(cx, opts->where, "batch fan-out: cannot tell whether part %d was submitted "
                    "before the run stopped (%s): nothing is submitted; --resume again",
                    f.p[i].index, why);
            ok = false;
        }
    for (int i = 0; ok && i < f.np; i++)
        if (f.p[i].resumed && f.p[i].state == P_POLL && !run->quiet)
            fprintf(stderr, "%sbatch %s (model %s): resumed, polling it again (status %s when "
                    "the run stopped)\n", run->progress ? "\r\033[K" : "", f.p[i].id,
                    f.p[i].b.model->name, f.p[i].status);
    ok = ok && drive(&f);
    fan_free(&f);
    return ok;
}
