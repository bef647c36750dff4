/*
 * fr_anthropic.c: the Anthropic Messages wire format.
 *
 * Structured output follows the model's mode (fr_model.output):
 *   output_config  output_config.format {type: json_schema, schema} with the
 *                  agent's schema in the documented subset (the default:
 *                  current Claude models answer a forced tool with a 400);
 *   tool           a forced tool call: the schema becomes tools[0].input_schema
 *                  and tool_choice names it (older models, compatible servers);
 *   prompt         the schema goes into the system prompt.
 * The answer is the tool_use block's input, or the text blocks' JSON.  A
 * retry carries the previous answer as the assistant's turn (never an empty
 * one) and the problem as a new user turn.
 *
 * Prompt caching: when the request's fixed prefix (schema, system, prompt
 * text before the first {{ }}) reaches the model's minimum, its last fixed
 * block carries cache_control {type: ephemeral}; system and prompt are then
 * sent as text blocks split where the fixed part ends.
 * Temperature is sent only to a model that takes one.
 *
 * Tools: an agent with tools sends them as tools[] (name, description,
 * input_schema with every keyword; not strict, so that they count against
 * no structured-output limit: the runtime validates every input), beside
 * its output_config; in tool mode the answer tool goes last and
 * tool_choice is "any" (a tool must be called, the answer being one).  The
 * model's turns come back as assistant turns of text and tool_use blocks,
 * the results as one user turn of tool_result blocks (is_error for a tool
 * that failed), in the order of the calls.  At the loop's bound the tools
 * stay (a history with tool_use blocks needs them) and tool_choice is
 * "none", or in tool mode the answer tool itself.
 */
#include "fr_internal.h"

#include <ctype.h>
#include <string.h>

static json_t *text_block(const char *s, size_t n, bool cache)
{
    json_t *b = json_pack("{s:s, s:s%}", "type", "text", "text", s, n);
    if (b && cache)
        json_object_set_new(b, "cache_control", json_pack("{s:s}", "type", "ephemeral"));
    return b;
}

/* text as [head (cache_control), rest], or the plain string when cut is 0. */
static json_t *split_text(const char *text, size_t cut)
{
    size_t n = strlen(text);
    if (cut == 0 || cut > n)
        return json_string(text);
    json_t *a = json_array();
    json_array_append_new(a, text_block(text, cut, true));
    if (cut < n)
        json_array_append_new(a, text_block(text + cut, n - cut, false));
    return a;
}

/* The system text: the agent's, and the schema when the mode is prompt. */
static char *system_text(const fr_request *req)
{
    fr_buf b = { 0 };
    fr_buf_puts(&b, req->system ? req->system : "");
    if (fr_http_req_mode(req) == FR_OUT_PROMPT)
        fr_http_schema_prompt(&b, req->agent->schema_anthropic);
    return fr_http_buf_take(&b);
}

/* One assistant turn of the loop: its text, then its tool_use blocks. */
static json_t *assistant_turn(json_t *turn)
{
    json_t *content = json_array(), *call;
    const char *text = json_string_value(json_object_get(turn, "text"));
    size_t i;
    if (content && text && text[strspn(text, " \t\r\n")])
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", text));
    json_array_foreach(json_object_get(turn, "calls"), i, call) {
        json_t *in = json_object_get(call, "input");
        json_array_append_new(content, json_pack("{s:s, s:O?, s:O?, s:o}", "type", "tool_use",
                                                 "id", json_object_get(call, "id"), "name",
                                                 json_object_get(call, "name"), "input",
                                                 json_is_object(in) ? json_incref(in)
                                                                    : json_object()));
    }
    return content ? json_pack("{s:s, s:o}", "role", "assistant", "content", content) : NULL;
}

/* The tools' results: one user turn of tool_result blocks. */
static json_t *results_turn(json_t *turn)
{
    json_t *content = json_array(), *r;
    size_t i;
    json_array_foreach(json_object_get(turn, "results"), i, r) {
        json_t *b = json_pack("{s:s, s:O?, s:O?}", "type", "tool_result", "tool_use_id",
                              json_object_get(r, "id"), "content", json_object_get(r, "content"));
        if (b && json_is_true(json_object_get(r, "error")))
            json_object_set_new(b, "is_error", json_true());
        json_array_append_new(content, b);
    }
    return content ? json_pack("{s:s, s:o}", "role", "user", "content", content) : NULL;
}

static bool history(json_t *msgs, const fr_request *req)
{
    json_t *turn;
    size_t i;
    json_array_foreach(req->history, i, turn) {
        json_t *m = json_object_get(turn, "results") ? results_turn(turn) : assistant_turn(turn);
        if (!m || json_array_append_new(msgs, m) != 0)
            return false;
    }
    return true;
}

/* tool_choice for an agent with tools: none at the loop's bound (the
 * answer tool in tool mode), "any" in tool mode (the answer is a tool),
 * else the default, auto. */
static json_t *tool_choice(const fr_request *req)
{
    bool tool_mode = fr_http_req_mode(req) == FR_OUT_TOOL;
    if (req->tools_off && tool_mode)
        return json_pack("{s:s, s:s}", "type", "tool", "name", fr_http_schema_name(req->agent));
    if (req->tools_off)
        return json_pack("{s:s}", "type", "none");
    return tool_mode ? json_pack("{s:s}", "type", "any") : NULL;
}

json_t *fr_anthropic_head(const fr_request *req)
{
    const fr_agent *a = req->agent;
    char *sys = system_text(req);
    fr_cut cut;
    fr_http_cache_cut(req, sys ? strlen(sys) : 0, &cut);
    json_t *msgs = sys ? json_array() : NULL;
    const char *how = fr_http_req_mode(req) == FR_OUT_TOOL ? "the tool" : "the JSON object";
    if (msgs && !fr_http_turns(msgs, req, how, cut.prompt, a->ntools ? history : NULL)) {
        json_decref(msgs);
        msgs = NULL;
    }
    int max = req->max_tokens > 0 ? req->max_tokens : a->max_tokens > 0 ? a->max_tokens : 1024;
    json_t *b = msgs ? json_pack("{s:s, s:i, s:o}", "model", req->model->api_name,
                                 "max_tokens", max, "messages", msgs) : NULL;
    if (b && *sys)
        json_object_set_new(b, "system", split_text(sys, cut.system));
    if (b && a->temperature >= 0 && !req->model->no_temperature)
        json_object_set_new(b, "temperature", json_real(a->temperature));
    json_t *tc = b && a->ntools ? tool_choice(req) : NULL;
    if (tc)
        json_object_set_new(b, "tool_choice", tc);
    fr_free(sys);
    return b;
}

/* The agent's own tools as Anthropic declares them. */
static json_t *declared_tools(const fr_agent *a)
{
    json_t *tools = json_array();
    for (int i = 0; tools && i < a->ntools; i++) {
        const fr_tool *t = &a->tools[i];
        json_t *schema = t->schema ? fr_json_loadb(t->schema, strlen(t->schema), 0, NULL) : NULL;
        json_t *d = schema ? json_pack("{s:s, s:s, s:o}", "name", t->name, "description",
                                       t->description ? t->description : t->name,
                                       "input_schema", schema) : NULL;
        if (!d || json_array_append_new(tools, d) != 0) {
            json_decref(tools);
            return NULL;
        }
    }
    return tools;
}

/* An agent with tools: its tools (and the answer tool, in tool mode), its
 * output_config; tool_choice goes with each request (fr_anthropic_head). */
static json_t *loop_part(const fr_agent *a, fr_output_mode mode, bool *wrapped)
{
    *wrapped = false;
    json_t *tools = declared_tools(a), *part = tools ? json_object() : NULL;
    json_t *schema = NULL;
    if (part && mode != FR_OUT_PROMPT)
        schema = fr_http_schema(mode == FR_OUT_TOOL || !a->schema_output_config
                                ? a->schema_anthropic : a->schema_output_config, wrapped);
    if (part && mode == FR_OUT_TOOL && schema)
        json_array_append_new(tools, json_pack("{s:s, s:s, s:o}", "name",
                                               fr_http_schema_name(a), "description",
                                               a->doc ? a->doc : "Record the answer.",
                                               "input_schema", schema));
    else if (part && schema)
        json_object_set_new(part, "output_config", json_pack("{s:{s:s, s:o}}", "format", "type",
                                                             "json_schema", "schema", schema));
    if (part && (mode == FR_OUT_PROMPT || schema)) {
        json_object_set_new(part, "tools", tools);
        return part;
    }
    json_decref(part);
    json_decref(tools);
    return NULL;
}

json_t *fr_anthropic_tools(const fr_agent *a, fr_output_mode mode, bool *wrapped)
{
    if (a->ntools > 0)
        return loop_part(a, mode, wrapped);
    if (mode == FR_OUT_PROMPT) {
        *wrapped = false;
        return json_object();
    }
    if (mode != FR_OUT_TOOL) {
        json_t *schema = fr_http_schema(a->schema_output_config ? a->schema_output_config
                                                                : a->schema_anthropic, wrapped);
        return schema ? json_pack("{s:{s:{s:s, s:o}}}", "output_config", "format",
                                  "type", "json_schema", "schema", schema) : NULL;
    }
    json_t *schema = fr_http_schema(a->schema_anthropic, wrapped);
    const char *name = fr_http_schema_name(a);
    return schema ? json_pack("{s:[{s:s, s:s, s:o}], s:{s:s, s:s}}",
                              "tools", "name", name,
                              "description", a->doc ? a->doc : "Record the answer.",
                              "input_schema", schema,
                              "tool_choice", "type", "tool", "name", name) : NULL;
}

json_t *fr_anthropic_body(const fr_request *req, bool *wrapped)
{
    json_t *tools = fr_anthropic_tools(req->agent, fr_http_req_mode(req), wrapped);
    json_t *b = tools ? fr_anthropic_head(req) : NULL;
    if (b && json_object_update(b, tools) != 0) {
        json_decref(b);
        b = NULL;
    }
    json_decref(tools);
    return b;
}

static int64_t usage_of(json_t *u, const char *k, fr_response *r)
{
    return fr_http_tokens(json_object_get(u, k), r);
}

/* The text blocks of content, joined. */
static char *text_of(json_t *content)
{
    fr_buf b = { 0 };
    size_t i;
    json_t *blk;
    json_array_foreach(content, i, blk) {
        const char *t = json_string_value(json_object_get(blk, "text"));
        if (t)
            fr_buf_puts(&b, t);
    }
    return fr_http_buf_take(&b);
}

/* No tool call: take an object from the text if there is one. */
static void from_text(json_t *content, bool wrapped, fr_response *r)
{
    r->raw = text_of(content);
    fr_buf err = { 0 };
    bool repaired = false;
    json_t *v = r->raw ? fr_repair_json(r->raw, &repaired, &err) : NULL;
    if (v) {
        r->outcome = FR_ANSWER;
        r->output = fr_http_unwrap(v, wrapped);
        r->repaired = repaired;
    } else {
        fr_http_set_error(r, FR_BAD_ANSWER, "no JSON in the answer's tool call or text (%s)",
                          err.s ? err.s : "no text either");
        r->bad = FR_BAD_UNPARSABLE;
    }
    fr_buf_free(&err);
}

/* usage: input, output, cache reads and writes (with the TTL split when given) */
static void read_usage(json_t *body, fr_response *r)
{
    json_t *u = json_object_get(body, "usage");
    r->usage = json_is_number(json_object_get(u, "input_tokens")) ||
               json_is_number(json_object_get(u, "output_tokens"));
    r->input_tokens = usage_of(u, "input_tokens", r);
    r->output_tokens = usage_of(u, "output_tokens", r);
    r->cache_read_tokens = usage_of(u, "cache_read_input_tokens", r);
    /* the TTL split when given (usage.cache_creation), else all 5-minute */
    json_t *cc = json_object_get(u, "cache_creation");
    int64_t w5 = usage_of(cc, "ephemeral_5m_input_tokens", r);
    int64_t w1 = usage_of(cc, "ephemeral_1h_input_tokens", r);
    int64_t w = usage_of(u, "cache_creation_input_tokens", r);
    if (json_is_object(cc) && w5 + w1 > 0)
        r->cache_write_tokens = w5, r->cache_write_1h_tokens = w1;
    else
        r->cache_write_tokens = w;
}

void fr_anthropic_parse(json_t *body, bool wrapped, fr_response *r)
{
    read_usage(body, r);
    const char *stop = json_string_value(json_object_get(body, "stop_reason"));
    r->finish_reason = stop ? fr_strdup(stop) : NULL;
    json_t *content = json_object_get(body, "content"), *blk, *input = NULL;
    size_t i;
    json_array_foreach(content, i, blk) {
        const char *type = json_string_value(json_object_get(blk, "type"));
        if (type && strcmp(type, "tool_use") == 0 && !input)
            input = json_object_get(blk, "input");
    }
    if (input)
        r->raw = json_dumps(input, JSON_COMPACT);
    if (stop && strcmp(stop, "max_tokens") == 0) {
        if (!r->raw)
            r->raw = text_of(content);
        fr_http_set_error(r, FR_BAD_ANSWER, "answer cut off at max_tokens");
        r->bad = FR_BAD_CUT_OFF;
    } else if (stop && strcmp(stop, "refusal") == 0) {
        if (!r->raw)
            r->raw = text_of(content);
        char *why = fr_http_excerpt(r, r->raw ? r->raw : "", 200);
        fr_http_set_error(r, FR_BAD_ANSWER, "the model refused to answer: %s", why ? why : "");
        fr_free(why);
        r->bad = FR_BAD_REFUSAL;
    } else if (json_is_object(input)) {
        r->outcome = FR_ANSWER;
        r->output = fr_http_unwrap(json_incref(input), wrapped);
    } else if (input) {
        fr_http_set_error(r, FR_BAD_ANSWER, "the tool call's input is not an object");
        r->bad = FR_BAD_UNPARSABLE;
    } else {
        from_text(content, wrapped, r);
    }
}

/* The model's turn of a tool loop: its text and its calls (the history's form). */
static json_t *turn_of(json_t *content, json_t *calls)
{
    char *text = text_of(content);
    json_t *t = json_pack("{s:s, s:O}", "text", text ? text : "", "calls", calls);
    fr_free(text);
    return t;
}

void fr_anthropic_parse_agent(json_t *body, const fr_agent *a, bool wrapped, fr_response *r)
{
    const char *stop = json_string_value(json_object_get(body, "stop_reason"));
    json_t *content = json_object_get(body, "content"), *blk;
    const char *answer = fr_http_schema_name(a);
    json_t *calls = json_array();
    bool answered = false;
    size_t i;
    json_array_foreach(content, i, blk) {
        const char *type = json_string_value(json_object_get(blk, "type"));
        const char *name = json_string_value(json_object_get(blk, "name"));
        if (!type || strcmp(type, "tool_use") != 0)
            continue;
        if (name && strcmp(name, answer) == 0) {
            answered = true;
            continue;
        }
        json_array_append_new(calls, json_pack("{s:O, s:O, s:O}", "id",
                                               json_object_get(blk, "id") ?: json_null(),
                                               "name", json_object_get(blk, "name") ?: json_null(),
                                               "input", json_object_get(blk, "input")
                                               ?: json_null()));
    }
    bool bad_stop = stop && (strcmp(stop, "max_tokens") == 0 || strcmp(stop, "refusal") == 0);
    if (answered || bad_stop || json_array_size(calls) == 0) {
        json_decref(calls);
        fr_anthropic_parse(body, wrapped, r);    /* the answer (or what is wrong with it) */
        return;
    }
    read_usage(body, r);
    r->finish_reason = stop ? fr_strdup(stop) : NULL;
    r->turn = turn_of(content, calls);
    json_decref(calls);
    r->outcome = r->turn ? FR_TOOL_CALLS : FR_TRANSIENT;
    if (!r->turn)
        fr_http_set_error(r, FR_TRANSIENT, "out of memory reading the model's turn");
}
