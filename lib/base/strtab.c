/* strtab.c — append-only interning: arena-allocated strings, a two-level slot directory, a private
 * index. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "strtab.h"
#include "tally/tally.h"

#define CHUNK_BITS 16
#define CHUNK_SLOTS (1u << CHUNK_BITS)
#define DIR_SLOTS 4096u /* 2^28 ids in all */
#define ARENA_BYTES (64u * 1024u)

typedef struct entry {
    uint32_t len;
    char data[]; /* len bytes + NUL; entries are 4-byte aligned */
} entry_t;

/* An index slot: id + 1 in the low 28 bits (0 = empty), and the top 4
 * bits of the string's hash, so that a probe passing other strings seldom
 * has to read them. Ids stay below 2^28 - 1. */
#define SLOT_ID_BITS 28
#define SLOT_ID(v) ((v) & ((1u << SLOT_ID_BITS) - 1))
#define SLOT_TAG(h) ((h) >> SLOT_ID_BITS << SLOT_ID_BITS)
#define MAX_IDS ((1u << SLOT_ID_BITS) - 1)

typedef struct arena {
    struct arena *next;
    size_t used;
    char mem[];
} arena_t;

struct tally__strtab {
    entry_t **dir[DIR_SLOTS]; /* dir[id >> 16][id & 0xffff] */
    uint32_t count;
    /* writer-private index: id + 1 per slot, 0 = empty */
    uint32_t *index;
    uint32_t index_mask;
    arena_t *arena;
    arena_t *big; /* blocks of one large string each */
    size_t bytes;
};

/* The index's hash: private and never stored, so the fast one (ids.h). */
static inline uint32_t
index_hash(const void *s, size_t len)
{
    return (uint32_t)tally__hash_fast(s, len);
}

int
tally__strtab_create(tally__strtab_t **out)
{
    tally__strtab_t *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->index_mask = 1023;
    t->index = calloc(t->index_mask + 1, sizeof *t->index);
    if (!t->index) {
        free(t);
        return -ENOMEM;
    }
    t->bytes = sizeof *t + (t->index_mask + 1) * sizeof *t->index;
    *out = t;
    return 0;
}

void
tally__strtab_destroy(tally__strtab_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < DIR_SLOTS; i++)
        free(t->dir[i]);
    for (arena_t *a = t->arena, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    for (arena_t *a = t->big, *next; a; a = next) {
        next = a->next;
        free(a);
    }
    free(t->index);
    free(t);
}

static entry_t *
slot_get(const tally__strtab_t *t, uint32_t id)
{
    entry_t **chunk = __atomic_load_n(&t->dir[id >> CHUNK_BITS], __ATOMIC_ACQUIRE);
    if (!chunk)
        return NULL;
    return __atomic_load_n(&chunk[id & (CHUNK_SLOTS - 1)], __ATOMIC_ACQUIRE);
}

static int
index_grow(tally__strtab_t *t)
{
    uint32_t nmask = t->index_mask * 2 + 1;
    uint32_t *ni = calloc((size_t)nmask + 1, sizeof *ni);
    if (!ni)
        return -ENOMEM;
    for (uint32_t i = 0; i <= t->index_mask; i++) {
        uint32_t v = t->index[i];
        if (!v)
            continue;
        const entry_t *e = slot_get(t, SLOT_ID(v) - 1);
        uint32_t pos = index_hash(e->data, e->len) & nmask;
        while (ni[pos])
            pos = (pos + 1) & nmask;
        ni[pos] = v;
    }
    __atomic_fetch_add(&t->bytes, ((size_t)nmask - t->index_mask) * sizeof *ni, __ATOMIC_RELAXED);
    free(t->index);
    t->index = ni;
    t->index_mask = nmask;
    return 0;
}

static entry_t *
arena_alloc(tally__strtab_t *t, uint32_t len)
{
    size_t need = (sizeof(entry_t) + len + 1 + 3) & ~(size_t)3;
    if (need > ARENA_BYTES / 4) { /* large strings get their own block */
        arena_t *a = malloc(sizeof *a + need);
        if (!a)
            return NULL;
        a->used = need;
        a->next = t->big; /* never the current arena: it has no room */
        t->big = a;
        __atomic_fetch_add(&t->bytes, sizeof *a + need, __ATOMIC_RELAXED);
        return (entry_t *)a->mem;
    }
    if (!t->arena || t->arena->used + need > ARENA_BYTES) {
        arena_t *a = malloc(sizeof *a + ARENA_BYTES);
        if (!a)
            return NULL;
        a->used = 0;
        a->next = t->arena;
        t->arena = a;
        __atomic_fetch_add(&t->bytes, sizeof *a + ARENA_BYTES, __ATOMIC_RELAXED);
    }
    entry_t *e = (entry_t *)(t->arena->mem + t->arena->used);
    t->arena->used += need;
    return e;
}

int
tally__strtab_find(const tally__strtab_t *t, const void *s, uint32_t len, uint32_t *id)
{
    uint32_t h = index_hash(s, len);
    for (uint32_t pos = h & t->index_mask;; pos = (pos + 1) & t->index_mask) {
        uint32_t v = t->index[pos];
        if (!v)
            return 0;
        if ((v ^ h) >> SLOT_ID_BITS == 0) {
            entry_t *e = slot_get(t, SLOT_ID(v) - 1);
            if (e->len == len && memcmp(e->data, s, len) == 0) {
                *id = SLOT_ID(v) - 1;
                return 1;
            }
        }
    }
}

int
tally__strtab_intern(tally__strtab_t *t, const void *s, uint32_t len, uint32_t *id)
{
    uint32_t h = index_hash(s, len);
    uint32_t pos = h & t->index_mask;
    for (;;) {
        uint32_t v = t->index[pos];
        if (!v)
            break;
        if ((v ^ h) >> SLOT_ID_BITS == 0) {
            entry_t *e = slot_get(t, SLOT_ID(v) - 1);
            if (e->len == len && memcmp(e->data, s, len) == 0) {
                *id = SLOT_ID(v) - 1;
                return 0;
            }
        }
        pos = (pos + 1) & t->index_mask;
    }
    if (t->count >= MAX_IDS)
        return TALLY_EFULL;
    uint32_t nid = t->count;
    entry_t **chunk = t->dir[nid >> CHUNK_BITS];
    if (!chunk) {
        chunk = calloc(CHUNK_SLOTS, sizeof *chunk);
        if (!chunk)
            return -ENOMEM;
        __atomic_fetch_add(&t->bytes, CHUNK_SLOTS * sizeof *chunk, __ATOMIC_RELAXED);
        __atomic_store_n(&t->dir[nid >> CHUNK_BITS], chunk, __ATOMIC_RELEASE);
    }
    entry_t *e = arena_alloc(t, len);
    if (!e)
        return -ENOMEM;
    e->len = len;
    memcpy(e->data, s, len);
    e->data[len] = '\0';
    __atomic_store_n(&chunk[nid & (CHUNK_SLOTS - 1)], e, __ATOMIC_RELEASE);
    t->index[pos] = SLOT_TAG(h) | (nid + 1);
    __atomic_store_n(&t->count, nid + 1, __ATOMIC_RELEASE);
    *id = nid;
    /* keep the load factor under 1/2 so probes stay short */
    if ((uint64_t)(nid + 1) * 2 > t->index_mask) {
        int rc = index_grow(t);
        if (rc)
            return rc; /* the string is in; only the index could not grow */
    }
    return 1;
}

const char *
tally__strtab_get(const tally__strtab_t *t, uint32_t id, uint32_t *len)
{
    entry_t *e = slot_get(t, id);
    if (!e)
        return NULL;
    if (len)
        *len = e->len;
    return e->data;
}

uint32_t
tally__strtab_count(const tally__strtab_t *t)
{
    return __atomic_load_n(&t->count, __ATOMIC_ACQUIRE);
}

size_t
tally__strtab_bytes(const tally__strtab_t *t)
{
    return __atomic_load_n(&t->bytes, __ATOMIC_RELAXED);
}
