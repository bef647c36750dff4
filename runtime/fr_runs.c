/*
 * fr_runs.c: the journal's subcommands of every binary.
 *
 *   BINARY runs [--journal PATH]                 one line per run of this workflow
 *   BINARY runs --cost [--last N] [--journal PATH]  what each run paid, by tier and phase
 *   BINARY runs --audit [RUN_ID] [--journal PATH]  who decided what, and when
 *   BINARY runs --prune DAYS [--journal PATH]    removes the answers of older runs
 *   BINARY show RUN [--agent A] [--item N] [--journal PATH]  what each call sent and got
 *   BINARY review [--journal PATH]               the items waiting for a person
 *   BINARY approve RUN_ID --all|--item N|--reject N [--by NAME] [--journal PATH]
 *   BINARY report RUN [-o FILE] [--estimate FILE]  an HTML page about a run (fr_report.c)
 *   BINARY CMD --help                            what CMD does
 *
 * They read and write the journal file (fr_journal.c) through an unbound
 * handle, one thread, with SQL of their own.
 */
#include "fr_internal.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The binary's name as it was run, for the commands a message suggests;
 * set by fr_journal_command, which fr_main calls before anything else. */
static const char *self_name;

const char *fr_self_name(const fr_program *prog)
{
    return self_name ? self_name : prog->name;
}

static void put_time(FILE *out, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char s[32];
    gmtime_r(&t, &tm);
    strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S", &tm);
    fputs(s, out);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

/* A listing ends when its rows do: a read that fails half way is an error,
 * not a shorter list. */
static int read_done(fr_journal *j, int rc)
{
    if (rc == SQLITE_DONE)
        return 0;
    fprintf(stderr, "error: journal %s: reading it failed: %s\n", fr_journal_path(j),
            fr_journal_errmsg(j));
    return 1;
}

/* runs -> one line per run: id, status, start, duration, spend, calls. */
static int cmd_runs(fr_journal *j, const char *workflow)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(fr_journal_db(j),
        /* the calls read once, grouped by run (a subquery a column would
         * read them once each) */
        "SELECT r.id, r.status, r.started_ms, r.active_ms, r.resumes,"
        " coalesce(s.usd, 0.0), coalesce(s.tokens, 0.0), coalesce(s.answers, 0),"
        " (SELECT count(*) FROM approvals a WHERE a.run_id = r.id AND a.kind = 'approve'"
        " AND a.decision IS NULL)"
        " FROM runs r LEFT JOIN (SELECT run_id, total(usd + held_usd + lost_usd) AS usd,"
        " total(tokens_in + tokens_out + held_tokens + lost_tokens) AS tokens,"
        " total(status = 'ok' AND key NOT LIKE '%#%') AS answers"  /* a loop's turns are not calls */
        " FROM calls_all WHERE run_id IN (SELECT id FROM runs WHERE workflow = ?1)"
        " GROUP BY run_id) s ON s.run_id = r.id"
        " WHERE r.workflow = ?1 ORDER BY r.started_ms, r.rowid",
        -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "error: journal %s: %s\n", fr_journal_path(j), fr_journal_errmsg(j));
        return 1;
    }
    sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
    printf("%-22s %-8s %-19s %9s %10s %10s %6s %7s\n", "RUN", "STATUS", "STARTED (UTC)",
           "DURATION", "USD", "TOKENS", "CALLS", "PENDING");
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *status = col_text(st, 1);
        if (strcmp(status, "running") == 0 && !fr_journal_run_live(j, col_text(st, 0)))
            status = "stopped";              /* its process died: resume it */
        printf("%-22s %-8s ", col_text(st, 0), status);
        put_time(stdout, sqlite3_column_int64(st, 2));
        printf(" %8.1fs", (double)sqlite3_column_int64(st, 3) / 1000.0);
        printf(" %10.4f %10lld %6lld %7lld\n", sqlite3_column_double(st, 5),
               (long long)sqlite3_column_double(st, 6),
               (long long)sqlite3_column_int64(st, 7), (long long)sqlite3_column_int64(st, 8));
    }
    sqlite3_finalize(st);
    return read_done(j, rc);
}

/* One run's dollars in phase ph (-1: before the first phase). */
static double phase_usd(sqlite3_stmt *ph, const char *run, int phase)
{
    sqlite3_reset(ph);
    sqlite3_bind_text(ph, 1, run, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(ph, 2, phase);
    double v = sqlite3_step(ph) == SQLITE_ROW ? sqlite3_column_double(ph, 0) : 0;
    sqlite3_reset(ph);
    return v;
}

/* runs --cost -> per run: what it paid, at the standard and the batch price,
 * what the prompt cache saved, and its dollars per phase; then the mean of
 * each column, so a weekly job's trend is one command away. */
static int cmd_cost(fr_journal *j, const fr_program *prog, int64_t last)
{
    sqlite3_stmt *st, *ph;
    sqlite3 *db = fr_journal_db(j);
    if (sqlite3_prepare_v2(db,
        "SELECT r.id, r.status, r.started_ms, coalesce(s.usd, 0.0), coalesce(s.batch, 0.0),"
        " coalesce(s.saved, 0.0), coalesce(s.answers, 0)"
        " FROM (SELECT * FROM runs WHERE workflow = ?1 ORDER BY started_ms DESC, rowid DESC"
        " LIMIT ?2) r LEFT JOIN (SELECT run_id, total(usd + held_usd + lost_usd) AS usd,"
        " total(iif(tier = 'batch', usd, 0)) AS batch, total(saved_usd) AS saved,"
        " total(status = 'ok' AND key NOT LIKE '%#%') AS answers FROM calls_all"
        " WHERE run_id IN (SELECT id FROM runs WHERE workflow = ?1) GROUP BY run_id) s"
        " ON s.run_id = r.id ORDER BY r.started_ms, r.rowid", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT total(usd + held_usd + lost_usd) FROM calls_all"
        " WHERE run_id = ?1 AND phase = ?2", -1, &ph, NULL) != SQLITE_OK) {
        fprintf(stderr, "error: journal %s: %s\n", fr_journal_path(j), fr_journal_errmsg(j));
        return 1;
    }
    sqlite3_bind_text(st, 1, prog->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, last > 0 ? last : -1);
    int np = prog->nphases;
    double *sum = fr_calloc((size_t)np + 5, sizeof *sum);
    if (!sum) {
        sqlite3_finalize(st), sqlite3_finalize(ph);
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    printf("%-22s %-8s %-10s %10s %10s %10s %10s", "RUN", "STATUS", "STARTED", "USD",
           "STANDARD", "BATCH", "CACHE SAVED");
    for (int i = 0; i < np; i++)
        printf(" %12.12s", prog->phases[i].name);
    printf("\n");
    int n = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *run = col_text(st, 0);
        double usd = sqlite3_column_double(st, 3), batch = sqlite3_column_double(st, 4);
        double saved = sqlite3_column_double(st, 5);
        char day[16];
        time_t t = (time_t)(sqlite3_column_int64(st, 2) / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(day, sizeof day, "%Y-%m-%d", &tm);
        printf("%-22s %-8s %-10s %10.4f %10.4f %10.4f %11.4f", run, col_text(st, 1), day, usd,
               usd - batch, batch, saved);
        sum[0] += usd, sum[1] += usd - batch, sum[2] += batch, sum[3] += saved;
        for (int i = 0; i < np; i++) {
            double v = phase_usd(ph, run, i);
            sum[4 + i] += v;
            printf(" %12.4f", v);
        }
        printf("\n");
        n++;
    }
    if (n > 1) {
        printf("%-22s %-8s %-10s %10.4f %10.4f %10.4f %11.4f", "mean", "", "", sum[0] / n,
               sum[1] / n, sum[2] / n, sum[3] / n);
        for (int i = 0; i < np; i++)
            printf(" %12.4f", sum[4 + i] / n);
        printf("\n");
    }
    fr_free(sum);
    sqlite3_finalize(st);
    sqlite3_finalize(ph);
    return 0;
}

/* runs --audit [RUN_ID] -> every decision a person made on a run's items:
 * what was decided, by whom and when, and the items still open. */
static int cmd_audit(fr_journal *j, const char *workflow, const char *run_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(fr_journal_db(j),
        "SELECT a.run_id, a.n, a.kind, coalesce(a.decision, 'open'), a.decided_by,"
        " a.decided_ms, a.title, a.created_ms FROM approvals a JOIN runs r ON r.id = a.run_id"
        " WHERE r.workflow = ?1 AND (?2 IS NULL OR a.run_id = ?2)"
        " ORDER BY r.started_ms, a.run_id, a.n", -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "error: journal %s: %s\n", fr_journal_path(j), fr_journal_errmsg(j));
        return 1;
    }
    sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
    if (run_id)
        sqlite3_bind_text(st, 2, run_id, -1, SQLITE_STATIC);
    printf("%-22s %5s %-9s %-9s %-16s %-19s %s\n", "RUN", "ITEM", "KIND", "DECISION", "BY",
           "WHEN (UTC)", "TITLE");
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        bool open = sqlite3_column_type(st, 5) == SQLITE_NULL;
        printf("%-22s %5lld %-9s %-9s %-16s ", col_text(st, 0),
               (long long)sqlite3_column_int64(st, 1),
               strcmp(col_text(st, 2), "approve") == 0 ? "approve" : "escalated",
               col_text(st, 3), open ? "-" : col_text(st, 4));
        if (open)
            printf("%-19s", "-");
        else
            put_time(stdout, sqlite3_column_int64(st, 5));
        printf(" %s\n", col_text(st, 6));
        n++;
    }
    sqlite3_finalize(st);
    if (read_done(j, rc) != 0)
        return 1;
    if (n == 0)
        printf(run_id ? "run %s has no approval or escalation\n"
                      : "no approval or escalation journaled%s\n", run_id ? run_id : "");
    return 0;
}

/* runs --prune DAYS -> the answers, prompts and replies, and review items of
 * every run that started more than DAYS days ago (and no process runs now)
 * are removed; the runs keep their line (status, cost, time, who decided)
 * and can no longer be resumed.  Removed bytes are overwritten
 * (secure_delete) and the file is compacted, so they are not left in free
 * pages or the write-ahead log. */
static int cmd_prune(fr_journal *j, const char *workflow, int64_t days)
{
    sqlite3 *db = fr_journal_db(j);
    int64_t cut = fr_wall_ms() - days * 86400000;
    sqlite3_stmt *sel = NULL, *calls = NULL, *count = NULL, *chunks = NULL, *items = NULL,
                 *mark = NULL;
    if (sqlite3_exec(db, "PRAGMA secure_delete = ON", NULL, NULL, NULL) != SQLITE_OK ||
        !fr_journal_exec(j, "BEGIN IMMEDIATE")) {
        fprintf(stderr, "error: journal %s: %s\n", fr_journal_path(j), fr_journal_errmsg(j));
        return 1;
    }
    bool ok = sqlite3_prepare_v2(db, "SELECT id FROM runs WHERE workflow = ?1 AND"
                                 " started_ms < ?2 AND pruned_ms IS NULL", -1, &sel,
                                 NULL) == SQLITE_OK;
    ok = ok && sqlite3_prepare_v2(db, "UPDATE calls SET output = NULL, detail = NULL"
                                  " WHERE run_id = ?1", -1, &calls, NULL) == SQLITE_OK;
    /* the entries of its chunks: output and detail (15, 16) become null */
    ok = ok && sqlite3_prepare_v2(db, "SELECT coalesce(sum(n), 0) FROM call_chunks"
                                  " WHERE run_id = ?1", -1, &count, NULL) == SQLITE_OK;
    ok = ok && sqlite3_prepare_v2(db, "UPDATE call_chunks SET body = (SELECT json_group_array("
                                  "json(json_replace(e.value, '$[15]', json('null'), '$[16]',"
                                  " json('null')))) FROM json_each(call_chunks.body) e)"
                                  " WHERE run_id = ?1", -1, &chunks, NULL) == SQLITE_OK;
    ok = ok && sqlite3_prepare_v2(db, "UPDATE approvals SET item_json = 'null'"
                                  " WHERE run_id = ?1", -1, &items, NULL) == SQLITE_OK;
    ok = ok && sqlite3_prepare_v2(db, "UPDATE runs SET pruned_ms = ?2 WHERE id = ?1", -1,
                                  &mark, NULL) == SQLITE_OK;
    int64_t runs = 0, answers = 0, review = 0, live = 0;
    if (ok) {
        sqlite3_bind_text(sel, 1, workflow, -1, SQLITE_STATIC);
        sqlite3_bind_int64(sel, 2, cut);
    }
    while (ok && sqlite3_step(sel) == SQLITE_ROW) {
        const char *id = col_text(sel, 0);
        if (fr_journal_run_live(j, id)) {            /* a process runs it: leave it be */
            live++;
            continue;
        }
        sqlite3_stmt *each[] = { calls, count, chunks, items, mark };
        for (int k = 0; ok && k < 5; k++) {
            sqlite3_reset(each[k]);
            sqlite3_bind_text(each[k], 1, id, -1, SQLITE_TRANSIENT);
            if (each[k] == mark)
                sqlite3_bind_int64(each[k], 2, fr_wall_ms());
            int rc = sqlite3_step(each[k]);
            ok = rc == SQLITE_DONE || (each[k] == count && rc == SQLITE_ROW);
            if (each[k] == calls)
                answers += sqlite3_changes(db);
            else if (each[k] == count)
                answers += sqlite3_column_int64(count, 0);
            else if (each[k] == items)
                review += sqlite3_changes(db);
        }
        runs++;
    }
    sqlite3_finalize(sel);
    sqlite3_finalize(calls);
    sqlite3_finalize(count);
    sqlite3_finalize(chunks);
    sqlite3_finalize(items);
    sqlite3_finalize(mark);
    if (!ok || !fr_journal_exec(j, "COMMIT")) {
        fprintf(stderr, "error: journal %s: pruning failed: %s\n", fr_journal_path(j),
                fr_journal_errmsg(j));
        fr_journal_exec(j, "ROLLBACK");
        return 1;
    }
    if (runs > 0 && (!fr_journal_exec(j, "VACUUM") ||
                     !fr_journal_exec(j, "PRAGMA wal_checkpoint(TRUNCATE)")))
        fprintf(stderr, "warning: journal %s: pruned, but not compacted: %s\n",
                fr_journal_path(j), fr_journal_errmsg(j));
    char day[16];
    time_t t = (time_t)(cut / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    if (runs == 0)
        printf("no run of %s started before %s (%lld day%s ago) is left to prune\n", workflow,
               day, (long long)days, days == 1 ? "" : "s");
    else
        printf("pruned %lld run%s of %s started before %s: %lld call%s and %lld review item%s"
               " removed; they can no longer be resumed\n", (long long)runs,
               runs == 1 ? "" : "s", workflow, day, (long long)answers, answers == 1 ? "" : "s",
               (long long)review, review == 1 ? "" : "s");
    if (live)
        printf("%lld run%s left alone: a process is running it\n", (long long)live,
               live == 1 ? "" : "s");
    return 0;
}

/* ---- show: what each call of a run sent and got back ------------------- */

/* Text under its label, indented by ind + 4 spaces, as it was (a prompt
 * keeps its lines); no label: the text alone. */
static void put_block_at(int ind, const char *label, const char *text)
{
    if (label)
        printf("%*s  %s:\n", ind, "", label);
    if (!text || !*text) {
        printf("%*s    (empty)\n", ind, "");
        return;
    }
    printf("%*s    ", ind, "");
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1])
            printf("%*s    ", ind, "");
    }
    if (text[strlen(text) - 1] != '\n')
        putchar('\n');
}

static void put_block(const char *label, const char *text)
{
    put_block_at(0, label, text);
}

static const char *jstr(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* One attempt of a call's detail, indented by ind more spaces. */
static void show_attempt(json_t *a, bool content, int ind, long long n)
{
    printf("%*s  attempt %lld: %s", ind, "", n > 0 ? n : (long long)json_integer_value(json_object_get(a, "n")),
           jstr(a, "outcome") ? jstr(a, "outcome") : "?");
    if (json_object_get(a, "status"))
        printf(", HTTP %lld", (long long)json_integer_value(json_object_get(a, "status")));
    if (jstr(a, "finish"))
        printf(", finish %s", jstr(a, "finish"));
    if (json_is_true(json_object_get(a, "repaired")))
        printf(", repaired");
    printf(", %.2fs, %lld in / %lld out, $%.4f\n",
           (double)json_integer_value(json_object_get(a, "ms")) / 1000,
           (long long)json_integer_value(json_object_get(a, "tokens_in")),
           (long long)json_integer_value(json_object_get(a, "tokens_out")),
           json_real_value(json_object_get(a, "usd")));
    if (jstr(a, "error"))
        printf("%*s    problem: %s\n", ind, "", jstr(a, "error"));
    if (content && jstr(a, "feedback"))
        put_block_at(ind, "told the model", jstr(a, "feedback"));
    if (content && (jstr(a, "reply") || strcmp(jstr(a, "outcome") ? jstr(a, "outcome") : "",
                                                "tool_calls") != 0))
        put_block_at(ind, "reply", jstr(a, "reply"));
}

/* name is one of prog's http operations (not an agent). */
static bool is_op(const fr_program *prog, const char *name)
{
    for (int i = 0; i < prog->nops; i++)
        if (strcmp(prog->ops[i]->name, name) == 0)
            return true;
    return false;
}

/* ---- a tool loop's turns ---- */

/* A loop's rows beside its call's own: turn n's model turn ('t') and its
 * tools' results ('r'), each {output, detail} and its usage. */
typedef struct loop {
    json_t *t, *r;                 /* [turn] -> {"out","detail"}, arrays (null: no row) */
    int attempts;                  /* of the 't' rows */
    int64_t in, out;               /* their tokens */
    double usd;                    /* their cost */
} loop;

static void put_at(json_t *arr, size_t n, json_t *v)
{
    while (json_array_size(arr) <= n)
        json_array_append_new(arr, json_null());
    json_array_set_new(arr, n, v);
}

static json_t *load_col(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? fr_json_loadb(t, strlen(t), 0, NULL) : NULL;
}

/* The rows of the loop of the call keyed `key` in run `id` (none: empty). */
static bool load_loop(fr_journal *j, const char *id, const char *key, loop *l)
{
    sqlite3_stmt *st;
    *l = (loop){ json_array(), json_array(), 0, 0, 0, 0 };
    const char *sql = "SELECT key, attempts, tokens_in, tokens_out, usd, output, detail FROM calls_all"
                      " WHERE run_id = ?1 AND substr(key, 1, length(?2) + 1) = ?2 || '#'"
                      " ORDER BY id";
    if (!l->t || !l->r || sqlite3_prepare_v2(fr_journal_db(j), sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
    size_t kn = strlen(key);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *k = col_text(st, 0) + kn;   /* "#t<n>" or "#r<n>" */
        char what = k[1];
        int n = atoi(k + 2);
        if ((what != 't' && what != 'r') || n < 0 || n > 100000)
            continue;
        json_t *row = json_pack("{s:o*, s:o*}", "out", load_col(st, 5), "detail", load_col(st, 6));
        if (!row)
            continue;
        put_at(what == 't' ? l->t : l->r, (size_t)n, row);
        if (what == 't') {
            l->attempts += sqlite3_column_int(st, 1);
            l->in += sqlite3_column_int64(st, 2);
            l->out += sqlite3_column_int64(st, 3);
            l->usd += sqlite3_column_double(st, 4);
        }
    }
    sqlite3_finalize(st);
    return true;
}

static void free_loop(loop *l)
{
    json_decref(l->t);
    json_decref(l->r);
}

/* A value as compact JSON on one line (a string as itself). */
static void put_json_line(json_t *v)
{
    if (json_is_string(v)) {
        printf("%s", json_string_value(v));
        return;
    }
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
    printf("%s", s ? s : "(none)");
    free(s);
}

/* Turn n's calls and their results. */
static void show_tool_calls(json_t *made, json_t *res, json_t *info)
{
    json_t *calls = json_object_get(made, "calls");
    json_t *results = json_object_get(res, "results");
    size_t i;
    json_t *tc;
    if (jstr(made, "text") && *jstr(made, "text"))
        put_block_at(2, "the model said", jstr(made, "text"));
    json_array_foreach(calls, i, tc) {
        json_t *r = json_array_get(results, i), *ri = json_array_get(info, i);
        printf("    tool call %zu: %s", i + 1, jstr(tc, "name") ? jstr(tc, "name") : "?");
        if (jstr(tc, "id"))
            printf(" (id %s)", jstr(tc, "id"));
        printf("\n      arguments: ");
        put_json_line(json_object_get(tc, "input"));
        printf("\n");
        if (!r) {
            printf("      result: (none journaled: the run stopped before the tools ended)\n");
            continue;
        }
        bool err = json_is_true(json_object_get(r, "error"));
        const char *et = jstr(ri, "error_type");
        printf("      %s", err ? "tool error" : "result");
        if (err && et)
            printf(" (%s)", et);
        if (json_object_get(ri, "ms"))
            printf(", %.2fs", (double)json_integer_value(json_object_get(ri, "ms")) / 1000);
        if (jstr(ri, "key") && *jstr(ri, "key"))
            printf(", its call %s", jstr(ri, "key"));
        printf(":\n");
        put_block_at(4, NULL, jstr(r, "content"));
    }
}

/* The turns of a loop: each turn's attempts (from its row, else from the
 * call's own detail: the last turn, or one no row was written for), the
 * model's tool calls with their arguments, and each call's result or
 * tool error. */
static void show_turns(loop *l, json_t *d, bool content)
{
    size_t nt = json_array_size(l->t), max = nt;
    long long seen = 0;
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(d, "attempts"), i, a) {
        json_int_t t = json_integer_value(json_object_get(a, "turn"));
        if (t >= 0 && (size_t)t + 1 > max)
            max = (size_t)t + 1;
    }
    for (size_t n = 0; n < max; n++) {
        json_t *trow = json_array_get(l->t, n), *rrow = json_array_get(l->r, n);
        json_t *made = json_object_get(trow, "out");
        json_t *att = json_object_get(json_object_get(trow, "detail"), "attempts");
        bool off = false;
        printf("  turn %zu:", n);
        if (n == 0)
            printf(" the prompt");
        else
            printf(" the prompt, the model's %zu turn%s and %s tools' results", n,
                   n == 1 ? "" : "s", n == 1 ? "its" : "their");
        json_array_foreach(att ? att : json_object_get(d, "attempts"), i, a)
            off |= json_is_true(json_object_get(a, "tools_off")) &&
                   json_integer_value(json_object_get(a, "turn")) == (json_int_t)n;
        printf("%s\n", off ? ", tools off (the bound is reached: answer now)" : " sent");
        if (att) {                 /* numbered across the turns (a process counts its own) */
            json_array_foreach(att, i, a)
                show_attempt(a, content, 2, ++seen);
        } else {
            json_array_foreach(json_object_get(d, "attempts"), i, a)
                if (json_integer_value(json_object_get(a, "turn")) == (json_int_t)n)
                    show_attempt(a, content, 2, ++seen);
        }
        if (!made && trow)
            continue;
        if (made && !att && n < nt)
            printf("    (its attempts are not in the journal: a flowc before show of turns)\n");
        if (made)
            show_tool_calls(made, json_object_get(rrow, "out"),
                            json_object_get(json_object_get(rrow, "detail"), "calls"));
    }
}

/* The tool calls of the run's loops, by their own journal key: "tool call N
 * of AGENT's turn T (key K)", for the calls' own entries. */
static json_t *tool_call_owners(fr_journal *j, const char *id)
{
    json_t *m = json_object();
    sqlite3_stmt *st;
    const char *sql = "SELECT key, agent, detail FROM calls_all WHERE run_id = ?1"
                      " AND key GLOB '*#r[0-9]*' AND detail IS NOT NULL";
    if (!m || sqlite3_prepare_v2(fr_journal_db(j), sql, -1, &st, NULL) != SQLITE_OK)
        return m;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *key = col_text(st, 0), *hash = strrchr(key, '#');
        json_t *d = load_col(st, 2), *c;
        size_t i;
        json_array_foreach(json_object_get(d, "calls"), i, c) {
            if (!jstr(c, "key") || !*jstr(c, "key"))
                continue;
            char what[FR_JKEY_MAX + 128];
            snprintf(what, sizeof what, "tool call %zu of %s's turn %s (its loop's call %.*s)",
                     i + 1, col_text(st, 1), hash + 2, (int)(hash - key), key);
            json_object_set_new(m, jstr(c, "key"), json_string(what));
        }
        json_decref(d);
    }
    sqlite3_finalize(st);
    return m;
}

/* One call: its line, then (with its detail) the prompts and the attempts,
 * a tool loop's turn by turn. */
static void show_call(fr_journal *j, const fr_program *prog, const char *id, sqlite3_stmt *st,
                      json_t *owners, json_t *looped)
{
    const char *agent = col_text(st, 0), *item = col_text(st, 1), *status = col_text(st, 4);
    json_t *d = load_col(st, 12);
    bool http = is_op(prog, agent);
    char key[FR_JKEY_MAX];
    snprintf(key, sizeof key, "%s", col_text(st, 10));
    size_t kn = strlen(key);
    bool unfinished = kn > 3 && strcmp(key + kn - 3, "#t0") == 0;   /* no row of its own */
    if (unfinished) {
        key[kn - 3] = '\0';
        status = "unfinished";
        json_decref(d);
        d = NULL;
    }
    loop l = { 0 };
    bool has_loop = false;
    if (!http && json_object_get(looped, key)) {
        has_loop = load_loop(j, id, key, &l) &&
                   (json_array_size(l.t) > 0 || json_array_size(l.r) > 0);
        if (!has_loop)
            free_loop(&l);
    }
    int attempts = (unfinished ? 0 : sqlite3_column_int(st, 5)) + (has_loop ? l.attempts : 0);
    int64_t in = (unfinished ? 0 : sqlite3_column_int64(st, 6)) + (has_loop ? l.in : 0);
    int64_t out = (unfinished ? 0 : sqlite3_column_int64(st, 7)) + (has_loop ? l.out : 0);
    double usd = (unfinished ? 0 : sqlite3_column_double(st, 8)) + (has_loop ? l.usd : 0);
    const char *model = jstr(d, "model");
    if (!model && has_loop)        /* a killed loop: its first turn's row says */
        model = jstr(json_object_get(json_array_get(l.t, 0), "detail"), "model");
    if (!model)
        model = "?";
    int ph = sqlite3_column_int(st, 2);
    printf("%s %s", http ? "http" : "call", agent);
    printf(*item ? " item %s" : " (the workflow's own call)", item);
    if (ph >= 0 && ph < prog->nphases)
        printf(", phase %s", prog->phases[ph].name);
    printf(", %s%s, %s after %d attempt%s", http ? "an http request" : "model ", http ? "" : model,
           status, attempts, attempts == 1 ? "" : "s");
    if (has_loop) {
        size_t nt = json_array_size(l.t), calls = 0;
        for (size_t i = 0; i < nt; i++)
            calls += json_array_size(json_object_get(json_object_get(json_array_get(l.t, i), "out"),
                                                     "calls"));
        printf(" in a tool loop of %zu tool call%s", calls, calls == 1 ? "" : "s");
    }
    printf(", %lld in / %lld out, $%.4f", (long long)in, (long long)out, usd);
    if (!unfinished)
        printf(", %.2fs", (double)sqlite3_column_int64(st, 9) / 1000);
    printf("\n  key: %s\n", key);
    if (jstr(owners, key))
        printf("  made as %s\n", jstr(owners, key));
    bool content = d && json_object_get(d, "prompt");
    if (content) {
        put_block("system", jstr(d, "system"));
        put_block("prompt", jstr(d, "prompt"));
    }
    size_t i;
    json_t *a;
    if (has_loop) {
        if (!content && json_array_size(l.t) > 0) {   /* a killed loop: its first turn's */
            json_t *a0 = json_array_get(json_object_get(json_object_get(json_array_get(l.t, 0),
                                                                        "detail"), "attempts"), 0);
            content = a0 && json_object_get(a0, "reply") != NULL;
        }
        show_turns(&l, d, content);
        free_loop(&l);
    } else {
        json_array_foreach(json_object_get(d, "attempts"), i, a)
            show_attempt(a, content, 0, 0);
    }
    if (jstr(d, "error"))
        printf("  error: %s\n", jstr(d, "error"));
    if (unfinished)
        printf("  answer: (none journaled: the run stopped in the loop; --resume goes on from"
               " its last journaled turn)\n");
    else if (sqlite3_column_type(st, 11) != SQLITE_NULL)
        put_block("answer", col_text(st, 11));
    else if (strcmp(status, "ok") == 0)
        printf("  answer: (removed by runs --prune)\n");
    if (!http && !content && (unfinished || sqlite3_column_type(st, 4) != SQLITE_NULL))
        printf("  (prompts and replies were not kept: run with --trace-content)\n");
    json_decref(d);
    printf("\n");
}

/* The keys of the run's calls that have rows of their own turns or tool
 * results ("#t<n>", "#r<n>" after the key), as a set: the others need no
 * look for them (one query for the run, not one a call). */
static json_t *looped_calls(fr_journal *j, const char *id)
{
    json_t *m = json_object();
    sqlite3_stmt *st;
    if (!m || sqlite3_prepare_v2(fr_journal_db(j), "SELECT DISTINCT substr(key, 1,"
                                 " instr(key, '#') - 1) FROM calls_all WHERE run_id = ?1"
                                 " AND instr(key, '#') > 0", -1, &st, NULL) != SQLITE_OK)
        return m;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    while (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(m, col_text(st, 0), json_true());
    sqlite3_finalize(st);
    return m;
}

/* The run's id: RUN, or its latest run for "last". */
static bool find_show_run(fr_journal *j, const char *workflow, const char *run, char *id)
{
    sqlite3_stmt *st;
    const char *sql = strcmp(run, "last") == 0
        ? "SELECT id FROM runs WHERE workflow = ?1 ORDER BY started_ms DESC, rowid DESC LIMIT 1"
        : "SELECT id FROM runs WHERE workflow = ?1 AND id = ?2";
    if (sqlite3_prepare_v2(fr_journal_db(j), sql, -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
    if (strcmp(run, "last") != 0)
        sqlite3_bind_text(st, 2, run, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    if (found)
        snprintf(id, FR_RUN_ID_MAX, "%s", col_text(st, 0));
    sqlite3_finalize(st);
    return found;
}

/* show RUN [--agent A] [--item N] -> every call of the run (or those of
 * agent A, of item N) with what it sent and got back. */
static int cmd_show(fr_journal *j, const fr_program *prog, const char *run, const char *agent,
                    const char *item)
{
    const char *workflow = prog->name;
    char id[FR_RUN_ID_MAX];
    sqlite3_stmt *st = NULL;
    if (!find_show_run(j, workflow, run, id)) {
        fprintf(stderr, "error: no run '%s' of %s in the journal %s (see: runs)\n", run,
                workflow, fr_journal_path(j));
        return 2;
    }
    char sql[1024];
    for (int old = 0; old < 2; old++) {     /* a journal of an older flowc has no detail */
        snprintf(sql, sizeof sql, "SELECT agent, item, phase, NULL, status, attempts,"
                 " tokens_in, tokens_out, usd, latency_ms, key, output, %s FROM calls_all"
                 " WHERE run_id = ?1 AND (instr(key, '#') = 0 OR (key GLOB '*#t0' AND"
                 " substr(key, 1, length(key) - 3) NOT IN (SELECT key FROM calls_all"
                 " WHERE run_id = ?1))) AND (?2 IS NULL OR agent = ?2) AND (?3 IS NULL OR"
                 " item = ?3) ORDER BY coalesce(finished_ms, 0) - latency_ms, id",
                 old ? "NULL" : "detail");
        if (sqlite3_prepare_v2(fr_journal_db(j), sql, -1, &st, NULL) == SQLITE_OK)
            break;
    }
    if (!st) {
        fprintf(stderr, "error: journal %s: %s\n", fr_journal_path(j), fr_journal_errmsg(j));
        return 1;
    }
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (agent)
        sqlite3_bind_text(st, 2, agent, -1, SQLITE_STATIC);
    if (item)
        sqlite3_bind_text(st, 3, item, -1, SQLITE_STATIC);
    printf("run %s\n\n", id);
    json_t *owners = tool_call_owners(j, id), *looped = looped_calls(j, id);
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        show_call(j, prog, id, st, owners, looped);
        n++;
    }
    sqlite3_finalize(st);
    json_decref(owners);
    json_decref(looped);
    if (read_done(j, rc) != 0)
        return 1;
    if (n == 0) {
        fprintf(stderr, "error: run %s has no call%s%s%s%s%s\n", id, agent ? " of agent '" : "",
                agent ? agent : "", agent ? "'" : "", item ? " for item " : "", item ? item : "");
        return 2;
    }
    return 0;
}

/* review -> each run with undecided items, and the items, numbered. */
static int cmd_review(fr_journal *j, const char *workflow)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(fr_journal_db(j),
        "SELECT a.run_id, a.n, a.kind, a.title, a.item_json, a.item, r.status"
        " FROM approvals a JOIN runs r ON r.id = a.run_id"
        " WHERE r.workflow = ?1 AND a.decision IS NULL ORDER BY r.started_ms, a.run_id, a.n",
        -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "error: journal %s: %s\n", fr_journal_path(j), fr_journal_errmsg(j));
        return 1;
    }
    sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
    char last[FR_RUN_ID_MAX] = "";
    int approvals = 0, escalations = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (strcmp(last, col_text(st, 0)) != 0) {
            snprintf(last, sizeof last, "%s", col_text(st, 0));
            printf("run %s (%s)\n", last, col_text(st, 6));
        }
        bool approve = strcmp(col_text(st, 2), "approve") == 0;
        printf("  [%lld] %s: %s\n      %s\n", (long long)sqlite3_column_int64(st, 1),
               approve ? "approve" : "escalated", col_text(st, 3), col_text(st, 4));
        approve ? approvals++ : escalations++;
    }
    sqlite3_finalize(st);
    if (read_done(j, rc) != 0)
        return 1;
    const char *self = self_name ? self_name : workflow;
    if (approvals + escalations == 0)
        printf("nothing waiting for review\n");
    if (approvals)
        printf("%d item%s wait%s for a decision before --resume: %s approve RUN_ID --all |"
               " --item N | --reject N\n", approvals, approvals == 1 ? "" : "s",
               approvals == 1 ? "s" : "", self);
    if (escalations)
        printf("%d escalated item%s for a person (the run does not wait for them); mark them"
               " handled with: %s approve RUN_ID --item N (or --all)\n", escalations,
               escalations == 1 ? "" : "s", self);
    return 0;
}

/* The decisions asked on the command line. */
typedef struct jdecide {
    bool all;                      /* --all: approve every undecided item */
    int64_t *ns;                   /* the item numbers */
    int *approve;                  /* 1 --item, 0 --reject, per number */
    int count;                     /* numbers given */
    const char *by;                /* --by, else $USER */
} jdecide;

static bool set_decision(fr_journal *j, const char *run_id, int64_t n, bool ok,
                         const char *by)
{
    sqlite3_stmt *st;
    /* an escalation is not approved or rejected: a person handled it */
    if (sqlite3_prepare_v2(fr_journal_db(j), "UPDATE approvals SET decided_by = ?4, decided_ms = ?5,"
                           " decision = CASE kind WHEN 'approve' THEN ?3 ELSE 'handled' END"
                           " WHERE run_id = ?1 AND (n = ?2 OR (?2 < 0 AND decision IS NULL))",
                           -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, n);
    sqlite3_bind_text(st, 3, ok ? "approved" : "rejected", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, fr_wall_ms());
    bool done = sqlite3_step(st) == SQLITE_DONE && (n < 0 || sqlite3_changes(fr_journal_db(j)) == 1);
    sqlite3_finalize(st);
    if (!done && n >= 0)
        fprintf(stderr, "error: run %s has no item %lld (see: review)\n", run_id, (long long)n);
    return done;
}

static void count_waiting(fr_journal *j, const char *run_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(fr_journal_db(j), "SELECT count(*) FILTER (WHERE decision = 'approved'),"
                           " count(*) FILTER (WHERE decision = 'rejected'),"
                           " count(*) FILTER (WHERE kind = 'approve' AND decision IS NULL),"
                           " count(*) FILTER (WHERE kind <> 'approve' AND decision IS NOT NULL),"
                           " count(*) FILTER (WHERE kind <> 'approve' AND decision IS NULL)"
                           " FROM approvals WHERE run_id = ?1", -1, &st, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        printf("run %s: %lld approved, %lld rejected, %lld waiting", run_id,
               (long long)sqlite3_column_int64(st, 0), (long long)sqlite3_column_int64(st, 1),
               (long long)sqlite3_column_int64(st, 2));
        if (sqlite3_column_int64(st, 3) + sqlite3_column_int64(st, 4) > 0)
            printf("; escalations: %lld handled, %lld open",
                   (long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4));
        printf("\n");
    }
    sqlite3_finalize(st);
}

static bool run_exists(fr_journal *j, const char *workflow, const char *run_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(fr_journal_db(j), "SELECT 1 FROM runs WHERE id = ?1 AND workflow = ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, workflow, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    return found;
}

/* approve RUN_ID -> the decisions, in one transaction. */
static int cmd_approve(fr_journal *j, const char *workflow, const char *run_id,
                       const jdecide *d)
{
    if (!run_exists(j, workflow, run_id)) {
        fprintf(stderr, "error: no run '%s' of %s in the journal %s\n", run_id, workflow,
                fr_journal_path(j));
        return 2;
    }
    if (!fr_journal_exec(j, "BEGIN IMMEDIATE"))
        return 1;
    bool ok = true;
    for (int i = 0; ok && i < d->count; i++)
        ok = set_decision(j, run_id, d->ns[i], d->approve[i], d->by);
    if (ok && d->all)
        ok = set_decision(j, run_id, -1, true, d->by);
    if (!ok) {
        fr_journal_exec(j, "ROLLBACK");
        return 2;
    }
    if (!fr_journal_exec(j, "COMMIT"))
        return 1;
    count_waiting(j, run_id);
    return 0;
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s runs [--cost [--last N] | --audit [RUN_ID] | --prune DAYS]"
                    " [--journal PATH]\n"
                    "       %s show RUN|last [--agent NAME] [--item N] [--journal PATH]\n"
                    "       %s review [--journal PATH]\n"
                    "       %s approve RUN_ID [--all | --item N ... | --reject N ...]"
                    " [--by NAME] [--journal PATH]\n", prog, prog, prog, prog);
    return 2;
}

/* BINARY CMD --help: what the subcommand does and its flags, on stdout. */
static int help(const fr_program *prog, const char *cmd, const char *self)
{
    if (strcmp(cmd, "runs") == 0)
        printf("usage: %s runs [--cost [--last N] | --audit [RUN_ID] | --prune DAYS]"
               " [--journal PATH]\n\n"
               "One line per run of %s in the journal: its id, its status (running; stopped:\n"
               "its process died, finish it with --resume; waiting for approval; budget;\n"
               "failed; done), when it started (UTC), the time processes spent on it, the\n"
               "dollars and tokens it spent, the calls journaled and the approvals pending.\n"
               "With --cost: what each run paid, at the standard price and at the batch\n"
               "price, what the prompt cache saved, and its dollars in each phase, with the\n"
               "mean of each column (--last N: the N latest runs).\n"
               "With --audit: every approval and escalation, what was decided, by whom and\n"
               "when (UTC), and those still open (RUN_ID: one run's).\n"
               "With --prune DAYS: removes the answers, prompts, replies and review items of\n"
               "the runs that started more than DAYS days ago (their lines, costs and\n"
               "decisions stay; they can no longer be resumed), and compacts the file.\n\n"
               "  --cost         the cost table\n"
               "  --last N       with --cost, only the N latest runs\n"
               "  --audit        who decided what, and when\n"
               "  --prune DAYS   remove older runs' answers\n",
               self, prog->name);
    else if (strcmp(cmd, "show") == 0)
        printf("usage: %s show RUN|last [--agent NAME] [--item N] [--journal PATH]\n\n"
               "What each call of run RUN (last: the latest run) sent and got back: its\n"
               "agent, item, model, outcome, tokens, cost and time, each attempt's outcome\n"
               "and problem, and the validated answer; for a run made with --trace-content,\n"
               "also the rendered system prompt and prompt, what a retry told the model,\n"
               "and the raw reply of every attempt (failed and repaired ones included).\n\n"
               "  --agent NAME   only the calls of this agent (or http operation)\n"
               "  --item N       only the calls of this item (its path: 3, or 2.1)\n",
               self);
    else if (strcmp(cmd, "review") == 0)
        printf("usage: %s review [--journal PATH]\n\n"
               "The items of every run of %s that wait for a person, numbered per run: the\n"
               "items of approve() that wait for a decision (the run waits for them), and\n"
               "escalated items (the run does not wait; mark them handled with approve).\n",
               self, prog->name);
    else
        printf("usage: %s approve RUN_ID (--all | --item N ... | --reject N ...) [--by NAME]\n"
               "       [--journal PATH]\n\n"
               "Decides items of run RUN_ID that `%s review` lists, in one transaction;\n"
               "once none waits, `%s --resume RUN_ID` goes on with the approved ones.\n"
               "Each decision records who made it and when (see: runs --audit).\n\n"
               "  --all          approve every undecided item (an escalation: handled)\n"
               "  --item N       approve item N (repeatable)\n"
               "  --reject N     reject item N (repeatable)\n"
               "  --by NAME      who decided (default $USER)\n", self, self, self);
    printf("  --journal PATH the run journal (default .flow/%s.db)\n"
           "  --help         show this help\n", prog->name);
    return 0;
}

/* --help or -h among the arguments. */
static bool wants_help(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static bool parse_number(const char *s, int64_t *n)
{
    char *end;
    if (!s)
        return false;
    long long v = strtoll(s, &end, 10);
    *n = v;
    return *s && !*end && v > 0;
}

/* What the subcommand's flags asked. */
typedef struct jflags {
    const char *journal;           /* --journal PATH */
    int64_t cost_last;             /* runs --cost: its --last N (0: all), -1 not asked */
    bool audit;                    /* runs --audit */
    const char *audit_run;         /* runs --audit RUN_ID */
    int64_t prune_days;            /* runs --prune DAYS, -1 not asked */
    const char *agent;             /* show --agent */
    const char *item;              /* show --item */
} jflags;

/* A flag's value (the next argument), or an error naming the flag. */
static const char *next_value(int argc, char **argv, int *i, const char *what)
{
    if (*i + 1 < argc && argv[*i + 1][0] != '-')
        return argv[++*i];
    fprintf(stderr, "error: %s needs %s\n", argv[*i], what);
    return NULL;
}

/* One flag of runs or show; false on a bad one (said why). */
static bool parse_runs_flag(const char *cmd, int argc, char **argv, int *i, jflags *f)
{
    const char *a = argv[*i];
    bool runs = strcmp(cmd, "runs") == 0, show = strcmp(cmd, "show") == 0;
    if (runs && strcmp(a, "--cost") == 0) {
        if (f->cost_last < 0)
            f->cost_last = 0;
    } else if (runs && strcmp(a, "--last") == 0) {
        if (!parse_number(*i + 1 < argc ? argv[*i + 1] : NULL, &f->cost_last)) {
            fprintf(stderr, "error: --last needs a number of runs\n");
            return false;
        }
        ++*i;
    } else if (runs && strcmp(a, "--audit") == 0) {
        f->audit = true;
        if (*i + 1 < argc && argv[*i + 1][0] != '-')
            f->audit_run = argv[++*i];
    } else if (runs && strcmp(a, "--prune") == 0) {
        const char *v = next_value(argc, argv, i, "a number of days (0: every run)");
        char *end;
        long long d = v ? strtoll(v, &end, 10) : -1;
        if (!v || !*v || *end || d < 0 || d > 1000000) {
            if (v)
                fprintf(stderr, "error: --prune needs a number of days (0: every run), got"
                        " '%s'\n", v);
            return false;
        }
        f->prune_days = d;
    } else if (show && strcmp(a, "--agent") == 0) {
        return (f->agent = next_value(argc, argv, i, "an agent's name")) != NULL;
    } else if (show && strcmp(a, "--item") == 0) {
        return (f->item = next_value(argc, argv, i, "an item's path (3, or 2.1)")) != NULL;
    } else {
        fprintf(stderr, "error: unknown argument '%s'\n", a);
        return false;
    }
    return true;
}

/* Parses the flags after the subcommand (and RUN_ID); false on a bad one. */
static bool parse_flags(const char *cmd, int argc, char **argv, jflags *f, jdecide *d)
{
    bool decide = strcmp(cmd, "approve") == 0, by = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool twice = (strcmp(a, "--journal") == 0 && f->journal) ||
                     (decide && strcmp(a, "--all") == 0 && d->all) ||
                     (decide && strcmp(a, "--by") == 0 && by) ||
                     (strcmp(a, "--agent") == 0 && f->agent) ||
                     (strcmp(a, "--item") == 0 && f->item) ||
                     (strcmp(a, "--prune") == 0 && f->prune_days >= 0);
        if (twice) {                         /* a second value would silently win */
            fprintf(stderr, "error: %s is given twice\n", a);
            return false;
        }
        if (strcmp(a, "--journal") == 0 && i + 1 < argc) {
            f->journal = argv[++i];
        } else if (decide && strcmp(a, "--all") == 0) {
            d->all = true;
        } else if (decide && strcmp(a, "--by") == 0 && i + 1 < argc) {
            d->by = argv[++i];
            by = true;
        } else if (decide && (strcmp(a, "--item") == 0 || strcmp(a, "--reject") == 0)) {
            if (!parse_number(i + 1 < argc ? argv[i + 1] : NULL, &d->ns[d->count])) {
                fprintf(stderr, "error: %s needs an item number (see: review)\n", a);
                return false;
            }
            d->approve[d->count++] = a[2] == 'i';
            i++;
        } else if (decide || !parse_runs_flag(cmd, argc, argv, &i, f)) {
            if (decide)
                fprintf(stderr, "error: unknown argument '%s'\n", a);
            return false;
        }
    }
    if (decide && !d->all && d->count == 0) {
        fprintf(stderr, "error: approve needs --all, --item N or --reject N\n");
        return false;
    }
    if ((f->audit ? 1 : 0) + (f->prune_days >= 0) + (f->cost_last >= 0) > 1) {
        fprintf(stderr, "error: runs takes one of --cost, --audit and --prune\n");
        return false;
    }
    return true;
}

/* The subcommand on an open journal. */
static int dispatch(fr_journal *j, const fr_program *prog, const char *cmd, const char *run_id,
                    const jflags *f, const jdecide *d)
{
    if (strcmp(cmd, "approve") == 0)
        return cmd_approve(j, prog->name, run_id, d);
    if (strcmp(cmd, "show") == 0)
        return cmd_show(j, prog, run_id, f->agent, f->item);
    if (strcmp(cmd, "review") == 0)
        return cmd_review(j, prog->name);
    if (f->cost_last >= 0)
        return cmd_cost(j, prog, f->cost_last);
    if (f->audit)
        return cmd_audit(j, prog->name, f->audit_run);
    if (f->prune_days >= 0)
        return cmd_prune(j, prog->name, f->prune_days);
    return cmd_runs(j, prog->name);
}

static int run_command(const fr_program *prog, const char *cmd, int argc, char **argv,
                       const char *self)
{
    bool decide = strcmp(cmd, "approve") == 0, show = strcmp(cmd, "show") == 0;
    const char *run_id = NULL;
    jdecide d = { false, NULL, NULL, 0, getenv("USER") ? getenv("USER") : "unknown" };
    jflags f = { .cost_last = -1, .prune_days = -1 };
    if (decide || show) {
        if (argc < 1 || argv[0][0] == '-')
            return usage(self);
        run_id = argv[0];
        argc--, argv++;
    }
    d.ns = fr_calloc((size_t)argc + 1, sizeof *d.ns);
    d.approve = fr_calloc((size_t)argc + 1, sizeof *d.approve);
    int rc = 2;
    if (d.ns && d.approve && parse_flags(cmd, argc, argv, &f, &d)) {
        bool writes = decide || f.prune_days >= 0;
        char *path = f.journal ? fr_strdup(f.journal) : fr_journal_default_path(prog->name);
        fr_buf err = { 0 };
        bool exists = path && access(path, F_OK) == 0;
        fr_journal *j = !exists ? NULL : writes ? fr_journal_open(path, &err)
                                                : fr_journal_open_ro(path, &err);
        if (path && !exists) {
            bool bad = decide || show;
            fprintf(bad ? stderr : stdout, "%sno journal at %s: no run journaled here yet\n",
                    bad ? "error: " : "", path);
            rc = bad ? 2 : 0;
        } else if (!j) {
            fprintf(stderr, "error: %s\n", err.s ? err.s : "out of memory");
            rc = 1;
        } else {
            rc = dispatch(j, prog, cmd, run_id, &f, &d);
        }
        fr_journal_close(j);
        fr_buf_free(&err);
        fr_free(path);
    }
    fr_free(d.ns);
    fr_free(d.approve);
    return rc;
}

int fr_journal_command(const fr_program *prog, int argc, char **argv)
{
    self_name = argc > 0 ? argv[0] : NULL;
    if (argc < 2)
        return -1;
    const char *cmd = argv[1];
    if (strcmp(cmd, "report") == 0)
        return fr_report_command(prog, argc, argv);     /* fr_report.c */
    if (strcmp(cmd, "runs") != 0 && strcmp(cmd, "review") != 0 && strcmp(cmd, "approve") != 0 &&
        strcmp(cmd, "show") != 0)
        return -1;
    if (wants_help(argc - 2, argv + 2))
        return help(prog, cmd, argv[0]);
    return run_command(prog, cmd, argc - 2, argv + 2, argv[0]);
}
