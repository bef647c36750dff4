/*
 * fr_anthropic.c: the Anthropic Messages wire format.
 *
 * Structured output is a forced tool call: the agent's JSON Schema becomes
 * tools[0].input_schema and tool_choice names that tool, so the answer comes
 * back as the tool_use block's `input`, already an object.  A retry carries
 * the previous answer as the assistant's turn and the problem as a new user
 * turn.  An answer in plain text (a model that ignored the tool) is still
 * taken when fr_repair_json finds an object in it.
 */
#include "fr_internal.h"

#include <string.h>

/* messages -> user prompt [assistant previous answer, user feedback] */
static json_t *messages(const fr_request *req)
{
    json_t *m = json_array();
    if (m && !fr_http_turns(m, req, "the tool")) {
        json_decref(m);
        return NULL;
    }
    return m;
}

json_t *fr_anthropic_head(const fr_request *req)
{
    const fr_agent *a = req->agent;
    json_t *msgs = messages(req);
    json_t *b = msgs ? json_pack("{s:s, s:i, s:o}", "model", req->model->api_name,
                                 "max_tokens", a->max_tokens > 0 ? a->max_tokens : 1024,
                                 "messages", msgs) : NULL;
    if (b && req->system && *req->system)
        json_object_set_new(b, "system", json_string(req->system));
    if (b && a->temperature >= 0)
        json_object_set_new(b, "temperature", json_real(a->temperature));
    return b;
}

json_t *fr_anthropic_tools(const fr_agent *a, bool *wrapped)
{
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
    json_t *tools = fr_anthropic_tools(req->agent, wrapped);
    json_t *b = tools ? fr_anthropic_head(req) : NULL;
    if (b && json_object_update(b, tools) != 0) {
        json_decref(b);
        b = NULL;
    }
    json_decref(tools);
    return b;
}

static int64_t usage_of(json_t *u, const char *k)
{
    return fr_http_tokens(json_object_get(u, k));
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
        fr_http_set_error(r, FR_BAD_ANSWER, "no tool call in the answer (%s)",
                          err.s ? err.s : "no text either");
        r->bad = FR_BAD_UNPARSABLE;
    }
    fr_buf_free(&err);
}

void fr_anthropic_parse(json_t *body, bool wrapped, fr_response *r)
{
    json_t *u = json_object_get(body, "usage");
    r->input_tokens = usage_of(u, "input_tokens");
    r->output_tokens = usage_of(u, "output_tokens");
    r->cache_read_tokens = usage_of(u, "cache_read_input_tokens");
    r->cache_write_tokens = usage_of(u, "cache_creation_input_tokens");
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
        fr_http_set_error(r, FR_BAD_ANSWER, "the model refused to answer: %.200s",
                          r->raw ? r->raw : "");
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
