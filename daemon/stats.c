/* stats.c — tallyd's process-wide counters, and the committed usage totals behind tally_usage_total. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rollup.h"
#include "stats.h"

tally_stats_t tally_stats;

void
tally_stats_flush_observe(uint64_t us)
{
    static const uint64_t bounds_us[11] = {1000,   2500,   5000,   10000,   25000,  50000,
                                           100000, 250000, 500000, 1000000, 2500000};
    int b = 11;
    for (int i = 0; i < 11; i++)
        if (us <= bounds_us[i]) {
            b = i;
            break;
        }
    TALLY_STAT_ADD(flush_buckets[b], 1);
    TALLY_STAT_ADD(flush_sum_us, us);
    TALLY_STAT_SET(flush_last_us, us);
    uint64_t prev = TALLY_STAT_GET(flush_max_us);
    if (us > prev)
        TALLY_STAT_SET(flush_max_us, us);
}

/* ---- committed usage per (namespace, metric) ------------------------------ */

/* One pair. The pending half is the aggregator's alone; the committed half
 * is written by the aggregator and read by scrapes, both under usage_mu. */
typedef struct upair {
    char *ns, *metric; /* one allocation: "ns\0metric\0" */
    uint32_t hash;
    uint8_t dirty, pend_float, com_float;
    int64_t pend_i, com_i;
    double pend_f, com_f;
    uint64_t pend_n, com_n;
} upair_t;

#define SLOT_DROPPED UINT32_MAX /* slot_of: series of a pair over the limit */

static struct {
    pthread_mutex_t mu;     /* the pairs array (it moves when it grows) and committed halves */
    uint32_t max_pairs;     /* relaxed atomic: set by the loop thread */
    upair_t *pairs;
    uint32_t npairs, cap_pairs;
    /* aggregator thread only from here */
    uint32_t *index; /* open addressing over pairs: 1 + pair index, 0 = free */
    uint32_t index_mask;
    uint32_t *slot_of; /* by series id: 1 + pair index, 0 = not resolved yet, or SLOT_DROPPED */
    uint32_t cap_slot;
    uint32_t *dirty; /* pairs with pending totals */
    uint32_t ndirty, cap_dirty;
    uint64_t pend_dropped; /* events of dropped pairs since the last commit */
} usage = {.mu = PTHREAD_MUTEX_INITIALIZER};

void
tally_stats_usage_limit(uint32_t max_pairs)
{
    __atomic_store_n(&usage.max_pairs, max_pairs, __ATOMIC_RELAXED);
}

static uint32_t
pair_hash(const char *ns, size_t ns_len, const char *metric, size_t metric_len)
{
    uint32_t h = 2166136261u; /* FNV-1a: names are short and chosen by operators */
    for (size_t i = 0; i < ns_len; i++)
        h = (h ^ (unsigned char)ns[i]) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (size_t i = 0; i < metric_len; i++)
        h = (h ^ (unsigned char)metric[i]) * 16777619u;
    return h;
}

/* The pair of (ns, metric), created when new and under the limit; returns
 * 1 + its index, SLOT_DROPPED over the limit or out of memory. */
static uint32_t
pair_of(const char *ns, size_t ns_len, const char *metric, size_t metric_len)
{
    uint32_t h = pair_hash(ns, ns_len, metric, metric_len);
    if (usage.index) {
        for (uint32_t i = h & usage.index_mask; usage.index[i]; i = (i + 1) & usage.index_mask) {
            const upair_t *p = &usage.pairs[usage.index[i] - 1];
            if (p->hash == h && strlen(p->ns) == ns_len && memcmp(p->ns, ns, ns_len) == 0 &&
                strlen(p->metric) == metric_len && memcmp(p->metric, metric, metric_len) == 0)
                return usage.index[i];
        }
    }
    if (usage.npairs >= __atomic_load_n(&usage.max_pairs, __ATOMIC_RELAXED))
        return SLOT_DROPPED;
    if (!usage.index || (usage.npairs + 1) * 2 > usage.index_mask + 1) {
        uint32_t ncap = usage.index ? (usage.index_mask + 1) * 2 : 256;
        uint32_t *ni = calloc(ncap, sizeof *ni);
        if (!ni)
            return SLOT_DROPPED;
        for (uint32_t k = 0; k < usage.npairs; k++) {
            uint32_t i = usage.pairs[k].hash & (ncap - 1);
            while (ni[i])
                i = (i + 1) & (ncap - 1);
            ni[i] = k + 1;
        }
        free(usage.index);
        usage.index = ni;
        usage.index_mask = ncap - 1;
    }
    char *names = malloc(ns_len + metric_len + 2);
    if (!names)
        return SLOT_DROPPED;
    memcpy(names, ns, ns_len);
    names[ns_len] = '\0';
    memcpy(names + ns_len + 1, metric, metric_len);
    names[ns_len + 1 + metric_len] = '\0';
    pthread_mutex_lock(&usage.mu);
    if (usage.npairs == usage.cap_pairs) {
        uint32_t ncap = usage.cap_pairs ? usage.cap_pairs * 2 : 64;
        upair_t *np = realloc(usage.pairs, (size_t)ncap * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&usage.mu);
            free(names);
            return SLOT_DROPPED;
        }
        usage.pairs = np;
        usage.cap_pairs = ncap;
    }
    usage.pairs[usage.npairs] =
        (upair_t){.ns = names, .metric = names + ns_len + 1, .hash = h};
    usage.npairs++;
    pthread_mutex_unlock(&usage.mu);
    uint32_t i = h & usage.index_mask;
    while (usage.index[i])
        i = (i + 1) & usage.index_mask;
    usage.index[i] = usage.npairs;
    TALLY_STAT_SET(usage_pairs, usage.npairs);
    return usage.npairs;
}

/* The pair of series id, resolved once and remembered. */
static uint32_t
slot_of(const tally__strtab_t *tab, uint32_t series)
{
    if (series >= usage.cap_slot) {
        uint32_t ncap = usage.cap_slot ? usage.cap_slot : 1024;
        while (ncap <= series)
            ncap *= 2;
        uint32_t *ns = realloc(usage.slot_of, (size_t)ncap * sizeof *ns);
        if (!ns)
            return SLOT_DROPPED;
        memset(ns + usage.cap_slot, 0, (size_t)(ncap - usage.cap_slot) * sizeof *ns);
        usage.slot_of = ns;
        usage.cap_slot = ncap;
    }
    uint32_t s = usage.slot_of[series];
    if (s)
        return s;
    uint32_t len;
    const char *key = tally__strtab_get(tab, series, &len);
    tally__series_t sr;
    if (!key || tally__series_parse(key, len, &sr) != 0)
        s = SLOT_DROPPED;
    else
        s = pair_of(sr.ns, sr.ns_len, sr.metric, sr.metric_len);
    /* a pair refused for the limit stays refused for this series: its
     * events are counted as dropped, never attributed half-way */
    usage.slot_of[series] = s;
    return s;
}

void
tally_stats_usage_add(const tally__strtab_t *tab, uint32_t series, int is_float, int64_t iv,
                      double fv)
{
    uint32_t s = slot_of(tab, series);
    if (s == SLOT_DROPPED) {
        usage.pend_dropped++;
        return;
    }
    /* the pairs array moves only on this thread (under the lock, for readers) */
    upair_t *p = &usage.pairs[s - 1];
    if (!p->dirty) {
        if (usage.ndirty == usage.cap_dirty) {
            uint32_t ncap = usage.cap_dirty ? usage.cap_dirty * 2 : 64;
            uint32_t *nd = realloc(usage.dirty, (size_t)ncap * sizeof *nd);
            if (!nd) {
                usage.pend_dropped++;
                return;
            }
            usage.dirty = nd;
            usage.cap_dirty = ncap;
        }
        usage.dirty[usage.ndirty++] = s - 1;
        p->dirty = 1;
    }
    p->pend_n++;
    if (is_float) {
        p->pend_f += fv;
        p->pend_float = 1;
    } else {
        int64_t sum;
        if (__builtin_add_overflow(p->pend_i, iv, &sum)) {
            p->pend_f += (double)iv; /* past int64: on in double precision */
            p->pend_float = 1;
        } else {
            p->pend_i = sum;
        }
    }
}

void
tally_stats_usage_commit(void)
{
    if (usage.pend_dropped) {
        TALLY_STAT_ADD(usage_dropped_events, usage.pend_dropped);
        usage.pend_dropped = 0;
    }
    if (!usage.ndirty)
        return;
    pthread_mutex_lock(&usage.mu);
    for (uint32_t k = 0; k < usage.ndirty; k++) {
        upair_t *p = &usage.pairs[usage.dirty[k]];
        int64_t sum;
        if (__builtin_add_overflow(p->com_i, p->pend_i, &sum)) {
            p->com_f += (double)p->pend_i; /* past int64: on in double precision */
            p->com_float = 1;
        } else {
            p->com_i = sum;
        }
        p->com_f += p->pend_f;
        p->com_float |= p->pend_float;
        p->com_n += p->pend_n;
        p->pend_i = 0;
        p->pend_f = 0;
        p->pend_n = 0;
        p->pend_float = 0;
        p->dirty = 0;
    }
    pthread_mutex_unlock(&usage.mu);
    usage.ndirty = 0;
}

void
tally_stats_usage_each(void (*fn)(void *ctx, const tally_stats_usage_t *u), void *ctx)
{
    pthread_mutex_lock(&usage.mu);
    for (uint32_t k = 0; k < usage.npairs; k++) {
        const upair_t *p = &usage.pairs[k];
        tally_stats_usage_t u = {p->ns, p->metric, p->com_i, p->com_f, p->com_n, p->com_float};
        fn(ctx, &u);
    }
    pthread_mutex_unlock(&usage.mu);
}

void
tally_stats_usage_reset(void)
{
    pthread_mutex_lock(&usage.mu);
    for (uint32_t k = 0; k < usage.npairs; k++)
        free(usage.pairs[k].ns);
    free(usage.pairs);
    free(usage.index);
    free(usage.slot_of);
    free(usage.dirty);
    usage.pairs = NULL;
    usage.index = usage.slot_of = usage.dirty = NULL;
    usage.npairs = usage.cap_pairs = usage.index_mask = usage.cap_slot = 0;
    usage.ndirty = usage.cap_dirty = 0;
    usage.pend_dropped = 0;
    pthread_mutex_unlock(&usage.mu);
    TALLY_STAT_SET(usage_pairs, 0);
}
