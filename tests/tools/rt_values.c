/*
 * rt_values.c: the runtime's self-test for values, validation, JSON output,
 * JSONL input and output, the mock provider and the allocation hook.
 *
 *   build/tools/rt_values TOP [TMPDIR]
 *
 * TOP is the source tree (fixtures under tests/data/), TMPDIR a scratch
 * directory.  Each failed check prints its line and what it saw; the exit
 * status is 0 only when every check passed.  The allocation-failure loops
 * (SQLite's OOM loop) make the 1st, 2nd, ... allocation of an operation fail
 * and check that an error comes back; under ASan they also check for leaks.
 */
#include "fr_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int nchecks, nfailed;

#define CHECK(cond, ...) check_at(__LINE__, (cond), #cond, __VA_ARGS__)

__attribute__((format(printf, 4, 5)))
static void check_at(int line, bool ok, const char *expr, const char *fmt, ...)
{
    nchecks++;
    if (ok)
        return;
    nfailed++;
    fprintf(stderr, "rt_values.c:%d: check failed: %s: ", line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static bool streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static const char *orz(const char *s)
{
    return s ? s : "(null)";
}

/* ---- types of the tests (the language sketch's Lead and EnrichedLead) ----- */

static const char *const seniority_values[] = { "ic", "manager", "director", "vp", "cxo" };
static const fr_enum seniority = { "Seniority", NULL, 5, seniority_values };
static const fr_type t_seniority = { FR_ENUM, NULL, NULL, &seniority };
static const fr_type t_opt_string = { FR_OPTIONAL, &fr_type_string, NULL, NULL };
static const fr_type t_list_string = { FR_LIST, &fr_type_string, NULL, NULL };
static const fr_type t_opt_int = { FR_OPTIONAL, &fr_type_int, NULL, NULL };

static const fr_field lead_fields[] = {
    { "id", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "email", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "company_domain", &t_opt_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "job_title", &t_opt_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema lead_schema = { "Lead", NULL, 4, lead_fields, FR_EXTRA_REJECT };
static const fr_type t_lead = { FR_RECORD, NULL, &lead_schema, NULL };

static const fr_field enriched_fields[] = {
    { "lead_id", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "first_name", &fr_type_string, false, 0, 0, true, 1, 12, NULL, NULL, NULL, false },
    { "seniority", &t_seniority, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "intent_score", &fr_type_float, true, 0, 1, false, 0, 0, NULL, NULL, NULL, false },
    { "tags", &t_list_string, false, 0, 0, true, 0, 5, NULL, NULL, NULL, false },
    { "employees", &t_opt_int, true, 1, 5, false, 0, 0, NULL, NULL, NULL, false },
    { "active", &fr_type_bool, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema enriched_schema = { "EnrichedLead", NULL, 7, enriched_fields, FR_EXTRA_REJECT };
static const fr_type t_enriched = { FR_RECORD, NULL, &enriched_schema, NULL };

/* A record holding a list of records, for nested paths. */
static const fr_type t_list_lead = { FR_LIST, &t_lead, NULL, NULL };
static const fr_field account_fields[] = {
    { "name", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "contacts", &t_list_lead, false, 0, 0, true, 2, 4, NULL, NULL, NULL, false },
    { "score", &fr_type_float, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema account_schema = { "Account", NULL, 3, account_fields, FR_EXTRA_REJECT };
static const fr_type t_account = { FR_RECORD, NULL, &account_schema, NULL };

/* A value from JSON text, owned by the caller. */
static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v)
        fprintf(stderr, "rt_values: bad test JSON %s: %s\n", text, e.text);
    return v;
}

/* A value from JSON text, kept in cx's pool. */
static json_t *kept(fr_ctx *cx, const char *text)
{
    return fr_keep(cx, parse(text));
}

/* ---- the pool ------------------------------------------------------------ */

static void test_pool(void)
{
    fr_ctx cx = { 0 };
    json_t *a = fr_int(&cx, 5);
    CHECK(a && a->refcount == 1 && cx.npool == 1, "refcount %zu npool %zu",
          a ? a->refcount : 0, cx.npool);
    CHECK(fr_bool(true) == json_true() && cx.npool == 1, "npool %zu", cx.npool);
    CHECK(fr_keep(&cx, json_null()) == json_null() && cx.npool == 1, "singleton kept");

    json_t *owned = json_string("held");
    json_incref(owned);
    fr_keep(&cx, owned);
    CHECK(owned->refcount == 2, "refcount %zu", owned->refcount);
    size_t m = fr_mark(&cx);
    for (int i = 0; i < 1000; i++)
        fr_str(&cx, "temporary");
    CHECK(cx.npool == m + 1000, "npool %zu", cx.npool);
    json_t *block = fr_str(&cx, "the block's value");
    json_t *esc = fr_escape(&cx, m, block);
    CHECK(esc == block && cx.npool == m + 1 && block->refcount == 1,
          "npool %zu refcount %zu", cx.npool, block->refcount);
    fr_release(&cx, 0);
    CHECK(owned->refcount == 1 && cx.npool == 0, "refcount %zu", owned->refcount);

    json_t *slot = NULL;
    fr_assign(&slot, owned);
    CHECK(owned->refcount == 2, "assign: refcount %zu", owned->refcount);
    fr_assign(&slot, owned);
    CHECK(owned->refcount == 2, "self-assign: refcount %zu", owned->refcount);
    fr_drop(&slot);
    CHECK(slot == NULL && owned->refcount == 1, "drop: refcount %zu", owned->refcount);
    json_decref(owned);

    CHECK(fr_keep(&cx, NULL) == NULL && cx.sig == FR_SIG_FAIL &&
          streq(cx.err, "out of memory"), "keep(NULL): sig %d err %s", cx.sig, orz(cx.err));
    fr_sig_clear(&cx);
    CHECK(cx.sig == FR_OK && cx.err == NULL, "sig_clear");

    json_t *list = fr_list(&cx);
    json_t *item = fr_str(&cx, "x");
    fr_list_push(list, item);
    CHECK(item->refcount == 2, "push refcount %zu", item->refcount);
    json_t *rec = fr_record(&cx);
    fr_record_set(rec, "a", item);
    fr_record_set(rec, "b", fr_null());
    CHECK(item->refcount == 3 && json_object_size(rec) == 1, "record_set");
    fr_record_set(rec, "a", NULL);
    CHECK(json_object_size(rec) == 0 && item->refcount == 2, "record_set null removes");
    fr_pool_free(&cx);
    CHECK(cx.pool == NULL && cx.npool == 0 && cx.cap == 0, "pool_free");
}

/* ---- access and operators ------------------------------------------------- */

static void test_access(fr_ctx *cx)
{
    json_t *r = fr_keep(cx, parse("{\"a\": 1, \"b\": [10, 20, 30], \"s\": \"h\\u00e9\"}"));
    CHECK(json_is_null(fr_get(r, "missing")), "missing field is null");
    CHECK(json_integer_value(fr_get(r, "a")) == 1, "get a");
    CHECK(fr_count(fr_get(r, "b")) == 3, "count");
    CHECK(json_integer_value(fr_at(fr_get(r, "b"), 2)) == 30, "at");
    CHECK(json_integer_value(fr_len(cx, fr_get(r, "b"))) == 3, "len list");
    CHECK(json_integer_value(fr_len(cx, fr_get(r, "s"))) == 2, "len string counts characters");
    CHECK(fr_is_null(NULL) && fr_is_null(json_null()) && !fr_is_null(r), "is_null");
    CHECK(fr_truthy(json_true()) && !fr_truthy(json_false()), "truthy");
    CHECK(fr_enum_index(&seniority, fr_str(cx, "vp")) == 3, "enum_index vp");
    CHECK(fr_enum_index(&seniority, fr_str(cx, "boss")) == -1, "enum_index boss");
    CHECK(fr_enum_index(&seniority, fr_int(cx, 1)) == -1, "enum_index int");
}

static void test_equal_compare(fr_ctx *cx)
{
    CHECK(fr_equal(fr_int(cx, 1), fr_float(cx, 1.0)), "1 == 1.0");
    CHECK(!fr_equal(fr_int(cx, 1), fr_float(cx, 1.5)), "1 != 1.5");
    CHECK(!fr_equal(fr_int(cx, 1), fr_str(cx, "1")), "1 != \"1\"");
    CHECK(fr_equal(fr_null(), NULL), "null == absent");
    CHECK(fr_equal(kept(cx, "{\"a\":1,\"b\":null}"), kept(cx, "{\"a\":1.0}")),
          "records: null field as absent, numbers by value");
    CHECK(!fr_equal(kept(cx, "{\"a\":1}"), kept(cx, "{\"a\":1,\"c\":2}")), "extra field");
    CHECK(fr_equal(kept(cx, "[1,[2,\"x\"]]"), kept(cx, "[1.0,[2,\"x\"]]")), "nested lists");
    CHECK(!fr_equal(kept(cx, "[1,2]"), kept(cx, "[1]")), "list lengths");
    CHECK(fr_compare(fr_int(cx, 2), fr_float(cx, 2.5)) < 0, "2 < 2.5");
    CHECK(fr_compare(fr_int(cx, 9), fr_int(cx, 10)) < 0, "9 < 10");
    CHECK(fr_compare(fr_str(cx, "ab"), fr_str(cx, "a")) > 0, "ab > a");
    CHECK(fr_compare(fr_str(cx, "b"), fr_str(cx, "ab")) > 0, "b > ab");
    CHECK(fr_compare(fr_str(cx, "\xc3\xa9"), fr_str(cx, "z")) > 0, "bytewise: e-acute > z");
    CHECK(fr_compare(fr_str(cx, "x"), fr_str(cx, "x")) == 0, "x == x");
}

static void expect_fail(fr_ctx *cx, json_t *v, const char *msg, const char *where)
{
    CHECK(v == NULL && cx->sig == FR_SIG_FAIL && streq(cx->err, msg) &&
          (where == NULL || streq(cx->err_where, where)),
          "want NULL and \"%s\", got sig %d err \"%s\"", msg, cx->sig, orz(cx->err));
    fr_sig_clear(cx);
}

static void test_arith(fr_ctx *cx)
{
    json_t *v = fr_add(cx, fr_int(cx, 2), fr_int(cx, 3));
    CHECK(json_is_integer(v) && json_integer_value(v) == 5, "2 + 3");
    v = fr_add(cx, fr_int(cx, 2), fr_float(cx, 0.5));
    CHECK(json_is_real(v) && json_real_value(v) == 2.5, "2 + 0.5");
    v = fr_add(cx, fr_str(cx, "ab"), fr_str(cx, "c\xc3\xa9"));
    CHECK(streq(json_string_value(v), "abc\xc3\xa9"), "concat: %s", orz(json_string_value(v)));
    v = fr_add(cx, kept(cx, "[1]"), kept(cx, "[2,3]"));
    CHECK(json_array_size(v) == 3, "list concat");
    expect_fail(cx, fr_add(cx, fr_int(cx, INT64_MAX), fr_int(cx, 1)), "integer overflow in +",
                NULL);
    expect_fail(cx, fr_sub(cx, fr_int(cx, INT64_MIN), fr_int(cx, 1)), "integer overflow in -",
                NULL);
    expect_fail(cx, fr_mul(cx, fr_int(cx, INT64_MAX / 2), fr_int(cx, 3)),
                "integer overflow in *", NULL);
    expect_fail(cx, fr_neg(cx, fr_int(cx, INT64_MIN)), "integer overflow in -", NULL);
    expect_fail(cx, fr_mul(cx, fr_float(cx, 1e300), fr_float(cx, 1e300)), "float overflow",
                NULL);
    expect_fail(cx, fr_add(cx, fr_int(cx, 1), fr_str(cx, "x")), "cannot add int and string",
                NULL);
    v = fr_sub(cx, fr_int(cx, 2), fr_int(cx, 5));
    CHECK(json_integer_value(v) == -3, "2 - 5");
    v = fr_mul(cx, fr_int(cx, 4), fr_float(cx, 0.25));
    CHECK(json_is_real(v) && json_real_value(v) == 1.0, "4 * 0.25");
    v = fr_div(cx, fr_int(cx, 7), fr_int(cx, 2), "a.flow:1:1");
    CHECK(json_is_integer(v) && json_integer_value(v) == 3, "7 / 2");
    v = fr_div(cx, fr_int(cx, -7), fr_int(cx, 2), "a.flow:1:1");
    CHECK(json_integer_value(v) == -3, "-7 / 2 truncates");
    v = fr_div(cx, fr_float(cx, 7), fr_int(cx, 2), "a.flow:1:1");
    CHECK(json_is_real(v) && json_real_value(v) == 3.5, "7.0 / 2");
    expect_fail(cx, fr_div(cx, fr_int(cx, 1), fr_int(cx, 0), "a.flow:3:9"), "division by zero",
                "a.flow:3:9");
    expect_fail(cx, fr_div(cx, fr_float(cx, 1), fr_float(cx, 0), "a.flow:4:2"),
                "division by zero", "a.flow:4:2");
    expect_fail(cx, fr_div(cx, fr_int(cx, INT64_MIN), fr_int(cx, -1), NULL),
                "integer overflow in /", NULL);
    v = fr_neg(cx, fr_float(cx, 0.5));
    CHECK(json_real_value(v) == -0.5, "neg");
    expect_fail(cx, fr_strn(cx, "\xc3", 1), "string is not valid UTF-8", NULL);
    fr_fail(cx, "x.flow:1:2", "bad %d", 5);
    CHECK(cx->sig == FR_SIG_FAIL && streq(cx->err, "bad 5") && streq(cx->err_where, "x.flow:1:2"),
          "fr_fail");
    fr_usage(cx, NULL, "usage %s", "x");
    CHECK(cx->sig == FR_SIG_USAGE && streq(cx->err, "usage x"), "fr_usage");
    CHECK(fr_skip(cx) == NULL && cx->sig == FR_SIG_SKIP, "fr_skip");
    fr_sig_clear(cx);
}

/* ---- text and JSON output ------------------------------------------------- */

static void expect_json(json_t *v, const fr_type *t, const char *want)
{
    char *s = fr_to_json(v, t);
    CHECK(streq(s, want), "to_json: want %s got %s", want, orz(s));
    fr_free(s);
}

static void test_to_json(fr_ctx *cx)
{
    json_t *rec = fr_record(cx);
    fr_record_set(rec, "active", json_true());
    fr_record_set(rec, "tags", parse("[\"a\",\"b\"]"));
    fr_record_set(rec, "intent_score", fr_float(cx, 0.5));
    fr_record_set(rec, "seniority", fr_str(cx, "vp"));
    fr_record_set(rec, "first_name", fr_str(cx, "Ada \"the\" \\ \n\t\x01 \xc3\xa9"));
    fr_record_set(rec, "lead_id", fr_str(cx, "L1"));
    json_decref(json_object_get(rec, "tags"));           /* parse's reference */
    expect_json(rec, &t_enriched,
                "{\"lead_id\":\"L1\",\"first_name\":\"Ada \\\"the\\\" \\\\ \\n\\t\\u0001 "
                "\xc3\xa9\",\"seniority\":\"vp\",\"intent_score\":0.5,\"tags\":[\"a\",\"b\"],"
                "\"active\":true}");
    json_t *acct = fr_keep(cx, parse("{\"score\":2,\"contacts\":[{\"email\":\"e\",\"id\":\"1\","
                                     "\"job_title\":null},{\"job_title\":\"cto\",\"id\":\"2\","
                                     "\"email\":\"f\"}],\"name\":\"acme\"}"));
    expect_json(acct, &t_account,
                "{\"name\":\"acme\",\"contacts\":[{\"id\":\"1\",\"email\":\"e\"},{\"id\":\"2\","
                "\"email\":\"f\",\"job_title\":\"cto\"}],\"score\":2}");
    expect_json(fr_keep(cx, parse("{\"z\":1,\"a\":[null,true]}")), NULL,
                "{\"z\":1,\"a\":[null,true]}");
    expect_json(fr_keep(cx, parse("{\"id\":\"1\",\"extra\":3,\"email\":\"e\"}")), &t_lead,
                "{\"id\":\"1\",\"email\":\"e\",\"extra\":3}");
    expect_json(fr_float(cx, 0.1), NULL, "0.1");
    expect_json(fr_float(cx, 1.0), NULL, "1.0");
    expect_json(fr_float(cx, -2.5e-7), NULL, "-2.5e-07");
    expect_json(fr_float(cx, 1e300), NULL, "1e+300");
    expect_json(fr_float(cx, 1.0 / 3), NULL, "0.3333333333333333");
    expect_json(fr_float(cx, 0.1 + 0.2), NULL, "0.30000000000000004");
    expect_json(fr_int(cx, -42), NULL, "-42");
    expect_json(fr_int(cx, 0), NULL, "0");
    expect_json(fr_int(cx, INT64_MIN), NULL, "-9223372036854775808");
    expect_json(fr_int(cx, INT64_MAX), NULL, "9223372036854775807");
    expect_json(fr_null(), NULL, "null");
    expect_json(fr_keep(cx, parse("\"a\\u0000b\"")), NULL, "\"a\\u0000b\"");
    for (int i = 0; i < 2000; i++) {
        double d = ldexp((double)(i * 7919 % 1000 + 1), i % 60 - 30) / 3;
        char *s = fr_to_json(fr_float(cx, d), NULL);
        CHECK(s && strtod(s, NULL) == d, "round trip of %.17g: %s", d, orz(s));
        fr_free(s);
    }

    fr_buf b = { 0 };
    fr_buf_puts(&b, "Email: ");
    fr_buf_value(&b, fr_str(cx, "a@b.c"));
    fr_buf_puts(&b, " record: ");
    fr_buf_value(&b, fr_keep(cx, parse("{\"k\":[1,2.5]}")));
    CHECK(streq(b.s, "Email: a@b.c record: {\"k\":[1,2.5]}") && b.len == strlen(b.s),
          "buf_value: %s", orz(b.s));
    fr_buf_free(&b);
    for (int i = 0; i < 100000; i++)
        fr_buf_put(&b, "0123456789", 10);
    CHECK(b.len == 1000000 && b.cap >= b.len + 1 && b.cap < 4 * b.len && b.s[999999] == '9' &&
          b.s[1000000] == '\0', "buf growth: len %zu cap %zu", b.len, b.cap);
    fr_buf_free(&b);
    fr_buf_printf(&b, "%s-%d-%s", "x", 42, "long long long long long long long long long long "
                  "long long long long long long long long long long long long long long long "
                  "long long long long long long long long long long long long long long long "
                  "long long long long long long long long long long long long long long long "
                  "long long long long long long long long long end");
    CHECK(b.len == strlen(b.s) && strncmp(b.s, "x-42-long", 9) == 0 &&
          strcmp(b.s + b.len - 3, "end") == 0, "buf_printf long: %s", orz(b.s));
    fr_buf_free(&b);
}

static void test_normalize(fr_ctx *cx)
{
    json_t *v = parse("{\"score\":2,\"contacts\":[{\"email\":\"e\",\"id\":\"1\","
                      "\"job_title\":null}],\"name\":\"acme\"}");
    json_t *n = fr_normalize(v, &t_account);
    char *s = json_dumps(n, JSON_COMPACT);
    CHECK(streq(s, "{\"name\":\"acme\",\"contacts\":[{\"id\":\"1\",\"email\":\"e\"}],"
                   "\"score\":2.0}"), "normalize: %s", orz(s));
    CHECK(json_is_real(json_object_get(n, "score")), "int in float place becomes real");
    free(s);
    json_decref(n);
    json_decref(v);
    v = fr_str(cx, "same");
    n = fr_normalize(v, &fr_type_string);
    CHECK(n == v && v->refcount == 2, "normalize shares a plain value");
    json_decref(n);
}

/* ---- validation ----------------------------------------------------------- */

static void expect_invalid(const char *text, const fr_type *t, const char *want)
{
    json_t *v = parse(text);
    fr_buf err = { 0 };
    bool ok = fr_validate(v, t, &err);
    CHECK(!ok && streq(err.s, want), "validate %s: want \"%s\", got %s \"%s\"", text, want,
          ok ? "valid" : "invalid", orz(err.s));
    fr_buf_free(&err);
    json_decref(v);
}

static void expect_valid(const char *text, const fr_type *t)
{
    json_t *v = parse(text);
    fr_buf err = { 0 };
    CHECK(fr_validate(v, t, &err), "validate %s: %s", text, orz(err.s));
    fr_buf_free(&err);
    json_decref(v);
}

#define GOOD_ENRICHED "\"lead_id\":\"L1\",\"first_name\":\"Ada\",\"seniority\":\"vp\","

static void test_validate(void)
{
    expect_valid("{" GOOD_ENRICHED "\"intent_score\":1,\"tags\":[],\"active\":false}",
                 &t_enriched);
    expect_valid("{" GOOD_ENRICHED "\"intent_score\":0.25,\"tags\":[\"a\"],\"employees\":null,"
                 "\"active\":true}", &t_enriched);
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":1.7,\"tags\":[],\"active\":true}",
                   &t_enriched, "intent_score: 1.7 is out of range 0..1");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":0,\"tags\":[\"a\",\"b\",\"c\",\"d\","
                   "\"e\",\"f\",\"g\"],\"active\":true}", &t_enriched, "tags: 7 items, at most 5");
    expect_invalid("{\"lead_id\":\"L1\",\"first_name\":\"Ada\",\"seniority\":\"boss\","
                   "\"intent_score\":0,\"tags\":[],\"active\":true}", &t_enriched,
                   "seniority: 'boss' is not one of ic, manager, director, vp, cxo");
    expect_invalid("{\"id\":\"1\"}", &t_lead, "missing required field 'email'");
    expect_invalid("{\"id\":\"1\",\"email\":null}", &t_lead, "email: expected string, got null");
    expect_invalid("{\"id\":\"1\",\"email\":7}", &t_lead, "email: expected string, got number");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":0,\"tags\":[\"a\",\"b\",7],"
                   "\"active\":true}", &t_enriched, "tags[2]: expected string, got number");
    expect_invalid("{\"id\":\"1\",\"email\":\"e\",\"job_tilte\":\"x\"}", &t_lead,
                   "unknown field 'job_tilte' (did you mean 'job_title'?)");
    expect_invalid("{\"id\":\"1\",\"email\":\"e\",\"color\":\"x\"}", &t_lead,
                   "unknown field 'color'");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":0,\"tags\":[],\"employees\":2.5,"
                   "\"active\":true}", &t_enriched, "employees: expected int, got 2.5");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":0,\"tags\":[],\"employees\":1.0,"
                   "\"active\":true}", &t_enriched, "employees: expected int, got 1.0");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":0,\"tags\":[],\"employees\":9,"
                   "\"active\":true}", &t_enriched, "employees: 9 is out of range 1..5");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":\"high\",\"tags\":[],\"active\":true}",
                   &t_enriched, "intent_score: expected float, got string");
    expect_invalid("{" GOOD_ENRICHED "\"intent_score\":0,\"tags\":[],\"active\":1}",
                   &t_enriched, "active: expected bool, got number");
    expect_invalid("{\"lead_id\":\"L1\",\"first_name\":\"\",\"seniority\":\"vp\","
                   "\"intent_score\":0,\"tags\":[],\"active\":true}", &t_enriched,
                   "first_name: 0 characters, at least 1");
    expect_invalid("{\"lead_id\":\"L1\",\"first_name\":\"abcdefghijklm\",\"seniority\":\"vp\","
                   "\"intent_score\":0,\"tags\":[],\"active\":true}", &t_enriched,
                   "first_name: 13 characters, at most 12");
    /* twelve two-byte characters: 24 bytes, 12 code points */
    expect_valid("{\"lead_id\":\"L1\",\"first_name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                 "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\",\"seniority\":\"vp\","
                 "\"intent_score\":0,\"tags\":[],\"active\":true}", &t_enriched);
    expect_invalid("{\"lead_id\":\"L1\",\"first_name\":\"Ada\",\"seniority\":3,"
                   "\"intent_score\":0,\"tags\":[],\"active\":true}", &t_enriched,
                   "seniority: expected Seniority, got number");
    expect_invalid("[1]", &t_lead, "expected Lead, got list");
    expect_invalid("{\"name\":\"a\",\"contacts\":[{\"id\":\"1\",\"email\":\"e\"},{\"id\":\"2\","
                   "\"email\":false}],\"score\":1}", &t_account,
                   "contacts[1].email: expected string, got bool");
    expect_invalid("{\"name\":\"a\",\"contacts\":[{\"id\":\"1\",\"email\":\"e\"},{\"id\":\"2\"}],"
                   "\"score\":1}", &t_account, "contacts[1]: missing required field 'email'");
    expect_invalid("{\"name\":\"a\",\"contacts\":[{\"id\":\"1\",\"email\":\"e\"}],\"score\":1}",
                   &t_account, "contacts: 1 item, at least 2");
    expect_invalid("{\"name\":\"a\",\"contacts\":\"none\",\"score\":1}", &t_account,
                   "contacts: expected list<Lead>, got string");
    expect_invalid("{\"nmae\":\"a\",\"contacts\":[],\"score\":1}", &t_account,
                   "unknown field 'nmae' (did you mean 'name'?)");
    expect_valid("null", &t_opt_int);
    expect_invalid("\"x\"", &t_opt_int, "expected int, got string");
    fr_buf err = { 0 };
    CHECK(!fr_validate(NULL, &t_lead, &err) && streq(err.s, "no value"), "NULL value");
    fr_buf_free(&err);
    json_t *v = parse("{\"id\":3}");
    CHECK(!fr_validate(v, &t_lead, NULL), "NULL err buffer");
    json_decref(v);
}

/* ---- JSONL ---------------------------------------------------------------- */

static void expect_read_error(fr_ctx *cx, const char *path, fr_sig sig, const char *want)
{
    json_t *v = fr_read_jsonl(cx, fr_str(cx, path), &t_lead, "t.flow:2:3");
    CHECK(v == NULL && cx->sig == sig && streq(cx->err, want) &&
          streq(cx->err_where, "t.flow:2:3"),
          "read_jsonl %s: want sig %d \"%s\", got sig %d \"%s\"", path, sig, want, cx->sig,
          orz(cx->err));
    fr_sig_clear(cx);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    fr_buf b = { 0 };
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fr_buf_put(&b, chunk, n);
    fclose(f);
    if (!b.s)
        fr_buf_puts(&b, "");
    return b.s;
}

static void test_read_jsonl(fr_ctx *cx)
{
    json_t *xs = fr_read_jsonl(cx, fr_str(cx, "tests/data/rt_leads.jsonl"), &t_lead, NULL);
    CHECK(xs && fr_count(xs) == 3, "read rt_leads: %s", orz(cx->err));
    char *s = xs ? fr_to_json(xs, NULL) : NULL;
    CHECK(streq(s, "[{\"id\":\"1\",\"email\":\"a@x.io\",\"company_domain\":\"x.io\"},"
                   "{\"id\":\"2\",\"email\":\"b@y.io\"},{\"id\":\"3\",\"email\":\"c@z.io\","
                   "\"job_title\":\"CTO\"}]"), "read in schema order: %s", orz(s));
    fr_free(s);
    fr_sig_clear(cx);
    expect_read_error(cx, "tests/data/rt_bad_type.jsonl", FR_SIG_USAGE,
                      "tests/data/rt_bad_type.jsonl:4: email: expected string, got number");
    expect_read_error(cx, "tests/data/rt_bad_json.jsonl", FR_SIG_USAGE,
                      "tests/data/rt_bad_json.jsonl:2: invalid JSON: '}' expected near "
                      "end of file at column 26");
    expect_read_error(cx, "tests/data/rt_bad_field.jsonl", FR_SIG_USAGE,
                      "tests/data/rt_bad_field.jsonl:1: unknown field 'emial' "
                      "(did you mean 'email'?); missing required field 'email'");
    expect_read_error(cx, "tests/data/rt_no_such_file.jsonl", FR_SIG_USAGE,
                      "cannot open 'tests/data/rt_no_such_file.jsonl': No such file or "
                      "directory");
    expect_read_error(cx, "tests/data", FR_SIG_USAGE,
                      "cannot read 'tests/data': Is a directory");
}

static void test_big_jsonl(fr_ctx *cx, const char *tmp)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt_big.jsonl", tmp);
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(f != NULL, "cannot create %s", path);
        return;
    }
    for (int i = 0; i < 100000; i++)
        fprintf(f, "{\"email\":\"u%d@example.com\",\"id\":\"%d\",\"job_title\":null}\n", i, i);
    fclose(f);
    size_t m = fr_mark(cx);
    json_t *xs = fr_read_jsonl(cx, fr_str(cx, path), &t_lead, NULL);
    CHECK(xs && fr_count(xs) == 100000, "100,000 lines: %s", orz(cx->err));
    json_t *last = fr_at(xs, 99999);
    CHECK(streq(json_string_value(fr_get(last, "id")), "99999"), "last line");
    char out[600];
    snprintf(out, sizeof out, "%s/rt_big.out.jsonl", tmp);
    CHECK(fr_write_jsonl(cx, xs, fr_str(cx, out), &t_lead, NULL), "write 100,000 lines");
    json_t *again = fr_read_jsonl(cx, fr_str(cx, out), &t_lead, NULL);
    CHECK(again && fr_equal(xs, again), "write then read gives the same values");
    fr_release(cx, m);
    fr_sig_clear(cx);
    unlink(path);
    unlink(out);
}

/* read_jsonl<string>: lines that are not records. */
static void test_scalar_jsonl(fr_ctx *cx, const char *tmp)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt_strings.jsonl", tmp);
    FILE *f = fopen(path, "w");
    if (!f) {
        CHECK(f != NULL, "cannot create %s", path);
        return;
    }
    fputs("\"a\"\n\"b\"", f);                 /* no newline at the end */
    fclose(f);
    json_t *xs = fr_read_jsonl(cx, fr_str(cx, path), &fr_type_string, NULL);
    CHECK(xs && fr_count(xs) == 2 && streq(json_string_value(fr_at(xs, 1)), "b"),
          "read_jsonl<string>: %s", orz(cx->err));
    f = fopen(path, "a");
    fputs("\n5\n", f);
    fclose(f);
    xs = fr_read_jsonl(cx, fr_str(cx, path), &fr_type_string, NULL);
    char want[600];
    snprintf(want, sizeof want, "%s:3: expected string, got number", path);
    CHECK(!xs && cx->sig == FR_SIG_USAGE && streq(cx->err, want), "read_jsonl<string>: %s",
          orz(cx->err));
    fr_sig_clear(cx);
    unlink(path);
}

/* Mutated lines (bytes flipped, cut short, junk inserted): each read gives
 * a valid record or a usage error that names the file and line. */
static void test_jsonl_mutations(fr_ctx *cx, const char *tmp)
{
    static const char seed[] = "{\"id\":\"7\",\"email\":\"a\\u00e9@x.io\",\"job_title\":null}";
    static const char junk[] = "{}[]\",:\\ nul0.5e-\xc3\xa9\xff\x01";
    char path[512], prefix[600], line[256];
    snprintf(path, sizeof path, "%s/rt_mut.jsonl", tmp);
    snprintf(prefix, sizeof prefix, "%s:1: ", path);
    uint64_t r = 88172645463325252ULL;
    int good = 0;
    for (int i = 0; i < 3000; i++) {
        size_t n = strlen(seed);
        memcpy(line, seed, n + 1);
        for (int k = 0; k < 1 + i % 3 && n > 0; k++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            size_t at = r % n;
            if (r % 5 == 0)
                n = at;
            else
                line[at] = junk[(r >> 20) % (sizeof junk - 1)];
        }
        line[n] = '\0';
        FILE *f = fopen(path, "w");
        if (!f)
            break;
        fprintf(f, "%s\n", line);
        fclose(f);
        json_t *xs = fr_read_jsonl(cx, fr_str(cx, path), &t_lead, NULL);
        if (xs) {
            good++;
            CHECK(fr_count(xs) <= 1 && (fr_count(xs) == 0 ||
                  fr_validate(fr_at(xs, 0), &t_lead, NULL)), "mutant read as %s", line);
        } else {
            CHECK(cx->sig == FR_SIG_USAGE && cx->err &&
                  strncmp(cx->err, prefix, strlen(prefix)) == 0,
                  "mutant %s: sig %d %s", line, cx->sig, orz(cx->err));
        }
        fr_sig_clear(cx);
    }
    CHECK(good > 0 && good < 3000, "mutants read: %d of 3000", good);
    unlink(path);
}

static void test_write_jsonl(fr_ctx *cx, const char *tmp)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt_out.jsonl", tmp);
    json_t *xs = fr_keep(cx, parse("[{\"job_title\":\"cto\",\"email\":\"e\",\"id\":\"1\"},"
                                   "{\"email\":\"f\",\"id\":\"2\",\"company_domain\":null}]"));
    CHECK(fr_write_jsonl(cx, xs, fr_str(cx, path), &t_lead, NULL), "write: %s", orz(cx->err));
    char *s = slurp(path);
    CHECK(streq(s, "{\"id\":\"1\",\"email\":\"e\",\"job_title\":\"cto\"}\n"
                   "{\"id\":\"2\",\"email\":\"f\"}\n"), "written: %s", orz(s));
    fr_free(s);
    CHECK(fr_write_jsonl(cx, fr_list(cx), fr_str(cx, path), &t_lead, NULL), "write empty");
    s = slurp(path);
    CHECK(streq(s, ""), "empty list, empty file: %s", orz(s));
    fr_free(s);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp >/dev/null", tmp);
    CHECK(system(cmd) != 0, "no temporary file left in %s", tmp);
    snprintf(path, sizeof path, "%s/no/such/dir/out.jsonl", tmp);
    bool ok = fr_write_jsonl(cx, xs, fr_str(cx, path), &t_lead, "t.flow:9:1");
    char want[700];
    snprintf(want, sizeof want, "cannot write '%s': No such file or directory", path);
    CHECK(!ok && cx->sig == FR_SIG_FAIL && streq(cx->err, want) &&
          streq(cx->err_where, "t.flow:9:1"), "write error: %s", orz(cx->err));
    fr_sig_clear(cx);
    unlink(path);
    snprintf(path, sizeof path, "%s/rt_out.jsonl", tmp);
    unlink(path);
}

static void test_env(fr_ctx *cx)
{
    setenv("RT_VALUES_ENV", "hello", 1);
    unsetenv("RT_VALUES_UNSET");
    CHECK(streq(json_string_value(fr_env(cx, fr_str(cx, "RT_VALUES_ENV"))), "hello"), "env");
    CHECK(json_is_null(fr_env(cx, fr_str(cx, "RT_VALUES_UNSET"))), "env unset is null");
    setenv("RT_VALUES_ENV", "\xff", 1);
    CHECK(fr_env(cx, fr_str(cx, "RT_VALUES_ENV")) == NULL && cx->sig == FR_SIG_FAIL,
          "env invalid UTF-8");
    fr_sig_clear(cx);
}

/* ---- the mock ------------------------------------------------------------- */

static const fr_model mock_model = { .name = "m", .provider = "mock", .api_name = "mock-1",
                                     .usd_per_mtok_in = 1.0, .usd_per_mtok_out = 5.0 };
static const fr_agent enrich_agent = {
    .name = "enrich", .model = &mock_model, .output = &t_enriched, .timeout_ms = 0,
};
static const fr_agent account_agent = {
    .name = "accounts", .model = &mock_model, .output = &t_account,
};
static const fr_type t_list_enriched = { FR_LIST, &t_enriched, NULL, NULL };
static const fr_agent list_agent = {
    .name = "many", .model = &mock_model, .output = &t_list_enriched,
};

static fr_request mock_req(const fr_agent *a, const char *prompt, int attempt)
{
    fr_request q = { .agent = a, .model = a->model, .system = "sys", .prompt = prompt,
                     .attempt = attempt };
    return q;
}

static void test_mock_answers(void)
{
    fr_mock_opts o = { 0, 0, NULL };
    int nulls = 0, seen[5] = { 0 }, bools = 0, ntags[6] = { 0 };
    char prompt[64];
    for (int i = 0; i < 10000; i++) {
        snprintf(prompt, sizeof prompt, "lead number %d", i);
        fr_request q = mock_req(i % 2 ? &enrich_agent : &account_agent, prompt, 0);
        fr_response r;
        fr_mock_call(&o, &q, &r);
        fr_buf err = { 0 };
        bool ok = r.outcome == FR_ANSWER && fr_validate(r.output, q.agent->output, &err);
        CHECK(ok, "mock answer %d invalid: %s: %s", i, orz(err.s), orz(r.raw));
        fr_buf_free(&err);
        if (ok && i % 2) {
            json_t *e = json_object_get(r.output, "employees");
            nulls += e == NULL;
            seen[fr_enum_index(&seniority, json_object_get(r.output, "seniority"))]++;
            bools += json_is_true(json_object_get(r.output, "active"));
            ntags[json_array_size(json_object_get(r.output, "tags"))]++;
            size_t fn = json_string_length(json_object_get(r.output, "first_name"));
            CHECK(fn >= 1 && fn <= 12, "first_name length %zu", fn);
        }
        fr_response_free(&r);
    }
    CHECK(nulls > 5000 * 15 / 100 && nulls < 5000 * 35 / 100, "optional null %d of 5000", nulls);
    for (int k = 0; k < 5; k++)
        CHECK(seen[k] > 500, "enum value %d picked %d times", k, seen[k]);
    CHECK(bools > 2000 && bools < 3000, "true %d of 5000", bools);
    CHECK(ntags[0] > 0 && ntags[3] > 0 && ntags[4] == 0 && ntags[5] == 0,
          "tags lengths 0..3: %d %d %d %d %d", ntags[0], ntags[1], ntags[2], ntags[3], ntags[4]);
}

static void test_mock_determinism(void)
{
    fr_mock_opts o = { 0, 0, NULL };
    fr_request q = mock_req(&list_agent, "the same prompt", 0);
    fr_response a, b, c;
    fr_mock_call(&o, &q, &a);
    q.attempt = 2;
    fr_mock_call(&o, &q, &b);
    q.prompt = "another prompt";
    fr_mock_call(&o, &q, &c);
    CHECK(a.outcome == FR_ANSWER && streq(a.raw, b.raw), "same prompt, same answer");
    CHECK(!streq(a.raw, c.raw), "another prompt, another answer: %s", orz(a.raw));
    char *s = fr_to_json(a.output, &t_list_enriched);
    CHECK(streq(s, a.raw), "raw is the answer in schema order");
    fr_free(s);
    CHECK(streq(a.finish_reason, "end_turn") && a.http_status == 0 && a.error == NULL,
          "finish_reason");
    CHECK(a.input_tokens == (int64_t)((strlen("sys") + strlen("the same prompt") + 3) / 4) + 50,
          "input tokens %lld", (long long)a.input_tokens);
    CHECK(a.output_tokens == (int64_t)((strlen(a.raw) + 3) / 4), "output tokens %lld",
          (long long)a.output_tokens);
    fr_response_free(&a);
    fr_response_free(&b);
    fr_response_free(&c);
    CHECK(a.output == NULL && a.raw == NULL, "response_free clears");
}

static void test_mock_failures(void)
{
    fr_mock_opts o = { 0, 1.0, NULL };
    fr_request q = mock_req(&enrich_agent, "p", 0);
    fr_response r;
    fr_mock_call(&o, &q, &r);
    CHECK(r.outcome == FR_TRANSIENT && r.http_status == 503 && streq(r.error, "mock failure (503)")
          && r.output == NULL, "fail rate 1: %s", orz(r.error));
    fr_response_free(&r);
    o.fail_rate = 0.5;
    int failed = 0, succeeded_after_failure = 0;
    for (int i = 0; i < 1000; i++) {
        char p[32];
        snprintf(p, sizeof p, "p%d", i);
        q.prompt = p;
        bool prev_failed = false;
        for (q.attempt = 0; q.attempt < 4; q.attempt++) {
            fr_mock_call(&o, &q, &r);
            failed += r.outcome == FR_TRANSIENT;
            succeeded_after_failure += prev_failed && r.outcome == FR_ANSWER;
            prev_failed = r.outcome == FR_TRANSIENT;
            fr_response_free(&r);
        }
    }
    CHECK(failed > 1600 && failed < 2400, "fail rate 0.5: %d of 4000 failed", failed);
    CHECK(succeeded_after_failure > 100, "a retry can succeed: %d", succeeded_after_failure);

    o = (fr_mock_opts){ 30, 0, NULL };
    q = mock_req(&enrich_agent, "p", 0);
    q.timeout_ms = 5;
    fr_mock_call(&o, &q, &r);
    CHECK(r.outcome == FR_TRANSIENT && streq(r.error, "timed out after 5 ms"), "timeout: %s",
          orz(r.error));
    fr_response_free(&r);
    q.timeout_ms = 1000;
    o.latency_ms = 1;
    fr_mock_call(&o, &q, &r);
    CHECK(r.outcome == FR_ANSWER, "latency within the timeout");
    fr_response_free(&r);

    setenv("FLOWRT_MOCK_BAD_RATE", "1", 1);
    o.latency_ms = 0;
    fr_mock_call(&o, &q, &r);
    fr_buf err = { 0 };
    CHECK(r.outcome == FR_ANSWER && !fr_validate(r.output, &t_enriched, &err) &&
          streq(err.s, "lead_id: expected string, got number"), "bad answer: %s", orz(err.s));
    fr_buf_free(&err);
    fr_response_free(&r);
    setenv("FLOWRT_MOCK_BAD_RATE", "0.5", 1);
    int bad = 0;
    for (q.attempt = 0; q.attempt < 200; q.attempt++) {
        fr_mock_call(&o, &q, &r);
        bad += !fr_validate(r.output, &t_enriched, NULL);
        fr_response_free(&r);
    }
    CHECK(bad > 60 && bad < 140, "bad rate 0.5: %d of 200", bad);
    unsetenv("FLOWRT_MOCK_BAD_RATE");
}

/* ---- allocation failures -------------------------------------------------- */

typedef bool (*op_fn)(fr_ctx *cx, void *arg);

/* Makes the 1st, 2nd, ... allocation of op fail until op needs no more;
 * every failing run must report an error, and the run after them succeed. */
static void oom_loop(const char *name, op_fn op, void *arg, int min_allocs)
{
    int n;
    for (n = 1; n < 100000; n++) {
        fr_ctx cx = { 0 };
        fr_alloc_fail_after(n);
        bool ok = op(&cx, arg);
        bool hit = fr_alloc_countdown() == 0;
        fr_alloc_fail_after(0);
        if (!hit) {
            CHECK(ok, "%s: fails with no allocation failure: %s", name, orz(cx.err));
            fr_sig_clear(&cx);
            fr_pool_free(&cx);
            break;
        }
        CHECK(!ok, "%s: allocation %d failed but the operation succeeded", name, n);
        fr_sig_clear(&cx);
        fr_pool_free(&cx);
    }
    CHECK(n > min_allocs, "%s: only %d allocations", name, n - 1);
}

static bool op_read(fr_ctx *cx, void *arg)
{
    json_t *xs = fr_read_jsonl(cx, fr_str(cx, "tests/data/rt_leads.jsonl"), &t_lead, NULL);
    if (!xs && cx->sig == FR_SIG_FAIL && !streq(cx->err, "out of memory"))
        fprintf(stderr, "rt_values: read_jsonl under OOM said %s\n", orz(cx->err));
    return xs && fr_count(xs) == 3 && cx->sig == FR_OK;
}

static bool op_read_bad(fr_ctx *cx, void *arg)
{
    json_t *xs = fr_read_jsonl(cx, fr_str(cx, "tests/data/rt_bad_type.jsonl"), &t_lead, NULL);
    /* success here means: the expected usage error, with its message intact */
    return !xs && cx->sig == FR_SIG_USAGE &&
           streq(cx->err, "tests/data/rt_bad_type.jsonl:4: email: expected string, got number");
}

static bool op_validate(fr_ctx *cx, void *arg)
{
    fr_buf err = { 0 };
    bool ok = !fr_validate(arg, &t_account, &err) && !fr_buf_failed(&err) &&
              streq(err.s, "contacts[1]: unknown field 'mail' (did you mean 'email'?)");
    fr_buf_free(&err);
    return ok;
}

static bool op_to_json(fr_ctx *cx, void *arg)
{
    char *s = fr_to_json(arg, &t_account);
    bool ok = s && strncmp(s, "{\"name\":", 8) == 0;
    fr_free(s);
    return ok;
}

static bool op_normalize(fr_ctx *cx, void *arg)
{
    json_t *n = fr_normalize(arg, &t_account);
    bool ok = n && json_object_size(n) == 3;
    json_decref(n);
    return ok;
}

static bool op_mock(fr_ctx *cx, void *arg)
{
    fr_mock_opts o = { 0, 0, NULL };
    fr_request q = mock_req(&list_agent, "oom", 0);
    fr_response r;
    fr_mock_call(&o, &q, &r);
    bool ok = r.outcome == FR_ANSWER;
    if (!ok)
        ok = !(r.outcome == FR_FATAL && r.output == NULL);  /* only FATAL is right */
    fr_response_free(&r);
    return ok;
}

static bool op_values(fr_ctx *cx, void *arg)
{
    json_t *s = fr_add(cx, fr_str(cx, "abc"), fr_str(cx, "def"));
    json_t *l = fr_list(cx);
    for (int i = 0; s && l && i < 200; i++)
        fr_keep(cx, json_integer(i));
    json_t *v = fr_div(cx, fr_int(cx, 10), fr_int(cx, 3), NULL);
    return s && l && v && cx->sig == FR_OK && cx->npool == 207;
}

/* Eight threads allocate at once: the armed failure happens exactly once. */
static void *alloc_worker(void *arg)
{
    long *nulls = arg;
    for (int i = 0; i < 20000; i++) {
        void *p = i % 2 ? fr_malloc(16) : fr_calloc(2, 8);
        *nulls += p == NULL;
        fr_free(p);
    }
    return NULL;
}

static void test_alloc_threads(void)
{
    pthread_t t[8];
    long nulls[8] = { 0 }, total = 0;
    fr_alloc_fail_after(100000);
    for (int i = 0; i < 8; i++)
        pthread_create(&t[i], NULL, alloc_worker, &nulls[i]);
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        total += nulls[i];
    }
    CHECK(total == 1 && fr_alloc_countdown() == 0, "threads: %ld failures, countdown %ld", total,
          fr_alloc_countdown());
    fr_alloc_fail_after(0);
}

static void test_oom(void)
{
    json_t *acct = parse("{\"name\":\"acme\",\"contacts\":[{\"email\":\"e\",\"id\":\"1\","
                         "\"job_title\":null},{\"id\":\"2\",\"mail\":\"f\"}],\"score\":2}");
    oom_loop("read_jsonl", op_read, NULL, 10);
    oom_loop("read_jsonl (bad line)", op_read_bad, NULL, 10);
    oom_loop("validate", op_validate, acct, 1);
    oom_loop("to_json", op_to_json, acct, 1);
    oom_loop("normalize", op_normalize, acct, 5);
    oom_loop("mock", op_mock, NULL, 5);
    oom_loop("values", op_values, NULL, 200);
    json_decref(acct);

    fr_buf b = { 0 };
    fr_alloc_fail_after(1);
    fr_buf_puts(&b, "lost");
    fr_alloc_fail_after(0);
    CHECK(fr_buf_failed(&b) && b.s && b.s[0] == '\0', "a buffer's first allocation fails");
    fr_buf_puts(&b, "ignored");
    CHECK(b.len == 0, "a failed buffer ignores writes");
    fr_buf_free(&b);
    CHECK(!fr_buf_failed(&b) && b.s == NULL, "freed buffer is fresh");
}

/* put_real as it was: the shortest of %.15g..%.17g that reads back. */
static void ref_real(char *s, size_t cap, double d)
{
    if (!isfinite(d)) {
        snprintf(s, cap, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(s, cap, "%.*g", prec, d);
        if (strtod(s, NULL) == d)
            break;
    }
    if (!strpbrk(s, ".eE"))
        strcat(s, ".0");
}

/* Floats are written without printf where that can be told apart: the
 * text must be printf's, byte for byte, over every kind of value (fixed
 * seed). */
static void test_real_text(void)
{
    unsigned long long st = 0x9e3779b97f4a7c15ull;
    int bad = 0;
    for (int i = 0; i < 120000; i++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        double d;
        switch (i % 7) {
        case 0: {                  /* any bits (NaN, inf, subnormal included) */
            memcpy(&d, &st, sizeof d);
            break;
        }
        case 1: d = (double)(st % 10000) / 100; break;         /* two decimals */
        case 2: d = (double)(st % 5000) * 0.1 / 1e6 + (double)(st >> 40 & 1023) * 0.4 / 1e6;
            break;                                             /* prices */
        case 3: d = ldexp((double)(st >> 11), -53) * pow(10, (int)(st % 25) - 12); break;
        case 4: d = (double)(st % 100000) / pow(10, (int)(st >> 50 & 15)); break;
        case 5: d = -ldexp((double)(st >> 11), (int)(st % 80) - 90); break;
        default: d = ldexp(st & 1 ? 1.0 : 1.0 - 0x1p-53, (int)(st % 70) - 35) *
                     (st & 2 ? 1 : -1);          /* at and below powers of two */
            break;
        }
        char want[64];
        ref_real(want, sizeof want, d);
        fr_buf b = { 0 };
        fr_buf_json_real(&b, d);
        if (strcmp(b.s ? b.s : "", want) != 0 && bad++ < 5)
            CHECK(false, "%.17g: %s, printf: %s", d, b.s ? b.s : "", want);
        fr_buf_free(&b);
    }
    double edge[] = { 0.0, -0.0, 1.0, 10.0, 1e10, 9999999999.5, 1e-10, 0.0001, 0.00009999,
                      0.1, 0.5, 123456789012345.0, 1e15, 0.30000000000000004, 5e-324 };
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        char want[64];
        ref_real(want, sizeof want, edge[i]);
        fr_buf b = { 0 };
        fr_buf_json_real(&b, edge[i]);
        CHECK(strcmp(b.s ? b.s : "", want) == 0, "%.17g: %s, printf: %s", edge[i],
              b.s ? b.s : "", want);
        fr_buf_free(&b);
    }
    CHECK(bad == 0, "%d of 120000 floats written unlike printf", bad);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: rt_values TOP [TMPDIR]\n");
        return 2;
    }
    const char *tmp = argc > 2 ? argv[2] : "/tmp";
    fr_ctx cx = { 0 };
    test_pool();
    test_access(&cx);
    test_equal_compare(&cx);
    test_arith(&cx);
    test_to_json(&cx);
    test_real_text();
    test_normalize(&cx);
    test_validate();
    test_read_jsonl(&cx);
    test_big_jsonl(&cx, tmp);
    test_scalar_jsonl(&cx, tmp);
    test_jsonl_mutations(&cx, tmp);
    test_write_jsonl(&cx, tmp);
    test_env(&cx);
    test_mock_answers();
    test_mock_determinism();
    test_mock_failures();
    test_oom();
    test_alloc_threads();
    fr_sig_clear(&cx);
    fr_pool_free(&cx);
    printf("rt_values: %d checks, %d failed\n", nchecks, nfailed);
    return nfailed ? 1 : 0;
}
