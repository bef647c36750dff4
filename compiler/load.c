/*
 * load.c: finding and loading .flow files.
 *
 * flowc_load() is the front end as one call: it reads a file, parses it,
 * loads each import once (a path relative to the importing file, `.flow`
 * optional, else a stdlib module), and type-checks the whole only if
 * everything parsed, so a syntax error is never followed by type errors that
 * it caused.  flowc_exe_dir() and flowc_stdlib_dir() say where flowc itself,
 * and the stdlib it imports from, are.
 */
#include "flowc.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- where things are ------------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

const char *flowc_exe_dir(void)
{
    static char dir[PATH_MAX];
    if (dir[0])
        return dir;
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0) {
        strcpy(dir, ".");
        return dir;
    }
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = '\0';
    else if (slash)
        slash[1] = '\0';
    return dir;
}

/* FLOWC_STDLIB, else the build tree's stdlib/ (from build/ or build/asan/),
 * else PREFIX/share/flowc/stdlib beside PREFIX/bin. */
const char *flowc_stdlib_dir(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("FLOWC_STDLIB");
    if (env && *env)
        return env;
    if (dir[0])
        return dir;
    static const char *const tries[] = { "/../stdlib", "/../../stdlib", "/../share/flowc/stdlib" };
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        snprintf(dir, sizeof dir, "%s%s", flowc_exe_dir(), tries[i]);
        if (is_dir(dir)) {
            char real[PATH_MAX];
            if (realpath(dir, real))
                snprintf(dir, sizeof dir, "%s", real);
            return dir;
        }
    }
    snprintf(dir, sizeof dir, "%s/../share/flowc/stdlib", flowc_exe_dir());
    return dir;
}

/* ---- command-line files ----------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends the *.flow files under dir (recursively, in name order; hidden
 * directories and symbolic links to directories are skipped) to files. */
static bool flow_files_in(const char *dir, Vec *files)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "flowc: cannot read directory %s: %s\n", dir, strerror(errno));
        return false;
    }
    Vec names = { 0 };
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            vec_push(&names, arena_strdup(e->d_name));
    closedir(d);
    qsort(names.items, (size_t)names.len, sizeof(char *), cmp_str);
    bool ok = true;
    for (int i = 0; i < names.len; i++) {
        const char *name = names.items[i];
        size_t n = strlen(name);
        char *path = arena_printf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            ok &= flow_files_in(path, files);
        else if (n > 5 && strcmp(name + n - 5, ".flow") == 0 && (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)))
            vec_push(files, path);
    }
    return ok;
}

/* The files of the command line, directories expanded to their *.flow files. */
bool flowc_expand_args(char **args, int n, Vec *files)
{
    bool ok = true;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(args[i], &st) == 0 && S_ISDIR(st.st_mode))
            ok &= flow_files_in(args[i], files);
        else
            vec_push(files, args[i]);
    }
    return ok;
}

/* ---- loading ------------------------------------------------------------------- */

typedef struct Loaded {
    const char *real;                            /* realpath of the file (canonical()) */
    const char *path;                            /* the path it was asked for by */
    int file;                                    /* its source index */
} Loaded;

static Vec loaded;                               /* Loaded*: files of this flowc_load */

static int find_loaded(const char *real)
{
    for (int i = 0; i < loaded.len; i++) {
        Loaded *l = loaded.items[i];
        if (strcmp(l->real, real) == 0)
            return l->file;
    }
    return -1;
}

/* ---- where files are read from ------------------------------------------------ */

static const FlowcReader *reader;                /* NULL: the disk */

void flowc_set_reader(const FlowcReader *r)
{
    reader = r;
}

static bool file_exists(const char *path)
{
    int r = reader && reader->exists ? reader->exists(reader->ctx, path) : -1;
    return r >= 0 ? r == 1 : is_file(path);
}

/* The name a file is known by, to load it once: its real path, or (a file
 * only a reader has) the real path of its directory and its name. */
static const char *canonical(const char *path)
{
    char real[PATH_MAX];
    if (realpath(path, real))
        return arena_strdup(real);
    const char *slash = strrchr(path, '/');
    char *dir = slash ? arena_strndup(path, (size_t)(slash - path)) : ".";
    if (slash == path)
        dir = "/";
    if (realpath(dir, real))
        return arena_printf("%s/%s", real, slash ? slash + 1 : path);
    return path;
}

/* The file an import names: beside the importing file, then in the stdlib;
 * with and without ".flow".  NULL if none exists. */
static const char *resolve_import(const char *from, const char *name)
{
    const char *slash = strrchr(from, '/');
    const char *dir = slash ? arena_strndup(from, (size_t)(slash - from) + 1) : "";
    const char *cands[4];
    int n = 0;
    if (name[0] == '/') {
        cands[n++] = name;
        cands[n++] = arena_printf("%s.flow", name);
    } else {
        cands[n++] = arena_printf("%s%s.flow", dir, name);     /* dir is "" or ends in '/' */
        cands[n++] = arena_printf("%s%s", dir, name);
        cands[n++] = arena_printf("%s/%s.flow", flowc_stdlib_dir(), name);
        cands[n++] = arena_printf("%s/%s", flowc_stdlib_dir(), name);
    }
    for (int i = 0; i < n; i++)
        if (file_exists(cands[i]))
            return cands[i];
    return NULL;
}

static bool load_file(Program *p, const char *path, Span from);

/* The path a loaded file was asked for by (a reader's display name differs). */
static const char *loaded_path(int file)
{
    for (int i = 0; i < loaded.len; i++) {
        Loaded *l = loaded.items[i];
        if (l->file == file)
            return l->path;
    }
    return src_get(file)->path;
}

/* Loads the imports among decls [first, last) of one file. */
static bool load_imports(Program *p, int file, int first, int last)
{
    bool ok = true;
    for (int i = first; i < last; i++) {
        Decl *d = p->decls.items[i];
        if (d->kind != D_IMPORT || !d->name || !*d->name)
            continue;
        const char *path = resolve_import(loaded_path(file), d->name);
        if (!path) {
            diag_error(d->name_span, E0301, "cannot find module '%s'", d->name);
            diag_help("an import is a path relative to this file ('.flow' optional) "
                      "or a module of the standard library (see FLOWC_STDLIB)");
            ok = false;
            continue;
        }
        ok &= load_file(p, path, d->name_span);
    }
    return ok;
}

/* Reads one file into the source table (from the reader, or the disk); -1
 * after an error (said at from). */
static int read_file(const char *path, Span from)
{
    if (reader) {
        char *text = NULL;
        size_t len = 0;
        const char *err = NULL;
        int r = reader->read(reader->ctx, path, &text, &len, &err);
        if (r < 0) {
            diag_error(from, E0302, "cannot read '%s': %s", reader->display(reader->ctx, path),
                       err ? err : "failed");
            return -1;
        }
        if (r > 0) {
            int file = src_add(reader->display(reader->ctx, path), text, len);
            free(text);
            return file;
        }
    }
    char real[PATH_MAX];
    if (!realpath(path, real) || !is_file(real)) {
        int err = errno;
        diag_error(from, E0302, "cannot read '%s': %s", path, is_dir(path) ? "is a directory" : strerror(err));
        return -1;
    }
    int file = src_load(path);
    if (file < 0)
        diag_error(from, E0302, "cannot read '%s': %s", path, strerror(errno));
    return file;
}

/* Reads and parses one file (once), then its imports. */
static bool load_file(Program *p, const char *path, Span from)
{
    const char *key = canonical(path);
    if (find_loaded(key) >= 0)
        return true;
    int file = read_file(path, from);
    if (file < 0)
        return false;
    Loaded *l = arena_alloc(sizeof *l);
    l->real = key;
    l->path = arena_strdup(path);
    l->file = file;
    vec_push(&loaded, l);
    vec_push(&p->files, (void *)(intptr_t)file);
    int first = p->decls.len;
    if (!parse_file(p, file))
        return false;                            /* its imports may be what the error garbled */
    return load_imports(p, file, first, p->decls.len);
}

bool flowc_load(Program *p, char *const *files, int nfiles)
{
    memset(&loaded, 0, sizeof loaded);
    int before = diag_error_count();             /* one process may load several programs */
    bool ok = true;
    for (int i = 0; i < nfiles; i++)
        ok &= load_file(p, files[i], no_span);
    ok = ok && diag_error_count() == before && sema_check(p);
    if (ok && p->files.len)
        lint_program(p, (int)(intptr_t)p->files.items[0]);
    if (ok && diag_error_count() == before)
        est_warn_budgets(p);
    ok = ok && diag_error_count() == before;
    diag_flush();
    return ok;
}
