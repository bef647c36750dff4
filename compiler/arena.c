/*
 * arena.c: one arena per compilation.
 *
 * Memory is handed out from large chunks by bumping a pointer; nothing is
 * freed piecemeal.  arena_free_all() returns every chunk at once, which is
 * how the fuzz harness runs thousands of compilations in one process.
 * Vec, the growable pointer array, and KeyMap, a hash map from pointers or
 * strings, live here too because they grow by copying into fresh arena
 * memory.
 */
#include "flowc.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_SIZE (256 * 1024)
#define ALIGN 16

typedef struct Chunk Chunk;
struct Chunk {
    Chunk *next;                                 /* the chunk allocated before this one */
    size_t size;                                 /* usable bytes in data */
    size_t used;                                 /* bytes handed out */
    _Alignas(ALIGN) unsigned char data[];        /* the memory */
};

static Chunk *chunks;                            /* newest first */

static Chunk *new_chunk(size_t need)
{
    size_t size = need > CHUNK_SIZE ? need : CHUNK_SIZE;
    Chunk *c = malloc(sizeof *c + size);
    if (!c) {
        fputs("flowc: out of memory\n", stderr);
        abort();
    }
    c->next = chunks;
    c->size = size;
    c->used = 0;
    chunks = c;
    return c;
}

void *arena_alloc(size_t n)
{
    n = (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    if (n == 0)
        n = ALIGN;
    Chunk *c = chunks;
    if (!c || c->size - c->used < n)
        c = new_chunk(n);
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(const char *s, size_t n)
{
    char *p = arena_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_strdup(const char *s)
{
    return arena_strndup(s, strlen(s));
}

char *arena_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void arena_free_all(void)
{
    while (chunks) {
        Chunk *next = chunks->next;
        free(chunks);
        chunks = next;
    }
}

void vec_push(Vec *v, void *item)
{
    if (v->len == v->cap) {
        int cap = v->cap ? v->cap * 2 : 4;
        void **items = arena_alloc(sizeof(void *) * (size_t)cap);
        if (v->len)
            memcpy(items, v->items, sizeof(void *) * (size_t)v->len);
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = item;
}

FILE *arena_memstream(char **buf, size_t *len)
{
    FILE *f = open_memstream(buf, len);
    if (!f) {
        fputs("flowc: out of memory\n", stderr);
        abort();
    }
    return f;
}

static size_t key_hash(const KeyMap *m, const void *k)
{
    size_t h;
    if (m->str) {
        h = 2166136261u;
        for (const unsigned char *p = k; *p; p++)
            h = (h ^ *p) * 16777619u;
    } else {
        uintptr_t x = (uintptr_t)k;
        h = (size_t)((x ^ (x >> 17)) * 0x9e3779b97f4a7c15u >> 7);
    }
    return h & (m->cap - 1);
}

static size_t key_slot(const KeyMap *m, const void *k)
{
    size_t i = key_hash(m, k);
    while (m->keys[i] && (m->str ? strcmp(m->keys[i], k) != 0 : m->keys[i] != k))
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *km_get(const KeyMap *m, const void *k)
{
    return m->cap ? m->vals[key_slot(m, k)] : NULL;
}

void km_put(KeyMap *m, const void *k, void *v)
{
    if ((m->len + 1) * 2 > m->cap) {
        KeyMap n = { NULL, NULL, m->cap ? m->cap * 2 : 16, 0, m->str };
        n.keys = arena_alloc(n.cap * sizeof *n.keys);
        n.vals = arena_alloc(n.cap * sizeof *n.vals);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i])
                km_put(&n, m->keys[i], m->vals[i]);
        *m = n;
    }
    size_t i = key_slot(m, k);
    if (!m->keys[i]) {
        m->keys[i] = k;
        m->len++;
    }
    m->vals[i] = v;
}
