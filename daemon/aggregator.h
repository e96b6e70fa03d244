/* aggregator.h — tallyd's aggregator thread: applies delta blocks, commits flushes to LMDB,
 * publishes acks.
 *
 * The aggregator runs its own libuv loop on its own thread. It is the only
 * consumer of the work ring, the only producer of the free ring, the only
 * writer of the store and the only user of the ack PUB socket. Its state
 * (cells, producers' pending and committed marks) is private to that thread.
 * It also prunes hourly rollups past storage.hourly_retention_days, a
 * bounded step after a flush (aggregator.c, prune_step).
 *
 * Exactly-once: a producer's state travels with the block of the batch it
 * accepted, so the state written in a flush covers exactly the deltas in
 * that flush. Acks are published only after the commit returned.
 */
#ifndef TALLY_AGGREGATOR_H
#define TALLY_AGGREGATOR_H

#include <stddef.h>
#include <stdint.h>

#include "dedup.h"
#include "ring.h"
#include "store.h"
#include "strtab.h"

typedef struct tally_aggregator tally_aggregator_t;

typedef struct tally_aggregator_opts {
    tally__store_t *store;
    const tally__strtab_t *series;    /**< read-only here */
    tally__ring_t *work;              /**< blocks to apply (consumer side) */
    tally__ring_t *free_ring;         /**< blocks given back (producer side) */
    uint32_t interval_ms;             /**< flush period */
    uint64_t map_max_bytes;           /**< grow the map up to this; 0 = never */
    uint32_t hourly_retention_days;   /**< prune older hourly rollups; 0 = never */
    char **acks;                      /**< PUB endpoints */
    size_t nacks;
    /** Called on the aggregator thread after blocks went back to the free
     *  ring; must be thread-safe (tallyd: uv_async_send to the ingest loop). */
    void (*on_space)(void *ctx);
    /** Called on the aggregator thread once the final flush is done. */
    void (*on_done)(void *ctx, int status);
    /** HTTP requests whose flush committed (status 0) or, at exit, never
     *  will (status set), pushed here (capacity: at least the blocks there
     *  are), then on_http_done(ctx) is called (thread-safe, like on_space). */
    tally__ring_t *http_done;
    void (*on_http_done)(void *ctx);
    uint32_t http_dedup_hours; /**< forget HTTP event identities this old */
    uint64_t http_dedup_max_events; /**< ... and the oldest past this many */
    void *ctx;
} tally_aggregator_opts_t;

/**
 * @brief Bind the ack sockets and start the thread.
 * @return 0, -errno from nanomsg or the thread, -ENOMEM.
 * @note It learns each producer (name, state) from the blocks: it acks only
 *       producers that sent something since it started.
 */
int tally_aggregator_start(const tally_aggregator_opts_t *opts, tally_aggregator_t **out);

/** @brief Change how far the map may grow (config reload). Any thread. */
void tally_aggregator_set_map_max(tally_aggregator_t *a, uint64_t bytes);

/** @brief Tell the aggregator blocks are waiting. Any thread; coalesces. */
void tally_aggregator_notify(tally_aggregator_t *a);

/**
 * @brief Wait for the thread to end (after it consumed a SHUTDOWN block)
 *        and free everything. @return the final flush status (0 = committed).
 */
int tally_aggregator_join(tally_aggregator_t *a);

#endif
