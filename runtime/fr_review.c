/*
 * fr_review.c: handing items to a person, and items that were lost.
 *
 * escalate() appends one JSON line {item, why, where, phase, path} to
 * <workflow>.review.jsonl in the working directory, counts it and then acts
 * as skip; the run summary points at the file.  The item also lands in the
 * journal's review queue.  approve() is the journal's (fr_journal_approve).
 *
 * An item that an `on_error: skip` fan-out drops after an error is not lost
 * silently: it gets one JSON line in <workflow>.skipped.jsonl,
 *   {"run", "item" (its path), "fanout" (where the fan-out is), "file" and
 *    "line" (the input line it was read from, when known), "input" (the
 *    item), "error", "where" (where the error happened)}
 * flushed at once, so a run killed later keeps it.  `--resume
 * --retry-skipped` runs a finished run again: what the journal holds is
 * answered from it, so only the skipped items' calls are made again.
 *
 * A previous run's files are truncated when a run starts; each is created on
 * its first line.
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
    return fr_shard_on() ? fr_shard_part_of(p) : p;
}

char *fr_skipped_path(const fr_program *prog)
{
    size_t n = strlen(prog->name) + sizeof ".skipped.jsonl";
    char *p = fr_malloc(n);
    if (p)
        snprintf(p, n, "%s.skipped.jsonl", prog->name);
    return fr_shard_on() ? fr_shard_part_of(p) : p;
}

static bool reset_file(char *path)
{
    bool ok = path != NULL;
    if (ok && access(path, F_OK) == 0)
        ok = truncate(path, 0) == 0;
    fr_free(path);
    return ok;
}

bool fr_review_reset(fr_run *run)
{
    bool ok = reset_file(fr_review_path(run->prog));
    return reset_file(fr_skipped_path(run->prog)) && ok;
}

void fr_review_close(fr_run *run)
{
    if (run->review)
        fclose(run->review);
    run->review = NULL;
    if (run->skipped)
        fclose(run->skipped);
    run->skipped = NULL;
}

/* ---- the skipped file ---------------------------------------------------- */

/* The skipped item as one compact JSON line (malloc'd), or NULL. */
static char *skipped_line(fr_ctx *c, const char *fanout, const char *file, long line)
{
    bool known = file != NULL;
    json_t *o = json_object();
    json_object_set_new(o, "run", json_string(fr_journal_run_tag(c->run)));
    json_object_set_new(o, "item", json_string(c->path));
    json_object_set_new(o, "fanout", fanout ? json_string(fanout) : json_null());
    if (known) {
        json_object_set_new(o, "file", json_string(file));
        json_object_set_new(o, "line", json_integer(line));
    }
    json_object_set_new(o, "input", fr_redact_json(c->run->redact, c->item ? c->item : json_null()));
    json_object_set_new(o, "error", json_string(c->err ? c->err : "failed"));
    fr_redact_json_text(c->run->redact, o, "error");
    json_object_set_new(o, "where", c->err_where ? json_string(c->err_where) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    return s;
}

void fr_skipped(fr_ctx *c, const char *fanout, json_t *list, size_t index)
{
    const char *file = NULL;
    long line = 0;
    if (!list || !fr_origin_of(c->run, list, index, &file, &line))
        file = NULL;
    fr_skipped_at(c, fanout, file, line);
}

void fr_skipped_at(fr_ctx *c, const char *fanout, const char *file, long lineno)
{
    fr_run *run = c->run;
    char *line = skipped_line(c, fanout, file, lineno);
    pthread_mutex_lock(&run->review_mu);
    if (!run->skipped && run->nskipped >= 0) {       /* < 0: it cannot be opened */
        char *path = fr_skipped_path(run->prog);
        run->skipped = path ? fopen(path, "w") : NULL;
        if (!run->skipped) {
            fprintf(stderr, "%swarning: cannot write %s: %s\n", run->progress ? "\r\033[K" : "",
                    path ? path : "the skipped file", strerror(errno));
            run->nskipped = -1;
        }
        fr_free(path);
    }
    if (run->skipped && line && fprintf(run->skipped, "%s\n", line) > 0
        && fflush(run->skipped) == 0)
        run->nskipped++;
    pthread_mutex_unlock(&run->review_mu);
    fr_free(line);
}

/* The escalation as one compact JSON line (malloc'd). */
static char *review_line(fr_ctx *cx, json_t *item, const char *why, const char *where)
{
    const fr_program *p = cx->run->prog;
    json_t *o = json_object();
    json_object_set_new(o, "item", fr_redact_json(cx->run->redact, item ? item : json_null()));
    json_object_set_new(o, "why", json_string(why ? why : ""));
    fr_redact_json_text(cx->run->redact, o, "why");
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
