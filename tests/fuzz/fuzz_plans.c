/* fuzz_plans.c — libFuzzer harness: the plan catalog loader (plans.ini) against the checked-in metric catalog. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "common.h"
#include "plans.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tally__catalog_t *metrics;
    char err[512];
    if (!metrics) {
        char mpath[512];
        if (tally__catalog_load(fuzz_src("config/metrics.ini", mpath, sizeof mpath), &metrics, err,
                                sizeof err) != 0)
            abort();
    }
    if (fuzz_ini_known_bug(data, size))
        return 0;
    const char *path = fuzz_write_file("plans.ini", data, size);
    tally__plans_t *p = NULL;
    if (tally__plans_load(path, metrics, &p, err, sizeof err) == 0) {
        size_t n = tally__plans_count(p);
        for (size_t i = 0; i < n; i++) {
            const tally__plan_t *pl = tally__plans_at(p, i);
            if (!pl || tally__plans_find(p, pl->name) != pl || !pl->title)
                abort();
            (void)tally__plan_price_find(pl, "http_requests");
            (void)tally__plan_allows_addon(pl, "f5xc_waap_standard");
            (void)tally__plan_includes_addon(pl, "f5xc_waap_standard");
        }
        size_t na = tally__plans_addon_count(p);
        for (size_t i = 0; i < na; i++)
            if (!tally__plans_addon_at(p, i))
                abort();
        tally__plans_destroy(p);
    }
    return 0;
}
