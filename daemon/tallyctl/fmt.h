/* fmt.h — numbers for people in tallyctl's tables: 1,234,567, 1.50 GiB, 12.5 h.
 *
 * Tables round; --json never goes through here and keeps the exact number.
 * Every function writes a NUL-terminated string into the caller's buffer
 * (CTL_FMT_LEN bytes are always enough), truncating rather than
 * overflowing, and returns the buffer so it can sit in a printf argument.
 */
#ifndef TALLYCTL_FMT_H
#define TALLYCTL_FMT_H

#include <stddef.h>

/** A buffer size every formatter fits in. */
#define CTL_FMT_LEN 48

/**
 * @brief A count with thousands separators: 1234567 -> "1,234,567",
 *        1234.5 -> "1,234.5" (at most 3 decimals, trailing zeros dropped).
 *        Values beyond 1e18, NaN and infinities are printed with %g.
 */
char *ctl_fmt_count(double v, char *buf, size_t cap);

/**
 * @brief Bytes in binary units: "512 B", "1.50 KiB", "12.3 MiB", "512 GiB",
 *        up to PiB (3 significant digits from KiB on).
 */
char *ctl_fmt_bytes(double v, char *buf, size_t cap);

/**
 * @brief A duration: "45 s" under a minute, "12.5 min" under an hour, then
 *        hours: "2.0 h", "1,234.5 h".
 */
char *ctl_fmt_seconds(double v, char *buf, size_t cap);

/**
 * @brief A quantity in a catalog unit: bytes ("bytes", "byte", "B") through
 *        ctl_fmt_bytes(), seconds ("seconds", "second", "s") through
 *        ctl_fmt_seconds(), anything else (requests, objects, count, NULL)
 *        through ctl_fmt_count().
 */
char *ctl_fmt_unit(const char *unit, double v, char *buf, size_t cap);

#endif
