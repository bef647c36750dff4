/*
 * fr_tools.c: an agent's tools, run for its tool loop (fr_call.c).
 *
 * When the model's turn asks for tools, each call is checked and made here:
 *   - its name must be one of the agent's tools, and the loop must not be
 *     past max_tool_calls (the calls beyond are not made);
 *   - its input must be an object with one property per parameter (an
 *     optional one may be left out) and no other, each value of its
 *     parameter's type with its constraints, records keyed as the schema
 *     the model was sent keys them; the values are then the typed arguments;
 *   - it is made as the workflow would make it: fr_op_call for an http
 *     operation, fr_call for an agent, with the same concurrency slots,
 *     limiter, retries, timeouts, budgets, --mock and --dry-run, on a
 *     context of its own whose journal key is salted with the loop's call
 *     key and the call's number in the loop (so a resumed run finds it
 *     whatever else the item did), its trace line a child of the call's
 *     execute_tool span.
 * What goes back to the model is the result, a string as its text and
 * anything else as compact JSON in the result type's order, cut to the
 * agent's max_tool_result_tokens (about three bytes a token, as the runtime
 * estimates), or, when the call could not be made or failed after its
 * retries, why: a tool error, which the model can act on.  Only what stops
 * the whole run (a budget, a missing secret) stops the loop.
 *
 * Several calls of one turn run at once (fr_parallel_block), each on its
 * own context; the results keep the order of the calls.
 */
#include "fr_internal.h"

#include <time.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CUT_NOTE_MAX 120           /* bytes of the note a cut result ends with */

const fr_tool *fr_tool_find(const fr_agent *a, const char *name)
{
    for (int i = 0; name && i < a->ntools; i++)
        if (strcmp(a->tools[i].name, name) == 0)
            return &a->tools[i];
    return NULL;
}

size_t fr_tools_bytes(const fr_agent *a)
{
    size_t n = 0;
    for (int i = 0; i < a->ntools; i++) {
        const fr_tool *t = &a->tools[i];
        n += strlen(t->name) + (t->description ? strlen(t->description) : 0) +
             (t->schema ? strlen(t->schema) : 0) + 40;
    }
    return n;
}

/* ---- arguments ------------------------------------------------------------ */

static const char *const *param_names(const fr_tool *t)
{
    return t->param_names;
}

/* The model's input as the tool's typed arguments, kept in cx's pool (wire
 * keys); false with the reason in why. */
static bool tool_args(fr_ctx *cx, const fr_tool *t, json_t *input, json_t **args, fr_buf *why)
{
    if (!json_is_object(input)) {
        fr_buf_puts(why, "the input is not a JSON object");
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach(input, key, v) {
        bool known = false;
        for (int i = 0; i < t->nparams && !known; i++)
            known = strcmp(param_names(t)[i], key) == 0;
        if (!known) {
            fr_buf_printf(why, "unknown argument '%s'", key);
            return false;
        }
    }
    for (int i = 0; i < t->nparams; i++) {
        const char *name = param_names(t)[i];
        const fr_type *ty = t->param_types[i];
        v = json_object_get(input, name);
        if (!v && ty->kind != FR_OPTIONAL) {
            fr_buf_printf(why, "missing argument '%s'", name);
            return false;
        }
        if (!v) {
            args[i] = fr_null();
            continue;
        }
        fr_buf err = { 0 };
        if (!fr_validate_keys(v, ty, FR_KEYS_MODEL, &err)) {
            fr_buf_printf(why, "argument '%s': %s", name, err.s ? err.s : "does not fit its type");
            fr_buf_free(&err);
            return false;
        }
        fr_buf_free(&err);
        json_t *n = fr_normalize_keys(v, ty, FR_KEYS_MODEL);
        args[i] = n ? fr_keep(cx, n) : NULL;
        if (!args[i]) {
            fr_buf_puts(why, "out of memory");
            return false;
        }
    }
    return true;
}

/* ---- results --------------------------------------------------------------- */

/* The result as the model reads it, cut to max_tokens (malloc'd). */
static char *result_text(json_t *v, const fr_type *t, int max_tokens)
{
    char *text = NULL;
    if (!t || !v || json_is_null(v))
        text = fr_strdup(t ? "null" : "done: the request succeeded (it has no result)");
    else if (json_is_string(v))
        text = fr_strdup(json_string_value(v));
    else
        text = fr_to_json(v, t);
    if (!text)
        return NULL;
    size_t n = strlen(text), max = (size_t)(max_tokens > 0 ? max_tokens : 4000) * 3;
    if (n <= max)
        return text;
    size_t cut = max > CUT_NOTE_MAX ? max - CUT_NOTE_MAX : max;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
        cut--;                                   /* on a character's first byte */
    fr_buf b = { 0 };
    fr_buf_put(&b, text, cut);
    fr_buf_printf(&b, "\n[cut here: the result has %zu bytes, the first %zu are shown]", n, cut);
    fr_free(text);
    return fr_http_buf_take(&b);
}

static void set_error(fr_toolrun *r, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(fr_toolrun *r, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fr_buf b = { 0 };
    char tmp[1024];
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    fr_buf_puts(&b, tmp);
    fr_free(r->content);
    r->content = fr_http_buf_take(&b);
    r->error = true;
    r->error_type = type;
}

/* "a, b, c": the agent's tools, for an unknown name. */
static void tool_names(const fr_agent *a, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < a->ntools && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", i ? ", " : "", a->tools[i].name);
}

/* ---- one call ---------------------------------------------------------------- */

/* Makes call r on context c; false when its signal must stop the loop
 * (left set on c). */
static bool run_one(fr_ctx *c, const fr_toolloop *l, fr_toolrun *r)
{
    const fr_agent *a = l->agent;
    const char *name = json_string_value(json_object_get(r->call, "name"));
    const fr_tool *t = fr_tool_find(a, name);
    fr_trace *tr = fr_run_trace(c->run);
    char span[17] = "", salt[FR_JKEY_MAX + 32];
    int64_t t0 = fr_wall_us(), m0 = fr_now_ms();
    bool go_on = true;
    if (tr)
        fr_trace_span(tr, span);
    if (!t) {
        char names[512];
        tool_names(a, names, sizeof names);
        set_error(r, "unknown_tool", "there is no tool named '%s'; the tools are %s",
                  name ? name : "", names);
    } else if (r->over) {
        set_error(r, "limit", "not run: %d tool calls is the most this agent may make, and "
                  "they are made; answer now without tools", a->max_tool_calls);
    } else {
        json_t **args = fr_calloc((size_t)(t->nparams > 0 ? t->nparams : 1), sizeof *args);
        fr_buf why = { 0 };
        if (!args) {
            set_error(r, "oom", "out of memory");
        } else if (!tool_args(c, t, json_object_get(r->call, "input"), args, &why)) {
            set_error(r, "invalid_arguments", "invalid arguments for tool '%s': %s", t->name,
                      why.s ? why.s : "out of memory");
        } else {
            snprintf(salt, sizeof salt, "tool/%s/%d", l->key, r->index);
            fr_under u = { salt, span, r->key };
            const struct fr_op *op = t->op;
            json_t *v = op ? fr_op_call_under(c, op, l->site, args, l->where, &u)
                           : fr_call_under(c, t->agent, l->site, NULL, args, l->where, &u);
            if (v) {
                r->content = result_text(v, op ? op->output : t->agent->output,
                                         a->max_tool_result_tokens);
                if (!r->content)
                    set_error(r, "oom", "out of memory");
            } else if (c->sig == FR_SIG_FAIL) {
                set_error(r, "failed", "%s", c->err ? c->err : "the call failed");
                fr_sig_clear(c);
            } else {
                go_on = false;                   /* a budget, a secret, a halt: the run's */
                set_error(r, c->sig == FR_SIG_BUDGET ? "budget" : "stopped", "%s",
                          c->err ? c->err : "stopped");
            }
        }
        fr_buf_free(&why);
        fr_free(args);
    }
    if (!r->content)
        set_error(r, "oom", "out of memory");
    r->ms = fr_now_ms() - m0;
    fr_ttool tl = {
        t ? t->name : name, json_string_value(json_object_get(r->call, "id")),
        t ? t->description : NULL, t ? (t->op ? "http" : "agent") : NULL, a->name, c->phase,
        c->path, span, l->span, l->turn, t0, fr_now_ms() - m0, r->error ? r->error_type : NULL,
        false,
    };
    fr_trace_tool(tr, &tl);
    return go_on;
}

/* ---- a turn's calls ----------------------------------------------------------- */

/* The calls of one turn, run at once. */
typedef struct batch {
    const fr_toolloop *l;          /* the loop */
    fr_toolrun *runs;              /* the calls */
    int next;                      /* the next call to take (atomic) */
} batch;

static bool task(fr_ctx *c, void *env)
{
    batch *b = env;
    int i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED);
    c->seq = 0;                    /* the key is the salt's: the same whoever runs it */
    return run_one(c, b->l, &b->runs[i]);
}

bool fr_tools_run(fr_ctx *cx, const fr_toolloop *l, fr_toolrun *runs, int n)
{
    if (n <= 0)
        return true;
    if (n == 1) {
        fr_ctx c;
        fr_ctx_init_child(cx, &c);
        bool ok = run_one(&c, l, &runs[0]);
        if (!ok) {
            fr_sig_clear(cx);
            cx->sig = c.sig;
            cx->err = c.err;
            cx->err_where = c.err_where;
            c.err = NULL;
        }
        fr_ctx_fini(&c);
        return ok;
    }
    fr_task_fn *fns = fr_calloc((size_t)n, sizeof *fns);
    if (!fns) {
        fr_oom(cx);
        return false;
    }
    for (int i = 0; i < n; i++)
        fns[i] = task;
    batch b = { l, runs, 0 };
    bool ok = fr_parallel_block(cx, n, fns, &b);
    fr_free(fns);
    return ok;
}
