/*
 * src.c: source files and their line maps.
 *
 * Every file the compiler reads is kept whole in memory, in a table indexed
 * by the small integer that Spans carry.  A file's line map (the byte offset
 * of each line's start) is built only the first time a diagnostic needs a
 * line and column in it, so a clean `flowc check` never pays for it.
 */
#include "flowc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const Span no_span = { -1, 0, 0 };

static Source **table;                           /* the sources, by index */
static int count;                                /* entries used in table */
static int cap;                                  /* entries allocated in table */

int src_add(const char *path, const char *text, size_t len)
{
    if (count == cap) {
        int ncap = cap ? cap * 2 : 8;
        Source **t = realloc(table, sizeof *t * (size_t)ncap);
        if (!t) {
            fputs("flowc: out of memory\n", stderr);
            abort();
        }
        table = t;
        cap = ncap;
    }
    Source *s = arena_alloc(sizeof *s);
    s->path = arena_strdup(path);
    char *copy = arena_alloc(len + 1);
    memcpy(copy, text, len);
    s->text = copy;
    s->len = len;
    table[count] = s;
    return count++;
}

/* Reads a whole stream into the source table as path; -1 with errno set on failure. */
int src_read_stream(FILE *f, const char *path)
{
    size_t n = 0, size = 1 << 16;
    char *buf = malloc(size);
    while (buf) {
        n += fread(buf + n, 1, size - n, f);
        if (n < size)
            break;
        char *nb = realloc(buf, size * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        size *= 2;
    }
    int err = ferror(f) ? errno : 0;
    if (!buf || err) {
        free(buf);
        errno = err ? err : ENOMEM;
        return -1;
    }
    int id = src_add(path, buf, n);
    free(buf);
    return id;
}

/* Reads the whole file into the arena; -1 with errno set on failure. */
int src_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int id = src_read_stream(f, path);
    int err = errno;
    fclose(f);
    errno = err;
    return id;
}

Source *src_get(int file)
{
    if (file < 0 || file >= count)
        return NULL;
    return table[file];
}

int src_count(void)
{
    return count;
}

/* Forgets every source (their memory is the arena's). */
void src_reset(void)
{
    count = 0;
}

static void build_line_map(Source *s)
{
    int n = 1;
    for (size_t i = 0; i < s->len; i++)
        n += s->text[i] == '\n';
    s->line_starts = arena_alloc(sizeof(uint32_t) * (size_t)n);
    s->nlines = 0;
    s->line_starts[s->nlines++] = 0;
    for (size_t i = 0; i < s->len; i++)
        if (s->text[i] == '\n')
            s->line_starts[s->nlines++] = (uint32_t)(i + 1);
}

void src_linecol(Span sp, int *line, int *col)
{
    Source *s = src_get(sp.file);
    *line = *col = 0;
    if (!s)
        return;
    if (!s->line_starts)
        build_line_map(s);
    uint32_t pos = sp.lo > s->len ? (uint32_t)s->len : sp.lo;
    int lo = 0, hi = s->nlines - 1;
    while (lo < hi) {                            /* last line start <= pos */
        int mid = (lo + hi + 1) / 2;
        if (s->line_starts[mid] <= pos)
            lo = mid;
        else
            hi = mid - 1;
    }
    *line = lo + 1;
    *col = (int)(pos - s->line_starts[lo]) + 1;
}

Span span_join(Span a, Span b)
{
    if (a.file < 0)
        return b;
    if (b.file < 0 || b.file != a.file)
        return a;
    Span r = { a.file, a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi };
    return r;
}
