/*
 * main.c: the flowc driver.
 *
 *   flowc check FILE...     parse, resolve imports, type-check each file
 *   flowc build ...         build.c's cmd_build
 *   flowc fmt ...           fmt.c's cmd_fmt
 *   flowc graph ...         graph.c's cmd_graph
 *   flowc estimate ...      estimate_cmd.c's cmd_estimate
 *   flowc compat ...        compat.c's cmd_compat
 *   flowc lsp               lsp.c's cmd_lsp
 *   flowc test ...          flowtest.c's cmd_test
 *
 * Global options (--color=, --diagnostics-format=, -W...) may stand anywhere
 * and are taken out before the command sees its arguments.  Loading files is
 * load.c's flowc_load().
 */
#include "flowc.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: flowc check [--dump-ast] [--dump-types] FILE|DIR...\n"
    "       flowc check FILE --data SCHEMA=PATH... [--delimiter C] [--max-errors N]\n"
    "       flowc build FILE [-o OUT] [--emit-c FILE.c] [--emit-schemas DIR] [--keep-c]\n"
    "       flowc fmt [--check | -w] [FILE|DIR|-]...\n"
    "       flowc graph [--format=dot|mermaid] FILE\n"
    "       flowc estimate FILE [--items NAME=N ...] [--data PARAM=FILE ...] [--journal DB]\n"
    "                      [--format=text|json]\n"
    "       flowc compat [--format=text|json] OLD.flow NEW.flow | --against GIT_REV FILE...\n"
    "       flowc test [--keep] FILE.flowtest|FILE.flow|DIR...\n"
    "       flowc lsp\n"
    "\n"
    "commands:\n"
    "  check     type-check .flow files, or every *.flow under a DIR (exit 0 clean, 1 on any error);\n"
    "            with --data, also check data files against the file's schemas (every bad row)\n"
    "  build     compile a .flow file to a native executable\n"
    "  fmt       print files in the one canonical layout (-w: rewrite them; --check: list them)\n"
    "  graph     draw the workflow: phases, agents, the schemas between them (dot or mermaid)\n"
    "  estimate  what a workflow can spend (worst case) and will likely spend, per phase and agent\n"
    "  compat    the breaking changes to schemas, enums and the workflow between two versions\n"
    "  test      run a workflow's tests (.flowtest files) offline, with canned answers per agent\n"
    "  lsp       a language server on stdin and stdout, for editors\n"
    "\n"
    "options:\n"
    "  --color=auto|always|never           colour diagnostics (auto: on a terminal, unless NO_COLOR)\n"
    "  --diagnostics-format=text|json      GCC-style text, or one JSON array on stderr\n"
    "  -Wno-NAME, -WNAME                   turn a warning off or on (the names below);\n"
    "                                      -Wno-unused: every unused-*; -Wnone: all\n"
    "  -Werror, -Werror=NAME               warnings (or one) are errors\n"
    "  --dump-ast                          print the syntax tree (check)\n"
    "  --dump-types                        print the checked types (check)\n"
    "  --data SCHEMA=PATH                  check PATH (.csv, .tsv, .jsonl; csv:-, jsonl:- for stdin)\n"
    "                                      against SCHEMA, as read_csv / read_jsonl would (check)\n"
    "  --delimiter C                       the cell separator of --data CSV files (default ',')\n"
    "  --max-errors N                      report the first N bad rows of each --data file\n"
    "  -h, --help                          this help\n"
    "  --version                           the version\n"
    "\n"
    "environment: FLOWC_STDLIB (stdlib directory), NO_COLOR\n";

/* The usage, then the warnings' names (from the one table in flowc.h). */
static void print_usage(FILE *out)
{
    fputs(usage, out);
    fputs("\nwarnings (all on; -Wno-NAME turns one off):\n ", out);
    int col = 1;
    for (int c = 0; c < DIAG_NCODES; c++) {
        const char *w = diag_warning_name((DiagCode)c);
        if (!w)
            continue;
        if (col + (int)strlen(w) + 1 > 78) {
            fputs("\n ", out);
            col = 1;
        }
        fprintf(out, " %s", w);
        col += (int)strlen(w) + 1;
    }
    fputc('\n', out);
}

/* ---- commands ------------------------------------------------------------------ */

static int usage_error(const char *fmt, const char *arg)
{
    fputs("flowc: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    print_usage(stderr);
    return 2;
}

/* flowc check [--dump-ast] [--dump-types] FILE|DIR...: each file on its own. */
/* A flag's value: "--flag=V" or "--flag V" (advancing *i); NULL if none. */
static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);
    if (strncmp(argv[*i], flag, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] == '\0' && *i + 1 < argc)
        return argv[++*i];
    return NULL;
}

/* The --data, --delimiter and --max-errors options of check; 1 taken, 0
 * not one of them, -1 bad usage (said). */
static int data_option(int argc, char **argv, int *i, Vec *data, char *delim, long *max)
{
    const char *a = argv[*i], *v;
    if (strcmp(a, "--data") == 0 || strncmp(a, "--data=", 7) == 0) {
        if (!(v = flag_value(argc, argv, i, "--data")))
            return usage_error("%s", "--data needs SCHEMA=PATH"), -1;
        vec_push(data, (void *)v);
        return 1;
    }
    if (strcmp(a, "--delimiter") == 0 || strncmp(a, "--delimiter=", 12) == 0) {
        v = flag_value(argc, argv, i, "--delimiter");
        if (v && strcmp(v, "\\t") == 0)
            v = "\t";
        if (!v || strlen(v) != 1 || strchr("\"\r\n", v[0]) || (unsigned char)v[0] >= 0x80)
            return usage_error("%s", "--delimiter takes one ASCII character other than '\"' or "
                               "a line break (\\t for a tab)"), -1;
        *delim = v[0];
        return 1;
    }
    if (strcmp(a, "--max-errors") == 0 || strncmp(a, "--max-errors=", 13) == 0) {
        v = flag_value(argc, argv, i, "--max-errors");
        char *end = NULL;
        long n = v ? strtol(v, &end, 10) : -1;
        if (!v || !*v || *end || n < 0)
            return usage_error("%s", "--max-errors takes a number of rows (0: all)"), -1;
        *max = n;
        return 1;
    }
    return 0;
}

/* check FILE --data S=P ...: the program, then each data file. */
static int check_data(char *file, Vec *args, char delim, long max)
{
    DataSpec *specs = arena_alloc(sizeof *specs * (size_t)(args->len + 1));
    for (int i = 0; i < args->len; i++) {
        if (!data_parse_spec(args->items[i], delim, &specs[i]))
            return usage_error("--data %s: write SCHEMA=PATH, PATH ending in .csv, .tsv, .jsonl, "
                               ".ndjson or .json, or prefixed csv:, tsv: or jsonl: (csv:- for "
                               "stdin)", args->items[i]);
    }
    Program *p = arena_alloc(sizeof *p);
    if (!flowc_load(p, &file, 1))
        return 1;
    setvbuf(stderr, NULL, _IOFBF, 1 << 16);      /* a line per bad row: not a write each */
    int st = data_check(p, specs, args->len, max);
    fflush(stderr);
    return st;
}

static int cmd_check(int argc, char **argv)
{
    bool dump_ast = false, dump_types = false;
    char **files = arena_alloc(sizeof(char *) * (size_t)(argc + 1));
    int nfiles = 0;
    Vec data = { 0 };
    char delim = 0;
    long max_errors = 0;
    for (int i = 1; i < argc; i++) {
        int d = data_option(argc, argv, &i, &data, &delim, &max_errors);
        if (d < 0)
            return 2;
        if (d > 0)
            continue;
        if (strcmp(argv[i], "--dump-ast") == 0)
            dump_ast = true;
        else if (strcmp(argv[i], "--dump-types") == 0)
            dump_types = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1])
            return usage_error("unknown option '%s'", argv[i]);
        else
            files[nfiles++] = argv[i];
    }
    if (nfiles == 0)
        return usage_error("%s", "check: no input files");
    if (data.len && (nfiles != 1 || dump_ast || dump_types))
        return usage_error("%s", "check --data checks against the schemas of one FILE");
    if (data.len)
        return check_data(files[0], &data, delim, max_errors);
    Vec all = { 0 };
    int status = flowc_expand_args(files, nfiles, &all) ? 0 : 1;
    for (int i = 0; i < all.len; i++) {
        Program *p = arena_alloc(sizeof *p);
        bool ok = flowc_load(p, (char **)&all.items[i], 1);
        if (dump_ast)
            ast_dump(stdout, p);
        if (dump_types && ok)
            sema_dump_types(stdout, p);
        if (!ok)
            status = 1;
    }
    fflush(stdout);
    return status;
}

/* Takes --color= and --diagnostics-format= out of argv; -1 on a bad value. */
static int global_options(int *argc, char **argv)
{
    const char *color = "auto";
    DiagFormat fmt = DIAG_TEXT;
    int n = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--color=", 8) == 0 || strncmp(a, "--colour=", 9) == 0) {
            color = strchr(a, '=') + 1;
            if (strcmp(color, "auto") && strcmp(color, "always") && strcmp(color, "never"))
                return usage_error("--color takes auto, always or never, not '%s'", color), -1;
        } else if (strncmp(a, "-W", 2) == 0) {
            if (!diag_option(a)) {
                const char *w = a + 2;
                w = strncmp(w, "no-", 3) == 0 ? w + 3 : strncmp(w, "error=", 6) == 0 ? w + 6 : w;
                const char *near = diag_closest_option(w);
                if (near)
                    fprintf(stderr, "flowc: unknown warning option '%s'; did you mean '-W%s'?\n", a, near);
                else
                    fprintf(stderr, "flowc: unknown warning option '%s'; see 'flowc --help'\n", a);
                return -1;
            }
        } else if (strncmp(a, "--diagnostics-format=", 21) == 0) {
            if (strcmp(a + 21, "json") == 0)
                fmt = DIAG_JSON;
            else if (strcmp(a + 21, "text") == 0)
                fmt = DIAG_TEXT;
            else
                return usage_error("--diagnostics-format takes text or json, not '%s'", a + 21), -1;
        } else {
            argv[n++] = argv[i];
        }
    }
    *argc = n;
    argv[n] = NULL;
    bool use = strcmp(color, "always") == 0
        || (strcmp(color, "auto") == 0 && isatty(2) && !getenv("NO_COLOR"));
    diag_init(fmt, fmt == DIAG_TEXT && use);
    return 0;
}

int main(int argc, char **argv)
{
    if (global_options(&argc, argv) < 0)
        return 2;
    if (argc < 2)
        return usage_error("%s", "no command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        print_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("flowc %s\n", FLOWC_VERSION);
        return 0;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "build") == 0)
        return cmd_build(argc - 1, argv + 1);
    if (strcmp(cmd, "fmt") == 0)
        return cmd_fmt(argc - 1, argv + 1);
    if (strcmp(cmd, "graph") == 0)
        return cmd_graph(argc - 1, argv + 1);
    if (strcmp(cmd, "estimate") == 0)
        return cmd_estimate(argc - 1, argv + 1);
    if (strcmp(cmd, "compat") == 0)
        return cmd_compat(argc - 1, argv + 1);
    if (strcmp(cmd, "lsp") == 0)
        return cmd_lsp(argc - 1, argv + 1);
    if (strcmp(cmd, "test") == 0)
        return cmd_test(argc - 1, argv + 1);
    return usage_error("unknown command '%s'", cmd);
}
