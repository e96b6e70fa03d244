/* prodtab.c — producer identities to reusable slots with compact dedup states (see prodtab.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ids.h"
#include "prodtab.h"
#include "strtab.h"

#define BITS_BYTES (TALLY__DEDUP_WORDS * sizeof(uint64_t))

struct tally__prodtab {
    tally__prod_t *slots;
    uint32_t nslots, cap_slots; /* slots ever used, and allocated */
    uint32_t *free_slots;       /* a stack of dropped slots */
    uint32_t nfree, cap_free;
    uint32_t count;
    /* open addressing, linear probing: slot + 1, or 0 for empty */
    uint32_t *index;
    uint32_t index_mask;
    size_t bytes;      /* names */
    uint32_t nbitmaps; /* slots holding a window bitmap */
};

static uint32_t
home(const tally__prodtab_t *t, const char *name, uint32_t len)
{
    return (uint32_t)tally__hash_bytes(name, len) & t->index_mask;
}

int
tally__prodtab_create(tally__prodtab_t **out)
{
    tally__prodtab_t *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->index_mask = 63;
    t->index = calloc(t->index_mask + 1, sizeof *t->index);
    if (!t->index) {
        free(t);
        return -ENOMEM;
    }
    *out = t;
    return 0;
}

void
tally__prodtab_destroy(tally__prodtab_t *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->nslots; i++) {
        free(t->slots[i].name);
        free(t->slots[i].bits);
    }
    free(t->slots);
    free(t->free_slots);
    free(t->index);
    free(t);
}

int64_t
tally__prodtab_find(const tally__prodtab_t *t, const char *name, uint32_t len)
{
    for (uint32_t i = home(t, name, len);; i = (i + 1) & t->index_mask) {
        uint32_t v = t->index[i];
        if (!v)
            return -1;
        const tally__prod_t *p = &t->slots[v - 1];
        if (p->name_len == len && memcmp(p->name, name, len) == 0)
            return v - 1;
    }
}

static void
index_put(tally__prodtab_t *t, uint32_t slot)
{
    const tally__prod_t *p = &t->slots[slot];
    uint32_t i = home(t, p->name, p->name_len);
    while (t->index[i])
        i = (i + 1) & t->index_mask;
    t->index[i] = slot + 1;
}

static int
index_grow(tally__prodtab_t *t)
{
    uint32_t ncap = (t->index_mask + 1) * 2;
    uint32_t *ni = calloc(ncap, sizeof *ni);
    if (!ni)
        return -ENOMEM;
    free(t->index);
    t->index = ni;
    t->index_mask = ncap - 1;
    for (uint32_t s = 0; s < t->nslots; s++)
        if (t->slots[s].name)
            index_put(t, s);
    return 0;
}

/* Backward-shift deletion keeps probe runs unbroken without tombstones. */
static void
index_del(tally__prodtab_t *t, uint32_t slot)
{
    const tally__prod_t *p = &t->slots[slot];
    uint32_t mask = t->index_mask, i = home(t, p->name, p->name_len);
    while (t->index[i] != slot + 1)
        i = (i + 1) & mask;
    for (uint32_t j = (i + 1) & mask; t->index[j]; j = (j + 1) & mask) {
        const tally__prod_t *q = &t->slots[t->index[j] - 1];
        uint32_t h = home(t, q->name, q->name_len);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            t->index[i] = t->index[j];
            i = j;
        }
    }
    t->index[i] = 0;
}

/* set_state without the table's bitmap count: for a slot not yet in it */
static int
put_state(tally__prod_t *p, const tally__dedup_t *st)
{
    int any = 0;
    for (unsigned w = 0; w < TALLY__DEDUP_WORDS && !any; w++)
        any = st->bits[w] != 0;
    if (any && !p->bits) {
        p->bits = malloc(BITS_BYTES);
        if (!p->bits)
            return -ENOMEM;
    }
    if (any) {
        memcpy(p->bits, st->bits, BITS_BYTES);
    } else if (p->bits) {
        free(p->bits);
        p->bits = NULL;
    }
    p->floor = st->floor;
    p->max_seq = st->max_seq;
    return 0;
}

int
tally__prodtab_set_state(tally__prodtab_t *t, tally__prod_t *p, const tally__dedup_t *st)
{
    int had = p->bits != NULL, rc = put_state(p, st);
    t->nbitmaps += (uint32_t)(p->bits != NULL) - (uint32_t)had;
    return rc;
}

void
tally__prodtab_state(const tally__prod_t *p, tally__dedup_t *out)
{
    out->floor = p->floor;
    out->max_seq = p->max_seq;
    if (p->bits)
        memcpy(out->bits, p->bits, BITS_BYTES);
    else
        memset(out->bits, 0, BITS_BYTES);
}

int
tally__prodtab_add(tally__prodtab_t *t, const char *name, uint32_t len, uint32_t cred,
                   const tally__dedup_t *state, int64_t now_s, uint32_t *slot)
{
    if ((uint64_t)(t->count + 1) * 2 > t->index_mask && index_grow(t) != 0)
        return -ENOMEM;
    uint32_t s;
    if (t->nfree) {
        s = t->free_slots[t->nfree - 1];
    } else {
        if (tally__grow32((void **)&t->slots, &t->cap_slots, t->nslots + 1, sizeof *t->slots,
                          64) != 0)
            return -ENOMEM;
        s = t->nslots;
    }
    tally__prod_t p = {.cred = cred, .last_seen_s = now_s, .name_len = len};
    p.name = malloc((size_t)len + 1);
    if (!p.name)
        return -ENOMEM;
    memcpy(p.name, name, len);
    p.name[len] = '\0';
    if (state && put_state(&p, state) != 0) {
        free(p.name);
        return -ENOMEM;
    }
    if (t->nfree)
        t->nfree--;
    else
        t->nslots++;
    t->slots[s] = p;
    t->count++;
    t->bytes += (size_t)len + 1;
    t->nbitmaps += p.bits != NULL;
    index_put(t, s);
    *slot = s;
    return 0;
}

tally__prod_t *
tally__prodtab_get(tally__prodtab_t *t, uint32_t slot)
{
    return slot < t->nslots && t->slots[slot].name ? &t->slots[slot] : NULL;
}

void
tally__prodtab_drop(tally__prodtab_t *t, uint32_t slot, char **name, uint32_t *len)
{
    tally__prod_t *p = &t->slots[slot];
    /* without room the slot is not reused, but the producer still goes */
    (void)tally__grow32((void **)&t->free_slots, &t->cap_free, t->nfree + 1,
                        sizeof *t->free_slots, 64);
    index_del(t, slot);
    if (t->nfree < t->cap_free)
        t->free_slots[t->nfree++] = slot;
    t->bytes -= (size_t)p->name_len + 1;
    t->nbitmaps -= p->bits != NULL;
    *name = p->name;
    *len = p->name_len;
    free(p->bits);
    memset(p, 0, sizeof *p);
    t->count--;
}

uint32_t
tally__prodtab_count(const tally__prodtab_t *t)
{
    return t->count;
}

uint32_t
tally__prodtab_slots(const tally__prodtab_t *t)
{
    return t->nslots;
}

size_t
tally__prodtab_bytes(const tally__prodtab_t *t)
{
    return t->bytes + (size_t)t->nbitmaps * BITS_BYTES + (size_t)t->cap_slots * sizeof *t->slots +
           (size_t)(t->index_mask + 1) * sizeof *t->index + (size_t)t->cap_free * sizeof(uint32_t);
}
