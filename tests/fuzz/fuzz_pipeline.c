/*
 * fuzz_pipeline.c: mutants of every .flow through the whole compiler.
 *
 *   fuzz_pipeline [-n N] [-s SEED] [-t SECONDS] [-o FINDDIR] [-c CDIR]
 *                 [-g GRAMMAR] [-L STDLIB] [-F] [-r FILE]... SEEDFILE...
 *
 * Each input runs as `flowc build` would run it, in this process: parse,
 * imports (from beside the seed it came from, then STDLIB), the checker,
 * lint; and when that finds no error, the back end: every schema's and every
 * answer's JSON Schema in each dialect (it must parse, every $ref must
 * resolve, the --emit-schemas pretty form must be the same JSON) and the C
 * of the workflow (cg_program must not fail on a checked program).  With
 * -F, `flowc fmt` too (its layout must parse to the same tree).  Between
 * inputs the arena, the sources and the diagnostics are reset, so the
 * sanitizers see thousands of compilations (and LeakSanitizer what one
 * leaks).
 *
 * The C is compiled outside, in batches (tests/fuzz/campaign.sh,
 * tests/sh/fuzz_pipeline.sh): with -c, each generated C file that differs
 * from every one before (its hash, with the source hash and the
 * "file:line:col" strings masked, which change with every byte of the
 * input but not what compiles) is written to CDIR/<hash>.c with its input
 * beside it as <hash>.flow, and its name appended to CDIR/new.list.
 *
 * Mutants: N inputs made from the seeds with a fixed-seed generator, half
 * of them from seeds that check clean (mutants of those reach the back end
 * most often), the other half from any.  Most
 * mutations know the grammar: a node of the syntax tree replaced by another
 * node of the same kind of thing (an expression, a statement) from this or
 * another seed; a node wrapped in the context of another node (the text of
 * a node around one of its children, with the child replaced), up to
 * hundreds of times in a row, which nests every construct the grammar has
 * past the nesting limits; a statement duplicated or dropped; a declaration
 * of another seed added; a name of the seed put where another stood; a
 * token of the grammar (read from GRAMMAR's %token lines and quoted
 * characters, so new keywords join by themselves) inserted.  The rest are
 * byte flips, cuts, and lines and chunks spliced from other seeds.
 *
 * A finding is saved to FINDDIR as <kind>-<pid>-<n>.flow before the process
 * dies (crash, sanitizer report, hang: a compilation that takes more than
 * SECONDS of CPU time, default 1) or goes on (schema: a JSON Schema that is not right;
 * cg: code generation failed on a checked program; fmt).  Exit status: 0
 * with no finding, 1 with one.
 */
#include "flowc.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_TEXT (256 * 1024)
#define MAX_TOKENS 512

/* One node of a seed's syntax tree, as text: what the grammar-aware
 * mutations cut and paste. */
typedef struct Piece {
    uint32_t lo, hi;                             /* the node's bytes */
    uint32_t clo, chi;                           /* one child's bytes inside it (clo == chi: none) */
    uint32_t type;                               /* a hash of its checked type, 0 if unknown */
    char cat;                                    /* 'e' expression, 's' statement, 'd' declaration */
} Piece;

typedef struct Seed {
    char *data;                                  /* the file's bytes */
    size_t len;                                  /* how many */
    const char *path;                            /* where it was read (imports are beside it) */
    Piece *pieces;                               /* its nodes */
    int npieces;                                 /* how many */
    long mutants;                                /* inputs made from it */
    bool clean;                                  /* it checks clean as it is */
} Seed;

static Seed *seeds;                              /* the corpus */
static int nseeds;                               /* entries in seeds */
static int *clean_seeds;                         /* indexes of the seeds that check clean */
static int nclean;                               /* entries in clean_seeds */
static const char *tokens[MAX_TOKENS];           /* the grammar's keywords and punctuation */
static int ntokens;                              /* entries in tokens */
static uint64_t rng;                             /* xorshift64* state */
static const char *find_dir = ".";               /* where findings are saved */
static const char *c_dir;                        /* where new C goes, or NULL */
static const char *stdlib_dir;                   /* where stdlib modules are */
static double limit_seconds = 1.0;               /* a hang: longer than this */
static bool with_fmt;                            /* -F: flowc fmt too */
static char *cur;                                /* the input being run */
static size_t cur_len;                           /* its length */
static long findings;                            /* saved so far */
static uint64_t *c_seen;                         /* hashes of the C seen (0: empty slot) */
static size_t c_seen_cap, c_seen_len;            /* slots, used slots */
static long stat_parsed, stat_clean, stat_c, stat_c_new, stat_schemas;

static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static size_t below(size_t n)
{
    return n ? (size_t)(next_rand() % n) : 0;
}

/* ---- findings ------------------------------------------------------------------- */

static void save_current(const char *kind)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%d-%ld.flow", find_dir, kind, (int)getpid(), findings++);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(cur, 1, cur_len, f);
        fclose(f);
    }
    fprintf(stderr, "fuzz_pipeline: %s; input saved to %s\n", kind, path);
}

static void on_signal(int sig)
{
    save_current(sig == SIGPROF ? "hang" : "crash");
    signal(sig, SIG_DFL);
    signal(SIGABRT, SIG_DFL);
    raise(sig == SIGPROF ? SIGABRT : sig);
}

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
static void on_death(void)
{
    save_current("sanitizer");
}

/* A hang is a compilation that uses more than `seconds` of CPU time (the
 * process's own: on a busy machine wall-clock time says nothing). */
static void timer_set(double seconds)
{
    struct itimerval it = { { 0, 0 }, { (time_t)seconds,
                                         (suseconds_t)((seconds - (double)(time_t)seconds) * 1e6) } };
    setitimer(ITIMER_PROF, &it, NULL);
}

/* ---- the pieces of a text ------------------------------------------------------- */

typedef struct Collect {
    Vec todo;                                    /* Node*: still to visit */
    Piece *out;                                  /* what was found (malloc) */
    int n, cap;                                  /* entries used and allocated */
    Node *parent;                                /* the node whose children are visited */
    int nchild;                                  /* children of it seen so far */
} Collect;

static bool is_stmt(NodeKind k)
{
    return k == N_LET || k == N_ASSIGN || k == N_PHASE || k == N_BUDGET || k == N_RETURN;
}

static void add_piece(Collect *c, uint32_t lo, uint32_t hi, char cat)
{
    if (hi <= lo)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->out = realloc(c->out, sizeof *c->out * (size_t)c->cap);
        if (!c->out)
            abort();
    }
    c->out[c->n++] = (Piece){ lo, hi, lo, lo, 0, cat };
}

/* A child of the node being visited: queued, and (reservoir-sampled) kept
 * as the child a wrap mutation replaces. */
static void visit_child(void *ctx, Node *n, TypeExpr *t)
{
    Collect *c = ctx;
    (void)t;
    if (!n)
        return;
    vec_push(&c->todo, n);
    Node *p = c->parent;
    if (!p || n->span.lo < p->span.lo || n->span.hi > p->span.hi || n->span.hi <= n->span.lo)
        return;
    if (below((size_t)++c->nchild) == 0) {
        c->out[c->n - 1].clo = n->span.lo;
        c->out[c->n - 1].chi = n->span.hi;
    }
}

static bool load_imports(Program *p, int first);

static uint32_t type_hash(Type *t)
{
    if (!t || t->kind == TY_ERROR || t->kind == TY_VOID || t->kind == TY_NEVER)
        return 0;
    const char *s = ty_str(t);
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h | 1;
}

/* Parses text (in a compilation of its own; checked too, as from path, if
 * it parses) and lists its declarations and nodes, with their types when
 * it checks; NULL pieces when it has none. */
static void collect_pieces(const char *text, size_t len, const char *path, Piece **out, int *n)
{
    arena_free_all();
    src_reset();
    diag_reset();
    ty_init();
    cur = (char *)text;                          /* a hang here is this text's */
    cur_len = len;
    int file = src_add(path, text, len);
    Program p;
    memset(&p, 0, sizeof p);
    vec_push(&p.files, (void *)(intptr_t)file);
    timer_set(limit_seconds * 4);
    if (parse_file(&p, file) && load_imports(&p, 0) && diag_error_count() == 0)
        sema_check(&p);
    Collect c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < p.decls.len; i++) {
        Decl *d = p.decls.items[i];
        if (d->span.file == file)
            add_piece(&c, d->span.lo, d->span.hi, 'd');
        c.parent = NULL;
        ast_decl_children(d, visit_child, &c);
        while (c.todo.len) {
            Node *x = c.todo.items[--c.todo.len];
            if (x->span.file != file)
                continue;
            add_piece(&c, x->span.lo, x->span.hi, is_stmt(x->kind) ? 's' : 'e');
            if (c.n && c.out[c.n - 1].lo == x->span.lo && !is_stmt(x->kind))
                c.out[c.n - 1].type = type_hash(x->type);
            c.parent = c.n && c.out[c.n - 1].lo == x->span.lo ? x : NULL;
            c.nchild = 0;
            ast_children(x, visit_child, &c);
        }
    }
    timer_set(0);
    *out = c.out;
    *n = c.n;
}

/* ---- mutations ------------------------------------------------------------------- */

/* Replaces buf[lo, hi) by s[0, n); false if the result would not fit. */
static bool replace(char *buf, size_t *len, size_t lo, size_t hi, const char *s, size_t n)
{
    if (lo > hi || hi > *len || *len - (hi - lo) + n > MAX_TEXT)
        return false;
    memmove(buf + lo + n, buf + hi, *len - hi);
    memmove(buf + lo, s, n);
    *len = *len - (hi - lo) + n;
    return true;
}

static Piece *pick(Piece *ps, int n, char cat)
{
    if (!n)
        return NULL;
    for (int tries = 0; tries < 8; tries++) {
        Piece *p = &ps[below((size_t)n)];
        if (!cat || p->cat == cat)
            return p;
    }
    return &ps[below((size_t)n)];
}

/* Another seed's text and pieces, or this one's (names then mostly resolve). */
static Seed *donor(Seed *self)
{
    return below(10) < 6 ? self : &seeds[below((size_t)nseeds)];
}

/* An expression replaced by another of this text of the same type: the
 * mutants most likely to check, and so to reach the back end. */
static bool m_retype(char *buf, size_t *len, Piece *ps, int n)
{
    Piece *a = NULL;
    for (int tries = 0; tries < 8 && !a; tries++) {
        Piece *x = pick(ps, n, 'e');
        if (x && x->type)
            a = x;
    }
    for (int tries = 0; a && tries < 32; tries++) {
        Piece *b = &ps[below((size_t)n)];
        if (b->type != a->type || (b->lo == a->lo && b->hi == a->hi))
            continue;
        char tmp[MAX_TEXT];
        size_t m = b->hi - b->lo;
        memcpy(tmp, buf + b->lo, m);
        return replace(buf, len, a->lo, a->hi, tmp, m);
    }
    return false;
}

/* A node replaced by another node of the same kind of thing. */
static bool m_replace(char *buf, size_t *len, Piece *ps, int n, Seed *self)
{
    Piece *a = pick(ps, n, 0);
    Seed *d = donor(self);
    Piece *b = a ? pick(d == self ? ps : d->pieces, d == self ? n : d->npieces, a->cat) : NULL;
    if (!a || !b)
        return false;
    const char *src = d == self ? self->data : d->data;
    if (d == self) {                             /* self's pieces index the current buf */
        char tmp[MAX_TEXT];
        size_t m = b->hi - b->lo;
        memcpy(tmp, buf + b->lo, m);
        return replace(buf, len, a->lo, a->hi, tmp, m);
    }
    return replace(buf, len, a->lo, a->hi, src + b->lo, b->hi - b->lo);
}

/* A node put in the place of a child of another node, that node's text
 * then standing where the first one was; `times` times over (deep nesting
 * of any construct). */
static bool m_wrap(char *buf, size_t *len, Piece *ps, int n, Seed *self, int times)
{
    Piece *a = pick(ps, n, 'e');
    if (!a || a->cat == 'd')
        return false;
    Seed *d = &seeds[below((size_t)nseeds)];
    Piece *b = NULL;
    for (int tries = 0; tries < 16 && !b; tries++) {
        Piece *x = pick(d->pieces, d->npieces, 0);
        if (x && x->chi > x->clo && x->cat != 'd')
            b = x;
    }
    if (!b)
        return false;
    (void)self;
    size_t pre = b->clo - b->lo, post = b->hi - b->chi, inner = a->hi - a->lo;
    size_t total = inner + (pre + post) * (size_t)times;
    if (*len - inner + total > MAX_TEXT)
        return false;
    static char tmp[MAX_TEXT];
    size_t at = 0;
    for (int k = 0; k < times; k++) {
        memcpy(tmp + at, d->data + b->lo, pre);
        at += pre;
    }
    memcpy(tmp + at, buf + a->lo, inner);
    at += inner;
    for (int k = 0; k < times; k++) {
        memcpy(tmp + at, d->data + b->chi, post);
        at += post;
    }
    return replace(buf, len, a->lo, a->hi, tmp, at);
}

/* A statement written twice, or not at all. */
static bool m_statement(char *buf, size_t *len, Piece *ps, int n)
{
    Piece *a = pick(ps, n, 's');
    if (!a || a->cat != 's')
        return false;
    if (below(2))
        return replace(buf, len, a->lo, a->hi, "", 0);
    char tmp[MAX_TEXT];
    size_t m = a->hi - a->lo;
    memcpy(tmp, buf + a->lo, m);
    tmp[m] = '\n';
    return replace(buf, len, a->hi, a->hi, tmp, m + 1);
}

/* A declaration of another seed, added before one of this seed's. */
static bool m_declaration(char *buf, size_t *len, Piece *ps, int n)
{
    Seed *d = &seeds[below((size_t)nseeds)];
    Piece *b = pick(d->pieces, d->npieces, 'd');
    Piece *a = pick(ps, n, 'd');
    if (!b || b->cat != 'd')
        return false;
    size_t at = a && a->cat == 'd' ? a->lo : *len;
    char tmp[MAX_TEXT];
    size_t m = b->hi - b->lo;
    if (m + 2 > sizeof tmp)
        return false;
    memcpy(tmp, d->data + b->lo, m);
    tmp[m] = '\n';
    tmp[m + 1] = '\n';
    return replace(buf, len, at, at, tmp, m + 2);
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A word of the text at a random place: its start and length (0: none). */
static size_t pick_word(const char *s, size_t len, size_t *start)
{
    size_t i = below(len + 1);
    while (i < len && !word_char(s[i]))
        i++;
    while (i > 0 && i < len && word_char(s[i - 1]))
        i--;
    size_t j = i;
    while (j < len && word_char(s[j]))
        j++;
    *start = i;
    return j - i;
}

/* A word replaced by another word of this text or of another seed. */
static bool m_word(char *buf, size_t *len, Seed *self)
{
    size_t at, from;
    size_t n = pick_word(buf, *len, &at);
    Seed *d = donor(self);
    const char *src = d == self ? buf : d->data;
    size_t m = pick_word(src, d == self ? *len : d->len, &from);
    char word[256];
    if (!n || !m || m >= sizeof word)
        return false;
    memcpy(word, src + from, m);
    return replace(buf, len, at, at + n, word, m);
}

/* A token of the grammar, with a space, somewhere. */
static bool m_token(char *buf, size_t *len)
{
    if (!ntokens)
        return false;
    char tmp[128];
    int m = snprintf(tmp, sizeof tmp, "%s ", tokens[below((size_t)ntokens)]);
    size_t at = below(*len + 1);
    return replace(buf, len, at, at, tmp, (size_t)m);
}

static void line_at(const char *s, size_t len, size_t pos, size_t *lo, size_t *hi)
{
    *lo = pos;
    while (*lo > 0 && s[*lo - 1] != '\n')
        (*lo)--;
    *hi = pos;
    while (*hi < len && s[*hi] != '\n')
        (*hi)++;
    if (*hi < len)
        (*hi)++;
}

/* Bytes: a flip, a cut, a deletion, a line twice or dropped, a chunk of
 * another seed. */
static bool m_bytes(char *buf, size_t *len)
{
    size_t pos = below(*len + 1), lo, hi, n;
    Seed *o = &seeds[below((size_t)nseeds)];
    char tmp[MAX_TEXT];
    switch (below(6)) {
    case 0:
        if (*len)
            buf[below(*len)] ^= (char)(1u << below(8));
        return *len > 0;
    case 1:
        *len = below(*len + 1);
        return true;
    case 2:
        n = 1 + below(8);
        return replace(buf, len, pos, pos + n > *len ? *len : pos + n, "", 0);
    case 3:
        if (!*len)
            return false;
        line_at(buf, *len, below(*len), &lo, &hi);
        if (below(2))
            return replace(buf, len, lo, hi, "", 0);
        memcpy(tmp, buf + lo, hi - lo);
        return replace(buf, len, hi, hi, tmp, hi - lo);
    default:
        if (!o->len)
            return false;
        n = 1 + below(o->len < 400 ? o->len : 400);
        size_t from = below(o->len - n + 1);
        return replace(buf, len, pos, pos, o->data + from, n);
    }
}

/* One mutation of buf (from seed self); pieces are buf's (made afresh when
 * an earlier mutation changed it). */
static void mutate(char *buf, size_t *len, Seed *self, int round)
{
    Piece *ps = self->pieces;
    int n = self->npieces;
    bool own = false;
    if (round > 0) {                             /* buf is no longer the seed */
        collect_pieces(buf, *len, self->path, &ps, &n);
        own = true;
    }
    bool done = false;
    for (int tries = 0; tries < 4 && !done; tries++) {
        switch (below(24)) {
        case 20: case 21: case 22: case 23: done = m_retype(buf, len, ps, n); break;
        case 0: case 1: case 2: case 3: done = m_replace(buf, len, ps, n, self); break;
        case 4: case 5: done = m_wrap(buf, len, ps, n, self, 1 + (int)below(4)); break;
        case 6: done = m_wrap(buf, len, ps, n, self,
                              below(4) ? 5 + (int)below(60) : 200 + (int)below(1200)); break;
        case 7: case 8: done = m_statement(buf, len, ps, n); break;
        case 9: case 10: done = m_declaration(buf, len, ps, n); break;
        case 11: case 12: case 13: done = m_word(buf, len, self); break;
        case 14: case 15: done = m_token(buf, len); break;
        default: done = m_bytes(buf, len); break;
        }
    }
    if (own)
        free(ps);
}

/* ---- one compilation ------------------------------------------------------------- */

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The file an import names, as load.c finds it: beside the importing file,
 * then in the stdlib; with and without ".flow". */
static const char *find_import(const char *from, const char *name)
{
    const char *slash = strrchr(from, '/');
    const char *dir = slash ? arena_strndup(from, (size_t)(slash - from) + 1) : "";
    const char *cands[4] = {
        name[0] == '/' ? name : arena_printf("%s%s.flow", dir, name),
        name[0] == '/' ? arena_printf("%s.flow", name) : arena_printf("%s%s", dir, name),
        arena_printf("%s/%s.flow", stdlib_dir, name), arena_printf("%s/%s", stdlib_dir, name),
    };
    for (int i = 0; i < 4; i++)
        if (is_file(cands[i]))
            return cands[i];
    return NULL;
}

/* Parses the imports of the declarations from first on, and theirs. */
static bool load_imports(Program *p, int first)
{
    KeyMap loaded = { 0 };
    loaded.str = true;
    for (int i = first; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind != D_IMPORT || !d->name || !*d->name)
            continue;
        Source *from = src_get(d->file);
        const char *path = from ? find_import(from->path, d->name) : NULL;
        char real[PATH_MAX];
        if (!path || !realpath(path, real))
            return false;
        if (km_get(&loaded, real))
            continue;
        km_put(&loaded, arena_strdup(real), (void *)1);
        int file = src_load(path);
        if (file < 0)
            return false;
        vec_push(&p->files, (void *)(intptr_t)file);
        if (!parse_file(p, file))
            return false;
    }
    return true;
}

/* Adds h to the C seen (malloc: the arena is freed between inputs); false
 * if it was there. */
static bool c_seen_add(uint64_t h)
{
    h |= 1;                                      /* never 0 */
    if ((c_seen_len + 1) * 2 > c_seen_cap) {
        size_t cap = c_seen_cap ? c_seen_cap * 2 : 1024;
        uint64_t *t = calloc(cap, sizeof *t);
        if (!t)
            abort();
        for (size_t i = 0; i < c_seen_cap; i++)
            for (size_t j = c_seen[i] % cap; c_seen[i]; j = (j + 1) % cap)
                if (!t[j]) {
                    t[j] = c_seen[i];
                    break;
                }
        free(c_seen);
        c_seen = t;
        c_seen_cap = cap;
    }
    size_t j = h % c_seen_cap;
    while (c_seen[j] && c_seen[j] != h)
        j = (j + 1) % c_seen_cap;
    if (c_seen[j])
        return false;
    c_seen[j] = h;
    c_seen_len++;
    return true;
}

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h;
}

/* The hash of generated C with what changes with every byte of the input
 * masked: the source hash, and each "PATH:line:col" string. */
static uint64_t c_hash(const char *c, size_t n, const char *path)
{
    char *m = malloc(n + 1);
    size_t k = 0, plen = strlen(path);
    for (size_t i = 0; i < n; i++) {
        if (c[i] == '"' && i + 1 + plen < n && memcmp(c + i + 1, path, plen) == 0
            && c[i + 1 + plen] == ':') {
            size_t j = i + 1 + plen;
            while (j < n && c[j] != '"')
                j++;
            m[k++] = 'W';
            i = j;
            continue;
        }
        if (n - i > 16 && memcmp(c + i, ".source_hash = \"", 16) == 0) {
            while (i < n && c[i] != '\n')
                i++;
            m[k++] = 'H';
            continue;
        }
        m[k++] = c[i];
    }
    uint64_t h = fnv(m, k);
    free(m);
    return h;
}

/* Every "$ref" under j names one of the root's $defs. */
static bool refs_resolve(json_t *j, json_t *defs, int depth)
{
    if (depth > 4000)
        return false;
    if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v) {
            if (strcmp(k, "$ref") == 0) {
                const char *r = json_string_value(v);
                if (!r || strncmp(r, "#/$defs/", 8) != 0 || !json_object_get(defs, r + 8))
                    return false;
            } else if (!refs_resolve(v, defs, depth + 1)) {
                return false;
            }
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
            if (!refs_resolve(v, defs, depth + 1))
                return false;
    }
    return true;
}

/* A JSON Schema the schema writer made: it parses (unless deeper than
 * jansson reads), its refs resolve, and its pretty form is the same JSON. */
static bool schema_ok(Type *t, SchemaDialect d)
{
    const char *text = schema_json(t, d);
    stat_schemas++;
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        return strstr(err.text, "depth") != NULL;
    bool ok = json_is_object(j) && refs_resolve(j, json_object_get(j, "$defs"), 0);
    char *pretty = NULL;
    size_t plen = 0;
    FILE *f = arena_memstream(&pretty, &plen);
    schema_write_pretty(f, text);
    fclose(f);
    json_t *k = json_loadb(pretty, plen, 0, &err);
    ok = ok && k && json_equal(j, k);
    json_decref(j);
    json_decref(k);
    free(pretty);
    return ok;
}

/* The back end on a checked program. */
static void back_end(Program *p, const char *path)
{
    bool schemas = true;
    for (int i = 0; i < p->decls.len && schemas; i++) {
        Decl *d = p->decls.items[i];
        Type *t = d->kind == D_SCHEMA ? d->type
                  : d->kind == D_AGENT || d->kind == D_HTTP ? d->ret_type : NULL;
        if (!t || t->kind == TY_ERROR || t->kind == TY_VOID)
            continue;
        for (int dl = SD_PLAIN; dl <= SD_OPENAI_STRICT && schemas; dl++)
            schemas = schema_ok(t, (SchemaDialect)dl);
    }
    if (!schemas)
        save_current("schema");
    Decl *w = sema_workflow(p);
    if (!w)
        return;
    char *c = NULL;
    size_t n = 0;
    FILE *f = arena_memstream(&c, &n);
    bool ok = cg_program(f, p, w);
    fclose(f);
    if (!ok || diag_error_count() > 0) {
        save_current("cg");
        free(c);
        return;
    }
    stat_c++;
    uint64_t h = c_hash(c, n, path);
    char key[32];
    snprintf(key, sizeof key, "%016llx", (unsigned long long)h);
    if (c_dir && c_seen_add(h)) {
        char cpath[4096];
        snprintf(cpath, sizeof cpath, "%s/%s.c", c_dir, key);
        if (access(cpath, F_OK) != 0) {
            FILE *out = fopen(cpath, "w");
            if (out) {
                fwrite(c, 1, n, out);
                fclose(out);
                snprintf(cpath, sizeof cpath, "%s/%s.flow", c_dir, key);
                if ((out = fopen(cpath, "w"))) {
                    fwrite(cur, 1, cur_len, out);
                    fclose(out);
                }
                snprintf(cpath, sizeof cpath, "%s/new.list", c_dir);
                if ((out = fopen(cpath, "a"))) {
                    fprintf(out, "%s.c\n", key);
                    fclose(out);
                }
                stat_c_new++;
            }
        }
    }
    free(c);
}

/* `flowc fmt` on a file that parsed: a layout that parses to the same tree. */
static void fmt_check(int file)
{
    size_t len = 0;
    int status = 0;
    char *out = fmt_source(file, &len, &status);
    free(out);
    if (!out && status == 3)
        save_current("fmt");
}

/* One input through the compiler, as from path (imports are beside it). */
static bool run_one(const char *data, size_t len, const char *path)
{
    arena_free_all();
    src_reset();
    diag_reset();
    ty_init();
    cur = (char *)data;
    cur_len = len;
    timer_set(limit_seconds);
    int file = src_add(path, data, len);
    Program p;
    memset(&p, 0, sizeof p);
    vec_push(&p.files, (void *)(intptr_t)file);
    bool ok = parse_file(&p, file);
    stat_parsed += ok;
    if (ok && with_fmt)
        fmt_check(file);
    ok = ok && load_imports(&p, 0) && diag_error_count() == 0;
    if (ok)
        ok = sema_check(&p);
    if (ok)
        lint_program(&p, file);
    ok = ok && diag_error_count() == 0;
    if (ok) {
        stat_clean++;
        diag_reset();
        back_end(&p, path);
    }
    timer_set(0);
    return ok;
}

/* ---- driver ------------------------------------------------------------------------ */

static bool read_file(const char *path, Seed *s)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    s->data = malloc(MAX_TEXT);
    s->len = fread(s->data, 1, MAX_TEXT, f);
    s->path = path;
    fclose(f);
    return true;
}

/* The grammar's tokens: each %token's quoted name ("'->'" is ->), and every
 * quoted character of the rules ('{'), kept once each. */
static void read_tokens(const char *grammar)
{
    FILE *f = fopen(grammar, "r");
    char line[4096];
    while (f && fgets(line, sizeof line, f) && ntokens < MAX_TOKENS) {
        for (char *p = line; (p = strchr(p, '\'')) && ntokens < MAX_TOKENS; ) {
            char *q = strchr(p + 1, '\'');
            if (!q)
                break;
            size_t n = (size_t)(q - p - 1);
            bool token = strncmp(line, "%token", 6) == 0 && n > 0 && n < 32 && p[-1] == '"';
            bool ch = n == 1 && strchr("{}()[]<>:,.=+-*/?", p[1]);
            if (token || ch) {
                char *t = strndup(p + 1, n);
                bool dup = false;
                for (int i = 0; i < ntokens && !dup; i++)
                    dup = strcmp(tokens[i], t) == 0;
                if (dup || strchr(t, ' '))
                    free(t);
                else
                    tokens[ntokens++] = t;
            }
            p = q + 1;
        }
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    long iterations = 2000;
    uint64_t seed = 1;
    const char *grammar = NULL;
    char **replay = calloc((size_t)argc, sizeof *replay);
    int nreplay = 0;
    seeds = calloc((size_t)argc + 1, sizeof *seeds);
    stdlib_dir = getenv("FLOWC_STDLIB") ? getenv("FLOWC_STDLIB") : "stdlib";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (strcmp(a, "-n") == 0 && more)
            iterations = atol(argv[++i]);
        else if (strcmp(a, "-s") == 0 && more)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "-t") == 0 && more)
            limit_seconds = atof(argv[++i]);
        else if (strcmp(a, "-o") == 0 && more)
            find_dir = argv[++i];
        else if (strcmp(a, "-c") == 0 && more)
            c_dir = argv[++i];
        else if (strcmp(a, "-g") == 0 && more)
            grammar = argv[++i];
        else if (strcmp(a, "-L") == 0 && more)
            stdlib_dir = argv[++i];
        else if (strcmp(a, "-F") == 0)
            with_fmt = true;
        else if (strcmp(a, "-r") == 0 && more)
            replay[nreplay++] = argv[++i];
        else if (read_file(a, &seeds[nseeds]))
            nseeds++;
        else
            fprintf(stderr, "fuzz_pipeline: cannot read %s\n", a);
    }
    if (!nseeds) {
        fprintf(stderr, "fuzz_pipeline: no seed files\n");
        return 2;
    }
    if (grammar)
        read_tokens(grammar);
    rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    signal(SIGPROF, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGABRT, on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(on_death);
    diag_init(DIAG_TEXT, false);

    long replayed = 0;
    for (int i = 0; i < nreplay; i++) {
        Seed s;
        if (!read_file(replay[i], &s)) {
            fprintf(stderr, "fuzz_pipeline: cannot read %s\n", replay[i]);
            return 2;
        }
        run_one(s.data, s.len, replay[i]);
        free(s.data);
        replayed++;
    }
    clean_seeds = calloc((size_t)nseeds, sizeof *clean_seeds);
    for (int i = 0; i < nseeds; i++) {          /* the seeds themselves, and their pieces */
        seeds[i].clean = run_one(seeds[i].data, seeds[i].len, seeds[i].path);
        if (seeds[i].clean)
            clean_seeds[nclean++] = i;
        char *copy = malloc(seeds[i].len + 1);
        memcpy(copy, seeds[i].data, seeds[i].len);
        collect_pieces(copy, seeds[i].len, seeds[i].path, &seeds[i].pieces, &seeds[i].npieces);
        free(copy);
    }

    char *buf = malloc(MAX_TEXT);
    for (long it = 0; it < iterations; it++) {
        Seed *s = nclean && below(2) ? &seeds[clean_seeds[below((size_t)nclean)]]
                                     : &seeds[below((size_t)nseeds)];   /* half from programs that build */
        memcpy(buf, s->data, s->len);
        size_t len = s->len;
        int rounds = below(3) ? 1 : 2 + (int)below(4);
        for (int r = 0; r < rounds; r++)
            mutate(buf, &len, s, r);
        s->mutants++;
        run_one(buf, len, s->path);
    }
    arena_free_all();
    src_reset();
    long least = iterations;
    for (int i = 0; i < nseeds; i++)
        if (seeds[i].mutants < least)
            least = seeds[i].mutants;
    printf("fuzz_pipeline: %ld replayed, %d seeds, %ld mutants (at least %ld of each seed), "
           "%ld parsed, %ld checked clean, %ld JSON Schemas, %ld C files (%ld new), %ld findings\n",
           replayed, nseeds, iterations, least, stat_parsed, stat_clean, stat_schemas, stat_c, stat_c_new,
           findings);
    for (int i = 0; i < nseeds; i++) {
        free(seeds[i].data);
        free(seeds[i].pieces);
    }
    free(c_seen);
    free(clean_seeds);
    free(seeds);
    free(replay);
    free(buf);
    for (int i = 0; i < ntokens; i++)
        free((void *)tokens[i]);
    return findings ? 1 : 0;
}
