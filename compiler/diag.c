/*
 * diag.c: diagnostics in the GCC format (or one JSON array for tools).
 *
 * Errors and warnings are buffered, each with the notes, help lines and
 * fix-its that follow it, and printed by diag_flush() in source order (the
 * checker finds them declaration kind by declaration kind, readers want them
 * top down):
 *
 *   file:line:col: error: message [E0409]
 *      41 |     the source line
 *         |         ^~~~
 *   file:line:col: note: message
 *   file:line:col: help: message
 *
 * Every diagnostic carries a stable code (flowc.h lists them); a warning
 * also has a -W name, by which -Wno-NAME turns it off and -Werror=NAME makes
 * it an error.  Help lines print at their diagnostic's location so that
 * tools reading `file:line:col:` lines (problem matchers) keep them.
 * Line and column come from the source's line map, built on first use.
 * Colour (bold, red error, magenta warning, cyan note, green caret) only
 * when asked.  diag_closest() is the "did you mean" helper (optimal string
 * alignment distance, suggested only when it is at most max(1, len/3)).
 */
#include "flowc.h"

#include <stdlib.h>
#include <string.h>

typedef DiagInfo Diag;

static DiagFormat format;                        /* text or JSON */
static bool colour;                              /* ANSI colours in text output */
static Vec diags;                                /* Diag*: buffered, in report order */
static int nerrors;                              /* errors reported since the reset */
static int nwarnings;                            /* warnings reported since the reset */
static int json_printed;                         /* JSON: objects written so far */
static bool dropped;                             /* the last warning was disabled */
static bool keeping;                             /* diag_keep(): flushes keep them for diag_take */

/* JSON: every flush of the run adds to one array, closed at exit. */
static void json_close_hook(void)
{
    fputs(json_printed ? "\n]\n" : "[]\n", stderr);
}

/* ---- codes and -W options --------------------------------------------------- */

static const char *const code_str[DIAG_NCODES] = {
    [DIAG_NOCODE] = "",
#define X(code, title) [code] = #code,
    DIAG_ERRORS(X)
#undef X
#define X(code, name, title) [code] = #code,
    DIAG_WARNINGS(X)
#undef X
};

static const char *const code_title[DIAG_NCODES] = {
    [DIAG_NOCODE] = "",
#define X(code, title) [code] = title,
    DIAG_ERRORS(X)
#undef X
#define X(code, name, title) [code] = title,
    DIAG_WARNINGS(X)
#undef X
};

static const char *const warn_name[DIAG_NCODES] = {
#define X(code, name, title) [code] = name,
    DIAG_WARNINGS(X)
#undef X
};

static bool warn_off[DIAG_NCODES];               /* -Wno-NAME */
static bool warn_error[DIAG_NCODES];             /* -Werror=NAME (or -Werror) */

const char *diag_code_str(DiagCode code)
{
    return (unsigned)code < DIAG_NCODES ? code_str[code] : "";
}

const char *diag_code_title(DiagCode code)
{
    return (unsigned)code < DIAG_NCODES ? code_title[code] : "";
}

const char *diag_warning_name(DiagCode code)
{
    return (unsigned)code < DIAG_NCODES ? warn_name[code] : NULL;
}

bool diag_warning_enabled(DiagCode code)
{
    return (unsigned)code < DIAG_NCODES && warn_name[code] && !warn_off[code];
}

/* Sets on/off (or error) for every warning whose name is name, or starts
 * with "unused-" for the group "unused", or all for "all"/"extra". */
static bool set_warnings(const char *name, bool *table, bool value)
{
    bool any = false;
    bool all = strcmp(name, "all") == 0 || strcmp(name, "extra") == 0;
    bool unused = strcmp(name, "unused") == 0;
    for (int c = 0; c < DIAG_NCODES; c++) {
        if (!warn_name[c])
            continue;
        if (all || strcmp(warn_name[c], name) == 0
            || (unused && strncmp(warn_name[c], "unused-", 7) == 0)) {
            table[c] = value;
            any = true;
        }
    }
    return any;
}

bool diag_option(const char *opt)
{
    if (strncmp(opt, "-W", 2) != 0)
        return false;
    const char *w = opt + 2;
    if (strcmp(w, "error") == 0)
        return set_warnings("all", warn_error, true);
    if (strcmp(w, "none") == 0)
        return set_warnings("all", warn_off, true);
    if (strncmp(w, "error=", 6) == 0)
        return set_warnings(w + 6, warn_error, true) && set_warnings(w + 6, warn_off, false);
    if (strncmp(w, "no-error=", 9) == 0)
        return set_warnings(w + 9, warn_error, false);
    if (strncmp(w, "no-", 3) == 0)
        return set_warnings(w + 3, warn_off, true);
    return set_warnings(w, warn_off, false);
}

const char *diag_closest_option(const char *name)
{
    const char *cands[DIAG_NCODES + 4];
    int n = 0;
    for (int c = 0; c < DIAG_NCODES; c++)
        if (warn_name[c])
            cands[n++] = warn_name[c];
    cands[n++] = "unused";
    cands[n++] = "all";
    cands[n++] = "error";
    return diag_closest(name, cands, n);
}

/* ---- reporting -------------------------------------------------------------- */

void diag_init(DiagFormat fmt, bool use_colour)
{
    format = fmt;
    colour = use_colour;
    static bool registered;
    if (fmt == DIAG_JSON && !registered) {
        registered = true;
        atexit(json_close_hook);
    }
}

/* Drops buffered diagnostics and the counts (their memory is the arena's). */
void diag_reset(void)
{
    memset(&diags, 0, sizeof diags);
    nerrors = 0;
    nwarnings = 0;
    dropped = false;
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

static void report(bool error, DiagCode code, Span sp, const char *fmt, va_list ap)
{
    Diag *d = arena_alloc(sizeof *d);
    d->error = error;
    d->code = code;
    d->span = sp;
    d->msg = vformat(fmt, ap);
    vec_push(&diags, d);
    dropped = false;
    if (error)
        nerrors++;
    else
        nwarnings++;
}

void diag_error(Span sp, DiagCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report(true, code, sp, fmt, ap);
    va_end(ap);
}

void diag_warning(Span sp, DiagCode code, const char *fmt, ...)
{
    if (!diag_warning_enabled(code)) {
        dropped = true;                          /* its notes and help go too */
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    report(warn_error[code], code, sp, fmt, ap);
    va_end(ap);
}

static Diag *last_diag(void)
{
    return diags.len && !dropped ? diags.items[diags.len - 1] : NULL;
}

static void add_note(Span sp, bool help, const char *msg)
{
    Diag *d = last_diag();
    if (!d)
        return;
    DiagNote *n = arena_alloc(sizeof *n);
    n->span = sp;
    n->msg = msg;
    n->help = help;
    vec_push(&d->notes, n);
}

void diag_note(Span sp, const char *fmt, ...)
{
    if (!last_diag())
        return;
    va_list ap;
    va_start(ap, fmt);
    const char *msg = vformat(fmt, ap);
    va_end(ap);
    add_note(sp, false, msg);
}

void diag_help(const char *fmt, ...)
{
    Diag *d = last_diag();
    if (!d)
        return;
    va_list ap;
    va_start(ap, fmt);
    const char *msg = vformat(fmt, ap);
    va_end(ap);
    add_note(d->span, true, msg);
}

void diag_fixit(Span sp, const char *text)
{
    Diag *d = last_diag();
    if (!d || sp.file < 0)
        return;
    DiagFix *f = arena_alloc(sizeof *f);
    f->span = sp;
    f->text = arena_strdup(text);
    vec_push(&d->fixes, f);
}

void diag_fixit_here(const char *text)
{
    Diag *d = last_diag();
    if (d)
        diag_fixit(d->span, text);
}

int diag_error_count(void)
{
    return nerrors;
}

int diag_warning_count(void)
{
    return nwarnings;
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

/* Lines longer than this are shown as a window around the span, so that
 * many errors on one huge line cost time and output in proportion to their
 * number, not to their number times the line. */
#define SNIPPET_MAX 200
#define SNIPPET_BEFORE 60                        /* bytes shown before the span */

/* Moves i back to the start of a UTF-8 character. */
static uint32_t char_start(const Source *s, uint32_t i, uint32_t lo)
{
    while (i > lo && ((unsigned char)s->text[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* The source line of sp's start and a ^~~~ under the span (clipped to the
 * line; a long line is cut to a window marked with "..."). */
static void print_snippet(FILE *out, Span sp)
{
    Source *s = src_get(sp.file);
    if (!s)
        return;
    int line, c;
    src_linecol(sp, &line, &c);
    uint32_t start = s->line_starts[line - 1];
    uint32_t lo = start + (uint32_t)c - 1;
    const char *nl = memchr(s->text + lo, '\n', s->len - lo);
    uint32_t end = nl ? (uint32_t)(nl - s->text) : (uint32_t)s->len;
    const char *pre = "", *post = "";
    if (end - start > SNIPPET_MAX) {
        uint32_t from = lo - start > SNIPPET_BEFORE ? char_start(s, lo - SNIPPET_BEFORE, start) : start;
        uint32_t to = end - from > SNIPPET_MAX - 6 ? char_start(s, from + SNIPPET_MAX - 6, from) : end;
        if (to <= lo)
            to = end - lo > SNIPPET_MAX ? char_start(s, lo + SNIPPET_MAX - 6, lo) : end;
        pre = from > start ? "..." : "";
        post = to < end ? "..." : "";
        start = from;
        end = to;
    }
    uint32_t hi = sp.hi > end ? end : sp.hi;
    fprintf(out, "%5d | %s", line, pre);
    for (uint32_t i = start; i < end; i++) {      /* control bytes would garble the terminal */
        unsigned char b = (unsigned char)s->text[i];
        fputc(b < 0x20 && b != '\t' ? ' ' : b, out);
    }
    fprintf(out, "%s\n      | %s", post, *pre ? "   " : "");
    for (uint32_t i = start; i < lo; i++)
        fputc(s->text[i] == '\t' ? '\t' : ' ', out);
    fprintf(out, "%s^", col(C_GREEN));
    for (uint32_t i = lo + 1; i < hi; i++)
        fputc('~', out);
    fprintf(out, "%s\n", col(C_RESET));
}

/* " [E0401]", " [-Wunused-let]" or " [-Werror=unused-let]" after the message. */
static void print_code(FILE *out, Diag *d)
{
    const char *w = diag_warning_name(d->code);
    if (w)
        fprintf(out, " [-W%s%s]", d->error ? "error=" : "", w);
    else if (d->code != DIAG_NOCODE)
        fprintf(out, " [%s]", diag_code_str(d->code));
}

static void print_text(FILE *out, Diag *d)
{
    print_where(out, d->span);
    if (d->error)
        fprintf(out, "%serror:%s ", col(C_RED), col(C_RESET));
    else
        fprintf(out, "%swarning:%s ", col(C_MAG), col(C_RESET));
    fprintf(out, "%s%s%s", col(C_BOLD), d->msg, col(C_RESET));
    print_code(out, d);
    fputc('\n', out);
    print_snippet(out, d->span);
    for (int i = 0; i < d->notes.len; i++) {     /* the notes, then the help lines */
        DiagNote *n = d->notes.items[i];
        if (n->help)
            continue;
        print_where(out, n->span);
        fprintf(out, "%snote:%s %s\n", col(C_CYAN), col(C_RESET), n->msg);
    }
    for (int i = 0; i < d->notes.len; i++) {
        DiagNote *n = d->notes.items[i];
        if (!n->help)
            continue;
        print_where(out, n->span);
        fprintf(out, "%shelp:%s %s\n", col(C_BOLD), col(C_RESET), n->msg);
    }
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

/* A fix-it: the replaced range as GCC gives it (start, and "next": just past
 * its end) and the replacement. */
static void json_fix(FILE *out, DiagFix *f)
{
    Span next = f->span;
    next.lo = f->span.hi;
    int line, c;
    fputc('{', out);
    json_where(out, f->span);
    src_linecol(next, &line, &c);
    fprintf(out, ",\"next_line\":%d,\"next_column\":%d,\"replacement\":", line, c);
    json_str(out, f->text);
    fputc('}', out);
}

static void print_json(FILE *out, Diag *d)
{
    fputc('{', out);
    json_where(out, d->span);
    json_end(out, d->span);
    fprintf(out, ",\"severity\":\"%s\",\"code\":\"%s\"", d->error ? "error" : "warning",
            diag_code_str(d->code));
    const char *w = diag_warning_name(d->code);
    if (w)
        fprintf(out, ",\"option\":\"-W%s%s\"", d->error ? "error=" : "", w);
    fputs(",\"message\":", out);
    json_str(out, d->msg);
    fputs(",\"notes\":[", out);
    int k = 0;
    for (int i = 0; i < d->notes.len; i++) {
        DiagNote *n = d->notes.items[i];
        if (n->help)
            continue;
        fputs(k++ ? ",{" : "{", out);
        json_where(out, n->span);
        fputs(",\"message\":", out);
        json_str(out, n->msg);
        fputc('}', out);
    }
    fputs("],\"help\":[", out);
    k = 0;
    for (int i = 0; i < d->notes.len; i++) {
        DiagNote *n = d->notes.items[i];
        if (!n->help)
            continue;
        if (k++)
            fputc(',', out);
        json_str(out, n->msg);
    }
    fputs("],\"fixits\":[", out);
    for (int i = 0; i < d->fixes.len; i++) {
        if (i)
            fputc(',', out);
        json_fix(out, d->fixes.items[i]);
    }
    fputs("]}", out);
}

static bool diag_before(const Diag *a, const Diag *b)
{
    return a->span.file < b->span.file || (a->span.file == b->span.file && a->span.lo < b->span.lo);
}

/* Source order: by file, then position.  A merge sort (the checker reports
 * declaration kind by declaration kind, so the order can be far from
 * sorted), stable, so diagnostics at one spot keep the order they were
 * reported in; notes stay with their error. */
static void sort_by_position(void)
{
    int n = diags.len;
    if (n < 2)
        return;
    void **a = diags.items, **b = arena_alloc(sizeof *b * (size_t)n);
    for (int w = 1; w < n; w *= 2) {
        for (int lo = 0; lo < n; lo += 2 * w) {
            int mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            int i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                b[k++] = diag_before(a[j], a[i]) ? a[j++] : a[i++];
            while (i < mid)
                b[k++] = a[i++];
            while (j < hi)
                b[k++] = a[j++];
        }
        void **t = a;
        a = b;
        b = t;
    }
    diags.items = a;
}

void diag_keep(bool keep)
{
    keeping = keep;
}

void diag_flush(void)
{
    if (keeping)
        return;                                  /* the language server takes them */
    char *text = NULL;                           /* stderr is unbuffered: write it at once */
    size_t len = 0;
    FILE *out = arena_memstream(&text, &len);
    sort_by_position();
    if (format == DIAG_JSON) {
        for (int i = 0; i < diags.len; i++) {
            fputs(json_printed++ ? ",\n" : "[\n", out);
            print_json(out, diags.items[i]);
        }
    } else {
        for (int i = 0; i < diags.len; i++)
            print_text(out, diags.items[i]);
    }
    fclose(out);
    fwrite(text, 1, len, stderr);
    fflush(stderr);
    free(text);
    memset(&diags, 0, sizeof diags);
}

void diag_data(const char *file, long line, long column, DiagCode code, const char *msg)
{
    nerrors++;
    if (format == DIAG_JSON) {
        fputs(json_printed++ ? ",\n" : "[\n", stderr);
        fputs("{\"file\":", stderr);
        json_str(stderr, file);
        fprintf(stderr, ",\"line\":%ld,\"column\":%ld,\"end_line\":%ld,\"end_column\":%ld,"
                "\"severity\":\"error\",\"code\":\"%s\",\"message\":", line, column, line, column,
                diag_code_str(code));
        json_str(stderr, msg);
        fputs(",\"notes\":[],\"help\":[],\"fixits\":[]}", stderr);
        return;
    }
    fprintf(stderr, "%s%s", col(C_BOLD), file);
    if (line > 0)
        fprintf(stderr, ":%ld", line);
    if (line > 0 && column > 0)
        fprintf(stderr, ":%ld", column);
    fprintf(stderr, ":%s %serror:%s %s%s%s [%s]\n", col(C_RESET), col(C_RED), col(C_RESET),
            col(C_BOLD), msg, col(C_RESET), diag_code_str(code));
}

void diag_data_summary(const char *msg)
{
    if (format == DIAG_TEXT)
        fprintf(stderr, "%sflowc:%s %s\n", col(C_BOLD), col(C_RESET), msg);
}

Vec diag_take(void)
{
    sort_by_position();
    Vec v = diags;
    memset(&diags, 0, sizeof diags);
    return v;
}

/* ---- did you mean --------------------------------------------------------- */

/* Optimal string alignment distance (Damerau-Levenshtein without
 * non-adjacent transpositions); gives up (returns limit + 1) past limit, as
 * soon as a whole row is past it. */
static int osa_distance(const char *a, const char *b, int limit)
{
    int n = (int)strlen(a), m = (int)strlen(b);
    if (abs(n - m) > limit || n > 64 || m > 64)
        return limit + 1;
    /* each edit changes the count of at most two letters by one (a
     * transposition none): a cheap bound that spares most of the table */
    static int count[256];                       /* all 0 between calls: reset below */
    int diff = 0;
    for (int i = 0; i < n; i++)
        count[(unsigned char)a[i]]++;
    for (int j = 0; j < m; j++)
        count[(unsigned char)b[j]]--;
    for (int i = 0; i < n; i++)
        diff += abs(count[(unsigned char)a[i]]), count[(unsigned char)a[i]] = 0;
    for (int j = 0; j < m; j++)
        diff += abs(count[(unsigned char)b[j]]), count[(unsigned char)b[j]] = 0;
    if ((diff + 1) / 2 > limit)
        return limit + 1;
    int d[65][65];
    for (int i = 0; i <= n; i++)
        d[i][0] = i;
    for (int j = 0; j <= m; j++)
        d[0][j] = j;
    for (int i = 1; i <= n; i++) {
        int row_min = i;
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
            if (v < row_min)
                row_min = v;
        }
        if (row_min > limit)                     /* every later row is past it too */
            return limit + 1;
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
