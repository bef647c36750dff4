/*
 * flowrt.h: the public interface of libflowrt, the runtime that every binary
 * compiled by flowc links against.  Generated code includes only this header.
 *
 * Values are jansson json_t.  The compiler has already checked every type, so
 * generated code does not test kinds; the runtime validates only what crosses
 * a boundary (input records, agent answers, flags).
 *
 * Ownership, stated once:
 *   - Every json_t* a fr_* function returns is BORROWED.  It stays alive until
 *     the context's pool is released past it (fr_release) or the context ends.
 *     Generated code therefore never calls json_decref on a temporary.
 *   - fr_keep(cx, v) takes a NEW reference v into the pool and returns it
 *     borrowed.  fr_list_push and fr_record_set take their own reference.
 *   - A variable that is assigned after its declaration owns its reference
 *     (fr_assign) and is dropped with fr_drop when its scope ends.
 *   - A function that can fail returns NULL (or false) and sets cx->sig; the
 *     caller propagates it.  No fr_* function exits the process except
 *     fr_main.
 *
 * Threads: a fr_ctx belongs to one thread.  The runtime gives each parallel
 * item, pipeline stage call and parallel-block statement a child context;
 * captured outer values are only read while the child runs.
 */
#ifndef FLOWRT_H
#define FLOWRT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FLOWRT_VERSION "0.1.0"
/* The interface between generated code and the library: raised whenever a
 * struct below or a function's meaning changes.  Generated C refuses to
 * compile against a header of another ABI, and fr_main refuses to run when
 * the library was built for another one. */
#define FLOWRT_ABI 8

/* ---- types: descriptors generated per schema, enum and used type --------- */

typedef enum fr_kind {
    FR_STRING, FR_INT, FR_FLOAT, FR_BOOL,
    FR_OPTIONAL,                   /* elem, or null/absent */
    FR_LIST,                       /* elem */
    FR_RECORD,                     /* schema */
    FR_ENUM,                       /* enm */
} fr_kind;

typedef struct fr_type fr_type;
typedef struct fr_schema fr_schema;

typedef struct fr_enum {
    const char *name;              /* the enum's name in the .flow */
    const char *doc;               /* doc comment or NULL */
    int nvalues;                   /* number of values */
    const char *const *values;     /* the values as they are on the wire (a value's
                                      @alias, else its name), in declaration order */
} fr_enum;

struct fr_type {
    fr_kind kind;                  /* what this is */
    const fr_type *elem;           /* FR_OPTIONAL, FR_LIST: the element type */
    const fr_schema *schema;       /* FR_RECORD */
    const fr_enum *enm;            /* FR_ENUM */
};

/* One schema field: its names, type and constraints.  A value of a record
 * is a JSON object keyed by the fields' wire names. */
typedef struct fr_field {
    const char *name;              /* the field's name in the .flow (messages) */
    const fr_type *type;           /* its type; FR_OPTIONAL when written T? */
    bool has_range;                /* `in min..max` (int, float) */
    double min, max;               /* the range, inclusive */
    bool has_len;                  /* `len min..max` (string: characters, list: items) */
    int64_t min_len, max_len;      /* the length range, inclusive */
    const char *doc;               /* doc comment or NULL */
    const char *wire;              /* its name in the data: the JSON key, the CSV
                                      column (the field's @alias); NULL: name */
    const char *model_key;         /* its property name in the JSON Schema models
                                      answer (wire when every provider takes it as
                                      a key, else name); NULL: wire */
    bool sensitive;                /* @sensitive: personal data, redacted in traces, errors
                                      and reports, hashed in the journal */
} fr_field;

/* What a record does with keys its schema does not declare (`schema S
 * (extra: ...)`): reject them (the default), drop them when the record comes
 * in, or keep them and write them back out with the record. */
typedef enum fr_extra { FR_EXTRA_REJECT, FR_EXTRA_DROP, FR_EXTRA_KEEP } fr_extra;

struct fr_schema {
    const char *name;              /* the schema's name in the .flow */
    const char *doc;               /* doc comment or NULL */
    int nfields;                   /* number of fields */
    const fr_field *fields;        /* the fields, in declaration order */
    fr_extra extra;                /* unknown keys: rejected, dropped or kept */
};

/* The JSON key / CSV column of f, and its key in a model's answer. */
const char *fr_field_wire(const fr_field *f);
const char *fr_field_model_key(const fr_field *f);

extern const fr_type fr_type_string, fr_type_int, fr_type_float, fr_type_bool;

/* ---- errors and control signals ------------------------------------------ */

typedef enum fr_sig {
    FR_OK = 0,
    FR_SIG_SKIP,                   /* `skip`: drop the current item */
    FR_SIG_ESCALATE,               /* `escalate`: item queued for a person, then dropped */
    FR_SIG_BREAK,                  /* `break` (generated code handles it locally) */
    FR_SIG_FAIL,                   /* `fail("why")` or a runtime error: cx->err says why */
    FR_SIG_BUDGET,                 /* a budget stops the work */
    FR_SIG_HALT,                   /* another item's error stopped an on_error: halt fan-out */
    FR_SIG_WAIT,                   /* waiting for approval: exit 3 */
    FR_SIG_USAGE,                  /* bad input data (a JSONL line): exit 2 */
    FR_SIG_STOP,                   /* the journal cannot be written: no new call, exit 1 */
} fr_sig;

typedef struct fr_run fr_run;      /* the whole run: opaque, shared by all contexts */
typedef struct fr_ctx fr_ctx;

struct fr_ctx {
    fr_run *run;                   /* the run this context belongs to */
    fr_ctx *parent;                /* the context that started this one, or NULL */
    int phase;                     /* index of the current phase, -1 before the first */
    fr_sig sig;                    /* why the last call returned NULL/false */
    char *err;                     /* message for FR_SIG_FAIL/USAGE (malloc'd) */
    const char *err_where;         /* "file.flow:12:5" of the failing construct, or NULL */
    char path[128];                /* item path, "3" or "3.1": part of journal keys */
    size_t path_len;               /* bytes used in path */
    uint32_t seq;                  /* calls made in this item (journal key) */
    json_t **pool;                 /* values kept alive for this context */
    size_t npool, cap;             /* used and allocated slots of pool */
    json_t *item;                  /* the current item (escalate's default), borrowed */
};

/* Sets cx->sig = FR_SIG_FAIL with a formatted message; returns NULL. */
void *fr_fail(fr_ctx *cx, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *fr_skip(fr_ctx *cx);
/* Queues item for a person with a reason, then acts as skip. */
void *fr_escalate(fr_ctx *cx, json_t *item, const char *why, const char *where);
void fr_sig_clear(fr_ctx *cx);

/* ---- the value pool ------------------------------------------------------ */

json_t *fr_keep(fr_ctx *cx, json_t *v);      /* takes a new reference; returns it borrowed */
size_t fr_mark(fr_ctx *cx);                  /* the pool's current height */
void fr_release(fr_ctx *cx, size_t mark);    /* drops what was kept since mark */
/* Releases to mark but keeps v alive (kept again above mark): a block's value. */
json_t *fr_escape(fr_ctx *cx, size_t mark, json_t *v);
void fr_assign(json_t **slot, json_t *v);    /* owned variable: decref old, incref v */
void fr_drop(json_t **slot);                 /* decref and clear an owned variable */

/* ---- values -------------------------------------------------------------- */

json_t *fr_int(fr_ctx *cx, int64_t i);
json_t *fr_float(fr_ctx *cx, double d);
json_t *fr_str(fr_ctx *cx, const char *s);           /* copies s */
json_t *fr_strn(fr_ctx *cx, const char *s, size_t n);
json_t *fr_bool(bool b);                             /* singleton, no pool */
json_t *fr_null(void);                               /* singleton, no pool */
json_t *fr_list(fr_ctx *cx);                         /* new empty list */
void fr_list_push(json_t *list, json_t *v);          /* takes its own reference */
json_t *fr_record(fr_ctx *cx);                       /* new empty record */
void fr_record_set(json_t *rec, const char *field, json_t *v); /* own ref; null v is omitted */
json_t *fr_get(json_t *rec, const char *field);      /* borrowed; null if absent */
size_t fr_count(json_t *list);                       /* list length (C) */
json_t *fr_at(json_t *list, size_t i);               /* borrowed element */
json_t *fr_len(fr_ctx *cx, json_t *v);               /* len(): list items or string characters */

bool fr_truthy(json_t *v);                           /* a bool value to C */
bool fr_is_null(json_t *v);
bool fr_equal(json_t *a, json_t *b);                 /* == (ints and floats compare by value) */
int fr_compare(json_t *a, json_t *b);                /* <0, 0, >0 for numbers or strings */
json_t *fr_add(fr_ctx *cx, json_t *a, json_t *b);    /* numbers, or string concatenation */
json_t *fr_sub(fr_ctx *cx, json_t *a, json_t *b);
json_t *fr_mul(fr_ctx *cx, json_t *a, json_t *b);
json_t *fr_div(fr_ctx *cx, json_t *a, json_t *b, const char *where); /* NULL on division by zero */
json_t *fr_neg(fr_ctx *cx, json_t *a);
int fr_enum_index(const fr_enum *e, json_t *v);      /* for match: index of v's value, -1 */

/* ---- text: prompt rendering ---------------------------------------------- */

typedef struct fr_buf {
    char *s;                       /* NUL-terminated contents (malloc'd) */
    size_t len;                    /* bytes used, without the NUL */
    size_t cap;                    /* bytes allocated */
} fr_buf;

void fr_buf_put(fr_buf *b, const char *s, size_t n);
void fr_buf_puts(fr_buf *b, const char *s);
/* {{ v }}: a string as its text, anything else as compact JSON (keys in schema order). */
void fr_buf_value(fr_buf *b, json_t *v);
void fr_buf_free(fr_buf *b);

/* ---- models and agents --------------------------------------------------- */

/* How a model is asked for an answer that fits a JSON Schema. */
typedef enum fr_output_mode {
    FR_OUT_DEFAULT,                /* the provider's: anthropic output_config, openai json_schema */
    FR_OUT_OUTPUT_CONFIG,          /* Anthropic output_config.format json_schema (documented subset) */
    FR_OUT_TOOL,                   /* Anthropic forced tool call (older models, compatible servers) */
    FR_OUT_JSON_SCHEMA,            /* OpenAI response_format json_schema, strict */
    FR_OUT_JSON_OBJECT,            /* OpenAI response_format json_object, schema in the prompt */
    FR_OUT_PROMPT,                 /* no response_format: the schema in the prompt only */
} fr_output_mode;

typedef struct fr_model {
    const char *name;              /* the model declaration's name */
    const char *provider;          /* "anthropic", "openai" or "mock" */
    const char *api_name;          /* the provider's model name */
    double usd_per_mtok_in;        /* price per million input tokens (not from the cache) */
    double usd_per_mtok_out;       /* price per million output tokens (reasoning included) */
    const char *base_url;          /* NULL: from the environment, else the provider's */
    const char *api_key_env;       /* NULL: ANTHROPIC_API_KEY / OPENAI_API_KEY; "": none */
    /* capabilities (0 / NULL / < 0: not declared) */
    fr_output_mode output;         /* structured_output: how answers are constrained */
    bool no_temperature;           /* temperature: false, the model refuses one */
    const char *max_tokens_param;  /* the token cap's name; NULL: the provider's usual */
    int64_t max_output_tokens;     /* the model's own output cap, 0 unknown */
    int64_t context_window;        /* tokens, 0 unknown */
    double usd_per_mtok_cache_write;    /* 5-minute (default TTL) cache write; < 0: as input */
    double usd_per_mtok_cache_write_1h; /* 1-hour cache write; < 0: as the 5-minute one */
    double usd_per_mtok_cache_read;     /* cache hit; < 0: as input */
    int64_t min_cache_tokens;      /* shortest cacheable prefix, 0 unknown */
    double rpm, tpm;               /* known rate limits per minute, 0 none */
    double usd_per_mtok_batch_in;  /* batch API input price; < 0: not declared (no discount) */
    double usd_per_mtok_batch_out; /* batch API output price; < 0: not declared */
} fr_model;

typedef struct fr_agent fr_agent;
struct fr_op;

/* One tool of an agent: an http operation, or another agent as a sub-call,
 * that the model may call in the agent's tool loop.  The model sees its
 * name, description and input schema; the runtime validates the model's
 * arguments against the parameter types and calls it as the workflow
 * would, through fr_op_call or fr_call. */
typedef struct fr_tool {
    const char *name;              /* the tool's name on the wire: the operation's or agent's */
    const char *description;       /* its doc comment, or NULL */
    const struct fr_op *op;        /* an http operation, or NULL */
    const fr_agent *agent;         /* an agent, or NULL */
    int nparams;                   /* its parameters: the input's properties */
    const char *const *param_names;/* their names */
    const fr_type *const *param_types; /* their types */
    const char *schema;            /* the input's JSON Schema, every keyword (Anthropic's
                                      input_schema, functions without strict mode) */
    const char *schema_strict;     /* the same in OpenAI's strict dialect (strict functions) */
} fr_tool;

/* Renders one call's system and prompt from its arguments (generated). */
typedef bool (*fr_render_fn)(fr_ctx *cx, json_t *const *args, fr_buf *system, fr_buf *prompt);

struct fr_agent {
    const char *name;              /* the agent's name */
    const char *doc;               /* doc comment or NULL */
    const fr_model *model;         /* its model */
    const fr_type *output;         /* the answer's type (a record, usually) */
    const char *schema_anthropic;  /* JSON Schema text for the forced tool's input_schema */
    const char *schema_output_config; /* the documented subset, for output_config.format */
    const char *schema_openai;     /* strict-mode JSON Schema text for response_format */
    double temperature;            /* < 0: the provider's default */
    int max_tokens;                /* answer cap */
    int retries;                   /* attempts after the first */
    int timeout_ms;                /* per attempt */
    fr_render_fn render;           /* builds system and prompt */
    int nparams;                   /* number of parameters */
    const char *const *param_names;/* their names */
    bool cache;                    /* prompt caching (`cache: off` clears it) */
    int64_t system_head;           /* bytes of system before its first {{ }}, -1: none (all fixed) */
    int64_t prompt_head;           /* bytes of prompt before its first {{ }}, -1: none (all fixed) */
    int ntools;                    /* tools the model may call; 0: one request, no loop */
    const fr_tool *tools;          /* them */
    int max_tool_calls;            /* the loop's bound: tool calls at most, then the answer */
    int max_tool_result_tokens;    /* a tool's result is cut to about this many tokens */
    const fr_type *const *param_types; /* the parameters' types (what holds personal data) */
};

/* Calls agent a (with model `using` if not NULL) at call site `site` with
 * args.  Handles journal, budget, retries, validation, tracing, and an
 * agent's tool loop.  Returns the validated answer, borrowed, or NULL with
 * cx->sig set. */
json_t *fr_call(fr_ctx *cx, const fr_agent *a, int site, const fr_model *using,
                json_t *const *args, const char *where);

/* ---- http operations ----------------------------------------------------- */

/* How a read pages (the operation's `paging:`). */
typedef enum fr_paging {
    FR_PAGE_NONE,                  /* one request */
    FR_PAGE_CURSOR,                /* the cursor at page_field goes in query parameter page_param */
    FR_PAGE_NEXT_URL,              /* the next page's URL is at page_field */
    FR_PAGE_LINK,                  /* the next page's URL is the Link header's rel="next" */
} fr_paging;

/* One call's request as its render function fills it from the arguments.
 * A secret (env.NAME in a header) is written as a marker (fr_secret), never
 * as its value: the runtime puts the value in only as the request leaves,
 * and masks it everywhere else. */
typedef struct fr_oprequest {
    fr_buf url;                    /* the URL; interpolated values percent-encoded */
    fr_buf headers;                /* "Name: value" lines, each ended by '\n' */
    json_t *body;                  /* the body's value (borrowed), NULL for none */
} fr_oprequest;

typedef bool (*fr_op_render_fn)(fr_ctx *cx, json_t *const *args, fr_oprequest *rq);

/* An http operation: a typed request with a typed answer.  Callable by
 * anything that has its typed arguments (a workflow, an agent's tool loop)
 * through fr_op_call. */
typedef struct fr_op {
    const char *name;              /* the operation's name */
    const char *doc;               /* doc comment or NULL */
    const char *method;            /* "GET", "POST", "PUT", "PATCH" or "DELETE" */
    bool write;                    /* changes the server: Idempotency-Key, held by --dry-run */
    bool approval;                 /* declared `approval: required` (proved at compile time) */
    const fr_type *output;         /* the answer's type, NULL for none */
    const fr_type *body_type;      /* the body's type, NULL for no body */
    int retries;                   /* attempts after the first, per page */
    int timeout_ms;                /* per attempt */
    double rps;                    /* requests per second to its host at most, 0: no cap */
    fr_paging paging;              /* how a read pages */
    const char *page_field;        /* cursor or next URL: its dotted path in the answer */
    const char *page_param;        /* cursor: the query parameter that takes it */
    const char *items;             /* dotted path of a page's items, NULL: the whole answer */
    int max_pages;                 /* a paged read fails past this many pages */
    fr_op_render_fn render;        /* builds the request */
    int nparams;                   /* number of parameters */
    const char *const *param_names;/* their names */
    int nsecrets;                  /* environment variables its headers read */
    const char *const *secrets;    /* their names: checked set before any work starts */
} fr_op;

/* Calls op at call site `site` with args: journal, --dry-run, --mock,
 * concurrency, limiter, retries, paging, validation, tracing.  Returns the
 * validated answer, borrowed, or NULL with cx->sig set. */
json_t *fr_op_call(fr_ctx *cx, const fr_op *op, int site, json_t *const *args,
                   const char *where);
/* {{ v }} in a URL: as fr_buf_value, percent-encoded (RFC 3986 unreserved kept). */
void fr_buf_url_value(fr_buf *b, json_t *v);
/* The marker of secret env.NAME in a header (a string value, borrowed). */
json_t *fr_secret(fr_ctx *cx, const char *env);

/* ---- budgets, phases, the program ---------------------------------------- */

/* A hard cap; a field < 0 means no cap.  A key whose value is a workflow
 * parameter (`budget { usd: max_usd }`) names it: the parameter's value
 * (null: no cap) replaces the field when the run starts. */
typedef struct fr_budget {
    double usd;                    /* dollars */
    int64_t tokens;                /* input + output tokens */
    int64_t time_ms;               /* wall time */
    int usd_param;                 /* 1 + the index of the parameter that sets usd, 0 none */
    int tokens_param;              /* likewise for tokens (an int parameter) */
    int time_param;                /* likewise for time (an int of seconds, or a duration string) */
} fr_budget;

#define FR_NO_BUDGET { -1, -1, -1, 0, 0, 0 }

typedef struct fr_phase {
    const char *name;              /* the phase's name */
    fr_budget budget;              /* its own cap, inside the workflow's */
} fr_phase;

bool fr_phase_begin(fr_ctx *cx, int phase);  /* false (sig set) if a budget is spent */
void fr_phase_end(fr_ctx *cx, int phase);

/* A workflow parameter: becomes --kebab-case. */
typedef struct fr_param {
    const char *name;              /* snake_case name */
    const fr_type *type;           /* string, int, float, bool, or optional of one */
    const char *deflt;             /* default as JSON text, NULL when required */
    const char *doc;               /* doc comment or NULL */
    bool budget_only;              /* read only by budgets: a resume may change it */
} fr_param;

typedef json_t *(*fr_main_fn)(fr_ctx *cx, json_t *const *args);

typedef struct fr_program {
    const char *name;              /* the workflow's name */
    const char *doc;               /* its doc comment, or NULL */
    const char *source_file;       /* the .flow it was built from */
    const char *source_hash;       /* hash of the sources: resume refuses a changed program */
    int nparams;                   /* number of parameters */
    const fr_param *params;        /* the parameters */
    const fr_type *ret;            /* the return type, NULL for none */
    int nphases;                   /* number of phases */
    const fr_phase *phases;        /* the phases, in order */
    fr_budget budget;              /* the workflow's own cap */
    int nmodels;                   /* models the workflow can call */
    const fr_model *const *models; /* they are checked for API keys before work starts */
    int nagents;                   /* agents it declares */
    const fr_agent *const *agents; /* (for the summary and --help) */
    fr_main_fn main;               /* the workflow body */
    int nops;                      /* http operations it can call */
    const fr_op *const *ops;       /* their secrets are checked before work starts */
    const char *flowc_version;     /* the flowc that generated it (--version), or NULL */
    unsigned flags;                /* FR_PROG_*: what the body does that matters up front */
} fr_program;

#define FR_PROG_APPROVE 1u         /* calls approve(): --no-journal is refused */
#define FR_PROG_SHARD 2u           /* its first fan-out is sharded: --shard I/N runs a share */

/* Parses the command line, runs the workflow, prints the result and summary,
 * and returns the process exit status (0 done, 1 failed, 2 usage or input,
 * 3 waiting for approval, 4 stopped by a budget, 5 done but for items
 * skipped after transient errors, which --resume retries).  fr_main passes the ABI
 * the caller was compiled for, which the library checks. */
int fr_main_abi(int abi, const fr_program *prog, int argc, char **argv);
#define fr_main(prog, argc, argv) fr_main_abi(FLOWRT_ABI, (prog), (argc), (argv))

/* ---- fan-out ------------------------------------------------------------- */

typedef enum fr_on_error { FR_ON_ERROR_HALT, FR_ON_ERROR_SKIP } fr_on_error;

typedef struct fr_par_opts {
    int concurrency;               /* items in flight at most (also capped by --concurrency) */
    fr_on_error on_error;          /* what a failed item does */
    const char *where;             /* "file.flow:line:col" of the construct */
    bool batch;                    /* batch: true, through the providers' batch APIs */
    int shard;                     /* 0; 1 shard: true (by position); 2 shard_key (by key) */
    const char *shard_key;         /* shard_key's field, as the data names it, or NULL */
} fr_par_opts;

/* A loop over a sharded list (a shard's share, or what a loop made of one)
 * in a sharded run: the element res's last push came from xs[i], so res's
 * rows keep their positions in the sharded fan-out's input, which `merge`
 * orders by.  Nothing outside a sharded run. */
void fr_shard_step(fr_ctx *cx, json_t *xs, size_t i, json_t *res);

/* One item of a for body: the item's value, or NULL with sig (SKIP drops it). */
typedef json_t *(*fr_body_fn)(fr_ctx *cx, json_t *item, size_t index, void *env);

/* parallel for: the body's values in input order, skipped items left out. */
json_t *fr_parallel_for(fr_ctx *cx, json_t *list, const fr_par_opts *opts,
                        fr_body_fn body, void *env);

/* One stage of a pipeline; prev[k] is the value of stage k < this one. */
typedef json_t *(*fr_stage_fn)(fr_ctx *cx, json_t *item, json_t *const *prev,
                               size_t index, void *env);

typedef struct fr_stage {
    const char *name;              /* the stage's name */
    int concurrency;               /* workers of this stage */
    fr_stage_fn fn;                /* its body */
} fr_stage;

/* pipeline for: items stream stage to stage; the last stage's values, in order. */
json_t *fr_pipeline(fr_ctx *cx, json_t *list, const fr_par_opts *opts, int nstages,
                    const fr_stage *stages, void *env);

/* parallel { }: runs the statements at once; false if any failed (sig set). */
typedef bool (*fr_task_fn)(fr_ctx *cx, void *env);
bool fr_parallel_block(fr_ctx *cx, int ntasks, const fr_task_fn *tasks, void *env);

/* Item paths for sequential loops (journal keys, escalations). */
void fr_item_enter(fr_ctx *cx, size_t index, size_t *saved);
void fr_item_leave(fr_ctx *cx, size_t saved);

/* A sequential loop's item waits for approval: the loop goes on, so every
 * item queues its approval before the run stops.  Counts item `index` in
 * *waits, keeps the first one's "item N: why" in *first (borrowed from the
 * pool), clears the signal.  After the loop, fr_loop_waited is false with FR_SIG_WAIT if any
 * item waited. */
void fr_item_waits(fr_ctx *cx, size_t index, size_t *waits, json_t **first);
bool fr_loop_waited(fr_ctx *cx, size_t waits, json_t *first, const char *where);

/* ---- builtins ------------------------------------------------------------ */

/* The options of a read: read_csv<T>(path, on_bad: skip, rejects: p, delimiter: ";"). */
typedef struct fr_read_opts {
    bool csv;                      /* read_csv, else read_jsonl */
    bool skip_bad;                 /* on_bad: skip (else halt) */
    json_t *rejects;               /* rejects: a path (string), NULL: <name>.rejects.<ext> */
    char delimiter;                /* read_csv's cell separator, 0: ',' */
} fr_read_opts;

/* read_jsonl / read_csv: every record of the file at path ("-": stdin), or
 * NULL with FR_SIG_USAGE (exit 2) when a row is bad and the read halts, the
 * CSV header does not fit elem, or the file cannot be read.  Bad rows are
 * reported on stderr (the first 20, then a count); with skip_bad they are
 * left out and written, with their problems, to the rejects file. */
json_t *fr_read(fr_ctx *cx, json_t *path, const fr_type *elem, const fr_read_opts *o,
                const char *where);
json_t *fr_read_jsonl(fr_ctx *cx, json_t *path, const fr_type *elem, const char *where);
/* write_jsonl / write_csv: to a temporary file renamed over path, or to
 * stdout for "-". */
bool fr_write_jsonl(fr_ctx *cx, json_t *list, json_t *path, const fr_type *elem,
                    const char *where);
bool fr_write_csv(fr_ctx *cx, json_t *list, json_t *path, const fr_type *elem,
                  const char *where);

/* `let xs = read_jsonl<T>(in)` (or read_csv), `let ys = pipeline for x in
 * xs (...) { ... }`, `write_jsonl(ys, out)`, when xs and ys are used nowhere
 * else: the file is checked whole first (bad rows reported or set aside as
 * by fr_read), then its rows stream through the pipeline and its values, in
 * input order, into the temporary file renamed over out, a window of items
 * in memory at a time.  The three statements' effects, in bounded memory.
 * When the input is stdin, the output stdout or a CSV, a budget is in
 * force (its stop keeps the finished items whole), the process is one
 * shard of several, or FLOWRT_NO_STREAM is set: read, pipeline and write
 * as written. */
bool fr_stream_file(fr_ctx *cx, json_t *in, const fr_type *in_elem, const fr_read_opts *ro,
                    const char *read_where, const fr_par_opts *opts, int nstages,
                    const fr_stage *stages, void *env, json_t *out, const fr_type *out_elem,
                    bool out_csv, const char *write_where);
json_t *fr_env(fr_ctx *cx, json_t *name);            /* string or null */
/* approve(xs, title): the approved items, or NULL with FR_SIG_WAIT. */
json_t *fr_approve(fr_ctx *cx, json_t *list, json_t *title, int site, const char *where);

/* ---- validation ---------------------------------------------------------- */

/* Checks v against t (types, required fields, enums, ranges, lengths, no
 * unknown fields).  On failure writes a message naming the path
 * ("tags[2]: expected string, got 7") into err and returns false. */
bool fr_validate(json_t *v, const fr_type *t, fr_buf *err);
/* A value a record literal gives field f of schema `schema`, against the
 * field's constraint: false with FR_SIG_FAIL ("record 'Out' field 'n': 5 is
 * out of range 1..3") when it does not fit. */
bool fr_check_field(fr_ctx *cx, json_t *v, const fr_field *f, const char *schema,
                    const char *where);
/* Serializes v as compact JSON with record keys in schema order (malloc'd). */
char *fr_to_json(json_t *v, const fr_type *t);

#endif
