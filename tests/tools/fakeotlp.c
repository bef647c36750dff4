/*
 * fakeotlp.c: the project's own OpenTelemetry collector, for tests and
 * benches: an OTLP/HTTP receiver of traces in JSON encoding that checks what
 * it gets as strictly as a collector parses it, and dumps it.
 *
 *   fakeotlp [--port-file F] [--dump F] [--path P] [--status N] [--delay MS]
 *            [--partial N] [--fail-first N] [--count-only]
 *   fakeotlp --verify DUMP
 *
 * It listens on a free port of 127.0.0.1 (written into --port-file whole, by
 * a rename) and takes POST P (default /v1/traces) with Content-Type
 * application/json: an ExportTraceServiceRequest.  What OTLP's JSON
 * encoding does not allow gets a 400 whose Status message says what and
 * where (and a "rejected" line in the dump): trace and span ids that are not
 * 32 and 16 hex digits (base64, as protobuf's own JSON mapping would have
 * them), all-zero ids, times that are not decimal strings of nanoseconds
 * (a number, microseconds), an end before the start, a kind or status code
 * that is no enum value (or an enum's name), an attribute whose value is not
 * exactly one AnyValue of the right JSON type (intValue a string of digits,
 * doubleValue a number, boolValue a boolean, arrayValue's values AnyValues),
 * a duplicate attribute key, an event without its time.  Fields it does not
 * know are ignored, as OTLP/JSON receivers must.  Another path is a 404,
 * another content type a 415.
 *
 * Every request it takes adds to the dump (JSON Lines, flushed before it
 * answers): {"request":N,"headers":{...},"resource":{...},"scope":{...}}
 * (header names lowercased; resource attributes as key: AnyValue) and then
 * one line per span: {"trace","span","parent","name","kind","start","end",
 * "attrs":{key: AnyValue},"events":[{"name","time","attrs"}],"status"}.
 * --status N answers every request N (a JSON Status body) after checking
 * it, --delay MS waits MS before answering, --partial N answers 200 with a
 * partial success rejecting N spans, --fail-first N answers the first N
 * requests 503 with Retry-After: 1 (after checking them; they are not
 * dumped: a client must send them again).  --count-only is a sink for benches: it
 * checks nothing and dumps {"count": N} per request (its spans).
 *
 * --verify DUMP checks what a whole run sent: span ids unique in their
 * trace, every span's parent in the same trace (a span without one is a
 * root), a child starting no earlier and ending no later than its parent;
 * it prints "N spans, T traces, R roots" and exits 0, else says what is
 * wrong and exits 1.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static FILE *dump;
static const char *want_path = "/v1/traces";
static int answer_status = 200;
static long delay_ms;
static long partial;
static long nrequests;
static bool count_only;
static long fail_first;            /* the first N requests get 503 and Retry-After: 1 */

/* ---- checking a request ------------------------------------------------------------ */

static char problem[512];

static bool bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static bool bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    return false;
}

static bool is_hex(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    bool nonzero = false;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
        nonzero = nonzero || s[i] != '0';
    }
    return nonzero;
}

static bool id_ok(json_t *v, size_t n, const char *what, const char *where)
{
    if (!json_is_string(v))
        return bad("%s: %s must be a string of %zu hex digits", where, what, n);
    if (!is_hex(json_string_value(v), n))
        return bad("%s: %s \"%s\" is not %zu hex digits, not all zero (base64 is not OTLP/JSON)",
                   where, what, json_string_value(v), n);
    return true;
}

/* A fixed64 of nanoseconds since the epoch: a decimal string, and plausibly
 * nanoseconds (after 2001: not seconds, milliseconds or microseconds). */
static bool nanos_ok(json_t *v, const char *what, const char *where, unsigned long long *out)
{
    if (!json_is_string(v))
        return bad("%s: %s must be a string of decimal nanoseconds, got %s", where, what,
                   json_is_integer(v) ? "a number" : "another type");
    const char *s = json_string_value(v);
    size_t n = strlen(s);
    if (n == 0 || n > 20 || strspn(s, "0123456789") != n)
        return bad("%s: %s \"%s\" is not a decimal integer", where, what, s);
    *out = strtoull(s, NULL, 10);
    if (*out < 1000000000000000000ull)
        return bad("%s: %s %s is not nanoseconds since the epoch (too small)", where, what, s);
    return true;
}

static bool any_ok(json_t *v, const char *where);

static bool kvlist_ok(json_t *list, const char *where)
{
    if (!json_is_array(list))
        return bad("%s: attributes must be an array of KeyValue", where);
    size_t i;
    json_t *kv;
    json_array_foreach(list, i, kv) {
        char at[600];
        const char *key = json_string_value(json_object_get(kv, "key"));
        snprintf(at, sizeof at, "%.300s.attributes[%zu]%s%.100s", where, i, key ? " " : "", key ? key : "");
        if (!json_is_object(kv) || !key || !*key)
            return bad("%s: a KeyValue needs a non-empty string key", at);
        for (size_t j = 0; j < i; j++)
            if (strcmp(json_string_value(json_object_get(json_array_get(list, j), "key")), key) == 0)
                return bad("%s: duplicate key", at);
        if (!any_ok(json_object_get(kv, "value"), at))
            return false;
    }
    return true;
}

static bool any_ok(json_t *v, const char *where)
{
    static const char *const kinds[] = { "stringValue", "intValue", "doubleValue", "boolValue",
                                         "arrayValue", "kvlistValue", "bytesValue" };
    if (!json_is_object(v))
        return bad("%s: value must be an AnyValue object", where);
    int found = -1, count = 0;
    for (int k = 0; k < 7; k++)
        if (json_object_get(v, kinds[k]))
            found = k, count++;
    if (count != 1)
        return bad("%s: an AnyValue holds exactly one value, this one %d", where, count);
    json_t *x = json_object_get(v, kinds[found]);
    switch (found) {
    case 0:
        return json_is_string(x) || bad("%s: stringValue must be a string", where);
    case 1: {
        const char *s = json_string_value(x);
        if (!s)
            return bad("%s: intValue must be a string (int64 in OTLP/JSON)", where);
        size_t n = strlen(s), d = s[0] == '-';
        if (n == d || n - d > 19 || strspn(s + d, "0123456789") != n - d)
            return bad("%s: intValue \"%s\" is not a decimal integer", where, s);
        return true;
    }
    case 2:
        return json_is_number(x) || (json_is_string(x) && (!strcmp(json_string_value(x), "NaN")
               || !strcmp(json_string_value(x), "Infinity")
               || !strcmp(json_string_value(x), "-Infinity")))
               || bad("%s: doubleValue must be a number", where);
    case 3:
        return json_is_boolean(x) || bad("%s: boolValue must be true or false", where);
    case 4: {
        json_t *vals = json_object_get(x, "values");
        if (!json_is_object(x) || (vals && !json_is_array(vals)))
            return bad("%s: arrayValue must be {\"values\": [AnyValue...]}", where);
        size_t i;
        json_t *e;
        json_array_foreach(vals, i, e) {
            char at[600];
            snprintf(at, sizeof at, "%.500s[%zu]", where, i);
            if (!any_ok(e, at))
                return false;
        }
        return true;
    }
    case 5:
        return json_is_object(x) && kvlist_ok(json_object_get(x, "values") ? json_object_get(x, "values")
                                              : json_array(), where);
    default:
        return json_is_string(x) || bad("%s: bytesValue must be a base64 string", where);
    }
}

static bool enum_ok(json_t *v, int lo, int hi, const char *what, const char *where)
{
    if (!v)
        return true;
    if (!json_is_integer(v))
        return bad("%s: %s must be an integer enum value (not its name)", where, what);
    if (json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad("%s: %s %lld is no enum value", where, what, (long long)json_integer_value(v));
    return true;
}

static bool span_ok(json_t *s, const char *where)
{
    if (!json_is_object(s))
        return bad("%s: a span must be an object", where);
    json_t *p = json_object_get(s, "parentSpanId");
    unsigned long long st, en;
    if (!id_ok(json_object_get(s, "traceId"), 32, "traceId", where)
        || !id_ok(json_object_get(s, "spanId"), 16, "spanId", where)
        || (p && !(json_is_string(p) && !*json_string_value(p)) && !id_ok(p, 16, "parentSpanId", where)))
        return false;
    if (!json_is_string(json_object_get(s, "name")) || !*json_string_value(json_object_get(s, "name")))
        return bad("%s: name must be a non-empty string", where);
    if (!enum_ok(json_object_get(s, "kind"), 0, 5, "kind", where)
        || !nanos_ok(json_object_get(s, "startTimeUnixNano"), "startTimeUnixNano", where, &st)
        || !nanos_ok(json_object_get(s, "endTimeUnixNano"), "endTimeUnixNano", where, &en))
        return false;
    if (en < st)
        return bad("%s: ends before it starts", where);
    json_t *attrs = json_object_get(s, "attributes");
    if (attrs && !kvlist_ok(attrs, where))
        return false;
    json_t *evs = json_object_get(s, "events"), *e;
    if (evs && !json_is_array(evs))
        return bad("%s: events must be an array", where);
    size_t i;
    json_array_foreach(evs, i, e) {
        char at[600];
        unsigned long long t;
        snprintf(at, sizeof at, "%.500s.events[%zu]", where, i);
        if (!json_is_object(e) || !nanos_ok(json_object_get(e, "timeUnixNano"), "timeUnixNano", at, &t))
            return false;
        if (!json_is_string(json_object_get(e, "name")))
            return bad("%s: an event's name must be a string", at);
        if (json_object_get(e, "attributes") && !kvlist_ok(json_object_get(e, "attributes"), at))
            return false;
    }
    json_t *status = json_object_get(s, "status");
    if (status && (!json_is_object(status)
                   || !enum_ok(json_object_get(status, "code"), 0, 2, "status.code", where)))
        return problem[0] ? false : bad("%s: status must be an object", where);
    if (status && json_object_get(status, "message") && !json_is_string(json_object_get(status, "message")))
        return bad("%s: status.message must be a string", where);
    return true;
}

static bool request_ok(json_t *req)
{
    problem[0] = '\0';
    json_t *rs = json_object_get(req, "resourceSpans");
    if (!json_is_object(req) || (rs && !json_is_array(rs)))
        return bad("the body must be an ExportTraceServiceRequest: {\"resourceSpans\": [...]}");
    size_t i, j, k;
    json_t *r, *ss, *s;
    json_array_foreach(rs, i, r) {
        char at[600];
        snprintf(at, sizeof at, "resourceSpans[%zu]", i);
        json_t *res = json_object_get(r, "resource");
        if (!json_is_object(r) || (res && !json_is_object(res)))
            return bad("%s: must be an object with a resource object", at);
        if (res && json_object_get(res, "attributes")
            && !kvlist_ok(json_object_get(res, "attributes"), at))
            return false;
        if (!json_is_array(json_object_get(r, "scopeSpans")))
            return bad("%s: scopeSpans must be an array", at);
        json_array_foreach(json_object_get(r, "scopeSpans"), j, ss) {
            char at2[600];
            snprintf(at2, sizeof at2, "%.300s.scopeSpans[%zu]", at, j);
            json_t *scope = json_object_get(ss, "scope");
            if (!json_is_object(ss) || (scope && (!json_is_object(scope)
                || (json_object_get(scope, "name") && !json_is_string(json_object_get(scope, "name"))))))
                return bad("%s: scope must be {\"name\": string, ...}", at2);
            if (!json_is_array(json_object_get(ss, "spans")))
                return bad("%s: spans must be an array", at2);
            json_array_foreach(json_object_get(ss, "spans"), k, s) {
                char at3[600];
                snprintf(at3, sizeof at3, "%.400s.spans[%zu]", at2, k);
                if (!span_ok(s, at3))
                    return false;
            }
        }
    }
    return true;
}

/* ---- the dump ------------------------------------------------------------------------ */

static json_t *attr_map(json_t *list)
{
    json_t *m = json_object();
    size_t i;
    json_t *kv;
    json_array_foreach(list, i, kv)
        json_object_set(m, json_string_value(json_object_get(kv, "key")), json_object_get(kv, "value"));
    return m;
}

static void put_line(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(15));
    if (s && dump)
        fprintf(dump, "%s\n", s);
    free(s);
    json_decref(o);
}

static void dump_request(json_t *req, json_t *headers)
{
    size_t i, j, k;
    json_t *r, *ss, *s;
    nrequests++;
    json_array_foreach(json_object_get(req, "resourceSpans"), i, r) {
        json_array_foreach(json_object_get(r, "scopeSpans"), j, ss) {
            put_line(json_pack("{s:i, s:O, s:o, s:O?}", "request", (json_int_t)nrequests,
                               "headers", headers, "resource",
                               attr_map(json_object_get(json_object_get(r, "resource"), "attributes")),
                               "scope", json_object_get(ss, "scope")));
            json_array_foreach(json_object_get(ss, "spans"), k, s) {
                json_t *evs = json_array(), *e;
                size_t n;
                json_array_foreach(json_object_get(s, "events"), n, e)
                    json_array_append_new(evs, json_pack("{s:O, s:O, s:o}", "name",
                                          json_object_get(e, "name"), "time",
                                          json_object_get(e, "timeUnixNano"), "attrs",
                                          attr_map(json_object_get(e, "attributes"))));
                const char *parent = json_string_value(json_object_get(s, "parentSpanId"));
                put_line(json_pack("{s:i, s:O, s:O, s:s?, s:O, s:O?, s:O, s:O, s:o, s:o, s:O?}",
                                   "in", (json_int_t)nrequests,
                                   "trace", json_object_get(s, "traceId"), "span",
                                   json_object_get(s, "spanId"), "parent",
                                   parent && *parent ? parent : NULL, "name",
                                   json_object_get(s, "name"), "kind", json_object_get(s, "kind"),
                                   "start", json_object_get(s, "startTimeUnixNano"), "end",
                                   json_object_get(s, "endTimeUnixNano"), "attrs",
                                   attr_map(json_object_get(s, "attributes")), "events", evs,
                                   "status", json_object_get(s, "status")));
            }
        }
    }
    fflush(dump);
}

/* ---- HTTP ---------------------------------------------------------------------------- */

static void reply(int fd, int status, const char *body)
{
    const char *text = status == 200 ? "OK" : status == 400 ? "Bad Request" : status == 404
                     ? "Not Found" : status == 415 ? "Unsupported Media Type" : "Error";
    char head[256];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n", status, text, strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0)
        return;
}

static void reply_status(int fd, int status, const char *msg)
{
    json_t *o = json_pack("{s:s}", "message", msg);
    char *s = json_dumps(o, JSON_COMPACT);
    reply(fd, status, s ? s : "{}");
    free(s);
    json_decref(o);
}

/* Reads one request from fd into buf; false at the connection's end. */
static bool read_request(int fd, char **buf, size_t *len, size_t *head_len, size_t *body_len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap + 1);
    size_t need = 0;
    bool got_head = false;
    for (;;) {
        if (got_head && n >= need)
            break;
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r <= 0) {
            free(b);
            return false;
        }
        n += (size_t)r;
        b[n] = '\0';
        if (!got_head) {
            char *end = strstr(b, "\r\n\r\n");
            if (!end)
                continue;
            got_head = true;
            *head_len = (size_t)(end - b) + 4;
            char *cl = strcasestr(b, "\r\ncontent-length:");
            *body_len = cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0;
            need = *head_len + *body_len;
            char *ex = strcasestr(b, "\r\nexpect: 100-continue");
            if (ex && ex < end && n < need && write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0) {
                free(b);
                return false;
            }
        }
    }
    *buf = b;
    *len = n;
    return true;
}

static json_t *header_map(char *b, size_t head_len)
{
    json_t *h = json_object();
    char *line = strstr(b, "\r\n");
    while (line && line + 2 < b + head_len - 2) {
        line += 2;
        char *eol = strstr(line, "\r\n");
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (colon) {
            char name[128];
            size_t k = (size_t)(colon - line) < 127 ? (size_t)(colon - line) : 127;
            for (size_t i = 0; i < k; i++)
                name[i] = (char)tolower((unsigned char)line[i]);
            name[k] = '\0';
            const char *v = colon + 1;
            while (*v == ' ')
                v++;
            json_object_set_new(h, name, json_stringn(v, (size_t)(eol - v)));
        }
        line = eol;
    }
    return h;
}

static void serve(int fd)
{
    char *b;
    size_t len, head_len, body_len;
    while (read_request(fd, &b, &len, &head_len, &body_len)) {
        char method[16] = "", path[512] = "";
        sscanf(b, "%15s %511s", method, path);
        json_t *headers = header_map(b, head_len);
        const char *ct = json_string_value(json_object_get(headers, "content-type"));
        json_error_t je;
        json_t *req = NULL;
        if (delay_ms > 0) {
            struct timespec ts = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (strcmp(method, "POST") != 0 || strcmp(path, want_path) != 0) {
            reply_status(fd, 404, "no such endpoint");
        } else if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
            reply_status(fd, 415, "Content-Type must be application/json");
        } else if (count_only) {           /* a sink for benches: spans counted, no check */
            long spans = 0;
            for (const char *p = b + head_len; (p = strstr(p, "\"spanId\":")) != NULL; p++)
                spans++;
            fprintf(dump, "{\"count\":%ld}\n", spans);
            fflush(dump);
            reply(fd, 200, "{}");
        } else if (!(req = json_loadb(b + head_len, body_len, JSON_REJECT_DUPLICATES, &je))) {
            snprintf(problem, sizeof problem, "the body is not JSON: %s", je.text);
            put_line(json_pack("{s:s}", "rejected", problem));
            fflush(dump);
            reply_status(fd, 400, problem);
        } else if (!request_ok(req)) {
            put_line(json_pack("{s:s}", "rejected", problem));
            fflush(dump);
            reply_status(fd, 400, problem);
        } else {
            static long seen;
            if (++seen <= fail_first) {         /* not kept: the client must send it again */
                const char *m = "{\"message\":\"scripted overload\"}";
                char head[200];
                int n = snprintf(head, sizeof head, "HTTP/1.1 503 Service Unavailable\r\n"
                                 "Content-Type: application/json\r\nRetry-After: 1\r\n"
                                 "Content-Length: %zu\r\n\r\n", strlen(m));
                if (write(fd, head, (size_t)n) < 0 || write(fd, m, strlen(m)) < 0)
                    break;
                json_decref(req);
                json_decref(headers);
                free(b);
                continue;
            }
            dump_request(req, headers);
            if (answer_status != 200) {
                reply_status(fd, answer_status, "scripted failure");
            } else if (partial > 0) {
                char body[200];
                snprintf(body, sizeof body, "{\"partialSuccess\":{\"rejectedSpans\":\"%ld\","
                         "\"errorMessage\":\"scripted partial success\"}}", partial);
                reply(fd, 200, body);
            } else {
                reply(fd, 200, "{}");
            }
        }
        json_decref(req);
        json_decref(headers);
        free(b);
    }
    close(fd);
}

/* ---- --verify ------------------------------------------------------------------------ */

static int verify(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return 1;
    }
    json_t *spans = json_object();           /* "trace/span" -> line */
    char *line = NULL;
    size_t cap = 0;
    long n = 0, roots = 0;
    json_t *traces = json_object();
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        if (json_object_get(o, "rejected")) {
            printf("verify: a request was rejected: %s\n",
                   json_string_value(json_object_get(o, "rejected")));
            return 1;
        }
        if (!json_object_get(o, "span")) {
            json_decref(o);
            continue;
        }
        char key[64];
        snprintf(key, sizeof key, "%s/%s", json_string_value(json_object_get(o, "trace")),
                 json_string_value(json_object_get(o, "span")));
        if (json_object_get(spans, key)) {
            printf("verify: span %s sent twice\n", key);
            return 1;
        }
        json_object_set_new(spans, key, o);
        json_object_set_new(traces, json_string_value(json_object_get(o, "trace")), json_true());
        n++;
    }
    free(line);
    fclose(f);
    const char *k;
    json_t *o;
    json_object_foreach(spans, k, o) {
        const char *parent = json_string_value(json_object_get(o, "parent"));
        const char *name = json_string_value(json_object_get(o, "name"));
        if (!parent) {
            roots++;
            continue;
        }
        char pk[64];
        snprintf(pk, sizeof pk, "%s/%s", json_string_value(json_object_get(o, "trace")), parent);
        json_t *p = json_object_get(spans, pk);
        if (!p) {
            printf("verify: span '%s' (%s): its parent %s is not in its trace\n", name, k, parent);
            return 1;
        }
        unsigned long long s = strtoull(json_string_value(json_object_get(o, "start")), NULL, 10);
        unsigned long long e = strtoull(json_string_value(json_object_get(o, "end")), NULL, 10);
        unsigned long long ps = strtoull(json_string_value(json_object_get(p, "start")), NULL, 10);
        unsigned long long pe = strtoull(json_string_value(json_object_get(p, "end")), NULL, 10);
        if (s < ps || e > pe) {
            printf("verify: span '%s' [%llu, %llu] is not within its parent '%s' [%llu, %llu]\n",
                   name, s, e, json_string_value(json_object_get(p, "name")), ps, pe);
            return 1;
        }
    }
    printf("%ld spans, %zu traces, %ld roots\n", n, json_object_size(traces), roots);
    json_decref(spans);
    json_decref(traces);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

static void on_term(int sig)
{
    (void)sig;
    if (dump)
        fflush(dump);
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL, *dump_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verify") == 0 && v)
            return verify(v);
        if (strcmp(a, "--count-only") == 0) {
            count_only = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "fakeotlp: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--port-file") == 0) port_file = v;
        else if (strcmp(a, "--dump") == 0) dump_path = v;
        else if (strcmp(a, "--path") == 0) want_path = v;
        else if (strcmp(a, "--status") == 0) answer_status = atoi(v);
        else if (strcmp(a, "--delay") == 0) delay_ms = atol(v);
        else if (strcmp(a, "--partial") == 0) partial = atol(v);
        else if (strcmp(a, "--fail-first") == 0) fail_first = atol(v);
        else {
            fprintf(stderr, "usage: fakeotlp [--port-file F] [--dump F] [--path P] [--status N]"
                    " [--delay MS] [--partial N] [--fail-first N] [--count-only] | --verify DUMP\n");
            return 2;
        }
        i++;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    dump = fopen(dump_path ? dump_path : "/dev/null", "a");
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof a;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (!dump || fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 64) < 0
        || getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        perror("fakeotlp");
        return 1;
    }
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *pf = fopen(tmp, "w");
        if (!pf || fprintf(pf, "%d\n", ntohs(a.sin_port)) < 0 || fclose(pf) != 0
            || rename(tmp, port_file) != 0) {
            perror(port_file);
            return 1;
        }
    }
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c >= 0)
            serve(c);
    }
}
