/*
 * fr_openai.c: the OpenAI chat completions wire format, as OpenAI, Ollama,
 * vLLM and llama.cpp's server speak it.
 *
 * Structured output is response_format json_schema in strict mode with the
 * agent's strict-dialect schema.  The answer is choices[0].message.content,
 * a string: it goes through fr_repair_json, since local servers do not
 * always honour the format.  A refusal (message.refusal) and an answer cut
 * off (finish_reason "length") are bad answers, retried with feedback.
 * input_tokens excludes cached prompt tokens, as Anthropic's does, so
 * input + cache_read is the whole prompt.  OpenAI itself gets
 * max_completion_tokens (its reasoning models refuse max_tokens); other
 * servers get max_tokens, which every compatible server reads.  Reasoning
 * models (gpt-5*, o1, o3, o4-mini, ...) take no temperature but their
 * default, so none is sent to them.
 */
#include "fr_internal.h"

#include <ctype.h>
#include <string.h>

/* messages -> [system] user prompt [assistant previous answer, user feedback] */
static json_t *messages(const fr_request *req)
{
    json_t *m = json_array();
    bool ok = m != NULL;
    if (ok && req->system && *req->system)
        ok = json_array_append_new(m, json_pack("{s:s, s:s}", "role", "system",
                                                "content", req->system)) == 0;
    if (ok)
        ok = fr_http_turns(m, req, "the JSON object");
    if (!ok) {
        json_decref(m);
        return NULL;
    }
    return m;
}

/* gpt-5*, o1, o3, o4-mini...: models that accept only the default temperature. */
static bool reasoning_model(const char *name)
{
    return strncmp(name, "gpt-5", 5) == 0 || (name[0] == 'o' && isdigit((unsigned char)name[1]));
}

json_t *fr_openai_body(const fr_request *req, bool *wrapped)
{
    return fr_openai_body_at(req, "", wrapped);
}

json_t *fr_openai_head(const fr_request *req, const char *url)
{
    const fr_agent *a = req->agent;
    json_t *msgs = messages(req);
    json_t *b = msgs ? json_pack("{s:s, s:o}", "model", req->model->api_name,
                                 "messages", msgs) : NULL;
    bool official = strstr(url, "://api.openai.com") != NULL;
    if (b && a->max_tokens > 0)
        json_object_set_new(b, official ? "max_completion_tokens" : "max_tokens",
                            json_integer(a->max_tokens));
    if (b && a->temperature >= 0 && !reasoning_model(req->model->api_name))
        json_object_set_new(b, "temperature", json_real(a->temperature));
    return b;
}

json_t *fr_openai_format(const fr_agent *a, bool *wrapped)
{
    json_t *schema = fr_http_schema(a->schema_openai, wrapped);
    return schema ? json_pack("{s:{s:s, s:{s:s, s:b, s:o}}}",
                              "response_format", "type", "json_schema",
                              "json_schema", "name", fr_http_schema_name(a),
                              "strict", 1, "schema", schema) : NULL;
}

json_t *fr_openai_body_at(const fr_request *req, const char *url, bool *wrapped)
{
    json_t *format = fr_openai_format(req->agent, wrapped);
    json_t *b = format ? fr_openai_head(req, url) : NULL;
    if (b && json_object_update(b, format) != 0) {
        json_decref(b);
        b = NULL;
    }
    json_decref(format);
    return b;
}

static void usage(json_t *u, fr_response *r)
{
    int64_t cached = fr_http_tokens(
        json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    int64_t prompt = fr_http_tokens(json_object_get(u, "prompt_tokens"));
    r->input_tokens = cached <= prompt ? prompt - cached : 0;
    r->output_tokens = fr_http_tokens(json_object_get(u, "completion_tokens"));
    r->cache_read_tokens = cached <= prompt ? cached : prompt;
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
    if (refusal && *refusal) {
        fr_http_set_error(r, FR_BAD_ANSWER, "the model refused to answer: %.200s", refusal);
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
