/*
 * rt_journal.c: self-test of the run journal and the trace writer, linked
 * against libflowrt and driven by tests/sh/journal_unit.sh.
 *
 * usage: rt_journal selftest DIR   (a scratch directory; the journal goes in
 *                                   DIR/a/b/)
 *        rt_journal [flags]         a workflow binary, as flowc would build it
 *
 * Each check prints "ok - what" or "not ok - what: detail"; the exit status
 * is the number of failed checks (0: all passed).
 *
 * The workflow (for tests/sh/journal_*.sh and bench/journal.sh), written by
 * hand against flowrt.h the way generated code uses it:
 *
 *   workflow jwf(n: int = 20, conc: int = 8, gate: bool = false,
 *                real: bool = false, esc: int = 0) -> list<Row> {
 *     budget { usd: $JWF_BUDGET_USD, time: $JWF_BUDGET_TIME_MS ms }  // none when unset
 *     phase load { let xs = [In { id: i, name: "item-i" } for i in 0..n] }
 *     phase rate { let rs = parallel for x in xs (concurrency: conc) {
 *                    if esc > 0 and x.id % esc == 0 { escalate(x, "needs a look") }
 *                    let a = rate(x) [using real_model if real]
 *                    Row { id: x.id, word: a.word, score: a.score } } }
 *     phase gate { if gate { rs = approve(rs, "ship these?") } }
 *     return rs
 *   }
 */
#include "fr_internal.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
static char dir[512];

static void check(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void check(bool ok, const char *what, const char *fmt, ...)
{
    if (ok) {
        printf("ok - %s\n", what);
        return;
    }
    va_list ap;
    printf("not ok - %s: ", what);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    failures++;
}

static const fr_phase phases[2] = { { "load", FR_NO_BUDGET }, { "enrich", FR_NO_BUDGET } };
static const fr_program prog = { .name = "wf", .source_file = "wf.flow",
                                 .source_hash = "aaaa", .nphases = 2, .phases = phases };

static char *jpath(void)
{
    static char p[600];
    snprintf(p, sizeof p, "%s/a/b/wf.db", dir);
    return p;
}

/* sha256: the FIPS 180-4 examples. */
static void test_sha(void)
{
    char h[65];
    fr_sha256_hex("abc", 3, h);
    check(strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0,
          "sha256 of abc", "%s", h);
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    fr_sha256_hex(two, strlen(two), h);
    check(strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0,
          "sha256 of the two-block example", "%s", h);
    fr_sha256_hex("", 0, h);
    check(strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
          "sha256 of nothing", "%s", h);
}

enum { NTHREADS = 8, PER_THREAD = 250 };

typedef struct worker {
    fr_journal *j;                 /* shared journal */
    int id;                        /* thread number */
    int failed;                    /* records that did not commit */
} worker;

static void fill_call(fr_jcall *c, char *item, size_t cap, int t, int i)
{
    memset(c, 0, sizeof *c);
    snprintf(item, cap, "%d.%d", t, i);
    c->agent = "enrich";
    c->site = 1;
    c->item = item;
    c->seq = 0;
    c->phase = 1;
    c->model = "mock-model";
}

static void *work(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        fr_jcall c;
        char item[32], prompt[64], out[64];
        fill_call(&c, item, sizeof item, w->id, i);
        snprintf(prompt, sizeof prompt, "prompt %d %d", w->id, i);
        fr_journal_key(&c, "sys", prompt);
        w->failed += !fr_journal_reserve(w->j, &c, 0.01, 100);
        snprintf(out, sizeof out, "{\"t\":%d,\"i\":%d}", w->id, i);
        c.output = out;
        c.tokens_in = 10;
        c.tokens_out = 5;
        c.usd = 0.001;
        c.attempts = 1;
        w->failed += !fr_journal_record(w->j, &c);
    }
    return NULL;
}

/* Many threads record at once; every record commits. */
static void test_concurrent_records(void)
{
    fr_buf err = { 0 };
    fr_journal *j = fr_journal_open(jpath(), &err);
    check(j != NULL, "open creates the directories and the file", "%s", err.s);
    if (!j)
        exit(1);
    check(fr_journal_begin(j, "wf", "aaaa", "{\"min_intent\":0.5,\"file\":\"x\"}", &err),
          "begin a run", "%s", err.s);
    check(strlen(fr_journal_run_id(j)) == 20, "run id has its form", "%s",
          fr_journal_run_id(j));
    pthread_t t[NTHREADS];
    worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){ j, i, 0 };
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    int failed = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        failed += w[i].failed;
    }
    check(failed == 0, "concurrent reserve/record all commit", "%d failed", failed);
    /* one reservation left in flight, as a kill would leave it */
    fr_jcall c;
    char item[32];
    fill_call(&c, item, sizeof item, 99, 0);
    fr_journal_key(&c, "sys", "in flight");
    fr_journal_reserve(j, &c, 0.5, 1000);
    fr_journal_close(j);
    fr_buf_free(&err);
}

/* Resume: refusals first, then the answers and the prior spend. */
static void test_resume(void)
{
    fr_buf err = { 0 };
    fr_journal *j = fr_journal_open(jpath(), &err);
    bool ok = fr_journal_resume(j, "wf", NULL, "bbbb", "{\"min_intent\":0.5,\"file\":\"x\"}",
                                false, &err);
    check(!ok && strstr(err.s, "the workflow changed") && strstr(err.s, "--force"),
          "resume refuses a changed source", "%s", err.s);
    err.len = 0;
    ok = fr_journal_resume(j, "wf", NULL, "aaaa", "{\"min_intent\":0.7,\"file\":\"x\"}",
                           false, &err);
    check(!ok && strstr(err.s, "--min-intent was 0.5, now 0.7"),
          "resume refuses changed args and names them", "%s", err.s);
    err.len = 0;
    ok = fr_journal_resume(j, "wf", "nope", "aaaa", "{}", false, &err);
    check(!ok && strstr(err.s, "no run 'nope'"), "resume of an unknown run id", "%s", err.s);
    err.len = 0;
    ok = fr_journal_resume(j, "wf", NULL, "aaaa", "{\"file\":\"x\",\"min_intent\":0.5}",
                           false, &err);
    check(ok, "resume with the same source and args (key order ignored)", "%s", err.s);

    int hits = 0, right = 0;
    for (int t = 0; t < NTHREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            fr_jcall c;
            char item[32], prompt[64];
            fill_call(&c, item, sizeof item, t, i);
            snprintf(prompt, sizeof prompt, "prompt %d %d", t, i);
            fr_journal_key(&c, "sys", prompt);
            json_t *v = fr_journal_lookup(j, &c);
            hits += v != NULL;
            right += v && json_integer_value(json_object_get(v, "t")) == t &&
                     json_integer_value(json_object_get(v, "i")) == i;
            json_decref(v);
        }
    check(hits == NTHREADS * PER_THREAD && right == hits, "every recorded call is answered",
          "%d hits, %d right", hits, right);
    fr_jcall c;
    char item[32];
    fill_call(&c, item, sizeof item, 0, 0);
    fr_journal_key(&c, "sys", "prompt 0 0 changed");
    json_t *miss = fr_journal_lookup(j, &c);
    check(miss == NULL, "a changed input misses", "hit");
    json_decref(miss);
    fill_call(&c, item, sizeof item, 99, 0);
    fr_journal_key(&c, "sys", "in flight");
    check(fr_journal_lookup(j, &c) == NULL, "a reserved call is not an answer", "hit");

    double usd;
    int64_t tok;
    fr_journal_prior_spend(j, -1, &usd, &tok);
    double want = NTHREADS * PER_THREAD * 0.001 + 0.5;
    check(usd > want - 1e-6 && usd < want + 1e-6 && tok == NTHREADS * PER_THREAD * 15 + 1000,
          "prior spend counts results and the reservation in flight", "%f usd %lld tokens",
          usd, (long long)tok);
    fr_journal_prior_spend(j, 0, &usd, &tok);
    check(usd == 0 && tok == 0, "prior spend of a phase without calls", "%f", usd);

    /* the call in flight is made again: its old hold stays counted (lost) */
    fr_journal_reserve(j, &c, 0.5, 1000);
    c.output = "{}";
    c.usd = 0.25;
    c.tokens_in = 300;
    fr_journal_record(j, &c);
    fr_journal_prior_spend(j, -1, &usd, &tok);
    want = NTHREADS * PER_THREAD * 0.001 + 0.5 + 0.25;
    check(usd > want - 1e-6 && usd < want + 1e-6, "a crashed request's hold stays spent",
          "%f", usd);
    fr_journal_close(j);
    fr_buf_free(&err);
}

static int command(const char *a, const char *b, const char *c, const char *d)
{
    const char *in[4] = { a, b, c, d };
    char *argv[8] = { "wf" };
    int n = 1;
    for (int i = 0; i < 4 && in[i]; i++)
        argv[n++] = (char *)in[i];
    argv[n++] = "--journal";
    argv[n++] = jpath();
    fflush(stdout);
    return fr_journal_command(&prog, n, argv);
}

/* approve(): pending, decided by the command, read back. */
static void test_approvals(void)
{
    fr_buf err = { 0 };
    fr_journal *j = fr_journal_open(jpath(), &err);
    fr_journal_resume(j, "wf", NULL, "aaaa", "{\"min_intent\":0.5,\"file\":\"x\"}", false,
                      &err);
    char run[FR_RUN_ID_MAX];
    snprintf(run, sizeof run, "%s", fr_journal_run_id(j));
    char *items[3] = { "{\"id\":\"a\"}", "{\"id\":\"b\"}", "{\"id\":\"c\"}" };
    int d[3];
    bool ok = fr_journal_approvals(j, 7, "", "send these?", 3, items, d, &err);
    check(ok && d[0] == -1 && d[1] == -1 && d[2] == -1, "approve queues items as waiting",
          "%s", err.s);
    ok = fr_journal_escalate(j, "wf.flow:3:5", "4", "{\"id\":\"z\"}", "looks odd") &&
         fr_journal_escalate(j, "wf.flow:3:5", "4", "{\"id\":\"z\"}", "looks odd");
    check(ok, "escalate queues (twice is once)", "failed");
    check(command("review", NULL, NULL, NULL) == 0, "review runs", "bad status");
    check(command("approve", run, "--item", "1") == 0, "approve --item 1", "bad status");
    check(command("approve", run, "--reject", "2") == 0, "approve --reject 2", "bad status");
    check(command("approve", run, "--item", "99") == 2, "approve of a missing item fails",
          "bad status");
    check(command("approve", "nope", "--all", NULL) == 2, "approve of a missing run fails",
          "bad status");
    check(command("approve", run, NULL, NULL) == 2, "approve needs a decision", "bad status");
    ok = fr_journal_approvals(j, 7, "", "send these?", 3, items, d, &err);
    check(ok && d[0] == 1 && d[1] == 0 && d[2] == -1, "decisions read back",
          "%d %d %d", d[0], d[1], d[2]);
    check(command("approve", run, "--all", NULL) == 0, "approve --all", "bad status");
    ok = fr_journal_approvals(j, 7, "", "send these?", 3, items, d, &err);
    check(ok && d[0] == 1 && d[1] == 0 && d[2] == 1, "--all decides only the waiting ones",
          "%d %d %d", d[0], d[1], d[2]);
    items[2] = "{\"id\":\"c2\"}";
    fr_journal_approvals(j, 7, "", "send these?", 3, items, d, &err);
    check(d[2] == -1, "a changed item waits again", "%d", d[2]);
    check(fr_journal_end(j, "done", 1.0, 100, 0), "end the run", "failed");
    fr_journal_close(j);

    j = fr_journal_open(jpath(), &err);
    err.len = 0;
    ok = fr_journal_resume(j, "wf", run, "aaaa", "{\"min_intent\":0.5,\"file\":\"x\"}",
                           false, &err);
    check(!ok && strstr(err.s, "already finished"), "a finished run is not resumed", "%s",
          err.s);
    err.len = 0;
    ok = fr_journal_resume(j, "wf", NULL, "aaaa", "{}", false, &err);
    check(!ok && strstr(err.s, "no unfinished run"), "no unfinished run left", "%s", err.s);
    check(command("runs", NULL, NULL, NULL) == 0, "runs lists", "bad status");
    fr_journal_close(j);
    fr_buf_free(&err);
}

static void test_integrity(void)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    sqlite3_open(jpath(), &db);
    sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    bool ok = sqlite3_step(st) == SQLITE_ROW &&
              strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    check(ok, "integrity_check", "%s", ok ? "" : (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A journal as version 1 of the schema wrote it (the fixture for migration). */
static const char schema_v1[] =
    "CREATE TABLE runs("
    " id TEXT PRIMARY KEY, workflow TEXT NOT NULL, source_hash TEXT NOT NULL,"
    " args TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER,"
    " status TEXT NOT NULL, usd REAL NOT NULL DEFAULT 0,"
    " tokens INTEGER NOT NULL DEFAULT 0, resumes INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX runs_by_workflow ON runs(workflow, started_ms);"
    "CREATE TABLE calls("
    " run_id TEXT NOT NULL, key TEXT NOT NULL, agent TEXT NOT NULL,"
    " site INTEGER NOT NULL, item TEXT NOT NULL, seq INTEGER NOT NULL,"
    " phase INTEGER NOT NULL, model TEXT, input_hash TEXT NOT NULL,"
    " output TEXT, status TEXT NOT NULL,"
    " tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,"
    " usd REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " latency_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER,"
    " held_usd REAL NOT NULL DEFAULT 0, held_tokens INTEGER NOT NULL DEFAULT 0,"
    " lost_usd REAL NOT NULL DEFAULT 0, lost_tokens INTEGER NOT NULL DEFAULT 0,"
    " owner INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(run_id, key)) WITHOUT ROWID;"
    "CREATE TABLE approvals("
    " run_id TEXT NOT NULL, n INTEGER NOT NULL, origin TEXT NOT NULL,"
    " item TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,"
    " title TEXT NOT NULL, item_json TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " decision TEXT, decided_by TEXT, decided_ms INTEGER,"
    " PRIMARY KEY(run_id, n), UNIQUE(run_id, origin, item, idx));"
    "PRAGMA user_version = 1;";

/* An old journal is migrated when opened, and its runs still resume. */
/* A journal's schema as text: every column of every table, then its
 * indexes and views by name (NULL on error; malloc'd). */
static char *schema_text(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    fr_buf b = { 0 };
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT m.name || '.' || p.name || ' ' || p.type || ' ' ||"
                           " p.\"notnull\" || ' ' || ifnull(p.dflt_value, '-') || ' ' || p.pk"
                           " FROM sqlite_master m, pragma_table_info(m.name) p"
                           " WHERE m.type = 'table' UNION ALL SELECT type || ' ' || name"
                           " FROM sqlite_master WHERE type IN ('index', 'view') ORDER BY 1",
                           -1, &st, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    while (sqlite3_step(st) == SQLITE_ROW)
        fr_buf_printf(&b, "%s; ", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    char *r = b.s ? strdup(b.s) : NULL;
    fr_buf_free(&b);
    return r;
}

static void test_migrate(void)
{
    char path[600];
    sqlite3 *db;
    snprintf(path, sizeof path, "%s/v1.db", dir);
    sqlite3_open(path, &db);
    sqlite3_exec(db, schema_v1, NULL, NULL, NULL);
    sqlite3_exec(db, "INSERT INTO runs(id, workflow, source_hash, args, started_ms, status)"
                 " VALUES('old-run', 'wf', 'aaaa', '{}', 0, 'running')", NULL, NULL, NULL);
    sqlite3_close(db);
    fr_buf err = { 0 };
    fr_journal *j = fr_journal_open(path, &err);
    bool ok = j && fr_journal_resume(j, "wf", NULL, "aaaa", "{}", false, &err);
    check(ok && strcmp(fr_journal_run_id(j), "old-run") == 0 &&
          fr_journal_prior_active_ms(j) == 0, "a version 1 journal is migrated and resumes",
          "%s", err.s ? err.s : "");
    fr_journal_close(j);
    sqlite3_open(path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    check(v == 9, "migrated to version 9", "version %d", v);
    /* a fresh journal is made at once: the same tables, columns, indexes
     * and views as the migrations make */
    char fresh[600];
    snprintf(fresh, sizeof fresh, "%s/fresh.db", dir);
    fr_journal_close(fr_journal_open(fresh, &err));
    char *a = schema_text(path), *b = schema_text(fresh);
    check(a && b && strcmp(a, b) == 0, "a fresh journal has the migrated schema",
          "\nmigrated: %s\nfresh:    %s", a ? a : "-", b ? b : "-");
    free(a), free(b);
    fr_buf_free(&err);
}

/* One call of the old run: recorded (output NULL: failed), after a hold
 * when held. */
static void chunk_call(fr_journal *j, const char *prompt, const char *output, bool held)
{
    fr_jcall c;
    char item[32];
    fill_call(&c, item, sizeof item, 7, 0);
    c.item = "7 \"q\" \xc3\xa9\t\x01\\";    /* escaped in a chunk's JSON */
    fr_journal_key(&c, "sys", prompt);
    if (held)
        fr_journal_reserve(j, &c, 0.5, 1000);
    c.output = output;
    c.usd = 0.125;
    c.tokens_in = 10;
    c.attempts = 1;
    fr_journal_record(j, &c);
}

/* The answer to prompt, as the journal gives it (NULL: none). */
static char *chunk_answer(fr_journal *j, const char *prompt)
{
    fr_jcall c;
    char item[32];
    fill_call(&c, item, sizeof item, 7, 0);
    c.item = "7 \"q\" \xc3\xa9\t\x01\\";
    fr_journal_key(&c, "sys", prompt);
    json_t *v = fr_journal_lookup(j, &c);
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    return s;
}

/* Version 9: results without a hold go into chunks, held ones into calls
 * rows, one id sequence for both; a resume reads both, the last entry of
 * a key wins (a failed call made again), and the sums count every one. */
static void test_chunks(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/v1.db", dir);   /* test_migrate's run, migrated */
    fr_buf err = { 0 };
    fr_journal *j = fr_journal_open(path, &err);
    bool ok = j && fr_journal_resume(j, "wf", "old-run", "aaaa", "{}", false, &err);
    check(ok, "the migrated journal resumes", "%s", err.s ? err.s : "");
    if (!ok) {
        fr_journal_close(j);
        fr_buf_free(&err);
        return;
    }
    chunk_call(j, "a", "{\"a\":\"x\\\"y\"}", false);
    chunk_call(j, "b", "[1,2.5]", true);
    chunk_call(j, "c", NULL, false);
    fr_journal_close(j);

    j = fr_journal_open(path, &err);
    ok = j && fr_journal_resume(j, "wf", "old-run", "aaaa", "{}", false, &err);
    char *a = ok ? chunk_answer(j, "a") : NULL, *b = ok ? chunk_answer(j, "b") : NULL;
    char *c = ok ? chunk_answer(j, "c") : NULL;
    check(a && strcmp(a, "{\"a\":\"x\\\"y\"}") == 0 && b && strcmp(b, "[1,2.5]") == 0 && !c,
          "answers from a chunk and from a row; a failed call is no answer", "%s %s %s",
          a ? a : "-", b ? b : "-", c ? c : "-");
    free(a), free(b), free(c);
    double usd = 0;
    int64_t tok = 0;
    fr_journal_prior_spend(j, -1, &usd, &tok);
    check(usd == 0.375 && tok == 30, "prior spend counts chunks and rows", "%f %lld", usd,
          (long long)tok);
    chunk_call(j, "c", "\"now\"", false);
    fr_journal_close(j);

    j = fr_journal_open(path, &err);
    ok = j && fr_journal_resume(j, "wf", "old-run", "aaaa", "{}", false, &err);
    c = ok ? chunk_answer(j, "c") : NULL;
    check(c && strcmp(c, "\"now\"") == 0, "a call made again after a resume: its answer wins",
          "%s", c ? c : "-");
    free(c);
    fr_journal_close(j);

    sqlite3 *db;
    sqlite3_stmt *st;
    sqlite3_open(path, &db);
    sqlite3_prepare_v2(db, "SELECT group_concat(in_chunk, ''), count(DISTINCT id), min(id),"
                       " max(id), (SELECT count(*) FROM call_chunks)"
                       " FROM (SELECT * FROM calls_all ORDER BY id)", -1, &st, NULL);
    ok = sqlite3_step(st) == SQLITE_ROW;
    const char *order = ok ? (const char *)sqlite3_column_text(st, 0) : NULL;
    check(order && strcmp(order, "1011") == 0 && sqlite3_column_int(st, 1) == 4 &&
          sqlite3_column_int(st, 2) == 1 && sqlite3_column_int(st, 3) == 4 &&
          sqlite3_column_int(st, 4) == 3, "chunks and rows share one id sequence, in order",
          "%s, %d ids %d..%d, %d chunks", order ? order : "-", sqlite3_column_int(st, 1),
          sqlite3_column_int(st, 2), sqlite3_column_int(st, 3), sqlite3_column_int(st, 4));
    sqlite3_finalize(st);
    /* fr_chunk (the journal's reading) and the file's own view (SQLite's
     * JSON functions, for the sqlite3 shell) agree on every column */
    check(fr_chunk_attach(db), "fr_chunk attaches", "%s", sqlite3_errmsg(db));
    const char *cols[] = { "run_id", "key", "agent", "item", "phase", "output", "status",
                           "tokens_in", "tokens_out", "usd", "attempts", "latency_ms",
                           "finished_ms", "held_usd", "held_tokens", "lost_usd", "lost_tokens",
                           "owner", "tier", "cache_read", "cache_write", "saved_usd", "detail",
                           "in_chunk" };
    fr_buf q = { 0 };
    fr_buf_puts(&q, "SELECT count(*), sum(t.attempts), sum(t.in_chunk),"
                    " sum(t.item = '7 \"q\" \xc3\xa9\t\x01\\') FROM main.calls_all m"
                    " JOIN temp.calls_all t USING (id) WHERE 1");
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++)
        fr_buf_printf(&q, " AND m.%s IS t.%s AND typeof(m.%s) = typeof(t.%s)", cols[i], cols[i],
                      cols[i], cols[i]);
    ok = sqlite3_prepare_v2(db, q.s, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW;
    check(ok && sqlite3_column_int(st, 0) == 4 && sqlite3_column_int(st, 1) == 4 &&
          sqlite3_column_int(st, 3) == 4 &&
          sqlite3_column_int(st, 2) == 3, "fr_chunk reads what the file's view reads",
          "%s: %d of 4 rows agree", ok ? "" : sqlite3_errmsg(db), ok ? sqlite3_column_int(st, 0) : 0);
    sqlite3_finalize(st);
    fr_buf_free(&q);
    sqlite3_close(db);
    fr_buf_free(&err);
}

/* The trace: every line parses and has the GenAI names. */
static void test_trace(void)
{
    char path[600];
    fr_buf err = { 0 };
    snprintf(path, sizeof path, "%s/trace.jsonl", dir);
    fr_trace *t = fr_trace_open(path, "20261121-000000-abcd", &prog, &err);
    check(t != NULL, "trace opens", "%s", err.s);
    if (!t)
        return;
    fr_trace_phase_begin(t, 1);
    fr_tcall c = { .agent = "enrich", .provider = "anthropic", .model = "claude-haiku-4-5",
                   .phase = 1, .item = "3", .attempts = 2, .tokens_in = 120, .cache_read = 100,
                   .cache_write = 0, .tokens_out = 40, .usd = 0.0003, .start_us = 1000000,
                   .latency_ms = 52, .finish_reason = "tool_use", .key = "k1" };
    fr_trace_call(t, &c);
    c.error_type = "timeout";
    c.finish_reason = NULL;
    fr_trace_call(t, &c);
    fr_trace_phase_end(t, 1, "ok");
    fr_trace_close(t);

    FILE *f = fopen(path, "r");
    char line[4096];
    int n = 0, good = 0;
    const char *phase_span = NULL;
    json_t *lines[3] = { 0 };
    while (f && fgets(line, sizeof line, f) && n < 3)
        lines[n++] = json_loads(line, 0, NULL);
    if (f)
        fclose(f);
    phase_span = lines[2] ? json_string_value(json_object_get(lines[2], "span_id")) : NULL;
    for (int i = 0; i < 2; i++) {
        json_t *o = lines[i];
        good += o && phase_span &&
                strcmp(json_string_value(json_object_get(o, "gen_ai.operation.name")),
                       "chat") == 0 &&
                json_object_get(o, "gen_ai.provider.name") &&
                json_object_get(o, "gen_ai.request.model") &&
                json_integer_value(json_object_get(o, "gen_ai.usage.input_tokens")) == 120 &&
                json_integer_value(json_object_get(o, "gen_ai.usage.output_tokens")) == 40 &&
                json_is_array(json_object_get(o, "gen_ai.response.finish_reasons")) &&
                json_object_get(o, "error.type") &&
                strcmp(json_string_value(json_object_get(o, "parent_span_id")), phase_span) == 0 &&
                json_object_get(o, "agent") && json_object_get(o, "item") &&
                json_object_get(o, "attempt") && json_object_get(o, "cost_usd") &&
                json_object_get(o, "latency_ms") && json_object_get(o, "run_id");
    }
    check(n == 3 && good == 2, "trace lines carry the GenAI names and their phase's span",
          "%d lines, %d good", n, good);
    check(lines[1] && strcmp(json_string_value(json_object_get(lines[1], "error.type")),
                             "timeout") == 0, "trace error.type", "missing");
    check(lines[2] && strcmp(json_string_value(json_object_get(lines[2], "type")), "phase") == 0 &&
          strcmp(json_string_value(json_object_get(lines[2], "phase")), "enrich") == 0,
          "trace phase line", "missing");
    for (int i = 0; i < 3; i++)
        json_decref(lines[i]);
    fr_buf_free(&err);
}

/* Every allocation failure in open/begin is an error, never a crash. */
static void test_oom(void)
{
    char path[600];
    int errors = 0;
    snprintf(path, sizeof path, "%s/oom.db", dir);
    for (long n = 1; n < 40; n++) {
        fr_buf err = { 0 };
        fr_alloc_fail_after(n);
        fr_journal *j = fr_journal_open(path, &err);
        if (j && !fr_journal_begin(j, "wf", "aaaa", "{}", &err))
            errors++;
        fr_alloc_fail_after(0);
        errors += j == NULL;
        fr_journal_close(j);
        fr_buf_free(&err);
    }
    check(errors > 0, "allocation failures in open come back as errors", "%d", errors);
}

/* ---- the workflow -------------------------------------------------------- */


static const fr_field out_fields[] = {
    { "word", &fr_type_string, false, 0, 0, true, 1, 20, NULL, NULL, NULL, false },
    { "score", &fr_type_int, true, 0, 10, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema out_schema = { "Out", NULL, 2, out_fields, FR_EXTRA_REJECT };
static const fr_type out_type = { FR_RECORD, NULL, &out_schema, NULL };

static const fr_field row_fields[] = {
    { "id", &fr_type_int, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "word", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "score", &fr_type_int, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema row_schema = { "Row", NULL, 3, row_fields, FR_EXTRA_REJECT };
static const fr_type row_type = { FR_RECORD, NULL, &row_schema, NULL };
static const fr_type rows_type = { FR_LIST, &row_type, NULL, NULL };

/* cache prices < 0: as input, as generated code declares an unpriced cache */
static const fr_model mock_model = { .name = "cheap", .provider = "mock", .api_name = "mock-1",
                                     .usd_per_mtok_in = 1.0, .usd_per_mtok_out = 5.0,
                                     .usd_per_mtok_cache_write = -1,
                                     .usd_per_mtok_cache_write_1h = -1,
                                     .usd_per_mtok_cache_read = -1 };
static const fr_model real_model = { .name = "fake", .provider = "openai",
                                     .api_name = "gpt-fake", .usd_per_mtok_in = 1.0,
                                     .usd_per_mtok_out = 5.0, .usd_per_mtok_cache_write = -1,
                                     .usd_per_mtok_cache_write_1h = -1,
                                     .usd_per_mtok_cache_read = -1 };
static const fr_model *const models[] = { &mock_model };

static bool rate_render(fr_ctx *cx, json_t *const *args, fr_buf *system, fr_buf *prompt)
{
    fr_buf_puts(system, "You rate things.");
    fr_buf_puts(prompt, "Rate this: ");
    fr_buf_value(prompt, args[0]);
    return true;
}

static const char out_schema_json[] =
    "{\"type\":\"object\",\"properties\":{\"word\":{\"type\":\"string\",\"minLength\":1,"
    "\"maxLength\":20},\"score\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10}},"
    "\"required\":[\"word\",\"score\"],\"additionalProperties\":false}";
/* OpenAI strict mode takes no minLength / maxLength (the fake server, like
 * OpenAI, answers them with a 400). */
static const char out_schema_openai[] =
    "{\"type\":\"object\",\"properties\":{\"word\":{\"type\":\"string\"},"
    "\"score\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10}},"
    "\"required\":[\"word\",\"score\"],\"additionalProperties\":false}";
static const char *const rate_params[] = { "x" };
static const fr_agent rate_agent = {
    .name = "rate", .model = &mock_model, .output = &out_type,
    .schema_anthropic = out_schema_json, .schema_openai = out_schema_openai,
    .temperature = -1, .max_tokens = 100, .retries = 3, .timeout_ms = 5000, .render = rate_render, .nparams = 1,
    .param_names = rate_params,
};
static const fr_agent *const agents[] = { &rate_agent };

static const fr_param wf_params[] = {
    { "n", &fr_type_int, "20", "items", false },
    { "conc", &fr_type_int, "8", "items in flight", false },
    { "gate", &fr_type_bool, "false", "ask for approval", false },
    { "real", &fr_type_bool, "false", "use the openai model (the fake server)", false },
    { "esc", &fr_type_int, "0", "escalate the items whose id is a multiple of esc (> 0)", false },
};
static const fr_phase wf_phases[] = {
    { "load", FR_NO_BUDGET }, { "rate", FR_NO_BUDGET }, { "gate", FR_NO_BUDGET },
};

/* The workflow's flags the items need. */
typedef struct wf_env {
    bool real;                     /* --real */
    int64_t esc;                   /* --esc */
} wf_env;

/* One item of the parallel for: escalate, or rate(x) and a Row. */
static json_t *rate_item(fr_ctx *cx, json_t *x, size_t index, void *env)
{
    const wf_env *e = env;
    bool real = e->real;
    json_t *args[1] = { x };
    if (e->esc > 0 && json_integer_value(fr_get(x, "id")) % e->esc == 0)
        return fr_escalate(cx, x, "needs a look", "jwf.flow:9:9");
    json_t *a = fr_call(cx, &rate_agent, 1, real ? &real_model : NULL, args, "jwf.flow:9:20");
    if (!a)
        return NULL;
    json_t *row = fr_record(cx);
    fr_record_set(row, "id", fr_get(x, "id"));
    fr_record_set(row, "word", fr_get(a, "word"));
    fr_record_set(row, "score", fr_get(a, "score"));
    return row;
}

static json_t *load_items(fr_ctx *cx, int64_t n)
{
    json_t *xs = fr_list(cx);
    char name[32];
    for (int64_t i = 0; i < n; i++) {
        json_t *x = fr_record(cx);
        snprintf(name, sizeof name, "item-%lld", (long long)i);
        fr_record_set(x, "id", fr_int(cx, i));
        fr_record_set(x, "name", fr_str(cx, name));
        fr_list_push(xs, x);
    }
    return xs;
}

static json_t *wf_main(fr_ctx *cx, json_t *const *args)
{
    wf_env env = { fr_truthy(args[3]), json_integer_value(args[4]) };
    if (!fr_phase_begin(cx, 0))
        return NULL;
    json_t *xs = load_items(cx, json_integer_value(args[0]));
    fr_phase_end(cx, 0);
    if (!fr_phase_begin(cx, 1))
        return NULL;
    fr_par_opts po = { (int)json_integer_value(args[1]), FR_ON_ERROR_HALT, "jwf.flow:8:14", false, 0, NULL };
    json_t *rs = fr_parallel_for(cx, xs, &po, rate_item, &env);
    fr_phase_end(cx, 1);
    if (!rs || !fr_phase_begin(cx, 2))
        return NULL;
    if (fr_truthy(args[2]))
        rs = fr_approve(cx, rs, fr_str(cx, "ship these?"), 2, "jwf.flow:12:22");
    fr_phase_end(cx, 2);
    return rs;
}

static int workflow_main(int argc, char **argv)
{
    static fr_program wf = {
        .name = "jwf", .source_file = "jwf.flow", .source_hash = "jwf-1",
        .nparams = 5, .params = wf_params, .ret = &rows_type, .nphases = 3,
        .phases = wf_phases, .budget = FR_NO_BUDGET, .nmodels = 1, .models = models,
        .nagents = 1, .agents = agents, .main = wf_main,
    };
    const char *cap = getenv("JWF_BUDGET_USD");
    if (cap)
        wf.budget.usd = atof(cap);
    if ((cap = getenv("JWF_BUDGET_TIME_MS")))
        wf.budget.time_ms = atoll(cap);
    if (getenv("JWF_SOURCE_HASH"))
        wf.source_hash = getenv("JWF_SOURCE_HASH");
    return fr_main(&wf, argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "selftest") != 0)
        return workflow_main(argc, argv);
    if (argc != 3) {
        fprintf(stderr, "usage: rt_journal selftest DIR\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[2]);
    test_sha();
    test_concurrent_records();
    test_resume();
    test_approvals();
    test_integrity();
    test_migrate();
    test_chunks();
    test_trace();
    test_oom();
    printf("%d failed\n", failures);
    return failures;
}
