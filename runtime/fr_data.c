/*
 * fr_data.c: data files a row at a time (fr_data.h): JSON Lines and CSV in,
 * CSV out.
 *
 * Both readers take the file a physical line at a time (getline), so they
 * know the line every row starts on and keep each row's text as it is, for
 * messages and rejects files.  A UTF-8 byte order mark at the start is
 * skipped.
 *
 * CSV (RFC 4180) is parsed by libcsv in strict mode, fed one line at a time:
 * a line break ends a row only outside quotes, so a row ends with the line
 * that was fed when libcsv reports its end, and a row that spans lines (a
 * quoted cell with line breaks) is the lines fed since the last row.  Lines
 * end at LF, CRLF or a lone CR.  Spaces are data (libcsv's trimming is turned
 * off).  A stray quote (`ab"c`, `"ab"c`) is a bad row; the reader picks up
 * again at the next line.  The first row is the header: each column maps to
 * the field whose wire name it is; a missing required column, a column the
 * schema neither declares nor drops or keeps, and a column named twice are
 * reported once, before any row (FR_ROW_FATAL).  A cell becomes a value by
 * the field's type:
 *
 *   empty             null for an optional field, [] for a list, else an error
 *   string            as it is (valid UTF-8 only)
 *   int, float        a decimal number, spaces around it ignored
 *   bool              true/false, yes/no, 1/0, in any case
 *   enum              one of the values as they are on the wire
 *   list<T>           items separated by ';', each trimmed and read as T
 *
 * then checked against the field's constraints.  Every problem of a row is
 * reported, each with the cell's own line and column.  A kept column (extra:
 * keep) is a string, "" when empty; a kept record holds every column, in the
 * header's order, so it is written back as it came.
 *
 * JSON Lines: each non-blank line is one JSON value (duplicate keys are an
 * error), checked against the schema with every top-level problem reported.
 */
#include "fr_data.h"
#include "fr_internal.h"

#include <csv.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COLUMNS 100000         /* cells in a row at most: beyond, the row is bad */
#define LINE_MAX_BYTES (16u << 20) /* a line (a CSV row) at most: /dev/zero has no newline */

/* One cell of the row being read: offset and length in cells (the buffer,
 * where each cell is followed by a NUL). */
typedef struct cell {
    size_t off;                    /* where its bytes start in r->cells */
    size_t len;                    /* how many */
} cell;

/* What a column of the CSV header is. */
typedef struct column {
    const fr_field *field;         /* the field it fills, or NULL: an extra column */
    bool keep;                     /* an extra column of a kept record */
    size_t name;                   /* its name's offset in r->names (NUL-terminated) */
} column;

struct fr_reader {
    const char *path;              /* as given ("-": stdin) */
    fr_format fmt;                 /* JSONL or CSV */
    const fr_type *elem;           /* the record type */
    const fr_schema *sc;           /* its schema */
    FILE *f;                       /* the file */
    bool close_f;                  /* not stdin */
    char *line;                    /* the line being read */
    size_t line_cap;               /* its buffer's size */
    const char *rest;              /* CSV: what is left of it after a lone CR */
    size_t rest_len;               /* how much */
    long lineno;                   /* lines read so far */
    long row_line;                 /* the line the current row starts on */
    long rows;                     /* data rows so far */
    bool eof;                      /* the file is done */
    fr_buf raw;                    /* the current row's text */
    fr_problem *probs;             /* the current row's problems */
    int nprobs, capprobs;          /* used and allocated */
    fr_buf strs;                   /* the problems' texts, NUL-separated */
    size_t *str_offs;              /* offsets of key and msg per problem (2 each) */
    char *error;                   /* why FR_ROW_FATAL, when no problem says */
    /* CSV */
    char delim;                    /* the cell separator */
    struct csv_parser csv;         /* libcsv's state */
    bool csv_ready;                /* csv is initialized */
    fr_buf cells;                  /* the current row's cell bytes */
    cell *cellv;                   /* its cells */
    size_t ncells, capcells;       /* used and allocated */
    bool row_done;                 /* libcsv ended a row in the last feed */
    bool too_many;                 /* the row has more than MAX_COLUMNS cells */
    bool have_header;              /* the header row was read */
    fr_buf header;                 /* its text */
    fr_buf names;                  /* its columns' names, each NUL-terminated */
    bool crlf;                     /* the last line fed ended with CRLF */
    char newline[3];               /* "\r\n" or "\n" */
    column *cols;                  /* one per header column */
    size_t ncols;                  /* how many */
    bool oom;                      /* memory ran out */
    bool check_only;               /* rows are checked, not built (flowc check --data) */
};

void fr_reader_check_only(fr_reader *r)
{
    r->check_only = true;
}

/* ---- problems ------------------------------------------------------------ */

static void reset_problems(fr_reader *r)
{
    r->nprobs = 0;
    r->strs.len = 0;
}

/* Adds a problem; its texts are copied. */
static void problem(fr_reader *r, const char *key, long line, long col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void problem(fr_reader *r, const char *key, long line, long col, const char *fmt, ...)
{
    if (r->nprobs == r->capprobs) {
        int cap = r->capprobs ? r->capprobs * 2 : 8;
        fr_problem *p = fr_realloc(r->probs, sizeof *p * (size_t)cap);
        size_t *o = fr_realloc(r->str_offs, sizeof *o * 2 * (size_t)cap);
        if (p)
            r->probs = p;
        if (o)
            r->str_offs = o;
        if (!p || !o) {
            r->oom = true;
            return;
        }
        r->capprobs = cap;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int i = r->nprobs++;
    r->str_offs[2 * i] = key ? r->strs.len : (size_t)-1;
    if (key)
        fr_buf_put(&r->strs, key, strlen(key) + 1);
    r->str_offs[2 * i + 1] = r->strs.len;
    fr_buf_put(&r->strs, msg, strlen(msg) + 1);
    r->probs[i] = (fr_problem){ NULL, NULL, line, col };
    if (fr_buf_failed(&r->strs))
        r->oom = true;
}

const fr_problem *fr_reader_problems(const fr_reader *r, int *n)
{
    fr_reader *w = (fr_reader *)r;
    for (int i = 0; i < r->nprobs && r->strs.s; i++) {    /* the buffer may have moved */
        size_t k = r->str_offs[2 * i];
        w->probs[i].key = k == (size_t)-1 ? NULL : r->strs.s + k;
        w->probs[i].msg = r->strs.s + r->str_offs[2 * i + 1];
    }
    *n = r->strs.s ? r->nprobs : 0;
    return r->probs;
}

bool fr_reader_oom(const fr_reader *r)
{
    return r->oom;
}

const char *fr_reader_error(const fr_reader *r)
{
    if (r->oom)
        return "out of memory";
    return r->error ? r->error : "cannot read on";
}

long fr_reader_line(const fr_reader *r)
{
    return r->row_line;
}

const char *fr_reader_raw(const fr_reader *r, size_t *n)
{
    *n = r->raw.len;
    return r->raw.s ? r->raw.s : "";
}

const char *fr_reader_header(const fr_reader *r, size_t *n)
{
    *n = r->header.len;
    return r->header.s ? r->header.s : "";
}

const char *fr_reader_newline(const fr_reader *r)
{
    return r->newline[0] ? r->newline : "\n";
}

long fr_reader_rows(const fr_reader *r)
{
    return r->rows;
}

/* 'text' for a message: at most 60 bytes, control and invalid bytes as \xNN. */
static void quoted(fr_buf *b, const char *s, size_t n)
{
    fr_buf_put(b, "'", 1);
    size_t i = 0;
    while (i < n && i < 60) {
        unsigned char c = (unsigned char)s[i];
        size_t k = 1;
        if (c >= 0x80) {
            while (k < 4 && i + k < n && ((unsigned char)s[i + k] & 0xc0) == 0x80)
                k++;
            if (!fr_utf8_valid(s + i, k))
                k = 0;
        }
        if (c < 0x20 || c == 0x7f || k == 0) {
            fr_buf_printf(b, "\\x%02x", c);
            k = 1;
        } else {
            fr_buf_put(b, s + i, k);
        }
        i += k;
    }
    fr_buf_put(b, i < n ? "'..." : "'", i < n ? 4 : 1);
}

void fr_reader_describe(const fr_reader *r, fr_buf *out)
{
    int n;
    const fr_problem *p = fr_reader_problems(r, &n);
    for (int i = 0; i < n; i++) {
        if (i)
            fr_buf_puts(out, "; ");
        if (r->fmt == FR_FMT_CSV && p[i].key) {
            fr_buf_puts(out, "column ");
            quoted(out, p[i].key, strlen(p[i].key));
            fr_buf_puts(out, ": ");
        }
        fr_buf_puts(out, p[i].msg);
    }
    if (n == 0)
        fr_buf_puts(out, fr_reader_error(r));
}

/* ---- lines --------------------------------------------------------------- */

static void set_error(fr_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(fr_reader *r, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fr_free(r->error);
    r->error = fr_strdup(msg);
    if (!r->error)
        r->oom = true;
}

/* One line of r->f, its line break included, into r->line (grown up to
 * LINE_MAX_BYTES): its length, -1 at the end of the file, -2 for a line over
 * the limit, -3 when out of memory.  (getline would grow without bound on a
 * file with no newline, and say ENOMEM as if the file had ended.) */
static ssize_t read_line(fr_reader *r)
{
    size_t n = 0;
    int c = EOF;
    flockfile(r->f);
    while ((c = getc_unlocked(r->f)) != EOF) {
        if (n >= LINE_MAX_BYTES) {
            funlockfile(r->f);
            return -2;
        }
        if (n + 2 > r->line_cap) {
            size_t cap = r->line_cap ? r->line_cap * 2 : 4096;
            char *b = fr_realloc(r->line, cap);
            if (!b) {
                funlockfile(r->f);
                return -3;
            }
            r->line = b, r->line_cap = cap;
        }
        r->line[n++] = (char)c;
        if (c == '\n')
            break;
    }
    funlockfile(r->f);
    if (n == 0)
        return -1;
    r->line[n] = '\0';
    return (ssize_t)n;
}

/* The next physical line (with its line break), its length in *len; NULL
 * at the end (r->error set on a read error or a line over the limit).  In
 * CSV a lone CR ends a line too (old Mac files); JSON Lines are split at LF
 * only. */
static const char *next_line(fr_reader *r, size_t *len)
{
    if (r->rest_len == 0) {
        if (r->eof)
            return NULL;
        errno = 0;
        ssize_t n = read_line(r);
        if (n < 0) {
            r->eof = true;
            if (n == -3)
                r->oom = true;
            else if (n == -2)
                set_error(r, "%s:%ld: the line is longer than %u MiB, the limit of a %s line (is "
                          "it the right file?)", r->path, r->lineno + 1, LINE_MAX_BYTES >> 20,
                          r->fmt == FR_FMT_CSV ? "CSV" : "JSON Lines");
            else if (ferror(r->f))
                set_error(r, "cannot read '%s': %s", r->path, errno ? strerror(errno) : "read error");
            return NULL;
        }
        r->rest = r->line;
        r->rest_len = (size_t)n;
        if (r->lineno == 0 && n >= 3 && memcmp(r->line, "\xef\xbb\xbf", 3) == 0) {
            r->rest += 3;          /* a UTF-8 byte order mark */
            r->rest_len -= 3;
        }
    }
    const char *s = r->rest;
    size_t n = r->rest_len;
    const char *cr = r->fmt == FR_FMT_CSV ? memchr(s, '\r', n) : NULL;
    while (cr && cr + 1 < s + n && cr[1] == '\n')
        cr = memchr(cr + 1, '\r', (size_t)(s + n - cr - 1));
    if (cr)
        n = (size_t)(cr - s) + 1;
    r->rest += n;
    r->rest_len -= n;
    r->lineno++;
    *len = n;
    return s;
}

/* s[0..n) without its line break. */
static size_t chomp(const char *s, size_t n)
{
    if (n && s[n - 1] == '\n')
        n--;
    if (n && s[n - 1] == '\r')
        n--;
    return n;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i]))
            return false;
    return true;
}

/* ---- opening ------------------------------------------------------------- */

static void *lib_realloc(void *p, size_t n)
{
    return fr_realloc(p, n);
}

static int no_space(unsigned char c)
{
    (void)c;
    return 0;                      /* spaces are data (RFC 4180) */
}

static bool csv_start(fr_reader *r)
{
    if (r->csv_ready)
        csv_free(&r->csv);
    r->csv_ready = csv_init(&r->csv, CSV_STRICT | CSV_STRICT_FINI) == 0;
    if (!r->csv_ready)
        return false;
    csv_set_delim(&r->csv, (unsigned char)r->delim);
    csv_set_space_func(&r->csv, no_space);
    csv_set_realloc_func(&r->csv, lib_realloc);
    csv_set_free_func(&r->csv, fr_free);
    return true;
}

fr_reader *fr_reader_open(const char *path, fr_format fmt, const fr_type *elem, char delim,
                          fr_buf *err)
{
    const fr_type *rec = elem;
    while (rec && rec->kind == FR_OPTIONAL)
        rec = rec->elem;
    if (!rec || (rec->kind != FR_RECORD && fmt == FR_FMT_CSV)) {
        fr_buf_puts(err, "a CSV file holds records: its type must be a schema");
        return NULL;
    }
    fr_reader *r = fr_calloc(1, sizeof *r);
    if (!r) {
        fr_buf_puts(err, "out of memory");
        return NULL;
    }
    r->path = path;
    r->fmt = fmt;
    r->elem = elem;
    r->sc = rec->kind == FR_RECORD ? rec->schema : NULL;
    r->delim = delim ? delim : ',';
    if (strcmp(path, "-") == 0) {
        r->f = stdin;
    } else {
        r->f = fopen(path, "re");
        r->close_f = true;
    }
    if (!r->f) {
        fr_buf_printf(err, "cannot open '%s': %s", path, strerror(errno));
        fr_free(r);
        return NULL;
    }
    if (fmt == FR_FMT_CSV && !csv_start(r)) {
        fr_buf_puts(err, "out of memory");
        fr_reader_close(r);
        return NULL;
    }
    return r;
}

void fr_reader_close(fr_reader *r)
{
    if (!r)
        return;
    if (r->close_f && r->f)
        fclose(r->f);
    if (r->csv_ready)
        csv_free(&r->csv);
    fr_free(r->line);
    fr_buf_free(&r->raw);
    fr_buf_free(&r->strs);
    fr_buf_free(&r->cells);
    fr_buf_free(&r->header);
    fr_buf_free(&r->names);
    fr_free(r->probs);
    fr_free(r->str_offs);
    fr_free(r->cellv);
    fr_free(r->cols);
    fr_free(r->error);
    fr_free(r);
}

/* ---- JSON Lines ---------------------------------------------------------- */

static void jsonl_problem(void *ctx, const char *key, const char *msg)
{
    fr_reader *r = ctx;
    if (!msg)
        r->oom = true;
    else
        problem(r, key, r->row_line, 0, "%s", msg);
}

static fr_row jsonl_next(fr_reader *r, json_t **row)
{
    const char *line;
    size_t len;
    for (;;) {
        if (!(line = next_line(r, &len)))
            return r->error || r->oom ? FR_ROW_FATAL : FR_ROW_END;
        len = chomp(line, len);
        if (!blank(line, len))
            break;
    }
    r->row_line = r->lineno;
    r->rows++;
    r->raw.len = 0;
    fr_buf_put(&r->raw, line, len);
    if (fr_buf_failed(&r->raw)) {
        r->oom = true;
        return FR_ROW_FATAL;
    }
    json_error_t je;
    json_t *v = fr_json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v && json_error_code(&je) == json_error_out_of_memory) {
        r->oom = true;
        return FR_ROW_FATAL;
    }
    if (!v) {
        problem(r, NULL, r->row_line, je.column > 0 ? je.column : 0, "invalid JSON: %s at column %d",
                je.text, je.column);
        return r->oom ? FR_ROW_FATAL : FR_ROW_BAD;
    }
    if (r->sc && json_is_object(v)) {
        fr_validate_fields(v, r->sc, jsonl_problem, r);
    } else {
        fr_buf err = { 0 };
        if (!fr_validate(v, r->elem, &err) && (fr_buf_failed(&err) || !err.s))
            r->oom = true;
        else if (err.s)
            problem(r, NULL, r->row_line, 0, "%s", err.s);
        fr_buf_free(&err);
    }
    if (r->nprobs || r->oom) {
        json_decref(v);
        return r->oom ? FR_ROW_FATAL : FR_ROW_BAD;
    }
    if (r->check_only) {
        json_decref(v);
        return FR_ROW_GOOD;
    }
    *row = fr_normalize(v, r->elem);
    json_decref(v);
    if (!*row)
        r->oom = true;
    return *row ? FR_ROW_GOOD : FR_ROW_FATAL;
}

/* ---- CSV: cells from libcsv ---------------------------------------------- */

static void on_cell(void *s, size_t n, void *data)
{
    fr_reader *r = data;
    if (r->ncells >= MAX_COLUMNS) {
        r->too_many = true;
        return;
    }
    if (r->ncells == r->capcells) {
        size_t cap = r->capcells ? r->capcells * 2 : 32;
        cell *c = fr_realloc(r->cellv, sizeof *c * cap);
        if (!c) {
            r->oom = true;
            return;
        }
        r->cellv = c;
        r->capcells = cap;
    }
    r->cellv[r->ncells++] = (cell){ r->cells.len, n };
    fr_buf_put(&r->cells, s ? s : "", n);
    fr_buf_put(&r->cells, "", 1);              /* each cell NUL-terminated */
    if (fr_buf_failed(&r->cells))
        r->oom = true;
}

static void on_row(int c, void *data)
{
    (void)c;
    ((fr_reader *)data)->row_done = true;
}

/* Feeds one physical line to libcsv; false on a stray quote (libcsv's
 * strict error), which leaves the parser to be restarted. */
static bool feed(fr_reader *r, const char *s, size_t n)
{
    size_t used = csv_parse(&r->csv, s, n, on_cell, on_row, r);
    if (used == n)
        return true;
    if (csv_error(&r->csv) == CSV_ENOMEM || csv_error(&r->csv) == CSV_ETOOBIG)
        r->oom = true;
    return false;
}

/* Where cell k of the current row starts: its line and byte column, found
 * by walking the row's text as libcsv did. */
static void cell_pos(fr_reader *r, size_t k, long *line, long *col)
{
    const char *s = r->raw.s ? r->raw.s : "";
    size_t n = r->raw.len, i = 0, start = 0, cur = 0;
    bool inq = false;
    for (; i < n && cur < k; i++) {
        char c = s[i];
        if (c == '"' && (inq || i == start))
            inq = !inq || (i + 1 < n && s[i + 1] == '"' && (i++, true));
        else if (c == r->delim && !inq)
            cur++, start = i + 1;
    }
    *line = r->row_line;
    *col = 1;
    for (size_t j = 0; j < start && j < n; j++) {
        if (s[j] == '\n' || (s[j] == '\r' && (j + 1 >= n || s[j + 1] != '\n'))) {
            ++*line;
            *col = 1;
        } else if (s[j] != '\r') {
            ++*col;
        }
    }
}

/* Reads lines until libcsv ends a row: its cells in r->cellv, its text in
 * r->raw.  FR_ROW_END at the end of the file, FR_ROW_BAD for a stray quote
 * (with its problem), FR_ROW_FATAL on a read error or without memory. */
static fr_row csv_row(fr_reader *r)
{
    r->ncells = 0;
    r->cells.len = 0;
    r->raw.len = 0;
    r->row_done = false;
    r->too_many = false;
    bool started = false;
    for (;;) {
        size_t len;
        const char *line = next_line(r, &len);
        if (!line) {
            if (r->error || r->oom)
                return FR_ROW_FATAL;
            if (!started)
                return FR_ROW_END;
            if (csv_fini(&r->csv, on_cell, on_row, r) != 0) {
                r->raw.len = chomp(r->raw.s, r->raw.len);
                problem(r, NULL, r->row_line, 0, "a quoted cell is not closed before the end "
                        "of the file");
                csv_start(r);
                return FR_ROW_BAD;
            }
            break;
        }
        if (!started && chomp(line, len) == 0)
            continue;              /* an empty line between rows */
        if (!started) {
            started = true;
            r->row_line = r->lineno;
        }
        r->crlf = len >= 2 && line[len - 2] == '\r' && line[len - 1] == '\n';
        if (r->raw.len + len > LINE_MAX_BYTES) {
            set_error(r, "%s:%ld: the row is longer than %u MiB, the limit of a CSV row (a "
                      "quoted cell not closed?)", r->path, r->row_line, LINE_MAX_BYTES >> 20);
            return FR_ROW_FATAL;
        }
        fr_buf_put(&r->raw, line, len);
        if (!feed(r, line, len)) {
            if (r->oom)
                return FR_ROW_FATAL;
            r->raw.len = chomp(r->raw.s, r->raw.len);
            problem(r, NULL, r->lineno, 0, "a stray '\"': a cell that holds quotes must be "
                    "in quotes, each of its own quotes doubled (\"say \"\"hi\"\"\")");
            if (!csv_start(r))
                r->oom = true;
            return r->oom ? FR_ROW_FATAL : FR_ROW_BAD;
        }
        if (r->oom)
            return FR_ROW_FATAL;
        if (r->row_done)
            break;
    }
    r->raw.len = chomp(r->raw.s ? r->raw.s : "", r->raw.len);
    if (fr_buf_failed(&r->raw))
        r->oom = true;
    return r->oom ? FR_ROW_FATAL : FR_ROW_GOOD;
}

static const char *cell_text(fr_reader *r, size_t k)
{
    return r->cells.s + r->cellv[k].off;
}

/* ---- CSV: the header ----------------------------------------------------- */

/* The column named key, or -1. */
static long find_column(fr_reader *r, const char *key)
{
    size_t n = strlen(key);
    for (size_t k = 0; k < r->ncells; k++)
        if (r->cellv[k].len == n && memcmp(cell_text(r, k), key, n) == 0)
            return (long)k;
    return -1;
}

/* A field that a CSV cell cannot hold (a record, a list of lists). */
static const fr_field *not_a_cell(const fr_schema *sc)
{
    for (int i = 0; i < sc->nfields; i++) {
        const fr_type *t = sc->fields[i].type;
        while (t->kind == FR_OPTIONAL)
            t = t->elem;
        if (t->kind == FR_LIST)
            for (t = t->elem; t->kind == FR_OPTIONAL; t = t->elem)
                ;
        if (t->kind == FR_RECORD || t->kind == FR_LIST)
            return &sc->fields[i];
    }
    return NULL;
}

/* The header column closest to w (a typo, another case), or -1. */
static long near_column(fr_reader *r, const char *w)
{
    long near = -1;
    size_t best = strlen(w) / 3 + 1;
    for (size_t k = 0; k < r->ncells; k++) {
        const char *name = cell_text(r, k);
        if (!fr_utf8_valid(name, r->cellv[k].len))
            continue;
        size_t d = fr_edit_distance(w, name);
        if (d < best || (d == best && near < 0 && strcasecmp(w, name) == 0)) {
            best = d;
            near = (long)k;
        }
    }
    return near;
}

/* A required field's column is missing: said once, at its near miss if any. */
static void missing_column(fr_reader *r, const fr_field *f, long k)
{
    const char *w = fr_field_wire(f);
    long line = 1, col = 0;
    if (k < 0) {
        problem(r, w, line, col, "missing column '%s', which field '%s' needs", w, f->name);
        return;
    }
    cell_pos(r, (size_t)k, &line, &col);
    const char *near = cell_text(r, (size_t)k);
    problem(r, w, line, col, "missing column '%s', which field '%s' needs; the header has "
            "'%s': if that is it, write @alias(\"%s\")", w, f->name, near, near);
}

/* Every problem of the header, column by column: a column named twice, a
 * column the schema neither declares nor drops or keeps, a required field
 * without its column (said at the column it was probably misspelled as). */
static void header_columns(fr_reader *r)
{
    const fr_schema *sc = r->sc;
    long *near = fr_calloc((size_t)sc->nfields + 1, sizeof *near);
    if (!near) {
        r->oom = true;
        return;
    }
    for (int i = 0; i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        bool missing = f->type->kind != FR_OPTIONAL && find_column(r, fr_field_wire(f)) < 0;
        near[i] = missing ? near_column(r, fr_field_wire(f)) : -2;
    }
    for (size_t k = 0; k < r->ncells; k++) {
        const char *name = cell_text(r, k);
        size_t len = r->cellv[k].len;
        long line, col;
        cell_pos(r, k, &line, &col);
        if (!fr_utf8_valid(name, len) || memchr(name, '\0', len)) {
            problem(r, NULL, line, col, "column %zu's name is not valid UTF-8; save the file "
                    "as UTF-8", k + 1);
            continue;
        }
        const fr_field *f = fr_schema_field(sc, name, FR_KEYS_WIRE);
        long first = find_column(r, name);
        if (first >= 0 && (size_t)first < k && (f || sc->extra == FR_EXTRA_KEEP)) {
            problem(r, name, line, col, "column '%s' is in the header twice (columns %ld and "
                    "%zu)", name, first + 1, k + 1);
            continue;
        }
        r->cols[k] = (column){ f, !f && sc->extra == FR_EXTRA_KEEP, r->names.len };
        fr_buf_put(&r->names, name, len);
        fr_buf_put(&r->names, "", 1);
        if (fr_buf_failed(&r->names))
            r->oom = true;
        if (f || sc->extra != FR_EXTRA_REJECT)
            continue;
        int miss = -1;
        for (int i = 0; i < sc->nfields && miss < 0; i++)
            if (near[i] == (long)k)
                miss = i;
        if (miss >= 0) {
            missing_column(r, &sc->fields[miss], (long)k);
            near[miss] = -2;
            continue;
        }
        const char *close = fr_closest_field(sc, name, FR_KEYS_WIRE);
        if (close)
            problem(r, name, line, col, "unknown column '%s' (did you mean '%s'?)", name, close);
        else
            problem(r, name, line, col, "unknown column '%s': declare a field for it, or "
                    "write 'schema %s (extra: drop)' to drop columns it does not declare",
                    name, sc->name);
    }
    for (int i = 0; i < sc->nfields; i++)
        if (near[i] != -2)
            missing_column(r, &sc->fields[i], near[i]);
    fr_free(near);
}

/* The header row: columns mapped to fields, every problem reported. */
static fr_row read_header(fr_reader *r)
{
    fr_row st = csv_row(r);
    if (st == FR_ROW_END) {
        problem(r, NULL, 1, 0, "the file is empty: a CSV file starts with a header row");
        return FR_ROW_FATAL;
    }
    if (st != FR_ROW_GOOD)
        return FR_ROW_FATAL;
    r->have_header = true;
    fr_buf_put(&r->header, r->raw.s, r->raw.len);
    strcpy(r->newline, r->crlf ? "\r\n" : "\n");
    if (fr_buf_failed(&r->header)) {
        r->oom = true;
        return FR_ROW_FATAL;
    }
    const fr_field *nf = not_a_cell(r->sc);
    if (nf) {
        problem(r, NULL, 1, 0, "schema '%s' cannot be read from CSV: field '%s' is not one "
                "value", r->sc->name, nf->name);
        return FR_ROW_FATAL;
    }
    r->ncols = r->ncells;
    r->cols = fr_calloc(r->ncols ? r->ncols : 1, sizeof *r->cols);
    if (!r->cols) {
        r->oom = true;
        return FR_ROW_FATAL;
    }
    header_columns(r);
    return r->nprobs || r->oom ? FR_ROW_FATAL : FR_ROW_GOOD;
}

/* ---- CSV: cells to values ------------------------------------------------ */

/* s[0..n) without ASCII spaces and tabs at either end. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t'))
        s++, --*n;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
        --*n;
    return s;
}

static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* A cell's text as a value of the scalar type t, or NULL with *why set. */
static json_t *scalar(const fr_type *t, const char *s, size_t n, fr_buf *why)
{
    char buf[64];
    switch (t->kind) {
    case FR_STRING:
        if (!fr_utf8_valid(s, n) || memchr(s, '\0', n)) {
            fr_buf_puts(why, "not valid UTF-8 text: ");
            quoted(why, s, n);
            fr_buf_puts(why, " (save the file as UTF-8)");
            return NULL;
        }
        return json_stringn_nocheck(s, n);
    case FR_INT: {
        s = trim(s, &n);
        size_t i = n && (s[0] == '-' || s[0] == '+');
        bool digits = i < n && n < sizeof buf;
        for (size_t j = i; j < n; j++)
            digits &= isdigit((unsigned char)s[j]) != 0;
        if (digits) {
            memcpy(buf, s, n);
            buf[n] = '\0';
            errno = 0;
            long long v = strtoll(buf, NULL, 10);
            if (errno != ERANGE)
                return json_integer((json_int_t)v);
        }
        fr_buf_puts(why, "expected int, got ");
        quoted(why, s, n);
        return NULL;
    }
    case FR_FLOAT: {
        s = trim(s, &n);
        bool ok = n > 0 && n < sizeof buf;
        for (size_t j = 0; ok && j < n; j++)
            ok = isdigit((unsigned char)s[j]) || strchr("+-.eE", s[j]);
        if (ok) {
            memcpy(buf, s, n);
            buf[n] = '\0';
            char *end;
            double v = strtod(buf, &end);
            if (end == buf + n && isfinite(v))
                return json_real(v);
        }
        fr_buf_puts(why, "expected float, got ");
        quoted(why, s, n);
        return NULL;
    }
    case FR_BOOL:
        s = trim(s, &n);
        if (word_is(s, n, "true") || word_is(s, n, "yes") || word_is(s, n, "1"))
            return json_true();
        if (word_is(s, n, "false") || word_is(s, n, "no") || word_is(s, n, "0"))
            return json_false();
        fr_buf_puts(why, "expected bool (true or false), got ");
        quoted(why, s, n);
        return NULL;
    case FR_ENUM: {
        s = trim(s, &n);
        const char *near = NULL;
        for (int i = 0; i < t->enm->nvalues; i++) {
            const char *v = t->enm->values[i];
            if (strlen(v) == n && memcmp(v, s, n) == 0)
                return json_string(v);
            if (word_is(s, n, v))
                near = v;
        }
        quoted(why, s, n);
        fr_buf_puts(why, " is not one of ");
        for (int i = 0; i < t->enm->nvalues; i++)
            fr_buf_printf(why, "%s%s", i ? ", " : "", t->enm->values[i]);
        if (near)
            fr_buf_printf(why, " (did you mean '%s'?)", near);
        return NULL;
    }
    default:
        fr_buf_puts(why, "a CSV cell cannot hold this type");
        return NULL;
    }
}

/* A list cell: items separated by ';', each trimmed; empty items skipped. */
static json_t *list_cell(const fr_type *elem, const char *s, size_t n, fr_buf *why)
{
    while (elem->kind == FR_OPTIONAL)
        elem = elem->elem;
    json_t *list = json_array();
    size_t start = 0, item = 0;
    for (size_t i = 0; list && i <= n; i++) {
        if (i < n && s[i] != ';')
            continue;
        size_t len = i - start;
        const char *p = trim(s + start, &len);
        start = i + 1;
        if (len == 0)
            continue;
        json_t *v = scalar(elem, p, len, why);
        if (!v) {
            if (why->len) {        /* "[2]: expected int, got 'x'" */
                char *msg = fr_strdup(why->s);
                why->len = 0;
                fr_buf_printf(why, "item %zu: %s", item + 1, msg ? msg : "");
                fr_free(msg);
            }
            json_decref(list);
            return NULL;
        }
        item++;
        if (json_array_append_new(list, v)) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

/* Cell k as the value of field f: NULL for no value (an empty cell of an
 * optional field), else the value or, with a problem reported, NULL. */
static json_t *field_cell(fr_reader *r, size_t k, const fr_field *f, bool *bad)
{
    const char *s = cell_text(r, k);
    size_t n = r->cellv[k].len, tn = n;
    const fr_type *t = f->type;
    bool optional = t->kind == FR_OPTIONAL;
    while (t->kind == FR_OPTIONAL)
        t = t->elem;
    trim(s, &tn);
    fr_buf why = { 0 };
    json_t *v = NULL;
    if (n == 0 || (tn == 0 && t->kind != FR_STRING)) {
        if (optional)
            return NULL;
        if (t->kind == FR_LIST)
            v = json_array();
        else
            fr_buf_printf(&why, "empty, but field '%s' is required", f->name);
    } else if (t->kind == FR_LIST) {
        v = list_cell(t->elem, s, n, &why);
    } else {
        v = scalar(t, s, n, &why);
    }
    if (v && !fr_validate_field(v, f, &why)) {
        json_decref(v);
        v = NULL;
    }
    if (!v) {
        long line, col;
        cell_pos(r, k, &line, &col);
        if (why.len)
            problem(r, fr_field_wire(f), line, col, "%s", why.s);
        else
            r->oom = true;
        *bad = true;
    }
    fr_buf_free(&why);
    return v;
}

/* The current row as a record (every problem reported), or NULL. */
static json_t *csv_record(fr_reader *r)
{
    json_t *rec = json_object();
    bool bad = false;
    if (!rec) {
        r->oom = true;
        return NULL;
    }
    bool keep = r->sc->extra == FR_EXTRA_KEEP;
    for (size_t k = 0; k < r->ncols && !r->oom; k++) {
        const column *c = &r->cols[k];
        json_t *v = NULL;
        if (c->field) {
            v = field_cell(r, k, c->field, &bad);
            if (!v && keep && !bad)
                v = json_null();   /* holds the column's place */
        } else if (c->keep) {
            const char *s = cell_text(r, k);
            size_t n = r->cellv[k].len;
            if (!fr_utf8_valid(s, n) || memchr(s, '\0', n)) {
                long line, col;
                fr_buf why = { 0 };
                cell_pos(r, k, &line, &col);
                fr_buf_puts(&why, "not valid UTF-8 text: ");
                quoted(&why, s, n);
                problem(r, r->names.s + c->name, line, col, "%s (save the file as UTF-8)",
                        why.s ? why.s : "");
                fr_buf_free(&why);
                bad = true;
                continue;
            }
            v = json_stringn_nocheck(s, n);
        }
        if (!v || r->check_only) {
            json_decref(v);
            continue;
        }
        const char *key = c->field ? fr_field_wire(c->field) : r->names.s + c->name;
        if (json_object_set_new_nocheck(rec, key, v))
            r->oom = true;
    }
    if (bad || r->oom) {
        json_decref(rec);
        return NULL;
    }
    return rec;
}

static fr_row csv_next(fr_reader *r, json_t **row)
{
    if (!r->have_header) {
        fr_row st = read_header(r);
        if (st != FR_ROW_GOOD)
            return FR_ROW_FATAL;
        reset_problems(r);
    }
    fr_row st;
    for (;;) {
        st = csv_row(r);
        if (st != FR_ROW_GOOD)
            break;
        if (!(r->ncells == 1 && blank(cell_text(r, 0), r->cellv[0].len)))
            break;                 /* a line of spaces is a blank line */
    }
    if (st == FR_ROW_END || st == FR_ROW_FATAL)
        return st;
    r->rows++;
    if (st == FR_ROW_BAD)
        return FR_ROW_BAD;
    if (r->too_many || r->ncells != r->ncols) {
        problem(r, NULL, r->row_line, 0, "%s%zu cell%s, but the header has %zu column%s",
                r->too_many ? "more than " : "", r->ncells, r->ncells == 1 ? "" : "s", r->ncols,
                r->ncols == 1 ? "" : "s");
        return FR_ROW_BAD;
    }
    json_t *rec = csv_record(r);
    if (rec && r->check_only) {
        json_decref(rec);
        return FR_ROW_GOOD;
    }
    *row = rec;
    if (rec)
        return FR_ROW_GOOD;
    return r->oom ? FR_ROW_FATAL : FR_ROW_BAD;
}

fr_row fr_reader_next(fr_reader *r, json_t **row)
{
    *row = NULL;
    reset_problems(r);
    if (r->oom)
        return FR_ROW_FATAL;
    return r->fmt == FR_FMT_CSV ? csv_next(r, row) : jsonl_next(r, row);
}

/* ---- CSV out ------------------------------------------------------------- */

/* A number as it reads back: ints as digits, floats the shortest way. */
static void put_number(fr_buf *b, json_t *v)
{
    if (json_is_integer(v)) {
        fr_buf_printf(b, "%lld", (long long)json_integer_value(v));
        return;
    }
    char s[40];
    double d = json_real_value(v);
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            break;
    }
    fr_buf_puts(b, s);
}

/* One value as a cell's text; false (err set) for a list item with ';'. */
static bool cell_text_of(fr_buf *b, json_t *v, bool in_list, fr_buf *err)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (in_list && memchr(json_string_value(v), ';', json_string_length(v))) {
            fr_buf_puts(err, "a list item holds ';', which separates the items of a CSV cell: ");
            quoted(err, json_string_value(v), json_string_length(v));
            return false;
        }
        fr_buf_put(b, json_string_value(v), json_string_length(v));
        return true;
    case JSON_INTEGER:
    case JSON_REAL:
        put_number(b, v);
        return true;
    case JSON_TRUE: fr_buf_puts(b, "true"); return true;
    case JSON_FALSE: fr_buf_puts(b, "false"); return true;
    case JSON_NULL: return true;
    case JSON_ARRAY:
        if (!in_list) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                if (i)
                    fr_buf_put(b, ";", 1);
                if (!cell_text_of(b, json_array_get(v, i), true, err))
                    return false;
            }
            return true;
        }
        __attribute__((fallthrough));  /* a kept key's nested value: as JSON */
    case JSON_OBJECT: {
        char *s = fr_to_json(v, NULL);
        if (!s) {
            fr_buf_puts(err, "out of memory");
            return false;
        }
        fr_buf_puts(b, s);
        fr_free(s);
        return true;
    }
    }
    return true;
}

/* A cell, quoted when it holds the separator, a quote, a line break, or
 * spaces at an end. */
static void put_cell(fr_buf *b, const char *s, size_t n, char delim)
{
    bool q = n && (s[0] == ' ' || s[n - 1] == ' ' || s[0] == '\t' || s[n - 1] == '\t');
    for (size_t i = 0; i < n && !q; i++)
        q = s[i] == delim || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!q) {
        fr_buf_put(b, s, n);
        return;
    }
    fr_buf_put(b, "\"", 1);
    for (size_t i = 0, run = 0; i <= n; i++) {
        if (i < n && s[i] != '"')
            continue;
        fr_buf_put(b, s + run, i - run + (i < n));
        if (i < n)
            fr_buf_put(b, "\"", 1);
        run = i + 1;
    }
    fr_buf_put(b, "\"", 1);
}

bool fr_csv_note_keys(json_t *cols, json_t *rec)
{
    const char *k;
    json_t *v;
    json_object_foreach(rec, k, v) {
        if (!json_object_get(cols, k) && json_object_set_new(cols, k, json_true()))
            return false;
    }
    return true;
}

bool fr_csv_add_fields(json_t *cols, const fr_schema *sc)
{
    for (int i = 0; i < sc->nfields; i++) {
        const char *w = fr_field_wire(&sc->fields[i]);
        if (!json_object_get(cols, w) && json_object_set_new(cols, w, json_true()))
            return false;
    }
    return true;
}

/* The columns: the wire names, and for a kept schema every key of the
 * records in the order it first comes (then the fields no record has). */
static json_t *csv_columns(json_t *list, const fr_schema *sc)
{
    json_t *cols = json_object();      /* name -> true, in order */
    bool ok = cols != NULL;
    for (size_t i = 0; ok && sc->extra == FR_EXTRA_KEEP && i < json_array_size(list); i++)
        ok = fr_csv_note_keys(cols, json_array_get(list, i));
    if (ok && fr_csv_add_fields(cols, sc))
        return cols;
    json_decref(cols);
    return NULL;
}

const fr_schema *fr_csv_schema(const fr_type *elem, fr_buf *err)
{
    while (elem && elem->kind == FR_OPTIONAL)
        elem = elem->elem;
    if (!elem || elem->kind != FR_RECORD) {
        fr_buf_puts(err, "write_csv writes records");
        return NULL;
    }
    return elem->schema;
}

bool fr_csv_head(fr_buf *line, json_t *cols, char delim)
{
    fr_buf none = { 0 };
    bool ok = fr_csv_row(line, &none, NULL, cols, delim, 0, &none);
    fr_buf_free(&none);
    return ok;
}

/* rec NULL: the header, the columns' names. */
bool fr_csv_row(fr_buf *line, fr_buf *text, json_t *rec, json_t *cols, char delim, size_t row,
                fr_buf *err)
{
    const char *k;
    json_t *v;
    size_t c = 0;
    delim = delim ? delim : ',';
    line->len = 0;
    json_object_foreach(cols, k, v) {
        if (c++)
            fr_buf_put(line, &delim, 1);
        if (!rec) {
            put_cell(line, k, strlen(k), delim);
            continue;
        }
        json_t *fv = json_object_get(rec, k);
        text->len = 0;
        if (fv && !cell_text_of(text, fv, false, err)) {
            char *msg = fr_strdup(err->s ? err->s : "");
            err->len = 0;
            fr_buf_printf(err, "row %zu, column '%s': %s", row, k, msg ? msg : "");
            fr_free(msg);
            return false;
        }
        put_cell(line, text->s ? text->s : "", text->len, delim);
    }
    fr_buf_puts(line, "\r\n");
    if (fr_buf_failed(line) || fr_buf_failed(text)) {
        fr_buf_puts(err, "out of memory");
        return false;
    }
    return true;
}

bool fr_csv_write(FILE *f, json_t *list, const fr_type *elem, char delim, fr_buf *err)
{
    const fr_schema *sc = fr_csv_schema(elem, err);
    if (!sc)
        return false;
    json_t *cols = csv_columns(list, sc);
    fr_buf line = { 0 }, text = { 0 };
    bool ok = cols && fr_csv_head(&line, cols, delim);
    if (!ok)
        fr_buf_puts(err, "out of memory");
    ok = ok && fwrite(line.s, 1, line.len, f) == line.len;
    for (size_t i = 0; ok && i < json_array_size(list); i++)
        ok = fr_csv_row(&line, &text, json_array_get(list, i), cols, delim, i + 1, err) &&
             fwrite(line.s, 1, line.len, f) == line.len;
    json_decref(cols);
    fr_buf_free(&line);
    fr_buf_free(&text);
    return ok;
}
