/* prom.h — builds Prometheus text exposition (format 0.0.4) into one buffer without stdio.
 *
 * /metrics is scraped often and, under load, must cost a few microseconds:
 * with one event loop, a client's p99 is about (connections × service time).
 * So the builder is memcpy of text known at compile time plus a hand-rolled
 * integer formatter; printf's float machinery is left for values that really
 * are fractions of unknown scale (quota ratios).
 *
 * Two ways to write a sample:
 *  - tally_prom_family() + tally_prom_u64()/tally_prom_double(): names and
 *    labels as C strings (strlen per piece), for code that is not hot;
 *  - TALLY_PROM_RAW() of a literal holding everything up to the value
 *    ("# HELP…\n# TYPE…\nname{k=\"v\"} "), then tally_prom_end_u64() or
 *    tally_prom_end_fixed(): one memcpy and the digits.
 *
 * Errors are sticky: after an allocation failure every append is a no-op and
 * tally_prom_take() returns NULL. Loop thread only (no shared state). Label
 * values are written as given: callers pass only names of their own (route
 * names, reasons, bucket bounds) that need no escaping.
 */
#ifndef TALLY_PROM_H
#define TALLY_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"

/** The exposition is written into the shared buffer (buf.h). */
typedef tally__buf_t tally_prom_t;

/** @brief Start an exposition (allocates 16 KiB; a failure is sticky as any other). */
void tally_prom_init(tally_prom_t *p);
/** @brief `# HELP name help` and `# TYPE name type`. */
void tally_prom_family(tally_prom_t *p, const char *name, const char *type, const char *help);
/**
 * @brief One sample line: name{k1="v1",k2="v2"} value. k1/k2 NULL for fewer labels.
 */
void tally_prom_u64(tally_prom_t *p, const char *name, const char *k1, const char *v1,
                    const char *k2, const char *v2, uint64_t v);
/** @brief As tally_prom_u64(); whole numbers are printed as integers, others with "%.9g". */
void tally_prom_double(tally_prom_t *p, const char *name, const char *k1, const char *v1,
                       const char *k2, const char *v2, double v);

/**
 * @brief Append n bytes of text as they are (a family header, a sample's name and labels).
 * @note Inline so that a literal's memcpy, its size known, compiles to a few moves.
 */
static inline void
tally_prom_raw(tally_prom_t *p, const char *s, size_t n)
{
    tally__buf_put(p, s, n);
}
/** @brief tally_prom_raw() of a string literal, its length known at compile time. */
#define TALLY_PROM_RAW(p, lit) tally_prom_raw((p), "" lit, sizeof(lit) - 1)
/** @brief End a sample line begun with tally_prom_raw(): the decimal value and a newline. */
void tally_prom_end_u64(tally_prom_t *p, uint64_t v);
/**
 * @brief End a sample line with units / 10^decimals, exactly, and a newline.
 *
 * For values counted in integer sub-units (microseconds, nanoseconds,
 * milliseconds) and shown in the base unit: 1500 with 6 decimals is
 * "0.0015", 2000 with 3 is "2". Trailing fractional zeros are dropped.
 * @param decimals at most 19
 */
void tally_prom_end_fixed(tally_prom_t *p, uint64_t units, unsigned decimals);

/**
 * @brief The standard process metrics, as the Prometheus client libraries
 *        define them, read from /proc: process_cpu_seconds_total,
 *        process_resident_memory_bytes, process_virtual_memory_bytes,
 *        process_open_fds, process_max_fds and process_start_time_seconds.
 *        A figure /proc cannot give (another OS, /proc not mounted) is left
 *        out with its family, never shown as 0.
 * @param proc the proc directory of the process ("/proc/self"; tests may
 *        pass a copy); its parent's `stat` gives the boot time.
 */
void tally_prom_process(tally_prom_t *p, const char *proc);

/**
 * @brief Append a label value escaped as the exposition format requires
 *        (backslash, double quote and newline).
 */
void tally_prom_label_value(tally_prom_t *p, const char *v);

/** @brief End a sample line with v, written as tally_prom_double() writes it. */
void tally_prom_end_double(tally_prom_t *p, double v);

/** @brief The text (malloc'd; caller frees) or NULL when memory ran out. */
char *tally_prom_take(tally_prom_t *p, size_t *len);

#endif
