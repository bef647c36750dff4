/*
 * fr_repair.c: gets the JSON out of what a model wrote.
 *
 * Models asked for JSON still wrap it in ```json fences, put a sentence
 * before or after it, or leave a trailing comma.  Those three are safe to
 * repair because the value itself is not guessed at: the text is cut down to
 * the outermost {...} or [...] (found by matching brackets outside strings)
 * and commas directly before a closing bracket are dropped.  Anything else
 * (a missing brace, a truncated answer, single quotes) is left to fail, so
 * the model is asked again with the parse error.
 */
#include "fr_internal.h"

#include <string.h>

#define MAX_TRIES 8                /* brackets tried as the start of the JSON */

/* The inside of the first ```lang ... ``` fence, or the whole text. */
static void strip_fence(const char *text, size_t *start, size_t *end)
{
    const char *open = strstr(text, "```");
    if (!open)
        return;
    const char *body = strchr(open + 3, '\n');
    if (!body)
        return;
    body++;
    const char *close = strstr(body, "```");
    *start = (size_t)(body - text);
    *end = close ? (size_t)(close - text) : strlen(text);
}

/* Index just past the bracket that closes the one at s[i], or 0 if none. */
static size_t match_bracket(const char *s, size_t i, size_t end)
{
    int depth = 0;
    bool in_str = false;
    for (; i < end; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\' && i + 1 < end)
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if ((c == '}' || c == ']') && --depth == 0) {
            return i + 1;
        }
    }
    return 0;
}

/* Copies s[start, end) into out without commas that only precede } or ]. */
static size_t drop_trailing_commas(const char *s, size_t start, size_t end, char *out)
{
    size_t n = 0;
    bool in_str = false;
    for (size_t i = start; i < end; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\' && i + 1 < end) {
                out[n++] = c;
                c = s[++i];
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == ',') {
            size_t j = i + 1;
            while (j < end && strchr(" \t\r\n", s[j]))
                j++;
            if (j < end && (s[j] == '}' || s[j] == ']'))
                continue;
        }
        out[n++] = c;
    }
    out[n] = '\0';
    return n;
}

/* Parses text[start, close) without trailing commas; NULL with err filled
 * (and *oom set when memory ran out: no other candidate may be tried then,
 * or a failed allocation would turn into another value). */
static json_t *parse_span(const char *text, size_t start, size_t close, fr_buf *err,
                          bool *oom)
{
    char *clean = fr_malloc(close - start + 1);
    if (!clean) {
        fr_buf_puts(err, "out of memory");
        *oom = true;
        return NULL;
    }
    size_t n = drop_trailing_commas(text, start, close, clean);
    json_error_t je;
    json_t *v = fr_json_loadb(clean, n, 0, &je);
    fr_free(clean);
    if (!v) {
        fr_repair_utf8(je.text);
        fr_buf_puts(err, "the answer is not valid JSON: ");
        fr_buf_puts(err, je.text);
    }
    return v;
}

/* Repairs and parses; the caller has seen the plain parse fail.  Tries the
 * first MAX_TRIES brackets in turn, so prose with a brace of its own ("the
 * {lead} record: {...}") does not hide the object; the first's problem is
 * the one reported. */
static json_t *repair(const char *text, fr_buf *err)
{
    size_t start = 0, end = strlen(text);
    fr_buf first = { 0 };          /* the first candidate's problem */
    json_t *v = NULL;
    bool oom = false;
    strip_fence(text, &start, &end);
    for (int tries = 0; !v && !oom && tries < MAX_TRIES; tries++, start++) {
        while (start < end && text[start] != '{' && text[start] != '[')
            start++;
        if (start == end)
            break;
        size_t close = match_bracket(text, start, end);
        fr_buf why = { 0 };
        if (!close)
            fr_buf_puts(&why, "the answer's JSON is incomplete (unbalanced brackets)");
        else
            v = parse_span(text, start, close, &why, &oom);
        if ((tries == 0 || oom) && !v) {
            first.len = 0;
            fr_buf_puts(&first, why.s ? why.s : "the answer is not valid JSON");
        }
        fr_buf_free(&why);
    }
    if (!v)
        fr_buf_puts(err, first.s && first.len ? first.s : "the answer holds no JSON object");
    fr_buf_free(&first);
    return v;
}

json_t *fr_repair_json(const char *text, bool *repaired, fr_buf *err)
{
    *repaired = false;
    if (!text) {
        fr_buf_puts(err, "the answer is empty");
        return NULL;
    }
    json_t *v = fr_json_loadb(text, strlen(text), 0, NULL);
    if (v)
        return v;
    v = repair(text, err);
    *repaired = v != NULL;
    return v;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : p[0] >= 0xC2 && p[0] <= 0xDF ? 2
                 : p[0] >= 0xE0 && p[0] <= 0xEF ? 3 : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4 : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
        (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
        return 0;                  /* overlong, surrogate, past U+10FFFF */
    return len;
}

void fr_repair_utf8(char *s)
{
    unsigned char *p = (unsigned char *)s;
    size_t n = s ? strlen(s) : 0;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 0) {
            p[i++] = '?';
            continue;
        }
        i += k;
    }
}
