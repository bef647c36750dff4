/*
 * fr_mock.c: the offline provider (--mock, or `provider: mock`).  It answers
 * every call with a value synthesized from the agent's output type, so whole
 * workflows run without a network or a key.
 *
 * The answer is a pure function of the agent's name, the model's api_name,
 * the rendered system prompt and the prompt: a 64-bit FNV-1a hash of them
 * seeds a splitmix64 generator that walks the type.  The attempt number is
 * not part of the seed, so a retry gets the same answer; the decisions to
 * fail an attempt (--mock-fail-rate, 503) or to answer badly
 * (FLOWRT_MOCK_BAD_RATE, an answer that fails validation) hash the attempt
 * in too, so a retry can succeed.
 *
 * What the generator makes: enums pick a value; ints and floats fall inside
 * their range (default 0..100, floats with two decimals when that stays in
 * range); strings read like "first_name 3f9a", trimmed or padded to their
 * length range; lists have their length range's first few sizes (default
 * 0..3 items); an optional is null (left out) about a quarter of the time.
 *
 * So that demo output looks like its input, a scalar field of the answer
 * takes the call's argument of the same name, or the field of the same name
 * of a record argument, or for `lead_id` the `id` of an argument of schema
 * Lead, when that value fits the field (type and constraints).
 *
 * Usage is simulated: input = ceil(bytes(system + prompt) / 4) + 50 tokens,
 * output = ceil(bytes(answer JSON) / 4).
 *
 * An agent with tools plays a tool loop: its first turn calls each of its
 * tools once (as many as max_tool_calls allows), all at once, with
 * arguments synthesized from the parameter types the same way; once the
 * results are in (or at the loop's bound) it answers.  A turn's input counts
 * the history's bytes too.
 */
#include "fr_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_DEPTH 24               /* nested records deeper than this give up */

typedef struct rng {
    uint64_t s;                    /* splitmix64 state */
    fr_keys keys;                  /* records keyed as a model answers, or by wire names */
} rng;

/* ---- hashing and random numbers ------------------------------------------ */

static uint64_t fnv1a(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Hashes s and its terminating NUL, so "ab","c" differs from "a","bc". */
static uint64_t fnv1a_str(uint64_t h, const char *s)
{
    s = s ? s : "";
    return fnv1a(h, s, strlen(s) + 1);
}

static uint64_t next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t below(rng *r, uint64_t n)
{
    return n ? next(r) % n : 0;
}

static double unit(rng *r)
{
    return (double)(next(r) >> 11) * 0x1.0p-53;
}

/* The seed of an answer: everything the model would see, not the attempt. */
static uint64_t answer_seed(const fr_request *req)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a_str(h, req->agent->name);
    h = fnv1a_str(h, req->model ? req->model->api_name : "");
    h = fnv1a_str(h, req->system);
    return fnv1a_str(h, req->prompt);
}

/* A uniform draw in [0,1) for one decision of one attempt. */
static double attempt_draw(uint64_t seed, int attempt, const char *what)
{
    uint64_t h = fnv1a_str(seed, what);
    rng r = { fnv1a(h, &attempt, sizeof attempt), FR_KEYS_MODEL };
    return unit(&r);
}

/* ---- the generator ------------------------------------------------------- */

static json_t *gen(rng *r, const fr_type *t, const fr_field *f, const char *name, int depth);

/* "name 3f9a", trimmed or padded with hex digits into the length range. */
static json_t *gen_string(rng *r, const fr_field *f, const char *name)
{
    static const char hex[] = "0123456789abcdef";
    char base[96];
    fr_buf b = { 0 };
    int n = snprintf(base, sizeof base, "%.80s %04x", name, (unsigned)below(r, 0x10000));
    size_t len = n > 0 ? (size_t)n : 0;
    if (f && f->has_len && f->max_len >= 0 && len > (size_t)f->max_len)
        len = (size_t)f->max_len;
    fr_buf_put(&b, base, len);
    while (f && f->has_len && (int64_t)b.len < f->min_len && !fr_buf_failed(&b))
        fr_buf_put(&b, &hex[below(r, 16)], 1);
    json_t *v = fr_buf_failed(&b) ? NULL : json_stringn_nocheck(b.s ? b.s : "", b.len);
    fr_buf_free(&b);
    return v;
}

static json_t *gen_int(rng *r, const fr_field *f)
{
    double lo = 0, hi = 100;
    if (f && f->has_range) {
        lo = fmax(ceil(f->min), -1e15);
        hi = fmin(floor(f->max), 1e15);
    }
    if (hi < lo)
        hi = lo;
    return json_integer((json_int_t)lo + (json_int_t)below(r, (uint64_t)(hi - lo) + 1));
}

static json_t *gen_float(rng *r, const fr_field *f)
{
    double lo = 0, hi = 100;
    if (f && f->has_range) {
        lo = f->min;
        hi = f->max;
    }
    double d = lo + unit(r) * (hi - lo);
    double rounded = round(d * 100) / 100;
    return json_real(rounded >= lo && rounded <= hi ? rounded : d);
}

static json_t *gen_enum(rng *r, const fr_enum *e)
{
    if (e->nvalues == 0)
        return json_string("");
    return json_string(e->values[below(r, (uint64_t)e->nvalues)]);
}

/* Items: the length range's first few sizes, 0..3 by default. */
static json_t *gen_list(rng *r, const fr_type *t, const fr_field *f, const char *name,
                        int depth)
{
    int64_t lo = 0, hi = 3;
    if (f && f->has_len) {
        lo = f->min_len > 0 ? f->min_len : 0;
        hi = f->max_len < lo + 3 ? f->max_len : lo + 3;
    }
    if (hi < lo || depth > MAX_DEPTH / 2)
        hi = lo;
    int64_t n = lo + (int64_t)below(r, (uint64_t)(hi - lo) + 1);
    json_t *list = json_array();
    for (int64_t i = 0; list && i < n; i++) {
        json_t *e = gen(r, t->elem, NULL, name, depth + 1);
        if (!e || json_array_append_new(list, e)) {
            json_decref(list);
            list = NULL;
        }
    }
    return list;
}

/* Fields in schema order, keyed as a model answers (model keys) or, for
 * fr_mock_value, as data (wire names); a null optional is left out. */
static json_t *gen_record(rng *r, const fr_schema *sc, int depth)
{
    json_t *rec = json_object();
    for (int i = 0; rec && i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        json_t *v = gen(r, f->type, f, f->name, depth + 1);
        if (v && json_is_null(v))
            continue;
        if (!v || json_object_set_new(rec, fr_field_key(f, r->keys), v)) {
            json_decref(rec);
            rec = NULL;
        }
    }
    return rec;
}

/* A value of type t; f is the schema field it fills (its constraints), name
 * the word strings are made of.  NULL only when out of memory. */
static json_t *gen(rng *r, const fr_type *t, const fr_field *f, const char *name, int depth)
{
    if (depth > MAX_DEPTH)
        return json_null();
    switch (t->kind) {
    case FR_OPTIONAL:
        if (below(r, 4) == 0 || depth > MAX_DEPTH / 2)
            return json_null();
        return gen(r, t->elem, f, name, depth);
    case FR_STRING: return gen_string(r, f, name);
    case FR_INT: return gen_int(r, f);
    case FR_FLOAT: return gen_float(r, f);
    case FR_BOOL: return json_boolean(below(r, 2));
    case FR_ENUM: return gen_enum(r, t->enm);
    case FR_LIST: return gen_list(r, t, f, name, depth);
    case FR_RECORD: return gen_record(r, t->schema, depth);
    }
    return json_null();
}

/* ---- bad answers --------------------------------------------------------- */

/* FLOWRT_MOCK_BAD_RATE: the share of attempts answered with a value that
 * fails validation (read per call, so a test can change it). */
static double bad_rate(void)
{
    const char *s = getenv("FLOWRT_MOCK_BAD_RATE");
    return s ? strtod(s, NULL) : 0;
}

/* A value no value of type t can be. */
static json_t *wrong_for(const fr_type *t)
{
    while (t->kind == FR_OPTIONAL)
        t = t->elem;
    if (t->kind == FR_STRING)
        return json_integer(7);
    return json_string("mock bad answer");
}

/* The good answer with its first field (or the whole of it) made invalid. */
static json_t *spoil(json_t *good, const fr_type *t)
{
    while (t->kind == FR_OPTIONAL)
        t = t->elem;
    if (t->kind != FR_RECORD || t->schema->nfields == 0 || !json_is_object(good)) {
        json_decref(good);
        return wrong_for(t);
    }
    const fr_field *f = &t->schema->fields[0];
    json_t *w = wrong_for(f->type);
    if (!w || json_object_set_new(good, fr_field_model_key(f), w)) {
        json_decref(good);
        return NULL;
    }
    return good;
}

/* ---- the provider -------------------------------------------------------- */

static void transient(fr_response *resp, int status, const char *fmt, int n)
{
    char msg[96];
    snprintf(msg, sizeof msg, fmt, n);
    resp->outcome = FR_TRANSIENT;
    resp->http_status = status;
    resp->error = fr_strdup(msg);
}

static void out_of_memory(fr_response *resp)
{
    json_decref(resp->output);
    resp->output = NULL;
    resp->outcome = FR_FATAL;
    resp->error = fr_strdup("out of memory");
}

/* As a real provider does when an answer needs more than max_tokens: the
 * answer stops there, is billed at the cap and is not usable. */
static void cut_off(fr_response *resp, int cap)
{
    json_decref(resp->output);
    resp->output = NULL;
    fr_free(resp->finish_reason);
    resp->finish_reason = fr_strdup("max_tokens");
    resp->output_tokens = cap;
    resp->outcome = FR_BAD_ANSWER;
    resp->bad = FR_BAD_CUT_OFF;
    char msg[96];
    snprintf(msg, sizeof msg, "answer cut off at max_tokens (%d)", cap);
    resp->error = fr_strdup(msg);
}

/* The value of arg (of type t) for the answer's field named name, or NULL. */
static json_t *input_for(json_t *arg, const fr_type *t, const char *pname, const char *name)
{
    while (t && t->kind == FR_OPTIONAL)
        t = t->elem;
    if (!t || !arg)
        return NULL;
    if (t->kind != FR_RECORD)
        return strcmp(pname, name) == 0 ? arg : NULL;
    const fr_schema *sc = t->schema;
    size_t sl = strlen(sc->name);
    for (int i = 0; i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        bool same = strcmp(f->name, name) == 0;
        bool prefixed = strncasecmp(name, sc->name, sl) == 0 && name[sl] == '_' &&
                        strcmp(name + sl + 1, f->name) == 0;
        if (same || prefixed)
            return json_object_get(arg, fr_field_wire(f));
    }
    return NULL;
}

/* Copies into answer v (a record keyed by model keys) the scalar values of
 * the call's arguments that fit its fields. */
static void copy_inputs(const fr_request *req, json_t *v, const fr_type *t)
{
    const fr_agent *a = req->agent;
    if (!req->args || !a->param_types || !json_is_object(v) || t->kind != FR_RECORD)
        return;
    const fr_schema *sc = t->schema;
    for (int i = 0; i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        for (int k = 0; k < a->nparams; k++) {
            json_t *in = input_for(req->args[k], a->param_types[k], a->param_names[k], f->name);
            if (in && !json_is_object(in) && !json_is_array(in) && !json_is_null(in) &&
                fr_validate_field(in, f, NULL)) {
                json_object_set(v, fr_field_key(f, FR_KEYS_MODEL), in);
                break;
            }
        }
    }
}

/* A reply of outcome whose text is text (made: false when it could not
 * be, then resp says out of memory), ended for finish, with the usage a
 * model would report: about four bytes a token, 50 of overhead. */
static bool replied(const fr_request *req, fr_response *resp, fr_outcome outcome,
                    const char *finish, const char *text, bool made)
{
    resp->finish_reason = fr_strdup(finish);
    if (!made || !text || !resp->finish_reason) {
        out_of_memory(resp);
        return false;
    }
    size_t in = strlen(req->system ? req->system : "") + strlen(req->prompt ? req->prompt : "");
    resp->outcome = outcome;
    resp->usage = true;
    resp->input_tokens = (int64_t)((in + 3) / 4) + 50;
    resp->output_tokens = (int64_t)((strlen(text) + 3) / 4);
    return true;
}

/* Fills resp with a fixture's answer fx, as a model would give it. */
static void canned(const fr_request *req, json_t *fx, fr_response *resp)
{
    resp->output = json_deep_copy(fx);
    resp->raw = json_dumps(fx, JSON_COMPACT | JSON_ENCODE_ANY);
    replied(req, resp, FR_ANSWER, "end_turn", resp->raw, resp->output != NULL);
}

/* Fills resp with the answer for seed, its raw text and usage. */
static void answer(const fr_request *req, uint64_t seed, fr_response *resp)
{
    rng r = { seed, FR_KEYS_MODEL };
    const fr_type *t = req->agent->output;
    json_t *v = gen(&r, t, NULL, req->agent->name, 0);
    copy_inputs(req, v, t);
    double bad = bad_rate();
    if (v && bad > 0 && attempt_draw(seed, req->attempt, "bad") < bad)
        v = spoil(v, t);
    resp->output = v;
    resp->raw = v ? fr_to_json(v, t) : NULL;
    if (!replied(req, resp, FR_ANSWER, "end_turn", resp->raw, v != NULL))
        return;
    int cap = req->max_tokens > 0 ? req->max_tokens : req->agent->max_tokens;
    if (cap > 0 && resp->output_tokens > cap)
        cut_off(resp, cap);
}

/* The first turn of a tool loop: every tool called once, with arguments
 * made from its parameter types (records keyed as the model would key them). */
static void tool_turn(const fr_request *req, uint64_t seed, fr_response *resp)
{
    const fr_agent *a = req->agent;
    rng r = { seed ^ 0x746f6f6c73ULL, FR_KEYS_MODEL };
    json_t *calls = json_array();
    int n = a->ntools < a->max_tool_calls ? a->ntools : a->max_tool_calls;
    for (int i = 0; calls && i < n; i++) {
        const fr_tool *t = &a->tools[i];
        json_t *in = json_object();
        for (int k = 0; in && k < t->nparams; k++) {
            json_t *v = gen(&r, t->param_types[k], NULL, t->param_names[k], 0);
            if (v && json_is_null(v))
                json_decref(v);
            else if (!v || json_object_set_new(in, t->param_names[k], v)) {
                json_decref(in);
                in = NULL;
            }
        }
        char id[40];
        snprintf(id, sizeof id, "mock_%08llx_%d", (unsigned long long)(seed & 0xffffffffu), i);
        json_t *c = in ? json_pack("{s:s, s:s, s:o}", "id", id, "name", t->name, "input", in)
                       : NULL;
        if (!c || json_array_append_new(calls, c)) {
            json_decref(calls);
            calls = NULL;
        }
    }
    resp->turn = calls ? json_pack("{s:s, s:o}", "text", "", "calls", calls) : NULL;
    char *text = resp->turn ? json_dumps(resp->turn, JSON_COMPACT) : NULL;
    replied(req, resp, FR_TOOL_CALLS, "tool_use", text, resp->turn != NULL);
    fr_free(text);
}

/* The bytes of a tool loop's history, for the simulated input. */
static size_t history_bytes(const fr_request *req)
{
    char *t = req->history && json_array_size(req->history)
              ? json_dumps(req->history, JSON_COMPACT) : NULL;
    size_t n = t ? strlen(t) : 0;
    fr_free(t);
    return n;
}

void fr_mock_call(const fr_mock_opts *o, const fr_request *req, fr_response *resp)
{
    int latency = o ? o->latency_ms : 0;
    double fail_rate = o ? o->fail_rate : 0;
    memset(resp, 0, sizeof *resp);
    resp->retry_after_ms = -1;
    resp->retry_after_asked_ms = -1;
    uint64_t seed = answer_seed(req);
    if (req->timeout_ms > 0 && latency > req->timeout_ms) {
        fr_sleep_ms(req->timeout_ms);
        transient(resp, 0, "timed out after %d ms", req->timeout_ms);
        return;
    }
    fr_sleep_ms(latency);          /* a fiber parks on the event loop's timer */
    if (fail_rate > 0 && attempt_draw(seed, req->attempt, "fail") < fail_rate) {
        transient(resp, 503, "mock failure (%d)", 503);
        return;
    }
    if (req->agent->ntools > 0 && !req->tools_off && json_array_size(req->history) == 0) {
        tool_turn(req, seed, resp);
        return;
    }
    json_t *fx = o && o->fixtures ? fr_fixtures_answer(o->fixtures, req) : NULL;
    if (fx)
        canned(req, fx, resp);
    else
        answer(req, seed, resp);
    if (resp->usage)
        resp->input_tokens += (int64_t)((history_bytes(req) + 3) / 4);
}

void fr_response_free(fr_response *r)
{
    json_decref(r->turn);
    json_decref(r->output);
    fr_free(r->raw);
    fr_free(r->error);
    fr_free(r->finish_reason);
    fr_free(r->response_id);
    memset(r, 0, sizeof *r);
    r->retry_after_ms = -1;
}

json_t *fr_mock_value(const fr_type *t, const char *seed)
{
    if (!t)
        return json_null();
    rng r = { fnv1a_str(0xcbf29ce484222325ULL, seed), FR_KEYS_WIRE };
    return gen(&r, t, NULL, "value", 0);
}
