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
    pthread_cond_t idle;           /* the sender ended */
    char **q;                      /* the queue, a ring of [C.queue_max] spans' JSON texts */
    int head, n;                   /* its first span and how many */
    int64_t inflight;              /* spans the sender is sending */
    bool stop;                     /* the run ended: flush and go (also read atomically) */
    bool done;                     /* the sender ended */
    int64_t deadline_ms;           /* the flush's end (monotonic), once stop (atomic) */
    int64_t dropped;               /* spans lost */
    int64_t sent;                  /* spans the collector took */
    char why[256];                 /* the last reason spans were lost */
    bool failing;                  /* the last export failed */
    char *head_json;               /* a request's text before its spans */
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
    const char *gz = env2("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION");
    if (gz && strcmp(gz, "none") != 0)
        fprintf(stderr, "warning: otlp: compression %s is not supported: spans go to %s"
                " uncompressed\n", gz, C.shown);
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

/* ---- spans ------------------------------------------------------------------------
 * A span is written as OTLP JSON text on the caller's thread, straight into
 * a buffer (no tree of objects: the queue holds about a kilobyte a span,
 * and the sender only joins the texts). */

static void put_cstr(fr_buf *b, const char *s)
{
    fr_buf_json_string(b, s, strlen(s));
}

/* Microseconds since the epoch as OTLP's fixed64 nanoseconds: a decimal string. */
static void put_nanos(fr_buf *b, int64_t us)
{
    fr_buf_printf(b, "\"%lld\"", (long long)(us < 0 ? 0 : us) * 1000);
}

/* Scalar or array v as an AnyValue; false (nothing written) for what has none. */
static bool put_any(fr_buf *b, json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        fr_buf_puts(b, "{\"stringValue\":");
        fr_buf_json_string(b, json_string_value(v), json_string_length(v));
        fr_buf_puts(b, "}");
        return true;
    case JSON_INTEGER:
        fr_buf_printf(b, "{\"intValue\":\"%lld\"}", (long long)json_integer_value(v));
        return true;
    case JSON_REAL:
        if (!isfinite(json_real_value(v)))
            return false;
        fr_buf_printf(b, "{\"doubleValue\":%.15g}", json_real_value(v));
        return true;
    case JSON_TRUE:
    case JSON_FALSE:
        fr_buf_printf(b, "{\"boolValue\":%s}", json_is_true(v) ? "true" : "false");
        return true;
    case JSON_ARRAY: {
        fr_buf_puts(b, "{\"arrayValue\":{\"values\":[");
        bool first = true;
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            if (json_is_array(e) || json_is_object(e) || json_is_null(e))
                continue;
            if (!first)
                fr_buf_puts(b, ",");
            first = !put_any(b, e) && first;
        }
        fr_buf_puts(b, "]}}");
        return true;
    }
    default:
        return false;
    }
}

/* One KeyValue (after a comma unless it is the list's first). */
static void put_key(fr_buf *b, bool *first, const char *key)
{
    fr_buf_puts(b, *first ? "{\"key\":" : ",{\"key\":");
    *first = false;
    put_cstr(b, key);
    fr_buf_puts(b, ",\"value\":");
}

static void attr_str(fr_buf *b, bool *first, const char *key, const char *v)
{
    if (!v)
        return;
    put_key(b, first, key);
    fr_buf_puts(b, "{\"stringValue\":");
    put_cstr(b, v);
    fr_buf_puts(b, "}}");
}

static void attr_int(fr_buf *b, bool *first, const char *key, int64_t n)
{
    put_key(b, first, key);
    fr_buf_printf(b, "{\"intValue\":\"%lld\"}}", (long long)n);
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

/* server.port from url.full (HTTP client spans want it beside server.address). */
static void attr_port(fr_buf *b, bool *first, const char *u)
{
    const char *p = strstr(u, "://");
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
        attr_int(b, first, "server.port", port);
}

/* The line's fields as attributes: OpenTelemetry's names (they have a dot)
 * as they are, flowc's own under "flowc.". */
static void put_attrs(fr_buf *b, json_t *line, bool client)
{
    bool first = true;
    const char *k;
    json_t *v;
    char key[160];
    fr_buf_puts(b, "\"attributes\":[");
    json_object_foreach(line, k, v) {
        if (not_attr(k) || json_is_null(v) || json_is_object(v))
            continue;
        if (strcmp(k, "url.full") == 0 && json_is_string(v)) {
            char *u = clean_url(json_string_value(v));
            attr_str(b, &first, k, u);
            if (u && client)
                attr_port(b, &first, u);
            fr_free(u);
            continue;
        }
        if (json_is_real(v) && !isfinite(json_real_value(v)))
            continue;
        snprintf(key, sizeof key, "%s%s", strchr(k, '.') ? "" : "flowc.", k);
        put_key(b, &first, key);
        put_any(b, v);
        fr_buf_puts(b, "}");
    }
    fr_buf_puts(b, "]");
}

/* A call's retries as events, from its detail's attempts: an attempt after
 * one that failed (not an answer, not a tool loop's turn) is an event at its
 * start, saying why the one before failed. */
static void put_events(fr_buf *b, json_t *detail, int64_t start_us, int64_t end_us)
{
    json_t *list = json_object_get(detail, "attempts");
    bool any = false;
    for (size_t i = 1; i < json_array_size(list); i++) {
        json_t *prev = json_array_get(list, i - 1), *a = json_array_get(list, i);
        const char *was = json_string_value(json_object_get(prev, "outcome"));
        if (!was || strcmp(was, "answer") == 0 || strcmp(was, "tool_calls") == 0)
            continue;
        int64_t t = json_integer_value(json_object_get(a, "start_ms")) * 1000;
        t = t < start_us ? start_us : t > end_us ? end_us : t;
        fr_buf_puts(b, any ? ",{\"timeUnixNano\":" : ",\"events\":[{\"timeUnixNano\":");
        any = true;
        put_nanos(b, t);
        fr_buf_puts(b, ",\"name\":\"retry\",\"attributes\":[");
        bool first = true;
        attr_int(b, &first, "flowc.attempt", (int64_t)i + 1);
        attr_str(b, &first, "flowc.retry.reason", was);
        int64_t st = json_integer_value(json_object_get(prev, "status"));
        if (st)
            attr_int(b, &first, "http.response.status_code", st);
        attr_str(b, &first, "flowc.retry.error", json_string_value(json_object_get(prev, "error")));
        fr_buf_puts(b, "]}");
    }
    if (any)
        fr_buf_puts(b, "]");
}

/* The line as an OTLP Span's JSON text (malloc'd), or NULL when out of memory. */
static char *to_span(fr_otlp *x, json_t *line, int kind, int64_t start_us, int64_t end_us,
                     json_t *detail, const char *parent)
{
    const char *span = json_string_value(json_object_get(line, "span_id"));
    const char *given = json_string_value(json_object_get(line, "parent_span_id"));
    const char *name = json_string_value(json_object_get(line, "name"));
    const char *err = json_string_value(json_object_get(line, "error.type"));
    const char *up = given && *given ? given : parent;
    fr_buf b = { 0 };
    fr_buf_printf(&b, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", x->trace_id, span ? span : "");
    if (up && *up)                  /* a root has none */
        fr_buf_printf(&b, "\"parentSpanId\":\"%s\",", up);
    fr_buf_puts(&b, "\"name\":");
    put_cstr(&b, name ? name : "");
    fr_buf_printf(&b, ",\"kind\":%d,\"startTimeUnixNano\":", kind);
    put_nanos(&b, start_us);
    fr_buf_puts(&b, ",\"endTimeUnixNano\":");
    put_nanos(&b, end_us < start_us ? start_us : end_us);
    fr_buf_puts(&b, ",");
    put_attrs(&b, line, kind == 3);
    if (detail)
        put_events(&b, detail, start_us, end_us);
    if (err) {                      /* STATUS_CODE_ERROR */
        fr_buf_puts(&b, ",\"status\":{\"code\":2,\"message\":");
        put_cstr(&b, err);
        fr_buf_puts(&b, "}");
    }
    fr_buf_puts(&b, "}");
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
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
    char *s = to_span(x, line, kind, start_us, end_us, detail, parent);
    pthread_mutex_lock(&x->mu);
    if (!s) {
        lost(x, 1, "out of memory");
    } else if (x->n == C.queue_max || x->stop) {
        lost(x, 1, x->failing ? NULL : "the queue was full");
    } else {
        x->q[(x->head + x->n) % C.queue_max] = s;
        if (++x->n == C.batch_max)
            pthread_cond_signal(&x->wake);
        s = NULL;
    }
    pthread_mutex_unlock(&x->mu);
    fr_free(s);
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

static int64_t mono_ms(void)
{
    return fr_now_ms();
}

/* libcurl's progress callback: a request still going at the end's deadline
 * is given up (libcurl calls this about once a second while it waits). */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    fr_otlp *x = arg;
    (void)dt, (void)dn, (void)ut, (void)un;
    return __atomic_load_n(&x->stop, __ATOMIC_ACQUIRE)
           && mono_ms() >= __atomic_load_n(&x->deadline_ms, __ATOMIC_ACQUIRE);
}

typedef enum { SENT, RETRY, FAILED } outcome;

/* One POST of body; why says what went wrong. */
static outcome post(fr_otlp *x, CURL *c, struct curl_slist *hdrs, const char *body, size_t len,
                    long timeout_ms, int64_t nspans, int64_t *refused, char *why, size_t n,
                    long *retry_after)
{
    reply r = { 0 };
    fr_curl.easy_setopt(c, CURLOPT_URL, C.url);
    fr_curl.easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    fr_curl.easy_setopt(c, CURLOPT_POSTFIELDS, body);
    fr_curl.easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    fr_curl.easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    fr_curl.easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    fr_curl.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    fr_curl.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    fr_curl.easy_setopt(c, CURLOPT_WRITEDATA, &r);
    fr_curl.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    fr_curl.easy_setopt(c, CURLOPT_XFERINFODATA, x);
    fr_curl.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
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
        snprintf(why, n, "%s", rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_ABORTED_BY_CALLBACK
                 ? "no answer in time" : rc == CURLE_COULDNT_CONNECT ? "cannot connect"
                 : fr_curl.easy_strerror(rc));
        o = rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR
            || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_COULDNT_RESOLVE_HOST
            ? RETRY : FAILED;
    } else if (status >= 200 && status < 300) {
        *refused = rejected(&r);
        body_message(&r, "errorMessage", msg, sizeof msg);
        snprintf(why, n, "the collector rejected %lld of %lld spans%.180s", (long long)*refused,
                 (long long)nspans, msg);
        o = SENT;
    } else {
        body_message(&r, "message", msg, sizeof msg);
        snprintf(why, n, "HTTP %ld%.180s", status, msg);
        o = status == 429 || status == 502 || status == 503 || status == 504 ? RETRY : FAILED;
    }
    fr_free(r.body);
    return o;
}

/* Waits ms (x->mu held), or less when the run ends. */
static void backoff(fr_otlp *x, long ms)
{
    struct timespec until = fr_deadline_in(ms);
    while (!x->stop)
        if (pthread_cond_timedwait(&x->wake, &x->mu, &until) == ETIMEDOUT)
            break;
}

/* The request of spans[0..n) (their texts, joined), or NULL when out of memory. */
static char *request(fr_otlp *x, char **spans, int64_t n, size_t *len)
{
    static const char mid[] = "\"spans\":[", tail[] = "]}]}]}";
    size_t total = strlen(x->head_json) + sizeof mid + sizeof tail + (size_t)n;
    for (int64_t i = 0; i < n; i++)
        total += strlen(spans[i]);
    char *body = fr_malloc(total), *p = body;
    if (!body)
        return NULL;
    p = stpcpy(p, x->head_json);
    p = stpcpy(p, mid);
    for (int64_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        p = stpcpy(p, spans[i]);
    }
    p = stpcpy(p, tail);
    *len = (size_t)(p - body);
    return body;
}

/* Sends spans[0..n) (taken from the queue): counts them sent or dropped. */
static void export(fr_otlp *x, CURL *c, struct curl_slist *hdrs, char **spans, int64_t n)
{
    size_t len = 0;
    char *body = request(x, spans, n, &len);
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
        o = post(x, c, hdrs, body, len, timeout, n, &refused, why, sizeof why, &after);
        if (o != RETRY || t + 1 == TRIES)
            break;
        long wait = after > 0 ? (after < 5000 ? after : 5000) : 250L << t;
        pthread_mutex_lock(&x->mu);
        stopping = x->stop;
        /* at the end, only a collector that asked to wait, within the deadline */
        bool go_on = !stopping || (after > 0 && mono_ms() + wait < x->deadline_ms);
        if (go_on)
            backoff(x, wait);
        pthread_mutex_unlock(&x->mu);
        if (!go_on)
            break;
    }
    fr_free(body);
    pthread_mutex_lock(&x->mu);
    x->inflight = 0;
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

/* Drops what is queued (x->mu held). */
static void drop_queue(fr_otlp *x, const char *why)
{
    if (x->n)
        lost(x, x->n, why);
    while (x->n) {
        fr_free(x->q[x->head]);
        x->head = (x->head + 1) % C.queue_max;
        x->n--;
    }
}

static void *sender(void *arg)
{
    fr_otlp *x = arg;
    fr_buf err = { 0 };
    CURL *c = NULL;
    struct curl_slist *hdrs = NULL;
    char **batch = fr_calloc((size_t)C.batch_max, sizeof *batch);
    if (fr_curl_load(&err) && (c = fr_curl.easy_init()) != NULL)
        hdrs = header_list();
    pthread_mutex_lock(&x->mu);
    for (;;) {
        struct timespec until = fr_deadline_in(C.delay_ms);
        while (!x->stop && x->n < C.batch_max)
            if (pthread_cond_timedwait(&x->wake, &x->mu, &until) == ETIMEDOUT)
                break;
        if (!c || !hdrs || !batch) {
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
        for (int64_t i = 0; i < k; i++) {
            batch[i] = x->q[x->head];
            x->head = (x->head + 1) % C.queue_max;
            x->n--;
        }
        x->inflight = k;
        pthread_mutex_unlock(&x->mu);
        export(x, c, hdrs, batch, k);
        for (int64_t i = 0; i < k; i++)
            fr_free(batch[i]);
        pthread_mutex_lock(&x->mu);
    }
    x->done = true;
    pthread_cond_broadcast(&x->idle);
    pthread_mutex_unlock(&x->mu);
    if (hdrs)
        fr_curl.slist_free_all(hdrs);
    if (c)
        fr_curl.easy_cleanup(c);
    fr_free(batch);
    fr_buf_free(&err);
    return NULL;
}

/* ---- start and stop ---------------------------------------------------------------- */

/* The request's head up to its spans: the Resource (from the environment,
 * service.name the workflow's unless it says another) and the scope. */
static char *request_head(const char *workflow)
{
    const char *svc = C.service;
    for (int i = 0; !svc && i < C.nres; i++)
        if (strcmp(C.res_keys[i], "service.name") == 0)
            svc = C.res_vals[i];
    fr_buf b = { 0 };
    bool first = true;
    fr_buf_puts(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    attr_str(&b, &first, "service.name", svc ? svc : workflow);
    for (int i = 0; i < C.nres; i++)
        if (strcmp(C.res_keys[i], "service.name") != 0)
            attr_str(&b, &first, C.res_keys[i], C.res_vals[i]);
    attr_str(&b, &first, "telemetry.sdk.name", "flowc");
    attr_str(&b, &first, "telemetry.sdk.language", "c");
    attr_str(&b, &first, "telemetry.sdk.version", FLOWRT_VERSION);
    fr_buf_puts(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"flowc\",\"version\":\""
                FLOWRT_VERSION "\"},");
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

fr_otlp *fr_otlp_start(const char *workflow, const char *trace_id)
{
    if (!fr_otlp_wanted())
        return NULL;
    fr_otlp *x = fr_calloc(1, sizeof *x);
    char **q = fr_calloc((size_t)C.queue_max, sizeof *q);
    char *head = request_head(workflow);
    if (!x || !q || !head) {
        fprintf(stderr, "warning: otlp: out of memory: spans are not exported\n");
        fr_free(x);
        fr_free(q);
        fr_free(head);
        return NULL;
    }
    x->q = q;
    x->head_json = head;
    snprintf(x->trace_id, sizeof x->trace_id, "%s", trace_id);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->wake, NULL);
    pthread_cond_init(&x->idle, NULL);
    x->started = pthread_create(&x->thread, NULL, sender, x) == 0;
    if (!x->started)
        snprintf(x->why, sizeof x->why, "cannot start the export thread");
    return x;
}

/* An exporter whose thread is still in a request at the end's deadline: it
 * is left to it (the process is ending), and kept here, not freed. */
static fr_otlp *abandoned;

void fr_otlp_stop(fr_otlp *x)
{
    if (!x)
        return;
    long budget = C.timeout_ms < EXIT_BUDGET_MS ? C.timeout_ms : EXIT_BUDGET_MS;
    pthread_mutex_lock(&x->mu);
    __atomic_store_n(&x->deadline_ms, mono_ms() + budget, __ATOMIC_RELEASE);
    __atomic_store_n(&x->stop, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&x->wake);
    /* the thread ends by the deadline, but for a request libcurl gives up
     * a little later (its progress calls come about once a second) */
    while (x->started && !x->done && mono_ms() < x->deadline_ms + 100) {
        struct timespec until = fr_deadline_in(20);
        pthread_cond_timedwait(&x->idle, &x->mu, &until);
    }
    bool done = !x->started || x->done;
    if (!done) {
        lost(x, x->inflight, "no answer in time");
        x->inflight = 0;
    }
    drop_queue(x, x->why[0] ? NULL : "cannot start the export thread");
    int64_t dropped = x->dropped;
    char why[256];
    snprintf(why, sizeof why, "%s", x->why[0] ? x->why : "unknown");
    pthread_mutex_unlock(&x->mu);
    if (dropped)
        fprintf(stderr, "otlp: %lld span%s dropped (collector at %s: %s)\n",
                (long long)dropped, dropped == 1 ? "" : "s", C.shown, why);
    if (!done) {
        pthread_detach(x->thread);
        abandoned = x;
        return;
    }
    if (x->started)
        pthread_join(x->thread, NULL);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->wake);
    pthread_cond_destroy(&x->idle);
    fr_free(x->head_json);
    fr_free(x->q);
    fr_free(x);
}
