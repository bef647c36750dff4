/*
 * sensitive.c: the rule that keeps personal data from models that must not
 * see it.
 *
 * A schema field marked @sensitive holds personal data (an email, a phone
 * number).  A model sees what an agent's prompt and system prompt
 * interpolate, and the results of the tools it calls; each such value is
 * checked here: a sensitive field read in a rendered position, or a value
 * whose type holds one (a record, a list of them, rendered whole as JSON),
 * is an error unless the model is declared with `accepts_sensitive: true`.
 * The error names the field, the path that reaches it and the model.
 * Values that only decide something (a comparison, an `if` condition) or
 * whose length alone is rendered (`len(x)`) reach no model.
 */
#include "flowc.h"

#include <string.h>

/* A sensitive field inside t (records, lists and options of them), with
 * the path to it from t ("contact.email"), or NULL.  depth stops a cycle. */
static Field *sensitive_in(Type *t, const char **path, Decl **owner, int depth)
{
    while (t && (t->kind == TY_OPT || t->kind == TY_LIST))
        t = t->elem;
    if (!t || t->kind != TY_SCHEMA || !t->decl || depth > 16)
        return NULL;
    Vec *fs = &t->decl->fields;
    for (int i = 0; i < fs->len; i++) {
        Field *f = fs->items[i];
        if (f->sensitive) {
            *path = f->name;
            *owner = t->decl;
            return f;
        }
    }
    for (int i = 0; i < fs->len; i++) {
        Field *f = fs->items[i];
        const char *rest;
        Field *g = sensitive_in(f->type, &rest, owner, depth + 1);
        if (g) {
            *path = arena_printf("%s.%s", f->name, rest);
            return g;
        }
    }
    return NULL;
}

bool sens_type_has(Type *t)
{
    const char *p;
    Decl *o;
    return sensitive_in(t, &p, &o, 0) != NULL;
}

/* The field n (an N_FIELD) reads, or NULL. */
static Field *field_of(Node *n)
{
    Type *t = n->lhs ? n->lhs->type : NULL;
    while (t && t->kind == TY_OPT)
        t = t->elem;
    if (!t || t->kind != TY_SCHEMA || !t->decl)
        return NULL;
    for (int i = 0; i < t->decl->fields.len; i++) {
        Field *f = t->decl->fields.items[i];
        if (strcmp(f->name, n->name) == 0)
            return f;
    }
    return NULL;
}

/* The expression as written: "l.contact.email", or "this value". */
static const char *path_of(Node *n)
{
    if (n->kind == N_NAME)
        return n->name;
    if (n->kind == N_FIELD && n->lhs) {
        const char *l = path_of(n->lhs);
        return l ? arena_printf("%s.%s", l, n->name) : NULL;
    }
    return NULL;
}

typedef struct Ctx {
    Decl *agent;                                 /* whose prompt */
    Decl *model;                                 /* the model that would see it */
    Span use;                                    /* where that model was chosen */
    bool own;                                    /* the agent's own model (else `using`) */
    const char *part;                            /* "prompt", "system" */
    int found;                                   /* errors reported */
} Ctx;

static void report(Ctx *c, Node *at, Field *f, Decl *schema, const char *inner)
{
    const char *p = path_of(at);
    const char *shown = arena_printf("%s.%s", schema ? schema->name : "?", f->name);
    const char *via = p ? (inner ? arena_printf("%s.%s", p, inner) : p)
                        : inner ? arena_printf("a value's %s", inner) : "a value";
    Span sp = c->own ? at->span : c->use;
    diag_error(sp, E0918, "the %s of agent '%s' sends sensitive field '%s' (%s) to model '%s', "
               "which is not declared to accept sensitive data", c->part, c->agent->name, shown,
               via, c->model->name);
    diag_note(f->sensitive_span, "'%s' is marked @sensitive here", f->name);
    if (!c->own)
        diag_note(at->span, "the prompt interpolates it here");
    diag_help("leave the field out of the prompt, or, if model '%s' may see personal data (a "
              "self-hosted model, or one under a data processing agreement), declare it with "
              "'accepts_sensitive: true'", c->model->name);
    c->found++;
}

/* A value whose type holds a sensitive field, rendered whole. */
static bool whole(Ctx *c, Node *n)
{
    const char *inner;
    Decl *owner;
    Field *f = sensitive_in(n->type, &inner, &owner, 0);
    if (!f)
        return false;
    report(c, n, f, owner, inner);
    return true;
}

/* Walks n; rendered: its value goes into the text the model reads. */
static void walk(Ctx *c, Node *n, bool rendered)
{
    if (!n || c->found)
        return;
    switch (n->kind) {
    case N_FIELD: {
        Field *f = field_of(n);
        if (rendered && f && f->sensitive) {
            Type *t = n->lhs->type;
            while (t && t->kind == TY_OPT)
                t = t->elem;
            report(c, n, f, t ? t->decl : NULL, NULL);
            return;
        }
        if (rendered && whole(c, n))
            return;
        walk(c, n->lhs, false);
        return;
    }
    case N_BINARY: {
        bool value = n->op == OP_COALESCE || n->op == OP_ADD || n->op == OP_SUB ||
                     n->op == OP_MUL || n->op == OP_DIV;
        walk(c, n->lhs, rendered && value);
        walk(c, n->rhs, rendered && value);
        return;
    }
    case N_UNARY:
        walk(c, n->operand, rendered && n->op == OP_NEG);
        return;
    case N_CALL:                                 /* len(x): only a count is rendered */
        return;
    case N_IF:
        walk(c, n->cond, false);
        walk(c, n->then, rendered);
        walk(c, n->els, rendered);
        return;
    case N_MATCH:
        walk(c, n->lhs, false);
        for (int i = 0; i < n->arms.len; i++)
            walk(c, ((MatchArm *)n->arms.items[i])->body, rendered);
        return;
    case N_LIST:
        for (int i = 0; i < n->args.len; i++)
            walk(c, n->args.items[i], rendered);
        return;
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            walk(c, ((FieldInit *)n->inits.items[i])->value, rendered);
        return;
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            walk(c, ((StrPart *)n->parts.items[i])->expr, rendered);
        return;
    default:
        if (rendered)
            whole(c, n);
        return;
    }
}

static bool accepts(Decl *m)
{
    ModelInfo *mi = m ? m->sema : NULL;
    if (mi && mi->alias_of && mi->alias_of->sema)
        mi = mi->alias_of->sema;
    return !mi || mi->sensitive_ok;
}

void sens_check_agent(Decl *a, Decl *m, Span use)
{
    AgentInfo *ai = a->sema;
    if (!ai || !m || accepts(m))
        return;
    Ctx c = { a, m, use, ai->model == m, "prompt", 0 };
    walk(&c, ai->prompt, true);
    c.part = "system prompt";
    walk(&c, ai->system, true);
    for (int i = 0; i < ai->tools.len && !c.found; i++) {
        Decl *t = ai->tools.items[i];
        const char *inner;
        Decl *owner;
        Field *f = sensitive_in(t->ret_type, &inner, &owner, 0);
        if (!f)
            continue;
        diag_error(c.own ? a->name_span : use, E0918, "tool '%s' of agent '%s' returns sensitive "
                   "field '%s.%s' (its result's %s) to model '%s', which is not declared to accept"
                   " sensitive data", t->name, a->name, owner->name, f->name, inner, m->name);
        diag_note(f->sensitive_span, "'%s' is marked @sensitive here", f->name);
        diag_help("if model '%s' may see personal data (a self-hosted model, or one under a data "
                  "processing agreement), declare it with 'accepts_sensitive: true'", m->name);
        c.found++;
    }
}
