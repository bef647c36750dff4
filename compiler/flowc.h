/*
 * flowc.h: the compiler's one internal header, a section per .c file.
 *
 * The pipeline is: source files (src.c) -> tokens (grammar/flow.l) -> AST
 * (grammar/flow.y building nodes with ast.c) -> resolved and typed AST
 * (sema.c) -> C (cg.c) and JSON Schema (schema.c).  Every node and token
 * carries a Span; line and column are computed from the source's line map
 * only when a diagnostic is printed.  All compiler memory comes from one
 * arena per compilation and is never freed piecemeal.
 */
#ifndef FLOWC_H
#define FLOWC_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FLOWC_VERSION "0.1.0"
/* The runtime ABI the generated C is written for: FLOWRT_ABI of the
 * flowrt.h it must be compiled with (runtime/flowrt.h). */
#define FLOWC_RUNTIME_ABI 8

/* ---- arena.c: one arena per compilation ---------------------------------- */

void *arena_alloc(size_t n);                     /* zeroed, never NULL (aborts on OOM) */
char *arena_strdup(const char *s);
char *arena_strndup(const char *s, size_t n);
char *arena_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void arena_free_all(void);
/* open_memstream(3) that, like the arena, gives up only when memory is gone;
 * the caller fcloses it and frees *buf. */
FILE *arena_memstream(char **buf, size_t *len);

/* A growable array of pointers, arena-backed. */
typedef struct Vec {
    void **items;                                /* the elements */
    int len;                                     /* how many are used */
    int cap;                                     /* how many fit */
} Vec;

void vec_push(Vec *v, void *item);

/* A hash map from pointers (or, with str set, from strings) to pointers,
 * arena-backed: a lookup instead of a walk over a list, so that n names cost
 * n steps and not n^2.  Zeroed, it is empty; a NULL value reads as absent. */
typedef struct KeyMap {
    const void **keys;                           /* NULL: an empty slot */
    void **vals;                                 /* what each key maps to */
    size_t cap;                                  /* slots, a power of two */
    size_t len;                                  /* used slots */
    bool str;                                    /* keys are strings */
} KeyMap;

void *km_get(const KeyMap *m, const void *key);
void km_put(KeyMap *m, const void *key, void *val);

/* ---- src.c: source files and their line maps ----------------------------- */

typedef struct Source {
    const char *path;                            /* as given on the command line or import */
    const char *text;                            /* whole file, NUL-terminated */
    size_t len;                                  /* bytes in text */
    uint32_t *line_starts;                       /* byte offset of each line's start */
    int nlines;                                  /* entries in line_starts */
} Source;

/* A half-open byte range [lo, hi) in one source file. */
typedef struct Span {
    int file;                                    /* index into the source table, -1 for none */
    uint32_t lo;                                 /* first byte */
    uint32_t hi;                                 /* one past the last byte */
} Span;

extern const Span no_span;

int src_load(const char *path);                  /* index of the source, -1 (errno set) on failure */
int src_add(const char *path, const char *text, size_t len); /* from memory (tests, stdin) */
int src_read_stream(FILE *f, const char *path);  /* a whole stream (stdin), -1 (errno set) on failure */
Source *src_get(int file);
int src_count(void);
void src_linecol(Span sp, int *line, int *col);  /* 1-based; col counts bytes */
Span span_join(Span a, Span b);                  /* from a.lo to b.hi */
void src_reset(void);                            /* forget all sources (fuzz harness, with arena_free_all) */

/* ---- diag.c: diagnostics in the GCC format ------------------------------- */

/* Every diagnostic has a stable code, listed once here and explained in
 * doc/diagnostics.md (tests/sh/diag_codes.sh keeps the two in step).
 * Errors are E<class><nn>; warnings are W<nnnn> and have a -W name too.
 * Never renumber a code: retire it and add a new one. */
#define DIAG_ERRORS(X)                                                              \
    /* lexical */                                                                  \
    X(E0101, "block comment")                                                      \
    X(E0102, "operator of another language")                                       \
    X(E0103, "semicolon")                                                          \
    X(E0104, "single-quoted string")                                               \
    X(E0105, "non-ASCII character outside a string")                               \
    X(E0106, "unexpected character")                                               \
    X(E0107, "'{{' not closed on its line")                                        \
    X(E0108, "unterminated string")                                                \
    X(E0109, "number out of range")                                                \
    X(E0110, "bad number suffix")                                                  \
    X(E0111, "unknown escape sequence")                                            \
    X(E0112, "keyword of another language")                                        \
    X(E0113, "text that is not UTF-8")                                             \
    /* syntax */                                                                   \
    X(E0201, "unexpected token")                                                   \
    X(E0202, "unclosed bracket")                                                   \
    X(E0203, "line ends too early")                                                \
    X(E0204, "nested too deeply")                                                  \
    X(E0205, "interpolated import path")                                           \
    X(E0206, "default value on an agent parameter")                                \
    X(E0207, "unknown generic type")                                               \
    X(E0208, "'using' not on an agent call")                                       \
    X(E0209, "'loop' without a bound")                                             \
    X(E0210, "named argument")                                                     \
    X(E0211, "call of something that is not a name")                               \
    X(E0212, "unknown attribute")                                                  \
    /* files */                                                                    \
    X(E0301, "module not found")                                                   \
    X(E0302, "file cannot be read")                                                \
    /* names */                                                                    \
    X(E0401, "unknown type")                                                       \
    X(E0402, "wrong kind of name")                                                 \
    X(E0403, "unknown variable")                                                   \
    X(E0404, "name a template cannot see")                                         \
    X(E0405, "unknown model")                                                      \
    X(E0406, "unknown schema")                                                     \
    X(E0407, "unknown agent or function")                                          \
    X(E0408, "unknown enum value")                                                 \
    X(E0409, "unknown field")                                                      \
    X(E0410, "name declared twice in one scope")                                   \
    X(E0411, "declaration declared twice")                                         \
    X(E0412, "duplicate field, parameter or enum value")                           \
    X(E0413, "duplicate phase")                                                    \
    X(E0414, "duplicate stage")                                                    \
    X(E0415, "second workflow")                                                    \
    X(E0416, "two fields or enum values with one name on the wire")                \
    X(E0417, "keyword as a parameter's name")                                      \
    /* types */                                                                    \
    X(E0501, "optional used where a value is needed")                              \
    X(E0502, "field access on a non-record")                                       \
    X(E0503, "no value where one is needed")                                       \
    X(E0504, "list elements of different types")                                   \
    X(E0505, "condition or operand not bool")                                      \
    X(E0506, "operator on the wrong types")                                        \
    X(E0507, "null comparison that is always the same")                            \
    X(E0508, "comparison of incompatible types")                                   \
    X(E0509, "'?\?' on a non-optional")                                             \
    X(E0510, "'?\?' default of the wrong type")                                     \
    X(E0511, "negation of a non-number")                                           \
    X(E0512, "'if' and 'else' of different types")                                 \
    X(E0513, "match arms of different types")                                      \
    X(E0514, "type that cannot be inferred")                                       \
    X(E0515, "assignment of the wrong type")                                       \
    X(E0516, "duration outside a setting")                                         \
    X(E0517, "null check undone inside a loop")                                    \
    /* calls */                                                                    \
    X(E0601, "wrong number of arguments")                                          \
    X(E0602, "argument of the wrong type")                                         \
    X(E0603, "list argument expected")                                             \
    X(E0604, "bad type argument of a read")                                        \
    X(E0605, "type arguments where none are taken")                                \
    X(E0606, "call inside a template")                                             \
    X(E0607, "what a CSV file cannot hold")                                        \
    X(E0608, "'rejects' without 'on_bad: skip'")                                   \
    /* records, schemas and constraints */                                         \
    X(E0701, "record missing required fields")                                     \
    X(E0702, "record field given twice")                                           \
    X(E0703, "record field of the wrong type")                                     \
    X(E0704, "constant outside the field's constraint")                            \
    X(E0705, "schema that contains itself")                                        \
    X(E0706, "constraint that does not fit its type")                              \
    X(E0707, "bad constraint bounds")                                              \
    X(E0708, "bad alias")                                                          \
    /* control flow */                                                             \
    X(E0801, "match missing cases")                                                \
    X(E0802, "match case handled twice")                                           \
    X(E0803, "match on a non-enum")                                                \
    X(E0804, "loop over a non-list")                                               \
    X(E0805, "option on a plain 'for'")                                            \
    X(E0806, "pipeline without stages")                                            \
    X(E0807, "bad 'loop max' bound")                                               \
    X(E0808, "'break' outside a loop")                                             \
    X(E0809, "'skip' or 'escalate' outside an item body")                          \
    X(E0810, "'return' inside parallel code")                                      \
    X(E0811, "'escalate' without an item")                                         \
    X(E0812, "stage that uses itself or a later stage")                            \
    X(E0813, "dependency inside 'parallel { }'")                                   \
    X(E0814, "data race on an outer variable")                                     \
    X(E0815, "assignment to a stage value")                                        \
    X(E0816, "assignment to a parameter or loop variable")                         \
    /* settings, models, agents and budgets */                                     \
    X(E0901, "unknown setting")                                                    \
    X(E0902, "setting given twice")                                                \
    X(E0903, "bad setting value")                                                  \
    X(E0904, "incomplete model")                                                   \
    X(E0905, "incomplete agent")                                                   \
    X(E0906, "phase budget above the workflow's")                                  \
    X(E0907, "misplaced budget")                                                   \
    X(E0908, "phase not at the top level")                                         \
    X(E0909, "bad model alias")                                                    \
    X(E0910, "setting the model's provider does not take")                         \
    X(E0911, "answer beyond the provider's structured-output limits")              \
    X(E0912, "tool that is not an http operation or an agent")                     \
    X(E0913, "tools without a bound, or a bound without tools")                    \
    X(E0914, "tool that writes with approval required")                            \
    X(E0915, "agent that reaches itself through its tools")                        \
    X(E0916, "tool listed twice")                                                  \
    X(E0917, "tool that would let the model choose where credentials go")          \
    X(E0918, "sensitive field sent to a model not declared to accept it")          \
    /* workflows */                                                                \
    X(E1001, "return that does not fit the workflow")                              \
    X(E1002, "path that ends without returning")                                   \
    X(E1003, "workflow parameter that is not a flag")                              \
    X(E1004, "default that is not a literal")                                      \
    /* code generation */                                                          \
    X(E1101, "construct the code generator does not support")                      \
    /* http operations */                                                          \
    X(E1201, "secret where it would be logged")                                    \
    X(E1202, "bad url")                                                            \
    X(E1203, "bad header")                                                         \
    X(E1204, "bad paging settings")                                                \
    X(E1205, "bad body")                                                           \
    X(E1206, "'write' or 'approval' that contradicts the method")                  \
    X(E1207, "incomplete http operation")                                          \
    X(E1208, "write that needs approval given an unapproved value")                \
    X(E1209, "env() without a literal name in an http operation")                  \
    /* data files (flowc check --data) */                                          \
    X(E1301, "bad row in a data file")                                             \
    X(E1302, "CSV header that does not fit its schema")                            \
    X(E1303, "data file that cannot be read")                                      \
    /* sharding */                                                                 \
    X(E1401, "workflow that cannot be sharded")                                    \
    /* flowc test */                                                               \
    X(E1501, "malformed test file")                                                \
    X(E1502, "test that does not fit its workflow")                                \
    X(E1503, "failed test")

/* Warnings: code, -W name, what it flags.  All are on by default. */
#define DIAG_WARNINGS(X)                                                            \
    X(W0001, "unused-value", "an expression statement with no effect")             \
    X(W0002, "unused-let", "a 'let' whose value is never read")                    \
    X(W0003, "unused-parameter", "an agent or workflow parameter never used")      \
    X(W0004, "unused-schema", "a schema the workflow never uses")                  \
    X(W0005, "unused-enum", "an enum the workflow never uses")                     \
    X(W0006, "unused-agent", "an agent the workflow never calls")                  \
    X(W0007, "unused-model", "a model no agent or call uses")                      \
    X(W0008, "shadow", "a 'let' that hides an outer name")                         \
    X(W0009, "unreachable-code", "code after 'return', 'fail', 'break' or 'skip'") \
    X(W0010, "constant-condition", "an 'if' or 'where' whose condition is constant") \
    X(W0011, "unused-http", "an http operation the workflow never calls")         \
    X(W0012, "model-alias", "a model named by an old name (an alias)")            \
    X(W0013, "model-retirement", "a model retired, or retiring within 30 days")   \
    X(W0014, "cache-prefix", "an agent's fixed prompt prefix just under caching")  \
    X(W0015, "budget-exceeded", "a budget the calls every run makes can exceed")    \
    X(W0016, "batch-fallback", "a batch fan-out whose model has no batch API")

typedef enum DiagCode {
    DIAG_NOCODE,
#define X(code, title) code,
    DIAG_ERRORS(X)
#undef X
#define X(code, name, title) code,
    DIAG_WARNINGS(X)
#undef X
    DIAG_NCODES
} DiagCode;

typedef enum DiagFormat { DIAG_TEXT, DIAG_JSON } DiagFormat;

void diag_init(DiagFormat fmt, bool colour);     /* colour only when asked (a TTY) */
void diag_error(Span sp, DiagCode code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A warning (code is a W code); dropped, with its notes and help, when
 * disabled; an error under -Werror. */
void diag_warning(Span sp, DiagCode code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A note at a location (usually a declaration), attached to the last diagnostic. */
void diag_note(Span sp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A help line (the fix), attached to the last diagnostic; printed at its location. */
void diag_help(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A fix-it: replace the text of sp with text (JSON output and the language server). */
void diag_fixit(Span sp, const char *text);
void diag_fixit_here(const char *text);          /* ... replacing the diagnostic's own span */
/* -W options: -Wname, -Wno-name, -Werror, -Werror=name, -Wno-error=name, -Wunused,
 * -Wall, -Wextra, -Wnone.  False for an unknown one (the caller says so). */
bool diag_option(const char *opt);
bool diag_warning_enabled(DiagCode code);
const char *diag_code_str(DiagCode code);        /* "E0401", "W0002" */
const char *diag_code_title(DiagCode code);      /* "unknown type" */
const char *diag_warning_name(DiagCode code);    /* "unused-let", or NULL for an error */
/* The closest -W name to a misspelled one, or NULL. */
const char *diag_closest_option(const char *name);
int diag_error_count(void);
int diag_warning_count(void);
/* Writes s[0..n) as a JSON string literal, quotes included (also for
 * schema.c and cg.c: the compiler's one JSON string writer). */
void json_put_str(FILE *out, const char *s, size_t n);
void diag_flush(void);                           /* prints (JSON: the array) what is buffered */
/* A diagnostic about a data file (flowc check --data), printed at once:
 * "file:line:col: error: msg [code]" (no column when col is 0, no line
 * when line is 0), or its JSON object.  Counts as an error. */
void diag_data(const char *file, long line, long col, DiagCode code, const char *msg);
/* A closing line about a data file ("flowc: leads.csv: 3 of 120 rows are
 * bad ..."): text format only. */
void diag_data_summary(const char *msg);
/* "did you mean": the closest of candidates to name, or NULL if none is close. */
const char *diag_closest(const char *name, const char *const *candidates, int n);
void diag_reset(void);                           /* drop buffered diagnostics and the count (fuzz harness) */

/* A diagnostic as data, for the language server (diag_take). */
typedef struct DiagNote {
    Span span;                                   /* where it points (help: the diagnostic's) */
    const char *msg;                             /* its text */
    bool help;                                   /* a help line, not a note */
} DiagNote;

typedef struct DiagFix {
    Span span;                                   /* the text to replace */
    const char *text;                            /* what replaces it */
} DiagFix;

typedef struct DiagInfo {
    bool error;                                  /* error (or -Werror warning), else warning */
    DiagCode code;                               /* its code */
    Span span;                                   /* the mistake */
    const char *msg;                             /* the message */
    Vec notes;                                   /* DiagNote*: notes and help, in order */
    Vec fixes;                                   /* DiagFix* */
} DiagInfo;

/* Hands over the buffered diagnostics (DiagInfo*, in source order) instead of
 * printing them; the buffer is empty after. */
Vec diag_take(void);
/* While true, diag_flush() prints nothing and keeps the diagnostics for diag_take(). */
void diag_keep(bool keep);

/* ---- ast.c: the syntax tree ---------------------------------------------- */

/* Type expressions, as written. */
typedef enum TypeExprKind {
    TE_NAME,                                     /* string, int, float, bool, Schema, Enum */
    TE_LIST,                                     /* list<elem> */
    TE_OPT,                                      /* elem? */
} TypeExprKind;

typedef struct TypeExpr TypeExpr;
struct TypeExpr {
    TypeExprKind kind;
    Span span;
    const char *name;                            /* TE_NAME */
    TypeExpr *elem;                              /* TE_LIST, TE_OPT */
};

typedef struct Node Node;
typedef struct Decl Decl;
typedef struct Type Type;

/* `key: value` in a settings block (model, agent, budget, for options, stage options). */
typedef struct Setting {
    Span span;                                   /* the whole setting */
    Span key_span;
    const char *key;
    Node *value;                                 /* an expression; often a literal or name */
} Setting;

typedef enum ConstraintKind { CONS_NONE, CONS_RANGE, CONS_LEN } ConstraintKind;

/* `in lo..hi` or `len lo..hi` after a field's type. */
typedef struct Constraint {
    ConstraintKind kind;
    Span span;
    Node *lo;                                    /* N_INT or N_FLOAT literal (maybe negated) */
    Node *hi;
} Constraint;

/* A schema field, an enum value or a parameter (agent or workflow). */
typedef struct Field {
    Span span;                                   /* the name */
    const char *name;                            /* the name in the .flow */
    TypeExpr *texpr;
    Constraint cons;                             /* schema fields only */
    Node *alias;                                 /* @alias("...") string (fields, enum values) or NULL */
    bool sensitive;                              /* @sensitive (schema fields): personal data */
    Span sensitive_span;                         /* the @sensitive */
    Node *deflt;                                 /* workflow parameters only, may be NULL */
    const char *doc;                             /* `///` lines joined by '\n', or NULL */
    Type *type;                                  /* sema: resolved */
    void *sym;                                   /* sema: a parameter's Sym */
    bool in_budget;                              /* sema: a budget's value names it */
    const char *wire;                            /* sema: the name in the data (JSON key,
                                                    CSV column, enum value on the wire):
                                                    the alias, else name */
    const char *model_key;                       /* sema: the property name in the JSON
                                                    Schema models see: wire if every
                                                    provider takes it as a key, else name */
} Field;

/* What a schema does with a record's fields it does not declare (`schema
 * S (extra: drop)`); the default rejects them. */
typedef enum Extra { EXTRA_REJECT, EXTRA_DROP, EXTRA_KEEP } Extra;

typedef enum DeclKind {
    D_IMPORT, D_SCHEMA, D_ENUM, D_MODEL, D_AGENT, D_WORKFLOW,
    D_HTTP,                                      /* http NAME(params) -> T { settings } */
} DeclKind;

struct Decl {
    DeclKind kind;
    Span span;                                   /* the whole declaration */
    Span name_span;
    const char *name;                            /* D_IMPORT: the path string */
    const char *doc;                             /* `///` doc comment, or NULL */
    int file;                                    /* source it came from */
    Vec fields;                                  /* Field*: schema fields, agent/workflow params */
    Vec values;                                  /* Field*: enum values (name + span + doc) */
    Vec settings;                                /* Setting*: model, agent and http settings,
                                                    schema options */
    TypeExpr *ret;                               /* agent, http and workflow return type */
    Node *body;                                  /* workflow body (N_BLOCK) */
    Type *type;                                  /* sema: the schema or enum type; return type */
    Type *ret_type;                              /* sema: agent/workflow return */
    Extra extra;                                 /* sema: schema: unknown fields' fate */
    void *sema;                                  /* sema: private data (resolved settings) */
};

typedef enum NodeKind {
    /* literals */
    N_INT, N_FLOAT, N_STRING, N_BOOL, N_NULL, N_DURATION,
    /* expressions */
    N_NAME,                                      /* a variable, parameter, enum value, model... */
    N_FIELD,                                     /* lhs.name */
    N_CALL,                                      /* name<targs>(args) using model */
    N_LIST,                                      /* [a, b] */
    N_RECORD,                                    /* Schema { f: e, ... } */
    N_BINARY,                                    /* lhs op rhs, op in BinOp */
    N_UNARY,                                     /* op operand */
    N_BLOCK,                                     /* { stmts }: value of the last expression */
    N_IF,                                        /* if cond then else */
    N_MATCH,                                     /* match subject { arms } */
    N_FOR,                                       /* [parallel] for var in iter (opts) where cond body */
    N_PIPELINE,                                  /* pipeline for var in iter (opts) { stages } */
    N_STAGE,                                     /* stage name (opts) body */
    N_PARBLOCK,                                  /* parallel { stmts } */
    N_LOOP,                                      /* loop max N body else els */
    /* statements (also expressions of type void or never) */
    N_LET,                                       /* let name = value */
    N_ASSIGN,                                    /* name = value */
    N_PHASE,                                     /* phase name body */
    N_BUDGET,                                    /* budget { settings } */
    N_RETURN,                                    /* return value */
    N_BREAK, N_SKIP,
    N_ERROR,                                     /* placeholder after a syntax error */
} NodeKind;

typedef enum BinOp {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_AND, OP_OR, OP_COALESCE,                  /* ?? */
} BinOp;

typedef enum UnOp { OP_NOT, OP_NEG } UnOp;

/* One piece of a string literal: literal text, or a {{ expression }}. */
typedef struct StrPart {
    const char *text;                            /* literal text (escapes decoded), or NULL */
    size_t len;                                  /* bytes of text */
    Node *expr;                                  /* the interpolated expression, or NULL */
} StrPart;

/* One arm of a match: `a, b => e` or `_ => e`. */
typedef struct MatchArm {
    Span span;
    Vec pats;                                    /* Node* N_NAME, one per case; empty for `_` */
    bool wildcard;                               /* `_` */
    Node *body;
} MatchArm;

/* `name: expr` inside a record literal. */
typedef struct FieldInit {
    Span span;                                   /* the name */
    const char *name;
    Node *value;
} FieldInit;

struct Node {
    NodeKind kind;
    Span span;
    Type *type;                                  /* sema: the expression's type */

    /* literals */
    int64_t ival;                                /* N_INT; N_BOOL (0/1); N_DURATION (milliseconds);
                                                    a match arm's N_NAME: the value's index */
    double fval;                                 /* N_FLOAT */
    Vec parts;                                   /* N_STRING: StrPart*; one part if no {{ }} */
    bool triple;                                 /* N_STRING written with """ */

    /* names */
    const char *name;                            /* N_NAME, N_FIELD (the field), N_CALL (callee),
                                                    N_LET, N_ASSIGN, N_PHASE, N_STAGE,
                                                    N_RECORD (schema), N_FOR/N_PIPELINE (var) */
    Span name_span;

    /* operators and sub-expressions */
    int op;                                      /* BinOp or UnOp */
    Node *lhs;                                   /* N_BINARY, N_FIELD (the record) */
    Node *rhs;                                   /* N_BINARY */
    Node *operand;                               /* N_UNARY */

    /* calls */
    Vec args;                                    /* N_CALL arguments, N_LIST elements */
    Vec targs;                                   /* N_CALL: TypeExpr* (read_jsonl<T>) */
    const char *using_model;                     /* N_CALL: `using name`, or NULL */
    Span using_span;

    /* records */
    Vec inits;                                   /* N_RECORD: FieldInit* */

    /* blocks, control flow */
    Vec stmts;                                   /* N_BLOCK, N_PARBLOCK: Node*; N_PIPELINE: stages */
    Node *cond;                                  /* N_IF, N_FOR (where), N_LOOP (max) */
    Node *then;                                  /* N_IF */
    Node *els;                                   /* N_IF, N_LOOP (else), may be NULL */
    Node *body;                                  /* N_FOR, N_STAGE, N_LOOP, N_PHASE */
    Node *iter;                                  /* N_FOR, N_PIPELINE: the list */
    Node *value;                                 /* N_LET, N_ASSIGN, N_RETURN (may be NULL) */
    Vec arms;                                    /* N_MATCH: MatchArm* ; subject in lhs */
    Vec opts;                                    /* Setting*: N_FOR, N_PIPELINE, N_STAGE, N_BUDGET */
    bool parallel;                               /* N_FOR: `parallel for` */

    /* sema results */
    void *sym;                                   /* N_NAME, N_LET, N_ASSIGN, N_FOR var: the Sym */
    Decl *decl;                                  /* N_CALL: the agent; N_RECORD: the schema;
                                                    N_NAME of an enum value: the enum */
    int builtin;                                 /* N_CALL: Builtin, 0 if an agent;
                                                    N_FIELD `env.NAME` in an http header: B_ENV */
    int site;                                    /* N_CALL to an agent or http operation:
                                                    stable call-site id */
    int path;                                    /* sema: the narrowing path of a name or
                                                    .field chain, -1 if none, 0 not yet known */
    void *cg;                                    /* codegen private data */
    bool can_wait;                               /* cg: N_FOR (sequential): an item's body
                                                    can wait for approval */
    bool paren;                                  /* written in parentheses (for fmt) */
    bool sharded_iter;                           /* shard.c: N_FOR/N_PIPELINE whose value
                                                    holds a shard's share (the sharded
                                                    fan-out, a loop over its result) */
};

typedef struct Program {
    Vec decls;                                   /* Decl*, in source order, imports expanded */
    Vec files;                                   /* int: source indexes */
    Vec comments;                                /* Span*: every // and /// comment, in the
                                                    order parsed (for fmt) */
} Program;

Node *ast_node(NodeKind kind, Span sp);
Decl *ast_decl(DeclKind kind, Span sp);
TypeExpr *ast_type(TypeExprKind kind, Span sp);
const char *ast_node_kind_name(NodeKind k);
const char *ast_binop_name(int op);              /* "+", "==", "??", "and", ... */
void ast_dump(FILE *out, Program *p);            /* --dump-ast */
void ast_dump_opts(FILE *out, Program *p, bool spans); /* ... with or without the @spans */
/* Calls fn(ctx, node, NULL) or fn(ctx, NULL, type) for each child of n (of d). */
typedef void (*AstVisit)(void *ctx, Node *node, TypeExpr *type);
void ast_children(Node *n, AstVisit fn, void *ctx);
void ast_decl_children(Decl *d, AstVisit fn, void *ctx);
/* Reports (once) a declaration nested deeper than FLOWC_MAX_DEPTH; false then. */
bool ast_check_depth(Decl *d);

/* ---- parse (grammar/flow.y + flow.l) --------------------------------------- */

/* Nesting limits (doc/language.md, "Limits"): deeper input gets one clear
 * error instead of a stack overflow in a later, recursive phase. */
#define FLOWC_MAX_BRACKETS 256                   /* '(' '[' '{' '{{' open at once (the lexer) */
#define FLOWC_MAX_DEPTH 1000                     /* levels of a declaration's tree (ast.c) */

/* Parses one source file and appends its declarations to p.  Syntax errors go
 * to diag_error; the parser recovers and keeps going.  Returns false if any
 * syntax error was found.  Imports are appended as D_IMPORT decls; the driver
 * resolves them. */
bool parse_file(Program *p, int file);

/* ---- types.c: the semantic types ------------------------------------------ */

typedef enum TypeKind {
    TY_ERROR,                                    /* after an error: compatible with all */
    TY_VOID,                                     /* a statement */
    TY_NEVER,                                    /* skip, fail, return, escalate, break */
    TY_NULL,                                     /* the literal null */
    TY_STRING, TY_INT, TY_FLOAT, TY_BOOL,
    TY_DURATION,                                 /* 30s: settings only */
    TY_OPT,                                      /* elem? */
    TY_LIST,                                     /* list<elem>; elem NULL for [] */
    TY_SCHEMA,                                   /* decl: the schema */
    TY_ENUM,                                     /* decl: the enum */
    TY_MODEL,                                    /* a model name (using, model:) */
} TypeKind;

struct Type {
    TypeKind kind;
    Type *elem;                                  /* TY_OPT, TY_LIST */
    Decl *decl;                                  /* TY_SCHEMA, TY_ENUM */
};

extern Type *ty_error, *ty_void, *ty_never, *ty_null, *ty_string, *ty_int,
    *ty_float, *ty_bool, *ty_duration, *ty_model;

void ty_init(void);
Type *ty_list(Type *elem);
Type *ty_opt(Type *elem);                        /* ty_opt(T?) == T? */
Type *ty_decl(Decl *d);                          /* schema or enum type */
bool ty_equal(Type *a, Type *b);
bool ty_assignable(Type *to, Type *from);        /* int -> float, T -> T?, null -> T?, never -> any */
const char *ty_str(Type *t);                     /* "list<Lead>", "string?" */

/* ---- sema.c: names and types ---------------------------------------------- */

typedef enum Builtin {
    B_NONE, B_READ_JSONL, B_WRITE_JSONL, B_LEN, B_ENV, B_APPROVE, B_ESCALATE, B_FAIL,
    B_READ_CSV, B_WRITE_CSV,
} Builtin;

typedef enum SymKind { SYM_VAR, SYM_PARAM, SYM_ITEM, SYM_STAGE } SymKind;

/* A local name: workflow parameter, let binding, loop variable, stage value. */
typedef struct Sym {
    SymKind kind;
    const char *name;
    Span span;                                   /* where it is declared */
    Type *type;
    bool assigned;                               /* target of an assignment somewhere */
    int depth;                                   /* closure depth of its declaration */
    int id;                                      /* unique per program (for C names) */
    Node *taint;                                 /* approval.c: why its value may not have
                                                    passed through approve(), or NULL */
    Node *taint_via;                             /* approval.c: the binding that gave it */
    int reads;                                   /* names that read it (lint: unused) */
    struct Sym *hides;                           /* the outer local it shadows, or NULL */
} Sym;

/* Resolved settings of a model declaration (Decl.sema). */
typedef struct ModelInfo {
    const char *provider;                        /* "anthropic", "openai", "mock" */
    const char *api_name;                        /* name: "claude-haiku-4-5" */
    double usd_in, usd_out;                      /* per million tokens */
    const char *base_url;                        /* or NULL */
    const char *api_key_env;                     /* or NULL: the provider's default; "": none */
    /* capabilities; 0, NULL or -1 when not declared */
    const char *output;                          /* structured_output: output_config, tool, ... */
    int temperature;                             /* temperature: 1 accepted, 0 refused, -1 unsaid */
    const char *max_tokens_param;                /* max_tokens or max_completion_tokens */
    int64_t max_output_tokens, context_window;   /* tokens */
    double cache_write, cache_write_1h, cache_read; /* usd_per_mtok_cache_*, -1 unsaid */
    double batch_in, batch_out;                  /* usd_per_mtok_batch_*, -1 unsaid */
    int64_t min_cache_tokens;                    /* shortest cacheable prefix */
    double rpm, tpm;                             /* known rate limits */
    const char *retires;                         /* "YYYY-MM-DD" */
    Decl *replaced_by;                           /* what to use instead, once retired */
    Decl *alias_of;                              /* an old name: every setting is that model's */
    Setting *retires_setting;                    /* for the warning's note */
    bool sensitive_ok;                           /* accepts_sensitive: true (self-hosted, or
                                                    covered by an agreement) */
} ModelInfo;

/* Resolved settings of an agent declaration (Decl.sema). */
typedef struct AgentInfo {
    Decl *model;                                 /* the model declaration */
    Span model_span;                             /* the `model:` setting's value */
    Node *prompt;                                /* N_STRING */
    Node *system;                                /* N_STRING or NULL */
    double temperature;                          /* -1 if not set */
    int64_t max_tokens;                          /* 0: default 1024 */
    int64_t retries;                             /* default 2 */
    int64_t timeout_ms;                          /* default 60000 */
    bool no_cache;                               /* cache: off */
    Setting *temperature_setting;                /* for the capability error */
    Setting *tools_setting;                      /* tools: [...], resolved after every
                                                    declaration is checked */
    Vec tools;                                   /* Decl*: the http operations and agents
                                                    it may call, in the order listed */
    int64_t max_tool_calls;                      /* the loop's bound: tool calls at most */
    int64_t max_tool_result_tokens;              /* a tool's result is cut to this */
} AgentInfo;

/* Paging of an http read (HttpInfo.paging). */
typedef enum PagingKind {
    PAGE_NONE,
    PAGE_CURSOR,                                 /* cursor(field: "paging.next.after", param: "after") */
    PAGE_NEXT_URL,                               /* next_url(field: "next") */
    PAGE_LINK,                                   /* link: RFC 8288 Link header, rel="next" */
} PagingKind;

/* Resolved settings of an http operation (Decl.sema). */
typedef struct HttpInfo {
    const char *method;                          /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    bool write;                                  /* sends an Idempotency-Key, held by --dry-run */
    Node *url;                                   /* N_STRING template */
    Vec headers;                                 /* Node*: N_STRING templates "Name: value" */
    Node *body;                                  /* an expression of the parameters, or NULL */
    int64_t retries;                             /* default 3 */
    int64_t timeout_ms;                          /* default 30000 */
    double rps;                                  /* requests per second to its host, 0: none */
    bool approval;                               /* approval: required */
    PagingKind paging;                           /* how a read pages */
    const char *page_field;                      /* cursor or next URL: its path in the body */
    const char *page_param;                      /* cursor: the query parameter it goes in */
    const char *items;                           /* items: path of a page's items, or NULL */
    int64_t max_pages;                           /* default 1000 */
    Vec secrets;                                 /* const char*: env variables its headers read */
} HttpInfo;

/* Type-checks the whole program.  Reports every error; returns false if any. */
bool sema_check(Program *p);
void sema_dump_types(FILE *out, Program *p);     /* --dump-types */
Decl *sema_workflow(Program *p);                 /* the workflow to build, or NULL */
const char *sema_builtin_signature(int b);       /* "len(xs: list<T> | string) -> int", or NULL */

/* ---- approval.c: writes that need approval get approved values ------------ */

/* Reports every call of an http operation marked `approval: required` that
 * can receive a value that has not passed through approve() (sema_check
 * runs it once the program type-checks). */
void approval_check(Program *p);

/* ---- shard.c: can the workflow run as shards ---------------------------- */

/* Holds a workflow whose first fan-out says `shard: true` or `shard_key:
 * FIELD` to the rules that let N shards' parts merge into one process's
 * output (E1401, each with its reason); marks the loops over sharded lists
 * (Node.sharded_iter).  sema_check runs it once the program type-checks. */
void shard_check(Program *p);
/* The sharded fan-out of the last shard_check, or NULL. */
Node *shard_fanout(void);

/* ---- caps.c: model capabilities, retirement and provider limits ---------- */

/* After every model is checked: aliases take their target's settings. */
void caps_resolve_models(Program *p);
/* Forgets what an earlier compilation warned about (sema_check calls it). */
void caps_reset(void);
/* A use of model d (an agent's model, or `using`): warns for an old name or a
 * model past (or near) its retirement date.  FLOWC_TODAY=YYYY-MM-DD overrides
 * today's date (tests). */
void caps_model_used(Decl *d, Span use);
/* Agent a sent to model m (its own, or `using`): temperature and the strict
 * limits of the provider's structured-output mode; the cache-prefix note. */
void caps_check_agent(Decl *a, Decl *m, Span use);

/* ---- sensitive.c: personal data and the models that may see it ------------- */

/* Agent a's prompts and tool results, sent to model m (chosen at use), hold
 * no @sensitive field unless m accepts sensitive data: else error E0918
 * naming the field, its path and the model. */
void sens_check_agent(Decl *a, Decl *m, Span use);
/* t holds a @sensitive field (records, lists and options of them). */
bool sens_type_has(Type *t);
/* The tools of agent a sent to model m: their parameters within the limits
 * of strict function calling (OpenAI json_schema mode). */
void caps_check_tools(Decl *a, Decl *m, Span use);
/* The structured-output mode a model resolves to ("output_config", ...). */
const char *caps_output_mode(const ModelInfo *mi);
/* Bytes of a template (N_STRING) before its first {{ }}; *whole when it has none. */
size_t caps_template_head(Node *s, bool *whole);
/* Whether a model has a batch API: Anthropic's or OpenAI's own, not a server
 * on this machine (the runtime's fr_batch_api is the same rule). */
bool caps_batch_api(const ModelInfo *mi);

/* ---- lint.c: warnings ---------------------------------------------------- */

/* Warns about what checks but is likely a mistake (flowc.h's DIAG_WARNINGS)
 * in a program that sema_check() accepted; root is the file whose own
 * declarations are judged (imports are not). */
void lint_program(Program *p, int root);

/* ---- fmt.c: `flowc fmt` ------------------------------------------------------ */

/* The canonical layout of the parsed file `file` of p (comments kept):
 * malloc'd text of *len bytes (a NUL in a comment stays), or NULL with
 * *failed naming a construct with no layout. */
char *fmt_program(Program *p, int file, size_t *len, const char **failed);
/* Parses source `file`, formats it and checks the result parses to the same
 * tree: malloc'd text, or NULL after an error (said; *status 1 for a syntax
 * error, 3 for an internal one). */
char *fmt_source(int file, size_t *len, int *status);
/* flowc fmt [--check | -w] [FILE|DIR|-]...: exit status. */
int cmd_fmt(int argc, char **argv);

/* ---- graph.c: `flowc graph` -------------------------------------------------- */

/* Prints checked workflow w of p as a Graphviz (dot) or Mermaid graph. */
void graph_print(FILE *out, Program *p, Decl *w, bool mermaid);
/* flowc graph [--format=dot|mermaid] FILE: exit status. */
int cmd_graph(int argc, char **argv);

/* ---- estimate.c: what a workflow can spend, before it runs ---------------- */

#define EST_PATH_MAX 16

typedef struct EstBudget {
    double usd, tokens;                          /* declared literal caps, -1 none */
    Span usd_span, tokens_span;                  /* their values */
} EstBudget;

/* One agent (on one model, batched or not) in one phase: counts and bounds. */
typedef struct EstAgent {
    Decl *agent, *model;
    bool batch;                                  /* called from a batch fan-out */
    int64_t max_tokens, retries;
    int site_count;                              /* call sites */
    double in_call_worst, in_call_typ;           /* input tokens of one first attempt */
    double calls_worst, attempts_worst;          /* calls, and attempts at most */
    double in_worst, out_worst, usd_worst;       /* every attempt at max_tokens */
    double in_once, out_once, usd_once;          /* one attempt a call, at max_tokens */
    double calls_exp, in_exp, out_exp, usd_exp;  /* one attempt, a typical answer */
    bool from_journal;                           /* expected sizes from earlier runs */
    int64_t raise_to;                            /* a cut-off answer is retried at this cap */
    int64_t max_tool_calls;                      /* a tool loop's bound, 0: no tools */
    double tool_result;                          /* ... and a tool result's tokens at most */
} EstAgent;

typedef struct EstPhase {
    const char *name;                            /* NULL: the body outside phases */
    Node *node;                                  /* N_PHASE */
    EstBudget budget;
    Vec agents;                                  /* EstAgent* */
    EstAgent sum;                                /* the phase's totals */
} EstPhase;

/* A fan-out whose item count is unknown (counted as one item). */
typedef struct EstUnknown {
    const char *what;                            /* the list's parameter or binding */
    Span span;
} EstUnknown;

/* An item count given for a data parameter or a let binding. */
typedef struct EstItems {
    const char *name;
    double count;
    const char *src;                             /* "--items", "--data FILE", "default FILE" */
} EstItems;

/* What the estimate knows of the input (estimate_cmd.c fills it). */
typedef struct EstData EstData;
struct EstData {
    EstItems *items;
    int nitems;
    /* Worst and mean tokens of {{ p.path }} over the records of data
     * parameter param; false if it has no records. */
    bool (*measure)(EstData *d, const char *param, const char **path, int np,
                    double *worst, double *typ);
    /* Mean input and output tokens of agent's calls in earlier runs. */
    bool (*journal_avg)(EstData *d, const char *agent, double *in, double *out);
    void *priv;
};

typedef struct Estimate {
    Program *prog;
    Decl *workflow;
    Vec phases;                                  /* EstPhase*: [0] outside phases, then each */
    Vec unknown;                                 /* EstUnknown* */
    EstBudget budget;                            /* the workflow's */
    EstAgent total;
    bool assumed;                                /* a {{ }} of unbounded size was assumed */
    bool tools;                                  /* an agent with a tool loop is called */
} Estimate;

/* Tokens of text as flowc approximates them (and the fake server counts). */
int64_t est_tokens(const char *s, size_t n);
Estimate *est_run(Program *p, Decl *w, EstData *data);
/* The largest max_tokens of r under which phase ph's worst case fits cap_usd. */
int64_t est_fit_max_tokens(const EstPhase *ph, const EstAgent *r, double cap_usd);
/* flowc check: a budget that its workflow's fixed calls can exceed (W0015). */
void est_warn_budgets(Program *p);
/* flowc estimate FILE [--items P=N] [--data P=FILE] [--journal DB] [--format=text|json] */
int cmd_estimate(int argc, char **argv);

/* ---- compat.c: `flowc compat` ------------------------------------------------ */

/* flowc compat [--format=text|json] OLD NEW | --against REV FILE...: exit status. */
int cmd_compat(int argc, char **argv);

/* ---- lsp.c: `flowc lsp` ------------------------------------------------------ */

/* flowc lsp: a language server on stdin and stdout until exit: exit status. */
int cmd_lsp(int argc, char **argv);

/* ---- schema.c: JSON Schema per schema and provider ----------------------- */

typedef enum SchemaDialect {
    SD_PLAIN,                      /* every keyword, optional fields not required */
    SD_ANTHROPIC,                  /* a forced tool's input_schema: every keyword, also in prose */
    SD_ANTHROPIC_STRICT,           /* output_config.format: the documented subset */
    SD_OPENAI_STRICT,              /* response_format strict: all required, no length keywords */
} SchemaDialect;

/* The JSON Schema of a type as a JSON text (arena). */
char *schema_json(Type *t, SchemaDialect dialect);
/* The JSON Schema of a tool's input: an object of its parameters (Field*). */
char *schema_params_json(Vec *params, SchemaDialect dialect);
/* Writes JSON text (schema_json's) indented, arrays of scalars on one line. */
void schema_write_pretty(FILE *f, const char *json);

/* ---- cg.c: C generation --------------------------------------------------- */

/* Writes the C translation of the checked program (workflow w) to out. */
bool cg_program(FILE *out, Program *p, Decl *w);

/* ---- datacheck.c: flowc check FILE --data Schema=PATH --------------------- */

/* One --data argument. */
typedef struct DataSpec {
    const char *schema;                          /* the schema's name */
    const char *path;                            /* the file, "-" for stdin */
    int fmt;                                     /* fr_format: FR_FMT_JSONL or FR_FMT_CSV */
    char delim;                                  /* a CSV's cell separator, 0: ',' */
} DataSpec;

/* "Lead=leads.csv", "Lead=jsonl:-", "Lead=tsv:x": false when the format
 * cannot be told (no .csv, .tsv, .jsonl, .ndjson or .json, and no prefix). */
bool data_parse_spec(const char *arg, char delim, DataSpec *out);
/* Checks each file against its schema of p (checked clean); reports every
 * bad row; 0 when all are clean, else 1.  max_errors > 0 caps the bad rows
 * reported per file. */
int data_check(Program *p, DataSpec *specs, int n, long max_errors);
/* Every row of a CSV file as a record of its columns (strings, keyed by the
 * header): a new reference (jansson's json_t), or NULL with *why (flowc
 * estimate measures a read_csv's rows with it). */
struct json_t *data_csv_records(const char *path, const char **why);
/* The runtime's descriptor of t (fr_type), as cg.c writes it into the C:
 * what fr_validate checks a value against (flowc test's fixtures). */
const struct fr_type *data_rt_type(Type *t);

/* ---- build.c: `flowc build` ----------------------------------------------- */

/* flowc build FILE -o OUT [--emit-c FILE] [--emit-schemas DIR]: exit status. */
int cmd_build(int argc, char **argv);
/* Builds w of p (checked clean) into dir (which exists), named
 * <workflow>-<hash of the C, the compiler's flags and the runtime>, unless
 * that file is there already (then its time is set to now: the time of a
 * cached binary is its last use): *exe is its path.  The exit status of a build. */
int build_cached(Program *p, Decl *w, const char *dir, const char **exe);

/* ---- flowtest.c: `flowc test` --------------------------------------------- */

/* flowc test [-v] [--keep] FILE|DIR...: exit 0 all passed, 1 a failure, 2 bad usage. */
int cmd_test(int argc, char **argv);

/* ---- load.c: finding and loading files ------------------------------------ */

/* Where stdlib modules live: the build tree's stdlib/ or PREFIX/share/flowc/stdlib. */
const char *flowc_stdlib_dir(void);
/* Directory of the flowc executable (for finding the runtime). */
const char *flowc_exe_dir(void);
/* Where flowc_load() reads files from, instead of the disk (compat --against
 * reads a git revision; the language server, the editor's unsaved text). */
typedef struct FlowcReader {
    /* path into *text (malloc'd) and *len: 1 read, 0 not this reader's file
     * (the disk is read), -1 failed (*err says why) */
    int (*read)(void *ctx, const char *path, char **text, size_t *len, const char **err);
    /* 1 the file exists, 0 it does not, -1 not this reader's file (ask the disk) */
    int (*exists)(void *ctx, const char *path);
    /* the name diagnostics give the file ("HEAD:x.flow") */
    const char *(*display)(void *ctx, const char *path);
    void *ctx;                                   /* the reader's own state */
} FlowcReader;

void flowc_set_reader(const FlowcReader *r);     /* NULL: the disk again */
/* Parses files and their imports, then type-checks.  Diagnostics are printed;
 * returns false if there was any error. */
bool flowc_load(Program *p, char *const *files, int nfiles);
/* The files of a command line, each directory replaced by the *.flow files
 * under it (recursively, in name order, hidden directories skipped);
 * false (said on stderr) if a directory cannot be read. */
bool flowc_expand_args(char **args, int n, Vec *files);

#endif
