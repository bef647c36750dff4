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
void caps_reset(void)
{
    warned = NULL;
    nwarned = capwarned = 0;
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

/* What one walk over an answer type counts. */
typedef struct Walk {
    int depth_max;                 /* deepest record nesting */
    const char *depth_path;        /* where it is */
    int properties;                /* record properties in all */
    int enum_values;               /* enum values in all */
    int optional;                  /* fields that are not required (output_config) */
    const char *optional_path;     /* the field that passed the limit */
    int unions;                    /* nullable types outside a field (anyOf / type arrays) */
    const char *union_path;
    const char *recursive;         /* the path where a record contains itself */
    Decl *stack[64];               /* records being walked */
    int nstack;
} Walk;

static void walk(Walk *w, Type *t, const char *path, bool in_field, int depth);

static void walk_record(Walk *w, Type *t, const char *path, int depth)
{
    Decl *d = t->decl;
    for (int i = 0; i < w->nstack; i++)
        if (w->stack[i] == d) {
            if (!w->recursive)
                w->recursive = path;
            return;
        }
    if (w->nstack == 64)
        return;
    if (depth > w->depth_max) {
        w->depth_max = depth;
        w->depth_path = path;
    }
    w->stack[w->nstack++] = d;
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (!f->type)
            continue;
        const char *fp = *path ? arena_printf("%s.%s", path, f->name) : f->name;
        w->properties++;
        if (f->type->kind == TY_OPT) {
            if (++w->optional == ANTHROPIC_MAX_OPTIONAL + 1)
                w->optional_path = fp;
            walk(w, f->type->elem, fp, true, depth);
        } else {
            walk(w, f->type, fp, true, depth);
        }
    }
    w->nstack--;
}

static void walk(Walk *w, Type *t, const char *path, bool in_field, int depth)
{
    switch (t->kind) {
    case TY_SCHEMA:
        walk_record(w, t, path, depth + 1);
        break;
    case TY_ENUM:
        w->enum_values += t->decl->values.len;
        break;
    case TY_LIST:
        if (t->elem)
            walk(w, t->elem, arena_printf("%s[]", path), false, depth);
        break;
    case TY_OPT:
        if (!in_field && ++w->unions == ANTHROPIC_MAX_UNIONS + 1)
            w->union_path = *path ? path : "the answer";
        walk(w, t->elem, path, false, depth);
        break;
    default:
        break;
    }
}

/* Where a limit error points, and the model's words for it. */
static void limit_error(Decl *a, Decl *m, Span sp, const char *what, int n, int limit,
                        const char *path, const char *mode)
{
    diag_error(sp, E0911, "agent '%s' answers with %d %s, more than the %d that %s structured "
               "outputs (model '%s') accept%s%s", a->name, n, what, limit,
               strcmp(mode, "json_schema") == 0 ? "OpenAI strict" : "Anthropic", m->name,
               path ? " (at " : "", path ? arena_printf("%s)", path) : "");
}

static void check_limits(Decl *a, Decl *m, Span sp, const char *mode)
{
    Walk w = {0};
    Type *t = a->ret_type;
    if (!t || t->kind == TY_ERROR)
        return;
    walk(&w, t, "", false, 0);
    if (strcmp(mode, "json_schema") == 0) {
        if (w.depth_max > OPENAI_MAX_DEPTH || w.recursive) {
            if (w.recursive)
                diag_error(sp, E0911, "agent '%s' answers with a record that contains itself (at %s); "
                           "OpenAI strict structured outputs nest %d levels at most", a->name,
                           w.recursive, OPENAI_MAX_DEPTH);
            else
                limit_error(a, m, sp, "levels of nesting", w.depth_max, OPENAI_MAX_DEPTH,
                            w.depth_path, mode);
            diag_help("flatten the schema, or give the model 'structured_output: json_object'");
        }
        if (w.properties > OPENAI_MAX_PROPERTIES)
            limit_error(a, m, sp, "properties", w.properties, OPENAI_MAX_PROPERTIES, NULL,
                        mode);
        if (w.enum_values > OPENAI_MAX_ENUM_VALUES)
            limit_error(a, m, sp, "enum values", w.enum_values, OPENAI_MAX_ENUM_VALUES, NULL,
                        mode);
    } else if (strcmp(mode, "output_config") == 0) {
        if (w.recursive) {
            diag_error(sp, E0911, "agent '%s' answers with a record that contains itself (at %s); "
                       "Anthropic structured outputs take no recursive schema", a->name,
                       w.recursive);
            diag_help("give the model 'structured_output: tool' for a recursive answer");
        }
        if (w.optional > ANTHROPIC_MAX_OPTIONAL) {
            limit_error(a, m, sp, "optional fields", w.optional, ANTHROPIC_MAX_OPTIONAL,
                        w.optional_path, mode);
            diag_help("make some fields required, or give the model 'structured_output: tool'");
        }
        if (w.unions > ANTHROPIC_MAX_UNIONS) {
            limit_error(a, m, sp, "nullable values outside a field (unions)", w.unions,
                        ANTHROPIC_MAX_UNIONS, w.union_path, mode);
            diag_help("give the model 'structured_output: tool'");
        }
    }
}

/* The tools of agent a sent to model m as strict OpenAI functions: each
 * one's parameters (an object of them: one level) within the same limits. */
void caps_check_tools(Decl *a, Decl *m, Span sp)
{
    AgentInfo *ai = a->sema;
    ModelInfo *mi = m ? m->sema : NULL;
    if (!ai || !mi || strcmp(caps_output_mode(mi), "json_schema") != 0)
        return;
    for (int i = 0; i < ai->tools.len; i++) {
        Decl *t = ai->tools.items[i];
        Walk w = {0};
        for (int k = 0; k < t->fields.len; k++) {
            Field *f = t->fields.items[k];
            w.properties++;
            if (f->type)
                walk(&w, f->type, f->name, true, 1);
        }
        const char *why = w.recursive ? arena_printf("a record that contains itself (at %s)",
                                                     w.recursive)
                          : w.depth_max > OPENAI_MAX_DEPTH
                          ? arena_printf("%d levels of nesting (at %s)", w.depth_max,
                                         w.depth_path)
                          : w.properties > OPENAI_MAX_PROPERTIES
                          ? arena_printf("%d properties", w.properties)
                          : w.enum_values > OPENAI_MAX_ENUM_VALUES
                          ? arena_printf("%d enum values", w.enum_values) : NULL;
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
