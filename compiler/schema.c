/*
 * schema.c: the JSON Schema of a type, per provider dialect.
 *
 * The schema is written by hand into a memory stream, in one recursive walk
 * over the semantic type.  A record's fields carry their own constraints and
 * doc comments, so the walk passes the Field along with its type.
 *
 * A record is written in place where it is used once.  One used in two or
 * more places (or that contains itself, or sits deeper than INLINE_MAX
 * records) is written once, under "$defs" at the end of the root object,
 * and referred to as {"$ref":"#/$defs/Name"}, as the providers' SDKs do:
 * so the text is as long as the declarations it comes from, never one copy
 * per path through them (2^n for n schemas each holding the next twice),
 * and the walk is never deeper than INLINE_MAX records.  What a
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

#define INLINE_MAX 16                            /* records written one inside another, at most */

/* What one schema_json call knows of a record it reaches. */
typedef struct RecInfo {
    Decl *decl;                                  /* the schema */
    int uses;                                    /* fields (and the root) of its type */
    bool shared;                                 /* written under $defs and referred to */
} RecInfo;

/* The state of one schema_json call. */
typedef struct SchemaOut {
    FILE *f;                                     /* the memory stream written to */
    SchemaDialect d;                             /* the dialect being written */
    KeyMap recs;                                 /* Decl* -> RecInfo*: the records reached */
    Vec order;                                   /* RecInfo*: in the order they were reached */
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
    if (fld->cons.kind == CONS_NONE)
        return "";                 /* the common case: no stream opened per field */
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

/* ---- which records are shared ------------------------------------------------ */

/* The record info of schema d, made (and queued on o->order) on first use. */
static RecInfo *rec_of(SchemaOut *o, Decl *d)
{
    RecInfo *r = km_get(&o->recs, d);
    if (!r) {
        r = arena_alloc(sizeof *r);
        r->decl = d;
        km_put(&o->recs, d, r);
        vec_push(&o->order, r);
    }
    return r;
}

/* The record a type is made of, under its lists and optionals, or NULL. */
static Decl *record_under(Type *t)
{
    while (t && (t->kind == TY_LIST || t->kind == TY_OPT))
        t = t->elem;
    return t && t->kind == TY_SCHEMA ? t->decl : NULL;
}

/* Counts the uses of every record reached from the records already on
 * o->order (one pass over each schema's fields), then marks shared those
 * used more than once and those that would sit deeper than INLINE_MAX
 * records in the one that holds them.  root: the record written in place as
 * the root object, or NULL; the records on o->order when called are written
 * where the root uses them (depth 1). */
static void mark_shared(SchemaOut *o, Decl *root)
{
    int ntop = o->order.len;
    for (int k = 0; k < o->order.len; k++) {     /* order grows as records are reached */
        Decl *d = ((RecInfo *)o->order.items[k])->decl;
        for (int i = 0; i < d->fields.len; i++) {
            Decl *c = record_under(((Field *)d->fields.items[i])->type);
            if (c)
                rec_of(o, c)->uses++;
        }
    }
    for (int k = 0; k < o->order.len; k++) {
        RecInfo *r = o->order.items[k];
        r->shared = r->uses > 1;
    }
    /* depths: each record not shared is written inside the one record that
     * uses it; walk down from the top records and from every definition */
    Vec stack = { 0 };                           /* (Decl*, depth) pairs */
    for (int k = 0; k < o->order.len; k++) {
        RecInfo *r = o->order.items[k];
        if (k >= ntop && !r->shared)
            continue;
        vec_push(&stack, r->decl);
        vec_push(&stack, (void *)(intptr_t)1);
        while (stack.len) {
            intptr_t depth = (intptr_t)stack.items[--stack.len];
            Decl *d = stack.items[--stack.len];
            for (int i = 0; i < d->fields.len; i++) {
                Decl *c = record_under(((Field *)d->fields.items[i])->type);
                RecInfo *ci = c ? rec_of(o, c) : NULL;
                if (!ci || ci->shared || c == root)
                    continue;
                if (depth + 1 > INLINE_MAX) {
                    ci->shared = true;           /* a definition of its own, walked in turn */
                    continue;
                }
                vec_push(&stack, c);
                vec_push(&stack, (void *)(depth + 1));
            }
        }
    }
}

/* The records under answer type t, shared or written in place. */
static void find_shared(SchemaOut *o, Type *t)
{
    Decl *root = record_under(t);
    if (!root)
        return;
    rec_of(o, root)->uses++;
    mark_shared(o, root);
}

/* ---- writing ---------------------------------------------------------------- */

/* {"$ref":"#/$defs/Name"}, with the field's doc around it if it has one. */
static void put_ref(SchemaOut *o, Decl *d, Field *fld)
{
    if (fld && fld->doc && *fld->doc) {
        fputc('{', o->f);
        put_description(o, fld->doc, NULL, NULL);
        fprintf(o->f, "\"anyOf\":[{\"$ref\":\"#/$defs/%s\"}]}", d->name);
    } else {
        fprintf(o->f, "{\"$ref\":\"#/$defs/%s\"}", d->name);
    }
}

/* A record where its type is used: a reference if it is shared. */
static void put_record(SchemaOut *o, Type *t, Field *fld);

static void put_record_use(SchemaOut *o, Type *t, Field *fld)
{
    if (rec_of(o, t->decl)->shared)
        put_ref(o, t->decl, fld);
    else
        put_record(o, t, fld);
}

/* record -> {"type":"object","description":...,"properties":{...},"required":[...],
 *            "additionalProperties":false} */
static void put_record(SchemaOut *o, Type *t, Field *fld)
{
    Decl *d = t->decl;
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
            put_record_use(o, inner, NULL);
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
    case TY_SCHEMA: put_record_use(o, t, fld); break;
    case TY_ENUM: put_enum(o, t, fld); break;
    default: put_plain(o, t, fld, false); break;
    }
}

/* The definitions of the shared records, as "$defs" inside the root
 * object's last '}', which was just written. */
static void put_defs(SchemaOut *o)
{
    bool any = false;
    for (int k = 0; k < o->order.len; k++) {
        RecInfo *r = o->order.items[k];
        if (!r->shared)
            continue;
        if (!any) {
            fflush(o->f);
            fseek(o->f, -1, SEEK_CUR);           /* back over the root's '}' */
            fputs(",\"$defs\":{", o->f);
        }
        fprintf(o->f, "%s\"%s\":", any ? "," : "", r->decl->name);
        put_record(o, ty_decl(r->decl), NULL);
        any = true;
    }
    if (any)
        fputs("}}", o->f);
}

/* The root (a record at the root is written in place even when shared, so
 * that the root stays an object), then the definitions of the shared
 * records, inside the root's last '}'. */
char *schema_json(Type *t, SchemaDialect dialect)
{
    char *s = NULL;
    size_t n = 0;
    SchemaOut o = { arena_memstream(&s, &n), dialect, { 0 }, { 0 } };
    find_shared(&o, t);
    if (t->kind == TY_SCHEMA)
        put_record(&o, t, NULL);
    else
        put_type(&o, t, NULL);
    put_defs(&o);
    fclose(o.f);
    char *r = arena_strndup(s, n);
    free(s);
    return r;
}

/* The object a tool's parameters make: {"type":"object","properties":{p: ...},
 * "required":[...],"additionalProperties":false}, each parameter's doc
 * comment its description; records shared as in schema_json. */
char *schema_params_json(Vec *params, SchemaDialect dialect)
{
    char *s = NULL;
    size_t n = 0;
    SchemaOut o = { arena_memstream(&s, &n), dialect, { 0 }, { 0 } };
    for (int i = 0; i < params->len; i++) {
        Decl *c = record_under(((Field *)params->items[i])->type);
        if (c)
            rec_of(&o, c)->uses++;
    }
    mark_shared(&o, NULL);
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
    put_defs(&o);
    fclose(o.f);
    char *r = arena_strndup(s, n);
    free(s);
    return r;
}

/* ---- the pretty form ---------------------------------------------------------- */

/* Does the array at p hold only strings without commas and other scalars? */
static bool flat_array(const char *p)
{
    bool in_str = false;
    for (p++; *p; p++) {
        if (*p == '\\' || (!in_str && (*p == '{' || *p == '[')) || (in_str && *p == ','))
            return false;
        if (*p == '"')
            in_str = !in_str;
        else if (!in_str && *p == ']')
            return true;
    }
    return false;
}

/* Writes JSON text indented by two spaces per level (strings left alone),
 * arrays of scalars on one line (--emit-schemas). */
void schema_write_pretty(FILE *f, const char *s)
{
    int depth = 0;
    bool in_str = false;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (in_str) {
            fputc(c, f);
            if (c == '\\' && p[1])
                fputc(*++p, f);
            else if (c == '"')
                in_str = false;
            continue;
        }
        if (c == '"') {
            in_str = true;
            fputc(c, f);
        } else if (c == '[' && flat_array(p)) {
            for (; *p != ']'; p++)
                fputs(*p == ',' ? ", " : (char[2]){ *p, 0 }, f);
            fputc(']', f);
        } else if ((c == '{' || c == '[') && (p[1] == '}' || p[1] == ']')) {
            fputc(c, f);
            fputc(*++p, f);
        } else if (c == '{' || c == '[') {
            fprintf(f, "%c\n%*s", c, ++depth * 2, "");
        } else if (c == '}' || c == ']') {
            fprintf(f, "\n%*s%c", --depth * 2, "", c);
        } else if (c == ',') {
            fprintf(f, ",\n%*s", depth * 2, "");
        } else if (c == ':') {
            fputs(": ", f);
        } else {
            fputc(c, f);
        }
    }
    fputc('\n', f);
}
