/*
 * estimate_cmd.c: `flowc estimate`, the estimate of estimate.c on real input.
 *
 *   flowc estimate FILE [--items NAME=N ...] [--data PARAM=FILE ...]
 *                  [--journal DB] [--format=text|json]
 *
 * It reads what estimate.c may not (input files with jansson, earlier runs
 * from a journal with SQLite), runs the estimate, compares it with the
 * declared budgets and prints a table or one JSON object on stdout.  A data
 * parameter with no --data reads its default file when there is one, so an
 * example estimates without flags.
 */
#include "flowc.h"

#include <jansson.h>
#include <math.h>
#include <sqlite3.h>

/* The runtime's reader of the journal's chunks (runtime/fr_chunk.c, in
 * libflowrt, which flowc links): a connection reads calls_all through it. */
bool fr_chunk_attach(sqlite3 *db);
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct DataFile {
    const char *param;             /* the workflow parameter */
    const char *path;              /* its file */
    json_t *records;               /* array of the records */
} DataFile;

typedef struct Cmd {
    Vec files;                     /* DataFile* */
    Vec items;                     /* EstItems* */
    sqlite3 *db;                   /* --journal */
    const char *workflow;
} Cmd;

static DataFile *file_of(Cmd *c, const char *param)
{
    for (int i = 0; i < c->files.len; i++) {
        DataFile *f = c->files.items[i];
        if (strcmp(f->param, param) == 0)
            return f;
    }
    return NULL;
}

/* {{ v }} as the runtime renders it: a string's text, else compact JSON. */
static int64_t value_tokens(json_t *v)
{
    if (!v || json_is_null(v))
        return 1;
    if (json_is_string(v))
        return est_tokens(json_string_value(v), json_string_length(v));
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    int64_t t = s ? est_tokens(s, strlen(s)) : 0;
    free(s);
    return t;
}

static bool measure(EstData *d, const char *param, const char **path, int np, double *worst,
                    double *typ)
{
    DataFile *f = file_of(d->priv, param);
    size_t n = f ? json_array_size(f->records) : 0;
    if (!n)
        return false;
    double max = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(f->records, i);
        for (int k = 0; k < np && v; k++)
            v = json_is_object(v) ? json_object_get(v, path[k]) : NULL;
        double t = (double)value_tokens(v);
        max = t > max ? t : max;
        sum += t;
    }
    *worst = max, *typ = sum / (double)n;
    return true;
}

static bool journal_avg(EstData *d, const char *agent, double *in, double *out)
{
    Cmd *c = d->priv;
    sqlite3_stmt *st;
    /* every call is in calls_all (fr_chunk_attach made it, over calls alone
     * for a journal before version 9); a call of a tool loop has its
     * turns' usage in rows of its own ("#t<n>" after its key): a call's
     * is its row's and theirs */
    if (!c->db || sqlite3_prepare_v2(c->db,
            "SELECT sum(key NOT LIKE '%#%'), total(tokens_in), total(tokens_out) FROM calls_all"
            " WHERE agent = ?1 AND status = 'ok'"
            " AND run_id IN (SELECT id FROM runs WHERE workflow = ?2)",
            -1, &st, NULL) != SQLITE_OK)
        return false;
    sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, c->workflow, -1, SQLITE_STATIC);
    bool ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0;
    double n = ok ? (double)sqlite3_column_int64(st, 0) : 1;
    if (ok)
        *in = sqlite3_column_double(st, 1) / n, *out = sqlite3_column_double(st, 2) / n;
    sqlite3_finalize(st);
    return ok;
}

/* Reads a JSON Lines file (or, ending in .csv, a CSV file with a header);
 * NULL (message printed) when it cannot. */
static json_t *read_records(const char *path)
{
    size_t len = strlen(path);
    if (len > 4 && strcmp(path + len - 4, ".csv") == 0) {
        const char *why = NULL;
        json_t *rows = data_csv_records(path, &why);
        if (!rows)
            fprintf(stderr, "flowc: estimate: %s\n", why ? why : path);
        return rows;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "flowc: estimate: cannot open %s\n", path);
        return NULL;
    }
    json_t *a = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int ln = 0;
    while ((n = getline(&line, &cap, f)) > 0) {
        ln++;
        size_t k = (size_t)n;
        while (k && (line[k - 1] == '\n' || line[k - 1] == '\r' || line[k - 1] == ' '))
            k--;
        if (!k)
            continue;
        json_error_t err;
        json_t *v = json_loadb(line, k, JSON_DECODE_ANY, &err);
        if (!v) {
            fprintf(stderr, "flowc: estimate: %s:%d: %s\n", path, ln, err.text);
            json_decref(a);
            a = NULL;
            break;
        }
        json_array_append_new(a, v);
    }
    free(line);
    fclose(f);
    return a;
}

static bool add_file(Cmd *c, const char *param, const char *path, const char *src)
{
    json_t *r = read_records(path);
    if (!r)
        return false;
    DataFile *f = file_of(c, param);
    if (!f) {
        f = arena_alloc(sizeof *f);
        vec_push(&c->files, f);
    } else {
        json_decref(f->records);
    }
    f->param = param, f->path = path, f->records = r;
    EstItems *it = NULL;
    for (int i = 0; i < c->items.len; i++)
        if (strcmp(((EstItems *)c->items.items[i])->name, param) == 0)
            it = c->items.items[i];
    if (!it) {
        it = arena_alloc(sizeof *it);
        it->name = param;
        it->count = (double)json_array_size(r);
        it->src = arena_printf("%s %s", src, path);
        vec_push(&c->items, it);
    }
    return true;
}

/* A data parameter: a string parameter that some read_jsonl or read_csv reads. */
static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The defaults of string parameters that name a readable .jsonl or .csv file. */
static void default_files(Cmd *c, Decl *w)
{
    for (int i = 0; i < w->fields.len; i++) {
        Field *f = w->fields.items[i];
        if (file_of(c, f->name) || !f->deflt || f->deflt->kind != N_STRING ||
            f->deflt->parts.len != 1)
            continue;
        StrPart *sp = f->deflt->parts.items[0];
        bool jsonl = sp->text && sp->len >= 6 && strcmp(sp->text + sp->len - 6, ".jsonl") == 0;
        bool csv = sp->text && sp->len >= 4 && strcmp(sp->text + sp->len - 4, ".csv") == 0;
        if (!(jsonl || csv) || !is_file(sp->text))
            continue;
        add_file(c, f->name, sp->text, "default");
    }
}

/* ---- printing --------------------------------------------------------------- */

static const char *model_name(const EstAgent *r)
{
    return r->model ? r->model->name : "?";
}

static void text_row(const char *name, const char *model, const EstAgent *r)
{
    printf("  %-22s %-16s %8.0f %9.0f %12.0f %12.0f %11.4f %11.4f\n", name, model,
           r->calls_worst, r->attempts_worst, r->in_worst, r->out_worst, r->usd_worst,
           r->usd_exp);
}

/* The agent whose worst case is the largest share of phase ph. */
static EstAgent *dominant(EstPhase *ph)
{
    EstAgent *d = NULL;
    for (int i = 0; i < ph->agents.len; i++) {
        EstAgent *r = ph->agents.items[i];
        if (!d || r->usd_worst > d->usd_worst)
            d = r;
    }
    return d;
}

/* The items of the first counted data list (for "at most N items"). */
static EstItems *main_items(Cmd *c)
{
    return c->items.len ? c->items.items[0] : NULL;
}

/* One over-budget line, text or a JSON object. */
static json_t *over(Cmd *c, const char *who, EstPhase *ph, const EstAgent *sum,
                    const EstBudget *b, bool text)
{
    double tok = sum->in_worst + sum->out_worst;
    const char *what = NULL;
    double cap = 0, worst = 0;
    if (b->usd > 0 && sum->usd_worst > b->usd)
        what = "usd", cap = b->usd, worst = sum->usd_worst;
    else if (b->tokens > 0 && tok > b->tokens)
        what = "tokens", cap = b->tokens, worst = tok;
    if (!what)
        return NULL;
    EstAgent *d = ph ? dominant(ph) : NULL;
    int64_t fit_mt = d && what[0] == 'u' ? est_fit_max_tokens(ph, d, cap) : -1;
    EstItems *it = main_items(c);
    double fit_items = it && it->count > 0 ? floor(it->count * cap / worst) : -1;
    if (text) {
        printf("over budget: %s worst case ", who);
        if (what[0] == 'u')
            printf("$%.4f exceeds its usd budget $%.4f", worst, cap);
        else
            printf("%.0f tokens exceeds its tokens budget %.0f", worst, cap);
        if (d) {
            double share = d->usd_worst / (ph->sum.usd_worst > 0 ? ph->sum.usd_worst : 1);
            printf("; agent '%s' dominates (%.0f%%)", d->agent->name, share * 100);
            if (fit_mt > 0)
                printf(": it fits with its max_tokens at most %lld (now %lld)",
                       (long long)fit_mt, (long long)d->max_tokens);
        }
        if (fit_items >= 0)
            printf("%s at most %.0f items of %s (now %.0f)", fit_mt > 0 ? ", or with" :
                   ": it fits with", fit_items, it->name, it->count);
        printf("\n");
        return NULL;
    }
    json_t *o = json_pack("{s:s, s:s, s:f, s:f}", "budget", who, "key", what, "cap", cap,
                          "worst", worst);
    if (d)
        json_object_set_new(o, "dominant_agent", json_string(d->agent->name));
    if (fit_mt > 0)
        json_object_set_new(o, "fits_with_max_tokens", json_integer(fit_mt));
    if (fit_items >= 0) {
        json_object_set_new(o, "fits_with_items", json_real(fit_items));
        json_object_set_new(o, "items_of", json_string(it->name));
    }
    return o;
}

static const char *phase_label(EstPhase *ph)
{
    return ph->name ? ph->name : "(no phase)";
}

static const char approximation[] =
    "approximate: a run of letters and digits is a token per 4 characters, a run of other "
    "symbols a token per 2, white space is free";

static void print_text(Cmd *c, Estimate *e, const char *file)
{
    printf("estimate of workflow %s (%s)\n", e->workflow->name, file);
    for (int i = 0; i < c->items.len; i++) {
        EstItems *it = c->items.items[i];
        printf("items: %s = %.0f (%s)\n", it->name, it->count, it->src);
    }
    for (int i = 0; i < e->unknown.len; i++) {
        EstUnknown *u = e->unknown.items[i];
        printf("items: %s unknown, counted as 1 (give --items %s=N or --data)\n", u->what,
               u->what);
    }
    printf("tokens: %s%s\n", approximation,
           e->assumed ? "; a value of unbounded size is assumed at most 250 tokens (a string)"
                        " or 10 items (a list)" : "");
    printf("worst case: every call made with all its retries, each answer at max_tokens, the"
           " dearest arm of each branch, every loop to its cap\n");
    printf("expected: one attempt a call, typical answers%s, the mean of the arms, a loop to"
           " half its cap\n", c->db ? " (from the journal's averages where it has them)" : "");
    if (e->tools)
        printf("tool loops: worst every turn up to max_tool_calls, each answer at max_tokens and "
               "each tool result at max_tool_result_tokens, every call to the dearest agent "
               "tool; expected half the cap, one call a turn\n");
    bool batch = false;
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        for (int k = 0; k < ph->agents.len; k++)
            batch |= ((EstAgent *)ph->agents.items[k])->batch;
    }
    if (batch)
        printf("batch: an item's first call in a batch fan-out is expected at the batch price;"
               " its worst case is at the normal price (an item its batch does not answer is"
               " made as a normal call)\n");
    printf("\n");
    printf("  %-22s %-16s %8s %9s %12s %12s %11s %11s\n", "phase / agent", "model", "calls",
           "attempts", "tokens in", "tokens out", "worst usd", "expect usd");
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        if (!ph->name && !ph->agents.len)
            continue;
        text_row(phase_label(ph), "", &ph->sum);
        for (int k = 0; k < ph->agents.len; k++) {
            EstAgent *r = ph->agents.items[k];
            const char *name = arena_printf("  %s%s", r->agent->name, r->batch ? " (batch)" : "");
            text_row(name, model_name(r), r);
        }
    }
    text_row("total", "", &e->total);
    printf("\n");
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        for (int k = 0; k < ph->agents.len; k++) {
            EstAgent *r = ph->agents.items[k];
            bool again = false;                  /* its batch row and its normal row: once */
            for (int q = 0; q < k; q++) {
                EstAgent *o = ph->agents.items[q];
                again |= o->agent == r->agent && o->model == r->model;
            }
            if (r->raise_to && !again)
                printf("not counted: a cut-off answer of '%s' is retried once at its model's "
                       "max_output_tokens %lld (up to $%.4f more for that call)\n",
                       r->agent->name, (long long)r->raise_to,
                       (double)r->raise_to * ((ModelInfo *)r->model->sema)->usd_out / 1e6);
        }
    }
    bool any = false;
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        if (!ph->name)
            continue;
        if (ph->budget.usd > 0 || ph->budget.tokens > 0) {
            any = true;
            printf("budget: phase '%s'", ph->name);
            if (ph->budget.usd > 0)
                printf(" usd $%.4f (worst $%.4f, expected $%.4f)", ph->budget.usd,
                       ph->sum.usd_worst, ph->sum.usd_exp);
            if (ph->budget.tokens > 0)
                printf(" tokens %.0f (worst %.0f)", ph->budget.tokens,
                       ph->sum.in_worst + ph->sum.out_worst);
            printf("\n");
        }
        over(c, arena_printf("phase '%s'", ph->name), ph, &ph->sum, &ph->budget, true);
    }
    if (e->budget.usd > 0 || e->budget.tokens > 0) {
        any = true;
        printf("budget: the workflow");
        if (e->budget.usd > 0)
            printf(" usd $%.4f (worst $%.4f, expected $%.4f)", e->budget.usd, e->total.usd_worst,
                   e->total.usd_exp);
        if (e->budget.tokens > 0)
            printf(" tokens %.0f (worst %.0f)", e->budget.tokens,
                   e->total.in_worst + e->total.out_worst);
        printf("\n");
        /* the workflow's dominant agent: across phases */
        EstPhase all = { 0 };
        for (int i = 0; i < e->phases.len; i++) {
            EstPhase *ph = e->phases.items[i];
            for (int k = 0; k < ph->agents.len; k++)
                vec_push(&all.agents, ph->agents.items[k]);
        }
        all.sum = e->total;
        over(c, "the workflow's", &all, &e->total, &e->budget, true);
    }
    if (!any)
        printf("budget: none declared\n");
}

static json_t *row_json(const EstAgent *r)
{
    return json_pack("{s:{s:f, s:f, s:f, s:f, s:f, s:f}, s:{s:f, s:f, s:f, s:f}}",
                     "worst", "calls", r->calls_worst, "attempts", r->attempts_worst,
                     "tokens_in", r->in_worst, "tokens_out", r->out_worst, "usd", r->usd_worst,
                     "usd_one_attempt", r->usd_once,
                     "expected", "calls", r->calls_exp, "tokens_in", r->in_exp,
                     "tokens_out", r->out_exp, "usd", r->usd_exp);
}

static json_t *budget_json(const EstBudget *b)
{
    return json_pack("{s:o, s:o}", "usd", b->usd > 0 ? json_real(b->usd) : json_null(),
                     "tokens", b->tokens > 0 ? json_real(b->tokens) : json_null());
}

static void print_json(Cmd *c, Estimate *e, const char *file)
{
    json_t *o = json_object(), *items = json_object(), *phases = json_array();
    json_t *overs = json_array();
    json_object_set_new(o, "workflow", json_string(e->workflow->name));
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "tokens", json_string(approximation));
    json_object_set_new(o, "assumed_unbounded", json_boolean(e->assumed));
    for (int i = 0; i < c->items.len; i++) {
        EstItems *it = c->items.items[i];
        json_object_set_new(items, it->name, json_pack("{s:f, s:s}", "count", it->count,
                                                       "source", it->src));
    }
    for (int i = 0; i < e->unknown.len; i++)
        json_object_set_new(items, ((EstUnknown *)e->unknown.items[i])->what,
                            json_pack("{s:i, s:s}", "count", 1, "source", "unknown"));
    json_object_set_new(o, "items", items);
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        if (!ph->name && !ph->agents.len)
            continue;
        json_t *p = row_json(&ph->sum), *agents = json_array();
        json_object_set_new(p, "phase", ph->name ? json_string(ph->name) : json_null());
        json_object_set_new(p, "budget", budget_json(&ph->budget));
        for (int k = 0; k < ph->agents.len; k++) {
            EstAgent *r = ph->agents.items[k];
            json_t *a = row_json(r);
            json_object_set_new(a, "agent", json_string(r->agent->name));
            json_object_set_new(a, "model", json_string(model_name(r)));
            ModelInfo *mi = r->model ? r->model->sema : NULL;
            json_object_set_new(a, "model_name", mi && mi->api_name ? json_string(mi->api_name)
                                                                    : json_null());
            json_object_set_new(a, "batch", json_boolean(r->batch));
            json_object_set_new(a, "max_tokens", json_integer(r->max_tokens));
            json_object_set_new(a, "retries", json_integer(r->retries));
            json_object_set_new(a, "input_tokens_per_call",
                                json_pack("{s:f, s:f}", "worst", r->in_call_worst,
                                          "expected", r->in_call_typ));
            json_object_set_new(a, "from_journal", json_boolean(r->from_journal));
            if (r->max_tool_calls)
                json_object_set_new(a, "max_tool_calls", json_integer(r->max_tool_calls));
            if (r->raise_to)
                json_object_set_new(a, "cut_off_retry_max_tokens", json_integer(r->raise_to));
            json_array_append_new(agents, a);
        }
        json_object_set_new(p, "agents", agents);
        json_array_append_new(phases, p);
        json_t *ov = ph->name ? over(c, arena_printf("phase '%s'", ph->name), ph, &ph->sum,
                                     &ph->budget, false) : NULL;
        if (ov)
            json_array_append_new(overs, ov);
    }
    json_object_set_new(o, "phases", phases);
    json_t *t = row_json(&e->total);
    json_object_set_new(t, "budget", budget_json(&e->budget));
    json_object_set_new(o, "total", t);
    EstPhase all = { 0 };
    for (int i = 0; i < e->phases.len; i++) {
        EstPhase *ph = e->phases.items[i];
        for (int k = 0; k < ph->agents.len; k++)
            vec_push(&all.agents, ph->agents.items[k]);
    }
    all.sum = e->total;
    json_t *ov = over(c, "the workflow's", &all, &e->total, &e->budget, false);
    if (ov)
        json_array_append_new(overs, ov);
    json_object_set_new(o, "over_budget", overs);
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
}

/* ---- the command ---------------------------------------------------------------- */

static int usage_error(const char *msg, const char *arg)
{
    fprintf(stderr, "flowc: estimate: ");
    fprintf(stderr, msg, arg);
    fprintf(stderr, "\nusage: flowc estimate FILE [--items NAME=N ...] [--data PARAM=FILE ...]"
                    " [--journal DB] [--format=text|json]\n");
    return 2;
}

/* NAME=VALUE into its two halves (arena). */
static bool split(const char *s, const char **name, const char **value)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || !eq[1])
        return false;
    *name = arena_strndup(s, (size_t)(eq - s));
    *value = eq + 1;
    return true;
}

int cmd_estimate(int argc, char **argv)
{
    Cmd c = { 0 };
    const char *file = NULL, *journal = NULL, *format = "text";
    Vec items = { 0 }, datas = { 0 };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = NULL;
        if ((strcmp(a, "--items") == 0 || strcmp(a, "--data") == 0 ||
             strcmp(a, "--journal") == 0 || strcmp(a, "--format") == 0) && i + 1 < argc)
            v = argv[++i];
        else if (strncmp(a, "--items=", 8) == 0 || strncmp(a, "--data=", 7) == 0 ||
                 strncmp(a, "--journal=", 10) == 0 || strncmp(a, "--format=", 9) == 0)
            v = strchr(a, '=') + 1;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage_error("%s", "the estimate of a workflow's spend");
            return 0;
        } else if (strncmp(a, "--items", 7) == 0 && v) {
            vec_push(&items, (void *)v);
        } else if (strncmp(a, "--data", 6) == 0 && v) {
            vec_push(&datas, (void *)v);
        } else if (strncmp(a, "--journal", 9) == 0 && v) {
            journal = v;
        } else if (strncmp(a, "--format", 8) == 0 && v) {
            format = v;
            if (strcmp(v, "text") && strcmp(v, "json"))
                return usage_error("--format takes text or json, not '%s'", v);
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option '%s'", a);
        } else if (file) {
            return usage_error("one FILE at a time ('%s' is a second)", a);
        } else {
            file = a;
        }
    }
    if (!file)
        return usage_error("%s", "no input file");
    Program *p = arena_alloc(sizeof *p);
    char *files[1] = { (char *)file };
    if (!flowc_load(p, files, 1))
        return 1;
    Decl *w = sema_workflow(p);
    if (!w) {
        fprintf(stderr, "flowc: estimate: %s declares no workflow\n", file);
        return 1;
    }
    c.workflow = w->name;
    int st = 0;
    for (int i = 0; i < datas.len && !st; i++) {
        const char *name, *path;
        if (!split(datas.items[i], &name, &path))
            st = usage_error("--data takes PARAM=FILE, not '%s'", datas.items[i]);
        else if (!add_file(&c, name, path, "--data"))
            st = 2;
    }
    for (int i = 0; i < items.len && !st; i++) {
        const char *name, *num;
        char *end;
        if (!split(items.items[i], &name, &num))
            st = usage_error("--items takes NAME=N, not '%s'", items.items[i]);
        double n = st ? 0 : strtod(num, &end);
        if (!st && (*end || n < 0 || n != floor(n)))
            st = usage_error("--items: '%s' is not a whole number of items", num);
        if (st)
            break;
        EstItems *it = arena_alloc(sizeof *it);
        it->name = name, it->count = n, it->src = "--items";
        for (int k = 0; k < c.items.len; k++)
            if (strcmp(((EstItems *)c.items.items[k])->name, name) == 0)
                c.items.items[k] = it, it = NULL;
        if (it)
            vec_push(&c.items, it);
    }
    if (!st)
        default_files(&c, w);
    if (!st && journal) {
        if (sqlite3_open_v2(journal, &c.db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
            fprintf(stderr, "flowc: estimate: cannot open journal %s: %s\n", journal,
                    c.db ? sqlite3_errmsg(c.db) : "out of memory");
            st = 2;
        } else {
            fr_chunk_attach(c.db);  /* calls_all, as the runs read it (over calls alone
                                       for a journal before version 9) */
        }
    }
    if (!st) {
        EstData d = { NULL, c.items.len, measure, journal_avg, &c };
        d.items = arena_alloc(sizeof(EstItems) * (size_t)(c.items.len + 1));
        for (int i = 0; i < c.items.len; i++)
            d.items[i] = *(EstItems *)c.items.items[i];
        Estimate *e = est_run(p, w, &d);
        if (strcmp(format, "json") == 0)
            print_json(&c, e, file);
        else
            print_text(&c, e, file);
    }
    for (int i = 0; i < c.files.len; i++)
        json_decref(((DataFile *)c.files.items[i])->records);
    if (c.db)
        sqlite3_close(c.db);
    return st;
}
