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
#include "store.h"
#include "strtab.h"

typedef struct tally_ingest tally_ingest_t;

typedef struct tally_ingest_opts {
    uv_loop_t *loop;
    const tally__config_t *cfg;
    const tally__catalog_t *catalog;
    tally__strtab_t *series;
    tally__ring_t *work;
    tally__ring_t *free_ring;
    tally_aggregator_t *aggregator;
    /** The current tokens set (emitter credentials): read through this
     *  pointer at every v2 batch, so a reload that swaps it (on the same
     *  loop thread) takes effect at once. */
    tally__tokens_t *const *tokens;
    /** The store, read for the HTTP door's exactly-once check. */
    tally__store_t *store;
    /** Committed (or failed) HTTP requests, from the aggregator (SPSC). */
    tally__ring_t *http_done;
    /** Called on the loop thread for each HTTP request handed to
     *  tally_ingest_submit_events(), exactly once: status 0 when its events
     *  are committed, else a TALLY_E* / -errno why not. */
    void (*http_answer)(void *ctx, void *request, int status, uint32_t accepted,
                        uint32_t duplicates);
    void *http_ctx;
} tally_ingest_opts_t;

/** One event of an HTTP request, validated and in scope. */
typedef struct tally_ingest_event {
    const tally_event_t *ev;               /**< ts_ms set; strings borrowed for the call */
    uint8_t key[TALLY_STORE_EVKEY_LEN];    /**< its identity (tally__ce_dedup_key()) */
} tally_ingest_event_t;

/**
 * @brief Count the events of one HTTP request exactly once, answering later.
 *
 * Events whose identity is already committed (within ingest.http_dedup_hours)
 * or in flight are duplicates; the rest go to the aggregator in one block.
 * http_answer(request, ...) is called once the flush that holds them (or,
 * for a request of duplicates only, the next flush) has committed.
 *
 * @return 0 (http_answer will be called); TALLY_EBUSY when no block is free
 *         (back-pressure: answer 503 and let the client retry);
 *         TALLY_EFULL when the dedup set is at ingest.http_dedup_max_events;
 *         -ENOMEM; or a store error of the check. On error http_answer is
 *         not called.
 * @note Loop thread.
 */
int tally_ingest_submit_events(tally_ingest_t *in, const tally_ingest_event_t *events, size_t n,
                               void *request);

/**
 * @brief Load the producers' committed states from opts->store, bind the
 *        PULL endpoints and start reading.
 * @return 0, -errno from nanomsg, -ENOMEM, or a store error.
 * @note Producers idle longer than ingest.late_window_hours + 1 h +
 *       future_skew_s are dropped from memory and store (a loaded producer
 *       counts as heard from at start).
 */
int tally_ingest_start(const tally_ingest_opts_t *opts, tally_ingest_t **out);

/**
 * @brief The event-time rule both doors apply: an event stamped further
 *        ahead than ingest.future_skew_s, or in an hour older than
 *        ingest.late_window_hours, does not count.
 * @return -1 when ts_ms may count, else TALLY_PROTO_REJECT_future or _too_old.
 */
int tally_ingest_check_time(const tally_ingest_t *in, int64_t now_ms, int64_t ts_ms);

/** @brief HTTP requests are back on the done ring: answer them. Any thread. */
void tally_ingest_http_wake(tally_ingest_t *in);

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
