/* tally.h — public API of libtally: error codes and the event-emitting client. */
#ifndef TALLY_TALLY_H
#define TALLY_TALLY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TALLY_BUILDING_LIB)
#define TALLY_EXPORT __attribute__((visibility("default")))
#else
#define TALLY_EXPORT
#endif

/*
 * Errors. Every function returns 0 on success or a negative code: either
 * -errno (system errors) or one of the TALLY_E* codes below, which live in a
 * reserved band under -30000 so they never collide with errno values.
 * tally_strerror() describes both.
 */
#define TALLY_ERRNO_MAP(X)                                                                         \
    X(INVAL, -30001, "invalid argument")                                                           \
    X(FULL, -30002, "buffer full: unacknowledged batches at their limit")                          \
    X(TIMEDOUT, -30003, "timed out")                                                               \
    X(PROTO, -30004, "malformed message")                                                          \
    X(VERSION, -30005, "unsupported protocol version")                                             \
    X(TOOBIG, -30006, "value exceeds a configured bound")                                          \
    X(NOTFOUND, -30007, "not found")                                                               \
    X(STORE, -30008, "storage error")                                                              \
    X(MAPFULL, -30009, "storage map full")                                                         \
    X(CONFIG, -30010, "invalid configuration")                                                     \
    X(BUSY, -30011, "resource busy")                                                               \
    X(CLOSED, -30012, "closed")                                                                    \
    X(CORRUPT, -30013, "stored data is corrupt or of another version")                             \
    X(EXISTS, -30014, "already exists")

enum {
#define TALLY__ERR_ENUM(name, code, text) TALLY_E##name = code,
    TALLY_ERRNO_MAP(TALLY__ERR_ENUM)
#undef TALLY__ERR_ENUM
};

/**
 * @brief Describe an error code returned by any tally function.
 * @param err 0, a negative errno, or a TALLY_E* code.
 * @return a static string; never NULL.
 */
TALLY_EXPORT const char *tally_strerror(int err);

/** @brief The library version, e.g. "0.1.0". Static string. */
TALLY_EXPORT const char *tally_version(void);

/* ---- client ----------------------------------------------------------- */

/** Hard bounds shared by the client and the daemon's decoder. */
#define TALLY_MAX_NS_LEN 64          /**< namespace name bytes */
#define TALLY_MAX_METRIC_LEN 64      /**< metric label bytes */
#define TALLY_MAX_PRODUCER_LEN 64    /**< producer id bytes */
#define TALLY_MAX_LABELS 8           /**< labels per event */
#define TALLY_MAX_LABEL_KEY_LEN 32   /**< label key bytes */
#define TALLY_MAX_LABEL_VALUE_LEN 64 /**< label value bytes */
#define TALLY_MAX_LABELS_BYTES                                                                     \
    320                             /**< all labels of an event, as                                \
                                          sum of (key + value + 2) bytes */
#define TALLY_MAX_BATCH_EVENTS 4096 /**< events per batch */
#define TALLY_DEDUP_WINDOW 4096     /**< batches a producer may have in flight */

typedef struct tally_client tally_client_t;

/** One optional string label of an event (`object`, `deployment`, ...). */
typedef struct tally_label {
    const char *key;
    const char *value;
} tally_label_t;

/**
 * One metering event. Strings are borrowed for the duration of the
 * tally_emit() call only; the client copies what it keeps.
 */
typedef struct tally_event {
    const char *ns;              /**< namespace: [a-z0-9-], 1..64 bytes */
    const char *metric;          /**< metric label: [A-Za-z0-9_.:-], 1..64 bytes */
    int is_float;                /**< 0: ivalue is the value; 1: fvalue is */
    int64_t ivalue;              /**< integer value */
    double fvalue;               /**< floating value (finite) */
    int64_t ts_ms;               /**< event time, unix milliseconds UTC; 0 = now */
    const tally_label_t *labels; /**< may be NULL when nlabels is 0 */
    size_t nlabels;              /**< at most TALLY_MAX_LABELS */
} tally_event_t;

/** Client tuning; zero fields take the documented default. */
typedef struct tally_client_options {
    const char *ack_endpoint;   /**< NULL: derived from the ingest endpoint
                                     (tcp port + 1, or ipc path + ".acks") */
    uint32_t batch_events;      /**< seal a batch at this many events (100) */
    uint32_t batch_bytes;       /**< ... or at this many encoded bytes (64 KiB) */
    uint32_t batch_delay_ms;    /**< ... or when its first event is this old (20) */
    uint32_t max_unacked;       /**< batches kept until acked (1024, at most
                                     TALLY_DEDUP_WINDOW = 4096); emit fails past it.
                                     One event per batch needs more in flight: a
                                     producer sends at most max_unacked batches
                                     per flush interval. */
    uint64_t max_unacked_bytes; /**< bytes kept until acked (64 MiB) */
    uint32_t ack_timeout_ms;    /**< resend a batch unacked for this long (1000) */
    uint64_t first_seq;         /**< first sequence number; 0 = the wall clock
                                     in microseconds, so a restarted producer
                                     keeping its id continues above its old
                                     sequence numbers. The daemon refuses a
                                     sequence above both its floor + 4096 and
                                     the wall clock in microseconds plus a
                                     day. */
    const char *credential;     /**< emitter credential `NAME:SECRET`, as
                                     `tallyctl keygen` prints it. Set: batches
                                     use protocol v2 (credential name + MAC)
                                     and only acks that verify under it are
                                     believed. NULL: unauthenticated v1, which
                                     tallyd takes only on ipc (and inproc)
                                     endpoints with ingest.require_auth = false. Parsed and
                                     not kept: the client holds only the name
                                     and the derived MAC key. */
} tally_client_options_t;

/** Counters of a client, for tests and tools. */
typedef struct tally_client_stats {
    uint64_t events;        /**< events accepted by tally_emit() */
    uint64_t batches;       /**< batches sealed */
    uint64_t sends;         /**< sends, first tries and resends */
    uint64_t resends;       /**< resends after an ack timeout */
    uint64_t acked_batches; /**< batches released by an ack */
    uint64_t unacked;       /**< batches waiting for their ack now */
    uint64_t acked_seq;     /**< the daemon's committed high-water mark */
    uint64_t next_seq;      /**< the sequence number the next batch gets */
    uint64_t rebuilds;      /**< times the sockets were rebuilt after 10 ack
                                 timeouts without any ack */
    uint64_t bad_acks;      /**< messages on our ack topic that failed the v2
                                 ack checks: tag, topic or fields (ignored) */
} tally_client_stats_t;

/**
 * @brief Create a client that sends batches to a tallyd ingest endpoint.
 * @param endpoint nanomsg address of tallyd's PULL socket (`ipc://...`, `tcp://...`).
 * @param producer_id stable name of this producer, 1..64 bytes; the daemon
 *        de-duplicates by (producer_id, sequence).
 * @param options NULL for defaults. Copied.
 * @param[out] out the client, owned by the caller until tally_client_destroy().
 * @return 0, TALLY_EINVAL for a bad argument (including a malformed
 *         options->credential), or -errno from the transport.
 * @note Starts one background thread that seals batches on time, receives
 *       acks and resends. All functions are safe to call from any thread.
 */
TALLY_EXPORT int tally_client_create(const char *endpoint, const char *producer_id,
                                     const tally_client_options_t *options, tally_client_t **out);

/**
 * @brief Queue one event; it is sent with its batch and kept until acked.
 * @return 0; TALLY_EINVAL for a malformed event (bad name, too many labels,
 *         non-finite value); TALLY_EFULL when max_unacked batches or bytes
 *         are waiting for acks — nothing was queued, retry after tally_flush()
 *         or later; TALLY_ECLOSED after destroy began.
 */
TALLY_EXPORT int tally_emit(tally_client_t *c, const tally_event_t *ev);

/** @brief Convenience: emit an integer event stamped now, without labels. */
TALLY_EXPORT int tally_emit_int(tally_client_t *c, const char *ns, const char *metric,
                                int64_t value);

/**
 * @brief Seal the open batch, send it, and wait until every batch is acked.
 * @param timeout_ms how long to wait; 0 only seals and sends.
 * @return 0 when nothing is left unacked, TALLY_ETIMEDOUT otherwise.
 */
TALLY_EXPORT int tally_flush(tally_client_t *c, int timeout_ms);

/** @brief Copy the client's counters into *out. */
TALLY_EXPORT void tally_client_stats(tally_client_t *c, tally_client_stats_t *out);

/**
 * @brief Ack latency quantile: time from sealing a batch to the ack that
 *        released it, over every batch acked so far.
 * @param q quantile in [0, 1], e.g. 0.99.
 * @return microseconds (bucket upper bound, within ~6%), 0 when none acked.
 */
TALLY_EXPORT uint64_t tally_client_ack_latency_us(tally_client_t *c, double q);

/**
 * @brief Stop the client and free it. Unacked batches are dropped: call
 *        tally_flush() first to know they were counted.
 */
TALLY_EXPORT void tally_client_destroy(tally_client_t *c);

#ifdef __cplusplus
}
#endif
#endif
