/*
 * cg.c: C generation.  The checked workflow becomes one C file that calls
 * libflowrt (flowrt.h) and nothing else.
 *
 * Two passes over the workflow body:
 *   1. the prepass (pre_*) numbers phases, finds budgets, the agents and
 *      models called, and decides where every local lives.  Each closure
 *      (parallel for body, pipeline stage, parallel-block statement) is its
 *      own C function (an Fn); a local read from a nested closure is
 *      "captured" and lives in its owner's frame struct, which closures
 *      reach through a chain of `up` pointers.
 *   2. generation (gen_*) writes each function into its own memory buffer.
 *      Every expression evaluates into a borrowed `json_t *` temporary (or a
 *      variable); calls that can fail are followed by `if (!t) goto FAIL;`
 *      where FAIL is `out` (the function's exit) or an inline for's
 *      `drop_N` (skip handling); `break` jumps to its loop's `brk_N`.  A
 *      function's prologue is written after its body, so that only the
 *      parameters, locals and labels the body uses are declared: the C
 *      compiles without warnings.
 * Type descriptors are created on first use and written, with the schemas
 * and enums they need, ahead of all code.
 *
 * C names made from the program's names never meet the libraries' names or
 * each other: a declaration's tables are flow_<Name>_<what> (flow_Lead_type,
 * flow_Lead_fields, flow_score_agent; jansson has json_type, flowrt.h
 * fr_type), functions and models agent_<name>, http_<name>, model_<name>,
 * locals v_<name> (v_<name>_<id> when taken), descriptors of list and
 * optional types t_<spelling> or t_<n>.
 */
#include "flowc.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* approve() needs the run journal (issue 5): the runtime has it (fr_journal.c). */
static const bool cg_journal_ready = true;

typedef enum FnKind { FN_MAIN, FN_BODY, FN_STAGE, FN_TASK, FN_RENDER } FnKind;
typedef enum InitKind { INIT_NONE, INIT_ARG, INIT_ITEM, INIT_PREV } InitKind;


typedef struct Fn Fn;

/* Where one flow name lives in C. */
typedef struct SymInfo {
    Sym *sym;                                    /* the name */
    Fn *owner;                                   /* the function whose local it is */
    const char *cname;                           /* C name: v_leads */
    bool read;                                   /* read or assigned somewhere */
    bool captured;                               /* used by a nested closure: in the frame */
    bool owned;                                  /* assigned later: fr_assign / fr_drop */
    InitKind init;                               /* set on entry from a parameter */
    int init_index;                              /* INIT_ARG, INIT_PREV: which one */
} SymInfo;

/* One generated C function. */
struct Fn {
    FnKind kind;                                 /* what it is */
    Fn *parent;                                  /* the enclosing function, NULL for wf_main */
    const char *name;                            /* its C name */
    bool has_closures;                           /* creates closures: needs a frame */
    Vec locals;                                  /* SymInfo*: its locals */
    KeyMap overrides;                            /* Sym* -> SymInfo*: pipeline names bound here */
    KeyMap stage_names;                          /* name -> SymInfo* of the stage values bound here */
    KeyMap cnames;                               /* C names taken (strings) */
    Node *pipe;                                  /* FN_STAGE: its pipeline */
    int stage;                                   /* FN_STAGE: its index in the pipeline */
    int frame;                                   /* fn_has_frame(): -1 not yet known */
    FILE *f;                                     /* body being written */
    char *buf;                                   /* the memory stream's buffer */
    size_t len;                                  /* its length */
    int indent;                                  /* current indentation level */
    bool used_out;                               /* `goto out` was written */
    const char **ids;                            /* identifiers the body uses (hash set) */
    size_t idcap;                                /* slots in ids, a power of two */
};

/* A type descriptor the C needs. */
typedef struct TypeEntry {
    Type *t;                                     /* the type */
    const char *key;                             /* what it is: "L3" list of entry 3, "S:Lead"... */
    const char *cname;                           /* flow_Lead_type, t_list_Lead */
    const char *spell;                           /* list_Lead: the readable part of cname */
    int index;                                   /* its place in cg.types */
} TypeEntry;

/* Where generation is, inside one function. */
typedef struct Gen {
    Fn *fn;                                      /* the function being written */
    const char *fail;                            /* label a failure jumps to; NULL: return false */
    bool *fail_used;                             /* set when fail is jumped to */
    int loop;                                    /* innermost `loop` id, 0 if none */
    bool loop_direct;                            /* no inline for between here and that loop */
    bool *brk_used;                              /* set when brk_<loop> is jumped to */
    Decl *agent;                                 /* rendering this agent's prompt, or NULL */
    int phase;                                   /* the phase being run, -1 outside */
} Gen;

/* The state of one cg_program call. */
static struct {
    Program *p;                                  /* the program */
    Decl *w;                                     /* the workflow */
    Fn *main;                                    /* wf_main */
    int tmp;                                     /* temporaries, numbered across the file */
    int label;                                   /* loops and closures, numbered */
    Vec fns;                                     /* Fn*: every function, for the frames */
    Vec phases;                                  /* Node*: N_PHASE in order */
    Vec phase_budgets;                           /* Node*: each phase's N_BUDGET or NULL */
    Node *wf_budget;                             /* the workflow's N_BUDGET or NULL */
    Vec agents;                                  /* Decl*: agents called, or tools of those */
    Vec ops;                                     /* Decl*: http operations called, or tools */
    Vec called;                                  /* Decl*: agents and operations the
                                                    workflow calls (typed wrappers) */
    KeyMap called_seen;                          /* the Decls in called */
    KeyMap written;                              /* Decl*: agent descriptors written */
    Vec models;                                  /* Decl*: models that can be called */
    Vec types;                                   /* TypeEntry*: descriptors used */
    Vec enums;                                   /* Decl*: enum descriptors used */
    KeyMap seen;                                 /* the Decls in agents, ops, models, enums */
    KeyMap type_keys;                            /* TypeEntry.key -> TypeEntry* */
    KeyMap type_of;                              /* Type* -> TypeEntry* (each Type asked once) */
    KeyMap type_names;                           /* C names of descriptors taken */
    Vec pending;                                 /* TypeEntry*: schemas whose fields are not yet seen */
    KeyMap decls;                                /* "kind:name" -> Decl* */
    KeyMap params;                               /* Decl* -> KeyMap* of parameter name -> index + 1 */
    KeyMap members;                              /* &Decl.fields or .values -> KeyMap* by name */
    KeyMap field_pos;                            /* Field* -> its index + 1 in its list */
    KeyMap stage_index;                          /* a stage's Sym* -> its index + 1 */
    KeyMap schema_texts;                         /* "dialect:type" -> C name of the JSON text */
    FILE *texts;                                 /* those texts, ahead of the agents */
    char *texts_buf;                             /* its buffer */
    size_t texts_len;                            /* its length */
    SymInfo **tab;                               /* Sym* -> SymInfo, open addressing */
    size_t tabcap;                               /* slots in tab */
    size_t tablen;                               /* used slots */
    FILE *closures;                              /* closure functions and their tables */
    char *closures_buf;                          /* its buffer */
    size_t closures_len;                         /* its length */
    bool ok;                                     /* no error reported */
    bool approves;                               /* approve() is called somewhere */
    bool shards;                                 /* a fan-out is sharded (FR_PROG_SHARD) */
} cg;

static const char *gen_expr(Gen *g, Node *n);

/* Appends item to v unless seen (a KeyMap of v's items) has it. */
static void add_unique(Vec *v, KeyMap *seen, void *item)
{
    if (km_get(seen, item))
        return;
    km_put(seen, item, item);
    vec_push(v, item);
}

/* ---- small helpers ------------------------------------------------------ */

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        abort();
    char *r = arena_strdup(s);
    free(s);
    return r;
}

static char *fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *r = vfmt(f, ap);
    va_end(ap);
    return r;
}

/* One line of the current function's body, indented. */
enum { MAX_INDENT = 24 };                         /* steps of four spaces */

static void emit(Gen *g, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void emit(Gen *g, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    char *line = vfmt(f, ap);
    va_end(ap);
    int ind = line[0] ? g->fn->indent : 0;
    if (line[0] && line[strlen(line) - 1] == ':' && !strchr(line, ' ') &&
        strcmp(line, "default:") != 0)
        ind--;                                   /* labels sit one step out */
    if (ind > MAX_INDENT)
        ind = MAX_INDENT;                        /* deeper blocks keep the margin: n nested
                                                    blocks stay O(n) bytes of C, not O(n^2) */
    fprintf(g->fn->f, "%*s%s\n", ind * 4, "", line);
}

/* A value computed and not used: "(void)v;", so that the C compiler sees a
 * temporary or a variable read (a variable only ever set is a warning). */
static void discard(Gen *g, const char *v)
{
    if (v && strncmp(v, "fr_", 3) != 0)          /* fr_null(), fr_bool(true): nothing to read */
        emit(g, "(void)%s;", v);
}

static const char *new_tmp(void)
{
    return fmt("t%d", ++cg.tmp);
}

/* A C string literal of s[0..n), escaped; no line breaks. */
static void put_c_chars(FILE *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        case '?':                               /* never a trigraph */
            fputs(i > 0 && s[i - 1] == '?' ? "\\?" : "?", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\%03o", c);
            else
                fputc(c, f);
        }
    }
}

static const char *c_lit_n(const char *s, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = arena_memstream(&buf, &len);
    fputc('"', f);
    put_c_chars(f, s, n);
    fputc('"', f);
    fclose(f);
    char *r = arena_strdup(buf);
    free(buf);
    return r;
}

/* A C character literal: ';', '\t'. */
static const char *c_char(char c)
{
    if (c == '\'' || c == '\\')
        return fmt("'\\%c'", c);
    if (c == '\t')
        return "'\\t'";
    if ((unsigned char)c < 0x20 || c == 0x7f)
        return fmt("'\\%03o'", (unsigned char)c);
    return fmt("'%c'", c);
}

/* "text" or NULL */
static const char *c_lit(const char *s)
{
    return s ? c_lit_n(s, strlen(s)) : "NULL";
}

/* A long text as adjacent literals, one per line of text (wrapped at about 72
 * columns), continuation lines indented by ind spaces. */
static const char *c_lit_wrapped(const char *s, size_t n, int ind)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = arena_memstream(&buf, &len);
    size_t start = 0, col = 0;
    bool first = true;
    for (size_t i = 0; i <= n; i++) {
        bool brk = i == n || (i > start && s[i - 1] == '\n') ||
                   (col >= 72 && (s[i - 1] == ',' || s[i - 1] == ' '));
        if (brk && i > start) {
            if (!first)
                fprintf(f, "\n%*s", ind, "");
            first = false;
            fputc('"', f);
            put_c_chars(f, s + start, i - start);
            fputc('"', f);
            start = i;
            col = 0;
        }
        col += s[i] == '"' || s[i] == '\\' ? 2 : 1;
    }
    if (first)
        fputs("\"\"", f);
    fclose(f);
    char *r = arena_strdup(buf);
    free(buf);
    return r;
}

/* "file.flow:12:5" for a construct. */
static const char *where_of(Span sp)
{
    int line = 0, col = 0;
    Source *s = sp.file >= 0 ? src_get(sp.file) : NULL;
    if (!s)
        return "NULL";
    src_linecol(sp, &line, &col);
    return c_lit(fmt("%s:%d:%d", s->path, line, col));
}

/* A double as a C (and JSON) literal that reads back exactly. */
static const char *c_double(double d)
{
    char b[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, d);
        if (strtod(b, NULL) == d)
            break;
    }
    if (!strpbrk(b, ".eEn"))
        strcat(b, ".0");
    return arena_strdup(b);
}

/* Does code use identifier id outside string and character literals? */
static bool c_uses(const char *code, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = code; *p; p++) {
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (!*p)
                return false;
            continue;
        }
        bool start = p == code || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z') ||
                                    (p[-1] >= 'A' && p[-1] <= 'Z') ||
                                    (p[-1] >= '0' && p[-1] <= '9'));
        if (start && strncmp(p, id, n) == 0) {
            char c = p[n];
            if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9')))
                return true;
        }
    }
    return false;
}

static bool ident_char(char c)
{
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static size_t id_hash(const char *s, size_t n)
{
    size_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The slot of identifier s[0..n) in fn's set: where it is, or the empty one. */
static const char **id_slot(Fn *fn, const char *s, size_t n)
{
    size_t i = id_hash(s, n) & (fn->idcap - 1);
    while (fn->ids[i] && !(strncmp(fn->ids[i], s, n) == 0 && fn->ids[i][n] == '\0'))
        i = (i + 1) & (fn->idcap - 1);
    return &fn->ids[i];
}

/* Adds identifier s[0..n) to fn's set, growing it at half full. */
static void id_add(Fn *fn, const char *s, size_t n, size_t *count)
{
    if (*id_slot(fn, s, n))
        return;
    if ((*count + 1) * 2 > fn->idcap) {
        const char **old = fn->ids;
        size_t oldcap = fn->idcap;
        fn->idcap *= 2;
        fn->ids = arena_alloc(fn->idcap * sizeof *fn->ids);
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                *id_slot(fn, old[i], strlen(old[i])) = old[i];
    }
    *id_slot(fn, s, n) = arena_strndup(s, n);
    ++*count;
}

/* Collects the identifiers of fn's body (outside literals) into a set, so
 * that the prologue asks "is v_x used" in O(1) however long the body. */
static void collect_ids(Fn *fn)
{
    size_t count = 0;
    fn->idcap = 64;
    fn->ids = arena_alloc(fn->idcap * sizeof *fn->ids);
    for (const char *p = fn->buf; *p; p++) {
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q)
                p += *p == '\\' && p[1] ? 2 : 1;
            if (!*p)
                break;
        } else if (ident_char(*p) && !(*p >= '0' && *p <= '9')) {
            size_t n = 1;
            while (ident_char(p[n]))
                n++;
            id_add(fn, p, n, &count);
            p += n - 1;
        }
    }
}

/* Does fn's body use identifier id? */
static bool body_uses(Fn *fn, const char *id)
{
    return *id_slot(fn, id, strlen(id)) != NULL;
}

static bool is_value_type(Type *t)
{
    return t && t->kind != TY_VOID && t->kind != TY_NEVER && t->kind != TY_ERROR;
}

/* The first declaration of a kind and name (cg.decls, made once). */
static Decl *find_decl(DeclKind kind, const char *name)
{
    if (!cg.decls.cap) {
        cg.decls.str = true;
        for (int i = 0; i < cg.p->decls.len; i++) {
            Decl *d = cg.p->decls.items[i];
            const char *key = d->name ? fmt("%d:%s", (int)d->kind, d->name) : NULL;
            if (key && !km_get(&cg.decls, key))
                km_put(&cg.decls, key, d);
        }
    }
    return name ? km_get(&cg.decls, fmt("%d:%s", (int)kind, name)) : NULL;
}

/* ---- types -------------------------------------------------------------- */

/* The readable name of a primitive (and of the element of an empty list),
 * or NULL for a type that needs a descriptor of its own. */
static const char *prim_spell(Type *t)
{
    if (!t || t->kind == TY_NULL || t->kind == TY_ERROR || t->kind == TY_STRING)
        return "string";
    switch (t->kind) {
    case TY_INT: case TY_DURATION: return "int";
    case TY_FLOAT: return "float";
    case TY_BOOL: return "bool";
    case TY_OPT: case TY_LIST: case TY_SCHEMA: case TY_ENUM: return NULL;
    default: return "string";
    }
}

static void enum_use(Decl *d)
{
    add_unique(&cg.enums, &cg.seen, d);
}

#define SPELL_MAX 40                             /* a longer descriptor name gets a number */

/* The descriptor of a list, optional, schema or enum type, made on first use
 * (a schema's fields later: types_flush()).  Types are told apart by key,
 * which names the element's descriptor, so list<list_X> and list<list<X>>
 * never share one; a C name that is taken (or would be long) gets a number
 * instead. */
static TypeEntry *type_entry(Type *t)
{
    TypeEntry *known = km_get(&cg.type_of, t);
    if (known)
        return known;
    const char *key, *spell = NULL;
    if (t->kind == TY_SCHEMA || t->kind == TY_ENUM) {
        key = fmt("%c:%s", t->kind == TY_SCHEMA ? 'S' : 'E', t->decl->name);
    } else {
        const char *es = prim_spell(t->elem), *ek = es;
        if (!es) {
            TypeEntry *ee = type_entry(t->elem);
            es = ee->spell;
            ek = fmt("#%d", ee->index);
        }
        key = fmt("%c%s", t->kind == TY_LIST ? 'L' : 'O', ek);
        if (es && strlen(es) <= SPELL_MAX)
            spell = fmt("%s_%s", t->kind == TY_LIST ? "list" : "opt", es);
    }
    TypeEntry *e = km_get(&cg.type_keys, key);
    if (e) {
        km_put(&cg.type_of, t, e);
        return e;
    }
    e = arena_alloc(sizeof *e);
    e->t = t;
    e->key = key;
    e->index = cg.types.len;
    if (t->kind == TY_SCHEMA || t->kind == TY_ENUM) {
        e->spell = t->decl->name;
        e->cname = fmt("flow_%s_type", t->decl->name);
    } else {
        e->spell = spell;
        e->cname = spell ? fmt("t_%s", spell) : NULL;
        if (!e->cname || km_get(&cg.type_names, e->cname))
            e->cname = fmt("t_%d", e->index);
    }
    km_put(&cg.type_keys, key, e);
    km_put(&cg.type_of, t, e);
    km_put(&cg.type_names, e->cname, e);
    vec_push(&cg.types, e);
    if (t->kind == TY_ENUM)
        enum_use(t->decl);
    if (t->kind == TY_SCHEMA)
        vec_push(&cg.pending, e);
    return e;
}

/* "&flow_Lead_type": the descriptor of t. */
static const char *type_ref(Type *t)
{
    const char *p = prim_spell(t);
    if (p)
        return fmt("&fr_type_%s", p);
    return fmt("&%s", type_entry(t)->cname);
}

/* The descriptors of the fields of every schema that has one, without
 * recursion (a chain of thousands of schemas is a long queue, not a deep
 * stack). */
static void types_flush(void)
{
    while (cg.pending.len) {
        TypeEntry *e = cg.pending.items[--cg.pending.len];
        for (int i = 0; i < e->t->decl->fields.len; i++)
            type_ref(((Field *)e->t->decl->fields.items[i])->type);
    }
}

/* A constraint bound as a number. */
static double bound_value(Node *n)
{
    if (n && n->kind == N_UNARY && n->op == OP_NEG)
        return -bound_value(n->operand);
    if (n && n->kind == N_INT)
        return (double)n->ival;
    return n && n->kind == N_FLOAT ? n->fval : 0;
}

/* The wire spelling of a field or enum value: its alias, else its name. */
static const char *wire_of(Field *f)
{
    return f->wire ? f->wire : f->name;
}

/* The field (or enum value) `name` of a declaration's list of them: a map
 * per list, made once. */
static Field *member(Vec *list, const char *name)
{
    KeyMap *m = km_get(&cg.members, list);
    if (!m) {
        m = arena_alloc(sizeof *m);
        m->str = true;
        for (int i = 0; i < list->len; i++) {
            Field *f = list->items[i];
            if (!km_get(m, f->name))
                km_put(m, f->name, f);
        }
        km_put(&cg.members, list, m);
    }
    return km_get(m, name);
}

/* The wire spelling of value `name` of enum e. */
static const char *enum_wire(Decl *e, const char *name)
{
    Field *v = e ? member(&e->values, name) : NULL;
    return v ? wire_of(v) : name;
}

/* The wire key of field `name` of the schema type t (the name if t is no schema). */
static const char *field_wire(Type *t, const char *name)
{
    if (t && t->kind == TY_OPT)
        t = t->elem;
    if (!t || t->kind != TY_SCHEMA)
        return name;
    Field *f = member(&t->decl->fields, name);
    return f ? wire_of(f) : name;
}

/* enum E -> E_values[] (as on the wire) and E_enum */
static void write_enum(FILE *f, Decl *d)
{
    fprintf(f, "static const char *const flow_%s_values[] = {", d->name);
    for (int i = 0; i < d->values.len; i++)
        fprintf(f, "%s%s", i ? ", " : " ", c_lit(wire_of(d->values.items[i])));
    fprintf(f, " };\nstatic const fr_enum flow_%s_enum = { %s, %s, %d, flow_%s_values };\n\n", d->name,
            c_lit(d->name), c_lit(d->doc), d->values.len, d->name);
}

/* schema S -> S_fields[] and S_schema */
static void write_schema(FILE *f, Decl *d)
{
    if (d->fields.len) {
        fprintf(f, "static const fr_field flow_%s_fields[] = {\n", d->name);
        for (int i = 0; i < d->fields.len; i++) {
            Field *fl = d->fields.items[i];
            Constraint *c = &fl->cons;
            bool rng = c->kind == CONS_RANGE, len = c->kind == CONS_LEN;
            fprintf(f, "    { %s, %s, %s, %s, %s, %s, %" PRId64 ", %" PRId64 ", %s, %s, %s, %s },\n",
                    c_lit(fl->name), type_ref(fl->type), rng ? "true" : "false",
                    c_double(rng ? bound_value(c->lo) : 0), c_double(rng ? bound_value(c->hi) : 0),
                    len ? "true" : "false", len ? (int64_t)bound_value(c->lo) : 0,
                    len ? (int64_t)bound_value(c->hi) : 0, c_lit(fl->doc), c_lit(wire_of(fl)),
                    c_lit(fl->model_key ? fl->model_key : wire_of(fl)),
                    fl->sensitive ? "true" : "false");
        }
        fprintf(f, "};\n");
    }
    static const char *const extra[] = { "FR_EXTRA_REJECT", "FR_EXTRA_DROP", "FR_EXTRA_KEEP" };
    fprintf(f, "static const fr_schema flow_%s_schema = { %s, %s, %d, %s, %s };\n\n", d->name,
            c_lit(d->name), c_lit(d->doc), d->fields.len,
            d->fields.len ? fmt("flow_%s_fields", d->name) : "NULL", extra[d->extra]);
}

/* The fr_type definition of one entry. */
static void write_type(FILE *f, TypeEntry *e)
{
    Type *t = e->t;
    switch (t->kind) {
    case TY_OPT:
    case TY_LIST:
        fprintf(f, "static const fr_type %s = { %s, %s, NULL, NULL };\n", e->cname,
                t->kind == TY_OPT ? "FR_OPTIONAL" : "FR_LIST", type_ref(t->elem));
        break;
    case TY_SCHEMA:
        fprintf(f, "static const fr_type %s = { FR_RECORD, NULL, &flow_%s_schema, NULL };\n",
                e->cname, t->decl->name);
        break;
    case TY_ENUM:
        fprintf(f, "static const fr_type %s = { FR_ENUM, NULL, NULL, &flow_%s_enum };\n", e->cname,
                t->decl->name);
        break;
    default:
        break;
    }
}

/* Every descriptor used: enums, forward declarations, schemas, types. */
static void write_types(FILE *f)
{
    types_flush();
    if (cg.enums.len)
        fprintf(f, "/* ---- enums ---- */\n\n");
    for (int i = 0; i < cg.enums.len; i++)
        write_enum(f, cg.enums.items[i]);
    if (!cg.types.len)
        return;
    fprintf(f, "/* ---- types: one descriptor per schema and per type used ---- */\n\n");
    for (int i = 0; i < cg.types.len; i++)
        fprintf(f, "static const fr_type %s;\n", ((TypeEntry *)cg.types.items[i])->cname);
    fputc('\n', f);
    for (int i = 0; i < cg.types.len; i++) {
        TypeEntry *e = cg.types.items[i];
        if (e->t->kind == TY_SCHEMA)
            write_schema(f, e->t->decl);
    }
    for (int i = 0; i < cg.types.len; i++)
        write_type(f, cg.types.items[i]);
    fputc('\n', f);
}

/* ---- symbols ------------------------------------------------------------ */

static size_t sym_hash(Sym *s, size_t cap)
{
    uintptr_t x = (uintptr_t)s;
    x ^= x >> 17;
    x *= 0x9e3779b97f4a7c15u;
    return (size_t)(x >> 7) & (cap - 1);
}

static void tab_put(SymInfo *si)
{
    if ((cg.tablen + 1) * 2 > cg.tabcap) {
        SymInfo **old = cg.tab;
        size_t oldcap = cg.tabcap;
        cg.tabcap = oldcap ? oldcap * 2 : 256;
        cg.tab = arena_alloc(cg.tabcap * sizeof *cg.tab);
        cg.tablen = 0;
        for (size_t i = 0; i < oldcap; i++)
            if (old[i])
                tab_put(old[i]);
    }
    size_t h = sym_hash(si->sym, cg.tabcap);
    while (cg.tab[h] && cg.tab[h]->sym != si->sym)
        h = (h + 1) & (cg.tabcap - 1);
    if (!cg.tab[h])
        cg.tablen++;
    cg.tab[h] = si;
}

static SymInfo *tab_get(Sym *s)
{
    if (!cg.tabcap)
        return NULL;
    size_t h = sym_hash(s, cg.tabcap);
    while (cg.tab[h] && cg.tab[h]->sym != s)
        h = (h + 1) & (cg.tabcap - 1);
    return cg.tab[h];
}

/* A C name for a flow name, unique within fn: v_lead, else v_lead_<id>, and
 * a number more in the rare case that even that is taken (a name 'lead_7'). */
static const char *unique_cname(Fn *fn, Sym *s)
{
    const char *name = fmt("v_%s", s->name);
    for (int k = 0; km_get(&fn->cnames, name); k++)
        name = k ? fmt("v_%s_%d_%d", s->name, s->id, k) : fmt("v_%s_%d", s->name, s->id);
    km_put(&fn->cnames, name, (void *)name);
    return name;
}

/* A local of fn; override: bound only inside fn and its closures (a stage). */
static SymInfo *declare(Fn *fn, Sym *s, InitKind init, int idx, bool override)
{
    SymInfo *si = arena_alloc(sizeof *si);
    si->sym = s;
    si->owner = fn;
    si->cname = unique_cname(fn, s);
    si->owned = s->assigned;
    si->init = init;
    si->init_index = idx;
    vec_push(&fn->locals, si);
    if (override) {
        km_put(&fn->overrides, s, si);
        if (s->kind == SYM_STAGE && !km_get(&fn->stage_names, s->name))
            km_put(&fn->stage_names, s->name, si);
    } else {
        tab_put(si);
    }
    return si;
}

/* The SymInfo a name means inside fn: stage bindings first (an earlier
 * stage's value is bound in a stage's function the first time it is used
 * there: prev[j] of stage k), then the table. */
static SymInfo *lookup(Fn *fn, Sym *s)
{
    for (Fn *f = fn; f; f = f->parent) {
        SymInfo *si = km_get(&f->overrides, s);
        if (si)
            return si;
        intptr_t j = s->kind == SYM_STAGE && f->kind == FN_STAGE
                     ? (intptr_t)km_get(&cg.stage_index, s) - 1 : -1;
        if (j >= 0 && j < f->stage && ((Node *)f->pipe->stmts.items[j])->sym == s)
            return declare(f, s, INIT_PREV, (int)j, true);
    }
    if (s->kind == SYM_STAGE)                    /* stage names matched by name */
        for (Fn *f = fn; f; f = f->parent) {
            SymInfo *si = km_get(&f->stage_names, s->name);
            if (si)
                return si;
        }
    return tab_get(s);
}

/* The index of d's parameter name, or -1 (a map per declaration, made once). */
static int param_index(Decl *d, const char *name)
{
    KeyMap *m = km_get(&cg.params, d);
    if (!m) {
        m = arena_alloc(sizeof *m);
        m->str = true;
        for (int i = 0; i < d->fields.len; i++) {
            const char *p = ((Field *)d->fields.items[i])->name;
            if (!km_get(m, p))
                km_put(m, p, (void *)(intptr_t)(i + 1));
        }
        km_put(&cg.params, d, m);
    }
    return (int)(intptr_t)km_get(m, name) - 1;
}

/* A name is used from fn: it is read, and captured if fn is not its owner. */
static void use_sym(Fn *fn, Sym *s)
{
    if (!s)
        return;
    SymInfo *si = lookup(fn, s);
    if (!si && s->kind == SYM_PARAM)
        si = declare(cg.main, s, INIT_ARG, param_index(cg.w, s->name), false);
    if (!si)
        si = declare(fn, s, INIT_NONE, 0, false);
    si->read = true;
    if (si->owner != fn)
        si->captured = true;
}

/* The C lvalue of a variable, seen from fn: up->up->v_x through the frames. */
static const char *var_ref(Fn *fn, SymInfo *si)
{
    if (!si->captured)
        return si->cname;
    if (si->owner == fn)
        return fmt("fr.%s", si->cname);
    size_t ups = 1, n = strlen(si->cname);
    for (Fn *f = fn->parent; f && f != si->owner; f = f->parent)
        ups++;
    char *r = arena_alloc(ups * 4 + n + 1);
    for (size_t i = 0; i < ups; i++)
        memcpy(r + i * 4, "up->", 4);
    memcpy(r + ups * 4, si->cname, n + 1);
    return r;
}

/* ---- the prepass -------------------------------------------------------- */

/* The sequential for loops around a point of the prepass, innermost first. */
typedef struct ForLink {
    Node *loop;                                  /* an N_FOR without `parallel` */
    struct ForLink *up;                          /* the one around it, or NULL */
} ForLink;

/* The prepass's position. */
typedef struct Pre {
    Fn *fn;                                      /* the function code lands in */
    int phase;                                   /* current phase index, -1 outside */
    ForLink *fors;                               /* enclosing sequential loops */
} Pre;

static void pre(Pre *pc, Node *n);

static Fn *new_fn(FnKind kind, Fn *parent, const char *name)
{
    Fn *fn = arena_alloc(sizeof *fn);
    fn->kind = kind;
    fn->parent = parent;
    fn->name = name;
    fn->cnames.str = fn->stage_names.str = true;
    fn->frame = -1;
    if (parent)
        parent->has_closures = true;
    vec_push(&cg.fns, fn);
    return fn;
}

static void pre_vec(Pre *pc, Vec *v)
{
    for (int i = 0; i < v->len; i++)
        pre(pc, v->items[i]);
}

/* An agent the program needs: its model, and its tools (operations, and
 * agents with theirs: sema proved they form a tree). */
static void use_agent(Decl *a)
{
    if (km_get(&cg.seen, a))
        return;
    add_unique(&cg.agents, &cg.seen, a);
    AgentInfo *ai = a->sema;
    if (ai && ai->model)
        add_unique(&cg.models, &cg.seen, ai->model);
    for (int i = 0; ai && i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        if (t->kind == D_HTTP)
            add_unique(&cg.ops, &cg.seen, t);
        else
            use_agent(t);
    }
}

/* call -> agent(args) [using m] | builtin(args) */
static void pre_call(Pre *pc, Node *n)
{
    pre_vec(pc, &n->args);
    for (int i = 0; i < n->opts.len; i++)       /* read_csv<T>(p, rejects: path) */
        pre(pc, ((Setting *)n->opts.items[i])->value);
    if (n->builtin == B_APPROVE && !cg_journal_ready) {
        diag_error(n->span, E1101, "approve() needs the run journal, which this flowc does not have yet");
        cg.ok = false;
    }
    if (n->builtin == B_APPROVE)                 /* every loop around it keeps going */
        for (ForLink *l = pc->fors; l; l = l->up)
            l->loop->can_wait = true;
    if (n->builtin == B_NONE && n->decl && n->decl->kind == D_HTTP) {
        add_unique(&cg.ops, &cg.seen, n->decl);
        add_unique(&cg.called, &cg.called_seen, n->decl);
    }
    if (n->builtin != B_NONE || !n->decl || n->decl->kind != D_AGENT)
        return;
    use_agent(n->decl);
    add_unique(&cg.called, &cg.called_seen, n->decl);
    if (n->using_model) {
        Decl *m = find_decl(D_MODEL, n->using_model);
        if (m)
            add_unique(&cg.models, &cg.seen, m);
    }
}

/* for -> [parallel] for x in xs where c { body } */
static void pre_for(Pre *pc, Node *n)
{
    pre(pc, n->iter);
    Pre in = *pc;
    if (n->parallel) {
        in.fn = new_fn(FN_BODY, pc->fn, fmt("body_%d", ++cg.label));
        n->cg = in.fn;
        if (n->sym)
            declare(in.fn, n->sym, INIT_ITEM, 0, false);
    } else if (n->sym) {
        declare(pc->fn, n->sym, INIT_NONE, 0, false);
    }
    ForLink link = { n, pc->fors };
    if (!n->parallel)
        in.fors = &link;
    if (n->cond)
        pre(&in, n->cond);
    pre(&in, n->body);
}

/* pipeline -> pipeline for x in xs (opts) { stage a { } stage b { } } */
static void pre_pipeline(Pre *pc, Node *n)
{
    pre(pc, n->iter);
    int id = ++cg.label;
    n->cg = (void *)(intptr_t)id;
    for (int k = 0; k < n->stmts.len; k++) {
        Node *st = n->stmts.items[k];
        Pre in = *pc;
        in.fn = new_fn(FN_STAGE, pc->fn, fmt("stage_%d_%s", id, st->name));
        in.fn->pipe = n;
        in.fn->stage = k;
        st->cg = in.fn;
        if (st->sym)                             /* the earlier stages are bound as used */
            km_put(&cg.stage_index, st->sym, (void *)(intptr_t)(k + 1));
        if (n->sym)
            declare(in.fn, n->sym, INIT_ITEM, 0, true);
        pre(&in, st->body);
    }
}

/* parblock -> parallel { stmt... }: a task per statement, bindings in the frame */
static void pre_parblock(Pre *pc, Node *n)
{
    int id = ++cg.label;
    n->cg = (void *)(intptr_t)id;
    for (int k = 0; k < n->stmts.len; k++) {
        Node *st = n->stmts.items[k];
        Pre in = *pc;
        in.fn = new_fn(FN_TASK, pc->fn, fmt("task_%d_%d", id, k));
        if (st->kind == N_LET) {
            st->cg = in.fn;
            if (st->sym) {
                SymInfo *si = declare(pc->fn, st->sym, INIT_NONE, 0, false);
                si->captured = true;
                si->read = true;
            }
            pre(&in, st->value);
        } else {
            st->cg = in.fn;
            pre(&in, st);
        }
    }
}

static void pre(Pre *pc, Node *n)
{
    if (!n)
        return;
    switch (n->kind) {
    case N_STRING:
        for (int i = 0; i < n->parts.len; i++)
            pre(pc, ((StrPart *)n->parts.items[i])->expr);
        break;
    case N_NAME:
        use_sym(pc->fn, n->sym);
        break;
    case N_FIELD: pre(pc, n->lhs); break;
    case N_CALL: pre_call(pc, n); break;
    case N_LIST: pre_vec(pc, &n->args); break;
    case N_RECORD:
        for (int i = 0; i < n->inits.len; i++)
            pre(pc, ((FieldInit *)n->inits.items[i])->value);
        break;
    case N_BINARY: pre(pc, n->lhs); pre(pc, n->rhs); break;
    case N_UNARY: pre(pc, n->operand); break;
    case N_BLOCK: pre_vec(pc, &n->stmts); break;
    case N_IF: pre(pc, n->cond); pre(pc, n->then); pre(pc, n->els); break;
    case N_MATCH:
        pre(pc, n->lhs);
        for (int i = 0; i < n->arms.len; i++)
            pre(pc, ((MatchArm *)n->arms.items[i])->body);
        break;
    case N_FOR: pre_for(pc, n); break;
    case N_PIPELINE: pre_pipeline(pc, n); break;
    case N_PARBLOCK: pre_parblock(pc, n); break;
    case N_LOOP: pre(pc, n->cond); pre(pc, n->body); pre(pc, n->els); break;
    case N_LET:
        if (n->sym)
            declare(pc->fn, n->sym, INIT_NONE, 0, false);
        pre(pc, n->value);
        break;
    case N_ASSIGN:
        use_sym(pc->fn, n->sym);
        pre(pc, n->value);
        break;
    case N_PHASE: {
        Pre in = *pc;
        in.phase = cg.phases.len;
        int *idx = arena_alloc(sizeof *idx);
        *idx = cg.phases.len;
        n->cg = idx;
        vec_push(&cg.phases, n);
        vec_push(&cg.phase_budgets, NULL);
        pre(&in, n->body);
        break;
    }
    case N_BUDGET:
        if (pc->phase < 0)
            cg.wf_budget = n;
        else
            cg.phase_budgets.items[pc->phase] = n;
        break;
    case N_RETURN:
        if (pc->fn->kind != FN_MAIN) {
            diag_error(n->span, E1101, "'return' inside a parallel body is not supported; "
                       "use the body's value");
            cg.ok = false;
        }
        pre(pc, n->value);
        break;
    default:
        break;
    }
}

/* ---- expressions -------------------------------------------------------- */

/* The statement that propagates a failure from here. */
static const char *fail_stmt(Gen *g)
{
    if (!g->fail)
        return "return false;";
    if (g->fail_used)
        *g->fail_used = true;
    return fmt("goto %s;", g->fail);
}

/* if (!t) <propagate>; */
static void check(Gen *g, const char *t)
{
    emit(g, "if (!%s)", t);
    g->fn->indent++;
    emit(g, "%s", fail_stmt(g));
    g->fn->indent--;
}

/* json_t *tN = rhs; */
static const char *tmp_of(Gen *g, const char *rhs)
{
    const char *t = new_tmp();
    emit(g, "json_t *%s = %s;", t, rhs);
    return t;
}

/* The value of n, or fr_null() when it has none. */
static const char *value_of(Gen *g, Node *n)
{
    const char *v = gen_expr(g, n);
    return v ? v : "fr_null()";
}

static const char *gen_int(int64_t v)
{
    if (v > INT32_MAX || v < INT32_MIN)
        return fmt("fr_int(cx, INT64_C(%" PRId64 "))", v);
    return fmt("fr_int(cx, %" PRId64 ")", v);
}

/* string -> "text" | "text {{ e }} text": fr_str, or a buffer for templates */
static const char *gen_string(Gen *g, Node *n)
{
    bool templ = false;
    for (int i = 0; i < n->parts.len; i++)
        templ |= ((StrPart *)n->parts.items[i])->expr != NULL;
    if (!templ) {
        StrPart *sp = n->parts.len ? n->parts.items[0] : NULL;
        if (n->parts.len <= 1)
            return tmp_of(g, fmt("fr_str(cx, %s)", sp ? c_lit_n(sp->text, sp->len) : "\"\""));
    }
    const char **vals = arena_alloc(sizeof *vals * (size_t)(n->parts.len + 1));
    for (int i = 0; i < n->parts.len; i++) {
        StrPart *sp = n->parts.items[i];
        if (sp->expr)
            vals[i] = value_of(g, sp->expr);
    }
    const char *t = new_tmp();
    emit(g, "json_t *%s;", t);
    emit(g, "{");
    g->fn->indent++;
    emit(g, "fr_buf b = { NULL, 0, 0 };");
    for (int i = 0; i < n->parts.len; i++) {
        StrPart *sp = n->parts.items[i];
        if (sp->expr)
            emit(g, "fr_buf_value(&b, %s);", vals[i]);
        else if (sp->len)
            emit(g, "fr_buf_put(&b, %s, %zu);", c_lit_n(sp->text, sp->len), sp->len);
    }
    emit(g, "%s = fr_strn(cx, b.s ? b.s : \"\", b.len);", t);
    emit(g, "fr_buf_free(&b);");
    g->fn->indent--;
    emit(g, "}");
    return t;
}

/* Is n a name of an enum type (the left side of Enum.value)? */
static Decl *enum_name(Node *n)
{
    if (n->kind != N_NAME || n->sym)
        return NULL;
    if (n->decl && n->decl->kind == D_ENUM)
        return n->decl;
    Decl *d = find_decl(D_ENUM, n->name);
    return d;
}

/* name -> a variable, a parameter, an agent parameter (render) or an enum value */
static const char *gen_name(Gen *g, Node *n)
{
    if (g->agent) {
        int i = param_index(g->agent, n->name);
        if (i >= 0)
            return fmt("args[%d]", i);
    }
    if (n->sym) {
        SymInfo *si = lookup(g->fn, n->sym);
        if (si)
            return var_ref(g->fn, si);
    }
    if (n->type && n->type->kind == TY_ENUM)
        return tmp_of(g, fmt("fr_str(cx, %s)", c_lit(enum_wire(n->type->decl, n->name))));
    return "fr_null()";
}

/* field -> e.name (or Enum.value); records are keyed by wire names */
static const char *gen_field(Gen *g, Node *n)
{
    if (n->builtin == B_ENV)                     /* env.NAME in an http header: a secret */
        return tmp_of(g, fmt("fr_secret(cx, %s)", c_lit(n->name)));
    Decl *e = enum_name(n->lhs);
    if (e)
        return tmp_of(g, fmt("fr_str(cx, %s)", c_lit(enum_wire(e, n->name))));
    const char *rec = value_of(g, n->lhs);
    return tmp_of(g, fmt("fr_get(%s, %s)", rec, c_lit(field_wire(n->lhs->type, n->name))));
}

/* The `using` model of a call, or NULL. */
static const char *using_ref(Node *n)
{
    if (!n->using_model)
        return "NULL";
    return fmt("&model_%s", n->using_model);
}

/* The options of a read as a C compound literal (fr_read_opts). */
static const char *read_opts(Gen *g, Node *n)
{
    bool skip = false;
    const char *rejects = "NULL";
    char delim = 0;
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (strcmp(s->key, "on_bad") == 0)
            skip = s->value->kind == N_SKIP;
        else if (strcmp(s->key, "rejects") == 0)
            rejects = value_of(g, s->value);
        else if (strcmp(s->key, "delimiter") == 0 && s->value->parts.len == 1)
            delim = ((StrPart *)s->value->parts.items[0])->text[0];
    }
    return fmt("&(fr_read_opts){ %s, %s, %s, %s }", n->builtin == B_READ_CSV ? "true" : "false",
               skip ? "true" : "false", rejects, delim ? c_char(delim) : "0");
}

/* builtin -> read_jsonl<T>(p) | read_csv<T>(p) | write_jsonl(xs, p) | write_csv(xs, p)
 *          | len(x) | env(n) | approve | escalate | fail */
static const char *gen_builtin(Gen *g, Node *n, const char **a)
{
    const char *where = where_of(n->span);
    const char *t;
    switch (n->builtin) {
    case B_READ_JSONL:
    case B_READ_CSV: {
        Type *lt = n->type && n->type->kind == TY_LIST ? n->type->elem : NULL;
        const char *opts = read_opts(g, n);
        t = tmp_of(g, fmt("fr_read(cx, %s, %s, %s, %s)", a[0], type_ref(lt), opts, where));
        check(g, t);
        return t;
    }
    case B_WRITE_JSONL:
    case B_WRITE_CSV: {
        Node *xs = n->args.items[0];
        Type *lt = xs->type && xs->type->kind == TY_LIST ? xs->type->elem : NULL;
        emit(g, "if (!fr_write_%s(cx, %s, %s, %s, %s))",
             n->builtin == B_WRITE_CSV ? "csv" : "jsonl", a[0], a[1], type_ref(lt), where);
        g->fn->indent++;
        emit(g, "%s", fail_stmt(g));
        g->fn->indent--;
        return NULL;
    }
    case B_LEN: return tmp_of(g, fmt("fr_len(cx, %s)", a[0]));
    case B_ENV:
        if (g->agent && g->agent->kind == D_HTTP) {   /* env("NAME") in a header: a secret */
            StrPart *sp = ((Node *)n->args.items[0])->parts.items[0];
            return tmp_of(g, fmt("fr_secret(cx, %s)", c_lit_n(sp->text, sp->len)));
        }
        return tmp_of(g, fmt("fr_env(cx, %s)", a[0]));
    case B_APPROVE:
        cg.approves = true;
        t = tmp_of(g, fmt("fr_approve(cx, %s, %s, %d, %s)", a[0], n->args.len > 1 ? a[1] : "fr_null()",
                          n->site, where));
        check(g, t);
        return t;
    case B_ESCALATE:
        emit(g, "fr_escalate(cx, %s, json_string_value(%s), %s);",
             n->args.len > 1 ? a[0] : "cx->item", n->args.len > 1 ? a[1] : a[0], where);
        emit(g, "%s", fail_stmt(g));
        return NULL;
    case B_FAIL:
        emit(g, "fr_fail(cx, %s, \"%%s\", json_string_value(%s));", where,
             n->args.len ? a[0] : "fr_null()");
        emit(g, "%s", fail_stmt(g));
        return NULL;
    default:
        return "fr_null()";
    }
}

/* call -> agent(args) [using m] | builtin(args) */
static const char *gen_call(Gen *g, Node *n)
{
    const char **a = arena_alloc(sizeof *a * (size_t)(n->args.len + 1));
    bool secret = n->builtin == B_ENV && g->agent && g->agent->kind == D_HTTP;
    for (int i = 0; i < n->args.len && !secret; i++)   /* a secret's name is read below */
        a[i] = value_of(g, n->args.items[i]);
    if (n->builtin != B_NONE)
        return gen_builtin(g, n, a);
    char *buf = NULL;                            /* one pass, however many arguments */
    size_t len = 0;
    FILE *m = arena_memstream(&buf, &len);
    if (n->decl && n->decl->kind == D_HTTP)
        fprintf(m, "http_%s(cx, %d", n->name, n->site);
    else
        fprintf(m, "agent_%s(cx, %d, %s", n->name, n->site, using_ref(n));
    for (int i = 0; i < n->args.len; i++)
        fprintf(m, ", %s", a[i]);
    fprintf(m, ", %s)", where_of(n->span));
    fclose(m);
    const char *t = tmp_of(g, arena_strndup(buf, len));
    free(buf);
    check(g, t);
    return t;
}

/* list -> [a, b, ...] */
static const char *gen_list(Gen *g, Node *n)
{
    const char **a = arena_alloc(sizeof *a * (size_t)(n->args.len + 1));
    for (int i = 0; i < n->args.len; i++)
        a[i] = value_of(g, n->args.items[i]);
    const char *t = tmp_of(g, "fr_list(cx)");
    for (int i = 0; i < n->args.len; i++)
        emit(g, "fr_list_push(%s, %s);", t, a[i]);
    return t;
}

/* record -> Schema { f: e, ... } */
/* Is v a literal the checker held against its field's constraint? */
static bool checked_literal(Node *v)
{
    if (v->kind == N_UNARY && v->op == OP_NEG)
        v = v->operand;
    if (v->kind == N_INT || v->kind == N_FLOAT || v->kind == N_LIST)
        return true;
    if (v->kind != N_STRING)
        return false;
    for (int i = 0; i < v->parts.len; i++)
        if (((StrPart *)v->parts.items[i])->expr)
            return false;
    return true;
}

/* The index of field `name` in schema d, or -1: found by map, as member()
 * finds the field, so a record of n fields costs O(n), not O(n^2). */
static int field_index(Decl *d, const char *name)
{
    Field *f = d ? member(&d->fields, name) : NULL;
    if (!f)
        return -1;
    if (!km_get(&cg.field_pos, f))
        for (int i = 0; i < d->fields.len; i++)
            if (!km_get(&cg.field_pos, d->fields.items[i]))
                km_put(&cg.field_pos, d->fields.items[i], (void *)(intptr_t)(i + 1));
    return (int)(intptr_t)km_get(&cg.field_pos, f) - 1;
}

/* record -> Schema { f: e, ... }: built, then each value the checker could
 * not prove is held against its field's constraint (a record built in the
 * workflow honours its schema like one read or answered) */
static const char *gen_record(Gen *g, Node *n)
{
    const char **a = arena_alloc(sizeof *a * (size_t)(n->inits.len + 1));
    for (int i = 0; i < n->inits.len; i++)
        a[i] = value_of(g, ((FieldInit *)n->inits.items[i])->value);
    Decl *d = n->type && n->type->kind == TY_SCHEMA ? n->type->decl : NULL;
    for (int i = 0; d && i < n->inits.len; i++) {
        FieldInit *fi = n->inits.items[i];
        int k = field_index(d, fi->name);
        Field *f = k >= 0 ? d->fields.items[k] : NULL;
        if (!f || f->cons.kind == CONS_NONE || checked_literal(fi->value))
            continue;
        type_ref(n->type);                       /* the schema's fields are written out */
        emit(g, "if (!fr_check_field(cx, %s, &flow_%s_fields[%d], %s, %s))", a[i], d->name, k,
             c_lit(d->name), where_of(fi->span));
        g->fn->indent++;
        emit(g, "%s", fail_stmt(g));
        g->fn->indent--;
    }
    const char *t = tmp_of(g, "fr_record(cx)");
    for (int i = 0; i < n->inits.len; i++)
        emit(g, "fr_record_set(%s, %s, %s);", t,
             c_lit(field_wire(n->type, ((FieldInit *)n->inits.items[i])->name)), a[i]);
    return t;
}

/* a and b, a or b, a ?? b: b only evaluated when needed */
static const char *gen_short(Gen *g, Node *n)
{
    const char *l = value_of(g, n->lhs);
    const char *t = tmp_of(g, l);
    const char *test = n->op == OP_AND ? fmt("fr_truthy(%s)", t)
                       : n->op == OP_OR ? fmt("!fr_truthy(%s)", t) : fmt("fr_is_null(%s)", t);
    emit(g, "if (%s) {", test);
    g->fn->indent++;
    const char *r = value_of(g, n->rhs);
    emit(g, "%s = %s;", t, r);
    g->fn->indent--;
    emit(g, "}");
    return t;
}

/* binary -> a op b */
static const char *gen_binary(Gen *g, Node *n)
{
    if (n->op == OP_AND || n->op == OP_OR || n->op == OP_COALESCE)
        return gen_short(g, n);
    const char *l = value_of(g, n->lhs);
    const char *r = value_of(g, n->rhs);
    static const char *const cmp[] = { [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">",
                                       [OP_GE] = ">=" };
    switch (n->op) {
    case OP_ADD: return tmp_of(g, fmt("fr_add(cx, %s, %s)", l, r));
    case OP_SUB: return tmp_of(g, fmt("fr_sub(cx, %s, %s)", l, r));
    case OP_MUL: return tmp_of(g, fmt("fr_mul(cx, %s, %s)", l, r));
    case OP_DIV: {
        const char *t = tmp_of(g, fmt("fr_div(cx, %s, %s, %s)", l, r, where_of(n->span)));
        check(g, t);
        return t;
    }
    case OP_EQ: return tmp_of(g, fmt("fr_bool(fr_equal(%s, %s))", l, r));
    case OP_NE: return tmp_of(g, fmt("fr_bool(!fr_equal(%s, %s))", l, r));
    default: return tmp_of(g, fmt("fr_bool(fr_compare(%s, %s) %s 0)", l, r, cmp[n->op]));
    }
}

static const char *gen_unary(Gen *g, Node *n)
{
    const char *v = value_of(g, n->operand);
    if (n->op == OP_NOT)
        return tmp_of(g, fmt("fr_bool(!fr_truthy(%s))", v));
    return tmp_of(g, fmt("fr_neg(cx, %s)", v));
}

/* Evaluates a branch (a block) inside the braces already opened; stores its
 * value in res if res is not NULL. */
static void gen_branch(Gen *g, Node *body, const char *res)
{
    g->fn->indent++;
    const char *v = gen_expr(g, body);
    if (res && v)
        emit(g, "%s = %s;", res, v);
    else
        discard(g, v);
    g->fn->indent--;
}

/* if -> if c { } else { } */
/* if c1 { } else if c2 { } ... else { }: each test after the one before
 * failed, at one indentation (nested, a chain of n else-ifs would indent its
 * last lines n levels, n^2 bytes of spaces); a branch that is taken jumps
 * past the others. */
static const char *gen_if_chain(Gen *g, Node *n)
{
    const char *res = NULL;
    int id = ++cg.label;
    if (is_value_type(n->type)) {
        res = new_tmp();
        emit(g, "json_t *%s = fr_null();", res);
    }
    for (; n; n = n->els && n->els->kind == N_IF ? n->els : NULL) {
        const char *c = value_of(g, n->cond);
        emit(g, "if (fr_truthy(%s)) {", c);
        gen_branch(g, n->then, res);
        emit(g, "    goto endif_%d;", id);
        emit(g, "}");
        if (n->els && n->els->kind != N_IF) {
            emit(g, "{");
            gen_branch(g, n->els, res);
            emit(g, "}");
        }
    }
    emit(g, "endif_%d:;", id);
    return res;
}

static const char *gen_if(Gen *g, Node *n)
{
    if (n->els && n->els->kind == N_IF)
        return gen_if_chain(g, n);
    const char *c = value_of(g, n->cond);
    const char *res = NULL;
    if (is_value_type(n->type) && n->els) {
        res = new_tmp();
        emit(g, "json_t *%s = fr_null();", res);
    }
    emit(g, "if (fr_truthy(%s)) {", c);
    gen_branch(g, n->then, res);
    if (n->els) {
        emit(g, "} else {");
        gen_branch(g, n->els, res);
    }
    emit(g, "}");
    return res;
}


/* match -> match e { a, b => e ... _ => e }: a switch on the value's index */
static const char *gen_match(Gen *g, Node *n)
{
    const char *subj = value_of(g, n->lhs);
    Type *st = n->lhs->type;
    if (st && st->kind == TY_OPT)
        st = st->elem;
    Decl *e = st && st->kind == TY_ENUM ? st->decl : NULL;
    if (!e)
        return "fr_null()";
    enum_use(e);
    const char *res = NULL;
    if (is_value_type(n->type)) {
        res = new_tmp();
        emit(g, "json_t *%s = fr_null();", res);
    }
    bool wild = false;
    emit(g, "switch (fr_enum_index(&flow_%s_enum, %s)) {", e->name, subj);
    for (int i = 0; i < n->arms.len; i++) {
        MatchArm *arm = n->arms.items[i];
        if (arm->wildcard) {
            wild = true;
            emit(g, "default: {");
        }
        for (int k = 0; k < arm->pats.len; k++) {
            Node *pat = arm->pats.items[k];
            emit(g, "case %d: /* %s */%s", (int)pat->ival, pat->name,
                 k == arm->pats.len - 1 && !arm->wildcard ? " {" : "");
        }
        gen_branch(g, arm->body, res);
        if (!arm->body->type || arm->body->type->kind != TY_NEVER)
            emit(g, "    break;");
        emit(g, "}");
    }
    if (!wild) {
        emit(g, "default:");
        g->fn->indent++;
        emit(g, "fr_fail(cx, %s, \"no case of '%s' matches\");", where_of(n->span), e->name);
        emit(g, "%s", fail_stmt(g));
        g->fn->indent--;
    }
    emit(g, "}");
    return res;
}

/* The integer value of an option (concurrency: 8), or dflt. */
static int64_t opt_int(Vec *opts, const char *key, int64_t dflt)
{
    for (int i = 0; i < opts->len; i++) {
        Setting *s = opts->items[i];
        if (strcmp(s->key, key) == 0 && s->value && s->value->kind == N_INT)
            return s->value->ival;
    }
    return dflt;
}

/* FR_ON_ERROR_SKIP or FR_ON_ERROR_HALT from `on_error: skip|halt`. */
static const char *opt_on_error(Vec *opts)
{
    for (int i = 0; i < opts->len; i++) {
        Setting *s = opts->items[i];
        if (strcmp(s->key, "on_error") == 0 && s->value &&
            (s->value->kind == N_SKIP ||
             (s->value->kind == N_NAME && strcmp(s->value->name, "skip") == 0)))
            return "FR_ON_ERROR_SKIP";
    }
    return "FR_ON_ERROR_HALT";
}

/* shard_key's field as the data names it (its wire name). */
static const char *shard_wire(Node *n, const char *field)
{
    Type *lt = n->iter ? n->iter->type : NULL;
    Type *et = lt && lt->kind == TY_LIST ? lt->elem : NULL;
    for (int i = 0; et && et->kind == TY_SCHEMA && i < et->decl->fields.len; i++) {
        Field *f = et->decl->fields.items[i];
        if (strcmp(f->name, field) == 0)
            return f->wire ? f->wire : f->name;
    }
    return field;
}

/* const fr_par_opts opts_N = { concurrency, on_error, where, batch, shard, key }; */
static const char *par_opts(Gen *g, Node *n, int64_t conc)
{
    const char *name = fmt("opts_%d", ++cg.label);
    bool batch = false;
    for (int i = 0; n->kind == N_FOR && i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (strcmp(s->key, "batch") == 0 && s->value && s->value->kind == N_BOOL)
            batch = s->value->ival != 0;
    }
    int shard = 0;
    const char *key = "NULL";
    for (int i = 0; i < n->opts.len; i++) {
        Setting *s = n->opts.items[i];
        if (strcmp(s->key, "shard") == 0 && s->value && s->value->kind == N_BOOL &&
            s->value->ival && shard == 0)
            shard = 1;
        if (strcmp(s->key, "shard_key") == 0 && s->value && s->value->kind == N_NAME) {
            shard = 2;
            key = c_lit(shard_wire(n, s->value->name));
        }
    }
    if (shard)
        cg.shards = true;
    emit(g, "const fr_par_opts %s = { %" PRId64 ", %s, %s, %s, %d, %s };", name, conc,
         opt_on_error(&n->opts), where_of(n->span), batch ? "true" : "false", shard, key);
    return name;
}

/* for x in xs where c { e }: an inline loop; skip and escalate drop the item */
static const char *gen_inline_for(Gen *g, Node *n)
{
    const char *xs = value_of(g, n->iter);
    int id = ++cg.label;
    bool push = is_value_type(n->body->type);
    const char *res = tmp_of(g, "fr_list(cx)");
    SymInfo *si = n->sym ? lookup(g->fn, n->sym) : NULL;
    if (n->can_wait) {                           /* every item queues its approval first */
        emit(g, "size_t waits_%d = 0;", id);
        emit(g, "json_t *wait_msg_%d = NULL;", id);
    }
    emit(g, "for (size_t i_%d = 0, n_%d = fr_count(%s); i_%d < n_%d; i_%d++) {", id, id, xs,
         id, id, id);
    g->fn->indent++;
    emit(g, "size_t mark_%d = fr_mark(cx), saved_%d;", id, id);
    emit(g, "fr_item_enter(cx, i_%d, &saved_%d);", id, id);
    if (si && si->read)
        emit(g, "%s = fr_at(%s, i_%d);", var_ref(g->fn, si), xs, id);
    bool drop_used = false;
    Gen in = *g;
    in.fail = fmt("drop_%d", id);
    in.fail_used = &drop_used;
    in.loop_direct = false;
    if (n->cond) {
        const char *c = value_of(&in, n->cond);
        emit(g, "if (!fr_truthy(%s))", c);
        emit(g, "    goto drop_%d;", id);
        drop_used = true;
    }
    const char *v = gen_expr(&in, n->body);
    if (push && v)
        emit(g, "fr_list_push(%s, %s);", res, v);
    if (push && v && n->sharded_iter)
        emit(g, "fr_shard_step(cx, %s, i_%d, %s);", xs, id, res);
    else
        discard(g, v);
    if (drop_used)
        emit(g, "drop_%d:", id);
    emit(g, "fr_item_leave(cx, saved_%d);", id);
    emit(g, "fr_release(cx, mark_%d);", id);
    if (drop_used) {
        emit(g, "if (cx->sig == FR_SIG_SKIP || cx->sig == FR_SIG_ESCALATE)");
        emit(g, "    fr_sig_clear(cx);");
        if (n->can_wait) {
            emit(g, "else if (cx->sig == FR_SIG_WAIT)");
            emit(g, "    fr_item_waits(cx, i_%d, &waits_%d, &wait_msg_%d);", id, id, id);
        }
        emit(g, "else if (cx->sig != FR_OK)");
        emit(g, "    %s", fail_stmt(g));
    }
    g->fn->indent--;
    emit(g, "}");
    if (n->can_wait) {
        emit(g, "if (!fr_loop_waited(cx, waits_%d, wait_msg_%d, %s))", id, id,
             where_of(n->span));
        emit(g, "    %s", fail_stmt(g));
    }
    return res;
}

/* The env argument for closures created in fn: its frame, or NULL. */
static bool fn_has_frame(Fn *fn);

static const char *env_arg(Gen *g)
{
    return fn_has_frame(g->fn) ? "&fr" : "NULL";
}

static void gen_closure(Fn *fn, Node *body, Node *where);

/* parallel for x in xs (concurrency: N, on_error: e) where c { e } */
static const char *gen_parallel_for(Gen *g, Node *n)
{
    const char *xs = value_of(g, n->iter);
    Fn *body = n->cg;
    gen_closure(body, n->body, n->cond);
    const char *opts = par_opts(g, n, opt_int(&n->opts, "concurrency", 16));
    const char *t = tmp_of(g, fmt("fr_parallel_for(cx, %s, &%s, %s, %s)", xs, opts, body->name,
                                  env_arg(g)));
    check(g, t);
    return t;
}

/* A pipeline's stage closures and their table stages_<id>; returns id. */
static int gen_stages(Node *n, int64_t conc)
{
    int id = (int)(intptr_t)n->cg;
    for (int k = 0; k < n->stmts.len; k++) {
        Node *st = n->stmts.items[k];
        gen_closure(st->cg, st->body, NULL);
    }
    fprintf(cg.closures, "static const fr_stage stages_%d[] = {\n", id);
    for (int k = 0; k < n->stmts.len; k++) {
        Node *st = n->stmts.items[k];
        fprintf(cg.closures, "    { %s, %" PRId64 ", %s },\n", c_lit(st->name),
                opt_int(&st->opts, "concurrency", conc), ((Fn *)st->cg)->name);
    }
    fprintf(cg.closures, "};\n\n");
    return id;
}

/* A value that is the same before and after a pipeline: a string without
 * {{ }}, or a workflow parameter (never assigned). */
static bool steady(Node *n)
{
    if (n->kind == N_NAME)
        return n->sym && ((Sym *)n->sym)->kind == SYM_PARAM;
    if (n->kind != N_STRING)
        return false;
    for (int i = 0; i < n->parts.len; i++)
        if (((StrPart *)n->parts.items[i])->expr)
            return false;
    return true;
}

/* Whether st[0..2] is `let xs = read_jsonl<T>(p)` (or read_csv), `let ys =
 * pipeline for x in xs (...) { ... }`, `write_jsonl(ys, q)` (or write_csv)
 * with xs and ys read nowhere else and q steady: then the file streams
 * through the pipeline into the output (fr_stream_file), never held whole. */
static bool is_stream(Node **st, int left)
{
    if (left < 3)
        return false;
    Node *a = st[0], *b = st[1], *c = st[2];
    if (a->kind != N_LET || !a->sym || !a->value || a->value->kind != N_CALL ||
        (a->value->builtin != B_READ_JSONL && a->value->builtin != B_READ_CSV))
        return false;
    if (b->kind != N_LET || !b->sym || !b->value || b->value->kind != N_PIPELINE ||
        !b->value->iter || b->value->iter->kind != N_NAME || b->value->iter->sym != a->sym)
        return false;
    if (c->kind != N_CALL || (c->builtin != B_WRITE_JSONL && c->builtin != B_WRITE_CSV) ||
        c->args.len != 2)
        return false;
    Node *ys = c->args.items[0];
    if (ys->kind != N_NAME || ys->sym != b->sym || !steady(c->args.items[1]))
        return false;
    Sym *xs = a->sym, *ys_sym = b->sym;
    return xs->reads == 1 && ys_sym->reads == 1 && !xs->assigned && !ys_sym->assigned;
}

/* The three statements is_stream found, as one fr_stream_file. */
static void gen_stream(Gen *g, Node **st)
{
    Node *rd = st[0]->value, *pl = st[1]->value, *wr = st[2];
    const char *in = value_of(g, rd->args.items[0]);
    Type *lt = rd->type && rd->type->kind == TY_LIST ? rd->type->elem : NULL;
    Type *ot = pl->type && pl->type->kind == TY_LIST ? pl->type->elem : NULL;
    int64_t conc = opt_int(&pl->opts, "concurrency", 16);
    int id = gen_stages(pl, conc);
    const char *opts = par_opts(g, pl, conc);
    const char *out = value_of(g, wr->args.items[1]);
    for (int k = 0; k < 2; k++) {  /* the lists are never made */
        SymInfo *si = lookup(g->fn, st[k]->sym);
        if (si)
            emit(g, "(void)%s;", var_ref(g->fn, si));
    }
    emit(g, "if (!fr_stream_file(cx, %s, %s, %s, %s, &%s, %d, stages_%d, %s, %s, %s, %s, %s))",
         in, type_ref(lt), read_opts(g, rd), where_of(rd->span), opts, pl->stmts.len, id,
         env_arg(g), out, type_ref(ot), wr->builtin == B_WRITE_CSV ? "true" : "false",
         where_of(wr->span));
    g->fn->indent++;
    emit(g, "%s", fail_stmt(g));
    g->fn->indent--;
}

/* pipeline for x in xs (opts) { stage a (concurrency: N) { e } ... } */
static const char *gen_pipeline(Gen *g, Node *n)
{
    const char *xs = value_of(g, n->iter);
    int64_t conc = opt_int(&n->opts, "concurrency", 16);
    int id = gen_stages(n, conc);
    const char *opts = par_opts(g, n, conc);
    const char *t = tmp_of(g, fmt("fr_pipeline(cx, %s, &%s, %d, stages_%d, %s)", xs, opts,
                                  n->stmts.len, id, env_arg(g)));
    check(g, t);
    return t;
}

/* parallel { stmt ... }: each statement a task; bindings land in the frame */
static const char *gen_parblock(Gen *g, Node *n)
{
    int id = (int)(intptr_t)n->cg;
    for (int k = 0; k < n->stmts.len; k++) {
        Node *st = n->stmts.items[k];
        gen_closure(st->cg, st, NULL);
    }
    fprintf(cg.closures, "static const fr_task_fn tasks_%d[] = {", id);
    for (int k = 0; k < n->stmts.len; k++)
        fprintf(cg.closures, "%s%s", k ? ", " : " ", ((Fn *)((Node *)n->stmts.items[k])->cg)->name);
    fprintf(cg.closures, " };\n\n");
    emit(g, "if (!fr_parallel_block(cx, %d, tasks_%d, %s))", n->stmts.len, id, env_arg(g));
    g->fn->indent++;
    emit(g, "%s", fail_stmt(g));
    g->fn->indent--;
    return NULL;
}

/* loop max N { ... break ... } else { ... } */
static const char *gen_loop(Gen *g, Node *n)
{
    int id = ++cg.label;
    const char *max = n->cond && n->cond->kind == N_INT ? fmt("%" PRId64, n->cond->ival) : NULL;
    if (!max) {
        const char *m = value_of(g, n->cond);
        max = fmt("json_integer_value(%s)", m);
    }
    emit(g, "int64_t i_%d;", id);
    emit(g, "for (i_%d = 0; i_%d < %s; i_%d++) {", id, id, max, id);
    g->fn->indent++;
    emit(g, "size_t mark_%d = fr_mark(cx);", id);
    bool brk = false;
    Gen in = *g;
    in.loop = id;
    in.loop_direct = true;
    in.brk_used = &brk;
    discard(g, gen_expr(&in, n->body));
    emit(g, "fr_release(cx, mark_%d);", id);
    if (brk) {
        emit(g, "continue;");
        emit(g, "brk_%d:", id);
        emit(g, "fr_release(cx, mark_%d);", id);
        emit(g, "break;");
    }
    g->fn->indent--;
    emit(g, "}");
    if (n->els) {
        emit(g, "if (i_%d == %s) {", id, max);
        gen_branch(g, n->els, NULL);
        emit(g, "}");
    }
    return NULL;
}

/* break: straight to the loop's exit (sema allows no `for` in between; if
 * one were, the signal would travel through its drop label to the caller) */
static const char *gen_break(Gen *g)
{
    if (!g->loop)
        return NULL;
    if (g->loop_direct) {
        *g->brk_used = true;
        emit(g, "goto brk_%d;", g->loop);
    } else {
        emit(g, "cx->sig = FR_SIG_BREAK;");
        emit(g, "%s", fail_stmt(g));
    }
    return NULL;
}

/* let x = e | x = e */
static const char *gen_bind(Gen *g, Node *n)
{
    SymInfo *si = n->sym ? lookup(g->fn, n->sym) : NULL;
    const char *v = value_of(g, n->value);
    if (!si || !si->read) {
        discard(g, v);
        return NULL;
    }
    if (si->owned)
        emit(g, "fr_assign(&%s, %s);", var_ref(g->fn, si), v);
    else
        emit(g, "%s = %s;", var_ref(g->fn, si), v);
    return NULL;
}

/* phase name { ... } */
static const char *gen_phase(Gen *g, Node *n)
{
    int idx = *(int *)n->cg;
    if (idx > 0)
        emit(g, "%s", "");
    emit(g, "/* phase %s */", n->name);
    emit(g, "if (!fr_phase_begin(cx, %d))", idx);
    emit(g, "    %s", fail_stmt(g));
    Gen in = *g;
    in.phase = idx;
    discard(g, gen_expr(&in, n->body));
    if (!n->body->type || n->body->type->kind != TY_NEVER)
        emit(g, "fr_phase_end(cx, %d);", idx);
    return NULL;
}

/* return e: the workflow's result, kept in the root pool past the drops at out */
static const char *gen_return(Gen *g, Node *n)
{
    const char *v = n->value ? value_of(g, n->value) : "fr_null()";
    emit(g, "result = fr_keep(cx, json_incref(%s));", v);
    if (g->phase >= 0)
        emit(g, "fr_phase_end(cx, %d);", g->phase);
    g->fn->used_out = true;
    emit(g, "goto out;");
    return NULL;
}

/* block -> { stmt ... }: the value of its last expression */
static const char *gen_block(Gen *g, Node *n)
{
    const char *v = NULL;
    for (int i = 0; i < n->stmts.len; i++) {
        discard(g, v);
        if (is_stream((Node **)n->stmts.items + i, n->stmts.len - i)) {
            gen_stream(g, (Node **)n->stmts.items + i);
            i += 2, v = NULL;
            continue;
        }
        v = gen_expr(g, n->stmts.items[i]);
    }
    return v;
}

static const char *gen_expr(Gen *g, Node *n)
{
    if (!n)
        return NULL;
    switch (n->kind) {
    case N_INT: return tmp_of(g, gen_int(n->ival));
    case N_DURATION: return tmp_of(g, gen_int(n->ival));
    case N_FLOAT: return tmp_of(g, fmt("fr_float(cx, %s)", c_double(n->fval)));
    case N_STRING: return gen_string(g, n);
    case N_BOOL: return n->ival ? "fr_bool(true)" : "fr_bool(false)";
    case N_NULL: return "fr_null()";
    case N_NAME: return gen_name(g, n);
    case N_FIELD: return gen_field(g, n);
    case N_CALL: return gen_call(g, n);
    case N_LIST: return gen_list(g, n);
    case N_RECORD: return gen_record(g, n);
    case N_BINARY: return gen_binary(g, n);
    case N_UNARY: return gen_unary(g, n);
    case N_BLOCK: return gen_block(g, n);
    case N_IF: return gen_if(g, n);
    case N_MATCH: return gen_match(g, n);
    case N_FOR: return n->parallel ? gen_parallel_for(g, n) : gen_inline_for(g, n);
    case N_PIPELINE: return gen_pipeline(g, n);
    case N_PARBLOCK: return gen_parblock(g, n);
    case N_LOOP: return gen_loop(g, n);
    case N_LET: case N_ASSIGN: return gen_bind(g, n);
    case N_PHASE: return gen_phase(g, n);
    case N_RETURN: return gen_return(g, n);
    case N_BREAK: return gen_break(g);
    case N_SKIP:
        emit(g, "fr_skip(cx);");
        emit(g, "%s", fail_stmt(g));
        return NULL;
    default:
        return NULL;
    }
}

/* ---- functions ---------------------------------------------------------- */

/* Whether closures made in fn get a frame (known once the prepass is done,
 * which decides what is captured; kept, as it is asked per closure). */
static bool fn_has_frame(Fn *fn)
{
    if (fn->frame >= 0)
        return fn->frame;
    bool frame = fn->has_closures && fn->kind != FN_MAIN;
    for (int i = 0; fn->has_closures && !frame && i < fn->locals.len; i++)
        frame = ((SymInfo *)fn->locals.items[i])->captured;
    fn->frame = frame;
    return frame;
}

static const char *frame_name(Fn *fn)
{
    return fmt("frame_%s", fn->name);
}

/* struct frame_F { struct frame_P *up; json_t *v_x; ... }; */
static void write_frame(FILE *f, Fn *fn)
{
    fprintf(f, "struct %s {\n", frame_name(fn));
    if (fn->kind != FN_MAIN)
        fprintf(f, "    struct %s *up;\n", frame_name(fn->parent));
    for (int i = 0; i < fn->locals.len; i++) {
        SymInfo *si = fn->locals.items[i];
        if (si->captured)
            fprintf(f, "    json_t *%s;%*s/* %s */\n", si->cname,
                    (int)(si->cname[0] && strlen(si->cname) < 24 ? 24 - strlen(si->cname) : 1),
                    "", si->sym->name);
    }
    fprintf(f, "};\n\n");
}

static void fn_open(Fn *fn)
{
    fn->f = arena_memstream(&fn->buf, &fn->len);
    fn->indent = 1;
}

static void fn_close(Fn *fn)
{
    fclose(fn->f);
    fn->f = NULL;
    collect_ids(fn);
}

/* The initial value of a local from the function's parameters. */
static const char *init_of(SymInfo *si)
{
    switch (si->init) {
    case INIT_ARG: return fmt("args[%d]", si->init_index);
    case INIT_ITEM: return "item";
    case INIT_PREV: return fmt("prev[%d]", si->init_index);
    default: return "NULL";
    }
}

/* The prologue: env, frame, locals that the body uses. */
static char *prologue(Fn *fn, const char *result_decl)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = arena_memstream(&s, &n);
    bool frame = fn_has_frame(fn);
    if (fn->kind != FN_MAIN && fn->kind != FN_RENDER && (frame || body_uses(fn, "up")))
        fprintf(f, "    struct %s *up = env;\n", frame_name(fn->parent));
    if (frame && fn->kind != FN_MAIN) {
        fprintf(f, "    struct %s fr = { .up = up };\n", frame_name(fn));
    } else if (frame) {
        for (int i = 0; i < fn->locals.len; i++) {
            SymInfo *si = fn->locals.items[i];
            if (si->captured) {
                fprintf(f, "    struct %s fr = { .%s = NULL };\n", frame_name(fn), si->cname);
                break;
            }
        }
    }
    if (result_decl)
        fprintf(f, "    %s\n", result_decl);
    for (int i = 0; i < fn->locals.len; i++) {
        SymInfo *si = fn->locals.items[i];
        if (si->captured && si->init != INIT_NONE)
            fprintf(f, "    fr.%s = %s;\n", si->cname, init_of(si));
        else if (!si->captured && body_uses(fn, si->cname))
            fprintf(f, "    json_t *%s = %s;\n", si->cname, init_of(si));
    }
    fclose(f);
    char *r = arena_strdup(s);
    free(s);
    return r;
}

/* (void)p; for each parameter neither the prologue nor the body uses */
static void void_unused(FILE *f, const char *pro, Fn *fn, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!c_uses(pro, names[i]) && !body_uses(fn, names[i]))
            fprintf(f, "    (void)%s;\n", names[i]);
}

/* out: fr_drop(&v) for owned locals; */
static void write_drops(FILE *f, Fn *fn)
{
    for (int i = 0; i < fn->locals.len; i++) {
        SymInfo *si = fn->locals.items[i];
        if (!si->owned)
            continue;
        if (si->captured)
            fprintf(f, "    fr_drop(&fr.%s);\n", si->cname);
        else if (body_uses(fn, si->cname))
            fprintf(f, "    fr_drop(&%s);\n", si->cname);
    }
}

static bool fn_has_owned(Fn *fn)
{
    for (int i = 0; i < fn->locals.len; i++)
        if (((SymInfo *)fn->locals.items[i])->owned)
            return true;
    return false;
}

/* A closure: a parallel for body (where: its filter), a stage, or a task. */
static void gen_closure(Fn *fn, Node *body, Node *where)
{
    fn_open(fn);
    Gen g = { fn, "out", &fn->used_out, 0, false, NULL, NULL, -1 };
    if (where) {
        const char *c = value_of(&g, where);
        emit(&g, "if (!fr_truthy(%s)) {", c);
        emit(&g, "    fr_skip(cx);");
        emit(&g, "    goto out;");
        emit(&g, "}");
        fn->used_out = true;
    }
    bool task = fn->kind == FN_TASK;
    if (task && body->kind == N_LET) {
        SymInfo *si = body->sym ? lookup(fn, body->sym) : NULL;
        const char *v = value_of(&g, body->value);
        if (si && si->owned)
            emit(&g, "fr_assign(&%s, %s);", var_ref(fn, si), v);
        else if (si)
            emit(&g, "%s = %s;", var_ref(fn, si), v);
        emit(&g, "ok = true;");
    } else if (task) {
        discard(&g, gen_expr(&g, body));
        emit(&g, "ok = true;");
    } else {
        const char *v = value_of(&g, body);
        if (fn_has_owned(fn))
            emit(&g, "result = fr_keep(cx, json_incref(%s));", v);
        else
            emit(&g, "result = %s;", v);
    }
    fn_close(fn);

    FILE *f = cg.closures;
    const char *pro = prologue(fn, task ? "bool ok = false;" : "json_t *result = NULL;");
    if (fn->kind == FN_BODY) {
        fprintf(f, "static json_t *%s(fr_ctx *cx, json_t *item, size_t index, void *env)\n{\n",
                fn->name);
        static const char *const names[] = { "cx", "item", "index", "env" };
        fputs(pro, f);
        void_unused(f, pro, fn, names, 4);
    } else if (fn->kind == FN_STAGE) {
        fprintf(f, "static json_t *%s(fr_ctx *cx, json_t *item, json_t *const *prev, size_t index,"
                "\n%*svoid *env)\n{\n", fn->name, (int)strlen(fn->name) + 16, "");
        static const char *const names[] = { "cx", "item", "prev", "index", "env" };
        fputs(pro, f);
        void_unused(f, pro, fn, names, 5);
    } else {
        fprintf(f, "static bool %s(fr_ctx *cx, void *env)\n{\n", fn->name);
        static const char *const names[] = { "cx", "env" };
        fputs(pro, f);
        void_unused(f, pro, fn, names, 2);
    }
    fputs(fn->buf, f);
    if (fn->used_out)
        fputs("out:\n", f);
    write_drops(f, fn);
    fprintf(f, "    return %s;\n}\n\n", task ? "ok" : "result");
    free(fn->buf);
}

/* static json_t *wf_main(fr_ctx *cx, json_t *const *args) */
static char *gen_main(void)
{
    Fn *fn = cg.main;
    fn_open(fn);
    Gen g = { fn, "out", &fn->used_out, 0, false, NULL, NULL, -1 };
    const char *v = gen_expr(&g, cg.w->body);
    if (!is_value_type(cg.w->ret_type) || !v) {
        discard(&g, v);                          /* a workflow without a result */
        v = "fr_null()";
    }
    if (!cg.w->body || !cg.w->body->type || cg.w->body->type->kind != TY_NEVER)
        emit(&g, "result = fr_keep(cx, json_incref(%s));", v);
    fn_close(fn);

    char *s = NULL;
    size_t n = 0;
    FILE *f = arena_memstream(&s, &n);
    const char *pro = prologue(fn, "json_t *result = NULL;");
    fprintf(f, "/* workflow %s */\nstatic json_t *wf_main(fr_ctx *cx, json_t *const *args)\n{\n",
            cg.w->name);
    fputs(pro, f);
    static const char *const names[] = { "cx", "args" };
    void_unused(f, pro, fn, names, 2);
    fputs(fn->buf, f);
    if (fn->used_out)
        fputs("out:\n", f);
    write_drops(f, fn);
    fputs("    return result;\n}\n\n", f);
    free(fn->buf);
    fclose(f);
    char *r = arena_strdup(s);
    free(s);
    return r;
}

/* ---- models and agents -------------------------------------------------- */

static const char *output_enum(const ModelInfo *mi)
{
    static const char *const modes[][2] = {
        { "output_config", "FR_OUT_OUTPUT_CONFIG" }, { "tool", "FR_OUT_TOOL" },
        { "json_schema", "FR_OUT_JSON_SCHEMA" }, { "json_object", "FR_OUT_JSON_OBJECT" },
        { "prompt", "FR_OUT_PROMPT" },
    };
    for (size_t i = 0; mi->output && i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(mi->output, modes[i][0]) == 0)
            return modes[i][1];
    return "FR_OUT_DEFAULT";
}

static void write_model(FILE *f, Decl *d)
{
    ModelInfo *mi = d->sema;
    if (!mi)
        return;
    fprintf(f, "static const fr_model model_%s = {\n", d->name);
    fprintf(f, "    .name = %s,\n    .provider = %s,\n    .api_name = %s,\n", c_lit(d->name),
            c_lit(mi->provider), c_lit(mi->api_name));
    fprintf(f, "    .usd_per_mtok_in = %s,\n    .usd_per_mtok_out = %s,\n", c_double(mi->usd_in),
            c_double(mi->usd_out));
    fprintf(f, "    .base_url = %s,\n    .api_key_env = %s,\n", c_lit(mi->base_url),
            c_lit(mi->api_key_env));
    fprintf(f, "    .output = %s,\n    .no_temperature = %s,\n    .max_tokens_param = %s,\n",
            output_enum(mi), mi->temperature == 0 ? "true" : "false",
            c_lit(mi->max_tokens_param));
    fprintf(f, "    .max_output_tokens = %" PRId64 ",\n    .context_window = %" PRId64 ",\n",
            mi->max_output_tokens, mi->context_window);
    fprintf(f, "    .usd_per_mtok_cache_write = %s,\n    .usd_per_mtok_cache_write_1h = %s,\n",
            c_double(mi->cache_write), c_double(mi->cache_write_1h));
    fprintf(f, "    .usd_per_mtok_cache_read = %s,\n    .min_cache_tokens = %" PRId64 ",\n",
            c_double(mi->cache_read), mi->min_cache_tokens);
    fprintf(f, "    .rpm = %s,\n    .tpm = %s,\n", c_double(mi->rpm), c_double(mi->tpm));
    fprintf(f, "    .usd_per_mtok_batch_in = %s,\n    .usd_per_mtok_batch_out = %s,\n};\n\n",
            c_double(mi->batch_in), c_double(mi->batch_out));
}

/* The statements that append one template (system or prompt) to buffer buf. */
static void gen_template(Gen *g, Node *s, const char *buf)
{
    if (!s)
        return;
    for (int i = 0; i < s->parts.len; i++) {
        StrPart *sp = s->parts.items[i];
        if (sp->expr) {
            const char *v = value_of(g, sp->expr);
            emit(g, "fr_buf_value(%s, %s);", buf, v);
        } else if (sp->len) {
            int ind = 4 * g->fn->indent + (int)strlen(buf) + 12;
            emit(g, "fr_buf_put(%s, %s, %zu);", buf, c_lit_wrapped(sp->text, sp->len, ind),
                 sp->len);
        }
    }
}

/* static bool A_render(cx, args, system, prompt) */
static void write_render(FILE *f, Decl *a, AgentInfo *ai)
{
    Fn *fn = new_fn(FN_RENDER, NULL, fmt("flow_%s_render", a->name));
    fn_open(fn);
    Gen g = { fn, NULL, NULL, 0, false, NULL, a, -1 };
    gen_template(&g, ai->system, "system");
    gen_template(&g, ai->prompt, "prompt");
    fn_close(fn);
    fprintf(f, "static bool %s(fr_ctx *cx, json_t *const *args, fr_buf *system, fr_buf *prompt)"
            "\n{\n", fn->name);
    static const char *const names[] = { "cx", "args", "system", "prompt" };
    void_unused(f, "", fn, names, 4);
    fputs(fn->buf, f);
    fputs("    return true;\n}\n\n", f);
    free(fn->buf);
}

/* A_tools[]: each tool's name, description, callee, parameters and input
 * schema per dialect. */
static void write_tools(FILE *f, Decl *a, AgentInfo *ai)
{
    for (int i = 0; i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        if (!t->fields.len)
            continue;
        fprintf(f, "static const fr_type *const flow_%s_tool%d_types[] = {", a->name, i);
        for (int k = 0; k < t->fields.len; k++)
            fprintf(f, "%s%s", k ? ", " : " ", type_ref(((Field *)t->fields.items[k])->type));
        fprintf(f, " };\n");
    }
    fprintf(f, "static const fr_tool flow_%s_tools[] = {\n", a->name);
    for (int i = 0; i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        const char *sa = schema_params_json(&t->fields, SD_ANTHROPIC);
        const char *so = schema_params_json(&t->fields, SD_OPENAI_STRICT);
        fprintf(f, "    {\n        .name = %s,\n        .description = %s,\n", c_lit(t->name),
                c_lit(t->doc));
        if (t->kind == D_HTTP)
            fprintf(f, "        .op = &flow_%s_op,\n", t->name);
        else
            fprintf(f, "        .agent = &flow_%s_agent,\n", t->name);
        fprintf(f, "        .nparams = %d,\n        .param_names = %s,\n", t->fields.len,
                t->fields.len ? fmt("flow_%s_params", t->name) : "NULL");
        fprintf(f, "        .param_types = %s,\n", t->fields.len
                ? fmt("flow_%s_tool%d_types", a->name, i) : "NULL");
        fprintf(f, "        .schema =\n            %s,\n", c_lit_wrapped(sa, strlen(sa), 12));
        fprintf(f, "        .schema_strict =\n            %s,\n    },\n",
                c_lit_wrapped(so, strlen(so), 12));
    }
    fprintf(f, "};\n");
}

/* The descriptor A_agent. */
/* The C name of the JSON Schema text of t in a dialect, written once
 * (cg.texts) however many agents answer with t. */
static const char *schema_text(Type *t, SchemaDialect d)
{
    const char *p = prim_spell(t);
    const char *key = fmt("%d:%s", (int)d, p ? p : type_entry(t)->key);
    const char *name = km_get(&cg.schema_texts, key);
    if (name)
        return name;
    static const char *const dialects[] = { "plain", "anthropic", "output_config", "openai" };
    name = fmt("schema_%d", (int)cg.schema_texts.len + 1);
    const char *text = schema_json(t, d);
    fprintf(cg.texts, "/* %s: %s */\nstatic const char %s[] =\n    %s;\n\n",
            (unsigned)d < 4 ? dialects[d] : "?", ty_str(t), name,
            c_lit_wrapped(text, strlen(text), 4));
    km_put(&cg.schema_texts, key, (void *)name);
    return name;
}

static void write_agent_desc(FILE *f, Decl *a, AgentInfo *ai)
{
    const char *sa = schema_text(a->ret_type, SD_ANTHROPIC);
    const char *sc = schema_text(a->ret_type, SD_ANTHROPIC_STRICT);
    bool sys_whole, prompt_whole;
    size_t sys_head = caps_template_head(ai->system, &sys_whole);
    size_t prompt_head = caps_template_head(ai->prompt, &prompt_whole);
    const char *so = schema_text(a->ret_type, SD_OPENAI_STRICT);
    if (a->fields.len) {
        fprintf(f, "static const fr_type *const flow_%s_param_types[] = {", a->name);
        for (int k = 0; k < a->fields.len; k++)
            fprintf(f, "%s%s", k ? ", " : " ", type_ref(((Field *)a->fields.items[k])->type));
        fprintf(f, " };\n");
    }
    fprintf(f, "static const fr_agent flow_%s_agent = {\n", a->name);
    fprintf(f, "    .name = %s,\n    .doc = %s,\n    .model = &model_%s,\n    .output = %s,\n",
            c_lit(a->name), c_lit(a->doc), ai->model ? ai->model->name : "none",
            type_ref(a->ret_type));
    fprintf(f, "    .schema_anthropic = %s,\n", sa);
    fprintf(f, "    .schema_output_config = %s,\n", sc);
    fprintf(f, "    .schema_openai = %s,\n", so);
    fprintf(f, "    .cache = %s,\n    .system_head = %lld,\n    .prompt_head = %lld,\n",
            ai->no_cache ? "false" : "true", sys_whole ? -1LL : (long long)sys_head,
            prompt_whole ? -1LL : (long long)prompt_head);
    fprintf(f, "    .temperature = %s,\n    .max_tokens = %" PRId64 ",\n", c_double(ai->temperature),
            ai->max_tokens > 0 ? ai->max_tokens : 1024);
    fprintf(f, "    .retries = %" PRId64 ",\n    .timeout_ms = %" PRId64 ",\n", ai->retries,
            ai->timeout_ms > 0 ? ai->timeout_ms : 60000);
    fprintf(f, "    .render = flow_%s_render,\n    .nparams = %d,\n    .param_names = %s,\n",
            a->name, a->fields.len, a->fields.len ? fmt("flow_%s_params", a->name) : "NULL");
    if (a->fields.len)
        fprintf(f, "    .param_types = flow_%s_param_types,\n", a->name);
    if (ai->tools.len)
        fprintf(f, "    .ntools = %d,\n    .tools = flow_%s_tools,\n    .max_tool_calls = %" PRId64
                ",\n    .max_tool_result_tokens = %" PRId64 ",\n", ai->tools.len, a->name,
                ai->max_tool_calls, ai->max_tool_result_tokens);
    fprintf(f, "};\n\n");
}

/* The typed wrapper agent_A(cx, site, using, params..., where). */
static void write_agent_call(FILE *f, Decl *a)
{
    int ind = (int)strlen(a->name) + 22;
    int col = fprintf(f, "static json_t *agent_%s(fr_ctx *cx, int site, const fr_model *using",
                      a->name);
    for (int i = 0; i < a->fields.len; i++) {
        const char *p = fmt(" json_t *p_%s,", ((Field *)a->fields.items[i])->name);
        fputc(',', f);
        col++;
        if (col + (int)strlen(p) > 96)
            col = fprintf(f, "\n%*s", ind - 1, "") - 1;
        col += fprintf(f, "%.*s", (int)strlen(p) - 1, p);
    }
    fprintf(f, ",\n%*sconst char *where)\n{\n", ind, "");
    if (a->fields.len) {
        fprintf(f, "    json_t *args[] = {");
        for (int i = 0; i < a->fields.len; i++)
            fprintf(f, "%sp_%s", i ? ", " : " ", ((Field *)a->fields.items[i])->name);
        fprintf(f, " };\n");
    }
    fprintf(f, "    return fr_call(cx, &flow_%s_agent, site, using, %s, where);\n}\n\n", a->name,
            a->fields.len ? "args" : "NULL");
}

static bool is_called(Decl *d)
{
    return km_get(&cg.called_seen, d) != NULL;
}

/* Agent a after the agents among its tools, whose descriptors it names. */
static void write_agent(FILE *f, Decl *a)
{
    AgentInfo *ai = a->sema;
    if (km_get(&cg.written, a))
        return;
    km_put(&cg.written, a, a);
    if (!ai)
        return;
    for (int i = 0; i < ai->tools.len; i++)
        if (((Decl *)ai->tools.items[i])->kind == D_AGENT)
            write_agent(f, ai->tools.items[i]);
    fprintf(f, "/* ---- agent %s ---- */\n\n", a->name);
    write_render(f, a, ai);
    if (a->fields.len) {
        fprintf(f, "static const char *const flow_%s_params[] = {", a->name);
        for (int i = 0; i < a->fields.len; i++)
            fprintf(f, "%s%s", i ? ", " : " ", c_lit(((Field *)a->fields.items[i])->name));
        fprintf(f, " };\n");
    }
    if (ai->tools.len)
        write_tools(f, a, ai);
    write_agent_desc(f, a, ai);
    if (is_called(a))
        write_agent_call(f, a);
}

static void write_agents(FILE *f)
{
    for (int i = 0; i < cg.agents.len; i++)
        write_agent(f, cg.agents.items[i]);
}

/* ---- http operations ----------------------------------------------------- */

/* The statements that append template s to buffer buf; in a URL every
 * interpolation but one that opens it (the base) is percent-encoded. */
static void gen_op_template(Gen *g, Node *s, const char *buf, bool url)
{
    for (int i = 0; i < s->parts.len; i++) {
        StrPart *sp = s->parts.items[i];
        if (sp->expr) {
            const char *v = value_of(g, sp->expr);
            emit(g, "fr_buf_%s(%s, %s);", url && i > 0 ? "url_value" : "value", buf, v);
        } else if (sp->len) {
            emit(g, "fr_buf_put(%s, %s, %zu);", buf, c_lit_n(sp->text, sp->len), sp->len);
        }
    }
}

/* static bool OP_render(cx, args, rq) */
static void write_op_render(FILE *f, Decl *d, HttpInfo *hi)
{
    Fn *fn = new_fn(FN_RENDER, NULL, fmt("flow_%s_render", d->name));
    fn_open(fn);
    Gen g = { fn, NULL, NULL, 0, false, NULL, d, -1 };
    if (hi->url)
        gen_op_template(&g, hi->url, "&rq->url", true);
    for (int i = 0; i < hi->headers.len; i++) {
        gen_op_template(&g, hi->headers.items[i], "&rq->headers", false);
        emit(&g, "fr_buf_put(&rq->headers, \"\\n\", 1);");
    }
    if (hi->body)
        emit(&g, "rq->body = %s;", value_of(&g, hi->body));
    fn_close(fn);
    fprintf(f, "static bool %s(fr_ctx *cx, json_t *const *args, fr_oprequest *rq)\n{\n",
            fn->name);
    static const char *const names[] = { "cx", "args", "rq" };
    void_unused(f, "", fn, names, 3);
    fputs(fn->buf, f);
    fputs("    return true;\n}\n\n", f);
    free(fn->buf);
}

static const char *const paging_names[] = {
    "FR_PAGE_NONE", "FR_PAGE_CURSOR", "FR_PAGE_NEXT_URL", "FR_PAGE_LINK",
};

/* The descriptor OP_op. */
static void write_op_desc(FILE *f, Decl *d, HttpInfo *hi)
{
    if (d->fields.len) {
        fprintf(f, "static const char *const flow_%s_params[] = {", d->name);
        for (int i = 0; i < d->fields.len; i++)
            fprintf(f, "%s%s", i ? ", " : " ", c_lit(((Field *)d->fields.items[i])->name));
        fprintf(f, " };\n");
    }
    if (hi->secrets.len) {
        fprintf(f, "static const char *const flow_%s_secrets[] = {", d->name);
        for (int i = 0; i < hi->secrets.len; i++)
            fprintf(f, "%s%s", i ? ", " : " ", c_lit(hi->secrets.items[i]));
        fprintf(f, " };\n");
    }
    fprintf(f, "static const fr_op flow_%s_op = {\n", d->name);
    fprintf(f, "    .name = %s,\n    .doc = %s,\n    .method = %s,\n", c_lit(d->name),
            c_lit(d->doc), c_lit(hi->method));
    fprintf(f, "    .write = %s,\n    .approval = %s,\n", hi->write ? "true" : "false",
            hi->approval ? "true" : "false");
    fprintf(f, "    .output = %s,\n", is_value_type(d->ret_type) ? type_ref(d->ret_type) : "NULL");
    fprintf(f, "    .body_type = %s,\n", hi->body && is_value_type(hi->body->type)
            ? type_ref(hi->body->type) : "NULL");
    fprintf(f, "    .retries = %" PRId64 ",\n    .timeout_ms = %" PRId64 ",\n    .rps = %s,\n",
            hi->retries, hi->timeout_ms, c_double(hi->rps));
    fprintf(f, "    .paging = %s,\n    .page_field = %s,\n    .page_param = %s,\n",
            paging_names[hi->paging], c_lit(hi->page_field), c_lit(hi->page_param));
    fprintf(f, "    .items = %s,\n    .max_pages = %" PRId64 ",\n", c_lit(hi->items),
            hi->max_pages);
    fprintf(f, "    .render = flow_%s_render,\n    .nparams = %d,\n    .param_names = %s,\n",
            d->name, d->fields.len, d->fields.len ? fmt("flow_%s_params", d->name) : "NULL");
    fprintf(f, "    .nsecrets = %d,\n    .secrets = %s,\n};\n\n", hi->secrets.len,
            hi->secrets.len ? fmt("flow_%s_secrets", d->name) : "NULL");
}

/* The typed wrapper http_OP(cx, site, params..., where). */
static void write_op_call(FILE *f, Decl *d)
{
    fprintf(f, "static json_t *http_%s(fr_ctx *cx, int site", d->name);
    for (int i = 0; i < d->fields.len; i++)
        fprintf(f, ", json_t *p_%s", ((Field *)d->fields.items[i])->name);
    fprintf(f, ", const char *where)\n{\n");
    if (d->fields.len) {
        fprintf(f, "    json_t *args[] = {");
        for (int i = 0; i < d->fields.len; i++)
            fprintf(f, "%sp_%s", i ? ", " : " ", ((Field *)d->fields.items[i])->name);
        fprintf(f, " };\n");
    }
    fprintf(f, "    return fr_op_call(cx, &flow_%s_op, site, %s, where);\n}\n\n", d->name,
            d->fields.len ? "args" : "NULL");
}

static void write_ops(FILE *f)
{
    for (int i = 0; i < cg.ops.len; i++) {
        Decl *d = cg.ops.items[i];
        HttpInfo *hi = d->sema;
        if (!hi)
            continue;
        fprintf(f, "/* ---- http %s (secrets come from the environment only) ---- */\n\n",
                d->name);
        write_op_render(f, d, hi);
        write_op_desc(f, d, hi);
        if (is_called(d))
            write_op_call(f, d);
    }
}

/* ---- the program -------------------------------------------------------- */

/* 1 + the index of workflow w's parameter named by v, 0 if v is no name. */
static int budget_param_index(Decl *w, Node *v)
{
    for (int i = 0; v->kind == N_NAME && i < w->fields.len; i++)
        if (strcmp(((Field *)w->fields.items[i])->name, v->name) == 0)
            return i + 1;
    return 0;
}

/* A budget's settings as an fr_budget initializer (w's parameters may set them). */
static const char *budget_init(Decl *w, Node *b)
{
    if (!b)
        return "FR_NO_BUDGET";
    const char *usd = "-1", *tokens = "-1", *time = "-1";
    int pu = 0, pt = 0, pm = 0;
    for (int i = 0; i < b->opts.len; i++) {
        Setting *s = b->opts.items[i];
        Node *v = s->value;
        if (!v)
            continue;
        int pi = budget_param_index(w, v);
        double d = v->kind == N_FLOAT ? v->fval : (double)v->ival;
        if (strcmp(s->key, "usd") == 0) {
            if (!(pu = pi))
                usd = c_double(d);
        } else if (strcmp(s->key, "tokens") == 0) {
            if (!(pt = pi))
                tokens = fmt("%" PRId64, v->ival);
        } else if (strcmp(s->key, "time") == 0) {
            if (!(pm = pi))
                time = fmt("%" PRId64, v->ival);
        }
    }
    return fmt("{ %s, %s, %s, %d, %d, %d }", usd, tokens, time, pu, pt, pm);
}

/* A parameter's default as JSON text (C-escaped), or NULL. */
static const char *default_json(Field *p)
{
    Node *d = p->deflt;
    if (!d)
        return "NULL";
    bool neg = false;                            /* sema takes any run of '-' */
    while (d->kind == N_UNARY && d->op == OP_NEG) {
        neg = !neg;
        d = d->operand;
    }
    Type *t = p->type && p->type->kind == TY_OPT ? p->type->elem : p->type;
    switch (d->kind) {
    case N_INT:
        if (t && t->kind == TY_FLOAT)
            return c_lit(fmt("%s%" PRId64 ".0", neg ? "-" : "", d->ival));
        return c_lit(fmt("%s%" PRId64, neg ? "-" : "", d->ival));
    case N_FLOAT: return c_lit(fmt("%s%s", neg ? "-" : "", c_double(d->fval)));
    case N_BOOL: return d->ival ? "\"true\"" : "\"false\"";
    case N_NULL: return "\"null\"";
    case N_DURATION: return c_lit(fmt("%" PRId64, d->ival));
    case N_STRING: {
        StrPart *sp = d->parts.len ? d->parts.items[0] : NULL;
        char *buf = NULL;
        size_t n = 0;
        FILE *f = arena_memstream(&buf, &n);
        json_put_str(f, sp ? sp->text : "", sp ? sp->len : 0);
        fclose(f);
        const char *r = c_lit(buf);
        free(buf);
        return r;
    }
    default:
        diag_error(d->span, E1101, "a parameter's default must be a literal");
        cg.ok = false;
        return "NULL";
    }
}

/* 64-bit FNV-1a of every source text, as 16 hex digits. */
static const char *source_hash(void)
{
    uint64_t h = 0xcbf29ce484222325u;
    int n = cg.p->files.len ? cg.p->files.len : src_count();
    for (int i = 0; i < n; i++) {
        Source *s = src_get(cg.p->files.len ? (int)(intptr_t)cg.p->files.items[i] : i);
        for (size_t k = 0; s && k < s->len; k++) {
            h ^= (unsigned char)s->text[k];
            h *= 0x100000001b3u;
        }
    }
    return fmt("%016" PRIx64, h);
}

/* phases[], params[], models[], agents[], program, main() */
static void write_program(FILE *f)
{
    Decl *w = cg.w;
    if (cg.phases.len) {
        fprintf(f, "static const fr_phase phases[] = {\n");
        for (int i = 0; i < cg.phases.len; i++)
            fprintf(f, "    { %s, %s },\n", c_lit(((Node *)cg.phases.items[i])->name),
                    budget_init(w, cg.phase_budgets.items[i]));
        fprintf(f, "};\n\n");
    }
    if (w->fields.len) {
        fprintf(f, "static const fr_param params[] = {\n");
        for (int i = 0; i < w->fields.len; i++) {
            Field *p = w->fields.items[i];
            fprintf(f, "    { %s, %s, %s, %s, %s },\n", c_lit(p->name), type_ref(p->type),
                    default_json(p), c_lit(p->doc),
                    p->in_budget && !(p->sym && ((Sym *)p->sym)->reads) ? "true" : "false");
        }
        fprintf(f, "};\n\n");
    }
    if (cg.models.len) {
        fprintf(f, "static const fr_model *const models[] = {");
        for (int i = 0; i < cg.models.len; i++)
            fprintf(f, "%s&model_%s", i ? ", " : " ", ((Decl *)cg.models.items[i])->name);
        fprintf(f, " };\n");
    }
    if (cg.agents.len) {
        fprintf(f, "static const fr_agent *const agents[] = {");
        for (int i = 0; i < cg.agents.len; i++)
            fprintf(f, "%s&flow_%s_agent", i ? ", " : " ", ((Decl *)cg.agents.items[i])->name);
        fprintf(f, " };\n\n");
    }
    if (cg.ops.len) {
        fprintf(f, "static const fr_op *const ops[] = {");
        for (int i = 0; i < cg.ops.len; i++)
            fprintf(f, "%s&flow_%s_op", i ? ", " : " ", ((Decl *)cg.ops.items[i])->name);
        fprintf(f, " };\n\n");
    }
    Source *src = src_get(w->file);
    fprintf(f, "static const fr_program program = {\n");
    fprintf(f, "    .name = %s,\n    .doc = %s,\n", c_lit(w->name), c_lit(w->doc));
    fprintf(f, "    .source_file = %s,\n    .source_hash = \"%s\",\n", c_lit(src ? src->path : NULL),
            source_hash());
    fprintf(f, "    .nparams = %d,\n    .params = %s,\n", w->fields.len,
            w->fields.len ? "params" : "NULL");
    fprintf(f, "    .ret = %s,\n", is_value_type(w->ret_type) ? type_ref(w->ret_type) : "NULL");
    fprintf(f, "    .nphases = %d,\n    .phases = %s,\n", cg.phases.len,
            cg.phases.len ? "phases" : "NULL");
    fprintf(f, "    .budget = %s,\n", budget_init(w, cg.wf_budget));
    fprintf(f, "    .nmodels = %d,\n    .models = %s,\n", cg.models.len,
            cg.models.len ? "models" : "NULL");
    fprintf(f, "    .nagents = %d,\n    .agents = %s,\n", cg.agents.len,
            cg.agents.len ? "agents" : "NULL");
    fprintf(f, "    .main = wf_main,\n");
    fprintf(f, "    .nops = %d,\n    .ops = %s,\n", cg.ops.len, cg.ops.len ? "ops" : "NULL");
    fprintf(f, "    .flowc_version = \"%s\",\n", FLOWC_VERSION);
    fprintf(f, "    .flags = %s,\n};\n\n", cg.approves && cg.shards ? "FR_PROG_APPROVE | FR_PROG_SHARD"
            : cg.approves ? "FR_PROG_APPROVE" : cg.shards ? "FR_PROG_SHARD" : "0");
    fprintf(f, "int main(int argc, char **argv)\n{\n    return fr_main(&program, argc, argv);\n}\n");
}

/* Everything but the type tables, in memory, so that types come first. */
static char *gen_sections(void)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = arena_memstream(&s, &n);
    char *main_text = gen_main();

    if (cg.models.len)
        fprintf(f, "/* ---- models (API keys come from the environment only) ---- */\n\n");
    for (int i = 0; i < cg.models.len; i++)
        write_model(f, cg.models.items[i]);
    char *ab = NULL;                             /* the agents, after the schemas they use */
    size_t an = 0;
    FILE *af = arena_memstream(&ab, &an);
    write_agents(af);
    fclose(af);
    fclose(cg.texts);
    if (cg.texts_len)
        fprintf(f, "/* ---- JSON Schemas of the answers, one per type and dialect ---- */\n\n%s",
                cg.texts_buf);
    free(cg.texts_buf);
    write_ops(f);                                /* agents name them as tools */
    fwrite(ab, 1, an, f);
    free(ab);
    bool frames = false;
    for (int i = 0; i < cg.fns.len; i++)
        frames |= fn_has_frame(cg.fns.items[i]);
    if (frames)
        fprintf(f, "/* ---- frames: locals that closures read ---- */\n\n");
    for (int i = 0; i < cg.fns.len; i++)
        if (fn_has_frame(cg.fns.items[i]))
            write_frame(f, cg.fns.items[i]);
    fclose(cg.closures);
    if (cg.closures_len)
        fprintf(f, "/* ---- closures: parallel bodies, stages, tasks ---- */\n\n%s",
                cg.closures_buf);
    free(cg.closures_buf);
    fputs(main_text, f);
    write_program(f);
    fclose(f);
    char *r = arena_strdup(s);
    free(s);
    return r;
}

bool cg_program(FILE *out, Program *p, Decl *w)
{
    memset(&cg, 0, sizeof cg);
    cg.p = p;
    cg.w = w;
    cg.ok = true;
    cg.type_keys.str = cg.type_names.str = cg.schema_texts.str = true;
    cg.main = new_fn(FN_MAIN, NULL, "wf_main");
    cg.closures = arena_memstream(&cg.closures_buf, &cg.closures_len);
    cg.texts = arena_memstream(&cg.texts_buf, &cg.texts_len);
    Pre pc = { cg.main, -1, NULL };
    pre(&pc, w->body);
    if (!cg.ok) {
        fclose(cg.closures);
        free(cg.closures_buf);
        fclose(cg.texts);
        free(cg.texts_buf);
        return false;
    }
    char *body = gen_sections();
    Source *src = src_get(w->file);
    char *path = arena_strdup(src ? src->path : "?");
    for (char *q = path; (q = strstr(q, "*/")); )
        *q = '_';                                /* the path must not end the comment */
    fprintf(out, "/*\n * Generated by flowc %s from %s: workflow %s.\n * Do not edit; edit the "
            ".flow and rebuild.\n */\n#include <flowrt.h>\n\n", FLOWC_VERSION, path, w->name);
    fprintf(out, "#if !defined(FLOWRT_ABI) || FLOWRT_ABI != %d\n#error \"this flowrt.h is not "
            "the runtime of flowc %s (runtime ABI %d): build with that flowc's runtime (see "
            "FLOWC_RUNTIME_DIR)\"\n#endif\n\n", FLOWC_RUNTIME_ABI, FLOWC_VERSION,
            FLOWC_RUNTIME_ABI);
    write_types(out);
    fputs(body, out);
    return cg.ok && !ferror(out);
}
