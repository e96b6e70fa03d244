/* stats.h — process-wide counters of tallyd, updated with relaxed atomics and read by /metrics and
 * logs. */
#ifndef TALLY_STATS_H
#define TALLY_STATS_H

#include <stdint.h>

#include "strtab.h"
#include "tally_proto.h"

typedef struct tally_stats {
    uint64_t messages;         /**< ingest messages received */
    uint64_t batches;          /**< batches accepted (new) */
    uint64_t blocks_accepted;  /**< batches and re-acks handed to the aggregator */
    uint64_t blocks_committed; /**< accepted batches and re-acks whose flush committed */
    uint64_t duplicates;       /**< batches already counted, acked again */
    uint64_t events;           /**< events accepted */
    uint64_t events_committed; /**< events in committed flushes */
    uint64_t unknown_metric;   /**< events of metrics not in the catalog */
    uint64_t int_overflows;    /**< additions that took an integer sum past int64 (rollup.h) */
    uint64_t producers_dropped; /**< producers forgotten after idling past the late window */
    uint64_t duplicates_far_below; /**< duplicate batches far below their producer's floor */
    uint64_t http_events;      /**< HTTP door: new events sent on to be counted */
    uint64_t http_duplicates;  /**< HTTP door: events already counted (same source and id) */
    uint64_t http_dedup_full;  /**< HTTP door: requests refused, dedup set at its maximum */
    uint64_t http_dedup_pruned; /**< HTTP door: identities forgotten after http_dedup_hours */
    uint64_t http_dedup_evicted; /**< HTTP door: forgotten early, the set at its maximum */
    uint64_t http_dedup_window_s; /**< HTTP door: age of the oldest identity kept, after an eviction */
    uint64_t http_rejected;    /**< HTTP door: requests refused whole (400/403/413/415/422) */
    uint64_t rejected[TALLY_PROTO_REJECT_COUNT]; /**< by reason (events or batches) */
    uint64_t flushes;                            /**< committed flushes */
    uint64_t flush_errors;                       /**< failed commits */
    uint64_t flush_last_us;                      /**< duration of the last commit */
    uint64_t flush_max_us;                       /**< longest commit */
    uint64_t
        flush_buckets[12]; /**< histogram: <= 1,2.5,5,10,25,50,100,250,500,1000,2500 ms, +Inf */
    uint64_t flush_sum_us;
    uint64_t acks_sent;
    uint64_t ack_send_errors;
    uint64_t series;        /**< distinct series seen since start */
    uint64_t producers;     /**< distinct producers known */
    uint64_t cells_pending; /**< (series, hour) cells waiting for a flush */
    uint64_t ingest_paused; /**< 1 while the ingest sockets are not read */
    uint64_t pauses;        /**< times ingest paused for back-pressure */
    uint64_t store_full;    /**< 1 while commits fail for lack of space */
    uint64_t store_stalled; /**< 1 while commits fail for any reason (ingest paused) */
    int64_t flush_last_err; /**< while store_stalled: the failing commit's code (tally_strerror) */
    uint64_t map_size;      /**< LMDB map size */
    uint64_t map_used;      /**< LMDB bytes in use */
    uint64_t map_grows;     /**< times the map was grown */
    uint64_t retention_pruned; /**< hourly rollups deleted by retention */
    uint64_t usage_pairs;      /**< (namespace, metric) pairs tracked for tally_usage_total */
    uint64_t usage_dropped_events; /**< committed events of pairs over http.metrics_max_series */
    uint64_t heavy_reads;         /**< usage_details reads running now */
    uint64_t heavy_reads_refused; /**< refused 429: the token ran its most at once */
} tally_stats_t;

extern tally_stats_t tally_stats;

#define TALLY_STAT_ADD(field, n) __atomic_fetch_add(&tally_stats.field, (n), __ATOMIC_RELAXED)
#define TALLY_STAT_SET(field, n) __atomic_store_n(&tally_stats.field, (n), __ATOMIC_RELAXED)
#define TALLY_STAT_GET(field) __atomic_load_n(&tally_stats.field, __ATOMIC_RELAXED)

/** @brief Record one flush commit's duration in the histogram. */
void tally_stats_flush_observe(uint64_t us);

/* ---- committed usage per (namespace, metric), for tally_usage_total -------
 *
 * The aggregator adds every delta it applies to a pending total of its
 * (namespace, metric) pair, and moves the pending totals to the committed
 * ones when the flush that holds them commits; /metrics reads the committed
 * totals. A delta costs an array index and two adds (the pair of each series
 * id is resolved once), a commit one pass over the pairs it touched, under a
 * mutex that a scrape holds while it writes the samples. Totals count from
 * the start of tallyd (Prometheus counters: rate() and increase() handle the
 * restart). At most the limit's pairs are tracked, in the order first seen;
 * the events of later pairs are counted in usage_dropped_events instead.
 */

/** @brief The most pairs tracked (http.metrics_max_series; 0: none). Call
 *         before the aggregator starts; later calls only lower or raise the
 *         limit for pairs not seen yet. */
void tally_stats_usage_limit(uint32_t max_pairs);

/**
 * @brief Aggregator thread: add one applied delta of series `series` (an id
 *        of tab) to its pair's pending total.
 */
void tally_stats_usage_add(const tally__strtab_t *tab, uint32_t series, int is_float, int64_t iv,
                           double fv);

/** @brief Aggregator thread: the flush holding every delta added so far committed. */
void tally_stats_usage_commit(void);

/** One pair's committed totals, as tally_stats_usage_each() reports them. */
typedef struct tally_stats_usage {
    const char *ns, *metric; /**< NUL-terminated, valid during the callback */
    int64_t sum_i;           /**< exact sum of integer values */
    double sum_f;            /**< sum of float values, and of integers past int64 */
    uint64_t count;          /**< events */
    int is_float;            /**< sum_f holds something: the sum is sum_i + sum_f */
} tally_stats_usage_t;

/**
 * @brief Call fn for each tracked pair, in the order first seen. Any thread;
 *        holds the totals' lock meanwhile (fn must be quick and must not call
 *        back into these functions).
 */
void tally_stats_usage_each(void (*fn)(void *ctx, const tally_stats_usage_t *u), void *ctx);

/** @brief Forget every pair and total, freeing them (at exit). Not while the aggregator runs. */
void tally_stats_usage_reset(void);

#endif
