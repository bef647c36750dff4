/*
 * fr_report.c: `BINARY report RUN|last [-o FILE] [--estimate FILE]`, one
 * self-contained HTML page about one run, read from the journal alone.
 *
 * The page needs nothing else: its CSS is inline, its charts are SVG drawn
 * here, it has no script, font, image or link (a Content-Security-Policy
 * meta forbids them, so a browser fetches nothing).  Every text from the
 * journal (errors, escalation reasons, titles, names) is HTML-escaped; the
 * texts were redacted of @sensitive values when they were journaled
 * (fr_jrun.c, fr_redact.c), and the page shows no answer (the journal keeps
 * those with their sensitive values hashed), so it holds no value a trace
 * would not.
 *
 * What the journal keeps is enough: the run's row (workflow, source hash,
 * arguments, times, status), each call's row (agent, item, phase, status,
 * tokens by class, dollars, attempts, latency, when it finished) and its
 * detail (model, and each attempt's outcome, HTTP status, error and time),
 * the phases' active time, and the approvals and escalations with who
 * decided them and when.  The trace file is not read: it adds the HTTP
 * spans and the tool turns' own lines, which the report does not draw.
 *
 * A page stays small whatever the run's size: the timeline and histograms
 * are binned (a fixed number of bins), lanes are drawn for the LANES_MAX
 * busiest agents, per agent only the first PROBLEMS_MAX failed calls and
 * EXAMPLES_MAX attempts of each outcome (refused, invalid, transient...) are
 * listed with a count of the rest (for PROBLEM_AGENTS_MAX agents), and
 * at most ITEMS_MAX approval items.  The calls are read once; what a chart
 * needs is kept in one array of small records.
 */
#include "fr_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PROBLEMS_MAX 5             /* failed calls listed per agent */
#define EXAMPLES_MAX 3             /* attempts listed per agent and outcome */
#define ITEMS_MAX 200              /* approval and escalation items listed */
#define MESSAGE_MAX 600            /* bytes of a message shown */
#define BINS 200                   /* the concurrency chart's bins */
#define LANE_BINS 150              /* an agent lane's bins */
#define LEVELS 8                   /* shades of an agent lane */
#define MODELS_MAX 4               /* models named per agent */
#define LANES_MAX 24               /* agents drawn as lanes: the busiest */
#define PROBLEM_AGENTS_MAX 40      /* agents whose problems are listed */
#define NAME_MAX_SHOWN 28          /* bytes of a name in a chart's label */
#define CUTS_MAX 8                 /* idle stretches cut out of the timeline */
#define CUT_MIN_MS 60000           /* a stretch is cut when this long and a tenth of the run */

/* ---- what the report reads -------------------------------------------------- */

typedef struct rcall {             /* one call, for the timeline and histograms */
    int64_t start, end;            /* wall clock, ms (end > start) */
    int64_t tin, tout;             /* tokens */
    int agent;                     /* index in report.agents */
} rcall;

/* Outcomes of attempts that did not answer, as fr_jrun.c and fr_call.c name them. */
enum { O_INVALID, O_REFUSED, O_CUT_OFF, O_TRANSIENT, O_FATAL, O_OTHER, N_OUTCOMES };
static const char *const outcome_names[N_OUTCOMES] = {
    "invalid", "refused", "cut_off", "transient", "fatal", "other"
};

typedef struct ragent {
    char *name;                    /* agent or http operation (malloc'd) */
    fr_buf models;                 /* the models its calls used, ", " between (a call's
                                      `using` may pick another), MODELS_MAX at most */
    int nmodels;
    bool http;                     /* an http operation */
    int64_t calls, ok, failed, held; /* calls, by status (held: in flight when it stopped) */
    int64_t retries, turns;        /* attempts after a call's first; tool-loop turns (not calls) */
    int64_t outcomes[N_OUTCOMES];  /* attempts that did not answer, by outcome */
    int64_t tin, tout, cache_read, cache_write;
    double usd, saved;             /* dollars paid (holds and losses counted), cache savings */
    double batch_usd;              /* of usd, paid at the batch price */
    fr_buf failures;               /* the first PROBLEMS_MAX failed calls, as HTML */
    int64_t nfailures;
    fr_buf problems;               /* the first EXAMPLES_MAX attempts of each outcome, as HTML */
    int64_t nproblems, listed;     /* attempts that did not answer, and those listed */
    int64_t p50, p95, pmax;        /* latency percentiles, ms */
} ragent;

typedef struct rphase {
    int64_t calls;
    int64_t tin, tout;
    double usd;
    int64_t active_ms;             /* time processes spent in it (phase_time) */
    int64_t first, last;           /* its calls' first start and last end (0: none) */
} rphase;

typedef struct report {
    const fr_program *prog;
    const char *self;              /* the binary's name as run */
    char id[FR_RUN_ID_MAX];
    char *source_hash, *args, *status;
    int64_t started, ended, active_ms, resumes, skipped, pruned;
    bool live;                     /* a process runs it now */
    ragent *agents;
    int nagents;
    rphase *phases;                /* [0] before the first phase, [1 + i] phase i */
    int nphases;                   /* 1 + the program's phases */
    rcall *calls;
    size_t ncalls, capcalls;
    int64_t total_calls, total_failed, total_retries, total_tin, total_tout;
    int64_t total_cache_read, total_cache_write;
    double total_usd, total_saved, total_batch;
    int64_t t0, t1;                /* the timeline's span, ms */
    json_t *estimate;              /* --estimate FILE, or NULL */
    const char *estimate_path;
} report;

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

static char *dup_col(sqlite3_stmt *st, int i)
{
    return fr_strdup(col_text(st, i));
}

/* ---- HTML output --------------------------------------------------------- */

/* Text as HTML text or attribute value: nothing in it can open a tag, end
 * an attribute or a <style>; control characters but tab and newline go. */
static void esc(FILE *o, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", o); break;
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&#39;", o); break;
        default:
            if (c >= 0x20 || c == '\n' || c == '\t')
                fputc(c, o);
        }
    }
}

/* The same into a buffer, cut at max bytes on a character boundary. */
static void esc_buf(fr_buf *b, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    bool cut = n > max;
    if (cut)
        while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
            max--;
    for (size_t i = 0; i < (cut ? max : n); i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '&': fr_buf_puts(b, "&amp;"); break;
        case '<': fr_buf_puts(b, "&lt;"); break;
        case '>': fr_buf_puts(b, "&gt;"); break;
        case '"': fr_buf_puts(b, "&quot;"); break;
        case '\'': fr_buf_puts(b, "&#39;"); break;
        default:
            if (c >= 0x20 || c == '\n' || c == '\t')
                fr_buf_printf(b, "%c", c);
        }
    }
    if (cut)
        fr_buf_printf(b, "&hellip; (%zu bytes more)", n - max);
}

/* A name in a chart's label: one longer than NAME_MAX_SHOWN bytes keeps
 * its start and its end (where names differ: score_v1, score_v2), cut on
 * characters, with its whole self as a tooltip. */
static void esc_short(FILE *o, const char *s)
{
    size_t n = strlen(s), head = NAME_MAX_SHOWN / 2 - 1, tail = NAME_MAX_SHOWN / 2 - 1;
    if (n <= NAME_MAX_SHOWN) {
        esc(o, s);
        return;
    }
    while (head > 0 && ((unsigned char)s[head] & 0xC0) == 0x80)
        head--;
    while (tail > 0 && ((unsigned char)s[n - tail] & 0xC0) == 0x80)
        tail--;
    fputs("<title>", o);
    esc(o, s);
    fputs("</title>", o);
    char *h = fr_strdup(s);
    if (h)
        h[head] = 0;
    esc(o, h ? h : "");
    fputs("&hellip;", o);
    esc(o, s + n - tail);
    fr_free(h);
}

/* 1234567 -> "1,234,567". */
static const char *num(char *s, int64_t v)
{
    char t[32];
    int n = snprintf(t, sizeof t, "%lld", (long long)(v < 0 ? -v : v)), k = 0;
    if (v < 0)
        s[k++] = '-';
    for (int i = 0; i < n; i++) {
        s[k++] = t[i];
        if ((n - i - 1) % 3 == 0 && i < n - 1)
            s[k++] = ',';
    }
    s[k] = 0;
    return s;
}

static const char *usd(char *s, double v)
{
    snprintf(s, 32, v != 0 && fabs(v) < 0.01 ? "$%.6f" : "$%.4f", v);
    return s;
}

/* A duration: "35 ms", "4.2 s", "3 min 12 s", "2 h 05 min". */
static const char *dur(char *s, int64_t ms)
{
    if (ms < 1000)
        snprintf(s, 32, "%lld ms", (long long)ms);
    else if (ms < 60000)
        snprintf(s, 32, "%.1f s", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(s, 32, "%lld min %02lld s", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
    else
        snprintf(s, 32, "%lld h %02lld min", (long long)(ms / 3600000),
                 (long long)(ms / 60000 % 60));
    return s;
}

/* A time of day in UTC, as "2026-12-07 22:55:26 UTC", or without the
 * " UTC" in a table whose header says it (short). */
static const char *utc_time(char *s, int64_t ms, bool short_form)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(s, 32, short_form ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M:%S UTC", &tm);
    return s;
}

static const char *when(char *s, int64_t ms)
{
    return utc_time(s, ms, false);
}

/* ---- reading the journal --------------------------------------------------- */

static bool find_run(report *r, sqlite3 *db, const char *run)
{
    sqlite3_stmt *st;
    bool last = strcmp(run, "last") == 0;
    const char *sql = last
        ? "SELECT id, source_hash, args, status, started_ms, ended_ms, active_ms, resumes,"
          " skipped, pruned_ms FROM runs WHERE workflow = ?1"
          " ORDER BY started_ms DESC, rowid DESC LIMIT 1"
        : "SELECT id, source_hash, args, status, started_ms, ended_ms, active_ms, resumes,"
          " skipped, pruned_ms FROM runs WHERE workflow = ?1 AND id = ?2";
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, r->prog->name, -1, SQLITE_STATIC);
    if (!last)
        sqlite3_bind_text(st, 2, run, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    if (found) {
        snprintf(r->id, sizeof r->id, "%s", col_text(st, 0));
        r->source_hash = dup_col(st, 1);
        r->args = dup_col(st, 2);
        r->status = dup_col(st, 3);
        r->started = sqlite3_column_int64(st, 4);
        r->ended = sqlite3_column_int64(st, 5);
        r->active_ms = sqlite3_column_int64(st, 6);
        r->resumes = sqlite3_column_int64(st, 7);
        r->skipped = sqlite3_column_int64(st, 8);
        r->pruned = sqlite3_column_int64(st, 9);
    }
    sqlite3_finalize(st);
    return found;
}

static int agent_index(report *r, const char *name)
{
    for (int i = 0; i < r->nagents; i++)
        if (strcmp(r->agents[i].name, name) == 0)
            return i;
    ragent *a = fr_realloc(r->agents, (size_t)(r->nagents + 1) * sizeof *a);
    if (!a)
        return -1;
    r->agents = a;
    a = &r->agents[r->nagents];
    memset(a, 0, sizeof *a);
    a->name = fr_strdup(name);
    for (int i = 0; i < r->prog->nops; i++)
        if (strcmp(r->prog->ops[i]->name, name) == 0)
            a->http = true;
    return a->name ? r->nagents++ : -1;
}

static int outcome_index(const char *o)
{
    for (int i = 0; i < O_OTHER; i++)
        if (strcmp(o, outcome_names[i]) == 0)
            return i;
    return O_OTHER;
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* The attempts of one call that did not answer: counted, the first listed. */
static void note_attempts(ragent *a, const char *item, json_t *d)
{
    size_t i;
    json_t *at;
    json_array_foreach(json_object_get(d, "attempts"), i, at) {
        const char *o = jstr(at, "outcome");
        if (!o || strcmp(o, "answer") == 0 || strcmp(o, "tool_calls") == 0)
            continue;
        a->nproblems++;
        if (a->outcomes[outcome_index(o)]++ >= EXAMPLES_MAX)
            continue;
        a->listed++;
        fr_buf *b = &a->problems;
        fr_buf_puts(b, "<tr><td>");
        esc_buf(b, *item ? item : "-", 64);
        fr_buf_printf(b, "</td><td class=n>%lld</td><td><span class=\"tag %s\">",
                      (long long)json_integer_value(json_object_get(at, "n")),
                      outcome_index(o) == O_OTHER ? "other" : outcome_names[outcome_index(o)]);
        esc_buf(b, o, 32);
        fr_buf_puts(b, "</span>");
        if (json_object_get(at, "status"))
            fr_buf_printf(b, " HTTP %lld", (long long)json_integer_value(json_object_get(at, "status")));
        fr_buf_puts(b, "</td><td class=msg>");
        esc_buf(b, jstr(at, "error") ? jstr(at, "error") : "", MESSAGE_MAX);
        fr_buf_puts(b, "</td></tr>\n");
    }
}

/* A failed call: counted, the first listed with its error. */
static void note_failure(ragent *a, const char *item, int64_t attempts, json_t *d)
{
    if (a->nfailures++ >= PROBLEMS_MAX)
        return;
    const char *msg = jstr(d, "error");
    json_t *list = json_object_get(d, "attempts");
    json_t *lastat = json_array_get(list, json_array_size(list) - 1);
    if (!msg)
        msg = jstr(lastat, "error");
    fr_buf *b = &a->failures;
    fr_buf_puts(b, "<tr><td>");
    esc_buf(b, *item ? item : "-", 64);
    fr_buf_printf(b, "</td><td class=n>%lld</td><td class=msg>", (long long)attempts);
    esc_buf(b, msg ? msg : d ? "(no message journaled)" : "(no detail journaled: pruned,"
            " or a journal of an older flowc)", MESSAGE_MAX);
    fr_buf_puts(b, "</td></tr>\n");
}

static bool push_call(report *r, rcall c)
{
    if (r->ncalls == r->capcalls) {
        size_t cap = r->capcalls ? r->capcalls * 2 : 1024;
        rcall *v = fr_realloc(r->calls, cap * sizeof *v);
        if (!v)
            return false;
        r->calls = v, r->capcalls = cap;
    }
    r->calls[r->ncalls++] = c;
    return true;
}

/* The model a call's detail names, added to its agent's when new: the
 * detail starts {"model":"NAME", (fr_jrun.c writes it first). */
static void note_model(ragent *a, const char *dt)
{
    static const char head[] = "{\"model\":\"";
    if (!dt || strncmp(dt, head, sizeof head - 1) != 0 || a->nmodels > MODELS_MAX)
        return;
    const char *name = dt + sizeof head - 1, *end = strchr(name, '"');
    size_t n = end ? (size_t)(end - name) : 0;
    for (const char *p = a->models.s; p && n; p = strstr(p, ", ") ? strstr(p, ", ") + 2 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || !p[n]))
            return;
    if (!n || memchr(name, '\\', n))
        return;                                  /* an escaped name: left out */
    if (a->nmodels++ == MODELS_MAX) {
        fr_buf_puts(&a->models, ", ...");
        return;
    }
    fr_buf_printf(&a->models, "%s%.*s", a->models.s ? ", " : "", (int)n, name);
}

/* One row of calls into the agent's, the phase's and the run's sums. */
static bool read_call(report *r, sqlite3_stmt *st)
{
    int ai = agent_index(r, col_text(st, 0));
    if (ai < 0)
        return false;
    ragent *a = &r->agents[ai];
    const char *item = col_text(st, 1), *status = col_text(st, 3);
    int ph = sqlite3_column_int(st, 2);
    rphase *p = &r->phases[ph >= 0 && ph + 1 < r->nphases ? ph + 1 : 0];
    bool turn = sqlite3_column_int(st, 14) != 0;   /* a tool loop's turn: not a call */
    int64_t tin = sqlite3_column_int64(st, 5), tout = sqlite3_column_int64(st, 6);
    double paid = sqlite3_column_double(st, 7);
    a->usd += paid, p->usd += paid, r->total_usd += paid;
    a->tin += tin, a->tout += tout, p->tin += tin, p->tout += tout;
    r->total_tin += tin, r->total_tout += tout;
    a->cache_read += sqlite3_column_int64(st, 10), a->cache_write += sqlite3_column_int64(st, 11);
    r->total_cache_read += sqlite3_column_int64(st, 10);
    r->total_cache_write += sqlite3_column_int64(st, 11);
    a->saved += sqlite3_column_double(st, 12), r->total_saved += sqlite3_column_double(st, 12);
    if (sqlite3_column_int(st, 15))
        a->batch_usd += paid, r->total_batch += paid;
    if (turn) {
        a->turns++;
        return true;
    }
    int64_t attempts = sqlite3_column_int64(st, 4);
    a->calls++, p->calls++, r->total_calls++;
    if (attempts > 1)                            /* an http operation answered by --mock: 0 */
        a->retries += attempts - 1, r->total_retries += attempts - 1;
    bool ok = strcmp(status, "ok") == 0, held = strcmp(status, "held") == 0;
    ok ? a->ok++ : held ? a->held++ : (a->failed++, r->total_failed++);
    const char *dt = (const char *)sqlite3_column_text(st, 13);
    /* the detail is parsed only where it says more than the row: the model
     * is found without parsing it */
    json_t *d = NULL;
    if (dt && (attempts > 1 || (!ok && !held)))
        d = fr_json_loadb(dt, strlen(dt), 0, NULL);
    note_model(a, dt);
    if (!ok && !held)
        note_failure(a, item, attempts, d);
    note_attempts(a, item, d);
    json_decref(d);
    if (sqlite3_column_type(st, 9) == SQLITE_NULL)
        return true;                             /* never finished: not on the timeline */
    int64_t end = sqlite3_column_int64(st, 9), lat = sqlite3_column_int64(st, 8);
    rcall c = { end - (lat > 0 ? lat : 0), end, tin, tout, ai };
    if (c.end <= c.start)
        c.end = c.start + 1;                     /* a call of 0 ms still overlaps itself */
    if (!p->first || c.start < p->first)
        p->first = c.start;
    if (c.end > p->last)
        p->last = c.end;
    return push_call(r, c);
}

static bool read_calls(report *r, sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    char sql[512];
    for (int old = 0; old < 2 && !st; old++) {  /* a journal of an older flowc has no detail */
        snprintf(sql, sizeof sql, "SELECT agent, item, phase, status, attempts, tokens_in,"
                 " tokens_out, usd + held_usd + lost_usd, latency_ms, finished_ms, cache_read,"
                 " cache_write, saved_usd, %s, instr(key, '#') > 0, tier = 'batch' FROM calls_all"
                 " WHERE run_id = ?1 ORDER BY id", old ? "NULL" : "detail");
        if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
            st = NULL;
    }
    if (!st)
        return false;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        if (!read_call(r, st)) {
            sqlite3_finalize(st);
            return false;
        }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE;
}

static bool read_phase_time(report *r, sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT phase, active_ms FROM phase_time WHERE run_id = ?1",
                           -1, &st, NULL) != SQLITE_OK)
        return true;                             /* a journal of an older flowc: no times */
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        int ph = sqlite3_column_int(st, 0);
        if (ph >= 0 && ph + 1 < r->nphases)
            r->phases[ph + 1].active_ms = sqlite3_column_int64(st, 1);
    }
    sqlite3_finalize(st);
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Each agent's latency percentiles, and the timeline's span. */
static bool summarize(report *r)
{
    int64_t *lat = fr_malloc((r->ncalls + 1) * sizeof *lat);
    if (!lat)
        return false;
    for (int k = 0; k < r->nagents; k++) {
        size_t n = 0;
        for (size_t i = 0; i < r->ncalls; i++)
            if (r->calls[i].agent == k)
                lat[n++] = r->calls[i].end - r->calls[i].start;
        if (!n)
            continue;
        qsort(lat, n, sizeof *lat, cmp_i64);
        r->agents[k].p50 = lat[(n - 1) / 2];
        r->agents[k].p95 = lat[(size_t)((double)(n - 1) * 0.95)];
        r->agents[k].pmax = lat[n - 1];
    }
    fr_free(lat);
    r->t0 = r->started, r->t1 = r->ended > r->started ? r->ended : r->started;
    for (size_t i = 0; i < r->ncalls; i++) {
        if (r->calls[i].start < r->t0)
            r->t0 = r->calls[i].start;
        if (r->calls[i].end > r->t1)
            r->t1 = r->calls[i].end;
    }
    if (r->t1 <= r->t0)
        r->t1 = r->t0 + 1;
    return true;
}

/* ---- the page's parts --------------------------------------------------------- */

static const char css[] =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "margin:0;background:#f5f6f8;color:#1d2330}"
    "main{max-width:1120px;margin:0 auto;padding:24px 28px 60px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:30px 0 10px;"
    "border-bottom:1px solid #d8dce3;padding-bottom:4px}h3{font-size:14px;margin:16px 0 6px}"
    "section{background:#fff;border:1px solid #e0e3e8;border-radius:6px;padding:4px 18px 14px;"
    "margin-top:18px}"
    ".sub{color:#5b6372}.mono,code{font-family:'DejaVu Sans Mono',monospace;font-size:12.5px}"
    ".cards{display:flex;flex-wrap:wrap;gap:10px;margin:14px 0 4px}"
    ".card{background:#fff;border:1px solid #e0e3e8;border-radius:6px;padding:8px 14px;"
    "min-width:120px}.card b{display:block;font-size:19px}.card span{color:#5b6372;font-size:12px}"
    "table{border-collapse:collapse;width:100%;margin:6px 0}"
    "th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eceef2;vertical-align:top}"
    "th{font-size:12px;color:#5b6372;font-weight:600;background:#fafbfc}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}"
    "td.msg{font-family:'DejaVu Sans Mono',monospace;font-size:12px;white-space:pre-wrap;"
    "word-break:break-word;max-width:640px}"
    "tr.total td{font-weight:600;border-top:2px solid #d8dce3}td.nw{white-space:nowrap}"
    ".status{display:inline-block;padding:1px 9px;border-radius:10px;font-weight:600;"
    "font-size:13px;color:#fff;background:#6b7280}"
    ".status.done{background:#1f9d55}.status.failed,.status.stopped{background:#d64545}"
    ".status.waiting,.status.budget,.status.skipped{background:#c77c02}"
    ".status.running{background:#2f6fde}"
    ".tag{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;background:#eef0f4}"
    ".tag.refused{background:#fde2e2}.tag.invalid{background:#fff1d6}"
    ".tag.transient{background:#e3ecfd}.tag.fatal{background:#f7d4d4}.tag.cut_off{background:#efe3fb}"
    ".tag.approved,.tag.handled{background:#dcf3e5}.tag.rejected{background:#fde2e2}"
    ".tag.open{background:#fff1d6}"
    ".note{background:#fff8e6;border:1px solid #f1dfae;border-radius:5px;padding:6px 10px;"
    "margin:10px 0}"
    ".resume{background:#1d2330;color:#e8ebf0;border-radius:5px;padding:6px 10px;"
    "display:inline-block;margin-top:6px}"
    "svg{display:block;max-width:100%;height:auto}svg text{font:11px system-ui,sans-serif;"
    "fill:#4a5262}svg .axis{stroke:#c4c9d2;stroke-width:1}svg .grid{stroke:#eceef2}"
    ".hists{display:flex;flex-wrap:wrap;gap:16px}.hists figure{margin:0;flex:1 1 320px}"
    "figcaption{font-size:12px;color:#5b6372;margin:2px 0 6px}"
    ".legend span{display:inline-block;margin-right:14px;font-size:12px;color:#4a5262}"
    ".legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;"
    "vertical-align:-1px}"
    "footer{color:#8a91a0;font-size:12px;margin-top:30px}";

static const char *const palette[] = {
    "#2f6fde", "#e0703a", "#1f9d55", "#a855f7", "#d64545", "#0e9aa7", "#c77c02", "#db2777",
    "#4b5563", "#65a30d"
};
#define NPALETTE (sizeof palette / sizeof *palette)

static const char *phase_name(const report *r, int k)
{
    return k == 0 ? "(before any phase)" : r->prog->phases[k - 1].name;
}

static void put_header(FILE *o, report *r)
{
    char a[32], b[32], c[32], d[32];
    const char *status = r->status;
    if (strcmp(status, "running") == 0 && !r->live)
        status = "stopped";                    /* its process died */
    fputs("<header><h1>", o);
    esc(o, r->prog->name);
    fputs(" <span class=sub>run</span> <span class=mono>", o);
    esc(o, r->id);
    fprintf(o, "</span> <span class=\"status %s\">", status);
    esc(o, status);
    fputs("</span></h1>\n<div class=sub>", o);
    if (r->prog->doc)
        esc(o, r->prog->doc), fputs("<br>", o);
    fprintf(o, "started %s", when(a, r->started));
    if (r->ended)
        fprintf(o, " &middot; ended %s", when(b, r->ended));
    fprintf(o, " &middot; wall %s &middot; active %s", dur(c, r->t1 - r->t0),
            dur(d, r->active_ms));
    if (r->resumes)
        fprintf(o, " &middot; resumed %lld time%s", (long long)r->resumes,
                r->resumes == 1 ? "" : "s");
    fputs("<br>source <span class=mono>", o);
    esc(o, r->source_hash);
    fputs("</span>", o);
    if (r->prog->source_hash && strcmp(r->prog->source_hash, r->source_hash) != 0)
        fputs(" (<b>not this binary's source</b>: it was changed since the run)", o);
    fputs(" &middot; arguments <span class=mono>", o);
    /* kept with 17 digits, for a resume to compare them exactly; shown as
     * written (0.2, not 0.20000000000000001) */
    json_t *given = r->args ? json_loads(r->args, 0, NULL) : NULL;
    char *shown = given ? json_dumps(given, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                 JSON_REAL_PRECISION(15)) : NULL;
    esc(o, shown ? shown : r->args);
    free(shown);
    json_decref(given);
    fputs("</span></div>\n", o);
    const char *self = r->self;
    if (strcmp(status, "done") != 0 && strcmp(status, "running") != 0) {
        fputs("<div class=note>This run is not finished (", o);
        esc(o, status);
        fputs(strcmp(status, "waiting") == 0 ? "): decide its items (see <code>review</code>)"
              ", then resume it:" : "): resume it with", o);
        fputs("<br><code class=resume>", o);
        if (r->pruned) {
            fputs("(its answers were pruned: it can no longer be resumed)", o);
        } else {
            esc(o, self);
            fprintf(o, " --resume %s%s", r->id,
                    strcmp(status, "skipped") == 0 ? " --retry-skipped" : "");
        }
        fputs("</code></div>\n", o);
    }
    if (r->pruned)
        fprintf(o, "<div class=note>Its answers and call details were removed by"
                " <code>runs --prune</code> on %s: messages are missing below.</div>\n",
                when(a, r->pruned));
    fputs("</header>\n<div class=cards>", o);
    fprintf(o, "<div class=card id=total-cost><b>%s</b><span>total cost</span></div>",
            usd(a, r->total_usd));
    fprintf(o, "<div class=card><b>%s</b><span>calls</span></div>", num(a, r->total_calls));
    fprintf(o, "<div class=card><b>%s</b><span>failed calls</span></div>",
            num(a, r->total_failed));
    fprintf(o, "<div class=card><b>%s</b><span>retries</span></div>",
            num(a, r->total_retries));
    fprintf(o, "<div class=card><b>%s / %s</b><span>tokens in / out</span></div>",
            num(a, r->total_tin), num(b, r->total_tout));
    if (r->total_cache_read || r->total_cache_write)
        fprintf(o, "<div class=card><b>%s / %s</b><span>tokens read from / written to the"
                " prompt cache, saving %s</span></div>", num(a, r->total_cache_read),
                num(b, r->total_cache_write), usd(c, r->total_saved));
    if (r->total_batch > 0)
        fprintf(o, "<div class=card><b>%s</b><span>of it at the batch price</span></div>",
                usd(a, r->total_batch));
    if (r->skipped)
        fprintf(o, "<div class=card><b>%s</b><span>items skipped</span></div>",
                num(a, r->skipped));
    fputs("</div>\n", o);
}

/* A bar: x, y, width, height, fill, its tooltip. */
static void bar(FILE *o, double x, double y, double w, double h, const char *fill,
                const char *tip)
{
    fprintf(o, "<rect class=bar x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">", x, y,
            w > 0 ? w : 0, h, fill);
    if (tip)
        fputs("<title>", o), esc(o, tip), fputs("</title>", o);
    fputs("</rect>", o);
}

static void put_phases(FILE *o, report *r)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    fputs("<section id=phases><h2>Cost and time per phase</h2>\n<table><tr><th>phase</th>"
          "<th class=n>calls</th><th class=n>tokens in</th><th class=n>tokens out</th>"
          "<th class=n>cost</th><th class=n>share</th><th class=n>active time</th>"
          "<th class=n>calls' span</th></tr>\n", o);
    double maxusd = 0;
    int64_t maxms = 0;
    int shown = 0;
    for (int k = 0; k < r->nphases; k++) {
        rphase *p = &r->phases[k];
        if (k == 0 && !p->calls && p->usd == 0)
            continue;
        shown++;
        maxusd = p->usd > maxusd ? p->usd : maxusd;
        maxms = p->active_ms > maxms ? p->active_ms : maxms;
        fputs("<tr class=phase><td>", o);
        esc(o, phase_name(r, k));
        fprintf(o, "</td><td class=n>%s</td><td class=n>%s</td><td class=n>%s</td>"
                "<td class=n>%s</td><td class=n>%.1f%%</td><td class=n>%s</td>"
                "<td class=n>%s</td></tr>\n", num(a, p->calls), num(b, p->tin), num(c, p->tout),
                usd(d, p->usd), r->total_usd > 0 ? 100 * p->usd / r->total_usd : 0,
                k ? dur(e, p->active_ms) : "-", p->first ? dur(f, p->last - p->first) : "-");
    }
    fprintf(o, "<tr class=total><td>run</td><td class=n>%s</td><td class=n>%s</td>"
            "<td class=n>%s</td><td class=n>%s</td><td class=n>100%%</td><td class=n>%s</td>"
            "<td class=n>%s</td></tr></table>\n", num(a, r->total_calls), num(b, r->total_tin),
            num(c, r->total_tout), usd(d, r->total_usd), dur(e, r->active_ms),
            dur(f, r->t1 - r->t0));
    /* the bars: cost and active time of each phase, scaled to the largest */
    int rowh = 34, h = shown * rowh + 10;
    fprintf(o, "<div class=legend><span><i style=\"background:%s\"></i>cost</span>"
            "<span><i style=\"background:%s\"></i>active time</span></div>\n"
            "<svg id=phase-bars viewBox=\"0 0 1000 %d\" width=1000 height=%d role=img>"
            "<title>cost and active time per phase</title>\n", palette[0], palette[1], h, h);
    int y = 4;
    for (int k = 0; k < r->nphases; k++) {
        rphase *p = &r->phases[k];
        if (k == 0 && !p->calls && p->usd == 0)
            continue;
        fprintf(o, "<text x=\"190\" y=\"%d\" text-anchor=\"end\">", y + 19);
        esc_short(o, phase_name(r, k));
        fputs("</text>", o);
        char tip[96];
        snprintf(tip, sizeof tip, "%s: %s", phase_name(r, k), usd(a, p->usd));
        bar(o, 200, y + 3, maxusd > 0 ? 680 * p->usd / maxusd : 0, 13, palette[0], tip);
        fprintf(o, "<text x=\"%.1f\" y=\"%d\">%s</text>",
                205 + (maxusd > 0 ? 680 * p->usd / maxusd : 0), y + 14, usd(a, p->usd));
        bar(o, 200, y + 17, maxms > 0 ? 680.0 * (double)p->active_ms / (double)maxms : 0, 11,
            palette[1], NULL);
        if (k)
            fprintf(o, "<text x=\"%.1f\" y=\"%d\">%s</text>",
                    205 + (maxms > 0 ? 680.0 * (double)p->active_ms / (double)maxms : 0),
                    y + 27, dur(b, p->active_ms));
        fputs("\n", o);
        y += rowh;
    }
    fputs("</svg></section>\n", o);
}

/* A "nice" step (1, 2 or 5 times a power of ten) for about n ticks over span. */
static double nice_step(double span, int n)
{
    double raw = span / n, p = pow(10, floor(log10(raw > 0 ? raw : 1)));
    double m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* A time on the timeline, from its start. */
static const char *tick_label(char *s, double ms, double step)
{
    if (step < 1000)
        snprintf(s, 32, "%.0f ms", ms);
    else if (step < 60000)
        snprintf(s, 32, "%.0f s", ms / 1000);
    else if (step < 3600000)
        snprintf(s, 32, "%.0f min", ms / 60000);
    else
        snprintf(s, 32, "%.0f h", ms / 3600000);
    return s;
}

/* Marks the LANES_MAX agents with the most calls (all when fewer); returns
 * how many. */
static int busiest(const report *r, bool *drawn)
{
    int n = 0;
    for (int want = 0; drawn && want < LANES_MAX && want < r->nagents; want++) {
        int best = -1;
        for (int k = 0; k < r->nagents; k++)
            if (!drawn[k] && (best < 0 || r->agents[k].calls > r->agents[best].calls))
                best = k;
        drawn[best] = true;
        n++;
    }
    return n;
}

static int cmp_event(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The timeline's time axis: ms after the run's start, with its long idle
 * stretches (no call in flight: a run waiting for approval, resumed hours
 * later) cut down to a narrow band each, so the work is not squeezed into
 * the edges of a day. */
typedef struct taxis {
    int64_t t0;                    /* the run's start */
    double span;                   /* the axis's length, ms, cuts narrowed */
    int n;                         /* cuts */
    double from[CUTS_MAX];         /* each cut's start, ms after t0 */
    double len[CUTS_MAX];          /* and its length */
    double g;                      /* the length a cut keeps on the axis */
} taxis;

/* A wall-clock time on the axis. */
static double ax_map(const taxis *x, double t)
{
    double v = t - (double)x->t0, out = v;
    for (int i = 0; i < x->n && v > x->from[i]; i++)
        out -= v >= x->from[i] + x->len[i] ? x->len[i] - x->g
                                           : (v - x->from[i]) * (1 - x->g / x->len[i]);
    return out;
}

/* A point of the axis as ms after t0, or -1 inside a cut. */
static double ax_unmap(const taxis *x, double c)
{
    double shift = 0;                            /* wall time less axis time, so far */
    for (int i = 0; i < x->n; i++) {
        double at = x->from[i] - shift;          /* the cut's start on the axis */
        if (c < at)
            break;
        if (c < at + x->g)
            return -1;
        shift += x->len[i] - x->g;
    }
    return c + shift;
}

/* The calls as sorted events (ms after t0, times 2, plus 1 for a start:
 * ends sort first, so back-to-back calls do not overlap); NULL when out of
 * memory. */
static int64_t *sorted_events(const report *r)
{
    int64_t *ev = fr_malloc((2 * r->ncalls + 1) * sizeof *ev);
    if (!ev)
        return NULL;
    for (size_t i = 0; i < r->ncalls; i++) {
        ev[2 * i] = (r->calls[i].start - r->t0) * 2 + 1;
        ev[2 * i + 1] = (r->calls[i].end - r->t0) * 2;
    }
    qsort(ev, 2 * r->ncalls, sizeof *ev, cmp_event);
    return ev;
}

/* The axis: the idle stretches (the first CUTS_MAX) at least CUT_MIN_MS and
 * a tenth of the run long, each narrowed to a band. */
static void make_axis(const report *r, const int64_t *ev, taxis *x)
{
    double span = (double)(r->t1 - r->t0), idle_from = 0, cut = 0;
    memset(x, 0, sizeof *x);
    x->t0 = r->t0;
    int64_t level = 0;
    for (size_t i = 0; i <= 2 * r->ncalls; i++) {
        bool end = i == 2 * r->ncalls;
        double t = end ? span : (double)(ev[i] / 2);
        if (level == 0 && (end || (ev[i] & 1)) && t - idle_from >= CUT_MIN_MS &&
            t - idle_from >= span / 10 && x->n < CUTS_MAX) {
            x->from[x->n] = idle_from, x->len[x->n] = t - idle_from;
            cut += x->len[x->n++];
        }
        if (end)
            break;
        level += (ev[i] & 1) ? 1 : -1;
        if (level == 0)
            idle_from = t;
    }
    double rest = span - cut;
    x->g = x->n ? fmax(1, rest * fmin(0.06, 0.25 / x->n)) : 0;
    x->span = rest + x->n * x->g;
}

/* The peak concurrency of each bin, swept from the events; the overlap of
 * each call with each bin summed into its average concurrency, and into its
 * agent's lane. */
static void concurrency(report *r, const int64_t *ev, const taxis *x, double *peak,
                        double *avg, double *lanes)
{
    double w = x->span / BINS, lw = x->span / LANE_BINS;
    for (size_t i = 0; i < r->ncalls; i++) {
        rcall *c = &r->calls[i];
        double s = ax_map(x, (double)c->start), e = ax_map(x, (double)c->end);
        for (int b = (int)(s / w); b < BINS && b * w < e; b++)
            avg[b] += (fmin(e, (b + 1) * w) - fmax(s, b * w)) / w;
        for (int b = (int)(s / lw); b < LANE_BINS && b * lw < e; b++)
            lanes[(size_t)c->agent * LANE_BINS + (size_t)b] +=
                (fmin(e, (b + 1) * lw) - fmax(s, b * lw)) / lw;
    }
    size_t i = 0;
    int64_t level = 0;
    for (int b = 0; b < BINS; b++) {
        double top = (b + 1) * w;
        int64_t pk = level;
        while (i < 2 * r->ncalls && ax_map(x, (double)(r->t0 + ev[i] / 2)) < top) {
            level += (ev[i] & 1) ? 1 : -1;
            pk = level > pk ? level : pk;
            i++;
        }
        peak[b] = (double)pk;
    }
}

/* The time axis under a chart from x0 to x1 at y: ticks after the run's
 * start, or with cuts, wall-clock ticks (UTC) beside grey bands, each with
 * how long its cut was (as a label when label, else as a tooltip); a cut's
 * band spans the chart up to top. */
static void put_axis_x(FILE *o, double x0, double x1, double y, double top, bool label,
                       const taxis *x)
{
    double step = nice_step(x->span, 8), k = (x1 - x0) / x->span;
    char s[32];
    for (int i = 0; i < x->n; i++) {
        double at = x0 + k * ax_map(x, (double)x->t0 + x->from[i]), w = k * x->g;
        fprintf(o, "<g class=cut><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\""
                " fill=\"#e3e6eb\"><title>idle for %s: no call in flight (cut short here)"
                "</title></rect>", at, top, w, y - top, dur(s, (int64_t)x->len[i]));
        if (label)
            fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">"
                    "idle %s</text>", fmin(fmax(at + w / 2, x0 + 40), x1 - 40), top + 10, s);
        fputs("</g>", o);
    }
    fprintf(o, "<line class=axis x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", x0, y, x1, y);
    for (double t = 0; t <= x->span * 1.0001; t += step) {
        double px = x0 + k * t, wall = ax_unmap(x, t);
        if (wall < 0)
            continue;                            /* inside a cut */
        if (x->n) {
            time_t sec = (time_t)((x->t0 + (int64_t)wall) / 1000);
            struct tm tm;
            gmtime_r(&sec, &tm);
            size_t n = strftime(s, sizeof s, "%H:%M:%S", &tm);
            if (step < 1000)
                snprintf(s + n, sizeof s - n, ".%03d", (int)((x->t0 + (int64_t)wall) % 1000));
        } else {
            tick_label(s, t, step);
        }
        fprintf(o, "<line class=axis x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\">%s</text>", px, y, px, y + 4,
                px, y + 16, px > x1 - 25 ? "end" : "middle", s);   /* the last: inside */
    }
}

static void put_timeline(FILE *o, report *r)
{
    fputs("<section id=timeline><h2>Timeline of calls</h2>\n", o);
    if (!r->ncalls) {
        fputs("<p>No call finished in this run.</p></section>\n", o);
        return;
    }
    double *peak = fr_calloc(BINS, sizeof *peak), *avg = fr_calloc(BINS, sizeof *avg);
    double *lanes = fr_calloc((size_t)r->nagents * LANE_BINS + 1, sizeof *lanes);
    int64_t *ev = sorted_events(r);
    if (!peak || !avg || !lanes || !ev) {
        fputs("<p>(out of memory drawing the timeline)</p></section>\n", o);
        fr_free(peak), fr_free(avg), fr_free(lanes), fr_free(ev);
        return;
    }
    taxis ax;
    make_axis(r, ev, &ax);
    concurrency(r, ev, &ax, peak, avg, lanes);
    fr_free(ev);
    double top = 1;
    for (int b = 0; b < BINS; b++)
        top = peak[b] > top ? peak[b] : top;
    double ystep = nice_step(top, 4);
    top = ceil(top / ystep) * ystep;
    const double X0 = 50, X1 = 985, Y0 = 10, Y1 = 190, span = ax.span;
    char s[32], s2[32];
    fprintf(o, "<div class=legend><span><i style=\"background:%s;opacity:.35\"></i>calls in "
            "flight, on average</span><span><i style=\"background:%s\"></i>at the peak</span>"
            "<span>each of %d bins is %s wide</span></div>\n",
            palette[0], palette[0], BINS, dur(s, (int64_t)ceil(span / BINS)));
    fprintf(o, "<svg id=concurrency viewBox=\"0 0 1000 215\" width=1000 height=215 role=img>"
            "<title>calls in flight over time</title>\n");
    for (double v = 0; v <= top * 1.0001; v += ystep) {
        double y = Y1 - (Y1 - Y0) * v / top;
        fprintf(o, "<line class=grid x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>", X0, y, X1, y,
                X0 - 6, y + 4, v);
    }
    put_axis_x(o, X0, X1, Y1, Y0, true, &ax);
    double bw = (X1 - X0) / BINS;
    fprintf(o, "\n<path fill=\"%s\" fill-opacity=\".35\" d=\"M%.1f %.1f", palette[0], X0, Y1);
    for (int b = 0; b < BINS; b++) {
        double y = Y1 - (Y1 - Y0) * avg[b] / top;
        fprintf(o, "L%.1f %.1fL%.1f %.1f", X0 + b * bw, y, X0 + (b + 1) * bw, y);
    }
    fprintf(o, "L%.1f %.1fZ\"/>\n<path fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" d=\"",
            X1, Y1, palette[0]);
    for (int b = 0; b < BINS; b++) {
        double y = Y1 - (Y1 - Y0) * peak[b] / top;
        fprintf(o, "%c%.1f %.1fL%.1f %.1f", b ? 'L' : 'M', X0 + b * bw, y, X0 + (b + 1) * bw, y);
    }
    fputs("\"/>\n</svg>\n", o);
    /* a lane per agent: its calls in flight, shaded against its own peak */
    bool *drawn = fr_calloc((size_t)r->nagents + 1, sizeof *drawn);
    int nl = busiest(r, drawn), lh = 18, h = nl * lh + 28;
    fprintf(o, "<h3>Per agent</h3><p class=sub>The darker, the more of its calls in flight;"
            " each lane is shaded against its own top (its most calls in flight on average in"
            " a bin of %s).</p><svg id=lanes viewBox=\"0 0 1000 %d\" width=1000 height=%d"
            " role=img><title>each agent's calls in flight over time</title>\n",
            dur(s, (int64_t)ceil(span / LANE_BINS)), h, h);
    const double LX1 = 900;
    double lx0 = 190, lbw = (LX1 - lx0) / LANE_BINS;
    for (int k = 0, y = 4; k < r->nagents; k++) {
        if (!drawn || !drawn[k])
            continue;
        double *row = &lanes[(size_t)k * LANE_BINS], m = 0;
        for (int b = 0; b < LANE_BINS; b++)
            m = row[b] > m ? row[b] : m;
        fprintf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\">", lx0 - 8, y + 12);
        esc_short(o, r->agents[k].name);
        fprintf(o, "</text><rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"#f1f3f6\""
                "/>", lx0, y, LX1 - lx0, lh - 4);
        for (int b = 0; b < LANE_BINS;) {
            int lv = m > 0 ? (int)ceil(LEVELS * row[b] / m) : 0, e = b + 1;
            while (e < LANE_BINS && (m > 0 ? (int)ceil(LEVELS * row[e] / m) : 0) == lv)
                e++;
            if (lv > 0)
                fprintf(o, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\""
                        " fill-opacity=\"%.2f\"/>", lx0 + b * lbw, y, (e - b) * lbw, lh - 4,
                        palette[(size_t)k % NPALETTE], (double)lv / LEVELS);
            b = e;
        }
        fprintf(o, "<text x=\"%.1f\" y=\"%d\">top %.1f</text>\n", LX1 + 8, y + 11, m);
        y += lh;
    }
    put_axis_x(o, lx0, LX1, 4 + nl * lh, 2, false, &ax);
    fprintf(o, "</svg><p class=sub>From %s to %s (UTC).", when(s, r->t0), when(s2, r->t1));
    if (nl < r->nagents)
        fprintf(o, " The %d agents with the most calls are drawn, not the %d others.", nl,
                r->nagents - nl);
    fr_free(drawn);
    if (ax.n)
        fprintf(o, " The grey band%s: %s when no call was in flight for at least %s and a"
                " tenth of the run (waiting for approval, or stopped and resumed later), cut"
                " short; the times are UTC.", ax.n == 1 ? "" : "s", ax.n == 1 ? "a stretch"
                : "stretches", dur(s2, CUT_MIN_MS));
    fputs("</p></section>\n", o);
    fr_free(peak), fr_free(avg), fr_free(lanes);
}

/* The 1-2-5 edge at or below v (v >= 1). */
static double edge_below(double v)
{
    double p = pow(10, floor(log10(v)));
    return v >= 5 * p ? 5 * p : v >= 2 * p ? 2 * p : p;
}

static double edge_next(double e)
{
    double p = pow(10, floor(log10(e) + 1e-9)), m = e / p;
    return m < 1.5 ? 2 * p : m < 3 ? 5 * p : 10 * p;
}

static const char *edge_label(char *s, double v, bool ms)
{
    if (ms && v >= 60000)
        snprintf(s, 32, "%gm", v / 60000);
    else if (ms && v >= 1000)
        snprintf(s, 32, "%gs", v / 1000);
    else if (ms)
        snprintf(s, 32, "%gms", v);
    else if (v >= 1e6)
        snprintf(s, 32, "%gM", v / 1e6);
    else if (v >= 1000)
        snprintf(s, 32, "%gk", v / 1000);
    else
        snprintf(s, 32, "%g", v);
    return s;
}

/* A histogram of one field of the calls over 1-2-5 bins (a first bin for
 * values below 1), with each bar's count as its tooltip. */
static void put_hist(FILE *o, report *r, const char *id, const char *title, int field, bool ms)
{
    int64_t lo = INT64_MAX, hi = 0;
    size_t n = 0;
    for (size_t i = 0; i < r->ncalls; i++) {
        rcall *c = &r->calls[i];
        int64_t v = field == 0 ? c->end - c->start : field == 1 ? c->tin : c->tout;
        if (field && r->agents[c->agent].http)
            continue;                               /* an http operation has no tokens */
        lo = v < lo ? v : lo, hi = v > hi ? v : hi, n++;
    }
    fprintf(o, "<figure><figcaption>%s</figcaption>", title);
    if (!n) {
        fputs("<p class=sub>no calls</p></figure>\n", o);
        return;
    }
    double edges[64];
    int ne = 0;
    bool zero = lo < 1;
    for (double e = edge_below(lo < 1 ? 1 : (double)lo); ne < 63; e = edge_next(e)) {
        edges[ne++] = e;
        if (e > (double)hi)
            break;
    }
    int nb = ne - 1 + zero;                          /* bins: [0,1) then [e_i, e_i+1) */
    int64_t cnt[64] = { 0 }, top = 1;
    for (size_t i = 0; i < r->ncalls; i++) {
        rcall *c = &r->calls[i];
        if (field && r->agents[c->agent].http)
            continue;
        double v = (double)(field == 0 ? c->end - c->start : field == 1 ? c->tin : c->tout);
        int b = 0;
        if (v >= 1 || !zero) {
            while (b + 1 < ne - 1 && v >= edges[b + 1])
                b++;
            b += zero;
        }
        cnt[b]++;
    }
    for (int b = 0; b < nb; b++)
        top = cnt[b] > top ? cnt[b] : top;
    const double X0 = 42, X1 = 340, Y0 = 8, Y1 = 150, bw = (X1 - X0) / nb;
    fprintf(o, "<svg id=\"%s\" viewBox=\"0 0 360 180\" width=360 height=180 role=img><title>",
            id);
    esc(o, title);
    fputs("</title>", o);
    double step = nice_step((double)top, 3);
    for (double v = 0; v <= (double)top; v += step) {
        double y = Y1 - (Y1 - Y0) * v / (double)top;
        fprintf(o, "<line class=grid x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>", X0, y, X1, y, X0 - 4,
                y + 4, v);
    }
    char a[32], b2[32], tip[128];
    for (int b = 0; b < nb; b++) {
        double h = (Y1 - Y0) * (double)cnt[b] / (double)top;
        double from = zero ? (b ? edges[b - 1] : 0) : edges[b];
        double to = zero ? (b ? edges[b] : 1) : edges[b + 1];
        snprintf(tip, sizeof tip, "%lld call%s from %s to %s", (long long)cnt[b],
                 cnt[b] == 1 ? "" : "s", edge_label(a, from, ms), edge_label(b2, to, ms));
        bar(o, X0 + b * bw + 1, Y1 - h, bw - 2, h, palette[field == 0 ? 0 : field == 1 ? 2 : 3],
            tip);
    }
    fprintf(o, "<line class=axis x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", X0, Y1, X1, Y1);
    int every = nb > 12 ? 3 : nb > 7 ? 2 : 1;
    for (int k = 0; k <= nb; k += every) {
        double v = zero ? (k ? edges[k - 1] : 0) : edges[k];
        fprintf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>", X0 + k * bw,
                Y1 + 14, edge_label(a, v, ms));
    }
    fputs("</svg></figure>\n", o);
}

static void put_histograms(FILE *o, report *r)
{
    fputs("<section id=histograms><h2>Latency and tokens per call</h2><div class=hists>\n", o);
    put_hist(o, r, "hist-latency", "latency of a call (all its attempts)", 0, true);
    put_hist(o, r, "hist-tokens-in", "input tokens of a call", 1, false);
    put_hist(o, r, "hist-tokens-out", "output tokens of a call", 2, false);
    fputs("</div></section>\n", o);
}

static void put_agents(FILE *o, report *r)
{
    char a[32], b[32], c[32], d[32], e[32], f[32], g[32], l1[32], l2[32], l3[32];
    fputs("<section id=agents><h2>Agents</h2>\n<table><tr><th>agent</th><th>model</th>"
          "<th class=n>calls</th><th class=n>failed</th><th class=n>retries</th>"
          "<th class=n>refused</th><th class=n>invalid</th><th class=n>transient</th>"
          "<th class=n>tokens in / out</th>", o);
    bool cache = r->total_cache_read || r->total_cache_write, batch = r->total_batch > 0;
    if (cache)
        fputs("<th class=n>cache read / written</th>", o);
    fputs("<th class=n>cost</th>", o);
    if (batch)
        fputs("<th class=n>at batch price</th>", o);
    fputs("<th class=n>latency p50 / p95 / max</th></tr>\n", o);
    for (int k = 0; k < r->nagents; k++) {
        ragent *x = &r->agents[k];
        fprintf(o, "<tr class=agent><td><i style=\"display:inline-block;width:9px;height:9px;"
                "border-radius:2px;background:%s\"></i> ", palette[(size_t)k % NPALETTE]);
        esc(o, x->name);
        fputs("</td><td class=mono>", o);
        esc(o, x->http ? "(http)" : x->models.s ? x->models.s : "?");
        fprintf(o, "</td><td class=n>%s", num(a, x->calls));
        if (x->turns)
            fprintf(o, " <span class=sub>(%s turns)</span>", num(b, x->turns));
        fprintf(o, "</td><td class=n>%s", num(a, x->failed));
        if (x->held)
            fprintf(o, " <span class=sub>+%s in flight</span>", num(b, x->held));
        fprintf(o, "</td><td class=n>%s</td><td class=n>%s</td><td class=n>%s</td>"
                "<td class=n>%s</td><td class=n>%s / %s</td>", num(a, x->retries),
                num(b, x->outcomes[O_REFUSED]), num(c, x->outcomes[O_INVALID]),
                num(d, x->outcomes[O_TRANSIENT]), num(e, x->tin), num(f, x->tout));
        if (cache)
            fprintf(o, "<td class=n>%s / %s</td>", num(a, x->cache_read), num(b, x->cache_write));
        fprintf(o, "<td class=n>%s</td>", usd(g, x->usd));
        if (batch)
            fprintf(o, "<td class=n>%s</td>", usd(a, x->batch_usd));
        fprintf(o, "<td class=n>%s / %s / %s</td></tr>\n", dur(l1, x->p50), dur(l2, x->p95),
                dur(l3, x->pmax));
    }
    fputs("</table>\n", o);
    int any = 0;
    fr_buf rest = { 0 };                         /* the agents past PROBLEM_AGENTS_MAX */
    for (int k = 0; k < r->nagents; k++) {
        ragent *x = &r->agents[k];
        if (!x->nfailures && !x->nproblems)
            continue;
        if (any++ >= PROBLEM_AGENTS_MAX) {
            fr_buf_puts(&rest, rest.s ? ", " : "");
            esc_buf(&rest, x->name, 200);
            fr_buf_printf(&rest, " (%lld failed, %lld attempts)", (long long)x->nfailures,
                          (long long)x->nproblems);
            continue;
        }
        fputs("<h3 class=agent-problems>", o);
        esc(o, x->name);
        fputs("</h3>\n", o);
        if (x->nfailures) {
            fprintf(o, "<table class=failures><tr><th>failed item</th><th class=n>attempts</th>"
                    "<th>error</th></tr>\n%s</table>\n", x->failures.s ? x->failures.s : "");
            if (x->nfailures > PROBLEMS_MAX)
                fprintf(o, "<p class=sub>and %s more failed call%s</p>\n",
                        num(a, x->nfailures - PROBLEMS_MAX),
                        x->nfailures - PROBLEMS_MAX == 1 ? "" : "s");
        }
        if (x->nproblems) {
            fputs("<p class=sub>attempts that did not answer: ", o);
            for (int i = 0; i < N_OUTCOMES; i++)
                if (x->outcomes[i])
                    fprintf(o, "<span class=\"tag %s\">%s %s</span> ", outcome_names[i],
                            outcome_names[i], num(a, x->outcomes[i]));
            fprintf(o, "</p><details open><summary>the first %d of each kind</summary>"
                    "<table class=attempts><tr><th>item</th><th class=n>attempt</th>"
                    "<th>outcome</th><th>message</th></tr>\n%s</table></details>\n",
                    EXAMPLES_MAX, x->problems.s ? x->problems.s : "");
            if (x->nproblems > x->listed)
                fprintf(o, "<p class=sub>and %s more</p>\n", num(a, x->nproblems - x->listed));
        }
    }
    if (!any)
        fputs("<p>Every call answered at its first attempt.</p>\n", o);
    if (rest.s)
        fprintf(o, "<p class=sub>And the problems of %d more agents, not listed: %s</p>\n",
                any - PROBLEM_AGENTS_MAX, rest.s);
    fr_buf_free(&rest);
    fputs("</section>\n", o);
}

/* A time in a table: the header says UTC. */
static const char *when_short(char *s, int64_t ms)
{
    return utc_time(s, ms, true);
}

static const char *decision_class(const char *d)
{
    return !*d ? "open" : strcmp(d, "approved") == 0 ? "approved"
         : strcmp(d, "rejected") == 0 ? "rejected" : "handled";
}

/* approve() items, grouped by title, decision and who decided: a gate of
 * 100,000 items approved at once is one line. */
static bool put_decisions(FILE *o, report *r, sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT title, coalesce(decision, ''), coalesce(decided_by, ''),"
                           " count(*), min(created_ms), min(decided_ms), max(decided_ms),"
                           " CASE WHEN count(*) <= 20 THEN group_concat(n, ', ') END"
                           " FROM approvals WHERE run_id = ?1 AND kind = 'approve'"
                           " GROUP BY title, decision, decided_by ORDER BY min(n)",
                           -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    char a[32], b[32], c[32];
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *d = col_text(st, 1);
        if (n++ == 0)
            fputs("<h3>Approvals</h3><table><tr><th>gate</th><th class=n>items</th>"
                  "<th>decision</th><th>by</th><th>when (UTC)</th><th>queued (UTC)</th></tr>\n",
                  o);
        fputs("<tr class=decision><td>", o);
        esc(o, col_text(st, 0));
        fprintf(o, "</td><td class=n>%s", num(a, sqlite3_column_int64(st, 3)));
        if (sqlite3_column_type(st, 7) != SQLITE_NULL)
            fputs("<br><span class=sub>#", o), esc(o, col_text(st, 7)), fputs("</span>", o);
        fprintf(o, "</td><td><span class=\"tag %s\">%s</span></td><td>", decision_class(d),
                *d ? d : "waiting");
        esc(o, *d ? col_text(st, 2) : "-");
        fputs("</td><td class=nw>", o);
        if (!*d)
            fputs("-", o);
        else if (sqlite3_column_int64(st, 5) / 1000 == sqlite3_column_int64(st, 6) / 1000)
            fputs(when_short(a, sqlite3_column_int64(st, 5)), o);
        else
            fprintf(o, "%s to %s", when_short(a, sqlite3_column_int64(st, 5)),
                    when_short(b, sqlite3_column_int64(st, 6)));
        fprintf(o, "</td><td class=nw>%s</td></tr>\n", when_short(c, sqlite3_column_int64(st, 4)));
    }
    sqlite3_finalize(st);
    if (n)
        fputs("</table>\n", o);
    return rc == SQLITE_DONE;
}

/* escalate() items, each with its reason, the first ITEMS_MAX. */
static bool put_escalations(FILE *o, report *r, sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT n, title, origin, item, created_ms, coalesce(decision, ''),"
                           " decided_by, decided_ms FROM approvals WHERE run_id = ?1"
                           " AND kind <> 'approve' ORDER BY n", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    char a[32], b[32];
    int64_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n++ == 0)
            fputs("<h3>Escalations</h3><table><tr><th class=n>#</th><th>reason</th>"
                  "<th>where</th><th>item</th><th>escalated (UTC)</th><th>decision</th>"
                  "<th>by</th><th>when (UTC)</th></tr>\n", o);
        if (n > ITEMS_MAX)
            continue;
        const char *d = col_text(st, 5);
        fprintf(o, "<tr class=escalation><td class=n>%lld</td><td class=msg>",
                (long long)sqlite3_column_int64(st, 0));
        fr_buf t = { 0 };
        esc_buf(&t, col_text(st, 1), MESSAGE_MAX);
        fputs(t.s ? t.s : "", o);
        fr_buf_free(&t);
        fputs("</td><td class=mono>", o);
        esc(o, col_text(st, 2));
        fputs("</td><td>", o);
        esc(o, col_text(st, 3));
        fprintf(o, "</td><td class=nw>%s</td><td><span class=\"tag %s\">%s</span></td><td>",
                when_short(a, sqlite3_column_int64(st, 4)), decision_class(d), *d ? d : "open");
        esc(o, *d ? col_text(st, 6) : "-");
        fprintf(o, "</td><td class=nw>%s</td></tr>\n",
                *d ? when_short(b, sqlite3_column_int64(st, 7)) : "-");
    }
    sqlite3_finalize(st);
    if (n)
        fputs("</table>\n", o);
    if (n > ITEMS_MAX)
        fprintf(o, "<p class=sub>and %s more (see <code>runs --audit %s</code>)</p>\n",
                num(a, n - ITEMS_MAX), r->id);
    return rc == SQLITE_DONE;
}

/* Approvals and escalations, with who decided them and when. */
static bool put_approvals(FILE *o, report *r, sqlite3 *db)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FILTER (WHERE decision = 'approved'),"
                           " count(*) FILTER (WHERE decision = 'rejected'),"
                           " count(*) FILTER (WHERE kind = 'approve' AND decision IS NULL),"
                           " count(*) FILTER (WHERE kind <> 'approve' AND decision IS NOT NULL),"
                           " count(*) FILTER (WHERE kind <> 'approve' AND decision IS NULL),"
                           " count(*) FROM approvals WHERE run_id = ?1", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
    fputs("<section id=approvals><h2>Approvals and escalations</h2>\n", o);
    bool ok = sqlite3_step(st) == SQLITE_ROW;
    if (ok && sqlite3_column_int64(st, 5) == 0)
        fputs("<p>This run queued no item for approval and escalated none.</p>\n", o);
    else if (ok)
        fprintf(o, "<p id=approval-counts>approvals: %lld approved, %lld rejected, %lld waiting;"
                " escalations: %lld handled, %lld open</p>\n",
                (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
                (long long)sqlite3_column_int64(st, 2), (long long)sqlite3_column_int64(st, 3),
                (long long)sqlite3_column_int64(st, 4));
    sqlite3_finalize(st);
    ok = ok && put_decisions(o, r, db) && put_escalations(o, r, db);
    fputs("</section>\n", o);
    return ok;
}

/* ---- the estimate against the actual ---------------------------------------- */

static double jnum(json_t *o, const char *a, const char *b)
{
    return json_number_value(json_object_get(json_object_get(o, a), b));
}

/* One row: what was estimated (expected, worst) and what it cost. */
static void estimate_row(FILE *o, const char *name, json_t *e, double usd_act, int64_t calls,
                         const char *cls)
{
    char a[32], b[32], c[32], d[32];
    double exp = jnum(e, "expected", "usd"), worst = jnum(e, "worst", "usd");
    double scale = fmax(worst, usd_act);
    const char *verdict = usd_act <= exp * 1.000001 ? "within the expected"
                        : usd_act <= worst * 1.000001 ? "above the expected, within the worst case"
                        : "ABOVE THE WORST CASE";
    fprintf(o, "<tr class=\"%s\"><td>", cls);
    esc(o, name);
    fprintf(o, "</td><td class=n>%s</td><td class=n>%s</td><td class=n>%s</td>"
            "<td class=n>%s</td><td class=n>%.0f / %.0f</td><td>%s</td><td>", usd(a, exp),
            usd(b, worst), usd(c, usd_act), exp > 0 ? (snprintf(d, sizeof d, "%.2fx",
            usd_act / exp), d) : "-", jnum(e, "expected", "calls"), jnum(e, "worst", "calls"),
            verdict);
    /* a bullet bar: the worst case's length (or the actual's, above it), the
     * expected marked, the actual filled */
    fprintf(o, "<svg viewBox=\"0 0 200 14\" width=200 height=14 class=bullet>"
            "<rect x=\"0\" y=\"2\" width=\"%.1f\" height=\"10\" fill=\"#e5e7eb\"/>"
            "<rect x=\"0\" y=\"4\" width=\"%.1f\" height=\"6\" fill=\"%s\"/>"
            "<line x1=\"%.1f\" y1=\"0\" x2=\"%.1f\" y2=\"14\" stroke=\"#1d2330\" stroke-width=\"2\"/>"
            "</svg></td><td class=n>%s</td></tr>\n",
            scale > 0 ? 200 * worst / scale : 0, scale > 0 ? fmin(200, 200 * usd_act / scale) : 0,
            usd_act > worst * 1.000001 ? "#d64545" : palette[0],
            scale > 0 ? 200 * exp / scale : 0, scale > 0 ? 200 * exp / scale : 0,
            num(a, calls));
}

static void put_estimate(FILE *o, report *r)
{
    fputs("<section id=estimate><h2>Estimate against the actual</h2>\n", o);
    if (!r->estimate) {
        fputs("<p class=sub>No estimate given: <code>flowc estimate FILE.flow --format=json"
              " &gt; est.json</code>, then <code>report RUN --estimate est.json</code>.</p>"
              "</section>\n", o);
        return;
    }
    fputs("<p class=sub>From <code>", o);
    esc(o, r->estimate_path);
    fputs("</code> (<code>flowc estimate --format=json</code>). The bar is the worst case, the"
          " mark the expected, the filling what the run paid (red: above the worst case).</p>\n<table><tr><th>phase</th>"
          "<th class=n>expected</th><th class=n>worst case</th><th class=n>actual</th>"
          "<th class=n>actual / expected</th><th class=n>calls expected / worst</th>"
          "<th>verdict</th><th></th><th class=n>calls made</th></tr>\n", o);
    json_t *total = json_object_get(r->estimate, "total");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r->estimate, "phases"), i, p) {
        const char *name = jstr(p, "phase");
        int k = 0;
        for (int q = 1; name && q < r->nphases; q++)
            if (strcmp(r->prog->phases[q - 1].name, name) == 0)
                k = q;
        if (name && !k)
            continue;                               /* a phase this program does not have */
        estimate_row(o, phase_name(r, k), p, r->phases[k].usd, r->phases[k].calls, "est-phase");
    }
    estimate_row(o, "run", total, r->total_usd, r->total_calls, "total");
    fputs("</table>\n", o);
    json_t *items = json_object_get(r->estimate, "items");
    const char *key;
    json_t *v;
    if (json_object_size(items)) {
        fputs("<p class=sub>It assumed: ", o);
        json_object_foreach(items, key, v) {
            esc(o, key);
            fprintf(o, " = %g (", json_number_value(json_object_get(v, "count")));
            esc(o, jstr(v, "source"));
            fputs(") &nbsp; ", o);
        }
        fputs("</p>\n", o);
    }
    fputs("</section>\n", o);
}

static json_t *load_estimate(const report *r, const char *path)
{
    json_error_t je;
    json_t *e = json_load_file(path, 0, &je);
    if (!e) {
        fprintf(stderr, "error: --estimate %s:%d: %s\n", path, je.line, je.text);
        return NULL;
    }
    const char *wf = jstr(e, "workflow");
    if (!json_is_object(json_object_get(e, "total")) || !json_is_array(json_object_get(e, "phases"))
        || !wf) {
        fprintf(stderr, "error: --estimate %s: not the JSON of `flowc estimate --format=json`"
                " (no workflow, phases and total)\n", path);
    } else if (strcmp(wf, r->prog->name) != 0) {
        fprintf(stderr, "error: --estimate %s is the estimate of workflow '%s', not of '%s'\n",
                path, wf, r->prog->name);
    } else {
        return e;
    }
    json_decref(e);
    return NULL;
}

/* ---- the command ---------------------------------------------------------------- */

static void write_page(FILE *o, report *r, sqlite3 *db, bool *ok)
{
    char a[32];
    fputs("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"
          " style-src 'unsafe-inline'\">\n"
          "<meta name=viewport content=\"width=device-width,initial-scale=1\">\n<title>", o);
    esc(o, r->prog->name);
    fprintf(o, " run %s</title>\n<style>%s</style></head>\n<body><main>\n", r->id, css);
    put_header(o, r);
    put_phases(o, r);
    put_timeline(o, r);
    put_histograms(o, r);
    put_agents(o, r);
    *ok = put_approvals(o, r, db);
    put_estimate(o, r);
    fprintf(o, "<footer>Written %s by ", when(a, fr_wall_ms()));
    esc(o, r->self);
    fprintf(o, " report (flowrt %s) from the journal. Texts were redacted of @sensitive values"
            " when they were journaled; answers are not shown.</footer>\n</main></body></html>\n",
            FLOWRT_VERSION);
}

static void report_free(report *r)
{
    for (int k = 0; k < r->nagents; k++) {
        fr_free(r->agents[k].name);
        fr_buf_free(&r->agents[k].models);
        fr_buf_free(&r->agents[k].failures);
        fr_buf_free(&r->agents[k].problems);
    }
    fr_free(r->agents);
    fr_free(r->phases);
    fr_free(r->calls);
    fr_free(r->source_hash), fr_free(r->args), fr_free(r->status);
    json_decref(r->estimate);
}

/* The page into out ("-": stdout), through a temporary file renamed over it. */
static int write_out(report *r, sqlite3 *db, const char *out)
{
    bool to_stdout = strcmp(out, "-") == 0, ok = true;
    char *tmp = NULL;
    FILE *o = stdout;
    if (!to_stdout) {
        fr_buf t = { 0 };
        fr_buf_printf(&t, "%s.tmp%ld", out, (long)getpid());
        tmp = t.s;
        int fd = tmp ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        o = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (fd >= 0 && !o)
            close(fd);
        if (!o) {
            fprintf(stderr, "error: -o %s: cannot write it: %s\n", out, strerror(errno));
            fr_free(tmp);
            return 1;
        }
    }
    write_page(o, r, db, &ok);
    long size = to_stdout ? 0 : ftell(o);
    bool written = !ferror(o) && (to_stdout ? fflush(o) == 0 : fclose(o) == 0);
    if (written && !to_stdout && rename(tmp, out) != 0)
        written = false;
    if (!written) {
        fprintf(stderr, "error: -o %s: writing it failed: %s\n", out, strerror(errno));
        if (tmp)
            unlink(tmp);
    } else if (!ok) {
        fprintf(stderr, "error: journal: reading the approvals failed: %s\n", sqlite3_errmsg(db));
    } else if (!to_stdout) {
        fprintf(stderr, "report of run %s written to %s (%ld KB)\n", r->id, out,
                (size + 1023) / 1024);
    }
    fr_free(tmp);
    return written && ok ? 0 : 1;
}

static int run_report(const fr_program *prog, const char *self, const char *run,
                      const char *journal, const char *out, const char *estimate)
{
    report r = { .prog = prog, .self = self, .nphases = prog->nphases + 1,
                 .estimate_path = estimate };
    r.phases = fr_calloc((size_t)r.nphases, sizeof *r.phases);
    char *path = journal ? fr_strdup(journal) : fr_journal_default_path(prog->name);
    fr_buf err = { 0 };
    fr_journal *j = NULL;
    int rc = 1;
    if (!r.phases || !path) {
        fprintf(stderr, "error: out of memory\n");
    } else if (access(path, F_OK) != 0) {
        fprintf(stderr, "error: no journal at %s: no run journaled here yet\n", path);
        rc = 2;
    } else if (!(j = fr_journal_open_ro(path, &err))) {
        fprintf(stderr, "error: %s\n", err.s ? err.s : "out of memory");
    } else if (!find_run(&r, fr_journal_db(j), run)) {
        fprintf(stderr, "error: no run '%s' of %s in the journal %s (see: runs)\n", run,
                prog->name, path);
        rc = 2;
    } else if (estimate && !(r.estimate = load_estimate(&r, estimate))) {
        rc = 2;
    } else if (!read_calls(&r, fr_journal_db(j)) || !read_phase_time(&r, fr_journal_db(j)) ||
               !summarize(&r)) {
        fprintf(stderr, "error: journal %s: reading run %s failed: %s\n", path, r.id,
                fr_journal_errmsg(j));
    } else {
        r.live = fr_journal_run_live(j, r.id);
        if (!out) {
            fr_buf t = { 0 };
            fr_buf_printf(&t, "%s-%s.html", prog->name, r.id);
            rc = t.s ? write_out(&r, fr_journal_db(j), t.s) : 1;
            fr_buf_free(&t);
        } else {
            rc = write_out(&r, fr_journal_db(j), out);
        }
    }
    fr_journal_close(j);
    fr_buf_free(&err);
    fr_free(path);
    report_free(&r);
    return rc;
}

static int report_help(const fr_program *prog, const char *self)
{
    printf("usage: %s report RUN|last [-o FILE] [--estimate FILE] [--journal PATH]\n\n"
           "Writes one self-contained HTML page about run RUN of %s (last: the latest\n"
           "run), read from the journal: the run's status (and how to resume it), cost\n"
           "and time per phase, calls in flight over time (and per agent), latency and\n"
           "token histograms, each agent's calls, failures, retries and refusals with\n"
           "their messages, the approvals and escalations with who decided them and\n"
           "when, and with --estimate the estimate against what the run paid.  The page\n"
           "loads nothing from the network.\n\n"
           "  -o FILE          where to write it (default %s-RUN.html; -: stdout)\n"
           "  --estimate FILE  the output of `flowc estimate FILE.flow --format=json`\n"
           "  --journal PATH   the run journal (default .flow/%s.db)\n"
           "  --help           show this help\n", self, prog->name, prog->name, prog->name);
    return 0;
}

int fr_report_command(const fr_program *prog, int argc, char **argv)
{
    const char *self = argv[0], *run = NULL, *out = NULL, *journal = NULL, *estimate = NULL;
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return report_help(prog, self);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], **slot = strcmp(a, "-o") == 0 ? &out
                                        : strcmp(a, "--journal") == 0 ? &journal
                                        : strcmp(a, "--estimate") == 0 ? &estimate : NULL;
        if (slot) {
            if (*slot) {
                fprintf(stderr, "error: %s is given twice\n", a);
                return 2;
            }
            if (i + 1 >= argc || !argv[i + 1][0] ||
                (argv[i + 1][0] == '-' && strcmp(argv[i + 1], "-") != 0)) {
                fprintf(stderr, "error: %s needs %s\n", a, slot == &out ? "a file (-: stdout)"
                        : "a file");
                return 2;
            }
            *slot = argv[++i];
        } else if (a[0] != '-' && !run) {
            run = a;
        } else {
            fprintf(stderr, "error: unknown argument '%s'\n"
                    "usage: %s report RUN|last [-o FILE] [--estimate FILE] [--journal PATH]\n",
                    a, self);
            return 2;
        }
    }
    if (!run) {
        fprintf(stderr, "usage: %s report RUN|last [-o FILE] [--estimate FILE] [--journal PATH]\n",
                self);
        return 2;
    }
    return run_report(prog, self, run, journal, out, estimate);
}
