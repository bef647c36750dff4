/*
 * flow.y: the grammar of .flow files, building the AST of flowc.h.
 *
 * A pure (reentrant) LALR(1) parser with locations: the location type is the
 * compiler's Span, so every rule's @$ is the byte range it covers and every
 * node gets its span for free (YYLLOC_DEFAULT below).  The token stream comes
 * from flowylex() in flow.l, which inserts NEWLINE tokens Go-style (only where
 * a statement can end, never inside ( ) or [ ]), so the grammar treats
 * NEWLINE as a separator and lets items on one line follow each other with no
 * separator at all (`parallel { let a = f(x)  let b = g(x) }`).
 *
 * Two expression grammars: `expr`, and `hexpr` for the head of if / for /
 * match / loop / where, which has no record literal, block or compound
 * expression at its top level (like Rust and Go), so `if ok { x }` is a
 * block and not the record `ok { x }`.  The `(concurrency: 8)` after a for's
 * list parses as a call with named arguments; the for rule turns those into
 * the loop's options (split_opts).  `read_jsonl<Lead>(path)` is told from
 * `a < b` by the lexer, which emits TLT for a '<' that starts type arguments
 * followed by '('.
 *
 * Where items follow one another with no separator, an expression could run
 * on into the next item (`a -b`, `f (x)`, `x { }`): precedence resolves those
 * in favour of the longer expression (the LOW marker); there are no other
 * conflicts (%expect 0).
 *
 * Errors: yyreport_syntax_error() writes "unexpected X, expected Y" with
 * hints for common mistakes and names the opener of an unclosed block.  Then
 * the lexer skips to the end of the line (or the end of the enclosing block)
 * and the `error` rules in each list (declarations, fields, settings,
 * statements, arms, ...) resume there, so every line with a mistake is
 * reported once and nothing else is.
 *
 * Memory: every semantic value is arena memory owned by the compilation, so
 * no %destructor is needed; discarded values are freed with the arena.
 */
%define api.pure full
%define api.prefix {flowy}
%define api.location.type {Span}
%define parse.error custom
%define parse.lac full
%locations
%expect 0
%param {yyscan_t scanner}

%code requires {
#include "flowc.h"

#ifndef YY_TYPEDEF_YY_SCANNER_T
#define YY_TYPEDEF_YY_SCANNER_T
typedef void *yyscan_t;
#endif

/* A token's text (identifiers, keywords, string pieces) and the `///` doc
 * comment that came just before it. */
typedef struct Tok {
    const char *s;                               /* the text (decoded for STR_TEXT) */
    size_t len;                                  /* bytes in s */
    const char *doc;                             /* doc comment lines, or NULL */
} Tok;

/* A call's arguments: positional ones, and `name: value` ones. */
typedef struct Args {
    Vec pos;                                     /* Node* */
    Vec named;                                   /* Setting* */
} Args;
}

%code provides {
/* One open bracket the lexer has seen and not yet seen closed. */
typedef struct LexFrame {
    char kind;                                   /* '{', '(', '[' or 'I' for {{ */
    Span at;                                     /* the opener */
} LexFrame;

/* Whether the '<' before an offset starts type arguments and a call. */
typedef struct TargAnswer {
    uint32_t pos;                                /* the offset just after the '<' */
    bool ok;                                     /* `<...>(` follows */
} TargAnswer;

/* Everything the lexer and the parser share about one file. */
typedef struct LexState {
    int file;                                    /* source index */
    const char *text;                            /* the source text */
    uint32_t len;                                /* its length */
    uint32_t pos;                                /* offset of the next byte to lex */
    LexFrame *frames;                            /* open brackets, innermost last */
    int nframes;                                 /* entries used in frames */
    int capframes;                               /* entries allocated in frames */
    int depth_before;                            /* nframes before the last token */
    int last;                                    /* the last token returned */
    int prev;                                    /* the one returned before it */
    uint32_t last_hi;                            /* where the last real token ended */
    uint32_t prev_hi;                            /* ... and the one before it */
    const char *last_text;                       /* its text (identifiers, keywords) */
    char *doc;                                   /* pending `///` lines, or NULL */
    size_t doclen;                               /* ... their length */
    size_t doccap;                               /* ... bytes allocated for them */
    int indent;                                  /* triple-quoted string: indentation to strip */
    int targs;                                   /* inside read_jsonl<...>: '<' nesting + 1 */
    TargAnswer *ta;                              /* '<'s decided by the last type-argument scan */
    int *ta_open;                                /* ... the scan's unclosed '<' (ta indexes) */
    int ta_n;                                    /* entries used in ta */
    int ta_cap;                                  /* entries allocated in ta and ta_open */
    int ta_next;                                 /* the next ta entry a '<' may ask about */
    uint32_t ta_hi;                              /* where that scan stopped */
    uint32_t ic_lo, ic_hi;                       /* the last scan for a '{{'s '}}' ... */
    bool ic_found;                               /* ... and whether it found one */
    uint32_t cont_lo, cont_hi;                   /* the last run of blank lines continues() saw ... */
    bool cont_res;                               /* ... and its answer */
    Span str_open;                               /* the open string's opening quote */
    uint32_t nul_hi;                             /* where the last NUL byte refused ended:
                                                    a run of them is said once */
    bool skipping;                               /* error recovery: dropping tokens */
    int skip_level;                              /* ... up to this frame's line end or close */
    int inject;                                  /* closers still to insert before pending */
    bool have_pending;                           /* a token is held back */
    int pending;                                 /* ... its kind */
    FLOWYSTYPE pending_val;                      /* ... its value */
    Span pending_loc;                            /* ... its span */
    bool quiet;                                  /* suppress parser errors (after an insertion) */
    int quiet_tokens;                            /* tokens left before quiet ends */
    Program *prog;                               /* where declarations go */
    bool failed;                                 /* a syntax error was reported */
    bool stopped;                                /* nested too deeply: the rest is not read */
} LexState;

int flowylex(FLOWYSTYPE *lval, FLOWYLTYPE *lloc, yyscan_t scanner);
void lex_error_span(LexState *S, Span sp);
}

%code {
#include "lex.yy.h"

#include <string.h>
#include <strings.h>

/* @$ of a rule: from its first symbol's start to its last's end; empty at
 * the end of the previous symbol for an empty rule. */
#define YYLLOC_DEFAULT(Cur, Rhs, N)                                     \
    do {                                                                \
        if (N) {                                                        \
            (Cur).file = YYRHSLOC(Rhs, 1).file;                         \
            (Cur).lo = YYRHSLOC(Rhs, 1).lo;                             \
            (Cur).hi = YYRHSLOC(Rhs, N).hi;                             \
        } else {                                                        \
            (Cur).file = YYRHSLOC(Rhs, 0).file;                         \
            (Cur).lo = (Cur).hi = YYRHSLOC(Rhs, 0).hi;                  \
        }                                                               \
    } while (0)

#define STATE ((LexState *)flowyget_extra(scanner))

/* The parser's stack: room for any program within the nesting limits (a
 * level takes at most a dozen entries), so running out means "too deep". */
#define YYMAXDEPTH (20 * FLOWC_MAX_DEPTH + 16 * FLOWC_MAX_BRACKETS)

static void flowyerror(Span *loc, yyscan_t scanner, const char *msg);
static Node *mk_binary(int op, Node *a, Node *b, Span sp);
static Node *mk_unary(int op, Node *a, Span sp);
static Node *mk_name(Tok t, Span sp);
static Node *mk_call(Node *callee, Args *args, Span sp, bool head);
static Node *mk_string(Vec *parts, bool triple, Span sp);
static Node *mk_for(Tok var, Span var_sp, Node *iter, Node *where, Node *body, Span sp);
static Node *plain(Node *n);
static Setting *mk_setting(Tok key, Span key_sp, Node *value, Span sp);
static Field *mk_field(Tok name, Span sp, TypeExpr *te);
static void set_attrs(LexState *st, Field *f, Vec *attrs, bool field);
static TypeExpr *mk_type_name(Tok t, Span sp);
static Node *mk_num(Node *n, bool neg, Span sp);
static void add_decl(yyscan_t scanner, Decl *d);
}

%union {
    Tok tok;                                     /* identifiers, keywords, string text */
    int64_t ival;                                /* INT, DURATION (ms), STR_BEGIN (triple?) */
    double fval;                                 /* FLOAT */
    Node *node;                                  /* expressions and statements */
    Decl *decl;                                  /* declarations */
    TypeExpr *te;                                /* types */
    Vec vec;                                     /* lists of anything */
    Setting *set;                                /* key: value */
    Field *field;                                /* schema fields, parameters */
    MatchArm *arm;                               /* match arms */
    FieldInit *init;                             /* record literal fields */
    Constraint cons;                             /* in lo..hi, len lo..hi */
    Args args;                                   /* call arguments */
}

%token <tok> IDENT "identifier"
%token <ival> INT "number"
%token <fval> FLOAT "float"
%token <ival> DURATION "duration"
%token <ival> STR_BEGIN "string"
%token <tok> STR_TEXT "string text"
%token STR_END "end of string"
%token INTERP_BEGIN "'{{'"
%token INTERP_END "'}}'"
%token NEWLINE "end of line"
%token TLT "'<'"
%token ARROW "'->'"
%token FATARROW "'=>'"
%token COALESCE "'??'"
%token EQ "'=='"
%token NE "'!='"
%token LE "'<='"
%token GE "'>='"
%token DOTDOT "'..'"
%token <tok> IMPORT "'import'"
%token <tok> SCHEMA "'schema'"
%token <tok> ENUM "'enum'"
%token <tok> MODEL "'model'"
%token <tok> AGENT "'agent'"
%token <tok> WORKFLOW "'workflow'"
%token <tok> PHASE "'phase'"
%token <tok> BUDGET "'budget'"
%token <tok> LET "'let'"
%token <tok> IF "'if'"
%token <tok> ELSE "'else'"
%token <tok> FOR "'for'"
%token <tok> IN "'in'"
%token <tok> WHERE "'where'"
%token <tok> PARALLEL "'parallel'"
%token <tok> PIPELINE "'pipeline'"
%token <tok> STAGE "'stage'"
%token <tok> MATCH "'match'"
%token <tok> LOOP "'loop'"
%token <tok> MAX "'max'"
%token <tok> BREAK "'break'"
%token <tok> SKIP "'skip'"
%token <tok> RETURN "'return'"
%token <tok> RETURN_BARE "'return' "
%token <tok> USING "'using'"
%token <tok> TRUE "'true'"
%token <tok> FALSE "'false'"
%token <tok> NULL_ "'null'"
%token <tok> AND "'and'"
%token <tok> OR "'or'"
%token <tok> NOT "'not'"
%token <tok> LEN "'len'"
%token <tok> HTTP "'http'"

%type <decl> decl import schema enum model agent workflow http
%type <vec> fields values settings params plist stmts arms pats inits targs stages
%type <vec> exprlist parts paren_settings schema_opts attrs
%type <field> field param value
%type <tok> fname key
%type <cons> constraint range
%type <node> bound string block stmt expr hexpr postfix hpostfix primary atom literal attr
%type <node> if_expr match_expr for_expr pipeline_expr par_expr loop_expr where_opt stage
%type <set> setting
%type <te> type ret
%type <arm> arm
%type <init> init
%type <args> args arglist

%precedence LOW
%precedence LEN                  /* `a: int len 0..5` is a constraint, not a field 'len' */
%left COALESCE
%left OR
%left AND
%precedence NOT
%nonassoc EQ NE '<' LE '>' GE
%left '+' '-'
%left '*' '/'
%precedence UMINUS
%precedence '(' '{'

%%

/* program -> { decl } */
program
    : %empty
    | program decl                  { add_decl(scanner, $2); yyerrok; }
    | program error
    ;

decl: import | schema | enum | model | agent | workflow | http ;

/* import -> 'import' string */
import
    : IMPORT string {
        $$ = ast_decl(D_IMPORT, @$);
        $$->name_span = @2;
        StrPart *p = $2->parts.len == 1 ? $2->parts.items[0] : NULL;
        if (!p || p->expr) {
            diag_error(@2, E0205, "an import path cannot interpolate");
            lex_error_span(STATE, @2);
            $$->name = "";
        } else {
            $$->name = p->text;
        }
    }
    ;

/* schema -> 'schema' NAME [ '(' settings ')' ] '{' { field } '}' */
schema
    : SCHEMA IDENT schema_opts '{' fields '}' {
        $$ = ast_decl(D_SCHEMA, @$);
        $$->name = $2.s; $$->name_span = @2; $$->doc = $1.doc; $$->fields = $5;
        $$->settings = $3;
    }
    ;

/* fields -> { field | sep }   (each list below: items with or without separators;
 *            after a syntax error, `error` resumes at the next separator) */
fields
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | fields field                  { $$ = $1; vec_push(&$$, $2); }
    | fields sep                    { $$ = $1; yyerrok; }
    | fields error                  { $$ = $1; }
    ;

sep: NEWLINE | ',' ;

/* field -> NAME ':' type [ ('in' | 'len') range ] { attr } */
field
    : fname ':' type constraint attrs {
        $$ = mk_field($1, @1, $3);
        $$->cons = $4;
        set_attrs(STATE, $$, &$5, true);
    }
    ;

fname: IDENT | MAX | LEN | MODEL ;

/* constraint -> [ 'in' range | 'len' range ] */
constraint
    : %empty %prec LOW              { memset(&$$, 0, sizeof $$); }
    | IN range                      { $$ = $2; $$.kind = CONS_RANGE; $$.span = @$; }
    | LEN range                     { $$ = $2; $$.kind = CONS_LEN; $$.span = @$; }
    ;

/* range -> bound '..' bound */
range
    : bound DOTDOT bound            { memset(&$$, 0, sizeof $$); $$.lo = $1; $$.hi = $3; }
    ;

/* bound -> [ '-' ] ( INT | FLOAT ) */
bound
    : INT                           { $$ = ast_node(N_INT, @$); $$->ival = $1; }
    | FLOAT                         { $$ = ast_node(N_FLOAT, @$); $$->fval = $1; }
    | '-' INT                       { $$ = ast_node(N_INT, @2); $$->ival = $2; $$ = mk_num($$, true, @$); }
    | '-' FLOAT                     { $$ = ast_node(N_FLOAT, @2); $$->fval = $2; $$ = mk_num($$, true, @$); }
    ;

/* enum -> 'enum' NAME '{' { NAME } '}' */
enum
    : ENUM IDENT '{' values '}' {
        $$ = ast_decl(D_ENUM, @$);
        $$->name = $2.s; $$->name_span = @2; $$->doc = $1.doc; $$->values = $4;
    }
    ;

/* values -> { value | sep } */
values
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | values value                  { $$ = $1; vec_push(&$$, $2); }
    | values sep                    { $$ = $1; yyerrok; }
    | values error                  { $$ = $1; }
    ;

/* model -> 'model' NAME '{' { setting } '}' */
model
    : MODEL IDENT '{' settings '}' {
        $$ = ast_decl(D_MODEL, @$);
        $$->name = $2.s; $$->name_span = @2; $$->doc = $1.doc; $$->settings = $4;
    }
    ;

/* settings -> { setting | sep } */
settings
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | settings setting              { $$ = $1; vec_push(&$$, $2); }
    | settings sep                  { $$ = $1; yyerrok; }
    | settings error                { $$ = $1; }
    ;

/* setting -> KEY ':' expr */
setting
    : key ':' expr %prec LOW        { $$ = mk_setting($1, @1, $3, @$); }
    ;

key: IDENT | MODEL | MAX | LEN ;

/* agent -> 'agent' NAME '(' params ')' '->' type '{' { setting } '}' */
agent
    : AGENT IDENT '(' params ')' ARROW type '{' settings '}' {
        $$ = ast_decl(D_AGENT, @$);
        $$->name = $2.s; $$->name_span = @2; $$->doc = $1.doc;
        $$->fields = $4; $$->ret = $7; $$->settings = $9;
        for (int i = 0; i < $4.len; i++) {
            Field *f = $4.items[i];
            if (f->deflt) {
                diag_error(f->deflt->span, E0206, "agent parameters cannot have default values");
                diag_help("only workflow parameters (the binary's flags) have defaults");
                lex_error_span(STATE, f->deflt->span);
            }
        }
    }
    ;

/* http -> 'http' NAME '(' params ')' [ '->' type ] '{' { setting } '}'
 * ('http' is a word of its own only at the top level, so it stays a
 * valid name everywhere else) */
http
    : HTTP IDENT '(' params ')' ret '{' settings '}' {
        $$ = ast_decl(D_HTTP, @$);
        $$->name = $2.s; $$->name_span = @2; $$->doc = $1.doc;
        $$->fields = $4; $$->ret = $6; $$->settings = $8;
        for (int i = 0; i < $4.len; i++) {
            Field *f = $4.items[i];
            if (f->deflt) {
                diag_error(f->deflt->span, E0206, "http operation parameters cannot have default values");
                diag_help("only workflow parameters (the binary's flags) have defaults");
                lex_error_span(STATE, f->deflt->span);
            }
        }
    }
    ;

/* workflow -> 'workflow' NAME '(' params ')' [ '->' type ] block */
workflow
    : WORKFLOW IDENT '(' params ')' ret block {
        $$ = ast_decl(D_WORKFLOW, @$);
        $$->name = $2.s; $$->name_span = @2; $$->doc = $1.doc;
        $$->fields = $4; $$->ret = $6; $$->body = $7;
    }
    ;

/* ret -> [ '->' type ] */
ret
    : %empty                        { $$ = NULL; }
    | ARROW type                    { $$ = $2; }
    ;

/* params -> [ param { ',' param } [ ',' ] ] */
params
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | plist
    | plist ','
    | error                         { memset(&$$, 0, sizeof $$); }
    ;

plist
    : param                         { memset(&$$, 0, sizeof $$); vec_push(&$$, $1); }
    | plist ',' param               { $$ = $1; vec_push(&$$, $3); }
    ;

/* param -> NAME ':' type [ '=' expr ] */
param
    : IDENT ':' type                { $$ = mk_field($1, @1, $3); }
    | IDENT ':' type '=' expr       { $$ = mk_field($1, @1, $3); $$->deflt = $5; }
    ;

/* type -> NAME | NAME '<' type '>' | type '?' */
type
    : IDENT                         { $$ = mk_type_name($1, @$); }
    | IDENT '<' type '>' {
        $$ = ast_type(TE_LIST, @$);
        $$->elem = $3;
        $$->name = $1.s;
        if (strcmp($1.s, "list") != 0) {
            diag_error(@1, E0207, "unknown generic type '%s'", $1.s);
            if (strcasecmp($1.s, "optional") == 0 || strcmp($1.s, "Option") == 0
                || strcmp($1.s, "Maybe") == 0 || strcmp($1.s, "Nullable") == 0)
                diag_help("an optional type is written 'T?'");
            else
                diag_help("the one generic type is 'list<T>'");
            lex_error_span(STATE, @1);
        }
    }
    | type '?' {
        $$ = ast_type(TE_OPT, @$);
        $$->elem = $1;
    }
    ;

/* ---- statements ------------------------------------------------------------- */

/* block -> '{' { stmt } '}' */
block
    : '{' stmts '}'                 { $$ = ast_node(N_BLOCK, @$); $$->stmts = $2; }
    ;

/* stmts -> { stmt | NEWLINE } */
stmts
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | stmts stmt                    { $$ = $1; vec_push(&$$, $2); }
    | stmts NEWLINE                 { $$ = $1; yyerrok; }
    | stmts error                   { $$ = $1; }
    ;

/* stmt -> 'let' NAME '=' expr | NAME '=' expr | 'return' [ expr ] | 'phase' NAME block
 *       | 'budget' '{' settings '}' | expr */
stmt
    : LET IDENT '=' expr %prec LOW {
        $$ = ast_node(N_LET, @$);
        $$->name = $2.s; $$->name_span = @2; $$->value = $4;
    }
    | IDENT '=' expr %prec LOW {
        $$ = ast_node(N_ASSIGN, @$);
        $$->name = $1.s; $$->name_span = @1; $$->value = $3;
    }
    | RETURN expr %prec LOW         { $$ = ast_node(N_RETURN, @$); $$->value = $2; }
    | RETURN_BARE                   { $$ = ast_node(N_RETURN, @$); }
    | PHASE IDENT block {
        $$ = ast_node(N_PHASE, @$);
        $$->name = $2.s; $$->name_span = @2; $$->body = $3;
    }
    | BUDGET '{' settings '}'       { $$ = ast_node(N_BUDGET, @$); $$->opts = $3; }
    | expr %prec LOW
    ;

/* ---- expressions ------------------------------------------------------------ */

/* expr -> expr BINOP expr | ('not' | '-') expr | postfix   (precedence above) */
expr
    : expr COALESCE expr            { $$ = mk_binary(OP_COALESCE, $1, $3, @$); }
    | expr OR expr                  { $$ = mk_binary(OP_OR, $1, $3, @$); }
    | expr AND expr                 { $$ = mk_binary(OP_AND, $1, $3, @$); }
    | NOT expr                      { $$ = mk_unary(OP_NOT, $2, @$); }
    | expr EQ expr                  { $$ = mk_binary(OP_EQ, $1, $3, @$); }
    | expr NE expr                  { $$ = mk_binary(OP_NE, $1, $3, @$); }
    | expr '<' expr                 { $$ = mk_binary(OP_LT, $1, $3, @$); }
    | expr LE expr                  { $$ = mk_binary(OP_LE, $1, $3, @$); }
    | expr '>' expr                 { $$ = mk_binary(OP_GT, $1, $3, @$); }
    | expr GE expr                  { $$ = mk_binary(OP_GE, $1, $3, @$); }
    | expr '+' expr                 { $$ = mk_binary(OP_ADD, $1, $3, @$); }
    | expr '-' expr                 { $$ = mk_binary(OP_SUB, $1, $3, @$); }
    | expr '*' expr                 { $$ = mk_binary(OP_MUL, $1, $3, @$); }
    | expr '/' expr                 { $$ = mk_binary(OP_DIV, $1, $3, @$); }
    | '-' expr %prec UMINUS         { $$ = mk_unary(OP_NEG, $2, @$); }
    | postfix %prec LOW
    ;

/* The head of if / for / match / loop / where: no record literal, block or
 * compound expression at the top (they would swallow the body's '{'). */
hexpr
    : hexpr COALESCE hexpr          { $$ = mk_binary(OP_COALESCE, plain($1), plain($3), @$); }
    | hexpr OR hexpr                { $$ = mk_binary(OP_OR, plain($1), plain($3), @$); }
    | hexpr AND hexpr               { $$ = mk_binary(OP_AND, plain($1), plain($3), @$); }
    | NOT hexpr                     { $$ = mk_unary(OP_NOT, plain($2), @$); }
    | hexpr EQ hexpr                { $$ = mk_binary(OP_EQ, plain($1), plain($3), @$); }
    | hexpr NE hexpr                { $$ = mk_binary(OP_NE, plain($1), plain($3), @$); }
    | hexpr '<' hexpr               { $$ = mk_binary(OP_LT, plain($1), plain($3), @$); }
    | hexpr LE hexpr                { $$ = mk_binary(OP_LE, plain($1), plain($3), @$); }
    | hexpr '>' hexpr               { $$ = mk_binary(OP_GT, plain($1), plain($3), @$); }
    | hexpr GE hexpr                { $$ = mk_binary(OP_GE, plain($1), plain($3), @$); }
    | hexpr '+' hexpr               { $$ = mk_binary(OP_ADD, plain($1), plain($3), @$); }
    | hexpr '-' hexpr               { $$ = mk_binary(OP_SUB, plain($1), plain($3), @$); }
    | hexpr '*' hexpr               { $$ = mk_binary(OP_MUL, plain($1), plain($3), @$); }
    | hexpr '/' hexpr               { $$ = mk_binary(OP_DIV, plain($1), plain($3), @$); }
    | '-' hexpr %prec UMINUS        { $$ = mk_unary(OP_NEG, plain($2), @$); }
    | hpostfix
    ;

/* postfix -> primary { '.' NAME | '(' args ')' | 'using' NAME } */
postfix
    : primary
    | postfix '.' IDENT {
        $$ = ast_node(N_FIELD, @$);
        $$->lhs = $1; $$->name = $3.s; $$->name_span = @3;
    }
    | postfix '(' args ')'          { $$ = mk_call($1, &$3, @$, false); }
    | postfix USING IDENT {
        $$ = $1;
        if ($1->kind != N_CALL) {
            diag_error(@2, E0208, "'using' applies to an agent call");
            diag_help("write 'agent(args) using model'");
            lex_error_span(STATE, @2);
        } else {
            $$->using_model = $3.s; $$->using_span = @3; $$->span = @$;
        }
    }
    ;

/* hpostfix -> atom { '.' NAME | '(' args ')' | 'using' NAME } */
hpostfix
    : atom
    | hpostfix '.' IDENT {
        $$ = ast_node(N_FIELD, @$);
        $$->lhs = plain($1); $$->name = $3.s; $$->name_span = @3;
    }
    | hpostfix '(' args ')'         { $$ = mk_call($1, &$3, @$, true); }
    | hpostfix USING IDENT {
        $$ = plain($1);
        if ($1->kind != N_CALL) {
            diag_error(@2, E0208, "'using' applies to an agent call");
            lex_error_span(STATE, @2);
        } else {
            $$->using_model = $3.s; $$->using_span = @3; $$->span = @$;
        }
    }
    ;

/* primary -> atom | NAME '{' inits '}' | block | if | match | for | pipeline
 *          | parallel | loop | 'break' | 'skip' */
primary
    : atom
    | IDENT '{' inits '}' {
        $$ = ast_node(N_RECORD, @$);
        $$->name = $1.s; $$->name_span = @1; $$->inits = $3;
    }
    | block
    | if_expr
    | match_expr
    | for_expr
    | pipeline_expr
    | par_expr
    | loop_expr
    | BREAK                         { $$ = ast_node(N_BREAK, @$); }
    | SKIP                          { $$ = ast_node(N_SKIP, @$); }
    ;

/* atom -> NAME | literal | '(' expr ')' | '[' [ expr { ',' expr } [ ',' ] ] ']'
 *       | NAME '<' type { ',' type } '>' '(' args ')' | 'len' '(' args ')' */
atom
    : IDENT %prec LOW               { $$ = mk_name($1, @$); }
    | literal
    | '(' expr ')'                  { $$ = $2; $$->paren = true; }
    | '[' ']'                       { $$ = ast_node(N_LIST, @$); }
    | '[' exprlist ']'              { $$ = ast_node(N_LIST, @$); $$->args = $2; }
    | '[' exprlist ',' ']'          { $$ = ast_node(N_LIST, @$); $$->args = $2; }
    | IDENT TLT targs '>' '(' args ')' {
        /* named arguments stay: read_csv<T>(path, on_bad: skip); sema
         * reports them on any other call */
        $$ = mk_call(mk_name($1, @1), &$6, @$, true);
        $$->targs = $3;
    }
    | LEN '(' args ')'              { Tok t = $1; t.s = "len"; $$ = mk_call(mk_name(t, @1), &$3, @$, false); }
    ;

/* literal -> INT | FLOAT | DURATION | 'true' | 'false' | 'null' | string */
literal
    : INT                           { $$ = ast_node(N_INT, @$); $$->ival = $1; }
    | FLOAT                         { $$ = ast_node(N_FLOAT, @$); $$->fval = $1; }
    | DURATION                      { $$ = ast_node(N_DURATION, @$); $$->ival = $1; }
    | TRUE                          { $$ = ast_node(N_BOOL, @$); $$->ival = 1; }
    | FALSE                         { $$ = ast_node(N_BOOL, @$); $$->ival = 0; }
    | NULL_                         { $$ = ast_node(N_NULL, @$); }
    | string
    ;

/* string -> '"' { text | '{{' expr '}}' } '"' */
string
    : STR_BEGIN parts STR_END       { $$ = mk_string(&$2, $1 != 0, @$); }
    ;

/* parts -> { STR_TEXT | '{{' expr '}}' } */
parts
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | parts STR_TEXT {
        $$ = $1;
        StrPart *p = arena_alloc(sizeof *p);
        p->text = $2.s; p->len = $2.len;
        vec_push(&$$, p);
    }
    | parts INTERP_BEGIN expr INTERP_END {
        $$ = $1;
        StrPart *p = arena_alloc(sizeof *p);
        p->expr = $3;
        vec_push(&$$, p);
    }
    | parts INTERP_BEGIN error INTERP_END { $$ = $1; }
    ;

exprlist
    : expr                          { memset(&$$, 0, sizeof $$); vec_push(&$$, $1); }
    | exprlist ',' expr             { $$ = $1; vec_push(&$$, $3); }
    ;

targs
    : type                          { memset(&$$, 0, sizeof $$); vec_push(&$$, $1); }
    | targs ',' type                { $$ = $1; vec_push(&$$, $3); }
    ;

/* args -> [ arg { ',' arg } [ ',' ] ],  arg -> expr | NAME ':' expr */
args
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | arglist
    | arglist ','
    ;

arglist
    : expr                          { memset(&$$, 0, sizeof $$); vec_push(&$$.pos, $1); }
    | IDENT ':' expr {
        memset(&$$, 0, sizeof $$);
        vec_push(&$$.named, mk_setting($1, @1, $3, @$));
    }
    | arglist ',' expr              { $$ = $1; vec_push(&$$.pos, $3); }
    | arglist ',' IDENT ':' expr    { $$ = $1; vec_push(&$$.named, mk_setting($3, @3, $5, span_join(@3, @5))); }
    ;

/* inits -> { init | sep } */
inits
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | inits init                    { $$ = $1; vec_push(&$$, $2); }
    | inits sep                     { $$ = $1; yyerrok; }
    | inits error                   { $$ = $1; }
    ;

/* init -> NAME ':' expr */
init
    : fname ':' expr %prec LOW {
        $$ = arena_alloc(sizeof *$$);
        $$->span = @1; $$->name = $1.s; $$->value = $3;
    }
    ;

/* if -> 'if' hexpr block [ 'else' ( block | if ) ] */
if_expr
    : IF hexpr block {
        $$ = ast_node(N_IF, @$);
        $$->cond = plain($2); $$->then = $3;
    }
    | IF hexpr block ELSE block {
        $$ = ast_node(N_IF, @$);
        $$->cond = plain($2); $$->then = $3; $$->els = $5;
    }
    | IF hexpr block ELSE if_expr {
        $$ = ast_node(N_IF, @$);
        $$->cond = plain($2); $$->then = $3; $$->els = $5;
    }
    ;

/* match -> 'match' hexpr '{' { arm } '}' */
match_expr
    : MATCH hexpr '{' arms '}' {
        $$ = ast_node(N_MATCH, @$);
        $$->lhs = plain($2); $$->arms = $4;
    }
    ;

/* arms -> { arm | sep } */
arms
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | arms arm                      { $$ = $1; vec_push(&$$, $2); }
    | arms sep                      { $$ = $1; yyerrok; }
    | arms error                    { $$ = $1; }
    ;

/* arm -> NAME { ',' NAME } '=>' expr   (a NAME of `_` matches the rest) */
arm
    : pats FATARROW expr %prec LOW {
        $$ = arena_alloc(sizeof *$$);
        $$->span = @$; $$->body = $3;
        for (int i = 0; i < $1.len; i++) {
            Node *p = $1.items[i];
            if (strcmp(p->name, "_") == 0)
                $$->wildcard = true;
            else
                vec_push(&$$->pats, p);
        }
    }
    ;

pats
    : IDENT                         { memset(&$$, 0, sizeof $$); vec_push(&$$, mk_name($1, @1)); }
    | pats ',' IDENT                { $$ = $1; vec_push(&$$, mk_name($3, @3)); }
    ;

/* for -> [ 'parallel' ] 'for' NAME 'in' hexpr [ '(' settings ')' ] [ 'where' hexpr ] block */
for_expr
    : FOR IDENT IN hexpr where_opt block {
        $$ = mk_for($2, @2, $4, $5, $6, @$);
    }
    | PARALLEL FOR IDENT IN hexpr where_opt block {
        $$ = mk_for($3, @3, $5, $6, $7, @$);
        $$->parallel = true;
    }
    ;

where_opt
    : %empty                        { $$ = NULL; }
    | WHERE hexpr                   { $$ = plain($2); }
    ;

/* pipeline -> 'pipeline' 'for' NAME 'in' hexpr [ '(' settings ')' ] '{' { stage } '}' */
pipeline_expr
    : PIPELINE FOR IDENT IN hexpr '{' stages '}' {
        Node *f = mk_for($3, @3, $5, NULL, NULL, @$);
        f->kind = N_PIPELINE;
        f->stmts = $7;
        $$ = f;
    }
    ;

/* stages -> { stage | NEWLINE } */
stages
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | stages stage                  { $$ = $1; vec_push(&$$, $2); }
    | stages NEWLINE                { $$ = $1; yyerrok; }
    | stages error                  { $$ = $1; }
    ;

/* stage -> 'stage' NAME [ '(' settings ')' ] block */
stage
    : STAGE IDENT block {
        $$ = ast_node(N_STAGE, @$);
        $$->name = $2.s; $$->name_span = @2; $$->body = $3;
    }
    | STAGE IDENT paren_settings block {
        $$ = ast_node(N_STAGE, @$);
        $$->name = $2.s; $$->name_span = @2; $$->opts = $3; $$->body = $4;
    }
    ;

paren_settings
    : '(' settings ')'              { $$ = $2; }
    ;

/* parallel -> 'parallel' block */
par_expr
    : PARALLEL '{' stmts '}'        { $$ = ast_node(N_PARBLOCK, @$); $$->stmts = $3; }
    ;

/* loop -> 'loop' 'max' hexpr block [ 'else' block ] */
loop_expr
    : LOOP MAX hexpr block {
        $$ = ast_node(N_LOOP, @$);
        $$->cond = plain($3); $$->body = $4;
    }
    | LOOP MAX hexpr block ELSE block {
        $$ = ast_node(N_LOOP, @$);
        $$->cond = plain($3); $$->body = $4; $$->els = $6;
    }
    | LOOP block {
        $$ = ast_node(N_LOOP, @$);
        $$->body = $2;
        diag_error(@1, E0209, "'loop' needs a bound");
        diag_help("write 'loop max N { ... }'; 'else { ... }' after it runs when the bound is hit");
        lex_error_span(STATE, @1);
    }
    ;

/* ---- attributes and options of declarations ---------------------------------
 * (after the other rules: bison numbers character tokens in order of first
 * use, and the "expected ..." lists of syntax errors follow that order) */

/* schema_opts -> [ '(' settings ')' ]   (extra: reject | drop | keep) */
schema_opts
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | paren_settings
    ;

/* attrs -> { attr } */
attrs
    : %empty                        { memset(&$$, 0, sizeof $$); }
    | attrs attr                    { $$ = $1; if ($2) vec_push(&$$, $2); }
    ;

/* attr -> '@' 'alias' '(' string ')' | '@' 'sensitive'
 * @alias: the name in the data, when it is not the field's (a CSV column
 * with spaces, a JSON key with a dash); @sensitive: personal data, kept
 * out of traces and logs and from models not declared to accept it.  An
 * N_STRING (the alias) or an N_NAME "sensitive"; NULL after an error. */
attr
    : '@' IDENT '(' string ')' {
        $$ = $4;
        if (strcmp($2.s, "alias") != 0) {
            bool sens = strcmp($2.s, "sensitive") == 0;
            diag_error(@2, E0212, sens ? "@sensitive takes no argument"
                       : "unknown attribute '@%s'", $2.s);
            diag_help(sens ? "write '@sensitive' after the field's type"
                      : "the attributes are @alias(\"name in the data\") and @sensitive");
            lex_error_span(STATE, @2);
            $$ = NULL;
        }
    }
    | '@' IDENT {
        $$ = NULL;
        if (strcmp($2.s, "sensitive") == 0) {
            $$ = mk_name($2, @$);
        } else {
            diag_error(@2, E0212, strcmp($2.s, "alias") == 0
                       ? "@alias needs the name in the data: @alias(\"Name\")"
                       : "unknown attribute '@%s'", $2.s);
            diag_help("the attributes are @alias(\"name in the data\") and @sensitive");
            lex_error_span(STATE, @2);
        }
    }
    ;

/* value -> NAME { attr }   (@alias only) */
value
    : IDENT attrs                   { $$ = mk_field($1, @1, NULL); set_attrs(STATE, $$, &$2, false); }
    ;

%%

/* ---- node builders ---------------------------------------------------------- */

static Node *mk_binary(int op, Node *a, Node *b, Span sp)
{
    Node *n = ast_node(N_BINARY, sp);
    n->op = op;
    n->lhs = a;
    n->rhs = b;
    return n;
}

static Node *mk_unary(int op, Node *a, Span sp)
{
    Node *n = ast_node(N_UNARY, sp);
    n->op = op;
    n->operand = a;
    return n;
}

static Node *mk_name(Tok t, Span sp)
{
    Node *n = ast_node(N_NAME, sp);
    n->name = t.s;
    n->name_span = sp;
    return n;
}

/* Reports what a head expression may carry only until the for rule takes it:
 * named arguments (a for's options) and a callee that is not a name. */
static Node *plain(Node *n)
{
    if (!n || n->kind != N_CALL)
        return n;
    if (n->opts.len && !n->targs.len) {          /* read_csv<T>(p, on_bad: skip): sema's */
        Setting *s = n->opts.items[0];
        diag_error(s->key_span, E0210, "named arguments are not supported");
        diag_help("pass arguments in the order they are declared; '(key: value)' options "
                  "go right after the list of a 'for'");
        n->opts.len = 0;
        lex_error_span(NULL, s->key_span);
    }
    if (n->lhs) {
        diag_error(n->lhs->span, E0211, "only agents and builtins can be called");
        n->lhs = NULL;
        lex_error_span(NULL, n->span);
    }
    return n;
}

/* call -> callee '(' args ')': the callee must be a name; named arguments
 * are kept in opts for a for's head (head) and reported anywhere else. */
static Node *mk_call(Node *callee, Args *args, Span sp, bool head)
{
    Node *n = ast_node(N_CALL, sp);
    n->args = args->pos;
    n->opts = args->named;
    if (callee->kind == N_NAME) {
        n->name = callee->name;
        n->name_span = callee->span;
    } else {
        n->lhs = callee;
    }
    return head ? n : plain(n);
}

/* Merges each run of adjacent text pieces into one (copied once: a string of
 * many '{' or escapes, one piece each, costs linear time); a string without
 * any piece gets one empty one. */
static Node *mk_string(Vec *parts, bool triple, Span sp)
{
    Node *n = ast_node(N_STRING, sp);
    n->triple = triple;
    for (int i = 0; i < parts->len; ) {
        StrPart *p = parts->items[i];
        int j = i + 1;
        size_t len = p->len;
        while (!p->expr && j < parts->len && !((StrPart *)parts->items[j])->expr)
            len += ((StrPart *)parts->items[j++])->len;
        if (j > i + 1) {
            char *t = arena_alloc(len + 1);
            size_t at = 0;
            for (int k = i; k < j; k++) {
                StrPart *q = parts->items[k];
                memcpy(t + at, q->text, q->len);
                at += q->len;
            }
            p->text = t;
            p->len = len;
        }
        vec_push(&n->parts, p);
        i = j;
    }
    if (!n->parts.len) {
        StrPart *p = arena_alloc(sizeof *p);
        p->text = "";
        vec_push(&n->parts, p);
    }
    return n;
}

/* A for (or pipeline) whose list was parsed as `list(key: value, ...)`:
 * the named arguments are the loop's options. */
static Node *mk_for(Tok var, Span var_sp, Node *iter, Node *where, Node *body, Span sp)
{
    Node *n = ast_node(N_FOR, sp);
    n->name = var.s;
    n->name_span = var_sp;
    if (iter->kind == N_CALL && iter->opts.len && !iter->args.len && !iter->targs.len) {
        n->opts = iter->opts;
        if (iter->lhs) {
            iter = iter->lhs;
        } else {
            Tok t = { iter->name, 0, NULL };
            iter = mk_name(t, iter->name_span);
        }
    }
    n->iter = plain(iter);
    n->cond = where;
    n->body = body;
    return n;
}

static Setting *mk_setting(Tok key, Span key_sp, Node *value, Span sp)
{
    Setting *s = arena_alloc(sizeof *s);
    s->span = sp;
    s->key_span = key_sp;
    s->key = key.s;
    s->value = value;
    return s;
}

static Field *mk_field(Tok name, Span sp, TypeExpr *te)
{
    Field *f = arena_alloc(sizeof *f);
    f->span = sp;
    f->name = name.s;
    f->texpr = te;
    f->doc = name.doc;
    return f;
}

/* A field's attributes: one @alias at most, @sensitive on a schema field only. */
static void set_attrs(LexState *st, Field *f, Vec *attrs, bool field)
{
    for (int i = 0; i < attrs->len; i++) {
        Node *a = attrs->items[i];
        bool sens = a->kind == N_NAME;
        if (sens && field && !f->sensitive) {
            f->sensitive = true;
            f->sensitive_span = a->span;
        } else if (!sens && !f->alias) {
            f->alias = a;
        } else {
            diag_error(a->span, E0212, sens && !field ? "an enum value cannot be @sensitive"
                       : "'%s' has @%s twice", f->name, sens ? "sensitive" : "alias");
            diag_help(sens && !field ? "mark the field that holds the enum @sensitive"
                      : "keep one");
            lex_error_span(st, a->span);
        }
    }
}

static TypeExpr *mk_type_name(Tok t, Span sp)
{
    TypeExpr *te = ast_type(TE_NAME, sp);
    te->name = t.s;
    return te;
}

/* A constraint bound written with a minus: the literal itself is negated. */
static Node *mk_num(Node *n, bool neg, Span sp)
{
    if (neg) {
        n->ival = -n->ival;
        n->fval = -n->fval;
    }
    n->span = sp;
    return n;
}

static void add_decl(yyscan_t scanner, Decl *d)
{
    vec_push(&STATE->prog->decls, d);
}

/* ---- syntax errors ---------------------------------------------------------- */

static LexState *cur_state;                      /* the file being parsed (for plain()) */

void lex_error_span(LexState *S, Span sp)
{
    (void)sp;
    if (!S)
        S = cur_state;
    if (S)
        S->failed = true;
}

/* Bison's own errors; the one it has is running out of parser stack, which
 * within the nesting limits it never does (YYMAXDEPTH). */
static void flowyerror(Span *loc, yyscan_t scanner, const char *msg)
{
    if (strcmp(msg, "memory exhausted") == 0) {
        diag_error(*loc, E0204, "nested too deeply: more than %d levels", FLOWC_MAX_DEPTH);
        diag_help("flowc reads at most %d levels of nested expressions, statements and types; "
                  "give inner parts names with 'let'", FLOWC_MAX_DEPTH);
    } else {
        diag_error(*loc, E0201, "%s", msg);
    }
    STATE->failed = true;
}

static bool is_expr_start(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_IDENT: case YYSYMBOL_INT: case YYSYMBOL_FLOAT: case YYSYMBOL_DURATION:
    case YYSYMBOL_STR_BEGIN: case YYSYMBOL_TRUE: case YYSYMBOL_FALSE: case YYSYMBOL_NULL_:
    case YYSYMBOL_NOT: case YYSYMBOL_IF: case YYSYMBOL_MATCH: case YYSYMBOL_FOR:
    case YYSYMBOL_PARALLEL: case YYSYMBOL_PIPELINE: case YYSYMBOL_LOOP: case YYSYMBOL_BREAK:
    case YYSYMBOL_SKIP: case YYSYMBOL_LEN:
        return true;
    default:
        return k == YYTRANSLATE('(') || k == YYTRANSLATE('[') || k == YYTRANSLATE('{')
            || k == YYTRANSLATE('-');
    }
}

static bool is_operator(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_COALESCE: case YYSYMBOL_OR: case YYSYMBOL_AND: case YYSYMBOL_EQ:
    case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE: case YYSYMBOL_USING:
    case YYSYMBOL_TLT:
        return true;
    default:
        return k == YYTRANSLATE('<') || k == YYTRANSLATE('>') || k == YYTRANSLATE('+')
            || k == YYTRANSLATE('-') || k == YYTRANSLATE('*') || k == YYTRANSLATE('/')
            || k == YYTRANSLATE('.') || k == YYTRANSLATE('(');
    }
}

/* An operator that cannot start an expression ('-' can: it negates). */
static bool is_binary_only(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_EQ: case YYSYMBOL_NE: case YYSYMBOL_LE: case YYSYMBOL_GE:
        return true;
    default:
        return k == YYTRANSLATE('<') || k == YYTRANSLATE('>') || k == YYTRANSLATE('+')
            || k == YYTRANSLATE('*') || k == YYTRANSLATE('/');
    }
}

static bool is_decl_keyword(yysymbol_kind_t k)
{
    return k == YYSYMBOL_IMPORT || k == YYSYMBOL_SCHEMA || k == YYSYMBOL_ENUM
        || k == YYSYMBOL_MODEL || k == YYSYMBOL_AGENT || k == YYSYMBOL_WORKFLOW
        || k == YYSYMBOL_HTTP;
}

static bool is_keyword(yysymbol_kind_t k)
{
    return k >= YYSYMBOL_IMPORT && k <= YYSYMBOL_LEN;
}

static const char *sym_name(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_IDENT: return "name";
    case YYSYMBOL_RETURN_BARE: return "'return'";
    case YYSYMBOL_STR_TEXT: return "string";
    default: return yysymbol_name(k);
    }
}

/* What the parser found, for "unexpected X". */
static const char *found_name(LexState *S, yysymbol_kind_t la, Span loc)
{
    int n = (int)(loc.hi - loc.lo);
    const char *t = S->text + loc.lo;
    if (la == YYSYMBOL_IDENT)
        return arena_printf("identifier '%s'", S->last_text ? S->last_text : "");
    if ((la == YYSYMBOL_INT || la == YYSYMBOL_FLOAT) && n < 40)
        return arena_printf("number %.*s", n, t);
    if (la == YYSYMBOL_DURATION && n < 40)
        return arena_printf("duration %.*s", n, t);
    return sym_name(la);
}

/* Is the lookahead on a later line than the token before it, inside a
 * block (where a line could have ended the statement)? */
static bool on_next_line(LexState *S, Span loc)
{
    if (loc.lo > S->len || S->prev_hi > loc.lo || S->depth_before <= 0
        || S->depth_before > S->nframes || S->frames[S->depth_before - 1].kind != '{')
        return false;
    return memchr(S->text + S->prev_hi, '\n', loc.lo - S->prev_hi) != NULL;
}

static bool expects(const yysymbol_kind_t *exp, int n, yysymbol_kind_t k)
{
    for (int i = 0; i < n; i++)
        if (exp[i] == k)
            return true;
    return false;
}

/* "expected A, B or C" over the useful expected tokens, or "" if too many.
 * A name right after ':', '->' or '<' is a type. */
static const char *expected_list(LexState *S, const yysymbol_kind_t *exp, int n)
{
    const char *names[8];
    int m = 0, ndecl = 0;
    bool has_expr = expects(exp, n, YYSYMBOL_INT) && expects(exp, n, YYSYMBOL_STR_BEGIN);
    bool has_ident = expects(exp, n, YYSYMBOL_IDENT);
    for (int i = 0; i < n; i++)
        ndecl += is_decl_keyword(exp[i]);
    if (has_expr)
        names[m++] = "expression";
    if (ndecl >= 5)
        names[m++] = "declaration";
    for (int i = 0; i < n && m < 8; i++) {
        yysymbol_kind_t k = exp[i];
        if ((has_expr && is_expr_start(k)) || is_operator(k) || k == YYSYMBOL_YYerror
            || k == YYTRANSLATE('@'))
            continue;
        if (ndecl >= 5 && is_decl_keyword(k))
            continue;
        if (has_ident && (k == YYSYMBOL_MODEL || k == YYSYMBOL_MAX || k == YYSYMBOL_LEN))
            continue;
        if (k == YYSYMBOL_NEWLINE && m > 0)
            continue;
        if (k == YYSYMBOL_IDENT && n == 1 && (S->prev == ':' || S->prev == ARROW
                                              || S->prev == '<' || S->prev == TLT)) {
            names[m++] = "type";
            continue;
        }
        names[m++] = sym_name(k);
    }
    if (m > 4) {                                 /* too many: keep the punctuation */
        int k = 0;
        for (int i = 0; i < m; i++)
            if (names[i][0] == '\'' && strchr(",)]}:", names[i][1]))
                names[k++] = names[i];
        m = k;
    }
    if (m == 0 || m > 4)
        return "";
    const char *s = arena_printf(", expected %s", names[0]);
    for (int i = 1; i < m; i++)
        s = arena_printf("%s%s%s", s, i == m - 1 ? " or " : ", ", names[i]);
    return s;
}

/* The closer of an open bracket, as a symbol and as text. */
static yysymbol_kind_t closer_sym(char kind)
{
    switch (kind) {
    case '{': return YYTRANSLATE('}');
    case '(': return YYTRANSLATE(')');
    case '[': return YYTRANSLATE(']');
    default: return YYSYMBOL_INTERP_END;
    }
}

static const char *opener_text(char kind)
{
    return kind == '{' ? "'{'" : kind == '(' ? "'('" : kind == '[' ? "'['" : "'{{'";
}

/* The innermost bracket open before the lookahead, if its closer is
 * expected and it was opened on an earlier line (or we are at the end). */
static LexFrame *unclosed(LexState *S, const yysymbol_kind_t *exp, int n,
                          yysymbol_kind_t la, Span loc)
{
    if (S->depth_before <= 0 || S->depth_before > S->nframes)
        return NULL;
    LexFrame *f = &S->frames[S->depth_before - 1];
    if (!expects(exp, n, closer_sym(f->kind)) || la == closer_sym(f->kind))
        return NULL;
    if (f->kind == '{' && la != YYSYMBOL_YYEOF && !is_decl_keyword(la))
        return NULL;                             /* a '}' is more likely missing elsewhere */
    int l1, c1, l2, c2;
    src_linecol(f->at, &l1, &c1);
    src_linecol(loc, &l2, &c2);
    return (la == YYSYMBOL_YYEOF || l2 > l1) ? f : NULL;
}

static bool is_word(LexState *S, const char *const *words)
{
    for (int i = 0; words[i]; i++)
        if (S->last_text && strcmp(S->last_text, words[i]) == 0)
            return true;
    return false;
}

/* help: lines for the mistakes people make most. */
static void hints(LexState *S, const yysymbol_kind_t *exp, int n, yysymbol_kind_t la)
{
    static const char *const fn_words[] = { "fn", "func", "function", "def", "fun", "proc", NULL };
    static const char *const rec_words[] = { "struct", "class", "type", "record", "interface", NULL };
    bool eq = la == YYTRANSLATE('=');
    if (eq && expects(exp, n, YYTRANSLATE(':')))
        diag_help("write 'name: value' here, with ':'");
    else if (eq && expects(exp, n, YYSYMBOL_EQ))
        diag_help("use '==' to compare");
    else if (la == YYTRANSLATE(':') && expects(exp, n, YYTRANSLATE('=')))
        diag_help("'let' takes no type: the value's type is inferred");
    else if (expects(exp, n, YYSYMBOL_ARROW) && !expects(exp, n, YYTRANSLATE('{')))
        diag_help("an agent's return type follows '->': 'agent NAME(PARAMS) -> TYPE { ... }'");
    else if (is_keyword(la) && expects(exp, n, YYSYMBOL_IDENT) && !expects(exp, n, YYSYMBOL_INT))
        diag_help("'%s' is a keyword; choose another name", S->last_text);
    else if (la == YYSYMBOL_IDENT && expects(exp, n, YYSYMBOL_WORKFLOW) && is_word(S, fn_words))
        diag_help("an LLM call is declared with 'agent NAME(PARAMS) -> TYPE { ... }', "
                  "the program with 'workflow NAME(PARAMS) { ... }'");
    else if (la == YYSYMBOL_FATARROW)
        diag_help("each arm is written 'case => value', the value on the same line");
    else if (la == YYTRANSLATE('[') && expects(exp, n, YYSYMBOL_IDENT) && !expects(exp, n, YYSYMBOL_INT))
        diag_help("a list type is written 'list<T>'");
    else if (la == YYSYMBOL_ELSE)
        diag_help("'else' follows the '}' of an 'if' or a 'loop max'");
    else if (la == YYTRANSLATE('@'))
        diag_help("'@' starts the alias of a schema field or an enum value: "
                  "'name: string @alias(\"Name In The Data\")'");
    else if (la == YYSYMBOL_IDENT && expects(exp, n, YYSYMBOL_WORKFLOW) && is_word(S, rec_words))
        diag_help("a record type is declared with 'schema NAME { field: TYPE ... }'");
}

/* Where error recovery resumes: the end of the line in the innermost
 * bracket open before the lookahead, or that bracket's closer (-1: the
 * next declaration). */
static void begin_skip(LexState *S, yysymbol_kind_t la)
{
    if (la == YYSYMBOL_YYEOF || la == YYSYMBOL_NEWLINE || la == YYTRANSLATE('}')
        || la == YYTRANSLATE(')') || la == YYTRANSLATE(']') || la == YYSYMBOL_INTERP_END
        || (is_decl_keyword(la) && S->nframes == 0))
        return;                                  /* the lookahead is where to resume */
    S->skipping = true;
    S->skip_level = S->depth_before - 1;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, yyscan_t scanner)
{
    LexState *S = STATE;
    S->failed = true;
    if (S->quiet)
        return 0;
    yysymbol_kind_t la = yypcontext_token(ctx);
    Span loc = *yypcontext_location(ctx);
    yysymbol_kind_t exp[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, exp, YYNTOKENS);
    if (n < 0)
        n = 0;
    LexFrame *f = unclosed(S, exp, n, la, loc);
    if (f) {
        int line, col;
        src_linecol(f->at, &line, &col);
        diag_error(loc, E0202, "unexpected %s, expected %s to close %s at %d:%d", found_name(S, la, loc),
                   sym_name(closer_sym(f->kind)), opener_text(f->kind), line, col);
        diag_note(f->at, "%s opened here", opener_text(f->kind));
    } else if (is_binary_only(la) && on_next_line(S, loc)) {
        /* `let total = a` then a line `+ b`: the line was a whole statement */
        Span end = { loc.file, S->prev_hi, S->prev_hi };
        int line, col;
        src_linecol(end, &line, &col);
        diag_error(loc, E0201, "unexpected %s at the start of a line", sym_name(la));
        diag_help("an operator at the start of a line does not continue the previous line; "
                  "put %s at the end of line %d", sym_name(la), line);
    } else if (la != YYSYMBOL_YYEOF && !expects(exp, n, YYSYMBOL_NEWLINE) && on_next_line(S, loc)) {
        /* `let x =` and the rest on the next line: the line ended too early */
        Span end = { loc.file, S->prev_hi, S->prev_hi };
        diag_error(end, E0203, "unexpected end of line%s", expected_list(S, exp, n));
        return 0;                                /* the next line is left to parse */
    } else {
        diag_error(loc, E0201, "unexpected %s%s", found_name(S, la, loc), expected_list(S, exp, n));
    }
    hints(S, exp, n, la);
    begin_skip(S, la);
    return 0;
}

/* ---- entry point -------------------------------------------------------------- */

bool parse_file(Program *p, int file)
{
    Source *src = src_get(file);
    if (!src)
        return false;
    LexState S;
    memset(&S, 0, sizeof S);
    S.file = file;
    S.text = src->text;
    S.len = (uint32_t)src->len;
    S.prog = p;
    S.skip_level = -1;
    yyscan_t sc;
    if (flowylex_init_extra(&S, &sc) != 0)
        return false;
    LexState *saved = cur_state;
    cur_state = &S;
    YY_BUFFER_STATE buf = flowy_scan_bytes(src->text, (int)src->len, sc);
    int first = p->decls.len;
    flowyparse(sc);
    for (int i = first; i < p->decls.len; i++)
        if (!ast_check_depth(p->decls.items[i])) {
            S.failed = true;
            break;
        }
    flowy_delete_buffer(buf, sc);
    flowylex_destroy(sc);
    free(S.frames);
    free(S.ta);
    free(S.ta_open);
    cur_state = saved;
    return !S.failed;
}
