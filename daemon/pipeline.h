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
#include "store.h"

enum {
    TALLY_BLOCK_BATCH = 1,    /**< deltas of one new batch + producer state */
    TALLY_BLOCK_ACK = 2,      /**< a duplicate arrived: ack this producer again */
    TALLY_BLOCK_SHUTDOWN = 3, /**< last block: flush, ack, stop */
    TALLY_BLOCK_HTTP = 4,     /**< deltas of one HTTP request's new events */
    TALLY_BLOCK_DROP = 5,     /**< an idle producer is forgotten: delete its state */
};

/**
 * One HTTP ingest request on its way through the aggregator and back.
 * Made by the ingest loop, read (never changed) by the aggregator until the
 * flush that commits it, then handed back through the done ring with
 * `status` set; freed by the ingest loop.
 */
typedef struct tally_http_events {
    void *request;               /**< the HTTP layer's handle, opaque here */
    tally__store_evkey_t *keys;  /**< identities of the new events, written in the flush */
    uint32_t nkeys;              /**< = accepted */
    uint32_t duplicates;         /**< events of the request already counted */
    int status;                  /**< aggregator: 0 committed, else why it was not */
} tally_http_events_t;

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
    uint32_t producer;    /**< slot in the producer table (prodtab.h) */
    /** the producer's identity (its store key). BATCH/ACK: borrowed from the
     *  ingest's table, alive until a DROP block for the slot has been
     *  applied; DROP: the aggregator's to free once the delete committed */
    const char *pname;
    uint32_t pname_len;
    int64_t last_seen_s;  /**< BATCH/ACK: when the ingest received it (unix s) */
    tally__dedup_t state; /**< the producer's state once this block counts */
    uint32_t n, cap;
    tally_delta_t *d;
    tally_http_events_t *http; /**< TALLY_BLOCK_HTTP: its request */
    uint32_t signed_ack; /**< v2 producer: ack on its keyed topic, with a MAC */
    uint8_t ack_key[32]; /**< the credential's MAC key, when signed_ack */
} tally_block_t;

#endif
