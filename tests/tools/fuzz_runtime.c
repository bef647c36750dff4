/*
 * fuzz_runtime.c: a deterministic mutation fuzzer for every runtime parser
 * of outside data: a model's answer text (fr_repair_json, then fr_validate),
 * JSONL input (fr_read_jsonl), CSV input (fr_read with read_csv's options)
 * and the providers' response bodies (fr_anthropic_parse, fr_openai_parse);
 * the mock's answers ride along.
 *
 *   build/tools/fuzz_runtime TOP [TMPDIR] [-n ITERATIONS] [-s SEED] [FILE...]
 *
 * The seed corpus is tests/fuzz/runtime/seeds/; a file's name says which
 * parser it feeds (answer-*, jsonl-*, anthropic-*, openai-*, mock-*, csv-*).  Every
 * seed and every file of tests/fuzz/runtime/crashers/ is first fed, as it is,
 * to every target.  Then each iteration takes a seed and makes an input of
 * its kind from it, by one of two mutators:
 *   - bytes: bit flips, interesting bytes, insertions, deletions, splices
 *     from other seeds, truncations, duplicated chunks, JSON token soup,
 *     interesting numbers, deep nesting;
 *   - trees: the seed's JSON value with one node replaced, deleted, renamed,
 *     duplicated, nested or its string mangled, written back compact or
 *     indented and, for answers, wrapped in prose, fences and trailing
 *     commas (then the repaired value must be the one wrapped), or spliced
 *     into a provider body's text or tool input, or into JSONL lines.
 * With FILE arguments only those files are run, through every target.
 *
 * Invariants checked besides "no crash" (ASan/UBSan/LSan do the rest):
 *   - repair gives an object or array, or NULL with a short reason; an answer
 *     called not repaired parses as it is;
 *   - fr_validate agrees with and without a message buffer, and says why
 *     when it says no; a valid value written by fr_to_json reads back valid
 *     and writes the same text; fr_normalize keeps it valid;
 *   - read_jsonl gives a list whose every element validates, as many as the
 *     file has non-blank lines, or a usage error "PATH:N: ..." whose N is the
 *     first bad line by an independent reading of the file; under a failed
 *     allocation it gives the same answer or "out of memory";
 *   - read_csv gives a list whose every element validates, which write_csv
 *     writes and read_csv reads back equal (or write_csv refuses it, naming
 *     a list item with ';'), or a usage error naming the file; under a failed
 *     allocation it gives the same answer or "out of memory";
 *   - a provider parse gives an answer (a value, no error) or a bad answer
 *     (an error, no value), keeps the body's finish reason, leaves the body
 *     unchanged, its wrapped answer is the plain answer's "answer", and its
 *     answer goes through the value checks;
 *   - every message that goes back to the model (a validation failure, a
 *     repair's reason, a response's error) is UTF-8, and the next attempt's
 *     request carrying it and the raw answer can be built for both formats;
 *   - repair under a failed allocation gives the same value or a reason;
 *   - the mock's answer validates and its raw text is fr_to_json of it.
 * Mutants get a failed allocation now and then; a replayed file gets one at
 * each of the first few allocations of every repair and read.
 *
 * Each input runs under alarm(), so a hang fails.  A failing input is saved
 * to TMPDIR (or $FUZZ_RUNTIME_SAVE) as crash-TARGET-HASH and printed
 * escaped; keep it under tests/fuzz/runtime/crashers/ and it is replayed by
 * every later run.  UBSan dies without a callback, so the input being run
 * is always in SAVE/fuzz_runtime-last-input.  A bug found and reported but
 * not yet fixed is an "open bug" (open_bugs[], open_bug()): printed once and
 * counted, it does not fail the run.  Built with -DFLOWC_LIBFUZZER the same
 * checks run from LLVMFuzzerTestOneInput (the first byte picks the target):
 *   clang -fsanitize=fuzzer,address,undefined -DFLOWC_LIBFUZZER -D_GNU_SOURCE
 *     -Iruntime tests/tools/fuzz_runtime.c runtime/fr_[a-z]*.c -ljansson
 *     -lsqlite3 -lpthread -lm
 */
#include "fr_data.h"
#include "fr_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef FLOWC_LIBFUZZER
#pragma GCC diagnostic ignored "-Wunused-function"   /* main's helpers */
#endif

#define FUZZ_MAX_INPUT (64 * 1024)      /* mutated inputs are cut to this size */
#define ALARM_S 10                 /* seconds one input may take */
#define MAX_REPORTS 10             /* failures printed in full */
#define OOM_ANSWER 12              /* a repair's allocations that may be made to fail */
#define OOM_JSONL 24               /* a read_jsonl's allocations that may be made to fail */
#define OOM_CSV 40                 /* a read_csv's allocations that may be made to fail */

/* ---- types the answers are checked against -------------------------------- */

static const char *const seniority_v[] = { "ic", "manager", "director", "vp", "cxo" };
static const fr_enum e_seniority = { "Seniority", NULL, 5, seniority_v };
static const char *const category_v[] = { "bug", "feature", "question", "spam" };
static const fr_enum e_category = { "Category", NULL, 4, category_v };
static const char *const currency_v[] = { "USD", "EUR", "GBP", "\xe5\x86\x86" };
static const fr_enum e_currency = { "Currency", NULL, 4, currency_v };

static const fr_type t_seniority = { FR_ENUM, NULL, NULL, &e_seniority };
static const fr_type t_category = { FR_ENUM, NULL, NULL, &e_category };
static const fr_type t_currency = { FR_ENUM, NULL, NULL, &e_currency };
static const fr_type t_opt_int = { FR_OPTIONAL, &fr_type_int, NULL, NULL };
static const fr_type t_opt_float = { FR_OPTIONAL, &fr_type_float, NULL, NULL };
static const fr_type t_opt_string = { FR_OPTIONAL, &fr_type_string, NULL, NULL };
static const fr_type t_list_string = { FR_LIST, &fr_type_string, NULL, NULL };

/* Lead: ranges, lengths, an enum, optionals. */
static const fr_field lead_f[] = {
    { "name", &fr_type_string, false, 0, 0, true, 1, 80, NULL, NULL, NULL, false },
    { "email", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "seniority", &t_seniority, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "intent_score", &fr_type_float, true, 0, 1, false, 0, 0, NULL, NULL, NULL, false },
    { "employees", &t_opt_int, true, 1, 1000000, false, 0, 0, NULL, NULL, NULL, false },
    { "tags", &t_list_string, false, 0, 0, true, 0, 5, NULL, NULL, NULL, false },
    { "notes", &t_opt_string, false, 0, 0, true, 0, 500, NULL, NULL, NULL, false },
};
static const fr_schema s_lead = { "Lead", NULL, 7, lead_f, FR_EXTRA_REJECT };
static const fr_type t_lead = { FR_RECORD, NULL, &s_lead, NULL };

/* Triage: a list of records with an optional float in a range. */
static const fr_field label_f[] = {
    { "name", &fr_type_string, false, 0, 0, true, 1, 30, NULL, NULL, NULL, false },
    { "weight", &t_opt_float, true, -1, 1, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema s_label = { "Label", NULL, 2, label_f, FR_EXTRA_REJECT };
static const fr_type t_label = { FR_RECORD, NULL, &s_label, NULL };
static const fr_type t_list_label = { FR_LIST, &t_label, NULL, NULL };
static const fr_field triage_f[] = {
    { "category", &t_category, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "priority", &fr_type_int, true, 1, 5, false, 0, 0, NULL, NULL, NULL, false },
    { "confidence", &fr_type_float, true, 0, 1, false, 0, 0, NULL, NULL, NULL, false },
    { "summary", &fr_type_string, false, 0, 0, true, 0, 200, NULL, NULL, NULL, false },
    { "labels", &t_list_label, false, 0, 0, true, 0, 8, NULL, NULL, NULL, false },
    { "duplicate_of", &t_opt_int, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema s_triage = { "Triage", NULL, 6, triage_f, FR_EXTRA_REJECT };
static const fr_type t_triage = { FR_RECORD, NULL, &s_triage, NULL };

/* Invoice: records three deep, a list of records, a unicode enum value. */
static const fr_field address_f[] = {
    { "street", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "city", &fr_type_string, false, 0, 0, true, 1, 60, NULL, NULL, NULL, false },
    { "zip", &fr_type_string, false, 0, 0, true, 5, 10, NULL, NULL, NULL, false },
};
static const fr_schema s_address = { "Address", NULL, 3, address_f, FR_EXTRA_REJECT };
static const fr_type t_address = { FR_RECORD, NULL, &s_address, NULL };
static const fr_type t_opt_address = { FR_OPTIONAL, &t_address, NULL, NULL };
static const fr_field customer_f[] = {
    { "name", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "vip", &fr_type_bool, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "address", &t_opt_address, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema s_customer = { "Customer", NULL, 3, customer_f, FR_EXTRA_REJECT };
static const fr_type t_customer = { FR_RECORD, NULL, &s_customer, NULL };
static const fr_field line_f[] = {
    { "sku", &fr_type_string, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "qty", &fr_type_int, true, 1, 10000, false, 0, 0, NULL, NULL, NULL, false },
    { "unit_price", &fr_type_float, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "discount", &t_opt_float, true, 0, 1, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema s_line = { "LineItem", NULL, 4, line_f, FR_EXTRA_REJECT };
static const fr_type t_line = { FR_RECORD, NULL, &s_line, NULL };
static const fr_type t_list_line = { FR_LIST, &t_line, NULL, NULL };
static const fr_field invoice_f[] = {
    { "id", &fr_type_string, false, 0, 0, true, 1, 20, NULL, NULL, NULL, false },
    { "total", &fr_type_float, true, 0, 1e9, false, 0, 0, NULL, NULL, NULL, false },
    { "currency", &t_currency, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "lines", &t_list_line, false, 0, 0, true, 1, 50, NULL, NULL, NULL, false },
    { "customer", &t_customer, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
    { "approved", &fr_type_bool, false, 0, 0, false, 0, 0, NULL, NULL, NULL, false },
};
static const fr_schema s_invoice = { "Invoice", NULL, 6, invoice_f, FR_EXTRA_REJECT };
static const fr_type t_invoice = { FR_RECORD, NULL, &s_invoice, NULL };

/* What answers are validated against: the records, and a list at the top
 * (an agent whose output is not a record). */
static const fr_type *const answer_types[] = {
    &t_lead, &t_triage, &t_invoice, &t_list_label,
};
#define NANSWER_TYPES (sizeof answer_types / sizeof answer_types[0])

/* What JSONL files are read as: the records, and scalars. */
static const fr_type *const jsonl_types[] = {
    &t_lead, &t_triage, &t_invoice, &fr_type_int, &t_opt_string,
};
#define NJSONL_TYPES (sizeof jsonl_types / sizeof jsonl_types[0])

/* Contact: a CSV export's columns by their names (aliases), an enum by its
 * labels, a list cell, optionals; read as strict, dropping and keeping. */
static const char *const stage_v[] = { "Lead", "Marketing Qualified Lead", "Customer" };
static const fr_enum e_stage = { "Stage", NULL, 3, stage_v };
static const fr_type t_stage = { FR_ENUM, NULL, NULL, &e_stage };
static const fr_type t_opt_bool = { FR_OPTIONAL, &fr_type_bool, NULL, NULL };
static const fr_field contact_f[] = {
    { "id", &fr_type_int, false, 0, 0, false, 0, 0, NULL, "Record ID", "id", false },
    { "first_name", &t_opt_string, false, 0, 0, true, 0, 40, NULL, "First Name", "first_name", false },
    { "last_name", &fr_type_string, false, 0, 0, false, 0, 0, NULL, "Last Name", "last_name", false },
    { "email", &fr_type_string, false, 0, 0, true, 3, 254, NULL, "Email", "Email", false },
    { "stage", &t_stage, false, 0, 0, false, 0, 0, NULL, "Lifecycle Stage", "stage", false },
    { "revenue", &t_opt_float, true, 0, 1e12, false, 0, 0, NULL, "Annual Revenue", "revenue", false },
    { "opted_out", &t_opt_bool, false, 0, 0, false, 0, 0, NULL, "Opted out", "opted_out", false },
    { "tags", &t_list_string, false, 0, 0, true, 0, 5, NULL, "Tags", "Tags", false },
};
static const fr_schema s_contact = { "Contact", NULL, 8, contact_f, FR_EXTRA_REJECT };
static const fr_schema s_contact_drop = { "Contact", NULL, 8, contact_f, FR_EXTRA_DROP };
static const fr_schema s_contact_keep = { "Contact", NULL, 8, contact_f, FR_EXTRA_KEEP };
static const fr_type t_contact = { FR_RECORD, NULL, &s_contact, NULL };
static const fr_type t_contact_drop = { FR_RECORD, NULL, &s_contact_drop, NULL };
static const fr_type t_contact_keep = { FR_RECORD, NULL, &s_contact_keep, NULL };

/* What CSV files are read as. */
static const fr_type *const csv_types[] = { &t_contact, &t_contact_drop, &t_contact_keep };
#define NCSV_TYPES (sizeof csv_types / sizeof csv_types[0])

/* ---- state ---------------------------------------------------------------- */

typedef enum target { T_ANSWER, T_JSONL, T_ANTHROPIC, T_OPENAI, T_MOCK, T_CSV, NTARGETS } target;
static const char *const target_names[NTARGETS] = {
    "answer", "jsonl", "anthropic", "openai", "mock", "csv",
};

typedef struct rng {
    uint64_t s;                    /* splitmix64 state */
} rng;

typedef struct bytes {
    char *p;                       /* contents, always NUL-terminated (malloc'd) */
    size_t n;                      /* bytes used, without the NUL */
    size_t cap;                    /* bytes allocated */
} bytes;

typedef struct seed {
    target t;                      /* the parser it feeds */
    char *name;                    /* file name (malloc'd) */
    bytes data;                    /* the file's bytes */
    json_t *tree;                  /* its JSON value (answers: repaired), or NULL */
} seed;

typedef struct stats {
    long inputs[NTARGETS];         /* inputs run per target */
    long repaired;                 /* answers that needed repair */
    long unrepairable;             /* answers repair gave up on */
    long valid;                    /* (value, type) pairs that validated */
    long invalid;                  /* (value, type) pairs that did not */
    long known;                    /* wrapped answers checked against the value wrapped */
    long jsonl_ok;                 /* reads that gave a list */
    long jsonl_usage;              /* reads that gave a usage error */
    long jsonl_oom;                /* reads made under a failed allocation */
    long csv_ok;                   /* CSV reads that gave a list (and round-tripped) */
    long csv_usage;                /* CSV reads that gave a usage error */
    long csv_oom;                  /* CSV reads made under a failed allocation */
    long outcome[4];               /* provider parses per fr_outcome */
    long failures;                 /* invariants broken */
    long open;                     /* breaks of a known open bug (see open_bug) */
} stats;

static struct {
    seed *seeds;                   /* the corpus */
    size_t nseeds;                 /* seeds loaded */
    char **dict;                   /* tokens for token soup (malloc'd) */
    size_t ndict;                  /* tokens in dict */
    const char *tmp;               /* scratch directory */
    const char *save;              /* where failing inputs are saved */
    char jsonl_path[4096];         /* the scratch JSONL file */
    char csv_path[4096];           /* the scratch CSV file */
    char csv_out[4096];            /* where a read CSV is written back */
    fr_ctx cx;                     /* context for read_jsonl */
    stats st;                      /* figures for the summary */
    target cur_t;                  /* the input being run, for a crash report */
    const char *cur;               /* its bytes */
    size_t cur_n;                  /* its length */
    bool in_fuzzer;                /* libFuzzer: abort on a broken invariant */
    int last_fd;                   /* SAVE/fuzz_runtime-last-input, or -1 */
    char *last_map;                /* that file mapped shared: outlives a crash */
} G;

/* ---- random numbers and byte buffers ------------------------------------- */

static uint64_t next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t below(rng *r, size_t n)
{
    return n ? (size_t)(next(r) % n) : 0;
}

static bool chance(rng *r, unsigned pct)
{
    return below(r, 100) < pct;
}

static void b_reserve(bytes *b, size_t n)
{
    if (b->cap >= n + 1)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n + 1)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
        fprintf(stderr, "fuzz_runtime: out of memory\n");
        exit(2);
    }
    b->cap = cap;
}

static void b_set(bytes *b, const char *s, size_t n)
{
    b_reserve(b, n);
    memmove(b->p, s, n);
    b->n = n;
    b->p[n] = '\0';
}

static void b_insert(bytes *b, size_t at, const char *s, size_t n)
{
    if (at > b->n)
        at = b->n;
    if (b->n + n > FUZZ_MAX_INPUT)
        return;
    b_reserve(b, b->n + n);
    memmove(b->p + at + n, b->p + at, b->n - at);
    memcpy(b->p + at, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void b_puts(bytes *b, const char *s)
{
    b_insert(b, b->n, s, strlen(s));
}

static void b_delete(bytes *b, size_t at, size_t n)
{
    if (at >= b->n)
        return;
    if (n > b->n - at)
        n = b->n - at;
    memmove(b->p + at, b->p + at + n, b->n - at - n);
    b->n -= n;
    b->p[b->n] = '\0';
}

static void b_free(bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- failures ------------------------------------------------------------- */

/* The input as a C string literal, cut at max bytes. */
static void print_escaped(FILE *f, const char *s, size_t n, size_t max)
{
    fputc('"', f);
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n\"\n\"", f);
        else if (c >= 0x20 && c < 0x7f)
            fputc(c, f);
        else
            fprintf(f, "\\x%02x\"\"", c);
    }
    fprintf(f, "\"%s\n", n > max ? " ..." : "");
}

/* Saves the current input as SAVE/crash-TARGET-HASH. */
static void save_input(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/crash-%s-%016llx", G.save, target_names[G.cur_t],
             (unsigned long long)hash_bytes(G.cur, G.cur_n));
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(G.cur, 1, G.cur_n, f);
        fclose(f);
        fprintf(stderr, "  saved as %s (keep it in tests/fuzz/runtime/crashers/)\n", path);
    }
}

/* A broken invariant: says which, on which input, and saves the input. */
__attribute__((format(printf, 1, 2)))
static void bad(const char *fmt, ...)
{
    G.st.failures++;
    if (G.st.failures <= MAX_REPORTS) {
        fprintf(stderr, "fuzz_runtime: %s: ", target_names[G.cur_t]);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\n  input (%zu bytes): ", G.cur_n);
        print_escaped(stderr, G.cur, G.cur_n, 600);
        save_input();
    }
    if (G.in_fuzzer)
        abort();
}

/* UBSan dies without calling back, so the input being run is always in
 * SAVE/fuzz_runtime-last-input: a shared mapping costs no write per input. */
static void open_last_input(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fuzz_runtime-last-input", G.save);
    G.last_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (G.last_fd < 0)
        return;
    G.last_map = mmap(NULL, FUZZ_MAX_INPUT * 2, PROT_READ | PROT_WRITE, MAP_SHARED,
                      G.last_fd, 0);
    if (G.last_map == MAP_FAILED)
        G.last_map = NULL;
}

static void keep_last_input(const char *data, size_t n)
{
    if (!G.last_map || n > FUZZ_MAX_INPUT * 2 || ftruncate(G.last_fd, (off_t)n) != 0)
        return;
    memcpy(G.last_map, data, n);
}

static void close_last_input(void)
{
    char path[4200];
    if (G.last_map)
        munmap(G.last_map, FUZZ_MAX_INPUT * 2);
    if (G.last_fd >= 0) {
        close(G.last_fd);
        snprintf(path, sizeof path, "%s/fuzz_runtime-last-input", G.save);
        unlink(path);
    }
}

/* Bugs found, reported, not yet fixed: a message prefix that is not UTF-8
 * and the bug's id.  Their breaks are printed once and counted, but do not
 * fail the run.  Add a line when a bug is reported, remove it once fixed
 * (refusal-cut and jansson-error-cut were here until 34b327f). */
static const char *const open_bugs[][2] = {
    { NULL, NULL },
};

/* The open bug a message that is not UTF-8 belongs to, or NULL. */
static const char *open_bug_of(const char *msg)
{
    for (size_t i = 0; msg && open_bugs[i][0]; i++)
        if (strncmp(msg, open_bugs[i][0], strlen(open_bugs[i][0])) == 0)
            return open_bugs[i][1];
    return NULL;
}

/* A break of open bug id: counted, and printed the first time. */
__attribute__((format(printf, 2, 3)))
static void open_bug(const char *id, const char *fmt, ...)
{
    static const char *seen[16];
    size_t i = 0;
    G.st.open++;
    while (i < 16 && seen[i] && strcmp(seen[i], id) != 0)
        i++;
    if (i == 16 || seen[i])
        return;
    seen[i] = id;
    fprintf(stderr, "fuzz_runtime: open bug %s (not failing the run): ", id);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* A message going back to the model must be UTF-8; what says otherwise. */
static void check_utf8(const char *msg, const char *what)
{
    if (!msg || fr_utf8_valid(msg, strlen(msg)))
        return;
    const char *id = open_bug_of(msg);
    if (id)
        open_bug(id, "%s: %.300s", what, msg);
    else
        bad("%s is not UTF-8 (it goes back to the model in JSON): %.300s", what, msg);
}

/* A sanitizer's report or a signal: say which input did it. */
static void on_death(void)
{
    static const char msg[] = "fuzz_runtime: the input above crashed or hung: ";
    if (write(2, msg, sizeof msg - 1) < 0)
        return;
    fprintf(stderr, "%s, %zu bytes: ", target_names[G.cur_t], G.cur_n);
    print_escaped(stderr, G.cur, G.cur_n, 600);
    save_input();
    fflush(stderr);
}

static void on_signal(int sig)
{
    if (sig == SIGALRM)
        fprintf(stderr, "fuzz_runtime: an input ran longer than %d s\n", ALARM_S);
    on_death();
    _exit(sig == SIGALRM ? 4 : 3);
}

extern void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

static void catch_deaths(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGALRM, &sa, NULL);
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(on_death);
        return;
    }
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGABRT, &sa, NULL);
}

/* ---- checks on a value ---------------------------------------------------- */

static json_t *parse_any(const char *s)
{
    return json_loads(s, JSON_DECODE_ANY, NULL);
}

/* fr_to_json of v, or "" with a failure. */
static char *to_json(json_t *v, const fr_type *t, const char *what)
{
    char *s = fr_to_json(v, t);
    if (!s) {
        bad("fr_to_json of %s gave NULL", what);
        s = fr_strdup("");
    }
    return s;
}

/* A valid v written out reads back valid and writes the same text. */
static void check_round_trip(json_t *v, const fr_type *t)
{
    char *s1 = to_json(v, t, "a valid value");
    json_t *v2 = parse_any(s1);
    char *s2 = NULL;
    if (!v2)
        bad("fr_to_json wrote text that does not parse: %.200s", s1);
    else if (!fr_validate(v2, t, NULL))
        bad("a valid value written and read back does not validate: %.200s", s1);
    else if (strcmp(s1, s2 = to_json(v2, t, "the value read back")) != 0)
        bad("written twice differs: %.200s / %.200s", s1, s2);
    json_t *n = fr_normalize(v, t);
    if (!n || !fr_validate(n, t, NULL)) {
        bad("fr_normalize of a valid value does not validate");
    } else if (v2) {
        json_t *n2 = fr_normalize(v2, t);
        char *a = to_json(n, t, "normalized"), *b = to_json(n2, t, "normalized again");
        if (strcmp(a, b) != 0)
            bad("normal forms differ after a round trip: %.200s / %.200s", a, b);
        fr_free(a);
        fr_free(b);
        json_decref(n2);
    }
    json_decref(n);
    fr_free(s2);
    json_decref(v2);
    fr_free(s1);
}

/* The next attempt after a bad answer, as fr_call makes it: the problem
 * and the previous answer go back to the model inside the request's JSON,
 * so both wire formats must be able to build it. */
static void check_retry(const char *feedback, const char *prev)
{
    static const fr_model m = { .name = "m", .provider = "anthropic", .api_name = "model-x",
                                .usd_per_mtok_in = 1, .usd_per_mtok_out = 1,
                                .usd_per_mtok_cache_write = -1, .usd_per_mtok_cache_write_1h = -1,
                                .usd_per_mtok_cache_read = -1 };
    static const fr_agent a = {
        .name = "fuzz", .model = &m, .output = &t_lead, .temperature = -1,
        .schema_anthropic = "{\"type\":\"object\"}", .schema_openai = "{\"type\":\"object\"}",
        .max_tokens = 100,
    };
    fr_request req = { .agent = &a, .model = &m, .system = "system", .prompt = "prompt",
                       .feedback = feedback, .prev_answer = prev, .attempt = 1,
                       .timeout_ms = 1000 };
    if (!fr_utf8_valid(feedback, strlen(feedback)) && open_bug_of(feedback))
        return;                    /* check_utf8 has counted it */
    for (int openai = 0; openai < 2; openai++) {
        bool wrapped;
        json_t *b = openai ? fr_openai_body(&req, &wrapped) : fr_anthropic_body(&req, &wrapped);
        if (!b)
            bad("the retry cannot be built (%s), with feedback: %.300s",
                openai ? "openai" : "anthropic", feedback);
        json_decref(b);
    }
}

/* A turn of tool calls goes back to the model in the next turn's request,
 * with a result (an error) for each call: both wire formats must build it,
 * whatever the ids, names and inputs the model sent. */
static const fr_tool fuzz_tools[] = {
    { .name = "Lead", .description = "a tool", .nparams = 0,
      .schema = "{\"type\":\"object\",\"properties\":{}}",
      .schema_strict = "{\"type\":\"object\",\"properties\":{},\"required\":[],"
                       "\"additionalProperties\":false}" },
};

static const fr_model tool_model = { .name = "m", .provider = "anthropic",
                                     .api_name = "model-x", .usd_per_mtok_in = 1,
                                     .usd_per_mtok_out = 1 };
static const fr_agent tool_agent = {
    .name = "fuzz", .model = &tool_model, .output = &t_lead, .temperature = -1,
    .schema_anthropic = "{\"type\":\"object\"}", .schema_openai = "{\"type\":\"object\"}",
    .max_tokens = 100, .ntools = 1, .tools = fuzz_tools, .max_tool_calls = 4,
    .max_tool_result_tokens = 100,
};

static void check_turn(json_t *turn)
{
    const fr_agent *a = &tool_agent;
    const fr_model *m = &tool_model;
    json_t *results = json_array(), *c;
    size_t i;
    json_array_foreach(json_object_get(turn, "calls"), i, c)
        json_array_append_new(results, json_pack("{s:O?, s:O?, s:s, s:b}", "id",
                                                 json_object_get(c, "id"), "name",
                                                 json_object_get(c, "name"), "content",
                                                 "no such tool", "error", 1));
    json_t *history = json_pack("[O, {s:o}]", turn, "results", results);
    for (int off = 0; off < 2; off++) {
        fr_request req = { .agent = a, .model = m, .system = "system", .prompt = "prompt",
                           .attempt = 1, .timeout_ms = 1000, .history = history,
                           .tools_off = off };
        for (int openai = 0; openai < 2; openai++) {
            bool wrapped;
            json_t *b = openai ? fr_openai_body(&req, &wrapped)
                               : fr_anthropic_body(&req, &wrapped);
            if (!b)
                bad("the next turn cannot be built (%s) after: %.300s",
                    openai ? "openai" : "anthropic", json_dumps(turn, JSON_COMPACT));
            json_decref(b);
        }
    }
    json_decref(history);
}

/* v against one type: the verdict, its message, and the round trip; raw
 * (may be NULL) is the answer's text, for the retry a failure makes. */
static void check_against(json_t *v, const fr_type *t, const char *raw)
{
    fr_buf err = { 0 };
    bool ok = fr_validate(v, t, &err);
    if (ok != fr_validate(v, t, NULL))
        bad("fr_validate answers differently without a message buffer");
    if (ok && err.len)
        bad("fr_validate said yes with a message: %s", err.s);
    if (!ok && (!err.s || !*err.s))
        bad("fr_validate said no without a message");
    if (!ok && err.len > 1400)
        bad("fr_validate's message is %zu bytes", err.len);
    if (ok) {
        G.st.valid++;
        check_round_trip(v, t);
    } else {
        G.st.invalid++;
        check_utf8(err.s, "fr_validate's message");
        if (raw && err.s)
            check_retry(err.s, raw);
    }
    fr_buf_free(&err);
}

static void check_value(json_t *v, const char *raw)
{
    for (size_t i = 0; i < NANSWER_TYPES; i++)
        check_against(v, answer_types[i], raw);
}

/* ---- target: a model's answer text --------------------------------------- */

/* Repair under an allocation that fails: the same value, or NULL and a
 * reason (jansson's own parser included: fr_alloc.c says it cannot take it). */
static void answer_oom(const char *text, json_t *got, long k)
{
    fr_buf err = { 0 };
    bool repaired;
    fr_alloc_fail_after(k);
    json_t *v = fr_repair_json(text, &repaired, &err);
    fr_alloc_fail_after(0);
    if (v && !(got && json_equal(v, got)))
        bad("repair with allocation %ld failing gave another value", k);
    if (!v && (!err.s || !*err.s) && !fr_buf_failed(&err))
        bad("repair with allocation %ld failing gave no reason", k);
    json_decref(v);
    fr_buf_free(&err);
}

/* text -> repair -> validate; want, if not NULL, is the value that was
 * wrapped in prose, fences and trailing commas to make text.  Failed
 * allocations as in run_jsonl. */
static void run_answer(const char *text, json_t *want, rng *r)
{
    fr_buf err = { 0 };
    bool repaired = true;
    json_t *v = fr_repair_json(text, &repaired, &err);
    if (!v) {
        G.st.unrepairable++;
        if (!err.s || !*err.s)
            bad("repair gave up without a reason");
        else if (err.len > 400)
            bad("repair's reason is %zu bytes (it must not quote the answer)", err.len);
        else if (repaired)
            bad("repair gave up but says it repaired");
        else if (fr_utf8_valid(text, strlen(text)))
            check_utf8(err.s, "repair's reason");
        if (want)
            bad("repair lost a value wrapped in prose and fences: %s", err.s);
    } else {
        G.st.repaired += repaired;
        if (!json_is_object(v) && !json_is_array(v))
            bad("repair gave a value that is neither object nor array");
        json_t *plain = repaired ? NULL : json_loads(text, 0, NULL);
        if (!repaired && !plain)
            bad("an answer that does not parse as it is was not called repaired");
        json_decref(plain);
        if (want && !json_equal(v, want))
            bad("repair gave a different value than the one wrapped");
        check_value(v, fr_utf8_valid(text, strlen(text)) ? text : NULL);
    }
    if (r && chance(r, 5))
        answer_oom(text, v, 1 + (long)below(r, OOM_ANSWER));
    for (long k = 1; !r && k <= OOM_ANSWER; k++)
        answer_oom(text, v, k);
    json_decref(v);
    fr_buf_free(&err);
}

/* ---- target: read_jsonl --------------------------------------------------- */

/* The first bad line of data read as JSONL of t (0: none), counting the
 * values in *nvalues: an independent reading of fr_io.c's rules. */
static long jsonl_oracle(const char *data, size_t n, const fr_type *t, size_t *nvalues)
{
    long lineno = 0;
    *nvalues = 0;
    for (size_t at = 0; at < n;) {
        const char *nl = memchr(data + at, '\n', n - at);
        size_t end = nl ? (size_t)(nl - data) + 1 : n, s = at, e = end;
        lineno++;
        if (lineno == 1 && e - s >= 3 && memcmp(data + s, "\xef\xbb\xbf", 3) == 0)
            s += 3;
        while (e > s && (data[e - 1] == '\n' || data[e - 1] == '\r'))
            e--;
        at = end;
        if (strspn(data + s, " \t\r\n") >= e - s)
            continue;
        json_t *v = json_loadb(data + s, e - s, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        bool ok = v && fr_validate(v, t, NULL);
        json_decref(v);
        if (!ok)
            return lineno;
        (*nvalues)++;
    }
    return 0;
}

/* The lines of the file, for the message check. */
static long count_lines(const char *data, size_t n)
{
    long k = 0;
    for (size_t i = 0; i < n; i++)
        k += data[i] == '\n';
    return k + (n > 0 && data[n - 1] != '\n');
}

/* One read under an allocation that fails: the same answer, or out of memory. */
static void jsonl_oom(json_t *path, const fr_type *t, const char *want, long k)
{
    fr_ctx *cx = &G.cx;
    fr_alloc_fail_after(k);
    json_t *xs = fr_read_jsonl(cx, path, t, "fuzz.flow:1:1");
    bool hit = fr_alloc_countdown() == 0;
    fr_alloc_fail_after(0);
    G.st.jsonl_oom++;
    char *got = xs ? fr_to_json(xs, NULL) : fr_strdup(cx->err ? cx->err : "(no message)");
    bool same = got && strcmp(got, want) == 0;
    bool oom = !xs && cx->err && strstr(cx->err, "out of memory");
    if (!same && !(hit && oom))
        bad("read_jsonl with allocation %ld failing: %.200s, without: %.200s", k,
            got ? got : "(null)", want);
    fr_free(got);
    fr_sig_clear(cx);
}

/* The file read as JSONL of t, against the oracle. */
static void jsonl_as(json_t *path, const char *data, size_t n, const fr_type *t, rng *r)
{
    fr_ctx *cx = &G.cx;
    size_t nvalues;
    long first_bad = jsonl_oracle(data, n, t, &nvalues);
    json_t *xs = fr_read_jsonl(cx, path, t, "fuzz.flow:1:1");
    char *result;
    if (xs) {
        G.st.jsonl_ok++;
        if (first_bad)
            bad("read_jsonl took the file, but line %ld is bad", first_bad);
        if (json_array_size(xs) != nvalues)
            bad("read_jsonl gave %zu values for %zu non-blank lines", json_array_size(xs),
                nvalues);
        for (size_t i = 0; i < json_array_size(xs); i++) {
            if (!fr_validate(json_array_get(xs, i), t, NULL))
                bad("read_jsonl gave value %zu that does not validate", i);
            else
                check_round_trip(json_array_get(xs, i), t);
        }
        result = fr_to_json(xs, NULL);
    } else {
        G.st.jsonl_usage++;
        char want[4200];
        snprintf(want, sizeof want, "%s:%ld: ", G.jsonl_path, first_bad);
        long lines = count_lines(data, n);
        if (cx->sig != FR_SIG_USAGE || !cx->err)
            bad("read_jsonl failed with signal %d, not a usage error", cx->sig);
        else if (!first_bad || first_bad > lines)
            bad("read_jsonl refused a good file: %.300s", cx->err);
        else if (strncmp(cx->err, want, strlen(want)) != 0)
            bad("read_jsonl's error does not name line %ld of %ld: %.300s", first_bad,
                lines, cx->err);
        result = fr_strdup(cx->err ? cx->err : "(no message)");
    }
    fr_sig_clear(cx);
    if (r && chance(r, 4) && result)
        jsonl_oom(path, t, result, 1 + (long)below(r, OOM_JSONL));
    for (long k = 1; !r && result && k <= OOM_JSONL; k++)
        jsonl_oom(path, t, result, k);
    fr_free(result);
}

/* The file's bytes read as JSONL of every type.  r picks a few reads to
 * repeat under a failed allocation; without r (a replay) every read is
 * repeated with each of its first OOM_JSONL allocations failing. */
static void run_jsonl(const char *data, size_t n, rng *r)
{
    FILE *f = fopen(G.jsonl_path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_runtime: cannot write %s\n", G.jsonl_path);
        exit(2);
    }
    fr_ctx *cx = &G.cx;
    size_t mark = fr_mark(cx);
    json_t *path = fr_str(cx, G.jsonl_path);
    for (size_t i = 0; i < NJSONL_TYPES; i++)
        jsonl_as(path, data, n, jsonl_types[i], r);
    fr_release(cx, mark);
}

/* ---- target: CSV files ----------------------------------------------------- */

/* One read_csv of t under an allocation that fails: the same answer, or out of memory. */
static void csv_oom(json_t *path, const fr_type *t, const char *want, long k)
{
    fr_ctx *cx = &G.cx;
    fr_read_opts o = { .csv = true };
    fr_alloc_fail_after(k);
    json_t *xs = fr_read(cx, path, t, &o, "fuzz.flow:1:1");
    bool hit = fr_alloc_countdown() == 0;
    fr_alloc_fail_after(0);
    G.st.csv_oom++;
    char *got = xs ? fr_to_json(xs, NULL) : fr_strdup(cx->err ? cx->err : "(no message)");
    bool same = got && strcmp(got, want) == 0;
    bool oom = !xs && cx->err && strstr(cx->err, "out of memory");
    if (!same && !(hit && oom))
        bad("read_csv with allocation %ld failing: %.200s, without: %.200s", k,
            got ? got : "(null)", want);
    fr_free(got);
    fr_sig_clear(cx);
}

/* A list read from CSV, written back and read again: the same records. */
static void csv_round_trip(json_t *xs, const fr_type *t)
{
    fr_ctx *cx = &G.cx;
    FILE *f = fopen(G.csv_out, "wb");
    fr_buf err = { 0 };
    if (!f) {
        fprintf(stderr, "fuzz_runtime: cannot write %s\n", G.csv_out);
        exit(2);
    }
    bool wrote = fr_csv_write(f, xs, t, 0, &err);
    fclose(f);
    if (!wrote) {
        if (!err.s || !strstr(err.s, "holds ';'"))
            bad("write_csv refused a list read from CSV: %s", err.s ? err.s : "(no message)");
        fr_buf_free(&err);
        return;
    }
    fr_buf_free(&err);
    fr_read_opts o = { .csv = true };
    json_t *again = fr_read(cx, fr_str(cx, G.csv_out), t, &o, "fuzz.flow:2:1");
    if (!again) {
        bad("what write_csv wrote does not read back: %.300s", cx->err ? cx->err : "");
        fr_sig_clear(cx);
        return;
    }
    if (json_array_size(again) != json_array_size(xs))
        bad("written and read back: %zu records, not %zu", json_array_size(again),
            json_array_size(xs));
    for (size_t i = 0; i < json_array_size(xs) && i < json_array_size(again); i++)
        if (!fr_equal(json_array_get(xs, i), json_array_get(again, i)))
            bad("record %zu is not the same written and read back", i);
}

static void csv_as(json_t *path, const fr_type *t, rng *r)
{
    fr_ctx *cx = &G.cx;
    fr_read_opts o = { .csv = true };
    json_t *xs = fr_read(cx, path, t, &o, "fuzz.flow:1:1");
    char *result;
    if (xs) {
        G.st.csv_ok++;
        for (size_t i = 0; i < json_array_size(xs); i++)
            if (!fr_validate(json_array_get(xs, i), t, NULL))
                bad("read_csv gave record %zu that does not validate", i);
        csv_round_trip(xs, t);
        result = fr_to_json(xs, NULL);
    } else {
        G.st.csv_usage++;
        if (cx->sig != FR_SIG_USAGE || !cx->err)
            bad("read_csv failed with signal %d, not a usage error", cx->sig);
        else if (strncmp(cx->err, G.csv_path, strlen(G.csv_path)) != 0)
            bad("read_csv's error does not name the file: %.300s", cx->err);
        result = fr_strdup(cx->err ? cx->err : "(no message)");
    }
    fr_sig_clear(cx);
    if (r && chance(r, 4) && result)
        csv_oom(path, t, result, 1 + (long)below(r, OOM_CSV));
    for (long k = 1; !r && result && k <= OOM_CSV; k++)
        csv_oom(path, t, result, k);
    fr_free(result);
}

/* The file's bytes read as CSV of every contact type. */
static void run_csv(const char *data, size_t n, rng *r)
{
    FILE *f = fopen(G.csv_path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "fuzz_runtime: cannot write %s\n", G.csv_path);
        exit(2);
    }
    fr_ctx *cx = &G.cx;
    size_t mark = fr_mark(cx);
    json_t *path = fr_str(cx, G.csv_path);
    for (size_t i = 0; i < NCSV_TYPES; i++)
        csv_as(path, csv_types[i], r);
    fr_release(cx, mark);
}

/* ---- target: provider response bodies ------------------------------------ */

typedef void (*parse_fn)(json_t *body, bool wrapped, fr_response *r);

/* The finish reason the body carries, as each wire format spells it. */
static const char *finish_of(json_t *body, bool anthropic)
{
    if (anthropic)
        return json_string_value(json_object_get(body, "stop_reason"));
    json_t *c = json_array_get(json_object_get(body, "choices"), 0);
    return json_string_value(json_object_get(c, "finish_reason"));
}

static void check_response(json_t *body, bool anthropic, bool wrapped, const fr_response *r)
{
    const char *finish = finish_of(body, anthropic);
    if (r->outcome == FR_ANSWER && (!r->output || r->error))
        bad("an answer without a value or with an error (%s)", r->error ? r->error : "");
    else if (r->outcome == FR_BAD_ANSWER && (!r->error || r->output))
        bad("a bad answer without an error or with a value");
    else if (r->outcome == FR_TOOL_CALLS && !json_array_size(json_object_get(r->turn, "calls")))
        bad("a turn of tool calls without calls");
    else if (r->outcome == FR_TOOL_CALLS && (r->output || r->error))
        bad("a turn of tool calls with an answer or an error");
    else if (r->outcome != FR_ANSWER && r->outcome != FR_BAD_ANSWER &&
             r->outcome != FR_TOOL_CALLS)
        bad("a 200's parse gave outcome %d", r->outcome);
    if (r->error && strlen(r->error) > 1100)
        bad("an error message of %zu bytes", strlen(r->error));
    check_utf8(r->error, "a response's error");
    if (r->raw && !fr_utf8_valid(r->raw, strlen(r->raw)))
        bad("a raw answer that is not UTF-8: %.200s", r->raw);
    if ((finish == NULL) != (r->finish_reason == NULL) ||
        (finish && strcmp(finish, r->finish_reason) != 0))
        bad("finish reason %s, the body says %s", r->finish_reason ? r->finish_reason : "none",
            finish ? finish : "none");
    if (r->outcome == FR_ANSWER && r->output && !wrapped && !json_is_object(r->output) &&
        !json_is_array(r->output))
        bad("an unwrapped answer that is neither object nor array");
    /* Usage reaches the budget: fr_budget_settle adds in + out, and a
     * negative count would lower the spend. */
    int64_t use[] = { r->input_tokens, r->output_tokens, r->cache_read_tokens,
                      r->cache_write_tokens };
    for (size_t i = 0; i < 4; i++)
        if (use[i] < 0 || use[i] > ((int64_t)1 << 50))
            bad("a token count of %lld reaches the budget", (long long)use[i]);
}

/* One body through one wire format's parse, wrapped and not. */
static void parse_body(json_t *body, bool anthropic)
{
    parse_fn parse = anthropic ? fr_anthropic_parse : fr_openai_parse;
    char *before = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_t *plain = NULL;          /* the answer parsed as not wrapped */
    for (int wrapped = 0; wrapped < 2; wrapped++) {
        fr_response r;
        memset(&r, 0, sizeof r);
        r.retry_after_ms = -1;
        parse(body, wrapped, &r);
        check_response(body, anthropic, wrapped, &r);
        if (!wrapped && r.outcome == FR_ANSWER)
            plain = json_incref(r.output);
        json_t *inner = json_object_get(plain, "answer");
        if (wrapped && plain && !json_equal(r.output, inner ? inner : plain))
            bad("the wrapped answer is not the plain answer's 'answer'");
        if ((unsigned)r.outcome < 4)
            G.st.outcome[r.outcome]++;
        if (r.outcome == FR_ANSWER && r.output) {
            char *dumped = r.raw ? NULL : json_dumps(r.output, JSON_COMPACT | JSON_ENCODE_ANY);
            check_value(r.output, r.raw ? r.raw : dumped);
            free(dumped);
        } else if (r.outcome == FR_BAD_ANSWER && r.error) {
            check_retry(r.error, r.raw);
        } else if (r.outcome == FR_TOOL_CALLS) {
            check_turn(r.turn);
        }
        fr_response_free(&r);
    }
    json_decref(plain);
    if (anthropic) {               /* as an agent with tools reads it */
        fr_response r;
        memset(&r, 0, sizeof r);
        r.retry_after_ms = -1;
        fr_anthropic_parse_agent(body, &tool_agent, false, &r);
        check_response(body, true, false, &r);
        if (r.outcome == FR_TOOL_CALLS)
            check_turn(r.turn);
        fr_response_free(&r);
    }
    char *after = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!before || !after || strcmp(before, after) != 0)
        bad("the parse changed the body");
    free(before);
    free(after);
}

/* A response body as fr_http.c's take_answer reads it, through both parses
 * (own_first: the format it was made for goes first). */
static void run_provider(const char *data, size_t n, bool anthropic_first)
{
    json_t *body = json_loadb(data, n, 0, NULL);
    if (!body)
        return;
    parse_body(body, anthropic_first);
    parse_body(body, !anthropic_first);
    json_decref(body);
}

/* ---- target: the mock ------------------------------------------------------ */

/* The mock answers prompt for an agent of each type with a valid value. */
static void run_mock(const char *prompt)
{
    static const fr_model model = { .name = "m", .provider = "mock", .api_name = "mock-1" };
    for (size_t i = 0; i < NANSWER_TYPES; i++) {
        const fr_type *t = answer_types[i];
        fr_agent a = { .name = "fuzz", .model = &model, .output = t };
        fr_request req = { .agent = &a, .model = &model, .system = "", .prompt = prompt };
        fr_response r;
        fr_mock_call(NULL, &req, &r);
        if (r.outcome != FR_ANSWER || !r.output || !r.raw) {
            bad("the mock gave outcome %d", r.outcome);
        } else {
            char *s = to_json(r.output, t, "the mock's answer");
            if (!fr_validate(r.output, t, NULL))
                bad("the mock's answer does not validate: %.200s", r.raw);
            else if (strcmp(s, r.raw) != 0)
                bad("the mock's raw text is not its answer: %.200s", r.raw);
            fr_free(s);
        }
        fr_response_free(&r);
    }
}

/* ---- running one input ------------------------------------------------------ */

/* Runs data through target t under the alarm; want as for run_answer. */
static void run_input(target t, const char *data, size_t n, json_t *want, rng *r)
{
    G.cur_t = t, G.cur = data, G.cur_n = n;
    G.st.inputs[t]++;
    keep_last_input(data, n);
    alarm(ALARM_S);
    switch (t) {
    case T_ANSWER: run_answer(data, want, r); break;
    case T_JSONL: run_jsonl(data, n, r); break;
    case T_ANTHROPIC: run_provider(data, n, true); break;
    case T_OPENAI: run_provider(data, n, false); break;
    case T_MOCK: run_mock(data); break;
    case T_CSV: run_csv(data, n, r); break;
    default: break;
    }
    alarm(0);
}

/* A file as it is, through every target (data must be NUL-terminated). */
static void run_everywhere(const char *data, size_t n)
{
    for (int t = 0; t < NTARGETS; t++)
        run_input((target)t, data, n, NULL, NULL);
}

/* ---- the byte mutator ------------------------------------------------------ */

static const char *const interesting_numbers[] = {
    "0", "-0", "1", "-1", "0.5", "1.0", "2", "5", "6", "100", "101", "1000000", "1000001",
    "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "1e308", "1e309", "-1e400", "4.9e-324", "1e-400",
    "1.7976931348623157e308", "0.1", "1E2", "1e+2", "-0.0", "00", "01", "1.", ".5", "+1",
    "0x10", "NaN", "Infinity", "123456789012345678901234567890",
};

static const char interesting_bytes[] = "{}[]\",:\\ \t\r\n0-.eE\x7f\x80\xbf\xc0\xc3\xe2\xed\xef\xf0\xf4\xf5\xff";

static void mut_flip(bytes *b, rng *r)
{
    if (b->n)
        b->p[below(r, b->n)] ^= (char)(1u << below(r, 8));
}

static void mut_set(bytes *b, rng *r)
{
    if (b->n)
        b->p[below(r, b->n)] = interesting_bytes[below(r, sizeof interesting_bytes - 1)];
}

static void mut_insert_random(bytes *b, rng *r)
{
    char s[8];
    size_t k = 1 + below(r, sizeof s);
    for (size_t i = 0; i < k; i++)
        s[i] = (char)next(r);
    b_insert(b, below(r, b->n + 1), s, k);
}

static void mut_token(bytes *b, rng *r)
{
    const char *tok = G.dict[below(r, G.ndict)];
    b_insert(b, below(r, b->n + 1), tok, strlen(tok));
}

static void mut_delete(bytes *b, rng *r)
{
    size_t k = chance(r, 80) ? 1 + below(r, 16) : 1 + below(r, b->n / 2 + 1);
    b_delete(b, below(r, b->n + 1), k);
}

static void mut_duplicate(bytes *b, rng *r)
{
    if (!b->n)
        return;
    size_t at = below(r, b->n), k = 1 + below(r, b->n - at);
    if (k > 4096)
        k = 4096;
    char *chunk = malloc(k);
    memcpy(chunk, b->p + at, k);
    int times = chance(r, 90) ? 1 : 1 + (int)below(r, 16);
    for (int i = 0; i < times; i++)
        b_insert(b, below(r, b->n + 1), chunk, k);
    free(chunk);
}

/* A piece of another seed, inserted or replacing a piece of this one. */
static void mut_splice(bytes *b, rng *r)
{
    const bytes *o = &G.seeds[below(r, G.nseeds)].data;
    if (!o->n)
        return;
    size_t at = below(r, o->n), k = 1 + below(r, o->n - at);
    size_t pos = below(r, b->n + 1);
    if (chance(r, 50))
        b_delete(b, pos, below(r, b->n - pos + 1));
    b_insert(b, pos, o->p + at, k);
}

static void mut_truncate(bytes *b, rng *r)
{
    if (b->n)
        b_delete(b, below(r, b->n), b->n);
}

/* Replaces a run of digits by an interesting number. */
static void mut_number(bytes *b, rng *r)
{
    if (!b->n)
        return;
    size_t at = below(r, b->n);
    while (at < b->n && !(b->p[at] >= '0' && b->p[at] <= '9'))
        at++;
    size_t end = at;
    while (end < b->n && strchr("0123456789.eE+-", b->p[end]) && b->p[end])
        end++;
    const char *num = interesting_numbers[below(r, sizeof interesting_numbers /
                                                    sizeof interesting_numbers[0])];
    b_delete(b, at, end - at);
    b_insert(b, at, num, strlen(num));
}

/* A range replaced by tokens of the dictionary. */
static void mut_soup(bytes *b, rng *r)
{
    size_t at = below(r, b->n + 1);
    b_delete(b, at, below(r, 32));
    for (size_t k = 1 + below(r, 20); k > 0; k--) {
        const char *tok = G.dict[below(r, G.ndict)];
        b_insert(b, at, tok, strlen(tok));
        at += strlen(tok);
    }
}

/* Brackets opened at one place and closed at a later one, 1 to 3000 deep. */
static void mut_nest(bytes *b, rng *r)
{
    static const size_t depths[] = { 1, 2, 10, 100, 1000, 2047, 2048, 2049, 3000 };
    size_t d = depths[below(r, sizeof depths / sizeof depths[0])];
    bool obj = chance(r, 30);
    const char *open = obj ? "{\"a\":" : "[", *close = obj ? "}" : "]";
    size_t a = below(r, b->n + 1), z = a + below(r, b->n - a + 1);
    for (size_t i = 0; i < d; i++)
        b_insert(b, z, close, 1);
    for (size_t i = 0; i < d; i++)
        b_insert(b, a, open, strlen(open));
}

static void mutate_bytes(bytes *b, rng *r)
{
    size_t ops = 1 + below(r, chance(r, 80) ? 3 : 8);
    for (size_t i = 0; i < ops; i++) {
        switch (below(r, 13)) {
        case 0: mut_flip(b, r); break;
        case 1: mut_set(b, r); break;
        case 2: mut_insert_random(b, r); break;
        case 3: case 4: mut_token(b, r); break;
        case 5: mut_delete(b, r); break;
        case 6: mut_duplicate(b, r); break;
        case 7: mut_splice(b, r); break;
        case 8: if (chance(r, 30)) mut_truncate(b, r); break;
        case 9: mut_number(b, r); break;
        case 10: case 11: mut_soup(b, r); break;
        case 12: if (chance(r, 25)) mut_nest(b, r); break;
        }
    }
}

/* ---- the tree mutator ------------------------------------------------------ */

typedef struct slot {
    json_t *parent;                /* the object or array holding the node */
    const char *key;               /* its key in an object, else NULL */
    size_t index;                  /* its index in an array */
} slot;

typedef struct slots {
    slot s[512];                   /* the nodes found, root excluded */
    size_t n;                      /* how many */
} slots;

static void collect(json_t *v, slots *out, int depth)
{
    const char *k;
    json_t *e;
    size_t i;
    if (depth > 64)
        return;
    if (json_is_object(v)) {
        json_object_foreach(v, k, e) {
            if (out->n < 512)
                out->s[out->n++] = (slot){ v, k, 0 };
            collect(e, out, depth + 1);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e) {
            if (out->n < 512)
                out->s[out->n++] = (slot){ v, NULL, i };
            collect(e, out, depth + 1);
        }
    }
}

static json_t *slot_get(const slot *s)
{
    return s->key ? json_object_get(s->parent, s->key) : json_array_get(s->parent, s->index);
}

static void slot_set(const slot *s, json_t *v)
{
    if (s->key)
        json_object_set_new(s->parent, s->key, v);
    else
        json_array_set_new(s->parent, s->index, v);
}

/* Letters or multibyte characters, short or past the lengths messages
 * quote (%.100s, %.200s) so a cut can fall inside a character. */
static json_t *long_string(rng *r)
{
    static const char *const units[] = { "a", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80" };
    const char *unit = units[below(r, 4)];
    size_t k = strlen(unit), n = chance(r, 40) ? 1 + below(r, 80) : 30 + below(r, 300);
    bytes b = { 0 };
    b_set(&b, "", 0);
    if (chance(r, 50))
        b_insert(&b, 0, "x", below(r, 2));
    for (size_t i = 0; i < n; i++)
        b_insert(&b, b.n, unit, k);
    json_t *v = json_stringn(b.p, b.n);
    b_free(&b);
    return v;
}

/* A string of the dictionary, or a long one. */
static json_t *random_string(rng *r)
{
    static const char *const strs[] = {
        "", "a", "\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "\xf0\x9f\x98\x80", "ic", "cxo",
        "boss", "bug", "USD", "\xe5\x86\x86", "EUR ", "x@y.io", "{", "}]", "```", "```json\n{}\n```",
        "line\nbreak", "quote\"d", "back\\slash", "tab\t", "\x7f", "null", "12345",
    };
    if (chance(r, 12))
        return long_string(r);
    return json_string(strs[below(r, sizeof strs / sizeof strs[0])]);
}

static json_t *random_scalar(rng *r)
{
    static const double reals[] = {
        0.0, -0.0, 0.5, 1.0, 1.5, -1.5, 0.999, 1.0000001, 99.99, 1e9, 1e9 + 1, 1e308,
        -1e308, 1e-308, 4.9e-324, 3.141592653589793, -1,
    };
    static const json_int_t ints[] = {
        0, 1, -1, 2, 5, 6, 7, 30, 31, 100, 10000, 10001, 1000000, 1000001,
        INT64_MAX, INT64_MIN, INT64_MAX - 1, -4294967296LL,
    };
    switch (below(r, 7)) {
    case 0: return json_integer(ints[below(r, sizeof ints / sizeof ints[0])]);
    case 1: return json_real(reals[below(r, sizeof reals / sizeof reals[0])]);
    case 2: case 3: return random_string(r);
    case 4: return json_boolean(chance(r, 50));
    case 5: return json_null();
    default: return chance(r, 50) ? json_object() : json_array();
    }
}

/* A copy of a random node of a random seed's tree, or a scalar. */
static json_t *random_subtree(rng *r)
{
    const seed *s = &G.seeds[below(r, G.nseeds)];
    slots sl = { .n = 0 };
    if (s->tree)
        collect(s->tree, &sl, 0);
    if (!sl.n)
        return random_scalar(r);
    return json_deep_copy(slot_get(&sl.s[below(r, sl.n)]));
}

/* A string's bytes mutated; kept only if still UTF-8. */
static json_t *mangle_string(json_t *v, rng *r)
{
    bytes b = { 0 };
    b_set(&b, json_string_value(v), json_string_length(v));
    mutate_bytes(&b, r);
    json_t *w = memchr(b.p, '\0', b.n) ? NULL : json_stringn(b.p, b.n);
    b_free(&b);
    return w ? w : json_incref(v);
}

/* An integer or real moved to a nearby or extreme value. */
static json_t *tweak_number(json_t *v, rng *r)
{
    double d = json_number_value(v);
    uint64_t i = (uint64_t)json_integer_value(v);  /* wraps at the ends */
    switch (below(r, 5)) {
    case 0: return json_is_integer(v) ? json_integer((json_int_t)(i + 1)) : json_real(d + 1);
    case 1: return json_is_integer(v) ? json_integer((json_int_t)(i - 1)) : json_real(-d);
    case 2: return json_real(d + 0.5);
    case 3: return json_is_integer(v) ? json_real(d)
                   : json_integer(d > -9e18 && d < 9e18 ? (json_int_t)(d * 0.5) : 0);
    default: return random_scalar(r);
    }
}

/* A key with one character dropped, doubled or changed: a typo. */
static void rename_key(const slot *s, rng *r)
{
    char key[300];
    snprintf(key, sizeof key, "%s", s->key);
    size_t n = strlen(key);
    size_t at = below(r, n);
    if (n && chance(r, 40))
        memmove(key + at, key + at + 1, n - at);
    else if (n && chance(r, 50))
        key[at] ^= 0x20;
    else if (n + 2 < sizeof key)
        strcat(key, chance(r, 50) ? "s" : "_");
    json_t *v = json_incref(json_object_get(s->parent, s->key));
    json_object_del(s->parent, s->key);
    json_object_set_new(s->parent, key, v);
}

static void nest_node(const slot *s, rng *r)
{
    json_t *v = json_incref(slot_get(s));
    size_t d = chance(r, 80) ? 1 + below(r, 5) : 1000 + below(r, 1500);
    for (size_t i = 0; i < d && v; i++) {
        json_t *a = json_array();
        json_array_append_new(a, v);
        v = a;
    }
    slot_set(s, v);
}

/* One change at a random node of root. */
static void mutate_node(json_t *root, rng *r)
{
    slots sl = { .n = 0 };
    collect(root, &sl, 0);
    if (!sl.n)
        return;
    const slot *s = &sl.s[below(r, sl.n)];
    json_t *v = slot_get(s);
    switch (below(r, 10)) {
    case 0: case 1: slot_set(s, random_scalar(r)); break;
    case 2: slot_set(s, random_subtree(r)); break;
    case 3:
        if (s->key)
            json_object_del(s->parent, s->key);
        else
            json_array_remove(s->parent, s->index);
        break;
    case 4:
        if (s->key)
            rename_key(s, r);
        else
            json_array_insert_new(s->parent, s->index, json_deep_copy(v));
        break;
    case 5:
        if (s->key && chance(r, 50)) {
            json_t *k = long_string(r);
            json_object_set_new(s->parent, json_string_value(k), random_scalar(r));
            json_decref(k);
        } else if (s->key)
            json_object_set_new(s->parent, "unexpected", random_scalar(r));
        else
            json_array_append_new(s->parent, random_subtree(r));
        break;
    case 6: if (chance(r, 40)) nest_node(s, r); break;
    default:
        if (json_is_string(v))
            slot_set(s, mangle_string(v, r));
        else if (json_is_number(v))
            slot_set(s, tweak_number(v, r));
        else
            slot_set(s, random_scalar(r));
        break;
    }
}

static json_t *mutate_tree(const json_t *tree, rng *r)
{
    json_t *v = json_deep_copy(tree);
    size_t n = chance(r, 25) ? 0 : 1 + below(r, chance(r, 70) ? 2 : 6);
    for (size_t i = 0; i < n && v; i++)
        mutate_node(v, r);
    return v;
}

/* v as text: compact or indented, maybe escaped to ASCII. */
static char *dump(json_t *v, rng *r)
{
    size_t flags = JSON_ENCODE_ANY;
    flags |= chance(r, 50) ? JSON_COMPACT : JSON_INDENT(below(r, 5));
    if (chance(r, 20))
        flags |= JSON_ENSURE_ASCII;
    if (chance(r, 10))
        flags |= JSON_SORT_KEYS;
    return json_dumps(v, flags);
}

/* ---- answers made from trees ------------------------------------------------ */

static const char *const prose_before[] = {
    "", "Sure! Here is the JSON you asked for:\n", "Here you go:\n\n",
    "Based on the lead's profile, I classified it as follows.\n",
    "\xe3\x81\xaf\xe3\x81\x84\xe3\x80\x81\xe3\x81\xa9\xe3\x81\x86\xe3\x81\x9e: ",
    "Answer: ", "  \n\t",
};
static const char *const prose_after[] = {
    "", "\n", "\nLet me know if you need anything else!",
    "\n\nNote: the score is an estimate (roughly {0..1}).", " [end]", "\n\xf0\x9f\x98\x80",
};

/* How deep v nests (jansson reads back at most 2048 levels). */
static size_t depth_of(json_t *v)
{
    size_t d = 0, i;
    const char *k;
    json_t *e;
    if (json_is_object(v))
        json_object_foreach(v, k, e) {
            size_t de = depth_of(e);
            d = de > d ? de : d;
        }
    else if (json_is_array(v))
        json_array_foreach(v, i, e) {
            size_t de = depth_of(e);
            d = de > d ? de : d;
        }
    return d + 1;
}

/* Commas put before some closing brackets outside strings. */
static void add_trailing_commas(bytes *b, rng *r)
{
    bool in_str = false;
    for (size_t i = 0; i < b->n; i++) {
        char c = b->p[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if ((c == '}' || c == ']') && chance(r, 30)) {
            const char *comma = chance(r, 50) ? "," : ",\n ";
            b_insert(b, i, comma, strlen(comma));
            i += strlen(comma);
        }
    }
}

/* v as a model might write it: prose, a fence, trailing commas.  Sets
 * *exact when the repair must give back v itself. */
static void wrap_answer(json_t *v, bytes *out, rng *r, bool *exact)
{
    char *body = dump(v, r);
    bool fence = chance(r, 40);
    b_set(out, "", 0);
    b_puts(out, prose_before[below(r, sizeof prose_before / sizeof prose_before[0])]);
    if (fence)
        b_puts(out, chance(r, 70) ? "```json\n" : "```\n");
    size_t at = out->n;
    b_puts(out, body ? body : "");
    if (chance(r, 30)) {
        bytes tail = { 0 };
        b_set(&tail, out->p + at, out->n - at);
        add_trailing_commas(&tail, r);
        out->n = at;
        b_insert(out, at, tail.p, tail.n);
        b_free(&tail);
    }
    if (fence)
        b_puts(out, chance(r, 80) ? "\n```" : "\n```\nHope this helps.");
    b_puts(out, prose_after[below(r, sizeof prose_after / sizeof prose_after[0])]);
    /* The repair cuts at the first fence's end and the first bracket: a
     * value holding ``` or a bare top-level scalar cannot come back, nor
     * one too big for the buffer or too deep for jansson. */
    *exact = body && (json_is_object(v) || json_is_array(v)) && !strstr(body, "```") &&
             out->n > strlen(body) && depth_of(v) < 2000;
    free(body);
}

/* An answer text from an answer seed: tree mutation and a wrapper, then
 * maybe byte mutation.  *want is set (a new reference) when the text must
 * repair to it. */
static void make_answer(const seed *s, bytes *out, rng *r, json_t **want)
{
    *want = NULL;
    if (!s->tree || chance(r, 30)) {
        b_set(out, s->data.p, s->data.n);
        mutate_bytes(out, r);
        return;
    }
    json_t *v = mutate_tree(s->tree, r);
    bool exact = false;
    wrap_answer(v, out, r, &exact);
    if (chance(r, 35))
        mutate_bytes(out, r);
    else if (exact)
        *want = json_incref(v);
    json_decref(v);
}

/* ---- provider bodies and JSONL files made from trees ------------------------ */

static const seed *pick_seed(target t, rng *r)
{
    for (int tries = 0; tries < 64; tries++) {
        const seed *s = &G.seeds[below(r, G.nseeds)];
        if (s->t == t)
            return s;
    }
    return &G.seeds[0];
}

/* A mutated answer put where the body carries the model's words. */
static void inject_answer(json_t *body, bool anthropic, rng *r)
{
    bytes text = { 0 };
    json_t *want;
    make_answer(pick_seed(T_ANSWER, r), &text, r, &want);
    json_decref(want);
    json_t *str = json_stringn(text.p, text.n);
    if (!str)
        str = json_string("not utf-8");
    if (anthropic) {
        json_t *content = json_object_get(body, "content");
        json_t *blk = json_array_get(content, below(r, json_array_size(content) + 1));
        json_t *tree = json_loads(text.p, 0, NULL);
        if (blk && tree && json_object_get(blk, "input"))
            json_object_set(blk, "input", tree);
        else if (blk)
            json_object_set(blk, "text", str);
        json_decref(tree);
    } else {
        json_t *msg = json_object_get(json_array_get(json_object_get(body, "choices"), 0),
                                      "message");
        if (msg)
            json_object_set(msg, "content", str);
    }
    json_decref(str);
    b_free(&text);
}

static void make_body(const seed *s, bytes *out, rng *r)
{
    if (!s->tree || chance(r, 25)) {
        b_set(out, s->data.p, s->data.n);
        mutate_bytes(out, r);
        return;
    }
    json_t *v = json_deep_copy(s->tree);
    if (chance(r, 60))
        inject_answer(v, s->t == T_ANTHROPIC, r);
    if (chance(r, 50)) {
        json_t *m = mutate_tree(v, r);
        json_decref(v);
        v = m;
    }
    char *text = dump(v, r);
    b_set(out, text ? text : "", text ? strlen(text) : 0);
    free(text);
    json_decref(v);
    if (chance(r, 10))
        mutate_bytes(out, r);
}

/* One line of a JSONL file changed: bytes, or its value's tree. */
static void mutate_line(bytes *line, rng *r)
{
    json_t *v = chance(r, 60) ? json_loadb(line->p, line->n, JSON_DECODE_ANY, NULL) : NULL;
    if (!v) {
        mutate_bytes(line, r);
        return;
    }
    json_t *m = mutate_tree(v, r);
    char *s = json_dumps(m, JSON_COMPACT | JSON_ENCODE_ANY |
                            (chance(r, 20) ? JSON_ENSURE_ASCII : 0));
    b_set(line, s ? s : "", s ? strlen(s) : 0);
    free(s);
    json_decref(m);
    json_decref(v);
}

static const char *const line_ends[] = { "\n", "\n", "\n", "\r\n", "\r\r\n", "\n\n", "\n \t\n" };

/* A JSONL file: the seed's lines, a few changed, dropped, doubled or
 * taken from another file, with varied line ends. */
static void make_jsonl(const seed *s, bytes *out, rng *r)
{
    if (chance(r, 25)) {
        b_set(out, s->data.p, s->data.n);
        mutate_bytes(out, r);
        return;
    }
    b_set(out, "", 0);
    if (chance(r, 10))
        b_puts(out, "\xef\xbb\xbf");
    const char *p = s->data.p, *end = p + s->data.n;
    bytes line = { 0 };
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        b_set(&line, p, n);
        p += n + (nl != NULL);
        if (chance(r, 5))
            continue;
        if (chance(r, 5)) {
            const seed *o = pick_seed(T_JSONL, r);
            const char *q = memchr(o->data.p, '\n', o->data.n);
            b_set(&line, o->data.p, q ? (size_t)(q - o->data.p) : o->data.n);
        }
        if (chance(r, 15))
            mutate_line(&line, r);
        for (int k = chance(r, 5) ? 2 : 1; k > 0; k--) {
            b_insert(out, out->n, line.p, line.n);
            if (p < end || chance(r, 50))
                b_puts(out, line_ends[below(r, sizeof line_ends / sizeof line_ends[0])]);
        }
    }
    b_free(&line);
}

/* ---- the fuzz loop ---------------------------------------------------------- */

static void fuzz_one(long i, rng *r)
{
    const seed *s = &G.seeds[(size_t)i % G.nseeds];
    bytes in = { 0 };
    json_t *want = NULL;
    switch (s->t) {
    case T_ANSWER: make_answer(s, &in, r, &want); break;
    case T_JSONL: make_jsonl(s, &in, r); break;
    case T_ANTHROPIC: case T_OPENAI: make_body(s, &in, r); break;
    case T_MOCK: case T_CSV: b_set(&in, s->data.p, s->data.n); mutate_bytes(&in, r); break;
    default: break;
    }
    if (want)
        G.st.known++;
    run_input(s->t, in.p ? in.p : "", in.n, want, r);
    json_decref(want);
    b_free(&in);
}

/* ---- the corpus ------------------------------------------------------------- */

static bool read_file(const char *path, bytes *b)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char buf[8192];
    size_t k;
    b_set(b, "", 0);
    while ((k = fread(buf, 1, sizeof buf, f)) > 0)
        b_insert(b, b->n, buf, k);
    fclose(f);
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files of dir, sorted (readdir's order is not stable). */
static char **list_dir(const char *dir, size_t *n)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    *n = 0;
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[4200];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        names = realloc(names, (*n + 1) * sizeof *names);
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(names, *n, sizeof *names, cmp_names);
    return names;
}

static target target_of(const char *name)
{
    for (int t = 0; t < NTARGETS; t++) {
        size_t k = strlen(target_names[t]);
        if (strncmp(name, target_names[t], k) == 0 && name[k] == '-')
            return (target)t;
    }
    return NTARGETS;
}

/* The seed's JSON value, for the tree mutator. */
static json_t *seed_tree(const seed *s)
{
    fr_buf err = { 0 };
    bool repaired;
    json_t *v = NULL;
    if (s->t == T_ANSWER)
        v = fr_repair_json(s->data.p, &repaired, &err);
    else if (s->t == T_ANTHROPIC || s->t == T_OPENAI)
        v = json_loadb(s->data.p, s->data.n, 0, NULL);
    fr_buf_free(&err);
    return v;
}

static void load_seeds(const char *dir)
{
    size_t n;
    char **names = list_dir(dir, &n);
    for (size_t i = 0; i < n; i++) {
        target t = target_of(names[i]);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (t == NTARGETS) {
            fprintf(stderr, "fuzz_runtime: %s: the name says no target\n", path);
            G.st.failures++;
            free(names[i]);
            continue;
        }
        G.seeds = realloc(G.seeds, (G.nseeds + 1) * sizeof *G.seeds);
        seed *s = &G.seeds[G.nseeds++];
        memset(s, 0, sizeof *s);
        s->t = t;
        s->name = names[i];
        if (!read_file(path, &s->data))
            b_set(&s->data, "", 0);
        s->tree = seed_tree(s);
    }
    free(names);
}

static void add_token(const char *tok)
{
    G.dict = realloc(G.dict, (G.ndict + 1) * sizeof *G.dict);
    G.dict[G.ndict++] = strdup(tok);
}

/* JSON punctuation, literals, fences, odd unicode, and every field name and
 * enum value of the types. */
static void add_type_tokens(const fr_type *t, int depth)
{
    char tok[300];
    if (depth > 8)
        return;
    if (t->kind == FR_OPTIONAL || t->kind == FR_LIST)
        add_type_tokens(t->elem, depth + 1);
    if (t->kind == FR_ENUM)
        for (int i = 0; i < t->enm->nvalues; i++) {
            snprintf(tok, sizeof tok, "\"%s\"", t->enm->values[i]);
            add_token(tok);
        }
    if (t->kind == FR_RECORD)
        for (int i = 0; i < t->schema->nfields; i++) {
            snprintf(tok, sizeof tok, "\"%s\":", t->schema->fields[i].name);
            add_token(tok);
            add_type_tokens(t->schema->fields[i].type, depth + 1);
        }
}

static void build_dict(void)
{
    static const char *const toks[] = {
        "{", "}", "[", "]", "\"", ",", ":", " ", "\n", "\\", "null", "true", "false",
        "\"\"", "{}", "[]", ",}", ",]", "\\u0000", "\\ud800", "\\udc00", "\\ud83d\\ude00",
        "\\u00e9", "\\\"", "\\n", "\\x", "'", "```", "```json\n", "\n```\n", "\xef\xbb\xbf",
        "\r\n", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\xff", "\xc3", "\xed\xa0\x80",
        "\xc0\x80", "\xf4\x90\x80\x80", "Sure! Here's the JSON:\n", "// comment\n", "/*",
        "NaN", "-Infinity", "\"answer\":", "\"type\":\"tool_use\"", "\"text\":",
        "\"stop_reason\":\"max_tokens\"", "\"refusal\":", "\"finish_reason\":\"length\"",
        "\"content\":null", "\"input\":", "\"usage\":", "\"error\":",
    };
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++)
        add_token(toks[i]);
    for (size_t i = 0; i < sizeof interesting_numbers / sizeof interesting_numbers[0]; i++)
        add_token(interesting_numbers[i]);
    for (size_t i = 0; i < NANSWER_TYPES; i++)
        add_type_tokens(answer_types[i], 0);
}

static void free_all(void)
{
    for (size_t i = 0; i < G.nseeds; i++) {
        free(G.seeds[i].name);
        b_free(&G.seeds[i].data);
        json_decref(G.seeds[i].tree);
    }
    free(G.seeds);
    for (size_t i = 0; i < G.ndict; i++)
        free(G.dict[i]);
    free(G.dict);
    fr_sig_clear(&G.cx);
    fr_pool_free(&G.cx);
    unlink(G.jsonl_path);
    unlink(G.csv_path);
    unlink(G.csv_out);
    close_last_input();
}

/* ---- main ------------------------------------------------------------------- */

static void setup(const char *tmp)
{
    json_object_seed(0x5eed);
    G.tmp = tmp;
    G.save = getenv("FUZZ_RUNTIME_SAVE") ? getenv("FUZZ_RUNTIME_SAVE") : tmp;
    snprintf(G.jsonl_path, sizeof G.jsonl_path, "%s/fuzz_runtime.%ld.jsonl", tmp,
             (long)getpid());
    snprintf(G.csv_path, sizeof G.csv_path, "%s/fuzz_runtime.%ld.csv", tmp, (long)getpid());
    snprintf(G.csv_out, sizeof G.csv_out, "%s/fuzz_runtime.%ld.out.csv", tmp, (long)getpid());
    build_dict();
    open_last_input();
}

/* Every file of dir, as it is, through every target; how many. */
static size_t replay_dir(const char *dir)
{
    size_t n;
    char **names = list_dir(dir, &n);
    for (size_t i = 0; i < n; i++) {
        char path[4200];
        bytes b = { 0 };
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (read_file(path, &b))
            run_everywhere(b.p, b.n);
        b_free(&b);
        free(names[i]);
    }
    free(names);
    return n;
}

/* The fuzzer must reach every verdict, or it has stopped testing anything. */
static void check_coverage(long iters)
{
    const stats *s = &G.st;
    if (iters < 1000)
        return;
    if (!s->valid || !s->invalid || !s->repaired || !s->unrepairable || !s->known ||
        !s->jsonl_ok || !s->jsonl_usage || !s->jsonl_oom || !s->outcome[FR_ANSWER] ||
        !s->outcome[FR_BAD_ANSWER]) {
        fprintf(stderr, "fuzz_runtime: some verdict was never reached (see the figures)\n");
        G.st.failures++;
    }
}

static void summary(size_t replayed, long iters)
{
    const stats *s = &G.st;
    printf("fuzz_runtime: %zu files replayed, %ld mutants; inputs: answer %ld, jsonl %ld, "
           "anthropic %ld, openai %ld, mock %ld, csv %ld\n", replayed, iters,
           s->inputs[T_ANSWER], s->inputs[T_JSONL], s->inputs[T_ANTHROPIC], s->inputs[T_OPENAI],
           s->inputs[T_MOCK], s->inputs[T_CSV]);
    printf("fuzz_runtime: repaired %ld, unrepairable %ld, known-value answers %ld; "
           "validations %ld valid, %ld invalid\n", s->repaired, s->unrepairable, s->known,
           s->valid, s->invalid);
    printf("fuzz_runtime: read_jsonl %ld lists, %ld usage errors, %ld under a failed "
           "allocation; provider answers %ld, bad answers %ld\n", s->jsonl_ok, s->jsonl_usage,
           s->jsonl_oom, s->outcome[FR_ANSWER], s->outcome[FR_BAD_ANSWER]);
    printf("fuzz_runtime: read_csv %ld lists (written and read back), %ld usage errors, %ld "
           "under a failed allocation\n", s->csv_ok, s->csv_usage, s->csv_oom);
    printf("fuzz_runtime: %ld failures, %ld breaks of open bugs\n", s->failures, s->open);
}

#ifdef FLOWC_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libFuzzer: the first byte picks the target, the rest is the input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        G.in_fuzzer = true;
        ready = true;
    }
    if (size == 0)
        return 0;
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    rng r = { hash_bytes(s, size - 1) };
    run_input((target)(data[0] % NTARGETS), s, size - 1, NULL, &r);
    free(s);
    return 0;
}
#else
int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: fuzz_runtime TOP [TMPDIR] [-n ITERATIONS] [-s SEED] [FILE...]\n");
        return 2;
    }
    const char *tmp = argc > 2 && argv[2][0] != '-' ? argv[2] : "/tmp";
    long iters = 20000;
    uint64_t seedval = 20261121;
    int first_file = argc;
    for (int i = argc > 2 && argv[2][0] != '-' ? 3 : 2; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            iters = atol(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            seedval = strtoull(argv[++i], NULL, 0);
        else {
            first_file = i;
            break;
        }
    }
    setup(tmp);
    catch_deaths();
    size_t replayed = 0;
    if (first_file < argc) {
        for (int i = first_file; i < argc; i++) {
            bytes b = { 0 };
            if (!read_file(argv[i], &b)) {
                fprintf(stderr, "fuzz_runtime: cannot read %s\n", argv[i]);
                return 2;
            }
            run_everywhere(b.p, b.n);
            b_free(&b);
            replayed++;
        }
        iters = 0;
    } else {
        load_seeds("tests/fuzz/runtime/seeds");
        if (!G.nseeds) {
            fprintf(stderr, "fuzz_runtime: no seeds in tests/fuzz/runtime/seeds\n");
            return 2;
        }
        for (size_t i = 0; i < G.nseeds; i++)
            run_everywhere(G.seeds[i].data.p, G.seeds[i].data.n);
        replayed = G.nseeds + replay_dir("tests/fuzz/runtime/crashers");
        rng r = { seedval };
        for (long i = 0; i < iters; i++)
            fuzz_one(i, &r);
        check_coverage(iters);
    }
    summary(replayed, iters);
    free_all();
    return G.st.failures ? 1 : 0;
}
#endif
