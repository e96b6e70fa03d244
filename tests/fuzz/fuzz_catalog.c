/* fuzz_catalog.c — libFuzzer harness: the metric catalog loader (metrics.ini) and its lookups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fuzz_ini_known_bug(data, size))
        return 0;
    const char *path = fuzz_write_file("metrics.ini", data, size);
    char err[512];
    tally__catalog_t *cat = NULL;
    if (tally__catalog_load(path, &cat, err, sizeof err) == 0) {
        size_t n = tally__catalog_count(cat);
        for (size_t i = 0; i < n; i++) {
            const tally__metric_def_t *d = tally__catalog_at(cat, i);
            if (!d || tally__catalog_find(cat, d->metric) != d)
                abort(); /* every entry is found under its own label */
            if (d->division_factor < 1)
                abort(); /* documented: >= 1 */
            (void)tally__metric_billable(d, 12345.5);
            (void)tally__agg_name(d->aggregation);
        }
        tally__metric_def_t tmp;
        (void)tally__catalog_lookup_or_default(cat, "no_such_metric", &tmp);
        tally__catalog_destroy(cat);
    }
    return 0;
}
