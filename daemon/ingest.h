/* ingest.h — tallyd's ingest side: nanomsg PULL in a uv_poll, strict decode, dedup, deltas onto the
 * ring.
 *
 * Runs on the main libuv loop. It is the only writer of the series and
 * producer tables and the only producer of the work ring. Each endpoint of
 * ingest.listen has its own PULL socket: tcp and ws endpoints take only
 * authenticated (v2) batches; ipc and inproc ones also take v1 batches when
 * ingest.require_auth is false. A v2 batch's MAC is checked before anything
 * after its credential name is read; every event's namespace must be in the
 * credential's scope and never `system`; the producer identity is
 * (credential, producer id). When no free
 * block is left (the aggregator or the store is behind) it stops reading
 * the socket: nanomsg buffers, producers keep their unacked batches, and
 * nothing is dropped.
 */
#ifndef TALLY_INGEST_H
#define TALLY_INGEST_H

#include <stdint.h>

#include <uv.h>

#include "aggregator.h"
#include "auth.h"
#include "catalog.h"
#include "config.h"
#include "dedup.h"
#include "ring.h"
#include "strtab.h"

typedef struct tally_ingest tally_ingest_t;

typedef struct tally_ingest_opts {
    uv_loop_t *loop;
    const tally__config_t *cfg;
    const tally__catalog_t *catalog;
    tally__strtab_t *series;
    tally__strtab_t *producers;
    tally__ring_t *work;
    tally__ring_t *free_ring;
    tally_aggregator_t *aggregator;
    /** The current tokens set (emitter credentials): read through this
     *  pointer at every v2 batch, so a reload that swaps it (on the same
     *  loop thread) takes effect at once. */
    tally__tokens_t *const *tokens;
} tally_ingest_opts_t;

/**
 * @brief Bind the PULL endpoints and start reading.
 * @param initial committed producer states, indexed by producer id.
 * @return 0, -errno from nanomsg, -ENOMEM.
 */
int tally_ingest_start(const tally_ingest_opts_t *opts, const tally__dedup_t *initial, uint32_t n,
                       tally_ingest_t **out);

/** @brief Free blocks are back: resume reading if paused. Any thread. */
void tally_ingest_wake(tally_ingest_t *in);

/**
 * @brief Stop reading and queue the SHUTDOWN block for the aggregator
 *        (retrying while the ring is full). Loop thread.
 */
void tally_ingest_stop(tally_ingest_t *in);

/** @brief Close handles and sockets; frees once closed. Loop thread. */
void tally_ingest_close(tally_ingest_t *in);

#endif
