/*
 * fr_validate.c: checks a value that crosses a boundary (an input record, an
 * agent's answer) against its type, and says what is wrong in words a person
 * or a model can act on:
 *
 *   intent_score: 1.7 is out of range 0..1
 *   tags: 7 items, at most 5
 *   seniority: 'boss' is not one of ic, manager, director, vp, cxo
 *   missing required field 'email'
 *   tags[2]: expected string, got number
 *   unknown field 'nmae' (did you mean 'name'?)
 *
 * The walk carries the path ("lead.tags[2]") in a fixed buffer and stops at
 * the first problem.  Rules: int takes JSON integers only (1.0 is not an
 * int); float takes integers and reals; a field that is not optional must be
 * present and not null; keys the schema lacks are rejected unless the
 * schema drops or keeps them (`extra:`); `len` counts a list's items and a
 * string's Unicode code points (as JSON Schema's maxLength does, so "é" is
 * one character), and ranges are inclusive.
 *
 * Records are keyed by their fields' wire names (the data's), except a
 * model's answer, keyed by the names its JSON Schema gave (model keys): the
 * walk is told which.  fr_validate_fields() reports every problem at a
 * record's top level, one per field, for the readers that list them all.
 */
#include "fr_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vwalk {
    fr_buf *err;                   /* where the message goes, may be NULL */
    fr_keys keys;                  /* which name of a field keys a record */
    char path[512];                /* "lead.tags[2]", NUL-terminated */
    size_t len;                    /* bytes used in path */
} vwalk;

static void walk_init(vwalk *w, fr_buf *err, fr_keys keys)
{
    w->err = err;
    w->keys = keys;
    w->len = 0;
    w->path[0] = '\0';
}

const char *fr_field_wire(const fr_field *f)
{
    return f->wire ? f->wire : f->name;
}

const char *fr_field_model_key(const fr_field *f)
{
    return f->model_key ? f->model_key : fr_field_wire(f);
}

const char *fr_field_key(const fr_field *f, fr_keys keys)
{
    return keys == FR_KEYS_MODEL ? fr_field_model_key(f) : fr_field_wire(f);
}

static bool check(vwalk *w, json_t *v, const fr_type *t, const fr_field *f);

/* ---- messages ------------------------------------------------------------ */

/* Appends "path: " (nothing at the top) and the formatted message. */
__attribute__((format(printf, 2, 3)))
static bool fail(vwalk *w, const char *fmt, ...)
{
    if (!w->err)
        return false;
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (w->len)
        fr_buf_printf(w->err, "%s: %s", w->path, msg);
    else
        fr_buf_puts(w->err, msg);
    return false;
}

/* A number as short as reads back exactly: 1.7, 0.5, 3. */
static void fmt_num(char *s, size_t n, double d)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, n, "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            return;
    }
}

/* Bytes of s to quote, at most max, never cutting a UTF-8 character: the
 * message goes back to the model inside a JSON string. */
static int quote_len(const char *s, int max)
{
    int n = 0;
    while (n < max && s[n])
        n++;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* What a JSON value is, in the words of a type mismatch message. */
static const char *json_kind(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: case JSON_REAL: return "number";
    case JSON_TRUE: case JSON_FALSE: return "bool";
    default: return "null";
    }
}

/* The type as the .flow spells it: string, list<Tag>, Seniority, int? */
static void type_name(char *s, size_t n, const fr_type *t)
{
    char inner[200];
    switch (t->kind) {
    case FR_STRING: snprintf(s, n, "string"); break;
    case FR_INT: snprintf(s, n, "int"); break;
    case FR_FLOAT: snprintf(s, n, "float"); break;
    case FR_BOOL: snprintf(s, n, "bool"); break;
    case FR_RECORD: snprintf(s, n, "%s", t->schema->name); break;
    case FR_ENUM: snprintf(s, n, "%s", t->enm->name); break;
    case FR_LIST:
        type_name(inner, sizeof inner, t->elem);
        snprintf(s, n, "list<%s>", inner);
        break;
    case FR_OPTIONAL:
        type_name(inner, sizeof inner, t->elem);
        snprintf(s, n, "%s?", inner);
        break;
    }
}

static bool mismatch(vwalk *w, json_t *v, const fr_type *t)
{
    char want[256];
    type_name(want, sizeof want, t);
    if (t->kind == FR_INT && json_is_real(v)) {
        char got[40];
        fmt_num(got, sizeof got, json_real_value(v));
        return fail(w, "expected int, got %s%s", got, strpbrk(got, ".en") ? "" : ".0");
    }
    return fail(w, "expected %s, got %s", want, json_kind(v));
}

/* ---- paths --------------------------------------------------------------- */

/* Appends ".name" (or "name" at the top) or "[i]"; returns the old length. */
static size_t path_push(vwalk *w, const char *name, size_t index)
{
    size_t old = w->len, room = sizeof w->path - w->len;
    int n;
    size_t k = name ? strlen(name) : 0, dot = w->len > 0;
    if (name && dot + k < room) {  /* every field of every record: no printf */
        if (dot)
            w->path[w->len] = '.';
        memcpy(w->path + w->len + dot, name, k + 1);
        w->len += dot + k;
        return old;
    }
    if (name)
        n = snprintf(w->path + w->len, room, "%s%s", dot ? "." : "", name);
    else
        n = snprintf(w->path + w->len, room, "[%zu]", index);
    w->len = n < 0 || (size_t)n >= room ? sizeof w->path - 1 : w->len + (size_t)n;
    return old;
}

static void path_pop(vwalk *w, size_t old)
{
    w->len = old;
    w->path[old] = '\0';
}

/* ---- did you mean -------------------------------------------------------- */

size_t fr_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64)
        return 1000;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The schema field closest to key, if it is close enough to be a typo. */
const char *fr_closest_field(const fr_schema *sc, const char *key, fr_keys keys)
{
    const char *best = NULL;
    size_t best_d = strlen(key) / 3 + 1;
    if (best_d > 3)
        best_d = 3;
    for (int i = 0; i < sc->nfields; i++) {
        const char *k = fr_field_key(&sc->fields[i], keys);
        size_t d = fr_edit_distance(key, k);
        if (d <= best_d) {
            best = k;
            best_d = d;
        }
    }
    return best;
}

/* ---- constraints --------------------------------------------------------- */

static void fmt_range(char *s, size_t n, const fr_field *f)
{
    char lo[40], hi[40];
    fmt_num(lo, sizeof lo, f->min);
    fmt_num(hi, sizeof hi, f->max);
    snprintf(s, n, "%s..%s", lo, hi);
}

/* range: `in min..max`, inclusive */
static bool check_range(vwalk *w, json_t *v, const fr_field *f)
{
    double d = json_number_value(v);
    if (!f || !f->has_range || (d >= f->min && d <= f->max))
        return true;
    char got[40], range[90];
    if (json_is_integer(v))
        snprintf(got, sizeof got, "%lld", (long long)json_integer_value(v));
    else
        fmt_num(got, sizeof got, d);
    fmt_range(range, sizeof range, f);
    return fail(w, "%s is out of range %s", got, range);
}

/* len: `len min..max`, items of a list or code points of a string */
static bool check_len(vwalk *w, int64_t n, const char *unit, const fr_field *f)
{
    if (!f || !f->has_len)
        return true;
    if (n > f->max_len)
        return fail(w, "%lld %s, at most %lld", (long long)n, unit, (long long)f->max_len);
    if (n < f->min_len)
        return fail(w, "%lld %s, at least %lld", (long long)n, unit, (long long)f->min_len);
    return true;
}

/* ---- the rules, one per kind --------------------------------------------- */

/* string: a JSON string, its length in code points */
static bool check_string(vwalk *w, json_t *v, const fr_type *t, const fr_field *f)
{
    if (!json_is_string(v))
        return mismatch(w, v, t);
    int64_t n = (int64_t)fr_utf8_count(json_string_value(v), json_string_length(v));
    return check_len(w, n, n == 1 ? "character" : "characters", f);
}

/* enum: a string that is one of the values */
static bool check_enum(vwalk *w, json_t *v, const fr_type *t)
{
    if (!json_is_string(v))
        return mismatch(w, v, t);
    if (fr_enum_index(t->enm, v) >= 0)
        return true;
    char list[512];
    size_t used = 0;
    list[0] = '\0';
    for (int i = 0; i < t->enm->nvalues && used < sizeof list; i++) {
        int k = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                         t->enm->values[i]);
        used += k > 0 ? (size_t)k : 0;
    }
    const char *got = json_string_value(v);
    return fail(w, "'%.*s' is not one of %s", quote_len(got, 200), got, list);
}

/* list<T>: a JSON array whose items are all T */
static bool check_list(vwalk *w, json_t *v, const fr_type *t, const fr_field *f)
{
    if (!json_is_array(v))
        return mismatch(w, v, t);
    size_t n = json_array_size(v);
    if (!check_len(w, (int64_t)n, n == 1 ? "item" : "items", f))
        return false;
    for (size_t i = 0; i < n; i++) {
        size_t old = path_push(w, NULL, i);
        bool ok = check(w, json_array_get(v, i), t->elem, NULL);
        path_pop(w, old);
        if (!ok)
            return false;
    }
    return true;
}

const fr_field *fr_schema_field(const fr_schema *sc, const char *key, fr_keys keys)
{
    for (int i = 0; i < sc->nfields; i++)
        if (strcmp(fr_field_key(&sc->fields[i], keys), key) == 0)
            return &sc->fields[i];
    return NULL;
}

/* "unknown field 'nmae' (did you mean 'name'?)" */
static bool unknown_key(vwalk *w, const fr_schema *sc, const char *k)
{
    const char *near = fr_closest_field(sc, k, w->keys);
    if (near)
        return fail(w, "unknown field '%.*s' (did you mean '%s'?)", quote_len(k, 100), k, near);
    return fail(w, "unknown field '%.*s'", quote_len(k, 100), k);
}

/* One field of a record (fv NULL when absent): present unless optional, valid. */
static bool check_field(vwalk *w, json_t *fv, const fr_field *f)
{
    const char *key = fr_field_key(f, w->keys);
    if (!fv && f->type->kind != FR_OPTIONAL)
        return fail(w, "missing required field '%s'", key);
    if (!fv)
        return true;
    size_t old = path_push(w, key, 0);
    bool ok = check(w, fv, f->type, f);
    path_pop(w, old);
    return ok;
}

/* record: no unknown keys (unless dropped or kept); every field present
 * unless optional; each valid */
static bool check_record(vwalk *w, json_t *v, const fr_type *t)
{
    const fr_schema *sc = t->schema;
    if (!json_is_object(v))
        return mismatch(w, v, t);
    const char *k;
    json_t *fv;
    if (sc->extra == FR_EXTRA_REJECT) {
        json_object_foreach(v, k, fv) {
            if (!fr_schema_field(sc, k, w->keys))
                return unknown_key(w, sc, k);
        }
    }
    for (int i = 0; i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        if (!check_field(w, json_object_get(v, fr_field_key(f, w->keys)), f))
            return false;
    }
    return true;
}

/* One value against t; f is the schema field it sits in (its constraints). */
static bool check_value(vwalk *w, json_t *v, const fr_type *t, const fr_field *f);

/* A @sensitive field's problem is said without its value: messages reach
 * the terminal, the trace and the model's retry prompt. */
static bool check(vwalk *w, json_t *v, const fr_type *t, const fr_field *f)
{
    if (!f || !f->sensitive || !w->err)
        return check_value(w, v, t, f);
    fr_buf *err = w->err;
    w->err = NULL;
    bool ok = check_value(w, v, t, f);
    w->err = err;
    if (ok)
        return true;
    char want[256];
    type_name(want, sizeof want, t);
    return fail(w, "the value is not a valid %s (not shown: the field is @sensitive)", want);
}

static bool check_value(vwalk *w, json_t *v, const fr_type *t, const fr_field *f)
{
    switch (t->kind) {
    case FR_OPTIONAL:
        return json_is_null(v) || check(w, v, t->elem, f);
    case FR_STRING:
        return check_string(w, v, t, f);
    case FR_INT:
        return json_is_integer(v) ? check_range(w, v, f) : mismatch(w, v, t);
    case FR_FLOAT:
        return json_is_number(v) ? check_range(w, v, f) : mismatch(w, v, t);
    case FR_BOOL:
        return json_is_boolean(v) || mismatch(w, v, t);
    case FR_ENUM:
        return check_enum(w, v, t);
    case FR_LIST:
        return check_list(w, v, t, f);
    case FR_RECORD:
        return check_record(w, v, t);
    }
    return mismatch(w, v, t);
}

bool fr_validate_keys(json_t *v, const fr_type *t, fr_keys keys, fr_buf *err)
{
    vwalk w;                       /* not zeroed whole: the path is 512 bytes */
    walk_init(&w, err, keys);
    if (!v)
        return fail(&w, "no value");
    return check(&w, v, t, NULL);
}

bool fr_validate(json_t *v, const fr_type *t, fr_buf *err)
{
    return fr_validate_keys(v, t, FR_KEYS_WIRE, err);
}

bool fr_validate_field(json_t *v, const fr_field *f, fr_buf *err)
{
    vwalk w;                       /* not zeroed whole: the path is 512 bytes */
    walk_init(&w, err, FR_KEYS_WIRE);
    if (!v || json_is_null(v))
        return f->type->kind == FR_OPTIONAL || fail(&w, "no value");
    return check(&w, v, f->type, f);
}

bool fr_check_field(fr_ctx *cx, json_t *v, const fr_field *f, const char *schema,
                    const char *where)
{
    fr_buf err = { 0 };
    if (fr_validate_field(v, f, &err)) {
        fr_buf_free(&err);
        return true;
    }
    if (fr_buf_failed(&err) || !err.s)
        fr_oom(cx);
    else
        fr_fail(cx, where, "record '%s' field '%s': %s", schema, f->name, err.s);
    fr_buf_free(&err);
    return false;
}

int fr_validate_fields(json_t *v, const fr_schema *sc, fr_problem_fn fn, void *ctx)
{
    int n = 0;
    fr_buf err = { 0 };
    vwalk w;                       /* not zeroed whole: the path is 512 bytes */
    walk_init(&w, &err, FR_KEYS_WIRE);
    const char *k;
    json_t *fv;
    if (sc->extra == FR_EXTRA_REJECT) {
        json_object_foreach(v, k, fv) {
            if (fr_schema_field(sc, k, FR_KEYS_WIRE))
                continue;
            unknown_key(&w, sc, k);
            fn(ctx, k, fr_buf_failed(&err) ? NULL : err.s ? err.s : "");
            fr_buf_free(&err);
            n++;
        }
    }
    for (int i = 0; i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        if (check_field(&w, json_object_get(v, fr_field_wire(f)), f))
            continue;
        fn(ctx, fr_field_wire(f), fr_buf_failed(&err) ? NULL : err.s ? err.s : "");
        fr_buf_free(&err);
        n++;
    }
    return n;
}
