/* aggregator.c — the flush side of tallyd: ring → cells → one LMDB txn → acks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <uv.h>

#include "aggregator.h"
#include "cells.h"
#include "codec.h"
#include "log.h"
#include "pipeline.h"
#include "stats.h"
#include "timeutil.h"

/* Blocks applied per wake-up before yielding to the flush timer. */
#define DRAIN_BUDGET 4096

/* One producer, compact (see prodtab.h for why): the pending state inline
 * with its window bitmap only while a bit is set, the committed marks the
 * acks carry, and the name borrowed from the ingest's table. */
typedef struct prod {
    const char *name;         /* NULL: a free slot (never used, or dropped) */
    uint32_t name_len;
    uint8_t dirty;            /* pending to be written at the next flush */
    uint8_t need_ack;         /* ack at the next flush even if unchanged */
    uint8_t signed_ack;       /* v2: keyed topic and MAC under ack_key */
    uint64_t pend_floor, pend_max; /* includes every applied block */
    uint64_t *pend_bits;      /* TALLY__DEDUP_WORDS words, or NULL when all zero */
    uint64_t com_floor, com_max; /* what the store holds */
    int64_t last_seen_s;      /* of its latest block, stored with its state */
    uint8_t ack_key[32];      /* from the producer's latest block */
} prod_t;

/* A dropped producer's name, deleted from the store at the next flush. */
typedef struct drop {
    char *name;
    uint32_t len;
} drop_t;

struct tally_aggregator {
    tally_aggregator_opts_t o;
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t flush_timer;
    uv_thread_t thread;
    int pub;       /* tcp and ws ack endpoints: signed (v2) acks only */
    int pub_local; /* ipc and inproc ack endpoints: every ack */
    tally__cells_t *cells;
    prod_t *prods;
    uint32_t nprods, cap_prods;
    uint32_t *touched; /* producers to write / ack at the next flush */
    uint32_t ntouched, cap_touched;
    uint64_t events_pending;
    uint64_t blocks_pending;
    int stalled; /* last commit failed: stop taking blocks */
    int shutting_down;
    int final_status;
    tally__ratelimit_t rl_fail;
    tally__ratelimit_t rl_ovf; /* int64 overflow warnings */
    tally__ratelimit_t rl_evict; /* dedup-set evictions */
    msgpack_sbuffer ackbuf;
    tally__store_producer_t *pput;
    uint32_t cap_pput;
    drop_t *drops;
    uint32_t ndrops, cap_drops;
    /* HTTP requests applied since the last commit, and their identities */
    tally_http_events_t **http;
    uint32_t nhttp, cap_http;
    tally__store_evkey_t *evbuf;
    size_t cap_evbuf;
    /* retention (prune_step): a round's cut, progress and the next round */
    int prune_active;
    int64_t prune_cut_s;
    size_t prune_round;
    uint64_t prune_next_ms; /* uv_now(); 0: the first tick starts a round */
    /* the same for the HTTP door's event identities */
    int ev_prune_active;
    int64_t ev_prune_cut_ms;
    size_t ev_prune_round;
    uint64_t ev_prune_next_ms;
};

static int
ensure_prod(tally_aggregator_t *a, uint32_t id)
{
    if (id < a->nprods)
        return 0;
    if (id >= a->cap_prods) {
        uint32_t ncap = a->cap_prods ? a->cap_prods : 64;
        while (ncap <= id)
            ncap *= 2;
        prod_t *np = realloc(a->prods, (size_t)ncap * sizeof *np);
        if (!np)
            return -ENOMEM;
        a->prods = np;
        a->cap_prods = ncap;
    }
    memset(&a->prods[a->nprods], 0, (size_t)(id + 1 - a->nprods) * sizeof *a->prods);
    a->nprods = id + 1;
    return 0;
}

static int
touch(tally_aggregator_t *a, uint32_t id)
{
    prod_t *p = &a->prods[id];
    if (p->dirty || p->need_ack)
        return 0; /* already listed */
    if (a->ntouched == a->cap_touched) {
        uint32_t ncap = a->cap_touched ? a->cap_touched * 2 : 64;
        uint32_t *nt = realloc(a->touched, (size_t)ncap * sizeof *nt);
        if (!nt)
            return -ENOMEM;
        a->touched = nt;
        a->cap_touched = ncap;
    }
    a->touched[a->ntouched++] = id;
    return 0;
}

static void apply_deltas(tally_aggregator_t *a, tally_block_t *b);

/* An HTTP request's block: its deltas now, its answer after the commit. */
static void
apply_http(tally_aggregator_t *a, tally_block_t *b)
{
    if (a->nhttp == a->cap_http) {
        uint32_t ncap = a->cap_http ? a->cap_http * 2 : 64;
        tally_http_events_t **nh = realloc(a->http, (size_t)ncap * sizeof *nh);
        if (!nh) {
            tally__log_error("out of memory in the aggregator; exiting without answering");
            abort();
        }
        a->http = nh;
        a->cap_http = ncap;
    }
    a->http[a->nhttp++] = b->http;
    b->http = NULL;
    apply_deltas(a, b);
}

/* Hand the requests of a commit (status 0) or of a daemon that stops
 * without committing them (status set) back to the loop. */
static void
answer_http(tally_aggregator_t *a, int status)
{
    if (!a->nhttp)
        return;
    for (uint32_t i = 0; i < a->nhttp; i++) {
        a->http[i]->status = status;
        /* ingest keeps fewer requests in flight than the ring holds */
        TALLY_ASSERT(tally__ring_push(a->o.http_done, a->http[i]));
    }
    a->nhttp = 0;
    if (a->o.on_http_done)
        a->o.on_http_done(a->o.ctx);
}

/* An idle producer is forgotten: its record goes at the next flush, its
 * slot may already be reused by the blocks behind this one. */
static void
apply_drop(tally_aggregator_t *a, tally_block_t *b)
{
    if (a->ndrops == a->cap_drops) {
        uint32_t ncap = a->cap_drops ? a->cap_drops * 2 : 64;
        drop_t *nd = realloc(a->drops, (size_t)ncap * sizeof *nd);
        if (!nd) {
            tally__log_error("out of memory in the aggregator; exiting");
            abort();
        }
        a->drops = nd;
        a->cap_drops = ncap;
    }
    a->drops[a->ndrops++] = (drop_t){(char *)b->pname, b->pname_len};
    b->pname = NULL;
    if (b->producer < a->nprods) {
        prod_t *p = &a->prods[b->producer];
        free(p->pend_bits);
        /* still listed in touched maybe: flush and acks skip a NULL name */
        memset(p, 0, sizeof *p);
    }
}

static void
apply_block(tally_aggregator_t *a, tally_block_t *b)
{
    if (b->kind == TALLY_BLOCK_HTTP) {
        apply_http(a, b);
        return;
    }
    if (b->kind == TALLY_BLOCK_DROP) {
        apply_drop(a, b);
        return;
    }
    if (ensure_prod(a, b->producer) != 0 || touch(a, b->producer) != 0) {
        tally__log_error("out of memory in the aggregator; exiting without acking");
        abort();
    }
    prod_t *p = &a->prods[b->producer];
    int any = 0;
    for (unsigned w = 0; w < TALLY__DEDUP_WORDS && !any; w++)
        any = b->state.bits[w] != 0;
    if (any && !p->pend_bits && !(p->pend_bits = malloc(sizeof b->state.bits))) {
        tally__log_error("out of memory in the aggregator; exiting without acking");
        abort();
    }
    if (any) {
        memcpy(p->pend_bits, b->state.bits, sizeof b->state.bits);
    } else {
        free(p->pend_bits);
        p->pend_bits = NULL;
    }
    p->name = b->pname;
    p->name_len = b->pname_len;
    p->pend_floor = b->state.floor;
    p->pend_max = b->state.max_seq;
    p->last_seen_s = b->last_seen_s;
    p->dirty = 1;
    p->need_ack = 1;
    p->signed_ack = (uint8_t)b->signed_ack;
    if (b->signed_ack)
        memcpy(p->ack_key, b->ack_key, sizeof p->ack_key);
    apply_deltas(a, b);
}

static void
apply_deltas(tally_aggregator_t *a, tally_block_t *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        const tally_delta_t *d = &b->d[i];
        int64_t iv = d->is_float ? 0 : d->v.i;
        double fv = d->is_float ? d->v.f : 0;
        int64_t hour_s = tally__time_hour_start(d->ts_ms / 1000); /* as ingest checked it */
        if (tally__cells_add(a->cells, d->series, hour_s, (int)d->is_float, iv, fv, d->ts_ms)) {
            tally__log_error("out of memory in the aggregator; exiting without acking");
            abort();
        }
        tally_stats_usage_add(a->o.series, d->series, (int)d->is_float, iv, fv);
    }
    a->events_pending += b->n;
    a->blocks_pending++;
}

static void
publish_acks(tally_aggregator_t *a)
{
    for (uint32_t i = 0; i < a->ntouched; i++) {
        uint32_t id = a->touched[i];
        prod_t *p = &a->prods[id];
        uint32_t len = p->name_len;
        const char *name = p->name;
        if (!name)
            continue; /* dropped since it was touched */
        a->ackbuf.size = 0;
        int rc;
        if (p->signed_ack) {
            /* the producer table's key is "credential 0x1f producer id" */
            const char *sep = memchr(name, '\x1f', len);
            const char *prod = sep ? sep + 1 : name;
            rc = tally__encode_ack_v2(&a->ackbuf, p->ack_key, prod, len - (size_t)(prod - name),
                                      p->com_floor, p->com_max);
        } else {
            rc = tally__encode_ack(&a->ackbuf, name, len, p->com_floor, p->com_max);
        }
        /* a PUB socket drops for slow subscribers; the producer resends
         * after its timeout and gets acked again. A v1 ack names its
         * producer in the clear, so it goes out on local endpoints only. */
        int sent = 0, failed = rc != 0;
        if (!rc && a->pub_local >= 0) {
            if (nn_send(a->pub_local, a->ackbuf.data, a->ackbuf.size, NN_DONTWAIT) < 0)
                failed = 1;
            else
                sent = 1;
        }
        if (!rc && p->signed_ack && a->pub >= 0) {
            if (nn_send(a->pub, a->ackbuf.data, a->ackbuf.size, NN_DONTWAIT) < 0)
                failed = 1;
            else
                sent = 1;
        }
        if (failed || !sent)
            TALLY_STAT_ADD(ack_send_errors, 1);
        else
            TALLY_STAT_ADD(acks_sent, 1);
        p->need_ack = 0;
        p->dirty = 0;
    }
    a->ntouched = 0;
}

/* One flush: prepare sorted updates, commit them with the producer marks,
 * then ack. On failure everything stays for the next try. */
static int
flush(tally_aggregator_t *a)
{
    tally__store_src_t src;
    uint32_t np = 0;
    if (a->ntouched == 0 && tally__cells_cells(a->cells) == 0 && a->nhttp == 0 &&
        a->ndrops == 0)
        return 0;
    uint64_t t0 = uv_hrtime();
    if (tally__cells_prepare(a->cells, &src) != 0)
        return -ENOMEM;
    if (a->ntouched + a->ndrops > a->cap_pput) {
        uint32_t ncap = a->ntouched + a->ndrops;
        tally__store_producer_t *pp = realloc(a->pput, (size_t)ncap * sizeof *pp);
        if (!pp)
            return -ENOMEM;
        a->pput = pp;
        a->cap_pput = ncap;
    }
    /* deletes first: a producer dropped and back under the same name in
     * one flush keeps its new state */
    for (uint32_t i = 0; i < a->ndrops; i++)
        a->pput[np++] = (tally__store_producer_t){
            .id = a->drops[i].name, .id_len = a->drops[i].len, .del = 1};
    for (uint32_t i = 0; i < a->ntouched; i++) {
        prod_t *p = &a->prods[a->touched[i]];
        if (!p->dirty || !p->name)
            continue;
        tally__store_producer_t *pp = &a->pput[np++];
        pp->id = p->name;
        pp->id_len = p->name_len;
        pp->del = 0;
        pp->last_seen_s = p->last_seen_s;
        pp->state.floor = p->pend_floor;
        pp->state.max_seq = p->pend_max;
        if (p->pend_bits)
            memcpy(pp->state.bits, p->pend_bits, sizeof pp->state.bits);
        else
            memset(pp->state.bits, 0, sizeof pp->state.bits);
    }
    size_t nev = 0;
    for (uint32_t i = 0; i < a->nhttp; i++)
        nev += a->http[i]->nkeys;
    if (nev > a->cap_evbuf) {
        tally__store_evkey_t *ne = realloc(a->evbuf, nev * sizeof *ne);
        if (!ne)
            return -ENOMEM;
        a->evbuf = ne;
        a->cap_evbuf = nev;
    }
    nev = 0;
    for (uint32_t i = 0; i < a->nhttp; i++) {
        if (!a->http[i]->nkeys)
            continue; /* a request of duplicates only: evbuf may still be NULL */
        memcpy(a->evbuf + nev, a->http[i]->keys, a->http[i]->nkeys * sizeof *a->evbuf);
        nev += a->http[i]->nkeys;
    }
    src.ev = a->evbuf;
    src.nev = nev;
    int rc = 0;
    tally__store_grow_note_t gn = {0};
    if (src.nh || src.nm || np || nev)
        rc = tally__store_commit_grow(a->o.store, &src, a->pput, np,
                                      __atomic_load_n(&a->o.map_max_bytes, __ATOMIC_RELAXED),
                                      &gn);
    TALLY_STAT_ADD(map_grows, gn.grows); /* each growth is logged by the store */
    uint64_t size, used;
    tally__store_map_info(a->o.store, &size, &used);
    TALLY_STAT_SET(map_size, size);
    TALLY_STAT_SET(map_used, used);
    if (rc != 0) {
        uint32_t supp;
        TALLY_STAT_ADD(flush_errors, 1);
        const char *why = gn.short_write
                              ? "no space left on device (LMDB reported a short write as EIO)"
                              : tally_strerror(rc);
        if (rc == TALLY_EMAPFULL || rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG)
            TALLY_STAT_SET(store_full, 1);
        /* the code first: /healthz reads it once it sees store_stalled */
        TALLY_STAT_SET(flush_last_err, (int64_t)rc);
        TALLY_STAT_SET(store_stalled, 1);
        if (tally__ratelimit_ok(&a->rl_fail, 1, 10000, &supp))
            tally__log_error("flush failed; ingest paused until it succeeds err=\"%s\" "
                             "cells=%zu map_size_bytes=%llu suppressed=%u%s",
                             why, src.nh, (unsigned long long)size, supp,
                             rc == TALLY_ECORRUPT || rc == TALLY_ESTORE
                                 ? " (the store may be damaged: run tallyctl check with "
                                   "tallyd stopped)"
                                 : "");
        a->stalled = 1;
        return rc;
    }
    if (a->stalled) {
        tally__log_info("flush succeeded again; ingest resumes");
        a->stalled = 0;
        TALLY_STAT_SET(store_full, 0);
        TALLY_STAT_SET(store_stalled, 0);
    }
    for (uint32_t i = 0; i < a->ntouched; i++) {
        prod_t *p = &a->prods[a->touched[i]];
        p->com_floor = p->pend_floor;
        p->com_max = p->pend_max;
    }
    for (uint32_t i = 0; i < a->ndrops; i++)
        free(a->drops[i].name);
    a->ndrops = 0;
    /* a burst of many producers in one flush needs full states (528 bytes
     * each) for the commit: give such a buffer back instead of keeping it */
    if (a->cap_pput > 4096) {
        free(a->pput);
        a->pput = NULL;
        a->cap_pput = 0;
    }
    tally__cells_reset(a->cells);
    /* int64 overflows of this flush and of the adds before it
     * (docs/semantics-overflow.md): counted and logged, never silent */
    char ovc[TALLY_SERIES_TEXT_MAX], ovs[TALLY_SERIES_TEXT_MAX];
    uint64_t ovn = tally__cells_take_overflows(a->cells, ovc, sizeof ovc);
    uint64_t ovm = tally__store_take_overflows(a->o.store, ovs, sizeof ovs);
    uint32_t ovsupp;
    if (ovn + ovm) {
        TALLY_STAT_ADD(int_overflows, ovn + ovm);
        if (tally__ratelimit_ok(&a->rl_ovf, 1, 10000, &ovsupp))
            tally__log_warn("integer sum passed int64; it goes on in double precision, no longer "
                            "exact series=\"%s\" overflows=%llu suppressed=%u",
                            ovn ? ovc : ovs, (unsigned long long)(ovn + ovm), ovsupp);
    }
    uint64_t us = (uv_hrtime() - t0) / 1000;
    tally_stats_flush_observe(us);
    TALLY_STAT_ADD(flushes, 1);
    TALLY_STAT_ADD(events_committed, a->events_pending);
    TALLY_STAT_SET(cells_pending, 0);
    a->events_pending = 0;
    TALLY_STAT_ADD(blocks_committed, a->blocks_pending);
    a->blocks_pending = 0;
    tally_stats_usage_commit(); /* tally_usage_total: what this flush committed */
    publish_acks(a);
    answer_http(a, 0);
    return 0;
}

static void
stop_loop(tally_aggregator_t *a)
{
    uv_timer_stop(&a->flush_timer);
    uv_close((uv_handle_t *)&a->flush_timer, NULL);
    uv_close((uv_handle_t *)&a->wake, NULL);
}

static void
drain(tally_aggregator_t *a)
{
    void *item;
    int freed = 0, n = 0;
    while (!a->stalled && !a->shutting_down && n < DRAIN_BUDGET &&
           tally__ring_pop(a->o.work, &item)) {
        tally_block_t *b = item;
        n++;
        if (b->kind == TALLY_BLOCK_SHUTDOWN) {
            a->shutting_down = 1;
            free(b->d);
            free(b);
            break;
        }
        apply_block(a, b);
        b->n = 0;
        /* the free ring holds every block there is: it cannot be full */
        TALLY_ASSERT(tally__ring_push(a->o.free_ring, b));
        freed = 1;
    }
    TALLY_STAT_SET(cells_pending, tally__cells_cells(a->cells));
    if (freed && a->o.on_space)
        a->o.on_space(a->o.ctx);
    if (a->shutting_down) {
        int rc = flush(a);
        /* a failed final flush loses nothing: those batches were never
         * acked, so their producers send them again to the next daemon */
        a->final_status = rc;
        if (rc)
            tally__log_error("final flush failed; unacked batches will be resent err=\"%s\"",
                             tally_strerror(rc));
        answer_http(a, rc ? rc : TALLY_ECLOSED); /* a clean flush answered them already */
        stop_loop(a);
        if (a->o.on_done)
            a->o.on_done(a->o.ctx, rc);
        return;
    }
    if (n == DRAIN_BUDGET)
        uv_async_send(&a->wake); /* more waiting: come back after the timer had its turn */
}

static void
on_wake(uv_async_t *h)
{
    drain(h->data);
}

/* Retention, on this thread because it is the store's writer: after a
 * flush, delete at most PRUNE_PER_TICK hourly rollups older than
 * hourly_retention_days (the store commits them in small batches), so a
 * flush is never held up by more than one tick's worth. A round starts at
 * the first tick and then hourly, fixes its cut (the current hour minus the
 * retention) and goes on tick by tick until nothing older is left. Monthly
 * rollups are never pruned. */
#define PRUNE_PER_TICK 2048
#define PRUNE_EVERY_MS (3600u * 1000u)

/* The HTTP door's identities older than http_dedup_hours go the same way:
 * a round starts every hour, fixes its cut and deletes about
 * PRUNE_PER_TICK a tick (whole log records, in small transactions) until
 * none is older. */
/* Past ingest.http_dedup_max_events, the oldest identities go first, every
 * tick: the window shrinks instead of the door closing, and says so. */
static void
evict_events(tally_aggregator_t *a)
{
    uint64_t max = a->o.http_dedup_max_events;
    if (!max || a->stalled || tally__store_events_count(a->o.store) <= max)
        return;
    size_t n = 0;
    int64_t oldest = 0;
    uint32_t supp;
    int rc = tally__store_prune_events_ex(a->o.store, INT64_MIN, max, PRUNE_PER_TICK, &n, &oldest);
    TALLY_STAT_ADD(http_dedup_evicted, n);
    if (oldest)
        TALLY_STAT_SET(http_dedup_window_s, (uint64_t)(tally__time_now_ms() - oldest) / 1000);
    if (n && tally__ratelimit_ok(&a->rl_evict, 1, 60000, &supp))
        tally__log_warn("HTTP door: exactly-once set at ingest.http_dedup_max_events; oldest "
                        "identities forgotten early records=%zu window_s=%lld max=%llu "
                        "suppressed=%u err=\"%s\"",
                        n, oldest ? (long long)(tally__time_now_ms() - oldest) / 1000 : -1LL,
                        (unsigned long long)max, supp, tally_strerror(rc));
}

static void
prune_events_step(tally_aggregator_t *a, uint64_t now)
{
    evict_events(a);
    if (!a->o.http_dedup_hours || a->stalled || now < a->ev_prune_next_ms)
        return;
    if (!a->ev_prune_active) {
        a->ev_prune_active = 1;
        a->ev_prune_round = 0;
        a->ev_prune_cut_ms = tally__time_now_ms() - (int64_t)a->o.http_dedup_hours * 3600000;
    }
    size_t n = 0;
    int rc = tally__store_prune_events(a->o.store, a->ev_prune_cut_ms, PRUNE_PER_TICK, &n);
    a->ev_prune_round += n;
    TALLY_STAT_ADD(http_dedup_pruned, n);
    if (rc == 0 && n >= PRUNE_PER_TICK)
        return; /* whole records go, so a tick may take a few more */
    if (rc)
        tally__log_error("pruning HTTP event identities failed; next try in an hour "
                         "err=\"%s\" pruned=%zu",
                         tally_strerror(rc), a->ev_prune_round);
    else if (a->ev_prune_round)
        tally__log_info("pruned HTTP event identities records=%zu", a->ev_prune_round);
    a->ev_prune_active = 0;
    a->ev_prune_next_ms = now + PRUNE_EVERY_MS;
}

static void
prune_step(tally_aggregator_t *a)
{
    uint64_t now = uv_now(&a->loop);
    prune_events_step(a, now);
    if (!a->o.hourly_retention_days || a->stalled || now < a->prune_next_ms)
        return;
    if (!a->prune_active) {
        a->prune_active = 1;
        a->prune_round = 0;
        a->prune_cut_s = tally__time_hour_start(tally__time_now_ms() / 1000) -
                         (int64_t)a->o.hourly_retention_days * 86400;
    }
    size_t n = 0;
    int rc = tally__store_prune_hourly(a->o.store, a->prune_cut_s, PRUNE_PER_TICK, &n);
    a->prune_round += n;
    TALLY_STAT_ADD(retention_pruned, n);
    if (rc == 0 && n == PRUNE_PER_TICK)
        return; /* more to do: next tick */
    char cut[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(a->prune_cut_s, cut, sizeof cut);
    if (rc)
        tally__log_error("retention prune failed; next try in an hour err=\"%s\" pruned=%zu "
                         "before=%s",
                         tally_strerror(rc), a->prune_round, cut);
    else if (a->prune_round)
        tally__log_info("retention pruned hourly rollups records=%zu before=%s", a->prune_round,
                        cut);
    a->prune_active = 0;
    a->prune_next_ms = now + PRUNE_EVERY_MS;
}

static void
on_flush_timer(uv_timer_t *h)
{
    tally_aggregator_t *a = h->data;
    drain(a);
    if (a->shutting_down)
        return;
    int was_stalled = a->stalled;
    flush(a);
    if (was_stalled && !a->stalled)
        drain(a);
    prune_step(a);
}

static void
thread_main(void *arg)
{
    tally_aggregator_t *a = arg;
    uv_run(&a->loop, UV_RUN_DEFAULT);
}

int
tally_aggregator_start(const tally_aggregator_opts_t *opts, tally_aggregator_t **out)
{
    int rc;
    tally_aggregator_t *a = calloc(1, sizeof *a);
    if (!a)
        return -ENOMEM;
    a->o = *opts;
    a->pub = a->pub_local = -1;
    msgpack_sbuffer_init(&a->ackbuf);
    if ((rc = tally__cells_create(opts->series, &a->cells)) != 0)
        goto fail;
    if ((a->pub = nn_socket(AF_SP, NN_PUB)) < 0 || (a->pub_local = nn_socket(AF_SP, NN_PUB)) < 0) {
        rc = -nn_errno();
        goto fail;
    }
    for (size_t i = 0; i < opts->nacks; i++) {
        int local = strncmp(opts->acks[i], "ipc://", 6) == 0 ||
                    strncmp(opts->acks[i], "inproc://", 9) == 0;
        if (nn_bind(local ? a->pub_local : a->pub, opts->acks[i]) < 0) {
            rc = -nn_errno();
            tally__log_error("cannot bind ack endpoint endpoint=%s err=\"%s\"", opts->acks[i],
                             nn_strerror(-rc));
            goto fail;
        }
    }
    if ((rc = uv_loop_init(&a->loop)) != 0)
        goto fail;
    uv_async_init(&a->loop, &a->wake, on_wake);
    a->wake.data = a;
    uv_timer_init(&a->loop, &a->flush_timer);
    a->flush_timer.data = a;
    uv_timer_start(&a->flush_timer, on_flush_timer, opts->interval_ms, opts->interval_ms);
    if ((rc = uv_thread_create(&a->thread, thread_main, a)) != 0) {
        uv_close((uv_handle_t *)&a->wake, NULL);
        uv_close((uv_handle_t *)&a->flush_timer, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        uv_loop_close(&a->loop);
        goto fail;
    }
    *out = a;
    return 0;
fail:
    if (a->pub >= 0)
        nn_close(a->pub);
    if (a->pub_local >= 0)
        nn_close(a->pub_local);
    tally__cells_destroy(a->cells);
    free(a->prods);
    msgpack_sbuffer_destroy(&a->ackbuf);
    free(a);
    return rc;
}

void
tally_aggregator_set_map_max(tally_aggregator_t *a, uint64_t bytes)
{
    __atomic_store_n(&a->o.map_max_bytes, bytes, __ATOMIC_RELAXED);
}

void
tally_aggregator_notify(tally_aggregator_t *a)
{
    uv_async_send(&a->wake);
}

int
tally_aggregator_join(tally_aggregator_t *a)
{
    uv_thread_join(&a->thread);
    int status = a->final_status;
    uv_loop_close(&a->loop);
    nn_close(a->pub);
    nn_close(a->pub_local);
    tally__cells_destroy(a->cells);
    for (uint32_t i = 0; i < a->nprods; i++)
        free(a->prods[i].pend_bits);
    free(a->prods);
    free(a->touched);
    free(a->pput);
    for (uint32_t i = 0; i < a->ndrops; i++)
        free(a->drops[i].name);
    free(a->drops);
    free(a->http);
    free(a->evbuf);
    msgpack_sbuffer_destroy(&a->ackbuf);
    free(a);
    return status;
}
