/* pipeline.h — what travels from the ingest loop to the aggregator: blocks of counter deltas.
 *
 * Ownership: a block belongs to whoever last popped it. The ingest loop
 * fills a block from one decoded batch and pushes it on the work ring; the
 * aggregator applies it and pushes it back on the free ring. There are at
 * most `ring_size` blocks, so memory in flight is bounded and a full ring
 * is back-pressure, not loss.
 */
#ifndef TALLY_PIPELINE_H
#define TALLY_PIPELINE_H

#include <stdint.h>

#include "dedup.h"

enum {
    TALLY_BLOCK_BATCH = 1,    /**< deltas of one new batch + producer state */
    TALLY_BLOCK_ACK = 2,      /**< a duplicate arrived: ack this producer again */
    TALLY_BLOCK_SHUTDOWN = 3, /**< last block: flush, ack, stop */
};

typedef struct tally_delta {
    uint32_t series; /**< id in the series table */
    uint32_t is_float;
    int64_t ts_ms; /**< event time; its hour is tally__time_hour_start(ts_ms / 1000).
                        24 bytes a delta: blocks in flight hold ring_size x batch of them */
    union {
        int64_t i;
        double f;
    } v;
} tally_delta_t;

typedef struct tally_block {
    uint32_t kind;
    uint32_t producer;    /**< id in the producer table */
    tally__dedup_t state; /**< the producer's state once this block counts */
    uint32_t n, cap;
    tally_delta_t *d;
    uint32_t signed_ack; /**< v2 producer: ack on its keyed topic, with a MAC */
    uint8_t ack_key[32]; /**< the credential's MAC key, when signed_ack */
} tally_block_t;

#endif
