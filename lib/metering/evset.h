/* evset.h — the HTTP door's exactly-once set in memory: event identities in commit order, with a
 * hash index for lookups.
 *
 * The set mirrors the store's append-only log of committed identities
 * (store.c, table "evlog"): entries sit in a ring in the order they were
 * committed (the log's order), each a 16-byte identity and the unix ms its
 * window started. An open-addressing index (linear probing, 4-byte slots
 * holding a ring position + 1, at most half full) maps an identity to its
 * newest entry. An identity committed again (after its window ended)
 * appends a new entry and the index moves to it; the old entry stays in the
 * ring, "stale", until it is popped from the front like any other.
 *
 * Invariants: every index slot points at a ring entry with that identity,
 * the newest one; `live` counts index slots (distinct identities), `n`
 * ring entries (live + stale). Memory: 24 bytes a ring entry (the ring's
 * capacity is a power of two, so up to twice that) plus 4-byte slots at
 * most half full: 32 to 64 bytes an identity.
 *
 * Threads: none of its own. The store guards it with a rwlock: lookups
 * under the read lock, appends and pops under the write lock.
 */
#ifndef TALLY_EVSET_H
#define TALLY_EVSET_H

#include <stddef.h>
#include <stdint.h>

#define TALLY__EVSET_KEY_LEN 16

/** One committed identity and when its window started (unix ms). */
typedef struct tally__evset_entry {
    uint8_t key[TALLY__EVSET_KEY_LEN];
    int64_t t;
} tally__evset_entry_t;

typedef struct tally__evset {
    tally__evset_entry_t *ring; /**< cap entries, the oldest at head */
    size_t cap, head, n;
    uint32_t *idx;              /**< icap slots: ring position + 1, 0 empty */
    size_t icap, live;
    uint64_t seed;              /**< mixes identities into slots (an emitter cannot aim) */
} tally__evset_t;

/** @brief An empty set in caller's storage (allocates nothing yet). */
void tally__evset_init(tally__evset_t *s);

/** @brief Free what the set holds; it is empty (and usable) afterwards. */
void tally__evset_fini(tally__evset_t *s);

/**
 * @brief Make room for k more appends, so that they cannot fail.
 * @return 0 or -ENOMEM (the set is unchanged).
 */
int tally__evset_reserve(tally__evset_t *s, size_t k);

/**
 * @brief Append an identity as the newest entry; an older entry of the same
 *        identity becomes stale.
 * @return 0 or -ENOMEM (nothing appended; never after tally__evset_reserve()
 *         made room).
 */
int tally__evset_append(tally__evset_t *s, const uint8_t key[TALLY__EVSET_KEY_LEN], int64_t t);

/**
 * @brief The newest entry of an identity.
 * @return 1 with *t set when the set holds it, else 0.
 */
int tally__evset_get(const tally__evset_t *s, const uint8_t key[TALLY__EVSET_KEY_LEN], int64_t *t);

/** @brief The i-th oldest entry, i < n (valid until the next change). */
const tally__evset_entry_t *tally__evset_at(const tally__evset_t *s, size_t i);

/** @brief Whether the i-th oldest entry is its identity's newest (not stale). */
int tally__evset_is_live(const tally__evset_t *s, size_t i);

/** @brief Remove the k oldest entries (k <= n); may give memory back. */
void tally__evset_pop(tally__evset_t *s, size_t k);

#endif
