/* alert.h — quota alerts: the alert_v1 wire message, the ok/warning/exceeded level rule, and the
 * per-(namespace, key) level table that publishes one alert per crossing.
 *
 * Everything here is pure logic (no sockets, no store), so it is unit
 * tested on its own; daemon/alerts.c runs it on tallyd's main loop and
 * publishes what it decides.
 *
 * Crossing rule. Each (namespace, limit key) remembers the last level it was
 * seen at. tally__alert_state_update() reports a crossing only when the level
 * goes UP (ok -> warning, warning -> exceeded, ok -> exceeded: one alert per
 * crossing, not per event). Going down publishes nothing; it only lowers the
 * remembered level, which re-arms the higher alert(s): a later rise
 * publishes again.
 *
 * Threads: a tally__alert_state_t belongs to one thread (tallyd's loop).
 */
#ifndef TALLY_ALERT_H
#define TALLY_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "codec.h"
#include "tally/tally.h"

/** Alert levels, in increasing order of severity. */
enum {
    TALLY_ALERT_OK = 0,       /**< below the warning threshold (never published) */
    TALLY_ALERT_WARNING = 1,  /**< usage >= warn_percent % of the limit */
    TALLY_ALERT_EXCEEDED = 2, /**< usage > the limit */
    TALLY_ALERT_NLEVELS = 3
};

/**
 * @brief The level of usage against a limit.
 * @param maximum the limit; < 0 means unlimited (always OK). A zero limit
 *        is exceeded by any positive usage.
 * @param warn_percent 0..100; 0 disables the warning level (only EXCEEDED).
 * @return TALLY_ALERT_OK, _WARNING or _EXCEEDED.
 */
int tally__alert_level(double usage, double maximum, uint32_t warn_percent);

/** @brief "ok", "warning" or "exceeded" (the wire and /metrics spelling); "?" otherwise. */
const char *tally__alert_level_name(int level);

/** @brief Parse a level name. @return the level, or -1 when unknown. */
int tally__alert_level_parse(const char *s, size_t len);

/* ---- wire: alert_v1 ----------------------------------------------------
 * The format's writer and reader both live in alert.c. The reader is a
 * bounded byte reader like codec.c's (no msgpack_unpack_next, no zone):
 * alerts arrive on a SUB socket anyone on the endpoint can publish to. */

/** Longest namespace an alert carries (a namespace name). */
#define TALLY_ALERT_NS_MAX TALLY_MAX_NS_LEN
/** Longest limit key an alert carries (a metric label). */
#define TALLY_ALERT_KEY_MAX TALLY_MAX_METRIC_LEN

/** A decoded alert_v1. Strings point into the decoded buffer. */
typedef struct tally__wire_alert {
    tally__str_t ns;  /**< namespace (equal to the topic) */
    tally__str_t key; /**< limit key (metric label) */
    double limit;     /**< the limit that was crossed */
    double usage;     /**< usage when it was crossed */
    int level;        /**< TALLY_ALERT_WARNING or TALLY_ALERT_EXCEEDED */
    int64_t ts_ms;    /**< when tallyd noticed, unix milliseconds UTC */
} tally__wire_alert_t;

/**
 * @brief Build an alert_v1 message: "namespace\0" + msgpack map
 *        {k, v, n, m, q, u, w, t} (PROTOCOL.md §3.5), appended to out.
 * @param ns the namespace, ns_len bytes, no NUL inside.
 * @param key the limit key (NUL-terminated).
 * @param level TALLY_ALERT_WARNING or TALLY_ALERT_EXCEEDED (OK is encodable
 *        too, but tallyd never sends it).
 * @return 0, TALLY_EINVAL (empty ns or key, NUL in ns, ns longer than
 *         TALLY_ALERT_NS_MAX or key than TALLY_ALERT_KEY_MAX, unknown
 *         level), -ENOMEM.
 */
int tally__encode_alert(msgpack_sbuffer *out, const char *ns, size_t ns_len, const char *key,
                        double limit, double usage, int level, int64_t ts_ms);

/**
 * @brief Decode an alert message, topic included: all eight keys exactly
 *        once, k = 3, v in 1..TALLY_PROTO_VERSION, no trailing bytes, "n"
 *        equal to the topic, "n" at most TALLY_ALERT_NS_MAX and "m" at
 *        most TALLY_ALERT_KEY_MAX bytes. Reads only inside buf[0..len),
 *        allocates nothing: safe on hostile input.
 * @param[out] out strings point into buf (valid while buf is).
 * @return 0 or TALLY_EPROTO.
 */
int tally__decode_alert(const void *buf, size_t len, tally__wire_alert_t *out);

/* ---- the level table --------------------------------------------------- */

typedef struct tally__alert_state tally__alert_state_t;

/**
 * @brief A table of at most max_entries (namespace, key) levels.
 * @param[out] out caller owns; free with tally__alert_state_destroy().
 * @return 0, TALLY_EINVAL (max_entries 0), -ENOMEM.
 */
int tally__alert_state_create(size_t max_entries, tally__alert_state_t **out);

/** @brief Free the table. NULL is ignored. */
void tally__alert_state_destroy(tally__alert_state_t *st);

/**
 * @brief Record the level just evaluated for (ns, key) in evaluation pass
 *        `pass` and say whether that is an upward crossing.
 * @param ratio usage / limit, kept for tally__alert_state_each() (/metrics).
 * @param[out] prev the level remembered before (OK for a new entry). May be NULL.
 * @return 1 when an alert must be published (level above the remembered
 *         one), 0 when not; TALLY_EINVAL (ns or key empty or too long:
 *         64 bytes each); TALLY_EFULL when the table holds max_entries
 *         other entries (nothing recorded: the caller skips this limit).
 */
int tally__alert_state_update(tally__alert_state_t *st, const char *ns, const char *key, int level,
                              double ratio, uint64_t pass, int *prev);

/**
 * @brief Forget every entry not updated in `pass` (its limit or namespace is
 *        gone), so the table only holds what the last pass evaluated.
 */
void tally__alert_state_sweep(tally__alert_state_t *st, uint64_t pass);

/**
 * @brief Mark every entry of namespace ns as seen in `pass` without changing
 *        its level (its limits or usage could not be read this pass: a read
 *        error must not re-arm alerts).
 */
void tally__alert_state_keep(tally__alert_state_t *st, const char *ns, uint64_t pass);

/** @brief Entries held. */
size_t tally__alert_state_count(const tally__alert_state_t *st);

/** Called per entry by tally__alert_state_each(). */
typedef void (*tally__alert_state_cb)(void *ctx, const char *ns, const char *key, int level,
                                      double ratio);

/** @brief Visit every entry (in no particular order). */
void tally__alert_state_each(const tally__alert_state_t *st, tally__alert_state_cb cb, void *ctx);

#endif
