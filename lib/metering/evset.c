/* evset.c — the HTTP door's exactly-once set in memory: a ring of identities in commit order and
 * an open-addressing index over it (evset.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "evset.h"

#define MIN_RING 1024

void
tally__evset_init(tally__evset_t *s)
{
    memset(s, 0, sizeof *s);
    /* identities are BLAKE2b outputs, but an emitter picks (source, id) and
     * can grind them for equal low bits: a secret mixed into the slot keeps
     * it from lining identities up on one probe run */
    if (getrandom(&s->seed, sizeof s->seed, GRND_NONBLOCK) != (ssize_t)sizeof s->seed)
        s->seed = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uintptr_t)s;
}

void
tally__evset_fini(tally__evset_t *s)
{
    uint64_t seed = s->seed;
    free(s->ring);
    free(s->idx);
    memset(s, 0, sizeof *s);
    s->seed = seed;
}

static size_t
slot_of(const tally__evset_t *s, const uint8_t *key)
{
    uint64_t a, b;
    memcpy(&a, key, sizeof a);
    memcpy(&b, key + 8, sizeof b);
    uint64_t h = (a ^ s->seed) * 0x9E3779B97F4A7C15ull;
    h = (h ^ (h >> 32) ^ b) * 0xD6E8FEB86659FD93ull;
    h ^= h >> 32;
    return (size_t)h & (s->icap - 1);
}

/* The slot holding key, or the empty slot where it would go. */
static size_t
find(const tally__evset_t *s, const uint8_t *key, int *found)
{
    size_t mask = s->icap - 1;
    for (size_t i = slot_of(s, key);; i = (i + 1) & mask) {
        uint32_t v = s->idx[i];
        if (v == 0) {
            *found = 0;
            return i;
        }
        if (memcmp(s->ring[v - 1].key, key, TALLY__EVSET_KEY_LEN) == 0) {
            *found = 1;
            return i;
        }
    }
}

/* Point key's slot at ring position pos (the newest entry of key). */
static void
index_put(tally__evset_t *s, size_t pos)
{
    int found;
    size_t i = find(s, s->ring[pos].key, &found);
    s->idx[i] = (uint32_t)pos + 1;
    s->live += !found;
}

/* Move the entries into a ring of rcap (oldest first at 0) and index them
 * anew with icap slots; later entries of an identity shadow earlier ones. */
static int
rebuild(tally__evset_t *s, size_t rcap, size_t icap)
{
    tally__evset_entry_t *ring = malloc(rcap * sizeof *ring);
    uint32_t *idx = calloc(icap, sizeof *idx);
    if (!ring || !idx) {
        free(ring);
        free(idx);
        return -ENOMEM;
    }
    for (size_t i = 0; i < s->n; i++)
        ring[i] = s->ring[(s->head + i) & (s->cap - 1)];
    free(s->ring);
    free(s->idx);
    s->ring = ring;
    s->cap = rcap;
    s->head = 0;
    s->idx = idx;
    s->icap = icap;
    s->live = 0;
    for (size_t i = 0; i < s->n; i++)
        index_put(s, i);
    return 0;
}

static size_t
pow2_at_least(size_t v, size_t min)
{
    size_t p = min;
    while (p < v)
        p *= 2;
    return p;
}

int
tally__evset_reserve(tally__evset_t *s, size_t k)
{
    /* positions + 1 must fit a 4-byte slot */
    if (s->n + k >= UINT32_MAX / 2)
        return -ENOMEM;
    size_t rcap = s->cap, icap = s->icap;
    if (s->n + k > rcap)
        rcap = pow2_at_least(s->n + k, rcap ? rcap * 2 : MIN_RING);
    if ((s->live + k) * 2 > icap)
        icap = pow2_at_least((s->live + k) * 2, icap ? icap * 2 : 2 * MIN_RING);
    if (rcap == s->cap && icap == s->icap)
        return 0;
    return rebuild(s, rcap, icap);
}

int
tally__evset_append(tally__evset_t *s, const uint8_t key[TALLY__EVSET_KEY_LEN], int64_t t)
{
    int rc = tally__evset_reserve(s, 1);
    if (rc)
        return rc;
    size_t pos = (s->head + s->n) & (s->cap - 1);
    memcpy(s->ring[pos].key, key, TALLY__EVSET_KEY_LEN);
    s->ring[pos].t = t;
    s->n++;
    index_put(s, pos);
    return 0;
}

int
tally__evset_get(const tally__evset_t *s, const uint8_t key[TALLY__EVSET_KEY_LEN], int64_t *t)
{
    int found;
    if (!s->live)
        return 0;
    size_t i = find(s, key, &found);
    if (found)
        *t = s->ring[s->idx[i] - 1].t;
    return found;
}

const tally__evset_entry_t *
tally__evset_at(const tally__evset_t *s, size_t i)
{
    return &s->ring[(s->head + i) & (s->cap - 1)];
}

int
tally__evset_is_live(const tally__evset_t *s, size_t i)
{
    int found;
    size_t pos = (s->head + i) & (s->cap - 1);
    size_t slot = find(s, s->ring[pos].key, &found);
    return found && s->idx[slot] == pos + 1;
}

/* Empty slot i and pull later members of its run into the hole when their
 * home slot does not lie between the hole and them (backward shift). */
static void
index_del(tally__evset_t *s, size_t i)
{
    size_t mask = s->icap - 1;
    for (size_t j = (i + 1) & mask; s->idx[j]; j = (j + 1) & mask) {
        size_t home = slot_of(s, s->ring[s->idx[j] - 1].key);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            s->idx[i] = s->idx[j];
            i = j;
        }
    }
    s->idx[i] = 0;
    s->live--;
}

void
tally__evset_pop(tally__evset_t *s, size_t k)
{
    if (k > s->n)
        k = s->n;
    for (; k > 0; k--) {
        int found;
        size_t slot = find(s, s->ring[s->head].key, &found);
        if (found && s->idx[slot] == s->head + 1)
            index_del(s, slot);
        s->head = (s->head + 1) & (s->cap - 1);
        s->n--;
    }
    if (s->n == 0) {
        /* an idle door holds nothing */
        tally__evset_fini(s);
        return;
    }
    /* a set that shrank to a quarter gives half its memory back (a failed
     * allocation only keeps the larger arrays) */
    if (s->cap > MIN_RING && s->n * 4 < s->cap)
        rebuild(s, s->cap / 2, s->icap / 2 >= 2 * MIN_RING && s->live * 4 < s->icap
                                   ? s->icap / 2
                                   : s->icap);
}
