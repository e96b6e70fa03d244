/* persist_emitter.c — a producer that survives its own kill -9: persisted sequence numbers and a durable outbox. */
/*
 * usage: persist_emitter --state FILE --endpoint EP --producer ID --ns NS
 *                        --metric M --events K [--batch N] [--value V]
 *                        [--hours H] [--chunk-delay-ms D] [--timeout S]
 *
 * libtally persists nothing: its unacked batches live in memory and a
 * restarted client starts a fresh sequence (the wall clock in microseconds
 * unless tally_client_options_t.first_seq says otherwise). A producer that
 * must lose nothing and count nothing twice across its OWN crash therefore
 * keeps two things on disk, which is what this program does in FILE:
 *
 *   - the outbox: the events not yet acknowledged. Here the outbox is
 *     "events [acked_chunks * N, K) of a deterministic stream" — event i has
 *     value V and time ts_base - (i % H) hours, and ts_base, K, N, V, H are
 *     fixed in FILE when it is created — so resending chunk j always
 *     produces the same events. A real producer would write its payloads.
 *   - the sequence numbers: chunk j (N events, exactly one libtally batch:
 *     batch_events = N, batch_delay_ms = 1 h, so nothing else seals) always
 *     travels with sequence seq_base + j. seq_base is chosen (wall clock in
 *     microseconds, like libtally's default) and persisted BEFORE the first
 *     batch goes out. On restart the client is created with first_seq =
 *     seq_base + acked_chunks and resends the outbox under the SAME numbers,
 *     so whatever the daemon had already committed (but this process never
 *     saw acked, or never recorded) is classified duplicate and dropped.
 *   - write-ahead reservation: before a sequence s is used, FILE must
 *     already hold reserved > s (the program persists seq + 64 at a time).
 *     `reserved` is the bound a producer would start ABOVE if it ever
 *     abandoned its outbox (new content must never reuse a sequence: the
 *     daemon would silently drop it as a duplicate).
 *
 * FILE is rewritten atomically (write tmp, fsync, rename, fsync dir).
 * acked_chunks only grows from the daemon's committed high-water mark
 * (tally_client_stats().acked_seq), so it is never ahead of the truth; being
 * behind only costs resends that the daemon drops.
 *
 * Exit 0 when every event is acknowledged (prints one JSON line), 1 on
 * failure or timeout, 2 for bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tally/tally.h"

#define RESERVE_BLOCK 64

typedef struct state {
    uint64_t seq_base, reserved, acked_chunks;
    int64_t ts_base;
    long long events, batch, value, hours;
} state_t;

static const char *state_path;

static int64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
state_load(state_t *s)
{
    FILE *f = fopen(state_path, "r");
    if (!f)
        return errno == ENOENT ? 1 : -1;
    char key[64];
    unsigned long long v;
    int n = 0;
    while (fscanf(f, "%63s %llu", key, &v) == 2) {
        n++;
        if (!strcmp(key, "seq_base"))
            s->seq_base = v;
        else if (!strcmp(key, "reserved"))
            s->reserved = v;
        else if (!strcmp(key, "acked_chunks"))
            s->acked_chunks = v;
        else if (!strcmp(key, "ts_base"))
            s->ts_base = (int64_t)v;
        else if (!strcmp(key, "events"))
            s->events = (long long)v;
        else if (!strcmp(key, "batch"))
            s->batch = (long long)v;
        else if (!strcmp(key, "value"))
            s->value = (long long)v;
        else if (!strcmp(key, "hours"))
            s->hours = (long long)v;
        else
            n = -1000;
    }
    fclose(f);
    return n == 8 ? 0 : -1;
}

static int
state_save(const state_t *s)
{
    char tmp[4096], dirbuf[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", state_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f,
            "seq_base %" PRIu64 "\nreserved %" PRIu64 "\nacked_chunks %" PRIu64
            "\nts_base %" PRId64 "\nevents %lld\nbatch %lld\nvalue %lld\nhours %lld\n",
            s->seq_base, s->reserved, s->acked_chunks, s->ts_base, s->events, s->batch,
            s->value, s->hours);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fclose(f);
        return -1;
    }
    fclose(f);
    if (rename(tmp, state_path) != 0)
        return -1;
    snprintf(dirbuf, sizeof dirbuf, "%s", state_path);
    int dfd = open(dirname(dirbuf), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Raise acked_chunks from the daemon's committed high-water mark. */
static int
record_acks(tally_client_t *c, state_t *s, uint64_t nchunks)
{
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    if (st.acked_seq < s->seq_base)
        return 0;
    uint64_t done = st.acked_seq - s->seq_base + 1;
    if (done > nchunks)
        done = nchunks;
    if (done <= s->acked_chunks)
        return 0;
    s->acked_chunks = done;
    return state_save(s);
}

int
main(int argc, char **argv)
{
    const char *endpoint = NULL, *producer = NULL, *ns = NULL, *metric = NULL;
    long long events = 0, batch = 50, value = 1, hours = 3, chunk_delay_ms = 0, timeout_s = 60;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            goto usage;
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--state"))
            state_path = v;
        else if (!strcmp(k, "--endpoint"))
            endpoint = v;
        else if (!strcmp(k, "--producer"))
            producer = v;
        else if (!strcmp(k, "--ns"))
            ns = v;
        else if (!strcmp(k, "--metric"))
            metric = v;
        else if (!strcmp(k, "--events"))
            events = atoll(v);
        else if (!strcmp(k, "--batch"))
            batch = atoll(v);
        else if (!strcmp(k, "--value"))
            value = atoll(v);
        else if (!strcmp(k, "--hours"))
            hours = atoll(v);
        else if (!strcmp(k, "--chunk-delay-ms"))
            chunk_delay_ms = atoll(v);
        else if (!strcmp(k, "--timeout"))
            timeout_s = atoll(v);
        else
            goto usage;
    }
    if (!state_path || !endpoint || !producer || !ns || !metric || events < 1 || batch < 1 ||
        batch > TALLY_MAX_BATCH_EVENTS || hours < 1 || timeout_s < 1)
        goto usage;

    state_t s = {0};
    int lr = state_load(&s);
    int restarted = 0;
    if (lr < 0) {
        fprintf(stderr, "persist_emitter: unreadable state file %s\n", state_path);
        return 1;
    }
    if (lr == 1) {
        /* a new outbox: fix its content and its sequence numbers first */
        s.seq_base = (uint64_t)wall_ms() * 1000;
        s.reserved = s.seq_base; /* nothing used yet */
        s.ts_base = wall_ms() - 600000;
        s.events = events;
        s.batch = batch;
        s.value = value;
        s.hours = hours;
        if (state_save(&s) != 0) {
            perror("persist_emitter: state");
            return 1;
        }
    } else {
        restarted = 1;
        if (s.events != events || s.batch != batch || s.value != value || s.hours != hours) {
            fprintf(stderr, "persist_emitter: %s describes another outbox\n", state_path);
            return 2;
        }
    }
    uint64_t nchunks = (uint64_t)((events + batch - 1) / batch);
    uint64_t start_chunk = s.acked_chunks;
    tally_client_options_t o = {.batch_events = (uint32_t)batch,
                                .batch_bytes = 1u << 30,
                                .batch_delay_ms = 3600000,
                                .max_unacked = 256,
                                .first_seq = s.seq_base + s.acked_chunks,
                                .credential = getenv("TALLY_KEY")};
    tally_client_t *c;
    int rc = tally_client_create(endpoint, producer, &o, &c);
    if (rc) {
        fprintf(stderr, "persist_emitter: %s: %s\n", endpoint, tally_strerror(rc));
        return 1;
    }
    double deadline = mono_s() + (double)timeout_s, last_rec = 0;
    tally_event_t ev = {.ns = ns, .metric = metric, .ivalue = value};
    int failed = 0;
    for (uint64_t j = s.acked_chunks; j < nchunks && !failed; j++) {
        uint64_t seq = s.seq_base + j;
        if (s.reserved <= seq) { /* write-ahead: reserve before use */
            s.reserved = seq + RESERVE_BLOCK;
            if (state_save(&s) != 0) {
                perror("persist_emitter: state");
                failed = 1;
                break;
            }
        }
        long long first = (long long)j * batch, end = first + batch;
        if (end > events)
            end = events;
        for (long long i = first; i < end; i++) {
            ev.ts_ms = s.ts_base - (i % hours) * 3600000;
            while ((rc = tally_emit(c, &ev)) == TALLY_EFULL) {
                if (mono_s() > deadline)
                    break;
                usleep(1000);
                record_acks(c, &s, nchunks);
            }
            if (rc) {
                fprintf(stderr, "persist_emitter: emit: %s\n", tally_strerror(rc));
                failed = 1;
                break;
            }
        }
        if (failed)
            break;
        /* a short last chunk: seal it (it is still exactly one batch) */
        tally_client_stats_t st;
        tally_client_stats(c, &st);
        while (st.next_seq == seq && mono_s() < deadline) {
            tally_flush(c, 10);
            tally_client_stats(c, &st);
        }
        if (st.next_seq != seq + 1) {
            fprintf(stderr,
                    "persist_emitter: chunk %" PRIu64 " did not map to sequence %" PRIu64
                    " (next_seq %" PRIu64 ")\n",
                    j, seq, st.next_seq);
            failed = 1;
            break;
        }
        if (mono_s() - last_rec > 0.02) {
            record_acks(c, &s, nchunks);
            last_rec = mono_s();
        }
        if (chunk_delay_ms > 0)
            usleep((useconds_t)chunk_delay_ms * 1000);
    }
    double left = deadline - mono_s();
    if (!failed)
        rc = tally_flush(c, left > 0 ? (int)(left * 1000) : 0);
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    tally_client_destroy(c);
    int ok = !failed && rc == 0;
    if (ok) {
        s.acked_chunks = nchunks;
        if (state_save(&s) != 0)
            ok = 0;
    }
    printf("{\"producer\":\"%s\",\"restarted\":%s,\"start_chunk\":%" PRIu64 ",\"chunks\":%" PRIu64
           ",\"acked\":%s,\"batches\":%" PRIu64 ",\"resends\":%" PRIu64 ",\"acked_seq\":%" PRIu64
           ",\"seq_base\":%" PRIu64 "}\n",
           producer, restarted ? "true" : "false", start_chunk, nchunks, ok ? "true" : "false",
           st.batches, st.resends, st.acked_seq, s.seq_base);
    return ok ? 0 : 1;
usage:
    fprintf(stderr, "usage: persist_emitter --state FILE --endpoint EP --producer ID --ns NS "
                    "--metric M --events K [--batch N] [--value V] [--hours H] "
                    "[--chunk-delay-ms D] [--timeout S]\n");
    return 2;
}
