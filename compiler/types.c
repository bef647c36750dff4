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

const char *ty_str(Type *t)
{
    if (!t)
        return "?";
    switch (t->kind) {
    case TY_OPT:
        return arena_printf("%s?", ty_str(t->elem));
    case TY_LIST:
        return t->elem ? arena_printf("list<%s>", ty_str(t->elem)) : "empty list";
    case TY_SCHEMA:
    case TY_ENUM:
        return t->decl->name;
    default:
        return prim_name(t->kind);
    }
}
