/* apilimit.c — token buckets per (token, namespace, operation) and the per-namespace api_limits
 * cache, both bounded LRU tables. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "apilimit.h"
#include "strtab.h"
#include "tally/tally.h"
#include "tbucket.h"

/* ---- a fixed-capacity LRU index of short string keys ------------------- */

#define KEY_CAP 272 /* token 64 + ns 64 + op 127 + 2 separators, rounded up */

typedef struct node {
    uint64_t hash;
    uint32_t chain;      /* next in hash chain: index + 1, 0 = end */
    uint32_t prev, next; /* recency list: index + 1 (prev = more recent) */
    uint32_t klen;
    char key[KEY_CAP];
} node_t;

typedef struct lru {
    node_t *nodes;
    uint32_t *heads; /* index + 1 */
    size_t cap, n, nheads;
    uint32_t mru, lru; /* index + 1 */
} lru_t;

static int
lru_init(lru_t *t, size_t cap)
{
    memset(t, 0, sizeof *t);
    t->cap = cap;
    t->nheads = 16;
    while (t->nheads < cap)
        t->nheads <<= 1;
    t->nodes = calloc(cap, sizeof *t->nodes);
    t->heads = calloc(t->nheads, sizeof *t->heads);
    return t->nodes && t->heads ? 0 : -ENOMEM;
}

static void
lru_fini(lru_t *t)
{
    free(t->nodes);
    free(t->heads);
}

static void
list_unlink(lru_t *t, uint32_t idx)
{
    node_t *x = &t->nodes[idx - 1];
    if (x->prev)
        t->nodes[x->prev - 1].next = x->next;
    else
        t->mru = x->next;
    if (x->next)
        t->nodes[x->next - 1].prev = x->prev;
    else
        t->lru = x->prev;
    x->prev = x->next = 0;
}

static void
list_push_front(lru_t *t, uint32_t idx)
{
    node_t *x = &t->nodes[idx - 1];
    x->prev = 0;
    x->next = t->mru;
    if (t->mru)
        t->nodes[t->mru - 1].prev = idx;
    t->mru = idx;
    if (!t->lru)
        t->lru = idx;
}

static void
chain_unlink(lru_t *t, uint32_t idx)
{
    node_t *x = &t->nodes[idx - 1];
    uint32_t *link = &t->heads[x->hash & (t->nheads - 1)];
    while (*link && *link != idx)
        link = &t->nodes[*link - 1].chain;
    if (*link)
        *link = x->chain;
    x->chain = 0;
}

/* The index (+1) of key, made most recent; 0 when absent. */
static uint32_t
lru_find(lru_t *t, const char *key, size_t klen)
{
    uint64_t h = tally__hash_bytes(key, klen);
    for (uint32_t i = t->heads[h & (t->nheads - 1)]; i; i = t->nodes[i - 1].chain) {
        node_t *x = &t->nodes[i - 1];
        if (x->hash == h && x->klen == klen && memcmp(x->key, key, klen) == 0) {
            if (t->mru != i) {
                list_unlink(t, i);
                list_push_front(t, i);
            }
            return i;
        }
    }
    return 0;
}

/* Insert key (known absent) as most recent; when full, the least recent
 * entry is evicted and its slot reused: *evicted says so, so the caller
 * releases that slot's payload first. */
static uint32_t
lru_insert(lru_t *t, const char *key, size_t klen, int *evicted)
{
    uint32_t idx;
    *evicted = 0;
    if (t->n < t->cap) {
        idx = (uint32_t)++t->n;
    } else {
        idx = t->lru;
        list_unlink(t, idx);
        chain_unlink(t, idx);
        *evicted = 1;
    }
    node_t *x = &t->nodes[idx - 1];
    x->hash = tally__hash_bytes(key, klen);
    x->klen = (uint32_t)klen;
    memcpy(x->key, key, klen);
    uint32_t *head = &t->heads[x->hash & (t->nheads - 1)];
    x->chain = *head;
    *head = idx;
    list_push_front(t, idx);
    return idx;
}

/* Remove idx; the last slot moves into its place (keeping slots dense)
 * and its new index is returned through *moved_from (0 when none moved). */
static void
lru_remove(lru_t *t, uint32_t idx, uint32_t *moved_from)
{
    list_unlink(t, idx);
    chain_unlink(t, idx);
    *moved_from = 0;
    uint32_t last = (uint32_t)t->n;
    if (idx != last) {
        node_t *l = &t->nodes[last - 1];
        int was_mru = t->mru == last;
        uint32_t lp = l->prev, ln = l->next;
        chain_unlink(t, last);
        t->nodes[idx - 1] = *l;
        node_t *x = &t->nodes[idx - 1];
        x->prev = lp;
        x->next = ln;
        if (lp)
            t->nodes[lp - 1].next = idx;
        if (ln)
            t->nodes[ln - 1].prev = idx;
        if (was_mru)
            t->mru = idx;
        if (t->lru == last)
            t->lru = idx;
        uint32_t *head = &t->heads[x->hash & (t->nheads - 1)];
        x->chain = *head;
        *head = idx;
        *moved_from = last;
    }
    memset(&t->nodes[last - 1], 0, sizeof(node_t));
    t->n--;
}

/* ---- the two tables ------------------------------------------------------ */

typedef tally__tbucket_t bucket_t;

typedef struct nsset {
    tally__quota_api_limit_t *apis;
    size_t napis;
    int64_t fetched_ms;
} nsset_t;

struct tally__apilimit {
    tally__apilimit_opts_t o;
    lru_t bt; /* buckets: key token \0 ns \0 op */
    bucket_t *buckets;
    lru_t nt; /* namespaces: key ns */
    nsset_t *sets;
};

int
tally__apilimit_create(const tally__apilimit_opts_t *opts, tally__apilimit_t **out)
{
    if (!opts || opts->max_buckets == 0 || opts->max_namespaces == 0 || opts->refresh_ms < 0 ||
        opts->max_buckets > UINT32_MAX / 2 || opts->max_namespaces > UINT32_MAX / 2)
        return TALLY_EINVAL;
    tally__apilimit_t *al = calloc(1, sizeof *al);
    if (!al)
        return -ENOMEM;
    al->o = *opts;
    int rc = -ENOMEM;
    if (lru_init(&al->bt, opts->max_buckets) != 0 || lru_init(&al->nt, opts->max_namespaces) != 0)
        goto fail;
    al->buckets = calloc(opts->max_buckets, sizeof *al->buckets);
    al->sets = calloc(opts->max_namespaces, sizeof *al->sets);
    if (!al->buckets || !al->sets)
        goto fail;
    *out = al;
    return 0;
fail:
    tally__apilimit_destroy(al);
    return rc;
}

void
tally__apilimit_destroy(tally__apilimit_t *al)
{
    if (!al)
        return;
    if (al->sets)
        for (size_t i = 0; i < al->nt.n; i++)
            free(al->sets[i].apis);
    free(al->sets);
    free(al->buckets);
    lru_fini(&al->nt);
    lru_fini(&al->bt);
    free(al);
}

static size_t
put_part(char *buf, size_t at, const char *s, size_t max)
{
    size_t l = strnlen(s ? s : "", max);
    memcpy(buf + at, s ? s : "", l);
    buf[at + l] = '\0';
    return at + l + 1;
}

int
tally__apilimit_take(tally__apilimit_t *al, const char *token, const char *ns, const char *op,
                     const tally__quota_api_limit_t *lim, int64_t now_ms, uint32_t *retry_after_s)
{
    if (!lim || lim->rate == 0)
        return 1;
    char key[KEY_CAP];
    size_t klen = put_part(key, 0, token, 64);
    klen = put_part(key, klen, ns, 64);
    klen = put_part(key, klen, op, 127);
    uint64_t unit_ms = (uint64_t)(lim->unit_s > 0 ? lim->unit_s : 1) * 1000;
    uint32_t idx = lru_find(&al->bt, key, klen);
    if (!idx) {
        int evicted;
        idx = lru_insert(&al->bt, key, klen, &evicted);
        al->buckets[idx - 1] = (bucket_t){0}; /* a new bucket starts full */
    }
    return tally__tbucket_take(&al->buckets[idx - 1], now_ms, lim->rate,
                               unit_ms, (uint64_t)lim->rate + lim->burst, retry_after_s);
}

static void
set_drop(tally__apilimit_t *al, uint32_t idx)
{
    uint32_t moved;
    free(al->sets[idx - 1].apis);
    lru_remove(&al->nt, idx, &moved);
    if (moved)
        al->sets[idx - 1] = al->sets[moved - 1];
    memset(&al->sets[al->nt.n], 0, sizeof(nsset_t)); /* the vacated last slot */
}

int
tally__apilimit_check(tally__apilimit_t *al, const char *token, const char *ns, const char *op,
                      int64_t now_ms, uint32_t *retry_after_s, tally__quota_api_limit_t *lim_out)
{
    if (!ns || !op || !al->o.fetch)
        return 1;
    size_t nl = strnlen(ns, 65);
    if (nl == 0 || nl > 64)
        return 1;
    uint32_t idx = lru_find(&al->nt, ns, nl);
    if (idx && now_ms - al->sets[idx - 1].fetched_ms >= al->o.refresh_ms) {
        set_drop(al, idx);
        idx = 0;
    }
    if (!idx) {
        tally__quota_api_limit_t *apis = NULL;
        size_t n = 0;
        if (al->o.fetch(al->o.fetch_ctx, ns, &apis, &n) != 0) {
            free(apis);
            return 1; /* fail open; retried on the next request */
        }
        int evicted;
        idx = lru_insert(&al->nt, ns, nl, &evicted);
        if (evicted)
            free(al->sets[idx - 1].apis);
        al->sets[idx - 1] = (nsset_t){.apis = apis, .napis = n, .fetched_ms = now_ms};
    }
    const nsset_t *s = &al->sets[idx - 1];
    const tally__quota_api_limit_t *lim = NULL;
    for (size_t i = 0; i < s->napis; i++)
        if (strcmp(s->apis[i].key, op) == 0)
            lim = &s->apis[i]; /* later entries win, as in the effective quota */
    if (!lim)
        return 1;
    tally__quota_api_limit_t copy = *lim;
    int ok = tally__apilimit_take(al, token, ns, op, &copy, now_ms, retry_after_s);
    if (!ok && lim_out)
        *lim_out = copy;
    return ok;
}

void
tally__apilimit_invalidate(tally__apilimit_t *al, const char *ns)
{
    if (ns) {
        uint32_t idx = lru_find(&al->nt, ns, strnlen(ns, 65));
        if (idx)
            set_drop(al, idx);
        return;
    }
    while (al->nt.n)
        set_drop(al, (uint32_t)al->nt.n);
}

size_t
tally__apilimit_buckets(const tally__apilimit_t *al)
{
    return al->bt.n;
}

size_t
tally__apilimit_namespaces(const tally__apilimit_t *al)
{
    return al->nt.n;
}
