/* client.c — libtally's producer: batches events, keeps every batch until acked, resends, survives
 * restarts.
 *
 * Locking: one mutex guards the whole client; the caller's thread encodes
 * and seals batches under it, the background thread receives acks, seals
 * batches that waited too long and resends those whose ack is late. All
 * sends are non-blocking: a batch the transport refuses stays queued and
 * is tried again by the background thread. Memory is bounded by
 * max_unacked batches and max_unacked_bytes; past either, tally_emit()
 * returns TALLY_EFULL and queues nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/pubsub.h>
#include <sodium.h>

#include "codec.h"
#include "timeutil.h"
#include "tally/tally.h"

/* How often the background thread wakes when nothing arrives. */
#define TICK_MS 5
/* Batches waiting this many ack timeouts with no ack at all: the sockets
 * are rebuilt, in case a transport stopped reconnecting on its own. */
#define REBUILD_AFTER_TIMEOUTS 10

/* Ack latency histogram: 16 sub-buckets per power of two of microseconds. */
#define LAT_SUB 16
#define LAT_BUCKETS (40 * LAT_SUB)

typedef struct pending {
    uint64_t seq;
    char *data;
    size_t len;
    int64_t sent_ms;    /* 0: never sent successfully */
    uint64_t sealed_us; /* monotonic, for the latency histogram */
} pending_t;

struct tally_client {
    pthread_mutex_t mu;
    pthread_cond_t acked; /* signalled when pending shrinks */
    pthread_t thread;
    int stop;
    tally_client_options_t o;
    char producer[TALLY_MAX_PRODUCER_LEN + 1];
    int has_cred;       /* protocol v2: batches carry a MAC, acks must verify */
    tally__cred_t cred; /* name and MAC key; the secret itself is not kept */
    char topic[TALLY__ACK_TOPIC_LEN + 1]; /* v2 ack topic: a keyed hash of the producer */
    int push, sub;
    char endpoint[256], ack_endpoint[256];
    int64_t last_ack_ms; /* last ack for us, or the last rebuild */
    /* the open batch */
    msgpack_sbuffer events;
    uint32_t open_n;
    int64_t open_since_ms;
    /* sealed batches waiting for their ack, oldest first (circular) */
    pending_t *q;
    uint32_t qhead, qcount;
    uint64_t qbytes;
    uint64_t next_seq;
    tally_client_stats_t st;
    msgpack_sbuffer scratch;
    uint64_t lat[LAT_BUCKETS];
    uint64_t nlat;
};

static uint64_t
mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static unsigned
lat_bucket(uint64_t us)
{
    if (us < LAT_SUB)
        return (unsigned)us;
    unsigned log2 = 63u - (unsigned)__builtin_clzll(us); /* >= 4 */
    unsigned sub = (unsigned)((us >> (log2 - 4)) & (LAT_SUB - 1));
    unsigned b = (log2 - 3) * LAT_SUB + sub;
    return b < LAT_BUCKETS ? b : LAT_BUCKETS - 1;
}

static uint64_t
lat_upper(unsigned b)
{
    if (b < LAT_SUB)
        return b;
    unsigned log2 = b / LAT_SUB + 3, sub = b % LAT_SUB;
    return ((uint64_t)(LAT_SUB + sub + 1) << (log2 - 4)) - 1;
}

static int
derive_ack_endpoint(const char *ep, char *out, size_t cap)
{
    if (strncmp(ep, "ipc://", 6) == 0) {
        if ((size_t)snprintf(out, cap, "%s.acks", ep) >= cap)
            return TALLY_EINVAL;
        return 0;
    }
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *colon = strrchr(ep, ':');
        char *end;
        if (!colon || colon < ep + 6)
            return TALLY_EINVAL;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port >= 65535)
            return TALLY_EINVAL;
        if ((size_t)snprintf(out, cap, "%.*s:%ld", (int)(colon - ep), ep, port + 1) >= cap)
            return TALLY_EINVAL;
        return 0;
    }
    return TALLY_EINVAL;
}

static pending_t *
q_at(tally_client_t *c, uint32_t i)
{
    return &c->q[(c->qhead + i) % c->o.max_unacked];
}

static void
try_send(tally_client_t *c, pending_t *p, int64_t now)
{
    if (nn_send(c->push, p->data, p->len, NN_DONTWAIT) >= 0) {
        if (p->sent_ms)
            c->st.resends++;
        p->sent_ms = now;
        c->st.sends++;
    }
}

/* Seal the open batch into the queue and try to send it. Caller holds mu
 * and has checked there is room. */
static int
seal(tally_client_t *c)
{
    if (c->open_n == 0)
        return 0;
    uint64_t seq = c->next_seq;
    uint64_t base = c->qcount ? q_at(c, 0)->seq : seq;
    c->scratch.size = 0;
    int rc = tally__encode_batch_v2(&c->scratch, c->has_cred ? &c->cred : NULL, c->producer, seq,
                                    base, c->open_n, c->events.data, c->events.size);
    if (rc)
        return rc;
    if (c->scratch.size == 0) /* cannot happen: a batch always has a header */
        return -EINVAL;
    char *data = malloc(c->scratch.size);
    if (!data)
        return -ENOMEM;
    memcpy(data, c->scratch.data, c->scratch.size);
    pending_t *p = q_at(c, c->qcount);
    p->seq = seq;
    p->data = data;
    p->len = c->scratch.size;
    p->sent_ms = 0;
    p->sealed_us = mono_us();
    c->qcount++;
    c->qbytes += p->len;
    c->next_seq++;
    c->st.batches++;
    c->events.size = 0;
    c->open_n = 0;
    try_send(c, p, tally__time_mono_ms());
    return 0;
}

static void
release_upto(tally_client_t *c, uint64_t hwm)
{
    int released = 0;
    uint64_t now = c->qcount ? mono_us() : 0;
    while (c->qcount && q_at(c, 0)->seq <= hwm) {
        pending_t *p = q_at(c, 0);
        c->lat[lat_bucket(now - p->sealed_us)]++;
        c->nlat++;
        c->qbytes -= p->len;
        free(p->data);
        p->data = NULL;
        c->qhead = (c->qhead + 1) % c->o.max_unacked;
        c->qcount--;
        c->st.acked_batches++;
        released = 1;
    }
    if (hwm > c->st.acked_seq)
        c->st.acked_seq = hwm;
    if (released)
        pthread_cond_broadcast(&c->acked);
}

/* Create and connect both sockets into c->push / c->sub. */
static int
open_sockets(tally_client_t *c)
{
    int push = nn_socket(AF_SP, NN_PUSH), sub = nn_socket(AF_SP, NN_SUB);
    if (push < 0 || sub < 0) {
        int rc = -nn_errno();
        if (push >= 0)
            nn_close(push);
        if (sub >= 0)
            nn_close(sub);
        return rc;
    }
    int ivl = 100, ivl_max = 1000, sndbuf = 1 << 20;
    nn_setsockopt(push, NN_SOL_SOCKET, NN_RECONNECT_IVL, &ivl, sizeof ivl);
    nn_setsockopt(push, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    nn_setsockopt(push, NN_SOL_SOCKET, NN_SNDBUF, &sndbuf, sizeof sndbuf);
    nn_setsockopt(sub, NN_SOL_SOCKET, NN_RECONNECT_IVL, &ivl, sizeof ivl);
    nn_setsockopt(sub, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    /* topic: "producer\0" (v1) or "keyed hash\0" (v2), so a shared ack
     * socket delivers only our acks */
    const char *topic = c->has_cred ? c->topic : c->producer;
    if (nn_setsockopt(sub, NN_SUB, NN_SUB_SUBSCRIBE, topic, strlen(topic) + 1) < 0 ||
        nn_connect(push, c->endpoint) < 0 || nn_connect(sub, c->ack_endpoint) < 0) {
        int rc = -nn_errno();
        nn_close(push);
        nn_close(sub);
        return rc;
    }
    c->push = push;
    c->sub = sub;
    return 0;
}

/* No ack for a long time although batches wait: rebuild the sockets and
 * send everything again (the daemon de-duplicates). Caller holds mu. */
static void
maybe_rebuild(tally_client_t *c, int64_t now, struct nn_pollfd *pfd)
{
    if (c->qcount == 0) {
        c->last_ack_ms = now;
        return;
    }
    if (now - c->last_ack_ms < (int64_t)c->o.ack_timeout_ms * REBUILD_AFTER_TIMEOUTS)
        return;
    int old_push = c->push, old_sub = c->sub;
    if (open_sockets(c) != 0) {
        c->last_ack_ms = now; /* try again after another period */
        return;
    }
    nn_close(old_push);
    nn_close(old_sub);
    pfd->fd = c->sub;
    c->st.rebuilds++;
    c->last_ack_ms = now;
    for (uint32_t i = 0; i < c->qcount; i++)
        q_at(c, i)->sent_ms = 0;
}

static void *
bg_main(void *arg)
{
    tally_client_t *c = arg;
    struct nn_pollfd pfd = {.fd = c->sub, .events = NN_POLLIN};
    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        pthread_mutex_unlock(&c->mu);
        int n = nn_poll(&pfd, 1, TICK_MS);
        pthread_mutex_lock(&c->mu);
        if (n > 0) {
            void *msg;
            int len;
            while ((len = nn_recv(c->sub, &msg, NN_MSG, NN_DONTWAIT)) >= 0) {
                tally__wire_ack_t ack;
                /* with a credential, an ack that does not verify is ignored:
                 * a forged one must not release batches the daemon lacks */
                int ok = c->has_cred
                             ? tally__decode_ack_v2(msg, (size_t)len, c->cred.key, c->topic,
                                                    &ack) == 0
                             : tally__decode_ack(msg, (size_t)len, &ack) == 0 &&
                                   ack.producer.len == strlen(c->producer) &&
                                   memcmp(ack.producer.p, c->producer, ack.producer.len) == 0;
                if (!ok && c->has_cred)
                    c->st.bad_acks++;
                if (ok) {
                    release_upto(c, ack.hwm);
                    c->last_ack_ms = tally__time_mono_ms();
                }
                nn_freemsg(msg);
            }
        }
        int64_t now = tally__time_mono_ms();
        if (c->open_n && now - c->open_since_ms >= (int64_t)c->o.batch_delay_ms &&
            c->qcount < c->o.max_unacked)
            seal(c);
        maybe_rebuild(c, now, &pfd);
        for (uint32_t i = 0; i < c->qcount; i++) {
            pending_t *p = q_at(c, i);
            if (p->sent_ms == 0 || now - p->sent_ms >= (int64_t)c->o.ack_timeout_ms)
                try_send(c, p, now);
        }
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int
tally_client_create(const char *endpoint, const char *producer_id,
                    const tally_client_options_t *options, tally_client_t **out)
{
    char ack_ep[256];
    int rc;
    if (!endpoint || !producer_id || !out ||
        !tally__valid_producer(producer_id, strlen(producer_id)))
        return TALLY_EINVAL;
    tally_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (options)
        c->o = *options;
    if (!c->o.batch_events)
        c->o.batch_events = 100;
    if (c->o.batch_events > TALLY_MAX_BATCH_EVENTS)
        c->o.batch_events = TALLY_MAX_BATCH_EVENTS;
    if (!c->o.batch_bytes)
        c->o.batch_bytes = 64 * 1024;
    if (!c->o.batch_delay_ms)
        c->o.batch_delay_ms = 20;
    if (!c->o.max_unacked)
        c->o.max_unacked = 1024;
    if (c->o.max_unacked > TALLY_DEDUP_WINDOW)
        c->o.max_unacked = TALLY_DEDUP_WINDOW;
    if (!c->o.max_unacked_bytes)
        c->o.max_unacked_bytes = 64u << 20;
    if (!c->o.ack_timeout_ms)
        c->o.ack_timeout_ms = 1000;
    c->next_seq = c->o.first_seq ? c->o.first_seq : (uint64_t)tally__time_now_ms() * 1000;
    c->o.ack_endpoint = NULL; /* not kept: the caller's string */
    snprintf(c->producer, sizeof c->producer, "%s", producer_id);
    if (options && options->credential) {
        if (tally__cred_parse(options->credential, strlen(options->credential), &c->cred) != 0) {
            free(c);
            return TALLY_EINVAL;
        }
        c->has_cred = 1;
        tally__ack_topic(c->cred.key, c->producer, strlen(c->producer), c->topic);
    }
    c->o.credential = NULL; /* not kept either: only its name and derived key are */
    c->push = c->sub = -1;
    if (options && options->ack_endpoint) {
        if ((size_t)snprintf(ack_ep, sizeof ack_ep, "%s", options->ack_endpoint) >= sizeof ack_ep) {
            free(c);
            return TALLY_EINVAL;
        }
    } else if ((rc = derive_ack_endpoint(endpoint, ack_ep, sizeof ack_ep)) != 0) {
        free(c);
        return rc;
    }
    c->q = calloc(c->o.max_unacked, sizeof *c->q);
    if (!c->q) {
        free(c);
        return -ENOMEM;
    }
    msgpack_sbuffer_init(&c->events);
    msgpack_sbuffer_init(&c->scratch);
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* flush timeouts ignore wall-clock jumps */
    pthread_cond_init(&c->acked, &ca);
    pthread_condattr_destroy(&ca);
    if (strlen(endpoint) >= sizeof c->endpoint) {
        rc = TALLY_EINVAL;
        goto fail;
    }
    snprintf(c->endpoint, sizeof c->endpoint, "%s", endpoint);
    snprintf(c->ack_endpoint, sizeof c->ack_endpoint, "%s", ack_ep);
    c->last_ack_ms = tally__time_mono_ms();
    if ((rc = open_sockets(c)) != 0)
        goto fail;
    if ((rc = pthread_create(&c->thread, NULL, bg_main, c)) != 0) {
        rc = -rc;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (c->push >= 0)
        nn_close(c->push);
    if (c->sub >= 0)
        nn_close(c->sub);
    pthread_cond_destroy(&c->acked);
    pthread_mutex_destroy(&c->mu);
    msgpack_sbuffer_destroy(&c->events);
    msgpack_sbuffer_destroy(&c->scratch);
    free(c->q);
    free(c);
    return rc;
}

int
tally_emit(tally_client_t *c, const tally_event_t *ev)
{
    int rc = tally__event_validate(ev, NULL);
    if (rc)
        return rc;
    int64_t ts = ev->ts_ms ? ev->ts_ms : tally__time_now_ms();
    pthread_mutex_lock(&c->mu);
    if (c->stop) {
        rc = TALLY_ECLOSED;
        goto out;
    }
    /* room for the open batch to be sealed, whatever this event does */
    if (c->qcount >= c->o.max_unacked || c->qbytes >= c->o.max_unacked_bytes) {
        rc = TALLY_EFULL;
        goto out;
    }
    size_t before = c->events.size;
    if ((rc = tally__encode_event(&c->events, ev, ts)) != 0) {
        c->events.size = before;
        goto out;
    }
    if (c->open_n++ == 0)
        c->open_since_ms = tally__time_mono_ms();
    c->st.events++;
    if (c->open_n >= c->o.batch_events || c->events.size >= c->o.batch_bytes)
        rc = seal(c);
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int
tally_emit_int(tally_client_t *c, const char *ns, const char *metric, int64_t value)
{
    tally_event_t ev = {.ns = ns, .metric = metric, .ivalue = value};
    return tally_emit(c, &ev);
}

int
tally_flush(tally_client_t *c, int timeout_ms)
{
    int rc = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&c->mu);
    if (c->open_n) {
        if (c->qcount >= c->o.max_unacked) {
            /* wait for room to seal the open batch */
            while (c->qcount >= c->o.max_unacked && timeout_ms > 0 &&
                   pthread_cond_timedwait(&c->acked, &c->mu, &deadline) == 0)
                ;
        }
        if (c->qcount < c->o.max_unacked)
            rc = seal(c);
    }
    while (rc == 0 && (c->qcount || c->open_n)) {
        if (timeout_ms <= 0 || pthread_cond_timedwait(&c->acked, &c->mu, &deadline) == ETIMEDOUT) {
            rc = TALLY_ETIMEDOUT;
            break;
        }
        if (c->open_n && c->qcount < c->o.max_unacked)
            rc = seal(c);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void
tally_client_stats(tally_client_t *c, tally_client_stats_t *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->st;
    out->unacked = c->qcount;
    out->next_seq = c->next_seq;
    pthread_mutex_unlock(&c->mu);
}

uint64_t
tally_client_ack_latency_us(tally_client_t *c, double q)
{
    uint64_t res = 0;
    pthread_mutex_lock(&c->mu);
    if (c->nlat) {
        uint64_t want = (uint64_t)(q * (double)c->nlat), seen = 0;
        if (want >= c->nlat)
            want = c->nlat - 1;
        for (unsigned b = 0; b < LAT_BUCKETS; b++) {
            seen += c->lat[b];
            if (seen > want) {
                res = lat_upper(b);
                break;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return res;
}

void
tally_client_destroy(tally_client_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    nn_close(c->push);
    nn_close(c->sub);
    for (uint32_t i = 0; i < c->qcount; i++)
        free(q_at(c, i)->data);
    free(c->q);
    msgpack_sbuffer_destroy(&c->events);
    msgpack_sbuffer_destroy(&c->scratch);
    pthread_cond_destroy(&c->acked);
    pthread_mutex_destroy(&c->mu);
    sodium_memzero(&c->cred, sizeof c->cred);
    free(c);
}
