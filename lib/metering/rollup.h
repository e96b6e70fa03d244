/* rollup.h — the rollup record (sum, count, max, last of a series over an hour or a month) and its
 * LMDB key.
 *
 * A series is (namespace, metric label, labels). Its key string is
 *   ns 0x00 metric 0x00 k1 0x1f v1 0x1e k2 0x1f v2 ...
 * with labels sorted by key; names and label text never contain bytes
 * below 0x20, so the separators are unambiguous, and byte order keeps a
 * namespace's series together. The store names each series with a dense
 * 32-bit id; a rollup key is the period start (unix seconds) as 8
 * big-endian bytes with the sign bit flipped, then that id as 4 big-endian
 * bytes, so LMDB's byte order is (time, id) order. Time first keeps the
 * records a flush rewrites (the current hour and month of every active
 * series) together on few pages however much history the store holds;
 * twelve-byte keys keep many records on a page.
 *
 * Every record keeps all four aggregates whatever the catalog says; the
 * catalog only chooses which one is the reported quantity. That keeps the
 * ingest path free of catalog lookups and lets a catalog change re-read
 * history. Integer values are summed exactly in int64; float values in a
 * separate double, so integer metering never loses a unit to rounding.
 *
 * Overflow rule (docs/semantics-overflow.md). An integer addition that
 * would take sum_i past int64 leaves sum_i as it was and adds the value to
 * sum_f instead: the record keeps counting, in double precision, and
 * carries TALLY_ROLLUP_FLOAT | TALLY_ROLLUP_INT_OVERFLOW from then on (merge
 * ORs the flags, so they survive every later merge). tally__rollup_add()
 * and tally__rollup_merge() return 1 for such an addition, so that the
 * caller counts it: one per overflowing addition, never silently.
 */
#ifndef TALLY_ROLLUP_H
#define TALLY_ROLLUP_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "tally/tally.h"

enum {
    TALLY_ROLLUP_FLOAT = 1, /**< a float value (or an int64 overflow) went into sum_f */
    /** the integer sum overflowed int64 at least once: sum_i + sum_f is no
     *  longer an exact integer. Always set together with TALLY_ROLLUP_FLOAT,
     *  so readers that test only FLOAT still add sum_f. Records written
     *  before this flag existed carry FLOAT alone after an overflow. */
    TALLY_ROLLUP_INT_OVERFLOW = 2,
};

typedef struct tally__rollup {
    int64_t sum_i;      /**< exact sum of integer values */
    double sum_f;       /**< sum of float values */
    uint64_t count;     /**< number of events */
    double max;         /**< largest value */
    double last;        /**< value of the latest event (by event time) */
    int64_t last_ts_ms; /**< event time of `last` */
    uint32_t flags;     /**< TALLY_ROLLUP_* */
    uint32_t reserved;
    double last_sum; /**< sum over the hours covered of each hour's `last`: equal to
                          `last` in an hourly record; in a monthly record it is what a
                          gauge (objects → object-hours) totals over the month. The
                          store maintains it at commit; deltas carry 0. Last in the
                          struct: hourly records are stored without it
                          (TALLY_ROLLUP_HOURLY_SIZE bytes), since it equals `last`. */
} tally__rollup_t;

/** Bytes of an hourly record on disk: everything before last_sum. */
#define TALLY_ROLLUP_HOURLY_SIZE (sizeof(tally__rollup_t) - sizeof(double))

/** Longest series key: ns + metric + labels + separators. */
#define TALLY_SERIES_KEY_MAX (TALLY_MAX_NS_LEN + TALLY_MAX_METRIC_LEN + 2 + TALLY_MAX_LABELS_BYTES)
/** Bytes that hold tally__series_text() of any series for a log line (truncated to fit). */
#define TALLY_SERIES_TEXT_MAX 256
/** Bytes of a rollup key. */
#define TALLY_ROLLUP_KEY_LEN 12

/** @brief Start an empty record. */
void tally__rollup_init(tally__rollup_t *r);

/**
 * @brief Add one event's value at event time ts_ms.
 * @return 1 when the integer value did not fit in sum_i (int64 overflow):
 *         it went to sum_f and the record is flagged (see the overflow rule
 *         above); 0 otherwise.
 */
int tally__rollup_add(tally__rollup_t *r, int is_float, int64_t ival, double fval, int64_t ts_ms);

/**
 * @brief Fold src into dst (src is the newer delta: it wins ties of `last`).
 * @return 1 when dst->sum_i + src->sum_i overflowed int64 (src->sum_i went
 *         to dst->sum_f, dst is flagged), 0 otherwise. A flag src already
 *         carries is copied, not counted again.
 */
int tally__rollup_merge(tally__rollup_t *dst, const tally__rollup_t *src);

/** @brief The sum as a double (exact when it fits in 2^53). */
double tally__rollup_sum(const tally__rollup_t *r);

/** @brief Whether the sum is an exact integer (no float contributed). */
int tally__rollup_sum_is_int(const tally__rollup_t *r);

/** @brief Whether the integer sum ever overflowed int64 (TALLY_ROLLUP_INT_OVERFLOW). */
int tally__rollup_int_overflowed(const tally__rollup_t *r);

/** A decoded series key, pointing into the key bytes. */
typedef struct tally__series {
    const char *ns;
    uint32_t ns_len;
    const char *metric;
    uint32_t metric_len;
    const char *labels; /**< the encoded label part, possibly empty */
    uint32_t labels_len;
} tally__series_t;

/**
 * @brief Build a series key into buf (TALLY_SERIES_KEY_MAX bytes) from
 *        strings as the wire decoder hands them out (pointer and length,
 *        no NUL): the one writer of the format, which tallyd's ingest path
 *        calls for every decoded event.
 * @param labels nlabels pairs (at most TALLY_MAX_LABELS); sorted here into
 *        canonical order (byte order of the key, shorter first on a tie).
 * @return the key length. Inputs must be validated already (lengths within
 *         the TALLY_MAX_* limits, no byte below 0x20 in any part).
 */
size_t tally__series_key_wire(char *buf, tally__str_t ns, tally__str_t metric,
                              const tally__wire_label_t *labels, uint32_t nlabels);

/**
 * @brief tally__series_key_wire() for NUL-terminated labels (the embedded
 *        ingest path, the tools and the tests): same bytes.
 * @param labels pairs; sorted here into canonical order.
 * @return the key length. Inputs must be validated already.
 */
size_t tally__series_key(char *buf, const char *ns, size_t ns_len, const char *metric,
                         size_t metric_len, const tally_label_t *labels, size_t nlabels);

/** @brief Split a series key. @return 0 or TALLY_ECORRUPT. */
int tally__series_parse(const char *key, size_t len, tally__series_t *out);

/**
 * @brief A series key as one line of text for logs: `ns/metric{k=v,k=v}`
 *        (no braces without labels), with `"` and `\` escaped by `\` so
 *        it can sit inside a quoted log value. Truncated to fit, always
 *        NUL-terminated (cap > 0); a key that does not parse is shown as
 *        `?`.
 * @return buf.
 */
char *tally__series_text(const char *key, size_t len, char *buf, size_t cap);

/**
 * @brief Iterate the labels of an encoded label part.
 * @param pos in/out cursor, start at 0.
 * @return 1 and the next key/value, or 0 at the end.
 */
int tally__series_next_label(const char *labels, uint32_t len, uint32_t *pos, const char **k,
                             uint32_t *klen, const char **v, uint32_t *vlen);

/**
 * @brief Build a rollup key into buf (TALLY_ROLLUP_KEY_LEN bytes): the
 *        period start, then the store's series id.
 */
void tally__rollup_key(unsigned char *buf, uint32_t sid, int64_t period_s);

/**
 * @brief Split a rollup key into series id and period.
 * @return 0 or TALLY_ECORRUPT.
 */
int tally__rollup_key_parse(const void *key, size_t len, uint32_t *sid, int64_t *period_s);

#endif
