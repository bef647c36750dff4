/*
 * fakecrm.c: the project's own fake CRM API, for the tests of http
 * operations.  It listens on 127.0.0.1 only and serves a CRM-style API as
 * strictly as the real ones do:
 *
 *   GET   /crm/v3/objects/contacts?limit=N[&after=C]   HubSpot's cursor paging:
 *         {"results":[...], "paging":{"next":{"after":"C","link":"..."}}}, no
 *         paging on the last page; limit 1..100 (400 otherwise)
 *   GET   /v2/contacts?page=N&per_page=M    a JSON array, the next page in a
 *         Link header (RFC 8288): <http://127.0.0.1:P/v2/...>; rel="next", in
 *         the forms the RFC allows (several links and Link headers, several
 *         relation types in one rel, rel unquoted, a relative target)
 *   GET   /v1/contacts[?cursor=C]           {"data":[...], "links":{"next":URL|null}}
 *   GET   /crm/v3/objects/contacts/{id}     one contact (404 for an unknown id), as
 *         HubSpot answers it (an agent's tool reads contacts one by one)
 *   PATCH /crm/v3/objects/contacts/{id}     {"properties":{...}}: updates one
 *         contact and answers it whole (404 for an unknown id, 400 for a body
 *         without properties)
 *   GET   /_stats                           what was applied, the keyed writes
 *         still running (in_progress), the reads that arrived (reads, counted
 *         when they come in: a test can wait for a slow one), as JSON
 *   GET   /_release                         --hold-writes on: answer the held writes
 *
 * Contacts are made up from their number, in HubSpot's object shape:
 * {"id":"i", "properties":{"email":"lead<i>@example.com", "firstname",
 * "lastname", "company", "createdate", "hs_object_id"}, "createdAt",
 * "updatedAt", "archived"}; a write's properties are merged in.
 *
 * Writes honour Idempotency-Key as Stripe's API does: the status and body of
 * the first request with a key are saved once the endpoint runs; a later
 * request with that key and the same body gets the saved answer back
 * (with Idempotent-Replayed: true) and is not applied again; the same key
 * with another body is a 400 (idempotency_error); the same key while its
 * first request is still running is a 409.  An injected failure (a 429, a
 * 500, a dropped connection before the endpoint runs) saves nothing.  It
 * counts, per contact id, how often a write was applied, and per key how
 * many requests carried it and how many were applied.
 *
 *   fakecrm [--port-file F] [--token T] [--contacts N] [--rate N]
 *           [--write-latency MS] [--hold-writes on] [--script F] [--log F]
 *
 * --token T: a request without "Authorization: Bearer T" gets a 401.
 * --rate N: N requests a second, no burst; beyond, a 429 with Retry-After
 * in whole seconds.  --write-latency MS: a write sleeps MS/2 before it is
 * applied and MS/2 after, so a client killed meanwhile cannot know whether
 * it was applied.  --hold-writes on: a keyed write, once applied and its
 * outcome saved, is not answered until GET /_release, so a test can kill
 * its client at a known moment.  --log F: one JSON line per request (n, method, path,
 * status, action, key; never a credential).
 * The script: one rule a line, `WHEN ACTION [ARG]`, WHEN a request number,
 * a range 2-4 or *, optionally restricted with `read` or `write` before it
 * (`write 1-2 500`); ACTION a status (429 sends Retry-After: 1), `slow MS`,
 * `drop` (close without an answer) or `401-echo` (a 401 whose message quotes
 * the bearer token it was sent, as careless servers do).  The first rule that matches wins.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD (64 * 1024)
#define MAX_BODY (8 << 20)
#define MAX_RULES 64
#define MAX_KEYS 65536

typedef struct rule {
    int kind;                      /* 0 any, 1 reads, 2 writes */
    long lo, hi;                   /* request numbers (of that kind), hi -1: all from lo */
    char action[16];               /* a status, slow, drop */
    long arg;                      /* slow: ms */
} rule;

/* One idempotency key's record. */
typedef struct ikey {
    char key[256];                 /* the key */
    uint64_t body_hash;            /* FNV-1a of the first request's method, path and body */
    bool done;                     /* its first request finished: status and body saved */
    int status;                    /* the saved status */
    char *answer;                  /* the saved body */
    int requests;                  /* requests that carried it */
    int applied;                   /* of those, applied */
} ikey;

static struct {
    const char *token;             /* --token */
    int contacts;                  /* --contacts */
    double rate;                   /* --rate */
    long write_latency;            /* --write-latency */
    bool hold;                     /* --hold-writes: answer no applied write before /_release */
    bool released;                 /* /_release came */
    pthread_cond_t release_cv;     /* signalled by /_release */
    int port;                      /* the port we listen on */
    rule rules[MAX_RULES];
    int nrules;
    FILE *log;
    pthread_mutex_t mu;            /* guards everything below */
    long n, nreads, nwrites;       /* requests seen, of each kind */
    double tat;                    /* GCRA theoretical arrival time */
    int *applied;                  /* [contacts + 1] writes applied per id */
    json_t *props;                 /* id -> properties written */
    ikey *keys;                    /* [MAX_KEYS] */
    int nkeys;
} S = { .contacts = 25, .mu = PTHREAD_MUTEX_INITIALIZER,
        .release_cv = PTHREAD_COND_INITIALIZER };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (ms > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; s && *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL;
}

/* ---- script -------------------------------------------------------------- */

static bool load_script(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return false;
    }
    char line[256];
    while (fgets(line, sizeof line, f) && S.nrules < MAX_RULES) {
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || !*p)
            continue;
        rule *r = &S.rules[S.nrules];
        memset(r, 0, sizeof *r);
        if (strncmp(p, "read ", 5) == 0)
            r->kind = 1, p += 5;
        else if (strncmp(p, "write ", 6) == 0)
            r->kind = 2, p += 6;
        char when[32];
        if (sscanf(p, "%31s %15s %ld", when, r->action, &r->arg) < 2)
            continue;
        if (strcmp(when, "*") == 0)
            r->lo = 1, r->hi = -1;
        else if (sscanf(when, "%ld-%ld", &r->lo, &r->hi) != 2)
            r->lo = r->hi = atol(when);
        S.nrules++;
    }
    fclose(f);
    return true;
}

static const rule *rule_for(long n, long nkind, bool write)
{
    for (int i = 0; i < S.nrules; i++) {
        const rule *r = &S.rules[i];
        long k = r->kind == 0 ? n : nkind;
        if (r->kind == 1 && write)
            continue;
        if (r->kind == 2 && !write)
            continue;
        if (k >= r->lo && (r->hi < 0 || k <= r->hi))
            return r;
    }
    return NULL;
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct req {
    char method[16];
    char path[1024];
    char auth[512];
    char key[256];                 /* Idempotency-Key */
    long content_length;
    bool close;
    char *body;
} req;

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
    case 409: return "Conflict";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    default: return "Status";
    }
}

static bool respond_text(int fd, int status, const char *extra, const char *b)
{
    char head[2048];
    int n = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s\r\n", status, reason(status), strlen(b),
                     extra ? extra : "");
    return send_all(fd, head, (size_t)n) && send_all(fd, b, strlen(b));
}

static bool respond(int fd, int status, const char *extra, json_t *body)
{
    char *b = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
    bool ok = respond_text(fd, status, extra, b ? b : "{}");
    free(b);
    json_decref(body);
    return ok;
}

/* HubSpot's error shape: status, message, category. */
static bool respond_error(int fd, int status, const char *extra, const char *category,
                          const char *msg)
{
    return respond(fd, status, extra, json_pack("{s:s, s:s, s:s}", "status", "error", "message",
                                                msg, "category", category));
}

static void log_line(long n, const req *r, int status, const char *action)
{
    if (!S.log)
        return;
    json_t *o = json_pack("{s:I, s:s, s:s, s:i, s:s, s:s?}", "n", (json_int_t)n, "method",
                          r->method, "path", r->path, "status", status, "action", action,
                          "key", r->key[0] ? r->key : NULL);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    pthread_mutex_lock(&S.mu);
    fprintf(S.log, "%s\n", s);
    fflush(S.log);
    pthread_mutex_unlock(&S.mu);
    free(s);
    json_decref(o);
}

/* ---- contacts ------------------------------------------------------------ */

/* Contact i as HubSpot's CRM v3 answers an object: id, properties (with
 * what writes changed), createdAt, updatedAt, archived. */
static json_t *contact(int i)
{
    static const char *const first[] = { "Ada", "Grace", "Alan", "Edsger", "Barbara" };
    static const char *const co[] = { "Acme", "Globex", "Initech", "Umbrella" };
    char id[16], email[64], name[32];
    snprintf(id, sizeof id, "%d", i);
    snprintf(email, sizeof email, "lead%d@example.com", i);
    snprintf(name, sizeof name, "Lead %d", i);
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "email", email, "firstname",
                          first[i % 5], "lastname", name, "company", co[i % 4], "createdate",
                          "2026-12-01T00:00:00Z", "hs_object_id", id);
    json_t *w = json_object_get(S.props, id);
    if (w)
        json_object_update(p, w);
    return json_pack("{s:s, s:o, s:s, s:s, s:b}", "id", id, "properties", p, "createdAt",
                     "2026-12-01T00:00:00Z", "updatedAt", w ? "2026-12-07T00:00:00Z"
                     : "2026-12-01T00:00:00Z", "archived", 0);
}

/* ?name=value in path, or NULL (written into buf). */
static const char *query(const char *path, const char *name, char *buf, size_t cap)
{
    const char *q = strchr(path, '?');
    size_t nl = strlen(name);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        size_t k = strcspn(p, "&");
        if (k > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            snprintf(buf, cap, "%.*s", (int)(k - nl - 1), p + nl + 1);
            return buf;
        }
        p += k;
        if (*p)
            p++;
    }
    return NULL;
}

/* Contacts from..to (1-based, inclusive of from), as an array. */
static json_t *page_of(int from, int count)
{
    json_t *a = json_array();
    pthread_mutex_lock(&S.mu);
    for (int i = from; i < from + count && i <= S.contacts; i++)
        json_array_append_new(a, contact(i));
    pthread_mutex_unlock(&S.mu);
    return a;
}

/* GET /crm/v3/objects/contacts/{id}: one contact, or 404. */
static bool read_contact(int fd, const char *id)
{
    char *end;
    long i = strtol(id, &end, 10);
    if (end == id || *end || i < 1 || i > S.contacts)
        return respond_error(fd, 404, NULL, "OBJECT_NOT_FOUND", "resource not found");
    pthread_mutex_lock(&S.mu);
    json_t *c = contact((int)i);
    pthread_mutex_unlock(&S.mu);
    return respond(fd, 200, NULL, c);
}

static bool list_hubspot(int fd, const req *r)
{
    char buf[64];
    const char *ls = query(r->path, "limit", buf, sizeof buf);
    int limit = ls ? atoi(ls) : 10;
    if (limit < 1 || limit > 100)
        return respond_error(fd, 400, NULL, "VALIDATION_ERROR", "limit must be 1..100");
    const char *after = query(r->path, "after", buf, sizeof buf);
    int from = after ? atoi(after) : 1;
    if (after && (from < 1 || from > S.contacts + 1))
        return respond_error(fd, 400, NULL, "VALIDATION_ERROR", "bad cursor");
    json_t *o = json_pack("{s:o}", "results", page_of(from, limit));
    if (from + limit <= S.contacts) {
        char next[32], link[256];
        snprintf(next, sizeof next, "%d", from + limit);
        snprintf(link, sizeof link, "http://127.0.0.1:%d/crm/v3/objects/contacts?limit=%d"
                 "&after=%d", S.port, limit, from + limit);
        json_object_set_new(o, "paging", json_pack("{s:{s:s, s:s}}", "next", "after", next,
                                                   "link", link));
    }
    return respond(fd, 200, NULL, o);
}

static bool list_link(int fd, const req *r)
{
    char buf[64];
    const char *ps = query(r->path, "page", buf, sizeof buf);
    int page = ps ? atoi(ps) : 1;
    const char *pp = query(r->path, "per_page", buf, sizeof buf);
    int per = pp ? atoi(pp) : 30;
    if (page < 1 || per < 1 || per > 100)
        return respond_error(fd, 400, NULL, "VALIDATION_ERROR", "page >= 1, per_page 1..100");
    char extra[512] = "";
    int last = (S.contacts + per - 1) / per;
    /* the forms RFC 8288 allows, page by page: other links first, relation
     * types several to a rel, rel quoted or not, a relative target */
    if (page < last && page % 2 == 1)
        snprintf(extra, sizeof extra, "Link: <http://127.0.0.1:%d/v2/contacts?page=1&per_page="
                 "%d>; rel=\"first prev\"; title=\"a, b\", <http://127.0.0.1:%d/v2/contacts?"
                 "page=%d&per_page=%d>; rel=\"last\"\r\nLink: <http://127.0.0.1:%d/v2/contacts?"
                 "page=%d&per_page=%d>; rel=\"prefetch next\"\r\n", S.port, per, S.port, last,
                 per, S.port, page + 1, per);
    else if (page < last)
        snprintf(extra, sizeof extra, "Link: </v2/contacts?page=%d&per_page=%d>;rel=next\r\n",
                 page + 1, per);
    return respond(fd, 200, extra, page_of((page - 1) * per + 1, per));
}

static bool list_next(int fd, const req *r)
{
    char buf[64];
    const char *cs = query(r->path, "cursor", buf, sizeof buf);
    int from = cs ? atoi(cs + 1) : 1;           /* cursors look like c<n> */
    json_t *next = json_null();
    if (from + 7 <= S.contacts) {
        char u[256];
        snprintf(u, sizeof u, "/v1/contacts?cursor=c%d", from + 7);
        next = json_string(u);                  /* a relative link, as JSON:API allows */
    }
    return respond(fd, 200, NULL, json_pack("{s:o, s:{s:o}}", "data", page_of(from, 7), "links",
                                            "next", next));
}

/* ---- writes -------------------------------------------------------------- */

static ikey *key_find(const char *k)
{
    for (int i = 0; i < S.nkeys; i++)
        if (strcmp(S.keys[i].key, k) == 0)
            return &S.keys[i];
    return NULL;
}

/* The endpoint itself: apply the update, the answer. */
static int apply(const req *r, const char *id, char **answer)
{
    int i = atoi(id);
    json_error_t je;
    json_t *b = r->body ? json_loads(r->body, 0, &je) : NULL;
    json_t *props = json_object_get(b, "properties");
    int st;
    if (i < 1 || i > S.contacts) {
        *answer = strdup("{\"status\":\"error\",\"message\":\"resource not found\","
                         "\"category\":\"OBJECT_NOT_FOUND\"}");
        st = 404;
    } else if (!json_is_object(props)) {
        *answer = strdup("{\"status\":\"error\",\"message\":\"the body needs properties\","
                         "\"category\":\"VALIDATION_ERROR\"}");
        st = 400;
    } else {
        pthread_mutex_lock(&S.mu);
        S.applied[i]++;
        json_t *old = json_object_get(S.props, id);
        if (old)
            json_object_update(old, props);
        else
            json_object_set(S.props, id, props);
        json_t *o = contact(i);
        pthread_mutex_unlock(&S.mu);
        *answer = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        st = 200;
    }
    json_decref(b);
    return st;
}

static bool write_contact(int fd, long n, const req *r, const char *id)
{
    char *answer = NULL;
    if (!r->key[0]) {                         /* no key: applied every time */
        sleep_ms(S.write_latency / 2);
        int st = apply(r, id, &answer);
        sleep_ms(S.write_latency - S.write_latency / 2);
        log_line(n, r, st, "applied-nokey");
        bool ok = respond_text(fd, st, NULL, answer);
        free(answer);
        return ok;
    }
    uint64_t h = fnv(fnv(fnv(0xcbf29ce484222325ULL, r->method), r->path), r->body);
    pthread_mutex_lock(&S.mu);
    ikey *k = key_find(r->key);
    if (k) {
        k->requests++;
        bool same = k->body_hash == h, done = k->done;
        int st = k->status;
        char *saved = done && same ? strdup(k->answer) : NULL;
        pthread_mutex_unlock(&S.mu);
        if (!same) {
            log_line(n, r, 400, "key-reused");
            return respond(fd, 400, NULL, json_pack("{s:{s:s, s:s}}", "error", "type",
                           "idempotency_error", "message", "Keys for idempotent requests can "
                           "only be used with the same parameters they were first used with."));
        }
        if (!done) {
            log_line(n, r, 409, "key-in-progress");
            return respond(fd, 409, NULL, json_pack("{s:{s:s, s:s}}", "error", "type",
                           "idempotency_error", "message", "A request with this idempotency "
                           "key is still being processed."));
        }
        log_line(n, r, st, "replayed");
        bool ok = respond_text(fd, st, "Idempotent-Replayed: true\r\n", saved);
        free(saved);
        return ok;
    }
    if (S.nkeys == MAX_KEYS) {
        pthread_mutex_unlock(&S.mu);
        return respond_error(fd, 500, NULL, "INTERNAL", "too many keys");
    }
    k = &S.keys[S.nkeys++];
    memset(k, 0, sizeof *k);
    snprintf(k->key, sizeof k->key, "%s", r->key);
    k->body_hash = h;
    k->requests = 1;
    int slot = (int)(k - S.keys);
    pthread_mutex_unlock(&S.mu);
    sleep_ms(S.write_latency / 2);
    int st = apply(r, id, &answer);
    pthread_mutex_lock(&S.mu);
    k = &S.keys[slot];
    k->applied += st == 200;
    k->status = st;
    k->answer = strdup(answer);
    k->done = true;
    while (S.hold && !S.released)               /* applied, and its client kept waiting */
        pthread_cond_wait(&S.release_cv, &S.mu);
    pthread_mutex_unlock(&S.mu);
    sleep_ms(S.write_latency - S.write_latency / 2);
    log_line(n, r, st, "applied");
    bool ok = respond_text(fd, st, NULL, answer);
    free(answer);
    return ok;
}

static bool stats(int fd)
{
    json_t *applied = json_object(), *keys = json_object();
    pthread_mutex_lock(&S.mu);
    for (int i = 1; i <= S.contacts; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        if (S.applied[i])
            json_object_set_new(applied, id, json_integer(S.applied[i]));
    }
    int running = 0;
    for (int i = 0; i < S.nkeys; i++) {
        json_object_set_new(keys, S.keys[i].key, json_pack("{s:i, s:i}", "requests",
                            S.keys[i].requests, "applied", S.keys[i].applied));
        running += !S.keys[i].done;
    }
    long n = S.n, reads = S.nreads;
    pthread_mutex_unlock(&S.mu);
    return respond(fd, 200, NULL, json_pack("{s:I, s:o, s:o, s:i, s:I}", "requests",
                                            (json_int_t)n, "applied", applied, "keys", keys,
                                            "in_progress", running, "reads",
                                            (json_int_t)reads));
}

/* GCRA without burst: the seconds to wait, 0 to go on. */
static double rate_check(void)
{
    if (S.rate <= 0)
        return 0;
    double now = now_s(), iv = 1.0 / S.rate;
    pthread_mutex_lock(&S.mu);
    double tat = S.tat > now ? S.tat : now;
    double wait = tat - now;
    if (wait <= 0)
        S.tat = tat + iv;
    pthread_mutex_unlock(&S.mu);
    return wait > 0 ? wait : 0;
}

static bool handle(int fd, req *r)
{
    if (strcmp(r->path, "/_stats") == 0)
        return stats(fd);
    if (strcmp(r->path, "/_release") == 0) {
        pthread_mutex_lock(&S.mu);
        S.released = true;
        pthread_cond_broadcast(&S.release_cv);
        pthread_mutex_unlock(&S.mu);
        return respond(fd, 200, NULL, json_object());
    }
    bool write = strcmp(r->method, "GET") != 0;
    pthread_mutex_lock(&S.mu);
    long n = ++S.n, nk = write ? ++S.nwrites : ++S.nreads;
    pthread_mutex_unlock(&S.mu);
    const rule *ru = rule_for(n, nk, write);
    if (ru && strcmp(ru->action, "drop") == 0) {
        log_line(n, r, 0, "drop");
        return false;
    }
    if (ru && strcmp(ru->action, "slow") == 0)
        sleep_ms(ru->arg);
    int code = ru && strcmp(ru->action, "slow") != 0 ? atoi(ru->action) : 0;
    double wait = rate_check();
    if (wait > 0 || code == 429) {
        char extra[64];
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", wait > 0 ? (int)ceil(wait) : 1);
        log_line(n, r, 429, "rate-limited");
        return respond_error(fd, 429, extra, "RATE_LIMITS", "You have reached your secondly "
                             "limit.");
    }
    if (ru && strcmp(ru->action, "401-echo") == 0) {   /* a server that quotes the credential */
        char msg[700];
        snprintf(msg, sizeof msg, "The token '%s' is expired.", r->auth);
        log_line(n, r, 401, "injected");
        return respond_error(fd, 401, NULL, "EXPIRED_AUTHENTICATION", msg);
    }
    if (code) {
        log_line(n, r, code, "injected");
        return respond_error(fd, code, NULL, code == 401 ? "INVALID_AUTHENTICATION" : "ERROR",
                             code == 401 ? "Authentication credentials not found." :
                             "Injected failure.");
    }
    if (S.token && strcmp(r->auth, S.token) != 0) {
        log_line(n, r, 401, "unauthorized");
        return respond_error(fd, 401, NULL, "INVALID_AUTHENTICATION", "Authentication "
                             "credentials not found. This API supports OAuth 2.0 authentication.");
    }
    const char *one = "/crm/v3/objects/contacts/";
    bool ok;
    if (strcmp(r->method, "PATCH") == 0 && strncmp(r->path, one, strlen(one)) == 0)
        return write_contact(fd, n, r, r->path + strlen(one));
    if (write)
        ok = respond_error(fd, 404, NULL, "NOT_FOUND", "no such endpoint");
    else if (strncmp(r->path, "/crm/v3/objects/contacts", 24) == 0 && strchr("?", r->path[24]))
        ok = list_hubspot(fd, r);
    else if (strncmp(r->path, one, strlen(one)) == 0)
        ok = read_contact(fd, r->path + strlen(one));
    else if (strncmp(r->path, "/v2/contacts", 12) == 0)
        ok = list_link(fd, r);
    else if (strncmp(r->path, "/v1/contacts", 12) == 0)
        ok = list_next(fd, r);
    else
        ok = respond_error(fd, 404, NULL, "NOT_FOUND", "no such endpoint");
    log_line(n, r, 200, "read");
    return ok && !r->close;
}

/* ---- connections --------------------------------------------------------- */

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
    sscanf(head, "%15s %1023s", r->method, r->path);
    char tmp[64];
    for (char *l = strstr(head, "\r\n"); l && l[2] != '\r' && l[2]; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2;
        if (strncasecmp(h, "content-length:", 15) == 0)
            r->content_length = atol(h + 15);
        else if (strncasecmp(h, "idempotency-key:", 16) == 0)
            header_value(h + 16, r->key, sizeof r->key);
        else if (strncasecmp(h, "authorization:", 14) == 0) {
            header_value(h + 14, r->auth, sizeof r->auth);
            if (strncmp(r->auth, "Bearer ", 7) == 0)
                memmove(r->auth, r->auth + 7, strlen(r->auth + 7) + 1);
        } else if (strncasecmp(h, "connection:", 11) == 0) {
            header_value(h + 11, tmp, sizeof tmp);
            r->close = strcasecmp(tmp, "close") == 0;
        }
    }
}

typedef struct conn {
    int fd;
    char *buf;
    size_t len, cap;
} conn;

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
    do
        k = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
    while (k < 0 && errno == EINTR);
    if (k <= 0)
        return false;
    c->len += (size_t)k;
    c->buf[c->len] = '\0';
    return true;
}

static bool read_request(conn *c, req *r)
{
    char *end;
    while (!(end = c->len ? strstr(c->buf, "\r\n\r\n") : NULL))
        if (c->len > MAX_HEAD || !fill(c))
            return false;
    size_t head = (size_t)(end - c->buf) + 4;
    end[2] = '\0';
    memset(r, 0, sizeof *r);
    parse_headers(c->buf, r);
    if (r->content_length < 0 || r->content_length > MAX_BODY)
        r->content_length = 0;
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
    conn c = { (int)(intptr_t)arg, NULL, 0, 0 };
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    req r;
    while (read_request(&c, &r)) {
        bool keep = handle(c.fd, &r);
        free(r.body);
        if (!keep)
            break;
    }
    close(c.fd);
    free(c.buf);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: fakecrm [--port-file F] [--token T] [--contacts N] [--rate N]\n"
                    "               [--write-latency MS] [--hold-writes on] [--script F] [--log F]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--port-file") == 0) port_file = v;
        else if (strcmp(a, "--token") == 0) S.token = v;
        else if (strcmp(a, "--contacts") == 0) S.contacts = atoi(v);
        else if (strcmp(a, "--rate") == 0) S.rate = atof(v);
        else if (strcmp(a, "--write-latency") == 0) S.write_latency = atol(v);
        else if (strcmp(a, "--hold-writes") == 0) S.hold = strcmp(v, "on") == 0;
        else if (strcmp(a, "--script") == 0) { if (!load_script(v)) return 2; }
        else if (strcmp(a, "--log") == 0) {
            if (!(S.log = fopen(v, "w"))) { perror(v); return 2; }
        } else usage();
    }
    if (S.contacts < 0 || S.contacts > 100000)
        usage();
    S.applied = calloc((size_t)S.contacts + 2, sizeof *S.applied);
    S.keys = calloc(MAX_KEYS, sizeof *S.keys);
    S.props = json_object();
    signal(SIGPIPE, SIG_IGN);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0) {
        perror("fakecrm: listen");
        return 1;
    }
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    S.port = ntohs(sa.sin_port);
    printf("%d\n", S.port);
    fflush(stdout);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", S.port) < 0 || fclose(f) != 0 || rename(tmp, port_file)) {
            perror(port_file);
            return 1;
        }
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
