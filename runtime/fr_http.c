/*
 * fr_http.c: the HTTP side of the provider seam, shared by both wire formats.
 *
 * fr_http_new resolves, per model, an endpoint: the request URL (the model's
 * base_url, else ANTHROPIC_BASE_URL / OPENAI_BASE_URL, else the provider's),
 * the API key variable and its value.  A missing key fails there, before any
 * work, naming the variable; a model declared with `api_key_env: none` (a
 * local Ollama, vLLM or llama.cpp server) takes none, and then no key header
 * is sent.
 *
 * One attempt is one exchange on the transport (fr_net.c): the calling fiber
 * parks while the event loop's thread drives the transfer, with every other
 * one, through libcurl's multi interface; connections, DNS answers and TLS
 * sessions are reused across all of them.  libcurl is loaded on the first
 * request.
 *
 * Endpoints sharing a base URL and key variable share a rate limiter
 * (fr_limit.c): every request waits for its slot, its tokens estimated at
 * four bytes each plus its max_tokens; both providers' rate-limit headers
 * (requests, and tokens: OpenAI's x-ratelimit-*-tokens, Anthropic's
 * anthropic-ratelimit-input-tokens-* and -output-tokens-*), a 429 or an
 * overload's retry-after pace the whole fan-out, not just one worker.
 *
 * Warm-up: the first request of an agent whose fixed prefix the model
 * caches (at least its min_cache_tokens, or 1024 tokens when it does not
 * say) goes alone; the agent's other requests on that model wait until its
 * answer has begun (the status line arrives) or it ended without one, so a
 * fan-out reads the prefix the first request wrote instead of every request
 * writing it.  A prefix unused for longer than the cache keeps it is warmed
 * again.
 *
 * A request body is the wire format's head (model, messages, system, ...)
 * with the agent's schema part (output_config, tools or response_format, as
 * the model's structured-output mode says) spliced in as text, made once per
 * agent and mode.  Outcomes: connection errors, timeouts, 408, 409,
 * 429 and 5xx are FR_TRANSIENT with retry-after(-ms) passed on; other
 * statuses are FR_FATAL with "HTTP 401 from anthropic: <provider's message>";
 * an x-should-retry header, when the provider sends one, decides instead.
 *
 * No message built here contains a key: the provider's own error text is
 * scrubbed of it as well.
 *
 * http operations (fr_op.c) use the same transport through
 * fr_http_exchange: any method, their own header lines and body, on the
 * same pool of handles, connection cache and DNS/TLS sharing; it returns the
 * status, the body, retry-after and a Link header's rel="next".  Their
 * limiters are per host (fr_http_host_limiter), capped by the operations'
 * rps.
 */
#define FR_WITH_CURL
#include <curl/curl.h>

#include "fr_internal.h"

#include <malloc.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY (32u << 20)       /* a provider answer larger than this is refused */
#define CACHE_TTL_MS (5 * 60 * 1000) /* a cached prefix lives this long unused (Anthropic's
                                        default TTL; OpenAI keeps one 5 to 10 minutes) */
#define WARM_MIN_TOKENS 1024       /* no warm-up for a shorter prefix: no current model
                                      caches one (when the model does not say) */

typedef struct endpoint {
    const fr_model *model;         /* the model this entry was made for */
    const char *provider;          /* "anthropic" or "openai" */
    char *url;                     /* the full request URL */
    char *key_env;                 /* the key's variable name */
    char *key;                     /* the key, or NULL when a local server needs none */
    fr_limiter *lim;               /* shared by endpoints with the same url and key_env */
    fr_output_mode mode;           /* a downgraded structured-output mode (the server
                                      refused the model's), FR_OUT_DEFAULT: none */
    bool owns_lim;                 /* this entry frees lim */
    struct endpoint *next;         /* the next endpoint */
} endpoint;

/* The schema part of one agent's requests in one mode, as text. */
typedef struct schema_part {
    const fr_agent *agent;         /* whose */
    fr_output_mode mode;           /* output_config, tool, json_schema, json_object, prompt */
    char *text;                    /* the members, without the object's braces */
    bool wrapped;                  /* the schema was wrapped as {"answer": ...} */
    struct schema_part *next;      /* the next part */
} schema_part;

/* The warm-up of one agent's cacheable prefix on one model: the first
 * request goes alone, the others wait until its answer has begun, so that
 * they read the cache it wrote instead of each writing it. */
typedef struct warm {
    const fr_agent *agent;         /* whose prefix */
    const fr_model *model;         /* on which model */
    int state;                     /* 0 cold, 1 the first request is out, 2 warm */
    int64_t used_ms;               /* when a request last used it (monotonic) */
    struct warm *next;             /* the next one */
} warm;

/* The limiter of one host of the http operations (scheme://host:port). */
typedef struct host_lim {
    char *origin;                  /* "https://api.example.com" */
    fr_limiter *lim;               /* its limiter */
    struct host_lim *next;         /* the next host */
} host_lim;

struct fr_http {
    host_lim *hosts;               /* the operations' hosts (guarded by ep_mu) */
    pthread_mutex_t ep_mu;         /* guards eps */
    endpoint *eps;                 /* every endpoint resolved so far */
    schema_part *parts;            /* schema parts made so far (guarded by ep_mu) */
    warm *warms;                   /* cacheable prefixes seen (guarded by warm_mu) */
    pthread_mutex_t warm_mu;       /* guards warms */
    fr_cond warm_cv;               /* a prefix became warm */
    int max_wait_ms;               /* --max-retry-after: the longest wait a server may ask */
};

/* ---- messages ------------------------------------------------------------ */

void fr_http_set_error(fr_response *r, fr_outcome o, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = n >= 0 ? fr_malloc((size_t)n + 1) : NULL;
    if (msg) {
        vsnprintf(msg, (size_t)n + 1, fmt, ap2);
        fr_repair_utf8(msg);
    }
    va_end(ap2);
    r->outcome = o;
    fr_free(r->error);
    r->error = msg ? msg : fr_strdup("out of memory");
}

char *fr_http_buf_take(fr_buf *b)
{
    if (fr_buf_failed(b)) {
        fr_buf_free(b);
        return NULL;
    }
    return b->s;
}

int64_t fr_http_tokens(json_t *v, fr_response *r)
{
    if (!v || json_is_null(v))
        return 0;
    const json_int_t cap = (json_int_t)1 << 40;
    if (json_is_real(v)) {                 /* 12.0 from a lax server is a count; 1.5 not */
        double d = json_real_value(v);
        if (d >= (double)cap)
            return cap;
        if (d >= 0 && d == (double)(int64_t)d)
            return (int64_t)d;
        r->usage_bad = true;
        return 0;
    }
    json_int_t n = json_integer_value(v);
    if (!json_is_integer(v) || n < 0) {    /* "100", -5, 1.5: a count that is no count */
        r->usage_bad = true;
        return 0;
    }
    return n > cap ? cap : n;
}

/* A piece of a key this long is scrubbed even where the key is not whole: a
 * cut (or a server) may have left its start behind. */
#define KEY_PIECE 8

/* Replaces by "***", in place, every occurrence in s of key and of every
 * prefix of key of KEY_PIECE bytes or more (so a key cut short by the end
 * of a text, or by a server's own truncation, goes too).  A key shorter
 * than 4 bytes is left alone: scrubbing it would garble the text. */
static void scrub(char *s, const char *key)
{
    size_t kl = key ? strlen(key) : 0;
    if (!s || kl < 4)
        return;
    char *w = s;
    for (const char *r = s; *r;) {
        size_t m = 0;
        while (m < kl && r[m] == key[m])
            m++;
        if (m == kl || m >= KEY_PIECE) {
            memcpy(w, "***", 3);
            w += 3, r += m;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

void fr_http_scrub(char **s, const char *secret)
{
    scrub(*s, secret);
}

/* Cuts s to at most max bytes, on a UTF-8 character boundary. */
void fr_http_cut(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max)
        return;
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    s[max] = '\0';
}

char *fr_http_excerpt(const fr_response *r, const char *text, size_t max)
{
    char *t = fr_strdup(text ? text : "");
    if (t) {
        scrub(t, r->secret);                /* first: a cut must not split a key */
        fr_http_cut(t, max);
        scrub(t, r->secret);
    }
    return t;
}

/* The error and raw text of an attempt, before they leave fr_http_call:
 * the key scrubbed out, then the error cut to FR_ERROR_MAX bytes. */
static void finish_texts(fr_response *r)
{
    scrub(r->raw, r->secret);
    if (r->error) {
        scrub(r->error, r->secret);
        fr_http_cut(r->error, FR_ERROR_MAX);
        scrub(r->error, r->secret);
    }
    r->secret = NULL;
}

/* ---- endpoints: URL, key, limiter per model ------------------------------ */

static char *join_url(const char *base, const char *path)
{
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    char *u = fr_malloc(bl + strlen(path) + 1);
    if (u) {
        memcpy(u, base, bl);
        strcpy(u + bl, path);
    }
    return u;
}

static void ep_free(endpoint *e)
{
    fr_free(e->url);
    fr_free(e->key_env);
    if (e->key)
        explicit_bzero(e->key, strlen(e->key));
    fr_free(e->key);
    if (e->owns_lim)
        fr_limit_free(e->lim);
    fr_free(e);
}

/* The limiter of an endpoint with the same URL and key variable, if any. */
static fr_limiter *lim_shared(fr_http *h, const endpoint *e)
{
    for (endpoint *o = h->eps; o; o = o->next)
        if (strcmp(o->url, e->url) == 0 && strcmp(o->key_env, e->key_env) == 0)
            return o->lim;
    return NULL;
}

/* Fills e's URL and key from the model and the environment; false with err. */
static bool ep_resolve(endpoint *e, const fr_model *m, fr_buf *err)
{
    bool anth = strcmp(m->provider, "anthropic") == 0;
    if (!anth && strcmp(m->provider, "openai") != 0) {
        fr_buf_printf(err, "model '%s': unknown provider '%s'", m->name, m->provider);
        return false;
    }
    e->provider = anth ? "anthropic" : "openai";
    const char *base = m->base_url;
    if (!base || !*base)
        base = getenv(anth ? "ANTHROPIC_BASE_URL" : "OPENAI_BASE_URL");
    if (!base || !*base)
        base = anth ? "https://api.anthropic.com" : "https://api.openai.com/v1";
    e->url = join_url(base, anth ? "/v1/messages" : "/chat/completions");
    bool keyless = m->api_key_env && !*m->api_key_env;     /* api_key_env: none */
    const char *var = keyless ? "" : m->api_key_env ? m->api_key_env
                                   : anth ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY";
    e->key_env = fr_strdup(var);
    const char *key = keyless ? NULL : getenv(var);
    if (key && *key)
        e->key = fr_strdup(key);
    if (!e->url || !e->key_env || (key && *key && !e->key)) {
        fr_buf_puts(err, "out of memory");
        return false;
    }
    if (!e->key && !keyless) {
        fr_buf_printf(err, "model '%s' (%s) needs an API key: %s is not set (a server that "
                      "takes no key: add 'api_key_env: none' to the model)",
                      m->name, e->provider, var);
        return false;
    }
    return true;
}

/* Resolves model m and adds it to h's endpoints; h->ep_mu is held. */
static endpoint *ep_add(fr_http *h, const fr_model *m, fr_buf *err)
{
    endpoint *e = fr_calloc(1, sizeof *e);
    if (!e) {
        fr_buf_puts(err, "out of memory");
        return NULL;
    }
    e->model = m;
    if (!ep_resolve(e, m, err)) {
        ep_free(e);
        return NULL;
    }
    e->lim = lim_shared(h, e);
    if (!e->lim) {
        e->lim = fr_limit_new(m->rpm, m->tpm);
        e->owns_lim = true;
        if (e->lim) {                  /* its schedule in Redis, shared by every process */
            char name[512];
            snprintf(name, sizeof name, "%s|%s", e->url, e->key_env);
            fr_limit_name(e->lim, name);
        }
    }
    if (!e->lim) {
        fr_buf_puts(err, "out of memory");
        ep_free(e);
        return NULL;
    }
    e->next = h->eps;
    h->eps = e;
    return e;
}

/* The endpoint of model m, resolving it on first use. */
static endpoint *ep_find(fr_http *h, const fr_model *m, fr_buf *err)
{
    pthread_mutex_lock(&h->ep_mu);
    endpoint *e = h->eps;
    while (e && e->model != m)
        e = e->next;
    if (!e)
        e = ep_add(h, m, err);
    pthread_mutex_unlock(&h->ep_mu);
    return e;
}

/* ---- setup --------------------------------------------------------------- */

/* Resolves every model of prog; false with every problem in err, one per
 * line, a variable named once even when several models need it. */
static bool check_models(fr_http *h, const fr_program *prog, fr_buf *err)
{
    bool ok = true;
    for (int i = 0; i < prog->nmodels; i++) {
        const fr_model *m = prog->models[i];
        fr_buf one = { 0 };
        if (strcmp(m->provider, "mock") == 0 || ep_find(h, m, &one))
            continue;
        const char *var = strstr(one.s ? one.s : "", ": ");
        if (!var || !err->s || !strstr(err->s, var)) {
            if (!ok)
                fr_buf_puts(err, "\n");
            fr_buf_puts(err, one.s ? one.s : "out of memory");
        }
        ok = false;
        fr_buf_free(&one);
    }
    return ok;
}

void fr_http_set_max_wait(fr_http *h, int ms)
{
    h->max_wait_ms = ms;
}

fr_http *fr_http_new(const fr_program *prog, bool mock_all, fr_buf *err)
{
    fr_http *h = fr_calloc(1, sizeof *h);
    if (!h) {
        fr_buf_puts(err, "out of memory");
        return NULL;
    }
    h->max_wait_ms = FR_MAX_WAIT_MS;
    pthread_mutex_init(&h->ep_mu, NULL);
    pthread_mutex_init(&h->warm_mu, NULL);
    if (!mock_all && prog && !check_models(h, prog, err)) {
        fr_http_free(h);
        return NULL;
    }
    return h;
}

void fr_http_free(fr_http *h)
{
    if (!h)
        return;
    while (h->eps) {
        endpoint *e = h->eps;
        h->eps = e->next;
        ep_free(e);
    }
    while (h->hosts) {
        host_lim *l = h->hosts;
        h->hosts = l->next;
        fr_limit_free(l->lim);
        fr_free(l->origin);
        fr_free(l);
    }
    while (h->parts) {
        schema_part *p = h->parts;
        h->parts = p->next;
        fr_free(p->text);
        fr_free(p);
    }
    while (h->warms) {
        warm *w = h->warms;
        h->warms = w->next;
        fr_free(w);
    }
    pthread_mutex_destroy(&h->warm_mu);
    pthread_mutex_destroy(&h->ep_mu);
    fr_free(h);
}

/* ---- the handle pool (the transport's) ------------------------------------ */

static CURL *pool_get(fr_http *h)
{
    return fr_net_handle();
}

static void pool_put(fr_http *h, CURL *c)
{
    fr_net_release(c);
}

/* ---- one exchange -------------------------------------------------------- */

typedef struct xfer {
    char *body;                    /* the answer's bytes (fr_malloc'd) */
    size_t len, cap;               /* used and allocated */
    bool too_big;                  /* the answer passed MAX_BODY */
    bool oom;                      /* no memory for the answer's bytes */
    int retry_after_ms;            /* from retry-after(-ms), capped at max_wait_ms; -1 none */
    int64_t asked_ms;              /* what it asked before the cap, -1 if nothing */
    int max_wait_ms;               /* the cap (fr_http's max_wait_ms) */
    bool have_ms;                  /* retry-after-ms seen: it wins over retry-after */
    int should_retry;              /* x-should-retry: 1 true, 0 false, -1 absent */
    fr_rl rl;                      /* the rate-limit headers, resets as ms from now
                                      (Anthropic) or from the send (OpenAI) until mapped */
    bool rl_any;                   /* any rate-limit header was seen */
    fr_http *h;                    /* for the warm-up */
    warm *warming;                 /* this request warms that prefix: warm it once the
                                      answer begins */
} xfer;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t k = size * n;
    if (x->len + k + 1 > MAX_BODY) {
        x->too_big = true;
        return 0;
    }
    if (x->len + k + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + k + 1)
            cap *= 2;
        char *b = fr_realloc(x->body, cap);
        if (!b) {
            x->oom = true;
            return 0;
        }
        x->body = b, x->cap = cap;
    }
    memcpy(x->body + x->len, p, k);
    x->len += k;
    x->body[x->len] = '\0';
    return k;
}

/* An RFC 3339 time (Anthropic's ...-reset) as ms from now, or -1. */
static int64_t rfc3339_ms(const char *v)
{
    struct tm tm = { 0 };
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end)
        return -1;
    double frac = 0;
    if (*end == '.')
        frac = strtod(end, (char **)&end);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    double ms = ((double)timegm(&tm) + frac - (double)now.tv_sec) * 1000 -
                (double)now.tv_nsec / 1e6;
    return ms < 0 ? 0 : ms > 3600000 ? 3600000 : (int64_t)ms;
}

/* An OpenAI duration ("1s", "6m0s", "250ms", "1h2m3.5s") in ms, or -1. */
static int64_t duration_ms(const char *v)
{
    double ms = 0;
    bool any = false;
    while (*v && *v != '\r' && *v != '\n') {
        char *end;
        double d = strtod(v, &end);
        if (end == v)
            return any ? (int64_t)ms : -1;
        if (strncmp(end, "ms", 2) == 0)
            ms += d, end += 2;
        else if (*end == 'h')
            ms += d * 3600000, end++;
        else if (*end == 'm')
            ms += d * 60000, end++;
        else if (*end == 's')
            ms += d * 1000, end++;
        else
            return -1;
        v = end, any = true;
    }
    return any ? (int64_t)ms : -1;
}

/* The longest a server may ask for, as it asked (the cap comes after). */
#define ASKED_MAX_MS (1000LL * 3600 * 24 * 366 * 100)

/* retry-after: seconds (maybe fractional) or an HTTP date; -1 if neither.
 * What the server asked, however long (an hour, a date in 2099, 1e308). */
static int64_t parse_retry_after(const char *v, bool in_ms)
{
    char *end;
    double d = strtod(v, &end);
    if (end != v && isnan(d))
        return -1;
    if (end != v) {
        double ms = in_ms ? d : d * 1000;
        return ms < 0 ? 0 : ms > (double)ASKED_MAX_MS ? ASKED_MAX_MS : (int64_t)ms;
    }
    if (in_ms)
        return -1;
    time_t t = curl_getdate(v, NULL);
    if (t < 0)
        return -1;
    double ms = difftime(t, time(NULL)) * 1000;
    return ms < 0 ? 0 : ms > (double)ASKED_MAX_MS ? ASKED_MAX_MS : (int64_t)ms;
}

/* A retry-after that was asked: kept whole for messages, capped for use. */
static void ask_wait(xfer *x, int64_t ms)
{
    x->asked_ms = ms;
    x->retry_after_ms = ms < 0 ? -1 : ms > x->max_wait_ms ? x->max_wait_ms : (int)ms;
}

/* Resets not said yet, nothing said. */
static void rl_init(fr_rl *rl)
{
    fr_rl_dim *d[] = { &rl->requests, &rl->tokens, &rl->input, &rl->output };
    for (int i = 0; i < 4; i++)
        *d[i] = (fr_rl_dim){ 0, -1, -1 };
}

/* The rate-limit headers of both providers (Anthropic's reset an RFC 3339
 * time, OpenAI's a duration): which dimension of fr_rl, which part. */
static const struct {
    const char *name;              /* with its colon */
    size_t dim;                    /* offset of its fr_rl_dim in fr_rl */
    int part;                      /* 0 limit, 1 remaining, 2 reset */
} rl_names[] = {
#define RL(n, d, p) { n ":", offsetof(fr_rl, d), p }
    RL("anthropic-ratelimit-requests-limit", requests, 0),
    RL("anthropic-ratelimit-requests-remaining", requests, 1),
    RL("anthropic-ratelimit-requests-reset", requests, 2),
    RL("anthropic-ratelimit-input-tokens-limit", input, 0),
    RL("anthropic-ratelimit-input-tokens-remaining", input, 1),
    RL("anthropic-ratelimit-input-tokens-reset", input, 2),
    RL("anthropic-ratelimit-output-tokens-limit", output, 0),
    RL("anthropic-ratelimit-output-tokens-remaining", output, 1),
    RL("anthropic-ratelimit-output-tokens-reset", output, 2),
    RL("x-ratelimit-limit-requests", requests, 0),
    RL("x-ratelimit-remaining-requests", requests, 1),
    RL("x-ratelimit-reset-requests", requests, 2),
    RL("x-ratelimit-limit-tokens", tokens, 0),
    RL("x-ratelimit-remaining-tokens", tokens, 1),
    RL("x-ratelimit-reset-tokens", tokens, 2),
#undef RL
};

static void rate_header(xfer *x, const char *line)
{
    for (size_t i = 0; i < sizeof rl_names / sizeof *rl_names; i++) {
        size_t n = strlen(rl_names[i].name);
        if (strncasecmp(line, rl_names[i].name, n) != 0)
            continue;
        fr_rl_dim *d = (fr_rl_dim *)((char *)&x->rl + rl_names[i].dim);
        const char *v = line + n + strspn(line + n, " \t");
        x->rl_any = true;
        if (rl_names[i].part == 0)
            d->limit = strtod(v, NULL);
        else if (rl_names[i].part == 1)
            d->remaining = strtod(v, NULL);
        else          /* ms for now: from now (Anthropic) or from the send (OpenAI) */
            d->reset_ns = line[0] == 'a' || line[0] == 'A' ? rfc3339_ms(v) : duration_ms(v);
        return;
    }
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* The resets, read as ms after `from`, made monotonic times. */
/* Resets (still ms from now) further ahead than max_ms are cut to it, as
 * a retry-after is (--max-retry-after). */
static void rl_cap(fr_rl *rl, int max_ms)
{
    fr_rl_dim *d[] = { &rl->requests, &rl->tokens, &rl->input, &rl->output };
    for (int i = 0; i < 4; i++)
        if (d[i]->reset_ns > max_ms)
            d[i]->reset_ns = max_ms;
}

static void rl_resets(fr_rl *rl, int64_t from)
{
    fr_rl_dim *d[] = { &rl->requests, &rl->tokens, &rl->input, &rl->output };
    for (int i = 0; i < 4; i++)
        if (d[i]->reset_ns >= 0)
            d[i]->reset_ns = from + d[i]->reset_ns * 1000000LL;
}

/* The answer to the warming request has begun (or it ended without one):
 * the prefix is warm, the others go. */
static void warm_done(fr_http *h, warm *w)
{
    pthread_mutex_lock(&h->warm_mu);
    w->state = 2;
    fr_cond_broadcast(&h->warm_cv);
    pthread_mutex_unlock(&h->warm_mu);
}

/* Before a request whose prefix is cacheable: the first of its agent and
 * model warms it (returned), the others wait until it is warm (NULL). */
static warm *warm_begin(fr_http *h, const fr_request *req)
{
    pthread_mutex_lock(&h->warm_mu);
    warm *w = h->warms;
    while (w && (w->agent != req->agent || w->model != req->model))
        w = w->next;
    if (!w && (w = fr_calloc(1, sizeof *w))) {
        w->agent = req->agent, w->model = req->model;
        w->next = h->warms;
        h->warms = w;
    }
    warm *mine = NULL;
    int64_t now = fr_now_ms();
    if (w && w->state == 2 && now - w->used_ms > CACHE_TTL_MS)
        w->state = 0;              /* unused for longer than the cache keeps it */
    if (w)
        w->used_ms = now;
    if (w && w->state == 0) {
        w->state = 1;
        mine = w;
    }
    while (w && w->state == 1 && !mine)
        fr_cond_wait(&h->warm_cv, &h->warm_mu);
    pthread_mutex_unlock(&h->warm_mu);
    return mine;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t k = size * n;
    char line[256];
    size_t l = k < sizeof line - 1 ? k : sizeof line - 1;
    memcpy(line, p, l);
    line[l] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        if (x->warming && strncmp(line, "HTTP/1.1 100", 12) != 0)
            warm_done(x->h, x->warming);
        x->warming = NULL;
        x->retry_after_ms = -1;
        x->asked_ms = -1;
        x->have_ms = false;
        x->should_retry = -1;
        rl_init(&x->rl);
        x->rl_any = false;
    } else if (strncasecmp(line, "x-should-retry:", 15) == 0) {
        const char *v = line + 15 + strspn(line + 15, " \t");
        x->should_retry = strncasecmp(v, "true", 4) == 0 ? 1 : strncasecmp(v, "false", 5) == 0
                          ? 0 : -1;
    } else if (strncasecmp(line, "retry-after-ms:", 15) == 0) {
        int64_t ms = parse_retry_after(line + 15 + strspn(line + 15, " \t"), true);
        if (ms >= 0)
            ask_wait(x, ms), x->have_ms = true;
    } else if (strncasecmp(line, "retry-after:", 12) == 0 && !x->have_ms) {
        ask_wait(x, parse_retry_after(line + 12 + strspn(line + 12, " \t"), false));
    } else {
        rate_header(x, line);
    }
    return k;
}

static struct curl_slist *headers_for(const endpoint *e)
{
    char hdr[1024];
    struct curl_slist *l = curl_slist_append(NULL, "Content-Type: application/json");
    l = l ? curl_slist_append(l, "Expect:") : NULL;
    if (l && strcmp(e->provider, "anthropic") == 0) {
        l = curl_slist_append(l, "anthropic-version: 2023-06-01");
        snprintf(hdr, sizeof hdr, "x-api-key: %s", e->key ? e->key : "");
        l = l ? curl_slist_append(l, hdr) : NULL;
    } else if (l && e->key) {
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s", e->key);
        l = curl_slist_append(l, hdr);
    }
    explicit_bzero(hdr, sizeof hdr);
    return l;
}

/* Frees a header list, its key cleared first. */
static void headers_free(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        explicit_bzero(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

static void set_options(CURL *c, const endpoint *e, const char *body, struct curl_slist *hd,
                        xfer *x, int timeout_ms, char *errbuf)
{
    curl_easy_setopt(c, CURLOPT_URL, e->url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(timeout_ms > 0 ? timeout_ms : 0));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(timeout_ms > 0 && timeout_ms < 10000 ? timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "flowc/" FLOWRT_VERSION);
}

/* Network-level failures worth another attempt. */
static bool curl_transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT: case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE: case CURLE_HTTP2: case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:       /* a broken gzip body: the next may be whole */
        return true;
    default:
        return false;
    }
}

/* The provider's own words from an error body: error.message, or error. */
static const char *error_message(json_t *body)
{
    json_t *e = json_object_get(body, "error");
    if (json_is_string(e))
        return json_string_value(e);
    const char *m = json_string_value(json_object_get(e, "message"));
    if (!m)
        m = json_string_value(json_object_get(body, "message"));
    return m;
}

/* What a body that is not the provider's error JSON says, for a message
 * (malloc'd, NULL for none): an HTML page's title (a proxy's "502 Bad
 * Gateway"), else its first bytes on one line; the key scrubbed out before
 * the cut, as every message's is. */
static char *body_hint(const xfer *x, const fr_response *r)
{
    if (!x->body || !x->len)
        return NULL;
    size_t n = x->len < 4096 ? x->len : 4096;
    char *t = fr_malloc(n + 1);
    if (!t)
        return NULL;
    memcpy(t, x->body, n);
    t[n] = '\0';
    char *title = strstr(t, "<title>"), *end = title ? strstr(title, "</title>") : NULL;
    if (title && end) {
        memmove(t, title + 7, (size_t)(end - title - 7));
        t[end - title - 7] = '\0';
    }
    for (char *p = t; *p; p++)
        if ((unsigned char)*p < ' ')
            *p = ' ';
    char *h = fr_http_excerpt(r, t, 120);
    fr_free(t);
    if (h && !*h) {
        fr_free(h);
        h = NULL;
    }
    return h;
}

/* An HTTP status other than 200 as an outcome. */
static void map_status(const endpoint *e, long status, const xfer *x, fr_response *r)
{
    json_t *body = x->body ? fr_json_loadb(x->body, x->len, 0, NULL) : NULL;
    const char *msg = body ? error_message(body) : NULL;
    bool transient = status == 408 || status == 409 || status == 429 || status >= 500;
    if (x->should_retry >= 0)      /* the provider's own word (Anthropic, OpenAI send it) */
        transient = x->should_retry;
    char *hint = msg ? NULL : body_hint(x, r);
    if (status >= 300 && status < 400)     /* never followed: the key would go along */
        fr_http_set_error(r, FR_FATAL, "HTTP %ld from %s: a redirect, not followed (the key "
                          "goes to no other address): set the model's base_url to the address "
                          "the API answers at", status, e->provider);
    else if (msg || hint)
        fr_http_set_error(r, transient ? FR_TRANSIENT : FR_FATAL, "HTTP %ld from %s: %s%s",
                          status, e->provider, msg ? "" : body ? "" : "not the API's error "
                          "JSON: ", msg ? msg : hint);
    else
        fr_http_set_error(r, transient ? FR_TRANSIENT : FR_FATAL, "HTTP %ld from %s: (no "
                          "message)", status, e->provider);
    fr_free(hint);
    r->retry_after_ms = x->retry_after_ms;
    r->retry_after_asked_ms = x->asked_ms;
    json_decref(body);
}

/* A 200: the wire format's parse. */
static void take_answer(const endpoint *e, const xfer *x, const fr_agent *a, bool wrapped,
                        fr_response *r)
{
    json_error_t je;
    json_t *body = x->body ? fr_json_loadb(x->body, x->len, 0, &je) : NULL;
    if (!body) {
        fr_http_set_error(r, FR_TRANSIENT, "unreadable answer from %s: %s", e->provider,
                          !x->body ? "empty body" : strstr(je.text, "JSON_ALLOW_NUL")
                          ? "a string holds a NUL character (\\u0000)" : je.text);
        return;
    }
    /* a 200 whose body is the provider's error object: the server failed */
    json_t *err = json_object_get(body, "error");
    if (err && !json_object_get(body, "content") && !json_object_get(body, "choices")) {
        const char *msg = error_message(body);
        fr_http_set_error(r, FR_TRANSIENT, "HTTP 200 from %s with an error instead of an "
                          "answer: %s", e->provider, msg ? msg : "(no message)");
        json_decref(body);
        return;
    }
    /* JSON of another shape (a proxy's, a misconfigured server's): no answer
     * the model gave, so nothing to tell it; the next attempt may reach the API */
    const char *list = strcmp(e->provider, "anthropic") == 0 ? "content" : "choices";
    if (!json_is_array(json_object_get(body, list))) {
        fr_http_set_error(r, FR_TRANSIENT, "answer from %s is not the API's: its JSON has no "
                          "'%s' list", e->provider, list);
        json_decref(body);
        return;
    }
    if (strcmp(e->provider, "anthropic") == 0 && a->ntools > 0)
        fr_anthropic_parse_agent(body, a, wrapped, r);
    else if (strcmp(e->provider, "anthropic") == 0)
        fr_anthropic_parse(body, wrapped, r);
    else
        fr_openai_parse(body, wrapped, r);
    /* the answer's id ("msg_...", "chatcmpl-..."): gen_ai.response.id in the trace */
    const char *id = json_string_value(json_object_get(body, "id"));
    if (id && !r->response_id)
        r->response_id = fr_strdup(id);
    json_decref(body);
}

/* The exchange itself; the outcome for anything but a 200. */
static void exchange(fr_http *h, const endpoint *e, const char *body, int timeout_ms,
                     xfer *x, long *status, fr_response *r)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hd = headers_for(e);
    CURL *c = hd ? pool_get(h) : NULL;
    if (!c) {
        headers_free(hd);
        fr_http_set_error(r, FR_TRANSIENT, "out of memory");
        return;
    }
    set_options(c, e, body, hd, x, timeout_ms, errbuf);
    CURLcode rc = fr_net_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    char *ip = NULL;                       /* a server was reached */
    bool reached = curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip && *ip;
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    headers_free(hd);
    pool_put(h, c);
    if (rc == CURLE_OK)
        return;
    bool answered = *status > 0;           /* a status line was read */
    *status = 0;
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (x->too_big)
        fr_http_set_error(r, FR_TRANSIENT, "answer from %s larger than %u bytes",
                          e->provider, MAX_BODY);
    else if (x->oom)
        fr_http_set_error(r, FR_TRANSIENT, "out of memory reading the answer from %s",
                          e->provider);
    else if (rc == CURLE_OUT_OF_MEMORY && answered)
        /* past the status line, libcurl 7.x says this for a header over its
         * 100 KB limit (its own allocations hardly ever fail) */
        fr_http_set_error(r, FR_TRANSIENT, "answer from %s refused: a header larger than "
                          "libcurl accepts (100 KB)", e->provider);
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL && reached)
        /* an answer that is not HTTP at all ("HTTP/0.9") from a server we reached */
        fr_http_set_error(r, FR_TRANSIENT, "answer from %s is not HTTP: %s", e->provider,
                          why);
    else if (rc == CURLE_WRITE_ERROR || rc == CURLE_OUT_OF_MEMORY)
        fr_http_set_error(r, FR_TRANSIENT, "out of memory reading the answer from %s",
                          e->provider);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        fr_http_set_error(r, FR_TRANSIENT, "no answer from %s within %d ms", e->provider,
                          timeout_ms);
    else
        fr_http_set_error(r, curl_transient(rc) ? FR_TRANSIENT : FR_FATAL,
                          "request to %s failed: %s", e->provider, why);
}

/* v as compact JSON text, or NULL.  jansson's dump drops bytes of an object
 * key instead of failing when an allocation fails (dump.c ignores
 * dump_string's result for keys), so text made while the test hook failed
 * an allocation is thrown away. */
static char *dump(json_t *v)
{
    long before = fr_alloc_countdown();
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    if (t && before > 0 && fr_alloc_countdown() == 0) {
        fr_free(t);
        t = NULL;
    }
    return t;
}

fr_output_mode fr_http_req_mode(const fr_request *req)
{
    return req->mode != FR_OUT_DEFAULT ? req->mode : fr_http_mode(req->model);
}

fr_output_mode fr_http_mode(const fr_model *m)
{
    if (m->output != FR_OUT_DEFAULT)
        return m->output;
    return strcmp(m->provider, "openai") == 0 ? FR_OUT_JSON_SCHEMA : FR_OUT_OUTPUT_CONFIG;
}

/* The agent's schema part as text: {"output_config"|"tools"|"response_format": ...}. */
static char *schema_part_text(const fr_agent *a, bool anthropic, fr_output_mode mode,
                              bool *wrapped)
{
    json_t *j = anthropic ? fr_anthropic_tools(a, mode, wrapped)
                          : fr_openai_format(a, mode, wrapped);
    char *t = dump(j);
    json_decref(j);
    return t;
}

/* The agent's schema part of the body as text, without its braces: made
 * once per agent and mode (parsing and dumping the schema on every call
 * was a sixth of a call's CPU).  It is made twice and kept only when both
 * agree: jansson drops a character instead of failing when an allocation
 * fails in some places (object keys in dump.c, the lexer), and a part kept
 * corrupt would spoil every later request. */
static const schema_part *schema_part_of(fr_http *h, const fr_agent *a, bool anthropic,
                                         fr_output_mode mode)
{
    pthread_mutex_lock(&h->ep_mu);
    schema_part *p = h->parts;
    while (p && (p->agent != a || p->mode != mode))
        p = p->next;
    if (!p && (p = fr_calloc(1, sizeof *p))) {
        p->agent = a, p->mode = mode;
        char *t1 = schema_part_text(a, anthropic, mode, &p->wrapped);
        char *t2 = t1 ? schema_part_text(a, anthropic, mode, &p->wrapped) : NULL;
        p->text = t2 && strcmp(t1, t2) == 0 ? fr_strdup(t1 + 1) : NULL;  /* past '{' */
        fr_free(t1);
        fr_free(t2);
        if (p->text) {
            p->text[strlen(p->text) - 1] = '\0';         /* and without '}' */
            p->next = h->parts;
            h->parts = p;
        } else {                   /* a bad schema or no memory: not kept */
            fr_free(p);
            p = NULL;
        }
    }
    pthread_mutex_unlock(&h->ep_mu);
    return p;
}

/* The head's text with the schema part spliced in before its last brace. */
static char *request_body(fr_http *h, const endpoint *e, const fr_request *req, bool *wrapped)
{
    bool anthropic = strcmp(e->provider, "anthropic") == 0;
    fr_output_mode mode = fr_http_req_mode(req);
    const schema_part *part = schema_part_of(h, req->agent, anthropic, mode);
    json_t *b = !part ? NULL : anthropic ? fr_anthropic_head(req) : fr_openai_head(req);
    char *head = dump(b);
    json_decref(b);
    if (!head)
        return NULL;
    size_t hl = strlen(head), pl = strlen(part->text);
    char *s = fr_malloc(hl + pl + 2);
    if (s) {
        memcpy(s, head, hl - 1);
        if (pl) {
            s[hl - 1] = ',';
            memcpy(s + hl, part->text, pl);
            strcpy(s + hl + pl, "}");
        } else {
            strcpy(s + hl - 1, "}");
        }
    }
    fr_free(head);
    *wrapped = part->wrapped;
    return s;
}

/* One attempt at endpoint e in req's mode. */
static void call_once(fr_http *h, endpoint *e, const fr_request *req, fr_response *resp)
{
    resp->retry_after_asked_ms = -1;
    resp->secret = e->key;
    bool wrapped = false;
    char *body = request_body(h, e, req, &wrapped);
    if (!body) {
        fr_output_mode mode = fr_http_req_mode(req);
        const char *text = mode == FR_OUT_JSON_SCHEMA ? req->agent->schema_openai
                           : mode == FR_OUT_OUTPUT_CONFIG && req->agent->schema_output_config
                           ? req->agent->schema_output_config : req->agent->schema_anthropic;
        json_t *schema = text ? fr_json_loadb(text, strlen(text), 0, NULL) : NULL;
        if (schema)
            fr_http_set_error(resp, FR_TRANSIENT, "out of memory building the request");
        else
            fr_http_set_error(resp, FR_FATAL, "agent '%s': its JSON Schema for %s is not "
                              "valid JSON", req->agent->name, e->provider);
        json_decref(schema);
        finish_texts(resp);
        return;
    }
    xfer x = { .retry_after_ms = -1, .asked_ms = -1, .max_wait_ms = h->max_wait_ms,
               .should_retry = -1, .h = h };
    rl_init(&x.rl);
    fr_cut cut;
    fr_http_cache_cut(req, strlen(req->system), &cut);
    if (cut.fixed_tokens >= (req->model->min_cache_tokens > 0 ? req->model->min_cache_tokens
                                                              : WARM_MIN_TOKENS))
        x.warming = warm_begin(h, req);
    long status = 0;
    /* about four bytes a token, as the providers estimate a request's
     * tokens for their limits when it starts */
    int64_t sent = fr_limit_acquire(e->lim, (int64_t)(strlen(body) / 4), req->max_tokens);
    if (sent < 0) {                /* stopped while it waited for its slot */
        if (x.warming)
            warm_done(h, x.warming);
        fr_free(body);
        resp->unsent = true;
        fr_http_set_error(resp, FR_FATAL, "stopped before the request was sent");
        finish_texts(resp);
        return;
    }
    exchange(h, e, body, req->timeout_ms, &x, &status, resp);
    if (x.warming)                 /* no answer began: the others go anyway */
        warm_done(h, x.warming);
    fr_free(body);
    resp->http_status = (int)status;
    if (x.rl_any) {
        rl_cap(&x.rl, h->max_wait_ms);         /* a reset far ahead waits the cap at most */
        rl_resets(&x.rl, strcmp(e->provider, "anthropic") == 0 ? mono_ns() : sent);
        fr_limit_headers(e->lim, sent, &x.rl);
    }
    /* a 429's retry-after is the request's own wait (fr_call's backoff): the
     * others go on at the learned rate; overload (503, 529) pauses everyone */
    if (x.retry_after_ms > 0 && status != 429)
        fr_limit_pause(e->lim, x.retry_after_ms);
    fr_limit_done(e->lim, sent, (int)status);
    if (status == 200)
        take_answer(e, &x, req->agent, wrapped, resp);
    else if (status > 0)
        map_status(e, status, &x, resp);
    fr_free(x.body);
    finish_texts(resp);
}

/* The mode to fall back to when an OpenAI-compatible server refuses mode
 * with a 400 about response_format (strict json_schema, then json_object,
 * are not every server's), or FR_OUT_DEFAULT for none. */
static fr_output_mode fallback(const endpoint *e, fr_output_mode mode, const fr_response *r)
{
    if (strcmp(e->provider, "openai") != 0 || r->http_status != 400 || !r->error ||
        !strstr(r->error, "response_format"))
        return FR_OUT_DEFAULT;
    return mode == FR_OUT_JSON_SCHEMA ? FR_OUT_JSON_OBJECT
           : mode == FR_OUT_JSON_OBJECT ? FR_OUT_PROMPT : FR_OUT_DEFAULT;
}

/* The endpoint's mode falls back from `from` to `to` (once, however many
 * calls saw the 400 at the same time), saying so once on stderr with the
 * server's words (why: already scrubbed of the key and cut). */
static void fall_back(fr_http *h, endpoint *e, fr_output_mode from, fr_output_mode to,
                      const char *why)
{
    static const char *const names[] = { "default", "output_config", "tool", "json_schema",
                                         "json_object", "prompt" };
    pthread_mutex_lock(&h->ep_mu);
    fr_output_mode cur = e->mode != FR_OUT_DEFAULT ? e->mode : fr_http_mode(e->model);
    bool first = cur == from;
    if (first)
        e->mode = to;
    pthread_mutex_unlock(&h->ep_mu);
    if (first)
        fprintf(stderr, "%swarning: model '%s' (%s): the server refused response_format "
                "%s (%s); answers are asked for as %s from now on (declare "
                "'structured_output: %s' on the model to start there)\n",
                isatty(2) ? "\r\033[K" : "", e->model->name, e->model->api_name,
                names[from], why, names[to], names[to]);
}

void fr_http_call(fr_http *h, const fr_request *req, fr_response *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    resp->retry_after_asked_ms = -1;
    fr_buf err = { 0 };
    endpoint *e = h && fr_curl_load(&err) ? ep_find(h, req->model, &err) : NULL;
    if (!e) {
        fr_http_set_error(resp, FR_FATAL, "%s", err.s ? err.s : "HTTP providers not set up");
        fr_buf_free(&err);
        fr_http_cut(resp->error, FR_ERROR_MAX);
        return;
    }
    fr_request r = *req;
    for (;;) {                     /* at most three times: each fallback is a step down */
        pthread_mutex_lock(&h->ep_mu);
        r.mode = e->mode;
        pthread_mutex_unlock(&h->ep_mu);
        fr_output_mode mode = fr_http_req_mode(&r);
        call_once(h, e, &r, resp);
        fr_output_mode to = fallback(e, mode, resp);
        if (to == FR_OUT_DEFAULT)
            return;
        fall_back(h, e, mode, to, resp->error);
        fr_response_free(resp);
    }
}

/* ---- helpers for the wire formats ---------------------------------------- */

json_t *fr_http_schema(const char *text, bool *wrapped)
{
    *wrapped = false;
    json_t *s = text ? fr_json_loadb(text, strlen(text), 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(s, "type"));
    if (!s || (type && strcmp(type, "object") == 0))
        return s;
    json_t *w = json_pack("{s:s, s:{s:O}, s:[s], s:b}", "type", "object", "properties",
                          "answer", s, "required", "answer", "additionalProperties", 0);
    const char *defs[] = { "$defs", "definitions" };
    for (int i = 0; w && i < 2; i++) {
        json_t *d = json_object_get(s, defs[i]);
        if (d) {
            json_object_set(w, defs[i], d);
            json_object_del(s, defs[i]);
        }
    }
    json_decref(s);
    *wrapped = w != NULL;
    return w;
}

const char *fr_http_schema_name(const fr_agent *a)
{
    const fr_type *t = a->output;
    if (t && t->kind == FR_RECORD && t->schema && t->schema->name &&
        strlen(t->schema->name) <= 64)
        return t->schema->name;      /* no tool has it: schemas, operations and agents
                                      * share one namespace */
    /* an answer that is no record, or whose schema's name is longer than
     * the names the providers take (a tool's and OpenAI's response_format
     * name: letters, digits, '_' and '-', at most 64), is "answer", unless
     * one of the agent's tools has that name (in tool mode both go in
     * tools[], and the providers refuse two tools of one name) */
    static const char *const names[] = { "answer", "final_answer", "answer_2", "answer_3",
                                         "answer_4", "answer_5", "answer_6", "answer_7" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!fr_tool_find(a, names[i]))
            return names[i];
    return names[0];
}

static char *feedback_text(const fr_request *req, const char *how)
{
    fr_buf b = { 0 };
    fr_buf_printf(&b, "Your previous answer was invalid: %s. Answer again with %s only.",
                  req->feedback ? req->feedback : "it could not be used", how);
    return fr_http_buf_take(&b);
}

static bool add_turn(json_t *msgs, const char *role, const char *text)
{
    return json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", role, "content", text))
           == 0;
}

/* The first user turn, split at cut for a cache breakpoint (Anthropic). */
static bool add_prompt(json_t *msgs, const char *text, size_t cut)
{
    size_t n = strlen(text);
    if (cut == 0 || cut > n)
        return add_turn(msgs, "user", text);
    json_t *c = json_array();
    json_array_append_new(c, json_pack("{s:s, s:s%, s:{s:s}}", "type", "text", "text", text,
                                       cut, "cache_control", "type", "ephemeral"));
    if (cut < n)
        json_array_append_new(c, json_pack("{s:s, s:s%}", "type", "text", "text", text + cut,
                                           n - cut));
    return json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", "user", "content", c))
           == 0;
}

/* Whether s holds anything but white space. */
static bool has_text(const char *s)
{
    for (; s && *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return true;
    return false;
}

char *fr_http_call_args(json_t *call)
{
    const char *a = json_string_value(json_object_get(call, "arguments"));
    if (a && *a)
        return fr_strdup(a);
    json_t *in = json_object_get(call, "input");
    if (!json_is_object(in))
        return fr_strdup("{}");
    return json_dumps(in, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

bool fr_http_turns(json_t *msgs, const fr_request *req, const char *how, size_t cut,
                   fr_history_fn history)
{
    size_t want = json_array_size(msgs) + 1;
    char *fb = req->feedback ? feedback_text(req, how) : NULL;
    /* an empty or white-space answer is no turn: Anthropic rejects one */
    bool prev = has_text(req->prev_answer) && fb;
    bool turns = history && json_array_size(req->history) > 0;
    if (turns) {                          /* the prompt, the loop's turns, then the problem */
        add_prompt(msgs, req->prompt, cut);
        size_t before = json_array_size(msgs);
        bool ok = history(msgs, req);
        want += json_array_size(msgs) - before;
        if (ok && fb && !prev) {
            add_turn(msgs, "user", fb);
            want++;
        }
        if (!ok)
            want = 0;
    } else if (fb && !prev) {             /* no answer to show: the problem goes with the prompt */
        fr_buf p = { 0 };
        fr_buf_printf(&p, "%s\n\n%s", req->prompt, fb);
        add_prompt(msgs, fr_buf_failed(&p) || !p.s ? req->prompt : p.s, cut);
        fr_buf_free(&p);
    } else {
        add_prompt(msgs, req->prompt, cut);
    }
    if (prev) {
        add_turn(msgs, "assistant", req->prev_answer);
        add_turn(msgs, "user", fb);
        want += 2;
    }
    fr_free(fb);
    return json_array_size(msgs) == want;
}

void fr_http_schema_prompt(fr_buf *b, const char *schema)
{
    if (b->len)
        fr_buf_puts(b, "\n\n");
    fr_buf_puts(b, "Answer with one JSON object only, no prose around it, that matches this "
                   "JSON Schema:\n");
    fr_buf_puts(b, schema ? schema : "{}");
}

/* Bytes to tokens, rounded up: three bytes a token for Claude (its tokenizer
 * from Claude 4.7 on counts about 30% more tokens than the older one's four
 * bytes), four for OpenAI's; the compiler's cache-prefix note counts the same
 * (caps.c). */
static int64_t est_tokens(const fr_model *m, size_t bytes)
{
    size_t per = strcmp(m->provider, "anthropic") == 0 ? 3 : 4;
    return (int64_t)((bytes + per - 1) / per);
}

void fr_http_cache_cut(const fr_request *req, size_t sys_len, fr_cut *cut)
{
    const fr_agent *a = req->agent;
    const fr_model *m = req->model;
    memset(cut, 0, sizeof *cut);
    if (!req->cache)
        return;
    size_t plen = strlen(req->prompt);
    size_t sys_fixed = a->system_head >= 0 && (size_t)a->system_head < sys_len
                       ? (size_t)a->system_head : sys_len;
    size_t prompt_fixed = a->system_head >= 0 && (size_t)a->system_head < sys_len ? 0
                          : a->prompt_head >= 0 && (size_t)a->prompt_head < plen
                          ? (size_t)a->prompt_head : plen;
    const char *schema = a->schema_openai ? a->schema_openai : "";
    size_t fixed = strlen(schema) + sys_fixed + prompt_fixed;
    for (int i = 0; i < a->ntools; i++)   /* tools come first in the cached prefix */
        fixed += strlen(a->tools[i].schema ? a->tools[i].schema : "") + strlen(a->tools[i].name)
                 + strlen(a->tools[i].description ? a->tools[i].description : "");
    if (fixed == 0 || (m->min_cache_tokens > 0 && est_tokens(m, fixed) < m->min_cache_tokens))
        return;
    cut->fixed_tokens = est_tokens(m, fixed);
    if (prompt_fixed > 0)
        cut->prompt = prompt_fixed;      /* the breakpoint after the prompt's fixed head */
    else if (sys_fixed > 0)
        cut->system = sys_fixed;         /* ... after the system's */
}

json_t *fr_http_unwrap(json_t *answer, bool wrapped)
{
    json_t *inner = wrapped && json_is_object(answer) ? json_object_get(answer, "answer")
                                                      : NULL;
    json_t *v = json_incref(inner ? inner : answer);
    json_decref(answer);
    return v;
}

/* ---- http operations: one exchange on the shared transport ---------------- */

/* The origin of url ("https://host:port"), as a length into url. */
static size_t origin_len(const char *url)
{
    const char *h = strstr(url, "://");
    if (!h)
        return 0;
    h += 3;
    return (size_t)(h - url) + strcspn(h, "/?#");
}

fr_limiter *fr_http_host_limiter(fr_http *h, const char *url, double rps)
{
    size_t n = origin_len(url);
    pthread_mutex_lock(&h->ep_mu);
    host_lim *l = h->hosts;
    while (l && (strlen(l->origin) != n || strncasecmp(l->origin, url, n) != 0))
        l = l->next;
    if (!l && (l = fr_calloc(1, sizeof *l))) {
        l->origin = fr_malloc(n + 1);
        l->lim = fr_limit_new(0, 0);
        if (!l->origin || !l->lim) {
            fr_free(l->origin);
            fr_limit_free(l->lim);
            fr_free(l);
            l = NULL;
        } else {
            memcpy(l->origin, url, n);
            l->origin[n] = '\0';
            fr_limit_name(l->lim, l->origin);
            l->next = h->hosts;
            h->hosts = l;
        }
    }
    pthread_mutex_unlock(&h->ep_mu);
    if (l && rps > 0)
        fr_limit_cap(l->lim, rps);
    return l ? l->lim : NULL;
}

/* What an operation's exchange gathers besides the body. */
typedef struct opx {
    xfer x;                        /* the body, retry-after (shared with the providers) */
    char *link_next;               /* Link: rel="next" */
} opx;

/* The rel="next" target of one Link header value (RFC 8288), or NULL:
 * link-values are `<URI> *( ";" param )` separated by commas; rel holds
 * space-separated relation types, compared case-insensitively. */
static char *link_next(const char *v, size_t n)
{
    const char *p = v, *end = v + n;
    while (p < end) {
        const char *lt = memchr(p, '<', (size_t)(end - p));
        const char *gt = lt ? memchr(lt, '>', (size_t)(end - lt)) : NULL;
        if (!gt)
            return NULL;
        const char *q = gt + 1, *stop = q;
        while (stop < end && *stop != ',' && *stop != '<')
            stop++;
        for (const char *r = q; r + 3 < stop; r++) {
            if (strncasecmp(r, "rel", 3) != 0)
                continue;
            const char *e = r + 3;
            while (e < stop && (*e == ' ' || *e == '\t'))
                e++;
            if (e >= stop || *e != '=')
                continue;
            e++;
            while (e < stop && (*e == ' ' || *e == '"'))
                e++;
            for (;;) {                   /* each relation type in the value */
                size_t k = 0;
                while (e + k < stop && e[k] != ' ' && e[k] != '"' && e[k] != ';' && e[k] != ',')
                    k++;
                if (k == 4 && strncasecmp(e, "next", 4) == 0) {
                    char *u = fr_malloc((size_t)(gt - lt));
                    if (u) {
                        memcpy(u, lt + 1, (size_t)(gt - lt - 1));
                        u[gt - lt - 1] = '\0';
                    }
                    return u;
                }
                if (e + k >= stop || e[k] != ' ')
                    break;
                e += k + 1;
            }
        }
        p = stop;
        if (p < end && *p == ',')
            p++;
    }
    return NULL;
}

static size_t on_op_header(char *p, size_t size, size_t n, void *ud)
{
    opx *o = ud;
    size_t k = size * n;
    if (k > 5 && strncmp(p, "HTTP/", 5) == 0) {
        fr_free(o->link_next);
        o->link_next = NULL;
    } else if (k > 5 && strncasecmp(p, "link:", 5) == 0 && !o->link_next) {
        size_t l = k;
        while (l > 5 && (p[l - 1] == '\r' || p[l - 1] == '\n'))
            l--;
        o->link_next = link_next(p + 5, l - 5);
    }
    return on_header(p, size, n, &o->x);
}

void fr_xres_free(fr_xres *res)
{
    fr_free(res->body);
    fr_free(res->link_next);
    fr_free(res->error);
    memset(res, 0, sizeof *res);
}

static void xres_error(fr_xres *res, bool transient, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void xres_error(fr_xres *res, bool transient, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fr_repair_utf8(msg);
    res->status = 0;
    res->transient = transient;
    fr_free(res->error);
    res->error = fr_strdup(msg);
}

void fr_http_exchange(fr_http *h, const fr_xreq *rq, fr_xres *res)
{
    memset(res, 0, sizeof *res);
    res->retry_after_ms = -1;
    res->retry_after_asked_ms = -1;
    fr_buf lib = { 0 };
    if (!fr_curl_load(&lib)) {
        xres_error(res, false, "%s", lib.s ? lib.s : "cannot load libcurl");
        fr_buf_free(&lib);
        return;
    }
    struct curl_slist *hd = curl_slist_append(NULL, "Expect:");
    for (int i = 0; hd && i < rq->nheaders; i++) {
        struct curl_slist *n = curl_slist_append(hd, rq->headers[i]);
        if (!n) {
            curl_slist_free_all(hd);
            hd = NULL;
        }
        hd = n;
    }
    CURL *c = hd ? pool_get(h) : NULL;
    if (!c) {
        curl_slist_free_all(hd);
        xres_error(res, true, "out of memory");
        return;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    opx o = { .x = { .retry_after_ms = -1, .asked_ms = -1, .max_wait_ms = h->max_wait_ms,
                     .should_retry = -1 } };
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
    if (rq->body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(rq->body));
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
        if (strcmp(rq->method, "GET") != 0)
            curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &o.x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_op_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &o);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(rq->timeout_ms > 0 ? rq->timeout_ms : 0));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(rq->timeout_ms > 0 && rq->timeout_ms < 10000 ? rq->timeout_ms : 10000));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "flowc/" FLOWRT_VERSION);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    CURLcode rc = fr_net_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
    /* the handle goes back to the pool as the providers' handles do: reset
     * what this exchange set that a provider's would not */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, -1L);
    curl_easy_setopt(c, CURLOPT_HTTPGET, 0L);
    curl_slist_free_all(hd);
    pool_put(h, c);
    res->body = o.x.body;
    res->len = o.x.len;
    res->retry_after_ms = o.x.retry_after_ms;
    res->retry_after_asked_ms = o.x.asked_ms;
    res->link_next = o.link_next;
    if (rc == CURLE_OK)
        return;
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (o.x.too_big)
        xres_error(res, true, "answer larger than %u bytes", MAX_BODY);
    else if (rc == CURLE_OUT_OF_MEMORY && !o.x.oom && res->status > 0)
        xres_error(res, true, "answer refused: a header larger than libcurl accepts (100 KB)");
    else if (rc == CURLE_WRITE_ERROR || rc == CURLE_OUT_OF_MEMORY)
        xres_error(res, true, "out of memory reading the answer");
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        xres_error(res, true, "no answer within %d ms", rq->timeout_ms);
    else
        xres_error(res, curl_transient(rc), "request failed: %s", why);
}
