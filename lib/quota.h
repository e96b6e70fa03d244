/* quota.h — quota objects (the XC object model), label selectors, effective limits and live usage against them.
 *
 * INTERFACE AGREED BETWEEN ENGINEERS: the functions below are implemented by
 * the quota module (lib/quota.c) and used by the alerts and API-limit code.
 * Keep these signatures; add what else the module needs.
 */
#ifndef TALLY_QUOTA_H
#define TALLY_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "plans.h"
#include "store.h"

enum { TALLY_QUOTA_OBJECT = 1, TALLY_QUOTA_RESOURCE = 2 };

/** One effective object or resource limit of a namespace. */
typedef struct tally__quota_limit {
    char key[TALLY_MAX_METRIC_LEN + 1]; /**< metric label */
    int kind;                          /**< TALLY_QUOTA_OBJECT or TALLY_QUOTA_RESOURCE */
    double maximum;                    /**< the limit; < 0 = unlimited */
    char source[128];                  /**< "plan:NAME" or "quota:NAME" (where it came from) */
} tally__quota_limit_t;

/** One effective API rate limit (api_limits). */
typedef struct tally__quota_api_limit {
    char key[128];    /**< API operation name (route name, e.g. "usage_details") */
    uint32_t rate;    /**< requests per unit */
    int unit_s;       /**< the unit in seconds (1, 60, 3600, ...) */
    uint32_t burst;   /**< extra requests allowed at once */
} tally__quota_api_limit_t;

typedef struct tally__quota_limits {
    tally__quota_limit_t *items;
    size_t n;
    tally__quota_api_limit_t *apis;
    size_t napis;
} tally__quota_limits_t;

/**
 * @brief Effective limits of namespace ns: the tenant plan's default quota
 *        (the applied one in store object tenant/system/default_quota when
 *        present, else the current plan's from the catalog) overlaid by the
 *        namespace's enabled quota objects (later keys win).
 * @param[out] out caller frees with tally__quota_limits_free().
 * @return 0, -ENOMEM, TALLY_ESTORE.
 */
int tally__quota_effective(tally__store_t *store, const tally__plans_t *plans,
                           const char *default_plan, const char *ns, tally__quota_limits_t *out);

void tally__quota_limits_free(tally__quota_limits_t *l);

/**
 * @brief Live usage of one limit key in ns, as committed by the last flush:
 *        objects and gauges (catalog aggregation last or max) → the latest
 *        hourly value; accumulating resources → the current month's total.
 * @param now_s the wall clock (selects the month and the latest hour).
 * @return 0 (usage 0 when there is no data), TALLY_ESTORE.
 */
int tally__quota_usage(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                       const char *key, int64_t now_s, double *usage);

#endif
