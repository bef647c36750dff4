/*
 * flowtest.c: `flowc test FILE...`: a workflow's own logic tested offline.
 *
 * A test file (NAME.flowtest, beside the NAME.flow it tests, or naming it
 * with `flow "PATH"`) holds tests; each gives the workflow's arguments
 * (records inline, or a file), fixtures (canned answers per agent, in the
 * --mock-fixtures format: {"agent", "when", "answer"}) and `expect`
 * assertions on what the run did: its result, the calls each agent got per
 * item (a router's arm, a critic loop's rounds), the items escalated and
 * the items skipped with their errors, its exit status.
 *
 * How it works: the file is parsed here (a small hand-written scanner; JSON
 * values are cut out of the text by their brackets and read by jansson, so
 * every value keeps its span) and checked against the loaded workflow: an
 * argument against its parameter (records against the schema the workflow
 * reads that parameter's file as), a fixture against its agent (each `when`
 * path against the parameters' types, the answer against the output type,
 * with the runtime's own validator), an `expect output` path against the
 * result type.  Every mistake is a diagnostic with its place, as any other
 * of flowc's.  Then the workflow is built once per `flowc test` (cached in
 * .flow/test/ by the hash of its C, so a second run compiles nothing) and
 * each test runs it in a scratch directory: --mock-fixtures (the mock
 * provider: nothing leaves the machine), --trace --trace-content, and a
 * journal only when the workflow calls approve().  stdout, the trace,
 * <workflow>.review.jsonl, <workflow>.skipped.jsonl, the exit status and
 * the fixtures' report on stderr are what the expectations read.  A test of
 * one agent (`call AGENT {...}`) runs a wrapper instead: the .flow's text
 * with its workflow replaced by one that reads the arguments from a file
 * and calls the agent, loaded through a FlowcReader and cached alike.
 *
 * Strict by default: a call that no fixture answers fails the test (`allow
 * mock` lets the mock answer it), as does a test's fixture that no call used
 * and a file's shared fixture that no test used.  A run that does not exit 0
 * fails unless `expect exit N` says otherwise.
 */
#include "flowc.h"

#include "flowrt.h"
#include "fr_data.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the test file --------------------------------------------------------- */

typedef enum ExKind {
    EX_EXIT,                       /* expect exit N */
    EX_OUTPUT,                     /* expect output[PATH] == V | != V | contains V */
    EX_COUNT,                      /* expect count output[PATH] CMP N */
    EX_CALLS,                      /* expect calls AGENT [item I] CMP N */
    EX_ESCALATED,                  /* expect escalated [item I] [why contains S] | CMP N */
    EX_SKIPPED,                    /* expect skipped [item I] [error contains S] | CMP N */
    EX_ERROR,                      /* expect error contains S (the run's stderr) */
    EX_PROMPT,                     /* expect prompt AGENT [item I] [not] contains S */
} ExKind;

enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_CONTAINS };
static const char *const cmp_names[] = { "==", "!=", "<", "<=", ">", ">=", "contains" };

/* One step of an output path: [N] or .field. */
typedef struct Step {
    long index;                    /* [index], when name is NULL */
    const char *name;              /* .name as written */
    const char *key;               /* its key in the output (the field's wire name) */
} Step;

typedef struct Expect {
    ExKind kind;
    Span span;                     /* the whole expectation */
    Span vspan;                    /* its value */
    Vec steps;                     /* Step*: EX_OUTPUT, EX_COUNT */
    int cmp;                       /* CMP_* */
    json_t *value;                 /* EX_OUTPUT */
    long n;                        /* EX_EXIT, and the counts */
    bool count;                    /* EX_ESCALATED, EX_SKIPPED: the CMP N form */
    const char *agent;             /* EX_CALLS */
    Span agent_span;
    const char *item;              /* item path ("0", "2.1"), or NULL: every item */
    const char *contains;          /* why/error contains, or NULL */
    bool negated;                  /* EX_PROMPT: not contains */
} Expect;

typedef struct Fixture {
    Span span;                     /* the JSON object */
    json_t *obj;                   /* {"agent", "when", "answer"} */
    bool shared;                   /* a file's, for every test */
    int uses;                      /* shared: tests whose run used it */
} Fixture;

typedef struct Arg {
    Span span;                     /* the name */
    Span vspan;                    /* the value */
    const char *name;
    json_t *value;                 /* the JSON given, or NULL for a file */
    const char *file;              /* `file "PATH"`, resolved; or NULL */
    Field *param;                  /* check: the workflow's parameter */
    Type *elem;                    /* check: records: the schema the file is read as */
    bool csv;                      /* check: records: read with read_csv */
} Arg;

typedef struct Test {
    Span span;                     /* its name */
    const char *name;
    Vec args;                      /* Arg* */
    Vec fixtures;                  /* Fixture*, the test's own */
    Vec expects;                   /* Expect* */
    bool allow_mock;               /* calls without a fixture get the mock's answer */
    bool approve_all;              /* approve what waits for a person, and resume */
    bool has_exit;                 /* an `expect exit` */
    const char *call;              /* `call AGENT {args}`: the one agent it runs, or NULL */
    Span call_span;                /* the agent's name */
    json_t *call_args;             /* {"param": value, ...} */
    Span call_vspan;
    Decl *agent;                   /* check: the agent called */
    const char *exe;               /* run: the binary of its wrapper */
    Decl *wrapper;                 /* run: the wrapper's workflow */
} Test;

typedef struct TestFile {
    const char *path;
    int src;                       /* source index */
    const char *dir;               /* its directory */
    const char *flow;              /* the .flow it tests, resolved */
    Span flow_span;
    Vec fixtures;                  /* Fixture*, shared by every test */
    Vec tests;                     /* Test* */
    Program prog;                  /* check: the workflow's program */
    Decl *w;                       /* check: the workflow */
} TestFile;

typedef struct Session {
    const char *cache;             /* where binaries are kept */
    bool keep;                     /* keep the scratch directories */
    int passed, failed;
} Session;

/* ---- scanning ----------------------------------------------------------------- */

typedef struct Lx {
    int file;
    const char *s;
    size_t n, pos;
    int errors;
} Lx;

static Span span_at(Lx *l, size_t lo, size_t hi)
{
    return (Span){ l->file, (uint32_t)lo, (uint32_t)hi };
}

static void skip_ws(Lx *l)
{
    for (;;) {
        while (l->pos < l->n && strchr(" \t\r\n", l->s[l->pos]))
            l->pos++;
        if (l->pos + 1 < l->n && l->s[l->pos] == '/' && l->s[l->pos + 1] == '/') {
            while (l->pos < l->n && l->s[l->pos] != '\n')
                l->pos++;
            continue;
        }
        return;
    }
}

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The next word (letters, digits, _), or NULL; *sp its span. */
static const char *word(Lx *l, Span *sp)
{
    skip_ws(l);
    size_t lo = l->pos;
    while (l->pos < l->n && is_word(l->s[l->pos]))
        l->pos++;
    if (sp)
        *sp = span_at(l, lo, l->pos);
    return l->pos > lo ? arena_strndup(l->s + lo, l->pos - lo) : NULL;
}

/* Whether the next word is w (taken if so). */
static bool take_word(Lx *l, const char *w)
{
    skip_ws(l);
    size_t k = strlen(w);
    if (l->pos + k <= l->n && strncmp(l->s + l->pos, w, k) == 0 &&
        (l->pos + k == l->n || !is_word(l->s[l->pos + k]))) {
        l->pos += k;
        return true;
    }
    return false;
}

static bool take(Lx *l, const char *p)
{
    skip_ws(l);
    size_t k = strlen(p);
    if (l->pos + k <= l->n && strncmp(l->s + l->pos, p, k) == 0) {
        l->pos += k;
        return true;
    }
    return false;
}

/* The span of what comes next (a word or one byte), for an error. */
static Span here(Lx *l)
{
    skip_ws(l);
    size_t hi = l->pos;
    while (hi < l->n && is_word(l->s[hi]))
        hi++;
    if (hi == l->pos && hi < l->n)
        hi++;
    return span_at(l, l->pos, hi);
}

static void syntax(Lx *l, Span sp, const char *fmt, const char *arg)
{
    diag_error(sp, E1501, fmt, arg);
    l->errors++;
}

/* Past s[i] = '"': the index after the closing quote, or 0. */
static size_t string_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n && s[i] != '"' && s[i] != '\n'; i++)
        if (s[i] == '\\')
            i++;
    return i < n && s[i] == '"' ? i + 1 : 0;
}

/* The end of the JSON value that starts at s[i]: its brackets matched
 * (jansson reads what is inside), or 0 when it is not closed (*open: where
 * the unclosed bracket is). */
static size_t value_end(const char *s, size_t n, size_t i, size_t *open)
{
    if (i >= n)
        return 0;
    if (s[i] == '"')
        return string_end(s, n, i);
    if (s[i] != '{' && s[i] != '[') {
        size_t j = i;
        while (j < n && (is_word(s[j]) || s[j] == '-' || s[j] == '+' || s[j] == '.'))
            j++;
        return j > i ? j : 0;
    }
    size_t stack[64];
    int depth = 0;
    for (size_t j = i; j < n; j++) {
        if (s[j] == '"') {
            size_t e = string_end(s, n, j);
            if (!e)
                return 0;
            j = e - 1;
        } else if (s[j] == '{' || s[j] == '[') {
            if (depth == 64)
                return 0;
            stack[depth++] = j;
        } else if (s[j] == '}' || s[j] == ']') {
            if (depth == 0 || s[stack[depth - 1]] != (s[j] == '}' ? '{' : '[')) {
                *open = depth ? stack[depth - 1] : i;    /* a '}' for a '[': that one is open */
                return 0;
            }
            if (--depth == 0)
                return j + 1;
        }
    }
    *open = depth > 0 ? stack[depth - 1] : i;
    return 0;
}

/* A JSON value (jansson's), its span in *sp; NULL after an error. */
static json_t *json_value(Lx *l, Span *sp, const char *what)
{
    skip_ws(l);
    size_t lo = l->pos, open = lo;
    size_t hi = value_end(l->s, l->n, lo, &open);
    if (!hi) {
        if (lo < l->n && (l->s[lo] == '{' || l->s[lo] == '[' || l->s[lo] == '"'))
            syntax(l, span_at(l, open, open + 1), "'%s' is not closed", l->s[open] == '"' ? "\"" :
                   l->s[open] == '{' ? "{" : "[");
        else
            syntax(l, here(l), "expected %s (a JSON value)", what);
        return NULL;
    }
    json_error_t je;
    json_t *v = json_loadb(l->s + lo, hi - lo, JSON_DECODE_ANY, &je);
    *sp = span_at(l, lo, hi);
    l->pos = hi;
    if (!v) {
        size_t at = lo + (je.position > 0 ? (size_t)je.position - 1 : 0);
        if (at >= hi)
            at = hi - 1;
        diag_error(span_at(l, at, at + 1), E1501, "bad JSON in %s: %s", what, je.text);
        l->errors++;
    }
    return v;
}

/* A "string" (JSON rules), or NULL after an error. */
static const char *string_lit(Lx *l, Span *sp, const char *what)
{
    skip_ws(l);
    if (l->pos >= l->n || l->s[l->pos] != '"') {
        syntax(l, here(l), "expected %s (a \"string\")", what);
        return NULL;
    }
    json_t *v = json_value(l, sp, what);
    const char *s = v && json_is_string(v) ? arena_strdup(json_string_value(v)) : NULL;
    json_decref(v);
    return s;
}

/* An integer literal (maybe negative), or false after an error. */
static bool int_lit(Lx *l, long *out, Span *sp, const char *what)
{
    skip_ws(l);
    size_t lo = l->pos;
    if (l->pos < l->n && l->s[l->pos] == '-')
        l->pos++;
    while (l->pos < l->n && l->s[l->pos] >= '0' && l->s[l->pos] <= '9')
        l->pos++;
    if (l->pos == lo || (l->s[lo] == '-' && l->pos == lo + 1)) {
        l->pos = lo;
        syntax(l, here(l), "expected %s (a number)", what);
        return false;
    }
    *out = strtol(l->s + lo, NULL, 10);
    if (sp)
        *sp = span_at(l, lo, l->pos);
    return true;
}

/* After an error, on to the next line. */
static void recover(Lx *l)
{
    while (l->pos < l->n && l->s[l->pos] != '\n')
        l->pos++;
}

/* ---- parsing -------------------------------------------------------------------- */

static bool cmp_op(Lx *l, int *cmp, bool counts)
{
    static const char *const ops[] = { "==", "!=", "<=", ">=", "<", ">" };
    static const int codes[] = { CMP_EQ, CMP_NE, CMP_LE, CMP_GE, CMP_LT, CMP_GT };
    for (int i = 0; i < 6; i++)
        if ((counts || i < 2) && take(l, ops[i])) {
            *cmp = codes[i];
            return true;
        }
    return false;
}

/* [item ITEM]: ITEM an index or a "path" ("2.1", a nested fan-out's item). */
static bool item_opt(Lx *l, Expect *e)
{
    if (!take_word(l, "item"))
        return true;
    skip_ws(l);
    Span sp;
    if (l->pos < l->n && l->s[l->pos] == '"')
        return (e->item = string_lit(l, &sp, "an item's path")) != NULL;
    long n;
    if (!int_lit(l, &n, &sp, "an item's index"))
        return false;
    e->item = arena_printf("%ld", n);
    return true;
}

/* output path: ([N] | .name)* right after `output` */
static bool out_path(Lx *l, Expect *e)
{
    while (l->pos < l->n && (l->s[l->pos] == '[' || l->s[l->pos] == '.')) {
        Step *st = arena_alloc(sizeof *st);
        if (l->s[l->pos++] == '[') {
            if (!int_lit(l, &st->index, NULL, "an index"))
                return false;
            if (!take(l, "]")) {
                syntax(l, here(l), "expected '%s' after the index", "]");
                return false;
            }
        } else if (!(st->name = word(l, NULL))) {
            syntax(l, here(l), "expected a field's name after '%s'", ".");
            return false;
        }
        vec_push(&e->steps, st);
    }
    return true;
}

/*
 * expect exit N
 * expect output PATH (== | !=) JSON | expect output PATH contains JSON
 * expect count output PATH CMP N
 * expect calls AGENT [item I] CMP N
 * expect (escalated | skipped) [item I] [(why | error) contains "S"]
 * expect (escalated | skipped) CMP N
 * expect error contains "S"
 * expect prompt AGENT [item I] [not] contains "S"
 */
static Expect *parse_expect(Lx *l, size_t lo)
{
    Expect *e = arena_alloc(sizeof *e);
    Span sp;
    const char *k = word(l, &sp);
    bool ok = true;
    if (k && strcmp(k, "exit") == 0) {
        e->kind = EX_EXIT;
        ok = int_lit(l, &e->n, &e->vspan, "the exit status");
    } else if (k && strcmp(k, "output") == 0) {
        e->kind = EX_OUTPUT;
        ok = out_path(l, e);
        if (ok && take_word(l, "contains"))
            e->cmp = CMP_CONTAINS;
        else if (ok && !cmp_op(l, &e->cmp, false)) {
            syntax(l, here(l), "expected '==', '!=' or 'contains' after %s", "the output");
            ok = false;
        }
        ok = ok && (e->value = json_value(l, &e->vspan, "the expected value")) != NULL;
    } else if (k && strcmp(k, "count") == 0) {
        e->kind = EX_COUNT;
        if (!take_word(l, "output")) {
            syntax(l, here(l), "expected %s after 'count'", "'output'");
            ok = false;
        }
        ok = ok && out_path(l, e);
        if (ok && !cmp_op(l, &e->cmp, true)) {
            syntax(l, here(l), "expected a comparison (== != < <= > >=) after %s", "the count");
            ok = false;
        }
        ok = ok && int_lit(l, &e->n, &e->vspan, "the count");
    } else if (k && strcmp(k, "calls") == 0) {
        e->kind = EX_CALLS;
        if (!(e->agent = word(l, &e->agent_span))) {
            syntax(l, here(l), "expected %s after 'calls'", "an agent's name");
            ok = false;
        }
        ok = ok && item_opt(l, e);
        if (ok && !cmp_op(l, &e->cmp, true)) {
            syntax(l, here(l), "expected a comparison (== != < <= > >=) after %s", "the calls");
            ok = false;
        }
        ok = ok && int_lit(l, &e->n, &e->vspan, "the number of calls");
    } else if (k && (strcmp(k, "escalated") == 0 || strcmp(k, "skipped") == 0)) {
        e->kind = k[0] == 'e' ? EX_ESCALATED : EX_SKIPPED;
        const char *why = k[0] == 'e' ? "why" : "error";
        if (cmp_op(l, &e->cmp, true)) {
            e->count = true;
            ok = int_lit(l, &e->n, &e->vspan, "the number of items");
        } else {
            ok = item_opt(l, e);
            if (ok && take_word(l, why)) {
                if (!take_word(l, "contains")) {
                    syntax(l, here(l), "expected 'contains' after '%s'", why);
                    ok = false;
                }
                ok = ok && (e->contains = string_lit(l, &e->vspan, "the text")) != NULL;
            }
        }
    } else if (k && strcmp(k, "prompt") == 0) {
        e->kind = EX_PROMPT;
        if (!(e->agent = word(l, &e->agent_span))) {
            syntax(l, here(l), "expected %s after 'prompt'", "an agent's name");
            ok = false;
        }
        ok = ok && item_opt(l, e);
        e->negated = ok && take_word(l, "not");
        if (ok && !take_word(l, "contains")) {
            syntax(l, here(l), "expected 'contains' or 'not contains' after %s", "the agent");
            ok = false;
        }
        ok = ok && (e->contains = string_lit(l, &e->vspan, "the text")) != NULL;
    } else if (k && strcmp(k, "error") == 0) {
        e->kind = EX_ERROR;
        if (!take_word(l, "contains")) {
            syntax(l, here(l), "expected 'contains' after '%s'", "error");
            ok = false;
        }
        ok = ok && (e->contains = string_lit(l, &e->vspan, "the text")) != NULL;
    } else {
        syntax(l, sp.hi > sp.lo ? sp : here(l), "expected exit, output, count, calls, prompt, "
               "escalated, skipped or error after 'expect'%s", "");
        ok = false;
    }
    e->span = span_at(l, lo, l->pos);
    return ok ? e : NULL;
}

static Fixture *parse_fixture(Lx *l, bool shared)
{
    Fixture *fx = arena_alloc(sizeof *fx);
    fx->shared = shared;
    fx->obj = json_value(l, &fx->span, "a fixture");
    return fx->obj ? fx : NULL;
}

/* fixtures "FILE": a --mock-fixtures file, a fixture a line. */
static void parse_fixtures_file(Lx *l, TestFile *tf, Vec *into, bool shared)
{
    Span sp;
    const char *rel = string_lit(l, &sp, "a fixtures file");
    if (!rel)
        return;
    const char *path = rel[0] == '/' ? rel : arena_printf("%s/%s", tf->dir, rel);
    int src = src_load(path);
    if (src < 0) {
        diag_error(sp, E1501, "cannot read the fixtures file '%s': %s", path, strerror(errno));
        l->errors++;
        return;
    }
    Source *s = src_get(src);
    Lx fl = { .file = src, .s = s->text, .n = s->len };
    for (;;) {
        skip_ws(&fl);
        if (fl.pos >= fl.n)
            break;
        Fixture *fx = parse_fixture(&fl, shared);
        if (fx)
            vec_push(into, fx);
        else
            recover(&fl);
    }
    l->errors += fl.errors;
}

/* arg NAME = JSON | arg NAME = file "PATH" */
static Arg *parse_arg(Lx *l, TestFile *tf)
{
    Arg *a = arena_alloc(sizeof *a);
    if (!(a->name = word(l, &a->span))) {
        syntax(l, here(l), "expected %s after 'arg'", "a parameter's name");
        return NULL;
    }
    if (!take(l, "=")) {
        syntax(l, here(l), "expected '=' after the parameter's name%s", "");
        return NULL;
    }
    if (take_word(l, "file")) {
        const char *rel = string_lit(l, &a->vspan, "a file's path");
        if (!rel)
            return NULL;
        a->file = rel[0] == '/' ? rel : arena_printf("%s/%s", tf->dir, rel);
        return a;
    }
    a->value = json_value(l, &a->vspan, "the argument");
    return a->value ? a : NULL;
}

/* test "NAME" { stmt* } */
static Test *parse_test(Lx *l, TestFile *tf)
{
    Test *t = arena_alloc(sizeof *t);
    if (!(t->name = string_lit(l, &t->span, "the test's name")))
        return NULL;
    Span open = here(l);
    if (!take(l, "{")) {
        syntax(l, open, "expected '{' after the test's name%s", "");
        return NULL;
    }
    for (;;) {
        skip_ws(l);
        if (l->pos >= l->n) {
            diag_error(open, E1501, "'{' is not closed (the test \"%s\" has no '}')", t->name);
            l->errors++;
            return t;
        }
        if (take(l, "}"))
            return t;
        size_t lo = l->pos;
        Span ksp;
        const char *k = word(l, &ksp);
        bool ok = false;
        if (k && strcmp(k, "arg") == 0) {
            Arg *a = parse_arg(l, tf);
            if ((ok = a != NULL))
                vec_push(&t->args, a);
        } else if (k && strcmp(k, "fixture") == 0) {
            Fixture *fx = parse_fixture(l, false);
            if ((ok = fx != NULL))
                vec_push(&t->fixtures, fx);
        } else if (k && strcmp(k, "fixtures") == 0) {
            int before = l->errors;
            parse_fixtures_file(l, tf, &t->fixtures, false);
            ok = l->errors == before;
        } else if (k && strcmp(k, "call") == 0) {
            if (t->call) {
                syntax(l, ksp, "a test calls one agent%s", "");
            } else if (!(t->call = word(l, &t->call_span))) {
                syntax(l, here(l), "expected %s after 'call'", "an agent's name");
            } else {
                t->call_args = json_value(l, &t->call_vspan, "the arguments ({\"param\": value, ...})");
                ok = t->call_args != NULL;
            }
        } else if (k && strcmp(k, "approve") == 0) {
            if ((ok = take_word(l, "all")))
                t->approve_all = true;
            else
                syntax(l, here(l), "expected 'all' after 'approve'%s", "");
        } else if (k && strcmp(k, "allow") == 0) {
            if ((ok = take_word(l, "mock")))
                t->allow_mock = true;
            else
                syntax(l, here(l), "expected 'mock' after 'allow'%s", "");
        } else if (k && strcmp(k, "expect") == 0) {
            Expect *e = parse_expect(l, lo);
            if ((ok = e != NULL)) {
                vec_push(&t->expects, e);
                t->has_exit |= e->kind == EX_EXIT;
            }
        } else {
            syntax(l, k ? ksp : here(l), "expected arg, call, fixture, fixtures, allow mock, approve "
                   "all, expect or '}' in a test%s", "");
        }
        if (!ok)
            recover(l);
    }
}

/* file -> (flow "PATH" | fixture JSON | fixtures "FILE" | test "NAME" {...})* */
static bool parse_testfile(TestFile *tf)
{
    Source *s = src_get(tf->src);
    Lx l = { .file = tf->src, .s = s->text, .n = s->len };
    for (;;) {
        skip_ws(&l);
        if (l.pos >= l.n)
            break;
        Span ksp;
        const char *k = word(&l, &ksp);
        bool ok = false;
        if (k && strcmp(k, "flow") == 0) {
            const char *rel = string_lit(&l, &tf->flow_span, "the .flow file it tests");
            if ((ok = rel != NULL))
                tf->flow = rel[0] == '/' ? rel : arena_printf("%s/%s", tf->dir, rel);
        } else if (k && strcmp(k, "fixture") == 0) {
            Fixture *fx = parse_fixture(&l, true);
            if ((ok = fx != NULL))
                vec_push(&tf->fixtures, fx);
        } else if (k && strcmp(k, "fixtures") == 0) {
            int before = l.errors;
            parse_fixtures_file(&l, tf, &tf->fixtures, true);
            ok = l.errors == before;
        } else if (k && strcmp(k, "test") == 0) {
            Test *t = parse_test(&l, tf);
            if ((ok = t != NULL)) {
                for (int i = 0; i < tf->tests.len; i++)
                    if (strcmp(((Test *)tf->tests.items[i])->name, t->name) == 0) {
                        diag_error(t->span, E1501, "a second test named \"%s\"", t->name);
                        diag_note(((Test *)tf->tests.items[i])->span, "the first is here");
                        l.errors++;
                    }
                vec_push(&tf->tests, t);
            }
        } else {
            syntax(&l, k ? ksp : here(&l), "expected flow, fixture, fixtures or test%s", "");
        }
        if (!ok)
            recover(&l);
    }
    return l.errors == 0;
}

/* ---- checking against the workflow ---------------------------------------------- */

/* The span of the value of key in the JSON object at sp (its text), or sp. */
static Span member_span(Span sp, const char *key)
{
    Source *s = src_get(sp.file);
    const char *t = s->text;
    size_t i = sp.lo + 1, n = sp.hi, open;
    while (i < n) {
        while (i < n && strchr(" \t\r\n,", t[i]))
            i++;
        if (i >= n || t[i] != '"')
            break;
        size_t ke = string_end(t, n, i);
        if (!ke)
            break;
        bool match = ke - i - 2 == strlen(key) && strncmp(t + i + 1, key, ke - i - 2) == 0;
        i = ke;
        while (i < n && strchr(" \t\r\n:", t[i]))
            i++;
        size_t ve = value_end(t, n, i, &open);
        if (!ve)
            break;
        if (match)
            return (Span){ sp.file, (uint32_t)i, (uint32_t)ve };
        i = ve;
    }
    return sp;
}

/* The span of the k-th element of the JSON array at sp, or sp. */
static Span element_span(Span sp, size_t k)
{
    Source *s = src_get(sp.file);
    const char *t = s->text;
    size_t i = sp.lo + 1, n = sp.hi, open;
    for (size_t e = 0; i < n; e++) {
        while (i < n && strchr(" \t\r\n,", t[i]))
            i++;
        size_t ve = value_end(t, n, i, &open);
        if (!ve)
            break;
        if (e == k)
            return (Span){ sp.file, (uint32_t)i, (uint32_t)ve };
        i = ve;
    }
    return sp;
}

static Type *strip_opt(Type *t)
{
    return t && t->kind == TY_OPT ? t->elem : t;
}

/* Whether v fits t, as the runtime checks it; *why says how not. */
static bool fits(json_t *v, Type *t, const char **why)
{
    fr_buf b = { 0 };
    bool ok = fr_validate(v, data_rt_type(t), &b);
    *why = ok ? NULL : arena_strdup(b.s ? b.s : "does not fit");
    fr_buf_free(&b);
    return ok;
}

static Decl *find_decl(Program *p, DeclKind kind, const char *name)
{
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind == kind && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

/* help: did you mean, among the names of kind (or of fields) */
static void help_closest(const char *name, Vec *fields, Program *p, DeclKind kind)
{
    Vec names = { 0 };
    if (fields)
        for (int i = 0; i < fields->len; i++)
            vec_push(&names, (void *)((Field *)fields->items[i])->name);
    else
        for (int i = 0; i < p->decls.len; i++) {
            Decl *d = p->decls.items[i];
            if (d->kind == kind)
                vec_push(&names, (void *)d->name);
        }
    const char *near = diag_closest(name, (const char *const *)names.items, names.len);
    if (near)
        diag_help("did you mean '%s'?", near);
}

static Field *field_named(Decl *d, const char *name, bool wire)
{
    for (int i = 0; d && i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (strcmp(f->name, name) == 0 || (wire && f->wire && strcmp(f->wire, name) == 0))
            return f;
    }
    return NULL;
}

/* A `when` path: a parameter, then fields by their names in the data. */
static Type *when_type(Decl *agent, const char *path, Span sp)
{
    char *p = arena_strdup(path), *save = NULL;
    char *part = strtok_r(p, ".", &save);
    Field *f = part ? field_named(agent, part, false) : NULL;
    if (!f) {
        diag_error(sp, E1502, "agent '%s' has no parameter '%s'", agent->name, part ? part : "");
        help_closest(part ? part : "", &agent->fields, NULL, D_AGENT);
        return NULL;
    }
    Type *t = f->type;
    bool opt = false;
    while ((part = strtok_r(NULL, ".", &save))) {
        opt |= t->kind == TY_OPT;
        Type *r = strip_opt(t);
        if (r->kind != TY_SCHEMA) {
            diag_error(sp, E1502, "'%s' is a %s, which has no field '%s'", path, ty_str(t), part);
            return NULL;
        }
        Field *g = field_named(r->decl, part, true);
        if (!g) {
            diag_error(sp, E1502, "schema '%s' has no field '%s'", r->decl->name, part);
            help_closest(part, &r->decl->fields, NULL, D_SCHEMA);
            return NULL;
        }
        t = g->type;
    }
    return opt ? ty_opt(t) : t;
}

static void check_fixture(TestFile *tf, Fixture *fx)
{
    json_t *o = fx->obj;
    if (!json_is_object(o)) {
        diag_error(fx->span, E1502, "a fixture is a JSON object: {\"agent\": ..., \"when\": ..., "
                   "\"answer\": ...}");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
        if (strcmp(k, "agent") && strcmp(k, "when") && strcmp(k, "answer"))
            diag_error(member_span(fx->span, k), E1502, "unknown key '%s' in a fixture (it has "
                       "agent, when and answer)", k);
    const char *name = json_string_value(json_object_get(o, "agent"));
    if (!name) {
        diag_error(fx->span, E1502, "a fixture needs \"agent\": the name of the agent it answers");
        return;
    }
    Decl *a = find_decl(&tf->prog, D_AGENT, name);
    if (!a) {
        diag_error(member_span(fx->span, "agent"), E1502, "%s has no agent '%s'", tf->w->name, name);
        help_closest(name, NULL, &tf->prog, D_AGENT);
        return;
    }
    json_t *when = json_object_get(o, "when");
    Span wsp = member_span(fx->span, "when");
    if (when && !json_is_object(when))
        diag_error(wsp, E1502, "\"when\" is an object of \"param.field\": value");
    json_object_foreach(when, k, v) {
        Span ksp = member_span(wsp, k);
        Type *t = when_type(a, k, ksp);
        const char *why;
        if (t && !json_is_null(v) && !fits(v, t, &why))
            diag_error(ksp, E1502, "'%s' is %s, so this fixture matches no call: %s", k, ty_str(t), why);
        else if (t && json_is_null(v) && t->kind != TY_OPT)
            diag_error(ksp, E1502, "'%s' is %s, never null: this fixture matches no call", k, ty_str(t));
    }
    json_t *ans = json_object_get(o, "answer");
    const char *why;
    if (!ans)
        diag_error(fx->span, E1502, "a fixture needs \"answer\": the value agent '%s' returns", name);
    else if (!fits(ans, a->ret_type, &why)) {
        diag_error(member_span(fx->span, "answer"), E1502, "the answer does not fit %s, the output "
                   "of agent '%s': %s", ty_str(a->ret_type), name, why);
        diag_help("a fixture's answer is checked as a model's would be: fix the answer or the schema");
    }
}

/* The read_jsonl<T>(name) or read_csv<T>(name) of a parameter, if any. */
typedef struct Reading {
    const char *param;
    Node *call;
} Reading;

static void find_reading(void *ctx, Node *n, TypeExpr *te)
{
    (void)te;
    Reading *r = ctx;
    if (!n || r->call)
        return;
    if (n->kind == N_CALL && (n->builtin == B_READ_JSONL || n->builtin == B_READ_CSV) &&
        n->args.len >= 1) {
        Node *a = n->args.items[0];
        if (a->kind == N_NAME && strcmp(a->name, r->param) == 0 && n->type &&
            n->type->kind == TY_LIST) {
            r->call = n;
            return;
        }
    }
    ast_children(n, find_reading, ctx);
}

static void check_arg(TestFile *tf, Test *t, Arg *a)
{
    for (int i = 0; i < t->args.len && t->args.items[i] != a; i++)
        if (strcmp(((Arg *)t->args.items[i])->name, a->name) == 0) {
            diag_error(a->span, E1502, "a second value for '%s'", a->name);
            return;
        }
    Field *p = field_named(tf->w, a->name, false);
    if (!p) {
        diag_error(a->span, E1502, "workflow '%s' has no parameter '%s'", tf->w->name, a->name);
        help_closest(a->name, &tf->w->fields, NULL, D_WORKFLOW);
        return;
    }
    a->param = p;
    Type *pt = strip_opt(p->type);
    if (a->file) {
        if (pt->kind != TY_STRING)
            diag_error(a->vspan, E1502, "'%s' is %s, not a file's path", a->name, ty_str(p->type));
        else if (access(a->file, R_OK) != 0)
            diag_error(a->vspan, E1502, "cannot read '%s': %s", a->file, strerror(errno));
        return;
    }
    const char *why;
    if (json_is_array(a->value) && pt->kind == TY_STRING) {
        Reading r = { a->name, NULL };
        ast_children(tf->w->body, find_reading, &r);
        if (!r.call) {
            diag_error(a->vspan, E1502, "records for '%s', which the workflow does not read with "
                       "read_jsonl or read_csv", a->name);
            diag_help("give it a string, or `file \"PATH\"`");
            return;
        }
        a->elem = r.call->type->elem;
        a->csv = r.call->builtin == B_READ_CSV;
        for (size_t i = 0; i < json_array_size(a->value); i++)
            if (!fits(json_array_get(a->value, i), a->elem, &why))
                diag_error(element_span(a->vspan, i), E1502, "record %zu of '%s' does not fit %s "
                           "(as %s reads it): %s", i + 1, a->name, ty_str(a->elem),
                           a->csv ? "read_csv" : "read_jsonl", why);
        return;
    }
    if (json_is_array(a->value) || json_is_object(a->value) || json_is_null(a->value))
        diag_error(a->vspan, E1502, "'%s' is %s: give it a %s", a->name, ty_str(p->type),
                   pt->kind == TY_STRING ? "string, records (a list) or `file \"PATH\"`" : "value");
    else if (!fits(a->value, pt, &why))
        diag_error(a->vspan, E1502, "'%s' is %s: %s", a->name, ty_str(p->type), why);
}

static void check_expect(TestFile *tf, Test *test, Expect *e)
{
    if ((e->kind == EX_CALLS || e->kind == EX_PROMPT) && !find_decl(&tf->prog, D_AGENT, e->agent)) {
        diag_error(e->agent_span, E1502, "%s has no agent '%s'", tf->w->name, e->agent);
        help_closest(e->agent, NULL, &tf->prog, D_AGENT);
        return;
    }
    if (e->kind != EX_OUTPUT && e->kind != EX_COUNT)
        return;
    Type *t = test->agent ? test->agent->ret_type : tf->w->ret_type;
    if (!t || t->kind == TY_VOID) {
        diag_error(e->span, E1502, "workflow '%s' has no result", tf->w->name);
        return;
    }
    for (int i = 0; i < e->steps.len; i++) {
        Step *st = e->steps.items[i];
        Type *r = strip_opt(t);
        if (!st->name && r->kind != TY_LIST) {
            diag_error(e->span, E1502, "output path: [%ld] of %s, which is not a list", st->index,
                       ty_str(t));
            return;
        }
        if (!st->name) {
            t = r->elem;
            continue;
        }
        Field *f = r->kind == TY_SCHEMA ? field_named(r->decl, st->name, true) : NULL;
        if (!f) {
            diag_error(e->span, E1502, "output path: %s has no field '%s'", ty_str(t), st->name);
            if (r->kind == TY_SCHEMA)
                help_closest(st->name, &r->decl->fields, NULL, D_SCHEMA);
            return;
        }
        st->key = f->wire ? f->wire : f->name;
        t = f->type;
    }
    Type *r = strip_opt(t);
    const char *why;
    if (e->kind == EX_COUNT) {
        if (r->kind != TY_LIST)
            diag_error(e->span, E1502, "count of %s, which is not a list", ty_str(t));
    } else if (e->cmp == CMP_CONTAINS) {
        if (r->kind == TY_STRING && !json_is_string(e->value))
            diag_error(e->vspan, E1502, "a %s contains a string", ty_str(t));
        else if (r->kind == TY_LIST && !fits(e->value, r->elem, &why))
            diag_error(e->vspan, E1502, "an item of %s: %s", ty_str(t), why);
        else if (r->kind != TY_STRING && r->kind != TY_LIST)
            diag_error(e->span, E1502, "'contains' needs a string or a list, not %s", ty_str(t));
    } else if (!json_is_null(e->value) && !fits(e->value, r, &why)) {
        diag_error(e->vspan, E1502, "the output there is %s: %s", ty_str(t), why);
    } else if (json_is_null(e->value) && t->kind != TY_OPT) {
        diag_error(e->vspan, E1502, "the output there is %s, never null", ty_str(t));
    }
}

/* call AGENT {"param": value, ...}: each value against its parameter. */
static void check_call(TestFile *tf, Test *t)
{
    Decl *a = find_decl(&tf->prog, D_AGENT, t->call);
    if (!a) {
        diag_error(t->call_span, E1502, "%s has no agent '%s'", tf->w->name, t->call);
        help_closest(t->call, NULL, &tf->prog, D_AGENT);
        return;
    }
    if (t->args.len)
        diag_error(((Arg *)t->args.items[0])->span, E1502, "a test that calls one agent gives "
                   "its arguments in the call, not the workflow's");
    if (!json_is_object(t->call_args)) {
        diag_error(t->call_vspan, E1502, "the arguments of a call are an object: {\"param\": value, ...}");
        return;
    }
    const char *k;
    json_t *v;
    json_object_foreach(t->call_args, k, v)
        if (!field_named(a, k, false)) {
            diag_error(member_span(t->call_vspan, k), E1502, "agent '%s' has no parameter '%s'",
                       a->name, k);
            help_closest(k, &a->fields, NULL, D_AGENT);
        }
    for (int i = 0; i < a->fields.len; i++) {
        Field *f = a->fields.items[i];
        json_t *arg = json_object_get(t->call_args, f->name);
        const char *why;
        if (!arg && f->type->kind != TY_OPT)
            diag_error(t->call_vspan, E1502, "no value for agent '%s''s parameter '%s' (%s)",
                       a->name, f->name, ty_str(f->type));
        else if (arg && !fits(arg, f->type, &why))
            diag_error(member_span(t->call_vspan, f->name), E1502, "'%s' is %s: %s", f->name,
                       ty_str(f->type), why);
    }
    t->agent = a;
}

/* ---- a wrapper for a test of one agent -------------------------------------------- */

/* The .flow text with its workflow replaced by one that reads the call's
 * arguments from a file and calls the agent once per row:
 *   schema FlowcTestCall { p1: T1 ... }
 *   workflow flowc_test_call(flowc_test_input: string) -> list<R> { ... } */
typedef struct Wrapper {
    const char *path;              /* the made-up file, beside the .flow */
    const char *text;              /* its text (arena) */
} Wrapper;

static int wrapper_read(void *ctx, const char *path, char **text, size_t *len, const char **err)
{
    Wrapper *w = ctx;
    (void)err;
    if (strcmp(path, w->path) != 0)
        return 0;
    *len = strlen(w->text);
    *text = malloc(*len + 1);
    if (!*text)
        return -1;
    memcpy(*text, w->text, *len + 1);
    return 1;
}

static int wrapper_exists(void *ctx, const char *path)
{
    Wrapper *w = ctx;
    return strcmp(path, w->path) == 0 ? 1 : -1;
}

static const char *wrapper_display(void *ctx, const char *path)
{
    (void)ctx;
    return path;
}

static const char *span_text(Span sp)
{
    Source *s = src_get(sp.file);
    return arena_strndup(s->text + sp.lo, sp.hi - sp.lo);
}

/* Builds the wrapper of t's agent; false (said) when it cannot. */
static bool build_wrapper(Session *s, TestFile *tf, Test *t)
{
    Decl *a = t->agent, *w = tf->w;
    Source *src = src_get(w->span.file);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = arena_memstream(&buf, &len);
    fprintf(f, "%.*s\n", (int)w->span.lo, src->text);
    fprintf(f, "%s\n\nschema FlowcTestCall {\n", src->text + w->span.hi);
    for (int i = 0; i < a->fields.len; i++) {
        Field *p = a->fields.items[i];
        fprintf(f, "  %s: %s\n", p->name, span_text(p->texpr->span));
    }
    fprintf(f, "}\n\nworkflow flowc_test_call(flowc_test_input: string) -> list<%s> {\n"
            "  phase run {\n    let rows = read_jsonl<FlowcTestCall>(flowc_test_input)\n"
            "    return for r in rows { %s(", span_text(a->ret->span), a->name);
    for (int i = 0; i < a->fields.len; i++)
        fprintf(f, "%sr.%s", i ? ", " : "", ((Field *)a->fields.items[i])->name);
    fprintf(f, ") }\n  }\n}\n");
    fclose(f);
    char *text = arena_strdup(buf);
    free(buf);
    const char *dir = strrchr(tf->flow, '/');
    Wrapper wr = { arena_printf("%.*sflowc-test-%s.flow", dir ? (int)(dir - tf->flow + 1) : 0,
                                tf->flow, a->name), text };
    FlowcReader rd = { wrapper_read, wrapper_exists, wrapper_display, &wr };
    Program *p = arena_alloc(sizeof *p);
    char *path = (char *)wr.path;
    diag_flush();
    diag_keep(true);                             /* its warnings (unused agents) are no news */
    flowc_set_reader(&rd);
    bool ok = flowc_load(p, &path, 1);
    flowc_set_reader(NULL);
    diag_keep(false);
    Vec said = diag_take();
    const char *first = NULL;
    for (int i = 0; i < said.len && !first; i++)
        if (((DiagInfo *)said.items[i])->error)
            first = ((DiagInfo *)said.items[i])->msg;
    if (!ok || !(t->wrapper = sema_workflow(p))) {
        diag_error(t->call_span, E1502, "cannot make a workflow that calls agent '%s' alone: %s",
                   a->name, first ? first : "it does not check");
        return false;
    }
    return build_cached(p, t->wrapper, s->cache, &t->exe) == 0;
}

/* Loads the workflow and checks the file against it; false on any error. */
static bool check_file(TestFile *tf)
{
    int before = diag_error_count();
    if (!tf->flow) {
        size_t n = strlen(tf->path);
        tf->flow = arena_printf("%.*s.flow", (int)(n - (n > 9 && strcmp(tf->path + n - 9, ".flowtest") == 0
                                                     ? 9 : 0)), tf->path);
    }
    char *flow = (char *)tf->flow;
    if (access(flow, R_OK) != 0) {
        diag_error(tf->flow_span.file >= 0 && tf->flow_span.hi ? tf->flow_span
                   : (Span){ tf->src, 0, 0 }, E1501, "cannot read '%s', the workflow it tests: %s",
                   flow, strerror(errno));
        diag_help("a test file tests the .flow of its own name beside it, or the one `flow \"PATH\"` names");
        return false;
    }
    if (!flowc_load(&tf->prog, &flow, 1))
        return false;
    tf->w = sema_workflow(&tf->prog);
    if (!tf->w) {
        diag_error(tf->flow_span, E1502, "'%s' has no workflow to test", flow);
        return false;
    }
    for (int i = 0; i < tf->fixtures.len; i++)
        check_fixture(tf, tf->fixtures.items[i]);
    for (int i = 0; i < tf->tests.len; i++) {
        Test *t = tf->tests.items[i];
        for (int k = 0; k < t->args.len; k++)
            check_arg(tf, t, t->args.items[k]);
        for (int k = 0; k < t->fixtures.len; k++)
            check_fixture(tf, t->fixtures.items[k]);
        if (t->call)
            check_call(tf, t);
        for (int k = 0; k < t->expects.len; k++)
            check_expect(tf, t, t->expects.items[k]);
    }
    return diag_error_count() == before;
}

/* ---- running a test ------------------------------------------------------------- */

/* What one run left behind. */
typedef struct Outcome {
    int status;                    /* exit status; 128+N killed by signal N */
    json_t *output;                /* the result: a list's items as an array */
    json_t *calls;                 /* the trace's call rows */
    json_t *escalated;             /* <workflow>.review.jsonl rows */
    json_t *skipped;               /* <workflow>.skipped.jsonl rows */
    char *err;                     /* stderr */
    bool bad_output;               /* stdout is not the result's JSON */
} Outcome;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    char *s = arena_strdup(buf ? buf : "");
    free(buf);
    return s;
}

/* JSON Lines into an array (NULL when a line is not JSON); a missing file is []. */
static json_t *read_lines(const char *path, const char *type)
{
    char *s = slurp(path);
    json_t *a = json_array();
    for (char *line = s, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        else
            next = line + strlen(line);
        if (!line[strspn(line, " \t\r")])
            continue;
        json_t *v = json_loads(line, JSON_DECODE_ANY, NULL);
        if (!v) {
            json_decref(a);
            return NULL;
        }
        if (!type || (json_is_object(v) && json_is_string(json_object_get(v, "type")) &&
                      strcmp(json_string_value(json_object_get(v, "type")), type) == 0))
            json_array_append(a, v);
        json_decref(v);
    }
    return a;
}

static bool write_args(Test *t, const char *dir, Vec *argv, const char **err)
{
    for (int i = 0; i < t->args.len; i++) {
        Arg *a = t->args.items[i];
        char *flag = arena_printf("--%s", a->name);
        for (char *c = flag; *c; c++)
            if (*c == '_')
                *c = '-';
        if (a->file) {
            vec_push(argv, flag);
            vec_push(argv, (void *)a->file);
        } else if (a->elem) {
            const char *path = arena_printf("%s/%s.%s", dir, a->name, a->csv ? "csv" : "jsonl");
            FILE *f = fopen(path, "w");
            if (!f)
                return *err = arena_printf("cannot write %s: %s", path, strerror(errno)), false;
            fr_buf why = { 0 };
            bool ok = true;
            if (a->csv)
                ok = fr_csv_write(f, a->value, data_rt_type(a->elem), 0, &why);
            else
                for (size_t k = 0; k < json_array_size(a->value); k++)
                    ok &= json_dumpf(json_array_get(a->value, k), f, JSON_COMPACT) == 0 &&
                          fputc('\n', f) != EOF;
            ok &= fclose(f) == 0;
            if (!ok)
                *err = arena_printf("cannot write %s: %s", path, why.s ? why.s : strerror(errno));
            fr_buf_free(&why);
            if (!ok)
                return false;
            vec_push(argv, flag);
            vec_push(argv, (void *)path);
        } else if (json_is_boolean(a->value)) {
            vec_push(argv, json_is_true(a->value) ? flag : arena_printf("--no-%s", flag + 2));
        } else if (json_is_string(a->value)) {
            vec_push(argv, flag);
            vec_push(argv, (void *)arena_strdup(json_string_value(a->value)));
        } else {
            char *s = json_dumps(a->value, JSON_ENCODE_ANY | JSON_COMPACT);
            vec_push(argv, flag);
            vec_push(argv, arena_strdup(s ? s : ""));
            free(s);
        }
    }
    return true;
}

/* A parameter the test does not give, which the workflow reads with
 * read_jsonl or read_csv, whose default is a relative path that exists from
 * here: given as an absolute path, since the run is elsewhere. */
static void default_paths(TestFile *tf, Test *t, Vec *argv)
{
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return;
    for (int i = 0; i < tf->w->fields.len; i++) {
        Field *p = tf->w->fields.items[i];
        bool given = false;
        for (int k = 0; k < t->args.len; k++)
            given |= ((Arg *)t->args.items[k])->param == p;
        Node *d = p->deflt;
        if (given || !d || d->kind != N_STRING || d->parts.len != 1)
            continue;
        Reading r = { p->name, NULL };           /* an input file only, never an output */
        ast_children(tf->w->body, find_reading, &r);
        if (!r.call)
            continue;
        StrPart *sp = d->parts.items[0];
        if (!sp->text || !sp->len || sp->text[0] == '/')
            continue;
        char *rel = arena_strndup(sp->text, sp->len);
        if (access(rel, F_OK) != 0)
            continue;
        char *flag = arena_printf("--%s", p->name);
        for (char *c = flag; *c; c++)
            if (*c == '_')
                *c = '-';
        vec_push(argv, flag);
        vec_push(argv, arena_printf("%s/%s", cwd, rel));
    }
}

static volatile sig_atomic_t timed_out;          /* run_in's alarm went off */

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
}

/* Runs argv in dir, stdout and stderr into files there; the exit status,
 * -2 when it ran longer than limit_s (killed), -1 when it could not run. */
static int run_in(const char *dir, char **argv, int limit_s)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (chdir(dir) < 0 || !freopen("/dev/null", "r", stdin) ||
            !freopen("stdout", "w", stdout) || !freopen("stderr", "w", stderr))
            _exit(126);
        /* offline: no collector, no provider */
        static const char *const unset[] = { "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ANTHROPIC_API_KEY", "OPENAI_API_KEY" };
        for (size_t i = 0; i < sizeof unset / sizeof *unset; i++)
            unsetenv(unset[i]);
        execv(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    /* wait for it, at most limit_s: an alarm interrupts the wait */
    struct sigaction sa = { .sa_handler = on_alarm }, old;
    sigemptyset(&sa.sa_mask);
    timed_out = 0;
    sigaction(SIGALRM, &sa, &old);
    alarm((unsigned)limit_s);
    int st = 0;
    pid_t r;
    while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR && !timed_out)
        ;
    alarm(0);
    sigaction(SIGALRM, &old, NULL);
    if (r != pid) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return timed_out ? -2 : -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A JSON value as a short text for a message. */
static const char *show(json_t *v)
{
    if (!v)
        return "nothing";
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    const char *r = arena_strdup(s ? s : "?");
    free(s);
    if (strlen(r) > 300)
        r = arena_printf("%.300s...", r);
    return r;
}

static bool compare(long got, int cmp, long want)
{
    switch (cmp) {
    case CMP_EQ: return got == want;
    case CMP_NE: return got != want;
    case CMP_LT: return got < want;
    case CMP_LE: return got <= want;
    case CMP_GT: return got > want;
    default: return got >= want;
    }
}

/* The rows of what whose item (key) is e->item (all when NULL) and whose
 * text (key tkey) contains e->contains. */
static long count_rows(json_t *rows, const char *ikey, const char *item, const char *tkey,
                       const char *contains, const char *agent)
{
    long n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) {
        const char *it = json_string_value(json_object_get(r, ikey));
        const char *tx = tkey ? json_string_value(json_object_get(r, tkey)) : NULL;
        const char *ag = json_string_value(json_object_get(r, "agent"));
        if (json_is_true(json_object_get(r, "cached")))
            continue;                            /* answered from the journal on a resume */
        if ((!item || (it && strcmp(it, item) == 0)) &&
            (!contains || (tx && strstr(tx, contains))) &&
            (!agent || (ag && strcmp(ag, agent) == 0)))
            n++;
    }
    return n;
}

/* The output at e's path, or NULL (*where: how far it got). */
static json_t *at_path(json_t *v, Expect *e, const char **where)
{
    const char *w = "output";
    for (int i = 0; v && i < e->steps.len; i++) {
        Step *st = e->steps.items[i];
        v = st->name ? json_object_get(v, st->key) : json_array_get(v, (size_t)st->index);
        w = st->name ? arena_printf("%s.%s", w, st->name) : arena_printf("%s[%ld]", w, st->index);
    }
    *where = w;
    return v;
}

static bool contains(json_t *hay, json_t *needle)
{
    if (json_is_string(hay))
        return json_is_string(needle) && strstr(json_string_value(hay), json_string_value(needle));
    size_t i;
    json_t *x;
    json_array_foreach(hay, i, x)
        if (json_equal(x, needle))
            return true;
    return false;
}

/* One expectation against the outcome; false (said) when it does not hold. */
static bool judge(Expect *e, Outcome *o)
{
    const char *where;
    switch (e->kind) {
    case EX_EXIT:
        if (o->status == e->n)
            return true;
        diag_error(e->span, E1503, "expected exit status %ld, got %d", e->n, o->status);
        return false;
    case EX_OUTPUT: {
        json_t *v = at_path(o->output, e, &where);
        bool ok = e->cmp == CMP_CONTAINS ? v && contains(v, e->value)
            : e->cmp == CMP_EQ ? v && json_equal(v, e->value) : !v || !json_equal(v, e->value);
        if (ok)
            return true;
        if (!v)
            diag_error(e->span, E1503, "%s: there is no such value (the output is %s)", where,
                       show(o->output));
        else
            diag_error(e->span, E1503, "%s: expected %s%s, got %s", where,
                       e->cmp == CMP_NE ? "anything but " : e->cmp == CMP_CONTAINS ? "what contains " : "",
                       show(e->value), show(v));
        return false;
    }
    case EX_COUNT: {
        json_t *v = at_path(o->output, e, &where);
        long n = json_is_array(v) ? (long)json_array_size(v) : -1;
        if (n >= 0 && compare(n, e->cmp, e->n))
            return true;
        if (n < 0)
            diag_error(e->span, E1503, "%s is not a list: %s", where, show(v));
        else
            diag_error(e->span, E1503, "%s has %ld item%s, expected %s %ld", where, n,
                       n == 1 ? "" : "s", cmp_names[e->cmp], e->n);
        return false;
    }
    case EX_CALLS: {
        long n = count_rows(o->calls, "item", e->item, NULL, NULL, e->agent);
        if (compare(n, e->cmp, e->n))
            return true;
        diag_error(e->span, E1503, "agent '%s' was called %ld time%s%s, expected %s %ld", e->agent,
                   n, n == 1 ? "" : "s", e->item ? arena_printf(" for item %s", e->item) : "",
                   cmp_names[e->cmp], e->n);
        return false;
    }
    case EX_PROMPT: {
        long calls = 0, with = 0;
        size_t i;
        json_t *r;
        json_array_foreach(o->calls, i, r) {
            const char *ag = json_string_value(json_object_get(r, "agent"));
            const char *it = json_string_value(json_object_get(r, "item"));
            json_t *c = json_object_get(r, "content");
            if (!ag || strcmp(ag, e->agent) != 0 || (e->item && (!it || strcmp(it, e->item) != 0)))
                continue;
            calls++;
            const char *sys = json_string_value(json_object_get(c, "system"));
            const char *pr = json_string_value(json_object_get(c, "prompt"));
            with += (sys && strstr(sys, e->contains)) || (pr && strstr(pr, e->contains));
        }
        if (e->negated ? with == 0 : with > 0)
            return true;
        const char *who = e->item ? arena_printf("agent '%s' for item %s", e->agent, e->item)
            : arena_printf("agent '%s'", e->agent);
        if (!calls)
            diag_error(e->span, E1503, "%s was not called: no prompt to look at", who);
        else if (e->negated)
            diag_error(e->span, E1503, "%ld of the %ld prompts of %s contain \"%s\"", with, calls,
                       who, e->contains);
        else
            diag_error(e->span, E1503, "none of the %ld prompt%s of %s contains \"%s\"", calls,
                       calls == 1 ? "" : "s", who, e->contains);
        json_array_foreach(o->calls, i, r) {              /* the first one, to compare */
            const char *ag = json_string_value(json_object_get(r, "agent"));
            const char *pr = json_string_value(json_object_get(json_object_get(r, "content"), "prompt"));
            const char *it = json_string_value(json_object_get(r, "item"));
            if (calls && ag && strcmp(ag, e->agent) == 0 && pr && (!e->item || (it && strcmp(it, e->item) == 0))) {
                diag_note(no_span, "the prompt of item %s: %s", it ? it : "?", pr);
                break;
            }
        }
        return false;
    }
    case EX_ERROR:
        if (o->err && strstr(o->err, e->contains))
            return true;
        diag_error(e->span, E1503, "the run's messages (stderr) do not contain \"%s\"", e->contains);
        for (const char *p = o->err; p && *p;) {
            const char *nl = strchr(p, '\n');
            int n = nl ? (int)(nl - p) : (int)strlen(p);
            if (strncmp(p, "fixtures: ", 10) != 0)
                diag_note(no_span, "stderr: %.*s", n, p);
            p = nl ? nl + 1 : p + n;
        }
        return false;
    case EX_ESCALATED:
    case EX_SKIPPED: {
        bool esc = e->kind == EX_ESCALATED;
        json_t *rows = esc ? o->escalated : o->skipped;
        const char *what = esc ? "escalated" : "skipped";
        long n = count_rows(rows, esc ? "path" : "item", e->item, esc ? "why" : "error",
                            e->contains, NULL);
        if (e->count ? compare(n, e->cmp, e->n) : n > 0)
            return true;
        if (e->count)
            diag_error(e->span, E1503, "%ld item%s %s, expected %s %ld", n, n == 1 ? " was" : "s were",
                       what, cmp_names[e->cmp], e->n);
        else
            diag_error(e->span, E1503, "no item%s was %s%s", e->item ? arena_printf(" %s", e->item) : "",
                       what, e->contains ? arena_printf(" with %s containing \"%s\"", esc ? "why" : "an error",
                                                        e->contains) : "");
        /* what there was */
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r)
            diag_note(no_span, "item %s was %s: %s", json_string_value(json_object_get(r, esc ? "path" : "item")),
                      what, json_string_value(json_object_get(r, esc ? "why" : "error")));
        return false;
    }
    }
    return false;
}

/* The test's fixture at line k (from 1) of the file written, or NULL. */
static Fixture *fixture_at(Test *t, TestFile *tf, long k)
{
    if (k >= 1 && k <= t->fixtures.len)
        return t->fixtures.items[k - 1];
    k -= t->fixtures.len;
    return k >= 1 && k <= tf->fixtures.len ? tf->fixtures.items[k - 1] : NULL;
}

/* Reads the fixtures' report on stderr; false (said) for what fails the test. */
/* The fixtures' report of each run (lines "fixtures: ..." on stderr): a
 * call no fixture answered, a fixture no call used.  A fixture is unused
 * when no run of the test used it (a resumed run answers the first run's
 * calls from its journal). */
typedef struct FxReport {
    Vec missed;                    /* char*: "call of agent 'x' (item 2) matched no fixture" */
    int *unused;                   /* per line of fixtures.jsonl: runs that did not use it */
    int runs;                      /* runs read */
} FxReport;

static void read_report(FxReport *r, const char *err)
{
    r->runs++;
    for (const char *line = err, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        size_t n = next ? (size_t)(next - line) : strlen(line);
        next = next ? next + 1 : line + n;
        char *l = arena_strndup(line, n);
        if (strncmp(l, "fixtures: ", 10) != 0)
            continue;
        const char *at = strstr(l, "fixtures.jsonl:");
        if (strncmp(l + 10, "fixture at ", 11) == 0 && at) {
            long k = strtol(at + 15, NULL, 10);
            if (k >= 1)
                r->unused[k - 1]++;
        } else if (strncmp(l + 10, "call of agent ", 14) == 0) {
            char *semi = strstr(l, "; the mock answered it");
            if (semi)
                *semi = '\0';
            vec_push(&r->missed, l + 10);
        }
    }
}

/* What fails the test in the report (said); used[k]: the file's shared fixture k was used. */
static bool judge_fixtures(Test *t, TestFile *tf, FxReport *r, bool *used)
{
    bool ok = true;
    for (int k = 0; k < t->fixtures.len + tf->fixtures.len; k++) {
        if (r->unused[k] < r->runs)
            continue;
        Fixture *fx = fixture_at(t, tf, k + 1);
        if (fx->shared) {
            used[k - t->fixtures.len] = false;
            continue;
        }
        diag_error(fx->span, E1503, "this fixture matched no call in the test \"%s\"", t->name);
        ok = false;
    }
    for (int i = 0; i < r->missed.len && !t->allow_mock; i++) {
        diag_error(t->span, E1503, "%s", (char *)r->missed.items[i]);
        diag_help("add a fixture for it, or `allow mock` to let the mock answer what no fixture does");
        ok = false;
    }
    return ok;
}

static void print_tail(const char *err)
{
    int lines = 0;
    for (const char *p = err; p && *p && lines < 20; lines++) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (strncmp(p, "fixtures: ", 10) != 0)
            fprintf(stderr, "    | %.*s\n", (int)n, p);
        p = e ? e + 1 : p + n;
    }
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            const char *p = arena_printf("%s/%s", dir, de->d_name);
            if (unlink(p) < 0 && (errno == EISDIR || errno == EPERM))
                rm_dir(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* The run's id, from the trace. */
static const char *run_id(const char *dir)
{
    json_t *rows = read_lines(arena_printf("%s/trace.jsonl", dir), NULL);
    const char *id = NULL;
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r)
        if (json_is_string(json_object_get(r, "run_id")))
            id = arena_strdup(json_string_value(json_object_get(r, "run_id")));
    json_decref(rows);
    return id;
}

static void find_approve(void *ctx, Node *n, TypeExpr *te)
{
    (void)te;
    if (!n || *(bool *)ctx)
        return;
    if (n->kind == N_CALL && n->builtin == B_APPROVE)
        *(bool *)ctx = true;
    else
        ast_children(n, find_approve, ctx);
}

/* The flags of every run of a test: the fixtures, the trace with the
 * prompts, a journal when the workflow calls approve() (its decisions live
 * there; else none: a journal's writes cost a run more than all the rest). */
static void common_flags(Vec *argv, const char *exe, Decl *w)
{
    static const char *const flags[] = { "--mock-fixtures", "fixtures.jsonl", "--quiet",
        "--trace", "trace.jsonl", "--trace-content" };
    vec_push(argv, (void *)exe);
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++)
        vec_push(argv, (void *)flags[i]);
    bool approves = false;
    ast_children(w->body, find_approve, &approves);
    if (approves) {
        vec_push(argv, "--journal");
        vec_push(argv, "run.db");
    } else {
        vec_push(argv, "--no-journal");
    }
}

/* Runs the workflow (and, with `approve all`, approves what waits and
 * resumes, until nothing waits); the outcome of its last run into o. */
static bool run_rounds(Test *t, const char *dir, Vec *argv, const char *exe, Outcome *o, FxReport *r)
{
    o->status = run_in(dir, (char **)argv->items, 300);
    o->err = slurp(arena_printf("%s/stderr", dir));
    read_report(r, o->err);
    for (int round = 0; t->approve_all && o->status == 3 && round < 20; round++) {
        const char *id = run_id(dir);
        char *ap[] = { (char *)exe, "approve", (char *)(id ? id : "?"), "--all", "--by",
                       "flowc-test", "--journal", "run.db", NULL };
        int st = run_in(dir, ap, 60);
        if (st != 0) {
            diag_error(t->span, E1503, "`approve %s --all` failed (status %d): %s", id ? id : "?",
                       st, slurp(arena_printf("%s/stderr", dir)));
            return false;
        }
        Vec resume = { 0 };                      /* the same arguments, or it is refused */
        for (int i = 0; i + 1 < argv->len; i++)
            vec_push(&resume, argv->items[i]);
        vec_push(&resume, "--resume");
        vec_push(&resume, (void *)id);
        vec_push(&resume, NULL);
        o->status = run_in(dir, (char **)resume.items, 300);
        o->err = slurp(arena_printf("%s/stderr", dir));
        read_report(r, o->err);
    }
    return true;
}

static bool run_test(Session *s, TestFile *tf, Test *t, const char *exe, bool *used)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = arena_printf("%s/flowc-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        diag_error(t->span, E1503, "cannot make a scratch directory: %s", strerror(errno));
        return false;
    }
    FILE *f = fopen(arena_printf("%s/fixtures.jsonl", dir), "w");
    int nfx = t->fixtures.len + tf->fixtures.len;
    bool *other = arena_alloc(sizeof(bool) * (size_t)(nfx + 1));
    for (int k = 0; f && k < nfx; k++) {
        json_t *o = fixture_at(t, tf, k + 1)->obj;
        const char *ag = json_string_value(json_object_get(o, "agent"));
        /* alone, the agent's wrapper has no other agent: their fixtures are a
         * blank line, which keeps the lines' numbers */
        other[k] = t->call && ag && strcmp(ag, t->call) != 0;
        if (!other[k])
            json_dumpf(o, f, JSON_COMPACT);
        fputc('\n', f);
    }
    const char *why = NULL;
    Vec argv = { 0 };
    common_flags(&argv, exe, t->call ? t->wrapper : tf->w);
    bool ok = f && fclose(f) == 0 && write_args(t, dir, &argv, &why);
    if (ok && t->call) {                         /* the one row of the agent's arguments */
        const char *in = arena_printf("%s/call.jsonl", dir);
        FILE *c = fopen(in, "w");
        ok = c && json_dumpf(t->call_args, c, JSON_COMPACT) == 0 && fputc('\n', c) != EOF;
        ok = c && fclose(c) == 0 && ok;
        vec_push(&argv, "--flowc-test-input");
        vec_push(&argv, (void *)in);
    }
    if (!ok) {
        diag_error(t->span, E1503, "cannot set the test up: %s", why ? why : strerror(errno));
        return false;
    }
    if (!t->call)
        default_paths(tf, t, &argv);
    vec_push(&argv, NULL);
    Outcome o = { 0 };
    FxReport rep = { .unused = arena_alloc(sizeof(int) * (size_t)(t->fixtures.len + tf->fixtures.len + 1)) };
    ok = run_rounds(t, dir, &argv, exe, &o, &rep);
    for (int k = 0; k < nfx; k++)
        if (other[k])
            rep.unused[k] = rep.runs;            /* it could not match */
    Decl *w = t->call ? t->wrapper : tf->w;
    const char *name = w->name;
    char *out = slurp(arena_printf("%s/stdout", dir));
    Type *rt = w->ret_type;
    if (t->call) {                               /* the agent's one answer */
        json_t *all = read_lines(arena_printf("%s/stdout", dir), NULL);
        o.output = all ? json_incref(json_array_size(all) ? json_array_get(all, 0) : json_null()) : NULL;
        json_decref(all);
    } else if (rt && rt->kind == TY_LIST)
        o.output = read_lines(arena_printf("%s/stdout", dir), NULL);
    else if (out && out[strspn(out, " \t\r\n")])
        o.output = json_loads(out, JSON_DECODE_ANY, NULL);
    else
        o.output = json_null();
    o.calls = read_lines(arena_printf("%s/trace.jsonl", dir), "call");
    o.escalated = read_lines(arena_printf("%s/%s.review.jsonl", dir, name), NULL);
    o.skipped = read_lines(arena_printf("%s/%s.skipped.jsonl", dir, name), NULL);
    if (o.status < 0) {
        diag_error(t->span, E1503, o.status == -2 ? "the run took more than %d s: killed"
                   : "the run could not be started (%d)", 300);
        ok = false;
    } else if (!t->has_exit && o.status != 0) {
        diag_error(t->span, E1503, "the run exited with status %d, expected 0", o.status);
        diag_help(o.status == 3 ? "`approve all` approves what waits and resumes the run; or "
                  "`expect exit 3`" : "`expect exit %d` if that is what this test wants", o.status);
        ok = false;
    }
    if (!o.output || !o.calls || !o.escalated || !o.skipped) {
        diag_error(t->span, E1503, "the run's %s is not JSON", !o.output ? "output" : !o.calls
                   ? "trace" : !o.escalated ? "review file" : "skipped file");
        ok = false;
    } else {
        for (int i = 0; i < t->expects.len; i++)
            ok &= judge(t->expects.items[i], &o);
    }
    ok &= judge_fixtures(t, tf, &rep, used);
    diag_flush();
    if (!ok && o.status != 0 && o.err && *o.err) {
        fprintf(stderr, "  the run's stderr:\n");
        print_tail(o.err);
    }
    if (s->keep)
        fprintf(stderr, "  kept: %s\n", dir);
    else
        rm_dir(dir);
    json_decref(o.output);
    json_decref(o.calls);
    json_decref(o.escalated);
    json_decref(o.skipped);
    return ok;
}

static void run_file(Session *s, const char *path)
{
    TestFile *tf = arena_alloc(sizeof *tf);
    tf->path = path;
    tf->flow_span = (Span){ -1, 0, 0 };
    const char *slash = strrchr(path, '/');
    tf->dir = slash ? arena_strndup(path, (size_t)(slash - path)) : ".";
    if (slash && slash == path)
        tf->dir = "/";
    char *abs = realpath(tf->dir, NULL);         /* a file argument is given from elsewhere */
    if (abs) {
        tf->dir = arena_strdup(abs);
        free(abs);
    }
    tf->src = src_load(path);
    if (tf->src < 0) {
        fprintf(stderr, "flowc test: cannot read %s: %s\n", path, strerror(errno));
        s->failed++;
        return;
    }
    bool ok = parse_testfile(tf) && check_file(tf);
    const char *exe = NULL;
    if (ok) {
        int st = build_cached(&tf->prog, tf->w, s->cache, &exe);
        ok = st == 0;
    }
    for (int i = 0; ok && i < tf->tests.len; i++) {   /* after the workflow's: a load resets sema */
        Test *t = tf->tests.items[i];
        for (int k = 0; k < i && t->call && !t->exe; k++) {
            Test *u = tf->tests.items[k];
            if (u->agent == t->agent)
                t->exe = u->exe, t->wrapper = u->wrapper;
        }
        if (t->call && !t->exe)
            ok = build_wrapper(s, tf, t);
    }
    diag_flush();
    if (!ok) {
        int n = tf->tests.len ? tf->tests.len : 1;
        printf("FAIL %s: does not compile (%d test%s not run)\n", path, n, n == 1 ? "" : "s");
        fflush(stdout);
        s->failed += n;
        return;
    }
    bool *used = arena_alloc(sizeof(bool) * (size_t)(tf->fixtures.len + 1));
    for (int i = 0; i < tf->tests.len; i++) {
        Test *t = tf->tests.items[i];
        for (int k = 0; k < tf->fixtures.len; k++)
            used[k] = true;
        bool pass = run_test(s, tf, t, t->exe ? t->exe : exe, used);
        for (int k = 0; k < tf->fixtures.len; k++)
            ((Fixture *)tf->fixtures.items[k])->uses += used[k];
        int line, col;
        src_linecol(t->span, &line, &col);
        printf("%s %s:%d: %s\n", pass ? "pass" : "FAIL", path, line, t->name);
        fflush(stdout);
        if (pass)
            s->passed++;
        else
            s->failed++;
    }
    bool unused = false;
    for (int k = 0; k < tf->fixtures.len; k++) {
        Fixture *fx = tf->fixtures.items[k];
        if (!fx->uses && tf->tests.len) {
            diag_error(fx->span, E1503, "this fixture, shared by the file's tests, matched no call "
                       "in any of them");
            unused = true;
        }
    }
    diag_flush();
    if (unused) {
        printf("FAIL %s: a shared fixture matched no call\n", path);
        s->failed++;
    }
}

/* The test files of a command line: a directory's *.flowtest (recursively,
 * in name order), a NAME.flow's NAME.flowtest. */
static void expand(const char *arg, Vec *files, bool top)
{
    size_t len = strlen(arg);
    while (len > 1 && arg[len - 1] == '/')
        len--;
    arg = arena_strndup(arg, len);
    struct stat st;
    if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
        struct dirent **names;
        int n = scandir(arg, &names, NULL, alphasort);
        for (int i = 0; i < n; i++) {
            const char *nm = names[i]->d_name;
            size_t k = strlen(nm);
            const char *full = arena_printf("%s/%s", arg, nm);
            struct stat s2;
            if (nm[0] != '.' && stat(full, &s2) == 0 &&
                (S_ISDIR(s2.st_mode) || (k > 9 && strcmp(nm + k - 9, ".flowtest") == 0)))
                expand(full, files, false);
            free(names[i]);
        }
        free(names);
        return;
    }
    size_t k = strlen(arg);
    if (top && k > 5 && strcmp(arg + k - 5, ".flow") == 0)
        arg = arena_printf("%stest", arg);
    vec_push(files, (void *)arg);
}

/* Drops the cached binaries no run used for 7 days (a build touches the
 * one it uses), and what a killed build left (.tmp) a day on. */
static void prune_cache(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    time_t now = time(NULL);
    while (d && (de = readdir(d))) {
        const char *p = arena_printf("%s/%s", dir, de->d_name);
        struct stat st;
        size_t n = strlen(de->d_name);
        bool tmp = n > 4 && strcmp(de->d_name + n - 4, ".tmp") == 0;
        if (de->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
            now - st.st_mtime > (tmp ? 86400 : 7 * 86400))
            unlink(p);
    }
    if (d)
        closedir(d);
}

static const char test_usage[] =
    "usage: flowc test [--keep] FILE.flowtest|FILE.flow|DIR...\n"
    "  runs each test of the files offline (the mock provider with the tests' fixtures),\n"
    "  a line per test, then 'N passed, N failed'; exit 1 on any failure\n"
    "  --keep    keep each test's scratch directory (its output, trace, stderr)\n";

int cmd_test(int argc, char **argv)
{
    Session s = { 0 };
    Vec args = { 0 }, files = { 0 };
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keep") == 0)
            s.keep = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return fputs(test_usage, stdout), 0;
        else if (argv[i][0] == '-' && argv[i][1])
            return fprintf(stderr, "flowc test: unknown option '%s'\n%s", argv[i], test_usage), 2;
        else
            vec_push(&args, argv[i]);
    }
    if (!args.len)
        return fprintf(stderr, "flowc test: no test files\n%s", test_usage), 2;
    for (int i = 0; i < args.len; i++)
        expand(args.items[i], &files, true);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return fprintf(stderr, "flowc test: cannot tell the current directory: %s\n", strerror(errno)), 2;
    s.cache = arena_printf("%s/.flow/test", cwd);
    if ((mkdir(arena_printf("%s/.flow", cwd), 0777) < 0 && errno != EEXIST)
        || (mkdir(s.cache, 0777) < 0 && errno != EEXIST)) {
        fprintf(stderr, "flowc test: cannot make %s: %s\n", s.cache, strerror(errno));
        return 2;
    }
    for (int i = 0; i < files.len; i++)
        run_file(&s, files.items[i]);
    prune_cache(s.cache);
    printf("%d passed, %d failed\n", s.passed, s.failed);
    return s.failed ? 1 : 0;
}
