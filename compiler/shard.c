/*
 * shard.c: can this workflow run as N shards that `merge` puts back together
 * into exactly what one process would have produced?
 *
 * A workflow asks to be sharded by giving its first fan-out `shard: true`
 * (items by position) or `shard_key: FIELD` (items by a field of theirs).
 * Each shard then runs the whole workflow, but that fan-out takes only the
 * items of its share.  The pass walks the workflow's body in order and
 * holds it to three rules, each reported with its reason:
 *
 *   before the fan-out  every shard runs it, so it must give every shard the
 *                       same values and do nothing that happens once: no
 *                       agent or http call (paid N times, and a model may
 *                       answer each shard differently), no write (N shards
 *                       would write one file), no other fan-out (the sharded
 *                       one is the first), no approve();
 *   the fan-out         at the top level of the workflow or of a phase (a
 *                       statement, a let's value, a return's value), so it
 *                       runs once per shard; its body may do anything an
 *                       item may, but write a file or approve;
 *   after it            its result, and what is made from it item by item,
 *                       is "sharded": each shard holds only its share.  A
 *                       sharded list may only be bound with let, walked by a
 *                       for, parallel for or pipeline at the top level (whose
 *                       result is sharded too), written (each shard writes
 *                       its part) or returned (likewise).  Anything else
 *                       (len, an agent's argument, a record's field, a loop
 *                       inside an item) would see one shard's share and
 *                       differ from one process.  Item bodies may not
 *                       assign a variable from outside the item (state
 *                       carried from item to item), and nothing at the top
 *                       level after the fan-out may call an agent or an
 *                       http operation, or write or return what is not
 *                       sharded: every shard would do it.
 *
 * Aggregates over all the items (a count, a ranking, a report) belong in a
 * final step that reads what `merge` wrote.  Loops over sharded lists are
 * marked (Node.sharded_iter) so the generated code carries each row's
 * position in the first fan-out's input, which `merge` orders by.
 */
#include "flowc.h"

#include <stdint.h>
#include <string.h>

enum { BEFORE, AFTER };

typedef struct Walk {
    int state;                                   /* BEFORE or AFTER the sharded fan-out */
    Node *fanout;                                /* the sharded fan-out */
    Setting *opt;                                /* its shard or shard_key option */
    Vec sharded;                                 /* Sym*: variables holding a shard's share */
    int errors;                                  /* errors reported */
    int nested;                                  /* > 0: below the top level of a phase */
} Walk;

static Walk W;

static Setting *shard_opt(Node *n)
{
    if (n->kind != N_PIPELINE && !(n->kind == N_FOR && n->parallel))
        return NULL;
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (strcmp(s->key, "shard_key") == 0 ||
            (strcmp(s->key, "shard") == 0 && s->value && s->value->kind == N_BOOL &&
             s->value->ival))
            return s;
    }
    return NULL;
}

static bool is_fanout(Node *n)
{
    return n && (n->kind == N_PIPELINE || (n->kind == N_FOR && n->parallel));
}

/* The first node of n's tree (in evaluation order) with a shard option. */
static Node *find_sharded(Node *n);

static void find_visit(void *ctx, Node *n, TypeExpr *t)
{
    (void)t;
    Node **found = ctx;
    if (!*found && n)
        *found = find_sharded(n);
}

static Node *find_sharded(Node *n)
{
    if (!n)
        return NULL;
    if (shard_opt(n))
        return n;
    Node *found = NULL;
    ast_children(n, find_visit, &found);
    return found;
}

static void fail_at(Span sp, const char *help, const char *fmt, const char *a, const char *b)
{
    diag_error(sp, E1401, fmt, a, b);
    if (W.opt)
        diag_note(W.opt->span, "the workflow is sharded here");
    if (help)
        diag_help("%s", help);
    W.errors++;
}

static bool is_sharded_sym(void *sym)
{
    for (int i = 0; sym && i < W.sharded.len; i++)
        if (W.sharded.items[i] == sym)
            return true;
    return false;
}

/* A name of a sharded list. */
static bool sharded_name(Node *n)
{
    return n && n->kind == N_NAME && is_sharded_sym(n->sym);
}

/* A call's span: its name (a call's own span is its whole text). */
static Span nspan(Node *n)
{
    return n->name_span.hi > n->name_span.lo ? n->name_span : n->span;
}

static const char *callee(Node *n)
{
    return n->name ? n->name : "?";
}

/* ---- anywhere: what a node does -------------------------------------------- */

typedef enum Where { TOP, ITEM } Where;

typedef struct Item {
    Vec locals;                                  /* Sym*: declared inside the item */
} Item;

static void walk(Node *n, Where w, Item *it);

static void walk_vec(Vec *v, Where w, Item *it)
{
    for (int i = 0; i < v->len; i++)
        walk(v->items[i], w, it);
}

static bool item_local(Item *it, void *sym)
{
    for (int i = 0; it && i < it->locals.len; i++)
        if (it->locals.items[i] == sym)
            return true;
    return false;
}

/* A call: what it does before, in an item, or after at the top. */
static void walk_call(Node *n, Where w, Item *it)
{
    bool op = n->decl && (n->decl->kind == D_AGENT || n->decl->kind == D_HTTP);
    const char *kind = n->decl && n->decl->kind == D_HTTP ? "http operation" : "agent";
    if (n->builtin == B_APPROVE)
        fail_at(nspan(n), "shards cannot stop for one person's decision: run approve() in a "
                "final step, on what merge wrote", "'approve' in a sharded workflow%s%s", "",
                "");
    else if ((n->builtin == B_WRITE_JSONL || n->builtin == B_WRITE_CSV) && w == ITEM)
        fail_at(nspan(n), "write the fan-out's result after it: each shard then writes its "
                "part", "'%s' inside an item of a sharded workflow: every shard would write "
                "the one file%s", callee(n), "");
    else if ((n->builtin == B_WRITE_JSONL || n->builtin == B_WRITE_CSV) && W.state == BEFORE)
        fail_at(nspan(n), "write after the sharded fan-out, or in a final step",
                "'%s' before the sharded fan-out: every shard would write the one file%s",
                callee(n), "");
    else if (n->builtin == B_WRITE_JSONL || n->builtin == B_WRITE_CSV) {
        Node *xs = n->args.len ? n->args.items[0] : NULL;
        W.nested++;
        if (xs && !sharded_name(xs))
            walk(xs, w, it);
        for (int i = 1; i < n->args.len; i++)
            walk(n->args.items[i], w, it);
        W.nested--;
        if (!sharded_name(xs) && !(xs && xs->sharded_iter && xs != W.fanout))
            fail_at(nspan(n), "write the fan-out's result (or a list made from it item by "
                    "item): each shard writes its part and merge joins them",
                    "'%s' of a list that is not the sharded fan-out's: every shard would "
                    "write the one file%s", callee(n), "");
        return;
    } else if (op && W.state == BEFORE)
        fail_at(nspan(n), "call it inside the sharded fan-out's body, on each item; or shard "
                "a workflow that reads what this one wrote", "%s '%s' is called before the "
                "sharded fan-out: every shard would call it (and pay for it)", kind, callee(n));
    else if (op && w == TOP)
        fail_at(nspan(n), "call it inside a loop over the fan-out's result, on each item; or "
                "in a final step, on what merge wrote", "%s '%s' is called after the sharded "
                "fan-out, outside its items: every shard would call it (and pay for it)",
                kind, callee(n));
    W.nested++;
    walk_vec(&n->args, w, it);
    W.nested--;
}

/* for / parallel for / pipeline over xs */
static void walk_loop(Node *n, Where w, Item *it)
{
    if (shard_opt(n) && n != W.fanout)
        fail_at(shard_opt(n)->key_span, "shard the first fan-out only; the loops after it "
                "over its result run on each shard's share", "only the workflow's first "
                "fan-out is sharded%s%s", "", "");
    bool over_shard = sharded_name(n->iter) || (n->iter && n->iter->sharded_iter);
    if (over_shard && w == ITEM)
        fail_at(n->iter->span, "each shard holds only its share of the items: loop over them "
                "at the top level, or in a final step", "a loop over the sharded list '%s' "
                "inside an item%s", n->iter->kind == N_NAME ? n->iter->name : "(a loop)", "");
    else if (is_fanout(n) && W.state == BEFORE && w == TOP && n != W.fanout)
        fail_at(n->span, "put 'shard: true' or 'shard_key: FIELD' on this fan-out instead, or "
                "move it after the sharded one", "a fan-out before the sharded one: every shard "
                "would run all of its items%s%s", "", "");
    W.nested++;
    if (over_shard && w == TOP) {
        n->sharded_iter = true;
        if (n->iter->kind != N_NAME)
            walk(n->iter, w, it);
    } else {
        walk(n->iter, w, it);
    }
    Item inner = { {0} };
    Where body = over_shard && w == TOP ? ITEM : w;
    Item *bi = body == ITEM ? (w == ITEM ? it : &inner) : it;
    if (bi && n->sym)
        vec_push(&bi->locals, n->sym);
    walk(n->cond, body, bi);
    if (n->kind == N_PIPELINE) {
        for (int i = 0; i < n->stmts.len; i++) {
            Node *st = n->stmts.items[i];
            walk(st->body, body, bi);
            if (bi && st->sym)
                vec_push(&bi->locals, st->sym);
        }
    } else {
        walk(n->body, body, bi);
    }
    W.nested--;
}

static void walk_fanout(Node *n, Item *it)
{
    (void)it;
    W.nested++;
    walk(n->iter, TOP, NULL);              /* still before: the items every shard reads */
    W.state = AFTER;
    n->sharded_iter = true;                /* its result is sharded */
    Item inner = { {0} };
    if (n->sym)
        vec_push(&inner.locals, n->sym);
    walk(n->cond, ITEM, &inner);
    if (n->kind == N_PIPELINE) {
        for (int i = 0; i < n->stmts.len; i++) {
            Node *st = n->stmts.items[i];
            walk(st->body, ITEM, &inner);
            if (st->sym)
                vec_push(&inner.locals, st->sym);
        }
    } else {
        walk(n->body, ITEM, &inner);
    }
    W.nested--;
}

/* let x = e: x is sharded when e is */
static void walk_bind(Node *n, Where w, Item *it)
{
    Node *v = n->value;
    if (v == W.fanout && w == TOP && W.nested == 0) {
        walk_fanout(v, it);
        vec_push(&W.sharded, n->sym);
        return;
    }
    if (v && sharded_name(v) && w == TOP && n->kind == N_LET) {
        vec_push(&W.sharded, n->sym);
        return;
    }
    if (n->kind == N_LET && it)
        vec_push(&it->locals, n->sym);
    if (n->kind == N_ASSIGN && w == ITEM && !item_local(it, n->sym))
        fail_at(n->span, "each shard sees only its share of the items: compute it in a final "
                "step, on what merge wrote", "assigning '%s' from inside an item carries state "
                "from item to item, which shards do not share%s", n->name, "");
    walk(v, w, it);
    if (v && (v->kind == N_FOR || v->kind == N_PIPELINE) && v->sharded_iter && w == TOP &&
        n->kind == N_LET)
        vec_push(&W.sharded, n->sym);
}

static void walk_visit(void *ctx, Node *n, TypeExpr *t)
{
    (void)t;
    void **c = ctx;
    if (n)
        walk(n, (Where)(intptr_t)c[0], c[1]);
}

static void walk(Node *n, Where w, Item *it)
{
    if (!n)
        return;
    if (n == W.fanout) {
        if (w != TOP || W.nested > 0)
            fail_at(n->span, "shard the workflow's first fan-out at the top level of the "
                    "workflow or of a phase: a statement, a let's value or a return's",
                    "the sharded fan-out is nested%s%s", "", "");
        walk_fanout(n, it);
        return;
    }
    switch (n->kind) {
    case N_NAME:
        if (sharded_name(n))
            fail_at(n->span, "a sharded list may be bound with let, walked by a loop at the "
                    "top level, written or returned; anything else belongs in a final step, "
                    "on what merge wrote", "'%s' holds only this shard's items here: what is "
                    "made of it would differ from one process's%s", n->name, "");
        return;
    case N_CALL:
        walk_call(n, w, it);
        return;
    case N_FOR:
    case N_PIPELINE:
        walk_loop(n, w, it);
        return;
    case N_LET:
    case N_ASSIGN:
        walk_bind(n, w, it);
        return;
    case N_RETURN:
        if (w == TOP && W.state == AFTER && n->value && n->value->kind != N_NULL &&
            !sharded_name(n->value) && n->value != W.fanout &&
            !((n->value->kind == N_FOR || n->value->kind == N_PIPELINE) &&
              (sharded_name(n->value->iter) || n->value->iter->sharded_iter)))
            fail_at(n->value->span, "return the fan-out's result, or a list made from it item "
                    "by item: each shard returns its part and merge joins them",
                    "a sharded workflow returns what is not the sharded fan-out's%s%s", "", "");
        if (n->value && sharded_name(n->value))
            return;
        walk(n->value, w, it);
        return;
    case N_PHASE:
        walk(n->body, w, it);
        return;
    case N_BLOCK:
        walk_vec(&n->stmts, w, it);
        return;
    default: {
        void *ctx[2] = { (void *)(intptr_t)w, it };
        W.nested++;
        ast_children(n, walk_visit, ctx);
        W.nested--;
        return;
    }
    }
}

/* shard_key: FIELD names a required string or int field of the items. */
static void check_key(Node *fan, Setting *s)
{
    if (strcmp(s->key, "shard_key") != 0 || !s->value || s->value->kind != N_NAME)
        return;
    Type *lt = fan->iter ? fan->iter->type : NULL;
    Type *et = lt && lt->kind == TY_LIST ? lt->elem : NULL;
    if (!et || et->kind == TY_ERROR)
        return;
    if (et->kind != TY_SCHEMA) {
        diag_error(s->value->span, E1401, "shard_key names a field, but the items are %s, "
                   "not records", ty_str(et));
        diag_help("use 'shard: true' to shard them by position");
        W.errors++;
        return;
    }
    Decl *d = et->decl;
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (strcmp(f->name, s->value->name) != 0)
            continue;
        if (!f->type || (f->type->kind != TY_STRING && f->type->kind != TY_INT)) {
            diag_error(s->value->span, E1401, "shard_key '%s' is %s: a key must be a string "
                       "or an int that every item has", f->name, f->type ? ty_str(f->type) : "?");
            diag_note(f->span, "'%s' declared here", f->name);
            W.errors++;
        }
        return;
    }
    diag_error(s->value->span, E0409, "schema '%s' has no field '%s'", d->name, s->value->name);
    diag_note(d->name_span, "'%s' declared here", d->name);
    W.errors++;
}

void shard_check(Program *p)
{
    Decl *wf = sema_workflow(p);
    if (!wf || !wf->body)
        return;
    memset(&W, 0, sizeof W);
    W.fanout = find_sharded(wf->body);
    if (!W.fanout)
        return;
    W.opt = shard_opt(W.fanout);
    for (int i = 0; i < W.fanout->opts.len; i++) {
        Setting *s = W.fanout->opts.items[i];
        if (s != W.opt && (strcmp(s->key, "shard") == 0 || strcmp(s->key, "shard_key") == 0) &&
            !(s->value && s->value->kind == N_BOOL && !s->value->ival)) {
            diag_error(s->key_span, E1401, "'shard' and 'shard_key' together: shard_key "
                       "shards by the field, 'shard: true' by position");
            W.errors++;
        }
    }
    check_key(W.fanout, W.opt);
    walk(wf->body, TOP, NULL);
}

Node *shard_fanout(void)
{
    return W.fanout;
}
