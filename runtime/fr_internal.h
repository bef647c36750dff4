/*
 * fr_internal.h: libflowrt's one internal header, a section per .c file.
 * Generated code never includes it; it sees only flowrt.h.
 *
 * The seams between the parts of the runtime:
 *   fr_call (fr_call.c) renders the prompt, asks the journal, reserves the
 *   budget, then makes attempts through fr_provider_call, which dispatches to
 *   the mock (fr_mock.c) or to HTTP (fr_http.c with fr_anthropic.c and
 *   fr_openai.c).  An attempt's answer is repaired (fr_repair.c), validated
 *   (fr_validate.c) and, on failure, retried with the validation error told
 *   to the model.
 */
#ifndef FR_INTERNAL_H
#define FR_INTERNAL_H

#include "flowrt.h"

#include <pthread.h>
#include <stdio.h>

/* ---- fr_alloc.c: all runtime allocation goes through one hook ------------- */

void *fr_malloc(size_t n);                 /* NULL only when the hook says so */
void *fr_calloc(size_t n, size_t size);
void *fr_realloc(void *p, size_t n);
char *fr_strdup(const char *s);
void fr_free(void *p);
/* Tests: make the n-th allocation from now on fail (0: never). */
void fr_alloc_fail_after(long n);
/* Tests: allocations left before the armed failure; 0 once it happened (or
 * when disarmed), so a test can tell whether its operation hit it. */
long fr_alloc_countdown(void);
/* json_loadb with the hook held off: jansson's parser cannot survive a failed
 * allocation (it corrupts its token buffer), so parse JSON text through this. */
json_t *fr_json_loadb(const char *s, size_t n, size_t flags, json_error_t *err);

/* ---- fr_value.c: helpers the rest of the runtime shares ------------------- */

int64_t fr_now_ms(void);                       /* monotonic milliseconds */
int64_t fr_wall_ms(void);                      /* milliseconds since the epoch */
int64_t fr_wall_us(void);                      /* microseconds since the epoch (spans) */
/* ms from now as pthread_cond_timedwait takes it (a default condition
 * variable: CLOCK_REALTIME). */
struct timespec fr_deadline_in(int64_t ms);

/* Which name keys the fields of a record: the wire name (values in the
 * workflow, input data), or the model key (a model's answer, before
 * fr_normalize_keys turns it into a value). */
typedef enum fr_keys { FR_KEYS_WIRE, FR_KEYS_MODEL } fr_keys;

/* Sets cx->sig = FR_SIG_USAGE (bad input data, exit 2) with a message. */
void *fr_usage(fr_ctx *cx, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* An allocation failed: FR_SIG_FAIL "out of memory" unless a signal is set. */
void *fr_oom(fr_ctx *cx);
/* Drops every value of cx's pool and frees the pool itself (context end). */
void fr_pool_free(fr_ctx *cx);
/* A copy of v (new reference) shaped by t: record keys in schema order,
 * null optionals left out, integers in float places made reals.  Use it on
 * every validated value that crosses a boundary.  NULL when out of memory. */
json_t *fr_normalize(json_t *v, const fr_type *t);
/* fr_normalize of a record keyed by keys (a model's answer: model keys);
 * the copy is keyed by wire names.  Unknown keys are left out unless the
 * schema keeps them; a kept record keeps its keys' order. */
json_t *fr_normalize_keys(json_t *v, const fr_type *t, fr_keys keys);
/* An fr_buf that ran out of memory keeps what it had (s stays a valid
 * string), ignores further writes, and says so here. */
bool fr_buf_failed(const fr_buf *b);
void fr_buf_printf(fr_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* JSON of a string's n bytes (quoted, escaped), a float (the shortest of
 * %.15g..%.17g that reads back, always with a '.' or an exponent), an int. */
void fr_buf_json_string(fr_buf *b, const char *s, size_t n);
void fr_buf_json_real(fr_buf *b, double d);
void fr_buf_json_int(fr_buf *b, int64_t i);
/* v of type t as compact JSON, as fr_to_json writes it, to b. */
void fr_buf_typed(fr_buf *b, json_t *v, const fr_type *t);
bool fr_utf8_valid(const char *s, size_t n);
size_t fr_utf8_count(const char *s, size_t n);   /* code points of valid UTF-8 */

/* ---- fr_loop.c: the event loop (timers, sockets, posted work) ------------- */

int64_t fr_mono_ns(void);                      /* monotonic nanoseconds */

#define FR_TIMER_IDLE ((size_t)-1)
/* A timer its owner embeds; fn runs on the loop thread with the timer lock
 * held: short, and it must not arm or cancel timers. */
typedef struct fr_timer {
    int64_t at_ns;                 /* when it goes off (monotonic) */
    size_t slot;                   /* its place in the heap, FR_TIMER_IDLE when not armed */
    void (*fn)(struct fr_timer *t);/* what it does then */
} fr_timer;
bool fr_timer_arm(fr_timer *t, int64_t at_ns);   /* false: no loop (out of resources) */
/* Disarms t; once it returns, t's callback is not running and will not run.
 * True when t was still armed. */
bool fr_timer_cancel(fr_timer *t);

enum { FR_WATCH_IN = 1, FR_WATCH_OUT = 2 };
/* A socket the loop thread watches (its owner embeds it); fn runs on the
 * loop thread.  fr_watch_set and fr_watch_clear: on the loop thread only. */
typedef struct fr_watch {
    int fd;                        /* the socket, -1 when not watched */
    int what;                      /* FR_WATCH_IN | FR_WATCH_OUT */
    void (*fn)(struct fr_watch *w, int what);  /* it is ready for what */
    struct fr_watch *next;         /* in the loop's list of retired watches */
} fr_watch;
bool fr_watch_set(fr_watch *w, int fd, int what);
void fr_watch_clear(fr_watch *w);
/* Stops watching and frees w (malloc'd, the fr_watch at its start) once the
 * events the loop has in hand are done: one of them may still point at it. */
void fr_watch_retire(fr_watch *w);

bool fr_loop_ready(void);                      /* starts the thread on first use */
bool fr_loop_on_thread(void);                  /* the caller is the loop thread */
/* Runs fn(arg) on the loop thread soon; false when out of memory. */
bool fr_loop_post(void (*fn)(void *), void *arg);
/* The one driver (libcurl's multi handle): deadline() is its next timeout
 * (monotonic ns, -1 none) and expire() runs when it is reached, both on the
 * loop thread without the timer lock. */
void fr_loop_driver(int64_t (*deadline)(void), void (*expire)(void));

/* ---- fr_sched.c: fibers on a few threads ---------------------------------- */

typedef struct fr_fiber fr_fiber;
typedef struct fr_waiter fr_waiter;

/* A condition variable on a pthread mutex that parks a fiber instead of
 * blocking its thread (works from plain threads too).  Zero-initialized. */
typedef struct fr_cond {
    fr_waiter *head, *tail;        /* the waiters, first come first woken */
} fr_cond;
void fr_cond_wait(fr_cond *c, pthread_mutex_t *mu);
/* False once the monotonic deadline has passed. */
bool fr_cond_timedwait(fr_cond *c, pthread_mutex_t *mu, int64_t deadline_ns);
void fr_cond_signal(fr_cond *c);               /* with mu held */
void fr_cond_broadcast(fr_cond *c);            /* with mu held */

/* The current waiter (a fiber or this thread), parking it until fr_unpark;
 * a wake-up before the park is kept; waits must loop on their condition. */
fr_waiter *fr_waiter_self(void);
void fr_park(void);
void fr_unpark(fr_waiter *w);
bool fr_in_fiber(void);

void fr_sleep_until(int64_t deadline_ns);      /* monotonic; a fiber parks on a timer */
void fr_sleep_ms(int64_t ms);

/* Fibers started with fr_spawn(j, ...) are counted by j; fr_join_wait
 * returns once they all ended (and ends j). */
typedef struct fr_join {
    pthread_mutex_t mu;            /* guards count */
    int count;                     /* fibers still running */
    fr_cond done;                  /* count reached zero */
} fr_join;
void fr_join_init(fr_join *j);
void fr_join_wait(fr_join *j);
bool fr_spawn(fr_join *j, void (*fn)(void *), void *arg);  /* false: no memory */
/* Runs fn(arg) in a fiber and waits for it (at once when already in one). */
bool fr_sched_call(void (*fn)(void *), void *arg);

/* ---- fr_validate.c --------------------------------------------------------- */

const char *fr_field_key(const fr_field *f, fr_keys keys);
/* The field keyed so, or NULL. */
const fr_field *fr_schema_field(const fr_schema *sc, const char *key, fr_keys keys);
/* The field key closest to key if it looks like a typo of it, else NULL. */
const char *fr_closest_field(const fr_schema *sc, const char *key, fr_keys keys);
/* fr_validate with records keyed by keys. */
bool fr_validate_keys(json_t *v, const fr_type *t, fr_keys keys, fr_buf *err);
/* One field's value (NULL or null: absent) against its type and constraints. */
bool fr_validate_field(json_t *v, const fr_field *f, fr_buf *err);
/* Every top-level problem of record v (wire keys): fn(ctx, key, message) once
 * per unknown key (when the schema rejects them) and per bad field, the
 * message as fr_validate words it ("tags[2]: expected string, got number"),
 * NULL when memory ran out.  Returns how many. */
typedef void (*fr_problem_fn)(void *ctx, const char *key, const char *msg);
int fr_validate_fields(json_t *v, const fr_schema *sc, fr_problem_fn fn, void *ctx);

/* Edit distance of a and b (insertions, deletions, substitutions), or a large
 * number for names over 64 bytes: the "did you mean" of fields and flags. */
size_t fr_edit_distance(const char *a, const char *b);

/* ---- fr_redact.c: @sensitive values kept out of traces, messages, journal - */

typedef struct fr_redact fr_redact;
fr_redact *fr_redact_new(void);                 /* NULL: out of memory */
void fr_redact_free(fr_redact *r);
/* The run id the journal's hashes are salted with. */
void fr_redact_salt(fr_redact *r, const char *run_id);
/* t holds a @sensitive field (records, lists, options of them). */
bool fr_type_sensitive(const fr_type *t);
/* Notes the values of v's sensitive fields (v of type t). */
void fr_redact_note(fr_redact *r, json_t *v, const fr_type *t);
/* text with every noted value replaced by "[redacted]" (malloc'd; NULL
 * only for a NULL text). */
char *fr_redact_text(fr_redact *r, const char *text);
/* The same for the string o[key], in place. */
void fr_redact_json_text(fr_redact *r, json_t *o, const char *key);
/* Whether any value was noted (else fr_redact_text only copies). */
bool fr_redact_active(fr_redact *r);
/* A copy of v whose string leaves that are noted values are "[redacted]". */
json_t *fr_redact_json(fr_redact *r, json_t *v);
/* A copy of v (of type t) with its sensitive fields hashed for the journal,
 * or NULL when t has none. */
json_t *fr_redact_hashed(fr_redact *r, json_t *v, const fr_type *t);
/* Puts back in v the hashed values it can from the noted ones; false when
 * one could not be (the answer must be asked again). */
bool fr_redact_restore(fr_redact *r, json_t *v, const fr_type *t);
/* A copy of v (any JSON, keys too) with every noted value inside its
 * strings replaced by its "[sensitive sha256:...]" mark; NULL only when
 * memory ran out (then nothing may be kept). */
json_t *fr_redact_marked(fr_redact *r, json_t *v);
/* A copy of v with each mark whose value is noted put back; *lost when one
 * is not (it stays as it is); NULL only when memory ran out. */
json_t *fr_redact_unmarked(fr_redact *r, json_t *v, bool *lost);

/* ---- fr_sha256.c: SHA-256 (FIPS 180-4) ------------------------------------ */

typedef struct fr_sha256 {
    uint32_t h[8];                 /* the chaining state */
    uint8_t block[64];             /* the partial block */
    size_t fill;                   /* bytes in block */
    uint64_t total;                /* bytes hashed */
} fr_sha256;

void fr_sha256_init(fr_sha256 *s);
void fr_sha256_update(fr_sha256 *s, const void *data, size_t n);
void fr_sha256_final_hex(fr_sha256 *s, char out[65]);   /* 64 hex digits and a NUL */
/* SHA-256 of n bytes as 64 hex digits and a NUL. */
void fr_sha256_hex(const void *data, size_t n, char out[65]);

/* ---- the provider seam ---------------------------------------------------- */

/* One attempt of one agent call, as the provider sees it. */
typedef struct fr_request {
    const fr_agent *agent;         /* the agent being called */
    const fr_model *model;         /* the model (the agent's, or `using`) */
    const char *system;            /* rendered system prompt, or "" */
    const char *prompt;            /* rendered user prompt */
    const char *feedback;          /* the previous attempt's problem, to tell the model, or NULL */
    const char *prev_answer;       /* the previous attempt's raw answer, or NULL */
    int attempt;                   /* 0 for the first */
    int timeout_ms;                /* for this attempt */
    int max_tokens;                /* the answer's cap for this attempt */
    bool cache;                    /* mark the fixed prefix as a cache breakpoint */
    fr_output_mode mode;           /* FR_OUT_DEFAULT: the model's; else the mode this
                                      request goes in (fr_http.c's fallback) */
    json_t *history;               /* a tool loop's turns after the prompt, or NULL (below) */
    bool tools_off;                /* the loop reached its bound: answer now, no tool call */
    json_t *const *args;           /* the call's arguments (the mock copies from them), or NULL */
    const char *item;              /* the item's path ("3", "2.1"; "" none), or NULL */
} fr_request;

/* A tool loop's history, the same for every wire format (each renders it):
 * a JSON array of the model's turns and the tools' results, alternating,
 *   {"text": "...", "calls": [{"id": ID, "name": TOOL, "input": {...}}, ...]}
 *   {"results": [{"id": ID, "name": TOOL, "content": "...", "error": false}, ...]}
 * A call's "arguments" (OpenAI: the model's own text of its input) is kept
 * when given, to send it back as it came. */

typedef enum fr_outcome {
    FR_ANSWER,                     /* output holds the parsed (not yet validated) answer */
    FR_TRANSIENT,                  /* retry after backoff: network, 408/409/429/5xx/529, timeout */
    FR_BAD_ANSWER,                 /* retry with feedback: refusal, truncated, unparsable */
    FR_FATAL,                      /* do not retry: 400/401/403/404/413, missing key */
    FR_TOOL_CALLS,                 /* the model asks for tools: turn holds its turn */
} fr_outcome;

/* What was wrong with an FR_BAD_ANSWER, for the summary (FR_BAD_NONE: not
 * said; fr_call then goes by finish_reason). */
typedef enum fr_bad_kind {
    FR_BAD_NONE,                   /* not a bad answer, or the provider did not say */
    FR_BAD_UNPARSABLE,             /* no JSON could be taken out of the answer */
    FR_BAD_REFUSAL,                /* the model refused */
    FR_BAD_CUT_OFF,                /* the answer was cut off at max_tokens */
    FR_BAD_USAGE,                  /* usage no request could cost, or counts that are no
                                      counts: the answer is not used, the hold is charged */
} fr_bad_kind;

typedef struct fr_response {
    fr_outcome outcome;            /* what happened */
    json_t *output;                /* FR_ANSWER: the answer (owned by the response) */
    char *raw;                     /* the raw answer text, for feedback (malloc'd or NULL) */
    char *error;                   /* what went wrong, for messages (malloc'd or NULL);
                                      never contains a secret */
    int http_status;               /* 0 when no HTTP exchange happened */
    int retry_after_ms;            /* from retry-after(-ms), capped (--max-retry-after); -1 none */
    int64_t retry_after_asked_ms;  /* what the server asked before the cap, -1 if nothing */
    char *finish_reason;           /* provider's stop/finish reason (malloc'd or NULL) */
    bool usage;                    /* the provider reported usage (else it is charged the hold) */
    bool usage_bad;                /* a usage count was no count (a string, negative): the
                                      attempt is a bad answer (FR_BAD_USAGE) */
    int64_t input_tokens;          /* input tokens neither read from nor written to the cache */
    int64_t output_tokens;         /* output tokens, reasoning included */
    int64_t cache_read_tokens;     /* input tokens read from the cache */
    int64_t cache_write_tokens;    /* input tokens written to the cache (5-minute TTL) */
    int64_t cache_write_1h_tokens; /* input tokens written to the cache (1-hour TTL) */
    char *response_id;             /* the provider's id of the answer (malloc'd or NULL) */
    bool repaired;                 /* the answer's JSON had to be repaired (fences, text
                                      around it, trailing commas): for the summary */
    bool unsent;                   /* the request never left (a stop came while it waited
                                      for its send slot): no attempt, nothing to pay */
    fr_bad_kind bad;               /* FR_BAD_ANSWER: what was wrong, for the summary */
    const char *secret;            /* while fr_http_call runs: the key, which no message may
                                      hold (borrowed; NULL after) */
    json_t *turn;                  /* FR_TOOL_CALLS: the model's turn, in the history's
                                      form (owned by the response) */
} fr_response;

void fr_response_free(fr_response *r);

/* ---- fr_mock.c ------------------------------------------------------------ */

/* --mock-fixtures FILE: canned answers per agent (fr_fixture.c). */
typedef struct fr_fixtures fr_fixtures;
/* Reads FILE for program p; NULL with err (file:line: why) when it is bad. */
fr_fixtures *fr_fixtures_load(const char *path, const fr_program *p, fr_buf *err);
void fr_fixtures_free(fr_fixtures *f);
/* The answer of the first fixture that holds for req (borrowed), or NULL
 * (the call is noted for the report). */
json_t *fr_fixtures_answer(fr_fixtures *f, const fr_request *req);
/* Prints the calls no fixture held for and the fixtures no call used
 * (stderr, "fixtures: ..." lines); returns how many. */
int fr_fixtures_report(fr_fixtures *f);

/* Mock settings from the command line (--mock-latency, --mock-fail-rate). */
typedef struct fr_mock_opts {
    int latency_ms;                /* sleep per attempt */
    double fail_rate;              /* probability an attempt fails transiently */
    fr_fixtures *fixtures;         /* --mock-fixtures, or NULL */
} fr_mock_opts;

/* A deterministic answer synthesized from the agent's output type, seeded
 * from the rendered prompt; simulated usage. */
void fr_mock_call(const fr_mock_opts *o, const fr_request *req, fr_response *resp);
/* A value of type t synthesized the same way, seeded by seed (a new
 * reference; NULL when out of memory): the mock's answer to an http
 * operation. */
json_t *fr_mock_value(const fr_type *t, const char *seed);

/* ---- fr_limit.c: the shared rate limiter of one endpoint ------------------ */

typedef struct fr_limiter fr_limiter;

/* One dimension of a provider's rate-limit headers. */
typedef struct fr_rl_dim {
    double limit;                  /* per minute, 0 not said */
    double remaining;              /* what is left, -1 not said */
    int64_t reset_ns;              /* when it is whole again (monotonic ns), -1 not said */
} fr_rl_dim;

/* A response's rate-limit headers, both providers' mapped onto four
 * dimensions (the costs each counts: see fr_limit.c). */
typedef struct fr_rl {
    fr_rl_dim requests;            /* anthropic-ratelimit-requests-*, x-ratelimit-*-requests */
    fr_rl_dim tokens;              /* x-ratelimit-*-tokens: input and max_tokens */
    fr_rl_dim input;               /* anthropic-ratelimit-input-tokens-* */
    fr_rl_dim output;              /* anthropic-ratelimit-output-tokens-*: max_tokens */
} fr_rl;

/* A limiter with known limits per minute (a model's rpm: and tpm:, 0 none);
 * NULL when out of memory. */
fr_limiter *fr_limit_new(double rpm, double tpm);
/* Names l's schedule in Redis: with FLOWRT_REDIS_URL, every process pacing
 * the same endpoint shares it (fr_redis.c). */
void fr_limit_name(fr_limiter *l, const char *name);
void fr_limit_free(fr_limiter *l);
/* Waits for a send slot for a request of about in_tokens of input and
 * out_tokens of output (its max_tokens); returns the send time (the
 * limiter's clock, monotonic ns), or -1 after fr_limit_stop (the request
 * must not be sent). */
int64_t fr_limit_acquire(fr_limiter *l, int64_t in_tokens, int64_t out_tokens);
/* A stop (Ctrl-C, SIGTERM): every waiter for a send slot, and every later
 * one, gets -1 at once: a request still waiting was not in flight. */
void fr_limit_stop(void);
/* The same without waiting: 0 when the slot was taken, else the ns until
 * it is due (nothing taken). */
int64_t fr_limit_try(fr_limiter *l, int64_t in_tokens, int64_t out_tokens);
/* The rate-limit headers of the answer to a request sent at sent_ns. */
void fr_limit_headers(fr_limiter *l, int64_t sent_ns, const fr_rl *h);
/* A retry-after from an overload (503, 529): nobody sends until it has passed. */
void fr_limit_pause(fr_limiter *l, int retry_after_ms);
/* The status of the answer to a request sent at sent_ns (0: none came): a
 * 429 may cut the learned rate. */
void fr_limit_done(fr_limiter *l, int64_t sent_ns, int status);
/* Never more than rps requests a second, whatever else happens (an http
 * operation's `rps:`; the lowest cap given wins). */
void fr_limit_cap(fr_limiter *l, double rps);
/* The request rate paced at now (req/s), 0 for none: tests and benches. */
double fr_limit_rate(fr_limiter *l);
/* Tests: the limiter's clock (monotonic ns); NULL restores the real one. */
void fr_limit_clock(fr_limiter *l, int64_t (*now)(void));

#ifdef FR_WITH_CURL
/* ---- fr_net.c: the transport (libcurl, loaded on first use) ---------------
 * Files that talk to libcurl define FR_WITH_CURL and include <curl/curl.h>
 * first; every libcurl function they call then goes through fr_curl, the
 * table fr_curl_load fills from the library dlopen'd on the first request. */

typedef struct fr_curl_api {
    CURLcode (*global_init_mem)(long flags, curl_malloc_callback m, curl_free_callback f,
                                curl_realloc_callback r, curl_strdup_callback s,
                                curl_calloc_callback c);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *c, CURLoption o, ...);
    CURLcode (*easy_getinfo)(CURL *c, CURLINFO i, ...);
    void (*easy_cleanup)(CURL *c);
    const char *(*easy_strerror)(CURLcode rc);
    CURLcode (*easy_perform)(CURL *c);   /* fr_otlp.c's own thread only */
    struct curl_slist *(*slist_append)(struct curl_slist *l, const char *s);
    void (*slist_free_all)(struct curl_slist *l);
    time_t (*getdate)(const char *s, const time_t *unused);
    CURLSH *(*share_init)(void);
    CURLSHcode (*share_setopt)(CURLSH *s, CURLSHoption o, ...);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption o, ...);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *c);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *c);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t s, int ev, int *running);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t s, void *p);
    const char *(*multi_strerror)(CURLMcode rc);
} fr_curl_api;
extern fr_curl_api fr_curl;

/* Loads libcurl once; false with why in err (NULL: not said). */
bool fr_curl_load(fr_buf *err);
/* An easy handle from the pool (its connection kept alive), NULL when
 * libcurl cannot be loaded or out of memory; give it back when done. */
CURL *fr_net_handle(void);
void fr_net_release(CURL *c);
/* Performs c on the event loop; the calling fiber parks until it is done. */
CURLcode fr_net_perform(CURL *c);

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_share_setopt
#undef curl_multi_setopt
#define curl_easy_init fr_curl.easy_init
#define curl_easy_setopt(c, o, ...) fr_curl.easy_setopt((c), (o), __VA_ARGS__)
#define curl_easy_getinfo(c, i, ...) fr_curl.easy_getinfo((c), (i), __VA_ARGS__)
#define curl_easy_cleanup fr_curl.easy_cleanup
#define curl_easy_strerror fr_curl.easy_strerror
#define curl_slist_append fr_curl.slist_append
#define curl_slist_free_all fr_curl.slist_free_all
#define curl_getdate fr_curl.getdate
#define curl_easy_perform use_fr_net_perform_instead
#endif

/* ---- fr_http.c: real providers (anthropic, openai) ------------------------ */

typedef struct fr_http fr_http;

/* Checks every model's API key is in the environment (error names the
 * variable), sets up the shared connection cache and rate limiters. */
fr_http *fr_http_new(const fr_program *prog, bool mock_all, fr_buf *err);
/* The longest wait a server may ask for (retry-after, a rate limit's reset):
 * a longer one is cut to this (--max-retry-after, default FR_MAX_WAIT_MS). */
#define FR_MAX_WAIT_MS 60000
void fr_http_set_max_wait(fr_http *h, int ms);
void fr_http_free(fr_http *h);
void fr_http_call(fr_http *h, const fr_request *req, fr_response *resp);

/* One exchange of an http operation over the shared transport (the same
 * handles, connection cache and DNS/TLS sharing as the providers'). */
typedef struct fr_xreq {
    const char *method;            /* "GET", "POST", ... */
    const char *url;               /* the full URL */
    const char *const *headers;    /* "Name: value" lines, secrets filled in */
    int nheaders;                  /* how many */
    const char *body;              /* the request body, or NULL */
    int timeout_ms;                /* for this attempt */
} fr_xreq;

typedef struct fr_xres {
    long status;                   /* the HTTP status, 0 when no answer came */
    char *body;                    /* the answer's bytes (fr_malloc'd, NUL-ended) or NULL */
    size_t len;                    /* bytes in body */
    int retry_after_ms;            /* retry-after(-ms), capped (--max-retry-after); -1 none */
    int64_t retry_after_asked_ms;  /* what the server asked before the cap, -1 if nothing */
    char *link_next;               /* the Link header's rel="next" URL (fr_malloc'd) or NULL */
    char *error;                   /* no answer: why (fr_malloc'd) */
    bool transient;                /* no answer: worth another attempt */
} fr_xres;

void fr_http_exchange(fr_http *h, const fr_xreq *rq, fr_xres *res);
void fr_xres_free(fr_xres *res);
/* The limiter of url's scheme, host and port (made on first use), capped
 * at rps when rps > 0; NULL when out of memory. */
fr_limiter *fr_http_host_limiter(fr_http *h, const char *url, double rps);
/* Replaces by "***", in place, every occurrence in *s of secret (keys,
 * operation secrets) and every piece of it of 8 bytes or more that starts
 * it (a cut may have left its start behind).  Scrub a text before cutting it
 * (fr_http_cut), and again after. */
void fr_http_scrub(char **s, const char *secret);
/* Cuts s to at most max bytes, on a UTF-8 character boundary. */
void fr_http_cut(char *s, size_t max);

/* fr_http.c internals shared with the wire formats (fr_anthropic.c,
 * fr_openai.c): each builds a request body and parses a 200 answer. */

/* Wraps a non-object answer schema as {"answer": S} (both providers need an
 * object at the top); sets *wrapped.  Returns a new reference or NULL. */
json_t *fr_http_schema(const char *text, bool *wrapped);
/* The forced tool / response_format name: the output schema's, else
 * "answer" (or "final_answer", ..., when a tool of the agent is so named). */
const char *fr_http_schema_name(const fr_agent *a);
/* Appends one attempt's turns to msgs: the user prompt and, on a retry, the
 * previous answer as the assistant's turn and "Your previous answer was
 * invalid: <feedback>. Answer again with <how> only." as a new user turn (with
 * no previous answer to show, or one of white space only, that text follows
 * the prompt).  cut > 0 splits the prompt into two text blocks there, the
 * first marked as a cache breakpoint (Anthropic).  false when out of memory. */
/* history appends a tool loop's turns (the wire's rendering of req->history)
 * between the prompt and a retry's turns; NULL for none. */
typedef bool (*fr_history_fn)(json_t *msgs, const fr_request *req);
bool fr_http_turns(json_t *msgs, const fr_request *req, const char *how, size_t cut,
                   fr_history_fn history);
/* The text of a tool call's input as the model gave it (its "arguments"),
 * else its input as compact JSON (malloc'd, NULL when out of memory). */
char *fr_http_call_args(json_t *call);
/* The model's structured-output mode, the provider's default resolved. */
fr_output_mode fr_http_mode(const fr_model *m);
/* The mode a request goes in: its own, else its model's. */
fr_output_mode fr_http_req_mode(const fr_request *req);
/* Appends the instruction to answer with a JSON object matching schema (the
 * json_object and prompt modes). */
void fr_http_schema_prompt(fr_buf *b, const char *schema);
/* Where a request's cache breakpoint goes: after `system` bytes of the
 * system text, or after `prompt` bytes of the prompt (0: none).  None when
 * caching is off or the fixed prefix is shorter than the model's minimum. */
typedef struct fr_cut {
    size_t system;                 /* breakpoint after this many bytes of system, 0 none */
    size_t prompt;                 /* ... of the prompt, 0 none */
    int64_t fixed_tokens;          /* the fixed prefix, estimated; 0 when not cacheable */
} fr_cut;
void fr_http_cache_cut(const fr_request *req, size_t sys_len, fr_cut *cut);
/* Takes the answer out of {"answer": ...} when the schema was wrapped. */
json_t *fr_http_unwrap(json_t *answer, bool wrapped);
/* Sets the outcome and the error (made valid UTF-8: it goes back to the
 * model).  The text is kept whole: fr_http_call scrubs the key out of it and
 * only then cuts it to FR_ERROR_MAX bytes, so that a cut never leaves part of
 * a key behind. */
void fr_http_set_error(fr_response *r, fr_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#define FR_ERROR_MAX 1024          /* bytes of an attempt's error text at most */
/* At most max bytes of text for a message (malloc'd, NULL when out of
 * memory): the key (r->secret) scrubbed out first, the cut on a character
 * boundary, and a piece of the key left at the cut scrubbed too. */
char *fr_http_excerpt(const fr_response *r, const char *text, size_t max);
/* Takes b's text (fr_free it), or NULL when b ran out of memory. */
char *fr_http_buf_take(fr_buf *b);
/* A usage count from the wire: an integer in 0..2^40 (more is the cap; a
 * whole number written as a real, 12.0, counts), 0 when absent or null;
 * anything else (a string, a negative or fractional number) is 0 and sets
 * r->usage_bad. */
int64_t fr_http_tokens(json_t *v, fr_response *r);

/* fr_anthropic.c: POST {base}/v1/messages.  The body is the head (model,
 * messages, system, ...) and the schema part (output_config, or tools and
 * tool_choice), which depends only on the agent and the mode: fr_http.c
 * keeps its text per agent and splices it. */
json_t *fr_anthropic_body(const fr_request *req, bool *wrapped);
json_t *fr_anthropic_head(const fr_request *req);
json_t *fr_anthropic_tools(const fr_agent *a, fr_output_mode mode, bool *wrapped);
void fr_anthropic_parse(json_t *body, bool wrapped, fr_response *resp);
/* The same answer parse, for an agent with tools: tool_use blocks (but the
 * forced answer tool's) are the model's turn, FR_TOOL_CALLS. */
void fr_anthropic_parse_agent(json_t *body, const fr_agent *a, bool wrapped, fr_response *resp);

/* fr_openai.c: POST {base}/chat/completions: response_format by mode,
 * parameters by the model's capabilities. */
json_t *fr_openai_body(const fr_request *req, bool *wrapped);
json_t *fr_openai_head(const fr_request *req);
json_t *fr_openai_format(const fr_agent *a, fr_output_mode mode, bool *wrapped);
void fr_openai_parse(json_t *body, bool wrapped, fr_response *resp);

/* ---- fr_repair.c: JSON out of a model's text ------------------------------ */

/* Parses text as a JSON object or array, repairing what is safe to repair:
 * ```json fences, prose around the outermost {...} or [...], trailing commas
 * before } or ].  Sets *repaired when any repair was needed.  Returns a new
 * reference, or NULL with a short reason in err (never the whole text). */
json_t *fr_repair_json(const char *text, bool *repaired, fr_buf *err);
/* Replaces each byte of s that is not part of valid UTF-8 by '?' (a message
 * cut inside a character, jansson's "near '...'" excerpt). */
void fr_repair_utf8(char *s);

/* ---- fr_run.c, fr_call.c, fr_budget.c, fr_par.c, fr_review.c: the run ----- */

/* What one phase (or the time before the first) did, for the summary. */
typedef struct fr_stats {
    int64_t calls;                 /* agent calls that made an attempt */
    int64_t retries;               /* attempts after a call's first */
    int64_t failures;              /* calls that failed after all their attempts */
    int64_t items_failed;          /* fan-out items dropped by on_error: skip */
    int64_t cached;                /* agent calls answered from the journal (no attempt) */
    int64_t tokens_in;             /* input tokens, as the provider reported (cache included) */
    int64_t tokens_out;            /* output tokens, as the provider reported */
    int64_t cache_read;            /* of tokens_in, read from the cache */
    int64_t cache_write;           /* of tokens_in, written to the cache */
    double usd;                    /* the actual usage, priced per token class */
    double usd_saved;              /* what cache reads saved, less the write premium */
    int64_t no_usage;              /* answers without usage, charged their hold */
    int64_t over_hold;             /* attempts that reported more usage than they held */
    int64_t bad_usage;             /* attempts whose usage no request could cost (charged
                                      their hold, retried as bad answers) */
    int64_t raised;                /* cut-off answers retried with the model's max output */
    int64_t repaired;              /* attempts whose answer's JSON was repaired */
    int64_t invalid;               /* attempts whose answer failed validation */
    int64_t refused;               /* attempts the model refused */
    int64_t cut_off;               /* attempts cut off at max_tokens */
    int64_t unparsable;            /* attempts with no JSON to take out of the answer */
    int64_t transient;             /* attempts that failed transiently (network, 5xx, 429...) */
    int64_t rate_limited;          /* of those, HTTP 429 */
    int64_t http_calls;            /* http operation calls that made a request */
    int64_t http_cached;           /* ... answered from the journal */
    int64_t http_retries;          /* their attempts after a page's first */
    int64_t http_failures;         /* calls that failed */
    int64_t http_unknown;          /* writes resent whose outcome a crash left unknown */
    int64_t http_dry;              /* writes held back by --dry-run */
    int64_t http_pages;            /* pages read */
    int64_t http_ms;               /* the calls' wall time, added up */
    int64_t failed_transient;      /* calls and http operations that failed after transient
                                      errors (network, timeouts, 429, 5xx): the items they
                                      took down can be retried (exit 5, --resume) */
    int64_t long_waits;            /* retries that waited FR_LONG_WAIT_MS or more, or whose
                                      retry-after --max-retry-after cut short */
    int64_t longest_wait_ms;       /* the longest of those waits */
    int64_t capped_waits;          /* server-asked waits cut to --max-retry-after */
    int64_t tool_loops;            /* agent calls that ran a tool loop */
    int64_t tool_turns;            /* their model turns requested (not replayed) */
    int64_t tool_calls;            /* tool calls made (their own calls are counted as such) */
    int64_t tool_cached;           /* tool calls whose results the journal replayed */
    int64_t tool_errors;           /* tool calls answered with an error */
    int64_t tool_capped;           /* loops that reached max_tool_calls */
    int64_t start_ms;              /* when the phase began (monotonic), 0 if it never did */
    int64_t wall_ms;               /* its wall time, once it ended */
    bool ended;                    /* fr_phase_end was called */
} fr_stats;

/* Spent and held against one budget (the workflow's or a phase's). */
typedef struct fr_spend {
    double usd_spent;              /* settled dollars */
    double usd_held;               /* dollars reserved by attempts in flight */
    int64_t tok_spent;             /* settled tokens */
    int64_t tok_held;              /* tokens reserved by attempts in flight */
    int holds;                     /* reservations outstanding */
    int64_t deadline_ms;           /* monotonic deadline of its time cap, -1 for none */
} fr_spend;

/* One attempt's hold on the budgets, until it is settled. */
typedef struct fr_resv {
    int phase;                     /* the phase charged besides the workflow, -1 for none */
    double usd;                    /* dollars held */
    int64_t tokens;                /* tokens held */
} fr_resv;

/* The first budget that stopped work, for fr_main's message. */
typedef struct fr_stop {
    bool hit;                      /* a budget stopped something */
    int phase;                     /* -1: the workflow's budget, else that phase's */
    const char *what;              /* "usd", "tokens", "time", or "usage" (a call reported
                                      more usage than it held, with a usd or tokens cap) */
    double spent;                  /* settled + held when it stopped */
    double cap;                    /* the cap */
    double need;                   /* what the refused call would have held */
} fr_stop;

/* A read that set bad rows aside (on_bad: skip), for the summary. */
typedef struct fr_rejected {
    char *path;                    /* the file read */
    char *rejects;                 /* where its bad rows went */
    long bad;                      /* rows set aside */
    long rows;                     /* rows read */
} fr_rejected;

typedef struct fr_batch_store fr_batch_store;

struct fr_run {
    const fr_program *prog;        /* the workflow being run */
    pthread_mutex_t mu;            /* guards the ledger, stats, stop, slots and partial */
    fr_cond slot_cv;               /* signalled when a call slot frees */
    fr_cond budget_cv;             /* signalled when a reservation is settled */
    bool mock_all;                 /* --mock: every model answered by fr_mock_call */
    fr_mock_opts mock;             /* --mock-latency, --mock-fail-rate */
    int concurrency;               /* --concurrency: attempts in flight at most, 0 no cap */
    int retry_base_ms;             /* --retry-base-ms: backoff base */
    int max_wait_ms;               /* --max-retry-after: the cap of a server-asked wait */
    int64_t failed_transient;      /* calls failed after transient errors so far (under mu):
                                      write_jsonl keeps a file they would shrink */
    int status;                    /* the exit status, once the body ended */
    int64_t wait_said_until;       /* the end of the last long wait said (monotonic ms) */
    bool quiet;                    /* --quiet: no summary, no progress */
    fr_http *http;                 /* the providers' shared state */
    void *journal;                 /* the run journal (fr_journal.c), NULL when none */
    struct fr_redact *redact;      /* the sensitive values seen (fr_redact.c), or NULL */
    int inflight;                  /* attempts in flight now (atomic) */
    int64_t start_ms;              /* run start (monotonic) */
    fr_budget budget;              /* the workflow's cap in force: declared, its parameters',
                                      then --budget-usd/-tokens/-time */
    fr_budget *phase_budget;       /* each phase's cap in force, clipped to budget [nphases] */
    fr_budget *phase_declared;     /* each phase's cap as declared, parameters resolved */
    unsigned char *clipped;        /* per phase: bit k set when cap k (usd, tokens, time) was
                                      clipped to the workflow's */
    unsigned cli_caps;             /* bit k: cap k came from the command line */
    fr_spend wf;                   /* the workflow's budget */
    fr_spend *ph;                  /* each phase's budget [prog->nphases] */
    fr_stats *stats;               /* [prog->nphases + 1]: 0 is before the first phase */
    fr_stop stop;                  /* which budget stopped the run */
    char *over_desc;               /* the first attempt charged above its hold, said (under
                                      mu; fr_malloc'd) */
    json_t *partial;               /* finished items of the fan-out a budget stopped */
    size_t partial_total;          /* that fan-out's item count */
    size_t partial_done;           /* its items processed (finished or dropped) */
    int partial_phase;             /* the phase it ran in */
    int cur_phase;                 /* the root's current phase, for progress */
    size_t prog_done;              /* top-level fan-out: items done (atomic) */
    size_t prog_total;             /* top-level fan-out: items in all (atomic) */
    pthread_mutex_t review_mu;     /* guards the review file */
    FILE *review;                  /* <workflow>.review.jsonl once opened */
    int64_t escalated;             /* items escalated */
    FILE *skipped;                 /* <workflow>.skipped.jsonl once opened (under review_mu) */
    int64_t nskipped;              /* lines written to it, -1: it cannot be opened */
    struct fr_origin *origins;     /* where read_jsonl's lists came from (under mu) */
    fr_rejected *rejected;         /* reads that set rows aside (guarded by mu) */
    int nrejected;                 /* how many */
    bool progress;                 /* a progress line is on stderr: clear it before a line */
    bool dry_run;                  /* --dry-run: writes are written down, not sent */
    FILE *dry;                     /* <workflow>.dry-run.jsonl once opened (under review_mu) */
    int64_t dry_writes;            /* requests written to it */
    char run_tag[32];              /* the run id without a journal (idempotency keys) */
    fr_batch_store *batches;       /* batch answers waiting for their call (fr_batch.c) */
    int64_t batch_timeout_ms;      /* --batch-timeout, 0 none */
    int interrupted;               /* SIGINT or SIGTERM once one came, else 0 (atomic) */
    fr_cond intr_cv;               /* broadcast when it comes (under mu) */
    int64_t intr_inflight;         /* calls in flight when it came */
    char batch_line[192];          /* a batch fan-out's progress, "" none (under mu) */
};

/* What one attempt costs: its usage priced per token class (input, output,
 * cache writes, cache reads), or its whole hold when the provider answered
 * without usage. */
typedef struct fr_charge {
    int64_t in;                    /* input tokens, cache reads and writes included */
    int64_t out;                   /* output tokens */
    int64_t cache_read, cache_write; /* of in */
    double usd;                    /* what it costs */
    double saved;                  /* what the cache reads saved, less the write premium */
    bool held;                     /* no usage: charged the hold */
} fr_charge;

/* fr_par.c: a pipeline whose items stream from a reader and whose values
 * stream to a writer (fr_stream_file), holding a window of them at most */
typedef struct fr_stream {
    json_t *(*next)(void *arg, long *line);  /* the next item (a new reference) and its
                                                line; NULL: the source failed (why says) */
    bool (*put)(void *arg, json_t *v);       /* the next value in input order (borrowed) */
    const char *(*why)(void *arg);           /* why next failed, NULL: out of memory */
    void *arg;                               /* theirs */
    size_t n;                                /* items in all */
    const char *file;                        /* where they come from (the skipped file) */
} fr_stream;
/* The pipeline over st's items: an empty list when done (the values went
 * to st->put), or NULL with cx's signal set, as fr_pipeline. */
json_t *fr_pipeline_stream(fr_ctx *cx, const fr_stream *st, const fr_par_opts *opts,
                           int nstages, const fr_stage *stages, void *env);

/* fr_intr.c: SIGINT and SIGTERM stop a run without losing what it paid for */
void fr_intr_block(void);          /* blocks both in the calling thread (before any thread) */
/* Starts the thread that takes them for run; grace_s < 0: the default. */
bool fr_intr_start(fr_run *run, int grace_s);
void fr_intr_done(fr_run *run);    /* the run is ending: no stop at once any more */
void fr_intr_stop(void);           /* ends that thread, unblocks the signals */
int fr_interrupted(const fr_run *run);   /* the signal that came, 0 if none */
/* Interrupted: sets FR_SIG_STOP on cx (once) and returns true. */
bool fr_intr_stopped(fr_ctx *cx);
/* Sleeps ms unless interrupted; false when interrupted. */
bool fr_intr_sleep_ms(fr_run *run, int64_t ms);

/* fr_budget.c */
/* Dollars for usage at m's prices; a cache price m does not declare is the
 * input price (the 1-hour write: the 5-minute one). */
double fr_price(const fr_model *m, int64_t in, int64_t out, int64_t cache_read,
                int64_t cache_write, int64_t cache_write_1h);
/* What a hold of in and out tokens costs at m's prices (the input at its
 * dearest class). */
double fr_hold_usd(const fr_model *m, int64_t in, int64_t out);
/* The charge of attempt resp held by r at m's prices. */
void fr_charge_of(const fr_model *m, const fr_resv *r, const fr_response *resp, fr_charge *c);
bool fr_budget_init(fr_run *run);              /* ledger and stats for run->prog */
/* The caps in force: the declared ones with their parameters' values (args),
 * the workflow's overridden by cli (a field < 0: not given), each phase's
 * clipped to the workflow's.  0, or 2 after an error line for a parameter
 * value that is no cap. */
int fr_budget_setup(fr_run *run, const fr_budget *cli, json_t *const *args);
/* "30m", "90s", "1h30m", "500ms" in milliseconds; -1 if s is not a duration. */
int64_t fr_parse_duration(const char *s);
/* Cap k (0 usd, 1 tokens, 2 time) of b as text in buf: "$2.0000", "none". */
const char *fr_cap_text(const fr_budget *b, int k, char *buf, size_t cap);
void fr_budget_free(fr_run *run);
fr_stats *fr_stats_of(fr_run *run, int phase); /* phase -1: before the first */
/* Holds in_tokens + out_tokens at m's price (the input at its dearest class,
 * since a cache write may cost more than plain input) against the workflow's
 * and cx's phase's budgets, or sets FR_SIG_BUDGET (and run->stop) and
 * returns false. */
bool fr_budget_reserve(fr_ctx *cx, const fr_model *m, int64_t in_tokens,
                       int64_t out_tokens, fr_resv *r);
/* Replaces the hold r by the charge c. */
void fr_budget_settle(fr_run *run, const fr_resv *r, const fr_charge *c);
/* A phase opens its budget (fr_phase_begin): its time cap starts now, what
 * earlier processes of a resumed run spent in it counts; false (sig set)
 * when the workflow's budget is already spent. */
bool fr_budget_phase_open(fr_ctx *cx, int phase, double prior_usd, int64_t prior_tokens,
                          int64_t prior_active_ms);
/* Charges c, already paid (a batch's answer), without a hold. */
void fr_budget_charge(fr_run *run, int phase, const fr_charge *c);
/* Whether attempt charge c is more than its hold r: more tokens, or more
 * dollars (more output at its dearer price). */
bool fr_budget_above(const fr_resv *r, const fr_charge *c);
/* An attempt of cx's was charged more than it held (fr_budget_above; the
 * settle charged it as reported): counted for the summary, said at once
 * (the first time) with desc, which names the call, and, when a usd or
 * tokens cap applies to the call, the run stops: no request starts after
 * it (run->stop, what "usage"), since no cap can be kept against usage
 * above the hold. */
void fr_budget_over(fr_ctx *cx, const fr_resv *r, const fr_charge *c, const char *desc);
/* cx's nearest time deadline (monotonic ms), -1 for none. */
int64_t fr_budget_deadline(fr_ctx *cx);
/* Milliseconds left before cx's nearest deadline, INT64_MAX for none. */
int64_t fr_budget_time_left(fr_ctx *cx);
/* Sets FR_SIG_BUDGET for the deadline that has passed; returns NULL. */
void *fr_budget_time_stop(fr_ctx *cx);

/* fr_batch.c: batch fan-outs */
/* The first pass of a batch fan-out: collects, submits, polls and keeps the
 * answers; false (cx's signal set) when the run must stop (a budget). */
bool fr_batch_prepass(fr_ctx *cx, json_t *list, const fr_par_opts *opts, fr_body_fn body,
                      void *env);
/* In the first pass (on this thread): fr_call collects instead of sending. */
bool fr_batch_collecting(void);
bool fr_batch_collect(const fr_agent *a, const fr_model *m, const char *system,
                      const char *prompt, const char *key, int max_tokens);
/* Whether m has a batch API (anthropic or openai, not on this machine). */
bool fr_batch_api(const fr_model *m);
/* m at its batch prices, the prompt cache's classes scaled as input is. */
void fr_batch_prices(const fr_model *m, fr_model *out);
/* The batch answer of call key, as a parsed response; false when none. */
bool fr_batch_take(fr_run *run, const fr_model *m, const char *key, fr_response *r);
void fr_batch_free(fr_run *run);
/* The journal of the run (NULL: none). */
struct fr_journal *fr_journal_of(fr_run *run);

/* fr_par.c */
void fr_ctx_init_child(fr_ctx *parent, fr_ctx *c);   /* empty pool, parent's path */
void fr_ctx_set_item(fr_ctx *c, fr_ctx *parent, size_t index); /* path = parent.index */
void fr_ctx_fini(fr_ctx *c);                         /* releases pool and error */

/* fr_call.c */
/* A call (or http operation) of cx failed after transient errors: counted
 * for the summary and the exit status (5 when the run finishes anyway). */
void fr_count_transient(fr_ctx *cx);
/* One attempt through the provider: the mock or HTTP. */
void fr_provider_call(fr_run *run, const fr_request *req, fr_response *resp);
/* A call slot (--concurrency) for one attempt, and giving it back. */
void fr_slot_take(fr_run *run);
void fr_slot_give(fr_run *run);
/* Waits before retry number attempt (from 0): full jitter, at least
 * retry_after_ms (already capped; asked_ms is what the server asked, -1
 * none), never past the time left.  A wait of FR_LONG_WAIT_MS or more, or
 * one the cap cut short, is counted for the summary and said on stderr
 * with why (the last error), once for the waits that end together. */
#define FR_LONG_WAIT_MS 5000
void fr_backoff(fr_ctx *cx, int attempt, int retry_after_ms, int64_t asked_ms, const char *why);

/* fr_op.c */
/* Closes the --dry-run file; its path for the summary (malloc'd) or NULL. */
char *fr_op_dry_close(fr_run *run);
/* fr_op_call for a tool's call (u: its salt and span, see fr_under). */
struct fr_under;
json_t *fr_op_call_under(fr_ctx *cx, const fr_op *op, int site, json_t *const *args,
                         const char *where, const struct fr_under *u);

/* fr_call.c: fr_call for a tool's call. */
json_t *fr_call_under(fr_ctx *cx, const fr_agent *a, int site, const fr_model *using,
                      json_t *const *args, const char *where, const struct fr_under *u);

/* fr_tools.c: an agent's tools, run for its tool loop (fr_call.c).
 * One tool call of a turn and what goes back to the model. */
typedef struct fr_toolrun {
    json_t *call;                  /* {id, name, input} as the model asked (borrowed) */
    int index;                     /* its number in the loop, from 0 */
    bool over;                     /* past max_tool_calls: not made, answered with an error */
    char *content;                 /* the result, or why it failed (malloc'd) */
    bool error;                    /* content is an error */
    const char *error_type;        /* for the trace: "unknown_tool", "invalid_arguments",
                                      "limit", "failed", ... (static) */
    char key[256];                 /* the journal key of the call it made, or ""
                                      (FR_JKEY_MAX bytes) */
    int64_t ms;                    /* its wall time */
} fr_toolrun;

/* The tool loop's part the tools need: the call it belongs to. */
typedef struct fr_toolloop {
    const fr_agent *agent;         /* whose tools */
    int site;                      /* the agent's call site (the tools' calls share it) */
    const char *key;               /* the agent call's journal key: salts its tools' keys */
    const char *span;              /* the agent call's trace span, or "" */
    const char *where;             /* the call site, for messages */
    int turn;                      /* the turn that asked for these calls */
} fr_toolloop;

/* Runs the n calls of one turn (at once when several, each on a context of
 * its own) and fills each one's content; false with cx's signal set when
 * one stopped the run (a budget, a missing secret): errors of a tool are
 * its result, told to the model, not the call's. */
bool fr_tools_run(fr_ctx *cx, const fr_toolloop *l, fr_toolrun *runs, int n);
/* The tool named name among a's, or NULL. */
const fr_tool *fr_tool_find(const fr_agent *a, const char *name);
/* Bytes of a's tool definitions as the model sees them (the input estimate). */
size_t fr_tools_bytes(const fr_agent *a);

/* fr_review.c */
bool fr_review_reset(fr_run *run);               /* truncate a previous run's files */
void fr_review_close(fr_run *run);
char *fr_review_path(const fr_program *prog);    /* "<workflow>.review.jsonl" (malloc'd) */
char *fr_skipped_path(const fr_program *prog);   /* "<workflow>.skipped.jsonl" (malloc'd) */
/* An item dropped by on_error: skip: one line in the skipped file with the
 * run, the item's path and value, the file and line it was read from when
 * known (list and index: the fan-out's input), and the error. */
void fr_skipped(fr_ctx *c, const char *fanout, json_t *list, size_t index);
/* The same for a streamed item, from line of file. */
void fr_skipped_at(fr_ctx *c, const char *fanout, const char *file, long line);

/* fr_io.c: where the items of a list read by read_jsonl came from.  The run
 * keeps the list alive (a reference) until it ends, so its address is not
 * reused by another. */
typedef struct fr_origin {
    json_t *list;                  /* the list read (a reference) */
    char *file;                    /* the file's name as the workflow gave it */
    long *lines;                   /* each item's line number, from 1 */
    struct fr_origin *next;        /* the next list read */
} fr_origin;
/* The file and line of list[index], or false when it was not read from one. */
bool fr_origin_of(fr_run *run, json_t *list, size_t index, const char **file, long *line);
void fr_origins_free(fr_run *run);

/* ---- fr_journal.c: the run journal (SQLite) -------------------------------
 * One journal file holds many runs.  A handle is bound to one run by
 * fr_journal_begin or fr_journal_resume; the subcommands (runs, review,
 * approve) use an unbound handle.  Every function is thread-safe (and parks
 * a fiber, never its thread).  A bound handle has a writer thread that
 * commits what is queued, in queue order, a batch per transaction: a
 * reservation waits for its commit (it must be durable before its request
 * leaves); a result does not (fr_journal_record_async): whatever must
 * follow it on disk is queued after it, and what must not be seen before
 * it is durable waits for fr_journal_flush (or runs as fr_journal_after). */

typedef struct fr_journal fr_journal;

#define FR_RUN_ID_MAX 32           /* bytes of a run id, with its NUL */
#define FR_JKEY_MAX 256            /* bytes of a call key, with its NUL */
_Static_assert(sizeof ((fr_toolrun *)0)->key == FR_JKEY_MAX, "fr_toolrun.key");

/* A call's attempts as the journal and the trace keep them (fr_jrun.c). */
typedef struct fr_jdetail fr_jdetail;
/* Its JSON, to b; as text (malloc'd; NULL when out of memory); freeing it. */
void fr_jdetail_put(fr_buf *b, const fr_jdetail *d);
char *fr_jdetail_text(const fr_jdetail *d);
void fr_jdetail_free(fr_jdetail *d);

/* One agent call as the journal keys and records it. */
typedef struct fr_jcall {
    const char *agent;             /* the agent's name */
    int site;                      /* the call site, numbered by the compiler */
    const char *item;              /* the item path ("" at the top level) */
    uint32_t seq;                  /* calls made before this one in the item */
    int phase;                     /* the phase index, -1 before the first */
    const char *model;             /* the model's provider name */
    char key[FR_JKEY_MAX];         /* agent/site/item/seq/input hash: set by fr_journal_key */
    char input_hash[65];           /* SHA-256 of system, NUL, prompt (hex) */
    const char *output;            /* the validated answer as compact JSON, NULL if it failed */
    json_t *output_json;           /* or the answer itself (output NULL), of type output_type:
                                      the journal writes it as text on its writer's thread,
                                      not the item's (a value is never changed once made,
                                      and jansson counts references atomically) */
    const fr_type *output_type;
    int64_t tokens_in;             /* input tokens of all attempts */
    int64_t tokens_out;            /* output tokens of all attempts */
    double usd;                    /* what all attempts cost */
    int attempts;                  /* attempts made */
    int64_t latency_ms;            /* wall time of the whole call */
    int64_t cache_read;            /* input tokens of all attempts read from the prompt cache */
    int64_t cache_write;           /* ... and written to it */
    double saved_usd;              /* what the cache saved against plain input prices */
    const char *tier;              /* the price paid: "standard" or "batch" (NULL: standard) */
    int64_t row;                   /* its row in the journal, 0 until it has one (set by
                                      fr_journal_lookup for an earlier process's row, by
                                      the first fr_journal_reserve otherwise) */
    const char *detail;            /* its attempts as JSON text (fr_jrun.c), or NULL */
    fr_jdetail *detail_own;        /* or its attempts, for fr_journal_record_async to write
                                      as text on the writer's thread and free, or NULL */
} fr_jcall;

/* ".flow/<workflow>.db" (malloc'd). */
char *fr_journal_default_path(const char *workflow);
/* Opens or creates the journal (making parent directories); NULL with err.
 * A damaged journal (PRAGMA quick_check) is refused and never written: err
 * says so and how to go on, and the answers it still holds are exported to
 * <path>.recovered.jsonl first. */
fr_journal *fr_journal_open(const char *path, fr_buf *err);
/* The same, read only (the runs and review commands): a journal in a
 * directory that cannot be written is still read. */
fr_journal *fr_journal_open_ro(const char *path, fr_buf *err);
void fr_journal_close(fr_journal *j);
const char *fr_journal_run_id(const fr_journal *j);   /* "" when unbound */
size_t fr_journal_answer_count(fr_journal *j);       /* answers loaded for a resume */
/* Runs of workflow with status, besides the bound one; -1 on error. */
int64_t fr_journal_count_runs(fr_journal *j, const char *workflow, const char *status);
void fr_journal_new_run_id(char id[FR_RUN_ID_MAX]);  /* a fresh run id: time and random */

/* Starts a new run of workflow; args is a JSON object of the parameters. */
bool fr_journal_begin(fr_journal *j, const char *workflow, const char *source_hash,
                      const char *args, fr_buf *err);
/* Binds j to run_id (NULL: the workflow's last unfinished run) for --resume.
 * Refuses a changed source hash or changed args (err names what changed)
 * unless flags has FR_RESUME_FORCE, and a finished run unless it has
 * FR_RESUME_SKIPPED (--retry-skipped) and the run skipped items (run_id
 * NULL then also finds the last finished run that skipped some); loads the
 * run's finished calls for fr_journal_lookup. */
/* Whether the workflow's last unfinished run has this source and these
 * arguments (a shard started again resumes it by itself). */
bool fr_journal_pending(fr_journal *j, const char *workflow, const char *source_hash,
                        const char *args);
#define FR_RESUME_FORCE 1          /* --force */
#define FR_RESUME_SKIPPED 2        /* --retry-skipped */
bool fr_journal_resume(fr_journal *j, const char *workflow, const char *run_id,
                       const char *source_hash, const char *args, int flags,
                       fr_buf *err);
/* What the bound run spent before this process (phase -1: the whole run),
 * counting reservations of calls that were in flight when it stopped. */
bool fr_journal_prior_spend(fr_journal *j, int phase, double *usd, int64_t *tokens);
/* The time processes spent running the bound run before this one (its time
 * budget counts it; waiting for a person does not). */
int64_t fr_journal_prior_active_ms(const fr_journal *j);
/* Records how the run ended: "done", "failed", "waiting", "budget", and how
 * many items it skipped after errors. */
bool fr_journal_end(fr_journal *j, const char *status, double usd, int64_t tokens,
                    int64_t skipped);

/* Fills c->key and c->input_hash from c's fields and the rendered input. */
void fr_journal_key(fr_jcall *c, const char *system, const char *prompt);
/* The journaled answer of c->key (a new reference), or NULL: never journaled.
 * Sets c->row when an earlier process left a row for the key. */
json_t *fr_journal_lookup(fr_journal *j, fr_jcall *c);
/* Durably notes that c is about to be requested: usd and tokens are what
 * its earlier attempts spent plus this attempt's worst case, so a crash
 * mid-request still counts them (a hold left by a crashed process stays
 * counted when the call is made again); returns once synced. */
bool fr_journal_reserve(fr_journal *j, fr_jcall *c, double usd, int64_t tokens);
/* A call a process left in flight (held, never recorded) when it stopped. */
bool fr_journal_was_in_flight(fr_journal *j, fr_jcall *c);
/* Durably records a finished call (output NULL: failed after all attempts),
 * settling its reservation; returns once synced. */
bool fr_journal_record(fr_journal *j, const fr_jcall *c);
/* The same, queued (c is copied) without waiting for it: it commits before
 * anything queued after it.  False when the journal cannot take it.  It
 * takes c->detail_own in any case. */
bool fr_journal_record_async(fr_journal *j, const fr_jcall *c);
/* Runs fn(arg) on the writer thread once everything queued before is
 * durable (at once without a writer); false when out of memory (then not
 * run).  The trace writes a call's line this way. */
bool fr_journal_after(fr_journal *j, void (*fn)(void *arg), void *arg);
/* Waits until everything queued so far is durable: before the workflow
 * shows a result outside the process (its output, a file it writes). */
bool fr_journal_flush(fr_journal *j);
/* A queued write failed (the writer refuses all after it; errmsg says why). */
bool fr_journal_failed(fr_journal *j);
/* Answers this handle committed, and those a failed write lost. */
void fr_journal_answers(fr_journal *j, int64_t *ok, int64_t *lost);

/* approve(): queues the n items at (site, item path) that are not queued yet
 * and reads their decisions: 1 approved, 0 rejected, -1 waiting. */
bool fr_journal_approvals(fr_journal *j, int site, const char *item, const char *title,
                          size_t n, char *const *items, int *decisions, fr_buf *err);
/* escalate(): queues one item with its reason (once per where and item path). */
bool fr_journal_escalate(fr_journal *j, const char *where, const char *item,
                         const char *item_json, const char *why);

/* The phase clock of the bound run: the time earlier processes spent in
 * phase; the root begins a phase (each batch from now on records its active
 * time, counting base); the phase ends (its time written now). */
bool fr_journal_phase_ms(fr_journal *j, int phase, int64_t *ms);
void fr_journal_phase_clock(fr_journal *j, int phase, int64_t base);
bool fr_journal_phase_clock_stop(fr_journal *j);

/* For the subcommands (fr_runs.c: an unbound handle, one thread) and messages. */
typedef struct sqlite3 sqlite3;
sqlite3 *fr_journal_db(fr_journal *j);

/* ---- fr_chunk.c: the journal's chunks of results ---------------------------- */

/* A result as an entry of a chunk's body, to b (first: the body's first). */
void fr_chunk_put(fr_buf *b, bool first, const fr_jcall *c, int64_t now);
/* Gives a connection the table-valued function fr_chunk(body) and the
 * temporary view calls_all over it (over calls alone for a journal older
 * than version 9); false on error. */
bool fr_chunk_attach(sqlite3 *db);
/* A provider batch of a batch fan-out, as journaled (fr_batch.c). */
typedef struct fr_jbatch {
    int part;                      /* its number in the fan-out */
    char provider[32];             /* anthropic or openai */
    char token[32];                /* the token in its custom_ids (and OpenAI metadata) */
    char batch_id[160];            /* the provider's id, "" until it is known */
    char file_id[160];             /* OpenAI: its input file, "" until uploaded */
    char status[32];               /* submitting, then the provider's last status */
    char *ids;                     /* its members' request hashes, one a line (fr_malloc'd) */
    int64_t requests;              /* how many requests it has */
    int64_t created_ms;            /* when its intent was journaled (wall clock) */
} fr_jbatch;
/* The batches journaled for fan-out `fanout` of the bound run, by part. */
fr_jbatch *fr_journal_batches(fr_journal *j, const char *fanout, size_t *n);
void fr_jbatches_free(fr_jbatch *v, size_t n);
/* Durably records a batch about to be submitted (its token and members),
 * before the request that creates it leaves. */
bool fr_journal_batch_intent(fr_journal *j, const char *fanout, int part, const char *provider,
                             const char *token, const char *ids, int64_t requests,
                             double held_usd, int64_t created_ms);
/* Its id (or file id) once known, and each status it reports; NULL keeps a
 * field as it is. */
bool fr_journal_batch_put(fr_journal *j, const char *fanout, int part, const char *batch_id,
                          const char *file_id, const char *status);
const char *fr_journal_path(const fr_journal *j);
const char *fr_journal_errmsg(fr_journal *j);          /* the last SQLite error */
bool fr_journal_exec(fr_journal *j, const char *sql);  /* one statement, no rows */
bool fr_journal_run_live(const fr_journal *j, const char *run_id); /* a process holds it */

/* ---- fr_runs.c: the journal's subcommands ---------------------------------- */

/* `BINARY runs|review|approve ...`: runs the subcommand and returns the exit
 * status, or -1 when argv[1] is not one of them. */
int fr_journal_command(const fr_program *prog, int argc, char **argv);
/* The binary's name as it was run (argv[0], once fr_journal_command saw it),
 * else the workflow's, for the commands a message suggests. */
const char *fr_self_name(const fr_program *prog);

/* ---- fr_report.c: `BINARY report RUN`, an HTML page about one run ---------- */
/* argv[1] is "report"; returns the exit status. */
int fr_report_command(const fr_program *prog, int argc, char **argv);

/* ---- fr_jrun.c: the run's side of the journal and trace -------------------
 * fr_run.c, fr_call.c and fr_review.c call these; run->journal points at the
 * run's journal state; all of them do nothing without one (--no-journal and
 * no --trace). */

/* The journal's flags, as the command line gave them. */
typedef struct fr_jopts {
    const char *journal;           /* --journal PATH, NULL: .flow/<workflow>.db */
    bool no_journal;               /* --no-journal */
    bool resume;                   /* --resume */
    const char *resume_id;         /* --resume RUN_ID, NULL: the last unfinished run */
    bool force;                    /* --force: resume a changed program or arguments */
    bool retry_skipped;            /* --retry-skipped: a finished run's skipped items */
    const char *trace;             /* --trace FILE */
    bool content;                  /* --trace-content: prompts and replies kept */
} fr_jopts;

/* One of the journal's flags (flag without dashes, eq its =value or NULL;
 * may take argv[*i + 1]): 0 taken, 2 bad usage (said why), -1 not ours. */
int fr_jopts_flag(fr_jopts *o, const char *flag, const char *eq, int argc, char **argv,
                  int *i);
/* Opens the journal and trace, begins or resumes the run, loads its prior
 * spend into the budgets: -1 to go on, else the exit status (said why). */
int fr_journal_run_start(fr_run *run, const fr_jopts *o, json_t *const *args);
/* Records the run's end from its exit status, closes journal and trace. */
void fr_journal_run_end(fr_run *run, int status);
/* Waits until every result queued is durable, before the run shows one
 * outside the process (its output, a file); false (said) when a write failed. */
bool fr_journal_flush_run(fr_run *run);
/* The id of the run in the journal, or NULL without one (--no-journal). */
const char *fr_journal_bound_id(fr_run *run);
/* A line for the summary: resumed run, answers from the journal. */
void fr_journal_summary(fr_run *run);
/* Phase hooks: what earlier processes spent in the phase (dollars, tokens,
 * active ms; 0 for a fresh run), its clock and trace span. */
void fr_journal_phase_prior(const fr_run *run, int phase, double *usd, int64_t *tokens,
                            int64_t *active_ms);
void fr_journal_phase_begin(fr_ctx *cx, int phase);
void fr_journal_phase_end(fr_ctx *cx, int phase);

/* Where a call made by an agent's tool loop belongs: its journal key is
 * salted with the loop's call key and the tool call's number (so it is its
 * own, whatever else the item calls, and the same in a resumed run), and
 * its trace line is the child of the tool call's span.  NULL for the calls
 * a workflow makes. */
typedef struct fr_under {
    const char *salt;              /* "tool/<loop call key>/<n>" */
    const char *span;              /* the execute_tool span, or "" without a trace */
    char *key_out;                 /* [FR_JKEY_MAX]: gets the call's journal key, or NULL */
} fr_under;

/* The journal's part of one agent call, kept in fr_call's call state. */
typedef struct fr_jhook {
    fr_jcall jc;                   /* key, and the totals of all attempts */
    const fr_model *model;         /* the model called */
    int64_t start_us;              /* wall clock at the call's start */
    int64_t start_ms;              /* monotonic, for its latency */
    bool cached;                   /* answered from the journal */
    int64_t cache_read;            /* input tokens of all attempts read from the cache */
    int64_t cache_write;           /* ... and written to it */
    char finish[32];               /* the last attempt's finish reason, or "" */
    char error_type[32];           /* the last attempt's error type, or "" */
    char span[17];                 /* a tool loop's call: its span id, given beforehand */
    const char *parent_span;       /* a tool's call: the tool call's span, else NULL */
    int max_tokens;                /* the last attempt's max_tokens, for the trace */
    double temperature;            /* its temperature, < 0 none sent */
    char response_id[128];         /* the last answer's id from the provider, or "" */
    bool loop;                     /* a tool loop ran: */
    int turns;                     /* its model turns */
    int tool_calls;                /* and its tool calls */
    bool tools_off;                /* the turn asked now must answer without tools */
    struct {                       /* of jc's totals, what the loop's turn rows record (the
                                      call's own row records the rest) */
        int attempts;
        int64_t tokens_in, tokens_out, cache_read, cache_write;
        double usd, saved_usd;
    } put;
    fr_jdetail *detail;            /* what each attempt sent and got (content with
                                      --trace-content), or NULL (fr_jrun.c) */
} fr_jhook;

/* A journal write failed (a full disk, an I/O error): the run stops at
 * once, since calls made from then on could not be journaled and a resume
 * would pay for them again.  fr_journal_broken says so; fr_journal_stopped
 * also sets cx's FR_SIG_STOP with the journal's error (true: start nothing);
 * fr_journal_stop_help says how to finish the run once it can be written. */
bool fr_journal_broken(fr_run *run);
/* The run was resumed and its journal holds answers: after a budget stop,
 * fan-outs let their other items through (each finishes from the journal or
 * stops at its first call), so the partial file holds all that finished. */
bool fr_journal_serves(fr_run *run);
/* The partial file is this run's: it was resumed (after a budget stop,
 * say) and no other run of the workflow is stopped by a budget. */
bool fr_journal_owns_partial(fr_run *run);
bool fr_journal_stopped(fr_ctx *cx);
void fr_journal_stop_help(fr_run *run);

/* Before any request: the journaled answer, kept in cx's pool, or NULL.
 * The call's key is made with or without a journal (a tool loop salts its
 * tools' keys with it); u: a tool's call, or NULL. */
json_t *fr_journal_call_begin(fr_jhook *h, fr_ctx *cx, const fr_agent *a, int site,
                              const fr_model *m, const char *system, const char *prompt,
                              const fr_under *u);
/* A tool loop's turn of call h: the turn the model made ('t'), journaled
 * before its tools run, and their results ('r').  get gives a new
 * reference or NULL; put records v durably, a 't' row with the usage of the
 * call's attempts no row records yet (so a killed loop's finished turns
 * count as spent; the call's own row records the rest). */
json_t *fr_journal_turn_get(fr_jhook *h, fr_ctx *cx, int turn, char what);
/* detail: what the row's detail keeps beside the turn ('t': NULL, the
 * turn's attempts are taken from h; 'r': {"calls":[{key, ms, error_type}]}) */
void fr_journal_turn_put(fr_jhook *h, fr_ctx *cx, int turn, char what, json_t *v,
                         json_t *detail);
/* The run's trace, or NULL without --trace. */
struct fr_trace *fr_run_trace(fr_run *run);
/* Before each attempt's request, after fr_budget_reserve held r: false
 * (FR_SIG_STOP set) when the journal cannot be written, and the request
 * must not go. */
bool fr_journal_call_hold(fr_jhook *h, fr_ctx *cx, const fr_resv *r);
/* After each attempt (req sent at wall clock start_ms): its charge, finish
 * reason, outcome and, with --trace-content, what it sent and got back. */
void fr_journal_call_attempt(fr_jhook *h, fr_ctx *cx, const fr_request *req,
                             const fr_response *r, const fr_charge *c, int64_t start_ms);
/* The last attempt's outcome as fr_call judged it ("answer", "invalid", "refused",
 * "cut_off", "unparsable", "transient", "fatal") and its problem, or NULL. */
void fr_journal_call_outcome(fr_jhook *h, const char *outcome, const char *error);
/* Frees what h keeps of a call's attempts (fr_journal_call_end does it too). */
void fr_journal_call_drop(fr_jhook *h);
/* An attempt whose answer is not recorded: its hold is durably replaced by
 * its usage before the ledger lets another request use the difference. */
void fr_journal_call_settle(fr_jhook *h, fr_ctx *cx);
/* A validated answer, durably recorded before it is used. */
void fr_journal_call_record(fr_jhook *h, fr_ctx *cx, json_t *v, const fr_type *t);
/* The call's end: records a failure's spend, writes the trace line, frees h. */
void fr_journal_call_end(fr_jhook *h, fr_ctx *cx, json_t *v);

/* The journal's part of an http operation call (h->model stays NULL):
 * begin gives the journaled answer or NULL, and says whether a process left
 * the call in flight; hold durably marks a write in flight before it is
 * sent; the answer is recorded with fr_journal_call_record; end records a
 * failure and writes the trace line. */
json_t *fr_journal_op_begin(fr_jhook *h, fr_ctx *cx, const fr_op *op, int site,
                            const char *request, bool *in_flight, const fr_under *u);
bool fr_journal_op_hold(fr_jhook *h, fr_ctx *cx);   /* false: FR_SIG_STOP, do not send */
struct fr_top;
void fr_journal_op_end(fr_jhook *h, fr_ctx *cx, json_t *v, struct fr_top *t);
/* The run's id (the journal's, else this process's): idempotency keys. */
const char *fr_journal_run_tag(fr_run *run);

/* approve() and escalate() through the journal's queue. */
json_t *fr_journal_approve(fr_ctx *cx, json_t *list, json_t *title, int site,
                           const char *where);
void fr_journal_escalated(fr_ctx *cx, json_t *item, const char *why, const char *where);

/* ---- fr_trace.c: --trace FILE, one JSON line per phase and per call ------- */

typedef struct fr_trace fr_trace;

/* One agent call as the trace reports it. */
typedef struct fr_tcall {
    const char *agent;             /* the agent's name */
    const char *provider;          /* gen_ai.provider.name */
    const char *model;             /* gen_ai.request.model */
    int phase;                     /* the phase index (its span is the parent), -1 none */
    const char *item;              /* the item path */
    int attempts;                  /* attempts made (0: answered from the journal) */
    int64_t tokens_in;             /* gen_ai.usage.input_tokens (cache reads and writes in) */
    int64_t cache_read;            /* gen_ai.usage.cache_read.input_tokens */
    int64_t cache_write;           /* gen_ai.usage.cache_creation.input_tokens */
    int64_t tokens_out;            /* gen_ai.usage.output_tokens */
    double usd;                    /* cost */
    int64_t start_us;              /* wall clock start, microseconds since the epoch */
    int64_t latency_ms;            /* wall time of the call */
    const char *finish_reason;     /* gen_ai.response.finish_reasons[0], or NULL */
    const char *error_type;        /* error.type, NULL on success */
    bool cached;                   /* answered from the journal */
    const char *key;               /* the journal's call key, or NULL */
    const char *span_id;           /* its span id when given beforehand (a tool loop's turns
                                      and tools are its children), NULL: a new one */
    const char *parent_span_id;    /* its parent when it is a tool's call, NULL: the phase */
    bool loop;                     /* the agent ran a tool loop: */
    int turns;                     /* its model turns */
    int tool_calls;                /* and its tool calls */
    json_t *detail;                /* its attempts (fr_jhook's detail, borrowed), or NULL */
    bool content;                  /* --trace-content: the line carries detail */
    int max_tokens;                /* gen_ai.request.max_tokens of the last attempt, 0 none */
    double temperature;            /* gen_ai.request.temperature sent, < 0 none */
    const char *response_id;       /* gen_ai.response.id of the last answer, or NULL */
} fr_tcall;

/* Opens (appends to) path, or no file when path is NULL (the spans go
 * only to the collector fr_otlp_wanted names); the trace id derives from
 * run_id. */
fr_trace *fr_trace_open(const char *path, const char *run_id, const fr_program *prog,
                        fr_buf *err);
void fr_trace_close(fr_trace *t);
void fr_trace_phase_begin(fr_trace *t, int phase);
/* Writes the phase's line once; status is "ok", "waiting" or an error type. */
void fr_trace_phase_end(fr_trace *t, int phase, const char *status);
/* Ends the phases still open when the run stops (a wait, a budget, an error). */
void fr_trace_end_open(fr_trace *t, const char *status);
void fr_trace_call(fr_trace *t, const fr_tcall *c);
/* The run's own span, for the collector (fr_otlp.c): outcome is the
 * journal's word ("done", "failed", ...), error_type NULL unless it failed. */
void fr_trace_run_end(fr_trace *t, const char *outcome, const char *error_type);
/* The trace writes a file (--trace FILE), not only to a collector. */
bool fr_trace_file(const fr_trace *t);
/* A fresh span id (16 hex digits and a NUL), for a span whose children are
 * written before it. */
void fr_trace_span(fr_trace *t, char out[17]);

/* One turn of an agent's tool loop: a chat span under the agent call's. */
typedef struct fr_tturn {
    const char *agent;             /* the agent's name */
    const char *provider;          /* gen_ai.provider.name */
    const char *model;             /* gen_ai.request.model */
    int phase;                     /* the phase index, -1 none */
    const char *item;              /* the item path */
    const char *parent_span_id;    /* the agent call's span */
    int turn;                      /* its number in the loop, from 0 */
    int attempts;                  /* attempts made (0: replayed from the journal) */
    int64_t tokens_in, tokens_out; /* usage of its attempts */
    double usd;                    /* their cost */
    int64_t start_us;              /* wall clock start */
    int64_t latency_ms;            /* its wall time */
    const char *finish_reason;     /* the last attempt's stop reason */
    int tool_calls;                /* calls the model asked for (0: it answered) */
    bool cached;                   /* replayed from the journal */
    const char *error_type;        /* NULL on success */
} fr_tturn;
void fr_trace_turn(fr_trace *t, const fr_tturn *c);

/* One tool call of an agent's tool loop: an execute_tool span (OpenTelemetry
 * GenAI) under the agent call's; the operation's or agent's own line is its
 * child. */
typedef struct fr_ttool {
    const char *tool;              /* gen_ai.tool.name */
    const char *call_id;           /* gen_ai.tool.call.id, the model's id for the call */
    const char *description;       /* gen_ai.tool.description, or NULL */
    const char *kind;              /* "http" or "agent": what runs it */
    const char *agent;             /* the agent whose model called it */
    int phase;                     /* the phase index, -1 none */
    const char *item;              /* the item path */
    const char *span_id;           /* its span (its callee's parent) */
    const char *parent_span_id;    /* the agent call's span */
    int turn;                      /* the turn that asked for it */
    int64_t start_us;              /* wall clock start */
    int64_t latency_ms;            /* its wall time */
    const char *error_type;        /* NULL on success, else why the model got an error */
    bool cached;                   /* its result replayed from the journal */
} fr_ttool;
void fr_trace_tool(fr_trace *t, const fr_ttool *c);
/* The same line, to write later (fr_malloc'd, NULL when out of memory). */
char *fr_trace_call_line(fr_trace *t, const fr_tcall *c);
/* Writes a line made by fr_trace_call_line (written in one piece) and frees it. */
void fr_trace_write(fr_trace *t, char *line);

/* One http operation call as the trace reports it (OpenTelemetry's HTTP
 * client conventions). */
typedef struct fr_top {
    const char *op;                /* the operation's name */
    const char *method;            /* http.request.method */
    const char *url;               /* url.full of the first page (no secret: none can be in it) */
    int status;                    /* http.response.status_code of the last answer, 0 none */
    int phase;                     /* the phase index, -1 none */
    const char *item;              /* the item path */
    int attempts;                  /* requests sent */
    int retries;                   /* of those, sent again (http.request.resend_count) */
    int pages;                     /* pages read */
    int64_t start_us;              /* wall clock start */
    int64_t latency_ms;            /* wall time */
    const char *error_type;        /* NULL on success */
    bool cached;                   /* answered from the journal */
    bool outcome_unknown;          /* a write a crash had left in flight, sent again */
    bool dry_run;                  /* held back by --dry-run */
    const char *idempotency_key;   /* writes: the key sent */
    const char *key;               /* the journal's call key, or NULL */
    const char *parent_span_id;    /* its parent when it is a tool's call, NULL: the phase */
} fr_top;

void fr_trace_op(fr_trace *t, const fr_top *c);

/* ---- fr_otlp.c: spans to an OpenTelemetry collector (OTLP/HTTP JSON) ------
 * fr_trace.c calls these; a NULL exporter does nothing. */

typedef struct fr_otlp fr_otlp;

/* The environment names a collector (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) and does not disable export; read once,
 * a bad setting said once on stderr. */
bool fr_otlp_wanted(void);
/* Starts the export thread for one run's trace (NULL: no export). */
fr_otlp *fr_otlp_start(const char *workflow, const char *trace_id);
/* Queues the span of a trace line (borrowed; read now, on the caller's
 * thread): kind is OTLP's SpanKind (1 internal, 3 client), times in
 * microseconds since the epoch, detail a call's attempts (their retries
 * become events) or NULL, parent the span's parent when the line names
 * none (NULL: a root).  Never blocks: a full queue drops the span. */
void fr_otlp_span(fr_otlp *x, json_t *line, int kind, int64_t start_us, int64_t end_us,
                  json_t *detail, const char *parent);
/* Sends what is queued within a short deadline, says on stderr how many
 * spans were dropped and why (when any were), and frees x. */
void fr_otlp_stop(fr_otlp *x);

/* ---- fr_shard.c: N shards of one run, and merge ---------------------------- */

#define FR_MAX_SHARDS 10000

/* From --shard I/N, --shards N and the schedulers' variables: -1 to go on
 * (sharded or not), else the exit status (said why). */
int fr_shard_setup(const fr_program *p, const char *shard, const char *shards);
bool fr_shard_on(void);                     /* this process is one shard of several */
int fr_shard_index(void);
int fr_shard_count(void);
/* Budgets and limits are shared through Redis (else each shard takes 1/N). */
void fr_shard_set_shared(bool shared);
/* The share of each budget cap and rate limit this process takes. */
double fr_shard_share(void);
/* path as this shard's part ("out.jsonl" -> "out.part-0003-of-0016.jsonl"),
 * or a copy of path when not sharded; malloc'd. */
char *fr_shard_part_path(const char *path);
/* Likewise, consuming path (fr_malloc'd). */
char *fr_shard_part_of(char *path);
/* The journal of this shard (".flow/w.db" -> ".flow/w.shard-0003-of-0016.db"),
 * consuming path. */
char *fr_shard_of_journal(char *path);
/* The sharded fan-out's share of list (borrowed from cx's pool), with each
 * item's position; NULL with cx's signal set on failure. */
json_t *fr_shard_take(fr_ctx *cx, json_t *list, const fr_par_opts *o);
/* A part was written: path as the workflow named it, part where it went. */
void fr_shard_output(const char *path, const char *part, const char *format, json_t *list);
void fr_shard_begin(fr_run *run);           /* the run starts: the old summary goes */
int fr_shard_result(fr_run *run, json_t *v); /* the returned list to its part: 0 or 1 */
/* The run ended with status: its summary for merge (args: the run's
 * arguments as text, or NULL). */
void fr_shard_end(fr_run *run, int status, const char *args, const char *id);
void fr_shard_free(void);
/* BINARY merge ...: the exit status. */
int fr_shard_merge(const fr_program *p, int argc, char **argv);
/* The run summary on stderr (fr_run.c), for merge too. */
void fr_run_print_summary(fr_run *run);

/* ---- fr_redis.c: limits and budgets shared through Redis ------------------ */

/* Connects to FLOWRT_REDIS_URL (false, said why, when it is unset or cannot
 * be reached); group names the run's budget keys. */
bool fr_redis_setup(const char *group);
bool fr_redis_on(void);                     /* Redis is there and answers */
const char *fr_redis_group(void);
/* fn is called once, outside any lock, when Redis stops answering. */
void fr_redis_on_lost(void (*fn)(void));
/* EVAL script: the integers of its reply into out; false when Redis is gone. */
bool fr_redis_eval(const char *script, int nkeys, const char *const *keys, int nargs,
                   const char *const *args, long long *out, int nout, int *got);
/* The shared schedule name's next slot for a request of cost[d] at rate[d]
 * (per second; 0: not paced) in the four dimensions: the wait in
 * microseconds, -1 when Redis is gone. */
int64_t fr_redis_slot(const char *name, const double rate[4], const double cost[4]);
/* fr_budget.c: with Redis and shards, budgets are shared from the run's start. */
void fr_budget_shared_start(fr_run *run);

#endif
