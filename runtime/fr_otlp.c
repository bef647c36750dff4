/*
 * fr_otlp.c: the trace's spans sent to an OpenTelemetry collector over
 * OTLP/HTTP with JSON encoding, when the environment names one.
 *
 * fr_trace.c hands over each span as it makes its trace line (with or
 * without --trace FILE): the line's object is turned here, on the caller's
 * thread, into an OTLP Span (ids in hex, times in decimal nanoseconds as
 * strings, typed attributes, kind and status as integers) and put on a
 * bounded queue.  That is all the caller pays: a full queue drops the span
 * and counts it.  One background thread sends the queue in batches (every
 * 512 spans or every second) as ExportTraceServiceRequest messages through
 * its own libcurl easy handle; a batch the collector cannot take now (429,
 * 502, 503, 504, no connection, a timeout) is tried again twice with
 * backoff, then dropped and counted, as is one it rejects.  At the run's end
 * the queue is sent within a short deadline (2 s, less with a smaller
 * timeout; one try per batch when the collector already failed), the rest is
 * dropped, and one line on stderr says how many spans were dropped and why.
 * The run never waits for the collector otherwise and never fails for it.
 *
 * The configuration is OpenTelemetry's SDK environment, read once:
 *   OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none   no export
 *   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   the URL, used as is
 *   OTEL_EXPORTER_OTLP_ENDPOINT          a base URL: /v1/traces appended
 *   OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TRACES_HEADERS
 *                                        key=value,... (values percent-decoded)
 *   OTEL_EXPORTER_OTLP_TIMEOUT, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT (ms)
 *   OTEL_EXPORTER_OTLP_CERTIFICATE, OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE
 *   OTEL_EXPORTER_OTLP_PROTOCOL: only http/json (anything else is said once)
 *   OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES   the resource
 *   OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
 *   OTEL_BSP_SCHEDULE_DELAY              the batching
 * A header's value (a collector's token, often) is never printed.
 */
#define FR_WITH_CURL
#include <curl/curl.h>

#include "fr_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define EXIT_BUDGET_MS 2000        /* the flush at the run's end, at most */
#define TRIES 3                    /* a batch's tries while the run goes on */
#define BODY_MAX 65536             /* of a collector's answer, kept for its message */

/* The environment's configuration, read once. */
static struct {
    pthread_once_t once;
    bool on;                       /* an endpoint is set and export is not disabled */
    char *url;                     /* the traces URL (malloc'd) */
    char *shown;                   /* the URL as messages show it: no user, query */
    char **headers;                /* "Name: value" lines (malloc'd; cleared when freed) */
    int nheaders;
    long timeout_ms;               /* per request */
    char *cafile;                  /* OTEL_EXPORTER_OTLP_CERTIFICATE, or NULL */
    char **res_keys, **res_vals;   /* OTEL_RESOURCE_ATTRIBUTES */
    int nres;
    char *service;                 /* OTEL_SERVICE_NAME, or NULL */
    int queue_max;                 /* spans queued at most */
    int batch_max;                 /* spans a request */
    long delay_ms;                 /* a batch leaves at least this often */
} C = { .once = PTHREAD_ONCE_INIT };

struct fr_otlp {
    pthread_t thread;              /* the sender */
    bool started;                  /* it runs */
    pthread_mutex_t mu;            /* guards what follows */
    pthread_cond_t wake;           /* a batch is full, or stop */
    json_t **q;                    /* the queue, a ring of [C.queue_max] spans */
    int head, n;                   /* its first span and how many */
    bool stop;                     /* the run ended: flush and go */
    int64_t deadline_ms;           /* the flush's end (monotonic), once stop */
    int64_t dropped;               /* spans lost */
    int64_t sent;                  /* spans the collector took */
    char why[256];                 /* the last reason spans were lost */
    bool failing;                  /* the last export failed */
    json_t *resource;              /* the Resource, built at start */
    char trace_id[33];             /* the run's trace */
};

/* ---- the environment ------------------------------------------------------------ */

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The signal's own variable, else the general one. */
static const char *env2(const char *traces, const char *general)
{
    const char *v = env(traces);
    return v ? v : env(general);
}

static long env_long(const char *name, long dflt, long lo, long hi)
{
    const char *v = env(name);
    if (!v)
        return dflt;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        fprintf(stderr, "warning: otlp: %s=%s is not a number from %ld to %ld: %ld is used\n",
                name, v, lo, hi, dflt);
        return dflt;
    }
    return n;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* s[0..n) trimmed of spaces and tabs, percent-decoded (malloc'd). */
static char *decode(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    char *out = fr_malloc(n + 1), *o = out;
    for (size_t i = 0; out && i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0
            && (lo = hexval(s[i + 2])) >= 0) {
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    if (out)
        *o = '\0';
    return out;
}

static void zfree_str(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        fr_free(s);
    }
}

/* An HTTP header name: RFC 9110's token. */
static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

/* Splits var's list "k=v,k2=v2" (W3C Baggage's form) and hands each pair to
 * add; an entry that is not key=value is said (by its number, never its
 * text: it may hold a token) and skipped. */
static void each_pair(const char *var, void (*add)(const char *var, int at, char *k, char *v))
{
    const char *s = env(var);
    for (int at = 1; s && *s; at++) {
        size_t len = strcspn(s, ",");
        const char *eq = memchr(s, '=', len);
        char *k = eq ? decode(s, (size_t)(eq - s)) : NULL;
        char *v = eq ? decode(eq + 1, len - (size_t)(eq - s) - 1) : NULL;
        if (k && v && *k) {
            add(var, at, k, v);                 /* takes k and v */
        } else {
            if (strspn(s, " \t") < len)
                fprintf(stderr, "warning: otlp: %s: entry %d is not key=value: ignored\n", var, at);
            zfree_str(k);
            zfree_str(v);
        }
        s += len + (s[len] == ',');
    }
}

static void add_header(const char *var, int at, char *k, char *v)
{
    size_t n = strlen(k) + strlen(v) + 3;
    char *line = fr_malloc(n);
    char **grown = fr_realloc(C.headers, (size_t)(C.nheaders + 1) * sizeof *grown);
    if (!is_token(k) || strpbrk(v, "\r\n")) {
        fprintf(stderr, "warning: otlp: %s: entry %d is not a valid header: ignored\n", var, at);
    } else if (line && grown) {
        C.headers = grown;
        snprintf(line, n, "%s: %s", k, v);
        /* the signal's own list comes second and replaces a name given before */
        for (int i = 0; i < C.nheaders; i++)
            if (strncasecmp(C.headers[i], k, strlen(k)) == 0 && C.headers[i][strlen(k)] == ':') {
                zfree_str(C.headers[i]);
                C.headers[i] = line;
                line = NULL;
                break;
            }
        if (line)
            C.headers[C.nheaders++] = line;
        line = NULL;
    } else if (grown) {
        C.headers = grown;
    }
    zfree_str(line);
    zfree_str(k);
    zfree_str(v);
}

static void add_resource(const char *var, int at, char *k, char *v)
{
    (void)var, (void)at;
    char **ks = fr_realloc(C.res_keys, (size_t)(C.nres + 1) * sizeof *ks);
    if (ks)
        C.res_keys = ks;
    char **vs = ks ? fr_realloc(C.res_vals, (size_t)(C.nres + 1) * sizeof *vs) : NULL;
    if (vs)
        C.res_vals = vs;
    if (!ks || !vs) {
        fr_free(k);
        fr_free(v);
        return;
    }
    for (int i = 0; i < C.nres; i++)
        if (strcmp(C.res_keys[i], k) == 0) {     /* the last one given wins */
            fr_free(C.res_vals[i]);
            C.res_vals[i] = v;
            fr_free(k);
            return;
        }
    C.res_keys[C.nres] = k;
    C.res_vals[C.nres++] = v;
}

/* The URL as a message shows it: scheme, host, port and path; a user and
 * password, the query and the fragment left out (they may hold a token). */
static char *shown_url(const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t auth = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth);
    if (at)
        host = at + 1;
    size_t rest = strcspn(host, "?#");
    fr_buf b = { 0 };
    fr_buf_put(&b, url, (size_t)(p ? p + 3 - url : 0));
    fr_buf_put(&b, host, rest);
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

static void configure(void)
{
    const char *dis = env("OTEL_SDK_DISABLED");
    const char *exp = env("OTEL_TRACES_EXPORTER");
    if ((dis && strcasecmp(dis, "true") == 0) || (exp && strcasecmp(exp, "none") == 0))
        return;
    const char *own = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    const char *base = env("OTEL_EXPORTER_OTLP_ENDPOINT");
    if (!own && !base)
        return;
    const char *var = own ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" : "OTEL_EXPORTER_OTLP_ENDPOINT";
    const char *u = own ? own : base;
    if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0) {
        fprintf(stderr, "warning: otlp: %s must be an http:// or https:// URL: spans are not"
                " exported\n", var);
        return;
    }
    fr_buf b = { 0 };
    fr_buf_puts(&b, u);
    if (!own)                       /* the base URL's path gets the signal's */
        fr_buf_puts(&b, b.len && b.s[b.len - 1] == '/' ? "v1/traces" : "/v1/traces");
    if (fr_buf_failed(&b) || !(C.shown = shown_url(b.s))) {
        fr_buf_free(&b);
        return;
    }
    C.url = b.s;
    const char *proto = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
    if (proto && strcmp(proto, "http/json") != 0)
        fprintf(stderr, "warning: otlp: only the http/json protocol is supported: spans go to %s"
                " as JSON, not %s\n", C.shown, proto);
    each_pair("OTEL_EXPORTER_OTLP_HEADERS", add_header);
    each_pair("OTEL_EXPORTER_OTLP_TRACES_HEADERS", add_header);
    each_pair("OTEL_RESOURCE_ATTRIBUTES", add_resource);
    const char *svc = env("OTEL_SERVICE_NAME");
    C.service = svc ? fr_strdup(svc) : NULL;
    const char *ca = env2("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE");
    C.cafile = ca ? fr_strdup(ca) : NULL;
    C.timeout_ms = env_long(env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
                            ? "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" : "OTEL_EXPORTER_OTLP_TIMEOUT",
                            10000, 1, 3600000);
    C.queue_max = (int)env_long("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1000000);
    C.batch_max = (int)env_long("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, 1, 1000000);
    if (C.batch_max > C.queue_max)
        C.batch_max = C.queue_max;
    C.delay_ms = env_long("OTEL_BSP_SCHEDULE_DELAY", 1000, 1, 3600000);
    C.on = true;
}

bool fr_otlp_wanted(void)
{
    pthread_once(&C.once, configure);
    return C.on;
}

/* ---- spans ------------------------------------------------------------------------ */

/* Microseconds since the epoch as OTLP's fixed64 nanoseconds: a decimal string. */
static json_t *nanos(int64_t us)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)(us < 0 ? 0 : us) * 1000);
    return json_string(buf);
}

/* A copy of scalar v as an AnyValue, or NULL for what has none (null, an object). */
static json_t *any_value(json_t *v)
{
    char buf[32];
    json_t *a = NULL;
    switch (json_typeof(v)) {
    case JSON_STRING:
        return json_pack("{s:s%}", "stringValue", json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return json_pack("{s:s}", "intValue", buf);
    case JSON_REAL:
        return isfinite(json_real_value(v)) ? json_pack("{s:f}", "doubleValue", json_real_value(v))
                                            : NULL;
    case JSON_TRUE:
    case JSON_FALSE:
        return json_pack("{s:b}", "boolValue", json_is_true(v));
    case JSON_ARRAY:
        a = json_array();
        for (size_t i = 0; a && i < json_array_size(v); i++) {
            json_t *e = json_is_array(json_array_get(v, i)) ? NULL : any_value(json_array_get(v, i));
            if (e)
                json_array_append_new(a, e);
        }
        return a ? json_pack("{s:{s:o}}", "arrayValue", "values", a) : NULL;
    default:
        return NULL;
    }
}

static void add_attr(json_t *attrs, const char *key, json_t *value)
{
    json_t *kv = value ? json_pack("{s:s, s:o}", "key", key, "value", value) : NULL;
    if (kv)
        json_array_append_new(attrs, kv);
}

static void add_str(json_t *attrs, const char *key, const char *s)
{
    if (s)
        add_attr(attrs, key, json_pack("{s:s}", "stringValue", s));
}

static void add_int(json_t *attrs, const char *key, int64_t n)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    add_attr(attrs, key, json_pack("{s:s}", "intValue", buf));
}

/* The trace line's fields that are the span's own, not attributes. */
static bool not_attr(const char *k)
{
    static const char *const skip[] = {
        "type", "run_id", "trace_id", "span_id", "parent_span_id", "name", "start_time",
        "end_time", "latency_ms", "content",
    };
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(k, skip[i]) == 0)
            return true;
    return false;
}

/* url.full as OpenTelemetry's HTTP conventions want it: a user and
 * password as REDACTED, and the values of query parameters that carry
 * credentials as REDACTED. */
static char *clean_url(const char *url)
{
    static const char *const secret[] = {
        "key", "token", "secret", "sig", "signature", "password", "passwd", "auth",
        "credential", "session", "code", "access",
    };
    fr_buf b = { 0 };
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t auth = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth);
    fr_buf_put(&b, url, (size_t)(host - url));
    if (at) {
        fr_buf_puts(&b, memchr(host, ':', (size_t)(at - host)) ? "REDACTED:REDACTED@" : "REDACTED@");
        host = at + 1;
    }
    size_t path = strcspn(host, "?#");
    fr_buf_put(&b, host, path);
    const char *q = host + path;
    if (*q == '?') {
        fr_buf_puts(&b, "?");
        q++;
        while (*q && *q != '#') {
            size_t len = strcspn(q, "&#");
            size_t klen = strcspn(q, "=&#");
            bool hide = false;
            for (size_t i = 0; i < sizeof secret / sizeof secret[0] && klen < len; i++) {
                for (size_t j = 0; j + strlen(secret[i]) <= klen && !hide; j++)
                    hide = strncasecmp(q + j, secret[i], strlen(secret[i])) == 0;
            }
            fr_buf_put(&b, q, hide ? klen + 1 : len);
            if (hide)
                fr_buf_puts(&b, "REDACTED");
            q += len;
            if (*q == '&')
                fr_buf_puts(&b, "&"), q++;
        }
    }
    fr_buf_puts(&b, q);
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* The line's fields as attributes: OpenTelemetry's names (they have a dot)
 * as they are, flowc's own under "flowc.". */
static json_t *line_attrs(json_t *line)
{
    json_t *attrs = json_array();
    const char *k;
    json_t *v;
    char key[160];
    json_object_foreach(line, k, v) {
        if (!attrs || not_attr(k) || json_is_null(v))
            continue;
        if (strcmp(k, "url.full") == 0 && json_is_string(v)) {
            char *u = clean_url(json_string_value(v));
            add_str(attrs, k, u);
            fr_free(u);
            continue;
        }
        snprintf(key, sizeof key, "%s%s", strchr(k, '.') ? "" : "flowc.", k);
        add_attr(attrs, key, any_value(v));
    }
    return attrs;
}

/* server.port from url.full (HTTP client spans want it beside server.address). */
static void add_port(json_t *attrs, json_t *line)
{
    const char *u = json_string_value(json_object_get(line, "url.full"));
    const char *p = u ? strstr(u, "://") : NULL;
    if (!p)
        return;
    const char *host = p + 3;
    size_t len = strcspn(host, "/?#");
    const char *at = memchr(host, '@', len);
    if (at)
        len -= (size_t)(at + 1 - host), host = at + 1;
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (host[i] == ':')
            colon = host + i;
        else if (host[i] == ']')
            colon = NULL;
    long port = colon ? strtol(colon + 1, NULL, 10) : strncasecmp(u, "https", 5) == 0 ? 443 : 80;
    if (port > 0 && port < 65536)
        add_int(attrs, "server.port", port);
}

/* A call's retries as events, from its detail's attempts: an attempt after
 * one that failed (not an answer, not a tool loop's turn) is an event at its
 * start, saying why the one before failed. */
static json_t *retry_events(json_t *detail, int64_t start_us, int64_t end_us)
{
    json_t *list = json_object_get(detail, "attempts");
    if (json_array_size(list) < 2)
        return NULL;
    json_t *evs = json_array();
    for (size_t i = 1; evs && i < json_array_size(list); i++) {
        json_t *prev = json_array_get(list, i - 1), *a = json_array_get(list, i);
        const char *was = json_string_value(json_object_get(prev, "outcome"));
        if (!was || strcmp(was, "answer") == 0 || strcmp(was, "tool_calls") == 0)
            continue;
        int64_t t = json_integer_value(json_object_get(a, "start_ms")) * 1000;
        t = t < start_us ? start_us : t > end_us ? end_us : t;
        json_t *attrs = json_array();
        if (!attrs)
            continue;
        add_int(attrs, "flowc.attempt", (int64_t)i + 1);
        add_str(attrs, "flowc.retry.reason", was);
        if (json_integer_value(json_object_get(prev, "status")))
            add_int(attrs, "http.response.status_code",
                    json_integer_value(json_object_get(prev, "status")));
        add_str(attrs, "flowc.retry.error", json_string_value(json_object_get(prev, "error")));
        json_t *e = json_pack("{s:o, s:s, s:o}", "timeUnixNano", nanos(t), "name", "retry",
                              "attributes", attrs);
        if (e)
            json_array_append_new(evs, e);
    }
    if (evs && json_array_size(evs) == 0) {
        json_decref(evs);
        return NULL;
    }
    return evs;
}

/* The line as an OTLP Span (new), or NULL when out of memory. */
static json_t *to_span(fr_otlp *x, json_t *line, int kind, int64_t start_us, int64_t end_us,
                       json_t *detail, const char *parent)
{
    const char *span = json_string_value(json_object_get(line, "span_id"));
    const char *given = json_string_value(json_object_get(line, "parent_span_id"));
    const char *name = json_string_value(json_object_get(line, "name"));
    const char *err = json_string_value(json_object_get(line, "error.type"));
    json_t *attrs = line_attrs(line);
    if (attrs && kind == 3 && json_object_get(line, "url.full"))
        add_port(attrs, line);
    json_t *s = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:o}", "traceId", x->trace_id,
                          "spanId", span ? span : "", "name", name ? name : "", "kind", kind,
                          "startTimeUnixNano", nanos(start_us), "endTimeUnixNano",
                          nanos(end_us < start_us ? start_us : end_us),
                          "attributes", attrs ? attrs : json_array());
    const char *up = given && *given ? given : parent;
    if (s && up && *up)             /* a root has none */
        json_object_set_new(s, "parentSpanId", json_string(up));
    json_t *evs = detail ? retry_events(detail, start_us, end_us) : NULL;
    if (s && evs)
        json_object_set_new(s, "events", evs);
    else
        json_decref(evs);
    if (s && err)
        json_object_set_new(s, "status", json_pack("{s:i, s:s}", "code", 2, "message", err));
    return s;
}

/* ---- the queue ---------------------------------------------------------------------- */

static void lost(fr_otlp *x, int64_t n, const char *why)
{
    x->dropped += n;
    if (why)
        snprintf(x->why, sizeof x->why, "%s", why);
}

void fr_otlp_span(fr_otlp *x, json_t *line, int kind, int64_t start_us, int64_t end_us,
                  json_t *detail, const char *parent)
{
    if (!x || !line)
        return;
    json_t *s = to_span(x, line, kind, start_us, end_us, detail, parent);
    pthread_mutex_lock(&x->mu);
    if (!s) {
        lost(x, 1, "out of memory");
    } else if (x->n == C.queue_max || x->stop) {
        lost(x, 1, x->failing ? NULL : "the queue was full");
        json_decref(s);
    } else {
        x->q[(x->head + x->n) % C.queue_max] = s;
        if (++x->n == C.batch_max)
            pthread_cond_signal(&x->wake);
        s = NULL;
    }
    pthread_mutex_unlock(&x->mu);
}

/* ---- sending ------------------------------------------------------------------------- */

typedef struct reply {
    char *body;                    /* what the collector answered (its first BODY_MAX bytes) */
    size_t len;
} reply;

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    reply *r = arg;
    size_t k = size * n, room = BODY_MAX - r->len;
    if (k > room)
        k = room;
    if (k) {
        char *grown = fr_realloc(r->body, r->len + k + 1);
        if (grown) {
            r->body = grown;
            memcpy(r->body + r->len, p, k);
            r->len += k;
            r->body[r->len] = '\0';
        }
    }
    return size * n;
}

/* The collector's message from an error's or a partial success's body:
 * Status.message, or partialSuccess.errorMessage. */
static void body_message(const reply *r, const char *key, char *out, size_t n)
{
    json_t *v = r->body ? fr_json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *ps = json_object_get(v, "partialSuccess");
    const char *m = json_string_value(json_object_get(ps ? ps : v, key));
    if (m && *m)
        snprintf(out, n, ": %.160s", m);
    else
        out[0] = '\0';
    json_decref(v);
}

/* Spans a partial success rejected: rejectedSpans, an int64 as a string or a number. */
static int64_t rejected(const reply *r)
{
    json_t *v = r->body ? fr_json_loadb(r->body, r->len, 0, NULL) : NULL;
    json_t *n = json_object_get(json_object_get(v, "partialSuccess"), "rejectedSpans");
    int64_t k = json_is_integer(n) ? json_integer_value(n)
              : json_is_string(n) ? strtoll(json_string_value(n), NULL, 10) : 0;
    json_decref(v);
    return k > 0 ? k : 0;
}

typedef enum { SENT, RETRY, FAILED } outcome;

/* One POST of body; why says what went wrong. */
static outcome post(CURL *c, struct curl_slist *hdrs, const char *body, long timeout_ms,
                    int64_t nspans, int64_t *refused, char *why, size_t n, long *retry_after)
{
    reply r = { 0 };
    fr_curl.easy_setopt(c, CURLOPT_URL, C.url);
    fr_curl.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    fr_curl.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    fr_curl.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    fr_curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    fr_curl.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    fr_curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    fr_curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    fr_curl.easy_setopt(c, CURLOPT_WRITEDATA, &r);
    fr_curl.easy_setopt(c, CURLOPT_USERAGENT, "flowc/" FLOWRT_VERSION);
    if (C.cafile)
        fr_curl.easy_setopt(c, CURLOPT_CAINFO, C.cafile);
    /* the easy interface on this thread's own handle: fr_net's loop is the
     * run's, and the run may end before a slow collector answers */
    CURLcode rc = fr_curl.easy_perform(c);
    long status = 0;
    curl_off_t after = -1;
    fr_curl.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    fr_curl.easy_getinfo(c, CURLINFO_RETRY_AFTER, &after);
    *retry_after = after > 0 ? (long)after * 1000 : 0;
    outcome o;
    char msg[200];
    if (rc != CURLE_OK) {
        snprintf(why, n, "%s", rc == CURLE_OPERATION_TIMEDOUT ? "no answer in time"
                 : rc == CURLE_COULDNT_CONNECT ? "cannot connect" : fr_curl.easy_strerror(rc));
        o = rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR
            || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_COULDNT_RESOLVE_HOST
            ? RETRY : FAILED;
    } else if (status >= 200 && status < 300) {
        *refused = rejected(&r);
        body_message(&r, "errorMessage", msg, sizeof msg);
        snprintf(why, n, "the collector rejected %lld of %lld spans%s", (long long)*refused,
                 (long long)nspans, msg);
        o = SENT;
    } else {
        body_message(&r, "message", msg, sizeof msg);
        snprintf(why, n, "HTTP %ld%s", status, msg);
        o = status == 429 || status == 502 || status == 503 || status == 504 ? RETRY : FAILED;
    }
    fr_free(r.body);
    return o;
}

static int64_t mono_ms(void)
{
    return fr_now_ms();
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sends spans[0..n) (taken from the queue): counts them sent or dropped. */
static void export(fr_otlp *x, CURL *c, struct curl_slist *hdrs, json_t *spans, int64_t n)
{
    json_t *req = json_pack("{s:[{s:O, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                            x->resource, "scopeSpans", "scope", "name", "flowc", "version",
                            FLOWRT_VERSION, "spans", spans);
    char *body = req ? json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(req);
    char why[256] = "out of memory";
    outcome o = FAILED;
    int64_t refused = 0;
    pthread_mutex_lock(&x->mu);
    bool stopping = x->stop, failing = x->failing;
    pthread_mutex_unlock(&x->mu);
    for (int t = 0; body && t < (stopping && failing ? 1 : TRIES); t++) {
        long timeout = C.timeout_ms, after = 0;
        if (stopping) {
            int64_t left = x->deadline_ms - mono_ms();
            if (left <= 0) {
                snprintf(why, sizeof why, "no time left to send at the run's end");
                break;
            }
            timeout = timeout < left ? timeout : (long)left;
        }
        o = post(c, hdrs, body, timeout, n, &refused, why, sizeof why, &after);
        if (o != RETRY || t + 1 == TRIES || (stopping && after == 0))
            break;                  /* at the end, only a collector that asked to wait */
        long wait = after > 0 ? (after < 5000 ? after : 5000) : 250L << t;
        pthread_mutex_lock(&x->mu);
        stopping = x->stop;
        pthread_mutex_unlock(&x->mu);
        if (stopping && mono_ms() + wait >= x->deadline_ms)
            break;
        sleep_ms(wait);
    }
    fr_free(body);
    pthread_mutex_lock(&x->mu);
    if (o == SENT) {
        x->sent += n - refused;
        if (refused)
            lost(x, refused, why);
        x->failing = false;
    } else {
        lost(x, n, why);
        x->failing = true;
    }
    pthread_mutex_unlock(&x->mu);
}

static struct curl_slist *header_list(void)
{
    struct curl_slist *l = fr_curl.slist_append(NULL, "Content-Type: application/json");
    l = l ? fr_curl.slist_append(l, "Expect:") : NULL;
    for (int i = 0; l && i < C.nheaders; i++)
        l = fr_curl.slist_append(l, C.headers[i]);
    return l;
}

/* Drops what is queued (libcurl could not be had). */
static void drop_queue(fr_otlp *x, const char *why)
{
    while (x->n) {
        json_decref(x->q[x->head]);
        x->head = (x->head + 1) % C.queue_max;
        x->n--;
        lost(x, 1, why);
    }
}

static void *sender(void *arg)
{
    fr_otlp *x = arg;
    fr_buf err = { 0 };
    CURL *c = NULL;
    struct curl_slist *hdrs = NULL;
    if (fr_curl_load(&err) && (c = fr_curl.easy_init()) != NULL)
        hdrs = header_list();
    pthread_mutex_lock(&x->mu);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += C.delay_ms / 1000;
        until.tv_nsec += (C.delay_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        while (!x->stop && x->n < C.batch_max)
            if (pthread_cond_timedwait(&x->wake, &x->mu, &until) == ETIMEDOUT)
                break;
        if (!c || !hdrs) {
            drop_queue(x, err.s ? err.s : "out of memory");
            if (x->stop)
                break;
            continue;
        }
        if (x->n == 0) {
            if (x->stop)
                break;
            continue;
        }
        int64_t k = x->n < C.batch_max ? x->n : C.batch_max;
        json_t *spans = json_array();
        for (int64_t i = 0; i < k; i++) {
            json_t *s = x->q[x->head];
            x->head = (x->head + 1) % C.queue_max;
            x->n--;
            if (!spans || json_array_append_new(spans, s) != 0)
                lost(x, 1, "out of memory");
        }
        pthread_mutex_unlock(&x->mu);
        if (spans)
            export(x, c, hdrs, spans, (int64_t)json_array_size(spans));
        pthread_mutex_lock(&x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    if (hdrs)
        fr_curl.slist_free_all(hdrs);
    if (c)
        fr_curl.easy_cleanup(c);
    fr_buf_free(&err);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

static json_t *resource(const char *workflow)
{
    json_t *attrs = json_array();
    const char *svc = C.service;
    for (int i = 0; !svc && i < C.nres; i++)
        if (strcmp(C.res_keys[i], "service.name") == 0)
            svc = C.res_vals[i];
    add_str(attrs, "service.name", svc ? svc : workflow);
    for (int i = 0; i < C.nres; i++)
        if (strcmp(C.res_keys[i], "service.name") != 0)
            add_str(attrs, C.res_keys[i], C.res_vals[i]);
    add_str(attrs, "telemetry.sdk.name", "flowc");
    add_str(attrs, "telemetry.sdk.language", "c");
    add_str(attrs, "telemetry.sdk.version", FLOWRT_VERSION);
    return attrs ? json_pack("{s:o}", "attributes", attrs) : NULL;
}

fr_otlp *fr_otlp_start(const char *workflow, const char *trace_id)
{
    if (!fr_otlp_wanted())
        return NULL;
    fr_otlp *x = fr_calloc(1, sizeof *x);
    json_t **q = fr_calloc((size_t)C.queue_max, sizeof *q);
    json_t *res = resource(workflow);
    if (!x || !q || !res) {
        fprintf(stderr, "warning: otlp: out of memory: spans are not exported\n");
        fr_free(x);
        fr_free(q);
        json_decref(res);
        return NULL;
    }
    x->q = q;
    x->resource = res;
    snprintf(x->trace_id, sizeof x->trace_id, "%s", trace_id);
    pthread_mutex_init(&x->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&x->wake, &ca);
    pthread_condattr_destroy(&ca);
    x->started = pthread_create(&x->thread, NULL, sender, x) == 0;
    if (!x->started)
        snprintf(x->why, sizeof x->why, "cannot start the export thread");
    return x;
}

void fr_otlp_stop(fr_otlp *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->mu);
    long budget = C.timeout_ms < EXIT_BUDGET_MS ? C.timeout_ms : EXIT_BUDGET_MS;
    x->deadline_ms = mono_ms() + budget;
    x->stop = true;
    pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->mu);
    if (x->started)
        pthread_join(x->thread, NULL);
    drop_queue(x, x->why[0] ? NULL : "cannot start the export thread");
    if (x->dropped)
        fprintf(stderr, "otlp: %lld span%s dropped (collector at %s: %s)\n",
                (long long)x->dropped, x->dropped == 1 ? "" : "s", C.shown,
                x->why[0] ? x->why : "unknown");
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->wake);
    json_decref(x->resource);
    fr_free(x->q);
    fr_free(x);
}
