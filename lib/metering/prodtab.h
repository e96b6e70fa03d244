/* prodtab.h — the ingest side's producer table: identity → slot, a compact dedup state per slot,
 * and the last time each producer was heard from, so idle producers can be dropped.
 *
 * A producer's identity is its key in the store: the producer id for an
 * unauthenticated v1 producer, or `credential 0x1f producer id` for v2.
 * Slots are small integers, reused after a drop; the aggregator indexes its
 * own per-producer state by them.
 *
 * Memory is what bounds the table, so a slot keeps its dedup state compact:
 * floor and max_seq inline, and the 512-byte window bitmap only while a bit
 * of it is set (a batch arrived ahead of a missing one). Producers sending
 * in order, as libtally does over one connection, never have one.
 *
 * Ownership of names: a slot's name is a heap string. tally__prodtab_drop()
 * hands it to the caller (the ingest thread passes it on to the aggregator,
 * which may still be writing that producer's last state), so no reader of a
 * name ever sees it freed under it.
 *
 * Threads: one thread (tallyd's loop) uses a table.
 */
#ifndef TALLY_PRODTAB_H
#define TALLY_PRODTAB_H

#include <stddef.h>
#include <stdint.h>

#include "dedup.h"

/** One producer. */
typedef struct tally__prod {
    char *name;            /**< heap, NUL-terminated; NULL for a free slot */
    uint32_t name_len;     /**< bytes, without the NUL */
    uint32_t cred;         /**< credential index of the owner (caller's), or UINT32_MAX */
    int64_t last_seen_s;   /**< unix seconds of its latest batch (or of the load) */
    uint64_t floor;        /**< see tally__dedup_t */
    uint64_t max_seq;
    uint64_t *bits;        /**< TALLY__DEDUP_WORDS words, or NULL when all are zero */
} tally__prod_t;

typedef struct tally__prodtab tally__prodtab_t;

/** @brief An empty table. @return 0 or -ENOMEM. */
int tally__prodtab_create(tally__prodtab_t **out);

/** @brief Free the table, its names and bitmaps. NULL is ignored. */
void tally__prodtab_destroy(tally__prodtab_t *t);

/** @brief The slot of name[0..len), or -1 when the table has no such producer. */
int64_t tally__prodtab_find(const tally__prodtab_t *t, const char *name, uint32_t len);

/**
 * @brief Add a producer with the given state (NULL: empty), heard from at now_s.
 * @param cred the caller's credential index for it, or UINT32_MAX.
 * @param[out] slot its slot.
 * @return 0, or -ENOMEM. The name must not be in the table yet.
 */
int tally__prodtab_add(tally__prodtab_t *t, const char *name, uint32_t len, uint32_t cred,
                       const tally__dedup_t *state, int64_t now_s, uint32_t *slot);

/** @brief The producer in a live slot; valid until the next add or drop. */
tally__prod_t *tally__prodtab_get(tally__prodtab_t *t, uint32_t slot);

/** @brief Expand a producer's state into the full form dedup.h works on. */
void tally__prodtab_state(const tally__prod_t *p, tally__dedup_t *out);

/**
 * @brief Store a full state back into its compact form.
 * @return 0, or -ENOMEM when a bitmap was needed and could not be had
 *         (the producer then keeps its previous state).
 */
int tally__prodtab_set_state(tally__prodtab_t *t, tally__prod_t *p, const tally__dedup_t *st);

/**
 * @brief Remove a producer; its slot is free for reuse.
 * @param[out] name its name, now the caller's to free(); len in *len.
 */
void tally__prodtab_drop(tally__prodtab_t *t, uint32_t slot, char **name, uint32_t *len);

/** @brief How many producers the table holds. */
uint32_t tally__prodtab_count(const tally__prodtab_t *t);

/** @brief One past the highest slot ever used (for scans and the aggregator's arrays). */
uint32_t tally__prodtab_slots(const tally__prodtab_t *t);

/** @brief Heap bytes the table holds, names and bitmaps included, for /metrics and benchmarks. */
size_t tally__prodtab_bytes(const tally__prodtab_t *t);

#endif
