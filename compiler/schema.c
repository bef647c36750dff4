/*
 * schema.c: the JSON Schema of a type, per provider dialect.
 *
 * The schema is written by hand into a memory stream, in one recursive walk
 * over the semantic type.  A record's fields carry their own constraints and
 * doc comments, so the walk passes the Field along with its type.  What a
 * dialect cannot express as keywords is dropped from the keywords and
 * written into the description instead; the runtime validates it on every
 * answer.
 *
 *   SD_PLAIN             full keywords, optional fields simply not required
 *   SD_ANTHROPIC         a forced tool's input_schema: keywords kept and also
 *                        spelled out in the description
 *   SD_ANTHROPIC_STRICT  output_config.format: optional fields not required,
 *                        no numeric or length keywords but minItems 0 or 1
 *   SD_OPENAI_STRICT     every property required, optionals nullable,
 *                        minimum/maximum and minItems/maxItems kept (strict
 *                        mode supports them), minLength/maxLength not
 *
 * Names: a property is named by the field's model key (its @alias when
 * Anthropic takes that as a property name, else the field's name; sema
 * decides), an enum value by its wire spelling.  A schema that keeps unknown
 * fields (extra: keep) leaves additionalProperties out of a plain schema and
 * a forced tool's input_schema; the strict modes require it false.
 */
#include "flowc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX_DEPTH 32                      /* guards against recursive schemas */

/* The state of one schema_json call. */
typedef struct SchemaOut {
    FILE *f;                                     /* the memory stream written to */
    SchemaDialect d;                             /* the dialect being written */
    int depth;                                   /* records open, for the recursion guard */
} SchemaOut;

static void put_type(SchemaOut *o, Type *t, Field *fld);

/* A JSON string literal, escaped. */
static void put_str(FILE *f, const char *s)
{
    json_put_str(f, s, strlen(s));
}

/* A constraint bound: an int or float literal, maybe negated. */
static double bound_value(Node *n, bool *is_int)
{
    if (n && n->kind == N_UNARY && n->op == OP_NEG)
        return -bound_value(n->operand, is_int);
    if (n && n->kind == N_INT) {
        *is_int = true;
        return (double)n->ival;
    }
    *is_int = false;
    return n && n->kind == N_FLOAT ? n->fval : 0;
}

/* A number as JSON and as prose: integers without a fraction. */
static void put_num(FILE *f, double v)
{
    if (v == floor(v) && fabs(v) < 1e15)
        fprintf(f, "%lld", (long long)v);
    else
        fprintf(f, "%.17g", v);
}

/* The sentence that tells the model about a constraint, or "" if none. */
static char *constraint_text(Field *fld, Type *t)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = arena_memstream(&s, &n);
    bool is_int;
    Constraint *c = &fld->cons;
    double lo = c->kind != CONS_NONE ? bound_value(c->lo, &is_int) : 0;
    double hi = c->kind != CONS_NONE ? bound_value(c->hi, &is_int) : 0;
    const char *unit = t && t->kind == TY_LIST ? "items" : "characters";

    if (c->kind == CONS_RANGE) {
        fputs("Must be between ", f);
        put_num(f, lo);
        fputs(" and ", f);
        put_num(f, hi);
        fputs(".", f);
    } else if (c->kind == CONS_LEN && lo == hi) {
        fputs("Exactly ", f);
        put_num(f, lo);
        fprintf(f, " %s.", unit);
    } else if (c->kind == CONS_LEN && lo <= 0) {
        fputs("At most ", f);
        put_num(f, hi);
        fprintf(f, " %s.", unit);
    } else if (c->kind == CONS_LEN) {
        fputs("Between ", f);
        put_num(f, lo);
        fputs(" and ", f);
        put_num(f, hi);
        fprintf(f, " %s.", unit);
    }
    fclose(f);
    char *r = arena_strdup(s);
    free(s);
    return r;
}

/* "description": the doc comment, then what the constraints say (not in SD_PLAIN). */
static void put_description(SchemaOut *o, const char *doc, Field *fld, Type *t)
{
    const char *extra = fld && o->d != SD_PLAIN ? constraint_text(fld, t) : "";
    if ((!doc || !*doc) && !*extra)
        return;
    const char *text = !doc || !*doc ? extra
                       : *extra ? arena_printf("%s %s", doc, extra) : doc;
    fputs("\"description\":", o->f);
    put_str(o->f, text);
    fputc(',', o->f);
}

/* ,"minimum":lo,"maximum":hi (or the length keywords), those the dialect takes:
 * all in SD_PLAIN and SD_ANTHROPIC; in OpenAI strict mode all but minLength and
 * maxLength; in Anthropic's output_config only minItems 0 or 1 (the subset the
 * official SDK keeps: anthropic-sdk-python lib/_parse/_transform.py).  What is
 * left out is still said in the description and validated on every answer. */
static void put_keywords(SchemaOut *o, Field *fld, Type *t)
{
    if (!fld || fld->cons.kind == CONS_NONE)
        return;
    bool is_int;
    double lo = bound_value(fld->cons.lo, &is_int);
    double hi = bound_value(fld->cons.hi, &is_int);
    bool list = t->kind == TY_LIST;
    if (fld->cons.kind == CONS_LEN && !list && o->d == SD_OPENAI_STRICT)
        return;
    if (o->d == SD_ANTHROPIC_STRICT) {
        if (list && (lo == 0 || lo == 1))
            fprintf(o->f, ",\"minItems\":%d", (int)lo);
        return;
    }
    const char *kmin = "minimum", *kmax = "maximum";
    if (fld->cons.kind == CONS_LEN) {
        kmin = list ? "minItems" : "minLength";
        kmax = list ? "maxItems" : "maxLength";
    }
    fprintf(o->f, ",\"%s\":", kmin);
    put_num(o->f, lo);
    fprintf(o->f, ",\"%s\":", kmax);
    put_num(o->f, hi);
}

/* The JSON type name of a primitive or list. */
static const char *json_type_name(Type *t)
{
    switch (t->kind) {
    case TY_STRING: return "string";
    case TY_INT: return "integer";
    case TY_FLOAT: return "number";
    case TY_BOOL: return "boolean";
    case TY_LIST: return "array";
    case TY_NULL: return "null";
    default: return NULL;
    }
}

/* enum -> {"type":"string","enum":[...]} */
static void put_enum(SchemaOut *o, Type *t, Field *fld)
{
    Decl *d = t->decl;
    fputc('{', o->f);
    put_description(o, fld ? fld->doc : d->doc, NULL, NULL);
    fputs("\"type\":\"string\",\"enum\":[", o->f);
    for (int i = 0; i < d->values.len; i++) {
        Field *v = d->values.items[i];
        if (i)
            fputc(',', o->f);
        put_str(o->f, v->wire ? v->wire : v->name);
    }
    fputs("]}", o->f);
}

/* Is this field required in the dialect? */
static bool field_required(SchemaOut *o, Field *fld)
{
    return o->d == SD_OPENAI_STRICT || !fld->type || fld->type->kind != TY_OPT;
}

/* A field's property name. */
static const char *prop_name(Field *f)
{
    return f->model_key ? f->model_key : f->name;
}

/* record -> {"type":"object","description":...,"properties":{...},"required":[...],
 *            "additionalProperties":false} */
static void put_record(SchemaOut *o, Type *t, Field *fld)
{
    Decl *d = t->decl;
    if (o->depth >= SCHEMA_MAX_DEPTH) {
        fputs("{\"type\":\"object\"}", o->f);
        return;
    }
    o->depth++;
    fputs("{\"type\":\"object\",", o->f);
    put_description(o, fld && fld->doc ? fld->doc : d->doc, NULL, NULL);
    fputs("\"properties\":{", o->f);
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (i)
            fputc(',', o->f);
        put_str(o->f, prop_name(f));
        fputc(':', o->f);
        put_type(o, f->type, f);
    }
    fputs("},\"required\":[", o->f);
    bool first = true;
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (!field_required(o, f))
            continue;
        if (!first)
            fputc(',', o->f);
        first = false;
        put_str(o->f, prop_name(f));
    }
    if (d->extra == EXTRA_KEEP && (o->d == SD_PLAIN || o->d == SD_ANTHROPIC))
        fputs("]}", o->f);
    else
        fputs("],\"additionalProperties\":false}", o->f);
    o->depth--;
}

/* primitive or list: {"description":...,"type":T,...keywords} (nullable: ["T","null"]) */
static void put_plain(SchemaOut *o, Type *t, Field *fld, bool nullable)
{
    const char *name = json_type_name(t);
    fputc('{', o->f);
    put_description(o, fld ? fld->doc : NULL, fld, t);
    if (!name)
        fputs("\"type\":\"string\"", o->f);     /* not reached after sema */
    else if (nullable)
        fprintf(o->f, "\"type\":[\"%s\",\"null\"]", name);
    else
        fprintf(o->f, "\"type\":\"%s\"", name);
    if (t->kind == TY_LIST) {
        fputs(",\"items\":", o->f);
        if (t->elem)
            put_type(o, t->elem, NULL);
        else
            fputs("{}", o->f);
    }
    put_keywords(o, fld, t);
    fputc('}', o->f);
}

/* T? in strict mode: ["T","null"] for primitives and lists, anyOf for records
 * and enums */
static void put_optional(SchemaOut *o, Type *inner, Field *fld)
{
    if (o->d != SD_OPENAI_STRICT && fld) {
        put_type(o, inner, fld);                 /* optional = not required */
        return;
    }
    if (inner->kind == TY_ENUM || inner->kind == TY_SCHEMA) {
        fputc('{', o->f);
        put_description(o, fld ? fld->doc : NULL, NULL, NULL);
        fputs("\"anyOf\":[", o->f);
        if (inner->kind == TY_ENUM)
            put_enum(o, inner, NULL);
        else
            put_record(o, inner, NULL);
        fputs(",{\"type\":\"null\"}]}", o->f);
    } else {
        put_plain(o, inner, fld, true);
    }
}

/* any type, with the field that declares it (constraints, doc) or NULL */
static void put_type(SchemaOut *o, Type *t, Field *fld)
{
    switch (t->kind) {
    case TY_OPT: put_optional(o, t->elem, fld); break;
    case TY_SCHEMA: put_record(o, t, fld); break;
    case TY_ENUM: put_enum(o, t, fld); break;
    default: put_plain(o, t, fld, false); break;
    }
}

char *schema_json(Type *t, SchemaDialect dialect)
{
    char *s = NULL;
    size_t n = 0;
    SchemaOut o = { arena_memstream(&s, &n), dialect, 0 };
    put_type(&o, t, NULL);
    fclose(o.f);
    char *r = arena_strndup(s, n);
    free(s);
    return r;
}

/* The object a tool's parameters make: {"type":"object","properties":{p: ...},
 * "required":[...],"additionalProperties":false}, each parameter's doc
 * comment its description. */
char *schema_params_json(Vec *params, SchemaDialect dialect)
{
    char *s = NULL;
    size_t n = 0;
    SchemaOut o = { arena_memstream(&s, &n), dialect, 0 };
    fputs("{\"type\":\"object\",\"properties\":{", o.f);
    for (int i = 0; i < params->len; i++) {
        Field *f = params->items[i];
        if (i)
            fputc(',', o.f);
        put_str(o.f, f->name);
        fputc(':', o.f);
        put_type(&o, f->type, f);
    }
    fputs("},\"required\":[", o.f);
    bool first = true;
    for (int i = 0; i < params->len; i++) {
        Field *f = params->items[i];
        if (!field_required(&o, f))
            continue;
        if (!first)
            fputc(',', o.f);
        first = false;
        put_str(o.f, f->name);
    }
    fputs("],\"additionalProperties\":false}", o.f);
    fclose(o.f);
    char *r = arena_strndup(s, n);
    free(s);
    return r;
}
