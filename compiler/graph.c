/*
 * graph.c: `flowc graph`, a picture of a workflow (Graphviz dot or Mermaid).
 *
 * One walk over the checked workflow body builds a small graph:
 *   - nodes: the data that comes in (read_jsonl, ...), each agent and http
 *     operation call site, approval gates, escalations, and what goes out
 *     (write_jsonl, the returned value);
 *   - clusters: phases (with their budgets), fan-outs (parallel for, with
 *     concurrency and on_error), plain for loops, pipelines and their stages
 *     (with concurrency), bounded loops (`loop max N`, its else marked);
 *   - edges: from the node a value came from to the call that receives it,
 *     labelled with the value's type (the schema that flows); from an agent
 *     with tools to each of its tools (a node of its own beside the agent's,
 *     a dashed edge labelled "tool").
 * Where a value came from is tracked by provenance: every expression yields
 * the set of nodes its value derives from (a call yields itself; a field, an
 * operator, a record or a branch the union of its parts'; a loop its body's
 * value's), and every local remembers the set of the values bound or
 * assigned to it.  A loop body is walked twice so that a value assigned
 * late in one round reaches the calls early in the next (the critic loop's
 * back edge); nodes are made once per call site and edges once per pair and
 * label, so the second walk only adds what the first could not see.
 * An edge into what leaves the workflow (a file, the output, a gate) comes
 * from the calls that made the value, not from the inputs it was also built
 * from.  Workflow parameters and literals are configuration, not data: they
 * have no node.  A cluster with no node in it is not drawn.  Conditions decide which way data goes but carry none: no edge.
 *
 * A builtin's part in the picture is a row of builtin_role[]: a builtin
 * added later that reads or writes data outside needs its row, or its data
 * passes through as if it were an operator.
 */
#include "flowc.h"

#include <string.h>

typedef enum GKind { G_INPUT, G_AGENT, G_HTTP, G_GATE, G_ESCALATE, G_WRITE, G_OUTPUT } GKind;

typedef struct GNode {
    GKind kind;                                  /* what it is */
    const char *label;                           /* its text, lines split by '\n' */
    int cluster;                                 /* the innermost cluster it is in, 0: none */
    Node *site;                                  /* the call it stands for (NULL: the output) */
    int owner;                                   /* a tool: the node of the agent that calls it */
    Decl *tool;                                  /* ... and the tool */
} GNode;

typedef struct GCluster {
    int parent;                                  /* enclosing cluster, 0: none */
    const char *label;                           /* its text */
    const char *style;                           /* "phase", "fanout", "batch", "loop", "stage" */
} GCluster;

typedef struct GEdge {
    int from, to;                                /* node indexes (from 1) */
    const char *label;                           /* the type that flows */
    bool tool;                                   /* an agent to one of its tools */
} GEdge;

/* A set of node indexes (small: a value rarely comes from many places). */
typedef struct Set {
    int *ids;                                    /* the node indexes */
    int len, cap;                                /* used, allocated */
} Set;

static struct {
    Program *prog;                               /* what is drawn */
    Vec nodes;                                   /* GNode* (index 0 unused) */
    Vec clusters;                                /* GCluster* (index 0 unused) */
    Vec edges;                                   /* GEdge* */
    Vec syms;                                    /* Set* by Sym id: where a local's values come from */
    int output;                                  /* the node of the returned value, 0 until needed */
} G;

/* ---- sets --------------------------------------------------------------------------- */

static Set *set_new(void)
{
    return arena_alloc(sizeof(Set));
}

static void set_add(Set *s, int id)
{
    for (int i = 0; i < s->len; i++)
        if (s->ids[i] == id)
            return;
    if (s->len == s->cap) {
        int cap = s->cap ? s->cap * 2 : 4;
        int *ids = arena_alloc(sizeof(int) * (size_t)cap);
        if (s->len)
            memcpy(ids, s->ids, sizeof(int) * (size_t)s->len);
        s->ids = ids;
        s->cap = cap;
    }
    s->ids[s->len++] = id;
}

static void set_union(Set *s, Set *t)
{
    for (int i = 0; t && i < t->len; i++)
        set_add(s, t->ids[i]);
}

static Set *sym_set(Sym *sym)
{
    if (!sym)
        return NULL;
    while (G.syms.len <= sym->id)
        vec_push(&G.syms, NULL);
    if (!G.syms.items[sym->id])
        G.syms.items[sym->id] = set_new();
    return G.syms.items[sym->id];
}

/* ---- building ------------------------------------------------------------------------------ */

static int cluster_new(int parent, const char *style, const char *label)
{
    GCluster *c = arena_alloc(sizeof *c);
    c->parent = parent;
    c->style = style;
    c->label = label;
    vec_push(&G.clusters, c);
    return G.clusters.len - 1;
}

/* The node of a call site, made on first sight. */
static int node_for(Node *site, GKind kind, int cluster, const char *label)
{
    for (int i = 1; i < G.nodes.len; i++) {
        GNode *n = G.nodes.items[i];
        if (site && n->site == site)
            return i;
    }
    GNode *n = arena_alloc(sizeof *n);
    n->kind = kind;
    n->site = site;
    n->cluster = cluster;
    n->label = label;
    vec_push(&G.nodes, n);
    return G.nodes.len - 1;
}

static void edge(int from, int to, Type *t)
{
    const char *label = t && t->kind != TY_ERROR && t->kind != TY_NEVER ? ty_str(t) : "";
    for (int i = 0; i < G.edges.len; i++) {
        GEdge *e = G.edges.items[i];
        if (e->from == from && e->to == to && strcmp(e->label, label) == 0)
            return;
    }
    GEdge *e = arena_alloc(sizeof *e);
    e->from = from;
    e->to = to;
    e->label = label;
    vec_push(&G.edges, e);
}

static void edges_into(Set *from, int to, Type *t)
{
    for (int i = 0; from && i < from->len; i++)
        edge(from->ids[i], to, t);
}

/* Into what leaves the workflow (a file, the output, a gate): the values as
 * the calls made them, not the inputs they were also built from. */
static void edges_out(Set *from, int to, Type *t)
{
    bool made = false;
    for (int i = 0; from && i < from->len; i++)
        made |= ((GNode *)G.nodes.items[from->ids[i]])->kind != G_INPUT;
    for (int i = 0; from && i < from->len; i++)
        if (!made || ((GNode *)G.nodes.items[from->ids[i]])->kind != G_INPUT)
            edge(from->ids[i], to, t);
}

/* The source text of a short expression (a path, a title), or NULL. */
static const char *text_of(Node *n)
{
    Source *src = n ? src_get(n->span.file) : NULL;
    size_t len = n ? n->span.hi - n->span.lo : 0;
    if (!src || !len || len > 60 || memchr(src->text + n->span.lo, '\n', len))
        return NULL;
    return arena_strndup(src->text + n->span.lo, len);
}

/* "key value · key value" of settings (budgets, options), values as written. */
static const char *settings_text(Vec *opts, const char *sep)
{
    const char *s = "";
    for (int i = 0; i < opts->len; i++) {
        Setting *o = opts->items[i];
        const char *v = text_of(o->value);
        s = arena_printf("%s%s%s %s", s, i ? sep : "", o->key, v ? v : "...");
    }
    return s;
}

/* A phase's or the workflow's budget: the first statement of its block. */
static const char *budget_of(Node *block)
{
    if (!block || block->kind != N_BLOCK || !block->stmts.len)
        return NULL;
    Node *b = block->stmts.items[0];
    if (b->kind != N_BUDGET)
        return NULL;
    return arena_printf("budget: %s", settings_text(&b->opts, ", "));
}

/* ---- the walk ------------------------------------------------------------------------------- */

static Set *walk(Node *n, int cl);

static void walk_all(Vec *v, int cl, Set *into)
{
    for (int i = 0; i < v->len; i++)
        set_union(into, walk(v->items[i], cl));
}

/* What a builtin is in the picture. */
typedef enum Role { R_PURE, R_INPUT, R_WRITE, R_GATE, R_ESCALATE } Role;

static const struct { Builtin b; Role role; } builtin_role[] = {
    { B_READ_JSONL, R_INPUT }, { B_WRITE_JSONL, R_WRITE }, { B_READ_CSV, R_INPUT },
    { B_WRITE_CSV, R_WRITE }, { B_APPROVE, R_GATE }, { B_ESCALATE, R_ESCALATE },
};

static Role role_of(int b)
{
    for (size_t i = 0; i < sizeof builtin_role / sizeof builtin_role[0]; i++)
        if ((int)builtin_role[i].b == b)
            return builtin_role[i].role;
    return R_PURE;
}

static Type *arg_type(Node *n, int i)
{
    return i < n->args.len ? ((Node *)n->args.items[i])->type : NULL;
}

static Set *walk_builtin(Node *n, int cl)
{
    Set *out = set_new();
    Set *a0 = n->args.len ? walk(n->args.items[0], cl) : NULL;
    for (int i = 1; i < n->args.len; i++)
        walk(n->args.items[i], cl);
    const char *arg1 = n->args.len > 1 ? text_of(n->args.items[1]) : NULL;
    const char *arg0 = n->args.len ? text_of(n->args.items[0]) : NULL;
    int id;
    switch (role_of(n->builtin)) {
    case R_INPUT:
        id = node_for(n, G_INPUT, cl, arena_printf("%s\n%s", n->name, arg0 ? arg0 : ""));
        set_add(out, id);
        break;
    case R_WRITE:
        id = node_for(n, G_WRITE, cl, arena_printf("%s\n%s", n->name, arg1 ? arg1 : ""));
        edges_out(a0, id, arg_type(n, 0));
        break;
    case R_GATE:
        id = node_for(n, G_GATE, cl, arena_printf("approve\n%s", arg1 ? arg1 : ""));
        edges_out(a0, id, arg_type(n, 0));
        set_add(out, id);
        break;
    case R_ESCALATE:
        id = node_for(n, G_ESCALATE, cl, arena_printf("escalate\n%s", arg1 ? arg1 : ""));
        edges_into(a0, id, arg_type(n, 0));
        break;
    default:
        set_union(out, a0);
        for (int i = 1; i < n->args.len; i++)
            set_union(out, walk(n->args.items[i], cl));
    }
    return out;
}

/* The node of tool t of the agent whose node is owner, made on first sight. */
static int tool_node(int owner, Decl *t, int cluster)
{
    for (int i = 1; i < G.nodes.len; i++) {
        GNode *n = G.nodes.items[i];
        if (n->owner == owner && n->tool == t)
            return i;
    }
    const char *label;
    if (t->kind == D_HTTP) {
        HttpInfo *hi = t->sema;
        label = arena_printf("%s\n%s · tool", t->name, hi && hi->method ? hi->method : "http");
    } else {
        AgentInfo *ai = t->sema;
        label = arena_printf("%s\n%s · tool", t->name, ai && ai->model ? ai->model->name : "?");
    }
    GNode *n = arena_alloc(sizeof *n);
    n->kind = t->kind == D_HTTP ? G_HTTP : G_AGENT;
    n->cluster = cluster;
    n->label = label;
    n->owner = owner;
    n->tool = t;
    vec_push(&G.nodes, n);
    return G.nodes.len - 1;
}

/* An agent's tools: a node each beside the agent's, a dashed edge to each
 * (and so on for an agent among them: they form a tree). */
static void tool_nodes(Decl *agent, int id, int cluster)
{
    AgentInfo *ai = agent->sema;
    for (int i = 0; ai && i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        int tid = tool_node(id, t, cluster);
        bool seen = false;
        for (int k = 0; k < G.edges.len; k++) {
            GEdge *e = G.edges.items[k];
            seen |= e->from == id && e->to == tid && e->tool;
        }
        if (!seen) {
            GEdge *e = arena_alloc(sizeof *e);
            e->from = id, e->to = tid, e->label = "tool", e->tool = true;
            vec_push(&G.edges, e);
        }
        if (t->kind == D_AGENT)
            tool_nodes(t, tid, cluster);
    }
}

/* An agent's or http operation's call: a node, an edge from each argument. */
static Set *walk_call(Node *n, int cl)
{
    if (n->builtin)
        return walk_builtin(n, cl);
    Decl *d = n->decl;
    Set *out = set_new();
    if (!d) {
        walk_all(&n->args, cl, out);
        return out;
    }
    const char *label;
    GKind kind = d->kind == D_HTTP ? G_HTTP : G_AGENT;
    if (d->kind == D_HTTP) {
        HttpInfo *hi = d->sema;
        label = arena_printf("%s\n%s%s%s", d->name, hi && hi->method ? hi->method : "http",
                             hi && hi->approval ? " · approval required" : "",
                             hi && hi->paging ? " · paged" : "");
    } else {
        AgentInfo *ai = d->sema;
        const char *model = n->using_model ? n->using_model
                            : ai && ai->model ? ai->model->name : "?";
        label = arena_printf("%s\n%s%s", d->name, model, n->using_model ? " (using)" : "");
        if (ai && ai->tools.len)
            label = arena_printf("%s\nup to %lld tool calls", label,
                                 (long long)ai->max_tool_calls);
    }
    int id = node_for(n, kind, cl, label);
    if (d->kind == D_AGENT)
        tool_nodes(d, id, cl);
    for (int i = 0; i < n->args.len; i++) {
        Node *a = n->args.items[i];
        edges_into(walk(a, cl), id, a->type);
    }
    set_add(out, id);
    return out;
}

/* parallel for ... (batch: true): its calls go through the providers' batch APIs */
static bool is_batch(Node *n)
{
    for (int i = 0; n->kind == N_FOR && n->parallel && i < n->opts.len; i++) {
        Setting *st = n->opts.items[i];
        if (strcmp(st->key, "batch") == 0 && st->value && st->value->kind == N_BOOL)
            return st->value->ival != 0;
    }
    return false;
}

static const char *for_label(Node *n)
{
    const char *what = n->kind == N_PIPELINE ? "pipeline for"
                       : is_batch(n) ? "batch fan-out: parallel for"
                       : n->parallel ? "parallel for" : "for";
    const char *iter = text_of(n->iter);
    const char *s = arena_printf("%s %s in %s", what, n->name, iter ? iter : "...");
    if (n->opts.len)
        s = arena_printf("%s\n%s", s, settings_text(&n->opts, " · "));
    if (n->cond) {
        const char *c = text_of(n->cond);
        s = arena_printf("%s\nwhere %s", s, c ? c : "...");
    }
    return s;
}

static Set *walk_for(Node *n, int cl)
{
    Set *items = walk(n->iter, cl);
    int inner = cluster_new(cl, is_batch(n) ? "batch" : n->parallel ? "fanout" : "loop",
                            for_label(n));
    set_union(sym_set(n->sym), items);
    if (n->cond)
        walk(n->cond, inner);
    return walk(n->body, inner);
}

static Set *walk_pipeline(Node *n, int cl)
{
    Set *items = walk(n->iter, cl);
    int inner = cluster_new(cl, "fanout", for_label(n));
    set_union(sym_set(n->sym), items);
    Set *last = set_new();
    for (int i = 0; i < n->stmts.len; i++) {
        Node *st = n->stmts.items[i];
        const char *label = arena_printf("stage %s", st->name);
        if (st->opts.len)
            label = arena_printf("%s\n%s", label, settings_text(&st->opts, " · "));
        int sc = cluster_new(inner, "stage", label);
        last = walk(st->body, sc);
        set_union(sym_set(st->sym), last);
    }
    return last;
}

/* loop max N { body } else { els }: the body twice, for the back edges. */
static Set *walk_loop(Node *n, int cl)
{
    const char *max = text_of(n->cond);
    int inner = cluster_new(cl, "loop", arena_printf("loop max %s", max ? max : "?"));
    walk(n->body, inner);
    walk(n->body, inner);
    if (n->els) {
        int els = cluster_new(inner, "loop", "else: the bound was hit");
        walk(n->els, els);
    }
    return set_new();
}

static Set *walk_block(Node *b, int cl)
{
    Set *last = set_new();
    for (int i = 0; i < b->stmts.len; i++)
        last = walk(b->stmts.items[i], cl);
    return last;
}

static Set *walk_phase(Node *n, int cl)
{
    const char *budget = budget_of(n->body);
    const char *label = budget ? arena_printf("phase %s\n%s", n->name, budget)
                               : arena_printf("phase %s", n->name);
    walk(n->body, cluster_new(cl, "phase", label));
    return set_new();
}

static Set *walk_return(Node *n, int cl)
{
    if (!n->value)
        return set_new();
    Set *v = walk(n->value, cl);
    if (!G.output) {
        const char *t = n->value->type ? ty_str(n->value->type) : "";
        G.output = node_for(NULL, G_OUTPUT, 0, arena_printf("output\n%s on stdout", t));
    }
    edges_out(v, G.output, n->value->type);
    return set_new();
}

static Set *walk(Node *n, int cl)
{
    Set *out = set_new();
    if (!n)
        return out;
    switch (n->kind) {
    case N_NAME:
        set_union(out, n->sym ? sym_set(n->sym) : NULL);
        break;
    case N_CALL: return walk_call(n, cl);
    case N_FOR: return walk_for(n, cl);
    case N_PIPELINE: return walk_pipeline(n, cl);
    case N_LOOP: return walk_loop(n, cl);
    case N_PHASE: return walk_phase(n, cl);
    case N_RETURN: return walk_return(n, cl);
    case N_BLOCK: return walk_block(n, cl);
    case N_PARBLOCK:
        walk_block(n, cl);
        break;
    case N_LET:
        set_union(sym_set(n->sym), walk(n->value, cl));
        break;
    case N_ASSIGN:
        set_union(sym_set(n->sym), walk(n->value, cl));
        break;
    case N_IF:
        walk(n->cond, cl);
        set_union(out, walk(n->then, cl));
        set_union(out, walk(n->els, cl));
        break;
    case N_MATCH:
        walk(n->lhs, cl);
        for (int i = 0; i < n->arms.len; i++)
            set_union(out, walk(((MatchArm *)n->arms.items[i])->body, cl));
        break;
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            set_union(out, walk(((FieldInit *)n->inits.items[i])->value, cl));
        break;
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            set_union(out, walk(((StrPart *)n->parts.items[i])->expr, cl));
        break;
    case N_LIST:
        walk_all(&n->args, cl, out);
        break;
    default:                                     /* operators, fields: their parts' sources */
        set_union(out, walk(n->lhs, cl));
        set_union(out, walk(n->rhs, cl));
        set_union(out, walk(n->operand, cl));
        break;
    }
    return out;
}

/* ---- output --------------------------------------------------------------------------------- */

static void dot_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static const char *dot_shape(GKind k)
{
    switch (k) {
    case G_INPUT: return "shape=cylinder, style=filled, fillcolor=\"#e8f0fe\"";
    case G_AGENT: return "shape=box, style=\"rounded,filled\", fillcolor=\"#fff4d6\"";
    case G_HTTP: return "shape=component, style=filled, fillcolor=\"#e6f4ea\"";
    case G_GATE: return "shape=diamond, style=filled, fillcolor=\"#fde2e1\"";
    case G_ESCALATE: return "shape=octagon, style=filled, fillcolor=\"#fde2e1\"";
    case G_WRITE: return "shape=note, style=filled, fillcolor=\"#e8f0fe\"";
    default: return "shape=doubleoctagon, style=filled, fillcolor=\"#e8f0fe\"";
    }
}

static const char *dot_cluster_style(const char *style)
{
    if (strcmp(style, "phase") == 0)
        return "style=\"rounded,filled\"; fillcolor=\"#f5f5f5\"; color=\"#9e9e9e\";";
    if (strcmp(style, "fanout") == 0)
        return "style=\"dashed,rounded\"; color=\"#1a73e8\";";
    if (strcmp(style, "batch") == 0)
        return "style=\"bold,dashed,rounded\"; color=\"#9334e6\";";
    if (strcmp(style, "stage") == 0)
        return "style=\"rounded\"; color=\"#1a73e8\";";
    return "style=\"dotted,rounded\"; color=\"#e37400\";";
}

/* Does cluster cl hold a node, directly or in a cluster inside it? */
static bool has_nodes(int cl)
{
    for (int i = 1; i < G.nodes.len; i++)
        if (((GNode *)G.nodes.items[i])->cluster == cl)
            return true;
    for (int c = 1; c < G.clusters.len; c++)
        if (((GCluster *)G.clusters.items[c])->parent == cl && has_nodes(c))
            return true;
    return false;
}

static void dot_nodes_of(FILE *out, int cl, int depth)
{
    for (int i = 1; i < G.nodes.len; i++) {
        GNode *n = G.nodes.items[i];
        if (n->cluster != cl)
            continue;
        fprintf(out, "%*sn%d [label=", depth * 2, "", i);
        dot_str(out, n->label);
        fprintf(out, ", %s];\n", dot_shape(n->kind));
    }
    for (int c = 1; c < G.clusters.len; c++) {
        GCluster *k = G.clusters.items[c];
        if (k->parent != cl || !has_nodes(c))
            continue;
        fprintf(out, "%*ssubgraph cluster_%d {\n%*slabel=", depth * 2, "", c, depth * 2 + 2, "");
        dot_str(out, k->label);
        fprintf(out, "; labeljust=l; %s\n", dot_cluster_style(k->style));
        dot_nodes_of(out, c, depth + 1);
        fprintf(out, "%*s}\n", depth * 2, "");
    }
}

static void print_dot(FILE *out, Decl *w, const char *title)
{
    fputs("digraph workflow {\n", out);
    fputs("  graph [rankdir=LR, fontname=\"Helvetica\", fontsize=11, label=", out);
    dot_str(out, title);
    fputs(", labelloc=t, labeljust=l, compound=true];\n", out);
    fputs("  node [fontname=\"Helvetica\", fontsize=10];\n", out);
    fputs("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#5f6368\"];\n", out);
    dot_nodes_of(out, 0, 1);
    for (int i = 0; i < G.edges.len; i++) {
        GEdge *e = G.edges.items[i];
        fprintf(out, "  n%d -> n%d [label=", e->from, e->to);
        dot_str(out, e->label);
        fputs(e->tool ? ", style=dashed];\n" : "];\n", out);
    }
    fputs("}\n", out);
    (void)w;
}

static void mm_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputs("#quot;", out);
        else if (*s == '\n')
            fputs("<br/>", out);
        else if (*s == '<')
            fputs("#lt;", out);
        else if (*s == '>')
            fputs("#gt;", out);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

static void mm_node(FILE *out, int i, GNode *n, int depth)
{
    static const char *const open[] = { "[(", "(", "[[", "{", "{{", "[/", "([" };
    static const char *const close[] = { ")]", ")", "]]", "}", "}}", "/]", "])" };
    fprintf(out, "%*sn%d%s", depth * 2, "", i, open[n->kind]);
    mm_str(out, n->label);
    fprintf(out, "%s\n", close[n->kind]);
}

static void mm_nodes_of(FILE *out, int cl, int depth)
{
    for (int i = 1; i < G.nodes.len; i++) {
        GNode *n = G.nodes.items[i];
        if (n->cluster == cl)
            mm_node(out, i, n, depth);
    }
    for (int c = 1; c < G.clusters.len; c++) {
        GCluster *k = G.clusters.items[c];
        if (k->parent != cl || !has_nodes(c))
            continue;
        fprintf(out, "%*ssubgraph c%d [", depth * 2, "", c);
        mm_str(out, k->label);
        fputs("]\n", out);
        mm_nodes_of(out, c, depth + 1);
        fprintf(out, "%*send\n", depth * 2, "");
    }
}

static void print_mermaid(FILE *out, const char *title)
{
    fputs("---\ntitle: ", out);
    for (const char *s = title; *s; s++)
        fputc(*s == '\n' ? ' ' : *s, out);
    fputs("\n---\nflowchart LR\n", out);
    mm_nodes_of(out, 0, 1);
    for (int i = 0; i < G.edges.len; i++) {
        GEdge *e = G.edges.items[i];
        if (e->tool) {
            fprintf(out, "  n%d -.->|tool| n%d\n", e->from, e->to);
        } else if (*e->label) {
            fprintf(out, "  n%d -->|", e->from);
            mm_str(out, e->label);
            fprintf(out, "| n%d\n", e->to);
        } else {
            fprintf(out, "  n%d --> n%d\n", e->from, e->to);
        }
    }
}

/* ---- flowc graph ---------------------------------------------------------------------------- */

static const char graph_usage[] =
    "usage: flowc graph [--format=dot|mermaid] FILE\n"
    "\n"
    "Prints the workflow of FILE as a Graphviz (dot) or Mermaid graph: phases as\n"
    "clusters with their budgets, agents and http operations as nodes, edges\n"
    "labelled with the schema that flows, fan-outs, stages and loops as nested\n"
    "clusters, approvals and escalations marked.\n"
    "  flowc graph FILE | dot -Tsvg -o workflow.svg\n";

/* Builds the graph of workflow w (checked) and prints it. */
void graph_print(FILE *out, Program *p, Decl *w, bool mermaid)
{
    memset(&G, 0, sizeof G);
    G.prog = p;
    vec_push(&G.nodes, NULL);
    vec_push(&G.clusters, NULL);
    walk(w->body, 0);
    const char *budget = budget_of(w->body);
    const char *title = budget ? arena_printf("workflow %s\n%s", w->name, budget)
                               : arena_printf("workflow %s", w->name);
    if (mermaid)
        print_mermaid(out, title);
    else
        print_dot(out, w, title);
}

/* flowc graph [--format=dot|mermaid] FILE */
int cmd_graph(int argc, char **argv)
{
    bool mermaid = false;
    char *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--format=dot") == 0 || strcmp(a, "--format=mermaid") == 0)
            mermaid = strcmp(a, "--format=mermaid") == 0;
        else if (strcmp(a, "--format") == 0 && i + 1 < argc
                 && (strcmp(argv[i + 1], "dot") == 0 || strcmp(argv[i + 1], "mermaid") == 0))
            mermaid = strcmp(argv[++i], "mermaid") == 0;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(graph_usage, stdout);
            return 0;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "flowc graph: unknown option '%s'\n%s", a, graph_usage);
            return 2;
        } else if (file) {
            fprintf(stderr, "flowc graph: one file at a time\n%s", graph_usage);
            return 2;
        } else
            file = argv[i];
    }
    if (!file) {
        fprintf(stderr, "flowc graph: no input file\n%s", graph_usage);
        return 2;
    }
    Program p = { 0 };
    if (!flowc_load(&p, &file, 1))
        return 1;
    Decl *w = sema_workflow(&p);
    if (!w) {
        fprintf(stderr, "%s: error: no workflow to draw\n", file);
        return 1;
    }
    graph_print(stdout, &p, w, mermaid);
    fflush(stdout);
    return 0;
}
