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
 * later assignments are covered.  The fixed point is the one of passes over
 * the bindings in source order, but each binding is looked at again only
 * when a variable its value reads becomes unapproved, at the moment such a
 * pass would have looked (a queue ordered by pass and place): linear in the
 * program, where passes were quadratic for a chain of assignments written
 * backwards.  Each unapproved variable remembers the
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
    int index;                                   /* its place in binds */
} Bind;

static Vec binds;                                /* Bind*, in source order */
static Vec writes;                               /* Node*: calls that need approval */
static KeyMap readers;                           /* Sym* -> Vec* of the Binds whose value reads it */

static Node *taint_at(Node *n, Bind *dep);

/* The first of taint_at() over a list (with dep: all of them). */
static Node *taint_vec(Vec *v, Bind *dep)
{
    for (int i = 0; i < v->len; i++) {
        Node *t = taint_at(v->items[i], dep);
        if (t && !dep)
            return t;
    }
    return NULL;
}

/* A variable whose taint dep's value would carry. */
static void reads(Sym *s, Bind *dep)
{
    Vec *v = km_get(&readers, s);
    if (!v) {
        v = arena_alloc(sizeof *v);
        km_put(&readers, s, v);
    }
    if (!v->len || v->items[v->len - 1] != dep)
        vec_push(v, dep);
}

/* The node that makes n's value unapproved (a source, or a name of an
 * unapproved variable), or NULL when n's value is approved.  With dep, the
 * same walk records every variable it would look at as one dep's value
 * reads (readers), and goes on past the first. */
static Node *taint_at(Node *n, Bind *dep)
{
    Node *t;
    if (!n)
        return NULL;
    switch (n->kind) {
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            if ((t = taint_at(((StrPart *)n->parts.items[i])->expr, dep)) && !dep)
                return t;
        return NULL;
    case N_NAME:
        if (dep && n->sym && ((Sym *)n->sym)->kind != SYM_PARAM)
            reads(n->sym, dep);
        return n->sym && ((Sym *)n->sym)->kind != SYM_PARAM && ((Sym *)n->sym)->taint ? n : NULL;
    case N_FIELD:
        return n->builtin == B_ENV ? n : taint_at(n->lhs, dep);
    case N_CALL:
        switch (n->builtin) {
        case B_NONE: return n->decl ? n : NULL;       /* an agent's or an operation's answer */
        case B_APPROVE: return NULL;
        case B_READ_JSONL: case B_READ_CSV: case B_ENV: return n;
        case B_LEN: return taint_vec(&n->args, dep);
        default: return NULL;                         /* no value */
        }
    case N_LIST:
        return taint_vec(&n->args, dep);
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            if ((t = taint_at(((FieldInit *)n->inits.items[i])->value, dep)) && !dep)
                return t;
        return NULL;
    case N_BINARY:
        return (t = taint_at(n->lhs, dep)) && !dep ? t : taint_at(n->rhs, dep);
    case N_UNARY:
        return taint_at(n->operand, dep);
    case N_BLOCK:
        return n->stmts.len ? taint_at(n->stmts.items[n->stmts.len - 1], dep) : NULL;
    case N_IF:
        return (t = taint_at(n->then, dep)) && !dep ? t : taint_at(n->els, dep);
    case N_MATCH:
        for (int i = 0; i < n->arms.len; i++)
            if ((t = taint_at(((MatchArm *)n->arms.items[i])->body, dep)) && !dep)
                return t;
        return NULL;
    case N_FOR:
        return taint_at(n->body, dep);
    case N_PIPELINE:
        return n->stmts.len ? taint_at(((Node *)n->stmts.items[n->stmts.len - 1])->body, dep)
                            : NULL;
    default:
        return NULL;                                  /* literals and statements */
    }
}

/* The node that makes n's value unapproved, or NULL. */
static Node *taint(Node *n)
{
    return taint_at(n, NULL);
}

static void bind(Sym *s, Node *value, Node *at)
{
    if (!s || !value)
        return;
    Bind *b = arena_alloc(sizeof *b);
    b->sym = s, b->value = value, b->at = at, b->index = binds.len;
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

/* A look at a binding, due in a pass, at the binding's place. */
typedef struct Visit {
    long pass;                                   /* 1, 2, ... */
    int index;                                   /* the binding */
} Visit;

static bool visit_before(Visit a, Visit b)
{
    return a.pass < b.pass || (a.pass == b.pass && a.index < b.index);
}

/* A binary heap of Visits, earliest first. */
typedef struct Heap {
    Visit *v;                                    /* the heap */
    int len;                                     /* entries used */
    int cap;                                     /* entries allocated */
} Heap;

static void heap_push(Heap *h, Visit x)
{
    if (h->len == h->cap) {
        int cap = h->cap ? h->cap * 2 : 64;
        Visit *v = arena_alloc(sizeof *v * (size_t)cap);
        if (h->len)
            memcpy(v, h->v, sizeof *v * (size_t)h->len);
        h->v = v, h->cap = cap;
    }
    int i = h->len++;
    for (; i > 0 && visit_before(x, h->v[(i - 1) / 2]); i = (i - 1) / 2)
        h->v[i] = h->v[(i - 1) / 2];
    h->v[i] = x;
}

static Visit heap_pop(Heap *h)
{
    Visit top = h->v[0], last = h->v[--h->len];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && visit_before(h->v[c + 1], h->v[c]))
            c++;
        if (!visit_before(h->v[c], last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->len)
        h->v[i] = last;
    return top;
}

/* Bindings to a fixed point: a variable, once unapproved, stays so.  The
 * result is that of passes over every binding in order until nothing
 * changes; here a binding is looked at in pass 1 and then only when a
 * variable its value reads becomes unapproved (in the same pass if that
 * binding comes later, else in the next), which is when such a pass would
 * first see it change: the same variables, with the same causes. */
static void solve(void)
{
    Heap h = { 0 };
    for (int i = 0; i < binds.len; i++) {
        taint_at(((Bind *)binds.items[i])->value, binds.items[i]);
        heap_push(&h, (Visit){ 1, i });
    }
    while (h.len) {
        Visit at = heap_pop(&h);
        Bind *b = binds.items[at.index];
        if (b->sym->taint)
            continue;
        Node *t = taint(b->value);
        if (!t)
            continue;
        b->sym->taint = t;
        b->sym->taint_via = b->at;
        Vec *rs = km_get(&readers, b->sym);
        for (int k = 0; rs && k < rs->len; k++) {
            Bind *r = rs->items[k];
            if (!r->sym->taint)
                heap_push(&h, (Visit){ r->index > at.index ? at.pass : at.pass + 1, r->index });
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
    readers = (KeyMap){ 0 };
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
