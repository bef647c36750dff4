/*
 * fr_review.c: handing items to a person.  escalate() appends one JSON line
 * {item, why, where, phase, path} to <workflow>.review.jsonl in the working
 * directory, counts it and then acts as skip; the run summary points at the
 * file.  A previous run's file is truncated when a run starts; the file is
 * created on the first escalation; the item also lands in the journal's
 * review queue.  approve() is the journal's (fr_journal_approve).
 */
#include "fr_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

char *fr_review_path(const fr_program *prog)
{
    size_t n = strlen(prog->name) + sizeof ".review.jsonl";
    char *p = fr_malloc(n);
    if (p)
        snprintf(p, n, "%s.review.jsonl", prog->name);
    return p;
}

bool fr_review_reset(fr_run *run)
{
    char *path = fr_review_path(run->prog);
    bool ok = path != NULL;
    if (ok && access(path, F_OK) == 0)
        ok = truncate(path, 0) == 0;
    fr_free(path);
    return ok;
}

void fr_review_close(fr_run *run)
{
    if (run->review)
        fclose(run->review);
    run->review = NULL;
}

/* The escalation as one compact JSON line (malloc'd). */
static char *review_line(fr_ctx *cx, json_t *item, const char *why, const char *where)
{
    const fr_program *p = cx->run->prog;
    json_t *o = json_object();
    json_object_set(o, "item", item ? item : json_null());
    json_object_set_new(o, "why", json_string(why ? why : ""));
    json_object_set_new(o, "where", where ? json_string(where) : json_null());
    json_object_set_new(o, "phase", cx->phase >= 0 && cx->phase < p->nphases
                        ? json_string(p->phases[cx->phase].name) : json_null());
    json_object_set_new(o, "path", json_string(cx->path));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

/* escalate(x, "why"): the item goes to <workflow>.review.jsonl, then skip. */
void *fr_escalate(fr_ctx *cx, json_t *item, const char *why, const char *where)
{
    fr_run *run = cx->run;
    char *line = review_line(cx, item ? item : cx->item, why, where);
    pthread_mutex_lock(&run->review_mu);
    if (!run->review) {
        char *path = fr_review_path(run->prog);
        run->review = path ? fopen(path, "w") : NULL;
        fr_free(path);
    }
    bool ok = run->review && line && fprintf(run->review, "%s\n", line) > 0
              && fflush(run->review) == 0;
    int e = errno;
    if (ok)
        run->escalated++;
    pthread_mutex_unlock(&run->review_mu);
    fr_free(line);
    /* [journal hook] escalated items also land in the journal's review queue */
    if (ok)
        fr_journal_escalated(cx, item, why, where);
    if (!ok)
        return fr_fail(cx, where, "cannot write the review file: %s", strerror(e));
    return fr_skip(cx);
}

/* approve(xs, "title"): needs the journal to pause and resume the run. */
json_t *fr_approve(fr_ctx *cx, json_t *list, json_t *title, int site, const char *where)
{
    return fr_journal_approve(cx, list, title, site, where);
}
