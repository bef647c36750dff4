/*
 * types.c: the semantic types of the flow language.
 *
 * Primitive types are singletons made once by ty_init(); list and optional
 * types are built on demand in the arena and compared structurally; schema
 * and enum types are nominal, one per declaration (cached in Decl.type).
 * ty_assignable() is the one place that says which value may flow where:
 * int widens to float, T and null flow into T?, never flows anywhere, an
 * empty list literal (list with no element type) flows into any list, and a
 * list flows into a list whose element accepts its element.
 */
#include "flowc.h"

#include <string.h>

Type *ty_error, *ty_void, *ty_never, *ty_null, *ty_string, *ty_int,
    *ty_float, *ty_bool, *ty_duration, *ty_model;

static Type *prim(TypeKind k)
{
    Type *t = arena_alloc(sizeof *t);
    t->kind = k;
    return t;
}

void ty_init(void)
{
    ty_error = prim(TY_ERROR);
    ty_void = prim(TY_VOID);
    ty_never = prim(TY_NEVER);
    ty_null = prim(TY_NULL);
    ty_string = prim(TY_STRING);
    ty_int = prim(TY_INT);
    ty_float = prim(TY_FLOAT);
    ty_bool = prim(TY_BOOL);
    ty_duration = prim(TY_DURATION);
    ty_model = prim(TY_MODEL);
}

Type *ty_list(Type *elem)
{
    Type *t = prim(TY_LIST);
    t->elem = elem;
    return t;
}

/* T? of T?, of error, of never and of null is itself. */
Type *ty_opt(Type *elem)
{
    if (!elem || elem->kind == TY_OPT || elem->kind == TY_ERROR ||
        elem->kind == TY_NEVER || elem->kind == TY_NULL)
        return elem;
    Type *t = prim(TY_OPT);
    t->elem = elem;
    return t;
}

Type *ty_decl(Decl *d)
{
    if (d->type)
        return d->type;
    Type *t = prim(d->kind == D_ENUM ? TY_ENUM : TY_SCHEMA);
    t->decl = d;
    d->type = t;
    return t;
}

bool ty_equal(Type *a, Type *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->kind != b->kind)
        return false;
    switch (a->kind) {
    case TY_OPT:
    case TY_LIST:
        return ty_equal(a->elem, b->elem);
    case TY_SCHEMA:
    case TY_ENUM:
        return a->decl == b->decl;
    default:
        return true;
    }
}

bool ty_assignable(Type *to, Type *from)
{
    if (!to || !from || to->kind == TY_ERROR || from->kind == TY_ERROR)
        return true;
    if (from->kind == TY_NEVER)
        return true;
    if (to->kind == TY_OPT) {
        if (from->kind == TY_NULL)
            return true;
        if (from->kind == TY_OPT)
            return ty_assignable(to->elem, from->elem);
        return ty_assignable(to->elem, from);
    }
    if (to->kind == TY_FLOAT && from->kind == TY_INT)
        return true;
    if (to->kind == TY_LIST && from->kind == TY_LIST) {
        if (!from->elem || !to->elem)
            return true;
        return ty_assignable(to->elem, from->elem);
    }
    return ty_equal(to, from);
}

static const char *prim_name(TypeKind k)
{
    switch (k) {
    case TY_ERROR: return "<error>";
    case TY_VOID: return "void";
    case TY_NEVER: return "never";
    case TY_NULL: return "null";
    case TY_STRING: return "string";
    case TY_INT: return "int";
    case TY_FLOAT: return "float";
    case TY_BOOL: return "bool";
    case TY_DURATION: return "duration";
    case TY_MODEL: return "model";
    default: return "?";
    }
}

/* "list<list<Lead>?>": written outside in, in one pass (a type nested a
 * thousand deep costs a thousand steps, not a million). */
const char *ty_str(Type *t)
{
    if (!t)
        return "?";
    size_t depth = 0, len = 0;
    Type *base = t;
    for (; base->kind == TY_OPT || (base->kind == TY_LIST && base->elem); base = base->elem) {
        depth++;
        len += base->kind == TY_LIST ? 6 : 1;    /* "list<" ">" or "?" */
    }
    const char *name = base->kind == TY_SCHEMA || base->kind == TY_ENUM ? base->decl->name
                       : base->kind == TY_LIST ? "empty list" : prim_name(base->kind);
    if (!depth)
        return name;
    size_t nlen = strlen(name), at = 0;
    char *out = arena_alloc(len + nlen + 1);
    char *suffix = arena_alloc(depth);
    size_t ns = 0;
    for (Type *u = t; u != base; u = u->elem) {
        if (u->kind == TY_LIST) {
            memcpy(out + at, "list<", 5);
            at += 5;
        }
        suffix[ns++] = u->kind == TY_LIST ? '>' : '?';
    }
    memcpy(out + at, name, nlen);
    at += nlen;
    while (ns)
        out[at++] = suffix[--ns];
    out[at] = '\0';
    return out;
}
