/* test_client.c — libtally's client against a fake daemon: batching, resends, socket rebuild, acks,
 * bounded memory, protocol v2 credentials and signed acks. */
#include <criterion/criterion.h>
#include <math.h>
#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/pubsub.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "credential.h"
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

/* ---- protocol v2: credentials and signed acks ------------------------------------------------ */

/* The development emitter of config/tokens (its credential is documented in
 * the file's comments; tests/support/harness.h has it as HARNESS_EMITTER_KEY). */
#define DEV_CRED "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"

/* The mac: key of emitter `name` as config/tokens holds it: the verifier's
 * side, read from the file rather than derived here. */
static void
tokens_file_key(const char *name, uint8_t key[TALLY__CRED_KEY_LEN])
{
    char path[1024], line[1024];
    const char *src = getenv("TALLY_SOURCE_DIR");
    if (src && *src) {
        snprintf(path, sizeof path, "%s/config/tokens", src);
    } else {
        snprintf(path, sizeof path, "%s", __FILE__);
        char *p = strstr(path, "/tests/unit/");
        cr_assert_not_null(p, "set TALLY_SOURCE_DIR");
        snprintf(p, sizeof path - (size_t)(p - path), "/config/tokens");
    }
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "cannot open %s", path);
    int found = 0;
    while (!found && fgets(line, sizeof line, fp)) {
        char n[80], role[32], ns[256], secret[256];
        if (line[0] == '#' || sscanf(line, "%79s %31s %255s %255s", n, role, ns, secret) != 4)
            continue;
        if (strcmp(n, name) != 0 || strcmp(role, "emitter") != 0 ||
            strncmp(secret, "mac:", 4) != 0)
            continue;
        size_t bin = 0;
        cr_assert_eq(sodium_hex2bin(key, TALLY__CRED_KEY_LEN, secret + 4, strlen(secret + 4), NULL,
                                    &bin, NULL),
                     0);
        cr_assert_eq(bin, TALLY__CRED_KEY_LEN);
        found = 1;
    }
    fclose(fp);
    cr_assert(found, "no emitter line for %s in %s", name, path);
}

/* Receive one v2 batch: it must name `cred`, verify under key, and decode
 * without its tag. 0 on timeout. */
static int
fake_recv_v2(fake_t *f, tally__decoder_t *d, const char *cred, const uint8_t *key, uint64_t *seq,
             uint32_t *nev)
{
    void *msg;
    int n = nn_recv(f->pull, &msg, NN_MSG, 0);
    if (n < 0)
        return 0;
    uint32_t version = 0;
    tally__str_t name;
    int reason = -1;
    cr_assert_eq(tally__peek_batch(msg, (size_t)n, &version, &name, &reason), 0, "peek: %s",
                 tally__reject_name(reason));
    cr_assert_eq(version, 2, "a client with a credential sent version %u", version);
    cr_assert(name.len == strlen(cred) && memcmp(name.p, cred, name.len) == 0,
              "the batch names '%.*s', want '%s'", (int)name.len, name.p, cred);
    cr_assert_eq(tally__mac_check(key, msg, (size_t)n), 1,
                 "the batch's tag does not verify under the tokens file's key");
    tally__wire_batch_t b;
    cr_assert_eq(tally__decode_batch(d, msg, (size_t)n - TALLY__MAC_LEN, &b, &reason), 0,
                 "decode: %s", tally__reject_name(reason));
    cr_assert_eq(b.version, 2);
    *seq = b.seq;
    *nev = b.nevents;
    nn_freemsg(msg);
    return 1;
}

static void
fake_send(fake_t *f, const void *data, size_t len)
{
    nn_send(f->pub, data, len, NN_DONTWAIT);
}

Test(client, with_a_credential_sends_v2_batches_that_verify_under_the_tokens_file_key)
{
    fake_t f;
    tally__decoder_t d;
    uint8_t key[TALLY__CRED_KEY_LEN];
    tokens_file_key("dev-emitter", key);
    fake_start(&f);
    tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS);
    tally_client_options_t o = {
        .batch_events = 2, .first_seq = 500, .ack_timeout_ms = 600000, .credential = DEV_CRED};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "v2-1", &o, &c), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(tally_emit_int(c, "demo", "http_requests", i), 0);
    int got = 0;
    for (int i = 0; i < 2; i++) {
        uint64_t seq;
        uint32_t nev;
        cr_assert(fake_recv_v2(&f, &d, "dev-emitter", key, &seq, &nev), "batch %d of 2 not sent",
                  i + 1);
        cr_expect(seq == 500 || seq == 501, "seq %llu", (unsigned long long)seq);
        cr_expect_eq(nev, 2);
        got++;
    }
    cr_expect_eq(got, 2);
    tally_client_destroy(c);
    tally__decoder_fini(&d);
    fake_stop(&f);
}

Test(client, rejects_a_malformed_credential)
{
    tally_client_t *c;
    tally_client_options_t o = {.credential = "dev-emitter"};
    cr_expect_eq(tally_client_create("ipc:///tmp/x", "p", &o, &c), TALLY_EINVAL);
    o.credential = "dev-emitter:short";
    cr_expect_eq(tally_client_create("ipc:///tmp/x", "p", &o, &c), TALLY_EINVAL);
}

/* Publish msg until the client has counted `want` bad acks (a PUB socket
 * drops what it sends before the SUB is connected), at most ~3 s. */
static void
publish_until_bad_acks(fake_t *f, tally_client_t *c, const void *msg, size_t len, uint64_t want)
{
    tally_client_stats_t st;
    for (int i = 0; i < 150; i++) {
        fake_send(f, msg, len);
        usleep(20000);
        tally_client_stats(c, &st);
        if (st.bad_acks >= want)
            return;
    }
    cr_assert_fail("the client counted %llu bad acks, want %llu: the forged ack never arrived "
                   "on its topic (or was not counted)",
                   (unsigned long long)st.bad_acks, (unsigned long long)want);
}

Test(client, forged_acks_release_nothing_and_a_signed_ack_does)
{
    fake_t f;
    tally__decoder_t d;
    uint8_t key[TALLY__CRED_KEY_LEN], wrong[TALLY__CRED_KEY_LEN];
    tokens_file_key("dev-emitter", key);
    tokens_file_key("demo-emitter", wrong);
    fake_start(&f);
    tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS);
    tally_client_options_t o = {
        .batch_events = 1, .first_seq = 900, .ack_timeout_ms = 600000, .credential = DEV_CRED};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "victim", &o, &c), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "m", 1), 0);
    uint64_t seq;
    uint32_t nev;
    cr_assert(fake_recv_v2(&f, &d, "dev-emitter", key, &seq, &nev));
    cr_assert_eq(seq, 900);

    msgpack_sbuffer sb;
    /* 1. the right topic, the right map, a tag one bit off */
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_ack_v2(&sb, key, "victim", 6, 1000, 1000), 0);
    sb.data[sb.size - 1] ^= 1;
    publish_until_bad_acks(&f, c, sb.data, sb.size, 1);
    msgpack_sbuffer_destroy(&sb);
    /* 2. the right topic, signed with another emitter's key */
    char topic[TALLY__ACK_TOPIC_LEN + 1];
    tally__ack_topic(key, "victim", 6, topic);
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_ack_v2(&sb, wrong, "victim", 6, 1000, 1000), 0);
    memcpy(sb.data, topic, sizeof topic);
    publish_until_bad_acks(&f, c, sb.data, sb.size, 2);
    msgpack_sbuffer_destroy(&sb);
    /* 3. a v1 ack map behind the right topic */
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, topic, TALLY__ACK_TOPIC_LEN);
    cr_assert_eq(tally__encode_ack(&sb, "", 0, 1000, 1000), 0); /* its own "\0" + map */
    publish_until_bad_acks(&f, c, sb.data, sb.size, 3);
    msgpack_sbuffer_destroy(&sb);
    /* 4. a plain v1 ack naming the producer, as tallyd sent them before v2:
     * not on our topic, so it is not even delivered (not counted either) */
    for (int i = 0; i < 10; i++) {
        fake_ack(&f, "victim", 1000);
        usleep(20000);
    }
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    cr_expect_eq(st.unacked, 1, "a forged ack released the batch");
    cr_expect_lt(st.acked_seq, 900, "a forged ack moved acked_seq to %llu",
                 (unsigned long long)st.acked_seq);
    cr_expect_eq(tally_flush(c, 50), TALLY_ETIMEDOUT, "flush succeeded on forged acks");

    /* 5. the real thing: signed under the tokens file's key */
    msgpack_sbuffer_init(&sb);
    cr_assert_eq(tally__encode_ack_v2(&sb, key, "victim", 6, 900, 900), 0);
    int rc = TALLY_ETIMEDOUT;
    for (int i = 0; i < 60 && rc != 0; i++) {
        fake_send(&f, sb.data, sb.size);
        rc = tally_flush(c, 50);
    }
    msgpack_sbuffer_destroy(&sb);
    cr_assert_eq(rc, 0, "a correctly signed ack did not release the batch");
    tally_client_stats(c, &st);
    cr_expect_eq(st.unacked, 0);
    cr_expect_eq(st.acked_seq, 900);
    tally_client_destroy(c);
    tally__decoder_fini(&d);
    fake_stop(&f);
}

Test(client, a_signed_ack_for_another_producer_of_the_same_credential_releases_nothing)
{
    fake_t f;
    tally__decoder_t d;
    uint8_t key[TALLY__CRED_KEY_LEN];
    tokens_file_key("dev-emitter", key);
    fake_start(&f);
    tally__decoder_init(&d, TALLY_MAX_BATCH_EVENTS);
    tally_client_options_t o = {
        .batch_events = 1, .first_seq = 40, .ack_timeout_ms = 600000, .credential = DEV_CRED};
    tally_client_t *c;
    cr_assert_eq(tally_client_create(f.ingest, "p-a", &o, &c), 0);
    cr_assert_eq(tally_emit_int(c, "demo", "m", 1), 0);
    uint64_t seq;
    uint32_t nev;
    cr_assert(fake_recv_v2(&f, &d, "dev-emitter", key, &seq, &nev));
    /* authentic acks of producers p-b and p-a2 (another topic each) */
    msgpack_sbuffer b1, b2;
    msgpack_sbuffer_init(&b1);
    msgpack_sbuffer_init(&b2);
    cr_assert_eq(tally__encode_ack_v2(&b1, key, "p-b", 3, 1000, 1000), 0);
    cr_assert_eq(tally__encode_ack_v2(&b2, key, "p-a2", 4, 1000, 1000), 0);
    for (int i = 0; i < 15; i++) {
        fake_send(&f, b1.data, b1.size);
        fake_send(&f, b2.data, b2.size);
        usleep(20000);
    }
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    cr_expect_eq(st.unacked, 1, "another producer's ack released our batch");
    msgpack_sbuffer_destroy(&b1);
    msgpack_sbuffer_destroy(&b2);
    tally_client_destroy(c);
    tally__decoder_fini(&d);
    fake_stop(&f);
}
