/*
 * approval.c: approval before every write, proved at compile time.
 *
 * An http operation marked `approval: required` may only be called with
 * values a person approved.  This pass runs on the checked workflow and
 * follows where each value comes from, the way a taint analysis does:
 *
 *   sources     agent calls, http calls, read_jsonl(), read_csv(), env(): values no
 *               person looked at;
 *   approved    approve(xs, ...) and what is taken out of its result,
 *               literals, and workflow parameters (typed by whoever runs
 *               the binary);
 *   flow        let and assignment (a variable is approved only if every
 *               value ever bound to it is), a for's or pipeline's item
 *               (from its list), a stage's value (from its body), a
 *               block's, an if's and a match's value (from every branch
 *               and arm), field access, records, lists and operators (from
 *               every operand).
 *
 * Bindings are solved to a fixed point: every variable starts approved and
 * becomes unapproved, for good, when any value bound to it is; so loops and
 * later assignments are covered.  Each unapproved variable remembers the
 * binding that made it so, which gives the notes of the error: the path
 * from the call's argument back to the value's source.
 *
 * Control flow does not carry approval: `if ok { write(x) }` needs x itself
 * approved.
 */
#include "flowc.h"

#include <string.h>

/* One binding: sym takes value (or, for an item, an element of value). */
typedef struct Bind {
    Sym *sym;                                    /* the variable bound */
    Node *value;                                 /* the value, or the list of an item */
    Node *at;                                    /* the let, assignment, loop or stage */
} Bind;

static Vec binds;                                /* Bind*, in source order */
static Vec writes;                               /* Node*: calls that need approval */

static Node *taint(Node *n);

static Node *taint_vec(Vec *v)
{
    for (int i = 0; i < v->len; i++) {
        Node *t = taint(v->items[i]);
        if (t)
            return t;
    }
    return NULL;
}

/* The node that makes n's value unapproved (a source, or a name of an
 * unapproved variable), or NULL when n's value is approved. */
static Node *taint(Node *n)
{
    Node *t;
    if (!n)
        return NULL;
    switch (n->kind) {
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            if ((t = taint(((StrPart *)n->parts.items[i])->expr)))
                return t;
        return NULL;
    case N_NAME:
        return n->sym && ((Sym *)n->sym)->kind != SYM_PARAM && ((Sym *)n->sym)->taint ? n : NULL;
    case N_FIELD:
        return n->builtin == B_ENV ? n : taint(n->lhs);
    case N_CALL:
        switch (n->builtin) {
        case B_NONE: return n->decl ? n : NULL;       /* an agent's or an operation's answer */
        case B_APPROVE: return NULL;
        case B_READ_JSONL: case B_READ_CSV: case B_ENV: return n;
        case B_LEN: return taint_vec(&n->args);
        default: return NULL;                         /* no value */
        }
    case N_LIST:
        return taint_vec(&n->args);
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            if ((t = taint(((FieldInit *)n->inits.items[i])->value)))
                return t;
        return NULL;
    case N_BINARY:
        return (t = taint(n->lhs)) ? t : taint(n->rhs);
    case N_UNARY:
        return taint(n->operand);
    case N_BLOCK:
        return n->stmts.len ? taint(n->stmts.items[n->stmts.len - 1]) : NULL;
    case N_IF:
        return (t = taint(n->then)) ? t : taint(n->els);
    case N_MATCH:
        for (int i = 0; i < n->arms.len; i++)
            if ((t = taint(((MatchArm *)n->arms.items[i])->body)))
                return t;
        return NULL;
    case N_FOR:
        return taint(n->body);
    case N_PIPELINE:
        return n->stmts.len ? taint(((Node *)n->stmts.items[n->stmts.len - 1])->body) : NULL;
    default:
        return NULL;                                  /* literals and statements */
    }
}

static void bind(Sym *s, Node *value, Node *at)
{
    if (!s || !value)
        return;
    Bind *b = arena_alloc(sizeof *b);
    b->sym = s, b->value = value, b->at = at;
    s->taint = NULL;
    s->taint_via = NULL;
    vec_push(&binds, b);
}

static void collect(Node *n);

static void collect_vec(Vec *v)
{
    for (int i = 0; i < v->len; i++)
        collect(v->items[i]);
}

/* Every binding and every call that needs approval under n. */
static void collect(Node *n)
{
    if (!n)
        return;
    switch (n->kind) {
    case N_LET: case N_ASSIGN: bind(n->sym, n->value, n); break;
    case N_FOR: case N_PIPELINE: bind(n->sym, n->iter, n); break;
    case N_STAGE: bind(n->sym, n->body, n); break;
    case N_CALL:
        if (n->decl && n->decl->kind == D_HTTP && n->decl->sema
            && ((HttpInfo *)n->decl->sema)->approval)
            vec_push(&writes, n);
        break;
    default: break;
    }
    for (int i = 0; n->kind == N_STRING && i < n->parts.len; i++)
        collect(((StrPart *)n->parts.items[i])->expr);
    collect(n->lhs);
    collect(n->rhs);
    collect(n->operand);
    collect_vec(&n->args);
    for (int i = 0; i < n->inits.len; i++)
        collect(((FieldInit *)n->inits.items[i])->value);
    collect_vec(&n->stmts);
    collect(n->cond);
    collect(n->then);
    collect(n->els);
    collect(n->body);
    collect(n->iter);
    collect(n->value);
    for (int i = 0; i < n->arms.len; i++)
        collect(((MatchArm *)n->arms.items[i])->body);
}

/* Bindings to a fixed point: a variable, once unapproved, stays so. */
static void solve(void)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (int i = 0; i < binds.len; i++) {
            Bind *b = binds.items[i];
            if (b->sym->taint)
                continue;
            Node *t = taint(b->value);
            if (t) {
                b->sym->taint = t;
                b->sym->taint_via = b->at;
                changed = true;
            }
        }
    }
}

/* What a source is, for the last note. */
static const char *source_what(Node *n)
{
    if (n->kind == N_FIELD)
        return arena_printf("the environment ('env.%s')", n->name);
    switch (n->builtin) {
    case B_READ_JSONL: return "read_jsonl(), a file";
    case B_READ_CSV: return "read_csv(), a file";
    case B_ENV: return "env(), the environment";
    default: break;
    }
    if (n->decl && n->decl->kind == D_AGENT)
        return arena_printf("agent '%s', a model's answer", n->decl->name);
    if (n->decl && n->decl->kind == D_HTTP)
        return arena_printf("http operation '%s', an answer of a server", n->decl->name);
    return "here";
}

/* The notes from an unapproved value back to its source: each variable
 * on the way, where it got its value, and the source itself. */
static void path_notes(Node *t)
{
    for (int depth = 0; t && depth < 8; depth++) {
        if (t->kind != N_NAME) {
            diag_note(t->span, "this value comes from %s, not from approve()", source_what(t));
            return;
        }
        Sym *s = t->sym;
        Node *at = s->taint_via;
        if (!at)
            return;
        bool item = at->kind == N_FOR || at->kind == N_PIPELINE;
        Node *from = item ? at->iter : at->kind == N_STAGE ? at->body : at->value;
        const char *how = item ? "is an item of" : at->kind == N_STAGE ? "is the value of stage"
                          : at->kind == N_ASSIGN ? "is assigned" : "is bound to";
        if (at->kind == N_STAGE)
            diag_note(from->span, "'%s' %s '%s'", s->name, how, at->name);
        else if (from->kind == N_NAME)
            diag_note(from->span, "'%s' %s '%s'", s->name, how, from->name);
        else if (s->taint->kind != N_NAME && s->taint == from) {
            diag_note(from->span, "'%s' %s a value from %s, not from approve()", s->name, how,
                      source_what(from));
            return;
        } else
            diag_note(from->span, "'%s' %s a value that has not passed through approve()",
                      s->name, how);
        t = s->taint;
    }
}

static void check_write(Node *call)
{
    Decl *d = call->decl;
    for (int i = 0; i < call->args.len && i < d->fields.len; i++) {
        Node *a = call->args.items[i];
        Node *t = taint(a);
        if (!t)
            continue;
        Field *p = d->fields.items[i];
        diag_error(a->span, E1208, "http operation '%s' needs approval, but its argument '%s' has "
                   "not passed through approve()", d->name, p->name);
        path_notes(t);
        diag_note(d->name_span, "'%s' is declared with 'approval: required'", d->name);
        diag_help("pass the values through approve() first and write the approved ones: "
                  "'for x in approve(xs, \"title\") { %s(x) }'", d->name);
    }
}

void approval_check(Program *p)
{
    binds = (Vec){ 0 };
    writes = (Vec){ 0 };
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == D_WORKFLOW)
            collect(d->body);
    }
    if (!writes.len)
        return;
    solve();
    for (int i = 0; i < writes.len; i++)
        check_write(writes.items[i]);
}
