/*
 * fr_op.c: one call of an http operation, from its arguments to its typed
 * answer.
 *
 * A call renders its request (URL, header lines, body value) with the
 * operation's generated render function.  Secrets (env.NAME in a header)
 * are markers in that rendering: the masked text ("***") keys the call in
 * the journal and is what --dry-run, traces and errors show; the values go
 * in only when the request is handed to the transport.  Then:
 *
 *   the journal     answers a call it holds (no request): --resume never
 *                   sends a finished request again;
 *   --dry-run       a write is written to <workflow>.dry-run.jsonl instead
 *                   of being sent, and answered with the mock's value;
 *   --mock          every call is answered with a value synthesized from
 *                   the result type (fr_mock_value), nothing is sent;
 *   otherwise       a write is durably marked in flight in the journal
 *                   before it leaves; each page is requested with up to
 *                   1 + retries attempts, each taking a call slot
 *                   (--concurrency) and its host's limiter slot, its
 *                   timeout cut to the time budget left.
 *
 * Outcomes of an attempt: 2xx takes the answer; no answer (network, timeout),
 * 408, 409, 429 and 5xx are retried after a backoff that honours
 * retry-after (a 429 also slows the host's limiter, an overload's
 * retry-after pauses it); any other status fails the call at once (under on_error: skip, the
 * item).  A 2xx answer is parsed, its items taken out (items:) and
 * validated against the result type; a mismatch fails the call naming the
 * operation, the status and the field.
 *
 * Exactly once: a write carries Idempotency-Key, the UUID-shaped SHA-256
 * of the run id and the call's journal key, so every attempt, and every
 * process of a resumed run, sends the same key for the same call.  A write
 * the journal shows in flight when a process stopped has an unknown
 * outcome: it is sent again with that same key, and a server that honours
 * the key (as Stripe's API does) answers with the first outcome instead of
 * applying it twice.
 *
 * Paging (a read whose result is list<T>): after each page, the next page's
 * URL is the cursor put in the query (cursor), a URL in the answer
 * (next_url) or the Link header's rel="next" (link); it must stay on the
 * first page's host (the headers carry credentials).  The pages' items are
 * joined in order into one answer, journaled as one call.
 */
#include "fr_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SECRET_OPEN '\001'        /* a secret's marker: \001NAME\002 */
#define SECRET_CLOSE '\002'

/* ---- rendering helpers (flowrt.h) ---------------------------------------- */

void fr_buf_url_value(fr_buf *b, json_t *v)
{
    static const char hex[] = "0123456789ABCDEF";
    fr_buf t = { 0 };
    fr_buf_value(&t, v);
    for (size_t i = 0; i < t.len; i++) {
        unsigned char c = (unsigned char)t.s[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
            || c == '-' || c == '.' || c == '_' || c == '~') {
            fr_buf_put(b, (const char *)&t.s[i], 1);
        } else {
            char e[3] = { '%', hex[c >> 4], hex[c & 15] };
            fr_buf_put(b, e, 3);
        }
    }
    fr_buf_free(&t);
}

json_t *fr_secret(fr_ctx *cx, const char *env)
{
    fr_buf b = { 0 };
    fr_buf_printf(&b, "%c%s%c", SECRET_OPEN, env, SECRET_CLOSE);
    json_t *v = fr_buf_failed(&b) ? NULL : fr_strn(cx, b.s, b.len);
    fr_buf_free(&b);
    return v ? v : fr_oom(cx);
}

/* s with each secret's marker replaced by its value (real) or "***"
 * (malloc'd; NULL when out of memory). */
static char *expand(const char *s, size_t n, bool real)
{
    fr_buf b = { 0 };
    for (size_t i = 0; i < n; i++) {
        const char *close = s[i] == SECRET_OPEN ? memchr(s + i, SECRET_CLOSE, n - i) : NULL;
        if (!close) {
            fr_buf_put(&b, s + i, 1);
            continue;
        }
        char name[256];
        size_t k = (size_t)(close - s - (ptrdiff_t)i - 1);
        snprintf(name, sizeof name, "%.*s", (int)(k < 255 ? k : 255), s + i + 1);
        const char *val = real ? getenv(name) : NULL;
        fr_buf_puts(&b, real ? (val ? val : "") : "***");
        i += k + 1;
    }
    if (!b.s)
        fr_buf_puts(&b, "");
    return fr_http_buf_take(&b);
}

/* The operation's secrets are all set: a request never leaves with an
 * empty credential.  Checked when a call is about to be sent (an operation
 * a run never calls needs none), as a usage error: exit 2. */
static bool secrets_set(fr_ctx *cx, const fr_op *op, const char *where)
{
    for (int k = 0; k < op->nsecrets; k++) {
        const char *v = getenv(op->secrets[k]);
        if (!v || !*v) {
            fr_usage(cx, where, "http operation '%s' needs a secret: %s is not set", op->name,
                     op->secrets[k]);
            return false;
        }
    }
    return true;
}

/* ---- one call's state ---------------------------------------------------- */

typedef struct opcall {
    fr_ctx *cx;                    /* the calling context */
    const fr_op *op;               /* the operation */
    const char *where;             /* the call site */
    fr_oprequest rq;               /* rendered */
    char *body;                    /* the body as JSON text, or NULL */
    char *masked;                  /* the request with secrets masked: key, logs */
    char *url;                     /* the first page's URL */
    char idem[37];                 /* writes: the Idempotency-Key, "" for reads */
    fr_jhook jh;                   /* the journal's part */
    int attempts;                  /* requests sent */
    int retries;                   /* of those, after a page's first */
    int pages;                     /* pages taken */
    int status;                    /* the last HTTP status, 0 none */
    bool unknown;                  /* a crash left this write in flight before */
    bool dry;                      /* held back by --dry-run */
    char *error;                   /* why it failed (malloc'd) */
    char error_type[32];           /* for the trace */
    bool exhausted;                /* it failed after its retries, on transient errors */
} opcall;

static void set_error(opcall *c, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(opcall *c, const char *type, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    fr_free(c->error);
    c->error = n >= 0 ? fr_malloc((size_t)n + 1) : NULL;
    if (c->error)
        vsnprintf(c->error, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    /* a server may echo what it was sent: the secrets go before the cut
     * (which would leave a piece of one behind), and their pieces after */
    for (int i = 0; c->error && i < c->op->nsecrets; i++)
        fr_http_scrub(&c->error, getenv(c->op->secrets[i]));
    if (c->error) {
        fr_http_cut(c->error, FR_ERROR_MAX);
        for (int i = 0; i < c->op->nsecrets; i++)
            fr_http_scrub(&c->error, getenv(c->op->secrets[i]));
        fr_repair_utf8(c->error);
    }
    snprintf(c->error_type, sizeof c->error_type, "%s", type);
}

/* The text the call is keyed by: method, URL, masked headers, body. */
static bool render(opcall *c, json_t *const *args)
{
    fr_ctx *cx = c->cx;
    if (!c->op->render(cx, args, &c->rq))
        return false;
    if (c->rq.body && c->op->body_type)
        c->body = fr_to_json(c->rq.body, c->op->body_type);
    else if (c->rq.body)
        c->body = json_dumps(c->rq.body, JSON_COMPACT | JSON_ENCODE_ANY);
    char *hdrs = expand(c->rq.headers.s ? c->rq.headers.s : "", c->rq.headers.len, false);
    fr_buf m = { 0 };
    fr_buf_printf(&m, "%s %s\n%s\n%s", c->op->method, c->rq.url.s ? c->rq.url.s : "",
                  hdrs ? hdrs : "", c->body ? c->body : "");
    fr_free(hdrs);
    c->masked = fr_http_buf_take(&m);
    c->url = fr_strdup(c->rq.url.s ? c->rq.url.s : "");
    if ((c->rq.body && !c->body) || !c->masked || !c->url || fr_buf_failed(&c->rq.url)
        || fr_buf_failed(&c->rq.headers)) {
        fr_oom(cx);
        return false;
    }
    /* under --mock nothing is sent: a made-up URL (a mocked tool argument) is no error */
    if (!cx->run->mock_all && strncmp(c->url, "https://", 8) != 0
        && strncmp(c->url, "http://", 7) != 0) {
        fr_fail(cx, c->where, "http operation '%s': the URL '%s' does not start with https:// "
                "or http://", c->op->name, c->url);
        return false;
    }
    return true;
}

/* Idempotency-Key: SHA-256 of the run id and the call key, shaped as a UUID. */
static void idempotency_key(opcall *c)
{
    char text[FR_RUN_ID_MAX + FR_JKEY_MAX + 2], hex[65];
    snprintf(text, sizeof text, "%s/%s", fr_journal_run_tag(c->cx->run), c->jh.jc.key);
    fr_sha256_hex(text, strlen(text), hex);
    snprintf(c->idem, sizeof c->idem, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

/* ---- counting ------------------------------------------------------------ */

static void count(opcall *c, bool cached, bool failed, int64_t ms)
{
    fr_run *run = c->cx->run;
    pthread_mutex_lock(&run->mu);
    fr_stats *st = fr_stats_of(run, c->cx->phase);
    if (cached)
        st->http_cached++;
    else if (c->dry)
        st->http_dry++;
    else
        st->http_calls++;
    st->http_retries += c->retries;
    st->http_failures += failed;
    st->http_unknown += c->unknown;
    st->http_pages += c->op->write ? 0 : c->pages;
    st->http_ms += ms;
    pthread_mutex_unlock(&run->mu);
}

/* ---- --dry-run ----------------------------------------------------------- */

static char *dry_path(const fr_program *prog)
{
    fr_buf b = { 0 };
    fr_buf_printf(&b, "%s.dry-run.jsonl", prog->name);
    char *p = fr_http_buf_take(&b);
    return p && fr_shard_on() ? fr_shard_part_of(p) : p;
}

/* One JSON line for the reviewer: what would have been sent, masked. */
static bool dry_write(opcall *c)
{
    fr_ctx *cx = c->cx;
    fr_run *run = cx->run;
    json_t *hdrs = json_array();
    char *masked = expand(c->rq.headers.s ? c->rq.headers.s : "", c->rq.headers.len, false);
    for (char *line = masked, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            nl = line + strlen(line) - 1;
        json_array_append_new(hdrs, json_stringn(line, (size_t)(nl - line) + (*nl != '\n')));
    }
    fr_free(masked);
    json_t *body = c->body ? fr_json_loadb(c->body, strlen(c->body), JSON_DECODE_ANY, NULL)
                           : json_null();
    json_t *line = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:o, s:s, s:o}", "operation",
                             c->op->name, "where", c->where ? c->where : "", "item",
                             cx->path[0] ? cx->path : NULL, "method", c->op->method, "url",
                             c->url, "headers", hdrs, "idempotency_key", c->idem, "body",
                             body ? body : json_null());
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(line);
    bool ok = text != NULL;
    pthread_mutex_lock(&run->review_mu);
    if (ok && !run->dry) {
        char *path = dry_path(run->prog);
        run->dry = path ? fopen(path, "w") : NULL;
        fr_free(path);
    }
    ok = ok && run->dry && fprintf(run->dry, "%s\n", text) > 0 && fflush(run->dry) == 0;
    run->dry_writes += ok;
    pthread_mutex_unlock(&run->review_mu);
    fr_free(text);
    if (!ok)
        fr_fail(cx, c->where, "http operation '%s': cannot write the --dry-run file",
                c->op->name);
    return ok;
}

char *fr_op_dry_close(fr_run *run)
{
    if (!run->dry_run)
        return NULL;
    if (run->dry)
        fclose(run->dry);
    run->dry = NULL;
    return dry_path(run->prog);
}

/* ---- one page ------------------------------------------------------------ */

static void free_headers(char **h, int n)
{
    for (int i = 0; h && i < n; i++) {
        if (h[i])
            memset(h[i], 0, strlen(h[i]));
        fr_free(h[i]);
    }
    fr_free(h);
}

/* The header lines to send: the rendered ones with their secrets, the
 * body's type, the idempotency key. */
static char **send_headers(opcall *c, int *n)
{
    char *real = expand(c->rq.headers.s ? c->rq.headers.s : "", c->rq.headers.len, true);
    int cap = 4;
    for (const char *p = real ? real : ""; *p; p++)
        cap += *p == '\n';
    char **h = fr_calloc((size_t)cap + 1, sizeof *h);
    *n = 0;
    bool has_ct = false, has_accept = false;
    for (char *line = real, *nl; h && line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        has_ct |= strncasecmp(line, "content-type:", 13) == 0;
        has_accept |= strncasecmp(line, "accept:", 7) == 0;
        h[(*n)++] = fr_strdup(line);
        if (!nl)
            break;
    }
    if (h && c->body && !has_ct)
        h[(*n)++] = fr_strdup("Content-Type: application/json");
    if (h && !has_accept)
        h[(*n)++] = fr_strdup("Accept: application/json");
    if (h && c->idem[0]) {
        char line[64];
        snprintf(line, sizeof line, "Idempotency-Key: %s", c->idem);
        h[(*n)++] = fr_strdup(line);
    }
    if (real)
        memset(real, 0, strlen(real));          /* the secrets leave no copy behind */
    fr_free(real);
    for (int i = 0; h && i < *n; i++)
        if (!h[i]) {                            /* out of memory: no request half made */
            free_headers(h, *n);
            return NULL;
        }
    return h;
}

/* The provider's own words from an error answer, if it says any. */
static const char *server_message(json_t *body, char *buf, size_t cap)
{
    json_t *e = json_object_get(body, "error");
    const char *m = json_string_value(e);
    if (!m)
        m = json_string_value(json_object_get(e, "message"));
    if (!m)
        m = json_string_value(json_object_get(body, "message"));
    if (!m)
        return NULL;
    snprintf(buf, cap, "%s", m);
    return buf;
}

enum { PAGE_OK, PAGE_RETRY, PAGE_FAIL, PAGE_BUDGET };

/* The outcome of one attempt; *answer takes a 2xx answer's parsed body. */
static int classify(opcall *c, const char *url, fr_xres *res, json_t **answer)
{
    c->status = (int)res->status;
    if (res->status == 0) {
        set_error(c, res->transient ? "transient" : "network", "%s %s: %s", c->op->method, url,
                  res->error ? res->error : "no answer");
        return res->transient ? PAGE_RETRY : PAGE_FAIL;
    }
    json_error_t je;
    json_t *body = res->body && res->len
                   ? fr_json_loadb(res->body, res->len, JSON_DECODE_ANY, &je) : NULL;
    if (res->status >= 200 && res->status < 300) {
        if (!body && c->op->output && !(res->len == 0 && c->op->output->kind == FR_OPTIONAL)) {
            set_error(c, "invalid_answer", "HTTP %ld from %s %s: %s", res->status,
                      c->op->method, url, res->len ? "the answer is not JSON" : "empty answer");
            return PAGE_FAIL;
        }
        *answer = body ? body : json_null();
        return PAGE_OK;
    }
    char buf[300];
    const char *msg = body ? server_message(body, buf, sizeof buf) : NULL;
    bool transient = res->status == 408 || res->status == 409 || res->status == 429
                     || res->status >= 500;
    char type[16];
    snprintf(type, sizeof type, "%ld", res->status);
    set_error(c, type, "HTTP %ld from %s %s%s%s", res->status, c->op->method, url,
              msg ? ": " : "", msg ? msg : "");
    json_decref(body);
    return transient ? PAGE_RETRY : PAGE_FAIL;
}

/* One page: attempts until an answer, a failure or the budget. */
static int fetch_page(opcall *c, const char *url, json_t **answer, char **link)
{
    fr_ctx *cx = c->cx;
    fr_run *run = cx->run;
    fr_limiter *lim = fr_http_host_limiter(run->http, url, c->op->rps);
    if (!lim) {
        set_error(c, "oom", "out of memory");
        return PAGE_FAIL;
    }
    for (int a = 0; a <= c->op->retries; a++) {
        int64_t left = fr_budget_time_left(cx);
        if (left <= 0)
            return fr_budget_time_stop(cx), PAGE_BUDGET;
        if (fr_intr_stopped(cx))
            return PAGE_BUDGET;            /* Ctrl-C: no request starts (FR_SIG_STOP) */
        int n = 0;
        char **hdrs = send_headers(c, &n);
        if (!hdrs) {
            set_error(c, "oom", "out of memory");
            return PAGE_FAIL;
        }
        fr_slot_take(run);
        if (fr_intr_stopped(cx)) {         /* it came while we waited for the slot */
            fr_slot_give(run);
            free_headers(hdrs, n);
            return PAGE_BUDGET;
        }
        int timeout = c->op->timeout_ms < left ? c->op->timeout_ms : (int)left;
        fr_xreq rq = { c->op->method, url, (const char *const *)hdrs, n, c->body, timeout };
        fr_xres res;
        int64_t sent = fr_limit_acquire(lim, 0, 0);
        if (sent < 0) {                    /* stopped while it waited for its slot */
            fr_slot_give(run);
            free_headers(hdrs, n);
            fr_intr_stopped(cx);
            return PAGE_BUDGET;
        }
        fr_http_exchange(run->http, &rq, &res);
        fr_slot_give(run);
        free_headers(hdrs, n);
        c->attempts++;
        c->retries += a > 0;
        /* a 429's retry-after is this request's own wait (the backoff):
         * the others go on at the learned rate; an overload pauses all */
        if (res.retry_after_ms > 0 && res.status != 429)
            fr_limit_pause(lim, res.retry_after_ms);
        fr_limit_done(lim, sent, (int)res.status);
        int k = classify(c, url, &res, answer);
        if (k == PAGE_OK && link) {
            *link = res.link_next;
            res.link_next = NULL;
        }
        int ra = res.retry_after_ms;
        int64_t asked = res.retry_after_asked_ms;
        fr_xres_free(&res);
        if (k != PAGE_RETRY)
            return k;
        if (a < c->op->retries)
            fr_backoff(cx, a, ra, asked, c->error);
    }
    c->exhausted = true;           /* failed after transient errors only */
    return PAGE_FAIL;
}

/* ---- answers and pages --------------------------------------------------- */

/* The value at a dotted path ("paging.next.after") in v, or NULL. */
static json_t *at_path(json_t *v, const char *path)
{
    char seg[128];
    for (const char *p = path; v && p && *p;) {
        size_t k = strcspn(p, ".");
        snprintf(seg, sizeof seg, "%.*s", (int)(k < 127 ? k : 127), p);
        v = json_object_get(v, seg);
        p = p[k] ? p + k + 1 : NULL;
    }
    return v;
}

/* base with query parameter param set to value (replaced if present). */
static char *with_param(const char *base, const char *param, json_t *value)
{
    fr_buf b = { 0 };
    const char *q = strchr(base, '?');
    size_t pl = strlen(param);
    fr_buf_put(&b, base, q ? (size_t)(q - base) : strlen(base));
    char sep = '?';
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t k = strcspn(p, "&#");
        if (!(k >= pl && strncmp(p, param, pl) == 0 && (k == pl || p[pl] == '='))) {
            fr_buf_put(&b, &sep, 1);
            fr_buf_put(&b, p, k);
            sep = '&';
        }
        p += k;
        if (*p != '&')
            break;
        p++;
    }
    fr_buf_put(&b, &sep, 1);
    fr_buf_puts(&b, param);
    fr_buf_puts(&b, "=");
    fr_buf_url_value(&b, value);
    return fr_http_buf_take(&b);
}

/* A next page's URL made absolute against url; NULL when it leaves url's
 * origin (the headers carry credentials) or memory ran out. */
static char *next_on_origin(opcall *c, const char *url, const char *next)
{
    const char *h = strstr(url, "://");
    size_t ol = h ? (size_t)(h + 3 - url) + strcspn(h + 3, "/?#") : 0;
    fr_buf b = { 0 };
    if (next[0] == '/' && next[1] != '/') {
        fr_buf_put(&b, url, ol);
        fr_buf_puts(&b, next);
    } else if (strncasecmp(next, url, ol) == 0 && strchr("/?#", next[ol] ? next[ol] : '/')) {
        fr_buf_puts(&b, next);
    } else {
        set_error(c, "paging", "paging of %s leads to '%.200s', off %.*s; its headers are not "
                  "sent to another host", url, next, (int)ol, url);
        return NULL;
    }
    return fr_http_buf_take(&b);
}

/* The items of one page's answer, checked against the result type. */
static json_t *page_items(opcall *c, json_t *answer)
{
    const fr_op *op = c->op;
    json_t *v = op->items ? at_path(answer, op->items) : answer;
    if (!v) {
        set_error(c, "invalid_answer", "HTTP %d from %s %s: the answer has no '%s'", c->status,
                  op->method, c->url, op->items);
        return NULL;
    }
    fr_buf err = { 0 };
    if (op->output && !fr_validate(v, op->output, &err)) {
        set_error(c, "invalid_answer", "HTTP %d from %s %s: %s%s%s", c->status, op->method,
                  c->url, op->items ? op->items : "", op->items && err.s && err.s[0] != '[' ? "."
                  : "", err.s ? err.s : "the answer does not match the result type");
        fr_buf_free(&err);
        return NULL;
    }
    fr_buf_free(&err);
    return v;
}

/* The next page's URL, NULL when this was the last (or on an error). */
static char *next_url(opcall *c, const char *url, json_t *answer, char *link, bool *err)
{
    const fr_op *op = c->op;
    json_t *n = NULL;
    switch (op->paging) {
    case FR_PAGE_CURSOR:
        n = at_path(answer, op->page_field);
        if (!n || json_is_null(n) || (json_is_string(n) && !*json_string_value(n)))
            return NULL;
        return with_param(c->url, op->page_param, n);
    case FR_PAGE_NEXT_URL:
        n = at_path(answer, op->page_field);
        if (!json_is_string(n) || !*json_string_value(n))
            return NULL;
        {
            char *u = next_on_origin(c, url, json_string_value(n));
            *err = u == NULL;
            return u;
        }
    case FR_PAGE_LINK:
        if (!link)
            return NULL;
        {
            char *u = next_on_origin(c, url, link);
            *err = u == NULL;
            return u;
        }
    default:
        return NULL;
    }
}

/* Every page of the call, joined (a paged read), or its one answer; NULL
 * with the reason in c->error, or *why PAGE_BUDGET. */
static json_t *fetch(opcall *c, int *why)
{
    const fr_op *op = c->op;
    bool paged = op->paging != FR_PAGE_NONE;
    json_t *all = paged ? json_array() : NULL, *result = NULL;
    char *url = fr_strdup(c->url);
    bool ok = url && (!paged || all);
    *why = PAGE_FAIL;
    if (!ok)
        set_error(c, "oom", "out of memory");
    while (ok && url) {
        if (c->pages >= op->max_pages) {
            set_error(c, "paging", "%s %s: more than max_pages (%d) pages", op->method, c->url,
                      op->max_pages);
            ok = false;
            break;
        }
        json_t *answer = NULL;
        char *link = NULL;
        int k = fetch_page(c, url, &answer, op->paging == FR_PAGE_LINK ? &link : NULL);
        if (k != PAGE_OK) {
            *why = k;
            ok = false;
            break;
        }
        c->pages++;
        json_t *items = op->output ? page_items(c, answer) : json_null();
        bool err = false;
        char *next = items && paged ? next_url(c, url, answer, link, &err) : NULL;
        fr_free(link);
        if (next && strcmp(next, url) == 0) {
            set_error(c, "paging", "%s %s: the next page is the same page", op->method, url);
            err = true;
            fr_free(next);
            next = NULL;
        }
        ok = items && !err;
        if (ok && paged)
            json_array_extend(all, items);
        else if (ok)
            result = json_incref(items);
        json_decref(answer);
        fr_free(url);
        url = next;
    }
    fr_free(url);
    if (!ok) {
        json_decref(all);
        json_decref(result);
        return NULL;
    }
    return paged ? all : result;
}

/* ---- the call ------------------------------------------------------------ */

static void call_free(opcall *c)
{
    fr_buf_free(&c->rq.url);
    fr_buf_free(&c->rq.headers);
    fr_free(c->body);
    fr_free(c->masked);
    fr_free(c->url);
    fr_free(c->error);
}

/* The answer kept in cx's pool, normalized to the result type. */
static json_t *keep(opcall *c, json_t *v)
{
    const fr_type *t = c->op->output;
    json_t *n = t ? fr_normalize(v, t) : json_incref(json_null());
    json_decref(v);
    return n ? fr_keep(c->cx, n) : fr_oom(c->cx);
}

/* A value from the mock, for --mock and for a dry-run write. */
static json_t *mocked(opcall *c)
{
    json_t *v = fr_mock_value(c->op->output, c->masked);
    return v ? keep(c, v) : fr_oom(c->cx);
}

json_t *fr_op_call(fr_ctx *cx, const fr_op *op, int site, json_t *const *args,
                   const char *where)
{
    return fr_op_call_under(cx, op, site, args, where, NULL);
}

json_t *fr_op_call_under(fr_ctx *cx, const fr_op *op, int site, json_t *const *args,
                         const char *where, const fr_under *u)
{
    opcall c = { .cx = cx, .op = op, .where = where };
    int64_t t0 = fr_now_ms();
    if (!render(&c, args)) {
        call_free(&c);
        return NULL;
    }
    cx->seq++;
    json_t *v = fr_journal_op_begin(&c.jh, cx, op, site, c.masked, &c.unknown, u);
    if (op->write)
        idempotency_key(&c);
    bool failed = false;
    fr_run *run = cx->run;
    if (v) {
        c.unknown = false;
    } else if (op->write && run->dry_run) {
        c.dry = true;
        c.unknown = false;
        v = dry_write(&c) ? mocked(&c) : NULL;
    } else if (run->mock_all) {
        c.pages = 1;
        v = mocked(&c);
        c.jh.jc.attempts = 0;
        if (v)
            fr_journal_call_record(&c.jh, cx, v, op->output ? op->output : &fr_type_string);
    } else if (!fr_journal_stopped(cx) && !fr_intr_stopped(cx) && secrets_set(cx, op, where) &&
               (!op->write || fr_journal_op_hold(&c.jh, cx))) {
        /* (a journal that cannot be written sends nothing: FR_SIG_STOP) */
        int why;
        json_t *got = fetch(&c, &why);
        if (got) {
            v = keep(&c, got);
            c.jh.jc.attempts = c.attempts;
            if (v)
                fr_journal_call_record(&c.jh, cx, v, op->output ? op->output : &fr_type_string);
        } else if (why != PAGE_BUDGET) {
            failed = true;
            if (c.exhausted)
                fr_count_transient(cx);
            fr_fail(cx, where, "http operation '%s': %s", op->name,
                    c.error ? c.error : "failed");
        }
    }
    if (v && fr_journal_stopped(cx))                /* its record failed */
        v = NULL;
    if (failed && c.attempts > 1 && cx->err) {      /* how hard it tried */
        fr_buf b = { 0 };
        fr_buf_printf(&b, "%s after %d attempts", cx->err, c.attempts);
        if (!fr_buf_failed(&b)) {
            fr_free(cx->err);
            cx->err = b.s;
        } else {
            fr_buf_free(&b);
        }
    }
    count(&c, c.jh.cached, failed, fr_now_ms() - t0);
    fr_top t = {
        op->name, op->method, c.url, c.status, cx->phase, cx->path, c.attempts, c.retries,
        c.pages, 0, 0, v ? NULL : c.error_type[0] ? c.error_type : "error", c.jh.cached, c.unknown,
        c.dry, c.idem[0] ? c.idem : NULL, NULL, NULL,
    };
    fr_journal_op_end(&c.jh, cx, v, &t);
    call_free(&c);
    return v;
}
