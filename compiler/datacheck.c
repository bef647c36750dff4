/*
 * datacheck.c: `flowc check FILE --data Schema=PATH ...`: data files checked
 * against the schemas of a checked program, without building or running it.
 *
 * The check is the runtime's own: the schemas are turned into the runtime's
 * type descriptors (fr_type, as cg.c writes them into the C) and each file is
 * read by fr_data.c's readers, row by row, exactly as read_jsonl and
 * read_csv read it in a run.  Every problem of every bad row is a diagnostic
 * (E1301) at the row's line and the cell's column, in the text or JSON
 * format; a CSV header that does not fit (E1302) or a file that cannot be
 * read (E1303) ends that file's check.  Rows are not kept: memory stays one
 * row whatever the file's size.
 */
#include "flowc.h"

#include "fr_data.h"

#include <stdlib.h>
#include <string.h>

/* ---- the runtime's descriptors of the program's types -------------------- */

/* A descriptor made for a type: types are interned, schemas by their Decl. */
typedef struct RtType {
    const void *key;                             /* the Type or, for a schema or enum, its Decl */
    fr_type *t;                                  /* its descriptor */
} RtType;

static Vec rt_types;                             /* RtType*: made so far */

static fr_type *rt_find(const void *key)
{
    for (int i = 0; i < rt_types.len; i++) {
        RtType *r = rt_types.items[i];
        if (r->key == key)
            return r->t;
    }
    return NULL;
}

static fr_type *rt_new(const void *key, fr_kind kind)
{
    RtType *r = arena_alloc(sizeof *r);
    r->key = key;
    r->t = arena_alloc(sizeof *r->t);
    r->t->kind = kind;
    vec_push(&rt_types, r);
    return r->t;
}

/* A constraint bound as a number. */
static double bound(Node *n)
{
    if (n && n->kind == N_UNARY && n->op == OP_NEG)
        return -bound(n->operand);
    if (n && n->kind == N_INT)
        return (double)n->ival;
    return n && n->kind == N_FLOAT ? n->fval : 0;
}

static const fr_type *rt_type(Type *t);

const fr_type *data_rt_type(Type *t)
{
    return rt_type(t);
}

static fr_enum *rt_enum(Decl *d)
{
    fr_enum *e = arena_alloc(sizeof *e);
    const char **values = arena_alloc(sizeof *values * (size_t)(d->values.len + 1));
    for (int i = 0; i < d->values.len; i++) {
        Field *v = d->values.items[i];
        values[i] = v->wire ? v->wire : v->name;
    }
    e->name = d->name;
    e->doc = d->doc;
    e->nvalues = d->values.len;
    e->values = values;
    return e;
}

static fr_schema *rt_schema(Decl *d)
{
    fr_schema *sc = arena_alloc(sizeof *sc);
    fr_field *fields = arena_alloc(sizeof *fields * (size_t)(d->fields.len + 1));
    sc->name = d->name;
    sc->doc = d->doc;
    sc->nfields = d->fields.len;
    sc->fields = fields;
    sc->extra = d->extra == EXTRA_DROP ? FR_EXTRA_DROP
                : d->extra == EXTRA_KEEP ? FR_EXTRA_KEEP : FR_EXTRA_REJECT;
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        fr_field *r = &fields[i];
        r->name = f->name;
        r->wire = f->wire ? f->wire : f->name;
        r->model_key = f->model_key ? f->model_key : r->wire;
        r->doc = f->doc;
        r->has_range = f->cons.kind == CONS_RANGE;
        r->has_len = f->cons.kind == CONS_LEN;
        if (r->has_range) {
            r->min = bound(f->cons.lo);
            r->max = bound(f->cons.hi);
        } else if (r->has_len) {
            r->min_len = (int64_t)bound(f->cons.lo);
            r->max_len = (int64_t)bound(f->cons.hi);
        }
    }
    return sc;
}

/* The descriptor of t, made on first use. */
static const fr_type *rt_type(Type *t)
{
    switch (t ? t->kind : TY_ERROR) {
    case TY_INT: return &fr_type_int;
    case TY_FLOAT: return &fr_type_float;
    case TY_BOOL: return &fr_type_bool;
    case TY_OPT: case TY_LIST: case TY_SCHEMA: case TY_ENUM: break;
    default: return &fr_type_string;
    }
    const void *key = t->kind == TY_SCHEMA || t->kind == TY_ENUM ? (const void *)t->decl : t;
    fr_type *r = rt_find(key);
    if (r)
        return r;
    switch (t->kind) {
    case TY_OPT:
        r = rt_new(key, FR_OPTIONAL);
        r->elem = rt_type(t->elem);
        break;
    case TY_LIST:
        r = rt_new(key, FR_LIST);
        r->elem = rt_type(t->elem ? t->elem : ty_string);
        break;
    case TY_ENUM:
        r = rt_new(key, FR_ENUM);
        r->enm = rt_enum(t->decl);
        break;
    default: {                                   /* made before its fields: they may refer back */
        r = rt_new(key, FR_RECORD);
        fr_schema *sc = rt_schema(t->decl);
        r->schema = sc;
        for (int i = 0; i < t->decl->fields.len; i++)
            ((fr_field *)sc->fields)[i].type = rt_type(((Field *)t->decl->fields.items[i])->type);
        break;
    }
    }
    return r;
}

/* ---- one file ------------------------------------------------------------ */

/* Every problem of the last row (or of the header) as a diagnostic. */
static void report_row(DataSpec *d, fr_reader *r, DiagCode code)
{
    int n;
    const fr_problem *p = fr_reader_problems(r, &n);
    for (int i = 0; i < n; i++) {
        const char *msg = p[i].msg;
        if (d->fmt == FR_FMT_CSV && p[i].key && code == E1301)
            msg = arena_printf("column '%s': %s", p[i].key, p[i].msg);
        diag_data(d->path, p[i].line, p[i].col, code, msg);
    }
    if (n == 0)
        diag_data(d->path, 0, 0, E1303, fr_reader_error(r));
}

/* Checks one file; false when it is bad (said why). */
static bool check_file(DataSpec *d, const fr_type *t, long max_errors)
{
    fr_buf err = { 0 };
    fr_reader *r = fr_reader_open(d->path, d->fmt, t, d->delim, &err);
    if (!r) {
        diag_data(d->path, 0, 0, E1303, err.s ? err.s : "out of memory");
        fr_buf_free(&err);
        return false;
    }
    fr_reader_check_only(r);
    long bad = 0;
    bool header = true, ok = true;
    for (;;) {
        json_t *row = NULL;
        fr_row st = fr_reader_next(r, &row);
        if (st == FR_ROW_END)
            break;
        if (st == FR_ROW_FATAL) {
            report_row(d, r, header && d->fmt == FR_FMT_CSV ? E1302 : E1303);
            ok = false;
            break;
        }
        header = false;
        json_decref(row);
        if (st == FR_ROW_GOOD)
            continue;
        bad++;
        if (max_errors <= 0 || bad <= max_errors)
            report_row(d, r, E1301);
    }
    if (bad)
        diag_data_summary(arena_printf("%s: %ld of %ld row%s %s bad (schema '%s')%s", d->path,
                                       bad, fr_reader_rows(r), fr_reader_rows(r) == 1 ? "" : "s",
                                       bad == 1 ? "is" : "are", d->schema,
                                       max_errors > 0 && bad > max_errors
                                           ? arena_printf("; the first %ld shown", max_errors)
                                           : ""));
    fr_reader_close(r);
    return ok && bad == 0;
}

/* ---- every row of a CSV file, for flowc estimate ------------------------- */

struct json_t *data_csv_records(const char *path, const char **why)
{
    static const fr_schema any = { "row", NULL, 0, NULL, FR_EXTRA_KEEP };
    static const fr_type any_type = { FR_RECORD, NULL, &any, NULL };
    fr_buf err = { 0 };
    fr_reader *r = fr_reader_open(path, FR_FMT_CSV, &any_type, 0, &err);
    if (!r) {
        *why = arena_strdup(err.s ? err.s : "out of memory");
        fr_buf_free(&err);
        return NULL;
    }
    json_t *rows = json_array();
    for (;;) {
        json_t *row = NULL;
        fr_row st = fr_reader_next(r, &row);
        if (st == FR_ROW_END)
            break;
        if (st == FR_ROW_FATAL) {
            fr_buf d = { 0 };
            fr_reader_describe(r, &d);
            *why = arena_printf("%s:%ld: %s", path, fr_reader_line(r), d.s ? d.s : "");
            fr_buf_free(&d);
            json_decref(rows);
            rows = NULL;
            break;
        }
        if (row)
            json_array_append_new(rows, row);
    }
    fr_reader_close(r);
    return rows;
}

/* ---- the command --------------------------------------------------------- */

bool data_parse_spec(const char *arg, char delim, DataSpec *out)
{
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1])
        return false;
    out->schema = arena_strndup(arg, (size_t)(eq - arg));
    const char *path = eq + 1;
    out->delim = delim;
    if (strncmp(path, "csv:", 4) == 0 || strncmp(path, "tsv:", 4) == 0
        || strncmp(path, "jsonl:", 6) == 0) {
        out->fmt = path[0] == 'j' ? FR_FMT_JSONL : FR_FMT_CSV;
        if (path[0] == 't' && !delim)
            out->delim = '\t';
        path = strchr(path, ':') + 1;
        out->path = path;
        return *path != '\0';
    }
    out->path = path;
    size_t n = strlen(path);
    const char *dot = strrchr(path, '.');
    const char *ext = dot && !strchr(dot, '/') ? dot + 1 : "";
    (void)n;
    if (strcmp(ext, "csv") == 0 || strcmp(ext, "CSV") == 0) {
        out->fmt = FR_FMT_CSV;
    } else if (strcmp(ext, "tsv") == 0 || strcmp(ext, "TSV") == 0) {
        out->fmt = FR_FMT_CSV;
        if (!delim)
            out->delim = '\t';
    } else if (strcmp(ext, "jsonl") == 0 || strcmp(ext, "ndjson") == 0 || strcmp(ext, "json") == 0) {
        out->fmt = FR_FMT_JSONL;
    } else {
        return false;
    }
    return true;
}

/* The schema a spec names, or NULL after saying why. */
static Decl *spec_schema(Program *p, DataSpec *d)
{
    Vec names = { 0 };
    for (int i = 0; i < p->decls.len; i++) {
        Decl *x = p->decls.items[i];
        if (x->kind == D_SCHEMA && x->name && strcmp(x->name, d->schema) == 0)
            return x;
        if (x->kind == D_SCHEMA && x->name)
            vec_push(&names, (void *)x->name);
    }
    for (int i = 0; i < p->decls.len; i++) {
        Decl *x = p->decls.items[i];
        if (x->kind != D_IMPORT && x->name && strcmp(x->name, d->schema) == 0) {
            diag_error(no_span, E0402, "--data %s=%s: '%s' is not a schema", d->schema, d->path,
                       d->schema);
            return NULL;
        }
    }
    diag_error(no_span, E0406, "--data %s=%s: the program has no schema '%s'", d->schema,
               d->path, d->schema);
    const char *near = diag_closest(d->schema, (const char *const *)names.items, names.len);
    if (near)
        diag_help("did you mean '%s'?", near);
    return NULL;
}

int data_check(Program *p, DataSpec *specs, int n, long max_errors)
{
    int status = 0;
    for (int i = 0; i < n; i++) {
        Decl *d = spec_schema(p, &specs[i]);
        if (!d) {
            diag_flush();
            status = 1;
            continue;
        }
        if (!check_file(&specs[i], rt_type(ty_decl(d)), max_errors))
            status = 1;
    }
    return status;
}
