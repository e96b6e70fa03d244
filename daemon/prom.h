/* prom.h — builds Prometheus text exposition (format 0.0.4) into one buffer without stdio.
 *
 * /metrics is scraped often and must answer in well under a millisecond;
 * fprintf into a memstream cost most of it. Appends are memcpy and a
 * hand-rolled integer formatter. Loop thread only (no shared state).
 * Label values are written as given: callers pass only names of their own
 * (route names, reasons, bucket bounds) that need no escaping.
 */
#ifndef TALLY_PROM_H
#define TALLY_PROM_H

#include <stddef.h>
#include <stdint.h>

typedef struct tally_prom {
    char *p;
    size_t len, cap;
    int err;
} tally_prom_t;

void tally_prom_init(tally_prom_t *p);
/** @brief `# HELP name help` and `# TYPE name type`. */
void tally_prom_family(tally_prom_t *p, const char *name, const char *type, const char *help);
/**
 * @brief One sample line: name{k1="v1",k2="v2"} value. k1/k2 NULL for fewer labels.
 */
void tally_prom_u64(tally_prom_t *p, const char *name, const char *k1, const char *v1,
                    const char *k2, const char *v2, uint64_t v);
void tally_prom_double(tally_prom_t *p, const char *name, const char *k1, const char *v1,
                       const char *k2, const char *v2, double v);
/** @brief The text (malloc'd; caller frees) or NULL when memory ran out. */
char *tally_prom_take(tally_prom_t *p, size_t *len);

#endif
