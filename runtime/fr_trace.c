/*
 * fr_trace.c: --trace FILE, one JSON line per phase and per agent call,
 * named after OpenTelemetry's GenAI semantic conventions so a collector (or
 * jq) can read it without a mapping.
 *
 * A run is one trace: its id is derived from the run id, so a resumed run's
 * lines join the trace it started.  Each phase is a span, written when the
 * phase ends; each agent call is a span whose parent is its phase's span.
 * An agent's tool loop adds, under its call's span, a chat span per model
 * turn and an execute_tool span per tool call, whose own operation or agent
 * call line is in turn its child.
 * Lines are built whole with jansson and written with one write(2) under a
 * mutex onto an O_APPEND descriptor, so lines from many threads never mix.
 *
 * When the environment names an OpenTelemetry collector (fr_otlp.c), every
 * span also goes there as it is made, with or without a file: the run is
 * then a span of its own (invoke_workflow, the root), the parent of the
 * phases and of the calls made outside them.  A span's end is the time its
 * line is made (its latency_ms is whole milliseconds), so a child, whose line
 * is made first, never ends after its parent.
 */
#include "fr_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* One phase's span while it runs. */
typedef struct tphase {
    char span_id[17];              /* 16 hex digits, "" before the phase began */
    int64_t start_us;              /* wall clock start */
    bool open;                     /* begun, its line not written yet */
} tphase;

struct fr_trace {
    int fd;                        /* the file, O_APPEND; -1: none (spans only exported) */
    fr_otlp *otlp;                 /* the collector's exporter, or NULL */
    char run_span[17];             /* the run's span (exported only) */
    int64_t run_start_us;          /* when the trace opened */
    pthread_mutex_t mu;            /* one line at a time */
    char run_id[FR_RUN_ID_MAX];    /* the run */
    char trace_id[33];             /* 32 hex digits, from the run id */
    const fr_program *prog;        /* phase names */
    tphase *phases;                /* [prog->nphases] */
    atomic_uint_fast64_t next;     /* span id counter, mixed */
    uint64_t seed;                 /* per process, so a resume's ids differ */
};

/* splitmix64: distinct counters give well-spread ids. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void new_span_id(fr_trace *t, char out[17])
{
    uint64_t id = mix(t->seed + atomic_fetch_add(&t->next, 1));
    snprintf(out, 17, "%016llx", (unsigned long long)(id ? id : 1));
}

void fr_trace_span(fr_trace *t, char out[17])
{
    if (t)
        new_span_id(t, out);
    else
        out[0] = '\0';
}

/* The parent of a call line: its own parent when given, else its phase's span. */
static void parent_of(fr_trace *t, int phase, const char *given, char parent[17])
{
    parent[0] = '\0';
    if (given && *given) {
        snprintf(parent, 17, "%s", given);
    } else if (phase >= 0 && phase < t->prog->nphases) {
        pthread_mutex_lock(&t->mu);
        memcpy(parent, t->phases[phase].span_id, 17);
        pthread_mutex_unlock(&t->mu);
    }
}

fr_trace *fr_trace_open(const char *path, const char *run_id, const fr_program *prog,
                        fr_buf *err)
{
    char hash[65];
    fr_trace *t = fr_calloc(1, sizeof *t);
    tphase *ph = fr_calloc((size_t)(prog->nphases > 0 ? prog->nphases : 1), sizeof *ph);
    if (!t || !ph) {
        fr_buf_puts(err, "out of memory");
        fr_free(t);
        fr_free(ph);
        return NULL;
    }
    t->fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
    if (path && t->fd < 0) {
        fr_buf_puts(err, "cannot open trace file ");
        fr_buf_puts(err, path);
        fr_buf_puts(err, ": ");
        fr_buf_puts(err, strerror(errno));
        fr_free(t);
        fr_free(ph);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    snprintf(t->run_id, sizeof t->run_id, "%s", run_id);
    fr_sha256_hex(run_id, strlen(run_id), hash);
    memcpy(t->trace_id, hash, 32);
    t->trace_id[32] = '\0';
    t->prog = prog;
    t->phases = ph;
    t->seed = mix((uint64_t)fr_wall_us() ^ ((uint64_t)getpid() << 32));
    t->run_start_us = fr_wall_us();
    new_span_id(t, t->run_span);
    t->otlp = fr_otlp_start(prog->name, t->trace_id);
    return t;
}

void fr_trace_close(fr_trace *t)
{
    if (!t)
        return;
    fr_otlp_stop(t->otlp);
    if (t->fd >= 0)
        close(t->fd);
    pthread_mutex_destroy(&t->mu);
    fr_free(t->phases);
    fr_free(t);
}

static void set_str(json_t *o, const char *k, const char *v)
{
    json_object_set_new(o, k, v ? json_string(v) : json_null());
}

static void set_int(json_t *o, const char *k, int64_t v)
{
    json_object_set_new(o, k, json_integer(v));
}

/* "2026-11-21T01:45:03.123456Z" */
static void set_time(json_t *o, const char *k, int64_t us)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    char buf[40];
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%06dZ", (int)(us % 1000000));
    set_str(o, k, buf);
}

/* The fields every line starts with. */
static json_t *line_head(fr_trace *t, const char *kind, const char *span_id,
                         const char *parent)
{
    json_t *o = json_object();
    set_str(o, "type", kind);
    set_str(o, "run_id", t->run_id);
    set_str(o, "trace_id", t->trace_id);
    set_str(o, "span_id", span_id);
    set_str(o, "parent_span_id", parent && *parent ? parent : NULL);
    return o;
}

void fr_trace_write(fr_trace *t, char *s)
{
    if (!s)
        return;
    if (t->fd < 0) {
        fr_free(s);
        return;
    }
    size_t n = strlen(s);
    s[n] = '\n';                   /* replaces the NUL: written by length */
    pthread_mutex_lock(&t->mu);
    for (size_t off = 0; off < n + 1;) {
        ssize_t w = write(t->fd, s + off, n + 1 - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    pthread_mutex_unlock(&t->mu);
    fr_free(s);
}

/* o's span to the collector, when there is one: kind 1 internal, 3 client. */
static void export(fr_trace *t, json_t *o, int kind, int64_t start_us, int64_t end_us,
                   json_t *detail)
{
    fr_otlp_span(t->otlp, o, kind, start_us, end_us, detail, t->run_span);
}

/* Writes o as one line and drops it. */
static void emit(fr_trace *t, json_t *o)
{
    if (t->fd < 0) {
        json_decref(o);
        return;
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    fr_trace_write(t, s);
}

static const char *phase_name(fr_trace *t, int phase)
{
    return phase >= 0 && phase < t->prog->nphases ? t->prog->phases[phase].name : NULL;
}

void fr_trace_phase_begin(fr_trace *t, int phase)
{
    if (!t || phase < 0 || phase >= t->prog->nphases)
        return;
    pthread_mutex_lock(&t->mu);
    new_span_id(t, t->phases[phase].span_id);
    t->phases[phase].start_us = fr_wall_us();
    t->phases[phase].open = true;
    pthread_mutex_unlock(&t->mu);
}

/* "ok" and "waiting" are not errors; anything else is the error's type. */
static bool is_error(const char *status)
{
    return strcmp(status, "ok") != 0 && strcmp(status, "waiting") != 0;
}

void fr_trace_phase_end(fr_trace *t, int phase, const char *status)
{
    if (!t || phase < 0 || phase >= t->prog->nphases)
        return;
    tphase *p = &t->phases[phase];
    pthread_mutex_lock(&t->mu);
    bool open = p->open;
    p->open = false;
    pthread_mutex_unlock(&t->mu);
    if (!open)
        return;
    status = status ? status : "ok";
    int64_t end = fr_wall_us();
    json_t *o = line_head(t, "phase", p->span_id, NULL);
    char name[128];
    snprintf(name, sizeof name, "phase %s", phase_name(t, phase));
    set_str(o, "name", name);
    set_str(o, "phase", phase_name(t, phase));
    set_time(o, "start_time", p->start_us);
    set_time(o, "end_time", end);
    set_int(o, "latency_ms", (end - p->start_us) / 1000);
    set_str(o, "status", is_error(status) ? "error" : status);
    set_str(o, "error.type", is_error(status) ? status : NULL);
    export(t, o, 1, p->start_us, end, NULL);
    emit(t, o);
}

void fr_trace_end_open(fr_trace *t, const char *status)
{
    for (int i = 0; t && i < t->prog->nphases; i++)
        fr_trace_phase_end(t, i, status);
}

void fr_trace_run_end(fr_trace *t, const char *outcome, const char *error_type)
{
    if (!t || !t->otlp)
        return;
    char name[160];
    snprintf(name, sizeof name, "invoke_workflow %s", t->prog->name);
    json_t *o = line_head(t, "run", t->run_span, NULL);
    set_str(o, "name", name);
    set_str(o, "gen_ai.operation.name", "invoke_workflow");
    set_str(o, "gen_ai.workflow.name", t->prog->name);
    set_str(o, "flowc.run_id", t->run_id);
    set_str(o, "status", outcome);
    set_str(o, "error.type", error_type);
    fr_otlp_span(t->otlp, o, 1, t->run_start_us, fr_wall_us(), NULL, NULL);
    json_decref(o);
}

/* The OpenTelemetry GenAI attributes of one call. */
static void genai_attrs(json_t *o, const fr_tcall *c)
{
    set_str(o, "gen_ai.operation.name", "chat");
    set_str(o, "gen_ai.provider.name", c->provider);
    set_str(o, "gen_ai.request.model", c->model);
    if (c->max_tokens > 0)
        set_int(o, "gen_ai.request.max_tokens", c->max_tokens);
    if (c->temperature >= 0)
        json_object_set_new(o, "gen_ai.request.temperature", json_real(c->temperature));
    if (c->response_id && *c->response_id)
        set_str(o, "gen_ai.response.id", c->response_id);
    set_int(o, "gen_ai.usage.input_tokens", c->tokens_in);
    set_int(o, "gen_ai.usage.cache_read.input_tokens", c->cache_read);
    set_int(o, "gen_ai.usage.cache_creation.input_tokens", c->cache_write);
    set_int(o, "gen_ai.usage.output_tokens", c->tokens_out);
    json_t *fr = json_array();
    if (c->finish_reason)
        json_array_append_new(fr, json_string(c->finish_reason));
    json_object_set_new(o, "gen_ai.response.finish_reasons", fr);
    set_str(o, "error.type", c->error_type);
}

/* The head every call-like span shares: its own id (span_id, else a new
 * one), its parent (the given span, else its phase's, else the run's), its
 * name and its start and end times. */
static json_t *span_head(fr_trace *t, const char *kind, const char *span_id, int phase,
                         const char *parent_span_id, const char *name, int64_t start_us,
                         int64_t latency_ms)
{
    char span[17], parent[17];
    if (span_id && *span_id)
        snprintf(span, sizeof span, "%s", span_id);
    else
        new_span_id(t, span);
    parent_of(t, phase, parent_span_id, parent);
    json_t *o = line_head(t, kind, span, parent);
    set_str(o, "name", name);
    set_time(o, "start_time", start_us);
    set_time(o, "end_time", start_us + latency_ms * 1000);
    return o;
}

char *fr_trace_call_line(fr_trace *t, const fr_tcall *c)
{
    if (!t)
        return NULL;
    char name[160];
    snprintf(name, sizeof name, "chat %s", c->model ? c->model : "");
    json_t *o = span_head(t, "call", c->span_id, c->phase, c->parent_span_id, name, c->start_us,
                          c->latency_ms);
    genai_attrs(o, c);
    set_str(o, "agent", c->agent);
    set_str(o, "phase", phase_name(t, c->phase));
    set_str(o, "item", c->item ? c->item : "");
    set_int(o, "attempt", c->attempts);
    json_object_set_new(o, "cost_usd", json_real(c->usd));
    set_int(o, "latency_ms", c->latency_ms);
    json_object_set_new(o, "cached", json_boolean(c->cached));
    set_str(o, "call_key", c->key);
    if (c->loop) {
        set_int(o, "turns", c->turns);
        set_int(o, "tool_calls", c->tool_calls);
    }
    export(t, o, 3, c->start_us, fr_wall_us(), c->detail);
    if (t->fd < 0) {
        json_decref(o);
        return NULL;
    }
    if (c->content && c->detail)
        json_object_set(o, "content", c->detail);
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return line;
}

bool fr_trace_file(const fr_trace *t)
{
    return t && t->fd >= 0;
}

void fr_trace_call(fr_trace *t, const fr_tcall *c)
{
    if (t)
        fr_trace_write(t, fr_trace_call_line(t, c));
}

void fr_trace_turn(fr_trace *t, const fr_tturn *c)
{
    if (!t)
        return;
    char name[160];
    snprintf(name, sizeof name, "chat %s", c->model ? c->model : "");
    json_t *o = span_head(t, "turn", NULL, c->phase, c->parent_span_id, name, c->start_us,
                          c->latency_ms);
    set_str(o, "gen_ai.operation.name", "chat");
    set_str(o, "gen_ai.provider.name", c->provider);
    set_str(o, "gen_ai.request.model", c->model);
    set_int(o, "gen_ai.usage.input_tokens", c->tokens_in);
    set_int(o, "gen_ai.usage.output_tokens", c->tokens_out);
    json_t *fr = json_array();
    if (c->finish_reason)
        json_array_append_new(fr, json_string(c->finish_reason));
    json_object_set_new(o, "gen_ai.response.finish_reasons", fr);
    set_str(o, "error.type", c->error_type);
    set_str(o, "agent", c->agent);
    set_str(o, "phase", phase_name(t, c->phase));
    set_str(o, "item", c->item ? c->item : "");
    set_int(o, "turn", c->turn);
    set_int(o, "tool_calls", c->tool_calls);
    set_int(o, "attempt", c->attempts);
    json_object_set_new(o, "cost_usd", json_real(c->usd));
    set_int(o, "latency_ms", c->latency_ms);
    json_object_set_new(o, "cached", json_boolean(c->cached));
    export(t, o, 3, c->start_us, fr_wall_us(), NULL);
    emit(t, o);
}

void fr_trace_tool(fr_trace *t, const fr_ttool *c)
{
    if (!t)
        return;
    char name[160];
    snprintf(name, sizeof name, "execute_tool %s", c->tool ? c->tool : "");
    json_t *o = span_head(t, "tool", c->span_id, c->phase, c->parent_span_id, name, c->start_us,
                          c->latency_ms);
    set_str(o, "gen_ai.operation.name", "execute_tool");
    set_str(o, "gen_ai.tool.name", c->tool);
    set_str(o, "gen_ai.tool.call.id", c->call_id);
    set_str(o, "gen_ai.tool.type", "function");
    set_str(o, "gen_ai.tool.description", c->description);
    set_str(o, "error.type", c->error_type);
    set_str(o, "tool", c->kind);
    set_str(o, "agent", c->agent);
    set_str(o, "phase", phase_name(t, c->phase));
    set_str(o, "item", c->item ? c->item : "");
    set_int(o, "turn", c->turn);
    set_int(o, "latency_ms", c->latency_ms);
    json_object_set_new(o, "cached", json_boolean(c->cached));
    export(t, o, 1, c->start_us, fr_wall_us(), NULL);
    emit(t, o);
}

/* An http operation call: OpenTelemetry's HTTP client span attributes
 * (http.request.method, url.full, server.address, http.response.status_code,
 * http.request.resend_count), and flowc's own. */
void fr_trace_op(fr_trace *t, const fr_top *c)
{
    if (!t)
        return;
    char host[256] = "";
    const char *h = c->url ? strstr(c->url, "://") : NULL;
    if (h)
        snprintf(host, sizeof host, "%.*s", (int)strcspn(h + 3, "/?#:"), h + 3);
    json_t *o = span_head(t, "http", NULL, c->phase, c->parent_span_id,
                          c->method ? c->method : "HTTP", c->start_us, c->latency_ms);
    set_str(o, "http.request.method", c->method);
    set_str(o, "url.full", c->url);
    set_str(o, "server.address", host[0] ? host : NULL);
    if (c->status)
        set_int(o, "http.response.status_code", c->status);
    else
        json_object_set_new(o, "http.response.status_code", json_null());
    set_int(o, "http.request.resend_count", c->retries);
    set_str(o, "error.type", c->error_type);
    set_str(o, "operation", c->op);
    set_str(o, "phase", phase_name(t, c->phase));
    set_str(o, "item", c->item ? c->item : "");
    set_int(o, "attempt", c->attempts);
    set_int(o, "pages", c->pages);
    set_int(o, "latency_ms", c->latency_ms);
    json_object_set_new(o, "cached", json_boolean(c->cached));
    json_object_set_new(o, "outcome_unknown", json_boolean(c->outcome_unknown));
    json_object_set_new(o, "dry_run", json_boolean(c->dry_run));
    set_str(o, "idempotency_key", c->idempotency_key);
    set_str(o, "call_key", c->key);
    export(t, o, 3, c->start_us, fr_wall_us(), NULL);
    emit(t, o);
}
