/*
 * fr_journal.c: the run journal, one SQLite file with many runs, so a run
 * killed at any moment can be resumed without paying twice for a call.
 *
 * Tables: runs (one row per run: workflow, source hash, args, times, status),
 * phase_time (the time processes spent in each phase of a run, so a phase's
 * time cap carries over a resume as the workflow's does), calls (one row per
 * agent call of a run: its key agent/site/item/seq/input hash, the validated
 * output, usage, cost, attempts, latency, and the worst-case reservation of
 * a request in flight), approvals (the queue that approve() and escalate()
 * fill and `BINARY approve` decides), batches (provider batches submitted),
 * call_chunks (schema v9: the calls that never held a budget, many to a
 * row, fr_chunk.c), and the view calls_all (every call, of both), which
 * is what every reader reads.
 *
 * calls is keyed by an integer in insertion order (schema v6): a new call
 * appends to the table's last page instead of landing at a random point of
 * a tree keyed by text, so a commit writes a few pages, not a dozen.  A
 * call's later writes find its row by that integer: the process keeps it
 * (fr_jcall.row), and a resumed run loads every row's id with its key.
 * Chunk entries take ids of the same sequence (first + index); they are
 * never written again (a call made again after a resume is a new entry,
 * and the last entry of a key wins).
 *
 * Durability: a reservation must be on disk before its request leaves, so
 * a resumed run counts it against its budgets (holds are journaled only
 * when a usd or token cap exists: they protect caps), and an attempt's
 * usage must replace its hold on disk before the ledger frees the
 * difference for other requests.  A result need not be on disk before the
 * item goes on: nothing outside the process sees it until the workflow
 * writes its output or a file, which first waits for every result queued
 * (fr_journal_flush), and its trace line is written once it is durable
 * (fr_journal_after).  A result lost to a kill was never journaled: the
 * resumed run pays for it once more, and never for one that was.
 *
 * So writes go through one writer thread, in the order they were queued:
 * a reservation or a settle waits for its commit, a result is queued and
 * the item goes on; the writer commits what is queued as one transaction
 * (one sync: WAL, synchronous=FULL; FLOWRT_JOURNAL_SYNC=normal survives a
 * killed process but not a lost machine), and when only results wait it
 * lets them gather for a short window (FLOWRT_JOURNAL_WINDOW_MS, default
 * 2 ms) before the sync.  FULL stays the default: with WAL, NORMAL syncs
 * only at checkpoints, so a commit a power cut loses could hold answers
 * whose trace lines or output were already written; and batched, the
 * syncs are few (a 100,000-call mock run spends the same CPU either way).
 * Results without a row go into the transaction's chunks, and a result
 * queued without waiting hands its answer over as the value and its
 * attempts' detail as plain fields, both written as text on the writer's
 * thread: the items' threads pay for a copy of the scalars, the writer for
 * the rest.  At most QUEUE_MAX results wait: more wait for the writer (a
 * writer that falls behind holds the items back, not their memory).  With
 * nothing queued, the writer copies the WAL into the database (at most
 * every IDLE_CKPT_MS), so closing has little left to copy.  The run's
 * active time and its phase's are written with a batch at most once a
 * second and when a phase or the run ends.
 * Other uses of the connection (approvals, the run's row) take their turn
 * in the same queue (db_acquire), after everything queued before them.
 *
 * A run is held by the process running it (an flock that dies with it), so
 * two processes never run one run and a killed one resumes at once.
 *
 * Lookups never touch SQLite: on resume the run's calls are loaded into a
 * hash map once (answers, holds left in flight, row ids); a fresh run has
 * none.
 */
#include "fr_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCHEMA_VERSION 9           /* PRAGMA user_version of the current schema */
#define WINDOW_MS 2                /* results gather this long before a sync (default) */
#define BATCH_MAX 4096             /* ops in one transaction at most */
#define QUEUE_MAX (2 * BATCH_MAX)  /* results queued at most: more wait for the writer */
#define BOOKKEEP_MS 1000           /* the active and phase times: written this often */
#define IDLE_CKPT_MS 50            /* the writer, idle, checkpoints at most this often */
#define CHUNK_MAX 256              /* results in one call_chunks row at most */
#define CHUNK_BYTES 32768          /* ... and about this much text (a damaged page
                                      loses the answers of one chunk) */

/* ---- the call map: call key -> its row, for resume --------------------------- */

/* What an earlier process left for one call key. */
typedef struct jentry {
    char *key;                     /* the call key (malloc'd), NULL for an empty slot */
    char *output;                  /* its output JSON text when it finished (malloc'd) */
    int64_t row;                   /* its row in calls */
    char status;                   /* 'o' ok, 'h' held (in flight), 'f' failed */
} jentry;

typedef struct jmap {
    jentry *slots;                 /* open addressing, linear probing */
    size_t cap;                    /* a power of two, or 0 */
    size_t n;                      /* entries used */
} jmap;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static jentry *map_slot(jmap *m, const char *key)
{
    size_t i = (size_t)str_hash(key) & (m->cap - 1);
    while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
        i = (i + 1) & (m->cap - 1);
    return &m->slots[i];
}

static bool map_grow(jmap *m)
{
    jmap big = { fr_calloc(m->cap ? m->cap * 2 : 64, sizeof(jentry)),
                 m->cap ? m->cap * 2 : 64, m->n };
    if (!big.slots)
        return false;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key)
            *map_slot(&big, m->slots[i].key) = m->slots[i];
    fr_free(m->slots);
    *m = big;
    return true;
}

/* Takes ownership of key and output (NULL unless the call finished). */
static bool map_put(jmap *m, char *key, char *output, int64_t row, char status)
{
    if ((m->n + 1) * 2 > m->cap && !map_grow(m))
        return false;
    jentry *e = map_slot(m, key);
    if (e->key) {
        fr_free(e->key);
        fr_free(e->output);
    } else {
        m->n++;
    }
    *e = (jentry){ key, output, row, status };
    return true;
}

static const jentry *map_get(jmap *m, const char *key)
{
    if (m->n == 0)
        return NULL;
    jentry *e = map_slot(m, key);
    return e->key ? e : NULL;
}

static void map_free(jmap *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        fr_free(m->slots[i].key);
        fr_free(m->slots[i].output);
    }
    fr_free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- the handle ---------------------------------------------------------- */

enum { OP_RESERVE, OP_RECORD, OP_AFTER, OP_ACQUIRE };

/* One queued write.  A caller that waits for it keeps it on its stack (its
 * call is the caller's); one that does not (a result, an after-callback)
 * gets a malloc'd op with a copy of the call, freed by the writer. */
typedef struct jop {
    struct jop *next;              /* the next queued op */
    int kind;                      /* OP_* */
    fr_jcall *call;                /* OP_RESERVE, OP_RECORD: the call */
    double usd;                    /* OP_RESERVE: dollars held */
    int64_t tokens;                /* OP_RESERVE: tokens held */
    void (*after)(void *arg);      /* OP_AFTER: run once what precedes is durable */
    void *arg;                     /* its argument */
    bool waited;                   /* a caller waits for it (else the writer frees it) */
    bool done;                     /* committed or failed (guarded by j->mu) */
    bool ok;                       /* committed */
    fr_jcall copy;                 /* a queued result's own copy of its call */
    char strings[];                /* ... and of its strings */
} jop;

struct fr_journal {
    sqlite3 *db;                   /* the one connection */
    char *path;                    /* the file */
    pthread_mutex_t mu;            /* guards everything below up to the statements */
    fr_cond done_cv;               /* an op was done: its waiter looks */
    pthread_cond_t work_cv;        /* the writer: ops queued, the connection back, stop */
    jop *head;                     /* ops queued */
    jop **tail;                    /* where the next goes */
    size_t queued;                 /* how many */
    size_t waited_queued;          /* of them, ops a caller waits for: no window */
    bool idle;                     /* the writer waits for work (signal it) */
    bool busy;                     /* a caller of db_acquire has the connection */
    bool writer_on;                /* the writer thread runs */
    bool stop;                     /* the writer drains the queue and ends */
    pthread_t writer;              /* the writer thread */
    int window_ms;                 /* the commit window */
    bool failed;                   /* a batch failed: what was queued after is refused */
    char failure[256];             /* SQLite's message for it */
    sqlite3_stmt *st_begin;        /* BEGIN IMMEDIATE, prepared once */
    sqlite3_stmt *st_commit;       /* COMMIT, prepared once */
    sqlite3_stmt *st_active;       /* the bound run's active time */
    sqlite3_stmt *st_hold_new;     /* a call's first hold: a new row */
    sqlite3_stmt *st_hold;         /* a later hold, by row */
    sqlite3_stmt *st_chunk;        /* a chunk of results without a row */
    sqlite3_stmt *st_next;         /* the next free call id */
    sqlite3_stmt *st_rec;          /* a result, by row */
    sqlite3_stmt *st_phase;        /* upserts a phase's active time */
    int ph_cur;                    /* the root's current phase, timed, or -1 (under mu) */
    int64_t ph_base;               /* its active time before this process */
    int64_t ph_start_ms;           /* when this process began it (monotonic) */
    int64_t said_ms;               /* when the writer last wrote the times (monotonic) */
    int64_t ckpt_ms;               /* when the writer last checkpointed (monotonic) */
    bool dirty;                    /* it committed since (the writer's own) */
    char run_id[FR_RUN_ID_MAX];    /* the bound run, "" if none */
    int lock_fd;                   /* the bound run's lock file, held while it runs, or -1 */
    int64_t active_base;           /* the bound run's active time before this process */
    int64_t bound_ms;              /* when this process bound it (monotonic) */
    jmap calls;                    /* the bound run's calls of earlier processes (resume) */
    size_t n_ok, n_held;           /* of them: finished, and left in flight */
    int64_t owner;                 /* this process's random id: whose holds are whose */
    int64_t batches;               /* transactions the writer committed */
    int64_t rows;                  /* ops in them */
    int64_t answers_ok;            /* answers (records with an output) committed */
    int64_t answers_lost;          /* answers a failed batch or a failed journal lost */
};

static bool writer_start(fr_journal *j, fr_buf *err);
static void writer_stop(fr_journal *j);

int64_t fr_journal_prior_active_ms(const fr_journal *j)
{
    return j ? j->active_base : 0;
}

/* The bound run's active time so far: before this process, and in it. */
static int64_t active_ms(const fr_journal *j)
{
    return j->active_base + (fr_now_ms() - j->bound_ms);
}

static void db_error(fr_journal *j, fr_buf *err, const char *what)
{
    if (!err)
        return;
    fr_buf_puts(err, "journal ");
    fr_buf_puts(err, j->path);
    fr_buf_puts(err, ": ");
    fr_buf_puts(err, what);
    fr_buf_puts(err, ": ");
    fr_buf_puts(err, sqlite3_errmsg(j->db));
}

/* Queues op (j->mu held) and wakes the writer when it waits for work, or
 * gathers results while a caller now waits (a result alone does not cut a
 * window short: a system call a result saved). */
static void enqueue_op(fr_journal *j, jop *op)
{
    op->next = NULL;
    *j->tail = op;
    j->tail = &op->next;
    j->queued++;
    j->waited_queued += op->waited;
    if (j->idle || op->waited || j->queued == BATCH_MAX)
        pthread_cond_signal(&j->work_cv);
}

/* Waits (j->mu held, a fiber parks) for a waited op to be done. */
static bool wait_op(fr_journal *j, jop *op)
{
    while (!op->done)
        fr_cond_wait(&j->done_cv, &j->mu);
    return op->ok;
}

/* Takes the connection: with a writer, its turn in the queue comes once
 * everything queued before is committed; without one, when it is free. */
static void db_acquire(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    if (j->writer_on) {
        jop op = { .kind = OP_ACQUIRE, .waited = true };
        enqueue_op(j, &op);
        wait_op(j, &op);               /* the writer handed it over: busy is set */
    } else {
        while (j->busy)
            fr_cond_wait(&j->done_cv, &j->mu);
        j->busy = true;
    }
    pthread_mutex_unlock(&j->mu);
}

static void db_release(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    j->busy = false;
    pthread_cond_signal(&j->work_cv);
    fr_cond_broadcast(&j->done_cv);
    pthread_mutex_unlock(&j->mu);
}

static bool db_exec(fr_journal *j, const char *sql, fr_buf *err)
{
    if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) == SQLITE_OK)
        return true;
    db_error(j, err, sql);
    return false;
}

/* ---- opening: directories, pragmas, schema ------------------------------- */

char *fr_journal_default_path(const char *workflow)
{
    size_t n = strlen(workflow) + sizeof ".flow/" + sizeof ".db";
    char *p = fr_malloc(n);
    if (p)
        snprintf(p, n, ".flow/%s.db", workflow);
    return p;
}

/* mkdir -p of the directory part of path. */
static bool make_parents(const char *path, fr_buf *err)
{
    char *dir = fr_strdup(path);
    if (!dir)
        return false;
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fr_buf_puts(err, "cannot create directory ");
            fr_buf_puts(err, dir);
            fr_buf_puts(err, ": ");
            fr_buf_puts(err, strerror(errno));
            fr_free(dir);
            return false;
        }
        *p = '/';
    }
    fr_free(dir);
    return true;
}

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

/* v2: the time processes spent running a run, for its time budget on resume. */
static const char schema_v2[] =
    "ALTER TABLE runs ADD COLUMN active_ms INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 2;";

/* v3: the time processes spent in each phase, for phase time caps on resume. */
static const char schema_v3[] =
    "CREATE TABLE phase_time(run_id TEXT NOT NULL, phase INTEGER NOT NULL,"
    " active_ms INTEGER NOT NULL, PRIMARY KEY(run_id, phase)) WITHOUT ROWID;"
    "PRAGMA user_version = 3;";

/* v4: how many items a run's on_error: skip fan-outs dropped (its skipped
 * file), so that --retry-skipped can run a finished run again. */
static const char schema_v4[] =
    "ALTER TABLE runs ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 4;";

/* v5: the price each call paid (its tier, standard or batch, and its
 * prompt-cache tokens and savings), and the provider batches a run
 * submitted, journaled before they are polled so that a resumed run polls
 * the same batch instead of submitting it again. */
static const char schema_v5[] =
    "ALTER TABLE calls ADD COLUMN tier TEXT NOT NULL DEFAULT 'standard';"
    "ALTER TABLE calls ADD COLUMN cache_read INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE calls ADD COLUMN cache_write INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE calls ADD COLUMN saved_usd REAL NOT NULL DEFAULT 0;"
    "CREATE TABLE batches(run_id TEXT NOT NULL, fanout TEXT NOT NULL, part INTEGER NOT NULL,"
    " provider TEXT NOT NULL, batch_id TEXT, file_id TEXT, status TEXT NOT NULL,"
    " requests INTEGER NOT NULL, held_usd REAL NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, ended_ms INTEGER,"
    " PRIMARY KEY(run_id, fanout, part)) WITHOUT ROWID;"
    "PRAGMA user_version = 5;";

/* v6: calls keyed by an integer in insertion order instead of (run_id, key)
 * text in a WITHOUT ROWID tree: a new call appends instead of landing at a
 * random point, and a call's later writes go by row.  The columns the key
 * already holds (site, seq, the input hash) and the model's name go: fewer
 * columns a row, less to encode per call.  Every row is kept, so a run in
 * progress resumes with the new binary (an older binary refuses a version 6
 * journal: finish such runs with the new one). */
static const char schema_v6[] =
    "CREATE TABLE calls_v6("
    " id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, agent TEXT NOT NULL,"
    " item TEXT NOT NULL, phase INTEGER NOT NULL, output TEXT, status TEXT NOT NULL,"
    " tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,"
    " usd REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " latency_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER,"
    " held_usd REAL NOT NULL DEFAULT 0, held_tokens INTEGER NOT NULL DEFAULT 0,"
    " lost_usd REAL NOT NULL DEFAULT 0, lost_tokens INTEGER NOT NULL DEFAULT 0,"
    " owner INTEGER NOT NULL DEFAULT 0,"
    " tier TEXT NOT NULL DEFAULT 'standard', cache_read INTEGER NOT NULL DEFAULT 0,"
    " cache_write INTEGER NOT NULL DEFAULT 0, saved_usd REAL NOT NULL DEFAULT 0);"
    "INSERT INTO calls_v6(run_id, key, agent, item, phase, output, status, tokens_in,"
    " tokens_out, usd, attempts, latency_ms, finished_ms, held_usd, held_tokens, lost_usd,"
    " lost_tokens, owner, tier, cache_read, cache_write, saved_usd)"
    " SELECT run_id, key, agent, item, phase, output, status, tokens_in,"
    " tokens_out, usd, attempts, latency_ms, finished_ms, held_usd, held_tokens, lost_usd,"
    " lost_tokens, owner, tier, cache_read, cache_write, saved_usd"
    " FROM calls ORDER BY coalesce(finished_ms, 0), run_id, key;"
    "DROP TABLE calls;"
    "ALTER TABLE calls_v6 RENAME TO calls;"
    "CREATE INDEX calls_by_run ON calls(run_id);"
    "PRAGMA user_version = 6;";

/* v7: what happened in each attempt of a call (its outcome, error, timing
 * and usage, and with --trace-content the rendered prompts and the raw
 * replies), as one JSON text per call for `show` and `report`; and when a
 * run's answers were pruned (`runs --prune DAYS`), after which it cannot
 * be resumed. */
static const char schema_v7[] =
    "ALTER TABLE calls ADD COLUMN detail TEXT;"
    "ALTER TABLE runs ADD COLUMN pruned_ms INTEGER;"
    "PRAGMA user_version = 7;";

/* v8: a batch's intent, journaled before it is submitted: the token in its
 * custom_ids (and OpenAI metadata) by which a resume finds a batch the
 * provider accepted before its id was journaled, and its members (their
 * custom_ids' request hashes, one a line). */
static const char schema_v8[] =
    "ALTER TABLE batches ADD COLUMN token TEXT;"
    "ALTER TABLE batches ADD COLUMN ids TEXT;"
    "PRAGMA user_version = 8;";

/* v9: a result without a row (no hold: no budget cap) goes with the others
 * of its transaction into one call_chunks row, a JSON array of entries
 * [key, agent, item, phase, status, tokens_in, tokens_out, usd, attempts,
 * latency_ms, finished_ms, tier, cache_read, cache_write, saved_usd,
 * output, detail] (output and detail as JSON, not as strings): a row per
 * call cost more than everything else the journal does for it.  Entry i of
 * a chunk is call id first + i; calls and chunks share one id space, in the
 * order they were written.  The view calls_all is every call of both, with
 * the columns of calls and in_chunk (1 for an entry of a chunk): readers
 * (resume, runs, show, report, estimate, the budgets' sums, and anyone with
 * the sqlite3 shell) read it, never calls alone.  This one reads entries
 * with SQLite's JSON functions, for the shell; the journal's connections
 * shadow it with a temporary one over fr_chunk, a dozen times faster
 * (fr_chunk_attach). */
static const char schema_v9[] =
    "CREATE TABLE call_chunks(first INTEGER PRIMARY KEY, run_id TEXT NOT NULL,"
    " n INTEGER NOT NULL, body TEXT NOT NULL);"
    "CREATE INDEX call_chunks_by_run ON call_chunks(run_id);"
    "CREATE VIEW calls_all AS"
    " SELECT id, run_id, key, agent, item, phase, output, status, tokens_in, tokens_out, usd,"
    " attempts, latency_ms, finished_ms, held_usd, held_tokens, lost_usd, lost_tokens, owner,"
    " tier, cache_read, cache_write, saved_usd, detail, 0 AS in_chunk FROM calls"
    " UNION ALL"
    " SELECT c.first + e.key, c.run_id, e.value ->> 0, e.value ->> 1, e.value ->> 2,"
    " e.value ->> 3, nullif(e.value -> 15, 'null'), e.value ->> 4, e.value ->> 5,"
    " e.value ->> 6, e.value ->> 7, e.value ->> 8, e.value ->> 9, e.value ->> 10, 0.0, 0,"
    " 0.0, 0, 0, e.value ->> 11, e.value ->> 12, e.value ->> 13, e.value ->> 14,"
    " nullif(e.value -> 16, 'null'), 1 FROM call_chunks c, json_each(c.body) e;"
    "PRAGMA user_version = 9;";

/* The current schema in a fresh file, at once (one transaction, one sync:
 * the migrations one after another cost a new journal ~5 ms); the self-test
 * checks that it is what the migrations make. */
static const char schema_fresh[] =
    "CREATE TABLE runs("
    " id TEXT PRIMARY KEY, workflow TEXT NOT NULL, source_hash TEXT NOT NULL,"
    " args TEXT NOT NULL, started_ms INTEGER NOT NULL, ended_ms INTEGER,"
    " status TEXT NOT NULL, usd REAL NOT NULL DEFAULT 0,"
    " tokens INTEGER NOT NULL DEFAULT 0, resumes INTEGER NOT NULL DEFAULT 0,"
    " active_ms INTEGER NOT NULL DEFAULT 0, skipped INTEGER NOT NULL DEFAULT 0,"
    " pruned_ms INTEGER);"
    "CREATE INDEX runs_by_workflow ON runs(workflow, started_ms);"
    "CREATE TABLE approvals("
    " run_id TEXT NOT NULL, n INTEGER NOT NULL, origin TEXT NOT NULL,"
    " item TEXT NOT NULL, idx INTEGER NOT NULL, kind TEXT NOT NULL,"
    " title TEXT NOT NULL, item_json TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    " decision TEXT, decided_by TEXT, decided_ms INTEGER,"
    " PRIMARY KEY(run_id, n), UNIQUE(run_id, origin, item, idx));"
    "CREATE TABLE phase_time(run_id TEXT NOT NULL, phase INTEGER NOT NULL,"
    " active_ms INTEGER NOT NULL, PRIMARY KEY(run_id, phase)) WITHOUT ROWID;"
    "CREATE TABLE batches(run_id TEXT NOT NULL, fanout TEXT NOT NULL, part INTEGER NOT NULL,"
    " provider TEXT NOT NULL, batch_id TEXT, file_id TEXT, status TEXT NOT NULL,"
    " requests INTEGER NOT NULL, held_usd REAL NOT NULL DEFAULT 0,"
    " created_ms INTEGER NOT NULL, ended_ms INTEGER, token TEXT, ids TEXT,"
    " PRIMARY KEY(run_id, fanout, part)) WITHOUT ROWID;"
    "CREATE TABLE calls("
    " id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, key TEXT NOT NULL, agent TEXT NOT NULL,"
    " item TEXT NOT NULL, phase INTEGER NOT NULL, output TEXT, status TEXT NOT NULL,"
    " tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,"
    " usd REAL NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,"
    " latency_ms INTEGER NOT NULL DEFAULT 0, finished_ms INTEGER,"
    " held_usd REAL NOT NULL DEFAULT 0, held_tokens INTEGER NOT NULL DEFAULT 0,"
    " lost_usd REAL NOT NULL DEFAULT 0, lost_tokens INTEGER NOT NULL DEFAULT 0,"
    " owner INTEGER NOT NULL DEFAULT 0,"
    " tier TEXT NOT NULL DEFAULT 'standard', cache_read INTEGER NOT NULL DEFAULT 0,"
    " cache_write INTEGER NOT NULL DEFAULT 0, saved_usd REAL NOT NULL DEFAULT 0,"
    " detail TEXT);"
    "CREATE INDEX calls_by_run ON calls(run_id);";

static const char sql_phase[] =
    "INSERT INTO phase_time(run_id, phase, active_ms) VALUES(?1, ?2, ?3)"
    " ON CONFLICT(run_id, phase) DO UPDATE SET active_ms = excluded.active_ms";

static int schema_version(fr_journal *j)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return -1;
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

/* Brings an older schema up to date, inside the caller's transaction (a
 * fresh file: at once, then version 9's chunks). */
static bool migrate(fr_journal *j, int v, fr_buf *err)
{
    if (v == 0 && !(db_exec(j, schema_fresh, err) && db_exec(j, "PRAGMA user_version = 8", err)))
        return false;
    if (v == 0)
        v = 8;
    return (v >= 1 || db_exec(j, schema_v1, err)) && (v >= 2 || db_exec(j, schema_v2, err)) &&
           (v >= 3 || db_exec(j, schema_v3, err)) && (v >= 4 || db_exec(j, schema_v4, err)) &&
           (v >= 5 || db_exec(j, schema_v5, err)) && (v >= 6 || db_exec(j, schema_v6, err)) &&
           (v >= 7 || db_exec(j, schema_v7, err)) && (v >= 8 || db_exec(j, schema_v8, err)) &&
           (v >= 9 || db_exec(j, schema_v9, err));
}

/* The schema, created in a fresh file; an unknown version is refused. */
/* The schema, created in a fresh file or migrated from an older version
 * (the version is read again under the write lock: another process may
 * have just done it); a newer version is refused. */
static bool ensure_schema(fr_journal *j, fr_buf *err)
{
    if (schema_version(j) == SCHEMA_VERSION)
        return true;
    if (!db_exec(j, "BEGIN IMMEDIATE", err))
        return false;
    int v = schema_version(j);
    bool ok = v >= 0 && v <= SCHEMA_VERSION;
    if (!ok) {
        fr_buf_puts(err, "journal ");
        fr_buf_puts(err, j->path);
        fr_buf_puts(err, ": unknown schema version (written by a newer flowc?)");
    }
    ok = ok && migrate(j, v, err);
    if (!ok) {
        db_exec(j, "ROLLBACK", NULL);
        return false;
    }
    return db_exec(j, "COMMIT", err);
}

/* A call's first hold, and a later one (after a crash: the dead process's
 * hold is lost money, counted apart). */
static const char sql_hold_new[] =
    "INSERT INTO calls(run_id, key, agent, item, phase, status, held_usd, held_tokens, owner,"
    " id) VALUES(?1,?2,?3,?4,?5,'held',?6,?7,?8,?9)";
static const char sql_hold[] =
    "UPDATE calls SET"
    " lost_usd = lost_usd + CASE WHEN owner = ?3 THEN 0 ELSE held_usd END,"
    " lost_tokens = lost_tokens + CASE WHEN owner = ?3 THEN 0 ELSE held_tokens END,"
    " held_usd = ?1, held_tokens = ?2, owner = ?3 WHERE id = ?4";

/* Results in a chunk; the next call id of either table. */
static const char sql_chunk[] =
    "INSERT INTO call_chunks(first, run_id, n, body) VALUES(?1, ?2, ?3, ?4)";
static const char sql_next[] =
    "SELECT max(coalesce((SELECT max(id) FROM calls), 0),"
    " coalesce((SELECT first + n - 1 FROM call_chunks ORDER BY first DESC LIMIT 1), 0)) + 1";

/* A result added to the call's row (its hold, or an earlier process's). */
static const char sql_rec[] =
    "UPDATE calls SET output = ?6, status = ?7,"
    " tokens_in = tokens_in + ?8, tokens_out = tokens_out + ?9, usd = usd + ?10,"
    " attempts = attempts + ?11, latency_ms = ?12, finished_ms = ?13, held_usd = 0,"
    " held_tokens = 0, tier = ?14, cache_read = cache_read + ?15,"
    " cache_write = cache_write + ?16, saved_usd = saved_usd + ?17,"
    " detail = coalesce(?19, detail) WHERE id = ?18";

/* ---- a damaged journal ----------------------------------------------------
 * A journal whose pages were damaged (a disk error, a copy cut short, bytes
 * overwritten) is never written to: every open runs PRAGMA quick_check
 * first, and a damaged file is refused, saying so and how to go on.  Its
 * runs cannot be resumed, but the answers that can still be read were paid
 * for: they are exported to <journal>.recovered.jsonl before the refusal. */

/* quick_check's verdict on db: true when the file is damaged (or is no
 * SQLite database at all), with the first complaint in why. */
static bool is_damaged(sqlite3 *db, char *why, size_t cap, int *code)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    const char *r = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
    int base = rc & 0xff;
    *code = base;
    bool bad = base == SQLITE_CORRUPT || base == SQLITE_NOTADB || (r && strcmp(r, "ok") != 0);
    if (bad) {                       /* one line: "Page 17: btreeInitPage() returns ..." */
        const char *t = r && strcmp(r, "ok") != 0 ? r : sqlite3_errmsg(db);
        const char *hd = "*** in database main ***\n";
        if (strncmp(t, hd, strlen(hd)) == 0)
            t += strlen(hd);
        snprintf(why, cap, "%s", t);
        for (char *c = why; *c; c++)
            if (*c == '\n')
                *c = ' ';
    }
    sqlite3_finalize(st);
    return bad;
}

/* One answer a damaged journal still gives, as a JSON line to f (output
 * is taken). */
static void export_line(FILE *f, const char *run, const char *key, const char *agent,
                        const char *item, json_int_t phase, json_t *output)
{
    json_t *line = json_pack("{s:s?, s:s?, s:s?, s:s?, s:I, s:o}", "run", run, "key", key,
                             "agent", agent, "item", item, "phase", phase, "output", output);
    char *text = line ? json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (text)
        fprintf(f, "%s\n", text);
    fr_free(text);
    json_decref(line);
}

static long export_row(FILE *f, sqlite3_stmt *st)
{
    const char *out = (const char *)sqlite3_column_text(st, 5);
    json_t *o = out ? fr_json_loadb(out, strlen(out), JSON_DECODE_ANY, NULL) : NULL;
    export_line(f, (const char *)sqlite3_column_text(st, 0),
                (const char *)sqlite3_column_text(st, 1), (const char *)sqlite3_column_text(st, 2),
                (const char *)sqlite3_column_text(st, 3), (json_int_t)sqlite3_column_int64(st, 4),
                o ? o : json_string(out ? out : ""));
    return 1;
}

/* The answers of one chunk's body (schema_v9) that parses. */
static long export_body(FILE *f, const char *run, const char *body)
{
    json_t *v = body ? fr_json_loadb(body, strlen(body), 0, NULL) : NULL;
    size_t i;
    json_t *e;
    long n = 0;
    json_array_foreach(v, i, e) {
        const char *status = json_string_value(json_array_get(e, 4));
        if (!status || strcmp(status, "ok") != 0)
            continue;
        export_line(f, run, json_string_value(json_array_get(e, 0)),
                    json_string_value(json_array_get(e, 1)),
                    json_string_value(json_array_get(e, 2)),
                    json_integer_value(json_array_get(e, 3)), json_incref(json_array_get(e, 15)));
        n++;
    }
    json_decref(v);
    return n;
}

/* A chunk's answers (run_id, body). */
static long export_chunk(FILE *f, sqlite3_stmt *st)
{
    return export_body(f, (const char *)sqlite3_column_text(st, 0),
                       (const char *)sqlite3_column_text(st, 1));
}

/* Reads sql (?1: the id to go on after; column idcol: a row's id) from the
 * start, handing each row to one (which returns the answers it wrote): a
 * read that hits a damaged page goes on past it, skip ids further each
 * time, until a few tries make no progress.  -1: sql does not prepare (a
 * table this journal's version does not have). */
static long export_past_damage(sqlite3 *db, FILE *f, const char *sql, int idcol, int64_t skip,
                               long (*one)(FILE *f, sqlite3_stmt *st))
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        return -1;
    int64_t last = 0;
    long n = 0;
    for (int stuck = 0; stuck < 3;) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, last);
        int rc, got = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            n += one(f, st);
            last = sqlite3_column_int64(st, idcol);
            got++;
        }
        if (rc == SQLITE_DONE)
            break;
        stuck = got ? 0 : stuck + 1;
        if (!got)                            /* past the damage: skip a little further */
            last += skip;
    }
    sqlite3_finalize(st);
    return n;
}

/* Exports the readable answers of damaged db to f (an older journal: in
 * key order, going on after the last key read past damage, the same way).
 * Returns the answers written. */
static long export_answers(sqlite3 *db, FILE *f)
{
    /* version 6 on: by id, the rows and then (version 9) the chunks */
    long by_row = export_past_damage(db, f, "SELECT run_id, key, agent, item, phase, output, id"
                                     " FROM calls WHERE status = 'ok' AND id > ?1 ORDER BY id",
                                     6, 64, export_row);
    if (by_row >= 0) {
        long chunks = export_past_damage(db, f, "SELECT run_id, body, first FROM call_chunks"
                                         " WHERE first > ?1 ORDER BY first", 2, CHUNK_MAX,
                                         export_chunk);
        return by_row + (chunks > 0 ? chunks : 0);
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT run_id, key, agent, item, phase, output FROM calls"
                           " WHERE status = 'ok' AND (run_id, key) > (?1, ?2)"
                           " ORDER BY run_id, key", -1, &st, NULL) != SQLITE_OK)
        return 0;
    char run[FR_RUN_ID_MAX] = "", key[FR_JKEY_MAX] = "";
    long n = 0;
    for (int stuck = 0; stuck < 3;) {
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, run, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
        int rc, got = 0;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            export_row(f, st);
            snprintf(run, sizeof run, "%s", (const char *)sqlite3_column_text(st, 0));
            snprintf(key, sizeof key, "%s", (const char *)sqlite3_column_text(st, 1));
            n++, got++;
        }
        if (rc == SQLITE_DONE)
            break;
        stuck = got ? 0 : stuck + 1;
        if (!got) {                          /* past the damage: skip a little further */
            size_t kl = strlen(key);
            if (kl + 1 < sizeof key)
                key[kl] = '\x7f', key[kl + 1] = '\0';
        }
    }
    sqlite3_finalize(st);
    return n;
}

/* The refusal of a damaged journal, after exporting what can be read. */
static void refuse_damaged(const char *path, sqlite3 *db, const char *why, fr_buf *err)
{
    fr_buf out = { 0 };
    fr_buf_printf(&out, "%s.recovered.jsonl", path);
    char *tmp = NULL;
    long n = -1;
    if (out.s && asprintf(&tmp, "%s.tmp", out.s) >= 0) {
        FILE *f = fopen(tmp, "w");
        if (f) {
            n = export_answers(db, f);
            if (fclose(f) != 0 || rename(tmp, out.s) != 0) {
                unlink(tmp);
                n = -1;
            }
        }
    }
    free(tmp);
    fr_buf_printf(err, "journal %s is damaged (%s): nothing more is written to it, and its "
                  "runs cannot be resumed. ", path, why);
    if (n >= 0)
        fr_buf_printf(err, "The %ld answer%s it still holds %s exported to %s (one JSON object "
                      "a line: run, key, agent, item, phase, output). ", n, n == 1 ? "" : "s",
                      n == 1 ? "was" : "were", out.s);
    else
        fr_buf_printf(err, "Its answers could not be exported to %s: %s. ",
                      out.s ? out.s : "a file beside it", strerror(errno));
    fr_buf_printf(err, "To start afresh, move it away with its -wal and -shm files, or pass "
                  "--journal with another path");
    fr_buf_free(&out);
}

/* ---- tests: a disk that fills up ----------------------------------------
 * FLOWRT_TEST_DISK_FULL=N makes the journal's files refuse writes with
 * SQLITE_FULL, as a full disk does, once N bytes were written to them in
 * this process: tests/sh/journal_full.sh uses it where it cannot mount a
 * small tmpfs.  A VFS over the default one; only xWrite differs. */

typedef struct full_file {
    sqlite3_file base;             /* our methods */
    sqlite3_file *real;            /* the default VFS's file, right after this struct */
} full_file;

static sqlite3_vfs *real_vfs;
static long long full_left;        /* bytes that may still be written (atomic) */

#define REAL(f) (((full_file *)(f))->real)
static int ff_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int ff_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{ return REAL(f)->pMethods->xRead(REAL(f), b, n, o); }
static int ff_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    if (__atomic_sub_fetch(&full_left, n, __ATOMIC_RELAXED) < 0)
        return SQLITE_FULL;
    return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 n)
{ return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int ff_sync(sqlite3_file *f, int fl) { return REAL(f)->pMethods->xSync(REAL(f), fl); }
static int ff_size(sqlite3_file *f, sqlite3_int64 *n)
{ return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int ff_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int ff_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int ff_reserved(sqlite3_file *f, int *r)
{ return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int ff_control(sqlite3_file *f, int op, void *a)
{ return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int ff_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int ff_device(sqlite3_file *f)
{ return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int ff_shm_map(sqlite3_file *f, int pg, int sz, int ext, void volatile **p)
{ return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, ext, p); }
static int ff_shm_lock(sqlite3_file *f, int off, int n, int fl)
{ return REAL(f)->pMethods->xShmLock(REAL(f), off, n, fl); }
static void ff_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int ff_shm_unmap(sqlite3_file *f, int del)
{ return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
#undef REAL

static const sqlite3_io_methods full_methods = {
    2, ff_close, ff_read, ff_write, ff_truncate, ff_sync, ff_size, ff_lock, ff_unlock,
    ff_reserved, ff_control, ff_sector, ff_device, ff_shm_map, ff_shm_lock, ff_shm_barrier,
    ff_shm_unmap, NULL, NULL,
};

static int ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    full_file *ff = (full_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out);
    f->pMethods = rc == SQLITE_OK && ff->real->pMethods ? &full_methods : NULL;
    return rc;
}

static sqlite3_vfs full_vfs;
static pthread_once_t full_once = PTHREAD_ONCE_INIT;

static void full_init(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    if (!real_vfs)
        return;
    full_vfs = *real_vfs;
    full_vfs.zName = "flowrt-full";
    full_vfs.szOsFile = (int)sizeof(full_file) + real_vfs->szOsFile;
    full_vfs.xOpen = ff_open;
    full_left = atoll(getenv("FLOWRT_TEST_DISK_FULL"));
    sqlite3_vfs_register(&full_vfs, 0);
}

/* The VFS to open journals with: NULL, or the full-disk one for tests. */
static const char *journal_vfs(void)
{
    const char *t = getenv("FLOWRT_TEST_DISK_FULL");
    if (!t || !*t)
        return NULL;
    pthread_once(&full_once, full_init);
    return real_vfs ? "flowrt-full" : NULL;
}

/* Opens j->path (read-write, created if missing; or read only), refusing a
 * damaged file.  A read-only open of a journal in WAL mode whose directory
 * cannot be written (no -shm can be made) reads the file as it is. */
/* A journal holds what models answered about the data (and, with
 * --trace-content, the prompts): it is created readable by its owner only,
 * and one an older flowc left readable by others is made so when it is
 * opened for writing.  SQLite gives its -wal and -shm files the same mode. */
static void private_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        close(fd);
        return;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == geteuid() &&
        (sb.st_mode & 077))
        chmod(path, sb.st_mode & 0700);
}

/* The connection reads calls_all through fr_chunk (after the schema is
 * current: a read-only one reads an older journal as it is). */
static bool attach_chunks(fr_journal *j, fr_buf *err)
{
    if (fr_chunk_attach(j->db))
        return true;
    db_error(j, err, "cannot read its calls");
    return false;
}

static bool open_conn(fr_journal *j, bool ro, fr_buf *err)
{
    int flags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI;
    char why[256];
    if (!ro)
        private_file(j->path);
    for (int immutable = 0; immutable < 2; immutable++) {
        fr_buf uri = { 0 };
        fr_buf_puts(&uri, "file:");
        for (const char *p = j->path; *p; p++)
            if (*p == '%' || *p == '?' || *p == '#')
                fr_buf_printf(&uri, "%%%02X", (unsigned char)*p);
            else
                fr_buf_put(&uri, p, 1);
        if (immutable)
            fr_buf_puts(&uri, "?immutable=1");
        sqlite3_close(j->db);
        j->db = NULL;
        int rc = uri.s ? sqlite3_open_v2(uri.s, &j->db, flags, journal_vfs()) : SQLITE_NOMEM;
        fr_buf_free(&uri);
        if (rc != SQLITE_OK) {
            db_error(j, err, "cannot open");
            return false;
        }
        sqlite3_busy_timeout(j->db, 10000);
        int ec;
        if (is_damaged(j->db, why, sizeof why, &ec)) {
            refuse_damaged(j->path, j->db, why, err);
            return false;
        }
        /* a read-only WAL journal needs its -shm file, or the file read as is */
        if (!ro || (ec != SQLITE_CANTOPEN && ec != SQLITE_READONLY))
            break;
    }
    return !ro || attach_chunks(j, err);
}

static bool open_db(fr_journal *j, fr_buf *err)
{
    if (!open_conn(j, false, err))
        return false;
    const char *sync = getenv("FLOWRT_JOURNAL_SYNC");
    bool normal = sync && strcmp(sync, "normal") == 0;
    return db_exec(j, "PRAGMA journal_mode=WAL", err) &&
           db_exec(j, normal ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", err) &&
           db_exec(j, "PRAGMA foreign_keys=OFF", err) && ensure_schema(j, err) &&
           attach_chunks(j, err) &&
           sqlite3_prepare_v3(j->db, "BEGIN IMMEDIATE", -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_begin, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, "COMMIT", -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_commit, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, "UPDATE runs SET active_ms = ?2 WHERE id = ?1", -1,
                              SQLITE_PREPARE_PERSISTENT, &j->st_active, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, sql_phase, -1, SQLITE_PREPARE_PERSISTENT, &j->st_phase,
                              NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, sql_hold_new, -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_hold_new, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, sql_hold, -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_hold, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, sql_rec, -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_rec, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, sql_chunk, -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_chunk, NULL) == SQLITE_OK &&
           sqlite3_prepare_v3(j->db, sql_next, -1, SQLITE_PREPARE_PERSISTENT,
                              &j->st_next, NULL) == SQLITE_OK;
}

/* The handle around a connection, not yet opened. */
static fr_journal *handle_new(const char *path, fr_buf *err)
{
    fr_journal *j = fr_calloc(1, sizeof *j);
    if (!j || !(j->path = fr_strdup(path))) {
        fr_buf_puts(err, "out of memory");
        fr_free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    j->tail = &j->head;
    j->lock_fd = -1;
    j->ph_cur = -1;
    const char *w = getenv("FLOWRT_JOURNAL_WINDOW_MS");
    j->window_ms = w && *w ? atoi(w) : WINDOW_MS;
    sqlite3_randomness(sizeof j->owner, &j->owner);
    return j;
}

fr_journal *fr_journal_open(const char *path, fr_buf *err)
{
    fr_journal *j = handle_new(path, err);
    if (j && (!make_parents(path, err) || !open_db(j, err))) {
        if (j->db && err && err->len == 0)
            db_error(j, err, "cannot prepare");
        fr_journal_close(j);
        return NULL;
    }
    return j;
}

fr_journal *fr_journal_open_ro(const char *path, fr_buf *err)
{
    fr_journal *j = handle_new(path, err);
    if (j && !open_conn(j, true, err)) {
        fr_journal_close(j);
        return NULL;
    }
    return j;
}

void fr_journal_close(fr_journal *j)
{
    if (!j)
        return;
    writer_stop(j);
    sqlite3_finalize(j->st_begin);
    sqlite3_finalize(j->st_commit);
    sqlite3_finalize(j->st_active);
    sqlite3_finalize(j->st_phase);
    sqlite3_finalize(j->st_hold_new);
    sqlite3_finalize(j->st_hold);
    sqlite3_finalize(j->st_chunk);
    sqlite3_finalize(j->st_next);
    sqlite3_finalize(j->st_rec);
    sqlite3_close(j->db);
    if (j->lock_fd >= 0)
        close(j->lock_fd);
    map_free(&j->calls);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->work_cv);
    fr_free(j->path);
    fr_free(j);
}

size_t fr_journal_answer_count(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    size_t n = j->n_ok;
    pthread_mutex_unlock(&j->mu);
    return n;
}

int64_t fr_journal_count_runs(fr_journal *j, const char *workflow, const char *status)
{
    sqlite3_stmt *st;
    int64_t n = -1;
    db_acquire(j);
    if (sqlite3_prepare_v2(j->db, "SELECT count(*) FROM runs WHERE workflow = ?1 AND"
                           " status = ?2 AND id <> ?3", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, j->run_id, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
    }
    db_release(j);
    return n;
}

const char *fr_journal_run_id(const fr_journal *j)
{
    return j ? j->run_id : "";
}

/* ---- runs ---------------------------------------------------------------- */

/* A run is held by the process that runs it through an flock on
 * "<journal>-<run id>.lock": the kernel drops it when the process dies, so
 * a killed run is free to resume at once and two processes never run the
 * same run.  The path, malloc'd. */
static char *lock_path(const fr_journal *j, const char *run_id)
{
    size_t n = strlen(j->path) + strlen(run_id) + sizeof "-.lock";
    char *p = fr_malloc(n);
    if (p)
        snprintf(p, n, "%s-%s.lock", j->path, run_id);
    return p;
}

/* Takes the run's lock for this process, or says who has it. */
static bool lock_run(fr_journal *j, const char *run_id, fr_buf *err)
{
    char *path = lock_path(j, run_id);
    int fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666) : -1;
    fr_free(path);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
        j->lock_fd = fd;
        return true;
    }
    bool busy = fd >= 0 && errno == EWOULDBLOCK;
    fr_buf_puts(err, "run ");
    fr_buf_puts(err, run_id);
    fr_buf_puts(err, busy ? " is running in another process" : ": cannot lock it");
    if (fd >= 0)
        close(fd);
    return false;
}

/* Whether a process holds run_id now (its lock is taken). */
static bool run_is_live(const fr_journal *j, const char *run_id)
{
    char *path = lock_path(j, run_id);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    fr_free(path);
    if (fd < 0)
        return false;
    bool live = flock(fd, LOCK_SH | LOCK_NB) != 0;
    close(fd);
    return live;
}

/* "20261121-014501-3fa2": sortable by start, unique with its random tail. */
void fr_journal_new_run_id(char id[FR_RUN_ID_MAX])
{
    struct timespec ts;
    struct tm tm;
    unsigned r;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    sqlite3_randomness(sizeof r, &r);
    size_t n = strftime(id, FR_RUN_ID_MAX, "%Y%m%d-%H%M%S-", &tm);
    snprintf(id + n, FR_RUN_ID_MAX - n, "%04x", r & 0xffff);
}

static bool insert_run(fr_journal *j, const char *workflow, const char *source_hash,
                       const char *args, fr_buf *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "INSERT INTO runs(id, workflow, source_hash, args,"
                           " started_ms, status) VALUES(?1,?2,?3,?4,?5,'running')",
                           -1, &st, NULL) != SQLITE_OK) {
        db_error(j, err, "starting a run");
        return false;
    }
    int rc = SQLITE_CONSTRAINT;
    for (int tries = 0; rc == SQLITE_CONSTRAINT && tries < 8; tries++) {
        fr_journal_new_run_id(j->run_id);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, workflow, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, source_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, args, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, fr_wall_ms());
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        db_error(j, err, "starting a run");
        j->run_id[0] = '\0';
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE;
}

bool fr_journal_begin(fr_journal *j, const char *workflow, const char *source_hash,
                      const char *args, fr_buf *err)
{
    db_acquire(j);
    bool ok = insert_run(j, workflow, source_hash, args, err) && lock_run(j, j->run_id, err);
    j->active_base = 0;
    j->bound_ms = fr_now_ms();
    db_release(j);
    return ok && writer_start(j, err);
}

/* The stored row of the run to resume. */
typedef struct jrun {
    char id[FR_RUN_ID_MAX];        /* its id */
    char *source_hash;             /* the program it was started with (malloc'd) */
    char *args;                    /* its arguments, a JSON object (malloc'd) */
    char *status;                  /* its status (malloc'd) */
    int64_t active_ms;             /* the time processes spent running it */
    int64_t skipped;               /* items its fan-outs skipped after errors */
    int64_t pruned_ms;             /* when runs --prune removed its answers, 0 never */
} jrun;

static void jrun_free(jrun *r)
{
    fr_free(r->source_hash);
    fr_free(r->args);
    fr_free(r->status);
}

/* Finds run_id of workflow, or its latest run that is not done. */
static bool find_run(fr_journal *j, const char *workflow, const char *run_id, jrun *r,
                     bool skipped, fr_buf *err)
{
    sqlite3_stmt *st;
    const char *sql = run_id
        ? "SELECT id, source_hash, args, status, active_ms, skipped, pruned_ms FROM runs"
          " WHERE id = ?2 AND workflow = ?1"
        : skipped
        ? "SELECT id, source_hash, args, status, active_ms, skipped, pruned_ms FROM runs"
          " WHERE workflow = ?1 AND (status <> 'done' OR skipped > 0) AND pruned_ms IS NULL"
          " ORDER BY started_ms DESC, rowid DESC LIMIT 1"
        : "SELECT id, source_hash, args, status, active_ms, skipped, pruned_ms FROM runs"
          " WHERE workflow = ?1 AND status <> 'done' AND pruned_ms IS NULL"
          " ORDER BY started_ms DESC, rowid DESC LIMIT 1";
    if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_error(j, err, "finding the run");
        return false;
    }
    sqlite3_bind_text(st, 1, workflow, -1, SQLITE_STATIC);
    if (run_id)
        sqlite3_bind_text(st, 2, run_id, -1, SQLITE_STATIC);
    bool found = sqlite3_step(st) == SQLITE_ROW;
    if (found) {
        snprintf(r->id, sizeof r->id, "%s", (const char *)sqlite3_column_text(st, 0));
        r->source_hash = fr_strdup((const char *)sqlite3_column_text(st, 1));
        r->args = fr_strdup((const char *)sqlite3_column_text(st, 2));
        r->status = fr_strdup((const char *)sqlite3_column_text(st, 3));
        r->active_ms = sqlite3_column_int64(st, 4);
        r->skipped = sqlite3_column_int64(st, 5);
        r->pruned_ms = sqlite3_column_int64(st, 6);
    } else if (run_id) {
        fr_buf_puts(err, "no run '");
        fr_buf_puts(err, run_id);
        fr_buf_puts(err, "' of this workflow in the journal ");
        fr_buf_puts(err, j->path);
    } else {
        fr_buf_puts(err, skipped ? "no unfinished run and no run with skipped items of this"
                    " workflow in the journal " : "no unfinished run of this workflow in the"
                    " journal ");
        fr_buf_puts(err, j->path);
    }
    sqlite3_finalize(st);
    return found && r->source_hash && r->args && r->status;
}

/* A parameter as its flag; a runtime flag kept with them is one already. */
static void put_kebab(fr_buf *b, const char *name)
{
    if (strncmp(name, "--", 2) != 0)
        fr_buf_puts(b, "--");
    for (; *name; name++)
        fr_buf_put(b, *name == '_' ? "-" : name, 1);
}

static void put_json(fr_buf *b, json_t *v)
{
    if (!v) {
        fr_buf_puts(b, "unset");
        return;
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    fr_buf_puts(b, s ? s : "?");
    fr_free(s);
}

/* Names each argument that differs between the old and new JSON objects. */
static void diff_args(const char *old_text, const char *new_text, fr_buf *err)
{
    json_t *o = fr_json_loadb(old_text, strlen(old_text), 0, NULL);
    json_t *n = fr_json_loadb(new_text, strlen(new_text), 0, NULL);
    const char *k;
    json_t *v;
    int said = 0;
    json_object_foreach(n, k, v) {
        if (json_equal(v, json_object_get(o, k)))
            continue;
        fr_buf_puts(err, said++ ? ", " : "");
        put_kebab(err, k);
        fr_buf_puts(err, " was ");
        put_json(err, json_object_get(o, k));
        fr_buf_puts(err, ", now ");
        put_json(err, v);
    }
    json_object_foreach(o, k, v) {
        if (json_object_get(n, k))
            continue;
        fr_buf_puts(err, said++ ? ", " : "");
        put_kebab(err, k);
        fr_buf_puts(err, " was ");
        put_json(err, v);
        fr_buf_puts(err, ", now unset");
    }
    if (!said)
        fr_buf_puts(err, "the arguments differ");
    json_decref(o);
    json_decref(n);
}

/* Resume refuses a changed program or changed arguments unless forced. */
static bool check_same(const jrun *r, const char *source_hash, const char *args,
                       bool force, fr_buf *err)
{
    bool same_src = strcmp(r->source_hash, source_hash) == 0;
    json_t *a = fr_json_loadb(r->args, strlen(r->args), 0, NULL);
    json_t *b = fr_json_loadb(args, strlen(args), 0, NULL);
    bool same_args = a && b ? json_equal(a, b) : strcmp(r->args, args) == 0;
    json_decref(a);
    json_decref(b);
    if (force || (same_src && same_args))
        return true;
    fr_buf_puts(err, "cannot resume run ");
    fr_buf_puts(err, r->id);
    if (!same_src) {
        fr_buf_puts(err, ": the workflow changed since it started (source hash ");
        fr_buf_put(err, r->source_hash, strlen(r->source_hash) < 12 ? strlen(r->source_hash) : 12);
        fr_buf_puts(err, " then, ");
        fr_buf_put(err, source_hash, strlen(source_hash) < 12 ? strlen(source_hash) : 12);
        fr_buf_puts(err, " now)");
    }
    if (!same_args) {
        fr_buf_puts(err, same_src ? ": the arguments changed (" : "; the arguments changed (");
        diff_args(r->args, args, err);
        fr_buf_puts(err, ")");
    }
    fr_buf_puts(err, "; use --force to resume it anyway");
    return false;
}

/* Loads the calls of the bound run into the map: the finished ones' answers,
 * those a process left in flight (a hold, no record), and every row's id. */
static bool load_answers(fr_journal *j, fr_buf *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT key, output, status, id, in_chunk FROM calls_all"
                           " WHERE run_id = ?1 ORDER BY id", -1, &st, NULL) != SQLITE_OK) {
        db_error(j, err, "loading the run's calls");
        return false;
    }
    sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
    bool ok = true;
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        const char *status = (const char *)sqlite3_column_text(st, 2);
        char c = strcmp(status, "ok") == 0 ? 'o' : strcmp(status, "held") == 0 ? 'h' : 'f';
        const unsigned char *out = sqlite3_column_text(st, 1);
        char *k = fr_strdup((const char *)sqlite3_column_text(st, 0));
        char *o = c == 'o' ? fr_strdup(out ? (const char *)out : "null") : NULL;
        /* an entry of a chunk has no row to write to again */
        int64_t row = sqlite3_column_int(st, 4) ? 0 : sqlite3_column_int64(st, 3);
        ok = k && (c != 'o' || o) && map_put(&j->calls, k, o, row, c);
        if (!ok) {
            fr_free(k);
            fr_free(o);
            fr_buf_puts(err, "out of memory loading the journal");
        }
    }
    sqlite3_finalize(st);
    for (size_t i = 0; ok && i < j->calls.cap; i++) {
        j->n_ok += j->calls.slots[i].key && j->calls.slots[i].status == 'o';
        j->n_held += j->calls.slots[i].key && j->calls.slots[i].status == 'h';
    }
    return ok;
}

/* Running again; a forced resume adopts the new program and arguments. */
static bool mark_resumed(fr_journal *j, const char *source_hash, const char *args,
                         fr_buf *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "UPDATE runs SET status = 'running', ended_ms = NULL,"
                           " resumes = resumes + 1, source_hash = ?2, args = ?3"
                           " WHERE id = ?1", -1, &st, NULL) != SQLITE_OK) {
        db_error(j, err, "resuming the run");
        return false;
    }
    sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, source_hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, args, -1, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    if (!ok)
        db_error(j, err, "resuming the run");
    sqlite3_finalize(st);
    return ok;
}

/* A finished run is resumed only to retry its skipped items. */
static bool resumable(const jrun *r, int flags, fr_buf *err)
{
    if (r->pruned_ms > 0) {
        fr_buf_printf(err, "run %s cannot be resumed: its answers were removed by `runs --prune`"
                      " (start a new run)", r->id);
        return false;
    }
    if (strcmp(r->status, "done") != 0 || ((flags & FR_RESUME_SKIPPED) && r->skipped > 0))
        return true;
    fr_buf_puts(err, "run ");
    fr_buf_puts(err, r->id);
    if (flags & FR_RESUME_SKIPPED)
        fr_buf_puts(err, " finished with no item skipped; there is nothing to retry");
    else
        fr_buf_puts(err, " already finished; there is nothing to resume");
    return false;
}

static bool resume_locked(fr_journal *j, const char *workflow, const char *run_id,
                          const char *source_hash, const char *args, int flags,
                          fr_buf *err)
{
    jrun r = { "", NULL, NULL, NULL, 0, 0, 0 };
    bool ok = find_run(j, workflow, run_id, &r, flags & FR_RESUME_SKIPPED, err) &&
              resumable(&r, flags, err);
    ok = ok && check_same(&r, source_hash, args, flags & FR_RESUME_FORCE, err) &&
         lock_run(j, r.id, err);
    if (ok) {
        snprintf(j->run_id, sizeof j->run_id, "%s", r.id);
        j->active_base = r.active_ms;
        j->bound_ms = fr_now_ms();
        ok = load_answers(j, err) && mark_resumed(j, source_hash, args, err);
    }
    if (!ok)
        j->run_id[0] = '\0';
    jrun_free(&r);
    return ok;
}

bool fr_journal_pending(fr_journal *j, const char *workflow, const char *source_hash,
                        const char *args)
{
    jrun r = { "", NULL, NULL, NULL, 0, 0, 0 };
    fr_buf e = { 0 };
    db_acquire(j);
    bool ok = find_run(j, workflow, NULL, &r, false, &e) &&
              check_same(&r, source_hash, args, false, &e);
    db_release(j);
    jrun_free(&r);
    fr_buf_free(&e);
    return ok;
}

bool fr_journal_resume(fr_journal *j, const char *workflow, const char *run_id,
                       const char *source_hash, const char *args, int flags,
                       fr_buf *err)
{
    db_acquire(j);
    bool ok = resume_locked(j, workflow, run_id, source_hash, args, flags, err);
    db_release(j);
    return ok && writer_start(j, err);
}

bool fr_journal_prior_spend(fr_journal *j, int phase, double *usd, int64_t *tokens)
{
    sqlite3_stmt *st;
    *usd = 0;
    *tokens = 0;
    db_acquire(j);
    bool ok = sqlite3_prepare_v2(j->db,
        "SELECT total(usd + held_usd + lost_usd),"
        " total(tokens_in + tokens_out + held_tokens + lost_tokens)"
        " FROM calls_all WHERE run_id = ?1 AND (?2 < 0 OR phase = ?2)", -1, &st,
        NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, phase);
        ok = sqlite3_step(st) == SQLITE_ROW;
        if (ok) {
            *usd = sqlite3_column_double(st, 0);
            *tokens = (int64_t)sqlite3_column_double(st, 1);
        }
        sqlite3_finalize(st);
    }
    db_release(j);
    return ok;
}

bool fr_journal_end(fr_journal *j, const char *status, double usd, int64_t tokens,
                    int64_t skipped)
{
    sqlite3_stmt *st;
    char *lock = strcmp(status, "done") == 0 ? lock_path(j, j->run_id) : NULL;
    if (lock)
        unlink(lock);                        /* a finished run is never resumed */
    fr_free(lock);
    db_acquire(j);
    bool ok = sqlite3_prepare_v2(j->db, "UPDATE runs SET status = ?2, ended_ms = ?3,"
                                 " usd = ?4, tokens = ?5, active_ms = ?6, skipped = ?7"
                                 " WHERE id = ?1", -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, fr_wall_ms());
        sqlite3_bind_double(st, 4, usd);
        sqlite3_bind_int64(st, 5, tokens);
        sqlite3_bind_int64(st, 6, active_ms(j));
        sqlite3_bind_int64(st, 7, skipped);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    db_release(j);
    return ok;
}

/* ---- calls: keys, lookups, the group commit ------------------------------ */

/* Decimal digits of v into buf (NUL-terminated; 21 bytes suffice). */
static void utoa(char *buf, uint64_t v)
{
    char t[24];
    int n = 0;
    do
        t[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (int i = 0; i < n; i++)
        buf[i] = t[n - 1 - i];
    buf[n] = '\0';
}

void fr_journal_key(fr_jcall *c, const char *system, const char *prompt)
{
    fr_sha256 s;
    fr_sha256_init(&s);
    fr_sha256_update(&s, system ? system : "", system ? strlen(system) + 1 : 1);
    fr_sha256_update(&s, prompt, strlen(prompt));
    fr_sha256_final_hex(&s, c->input_hash);
    /* "agent/site/item/seq/hash16", without snprintf (a call's cost) */
    char num[2][24];
    const char *parts[] = { c->agent, num[0], c->item && *c->item ? c->item : "-", num[1],
                            c->input_hash };
    if (c->site < 0) {
        num[0][0] = '-';
        utoa(num[0] + 1, (uint64_t)-(int64_t)c->site);
    } else {
        utoa(num[0], (uint64_t)c->site);
    }
    utoa(num[1], c->seq);
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        size_t l = i == 4 ? 16 : strlen(parts[i]);
        if (n + l + 2 > sizeof c->key)
            l = sizeof c->key - n - 2;
        memcpy(c->key + n, parts[i], l);
        n += l;
        c->key[n++] = i < 4 ? '/' : '\0';
    }
}

json_t *fr_journal_lookup(fr_journal *j, fr_jcall *c)
{
    if (!j || j->calls.n == 0)
        return NULL;
    pthread_mutex_lock(&j->mu);
    const jentry *e = map_get(&j->calls, c->key);
    if (e)
        c->row = e->row;
    json_t *v = e && e->status == 'o'
                ? fr_json_loadb(e->output, strlen(e->output), JSON_DECODE_ANY, NULL) : NULL;
    pthread_mutex_unlock(&j->mu);
    return v;
}

bool fr_journal_was_in_flight(fr_journal *j, fr_jcall *c)
{
    if (!j || j->n_held == 0)
        return false;
    pthread_mutex_lock(&j->mu);
    const jentry *e = map_get(&j->calls, c->key);
    bool held = e && e->status == 'h';
    if (e)
        c->row = e->row;
    pthread_mutex_unlock(&j->mu);
    return held;
}

/* ---- the writer: one transaction per batch --------------------------------- */

static void bind_call(sqlite3_stmt *st, const char *run_id, const fr_jcall *c)
{
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->item ? c->item : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 5, c->phase);
}

static bool step_once(sqlite3_stmt *st)
{
    bool ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_reset(st);
    return ok;
}

/* The next free call id of this transaction (ids of calls and chunks are
 * one sequence: other processes may have written since the last one). */
static bool next_id(fr_journal *j, int64_t *next)
{
    if (*next > 0)
        return true;
    bool ok = sqlite3_step(j->st_next) == SQLITE_ROW;
    *next = ok ? sqlite3_column_int64(j->st_next, 0) : 0;
    sqlite3_reset(j->st_next);
    return ok && *next > 0;
}

static bool write_hold(fr_journal *j, jop *op, int64_t *next)
{
    fr_jcall *c = op->call;
    bool new_row = c->row == 0;
    sqlite3_stmt *st = new_row ? j->st_hold_new : j->st_hold;
    if (new_row) {
        if (!next_id(j, next))
            return false;
        bind_call(st, j->run_id, c);
        sqlite3_bind_double(st, 6, op->usd);
        sqlite3_bind_int64(st, 7, op->tokens);
        sqlite3_bind_int64(st, 8, j->owner);
        sqlite3_bind_int64(st, 9, *next);
    } else {
        sqlite3_bind_double(st, 1, op->usd);
        sqlite3_bind_int64(st, 2, op->tokens);
        sqlite3_bind_int64(st, 3, j->owner);
        sqlite3_bind_int64(st, 4, c->row);
    }
    bool ok = step_once(st);
    if (ok && new_row)
        c->row = (*next)++;
    return ok;
}

/* Whether c is an answer (else a failed call). */
static bool answered(const fr_jcall *c)
{
    return c->output || c->output_json;
}

/* A result's values (sql_rec's ?6 to ?17), its output as text given. */
static void bind_result(sqlite3_stmt *st, const fr_jcall *c, const char *output, int64_t now)
{
    sqlite3_bind_text(st, 6, output, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, output ? "ok" : "failed", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, c->tokens_in);
    sqlite3_bind_int64(st, 9, c->tokens_out);
    sqlite3_bind_double(st, 10, c->usd);
    sqlite3_bind_int(st, 11, c->attempts);
    sqlite3_bind_int64(st, 12, c->latency_ms);
    sqlite3_bind_int64(st, 13, now);
    sqlite3_bind_text(st, 14, c->tier ? c->tier : "standard", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 15, c->cache_read);
    sqlite3_bind_int64(st, 16, c->cache_write);
    sqlite3_bind_double(st, 17, c->saved_usd);
}

/* Results without a row (nothing writes to a finished call again), as the
 * entries of one chunk (schema_v9, fr_chunk.c). */
typedef struct jchunk {
    fr_buf body;                   /* "[[...],[...]" so far */
    int n;                         /* entries */
} jchunk;

/* Writes the chunk gathered so far (none: true) under the next ids. */
static bool chunk_flush(fr_journal *j, jchunk *k, int64_t *next)
{
    if (k->n == 0)
        return true;
    fr_buf_put(&k->body, "]", 1);
    bool ok = !fr_buf_failed(&k->body) && next_id(j, next);
    if (ok) {
        sqlite3_bind_int64(j->st_chunk, 1, *next);
        sqlite3_bind_text(j->st_chunk, 2, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(j->st_chunk, 3, k->n);
        sqlite3_bind_text(j->st_chunk, 4, k->body.s, (int)k->body.len, SQLITE_STATIC);
        ok = step_once(j->st_chunk);
        *next += k->n;
    }
    k->n = 0;
    k->body.len = 0;
    return ok;
}

/* A result for a call that has a row (its hold, or an earlier process's). */
static bool update_result(fr_journal *j, jop *op)
{
    const fr_jcall *c = op->call;
    sqlite3_stmt *st = j->st_rec;
    char *text = c->detail_own ? fr_jdetail_text(c->detail_own) : NULL;
    char *out = c->output_json ? fr_to_json(c->output_json, c->output_type) : NULL;
    if (c->output_json && !out) {
        fr_free(text);
        return false;              /* out of memory: the batch fails, never a lost answer */
    }
    bind_result(st, c, out ? out : c->output, fr_wall_ms());
    sqlite3_bind_int64(st, 18, c->row);
    sqlite3_bind_text(st, 19, text ? text : c->detail, -1, SQLITE_STATIC);
    bool ok = step_once(st);
    fr_free(text);
    fr_free(out);
    return ok;
}

/* Writes the current phase's active time (none: true); the caller holds
 * the connection.  The phase clock is read under j->mu: the root sets it. */
static bool phase_step(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    int ph = j->ph_cur;
    int64_t ms = j->ph_base + (fr_now_ms() - j->ph_start_ms);
    pthread_mutex_unlock(&j->mu);
    if (ph < 0)
        return true;
    sqlite3_bind_text(j->st_phase, 1, j->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int(j->st_phase, 2, ph);
    sqlite3_bind_int64(j->st_phase, 3, ms);
    return step_once(j->st_phase);
}

/* The bound run's active time and its phase's, so that a killed run's time
 * caps count them on resume: with a batch at most every BOOKKEEP_MS, not
 * with each (a page or two a commit saved), and always when a phase or the
 * run ends.  The caller holds the connection. */
static bool times_step(fr_journal *j, bool now)
{
    int64_t t = fr_now_ms();
    if (!now && t - j->said_ms < BOOKKEEP_MS)
        return true;
    sqlite3_bind_text(j->st_active, 1, j->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(j->st_active, 2, active_ms(j));
    bool ok = step_once(j->st_active) && phase_step(j);
    if (ok)
        j->said_ms = t;
    return ok;
}

/* One transaction for the ops of batch (none is OP_ACQUIRE), in their
 * order; results without a row go into chunks, a chunk ending before any
 * other write (ids stay in the order of the ops). */
static bool commit_batch(fr_journal *j, jop *batch)
{
    jchunk k = { { 0 }, 0 };
    int64_t next = 0, now = fr_wall_ms();
    bool ok = step_once(j->st_begin);
    for (jop *op = batch; ok && op; op = op->next) {
        bool fresh = op->kind == OP_RECORD && op->call->row == 0;
        if (fresh) {
            fr_chunk_put(&k.body, k.n++ == 0, op->call, now);
            if (k.n == CHUNK_MAX || k.body.len >= CHUNK_BYTES)
                ok = chunk_flush(j, &k, &next);
            continue;
        }
        ok = chunk_flush(j, &k, &next) &&
             (op->kind == OP_RESERVE ? write_hold(j, op, &next)
              : op->kind == OP_RECORD ? update_result(j, op) : true);
    }
    ok = ok && chunk_flush(j, &k, &next);
    fr_buf_free(&k.body);
    ok = ok && times_step(j, false) && step_once(j->st_commit);
    if (!ok && !sqlite3_get_autocommit(j->db))
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    return ok;
}

/* Takes the ops up to the first OP_ACQUIRE (j->mu held): the next batch. */
static jop *take_batch(fr_journal *j)
{
    jop *batch = j->head, **end = &j->head;
    size_t n = 0;
    while (*end && (*end)->kind != OP_ACQUIRE && n < BATCH_MAX)
        end = &(*end)->next, n++;
    if (n == 0)
        return NULL;
    j->head = *end;
    *end = NULL;
    if (!j->head)
        j->tail = &j->head;
    j->queued -= n;
    for (jop *op = batch; op; op = op->next)
        j->waited_queued -= op->waited;
    return batch;
}

/* Results only, and few: wait up to the window for more (j->mu held). */
static void gather(fr_journal *j)
{
    if (j->window_ms <= 0 || j->waited_queued || j->stop || j->queued >= BATCH_MAX)
        return;
    int64_t at = fr_mono_ns() + (int64_t)j->window_ms * 1000000LL;
    struct timespec ts = { at / 1000000000LL, at % 1000000000LL };
    while (!j->waited_queued && !j->stop && j->queued < BATCH_MAX &&
           pthread_cond_timedwait(&j->work_cv, &j->mu, &ts) == 0)
        ;
}

/* The batch is done: its waiters are told, the rest freed, callbacks run
 * (j->mu held on entry and return, not while callbacks run). */
static void batch_done(fr_journal *j, jop *batch, bool ok)
{
    jop *after = NULL, **at = &after;
    for (jop *op = batch, *next; op; op = next) {
        next = op->next;
        j->rows++;
        if (op->kind == OP_RECORD && answered(op->call)) {
            j->answers_ok += ok;
            j->answers_lost += !ok;
        }
        if (op->waited) {
            op->ok = ok;
            op->done = true;
        } else if (op->kind == OP_AFTER) {
            *at = op, at = &op->next, op->next = NULL;
        } else {
            fr_jdetail_free(op->copy.detail_own);
            json_decref(op->copy.output_json);
            fr_free(op);
        }
    }
    fr_cond_broadcast(&j->done_cv);
    pthread_mutex_unlock(&j->mu);
    while (after) {
        jop *next = after->next;
        after->after(after->arg);
        fr_free(after);
        after = next;
    }
    pthread_mutex_lock(&j->mu);
}

static void note_failure(fr_journal *j)
{
    if (j->failed)
        return;
    j->failed = true;
    snprintf(j->failure, sizeof j->failure, "%s", sqlite3_errmsg(j->db));
}

/* The writer has nothing queued: it copies what the WAL holds into the
 * database (a passive checkpoint, at most every IDLE_CKPT_MS), so that
 * closing the journal has only the last commits left to copy.  j->mu is
 * held on entry and return, not while it works. */
static void idle_checkpoint(fr_journal *j)
{
    int64_t now = fr_now_ms();
    if (!j->dirty || j->head || j->stop || j->busy || now - j->ckpt_ms < IDLE_CKPT_MS)
        return;
    j->dirty = false;
    j->ckpt_ms = now;
    pthread_mutex_unlock(&j->mu);
    sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    pthread_mutex_lock(&j->mu);
}

static void *writer_main(void *arg)
{
    fr_journal *j = arg;
    pthread_mutex_lock(&j->mu);
    for (;;) {
        while ((!j->head || j->busy) && !(j->stop && !j->head)) {
            j->idle = true;
            pthread_cond_wait(&j->work_cv, &j->mu);
            j->idle = false;
        }
        if (!j->head)
            break;
        if (j->head->kind == OP_ACQUIRE) {   /* a caller's turn: the connection is its */
            jop *op = j->head;
            if (!(j->head = op->next))
                j->tail = &j->head;
            j->queued--;
            j->waited_queued--;
            j->busy = true;
            op->ok = op->done = true;
            fr_cond_broadcast(&j->done_cv);
            continue;
        }
        gather(j);
        jop *batch = take_batch(j);
        if (!batch)
            continue;
        bool failed = j->failed;
        pthread_mutex_unlock(&j->mu);
        bool ok = !failed && commit_batch(j, batch);
        pthread_mutex_lock(&j->mu);
        if (!ok)
            note_failure(j);
        j->batches++;
        j->dirty = true;
        batch_done(j, batch, ok);
        idle_checkpoint(j);
    }
    pthread_mutex_unlock(&j->mu);
    return NULL;
}

/* The bound handle's writer thread. */
static bool writer_start(fr_journal *j, fr_buf *err)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    bool ok = pthread_create(&j->writer, NULL, writer_main, j) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_lock(&j->mu);
    j->writer_on = ok;
    pthread_mutex_unlock(&j->mu);
    if (!ok)
        fr_buf_puts(err, "cannot start the journal's writer thread");
    return ok;
}

/* Drains the queue and ends the writer. */
static void writer_stop(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    bool on = j->writer_on;
    j->stop = true;
    pthread_cond_signal(&j->work_cv);
    pthread_mutex_unlock(&j->mu);
    if (on)
        pthread_join(j->writer, NULL);
    pthread_mutex_lock(&j->mu);
    j->writer_on = false;
    pthread_mutex_unlock(&j->mu);
}

/* Queues a waited op and waits for its commit; without a writer the caller
 * commits it alone. */
static bool submit(fr_journal *j, jop *op)
{
    op->waited = true;
    pthread_mutex_lock(&j->mu);
    if (!j->writer_on) {
        pthread_mutex_unlock(&j->mu);
        db_acquire(j);
        bool ok = commit_batch(j, op);
        db_release(j);
        return ok;
    }
    bool ok = !j->failed;
    if (ok) {
        enqueue_op(j, op);
        ok = wait_op(j, op);
    }
    pthread_mutex_unlock(&j->mu);
    return ok;
}

bool fr_journal_reserve(fr_journal *j, fr_jcall *c, double usd, int64_t tokens)
{
    jop op = { .kind = OP_RESERVE, .call = c, .usd = usd, .tokens = tokens };
    return !j || !j->run_id[0] || submit(j, &op);
}

bool fr_journal_record(fr_journal *j, const fr_jcall *c)
{
    fr_jcall copy = *c;
    jop op = { .kind = OP_RECORD, .call = &copy };
    return !j || !j->run_id[0] || submit(j, &op);
}

/* Copies s into *dst at *p; returns the copy. */
static const char *copy_str(char **p, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    const char *r = *p;
    *p += n;
    return r;
}

/* fr_journal_record, then c's detail freed (a result that cannot wait in
 * the queue). */
static bool record_now(fr_journal *j, const fr_jcall *c)
{
    bool ok = fr_journal_record(j, c);
    fr_jdetail_free(c->detail_own);
    return ok;
}

bool fr_journal_record_async(fr_journal *j, const fr_jcall *c)
{
    if (!j || !j->run_id[0]) {
        fr_jdetail_free(c->detail_own);
        return true;
    }
    pthread_mutex_lock(&j->mu);
    bool on = j->writer_on, failed = j->failed;
    pthread_mutex_unlock(&j->mu);
    if (!on)
        return record_now(j, c);
    if (failed) {
        pthread_mutex_lock(&j->mu);
        j->answers_lost += answered(c);
        pthread_mutex_unlock(&j->mu);
        fr_jdetail_free(c->detail_own);
        return false;
    }
    size_t n = 0;
    const char *strs[] = { c->agent, c->item, c->model, c->output, c->tier, c->detail };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        n += strs[i] ? strlen(strs[i]) + 1 : 0;
    jop *op = fr_malloc(sizeof *op + n);
    if (!op)
        return record_now(j, c);                 /* no memory to queue it: wait for it */
    memset(op, 0, sizeof *op);
    op->kind = OP_RECORD;
    op->copy = *c;                 /* the detail handed over with it */
    char *p = op->strings;
    op->copy.agent = copy_str(&p, c->agent);
    op->copy.item = copy_str(&p, c->item);
    op->copy.model = copy_str(&p, c->model);
    op->copy.output = copy_str(&p, c->output);
    op->copy.output_json = json_incref(c->output_json);
    op->copy.tier = copy_str(&p, c->tier);
    op->copy.detail = copy_str(&p, c->detail);
    op->call = &op->copy;
    pthread_mutex_lock(&j->mu);
    /* a writer that falls behind holds the items back, not their memory */
    while (j->queued >= QUEUE_MAX && j->writer_on && !j->stop && !j->failed)
        fr_cond_wait(&j->done_cv, &j->mu);
    enqueue_op(j, op);
    pthread_mutex_unlock(&j->mu);
    return true;
}

bool fr_journal_after(fr_journal *j, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&j->mu);
    bool on = j->writer_on;
    pthread_mutex_unlock(&j->mu);
    if (!on) {
        fn(arg);
        return true;
    }
    jop *op = fr_calloc(1, sizeof *op);
    if (!op)
        return false;
    op->kind = OP_AFTER, op->after = fn, op->arg = arg;
    pthread_mutex_lock(&j->mu);
    enqueue_op(j, op);
    pthread_mutex_unlock(&j->mu);
    return true;
}

void fr_journal_answers(fr_journal *j, int64_t *ok, int64_t *lost)
{
    pthread_mutex_lock(&j->mu);
    *ok = j->answers_ok;
    *lost = j->answers_lost;
    pthread_mutex_unlock(&j->mu);
}

bool fr_journal_failed(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    bool f = j->failed;
    pthread_mutex_unlock(&j->mu);
    return f;
}

bool fr_journal_flush(fr_journal *j)
{
    if (!j)
        return true;
    jop op = { .kind = OP_AFTER, .waited = true };
    pthread_mutex_lock(&j->mu);
    bool ok = !j->writer_on || (enqueue_op(j, &op), wait_op(j, &op));
    ok = ok && !j->failed;
    pthread_mutex_unlock(&j->mu);
    return ok;
}

/* ---- the approval queue -------------------------------------------------- */

static const char sql_queue[] =
    "INSERT INTO approvals(run_id, n, origin, item, idx, kind, title, item_json, created_ms)"
    " SELECT ?1, coalesce(max(n), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8"
    " FROM approvals WHERE run_id = ?1"
    " ON CONFLICT(run_id, origin, item, idx) DO UPDATE SET"
    " decision = CASE WHEN item_json = excluded.item_json THEN decision END,"
    " item_json = excluded.item_json, title = excluded.title";

/* Queues one item (an item already queued keeps its decision if unchanged). */
static bool queue_item(fr_journal *j, sqlite3_stmt *st, const char *origin,
                       const char *item, int idx, const char *kind, const char *title,
                       const char *json)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, item ? item : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, idx);
    sqlite3_bind_text(st, 5, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, title, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, fr_wall_ms());
    return sqlite3_step(st) == SQLITE_DONE;
}

static int decision_of(const unsigned char *d)
{
    if (!d)
        return -1;
    return strcmp((const char *)d, "approved") == 0 ? 1 : 0;
}

static bool read_decisions(fr_journal *j, const char *origin, const char *item, size_t n,
                           int *decisions)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(j->db, "SELECT idx, decision FROM approvals WHERE run_id = ?1"
                           " AND origin = ?2 AND item = ?3", -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, origin, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, item ? item : "", -1, SQLITE_STATIC);
    for (size_t i = 0; i < n; i++)
        decisions[i] = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t idx = sqlite3_column_int64(st, 0);
        if (idx >= 0 && (size_t)idx < n)
            decisions[idx] = decision_of(sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    return true;
}

static bool approvals_locked(fr_journal *j, const char *origin, const char *item,
                             const char *title, size_t n, char *const *items,
                             int *decisions, fr_buf *err)
{
    sqlite3_stmt *st;
    if (!db_exec(j, "BEGIN IMMEDIATE", err))
        return false;
    bool ok = sqlite3_prepare_v2(j->db, sql_queue, -1, &st, NULL) == SQLITE_OK;
    for (size_t i = 0; ok && i < n; i++)
        ok = queue_item(j, st, origin, item, (int)i, "approve", title, items[i]);
    sqlite3_finalize(st);
    ok = ok && read_decisions(j, origin, item, n, decisions);
    if (!ok) {
        db_error(j, err, "queueing items for approval");
        db_exec(j, "ROLLBACK", NULL);
        return false;
    }
    return db_exec(j, "COMMIT", err);
}

bool fr_journal_approvals(fr_journal *j, int site, const char *item, const char *title,
                          size_t n, char *const *items, int *decisions, fr_buf *err)
{
    char origin[32];
    snprintf(origin, sizeof origin, "approve:%d", site);
    db_acquire(j);
    bool ok = approvals_locked(j, origin, item, title, n, items, decisions, err);
    db_release(j);
    return ok;
}

bool fr_journal_escalate(fr_journal *j, const char *where, const char *item,
                         const char *item_json, const char *why)
{
    char origin[256];
    sqlite3_stmt *st;
    if (!j || !j->run_id[0])
        return false;
    snprintf(origin, sizeof origin, "escalate:%s", where ? where : "");
    db_acquire(j);
    bool ok = sqlite3_prepare_v2(j->db, sql_queue, -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        ok = queue_item(j, st, origin, item, 0, "escalate", why ? why : "", item_json);
        sqlite3_finalize(st);
    }
    db_release(j);
    return ok;
}

/* ---- provider batches ------------------------------------------------------ */

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

fr_jbatch *fr_journal_batches(fr_journal *j, const char *fanout, size_t *n)
{
    sqlite3_stmt *st;
    fr_jbatch *v = NULL;
    size_t cap = 0;
    *n = 0;
    if (!j || !j->run_id[0])
        return NULL;
    db_acquire(j);
    if (sqlite3_prepare_v2(j->db, "SELECT part, provider, token, batch_id, file_id, status,"
                           " ids, requests, created_ms FROM batches WHERE run_id = ?1 AND"
                           " fanout = ?2 ORDER BY part", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, fanout, -1, SQLITE_STATIC);
        while (sqlite3_step(st) == SQLITE_ROW) {
            if (*n == cap) {
                size_t c2 = cap ? cap * 2 : 8;
                fr_jbatch *w = fr_realloc(v, c2 * sizeof *w);
                if (!w)
                    break;
                v = w, cap = c2;
            }
            fr_jbatch *b = &v[*n];
            memset(b, 0, sizeof *b);
            b->part = sqlite3_column_int(st, 0);
            copy_col(st, 1, b->provider, sizeof b->provider);
            copy_col(st, 2, b->token, sizeof b->token);
            copy_col(st, 3, b->batch_id, sizeof b->batch_id);
            copy_col(st, 4, b->file_id, sizeof b->file_id);
            copy_col(st, 5, b->status, sizeof b->status);
            const unsigned char *ids = sqlite3_column_text(st, 6);
            b->ids = fr_strdup(ids ? (const char *)ids : "");
            b->requests = sqlite3_column_int64(st, 7);
            b->created_ms = sqlite3_column_int64(st, 8);
            if (!b->ids)
                break;
            (*n)++;
        }
        sqlite3_finalize(st);
    }
    db_release(j);
    return v;
}

void fr_jbatches_free(fr_jbatch *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fr_free(v[i].ids);
    fr_free(v);
}

bool fr_journal_batch_intent(fr_journal *j, const char *fanout, int part, const char *provider,
                             const char *token, const char *ids, int64_t requests,
                             double held_usd, int64_t created_ms)
{
    sqlite3_stmt *st;
    if (!j || !j->run_id[0])
        return true;
    db_acquire(j);
    bool ok = sqlite3_prepare_v2(j->db,
        "INSERT INTO batches(run_id, fanout, part, provider, token, ids, status, requests,"
        " held_usd, created_ms) VALUES(?1,?2,?3,?4,?5,?6,'submitting',?7,?8,?9)"
        " ON CONFLICT(run_id, fanout, part) DO UPDATE SET provider = excluded.provider,"
        " token = excluded.token, ids = excluded.ids, requests = excluded.requests,"
        " held_usd = excluded.held_usd, created_ms = excluded.created_ms,"
        " status = 'submitting', batch_id = NULL", -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, fanout, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, part);
        sqlite3_bind_text(st, 4, provider, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, token, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, ids, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, requests);
        sqlite3_bind_double(st, 8, held_usd);
        sqlite3_bind_int64(st, 9, created_ms);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    db_release(j);
    return ok;
}

bool fr_journal_batch_put(fr_journal *j, const char *fanout, int part, const char *batch_id,
                          const char *file_id, const char *status)
{
    sqlite3_stmt *st;
    if (!j || !j->run_id[0])
        return true;
    db_acquire(j);
    bool ok = sqlite3_prepare_v2(j->db,
        "UPDATE batches SET batch_id = coalesce(?4, batch_id), file_id = coalesce(?5, file_id),"
        " status = ?6, ended_ms = CASE WHEN ?6 IN ('ended', 'completed', 'cancelled',"
        " 'expired', 'failed') THEN coalesce(ended_ms, ?7) END"
        " WHERE run_id = ?1 AND fanout = ?2 AND part = ?3", -1, &st, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, fanout, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 3, part);
        sqlite3_bind_text(st, 4, batch_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, file_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 6, status, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, fr_wall_ms());
        ok = sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(j->db) == 1;
        sqlite3_finalize(st);
    }
    db_release(j);
    return ok;
}

/* ---- subcommands: runs, review, approve ---------------------------------- */

/* The time processes spent in phase of the bound run (0: none recorded). */
bool fr_journal_phase_ms(fr_journal *j, int phase, int64_t *ms)
{
    sqlite3_stmt *st;
    *ms = 0;
    db_acquire(j);
    bool ok = sqlite3_prepare_v2(j->db, "SELECT active_ms FROM phase_time"
                                 " WHERE run_id = ?1 AND phase = ?2", -1, &st,
                                 NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(st, 1, j->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 2, phase);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *ms = sqlite3_column_int64(st, 0);
        ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    db_release(j);
    return ok;
}

/* The root begins phase: each batch from now on records its active time,
 * counting base, what earlier processes spent in it. */
void fr_journal_phase_clock(fr_journal *j, int phase, int64_t base)
{
    pthread_mutex_lock(&j->mu);
    j->ph_cur = phase;
    j->ph_base = base;
    j->ph_start_ms = fr_now_ms();
    pthread_mutex_unlock(&j->mu);
}

/* The root's phase ended or the run stops: its active time, written now. */
bool fr_journal_phase_clock_stop(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    bool timing = j->ph_cur >= 0;
    pthread_mutex_unlock(&j->mu);
    if (!timing)
        return true;
    db_acquire(j);
    bool ok = phase_step(j);
    db_release(j);
    pthread_mutex_lock(&j->mu);
    j->ph_cur = -1;
    pthread_mutex_unlock(&j->mu);
    return ok;
}

/* ---- for the subcommands and the run side -------------------------------- */

sqlite3 *fr_journal_db(fr_journal *j)
{
    return j->db;
}

const char *fr_journal_path(const fr_journal *j)
{
    return j->path;
}

const char *fr_journal_errmsg(fr_journal *j)
{
    pthread_mutex_lock(&j->mu);
    bool failed = j->failed;
    pthread_mutex_unlock(&j->mu);
    return failed ? j->failure : sqlite3_errmsg(j->db);  /* failure is set once */
}

bool fr_journal_exec(fr_journal *j, const char *sql)
{
    return db_exec(j, sql, NULL);
}

bool fr_journal_run_live(const fr_journal *j, const char *run_id)
{
    return run_is_live(j, run_id);
}
