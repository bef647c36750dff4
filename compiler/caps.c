/*
 * caps.c: what a model can take, checked against what an agent sends it.
 *
 * A model declaration says how the provider constrains answers
 * (structured_output), whether it takes a temperature, its limits and its
 * retirement date (sema.c reads the settings).  Here:
 *   - an alias (`alias_of`) takes its target's settings, and every use of an
 *     old name or of a model past (or within 30 days of) its retirement date
 *     warns, naming the date and the replacement; FLOWC_TODAY=YYYY-MM-DD
 *     stands for today so that tests do not depend on the day;
 *   - an agent sent to a model (its own, or `using`) must fit the strict
 *     limits of that model's structured-output mode, as the providers
 *     document them (the numbers and their sources are below), and must not
 *     set a temperature the model refuses;
 *   - an agent whose fixed prefix (schema, system, prompt text before the
 *     first {{ }}) is just under the model's minimum cacheable length gets a
 *     warning: a little more fixed text would make every call after the first
 *     read it from the cache.
 */
#include "flowc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* OpenAI strict json_schema, "Supported schemas": "A schema may have up to
 * 5000 object properties total, with up to 10 levels of nesting" and "up to
 * 1000 enum values across all enum properties"
 * (https://developers.openai.com/api/docs/guides/structured-outputs, read
 * 2026-12-07 as quoted in public code; older revisions said 100 and 5). */
#define OPENAI_MAX_DEPTH 10
#define OPENAI_MAX_PROPERTIES 5000
#define OPENAI_MAX_ENUM_VALUES 1000
/* Anthropic structured outputs, "Explicit limits": 24 optional parameters
 * and 16 parameters with union types across all strict schemas of a
 * request; no recursive schemas
 * (https://platform.claude.com/docs/en/build-with-claude/structured-outputs,
 * read 2026-12-07 as quoted in public code). */
#define ANTHROPIC_MAX_OPTIONAL 24
#define ANTHROPIC_MAX_UNIONS 16
#define RETIRE_WARN_DAYS 30

/* ---- aliases and retirement ------------------------------------------------ */

void caps_resolve_models(Program *p)
{
    for (int i = 0; i < p->decls.len; i++) {
        Decl *d = p->decls.items[i];
        ModelInfo *mi = d->kind == D_MODEL ? d->sema : NULL;
        if (!mi || !mi->alias_of)
            continue;
        Decl *t = mi->alias_of;
        int hops = 0;
        while (t && t->sema && ((ModelInfo *)t->sema)->alias_of && hops++ < 64)
            t = ((ModelInfo *)t->sema)->alias_of;
        if (!t || !t->sema || t == d || hops >= 64) {
            diag_error(d->name_span, E0909, "model '%s' is an alias of itself", d->name);
            continue;
        }
        Decl *direct = mi->alias_of;
        *mi = *(ModelInfo *)t->sema;
        mi->alias_of = direct;
        mi->replaced_by = NULL;
        mi->retires = NULL;
    }
}

/* Today as "YYYY-MM-DD": FLOWC_TODAY when set, else the local date. */
static const char *today(void)
{
    static char buf[16];
    const char *e = getenv("FLOWC_TODAY");
    if (e && strlen(e) == 10)
        return e;
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

/* Days from a to b (both "YYYY-MM-DD"). */
static long days_between(const char *a, const char *b)
{
    struct tm ta = {0}, tb = {0};
    if (sscanf(a, "%d-%d-%d", &ta.tm_year, &ta.tm_mon, &ta.tm_mday) != 3 ||
        sscanf(b, "%d-%d-%d", &tb.tm_year, &tb.tm_mon, &tb.tm_mday) != 3)
        return 0;
    ta.tm_year -= 1900, tb.tm_year -= 1900;
    ta.tm_mon--, tb.tm_mon--;
    ta.tm_hour = tb.tm_hour = 12;
    return (long)((timegm(&tb) - timegm(&ta)) / 86400);
}

static Decl **warned;
static int nwarned, capwarned;

/* Forgets the models warned about: their Decls die with the compilation's
 * arena (the fuzz harness and the language server check many programs in
 * one process). */
static void aggs_reset(void);

void caps_reset(void)
{
    warned = NULL;
    nwarned = capwarned = 0;
    aggs_reset();
}

/* Whether d was already warned about (each model warns once). */
static bool once(Decl *d)
{
    for (int i = 0; i < nwarned; i++)
        if (warned[i] == d)
            return false;
    if (nwarned == capwarned) {
        int cap = capwarned ? capwarned * 2 : 16;
        Decl **w = arena_alloc((size_t)cap * sizeof *w);
        if (nwarned)
            memcpy(w, warned, (size_t)nwarned * sizeof *w);
        warned = w, capwarned = cap;
    }
    warned[nwarned++] = d;
    return true;
}

void caps_model_used(Decl *d, Span use)
{
    ModelInfo *mi = d->sema;
    if (!mi)
        return;
    if (mi->alias_of) {
        if (!once(d))
            return;
        diag_warning(use, W0012, "model '%s' is an old name: it now means '%s' (%s)", d->name,
                     mi->alias_of->name, mi->api_name ? mi->api_name : mi->alias_of->name);
        diag_help("write '%s' instead", mi->alias_of->name);
        return;
    }
    if (!mi->retires)
        return;
    long left = days_between(today(), mi->retires);
    if (left > RETIRE_WARN_DAYS || !once(d))
        return;
    const char *api = mi->api_name ? mi->api_name : d->name;
    if (left <= 0)
        diag_warning(use, W0013, "model '%s' (%s) was retired on %s: requests to it fail", d->name,
                     api, mi->retires);
    else
        diag_warning(use, W0013, "model '%s' (%s) retires on %s, in %ld day%s", d->name, api,
                     mi->retires, left, left == 1 ? "" : "s");
    if (mi->replaced_by)
        diag_help("use '%s' instead", mi->replaced_by->name);
    if (mi->retires_setting)
        diag_note(mi->retires_setting->span, "the date is declared here");
}

/* ---- structured-output limits ---------------------------------------------- */

const char *caps_output_mode(const ModelInfo *mi)
{
    if (mi->output)
        return mi->output;
    if (mi->provider && strcmp(mi->provider, "anthropic") == 0)
        return "output_config";
    if (mi->provider && strcmp(mi->provider, "openai") == 0)
        return "json_schema";
    return "prompt";
}

/* What an answer type holds, counted as if every record were written out
 * where it is used (the providers count that way).  The records under an
 * answer form a graph; when it has no cycle, each record's counts are the
 * sums of its fields', computed once per record for the whole check
 * (RecAgg) however many paths lead to it: n schemas that each hold the next
 * twice make 2^n paths but n sums.  Where a limit is passed ("at a.b[].c")
 * is found by walking down the sums in the order a depth-first walk over
 * the written-out answer meets things, without recursion. */
typedef struct Counts {
    long properties;               /* record properties in all */
    long enum_values;              /* enum values in all */
    long optional;                 /* fields that are not required (output_config) */
    long unions;                   /* nullable types outside a field (anyOf / type arrays) */
} Counts;

/* One record's sums. */
typedef struct RecAgg {
    Decl *decl;                    /* the record */
    int state;                     /* 0 not reached, 1 being summed, 2 summed */
    bool cyclic;                   /* a record that contains itself is under it */
    int height;                    /* records on the longest way down, itself included */
    Counts c;                      /* everything under it, its own fields included */
    int mark;                      /* recursion_path(): 1 open, 2 done, in walk mark_gen */
    int mark_gen;                  /* ... which walk set mark */
} RecAgg;

static KeyMap aggs;                /* Decl* -> RecAgg*; forgotten by caps_reset() */
static int walk_gen;               /* recursion_path() walks so far */

#define COUNT_MAX 1000000000L      /* counts saturate: the limits are small */

static long sat(long a, long b)
{
    return a + b > COUNT_MAX ? COUNT_MAX : a + b;
}

static void aggs_reset(void)
{
    memset(&aggs, 0, sizeof aggs);
}

static RecAgg *agg_of(Decl *d)
{
    RecAgg *r = km_get(&aggs, d);
    if (!r) {
        r = arena_alloc(sizeof *r);
        r->decl = d;
        km_put(&aggs, d, r);
    }
    return r;
}

/* The record under a type's lists and optionals, or NULL. */
static Decl *record_under(Type *t)
{
    while (t && (t->kind == TY_LIST || t->kind == TY_OPT))
        t = t->elem;
    return t && t->kind == TY_SCHEMA ? t->decl : NULL;
}

/* Adds what a value of type t holds; in_field: t is a field's own type
 * (its optional was counted as a field that is not required). */
static void add_type(Counts *c, Type *t, bool in_field)
{
    for (; t; t = t->elem, in_field = false) {
        if (t->kind == TY_SCHEMA) {
            Counts *r = &agg_of(t->decl)->c;
            c->properties = sat(c->properties, r->properties);
            c->enum_values = sat(c->enum_values, r->enum_values);
            c->optional = sat(c->optional, r->optional);
            c->unions = sat(c->unions, r->unions);
            return;
        }
        if (t->kind == TY_ENUM)
            c->enum_values = sat(c->enum_values, t->decl->values.len);
        if (t->kind == TY_OPT && !in_field)
            c->unions = sat(c->unions, 1);
        if (t->kind != TY_OPT && t->kind != TY_LIST)
            return;
    }
}

/* What one field holds: itself as a property, and its type. */
static void add_field(Counts *c, Field *f)
{
    c->properties = sat(c->properties, 1);
    if (f->type->kind == TY_OPT)
        c->optional = sat(c->optional, 1);
    add_type(c, f->type->kind == TY_OPT ? f->type->elem : f->type, true);
}

/* Sums every record under root, depth first without recursion (a chain of
 * thousands of schemas is a long path, not a deep stack). */
static void sum_records(Decl *root)
{
    if (agg_of(root)->state == 2)
        return;
    Vec stack = { 0 };                           /* (Decl*, next field) pairs */
    agg_of(root)->state = 1;
    vec_push(&stack, root);
    vec_push(&stack, (void *)0);
    while (stack.len) {
        Decl *d = stack.items[stack.len - 2];
        intptr_t i = (intptr_t)stack.items[stack.len - 1];
        if (i < d->fields.len) {
            stack.items[stack.len - 1] = (void *)(i + 1);
            Field *f = d->fields.items[i];
            Decl *k = f->type ? record_under(f->type) : NULL;
            RecAgg *kr = k ? agg_of(k) : NULL;
            if (kr && kr->state == 1) {
                agg_of(d)->cyclic = true;        /* k is open around d: a cycle */
            } else if (kr && kr->state == 0) {
                kr->state = 1;
                vec_push(&stack, k);
                vec_push(&stack, (void *)0);
            }
            continue;
        }
        stack.len -= 2;
        RecAgg *r = agg_of(d);
        Counts c = { 0 };
        int height = 0;
        for (int j = 0; j < d->fields.len; j++) {
            Field *f = d->fields.items[j];
            if (!f->type)
                continue;
            add_field(&c, f);
            Decl *k = record_under(f->type);
            RecAgg *kr = k ? agg_of(k) : NULL;
            if (kr && kr->height > height)
                height = kr->height;
            if (kr && kr->cyclic)
                r->cyclic = true;
        }
        r->c = c;
        r->height = height + 1;
        r->state = 2;
    }
}

/* The path of f in a record at path: "path.name", and "[]" for each list
 * around the record under it when lists is set. */
static const char *field_path(const char *path, Field *f, bool lists)
{
    const char *fp = *path ? arena_printf("%s.%s", path, f->name) : f->name;
    for (Type *t = f->type; lists && t && (t->kind == TY_LIST || t->kind == TY_OPT); t = t->elem)
        if (t->kind == TY_LIST && t->elem)
            fp = arena_printf("%s[]", fp);
    return fp;
}

/* "[]" for each list around the record under the answer type. */
static const char *root_path(Type *t)
{
    const char *p = "";
    for (; t && (t->kind == TY_LIST || t->kind == TY_OPT); t = t->elem)
        if (t->kind == TY_LIST && t->elem)
            p = arena_printf("%s[]", p);
    return p;
}

/* Where a depth-first walk over the answer, fields in order, first meets a
 * record that is already open around it (a record that contains itself),
 * or NULL.  Records with no cycle under them, and records whose walk ended,
 * are not walked (again): neither can lead to the first such meeting. */
static const char *recursion_path(Type *root)
{
    Decl *rd = record_under(root);
    if (!rd || !agg_of(rd)->cyclic)
        return NULL;
    walk_gen++;
    Vec stack = { 0 };                           /* (Decl*, next field) pairs */
    vec_push(&stack, rd);
    vec_push(&stack, (void *)0);
    agg_of(rd)->mark = 1, agg_of(rd)->mark_gen = walk_gen;
    while (stack.len) {
        Decl *d = stack.items[stack.len - 2];
        intptr_t i = (intptr_t)stack.items[stack.len - 1];
        if (i >= d->fields.len) {
            agg_of(d)->mark = 2;
            stack.len -= 2;
            continue;
        }
        stack.items[stack.len - 1] = (void *)(i + 1);
        Field *f = d->fields.items[i];
        Decl *k = f->type ? record_under(f->type) : NULL;
        RecAgg *kr = k ? agg_of(k) : NULL;
        int mark = kr && kr->mark_gen == walk_gen ? kr->mark : 0;
        if (mark == 1) {                         /* the path: the fields from the root */
            const char *path = root_path(root);
            for (int j = 0; j + 2 < stack.len; j += 2) {
                Decl *pd = stack.items[j];
                path = field_path(path, pd->fields.items[(intptr_t)stack.items[j + 1] - 1], true);
            }
            return field_path(path, f, true);
        }
        if (!kr || mark == 2 || !kr->cyclic)
            continue;
        kr->mark = 1, kr->mark_gen = walk_gen;
        vec_push(&stack, k);
        vec_push(&stack, (void *)0);
    }
    return NULL;
}

typedef enum Counter { C_OPTIONAL, C_UNIONS } Counter;

static long counter(Counts *c, Counter which)
{
    return which == C_OPTIONAL ? c->optional : c->unions;
}

/* The path where the written-out answer's counter `which` reaches left:
 * walk down, skipping every field whose sum stays below what is left. */
static const char *locate(Type *t, Counter which, long left)
{
    const char *path = "";
    bool in_field = false;
    for (;;) {
        for (; t->kind == TY_LIST || t->kind == TY_OPT; t = t->elem, in_field = false) {
            if (t->kind == TY_OPT && !in_field && which == C_UNIONS && --left == 0)
                return *path ? path : "the answer";
            if (t->kind == TY_LIST && !t->elem)
                return NULL;
            if (t->kind == TY_LIST)
                path = arena_printf("%s[]", path);
        }
        if (t->kind != TY_SCHEMA)
            return NULL;
        Decl *d = t->decl;
        Field *next = NULL;
        for (int i = 0; i < d->fields.len && !next; i++) {
            Field *f = d->fields.items[i];
            if (!f->type)
                continue;
            Counts c = { 0 };
            add_field(&c, f);
            if (counter(&c, which) < left)
                left -= counter(&c, which);
            else
                next = f;
        }
        if (!next)
            return NULL;
        path = field_path(path, next, false);
        t = next->type;
        if (t->kind == TY_OPT) {
            if (which == C_OPTIONAL && --left == 0)
                return path;
            t = t->elem;
        }
        in_field = true;
    }
}

/* The path of the first record, depth first, at the answer's greatest depth. */
static const char *deepest_path(Type *root)
{
    Decl *d = record_under(root);
    const char *path = root_path(root);
    while (d && agg_of(d)->height > 1) {
        int want = agg_of(d)->height - 1;
        Field *next = NULL;
        for (int i = 0; i < d->fields.len && !next; i++) {
            Field *f = d->fields.items[i];
            Decl *k = f->type ? record_under(f->type) : NULL;
            if (k && agg_of(k)->height == want)
                next = f;
        }
        if (!next)
            break;
        path = field_path(path, next, true);
        d = record_under(next->type);
    }
    return path;
}

/* Where a limit error points, and the model's words for it. */
static void limit_error(Decl *a, Decl *m, Span sp, const char *what, long n, int limit,
                        const char *path, const char *mode)
{
    diag_error(sp, E0911, "agent '%s' answers with %ld %s, more than the %d that %s structured "
               "outputs (model '%s') accept%s%s", a->name, n, what, limit,
               strcmp(mode, "json_schema") == 0 ? "OpenAI strict" : "Anthropic", m->name,
               path ? " (at " : "", path ? arena_printf("%s)", path) : "");
}

/* The limits of a structured-output mode, over the answer's sums.  An
 * answer that contains itself gets that one error: written out it would
 * never end, so there is nothing to count. */
static void check_limits(Decl *a, Decl *m, Span sp, const char *mode)
{
    Type *t = a->ret_type;
    bool json = strcmp(mode, "json_schema") == 0, config = strcmp(mode, "output_config") == 0;
    if (!t || t->kind == TY_ERROR || (!json && !config))
        return;
    Decl *rd = record_under(t);
    if (rd)
        sum_records(rd);
    const char *recursive = recursion_path(t);
    if (recursive) {
        if (json)
            diag_error(sp, E0911, "agent '%s' answers with a record that contains itself (at %s); "
                       "OpenAI strict structured outputs nest %d levels at most", a->name,
                       recursive, OPENAI_MAX_DEPTH);
        else
            diag_error(sp, E0911, "agent '%s' answers with a record that contains itself (at %s); "
                       "Anthropic structured outputs take no recursive schema", a->name,
                       recursive);
        diag_help(json ? "flatten the schema, or give the model 'structured_output: json_object'"
                       : "give the model 'structured_output: tool' for a recursive answer");
        return;
    }
    Counts c = { 0 };
    add_type(&c, t, false);
    int depth = rd ? agg_of(rd)->height : 0;
    if (json) {
        if (depth > OPENAI_MAX_DEPTH) {
            limit_error(a, m, sp, "levels of nesting", depth, OPENAI_MAX_DEPTH, deepest_path(t),
                        mode);
            diag_help("flatten the schema, or give the model 'structured_output: json_object'");
        }
        if (c.properties > OPENAI_MAX_PROPERTIES)
            limit_error(a, m, sp, "properties", c.properties, OPENAI_MAX_PROPERTIES, NULL, mode);
        if (c.enum_values > OPENAI_MAX_ENUM_VALUES)
            limit_error(a, m, sp, "enum values", c.enum_values, OPENAI_MAX_ENUM_VALUES, NULL,
                        mode);
        return;
    }
    if (c.optional > ANTHROPIC_MAX_OPTIONAL) {
        limit_error(a, m, sp, "optional fields", c.optional, ANTHROPIC_MAX_OPTIONAL,
                    locate(t, C_OPTIONAL, ANTHROPIC_MAX_OPTIONAL + 1), mode);
        diag_help("make some fields required, or give the model 'structured_output: tool'");
    }
    if (c.unions > ANTHROPIC_MAX_UNIONS) {
        limit_error(a, m, sp, "nullable values outside a field (unions)", c.unions,
                    ANTHROPIC_MAX_UNIONS, locate(t, C_UNIONS, ANTHROPIC_MAX_UNIONS + 1), mode);
        diag_help("give the model 'structured_output: tool'");
    }
}

/* "name" and a path under a parameter's type ("[].x", "x"): "name[].x", "name.x". */
static const char *param_path(Field *f, const char *under)
{
    if (!under || !*under)
        return f->name;
    return arena_printf(under[0] == '[' ? "%s%s" : "%s.%s", f->name, under);
}

/* The tools of agent a sent to model m as strict OpenAI functions: each
 * one's parameters (an object of them: one level, records under it more)
 * within the same limits, over the same sums as an answer's. */
void caps_check_tools(Decl *a, Decl *m, Span sp)
{
    AgentInfo *ai = a->sema;
    ModelInfo *mi = m ? m->sema : NULL;
    if (!ai || !mi || strcmp(caps_output_mode(mi), "json_schema") != 0)
        return;
    for (int i = 0; i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        Counts c = { 0 };
        int height = 0;
        Field *deep = NULL;
        const char *recursive = NULL;
        for (int k = 0; k < t->fields.len; k++) {
            Field *f = t->fields.items[k];
            if (!f->type)
                continue;
            add_field(&c, f);
            Decl *rd = record_under(f->type);
            if (!rd)
                continue;
            sum_records(rd);
            if (!recursive && agg_of(rd)->cyclic)
                recursive = param_path(f, recursion_path(f->type));
            if (agg_of(rd)->height > height) {
                height = agg_of(rd)->height;
                deep = f;
            }
        }
        const char *why = recursive ? arena_printf("a record that contains itself (at %s)",
                                                   recursive)
                          : height + 1 > OPENAI_MAX_DEPTH
                          ? arena_printf("%d levels of nesting (at %s)", height + 1,
                                         param_path(deep, deepest_path(deep->type)))
                          : c.properties > OPENAI_MAX_PROPERTIES
                          ? arena_printf("%ld properties", c.properties)
                          : c.enum_values > OPENAI_MAX_ENUM_VALUES
                          ? arena_printf("%ld enum values", c.enum_values) : NULL;
        if (!why)
            continue;
        diag_error(sp, E0911, "tool '%s' of agent '%s' takes %s, more than OpenAI strict "
                   "function parameters (model '%s') accept", t->name, a->name, why, m->name);
        diag_help("flatten its parameters, or give the model 'structured_output: json_object'");
    }
}

/* ---- the cache-prefix note --------------------------------------------------- */

size_t caps_template_head(Node *s, bool *whole)
{
    size_t n = 0;
    *whole = true;
    if (!s)
        return 0;
    for (int i = 0; i < s->parts.len; i++) {
        StrPart *sp = s->parts.items[i];
        if (sp->expr) {
            *whole = false;
            return n;
        }
        n += sp->len;
    }
    return n;
}

/* The bytes of a request that are the same on every call of agent a. */
static size_t fixed_bytes(AgentInfo *ai, const char *schema)
{
    bool sys_whole, prompt_whole;
    size_t n = strlen(schema) + caps_template_head(ai->system, &sys_whole);
    if (sys_whole)
        n += caps_template_head(ai->prompt, &prompt_whole);
    return n;
}

static void check_cache_prefix(Decl *a, AgentInfo *ai, ModelInfo *mi, const char *mode)
{
    if (ai->no_cache || mi->min_cache_tokens <= 0)
        return;
    SchemaDialect dl = strcmp(mode, "json_schema") == 0 ? SD_OPENAI_STRICT
                       : strcmp(mode, "output_config") == 0 ? SD_ANTHROPIC_STRICT
                       : SD_ANTHROPIC;
    /* about three bytes a token for Claude's tokenizer (from Claude 4.7 on),
     * four for OpenAI's; the runtime counts the same (fr_http.c est_tokens) */
    int64_t per = mi->provider && strcmp(mi->provider, "anthropic") == 0 ? 3 : 4;
    int64_t tokens = (int64_t)fixed_bytes(ai, schema_json(a->ret_type, dl)) / per;
    int64_t min = mi->min_cache_tokens;
    if (tokens >= min || tokens * 4 < min * 3)
        return;
    diag_warning(a->name_span, W0014, "agent '%s' has a fixed prefix of about %lld tokens, just under "
                 "the %lld its model caches at least", a->name, (long long)tokens,
                 (long long)min);
    diag_help("put more of the fixed text before the first {{ }} (or in 'system') so that "
              "calls after the first read it from the cache, or say 'cache: off'");
}

void caps_check_agent(Decl *a, Decl *m, Span use)
{
    AgentInfo *ai = a->sema;
    ModelInfo *mi = m->sema;
    if (!ai || !mi)
        return;
    bool own = ai->model == m;
    if (ai->temperature >= 0 && mi->temperature == 0) {
        Span sp = own && ai->temperature_setting ? ai->temperature_setting->span : use;
        diag_error(sp, E0910, "model '%s' (%s) takes no temperature, and agent '%s' sets one", m->name,
                   mi->api_name ? mi->api_name : m->name, a->name);
        diag_help("remove 'temperature' from agent '%s': the model samples at its own default",
                  a->name);
    }
    const char *mode = caps_output_mode(mi);
    check_limits(a, m, own ? a->name_span : use, mode);
    if (!own)                                    /* its own model: once its tools resolve */
        caps_check_tools(a, m, use);
    if (own)
        check_cache_prefix(a, ai, mi, mode);
}

bool caps_batch_api(const ModelInfo *mi)
{
    if (!mi || !mi->provider ||
        (strcmp(mi->provider, "anthropic") != 0 && strcmp(mi->provider, "openai") != 0))
        return false;
    const char *b = mi->base_url;
    return !(b && (strstr(b, "://localhost") || strstr(b, "://127.") || strstr(b, "://[::1]") ||
                   strstr(b, "://0.0.0.0")));
}
