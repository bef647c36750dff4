/*
 * fr_shard.c: one workflow as N cooperating processes, and `merge`.
 *
 * A workflow whose first fan-out says `shard: true` or `shard_key: FIELD`
 * (the compiler checked that its shards' parts add up to one process's
 * output: compiler/shard.c) runs as shard I of N with `--shard I/N`, or
 * with the index a scheduler sets: JOB_COMPLETION_INDEX (a Kubernetes
 * Indexed Job) or AWS_BATCH_JOB_ARRAY_INDEX (an AWS Batch array job) with
 * `--shards N`, or SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (a Slurm
 * job array) alone.  A shard is the whole program, but:
 *
 *   - the sharded fan-out takes only the items of its share: position p
 *     when p mod N is I (shard: true), or the item whose key's FNV-1a hash
 *     mod N is I (shard_key), so a key keeps its shard however the input is
 *     ordered;
 *   - every list made from the share, item by item, carries each row's
 *     position in the fan-out's input (a table from list to positions,
 *     filled by fr_shard_step and by the fan-outs' collect), so merge can
 *     put the rows back in one process's order;
 *   - it has its own journal (.flow/<workflow>.shard-0003-of-0016.db), and a
 *     shard started again after a lost node resumes its unfinished run
 *     from it by itself (no --resume needed, nothing paid twice);
 *   - each write_jsonl/write_csv goes to its part (out.jsonl ->
 *     out.part-0003-of-0016.jsonl), and the returned list to
 *     <workflow>.result.part-0003-of-0016.jsonl, not stdout;
 *   - without a shared budget (FLOWRT_REDIS_URL) it takes 1/N of each
 *     budget cap and of each rate limit, and says so;
 *   - at its end it writes <workflow>.shard-0003-of-0016.json: its status,
 *     run, arguments, per-phase counters and, for each part, the positions
 *     of its rows.  The file is removed when the shard starts, so a shard
 *     that has not finished has none.
 *
 * `BINARY merge [--shards N]` reads every shard's summary, refuses when one
 * is missing, unfinished or of another program or arguments, then merges
 * each output's parts by position into the output's own path (the result
 * to stdout), the review and skipped files, and prints the summary one
 * process would have printed (counters added up; a phase's time is its
 * slowest shard's).
 */
#include "fr_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_index = -1;           /* this process's shard, -1: not sharded */
static int g_count;                /* shards in all */
static bool g_shared;              /* budgets and limits shared through Redis */

bool fr_shard_on(void)
{
    return g_count > 0;
}

int fr_shard_index(void)
{
    return g_index;
}

int fr_shard_count(void)
{
    return g_count;
}

void fr_shard_set_shared(bool shared)
{
    g_shared = shared;
}

double fr_shard_share(void)
{
    return g_count > 0 && !g_shared ? 1.0 / g_count : 1.0;
}

/* ---- names ---------------------------------------------------------------- */

/* path with ".<what>-IIII-of-NNNN" before the extension of its last
 * component ("out.jsonl" -> "out.part-0003-of-0016.jsonl"); malloc'd. */
static char *name_with(const char *path, const char *what, int i, int n)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        dot = path + strlen(path);
    char tag[64];
    snprintf(tag, sizeof tag, ".%s-%04d-of-%04d", what, i, n);
    size_t cap = strlen(path) + strlen(tag) + 1;
    char *out = fr_malloc(cap);
    if (out)
        snprintf(out, cap, "%.*s%s%s", (int)(dot - path), path, tag, dot);
    return out;
}

char *fr_shard_part_path(const char *path)
{
    return g_count > 0 ? name_with(path, "part", g_index, g_count) : fr_strdup(path);
}

char *fr_shard_part_of(char *path)
{
    char *p = fr_shard_part_path(path);
    fr_free(path);
    return p;
}

char *fr_shard_of_journal(char *path)
{
    char *p = g_count > 0 ? name_with(path, "shard", g_index, g_count) : fr_strdup(path);
    fr_free(path);
    return p;
}

static char *summary_path(const fr_program *p, int i, int n)
{
    char base[512];
    snprintf(base, sizeof base, "%s.json", p->name);
    return name_with(base, "shard", i, n);
}

static char *result_path(const fr_program *p, int i, int n)
{
    char base[512];
    snprintf(base, sizeof base, "%s.result.jsonl", p->name);
    return name_with(base, "part", i, n);
}

/* ---- the command line ----------------------------------------------------- */

static bool parse_count(const char *s, int lo, int *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : -1;
    if (!s || !*s || *end || errno || v < lo || v > FR_MAX_SHARDS)
        return false;
    *out = (int)v;
    return true;
}

/* A scheduler's index variable, or -1 when it is not set (-2: not a number). */
static int env_index(const char *name)
{
    const char *s = getenv(name);
    int v;
    if (!s || !*s)
        return -1;
    return parse_count(s, 0, &v) ? v : -2;
}

int fr_shard_setup(const fr_program *p, const char *shard, const char *shards)
{
    int i = -1, n = 0;
    const char *from = NULL;
    if (shard) {
        const char *slash = strchr(shard, '/');
        char head[32];
        if (!slash || (size_t)(slash - shard) >= sizeof head) {
            fprintf(stderr, "error: --shard: expected I/N (this shard's index from 0, and the "
                    "number of shards), got '%s'\n", shard);
            return 2;
        }
        snprintf(head, sizeof head, "%.*s", (int)(slash - shard), shard);
        if (!parse_count(head, 0, &i) || !parse_count(slash + 1, 1, &n) || i >= n) {
            fprintf(stderr, "error: --shard: expected I/N with 0 <= I < N <= %d, got '%s'\n",
                    FR_MAX_SHARDS, shard);
            return 2;
        }
        if (shards) {
            fprintf(stderr, "error: --shard I/N says the number of shards: drop --shards\n");
            return 2;
        }
    } else if (shards) {
        if (!parse_count(shards, 1, &n)) {
            fprintf(stderr, "error: --shards: expected a number of shards in 1..%d, got '%s'\n",
                    FR_MAX_SHARDS, shards);
            return 2;
        }
        static const char *const vars[] = { "JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX",
                                             "SLURM_ARRAY_TASK_ID" };
        for (size_t k = 0; k < 3 && i < 0; k++) {
            i = env_index(vars[k]);
            from = vars[k];
            if (i == -2) {
                fprintf(stderr, "error: %s is '%s', not a shard index\n", from, getenv(from));
                return 2;
            }
        }
        if (i >= 0 && from && strcmp(from, "SLURM_ARRAY_TASK_ID") == 0 &&
            env_index("SLURM_ARRAY_TASK_MIN") > 0)
            i -= env_index("SLURM_ARRAY_TASK_MIN");
        if (i < 0) {
            fprintf(stderr, "error: --shards %d needs this shard's index: --shard I/%d, or the "
                    "scheduler's JOB_COMPLETION_INDEX (a Kubernetes Indexed Job), "
                    "AWS_BATCH_JOB_ARRAY_INDEX (an AWS Batch array job) or "
                    "SLURM_ARRAY_TASK_ID (a Slurm job array)\n", n, n);
            return 2;
        }
    } else if (getenv("SLURM_ARRAY_TASK_ID") && getenv("SLURM_ARRAY_TASK_COUNT") &&
               (p->flags & FR_PROG_SHARD)) {
        int id = env_index("SLURM_ARRAY_TASK_ID"), min = env_index("SLURM_ARRAY_TASK_MIN");
        from = "SLURM_ARRAY_TASK_ID";
        if (id < 0 || !parse_count(getenv("SLURM_ARRAY_TASK_COUNT"), 1, &n)) {
            fprintf(stderr, "error: SLURM_ARRAY_TASK_ID '%s' and SLURM_ARRAY_TASK_COUNT '%s' "
                    "are not a shard index and a number of shards\n",
                    getenv("SLURM_ARRAY_TASK_ID"), getenv("SLURM_ARRAY_TASK_COUNT"));
            return 2;
        }
        i = id - (min > 0 ? min : 0);
    } else {
        return -1;                         /* not sharded */
    }
    if (i < 0 || i >= n) {
        fprintf(stderr, "error: shard index %d (%s) is not in 0..%d: with %d shards the "
                "indexes are 0 to %d (a Slurm array: --array=0-%d)\n", i, from ? from : "--shard",
                n - 1, n, n - 1, n - 1);
        return 2;
    }
    if (!(p->flags & FR_PROG_SHARD)) {
        fprintf(stderr, "error: %s cannot run as shards: its first fan-out does not say how "
                "to split its items\nhelp: add 'shard: true' (by position) or 'shard_key: "
                "FIELD' (by a field of the items) to the options of its first 'parallel for' or "
                "'pipeline for'; `flowc check` then says whether the rest of it can be sharded\n",
                p->name);
        return 2;
    }
    g_index = i, g_count = n;
    return -1;
}

/* ---- positions -------------------------------------------------------------- */

/* The rows of a list made from a shard's share: each one's position in the
 * sharded fan-out's input. */
typedef struct posl {
    struct posl *next;
    json_t *list;                  /* a reference, so the address is never reused */
    size_t *pos;                   /* [n] */
    size_t n, cap;
} posl;

static pthread_mutex_t pos_mu = PTHREAD_MUTEX_INITIALIZER;
static posl *pos_head;

/* (pos_mu held) */
static posl *pos_find(json_t *list)
{
    for (posl *p = pos_head; p; p = p->next)
        if (p->list == list)
            return p;
    return NULL;
}

static posl *pos_add(json_t *list)
{
    posl *p = fr_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->list = json_incref(list);
    p->next = pos_head;
    pos_head = p;
    return p;
}

static bool pos_push(posl *p, size_t v)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        size_t *np = fr_realloc(p->pos, cap * sizeof *np);
        if (!np)
            return false;
        p->pos = np, p->cap = cap;
    }
    p->pos[p->n++] = v;
    return true;
}

void fr_shard_step(fr_ctx *cx, json_t *xs, size_t i, json_t *res)
{
    (void)cx;
    if (g_count <= 0 || !xs || !res)
        return;
    pthread_mutex_lock(&pos_mu);
    posl *s = pos_find(xs);
    if (s && i < s->n) {
        posl *d = pos_find(res);
        if (!d)
            d = pos_add(res);
        if (d)
            pos_push(d, s->pos[i]);
    }
    pthread_mutex_unlock(&pos_mu);
}

/* The positions of list's rows as a JSON array, or null when not known. */
static json_t *positions_of(json_t *list)
{
    pthread_mutex_lock(&pos_mu);
    posl *p = list ? pos_find(list) : NULL;
    json_t *a = p || json_array_size(list) == 0 ? json_array() : json_null();
    for (size_t k = 0; p && a && k < p->n; k++)
        json_array_append_new(a, json_integer((json_int_t)p->pos[k]));
    pthread_mutex_unlock(&pos_mu);
    return a;
}

/* ---- the share ---------------------------------------------------------------- */

static size_t g_items, g_share;    /* the sharded fan-out's items, and this shard's */

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t k = 0; k < n; k++)
        h = (h ^ (unsigned char)s[k]) * 1099511628211ULL;
    return h;
}

/* Whose item v (at position k) is. */
static int owner(const fr_par_opts *o, json_t *v, size_t k, bool *bad)
{
    if (o->shard != 2 || !o->shard_key)
        return (int)(k % (size_t)g_count);
    json_t *key = json_is_object(v) ? json_object_get(v, o->shard_key) : NULL;
    char buf[32];
    const char *s = NULL;
    size_t n = 0;
    if (json_is_string(key))
        s = json_string_value(key), n = json_string_length(key);
    else if (json_is_integer(key))
        n = (size_t)snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(key)),
        s = buf;
    if (!s) {
        *bad = true;
        return 0;
    }
    return (int)(fnv1a(s, n) % (uint64_t)g_count);
}

json_t *fr_shard_take(fr_ctx *cx, json_t *list, const fr_par_opts *o)
{
    json_t *share = json_array();
    if (!share)
        return fr_fail(cx, o->where, "out of memory");
    pthread_mutex_lock(&pos_mu);
    posl *p = pos_add(share);
    bool ok = p != NULL, bad = false;
    size_t n = json_array_size(list);
    for (size_t k = 0; ok && k < n; k++) {
        json_t *v = json_array_get(list, k);
        if (owner(o, v, k, &bad) != g_index || bad)
            continue;
        ok = json_array_append(share, v) == 0 && pos_push(p, k);
    }
    pthread_mutex_unlock(&pos_mu);
    if (bad) {
        json_decref(share);
        return fr_fail(cx, o->where, "an item has no string or int '%s' to shard by",
                       o->shard_key);
    }
    if (!ok) {
        json_decref(share);
        return fr_fail(cx, o->where, "out of memory");
    }
    g_items = n, g_share = json_array_size(share);
    if (!cx->run->quiet)
        fprintf(stderr, "shard %d of %d: %zu of the fan-out's %zu items\n", g_index, g_count,
                g_share, g_items);
    return fr_keep(cx, share);
}

/* ---- parts ---------------------------------------------------------------- */

static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *g_outputs;          /* [{path, part, format, positions}] in the order written */

void fr_shard_output(const char *path, const char *part, const char *format, json_t *list)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:o}", "path", path, "part", part, "format", format,
                          "positions", positions_of(list));
    if (!o)
        return;
    pthread_mutex_lock(&out_mu);
    if (!g_outputs)
        g_outputs = json_array();
    size_t k;
    json_t *e;
    json_array_foreach(g_outputs, k, e)
        if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0)
            break;
    if (k < json_array_size(g_outputs))
        json_array_set_new(g_outputs, k, o);      /* written again: the last one counts */
    else
        json_array_append_new(g_outputs, o);
    pthread_mutex_unlock(&out_mu);
}

/* Writes text to path through a temporary file beside it. */
static bool write_whole(const char *path, const char *text, size_t n)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "we");
    if (!f)
        return false;
    bool ok = fwrite(text, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp);
    return ok;
}

static json_t *stats_json(const fr_stats *s, bool ran)
{
    json_t *o = json_object();
#define I(f) json_object_set_new(o, #f, json_integer((json_int_t)s->f))
    I(calls); I(retries); I(failures); I(items_failed); I(cached); I(tokens_in);
    I(tokens_out); I(cache_read); I(cache_write); I(no_usage); I(raised); I(repaired);
    I(invalid); I(refused); I(cut_off); I(unparsable); I(transient); I(rate_limited);
    I(http_calls); I(http_cached); I(http_retries); I(http_failures); I(http_unknown);
    I(http_dry); I(http_pages); I(http_ms); I(failed_transient); I(long_waits);
    I(longest_wait_ms); I(capped_waits); I(tool_loops); I(tool_turns); I(tool_calls);
    I(tool_cached); I(tool_errors); I(tool_capped); I(wall_ms);
#undef I
    json_object_set_new(o, "usd", json_real(s->usd));
    json_object_set_new(o, "usd_saved", json_real(s->usd_saved));
    json_object_set_new(o, "ran", json_boolean(ran));
    return o;
}

static void stats_from(fr_stats *s, json_t *o, bool *ran)
{
#define I(f) s->f += (int64_t)json_integer_value(json_object_get(o, #f))
    I(calls); I(retries); I(failures); I(items_failed); I(cached); I(tokens_in);
    I(tokens_out); I(cache_read); I(cache_write); I(no_usage); I(raised); I(repaired);
    I(invalid); I(refused); I(cut_off); I(unparsable); I(transient); I(rate_limited);
    I(http_calls); I(http_cached); I(http_retries); I(http_failures); I(http_unknown);
    I(http_dry); I(http_pages); I(http_ms); I(failed_transient); I(long_waits);
    I(capped_waits); I(tool_loops); I(tool_turns); I(tool_calls);
    I(tool_cached); I(tool_errors); I(tool_capped);
#undef I
    int64_t lw = (int64_t)json_integer_value(json_object_get(o, "longest_wait_ms"));
    int64_t wall = (int64_t)json_integer_value(json_object_get(o, "wall_ms"));
    if (lw > s->longest_wait_ms)
        s->longest_wait_ms = lw;
    if (wall > s->wall_ms)
        s->wall_ms = wall;             /* the slowest shard's */
    s->usd += json_number_value(json_object_get(o, "usd"));
    s->usd_saved += json_number_value(json_object_get(o, "usd_saved"));
    *ran = *ran || json_is_true(json_object_get(o, "ran"));
}

void fr_shard_begin(fr_run *run)
{
    if (g_count <= 0)
        return;
    char *sp = summary_path(run->prog, g_index, g_count);
    if (sp)
        unlink(sp);                    /* an unfinished shard has none */
    fr_free(sp);
    if (!run->quiet)
        fprintf(stderr, "shard %d of %d%s\n", g_index, g_count, g_shared ? "" :
                ": no shared limiter (FLOWRT_REDIS_URL): this shard takes 1/N of each budget "
                "cap and rate limit");
}

/* The shard's returned list goes to its result part. */
int fr_shard_result(fr_run *run, json_t *v)
{
    const fr_program *p = run->prog;
    char *path = result_path(p, g_index, g_count);
    fr_buf b = { 0 };
    bool ok = path != NULL;
    for (size_t k = 0; ok && json_is_array(v) && k < json_array_size(v); k++) {
        char *s = fr_to_json(json_array_get(v, k), p->ret->elem);
        ok = s != NULL;
        if (s)
            fr_buf_puts(&b, s), fr_buf_puts(&b, "\n");
        fr_free(s);
    }
    ok = ok && write_whole(path, b.s ? b.s : "", b.len);
    if (!ok)
        fprintf(stderr, "error: cannot write the shard's result to %s: %s\n",
                path ? path : "?", strerror(errno));
    else
        fr_shard_output("-result", path, "jsonl", v);
    fr_buf_free(&b);
    fr_free(path);
    return ok ? 0 : 1;
}

void fr_shard_end(fr_run *run, int status, const char *args, const char *id)
{
    if (g_count <= 0)
        return;
    const fr_program *p = run->prog;
    json_t *phases = json_array();
    for (int i = 0; i < p->nphases; i++)
        json_array_append_new(phases, stats_json(&run->stats[i + 1],
                                                 run->stats[i + 1].start_ms != 0));
    pthread_mutex_lock(&out_mu);
    if (!g_outputs)
        g_outputs = json_array();
    json_t *o = json_pack("{s:s, s:s, s:s?, s:i, s:i, s:i, s:s?, s:I, s:I, s:o, s:o, s:O, "
                          "s:I, s:I, s:I}",
                          "workflow", p->name, "source_hash", p->source_hash ? p->source_hash : "",
                          "args", args, "shard", g_index, "shards", g_count, "status", status,
                          "run", id, "items", (json_int_t)g_items, "share", (json_int_t)g_share,
                          "before", stats_json(&run->stats[0], true), "phases", phases,
                          "outputs", g_outputs,
                          "escalated", (json_int_t)run->escalated,
                          "wall_ms", (json_int_t)(fr_now_ms() - run->start_ms),
                          "max_wait_ms", (json_int_t)run->max_wait_ms);
    pthread_mutex_unlock(&out_mu);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    char *path = summary_path(p, g_index, g_count);
    if (!s || !path || !write_whole(path, s, strlen(s)))
        fprintf(stderr, "error: cannot write the shard's summary %s: %s\n", path ? path : "?",
                strerror(errno));
    else if (!run->quiet)
        fprintf(stderr, "shard %d of %d: summary in %s%s\n", g_index, g_count, path,
                status == 0 || status == 5 ? "" : " (unfinished: merge waits for it to finish)");
    free(s);
    fr_free(path);
    json_decref(o);
}

void fr_shard_free(void)
{
    pthread_mutex_lock(&pos_mu);
    while (pos_head) {
        posl *p = pos_head;
        pos_head = p->next;
        json_decref(p->list);
        fr_free(p->pos);
        fr_free(p);
    }
    pthread_mutex_unlock(&pos_mu);
    pthread_mutex_lock(&out_mu);
    json_decref(g_outputs);
    g_outputs = NULL;
    pthread_mutex_unlock(&out_mu);
}

/* ---- merge ------------------------------------------------------------------ */

/* A whole file into *out (malloc'd, NUL-terminated); false when unreadable. */
static bool slurp(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    fr_buf b = { 0 };
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        fr_buf_put(&b, buf, k);
    bool ok = !ferror(f);
    fclose(f);
    if (!b.s)
        fr_buf_put(&b, "", 0);
    *out = b.s, *len = b.len;
    if (!ok || !b.s)
        fr_buf_free(&b);
    return ok && b.s;
}

/* One row of a part: [s, s + n) including its line end. */
typedef struct row {
    const char *s;
    size_t n;
    size_t pos;                    /* its position in the sharded fan-out's input */
    int shard;
    size_t k;                      /* its index in the part */
} row;

typedef struct rows {
    row *r;
    size_t n, cap;
} rows;

static bool rows_push(rows *rs, row r)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 256;
        row *nr = fr_realloc(rs->r, cap * sizeof *nr);
        if (!nr)
            return false;
        rs->r = nr, rs->cap = cap;
    }
    rs->r[rs->n++] = r;
    return true;
}

/* The end of the record starting at s: past its line end (CRLF or LF);
 * a CSV record's quoted cells may hold line ends. */
static const char *record_end(const char *s, const char *end, bool csv)
{
    bool q = false;
    for (; s < end; s++) {
        if (csv && *s == '"')
            q = !q;
        else if (*s == '\n' && !q)
            return s + 1;
    }
    return end;
}

static int row_cmp(const void *a, const void *b)
{
    const row *x = a, *y = b;
    if (x->pos != y->pos)
        return x->pos < y->pos ? -1 : 1;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return x->k < y->k ? -1 : x->k > y->k;
}

typedef struct merging {
    const fr_program *p;
    int n;                         /* shards */
    json_t **sum;                  /* each shard's summary */
    bool quiet;
} merging;

static json_t *output_of(json_t *sum, const char *path)
{
    size_t k;
    json_t *e;
    json_array_foreach(json_object_get(sum, "outputs"), k, e)
        if (strcmp(json_string_value(json_object_get(e, "path")), path) == 0)
            return e;
    return NULL;
}

/* Merges one output's parts into its path (stdout for the result and "-"). */
static bool merge_output(merging *m, const char *path)
{
    char **text = fr_calloc((size_t)m->n, sizeof *text);
    rows rs = { 0 };
    bool ok = text != NULL, ordered = true, csv = false;
    const char *header = NULL;
    size_t header_n = 0;
    for (int i = 0; ok && i < m->n; i++) {
        json_t *o = output_of(m->sum[i], path);
        const char *part = json_string_value(json_object_get(o, "part"));
        json_t *pos = json_object_get(o, "positions");
        csv = strcmp(json_string_value(json_object_get(o, "format")), "csv") == 0;
        size_t len;
        if (!slurp(part, &text[i], &len)) {
            fprintf(stderr, "error: merge: cannot read %s, shard %d's part of %s: %s\n", part,
                    i, path[0] == '-' ? "the result" : path, strerror(errno));
            ok = false;
            break;
        }
        const char *s = text[i], *end = s + len;
        if (csv && s < end) {              /* the header: one, the same in every part */
            const char *h = record_end(s, end, true);
            if (header && ((size_t)(h - s) != header_n || memcmp(header, s, header_n) != 0)) {
                fprintf(stderr, "error: merge: %s and shard 0's part of %s have different "
                        "header rows\n", part, path);
                ok = false;
            }
            header = s, header_n = (size_t)(h - s);
            s = h;
        }
        size_t k = 0;
        for (; ok && s < end; k++) {
            const char *e = record_end(s, end, csv);
            json_t *pv = json_array_get(pos, k);
            ordered = ordered && pv;
            ok = rows_push(&rs, (row){ s, (size_t)(e - s),
                                       pv ? (size_t)json_integer_value(pv) : 0, i, k });
            s = e;
        }
        if (ok && json_is_array(pos) && json_array_size(pos) != k) {
            fprintf(stderr, "error: merge: %s has %zu rows, but shard %d's summary says %zu: "
                    "it changed after the shard wrote it\n", part, k, i, json_array_size(pos));
            ok = false;
        }
    }
    if (ok && ordered)
        qsort(rs.r, rs.n, sizeof *rs.r, row_cmp);
    bool to_stdout = path[0] == '-';
    fr_buf b = { 0 };
    if (ok && header)
        fr_buf_put(&b, header, header_n);
    for (size_t k = 0; ok && k < rs.n; k++)
        fr_buf_put(&b, rs.r[k].s, rs.r[k].n);
    if (ok && to_stdout) {
        ok = (b.len == 0 || fwrite(b.s, 1, b.len, stdout) == b.len) && fflush(stdout) == 0;
        if (!ok)
            fprintf(stderr, "error: merge: cannot write the result: %s\n", strerror(errno));
    } else if (ok) {
        ok = write_whole(path, b.s ? b.s : "", b.len);
        if (!ok)
            fprintf(stderr, "error: merge: cannot write %s: %s\n", path, strerror(errno));
        else if (!m->quiet)
            fprintf(stderr, "merged %s: %zu row%s from %d parts\n", path, rs.n,
                    rs.n == 1 ? "" : "s", m->n);
    }
    fr_buf_free(&b);
    for (int i = 0; text && i < m->n; i++)
        fr_free(text[i]);
    fr_free(text);
    fr_free(rs.r);
    return ok;
}

/* The shards' review or skipped parts, one after another, into base. */
static int64_t merge_lines(merging *m, const char *base)
{
    fr_buf b = { 0 };
    bool any = false;
    int64_t lines = 0;
    for (int i = 0; i < m->n; i++) {
        char *part = name_with(base, "part", i, m->n), *t = NULL;
        size_t len;
        if (part && slurp(part, &t, &len)) {
            any = true;
            fr_buf_put(&b, t, len);
            for (size_t k = 0; k < len; k++)
                lines += t[k] == '\n';
        }
        fr_free(t);
        fr_free(part);
    }
    if (any && !write_whole(base, b.s ? b.s : "", b.len))
        fprintf(stderr, "error: merge: cannot write %s: %s\n", base, strerror(errno));
    fr_buf_free(&b);
    return any ? lines : -1;
}

/* The shards a directory holds summaries of: N from the names of shard 0's. */
static int find_count(const fr_program *p)
{
    char pat[600];
    snprintf(pat, sizeof pat, "%s.shard-0000-of-*.json", p->name);
    glob_t g;
    int n = 0;
    if (glob(pat, 0, NULL, &g) == 0) {
        for (size_t k = 0; k < g.gl_pathc; k++) {
            const char *s = g.gl_pathv[k] + strlen(p->name) + strlen(".shard-0000-of-");
            int v = atoi(s);
            if (v > 0 && n > 0 && v != n)
                n = -1;
            else if (v > 0 && n >= 0)
                n = v;
        }
        globfree(&g);
    }
    return n;
}

static const char *status_name(int st)
{
    switch (st) {
    case 0: return "done";
    case 1: return "failed";
    case 2: return "refused (bad usage or input)";
    case 3: return "waiting for approval";
    case 4: return "stopped by a budget";
    case 5: return "done but for skipped items";
    default: return "ended";
    }
}

/* Every shard's summary, each finished, all of one program and arguments. */
static bool load_summaries(merging *m)
{
    const fr_program *p = m->p;
    bool ok = true;
    for (int i = 0; i < m->n; i++) {
        char *path = summary_path(p, i, m->n);
        json_error_t je;
        m->sum[i] = path ? json_load_file(path, 0, &je) : NULL;
        if (!m->sum[i] && path && access(path, F_OK) != 0)
            fprintf(stderr, "error: merge: shard %d of %d has not finished (no %s): run it "
                    "(again) with `%s --shard %d/%d` and the same flags; a shard resumes from "
                    "its journal\n", i, m->n, path, fr_self_name(p), i, m->n);
        else if (!m->sum[i])
            fprintf(stderr, "error: merge: %s cannot be read: %s\n", path ? path : "?", je.text);
        ok = ok && m->sum[i];
        fr_free(path);
        if (!m->sum[i])
            continue;
        int st = (int)json_integer_value(json_object_get(m->sum[i], "status"));
        if (st != 0 && st != 5) {
            fprintf(stderr, "error: merge: shard %d of %d is unfinished: its run %s ended with "
                    "exit %d (%s); run it again with `%s --shard %d/%d` (it resumes from its "
                    "journal)\n", i, m->n,
                    json_string_value(json_object_get(m->sum[i], "run")) ?
                    json_string_value(json_object_get(m->sum[i], "run")) : "(no journal)",
                    st, status_name(st), fr_self_name(p), i, m->n);
            ok = false;
        }
    }
    for (int i = 1; ok && i < m->n; i++) {
        const char *keys[] = { "source_hash", "args" };
        for (int k = 0; k < 2; k++) {
            json_t *a = json_object_get(m->sum[0], keys[k]), *b = json_object_get(m->sum[i], keys[k]);
            if (!json_equal(a, b)) {
                fprintf(stderr, "error: merge: shard %d ran %s than shard 0 (%s: %s, not %s): "
                        "the parts cannot be one run's\n", i, k ? "with other arguments" :
                        "another build of the workflow", keys[k],
                        json_is_string(b) ? json_string_value(b) : "?",
                        json_is_string(a) ? json_string_value(a) : "?");
                ok = false;
            }
        }
        json_t *o0 = json_object_get(m->sum[0], "outputs"), *oi = json_object_get(m->sum[i], "outputs");
        size_t k;
        json_t *e;
        json_array_foreach(o0, k, e) {
            const char *path = json_string_value(json_object_get(e, "path"));
            if (!output_of(m->sum[i], path)) {
                fprintf(stderr, "error: merge: shard %d wrote no part of %s, which shard 0 "
                        "wrote\n", i, path[0] == '-' ? "the result" : path);
                ok = false;
            }
        }
        if (ok && json_array_size(oi) != json_array_size(o0)) {
            fprintf(stderr, "error: merge: shard %d wrote other outputs than shard 0\n", i);
            ok = false;
        }
    }
    return ok;
}

static void merge_summary(merging *m, int status, int64_t skipped_lines)
{
    const fr_program *p = m->p;
    fr_run run;
    memset(&run, 0, sizeof run);
    run.prog = p;
    run.stats = fr_calloc((size_t)p->nphases + 1, sizeof *run.stats);
    if (!run.stats)
        return;
    int64_t wall = 0;
    bool ran = false;
    for (int i = 0; i < m->n; i++) {
        json_t *s = m->sum[i];
        stats_from(&run.stats[0], json_object_get(s, "before"), &ran);
        for (int k = 0; k < p->nphases; k++) {
            ran = run.stats[k + 1].start_ms != 0;
            stats_from(&run.stats[k + 1], json_array_get(json_object_get(s, "phases"),
                                                          (size_t)k), &ran);
            if (ran)
                run.stats[k + 1].start_ms = 1, run.stats[k + 1].ended = true;
        }
        int64_t w = (int64_t)json_integer_value(json_object_get(s, "wall_ms"));
        wall = w > wall ? w : wall;
        run.escalated += (int64_t)json_integer_value(json_object_get(s, "escalated"));
        run.max_wait_ms = (int)json_integer_value(json_object_get(s, "max_wait_ms"));
    }
    run.stats[0].wall_ms = 0;
    run.start_ms = fr_now_ms() - wall;
    run.status = status;
    run.nskipped = skipped_lines;
    fr_run_print_summary(&run);
    fprintf(stderr, "merged %d shards:", m->n);
    for (int i = 0; i < m->n; i++) {
        const char *id = json_string_value(json_object_get(m->sum[i], "run"));
        fprintf(stderr, " %s", id ? id : "(no journal)");
    }
    fprintf(stderr, "\n");
    fr_free(run.stats);
}

static int merge_usage(const fr_program *p, int st)
{
    fprintf(st ? stderr : stdout,
            "usage: %s merge [--shards N] [--quiet]\n\n"
            "Combines the parts that N shards (--shard I/N) wrote into what one process would\n"
            "have written: each output's parts into the output, the returned list to stdout,\n"
            "the review and skipped files, and the run summary on stderr.  It refuses when a\n"
            "shard is missing or unfinished.  N defaults to what the shards' summaries\n"
            "(%s.shard-0000-of-N.json) in this directory say.\n", fr_self_name(p), p->name);
    return st;
}

int fr_shard_merge(const fr_program *p, int argc, char **argv)
{
    merging m = { p, 0, NULL, false };
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return merge_usage(p, 0);
        if (strcmp(argv[i], "--quiet") == 0)
            m.quiet = true;
        else if (strcmp(argv[i], "--shards") == 0 && i + 1 < argc) {
            if (!parse_count(argv[++i], 1, &m.n)) {
                fprintf(stderr, "error: merge: --shards: expected a number in 1..%d, got '%s'\n",
                        FR_MAX_SHARDS, argv[i]);
                return 2;
            }
        } else if (strncmp(argv[i], "--shards=", 9) == 0) {
            if (!parse_count(argv[i] + 9, 1, &m.n)) {
                fprintf(stderr, "error: merge: --shards: expected a number in 1..%d, got '%s'\n",
                        FR_MAX_SHARDS, argv[i] + 9);
                return 2;
            }
        } else {
            fprintf(stderr, "error: merge: unexpected argument '%s'\n", argv[i]);
            return merge_usage(p, 2);
        }
    }
    if (m.n == 0)
        m.n = find_count(p);
    if (m.n < 0) {
        fprintf(stderr, "error: merge: summaries of runs with different numbers of shards are "
                "here (%s.shard-0000-of-*.json): say which with --shards N\n", p->name);
        return 2;
    }
    if (m.n == 0) {
        fprintf(stderr, "error: merge: no shard summary here (%s.shard-0000-of-N.json): run "
                "the shards first (`%s --shard I/N`), in this directory\n", p->name,
                fr_self_name(p));
        return 1;
    }
    m.sum = fr_calloc((size_t)m.n, sizeof *m.sum);
    bool ok = m.sum && load_summaries(&m);
    int status = 0;
    for (int i = 0; ok && i < m.n; i++)
        if (json_integer_value(json_object_get(m.sum[i], "status")) == 5)
            status = 5;
    size_t k;
    json_t *e;
    if (ok) {                                      /* files first, the result last */
        json_array_foreach(json_object_get(m.sum[0], "outputs"), k, e) {
            const char *path = json_string_value(json_object_get(e, "path"));
            if (ok && strcmp(path, "-result") != 0)
                ok = merge_output(&m, path);
        }
    }
    int64_t skipped = -1;
    if (ok) {
        char base[600];
        snprintf(base, sizeof base, "%s.review.jsonl", p->name);
        merge_lines(&m, base);
        snprintf(base, sizeof base, "%s.skipped.jsonl", p->name);
        skipped = merge_lines(&m, base);
        if (output_of(m.sum[0], "-result"))
            ok = merge_output(&m, "-result");
    }
    if (ok && !m.quiet)
        merge_summary(&m, status, skipped);
    for (int i = 0; m.sum && i < m.n; i++)
        json_decref(m.sum[i]);
    fr_free(m.sum);
    return ok ? status : 1;
}
