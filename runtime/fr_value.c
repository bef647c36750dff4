/*
 * fr_value.c: values for generated code.  A value is a jansson json_t; this
 * file holds the context's pool that keeps temporaries alive, constructors,
 * field and list access, the operators, text buffers, and the JSON writer
 * that prints records with their keys in schema order.
 *
 * The pool is a growing array of references per context: fr_keep pushes,
 * fr_release pops back to a mark and decrefs.  Singletons (null, true,
 * false) are never pushed, so a loop of comparisons costs nothing.
 *
 * Arithmetic: int op int stays int; an int overflow is a runtime error
 * ("integer overflow"), never a silent switch to float, because the checker
 * has already typed the result as int.  A float result that is not finite is
 * an error too (JSON cannot hold it).  Division truncates toward zero for
 * ints; dividing by zero is an error for ints and floats alike.
 *
 * Allocation failures come back as NULL with FR_SIG_FAIL "out of memory";
 * an fr_buf that fails keeps its text and remembers it (fr_buf_failed).
 */
#include "fr_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const fr_type fr_type_string = { FR_STRING, NULL, NULL, NULL };
const fr_type fr_type_int = { FR_INT, NULL, NULL, NULL };
const fr_type fr_type_float = { FR_FLOAT, NULL, NULL, NULL };
const fr_type fr_type_bool = { FR_BOOL, NULL, NULL, NULL };

/* ---- signals ------------------------------------------------------------- */

/* A malloc'd vsnprintf, NULL when out of memory. */
static char *vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *s = fr_malloc((size_t)n + 1);
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

static void *set_sig(fr_ctx *cx, fr_sig sig, const char *where, char *msg)
{
    if (!msg)
        msg = fr_strdup("out of memory");
    fr_free(cx->err);
    cx->err = msg;
    cx->err_where = where;
    cx->sig = sig;
    return NULL;
}

void *fr_fail(fr_ctx *cx, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return set_sig(cx, FR_SIG_FAIL, where, msg);
}

void *fr_usage(fr_ctx *cx, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    return set_sig(cx, FR_SIG_USAGE, where, msg);
}

void *fr_oom(fr_ctx *cx)
{
    if (cx->sig == FR_OK)
        set_sig(cx, FR_SIG_FAIL, NULL, fr_strdup("out of memory"));
    return NULL;
}

void *fr_skip(fr_ctx *cx)
{
    cx->sig = FR_SIG_SKIP;
    return NULL;
}

void fr_sig_clear(fr_ctx *cx)
{
    fr_free(cx->err);
    cx->err = NULL;
    cx->err_where = NULL;
    cx->sig = FR_OK;
}

/* ---- the pool ------------------------------------------------------------ */

static bool pool_grow(fr_ctx *cx)
{
    size_t cap = cx->cap ? cx->cap * 2 : 64;
    json_t **p = fr_realloc(cx->pool, cap * sizeof *p);
    if (!p)
        return false;
    cx->pool = p;
    cx->cap = cap;
    return true;
}

/* jansson's null, true and false have a refcount of (size_t)-1.  Other
 * threads may be changing v's count (jansson uses atomics), so load it
 * atomically too. */
static bool is_singleton(json_t *v)
{
    return __atomic_load_n(&v->refcount, __ATOMIC_RELAXED) == (size_t)-1;
}

json_t *fr_keep(fr_ctx *cx, json_t *v)
{
    if (!v)
        return fr_oom(cx);
    if (is_singleton(v))
        return v;
    if (cx->npool == cx->cap && !pool_grow(cx)) {
        json_decref(v);
        return fr_oom(cx);
    }
    cx->pool[cx->npool++] = v;
    return v;
}

size_t fr_mark(fr_ctx *cx)
{
    return cx->npool;
}

void fr_release(fr_ctx *cx, size_t mark)
{
    while (cx->npool > mark)
        json_decref(cx->pool[--cx->npool]);
}

json_t *fr_escape(fr_ctx *cx, size_t mark, json_t *v)
{
    if (!v) {
        fr_release(cx, mark);
        return NULL;
    }
    json_incref(v);
    fr_release(cx, mark);
    return fr_keep(cx, v);
}

void fr_pool_free(fr_ctx *cx)
{
    fr_release(cx, 0);
    fr_free(cx->pool);
    cx->pool = NULL;
    cx->cap = 0;
}

void fr_assign(json_t **slot, json_t *v)
{
    json_t *old = *slot;
    *slot = json_incref(v);
    json_decref(old);
}

void fr_drop(json_t **slot)
{
    json_decref(*slot);
    *slot = NULL;
}

/* ---- constructors and access --------------------------------------------- */

json_t *fr_int(fr_ctx *cx, int64_t i)
{
    return fr_keep(cx, json_integer((json_int_t)i));
}

json_t *fr_float(fr_ctx *cx, double d)
{
    return fr_keep(cx, json_real(d));
}

json_t *fr_str(fr_ctx *cx, const char *s)
{
    return fr_strn(cx, s, strlen(s));
}

json_t *fr_strn(fr_ctx *cx, const char *s, size_t n)
{
    if (!fr_utf8_valid(s, n))
        return fr_fail(cx, NULL, "string is not valid UTF-8");
    return fr_keep(cx, json_stringn_nocheck(s, n));
}

json_t *fr_bool(bool b)
{
    return json_boolean(b);
}

json_t *fr_null(void)
{
    return json_null();
}

json_t *fr_list(fr_ctx *cx)
{
    return fr_keep(cx, json_array());
}

void fr_list_push(json_t *list, json_t *v)
{
    if (list && v)
        json_array_append(list, v);
}

json_t *fr_record(fr_ctx *cx)
{
    return fr_keep(cx, json_object());
}

void fr_record_set(json_t *rec, const char *field, json_t *v)
{
    if (!rec)
        return;
    if (!v || json_is_null(v))
        json_object_del(rec, field);
    else
        json_object_set(rec, field, v);
}

json_t *fr_get(json_t *rec, const char *field)
{
    json_t *v = rec ? json_object_get(rec, field) : NULL;
    return v ? v : json_null();
}

size_t fr_count(json_t *list)
{
    return json_array_size(list);
}

json_t *fr_at(json_t *list, size_t i)
{
    json_t *v = json_array_get(list, i);
    return v ? v : json_null();
}

json_t *fr_len(fr_ctx *cx, json_t *v)
{
    if (json_is_array(v))
        return fr_int(cx, (int64_t)json_array_size(v));
    if (json_is_string(v))   /* characters, as the `len` constraint counts them */
        return fr_int(cx, (int64_t)fr_utf8_count(json_string_value(v), json_string_length(v)));
    if (json_is_object(v))
        return fr_int(cx, (int64_t)json_object_size(v));
    return fr_int(cx, 0);
}

bool fr_truthy(json_t *v)
{
    return json_is_true(v);
}

bool fr_is_null(json_t *v)
{
    return !v || json_is_null(v);
}

int fr_enum_index(const fr_enum *e, json_t *v)
{
    const char *s = json_string_value(v);
    if (!s)
        return -1;
    for (int i = 0; i < e->nvalues; i++)
        if (strcmp(e->values[i], s) == 0)
            return i;
    return -1;
}

/* ---- comparison ---------------------------------------------------------- */

static double num(json_t *v)
{
    return json_number_value(v);
}

static int cmp_strings(json_t *a, json_t *b)
{
    size_t la = json_string_length(a), lb = json_string_length(b);
    int c = memcmp(json_string_value(a), json_string_value(b), la < lb ? la : lb);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return la < lb ? -1 : la > lb;
}

static bool equal_lists(json_t *a, json_t *b)
{
    size_t n = json_array_size(a);
    if (n != json_array_size(b))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!fr_equal(json_array_get(a, i), json_array_get(b, i)))
            return false;
    return true;
}

/* Every non-null field of a is in b with an equal value. */
static bool fields_within(json_t *a, json_t *b)
{
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) {
        if (!json_is_null(v) && !fr_equal(v, fr_get(b, k)))
            return false;
    }
    return true;
}

/* ==: numbers by value (1 == 1.0), records with null fields as absent. */
bool fr_equal(json_t *a, json_t *b)
{
    if (fr_is_null(a) || fr_is_null(b))
        return fr_is_null(a) && fr_is_null(b);
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    if (json_is_number(a) && json_is_number(b))
        return num(a) == num(b);
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
    case JSON_STRING: return cmp_strings(a, b) == 0;
    case JSON_ARRAY: return equal_lists(a, b);
    case JSON_OBJECT: return fields_within(a, b) && fields_within(b, a);
    default: return true;                      /* true, false */
    }
}

/* <, <=, >, >=: numbers by value, strings bytewise, false < true. */
int fr_compare(json_t *a, json_t *b)
{
    if (json_is_integer(a) && json_is_integer(b)) {
        json_int_t x = json_integer_value(a), y = json_integer_value(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_number(a) && json_is_number(b)) {
        double x = num(a), y = num(b);
        return x < y ? -1 : x > y;
    }
    if (json_is_string(a) && json_is_string(b))
        return cmp_strings(a, b);
    if (json_is_boolean(a) && json_is_boolean(b))
        return json_is_true(a) - json_is_true(b);
    return 0;
}

/* ---- arithmetic ---------------------------------------------------------- */

static const char *kind_name(json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT: return "record";
    case JSON_ARRAY: return "list";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_TRUE: case JSON_FALSE: return "bool";
    default: return "null";
    }
}

static bool both_ints(json_t *a, json_t *b)
{
    return json_is_integer(a) && json_is_integer(b);
}

static bool both_numbers(json_t *a, json_t *b)
{
    return json_is_number(a) && json_is_number(b);
}

static json_t *float_result(fr_ctx *cx, double d, const char *where)
{
    if (!isfinite(d))
        return fr_fail(cx, where, "float overflow");
    return fr_float(cx, d);
}

static json_t *concat_strings(fr_ctx *cx, json_t *a, json_t *b)
{
    size_t la = json_string_length(a), lb = json_string_length(b);
    char *s = fr_malloc(la + lb + 1);
    if (!s)
        return fr_oom(cx);
    memcpy(s, json_string_value(a), la);
    memcpy(s + la, json_string_value(b), lb);
    s[la + lb] = '\0';
    json_t *v = json_stringn_nocheck(s, la + lb);
    fr_free(s);
    return fr_keep(cx, v);
}

static json_t *concat_lists(fr_ctx *cx, json_t *a, json_t *b)
{
    json_t *v = json_array();
    if (v && (json_array_extend(v, a) || json_array_extend(v, b))) {
        json_decref(v);
        v = NULL;
    }
    return fr_keep(cx, v);
}

json_t *fr_add(fr_ctx *cx, json_t *a, json_t *b)
{
    if (both_ints(a, b)) {
        int64_t r;
        if (__builtin_add_overflow((int64_t)json_integer_value(a),
                                   (int64_t)json_integer_value(b), &r))
            return fr_fail(cx, NULL, "integer overflow in +");
        return fr_int(cx, r);
    }
    if (both_numbers(a, b))
        return float_result(cx, num(a) + num(b), NULL);
    if (json_is_string(a) && json_is_string(b))
        return concat_strings(cx, a, b);
    if (json_is_array(a) && json_is_array(b))
        return concat_lists(cx, a, b);
    return fr_fail(cx, NULL, "cannot add %s and %s", kind_name(a), kind_name(b));
}

json_t *fr_sub(fr_ctx *cx, json_t *a, json_t *b)
{
    if (both_ints(a, b)) {
        int64_t r;
        if (__builtin_sub_overflow((int64_t)json_integer_value(a),
                                   (int64_t)json_integer_value(b), &r))
            return fr_fail(cx, NULL, "integer overflow in -");
        return fr_int(cx, r);
    }
    if (both_numbers(a, b))
        return float_result(cx, num(a) - num(b), NULL);
    return fr_fail(cx, NULL, "cannot subtract %s from %s", kind_name(b), kind_name(a));
}

json_t *fr_mul(fr_ctx *cx, json_t *a, json_t *b)
{
    if (both_ints(a, b)) {
        int64_t r;
        if (__builtin_mul_overflow((int64_t)json_integer_value(a),
                                   (int64_t)json_integer_value(b), &r))
            return fr_fail(cx, NULL, "integer overflow in *");
        return fr_int(cx, r);
    }
    if (both_numbers(a, b))
        return float_result(cx, num(a) * num(b), NULL);
    return fr_fail(cx, NULL, "cannot multiply %s and %s", kind_name(a), kind_name(b));
}

json_t *fr_div(fr_ctx *cx, json_t *a, json_t *b, const char *where)
{
    if (!both_numbers(a, b))
        return fr_fail(cx, where, "cannot divide %s by %s", kind_name(a), kind_name(b));
    if (num(b) == 0)
        return fr_fail(cx, where, "division by zero");
    if (both_ints(a, b)) {
        int64_t x = json_integer_value(a), y = json_integer_value(b);
        if (x == INT64_MIN && y == -1)
            return fr_fail(cx, where, "integer overflow in /");
        return fr_int(cx, x / y);
    }
    return float_result(cx, num(a) / num(b), where);
}

json_t *fr_neg(fr_ctx *cx, json_t *a)
{
    if (json_is_integer(a)) {
        int64_t x = json_integer_value(a);
        if (x == INT64_MIN)
            return fr_fail(cx, NULL, "integer overflow in -");
        return fr_int(cx, -x);
    }
    if (json_is_real(a))
        return fr_float(cx, -json_real_value(a));
    return fr_fail(cx, NULL, "cannot negate %s", kind_name(a));
}

/* ---- text buffers -------------------------------------------------------- */

static char failed_empty[1];       /* s of a buffer whose first allocation failed */

bool fr_buf_failed(const fr_buf *b)
{
    return b->s && b->cap == 0;
}

/* Room for n more bytes and the NUL, or false (the buffer is then failed). */
static bool buf_reserve(fr_buf *b, size_t n)
{
    if (fr_buf_failed(b))
        return false;
    size_t need = b->len + n + 1;
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need && cap <= SIZE_MAX / 2)
        cap *= 2;
    char *s = cap >= need ? fr_realloc(b->s, cap) : NULL;
    if (!s) {
        if (!b->s)
            b->s = failed_empty;
        b->cap = 0;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void fr_buf_put(fr_buf *b, const char *s, size_t n)
{
    if (b->len + n >= b->cap && !buf_reserve(b, n))   /* (a failed buffer's cap is 0) */
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void fr_buf_puts(fr_buf *b, const char *s)
{
    fr_buf_put(b, s, strlen(s));
}

void fr_buf_printf(fr_buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        fr_buf_put(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void fr_buf_free(fr_buf *b)
{
    if (b->s != failed_empty)
        fr_free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

/* ---- the JSON writer ----------------------------------------------------- */

static void put_value(fr_buf *b, json_t *v, const fr_type *t);

static bool must_escape(unsigned char c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

static void put_string(fr_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;                /* start of the bytes not yet written */
    while (run < n && !must_escape((unsigned char)s[run]))
        run++;
    if (!buf_reserve(b, run + 2))  /* most strings: one copy, no escape */
        return;
    b->s[b->len] = '"';
    memcpy(b->s + b->len + 1, s, run);
    b->len += run + 1;
    if (run == n) {
        b->s[b->len++] = '"';
        b->s[b->len] = '\0';
        return;
    }
    for (size_t i = run; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!must_escape(c))
            continue;
        fr_buf_put(b, s + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': fr_buf_put(b, "\\\"", 2); break;
        case '\\': fr_buf_put(b, "\\\\", 2); break;
        case '\n': fr_buf_put(b, "\\n", 2); break;
        case '\r': fr_buf_put(b, "\\r", 2); break;
        case '\t': fr_buf_put(b, "\\t", 2); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            fr_buf_put(b, u, 6);
        }
        }
    }
    fr_buf_put(b, s + run, n - run);
    fr_buf_put(b, "\"", 1);
}

/* Powers of ten, exact in a long double up to 10^27 (5^27 < 2^64). */
static const long double p10[] = {
    1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L, 1e10L, 1e11L, 1e12L, 1e13L,
    1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L,
    1e26L, 1e27L,
};

/* The prec significant digits that %.<prec>g prints for d, as the integer
 * *n, and d's decimal exponent *x, for 15 <= prec <= 17 and 1e-10 <= |d|
 * < 1e10, without printf; false when it cannot tell (printf decides).
 * |d| times 10^k (k <= 26: the power is exact) is rounded once, to within
 * 2^-64 of its value, below 0.006 for 17 digits: the integer nearest it
 * is printf's correctly rounded one unless it lies near a tie. */
static bool fast_digits(double d, int prec, unsigned long long *n, int *x)
{
    long double a = fabs(d);
    if (!(a >= 1e-10L && a < 1e10L))
        return false;
    int e = 0;                     /* 10^e <= a < 10^(e+1), or off by one */
    while (e < 10 && a >= p10[e + 1])
        e++;
    if (a < 1.0L)
        for (e = -1; e > -10 && a * p10[-e] < 1.0L; e--)
            ;
    long double y = a * p10[prec - 1 - e];
    long double fl = floorl(y), fr = y - fl;
    if (fr > 0.49L && fr < 0.51L)
        return false;              /* near a tie */
    *n = (unsigned long long)fl + (fr > 0.5L);
    *x = e;
    /* the exponent was off by one, or the digits rounded up to 10^prec */
    return (long double)*n >= p10[prec - 1] && (long double)*n < p10[prec];
}

/* Whether n * 10^(x - prec + 1) reads back as d: 1 yes, 0 no, -1 cannot
 * tell (strtod decides).  The quotient is off by at most 2^-64 of it; the
 * double nearest it is d when it lies clearly within half an ulp of d. */
static int reads_back(double d, unsigned long long n, int x, int prec)
{
    long double q = (long double)n / p10[prec - 1 - x];
    long double off = fabsl(q - fabsl((long double)d));
    int ex;
    double m = frexp(fabs(d), &ex);
    long double half = ldexpl(1.0L, ex - 54);   /* half an ulp of d */
    if (m == 0.5 && q < fabsl((long double)d))
        half /= 2;                 /* below a power of two the ulp is half as wide */
    if (off < half * 0.999L)
        return 1;
    if (off > half * 1.001L)
        return 0;
    return -1;
}

/* The text %.<prec>g makes of the digits n and exponent x (d's sign). */
static void g_text(char *s, double d, unsigned long long n, int x, int prec)
{
    char dig[24];
    for (int i = prec - 1; i >= 0; i--, n /= 10)
        dig[i] = (char)('0' + n % 10);
    int nd = prec;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;                      /* %g drops trailing zeros */
    char *p = s;
    if (d < 0)
        *p++ = '-';
    if (x < -4 || x >= prec) {     /* d.ddde-XX */
        *p++ = dig[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, dig + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        int e = x < 0 ? -x : x;
        *p++ = 'e';
        *p++ = x < 0 ? '-' : '+';
        *p++ = (char)('0' + e / 10);
        *p++ = (char)('0' + e % 10);
    } else if (x < 0) {            /* 0.000ddd */
        *p++ = '0';
        *p++ = '.';
        for (int i = -1; i > x; i--)
            *p++ = '0';
        memcpy(p, dig, (size_t)nd);
        p += nd;
    } else {                       /* ddd.ddd */
        for (int i = 0; i <= x; i++)
            *p++ = i < nd ? dig[i] : '0';
        if (nd > x + 1) {
            *p++ = '.';
            memcpy(p, dig + x + 1, (size_t)(nd - x - 1));
            p += nd - x - 1;
        }
    }
    *p = '\0';
}

/* The shortest of %.15g..%.17g that reads back as d, always with a '.' or
 * an exponent so that it reads back as a float.  Digits and the read-back
 * test come without printf and strtod where they can be told for sure
 * (printf's digits are correctly rounded, and cost ten times as much):
 * the same text either way. */
static void put_real(fr_buf *b, double d)
{
    char s[40];
    if (!isfinite(d)) {
        fr_buf_puts(b, "null");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        unsigned long long n;
        int x, back = -1;
        if (fast_digits(d, prec, &n, &x)) {
            back = prec == 17 ? 1 : reads_back(d, n, x, prec);
            if (back != 0)
                g_text(s, d, n, x, prec);
        } else {
            snprintf(s, sizeof s, "%.*g", prec, d);
        }
        if (back < 0)
            back = strtod(s, NULL) == d;
        if (back)
            break;
    }
    if (!strpbrk(s, ".eE"))
        strcat(s, ".0");
    fr_buf_puts(b, s);
}

/* Decimal digits without printf: most output is ints. */
static void put_int(fr_buf *b, json_int_t i)
{
    char s[24], *p = s + sizeof s;
    unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (i < 0)
        *--p = '-';
    fr_buf_put(b, p, (size_t)(s + sizeof s - p));
}

static const fr_type *unwrap(const fr_type *t)
{
    while (t && t->kind == FR_OPTIONAL)
        t = t->elem;
    return t;
}

static void put_key(fr_buf *b, bool *first, const char *key)
{
    if (!*first)
        fr_buf_put(b, ",", 1);
    *first = false;
    put_string(b, key, strlen(key));
    fr_buf_put(b, ":", 1);
}

/* A kept record (extra: keep) as it came: its keys in their order, the
 * schema's fields without their nulls, every other key as it is. */
static void put_kept(fr_buf *b, json_t *v, const fr_schema *sc)
{
    bool first = true;
    const char *k;
    json_t *fv;
    fr_buf_put(b, "{", 1);
    json_object_foreach(v, k, fv) {
        const fr_field *f = fr_schema_field(sc, k, FR_KEYS_WIRE);
        if (f && json_is_null(fv))
            continue;
        put_key(b, &first, k);
        put_value(b, fv, f ? f->type : NULL);
    }
    fr_buf_put(b, "}", 1);
}

/* Schema fields in order (by wire name), nulls left out, then any key the
 * schema lacks. */
static void put_record(fr_buf *b, json_t *v, const fr_schema *sc)
{
    bool first = true;
    size_t seen = 0;
    if (sc->extra == FR_EXTRA_KEEP) {
        put_kept(b, v, sc);
        return;
    }
    fr_buf_put(b, "{", 1);
    for (int i = 0; i < sc->nfields; i++) {
        const char *key = fr_field_wire(&sc->fields[i]);
        json_t *fv = json_object_get(v, key);
        if (!fv)
            continue;
        seen++;
        if (json_is_null(fv))
            continue;
        put_key(b, &first, key);
        put_value(b, fv, sc->fields[i].type);
    }
    const char *k;
    json_t *fv;
    if (seen < json_object_size(v)) {
        json_object_foreach(v, k, fv) {
            if (fr_schema_field(sc, k, FR_KEYS_WIRE))
                continue;
            put_key(b, &first, k);
            put_value(b, fv, NULL);
        }
    }
    fr_buf_put(b, "}", 1);
}

static void put_object(fr_buf *b, json_t *v)
{
    bool first = true;
    const char *k;
    json_t *fv;
    fr_buf_put(b, "{", 1);
    json_object_foreach(v, k, fv) {
        put_key(b, &first, k);
        put_value(b, fv, NULL);
    }
    fr_buf_put(b, "}", 1);
}

static void put_list(fr_buf *b, json_t *v, const fr_type *elem)
{
    fr_buf_put(b, "[", 1);
    for (size_t i = 0; i < json_array_size(v); i++) {
        if (i)
            fr_buf_put(b, ",", 1);
        put_value(b, json_array_get(v, i), elem);
    }
    fr_buf_put(b, "]", 1);
}

static void put_value(fr_buf *b, json_t *v, const fr_type *t)
{
    t = unwrap(t);
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_OBJECT:
        if (t && t->kind == FR_RECORD)
            put_record(b, v, t->schema);
        else
            put_object(b, v);
        break;
    case JSON_ARRAY:
        put_list(b, v, t && t->kind == FR_LIST ? t->elem : NULL);
        break;
    case JSON_STRING:
        put_string(b, json_string_value(v), json_string_length(v));
        break;
    case JSON_INTEGER: put_int(b, json_integer_value(v)); break;
    case JSON_REAL: put_real(b, json_real_value(v)); break;
    case JSON_TRUE: fr_buf_put(b, "true", 4); break;
    case JSON_FALSE: fr_buf_put(b, "false", 5); break;
    default: fr_buf_put(b, "null", 4); break;
    }
}

void fr_buf_json_string(fr_buf *b, const char *s, size_t n)
{
    put_string(b, s, n);
}

void fr_buf_json_real(fr_buf *b, double d)
{
    put_real(b, d);
}

void fr_buf_json_int(fr_buf *b, int64_t i)
{
    put_int(b, i);
}

void fr_buf_value(fr_buf *b, json_t *v)
{
    if (json_is_string(v))
        fr_buf_put(b, json_string_value(v), json_string_length(v));
    else
        put_value(b, v, NULL);
}

void fr_buf_typed(fr_buf *b, json_t *v, const fr_type *t)
{
    put_value(b, v, t);
}

char *fr_to_json(json_t *v, const fr_type *t)
{
    fr_buf b = { 0 };
    put_value(&b, v, t);
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        return NULL;
    }
    return b.s;
}

/* ---- normalizing values that cross a boundary ---------------------------- */

/* Whether values of t can differ from their normal form. */
static bool needs_rebuild(const fr_type *t)
{
    switch (t ? t->kind : FR_STRING) {
    case FR_FLOAT: case FR_RECORD: return true;
    case FR_OPTIONAL: case FR_LIST: return needs_rebuild(t->elem);
    default: return false;
    }
}

static json_t *normalize_list(json_t *v, const fr_type *elem, fr_keys keys)
{
    size_t n = json_array_size(v);
    json_t *out = json_array();
    for (size_t i = 0; out && i < n; i++) {
        json_t *e = fr_normalize_keys(json_array_get(v, i), elem, keys);
        if (!e || json_array_append_new(out, e)) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

/* A kept record: every key in its order, fields normalized and renamed to
 * their wire names (nulls stay, holding their place), other keys as they are. */
static json_t *normalize_kept(json_t *v, const fr_schema *sc, fr_keys keys)
{
    json_t *out = json_object();
    const char *k;
    json_t *fv;
    json_object_foreach(v, k, fv) {
        const fr_field *f = out ? fr_schema_field(sc, k, keys) : NULL;
        if (!out)
            break;
        json_t *e = f ? fr_normalize_keys(fv, f->type, keys) : json_incref(fv);
        if (!e || json_object_set_new(out, f ? fr_field_wire(f) : k, e)) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

/* Schema fields in schema order by wire name, nulls and other keys left out. */
static json_t *normalize_record(json_t *v, const fr_schema *sc, fr_keys keys)
{
    if (sc->extra == FR_EXTRA_KEEP)
        return normalize_kept(v, sc, keys);
    json_t *out = json_object();
    for (int i = 0; out && i < sc->nfields; i++) {
        const fr_field *f = &sc->fields[i];
        json_t *fv = json_object_get(v, fr_field_key(f, keys));
        if (!fv || json_is_null(fv))
            continue;
        json_t *e = fr_normalize_keys(fv, f->type, keys);
        if (!e || json_object_set_new(out, fr_field_wire(f), e)) {
            json_decref(out);
            out = NULL;
        }
    }
    return out;
}

json_t *fr_normalize_keys(json_t *v, const fr_type *t, fr_keys keys)
{
    if (!v)
        return NULL;
    if (!needs_rebuild(t) || json_is_null(v))
        return json_incref(v);
    t = unwrap(t);
    if (t->kind == FR_FLOAT && json_is_integer(v))
        return json_real((double)json_integer_value(v));
    if (t->kind == FR_LIST && json_is_array(v))
        return normalize_list(v, t->elem, keys);
    if (t->kind == FR_RECORD && json_is_object(v))
        return normalize_record(v, t->schema, keys);
    return json_incref(v);
}

json_t *fr_normalize(json_t *v, const fr_type *t)
{
    return fr_normalize_keys(v, t, FR_KEYS_WIRE);
}

/* ---- UTF-8 --------------------------------------------------------------- */

/* Bytes of the sequence at s (n left) if it is valid UTF-8, else 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

bool fr_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n && p[i] < 0x80)   /* ASCII first: most text is */
        i++;
    while (i < n) {
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

size_t fr_utf8_count(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xc0) != 0x80;
    return count;
}

/* ---- clocks ------------------------------------------------------------- */

int64_t fr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fr_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t fr_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec fr_deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}
