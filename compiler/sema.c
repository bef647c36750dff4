/*
 * sema.c: name resolution and type checking of a parsed program.
 *
 * Top-level names (schema, enum, model, agent, workflow; imports included)
 * live in one hash map.  Declarations are checked in dependency order:
 * schemas and enums, then models, then agents, then the workflow.  Local
 * names live in a second hash map from name to a stack of bindings; a scope
 * is a mark in an undo log, so entering and leaving a block costs only what
 * the block declared and every lookup is O(1) however large the file.
 *
 * Expressions are checked by one recursive walk, check_expr(), which sets
 * Node.type on every expression and returns it.  `used` says whether the
 * value is consumed: an `if` whose branches disagree is an error only then.
 * After an error the type is TY_ERROR, which is compatible with everything,
 * so one mistake gives one diagnostic and the walk keeps going.
 *
 * Contracts with code generation:
 *   - Narrowing: inside `if x != null` (and the else of `== null`, the right
 *     of `and`, a `where`, and the rest of a block after `if x == null
 *     { skip }`) the N_NAME or N_FIELD has the inner type T while its Sym or
 *     schema field stays T?; the generated code reads the value as is.
 *   - Sym.depth: workflow body 0; a parallel for body, each pipeline stage
 *     and each statement of a parallel block is one deeper.  The item
 *     variable of a parallel for or pipeline has the body's depth; a `let`
 *     written directly in a parallel block keeps the enclosing depth (it is
 *     stored outside the block).  Agent parameters (seen by templates) are
 *     SYM_PARAM syms at depth 0; workflow parameters too.
 *   - Phase bodies and parallel block statements share the enclosing scope.
 *   - Node.site numbers agent calls 1, 2, ... in source order.
 */
#include "flowc.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- a string-keyed hash map, arena-backed ------------------------------- */

typedef struct MapEnt {
    const char *key;                             /* NULL: empty slot */
    void *val;                                   /* what the key maps to */
} MapEnt;

typedef struct Map {
    MapEnt *ents;                                /* open addressing, linear probing */
    int cap;                                     /* a power of two */
    int len;                                     /* used slots */
} Map;

static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static MapEnt *map_find(Map *m, const char *key)
{
    if (!m->cap)
        return NULL;
    for (uint32_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->ents[i].key)
            return &m->ents[i];
        if (strcmp(m->ents[i].key, key) == 0)
            return &m->ents[i];
    }
}

static void map_grow(Map *m)
{
    Map n = { arena_alloc(sizeof(MapEnt) * (m->cap ? m->cap * 2 : 8)),
              m->cap ? m->cap * 2 : 8, 0 };
    for (int i = 0; i < m->cap; i++) {
        if (m->ents[i].key) {
            MapEnt *e = map_find(&n, m->ents[i].key);
            *e = m->ents[i];
            n.len++;
        }
    }
    *m = n;
}

static void *map_get(Map *m, const char *key)
{
    MapEnt *e = map_find(m, key);
    return e && e->key ? e->val : NULL;
}

static void map_put(Map *m, const char *key, void *val)
{
    if ((m->len + 1) * 3 >= m->cap * 2)
        map_grow(m);
    MapEnt *e = map_find(m, key);
    if (!e->key) {
        e->key = key;
        m->len++;
    }
    e->val = val;
}

/* ---- state of one check --------------------------------------------------- */

#define DECL_KINDS 16                            /* more than DeclKind has */

/* A name bound in a scope; shadow is what it hides. */
typedef struct Binding {
    Sym *sym;                                    /* the local */
    struct Binding *shadow;                      /* the binding it hides, or NULL */
    int level;                                   /* scope nesting level */
} Binding;

/* A name or .field chain that can be narrowed (sym, sym.a, sym.a.b),
 * interned: one id however many nodes spell it, so that whether a fact
 * holds is one lookup, however long the chain. */
typedef struct Path {
    Sym *sym;                                    /* the root variable */
    int parent;                                  /* the path this one extends, 0 for sym itself */
    const char *name;                            /* the field it adds, NULL for sym itself */
    int live;                                    /* facts in force about it */
} Path;

/* A narrowed path known not to be null.  The facts of one variable are
 * linked (newest first) so that an assignment visits only its own. */
typedef struct Fact {
    int path;                                    /* index in S.paths */
    int loops;                                   /* loops around where it was made */
    int prev;                                    /* the variable's older fact (S.facts index + 1), 0 */
    bool dead;                                   /* undone by an assignment */
} Fact;

/* Per local (by Sym.id): its newest fact and the path of its name. */
typedef struct SymFacts {
    int head;                                    /* S.facts index + 1 of the newest fact, 0 */
    int root;                                    /* S.paths index of the bare name, 0 if not made */
} SymFacts;

/* Sema's data on a schema (Decl.sema). */
typedef struct SchemaInfo {
    Map fields;                                  /* name -> Field* (the first of that name) */
    int index;                                   /* cycle search: visit order, 0 unvisited */
    int low;                                     /* ... the lowest index reachable */
    bool on_stack;                               /* ... on the search's stack */
    int scc;                                     /* ... its strongly connected component */
} SchemaInfo;

/* Sema's data on an enum (Decl.sema). */
typedef struct EnumInfo {
    Map values;                                  /* name -> index + 1 */
} EnumInfo;

/* The pipeline being checked: its stages and which one is current. */
typedef struct Pipe {
    struct Pipe *prev;                           /* enclosing pipeline */
    Node *node;                                  /* the N_PIPELINE */
    int cur;                                     /* index of the stage being checked */
    Map names;                                   /* stage name -> index + 1 of its first stage */
} Pipe;

/* The parallel block being checked. */
typedef struct Par {
    struct Par *prev;                            /* enclosing parallel block */
    int first_id;                                /* first Sym id made in the block */
    int cur_start;                               /* first Sym id of the current statement */
    Node *cur;                                   /* the current statement */
} Par;

/* What encloses the code being checked, innermost last. */
typedef enum Frame { FR_ITEM, FR_ITEM_PAR, FR_LOOP, FR_PAR } Frame;

/* Where a block sits: decides what may appear in it. */
typedef enum BlockRole { BLK_PLAIN, BLK_WORKFLOW, BLK_PHASE } BlockRole;

static struct {
    Program *prog;                               /* what is checked */
    Map decls;                                   /* name -> Decl* */
    Map locals;                                  /* name -> Binding* (innermost) */
    Vec log;                                     /* Binding*, in bind order: scope undo log */
    int level;                                   /* scope nesting level */
    int next_sym;                                /* last Sym id given */
    int next_site;                               /* last call-site id given */
    int breaks;                                  /* `break`s seen in the current loop */
    int loops;                                   /* loop bodies around the code checked */
    int depth;                                   /* closure depth */
    Vec frames;                                  /* Frame, cast to pointers */
    Vec facts;                                   /* Fact*: narrowings in force, oldest first */
    Vec paths;                                   /* Path*: index 0 unused */
    Map path_ids;                                /* "sym id" or "parent.field" -> Path index */
    SymFacts *symfacts;                          /* by Sym.id */
    int nsymfacts;                               /* entries allocated in symfacts */
    Vec by_kind[DECL_KINDS];                     /* const char*: declaration names by DeclKind */
    Map enum_of_value;                           /* enum value name -> the first enum that has it */
    bool enum_of_value_made;                     /* ... built (on the first unknown name) */
    Pipe *pipe;                                  /* innermost pipeline */
    Par *par;                                    /* innermost parallel block */
    Decl *workflow;                              /* the first workflow */
    Decl *cur_wf;                                /* the workflow being checked */
    Decl *cur_agent;                             /* the agent or http operation whose
                                                    templates are checked */
    const char *http_part;                       /* "url", "header" or "body" being checked */
    bool in_template;                            /* inside {{ }} */
    Node *wf_budget;                             /* the workflow's budget statement */
    Node *cur_phase;                             /* the phase being checked */
    Map phases;                                  /* phase name -> N_PHASE */
    Vec dumps;                                   /* Sym*, for --dump-types */
} S;

static Type *check_expr(Node *n, bool used);
static Type *check_block(Node *b, bool used, bool new_scope, BlockRole role);

/* ---- small helpers --------------------------------------------------------- */

static Span nspan(Node *n)
{
    return n->name_span.hi > n->name_span.lo ? n->name_span : n->span;
}

/* The first few bytes of a span, for spans that cover a whole construct. */
static Span head_span(Span sp, uint32_t len)
{
    if (sp.hi - sp.lo > len)
        sp.hi = sp.lo + len;
    return sp;
}

/* The source text of an expression if short, quoted, else "this expression". */
static const char *what(Node *e)
{
    Source *src = e->span.file >= 0 ? src_get(e->span.file) : NULL;
    size_t n = e->span.hi - e->span.lo;
    if (!src || n == 0 || n > 40 || e->span.hi > src->len)
        return "this expression";
    const char *p = src->text + e->span.lo;
    if (memchr(p, '\n', n))
        return "this expression";
    return arena_printf("'%.*s'", (int)n, p);
}

static const char *kind_name(DeclKind k)
{
    switch (k) {
    case D_SCHEMA: return "a schema";
    case D_ENUM: return "an enum";
    case D_MODEL: return "a model";
    case D_AGENT: return "an agent";
    case D_WORKFLOW: return "a workflow";
    case D_HTTP: return "an http operation";
    default: return "an import";
    }
}

static void note_decl(Decl *d)
{
    diag_note(d->name_span, "'%s' declared here", d->name);
}

/* "did you mean" weighs at most this many names, so that a file with
 * thousands of names and thousands of mistakes is still checked in linear
 * time (the nearest names are the ones offered first). */
#define CLOSEST_MAX 256

static bool help_closest(const char *name, const char *const *cands, int n)
{
    const char *c = diag_closest(name, cands, n < CLOSEST_MAX ? n : CLOSEST_MAX);
    if (c) {
        diag_help("did you mean '%s'?", c);
        diag_fixit_here(c);                      /* the misspelled name is the error's span */
    }
    return c != NULL;
}

/* "did you mean" over the top-level names of the kinds in mask (1 << DeclKind),
 * then the extra names. */
static bool help_closest_decl(const char *name, unsigned mask, const char *const *extra)
{
    const char *c[CLOSEST_MAX];
    int n = 0, nextra = 0;
    while (extra && extra[nextra] && nextra < CLOSEST_MAX / 2)
        nextra++;
    for (int k = 0; k < DECL_KINDS; k++) {
        Vec *names = &S.by_kind[k];
        for (int i = 0; (mask & (1u << k)) && i < names->len && n < CLOSEST_MAX - nextra; i++)
            c[n++] = names->items[i];
    }
    for (int i = 0; i < nextra; i++)
        c[n++] = extra[i];
    return help_closest(name, c, n);
}

static Decl *lookup_decl(const char *name)
{
    return map_get(&S.decls, name);
}

/* The help for an optional used where its value is needed. */
static void help_optional(Node *e)
{
    const char *w = what(e);
    if (w[0] == '\'')
        diag_help("use '?\?' to give a default, or check %.*s != null' first",
                  (int)strlen(w) - 1, w);
    else
        diag_help("use '?\?' to give a default, or check it is not null first");
}

/* Error for an optional where a value is needed ("... cannot be iterated"). */
static void optional_misuse(Node *e, Type *t, const char *use)
{
    diag_error(e->span, E0501, "%s may be null (%s), so it cannot be %s", what(e), ty_str(t), use);
    help_optional(e);
}

/* A number literal, maybe negated: its value and whether it is an int. */
static bool lit_num(Node *n, double *v, bool *is_int)
{
    if (!n)
        return false;
    if (n->kind == N_UNARY && n->op == OP_NEG && lit_num(n->operand, v, is_int)) {
        *v = -*v;
        return true;
    }
    if (n->kind == N_INT) {
        *v = (double)n->ival;
        *is_int = true;
        return true;
    }
    if (n->kind == N_FLOAT) {
        *v = n->fval;
        *is_int = false;
        return true;
    }
    return false;
}

static const char *fmt_num(double v)
{
    return arena_printf("%.15g", v);
}

static const char *fmt_ms(int64_t ms)
{
    if (ms == 0)
        return "0s";
    if (ms % 3600000 == 0)
        return arena_printf("%lldh", (long long)(ms / 3600000));
    if (ms % 60000 == 0)
        return arena_printf("%lldm", (long long)(ms / 60000));
    if (ms % 1000 == 0)
        return arena_printf("%llds", (long long)(ms / 1000));
    return arena_printf("%lldms", (long long)ms);
}

/* A string literal without {{ }}: its text, else NULL. */
static const char *plain_string(Node *n)
{
    if (!n || n->kind != N_STRING)
        return NULL;
    size_t len = 0;
    for (int i = 0; i < n->parts.len; i++) {
        StrPart *p = n->parts.items[i];
        if (p->expr)
            return NULL;
        len += p->len;
    }
    char *s = arena_alloc(len + 1), *q = s;
    for (int i = 0; i < n->parts.len; i++) {
        StrPart *p = n->parts.items[i];
        memcpy(q, p->text, p->len);
        q += p->len;
    }
    return s;
}

/* ---- frames ---------------------------------------------------------------- */

static void frame_push(Frame f)
{
    vec_push(&S.frames, (void *)(intptr_t)f);
}

static void frame_pop(void)
{
    S.frames.len--;
}

static Frame frame_at(int i)
{
    return (Frame)(intptr_t)S.frames.items[i];
}

static bool in_item_body(void)
{
    for (int i = S.frames.len - 1; i >= 0; i--)
        if (frame_at(i) == FR_ITEM || frame_at(i) == FR_ITEM_PAR)
            return true;
    return false;
}

/* ---- local scopes ---------------------------------------------------------- */

static int scope_push(void)
{
    S.level++;
    return S.log.len;
}

static void scope_pop(int mark)
{
    while (S.log.len > mark) {
        Binding *b = S.log.items[--S.log.len];
        map_put(&S.locals, b->sym->name, b->shadow);
    }
    S.level--;
}

static Binding *scope_top(const char *name)
{
    return map_get(&S.locals, name);
}

static Sym *scope_find(const char *name)
{
    Binding *b = scope_top(name);
    return b ? b->sym : NULL;
}

static Sym *sym_new(SymKind k, const char *name, Span sp, Type *t)
{
    Sym *s = arena_alloc(sizeof *s);
    s->kind = k;
    s->name = name;
    s->span = sp;
    s->type = t;
    s->depth = S.depth;
    s->id = ++S.next_sym;
    return s;
}

/* Binds a new local; a second binding of a name in one scope is an error. */
static Sym *scope_bind(SymKind k, const char *name, Span sp, Type *t)
{
    Sym *s = sym_new(k, name, sp, t);
    Binding *old = scope_top(name);
    if (old && old->level == S.level) {
        diag_error(sp, E0410, "'%s' is already declared in this scope", name);
        diag_note(old->sym->span, "'%s' declared here", name);
        diag_help("pick another name, or assign it with '%s = ...'", name);
    }
    if (old && old->level < S.level)
        s->hides = old->sym;
    Binding *b = arena_alloc(sizeof *b);
    b->sym = s;
    b->shadow = old;
    b->level = S.level;
    map_put(&S.locals, name, b);
    vec_push(&S.log, b);
    return s;
}

static void dump_add(Sym *s)
{
    vec_push(&S.dumps, s);
}

/* "did you mean" over the locals in scope, innermost first. */
static void help_closest_local(const char *name)
{
    const char *c[CLOSEST_MAX];
    int n = 0;
    for (int i = S.log.len - 1; i >= 0 && n < CLOSEST_MAX; i--)
        c[n++] = ((Binding *)S.log.items[i])->sym->name;
    help_closest(name, c, n);
}

/* ---- narrowing ------------------------------------------------------------- */

/* The facts kept for local s, grown to its id. */
static SymFacts *sym_facts(Sym *s)
{
    if (s->id >= S.nsymfacts) {
        int n = S.nsymfacts ? S.nsymfacts : 64;
        while (n <= s->id)
            n *= 2;
        SymFacts *t = arena_alloc(sizeof *t * (size_t)n);
        if (S.nsymfacts)
            memcpy(t, S.symfacts, sizeof *t * (size_t)S.nsymfacts);
        S.symfacts = t;
        S.nsymfacts = n;
    }
    return &S.symfacts[s->id];
}

/* The path index of s (parent 0, name NULL) or of parent.name. */
static int path_intern(Sym *s, int parent, const char *name)
{
    SymFacts *sf = name ? NULL : sym_facts(s);
    if (sf && sf->root)
        return sf->root;
    const char *key = name ? arena_printf("%d.%s", parent, name) : arena_printf("%d", s->id);
    int id = (int)(intptr_t)map_get(&S.path_ids, key);
    if (!id) {
        Path *p = arena_alloc(sizeof *p);
        p->sym = s;
        p->parent = parent;
        p->name = name;
        if (!S.paths.len)
            vec_push(&S.paths, NULL);
        vec_push(&S.paths, p);
        id = S.paths.len - 1;
        map_put(&S.path_ids, key, (void *)(intptr_t)id);
    }
    if (sf)
        sf->root = id;
    return id;
}

static Path *path_at(int id)
{
    return S.paths.items[id];
}

/* The path of a checked name or field chain (kept in Node.path), 0 if it
 * has none: a call, a literal, an enum value... */
static int expr_path(Node *n)
{
    if (n->path)
        return n->path > 0 ? n->path : 0;
    int p = 0;
    if (n->kind == N_NAME && n->sym) {
        p = path_intern(n->sym, 0, NULL);
    } else if (n->kind == N_FIELD && !n->decl) {
        int l = expr_path(n->lhs);
        if (l)
            p = path_intern(path_at(l)->sym, l, n->name);
    }
    n->path = p ? p : -1;
    return p;
}

/* ".a.b" for sym.a.b, "" for sym itself. */
static const char *path_text(int id)
{
    size_t len = 0;
    for (int q = id; path_at(q)->name; q = path_at(q)->parent)
        len += strlen(path_at(q)->name) + 1;
    char *t = arena_alloc(len + 1);
    for (int q = id; path_at(q)->name; q = path_at(q)->parent) {
        size_t n = strlen(path_at(q)->name);
        len -= n + 1;
        t[len] = '.';
        memcpy(t + len + 1, path_at(q)->name, n);
    }
    return t;
}

static bool fact_holds(int path)
{
    return path && path_at(path)->live > 0;
}

static void fact_add(Node *e)
{
    int p = expr_path(e);
    if (!p)
        return;
    Fact *f = arena_alloc(sizeof *f);
    SymFacts *sf = sym_facts(path_at(p)->sym);
    f->path = p;
    f->loops = S.loops;
    f->prev = sf->head;
    vec_push(&S.facts, f);
    sf->head = S.facts.len;
    path_at(p)->live++;
}

/* Drops the facts made since S.facts.len was mark. */
static void facts_pop(int mark)
{
    while (S.facts.len > mark) {
        Fact *f = S.facts.items[--S.facts.len];
        Path *p = path_at(f->path);
        if (!f->dead)
            p->live--;
        sym_facts(p->sym)->head = f->prev;
    }
}

/* The facts a checked condition establishes when it is true (or false). */
static void facts_of(Node *c, bool when)
{
    if (c->kind == N_UNARY && c->op == OP_NOT) {
        facts_of(c->operand, !when);
        return;
    }
    if (c->kind != N_BINARY)
        return;
    if ((c->op == OP_AND && when) || (c->op == OP_OR && !when)) {
        facts_of(c->lhs, when);
        facts_of(c->rhs, when);
        return;
    }
    if ((c->op == OP_NE && when) || (c->op == OP_EQ && !when)) {
        if (c->rhs->kind == N_NULL)
            fact_add(c->lhs);
        else if (c->lhs->kind == N_NULL)
            fact_add(c->rhs);
    }
}

/* An assignment ends the narrowings of the variable's fields, and of the
 * variable itself if the new value may be null.  Inside a loop it cannot
 * end one made outside: the next round would read the new value as checked.
 * Dead facts are unlinked from the variable's list as it is walked; every
 * fact between two linked ones is dead. */
static void facts_kill(Sym *s, Node *at, bool may_be_null)
{
    int told = 0;                                /* the oldest fact made outside the loop */
    int *link = &sym_facts(s)->head;
    while (*link) {
        int idx = *link;
        Fact *f = S.facts.items[idx - 1];
        Path *p = path_at(f->path);
        if (!f->dead && !p->name && !may_be_null) {
            link = &f->prev;
            continue;
        }
        if (!f->dead) {
            if (f->loops < S.loops)
                told = idx;
            f->dead = true;
            p->live--;
        }
        *link = f->prev;
    }
    if (told) {
        diag_error(at->span, E0517, "'%s%s' was checked for null outside this loop; assigning "
                   "'%s' here undoes the check for the next round", s->name,
                   path_text(((Fact *)S.facts.items[told - 1])->path), s->name);
        diag_help("give a default with '?\?', or check it again inside the loop");
    }
}

/* ---- joins ----------------------------------------------------------------- */

/* The type of a value that is a or b (if branches, match arms, list
 * elements); NULL if they do not join. */
static Type *join(Type *a, Type *b)
{
    if (a->kind == TY_ERROR || b->kind == TY_ERROR)
        return ty_error;
    if (a->kind == TY_NEVER)
        return b;
    if (b->kind == TY_NEVER || ty_equal(a, b))
        return a;
    if ((a->kind == TY_INT && b->kind == TY_FLOAT) || (a->kind == TY_FLOAT && b->kind == TY_INT))
        return ty_float;
    if (a->kind == TY_VOID || b->kind == TY_VOID)
        return NULL;
    if (a->kind == TY_NULL)
        return ty_opt(b);
    if (b->kind == TY_NULL)
        return ty_opt(a);
    if (a->kind == TY_OPT || b->kind == TY_OPT) {
        Type *j = join(a->kind == TY_OPT ? a->elem : a, b->kind == TY_OPT ? b->elem : b);
        return j ? ty_opt(j) : NULL;
    }
    if (a->kind == TY_LIST && b->kind == TY_LIST) {
        if (!a->elem)
            return b;
        if (!b->elem)
            return a;
        Type *j = join(a->elem, b->elem);
        return j ? ty_list(j) : NULL;
    }
    return NULL;
}

/* ---- type expressions ------------------------------------------------------ */

static const char *const prim_names[] = { "string", "int", "float", "bool", NULL };

/* type -> string | int | float | bool | Schema | Enum | list<type> | type? */
static Type *resolve_type(TypeExpr *te)
{
    if (!te)
        return ty_error;
    if (te->kind == TE_LIST)
        return ty_list(resolve_type(te->elem));
    if (te->kind == TE_OPT)
        return ty_opt(resolve_type(te->elem));
    if (strcmp(te->name, "string") == 0) return ty_string;
    if (strcmp(te->name, "int") == 0) return ty_int;
    if (strcmp(te->name, "float") == 0) return ty_float;
    if (strcmp(te->name, "bool") == 0) return ty_bool;
    Decl *d = lookup_decl(te->name);
    if (d && (d->kind == D_SCHEMA || d->kind == D_ENUM))
        return ty_decl(d);
    if (d) {
        diag_error(te->span, E0402, "'%s' is %s, not a type", te->name, kind_name(d->kind));
        note_decl(d);
    } else {
        diag_error(te->span, E0401, "unknown type '%s'", te->name);
        help_closest_decl(te->name, 1u << D_SCHEMA | 1u << D_ENUM, prim_names);
    }
    return ty_error;
}

/* ---- settings -------------------------------------------------------------- */

/* Key lists are short; a list of settings keeps, per key, the first
 * setting that gave it (in a Setting *first[MAX_KEYS]). */
#define MAX_KEYS 32

/* Whether setting i of a list is known and given once; reports it if not.
 * The list belongs to `kind` ("agent", "'budget'"), named `name` or NULL;
 * first[] (zeroed by the caller) holds what earlier settings gave. */
static bool setting_ok(Vec *settings, int i, Setting **first, const char *const *keys,
                       const char *kind, const char *name)
{
    Setting *s = settings->items[i];
    int known = -1;
    for (int k = 0; keys[k] && known < 0; k++)
        if (strcmp(keys[k], s->key) == 0)
            known = k;
    if (known < 0) {
        Vec c = {0};
        const char *all = "";
        for (const char *const *k = keys; *k; k++) {
            vec_push(&c, (void *)*k);
            all = arena_printf("%s%s'%s'", all, *all ? ", " : "", *k);
        }
        if (name)
            diag_error(s->key_span, E0901, "unknown setting '%s' in %s '%s'", s->key, kind, name);
        else
            diag_error(s->key_span, E0901, "unknown setting '%s' in %s", s->key, kind);
        if (!help_closest(s->key, (const char *const *)c.items, c.len))
            diag_help("the settings are %s", all);
        return false;
    }
    Setting *t = known < MAX_KEYS ? first[known] : NULL;
    for (int j = 0; known >= MAX_KEYS && j < i && !t; j++)
        if (strcmp(((Setting *)settings->items[j])->key, s->key) == 0)
            t = settings->items[j];
    if (t) {
        diag_error(s->key_span, E0902, "setting '%s' is given twice", s->key);
        diag_note(t->key_span, "first given here");
        return false;
    }
    if (known < MAX_KEYS)
        first[known] = s;
    return true;
}

static Setting *setting_get(Vec *settings, const char *key)
{
    for (int i = 0; i < settings->len; i++) {
        Setting *s = settings->items[i];
        if (strcmp(s->key, key) == 0)
            return s;
    }
    return NULL;
}

/* A number setting in [lo, hi] (lo excluded if lo_open); int if need_int. */
static bool setting_num(Setting *s, double lo, double hi, bool lo_open, bool need_int, double *out)
{
    double v;
    bool is_int;
    if (!lit_num(s->value, &v, &is_int) || (need_int && !is_int)) {
        diag_error(s->value->span, E0903, "%s must be %s, got %s", s->key,
                   need_int ? "a whole number" : "a number", what(s->value));
        return false;
    }
    s->value->type = is_int ? ty_int : ty_float;
    if (v < lo || v > hi || (lo_open && v <= lo)) {
        if (lo_open && isinf(hi))
            diag_error(s->value->span, E0903, "%s must be greater than %s, got %s", s->key,
                       fmt_num(lo), fmt_num(v));
        else if (isinf(hi))
            diag_error(s->value->span, E0903, "%s must be at least %s, got %s", s->key,
                       fmt_num(lo), fmt_num(v));
        else
            diag_error(s->value->span, E0903, "%s must be between %s and %s, got %s", s->key,
                       fmt_num(lo), fmt_num(hi), fmt_num(v));
        return false;
    }
    *out = v;
    return true;
}

static bool setting_duration(Setting *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (s->value->kind != N_DURATION) {
        diag_error(s->value->span, E0903, "%s must be a duration such as 30s, 5m or 1h, got %s",
                   s->key, what(s->value));
        return false;
    }
    s->value->type = ty_duration;
    int64_t v = s->value->ival;
    if (v < lo || v > hi) {
        if (hi == INT64_MAX)
            diag_error(s->value->span, E0903, "%s must be greater than 0, got %s", s->key, fmt_ms(v));
        else
            diag_error(s->value->span, E0903, "%s must be between %s and %s, got %s", s->key,
                       fmt_ms(lo), fmt_ms(hi), fmt_ms(v));
        return false;
    }
    *out = v;
    return true;
}

static const char *setting_string(Setting *s)
{
    const char *v = plain_string(s->value);
    if (!v)
        diag_error(s->value->span, E0903, "%s must be a string literal%s, got %s", s->key,
                   s->value->kind == N_STRING ? " without {{ }}" : "", what(s->value));
    else
        s->value->type = ty_string;
    return v;
}

/* A bare name out of a fixed set (provider: anthropic, on_error: skip). */
static const char *setting_word(Setting *s, const char *const *words)
{
    const char *w = s->value->kind == N_NAME ? s->value->name
                    : s->value->kind == N_SKIP ? "skip" : NULL;
    const char *all = "";
    for (const char *const *k = words; *k; k++) {
        if (w && strcmp(*k, w) == 0)
            return *k;
        all = arena_printf("%s%s%s", all, *all ? ", " : "", *k);
    }
    diag_error(s->value->span, E0903, "%s must be one of %s, got %s", s->key, all, what(s->value));
    if (w) {
        Vec c = {0};
        for (const char *const *k = words; *k; k++)
            vec_push(&c, (void *)*k);
        help_closest(w, (const char *const *)c.items, c.len);
    }
    return NULL;
}

/* ---- schemas and enums ----------------------------------------------------- */

/* The field of schema d named name, or NULL. */
static Field *field_find(Decl *d, const char *name)
{
    SchemaInfo *si = d->sema;
    if (si)
        return map_get(&si->fields, name);
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static void help_closest_field(Vec *fields, const char *name)
{
    const char *c[CLOSEST_MAX];
    int n = 0;
    for (int i = 0; i < fields->len && n < CLOSEST_MAX; i++)
        c[n++] = ((Field *)fields->items[i])->name;
    help_closest(name, c, n);
}

/* The reserved words: a schema field may be called so (`stage: string`),
 * a parameter may not, since nothing could refer to it. */
static bool is_keyword(const char *s)
{
    static const char *const kw[] = {
        "import", "schema", "enum", "model", "agent", "workflow", "phase", "budget", "let",
        "if", "else", "for", "in", "where", "parallel", "pipeline", "stage", "match", "loop",
        "max", "break", "skip", "return", "using", "true", "false", "null", "and", "or",
        "not", "len", NULL,
    };
    for (int i = 0; kw[i]; i++)
        if (strcmp(kw[i], s) == 0)
            return true;
    return false;
}

/* A parameter named like a keyword (`match: string`) cannot be used. */
static void check_param_name(Field *f)
{
    if (!is_keyword(f->name))
        return;
    diag_error(f->span, E0417, "'%s' is a keyword, so a parameter cannot be called that", f->name);
    diag_help("choose another name; keywords are allowed as schema field names only");
}

/* Fields, parameters or enum values named twice. */
static void check_dup_fields(Vec *fields, const char *what_)
{
    Map seen = {0};
    for (int i = 0; i < fields->len; i++) {
        Field *f = fields->items[i];
        Field *g = map_get(&seen, f->name);
        if (!g) {
            map_put(&seen, f->name, f);
            continue;
        }
        diag_error(f->span, E0412, "duplicate %s '%s'", what_, f->name);
        diag_note(g->span, "'%s' first declared here", g->name);
    }
}

static const char *cons_text(Constraint *c)
{
    double lo = 0, hi = 0;
    bool i1, i2;
    lit_num(c->lo, &lo, &i1);
    lit_num(c->hi, &hi, &i2);
    return arena_printf("%s %s..%s", c->kind == CONS_RANGE ? "in" : "len", fmt_num(lo),
                        fmt_num(hi));
}

/* constraint -> 'in' num '..' num (int, float) | 'len' int '..' int (string, list) */
static void check_constraint(Field *f)
{
    Constraint *c = &f->cons;
    if (c->kind == CONS_NONE || f->type->kind == TY_ERROR)
        return;
    Type *base = f->type->kind == TY_OPT ? f->type->elem : f->type;
    bool fits = c->kind == CONS_RANGE ? base->kind == TY_INT || base->kind == TY_FLOAT
                                      : base->kind == TY_STRING || base->kind == TY_LIST;
    if (!fits) {
        diag_error(c->span, E0706, "constraint '%s' does not fit field '%s' of type %s", cons_text(c),
                   f->name, ty_str(f->type));
        diag_help("'in lo..hi' applies to int and float, 'len lo..hi' to string and list");
        return;
    }
    double lo, hi;
    bool ilo = false, ihi = false;
    if (!lit_num(c->lo, &lo, &ilo) || !lit_num(c->hi, &hi, &ihi))
        return;                                  /* the parser reported it */
    if ((c->kind == CONS_LEN || base->kind == TY_INT) && (!ilo || !ihi)) {
        diag_error(c->span, E0707, "constraint '%s' on field '%s' needs whole-number bounds",
                   cons_text(c), f->name);
        return;
    }
    if (c->kind == CONS_LEN && lo < 0)
        diag_error(c->span, E0707, "a length cannot be negative, got %s", fmt_num(lo));
    else if (lo > hi)
        diag_error(c->span, E0707, "constraint '%s' on field '%s' is empty: %s is greater than %s",
                   cons_text(c), f->name, fmt_num(lo), fmt_num(hi));
}

/* alias -> '@alias' '(' string ')': the name in the data, else the field's. */
static void resolve_wire(Field *f, const char *what_)
{
    f->wire = f->name;
    if (!f->alias)
        return;
    const char *w = plain_string(f->alias);
    if (!w)
        diag_error(f->alias->span, E0708, "the alias of %s '%s' must be a string literal without {{ }}",
                   what_, f->name);
    else if (!*w)
        diag_error(f->alias->span, E0708, "the alias of %s '%s' is empty", what_, f->name);
    else
        f->wire = w;
    if (f->alias)
        f->alias->type = ty_string;
}

/* Can every provider take s as a property name?  Anthropic's tool schemas
 * take only ^[a-zA-Z0-9_.-]{1,64}$. */
static bool model_key_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

/* Two fields (or enum values) that would be one key on the wire; key picks
 * the Field member compared (wire or model key). */
static void check_dup_keys(Vec *fields, const char *what_, bool model)
{
    Map seen = {0};
    for (int i = 0; i < fields->len; i++) {
        Field *f = fields->items[i];
        const char *k = model ? f->model_key : f->wire;
        Field *g = map_get(&seen, k);
        if (!g) {
            map_put(&seen, k, f);
            continue;
        }
        if (strcmp(f->name, g->name) == 0)
            continue;                            /* a duplicate name, said already */
        if (model && f->model_key == f->wire && g->model_key == g->wire)
            continue;                            /* one wire name, said already */
        if (model)
            diag_error(f->span, E0416, "%ss '%s' and '%s' would both be '%s' in the JSON Schema "
                       "models see", what_, g->name, f->name, k);
        else
            diag_error(f->alias ? f->alias->span : f->span, E0416, "%ss '%s' and '%s' are both '%s' "
                       "in the data", what_, g->name, f->name, k);
        diag_note(g->span, "'%s' declared here", g->name);
        if (model)
            diag_help("a model sees a field by its alias when the alias is letters, digits, "
                      "'_', '.' and '-' (at most 64), else by its name; rename '%s'", f->name);
    }
}

static const char *const extra_words[] = { "reject", "drop", "keep", NULL };
static const char *const schema_keys[] = { "extra", NULL };

/* schema options -> '(' 'extra' ':' (reject | drop | keep) ')' */
static void schema_options(Decl *d)
{
    d->extra = EXTRA_REJECT;
    Setting *first[MAX_KEYS] = {0};
    for (int i = 0; i < d->settings.len; i++) {
        if (!setting_ok(&d->settings, i, first, schema_keys, "schema", d->name))
            continue;
        const char *w = setting_word(d->settings.items[i], extra_words);
        d->extra = !w ? EXTRA_REJECT : !strcmp(w, "drop") ? EXTRA_DROP
                   : !strcmp(w, "keep") ? EXTRA_KEEP : EXTRA_REJECT;
    }
}

/* schema -> 'schema' Name options? '{' (name ':' type constraint? alias?)* '}' */
static void check_schema(Decl *d)
{
    SchemaInfo *si = arena_alloc(sizeof *si);
    d->sema = si;
    ty_decl(d);
    schema_options(d);
    check_dup_fields(&d->fields, "field");
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (!map_get(&si->fields, f->name))
            map_put(&si->fields, f->name, f);
        f->type = resolve_type(f->texpr);
        check_constraint(f);
        resolve_wire(f, "field");
        f->model_key = model_key_ok(f->wire) ? f->wire : f->name;
    }
    check_dup_keys(&d->fields, "field", false);
    check_dup_keys(&d->fields, "field", true);
}

/* The schema a required field holds, or NULL (optional and list fields are
 * not followed: they can be null or empty). */
static Decl *required_schema(Field *f)
{
    return f->type && f->type->kind == TY_SCHEMA && f->type->decl->sema ? f->type->decl : NULL;
}

/* First visit of schema d in the cycle search. */
static void scc_visit(Decl *d, int *counter, Vec *stack, Vec *path)
{
    SchemaInfo *si = d->sema;
    si->index = si->low = ++*counter;
    si->on_stack = true;
    vec_push(stack, d);
    vec_push(path, d);
    vec_push(path, (void *)0);
}

/* Tarjan's strongly connected components of the graph "schema -> schema of
 * a required field", without recursion (a chain of thousands of schemas is
 * a long path, not a deep stack): schemas in one component contain each
 * other.  path holds (schema, next field index) pairs. */
static void schema_sccs(Program *p)
{
    Vec stack = {0}, path = {0};
    int counter = 0, nscc = 0;
    for (int r = 0; r < p->decls.len; r++) {
        Decl *root = p->decls.items[r];
        if (root->kind != D_SCHEMA || !root->sema || ((SchemaInfo *)root->sema)->index)
            continue;
        scc_visit(root, &counter, &stack, &path);
        while (path.len) {
            Decl *d = path.items[path.len - 2];
            SchemaInfo *si = d->sema;
            intptr_t i = (intptr_t)path.items[path.len - 1];
            if (i < d->fields.len) {
                path.items[path.len - 1] = (void *)(i + 1);
                Decl *w = required_schema(d->fields.items[i]);
                SchemaInfo *wi = w ? w->sema : NULL;
                if (wi && !wi->index)
                    scc_visit(w, &counter, &stack, &path);
                else if (wi && wi->on_stack && wi->index < si->low)
                    si->low = wi->index;
                continue;
            }
            path.len -= 2;
            if (si->low == si->index) {
                nscc++;
                Decl *m;
                do {
                    m = stack.items[--stack.len];
                    ((SchemaInfo *)m->sema)->on_stack = false;
                    ((SchemaInfo *)m->sema)->scc = nscc;
                } while (m != d);
            }
            if (path.len) {
                SchemaInfo *pi = ((Decl *)path.items[path.len - 2])->sema;
                if (si->low < pi->low)
                    pi->low = si->low;
            }
        }
    }
}

/* A record that must contain itself can never be written down: schema d
 * does through field f if f's schema is d or contains d (is in d's
 * component). */
static void check_schema_cycle(Decl *d)
{
    SchemaInfo *si = d->sema;
    for (int i = 0; si && i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        Decl *w = required_schema(f);
        if (w && (w == d || ((SchemaInfo *)w->sema)->scc == si->scc)) {
            diag_error(f->texpr->span, E0705, "schema '%s' contains itself through field '%s'",
                       d->name, f->name);
            diag_help("make the field optional ('%s?') or a list", ty_str(f->type));
            return;
        }
    }
}

/* enum -> 'enum' Name '{' value alias? (',' value alias?)* '}' */
static void check_enum(Decl *d)
{
    EnumInfo *ei = arena_alloc(sizeof *ei);
    d->sema = ei;
    ty_decl(d);
    check_dup_fields(&d->values, "enum value");
    for (int i = 0; i < d->values.len; i++) {
        Field *v = d->values.items[i];
        if (!map_get(&ei->values, v->name))
            map_put(&ei->values, v->name, (void *)(intptr_t)(i + 1));
    }
    for (int i = 0; i < d->values.len; i++)
        resolve_wire(d->values.items[i], "enum value");
    check_dup_keys(&d->values, "enum value", false);
}

/* The index of enum e's value name, or -1. */
static int enum_index(Decl *e, const char *name)
{
    EnumInfo *ei = e->sema;
    if (ei)
        return (int)(intptr_t)map_get(&ei->values, name) - 1;
    for (int i = 0; i < e->values.len; i++)
        if (strcmp(((Field *)e->values.items[i])->name, name) == 0)
            return i;
    return -1;
}

static void unknown_enum_value(Decl *e, const char *name, Span sp)
{
    diag_error(sp, E0408, "enum '%s' has no value '%s'", e->name, name);
    help_closest_field(&e->values, name);
    note_decl(e);
}

/* ---- models ---------------------------------------------------------------- */

static const char *const model_keys[] = {
    "provider", "name", "usd_per_mtok_in", "usd_per_mtok_out", "base_url", "api_key_env",
    "structured_output", "temperature", "max_tokens_param", "max_output_tokens",
    "context_window", "usd_per_mtok_cache_write", "usd_per_mtok_cache_write_1h",
    "usd_per_mtok_cache_read", "usd_per_mtok_batch_in", "usd_per_mtok_batch_out",
    "min_cache_tokens", "rpm", "tpm", "retires", "replaced_by", "alias_of", "accepts_sensitive",
    NULL,
};
static const char *const providers[] = { "anthropic", "openai", "mock", NULL };
static const char *const output_modes[] = {
    "output_config", "tool", "json_schema", "json_object", "prompt", NULL,
};
static const char *const token_params[] = { "max_tokens", "max_completion_tokens", NULL };

/* temperature: true | false */
static int setting_bool(Setting *s)
{
    if (s->value->kind != N_BOOL) {
        diag_error(s->value->span, E0903, "%s must be true or false, got %s", s->key, what(s->value));
        return -1;
    }
    s->value->type = ty_bool;
    return s->value->ival != 0;
}

/* retires: "YYYY-MM-DD" */
static const char *setting_date(Setting *s)
{
    const char *v = setting_string(s);
    int y, m, d, n = 0;
    if (v && (sscanf(v, "%4d-%2d-%2d%n", &y, &m, &d, &n) != 3 || n != 10 || v[10] ||
              m < 1 || m > 12 || d < 1 || d > 31)) {
        diag_error(s->value->span, E0903, "%s must be a date written \"YYYY-MM-DD\", got \"%s\"",
                   s->key, v);
        return NULL;
    }
    return v;
}

/* replaced_by, alias_of: another model's name */
static Decl *setting_model(Setting *s, Decl *self)
{
    if (s->value->kind != N_NAME) {
        diag_error(s->value->span, E0903, "%s must be the name of a model, got %s", s->key,
                   what(s->value));
        return NULL;
    }
    Decl *d = lookup_decl(s->value->name);
    if (d == self) {
        diag_error(s->value->span, E0909, "model '%s' cannot be its own %s", self->name, s->key);
        return NULL;
    }
    if (!d || d->kind != D_MODEL) {
        diag_error(s->value->span, E0405, "unknown model '%s'", s->value->name);
        if (d)
            note_decl(d);
        else
            help_closest_decl(s->value->name, 1u << D_MODEL, NULL);
        return NULL;
    }
    s->value->type = ty_model;
    return d;
}

/* api_key_env: "VAR" | none */
static const char *setting_key_env(Setting *s)
{
    if (s->value->kind == N_NAME && strcmp(s->value->name, "none") == 0)
        return "";
    if (s->value->kind == N_STRING) {
        const char *v = setting_string(s);
        if (v && !*v) {
            diag_error(s->value->span, E0903, "api_key_env must name a variable");
            diag_help("write 'api_key_env: none' for a server that takes no key");
            return NULL;
        }
        return v;
    }
    diag_error(s->value->span, E0903, "api_key_env must be a variable's name in quotes or none, "
               "got %s", what(s->value));
    return NULL;
}

static void model_price(Setting *s, double *out)
{
    setting_num(s, 0, INFINITY, false, false, out);
}

static void model_tokens(Setting *s, int64_t *out)
{
    double v;
    if (setting_num(s, 1, 1e12, false, true, &v))
        *out = (int64_t)v;
}

static void model_setting(Setting *s, ModelInfo *mi, Decl *d)
{
    const char *k = s->key;
    if (strcmp(k, "provider") == 0)
        mi->provider = setting_word(s, providers);
    else if (strcmp(k, "name") == 0)
        mi->api_name = setting_string(s);
    else if (strcmp(k, "usd_per_mtok_in") == 0)
        model_price(s, &mi->usd_in);
    else if (strcmp(k, "usd_per_mtok_out") == 0)
        model_price(s, &mi->usd_out);
    else if (strcmp(k, "base_url") == 0)
        mi->base_url = setting_string(s);
    else if (strcmp(k, "api_key_env") == 0)
        mi->api_key_env = setting_key_env(s);
    else if (strcmp(k, "structured_output") == 0)
        mi->output = setting_word(s, output_modes);
    else if (strcmp(k, "temperature") == 0)
        mi->temperature = setting_bool(s);
    else if (strcmp(k, "max_tokens_param") == 0)
        mi->max_tokens_param = setting_word(s, token_params);
    else if (strcmp(k, "max_output_tokens") == 0)
        model_tokens(s, &mi->max_output_tokens);
    else if (strcmp(k, "context_window") == 0)
        model_tokens(s, &mi->context_window);
    else if (strcmp(k, "min_cache_tokens") == 0)
        model_tokens(s, &mi->min_cache_tokens);
    else if (strcmp(k, "usd_per_mtok_cache_write") == 0)
        model_price(s, &mi->cache_write);
    else if (strcmp(k, "usd_per_mtok_cache_write_1h") == 0)
        model_price(s, &mi->cache_write_1h);
    else if (strcmp(k, "usd_per_mtok_cache_read") == 0)
        model_price(s, &mi->cache_read);
    else if (strcmp(k, "usd_per_mtok_batch_in") == 0)
        model_price(s, &mi->batch_in);
    else if (strcmp(k, "usd_per_mtok_batch_out") == 0)
        model_price(s, &mi->batch_out);
    else if (strcmp(k, "rpm") == 0)
        setting_num(s, 0, INFINITY, true, false, &mi->rpm);
    else if (strcmp(k, "tpm") == 0)
        setting_num(s, 0, INFINITY, true, false, &mi->tpm);
    else if (strcmp(k, "retires") == 0) {
        mi->retires = setting_date(s);
        mi->retires_setting = s;
    } else if (strcmp(k, "replaced_by") == 0)
        mi->replaced_by = setting_model(s, d);
    else if (strcmp(k, "alias_of") == 0)
        mi->alias_of = setting_model(s, d);
    else if (strcmp(k, "accepts_sensitive") == 0)
        mi->sensitive_ok = setting_bool(s) == 1;
}

/* Settings that only one provider understands. */
static void model_provider_fit(Decl *d, ModelInfo *mi)
{
    if (!mi->provider)
        return;
    bool anth = strcmp(mi->provider, "anthropic") == 0;
    bool oai = strcmp(mi->provider, "openai") == 0;
    Setting *s = setting_get(&d->settings, "structured_output");
    if (s && mi->output && ((anth && (strcmp(mi->output, "json_schema") == 0 ||
                                      strcmp(mi->output, "json_object") == 0)) ||
                            (oai && (strcmp(mi->output, "output_config") == 0 ||
                                     strcmp(mi->output, "tool") == 0)))) {
        diag_error(s->value->span, E0910, "structured_output '%s' is not spoken by provider %s",
                   mi->output, mi->provider);
        diag_help(anth ? "Anthropic's modes are output_config, tool and prompt"
                       : "OpenAI's modes are json_schema, json_object and prompt");
    }
    s = setting_get(&d->settings, "max_tokens_param");
    if (s && anth && mi->max_tokens_param && strcmp(mi->max_tokens_param, "max_tokens") != 0)
        diag_error(s->value->span, E0910, "Anthropic's token cap is always 'max_tokens'");
}

/* model -> 'model' name '{' setting* '}' */
static void check_model(Decl *d)
{
    ModelInfo *mi = arena_alloc(sizeof *mi);
    d->sema = mi;
    mi->temperature = -1;
    mi->cache_write = mi->cache_write_1h = mi->cache_read = -1;
    mi->batch_in = mi->batch_out = -1;
    Setting *ps = setting_get(&d->settings, "provider");
    const char *pv = ps && ps->value->kind == N_NAME ? ps->value->name : NULL;
    bool alias = setting_get(&d->settings, "alias_of") != NULL;
    if (!ps && !alias) {
        diag_error(d->name_span, E0904, "model '%s' has no provider", d->name);
        diag_help("add 'provider: anthropic', 'provider: openai' or 'provider: mock'");
    } else if (!alias && !setting_get(&d->settings, "name") && pv &&
               (strcmp(pv, "anthropic") == 0 || strcmp(pv, "openai") == 0)) {
        diag_error(d->name_span, E0904, "model '%s' has no name", d->name);
        diag_help("add the provider's model name, e.g. 'name: \"claude-haiku-5-5\"'");
    }
    Setting *first[MAX_KEYS] = { 0 };
    for (int i = 0; i < d->settings.len; i++)
        if (setting_ok(&d->settings, i, first, model_keys, "model", d->name))
            model_setting(d->settings.items[i], mi, d);
    if (alias && d->settings.len > 1) {
        Setting *s = d->settings.items[0] == setting_get(&d->settings, "alias_of")
                     ? d->settings.items[1] : d->settings.items[0];
        diag_error(s->key_span, E0909, "model '%s' is an alias: it takes every setting from its "
                   "target", d->name);
        diag_help("declare a model of its own instead of 'alias_of' to change '%s'", s->key);
    }
    model_provider_fit(d, mi);
}

/* ---- agents ---------------------------------------------------------------- */

static const char *const agent_keys[] = {
    "model", "prompt", "system", "temperature", "max_tokens", "retries", "timeout", "cache",
    "tools", "max_tool_calls", "max_tool_result_tokens", NULL,
};

/* A name that must be a declared model (`model: m`, `using m`). */
static Decl *resolve_model(const char *name, Span sp)
{
    Decl *d = lookup_decl(name);
    if (d && d->kind == D_MODEL)
        return d;
    if (d) {
        diag_error(sp, E0402, "'%s' is %s, not a model", name, kind_name(d->kind));
        note_decl(d);
    } else {
        diag_error(sp, E0405, "unknown model '%s'", name);
        if (!help_closest_decl(name, 1u << D_MODEL, NULL))
            diag_help("declare it with 'model %s { ... }', or 'import \"models\"' for the "
                      "common ones", name);
    }
    return NULL;
}

/* prompt, system: template strings that see only the agent's parameters */
static Node *agent_text(Setting *s)
{
    if (s->value->kind != N_STRING) {
        diag_error(s->value->span, E0903, "%s must be a string, got %s", s->key, what(s->value));
        return NULL;
    }
    check_expr(s->value, true);
    return s->value;
}

static void agent_model(Setting *s, AgentInfo *ai)
{
    if (s->value->kind != N_NAME)
        diag_error(s->value->span, E0903, "model must be the name of a model, got %s", what(s->value));
    else if ((ai->model = resolve_model(s->value->name, s->value->span))) {
        s->value->type = ty_model;
        ai->model_span = s->value->span;
        caps_model_used(ai->model, s->value->span);
    }
}

/* cache: on | off */
static void agent_cache(Setting *s, AgentInfo *ai)
{
    static const char *const onoff[] = { "on", "off", NULL };
    const char *w = setting_word(s, onoff);
    if (w)
        ai->no_cache = strcmp(w, "off") == 0;
}

static void agent_setting(Setting *s, AgentInfo *ai)
{
    double v;
    if (strcmp(s->key, "model") == 0)
        agent_model(s, ai);
    else if (strcmp(s->key, "prompt") == 0)
        ai->prompt = agent_text(s);
    else if (strcmp(s->key, "system") == 0)
        ai->system = agent_text(s);
    else if (strcmp(s->key, "temperature") == 0) {
        setting_num(s, 0, 2, false, false, &ai->temperature);
        ai->temperature_setting = s;
    } else if (strcmp(s->key, "cache") == 0)
        agent_cache(s, ai);
    else if (strcmp(s->key, "max_tokens") == 0 && setting_num(s, 1, 1000000, false, true, &v))
        ai->max_tokens = (int64_t)v;
    else if (strcmp(s->key, "retries") == 0 && setting_num(s, 0, 10, false, true, &v))
        ai->retries = (int64_t)v;
    else if (strcmp(s->key, "timeout") == 0)
        setting_duration(s, 1000, 3600000, &ai->timeout_ms);
    else if (strcmp(s->key, "tools") == 0)
        ai->tools_setting = s;                   /* resolved once every declaration is */
    else if (strcmp(s->key, "max_tool_calls") == 0 && setting_num(s, 1, 100, false, true, &v))
        ai->max_tool_calls = (int64_t)v;
    else if (strcmp(s->key, "max_tool_result_tokens") == 0
             && setting_num(s, 1, 1000000, false, true, &v))
        ai->max_tool_result_tokens = (int64_t)v;
}

static void agent_required(Decl *d)
{
    if (!setting_get(&d->settings, "model")) {
        diag_error(d->name_span, E0905, "agent '%s' has no model", d->name);
        diag_help("add 'model: claude_haiku' (with 'import \"models\"') or a model you declare");
    }
    if (!setting_get(&d->settings, "prompt")) {
        diag_error(d->name_span, E0905, "agent '%s' has no prompt", d->name);
        diag_help("add 'prompt: \"...\"' with {{ }} for its parameters");
    }
}

/* agent -> 'agent' name '(' params ')' '->' type '{' setting* '}' */
static void check_agent(Decl *d)
{
    AgentInfo *ai = arena_alloc(sizeof *ai);
    ai->temperature = -1;
    ai->max_tokens = 1024;
    ai->retries = 2;
    ai->timeout_ms = 60000;
    ai->max_tool_result_tokens = 4000;
    d->sema = ai;
    check_dup_fields(&d->fields, "parameter");
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        f->type = resolve_type(f->texpr);
        check_param_name(f);
    }
    d->ret_type = d->ret ? resolve_type(d->ret) : ty_error;
    d->type = d->ret_type;
    if (!d->ret)
        diag_error(d->name_span, E0905, "agent '%s' has no return type", d->name);
    agent_required(d);
    int mark = scope_push();
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (!scope_find(f->name))
            f->sym = scope_bind(SYM_PARAM, f->name, f->span, f->type);
    }
    S.cur_agent = d;
    Setting *first[MAX_KEYS] = { 0 };
    for (int i = 0; i < d->settings.len; i++)
        if (setting_ok(&d->settings, i, first, agent_keys, "agent", d->name))
            agent_setting(d->settings.items[i], ai);
    S.cur_agent = NULL;
    scope_pop(mark);
    if (ai->model && ai->model->sema)
        caps_check_agent(d, ai->model, ai->model_span);
}

/* ---- http operations --------------------------------------------------------- */

static const char *const http_keys[] = {
    "method", "url", "headers", "body", "write", "retries", "timeout", "rps", "approval",
    "paging", "next", "cursor_param", "items", "max_pages", NULL,
};
static const char *const http_methods[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };
static const char *const approval_words[] = { "required", "none", NULL };

/* env.NAME or env("NAME") in an http operation: a secret, allowed only in
 * headers (which every log masks); the binary needs it set to start. */
static Type *http_secret(Node *at, const char *name)
{
    HttpInfo *hi = S.cur_agent->sema;
    if (strcmp(S.http_part, "header") != 0) {
        diag_error(at->span, E1201, "'env.%s' is a secret and cannot go in the %s of http operation "
                   "'%s'", name, S.http_part, S.cur_agent->name);
        diag_help("secrets go only in headers, which traces, the journal, errors and --dry-run "
                  "mask; a %s is logged as it is", S.http_part);
        return ty_error;
    }
    for (int i = 0; i < hi->secrets.len; i++)
        if (strcmp(hi->secrets.items[i], name) == 0)
            return ty_string;
    vec_push(&hi->secrets, (void *)name);
    return ty_string;
}

/* A template of the operation (url, a header): its parameters and, in a
 * header, env.NAME. */
static void http_template(Node *v, const char *part)
{
    S.http_part = part;
    check_expr(v, true);
}

/* url: "https://host/path/{{ p }}": the scheme written out, or the whole
 * base as the first interpolation (a parameter holding "https://host"). */
static Node *http_url(Setting *s)
{
    if (s->value->kind != N_STRING) {
        diag_error(s->value->span, E1202, "url must be a string, got %s", what(s->value));
        return NULL;
    }
    http_template(s->value, "url");
    StrPart *p = s->value->parts.items[0];
    if (!p->expr && strncmp(p->text, "https://", 8) != 0 && strncmp(p->text, "http://", 7) != 0) {
        diag_error(s->value->span, E1202, "url must start with 'https://' or 'http://'");
        diag_help("write the whole URL, or start it with a parameter that holds the base: "
                  "\"{{ base }}/v3/contacts\"");
    }
    return s->value;
}

/* headers: ["Name: value {{ p }}", ...] */
static void http_headers(Setting *s, HttpInfo *hi)
{
    if (s->value->kind != N_LIST) {
        diag_error(s->value->span, E1203, "headers must be a list of \"Name: value\" strings, got %s",
                   what(s->value));
        return;
    }
    s->value->type = ty_list(ty_string);
    for (int i = 0; i < s->value->args.len; i++) {
        Node *h = s->value->args.items[i];
        if (h->kind != N_STRING) {
            diag_error(h->span, E1203, "a header must be a \"Name: value\" string, got %s", what(h));
            continue;
        }
        http_template(h, "header");
        StrPart *p = h->parts.items[0];
        size_t k = 0;
        while (!p->expr && k < p->len && (isalnum((unsigned char)p->text[k]) || p->text[k] == '-'))
            k++;
        if (p->expr || k == 0 || k >= p->len || p->text[k] != ':') {
            diag_error(h->span, E1203, "a header must start with its name and ':', as in "
                       "\"Authorization: Bearer {{ env.TOKEN }}\"");
            continue;
        }
        if (k == 15 && strncasecmp(p->text, "Idempotency-Key", 15) == 0) {
            diag_error(h->span, E1203, "the runtime sets 'Idempotency-Key' on every write");
            diag_help("it is derived from the run and the call, so a resumed run resends "
                      "the same key; drop this header");
            continue;
        }
        vec_push(&hi->headers, h);
    }
}

static const char *const paging_words[] = { "cursor", "next_url", "link", NULL };

/* paging: cursor | next_url | link, with next: and cursor_param: */
static void http_paging(Decl *d, HttpInfo *hi)
{
    Setting *ps = setting_get(&d->settings, "paging");
    Setting *ns = setting_get(&d->settings, "next");
    Setting *cs = setting_get(&d->settings, "cursor_param");
    const char *w = ps ? setting_word(ps, paging_words) : NULL;
    hi->paging = !w ? PAGE_NONE : w[0] == 'c' ? PAGE_CURSOR : w[0] == 'n' ? PAGE_NEXT_URL
                 : PAGE_LINK;
    hi->page_field = ns ? setting_string(ns) : NULL;
    hi->page_param = cs ? setting_string(cs) : NULL;
    if (ns && hi->paging != PAGE_CURSOR && hi->paging != PAGE_NEXT_URL && w)
        diag_error(ns->key_span, E1204, "next applies to paging: cursor and paging: next_url");
    if (cs && hi->paging != PAGE_CURSOR && w)
        diag_error(cs->key_span, E1204, "cursor_param applies to paging: cursor");
    if (!ps && (ns || cs))
        diag_error((ns ? ns : cs)->key_span, E1204, "%s without paging", ns ? "next" : "cursor_param");
    if ((hi->paging == PAGE_CURSOR || hi->paging == PAGE_NEXT_URL) && !ns) {
        diag_error(ps->key_span, E1204, "paging: %s needs next: the path of the next page's %s in "
                   "the answer", w, hi->paging == PAGE_CURSOR ? "cursor" : "URL");
        diag_help("for HubSpot's CRM API: next: \"paging.next.after\"");
    }
    if (hi->paging == PAGE_CURSOR && !cs) {
        diag_error(ps->key_span, E1204, "paging: cursor needs cursor_param: the query parameter that "
                   "takes the cursor");
        diag_help("for HubSpot's CRM API: cursor_param: \"after\"");
    }
}

static bool http_bool(Setting *s)
{
    if (s->value->kind != N_BOOL) {
        diag_error(s->value->span, E0903, "%s must be true or false, got %s", s->key, what(s->value));
        return false;
    }
    s->value->type = ty_bool;
    return s->value->ival != 0;
}

static void http_setting(Setting *s, HttpInfo *hi, Decl *d)
{
    double v;
    const char *w;
    if (strcmp(s->key, "method") == 0 && (w = setting_word(s, http_methods)))
        hi->method = w, hi->write = strcmp(w, "GET") != 0;
    else if (strcmp(s->key, "url") == 0)
        hi->url = http_url(s);
    else if (strcmp(s->key, "headers") == 0)
        http_headers(s, hi);
    else if (strcmp(s->key, "body") == 0) {
        bool was = S.in_template;
        S.in_template = true;                    /* no calls but len() */
        S.http_part = "body";
        Type *t = check_expr(s->value, true);
        S.in_template = was;
        if (t->kind == TY_VOID || t->kind == TY_NEVER || t->kind == TY_NULL) {
            diag_error(s->value->span, E1205, "body must be a value of the parameters, got %s",
                       what(s->value));
            return;
        }
        hi->body = s->value;
    } else if (strcmp(s->key, "retries") == 0 && setting_num(s, 0, 10, false, true, &v))
        hi->retries = (int64_t)v;
    else if (strcmp(s->key, "timeout") == 0)
        setting_duration(s, 1000, 3600000, &hi->timeout_ms);
    else if (strcmp(s->key, "rps") == 0)
        setting_num(s, 0, INFINITY, true, false, &hi->rps);
    else if (strcmp(s->key, "max_pages") == 0 && setting_num(s, 1, 1000000, false, true, &v))
        hi->max_pages = (int64_t)v;
    else if (strcmp(s->key, "approval") == 0 && (w = setting_word(s, approval_words)))
        hi->approval = strcmp(w, "required") == 0;
    else if (strcmp(s->key, "items") == 0)
        hi->items = setting_string(s);
}

/* What the settings say together: a method and a url; a body only where
 * the method sends one; paging only on a read returning a list; write
 * given explicitly only to mark a POST that reads (a search). */
static void http_consistent(Decl *d, HttpInfo *hi)
{
    Setting *ws = setting_get(&d->settings, "write");
    if (ws && hi->method) {
        bool w = http_bool(ws);
        if (w != hi->write && strcmp(hi->method, "POST") != 0) {
            diag_error(ws->value->span, E1206, "write: %s contradicts method %s", w ? "true" : "false",
                       hi->method);
            diag_help("only a POST may be marked 'write: false' (a search that changes nothing)");
        }
        hi->write = w;
    }
    if (!setting_get(&d->settings, "method")) {
        diag_error(d->name_span, E1207, "http operation '%s' has no method", d->name);
        diag_help("add 'method: GET' (or POST, PUT, PATCH, DELETE)");
    }
    if (!setting_get(&d->settings, "url")) {
        diag_error(d->name_span, E1207, "http operation '%s' has no url", d->name);
        diag_help("add 'url: \"https://api.example.com/v3/objects/{{ id }}\"'");
    }
    Setting *bs = setting_get(&d->settings, "body");
    if (bs && hi->method && strcmp(hi->method, "GET") == 0)
        diag_error(bs->key_span, E1205, "a GET request has no body");
    Setting *ps = setting_get(&d->settings, "paging");
    if (ps && hi->write) {
        diag_error(ps->key_span, E1204, "only a read pages, and '%s' is a write", d->name);
        diag_help("a POST that only reads (a search) says 'write: false'");
    }
    if (ps && d->ret_type->kind != TY_LIST && d->ret_type->kind != TY_ERROR) {
        diag_error(d->ret ? d->ret->span : d->name_span, E1204, "a paged read returns a list of its "
                   "pages' items, so its return type must be list<T>, got %s",
                   ty_str(d->ret_type));
    }
    Setting *as = setting_get(&d->settings, "approval");
    if (as && hi->approval && !hi->write)
        diag_error(as->key_span, E1206, "approval applies to writes, and '%s' is a read", d->name);
}

/* http -> 'http' name '(' params ')' ['->' type] '{' setting* '}' */
static void check_http(Decl *d)
{
    HttpInfo *hi = arena_alloc(sizeof *hi);
    hi->retries = 3;
    hi->timeout_ms = 30000;
    hi->max_pages = 1000;
    d->sema = hi;
    check_dup_fields(&d->fields, "parameter");
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        f->type = resolve_type(f->texpr);
    }
    d->ret_type = d->ret ? resolve_type(d->ret) : ty_void;
    d->type = d->ret_type;
    int mark = scope_push();
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (!scope_find(f->name))
            f->sym = scope_bind(SYM_PARAM, f->name, f->span, f->type);
    }
    S.cur_agent = d;
    Setting *first[MAX_KEYS] = { 0 };
    for (int i = 0; i < d->settings.len; i++) {
        Setting *s = d->settings.items[i];
        if (setting_ok(&d->settings, i, first, http_keys, "http operation", d->name)
            && strcmp(s->key, "write") != 0 && strcmp(s->key, "paging") != 0
            && strcmp(s->key, "next") != 0 && strcmp(s->key, "cursor_param") != 0)
            http_setting(s, hi, d);
    }
    S.cur_agent = NULL;
    S.http_part = NULL;
    scope_pop(mark);
    http_paging(d, hi);
    http_consistent(d, hi);
}

/* ---- tools: what an agent's model may call ---------------------------------- */

/* Whether an operation's URL lets its arguments choose the host: a base
 * parameter that opens it, or an interpolation before the path starts. */
static bool url_host_from_args(Node *url)
{
    if (!url || url->kind != N_STRING)
        return false;
    size_t seen = 0;                             /* literal bytes before the first {{ }} */
    char head[256];
    for (int i = 0; i < url->parts.len; i++) {
        StrPart *p = url->parts.items[i];
        if (p->expr) {
            head[seen] = '\0';
            const char *sch = strstr(head, "://");
            return !sch || !strchr(sch + 3, '/');
        }
        for (size_t k = 0; k < p->len && seen < sizeof head - 1; k++)
            head[seen++] = p->text[k];
    }
    return false;
}

/* An http operation as a tool: never a write that needs approval (a model
 * must never trigger a write no person approved), and never one whose
 * credentials would go to a host the model names. */
static void tool_http(Decl *a, Decl *t, Node *at)
{
    HttpInfo *hi = t->sema;
    if (!hi)
        return;
    if (hi->write && hi->approval) {
        diag_error(at->span, E0914, "agent '%s' cannot call http operation '%s' as a tool: it "
                   "writes, and its writes need approval", a->name, t->name);
        Setting *as = setting_get(&t->settings, "approval");
        diag_note(as ? as->span : t->name_span, "'%s' is declared with 'approval: required'",
                  t->name);
        diag_help("a model must never trigger a write that no person approved: call it from the "
                  "workflow with approved values, 'for x in approve(xs, \"title\") { %s(...) }'",
                  t->name);
        return;
    }
    if (hi->secrets.len && url_host_from_args(hi->url)) {
        diag_error(at->span, E0917, "http operation '%s' sends a secret (env.%s) to a host its "
                   "arguments choose; as a tool of agent '%s', the model would choose it",
                   t->name, (const char *)hi->secrets.items[0], a->name);
        diag_note(hi->url->span, "the host comes from an argument here");
        diag_help("write the host into the url ('https://api.example.com/...'), so that the "
                  "model chooses only the rest");
    }
}

/* One entry of tools: [...]: a declared http operation or agent, listed once. */
static Decl *tool_entry(Decl *a, AgentInfo *ai, Node *n)
{
    if (n->kind != N_NAME) {
        diag_error(n->span, E0912, "a tool is the name of an http operation or an agent, got %s",
                   what(n));
        return NULL;
    }
    Decl *t = lookup_decl(n->name);
    if (!t) {
        diag_error(n->span, E0912, "unknown tool '%s'", n->name);
        if (!help_closest_decl(n->name, 1u << D_AGENT | 1u << D_HTTP, NULL))
            diag_help("a tool is an http operation ('http %s(...) -> T { ... }') or an agent "
                      "declared in this file or one it imports", n->name);
        return NULL;
    }
    if (t->kind != D_HTTP && t->kind != D_AGENT) {
        diag_error(n->span, E0912, "'%s' is %s, not an http operation or an agent", n->name,
                   kind_name(t->kind));
        note_decl(t);
        return NULL;
    }
    for (int i = 0; i < ai->tools.len; i++)
        if (ai->tools.items[i] == t) {
            diag_error(n->span, E0916, "tool '%s' is listed twice", n->name);
            return NULL;
        }
    if (strlen(t->name) > 64) {
        diag_error(n->span, E0912, "tool '%s' has a name longer than the 64 characters the "
                   "providers take", n->name);
        return NULL;
    }
    if (t->kind == D_HTTP)
        tool_http(a, t, n);
    n->decl = t;                                 /* the agent reaches it (lint, graph) */
    return t;
}

/* The answer's own name beside the tools (the runtime's fr_http_schema_name:
 * its schema's name, else the first of these no tool has) must be free:
 * the providers refuse two tools of one name. */
static void answer_name_left(Decl *a, AgentInfo *ai, Setting *s)
{
    static const char *const names[] = { "answer", "final_answer", "answer_2", "answer_3",
                                         "answer_4", "answer_5", "answer_6", "answer_7" };
    size_t taken = 0;
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        for (int i = 0; i < ai->tools.len; i++)
            if (strcmp(((Decl *)ai->tools.items[i])->name, names[k]) == 0) {
                taken++;
                break;
            }
    if (s && taken == sizeof names / sizeof *names) {
        diag_error(s->value->span, E0912, "agent '%s' has tools named answer, final_answer and "
                   "answer_2 to answer_7, the names its answer may need", a->name);
        diag_help("rename one of them");
    }
}

/* tools: [op, agent, ...] with max_tool_calls: N, the loop's bound */
static void agent_tools(Decl *a)
{
    AgentInfo *ai = a->sema;
    Setting *s = ai ? ai->tools_setting : NULL;
    Setting *ms = setting_get(&a->settings, "max_tool_calls");
    if (!ai || (!s && !ms))
        return;
    if (s && s->value->kind != N_LIST) {
        diag_error(s->value->span, E0912, "tools must be a list of http operations and agents, "
                   "as in 'tools: [fetch_page, lookup_company]', got %s", what(s->value));
        return;
    }
    for (int i = 0; s && i < s->value->args.len; i++) {
        Decl *t = tool_entry(a, ai, s->value->args.items[i]);
        if (t)
            vec_push(&ai->tools, t);
    }
    answer_name_left(a, ai, s);
    if (s && s->value->args.len == 0) {
        diag_error(s->value->span, E0912, "tools lists no tool");
        diag_help("name the http operations and agents the model may call, or remove 'tools'");
    }
    if (s && !ms) {
        diag_error(s->key_span, E0913, "agent '%s' has tools but no bound on its tool calls",
                   a->name);
        diag_help("add 'max_tool_calls: 8': the model answers without tools once it has made "
                  "that many calls, as 'loop max N' ends a loop");
    } else if (!s) {
        diag_error(ms->key_span, E0913, "max_tool_calls without tools");
        diag_help("list what the model may call with 'tools: [...]', or remove max_tool_calls");
    }
    if (ai->model && ai->model->sema && ai->tools.len)
        caps_check_tools(a, ai->model, a->name_span);
}

/* Depth-first over agents' agent tools: an agent that reaches itself is an
 * error at the tool that closes the cycle.  state: 0 new, 1 open, 2 done. */
static void tool_cycles(Decl *a, Map *state, Vec *stack)
{
    map_put(state, a->name, (void *)1);
    vec_push(stack, a);
    AgentInfo *ai = a->sema;
    Setting *s = ai ? ai->tools_setting : NULL;
    for (int i = 0; ai && i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        if (t->kind != D_AGENT)
            continue;
        intptr_t st = (intptr_t)map_get(state, t->name);
        if (st == 1) {
            const char *path = "";
            int from = stack->len - 1;
            while (from > 0 && stack->items[from] != t)
                from--;
            for (int k = from; k < stack->len; k++)
                path = arena_printf("%s%s -> ", path, ((Decl *)stack->items[k])->name);
            Node *at = NULL;
            for (int k = 0; s && s->value->kind == N_LIST && k < s->value->args.len; k++) {
                Node *n = s->value->args.items[k];
                if (n->kind == N_NAME && n->decl == t)
                    at = n;
            }
            diag_error(at ? at->span : a->name_span, E0915, "agent '%s' reaches itself through "
                       "its tools: %s%s", t->name, path, t->name);
            diag_help("an agent's tools form a tree: call the agent again from the workflow "
                      "instead");
        } else if (st == 0) {
            tool_cycles(t, state, stack);
        }
    }
    stack->len--;
    map_put(state, a->name, (void *)2);
}

/* After every declaration: each agent's tools resolved and checked. */
static void check_tools(Program *p)
{
    Map state = { 0 };
    Vec stack = { 0 };
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == D_AGENT && d->sema && lookup_decl(d->name) == d) {
            agent_tools(d);
            AgentInfo *ai = d->sema;             /* prompts and tool results: personal data */
            if (ai->model && ai->model->sema)
                sens_check_agent(d, ai->model, ai->model_span);
        }
    }
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == D_AGENT && d->sema && lookup_decl(d->name) == d
            && !map_get(&state, d->name))
            tool_cycles(d, &state, &stack);
    }
}

/* ---- names, fields, literals ----------------------------------------------- */

/* A name not in scope that is a later stage of the pipeline being checked
 * (an earlier stage of that name would be in scope). */
static bool later_stage(Node *n)
{
    for (Pipe *p = S.pipe; p; p = p->prev) {
        Node *cur = p->node->stmts.items[p->cur];
        int i = (int)(intptr_t)map_get(&p->names, n->name) - 1;
        if (i >= p->cur) {
            Node *st = p->node->stmts.items[i];
            if (i == p->cur)
                diag_error(n->span, E0812, "stage '%s' uses its own value", cur->name);
            else
                diag_error(n->span, E0812, "stage '%s' uses '%s', a later stage", cur->name, n->name);
            diag_note(nspan(st), "'%s' declared here", st->name);
            diag_help("a stage sees only the item and the stages before it");
            return true;
        }
    }
    return false;
}

/* A name bound by another statement of the same parallel block. */
static void par_dependency(Node *n, Sym *s)
{
    for (Par *p = S.par; p; p = p->prev) {
        if (s->id < p->first_id || s->id >= p->cur_start)
            continue;
        const char *user = p->cur->kind == N_LET ? arena_printf("'%s'", p->cur->name)
                                                 : "this statement";
        diag_error(n->span, E0813, "statements in 'parallel { }' run at once; %s uses '%s'", user,
                   s->name);
        diag_note(s->span, "'%s' declared here", s->name);
        diag_help("move it after the 'parallel { }' block");
        return;
    }
}

/* The first enum that has a value of this name (for "write 'Enum.value'"). */
static Decl *enum_with_value(const char *name)
{
    if (!S.enum_of_value_made) {
        S.enum_of_value_made = true;
        for (int i = 0; i < S.prog->decls.len; i++) {
            Decl *d = S.prog->decls.items[i];
            for (int k = 0; d->kind == D_ENUM && k < d->values.len; k++) {
                const char *v = ((Field *)d->values.items[k])->name;
                if (!map_get(&S.enum_of_value, v))
                    map_put(&S.enum_of_value, v, d);
            }
        }
    }
    return map_get(&S.enum_of_value, name);
}

static void unknown_name(Node *n)
{
    Decl *d = lookup_decl(n->name);
    if (d && !S.cur_agent) {
        diag_error(n->span, E0402, "'%s' is %s, not a value", n->name, kind_name(d->kind));
        if (d->kind == D_ENUM && d->values.len)
            diag_help("write a value of it, e.g. '%s.%s'", d->name,
                      ((Field *)d->values.items[0])->name);
        note_decl(d);
    } else if (S.cur_agent && S.cur_agent->kind == D_HTTP) {
        diag_error(n->span, E0404, "unknown name '%s' in the %s of http operation '%s'", n->name,
                   S.http_part, S.cur_agent->name);
        help_closest_field(&S.cur_agent->fields, n->name);
        diag_help("an http operation sees only its own parameters (and env.NAME in its "
                  "headers); pass '%s' as a parameter", n->name);
    } else if (S.cur_agent) {
        diag_error(n->span, E0404, "unknown name '%s' in a template of agent '%s'", n->name,
                   S.cur_agent->name);
        help_closest_field(&S.cur_agent->fields, n->name);
        diag_help("agent prompts see only their own parameters; pass '%s' as a parameter",
                  n->name);
    } else {
        diag_error(n->span, E0403, "unknown variable '%s'", n->name);
        Decl *e = enum_with_value(n->name);
        if (e)
            diag_help("for the value of enum '%s', write '%s.%s'", e->name, e->name, n->name);
        else
            help_closest_local(n->name);
    }
}

/* name -> a local, parameter, item or stage value */
static Type *check_name(Node *n)
{
    Sym *s = scope_find(n->name);
    if (!s) {
        if (!later_stage(n))
            unknown_name(n);
        return ty_error;
    }
    par_dependency(n, s);
    n->sym = s;
    s->reads++;
    if (s->type->kind == TY_OPT && S.facts.len && fact_holds(expr_path(n)))
        return s->type->elem;
    return s->type;
}

/* field -> Enum '.' value */
static Type *check_enum_value(Node *n, Decl *e)
{
    n->decl = e;
    n->lhs->decl = e;
    n->lhs->type = ty_decl(e);
    if (enum_index(e, n->name) < 0) {
        unknown_enum_value(e, n->name, nspan(n));
        return ty_error;
    }
    return ty_decl(e);
}

/* field -> expr '.' name */
static Type *check_field(Node *n)
{
    Node *l = n->lhs;
    if (S.cur_agent && S.cur_agent->kind == D_HTTP && l->kind == N_NAME
        && strcmp(l->name, "env") == 0 && !scope_find("env")) {
        n->builtin = B_ENV;                      /* env.NAME: a secret of the environment */
        return http_secret(n, n->name);
    }
    if (l->kind == N_NAME && !scope_find(l->name)) {
        Decl *d = lookup_decl(l->name);
        if (d && d->kind == D_ENUM)
            return check_enum_value(n, d);
    }
    Type *lt = check_expr(l, true);
    if (lt->kind == TY_ERROR)
        return ty_error;
    if (lt->kind == TY_OPT && lt->elem->kind == TY_SCHEMA) {
        optional_misuse(l, lt, arena_printf("used for '.%s'", n->name));
        return ty_error;
    }
    if (lt->kind != TY_SCHEMA) {
        const char *ts = ty_str(lt);
        diag_error(nspan(n), E0502, "%s is %s %s, not a record, so it has no field '%s'", what(l),
                   strchr("aeiouAEIOU", ts[0]) ? "an" : "a", ts, n->name);
        return ty_error;
    }
    Decl *sd = lt->decl;
    Field *f = field_find(sd, n->name);
    if (!f) {
        diag_error(nspan(n), E0409, "schema '%s' has no field '%s'", sd->name, n->name);
        help_closest_field(&sd->fields, n->name);
        note_decl(sd);
        return ty_error;
    }
    if (f->type->kind == TY_OPT && S.facts.len && fact_holds(expr_path(n)))
        return f->type->elem;
    return f->type;
}

/* string -> '"' (text | '{{' expr '}}')* '"' */
static Type *check_string(Node *n)
{
    bool was = S.in_template;
    S.in_template = true;
    for (int i = 0; i < n->parts.len; i++) {
        StrPart *p = n->parts.items[i];
        if (!p->expr)
            continue;
        Type *t = check_expr(p->expr, true);
        if (t->kind == TY_VOID)
            diag_error(p->expr->span, E0503, "%s has no value to put in the text", what(p->expr));
    }
    S.in_template = was;
    return ty_string;
}

/* list -> '[' (expr (',' expr)*)? ']' */
static Type *check_list(Node *n)
{
    Type *acc = NULL;
    for (int i = 0; i < n->args.len; i++) {
        Node *e = n->args.items[i];
        Type *t = check_expr(e, true);
        if (t->kind == TY_VOID) {
            diag_error(e->span, E0503, "%s has no value to put in a list", what(e));
            t = ty_error;
        }
        Type *j = acc ? join(acc, t) : t;
        if (!j) {
            diag_error(e->span, E0504, "list element has type %s, but the elements before it are %s",
                       ty_str(t), ty_str(acc));
            j = ty_error;
        }
        acc = j;
    }
    if (acc && acc->kind == TY_ERROR)
        return ty_error;
    return ty_list(acc && acc->kind != TY_NEVER ? acc : NULL);
}

/* Characters (code points) of UTF-8 text, as the runtime counts a length. */
static size_t utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((uint8_t)*s & 0xC0) != 0x80;
    return n;
}

/* A literal value against a field's constraint (7 for `int in 1..5`). */
static double const_len(Node *v);

/* The value of a constant number expression: literals, unary minus, + - * /
 * of constants (int / int truncates, as at run time), len() of a constant;
 * false when it is not constant (or divides by zero: the run reports it). */
static bool const_num(Node *v, double *x, bool *is_int)
{
    double a, b;
    bool ia, ib;
    if (!v)
        return false;
    if (lit_num(v, x, is_int))
        return true;
    if (v->kind == N_CALL && v->builtin == B_LEN && v->args.len == 1) {
        *x = const_len(v->args.items[0]);
        *is_int = true;
        return *x >= 0;
    }
    if (v->kind != N_BINARY || v->op > OP_DIV || !const_num(v->lhs, &a, &ia)
        || !const_num(v->rhs, &b, &ib))
        return false;
    *is_int = ia && ib;
    switch (v->op) {
    case OP_ADD: *x = a + b; break;
    case OP_SUB: *x = a - b; break;
    case OP_MUL: *x = a * b; break;
    default:
        if (b == 0)
            return false;
        *x = *is_int ? trunc(a / b) : a / b;
        break;
    }
    return fabs(*x) < 9e15;                      /* past that, int arithmetic would fail */
}

/* The length of a constant string or list literal (characters, items), or -1. */
static double const_len(Node *v)
{
    const char *s = plain_string(v);
    if (s)
        return (double)utf8_len(s);
    return v && v->kind == N_LIST ? v->args.len : -1;
}

/* A constant value against a field's constraint (7 for `int in 1..5`, 2 + 4,
 * "" for `len 1..80`): what the compiler can prove wrong is an error; the
 * rest is checked when the record is built (cg.c). */
static void check_literal_constraint(Field *f, Node *v)
{
    Constraint *c = &f->cons;
    double x, lo, hi;
    bool i0, i1, i2;
    if (c->kind == CONS_NONE || !lit_num(c->lo, &lo, &i1) || !lit_num(c->hi, &hi, &i2))
        return;
    if (c->kind == CONS_RANGE) {
        if (const_num(v, &x, &i0) && (x < lo || x > hi))
            diag_error(v->span, E0704, "field '%s' must be between %s and %s, got %s", f->name,
                       fmt_num(lo), fmt_num(hi), fmt_num(x));
        return;
    }
    double len = const_len(v);
    if (len >= 0 && (len < lo || len > hi))
        diag_error(v->span, E0704, "field '%s' must have a length between %s and %s, got %s", f->name,
                   fmt_num(lo), fmt_num(hi), fmt_num(len));
}

/* One `name: value` of a record literal; given maps the names given so far
 * to their FieldInit. */
static void record_init(Node *n, Decl *d, int i, Map *given)
{
    FieldInit *fi = n->inits.items[i];
    Field *f = field_find(d, fi->name);
    Type *t = check_expr(fi->value, true);
    if (!f) {
        diag_error(fi->span, E0409, "schema '%s' has no field '%s'", d->name, fi->name);
        help_closest_field(&d->fields, fi->name);
        note_decl(d);
        return;
    }
    FieldInit *g = map_get(given, fi->name);
    if (g) {
        diag_error(fi->span, E0702, "field '%s' is given twice", fi->name);
        diag_note(g->span, "first given here");
        return;
    }
    map_put(given, fi->name, fi);
    if (!ty_assignable(f->type, t)) {
        diag_error(fi->value->span, E0703, "field '%s' of %s expects %s, got %s", f->name, d->name,
                   ty_str(f->type), ty_str(t));
        if (t->kind == TY_OPT && ty_assignable(f->type, t->elem))
            help_optional(fi->value);
        return;
    }
    check_literal_constraint(f, fi->value);
}

/* A list of names, 'a', 'b', 'c', built in linear time. */
typedef struct NameList {
    FILE *f;                                     /* the memory stream, NULL before the first */
    char *buf;                                   /* its buffer */
    size_t len;                                  /* its length */
    int count;                                   /* names added */
} NameList;

static void names_add(NameList *l, const char *name)
{
    if (!l->f)
        l->f = arena_memstream(&l->buf, &l->len);
    fprintf(l->f, "%s'%s'", l->count++ ? ", " : "", name);
}

/* The list as arena text ("" if empty). */
static const char *names_text(NameList *l)
{
    if (!l->f)
        return "";
    fclose(l->f);
    char *r = arena_strndup(l->buf, l->len);
    free(l->buf);
    return r;
}

static void record_missing(Node *n, Decl *d, Map *given)
{
    NameList missing = { 0 };
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (f->type && f->type->kind == TY_OPT)
            continue;
        if (!map_get(given, f->name))
            names_add(&missing, f->name);
    }
    int count = missing.count;
    const char *text = names_text(&missing);
    if (!count)
        return;
    diag_error(nspan(n), E0701, "record '%s' is missing field%s %s", d->name, count > 1 ? "s" : "",
               text);
    note_decl(d);
}

/* record -> Schema '{' (name ':' expr)* '}' */
static Type *check_record(Node *n)
{
    Decl *d = lookup_decl(n->name);
    if (!d || d->kind != D_SCHEMA) {
        if (d) {
            diag_error(nspan(n), E0402, "'%s' is %s, not a schema", n->name, kind_name(d->kind));
            note_decl(d);
        } else {
            diag_error(nspan(n), E0406, "unknown schema '%s'", n->name);
            help_closest_decl(n->name, 1u << D_SCHEMA, NULL);
        }
        for (int i = 0; i < n->inits.len; i++)
            check_expr(((FieldInit *)n->inits.items[i])->value, true);
        return ty_error;
    }
    n->decl = d;
    Map given = { 0 };
    for (int i = 0; i < n->inits.len; i++)
        record_init(n, d, i, &given);
    record_missing(n, d, &given);
    return ty_decl(d);
}

/* ---- calls ----------------------------------------------------------------- */

static const char *const builtin_names[] = {
    "", "read_jsonl", "write_jsonl", "len", "env", "approve", "escalate", "fail",
    "read_csv", "write_csv", NULL,
};
static const int builtin_arity[] = { 0, 1, 2, 1, 1, 2, 2, 1, 1, 2 };
static const char *const builtin_sig[] = {
    "", "read_jsonl<Schema>(path: string) -> list<Schema>",
    "write_jsonl(xs: list<T>, path: string)", "len(xs: list<T> | string) -> int",
    "env(name: string) -> string?", "approve(xs: list<T>, title: string) -> list<T>",
    "escalate(item, why: string)", "fail(why: string)",
    "read_csv<Schema>(path: string) -> list<Schema>",
    "write_csv(xs: list<Schema>, path: string)",
};

const char *sema_builtin_signature(int b)
{
    return b > 0 && (size_t)b < sizeof builtin_sig / sizeof builtin_sig[0] ? builtin_sig[b] : NULL;
}

static Builtin builtin_find(const char *name)
{
    for (int b = 1; builtin_names[b]; b++)
        if (strcmp(builtin_names[b], name) == 0)
            return (Builtin)b;
    return B_NONE;
}

static void check_using(Node *n)
{
    if (!n->using_model)
        return;
    if (n->builtin) {
        diag_error(n->using_span, E0208, "'using' applies to agent calls, not to '%s'", n->name);
        return;
    }
    Decl *m = resolve_model(n->using_model, n->using_span);
    if (!m)
        return;
    caps_model_used(m, n->using_span);
    Decl *a = lookup_decl(n->name);
    if (a && a->kind == D_AGENT && a->sema) {
        caps_check_agent(a, m, n->using_span);
        sens_check_agent(a, m, n->using_span);
    }
}

/* An argument of a builtin against the type it needs. */
static void builtin_arg(Node *n, int i, Type *want, const char *param)
{
    if (i >= n->args.len)
        return;
    Node *a = n->args.items[i];
    if (ty_assignable(want, a->type))
        return;
    diag_error(a->span, E0602, "'%s' expects %s for '%s', got %s", n->name, ty_str(want), param,
               ty_str(a->type));
    if (a->type->kind == TY_OPT && ty_assignable(want, a->type->elem))
        help_optional(a);
}

/* A list argument of a builtin: its type, or NULL after an error. */
static Type *builtin_list(Node *n, int i, const char *param)
{
    if (i >= n->args.len)
        return NULL;
    Node *a = n->args.items[i];
    Type *t = a->type;
    if (t->kind == TY_LIST || t->kind == TY_ERROR || t->kind == TY_NEVER)
        return t;
    if (t->kind == TY_OPT && t->elem->kind == TY_LIST)
        optional_misuse(a, t, arena_printf("passed to '%s'", n->name));
    else
        diag_error(a->span, E0603, "'%s' expects a list for '%s', got %s", n->name, param, ty_str(t));
    return NULL;
}

/* What a CSV cell cannot hold: a record, or a list of anything but
 * scalars (a list of scalars is one cell, its items separated by ';'). */
static bool csv_cell_type(Type *t)
{
    if (t->kind == TY_OPT)
        t = t->elem;
    if (t->kind == TY_LIST)
        t = t->elem ? t->elem : ty_string;
    if (t->kind == TY_OPT)
        t = t->elem;
    return t->kind != TY_SCHEMA && t->kind != TY_LIST;
}

/* A schema read or written as CSV: every field is one cell. */
static void check_csv_schema(Node *n, Span at, Type *t)
{
    if (t->kind != TY_SCHEMA)
        return;
    for (int i = 0; i < t->decl->fields.len; i++) {
        Field *f = t->decl->fields.items[i];
        if (!f->type || csv_cell_type(f->type))
            continue;
        diag_error(at, E0607, "'%s': a CSV cell cannot hold field '%s' of %s (%s)", n->name,
                   f->name, t->decl->name, ty_str(f->type));
        diag_note(f->span, "'%s' declared here", f->name);
        diag_help("a CSV cell holds a string, number, bool, enum value, or a list of those "
                  "separated by ';'; use read_jsonl/write_jsonl for nested records");
        return;
    }
}

/* read_jsonl<Schema>(path), read_csv<Schema>(path) */
static Type *builtin_read(Node *n)
{
    builtin_arg(n, 0, ty_string, "path");
    if (n->targs.len != 1) {
        diag_error(nspan(n), E0604, "'%s' needs one schema type argument, got %d", n->name,
                   n->targs.len);
        diag_help("write '%s<Lead>(path)'", n->name);
        return ty_error;
    }
    TypeExpr *te = n->targs.items[0];
    Type *t = resolve_type(te);
    if (t->kind != TY_SCHEMA && t->kind != TY_ERROR) {
        diag_error(te->span, E0604, "'%s' reads records: its type argument must be a schema, "
                   "got %s", n->name, ty_str(t));
        return ty_error;
    }
    if (n->builtin == B_READ_CSV)
        check_csv_schema(n, te->span, t);
    return t->kind == TY_ERROR ? ty_error : ty_list(t);
}

/* write_jsonl(xs, path), write_csv(xs, path) */
static Type *builtin_write(Node *n)
{
    Type *t = builtin_list(n, 0, "xs");
    builtin_arg(n, 1, ty_string, "path");
    if (n->builtin != B_WRITE_CSV || !t || t->kind != TY_LIST || !t->elem)
        return ty_void;
    Node *xs = n->args.items[0];
    if (t->elem->kind != TY_SCHEMA && t->elem->kind != TY_ERROR)
        diag_error(xs->span, E0607, "'write_csv' writes records, one per row: expected a list of a "
                   "schema, got %s", ty_str(t));
    else
        check_csv_schema(n, xs->span, t->elem);
    return ty_void;
}

static const char *const read_keys[] = { "on_bad", "rejects", NULL };
static const char *const read_csv_keys[] = { "on_bad", "rejects", "delimiter", NULL };
static const char *const on_bad_words[] = { "halt", "skip", NULL };

/* delimiter: one character that is not a quote or a line break */
static void check_delimiter(Setting *s)
{
    const char *d = setting_string(s);
    if (d && (strlen(d) != 1 || strchr("\"\r\n", d[0]) || (unsigned char)d[0] >= 0x80))
        diag_error(s->value->span, E0903, "delimiter must be one ASCII character other than '\"' or "
                   "a line break, got %s", what(s->value));
}

/* The options of a read: (on_bad: halt | skip, rejects: path, delimiter: ","). */
static void check_read_opts(Node *n)
{
    bool csv = n->builtin == B_READ_CSV;
    Setting *rejects = NULL, *on_bad = NULL, *first[MAX_KEYS] = {0};
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (!setting_ok(&n->opts, i, first, csv ? read_csv_keys : read_keys,
                        csv ? "'read_csv'" : "'read_jsonl'", NULL))
            continue;
        if (strcmp(s->key, "on_bad") == 0) {
            on_bad = s;
            setting_word(s, on_bad_words);
        } else if (strcmp(s->key, "rejects") == 0) {
            rejects = s;
            Type *t = check_expr(s->value, true);
            if (!ty_assignable(ty_string, t))
                diag_error(s->value->span, E0903, "rejects must be a path (string), got %s", ty_str(t));
        } else {
            check_delimiter(s);
        }
    }
    bool skip = on_bad && on_bad->value->kind == N_SKIP;
    if (rejects && !skip) {
        diag_error(rejects->key_span, E0608, "'rejects' is written only with 'on_bad: skip'");
        diag_help("add 'on_bad: skip', or remove 'rejects'");
    }
}

/* Named arguments are options of reads only: report them anywhere else. */
static void no_named_args(Node *n)
{
    if (!n->opts.len)
        return;
    Setting *s = n->opts.items[0];
    diag_error(s->key_span, E0210, "named arguments are not supported");
    diag_help("pass arguments in the order they are declared; '(key: value)' options go "
              "right after the list of a 'for'");
}

/* escalate(item, why): only where there is an item to hand over. */
static Type *builtin_escalate(Node *n)
{
    builtin_arg(n, 1, ty_string, "why");
    if (n->args.len && ((Node *)n->args.items[0])->type->kind == TY_VOID)
        diag_error(((Node *)n->args.items[0])->span, E0811, "'escalate' needs an item, got no value");
    if (!in_item_body()) {
        diag_error(nspan(n), E0809, "'escalate' outside a loop body");
        diag_help("'escalate' hands the current item of a 'for', 'parallel for' or 'pipeline' "
                  "to a person");
    }
    return ty_never;
}

static Type *builtin_result(Node *n, Builtin b)
{
    Type *t;
    switch (b) {
    case B_READ_JSONL:
    case B_READ_CSV:
        return builtin_read(n);
    case B_WRITE_JSONL:
    case B_WRITE_CSV:
        return builtin_write(n);
    case B_LEN:
        if (n->args.len && ((Node *)n->args.items[0])->type->kind == TY_STRING)
            return ty_int;
        if (n->args.len && (t = ((Node *)n->args.items[0])->type)->kind != TY_LIST &&
            t->kind != TY_OPT && t->kind != TY_ERROR && t->kind != TY_NEVER) {
            diag_error(((Node *)n->args.items[0])->span, E0602, "'len' expects a list or a string, got %s",
                       ty_str(t));
            return ty_int;
        }
        builtin_list(n, 0, "xs");
        return ty_int;
    case B_ENV:
        builtin_arg(n, 0, ty_string, "name");
        return ty_opt(ty_string);
    case B_APPROVE:
        t = builtin_list(n, 0, "xs");
        builtin_arg(n, 1, ty_string, "title");
        return t ? t : ty_error;
    case B_ESCALATE:
        return builtin_escalate(n);
    case B_FAIL:
        builtin_arg(n, 0, ty_string, "why");
        return ty_never;
    default:
        return ty_error;
    }
}

/* call -> builtin ('<' type '>')? '(' args ')' */
static Type *check_builtin(Node *n, Builtin b)
{
    n->builtin = b;
    for (int i = 0; i < n->args.len; i++)
        check_expr(n->args.items[i], true);
    if (S.in_template && b != B_LEN && b != B_ENV) {
        diag_error(nspan(n), E0606, "a template cannot call '%s'", n->name);
        diag_help("templates interpolate values; call it as a statement of the workflow");
        return ty_error;
    }
    check_using(n);
    if (b == B_ENV && S.cur_agent && S.cur_agent->kind == D_HTTP && n->args.len == 1) {
        const char *name = plain_string(n->args.items[0]);
        if (name)
            return http_secret(n, name);
        diag_error(((Node *)n->args.items[0])->span, E1209, "env() in an http operation needs the "
                   "variable's name as a string literal");
        return ty_error;
    }
    if (b == B_READ_JSONL || b == B_READ_CSV)
        check_read_opts(n);
    else
        no_named_args(n);
    if (b != B_READ_JSONL && b != B_READ_CSV && n->targs.len)
        diag_error(nspan(n), E0605, "'%s' takes no type arguments", n->name);
    if (n->args.len != builtin_arity[b]) {
        diag_error(nspan(n), E0601, "'%s' expects %d argument%s, got %d", n->name, builtin_arity[b],
                   builtin_arity[b] == 1 ? "" : "s", n->args.len);
        diag_help("%s", builtin_sig[b]);
    }
    return builtin_result(n, b);
}

/* call -> agent '(' args ')' ('using' model)? */
static Type *check_agent_call(Node *n, Decl *d)
{
    n->decl = d;
    n->site = ++S.next_site;
    if (S.in_template) {
        diag_error(nspan(n), E0606, "a template cannot call agent '%s'", n->name);
        diag_help("call it in the workflow with 'let', then interpolate the result");
    }
    if (n->targs.len)
        diag_error(nspan(n), E0605, "agent '%s' takes no type arguments", n->name);
    no_named_args(n);
    if (n->args.len != d->fields.len) {
        diag_error(nspan(n), E0601, "agent '%s' expects %d argument%s, got %d", n->name, d->fields.len,
                   d->fields.len == 1 ? "" : "s", n->args.len);
        note_decl(d);
    }
    for (int i = 0; i < n->args.len; i++) {
        Node *a = n->args.items[i];
        Type *t = check_expr(a, true);
        if (i >= d->fields.len)
            continue;
        Field *p = d->fields.items[i];
        if (ty_assignable(p->type, t))
            continue;
        diag_error(a->span, E0602, "agent '%s' expects %s for parameter '%s', got %s", n->name,
                   ty_str(p->type), p->name, ty_str(t));
        if (t->kind == TY_OPT && ty_assignable(p->type, t->elem))
            help_optional(a);
        note_decl(d);
    }
    check_using(n);
    return d->ret_type ? d->ret_type : ty_error;
}

/* call -> http '(' args ')': a typed request, checked like an agent call */
static Type *check_http_call(Node *n, Decl *d)
{
    n->decl = d;
    n->site = ++S.next_site;
    if (S.in_template) {
        diag_error(nspan(n), E0606, "a template cannot call http operation '%s'", n->name);
        diag_help("call it in the workflow with 'let', then interpolate the result");
    }
    if (n->targs.len)
        diag_error(nspan(n), E0605, "http operation '%s' takes no type arguments", n->name);
    if (n->using_model)
        diag_error(n->using_span, E0208, "'using' applies to agent calls, not to http operation '%s'",
                   n->name);
    if (n->args.len != d->fields.len) {
        diag_error(nspan(n), E0601, "http operation '%s' expects %d argument%s, got %d", n->name,
                   d->fields.len, d->fields.len == 1 ? "" : "s", n->args.len);
        note_decl(d);
    }
    for (int i = 0; i < n->args.len; i++) {
        Node *a = n->args.items[i];
        Type *t = check_expr(a, true);
        if (i >= d->fields.len)
            continue;
        Field *p = d->fields.items[i];
        if (ty_assignable(p->type, t))
            continue;
        diag_error(a->span, E0602, "http operation '%s' expects %s for parameter '%s', got %s",
                   n->name, ty_str(p->type), p->name, ty_str(t));
        if (t->kind == TY_OPT && ty_assignable(p->type, t->elem))
            help_optional(a);
        note_decl(d);
    }
    return d->ret_type ? d->ret_type : ty_error;
}

/* call -> name '(' args ')' */
static Type *check_call(Node *n)
{
    Decl *d = lookup_decl(n->name);
    if (d && d->kind == D_AGENT)
        return check_agent_call(n, d);
    if (d && d->kind == D_HTTP)
        return check_http_call(n, d);
    Builtin b = builtin_find(n->name);
    if (b)
        return check_builtin(n, b);
    if (d) {
        diag_error(nspan(n), E0402, "'%s' is %s, not an agent or a function", n->name,
                   kind_name(d->kind));
        if (d->kind == D_SCHEMA)
            diag_help("a record is written '%s { field: value, ... }'", n->name);
        note_decl(d);
    } else {
        diag_error(nspan(n), E0407, "unknown agent or function '%s'", n->name);
        help_closest_decl(n->name, 1u << D_AGENT | 1u << D_HTTP, builtin_names + 1);
    }
    for (int i = 0; i < n->args.len; i++)
        check_expr(n->args.items[i], true);
    return ty_error;
}

/* ---- operators ------------------------------------------------------------- */

static bool is_num(Type *t)
{
    return t->kind == TY_INT || t->kind == TY_FLOAT;
}

/* A bool operand (of if, where, and, or, not); op names the operator, or
 * is NULL for a condition. */
static void want_bool(Node *e, Type *t, const char *op)
{
    if (t->kind == TY_BOOL || t->kind == TY_ERROR || t->kind == TY_NEVER)
        return;
    if (t->kind == TY_OPT && t->elem->kind == TY_BOOL)
        optional_misuse(e, t, op ? arena_printf("used with '%s'", op) : "used as a condition");
    else
        diag_error(e->span, E0505, "%s must be bool, got %s", what(e), ty_str(t));
}

static Type *check_arith(Node *n, Type *lt, Type *rt)
{
    const char *op = ast_binop_name(n->op);
    if (lt->kind == TY_ERROR || rt->kind == TY_ERROR)
        return ty_error;
    if (lt->kind == TY_OPT || rt->kind == TY_OPT) {
        Node *e = lt->kind == TY_OPT ? n->lhs : n->rhs;
        optional_misuse(e, e->type, arena_printf("used with '%s'", op));
        return ty_error;
    }
    if (is_num(lt) && is_num(rt))
        return lt->kind == TY_INT && rt->kind == TY_INT ? ty_int : ty_float;
    if (n->op == OP_ADD && lt->kind == TY_STRING && rt->kind == TY_STRING)
        return ty_string;
    diag_error(n->span, E0506, "cannot apply '%s' to %s and %s", op, ty_str(lt), ty_str(rt));
    if (n->op == OP_ADD && (lt->kind == TY_STRING || rt->kind == TY_STRING))
        diag_help("to build text from other values, use a template: \"{{ a }}{{ b }}\"");
    return ty_error;
}

/* == and != against null: only an optional can be null. */
static Type *check_null_cmp(Node *n, Node *other, Type *t)
{
    if (t->kind == TY_OPT || t->kind == TY_ERROR)
        return ty_bool;
    if (t->kind == TY_NULL)
        diag_error(n->span, E0507, "comparing null with null");
    else
        diag_error(other->span, E0507, "%s is not optional (%s), so it is never null", what(other),
                   ty_str(t));
    return ty_bool;
}

static bool comparable(Type *a, Type *b, bool ordered)
{
    if (is_num(a) && is_num(b))
        return true;
    if (a->kind != b->kind)
        return false;
    if (a->kind == TY_STRING)
        return true;
    if (ordered)
        return false;
    if (a->kind == TY_BOOL)
        return true;
    return a->kind == TY_ENUM && a->decl == b->decl;
}

/* `c.intent == "spam"`: say how to write the enum value. */
static void help_enum_literal(Type *et, Node *other)
{
    const char *text = plain_string(other);
    if (et->kind == TY_ENUM && text && enum_index(et->decl, text) >= 0)
        diag_help("write the enum value as '%s.%s'", et->decl->name, text);
}

static Type *check_compare(Node *n, Type *lt, Type *rt)
{
    bool ordered = n->op != OP_EQ && n->op != OP_NE;
    if (!ordered && n->rhs->kind == N_NULL)
        return check_null_cmp(n, n->lhs, lt);
    if (!ordered && n->lhs->kind == N_NULL)
        return check_null_cmp(n, n->rhs, rt);
    if (lt->kind == TY_ERROR || rt->kind == TY_ERROR)
        return ty_bool;
    if (ordered && (lt->kind == TY_OPT || rt->kind == TY_OPT)) {
        Node *e = lt->kind == TY_OPT ? n->lhs : n->rhs;
        optional_misuse(e, e->type, arena_printf("compared with '%s'", ast_binop_name(n->op)));
        return ty_bool;
    }
    Type *a = lt->kind == TY_OPT ? lt->elem : lt, *b = rt->kind == TY_OPT ? rt->elem : rt;
    if (comparable(a, b, ordered))
        return ty_bool;
    if (a->kind == b->kind && (a->kind == TY_SCHEMA || a->kind == TY_LIST))
        diag_error(n->span, E0508, "cannot compare %s with '%s'", a->kind == TY_LIST ? "lists" : "records",
                   ast_binop_name(n->op));
    else if (ordered && a->kind == b->kind && a->kind != TY_ENUM)
        diag_error(n->span, E0508, "'%s' compares numbers or strings, got %s", ast_binop_name(n->op),
                   ty_str(a));
    else {
        diag_error(n->span, E0508, "cannot compare %s with %s", ty_str(lt), ty_str(rt));
        help_enum_literal(a->kind == TY_ENUM ? a : b, a->kind == TY_ENUM ? n->rhs : n->lhs);
    }
    return ty_bool;
}

/* coalesce -> expr "??" expr: the left must be optional */
static Type *check_coalesce(Node *n)
{
    Type *lt = check_expr(n->lhs, true);
    Type *rt = check_expr(n->rhs, true);
    if (lt->kind == TY_ERROR)
        return ty_error;
    if (lt->kind != TY_OPT) {
        diag_error(n->lhs->span, E0509, "left side of '?\?' is not optional (%s)", ty_str(lt));
        diag_help("remove '?\? ...': %s always has a value", what(n->lhs));
        return lt;
    }
    Type *inner = lt->elem;
    if (!ty_assignable(lt, rt)) {
        diag_error(n->rhs->span, E0510, "right side of '?\?' must be %s, got %s", ty_str(inner),
                   ty_str(rt));
        return inner;
    }
    if (rt->kind == TY_OPT || rt->kind == TY_NULL)
        return lt;
    return inner->kind == TY_INT && rt->kind == TY_FLOAT ? ty_float : inner;
}

/* and/or: the right side sees what the left establishes */
static Type *check_logic(Node *n)
{
    Type *lt = check_expr(n->lhs, true);
    want_bool(n->lhs, lt, ast_binop_name(n->op));
    int mark = S.facts.len;
    facts_of(n->lhs, n->op == OP_AND);
    Type *rt = check_expr(n->rhs, true);
    facts_pop(mark);
    want_bool(n->rhs, rt, ast_binop_name(n->op));
    return ty_bool;
}

/* binary -> expr op expr */
static Type *check_binary(Node *n)
{
    if (n->op == OP_AND || n->op == OP_OR)
        return check_logic(n);
    if (n->op == OP_COALESCE)
        return check_coalesce(n);
    Type *lt = check_expr(n->lhs, true);
    Type *rt = check_expr(n->rhs, true);
    if (n->op <= OP_DIV)
        return check_arith(n, lt, rt);
    return check_compare(n, lt, rt);
}

/* unary -> 'not' expr | '-' expr */
static Type *check_unary(Node *n)
{
    Type *t = check_expr(n->operand, true);
    if (n->op == OP_NOT) {
        want_bool(n->operand, t, "not");
        return ty_bool;
    }
    if (t->kind == TY_ERROR || is_num(t))
        return t;
    if (t->kind == TY_OPT && is_num(t->elem))
        optional_misuse(n->operand, t, "negated");
    else
        diag_error(n->operand->span, E0511, "cannot negate %s", ty_str(t));
    return ty_error;
}

/* ---- control flow ---------------------------------------------------------- */

/* if -> 'if' expr block ('else' (block | if))? */
static Type *check_if(Node *n, bool used)
{
    Type *ct = check_expr(n->cond, true);
    want_bool(n->cond, ct, NULL);
    int mark = S.facts.len;
    facts_of(n->cond, true);
    Type *tt = check_expr(n->then, used && n->els);
    facts_pop(mark);
    if (!n->els)
        return ty_void;
    facts_of(n->cond, false);
    Type *et = check_expr(n->els, used);
    facts_pop(mark);
    Type *j = join(tt, et);
    if (j)
        return j;
    if (!used)
        return ty_void;
    diag_error(head_span(n->els->span, 1), E0512, "'if' and 'else' have different types: %s and %s",
               ty_str(tt), ty_str(et));
    return ty_error;
}

static bool match_arm_cases(MatchArm *arm, Decl *e, Type *et, Node **seen)
{
    bool ok = true;
    for (int i = 0; i < arm->pats.len; i++) {
        Node *p = arm->pats.items[i];
        if (!e)
            continue;
        int k = enum_index(e, p->name);
        if (k < 0) {
            unknown_enum_value(e, p->name, p->span);
            ok = false;
            continue;
        }
        p->decl = e;
        p->type = et;
        p->ival = k;                             /* the value's index, for the generated switch */
        if (seen[k]) {
            diag_error(p->span, E0802, "case '%s' is handled twice", p->name);
            diag_note(seen[k]->span, "first handled here");
        } else
            seen[k] = p;
    }
    return ok;
}

static void match_missing(Node *n, Decl *e, Node **seen)
{
    NameList list = { 0 };
    for (int i = 0; i < e->values.len; i++)
        if (!seen[i])
            names_add(&list, ((Field *)e->values.items[i])->name);
    const char *missing = names_text(&list);
    if (!*missing)
        return;
    diag_error(head_span(n->span, 5), E0801, "match does not handle %s", missing);
    note_decl(e);
    diag_help("add the missing cases, or '_ => ...' for all the others");
}

/* match -> 'match' expr '{' (cases '=>' expr | '_' '=>' expr)* '}' */
static Type *check_match(Node *n, bool used)
{
    Type *st = check_expr(n->lhs, true);
    Decl *e = NULL;
    if (st->kind == TY_ENUM)
        e = st->decl;
    else if (st->kind == TY_OPT && st->elem->kind == TY_ENUM)
        optional_misuse(n->lhs, st, "matched");
    else if (st->kind != TY_ERROR)
        diag_error(n->lhs->span, E0803, "'match' needs an enum value, got %s", ty_str(st));
    Node **seen = e ? arena_alloc(sizeof(Node *) * (e->values.len + 1)) : NULL;
    MatchArm *wild = NULL;
    Type *acc = NULL;
    bool bad = false, cases_ok = true;
    for (int i = 0; i < n->arms.len; i++) {
        MatchArm *arm = n->arms.items[i];
        if (arm->wildcard && wild) {
            diag_error(arm->span, E0802, "a second '_' arm");
            diag_note(wild->span, "first '_' arm here");
        }
        if (arm->wildcard && !wild)
            wild = arm;
        cases_ok &= match_arm_cases(arm, e, st, seen);
        Type *t = check_expr(arm->body, used);
        Type *j = acc ? join(acc, t) : t;
        if (!j && used && !bad) {
            diag_error(arm->body->span, E0513, "match arms have different types: %s and %s",
                       ty_str(acc), ty_str(t));
            bad = true;
        }
        acc = j ? j : ty_void;
    }
    if (e && !wild && cases_ok)                  /* a misspelled case already said it */
        match_missing(n, e, seen);
    if (bad)
        return ty_error;
    return acc ? acc : ty_void;
}

/* The element type of the list a loop walks. */
static Type *iter_elem(Node *e, Type *t)
{
    if (t->kind == TY_LIST)
        return t->elem ? t->elem : ty_error;
    if (t->kind == TY_OPT && t->elem->kind == TY_LIST)
        optional_misuse(e, t, "iterated");
    else if (t->kind != TY_ERROR)
        diag_error(e->span, E0804, "a loop needs a list, got %s", ty_str(t));
    return ty_error;
}

static const char *const for_keys[] = { "concurrency", "on_error", "shard", "shard_key", NULL };
static const char *const pfor_keys[] = { "concurrency", "on_error", "batch", "shard", "shard_key",
                                         NULL };
static const char *const stage_keys[] = { "concurrency", NULL };
static const char *const on_error_words[] = { "skip", "halt", NULL };

/* Options of parallel for, pipeline and stage. */
static void check_opts(Vec *opts, const char *const *keys, const char *kind, const char *name)
{
    double v;
    Setting *first[MAX_KEYS] = { 0 };
    for (int i = 0; i < opts->len; i++) {
        Setting *s = opts->items[i];
        if (!setting_ok(opts, i, first, keys, kind, name))
            continue;
        if (strcmp(s->key, "concurrency") == 0)
            setting_num(s, 1, 100000, false, true, &v);
        else if (strcmp(s->key, "batch") == 0 || strcmp(s->key, "shard") == 0) {
            if (s->value->kind != N_BOOL)
                diag_error(s->value->span, E0903, "%s must be true or false, got %s", s->key,
                           what(s->value));
            else
                s->value->type = ty_bool;
        } else if (strcmp(s->key, "shard_key") == 0) {
            if (s->value->kind != N_NAME)       /* the field itself: shard.c */
                diag_error(s->value->span, E0903, "shard_key must name a field of the items, "
                           "got %s", what(s->value));
        } else
            setting_word(s, on_error_words);
    }
}

static Type *loop_value(Type *bt)
{
    if (bt->kind == TY_ERROR)
        return ty_error;
    if (bt->kind == TY_VOID || bt->kind == TY_NEVER)
        return ty_void;
    return ty_list(bt);
}

/* A batch fan-out's body runs twice (once to collect its requests): it may
 * not do what must happen once; its agents' models should have a batch API. */
static void batch_body(Node *n, Node *opt)
{
    if (!n)
        return;
    if (n->kind == N_CALL && (n->builtin == B_ESCALATE || n->builtin == B_APPROVE ||
                              n->builtin == B_WRITE_JSONL || n->builtin == B_WRITE_CSV ||
                              (n->decl && n->decl->kind == D_HTTP))) {
        diag_error(nspan(n), E0903, "'%s' cannot be in the body of a 'parallel for' with "
                   "batch: true", n->name);
        diag_note(opt->span, "batch: true is set here");
        diag_help("the body runs twice, once to collect the batch's requests: do this after "
                  "the fan-out, on its results");
    }
    if (n->kind == N_CALL && n->decl && n->decl->kind == D_AGENT && n->decl->sema) {
        AgentInfo *ai = n->decl->sema;
        Decl *m = ai->model, *u = n->using_model ? lookup_decl(n->using_model) : NULL;
        if (n->using_model)                      /* the model it is sent to: `using`'s */
            m = u && u->kind == D_MODEL ? u : NULL;
        ModelInfo *mi = m && m->kind == D_MODEL ? m->sema : NULL;
        if (mi && mi->alias_of && mi->alias_of->sema)
            mi = mi->alias_of->sema;
        if (ai->tools.len) {
            diag_warning(nspan(n), W0016, "agent '%s' has tools: this fan-out's calls of it are "
                         "made one by one (a tool loop is no single request), at the normal "
                         "price", n->name);
            diag_note(opt->span, "batch: true is set here");
        } else if (mi && !caps_batch_api(mi)) {
            diag_warning(n->using_model ? n->using_span : nspan(n), W0016, "model '%s' has no "
                         "batch API: this fan-out's calls of '%s' are made one by one, at the "
                         "normal price", m->name, n->name);
            diag_note(opt->span, "batch: true is set here");
        }
    }
    Node *kids[] = { n->lhs, n->rhs, n->operand, n->cond, n->then, n->els, n->body, n->iter,
                     n->value };
    for (size_t i = 0; i < sizeof kids / sizeof kids[0]; i++)
        batch_body(kids[i], opt);
    for (int i = 0; i < n->args.len; i++)
        batch_body(n->args.items[i], opt);
    for (int i = 0; i < n->stmts.len; i++)
        batch_body(n->stmts.items[i], opt);
    for (int i = 0; i < n->inits.len; i++)
        batch_body(((FieldInit *)n->inits.items[i])->value, opt);
    for (int i = 0; i < n->arms.len; i++)
        batch_body(((MatchArm *)n->arms.items[i])->body, opt);
}

static void check_batch(Node *n)
{
    for (int i = 0; n->parallel && i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (strcmp(s->key, "batch") == 0 && s->value && s->value->kind == N_BOOL &&
            s->value->ival)
            batch_body(n->body, s->value);
    }
}

/* for -> 'parallel'? 'for' name 'in' expr options? ('where' expr)? block */
static Type *check_for(Node *n, bool used)
{
    Type *elem = iter_elem(n->iter, check_expr(n->iter, true));
    if (n->parallel)
        check_opts(&n->opts, pfor_keys, "'parallel for'", NULL);
    for (int i = 0; !n->parallel && i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        diag_error(s->key_span, E0805, "unknown option '%s' for a plain 'for'", s->key);
        diag_help("options apply to 'parallel for' and 'pipeline for'");
    }
    int mark = scope_push(), fmark = S.facts.len;
    S.depth += n->parallel;
    S.loops++;
    frame_push(n->parallel ? FR_ITEM_PAR : FR_ITEM);
    n->sym = scope_bind(SYM_ITEM, n->name, nspan(n), elem);
    dump_add(n->sym);
    if (n->cond) {
        want_bool(n->cond, check_expr(n->cond, true), NULL);
        facts_of(n->cond, true);
    }
    Type *bt = check_expr(n->body, used);
    frame_pop();
    S.loops--;
    S.depth -= n->parallel;
    facts_pop(fmark);
    check_batch(n);
    scope_pop(mark);
    return loop_value(bt);
}

/* stage -> 'stage' name options? block */
static void check_stage(Node *st, int idx)
{
    Node *pipe = S.pipe->node;
    check_opts(&st->opts, stage_keys, "stage", st->name);
    int mark = scope_push();
    Type *t = check_expr(st->body, true);
    scope_pop(mark);
    st->type = t;
    int first = (int)(intptr_t)map_get(&S.pipe->names, st->name) - 1;
    if (first < idx) {
        Node *o = pipe->stmts.items[first];
        diag_error(nspan(st), E0414, "duplicate stage '%s'", st->name);
        diag_note(nspan(o), "first declared here");
        return;
    }
    st->sym = scope_bind(SYM_STAGE, st->name, nspan(st), t);
    dump_add(st->sym);
}

/* pipeline -> 'pipeline' 'for' name 'in' expr options? '{' stage+ '}' */
static Type *check_pipeline(Node *n, bool used)
{
    Type *elem = iter_elem(n->iter, check_expr(n->iter, true));
    check_opts(&n->opts, for_keys, "'pipeline for'", NULL);
    Pipe p = { S.pipe, n, 0, { 0 } };
    for (int i = 0; i < n->stmts.len; i++) {
        Node *st = n->stmts.items[i];
        if (!map_get(&p.names, st->name))
            map_put(&p.names, st->name, (void *)(intptr_t)(i + 1));
    }
    S.pipe = &p;
    int mark = scope_push();
    S.depth++;
    S.loops++;
    frame_push(FR_ITEM_PAR);
    n->sym = scope_bind(SYM_ITEM, n->name, nspan(n), elem);
    dump_add(n->sym);
    Type *last = ty_void;
    for (p.cur = 0; p.cur < n->stmts.len; p.cur++) {
        Node *st = n->stmts.items[p.cur];
        check_stage(st, p.cur);
        last = st->type ? st->type : ty_error;
    }
    if (!n->stmts.len)
        diag_error(head_span(n->span, 8), E0806, "a pipeline needs at least one stage");
    frame_pop();
    S.loops--;
    S.depth--;
    scope_pop(mark);
    S.pipe = p.prev;
    return loop_value(last);
}

/* parblock -> 'parallel' '{' stmt* '}': statements at once, in the outer scope */
static Type *check_parblock(Node *n)
{
    Par p = { S.par, S.next_sym + 1, 0, NULL };
    S.par = &p;
    for (int i = 0; i < n->stmts.len; i++) {
        p.cur = n->stmts.items[i];
        p.cur_start = S.next_sym + 1;
        S.depth++;
        frame_push(FR_PAR);
        check_expr(p.cur, false);
        frame_pop();
        S.depth--;
    }
    S.par = p.prev;
    return ty_void;
}

/* loop -> 'loop' 'max' int block ('else' block)? */
static Type *check_loop(Node *n)
{
    if (n->cond && (n->cond->kind != N_INT || n->cond->ival < 1))
        diag_error(n->cond->span, E0807, "'loop max' needs a whole number of at least 1, got %s",
                   what(n->cond));
    if (n->cond)
        n->cond->type = ty_int;
    int outer = S.breaks;
    S.breaks = 0;
    frame_push(FR_LOOP);
    S.loops++;
    check_expr(n->body, false);
    S.loops--;
    frame_pop();
    bool broke = S.breaks > 0;
    S.breaks = outer;
    Type *et = n->els ? check_expr(n->els, false) : ty_void;
    /* with no break, the loop ends only through its else */
    return !broke && et->kind == TY_NEVER ? ty_never : ty_void;
}

/* break -> 'break': the innermost loop-like construct must be `loop` */
static Type *check_break(Node *n)
{
    for (int i = S.frames.len - 1; i >= 0; i--) {
        if (frame_at(i) == FR_LOOP) {
            S.breaks++;
            return ty_never;
        }
        diag_error(n->span, E0808, "'break' inside a %s cannot leave the enclosing 'loop'",
                   frame_at(i) == FR_PAR ? "'parallel { }' block" : "'for' body");
        diag_help("'skip' drops the current item; 'break' leaves a 'loop max N'");
        return ty_never;
    }
    diag_error(n->span, E0808, "'break' outside a loop");
    diag_help("'break' leaves a 'loop max N { ... }'");
    return ty_never;
}

static Type *check_skip(Node *n)
{
    if (!in_item_body()) {
        diag_error(n->span, E0809, "'skip' outside a loop body");
        diag_help("'skip' drops the current item of a 'for', 'parallel for' or 'pipeline'");
    }
    return ty_never;
}

/* return -> 'return' expr? */
static Type *check_return(Node *n)
{
    Type *t = n->value ? check_expr(n->value, true) : ty_void;
    for (int i = 0; i < S.frames.len; i++) {
        if (frame_at(i) == FR_ITEM_PAR || frame_at(i) == FR_PAR) {
            const char *where = frame_at(i) == FR_PAR ? "'parallel { }' block"
                                                      : "parallel loop or pipeline";
            diag_error(head_span(n->span, 6), E0810, "'return' inside a %s, which runs on other workers",
                       where);
            diag_help("return after it, from the values it collects");
            return ty_never;
        }
    }
    Decl *w = S.cur_wf;
    if (!w)
        return ty_never;
    if (!w->ret_type && n->value) {
        diag_error(n->value->span, E1001, "workflow '%s' has no return type, but this returns %s",
                   w->name, ty_str(t));
        diag_help("declare one: 'workflow %s(...) -> %s'", w->name, ty_str(t));
    } else if (w->ret_type && !n->value) {
        diag_error(n->span, E1001, "workflow '%s' must return %s", w->name, ty_str(w->ret_type));
    } else if (w->ret_type && !ty_assignable(w->ret_type, t)) {
        diag_error(n->value->span, E1001, "workflow '%s' returns %s, got %s", w->name,
                   ty_str(w->ret_type), ty_str(t));
        if (t->kind == TY_OPT && ty_assignable(w->ret_type, t->elem))
            help_optional(n->value);
        note_decl(w);
    }
    return ty_never;
}

/* ---- statements ------------------------------------------------------------ */

/* Why a construct has no value, when the reason is common. */
static void help_no_value(Node *v)
{
    Node *last = v;
    while (last->kind == N_FOR || last->kind == N_BLOCK) {
        Node *b = last->kind == N_FOR ? last->body : NULL;
        if (last->kind == N_BLOCK)
            b = last->stmts.len ? last->stmts.items[last->stmts.len - 1] : NULL;
        if (!b)
            return;
        last = b;
    }
    if (last->kind == N_IF && !last->els)
        diag_help("an 'if' without 'else' has no value; add 'else { ... }' (or 'else { skip }' "
                  "in a loop), or filter with 'where'");
    else if (last->kind == N_LET || last->kind == N_ASSIGN)
        diag_help("a block's value is its last expression, and this one ends with a statement");
}

/* let -> 'let' name '=' expr */
static Type *check_let(Node *n)
{
    Type *t = check_expr(n->value, true);
    if (t->kind == TY_VOID) {
        diag_error(n->value->span, E0503, "%s has no value to bind to '%s'", what(n->value), n->name);
        help_no_value(n->value);
        t = ty_error;
    } else if (t->kind == TY_NULL || (t->kind == TY_LIST && !t->elem)) {
        diag_error(n->value->span, E0514, "cannot infer the type of '%s' from %s", n->name,
                   what(n->value));
        diag_help("bind it from a value whose type is known");
        t = ty_error;
    }
    n->sym = scope_bind(SYM_VAR, n->name, nspan(n), t);
    if (S.par && S.par->cur == n)
        ((Sym *)n->sym)->depth = S.depth - 1;
    dump_add(n->sym);
    return ty_void;
}

/* assign -> name '=' expr */
static Type *check_assign(Node *n)
{
    Type *t = check_expr(n->value, true);
    Sym *s = scope_find(n->name);
    if (!s) {
        diag_error(nspan(n), E0403, "unknown variable '%s'", n->name);
        help_closest_local(n->name);
        diag_help("declare it with 'let %s = ...'", n->name);
        return ty_void;
    }
    n->sym = s;
    s->assigned = true;
    if (s->kind == SYM_STAGE) {
        diag_error(nspan(n), E0815, "cannot assign to stage value '%s'", n->name);
        diag_note(s->span, "'%s' declared here", s->name);
        diag_help("bind a new value with 'let' instead");
        return ty_void;
    }
    if (s->kind == SYM_PARAM || s->kind == SYM_ITEM) {
        diag_error(nspan(n), E0816, "cannot assign to %s '%s'", s->kind == SYM_PARAM
                   ? "workflow parameter" : "loop variable", n->name);
        diag_note(s->span, "'%s' declared here", s->name);
        diag_help("only 'let' bindings can be assigned: copy it first, 'let %s_now = %s', "
                  "and assign that", n->name, n->name);
        return ty_void;
    }
    if (!ty_assignable(s->type, t)) {
        diag_error(n->value->span, E0515, "cannot assign %s to '%s' of type %s", ty_str(t), n->name,
                   ty_str(s->type));
        if (t->kind == TY_OPT && ty_assignable(s->type, t->elem))
            help_optional(n->value);
        diag_note(s->span, "'%s' declared here", s->name);
    }
    if (s->depth < S.depth) {
        diag_error(nspan(n), E0814, "'%s' is declared outside this parallel code; assigning it here "
                   "is a data race", n->name);
        diag_note(s->span, "'%s' declared here", s->name);
        diag_help("give each item a value and combine the results after the loop");
    }
    facts_kill(s, n->value, t->kind == TY_OPT || t->kind == TY_NULL);
    return ty_void;
}

/* budget -> 'budget' '{' (usd | tokens | time) ':' value ... '}' */
static const char *const budget_keys[] = { "usd", "tokens", "time", NULL };

/* A budget key whose value names a workflow parameter: the parameter must
 * be a number (a string or an int of seconds for time), optional for no cap. */
static Field *budget_param(Setting *s, int k)
{
    Node *v = s->value;
    Decl *w = S.cur_wf;
    Field *f = NULL;
    for (int i = 0; w && i < w->fields.len; i++)
        if (strcmp(((Field *)w->fields.items[i])->name, v->name) == 0)
            f = w->fields.items[i];
    Sym *sym = scope_find(v->name);
    if (!f || !sym || sym != f->sym) {
        diag_error(v->span, E0903, "%s must be %s or a workflow parameter, got %s", s->key,
                   k == 2 ? "a duration such as 30s, 5m or 1h" : k == 1 ? "a whole number"
                   : "a number", what(v));
        if (w)
            diag_note(w->name_span, "the parameters of workflow '%s' are in its head",
                      w->name);
        return NULL;
    }
    Type *t = f->type && f->type->kind == TY_OPT ? f->type->elem : f->type;
    bool ok = t && (k == 0 ? t->kind == TY_FLOAT || t->kind == TY_INT
                    : k == 1 ? t->kind == TY_INT : t->kind == TY_INT || t->kind == TY_STRING);
    if (t && t->kind != TY_ERROR && !ok) {
        diag_error(v->span, E0903, "budget %s cannot be parameter '%s' of type %s", s->key, f->name,
                   ty_str(f->type));
        diag_note(f->span, "'%s' declared here", f->name);
        diag_help(k == 0 ? "give it type float (dollars)"
                  : k == 1 ? "give it type int (tokens)"
                  : "give it type string (a duration such as \"30m\") or int (seconds)");
        return NULL;
    }
    v->type = f->type;
    v->sym = sym;
    f->in_budget = true;
    return f;
}

static void budget_values(Node *n, double v[3])
{
    int64_t ms;
    v[0] = v[1] = v[2] = -1;
    Setting *first[MAX_KEYS] = { 0 };
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (!setting_ok(&n->opts, i, first, budget_keys, "'budget'", NULL))
            continue;
        int k = strcmp(s->key, "usd") == 0 ? 0 : strcmp(s->key, "tokens") == 0 ? 1 : 2;
        if (s->value->kind == N_NAME)
            budget_param(s, k);
        else if (k == 0)
            setting_num(s, 0, INFINITY, true, false, &v[0]);
        else if (k == 1)
            setting_num(s, 0, INFINITY, true, true, &v[1]);
        else if (setting_duration(s, 1, INT64_MAX, &ms))
            v[2] = (double)ms;
    }
}

static void budget_vs_workflow(Node *n, double v[3])
{
    double w[3];
    if (!S.wf_budget)
        return;
    /* values of the workflow budget were checked already; read them quietly */
    for (int k = 0; k < 3; k++) {
        Setting *ws = setting_get(&S.wf_budget->opts, budget_keys[k]);
        Setting *ps = setting_get(&n->opts, budget_keys[k]);
        bool is_int;
        w[k] = -1;
        if (!ws || !ps || v[k] < 0 || ws->value->kind == N_NAME)
            continue;                          /* a parameter's cap clips at run time */
        if (k == 2 && ws->value->kind == N_DURATION)
            w[k] = (double)ws->value->ival;
        else if (k < 2)
            lit_num(ws->value, &w[k], &is_int);
        if (w[k] <= 0 || v[k] <= w[k])
            continue;
        const char *pv = k == 2 ? fmt_ms((int64_t)v[k]) : fmt_num(v[k]);
        const char *wv = k == 2 ? fmt_ms((int64_t)w[k]) : fmt_num(w[k]);
        diag_error(ps->value->span, E0906, "phase '%s' budget %s %s exceeds the workflow's %s",
                   S.cur_phase ? S.cur_phase->name : "?", budget_keys[k], pv, wv);
        diag_note(ws->value->span, "the workflow's %s budget is set here", budget_keys[k]);
    }
}

static Type *check_budget(Node *n, BlockRole role, int idx)
{
    if (idx != 0 || role == BLK_PLAIN) {
        diag_error(head_span(n->span, 6), E0907, "'budget' must be the first statement of a workflow "
                   "or a phase");
    }
    double v[3];
    budget_values(n, v);
    if (role == BLK_WORKFLOW && idx == 0)
        S.wf_budget = n;
    else if (role == BLK_PHASE && idx == 0)
        budget_vs_workflow(n, v);
    return ty_void;
}

/* phase -> 'phase' name block: only at the workflow's top level */
static Type *check_phase(Node *n, BlockRole role)
{
    if (role != BLK_WORKFLOW)
        diag_error(nspan(n), E0908, "phase '%s' must be at the top level of the workflow", n->name);
    Node *first = map_get(&S.phases, n->name);
    if (first) {
        diag_error(nspan(n), E0413, "duplicate phase '%s'", n->name);
        diag_note(nspan(first), "first declared here");
    } else
        map_put(&S.phases, n->name, n);
    Node *was = S.cur_phase;
    S.cur_phase = n;
    Type *t = check_block(n->body, false, false, BLK_PHASE);
    S.cur_phase = was;
    return t->kind == TY_NEVER ? ty_never : ty_void;
}

/* One statement of a block; `used` for the last one of a used block. */
static Type *check_stmt(Node *s, bool used, BlockRole role, int idx)
{
    Type *t;
    if (s->kind == N_PHASE)
        t = check_phase(s, role);
    else if (s->kind == N_BUDGET)
        t = check_budget(s, role, idx);
    else
        return check_expr(s, used);
    s->type = t;
    return t;
}

/* block -> '{' stmt* '}': its value is the last statement's */
static Type *check_block(Node *b, bool used, bool new_scope, BlockRole role)
{
    if (b->kind != N_BLOCK)
        return check_expr(b, used);
    int mark = new_scope ? scope_push() : 0, fmark = S.facts.len;
    Type *t = ty_void;
    bool never = false;
    for (int i = 0; i < b->stmts.len; i++) {
        Node *s = b->stmts.items[i];
        t = check_stmt(s, used && i == b->stmts.len - 1, role, i);
        never |= t->kind == TY_NEVER;
        if (s->kind == N_IF && !s->els && s->then->type && s->then->type->kind == TY_NEVER)
            facts_of(s->cond, false);
    }
    facts_pop(fmark);
    if (new_scope)
        scope_pop(mark);
    b->type = never ? ty_never : t;
    return b->type;
}

/* ---- the expression walk --------------------------------------------------- */

static Type *check_expr_kind(Node *n, bool used)
{
    switch (n->kind) {
    case N_INT: return ty_int;
    case N_FLOAT: return ty_float;
    case N_BOOL: return ty_bool;
    case N_NULL: return ty_null;
    case N_DURATION:
        diag_error(n->span, E0516, "a duration is only allowed in settings (timeout, budget time)");
        return ty_error;
    case N_STRING: return check_string(n);
    case N_NAME: return check_name(n);
    case N_FIELD: return check_field(n);
    case N_CALL: return check_call(n);
    case N_LIST: return check_list(n);
    case N_RECORD: return check_record(n);
    case N_BINARY: return check_binary(n);
    case N_UNARY: return check_unary(n);
    case N_BLOCK: return check_block(n, used, true, BLK_PLAIN);
    case N_IF: return check_if(n, used);
    case N_MATCH: return check_match(n, used);
    case N_FOR: return check_for(n, used);
    case N_PIPELINE: return check_pipeline(n, used);
    case N_PARBLOCK: return check_parblock(n);
    case N_LOOP: return check_loop(n);
    case N_LET: return check_let(n);
    case N_ASSIGN: return check_assign(n);
    case N_PHASE: return check_phase(n, BLK_PLAIN);
    case N_BUDGET: return check_budget(n, BLK_PLAIN, 1);
    case N_RETURN: return check_return(n);
    case N_BREAK: return check_break(n);
    case N_SKIP: return check_skip(n);
    case N_STAGE:
    case N_ERROR:
    default: return ty_error;
    }
}

static Type *check_expr(Node *n, bool used)
{
    if (!n)
        return ty_error;
    Type *t = check_expr_kind(n, used);
    n->type = t ? t : ty_error;
    return n->type;
}

/* ---- workflows ------------------------------------------------------------- */

static bool flag_type(Type *t)
{
    Type *b = t->kind == TY_OPT ? t->elem : t;
    return b->kind == TY_STRING || b->kind == TY_INT || b->kind == TY_FLOAT ||
           b->kind == TY_BOOL || b->kind == TY_ERROR;
}

/* A default must be a literal of the parameter's type. */
static void check_default(Field *f)
{
    Node *v = f->deflt;
    Type *b = f->type->kind == TY_OPT ? f->type->elem : f->type;
    double x;
    bool is_int = false, ok;
    if (v->kind == N_NULL)
        ok = f->type->kind == TY_OPT;
    else if (b->kind == TY_STRING)
        ok = plain_string(v) != NULL;
    else if (b->kind == TY_BOOL)
        ok = v->kind == N_BOOL;
    else if (b->kind == TY_INT || b->kind == TY_FLOAT)
        ok = lit_num(v, &x, &is_int) && (is_int || b->kind == TY_FLOAT);
    else
        ok = true;
    if (!ok)
        diag_error(v->span, E1004, "default of '%s' must be a literal of type %s, got %s", f->name,
                   ty_str(f->type), what(v));
    v->type = v->kind == N_NULL ? ty_null : b;
}

static void workflow_params(Decl *d)
{
    check_dup_fields(&d->fields, "parameter");
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        f->type = resolve_type(f->texpr);
        check_param_name(f);
        if (!flag_type(f->type)) {
            diag_error(f->texpr->span, E1003, "workflow parameter '%s' has type %s, but parameters are "
                       "command-line flags", f->name, ty_str(f->type));
            diag_help("use string, int, float or bool (or an optional of one); read records "
                      "with read_jsonl<T>(path)");
        } else if (f->deflt)
            check_default(f);
        if (!scope_find(f->name)) {
            f->sym = scope_bind(SYM_PARAM, f->name, f->span, f->type);
            dump_add(f->sym);
        }
    }
}

/* The closing brace of a block, for "can end without returning". */
static Span closing_brace(Node *b)
{
    Span sp = b->span;
    if (sp.hi > sp.lo)
        sp.lo = sp.hi - 1;
    return sp;
}

/* workflow -> 'workflow' name '(' params ')' ('->' type)? block */
static void check_workflow(Decl *d)
{
    S.cur_wf = d;
    S.wf_budget = NULL;
    S.phases = (Map){0};
    d->ret_type = d->ret ? resolve_type(d->ret) : NULL;
    if (d->ret_type)
        d->type = d->ret_type;
    int mark = scope_push();
    workflow_params(d);
    Type *t = d->body ? check_block(d->body, false, false, BLK_WORKFLOW) : ty_error;
    if (d->ret_type && t->kind != TY_NEVER && t->kind != TY_ERROR && d->body) {
        diag_error(closing_brace(d->body), E1002, "workflow '%s' can end without returning %s",
                   d->name, ty_str(d->ret_type));
        diag_note(d->name_span, "'%s' declared here with return type %s", d->name,
                  ty_str(d->ret_type));
        diag_help("end every path with 'return ...', 'fail(...)' or both");
    }
    scope_pop(mark);
    S.cur_wf = NULL;
}

/* ---- the program ----------------------------------------------------------- */

/* Top-level names: one namespace for the file and its imports. */
static void register_decls(Program *p)
{
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == D_IMPORT || !d->name)
            continue;
        Decl *first = lookup_decl(d->name);
        if (first) {
            bool imported = d->file > first->file;   /* imports load after their importer */
            Decl *at = imported ? first : d, *other = imported ? d : first;
            diag_error(at->name_span, E0411, "'%s' is already declared", d->name);
            diag_note(other->name_span, "'%s' %s declared here", d->name,
                      imported ? "also" : "first");
            continue;
        }
        map_put(&S.decls, d->name, d);
        if ((unsigned)d->kind < DECL_KINDS)
            vec_push(&S.by_kind[d->kind], (void *)d->name);
        if (d->kind != D_WORKFLOW)
            continue;
        if (!S.workflow)
            S.workflow = d;
        else {
            diag_error(d->name_span, E0415, "a program has one workflow, and '%s' is a second",
                       d->name);
            diag_note(S.workflow->name_span, "'%s' declared here", S.workflow->name);
        }
    }
}

static void check_decls_of(Program *p, DeclKind k)
{
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind != k)
            continue;
        switch (k) {
        case D_SCHEMA: check_schema(d); break;
        case D_ENUM: check_enum(d); break;
        case D_MODEL: check_model(d); break;
        case D_AGENT: check_agent(d); break;
        case D_HTTP: check_http(d); break;
        case D_WORKFLOW: check_workflow(d); break;
        default: break;
        }
    }
}

bool sema_check(Program *p)
{
    int before = diag_error_count();
    if (!ty_error)
        ty_init();
    memset(&S, 0, sizeof S);
    caps_reset();
    S.prog = p;
    register_decls(p);
    for (int i = 0; i < p->decls.len; i++) {      /* make enum types before fields use them */
        Decl *d = p->decls.items[i];
        if (d->kind == D_SCHEMA || d->kind == D_ENUM)
            ty_decl(d);
    }
    check_decls_of(p, D_ENUM);
    check_decls_of(p, D_SCHEMA);
    schema_sccs(p);
    for (int i = 0; i < p->decls.len; i++)
        if (((Decl *)p->decls.items[i])->kind == D_SCHEMA)
            check_schema_cycle(p->decls.items[i]);
    check_decls_of(p, D_MODEL);
    caps_resolve_models(p);
    check_decls_of(p, D_AGENT);
    check_decls_of(p, D_HTTP);
    check_tools(p);
    check_decls_of(p, D_WORKFLOW);
    if (diag_error_count() == before)           /* writes that need approval get it */
        approval_check(p);
    if (diag_error_count() == before)           /* a sharded workflow can be */
        shard_check(p);
    return diag_error_count() == before;
}

Decl *sema_workflow(Program *p)
{
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == D_WORKFLOW)
            return d;
    }
    return NULL;
}

static const char *const sym_kind_names[] = { "let", "param", "item", "stage" };

void sema_dump_types(FILE *out, Program *p)
{
    (void)p;
    for (int i = 0; i < S.dumps.len; i++) {
        Sym *s = S.dumps.items[i];
        int line = 0, col = 0;
        if (s->span.file >= 0)
            src_linecol(s->span, &line, &col);
        fprintf(out, "%d:%d: %s %s: %s\n", line, col, sym_kind_names[s->kind], s->name,
                ty_str(s->type));
    }
}
