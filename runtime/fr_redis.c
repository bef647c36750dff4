/*
 * fr_redis.c: the rate limits and budgets that N processes share, in Redis.
 *
 * With FLOWRT_REDIS_URL set (redis://[:PASSWORD@]HOST[:PORT][/DB]), every
 * process pacing requests to one endpoint (its URL and key variable) takes
 * its send slots from one schedule in Redis, and the shards of one run hold
 * and settle their calls' worst cases against one ledger there.  Both are
 * Lua scripts, so each step is atomic however many processes run at once:
 *
 *   slot     a GCRA over up to four dimensions (requests, tokens, input and
 *            output tokens): the send time is the latest of now (Redis's
 *            clock, TIME, so the machines' clocks do not matter) and each
 *            dimension's theoretical arrival time; each is then pushed on by
 *            the request's cost over the dimension's rate.  No burst: the
 *            caller waits until its slot.  The rates are 90% of the limits
 *            the caller's local limiter knows (declared, or stated by the
 *            provider; a rate learned from 429s only without one); with
 *            nothing known the shared schedule is not used and each
 *            process keeps its own slow start, so that one late process's
 *            guess does not hold back the others;
 *   reserve  a hash per budget (the workflow's, each phase's) holds, per
 *            shard, what it spent and what it holds; a hold fits when every
 *            shard's spent and held plus it stays within the cap, and is
 *            then added to this shard's held, all or nothing;
 *   settle   the hold leaves held and the charge joins spent.
 *
 * Money is counted in nano-dollars (integers).  A shard that starts (fresh,
 * or resuming its journal) sets its own spent to what its journal counts
 * and its held to zero, so the holds of a killed process do not stay.
 *
 * hiredis is loaded with dlopen on first use, as libcurl is: a binary that
 * never sets FLOWRT_REDIS_URL does not load it.  Calls are blocking on one
 * connection under a mutex, with a 2 s timeout.  When Redis cannot be
 * reached at the start, or stops answering during the run, the process says
 * so once and goes on alone: 1/N of every rate limit, and of each budget
 * what was left when it last reached Redis divided by N (fr_budget.c).
 */
#include "fr_internal.h"

#include <dlfcn.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct api {
    redisContext *(*connect)(const char *ip, int port, const struct timeval tv);
    int (*set_timeout)(redisContext *c, const struct timeval tv);
    void *(*command_argv)(redisContext *c, int argc, const char **argv, const size_t *len);
    void (*free_reply)(void *reply);
    void (*free_ctx)(redisContext *c);
} api;

static struct {
    pthread_mutex_t mu;            /* guards the connection */
    api f;                         /* hiredis, loaded */
    redisContext *c;               /* the connection, NULL once gone */
    bool on;                       /* Redis answers: limits (and budgets) are shared */
    bool said;                     /* its loss was said */
    char where[256];               /* host:port, for messages */
    char group[160];               /* the run's group: keys "flowrt:<group>:..." */
    void (*lost)(void);            /* called once when Redis goes (fr_budget.c) */
} R = { .mu = PTHREAD_MUTEX_INITIALIZER };

static bool load(char *why, size_t cap)
{
    static const char *const names[] = { "libhiredis.so.0.14", "libhiredis.so.1.1.0",
                                         "libhiredis.so.1.0.0", "libhiredis.so" };
    void *h = NULL;
    for (size_t i = 0; !h && i < sizeof names / sizeof names[0]; i++)
        h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(why, cap, "cannot load libhiredis (install Debian's libhiredis0.14): %s",
                 dlerror());
        return false;
    }
    *(void **)&R.f.connect = dlsym(h, "redisConnectWithTimeout");
    *(void **)&R.f.set_timeout = dlsym(h, "redisSetTimeout");
    *(void **)&R.f.command_argv = dlsym(h, "redisCommandArgv");
    *(void **)&R.f.free_reply = dlsym(h, "freeReplyObject");
    *(void **)&R.f.free_ctx = dlsym(h, "redisFree");
    if (!R.f.connect || !R.f.set_timeout || !R.f.command_argv || !R.f.free_reply ||
        !R.f.free_ctx) {
        snprintf(why, cap, "libhiredis lacks a function this runtime needs");
        return false;
    }
    return true;
}

/* (R.mu held) a command; NULL when the connection failed (it is then gone). */
static redisReply *cmd(int argc, const char **argv, const size_t *len)
{
    if (!R.c)
        return NULL;
    redisReply *r = R.f.command_argv(R.c, argc, argv, len);
    if (!r || R.c->err) {
        if (r)
            R.f.free_reply(r);
        if (!R.said)
            fprintf(stderr, "warning: Redis at %s stopped answering (%s): this process goes "
                    "on alone%s\n", R.where, R.c->errstr[0] ? R.c->errstr : "no reply",
                    fr_shard_on() ? ", with 1/N of each rate limit and of what was left of "
                    "each budget" : "");
        R.said = true;
        R.f.free_ctx(R.c);
        R.c = NULL;
        R.on = false;
        fr_shard_set_shared(false);
        return NULL;
    }
    return r;
}

/* redis://[:PASSWORD@]HOST[:PORT][/DB] */
static bool parse_url(const char *url, char *host, size_t hcap, int *port, char *pw,
                      size_t pcap, int *db)
{
    const char *s = url;
    if (strncmp(s, "redis://", 8) != 0)
        return false;
    s += 8;
    pw[0] = '\0';
    const char *at = strchr(s, '@');
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        const char *p = colon ? colon + 1 : s;
        snprintf(pw, pcap, "%.*s", (int)(at - p), p);
        s = at + 1;
    }
    size_t n = strcspn(s, ":/");
    if (n == 0 || n >= hcap)
        return false;
    snprintf(host, hcap, "%.*s", (int)n, s);
    s += n;
    *port = 6379, *db = 0;
    if (*s == ':') {
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (end == s + 1 || v <= 0 || v > 65535)
            return false;
        *port = (int)v;
        s = end;
    }
    if (*s == '/' && s[1]) {
        char *end;
        long v = strtol(s + 1, &end, 10);
        if (*end || v < 0)
            return false;
        *db = (int)v;
    }
    return true;
}

static bool simple(const char *a0, const char *a1, const char *a2)
{
    const char *argv[3] = { a0, a1, a2 };
    redisReply *r = cmd(a2 ? 3 : a1 ? 2 : 1, argv, NULL);
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r)
        R.f.free_reply(r);
    return ok;
}

bool fr_redis_setup(const char *group)
{
    const char *url = getenv("FLOWRT_REDIS_URL");
    if (!url || !*url)
        return false;
    char host[200], pw[200], why[300] = "";
    int port, db;
    snprintf(R.group, sizeof R.group, "%s", group);
    if (!parse_url(url, host, sizeof host, &port, pw, sizeof pw, &db)) {
        fprintf(stderr, "warning: FLOWRT_REDIS_URL is not redis://[:PASSWORD@]HOST[:PORT][/DB]:"
                " limits and budgets are not shared%s\n", fr_shard_on() ? "; this shard takes "
                "1/N of each" : "");
        return false;
    }
    snprintf(R.where, sizeof R.where, "%s:%d", host, port);
    bool ok = load(why, sizeof why);
    struct timeval tv = { 2, 0 };
    if (ok && !(R.c = R.f.connect(host, port, tv)))
        snprintf(why, sizeof why, "out of memory"), ok = false;
    if (ok && R.c->err)
        snprintf(why, sizeof why, "%s", R.c->errstr), ok = false;
    if (ok)
        R.f.set_timeout(R.c, tv);
    pthread_mutex_lock(&R.mu);
    R.said = true;                         /* the start's failure is said below */
    if (ok && pw[0] && !simple("AUTH", pw, NULL))
        snprintf(why, sizeof why, "AUTH refused"), ok = false;
    char dbs[16];
    snprintf(dbs, sizeof dbs, "%d", db);
    if (ok && db && !simple("SELECT", dbs, NULL))
        snprintf(why, sizeof why, "SELECT %d refused", db), ok = false;
    if (ok && !simple("PING", NULL, NULL))
        snprintf(why, sizeof why, "no answer to PING"), ok = false;
    R.said = false;
    R.on = ok;
    pthread_mutex_unlock(&R.mu);
    if (!ok) {
        if (R.c)
            R.f.free_ctx(R.c);
        R.c = NULL;
        R.said = true;
        fprintf(stderr, "warning: cannot reach Redis at %s (FLOWRT_REDIS_URL): %s; this "
                "process goes on alone%s\n", R.where, why, fr_shard_on() ? ", with 1/N of each "
                "rate limit and budget" : "");
    }
    return ok;
}

bool fr_redis_on(void)
{
    return R.on;
}

const char *fr_redis_group(void)
{
    return R.group;
}

void fr_redis_on_lost(void (*fn)(void))
{
    R.lost = fn;
}

/* EVAL script with keys and integer arguments; the integers of its array
 * reply into out (at most nout); false when Redis is gone (R.lost called). */
bool fr_redis_eval(const char *script, int nkeys, const char *const *keys, int nargs,
                   const char *const *args, long long *out, int nout, int *got)
{
    const char *argv[16];
    char nk[16];
    if (3 + nkeys + nargs > 16)
        return false;
    snprintf(nk, sizeof nk, "%d", nkeys);
    int argc = 0;
    argv[argc++] = "EVAL", argv[argc++] = script, argv[argc++] = nk;
    for (int i = 0; i < nkeys; i++)
        argv[argc++] = keys[i];
    for (int i = 0; i < nargs; i++)
        argv[argc++] = args[i];
    pthread_mutex_lock(&R.mu);
    redisReply *r = R.on ? cmd(argc, argv, NULL) : NULL;
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (r && r->type == REDIS_REPLY_ERROR && !R.said) {
        fprintf(stderr, "warning: Redis at %s refused a script (%.*s): this process goes on "
                "alone\n", R.where, (int)r->len, r->str);
        R.said = true;
        R.on = false;
        fr_shard_set_shared(false);
    }
    *got = 0;
    if (ok && r->type == REDIS_REPLY_INTEGER && nout > 0)
        out[(*got)++] = r->integer;
    for (size_t i = 0; ok && r->type == REDIS_REPLY_ARRAY && i < r->elements && *got < nout;
         i++)
        out[(*got)++] = r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                        : r->element[i]->str ? atoll(r->element[i]->str) : 0;
    if (r)
        R.f.free_reply(r);
    bool lost = !ok && !R.on;
    void (*fn)(void) = R.lost;
    pthread_mutex_unlock(&R.mu);
    if (lost && fn)
        fn();
    return ok;
}

/* ---- the shared schedule of an endpoint ----------------------------------- */

static const char SLOT[] =
    "pcall(redis.replicate_commands)\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local start = now\n"
    "for i = 1, 4 do\n"
    "  local tat = tonumber(redis.call('HGET', KEYS[1], 'd' .. i) or '0')\n"
    "  if tonumber(ARGV[i]) > 0 and tat > start then start = tat end\n"
    "end\n"
    "for i = 1, 4 do\n"
    "  local iv = tonumber(ARGV[i])\n"
    "  if iv > 0 then redis.call('HSET', KEYS[1], 'd' .. i, start + iv) end\n"
    "end\n"
    "redis.call('PEXPIRE', KEYS[1], 3600000)\n"
    "return start - now\n";

int64_t fr_redis_slot(const char *name, const double rate[4], const double cost[4])
{
    char key[400], iv[4][32];
    const char *args[4];
    bool any = false;
    for (int i = 0; i < 4; i++) {
        double us = rate[i] > 0 && cost[i] > 0 ? cost[i] / rate[i] * 1e6 : 0;
        snprintf(iv[i], sizeof iv[i], "%.0f", us);
        args[i] = iv[i];
        any = any || us > 0;
    }
    if (!any)
        return 0;                          /* nothing known to pace by */
    snprintf(key, sizeof key, "flowrt:limit:%s", name);
    const char *keys[1] = { key };
    long long wait = 0;
    int got;
    if (!fr_redis_eval(SLOT, 1, keys, 4, args, &wait, 1, &got) || got < 1)
        return -1;
    return wait;
}
