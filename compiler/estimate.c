/*
 * estimate.c: what a workflow can spend, before it runs.
 *
 * One walk over the checked workflow body counts, for every agent call site,
 * how many calls it makes (loop caps, fan-outs over lists whose length is
 * known, pipeline stages, the dearest arm of each branch for the worst case
 * and their mean for the expected one) and bounds each call's tokens:
 *
 *   input  = the templates' fixed text + a bound for each {{ }} + the answer's
 *            JSON Schema + a few tokens a message; a retry adds the previous
 *            answer (at most max_tokens) and the feedback turn
 *   output = max_tokens per attempt (worst), a typical answer (expected)
 *
 * A {{ }} is bounded by where its value comes from: a record of an input
 * file measured from the real records (EstData), another agent's answer (at
 * most that agent's max_tokens), or its type (a `len` bound; an unbounded
 * string or list is assumed, and the estimate says so).
 *
 * Tokens are counted with one approximation (est_tokens): a run of letters
 * and digits is a token per 4 characters, a run of other symbols a token per
 * 2, white space is free.  tests/tools/fakeserver.c counts the same way with
 * --usage count, so that tests can check the bound.
 *
 * est_run is pure (no I/O); estimate_cmd.c reads data files and journals and
 * prints.  est_warn_budgets is `flowc check`'s warning for a budget that can
 * be exceeded whatever the input.
 */
#include "flowc.h"

#include <math.h>
#include <string.h>

/* ---- tokens ----------------------------------------------------------------- */

static bool word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

static bool space_char(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

int64_t est_tokens(const char *s, size_t n)
{
    int64_t t = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t j = i;
        if (space_char(c)) {
            while (j < n && space_char((unsigned char)s[j]))
                j++;
        } else if (word_char(c)) {
            while (j < n && word_char((unsigned char)s[j]))
                j++;
            t += (int64_t)((j - i + 3) / 4);
        } else {
            while (j < n && !space_char((unsigned char)s[j]) && !word_char((unsigned char)s[j]))
                j++;
            t += (int64_t)((j - i + 1) / 2);
        }
        i = j;
    }
    return t;
}

static int64_t str_tokens(const char *s)
{
    return s ? est_tokens(s, strlen(s)) : 0;
}

/* ---- what a value is: where it comes from, how many items -------------- */

typedef struct VRec VRec;

typedef struct Val {
    Decl *agent;                   /* an agent's answer (or a list of them) */
    Field *data;                   /* a record of this input file parameter (or a list) */
    double n;                      /* a list's items; < 0 unknown */
    const char *nsrc;              /* where n came from */
    VRec *rec;                     /* a record literal (or a list of them): its fields' values */
} Val;

/* The values of a record literal's fields, so that r.research is still
 * known as an agent's answer after it travelled in a record. */
struct VRec {
    int n;                         /* fields */
    const char **names;            /* their names */
    Val *vals;                     /* their values */
};

static const Val unknown = { NULL, NULL, -1, NULL, NULL };

typedef struct Bind {
    void *sym;
    Val v;
} Bind;

static struct {
    EstData *data;                 /* input files, item counts, journal averages */
    Estimate *e;                   /* what is being filled */
    Vec binds;                     /* Bind* */
    int phase;                     /* index into e->phases */
    bool min_input;                /* the cheapest input: data lists empty, cheapest arm */
    bool batch;                    /* inside a batch fan-out's body */
    bool first;                    /* ... and no agent call walked before in its item */
    Decl *w;
    EstUnknown *pending[32];       /* fan-outs of unknown length around the walk */
    int npending;
} E;

static Val val_of_sym(void *sym)
{
    for (int i = E.binds.len - 1; i >= 0; i--) {
        Bind *b = E.binds.items[i];
        if (b->sym == sym)
            return b->v;
    }
    return unknown;
}

static void bind(void *sym, Val v)
{
    if (!sym)
        return;
    Bind *b = arena_alloc(sizeof *b);
    b->sym = sym;
    b->v = v;
    vec_push(&E.binds, b);
}

static Field *param_named(const char *name)
{
    for (int i = 0; E.w && i < E.w->fields.len; i++) {
        Field *f = E.w->fields.items[i];
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

/* The item count given for a parameter or a let binding (--items, --data). */
static double items_of(const char *name, const char **src)
{
    for (int i = 0; E.data && i < E.data->nitems; i++)
        if (strcmp(E.data->items[i].name, name) == 0) {
            *src = E.data->items[i].src;
            return E.data->items[i].count;
        }
    return -1;
}

static Val val_expr(Node *n);

static Decl *dearer_agent(Decl *a, Decl *b)
{
    AgentInfo *x = a ? a->sema : NULL, *y = b ? b->sema : NULL;
    int64_t mx = x && x->max_tokens > 0 ? x->max_tokens : 1024;
    int64_t my = y && y->max_tokens > 0 ? y->max_tokens : 1024;
    return my > mx ? b : a;
}

/* A value that is a or b (the arms of a branch): an agent's answer when
 * either arm is one (the dearer of two), else the input record either is;
 * a record literal's fields only when both arms are record literals, each
 * field the join of both (a field seen in one arm only is bounded by its
 * type). */
static Val join(Val a, Val b, int depth)
{
    Val v = unknown;
    v.agent = a.agent && b.agent ? dearer_agent(a.agent, b.agent) : a.agent ? a.agent : b.agent;
    v.data = a.data ? a.data : b.data;
    if (a.rec && b.rec && depth < 8) {
        VRec *r = arena_alloc(sizeof *r);
        r->names = arena_alloc(sizeof(char *) * (size_t)(a.rec->n + 1));
        r->vals = arena_alloc(sizeof(Val) * (size_t)(a.rec->n + 1));
        r->n = 0;
        for (int i = 0; i < a.rec->n; i++)
            for (int k = 0; k < b.rec->n; k++)
                if (strcmp(a.rec->names[i], b.rec->names[k]) == 0) {
                    r->names[r->n] = a.rec->names[i];
                    r->vals[r->n++] = join(a.rec->vals[i], b.rec->vals[k], depth + 1);
                }
        v.rec = r;
    }
    return v;
}

static Node *last_expr(Node *b)
{
    while (b && b->kind == N_BLOCK)
        b = b->stmts.len ? b->stmts.items[b->stmts.len - 1] : NULL;
    return b;
}

/* The value of a list that a for produces from iter's items. */
static Val val_for(Node *n)
{
    Val it = val_expr(n->iter);
    Val item = it;
    item.n = -1;
    bind(n->sym, item);
    Val body;
    if (n->kind == N_PIPELINE) {
        body = unknown;
        for (int i = 0; i < n->stmts.len; i++) {
            Node *st = n->stmts.items[i];
            body = val_expr(last_expr(st->body));
            bind(st->sym, body);
        }
    } else {
        body = val_expr(last_expr(n->body));
    }
    body.n = it.n;
    body.nsrc = it.nsrc;
    return body;
}

static Val val_expr(Node *n)
{
    if (!n)
        return unknown;
    Val v = unknown;
    switch (n->kind) {
    case N_NAME:
        v = val_of_sym(n->sym);
        break;
    case N_FIELD: {
        Val r = val_expr(n->lhs);
        if (r.rec) {                       /* a field of a record literal: its own value */
            for (int i = 0; i < r.rec->n; i++)
                if (strcmp(r.rec->names[i], n->name) == 0)
                    return r.rec->vals[i];
            break;
        }
        v = r;
        v.n = -1;
        break;
    }
    case N_RECORD: {
        VRec *r = arena_alloc(sizeof *r);
        r->names = arena_alloc(sizeof(char *) * (size_t)(n->inits.len + 1));
        r->vals = arena_alloc(sizeof(Val) * (size_t)(n->inits.len + 1));
        r->n = n->inits.len;
        for (int i = 0; i < n->inits.len; i++) {
            FieldInit *fi = n->inits.items[i];
            r->names[i] = fi->name;
            r->vals[i] = val_expr(fi->value);
        }
        v.rec = r;
        break;
    }
    case N_LIST:
        v.n = n->args.len;
        v.nsrc = "a list literal";
        if (n->args.len)
            v.agent = val_expr(n->args.items[0]).agent;
        break;
    case N_CALL:
        if (n->decl && n->decl->kind == D_AGENT) {
            v.agent = n->decl;
        } else if ((n->builtin == B_READ_JSONL || n->builtin == B_READ_CSV) && n->args.len == 1) {
            Node *a = n->args.items[0];
            if (a->kind == N_NAME && (v.data = param_named(a->name)) != NULL)
                v.n = items_of(a->name, &v.nsrc);
        } else if (n->builtin == B_APPROVE && n->args.len >= 1) {
            v = val_expr(n->args.items[0]);
        }
        break;
    case N_BLOCK:
        v = val_expr(last_expr(n));
        break;
    case N_IF: {
        Val a = val_expr(n->then), b = val_expr(n->els);
        if (!n->els) {                     /* no else: the then arm or nothing */
            v = a;
            break;
        }
        v = join(a, b, 0);
        v.n = a.n >= b.n ? a.n : b.n;      /* the arm whose length is known, or the longer */
        v.nsrc = a.n >= b.n ? a.nsrc : b.nsrc;
        break;
    }
    case N_FOR:
    case N_PIPELINE:
        v = val_for(n);
        break;
    case N_BINARY:
        if (n->op == OP_COALESCE)
            v = val_expr(n->lhs);
        break;
    default:
        break;
    }
    return v;
}

/* ---- sizes of {{ }} values -------------------------------------------------- */

/* Worst and typical tokens of a value of type t; *assumed when unbounded. */
static void type_tokens(Type *t, double *worst, double *typ, bool *assumed, int depth)
{
    *worst = *typ = 0;
    if (!t || depth > 16) {
        *worst = 250, *typ = 25, *assumed = true;
        return;
    }
    switch (t->kind) {
    case TY_STRING:
        *worst = 250, *typ = 25, *assumed = true;
        return;
    case TY_INT: *worst = 5, *typ = 1; return;
    case TY_FLOAT: *worst = 8, *typ = 2; return;
    case TY_BOOL: *worst = 2, *typ = 1; return;
    case TY_OPT: type_tokens(t->elem, worst, typ, assumed, depth + 1); return;
    case TY_ENUM:
        for (int i = 0; t->decl && i < t->decl->values.len; i++) {
            double k = (double)str_tokens(((Field *)t->decl->values.items[i])->name) + 1;
            if (k > *worst)
                *worst = k;
            *typ = k;
        }
        return;
    case TY_LIST: {
        double w, ty;
        type_tokens(t->elem, &w, &ty, assumed, depth + 1);
        *worst = 10 * (w + 1) + 1, *typ = 3 * (ty + 1) + 1, *assumed = true;
        return;
    }
    case TY_SCHEMA:
        for (int i = 0; t->decl && i < t->decl->fields.len; i++) {
            Field *f = t->decl->fields.items[i];
            double w, ty;
            Type *ft = f->type && f->type->kind == TY_OPT ? f->type->elem : f->type;
            if (f->cons.kind == CONS_LEN && f->cons.hi && ft &&
                (ft->kind == TY_STRING || ft->kind == TY_LIST)) {
                double hi = (double)f->cons.hi->ival;
                if (ft->kind == TY_STRING) {
                    w = hi + 2, ty = ceil(hi / 8) + 2;
                } else {
                    double ew, ety;
                    type_tokens(ft->elem, &ew, &ety, assumed, depth + 1);
                    w = hi * (ew + 1) + 1, ty = ceil(hi / 2) * (ety + 1) + 1;
                }
            } else {
                type_tokens(f->type, &w, &ty, assumed, depth + 1);
            }
            double key = (double)str_tokens(f->name) + 2;
            *worst += w + key, *typ += ty + key;
        }
        *worst += 2, *typ += 2;
        return;
    default:
        *worst = 5, *typ = 1;
        return;
    }
}

/* The dotted field path of e below its root name, into path; the root. */
static Node *field_path(Node *e, const char **path, int *np)
{
    if (e->kind == N_FIELD) {
        Node *root = field_path(e->lhs, path, np);
        if (*np < EST_PATH_MAX)
            path[(*np)++] = e->name;
        return root;
    }
    return e;
}

/* Worst and typical tokens of {{ e }} in agent a's templates, called with
 * args (their values in vals). */
static void expr_tokens(Node *e, Decl *a, Val *vals, double *worst, double *typ)
{
    bool assumed = false;
    *worst = *typ = 0;
    switch (e->kind) {
    case N_STRING:
        for (int i = 0; i < e->parts.len; i++) {
            StrPart *sp = e->parts.items[i];
            if (sp->expr) {
                double w, t;
                expr_tokens(sp->expr, a, vals, &w, &t);
                *worst += w, *typ += t;
            } else {
                double k = (double)est_tokens(sp->text, sp->len);
                *worst += k, *typ += k;
            }
        }
        return;
    case N_INT: case N_FLOAT: case N_BOOL: case N_NULL:
        *worst = *typ = 4;
        return;
    case N_BINARY:
        if (e->op == OP_COALESCE) {
            double lw, lt, rw, rt;
            expr_tokens(e->lhs, a, vals, &lw, &lt);
            expr_tokens(e->rhs, a, vals, &rw, &rt);
            *worst = lw > rw ? lw : rw, *typ = lt;
            return;
        }
        if (e->op == OP_ADD && e->type && e->type->kind == TY_STRING) {
            double lw, lt, rw, rt;
            expr_tokens(e->lhs, a, vals, &lw, &lt);
            expr_tokens(e->rhs, a, vals, &rw, &rt);
            *worst = lw + rw, *typ = lt + rt;
            return;
        }
        break;
    case N_NAME:
    case N_FIELD: {
        const char *path[EST_PATH_MAX];
        int np = 0;
        Node *root = field_path(e, path, &np);
        if (root->kind != N_NAME)
            break;
        int k = -1;
        for (int i = 0; i < a->fields.len; i++)
            if (strcmp(((Field *)a->fields.items[i])->name, root->name) == 0)
                k = i;
        if (k < 0)
            break;
        Val v = vals[k];
        if (v.data && E.data && E.data->measure) {
            double w, t;
            if (E.data->measure(E.data, v.data->name, path, np, &w, &t)) {
                double n = v.n > 0 ? v.n : 1;
                bool list = e->type && e->type->kind == TY_LIST && np == 0;
                *worst = list ? w * n : w, *typ = list ? t * n : t;
                return;
            }
        }
        if (v.agent) {
            AgentInfo *ai = v.agent->sema;
            double mt = ai && ai->max_tokens > 0 ? (double)ai->max_tokens : 1024;
            double w, t;
            type_tokens(e->type, &w, &t, &assumed, 0);
            bool list = e->type && e->type->kind == TY_LIST && np == 0 && v.n >= 0;
            *worst = list ? v.n * (mt + 1) : mt;
            *typ = list ? v.n * t : t;
            if (*typ > *worst)
                *typ = *worst;
            return;
        }
        break;
    }
    default:
        break;
    }
    type_tokens(e->type, worst, typ, &assumed, 0);
    if (assumed)
        E.e->assumed = true;
}

static void note_unknowns(void);

/* ---- the cost of one call site ----------------------------------------------- */

#define MSG_TOKENS 4                   /* framing of one message */
#define FEEDBACK_TOKENS 200            /* a retry's feedback turn, its error text included */
#define REQUEST_TOKENS 30              /* the request's framing, a tool's name and text */

static int64_t schema_tokens(Type *t)
{
    int64_t a = str_tokens(schema_json(t, SD_ANTHROPIC));
    int64_t b = str_tokens(schema_json(t, SD_ANTHROPIC_STRICT));
    int64_t c = str_tokens(schema_json(t, SD_OPENAI_STRICT));
    int64_t d = str_tokens(schema_json(t, SD_PLAIN));
    int64_t m = a > b ? a : b;
    m = m > c ? m : c;
    return m > d ? m : d;
}

/* A typical answer's tokens: the answer type at typical sizes. */
static double typical_answer(Decl *a)
{
    double w, t;
    bool assumed = false;
    type_tokens(a->ret_type, &w, &t, &assumed, 0);
    return t;
}

static EstAgent *agent_row(EstPhase *ph, Decl *a, Decl *m, bool batch)
{
    for (int i = 0; i < ph->agents.len; i++) {
        EstAgent *r = ph->agents.items[i];
        if (r->agent == a && r->model == m && r->batch == batch)
            return r;
    }
    EstAgent *r = arena_alloc(sizeof *r);
    r->agent = a, r->model = m, r->batch = batch;
    vec_push(&ph->agents, r);
    return r;
}

/* Dollars for tokens at m's prices (batch: its batch prices, when declared). */
static double usd(Decl *m, bool batch, double in, double out)
{
    ModelInfo *mi = m ? m->sema : NULL;
    if (!mi)
        return 0;
    double pi = mi->usd_in, po = mi->usd_out;
    if (batch && mi->batch_in >= 0)
        pi = mi->batch_in;
    if (batch && mi->batch_out >= 0)
        po = mi->batch_out;
    /* the dearest input class: a cache write, where a normal call may make one
     * (a batch's requests mark no cache prefix) */
    double w = !batch && mi->cache_write > pi ? mi->cache_write : pi;
    return (in * (w > pi ? w : pi) + out * po) / 1e6;
}

/* Tokens of one call's attempts at their worst, with answers of mt tokens:
 * every attempt made, a retry carrying the previous answer and the
 * feedback.  An agent with a tool loop (max_tool_calls C > 0) runs up to
 * C + 1 turns, each its attempts; turn k's input is the first's plus the k
 * answers and the results before it (each at most result tokens), the
 * largest over the possible numbers of turns T, as the runtime holds it:
 *   T * in + mt * T(T-1)/2 + result * ((T-1)(C-T+1) + T(T-1)/2). */
static void call_tokens(double in, double mt, double r, int64_t c, double result,
                        double *tin, double *tout, double *turns)
{
    double loop_in = in, t_max = 1;
    if (c > 0) {
        t_max = (double)c + 1;
        for (double t = 1; t <= t_max; t++) {
            double v = t * in + mt * t * (t - 1) / 2 +
                       result * ((t - 1) * ((double)c - t + 1) + t * (t - 1) / 2);
            if (v > loop_in)
                loop_in = v;
        }
    }
    *tin = (r + 1) * loop_in + t_max * r * (mt + FEEDBACK_TOKENS + 2 * MSG_TOKENS);
    *tout = (r + 1) * t_max * mt;
    *turns = t_max;
}

/* The tokens the model sees of an agent's tools: each one's name,
 * description and input schema (the largest dialect). */
static double tools_tokens(AgentInfo *ai)
{
    double t = 0;
    for (int i = 0; i < ai->tools.len; i++) {
        Decl *d = ai->tools.items[i];
        int64_t a = str_tokens(schema_params_json(&d->fields, SD_ANTHROPIC));
        int64_t b = str_tokens(schema_params_json(&d->fields, SD_OPENAI_STRICT));
        t += (double)(a > b ? a : b) + (double)str_tokens(d->name) + (double)str_tokens(d->doc) +
             REQUEST_TOKENS;
    }
    return t;
}

#define TOOL_RESULT_FRAME 80           /* a tool result's framing (as the runtime holds it) */

/* A snapshot of the phase's rows, to take one arm of a branch. */
typedef struct Snap {
    Vec rows;                      /* EstAgent copies */
    int len;
} Snap;

static Snap snap(void);
static void restore(Snap *s);
static double phase_usd(void);
#define TOOL_TURN_TOKENS 40            /* a typical turn that only calls a tool */

static void add_agent_call(Decl *a, Decl *m, Val *vals, double mw, double me);

/* The calls an agent's tools make: in the worst case every one of its
 * max_tool_calls calls goes to its dearest agent tool (http operations cost
 * no model spend); the expected half its cap, spread over its tools. */
static void add_tool_calls(AgentInfo *ai, double mw, double me)
{
    int agents = 0;
    for (int i = 0; i < ai->tools.len; i++)
        agents += ((Decl *)ai->tools.items[i])->kind == D_AGENT;
    if (!agents)
        return;
    double c = (double)ai->max_tool_calls;
    if (mw > 0) {
        Snap base = snap(), best = base;
        double best_usd = -1;
        for (int i = 0; i < ai->tools.len; i++) {
            Decl *t = ai->tools.items[i];
            if (t->kind != D_AGENT)
                continue;
            restore(&base);
            add_agent_call(t, ((AgentInfo *)t->sema)->model, NULL, mw * c, 0);
            double u = phase_usd();
            if (best_usd < 0 || (E.min_input ? u < best_usd : u > best_usd))
                best = snap(), best_usd = u;
        }
        restore(&best);
    }
    for (int i = 0; me > 0 && i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        if (t->kind == D_AGENT)
            add_agent_call(t, ((AgentInfo *)t->sema)->model, NULL, 0,
                           me * (c / 2) / (double)ai->tools.len);
    }
}

/* mw (worst) and me (expected) calls of agent a on model m with arguments
 * vals (NULL: unknown values, bounded by their types: a tool's call). */
static void add_agent_call(Decl *a, Decl *m, Val *vals, double mw, double me)
{
    AgentInfo *ai = a->sema;
    if (!ai || !a->sema)
        return;
    ModelInfo *mi = m ? m->sema : NULL;
    if (mi && mi->alias_of)
        m = mi->alias_of, mi = m->sema;
    if (mw > 0)
        note_unknowns();
    Val none[64];
    for (int i = 0; !vals && i < 64; i++)
        none[i] = unknown;
    if (!vals)
        vals = none;
    double pw = 0, pt = 0, sw = 0, st = 0;
    expr_tokens(ai->prompt, a, vals, &pw, &pt);
    if (ai->system)
        expr_tokens(ai->system, a, vals, &sw, &st);
    double fixed = (double)schema_tokens(a->ret_type) + REQUEST_TOKENS +
                   MSG_TOKENS * (ai->system ? 2 : 1) + tools_tokens(ai);
    double in_w = pw + sw + fixed, in_t = pt + st + fixed;
    double mt = ai->max_tokens > 0 ? (double)ai->max_tokens : 1024;
    double r = ai->retries >= 0 ? (double)ai->retries : 2;
    int64_t c = ai->tools.len ? ai->max_tool_calls : 0;
    double result = (double)ai->max_tool_result_tokens + TOOL_RESULT_FRAME;
    /* a batch fan-out sends an item's first agent call through the batch API
     * when its model has one and the agent no tools (a tool loop is several
     * requests); the rest, and an item its batch does not answer, go as
     * normal calls */
    bool batch = E.batch && E.first && caps_batch_api(mi) && ai->tools.len == 0;
    E.first = false;
    EstAgent *row = agent_row(E.e->phases.items[E.phase], a, m, batch);
    row->max_tokens = (int64_t)mt;
    row->retries = (int64_t)r;
    row->max_tool_calls = c;
    row->tool_result = result;
    row->site_count++;
    if (in_w > row->in_call_worst)
        row->in_call_worst = in_w;
    /* worst: every attempt made, each answering max_tokens (every turn of a
     * tool loop too) */
    double call_in, call_out, turns;
    call_tokens(in_w, mt, r, c, result, &call_in, &call_out, &turns);
    if (c > 0)
        E.e->tools = true;
    row->calls_worst += mw;
    row->attempts_worst += mw * turns * (r + 1);
    row->in_worst += mw * call_in;
    row->out_worst += mw * call_out;
    /* expected: one attempt, a typical answer (or the journal's averages); a
     * tool loop to half its cap, one call a turn, each result a typical one */
    double ein = in_t, eout = typical_answer(a), once_in, once_out, t1;
    if (eout > mt)
        eout = mt;
    if (c > 0) {
        double calls = ceil((double)c / 2), tw = 0, tt = 0, typ_res = 0;
        bool assumed = false;
        for (int i = 0; i < ai->tools.len; i++) {
            type_tokens(((Decl *)ai->tools.items[i])->ret_type, &tw, &tt, &assumed, 0);
            typ_res += tt / (double)ai->tools.len;
        }
        double per = TOOL_TURN_TOKENS + typ_res + TOOL_RESULT_FRAME;
        ein = (calls + 1) * in_t + per * calls * (calls + 1) / 2;
        eout += calls * TOOL_TURN_TOKENS;
    }
    if (E.data && E.data->journal_avg) {
        double jin, jout;
        if (E.data->journal_avg(E.data, a->name, &jin, &jout))
            ein = jin, eout = jout, row->from_journal = true;
    }
    if (in_t > row->in_call_typ)
        row->in_call_typ = in_t;
    row->calls_exp += me;
    row->in_exp += me * ein;
    row->out_exp += me * eout;
    call_tokens(in_w, mt, 0, c, result, &once_in, &once_out, &t1);
    row->in_once += mw * once_in;
    row->out_once += mw * once_out;
    /* worst: at the normal price even in a batch (an errored or expired item
     * is made again with all its attempts, at the normal price); one attempt
     * and expected: answered by the batch, at its price */
    row->usd_once = usd(m, batch, row->in_once, row->out_once);
    row->usd_worst = usd(m, false, row->in_worst, row->out_worst);
    row->usd_exp = usd(m, batch, row->in_exp, row->out_exp);
    if (mi && mi->max_output_tokens > (int64_t)mt)
        row->raise_to = mi->max_output_tokens;
    if (ai->tools.len)
        add_tool_calls(ai, mw, me);
}

static void add_call(Node *n, double mw, double me)
{
    Decl *a = n->decl;
    AgentInfo *ai = a->sema;
    if (!ai)
        return;
    Decl *m = ai->model;
    if (n->using_model) {
        Decl *u = NULL;
        for (int i = 0; E.e->prog && i < E.e->prog->decls.len; i++) {
            Decl *d = E.e->prog->decls.items[i];
            if (d->kind == D_MODEL && strcmp(d->name, n->using_model) == 0)
                u = d;
        }
        if (u)
            m = u;
    }
    Val vals[64];
    for (int i = 0; i < a->fields.len && i < 64; i++)
        vals[i] = i < n->args.len ? val_expr(n->args.items[i]) : unknown;
    for (int i = a->fields.len; i < 64; i++)
        vals[i] = unknown;
    add_agent_call(a, m, vals, mw, me);
}

/* ---- the walk ------------------------------------------------------------------ */

static void walk(Node *n, double mw, double me);
static void note_unknowns(void);

static EstPhase *cur(void)
{
    return E.e->phases.items[E.phase];
}

static Snap snap(void)
{
    Snap s = { { 0 }, cur()->agents.len };
    for (int i = 0; i < cur()->agents.len; i++) {
        EstAgent *c = arena_alloc(sizeof *c);
        *c = *(EstAgent *)cur()->agents.items[i];
        vec_push(&s.rows, c);
    }
    return s;
}

static void restore(Snap *s)
{
    cur()->agents.len = s->len;
    for (int i = 0; i < s->len; i++)
        *(EstAgent *)cur()->agents.items[i] = *(EstAgent *)s->rows.items[i];
}

static double phase_usd(void)
{
    double t = 0;
    for (int i = 0; i < cur()->agents.len; i++)
        t += ((EstAgent *)cur()->agents.items[i])->usd_worst;
    return t;
}

/* Arms of a branch: the worst case takes the dearest arm (or, for the
 * cheapest input, the cheapest), the expected one their mean.  Each pass
 * walks an arm only for the weight it carries: a walk for the expected
 * case alone (mw 0) picks no arm, so a chain of n else-ifs is walked in
 * O(n), not once more per level (O(n^2)). */
static void walk_arms(Node **arms, int narms, double mw, double me)
{
    bool first = E.first, after = first;         /* each arm may make an item's first call */
    if (mw > 0) {
        Snap base = snap();
        Snap best = base;
        double best_usd = -1;
        for (int i = 0; i < narms; i++) {
            restore(&base);
            E.first = first;
            walk(arms[i], mw, 0);
            after = after && E.first;
            double u = phase_usd();
            if (best_usd < 0 || (E.min_input ? u < best_usd : u > best_usd))
                best = snap(), best_usd = u;
        }
        restore(&best);
    }
    for (int i = 0; i < narms && (me > 0 || mw <= 0); i++) {
        E.first = first;
        walk(arms[i], 0, me / narms);
        if (mw <= 0)
            after = after && E.first;
    }
    E.first = after;
}

/* A fan-out of unknown length counts as one item; it is listed once a call
 * is made under it (add_call). */
static double count_of(Val v, const char *what, Span sp, bool *pushed)
{
    *pushed = false;
    if (v.n >= 0 && (!E.min_input || !v.data))
        return E.min_input && v.data ? 0 : v.n;
    if (E.min_input)
        return 0;
    if (E.npending < 32) {
        EstUnknown *u = arena_alloc(sizeof *u);
        u->what = what;
        u->span = sp;
        E.pending[E.npending++] = u;
        *pushed = true;
    }
    return 1;
}

static void note_unknowns(void)
{
    for (int k = 0; k < E.npending; k++) {
        bool seen = false;
        for (int i = 0; i < E.e->unknown.len; i++)
            seen |= strcmp(((EstUnknown *)E.e->unknown.items[i])->what, E.pending[k]->what) == 0;
        if (!seen)
            vec_push(&E.e->unknown, E.pending[k]);
    }
}

/* What a fan-out's list is called, for --items: its data parameter, or
 * the let binding it is. */
static const char *list_name(Node *iter, Val v)
{
    if (v.data)
        return v.data->name;
    if (iter->kind == N_NAME)
        return iter->name;
    return "(a list)";
}

static bool opt_batch(Node *n)
{
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (strcmp(s->key, "batch") == 0 && s->value && s->value->kind == N_BOOL)
            return s->value->ival != 0;
    }
    return false;
}

static void walk_for(Node *n, double mw, double me)
{
    walk(n->iter, mw, me);
    Val it = val_expr(n->iter);
    bool pushed;
    double k = count_of(it, list_name(n->iter, it), n->iter->span, &pushed);
    Val item = it;
    item.n = -1;
    bind(n->sym, item);
    bool was = E.batch, was_first = E.first;
    if (n->kind == N_FOR && n->parallel && opt_batch(n))
        E.batch = true, E.first = true;      /* each item's first call is the batch's */
    else
        E.first = false;                     /* a nested loop or fan-out: normal calls */
    if (n->cond)
        walk(n->cond, mw * k, me * k);
    if (n->kind == N_PIPELINE) {
        for (int i = 0; i < n->stmts.len; i++) {
            Node *st = n->stmts.items[i];
            walk(st->body, mw * k, me * k);
            bind(st->sym, val_expr(last_expr(st->body)));
        }
    } else {
        walk(n->body, mw * k, me * k);
    }
    E.batch = was;
    E.first = was_first && !was;             /* after a nested construct: not first */
    if (pushed)
        E.npending--;
}

static void walk(Node *n, double mw, double me)
{
    if (!n)
        return;
    switch (n->kind) {
    case N_BLOCK:
    case N_PARBLOCK:
        for (int i = 0; i < n->stmts.len; i++)
            walk(n->stmts.items[i], mw, me);
        break;
    case N_PHASE: {
        int was = E.phase;
        for (int i = 0; i < E.e->phases.len; i++)
            if (((EstPhase *)E.e->phases.items[i])->node == n)
                E.phase = i;
        walk(n->body, mw, me);
        E.phase = was;
        break;
    }
    case N_LET:
    case N_ASSIGN:
        walk(n->value, mw, me);
        if (n->kind == N_LET || !val_of_sym(n->sym).agent)
            bind(n->sym, val_expr(n->value));
        break;
    case N_RETURN:
        walk(n->value, mw, me);
        break;
    case N_CALL:
        for (int i = 0; i < n->args.len; i++)
            walk(n->args.items[i], mw, me);
        if (n->decl && n->decl->kind == D_AGENT)
            add_call(n, mw, me);
        break;
    case N_IF: {
        walk(n->cond, mw, me);
        Node *arms[2] = { n->then, n->els };
        walk_arms(arms, 2, mw, me);
        break;
    }
    case N_MATCH: {
        walk(n->lhs, mw, me);
        Node **arms = arena_alloc(sizeof(Node *) * (size_t)(n->arms.len + 1));
        for (int i = 0; i < n->arms.len; i++)
            arms[i] = ((MatchArm *)n->arms.items[i])->body;
        walk_arms(arms, n->arms.len, mw, me);
        break;
    }
    case N_FOR:
    case N_PIPELINE:
        walk_for(n, mw, me);
        break;
    case N_LOOP: {
        double k = n->cond ? (double)n->cond->ival : 1;
        E.first = false;                         /* its rounds after the first: normal */
        walk(n->body, mw * k, me * ceil((k + 1) / 2));
        walk(n->els, mw, 0);
        break;
    }
    case N_BINARY:
        walk(n->lhs, mw, me);
        walk(n->rhs, mw, me);
        break;
    case N_UNARY:
        walk(n->operand, mw, me);
        break;
    case N_FIELD:
        walk(n->lhs, mw, me);
        break;
    case N_LIST:
        for (int i = 0; i < n->args.len; i++)
            walk(n->args.items[i], mw, me);
        break;
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            walk(((FieldInit *)n->inits.items[i])->value, mw, me);
        break;
    default:
        break;
    }
}

/* ---- budgets ------------------------------------------------------------------- */

static void budget_of(Node *b, EstBudget *out)
{
    out->usd = -1, out->tokens = -1;
    for (int i = 0; b && i < b->opts.len; i++) {
        Setting *s = b->opts.items[i];
        Node *v = s->value;
        if (!v || (v->kind != N_INT && v->kind != N_FLOAT))
            continue;
        double d = v->kind == N_FLOAT ? v->fval : (double)v->ival;
        if (strcmp(s->key, "usd") == 0)
            out->usd = d, out->usd_span = v->span;
        else if (strcmp(s->key, "tokens") == 0)
            out->tokens = d, out->tokens_span = v->span;
    }
}

static Node *first_budget(Node *body)
{
    if (body && body->kind == N_BLOCK && body->stmts.len &&
        ((Node *)body->stmts.items[0])->kind == N_BUDGET)
        return body->stmts.items[0];
    return NULL;
}

static void totals(Estimate *e)
{
    memset(&e->total, 0, sizeof e->total);
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        memset(&ph->sum, 0, sizeof ph->sum);
        for (int k = 0; k < ph->agents.len; k++) {
            EstAgent *r = ph->agents.items[k];
            ph->sum.calls_worst += r->calls_worst;
            ph->sum.attempts_worst += r->attempts_worst;
            ph->sum.in_worst += r->in_worst;
            ph->sum.out_worst += r->out_worst;
            ph->sum.usd_worst += r->usd_worst;
            ph->sum.usd_once += r->usd_once;
            ph->sum.calls_exp += r->calls_exp;
            ph->sum.in_exp += r->in_exp;
            ph->sum.out_exp += r->out_exp;
            ph->sum.usd_exp += r->usd_exp;
        }
        EstAgent *t = &e->total, *s = &ph->sum;
        t->calls_worst += s->calls_worst, t->attempts_worst += s->attempts_worst;
        t->in_worst += s->in_worst, t->out_worst += s->out_worst, t->usd_worst += s->usd_worst;
        t->usd_once += s->usd_once;
        t->calls_exp += s->calls_exp, t->in_exp += s->in_exp, t->out_exp += s->out_exp;
        t->usd_exp += s->usd_exp;
    }
}

static void run_walk(Estimate *e, Program *p, Decl *w, EstData *data, bool min_input)
{
    memset(&E, 0, sizeof E);
    E.data = data, E.e = e, E.w = w, E.min_input = min_input;
    e->prog = p;
    e->workflow = w;
    e->phases.len = 0;
    e->unknown.len = 0;
    e->assumed = false;
    /* phase 0 is the workflow's body outside any phase */
    EstPhase *outside = arena_alloc(sizeof *outside);
    outside->name = NULL;
    vec_push(&e->phases, outside);
    for (int i = 0; w->body && i < w->body->stmts.len; i++) {
        Node *s = w->body->stmts.items[i];
        if (s->kind != N_PHASE)
            continue;
        EstPhase *ph = arena_alloc(sizeof *ph);
        ph->name = s->name;
        ph->node = s;
        budget_of(first_budget(s->body), &ph->budget);
        vec_push(&e->phases, ph);
    }
    budget_of(first_budget(w->body), &e->budget);
    walk(w->body, 1, 1);
    totals(e);
}

Estimate *est_run(Program *p, Decl *w, EstData *data)
{
    Estimate *e = arena_alloc(sizeof *e);
    run_walk(e, p, w, data, false);
    return e;
}

/* ---- what would fit ---------------------------------------------------------- */

/* The largest max_tokens of agent row r in phase ph (index) under which the
 * phase's worst case fits usd dollars: its other rows stay as they are. */
int64_t est_fit_max_tokens(const EstPhase *ph, const EstAgent *r, double cap_usd)
{
    double others = ph->sum.usd_worst - r->usd_worst;
    if (r->calls_worst <= 0 || others >= cap_usd)
        return 0;
    ModelInfo *mi = r->model ? r->model->sema : NULL;
    if (!mi)
        return 0;
    double po = mi->usd_out, pi = mi->usd_in;       /* the worst case is at the normal price */
    if (mi->cache_write > pi)
        pi = mi->cache_write;
    double rr = (double)r->retries;
    if (r->max_tool_calls > 0) {         /* a tool loop: its worst grows faster than mt */
        int64_t lo = 0, hi = r->max_tokens;
        while (lo < hi) {
            int64_t mid = (lo + hi + 1) / 2;
            double tin, tout, turns;
            call_tokens(r->in_call_worst, (double)mid, rr, r->max_tool_calls, r->tool_result,
                        &tin, &tout, &turns);
            if (others + r->calls_worst * (tin * pi + tout * po) / 1e6 <= cap_usd)
                lo = mid;
            else
                hi = mid - 1;
        }
        return lo;
    }
    /* usd(mt) = calls * ((r+1) in + r (mt + fb) ) pi + calls (r+1) mt po */
    double base_in = r->calls_worst * ((rr + 1) * r->in_call_worst + rr * (FEEDBACK_TOKENS + 2 * MSG_TOKENS));
    double per_mt = r->calls_worst * (rr * pi + (rr + 1) * po) / 1e6;
    double left = cap_usd - others - base_in * pi / 1e6;
    if (per_mt <= 0 || left <= 0)
        return 0;
    double mt = floor(left / per_mt);
    return mt > (double)r->max_tokens ? r->max_tokens : (int64_t)mt;
}

/* ---- flowc check: a budget exceeded whatever the input ---------------------- */

void est_warn_budgets(Program *p)
{
    Decl *w = sema_workflow(p);
    if (!w || !w->body || diag_error_count())
        return;
    /* without a usd or tokens budget there is nothing to warn of: no walk
     * (it writes every call's schema to measure it) */
    EstBudget bud;
    budget_of(first_budget(w->body), &bud);
    bool any = bud.usd > 0 || bud.tokens > 0;
    for (int i = 0; !any && i < w->body->stmts.len; i++) {
        Node *s = w->body->stmts.items[i];
        if (s->kind == N_PHASE) {
            budget_of(first_budget(s->body), &bud);
            any = bud.usd > 0 || bud.tokens > 0;
        }
    }
    if (!any)
        return;
    Estimate *e = arena_alloc(sizeof *e);
    run_walk(e, p, w, NULL, true);
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        const EstBudget *b = i == 0 ? &e->budget : &ph->budget;
        const EstAgent *s = i == 0 ? &e->total : &ph->sum;
        const char *who = i == 0 ? "the workflow's" : arena_printf("phase '%s'", ph->name);
        if (i == 0 && b->usd < 0 && b->tokens < 0)
            continue;
        double tok = s->in_worst + s->out_worst;
        if (b->usd > 0 && s->usd_worst > b->usd) {
            diag_warning(b->usd_span, W0015, "%s usd budget $%.4f can be exceeded whatever the "
                         "input: its calls that every run makes can spend up to $%.4f", who,
                         b->usd, s->usd_worst);
            diag_help("run 'flowc estimate' for the calls and what would fit");
        } else if (b->tokens > 0 && tok > b->tokens) {
            diag_warning(b->tokens_span, W0015, "%s tokens budget %.0f can be exceeded whatever "
                         "the input: its calls that every run makes can spend up to %.0f tokens",
                         who, b->tokens, tok);
            diag_help("run 'flowc estimate' for the calls and what would fit");
        }
    }
}
