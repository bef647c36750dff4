/*
 * fmt.c: `flowc fmt`, the one canonical layout of a .flow file.
 *
 * The formatter prints the parsed syntax tree again, so every construct has
 * exactly one layout, and weaves the comments back in by position: the
 * lexer records every `//` and `///` comment's span (Program.comments), and
 * before each node, each item of a list and each closing bracket the
 * printer emits the comments that come before it in the source.  A comment
 * on the same source line as the code before it stays at the end of that
 * line; any other gets a line of its own.  Literals (numbers, durations,
 * strings) are copied from the source as written; a triple-quoted string is
 * re-indented under its line (its common indentation is stripped when it is
 * read, so its text is unchanged).
 *
 * The layout, like gofmt's, has no options:
 *   - two spaces per level; a line that continues a statement, four more;
 *   - a bracketed list (fields, settings, enum values, parameters,
 *     arguments, list and record elements, match arms, a block's statements)
 *     stays on one line when its brackets were on one line in the source and
 *     it has at most one statement, stage or arm; otherwise one item per
 *     line (with a trailing comma inside ( ) and [ ]);
 *   - one-line lists separate items with ", "; blocks go `{ x }`, `{}`;
 *   - a statement that the source broke before `and`, `or`, `??`, `where`,
 *     `using`, `.name` or `else`-less continuations, or after a binary
 *     operator, is broken there again: the word operators start the next
 *     line, the symbols end the line before (a line that starts with `-`
 *     would be a new statement);
 *   - at most one blank line where the source had any, none right inside a
 *     bracket; one blank line between declarations that span lines.
 * Parentheses are kept where they were written (Node.paren).
 *
 * The output parses to the same tree (`--dump-ast` without spans), and
 * formatting it again changes nothing; tests/sh/fmt_roundtrip.sh checks both
 * on every .flow in the repository, and the front-end fuzzer on every
 * mutant that parses.  A node kind the printer has no layout for is an
 * internal error (fmt_source returns NULL and says which kind), so a new
 * construct cannot be dropped silently: add its case to pr_node().
 */
#include "flowc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONT 4                                   /* extra indentation of a continued line */

static struct {
    const char *text;                            /* the source */
    uint32_t len;                                /* its length */
    Vec *comments;                               /* Span*: the file's comments */
    int ci;                                      /* the next comment to print */
    FILE *out;                                   /* where the text goes */
    bool at_start;                               /* nothing written on this line yet */
    bool blank_before;                           /* the line before is blank (or the file starts) */
    int line_ind;                                /* indentation of the current line */
    int item_ind;                                /* indentation of the current item's first line */
    uint32_t pos;                                /* source printed up to here */
    bool need_nl;                                /* a trailing comment: break before more code */
    bool in_first;                               /* right after an opening bracket */
    Vec trailing;                                /* output offsets of the end-of-line comments */
    const char *failed;                          /* the construct with no layout, or NULL */
} P;

static void pr_node(Node *n);
static void pr_block(Node *b);

/* ---- output ------------------------------------------------------------------ */

static void nl(int ind)
{
    fputc('\n', P.out);
    P.blank_before = P.at_start;
    P.at_start = true;
    P.line_ind = ind;
    P.need_nl = false;
}

/* A line break unless the line is still empty. */
static void line_brk(int ind)
{
    if (!P.at_start)
        nl(ind);
    else
        P.line_ind = ind;
}

static void put(const char *s)
{
    if (P.need_nl)
        nl(P.item_ind + CONT);
    if (P.at_start) {
        for (int i = 0; i < P.line_ind; i++)
            fputc(' ', P.out);
        P.at_start = false;
        P.in_first = false;
    }
    fputs(s, P.out);
}

static void putn(const char *s, size_t n)
{
    put("");
    fwrite(s, 1, n, P.out);
}

static void put_src(Span sp)
{
    putn(P.text + sp.lo, sp.hi - sp.lo);
    if (sp.hi > P.pos)
        P.pos = sp.hi;
}

static void fail(const char *what)
{
    if (!P.failed)
        P.failed = what;
}

/* ---- what the source looked like ---------------------------------------------------- */

static bool has_nl(uint32_t lo, uint32_t hi)
{
    if (hi > P.len)
        hi = P.len;
    return lo < hi && memchr(P.text + lo, '\n', hi - lo) != NULL;
}

/* Were the span's first and last bytes on different lines? */
static bool multiline(Span sp)
{
    return sp.hi > sp.lo && has_nl(sp.lo, sp.hi - 1);
}

/* Is there an empty line between lo and hi (only whitespace between two newlines)? */
static bool blank_between(uint32_t lo, uint32_t hi)
{
    int newlines = 0;
    if (hi > P.len)
        hi = P.len;
    for (uint32_t i = lo; i < hi; i++) {
        char c = P.text[i];
        if (c == '\n') {
            if (++newlines == 2)
                return true;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            newlines = 0;
        }
    }
    return false;
}

/* ---- comments ------------------------------------------------------------------------ */

static Span *comment_at(int i)
{
    return i < P.comments->len ? P.comments->items[i] : NULL;
}

/* Drops the comments inside a span printed as it was written (in a string). */
static void skip_comments(Span sp)
{
    Span *c;
    while ((c = comment_at(P.ci)) && c->lo < sp.hi)
        P.ci++;
}

static void put_comment(Span *c)
{
    uint32_t hi = c->hi;
    while (hi > c->lo && (P.text[hi - 1] == ' ' || P.text[hi - 1] == '\t' || P.text[hi - 1] == '\r'))
        hi--;
    putn(P.text + c->lo, hi - c->lo);
    P.pos = c->hi;
}

/* Prints the comments that start before limit; ind is the indentation of a
 * comment on a line of its own. */
static void flush(uint32_t limit, int ind)
{
    Span *c;
    while ((c = comment_at(P.ci)) && c->lo < limit) {
        P.ci++;
        if (!P.at_start && !has_nl(P.pos, c->lo)) {
            fflush(P.out);                       /* on the line of the code before it */
            vec_push(&P.trailing, (void *)(intptr_t)ftell(P.out));
            put("  ");
            put_comment(c);
            P.need_nl = true;
            continue;
        }
        bool blank = blank_between(P.pos, c->lo) && !P.in_first;
        line_brk(ind);
        if (blank && !P.blank_before)
            nl(ind);
        put_comment(c);
        nl(ind);
    }
}

/* Before an item of a multi-line list: its comments, a blank line where the
 * source had one, and the item's own line at ind. */
static void item_begin(uint32_t lo, int ind)
{
    flush(lo, ind);
    bool blank = blank_between(P.pos, lo) && !P.in_first;
    line_brk(ind);
    if (blank && !P.blank_before)
        nl(ind);
    P.item_ind = ind;
    if (lo > P.pos)
        P.pos = lo;
}

/* The comments left inside a multi-line container, then its closer at base. */
static void close_multi(uint32_t hi, int base, const char *closer)
{
    flush(hi, base + 2);
    line_brk(base);
    put(closer);
    P.pos = hi;
}

/* ---- types and literals ------------------------------------------------------------------ */

static void pr_type(TypeExpr *t)
{
    if (!t) {
        fail("type");
        return;
    }
    switch (t->kind) {
    case TE_NAME:
        put(t->name);
        break;
    case TE_LIST:
        put(t->name ? t->name : "list");
        put("<");
        pr_type(t->elem);
        put(">");
        break;
    case TE_OPT:                                 /* T? ?: "??" would be the operator */
        pr_type(t->elem);
        put(t->elem && t->elem->kind == TE_OPT ? " ?" : "?");
        break;
    default:
        fail("type expression");
    }
}

/* Leading spaces and tabs of the line at i (counted as the lexer counts them). */
static uint32_t ws_at(uint32_t i, uint32_t end)
{
    uint32_t n = 0;
    while (i + n < end && (P.text[i + n] == ' ' || P.text[i + n] == '\t'))
        n++;
    return n;
}

static bool closing_line(uint32_t i, uint32_t end)
{
    i += ws_at(i, end);
    return i + 3 == end && memcmp(P.text + i, "\"\"\"", 3) == 0;
}

/* A """ string: the first line as written, each later line re-indented to
 * two spaces past the current line's indentation (its common indentation
 * replaced), the closing quotes on a line of their own at the current one. */
static void pr_triple(Node *n)
{
    uint32_t lo = n->span.lo, hi = n->span.hi;
    const char *first_nl = memchr(P.text + lo, '\n', hi - lo);
    if (!first_nl) {
        put_src(n->span);
        return;
    }
    uint32_t line = (uint32_t)(first_nl - P.text) + 1;
    int common = -1;                             /* as the lexer computes it */
    for (uint32_t i = line; i < hi;) {
        const char *e = memchr(P.text + i, '\n', hi - i);
        uint32_t end = e ? (uint32_t)(e - P.text) : hi;
        uint32_t ws = ws_at(i, end), stop = end;
        while (stop > i + ws && P.text[stop - 1] == '\r')
            stop--;
        if (!closing_line(i, end) && i + ws < stop && (common < 0 || (int)ws < common))
            common = (int)ws;
        i = end + 1;
    }
    if (common < 0)
        common = 0;
    int base = P.line_ind, ind = base + 2;
    uint32_t fl = line - 1;
    while (fl > lo && P.text[fl - 1] == '\r')
        fl--;
    uint32_t rest = lo + 3;
    while (rest < fl && (P.text[rest] == ' ' || P.text[rest] == '\t'))
        rest++;
    putn(P.text + lo, rest == fl ? 3 : fl - lo); /* """ and what follows it on its line */
    for (uint32_t i = line; i < hi;) {
        const char *e = memchr(P.text + i, '\n', hi - i);
        uint32_t end = e ? (uint32_t)(e - P.text) : hi;
        uint32_t stop = end;
        while (stop > i && P.text[stop - 1] == '\r')
            stop--;
        fputc('\n', P.out);
        uint32_t ws = ws_at(i, stop);
        if (closing_line(i, end)) {
            for (int k = 0; k < base; k++)
                fputc(' ', P.out);
            fputs("\"\"\"", P.out);
        } else if (i + ws == stop) {            /* a blank line keeps what is past the indentation */
            if ((int)ws > common) {
                for (int k = 0; k < ind; k++)
                    fputc(' ', P.out);
                fwrite(P.text + i + common, 1, ws - (uint32_t)common, P.out);
            }
        } else {
            for (int k = 0; k < ind; k++)
                fputc(' ', P.out);
            fwrite(P.text + i + common, 1, stop - i - (uint32_t)common, P.out);
        }
        i = end + 1;
    }
    P.pos = hi;
}

static void pr_string(Node *n)
{
    if (n->triple)
        pr_triple(n);
    else
        put_src(n->span);
    skip_comments(n->span);
}

/* ---- lists ------------------------------------------------------------------------- */

/* Where a list of items starts and ends, and how to print one. */
typedef struct List {
    Vec *items;                                  /* the items */
    Span (*span)(void *item);                    /* an item's span */
    void (*print)(void *item);                   /* prints an item */
    bool multi;                                  /* one item per line */
    bool commas;                                 /* multi-line: a comma after each ( ) [ ] */
    bool spaced;                                 /* one-line: "{ a, b }" rather than "(a, b)" */
} List;

/* Prints items between opener and closer (closer_hi: where the closer ends). */
static void pr_list(List *l, const char *opener, const char *closer, uint32_t closer_hi)
{
    Span *c = comment_at(P.ci);
    if (!l->items->len && !(c && c->lo < closer_hi))
        l->multi = false;                        /* {} () [] */
    put(opener);
    if (!l->multi) {
        if (l->items->len && l->spaced)
            put(" ");
        for (int i = 0; i < l->items->len; i++) {
            if (i)
                put(", ");
            l->print(l->items->items[i]);
        }
        if (l->items->len && l->spaced)
            put(" ");
        put(closer);
        if (closer_hi > P.pos)
            P.pos = closer_hi;
        return;
    }
    int base = P.item_ind, saved = P.item_ind;
    P.in_first = true;
    for (int i = 0; i < l->items->len; i++) {
        void *it = l->items->items[i];
        item_begin(l->span(it).lo, base + 2);
        l->print(it);
        if (l->commas)
            put(",");
        P.in_first = false;
    }
    P.in_first = false;
    P.item_ind = saved;
    close_multi(closer_hi, base, closer);
}

static Span node_span(void *n)
{
    return ((Node *)n)->span;
}

static void node_print(void *n)
{
    pr_node(n);
}

static Span setting_span(void *s)
{
    return ((Setting *)s)->span;
}

static void setting_print(void *it)
{
    Setting *s = it;
    flush(s->span.lo, P.item_ind);
    put(s->key);
    put(": ");
    pr_node(s->value);
}

static Span field_span(void *f)
{
    return ((Field *)f)->span;
}

static void pr_bound(Node *b)
{
    put_src(b->span);
}

/* @alias("Name In The Data") after a field or an enum value, then @sensitive */
static void pr_alias(Field *f)
{
    if (f->alias) {
        put(" @alias(");
        pr_node(f->alias);
        put(")");
        if (f->alias->span.hi + 1 > P.pos)
            P.pos = f->alias->span.hi + 1;       /* past the ')' */
    }
    if (f->sensitive) {
        put(" @sensitive");
        if (f->sensitive_span.hi > P.pos)
            P.pos = f->sensitive_span.hi;
    }
}

/* name: type [in lo..hi | len lo..hi] [@alias("...")] [= default] */
static void field_print(void *it)
{
    Field *f = it;
    flush(f->span.lo, P.item_ind);
    put(f->name);
    if (f->texpr) {
        put(": ");
        pr_type(f->texpr);
    }
    if (f->cons.kind != CONS_NONE) {
        put(f->cons.kind == CONS_RANGE ? " in " : " len ");
        pr_bound(f->cons.lo);
        put("..");
        pr_bound(f->cons.hi);
    }
    pr_alias(f);
    if (f->deflt) {
        put(" = ");
        pr_node(f->deflt);
    }
    if (f->span.hi > P.pos)
        P.pos = f->span.hi;
}

static void value_print(void *it)
{
    Field *f = it;
    flush(f->span.lo, P.item_ind);
    put(f->name);
    P.pos = f->span.hi;
    pr_alias(f);
}

static Span init_span(void *i)
{
    return ((FieldInit *)i)->span;
}

static void init_print(void *it)
{
    FieldInit *fi = it;
    flush(fi->span.lo, P.item_ind);
    put(fi->name);
    put(": ");
    pr_node(fi->value);
}

static Span arm_span(void *a)
{
    return ((MatchArm *)a)->span;
}

static void arm_print(void *it)
{
    MatchArm *a = it;
    for (int i = 0; i < a->pats.len; i++) {
        put(i ? ", " : "");
        put(((Node *)a->pats.items[i])->name);
    }
    if (a->wildcard)
        put(a->pats.len ? ", _" : "_");
    put(" => ");
    pr_node(a->body);
}

/* May a container of nitems items (at most max) stay on one line? */
static bool one_line_ok(Span container, int nitems, int max)
{
    return !multiline(container) && nitems <= max;
}

/* ---- expressions ------------------------------------------------------------------------- */

/* Breaks the line before the rest of an expression if the source did. */
static void cont_break(uint32_t from, uint32_t to)
{
    if (has_nl(from, to)) {
        flush(to, P.item_ind + CONT);
        line_brk(P.item_ind + CONT);
    }
}

static bool word_op(int op)
{
    return op == OP_AND || op == OP_OR || op == OP_COALESCE;
}

static void pr_binary(Node *n)
{
    pr_node(n->lhs);
    const char *op = ast_binop_name(n->op);
    bool broken = has_nl(n->lhs->span.hi, n->rhs->span.lo);
    if (broken && word_op(n->op)) {
        flush(n->rhs->span.lo, P.item_ind + CONT);
        line_brk(P.item_ind + CONT);
        put(op);
        put(" ");
    } else {
        put(" ");
        put(op);
        if (broken) {
            flush(n->rhs->span.lo, P.item_ind + CONT);
            line_brk(P.item_ind + CONT);
        } else {
            put(" ");
        }
    }
    pr_node(n->rhs);
}

/* A call's argument: positional (arg) or named (opt). */
typedef struct ArgItem {
    Node *arg;                                   /* a positional argument, or NULL */
    Setting *opt;                                /* a named one (a read's option) */
} ArgItem;

static Span arg_span(void *it)
{
    ArgItem *a = it;
    return a->arg ? a->arg->span : a->opt->span;
}

static void arg_print(void *it)
{
    ArgItem *a = it;
    if (a->arg)
        node_print(a->arg);
    else
        setting_print(a->opt);
}

/* The arguments and named options of a call, in source order. */
static Vec call_items(Node *n)
{
    Vec v = { 0 };
    int i = 0, j = 0;
    while (i < n->args.len || j < n->opts.len) {
        Node *a = i < n->args.len ? n->args.items[i] : NULL;
        Setting *o = j < n->opts.len ? n->opts.items[j] : NULL;
        ArgItem *it = arena_alloc(sizeof *it);
        if (a && (!o || a->span.lo < o->span.lo))
            it->arg = a, i++;
        else
            it->opt = o, j++;
        vec_push(&v, it);
    }
    return v;
}

static void pr_call(Node *n)
{
    if (!n->name) {
        fail("call of an expression");
        return;
    }
    put(n->name);
    if (n->targs.len) {
        put("<");
        for (int i = 0; i < n->targs.len; i++) {
            if (i)
                put(", ");
            pr_type(n->targs.items[i]);
        }
        put(">");
    }
    uint32_t close = n->using_model ? n->using_span.lo : n->span.hi;
    Vec args = n->args;
    if (n->opts.len)                             /* read_csv<T>(path, on_bad: skip) */
        args = call_items(n);
    List l = { &args, n->opts.len ? arg_span : node_span, n->opts.len ? arg_print : node_print,
               multiline((Span){ n->span.file, n->name_span.hi, close }), true, false };
    /* the ')' ends before 'using': find it for the list's closer */
    uint32_t paren_hi = close;
    while (paren_hi > n->span.lo && P.text[paren_hi - 1] != ')')
        paren_hi--;
    pr_list(&l, "(", ")", paren_hi);
    if (n->using_model) {
        cont_break(paren_hi, n->using_span.lo);
        put(P.at_start ? "using " : " using ");
        put(n->using_model);
        P.pos = n->using_span.hi;
    }
}

static void pr_opts(Vec *opts)
{
    if (!opts->len)
        return;
    put(" (");
    for (int i = 0; i < opts->len; i++) {
        Setting *s = opts->items[i];
        if (i)
            put(", ");
        put(s->key);
        put(": ");
        pr_node(s->value);
    }
    put(")");
}

/* where the head of a for ends: after its list and options */
static uint32_t head_end(Node *n)
{
    uint32_t e = n->iter->span.hi;
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (s->span.hi > e)
            e = s->span.hi;
    }
    return e;
}

static void pr_for(Node *n)
{
    if (n->kind == N_FOR && n->parallel)
        put("parallel ");
    if (n->kind == N_PIPELINE)
        put("pipeline ");
    put("for ");
    put(n->name);
    put(" in ");
    pr_node(n->iter);
    pr_opts(&n->opts);
    if (n->cond) {
        uint32_t at = head_end(n);
        if (has_nl(at, n->cond->span.lo)) {
            flush(n->cond->span.lo, P.item_ind + CONT);
            line_brk(P.item_ind + CONT);
            put("where ");
        } else {
            put(" where ");
        }
        pr_node(n->cond);
    }
    put(" ");
}

static Span stage_span(void *s)
{
    return ((Node *)s)->span;
}

static void pr_stage(void *it)
{
    Node *st = it;
    put("stage ");
    put(st->name);
    pr_opts(&st->opts);
    put(" ");
    pr_block(st->body);
}

static void pr_pipeline(Node *n)
{
    pr_for(n);
    List l = { &n->stmts, stage_span, pr_stage, !one_line_ok(n->span, n->stmts.len, 1), false, true };
    pr_list(&l, "{", "}", n->span.hi);
}

static void pr_if(Node *n)
{
    put("if ");
    pr_node(n->cond);
    put(" ");
    pr_block(n->then);
    if (!n->els)
        return;
    put(" else ");
    if (n->els->kind == N_IF)
        pr_if(n->els);
    else
        pr_block(n->els);
    if (n->span.hi > P.pos)
        P.pos = n->span.hi;
}

static void pr_match(Node *n)
{
    put("match ");
    pr_node(n->lhs);
    put(" ");
    List l = { &n->arms, arm_span, arm_print, !one_line_ok(n->span, n->arms.len, 1), false, true };
    pr_list(&l, "{", "}", n->span.hi);
}

static void pr_loop(Node *n)
{
    put("loop ");
    if (n->cond) {
        put("max ");
        pr_node(n->cond);
        put(" ");
    }
    pr_block(n->body);
    if (n->els) {
        put(" else ");
        pr_block(n->els);
    }
}

/* The record literal `Name { f: e, ... }`. */
static void pr_record(Node *n)
{
    put(n->name);
    put(" ");
    List l = { &n->inits, init_span, init_print, multiline(n->span), false, true };
    pr_list(&l, "{", "}", n->span.hi);
}

static void pr_list_lit(Node *n)
{
    List l = { &n->args, node_span, node_print, multiline(n->span), true, false };
    pr_list(&l, "[", "]", n->span.hi);
}

static void pr_field_access(Node *n)
{
    pr_node(n->lhs);
    cont_break(n->lhs->span.hi, n->name_span.lo);
    put(".");
    put(n->name);
}

static void pr_stmt_let(Node *n)
{
    put(n->kind == N_LET ? "let " : "");
    put(n->name);
    put(" = ");
    flush(n->value->span.lo, P.item_ind + CONT);
    pr_node(n->value);
}

static void pr_settings_block(const char *head, Vec *settings, Span container)
{
    put(head);
    List l = { settings, setting_span, setting_print, multiline(container), false, true };
    pr_list(&l, "{", "}", container.hi);
}

/* expr, statement: the one switch over node kinds */
static void pr_node(Node *n)
{
    if (!n) {
        fail("missing node");
        return;
    }
    flush(n->span.lo, P.item_ind + CONT);
    if (n->paren)
        put("(");
    switch (n->kind) {
    case N_INT: case N_FLOAT: case N_DURATION:
        put_src(n->span);
        break;
    case N_BOOL: put(n->ival ? "true" : "false"); break;
    case N_NULL: put("null"); break;
    case N_STRING: pr_string(n); break;
    case N_NAME: put(n->name); break;
    case N_FIELD: pr_field_access(n); break;
    case N_CALL: pr_call(n); break;
    case N_LIST: pr_list_lit(n); break;
    case N_RECORD: pr_record(n); break;
    case N_BINARY: pr_binary(n); break;
    case N_UNARY:
        put(n->op == OP_NOT ? "not " : "-");
        pr_node(n->operand);
        break;
    case N_BLOCK: pr_block(n); break;
    case N_IF: pr_if(n); break;
    case N_MATCH: pr_match(n); break;
    case N_FOR:
        pr_for(n);
        pr_block(n->body);
        break;
    case N_PIPELINE: pr_pipeline(n); break;
    case N_PARBLOCK:
        put("parallel ");
        pr_block(n);
        break;
    case N_LOOP: pr_loop(n); break;
    case N_LET: case N_ASSIGN: pr_stmt_let(n); break;
    case N_PHASE:
        put("phase ");
        put(n->name);
        put(" ");
        pr_block(n->body);
        break;
    case N_BUDGET: pr_settings_block("budget ", &n->opts, n->span); break;
    case N_RETURN:
        put("return");
        if (n->value) {
            put(" ");
            pr_node(n->value);
        }
        break;
    case N_BREAK: put("break"); break;
    case N_SKIP: put("skip"); break;
    default:
        fail(ast_node_kind_name(n->kind));
        return;
    }
    if (n->paren)
        put(")");
    if (n->span.hi > P.pos)
        P.pos = n->span.hi;
}

/* block -> '{' stmt* '}' (also the statements of a parallel block) */
static void pr_block(Node *b)
{
    if (!b || (b->kind != N_BLOCK && b->kind != N_PARBLOCK)) {
        fail("block");
        return;
    }
    List l = { &b->stmts, node_span, node_print, !one_line_ok(b->span, b->stmts.len, 1), false, true };
    pr_list(&l, "{", "}", b->span.hi);
}

/* ---- declarations ------------------------------------------------------------------------ */

static void pr_params(Decl *d)
{
    uint32_t open = d->name_span.hi, close = open;
    while (close < P.len && P.text[close] != ')' && d->fields.len == 0)
        close++;
    if (d->fields.len) {                         /* the ')' after the last parameter */
        Field *last = d->fields.items[d->fields.len - 1];
        close = last->deflt ? last->deflt->span.hi : last->texpr ? last->texpr->span.hi : last->span.hi;
        while (close < P.len && P.text[close] != ')') {
            if (P.text[close] == '/' && close + 1 < P.len && P.text[close + 1] == '/')
                while (close < P.len && P.text[close] != '\n')
                    close++;
            else
                close++;
        }
    }
    List l = { &d->fields, field_span, field_print, has_nl(open, close), true, false };
    pr_list(&l, "(", ")", close + 1);
}

static void pr_decl(Decl *d)
{
    static const char *const kw[] = {
        [D_IMPORT] = "import", [D_SCHEMA] = "schema", [D_ENUM] = "enum", [D_MODEL] = "model",
        [D_AGENT] = "agent", [D_WORKFLOW] = "workflow", [D_HTTP] = "http",
    };
    if ((unsigned)d->kind >= sizeof kw / sizeof kw[0] || !kw[d->kind]) {
        fail("declaration");
        return;
    }
    put(kw[d->kind]);
    put(" ");
    if (d->kind == D_IMPORT) {
        put_src(d->name_span);
        skip_comments(d->name_span);
        return;
    }
    put(d->name);
    P.pos = d->name_span.hi;
    List l = { 0 };
    switch (d->kind) {
    case D_SCHEMA:
        l = (List){ &d->fields, field_span, field_print, multiline(d->span), false, true };
        pr_opts(&d->settings);                   /* schema S (extra: keep) */
        if (d->settings.len)
            P.pos = ((Setting *)d->settings.items[d->settings.len - 1])->span.hi + 1;
        put(" ");
        pr_list(&l, "{", "}", d->span.hi);
        break;
    case D_ENUM:
        l = (List){ &d->values, field_span, value_print, multiline(d->span), false, true };
        put(" ");
        pr_list(&l, "{", "}", d->span.hi);
        break;
    case D_MODEL:
        pr_settings_block(" ", &d->settings, d->span);
        break;
    case D_AGENT:
    case D_HTTP:                                 /* http NAME(params) [-> T] { settings } */
        pr_params(d);
        if (d->ret || d->kind == D_AGENT) {
            put(" -> ");
            pr_type(d->ret);
        }
        pr_settings_block(" ", &d->settings, (Span){ d->span.file, d->ret ? d->ret->span.hi : d->name_span.hi, d->span.hi });
        break;
    case D_WORKFLOW:
        pr_params(d);
        if (d->ret) {
            put(" -> ");
            pr_type(d->ret);
        }
        put(" ");
        pr_block(d->body);
        break;
    default:
        fail("declaration");
    }
}

/* End-of-line comments on consecutive lines start in one column, two
 * spaces past the longest code among them (as gofmt aligns them). */
static char *align_comments(char *buf, size_t len, size_t *out_len)
{
    *out_len = len;
    if (!P.trailing.len)
        return buf;
    char *out = NULL;
    size_t olen = 0;
    FILE *f = arena_memstream(&out, &olen);
    int t = 0;
    size_t i = 0;
    while (i < len) {
        /* a run of lines that each have a trailing comment */
        size_t run = i, width = 0;
        int first = t;
        while (run < len && t < P.trailing.len) {
            size_t at = (size_t)(intptr_t)P.trailing.items[t];
            const char *nl = memchr(buf + run, '\n', len - run);
            size_t end = nl ? (size_t)(nl - buf) : len;
            if (at < run || at >= end)
                break;
            if (at - run > width)
                width = at - run;
            t++;
            run = end + 1;
        }
        if (t == first) {                        /* no comment on this line */
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - buf) + 1 : len;
            fwrite(buf + i, 1, end - i, f);
            i = end;
            continue;
        }
        for (int k = first; k < t; k++) {
            size_t at = (size_t)(intptr_t)P.trailing.items[k];
            const char *nl = memchr(buf + i, '\n', len - i);
            size_t end = nl ? (size_t)(nl - buf) + 1 : len;
            fwrite(buf + i, 1, at - i, f);
            for (size_t pad = at - i; pad < width + 2; pad++)
                fputc(' ', f);
            size_t c = at;
            while (c < end && buf[c] == ' ')
                c++;
            fwrite(buf + c, 1, end - c, f);
            i = end;
        }
    }
    fclose(f);
    free(buf);
    *out_len = olen;
    return out;
}

/* ---- entry points ---------------------------------------------------------------------------- */

/* Formats the parsed file (one file: imports are not loaded) of p.  Returns
 * the text (malloc'd; the caller frees it), or NULL with *failed naming the
 * construct that has no layout. */
char *fmt_program(Program *p, int file, size_t *out_len, const char **failed)
{
    Source *src = src_get(file);
    char *buf = NULL;
    size_t len = 0;
    memset(&P, 0, sizeof P);
    P.text = src->text;
    P.len = (uint32_t)src->len;
    P.comments = &p->comments;
    P.out = arena_memstream(&buf, &len);
    P.at_start = true;
    P.blank_before = true;
    Decl *prev = NULL;
    bool prev_multi = false;                     /* prev printed on more than one line */
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->file != file)
            continue;
        Span *c = comment_at(P.ci);
        uint32_t first = c && c->lo < d->span.lo ? c->lo : d->span.lo;
        if (prev && !has_nl(P.pos, first)) {
            flush(first + 1, 0);                 /* a comment after the last declaration */
            c = comment_at(P.ci);
            first = c && c->lo < d->span.lo ? c->lo : d->span.lo;
        }
        if (prev && (blank_between(P.pos, first) || multiline(prev->span) || prev_multi ||
                     multiline(d->span) || prev->kind != d->kind)) {
            line_brk(0);
            if (!P.blank_before)
                nl(0);
        }
        flush(d->span.lo, 0);
        bool blank = first < d->span.lo && blank_between(P.pos, d->span.lo);
        line_brk(0);
        if (blank && !P.blank_before)
            nl(0);
        P.item_ind = 0;
        P.pos = d->span.lo;
        fflush(P.out);
        size_t from = len;
        pr_decl(d);
        fflush(P.out);                           /* as printed, not as written: idempotent */
        prev_multi = len > from && memchr(buf + from, '\n', len - from) != NULL;
        P.pos = d->span.hi;
        prev = d;
    }
    flush(P.len + 1, 0);
    if (!P.at_start)
        nl(0);
    fclose(P.out);
    if (P.failed) {
        *failed = P.failed;
        free(buf);
        return NULL;
    }
    return align_comments(buf, len, out_len);
}

/* ---- flowc fmt ----------------------------------------------------------------------------- */

static const char fmt_usage[] =
    "usage: flowc fmt [--check | -w] [FILE|DIR|-]...\n"
    "\n"
    "Prints each file in the one canonical layout (no options), or with\n"
    "  -w        rewrites the files that are not formatted (nothing else is touched)\n"
    "  --check   lists the files that are not formatted and exits 1 if there is one\n"
    "A DIR stands for every *.flow below it; no FILE, or '-', reads stdin.\n"
    "A file with a syntax error is left alone (its errors are shown, exit 1).\n";

/* The tree of p as text without spans: what formatting must not change. */
static char *tree_text(Program *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = arena_memstream(&buf, &len);
    ast_dump_opts(f, p, false);
    fclose(f);
    return buf;
}

/* Parses a file already in the source table; NULL after a syntax error. */
static Program *parse_one(int file)
{
    Program *p = arena_alloc(sizeof *p);
    vec_push(&p->files, (void *)(intptr_t)file);
    if (!parse_file(p, file) || diag_error_count())
        return NULL;
    return p;
}

/* The formatted text of source `file`, checked to parse to the same tree;
 * NULL after an error (said on stderr; *status set). */
char *fmt_source(int file, size_t *len, int *status)
{
    Program *p = parse_one(file);
    if (!p) {
        diag_flush();
        *status = 1;
        return NULL;
    }
    const char *failed = NULL;
    char *out = fmt_program(p, file, len, &failed);
    const char *path = src_get(file)->path;
    if (!out) {
        fprintf(stderr, "flowc: internal error: fmt has no layout for %s (in %s)\n", failed, path);
        *status = 3;
        return NULL;
    }
    int again = src_add(arena_printf("%s (formatted)", path), out, *len);
    Program *q = parse_one(again);
    char *t1 = tree_text(p), *t2 = q ? tree_text(q) : NULL;
    bool same = t2 && strcmp(t1, t2) == 0;
    free(t1);
    free(t2);
    if (!same) {
        diag_reset();
        fprintf(stderr, "flowc: internal error: formatting %s would change its meaning; "
                "it is left as it is\n", path);
        free(out);
        *status = 3;
        return NULL;
    }
    return out;
}

/* Writes text over path through a temporary file and a rename, keeping its mode. */
static bool write_over(const char *path, const char *text, size_t len)
{
    struct stat st;
    char *tmp = arena_printf("%s.fmt-XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fprintf(stderr, "flowc: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    FILE *f = fdopen(fd, "w");
    bool ok = f && fwrite(text, 1, len, f) == len;
    ok &= f && fclose(f) == 0;
    if (ok && stat(path, &st) == 0)
        chmod(tmp, st.st_mode & 07777);
    if (!ok || rename(tmp, path) != 0) {
        fprintf(stderr, "flowc: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return false;
    }
    return true;
}

/* flowc fmt [--check | -w] [FILE|DIR|-]... */
int cmd_fmt(int argc, char **argv)
{
    bool check = false, write = false;
    char **args = arena_alloc(sizeof(char *) * (size_t)(argc + 1));
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--check") == 0)
            check = true;
        else if (strcmp(argv[i], "-w") == 0)
            write = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(fmt_usage, stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "flowc fmt: unknown option '%s'\n%s", argv[i], fmt_usage);
            return 2;
        } else
            args[nargs++] = argv[i];
    }
    if (check && write) {
        fprintf(stderr, "flowc fmt: --check and -w do not go together\n%s", fmt_usage);
        return 2;
    }
    Vec files = { 0 };
    int status = flowc_expand_args(args, nargs, &files) ? 0 : 1;
    if (!nargs)
        vec_push(&files, "-");
    for (int i = 0; i < files.len; i++) {
        const char *path = files.items[i];
        bool std = strcmp(path, "-") == 0;
        int file = std ? src_read_stream(stdin, "<stdin>") : src_load(path);
        if (file < 0) {
            fprintf(stderr, "flowc: cannot read %s: %s\n", path, strerror(errno));
            status = 1;
            continue;
        }
        int st = 0;
        size_t len = 0;
        char *out = fmt_source(file, &len, &st);
        if (!out) {
            status = status > st ? status : st;
            continue;
        }
        Source *src = src_get(file);
        bool same = len == src->len && memcmp(out, src->text, len) == 0;
        if (check && !same) {
            printf("%s\n", std ? "<stdin>" : path);
            status = status ? status : 1;
        } else if (write && !std) {
            if (!same && !write_over(path, out, len))
                status = 1;
        } else if (!check) {
            fwrite(out, 1, len, stdout);
        }
        free(out);
    }
    fflush(stdout);
    return status;
}
