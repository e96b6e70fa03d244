/* test_client.c — libtally's client against a fake daemon: batching, resends, socket rebuild, acks,
 * bounded memory. */
#include <criterion/criterion.h>
#include <math.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/pubsub.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "tally/tally.h"

typedef struct fake {
    char dir[64];
    char ingest[128], acks[128];
    int pull, pub;
} fake_t;

static void
fake_start(fake_t *f)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/tally-client-XXXXXX");
    cr_assert_not_null(mkdtemp(f->dir));
    snprintf(f->ingest, sizeof f->ingest, "ipc://%s/in", f->dir);
    snprintf(f->acks, sizeof f->acks, "ipc://%s/in.acks", f->dir);
    f->pull = nn_socket(AF_SP, NN_PULL);
    f->pub = nn_socket(AF_SP, NN_PUB);
    cr_assert(f->pull >= 0 && f->pub >= 0);
    cr_assert(nn_bind(f->pull, f->ingest) >= 0);
    cr_assert(nn_bind(f->pub, f->acks) >= 0);
    int ms = 100;
    nn_setsockopt(f->pull, NN_SOL_SOCKET, NN_RCVTIMEO, &ms, sizeof ms);
}

static void
fake_stop(fake_t *f)
{
    nn_close(f->pull);
    nn_close(f->pub);
    char path[160];
    snprintf(path, sizeof path, "%s/in", f->dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/in.acks", f->dir);
    unlink(path);
    rmdir(f->dir);
}

/* Receive one batch (or return 0 on timeout); decoded seq/base/nevents out. */
static int
fake_recv(fake_t *f, tally__decoder_t *d, uint64_t *seq, uint64_t *base, uint32_t *nev)
{
    void *msg;
    int n = nn_recv(f->pull, &msg, NN_MSG, 0);
    if (n < 0)
        return 0;
    tally__wire_batch_t b;
    int reason;
    int rc = tally__decode_batch(d, msg, (size_t)n, &b, &reason);
    cr_assert_eq(rc, 0, "the client sent an invalid batch: %s", tally__reject_name(reason));
    *seq = b.seq;
    *base = b.base;
    *nev = b.nevents;
    nn_freemsg(msg);
    return 1;
}

static void
fake_ack(fake_t *f, const char *producer, uint64_t hwm)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_ack(&sb, producer, strlen(producer), hwm, hwm), 0);
    nn_send(f->pub, sb.data, sb.size, NN_DONTWAIT);
    msgpack_sbuffer_destroy(&sb);
}

Test(client, batches_carry_increasing_sequences_and_the_oldest_held_base)
{
    fake_t f;
    tally__decoder_t d;
    fake_start(&f);
    tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS);
    /* no resend may come between the three batches, however slow the machine */
    tally_client_options_t o = {.batch_events = 2, .first_seq = 100, .ack_timeout_ms = 600000};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "p-1", &o, &c), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(tally_emit_int(c, "demo", "http_requests", i), 0);
    uint64_t seq, base;
    uint32_t nev;
    /* A batch whose send found no connection yet goes out after later
     * ones (the dedup window takes them in any order): compare as a set. */
    int got[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        cr_assert(fake_recv(&f, &d, &seq, &base, &nev), "batch %d of 3 not sent", i + 1);
        cr_assert(seq >= 100 && seq < 103, "got batch %llu, want 100..102",
                  (unsigned long long)seq);
        got[seq - 100]++;
        cr_expect_eq(base, 100, "nothing acked yet: the oldest held is 100");
        cr_expect_eq(nev, 2);
    }
    cr_expect(got[0] == 1 && got[1] == 1 && got[2] == 1, "each of 100, 101, 102 once");
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    cr_expect_eq(st.events, 6);
    cr_expect_eq(st.batches, 3);
    cr_expect_eq(st.unacked, 3);
    tally_client_destroy(c);
    tally__decoder_fini(&d);
    fake_stop(&f);
}

Test(client, resends_after_the_timeout_and_rebuilds_sockets_without_acks)
{
    fake_t f;
    tally__decoder_t d;
    fake_start(&f);
    tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS);
    tally_client_options_t o = {.batch_events = 1, .ack_timeout_ms = 40};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "p-2", &o, &c), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "http_requests", 5), 0);
    uint64_t seq, base, first = 0;
    uint32_t nev;
    int copies = 0;
    for (int i = 0; i < 12; i++) /* about 1.2 s of listening */
        if (fake_recv(&f, &d, &seq, &base, &nev)) {
            if (!first)
                first = seq;
            cr_assert_eq(seq, first, "the same batch, sent again");
            copies++;
        }
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    cr_expect_geq(copies, 3, "resent every 40 ms, got %d copies", copies);
    cr_expect_geq(st.resends, 2);
    cr_expect_geq(st.rebuilds, 1, "10 timeouts without an ack rebuild the sockets");
    /* now the daemon acks: the batch is released and flush succeeds */
    int rc = TALLY_ETIMEDOUT;
    for (int i = 0; i < 40 && rc != 0; i++) {
        fake_ack(&f, "p-2", first);
        rc = tally_flush(c, 50);
    }
    cr_assert_eq(rc, 0, "acked after the rebuild");
    tally_client_stats(c, &st);
    cr_expect_eq(st.unacked, 0);
    cr_expect_eq(st.acked_seq, first);
    cr_expect_gt(tally_client_ack_latency_us(c, 0.5), 0);
    tally_client_destroy(c);
    tally__decoder_fini(&d);
    fake_stop(&f);
}

Test(client, acks_for_other_producers_release_nothing)
{
    fake_t f;
    tally__decoder_t d;
    fake_start(&f);
    tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS);
    tally_client_options_t o = {.batch_events = 1, .first_seq = 7};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "p-3", &o, &c), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "m", 1), 0);
    uint64_t seq, base;
    uint32_t nev;
    cr_assert(fake_recv(&f, &d, &seq, &base, &nev));
    for (int i = 0; i < 5; i++) {
        fake_ack(&f, "p-33", 1000); /* a longer id sharing the prefix */
        fake_ack(&f, "p", 1000);
        usleep(20000);
    }
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    cr_assert_eq(st.unacked, 1, "someone else's ack released our batch");
    tally_client_destroy(c);
    tally__decoder_fini(&d);
    fake_stop(&f);
}

Test(client, full_when_max_unacked_batches_wait)
{
    fake_t f;
    fake_start(&f);
    tally_client_options_t o = {.batch_events = 1, .max_unacked = 2};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "p-4", &o, &c), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "m", 1), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "m", 1), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "m", 1), TALLY_EFULL, "bounded: the caller sees it");
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    cr_expect_eq(st.events, 2, "nothing queued by the refused emit");
    cr_expect_eq(tally_flush(c, 100), TALLY_ETIMEDOUT);
    tally_client_destroy(c);
    fake_stop(&f);
}

Test(client, rejects_bad_arguments_and_events)
{
    tally_client_t *c;
    cr_expect_eq(tally_client_create("ipc:///tmp/x", "has space", NULL, &c), TALLY_EINVAL);
    cr_expect_eq(tally_client_create("inproc://x", "p", NULL, &c), TALLY_EINVAL,
                 "no derivable ack endpoint");
    cr_assert_eq(tally_client_create("tcp://127.0.0.1:1", "p-5", NULL, &c), 0);
    cr_expect_eq(tally_emit_int(c, "Bad_NS", "m", 1), TALLY_EINVAL);
    tally_event_t nan_ev = {.ns = "demo", .metric = "m", .is_float = 1, .fvalue = NAN};
    cr_expect_eq(tally_emit(c, &nan_ev), TALLY_EINVAL);
    tally_client_destroy(c);
}
