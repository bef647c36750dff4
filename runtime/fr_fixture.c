/*
 * fr_fixture.c: the mock's canned answers (--mock-fixtures FILE), to test a
 * workflow's own logic (a router's arms, a critic loop's exit) offline.
 *
 * FILE is JSON Lines, a fixture a line:
 *   {"agent": "classify", "when": {"sub.page": "/pricing"}, "answer": {...}}
 * A mocked call of an agent answers with the first fixture of that agent
 * (in file order) whose `when` holds: each key is a parameter's name,
 * then fields by their names in the data, joined by '.', and its value
 * equals the argument's value there (JSON equality; 3 and 3.0 differ); a
 * fixture without `when` holds for every call of its agent.  The answer is
 * checked as a model's would be (a bad one is retried, then fails the
 * call).  A call no fixture holds for gets the mock's synthesized answer
 * and is reported; so is a fixture no call used.  The report goes to
 * stderr when the run ends, one line each, starting "fixtures: ".
 */
#include "fr_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

typedef struct fixture {
    char *agent;                   /* whose calls it answers (malloc'd) */
    json_t *when;                  /* path -> value, or NULL: every call */
    json_t *answer;                /* the answer */
    long line;                     /* its line in the file */
    int uses;                      /* calls it answered (atomic) */
} fixture;

struct fr_fixtures {
    char *path;                    /* the file (malloc'd) */
    fixture *list;                 /* in file order */
    int n;                         /* how many */
    pthread_mutex_t mu;            /* guards missed */
    fr_buf missed;                 /* "fixtures: call ..." lines */
};

void fr_fixtures_free(fr_fixtures *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++) {
        fr_free(f->list[i].agent);
        json_decref(f->list[i].when);
        json_decref(f->list[i].answer);
    }
    fr_free(f->list);
    fr_free(f->path);
    fr_buf_free(&f->missed);
    pthread_mutex_destroy(&f->mu);
    fr_free(f);
}

/* One line's fixture into f; false with why. */
static bool parse_one(fr_fixtures *f, const fr_program *p, json_t *o, long line, fr_buf *why)
{
    const char *agent = json_string_value(json_object_get(o, "agent"));
    json_t *when = json_object_get(o, "when"), *answer = json_object_get(o, "answer");
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
        if (strcmp(k, "agent") != 0 && strcmp(k, "when") != 0 && strcmp(k, "answer") != 0) {
            fr_buf_printf(why, "unknown key '%s' (a fixture has agent, when and answer)", k);
            return false;
        }
    if (!agent) {
        fr_buf_puts(why, "no \"agent\": the name of the agent it answers");
        return false;
    }
    const fr_agent *ag = NULL;
    for (int i = 0; i < p->nagents && !ag; i++)
        if (strcmp(p->agents[i]->name, agent) == 0)
            ag = p->agents[i];
    if (!ag) {
        fr_buf_printf(why, "%s has no agent '%s'", p->name, agent);
        return false;
    }
    if (!answer) {
        fr_buf_puts(why, "no \"answer\": the value the agent returns");
        return false;
    }
    if (when && !json_is_object(when)) {
        fr_buf_puts(why, "\"when\" must be an object of \"param.field\": value");
        return false;
    }
    json_object_foreach(when, k, v) {          /* each path starts at a parameter */
        size_t n = strcspn(k, ".");
        bool param = false;
        for (int i = 0; i < ag->nparams && !param; i++)
            param = strlen(ag->param_names[i]) == n && strncmp(ag->param_names[i], k, n) == 0;
        if (!param) {
            fr_buf_printf(why, "\"when\" key '%s': agent '%s' has no parameter '%.*s' (its"
                          " parameters:", k, agent, (int)n, k);
            for (int i = 0; i < ag->nparams; i++)
                fr_buf_printf(why, " %s", ag->param_names[i]);
            fr_buf_puts(why, ")");
            return false;
        }
    }
    fixture *x = &f->list[f->n];
    x->agent = fr_strdup(agent);
    x->when = json_incref(when);
    x->answer = json_incref(answer);
    x->line = line;
    f->n++;
    return x->agent != NULL;
}

fr_fixtures *fr_fixtures_load(const char *path, const fr_program *p, fr_buf *err)
{
    FILE *in = fopen(path, "r");
    if (!in) {
        fr_buf_printf(err, "--mock-fixtures %s: %s", path, strerror(errno));
        return NULL;
    }
    fr_fixtures *f = fr_calloc(1, sizeof *f);
    if (!f) {
        fclose(in);
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    f->path = fr_strdup(path);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    long line = 0;
    bool ok = f->path != NULL;
    while (ok && (got = getline(&buf, &cap, in)) >= 0) {
        line++;
        size_t n = (size_t)got;
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
            n--;
        if (n == 0)
            continue;
        json_error_t je;
        json_t *o = json_loadb(buf, n, 0, &je);
        fr_buf why = { 0 };
        fixture *grown = fr_realloc(f->list, (size_t)(f->n + 1) * sizeof *grown);
        if (grown)
            f->list = grown, memset(&f->list[f->n], 0, sizeof *grown);
        if (!o || !json_is_object(o))
            fr_buf_puts(&why, o ? "a fixture is a JSON object" : je.text);
        ok = grown && o && json_is_object(o) && parse_one(f, p, o, line, &why);
        if (!ok)
            fr_buf_printf(err, "--mock-fixtures %s:%ld: %s", path, line, why.s ? why.s : "out of memory");
        fr_buf_free(&why);
        json_decref(o);
    }
    free(buf);
    fclose(in);
    if (!ok) {
        fr_fixtures_free(f);
        return NULL;
    }
    return f;
}

/* The argument value at path ("sub.page": parameter sub, field page). */
static json_t *value_at(const fr_request *req, const char *path)
{
    const fr_agent *a = req->agent;
    const char *dot = strchr(path, '.');
    size_t n = dot ? (size_t)(dot - path) : strlen(path);
    json_t *v = NULL;
    for (int i = 0; i < a->nparams && !v; i++)
        if (strlen(a->param_names[i]) == n && strncmp(a->param_names[i], path, n) == 0)
            v = req->args ? req->args[i] : NULL;
    while (v && dot) {
        const char *key = dot + 1;
        dot = strchr(key, '.');
        n = dot ? (size_t)(dot - key) : strlen(key);
        char k[256];
        if (n >= sizeof k)
            return NULL;
        memcpy(k, key, n);
        k[n] = '\0';
        v = json_object_get(v, k);
    }
    return v;
}

static bool holds(const fixture *x, const fr_request *req)
{
    const char *k;
    json_t *want;
    json_object_foreach(x->when, k, want) {
        json_t *got = value_at(req, k);
        if (!got)
            got = json_null();                   /* an absent optional is null */
        if (!json_equal(got, want))
            return false;
    }
    return true;
}

json_t *fr_fixtures_answer(fr_fixtures *f, const fr_request *req)
{
    for (int i = 0; f && i < f->n; i++) {
        fixture *x = &f->list[i];
        if (strcmp(x->agent, req->agent->name) == 0 && holds(x, req)) {
            __atomic_add_fetch(&x->uses, 1, __ATOMIC_RELAXED);
            return x->answer;
        }
    }
    if (f && req->attempt == 0) {
        pthread_mutex_lock(&f->mu);
        fr_buf_printf(&f->missed, "fixtures: call of agent '%s' (item %s) matched no fixture;"
                      " the mock answered it\n", req->agent->name,
                      req->item && *req->item ? req->item : "none");
        pthread_mutex_unlock(&f->mu);
    }
    return NULL;
}

int fr_fixtures_report(fr_fixtures *f)
{
    if (!f)
        return 0;
    int n = 0;
    if (f->missed.s) {
        fputs(f->missed.s, stderr);
        for (const char *p = f->missed.s; (p = strchr(p, '\n')); p++)
            n++;
    }
    for (int i = 0; i < f->n; i++)
        if (__atomic_load_n(&f->list[i].uses, __ATOMIC_RELAXED) == 0) {
            fprintf(stderr, "fixtures: fixture at %s:%ld (agent '%s') matched no call\n",
                    f->path, f->list[i].line, f->list[i].agent);
            n++;
        }
    return n;
}
