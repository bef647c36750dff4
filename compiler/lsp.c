/*
 * lsp.c: `flowc lsp`, a language server over stdio (JSON-RPC 2.0, jansson).
 *
 * Messages are read from stdin and written to stdout, each a JSON body after
 * a `Content-Length: N` header and a blank line.  One thread, one request at
 * a time, in order, so what a client sees is deterministic.
 *
 * The editor's text of each open document is kept (malloc'd; full text on
 * every change, TextDocumentSyncKind.Full).  An analysis is the ordinary
 * front end, flowc_load(), run on that text: a reader hook hands it the
 * open documents' text in place of the files on disk (imports included),
 * and diag_keep() keeps its diagnostics for us instead of printing them.
 * Every analysis starts from arena_free_all(), so the tree of the last one
 * is what hover and the rest look at; a request about another document (or
 * another version) analyses that one first.
 *
 *   initialize, shutdown, exit
 *   textDocument/didOpen, didChange, didClose, didSave: diagnostics, published
 *       per file (imports included), cleared when a file has none left
 *   textDocument/hover: a name's type; a schema's or enum's fields and values
 *       with their doc comments; an agent's, http operation's or builtin's
 *       signature; a model's settings
 *   textDocument/definition: where a name, field, value or type is declared
 *   textDocument/completion: after `.`, the fields of the record before it
 *       (or the values of an enum); elsewhere the declared names (schemas,
 *       enums, models, agents, http operations) and the builtins
 *   textDocument/codeAction: the fix-its of the diagnostics in range
 *   textDocument/formatting: flowc fmt's layout
 * Positions are 0-based lines and UTF-16 code units, converted from the
 * compiler's byte offsets through each source's line map.
 */
#include "flowc.h"

#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- documents -------------------------------------------------------------------- */

/* A declared name, kept from the last analysis that loaded the imports, for
 * completion while the text does not parse. */
typedef struct Name {
    char *name;                                  /* the declaration's name */
    int kind;                                    /* its DeclKind */
    char *doc;                                   /* its doc comment, or NULL */
} Name;

typedef struct Doc {
    char *uri;                                   /* as the client names it */
    char *path;                                  /* the file path it stands for */
    char *text;                                  /* the editor's text */
    size_t len;                                  /* its length */
    int version;                                 /* the client's version */
    Name *names;                                 /* declared names (see Name) */
    int nnames;
} Doc;

static struct {
    Doc **docs;                                  /* open documents */
    int ndocs, capdocs;
    bool shutdown;                               /* shutdown received: exit is clean */
    /* the last analysis */
    const Doc *cur;                              /* of which document, or NULL */
    int cur_version;                             /* at which version */
    Program *prog;                               /* its program (arena) */
    int root;                                    /* its source index */
    Vec diags;                                   /* DiagInfo*: its diagnostics */
    char **published;                            /* URIs holding diagnostics we published */
    int npublished;
} L;

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p) {
        fputs("flowc lsp: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p) {
        fputs("flowc lsp: out of memory\n", stderr);
        exit(1);
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* file:///a/b%20c.flow -> /a/b c.flow; another scheme (untitled:) stays as it is. */
static char *uri_to_path(const char *uri)
{
    if (strncmp(uri, "file://", 7) != 0)
        return xstrdup(uri);
    const char *s = uri + 7;
    char *out = malloc(strlen(s) + 1), *o = out;
    if (!out)
        exit(1);
    for (; *s; s++) {
        if (*s == '%' && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            *o++ = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
    return out;
}

/* /a/b c.flow -> file:///a/b%20c.flow (arena); a relative path is made absolute. */
static const char *path_to_uri(const char *path)
{
    for (int i = 0; i < L.ndocs; i++)            /* a document keeps its own URI */
        if (strcmp(L.docs[i]->path, path) == 0)
            return L.docs[i]->uri;
    char cwd[PATH_MAX];
    const char *abs = path;
    if (path[0] != '/' && getcwd(cwd, sizeof cwd))
        abs = arena_printf("%s/%s", cwd, path);
    char *out = arena_alloc(strlen(abs) * 3 + 8);
    char *o = out + sprintf(out, "file://");
    for (const unsigned char *s = (const unsigned char *)abs; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')
            || strchr("/-._~", *s))
            *o++ = (char)*s;
        else
            o += sprintf(o, "%%%02X", *s);
    }
    *o = '\0';
    return out;
}

static Doc *doc_find(const char *uri)
{
    for (int i = 0; uri && i < L.ndocs; i++)
        if (strcmp(L.docs[i]->uri, uri) == 0)
            return L.docs[i];
    return NULL;
}

/* An open document whose file is path (compared by real path where there is one). */
static Doc *doc_by_path(const char *path)
{
    char a[PATH_MAX], b[PATH_MAX];
    bool ra = realpath(path, a) != NULL;
    for (int i = 0; i < L.ndocs; i++) {
        Doc *d = L.docs[i];
        if (strcmp(d->path, path) == 0)
            return d;
        if (ra && realpath(d->path, b) && strcmp(a, b) == 0)
            return d;
    }
    return NULL;
}

static void doc_set(const char *uri, const char *text, size_t len, int version)
{
    Doc *d = doc_find(uri);
    if (!d) {
        if (L.ndocs == L.capdocs) {
            L.capdocs = L.capdocs ? L.capdocs * 2 : 8;
            L.docs = realloc(L.docs, sizeof *L.docs * (size_t)L.capdocs);
            if (!L.docs)
                exit(1);
        }
        d = calloc(1, sizeof *d);
        if (!d)
            exit(1);
        d->uri = xstrdup(uri);
        d->path = uri_to_path(uri);
        L.docs[L.ndocs++] = d;
    }
    free(d->text);
    d->text = xstrndup(text, len);
    d->len = len;
    d->version = version;
    if (L.cur == d)
        L.cur = NULL;                            /* its analysis is stale */
}

static void names_free(Doc *d)
{
    for (int i = 0; i < d->nnames; i++) {
        free(d->names[i].name);
        free(d->names[i].doc);
    }
    free(d->names);
    d->names = NULL;
    d->nnames = 0;
}

/* Keeps the names the last analysis declared, when its files all parsed. */
static void names_keep(Doc *d, Program *p, bool parsed)
{
    if (!parsed)
        return;
    names_free(d);
    d->names = calloc((size_t)p->decls.len + 1, sizeof *d->names);
    for (int i = 0; d->names && i < p->decls.len; i++) {
        Decl *dd = p->decls.items[i];
        if (dd->kind == D_IMPORT || dd->kind == D_WORKFLOW || !dd->name)
            continue;
        d->names[d->nnames].name = xstrdup(dd->name);
        d->names[d->nnames].kind = dd->kind;
        d->names[d->nnames].doc = dd->doc ? xstrdup(dd->doc) : NULL;
        d->nnames++;
    }
}

static void doc_close(const char *uri)
{
    for (int i = 0; i < L.ndocs; i++) {
        Doc *d = L.docs[i];
        if (strcmp(d->uri, uri) != 0)
            continue;
        if (L.cur == d)
            L.cur = NULL;
        names_free(d);
        free(d->uri);
        free(d->path);
        free(d->text);
        free(d);
        L.docs[i] = L.docs[--L.ndocs];
        return;
    }
}

/* ---- analysis --------------------------------------------------------------------- */

static const char *patched_text;                 /* a completion's text for the current document */

static int read_doc(void *ctx, const char *path, char **text, size_t *len, const char **err)
{
    (void)ctx;
    (void)err;
    Doc *d = doc_by_path(path);
    if (!d)
        return 0;
    const char *t = d == L.cur && patched_text ? patched_text : d->text;
    size_t n = d == L.cur && patched_text ? strlen(patched_text) : d->len;
    *text = xstrndup(t, n);
    *len = n;
    return 1;
}

static int doc_exists(void *ctx, const char *path)
{
    (void)ctx;
    return doc_by_path(path) ? 1 : -1;
}

static const char *doc_display(void *ctx, const char *path)
{
    (void)ctx;
    return path;
}

static const FlowcReader doc_reader = { read_doc, doc_exists, doc_display, NULL };

/* Analyses d (with text instead of its own when not NULL). */
static void analyse(Doc *d, const char *text)
{
    arena_free_all();
    src_reset();
    diag_reset();
    ty_init();
    L.cur = d;
    L.cur_version = d->version;
    patched_text = text;
    L.prog = arena_alloc(sizeof *L.prog);
    flowc_set_reader(&doc_reader);
    diag_keep(true);
    char *path = d->path;
    flowc_load(L.prog, &path, 1);
    diag_keep(false);
    flowc_set_reader(NULL);
    L.diags = diag_take();
    L.root = L.prog->files.len ? (int)(intptr_t)L.prog->files.items[0] : -1;
    bool parsed = true;
    for (int i = 0; i < L.diags.len; i++) {
        DiagInfo *di = L.diags.items[i];
        parsed &= !(di->error && di->code >= E0101 && di->code <= E0211);
    }
    if (!text)
        names_keep(d, L.prog, parsed);
    if (text)
        L.cur = NULL;                            /* a patched analysis is not the document's */
    patched_text = NULL;
}

/* The document's analysis, made if the last one was of something else. */
static bool ensure(Doc *d)
{
    if (!d)
        return false;
    if (L.cur != d || L.cur_version != d->version)
        analyse(d, NULL);
    return L.root >= 0;
}

/* ---- positions -------------------------------------------------------------------- */

/* Byte offset of line/character (UTF-16 units) in source file. */
static uint32_t offset_of(int file, int line, int character)
{
    Source *s = src_get(file);
    if (!s)
        return 0;
    Span probe = { file, 0, 0 };
    int l0, c0;
    src_linecol(probe, &l0, &c0);                /* builds the line map */
    if (line < 0)
        line = 0;
    if (line >= s->nlines)
        return (uint32_t)s->len;
    uint32_t i = s->line_starts[line];
    int units = 0;
    while (i < s->len && s->text[i] != '\n' && units < character) {
        unsigned char c = (unsigned char)s->text[i];
        int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        units += n == 4 ? 2 : 1;
        i += (uint32_t)n;
    }
    return i > s->len ? (uint32_t)s->len : i;
}

static json_t *position(int file, uint32_t off)
{
    Source *s = src_get(file);
    Span sp = { file, off, off };
    int line, col;
    src_linecol(sp, &line, &col);
    int units = 0;
    if (s) {
        uint32_t i = s->line_starts[line - 1];
        while (i < off && i < s->len) {
            unsigned char c = (unsigned char)s->text[i];
            int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            units += n == 4 ? 2 : 1;
            i += (uint32_t)n;
        }
    }
    return json_pack("{s:i, s:i}", "line", line - 1, "character", units);
}

static json_t *range(Span sp)
{
    if (!src_get(sp.file))                       /* a diagnostic about no place: the top */
        return json_pack("{s:{s:i, s:i}, s:{s:i, s:i}}", "start", "line", 0, "character", 0,
                         "end", "line", 0, "character", 0);
    return json_pack("{s:o, s:o}", "start", position(sp.file, sp.lo), "end",
                     position(sp.file, sp.hi));
}

static json_t *location(Span sp)
{
    Source *s = src_get(sp.file);
    if (!s)
        return json_null();
    return json_pack("{s:s, s:o}", "uri", path_to_uri(s->path), "range", range(sp));
}

/* ---- transport ---------------------------------------------------------------------- */

static void send_msg(json_t *msg)
{
    json_object_set_new(msg, "jsonrpc", json_string("2.0"));
    char *body = json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(msg);
    if (!body)
        return;
    printf("Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    fflush(stdout);
    free(body);
}

static void reply(json_t *id, json_t *result)
{
    send_msg(json_pack("{s:O, s:o}", "id", id, "result", result ? result : json_null()));
}

static void reply_error(json_t *id, int code, const char *msg)
{
    send_msg(json_pack("{s:O, s:{s:i, s:s}}", "id", id ? id : json_null(), "error", "code", code,
                       "message", msg));
}

static void notify(const char *method, json_t *params)
{
    send_msg(json_pack("{s:s, s:o}", "method", method, "params", params));
}

/* Reads one message body (malloc'd), NULL at the end of input. */
static char *read_msg(void)
{
    char line[1024];
    long len = -1;
    for (;;) {
        if (!fgets(line, sizeof line, stdin))
            return NULL;
        if (strcmp(line, "\r\n") == 0 || strcmp(line, "\n") == 0) {
            if (len >= 0)
                break;
            continue;
        }
        if (strncasecmp(line, "Content-Length:", 15) == 0)
            len = strtol(line + 15, NULL, 10);
    }
    if (len < 0 || len > (1L << 30))
        return NULL;
    char *body = malloc((size_t)len + 1);
    if (!body || fread(body, 1, (size_t)len, stdin) != (size_t)len) {
        free(body);
        return NULL;
    }
    body[len] = '\0';
    return body;
}

/* ---- diagnostics -------------------------------------------------------------------- */

static json_t *lsp_diag(DiagInfo *d)
{
    const char *msg = d->msg;
    json_t *related = json_array();
    for (int i = 0; i < d->notes.len; i++) {
        DiagNote *n = d->notes.items[i];
        if (n->help)
            msg = arena_printf("%s\nhelp: %s", msg, n->msg);
        else if (src_get(n->span.file))
            json_array_append_new(related, json_pack("{s:o, s:s}", "location", location(n->span),
                                                     "message", n->msg));
    }
    json_t *j = json_pack("{s:o, s:i, s:s, s:s, s:s}", "range", range(d->span), "severity",
                          d->error ? 1 : 2, "code", diag_code_str(d->code), "source", "flowc",
                          "message", msg);
    if (json_array_size(related))
        json_object_set_new(j, "relatedInformation", related);
    else
        json_decref(related);
    return j;
}

/* Publishes the last analysis's diagnostics: the document's (maybe none),
 * each other file's that has some, and none for a file that had some before. */
static void publish(Doc *d)
{
    char **now = NULL;
    int nnow = 0;
    Vec files = { 0 };
    vec_push(&files, (void *)(intptr_t)L.root);
    for (int i = 0; i < L.diags.len; i++) {
        DiagInfo *di = L.diags.items[i];
        bool seen = false;
        for (int k = 0; k < files.len; k++)
            seen |= (int)(intptr_t)files.items[k] == di->span.file;
        if (!seen && src_get(di->span.file))
            vec_push(&files, (void *)(intptr_t)di->span.file);
    }
    for (int k = 0; k < files.len; k++) {
        int f = (int)(intptr_t)files.items[k];
        const char *uri = f == L.root || f < 0 ? d->uri : path_to_uri(src_get(f)->path);
        json_t *arr = json_array();
        for (int i = 0; i < L.diags.len; i++) {
            DiagInfo *di = L.diags.items[i];
            if (di->span.file == f || (f == L.root && !src_get(di->span.file)))
                json_array_append_new(arr, lsp_diag(di));
        }
        notify("textDocument/publishDiagnostics",
               json_pack("{s:s, s:i, s:o}", "uri", uri, "version", d->version, "diagnostics", arr));
        if (f != L.root) {
            now = realloc(now, sizeof *now * (size_t)(nnow + 1));
            now[nnow++] = xstrdup(uri);
        }
    }
    for (int i = 0; i < L.npublished; i++) {     /* files whose diagnostics went away */
        bool still = false;
        for (int k = 0; k < nnow; k++)
            still |= strcmp(now[k], L.published[i]) == 0;
        if (!still && strcmp(L.published[i], d->uri) != 0)
            notify("textDocument/publishDiagnostics",
                   json_pack("{s:s, s:[]}", "uri", L.published[i], "diagnostics"));
        free(L.published[i]);
    }
    free(L.published);
    L.published = now;
    L.npublished = nnow;
}

static void diagnose(const char *uri)
{
    Doc *d = doc_find(uri);
    if (!d)
        return;
    analyse(d, NULL);
    publish(d);
}

/* ---- finding what is under the cursor ------------------------------------------------ */

typedef enum TKind { T_NONE, T_DECL, T_SYM, T_FIELD, T_VALUE, T_BUILTIN, T_PRIM } TKind;

typedef struct Target {
    TKind kind;
    Decl *decl;                                  /* T_DECL; the schema or enum of T_FIELD, T_VALUE */
    Sym *sym;                                    /* T_SYM */
    Field *field;                                /* T_FIELD, T_VALUE */
    int builtin;                                 /* T_BUILTIN */
    const char *name;                            /* T_PRIM */
    Node *node;                                  /* the node found, or NULL */
} Target;

static bool in(Span sp, int file, uint32_t off)
{
    return sp.file == file && sp.lo <= off && off <= sp.hi && sp.hi > sp.lo;
}

static Decl *decl_named(const char *name, int kinds)
{
    for (int i = 0; L.prog && name && i < L.prog->decls.len; i++) {
        Decl *d = L.prog->decls.items[i];
        if (d->kind != D_IMPORT && d->name && (kinds & (1 << d->kind)) && strcmp(d->name, name) == 0)
            return d;
    }
    return NULL;
}

static Field *field_of(Decl *schema, const char *name)
{
    for (int i = 0; schema && i < schema->fields.len; i++) {
        Field *f = schema->fields.items[i];
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static Decl *schema_of(Type *t)
{
    while (t && (t->kind == TY_OPT || t->kind == TY_LIST))
        t = t->elem;
    return t && t->kind == TY_SCHEMA ? t->decl : NULL;
}

static void find_type(TypeExpr *te, int file, uint32_t off, Target *t)
{
    if (!te || !in(te->span, file, off))
        return;
    if (te->kind != TE_NAME) {
        find_type(te->elem, file, off, t);
        return;
    }
    Decl *d = decl_named(te->name, 1 << D_SCHEMA | 1 << D_ENUM);
    if (d)
        *t = (Target){ T_DECL, d, NULL, NULL, 0, NULL, NULL };
    else
        *t = (Target){ T_PRIM, NULL, NULL, NULL, 0, te->name, NULL };
}

static void find_node(Node *n, int file, uint32_t off, Target *t);

static void find_list(Vec *v, int file, uint32_t off, Target *t)
{
    for (int i = 0; i < v->len; i++)
        find_node(v->items[i], file, off, t);
}

/* The most specific name under off: children are searched after their parent. */
static void find_node(Node *n, int file, uint32_t off, Target *t)
{
    if (!n || n->span.file != file || off < n->span.lo || off > n->span.hi)
        return;
    bool on_name = in(n->name_span, file, off);
    switch (n->kind) {
    case N_NAME:
        if (n->sym)
            *t = (Target){ T_SYM, NULL, n->sym, NULL, 0, NULL, n };
        else if (n->decl && n->decl->kind == D_ENUM) {    /* a match arm's case */
            Field *v = NULL;
            for (int i = 0; i < n->decl->values.len && !v; i++)
                if (strcmp(((Field *)n->decl->values.items[i])->name, n->name) == 0)
                    v = n->decl->values.items[i];
            *t = (Target){ v ? T_VALUE : T_DECL, n->decl, NULL, v, 0, NULL, n };
        } else if (decl_named(n->name, ~0))
            *t = (Target){ T_DECL, decl_named(n->name, ~0), NULL, NULL, 0, NULL, n };
        break;
    case N_FIELD:
        if (on_name && n->decl && n->decl->kind == D_ENUM) {
            Field *v = NULL;
            for (int i = 0; i < n->decl->values.len && !v; i++)
                if (strcmp(((Field *)n->decl->values.items[i])->name, n->name) == 0)
                    v = n->decl->values.items[i];
            *t = (Target){ T_VALUE, n->decl, NULL, v, 0, NULL, n };
        } else if (on_name && n->lhs) {
            Decl *s = schema_of(n->lhs->type);
            Field *f = field_of(s, n->name);
            if (f)
                *t = (Target){ T_FIELD, s, NULL, f, 0, NULL, n };
        }
        break;
    case N_CALL:
        if (on_name && n->decl)
            *t = (Target){ T_DECL, n->decl, NULL, NULL, 0, NULL, n };
        else if (on_name && n->builtin)
            *t = (Target){ T_BUILTIN, NULL, NULL, NULL, n->builtin, NULL, n };
        else if (n->using_model && in(n->using_span, file, off))
            *t = (Target){ T_DECL, decl_named(n->using_model, 1 << D_MODEL), NULL, NULL, 0, NULL, n };
        for (int i = 0; i < n->targs.len; i++)
            find_type(n->targs.items[i], file, off, t);
        break;
    case N_RECORD:
        if (on_name && n->decl)
            *t = (Target){ T_DECL, n->decl, NULL, NULL, 0, NULL, n };
        for (int i = 0; i < n->inits.len; i++) {
            FieldInit *fi = n->inits.items[i];
            Field *f = field_of(n->decl, fi->name);
            if (f && in(fi->span, file, off))
                *t = (Target){ T_FIELD, n->decl, NULL, f, 0, NULL, n };
            find_node(fi->value, file, off, t);
        }
        break;
    case N_LET: case N_FOR: case N_PIPELINE:
        if (on_name && n->sym)
            *t = (Target){ T_SYM, NULL, n->sym, NULL, 0, NULL, n };
        break;
    case N_STAGE:
        if (on_name && n->sym)
            *t = (Target){ T_SYM, NULL, n->sym, NULL, 0, NULL, n };
        break;
    default:
        break;
    }
    find_node(n->lhs, file, off, t);
    find_node(n->rhs, file, off, t);
    find_node(n->operand, file, off, t);
    find_node(n->iter, file, off, t);
    find_node(n->cond, file, off, t);
    find_node(n->then, file, off, t);
    find_node(n->els, file, off, t);
    find_node(n->body, file, off, t);
    find_node(n->value, file, off, t);
    find_list(&n->args, file, off, t);
    find_list(&n->stmts, file, off, t);
    for (int i = 0; i < n->arms.len; i++) {
        MatchArm *a = n->arms.items[i];
        find_list(&a->pats, file, off, t);
        find_node(a->body, file, off, t);
    }
    for (int i = 0; i < n->parts.len; i++)
        find_node(((StrPart *)n->parts.items[i])->expr, file, off, t);
    for (int i = 0; i < n->opts.len; i++)
        find_node(((Setting *)n->opts.items[i])->value, file, off, t);
}

static void find_decl(Decl *d, int file, uint32_t off, Target *t)
{
    if (d->file != file || off < d->span.lo || off > d->span.hi || d->kind == D_IMPORT)
        return;
    if (in(d->name_span, file, off))
        *t = (Target){ T_DECL, d, NULL, NULL, 0, NULL, NULL };
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        if (in(f->span, file, off)) {
            if (d->kind == D_SCHEMA)
                *t = (Target){ T_FIELD, d, NULL, f, 0, NULL, NULL };
            else if (f->sym)
                *t = (Target){ T_SYM, NULL, f->sym, NULL, 0, NULL, NULL };
        }
        find_type(f->texpr, file, off, t);
        find_node(f->deflt, file, off, t);
    }
    for (int i = 0; i < d->values.len; i++) {
        Field *v = d->values.items[i];
        if (in(v->span, file, off))
            *t = (Target){ T_VALUE, d, NULL, v, 0, NULL, NULL };
    }
    find_type(d->ret, file, off, t);
    for (int i = 0; i < d->settings.len; i++) {
        Setting *s = d->settings.items[i];
        Node *v = s->value;
        if (strcmp(s->key, "model") == 0 && v && v->kind == N_NAME && in(v->span, file, off))
            *t = (Target){ T_DECL, decl_named(v->name, 1 << D_MODEL), NULL, NULL, 0, NULL, v };
        else
            find_node(v, file, off, t);
    }
    find_node(d->body, file, off, t);
}

static Target target_at(int file, uint32_t off)
{
    Target t = { 0 };
    for (int i = 0; L.prog && i < L.prog->decls.len; i++)
        find_decl(L.prog->decls.items[i], file, off, &t);
    if ((t.kind == T_DECL && !t.decl) || (t.kind == T_VALUE && !t.field))
        t.kind = T_NONE;
    return t;
}

/* ---- hover ---------------------------------------------------------------------------- */

static const char *type_text(TypeExpr *te)
{
    if (!te)
        return "?";
    if (te->kind == TE_LIST)
        return arena_printf("list<%s>", type_text(te->elem));
    if (te->kind == TE_OPT)
        return arena_printf("%s?", type_text(te->elem));
    return te->name;
}

static const char *doc_lines(const char *doc, const char *indent)
{
    if (!doc)
        return "";
    const char *out = "";
    const char *s = doc;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t n = nl ? (size_t)(nl - s) : strlen(s);
        out = arena_printf("%s%s/// %.*s\n", out, indent, (int)n, s);
        s += n + (nl ? 1 : 0);
    }
    return out;
}

static const char *cons_text(Constraint *c)
{
    if (c->kind == CONS_NONE || !c->lo || !c->hi)
        return "";
    Source *s = src_get(c->span.file);
    if (!s)
        return "";
    return arena_printf(" %.*s", (int)(c->span.hi - c->span.lo), s->text + c->span.lo);
}

static const char *field_line(Field *f)
{
    const char *alias = f->wire && strcmp(f->wire, f->name) != 0
                        ? arena_printf(" @alias(\"%s\")", f->wire) : "";
    return arena_printf("%s: %s%s%s%s", f->name, type_text(f->texpr), cons_text(&f->cons), alias,
                        f->sensitive ? " @sensitive" : "");
}

/* A schema or enum with its fields or values and every doc comment. */
static const char *decl_block(Decl *d)
{
    const char *s = arena_printf("%s%s %s {\n", doc_lines(d->doc, ""),
                                 d->kind == D_ENUM ? "enum" : "schema", d->name);
    Vec *items = d->kind == D_ENUM ? &d->values : &d->fields;
    for (int i = 0; i < items->len; i++) {
        Field *f = items->items[i];
        s = arena_printf("%s%s  %s\n", s, doc_lines(f->doc, "  "),
                         d->kind == D_ENUM ? f->name : field_line(f));
    }
    return arena_printf("%s}", s);
}

static const char *params_text(Decl *d)
{
    const char *s = "";
    for (int i = 0; i < d->fields.len; i++) {
        Field *f = d->fields.items[i];
        s = arena_printf("%s%s%s: %s", s, i ? ", " : "", f->name, type_text(f->texpr));
    }
    return s;
}

static const char *setting_text(Decl *d, const char *key)
{
    for (int i = 0; i < d->settings.len; i++) {
        Setting *s = d->settings.items[i];
        Source *src = src_get(s->value->span.file);
        if (strcmp(s->key, key) == 0 && src && s->value->span.hi - s->value->span.lo < 200)
            return arena_printf("%.*s", (int)(s->value->span.hi - s->value->span.lo),
                                src->text + s->value->span.lo);
    }
    return NULL;
}

static const char *decl_hover(Decl *d)
{
    const char *code, *doc = d->doc;
    switch (d->kind) {
    case D_SCHEMA: case D_ENUM:
        return arena_printf("```flow\n%s\n```", decl_block(d));
    case D_AGENT: {
        const char *model = setting_text(d, "model");
        code = arena_printf("agent %s(%s) -> %s", d->name, params_text(d), type_text(d->ret));
        if (model)
            code = arena_printf("%s\n  model: %s", code, model);
        break;
    }
    case D_HTTP: {
        const char *m = setting_text(d, "method"), *u = setting_text(d, "url");
        code = arena_printf("http %s(%s)%s%s", d->name, params_text(d), d->ret ? " -> " : "",
                            d->ret ? type_text(d->ret) : "");
        if (m)
            code = arena_printf("%s\n  method: %s", code, m);
        if (u)
            code = arena_printf("%s\n  url: %s", code, u);
        break;
    }
    case D_MODEL: {
        code = arena_printf("model %s", d->name);
        static const char *const keys[] = { "provider", "name", "alias_of", "usd_per_mtok_in",
                                            "usd_per_mtok_out", "retires", "accepts_sensitive", NULL };
        for (int i = 0; keys[i]; i++) {
            const char *v = setting_text(d, keys[i]);
            if (v)
                code = arena_printf("%s\n  %s: %s", code, keys[i], v);
        }
        break;
    }
    case D_WORKFLOW:
        code = arena_printf("workflow %s(%s)%s%s", d->name, params_text(d), d->ret ? " -> " : "",
                            d->ret ? type_text(d->ret) : "");
        break;
    default:
        return NULL;
    }
    return arena_printf("```flow\n%s%s\n```", doc_lines(doc, ""), code);
}

static const char *sym_hover(Sym *s)
{
    static const char *const what[] = { "let", "parameter", "item", "stage" };
    const char *h = arena_printf("```flow\n%s %s: %s\n```", what[s->kind], s->name,
                                 s->type ? ty_str(s->type) : "?");
    Decl *sd = schema_of(s->type);
    if (!sd && s->type && s->type->kind == TY_ENUM)
        sd = s->type->decl;
    if (sd)
        h = arena_printf("%s\n```flow\n%s\n```", h, decl_block(sd));
    return h;
}

static const char *hover_text(Target *t)
{
    switch (t->kind) {
    case T_DECL: return decl_hover(t->decl);
    case T_SYM: return sym_hover(t->sym);
    case T_FIELD:
        return arena_printf("```flow\n%s%s\n```\nfield of schema `%s`", doc_lines(t->field->doc, ""),
                            field_line(t->field), t->decl->name);
    case T_VALUE:
        return arena_printf("```flow\n%s%s.%s\n```\nvalue of enum `%s`", doc_lines(t->field->doc, ""),
                            t->decl->name, t->field->name, t->decl->name);
    case T_BUILTIN: {
        const char *sig = sema_builtin_signature(t->builtin);
        return sig ? arena_printf("```flow\n%s\n```\nbuiltin", sig) : NULL;
    }
    case T_PRIM: return arena_printf("```flow\n%s\n```\nbuilt-in type", t->name);
    default: return NULL;
    }
}

/* ---- requests ------------------------------------------------------------------------ */

static Doc *param_doc(json_t *params, int *line, int *character)
{
    const char *uri = NULL;
    json_unpack(params, "{s:{s:s}}", "textDocument", "uri", &uri);
    json_t *pos = json_object_get(params, "position");
    if (line && pos) {
        *line = (int)json_integer_value(json_object_get(pos, "line"));
        *character = (int)json_integer_value(json_object_get(pos, "character"));
    }
    return doc_find(uri);
}

static void on_hover(json_t *id, json_t *params)
{
    int line = 0, ch = 0;
    Doc *d = param_doc(params, &line, &ch);
    if (!ensure(d)) {
        reply(id, NULL);
        return;
    }
    Target t = target_at(L.root, offset_of(L.root, line, ch));
    const char *text = hover_text(&t);
    if (!text) {
        reply(id, NULL);
        return;
    }
    reply(id, json_pack("{s:{s:s, s:s}}", "contents", "kind", "markdown", "value", text));
}

static Span decl_span_of(Target *t)
{
    switch (t->kind) {
    case T_DECL: return t->decl->name_span;
    case T_SYM: return t->sym->span;
    case T_FIELD: case T_VALUE: return t->field->span;
    default: return no_span;
    }
}

static void on_definition(json_t *id, json_t *params)
{
    int line = 0, ch = 0;
    Doc *d = param_doc(params, &line, &ch);
    if (!ensure(d)) {
        reply(id, NULL);
        return;
    }
    Target t = target_at(L.root, offset_of(L.root, line, ch));
    Span sp = decl_span_of(&t);
    reply(id, src_get(sp.file) ? location(sp) : NULL);
}

/* LSP CompletionItemKind */
enum { CK_FUNCTION = 3, CK_FIELD = 5, CK_CLASS = 7, CK_MODULE = 9, CK_ENUM = 13,
       CK_ENUM_MEMBER = 20, CK_STRUCT = 22 };

static json_t *item(const char *label, int kind, const char *detail, const char *doc)
{
    json_t *j = json_pack("{s:s, s:i}", "label", label, "kind", kind);
    if (detail)
        json_object_set_new(j, "detail", json_string(detail));
    if (doc)
        json_object_set_new(j, "documentation", json_string(doc));
    return j;
}

/* After `x.`: the fields of x's record, or the values of enum x. */
static json_t *member_items(Node *n)
{
    json_t *items = json_array();
    if (n->decl && n->decl->kind == D_ENUM) {
        for (int i = 0; i < n->decl->values.len; i++) {
            Field *v = n->decl->values.items[i];
            json_array_append_new(items, item(v->name, CK_ENUM_MEMBER, n->decl->name, v->doc));
        }
        return items;
    }
    Decl *s = n->lhs ? schema_of(n->lhs->type) : NULL;
    if (s && n->lhs->type->kind == TY_LIST)
        s = NULL;                                /* a list has no fields */
    for (int i = 0; s && i < s->fields.len; i++) {
        Field *f = s->fields.items[i];
        json_array_append_new(items, item(f->name, CK_FIELD,
                                          arena_printf("%s: %s", f->name, type_text(f->texpr)),
                                          f->doc));
    }
    return items;
}

static Node *field_at(Node *n, int file, uint32_t off);

static Node *field_in_list(Vec *v, int file, uint32_t off)
{
    Node *r = NULL;
    for (int i = 0; !r && i < v->len; i++)
        r = field_at(v->items[i], file, off);
    return r;
}

/* The N_FIELD whose name ends at off (the name being completed). */
static Node *field_at(Node *n, int file, uint32_t off)
{
    if (!n || n->span.file != file || off < n->span.lo || off > n->span.hi)
        return NULL;
    Node *r = NULL;
    Node *kids[] = { n->lhs, n->rhs, n->operand, n->iter, n->cond, n->then, n->els, n->body, n->value };
    for (size_t i = 0; !r && i < sizeof kids / sizeof kids[0]; i++)
        r = field_at(kids[i], file, off);
    if (!r)
        r = field_in_list(&n->args, file, off);
    if (!r)
        r = field_in_list(&n->stmts, file, off);
    for (int i = 0; !r && i < n->arms.len; i++)
        r = field_at(((MatchArm *)n->arms.items[i])->body, file, off);
    for (int i = 0; !r && i < n->inits.len; i++)
        r = field_at(((FieldInit *)n->inits.items[i])->value, file, off);
    for (int i = 0; !r && i < n->parts.len; i++)
        r = field_at(((StrPart *)n->parts.items[i])->expr, file, off);
    if (!r && n->kind == N_FIELD && n->name_span.lo <= off && off <= n->name_span.hi)
        r = n;
    return r;
}

static Node *member_at(int file, uint32_t off)
{
    for (int i = 0; L.prog && i < L.prog->decls.len; i++) {
        Decl *d = L.prog->decls.items[i];
        if (d->file != file)
            continue;
        Node *r = field_at(d->body, file, off);
        for (int k = 0; !r && k < d->settings.len; k++)
            r = field_at(((Setting *)d->settings.items[k])->value, file, off);
        if (r)
            return r;
    }
    return NULL;
}

#define HOLE "__flowc_complete__"

static void on_completion(json_t *id, json_t *params)
{
    int line = 0, ch = 0;
    Doc *d = param_doc(params, &line, &ch);
    if (!d) {
        reply(id, json_array());
        return;
    }
    ensure(d);
    uint32_t off = L.root >= 0 ? offset_of(L.root, line, ch) : 0;
    /* after a '.' and what is typed of a name: complete a member.  A lone '.'
     * does not parse, so a placeholder name goes after it for the analysis */
    uint32_t w = off;
    while (w > 0 && (isalnum((unsigned char)d->text[w - 1]) || d->text[w - 1] == '_'))
        w--;
    if (L.root >= 0 && w > 0 && d->text[w - 1] == '.') {
        size_t plen = d->len + sizeof HOLE;      /* malloc: analyse() frees the arena */
        char *patched = malloc(plen);
        if (!patched)
            exit(1);
        snprintf(patched, plen, "%.*s" HOLE "%s", (int)w, d->text, d->text + off);
        analyse(d, patched);
        free(patched);
        Node *n = L.root >= 0 ? member_at(L.root, w) : NULL;
        json_t *items = n ? member_items(n) : json_array();
        L.cur = NULL;                            /* the tree is the patched text's */
        reply(id, json_pack("{s:b, s:o}", "isIncomplete", 0, "items", items));
        return;
    }
    json_t *items = json_array();
    static const char *const what[] = { "import", "schema", "enum", "model", "agent",
                                        "workflow", "http operation" };
    for (int i = 0; i < d->nnames; i++) {        /* as of the last text that parsed */
        Name *nm = &d->names[i];
        int kind = nm->kind == D_SCHEMA ? CK_STRUCT : nm->kind == D_ENUM ? CK_ENUM
                   : nm->kind == D_MODEL ? CK_MODULE : CK_FUNCTION;
        json_array_append_new(items, item(nm->name, kind, what[nm->kind], nm->doc));
    }
    for (int b = 1; sema_builtin_signature(b); b++) {
        const char *sig = sema_builtin_signature(b);
        const char *end = strpbrk(sig, "<(");
        json_array_append_new(items, item(arena_strndup(sig, (size_t)(end - sig)), CK_FUNCTION,
                                          sig, NULL));
    }
    reply(id, json_pack("{s:b, s:o}", "isIncomplete", 0, "items", items));
}

static bool overlaps(Span sp, int file, uint32_t lo, uint32_t hi)
{
    return sp.file == file && sp.lo <= hi && lo <= sp.hi;
}

static void on_code_action(json_t *id, json_t *params)
{
    Doc *d = param_doc(params, NULL, NULL);
    json_t *actions = json_array();
    if (!ensure(d)) {
        reply(id, actions);
        return;
    }
    json_t *r = json_object_get(params, "range");
    json_t *s = json_object_get(r, "start"), *e = json_object_get(r, "end");
    uint32_t lo = offset_of(L.root, (int)json_integer_value(json_object_get(s, "line")),
                            (int)json_integer_value(json_object_get(s, "character")));
    uint32_t hi = offset_of(L.root, (int)json_integer_value(json_object_get(e, "line")),
                            (int)json_integer_value(json_object_get(e, "character")));
    for (int i = 0; i < L.diags.len; i++) {
        DiagInfo *di = L.diags.items[i];
        if (!overlaps(di->span, L.root, lo, hi))
            continue;
        for (int k = 0; k < di->fixes.len; k++) {
            DiagFix *f = di->fixes.items[k];
            if (f->span.file != L.root)
                continue;
            json_t *edit = json_pack("{s:o, s:s}", "range", range(f->span), "newText", f->text);
            json_t *changes = json_object();
            json_object_set_new(changes, d->uri, json_pack("[o]", edit));
            const char *title = *f->text ? arena_printf("Replace with '%s'", f->text) : "Remove it";
            json_array_append_new(actions, json_pack("{s:s, s:s, s:[o], s:{s:o}}", "title", title,
                                                     "kind", "quickfix", "diagnostics",
                                                     lsp_diag(di), "edit", "changes", changes));
        }
    }
    reply(id, actions);
}

static void on_formatting(json_t *id, json_t *params)
{
    Doc *d = param_doc(params, NULL, NULL);
    if (!ensure(d)) {
        reply(id, NULL);
        return;
    }
    int st = 0;
    size_t len = 0;
    diag_keep(true);
    char *out = fmt_source(L.root, &len, &st);
    diag_keep(false);
    diag_take();
    if (!out) {
        reply(id, NULL);                         /* a syntax error: nothing to do */
        return;
    }
    json_t *edits = json_array();
    if (len != d->len || memcmp(out, d->text, len) != 0) {
        Span all = { L.root, 0, (uint32_t)src_get(L.root)->len };
        json_array_append_new(edits, json_pack("{s:o, s:s%}", "range", range(all), "newText",
                                               out, len));
    }
    free(out);
    reply(id, edits);
}

static json_t *capabilities(void)
{
    return json_pack("{s:{s:b, s:i, s:{s:b}}, s:b, s:b, s:{s:[s], s:b}, s:b, s:b}",
                     "textDocumentSync", "openClose", 1, "change", 1, "save", "includeText", 0,
                     "hoverProvider", 1, "definitionProvider", 1,
                     "completionProvider", "triggerCharacters", ".", "resolveProvider", 0,
                     "codeActionProvider", 1, "documentFormattingProvider", 1);
}

/* One message; false to stop. */
static bool handle(json_t *msg)
{
    const char *method = json_string_value(json_object_get(msg, "method"));
    json_t *id = json_object_get(msg, "id");
    json_t *params = json_object_get(msg, "params");
    if (!method)
        return true;                             /* a response to us: we send no requests */
    if (strcmp(method, "initialize") == 0)
        reply(id, json_pack("{s:o, s:{s:s, s:s}}", "capabilities", capabilities(), "serverInfo",
                            "name", "flowc", "version", FLOWC_VERSION));
    else if (strcmp(method, "shutdown") == 0) {
        L.shutdown = true;
        reply(id, NULL);
    } else if (strcmp(method, "exit") == 0)
        return false;
    else if (strcmp(method, "textDocument/didOpen") == 0) {
        const char *uri = NULL, *text = NULL;
        int version = 0;
        json_unpack(params, "{s:{s:s, s?i, s:s}}", "textDocument", "uri", &uri, "version", &version,
                    "text", &text);
        if (uri && text) {
            doc_set(uri, text, strlen(text), version);
            diagnose(uri);
        }
    } else if (strcmp(method, "textDocument/didChange") == 0) {
        const char *uri = NULL;
        int version = 0;
        json_unpack(params, "{s:{s:s, s?i}}", "textDocument", "uri", &uri, "version", &version);
        json_t *changes = json_object_get(params, "contentChanges");
        size_t n = json_array_size(changes);
        json_t *last = n ? json_array_get(changes, n - 1) : NULL;
        json_t *text = json_object_get(last, "text");
        if (uri && json_is_string(text)) {        /* full sync: the last change is the text */
            doc_set(uri, json_string_value(text), json_string_length(text), version);
            diagnose(uri);
        }
    } else if (strcmp(method, "textDocument/didSave") == 0) {
        const char *uri = NULL;
        json_unpack(params, "{s:{s:s}}", "textDocument", "uri", &uri);
        if (uri)
            diagnose(uri);                       /* files that import it may have changed */
    } else if (strcmp(method, "textDocument/didClose") == 0) {
        const char *uri = NULL;
        json_unpack(params, "{s:{s:s}}", "textDocument", "uri", &uri);
        if (uri) {
            doc_close(uri);
            notify("textDocument/publishDiagnostics", json_pack("{s:s, s:[]}", "uri", uri,
                                                                "diagnostics"));
        }
    } else if (strcmp(method, "textDocument/hover") == 0)
        on_hover(id, params);
    else if (strcmp(method, "textDocument/definition") == 0)
        on_definition(id, params);
    else if (strcmp(method, "textDocument/completion") == 0)
        on_completion(id, params);
    else if (strcmp(method, "textDocument/codeAction") == 0)
        on_code_action(id, params);
    else if (strcmp(method, "textDocument/formatting") == 0)
        on_formatting(id, params);
    else if (id)
        reply_error(id, -32601, arena_printf("method not found: %s", method));
    return true;                                 /* other notifications are ignored */
}

static const char lsp_usage[] =
    "usage: flowc lsp\n"
    "\n"
    "A language server for .flow files on stdin and stdout (the Language Server\n"
    "Protocol): diagnostics as you type, hover, go to definition, completion,\n"
    "quick fixes and formatting.  Editors start it; see editors/ in the sources.\n";

int cmd_lsp(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(lsp_usage, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--stdio") != 0) {   /* what VS Code's client adds */
            fprintf(stderr, "flowc lsp: unknown option '%s'\n%s", argv[i], lsp_usage);
            return 2;
        }
    }
    char *body;
    while ((body = read_msg())) {
        json_error_t err;
        json_t *msg = json_loads(body, 0, &err);
        free(body);
        if (!msg) {
            reply_error(NULL, -32700, arena_printf("parse error: %s", err.text));
            continue;
        }
        bool go = handle(msg);
        json_decref(msg);
        if (!go)
            break;
    }
    for (int i = 0; i < L.ndocs; i++) {
        names_free(L.docs[i]);
        free(L.docs[i]->uri);
        free(L.docs[i]->path);
        free(L.docs[i]->text);
        free(L.docs[i]);
    }
    free(L.docs);
    for (int i = 0; i < L.npublished; i++)
        free(L.published[i]);
    free(L.published);
    return L.shutdown ? 0 : 1;
}
