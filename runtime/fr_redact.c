/*
 * fr_redact.c: personal data (@sensitive schema fields) kept out of what a
 * run leaves behind.
 *
 * The types say which values are sensitive: a value that crosses a typed
 * boundary (an agent's arguments, its validated answer) is walked with its
 * type, and the strings of its sensitive fields are noted in the run's
 * registry.  Three uses follow:
 *   - texts (rendered prompts, raw replies, a retry's feedback, an error
 *     message) have every noted value of the call in them replaced by
 *     "[redacted]" before a trace, the journal or a message gets them;
 *   - a JSON value without a type (an approval's item) has each string leaf
 *     that is a noted value replaced the same way;
 *   - an answer journaled for resume has its sensitive fields replaced by
 *     "[sensitive sha256:<16 hex>]", a SHA-256 of the run id and the value:
 *     the journal never holds the value in clear, two equal values stay
 *     equal, and a resume puts back a value the run has noted again (one it
 *     read from its input and passed on) by its hash.  An answer one of whose
 *     values cannot be put back is asked again.  A hash is not encryption:
 *     whoever has the journal can test a guessed value (an email address);
 *     the journal is private to its owner (0600) and `runs --prune` removes
 *     the answers.
 * A value without a type that is kept for resume (a tool loop's turns and
 * its tools' results, an answer's fields that are not sensitive but hold a
 * sensitive value, a tool's result) has every noted value inside its
 * strings replaced by that value's "[sensitive sha256:<16 hex>]" mark, the
 * same hash; a resume puts back each mark whose value it has noted again
 * (fr_redact_unmark).
 * A value is noted as it is and as a URL writes it (percent-encoded).
 * Strings shorter than 3 bytes are not noted: they would redact half of
 * every text.
 */
#include "fr_internal.h"

#include <string.h>

#define MIN_NOTED 3                /* shorter values are not redacted in texts */
#define SHORT_MAX 128              /* values up to this long are found in a text by
                                      hashing its substrings of their lengths */
#define MARK "[sensitive sha256:"
#define REDACTED "[redacted]"

typedef struct rentry {
    char *value;                   /* the noted value (malloc'd), NULL: empty slot */
    size_t len;                    /* its length */
    char tag[17];                  /* its hash under the run id, 16 hex digits */
} rentry;

/* Finding the noted values in a text costs O(text x the longest short
 * value), not O(text x values): at each place of the text the substrings of
 * the lengths noted are hashed (one FNV-1a pass, the table's own hash) and
 * looked up; the few values longer than SHORT_MAX are looked for one by
 * one.  A mark's value is found by its tag through a second index. */
struct fr_redact {
    pthread_mutex_t mu;            /* guards the table */
    char salt[64];                 /* the run id the hashes are salted with */
    rentry *slots;                 /* open addressing by value, power of two */
    size_t *bytag;                 /* [cap] slot index + 1, open addressing by tag, 0 empty */
    size_t cap, len;               /* slots, and those used */
    unsigned char haslen[SHORT_MAX + 1];  /* a value of that length is noted */
    size_t maxshort;               /* the longest noted value up to SHORT_MAX */
    char **longs;                  /* the values longer than SHORT_MAX (the slots' strings) */
    size_t nlong, caplong;         /* used and allocated */
};

fr_redact *fr_redact_new(void)
{
    fr_redact *r = fr_calloc(1, sizeof *r);
    if (r)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

void fr_redact_free(fr_redact *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->cap; i++)
        fr_free(r->slots[i].value);
    fr_free(r->slots);
    fr_free(r->bytag);
    fr_free(r->longs);
    pthread_mutex_destroy(&r->mu);
    fr_free(r);
}

void fr_redact_salt(fr_redact *r, const char *run_id)
{
    if (r) {
        pthread_mutex_lock(&r->mu);
        snprintf(r->salt, sizeof r->salt, "%s", run_id ? run_id : "");
        pthread_mutex_unlock(&r->mu);
    }
}

static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static void tag_of(const char *salt, const char *v, char tag[17])
{
    fr_sha256 s;
    char hex[65];
    fr_sha256_init(&s);
    fr_sha256_update(&s, salt, strlen(salt) + 1);
    fr_sha256_update(&s, v, strlen(v));
    fr_sha256_final_hex(&s, hex);
    memcpy(tag, hex, 16);
    tag[16] = '\0';
}

/* The tag index's slot for a tag (16 hex digits). */
static size_t tag_hash(const char *tag)
{
    size_t h = 0;
    for (int i = 0; i < 16 && tag[i]; i++)
        h = h * 16 + (size_t)(tag[i] <= '9' ? tag[i] - '0' : (tag[i] | 32) - 'a' + 10);
    return h;
}

static void put_tag(size_t *bytag, size_t cap, const rentry *slots, size_t i)
{
    size_t k = tag_hash(slots[i].tag) & (cap - 1);
    while (bytag[k])
        k = (k + 1) & (cap - 1);
    bytag[k] = i + 1;
}

static bool grow(fr_redact *r)
{
    size_t cap = r->cap ? r->cap * 2 : 64;
    rentry *s = fr_calloc(cap, sizeof *s);
    size_t *t = fr_calloc(cap, sizeof *t);
    if (!s || !t) {
        fr_free(s);
        fr_free(t);
        return false;
    }
    for (size_t i = 0; i < r->cap; i++) {
        if (!r->slots[i].value)
            continue;
        size_t k = hash_str(r->slots[i].value) & (cap - 1);
        while (s[k].value)
            k = (k + 1) & (cap - 1);
        s[k] = r->slots[i];
        put_tag(t, cap, s, k);
    }
    fr_free(r->slots);
    fr_free(r->bytag);
    r->slots = s;
    r->bytag = t;
    r->cap = cap;
    return true;
}

/* The slot of v, or NULL (under mu). */
static rentry *find(fr_redact *r, const char *v)
{
    if (!r->cap)
        return NULL;
    for (size_t k = hash_str(v) & (r->cap - 1); r->slots[k].value; k = (k + 1) & (r->cap - 1))
        if (strcmp(r->slots[k].value, v) == 0)
            return &r->slots[k];
    return NULL;
}

/* The slot whose tag is the 16 hex digits at tag, or NULL (under mu). */
static rentry *find_tag(fr_redact *r, const char *tag)
{
    if (!r->cap)
        return NULL;
    for (size_t k = tag_hash(tag) & (r->cap - 1); r->bytag[k]; k = (k + 1) & (r->cap - 1)) {
        rentry *e = &r->slots[r->bytag[k] - 1];
        if (strncmp(e->tag, tag, 16) == 0)
            return e;
    }
    return NULL;
}

static void note_one(fr_redact *r, const char *v)
{
    size_t n = strlen(v);
    pthread_mutex_lock(&r->mu);
    if (!find(r, v) && (r->len + 1 < r->cap / 2 || grow(r))) {
        char *copy = fr_strdup(v);
        bool room = n <= SHORT_MAX || r->nlong < r->caplong;
        if (copy && !room) {
            size_t c = r->caplong ? r->caplong * 2 : 8;
            char **l = fr_realloc(r->longs, c * sizeof *l);
            if (l)
                r->longs = l, r->caplong = c, room = true;
        }
        if (copy && room) {
            size_t k = hash_str(v) & (r->cap - 1);
            while (r->slots[k].value)
                k = (k + 1) & (r->cap - 1);
            r->slots[k].value = copy;
            r->slots[k].len = n;
            tag_of(r->salt, v, r->slots[k].tag);
            put_tag(r->bytag, r->cap, r->slots, k);
            r->len++;
            if (n > SHORT_MAX)
                r->longs[r->nlong++] = copy;
            else
                r->haslen[n] = 1;
            if (n <= SHORT_MAX && n > r->maxshort)
                r->maxshort = n;
        } else {
            fr_free(copy);
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* v, and v as a URL writes it (percent-encoded: a tool's argument in an
 * operation's path, quoted back by its error) when that differs. */
static void note_str(fr_redact *r, const char *v)
{
    if (!v || strlen(v) < MIN_NOTED)
        return;
    note_one(r, v);
    json_t *s = json_string(v);
    fr_buf b = { 0 };
    if (s)
        fr_buf_url_value(&b, s);
    json_decref(s);
    if (!fr_buf_failed(&b) && b.s && strcmp(b.s, v) != 0)
        note_one(r, b.s);
    fr_buf_free(&b);
}

/* Every string (and number, as written) in v, which is sensitive. */
static void note_all(fr_redact *r, json_t *v)
{
    const char *k;
    json_t *e;
    size_t i;
    char num[64];
    switch (json_typeof(v)) {
    case JSON_STRING:
        note_str(r, json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        note_str(r, num);
        break;
    case JSON_OBJECT:
        json_object_foreach(v, k, e)
            note_all(r, e);
        break;
    case JSON_ARRAY:
        json_array_foreach(v, i, e)
            note_all(r, e);
        break;
    default:
        break;
    }
}

/* Calls fn on each sensitive field's value of v (of type t). */
typedef void (*field_fn)(void *ctx, json_t *rec, const char *key, json_t *v,
                         const fr_field *fd);

static void each_sensitive(json_t *v, const fr_type *t, field_fn fn, void *ctx, int depth)
{
    if (!v || !t || depth > 32)
        return;
    size_t i;
    json_t *e;
    switch (t->kind) {
    case FR_OPTIONAL:
        each_sensitive(v, t->elem, fn, ctx, depth + 1);
        break;
    case FR_LIST:
        json_array_foreach(v, i, e)
            each_sensitive(e, t->elem, fn, ctx, depth + 1);
        break;
    case FR_RECORD:
        if (!json_is_object(v))
            break;
        for (int f = 0; f < t->schema->nfields; f++) {
            const fr_field *fd = &t->schema->fields[f];
            const char *key = fr_field_wire(fd);
            json_t *fv = json_object_get(v, key);
            if (!fv)
                continue;
            if (fd->sensitive)
                fn(ctx, v, key, fv, fd);
            else
                each_sensitive(fv, fd->type, fn, ctx, depth + 1);
        }
        break;
    default:
        break;
    }
}

bool fr_type_sensitive(const fr_type *t)
{
    for (int depth = 0; t && depth < 32; depth++) {
        if (t->kind == FR_OPTIONAL || t->kind == FR_LIST) {
            t = t->elem;
            continue;
        }
        if (t->kind != FR_RECORD)
            return false;
        for (int f = 0; f < t->schema->nfields; f++)
            if (t->schema->fields[f].sensitive || fr_type_sensitive(t->schema->fields[f].type))
                return true;
        return false;
    }
    return false;
}

static void note_field(void *ctx, json_t *rec, const char *key, json_t *v, const fr_field *fd)
{
    (void)rec, (void)key, (void)fd;
    note_all(ctx, v);
}

void fr_redact_note(fr_redact *r, json_t *v, const fr_type *t)
{
    if (r && fr_type_sensitive(t))
        each_sensitive(v, t, note_field, r, 0);
}

/* ---- texts and untyped values ---------------------------------------------- */

/* The longest noted value that starts at p (under mu), or NULL; longs
 * are the long values found in the whole text, n of them. */
static const rentry *longest_at(fr_redact *r, const char *p, char *const *longs, size_t n)
{
    const rentry *best = NULL;
    size_t h = 1469598103934665603u;             /* hash_str's, a byte at a time */
    for (size_t l = 1; l <= r->maxshort && p[l - 1]; l++) {
        h = (h ^ (unsigned char)p[l - 1]) * 1099511628211u;
        if (!r->haslen[l])
            continue;
        for (size_t k = h & (r->cap - 1); r->slots[k].value; k = (k + 1) & (r->cap - 1))
            if (r->slots[k].len == l && memcmp(r->slots[k].value, p, l) == 0) {
                best = &r->slots[k];
                break;
            }
    }
    for (size_t i = 0; i < n; i++)
        if (strncmp(p, longs[i], strlen(longs[i])) == 0 &&
            (!best || strlen(longs[i]) > best->len))
            best = find(r, longs[i]);
    return best;
}

/* text with each noted value in it replaced by its mark (marks) or by
 * "[redacted]", the longest value at each place first, in one pass, a
 * mark already there kept whole (malloc'd); NULL when none is in it, or
 * memory ran out (*failed). */
static char *replace_in(fr_redact *r, const char *text, bool marks, bool *failed)
{
    size_t ml = strlen(MARK), n = 0;
    bool any = false;
    fr_buf b = { 0 };
    pthread_mutex_lock(&r->mu);
    char **longs = r->nlong ? fr_calloc(r->nlong, sizeof *longs) : NULL;
    for (size_t i = 0; longs && i < r->nlong; i++)
        if (strstr(text, r->longs[i]))
            longs[n++] = r->longs[i];
    if (r->nlong && !longs)
        *failed = true;
    const char *from = text;                     /* not yet copied */
    for (const char *p = text; r->cap && !*failed && *p; ) {
        if (*p == '[' && strncmp(p, MARK, ml) == 0 && strlen(p + ml) >= 17 && p[ml + 16] == ']') {
            p += ml + 17;                        /* a mark already: kept whole */
            continue;
        }
        const rentry *e = longest_at(r, p, longs, n);
        if (!e) {
            p++;
            continue;
        }
        any = true;
        fr_buf_put(&b, from, (size_t)(p - from));
        if (marks)
            fr_buf_printf(&b, MARK "%s]", e->tag);
        else
            fr_buf_puts(&b, REDACTED);
        p += e->len;
        from = p;
    }
    pthread_mutex_unlock(&r->mu);
    fr_free(longs);
    if (!any || *failed) {
        fr_buf_free(&b);
        return NULL;
    }
    fr_buf_puts(&b, from);
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        *failed = true;
        return NULL;
    }
    return b.s;
}

/* text with every noted value in it replaced (malloc'd), or NULL when
 * none is in it (or memory ran out: then the caller drops the text). */
static char *scrub(fr_redact *r, const char *text, bool *failed)
{
    *failed = false;
    return replace_in(r, text, false, failed);
}

char *fr_redact_text(fr_redact *r, const char *text)
{
    if (!text)
        return NULL;
    bool failed = false;
    char *out = r && r->len ? scrub(r, text, &failed) : NULL;
    if (out || failed)
        return out ? out : fr_strdup(REDACTED);
    return fr_strdup(text);
}

bool fr_redact_active(fr_redact *r)
{
    return r && r->len;
}

void fr_redact_json_text(fr_redact *r, json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!r || !s || !r->len)
        return;
    bool failed;
    char *out = scrub(r, s, &failed);
    if (out || failed)
        json_object_set_new(o, key, json_string(out ? out : REDACTED));
    fr_free(out);
}

json_t *fr_redact_json(fr_redact *r, json_t *v)
{
    const char *k;
    json_t *e, *c;
    size_t i;
    switch (json_typeof(v)) {
    case JSON_STRING:
        if (r && r->len) {
            pthread_mutex_lock(&r->mu);
            bool hit = find(r, json_string_value(v)) != NULL;
            pthread_mutex_unlock(&r->mu);
            if (hit)
                return json_string(REDACTED);
        }
        return json_incref(v);
    case JSON_OBJECT:
        c = json_object();
        json_object_foreach(v, k, e)
            json_object_set_new(c, k, fr_redact_json(r, e));
        return c;
    case JSON_ARRAY:
        c = json_array();
        json_array_foreach(v, i, e)
            json_array_append_new(c, fr_redact_json(r, e));
        return c;
    default:
        return json_incref(v);
    }
}

/* ---- the journal's answers -------------------------------------------------- */

typedef struct hctx {
    fr_redact *r;                  /* the registry */
    bool lost;                     /* restore: a value could not be put back */
} hctx;

static void hash_field(void *ctx, json_t *rec, const char *key, json_t *v, const fr_field *fd)
{
    (void)fd;
    hctx *h = ctx;
    if (json_is_null(v))
        return;
    char *text = json_is_string(v) ? fr_strdup(json_string_value(v))
                                   : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char tag[17], mark[64];
    pthread_mutex_lock(&h->r->mu);
    tag_of(h->r->salt, text ? text : "", tag);
    pthread_mutex_unlock(&h->r->mu);
    snprintf(mark, sizeof mark, MARK "%s]", tag);
    fr_free(text);
    json_object_set_new(rec, key, json_string(mark));
}

json_t *fr_redact_hashed(fr_redact *r, json_t *v, const fr_type *t)
{
    if (!r || !fr_type_sensitive(t))
        return NULL;
    json_t *c = json_deep_copy(v);
    hctx h = { r, false };
    if (c)
        each_sensitive(c, t, hash_field, &h, 0);
    return c;
}

static void restore_field(void *ctx, json_t *rec, const char *key, json_t *v,
                          const fr_field *fd)
{
    hctx *h = ctx;
    const char *s = json_string_value(v);
    size_t ml = strlen(MARK);
    if (!s || strncmp(s, MARK, ml) != 0)
        return;                    /* journaled by a flowc that did not hash it */
    pthread_mutex_lock(&h->r->mu);
    const rentry *e = strlen(s + ml) >= 16 ? find_tag(h->r, s + ml) : NULL;
    const char *found = e ? e->value : NULL;
    const fr_type *t = fd->type;
    while (t->kind == FR_OPTIONAL)
        t = t->elem;
    json_t *put = !found ? NULL : t->kind == FR_STRING || t->kind == FR_ENUM
                  ? json_string(found) : json_loads(found, JSON_DECODE_ANY, NULL);
    pthread_mutex_unlock(&h->r->mu);
    if (put)
        json_object_set_new(rec, key, put);
    else
        h->lost = true;
}

bool fr_redact_restore(fr_redact *r, json_t *v, const fr_type *t)
{
    if (!fr_type_sensitive(t))
        return true;
    if (!r)
        return false;
    hctx h = { r, false };
    each_sensitive(v, t, restore_field, &h, 0);
    return !h.lost;
}

/* ---- marks inside untyped values -------------------------------------------- */

static char *mark_text(fr_redact *r, const char *text, bool *failed)
{
    return replace_in(r, text, true, failed);
}

static json_t *marked_str(fr_redact *r, const char *s, bool *failed)
{
    char *m = mark_text(r, s, failed);
    json_t *v = m ? json_string(m) : json_string(s);
    fr_free(m);
    if (!v)
        *failed = true;
    return v;
}

static json_t *mark_value(fr_redact *r, json_t *v, bool *failed, int depth)
{
    const char *k;
    json_t *e, *c;
    size_t i;
    if (depth > 64) {
        *failed = true;
        return NULL;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        return marked_str(r, json_string_value(v), failed);
    case JSON_OBJECT:
        c = json_object();
        json_object_foreach(v, k, e) {
            char *mk = mark_text(r, k, failed);
            json_t *ce = mark_value(r, e, failed, depth + 1);
            if (!c || !ce || json_object_set_new(c, mk ? mk : k, ce) != 0)
                *failed = true;
            fr_free(mk);
        }
        return c;
    case JSON_ARRAY:
        c = json_array();
        json_array_foreach(v, i, e)
            if (!c || json_array_append_new(c, mark_value(r, e, failed, depth + 1)) != 0)
                *failed = true;
        return c;
    default:
        return json_incref(v);
    }
}

json_t *fr_redact_marked(fr_redact *r, json_t *v)
{
    if (!v)
        return NULL;
    if (!r || !r->len)
        return json_incref(v);
    bool failed = false;
    json_t *c = mark_value(r, v, &failed, 0);
    if (failed) {                  /* never in clear: nothing rather than the value */
        json_decref(c);
        return NULL;
    }
    return c;
}

/* s with each mark whose value is noted put back (malloc'd), NULL when it
 * has no mark; *lost when a mark's value is not noted (it stays). */
static char *unmark_text(fr_redact *r, const char *s, bool *lost, bool *failed)
{
    if (!strstr(s, MARK))
        return NULL;
    size_t ml = strlen(MARK);
    fr_buf b = { 0 };
    pthread_mutex_lock(&r->mu);
    for (const char *p = s; *p; ) {
        const char *q = strstr(p, MARK);
        if (!q) {
            fr_buf_puts(&b, p);
            break;
        }
        fr_buf_put(&b, p, (size_t)(q - p));
        const rentry *e = strlen(q + ml) >= 17 && q[ml + 16] == ']' ? find_tag(r, q + ml) : NULL;
        const char *found = e ? e->value : NULL;
        if (found) {
            fr_buf_puts(&b, found);
            p = q + ml + 17;
        } else {
            *lost = true;
            fr_buf_put(&b, q, ml);
            p = q + ml;
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (fr_buf_failed(&b)) {
        fr_buf_free(&b);
        *failed = true;
        return NULL;
    }
    return b.s ? b.s : fr_strdup("");
}

static json_t *unmark_value(fr_redact *r, json_t *v, bool *lost, bool *failed, int depth)
{
    const char *k;
    json_t *e, *c;
    size_t i;
    char *t;
    if (depth > 64)
        return json_incref(v);
    switch (json_typeof(v)) {
    case JSON_STRING:
        t = unmark_text(r, json_string_value(v), lost, failed);
        c = t ? json_string(t) : json_incref(v);
        fr_free(t);
        return c;
    case JSON_OBJECT:
        c = json_object();
        json_object_foreach(v, k, e) {
            char *uk = unmark_text(r, k, lost, failed);
            json_t *ce = unmark_value(r, e, lost, failed, depth + 1);
            if (!c || !ce || json_object_set_new(c, uk ? uk : k, ce) != 0)
                *failed = true;
            fr_free(uk);
        }
        return c;
    case JSON_ARRAY:
        c = json_array();
        json_array_foreach(v, i, e)
            if (!c || json_array_append_new(c, unmark_value(r, e, lost, failed,
                                                            depth + 1)) != 0)
                *failed = true;
        return c;
    default:
        return json_incref(v);
    }
}

json_t *fr_redact_unmarked(fr_redact *r, json_t *v, bool *lost)
{
    *lost = false;
    if (!v)
        return NULL;
    if (!r)
        return json_incref(v);
    bool failed = false;
    json_t *c = unmark_value(r, v, lost, &failed, 0);
    if (failed) {
        json_decref(c);
        return NULL;
    }
    return c;
}
