/*
 * fr_io.c: the builtins that touch the outside world: read_jsonl<T>(path),
 * write_jsonl(xs, path) and env(name).
 *
 * read_jsonl streams the file a line at a time, so a large file costs one
 * line of buffer besides the values; a line may not pass FR_LINE_MAX bytes
 * (a file with no newline, /dev/zero, would otherwise take all memory).  The list remembers each
 * item's line (fr_origin_of), for the skipped file.  Each non-blank line is
 * parsed, validated against T and normalized (keys in schema order, ints in
 * float places made reals).  The first bad line stops the read with a usage
 * error (exit 2) that names the file, the line and the field:
 *
 *   leads.jsonl:17: email: expected string, got number
 *   leads.jsonl:9: invalid JSON: '}' expected near end of file at column 26
 *
 * write_jsonl writes a temporary file beside the target and renames it over
 * the target, so a reader never sees half a file, and a failed write leaves
 * the old file alone.  Relative paths are relative to the working directory.
 */
#include "fr_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FR_LINE_MAX (16u << 20)    /* bytes of one JSON Lines line at most */

static void remember_origin(fr_run *run, json_t *list, const char *file, long *lines);

/* ---- read_jsonl ---------------------------------------------------------- */

typedef struct jsonl_in {
    const char *path;              /* the file's name as the workflow gave it */
    const fr_type *elem;           /* what each line must be */
    long lineno;                   /* the line being read, from 1 */
    json_t *out;                   /* the values so far */
    long *lines;                   /* each value's line number (fr_malloc'd) */
    size_t cap;                    /* slots of lines */
} jsonl_in;

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* One line: parse, validate, normalize, append; false with cx->sig set. */
static bool read_line(fr_ctx *cx, jsonl_in *in, const char *line, size_t n,
                      const char *where)
{
    json_error_t je;
    json_t *v = fr_json_loadb(line, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!v && json_error_code(&je) == json_error_out_of_memory)
        return fr_oom(cx);
    if (!v)
        return fr_usage(cx, where, "%s:%ld: invalid JSON: %s at column %d", in->path,
                        in->lineno, je.text, je.column);
    fr_buf err = { 0 };
    if (!fr_validate(v, in->elem, &err)) {
        json_decref(v);
        if (fr_buf_failed(&err) || !err.s)
            fr_oom(cx);
        else
            fr_usage(cx, where, "%s:%ld: %s", in->path, in->lineno, err.s);
        fr_buf_free(&err);
        return false;
    }
    fr_buf_free(&err);
    json_t *norm = fr_normalize(v, in->elem);
    json_decref(v);
    size_t k = json_array_size(in->out);
    if (k == in->cap) {
        size_t cap = in->cap ? in->cap * 2 : 64;
        long *l = fr_realloc(in->lines, cap * sizeof *l);
        if (!l) {
            json_decref(norm);
            return fr_oom(cx);
        }
        in->lines = l, in->cap = cap;
    }
    if (!norm || json_array_append_new(in->out, norm))
        return fr_oom(cx);
    in->lines[k] = in->lineno;
    return true;
}

/* One line of f, without its newline, in *line (grown as needed up to
 * FR_LINE_MAX bytes, NUL bytes and all): its length, -1 at the end of the
 * file, -2 for a line over the limit, -3 when out of memory.  getline would grow without bound on a file with no newline
 * (/dev/zero). */
static ssize_t next_line(FILE *f, char **line, size_t *cap)
{
    size_t n = 0;
    bool any = false;
    int c;
    while ((c = getc_unlocked(f)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (n >= FR_LINE_MAX)
            return -2;
        if (n + 1 >= *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *b = fr_realloc(*line, nc);
            if (!b)
                return -3;
            *line = b, *cap = nc;
        }
        (*line)[n++] = (char)c;
    }
    if (!any)
        return -1;
    if (*line)
        (*line)[n] = '\0';
    return (ssize_t)n;
}

/* Every line of f into in->out. */
static bool read_lines(fr_ctx *cx, jsonl_in *in, FILE *f, const char *where)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool ok = true;
    flockfile(f);
    while (ok && (n = next_line(f, &line, &cap)) != -1) {
        in->lineno++;
        if (n == -3) {
            ok = fr_oom(cx);
            break;
        }
        if (n == -2) {
            ok = fr_usage(cx, where, "%s:%ld: the line is longer than %u MiB, the limit of a "
                          "JSON Lines line (is it the right file?)", in->path, in->lineno,
                          FR_LINE_MAX >> 20);
            break;
        }
        const char *s = line ? line : "";
        if (in->lineno == 1 && n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0) {
            s += 3;                /* a UTF-8 byte order mark */
            n -= 3;
        }
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
            n--;
        if (!is_blank(s, (size_t)n))
            ok = read_line(cx, in, s, (size_t)n, where);
    }
    if (ok && ferror(f))
        ok = fr_usage(cx, where, "cannot read '%s': %s", in->path, strerror(errno));
    funlockfile(f);
    fr_free(line);
    return ok;
}

json_t *fr_read_jsonl(fr_ctx *cx, json_t *path, const fr_type *elem, const char *where)
{
    jsonl_in in = { .path = json_string_value(path), .elem = elem };
    if (!in.path)
        return fr_usage(cx, where, "read_jsonl: the path is not a string");
    FILE *f = fopen(in.path, "re");
    if (!f)
        return fr_usage(cx, where, "cannot open '%s': %s", in.path, strerror(errno));
    in.out = json_array();
    bool ok = in.out && read_lines(cx, &in, f, where);
    if (!in.out)
        fr_oom(cx);
    fclose(f);
    if (!ok) {
        json_decref(in.out);
        fr_free(in.lines);
        return NULL;
    }
    remember_origin(cx->run, in.out, in.path, in.lines);
    return fr_keep(cx, in.out);
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

/* ---- write_jsonl --------------------------------------------------------- */

static atomic_ulong tmp_counter;   /* makes temporary names unique in the process */

/* Writes each item of list as one line; false with errno set. */
static bool write_items(FILE *f, json_t *list, const fr_type *elem, bool *oom)
{
    for (size_t i = 0; i < json_array_size(list); i++) {
        char *s = fr_to_json(json_array_get(list, i), elem);
        if (!s) {
            *oom = true;
            return false;
        }
        bool ok = fputs(s, f) != EOF && putc('\n', f) != EOF;
        fr_free(s);
        if (!ok)
            return false;
    }
    return true;
}

/* Fills the temporary file and closes it; false with errno or *oom set. */
static bool write_tmp(int fd, json_t *list, const fr_type *elem, bool *oom)
{
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return false;
    }
    bool ok = write_items(f, list, elem, oom) && fflush(f) == 0 && fsync(fd) == 0;
    int saved = errno;
    if (fclose(f) != 0 && ok)
        return false;
    errno = saved;
    return ok;
}

bool fr_write_jsonl(fr_ctx *cx, json_t *list, json_t *path, const fr_type *elem,
                    const char *where)
{
    const char *p = json_string_value(path);
    if (!p)
        return fr_fail(cx, where, "write_jsonl: the path is not a string");
    size_t cap = strlen(p) + 64;
    char *tmp = fr_malloc(cap);
    if (!tmp)
        return fr_oom(cx);
    snprintf(tmp, cap, "%s.tmp.%ld.%lu", p, (long)getpid(),
             atomic_fetch_add(&tmp_counter, 1));
    bool oom = false;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    bool ok = fd >= 0 && write_tmp(fd, list, elem, &oom) && rename(tmp, p) == 0;
    if (!ok) {
        int saved = errno;
        if (fd >= 0)
            unlink(tmp);
        if (oom)
            fr_oom(cx);
        else
            fr_fail(cx, where, "cannot write '%s': %s", p, strerror(saved));
    }
    fr_free(tmp);
    return ok;
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
