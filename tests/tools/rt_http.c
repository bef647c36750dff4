/*
 * rt_http.c: a hand-written client of libflowrt's HTTP providers, for the
 * provider tests and benches; it does not depend on the code generator.
 *
 * It describes one agent by hand (the Lead schema below, or with --list a
 * list<string> answer), sets up fr_http_new like a compiled binary would,
 * and makes --calls calls from --concurrency threads.  Each call is a small
 * copy of fr_call's attempt loop: validate with fr_validate, retry bad
 * answers with the feedback, back off on transient errors (at least the
 * server's retry-after), stop on fatal ones.
 *
 *   rt_http --provider anthropic|openai [--model NAME] [--base-url URL]
 *           [--key-env VAR] [--calls N] [--concurrency C] [--retries R]
 *           [--timeout-ms MS] [--list] [--quiet] [--oom N] [--scan-key VAR]
 *
 * --oom N makes N single attempts instead, attempt i with its (i % 400 + 1)-th
 * allocation failing (fr_alloc_fail_after), and checks each outcome is
 * whole: an answer with a value, or an error with a message.  ASan does the
 * rest (leaks, double frees).
 * --scan-key VAR, after the calls and fr_http_free, counts the copies of
 * VAR's value (the API key) left anywhere in the process's memory besides
 * the environment: "key copies in memory: N".
 * Output: a line per attempt ("attempt 0.1: transient status=429 ...") and
 * per call ("call 0: ok attempts=2 repaired=0 in=100 ..."), then a summary
 * line "calls=N ok=N failed=N attempts=N repaired=N elapsed_ms=T rate=R".
 * --quiet prints the summary only.  Exit status 0 when every call succeeded,
 * 1 when any failed, 2 when set-up failed.
 */
#include "fr_internal.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *const seniority_values[] = { "ic", "manager", "vp" };
static const fr_enum seniority = { "Seniority", NULL, 3, seniority_values };
static const fr_type t_seniority = { FR_ENUM, NULL, NULL, &seniority };
static const fr_type t_tags = { FR_LIST, &fr_type_string, NULL, NULL };
static const fr_type t_note = { FR_OPTIONAL, &fr_type_string, NULL, NULL };
static const fr_field lead_fields[] = {
    { "id", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "score", &fr_type_float, true, 0, 1, false, 0, 0, "How likely.", NULL, NULL, false },
    { "seniority", &t_seniority, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "tags", &t_tags, false, 0, 0, true, 0, 5, NULL, NULL, NULL, false },
    { "note", &t_note, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema lead = { "Lead", "A lead.", 5, lead_fields, FR_EXTRA_REJECT };
static const fr_type t_lead = { FR_RECORD, NULL, &lead, NULL };
static const fr_type t_names = { FR_LIST, &fr_type_string, NULL, NULL };

static const char lead_anthropic[] =
    "{\"type\":\"object\",\"description\":\"A lead.\",\"properties\":{"
    "\"id\":{\"type\":\"string\"},"
    "\"score\":{\"description\":\"How likely. Must be between 0 and 1.\",\"type\":\"number\","
    "\"minimum\":0,\"maximum\":1},"
    "\"seniority\":{\"type\":\"string\",\"enum\":[\"ic\",\"manager\",\"vp\"]},"
    "\"tags\":{\"description\":\"At most 5 items.\",\"type\":\"array\","
    "\"items\":{\"type\":\"string\"},\"minItems\":0,\"maxItems\":5},"
    "\"note\":{\"type\":\"string\"}},"
    "\"required\":[\"id\",\"score\",\"seniority\",\"tags\"],\"additionalProperties\":false}";
static const char lead_openai[] =
    "{\"type\":\"object\",\"description\":\"A lead.\",\"properties\":{"
    "\"id\":{\"type\":\"string\"},"
    "\"score\":{\"description\":\"How likely. Must be between 0 and 1.\",\"type\":\"number\"},"
    "\"seniority\":{\"type\":\"string\",\"enum\":[\"ic\",\"manager\",\"vp\"]},"
    "\"tags\":{\"description\":\"At most 5 items.\",\"type\":\"array\","
    "\"items\":{\"type\":\"string\"}},"
    "\"note\":{\"type\":[\"string\",\"null\"]}},"
    "\"required\":[\"id\",\"score\",\"seniority\",\"tags\",\"note\"],"
    "\"additionalProperties\":false}";
/* The documented subset for output_config.format: no numeric or length
 * keywords but minItems 0 or 1. */
static const char lead_output_config[] =
    "{\"type\":\"object\",\"description\":\"A lead.\",\"properties\":{"
    "\"id\":{\"type\":\"string\"},"
    "\"score\":{\"description\":\"How likely. Must be between 0 and 1.\",\"type\":\"number\"},"
    "\"seniority\":{\"type\":\"string\",\"enum\":[\"ic\",\"manager\",\"vp\"]},"
    "\"tags\":{\"description\":\"At most 5 items.\",\"type\":\"array\","
    "\"items\":{\"type\":\"string\"},\"minItems\":0},"
    "\"note\":{\"type\":\"string\"}},"
    "\"required\":[\"id\",\"score\",\"seniority\",\"tags\"],\"additionalProperties\":false}";
static const char names_schema[] = "{\"type\":\"array\",\"items\":{\"type\":\"string\"}}";

static struct {
    fr_model model;                /* the one model */
    fr_agent agent;                /* the one agent */
    fr_http *http;                 /* the providers */
    int calls, concurrency;        /* --calls, --concurrency */
    bool quiet;                    /* --quiet */
    int oom;                       /* --oom: attempts under a failing allocation */
    const char *scan_key;          /* --scan-key VAR: count the key's copies at the end */
    atomic_int next;               /* the next call to make */
    atomic_int ok, failed;         /* calls that ended so */
    atomic_int attempts, repaired; /* over all calls */
    pthread_mutex_t out_mu;        /* one line at a time */
} G = { .out_mu = PTHREAD_MUTEX_INITIALIZER };

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (G.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&G.out_mu);
    vprintf(fmt, ap);
    fflush(stdout);
    pthread_mutex_unlock(&G.out_mu);
    va_end(ap);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (ms > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

static const char *outcome_name(fr_outcome o)
{
    static const char *const n[] = { "answer", "transient", "bad-answer", "fatal" };
    return n[o];
}

static void set_str(char **slot, const char *s)
{
    fr_free(*slot);
    *slot = s ? fr_strdup(s) : NULL;
}

/* The state of one call across its attempts. */
typedef struct call {
    int index;                     /* which call */
    char prompt[64];               /* its prompt */
    char *feedback;                /* for the next attempt */
    char *prev;                    /* the previous raw answer */
    char *error;                   /* the last problem */
} call;

/* One attempt; true when the call is over (answered or fatal). */
static bool attempt(call *c, int k, bool *ok)
{
    fr_request req = { &G.agent, &G.model, "You are a test.", c->prompt, c->feedback,
                       c->prev, k, G.agent.timeout_ms, G.agent.max_tokens, false,
                       FR_OUT_DEFAULT, NULL, false, NULL, NULL };
    fr_response r;
    fr_http_call(G.http, &req, &r);
    atomic_fetch_add(&G.attempts, 1);
    say("attempt %d.%d: %s status=%d retry_after_ms=%d error=%s\n", c->index, k,
        outcome_name(r.outcome), r.http_status, r.retry_after_ms, r.error ? r.error : "-");
    bool done = false;
    fr_buf err = { 0 };
    if (r.outcome == FR_ANSWER && fr_validate(r.output, G.agent.output, &err)) {
        char *js = json_dumps(r.output, JSON_COMPACT | JSON_ENCODE_ANY);
        say("call %d: ok attempts=%d repaired=%d in=%lld out=%lld cache_read=%lld "
            "cache_write=%lld finish=%s answer=%s\n", c->index, k + 1, r.repaired,
            (long long)r.input_tokens, (long long)r.output_tokens,
            (long long)r.cache_read_tokens, (long long)r.cache_write_tokens,
            r.finish_reason ? r.finish_reason : "-", js);
        fr_free(js);
        atomic_fetch_add(&G.repaired, r.repaired);
        done = *ok = true;
    } else if (r.outcome == FR_ANSWER || r.outcome == FR_BAD_ANSWER) {
        const char *why = r.outcome == FR_ANSWER ? err.s : r.error;
        say("attempt %d.%d: feedback: %s\n", c->index, k, why ? why : "-");
        set_str(&c->feedback, why);
        set_str(&c->error, why);
        set_str(&c->prev, r.raw);
    } else if (r.outcome == FR_TRANSIENT) {
        set_str(&c->error, r.error);
        long backoff = (50L << (k < 6 ? k : 6)) / 2 + rand() % 25;
        sleep_ms(r.retry_after_ms > backoff ? r.retry_after_ms : backoff);
    } else {
        set_str(&c->error, r.error);
        done = true;
    }
    fr_buf_free(&err);
    fr_response_free(&r);
    return done;
}

static void one_call(int index)
{
    call c = { index, "", NULL, NULL, NULL };
    snprintf(c.prompt, sizeof c.prompt, "Lead number %d.", index);
    bool ok = false;
    int k = 0;
    while (k <= G.agent.retries && !attempt(&c, k, &ok))
        k++;
    if (ok) {
        atomic_fetch_add(&G.ok, 1);
    } else {
        atomic_fetch_add(&G.failed, 1);
        say("call %d: failed attempts=%d: %s\n", index, k > G.agent.retries ? k : k + 1,
            c.error ? c.error : "-");
    }
    fr_free(c.feedback);
    fr_free(c.prev);
    fr_free(c.error);
}

static void *worker(void *arg)
{
    int i;
    while ((i = atomic_fetch_add(&G.next, 1)) < G.calls)
        one_call(i);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: rt_http --provider anthropic|openai [--model NAME] "
                    "[--base-url URL] [--key-env VAR]\n"
                    "               [--calls N] [--concurrency C] [--retries R] "
                    "[--timeout-ms MS] [--list] [--quiet]\n"
                    "               [--mode output_config|tool|json_schema|json_object|prompt] "
                    "[--temperature T]\n");
    exit(2);
}

static fr_output_mode mode_of(const char *v)
{
    static const char *const names[] = { "default", "output_config", "tool", "json_schema",
                                         "json_object", "prompt" };
    for (int i = 0; i < 6; i++)
        if (strcmp(v, names[i]) == 0)
            return (fr_output_mode)i;
    usage();
    return FR_OUT_DEFAULT;
}

static void parse_args(int argc, char **argv)
{
    G.model = (fr_model){ .name = "m", .provider = "anthropic", .api_name = "fake-model",
                          .usd_per_mtok_in = 1, .usd_per_mtok_out = 5,
                          .usd_per_mtok_cache_write = -1, .usd_per_mtok_cache_write_1h = -1,
                          .usd_per_mtok_cache_read = -1 };
    G.agent = (fr_agent){ .name = "enrich", .doc = "Enriches a lead.", .model = &G.model,
                          .output = &t_lead, .schema_anthropic = lead_anthropic,
                          .schema_openai = lead_openai, .temperature = 0.2,
                          .schema_output_config = lead_output_config,
                          .max_tokens = 800, .retries = 3, .timeout_ms = 5000 };
    G.calls = G.concurrency = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quiet") == 0) { G.quiet = true; continue; }
        if (strcmp(a, "--list") == 0) {
            G.agent.output = &t_names;
            G.agent.schema_anthropic = G.agent.schema_openai = names_schema;
            G.agent.schema_output_config = names_schema;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--provider") == 0) G.model.provider = v;
        else if (strcmp(a, "--model") == 0) G.model.api_name = v;
        else if (strcmp(a, "--base-url") == 0) G.model.base_url = v;
        else if (strcmp(a, "--key-env") == 0)
            G.model.api_key_env = strcmp(v, "none") == 0 ? "" : v;
        else if (strcmp(a, "--calls") == 0) G.calls = atoi(v);
        else if (strcmp(a, "--concurrency") == 0) G.concurrency = atoi(v);
        else if (strcmp(a, "--retries") == 0) G.agent.retries = atoi(v);
        else if (strcmp(a, "--timeout-ms") == 0) G.agent.timeout_ms = atoi(v);
        else if (strcmp(a, "--oom") == 0) G.oom = atoi(v);
        else if (strcmp(a, "--mode") == 0) G.model.output = mode_of(v);
        else if (strcmp(a, "--temperature") == 0) G.agent.temperature = atof(v);
        else if (strcmp(a, "--scan-key") == 0) G.scan_key = v;
        else usage();
    }
    if (G.concurrency < 1 || G.concurrency > 4096 || G.calls < 0)
        usage();
}

extern char **environ;

/* The address is inside one of the environment's strings. */
static bool in_environ(unsigned long addr)
{
    for (char **e = environ; *e; e++)
        if (addr >= (unsigned long)*e && addr < (unsigned long)*e + strlen(*e))
            return true;
    return false;
}

/* --scan-key VAR: copies of VAR's value (the key) left in this process's
 * memory once the providers are freed: every readable mapping is read
 * through /proc/self/mem into a buffer of its own (skipped, as are the
 * environment's copies, where the key came from, and any "VAR=key" copy of
 * the environment: the sanitizers' runtime keeps one).  Mappings over 1 GB (the
 * sanitizers' shadow) are left out.  Returns the count, -1 on error. */
static long scan_key(const char *var)
{
    const char *key = getenv(var);
    size_t kl = key ? strlen(key) : 0, cap = 1 << 20;
    FILE *maps = fopen("/proc/self/maps", "r");
    int mem = open("/proc/self/mem", O_RDONLY);
    char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (kl < 8 || !maps || mem < 0 || buf == MAP_FAILED)
        return -1;
    long found = 0;
    char line[512];
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perm[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 || perm[0] != 'r' ||
            hi - lo > (1ul << 30) || strstr(line, "[vvar]") || strstr(line, "[vsyscall]") ||
            lo == (unsigned long)buf)
            continue;
        for (unsigned long at = lo; at < hi;) {
            size_t n = hi - at < cap ? hi - at : cap;
            ssize_t got = pread(mem, buf, n, (off_t)at);
            if (got <= 0)
                break;
            for (char *p = buf; (p = memmem(p, (size_t)got - (size_t)(p - buf), key, kl)); p++)
                found += !in_environ(at + (unsigned long)(p - buf)) && !(p > buf && p[-1] == '=');
            if ((size_t)got < kl || at + (size_t)got >= hi)
                break;
            at += (size_t)got - kl + 1;            /* overlap: a copy across the seam */
        }
    }
    fclose(maps);
    close(mem);
    munmap(buf, cap);
    return found;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The OOM loop: attempt i fails its (i % 400 + 1)-th allocation.  The first
 * round mostly fails the agent's schema part (built until it succeeds), the
 * next ones every step of a call.  Returns the exit status. */
static int oom_loop(void)
{
    int answers = 0, errors = 0, broken = 0;
    for (int i = 0; i < G.oom; i++) {
        int k = i % 400 + 1;       /* 400 > any attempt's allocations: every one fails in turn */
        fr_request req = { &G.agent, &G.model, "You are a test.", "Lead number 1.",
                           k % 2 ? "seniority: 'x' is not one of ic, manager, vp" : NULL,
                           k % 2 ? "{\"id\":\"a\"}" : NULL, k % 2, G.agent.timeout_ms,
                           G.agent.max_tokens, false, FR_OUT_DEFAULT, NULL, false, NULL, NULL };
        fr_response r;
        fr_alloc_fail_after(k);
        fr_http_call(G.http, &req, &r);
        fr_alloc_fail_after(0);
        if (r.outcome == FR_ANSWER && r.output)
            answers++;
        else if (r.outcome != FR_ANSWER && r.error)
            errors++, say("oom %d: %s %s\n", i, outcome_name(r.outcome), r.error);
        else
            broken++, printf("oom %d: outcome %s without %s\n", i, outcome_name(r.outcome),
                             r.outcome == FR_ANSWER ? "a value" : "an error");
        fr_response_free(&r);
    }
    printf("oom: %d attempts, %d answers, %d errors, %d broken\n", G.oom, answers, errors,
           broken);
    return broken ? 1 : 0;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    const fr_model *models[] = { &G.model };
    const fr_agent *agents[] = { &G.agent };
    fr_program prog = { .name = "rt_http", .nmodels = 1, .models = models,
                        .nagents = 1, .agents = agents, .budget = FR_NO_BUDGET };
    fr_buf err = { 0 };
    G.http = fr_http_new(&prog, false, &err);
    if (!G.http) {
        fprintf(stderr, "rt_http: %s\n", err.s ? err.s : "set-up failed");
        fr_buf_free(&err);
        return 2;
    }
    if (G.oom > 0) {
        int st = oom_loop();
        fr_http_free(G.http);
        return st;
    }
    pthread_t *t = calloc((size_t)G.concurrency, sizeof *t);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    int64_t t0 = now_ms();
    for (int i = 0; i < G.concurrency; i++)
        if (pthread_create(&t[i], &attr, worker, NULL) != 0) {
            fprintf(stderr, "rt_http: cannot start thread %d\n", i);
            return 2;
        }
    for (int i = 0; i < G.concurrency; i++)
        pthread_join(t[i], NULL);
    int64_t ms = now_ms() - t0;
    printf("calls=%d ok=%d failed=%d attempts=%d repaired=%d elapsed_ms=%lld rate=%.1f\n",
           G.calls, G.ok, G.failed, G.attempts, G.repaired, (long long)ms,
           ms > 0 ? G.calls * 1000.0 / (double)ms : 0.0);
    free(t);
    fr_http_free(G.http);
    if (G.scan_key)
        printf("key copies in memory: %ld\n", scan_key(G.scan_key));
    return G.failed ? 1 : 0;
}
