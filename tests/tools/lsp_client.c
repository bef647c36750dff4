/*
 * lsp_client.c: a scripted Language Server Protocol client, to test
 * `flowc lsp` (tests/sh/lsp.sh) and time it (bench/tools.sh).
 *
 *   lsp_client FLOWC SCRIPT
 *       runs FLOWC lsp and plays SCRIPT, one command a line:
 *         # ...                          a comment
 *         send JSON                      a message as it is
 *         open URI FILE                  textDocument/didOpen with FILE's text (version 1)
 *         change URI VERSION FILE        textDocument/didChange, the whole text of FILE
 *         expect JSON                    the next message the server sends must contain
 *                                        JSON: every key of an object, every element of an
 *                                        array (same length; or ["...", a, b]: a and b
 *                                        among any others), equal values; a string
 *                                        "~text" matches a string that contains text, "*"
 *                                        matches any value
 *       In JSON, URI and FILE, $DIR is the script's directory (absolute).  At the
 *       end it sends shutdown and exit and wants exit status 0.  Exit 0 when
 *       every expect held, 1 (saying which line failed and what came) if not.
 *
 *   lsp_client --stress FLOWC STEP FILE...
 *       opens each FILE and asks hover, definition and completion at every
 *       STEP-th character; every request must get a result (no error, no
 *       crash) and the server must end cleanly.
 *
 *   lsp_client --json FILE...
 *       exits 1 (saying where) unless every FILE is valid JSON without
 *       duplicate keys.
 *
 *   lsp_client --bench FLOWC FILE N
 *       opens FILE, then N times changes one number in its last line and waits
 *       for the diagnostics of that change; prints the latencies (min, median,
 *       max) and the server's CPU time per change, in milliseconds, on one line.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 60000                            /* a failsafe, never a measure */

static pid_t server;
static FILE *to_server;
static int from_server;
static char *inbuf;
static size_t inlen, incap;

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "lsp_client: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    if (server > 0)
        kill(server, SIGKILL);
    exit(2);
}

static void start(const char *flowc)
{
    int in[2], out[2];
    if (pipe(in) < 0 || pipe(out) < 0)
        die("pipe: %s", strerror(errno));
    server = fork();
    if (server < 0)
        die("fork: %s", strerror(errno));
    if (server == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execl(flowc, flowc, "lsp", (char *)NULL);
        fprintf(stderr, "lsp_client: cannot run %s: %s\n", flowc, strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_server = fdopen(in[1], "w");
    from_server = out[0];
    signal(SIGPIPE, SIG_IGN);
}

static void send_json(json_t *msg)
{
    char *body = json_dumps(msg, JSON_COMPACT);
    fprintf(to_server, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    fflush(to_server);
    free(body);
}

/* Reads more of the server's output; false at its end or after WAIT_MS. */
static bool fill(void)
{
    struct pollfd p = { from_server, POLLIN, 0 };
    if (poll(&p, 1, WAIT_MS) <= 0)
        return false;
    if (inlen + 65536 > incap) {
        incap = (inlen + 65536) * 2;
        inbuf = realloc(inbuf, incap);
        if (!inbuf)
            die("%s", "out of memory");
    }
    ssize_t n = read(from_server, inbuf + inlen, incap - inlen - 1);
    if (n <= 0)
        return false;
    inlen += (size_t)n;
    inbuf[inlen] = '\0';
    return true;
}

/* The next message from the server, or NULL. */
static json_t *next_msg(void)
{
    for (;;) {
        char *sep = inbuf ? strstr(inbuf, "\r\n\r\n") : NULL;
        if (sep) {
            char *cl = strstr(inbuf, "Content-Length:");
            if (!cl || cl > sep)
                die("%s", "a message without Content-Length");
            size_t len = strtoul(cl + 15, NULL, 10), head = (size_t)(sep + 4 - inbuf);
            if (inlen >= head + len) {
                json_error_t err;
                json_t *m = json_loadb(inbuf + head, len, 0, &err);
                if (!m)
                    die("the server sent bad JSON: %s", err.text);
                memmove(inbuf, inbuf + head + len, inlen - head - len + 1);
                inlen -= head + len;
                return m;
            }
        }
        if (!fill())
            return NULL;
    }
}

/* Does actual contain expected (see the header)? */
static bool matches(json_t *want, json_t *got)
{
    if (json_is_string(want)) {
        const char *w = json_string_value(want);
        if (strcmp(w, "*") == 0)
            return got != NULL;
        if (w[0] == '~')
            return json_is_string(got) && strstr(json_string_value(got), w + 1);
        return json_is_string(got) && strcmp(w, json_string_value(got)) == 0;
    }
    if (json_is_object(want)) {
        const char *k;
        json_t *v;
        if (!json_is_object(got))
            return false;
        json_object_foreach(want, k, v)
            if (!matches(v, json_object_get(got, k)))
                return false;
        return true;
    }
    if (json_is_array(want)) {
        json_t *first = json_array_get(want, 0);
        if (json_is_string(first) && strcmp(json_string_value(first), "...") == 0) {
            if (!json_is_array(got))             /* ["...", a, b]: has a and b, among others */
                return false;
            for (size_t i = 1; i < json_array_size(want); i++) {
                bool found = false;
                for (size_t k = 0; k < json_array_size(got) && !found; k++)
                    found = matches(json_array_get(want, i), json_array_get(got, k));
                if (!found)
                    return false;
            }
            return true;
        }
        if (!json_is_array(got) || json_array_size(got) != json_array_size(want))
            return false;
        for (size_t i = 0; i < json_array_size(want); i++)
            if (!matches(json_array_get(want, i), json_array_get(got, i)))
                return false;
        return true;
    }
    return got && json_equal(want, got);
}

static char *subst(const char *s, const char *dir)
{
    size_t n = strlen(s) + 1, dl = strlen(dir);
    for (const char *p = s; (p = strstr(p, "$DIR")); p += 4)
        n += dl;
    char *out = malloc(n), *o = out;
    while (*s) {
        if (strncmp(s, "$DIR", 4) == 0) {
            memcpy(o, dir, dl);
            o += dl;
            s += 4;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot read %s", path);
    char *buf = NULL;
    size_t n = 0;
    FILE *m = open_memstream(&buf, &n);
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
        fwrite(tmp, 1, k, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void send_text(const char *method, const char *uri, int version, const char *file)
{
    char *text = slurp(file);
    json_t *td = json_pack("{s:s, s:i}", "uri", uri, "version", version);
    json_t *params;
    if (strcmp(method, "textDocument/didOpen") == 0) {
        json_object_set_new(td, "languageId", json_string("flow"));
        json_object_set_new(td, "text", json_string(text));
        params = json_pack("{s:o}", "textDocument", td);
    } else {
        params = json_pack("{s:o, s:[{s:s}]}", "textDocument", td, "contentChanges", "text", text);
    }
    json_t *msg = json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method", method, "params", params);
    send_json(msg);
    json_decref(msg);
    free(text);
}

static int finish(void)
{
    json_t *m = json_pack("{s:s, s:i, s:s}", "jsonrpc", "2.0", "id", 999999, "method", "shutdown");
    send_json(m);
    json_decref(m);
    json_t *r;
    while ((r = next_msg())) {                   /* whatever came before its answer */
        bool done = json_integer_value(json_object_get(r, "id")) == 999999;
        json_decref(r);
        if (done)
            break;
    }
    m = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", "exit");
    send_json(m);
    json_decref(m);
    fclose(to_server);
    int st;
    waitpid(server, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int play(const char *flowc, const char *script)
{
    char dir[PATH_MAX];
    if (!realpath(script, dir))
        die("cannot find %s", script);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    FILE *f = fopen(script, "r");
    if (!f)
        die("cannot read %s", script);
    start(flowc);
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, failed = 0;
    while (getline(&line, &cap, f) > 0) {
        lineno++;
        line[strcspn(line, "\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        char *l = subst(line, dir);
        char uri[4096], file[4096];
        int version;
        if (strncmp(l, "send ", 5) == 0) {
            json_error_t err;
            json_t *m = json_loads(l + 5, 0, &err);
            if (!m)
                die("bad JSON in the script: %s", err.text);
            send_json(m);
            json_decref(m);
        } else if (sscanf(l, "open %4095s %4095s", uri, file) == 2) {
            send_text("textDocument/didOpen", uri, 1, file);
        } else if (sscanf(l, "change %4095s %d %4095s", uri, &version, file) == 3) {
            send_text("textDocument/didChange", uri, version, file);
        } else if (strncmp(l, "expect ", 7) == 0) {
            json_error_t err;
            json_t *want = json_loads(l + 7, 0, &err);
            if (!want)
                die("bad JSON in the script: %s", err.text);
            json_t *got = next_msg();
            if (!got || !matches(want, got)) {
                char *g = got ? json_dumps(got, JSON_COMPACT) : strdup("(nothing)");
                fprintf(stderr, "%s:%d: expected %s\n  got %s\n", script, lineno, l + 7, g);
                free(g);
                failed = 1;
            }
            json_decref(want);
            json_decref(got);
            if (failed)
                break;
        } else {
            die("unknown script command: %s", l);
        }
        free(l);
    }
    free(line);
    fclose(f);
    int st = finish();
    if (st != 0 && !failed) {
        fprintf(stderr, "%s: the server exited with status %d after shutdown and exit\n", script, st);
        failed = 1;
    }
    return failed;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* CPU time the server has used, in milliseconds (from /proc), or -1. */
static double server_cpu_ms(void)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)server);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');                 /* after the command name */
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bench(const char *flowc, const char *file, int n)
{
    char real[PATH_MAX];
    if (!realpath(file, real))
        die("cannot find %s", file);
    char *uri = malloc(strlen(real) + 8);
    sprintf(uri, "file://%s", real);
    char *text = slurp(file);
    start(flowc);
    json_t *m = json_pack("{s:s, s:i, s:s, s:{}}", "jsonrpc", "2.0", "id", 1, "method", "initialize",
                          "params");
    send_json(m);
    json_decref(m);
    json_decref(next_msg());
    send_text("textDocument/didOpen", uri, 1, file);
    json_decref(next_msg());                     /* its diagnostics */
    double *ms = malloc(sizeof *ms * (size_t)n);
    size_t len = strlen(text);
    double cpu0 = server_cpu_ms();
    for (int i = 0; i < n; i++) {
        /* an edit the way a person makes one: one character, at the end */
        char *t = malloc(len + 32);
        sprintf(t, "%s// edit %d\n", text, i);
        json_t *c = json_pack("{s:s, s:s, s:{s:{s:s, s:i}, s:[{s:s}]}}", "jsonrpc", "2.0", "method",
                              "textDocument/didChange", "params", "textDocument", "uri", uri,
                              "version", i + 2, "contentChanges", "text", t);
        double t0 = now_ms();
        send_json(c);
        json_t *d;
        while ((d = next_msg())) {
            json_t *p = json_object_get(d, "params");
            bool mine = json_integer_value(json_object_get(p, "version")) == i + 2;
            json_decref(d);
            if (mine)
                break;
        }
        ms[i] = now_ms() - t0;
        json_decref(c);
        free(t);
    }
    double cpu = server_cpu_ms() - cpu0;
    qsort(ms, (size_t)n, sizeof *ms, cmp_double);
    printf("%.1f %.1f %.1f %.1f\n", ms[0], ms[n / 2], ms[n - 1], cpu0 < 0 ? -1.0 : cpu / n);
    finish();
    free(ms);
    free(text);
    free(uri);
    return 0;
}

/* The answer to request id (notifications before it are skipped), or NULL. */
static json_t *answer(int id)
{
    json_t *m;
    while ((m = next_msg())) {
        if (json_integer_value(json_object_get(m, "id")) == id && !json_object_get(m, "method"))
            return m;
        json_decref(m);
    }
    return NULL;
}

/* --stress FLOWC STEP FILE...: opens each file and asks hover, definition and
 * completion at every STEP-th position of it; every request must be answered
 * (with a result, never an error), and the server must end cleanly. */
static int stress(const char *flowc, int step, int n, char **files)
{
    start(flowc);
    json_t *m = json_pack("{s:s, s:i, s:s, s:{}}", "jsonrpc", "2.0", "id", 1, "method", "initialize",
                          "params");
    send_json(m);
    json_decref(m);
    json_decref(answer(1));
    static const char *const methods[] = { "textDocument/hover", "textDocument/definition",
                                           "textDocument/completion" };
    int id = 2, asked = 0;
    for (int f = 0; f < n; f++) {
        char real[PATH_MAX];
        if (!realpath(files[f], real))
            die("cannot find %s", files[f]);
        char *uri = malloc(strlen(real) + 8);
        sprintf(uri, "file://%s", real);
        send_text("textDocument/didOpen", uri, 1, files[f]);
        char *text = slurp(files[f]);
        int line = 0, col = 0, k = 0;
        for (const char *p = text; *p; p++, col++) {
            if (*p == '\n') {
                line++;
                col = -1;
                continue;
            }
            if (k++ % step)
                continue;
            for (int q = 0; q < 3; q++) {
                json_t *r = json_pack("{s:s, s:i, s:s, s:{s:{s:s}, s:{s:i, s:i}}}", "jsonrpc", "2.0",
                                      "id", id, "method", methods[q], "params", "textDocument",
                                      "uri", uri, "position", "line", line, "character", col);
                send_json(r);
                json_decref(r);
                json_t *a = answer(id);
                if (!a || json_object_get(a, "error")) {
                    char *g = a ? json_dumps(a, JSON_COMPACT) : strdup("(nothing: did it crash?)");
                    fprintf(stderr, "%s:%d:%d: %s got %s\n", files[f], line + 1, col + 1, methods[q], g);
                    free(g);
                    kill(server, SIGKILL);
                    return 1;
                }
                json_decref(a);
                id++;
                asked++;
            }
        }
        json_t *c = json_pack("{s:s, s:s, s:{s:{s:s}}}", "jsonrpc", "2.0", "method",
                              "textDocument/didClose", "params", "textDocument", "uri", uri);
        send_json(c);
        json_decref(c);
        free(text);
        free(uri);
    }
    int st = finish();
    printf("%d requests answered\n", asked);
    return st != 0;
}

/* --json FILE...: each file is JSON (editor files, the problem matcher). */
static int check_json(int n, char **files)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        json_error_t err;
        json_t *j = json_load_file(files[i], JSON_REJECT_DUPLICATES, &err);
        if (!j) {
            fprintf(stderr, "%s:%d:%d: %s\n", files[i], err.line, err.column, err.text);
            bad = 1;
        }
        json_decref(j);
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc > 2 && strcmp(argv[1], "--json") == 0)
        return check_json(argc - 2, argv + 2);
    if (argc > 4 && strcmp(argv[1], "--stress") == 0)
        return stress(argv[2], atoi(argv[3]) > 0 ? atoi(argv[3]) : 1, argc - 4, argv + 4);
    if (argc == 5 && strcmp(argv[1], "--bench") == 0)
        return bench(argv[2], argv[3], atoi(argv[4]) > 0 ? atoi(argv[4]) : 1);
    if (argc != 3) {
        fprintf(stderr, "usage: lsp_client FLOWC SCRIPT | lsp_client --bench FLOWC FILE N\n");
        return 2;
    }
    return play(argv[1], argv[2]);
}
