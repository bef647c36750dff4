/*
 * fr_io.c: the builtins that touch the outside world: read_jsonl<T>(path),
 * read_csv<T>(path), write_jsonl(xs, path), write_csv(xs, path) and
 * env(name).
 *
 * The reads go through fr_data.c's readers a row at a time, so a large file
 * costs one row of buffer besides the values; the list remembers each
 * item's line (fr_origin_of), for the skipped file.  Every bad row
 * is reported on stderr, named by file and line, with each of its problems
 * (the first MAX_REPORTED rows, then a count):
 *
 *   error: crm.flow:12:17: leads.csv:17: column 'Score': expected float, got 'n/a'
 *   error: crm.flow:12:17: leads.jsonl:9: invalid JSON: '}' expected near end of file at column 26
 *
 * Under on_bad: halt (the default) a bad row stops the read once the whole
 * file has been read and reported: a usage error (exit 2), so no model is
 * ever called on a file that has a bad row.  Under on_bad: skip the bad rows
 * are left out and written, each exactly as it was with its problems, to a
 * rejects file (by default <name>.rejects.csv or .jsonl in the working
 * directory), and the run summary counts them.  A rejects CSV is the input's
 * header and bad rows, each with two more cells, _line and _errors, so it
 * opens in a spreadsheet; a rejects JSONL has one {"line", "errors", "text"}
 * object per bad line.
 *
 * The writes go to a temporary file beside the target, renamed over it, so
 * a reader never sees half a file and a failed write leaves the old file
 * alone; "-" reads stdin and writes stdout.  A write first waits for the
 * journal to hold every answer so far (fr_journal_flush_run).  Relative paths are relative to
 * the working directory.
 */
#include "fr_data.h"
#include "fr_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_REPORTED 20            /* bad rows described on stderr, per read */

static void remember_origin(fr_run *run, json_t *list, const char *file, long *lines);

static atomic_ulong tmp_counter;   /* makes temporary names unique in the process */

/* A temporary file beside path: its name (malloc'd) and an open fd, or NULL. */
static char *tmp_beside(const char *path, int *fd)
{
    size_t cap = strlen(path) + 64;
    char *tmp = fr_malloc(cap);
    if (!tmp)
        return NULL;
    snprintf(tmp, cap, "%s.tmp.%ld.%lu", path, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
    *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    return tmp;
}

/* A temporary file beside path ("<path>.<what>.<pid>.<n>"), read and
 * written, removed as it is opened (a crash leaves nothing): its fd, or -1
 * with errno (ENOMEM: no memory for its name). */
static int unlinked_beside(const char *path, const char *what)
{
    size_t cap = strlen(path) + strlen(what) + 64;
    char *tmp = fr_malloc(cap);
    if (!tmp)
        return errno = ENOMEM, -1;
    snprintf(tmp, cap, "%s.%s.%ld.%lu", path, what, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        unlink(tmp);
    fr_free(tmp);
    return fd;
}

/* ---- reads --------------------------------------------------------------- */

/* The rejects file of one read, written as rows come. */
typedef struct rejects {
    char *path;                    /* where it goes */
    char *tmp;                     /* the temporary file being written */
    FILE *f;                       /* open on tmp */
    bool failed;                   /* a write failed (errno in err) */
    int err;                       /* that errno */
} rejects;

typedef struct reading {
    fr_ctx *cx;                    /* the reading context */
    const char *path;              /* the file read */
    const fr_read_opts *o;         /* its options */
    const char *where;             /* the read's place in the .flow */
    const fr_schema *sc;           /* the records' schema */
    fr_reader *r;                  /* the reader */
    json_t *out;                   /* the good records */
    long *lines;                   /* each good record's line (fr_malloc'd), for the skipped file */
    size_t cap;                    /* slots of lines */
    long bad;                      /* bad rows */
    bool count_only;               /* rows are checked and counted, not kept (streaming) */
    long good;                     /* then, the good rows */
    char *first;                   /* "file:line: problems" of the first bad row */
    rejects rj;                    /* on_bad: skip */
} reading;

static void clear_progress(fr_ctx *cx)
{
    if (cx->run && cx->run->progress)
        fputs("\r\033[K", stderr);
}

/* "<stem>.rejects.<ext>" in the working directory. */
static char *default_rejects(const char *path, bool csv)
{
    const char *base = strcmp(path, "-") == 0 ? "stdin" : path;
    const char *slash = strrchr(base, '/');
    if (slash)
        base = slash + 1;
    size_t n = strlen(base);
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        n = (size_t)(dot - base);
    size_t cap = n + 32;
    char *p = fr_malloc(cap);
    if (p)
        snprintf(p, cap, "%.*s.rejects.%s", (int)n, base, csv ? "csv" : "jsonl");
    return p;
}

static bool rejects_open(reading *rd)
{
    rejects *rj = &rd->rj;
    const char *given = rd->o->rejects ? json_string_value(rd->o->rejects) : NULL;
    rj->path = given ? fr_strdup(given) : default_rejects(rd->path, rd->o->csv);
    if (!rj->path)
        return false;
    int fd = -1;
    rj->tmp = tmp_beside(rj->path, &fd);
    if (!rj->tmp)
        return false;
    rj->f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!rj->f) {
        rj->failed = true;
        rj->err = errno;
        if (fd >= 0)
            close(fd);
    }
    return true;
}

/* A CSV cell, quoted when it has to be. */
static void csv_cell(FILE *f, const char *s, size_t n, char delim)
{
    bool q = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (size_t i = 0; i < n && !q; i++)
        q = s[i] == delim || s[i] == '"' || s[i] == '\n' || s[i] == '\r';
    if (!q) {
        fwrite(s, 1, n, f);
        return;
    }
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"')
            fputc('"', f);
        fputc(s[i], f);
    }
    fputc('"', f);
}

/* A JSON string of s[0..n), invalid UTF-8 bytes as U+FFFD. */
static void json_text(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
        if (c >= 0x80 && (i + k > n || !fr_utf8_valid(s + i, k))) {
            fputs("\\ufffd", f);
            i++;
            continue;
        }
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fwrite(s + i, 1, k, f);
        i += k;
    }
    fputc('"', f);
}

/* The CSV rejects file's header: the input's, and _line, _errors. */
static void rejects_header(reading *rd)
{
    rejects *rj = &rd->rj;
    if (!rj->f || !rd->o->csv)
        return;
    size_t n;
    const char *h = fr_reader_header(rd->r, &n);
    char d = rd->o->delimiter ? rd->o->delimiter : ',';
    fwrite(h, 1, n, rj->f);
    fprintf(rj->f, "%c_line%c_errors%s", d, d, fr_reader_newline(rd->r));
}

/* One bad row into the rejects file. */
static void rejects_row(reading *rd, const char *why)
{
    rejects *rj = &rd->rj;
    if (!rj->f)
        return;
    size_t n;
    const char *raw = fr_reader_raw(rd->r, &n);
    long line = fr_reader_line(rd->r);
    if (rd->o->csv) {
        char d = rd->o->delimiter ? rd->o->delimiter : ',';
        fwrite(raw, 1, n, rj->f);
        fprintf(rj->f, "%c%ld%c", d, line, d);
        csv_cell(rj->f, why, strlen(why), d);
        fputs(fr_reader_newline(rd->r), rj->f);
        return;
    }
    int np;
    const fr_problem *p = fr_reader_problems(rd->r, &np);
    fprintf(rj->f, "{\"line\":%ld,\"errors\":[", line);
    for (int i = 0; i < np; i++) {
        if (i)
            fputc(',', rj->f);
        json_text(rj->f, p[i].msg, strlen(p[i].msg));
    }
    fputs("],\"text\":", rj->f);
    json_text(rj->f, raw, n);
    fputs("}\n", rj->f);
}

/* Closes and renames the rejects file into place (or removes it). */
static bool rejects_close(reading *rd, bool keep)
{
    rejects *rj = &rd->rj;
    bool ok = rj->f && !rj->failed;
    if (rj->f) {
        ok = ok && fflush(rj->f) == 0 && fsync(fileno(rj->f)) == 0;
        if (!ok && !rj->failed)
            rj->err = errno;
        if (fclose(rj->f) != 0 && ok) {
            ok = false;
            rj->err = errno;
        }
        rj->f = NULL;
    }
    if (keep && ok && rename(rj->tmp, rj->path) != 0) {
        ok = false;
        rj->err = errno;
    }
    if (rj->tmp && (!keep || !ok))
        unlink(rj->tmp);
    return ok;
}

static void rejects_free(reading *rd)
{
    fr_free(rd->rj.path);
    fr_free(rd->rj.tmp);
}

static void report_row(reading *rd, const char *desc)
{
    bool skip = rd->o->skip_bad;
    clear_progress(rd->cx);
    fprintf(stderr, "%s: %s%s%s%s\n", skip ? "warning" : "error", rd->where ? rd->where : "",
            rd->where ? ": " : "", desc, skip ? " (row set aside)" : "");
}

/* A bad row: described on stderr (the first MAX_REPORTED), set aside.
 * When the read halts and this is its only bad row, the read's error says
 * it, so the first is held back until a second comes. */
static bool bad_row(reading *rd)
{
    fr_buf why = { 0 };
    fr_buf_printf(&why, "%s:%ld: ", rd->path, fr_reader_line(rd->r));
    size_t head = why.len;
    fr_reader_describe(rd->r, &why);
    if (fr_buf_failed(&why) || (rd->bad == 0 && !(rd->first = fr_strdup(why.s)))) {
        fr_buf_free(&why);
        return fr_oom(rd->cx) != NULL;
    }
    rd->bad++;
    bool skip = rd->o->skip_bad;
    if (rd->bad == 2 && !skip)
        report_row(rd, rd->first);
    if (rd->bad <= MAX_REPORTED && (skip || rd->bad > 1))
        report_row(rd, why.s);
    if (skip)
        rejects_row(rd, why.s + head);
    fr_buf_free(&why);
    return true;
}

/* The header does not fit, or the file cannot be read on: every problem. */
static void *fatal(reading *rd)
{
    int n;
    const fr_problem *p = fr_reader_problems(rd->r, &n);
    if (fr_reader_oom(rd->r))
        return fr_oom(rd->cx);
    if (n == 0)
        return fr_usage(rd->cx, rd->where, "%s", fr_reader_error(rd->r));
    clear_progress(rd->cx);
    for (int i = 0; i < n; i++) {
        if (p[i].col)
            fprintf(stderr, "error: %s%s%s:%ld:%ld: %s\n", rd->where ? rd->where : "",
                    rd->where ? ": " : "", rd->path, p[i].line, p[i].col, p[i].msg);
        else
            fprintf(stderr, "error: %s%s%s:%ld: %s\n", rd->where ? rd->where : "",
                    rd->where ? ": " : "", rd->path, p[i].line, p[i].msg);
    }
    return fr_usage(rd->cx, rd->where, "%s does not fit schema '%s': no row was read",
                    rd->path, rd->sc ? rd->sc->name : "?");
}

/* Notes a read that set rows aside, for the run summary. */
static void note_rejected(reading *rd)
{
    fr_run *run = rd->cx->run;
    if (!run)
        return;
    pthread_mutex_lock(&run->mu);
    fr_rejected *v = fr_realloc(run->rejected, sizeof *v * (size_t)(run->nrejected + 1));
    if (v) {
        run->rejected = v;
        v[run->nrejected] = (fr_rejected){ fr_strdup(rd->path), fr_strdup(rd->rj.path),
                                           rd->bad, fr_reader_rows(rd->r) };
        if (v[run->nrejected].path && v[run->nrejected].rejects)
            run->nrejected++;
        else
            fr_free(v[run->nrejected].path), fr_free(v[run->nrejected].rejects);
    }
    pthread_mutex_unlock(&run->mu);
}

/* Every row: the good ones into rd->out; false with cx->sig set. */
static bool read_rows(reading *rd)
{
    bool header_done = false;
    for (;;) {
        json_t *row;
        fr_row st = fr_reader_next(rd->r, &row);
        if (st == FR_ROW_FATAL) {
            fatal(rd);
            return false;
        }
        if (!header_done) {
            header_done = true;
            rejects_header(rd);
        }
        if (st == FR_ROW_END)
            return true;
        if (st == FR_ROW_BAD) {
            if (!bad_row(rd))
                return false;
            continue;
        }
        if (rd->count_only) {
            rd->good++;
            continue;
        }
        size_t k = json_array_size(rd->out);
        if (k == rd->cap) {
            size_t cap = rd->cap ? rd->cap * 2 : 64;
            long *l = fr_realloc(rd->lines, cap * sizeof *l);
            if (!l) {
                json_decref(row);
                return fr_oom(rd->cx) != NULL;
            }
            rd->lines = l, rd->cap = cap;
        }
        if (json_array_append_new(rd->out, row))
            return fr_oom(rd->cx) != NULL;
        rd->lines[k] = fr_reader_line(rd->r);
    }
}

/* After the last row: the verdict of the read. */
static bool read_end(reading *rd)
{
    long rows = fr_reader_rows(rd->r);
    if (rd->bad > MAX_REPORTED) {
        clear_progress(rd->cx);
        fprintf(stderr, "%s: %s%s%s: %ld more bad row%s not shown%s\n",
                rd->o->skip_bad ? "warning" : "error", rd->where ? rd->where : "",
                rd->where ? ": " : "", rd->path, rd->bad - MAX_REPORTED,
                rd->bad - MAX_REPORTED == 1 ? "" : "s",
                rd->o->skip_bad ? " (all are in the rejects file)" : "");
    }
    if (!rd->o->skip_bad) {
        if (rd->bad == 1)
            fr_usage(rd->cx, rd->where, "%s", rd->first);
        else if (rd->bad)
            fr_usage(rd->cx, rd->where, "%s:%ld: the first of %ld bad rows (of %ld), listed "
                     "above: none was used; read with on_bad: skip to set bad rows aside",
                     rd->path, strtol(rd->first + strlen(rd->path) + 1, NULL, 10), rd->bad,
                     rows);
        return rd->bad == 0;
    }
    if (!rejects_close(rd, true)) {
        fr_fail(rd->cx, rd->where, "cannot write '%s': %s", rd->rj.path, strerror(rd->rj.err));
        return false;
    }
    if (rd->bad) {
        clear_progress(rd->cx);
        fprintf(stderr, "warning: %s%s%s: %ld of %ld row%s set aside, with %s problems, in "
                "%s\n", rd->where ? rd->where : "", rd->where ? ": " : "", rd->path, rd->bad,
                rows, rows == 1 ? "" : "s", rd->bad == 1 ? "its" : "their", rd->rj.path);
        note_rejected(rd);
    }
    return true;
}

/* A read: the list, or (count_only) the number of good rows as a JSON
 * integer; NULL with cx's signal set. */
static json_t *read_file(fr_ctx *cx, json_t *path, const fr_type *elem, const fr_read_opts *o,
                         const char *where, bool count_only)
{
    fr_read_opts def = { 0 };
    reading rd = { .cx = cx, .path = json_string_value(path), .o = o ? o : &def,
                   .where = where, .sc = elem->kind == FR_RECORD ? elem->schema : NULL,
                   .count_only = count_only };
    const char *what = rd.o->csv ? "read_csv" : "read_jsonl";
    if (!rd.path)
        return fr_usage(cx, where, "%s: the path is not a string", what);
    fr_buf err = { 0 };
    rd.r = fr_reader_open(rd.path, rd.o->csv ? FR_FMT_CSV : FR_FMT_JSONL, elem,
                          rd.o->delimiter, &err);
    if (!rd.r) {
        if (fr_buf_failed(&err) || !err.s)
            fr_oom(cx);
        else
            fr_usage(cx, where, "%s", err.s);
        fr_buf_free(&err);
        return NULL;
    }
    if (count_only)
        fr_reader_check_only(rd.r);
    rd.out = json_array();
    bool ok = rd.out != NULL;
    if (!ok)
        fr_oom(cx);
    if (ok && rd.o->skip_bad && !rejects_open(&rd))
        ok = fr_oom(cx) != NULL;
    ok = ok && read_rows(&rd) && read_end(&rd);
    if (!ok && rd.o->skip_bad)
        rejects_close(&rd, false);
    rejects_free(&rd);
    fr_free(rd.first);
    fr_reader_close(rd.r);
    if (!ok) {
        json_decref(rd.out);
        fr_free(rd.lines);
        return NULL;
    }
    if (count_only) {
        json_decref(rd.out);
        fr_free(rd.lines);
        return fr_keep(cx, json_integer(rd.good));
    }
    for (size_t i = 0; cx->run && i < json_array_size(rd.out); i++)   /* its personal data */
        fr_redact_note(cx->run->redact, json_array_get(rd.out, i), elem);
    remember_origin(cx->run, rd.out, rd.path, rd.lines);
    return fr_keep(cx, rd.out);
}

json_t *fr_read(fr_ctx *cx, json_t *path, const fr_type *elem, const fr_read_opts *o,
                const char *where)
{
    return read_file(cx, path, elem, o, where, false);
}

json_t *fr_read_jsonl(fr_ctx *cx, json_t *path, const fr_type *elem, const char *where)
{
    return fr_read(cx, path, elem, NULL, where);
}

/* ---- where items came from (the skipped file names their lines) ---------- */

/* Keeps lines (taken) as the origin of list; without memory, nothing is kept. */
static void remember_origin(fr_run *run, json_t *list, const char *file, long *lines)
{
    fr_origin *o = run ? fr_calloc(1, sizeof *o) : NULL;
    char *f = o ? fr_strdup(file) : NULL;
    if (!f || !lines) {
        fr_free(o);
        fr_free(f);
        fr_free(lines);
        return;
    }
    o->list = json_incref(list);
    o->file = f;
    o->lines = lines;
    pthread_mutex_lock(&run->mu);
    o->next = run->origins;
    run->origins = o;
    pthread_mutex_unlock(&run->mu);
}

bool fr_origin_of(fr_run *run, json_t *list, size_t index, const char **file, long *line)
{
    pthread_mutex_lock(&run->mu);
    fr_origin *o = run->origins;
    while (o && o->list != list)
        o = o->next;
    bool found = o && index < json_array_size(list);
    if (found)
        *file = o->file, *line = o->lines[index];
    pthread_mutex_unlock(&run->mu);
    return found;
}

void fr_origins_free(fr_run *run)
{
    while (run->origins) {
        fr_origin *o = run->origins;
        run->origins = o->next;
        json_decref(o->list);
        fr_free(o->file);
        fr_free(o->lines);
        fr_free(o);
    }
}

/* ---- writes -------------------------------------------------------------- */

/* What one write puts in its file. */
typedef bool (*fill_fn)(FILE *f, json_t *list, const fr_type *elem, fr_buf *err);

/* write_jsonl: one JSON value per line, records' keys in schema order. */
static bool fill_jsonl(FILE *f, json_t *list, const fr_type *elem, fr_buf *err)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        char *s = fr_to_json(json_array_get(list, i), elem);
        if (!s) {
            fr_buf_puts(err, "out of memory");
            return false;
        }
        bool ok = fputs(s, f) != EOF && putc('\n', f) != EOF;
        fr_free(s);
        if (!ok)
            return false;
    }
    return true;
}

static bool fill_csv(FILE *f, json_t *list, const fr_type *elem, fr_buf *err)
{
    return fr_csv_write(f, list, elem, 0, err);
}

/* Fills the temporary file and closes it; false with errno or err set. */
static bool write_tmp(int fd, fill_fn fill, json_t *list, const fr_type *elem, fr_buf *err)
{
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return false;
    }
    bool ok = fill(f, list, elem, err) && fflush(f) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok)
        return false;
    errno = saved;
    return ok;
}

/* The write's verdict: err's message, else errno's. */
static bool write_failed(fr_ctx *cx, const char *where, const char *p, fr_buf *err, int saved)
{
    if (fr_buf_failed(err) || (err->s && strcmp(err->s, "out of memory") == 0))
        fr_oom(cx);
    else if (err->s)
        fr_fail(cx, where, "cannot write '%s': %s", p, err->s);
    else
        fr_fail(cx, where, "cannot write '%s': %s", p, strerror(saved));
    fr_buf_free(err);
    return false;
}

/* Lines in the file at path, -1 when it cannot be read. */
static long count_lines(const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char buf[65536];
    long n = 0;
    size_t k, last = 0;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < k; i++)
            n += buf[i] == '\n';
        last = k;
    }
    if (last && buf[last - 1] != '\n')
        n++;                       /* a last line without its newline */
    fclose(f);
    return n;
}

/* In a run that dropped items after transient errors (exit 5), a write that
 * would leave path with fewer lines than it has keeps the old file as
 * path.prev (unless one is there already: that is the older copy), saying
 * so: an outage must not silently empty a write-back file. */
static void keep_fuller(fr_ctx *cx, const char *p, const char *tmp, const char *what)
{
    fr_run *run = cx->run;
    if (!run)
        return;                    /* a context outside a run (the self-tests) */
    pthread_mutex_lock(&run->mu);
    int64_t transient = run->failed_transient;
    pthread_mutex_unlock(&run->mu);
    long before = transient > 0 ? count_lines(p) : -1;
    long now = before > 0 ? count_lines(tmp) : -1;
    if (before <= 0 || now < 0 || now >= before)
        return;
    char *prev = NULL;
    if (asprintf(&prev, "%s.prev", p) < 0)
        return;
    bool kept = access(prev, F_OK) != 0 && rename(p, prev) == 0;
    fprintf(stderr, "%swarning: %s: '%s' has %ld line%s now, %ld before: this run skipped items "
            "after transient errors; %s %s (`%s --resume` retries them and writes it again)\n",
            run->progress ? "\r\033[K" : "", what, p, now, now == 1 ? "" : "s", before,
            kept ? "the previous file is kept as" : "an older copy is kept as", prev,
            fr_self_name(run->prog));
    free(prev);
}

static bool write_path(fr_ctx *cx, json_t *list, const char *p, const fr_type *elem,
                       const char *where, const char *what, fill_fn fill);

/* Writes list to path through a temporary file, or to stdout for "-"; a
 * shard writes its part. */
static bool write_file(fr_ctx *cx, json_t *list, json_t *path, const fr_type *elem,
                       const char *where, const char *what, fill_fn fill)
{
    const char *p = json_string_value(path);
    if (!p)
        return fr_fail(cx, where, "%s: the path is not a string", what);
    if (!fr_shard_on())
        return write_path(cx, list, p, elem, where, what, fill);
    /* a shard writes its part; merge joins them (stdout's too) */
    bool csv = fill == fill_csv;
    char *part = NULL;
    if (strcmp(p, "-") == 0) {
        char base[512];
        snprintf(base, sizeof base, "%s.stdout.%s", cx->run->prog->name, csv ? "csv" : "jsonl");
        part = fr_shard_part_path(base);
    } else {
        part = fr_shard_part_path(p);
    }
    if (!part)
        return fr_oom(cx);
    bool ok = write_path(cx, list, part, elem, where, what, fill);
    if (ok)
        fr_shard_output(p, part, csv ? "csv" : "jsonl", list);
    fr_free(part);
    return ok;
}

/* Writes list to p through a temporary file, or to stdout for "-". */
static bool write_path(fr_ctx *cx, json_t *list, const char *p, const fr_type *elem,
                       const char *where, const char *what, fill_fn fill)
{
    fr_buf err = { 0 };
    /* the answers in it are durable first: a kill then never leaves a file
     * whose answers a resume would ask for again */
    fr_journal_flush_run(cx->run);
    if (strcmp(p, "-") == 0) {
        errno = 0;
        if (fill(stdout, list, elem, &err) && fflush(stdout) == 0)
            return true;
        return write_failed(cx, where, "stdout", &err, errno);
    }
    int fd = -1;
    char *tmp = tmp_beside(p, &fd);
    if (!tmp)
        return fr_oom(cx);
    bool ok = fd >= 0 && write_tmp(fd, fill, list, elem, &err);
    if (ok)
        keep_fuller(cx, p, tmp, what);
    ok = ok && rename(tmp, p) == 0;
    int saved = errno;
    if (!ok && fd >= 0)
        unlink(tmp);
    fr_free(tmp);
    if (!ok)
        return write_failed(cx, where, p, &err, saved);
    fr_buf_free(&err);
    return true;
}

bool fr_write_jsonl(fr_ctx *cx, json_t *list, json_t *path, const fr_type *elem,
                    const char *where)
{
    return write_file(cx, list, path, elem, where, "write_jsonl", fill_jsonl);
}

bool fr_write_csv(fr_ctx *cx, json_t *list, json_t *path, const fr_type *elem,
                  const char *where)
{
    return write_file(cx, list, path, elem, where, "write_csv", fill_csv);
}

/* ---- env ----------------------------------------------------------------- */

json_t *fr_env(fr_ctx *cx, json_t *name)
{
    const char *n = json_string_value(name);
    const char *v = n ? getenv(n) : NULL;
    if (!v)
        return fr_null();
    if (!fr_utf8_valid(v, strlen(v)))
        return fr_fail(cx, NULL, "environment variable '%s' is not valid UTF-8", n);
    return fr_str(cx, v);
}

/* ---- streaming: a file through a pipeline into a file --------------------- */

/* The state of one streamed pipeline: its second reading of the input and
 * its output, a temporary file beside the target. */
typedef struct streamer {
    fr_reader *r;                  /* the input, read again (the first read checked it) */
    fr_run *run;                   /* the run (its personal data is noted as rows come) */
    const fr_type *in_elem;        /* the rows' type */
    const char *in;                /* its path */
    char why[256];                 /* why the reader failed */
    const fr_type *elem;           /* the values' type */
    FILE *f;                       /* the temporary output */
    int err;                       /* errno of a failed write, 0 */
    bool oom;                      /* a value could not be made JSON */
    /* write_csv: the header is the schema's fields, written first, or for
     * a schema that keeps other keys every key of the values in the order
     * it first comes: then the values wait in a spool (an unlinked file
     * beside the output, as JSON lines) until the last one is known */
    bool csv;                      /* the output is CSV */
    const fr_schema *sc;           /* its records' schema */
    json_t *cols;                  /* its columns, in order */
    FILE *spool;                   /* a kept schema's values, or NULL */
    fr_buf line, text;             /* a CSV row, and a cell's text */
    size_t rows;                   /* values put */
    fr_buf bad;                    /* why a value cannot be written as CSV */
} streamer;

static json_t *stream_next(void *arg, long *line)
{
    streamer *s = arg;
    for (;;) {
        json_t *row = NULL;
        switch (fr_reader_next(s->r, &row)) {
        case FR_ROW_GOOD:
            *line = fr_reader_line(s->r);
            fr_redact_note(s->run->redact, row, s->in_elem);   /* as a whole read does */
            return row;
        case FR_ROW_BAD:
            continue;              /* reported and set aside by the first read */
        default:
            if (fr_reader_oom(s->r))
                return NULL;
            snprintf(s->why, sizeof s->why, "%s: the file changed while it was read (fewer "
                     "good rows than a moment before)", s->in);
            return NULL;
        }
    }
}

static const char *stream_why(void *arg)
{
    streamer *s = arg;
    return s->why[0] ? s->why : NULL;
}

/* text (NULL: out of memory) and a line break into f; false with s->err
 * or s->oom set. */
static bool put_line(streamer *s, FILE *f, const char *text)
{
    if (!text) {
        s->oom = true;
        return false;
    }
    bool ok = fputs(text, f) != EOF && putc('\n', f) != EOF;
    if (!ok && !s->err)
        s->err = errno ? errno : EIO;
    return ok;
}

/* A CSV row of v into s->f, or v into the spool; false with s->bad,
 * s->err or s->oom set. */
static bool stream_put_csv(streamer *s, json_t *v)
{
    s->rows++;
    if (s->spool) {
        if (!fr_csv_note_keys(s->cols, v)) {
            s->oom = true;
            return false;
        }
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
        bool ok = put_line(s, s->spool, text);
        free(text);
        return ok;
    }
    if (!fr_csv_row(&s->line, &s->text, v, s->cols, 0, s->rows, &s->bad))
        return false;
    if (fwrite(s->line.s, 1, s->line.len, s->f) == s->line.len)
        return true;
    if (!s->err)
        s->err = errno ? errno : EIO;
    return false;
}

/* A kept schema's spool into s->f, after the header its values made. */
static bool unspool(streamer *s)
{
    if (fflush(s->spool) != 0 || fseek(s->spool, 0, SEEK_SET) != 0) {
        s->err = errno ? errno : EIO;
        return false;
    }
    if (!fr_csv_add_fields(s->cols, s->sc) || !fr_csv_head(&s->line, s->cols, 0)) {
        s->oom = true;
        return false;
    }
    bool ok = fwrite(s->line.s, 1, s->line.len, s->f) == s->line.len;
    char *text = NULL;
    size_t cap = 0;
    ssize_t n;
    for (size_t row = 1; ok && (n = getline(&text, &cap, s->spool)) > 0; row++) {
        json_t *v = json_loadb(text, (size_t)n, JSON_DECODE_ANY, NULL);
        if (!v) {
            s->oom = true;         /* our own JSON: only memory can fail it */
            break;
        }
        ok = fr_csv_row(&s->line, &s->text, v, s->cols, 0, row, &s->bad);
        json_decref(v);
        if (!ok)
            break;
        ok = fwrite(s->line.s, 1, s->line.len, s->f) == s->line.len;
    }
    free(text);
    if (ok && ferror(s->spool))
        ok = false;
    if (!ok && !s->err && !s->oom && !s->bad.len)
        s->err = errno ? errno : EIO;
    return ok && !s->oom;
}

static bool stream_put(void *arg, json_t *v)
{
    streamer *s = arg;
    if (s->csv)
        return stream_put_csv(s, v);
    char *text = fr_to_json(v, s->elem);
    bool ok = put_line(s, s->f, text);
    fr_free(text);
    return ok;
}

/* A CSV output's start: its header when the schema's fields are all of
 * it, else a spool beside op (unlinked at once: a kill leaves nothing). */
static bool csv_begin(streamer *s, const char *op)
{
    s->cols = json_object();
    if (!s->cols) {
        s->oom = true;
        return false;
    }
    if (s->sc->extra != FR_EXTRA_KEEP) {
        if (!fr_csv_add_fields(s->cols, s->sc) || !fr_csv_head(&s->line, s->cols, 0)) {
            s->oom = true;
            return false;
        }
        if (fwrite(s->line.s, 1, s->line.len, s->f) == s->line.len)
            return true;
        s->err = errno ? errno : EIO;
        return false;
    }
    int fd = unlinked_beside(op, "spool");
    if (fd < 0 && errno == ENOMEM) {
        s->oom = true;
        return false;
    }
    s->spool = fd >= 0 ? fdopen(fd, "w+") : NULL;
    if (!s->spool) {
        s->err = errno ? errno : EIO;
        if (fd >= 0)
            close(fd);
    }
    return s->spool != NULL;
}

static void csv_end(streamer *s)
{
    if (s->spool)
        fclose(s->spool);
    s->spool = NULL;
    json_decref(s->cols);
    s->cols = NULL;
    fr_buf_free(&s->line);
    fr_buf_free(&s->text);
}

/* Whether a budget is in force: its stop writes the finished items to the
 * partial file, which needs them whole. */
static bool any_budget(fr_run *run)
{
    const fr_budget *b = &run->budget;
    if (b->usd >= 0 || b->tokens >= 0 || b->time_ms >= 0)
        return true;
    for (int i = 0; i < run->prog->nphases; i++) {
        b = &run->phase_budget[i];
        if (b->usd >= 0 || b->tokens >= 0 || b->time_ms >= 0)
            return true;
    }
    return false;
}

/* What a stream's temporary files of stdin and stdout are named after (a
 * file's are beside it): $TMPDIR/flowc, or /tmp/flowc (malloc'd; NULL: no
 * memory). */
static char *tmp_base(void)
{
    const char *d = getenv("TMPDIR");
    char *p = NULL;
    return asprintf(&p, "%s/flowc", d && *d ? d : "/tmp") < 0 ? NULL : p;
}

/* stdin, to be read twice (once to check, once to run) from *start: a pipe
 * or a terminal is first copied into an unlinked temporary file that takes
 * its place (fd 0), so the rows go to disk, not memory.  False with errno. */
static bool stdin_twice(off_t *start)
{
    if ((*start = lseek(STDIN_FILENO, 0, SEEK_CUR)) >= 0)
        return true;
    char *base = tmp_base();
    if (!base)
        return errno = ENOMEM, false;
    int fd = unlinked_beside(base, "stdin");
    free(base);
    if (fd < 0)
        return false;
    char buf[65536];
    ssize_t n;
    while ((n = read(STDIN_FILENO, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
        if (n > 0 && write(fd, buf, (size_t)n) != n) {
            int e = errno ? errno : EIO;
            close(fd);
            return errno = e, false;
        }
    if (n < 0 || dup2(fd, STDIN_FILENO) < 0) {
        int e = errno;
        close(fd);
        return errno = e, false;
    }
    close(fd);
    *start = 0;
    return true;
}

/* stdin from start again, for a read of "-". */
static void stdin_rewind(off_t start)
{
    clearerr(stdin);
    fseeko(stdin, start, SEEK_SET);
}

/* The file at fd (the stream's output) to stdout; false with errno. */
static bool copy_out(int fd)
{
    char buf[65536];
    ssize_t n;
    if (fflush(stdout) != 0 || lseek(fd, 0, SEEK_SET) < 0)
        return false;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t w = 0, k; n > 0 && w < n; w += k)
            if ((k = write(STDOUT_FILENO, buf + w, (size_t)(n - w))) < 0 && errno != EINTR)
                return false;
            else if (k < 0)
                k = 0;
    }
    return n == 0;
}

/* Read, run and write whole, as the statements say. */
static bool unstreamed(fr_ctx *cx, json_t *in, const fr_type *in_elem, const fr_read_opts *ro,
                       const char *read_where, const fr_par_opts *opts, int nstages,
                       const fr_stage *stages, void *env, json_t *out, const fr_type *out_elem,
                       bool out_csv, const char *write_where)
{
    json_t *xs = fr_read(cx, in, in_elem, ro, read_where);
    json_t *ys = xs ? fr_pipeline(cx, xs, opts, nstages, stages, env) : NULL;
    if (!ys)
        return false;
    return out_csv ? fr_write_csv(cx, ys, out, out_elem, write_where)
                   : fr_write_jsonl(cx, ys, out, out_elem, write_where);
}

bool fr_stream_file(fr_ctx *cx, json_t *in, const fr_type *in_elem, const fr_read_opts *ro,
                    const char *read_where, const fr_par_opts *opts, int nstages,
                    const fr_stage *stages, void *env, json_t *out, const fr_type *out_elem,
                    bool out_csv, const char *write_where)
{
    const char *ip = json_string_value(in), *op = json_string_value(out);
    const char *no = getenv("FLOWRT_NO_STREAM");
    if (!ip || !op || !cx->run || any_budget(cx->run) || fr_shard_on() ||
        (no && *no && strcmp(no, "0") != 0))
        return unstreamed(cx, in, in_elem, ro, read_where, opts, nstages, stages, env, out,
                          out_elem, out_csv, write_where);
    /* stdin is read twice too (a pipe: through a file); stdout is written
     * through a file in $TMPDIR, copied out once the run is done */
    bool from_stdin = strcmp(ip, "-") == 0, to_stdout = strcmp(op, "-") == 0;
    off_t in_start = 0;
    fr_buf err = { 0 };
    if (from_stdin && !stdin_twice(&in_start)) {
        fr_usage(cx, read_where, "cannot keep stdin to read it twice: %s", strerror(errno));
        return false;
    }
    /* the first read checks every row (and sets bad ones aside) before any
     * call, as a whole read does; the second feeds the pipeline */
    if (from_stdin)
        stdin_rewind(in_start);
    json_t *count = read_file(cx, in, in_elem, ro, read_where, true);
    if (!count)
        return false;
    if (from_stdin)
        stdin_rewind(in_start);
    streamer s = { .in = ip, .elem = out_elem, .run = cx->run, .in_elem = in_elem,
                   .csv = out_csv };
    if (out_csv && !(s.sc = fr_csv_schema(out_elem, &err)))
        return write_failed(cx, write_where, op, &err, 0);
    s.r = fr_reader_open(ip, ro && ro->csv ? FR_FMT_CSV : FR_FMT_JSONL, in_elem,
                         ro ? ro->delimiter : 0, &err);
    if (!s.r) {
        if (fr_buf_failed(&err) || !err.s)
            fr_oom(cx);
        else
            fr_usage(cx, read_where, "%s", err.s);
        fr_buf_free(&err);
        return false;
    }
    int fd = -1;
    char *base = to_stdout ? tmp_base() : NULL;     /* (its temporary files' place) */
    const char *beside = to_stdout ? base : op;
    char *tmp = beside ? tmp_beside(beside, &fd) : NULL;
    s.f = tmp && fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!s.f) {
        int saved = errno;
        if (fd >= 0)
            close(fd), unlink(tmp);
        fr_reader_close(s.r);
        fr_free(tmp);
        free(base);
        return tmp ? write_failed(cx, write_where, op, &err, saved) : fr_oom(cx) != NULL;
    }
    int rd = to_stdout ? open(tmp, O_RDONLY | O_CLOEXEC) : -1;   /* to copy it out */
    if (to_stdout)
        unlink(tmp);               /* a file nobody else sees, gone with the process */
    if (out_csv && !csv_begin(&s, beside)) {
        csv_end(&s);
        fr_reader_close(s.r);
        fclose(s.f);
        unlink(tmp);
        fr_free(tmp);
        free(base);
        if (rd >= 0)
            close(rd);
        return s.oom ? fr_oom(cx) != NULL : write_failed(cx, write_where, op, &err, s.err);
    }
    fr_stream st = { stream_next, stream_put, stream_why, &s,
                     (size_t)json_integer_value(count), ip };
    json_t *v = fr_pipeline_stream(cx, &st, opts, nstages, stages, env);
    fr_reader_close(s.r);
    bool ok = v && !s.err && !s.oom && !s.bad.len && (!s.spool || unspool(&s)) &&
              fflush(s.f) == 0 && fsync(fd) == 0;
    csv_end(&s);
    int saved = s.err ? s.err : errno;
    if (fclose(s.f) != 0 && ok)
        ok = false, saved = errno;
    if (ok && to_stdout) {
        fr_journal_flush_run(cx->run);     /* the answers in it are durable first */
        ok = rd >= 0 && copy_out(rd);
        saved = rd >= 0 ? errno : EIO;
    } else if (ok) {
        /* the answers in it are durable first, as for any write */
        fr_journal_flush_run(cx->run);
        keep_fuller(cx, op, tmp, "write_jsonl");
        ok = rename(tmp, op) == 0;
        saved = errno;
    }
    if (!ok && !to_stdout)
        unlink(tmp);
    if (rd >= 0)
        close(rd);
    fr_free(tmp);
    free(base);
    if (ok || (!v && !s.err && !s.oom && !s.bad.len)) {  /* done, or the pipeline said why */
        fr_buf_free(&s.bad);
        fr_buf_free(&err);
        return ok;
    }
    if (s.oom)
        fr_buf_puts(&err, "out of memory");
    else if (s.bad.len)
        fr_buf_put(&err, s.bad.s, s.bad.len);
    fr_buf_free(&s.bad);
    return write_failed(cx, write_where, op, &err, saved);
}
