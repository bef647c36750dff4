/*
 * rt_exec.c: a workflow written by hand against flowrt.h the way flowc's
 * generated code uses it, to test the runtime's execution: fan-out order and
 * concurrency, pipelines that stream, parallel blocks, skip/halt, escalate,
 * budgets under concurrency, retries, item paths and the command line.
 *
 * One binary, many scenarios (--scenario NAME); each checks what it can from
 * the inside (in-flight maxima against the cap, the ledger after every call,
 * results in input order, item paths) and fails the run with a message when a
 * check does not hold.  tests/sh/rt_exec.sh runs the scenarios and checks
 * what shows from the outside (stdout, stderr, exit status, files).
 */
#include "fr_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- types --------------------------------------------------------------- */

static const fr_field answer_fields[] = {
    { "word", &fr_type_string, false, 0, 0, true, 1, 20, NULL, NULL, NULL, false },
    { "score", &fr_type_int, true, 0, 10, false, 0, 0, "how good", NULL, NULL, false },
};
static const fr_schema answer_schema = { "Answer", NULL, 2, answer_fields, FR_EXTRA_REJECT };
static const fr_type answer_type = { FR_RECORD, NULL, &answer_schema, NULL };

static const fr_type opt_int = { FR_OPTIONAL, &fr_type_int, NULL, NULL };
static const fr_field row_fields[] = {
    { "idx", &fr_type_int, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "path", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "score", &opt_int, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema row_schema = { "Row", NULL, 3, row_fields, FR_EXTRA_REJECT };
static const fr_type row_type = { FR_RECORD, NULL, &row_schema, NULL };
static const fr_type rows_type = { FR_LIST, &row_type, NULL, NULL };

/* ---- model and agent ----------------------------------------------------- */

static const fr_model mock_model = {
    .name = "cheap", .provider = "mock", .api_name = "mock-1", .usd_per_mtok_in = 1.0,
    .usd_per_mtok_out = 5.0, .usd_per_mtok_cache_write = -1, .usd_per_mtok_cache_write_1h = -1,
    .usd_per_mtok_cache_read = -1,
};
static const fr_model pricey_model = {
    .name = "pricey", .provider = "mock", .api_name = "mock-2", .usd_per_mtok_in = 10.0,
    .usd_per_mtok_out = 50.0, .usd_per_mtok_cache_write = -1, .usd_per_mtok_cache_write_1h = -1,
    .usd_per_mtok_cache_read = -1,
};

static const char *const rate_params[] = { "x" };

static bool rate_render(fr_ctx *cx, json_t *const *args, fr_buf *system, fr_buf *prompt)
{
    fr_buf_puts(system, "You rate things.");
    fr_buf_puts(prompt, "Rate this: ");
    fr_buf_value(prompt, args[0]);
    return true;
}

static const char rate_schema[] =
    "{\"type\":\"object\",\"properties\":{\"word\":{\"type\":\"string\"},"
    "\"score\":{\"type\":\"integer\"}},\"required\":[\"word\",\"score\"]}";

static fr_agent rate_agent = {
    .name = "rate", .model = &mock_model, .output = &answer_type,
    .schema_anthropic = rate_schema, .schema_openai = rate_schema, .temperature = -1,
    .max_tokens = 200, .retries = 5, .timeout_ms = 30000, .render = rate_render, .nparams = 1,
    .param_names = rate_params,
};

/* ---- the program's phases and parameters ---------------------------------- */

enum { PH_WORK, PH_CAPPED, PH_TIMED, PH_TOKCAP, PH_AFTER };

static const fr_phase phases[] = {
    { "work", FR_NO_BUDGET },
    { "capped", { 0.02, -1, -1, 0, 0, 0 } },
    { "timed", { -1, -1, 300, 0, 0, 0 } },
    { "tokcap", { -1, 20000, -1, 0, 0, 0 } },
    { "after", FR_NO_BUDGET },
};

static const fr_param params[] = {
    { "scenario", &fr_type_string, NULL, "which test to run", false },
    { "items", &fr_type_int, "100", "how many items", false },
    { "conc", &fr_type_int, "8", "the fan-out's concurrency", false },
    { "ratio", &fr_type_float, "0.5", "a float flag, echoed by --scenario flags", false },
    { "loud", &fr_type_bool, "false", "a bool flag", false },
    { "label", &(const fr_type){ FR_OPTIONAL, &fr_type_string, NULL, NULL }, NULL,
      "an optional flag", false },
};

/* ---- instrumentation ------------------------------------------------------ */

/* Counts what is in flight in one place and remembers the most at once. */
typedef struct gauge {
    int now;                       /* in flight */
    int max;                       /* the most at once */
} gauge;

static void gauge_in(gauge *g)
{
    int n = __atomic_add_fetch(&g->now, 1, __ATOMIC_SEQ_CST);
    int m = __atomic_load_n(&g->max, __ATOMIC_SEQ_CST);
    while (n > m && !__atomic_compare_exchange_n(&g->max, &m, n, false, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_SEQ_CST))
        ;
}

static void gauge_out(gauge *g)
{
    __atomic_sub_fetch(&g->now, 1, __ATOMIC_SEQ_CST);
}

/* Fails unless settled + held stays within every cap (run->mu taken). */
static bool ledger_ok(fr_ctx *cx)
{
    fr_run *run = cx->run;
    const fr_program *p = run->prog;
    bool ok = true;
    pthread_mutex_lock(&run->mu);
    if (p->budget.usd >= 0 && run->wf.usd_spent + run->wf.usd_held > p->budget.usd)
        ok = false;
    for (int i = 0; i < p->nphases; i++) {
        const fr_budget *b = &p->phases[i].budget;
        if (b->usd >= 0 && run->ph[i].usd_spent + run->ph[i].usd_held > b->usd + 1e-12)
            ok = false;
        if (b->tokens >= 0 && run->ph[i].tok_spent + run->ph[i].tok_held > b->tokens)
            ok = false;
        if (run->ph[i].usd_held < -1e-9 || run->ph[i].tok_held < 0)
            ok = false;
    }
    pthread_mutex_unlock(&run->mu);
    return ok;
}

/* ---- bodies -------------------------------------------------------------- */

/* What every body shares. */
typedef struct env {
    gauge g;                       /* items in flight */
    gauge stage[3];                /* pipeline: per stage */
    int conc;                      /* the cap asked for */
    int seen_overlap;              /* pipeline: last stage ran while the first did */
    int fail_at;                   /* index that fails, -1 none */
    int ready;                     /* parallel block: tasks that have started */
} env;

/* A row {idx, path, score} for item i from an answer (or none). */
static json_t *row(fr_ctx *cx, int64_t i, json_t *answer)
{
    json_t *r = fr_record(cx);
    fr_record_set(r, "idx", fr_int(cx, i));
    fr_record_set(r, "path", fr_str(cx, cx->path));
    if (answer)
        fr_record_set(r, "score", fr_get(answer, "score"));
    return r;
}

static json_t *call_rate(fr_ctx *cx, json_t *x)
{
    json_t *args[1] = { x };
    json_t *a = fr_call(cx, &rate_agent, 1, NULL, args, "rt_exec.flow:10:5");
    if (a && !ledger_ok(cx))
        return fr_fail(cx, NULL, "ledger over a cap after a call");
    return a;
}

static json_t *for_body(fr_ctx *cx, json_t *item, size_t index, void *envp)
{
    env *e = envp;
    gauge_in(&e->g);
    json_t *a = call_rate(cx, item);
    gauge_out(&e->g);
    if (!a)
        return NULL;
    if ((size_t)json_integer_value(item) != index)
        return fr_fail(cx, NULL, "item %zu got value %lld", index,
                       (long long)json_integer_value(item));
    return row(cx, (int64_t)index, a);
}

static json_t *skip_body(fr_ctx *cx, json_t *item, size_t index, void *envp)
{
    env *e = envp;
    if ((int)index == e->fail_at)
        return fr_fail(cx, "rt_exec.flow:20:9", "bad item %zu", index);
    if (index % 5 == 1)
        return fr_skip(cx);
    if (index % 7 == 2)
        return fr_escalate(cx, NULL, "looks odd", "rt_exec.flow:21:9");
    return for_body(cx, item, index, envp);
}

static json_t *inner_body(fr_ctx *cx, json_t *item, size_t index, void *envp)
{
    json_t *a = call_rate(cx, item);
    return a ? row(cx, json_integer_value(item), a) : NULL;
}

static json_t *numbers(fr_ctx *cx, int64_t from, int64_t n)
{
    json_t *l = fr_list(cx);
    for (int64_t i = 0; i < n; i++)
        fr_list_push(l, fr_int(cx, from + i));
    return l;
}

/* nested: each outer item fans out again; paths are "i.j" */
static json_t *outer_body(fr_ctx *cx, json_t *item, size_t index, void *envp)
{
    fr_par_opts o = { 4, FR_ON_ERROR_HALT, "rt_exec.flow:30:5", false, 0, NULL };
    json_t *inner = fr_parallel_for(cx, numbers(cx, (int64_t)index * 100, 5), &o,
                                    inner_body, envp);
    if (!inner)
        return NULL;
    for (size_t j = 0; j < fr_count(inner); j++) {
        char want[64];
        snprintf(want, sizeof want, "%zu.%zu", index, j);
        const char *got = json_string_value(fr_get(fr_at(inner, j), "path"));
        if (strcmp(got, want) != 0)
            return fr_fail(cx, NULL, "inner path %s, expected %s", got, want);
    }
    return inner;
}

/* pipeline stages: each checks prev[] and counts its own in-flight */
static json_t *stage_a(fr_ctx *cx, json_t *item, json_t *const *prev, size_t i, void *envp)
{
    env *e = envp;
    gauge_in(&e->stage[0]);
    json_t *a = call_rate(cx, item);
    gauge_out(&e->stage[0]);
    return a;
}

static json_t *stage_b(fr_ctx *cx, json_t *item, json_t *const *prev, size_t i, void *envp)
{
    env *e = envp;
    gauge_in(&e->stage[1]);
    json_t *a = call_rate(cx, fr_get(prev[0], "word"));
    gauge_out(&e->stage[1]);
    if (a && (size_t)json_integer_value(item) % 4 == 3)
        return fr_skip(cx);
    return a;
}

static json_t *stage_c(fr_ctx *cx, json_t *item, json_t *const *prev, size_t i, void *envp)
{
    env *e = envp;
    gauge_in(&e->stage[2]);
    if (__atomic_load_n(&e->stage[0].now, __ATOMIC_SEQ_CST) > 0)
        __atomic_store_n(&e->seen_overlap, 1, __ATOMIC_SEQ_CST);
    json_t *r = prev[0] && prev[1] ? row(cx, (int64_t)i, prev[1]) : NULL;
    gauge_out(&e->stage[2]);
    return r ? r : fr_fail(cx, NULL, "stage c: prev[] missing");
}

/* parallel block tasks: each waits until all have started (proof they run at
 * once); the wait parks (fibers share a few threads: a task that blocked its
 * thread would hold the others back) */
static bool task(fr_ctx *cx, void *envp)
{
    env *e = envp;
    __atomic_add_fetch(&e->ready, 1, __ATOMIC_SEQ_CST);
    for (int spins = 0; __atomic_load_n(&e->ready, __ATOMIC_SEQ_CST) < 3; spins++) {
        if (spins > 20000)
            return fr_fail(cx, NULL, "parallel block tasks did not run at once") != NULL;
        fr_sleep_ms(1);
    }
    return call_rate(cx, fr_str(cx, cx->path)) != NULL;
}

/* ---- scenarios ----------------------------------------------------------- */

static json_t *check_order(fr_ctx *cx, json_t *rows, const char *what)
{
    for (size_t i = 1; rows && i < fr_count(rows); i++)
        if (json_integer_value(fr_get(fr_at(rows, i), "idx"))
            <= json_integer_value(fr_get(fr_at(rows, i - 1), "idx")))
            return fr_fail(cx, NULL, "%s: results out of order at %zu", what, i);
    return rows;
}

static json_t *check_gauge(fr_ctx *cx, json_t *rows, const gauge *g, int cap, const char *what)
{
    if (rows && g->max > cap)
        return fr_fail(cx, NULL, "%s: %d in flight, cap %d", what, g->max, cap);
    return rows;
}

static int cap_of(fr_ctx *cx, int conc)
{
    int c = cx->run->concurrency;
    return c > 0 && c < conc ? c : conc;
}

static json_t *run_for(fr_ctx *cx, env *e, int64_t n, fr_on_error oe, fr_body_fn body)
{
    fr_par_opts o = { e->conc, oe, "rt_exec.flow:5:3", false, 0, NULL };
    json_t *rows = fr_parallel_for(cx, numbers(cx, 0, n), &o, body, e);
    rows = check_gauge(cx, rows, &e->g, cap_of(cx, e->conc), "parallel for");
    return check_order(cx, rows, "parallel for");
}

static json_t *run_pipeline(fr_ctx *cx, env *e, json_t *xs)
{
    size_t n = fr_count(xs);
    static const fr_stage st[] = { { "a", 4, stage_a }, { "b", 2, stage_b }, { "c", 3, stage_c } };
    fr_par_opts o = { e->conc, FR_ON_ERROR_HALT, "rt_exec.flow:40:3", false, 0, NULL };
    json_t *rows = fr_pipeline(cx, xs, &o, 3, st, e);
    for (int k = 0; k < 3; k++)
        rows = check_gauge(cx, rows, &e->stage[k], cap_of(cx, st[k].concurrency), st[k].name);
    if (rows && n >= 50 && !e->seen_overlap)
        return fr_fail(cx, NULL, "pipeline did not stream: the last stage never ran "
                       "while the first did");
    return check_order(cx, rows, "pipeline");
}

static json_t *run_block(fr_ctx *cx, env *e)
{
    static const fr_task_fn tasks[] = { task, task, task };
    if (!fr_parallel_block(cx, 3, tasks, e))
        return NULL;
    return fr_list(cx);
}

static json_t *run_seq(fr_ctx *cx, env *e, int64_t n)
{
    json_t *rows = fr_list(cx);
    for (int64_t i = 0; i < n; i++) {
        size_t saved;
        fr_item_enter(cx, (size_t)i, &saved);
        json_t *a = call_rate(cx, fr_int(cx, i));
        if (a)
            fr_list_push(rows, row(cx, i, a));
        fr_item_leave(cx, saved);
        if (!a)
            return NULL;
    }
    return cx->path_len == 0 ? rows : fr_fail(cx, NULL, "path not restored");
}

/* One fan-out of each kind with the n-th allocation failing: each either
 * finishes whole or fails with a message; never a crash, a leak (ASan) or a
 * short result that claims success.  Returns false with why in cx. */
static bool oom_round(fr_ctx *cx, env *e, long n, int *hit)
{
    static const fr_task_fn tasks[] = { task, task, task };
    size_t mark = fr_mark(cx);
    json_t *xs = numbers(cx, 0, 12);
    for (int kind = 0; kind < 3; kind++) {
        json_t *v;
        size_t want = kind == 0 ? 12 : 9;
        memset(e, 0, sizeof *e);
        e->conc = 3, e->fail_at = -1;
        fr_alloc_fail_after(n);
        if (kind == 0)
            v = fr_parallel_for(cx, xs, &(fr_par_opts){ 3, FR_ON_ERROR_HALT, "oom", false, 0, NULL }, for_body, e);
        else if (kind == 1)
            v = run_pipeline(cx, e, xs);
        else
            v = fr_parallel_block(cx, 3, tasks, e) ? fr_list(cx) : NULL, want = 0;
        *hit += fr_alloc_countdown() == 0;
        fr_alloc_fail_after(0);
        if (v && fr_count(v) != want)
            return fr_fail(cx, NULL, "oom %ld kind %d: %zu results, expected %zu", n, kind,
                           fr_count(v), want) != NULL;
        if (!v && (cx->sig != FR_SIG_FAIL || !cx->err))
            return fr_fail(cx, NULL, "oom %ld kind %d: no value and no error", n, kind) != NULL;
        fr_sig_clear(cx);
    }
    fr_release(cx, mark);
    return true;
}

static json_t *run_oom(fr_ctx *cx, env *e, int64_t rounds)
{
    int hit = 0;
    for (long n = 1; n <= rounds; n++)
        if (!oom_round(cx, e, n, &hit))
            return NULL;
    if (hit == 0)
        return fr_fail(cx, NULL, "oom: no allocation failed");
    fprintf(stderr, "oom: %lld rounds, %d with a failed allocation\n", (long long)rounds, hit);
    return fr_list(cx);
}

/* Runs the named scenario inside phase ph. */
static json_t *scenario(fr_ctx *cx, const char *s, env *e, int64_t n)
{
    if (strcmp(s, "for") == 0 || strcmp(s, "budget") == 0 || strcmp(s, "retry") == 0
        || strcmp(s, "tokens") == 0)
        return run_for(cx, e, n, FR_ON_ERROR_HALT, for_body);
    if (strcmp(s, "pipebudget") == 0)
        return run_pipeline(cx, e, numbers(cx, 0, n));
    if (strcmp(s, "skip") == 0)
        return run_for(cx, e, n, FR_ON_ERROR_SKIP, skip_body);
    if (strcmp(s, "halt") == 0)
        return run_for(cx, e, n, FR_ON_ERROR_HALT, skip_body);
    if (strcmp(s, "nested") == 0 || strcmp(s, "nestbudget") == 0) {
        fr_par_opts o = { e->conc, FR_ON_ERROR_HALT, "rt_exec.flow:29:3", false, 0, NULL };
        json_t *outer = fr_parallel_for(cx, numbers(cx, 0, n), &o, outer_body, e);
        json_t *flat = outer ? fr_list(cx) : NULL;
        for (size_t i = 0; flat && i < fr_count(outer); i++)
            json_array_extend(flat, fr_at(outer, i));
        return flat;
    }
    if (strcmp(s, "pipeline") == 0)
        return run_pipeline(cx, e, numbers(cx, 0, n));
    if (strcmp(s, "block") == 0)
        return run_block(cx, e);
    if (strcmp(s, "seq") == 0 || strcmp(s, "timed") == 0)
        return run_seq(cx, e, n);
    if (strcmp(s, "oom") == 0)
        return run_oom(cx, e, n);
    if (strcmp(s, "approve") == 0)
        return fr_approve(cx, numbers(cx, 0, 2), fr_str(cx, "ok?"), 1, "rt_exec.flow:50:3");
    return fr_fail(cx, NULL, "unknown scenario '%s'", s);
}

static int phase_of(const char *s)
{
    if (strcmp(s, "budget") == 0 || strcmp(s, "pipebudget") == 0
        || strcmp(s, "nestbudget") == 0)
        return PH_CAPPED;
    if (strcmp(s, "tokens") == 0)
        return PH_TOKCAP;
    if (strcmp(s, "timed") == 0)
        return PH_TIMED;
    return PH_WORK;
}

static json_t *flags_echo(fr_ctx *cx, json_t *const *args)
{
    json_t *r = fr_list(cx);
    char *s = json_dumps(args[3], JSON_ENCODE_ANY);
    fprintf(stderr, "ratio=%s loud=%s label=%s\n", s, fr_truthy(args[4]) ? "true" : "false",
            fr_is_null(args[5]) ? "null" : json_string_value(args[5]));
    free(s);
    return r;
}

static json_t *rt_main(fr_ctx *cx, json_t *const *args)
{
    const char *s = json_string_value(args[0]);
    env e = { .conc = (int)json_integer_value(args[2]), .fail_at = 17 };
    if (strcmp(s, "flags") == 0)
        return flags_echo(cx, args);
    if (strcmp(s, "retry") == 0)
        rate_agent.retries = 8;
    int ph = phase_of(s);
    if (!fr_phase_begin(cx, ph))
        return NULL;
    json_t *v = scenario(cx, s, &e, json_integer_value(args[1]));
    if (!v)
        return NULL;
    fr_phase_end(cx, ph);
    if (!fr_phase_begin(cx, PH_AFTER))
        return NULL;
    fr_phase_end(cx, PH_AFTER);
    return v;
}

static const fr_agent *const agents[] = { &rate_agent };
static const fr_model *const models[] = { &mock_model, &pricey_model };

static const fr_program program = {
    "rt_exec", "The runtime's execution self-test.", "rt_exec.flow", "0",
    6, params, &rows_type, 5, phases, { 1000.0, -1, -1, 0, 0, 0 }, 2, models, 1, agents, rt_main, 0, NULL,
    FLOWRT_VERSION, 0,
};

int main(int argc, char **argv)
{
    return fr_main(&program, argc, argv);
}
