/*
 * fuzz_frontend.c: feeds mutated and random inputs through the front end.
 *
 *   fuzz_frontend [-n N] [-s SEED] [-o CRASHDIR] [-r FILE]... SEEDFILE...
 *
 * Each input runs as the driver would run it: parse_file(), then sema_check()
 * if it parsed and lint_program() if that passed, with diagnostics buffered
 * and dropped.  A program that parses is also formatted (fmt.c): the result
 * must parse to the same tree and format to itself; one that checks clean is
 * drawn (graph.c) in both formats.  Between inputs the
 * arena, the source table and the diagnostics are reset, so thousands of
 * compilations share one process (and LeakSanitizer sees what one leaks).
 *
 * First every -r file is replayed (the regression inputs of
 * tests/fuzz/crashers/), then N inputs are made from the seed files with a
 * fixed-seed generator: byte flips, interesting-byte inserts and deletes,
 * truncations, splices of lines and chunks from other seeds, duplicated and
 * dropped lines, and token soup.  Built with ASan/UBSan by
 * tests/sh/fuzz_frontend.sh.  An input that crashes the front end, or runs
 * for more than ALARM_SECONDS (the front end must never hang), is written to
 * CRASHDIR before the process dies, to be kept as a regression input.
 */
#include "flowc.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALARM_SECONDS 5
#define MAX_INPUT (256 * 1024)

typedef struct Seed {
    char *data;                                  /* the file's bytes */
    size_t len;                                  /* how many */
} Seed;

static Seed *seeds;                              /* the corpus */
static int nseeds;                               /* entries in seeds */
static uint64_t rng;                             /* xorshift64* state */
static const char *crash_dir = ".";              /* where a bad input is saved */
static char *cur;                                /* the input being run */
static size_t cur_len;                           /* its length */

static uint64_t next_rand(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 2685821657736338717ULL;
}

static size_t below(size_t n)
{
    return n ? (size_t)(next_rand() % n) : 0;
}

/* ---- saving the input that killed us --------------------------------------- */

static void save_current(const char *why)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/crash-%s-%d.flow", crash_dir, why, (int)getpid());
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(cur, 1, cur_len, f);
        fclose(f);
    }
    fprintf(stderr, "fuzz_frontend: %s; input saved to %s\n", why, path);
}

static void on_signal(int sig)
{
    save_current(sig == SIGALRM ? "hang" : "crash");
    signal(sig, SIG_DFL);
    raise(sig == SIGALRM ? SIGABRT : sig);
}

/* Sanitizers call this before they end the process. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));
static void on_death(void)
{
    save_current("sanitizer");
}

/* ---- one compilation ---------------------------------------------------------- */

static FILE *devnull;                            /* where graph_print writes */

/* The tree of p without spans (malloc'd). */
static char *tree_of(Program *p)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        abort();
    ast_dump_opts(f, p, false);
    fclose(f);
    return buf;
}

/* `flowc fmt` on a program that parsed: the result parses to the same tree,
 * and formatting it again changes nothing; anything else is a crash, so the
 * input is kept. */
static void check_fmt(Program *p, int file)
{
    const char *failed = NULL;
    size_t n1 = 0, n2 = 0;
    char *once = fmt_program(p, file, &n1, &failed);
    if (!once) {
        fprintf(stderr, "fmt has no layout for %s\n", failed);
        abort();
    }
    int f2 = src_add("fuzz.fmt.flow", once, n1);
    Program q;
    memset(&q, 0, sizeof q);
    vec_push(&q.files, (void *)(intptr_t)f2);
    if (!parse_file(&q, f2) || diag_error_count()) {
        fprintf(stderr, "formatted program does not parse:\n%s\n", once);
        abort();
    }
    char *a = tree_of(p), *b = tree_of(&q);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "formatting changed the tree:\n%s\n", once);
        abort();
    }
    char *twice = fmt_program(&q, f2, &n2, &failed);
    if (!twice || n1 != n2 || memcmp(once, twice, n1) != 0) {
        fprintf(stderr, "formatting is not idempotent:\n%s\n---\n%s\n", once, twice ? twice : "");
        abort();
    }
    free(a);
    free(b);
    free(once);
    free(twice);
}

static bool run_one(const char *data, size_t len)
{
    arena_free_all();
    src_reset();
    diag_reset();
    ty_init();
    cur = (char *)data;
    cur_len = len;
    alarm(ALARM_SECONDS);
    int file = src_add("fuzz.flow", data, len);
    Program p;
    memset(&p, 0, sizeof p);
    vec_push(&p.files, (void *)(intptr_t)file);
    bool parsed = parse_file(&p, file);
    if (parsed && !diag_error_count())
        check_fmt(&p, file);
    if (parsed && sema_check(&p)) {
        lint_program(&p, file);
        Decl *w = sema_workflow(&p);
        if (w && devnull) {                      /* flowc graph, both formats */
            graph_print(devnull, &p, w, false);
            graph_print(devnull, &p, w, true);
        }
    }
    alarm(0);
    return parsed;
}

/* ---- mutations ------------------------------------------------------------------- */

static const char *const interesting[] = {
    "{", "}", "(", ")", "[", "]", "{{", "}}", "\"", "\"\"\"", "\n", ":", ",", ".", "..",
    "<", ">", "=", "==", "=>", "->", "??", "?", "-", "\\", "///", "//", "/*", "'", "\t",
    "\0", "\xff", "_", "0", "1e", "9999999999999999999999", "30s", "2_000",
};

static const char *const soup[] = {
    "import", "schema", "enum", "model", "agent", "workflow", "phase", "budget", "let",
    "if", "else", "for", "in", "where", "parallel", "pipeline", "stage", "match", "loop",
    "max", "break", "skip", "return", "using", "true", "false", "null", "and", "or", "not",
    "len", "x", "Lead", "list", "string", "int", "float", "bool", "read_jsonl", "fail",
    "approve", "escalate", "env", "{", "}", "(", ")", "[", "]", ":", ",", ".", "..", "<",
    ">", "=", "==", "!=", "<=", ">=", "=>", "->", "??", "?", "+", "-", "*", "/", "\n",
    "\"a {{ x }} b\"", "\"\"\"\n  t {{ y }}\n  \"\"\"", "1", "0.5", "30m", "_",
};

/* Appends n bytes to buf (bounded by MAX_INPUT). */
static void put(char *buf, size_t *len, const char *s, size_t n)
{
    if (*len + n > MAX_INPUT)
        n = MAX_INPUT - *len;
    memcpy(buf + *len, s, n);
    *len += n;
}

static size_t token_soup(char *buf)
{
    size_t len = 0, n = 1 + below(200);
    for (size_t i = 0; i < n; i++) {
        const char *t = soup[below(sizeof soup / sizeof soup[0])];
        put(buf, &len, t, strlen(t));
        put(buf, &len, " ", 1);
    }
    return len;
}

/* Start of the line holding pos, and one past its end (past the '\n'). */
static void line_at(const char *s, size_t len, size_t pos, size_t *lo, size_t *hi)
{
    *lo = pos;
    while (*lo > 0 && s[*lo - 1] != '\n')
        (*lo)--;
    *hi = pos;
    while (*hi < len && s[*hi] != '\n')
        (*hi)++;
    if (*hi < len)
        (*hi)++;
}

static bool is_word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* A random word of s: its start and length (0 if none found near). */
static size_t pick_word(const char *s, size_t len, size_t *start)
{
    size_t i = below(len + 1);
    while (i < len && !is_word_char(s[i]))
        i++;
    while (i > 0 && i < len && is_word_char(s[i - 1]))
        i--;
    size_t j = i;
    while (j < len && is_word_char(s[j]))
        j++;
    *start = i;
    return j - i;
}

/* Replaces a word of buf with a word of another seed: mostly still parses,
 * so it reaches the type checker with names and types mixed up. */
static size_t swap_word(char *buf, size_t len, Seed *other)
{
    char tmp[MAX_INPUT];
    size_t at, from;
    size_t n = pick_word(buf, len, &at);
    size_t m = pick_word(other->data, other->len, &from);
    char word[256];
    if (!n || !m || m >= sizeof word || len - n + m > MAX_INPUT)
        return len;
    memcpy(word, other->data + from, m);         /* other may be buf itself */
    memcpy(tmp, buf + at + n, len - at - n);
    memcpy(buf + at, word, m);
    memcpy(buf + at + m, tmp, len - at - n);
    return len - n + m;
}

/* One mutation of buf[0..len) in place; returns the new length. */
static size_t mutate(char *buf, size_t len)
{
    char tmp[MAX_INPUT];
    size_t pos = below(len + 1), n = 0, lo, hi;
    Seed *other = &seeds[below((size_t)nseeds)];
    switch (below(12)) {
    case 9:
    case 10:
    case 11:
        return swap_word(buf, len, below(2) ? other : &(Seed){ buf, len });
    case 0:                                      /* flip a bit */
        if (len)
            buf[below(len)] ^= (char)(1u << below(8));
        return len;
    case 1:                                      /* truncate */
        return below(len + 1);
    case 2:                                      /* delete a few bytes */
        n = 1 + below(8);
        if (pos + n > len)
            n = len - pos;
        memmove(buf + pos, buf + pos + n, len - pos - n);
        return len - n;
    case 3:                                      /* duplicate a line */
    case 4:                                      /* drop a line */
        if (!len)
            return len;
        line_at(buf, len, below(len), &lo, &hi);
        if (below(2)) {
            memmove(buf + lo, buf + hi, len - hi);
            return len - (hi - lo);
        }
        n = hi - lo;
        if (len + n > MAX_INPUT)
            return len;
        memmove(buf + hi + n, buf + hi, len - hi);
        memcpy(buf + hi, buf + lo, n);
        return len + n;
    case 5:                                      /* splice a chunk of another seed */
    case 6:
        if (!other->len)
            return len;
        n = 1 + below(other->len < 400 ? other->len : 400);
        break;
    default: {                                   /* insert an interesting token */
        const char *t = interesting[below(sizeof interesting / sizeof interesting[0])];
        n = t[0] ? strlen(t) : 1;
        if (len + n > MAX_INPUT)
            return len;
        memcpy(tmp, buf + pos, len - pos);
        memcpy(buf + pos, t, n);
        memcpy(buf + pos + n, tmp, len - pos);
        return len + n;
    }
    }
    if (len + n > MAX_INPUT)
        return len;
    size_t from = below(other->len - n + 1);
    memcpy(tmp, buf + pos, len - pos);
    memcpy(buf + pos, other->data + from, n);
    memcpy(buf + pos + n, tmp, len - pos);
    return len + n;
}

/* ---- driver ------------------------------------------------------------------------ */

static bool read_file(const char *path, Seed *s)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    s->data = malloc(MAX_INPUT);
    s->len = fread(s->data, 1, MAX_INPUT, f);
    fclose(f);
    return true;
}

int main(int argc, char **argv)
{
    long iterations = 20000;
    uint64_t seed = 1;
    char **replay = calloc((size_t)argc, sizeof *replay);
    int nreplay = 0;
    seeds = calloc((size_t)argc + 1, sizeof *seeds);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            iterations = atol(argv[++i]);
        else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
            crash_dir = argv[++i];
        else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            replay[nreplay++] = argv[++i];
        else if (read_file(argv[i], &seeds[nseeds]))
            nseeds++;
        else
            fprintf(stderr, "fuzz_frontend: cannot read %s\n", argv[i]);
    }
    if (!nseeds) {
        seeds[0].data = calloc(1, MAX_INPUT);
        nseeds = 1;
    }
    rng = seed * 0x9E3779B97F4A7C15ULL + 1;
    signal(SIGALRM, on_signal);
    signal(SIGSEGV, on_signal);
    signal(SIGABRT, on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(on_death);
    diag_init(DIAG_TEXT, false);
    devnull = fopen("/dev/null", "w");

    for (int i = 0; i < nreplay; i++) {
        Seed s;
        if (!read_file(replay[i], &s)) {
            fprintf(stderr, "fuzz_frontend: cannot read %s\n", replay[i]);
            return 2;
        }
        run_one(s.data, s.len);
        free(s.data);
    }
    for (int i = 0; i < nseeds; i++)             /* the seeds themselves */
        run_one(seeds[i].data, seeds[i].len);

    char *buf = malloc(MAX_INPUT);
    long checked = 0;
    for (long it = 0; it < iterations; it++) {
        size_t len;
        if (below(20) == 0) {
            len = token_soup(buf);
        } else {
            Seed *s = &seeds[below((size_t)nseeds)];
            memcpy(buf, s->data, s->len);
            len = s->len;
            int rounds = below(2) ? 1 : 1 + (int)below(6);
            for (int r = 0; r < rounds; r++)
                len = mutate(buf, len);
        }
        checked += run_one(buf, len);
    }
    arena_free_all();
    src_reset();
    printf("fuzz_frontend: %d replayed, %d seeds, %ld mutated inputs (%ld parsed and type-checked), "
           "no crash, hang or leak\n", nreplay, nseeds, iterations, checked);
    for (int i = 0; i < nseeds; i++)
        free(seeds[i].data);
    free(seeds);
    free(replay);
    free(buf);
    return 0;
}
