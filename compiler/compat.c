/*
 * compat.c: `flowc compat`, the breaking changes between two versions.
 *
 *   flowc compat [--format=text|json] OLD.flow NEW.flow
 *   flowc compat [--format=text|json] --against GIT_REV FILE...
 *
 * Both versions are loaded and checked.  Then each schema and enum gets its
 * roles in the workflow, from where its values go (a type reaches the
 * schemas and enums of its fields, so a nested record has its parent's
 * roles):
 *   input    outside data the workflow reads (read_jsonl<T>, the answer of an
 *            http operation): an outside system produces it;
 *   output   what the workflow gives out (its return value, write_jsonl, the
 *            request of an http operation): an outside system consumes it;
 *   answer   what an agent answers: the model produces it and the journal
 *            keeps it;
 *   argument what an agent is given (its prompt): internal.
 * A schema or enum of the same name in both versions is compared field by
 * field and value by value, matched by their names in the data (an alias
 * changes one, a rename in the .flow alone does not); whether a schema
 * rejects the fields it does not declare, too; the workflow's parameters
 * (its flags) and its return type.  Every change is classified by role, as `buf breaking`
 * does for protobuf: whether records an outside producer sent before are
 * still accepted (an input's producers), whether an outside consumer still
 * gets what it could handle (an output's consumers), whether the
 * workflow's callers' command lines still work; and, for an agent's answer
 * or an http operation's (which the journal keeps and a resumed run replays
 * without checking them again), whether the answers journaled before still
 * fit, else runs started before the change cannot be resumed.
 *
 * A change that breaks an outside party is an error line (exit 1); one that
 * only strands journaled runs is a warning; a safe change is a note.  The
 * lines are GCC-style (file:line:col, in the new version), for editors and
 * CI problem matchers; --format=json gives the same as one JSON document.
 * --against reads the old version of each FILE (and the files it imports
 * from the repository) with `git cat-file`, run without a shell.
 */
#include "flowc.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- roles --------------------------------------------------------------------- */

enum {
    R_INPUT = 1,                                 /* read from outside */
    R_OUTPUT = 2,                                /* given out */
    R_ANSWER = 4,                                /* an agent's or http operation's answer: journaled */
    R_ARG = 8,                                   /* given to an agent */
};

typedef struct Role {
    Decl *decl;                                  /* the schema or enum */
    int roles;                                   /* R_* */
    const char *input_why;                       /* "read by read_jsonl", ... (first seen) */
    const char *output_why;                      /* "returned by workflow 'w'", ... */
    const char *answer_why;                      /* "the answer of agent 'enrich'" */
} Role;

static Role *role_of(Vec *roles, Decl *d)
{
    for (int i = 0; i < roles->len; i++) {
        Role *r = roles->items[i];
        if (r->decl == d)
            return r;
    }
    Role *r = arena_alloc(sizeof *r);
    r->decl = d;
    vec_push(roles, r);
    return r;
}

/* Gives t, and the schemas and enums inside it, role bit with its reason. */
static void give(Vec *roles, Type *t, int bit, const char *why)
{
    while (t && (t->kind == TY_LIST || t->kind == TY_OPT))
        t = t->elem;
    if (!t || (t->kind != TY_SCHEMA && t->kind != TY_ENUM))
        return;
    Role *r = role_of(roles, t->decl);
    if (r->roles & bit)
        return;
    r->roles |= bit;
    if (bit == R_INPUT)
        r->input_why = why;
    if (bit == R_OUTPUT)
        r->output_why = why;
    if (bit == R_ANSWER)
        r->answer_why = why;
    for (int i = 0; t->kind == TY_SCHEMA && i < t->decl->fields.len; i++)
        give(roles, ((Field *)t->decl->fields.items[i])->type, bit, why);
}

static void roles_of_node(Vec *roles, Node *n);

static void roles_of_list(Vec *roles, Vec *v)
{
    for (int i = 0; i < v->len; i++)
        roles_of_node(roles, v->items[i]);
}

static void roles_of_call(Vec *roles, Node *n)
{
    Decl *d = n->decl;
    if (n->builtin == B_READ_JSONL || n->builtin == B_READ_CSV)
        give(roles, n->type, R_INPUT, arena_printf("read by %s", n->name));
    else if ((n->builtin == B_WRITE_JSONL || n->builtin == B_WRITE_CSV) && n->args.len)
        give(roles, ((Node *)n->args.items[0])->type, R_OUTPUT,
             arena_printf("written by %s", n->name));
    else if (d && d->kind == D_AGENT) {
        give(roles, d->ret_type, R_ANSWER, arena_printf("the answer of agent '%s'", d->name));
        for (int i = 0; i < d->fields.len; i++)
            give(roles, ((Field *)d->fields.items[i])->type, R_ARG, "");
    } else if (d && d->kind == D_HTTP) {
        const char *why = arena_printf("the answer of http operation '%s'", d->name);
        give(roles, d->ret_type, R_INPUT, why);
        give(roles, d->ret_type, R_ANSWER, why);
        for (int i = 0; i < d->fields.len; i++)
            give(roles, ((Field *)d->fields.items[i])->type, R_OUTPUT,
                 arena_printf("sent by http operation '%s'", d->name));
    }
}

static void roles_of_node(Vec *roles, Node *n)
{
    if (!n)
        return;
    if (n->kind == N_CALL)
        roles_of_call(roles, n);
    roles_of_node(roles, n->lhs);
    roles_of_node(roles, n->rhs);
    roles_of_node(roles, n->operand);
    roles_of_node(roles, n->iter);
    roles_of_node(roles, n->cond);
    roles_of_node(roles, n->then);
    roles_of_node(roles, n->els);
    roles_of_node(roles, n->body);
    roles_of_node(roles, n->value);
    roles_of_list(roles, &n->args);
    roles_of_list(roles, &n->stmts);
    for (int i = 0; i < n->arms.len; i++)
        roles_of_node(roles, ((MatchArm *)n->arms.items[i])->body);
    for (int i = 0; i < n->inits.len; i++)
        roles_of_node(roles, ((FieldInit *)n->inits.items[i])->value);
    for (int i = 0; i < n->parts.len; i++)
        roles_of_node(roles, ((StrPart *)n->parts.items[i])->expr);
}

static void roles_of(Vec *roles, Decl *w)
{
    if (!w)
        return;
    if (w->ret_type)
        give(roles, w->ret_type, R_OUTPUT, arena_printf("returned by workflow '%s'", w->name));
    roles_of_node(roles, w->body);
}

/* ---- changes ------------------------------------------------------------------------- */

typedef enum Verdict { V_SAFE, V_BREAKS } Verdict;

/* How a change affects each party; filled by classify(). */
typedef struct Change {
    Span at;                                     /* where, in the new version */
    const char *subject;                         /* "schema 'Lead'", "workflow 'w'" */
    const char *kind;                            /* a stable name: "field-removed", ... */
    const char *what;                            /* "field 'email' is now required" */
    const char *field;                           /* the field, value or parameter, or NULL */
    int roles;                                   /* of the schema */
    bool producers, consumers, callers, journal; /* whom it breaks */
    const char *why;                             /* the sentence saying so */
} Change;

static Vec changes;                              /* Change* */

/* Whom a kind of change breaks: an input's producers, an output's
 * consumers, journaled answers (as producers: an old answer is a record
 * produced before the change). */
typedef struct Rule {
    const char *kind;                            /* the change */
    bool producers;                              /* breaks those who produce it */
    bool consumers;                              /* breaks those who consume it */
} Rule;

static const Rule rules[] = {
    { "field-removed", true, true },             /* a strict schema rejects the field it no longer has */
    { "field-renamed", true, true },
    { "field-added-required", true, false },
    { "field-added-optional", false, false },
    { "field-now-required", true, false },
    { "field-now-optional", false, true },
    { "field-type-changed", true, true },
    { "field-type-widened", false, true },       /* int -> float */
    { "field-type-narrowed", true, false },      /* float -> int */
    { "constraint-tightened", true, false },
    { "constraint-loosened", false, true },
    { "constraint-changed", true, true },
    { "enum-value-removed", true, false },
    { "enum-value-added", false, true },
    { "field-alias-changed", true, true },       /* its name in the data */
    { "field-renamed-in-flow", false, false },   /* the same name in the data */
    { "field-removed-open", false, true },       /* a schema that drops or keeps unknown fields */
    { "extra-now-rejected", true, false },
    { "extra-now-accepted", false, false },
};

static const Rule *rule_of(const char *kind)
{
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(rules[i].kind, kind) == 0)
            return &rules[i];
    return NULL;
}

static void classify(Change *c, Role *old_r, Role *new_r)
{
    const Rule *r = rule_of(c->kind);
    int roles = (old_r ? old_r->roles : 0) | (new_r ? new_r->roles : 0);
    const char *in = new_r && new_r->input_why ? new_r->input_why : old_r ? old_r->input_why : NULL;
    const char *out = new_r && new_r->output_why ? new_r->output_why : old_r ? old_r->output_why : NULL;
    const char *ans = new_r && new_r->answer_why ? new_r->answer_why : old_r ? old_r->answer_why : NULL;
    c->roles = roles;
    if (!r)
        return;
    c->producers = r->producers && (roles & R_INPUT);
    c->consumers = r->consumers && (roles & R_OUTPUT);
    c->journal = r->producers && (roles & R_ANSWER);
    const char *why = "";
    if (c->producers)
        why = arena_printf("breaking for its producers (it is %s): records that were valid are "
                           "now rejected", in ? in : "workflow input");
    if (c->consumers)
        why = arena_printf("%s%sbreaking for its consumers (it is %s): they may get what they "
                           "did not before", why, *why ? "; " : "", out ? out : "workflow output");
    if (c->journal)
        why = arena_printf("%s%sruns journaled before it cannot be resumed: %s was journaled "
                           "under the old schema, and a resume replays it unchecked", why,
                           *why ? "; " : "", ans ? ans : "an answer");
    if (!*why)
        why = roles ? "safe" : "safe (the workflow does not use it)";
    c->why = why;
}

static Change *change(Span at, const char *subject, const char *kind, const char *field,
                      const char *what)
{
    Change *c = arena_alloc(sizeof *c);
    c->at = at;
    c->subject = subject;
    c->kind = kind;
    c->field = field;
    c->what = what;
    vec_push(&changes, c);
    return c;
}

/* ---- comparing schemas and enums ------------------------------------------------------- */

static Field *field_named(Vec *fields, const char *name)
{
    for (int i = 0; i < fields->len; i++) {
        Field *f = fields->items[i];
        if (f && strcmp(f->name, name) == 0)     /* (NULL: a field already matched) */
            return f;
    }
    return NULL;
}

/* A field's (or enum value's) name in the data: its alias, else its name. */
static const char *wire_of(Field *f)
{
    return f->wire ? f->wire : f->name;
}

static Field *field_wired(Vec *fields, const char *wire)
{
    for (int i = 0; i < fields->len; i++) {
        Field *f = fields->items[i];
        if (f && strcmp(wire_of(f), wire) == 0)
            return f;
    }
    return NULL;
}

/* "'email'", or "'email' ('E-mail' in the data)" */
static const char *shown(Field *f)
{
    return strcmp(wire_of(f), f->name) == 0 ? arena_printf("'%s'", f->name)
                                             : arena_printf("'%s' ('%s' in the data)", f->name, wire_of(f));
}

static bool optional(Type *t)
{
    return t && t->kind == TY_OPT;
}

static Type *bare(Type *t)
{
    return t && t->kind == TY_OPT ? t->elem : t;
}

static const char *type_str(Type *t)
{
    return t ? ty_str(t) : "?";
}

static bool num_of(Node *n, double *v)
{
    if (!n)
        return false;
    if (n->kind == N_INT)
        *v = (double)n->ival;
    else if (n->kind == N_FLOAT)
        *v = n->fval;
    else
        return false;
    return true;
}

static const char *cons_str(Constraint *c)
{
    double lo = 0, hi = 0;
    if (c->kind == CONS_NONE || !num_of(c->lo, &lo) || !num_of(c->hi, &hi))
        return "none";
    return arena_printf("%s %.15g..%.15g", c->kind == CONS_RANGE ? "in" : "len", lo, hi);
}

/* none, tightened, loosened or changed (a different kind, or neither inside the other) */
static const char *cons_change(Constraint *a, Constraint *b)
{
    double alo = -INFINITY, ahi = INFINITY, blo = -INFINITY, bhi = INFINITY;
    if (a->kind == CONS_NONE && b->kind == CONS_NONE)
        return NULL;
    if (a->kind != CONS_NONE && b->kind != CONS_NONE && a->kind != b->kind)
        return "constraint-changed";
    if (a->kind != CONS_NONE && (!num_of(a->lo, &alo) || !num_of(a->hi, &ahi)))
        return NULL;
    if (b->kind != CONS_NONE && (!num_of(b->lo, &blo) || !num_of(b->hi, &bhi)))
        return NULL;
    if (alo == blo && ahi == bhi)
        return NULL;
    if (blo >= alo && bhi <= ahi)
        return "constraint-tightened";
    if (blo <= alo && bhi >= ahi)
        return "constraint-loosened";
    return "constraint-changed";
}

static const char *subject_of(Decl *d)
{
    return arena_printf("%s '%s'", d->kind == D_ENUM ? "enum" : "schema", d->name);
}

static void compare_field(Decl *nd, Field *of, Field *nf, Role *orr, Role *nr)
{
    const char *subj = subject_of(nd);
    Type *ot = of->type, *nt = nf->type;
    Change *c = NULL;
    if (strcmp(type_str(bare(ot)), type_str(bare(nt))) != 0) {
        Type *ob = bare(ot), *nb = bare(nt);
        const char *kind = ob && nb && ob->kind == TY_INT && nb->kind == TY_FLOAT ? "field-type-widened"
                           : ob && nb && ob->kind == TY_FLOAT && nb->kind == TY_INT ? "field-type-narrowed"
                           : "field-type-changed";
        c = change(nf->span, subj, kind, nf->name,
                   arena_printf("field '%s' changed type from %s to %s", nf->name, type_str(ot),
                                type_str(nt)));
        classify(c, orr, nr);
    } else if (optional(ot) != optional(nt)) {
        c = change(nf->span, subj, optional(nt) ? "field-now-optional" : "field-now-required",
                   nf->name, arena_printf("field '%s' is now %s (it was %s)", nf->name,
                                          optional(nt) ? "optional" : "required",
                                          optional(ot) ? "optional" : "required"));
        classify(c, orr, nr);
    }
    const char *k = cons_change(&of->cons, &nf->cons);
    if (k) {
        c = change(nf->cons.kind != CONS_NONE ? nf->cons.span : nf->span, subj, k, nf->name,
                   arena_printf("the constraint of field '%s' changed from %s to %s", nf->name,
                                cons_str(&of->cons), cons_str(&nf->cons)));
        classify(c, orr, nr);
    }
}

static const char *where_was(Span sp)
{
    Source *s = src_get(sp.file);
    int line, col;
    src_linecol(sp, &line, &col);
    return s ? arena_printf("%s:%d:%d", s->path, line, col) : "?";
}

static void compare_extra(Decl *od, Decl *nd, Role *orr, Role *nr)
{
    if ((od->extra == EXTRA_REJECT) == (nd->extra == EXTRA_REJECT))
        return;
    bool now_rejects = nd->extra == EXTRA_REJECT;
    Change *c = change(nd->name_span, subject_of(nd),
                       now_rejects ? "extra-now-rejected" : "extra-now-accepted", NULL,
                       now_rejects ? "fields it does not declare are now rejected"
                                   : arena_printf("fields it does not declare are now %s",
                                                  nd->extra == EXTRA_DROP ? "dropped" : "kept"));
    classify(c, orr, nr);
}

/* Fields are matched by their name in the data (an alias changes it, a
 * rename in the .flow alone does not). */
static void compare_schema(Decl *od, Decl *nd, Role *orr, Role *nr)
{
    const char *subj = subject_of(nd);
    Vec removed = { 0 }, added = { 0 };
    compare_extra(od, nd, orr, nr);
    for (int i = 0; i < od->fields.len; i++) {
        Field *of = od->fields.items[i];
        Field *nf = field_wired(&nd->fields, wire_of(of));
        if (nf) {
            if (strcmp(of->name, nf->name) != 0)
                classify(change(nf->span, subj, "field-renamed-in-flow", nf->name,
                                arena_printf("field '%s' is now called '%s' in the .flow (its name "
                                             "in the data, '%s', is the same)", of->name, nf->name,
                                             wire_of(nf))), orr, nr);
            compare_field(nd, of, nf, orr, nr);
        } else {
            vec_push(&removed, of);
        }
    }
    for (int i = 0; i < nd->fields.len; i++) {
        Field *nf = nd->fields.items[i];
        if (!field_wired(&od->fields, wire_of(nf)))
            vec_push(&added, nf);
    }
    /* a field whose name in the data changed: its alias, or a rename */
    for (int i = 0; i < removed.len; i++) {
        Field *of = removed.items[i];
        Field *nf = field_named(&added, of->name);
        if (!nf && removed.len == 1 && added.len == 1 && added.items[0]
            && strcmp(type_str(of->type), type_str(((Field *)added.items[0])->type)) == 0)
            nf = added.items[0];
        if (!nf)
            continue;
        bool alias = strcmp(of->name, nf->name) == 0;
        classify(change(nf->span, subj, alias ? "field-alias-changed" : "field-renamed", nf->name,
                        alias ? arena_printf("field '%s' is now '%s' in the data (it was '%s')",
                                             nf->name, wire_of(nf), wire_of(of))
                              : arena_printf("field %s was renamed %s", shown(of), shown(nf))),
                 orr, nr);
        compare_field(nd, of, nf, orr, nr);
        removed.items[i] = NULL;
        for (int k = 0; k < added.len; k++)
            if (added.items[k] == nf)
                added.items[k] = NULL;
    }
    for (int i = 0; i < removed.len; i++) {
        Field *of = removed.items[i];
        if (!of)
            continue;
        Change *c = change(nd->name_span, subj,
                           nd->extra == EXTRA_REJECT ? "field-removed" : "field-removed-open",
                           of->name, arena_printf("field %s was removed (it was at %s)", shown(of),
                                                  where_was(of->span)));
        classify(c, orr, nr);
    }
    for (int i = 0; i < added.len; i++) {
        Field *nf = added.items[i];
        if (!nf)
            continue;
        bool opt = optional(nf->type);
        Change *c = change(nf->span, subj, opt ? "field-added-optional" : "field-added-required",
                           nf->name, arena_printf("field %s was added, %s", shown(nf),
                                                  opt ? "optional" : "required"));
        classify(c, orr, nr);
    }
}

/* Values are matched by their name in the data, as fields are. */
static void compare_enum(Decl *od, Decl *nd, Role *orr, Role *nr)
{
    const char *subj = subject_of(nd);
    for (int i = 0; i < od->values.len; i++) {
        Field *ov = od->values.items[i];
        if (!field_wired(&nd->values, wire_of(ov))) {
            Change *c = change(nd->name_span, subj, "enum-value-removed", ov->name,
                               arena_printf("value %s was removed", shown(ov)));
            classify(c, orr, nr);
        }
    }
    for (int i = 0; i < nd->values.len; i++) {
        Field *nv = nd->values.items[i];
        if (!field_wired(&od->values, wire_of(nv))) {
            Change *c = change(nv->span, subj, "enum-value-added", nv->name,
                               arena_printf("value %s was added", shown(nv)));
            classify(c, orr, nr);
        }
    }
}

/* ---- the workflow's signature ------------------------------------------------------------ */

static const char *flag_of(const char *name)
{
    char *s = arena_printf("--%s", name);
    for (char *p = s + 2; *p; p++)
        if (*p == '_')
            *p = '-';
    return s;
}

static bool required_param(Field *f)
{
    return !f->deflt && !optional(f->type);
}

static Change *signature_change(Span at, Decl *w, const char *kind, const char *field,
                                const char *what, bool breaks, const char *why)
{
    Change *c = change(at, arena_printf("workflow '%s'", w->name), kind, field, what);
    c->callers = breaks;
    c->why = why;
    return c;
}

static void compare_params(Decl *ow, Decl *nw)
{
    for (int i = 0; i < ow->fields.len; i++) {
        Field *of = ow->fields.items[i];
        Field *nf = field_named(&nw->fields, of->name);
        if (!nf) {
            signature_change(nw->name_span, nw, "parameter-removed", of->name,
                             arena_printf("parameter '%s' was removed", of->name), true,
                             arena_printf("breaking for its callers: %s is now an unknown flag",
                                          flag_of(of->name)));
        } else if (strcmp(type_str(bare(of->type)), type_str(bare(nf->type))) != 0) {
            bool widen = bare(of->type)->kind == TY_INT && bare(nf->type)->kind == TY_FLOAT;
            signature_change(nf->span, nw, "parameter-type-changed", nf->name,
                             arena_printf("parameter '%s' changed type from %s to %s", nf->name,
                                          type_str(of->type), type_str(nf->type)),
                             !widen, widen ? "safe: every value it took is still taken"
                             : arena_printf("breaking for its callers: values of %s they pass "
                                            "may be refused", flag_of(nf->name)));
        } else if (required_param(nf) && !required_param(of)) {
            signature_change(nf->span, nw, "parameter-now-required", nf->name,
                             arena_printf("parameter '%s' is now required", nf->name), true,
                             arena_printf("breaking for its callers: a run without %s is refused",
                                          flag_of(nf->name)));
        }
    }
    for (int i = 0; i < nw->fields.len; i++) {
        Field *nf = nw->fields.items[i];
        if (field_named(&ow->fields, nf->name))
            continue;
        bool req = required_param(nf);
        signature_change(nf->span, nw, req ? "parameter-added-required" : "parameter-added-optional",
                         nf->name, arena_printf("parameter '%s' was added%s", nf->name,
                                                req ? ", required" : ""),
                         req, req ? arena_printf("breaking for its callers: a run without %s is "
                                                 "refused", flag_of(nf->name))
                         : "safe: callers need not pass it");
    }
}

static void compare_workflows(Decl *ow, Decl *nw)
{
    if (!ow || !nw)
        return;
    if (strcmp(ow->name, nw->name) != 0) {
        Change *c = signature_change(nw->name_span, nw, "workflow-renamed", NULL,
                                     arena_printf("workflow '%s' was renamed '%s'", ow->name,
                                                  nw->name), false,
                                     "its journal is now another file (.flow/<workflow>.db): "
                                     "runs journaled before the change cannot be resumed");
        c->journal = true;
    }
    compare_params(ow, nw);
    const char *ot = ow->ret_type ? type_str(ow->ret_type) : "nothing";
    const char *nt = nw->ret_type ? type_str(nw->ret_type) : "nothing";
    if (strcmp(ot, nt) != 0)
        signature_change(nw->ret ? nw->ret->span : nw->name_span, nw, "return-type-changed",
                         NULL, arena_printf("its return type changed from %s to %s", ot, nt), true,
                         "breaking for the consumers of its output");
}

/* ---- one comparison -------------------------------------------------------------------------- */

static Decl *decl_named(Program *p, const char *name, DeclKind k)
{
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == k && d->name && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

static Role *find_role(Vec *roles, Decl *d)
{
    for (int i = 0; d && i < roles->len; i++) {
        Role *r = roles->items[i];
        if (r->decl == d)
            return r;
    }
    return NULL;
}

static void compare_programs(Program *op, Program *np)
{
    Vec oroles = { 0 }, nroles = { 0 };
    Decl *ow = sema_workflow(op), *nw = sema_workflow(np);
    roles_of(&oroles, ow);
    roles_of(&nroles, nw);
    for (int i = 0; i < np->decls.len; i++) {
        Decl *nd = np->decls.items[i];
        if (nd->kind != D_SCHEMA && nd->kind != D_ENUM)
            continue;
        Decl *od = decl_named(op, nd->name, nd->kind);
        if (!od)
            continue;
        Role *orr = find_role(&oroles, od), *nr = find_role(&nroles, nd);
        if (nd->kind == D_SCHEMA)
            compare_schema(od, nd, orr, nr);
        else
            compare_enum(od, nd, orr, nr);
    }
    compare_workflows(ow, nw);
}

/* ---- output ------------------------------------------------------------------------------------ */

static bool breaking(Change *c)
{
    return c->producers || c->consumers || c->callers;
}

static void sort_changes(void)
{
    for (int i = 1; i < changes.len; i++) {
        Change *c = changes.items[i];
        int j = i;
        while (j > 0) {
            Change *p = changes.items[j - 1];
            if (p->at.file < c->at.file || (p->at.file == c->at.file && p->at.lo <= c->at.lo))
                break;
            changes.items[j] = p;
            j--;
        }
        changes.items[j] = c;
    }
}

static void print_text(FILE *out)
{
    for (int i = 0; i < changes.len; i++) {
        Change *c = changes.items[i];
        Source *s = src_get(c->at.file);
        int line, col;
        src_linecol(c->at, &line, &col);
        const char *sev = breaking(c) ? "error" : c->journal ? "warning" : "note";
        fprintf(out, "%s:%d:%d: %s: %s: %s; %s [compat-%s]\n", s ? s->path : "?", line, col, sev,
                c->subject, c->what, c->why, c->kind);
    }
}

static void json_s(FILE *out, const char *s)
{
    if (s)
        json_put_str(out, s, strlen(s));
    else
        fputs("null", out);
}

static void print_json_changes(FILE *out)
{
    for (int i = 0; i < changes.len; i++) {
        Change *c = changes.items[i];
        Source *s = src_get(c->at.file);
        int line, col;
        src_linecol(c->at, &line, &col);
        fputs(i ? ",\n  {" : "\n  {", out);
        fputs("\"file\":", out);
        json_s(out, s ? s->path : NULL);
        fprintf(out, ",\"line\":%d,\"column\":%d,\"subject\":", line, col);
        json_s(out, c->subject);
        fputs(",\"kind\":", out);
        json_s(out, c->kind);
        fputs(",\"name\":", out);
        json_s(out, c->field);
        fputs(",\"roles\":[", out);
        const char *names[] = { "input", "output", "answer", "argument" };
        int k = 0;
        for (int b = 0; b < 4; b++)
            if (c->roles & (1 << b))
                fprintf(out, "%s\"%s\"", k++ ? "," : "", names[b]);
        fprintf(out, "],\"breaks\":{\"producers\":%s,\"consumers\":%s,\"callers\":%s,"
                "\"journaled_runs\":%s},\"breaking\":%s,\"message\":",
                c->producers ? "true" : "false", c->consumers ? "true" : "false",
                c->callers ? "true" : "false", c->journal ? "true" : "false",
                breaking(c) ? "true" : "false");
        json_s(out, arena_printf("%s: %s; %s", c->subject, c->what, c->why));
        fputc('}', out);
    }
}

/* ---- git ------------------------------------------------------------------------------------------ */

/* Runs argv (no shell), its stdout into *out; its exit status, -1 if it
 * could not run.  Its stderr's last line goes to *err. */
static int run_capture(char *const argv[], char **out, size_t *out_len, const char **err)
{
    int po[2], pe[2];
    if (pipe(po) < 0)
        return -1;
    if (pipe(pe) < 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char *buf = NULL, ebuf[1024];
    size_t len = 0, elen = 0;
    FILE *f = arena_memstream(&buf, &len);
    struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
    int open_fds = 2;
    while (open_fds > 0) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            char tmp[8192];
            ssize_t n = read(fds[i].fd, tmp, sizeof tmp);
            if (n <= 0) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            } else if (i == 0) {
                fwrite(tmp, 1, (size_t)n, f);
            } else {
                size_t k = (size_t)n < sizeof ebuf - 1 - elen ? (size_t)n : sizeof ebuf - 1 - elen;
                memcpy(ebuf + elen, tmp, k);
                elen += k;
            }
        }
    }
    fclose(f);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    while (elen && (ebuf[elen - 1] == '\n' || ebuf[elen - 1] == '\r'))
        elen--;
    ebuf[elen] = '\0';
    const char *last = strrchr(ebuf, '\n');
    *err = arena_strdup(last ? last + 1 : ebuf);
    *out = buf;
    *out_len = len;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --against REV: files inside the work tree are read from the revision. */
typedef struct Git {
    const char *rev;                             /* the revision */
    const char *top;                             /* the work tree's real path */
} Git;

/* The path relative to the work tree, or NULL when it is outside. */
static const char *in_tree(Git *g, const char *path)
{
    char real[PATH_MAX];
    const char *slash = strrchr(path, '/');
    const char *dir = slash ? arena_strndup(path, (size_t)(slash - path)) : ".";
    if (slash == path)
        dir = "/";
    if (!realpath(dir, real))
        return NULL;
    size_t n = strlen(g->top);
    if (strncmp(real, g->top, n) != 0 || (real[n] != '/' && real[n] != '\0'))
        return NULL;
    const char *rel = real[n] ? real + n + 1 : "";
    return arena_printf("%s%s%s", rel, *rel ? "/" : "", slash ? slash + 1 : path);
}

static int git_blob(Git *g, const char *rel, char **text, size_t *len, const char **err)
{
    char *argv[] = { "git", "--no-pager", "-C", (char *)g->top, "cat-file", "blob",
                     "--end-of-options", arena_printf("%s:%s", g->rev, rel), NULL };
    return run_capture(argv, text, len, err);
}

static int git_read(void *ctx, const char *path, char **text, size_t *len, const char **err)
{
    Git *g = ctx;
    const char *rel = in_tree(g, path);
    if (!rel)
        return 0;
    int st = git_blob(g, rel, text, len, err);
    if (st != 0) {
        free(*text);
        *text = NULL;
        return -1;
    }
    return 1;
}

static int git_exists(void *ctx, const char *path)
{
    Git *g = ctx;
    const char *rel = in_tree(g, path);
    if (!rel)
        return -1;
    char *text = NULL;
    size_t len = 0;
    const char *err = NULL;
    int st = git_blob(g, rel, &text, &len, &err);
    free(text);
    return st == 0;
}

static const char *git_display(void *ctx, const char *path)
{
    Git *g = ctx;
    const char *rel = in_tree(g, path);
    return rel ? arena_printf("%s:%s", g->rev, rel) : path;
}

/* A revision git will take as one (not an option, no control characters). */
static bool sane_rev(const char *rev)
{
    if (!*rev || rev[0] == '-')
        return false;
    for (const char *p = rev; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* ---- flowc compat ---------------------------------------------------------------------------------- */

static const char compat_usage[] =
    "usage: flowc compat [--format=text|json] OLD.flow NEW.flow\n"
    "       flowc compat [--format=text|json] --against GIT_REV FILE...\n"
    "\n"
    "Reports the changes to schemas, enums and the workflow's signature between\n"
    "two versions, each classified by whom it breaks: an input's producers, an\n"
    "output's consumers, the workflow's callers, or runs journaled before it.\n"
    "Exit 0: nothing breaks; 1: a breaking change (or a version that does not\n"
    "check); 2: bad usage.  --against reads the old version from git.\n";

/* Loads one version; false after its errors (printed). */
static bool load_version(Program *p, char *path)
{
    return flowc_load(p, &path, 1);
}

static int compare_files(char *old_path, char *new_path, const FlowcReader *old_reader)
{
    Program *op = arena_alloc(sizeof *op), *np = arena_alloc(sizeof *np);
    flowc_set_reader(old_reader);
    bool ok = load_version(op, old_path);
    flowc_set_reader(NULL);
    ok &= load_version(np, new_path);
    if (!ok)
        return 1;
    compare_programs(op, np);
    return 0;
}

int cmd_compat(int argc, char **argv)
{
    bool json = false;
    const char *rev = NULL;
    Vec files = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--format=json") == 0 || strcmp(a, "--format=text") == 0)
            json = strcmp(a, "--format=json") == 0;
        else if (strcmp(a, "--against") == 0 && i + 1 < argc)
            rev = argv[++i];
        else if (strncmp(a, "--against=", 10) == 0)
            rev = a + 10;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(compat_usage, stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "flowc compat: unknown option '%s'\n%s", a, compat_usage);
            return 2;
        } else
            vec_push(&files, argv[i]);
    }
    if (rev && !sane_rev(rev)) {
        fprintf(stderr, "flowc compat: '%s' is not a revision\n", rev);
        return 2;
    }
    if (!rev && files.len != 2) {
        fprintf(stderr, "flowc compat: give the old and the new version\n%s", compat_usage);
        return 2;
    }
    if (rev && !files.len) {                     /* a CI step whose diff has no .flow file */
        printf("no file to compare against %s\n", rev);
        return 0;
    }
    memset(&changes, 0, sizeof changes);
    diag_option("-Wnone");                       /* the versions' warnings are not the question */
    int status = 0;
    Vec olds = { 0 }, news = { 0 };
    if (!rev) {
        status |= compare_files(files.items[0], files.items[1], NULL);
        vec_push(&olds, files.items[0]);
        vec_push(&news, files.items[1]);
    } else {
        char *top = NULL;
        size_t len = 0;
        const char *err = NULL;
        char *gargv[] = { "git", "rev-parse", "--show-toplevel", NULL };
        if (run_capture(gargv, &top, &len, &err) != 0 || !len) {
            fprintf(stderr, "flowc compat: --against needs a git work tree: %s\n", err);
            free(top);
            return 2;
        }
        while (len && (top[len - 1] == '\n' || top[len - 1] == '\r'))
            top[--len] = '\0';
        char real[PATH_MAX];
        Git g = { rev, arena_strdup(realpath(top, real) ? real : top) };
        free(top);
        char *out = NULL;
        char *vargv[] = { "git", "-C", (char *)g.top, "rev-parse", "--verify", "--quiet",
                          "--end-of-options", arena_printf("%s^{commit}", rev), NULL };
        int vst = run_capture(vargv, &out, &len, &err);
        free(out);
        if (vst != 0) {
            fprintf(stderr, "flowc compat: unknown revision '%s'\n", rev);
            return 2;
        }
        FlowcReader r = { git_read, git_exists, git_display, &g };
        for (int i = 0; i < files.len; i++) {
            char *path = files.items[i];
            const char *rel = in_tree(&g, path);
            if (!rel) {
                fprintf(stderr, "flowc compat: %s is not in the git work tree\n", path);
                status = 1;
                continue;
            }
            if (git_exists(&g, path) == 0) {
                if (!json)
                    printf("%s: new since %s: nothing to compare\n", path, rev);
                continue;
            }
            status |= compare_files(path, path, &r);
            vec_push(&olds, (void *)git_display(&g, path));
            vec_push(&news, path);
        }
    }
    if (status && !changes.len)
        return 1;                                /* a version did not check: said already */
    sort_changes();
    int nbreak = 0, njournal = 0, nsafe = 0;
    for (int i = 0; i < changes.len; i++) {
        Change *c = changes.items[i];
        nbreak += breaking(c);
        njournal += c->journal;
        nsafe += !breaking(c) && !c->journal;
    }
    if (json) {
        fputs("{\"compared\":[", stdout);
        for (int i = 0; i < olds.len; i++) {
            fputs(i ? ",{\"old\":" : "{\"old\":", stdout);
            json_s(stdout, olds.items[i]);
            fputs(",\"new\":", stdout);
            json_s(stdout, news.items[i]);
            fputc('}', stdout);
        }
        fputs("],\"changes\":[", stdout);
        print_json_changes(stdout);
        fprintf(stdout, "%s],\"breaking\":%d,\"unresumable\":%d}\n", changes.len ? "\n" : "",
                nbreak, njournal);
    } else {
        print_text(stdout);
        printf("%d breaking change%s, %d that strand%s journaled runs, %d safe\n", nbreak,
               nbreak == 1 ? "" : "s", njournal, njournal == 1 ? "s" : "", nsafe);
    }
    fflush(stdout);
    if (status)
        return 1;
    return nbreak ? 1 : 0;
}
