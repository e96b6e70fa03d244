/* dedup.h — exactly-once bookkeeping for one producer: a committed floor plus a window bitmap.
 *
 * Invariants: every sequence number <= floor has been counted; within
 * (floor, floor + TALLY_DEDUP_WINDOW] bit (seq - floor - 1) says whether it
 * has; nothing above the window has. Bit 0 is never set (the floor would
 * have advanced over it). A batch also carries `base`, the oldest sequence
 * its producer still holds: everything below base the producer will never
 * send again, so the floor may jump to base - 1. That is what lets a gap
 * (a lost batch) be filled later without blocking the batches behind it,
 * and lets a restarted producer start from a higher sequence.
 *
 * The struct is plain data, stored as-is in LMDB (host byte order).
 */
#ifndef TALLY_DEDUP_H
#define TALLY_DEDUP_H

#include <stdint.h>

#include "tally/tally.h"

#define TALLY__DEDUP_WORDS (TALLY_DEDUP_WINDOW / 64)

typedef struct tally__dedup {
    uint64_t floor;   /**< every seq <= floor is counted */
    uint64_t max_seq; /**< the highest seq counted */
    uint64_t bits[TALLY__DEDUP_WORDS];
} tally__dedup_t;

enum {
    TALLY_DEDUP_NEW = 0,   /**< count it; the state now includes it */
    TALLY_DEDUP_DUP = 1,   /**< already counted: ack again, count nothing */
    TALLY_DEDUP_AHEAD = 2, /**< too far ahead of the floor: reject */
};

/**
 * @brief Decide about batch (seq, base) and, when it is new, record it.
 * @return TALLY_DEDUP_NEW, TALLY_DEDUP_DUP or TALLY_DEDUP_AHEAD.
 * @note base must be in 1..seq (the decoder checks).
 */
int tally__dedup_accept(tally__dedup_t *d, uint64_t seq, uint64_t base);

/** @brief Whether seq has been counted, without changing anything. */
int tally__dedup_seen(const tally__dedup_t *d, uint64_t seq);

#endif
