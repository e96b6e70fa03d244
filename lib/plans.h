/* plans.h — the plan catalog ([billing] plans_file): plans, their prices and quotas, add-on services, transition flows.
 *
 * PLACEHOLDER HEADER: the catalog module is being written; only these two
 * functions are fixed so that tallyd can load and validate the catalog.
 */
#ifndef TALLY_PLANS_H
#define TALLY_PLANS_H

#include <stddef.h>

#include "catalog.h"

typedef struct tally__plans tally__plans_t;

/**
 * @brief Load and validate the plan catalog.
 * @param metrics the metric catalog (price keys must be its metric labels).
 * @param err "FILE:LINE: [section] key: reason" on failure.
 * @return 0, TALLY_ECONFIG, -errno.
 */
int tally__plans_load(const char *path, const tally__catalog_t *metrics, tally__plans_t **out,
                      char *err, size_t errlen);

/** @brief Free a catalog. NULL is ignored. */
void tally__plans_destroy(tally__plans_t *p);

#endif
