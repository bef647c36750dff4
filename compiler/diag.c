/*
 * diag.c: diagnostics in the GCC format (or one JSON array for tools).
 *
 * Errors and warnings are buffered, each with the notes and help lines that
 * follow it, and printed by diag_flush() in source order (the checker finds
 * them declaration kind by declaration kind, readers want them top down):
 *
 *   file:line:col: error: message
 *      41 |     the source line
 *         |         ^~~~
 *   file:line:col: note: message
 *   help: message
 *
 * Line and column come from the source's line map, built on first use.
 * Colour (bold, red error, cyan note, green caret) only when asked.
 * diag_closest() is the "did you mean" helper (optimal string alignment
 * distance, suggested only when it is at most max(1, len/3)).
 */
#include "flowc.h"

#include <stdlib.h>
#include <string.h>

typedef enum Severity { SEV_ERROR, SEV_WARNING } Severity;

typedef struct Note {
    Span span;                                   /* where the note points */
    const char *msg;                             /* its text */
} Note;

typedef struct Diag {
    Severity sev;                                /* error or warning */
    Span span;                                   /* the mistake */
    const char *msg;                             /* the message */
    Vec notes;                                   /* Note*: located notes */
    Vec helps;                                   /* const char*: help lines */
} Diag;

static DiagFormat format;                        /* text or JSON */
static bool colour;                              /* ANSI colours in text output */
static Vec diags;                                /* Diag*: buffered, in report order */
static int nerrors;                              /* errors reported since the reset */
static int json_printed;                         /* JSON: objects written so far */

/* JSON: every flush of the run adds to one array, closed at exit. */
static void json_close(void)
{
    fputs(json_printed ? "\n]\n" : "[]\n", stderr);
}

void diag_init(DiagFormat fmt, bool use_colour)
{
    format = fmt;
    colour = use_colour;
    static bool registered;
    if (fmt == DIAG_JSON && !registered) {
        registered = true;
        atexit(json_close);
    }
}

/* Drops buffered diagnostics and the error count (their memory is the arena's). */
void diag_reset(void)
{
    memset(&diags, 0, sizeof diags);
    nerrors = 0;
}

static const char *vformat(const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, aq);
    va_end(aq);
    char *p = arena_alloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    return p;
}

static void report(Severity sev, Span sp, const char *fmt, va_list ap)
{
    Diag *d = arena_alloc(sizeof *d);
    d->sev = sev;
    d->span = sp;
    d->msg = vformat(fmt, ap);
    vec_push(&diags, d);
    if (sev == SEV_ERROR)
        nerrors++;
}

void diag_error(Span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(SEV_ERROR, sp, fmt, ap);
    va_end(ap);
}

void diag_warning(Span sp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(SEV_WARNING, sp, fmt, ap);
    va_end(ap);
}

void diag_note(Span sp, const char *fmt, ...)
{
    if (!diags.len)
        return;
    Note *n = arena_alloc(sizeof *n);
    va_list ap;
    va_start(ap, fmt);
    n->span = sp;
    n->msg = vformat(fmt, ap);
    va_end(ap);
    vec_push(&((Diag *)diags.items[diags.len - 1])->notes, n);
}

void diag_help(const char *fmt, ...)
{
    if (!diags.len)
        return;
    va_list ap;
    va_start(ap, fmt);
    const char *msg = vformat(fmt, ap);
    va_end(ap);
    vec_push(&((Diag *)diags.items[diags.len - 1])->helps, (void *)msg);
}

int diag_error_count(void)
{
    return nerrors;
}

/* ---- text output ---------------------------------------------------------- */

#define C_BOLD  "\033[1m"
#define C_RED   "\033[1;31m"
#define C_MAG   "\033[1;35m"
#define C_CYAN  "\033[1;36m"
#define C_GREEN "\033[1;32m"
#define C_RESET "\033[0m"

static const char *col(const char *code)
{
    return colour ? code : "";
}

/* "file:line:col: " or "flowc: " for a diagnostic without a location. */
static void print_where(FILE *out, Span sp)
{
    Source *s = src_get(sp.file);
    if (!s) {
        fprintf(out, "%sflowc:%s ", col(C_BOLD), col(C_RESET));
        return;
    }
    int line, c;
    src_linecol(sp, &line, &c);
    fprintf(out, "%s%s:%d:%d:%s ", col(C_BOLD), s->path, line, c, col(C_RESET));
}

/* The source line of sp's start and a ^~~~ under the span (clipped to the line). */
static void print_snippet(FILE *out, Span sp)
{
    Source *s = src_get(sp.file);
    if (!s)
        return;
    int line, c;
    src_linecol(sp, &line, &c);
    uint32_t start = s->line_starts[line - 1];
    uint32_t end = start;
    while (end < s->len && s->text[end] != '\n')
        end++;
    uint32_t lo = start + (uint32_t)c - 1;
    uint32_t hi = sp.hi > end ? end : sp.hi;
    fprintf(out, "%5d | ", line);
    for (uint32_t i = start; i < end; i++) {      /* control bytes would garble the terminal */
        unsigned char b = (unsigned char)s->text[i];
        fputc(b < 0x20 && b != '\t' ? ' ' : b, out);
    }
    fputc('\n', out);
    fputs("      | ", out);
    for (uint32_t i = start; i < lo; i++)
        fputc(s->text[i] == '\t' ? '\t' : ' ', out);
    fprintf(out, "%s^", col(C_GREEN));
    for (uint32_t i = lo + 1; i < hi; i++)
        fputc('~', out);
    fprintf(out, "%s\n", col(C_RESET));
}

static void print_text(FILE *out, Diag *d)
{
    print_where(out, d->span);
    if (d->sev == SEV_ERROR)
        fprintf(out, "%serror:%s ", col(C_RED), col(C_RESET));
    else
        fprintf(out, "%swarning:%s ", col(C_MAG), col(C_RESET));
    fprintf(out, "%s%s%s\n", col(C_BOLD), d->msg, col(C_RESET));
    print_snippet(out, d->span);
    for (int i = 0; i < d->notes.len; i++) {
        Note *n = d->notes.items[i];
        print_where(out, n->span);
        fprintf(out, "%snote:%s %s\n", col(C_CYAN), col(C_RESET), n->msg);
    }
    for (int i = 0; i < d->helps.len; i++)
        fprintf(out, "%shelp:%s %s\n", col(C_BOLD), col(C_RESET), (char *)d->helps.items[i]);
}

/* ---- JSON output ---------------------------------------------------------- */

void json_put_str(FILE *out, const char *s, size_t n)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s, *end = p + n; p < end; p++) {
        switch (*p) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\n': fputs("\\n", out); break;
        case '\t': fputs("\\t", out); break;
        case '\r': fputs("\\r", out); break;
        default:
            if (*p < 0x20)
                fprintf(out, "\\u%04x", *p);
            else
                fputc(*p, out);
        }
    }
    fputc('"', out);
}

static void json_str(FILE *out, const char *s)
{
    json_put_str(out, s, strlen(s));
}

/* "file", "line", "column" of sp's start (null file and zeros without one). */
static void json_where(FILE *out, Span sp)
{
    Source *s = src_get(sp.file);
    int line, c;
    src_linecol(sp, &line, &c);
    fputs("\"file\":", out);
    if (s)
        json_str(out, s->path);
    else
        fputs("null", out);
    fprintf(out, ",\"line\":%d,\"column\":%d", line, c);
}

/* end_line/end_column: the last byte of the span (inclusive), as GCC does. */
static void json_end(FILE *out, Span sp)
{
    Span last = sp;
    if (sp.hi > sp.lo)
        last.lo = sp.hi - 1;
    int line, c;
    src_linecol(last, &line, &c);
    fprintf(out, ",\"end_line\":%d,\"end_column\":%d", line, c);
}

static void print_json(FILE *out, Diag *d)
{
    fputc('{', out);
    json_where(out, d->span);
    json_end(out, d->span);
    fprintf(out, ",\"severity\":\"%s\",\"message\":", d->sev == SEV_ERROR ? "error" : "warning");
    json_str(out, d->msg);
    fputs(",\"notes\":[", out);
    for (int i = 0; i < d->notes.len; i++) {
        Note *n = d->notes.items[i];
        fputs(i ? ",{" : "{", out);
        json_where(out, n->span);
        fputs(",\"message\":", out);
        json_str(out, n->msg);
        fputc('}', out);
    }
    fputs("],\"help\":[", out);
    for (int i = 0; i < d->helps.len; i++) {
        if (i)
            fputc(',', out);
        json_str(out, d->helps.items[i]);
    }
    fputs("]}", out);
}

/* Source order: by file, then position.  Stable, so diagnostics at one spot
 * keep the order they were reported in; notes stay with their error. */
static void sort_by_position(void)
{
    for (int i = 1; i < diags.len; i++) {
        Diag *d = diags.items[i];
        int j = i;
        while (j > 0) {
            Diag *p = diags.items[j - 1];
            if (p->span.file < d->span.file ||
                (p->span.file == d->span.file && p->span.lo <= d->span.lo))
                break;
            diags.items[j] = p;
            j--;
        }
        diags.items[j] = d;
    }
}

void diag_flush(void)
{
    sort_by_position();
    if (format == DIAG_JSON) {
        for (int i = 0; i < diags.len; i++) {
            fputs(json_printed++ ? ",\n" : "[\n", stderr);
            print_json(stderr, diags.items[i]);
        }
    } else {
        for (int i = 0; i < diags.len; i++)
            print_text(stderr, diags.items[i]);
    }
    fflush(stderr);
    memset(&diags, 0, sizeof diags);
}

/* ---- did you mean --------------------------------------------------------- */

/* Optimal string alignment distance (Damerau-Levenshtein without
 * non-adjacent transpositions); gives up (returns limit + 1) past limit. */
static int osa_distance(const char *a, const char *b, int limit)
{
    int n = (int)strlen(a), m = (int)strlen(b);
    if (abs(n - m) > limit || n > 64 || m > 64)
        return limit + 1;
    int d[65][65];
    for (int i = 0; i <= n; i++)
        d[i][0] = i;
    for (int j = 0; j <= m; j++)
        d[0][j] = j;
    for (int i = 1; i <= n; i++) {
        for (int j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]
                && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[n][m];
}

const char *diag_closest(const char *name, const char *const *candidates, int n)
{
    int len = (int)strlen(name);
    int limit = len / 3 > 1 ? len / 3 : 1;
    const char *best = NULL;
    int best_d = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!candidates[i] || strcmp(candidates[i], name) == 0)
            continue;
        int d = osa_distance(name, candidates[i], limit);
        if (d < best_d) {
            best_d = d;
            best = candidates[i];
        }
    }
    return best;
}
