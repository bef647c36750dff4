/*
 * fr_runs.c: the journal's subcommands of every binary.
 *
 *   BINARY runs [--journal PATH]                 one line per run of this workflow
 *   BINARY runs --cost [--last N] [--journal PATH]  what each run paid, by tier and phase
 *   BINARY review [--journal PATH]               the items waiting for a person
 *   BINARY approve RUN_ID --all|--item N|--reject N [--by NAME] [--journal PATH]
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
        "SELECT r.id, r.status, r.started_ms, r.active_ms, r.resumes,"
        " (SELECT total(usd + held_usd + lost_usd) FROM calls c WHERE c.run_id = r.id),"
        " (SELECT total(tokens_in + tokens_out + held_tokens + lost_tokens) FROM calls c"
        "  WHERE c.run_id = r.id),"
        " (SELECT count(*) FROM calls c WHERE c.run_id = r.id AND c.status = 'ok'"
        "  AND c.key NOT LIKE '%#%'),"          /* a tool loop's turns are not calls */
        " (SELECT count(*) FROM approvals a WHERE a.run_id = r.id AND a.kind = 'approve'"
        " AND a.decision IS NULL)"
        " FROM runs r WHERE r.workflow = ?1 ORDER BY r.started_ms, r.rowid",
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
        "SELECT id, status, started_ms,"
        " (SELECT total(usd + held_usd + lost_usd) FROM calls c WHERE c.run_id = r.id),"
        " (SELECT total(usd) FROM calls c WHERE c.run_id = r.id AND c.tier = 'batch'),"
        " (SELECT total(saved_usd) FROM calls c WHERE c.run_id = r.id),"
        " (SELECT count(*) FROM calls c WHERE c.run_id = r.id AND c.status = 'ok'"
        "  AND c.key NOT LIKE '%#%')"
        " FROM (SELECT * FROM runs WHERE workflow = ?1 ORDER BY started_ms DESC, rowid DESC"
        " LIMIT ?2) r ORDER BY started_ms, rowid", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT total(usd + held_usd + lost_usd) FROM calls"
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
    fprintf(stderr, "usage: %s runs [--cost [--last N]] [--journal PATH]\n"
                    "       %s review [--journal PATH]\n"
                    "       %s approve RUN_ID [--all | --item N ... | --reject N ...]"
                    " [--by NAME] [--journal PATH]\n", prog, prog, prog);
    return 2;
}

/* BINARY CMD --help: what the subcommand does and its flags, on stdout. */
static int help(const fr_program *prog, const char *cmd, const char *self)
{
    if (strcmp(cmd, "runs") == 0)
        printf("usage: %s runs [--cost [--last N]] [--journal PATH]\n\n"
               "One line per run of %s in the journal: its id, its status (running; stopped:\n"
               "its process died, finish it with --resume; waiting for approval; budget;\n"
               "failed; done), when it started (UTC), the time processes spent on it, the\n"
               "dollars and tokens it spent, the calls journaled and the approvals pending.\n"
               "With --cost: what each run paid, at the standard price and at the batch\n"
               "price, what the prompt cache saved, and its dollars in each phase, with the\n"
               "mean of each column (--last N: the N latest runs).\n\n"
               "  --cost         the cost table\n"
               "  --last N       with --cost, only the N latest runs\n",
               self, prog->name);
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
               "once none waits, `%s --resume RUN_ID` goes on with the approved ones.\n\n"
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

/* Parses the flags after the subcommand (and RUN_ID); false on a bad one. */
static bool parse_flags(int argc, char **argv, const char **journal, jdecide *d, bool decide,
                        bool runs, int64_t *cost_last)
{
    bool by = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool twice = (strcmp(a, "--journal") == 0 && *journal) ||
                     (decide && strcmp(a, "--all") == 0 && d->all) ||
                     (decide && strcmp(a, "--by") == 0 && by);
        if (twice) {                         /* a second value would silently win */
            fprintf(stderr, "error: %s is given twice\n", a);
            return false;
        }
        if (strcmp(a, "--journal") == 0 && i + 1 < argc) {
            *journal = argv[++i];
        } else if (runs && strcmp(a, "--cost") == 0) {
            if (*cost_last < 0)
                *cost_last = 0;
        } else if (runs && strcmp(a, "--last") == 0) {
            if (!parse_number(i + 1 < argc ? argv[i + 1] : NULL, cost_last)) {
                fprintf(stderr, "error: --last needs a number of runs\n");
                return false;
            }
            i++;
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
        } else {
            fprintf(stderr, "error: unknown argument '%s'\n", a);
            return false;
        }
    }
    if (decide && !d->all && d->count == 0) {
        fprintf(stderr, "error: approve needs --all, --item N or --reject N\n");
        return false;
    }
    return true;
}

static int run_command(const fr_program *prog, const char *cmd, int argc, char **argv,
                       const char *self)
{
    bool decide = strcmp(cmd, "approve") == 0;
    const char *run_id = NULL, *journal = NULL;
    jdecide d = { false, NULL, NULL, 0, getenv("USER") ? getenv("USER") : "unknown" };
    if (decide) {
        if (argc < 1 || argv[0][0] == '-')
            return usage(self);
        run_id = argv[0];
        argc--, argv++;
    }
    d.ns = fr_calloc((size_t)argc + 1, sizeof *d.ns);
    d.approve = fr_calloc((size_t)argc + 1, sizeof *d.approve);
    int rc = 2;
    int64_t cost = -1;                 /* runs --cost: its --last N (0: all) */
    if (d.ns && d.approve && parse_flags(argc, argv, &journal, &d, decide,
                                         strcmp(cmd, "runs") == 0, &cost)) {
        char *path = journal ? fr_strdup(journal) : fr_journal_default_path(prog->name);
        fr_buf err = { 0 };
        bool exists = path && access(path, F_OK) == 0;
        fr_journal *j = !exists ? NULL : decide ? fr_journal_open(path, &err)
                                               : fr_journal_open_ro(path, &err);
        if (path && !exists) {
            fprintf(decide ? stderr : stdout, "%sno journal at %s: no run journaled here yet\n",
                    decide ? "error: " : "", path);
            rc = decide ? 2 : 0;
        } else if (!j) {
            fprintf(stderr, "error: %s\n", err.s ? err.s : "out of memory");
            rc = 1;
        } else {
            rc = decide ? cmd_approve(j, prog->name, run_id, &d)
                 : strcmp(cmd, "runs") == 0 ? (cost >= 0 ? cmd_cost(j, prog, cost)
                                                         : cmd_runs(j, prog->name))
                                            : cmd_review(j, prog->name);
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
    if (strcmp(cmd, "runs") != 0 && strcmp(cmd, "review") != 0 && strcmp(cmd, "approve") != 0)
        return -1;
    if (wants_help(argc - 2, argv + 2))
        return help(prog, cmd, argv[0]);
    return run_command(prog, cmd, argc - 2, argv + 2, argv[0]);
}
