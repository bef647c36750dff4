/*
 * ast.c: syntax tree constructors and the --dump-ast printer.
 *
 * Nodes are plain arena structs (flowc.h documents which fields each kind
 * uses).  ast_dump() prints one node per line, indented by depth, each with
 * its span as line:col-line:col so tests can check where things point.
 * ast_children() lists what is under a node, for the walks that must not
 * recurse: ast_check_depth(), the nesting limit, is one.
 */
#include "flowc.h"

#include <inttypes.h>
#include <string.h>

Node *ast_node(NodeKind kind, Span sp)
{
    Node *n = arena_alloc(sizeof *n);
    n->kind = kind;
    n->span = sp;
    return n;
}

Decl *ast_decl(DeclKind kind, Span sp)
{
    Decl *d = arena_alloc(sizeof *d);
    d->kind = kind;
    d->span = sp;
    d->file = sp.file;
    return d;
}

TypeExpr *ast_type(TypeExprKind kind, Span sp)
{
    TypeExpr *t = arena_alloc(sizeof *t);
    t->kind = kind;
    t->span = sp;
    return t;
}

const char *ast_node_kind_name(NodeKind k)
{
    static const char *const names[] = {
        [N_INT] = "int", [N_FLOAT] = "float", [N_STRING] = "string", [N_BOOL] = "bool",
        [N_NULL] = "null", [N_DURATION] = "duration", [N_NAME] = "name", [N_FIELD] = "field",
        [N_CALL] = "call", [N_LIST] = "list", [N_RECORD] = "record", [N_BINARY] = "binary",
        [N_UNARY] = "unary", [N_BLOCK] = "block", [N_IF] = "if", [N_MATCH] = "match",
        [N_FOR] = "for", [N_PIPELINE] = "pipeline", [N_STAGE] = "stage",
        [N_PARBLOCK] = "parallel", [N_LOOP] = "loop", [N_LET] = "let", [N_ASSIGN] = "assign",
        [N_PHASE] = "phase", [N_BUDGET] = "budget", [N_RETURN] = "return",
        [N_BREAK] = "break", [N_SKIP] = "skip", [N_ERROR] = "error",
    };
    if ((unsigned)k < sizeof names / sizeof names[0] && names[k])
        return names[k];
    return "?";
}

const char *ast_binop_name(int op)
{
    static const char *const names[] = {
        [OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
        [OP_EQ] = "==", [OP_NE] = "!=", [OP_LT] = "<", [OP_LE] = "<=",
        [OP_GT] = ">", [OP_GE] = ">=", [OP_AND] = "and", [OP_OR] = "or",
        [OP_COALESCE] = "??",
    };
    if ((unsigned)op < sizeof names / sizeof names[0] && names[op])
        return names[op];
    return "?";
}

/* ---- children and the nesting limit ----------------------------------------- */

/* Every node and type expression directly under n.  Generic over the
 * fields, like the dump below: a field that holds a Node or a TypeExpr must
 * be listed here, or the nesting limit (and the fuzzer that checks it) will
 * not see what is under it. */
void ast_children(Node *n, AstVisit fn, void *ctx)
{
    for (int i = 0; i < n->parts.len; i++)
        if (((StrPart *)n->parts.items[i])->expr)
            fn(ctx, ((StrPart *)n->parts.items[i])->expr, NULL);
    for (int i = 0; i < n->inits.len; i++)
        fn(ctx, ((FieldInit *)n->inits.items[i])->value, NULL);
    for (int i = 0; i < n->opts.len; i++)
        fn(ctx, ((Setting *)n->opts.items[i])->value, NULL);
    for (int i = 0; i < n->targs.len; i++)
        fn(ctx, NULL, n->targs.items[i]);
    Node *one[] = { n->lhs, n->operand, n->rhs, n->iter, n->cond, n->then, n->value, n->body,
                    n->els };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        if (one[i])
            fn(ctx, one[i], NULL);
    for (int i = 0; i < n->args.len; i++)
        fn(ctx, n->args.items[i], NULL);
    for (int i = 0; i < n->stmts.len; i++)
        fn(ctx, n->stmts.items[i], NULL);
    for (int i = 0; i < n->arms.len; i++) {
        MatchArm *a = n->arms.items[i];
        for (int j = 0; j < a->pats.len; j++)
            fn(ctx, a->pats.items[j], NULL);
        fn(ctx, a->body, NULL);
    }
}

/* Every node and type expression directly under a declaration. */
void ast_decl_children(Decl *d, AstVisit fn, void *ctx)
{
    Vec *lists[] = { &d->fields, &d->values };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < lists[k]->len; i++) {
            Field *f = lists[k]->items[i];
            if (f->texpr)
                fn(ctx, NULL, f->texpr);
            Node *more[] = { f->deflt, f->cons.lo, f->cons.hi };
            for (int j = 0; j < 3; j++)
                if (more[j])
                    fn(ctx, more[j], NULL);
        }
    for (int i = 0; i < d->settings.len; i++)
        fn(ctx, ((Setting *)d->settings.items[i])->value, NULL);
    if (d->ret)
        fn(ctx, NULL, d->ret);
    if (d->body)
        fn(ctx, d->body, NULL);
}

/* The walk of ast_check_depth: a stack of (node or type, depth). */
typedef struct DepthItem {
    Node *node;                                  /* a node, or NULL */
    TypeExpr *type;                              /* ... else a type expression */
    int depth;                                   /* its depth below the declaration */
} DepthItem;

typedef struct DepthWalk {
    DepthItem *items;                            /* the stack */
    int len;                                     /* entries used */
    int cap;                                     /* entries allocated */
    int depth;                                   /* depth of the children being pushed */
} DepthWalk;

static void depth_push(void *ctx, Node *n, TypeExpr *t)
{
    DepthWalk *w = ctx;
    if (!n && !t)
        return;
    if (w->len == w->cap) {
        int cap = w->cap ? w->cap * 2 : 256;
        DepthItem *items = arena_alloc(sizeof *items * (size_t)cap);
        if (w->len)
            memcpy(items, w->items, sizeof *items * (size_t)w->len);
        w->items = items;
        w->cap = cap;
    }
    w->items[w->len++] = (DepthItem){ n, t, w->depth };
}

/* The nesting limit: a declaration whose tree is deeper than
 * FLOWC_MAX_DEPTH gets one error, at the first node past the limit in
 * source order (depth first, first child first), so
 * that the recursive walks after the parser (checker, code generator,
 * schema writer, --dump-ast) never see it.  Without recursion itself. */
bool ast_check_depth(Decl *d)
{
    DepthWalk w = { 0 };
    w.depth = 1;
    ast_decl_children(d, depth_push, &w);
    while (w.len) {
        DepthItem it = w.items[--w.len];
        if (it.depth > FLOWC_MAX_DEPTH) {
            Span sp = it.node ? it.node->span : it.type->span;
            if (sp.hi > sp.lo + 1)
                sp.hi = sp.lo + 1;
            diag_error(sp, E0204, "nested too deeply: more than %d levels", FLOWC_MAX_DEPTH);
            diag_help("flowc reads at most %d levels of nested expressions, statements and types "
                      "(each operator, call, '.field', 'else if' and 'list<' is one); give inner "
                      "parts names with 'let'", FLOWC_MAX_DEPTH);
            return false;
        }
        w.depth = it.depth + 1;
        int base = w.len;
        if (it.node)
            ast_children(it.node, depth_push, &w);
        else if (it.type->elem)
            depth_push(&w, NULL, it.type->elem);
        for (int i = base, j = w.len - 1; i < j; i++, j--) {   /* first child on top */
            DepthItem t = w.items[i];
            w.items[i] = w.items[j];
            w.items[j] = t;
        }
    }
    return true;
}

/* ---- the dump ------------------------------------------------------------- */

static void dump_node(FILE *out, Node *n, int depth);

static void indent(FILE *out, int depth)
{
    for (int i = 0; i < depth; i++)
        fputs("  ", out);
}

static bool with_spans = true;                   /* ast_dump_opts(spans) */

static void put_span(FILE *out, Span sp)
{
    if (!with_spans)
        return;
    Span end = sp;
    end.lo = sp.hi;
    int l1, c1, l2, c2;
    src_linecol(sp, &l1, &c1);
    src_linecol(end, &l2, &c2);
    fprintf(out, " @%d:%d-%d:%d", l1, c1, l2, c2);
}

static void put_quoted(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void put_type(FILE *out, TypeExpr *t)
{
    if (!t) {
        fputs("?", out);
        return;
    }
    switch (t->kind) {
    case TE_NAME: fputs(t->name ? t->name : "?", out); break;
    case TE_LIST: fputs("list<", out); put_type(out, t->elem); fputc('>', out); break;
    case TE_OPT: put_type(out, t->elem); fputc('?', out); break;
    }
}

static void dump_settings(FILE *out, const char *what, Vec *v, int depth)
{
    for (int i = 0; i < v->len; i++) {
        Setting *s = v->items[i];
        indent(out, depth);
        fprintf(out, "%s %s", what, s->key ? s->key : "?");
        put_span(out, s->span);
        fputc('\n', out);
        dump_node(out, s->value, depth + 1);
    }
}

static void dump_list(FILE *out, Vec *v, int depth)
{
    for (int i = 0; i < v->len; i++)
        dump_node(out, v->items[i], depth);
}

static void dump_string(FILE *out, Node *n, int depth)
{
    for (int i = 0; i < n->parts.len; i++) {
        StrPart *p = n->parts.items[i];
        if (p->expr) {
            indent(out, depth);
            fputs("interp\n", out);
            dump_node(out, p->expr, depth + 1);
        } else {
            indent(out, depth);
            fputs("text ", out);
            put_quoted(out, p->text, p->len);
            fputc('\n', out);
        }
    }
}

static void dump_arms(FILE *out, Node *n, int depth)
{
    for (int i = 0; i < n->arms.len; i++) {
        MatchArm *a = n->arms.items[i];
        indent(out, depth);
        fputs("arm", out);
        if (a->wildcard)
            fputs(" _", out);
        for (int j = 0; j < a->pats.len; j++)
            fprintf(out, " %s", ((Node *)a->pats.items[j])->name);
        put_span(out, a->span);
        fputc('\n', out);
        dump_node(out, a->body, depth + 1);
    }
}

/* The head line of a node: its kind and what it carries inline. */
static void dump_head(FILE *out, Node *n)
{
    fputs(ast_node_kind_name(n->kind), out);
    switch (n->kind) {
    case N_INT: case N_BOOL: fprintf(out, " %" PRId64, n->ival); break;
    case N_DURATION: fprintf(out, " %" PRId64 "ms", n->ival); break;
    case N_FLOAT: fprintf(out, " %g", n->fval); break;
    case N_STRING: if (n->triple) fputs(" triple", out); break;
    case N_BINARY: fprintf(out, " %s", ast_binop_name(n->op)); break;
    case N_UNARY: fputs(n->op == OP_NOT ? " not" : " -", out); break;
    case N_FOR: if (n->parallel) fputs(" parallel", out); break;
    default: break;
    }
    if (n->name)
        fprintf(out, " %s", n->name);
    if (n->kind == N_CALL && n->targs.len) {
        for (int i = 0; i < n->targs.len; i++) {
            fputs(i ? ", " : "<", out);
            put_type(out, n->targs.items[i]);
        }
        fputc('>', out);
    }
    if (n->using_model)
        fprintf(out, " using %s", n->using_model);
    put_span(out, n->span);
    fputc('\n', out);
}

static void dump_opt(FILE *out, const char *label, Node *n, int depth)
{
    if (!n)
        return;
    indent(out, depth);
    fprintf(out, "%s:\n", label);
    dump_node(out, n, depth + 1);
}

static void dump_node(FILE *out, Node *n, int depth)
{
    if (!n)
        return;
    indent(out, depth);
    if (depth > FLOWC_MAX_DEPTH + 8) {           /* past the nesting limit (reported) */
        fputs("...\n", out);
        return;
    }
    dump_head(out, n);
    depth++;
    if (n->kind == N_STRING)
        dump_string(out, n, depth);
    for (int i = 0; i < n->inits.len; i++) {
        FieldInit *fi = n->inits.items[i];
        indent(out, depth);
        fprintf(out, "init %s\n", fi->name);
        dump_node(out, fi->value, depth + 1);
    }
    dump_settings(out, "opt", &n->opts, depth);
    dump_node(out, n->lhs, depth);
    dump_node(out, n->operand, depth);
    dump_list(out, &n->args, depth);
    dump_node(out, n->rhs, depth);
    dump_node(out, n->iter, depth);
    dump_opt(out, n->kind == N_LOOP ? "max" : n->kind == N_IF ? "cond" : "where", n->cond, depth);
    dump_node(out, n->then, depth);
    dump_node(out, n->value, depth);
    dump_list(out, &n->stmts, depth);
    dump_arms(out, n, depth);
    dump_node(out, n->body, depth);
    dump_opt(out, "else", n->els, depth);
}

static void dump_field(FILE *out, const char *what, Field *f, int depth)
{
    indent(out, depth);
    fprintf(out, "%s %s", what, f->name ? f->name : "?");
    if (f->texpr) {
        fputs(": ", out);
        put_type(out, f->texpr);
    }
    if (f->cons.kind != CONS_NONE)
        fputs(f->cons.kind == CONS_RANGE ? " in" : " len", out);
    if (f->sensitive)
        fputs(" sensitive", out);
    put_span(out, f->span);
    if (f->doc) {
        fputs(" doc=", out);
        put_quoted(out, f->doc, strlen(f->doc));
    }
    fputc('\n', out);
    if (f->cons.kind != CONS_NONE) {
        dump_node(out, f->cons.lo, depth + 1);
        dump_node(out, f->cons.hi, depth + 1);
    }
    dump_opt(out, "alias", f->alias, depth + 1);
    dump_opt(out, "default", f->deflt, depth + 1);
}

static void dump_decl(FILE *out, Decl *d, int main_file)
{
    static const char *const kinds[] = { "import", "schema", "enum", "model", "agent", "workflow",
                                         "http" };
    fprintf(out, "%s %s", kinds[d->kind], d->name ? d->name : "?");
    if (d->ret) {
        fputs(" -> ", out);
        put_type(out, d->ret);
    }
    put_span(out, d->span);
    if (d->file != main_file && src_get(d->file))
        fprintf(out, " in %s", src_get(d->file)->path);
    if (d->doc) {
        fputs(" doc=", out);
        put_quoted(out, d->doc, strlen(d->doc));
    }
    fputc('\n', out);
    for (int i = 0; i < d->fields.len; i++)
        dump_field(out, d->kind == D_SCHEMA ? "field" : "param", d->fields.items[i], 1);
    for (int i = 0; i < d->values.len; i++)
        dump_field(out, "value", d->values.items[i], 1);
    dump_settings(out, "setting", &d->settings, 1);
    dump_node(out, d->body, 1);
}

/* Declarations of imported files say which file their spans are in. */
void ast_dump_opts(FILE *out, Program *p, bool spans)
{
    int main_file = p->files.len ? (int)(intptr_t)p->files.items[0] : 0;
    with_spans = spans;
    for (int i = 0; i < p->decls.len; i++)
        dump_decl(out, p->decls.items[i], main_file);
    with_spans = true;
}

void ast_dump(FILE *out, Program *p)
{
    ast_dump_opts(out, p, true);
}
