/*
 * lint.c: warnings about programs that check but are likely wrong.
 *
 * Runs after sema_check() accepted a program (never on one with errors, so
 * a mistake brings no warnings it caused), over the declarations of the root
 * file only: what a file imports is judged when that file is checked.  One
 * walk over each body mirrors the checker's `used` flag (is an expression's
 * value consumed?) and reports:
 *
 *   unused-value        an expression statement with no effect (`- b` on a
 *                       line of its own: an operator at the start of a line
 *                       does not continue the previous one)
 *   unreachable-code    a statement after one that never finishes
 *   constant-condition  an `if` or `where` condition made of literals only
 *
 * Then, from what sema recorded on each Sym (reads, the outer local it
 * hides): unused-let, unused-parameter and shadow; and by reachability from
 * the workflow (types, calls, models), unused-schema, -enum, -agent, -http
 * and -model, when the root file has a workflow (a file without one is a module
 * whose declarations are there for others).  A name that starts with '_' is
 * never reported as unused.
 */
#include "flowc.h"

#include <string.h>

static struct {
    Program *prog;                               /* what is linted */
    int root;                                    /* the file whose declarations count */
    KeyMap marked;                               /* Decl* -> itself: reached from the workflow */
    Vec queue;                                   /* Decl*: marked, their uses not yet walked */
    KeyMap models;                               /* model name -> Decl* */
} L;

/* ---- helpers ----------------------------------------------------------------- */

static const char *quoted(Node *e)
{
    Source *src = src_get(e->span.file);
    size_t n = e->span.hi - e->span.lo;
    if (!src || n == 0 || n > 40 || e->span.hi > src->len || memchr(src->text + e->span.lo, '\n', n))
        return "this expression";
    return arena_printf("'%.*s'", (int)n, src->text + e->span.lo);
}

static int line_of(Span sp)
{
    int line, col;
    src_linecol(sp, &line, &col);
    return line;
}

/* Is sp the first thing on its line? */
static bool starts_line(Span sp)
{
    Source *src = src_get(sp.file);
    if (!src)
        return false;
    for (uint32_t i = sp.lo; i > 0; i--) {
        char c = src->text[i - 1];
        if (c == '\n')
            return true;
        if (c != ' ' && c != '\t' && c != '\r')
            return false;
    }
    return true;
}

static bool is_builtin(Node *n, Builtin b)
{
    return n->kind == N_CALL && n->builtin == (int)b;
}

/* An expression that computes a value and does nothing else. */
static bool pure(Node *n)
{
    if (!n)
        return true;
    switch (n->kind) {
    case N_INT: case N_FLOAT: case N_BOOL: case N_NULL: case N_NAME: case N_DURATION:
        return true;
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++) {
            StrPart *p = n->parts.items[i];
            if (p->expr && !pure(p->expr))
                return false;
        }
        return true;
    case N_FIELD:
        return pure(n->lhs);
    case N_BINARY:
        return pure(n->lhs) && pure(n->rhs);
    case N_UNARY:
        return pure(n->operand);
    case N_LIST:
    case N_CALL:
        if (n->kind == N_CALL && !is_builtin(n, B_LEN) && !is_builtin(n, B_ENV))
            return false;
        for (int i = 0; i < n->args.len; i++)
            if (!pure(n->args.items[i]))
                return false;
        return true;
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            if (!pure(((FieldInit *)n->inits.items[i])->value))
                return false;
        return true;
    default:
        return false;
    }
}

/* ---- constant conditions ----------------------------------------------------- */

typedef enum Const { C_NO, C_TRUE, C_FALSE, C_OTHER } Const;

static bool is_enum_value(Node *n)
{
    return n->kind == N_FIELD && n->decl && n->decl->kind == D_ENUM;
}

/* A literal, an enum value, or operators over those. */
static bool constant(Node *n)
{
    switch (n->kind) {
    case N_INT: case N_FLOAT: case N_BOOL: case N_NULL:
        return true;
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            if (((StrPart *)n->parts.items[i])->expr)
                return false;
        return true;
    case N_FIELD:
        return is_enum_value(n);
    case N_UNARY:
        return constant(n->operand);
    case N_BINARY:
        return constant(n->lhs) && constant(n->rhs);
    default:
        return false;
    }
}

static bool num_of(Node *n, double *v)
{
    if (n->kind == N_INT)
        *v = (double)n->ival;
    else if (n->kind == N_FLOAT)
        *v = n->fval;
    else if (n->kind == N_UNARY && n->op == OP_NEG && num_of(n->operand, v))
        *v = -*v;
    else
        return false;
    return true;
}

static Const of_bool(bool b)
{
    return b ? C_TRUE : C_FALSE;
}

/* The value of a constant bool condition, where it is easy to tell. */
static Const eval(Node *n)
{
    double a, b;
    if (n->kind == N_BOOL)
        return of_bool(n->ival != 0);
    if (n->kind == N_UNARY && n->op == OP_NOT) {
        Const c = eval(n->operand);
        return c == C_TRUE ? C_FALSE : c == C_FALSE ? C_TRUE : c;
    }
    if (n->kind != N_BINARY)
        return C_OTHER;
    if (n->op == OP_AND || n->op == OP_OR) {
        Const l = eval(n->lhs), r = eval(n->rhs);
        if (l == C_OTHER || r == C_OTHER)
            return C_OTHER;
        return n->op == OP_AND ? of_bool(l == C_TRUE && r == C_TRUE)
                               : of_bool(l == C_TRUE || r == C_TRUE);
    }
    if (num_of(n->lhs, &a) && num_of(n->rhs, &b)) {
        switch (n->op) {
        case OP_EQ: return of_bool(a == b);
        case OP_NE: return of_bool(a != b);
        case OP_LT: return of_bool(a < b);
        case OP_LE: return of_bool(a <= b);
        case OP_GT: return of_bool(a > b);
        case OP_GE: return of_bool(a >= b);
        default: return C_OTHER;
        }
    }
    if ((n->op == OP_EQ || n->op == OP_NE) && is_enum_value(n->lhs) && is_enum_value(n->rhs)) {
        bool same = strcmp(n->lhs->name, n->rhs->name) == 0;
        return of_bool(n->op == OP_EQ ? same : !same);
    }
    return C_OTHER;
}

/* cond of an 'if' or a 'where' (what names it). */
static void check_condition(Node *cond, const char *what)
{
    if (!cond || !constant(cond))
        return;
    Const c = eval(cond);
    if (c == C_TRUE || c == C_FALSE)
        diag_warning(cond->span, W0010, "the condition of this '%s' is always %s", what,
                     c == C_TRUE ? "true" : "false");
    else
        diag_warning(cond->span, W0010, "the condition of this '%s' is constant", what);
    if (strcmp(what, "where") == 0)
        diag_help(c == C_FALSE ? "no item passes it" : "remove the 'where'");
    else
        diag_help(c == C_TRUE ? "remove the 'if' and keep its body"
                  : c == C_FALSE ? "its body never runs; remove it" : "remove the 'if'");
}

/* ---- the walk ---------------------------------------------------------------------- */

static void walk(Node *n, bool used);

/* What a statement that never finishes is, for the unreachable note. */
static const char *never_what(Node *s)
{
    switch (s->kind) {
    case N_RETURN: return "'return'";
    case N_SKIP: return "'skip'";
    case N_BREAK: return "'break'";
    case N_CALL:
        if (is_builtin(s, B_FAIL))
            return "'fail'";
        if (is_builtin(s, B_ESCALATE))
            return "'escalate'";
        return "this call";
    default: return "this statement";
    }
}

static void unused_value(Node *s, Node *prev)
{
    diag_warning(s->span, W0001, "the value of %s is never used", quoted(s));
    if (s->kind == N_UNARY && s->op == OP_NEG && prev && starts_line(s->span)
        && line_of(prev->span) < line_of(s->span)) {
        Span end = prev->span;
        end.lo = end.hi > end.lo ? end.hi - 1 : end.hi;
        diag_note(end, "the statement before it ends here");
        diag_help("an operator at the start of a line does not continue the previous line; "
                  "to subtract, put '-' at the end of line %d", line_of(end));
    }
}

/* block -> '{' stmt* '}': the last statement is used only if the block is. */
static void walk_stmts(Vec *stmts, bool used)
{
    bool told = false;
    for (int i = 0; i < stmts->len; i++) {
        Node *s = stmts->items[i];
        Node *prev = i ? stmts->items[i - 1] : NULL;
        bool s_used = used && i == stmts->len - 1;
        if (prev && !told && prev->type && prev->type->kind == TY_NEVER) {
            diag_warning(s->span, W0009, "unreachable code");
            Span at = prev->span;
            if (at.hi - at.lo > 6)
                at.hi = at.lo + 6;
            diag_note(at, "nothing runs after %s", never_what(prev));
            diag_help("remove the code after it, or move it before");
            told = true;
        }
        if (!s_used && pure(s))
            unused_value(s, prev);
        walk(s, s_used);
    }
}

static void walk_list(Vec *v)
{
    for (int i = 0; i < v->len; i++)
        walk(v->items[i], true);
}

static void walk_settings(Vec *v)
{
    for (int i = 0; i < v->len; i++)
        walk(((Setting *)v->items[i])->value, true);
}

static void walk(Node *n, bool used)
{
    if (!n)
        return;
    switch (n->kind) {
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            walk(((StrPart *)n->parts.items[i])->expr, true);
        break;
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            walk(((FieldInit *)n->inits.items[i])->value, true);
        break;
    case N_BLOCK:
        walk_stmts(&n->stmts, used);
        break;
    case N_PARBLOCK:
        walk_stmts(&n->stmts, false);
        break;
    case N_IF:
        check_condition(n->cond, "if");
        walk(n->cond, true);
        walk(n->then, used && n->els);
        walk(n->els, used);
        break;
    case N_MATCH:
        walk(n->lhs, true);
        for (int i = 0; i < n->arms.len; i++)
            walk(((MatchArm *)n->arms.items[i])->body, used);
        break;
    case N_FOR:
        walk(n->iter, true);
        walk_settings(&n->opts);
        check_condition(n->cond, "where");
        walk(n->cond, true);
        walk(n->body, used);
        break;
    case N_PIPELINE:
        walk(n->iter, true);
        walk_settings(&n->opts);
        for (int i = 0; i < n->stmts.len; i++)
            walk(((Node *)n->stmts.items[i])->body, true);
        break;
    case N_LOOP:
        walk(n->body, false);
        walk(n->els, false);
        break;
    case N_PHASE:
        walk(n->body, false);
        break;
    default:
        walk(n->lhs, true);
        walk(n->operand, true);
        walk(n->rhs, true);
        walk_list(&n->args);
        walk(n->value, true);
        break;
    }
}

/* ---- locals ------------------------------------------------------------------------- */

static bool quiet_name(const char *name)
{
    return name[0] == '_';
}

static void unused_let(Node *n)
{
    Sym *s = n->sym;
    if (!s || s->reads || quiet_name(s->name))
        return;
    diag_warning(n->name_span, W0002, s->assigned ? "'%s' is assigned but never read"
                 : "'%s' is never used", s->name);
    diag_help("name it '_%s' if it is meant to be unused", s->name);
    diag_fixit(n->name_span, arena_printf("_%s", s->name));
}

static void shadowing_let(Node *n)
{
    Sym *s = n->sym;
    if (!s || !s->hides)
        return;
    diag_warning(n->name_span, W0008, "'%s' shadows the outer '%s'", s->name, s->name);
    diag_note(s->hides->span, "the outer '%s' is declared here", s->name);
    diag_help("give one of them another name");
}

/* Every `let` in a body: unused or shadowing. */
static void lets(Node *n)
{
    if (!n)
        return;
    if (n->kind == N_LET) {
        unused_let(n);
        shadowing_let(n);
    }
    lets(n->lhs);
    lets(n->rhs);
    lets(n->operand);
    lets(n->iter);
    lets(n->cond);
    lets(n->then);
    lets(n->els);
    lets(n->body);
    lets(n->value);
    for (int i = 0; i < n->args.len; i++)
        lets(n->args.items[i]);
    for (int i = 0; i < n->stmts.len; i++)
        lets(n->stmts.items[i]);
    for (int i = 0; i < n->arms.len; i++)
        lets(((MatchArm *)n->arms.items[i])->body);
    for (int i = 0; i < n->inits.len; i++)
        lets(((FieldInit *)n->inits.items[i])->value);
    for (int i = 0; i < n->parts.len; i++)
        lets(((StrPart *)n->parts.items[i])->expr);
}

static const char *kebab(const char *name)
{
    char *s = arena_strdup(name);
    for (char *p = s; *p; p++)
        if (*p == '_')
            *p = '-';
    return s;
}

static void unused_params(Decl *d)
{
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        Sym *s = f->sym;
        if (!s || s->reads || f->in_budget || quiet_name(f->name))
            continue;
        if (d->kind == D_AGENT) {
            diag_warning(f->span, W0003, "parameter '%s' of agent '%s' is never used", f->name,
                         d->name);
            diag_help("mention it in the prompt ('{{ %s }}'), or remove it", f->name);
        } else if (d->kind == D_HTTP) {
            diag_warning(f->span, W0003, "parameter '%s' of http operation '%s' is never used",
                         f->name, d->name);
            diag_help("use it in the url, a header or the body, or remove it");
        } else {
            diag_warning(f->span, W0003, "parameter '%s' of workflow '%s' is never used", f->name,
                         d->name);
            diag_help("its flag --%s changes nothing; use it, or remove it", kebab(f->name));
        }
    }
}

/* ---- declarations the workflow reaches ------------------------------------------------ */

static bool marked(Decl *d)
{
    return km_get(&L.marked, d) != NULL;
}

static void mark_decl(Decl *d);

static void mark_type(Type *t)
{
    while (t && (t->kind == TY_LIST || t->kind == TY_OPT))
        t = t->elem;
    if (t && (t->kind == TY_SCHEMA || t->kind == TY_ENUM))
        mark_decl(t->decl);
}

/* The first model of that name (a map made on first use). */
static Decl *model_named(const char *name)
{
    if (!L.models.str) {
        L.models.str = true;
        for (int i = 0; i < L.prog->decls.len; i++) {
            Decl *d = L.prog->decls.items[i];
            if (d->kind == D_MODEL && d->name && !km_get(&L.models, d->name))
                km_put(&L.models, d->name, d);
        }
    }
    return name ? km_get(&L.models, name) : NULL;
}

static void mark_node(Node *n)
{
    if (!n)
        return;
    mark_type(n->type);
    if (n->decl)
        mark_decl(n->decl);
    if (n->using_model)
        mark_decl(model_named(n->using_model));
    mark_node(n->lhs);
    mark_node(n->rhs);
    mark_node(n->operand);
    mark_node(n->iter);
    mark_node(n->cond);
    mark_node(n->then);
    mark_node(n->els);
    mark_node(n->body);
    mark_node(n->value);
    for (int i = 0; i < n->args.len; i++)
        mark_node(n->args.items[i]);
    for (int i = 0; i < n->stmts.len; i++)
        mark_node(n->stmts.items[i]);
    for (int i = 0; i < n->arms.len; i++) {
        MatchArm *a = n->arms.items[i];
        for (int j = 0; j < a->pats.len; j++)
            mark_node(a->pats.items[j]);
        mark_node(a->body);
    }
    for (int i = 0; i < n->inits.len; i++)
        mark_node(((FieldInit *)n->inits.items[i])->value);
    for (int i = 0; i < n->parts.len; i++)
        mark_node(((StrPart *)n->parts.items[i])->expr);
}

/* Marks d reached; what it uses is walked from the queue (walk_marked), so
 * that a chain of thousands of schemas is a long queue, not a deep stack. */
static void mark_decl(Decl *d)
{
    if (!d || marked(d))
        return;
    km_put(&L.marked, d, d);
    vec_push(&L.queue, d);
}

static void mark_uses(Decl *d)
{
    for (int i = 0; i < d->fields.len; i++)
        mark_type(((Field *)d->fields.items[i])->type);
    mark_type(d->ret_type);
    if (d->kind == D_AGENT && d->sema)
        mark_decl(((AgentInfo *)d->sema)->model);
    for (int i = 0; i < d->settings.len; i++)
        mark_node(((Setting *)d->settings.items[i])->value);
    mark_node(d->body);
}

static void unused_decls(Decl *w)
{
    mark_decl(w);
    while (L.queue.len)
        mark_uses(L.queue.items[--L.queue.len]);
    for (int i = 0; i < L.prog->decls.len; i++) {
        Decl *d = L.prog->decls.items[i];
        if (d->file != L.root || marked(d) || !d->name || quiet_name(d->name))
            continue;
        switch (d->kind) {
        case D_SCHEMA:
            diag_warning(d->name_span, W0004, "schema '%s' is not used by workflow '%s'", d->name,
                         w->name);
            break;
        case D_ENUM:
            diag_warning(d->name_span, W0005, "enum '%s' is not used by workflow '%s'", d->name,
                         w->name);
            break;
        case D_AGENT:
            diag_warning(d->name_span, W0006, "agent '%s' is never called by workflow '%s'",
                         d->name, w->name);
            break;
        case D_MODEL:
            diag_warning(d->name_span, W0007, "model '%s' is not used by workflow '%s'", d->name,
                         w->name);
            break;
        case D_HTTP:
            diag_warning(d->name_span, W0011, "http operation '%s' is never called by workflow "
                         "'%s'", d->name, w->name);
            break;
        default:
            continue;
        }
        diag_help("remove it, or move it to a module that workflows import");
    }
}

/* ---- entry point ---------------------------------------------------------------------------- */

void lint_program(Program *p, int root)
{
    memset(&L, 0, sizeof L);
    L.prog = p;
    L.root = root;
    Decl *w = NULL;
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->file != root)
            continue;
        if (d->kind == D_WORKFLOW && !w)
            w = d;
        if (d->kind == D_AGENT || d->kind == D_HTTP || d->kind == D_WORKFLOW)
            unused_params(d);
        if (d->kind == D_WORKFLOW && d->body) {
            walk(d->body, false);
            lets(d->body);
        }
        if (d->kind == D_AGENT || d->kind == D_HTTP)
            for (int j = 0; j < d->settings.len; j++)
                walk(((Setting *)d->settings.items[j])->value, true);
    }
    if (w)
        unused_decls(w);
}
