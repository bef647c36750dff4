/*
 * fr_chunk.c: the journal's chunks of results (schema v9), written and read.
 *
 * A result without a row goes with the others of its transaction into one
 * call_chunks row: its body is a JSON array of entries, each an array
 *   [key, agent, item, phase, status, tokens_in, tokens_out, usd, attempts,
 *    latency_ms, finished_ms, tier, cache_read, cache_write, saved_usd,
 *    output, detail]
 * with output and detail as JSON values, not strings (null when absent).
 * fr_chunk_put writes an entry.
 *
 * The journal's own connections read a body with the table-valued function
 * fr_chunk(body), a virtual table that scans the text once and gives the
 * entries as rows with those columns (and idx, the entry's index): SQLite's
 * json_each with ->> would parse an entry again for every column, 17 times,
 * a dozen times slower.  The file's view calls_all does just that, for the
 * sqlite3 shell, which has no fr_chunk; the journal's connections shadow it
 * with a temporary view over fr_chunk.  The scanner knows only what the
 * writer writes (any valid JSON value in output and detail): a body that is
 * not such an array ends the rows with an error.
 */
#include "fr_internal.h"

#include <sqlite3.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing ------------------------------------------------------------- */

static void put_str(fr_buf *b, const char *s)
{
    fr_buf_json_string(b, s ? s : "", s ? strlen(s) : 0);
    fr_buf_put(b, ",", 1);
}

static void put_i64(fr_buf *b, int64_t v)
{
    fr_buf_json_int(b, v);
    fr_buf_put(b, ",", 1);
}

static void put_usd(fr_buf *b, double v)
{
    if (v == 0)
        fr_buf_put(b, "0.0", 3);
    else
        fr_buf_json_real(b, v);
    fr_buf_put(b, ",", 1);
}

void fr_chunk_put(fr_buf *b, bool first, const fr_jcall *c, int64_t now)
{
    fr_buf_puts(b, first ? "[[" : ",[");
    put_str(b, c->key);
    put_str(b, c->agent);
    put_str(b, c->item);
    put_i64(b, c->phase);
    put_str(b, c->output || c->output_json ? "ok" : "failed");
    put_i64(b, c->tokens_in);
    put_i64(b, c->tokens_out);
    put_usd(b, c->usd);
    put_i64(b, c->attempts);
    put_i64(b, c->latency_ms);
    put_i64(b, now);
    put_str(b, c->tier ? c->tier : "standard");
    put_i64(b, c->cache_read);
    put_i64(b, c->cache_write);
    put_usd(b, c->saved_usd);
    if (c->output_json)
        fr_buf_typed(b, c->output_json, c->output_type);
    else if (c->output)
        fr_buf_puts(b, c->output);
    else
        fr_buf_put(b, "null", 4);
    fr_buf_put(b, ",", 1);
    if (c->detail_own)
        fr_jdetail_put(b, c->detail_own);
    else if (c->detail)
        fr_buf_puts(b, c->detail);
    else
        fr_buf_put(b, "null", 4);
    fr_buf_put(b, "]", 1);
}

/* ---- reading: fr_chunk(body) --------------------------------------------- */

enum { F_KEY, F_AGENT, F_ITEM, F_PHASE, F_STATUS, F_TOKENS_IN, F_TOKENS_OUT, F_USD,
       F_ATTEMPTS, F_LATENCY, F_FINISHED, F_TIER, F_CACHE_READ, F_CACHE_WRITE, F_SAVED,
       F_OUTPUT, F_DETAIL, NFIELDS };

/* The table's columns: idx, the fields in their order, then the argument. */
static const char chunk_schema[] =
    "CREATE TABLE x(idx, key, agent, item, phase, status, tokens_in, tokens_out, usd,"
    " attempts, latency_ms, finished_ms, tier, cache_read, cache_write, saved_usd, output,"
    " detail, body HIDDEN)";
#define COL_BODY (NFIELDS + 1)

/* What each field is: a string (unescaped), an integer, a real, or JSON text. */
static const char kinds[NFIELDS + 1] = "sssisiiriiisiirjj";

typedef struct cursor {
    sqlite3_vtab_cursor base;      /* SQLite's part, first */
    sqlite3_value *body;           /* the argument (a copy) */
    const char *p, *end;           /* where the next entry begins, the text's end */
    const char *f[NFIELDS];        /* the current entry's fields: where each begins */
    size_t n[NFIELDS];             /* ... and its length */
    int64_t idx;                   /* its index */
    bool eof;                      /* no current entry */
    bool bad;                      /* the body is not what fr_chunk_put writes */
} cursor;

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the JSON string starting at p (its opening quote), or NULL. */
static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            return NULL;
        size_t bs = 0;             /* backslashes before it: an odd number escapes it */
        while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
            bs++;
        if (bs % 2 == 0)
            return q + 1;
        p = q;
    }
    return NULL;
}

/* The bytes skip_value stops at. */
static const bool special[256] = {
    ['"'] = true, ['['] = true, [']'] = true, ['{'] = true, ['}'] = true, [','] = true,
};

/* Where the JSON value starting at p ends: the ',' or ']' after it at its
 * own level, or NULL (nesting is counted and strings skipped; the value's
 * own syntax is not checked). */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    for (; p < end; p++) {
        while (p < end && !special[(unsigned char)*p])
            p++;
        if (p == end)
            break;
        switch (*p) {
        case '"':
            if (!(p = skip_string(p, end)))
                return NULL;
            p--;
            break;
        case '[':
        case '{':
            depth++;
            break;
        case ']':
        case '}':
            if (depth == 0)
                return p;
            depth--;
            break;
        case ',':
            if (depth == 0)
                return p;
            break;
        }
    }
    return NULL;
}

/* Reads the entry at c->p into c->f and c->n; false at the body's end or
 * on a body it cannot read (c->bad). */
static bool read_entry(cursor *c)
{
    const char *p = skip_ws(c->p, c->end);
    if (p < c->end && (*p == ',' || (c->idx < 0 && *p == '[')))
        p = skip_ws(p + 1, c->end);
    if (p < c->end && *p == ']')
        return false;                       /* the end of the body */
    if (p >= c->end || *p != '[') {
        c->bad = true;
        return false;
    }
    p++;
    for (int i = 0; i < NFIELDS; i++) {
        p = skip_ws(p, c->end);
        const char *e = skip_value(p, c->end);
        if (!e || e == p) {
            c->bad = true;
            return false;
        }
        c->f[i] = p;
        c->n[i] = (size_t)(e - p);
        while (c->n[i] && (p[c->n[i] - 1] == ' ' || p[c->n[i] - 1] == '\n'))
            c->n[i]--;
        p = e;
        if (p >= c->end || *p != (i + 1 < NFIELDS ? ',' : ']')) {
            c->bad = true;
            return false;
        }
        p++;
    }
    c->p = p;
    return true;
}

static int chunk_next(sqlite3_vtab_cursor *base)
{
    cursor *c = (cursor *)base;
    if (c->eof)
        return SQLITE_OK;
    if (!read_entry(c)) {
        c->eof = true;
        if (c->bad) {
            sqlite3_free(base->pVtab->zErrMsg);
            base->pVtab->zErrMsg = sqlite3_mprintf("a chunk of the journal cannot be read");
            return SQLITE_CORRUPT;
        }
        return SQLITE_OK;
    }
    c->idx++;
    return SQLITE_OK;
}

static int chunk_filter(sqlite3_vtab_cursor *base, int num, const char *str, int argc,
                        sqlite3_value **argv)
{
    (void)str;
    cursor *c = (cursor *)base;
    sqlite3_value_free(c->body);
    c->body = NULL;
    c->eof = true;
    c->bad = false;
    if (num != 1 || argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return SQLITE_OK;
    if (!(c->body = sqlite3_value_dup(argv[0])))
        return SQLITE_NOMEM;
    const char *s = (const char *)sqlite3_value_text(c->body);
    if (!s)
        return SQLITE_NOMEM;
    c->p = s;
    c->end = s + sqlite3_value_bytes(c->body);
    c->idx = -1;
    c->eof = false;
    return chunk_next(base);
}

static unsigned long hex4(const char *p)
{
    char h[5] = { p[0], p[1], p[2], p[3], 0 };
    return strtoul(h, NULL, 16);
}

/* Puts the JSON string s[0..n) (with its quotes) unescaped into out
 * (malloc'd, *len its length); NULL when out of memory. */
static char *unescape(const char *s, size_t n, size_t *len)
{
    char *out = sqlite3_malloc64(n + 1), *o = out;
    if (!out)
        return NULL;
    const char *p = s + 1, *end = s + n - 1;
    while (p < end) {
        if (*p != '\\' || p + 1 >= end) {
            *o++ = *p++;
            continue;
        }
        char e = p[1];
        p += 2;
        switch (e) {
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned long u = end - p >= 4 ? hex4(p) : 0xfffd;
            p += end - p >= 4 ? 4 : end - p;
            if (u >= 0xd800 && u < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
                unsigned long lo = hex4(p + 2);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
            }
            if (u < 0x80) {
                *o++ = (char)u;
            } else if (u < 0x800) {
                *o++ = (char)(0xc0 | u >> 6), *o++ = (char)(0x80 | (u & 0x3f));
            } else if (u < 0x10000) {
                *o++ = (char)(0xe0 | u >> 12), *o++ = (char)(0x80 | (u >> 6 & 0x3f));
                *o++ = (char)(0x80 | (u & 0x3f));
            } else {
                *o++ = (char)(0xf0 | u >> 18), *o++ = (char)(0x80 | (u >> 12 & 0x3f));
                *o++ = (char)(0x80 | (u >> 6 & 0x3f)), *o++ = (char)(0x80 | (u & 0x3f));
            }
            break;
        }
        default: *o++ = e; break;           /* \" \\ \/ */
        }
    }
    *len = (size_t)(o - out);
    return out;
}

/* The integer s[0..n) (what fr_buf_json_int writes). */
static int64_t integer(const char *s, size_t n)
{
    bool neg = n > 0 && *s == '-';
    uint64_t v = 0;
    for (size_t i = neg; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    return neg ? (int64_t)(0 - v) : (int64_t)v;
}

/* Field i of the current entry as an SQL value. */
static void field_result(sqlite3_context *ctx, const cursor *c, int i)
{
    const char *s = c->f[i];
    size_t n = c->n[i];
    if (n == 4 && memcmp(s, "null", 4) == 0) {
        sqlite3_result_null(ctx);
        return;
    }
    switch (kinds[i]) {
    case 's':
        if (n < 2 || s[0] != '"') {
            sqlite3_result_null(ctx);
        } else if (!memchr(s, '\\', n)) {
            sqlite3_result_text(ctx, s + 1, (int)n - 2, SQLITE_TRANSIENT);
        } else {
            size_t len;
            char *u = unescape(s, n, &len);
            if (u)
                sqlite3_result_text(ctx, u, (int)len, sqlite3_free);
            else
                sqlite3_result_error_nomem(ctx);
        }
        break;
    case 'i':
        sqlite3_result_int64(ctx, integer(s, n));
        break;
    case 'r':
        sqlite3_result_double(ctx, strtod(s, NULL));
        break;
    default:
        sqlite3_result_text(ctx, s, (int)n, SQLITE_TRANSIENT);
        break;
    }
}

static int chunk_column(sqlite3_vtab_cursor *base, sqlite3_context *ctx, int col)
{
    cursor *c = (cursor *)base;
    if (col == 0)
        sqlite3_result_int64(ctx, c->idx);
    else if (col <= NFIELDS)
        field_result(ctx, c, col - 1);
    else
        sqlite3_result_value(ctx, c->body);
    return SQLITE_OK;
}

static int chunk_rowid(sqlite3_vtab_cursor *base, sqlite_int64 *rowid)
{
    *rowid = ((cursor *)base)->idx;
    return SQLITE_OK;
}

static int chunk_eof(sqlite3_vtab_cursor *base)
{
    return ((cursor *)base)->eof;
}

/* Rows only for a given body: fr_chunk(body), or body = ?. */
static int chunk_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    for (int i = 0; i < info->nConstraint; i++) {
        const struct sqlite3_index_constraint *k = &info->aConstraint[i];
        if (k->iColumn == COL_BODY && k->op == SQLITE_INDEX_CONSTRAINT_EQ) {
            if (!k->usable)
                return SQLITE_CONSTRAINT;
            info->aConstraintUsage[i].argvIndex = 1;
            info->aConstraintUsage[i].omit = 1;
            info->idxNum = 1;
            info->estimatedCost = 100;
            info->estimatedRows = 100;
            return SQLITE_OK;
        }
    }
    info->idxNum = 0;                       /* no body: no rows */
    info->estimatedCost = 1e12;
    return SQLITE_OK;
}

static int chunk_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                         sqlite3_vtab **out, char **err)
{
    (void)aux, (void)argc, (void)argv, (void)err;
    int rc = sqlite3_declare_vtab(db, chunk_schema);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_vtab *vt = sqlite3_malloc(sizeof *vt);
    if (!vt)
        return SQLITE_NOMEM;
    memset(vt, 0, sizeof *vt);
    sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
    *out = vt;
    return SQLITE_OK;
}

static int chunk_disconnect(sqlite3_vtab *vt)
{
    sqlite3_free(vt);
    return SQLITE_OK;
}

static int chunk_open(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    cursor *c = sqlite3_malloc(sizeof *c);
    if (!c)
        return SQLITE_NOMEM;
    memset(c, 0, sizeof *c);
    c->eof = true;
    *out = &c->base;
    return SQLITE_OK;
}

static int chunk_close(sqlite3_vtab_cursor *base)
{
    cursor *c = (cursor *)base;
    sqlite3_value_free(c->body);
    sqlite3_free(c);
    return SQLITE_OK;
}

static const sqlite3_module chunk_module = {
    .iVersion = 0,
    .xConnect = chunk_connect,
    .xBestIndex = chunk_best_index,
    .xDisconnect = chunk_disconnect,
    .xOpen = chunk_open,
    .xClose = chunk_close,
    .xFilter = chunk_filter,
    .xNext = chunk_next,
    .xEof = chunk_eof,
    .xColumn = chunk_column,
    .xRowid = chunk_rowid,
};

/* calls_all over fr_chunk, for a connection to a version 9 journal. */
static const char sql_view[] =
    "CREATE TEMP VIEW calls_all AS"
    " SELECT id, run_id, key, agent, item, phase, output, status, tokens_in, tokens_out, usd,"
    " attempts, latency_ms, finished_ms, held_usd, held_tokens, lost_usd, lost_tokens, owner,"
    " tier, cache_read, cache_write, saved_usd, detail, 0 AS in_chunk FROM main.calls"
    " UNION ALL"
    " SELECT c.first + e.idx, c.run_id, e.key, e.agent, e.item, e.phase, e.output, e.status,"
    " e.tokens_in, e.tokens_out, e.usd, e.attempts, e.latency_ms, e.finished_ms, 0.0, 0, 0.0,"
    " 0, 0, e.tier, e.cache_read, e.cache_write, e.saved_usd, e.detail, 1"
    " FROM main.call_chunks c, fr_chunk(c.body) e";

/* ... and for an older one: its calls as they are. */
static const char sql_old_view[] =
    "CREATE TEMP VIEW calls_all AS SELECT *, 0 AS in_chunk FROM main.calls";

/* Whether the main schema has an object called name; -1 on error. */
static int has(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM main.sqlite_master WHERE name = ?1", -1,
                           &st, NULL) != SQLITE_OK)
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return n < 0 ? -1 : n > 0;
}

bool fr_chunk_attach(sqlite3 *db)
{
    if (sqlite3_create_module(db, "fr_chunk", &chunk_module, NULL) != SQLITE_OK)
        return false;
    sqlite3_exec(db, "DROP VIEW IF EXISTS temp.calls_all", NULL, NULL, NULL);
    int chunks = has(db, "call_chunks"), calls = has(db, "calls");
    if (chunks < 0 || calls < 0)
        return false;
    if (!calls)
        return true;                        /* a new file: nothing to read yet */
    return sqlite3_exec(db, chunks ? sql_view : sql_old_view, NULL, NULL, NULL) == SQLITE_OK;
}
