/* usage.h — usage reports over the store: per-object totals, hourly breakdowns, summaries.
 *
 * Pure logic over the hourly rollups of store.h and the metric catalog of
 * catalog.h; the HTTP handlers of daemon/routes_usage.c only parse, call
 * these functions and render. Every function opens one read snapshot of the
 * store, so a report sees whole flushes or none.
 *
 * Window rule. A report covers the hours that overlap [from, to): hour H
 * (its start, unix seconds, a multiple of 3600) counts when
 *     H >= hour_floor(from)  and  H < to.
 * tally__usage_window() turns a requested [from, to) (milliseconds) into the
 * hour-aligned effective window [from_s, to_s) = [hour_floor(from),
 * hour_ceil(to)) that holds exactly those hours, and that is what reports
 * state as their start and end. A window of hour-aligned bounds is its own
 * effective window, so re-applying the rule (an hourly breakdown query)
 * selects the same hours.
 *
 * Quantity rule. Each rollup record (one series, one hour) contributes by
 * its metric's catalog aggregation (metrics missing from the catalog are
 * sums):
 *   - sum:   its sum — exact int64 arithmetic while only integer values
 *            contributed (and no int64 overflow), doubles otherwise;
 *   - count: its event count;
 *   - max:   its largest value; a total is the largest over the hours;
 *   - last:  its last value by event time (a gauge); a total adds these up
 *            over the hours (and over series), so a gauge of "objects"
 *            totals "object-hours".
 * Totals of sum, count and last are the sums of their hourly parts; the
 * total of max is the largest hourly part. The numbers are the ones
 * `tallyctl dump` prints for the same records, to the last unit.
 *
 * Overflow marker (docs/semantics-overflow.md). A quantity whose integer
 * arithmetic passed int64 — a sum metric's record flagged
 * TALLY_ROLLUP_INT_OVERFLOW, or a total here adding up past int64 — goes on
 * in double precision like the records do and says so: int_overflow is 1,
 * and the API marks the line ("tally_inexact": true). Float values alone
 * do not set it: they are inexact by nature, not by overflow.
 *
 * Grouping. An item is (namespace, metric label, value of label "object",
 * "" when the series has none); series differing in other labels fold into
 * the same item. An hourly breakdown of one item groups per (hour, value of
 * label "deployment", value of label "container"), "" when absent.
 *
 * Results are plain arrays owned by the caller, freed with the matching
 * free function. Threads: any thread (the store allows concurrent readers,
 * the catalog is immutable).
 */
#ifndef TALLY_USAGE_H
#define TALLY_USAGE_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "store.h"
#include "tally/tally.h"

/** The path namespace that spans every namespace of the tenant. */
#define TALLY_USAGE_ALL_NS "system"

/** Bytes that always hold tally__usage_qty_format() / tally__usage_billable_format() output. */
#define TALLY_USAGE_NUM_LEN 64

/**
 * A quantity: an exact int64 part plus a double part. While no float value
 * (nor an int64 overflow) contributed, is_float is 0 and i is the exact
 * value; otherwise the value is i + f.
 */
typedef struct tally__usage_qty {
    int64_t i;        /**< exact integer part */
    double f;         /**< the rest: float values, int64 overflow */
    int is_float;     /**< 1 once f contributed */
    int int_overflow; /**< 1 once an int64 overflow contributed (see the overflow marker) */
    uint64_t records; /**< rollup records folded in; 0 = no data */
} tally__usage_qty_t;

/** An hour-aligned effective window [from_s, to_s), from_s < to_s. */
typedef struct tally__usage_window {
    int64_t from_s; /**< first hour counted */
    int64_t to_s;   /**< end of the last hour counted */
} tally__usage_window_t;

/** One line of usage_details: a (namespace, metric, object) over a window. */
typedef struct tally__usage_item {
    char ns[TALLY_MAX_NS_LEN + 1];
    char metric[TALLY_MAX_METRIC_LEN + 1];
    char object[TALLY_MAX_LABEL_VALUE_LEN + 1]; /**< "" when the series have no object label */
    tally__metric_def_t def;                    /**< the metric's catalog (or default) definition */
    tally__usage_qty_t quantity;
    int64_t first_hour_s; /**< earliest hour with data */
    int64_t last_hour_s;  /**< latest hour with data */
} tally__usage_item_t;

/** One line of an hourly breakdown. */
typedef struct tally__usage_hour {
    int64_t hour_s;                                 /**< the hour's start; it ends 3600 s later */
    char deployment[TALLY_MAX_LABEL_VALUE_LEN + 1]; /**< "" when absent */
    char container[TALLY_MAX_LABEL_VALUE_LEN + 1];  /**< "" when absent */
    tally__usage_qty_t quantity;
} tally__usage_hour_t;

/** One usage type of the summary. */
typedef struct tally__usage_summary {
    char usage_type[TALLY__CATALOG_TEXT_LEN];
    char unit[TALLY__CATALOG_TEXT_LEN];          /**< raw unit (of the first metric, by label) */
    char billable_unit[TALLY__CATALOG_TEXT_LEN]; /**< billed unit (likewise) */
    tally__usage_qty_t raw;                      /**< Σ of the metrics' totals */
    char raw_text[TALLY_USAGE_NUM_LEN];          /**< raw as decimal text */
    double billable;                             /**< Σ raw_m / division_factor_m */
    char billable_text[TALLY_USAGE_NUM_LEN];     /**< billable as decimal text (see below) */
} tally__usage_summary_t;

/* ---- windows and scope -------------------------------------------------- */

/**
 * @brief The effective window of a requested [from_ms, to_ms): hours
 *        H >= hour_floor(from) and H < to, as [hour_floor(from), hour_ceil(to)).
 * @param from_ms requested start, unix milliseconds.
 * @param to_ms requested end (exclusive), unix milliseconds.
 * @param[out] out the window; untouched on failure.
 * @return 0, or TALLY_EINVAL when from_ms >= to_ms or the window leaves the
 *         years 0000..9999.
 */
int tally__usage_window(int64_t from_ms, int64_t to_ms, tally__usage_window_t *out);

/**
 * @brief The namespace a path namespace restricts reports to.
 * @return NULL for TALLY_USAGE_ALL_NS ("every namespace"), else path_ns itself.
 */
const char *tally__usage_scope(const char *path_ns);

/**
 * @brief Whether a report of path namespace path_ns may show namespace ns:
 *        "system" shows any, any other only itself.
 * @return 1 or 0.
 */
int tally__usage_ns_allowed(const char *path_ns, const char *ns);

/* ---- quantities ----------------------------------------------------------- */

/** @brief The value as a double (exact below 2^53). */
double tally__usage_qty_value(const tally__usage_qty_t *q);

/**
 * @brief Whether the value is an exact integer that fits in int64 (always
 *        when is_float is 0; for float quantities, when i + f is integral
 *        and below 2^53 in magnitude).
 * @param[out] out the integer when 1 is returned; may be NULL.
 * @return 1 or 0.
 */
int tally__usage_qty_as_int(const tally__usage_qty_t *q, int64_t *out);

/**
 * @brief Fold one hourly rollup record into q by an aggregation (see the
 *        quantity rule above). Sets q->int_overflow when a sum record is
 *        flagged TALLY_ROLLUP_INT_OVERFLOW or the total passes int64.
 */
void tally__usage_qty_add_rollup(tally__usage_qty_t *q, tally__agg_t agg, const tally__rollup_t *r);

/**
 * @brief Fold quantity src into dst: max for TALLY_AGG_MAX (int_overflow
 *        follows the value kept), addition otherwise (int_overflow of
 *        either side, or of the addition itself, marks dst).
 */
void tally__usage_qty_merge(tally__usage_qty_t *dst, tally__agg_t agg,
                            const tally__usage_qty_t *src);

/**
 * @brief Decimal text of a quantity: the integer when tally__usage_qty_as_int(),
 *        else the shortest "%.Ng" (N = 15..17) that reads back as the same double.
 * @param buf at least TALLY_USAGE_NUM_LEN bytes.
 * @return buf.
 */
char *tally__usage_qty_format(const tally__usage_qty_t *q, char *buf, size_t cap);

/**
 * @brief Decimal text of raw / factor, rounded half away from zero to 12
 *        fractional digits, trailing zeros (and a bare '.') removed. Exact
 *        (integer arithmetic) when the quantity is an exact integer, so
 *        1234567 / 1000000 is "1.234567" and 1 / 3600 "0.000277777778";
 *        computed from doubles otherwise.
 * @param factor the catalog's division_factor; 0 is taken as 1.
 * @param buf at least TALLY_USAGE_NUM_LEN bytes.
 * @return buf.
 */
char *tally__usage_billable_format(const tally__usage_qty_t *raw, uint64_t factor, char *buf,
                                   size_t cap);

/* ---- reports -------------------------------------------------------------- */

/**
 * @brief Usage per (namespace, metric label, object) over a window.
 * @param store the store; read in one snapshot.
 * @param cat the metric catalog (NULL = empty: every metric is a sum).
 * @param ns one namespace, or NULL for every namespace.
 * @param w the effective window (tally__usage_window()).
 * @param[out] out the items sorted by (namespace, metric, object), owned by
 *        the caller until tally__usage_items_free(); NULL when there are none.
 * @param[out] n how many.
 * @return 0, TALLY_ECORRUPT (a key that does not parse), TALLY_ESTORE, -ENOMEM.
 *         On failure *out is NULL and *n 0.
 */
int tally__usage_details(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                         const tally__usage_window_t *w, tally__usage_item_t **out, size_t *n);

/** @brief Free what tally__usage_details() returned. NULL is ignored. */
void tally__usage_items_free(tally__usage_item_t *items);

/**
 * @brief The hourly breakdown of one (namespace, metric, object) over a
 *        window: one line per (hour, deployment, container) with data.
 * @param ns, metric, object NUL-terminated; object "" selects series without
 *        an object label (or with an empty one).
 * @param[out] out lines sorted by (hour, deployment, container), owned by the
 *        caller until tally__usage_hours_free(); NULL when there are none.
 * @param[out] n how many.
 * @return as tally__usage_details().
 * @note The lines of sum, count and last metrics add up to the item's
 *       quantity of tally__usage_details() over the same window; for max
 *       metrics the item is their largest.
 */
int tally__usage_hourly(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                        const char *metric, const char *object, const tally__usage_window_t *w,
                        tally__usage_hour_t **out, size_t *n);

/** @brief Free what tally__usage_hourly() returned. NULL is ignored. */
void tally__usage_hours_free(tally__usage_hour_t *hours);

/**
 * @brief The summary per usage type (the catalog's usage_type; a metric
 *        missing from the catalog is its own usage type, named by its
 *        label) over a window: raw = Σ of the totals of its metrics (over
 *        every item); billable = Σ raw_m / division_factor_m, as text by
 *        tally__usage_billable_format() (exact when the metrics of the type
 *        share one factor and the raw total is an exact integer).
 * @param ns one namespace, or NULL for every namespace.
 * @param[out] out summaries sorted by usage type, owned by the caller until
 *        tally__usage_summaries_free(); only usage types with data appear.
 * @return as tally__usage_details().
 */
int tally__usage_summary(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                         const tally__usage_window_t *w, tally__usage_summary_t **out, size_t *n);

/** @brief Free what tally__usage_summary() returned. NULL is ignored. */
void tally__usage_summaries_free(tally__usage_summary_t *s);

/* ---- streaming reports ------------------------------------------------------
 * The items of tally__usage_details() one at a time, in the same order,
 * from bounded passes over the store (usage.c explains how): memory is
 * bounded by constants (about 3 MiB), not by the number of series, and no
 * read transaction lives longer than one chunk of 4096 series keys. Chunks
 * may see different snapshots: a flush committed during a long read shows
 * in the chunks read after it. */

struct tally__selector;

/** What a streaming report covers. Strings are borrowed while the iterator lives. */
typedef struct tally__usage_query {
    const char *ns;     /**< one namespace, or NULL for every namespace */
    const char *metric; /**< one metric label, or NULL for every metric */
    const struct tally__selector *selector; /**< series whose labels match; NULL: all */
    tally__usage_window_t w;                /**< the effective window */
    /** resume strictly after the item (after_ns, after_metric, after_object) */
    int has_after;
    char after_ns[TALLY_MAX_NS_LEN + 1];
    char after_metric[TALLY_MAX_METRIC_LEN + 1];
    char after_object[TALLY_MAX_LABEL_VALUE_LEN + 1];
} tally__usage_query_t;

typedef struct tally__usage_iter tally__usage_iter_t;

/** @brief Start a streaming usage_details report. @return 0 or -ENOMEM. */
int tally__usage_iter_open(tally__store_t *store, const tally__catalog_t *cat,
                           const tally__usage_query_t *q, tally__usage_iter_t **out);

/**
 * @brief The next item.
 * @param[out] item valid until the next call.
 * @return 1 with an item, 0 at the end, or an error as tally__usage_details().
 * @note One thread at a time per iterator; any thread.
 */
int tally__usage_iter_next(tally__usage_iter_t *it, const tally__usage_item_t **item);

/** @brief Free an iterator. NULL is ignored. */
void tally__usage_iter_close(tally__usage_iter_t *it);

/** One line of a group_by report: a metric's total over the series sharing one value of a label. */
typedef struct tally__usage_group {
    char metric[TALLY_MAX_METRIC_LEN + 1];
    char value[TALLY_MAX_LABEL_VALUE_LEN + 1]; /**< "" for series without the label */
    tally__metric_def_t def;
    tally__usage_qty_t quantity; /**< folded by the metric's aggregation */
    uint64_t series;             /**< series with data that went into it */
} tally__usage_group_t;

/**
 * @brief Totals per (metric, value of `label`) over the series of q (its
 *        has_after is ignored), largest quantity first (ties by metric,
 *        value), the first `top` of them (0: all).
 * @param max_groups most distinct (metric, value) pairs held; a report that
 *        meets more fails with TALLY_ETOOBIG (narrow it with a filter).
 * @param[out] total how many groups there were before the cut to `top`.
 * @return 0, TALLY_ETOOBIG, or as tally__usage_details().
 * @note Any thread.
 */
int tally__usage_groups(tally__store_t *store, const tally__catalog_t *cat,
                        const tally__usage_query_t *q, const char *label, size_t max_groups,
                        size_t top, tally__usage_group_t **out, size_t *n, size_t *total);

/** @brief Free what tally__usage_groups() returned. NULL is ignored. */
void tally__usage_groups_free(tally__usage_group_t *g);

#endif
