/*
 * fr_openai.c: the OpenAI chat completions wire format, as OpenAI, Azure,
 * LiteLLM, Ollama, vLLM and llama.cpp's server speak it.
 *
 * Structured output follows the model's mode (fr_model.output):
 *   json_schema  response_format json_schema in strict mode with the agent's
 *                strict-dialect schema (the default);
 *   json_object  response_format json_object, the schema in the system prompt
 *                (compatible servers without strict mode);
 *   prompt       no response_format: the schema in the system prompt only.
 * The answer is choices[0].message.content, a string: it goes through
 * fr_repair_json, since not every server honours the format.  A refusal
 * (message.refusal) and an answer cut off (finish_reason "length") are bad
 * answers.  input_tokens counts the prompt tokens neither read from the
 * cache (prompt_tokens_details.cached_tokens) nor written to it
 * (cache_write_tokens), so the three add up to prompt_tokens.
 *
 * What is sent follows the model's declared capabilities, never the URL:
 * the token cap's name (max_completion_tokens unless the model says
 * max_tokens), a temperature only to a model that takes one, and
 * prompt_cache_key (the agent's name) when caching is on for a model that
 * declares a cache.
 *
 * Tools: an agent with tools sends them as tools[] of type function (strict,
 * with the strict dialect's parameters, in json_schema mode; else plain),
 * beside its response_format, and leaves parallel_tool_calls at its
 * default, so the model may ask for several at once (the runtime validates
 * every call's arguments whatever the mode).  The model's turn comes back
 * as an assistant message with tool_calls (its arguments as it wrote
 * them), each result as a "tool" message with its tool_call_id, in the
 * order of the calls; the text of a failed tool says so ("Error: ...": the
 * wire has no error flag).  At the loop's bound tool_choice is "none".
 */
#include "fr_internal.h"

#include <string.h>

/* A tool loop's history: assistant messages with tool_calls, tool messages. */
static bool history(json_t *msgs, const fr_request *req)
{
    json_t *turn, *x;
    size_t i, j;
    json_array_foreach(req->history, i, turn) {
        json_t *res = json_object_get(turn, "results");
        json_array_foreach(res, j, x) {
            const char *c = json_string_value(json_object_get(x, "content"));
            fr_buf b = { 0 };
            fr_buf_printf(&b, "%s%s", json_is_true(json_object_get(x, "error")) ? "Error: " : "",
                          c ? c : "");
            json_t *m = fr_buf_failed(&b) ? NULL
                        : json_pack("{s:s, s:O?, s:s}", "role", "tool", "tool_call_id",
                                    json_object_get(x, "id"), "content", b.s ? b.s : "");
            fr_buf_free(&b);
            if (!m || json_array_append_new(msgs, m) != 0)
                return false;
        }
        if (res)
            continue;
        json_t *calls = json_array();
        json_array_foreach(json_object_get(turn, "calls"), j, x) {
            char *args = fr_http_call_args(x);
            json_t *c = args ? json_pack("{s:O?, s:s, s:{s:O?, s:s}}", "id", json_object_get(x, "id"),
                                         "type", "function", "function", "name",
                                         json_object_get(x, "name"), "arguments", args) : NULL;
            fr_free(args);
            if (!c || json_array_append_new(calls, c) != 0) {
                json_decref(calls);
                return false;
            }
        }
        const char *text = json_string_value(json_object_get(turn, "text"));
        json_t *m = json_pack("{s:s, s:o, s:o}", "role", "assistant", "content",
                              text && text[strspn(text, " \t\r\n")] ? json_string(text)
                                                                      : json_null(),
                              "tool_calls", calls);
        if (!m || json_array_append_new(msgs, m) != 0)
            return false;
    }
    return true;
}

/* messages -> [system] user prompt [tool loop turns] [assistant previous
 * answer, user feedback] */
static json_t *messages(const fr_request *req)
{
    json_t *m = json_array();
    bool ok = m != NULL;
    fr_buf sys = { 0 };
    fr_buf_puts(&sys, req->system ? req->system : "");
    fr_output_mode mode = fr_http_req_mode(req);
    if (mode == FR_OUT_JSON_OBJECT || mode == FR_OUT_PROMPT)
        fr_http_schema_prompt(&sys, req->agent->schema_anthropic);
    if (ok && sys.s && *sys.s)
        ok = json_array_append_new(m, json_pack("{s:s, s:s}", "role", "system",
                                                "content", sys.s)) == 0;
    ok = ok && !fr_buf_failed(&sys);
    fr_buf_free(&sys);
    if (ok)
        ok = fr_http_turns(m, req, "the JSON object", 0, req->agent->ntools ? history : NULL);
    if (!ok) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *fr_openai_body(const fr_request *req, bool *wrapped)
{
    json_t *format = fr_openai_format(req->agent, fr_http_req_mode(req), wrapped);
    json_t *b = format ? fr_openai_head(req) : NULL;
    if (b && json_object_update(b, format) != 0) {
        json_decref(b);
        b = NULL;
    }
    json_decref(format);
    return b;
}

json_t *fr_openai_head(const fr_request *req)
{
    const fr_agent *a = req->agent;
    const fr_model *m = req->model;
    json_t *msgs = messages(req);
    json_t *b = msgs ? json_pack("{s:s, s:o}", "model", m->api_name, "messages", msgs) : NULL;
    int max = req->max_tokens > 0 ? req->max_tokens : a->max_tokens;
    if (b && max > 0)
        json_object_set_new(b, m->max_tokens_param ? m->max_tokens_param
                                                   : "max_completion_tokens",
                            json_integer(max));
    if (b && a->temperature >= 0 && !m->no_temperature)
        json_object_set_new(b, "temperature", json_real(a->temperature));
    if (b && req->cache && m->min_cache_tokens > 0)
        json_object_set_new(b, "prompt_cache_key", json_string(a->name));
    if (b && a->ntools && req->tools_off)
        json_object_set_new(b, "tool_choice", json_string("none"));
    return b;
}

/* The agent's tools as functions: strict (the strict dialect) in json_schema
 * mode, else plain. */
static json_t *functions(const fr_agent *a, bool strict)
{
    json_t *tools = json_array();
    for (int i = 0; tools && i < a->ntools; i++) {
        const fr_tool *t = &a->tools[i];
        const char *text = strict ? t->schema_strict : t->schema;
        json_t *params = text ? fr_json_loadb(text, strlen(text), 0, NULL) : NULL;
        json_t *fn = params ? json_pack("{s:s, s:s, s:o}", "name", t->name, "description",
                                        t->description ? t->description : t->name,
                                        "parameters", params) : NULL;
        if (fn && strict)
            json_object_set_new(fn, "strict", json_true());
        json_t *d = fn ? json_pack("{s:s, s:o}", "type", "function", "function", fn) : NULL;
        if (!d || json_array_append_new(tools, d) != 0) {
            json_decref(tools);
            return NULL;
        }
    }
    return tools;
}

static json_t *plain_format(const fr_agent *a, fr_output_mode mode, bool *wrapped);

json_t *fr_openai_format(const fr_agent *a, fr_output_mode mode, bool *wrapped)
{
    json_t *f = plain_format(a, mode, wrapped);
    if (!f || a->ntools == 0)
        return f;
    json_t *tools = functions(a, mode == FR_OUT_JSON_SCHEMA);
    if (!tools) {
        json_decref(f);
        return NULL;
    }
    json_object_set_new(f, "tools", tools);
    return f;
}

static json_t *plain_format(const fr_agent *a, fr_output_mode mode, bool *wrapped)
{
    *wrapped = false;
    if (mode == FR_OUT_PROMPT)
        return json_object();
    if (mode == FR_OUT_JSON_OBJECT)
        return json_pack("{s:{s:s}}", "response_format", "type", "json_object");
    json_t *schema = fr_http_schema(a->schema_openai, wrapped);
    return schema ? json_pack("{s:{s:s, s:{s:s, s:b, s:o}}}",
                              "response_format", "type", "json_schema",
                              "json_schema", "name", fr_http_schema_name(a),
                              "strict", 1, "schema", schema) : NULL;
}

/* usage: prompt_tokens (all input), of which prompt_tokens_details.cached_tokens
 * were read from the cache and .cache_write_tokens written to it;
 * completion_tokens (reasoning included) */
static void usage(json_t *u, fr_response *r)
{
    json_t *d = json_object_get(u, "prompt_tokens_details");
    int64_t prompt = fr_http_tokens(json_object_get(u, "prompt_tokens"), r);
    int64_t cached = fr_http_tokens(json_object_get(d, "cached_tokens"), r);
    int64_t written = fr_http_tokens(json_object_get(d, "cache_write_tokens"), r);
    r->usage = json_is_number(json_object_get(u, "prompt_tokens")) ||
               json_is_number(json_object_get(u, "completion_tokens"));
    if (cached > prompt)
        cached = prompt;
    if (written > prompt - cached)
        written = prompt - cached;
    r->input_tokens = prompt - cached - written;
    r->cache_read_tokens = cached;
    r->cache_write_tokens = written;
    r->output_tokens = fr_http_tokens(json_object_get(u, "completion_tokens"), r);
}

/* The model's turn: its calls with their input parsed from the arguments
 * it wrote (null when they are not JSON: the runtime answers that call with
 * an error), and the arguments kept to be sent back as they came. */
static void tool_calls(json_t *tc, const char *content, fr_response *r)
{
    json_t *calls = json_array(), *c;
    size_t i;
    json_array_foreach(tc, i, c) {
        json_t *fn = json_object_get(c, "function");
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        json_t *in = args ? fr_json_loadb(args, strlen(args), 0, NULL) : NULL;
        json_t *call = json_pack("{s:O, s:O, s:o, s:s}", "id",
                                 json_object_get(c, "id") ?: json_null(), "name",
                                 json_object_get(fn, "name") ?: json_null(), "input",
                                 in ? in : json_null(), "arguments", args ? args : "");
        if (!call || json_array_append_new(calls, call) != 0) {
            json_decref(calls);
            calls = NULL;
            break;
        }
    }
    r->turn = calls ? json_pack("{s:s, s:o}", "text", content ? content : "", "calls", calls)
                    : NULL;
    if (r->turn)
        r->outcome = FR_TOOL_CALLS;
    else
        fr_http_set_error(r, FR_TRANSIENT, "out of memory reading the model's turn");
}

void fr_openai_parse(json_t *body, bool wrapped, fr_response *r)
{
    usage(json_object_get(body, "usage"), r);
    json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
    json_t *msg = json_object_get(choice, "message");
    const char *finish = json_string_value(json_object_get(choice, "finish_reason"));
    r->finish_reason = finish ? fr_strdup(finish) : NULL;
    const char *refusal = json_string_value(json_object_get(msg, "refusal"));
    const char *content = json_string_value(json_object_get(msg, "content"));
    r->raw = content ? fr_strdup(content) : NULL;
    json_t *tc = json_object_get(msg, "tool_calls");
    if (json_array_size(tc) > 0 && !(finish && strcmp(finish, "length") == 0)
        && !(refusal && *refusal)) {
        tool_calls(tc, content, r);
        return;
    }
    if (refusal && *refusal) {
        char *why = fr_http_excerpt(r, refusal, 200);
        fr_http_set_error(r, FR_BAD_ANSWER, "the model refused to answer: %s", why ? why : "");
        fr_free(why);
        r->bad = FR_BAD_REFUSAL;
        return;
    }
    if (finish && strcmp(finish, "length") == 0) {
        fr_http_set_error(r, FR_BAD_ANSWER, "answer cut off at max_tokens");
        r->bad = FR_BAD_CUT_OFF;
        return;
    }
    if (!content) {
        fr_http_set_error(r, FR_BAD_ANSWER, "the answer has no content");
        r->bad = FR_BAD_UNPARSABLE;
        return;
    }
    fr_buf err = { 0 };
    bool repaired = false;
    json_t *v = fr_repair_json(content, &repaired, &err);
    if (v) {
        r->outcome = FR_ANSWER;
        r->output = fr_http_unwrap(v, wrapped);
        r->repaired = repaired;
    } else {
        fr_http_set_error(r, FR_BAD_ANSWER, "%s", err.s ? err.s : "the answer is not JSON");
        r->bad = FR_BAD_UNPARSABLE;
    }
    fr_buf_free(&err);
}
