/*
 * fr_run.c: fr_main, the life of one run of a compiled workflow.
 *
 *   command line -> providers (API keys) -> the workflow body in a root
 *   context -> the value on stdout -> the summary on stderr -> exit status
 *
 * Each workflow parameter is a flag (snake_case as --kebab-case, typed,
 * required unless it has a default or is optional); the runtime's own flags
 * follow in one table.  The value goes to stdout as JSON (a list as JSON
 * Lines).  What stopped a run picks the exit status: 1 failed, 2 bad usage or
 * input, 3 waiting for approval, 4 a budget.  A budget stop also writes the
 * finished items of the interrupted fan-out to <workflow>.partial.jsonl.
 * While it runs, a ticker thread redraws a progress line on stderr when that
 * is a terminal.  Nothing heavy happens before the first call.
 */
#include "fr_internal.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_RETRY_BASE_MS 500

/* ---- the command line ---------------------------------------------------- */

/* What the command line asked for. */
typedef struct opts {
    bool help;                     /* --help */
    bool version;                  /* --version */
    bool mock;                     /* --mock */
    bool quiet;                    /* --quiet */
    bool dry_run;                  /* --dry-run */
    fr_mock_opts mock_opts;        /* --mock-latency, --mock-fail-rate */
    int concurrency;               /* --concurrency, 0: no cap */
    int retry_base_ms;             /* --retry-base-ms */
    int max_wait_s;                /* --max-retry-after */
    fr_budget budget;              /* --budget-usd, --budget-tokens, --budget-time (< 0: not given) */
    int64_t batch_timeout_ms;      /* --batch-timeout, 0 none */
    int grace_s;                   /* --grace, -1: the default */
    fr_jopts jo;                   /* --journal, --no-journal, --resume, --force, --trace */
    const char *shard;             /* --shard I/N, or NULL */
    const char *shards;            /* --shards N, or NULL */
    json_t **args;                 /* one value per parameter (owned), NULL until given */
    bool rt_seen[64];              /* which runtime flags were given (rt_flags' order) */
} opts;

/* One of the runtime's own flags. */
typedef struct rt_flag {
    const char *name;              /* without the dashes */
    const char *arg;               /* the value's name, NULL for a switch */
    const char *help;              /* one line */
} rt_flag;

static const rt_flag rt_flags[] = {
    { "mock", NULL, "answer every model with the offline mock provider" },
    { "mock-latency", "MS", "the mock's latency per attempt, in milliseconds (default 0)" },
    { "mock-fail-rate", "P", "probability in 0..1 that a mock attempt fails transiently" },
    { "mock-fixtures", "FILE", "with --mock (implied): canned answers per agent, chosen by the"
      " call's arguments (JSON Lines: agent, when, answer); calls and fixtures that did not"
      " match are reported" },
    { "concurrency", "N", "agent and http calls in flight at most, across the whole run" },
    { "retry-base-ms", "N", "retry backoff base: the k-th retry (k from 0) waits a random"
      " 0..base*2^k ms, at most 30 s (default 500)" },
    { "max-retry-after", "S", "the longest wait a server may ask for (retry-after, a rate"
      " limit's reset), in seconds; longer ones are cut to it (default 60)" },
    { "budget-usd", "USD", "the workflow's usd budget, instead of the declared one" },
    { "budget-tokens", "N", "the workflow's token budget, instead of the declared one" },
    { "budget-time", "DURATION", "the workflow's time budget (90s, 30m, 2h), instead of the"
      " declared one" },
    { "batch-timeout", "DURATION", "cancel a batch fan-out's provider batch after this long"
      " (30m, 2h); what finished is kept, the rest made as normal calls" },
    { "grace", "S", "on Ctrl-C or SIGTERM, how long the calls in flight may finish, in"
      " seconds (default 30; 0 stops at once)" },
    { "quiet", NULL, "no progress line and no run summary" },
    { "dry-run", NULL, "send no write: write each one, secrets masked, to"
      " <workflow>.dry-run.jsonl" },
    { "shard", "I/N", "run as shard I (from 0) of N: the first fan-out's share of the items;"
      " `merge` joins the shards' parts" },
    { "shards", "N", "run as one of N shards, its index from JOB_COMPLETION_INDEX,"
      " AWS_BATCH_JOB_ARRAY_INDEX or SLURM_ARRAY_TASK_ID" },
    /* the journal's flags (--journal PATH, --resume [RUN_ID], --trace FILE) go here */
    { "journal", "PATH", "the run journal (SQLite; default .flow/<workflow>.db)" },
    { "no-journal", NULL, "do not journal this run (it cannot be resumed)" },
    { "resume", "[RUN_ID]", "finish a journaled run (default: the last unfinished one)" },
    { "force", NULL, "resume even if the workflow or its arguments changed" },
    { "retry-skipped", NULL, "with --resume: run a run again, also a finished one, for the"
      " items it skipped after errors (the rest is answered from the journal)" },
    { "trace", "FILE", "append one JSON line per phase and per agent call to FILE" },
    { "trace-content", NULL, "keep the rendered prompts and the raw replies of every attempt"
      " in the journal and the trace (see: show)" },
    { "help", NULL, "show this help" },
    { "version", NULL, "show the version" },
};
#define N_RT_FLAGS (sizeof rt_flags / sizeof rt_flags[0])
_Static_assert(N_RT_FLAGS <= sizeof ((opts *)0)->rt_seen, "opts.rt_seen is too small");

static const fr_type *base_type(const fr_type *t)
{
    return t->kind == FR_OPTIONAL ? t->elem : t;
}

static const char *type_word(const fr_type *t)
{
    switch (base_type(t)->kind) {
    case FR_INT: return "INT";
    case FR_FLOAT: return "FLOAT";
    case FR_BOOL: return "";
    default: return "STRING";
    }
}

/* The --kebab-case spelling of a snake_case name, in buf. */
static const char *kebab(const char *name, char *buf, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        buf[i] = name[i] == '_' ? '-' : name[i];
    buf[i] = '\0';
    return buf;
}

static int usage_error(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, "\n");
    return 2;
}

static void consider(const char *given, const char *cand, const char **best, size_t *bd)
{
    size_t d = fr_edit_distance(given, cand);
    if (d < *bd)
        *bd = d, *best = cand;
}

/* unknown flag: exit 2, naming the nearest flag there is */
static int unknown_flag(const fr_program *p, const char *given)
{
    char names[64][64];
    const char *best = NULL;
    size_t bd = strlen(given) / 3 + 2;
    for (int i = 0; i < p->nparams && i < 64; i++)
        consider(given, kebab(p->params[i].name, names[i], sizeof names[i]), &best, &bd);
    for (size_t i = 0; i < N_RT_FLAGS; i++)
        consider(given, rt_flags[i].name, &best, &bd);
    fprintf(stderr, "error: unknown flag --%s\n", given);
    if (best)
        fprintf(stderr, "help: did you mean --%s?\n", best);
    else
        fprintf(stderr, "help: see --help\n");
    return 2;
}

/* int flag: a whole decimal number, nothing after it */
static bool parse_int(const char *s, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(s, &end, 10);
    return *s && !*end && errno == 0;
}

/* float flag: a finite decimal number, nothing after it */
static bool parse_float(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return *s && !*end && errno == 0 && isfinite(*out);
}

/* A parameter's value from its text; NULL after printing why not. */
static json_t *param_value(const char *flag, const fr_type *t, const char *s)
{
    long long i;
    double d;
    switch (base_type(t)->kind) {
    case FR_INT:
        if (parse_int(s, &i))
            return json_integer(i);
        usage_error("--%s: expected an integer, got '%s'", flag, s);
        return NULL;
    case FR_FLOAT:
        if (parse_float(s, &d))
            return json_real(d);
        usage_error("--%s: expected a number, got '%s'", flag, s);
        return NULL;
    case FR_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)
            return json_boolean(s[0] == 't');
        usage_error("--%s: expected true or false, got '%s'", flag, s);
        return NULL;
    default: {
        json_t *v = json_string(s);
        if (!v)
            usage_error("--%s: the value is not valid UTF-8%s", flag, "");
        return v;
    }
    }
}

/* Finds the parameter named by flag (or --no-flag for a bool); -1 if none. */
static int find_param(const fr_program *p, const char *flag, bool *negated)
{
    char buf[128];
    *negated = false;
    for (int i = 0; i < p->nparams; i++) {
        kebab(p->params[i].name, buf, sizeof buf);
        if (strcmp(flag, buf) == 0)
            return i;
        if (base_type(p->params[i].type)->kind == FR_BOOL && strncmp(flag, "no-", 3) == 0
            && strcmp(flag + 3, buf) == 0) {
            *negated = true;
            return i;
        }
    }
    return -1;
}

/* Argument parsing state: where we are in argv. */
typedef struct argp {
    int argc;                      /* argv's length */
    char **argv;                   /* the arguments */
    int i;                         /* the current one */
    const char *flag;              /* the current flag's name, without dashes or =value */
    const char *value;             /* its =value, or NULL */
} argp;

/* A flag's value: after '=', else the next argument; NULL after an error. */
static const char *flag_value(argp *a)
{
    if (a->value)
        return a->value;
    if (a->i + 1 < a->argc)
        return a->argv[++a->i];
    usage_error("--%s needs a value%s", a->flag, "");
    return NULL;
}

static int set_param(const fr_program *p, opts *o, argp *a, int k, bool negated)
{
    const fr_type *t = p->params[k].type;
    json_t *v;
    char buf[128];
    if (o->args[k])                /* a second value would silently win */
        return usage_error("--%s is given twice%s", kebab(p->params[k].name, buf, sizeof buf),
                           base_type(t)->kind == FR_BOOL ? " (or with its --no- form)" : "");
    if (base_type(t)->kind == FR_BOOL && (!a->value || negated)) {
        if (a->value)
            return usage_error("--%s takes no value%s", a->flag, "");
        v = json_boolean(!negated);
    } else {
        const char *s = flag_value(a);
        if (!s || !(v = param_value(a->flag, t, s)))
            return 2;
    }
    json_decref(o->args[k]);
    o->args[k] = v;
    return 0;
}

/* A whole number flag of the runtime, >= lo. */
static int rt_int(argp *a, int lo, int *out)
{
    const char *s = flag_value(a);
    long long v;
    if (!s)
        return 2;
    if (!parse_int(s, &v) || v < lo || v > 1000000000)
        return usage_error("--%s: expected a whole number, got '%s'", a->flag, s);
    *out = (int)v;
    return 0;
}

/* --budget-usd X, --budget-tokens N, --budget-time DURATION */
static int budget_flag(opts *o, argp *a)
{
    const char *s = flag_value(a), *k = a->flag + 7;
    double d;
    long long n;
    if (!s)
        return 2;
    if (strcmp(k, "usd") == 0) {
        if (!parse_float(s, &d) || !(d > 0) || d > 1e12)
            return usage_error("--%s: expected dollars more than 0, got '%s'", a->flag, s);
        o->budget.usd = d;
    } else if (strcmp(k, "tokens") == 0) {
        if (!parse_int(s, &n) || n <= 0)
            return usage_error("--%s: expected a whole number of tokens more than 0, got '%s'",
                               a->flag, s);
        o->budget.tokens = n;
    } else {
        int64_t ms = fr_parse_duration(s);
        if (ms <= 0)
            return usage_error("--%s: expected a duration such as 90s, 30m or 2h, got '%s'",
                               a->flag, s);
        o->budget.time_ms = ms;
    }
    return 0;
}

static int set_rt_flag(const fr_program *p, opts *o, argp *a)
{
    const char *f = a->flag;
    bool sw = strcmp(f, "mock") == 0 || strcmp(f, "quiet") == 0 || strcmp(f, "help") == 0
              || strcmp(f, "version") == 0 || strcmp(f, "dry-run") == 0;
    if (sw && a->value)
        return usage_error("--%s takes no value%s", f, "");
    if (strcmp(f, "mock") == 0)
        o->mock = true;
    else if (strcmp(f, "quiet") == 0)
        o->quiet = true;
    else if (strcmp(f, "dry-run") == 0)
        o->dry_run = true;
    else if (strcmp(f, "help") == 0)
        o->help = true;
    else if (strcmp(f, "version") == 0)
        o->version = true;
    else if (strcmp(f, "mock-latency") == 0)
        return rt_int(a, 0, &o->mock_opts.latency_ms);
    else if (strcmp(f, "concurrency") == 0)
        return rt_int(a, 1, &o->concurrency);
    else if (strcmp(f, "retry-base-ms") == 0)
        return rt_int(a, 0, &o->retry_base_ms);
    else if (strcmp(f, "grace") == 0) {
        int st = rt_int(a, 0, &o->grace_s);
        if (st == 0 && o->grace_s > 3600)
            return usage_error("--%s: at most 3600 seconds (an hour)%s", f, "");
        return st;
    }
    else if (strcmp(f, "max-retry-after") == 0) {
        int st = rt_int(a, 0, &o->max_wait_s);
        if (st == 0 && o->max_wait_s > 86400)
            return usage_error("--%s: at most 86400 seconds (a day)%s", f, "");
        return st;
    }
    else if (strcmp(f, "batch-timeout") == 0) {
        const char *s = flag_value(a);
        if (!s)
            return 2;
        if ((o->batch_timeout_ms = fr_parse_duration(s)) <= 0)
            return usage_error("--%s: expected a duration such as 90s, 30m or 2h, got '%s'",
                               f, s);
    } else if (strcmp(f, "shard") == 0 || strcmp(f, "shards") == 0) {
        const char *s = flag_value(a);
        if (!s)
            return 2;
        *(f[5] ? &o->shards : &o->shard) = s;
    } else if (strncmp(f, "budget-", 7) == 0 && (strcmp(f + 7, "usd") == 0 ||
             strcmp(f + 7, "tokens") == 0 || strcmp(f + 7, "time") == 0))
        return budget_flag(o, a);
    else if (strcmp(f, "mock-fixtures") == 0) {
        const char *s = flag_value(a);
        if (!s)
            return 2;
        fr_buf err = { 0 };
        o->mock_opts.fixtures = fr_fixtures_load(s, p, &err);
        if (!o->mock_opts.fixtures) {
            fprintf(stderr, "error: %s\n", err.s ? err.s : "out of memory");
            fr_buf_free(&err);
            return 2;
        }
        o->mock = true;
    } else if (strcmp(f, "mock-fail-rate") == 0) {
        const char *s = flag_value(a);
        if (!s)
            return 2;
        if (!parse_float(s, &o->mock_opts.fail_rate) || o->mock_opts.fail_rate < 0
            || o->mock_opts.fail_rate > 1)
            return usage_error("--%s: expected a probability in 0..1, got '%s'", f, s);
    } else {
        int st = fr_jopts_flag(&o->jo, f, a->value, a->argc, a->argv, &a->i);
        return st >= 0 ? st : unknown_flag(p, f);
    }
    return 0;
}

/* One --flag[=value] argument. */
static int parse_flag(const fr_program *p, opts *o, argp *a, char *name)
{
    char *eq = strchr(name, '=');
    if (eq)
        *eq = '\0';
    a->flag = name;
    a->value = eq ? eq + 1 : NULL;
    bool negated;
    int k = find_param(p, name, &negated);
    int st = -1;
    for (size_t i = 0; k < 0 && i < N_RT_FLAGS; i++) {
        if (strcmp(name, rt_flags[i].name) != 0 || strcmp(name, "help") == 0 ||
            strcmp(name, "version") == 0)
            continue;
        if (o->rt_seen[i])         /* a second value would silently win */
            st = usage_error("--%s is given twice%s", name, "");
        o->rt_seen[i] = true;
    }
    if (st < 0)
        st = k >= 0 ? set_param(p, o, a, k, negated) : set_rt_flag(p, o, a);
    if (eq)
        *eq = '=';
    return st;
}

/* required flags: every parameter without a default and not optional */
static int fill_defaults(const fr_program *p, opts *o)
{
    int st = 0;
    char buf[128];
    for (int k = 0; k < p->nparams; k++) {
        const fr_param *pa = &p->params[k];
        if (o->args[k])
            continue;
        if (pa->deflt)
            o->args[k] = json_loads(pa->deflt, JSON_DECODE_ANY, NULL);
        else if (pa->type->kind == FR_OPTIONAL)
            o->args[k] = json_null();
        else
            st = usage_error("missing required flag --%s%s",
                             kebab(pa->name, buf, sizeof buf), "");
        if (!o->args[k] && st == 0)
            st = usage_error("bad default for --%s: %s", kebab(pa->name, buf, sizeof buf),
                             pa->deflt);
    }
    return st;
}

/* Returns -1 to go on, else the exit status. */
static int parse_args(const fr_program *p, int argc, char **argv, opts *o)
{
    argp a = { argc, argv, 1, NULL, NULL };
    for (; a.i < argc; a.i++) {
        char *s = argv[a.i];
        int st = 0;
        if (strcmp(s, "-h") == 0)
            o->help = true;
        else if (strncmp(s, "--", 2) != 0 || s[2] == '\0')
            st = usage_error("unexpected argument '%s'%s", s, "");
        else
            st = parse_flag(p, o, &a, s + 2);
        if (st)
            return st;
    }
    if (o->help || o->version)
        return -1;
    return fill_defaults(p, o) ? 2 : -1;
}

/* ---- --help and --version ------------------------------------------------ */

/* Writes text, its later lines indented by ind spaces. */
static void put_indented(const char *text, int ind)
{
    for (const char *s = text; *s; s++) {
        fputc(*s, stdout);
        if (*s == '\n' && s[1])
            printf("%*s", ind, "");
    }
}

static void help_param(const fr_param *pa)
{
    char buf[128], left[300];
    kebab(pa->name, buf, sizeof buf);
    if (base_type(pa->type)->kind == FR_BOOL)
        snprintf(left, sizeof left, "--%s, --no-%s", buf, buf);
    else
        snprintf(left, sizeof left, "--%s %s", buf, type_word(pa->type));
    printf("  %-28s ", left);
    if (pa->doc)
        put_indented(pa->doc, 31), printf(" ");
    if (pa->deflt)
        printf("(default %s)\n", pa->deflt);
    else if (pa->type->kind == FR_OPTIONAL)
        printf("(optional)\n");
    else
        printf("(required)\n");
}

static void print_help(const fr_program *p, const char *argv0)
{
    printf("%s", p->name);
    if (p->doc)
        printf(": "), put_indented(p->doc, 2);
    printf("\n\nusage: %s [flags]\n", argv0);
    if (p->nparams)
        printf("\nworkflow flags:\n");
    for (int i = 0; i < p->nparams; i++)
        help_param(&p->params[i]);
    printf("\nruntime flags:\n");
    for (size_t i = 0; i < N_RT_FLAGS; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", rt_flags[i].name, rt_flags[i].arg ? " " : "",
                 rt_flags[i].arg ? rt_flags[i].arg : "");
        printf("  %-28s %s\n", left, rt_flags[i].help);
    }
    printf("\ncommands (each with --help):\n"
           "  %-28s one line per run in the journal (--cost, --audit, --prune DAYS)\n"
           "  %-28s what each call of a run sent and got back\n"
           "  %-28s the items waiting for a person\n"
           "  %-28s decide them, then --resume\n"
           "  %-28s an HTML page about a run: cost, timeline, failures\n", "runs",
           "show RUN", "review", "approve RUN_ID ...", "report RUN -o FILE");
    printf("\nThe result goes to stdout as JSON (a list as JSON Lines), the run summary to"
           " stderr.\nexit status: 0 done, 1 failed, 2 bad usage or input, 3 waiting for"
           " approval,\n4 stopped by a budget, 5 done but items were skipped after transient"
           " errors (--resume\nretries them)\n");
}

/* ---- the progress line --------------------------------------------------- */

/* The ticker thread that redraws the progress line. */
typedef struct ticker {
    fr_run *run;                   /* what it shows */
    pthread_t t;                   /* the thread */
    pthread_mutex_t mu;            /* guards stop */
    pthread_cond_t cv;             /* wakes it to stop */
    bool stop;                     /* end now */
    bool on;                       /* the thread runs */
} ticker;

static void draw(fr_run *run)
{
    const fr_program *p = run->prog;
    size_t done = __atomic_load_n(&run->prog_done, __ATOMIC_RELAXED);
    size_t total = __atomic_load_n(&run->prog_total, __ATOMIC_RELAXED);
    int inflight = __atomic_load_n(&run->inflight, __ATOMIC_RELAXED);
    pthread_mutex_lock(&run->mu);
    double usd = run->wf.usd_spent;
    int ph = run->cur_phase;
    char batch[sizeof run->batch_line];
    snprintf(batch, sizeof batch, "%s", run->batch_line);
    pthread_mutex_unlock(&run->mu);
    const char *name = ph >= 0 && ph < p->nphases ? p->phases[ph].name : p->name;
    if (batch[0])
        fprintf(stderr, "\r[%s] %s  $%.2f\033[K", name, batch, usd);
    else
        fprintf(stderr, "\r[%s] %zu/%zu items  %d in flight  $%.2f\033[K", name, done, total,
                inflight, usd);
    fflush(stderr);
}

static void *tick_main(void *arg)
{
    ticker *tk = arg;
    pthread_mutex_lock(&tk->mu);
    while (!tk->stop) {
        struct timespec ts = fr_deadline_in(200);
        pthread_cond_timedwait(&tk->cv, &tk->mu, &ts);
        if (!tk->stop)
            draw(tk->run);
    }
    pthread_mutex_unlock(&tk->mu);
    return NULL;
}

static void ticker_start(ticker *tk, fr_run *run)
{
    memset(tk, 0, sizeof *tk);
    tk->run = run;
    if (run->quiet || !isatty(STDERR_FILENO))
        return;
    pthread_mutex_init(&tk->mu, NULL);
    pthread_cond_init(&tk->cv, NULL);
    tk->on = pthread_create(&tk->t, NULL, tick_main, tk) == 0;
    run->progress = tk->on;
}

static void ticker_stop(ticker *tk)
{
    if (!tk->on)
        return;
    pthread_mutex_lock(&tk->mu);
    tk->stop = true;
    pthread_cond_signal(&tk->cv);
    pthread_mutex_unlock(&tk->mu);
    pthread_join(tk->t, NULL);
    tk->run->progress = false;
    fprintf(stderr, "\r\033[K");
    pthread_mutex_destroy(&tk->mu);
    pthread_cond_destroy(&tk->cv);
}

/* ---- the summary --------------------------------------------------------- */

static void summary_row(const char *name, const fr_stats *s, int64_t wall_ms, bool ran)
{
    char usd[32], saved[32];
    snprintf(usd, sizeof usd, "$%.4f", s->usd);
    snprintf(saved, sizeof saved, "$%.4f", s->usd_saved);
    fprintf(stderr, "  %-16s %7lld %7lld %7lld %7lld %11lld %11lld %10lld %10s %10s ", name,
            (long long)s->calls, (long long)s->cached, (long long)s->retries,
            (long long)s->failures, (long long)s->tokens_in, (long long)s->tokens_out,
            (long long)s->cache_read, saved, usd);
    if (ran && wall_ms < 0)
        fprintf(stderr, "%9s\n", "-");      /* (no phase): its time is spread out */
    else if (ran)
        fprintf(stderr, "%8.2fs\n", (double)wall_ms / 1000.0);
    else
        fprintf(stderr, "  not run\n");
}

static void add_stats(fr_stats *t, const fr_stats *s)
{
    t->calls += s->calls, t->retries += s->retries, t->failures += s->failures;
    t->cached += s->cached;
    t->items_failed += s->items_failed;
    t->tokens_in += s->tokens_in, t->tokens_out += s->tokens_out, t->usd += s->usd;
    t->cache_read += s->cache_read, t->cache_write += s->cache_write;
    t->usd_saved += s->usd_saved, t->no_usage += s->no_usage, t->raised += s->raised;
    t->over_hold += s->over_hold, t->bad_usage += s->bad_usage;
    t->repaired += s->repaired, t->invalid += s->invalid, t->refused += s->refused;
    t->cut_off += s->cut_off, t->unparsable += s->unparsable;
    t->transient += s->transient, t->rate_limited += s->rate_limited;
    t->http_calls += s->http_calls, t->http_cached += s->http_cached;
    t->http_retries += s->http_retries, t->http_failures += s->http_failures;
    t->http_unknown += s->http_unknown, t->http_dry += s->http_dry;
    t->http_pages += s->http_pages, t->http_ms += s->http_ms;
    t->long_waits += s->long_waits, t->capped_waits += s->capped_waits;
    t->failed_transient += s->failed_transient;
    if (s->longest_wait_ms > t->longest_wait_ms)
        t->longest_wait_ms = s->longest_wait_ms;
    t->tool_loops += s->tool_loops, t->tool_turns += s->tool_turns;
    t->tool_calls += s->tool_calls, t->tool_cached += s->tool_cached;
    t->tool_errors += s->tool_errors, t->tool_capped += s->tool_capped;
}

/* Attempts repaired or gone wrong: the second table's counts. */
static int64_t trouble(const fr_stats *s)
{
    return s->repaired + s->invalid + s->refused + s->cut_off + s->unparsable + s->transient;
}

/* The second table: per phase that had any, what the attempts' answers
 * needed (repair) or what went wrong with them; every attempt counts,
 * whether or not a retry followed.  Left out when nothing happened. */
static void trouble_row(const char *name, const fr_stats *s)
{
    fprintf(stderr, "  %-16s %8lld %8lld %8lld %8lld %10lld %9lld %6lld\n", name,
            (long long)s->repaired, (long long)s->invalid, (long long)s->refused,
            (long long)s->cut_off, (long long)s->unparsable, (long long)s->transient,
            (long long)s->rate_limited);
}

static void print_trouble(fr_run *run, const fr_stats *tot)
{
    const fr_program *p = run->prog;
    if (!trouble(tot))
        return;
    fprintf(stderr, "repairs and problems, per attempt:\n  %-16s %8s %8s %8s %8s %10s %9s %6s\n",
            "phase", "repaired", "invalid", "refused", "cut off", "unparsable", "transient",
            "429");
    if (trouble(&run->stats[0]))
        trouble_row("(no phase)", &run->stats[0]);
    for (int i = 0; i < p->nphases; i++)
        if (trouble(&run->stats[i + 1]))
            trouble_row(p->phases[i].name, &run->stats[i + 1]);
    trouble_row("total", tot);
}

static int64_t http_any(const fr_stats *s)
{
    return s->http_calls + s->http_cached + s->http_dry + s->http_failures;
}

static void http_row(const char *name, const fr_stats *s)
{
    fprintf(stderr, "  %-16s %7lld %7lld %7lld %7lld %7lld %7lld %7lld %8.2fs\n", name,
            (long long)s->http_calls, (long long)s->http_cached, (long long)s->http_retries,
            (long long)s->http_failures, (long long)s->http_pages, (long long)s->http_unknown,
            (long long)s->http_dry, (double)s->http_ms / 1000.0);
}

/* The http operations' table: per phase that made any call, requests made
 * (calls), answered from the journal, retried attempts, failed calls,
 * pages read, writes resent after a crash left their outcome unknown,
 * writes held back by --dry-run, and the calls' time added up. */
static void print_http(fr_run *run, const fr_stats *tot)
{
    const fr_program *p = run->prog;
    if (!http_any(tot))
        return;
    fprintf(stderr, "http operations:\n  %-16s %7s %7s %7s %7s %7s %7s %7s %9s\n", "phase",
            "calls", "cached", "retries", "failed", "pages", "unknown", "dry-run", "time");
    if (http_any(&run->stats[0]))
        http_row("(no phase)", &run->stats[0]);
    for (int i = 0; i < p->nphases; i++)
        if (http_any(&run->stats[i + 1]))
            http_row(p->phases[i].name, &run->stats[i + 1]);
    http_row("total", tot);
}

static void tools_row(const char *name, const fr_stats *s)
{
    fprintf(stderr, "  %-16s %7lld %7lld %7lld %7lld %7lld %7lld\n", name,
            (long long)s->tool_loops, (long long)s->tool_turns, (long long)s->tool_calls,
            (long long)s->tool_cached, (long long)s->tool_errors, (long long)s->tool_capped);
}

/* The tool loops' table: per phase that ran any, the agent calls that ran a
 * loop, the model turns they requested, the tool calls they made, those
 * whose results the journal replayed, those answered with an error, and the
 * loops that reached max_tool_calls.  (Each tool's own call is counted in
 * the tables above too.) */
static void print_tools(fr_run *run, const fr_stats *tot)
{
    const fr_program *p = run->prog;
    if (!tot->tool_loops)
        return;
    fprintf(stderr, "tool loops:\n  %-16s %7s %7s %7s %7s %7s %7s\n", "phase", "loops", "turns",
            "tools", "cached", "errors", "capped");
    if (run->stats[0].tool_loops)
        tools_row("(no phase)", &run->stats[0]);
    for (int i = 0; i < p->nphases; i++)
        if (run->stats[i + 1].tool_loops)
            tools_row(p->phases[i].name, &run->stats[i + 1]);
    tools_row("total", tot);
}

/* "3 items skipped after errors (on_error: skip): see wf.skipped.jsonl;
 * retry them with `wf --resume RUN --retry-skipped`" */
/* "3 items skipped after errors (on_error: skip): see wf.skipped.jsonl;
 * retry them with `wf --resume RUN --retry-skipped`"; a run that ends with
 * exit 5 (items skipped after transient errors) is unfinished, so a plain
 * --resume retries them. */
static void print_skipped(fr_run *run, int64_t n, int64_t transient, int st)
{
    char *path = fr_skipped_path(run->prog);
    fprintf(stderr, "%lld item%s skipped after errors (on_error: skip)", (long long)n,
            n == 1 ? "" : "s");
    if (run->nskipped > 0 && path)
        fprintf(stderr, ": see %s", path);
    const char *id = fr_journal_bound_id(run);
    if (id && st == 5)
        fprintf(stderr, "; retry %s with `%s --resume %s`", n == 1 ? "it" : "them",
                fr_self_name(run->prog), id);
    else if (id)
        fprintf(stderr, "; retry %s with `%s --resume %s --retry-skipped`", n == 1 ? "it"
                : "them", fr_self_name(run->prog), id);
    fprintf(stderr, "\n");
    if (st == 5)
        fprintf(stderr, "%lld call%s failed after transient errors (network, timeouts, 429, "
                "5xx): the run ends with exit status 5%s\n", (long long)transient,
                transient == 1 ? "" : "s", id ? "" : " (without a journal it cannot be resumed)");
    fr_free(path);
}

void fr_run_print_summary(fr_run *run)
{
    const fr_program *p = run->prog;
    int64_t now = fr_now_ms();
    fr_stats tot = { 0 };
    fprintf(stderr, "run summary:\n  %-16s %7s %7s %7s %7s %11s %11s %10s %10s %10s %9s\n",
            "phase", "calls", "cached", "retries", "failed", "tokens in", "tokens out",
            "from cache", "saved", "usd", "time");
    if (run->stats[0].calls || run->stats[0].cached || run->stats[0].items_failed)
        summary_row("(no phase)", &run->stats[0], -1, true);
    add_stats(&tot, &run->stats[0]);
    for (int i = 0; i < p->nphases; i++) {
        const fr_stats *s = &run->stats[i + 1];
        int64_t wall = s->ended ? s->wall_ms : s->start_ms ? now - s->start_ms : 0;
        summary_row(p->phases[i].name, s, wall, s->start_ms != 0);
        add_stats(&tot, s);
    }
    summary_row("total", &tot, now - run->start_ms, true);
    print_trouble(run, &tot);
    print_http(run, &tot);
    print_tools(run, &tot);
    if (tot.no_usage)
        fprintf(stderr, "%lld answer%s came without usage: charged what %s held\n",
                (long long)tot.no_usage, tot.no_usage == 1 ? "" : "s",
                tot.no_usage == 1 ? "its attempt" : "their attempts");
    if (tot.over_hold) {
        fprintf(stderr, "%lld answer%s reported more usage than %s held, charged as reported",
                (long long)tot.over_hold, tot.over_hold == 1 ? "" : "s",
                tot.over_hold == 1 ? "its attempt" : "their attempts");
        if (run->over_desc && !(run->stop.hit && strcmp(run->stop.what, "usage") == 0))
            fprintf(stderr, " (the first: %s)", run->over_desc);  /* else the stop said it */
        fprintf(stderr, "\n");
    }
    if (tot.bad_usage)
        fprintf(stderr, "%lld answer%s reported usage no request could cost: not used, "
                "charged what %s held, retried\n", (long long)tot.bad_usage,
                tot.bad_usage == 1 ? "" : "s", tot.bad_usage == 1 ? "its attempt" : "their attempts");
    if (tot.raised)
        fprintf(stderr, "%lld cut-off answer%s retried with the model's max_output_tokens "
                "(the hold grew with it)\n", (long long)tot.raised, tot.raised == 1 ? "" : "s");
    if (tot.long_waits) {
        fprintf(stderr, "%lld retr%s waited long (%d s or more, or a server's retry-after "
                "cut short), the longest %.1f s", (long long)tot.long_waits,
                tot.long_waits == 1 ? "y" : "ies", FR_LONG_WAIT_MS / 1000,
                (double)tot.longest_wait_ms / 1000);
        if (tot.capped_waits)
            fprintf(stderr, "; %lld retry-after%s over %d s cut to it (--max-retry-after)",
                    (long long)tot.capped_waits, tot.capped_waits == 1 ? "" : "s",
                    run->max_wait_ms / 1000);
        fprintf(stderr, "\n");
    }
    if (tot.items_failed)
        print_skipped(run, tot.items_failed, tot.failed_transient, run->status);
    for (int i = 0; i < run->nrejected; i++) {
        const fr_rejected *r = &run->rejected[i];
        fprintf(stderr, "%ld of %ld row%s of %s set aside (on_bad: skip): see %s\n", r->bad,
                r->rows, r->rows == 1 ? "" : "s", r->path, r->rejects);
    }
    if (run->escalated) {
        char *path = fr_review_path(p);
        fprintf(stderr, "%lld item%s escalated for review: see %s\n",
                (long long)run->escalated, run->escalated == 1 ? "" : "s", path ? path : "");
        fr_free(path);
    }
}

/* ---- the result ---------------------------------------------------------- */

static bool put_json_line(FILE *f, json_t *v, const fr_type *t)
{
    char *s = fr_to_json(v, t);
    if (!s)
        return false;
    fputs(s, f);
    fputc('\n', f);
    fr_free(s);
    return true;
}

/* The returned value on stdout: a list as JSON Lines, else one line. */
static int print_value(const fr_program *p, json_t *v)
{
    bool ok = true;
    if (!p->ret || !v)
        return 0;
    if (p->ret->kind == FR_LIST && json_is_array(v)) {
        for (size_t i = 0; ok && i < json_array_size(v); i++)
            ok = put_json_line(stdout, json_array_get(v, i), p->ret->elem);
    } else {
        ok = put_json_line(stdout, v, p->ret);
    }
    if (fflush(stdout) != 0 || !ok) {
        fprintf(stderr, "error: cannot write the result: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* Writes run->partial to <workflow>.partial.jsonl; returns the path (malloc'd). */
/* "<workflow>.partial.jsonl" (malloc'd). */
static char *partial_path(const fr_program *p)
{
    size_t n = strlen(p->name) + sizeof ".partial.jsonl";
    char *path = fr_malloc(n);
    if (path)
        snprintf(path, n, "%s.partial.jsonl", p->name);
    return fr_shard_on() ? fr_shard_part_of(path) : path;
}

/* Writes run->partial to <workflow>.partial.jsonl through a temporary file
 * renamed over it (a failed write leaves the last one whole); returns the
 * path (malloc'd). */
static char *write_partial(fr_run *run)
{
    char *path = partial_path(run->prog), *tmp = NULL;
    if (!path || asprintf(&tmp, "%s.tmp", path) < 0) {
        fr_free(path);
        return NULL;
    }
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;
    for (size_t i = 0; ok && i < json_array_size(run->partial); i++)
        ok = put_json_line(f, json_array_get(run->partial, i), NULL);
    if (f && fclose(f) != 0)
        ok = false;
    if (ok && rename(tmp, path) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "error: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        fr_free(path);
        path = NULL;
    }
    free(tmp);
    return path;
}

/* The run finished what a budget stop had interrupted: its partial file is
 * obsolete (the result holds those items), so it goes, said. */
static void remove_partial(fr_run *run)
{
    char *path = partial_path(run->prog);
    if (path && access(path, F_OK) == 0 && fr_journal_owns_partial(run) && unlink(path) == 0)
        fprintf(stderr, "%s removed: the run it was written for is finished\n", path);
    fr_free(path);
}

static const char *budget_owner(fr_run *run, char *buf, size_t cap)
{
    if (run->stop.phase < 0)
        return "the workflow's";
    snprintf(buf, cap, "phase '%s'", run->prog->phases[run->stop.phase].name);
    return buf;
}

/* "spent $2.9960 of $3.0000 (the next call needed up to $0.0062)" */
static void budget_amounts(const fr_stop *s)
{
    if (strcmp(s->what, "usd") == 0)
        fprintf(stderr, "spent $%.4f of $%.4f (the next call needed up to $%.4f)", s->spent,
                s->cap, s->need);
    else if (strcmp(s->what, "tokens") == 0)
        fprintf(stderr, "spent %.0f of %.0f tokens (the next call needed up to %.0f)",
                s->spent, s->cap, s->need);
    else
        fprintf(stderr, "%.1f s of %.1f s elapsed", s->spent / 1000, s->cap / 1000);
}

/* "phase 'x'", or where the root was when no phase was running. */
static void put_place(fr_run *run, int ph)
{
    const fr_program *p = run->prog;
    int last = -1;
    if (ph >= 0 && ph < p->nphases) {
        fprintf(stderr, "phase '%s'", p->phases[ph].name);
        return;
    }
    for (int i = 0; i < p->nphases; i++)
        if (run->stats[i + 1].ended)
            last = i;
    if (last >= 0)
        fprintf(stderr, "the workflow's body after phase '%s'", p->phases[last].name);
    else
        fprintf(stderr, "the workflow's body%s", p->nphases ? " before its first phase" : "");
}

/* interrupted: where the root was, and how far its fan-out got */
static void budget_interrupted(fr_run *run)
{
    fprintf(stderr, "interrupted: ");
    put_place(run, run->cur_phase);
    if (run->partial) {
        size_t fin = json_array_size(run->partial), done = run->partial_done;
        size_t total = run->partial_total;
        fprintf(stderr, ": %zu of its fan-out's %zu items finished", fin, total);
        if (done > fin)
            fprintf(stderr, ", %zu dropped without a value", done - fin);
        fprintf(stderr, ", %zu left undone", total - done);
    }
    fprintf(stderr, "\n");
}

/* finished: the phases that ended; not run: the ones that never began */
static void budget_phases(fr_run *run)
{
    const fr_program *p = run->prog;
    int nfin = 0, nnot = 0;
    for (int i = 0; i < p->nphases; i++)
        if (run->stats[i + 1].ended && i != run->cur_phase)
            fprintf(stderr, "%s '%s'", nfin++ ? "," : "finished: phase", p->phases[i].name);
    if (nfin)
        fprintf(stderr, "\n");
    for (int i = 0; i < p->nphases; i++)
        if (!run->stats[i + 1].start_ms && i != run->cur_phase)
            fprintf(stderr, "%s '%s'", nnot++ ? "," : "not run: phase", p->phases[i].name);
    if (nnot)
        fprintf(stderr, "\n");
}

/* budget stop: which budget and its cap; what it interrupted, how many items
 * of the interrupted fan-out finished and where they went; the phases that
 * finished and the ones that never ran */
static int budget_stopped(fr_run *run)
{
    char buf[160];
    if (run->stop.hit && strcmp(run->stop.what, "usage") == 0) {
        /* usage above a hold: the cap it threatens, and the call, said again */
        const fr_budget *b = run->stop.phase < 0 ? &run->budget
                             : &run->phase_budget[run->stop.phase];
        if (run->stop.phase < 0)
            fprintf(stderr, "error: stopped to keep the workflow's budget (spent ");
        else
            fprintf(stderr, "error: stopped to keep the budget of phase '%s' (spent ",
                    run->prog->phases[run->stop.phase].name);
        fprintf(stderr, b->usd >= 0 ? "$%.4f of $%.4f" : "%.0f of %.0f tokens", run->stop.spent,
                run->stop.cap);
        fprintf(stderr, " when it stopped): %s\n", run->over_desc ? run->over_desc
                : "a call reported more usage than it held");
    } else if (run->stop.hit) {
        fprintf(stderr, "error: stopped by %s %s budget: ", budget_owner(run, buf, sizeof buf),
                run->stop.what);
        budget_amounts(&run->stop);
        fprintf(stderr, "\n");
    } else {
        fprintf(stderr, "error: stopped by a budget\n");
    }
    budget_interrupted(run);
    if (run->partial) {
        char *path = write_partial(run);
        if (path)
            fprintf(stderr, "finished: %zu items of the interrupted fan-out, written to %s\n",
                    json_array_size(run->partial), path);
        fr_free(path);
    }
    budget_phases(run);
    return 4;
}

static void print_error(fr_ctx *cx)
{
    fprintf(stderr, "error: %s%s%s\n", cx->err_where ? cx->err_where : "",
            cx->err_where ? ": " : "", cx->err ? cx->err : "failed");
}

/* Ended by Ctrl-C or SIGTERM: where it was, what finished, what the
 * calls in flight became, how to resume; 130 or 143. */
static int interrupted(fr_run *run, fr_ctx *root)
{
    int sig = fr_interrupted(run);
    fprintf(stderr, "%sinterrupted by %s: ", run->progress ? "\r\033[K" : "",
            sig == SIGINT ? "SIGINT" : "SIGTERM");
    put_place(run, run->cur_phase);
    if (run->partial_total) {
        size_t total = run->partial_total, done = run->partial_done;
        fprintf(stderr, ": %zu of its fan-out's %zu items finished, %zu not started or stopped",
                done, total, total - done);
    }
    fprintf(stderr, "\n");
    if (root->sig != FR_SIG_STOP || fr_journal_broken(run)) /* it failed of itself meanwhile */
        print_error(root);
    int64_t n = __atomic_load_n(&run->intr_inflight, __ATOMIC_ACQUIRE);
    const char *id = fr_journal_bound_id(run);
    if (n)
        fprintf(stderr, "the %lld call%s in flight finished%s\n", (long long)n, n == 1 ? "" : "s",
                id ? " and journaled" : "");
    if (id && !fr_journal_broken(run))
        fprintf(stderr, "help: `%s --resume %s` finishes the run; what was answered is not paid"
                " for again\n", fr_self_name(run->prog), id);
    else if (!id)
        fprintf(stderr, "help: this run has no journal (--no-journal): it cannot be resumed\n");
    budget_phases(run);
    return 128 + sig;
}

/* Exit status from how the body ended. */
static int finish(fr_run *run, fr_ctx *root, json_t *v)
{
    switch (v ? FR_OK : root->sig) {
    case FR_OK:
        if (fr_journal_broken(run) && fr_journal_stopped(root)) {
            /* its results are whole, but not its journal (a phase's time...) */
            int st = fr_shard_on() ? fr_shard_result(run, v) : print_value(run->prog, v);
            print_error(root);
            fr_journal_stop_help(run);
            return st ? st : 1;
        }
        if (fr_shard_on() && run->prog->ret)
            return fr_shard_result(run, v);
        return print_value(run->prog, v);
    case FR_SIG_STOP:                      /* the journal cannot be written */
        print_error(root);
        fr_journal_stop_help(run);
        return 1;
    case FR_SIG_BUDGET:
        return budget_stopped(run);
    case FR_SIG_USAGE:
        print_error(root);
        return 2;
    case FR_SIG_WAIT:
        fprintf(stderr, "waiting for approval%s%s\n", root->err ? ": " : "",
                root->err ? root->err : "");
        return 3;
    case FR_SIG_SKIP:
    case FR_SIG_ESCALATE:
    case FR_SIG_BREAK:
        if (!root->err)
            fr_fail(root, NULL, "skip, escalate or break outside of an item");
        print_error(root);
        return 1;
    default:
        print_error(root);
        return 1;
    }
}

/* ---- the run ------------------------------------------------------------- */

static bool run_init(fr_run *run, const fr_program *p, const opts *o, fr_http *h)
{
    memset(run, 0, sizeof *run);
    run->prog = p;
    pthread_mutex_init(&run->mu, NULL);
    pthread_mutex_init(&run->review_mu, NULL);
    run->redact = fr_redact_new();
    run->mock_all = o->mock;
    run->mock = o->mock_opts;
    run->concurrency = o->concurrency;
    run->retry_base_ms = o->retry_base_ms;
    run->batch_timeout_ms = o->batch_timeout_ms;
    run->max_wait_ms = o->max_wait_s * 1000;
    run->quiet = o->quiet;
    run->dry_run = o->dry_run;
    run->http = h;
    run->cur_phase = -1;
    run->partial_phase = -1;
    if (!fr_review_reset(run))
        fprintf(stderr, "warning: cannot truncate the previous review file\n");
    return fr_budget_init(run);
}

/* The caps a run was given from outside the source: what the command line
 * set, and the phase caps clipped to the workflow's. */
static void print_caps(fr_run *run)
{
    static const char *const key[] = { "usd", "tokens", "time" };
    const fr_program *p = run->prog;
    char buf[64];
    for (int k = 0; k < 3; k++) {
        if (!(run->cli_caps & (1u << k)))
            continue;
        fprintf(stderr, "budget: the workflow's %s cap is %s (--budget-%s)\n", key[k],
                fr_cap_text(&run->budget, k, buf, sizeof buf), key[k]);
    }
    for (int i = 0; i < p->nphases; i++)
        for (int k = 0; k < 3; k++) {
            if (!(run->clipped[i] & (1u << k)))
                continue;
            char decl[64];
            fprintf(stderr, "budget: phase '%s' %s cap %s clipped to the workflow's %s\n",
                    p->phases[i].name, key[k],
                    fr_cap_text(&run->phase_declared[i], k, decl, sizeof decl),
                    fr_cap_text(&run->budget, k, buf, sizeof buf));
        }
}

static void run_free(fr_run *run)
{
    json_decref(run->partial);
    for (int i = 0; i < run->nrejected; i++)
        fr_free(run->rejected[i].path), fr_free(run->rejected[i].rejects);
    fr_free(run->rejected);
    fr_review_close(run);
    fr_origins_free(run);
    fr_shard_free();
    fr_budget_free(run);
    fr_batch_free(run);
    fr_http_free(run->http);
    fr_redact_free(run->redact);
    pthread_mutex_destroy(&run->mu);
    pthread_mutex_destroy(&run->review_mu);
}

/* A shard's summary for merge, with its arguments (what a resume compares). */
static void shard_end(fr_run *run, const opts *o, int st, const char *id)
{
    const fr_program *p = run->prog;
    if (!fr_shard_on())
        return;
    json_t *a = json_object();
    for (int k = 0; a && k < p->nparams; k++)
        if (!p->params[k].budget_only)
            json_object_set(a, p->params[k].name, o->args[k] ? o->args[k] : json_null());
    if (a && o->mock)
        json_object_set_new(a, "--mock", json_true());
    char *s = a ? json_dumps(a, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17)) : NULL;
    fr_shard_end(run, st, s, id);
    free(s);
    json_decref(a);
}

/* The workflow's body, as the root fiber runs it. */
typedef struct body {
    const fr_program *p;           /* the program */
    fr_ctx *root;                  /* the root context */
    json_t *const *args;           /* the parameters' values */
    json_t *value;                 /* what it returned (borrowed from root's pool) */
} body;

static void body_main(void *arg)
{
    body *b = arg;
    b->value = b->p->main(b->root, b->args);
}

/* Runs the body in a root context; returns the exit status. */
static int run_body(fr_run *run, opts *o)
{
    const fr_program *p = run->prog;
    fr_ctx root = { .run = run, .phase = -1 };
    fr_shard_begin(run);
    /* [journal hook] open the journal (--journal, default .flow/<workflow>.db),
     * begin the run or resume one (--resume), count its prior spend, and at the
     * end record its status ("done", "failed", "waiting", "budget"). */
    int jst = fr_journal_run_start(run, &o->jo, o->args);
    if (jst >= 0) {
        fr_journal_run_end(run, jst);
        return jst;
    }
    fr_budget_shared_start(run);              /* its spent so far, none held */
    if (!fr_intr_start(run, o->grace_s))            /* Ctrl-C, SIGTERM: fr_intr.c */
        fprintf(stderr, "warning: cannot start the signal thread: Ctrl-C ends the run at once\n");
    ticker tk;
    ticker_start(&tk, run);
    body b = { p, &root, o->args, NULL };
    if (!fr_sched_call(body_main, &b))              /* the body runs in a fiber */
        fr_fail(&root, NULL, "cannot start the runtime's threads");
    json_t *v = b.value;
    fr_intr_done(run);                              /* no stop at once from now on */
    ticker_stop(&tk);
    fr_journal_flush_run(run);                      /* answers durable before any output */
    int st = !v && fr_interrupted(run) ? interrupted(run, &root) : finish(run, &root, v);
    if (st == 0 && run->failed_transient > 0)
        st = 5;                    /* done, but items were skipped after transient errors */
    run->status = st;
    char *dry = fr_op_dry_close(run);
    if (dry)
        fprintf(stderr, "dry run: %lld write%s not sent%s%s\n", (long long)run->dry_writes,
                run->dry_writes == 1 ? "" : "s", run->dry_writes ? ", written to " : "",
                run->dry_writes ? dry : "");
    fr_free(dry);
    if (!run->quiet)
        fr_run_print_summary(run), print_caps(run), fr_journal_summary(run);
    fr_fixtures_report(run->mock.fixtures);         /* also when --quiet: a test reads it */
    if (st == 0 || st == 5)
        remove_partial(run);
    char id[FR_RUN_ID_MAX] = "";
    if (fr_journal_bound_id(run))
        snprintf(id, sizeof id, "%s", fr_journal_bound_id(run));
    fr_journal_run_end(run, st);
    shard_end(run, o, st, id[0] ? id : NULL);
    fr_pool_free(&root);
    fr_sig_clear(&root);
    return st;
}

static void opts_free(const fr_program *p, opts *o)
{
    fr_fixtures_free(o->mock_opts.fixtures);
    for (int k = 0; o->args && k < p->nparams; k++)
        json_decref(o->args[k]);
    fr_free(o->args);
}

/* FLOWRT_REDIS_URL: the limits (and a sharded run's budgets) shared by
 * every process.  The budgets' keys are the run's group: FLOWRT_RUN_GROUP,
 * else the scheduler's job (SLURM_ARRAY_JOB_ID, AWS Batch's parent job
 * id), else the workflow, its build, arguments and shard count. */
static void shared_setup(const fr_program *p, const opts *o)
{
    if (!getenv("FLOWRT_REDIS_URL"))
        return;
    char group[160], hex[65];
    const char *g = getenv("FLOWRT_RUN_GROUP"), *aws = getenv("AWS_BATCH_JOB_ID");
    if (g && *g)
        snprintf(group, sizeof group, "%s", g);
    else if ((g = getenv("SLURM_ARRAY_JOB_ID")) && *g)
        snprintf(group, sizeof group, "slurm-%s", g);
    else if (aws && *aws && fr_shard_on())
        snprintf(group, sizeof group, "aws-%.*s", (int)strcspn(aws, ":"), aws);
    else {
        fr_sha256 h;
        fr_sha256_init(&h);
        fr_sha256_update(&h, p->source_hash ? p->source_hash : "", p->source_hash ?
                         strlen(p->source_hash) : 0);
        for (int k = 0; k < p->nparams; k++) {
            char *s = o->args[k] && !p->params[k].budget_only ?
                      json_dumps(o->args[k], JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
            if (s)
                fr_sha256_update(&h, s, strlen(s) + 1);
            free(s);
        }
        fr_sha256_final_hex(&h, hex);
        snprintf(group, sizeof group, "%s-%.16s-%d", p->name, hex, fr_shard_count());
    }
    if (fr_redis_setup(group))
        fr_shard_set_shared(true);
}

/* --version: which workflow this is, which flowc made it from which
 * source, and the runtime it runs on. */
static void print_version(const fr_program *p)
{
    printf("%s: built by flowc %s from %s (source hash %s); runtime libflowrt %s (ABI %d)\n",
           p->name, p->flowc_version ? p->flowc_version : "(unknown)",
           p->source_file ? p->source_file : "(unknown)",
           p->source_hash ? p->source_hash : "(none)", FLOWRT_VERSION, FLOWRT_ABI);
}

int fr_main_abi(int abi, const fr_program *prog, int argc, char **argv)
{
    if (abi != FLOWRT_ABI) {
        fprintf(stderr, "error: %s was compiled for libflowrt ABI %d but is linked with ABI %d;"
                " rebuild it with the flowc of this runtime\n", prog->name, abi, FLOWRT_ABI);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "merge") == 0)
        return fr_shard_merge(prog, argc, argv);
    int sub = fr_journal_command(prog, argc, argv);    /* runs, review, approve */
    if (sub >= 0)
        return sub;
    opts o = { .retry_base_ms = DEFAULT_RETRY_BASE_MS, .max_wait_s = FR_MAX_WAIT_MS / 1000,
               .budget = FR_NO_BUDGET, .grace_s = -1 };
    o.args = fr_calloc((size_t)prog->nparams + 1, sizeof *o.args);
    int st = o.args ? parse_args(prog, argc, argv, &o) : 2;
    if (st < 0 && o.help)
        print_help(prog, argc > 0 ? argv[0] : prog->name), st = 0;
    else if (st < 0 && o.version)
        print_version(prog), st = 0;
    if (st < 0)
        st = fr_shard_setup(prog, o.shard, o.shards);
    if (st < 0)
        shared_setup(prog, &o);
    if (st >= 0) {
        opts_free(prog, &o);
        return st;
    }
    fr_intr_block();                       /* before any thread: fr_intr.c takes them */
    fr_buf err = { 0 };
    fr_http *h = fr_http_new(prog, o.mock, &err);
    if (!h) {                              /* one "error:" line per problem (missing keys) */
        const char *m = err.s ? err.s : "cannot set up the providers";
        for (const char *nl; (nl = strchr(m, '\n')) != NULL; m = nl + 1)
            fprintf(stderr, "error: %.*s\n", (int)(nl - m), m);
        fprintf(stderr, "error: %s\n", m);
        fr_buf_free(&err), opts_free(prog, &o);
        return 2;
    }
    fr_buf_free(&err);
    fr_http_set_max_wait(h, o.max_wait_s * 1000);
    fr_run run;
    if (!run_init(&run, prog, &o, h)) {
        fprintf(stderr, "error: out of memory\n");
        st = 1;
    } else if ((st = fr_budget_setup(&run, &o.budget, o.args)) == 0) {
        st = run_body(&run, &o);
    }
    fr_intr_stop();
    run_free(&run);
    opts_free(prog, &o);
    return st;
}

/* ---- phases ------------------------------------------------------------- */

/* phase_begin: a phase starts its clock, its trace span and its budget; it
 * cannot start once the workflow's budget is spent. */
bool fr_phase_begin(fr_ctx *cx, int phase)
{
    fr_run *run = cx->run;
    cx->phase = phase;
    if (!cx->parent)
        run->cur_phase = phase;
    fr_journal_phase_begin(cx, phase);
    double usd;
    int64_t tokens, active_ms;
    fr_journal_phase_prior(run, phase, &usd, &tokens, &active_ms);
    return fr_budget_phase_open(cx, phase, usd, tokens, active_ms);
}

/* phase_end: the phase's clock stops, and what follows it outside any phase
 * is no longer charged to it (its budget, its summary row, a budget stop's
 * "interrupted" line). */
void fr_phase_end(fr_ctx *cx, int phase)
{
    fr_run *run = cx->run;
    pthread_mutex_lock(&run->mu);
    fr_stats *st = fr_stats_of(run, phase);
    st->wall_ms = fr_now_ms() - st->start_ms;
    st->ended = true;
    if (!cx->parent && run->cur_phase == phase)
        run->cur_phase = -1;
    pthread_mutex_unlock(&run->mu);
    fr_journal_phase_end(cx, phase);
    if (cx->phase == phase)
        cx->phase = -1;
}
