/* apilimit.h — api_limits enforcement on tally's own HTTP API: a token bucket per (token,
 * namespace, operation) and a short-lived cache of each namespace's effective api_limits.
 *
 * A namespace's effective quota (lib/quota.h) may carry api_limits keyed by
 * API operation name (the route name of daemon/routes.c, "usage_details").
 * Each limit {rate, unit, burst} becomes, for every (token, namespace,
 * operation), a token bucket of capacity rate + burst (a whole unit's rate
 * may be spent at once, plus `burst` extra requests) refilled evenly at
 * rate per unit. Rate 0 means "no limit" (like http.rate_per_token = 0).
 * Buckets are per namespace because limits are: a token spending its
 * allowance in one namespace does not touch its allowance in another.
 *
 * Bounded memory: at most max_buckets buckets and max_namespaces cached
 * limit sets, each table evicting its least recently used entry when full.
 * An evicted bucket comes back full, so eviction can only be generous,
 * never deny a request wrongly; size the table above the number of active
 * (token, namespace, operation) triples.
 *
 * Freshness: a namespace's limits are fetched through the callback given at
 * create and reused for refresh_ms (tallyd: 1000 ms), so quota writes and
 * plan changes apply within that long without a store read per request.
 * A fetch that fails leaves the request unlimited (fail open: the request's
 * own handler reports the store error) and is retried on the next request.
 *
 * Threads: one thread per tally__apilimit_t (tallyd's loop); no locks.
 */
#ifndef TALLY_APILIMIT_H
#define TALLY_APILIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "quota.h"

typedef struct tally__apilimit tally__apilimit_t;

/**
 * Fetch the effective api_limits of namespace ns.
 * @param[out] out a malloc'd array of *n limits (NULL when *n is 0), owned
 *        by the cache from then on (it frees it with free()).
 * @return 0, or a negative error (the request is let through).
 */
typedef int (*tally__apilimit_fetch_fn)(void *ctx, const char *ns, tally__quota_api_limit_t **out,
                                        size_t *n);

typedef struct tally__apilimit_opts {
    size_t max_buckets;             /**< (token, namespace, operation) buckets; >= 1 */
    size_t max_namespaces;          /**< cached limit sets; >= 1 */
    int64_t refresh_ms;             /**< how long a fetched limit set is used; >= 0 */
    tally__apilimit_fetch_fn fetch; /**< required for tally__apilimit_check() */
    void *fetch_ctx;
} tally__apilimit_opts_t;

/**
 * @brief Create the tables (all memory is allocated here).
 * @param[out] out caller owns; free with tally__apilimit_destroy().
 * @return 0, TALLY_EINVAL (a zero size, negative refresh), -ENOMEM.
 */
int tally__apilimit_create(const tally__apilimit_opts_t *opts, tally__apilimit_t **out);

/** @brief Free everything, cached limit sets included. NULL is ignored. */
void tally__apilimit_destroy(tally__apilimit_t *al);

/**
 * @brief Take one request of `op` by `token` in namespace `ns` from its
 *        bucket under the limit `lim` (the pure token-bucket step).
 * @param lim NULL or rate 0: unlimited (returns 1, no bucket is made).
 * @param now_ms a monotonic clock in milliseconds; going backwards refills nothing.
 * @param[out] retry_after_s when limited: whole seconds (>= 1) until one
 *        request would be allowed, for Retry-After. May be NULL.
 * @return 1 allowed (one request taken), 0 limited.
 * @note token, ns and op are copied (token <= 64, ns <= 64, op <= 127
 *       bytes; longer names are truncated for the bucket key).
 */
int tally__apilimit_take(tally__apilimit_t *al, const char *token, const char *ns, const char *op,
                         const tally__quota_api_limit_t *lim, int64_t now_ms,
                         uint32_t *retry_after_s);

/**
 * @brief Find the api_limit of `op` in namespace ns (fetching or refreshing
 *        the namespace's limit set when older than refresh_ms) and take one
 *        request from the (token, ns, op) bucket.
 * @param[out] lim_out when limited, the limit that applied (may be NULL).
 * @return 1 allowed (also: no such limit, or the fetch failed), 0 limited.
 */
int tally__apilimit_check(tally__apilimit_t *al, const char *token, const char *ns, const char *op,
                          int64_t now_ms, uint32_t *retry_after_s,
                          tally__quota_api_limit_t *lim_out);

/** @brief Drop the cached limit set of ns (NULL: of every namespace), e.g.
 *         after a quota write; the next check fetches again. */
void tally__apilimit_invalidate(tally__apilimit_t *al, const char *ns);

/** @brief Buckets currently held (<= max_buckets). */
size_t tally__apilimit_buckets(const tally__apilimit_t *al);

/** @brief Limit sets currently cached (<= max_namespaces). */
size_t tally__apilimit_namespaces(const tally__apilimit_t *al);

#endif
