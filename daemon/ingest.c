/* ingest.c — the receive path of tallyd: socket → MAC → decode → scope → dedup → intern → block →
 * ring. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>

#include "auth.h"
#include "codec.h"
#include "credential.h"
#include "ingest.h"
#include "log.h"
#include "pipeline.h"
#include "prodtab.h"
#include "rollup.h"
#include "stats.h"
#include "timeutil.h"

/* A sequence may lie this far past the daemon's clock in microseconds: a
 * day, so that a daemon whose clock was stepped back (or an emitter's that
 * runs ahead) still takes a restarted libtally producer, while one bad
 * batch blinds its producer for a day at most, not for good. */
#define SEQ_CLOCK_SLACK_S 86400

/* A duplicate this far below the floor is not a resend: the producer
 * restarted below its own floor (or was blinded by a bad batch), and its
 * events are dropped as duplicates. Said loudly, never silently. */
#define FAR_BELOW_FLOOR (4ull * TALLY_DEDUP_WINDOW)

/* Messages handled per readable callback before yielding to the loop. */
#define RECV_BUDGET 256

enum { SERIES_KNOWN = 1, SERIES_UNKNOWN = 2 };

/* Separates a credential's name from a producer id in the producer table:
 * neither alphabet holds it, and v1 keys (a bare producer id) never do. */
#define PRODUCER_KEY_SEP '\x1f'

/* One PULL socket per endpoint: nanomsg does not tell which endpoint of a
 * socket a message came through, and endpoints differ in what they take. */
typedef struct lsock {
    tally_ingest_t *in;
    int sock;
    uv_os_sock_t fd;
    uv_poll_t poll;
    int open_poll;  /* the uv_poll_t was initialised */
    int allow_v1;   /* unauthenticated batches are taken here */
    const char *endpoint;
} lsock_t;

struct tally_ingest {
    tally_ingest_opts_t o;
    lsock_t *socks;
    size_t nsocks;
    uv_async_t wake;
    uv_timer_t retry;
    int polling;
    int paused; /* atomic: shared with the aggregator's tally_ingest_wake() */
    int stopping;
    int closing;
    tally__decoder_t dec;
    tally__prodtab_t *prods; /* owned: producer identities and their dedup states */
    uv_timer_t idle_timer;   /* drops producers idle past the late window */
    int64_t idle_after_s;
    uint32_t idle_scan;      /* next slot the idle scan looks at */
    uint8_t *known; /* per series id: SERIES_KNOWN / SERIES_UNKNOWN */
    uint32_t cap_known;
    tally_block_t *spare; /* a free block not yet used */
    tally_block_t *shutdown;
    uint32_t blocks, blocks_max;
    int64_t late_window_s;
    int64_t future_skew_ms;
    int64_t seq_slack_ms; /* how far past the clock a sequence may go (SEQ_CLOCK_SLACK_S) */
    tally__ratelimit_t rl_reject;
    tally__ratelimit_t rl_below;
    /* producers held per credential (by credential-name id in creds) */
    tally__strtab_t *creds;
    uint32_t *cred_producers;
    uint32_t cap_cred_producers;
    /* HTTP door: identities of events in flight (submitted, not yet
     * answered), an open-addressing set with backward-shift deletion */
    uv_async_t http_wake;
    uint8_t (*inflight)[TALLY_STORE_EVKEY_LEN];
    uint8_t *inflight_used;
    uint32_t inflight_n, inflight_cap;
    uint32_t http_requests; /* submitted, not yet answered */
};

static void on_readable(uv_poll_t *h, int status, int events);

static void
reject_as(tally_ingest_t *in, int reason, uint64_t n, const tally__str_t *cred,
          const tally__str_t *producer)
{
    uint32_t supp;
    TALLY_STAT_ADD(rejected[reason], n);
    if (tally__ratelimit_ok(&in->rl_reject, 5, 10000, &supp))
        tally__log_warn("rejected reason=%s detail=\"%s\" count=%llu credential=%.*s "
                        "producer=%.*s suppressed=%u",
                        tally__reject_name(reason), tally__reject_text(reason),
                        (unsigned long long)n, cred && cred->len ? (int)cred->len : 1,
                        cred && cred->len ? cred->p : "-", producer ? (int)producer->len : 1,
                        producer ? producer->p : "-", supp);
}

static void
reject(tally_ingest_t *in, int reason, uint64_t n, const tally__str_t *producer)
{
    reject_as(in, reason, n, NULL, producer);
}

static tally_block_t *
get_block(tally_ingest_t *in)
{
    void *item;
    if (in->spare) {
        tally_block_t *b = in->spare;
        in->spare = NULL;
        return b;
    }
    if (tally__ring_pop(in->o.free_ring, &item))
        return item;
    if (in->blocks < in->blocks_max) {
        tally_block_t *b = calloc(1, sizeof *b);
        if (b)
            in->blocks++;
        return b;
    }
    return NULL;
}

static void
start_polling(tally_ingest_t *in)
{
    if (!in->polling && !in->stopping && !in->closing) {
        for (size_t i = 0; i < in->nsocks; i++)
            uv_poll_start(&in->socks[i].poll, UV_READABLE, on_readable);
        in->polling = 1;
    }
}

static void
stop_polling(tally_ingest_t *in)
{
    if (in->polling) {
        for (size_t i = 0; i < in->nsocks; i++)
            uv_poll_stop(&in->socks[i].poll);
        in->polling = 0;
    }
}

static void
pause_ingest(tally_ingest_t *in)
{
    stop_polling(in);
    if (!__atomic_load_n(&in->paused, __ATOMIC_SEQ_CST)) {
        TALLY_STAT_ADD(pauses, 1);
        TALLY_STAT_SET(ingest_paused, 1);
    }
    __atomic_store_n(&in->paused, 1, __ATOMIC_SEQ_CST);
    /* the aggregator may have returned blocks before it could see paused */
    if (tally__ring_size(in->o.free_ring) > 0)
        uv_async_send(&in->wake);
}

static int
series_known(tally_ingest_t *in, uint32_t id, const char *metric, uint32_t metric_len)
{
    if (id >= in->cap_known) {
        uint32_t ncap = in->cap_known ? in->cap_known : 1024;
        while (ncap <= id)
            ncap *= 2;
        uint8_t *nk = realloc(in->known, ncap);
        if (!nk)
            return -ENOMEM;
        memset(nk + in->cap_known, 0, ncap - in->cap_known);
        in->known = nk;
        in->cap_known = ncap;
    }
    if (!in->known[id]) {
        char m[TALLY_MAX_METRIC_LEN + 1];
        memcpy(m, metric, metric_len);
        m[metric_len] = '\0';
        in->known[id] =
            in->o.catalog && tally__catalog_find(in->o.catalog, m) ? SERIES_KNOWN : SERIES_UNKNOWN;
        TALLY_STAT_SET(series, tally__strtab_count(in->o.series));
    }
    return in->known[id] == SERIES_KNOWN;
}

/* Count one more producer under credential cred (v2 keys only); 0 when the
 * credential is at ingest.max_producers_per_credential. *cid: the
 * credential's index, for cred_release(). */
static int
cred_admit(tally_ingest_t *in, const char *cred, uint32_t cred_len, uint32_t *cidp, int force)
{
    uint32_t cid;
    if (tally__strtab_intern(in->creds, cred, cred_len, &cid) < 0)
        return 0;
    if (cid >= in->cap_cred_producers) {
        uint32_t ncap = in->cap_cred_producers ? in->cap_cred_producers * 2 : 16;
        while (ncap <= cid)
            ncap *= 2;
        uint32_t *np = realloc(in->cred_producers, (size_t)ncap * sizeof *np);
        if (!np)
            return 0;
        memset(np + in->cap_cred_producers, 0,
               (size_t)(ncap - in->cap_cred_producers) * sizeof *np);
        in->cred_producers = np;
        in->cap_cred_producers = ncap;
    }
    if (!force && in->cred_producers[cid] >= in->o.cfg->ingest.max_producers_per_credential)
        return 0;
    in->cred_producers[cid]++;
    *cidp = cid;
    return 1;
}

static void
cred_release(tally_ingest_t *in, uint32_t cid)
{
    if (cid < in->cap_cred_producers && in->cred_producers[cid])
        in->cred_producers[cid]--;
}

/* Check the MAC (v2) or whether v1 may come through this endpoint, then
 * decode. Returns 0 with *batch and *key (the credential's MAC key, NULL
 * for v1) set, or the reject reason. */
static int
authenticate(tally_ingest_t *in, const lsock_t *ls, const void *msg, size_t len,
             tally__wire_batch_t *batch, const tally__token_t **tok, tally__str_t *cred)
{
    uint32_t version;
    int reason;
    *tok = NULL;
    cred->p = NULL;
    cred->len = 0;
    if (tally__peek_batch(msg, len, &version, cred, &reason) != 0)
        return reason;
    if (version == TALLY_PROTO_VERSION_V1) {
        if (!ls->allow_v1)
            return TALLY_PROTO_REJECT_unauthenticated;
    } else {
        /* nothing after the credential's name is read before the MAC holds */
        const tally__tokens_t *toks = in->o.tokens ? *in->o.tokens : NULL;
        *tok = tally__tokens_find_emitter(toks, cred->p, cred->len);
        if (!*tok || !tally__mac_check(tally__token_mac_key(*tok), msg, len))
            return TALLY_PROTO_REJECT_auth;
        len -= TALLY__MAC_LEN;
    }
    if (tally__decode_batch(&in->dec, msg, len, batch, &reason) != 0)
        return reason;
    return -1;
}

/* Every event's namespace: never `system`, and inside the credential's
 * scope. A batch with one bad event is refused whole. */
static int
check_scope(const tally__wire_batch_t *batch, const tally__token_t *tok)
{
    for (uint32_t i = 0; i < batch->nevents; i++) {
        const tally__str_t *ns = &batch->events[i].ns;
        if (ns->len == 6 && memcmp(ns->p, "system", 6) == 0)
            return TALLY_PROTO_REJECT_reserved;
        if (tok && !tally__token_allows_ns(tok, ns->p, ns->len, TALLY_ACCESS_INGEST))
            return TALLY_PROTO_REJECT_scope;
    }
    return -1;
}

int
tally_ingest_check_time(const tally_ingest_t *in, int64_t now_ms, int64_t ts_ms)
{
    if (ts_ms > now_ms + in->future_skew_ms)
        return TALLY_PROTO_REJECT_future;
    if (tally__time_hour_start(ts_ms / 1000) <
        tally__time_hour_start(now_ms / 1000) - in->late_window_s)
        return TALLY_PROTO_REJECT_too_old;
    return -1;
}

/* Append one event's delta to b (room checked by the caller). */
static void
put_delta(tally_block_t *b, uint32_t sid, int is_float, int64_t ival, double fval, int64_t ts_ms)
{
    tally_delta_t *d = &b->d[b->n++];
    d->series = sid;
    d->is_float = (uint32_t)is_float;
    d->ts_ms = ts_ms;
    if (is_float)
        d->v.f = fval;
    else
        d->v.i = ival;
}

/* Handle one message. Returns 1 when the block was used (pushed). */
static int
handle(tally_ingest_t *in, const lsock_t *ls, const void *msg, size_t len, tally_block_t *b)
{
    tally__wire_batch_t batch;
    const tally__token_t *tok;
    tally__str_t cred;
    uint32_t pid;
    memset(&batch, 0, sizeof batch); /* a failed peek leaves it unread */
    TALLY_STAT_ADD(messages, 1);
    if (len > in->o.cfg->ingest.max_message_bytes) {
        reject(in, TALLY_PROTO_REJECT_oversize, 1, NULL);
        return 0;
    }
    int reason = authenticate(in, ls, msg, len, &batch, &tok, &cred);
    if (reason < 0)
        reason = check_scope(&batch, tok);
    if (reason >= 0) {
        /* the producer id is named only when the batch decoded this far;
         * before a MAC held it is the sender's word, not a fact */
        reject_as(in, reason, 1, &cred, batch.producer.len ? &batch.producer : NULL);
        return 0;
    }
    /* The producer identity: (credential, producer id) for v2, so nobody
     * without a credential's key can touch its producers' state. */
    char pkey[TALLY__CRED_MAX_NAME + 1 + TALLY_MAX_PRODUCER_LEN];
    uint32_t pkey_len = 0;
    if (tok) {
        memcpy(pkey, cred.p, cred.len);
        pkey[cred.len] = PRODUCER_KEY_SEP;
        pkey_len = cred.len + 1;
    }
    TALLY_ASSERT(batch.producer.p != NULL); /* a decoded batch always names one */
    memcpy(pkey + pkey_len, batch.producer.p, batch.producer.len);
    pkey_len += batch.producer.len;
    int64_t now_ms = tally__time_now_ms();
    /* A sequence may run ahead of the floor by the window (what a producer
     * may have in flight), or up to the wall clock in microseconds (where
     * libtally starts a restarted producer), and no further: one bad batch
     * must not push the floor where the producer's real batches would be
     * taken for duplicates for good. */
    uint64_t clock_cap = (uint64_t)(now_ms + in->seq_slack_ms) * 1000u;
    int64_t slot = tally__prodtab_find(in->prods, pkey, pkey_len);
    if (slot < 0 && batch.seq > TALLY_DEDUP_WINDOW && batch.seq > clock_cap) {
        /* refused before it takes a place under its credential's cap */
        reject_as(in, TALLY_PROTO_REJECT_window, 1, &cred, &batch.producer);
        return 0;
    }
    if (slot < 0) {
        uint32_t cid = UINT32_MAX, s;
        if (tok && !cred_admit(in, cred.p, cred.len, &cid, 0)) {
            reject_as(in, TALLY_PROTO_REJECT_producers, 1, &cred, &batch.producer);
            return 0;
        }
        if (tally__prodtab_add(in->prods, pkey, pkey_len, cid, NULL, now_ms / 1000, &s) != 0) {
            cred_release(in, cid);
            tally__log_error("out of memory adding a producer; batch left unacked");
            return 0;
        }
        slot = s;
        TALLY_STAT_SET(producers, tally__prodtab_count(in->prods));
    }
    pid = (uint32_t)slot;
    tally__prod_t *prod = tally__prodtab_get(in->prods, pid);
    tally__dedup_t st;
    tally__prodtab_state(prod, &st);
    if (batch.seq > st.floor + TALLY_DEDUP_WINDOW && batch.seq > clock_cap) {
        reject_as(in, TALLY_PROTO_REJECT_window, 1, &cred, &batch.producer);
        return 0;
    }
    int verdict = tally__dedup_accept(&st, batch.seq, batch.base);
    if (verdict == TALLY_DEDUP_AHEAD) {
        reject_as(in, TALLY_PROTO_REJECT_window, 1, &cred, &batch.producer);
        return 0;
    }
    if (tally__prodtab_set_state(in->prods, prod, &st) != 0) {
        tally__log_error("out of memory for a producer's window; batch left unacked");
        return 0;
    }
    prod->last_seen_s = now_ms / 1000;
    b->producer = pid;
    b->pname = prod->name;
    b->pname_len = prod->name_len;
    b->last_seen_s = prod->last_seen_s;
    b->state = st;
    b->n = 0;
    b->signed_ack = tok != NULL;
    if (tok)
        memcpy(b->ack_key, tally__token_mac_key(tok), sizeof b->ack_key);
    TALLY_STAT_ADD(blocks_accepted, 1);
    if (verdict == TALLY_DEDUP_DUP) {
        TALLY_STAT_ADD(duplicates, 1);
        if (batch.seq + FAR_BELOW_FLOOR < st.floor) {
            uint32_t supp;
            TALLY_STAT_ADD(duplicates_far_below, 1);
            if (tally__ratelimit_ok(&in->rl_below, 1, 10000, &supp))
                tally__log_warn("a batch far below its producer's floor is taken as a duplicate "
                                "and not counted: the producer restarted with lower sequence "
                                "numbers, or a bad batch moved its floor credential=%.*s "
                                "producer=%.*s seq=%llu floor=%llu suppressed=%u",
                                cred.len ? (int)cred.len : 1, cred.len ? cred.p : "-",
                                (int)batch.producer.len, batch.producer.p,
                                (unsigned long long)batch.seq, (unsigned long long)st.floor, supp);
        }
        b->kind = TALLY_BLOCK_ACK;
    } else {
        b->kind = TALLY_BLOCK_BATCH;
        if (batch.nevents > b->cap) {
            tally_delta_t *nd = realloc(b->d, (size_t)batch.nevents * sizeof *nd);
            if (!nd) {
                tally__log_error("out of memory for a batch; exiting without acking it");
                abort(); /* the dedup state already counts it: never ack a partial batch */
            }
            b->d = nd;
            b->cap = batch.nevents;
        }
        uint64_t too_old = 0, future = 0, unknown = 0;
        char key[TALLY_SERIES_KEY_MAX];
        for (uint32_t i = 0; i < batch.nevents; i++) {
            const tally__wire_event_t *ev = &batch.events[i];
            int when = tally_ingest_check_time(in, now_ms, ev->ts_ms);
            if (when >= 0) {
                future += when == TALLY_PROTO_REJECT_future;
                too_old += when == TALLY_PROTO_REJECT_too_old;
                continue;
            }
            size_t klen = tally__series_key_wire(key, ev->ns, ev->metric,
                                                 batch.labels + ev->label_off, ev->nlabels);
            uint32_t sid;
            int irc = tally__strtab_intern(in->o.series, key, (uint32_t)klen, &sid);
            int known = irc < 0 ? irc : series_known(in, sid, ev->metric.p, ev->metric.len);
            if (known < 0) {
                tally__log_error("out of memory interning a series; exiting without acking");
                abort();
            }
            unknown += !known;
            put_delta(b, sid, ev->is_float, ev->ival, ev->fval, ev->ts_ms);
        }
        if (too_old)
            reject(in, TALLY_PROTO_REJECT_too_old, too_old, &batch.producer);
        if (future)
            reject(in, TALLY_PROTO_REJECT_future, future, &batch.producer);
        if (unknown)
            TALLY_STAT_ADD(unknown_metric, unknown);
        TALLY_STAT_ADD(batches, 1);
        TALLY_STAT_ADD(events, b->n);
    }
    /* blocks never outnumber the ring's slots: the push cannot fail */
    TALLY_ASSERT(tally__ring_push(in->o.work, b));
    return 1;
}

static void
on_readable(uv_poll_t *h, int status, int events)
{
    lsock_t *ls = h->data;
    tally_ingest_t *in = ls->in;
    (void)events;
    if (status < 0) {
        tally__log_error("ingest poll failed err=\"%s\"", uv_strerror(status));
        return;
    }
    int pushed = 0;
    for (int i = 0; i < RECV_BUDGET; i++) {
        tally_block_t *b = get_block(in);
        if (!b) {
            pause_ingest(in);
            break;
        }
        void *msg;
        int n = nn_recv(ls->sock, &msg, NN_MSG, NN_DONTWAIT);
        if (n < 0) {
            in->spare = b;
            int err = nn_errno();
            if (err != EAGAIN && err != EINTR)
                tally__log_error("ingest receive failed err=\"%s\"", nn_strerror(err));
            break;
        }
        if (handle(in, ls, msg, (size_t)n, b))
            pushed = 1;
        else
            in->spare = b;
        nn_freemsg(msg);
    }
    if (pushed)
        tally_aggregator_notify(in->o.aggregator);
}

static void
on_wake(uv_async_t *h)
{
    tally_ingest_t *in = h->data;
    if (__atomic_load_n(&in->paused, __ATOMIC_SEQ_CST) && tally__ring_size(in->o.free_ring) > 0) {
        __atomic_store_n(&in->paused, 0, __ATOMIC_SEQ_CST);
        TALLY_STAT_SET(ingest_paused, 0);
        start_polling(in);
    }
}

/* ---- the HTTP door ---------------------------------------------------------- */

static uint32_t
key_slot(const tally_ingest_t *in, const uint8_t *key)
{
    uint64_t h;
    memcpy(&h, key, sizeof h); /* a BLAKE2b output: already uniform */
    return (uint32_t)h & (in->inflight_cap - 1);
}

static int
inflight_has(const tally_ingest_t *in, const uint8_t *key)
{
    if (!in->inflight_cap)
        return 0;
    for (uint32_t i = key_slot(in, key);; i = (i + 1) & (in->inflight_cap - 1)) {
        if (!in->inflight_used[i])
            return 0;
        if (memcmp(in->inflight[i], key, TALLY_STORE_EVKEY_LEN) == 0)
            return 1;
    }
}

static int inflight_add(tally_ingest_t *in, const uint8_t *key);

static int
inflight_grow(tally_ingest_t *in)
{
    uint32_t ocap = in->inflight_cap, ncap = ocap ? ocap * 2 : 1024;
    uint8_t(*ok)[TALLY_STORE_EVKEY_LEN] = in->inflight;
    uint8_t *oused = in->inflight_used;
    in->inflight = malloc((size_t)ncap * TALLY_STORE_EVKEY_LEN);
    in->inflight_used = calloc(ncap, 1);
    if (!in->inflight || !in->inflight_used) {
        free(in->inflight);
        free(in->inflight_used);
        in->inflight = ok;
        in->inflight_used = oused;
        return -ENOMEM;
    }
    in->inflight_cap = ncap;
    in->inflight_n = 0;
    for (uint32_t i = 0; i < ocap; i++)
        if (oused[i])
            inflight_add(in, ok[i]);
    free(ok);
    free(oused);
    return 0;
}

static int
inflight_add(tally_ingest_t *in, const uint8_t *key)
{
    if ((in->inflight_n + 1) * 2 > in->inflight_cap && inflight_grow(in) != 0)
        return -ENOMEM;
    uint32_t i = key_slot(in, key);
    while (in->inflight_used[i])
        i = (i + 1) & (in->inflight_cap - 1);
    memcpy(in->inflight[i], key, TALLY_STORE_EVKEY_LEN);
    in->inflight_used[i] = 1;
    in->inflight_n++;
    return 0;
}

static void
inflight_del(tally_ingest_t *in, const uint8_t *key)
{
    uint32_t mask = in->inflight_cap - 1, i = key_slot(in, key);
    while (in->inflight_used[i] && memcmp(in->inflight[i], key, TALLY_STORE_EVKEY_LEN) != 0)
        i = (i + 1) & mask;
    if (!in->inflight_used[i])
        return;
    /* backward shift: pull later members of the run into the hole when
     * their home slot does not lie between the hole and them */
    for (uint32_t j = (i + 1) & mask; in->inflight_used[j]; j = (j + 1) & mask) {
        uint32_t home = key_slot(in, in->inflight[j]);
        if (((j - home) & mask) >= ((j - i) & mask)) {
            memcpy(in->inflight[i], in->inflight[j], TALLY_STORE_EVKEY_LEN);
            i = j;
        }
    }
    in->inflight_used[i] = 0;
    in->inflight_n--;
}

/* Intern the series of one event and append its delta to b. */
static int
add_delta(tally_ingest_t *in, tally_block_t *b, const tally_event_t *ev)
{
    char key[TALLY_SERIES_KEY_MAX];
    size_t nl = strlen(ev->ns), ml = strlen(ev->metric);
    size_t klen = tally__series_key(key, ev->ns, nl, ev->metric, ml, ev->labels, ev->nlabels);
    uint32_t sid;
    int rc = tally__strtab_intern(in->o.series, key, (uint32_t)klen, &sid);
    int known = rc < 0 ? rc : series_known(in, sid, ev->metric, (uint32_t)ml);
    if (known < 0)
        return known;
    if (!known)
        TALLY_STAT_ADD(unknown_metric, 1);
    put_delta(b, sid, ev->is_float, ev->ivalue, ev->fvalue, ev->ts_ms);
    return 0;
}

static void
answer_done(tally_ingest_t *in, tally_http_events_t *he)
{
    for (uint32_t i = 0; i < he->nkeys; i++)
        inflight_del(in, he->keys[i].key);
    in->http_requests--;
    if (in->o.http_answer)
        in->o.http_answer(in->o.http_ctx, he->request, he->status, he->nkeys, he->duplicates);
    free(he->keys);
    free(he);
}

static void
drain_http_done(tally_ingest_t *in)
{
    void *item;
    while (in->o.http_done && tally__ring_pop(in->o.http_done, &item))
        answer_done(in, item);
}

static void
on_http_wake(uv_async_t *h)
{
    drain_http_done(h->data);
}

void
tally_ingest_http_wake(tally_ingest_t *in)
{
    uv_async_send(&in->http_wake);
}

int
tally_ingest_submit_events(tally_ingest_t *in, const tally_ingest_event_t *events, size_t n,
                           void *request)
{
    const tally__config_t *cfg = in->o.cfg;
    int64_t now_ms = tally__time_now_ms();
    int64_t since_ms = now_ms - (int64_t)cfg->ingest.http_dedup_hours * 3600000;
    if (in->stopping || in->closing)
        return TALLY_ECLOSED;
    if (n == 0 || n > TALLY_MAX_BATCH_EVENTS)
        return TALLY_EINVAL;
    /* every request waiting for its commit must fit the done ring */
    if (in->http_requests + 1 >= tally__ring_capacity(in->o.http_done))
        return TALLY_EBUSY;
    tally__store_evkey_t *keys = malloc(n * sizeof *keys);
    uint8_t *seen = malloc(n);
    tally_http_events_t *he = calloc(1, sizeof *he);
    int rc = -ENOMEM;
    if (!keys || !seen || !he)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        memcpy(keys[i].key, events[i].key, TALLY_STORE_EVKEY_LEN);
        keys[i].seen_ms = now_ms;
    }
    uint64_t stored;
    if ((rc = tally__store_events_seen(in->o.store, keys, n, since_ms, seen, &stored)) != 0)
        goto fail;
    /* the aggregator forgets the oldest identities past the maximum every
     * tick; twice the maximum means it cannot keep up (a stalled store) */
    if (stored + in->inflight_n + n > 2 * cfg->ingest.http_dedup_max_events) {
        TALLY_STAT_ADD(http_dedup_full, 1);
        rc = TALLY_EFULL;
        goto fail;
    }
    tally_block_t *b = get_block(in);
    if (!b) {
        rc = TALLY_EBUSY;
        goto fail;
    }
    if (n > b->cap) {
        tally_delta_t *nd = realloc(b->d, n * sizeof *nd);
        if (!nd) {
            in->spare = b;
            rc = -ENOMEM;
            goto fail;
        }
        b->d = nd;
        b->cap = (uint32_t)n;
    }
    /* from here on nothing fails before the push but memory, and a failure
     * then exits without answering (as the nanomsg path does): a request
     * half in the in-flight set must not be answered as not counted */
    b->kind = TALLY_BLOCK_HTTP;
    b->n = 0;
    b->signed_ack = 0;
    b->http = he;
    he->request = request;
    he->keys = keys;
    for (size_t i = 0; i < n; i++) {
        /* committed, in flight in another request, or twice in this one */
        if (seen[i] || inflight_has(in, events[i].key)) {
            he->duplicates++;
            continue;
        }
        if (inflight_add(in, events[i].key) != 0 || add_delta(in, b, events[i].ev) != 0) {
            tally__log_error("out of memory in the HTTP door; exiting without answering");
            abort();
        }
        keys[he->nkeys++] = keys[i];
    }
    free(seen);
    in->http_requests++;
    TALLY_STAT_ADD(http_events, b->n);
    TALLY_STAT_ADD(http_duplicates, he->duplicates);
    TALLY_STAT_ADD(events, b->n);
    TALLY_ASSERT(tally__ring_push(in->o.work, b));
    tally_aggregator_notify(in->o.aggregator);
    return 0;
fail:
    free(keys);
    free(seen);
    free(he);
    return rc;
}

void
tally_ingest_wake(tally_ingest_t *in)
{
    if (__atomic_load_n(&in->paused, __ATOMIC_SEQ_CST))
        uv_async_send(&in->wake);
}

/* Whether an endpoint is local to the host: only there may require_auth =
 * false let unauthenticated batches in. */
static int
is_local_endpoint(const char *ep)
{
    return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0;
}

/* A producer of the store, at start: its slot, and its credential counted. */
static int
load_producer(void *ctx, const char *id, size_t id_len, const tally__dedup_t *state,
              int64_t last_seen_s)
{
    tally_ingest_t *in = ctx;
    uint32_t cid = UINT32_MAX, slot;
    const char *sep = memchr(id, PRODUCER_KEY_SEP, id_len);
    /* counted even past the cap (it was lowered): the state is kept, and
     * new producers are refused until drops bring the count under it */
    if (sep)
        cred_admit(in, id, (uint32_t)(sep - id), &cid, 1);
    /* a store from before last-seen times were kept does not know: count
     * it as heard from now, so it is dropped one idle period after this start */
    return tally__prodtab_add(in->prods, id, (uint32_t)id_len, cid, state,
                              last_seen_s ? last_seen_s : tally__time_now_ms() / 1000, &slot);
}

/* Drop producers idle past the late window (and a margin): a batch of
 * theirs sent again after that could only hold events too old to count,
 * so forgetting which sequences were counted can count nothing twice. The
 * aggregator deletes the stored state and frees the name. A scan looks at
 * a bounded number of slots per tick, so a large table costs no pause. */
#define IDLE_SCAN_PER_TICK 4096
#define IDLE_TICK_MS 1000

static void
on_idle_timer(uv_timer_t *h)
{
    tally_ingest_t *in = h->data;
    int64_t cut = tally__time_now_ms() / 1000 - in->idle_after_s;
    uint32_t nslots = tally__prodtab_slots(in->prods);
    if (in->stopping || in->closing || nslots == 0)
        return;
    for (uint32_t k = 0; k < IDLE_SCAN_PER_TICK && k < nslots; k++) {
        uint32_t slot = in->idle_scan++ % nslots;
        tally__prod_t *p = tally__prodtab_get(in->prods, slot);
        if (!p || p->last_seen_s >= cut)
            continue;
        tally_block_t *b = get_block(in);
        if (!b)
            return; /* back-pressure: next tick */
        uint32_t cid = p->cred;
        b->kind = TALLY_BLOCK_DROP;
        b->producer = slot;
        b->n = 0;
        b->http = NULL;
        b->signed_ack = 0;
        char *name;
        tally__prodtab_drop(in->prods, slot, &name, &b->pname_len);
        b->pname = name; /* the aggregator frees it */
        cred_release(in, cid);
        TALLY_STAT_ADD(producers_dropped, 1);
        TALLY_STAT_SET(producers, tally__prodtab_count(in->prods));
        TALLY_ASSERT(tally__ring_push(in->o.work, b));
        tally_aggregator_notify(in->o.aggregator);
    }
}

static int
open_socket(tally_ingest_t *in, lsock_t *ls, const char *endpoint)
{
    const tally__config_t *cfg = in->o.cfg;
    ls->in = in;
    ls->endpoint = endpoint;
    ls->allow_v1 = !cfg->ingest.require_auth && is_local_endpoint(endpoint);
    if ((ls->sock = nn_socket(AF_SP, NN_PULL)) < 0)
        return -nn_errno();
    /* nanomsg drops a message over NN_RCVMAXSIZE unseen: take up to twice
     * the limit so that those at least are counted as oversize */
    int maxsz = (int)cfg->ingest.max_message_bytes * 2, rcvbuf = 4 << 20;
    nn_setsockopt(ls->sock, NN_SOL_SOCKET, NN_RCVMAXSIZE, &maxsz, sizeof maxsz);
    nn_setsockopt(ls->sock, NN_SOL_SOCKET, NN_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (nn_bind(ls->sock, endpoint) < 0) {
        int rc = -nn_errno();
        tally__log_error("cannot bind ingest endpoint endpoint=%s err=\"%s\"", endpoint,
                         nn_strerror(-rc));
        return rc;
    }
    size_t sz = sizeof ls->fd;
    if (nn_getsockopt(ls->sock, NN_SOL_SOCKET, NN_RCVFD, &ls->fd, &sz) < 0)
        return -nn_errno();
    int rc = uv_poll_init(in->o.loop, &ls->poll, ls->fd);
    if (rc)
        return rc;
    ls->open_poll = 1;
    ls->poll.data = ls;
    tally__log_info("ingest endpoint endpoint=%s takes=%s", endpoint,
                    ls->allow_v1 ? "v2,v1-unauthenticated" : "v2-authenticated");
    return 0;
}

int
tally_ingest_start(const tally_ingest_opts_t *opts, tally_ingest_t **out)
{
    int rc;
    const tally__config_t *cfg = opts->cfg;
    tally_ingest_t *in = calloc(1, sizeof *in);
    if (!in)
        return -ENOMEM;
    in->o = *opts;
    in->late_window_s = (int64_t)cfg->ingest.late_window_hours * 3600;
    in->future_skew_ms = (int64_t)cfg->ingest.future_skew_s * 1000;
    in->seq_slack_ms = in->future_skew_ms > SEQ_CLOCK_SLACK_S * 1000 ? in->future_skew_ms
                                                                      : SEQ_CLOCK_SLACK_S * 1000;
    in->blocks_max = tally__ring_capacity(opts->work);
    if ((rc = tally__decoder_init(&in->dec, cfg->ingest.max_batch_events)) != 0)
        goto fail;
    /* an hour for the late window's rounding to hour starts, and the
     * future skew an event may have had */
    in->idle_after_s = (int64_t)cfg->ingest.late_window_hours * 3600 + 3600 +
                       (int64_t)cfg->ingest.future_skew_s;
    if ((rc = tally__strtab_create(&in->creds)) != 0 ||
        (rc = tally__prodtab_create(&in->prods)) != 0)
        goto fail;
    if (opts->store && (rc = tally__store_producers_ex(opts->store, load_producer, in)) != 0)
        goto fail;
    TALLY_STAT_SET(producers, tally__prodtab_count(in->prods));
    in->socks = calloc(cfg->ingest.nlisten, sizeof *in->socks);
    if (!in->socks) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < cfg->ingest.nlisten; i++) {
        in->socks[i].sock = -1;
        in->nsocks++;
        if ((rc = open_socket(in, &in->socks[i], cfg->ingest.listen[i])) != 0)
            goto fail;
    }
    uv_async_init(opts->loop, &in->wake, on_wake);
    in->wake.data = in;
    uv_timer_init(opts->loop, &in->retry);
    in->retry.data = in;
    uv_async_init(opts->loop, &in->http_wake, on_http_wake);
    in->http_wake.data = in;
    uv_timer_init(opts->loop, &in->idle_timer);
    in->idle_timer.data = in;
    uv_timer_start(&in->idle_timer, on_idle_timer, IDLE_TICK_MS, IDLE_TICK_MS);
    start_polling(in);
    *out = in;
    return 0;
fail:
    /* a poll handle that was initialised must be closed through the loop */
    for (size_t i = 0; in->socks && i < in->nsocks; i++) {
        if (in->socks[i].sock >= 0)
            nn_close(in->socks[i].sock);
        if (in->socks[i].open_poll)
            uv_close((uv_handle_t *)&in->socks[i].poll, NULL);
    }
    if (in->socks && in->nsocks && in->socks[0].open_poll)
        uv_run(opts->loop, UV_RUN_NOWAIT); /* let the closes finish before freeing */
    free(in->socks);
    tally__decoder_fini(&in->dec);
    tally__strtab_destroy(in->creds);
    tally__prodtab_destroy(in->prods);
    free(in);
    return rc;
}

static void
on_retry_shutdown(uv_timer_t *h)
{
    tally_ingest_t *in = h->data;
    if (in->shutdown && tally__ring_push(in->o.work, in->shutdown)) {
        in->shutdown = NULL;
        uv_timer_stop(&in->retry);
    }
    tally_aggregator_notify(in->o.aggregator);
}

void
tally_ingest_stop(tally_ingest_t *in)
{
    if (in->stopping)
        return;
    stop_polling(in);
    in->stopping = 1;
    in->shutdown = calloc(1, sizeof *in->shutdown);
    TALLY_ASSERT(in->shutdown != NULL);
    in->shutdown->kind = TALLY_BLOCK_SHUTDOWN;
    uv_timer_start(&in->retry, on_retry_shutdown, 0, 5);
}

static void
on_closed(uv_handle_t *h)
{
    tally_ingest_t *in = h->data;
    if (--in->closing > 0)
        return;
    void *item;
    while (tally__ring_pop(in->o.free_ring, &item)) {
        tally_block_t *b = item;
        free(b->d);
        free(b);
    }
    if (in->spare) {
        free(in->spare->d);
        free(in->spare);
    }
    free(in->shutdown);
    /* requests the aggregator gave back last (its final flush) */
    drain_http_done(in);
    if (in->http_requests)
        tally__log_error("HTTP ingest requests left unanswered at exit count=%u",
                         in->http_requests);
    free(in->inflight);
    free(in->inflight_used);
    for (size_t i = 0; i < in->nsocks; i++)
        nn_close(in->socks[i].sock);
    free(in->socks);
    tally__decoder_fini(&in->dec);
    tally__strtab_destroy(in->creds);
    free(in->cred_producers);
    tally__prodtab_destroy(in->prods);
    free(in->known);
    free(in);
}

static void
on_sock_closed(uv_handle_t *h)
{
    lsock_t *ls = h->data;
    on_closed((uv_handle_t *)&ls->in->wake);
}

void
tally_ingest_close(tally_ingest_t *in)
{
    stop_polling(in);
    in->closing = (int)in->nsocks + 4;
    uv_close((uv_handle_t *)&in->idle_timer, on_closed);
    for (size_t i = 0; i < in->nsocks; i++)
        uv_close((uv_handle_t *)&in->socks[i].poll, on_sock_closed);
    uv_close((uv_handle_t *)&in->http_wake, on_closed);
    uv_close((uv_handle_t *)&in->wake, on_closed);
    uv_close((uv_handle_t *)&in->retry, on_closed);
}
