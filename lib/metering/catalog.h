/* catalog.h — the metric catalog: how each metric label is aggregated, named and billed.
 *
 * The catalog is an INI file with one section per metric label:
 *
 *     [http_requests]
 *     usage_type = HTTP Requests     ; display name in usage objects
 *     unit = requests                ; unit of the raw values
 *     aggregation = sum              ; sum | count | max | last (a gauge)
 *     billable_unit = million requests
 *     division_factor = 1000000      ; billable quantity = raw / factor
 *     value_field = requests         ; CloudEvents: data field holding the value
 *
 * Every key is optional: usage_type defaults to the label, unit to "count",
 * aggregation to sum, billable_unit to the unit, division_factor to 1 and
 * value_field to "value". value_field ([A-Za-z0-9_.-]{1,64}) names the key
 * of a CloudEvent's `data` object that carries the value (lib/cloudevents.h);
 * it is a literal top-level key, not a path ("a.b" is the key "a.b").
 * A metric label that is not in the catalog is still counted — as a sum,
 * with its label as usage type and unit "count" (see
 * tally__catalog_lookup_or_default()) — never dropped.
 *
 * A loaded catalog is immutable: any number of threads may read it without
 * locks; a reload builds a new one and swaps the pointer. Definitions keep
 * the order of the file; lookups are binary searches over a sorted index.
 */
#ifndef TALLY_CATALOG_H
#define TALLY_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "tally/tally.h"

/** Bytes of a catalog text field (usage_type, unit, billable_unit), NUL included. */
#define TALLY__CATALOG_TEXT_LEN 128

/** Bytes of a value_field name, NUL included: [A-Za-z0-9_.-]{1,64}. */
#define TALLY__CATALOG_FIELD_LEN 65
/** The value_field of a metric that does not set one, or is not catalogued. */
#define TALLY__CATALOG_VALUE_FIELD "value"

/** How the values of one metric combine within a bucket (hour, month). */
typedef enum tally__agg {
    TALLY_AGG_SUM = 0,   /**< add the values (requests, bytes, seconds) */
    TALLY_AGG_COUNT = 1, /**< count the events, ignoring their values */
    TALLY_AGG_MAX = 2,   /**< keep the largest value */
    TALLY_AGG_LAST = 3,  /**< keep the latest value by event time (a gauge) */
} tally__agg_t;

/** Number of aggregations, for tables indexed by tally__agg_t. */
#define TALLY__AGG_N 4

/** One metric of the catalog. Plain data: copy it freely. */
typedef struct tally__metric_def {
    char metric[TALLY_MAX_METRIC_LEN + 1];       /**< the label, [A-Za-z0-9_.:-]{1,64} */
    char usage_type[TALLY__CATALOG_TEXT_LEN];    /**< display name ("HTTP Requests") */
    char unit[TALLY__CATALOG_TEXT_LEN];          /**< unit of raw values ("requests") */
    tally__agg_t aggregation;                    /**< how values combine */
    char billable_unit[TALLY__CATALOG_TEXT_LEN]; /**< unit billed ("million requests") */
    uint64_t division_factor;                    /**< billable = raw / factor; >= 1 */
} tally__metric_def_t;

typedef struct tally__catalog tally__catalog_t;

/**
 * @brief Load a metric catalog from an INI file.
 * @param path the file; borrowed for the call.
 * @param[out] out the catalog, owned by the caller until
 *        tally__catalog_destroy(); untouched on failure.
 * @param err buffer for a one-line reason on failure ("FILE:LINE: [metric]
 *        key: reason", "FILE:LINE: [metric]: reason", "FILE: reason"); may
 *        be NULL.
 * @param errlen size of err.
 * @return 0; TALLY_ECONFIG for a syntax error, an unknown key, a duplicate
 *         key or metric, a bad metric label, a bad aggregation, a
 *         division_factor that is not a positive integer, an empty or
 *         over-long text, a value_field outside [A-Za-z0-9_.-]{1,64};
 *         -errno when the file cannot be opened or read (-ENOENT when
 *         missing); -ENOMEM.
 */
int tally__catalog_load(const char *path, tally__catalog_t **out, char *err, size_t errlen);

/** @brief Free a catalog. NULL is ignored. Pointers from it die with it. */
void tally__catalog_destroy(tally__catalog_t *cat);

/** @brief Number of metrics defined; 0 for a NULL catalog. */
size_t tally__catalog_count(const tally__catalog_t *cat);

/**
 * @brief The i-th metric in file order.
 * @return the definition, valid until tally__catalog_destroy(); NULL when
 *         i >= tally__catalog_count().
 */
const tally__metric_def_t *tally__catalog_at(const tally__catalog_t *cat, size_t i);

/**
 * @brief The definition of a metric label.
 * @param cat the catalog; NULL behaves as an empty catalog.
 * @return the definition, valid until tally__catalog_destroy(); NULL when
 *         the label is not in the catalog.
 */
const tally__metric_def_t *tally__catalog_find(const tally__catalog_t *cat, const char *metric);

/**
 * @brief The definition of a metric label, or the default one for a label
 *        the catalog does not know (sum, usage_type = label, unit and
 *        billable_unit "count", factor 1), built in *tmp.
 * @param cat the catalog; NULL behaves as an empty catalog.
 * @param tmp caller's storage for the default definition.
 * @return the catalog's definition or tmp; never NULL. A label longer than
 *         TALLY_MAX_METRIC_LEN is truncated in tmp.
 */
const tally__metric_def_t *tally__catalog_lookup_or_default(const tally__catalog_t *cat,
                                                            const char *metric,
                                                            tally__metric_def_t *tmp);

/** @brief Fill *out with the default definition of metric (see above). */
void tally__metric_def_default(const char *metric, tally__metric_def_t *out);

/** @brief The billable quantity of a raw quantity: raw / division_factor. */
double tally__metric_billable(const tally__metric_def_t *def, double raw);

/** @brief Whether s is a valid metric label, [A-Za-z0-9_.:-]{1,64}. 1 or 0. */
int tally__catalog_valid_label(const char *s);

/**
 * @brief The value_field of a metric label: the key of a CloudEvent's data
 *        object that carries its value.
 * @param cat the catalog; NULL behaves as an empty catalog.
 * @param metric the metric label; borrowed for the call.
 * @return the catalog's value_field, valid until tally__catalog_destroy(),
 *         or the static TALLY__CATALOG_VALUE_FIELD ("value") when the label
 *         is not catalogued or sets none; never NULL.
 */
const char *tally__catalog_value_field(const tally__catalog_t *cat, const char *metric);

/** @brief Whether s is a valid value_field name, [A-Za-z0-9_.-]{1,64}. 1 or 0. */
int tally__catalog_valid_value_field(const char *s);

/** @brief "sum", "count", "max" or "last"; "unknown" for anything else. Static. */
const char *tally__agg_name(tally__agg_t agg);

/**
 * @brief Parse an aggregation name: sum, count, max, last, or gauge (= last),
 *        in any case.
 * @return 0 with *out set, or TALLY_EINVAL.
 */
int tally__agg_parse(const char *s, tally__agg_t *out);

#endif
