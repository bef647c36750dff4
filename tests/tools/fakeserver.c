/*
 * fakeserver.c: the project's own fake LLM server, for tests and benches.
 *
 * It listens on 127.0.0.1 only and speaks both wire formats:
 *   POST /v1/messages          Anthropic: the answer is a tool_use block
 *   POST /v1/chat/completions  OpenAI-compatible: the answer is message.content
 *   POST /chat/completions     (the same, for a base URL without /v1)
 * The answer is synthesized from the request's own schema (the forced tool's
 * input_schema, or response_format's json_schema): every property present,
 * enums take their first value (--enum last: their last), numbers and lengths respect the minimum /
 * maximum / minItems ... keywords or, in OpenAI strict mode where those are
 * not allowed, the "Must be between A and B." sentences of the description.
 * So any example runs against it.
 *
 *   fakeserver [--port N] [--port-file F] [--script F] [--key K] [--rate N]
 *              [--tpm N] [--cache-min T] [--latency MS] [--log F] [--dump DIR]
 *
 * --port 0 (the default) takes a free port and prints it on stdout (and into
 * --port-file, written whole by a rename).  --key K: a request whose
 * x-api-key or Bearer token is not K gets a 401 with an error body.
 * --rate N: N requests per second and no burst (GCRA, on each request's
 * kernel arrival time), as strict as a provider: beyond, a 429 with
 * retry-after in whole seconds, rounded up (no retry-after-ms); every answer carries the provider's rate-limit headers
 * (anthropic-ratelimit-requests-limit/-remaining/-reset, RFC 3339; or
 * x-ratelimit-limit-requests/-remaining-requests/-reset-requests, a
 * duration), the limit stated per minute.  --tpm N: N tokens a minute, no
 * burst either: a request costs its body's bytes / 4 (Anthropic's input
 * tokens, stated as anthropic-ratelimit-input-tokens-*) plus its max_tokens
 * (OpenAI, which counts both, stated as x-ratelimit-*-tokens).
 * --cache-min T: Anthropic prompt caching: a prefix marked cache_control of
 * at least T tokens (bytes / 4) is written by the first request and read by
 * those after its answer, and input_tokens counts the rest of the prompt
 * (else it is 100).
 * Requests the providers reject get their 400 and error shape: a forced
 * tool_choice or a temperature other than 1 for a current Claude model
 * (claude-*-5*), an output_config schema outside the documented subset, a
 * blank text turn, an OpenAI strict schema with minLength/maxLength or an
 * open object, max_tokens or temperature for a reasoning model (gpt-5*,
 * gpt-6*, o*).  --no-json-schema plays an OpenAI-compatible server without
 * strict mode (a 400 for response_format json_schema), --no-response-format
 * one without response_format at all (a 400 for any).  The script action
 * no-usage answers without usage.
 * --usage count: usage counted from the request and the answer with flowc's
 * token approximation (the request's system, turns at 4 tokens a message
 * and the answer's schema; the answer's text); --usage max: the same input,
 * and the output at the request's max_tokens (a server whose every answer
 * is as long as it may be: its first string free of constraints is padded
 * with words to about that length, so what a workflow passes on from it is
 * as long too); by default fixed counts.  --bad-attempts N: every call's
 * first N attempts (a batch request is a first attempt) are answered
 * invalid (invalid-missing-field), so every call spends N retries.
 * The batch endpoints and their flags are described at "batch APIs" below.
 * --latency MS: every answer waits MS first.  --log F: one JSON line per
 * request: n, conn (the connection's number), path, model, feedback (the
 * request carries a retry's feedback turn), auth (the key matched; the key
 * itself is never written), status, action, version (anthropic-version),
 * proxied (the request named an absolute URL: it was sent to us as an HTTP
 * proxy, so http_proxy=http://127.0.0.1:PORT tests proxy support), t (when
 * it came, seconds since the server started), cache_read and cache_write
 * (the tokens its answer reports read from and written to the cache).
 * --dump DIR (with --log): request n's body goes to DIR/n.json.
 * As Anthropic does, a tool input_schema with a property name that does not
 * match ^[a-zA-Z0-9_.-]{1,64}$ gets a 400.
 *
 * The script (--script F) says what request number n gets; one rule a line,
 * the first rule that matches wins, no rule means ok:
 *   WHEN ACTION [ARG]      WHEN: a number, a range 2-4, *, or `first`: a
 *                          request whose prompt (first user message, less
 *                          any retry feedback) was not seen before, so
 *                          `first 500` fails every call's first attempt
 *   1 429 retry-after=1    any status, with optional retry-after(-ms)=V or
 *                          retry-after-date=S (an HTTP date S seconds ahead);
 *                          should-retry=true|false (an x-should-retry header);
 *   1 401-leak-key         a 401 whose message quotes the key it was sent
 *   2 500                  (the body is the provider's error JSON)
 *   3 slow 2000            answer after 2000 ms
 *   4 hang                 never answer (the client times out)
 *   5 drop                 close the connection without an answer
 *   * ok                   a valid answer
 * A tool-using model:
 *   * tools calls=N rounds=R [tool=NAME] [bad=missing|type|name] [args={..}{..}]
 *                          while the conversation has had fewer than R turns
 *                          of tool calls (default 1) and the request lets it
 *                          call (tools besides an answer tool, tool_choice
 *                          not none), a turn of N calls (default 1): of the
 *                          declared tools in turn (or only NAME), with the
 *                          inputs of args in turn, else synthesized from the
 *                          tool's schema; bad= breaks the first call (a
 *                          required argument left out, one of the wrong
 *                          type, a tool that does not exist); then it answers.
 *   A history the providers refuse gets their 400: a tool_use (tool_calls
 *   id) without its tool_result (tool message) right after, a result for
 *   none of the previous turn's calls, tool_result blocks after text in a
 *   turn, a call of a tool not declared, tool_use/tool_result without tools,
 *   a tool_use without its id or with an input that is no object, a result
 *   (tool_result, tool message) whose content is neither text nor blocks, a
 *   tool call without its id or not of type function; and bad tool
 *   definitions (names outside ^[a-zA-Z0-9_-]{1,64}$, twice the same name, a
 *   schema not an object, a strict function outside the strict subset or
 *   with a property not required (response_format's strict schema too,
 *   and its json_schema name outside ^[a-zA-Z0-9_-]{1,64}$),
 *   tool_choice naming no tool or none of the wire's values,
 *   parallel_tool_calls without tools).  The log adds tool_calls
 *   (the names the answer calls), tool_results and tool_errors (the results
 *   the request ends with, and those flagged as errors), tool_choice and
 *   tools (how many are declared).
 * and the bad answers: fenced (```json ... ```), chatty (prose around the
 * JSON), chatty-braces (prose with braces of its own first), trailing-comma,
 * notjson, blank (white space only), invalid-missing-field, invalid-type,
 * invalid-enum, out-of-range, refusal, truncate (cut off at max_tokens).
 * Misbehaviour, for the fault matrix (tests/sh/fault_matrix.sh):
 *   connections: reset (after reading the request), reset-head (half a
 *     status line), reset-body / close-body (half the body, then a reset or
 *     a close), drip (a byte every 100 ms), bad-status (not HTTP),
 *     bad-chunked (a broken chunked encoding), bad-gzip (a gzip body that
 *     does not inflate), huge-header (a 200 KB header);
 *   bodies of a 200: garbage (random bytes), empty, html (an HTML page),
 *     text-plain (a good answer labelled text/plain), truncated-json,
 *     deep-json (nested past any parser's depth), nul-answer (a \u0000),
 *     bad-utf8, error-200 (the provider's error object), wrong-shape (JSON
 *     of another shape), empty-content (no content blocks / choices);
 *   statuses: html-502 (a proxy's HTML page), redirect (302);
 *   usage: no-usage (above), usage-wrong (a string and a negative count),
 *     usage-real (the counts written as reals, 130.0),
 *     usage-huge (10^15 tokens), usage-above (more input tokens than the
 *     request's bytes, but not absurdly many);
 *   the key: 500-straddle-key N and refusal-straddle-key N (N bytes of
 *     padding, then the key the request was sent with);
 *   retry-after-raw=TEXT (to the end of the line) and retry-after-ms-raw=T
 *     send those header values verbatim (an HTTP date in 2099, 1e308, nan).
 * Blank lines and lines starting with # are ignored.
 *
 * A prompt may ask for its own rule: "[[fake:ACTION ARGS]]" in the first
 * user message applies to every request of that prompt, "[[fake-once:ACTION
 * ARGS]]" to its first request only (its retries are answered); in a batch,
 * only the usage-* actions, on the request's result.  The rule
 * wins over the script: one workflow run sends each item to its own mode.
 *
 * One thread per connection, keep-alive, so it sustains high request rates.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)       /* request line and headers at most */
#define MAX_BODY (64 << 20)        /* request body at most */
#define MAX_RULES 256              /* script rules at most */

typedef struct rule {
    long lo, hi;                   /* request numbers matched, inclusive (hi -1: all) */
    bool first;                    /* matches only a prompt's first request */
    char action[48];               /* ok, a status code, slow, hang, drop, fenced, ... */
    long arg;                      /* slow: milliseconds */
    long retry_after;              /* seconds for retry-after, -1 none */
    long retry_after_ms;           /* for retry-after-ms, -1 none */
    long retry_after_date;         /* retry-after as an HTTP date this many s ahead, -1 none */
    int should_retry;              /* x-should-retry: 1 true, 0 false, -1 not sent */
    char retry_after_raw[96];      /* retry-after sent as this text, verbatim, or "" */
    char retry_after_ms_raw[64];   /* retry-after-ms sent as this text, verbatim, or "" */
    int tool_calls;                /* tools: calls a turn makes (calls=N, default 1) */
    int tool_rounds;               /* tools: turns with calls before the answer (rounds=R) */
    char tool_bad[16];             /* tools: bad=missing|type|name: a broken call */
    char tool_only[64];            /* tools: tool=NAME: every call of that tool */
    char tool_args[240];           /* tools: args={...}{...}: the calls' inputs, in turn */
} rule;

static struct {
    const char *key;               /* --key: the expected API key, or NULL */
    double rate;                   /* --rate: requests per second, 0 none */
    long latency_ms;               /* --latency */
    FILE *log;                     /* --log, or NULL */
    const char *dump;              /* --dump: a directory for each request's body, or NULL */
    pthread_mutex_t log_mu;        /* guards log */
    rule rules[MAX_RULES];         /* --script */
    int nrules;                    /* rules used */
    atomic_long count;             /* requests so far */
    atomic_long conns;             /* connections so far */
    double tpm;                    /* --tpm: tokens per minute, 0 none */
    pthread_mutex_t rate_mu;       /* guards tat and tok_tat */
    double tat;                    /* GCRA of requests: theoretical arrival time (s) */
    double tok_tat;                /* ... of tokens */
    long cache_min;                /* --cache-min: shortest prefix cached, in tokens */
    double start;                  /* when the server started (monotonic s) */
    int usage_mode;                /* --usage: 0 fixed counts, 1 count, 2 max */
    bool no_json_schema;           /* --no-json-schema: a compatible server without strict mode */
    bool no_response_format;       /* --no-response-format: ... without response_format at all */
    bool enum_last;                /* --enum last: an enum takes its last value, not its first */
} S = { .log_mu = PTHREAD_MUTEX_INITIALIZER, .rate_mu = PTHREAD_MUTEX_INITIALIZER };

/* One parsed request. */
typedef struct req {
    char path[256];                /* the request path */
    char method[16];               /* the method */
    char api_key[256];             /* x-api-key */
    char version[64];              /* anthropic-version */
    char bearer[256];              /* Authorization: Bearer ... */
    long content_length;           /* -1 if none */
    bool close;                    /* Connection: close */
    bool expect;                   /* Expect: 100-continue */
    char *body;                    /* the body (malloc'd, NUL-terminated) */
    long conn;                     /* which connection it came on (1, 2, ...) */
    bool proxied;                  /* absolute-form target: it came as a proxy request */
    double t;                      /* when it was read (s since the server started) */
} req;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- the script ----------------------------------------------------------- */

/* WHEN ACTION [ARG...] -> rule; false if the line is malformed. */
static bool parse_rule(char *line, rule *r)
{
    char when[64], action[48], rest[256] = "";
    int n = sscanf(line, "%63s %47s %255[^\n]", when, action, rest);
    if (n < 2)
        return false;
    r->lo = 1, r->hi = -1;
    r->first = strcmp(when, "first") == 0;
    if (strcmp(when, "*") != 0 && !r->first) {
        char *dash = strchr(when, '-');
        r->lo = atol(when);
        r->hi = dash ? atol(dash + 1) : r->lo;
        if (r->lo < 1 || r->hi < r->lo)
            return false;
    }
    snprintf(r->action, sizeof r->action, "%s", action);
    r->arg = atol(rest);
    r->retry_after = r->retry_after_ms = r->retry_after_date = -1;
    char *p;
    if ((p = strstr(rest, "retry-after=")))
        r->retry_after = atol(p + 12);
    if ((p = strstr(rest, "retry-after-ms=")))
        r->retry_after_ms = atol(p + 15);
    if (strstr(rest, "retry-after-raw="))
        r->retry_after = -1;
    if ((p = strstr(rest, "retry-after-date=")))
        r->retry_after_date = atol(p + 17);
    r->should_retry = -1;
    if ((p = strstr(rest, "should-retry=")))
        r->should_retry = strncmp(p + 13, "true", 4) == 0;
    r->retry_after_raw[0] = r->retry_after_ms_raw[0] = '\0';
    if ((p = strstr(rest, "retry-after-raw=")))       /* to the end of the line */
        snprintf(r->retry_after_raw, sizeof r->retry_after_raw, "%s", p + 16);
    if ((p = strstr(rest, "retry-after-ms-raw=")))
        sscanf(p + 19, "%63s", r->retry_after_ms_raw);
    r->tool_calls = 1, r->tool_rounds = 1;
    r->tool_bad[0] = r->tool_args[0] = r->tool_only[0] = '\0';
    if ((p = strstr(rest, "tool=")))
        sscanf(p + 5, "%63s", r->tool_only);
    if ((p = strstr(rest, "calls=")))
        r->tool_calls = atoi(p + 6);
    if ((p = strstr(rest, "rounds=")))
        r->tool_rounds = atoi(p + 7);
    if ((p = strstr(rest, "bad=")))
        sscanf(p + 4, "%15s", r->tool_bad);
    if ((p = strstr(rest, "args=")))                  /* to the end of the line */
        snprintf(r->tool_args, sizeof r->tool_args, "%s", p + 5);
    return true;
}

static bool load_script(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "fakeserver: cannot open %s\n", path);
        return false;
    }
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        if (S.nrules == MAX_RULES || !parse_rule(p, &S.rules[S.nrules])) {
            fprintf(stderr, "fakeserver: %s:%d: bad rule\n", path, lineno);
            fclose(f);
            return false;
        }
        S.nrules++;
    }
    fclose(f);
    return true;
}

static const rule *rule_for(long n, bool fresh)
{
    static const rule ok = { 1, -1, false, "ok", 0, -1, -1, -1, -1, "", "", 1, 1, "", "", "" };
    for (int i = 0; i < S.nrules; i++) {
        const rule *r = &S.rules[i];
        if (r->first ? fresh : n >= r->lo && (r->hi < 0 || n <= r->hi))
            return r;
    }
    return &ok;
}

/* ---- prompts seen, for `first` ------------------------------------------- */

static struct {
    pthread_mutex_t mu;            /* guards the set */
    uint64_t *slots;               /* open addressing, 0 = empty */
    size_t cap, n;                 /* slots allocated and used */
} seen = { PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0 };

static void seen_put(uint64_t h)
{
    size_t i = h & (seen.cap - 1);
    while (seen.slots[i] && seen.slots[i] != h)
        i = (i + 1) & (seen.cap - 1);
    seen.n += !seen.slots[i];
    seen.slots[i] = h;
}

/* Adds h to the set; true if it was not there. */
static bool seen_add(uint64_t h)
{
    h |= 1;
    pthread_mutex_lock(&seen.mu);
    if (2 * (seen.n + 1) > seen.cap) {
        uint64_t *old = seen.slots;
        size_t oldcap = seen.cap;
        seen.cap = seen.cap ? seen.cap * 2 : 1024;
        seen.slots = calloc(seen.cap, sizeof *seen.slots);
        seen.n = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                seen_put(old[i]);
        free(old);
    }
    size_t before = seen.n;
    seen_put(h);
    bool fresh = seen.n != before;
    pthread_mutex_unlock(&seen.mu);
    return fresh;
}

/* The first user message's text, its text blocks joined (a cache
 * breakpoint splits it): malloc'd, NULL when there is none. */
static char *first_prompt(json_t *request)
{
    size_t i, j;
    json_t *m, *b;
    char *text = NULL;
    json_array_foreach(json_object_get(request, "messages"), i, m) {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (role && strcmp(role, "user") == 0) {
            json_t *c = json_object_get(m, "content");
            if (json_is_string(c))
                text = strdup(json_string_value(c));
            json_array_foreach(c, j, b) {         /* text blocks (a cache breakpoint) */
                const char *t = json_string_value(json_object_get(b, "text"));
                char *joined = NULL;
                if (t && asprintf(&joined, "%s%s", text ? text : "", t) >= 0) {
                    free(text);
                    text = joined;
                }
            }
            break;
        }
    }
    return text;
}

/* The first user message's text, less retry feedback: FNV-1a. */
static bool prompt_is_fresh(json_t *request)
{
    char *text = first_prompt(request);
    const char *end = text ? strstr(text, "\n\nYour previous answer was invalid") : NULL;
    size_t n = text ? (end ? (size_t)(end - text) : strlen(text)) : 0;
    uint64_t h = 1469598103934665603ULL;
    for (size_t k = 0; k < n; k++)
        h = (h ^ (unsigned char)text[k]) * 1099511628211ULL;
    free(text);
    return seen_add(h);
}

/* A rule the prompt itself asks for: "[[fake:ACTION ARGS]]" for every
 * request of that prompt, "[[fake-once:ACTION ARGS]]" for its first request
 * only (its retries are answered).  So one workflow run can send every
 * item to a different misbehaviour (tests/sh/fault_matrix.sh).  False when
 * the prompt asks for nothing. */
static bool prompt_rule(json_t *request, bool fresh, rule *r)
{
    char *t = first_prompt(request);
    const char *p = t ? strstr(t, "[[fake") : NULL;
    bool once = p && strncmp(p, "[[fake-once:", 12) == 0;
    const char *end = p && (once || strncmp(p, "[[fake:", 7) == 0)
                      ? strstr(p += once ? 12 : 7, "]]") : NULL;
    char line[400];
    snprintf(line, sizeof line, "* %.*s", end ? (int)(end - p) : 0, p ? p : "");
    free(t);
    if (!end || !parse_rule(line, r))
        return false;
    if (once && !fresh)
        snprintf(r->action, sizeof r->action, "ok");
    return true;
}

/* ---- the rate limits (GCRA, no burst) -------------------------------------- */

/* What a request costs against --tpm: the body's bytes / 4, and for OpenAI
 * its max_tokens too. */
static double request_tokens(json_t *request, bool anthropic)
{
    char *b = request ? json_dumps(request, JSON_COMPACT) : NULL;
    double n = b ? (double)strlen(b) / 4 : 0;
    free(b);
    if (!anthropic) {
        json_t *m = json_object_get(request, "max_completion_tokens");
        n += (double)json_integer_value(m ? m : json_object_get(request, "max_tokens"));
    }
    return n;
}

/* 0 if a request that arrived at t, costing tokens, may pass, else seconds
 * until it would.  t is when its bytes reached this host (the kernel's
 * stamp, see arrival()), as a provider's edge stamps a request, not when this
 * thread got round to reading it.  Both limits must allow it; a refused
 * request costs nothing. */
static double rate_check(double t, double tokens)
{
    if (S.rate <= 0 && S.tpm <= 0)
        return 0;
    double wait = 0;
    pthread_mutex_lock(&S.rate_mu);
    if (S.rate > 0 && S.tat > t + 1e-9)
        wait = S.tat - t;
    if (S.tpm > 0 && S.tok_tat > t + 1e-9 && S.tok_tat - t > wait)
        wait = S.tok_tat - t;
    if (wait == 0) {
        if (S.rate > 0)
            S.tat = (S.tat > t ? S.tat : t) + 1 / S.rate;
        if (S.tpm > 0)
            S.tok_tat = (S.tok_tat > t ? S.tok_tat : t) + tokens / (S.tpm / 60);
    }
    pthread_mutex_unlock(&S.rate_mu);
    return wait;
}

/* An RFC 3339 time `ahead` seconds from now, rounded up to whole seconds as
 * Anthropic states its resets. */
static void rfc3339_ahead(double ahead, char *out, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t reset = ts.tv_sec + (time_t)ceil(ahead);
    struct tm tm;
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&reset, &tm));
}

/* The providers' rate-limit headers for the limits, stated per minute as
 * they state them: Anthropic's reset is an RFC 3339 time, OpenAI's a
 * duration ("1s", "250ms"); remaining is what could pass now (no burst: one
 * request, or the tokens accrued since the last one was due). */
static void rate_headers(bool anthropic, char *out, size_t cap)
{
    double t = now_s();
    pthread_mutex_lock(&S.rate_mu);
    double ahead = S.tat > t ? S.tat - t : 0;
    double tok_ahead = S.tok_tat > t ? S.tok_tat - t : 0;
    double tok_left = S.tok_tat < t ? (t - S.tok_tat) * S.tpm / 60 : 0;
    pthread_mutex_unlock(&S.rate_mu);
    if (tok_left > S.tpm)
        tok_left = S.tpm;
    size_t n = 0;
    char when[32];
    if (S.rate > 0 && anthropic) {
        rfc3339_ahead(ahead, when, sizeof when);
        n += (size_t)snprintf(out + n, cap - n, "anthropic-ratelimit-requests-limit: %ld\r\n"
                              "anthropic-ratelimit-requests-remaining: %d\r\n"
                              "anthropic-ratelimit-requests-reset: %s\r\n",
                              (long)(S.rate * 60 + 0.5), ahead > 1e-9 ? 0 : 1, when);
    } else if (S.rate > 0) {
        n += (size_t)snprintf(out + n, cap - n, "x-ratelimit-limit-requests: %ld\r\n"
                              "x-ratelimit-remaining-requests: %d\r\n"
                              "x-ratelimit-reset-requests: %ldms\r\n",
                              (long)(S.rate * 60 + 0.5), ahead > 1e-9 ? 0 : 1,
                              (long)ceil(ahead * 1000));
    }
    if (S.tpm > 0 && anthropic) {
        rfc3339_ahead(tok_ahead, when, sizeof when);
        snprintf(out + n, cap - n, "anthropic-ratelimit-input-tokens-limit: %ld\r\n"
                 "anthropic-ratelimit-input-tokens-remaining: %ld\r\n"
                 "anthropic-ratelimit-input-tokens-reset: %s\r\n",
                 (long)S.tpm, (long)tok_left, when);
    } else if (S.tpm > 0) {
        snprintf(out + n, cap - n, "x-ratelimit-limit-tokens: %ld\r\n"
                 "x-ratelimit-remaining-tokens: %ld\r\n"
                 "x-ratelimit-reset-tokens: %ldms\r\n", (long)S.tpm, (long)tok_left,
                 (long)ceil(tok_ahead * 1000));
    }
}

/* ---- synthesizing an answer from a JSON Schema ---------------------------- */

typedef struct bounds {
    bool has_lo, has_hi;           /* which bounds are known */
    double lo, hi;                 /* the bounds */
} bounds;

/* Bounds from keywords, else from the description's sentences. */
static bounds bounds_of(json_t *s, const char *kmin, const char *kmax)
{
    bounds b = { 0 };
    json_t *lo = json_object_get(s, kmin), *hi = json_object_get(s, kmax);
    if (json_is_number(lo))
        b.has_lo = true, b.lo = json_number_value(lo);
    if (json_is_number(hi))
        b.has_hi = true, b.hi = json_number_value(hi);
    const char *d = json_string_value(json_object_get(s, "description"));
    const char *p;
    if (b.has_lo || b.has_hi || !d)
        return b;
    if ((p = strstr(d, "etween ")) && sscanf(p, "etween %lf and %lf", &b.lo, &b.hi) == 2)
        b.has_lo = b.has_hi = true;
    else if ((p = strstr(d, "Exactly ")) && sscanf(p, "Exactly %lf", &b.lo) == 1)
        b.has_lo = b.has_hi = true, b.hi = b.lo;
    else if ((p = strstr(d, "At most ")) && sscanf(p, "At most %lf", &b.hi) == 1)
        b.has_hi = true;
    return b;
}

/* The first type named that is not "null". */
static const char *type_of(json_t *s)
{
    json_t *t = json_object_get(s, "type");
    if (json_is_string(t))
        return json_string_value(t);
    size_t i;
    json_t *v;
    json_array_foreach(t, i, v)
        if (strcmp(json_string_value(v) ? json_string_value(v) : "null", "null") != 0)
            return json_string_value(v);
    if (json_object_get(s, "properties"))
        return "object";
    return "null";
}

static json_t *synth(json_t *s, json_t *root, int depth);

/* "#/$defs/X" -> the schema it names. */
static json_t *resolve_ref(const char *ref, json_t *root)
{
    if (strncmp(ref, "#/", 2) != 0)
        return NULL;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", ref + 2);
    json_t *cur = root;
    for (char *save = NULL, *seg = strtok_r(buf, "/", &save); seg && cur;
         seg = strtok_r(NULL, "/", &save))
        cur = json_object_get(cur, seg);
    return cur;
}

/* --usage max: the output tokens an answer still owes, written into its
 * first string free of constraints, so that what a workflow passes on from
 * it is as long as the answer (set by synth_padded, per thread). */
static __thread long pad_tokens;

static json_t *synth_string(json_t *s)
{
    bounds b = bounds_of(s, "minLength", "maxLength");
    if (pad_tokens > 0 && !b.has_hi && !json_object_get(s, "enum") &&
        !json_object_get(s, "const") && !json_object_get(s, "pattern") &&
        !json_object_get(s, "format")) {
        size_t words = (size_t)(pad_tokens + 1) / 2, n = 4 + words * 8;
        char *t = malloc(n + 1);
        if (t) {                             /* "fake" and a two-token word per two tokens */
            memcpy(t, "fake", 4);
            for (size_t i = 0; i < words; i++)
                memcpy(t + 4 + i * 8, " padding", 8);
            t[n] = '\0';
            pad_tokens = 0;
            json_t *v = json_string(t);
            free(t);
            return v;
        }
    }
    char buf[4096] = "fake";
    size_t n = 4;
    if (b.has_lo && b.lo > n)
        n = b.lo < sizeof buf - 1 ? (size_t)b.lo : sizeof buf - 1;
    if (b.has_hi && b.hi < n)
        n = b.hi > 0 ? (size_t)b.hi : 0;
    for (size_t i = 4; i < n; i++)
        buf[i] = 'x';
    buf[n] = '\0';
    return json_string(buf);
}

static json_t *synth_number(json_t *s, bool integer)
{
    bounds b = bounds_of(s, "minimum", "maximum");
    double v = integer ? 1 : 0.5;
    if (b.has_lo && b.has_hi)
        v = integer ? b.lo : (b.lo + b.hi) / 2;
    else if (b.has_lo)
        v = b.lo;
    else if (b.has_hi && b.hi < v)
        v = b.hi;
    return integer ? json_integer((json_int_t)ceil(v)) : json_real(v);
}

static json_t *synth_array(json_t *s, json_t *root, int depth)
{
    bounds b = bounds_of(s, "minItems", "maxItems");
    long n = b.has_lo && b.lo > 1 ? (long)b.lo : 1;
    if (b.has_hi && b.hi < n)
        n = (long)b.hi;
    json_t *a = json_array();
    for (long i = 0; i < n && i < 1000; i++)
        json_array_append_new(a, synth(json_object_get(s, "items"), root, depth + 1));
    return a;
}

static json_t *synth_object(json_t *s, json_t *root, int depth)
{
    json_t *o = json_object();
    const char *k;
    json_t *p;
    json_object_foreach(json_object_get(s, "properties"), k, p)
        json_object_set_new(o, k, synth(p, root, depth + 1));
    return o;
}

static json_t *synth(json_t *s, json_t *root, int depth)
{
    if (!s || depth > 32)
        return json_null();
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (ref)
        return synth(resolve_ref(ref, root), root, depth + 1);
    json_t *any = json_object_get(s, "anyOf");
    if (!any)
        any = json_object_get(s, "oneOf");
    if (json_is_array(any)) {
        size_t i;
        json_t *alt;
        json_array_foreach(any, i, alt)
            if (strcmp(type_of(alt), "null") != 0 || json_object_get(alt, "$ref"))
                return synth(alt, root, depth + 1);
        return json_null();
    }
    if (json_object_get(s, "const"))
        return json_deep_copy(json_object_get(s, "const"));
    json_t *ev = json_object_get(s, "enum");
    json_t *e = json_array_get(ev, S.enum_last && json_array_size(ev) ? json_array_size(ev) - 1 : 0);
    if (e)
        return json_deep_copy(e);
    const char *t = type_of(s);
    if (strcmp(t, "object") == 0)
        return synth_object(s, root, depth);
    if (strcmp(t, "array") == 0)
        return synth_array(s, root, depth);
    if (strcmp(t, "string") == 0)
        return synth_string(s);
    if (strcmp(t, "integer") == 0 || strcmp(t, "number") == 0)
        return synth_number(s, t[0] == 'i');
    if (strcmp(t, "boolean") == 0)
        return json_true();
    return json_null();
}

/* ---- spoiling an answer for the invalid-* actions ------------------------- */

/* The first property of schema s (an object) matching want, or NULL. */
static const char *find_prop(json_t *s, json_t *root, const char *want)
{
    const char *k;
    json_t *p;
    json_object_foreach(json_object_get(s, "properties"), k, p) {
        json_t *r = json_object_get(p, "$ref") ? resolve_ref(
            json_string_value(json_object_get(p, "$ref")), root) : p;
        if (!want)
            return k;
        if (strcmp(want, "enum") == 0 && json_object_get(r, "enum"))
            return k;
        if (strcmp(want, "range") == 0 && strchr("in", type_of(r)[0])) {
            bounds b = bounds_of(r, "minimum", "maximum");
            if (b.has_hi)
                return k;
        }
    }
    return NULL;
}

static void spoil(const char *action, json_t *v, json_t *s, json_t *root)
{
    const char *k = NULL;
    if (strcmp(action, "invalid-enum") == 0 && (k = find_prop(s, root, "enum")))
        json_object_set_new(v, k, json_string("not_a_value"));
    else if (strcmp(action, "out-of-range") == 0 && (k = find_prop(s, root, "range")))
        json_object_set_new(v, k, json_integer(1000000));
    else if (strcmp(action, "invalid-type") == 0 && (k = find_prop(s, root, NULL)))
        json_object_set_new(v, k, json_is_string(json_object_get(v, k))
                            ? json_integer(7) : json_string("seven"));
    else if ((k = find_prop(s, root, NULL)))
        json_object_del(v, k);
}

/* ---- the two wire formats -------------------------------------------------- */

/* The text a bad-format action wraps the JSON in (malloc'd), or NULL. */
static char *answer_text(const char *action, const char *json)
{
    char *out = NULL;
    if (strcmp(action, "fenced") == 0) {
        if (asprintf(&out, "```json\n%s\n```", json) < 0)
            return NULL;
    } else if (strcmp(action, "chatty") == 0) {
        if (asprintf(&out, "Sure! Here is the JSON you asked for:\n%s\nLet me know if "
                     "you need anything else.", json) < 0)
            return NULL;
    } else if (strcmp(action, "chatty-braces") == 0) {
        if (asprintf(&out, "Here is the {lead} as [JSON]: %s", json) < 0)
            return NULL;
    } else if (strcmp(action, "trailing-comma") == 0) {
        size_t n = strlen(json);
        if (n >= 2 && json[n - 1] == '}' && json[n - 2] != '{' &&
            asprintf(&out, "%.*s,}", (int)(n - 1), json) < 0)
            return NULL;
        if (!out)
            out = strdup(json);
    } else if (strcmp(action, "notjson") == 0) {
        out = strdup("I am sorry, I cannot produce JSON today.");
    } else if (strcmp(action, "blank") == 0) {
        out = strdup(" \n\t \n");
    } else if (strcmp(action, "truncate") == 0) {
        out = strndup(json, strlen(json) / 2);
    }
    return out;
}

/* ---- prompt caching (Anthropic: cache_control breakpoints) --------------- */

/* The request's cached prefix: everything before and including the last
 * block marked cache_control, as text (malloc'd), or NULL when none is
 * marked.  Tokens are counted as bytes / 4. */
static char *cache_prefix(json_t *request)
{
    json_t *parts = json_array();
    json_array_append(parts, json_object_get(request, "model"));
    json_array_append(parts, json_object_get(request, "tools"));
    json_array_append(parts, json_object_get(request, "output_config"));
    bool marked = false;
    json_t *sys = json_object_get(request, "system"), *b;
    size_t i, j;
    json_t *upto = json_array();
    json_array_foreach(sys, i, b) {
        json_array_append(upto, b);
        if (json_object_get(b, "cache_control")) {
            marked = true;
            json_array_extend(parts, upto);
            json_array_clear(upto);
        }
    }
    if (!json_is_array(sys))
        json_array_append(upto, sys);
    json_t *m;
    json_array_foreach(json_object_get(request, "messages"), i, m) {
        json_t *c = json_object_get(m, "content");
        if (!json_is_array(c)) {
            json_array_append(upto, c);
            continue;
        }
        json_array_foreach(c, j, b) {
            json_array_append(upto, b);
            if (json_object_get(b, "cache_control")) {
                marked = true;
                json_array_extend(parts, upto);
                json_array_clear(upto);
            }
        }
    }
    char *text = marked ? json_dumps(parts, JSON_COMPACT) : NULL;
    json_decref(parts);
    json_decref(upto);
    return text;
}

static struct {
    pthread_mutex_t mu;            /* guards the table */
    uint64_t keys[4096];           /* prefixes written (open addressing, 0 empty) */
} C = { .mu = PTHREAD_MUTEX_INITIALIZER };

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h ? h : 1;
}

/* Whether prefix key h was written; with add, writes it. */
static bool cache_has(uint64_t h, bool add)
{
    pthread_mutex_lock(&C.mu);
    size_t i = h % 4096;
    bool found = false;
    for (size_t k = 0; k < 4096; k++, i = (i + 1) % 4096) {
        if (C.keys[i] == h) { found = true; break; }
        if (!C.keys[i]) {
            if (add)
                C.keys[i] = h;
            break;
        }
    }
    pthread_mutex_unlock(&C.mu);
    return found;
}

/* After an answer was sent: its prefix is in the cache for later requests. */
static void cache_remember(json_t *request)
{
    char *p = cache_prefix(request);
    if (p && strlen(p) / 4 >= (size_t)S.cache_min)
        cache_has(fnv(p), true);
    free(p);
}

/* What a request reads from and writes to the cache, in tokens. */
typedef struct cache_use {
    json_int_t read, write;        /* cache_read_input_tokens, cache_creation_input_tokens */
    json_int_t rest;               /* input_tokens: the prompt's other tokens (--cache-min) */
} cache_use;

/* The cache's part of an Anthropic request, decided once (the log and the
 * usage say the same). */
static cache_use cache_lookup(json_t *request)
{
    cache_use u = { 0, 0, 100 };
    char *p = request ? cache_prefix(request) : NULL;
    json_int_t pt = p ? (json_int_t)(strlen(p) / 4) : 0;
    if (p && pt >= S.cache_min) {
        if (cache_has(fnv(p), false))
            u.read = pt;
        else
            u.write = pt;
    }
    free(p);
    if (S.cache_min > 0) {         /* the whole prompt, bytes / 4, less the cache's part */
        json_t *all = json_pack("[O?, O?, O?, O?, O?]", json_object_get(request, "model"),
                                json_object_get(request, "tools"),
                                json_object_get(request, "output_config"),
                                json_object_get(request, "system"),
                                json_object_get(request, "messages"));
        char *t = all ? json_dumps(all, JSON_COMPACT) : NULL;
        json_int_t n = t ? (json_int_t)(strlen(t) / 4) : 0;
        u.rest = n > u.read + u.write ? n - u.read - u.write : 1;
        free(t);
        json_decref(all);
    }
    return u;
}

/* usage as Anthropic reports it: input_tokens excludes the cache's. */
static json_t *anthropic_usage(const cache_use *u)
{
    return json_pack("{s:i, s:i, s:i, s:i}", "input_tokens", u->rest,
                     "output_tokens", (json_int_t)20, "cache_read_input_tokens", u->read,
                     "cache_creation_input_tokens", u->write);
}

/* ---- --usage count | max: usage from the request ------------------------- */

/* flowc's token approximation (compiler/estimate.c est_tokens): a run of
 * letters and digits is a token per 4 characters, a run of other symbols a
 * token per 2, white space is free. */
static bool tok_word(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

static bool tok_space(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

static long count_tokens(const char *s)
{
    long t = 0;
    size_t n = s ? strlen(s) : 0, i = 0;
    while (i < n) {
        size_t j = i;
        if (tok_space((unsigned char)s[i])) {
            while (j < n && tok_space((unsigned char)s[j]))
                j++;
        } else if (tok_word((unsigned char)s[i])) {
            while (j < n && tok_word((unsigned char)s[j]))
                j++;
            t += (long)((j - i + 3) / 4);
        } else {
            while (j < n && !tok_space((unsigned char)s[j]) && !tok_word((unsigned char)s[j]))
                j++;
            t += (long)((j - i + 1) / 2);
        }
        i = j;
    }
    return t;
}

static long json_tokens(json_t *v)
{
    if (!v)
        return 0;
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    long t = count_tokens(s);
    free(s);
    return t;
}

/* A message's content: a string, or blocks whose text counts. */
static long content_tokens(json_t *c)
{
    if (json_is_string(c))
        return count_tokens(json_string_value(c));
    long t = 0;
    size_t i;
    json_t *b;
    json_array_foreach(c, i, b) {
        json_t *text = json_object_get(b, "text");
        json_t *res = json_object_get(b, "content");    /* a tool_result's */
        t += text ? count_tokens(json_string_value(text))
             : res ? content_tokens(res) : json_tokens(json_object_get(b, "input"));
    }
    return t;
}

/* An OpenAI message's tool calls: their names and arguments as written. */
static long calls_tokens(json_t *calls)
{
    long t = 0;
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        json_t *fn = json_object_get(c, "function");
        t += 4 + count_tokens(json_string_value(json_object_get(fn, "name")))
             + count_tokens(json_string_value(json_object_get(fn, "arguments")));
    }
    return t;
}

/* Input tokens of a request: its system, its turns (4 a message) and the
 * answer's schema wherever the wire format puts it. */
static long approx_input_tokens(json_t *rq)
{
    long t = 0;
    size_t i;
    json_t *m;
    json_t *sys = json_object_get(rq, "system");
    if (sys)
        t += 4 + content_tokens(sys);
    json_array_foreach(json_object_get(rq, "messages"), i, m)
        t += 4 + content_tokens(json_object_get(m, "content"))
             + calls_tokens(json_object_get(m, "tool_calls"));
    json_array_foreach(json_object_get(rq, "tools"), i, m) {
        json_t *fn = json_object_get(m, "function");
        t += json_tokens(json_object_get(m, "input_schema"))
             + json_tokens(json_object_get(fn, "parameters"))
             + count_tokens(json_string_value(json_object_get(fn ? fn : m, "description")));
    }
    t += json_tokens(json_object_get(json_object_get(json_object_get(rq, "output_config"),
                                                     "format"), "schema"));
    t += json_tokens(json_object_get(json_object_get(json_object_get(rq, "response_format"),
                                                     "json_schema"), "schema"));
    return t;
}

/* The answer's usage as --usage asks: counted, or the output at its cap. */
static void set_usage(json_t *out, json_t *rq, bool anthropic)
{
    json_t *u = json_object_get(out, "usage");
    if (!S.usage_mode || !u)
        return;
    long in = approx_input_tokens(rq), o;
    if (S.usage_mode == 2) {
        json_t *mt = json_object_get(rq, "max_tokens");
        if (!mt)
            mt = json_object_get(rq, "max_completion_tokens");
        o = (long)json_integer_value(mt);
    } else if (anthropic) {
        o = content_tokens(json_object_get(out, "content"));
    } else {
        json_t *msg = json_object_get(json_array_get(json_object_get(out, "choices"), 0),
                                      "message");
        o = count_tokens(json_string_value(json_object_get(msg, "content")))
            + calls_tokens(json_object_get(msg, "tool_calls"));
    }
    if (anthropic) {
        json_object_set_new(u, "input_tokens", json_integer(in));
        json_object_set_new(u, "output_tokens", json_integer(o));
        json_object_set_new(u, "cache_read_input_tokens", json_integer(0));
        json_object_set_new(u, "cache_creation_input_tokens", json_integer(0));
    } else {
        json_object_set_new(u, "prompt_tokens", json_integer(in));
        json_object_set_new(u, "completion_tokens", json_integer(o));
        json_object_set_new(u, "total_tokens", json_integer(in + o));
        json_object_set_new(u, "prompt_tokens_details", json_pack("{s:i}", "cached_tokens", 0));
    }
}

/* ---- a model that uses tools ----------------------------------------------- */

/* The schema a json_object or prompt-mode request carries in its system
 * text, as a flag: such a request answers in text whatever tools it has. */
static bool schema_in_system(json_t *request, bool anthropic);
static json_t *schema_in_text(json_t *request, bool anthropic);
static const char *strict_bad(json_t *s, bool anthropic, int depth);
static const char *strict_unrequired(json_t *s, int depth);

/* The tool that carries the answer (Anthropic's tool mode: the forced
 * tool, else the last of a request without output_config), or NULL. */
static const char *answer_tool(json_t *rq, bool anthropic)
{
    if (!anthropic)
        return NULL;
    json_t *tc = json_object_get(rq, "tool_choice");
    const char *type = json_string_value(json_object_get(tc, "type"));
    if (type && strcmp(type, "tool") == 0)
        return json_string_value(json_object_get(tc, "name"));
    json_t *tools = json_object_get(rq, "tools");
    if (json_object_get(rq, "output_config") || schema_in_system(rq, true) ||
        json_array_size(tools) == 0)
        return NULL;
    return json_string_value(json_object_get(json_array_get(tools, json_array_size(tools) - 1),
                                             "name"));
}

/* A declared tool's name and input schema, whatever the wire. */
static const char *tool_name(json_t *t, json_t **schema)
{
    json_t *fn = json_object_get(t, "function");
    if (schema)
        *schema = fn ? json_object_get(fn, "parameters") : json_object_get(t, "input_schema");
    return json_string_value(json_object_get(fn ? fn : t, "name"));
}

/* Whether name is a declared tool. */
static bool declared(json_t *rq, const char *name)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(rq, "tools"), i, t) {
        const char *n = tool_name(t, NULL);
        if (n && name && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

/* The turns with tool calls so far. */
static int rounds_so_far(json_t *rq, bool anthropic)
{
    int n = 0;
    size_t i, j;
    json_t *m, *b;
    json_array_foreach(json_object_get(rq, "messages"), i, m) {
        if (strcmp(json_string_value(json_object_get(m, "role")) ?: "", "assistant") != 0)
            continue;
        if (!anthropic) {
            n += json_array_size(json_object_get(m, "tool_calls")) > 0;
            continue;
        }
        bool uses = false;
        json_array_foreach(json_object_get(m, "content"), j, b)
            uses |= strcmp(json_string_value(json_object_get(b, "type")) ?: "", "tool_use") == 0;
        n += uses;
    }
    return n;
}

/* The results the request ends with (the last user turn's tool_result
 * blocks, or the tool messages after the last assistant one), and how many
 * of them are errors. */
static void last_results(json_t *rq, bool anthropic, int *n, int *errors)
{
    json_t *msgs = json_object_get(rq, "messages");
    *n = *errors = 0;
    for (size_t k = json_array_size(msgs); k-- > 0;) {
        json_t *m = json_array_get(msgs, k);
        const char *role = json_string_value(json_object_get(m, "role")) ?: "";
        if (!anthropic) {
            if (strcmp(role, "tool") != 0)
                break;
            (*n)++;
            *errors += strncmp(json_string_value(json_object_get(m, "content")) ?: "",
                               "Error:", 6) == 0;
            continue;
        }
        size_t j;
        json_t *b;
        json_array_foreach(json_object_get(m, "content"), j, b) {
            if (strcmp(json_string_value(json_object_get(b, "type")) ?: "", "tool_result") != 0)
                continue;
            (*n)++;
            *errors += json_is_true(json_object_get(b, "is_error"));
        }
        if (strcmp(role, "user") == 0 && *n)
            break;
        if (strcmp(role, "assistant") == 0)
            break;
    }
}

/* A tool name the providers take: ^[a-zA-Z0-9_-]{1,64}$. */
static bool good_tool_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= 64 && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_-") == n;
}

/* The declared tools, as the providers check them: good unique names, an
 * object schema each; OpenAI's strict functions in the strict subset. */
static const char *tools_bad(json_t *rq, bool anthropic, char *buf, size_t cap)
{
    json_t *tools = json_object_get(rq, "tools");
    for (size_t i = 0; i < json_array_size(tools); i++) {
        json_t *t = json_array_get(tools, i), *schema;
        const char *name = tool_name(t, &schema);
        if (!anthropic && strcmp(json_string_value(json_object_get(t, "type")) ?: "", "function")) {
            snprintf(buf, cap, "Invalid value for 'tools[%zu].type': expected 'function'.", i);
            return buf;
        }
        if (!good_tool_name(name)) {
            snprintf(buf, cap, anthropic ? "tools.%zu.custom.name: String should match pattern "
                     "'^[a-zA-Z0-9_-]{1,64}$'" : "Invalid 'tools[%zu].function.name': string "
                     "does not match pattern. Expected a string that matches the pattern "
                     "'^[a-zA-Z0-9_-]+$'.", i);
            return buf;
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(tool_name(json_array_get(tools, k), NULL) ?: "", name) == 0) {
                snprintf(buf, cap, anthropic ? "tools: Tool names must be unique."
                         : "Invalid 'tools': duplicate function name '%s'.", name);
                return buf;
            }
        if (strcmp(type_of(schema), "object") != 0) {
            if (anthropic)
                snprintf(buf, cap, "tools.%zu.custom.input_schema.type: Input should be "
                         "'object'", i);
            else
                snprintf(buf, cap, "Invalid schema for function '%s': schema must be a JSON "
                         "Schema of 'type: \"object\"'.", name);
            return buf;
        }
        json_t *fn = json_object_get(t, "function");
        const char *bad = !anthropic && json_is_true(json_object_get(fn, "strict"))
                          ? strict_bad(schema, false, 0) : NULL;
        if (bad) {
            snprintf(buf, cap, "Invalid schema for function '%s': In context=(), '%s' is not "
                     "permitted.", name, bad);
            return buf;
        }
        bad = !anthropic && json_is_true(json_object_get(fn, "strict"))
              ? strict_unrequired(schema, 0) : NULL;
        if (bad) {
            snprintf(buf, cap, "Invalid schema for function '%s': In context=(), 'required' is "
                     "required to be supplied and to be an array including every key in "
                     "properties. Missing '%s'.", name, bad);
            return buf;
        }
    }
    json_t *tc = json_object_get(rq, "tool_choice");
    const char *forced = anthropic
        ? (strcmp(json_string_value(json_object_get(tc, "type")) ?: "", "tool") == 0
           ? json_string_value(json_object_get(tc, "name")) : NULL)
        : json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    const char *tct = anthropic ? json_string_value(json_object_get(tc, "type"))
                                : json_string_value(tc);
    if (tc && anthropic && (!tct || (strcmp(tct, "auto") && strcmp(tct, "any") &&
                                     strcmp(tct, "tool") && strcmp(tct, "none"))))
        return "tool_choice: Input tag does not match any of the expected tags: 'auto', 'any', "
               "'tool', 'none'";
    if (tc && !anthropic && json_is_string(tc) && strcmp(tct, "none") && strcmp(tct, "auto") &&
        strcmp(tct, "required"))
        return "Invalid value for 'tool_choice': expected one of 'none', 'auto', 'required', or "
               "an object naming a function.";
    if (!anthropic && json_object_get(rq, "parallel_tool_calls") && !json_object_get(rq, "tools"))
        return "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is only allowed "
               "when 'tools' are specified.";
    if (tc && !json_object_get(rq, "tools") && !(json_is_string(tc) &&
                                                 strcmp(json_string_value(tc), "none") == 0))
        return anthropic ? "tool_choice may only be specified while providing tools"
                         : "Invalid value for 'tool_choice': 'tool_choice' is only allowed "
                           "when 'tools' are specified.";
    if (forced && !declared(rq, forced)) {
        snprintf(buf, cap, anthropic ? "tool_choice.name: tool '%s' is not among the tools"
                 : "Invalid value for 'tool_choice': function '%s' not found in 'tools'.",
                 forced);
        return buf;
    }
    return NULL;
}

/* Anthropic: every tool_use of an assistant turn answered by a tool_result
 * at the start of the next user turn, no tool_result but for a tool_use of
 * the turn before, tool names among the declared tools, and tools declared
 * at all when the history has either. */
static const char *anthropic_history_bad(json_t *rq, char *buf, size_t cap)
{
    json_t *msgs = json_object_get(rq, "messages");
    bool tools = json_array_size(json_object_get(rq, "tools")) > 0;
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i), *b, *c = json_object_get(m, "content");
        const char *role = json_string_value(json_object_get(m, "role")) ?: "";
        json_t *prev = i ? json_array_get(msgs, i - 1) : NULL;
        size_t j;
        bool text_seen = false;
        json_array_foreach(c, j, b) {
            const char *type = json_string_value(json_object_get(b, "type")) ?: "";
            if (strcmp(type, "text") == 0)
                text_seen = true;
            bool use = strcmp(type, "tool_use") == 0, res = strcmp(type, "tool_result") == 0;
            if ((use || res) && !tools)
                return "Requests which include `tool_use` or `tool_result` blocks must define "
                       "tools.";
            if (use && !json_is_string(json_object_get(b, "id"))) {
                snprintf(buf, cap, "messages.%zu.content.%zu.tool_use.id: Field required", i, j);
                return buf;
            }
            if (use && !json_is_object(json_object_get(b, "input"))) {
                snprintf(buf, cap, "messages.%zu.content.%zu.tool_use.input: Input should be a "
                         "valid dictionary", i, j);
                return buf;
            }
            json_t *rc = res ? json_object_get(b, "content") : NULL;
            if (rc && !json_is_string(rc) && !json_is_array(rc)) {
                snprintf(buf, cap, "messages.%zu.content.%zu.tool_result.content: Input should be "
                         "a valid string or a list of content blocks", i, j);
                return buf;
            }
            if (use && strcmp(role, "assistant") == 0 &&
                !declared(rq, json_string_value(json_object_get(b, "name")))) {
                snprintf(buf, cap, "messages.%zu.content.%zu: tool_use name '%s' is not one of "
                         "the tools", i, j, json_string_value(json_object_get(b, "name")) ?: "");
                return buf;
            }
            if (!res)
                continue;
            if (text_seen) {
                snprintf(buf, cap, "messages.%zu.content.%zu: tool_result blocks must come "
                         "first in the content of a user turn, before any text", i, j);
                return buf;
            }
            if (json_object_get(b, "is_error") && !json_is_boolean(json_object_get(b, "is_error"))) {
                snprintf(buf, cap, "messages.%zu.content.%zu.is_error: Input should be a valid "
                         "boolean", i, j);
                return buf;
            }
            const char *id = json_string_value(json_object_get(b, "tool_use_id")) ?: "";
            bool found = false;
            size_t k;
            json_t *pb;
            json_array_foreach(json_object_get(prev, "content"), k, pb)
                found |= strcmp(json_string_value(json_object_get(pb, "id")) ?: "", id) == 0
                         && strcmp(json_string_value(json_object_get(prev, "role")) ?: "",
                                   "assistant") == 0;
            if (!found) {
                snprintf(buf, cap, "messages.%zu.content.%zu: unexpected `tool_use_id` found in "
                         "`tool_result` blocks: %s. Each `tool_result` block must have a "
                         "corresponding `tool_use` block in the previous message.", i, j, id);
                return buf;
            }
        }
        if (strcmp(role, "assistant") != 0)
            continue;
        json_t *next = json_array_get(msgs, i + 1);
        json_array_foreach(c, j, b) {
            if (strcmp(json_string_value(json_object_get(b, "type")) ?: "", "tool_use") != 0)
                continue;
            const char *id = json_string_value(json_object_get(b, "id")) ?: "";
            bool answered = false;
            size_t k;
            json_t *nb;
            json_array_foreach(json_object_get(next, "content"), k, nb)
                answered |= strcmp(json_string_value(json_object_get(nb, "tool_use_id")) ?: "",
                                   id) == 0;
            if (!answered) {
                snprintf(buf, cap, "messages.%zu: `tool_use` ids were found without "
                         "`tool_result` blocks immediately after: %s. Each `tool_use` block "
                         "must have a corresponding `tool_result` block in the next message.",
                         i, id);
                return buf;
            }
        }
    }
    return NULL;
}

/* OpenAI: an assistant message with tool_calls followed by a tool message
 * for each of its ids, and no tool message but for one of them; called
 * functions among the declared tools. */
static const char *openai_history_bad(json_t *rq, char *buf, size_t cap)
{
    json_t *msgs = json_object_get(rq, "messages");
    json_t *open = NULL;                         /* the calls awaiting their results */
    for (size_t i = 0; i < json_array_size(msgs); i++) {
        json_t *m = json_array_get(msgs, i);
        const char *role = json_string_value(json_object_get(m, "role")) ?: "";
        if (strcmp(role, "tool") == 0) {
            json_t *tcn = json_object_get(m, "content");
            if (!json_is_string(tcn) && !json_is_array(tcn)) {
                json_decref(open);
                snprintf(buf, cap, "Invalid type for 'messages[%zu].content': expected one of a "
                         "string or array of objects.", i);
                return buf;
            }
            const char *id = json_string_value(json_object_get(m, "tool_call_id")) ?: "";
            bool found = false;
            size_t k;
            json_t *c;
            json_array_foreach(open, k, c)
                if (json_is_string(c) && strcmp(json_string_value(c), id) == 0) {
                    found = true;
                    json_array_set_new(open, k, json_null());
                }
            if (!found) {
                json_decref(open);
                snprintf(buf, cap, "Invalid parameter: messages with role 'tool' must be a "
                         "response to a preceeding message with 'tool_calls'. (messages[%zu], "
                         "tool_call_id '%s')", i, id);
                return buf;
            }
            continue;
        }
        size_t k;
        json_t *c;
        json_array_foreach(open, k, c)
            if (json_is_string(c)) {
                snprintf(buf, cap, "An assistant message with 'tool_calls' must be followed by "
                         "tool messages responding to each 'tool_call_id'. The following "
                         "tool_call_ids did not have response messages: %s", json_string_value(c));
                json_decref(open);
                return buf;
            }
        json_decref(open);
        open = NULL;
        json_t *calls = json_object_get(m, "tool_calls");
        if (strcmp(role, "assistant") != 0 || !json_array_size(calls))
            continue;
        open = json_array();
        json_array_foreach(calls, k, c) {
            json_t *fn = json_object_get(c, "function");
            if (strcmp(json_string_value(json_object_get(c, "type")) ?: "", "function") != 0 ||
                !json_is_string(json_object_get(c, "id"))) {
                json_decref(open);
                snprintf(buf, cap, "Missing required parameter: 'messages[%zu].tool_calls[%zu].%s'.",
                         i, k, json_is_string(json_object_get(c, "id")) ? "type" : "id");
                return buf;
            }
            if (!json_is_string(json_object_get(fn, "arguments"))) {
                json_decref(open);
                snprintf(buf, cap, "Invalid type for 'messages[%zu].tool_calls[%zu].function."
                         "arguments': expected a string.", i, k);
                return buf;
            }
            if (!declared(rq, json_string_value(json_object_get(fn, "name")))) {
                json_decref(open);
                snprintf(buf, cap, "messages[%zu].tool_calls[%zu]: function '%s' is not one "
                         "of the tools", i, k, json_string_value(json_object_get(fn, "name")) ?: "");
                return buf;
            }
            json_array_append(open, json_object_get(c, "id"));
        }
    }
    size_t k;
    json_t *c;
    json_array_foreach(open, k, c)
        if (json_is_string(c)) {
            snprintf(buf, cap, "An assistant message with 'tool_calls' must be followed by tool "
                     "messages responding to each 'tool_call_id'. The following tool_call_ids "
                     "did not have response messages: %s", json_string_value(c));
            json_decref(open);
            return buf;
        }
    json_decref(open);
    return NULL;
}

/* Whether the request lets the model call tools now: tools besides the
 * answer's, and tool_choice not none (nor a forced answer tool). */
static bool may_call(json_t *rq, bool anthropic)
{
    json_t *tc = json_object_get(rq, "tool_choice");
    const char *t = anthropic ? json_string_value(json_object_get(tc, "type"))
                              : json_string_value(tc);
    if (t && (strcmp(t, "none") == 0 || (anthropic && strcmp(t, "tool") == 0)))
        return false;
    size_t n = json_array_size(json_object_get(rq, "tools"));
    return n > (answer_tool(rq, anthropic) ? 1u : 0u);
}

/* The calls of this turn under rule `tools` (calls=N rounds=R bad=... args={..}{..}):
 * [{id, name, input}], or NULL when the model answers instead (its rounds
 * are done, or it may not call). */
static json_t *make_calls(json_t *rq, bool anthropic, const rule *ru, long n)
{
    int done = rounds_so_far(rq, anthropic);
    if (done >= ru->tool_rounds || !may_call(rq, anthropic))
        return NULL;
    json_t *tools = json_object_get(rq, "tools");
    size_t nt = json_array_size(tools) - (answer_tool(rq, anthropic) ? 1 : 0);
    json_t *args = json_array();                 /* args={...}{...}: objects back to back */
    for (const char *p = ru->tool_args; *p == '{';) {
        json_error_t je;
        json_t *o = json_loads(p, JSON_DISABLE_EOF_CHECK, &je);
        if (!o)
            break;
        json_array_append_new(args, o);
        p += je.position;
    }
    json_t *calls = json_array();
    for (int k = 0; k < ru->tool_calls; k++) {
        json_t *t = json_array_get(tools, (size_t)k % nt), *schema;
        for (size_t i = 0; ru->tool_only[0] && i < nt; i++)
            if (strcmp(tool_name(json_array_get(tools, i), NULL) ?: "", ru->tool_only) == 0)
                t = json_array_get(tools, i);
        const char *name = tool_name(t, &schema);
        size_t g = (size_t)done * (size_t)ru->tool_calls + (size_t)k;
        json_t *in = json_array_size(args) ? json_deep_copy(json_array_get(args,
                                                                           g % json_array_size(args)))
                                           : synth(schema, schema, 0);
        if (k == 0 && strcmp(ru->tool_bad, "missing") == 0) {
            const char *req0 = json_string_value(json_array_get(json_object_get(schema,
                                                                               "required"), 0));
            if (req0)
                json_object_del(in, req0);
        } else if (k == 0 && strcmp(ru->tool_bad, "type") == 0) {
            const char *key;
            json_t *v;
            json_object_foreach(in, key, v) {
                json_object_set_new(in, key, json_is_string(v) ? json_integer(12345)
                                                               : json_string("twelve"));
                break;
            }
        } else if (k == 0 && strcmp(ru->tool_bad, "name") == 0) {
            name = "no_such_tool";
        }
        char id[64];
        snprintf(id, sizeof id, "%s_%ld_%d", anthropic ? "toolu" : "call", n, k);
        json_array_append_new(calls, json_pack("{s:s, s:s, s:o}", "id", id, "name", name ?: "",
                                               "input", in ? in : json_object()));
    }
    json_decref(args);
    return calls;
}

static json_t *anthropic_calls(json_t *request, json_t *calls)
{
    json_t *content = json_pack("[{s:s, s:s}]", "type", "text", "text",
                                "Let me look that up.");
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
        json_array_append_new(content, json_pack("{s:s, s:O, s:O, s:O}", "type", "tool_use",
                                                 "id", json_object_get(c, "id"), "name",
                                                 json_object_get(c, "name"), "input",
                                                 json_object_get(c, "input")));
    return json_pack("{s:s, s:s, s:s, s:O?, s:o, s:s, s:n, s:{s:i, s:i}}",
                     "id", "msg_fake", "type", "message", "role", "assistant",
                     "model", json_object_get(request, "model"), "content", content,
                     "stop_reason", "tool_use", "stop_sequence", "usage", "input_tokens", 100,
                     "output_tokens", 20);
}

static json_t *openai_calls(json_t *request, json_t *calls)
{
    json_t *tc = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        char *args = json_dumps(json_object_get(c, "input"), JSON_COMPACT);
        json_array_append_new(tc, json_pack("{s:O, s:s, s:{s:O, s:s}}", "id",
                                            json_object_get(c, "id"), "type", "function",
                                            "function", "name", json_object_get(c, "name"),
                                            "arguments", args ? args : "{}"));
        free(args);
    }
    return json_pack("{s:s, s:s, s:i, s:O?, s:[{s:i, s:{s:s, s:n, s:o, s:n}, s:s}], "
                     "s:{s:i, s:i, s:i, s:{s:i}}}",
                     "id", "chatcmpl-fake", "object", "chat.completion", "created", 0,
                     "model", json_object_get(request, "model"),
                     "choices", "index", 0, "message", "role", "assistant", "content",
                     "tool_calls", tc, "refusal", "finish_reason", "tool_calls",
                     "usage", "prompt_tokens", 130, "completion_tokens", 20,
                     "total_tokens", 150, "prompt_tokens_details", "cached_tokens", 30);
}

/* ---- what providers reject with a 400 -------------------------------------- */

/* Current Claude models (the 5 generation and later) take neither a forced
 * tool choice nor a temperature other than 1. */
static bool claude_current(json_t *request)
{
    const char *m = json_string_value(json_object_get(request, "model"));
    if (!m || strncmp(m, "claude-", 7) != 0)
        return false;
    /* the major version: the first number of the name, whichever scheme
     * (claude-3-5-haiku-20241022 is a 3, claude-sonnet-4-5 a 4) */
    m += strcspn(m, "0123456789");
    return atoi(m) >= 5;
}

/* OpenAI reasoning models: no temperature, max_completion_tokens only. */
static bool openai_reasoning(json_t *request)
{
    const char *m = json_string_value(json_object_get(request, "model"));
    return m && (strncmp(m, "gpt-5", 5) == 0 || strncmp(m, "gpt-6", 5) == 0 ||
                 (m[0] == 'o' && isdigit((unsigned char)m[1])));
}

/* A keyword outside the documented subset of output_config.format, or NULL.
 * The subset (anthropic-sdk-python lib/_parse/_transform.py): no numeric or
 * length keywords, minItems only 0 or 1, objects closed. */
static const char *strict_bad(json_t *s, bool anthropic, int depth)
{
    if (!json_is_object(s) || depth > 64)
        return NULL;
    static const char *const never[] = { "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "maxItems", NULL };
    static const char *const openai_never[] = { "minLength", "maxLength", NULL };
    for (const char *const *k = anthropic ? never : openai_never; *k; k++)
        if (json_object_get(s, *k))
            return *k;
    json_t *mi = json_object_get(s, "minItems");
    if (anthropic && mi && json_integer_value(mi) > 1)
        return "minItems";
    const char *type = json_string_value(json_object_get(s, "type"));
    if (type && strcmp(type, "object") == 0 &&
        !json_is_false(json_object_get(s, "additionalProperties")))
        return "additionalProperties";
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(s, "properties"), key, v) {
        const char *b = strict_bad(v, anthropic, depth + 1);
        if (b)
            return b;
    }
    const char *b = strict_bad(json_object_get(s, "items"), anthropic, depth + 1);
    size_t i;
    json_array_foreach(json_object_get(s, "anyOf"), i, v)
        if (!b)
            b = strict_bad(v, anthropic, depth + 1);
    return b;
}

/* OpenAI's strict mode: every object lists all its properties in required
 * (an optional one is a union with null).  The first property left out, at
 * any depth, or NULL. */
static const char *strict_unrequired(json_t *s, int depth)
{
    if (!json_is_object(s) || depth > 64)
        return NULL;
    const char *key, *b = NULL;
    json_t *v, *listed_keys = json_object_get(s, "required");
    json_object_foreach(json_object_get(s, "properties"), key, v) {
        bool listed = false;
        size_t i;
        json_t *r;
        json_array_foreach(listed_keys, i, r)
            listed |= json_is_string(r) && strcmp(json_string_value(r), key) == 0;
        if (!listed)
            return key;
        if (!b)
            b = strict_unrequired(v, depth + 1);
    }
    if (!b)
        b = strict_unrequired(json_object_get(s, "items"), depth + 1);
    size_t i;
    json_array_foreach(json_object_get(s, "anyOf"), i, v)
        if (!b)
            b = strict_unrequired(v, depth + 1);
    return b;
}

/* Whether any message has an empty or white-space-only text. */
static bool blank_turn(json_t *request)
{
    size_t i, j;
    json_t *m, *b;
    json_array_foreach(json_object_get(request, "messages"), i, m) {
        json_t *c = json_object_get(m, "content");
        const char *t = json_string_value(c);
        if (t && !t[strspn(t, " \t\r\n")])
            return true;
        json_array_foreach(c, j, b) {
            t = json_string_value(json_object_get(b, "text"));
            if (t && !t[strspn(t, " \t\r\n")])
                return true;
        }
    }
    return false;
}

/* Anthropic takes only property names matching ^[a-zA-Z0-9_.-]{1,64}$ in a
 * tool's input_schema (it answers 400 "Property keys should match pattern"):
 * whether schema s, at any depth, has another. */
static bool bad_property_key(json_t *s)
{
    if (json_is_array(s)) {
        for (size_t i = 0; i < json_array_size(s); i++)
            if (bad_property_key(json_array_get(s, i)))
                return true;
        return false;
    }
    if (!json_is_object(s))
        return false;
    const char *k;
    json_t *v;
    json_t *props = json_object_get(s, "properties");
    json_object_foreach(props, k, v) {
        size_t n = strlen(k);
        if (n == 0 || n > 64 || strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_.-") != n)
            return true;
        if (bad_property_key(v))
            return true;
    }
    return bad_property_key(json_object_get(s, "items"))
        || bad_property_key(json_object_get(s, "anyOf"));
}

/* The 400 message a provider gives this request, or NULL. */
static const char *rejected(json_t *request, bool anthropic, char *buf, size_t cap)
{
    if (anthropic) {
        const char *tc = json_string_value(
            json_object_get(json_object_get(request, "tool_choice"), "type"));
        json_t *t = json_object_get(request, "temperature");
        if (claude_current(request) && tc && (strcmp(tc, "tool") == 0 || strcmp(tc, "any") == 0))
            return "tool_choice: forced tool use is not supported for this model; use "
                   "output_config.format for structured outputs";
        if (claude_current(request) && t && json_number_value(t) != 1.0)
            return "temperature: this model only supports the default sampling parameters";
        json_t *oc = json_object_get(json_object_get(json_object_get(request, "output_config"),
                                                     "format"), "schema");
        const char *bad = oc ? strict_bad(oc, true, 0) : NULL;
        if (bad) {
            snprintf(buf, cap, "output_config.format.schema: '%s' is not supported in "
                     "structured outputs", bad);
            return buf;
        }
        json_t *tools = json_object_get(request, "tools");
        for (size_t i = 0; i < json_array_size(tools); i++) {
            if (bad_property_key(json_object_get(json_array_get(tools, i), "input_schema"))) {
                snprintf(buf, cap, "tools.%zu.custom.input_schema.properties: Property keys "
                         "should match pattern '^[a-zA-Z0-9_.-]{1,64}$'", i);
                return buf;
            }
        }
        if (oc && bad_property_key(oc))
            return "output_config.format.schema.properties: Property keys should match "
                   "pattern '^[a-zA-Z0-9_.-]{1,64}$'";
        const char *tb = tools_bad(request, true, buf, cap);
        if (!tb)
            tb = anthropic_history_bad(request, buf, cap);
        if (tb)
            return tb;
        if (blank_turn(request))
            return "messages: text content blocks must contain non-whitespace text";
        if (!json_is_integer(json_object_get(request, "max_tokens")))
            return "max_tokens: Field required";
        return NULL;
    }
    const char *rf_type = json_string_value(json_object_get(json_object_get(request,
                                                                            "response_format"),
                                                            "type"));
    if (rf_type && S.no_response_format) {
        snprintf(buf, cap, "response_format of type '%s' is not supported by this server", rf_type);
        return buf;
    }
    if (rf_type && S.no_json_schema && strcmp(rf_type, "json_schema") == 0)
        return "response_format.type: 'json_schema' is not supported; use 'json_object' or 'text'";
    if (openai_reasoning(request) && json_object_get(request, "max_tokens"))
        return "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
               "'max_completion_tokens' instead.";
    if (openai_reasoning(request) && json_object_get(request, "temperature"))
        return "Unsupported parameter: 'temperature' is not supported with this model.";
    const char *tb = tools_bad(request, false, buf, cap);
    if (!tb)
        tb = openai_history_bad(request, buf, cap);
    if (tb)
        return tb;
    json_t *rf = json_object_get(request, "response_format");
    json_t *js = json_object_get(rf, "json_schema");
    if (js && !good_tool_name(json_string_value(json_object_get(js, "name")))) {
        /* openai-python's JSONSchema.name: a-z, A-Z, 0-9, '_' and '-', at most 64 */
        return "Invalid 'response_format.json_schema.name': string does not match pattern. "
               "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.";
    }
    if (json_is_true(json_object_get(js, "strict"))) {
        const char *bad = strict_bad(json_object_get(js, "schema"), false, 0);
        if (bad) {
            snprintf(buf, cap, "Invalid schema for response_format '%s': '%s' is not "
                     "permitted.", json_string_value(json_object_get(js, "name")) ?: "",
                     bad);
            return buf;
        }
        bad = strict_unrequired(json_object_get(js, "schema"), 0);
        if (bad) {
            snprintf(buf, cap, "Invalid schema for response_format '%s': In context=(), "
                     "'required' is required to be supplied and to be an array including "
                     "every key in properties. Missing '%s'.",
                     json_string_value(json_object_get(js, "name")) ?: "", bad);
            return buf;
        }
    }
    return NULL;
}

static json_t *anthropic_answer(const char *action, json_t *request, json_t *value,
                               const char *refusal, const cache_use *cu)
{
    const char *name = answer_tool(request, true);
    json_t *tools = name ? json_object_get(request, "tools") : NULL;
    char *json = json_dumps(value, JSON_COMPACT);
    char *text = answer_text(action, json);
    const char *stop = "tool_use";
    json_t *content;
    if (strncmp(action, "refusal", 7) == 0) {
        stop = "refusal";
        content = json_pack("[{s:s, s:s}]", "type", "text", "text", refusal);
    } else if (strcmp(action, "truncate") == 0 && !tools) {
        stop = "max_tokens";
        content = json_pack("[{s:s, s:s%}]", "type", "text", "text", json, strlen(json) / 2);
    } else if (strcmp(action, "truncate") == 0) {
        stop = "max_tokens";
        content = json_pack("[{s:s, s:s, s:s, s:{}}]", "type", "tool_use", "id", "toolu_1",
                            "name", name ? name : "answer", "input");
    } else if (text || !tools) {
        stop = "end_turn";
        content = json_pack("[{s:s, s:s}]", "type", "text", "text", text ? text : json);
    } else if (0) {
        stop = "end_turn";
        content = json_pack("[{s:s, s:s}]", "type", "text", "text", text);
    } else {
        content = json_pack("[{s:s, s:s, s:s, s:O}]", "type", "tool_use", "id", "toolu_1",
                            "name", name ? name : "answer", "input", value);
    }
    free(json);
    free(text);
    json_t *a = json_pack("{s:s, s:s, s:s, s:O?, s:o, s:s, s:n}",
                          "id", "msg_fake", "type", "message", "role", "assistant",
                          "model", json_object_get(request, "model"), "content", content,
                          "stop_reason", stop, "stop_sequence");
    if (strcmp(action, "no-usage") != 0)
        json_object_set_new(a, "usage", anthropic_usage(cu));
    return a;
}

static json_t *openai_answer(const char *action, json_t *request, json_t *value,
                             const char *refusal)
{
    char *json = json_dumps(value, JSON_COMPACT);
    char *text = answer_text(action, json);
    const char *finish = strcmp(action, "truncate") == 0 ? "length" : "stop";
    json_t *msg;
    if (strncmp(action, "refusal", 7) == 0)
        msg = json_pack("{s:s, s:n, s:s}", "role", "assistant", "content", "refusal", refusal);
    else
        msg = json_pack("{s:s, s:s, s:n}", "role", "assistant", "content", text ? text : json,
                        "refusal");
    free(json);
    free(text);
    return json_pack("{s:s, s:s, s:i, s:O?, s:[{s:i, s:o, s:s}], "
                     "s:{s:i, s:i, s:i, s:{s:i}}}",
                     "id", "chatcmpl-fake", "object", "chat.completion", "created", 0,
                     "model", json_object_get(request, "model"),
                     "choices", "index", 0, "message", msg, "finish_reason", finish,
                     "usage", "prompt_tokens", 130, "completion_tokens", 20,
                     "total_tokens", 150, "prompt_tokens_details", "cached_tokens", 30);
}

/* The answer without its usage (script action no-usage). */
static json_t *without_usage(json_t *a, const char *action)
{
    if (strcmp(action, "no-usage") == 0)
        json_object_del(a, "usage");
    return a;
}

/* The schema the request asks for, or NULL. */
static json_t *schema_of(json_t *request, bool anthropic)
{
    json_t *oc = json_object_get(json_object_get(json_object_get(request, "output_config"),
                                                 "format"), "schema");
    if (anthropic && oc)
        return oc;
    if (anthropic) {                             /* the answer tool's, if any */
        const char *at = answer_tool(request, true);
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(request, "tools"), i, t)
            if (at && strcmp(json_string_value(json_object_get(t, "name")) ?: "", at) == 0)
                return json_object_get(t, "input_schema");
        return NULL;
    }
    return json_object_get(json_object_get(json_object_get(request, "response_format"),
                                           "json_schema"), "schema");
}

static bool schema_in_system(json_t *request, bool anthropic)
{
    json_t *s = schema_in_text(request, anthropic);
    json_decref(s);
    return s != NULL;
}

/* The schema a json_object or prompt-mode request carries in its system text
 * ("... JSON Schema:\n{...}"), parsed (a new reference), or NULL. */
static json_t *schema_in_text(json_t *request, bool anthropic)
{
    const char *sys = NULL;
    if (anthropic) {
        json_t *s = json_object_get(request, "system");
        sys = json_string_value(s);
        if (!sys && json_is_array(s))
            sys = json_string_value(json_object_get(json_array_get(s, json_array_size(s) - 1),
                                                    "text"));
    } else {
        json_t *m0 = json_array_get(json_object_get(request, "messages"), 0);
        if (strcmp(json_string_value(json_object_get(m0, "role")) ?: "", "system") == 0)
            sys = json_string_value(json_object_get(m0, "content"));
    }
    const char *p = sys ? strstr(sys, "JSON Schema:\n") : NULL;
    return p ? json_loads(p + 13, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
}

/* ---- HTTP ------------------------------------------------------------------ */

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        p += k, n -= (size_t)k;
    }
    return true;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

static bool respond(int fd, int status, const char *extra, json_t *body)
{
    char *b = json_dumps(body, JSON_COMPACT);
    char head[512];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n", status, reason(status),
                     b ? strlen(b) : 0, extra ? extra : "");
    bool ok = send_all(fd, head, (size_t)n) && (!b || send_all(fd, b, strlen(b)));
    free(b);
    return ok;
}

static json_t *error_body(bool anthropic, int status, const char *msg)
{
    const char *type = status == 401 ? "authentication_error" : status == 413
                       ? "request_too_large" : status == 429
                       ? "rate_limit_error" : status >= 500 ? "api_error" : "invalid_request_error";
    if (anthropic)
        return json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error", "type", type,
                         "message", msg);
    return json_pack("{s:{s:s, s:s}}", "error", "message", msg, "type", type);
}

static void log_request(long n, const req *r, json_t *request, bool auth, int status,
                        const char *action, const cache_use *cu, json_t *calls, bool anthropic)
{
    if (!S.log)
        return;
    int results = 0, errors = 0;
    last_results(request, anthropic, &results, &errors);
    json_t *l = json_pack("{s:i, s:i, s:s, s:O?, s:b, s:b, s:i, s:s, s:s, s:b, s:f, s:i, s:i}",
                          "n", (json_int_t)n, "conn", (json_int_t)r->conn,
                          "path", r->path, "model", json_object_get(request, "model"),
                          "feedback", strstr(r->body, "previous answer was invalid") != NULL,
                          "auth", auth, "status", status, "action", action,
                          "version", r->version, "proxied", r->proxied, "t", r->t,
                          "cache_read", cu->read, "cache_write", cu->write);
    json_t *tc = json_object_get(request, "tool_choice");
    json_t *names = json_array();
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c)
        json_array_append(names, json_object_get(c, "name"));
    json_object_set_new(l, "tool_calls", names);
    json_object_set_new(l, "tool_results", json_integer(results));
    json_object_set_new(l, "tool_errors", json_integer(errors));
    json_object_set_new(l, "tool_choice", json_is_object(tc)
                        ? json_incref(json_object_get(tc, "type")) : json_incref(tc));
    json_object_set_new(l, "tools", json_integer((json_int_t)json_array_size(
                                                     json_object_get(request, "tools"))));
    if (S.dump) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%ld.json", S.dump, n);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs(r->body, f);
            fclose(f);
        }
    }
    char *s = json_dumps(l, JSON_COMPACT);
    pthread_mutex_lock(&S.log_mu);
    fprintf(S.log, "%s\n", s);
    fflush(S.log);
    pthread_mutex_unlock(&S.log_mu);
    free(s);
    json_decref(l);
}

/* Waits until the client closes the connection (a hang). */
static void hang(int fd)
{
    char buf[4096];
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, 1000) < 0 && errno != EINTR)
            return;
        if (p.revents && recv(fd, buf, sizeof buf, 0) <= 0)
            return;
    }
}

static bool auth_ok(const req *r, bool anthropic)
{
    if (!S.key)
        return true;
    return strcmp(anthropic ? r->api_key : r->bearer, S.key) == 0;
}

/* A status action: the error, with retry-after headers if asked. */
static bool respond_status(int fd, const rule *ru, bool anthropic, int status,
                           const char *key)
{
    char extra[512] = "", msg[320];
    size_t n = 0;
    if (ru->retry_after >= 0)
        n += (size_t)snprintf(extra, sizeof extra, "retry-after: %ld\r\n", ru->retry_after);
    if (ru->retry_after_ms >= 0)
        n += (size_t)snprintf(extra + n, sizeof extra - n, "retry-after-ms: %ld\r\n",
                              ru->retry_after_ms);
    if (ru->retry_after_date >= 0) {
        time_t t = time(NULL) + ru->retry_after_date;
        struct tm tm;
        n += strftime(extra + n, sizeof extra - n, "retry-after: %a, %d %b %Y %H:%M:%S GMT\r\n",
                      gmtime_r(&t, &tm));
    }
    if (ru->should_retry >= 0)
        n += (size_t)snprintf(extra + n, sizeof extra - n, "x-should-retry: %s\r\n",
                              ru->should_retry ? "true" : "false");
    if (ru->retry_after_raw[0])
        n += (size_t)snprintf(extra + n, sizeof extra - n, "retry-after: %s\r\n",
                              ru->retry_after_raw);
    if (ru->retry_after_ms_raw[0])
        n += (size_t)snprintf(extra + n, sizeof extra - n, "retry-after-ms: %s\r\n",
                              ru->retry_after_ms_raw);
    char *long_msg = NULL;
    if (strstr(ru->action, "-straddle-key")) {    /* ARG bytes of padding, then the key */
        size_t pad = ru->arg > 0 && ru->arg < 100000 ? (size_t)ru->arg : 0;
        long_msg = malloc(pad + strlen(key) + 1);
        if (long_msg) {
            memset(long_msg, 'A', pad);
            strcpy(long_msg + pad, key);
        }
    } else if (strstr(ru->action, "-leak-key")) {
        snprintf(msg, sizeof msg, "Incorrect API key provided: %s", key);
    } else {
        snprintf(msg, sizeof msg, "scripted failure %d", status);
    }
    json_t *b = error_body(anthropic, status, long_msg ? long_msg : msg);
    bool ok = respond(fd, status, extra, b);
    json_decref(b);
    free(long_msg);
    return ok;
}

/* ---- misbehaving answers, for the fault matrix ----------------------------- */

/* Closing fd after this sends a reset (RST) instead of an orderly close. */
static void reset_on_close(int fd)
{
    struct linger l = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

static bool respond_raw(int fd, int status, const char *ctype, const char *extra,
                        const char *body, size_t n)
{
    char *head = NULL;
    int k = asprintf(&head, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "%s\r\n", status, reason(status), ctype, n, extra ? extra : "");
    bool ok = k > 0 && send_all(fd, head, (size_t)k) && send_all(fd, body, n);
    free(head);
    return ok;
}

/* The usage object of an answer, as the usage-* actions spoil it. */
static void spoil_usage(const char *action, json_t *out, bool anthropic, size_t body_len)
{
    const char *in = anthropic ? "input_tokens" : "prompt_tokens";
    const char *outk = anthropic ? "output_tokens" : "completion_tokens";
    json_t *u = json_object_get(out, "usage");
    if (strcmp(action, "usage-wrong") == 0) {
        json_object_set_new(u, in, json_string("100"));
        json_object_set_new(u, outk, json_integer(-5));
    } else if (strcmp(action, "usage-real") == 0) {     /* 130.0: a lax server's counts */
        json_object_set_new(u, in, json_real((double)json_integer_value(json_object_get(u, in))));
        json_object_set_new(u, outk, json_real((double)json_integer_value(json_object_get(u, outk))));
    } else if (strcmp(action, "usage-huge") == 0) {
        json_object_set_new(u, in, json_integer(1000000000000000LL));
        json_object_set_new(u, outk, json_integer(1000000000000000LL));
    } else if (strcmp(action, "usage-above") == 0) {
        /* more than the client could have reserved (a token per byte of what it
         * sent, and some framing), less than it could take for absurd */
        json_object_set_new(u, in, json_integer((json_int_t)body_len + 1500));
        json_object_del(u, "prompt_tokens_details");
        json_object_del(u, "cache_read_input_tokens");
        json_object_del(u, "cache_creation_input_tokens");
    }
}

/* Bytes that are not JSON nor UTF-8, the same each time. */
static void garbage(char *b, size_t n)
{
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        b[i] = (char)(x & 0xff);
    }
    b[0] = (char)0xff;
}

/* A body-level or connection-level misbehaviour; false when action is none
 * of them.  `good` is the answer the request would have had. */
static bool odd_answer(int fd, const rule *ru, bool anthropic, json_t *good, bool *keep)
{
    const char *a = ru->action;
    char *text = json_dumps(good, JSON_COMPACT);
    size_t n = text ? strlen(text) : 0;
    char buf[8192];
    bool done = true;
    *keep = false;
    if (strcmp(a, "reset") == 0) {                /* the request read, then a reset */
        reset_on_close(fd);
    } else if (strcmp(a, "reset-head") == 0) {    /* half a status line, then a reset */
        const char *t = "HTTP/1.1 200 OK\r\nContent-Ty";
        send_all(fd, t, strlen(t));
        reset_on_close(fd);
    } else if (strcmp(a, "reset-body") == 0 || strcmp(a, "close-body") == 0) {
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n", n);
        if (send_all(fd, buf, strlen(buf)))
            send_all(fd, text, n / 2);
        if (a[0] == 'r')
            reset_on_close(fd);
    } else if (strcmp(a, "drip") == 0) {          /* a byte every 100 ms */
        snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n", n);
        bool ok = send_all(fd, buf, strlen(buf));
        for (size_t i = 0; ok && i < n; i++) {
            sleep_ms(100);
            ok = send_all(fd, text + i, 1);
        }
    } else if (strcmp(a, "bad-gzip") == 0) {
        garbage(buf, 300);
        *keep = respond_raw(fd, 200, "application/json", "Content-Encoding: gzip\r\n", buf, 300);
    } else if (strcmp(a, "huge-header") == 0) {   /* over curl's 100 KB for one header */
        size_t pad = 200 * 1024;
        char *h = malloc(pad + 32);
        if (h) {
            memcpy(h, "X-Padding: ", 11);
            memset(h + 11, 'a', pad);
            memcpy(h + 11 + pad, "\r\n", 3);
            *keep = respond_raw(fd, 200, "application/json", h, text, n);
            free(h);
        }
    } else if (strcmp(a, "bad-status") == 0) {
        const char *t = "HELLO FROM NOT HTTP\r\n\r\n";
        send_all(fd, t, strlen(t));
    } else if (strcmp(a, "bad-chunked") == 0) {
        const char *t = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        "Transfer-Encoding: chunked\r\n\r\nzz\r\n{\"a\r\n0\r\n\r\n";
        send_all(fd, t, strlen(t));
    } else if (strcmp(a, "garbage") == 0) {
        garbage(buf, 2000);
        *keep = respond_raw(fd, 200, "application/json", NULL, buf, 2000);
    } else if (strcmp(a, "empty") == 0) {
        *keep = respond_raw(fd, 200, "application/json", NULL, "", 0);
    } else if (strcmp(a, "html") == 0 || strcmp(a, "html-502") == 0) {
        const char *h = "<html><head><title>502 Bad Gateway</title></head><body><center>"
                        "<h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
        *keep = respond_raw(fd, a[4] ? 502 : 200, "text/html", NULL, h, strlen(h));
    } else if (strcmp(a, "text-plain") == 0) {    /* a good answer, labelled wrongly */
        *keep = respond_raw(fd, 200, "text/plain", NULL, text, n);
    } else if (strcmp(a, "truncated-json") == 0) {
        *keep = respond_raw(fd, 200, "application/json", NULL, text, n / 2);
    } else if (strcmp(a, "deep-json") == 0) {     /* nesting past any parser's depth */
        size_t d = 100000;
        char *b = malloc(2 * d);
        if (b) {
            memset(b, '[', d);
            memset(b + d, ']', d);
            *keep = respond_raw(fd, 200, "application/json", NULL, b, 2 * d);
            free(b);
        }
    } else if (strcmp(a, "nul-answer") == 0 || strcmp(a, "bad-utf8") == 0) {
        char *f = text ? strstr(text, "\"fake") : NULL;   /* the first synthesized string */
        size_t at = f ? (size_t)(f - text) + 3 : 0;
        const char *ins = a[0] == 'n' ? "\\u0000" : "\xff\xfe";
        char *b = malloc(n + 8);
        if (b && f) {
            memcpy(b, text, at);
            memcpy(b + at, ins, strlen(ins));
            memcpy(b + at + strlen(ins), text + at, n - at);
            *keep = respond_raw(fd, 200, "application/json", NULL, b, n + strlen(ins));
        }
        free(b);
    } else if (strcmp(a, "error-200") == 0) {     /* a 200 whose body is an error */
        json_t *e = error_body(anthropic, 500, "Internal server error");
        *keep = respond(fd, 200, NULL, e);
        json_decref(e);
    } else if (strcmp(a, "wrong-shape") == 0) {
        json_t *w = json_pack("{s:s, s:i}", "hello", "world", "answer", 42);
        *keep = respond(fd, 200, NULL, w);
        json_decref(w);
    } else if (strcmp(a, "empty-content") == 0) {
        json_object_set_new(good, anthropic ? "content" : "choices", json_array());
        *keep = respond(fd, 200, NULL, good);
    } else if (strcmp(a, "redirect") == 0) {
        *keep = respond_raw(fd, 302, "text/plain", "Location: /elsewhere\r\n", "moved", 5);
    } else if (strncmp(a, "usage-", 6) == 0) {
        *keep = respond(fd, 200, NULL, good);
    } else {
        done = false;
        *keep = true;
    }
    free(text);
    return done;
}

/* Answers one request; false when the connection must close. */

static long count_tokens(const char *s);

/* The answer's value for schema; with --usage max, as long as max_tokens. */
static json_t *synth_padded(json_t *schema, json_t *request)
{
    json_t *v = synth(schema, schema, 0);
    if (S.usage_mode != 2)
        return v;
    json_t *mt = json_object_get(request, "max_tokens");
    if (!mt)
        mt = json_object_get(request, "max_completion_tokens");
    char *text = json_dumps(v, JSON_COMPACT);
    long owed = (long)json_integer_value(mt) - count_tokens(text) - 8;
    free(text);
    if (owed <= 0)
        return v;
    json_decref(v);
    pad_tokens = owed;
    v = synth(schema, schema, 0);
    pad_tokens = 0;
    return v;
}

/* ---- batch APIs -------------------------------------------------------------
 * Anthropic Message Batches (POST /v1/messages/batches, GET .../{id},
 * GET .../{id}/results, POST .../{id}/cancel, GET /v1/messages/batches to
 * list them, newest first, after_id and limit 1-1000) and OpenAI Batch (POST
 * /v1/files multipart with purpose "batch", GET /v1/files to list them,
 * purpose, order, limit 1-10000, after; POST /v1/batches with metadata of at
 * most 16 string pairs, keys 64 and values 512 characters; GET
 * /v1/batches/{id}; GET /v1/batches to list them, newest first, after and
 * limit 1-100; GET /v1/files/{id}/content; POST /v1/batches/{id}/cancel).
 * A batch is in progress for --batch-delay MS after its creation, then ended
 * (Anthropic "ended"; OpenAI "completed"); results exist only once it ended.
 * Anthropic's request_counts stay in `processing` until the whole batch
 * ends, as documented; OpenAI's completed count grows as time passes.  A
 * cancelled batch ends at once (--batch-cancel-delay MS: that much later)
 * with the share of its requests the delay had got through
 * (--batch-cancel-done K: its first K): Anthropic's others are
 * `canceled` results, OpenAI's go to the error file with batch_cancelled.  created_at is the wall clock (RFC 3339
 * for Anthropic, Unix seconds for OpenAI); Anthropic's results_url is
 * absolute.  --batch-errors N: every Nth request of a batch is errored.
 * What the docs reject gets a 400: no requests or more than 100,000 (OpenAI
 * 50,000; --batch-max-requests N lowers both), a body over 256 MB (a 413) or
 * an input file over 200 MB (--batch-max-bytes N lowers both), a custom_id
 * outside [A-Za-z0-9_-]{1,64} or given twice, a line whose url is not the
 * endpoint, a file whose purpose is not "batch", a window not "24h", bad
 * metadata, a list limit out of range.  --hold ACTION (batch-create or
 * file-upload): that request is done and logged, but not answered before
 * GET /_release, so a test can kill the client in between. */
#define MAX_BATCHES 256
typedef struct fbatch {
    char id[48];
    bool anthropic;
    long n;                        /* requests */
    double created, ended;         /* monotonic s; ended 0 until it ends */
    time_t wall;                   /* created, wall clock */
    bool canceled;
    double canceled_at;            /* monotonic s */
    char **cids;                   /* each request's custom_id */
    char **lines;                  /* each request's result line as if it ran */
    bool *bad;                     /* ... and whether that line is an error */
    char *results;                 /* Anthropic results JSONL, or OpenAI output JSONL, once ended */
    char *errors;                  /* OpenAI error JSONL, once ended */
    long ok, err;                  /* counts once ended */
    char input_file[48];           /* OpenAI */
    json_t *metadata;              /* OpenAI, or NULL */
} fbatch;
typedef struct ffile {
    char id[48];
    char name[128];                /* the filename it was uploaded as */
    time_t wall;                   /* when */
    char *text;
} ffile;
static struct {
    pthread_mutex_t mu;
    fbatch b[MAX_BATCHES];
    int nb;
    ffile f[MAX_BATCHES * 3];
    int nf;
    long delay_ms;                 /* --batch-delay */
    long errors_every;             /* --batch-errors */
    long max_requests;             /* --batch-max-requests, 0: the providers' */
    long max_bytes;                /* --batch-max-bytes, 0: the providers' */
    long cancel_done;              /* --batch-cancel-done: requests a cancel lets finish, -1 by time */
    long cancel_delay_ms;          /* --batch-cancel-delay: how long a batch stays cancelling */
    char hold[32];                 /* --hold: the action answered only after /_release */
    bool released;                 /* /_release came */
    pthread_cond_t release_cv;     /* signalled by /_release */
} B = { .mu = PTHREAD_MUTEX_INITIALIZER, .release_cv = PTHREAD_COND_INITIALIZER,
        .cancel_done = -1 };

static int server_port;            /* for absolute URLs */

static bool good_custom_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

/* A growing text of lines. */
typedef struct tbuf {
    char *s;
    size_t len, cap;
} tbuf;

static void tbuf_line(tbuf *t, const char *line)
{
    size_t k = strlen(line);
    if (t->len + k + 2 > t->cap) {
        size_t cap = (t->cap + k + 2) * 2;
        char *n = realloc(t->s, cap);
        if (!n)
            return;
        t->s = n, t->cap = cap;
    }
    memcpy(t->s + t->len, line, k);
    t->len += k;
    t->s[t->len++] = '\n';
    t->s[t->len] = '\0';
}

/* --bad-attempts N: a call's first N attempts are answered invalid, so every
 * call spends N retries.  An invalid answer carries "_fake_attempt": K (its
 * attempt), which the retry sends back as the previous answer: so the
 * attempt a request is counts from the request alone, whatever other calls
 * share its prompt.  A batch request is a first attempt. */
static long bad_attempts;

static long attempt_of(const char *body)
{
    const char *p = body ? strstr(body, "_fake_attempt") : NULL;
    if (!p)
        return 1;
    p += 13;
    for (int k = 0; k < 8 && *p && !isdigit((unsigned char)*p); k++)
        p++;
    return atol(p) + 1;
}

/* Spoils value as attempt k's invalid answer, marked with k. */
static void bad_answer(json_t *value, json_t *schema, long k)
{
    spoil("invalid-missing-field", value, schema, schema);
    if (json_is_object(value))
        json_object_set_new(value, "_fake_attempt", json_integer(k));
}

/* The answer to one request of a batch, as the normal endpoint gives it. */
static json_t *batch_answer(json_t *params, bool anthropic)
{
    json_t *schema = schema_of(params, anthropic), *own = NULL;
    if (!schema)
        schema = own = schema_in_text(params, anthropic);
    json_t *value = synth_padded(schema, params);
    if (bad_attempts > 0)
        bad_answer(value, schema, 1);
    json_decref(own);
    cache_use cu = { 0, 0, 100 };          /* as the normal endpoint counts a prompt */
    json_t *out = anthropic ? anthropic_answer("ok", params, value, "", &cu)
                            : openai_answer("ok", params, value, "");
    json_decref(value);
    set_usage(out, params, anthropic);
    rule r;                        /* a prompt's [[fake:usage-...]] spoils its usage here too */
    if (out && prompt_rule(params, true, &r) && strncmp(r.action, "usage-", 6) == 0) {
        char *b = json_dumps(params, JSON_COMPACT);
        spoil_usage(r.action, out, anthropic, b ? strlen(b) : 0);
        free(b);
    }
    return out;
}

static fbatch *batch_find(const char *id)
{
    for (int i = 0; i < B.nb; i++)
        if (strcmp(B.b[i].id, id) == 0)
            return &B.b[i];
    return NULL;
}

static void rfc3339(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* How many of b's requests have run by now (all once it ended uncancelled). */
static long batch_done(const fbatch *b, double now)
{
    if (b->canceled && B.cancel_done >= 0)
        return B.cancel_done < b->n ? B.cancel_done : b->n;
    double until = b->canceled ? b->canceled_at : now;
    double frac = B.delay_ms > 0 ? (until - b->created) / (B.delay_ms / 1000.0) : 1;
    if (frac >= 1 && !b->canceled)
        return b->n;
    long k = frac <= 0 ? 0 : (long)(frac * (double)b->n);
    return k > b->n ? b->n : k;
}

/* Ends b if its time came: its results written as they stand. */
static void batch_update(fbatch *b)
{
    double now = now_s();
    if (b->ended || !(b->canceled ? now >= b->canceled_at + B.cancel_delay_ms / 1000.0
                                  : now >= b->created + B.delay_ms / 1000.0))
        return;
    b->ended = now;
    long done = batch_done(b, now);
    tbuf res = { 0 }, err = { 0 };
    for (long i = 0; i < b->n; i++) {
        if (i < done) {
            tbuf_line(b->bad[i] && !b->anthropic ? &err : &res, b->lines[i]);
            *(b->bad[i] ? &b->err : &b->ok) += 1;
            continue;
        }
        json_t *l = b->anthropic
            ? json_pack("{s:s, s:{s:s}}", "custom_id", b->cids[i], "result", "type", "canceled")
            : json_pack("{s:s, s:s, s:n, s:{s:s, s:s}}", "id", "batch_req", "custom_id",
                        b->cids[i], "response", "error", "code", "batch_cancelled", "message",
                        "The batch was cancelled before this request ran.");
        char *t = json_dumps(l, JSON_COMPACT);
        json_decref(l);
        if (t)
            tbuf_line(b->anthropic ? &res : &err, t);
        free(t);
        b->err++;
    }
    b->results = res.s ? res.s : strdup("");
    b->errors = err.s;
}

static json_t *batch_json(fbatch *b)
{
    batch_update(b);
    bool done = b->ended > 0;
    char created[40], expires[40], ended[40];
    rfc3339(b->wall, created, sizeof created);
    rfc3339(b->wall + 86400, expires, sizeof expires);
    rfc3339(b->wall + (time_t)(b->ended - b->created), ended, sizeof ended);
    if (b->anthropic) {
        char url[160];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/messages/batches/%s/results",
                 server_port, b->id);
        long canceled = done && b->canceled ? b->n - batch_done(b, 0) : 0;
        return json_pack("{s:s, s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i}, s:o, s:s, s:s, s:o,"
                         " s:o, s:n}", "id", b->id, "type", "message_batch", "processing_status",
                         done ? "ended" : b->canceled ? "canceling" : "in_progress",
                         "request_counts", "processing", (int)(done ? 0 : b->n), "succeeded",
                         (int)(done ? b->ok : 0), "errored", (int)(done ? b->err - canceled : 0),
                         "canceled", (int)canceled, "expired", 0,
                         "ended_at", done ? json_string(ended) : json_null(),
                         "created_at", created, "expires_at", expires, "results_url",
                         done ? json_string(url) : json_null(), "cancel_initiated_at",
                         b->canceled ? json_string(ended) : json_null(), "archived_at");
    }
    char of[64], ef[64];
    snprintf(of, sizeof of, "file-out-%s", b->id + 6);
    snprintf(ef, sizeof ef, "file-err-%s", b->id + 6);
    const char *st = done ? (b->canceled ? "cancelled" : "completed")
                     : b->canceled ? "cancelling" : "in_progress";
    long ran = done ? b->n : batch_done(b, now_s()), okc = 0, badc = 0;
    for (long i = 0; i < ran && !done; i++)
        *(b->bad[i] ? &badc : &okc) += 1;
    if (done)
        okc = b->ok, badc = b->err;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:{s:i, s:i, s:i}, s:o, s:o,"
                     " s:O?}", "id", b->id, "object", "batch", "endpoint", "/v1/chat/completions",
                     "completion_window", "24h", "status", st, "input_file_id", b->input_file,
                     "created_at", (json_int_t)b->wall, "expires_at",
                     (json_int_t)(b->wall + 86400), "request_counts", "total", (int)b->n,
                     "completed", (int)okc, "failed", (int)badc, "output_file_id",
                     done && b->results && *b->results ? json_string(of) : json_null(),
                     "error_file_id", done && b->errors && *b->errors ? json_string(ef)
                                                                      : json_null(),
                     "metadata", b->metadata);
}

static long max_requests(bool anthropic)
{
    long lim = anthropic ? 100000 : 50000;
    return B.max_requests > 0 && B.max_requests < lim ? B.max_requests : lim;
}

static long max_bytes(bool anthropic)
{
    long lim = anthropic ? 256000000L : 200000000L;
    return B.max_bytes > 0 && B.max_bytes < lim ? B.max_bytes : lim;
}

/* Creates a batch from requests [{custom_id, params}] (both providers). */
static const char *batch_create(json_t *reqs, bool anthropic, fbatch **out, char *why, size_t cap)
{
    size_t n = json_array_size(reqs);
    if (n == 0)
        return "requests: at least 1 item";
    if ((long)n > max_requests(anthropic)) {
        snprintf(why, cap, anthropic ? "requests: at most %ld items"
                                     : "the input file has more than %ld requests",
                 max_requests(anthropic));
        return why;
    }
    json_t *ids = json_object();
    for (size_t i = 0; i < n; i++) {
        const char *cid = json_string_value(json_object_get(json_array_get(reqs, i),
                                                            "custom_id"));
        if (!good_custom_id(cid) || json_object_get(ids, cid)) {
            json_decref(ids);
            return "custom_id: must be 1 to 64 letters, digits, '-' or '_', unique in the batch";
        }
        json_object_set_new(ids, cid, json_true());
    }
    json_decref(ids);
    if (B.nb >= MAX_BATCHES)
        return "too many batches";
    fbatch *b = &B.b[B.nb++];
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "%s%04d", anthropic ? "msgbatch_fake" : "batch_fake", B.nb);
    b->anthropic = anthropic;
    b->n = (long)n;
    b->created = now_s();
    b->wall = time(NULL);
    b->cids = calloc(n, sizeof *b->cids);
    b->lines = calloc(n, sizeof *b->lines);
    b->bad = calloc(n, sizeof *b->bad);
    for (size_t i = 0; i < n && b->cids && b->lines && b->bad; i++) {
        json_t *r = json_array_get(reqs, i);
        const char *cid = json_string_value(json_object_get(r, "custom_id"));
        bool err = B.errors_every > 0 && (long)(i + 1) % B.errors_every == 0;
        json_t *line;
        if (err && anthropic)
            line = json_pack("{s:s, s:{s:s, s:{s:s, s:{s:s, s:s}}}}", "custom_id", cid, "result",
                             "type", "errored", "error", "type", "error", "error", "type",
                             "api_error", "message", "Internal server error");
        else if (err)
            line = json_pack("{s:s, s:s, s:{s:i, s:s, s:{s:{s:s, s:s}}}, s:n}", "id", "batch_req",
                             "custom_id", cid, "response", "status_code", 500, "request_id",
                             "req_fake", "body", "error", "message", "server error", "type",
                             "server_error", "error");
        else if (anthropic)
            line = json_pack("{s:s, s:{s:s, s:o}}", "custom_id", cid, "result", "type",
                             "succeeded", "message",
                             batch_answer(json_object_get(r, "params"), true));
        else
            line = json_pack("{s:s, s:s, s:{s:i, s:s, s:o}, s:n}", "id", "batch_req",
                             "custom_id", cid, "response", "status_code", 200, "request_id",
                             "req_fake", "body",
                             batch_answer(json_object_get(r, "params"), false), "error");
        b->cids[i] = strdup(cid);
        b->lines[i] = json_dumps(line, JSON_COMPACT);
        b->bad[i] = err;
        json_decref(line);
    }
    *out = b;
    return NULL;
}

/* The file part of a multipart body, its purpose and its filename. */
static char *multipart_file(const char *body, char *purpose, size_t pcap, char *name, size_t ncap)
{
    const char *eol = strstr(body, "\r\n");
    if (strncmp(body, "--", 2) != 0 || !eol)
        return NULL;
    char bd[128];
    snprintf(bd, sizeof bd, "\r\n%.*s", (int)(eol - body), body);
    const char *p = strstr(body, "name=\"purpose\"");
    purpose[0] = name[0] = '\0';
    if (p && (p = strstr(p, "\r\n\r\n"))) {
        p += 4;
        const char *e = strstr(p, "\r\n");
        snprintf(purpose, pcap, "%.*s", e ? (int)(e - p) : 0, p);
    }
    const char *f = strstr(body, "name=\"file\"");
    const char *fn = f ? strstr(f, "filename=\"") : NULL;
    if (fn) {
        fn += 10;
        const char *e = strchr(fn, '"');
        snprintf(name, ncap, "%.*s", e ? (int)(e - fn) : 0, fn);
    }
    if (!f || !(f = strstr(f, "\r\n\r\n")))
        return NULL;
    f += 4;
    const char *end = strstr(f, bd);
    return end ? strndup(f, (size_t)(end - f)) : NULL;
}

/* The OpenAI input file's lines as [{custom_id, params}]; NULL with why. */
static json_t *openai_lines(const char *text, const char **why)
{
    json_t *reqs = json_array();
    char model_buf[256] = "";
    const char *model = NULL;
    for (const char *l = text; l && *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) : strlen(l);
        if (len) {
            json_t *v = json_loadb(l, len, 0, NULL);
            const char *url = json_string_value(json_object_get(v, "url"));
            const char *m = json_string_value(json_object_get(json_object_get(v, "body"),
                                                              "model"));
            if (!v || !url || strcmp(url, "/v1/chat/completions") != 0 ||
                strcmp(json_string_value(json_object_get(v, "method")) ?: "", "POST") != 0 ||
                !m || (model && strcmp(model, m) != 0)) {
                *why = "each line needs method POST, url /v1/chat/completions and one model";
                json_decref(v);
                json_decref(reqs);
                return NULL;
            }
            snprintf(model_buf, sizeof model_buf, "%s", m);
            model = model_buf;
            json_array_append_new(reqs, json_pack("{s:O, s:O}", "custom_id",
                                                  json_object_get(v, "custom_id"), "params",
                                                  json_object_get(v, "body")));
            json_decref(v);
        }
        l = nl ? nl + 1 : NULL;
    }
    return reqs;
}

/* metadata: at most 16 pairs of strings, keys up to 64 and values up to 512. */
static const char *bad_metadata(json_t *m)
{
    if (!m || json_is_null(m))
        return NULL;
    if (!json_is_object(m) || json_object_size(m) > 16)
        return "metadata: at most 16 key-value pairs";
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (strlen(k) > 64 || !json_is_string(v) || strlen(json_string_value(v)) > 512)
            return "metadata: keys are strings of at most 64 characters, values of at most 512";
    }
    return NULL;
}

/* The query parameter name of q ("a=1&b=2"), or NULL. */
static const char *query_get(const char *q, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = q; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t k = strcspn(p + n + 1, "&");
            snprintf(out, cap, "%.*s", (int)k, p + n + 1);
            return out;
        }
        p = strchr(p, '&');
        p = p ? p + 1 : NULL;
    }
    return NULL;
}

/* A page of a list, newest first: the objects after `after`, `limit` of them. */
static json_t *list_page(bool anthropic, bool files, const char *query, const char **why)
{
    char v[128];
    long lim = query_get(query, "limit", v, sizeof v) ? atol(v) : files ? 10000 : 20;
    long maxlim = files ? 10000 : anthropic ? 1000 : 100;
    if (lim < 1 || lim > maxlim) {
        *why = anthropic ? "limit: must be between 1 and 1000"
               : files ? "limit: must be between 1 and 10000" : "limit: must be between 1 and 100";
        return NULL;
    }
    char after[64] = "", purpose[64] = "";
    query_get(query, anthropic ? "after_id" : "after", after, sizeof after);
    query_get(query, "purpose", purpose, sizeof purpose);
    json_t *data = json_array();
    bool started = !after[0], more = false;
    int total = files ? B.nf : B.nb;
    for (int i = total - 1; i >= 0; i--) {
        const char *id = files ? B.f[i].id : B.b[i].id;
        if (!files && B.b[i].anthropic != anthropic)
            continue;
        if (!started) {
            started = strcmp(id, after) == 0;
            continue;
        }
        if ((long)json_array_size(data) == lim) {
            more = true;
            break;
        }
        if (files)
            json_array_append_new(data, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", id,
                                                  "object", "file", "purpose", "batch",
                                                  "filename", B.f[i].name, "created_at",
                                                  (json_int_t)B.f[i].wall, "bytes",
                                                  (json_int_t)strlen(B.f[i].text)));
        else
            json_array_append_new(data, batch_json(&B.b[i]));
    }
    size_t k = json_array_size(data);
    json_t *first = k ? json_object_get(json_array_get(data, 0), "id") : NULL;
    json_t *last = k ? json_object_get(json_array_get(data, k - 1), "id") : NULL;
    json_t *o = json_pack("{s:o, s:b, s:O?, s:O?}", "data", data, "has_more", more, "first_id",
                          first, "last_id", last);
    if (!anthropic)
        json_object_set_new(o, "object", json_string("list"));
    return o;
}

/* A batch endpoint's request: true when path was one (answered). */
static bool batch_handle(int fd, req *r, long n, bool *keep)
{
    char path[256];
    snprintf(path, sizeof path, "%s", r->path);
    char *qm = strchr(path, '?');
    const char *query = qm ? qm + 1 : "";
    if (qm)
        *qm = '\0';
    bool anth = strncmp(path, "/v1/messages/batches", 20) == 0;
    bool oai = strncmp(path, "/v1/batches", 11) == 0 || strncmp(path, "/v1/files", 9) == 0;
    if (!anth && !oai)
        return false;
    json_t *out = NULL;
    int status = 200;
    const char *action = "batch", *why = NULL;
    char *raw = NULL, id[64] = "", whybuf[160];
    json_t *request = r->body && *r->body == '{' ? json_loads(r->body, 0, NULL) : NULL;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    pthread_mutex_lock(&B.mu);
    if (!auth_ok(r, anth)) {
        status = 401, out = error_body(anth, 401, "invalid key");
    } else if (anth && post && strcmp(path, "/v1/messages/batches") == 0) {
        fbatch *b = NULL;
        action = "batch-create";
        json_t *reqs = json_object_get(request, "requests");
        if ((long)strlen(r->body) > max_bytes(true))
            status = 413, out = error_body(true, 413, "request_too_large: the batch is over the"
                                                      " size limit");
        else if (!json_is_array(reqs) ||
                 (why = batch_create(reqs, true, &b, whybuf, sizeof whybuf)))
            status = 400, out = error_body(true, 400, why ? why : "requests: Field required");
        else
            out = batch_json(b);
    } else if ((anth && get && strcmp(path, "/v1/messages/batches") == 0) ||
               (oai && get && (strcmp(path, "/v1/batches") == 0 ||
                               strcmp(path, "/v1/files") == 0))) {
        action = strcmp(path, "/v1/files") == 0 ? "file-list" : "batch-list";
        out = list_page(anth, strcmp(path, "/v1/files") == 0, query, &why);
        if (!out)
            status = 400, out = error_body(anth, 400, why);
    } else if (oai && post && strcmp(path, "/v1/files") == 0) {
        char purpose[64], name[128];
        action = "file-upload";
        raw = multipart_file(r->body ? r->body : "", purpose, sizeof purpose, name, sizeof name);
        if (!raw)
            status = 400, out = error_body(false, 400, "a multipart body with a file is required");
        else if (strcmp(purpose, "batch") != 0)
            status = 400, out = error_body(false, 400, "purpose must be 'batch' for batch input");
        else if (B.nf >= MAX_BATCHES * 3)
            status = 400, out = error_body(false, 400, "too many files");
        else {
            ffile *f = &B.f[B.nf++];
            snprintf(f->id, sizeof f->id, "file-fake%04d", B.nf);
            snprintf(f->name, sizeof f->name, "%s", name);
            f->wall = time(NULL);
            f->text = raw, raw = NULL;
            out = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "id", f->id, "object", "file",
                            "purpose", "batch", "filename", f->name, "created_at",
                            (json_int_t)f->wall, "bytes", (json_int_t)strlen(f->text));
        }
        free(raw);
        raw = NULL;
    } else if (oai && post && strcmp(path, "/v1/batches") == 0) {
        action = "batch-create";
        const char *fid = json_string_value(json_object_get(request, "input_file_id"));
        ffile *f = NULL;
        for (int i = 0; fid && i < B.nf; i++)
            if (strcmp(B.f[i].id, fid) == 0)
                f = &B.f[i];
        fbatch *b = NULL;
        json_t *reqs = NULL;
        if (!f)
            why = "input_file_id: no such file";
        else if (strcmp(json_string_value(json_object_get(request, "endpoint")) ?: "",
                        "/v1/chat/completions") != 0)
            why = "endpoint: must be /v1/chat/completions";
        else if (strcmp(json_string_value(json_object_get(request, "completion_window")) ?: "",
                        "24h") != 0)
            why = "completion_window: only 24h is supported";
        else if ((why = bad_metadata(json_object_get(request, "metadata"))))
            ;
        else if ((long)strlen(f->text) > max_bytes(false))
            why = "the input file is over the size limit";
        else if ((reqs = openai_lines(f->text, &why)) != NULL)
            why = batch_create(reqs, false, &b, whybuf, sizeof whybuf);
        json_decref(reqs);
        if (why) {
            status = 400, out = error_body(false, 400, why);
        } else {
            snprintf(b->input_file, sizeof b->input_file, "%s", f->id);
            json_t *m = json_object_get(request, "metadata");
            b->metadata = json_is_object(m) ? json_incref(m) : NULL;
            out = batch_json(b);
        }
    } else {
        /* GET .../{id}, GET .../{id}/results, POST .../{id}/cancel, GET /v1/files/{id}/content */
        const char *rest = path + (anth ? 21 : strncmp(path, "/v1/files/", 10) == 0 ? 10 : 12);
        const char *slash = strchr(rest, '/');
        snprintf(id, sizeof id, "%.*s", slash ? (int)(slash - rest) : (int)strlen(rest), rest);
        if (strncmp(path, "/v1/files/", 10) == 0) {
            action = "file-content";
            fbatch *b = NULL;
            bool err = strncmp(id, "file-err-", 9) == 0;
            char bid[64];
            snprintf(bid, sizeof bid, "batch_%s", id + 9);
            b = strncmp(id, "file-out-", 9) == 0 || err ? batch_find(bid) : NULL;
            if (b)
                batch_update(b);
            const char *t = b && b->ended ? (err ? b->errors : b->results) : NULL;
            if (!t || !*t)
                status = 404, out = error_body(false, 404, "No such File object");
            else
                raw = strdup(t);
        } else {
            fbatch *b = batch_find(id);
            if (!b || b->anthropic != anth) {
                status = 404, out = error_body(anth, 404, "batch not found");
            } else if (slash && strcmp(slash, "/cancel") == 0 && post) {
                action = "batch-cancel";
                batch_update(b);
                if (!b->ended && !b->canceled)
                    b->canceled = true, b->canceled_at = now_s();
                out = batch_json(b);
            } else if (slash && strcmp(slash, "/results") == 0 && get) {
                action = "batch-results";
                batch_update(b);
                if (!b->ended)
                    status = 400, out = error_body(true, 400, "batch is still in progress: no results yet");
                else
                    raw = strdup(b->results);
            } else if (!slash && get) {
                action = "batch-get";
                out = batch_json(b);
            } else {
                status = 404, out = error_body(anth, 404, "no such endpoint");
            }
        }
    }
    bool hold = B.hold[0] && strcmp(action, B.hold) == 0 && status == 200;
    pthread_mutex_unlock(&B.mu);
    cache_use cu;
    memset(&cu, 0, sizeof cu);
    log_request(n, r, request, true, status, action, &cu, NULL, anth);
    if (hold) {                        /* done and logged: answered after /_release */
        pthread_mutex_lock(&B.mu);
        while (!B.released)
            pthread_cond_wait(&B.release_cv, &B.mu);
        pthread_mutex_unlock(&B.mu);
    }
    if (raw)
        *keep = respond_raw(fd, 200, anth ? "application/binary" : "application/jsonl", NULL,
                            raw, strlen(raw));
    else
        *keep = respond(fd, status, NULL, out);
    free(raw);
    json_decref(out);
    json_decref(request);
    return true;
}

static bool handle(int fd, req *r)
{
    long n = atomic_fetch_add(&S.count, 1) + 1;
    bool bkeep = true;
    if (strcmp(r->path, "/_release") == 0) {
        pthread_mutex_lock(&B.mu);
        B.released = true;
        pthread_cond_broadcast(&B.release_cv);
        pthread_mutex_unlock(&B.mu);
        return respond(fd, 200, NULL, json_object()) && !r->close;
    }
    if (batch_handle(fd, r, n, &bkeep))
        return bkeep && !r->close;
    bool anthropic = strcmp(r->path, "/v1/messages") == 0;
    bool openai = strcmp(r->path, "/v1/chat/completions") == 0 ||
                  strcmp(r->path, "/chat/completions") == 0;
    json_t *request = json_loads(r->body, 0, NULL);
    bool auth = auth_ok(r, anthropic);
    bool fresh = request && prompt_is_fresh(request);
    rule asked;
    const rule *ru = request && prompt_rule(request, fresh, &asked) ? &asked : rule_for(n, fresh);
    const char *action = ru->action;
    long bad_k = 0;                          /* --bad-attempts: this invalid attempt */
    if (bad_attempts > 0 && request && (anthropic || openai) && strcmp(action, "ok") == 0 &&
        (bad_k = attempt_of(r->body)) <= bad_attempts)
        action = "invalid-missing-field";
    else
        bad_k = 0;
    int status = 200;
    double wait;
    bool keep = true;
    json_t *out = NULL;
    char extra[1024] = "", whybuf[256];
    const char *why;
    if (!anthropic && !openai) {
        status = 404, action = "not-found";
        out = error_body(false, 404, "no such endpoint");
    } else if (!auth) {
        status = 401, action = "wrong-key";
        out = error_body(anthropic, 401, anthropic ? "invalid x-api-key"
                                                   : "Incorrect API key provided");
    } else if (!request) {
        status = 400, action = "bad-json";
        out = error_body(anthropic, 400, "the body is not JSON");
    } else if ((why = rejected(request, anthropic, whybuf, sizeof whybuf))) {
        status = 400, action = "rejected";
        out = error_body(anthropic, 400, why);
    } else if ((wait = rate_check(r->t + S.start, request_tokens(request, anthropic))) > 0) {
        status = 429, action = "rate-limited";
        /* as the providers do: whole seconds, rounded up, and no retry-after-ms */
        snprintf(extra, sizeof extra, "retry-after: %ld\r\n", (long)ceil(wait));
        out = error_body(anthropic, 429, "rate limit exceeded");
    } else if (isdigit((unsigned char)action[0])) {
        status = atoi(action);
    }
    if (S.rate > 0 || S.tpm > 0)
        rate_headers(anthropic, extra + strlen(extra), sizeof extra - strlen(extra));
    cache_use cu = { 0, 0, 100 };
    if (anthropic && status == 200 && !out)
        cu = cache_lookup(request);
    json_t *calls = status == 200 && !out && strcmp(action, "tools") == 0
                    ? make_calls(request, anthropic, ru, n) : NULL;
    log_request(n, r, request, auth, strcmp(action, "drop") == 0 ? 0 : status, action, &cu,
                calls, anthropic);
    if (S.latency_ms > 0)
        sleep_ms(S.latency_ms);
    if (out) {
        keep = respond(fd, status, extra, out);
    } else if (status != 200) {
        keep = respond_status(fd, ru, anthropic, status, anthropic ? r->api_key : r->bearer);
    } else if (strcmp(action, "drop") == 0) {
        keep = false;
    } else if (strcmp(action, "hang") == 0) {
        hang(fd);
        keep = false;
    } else if (calls) {                         /* the model's turn: tool calls */
        out = anthropic ? anthropic_calls(request, calls) : openai_calls(request, calls);
        set_usage(out, request, anthropic);
        keep = respond(fd, 200, extra, out);
    } else {
        if (strcmp(action, "slow") == 0)
            sleep_ms(ru->arg);
        json_t *schema = schema_of(request, anthropic), *own = NULL;
        if (!schema)
            schema = own = schema_in_text(request, anthropic);
        json_t *value = synth_padded(schema, request);
        if (bad_k)
            bad_answer(value, schema, bad_k);
        else if (strncmp(action, "invalid-", 8) == 0 || strcmp(action, "out-of-range") == 0)
            spoil(action, value, schema, schema);
        json_decref(own);
        /* refusal-straddle-key ARG: ARG bytes of padding, then the key */
        char refusal[2048] = "I can't help with that.";
        if (strcmp(action, "refusal-straddle-key") == 0) {
            size_t pad = ru->arg > 0 && ru->arg < 1500 ? (size_t)ru->arg : 0;
            memset(refusal, 'A', pad);
            snprintf(refusal + pad, sizeof refusal - pad, "%s", anthropic ? r->api_key : r->bearer);
        }
        out = anthropic ? anthropic_answer(action, request, value, refusal, &cu)
                        : without_usage(openai_answer(action, request, value, refusal), action);
        if (anthropic)
            cache_remember(request);
        json_decref(value);
        set_usage(out, request, anthropic);
        spoil_usage(action, out, anthropic, strlen(r->body));
        if (!odd_answer(fd, ru, anthropic, out, &keep))
            keep = respond(fd, 200, extra, out);
    }
    json_decref(out);
    json_decref(calls);
    json_decref(request);
    return keep && !r->close;
}

/* Copies header value v (after "Name:") into dst, trimmed. */
static void header_value(const char *v, char *dst, size_t cap)
{
    v += strspn(v, " \t");
    size_t n = strcspn(v, "\r\n");
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    snprintf(dst, cap, "%.*s", (int)n, v);
}

static void parse_headers(char *head, req *r)
{
    sscanf(head, "%15s %255s", r->method, r->path);
    char *slash = strstr(r->path, "://") ? strchr(strstr(r->path, "://") + 3, '/') : NULL;
    if (slash) {                   /* "POST http://host/v1/messages": we are the proxy */
        memmove(r->path, slash, strlen(slash) + 1);
        r->proxied = true;
    }
    char tmp[64];
    for (char *l = strstr(head, "\r\n"); l && l[2] != '\r'; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2;
        if (strncasecmp(h, "content-length:", 15) == 0)
            r->content_length = atol(h + 15);
        else if (strncasecmp(h, "anthropic-version:", 18) == 0)
            header_value(h + 18, r->version, sizeof r->version);
        else if (strncasecmp(h, "x-api-key:", 10) == 0)
            header_value(h + 10, r->api_key, sizeof r->api_key);
        else if (strncasecmp(h, "authorization:", 14) == 0) {
            header_value(h + 14, r->bearer, sizeof r->bearer);
            if (strncmp(r->bearer, "Bearer ", 7) == 0)
                memmove(r->bearer, r->bearer + 7, strlen(r->bearer + 7) + 1);
        } else if (strncasecmp(h, "connection:", 11) == 0) {
            header_value(h + 11, tmp, sizeof tmp);
            r->close = strcasecmp(tmp, "close") == 0;
        } else if (strncasecmp(h, "expect:", 7) == 0) {
            r->expect = true;
        }
    }
}

typedef struct conn {
    int fd;                        /* the socket */
    char *buf;                     /* bytes read and not yet used */
    size_t len, cap;               /* used and allocated */
    double stamp;                  /* when the bytes of the request at buf came (monotonic s) */
} conn;

/* The kernel's arrival time of a received segment (SO_TIMESTAMPNS, real
 * time) as a monotonic time, or now when the kernel gave none: a request is
 * stamped where a provider's edge stamps it, when it arrived, however late
 * this thread gets round to reading it. */
static double arrival(struct msghdr *m)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec at, real;
            memcpy(&at, CMSG_DATA(c), sizeof at);
            clock_gettime(CLOCK_REALTIME, &real);
            double late = (double)(real.tv_sec - at.tv_sec) + (real.tv_nsec - at.tv_nsec) / 1e9;
            return now_s() - (late > 0 ? late : 0);
        }
    return now_s();
}

/* Reads more into c->buf; false on EOF or error. */
static bool fill(conn *c)
{
    if (c->cap - c->len < 65536) {
        size_t cap = c->cap ? c->cap * 2 : 131072;
        char *b = realloc(c->buf, cap);
        if (!b)
            return false;
        c->buf = b, c->cap = cap;
    }
    ssize_t k;
    struct iovec io = { c->buf + c->len, c->cap - c->len - 1 };
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof ctl };
    do
        k = recvmsg(c->fd, &m, 0);
    while (k < 0 && errno == EINTR);
    if (k <= 0)
        return false;
    if (c->len == 0)               /* the first bytes of a request */
        c->stamp = arrival(&m);
    c->len += (size_t)k;
    c->buf[c->len] = '\0';
    return true;
}

/* Reads one request into r; false when the connection is done. */
static bool read_request(conn *c, req *r)
{
    char *end;
    while (!(end = c->len ? strstr(c->buf, "\r\n\r\n") : NULL)) {
        if (c->len > MAX_HEAD || !fill(c))
            return false;
    }
    size_t head = (size_t)(end - c->buf) + 4;
    end[2] = '\0';
    memset(r, 0, sizeof *r);
    r->t = (c->stamp ? c->stamp : now_s()) - S.start;
    r->content_length = -1;
    parse_headers(c->buf, r);
    if (r->content_length < 0 || r->content_length > MAX_BODY)
        r->content_length = 0;
    if (r->expect && !send_all(c->fd, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        return false;
    size_t need = head + (size_t)r->content_length;
    while (c->len < need)
        if (!fill(c))
            return false;
    r->body = strndup(c->buf + head, (size_t)r->content_length);
    memmove(c->buf, c->buf + need, c->len - need);
    c->len -= need;
    c->buf[c->len] = '\0';
    return r->body != NULL;
}

static void *conn_main(void *arg)
{
    conn c = { (int)(intptr_t)arg, NULL, 0, 0, 0 };
    long id = atomic_fetch_add(&S.conns, 1) + 1;
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c.fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    req r;
    while (read_request(&c, &r)) {
        r.conn = id;
        bool keep = handle(c.fd, &r);
        free(r.body);
        if (!keep)
            break;
    }
    close(c.fd);
    free(c.buf);
    return NULL;
}

/* ---- main ------------------------------------------------------------------ */

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        perror("fakeserver: listen");
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_in a;
    socklen_t n = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &n);
    return ntohs(a.sin_port);
}

static bool write_port_file(const char *path, int port)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return false;
    fprintf(f, "%d\n", port);
    return fclose(f) == 0 && rename(tmp, path) == 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: fakeserver [--port N] [--port-file F] [--script F] [--key K]\n"
                    "                  [--rate N] [--tpm N] [--cache-min T] [--latency MS]\n"
                    "                  [--no-json-schema] [--no-response-format]\n"
                    "                  [--log F] [--dump DIR] [--usage count|max]\n"
                    "                  [--bad-attempts N] [--batch-delay MS] [--batch-errors N]\n"
                    "                  [--batch-max-requests N] [--batch-max-bytes N]\n"
                    "                  [--batch-cancel-done K] [--batch-cancel-delay MS]\n"
                    "                  [--hold batch-create|file-upload] [--enum first|last]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-json-schema") == 0 || strcmp(a, "--no-response-format") == 0) {
            *(a[5] == 'j' ? &S.no_json_schema : &S.no_response_format) = true;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--port") == 0) port = atoi(v);
        else if (strcmp(a, "--port-file") == 0) port_file = v;
        else if (strcmp(a, "--script") == 0) { if (!load_script(v)) return 2; }
        else if (strcmp(a, "--key") == 0) S.key = v;
        else if (strcmp(a, "--rate") == 0) S.rate = atof(v);
        else if (strcmp(a, "--tpm") == 0) S.tpm = atof(v);
        else if (strcmp(a, "--cache-min") == 0) S.cache_min = atol(v);
        else if (strcmp(a, "--batch-delay") == 0) B.delay_ms = atol(v);
        else if (strcmp(a, "--batch-errors") == 0) B.errors_every = atol(v);
        else if (strcmp(a, "--batch-max-requests") == 0) B.max_requests = atol(v);
        else if (strcmp(a, "--batch-max-bytes") == 0) B.max_bytes = atol(v);
        else if (strcmp(a, "--batch-cancel-done") == 0) B.cancel_done = atol(v);
        else if (strcmp(a, "--batch-cancel-delay") == 0) B.cancel_delay_ms = atol(v);
        else if (strcmp(a, "--bad-attempts") == 0) bad_attempts = atol(v);
        else if (strcmp(a, "--enum") == 0) S.enum_last = strcmp(v, "last") == 0;
        else if (strcmp(a, "--hold") == 0) snprintf(B.hold, sizeof B.hold, "%s", v);
        else if (strcmp(a, "--usage") == 0) S.usage_mode = strcmp(v, "max") == 0 ? 2 : strcmp(v, "count") == 0 ? 1 : 0;
        else if (strcmp(a, "--latency") == 0) S.latency_ms = atol(v);
        else if (strcmp(a, "--dump") == 0) S.dump = v;
        else if (strcmp(a, "--log") == 0) {
            if (!(S.log = fopen(v, "w"))) { perror(v); return 2; }
        } else usage();
    }
    signal(SIGPIPE, SIG_IGN);
    S.start = now_s();
    int fd = listen_on(port);
    if (fd < 0)
        return 1;
    port = bound_port(fd);
    server_port = port;
    printf("%d\n", port);
    fflush(stdout);
    if (port_file && !write_port_file(port_file, port)) {
        perror(port_file);
        return 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0) {
            if (errno != EINTR)
                sleep_ms(10);
            continue;
        }
        pthread_t t;
        if (pthread_create(&t, &attr, conn_main, (void *)(intptr_t)c) != 0)
            close(c);
    }
}
