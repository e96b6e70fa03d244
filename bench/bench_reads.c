/* bench_reads.c — the helper of bench/bench_reads.sh and tests/e2e/test_usage_stream.sh: loads N
 * series straight into a store, reads usage_details over HTTP, and measures producers' ack latency.
 *
 *   tally-bench-reads load DIR N [MODE [NS]]
 *       write N series of namespace NS (default "bench"), metric "cpu" (one record each,
 *       in the previous hour, value 1 + i % 1000) into the store in DIR
 *       (created), before tallyd starts on it. MODE "fast" (default): labels
 *       {object=o<i>}; "slow": {deployment=d<i%7>, object=o<i/3>} (three
 *       series per object, under a label that sorts before "object").
 *   tally-bench-reads read PORT TOKEN PATH BODY
 *       POST BODY to PATH, read the whole answer (Content-Length or chunked)
 *       and print "status=S bytes=B items=I ms=T items_per_s=R".
 *   tally-bench-reads acks ENDPOINT SECONDS RATE
 *       one producer (credential from TALLY_KEY) emitting RATE events a
 *       second for SECONDS, then print "acks p50_us=.. p99_us=.. max_us=..".
 * Nothing here knows the expected figures: the scripts print and judge them.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- load ---------------------------------------------------------------- */

static int
load(const char *dir, long n, int slow, const char *ns)
{
    tally__store_t *s;
    int rc = tally__store_open(dir, 2ull << 30, 0, &s);
    if (rc) {
        fprintf(stderr, "load: cannot open store %s: %s\n", dir, tally_strerror(rc));
        return 1;
    }
    int64_t hour = tally__time_hour_start(time(NULL)) - 3600;
    int64_t month = tally__time_month_start(hour);
    const long B = 50000;
    tally__store_put_t *h = calloc((size_t)B, sizeof *h), *m = calloc((size_t)B, sizeof *m);
    tally__rollup_t *d = calloc((size_t)B, sizeof *d);
    char *keys = malloc((size_t)B * 128);
    if (!h || !m || !d || !keys)
        return 1;
    double t0 = now_s();
    for (long base = 0; base < n; base += B) {
        long k = n - base < B ? n - base : B;
        for (long j = 0; j < k; j++) {
            long i = base + j;
            char o[32], dep[16];
            tally_label_t lab[2];
            size_t nl = 0;
            if (slow) {
                snprintf(dep, sizeof dep, "d%ld", i % 7);
                snprintf(o, sizeof o, "o%07ld", i / 3);
                lab[nl++] = (tally_label_t){"deployment", dep};
            } else {
                snprintf(o, sizeof o, "o%07ld", i);
            }
            lab[nl++] = (tally_label_t){"object", o};
            char *key = keys + j * 128;
            size_t kl = tally__series_key(key, ns, strlen(ns), "cpu", 3, lab, nl);
            tally__rollup_init(&d[j]);
            tally__rollup_add(&d[j], 0, 1 + i % 1000, 0, hour * 1000);
            h[j] = (tally__store_put_t){.series = key, .series_len = (uint32_t)kl,
                                        .period_s = hour, .delta = &d[j],
                                        .month_plus1 = (uint32_t)j + 1};
            m[j] = (tally__store_put_t){.series = key, .series_len = (uint32_t)kl,
                                        .period_s = month, .delta = &d[j]};
        }
        for (;;) {
            rc = tally__store_commit(s, h, (size_t)k, m, (size_t)k, NULL, 0);
            if (rc != TALLY_EMAPFULL)
                break;
            uint64_t size, used;
            tally__store_map_info(s, &size, &used);
            if ((rc = tally__store_grow(s, size * 2)) != 0)
                break;
        }
        if (rc) {
            fprintf(stderr, "load: commit: %s\n", tally_strerror(rc));
            return 1;
        }
    }
    tally__store_close(s);
    fprintf(stderr, "load: %ld series (%s) in %.1f s\n", n, slow ? "slow" : "fast", now_s() - t0);
    free(h);
    free(m);
    free(d);
    free(keys);
    return 0;
}

/* ---- read ---------------------------------------------------------------- */

static int
read_usage(int port, const char *token, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("read: connect");
        return 1;
    }
    char req[4096];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: APIToken %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     path, token, strlen(body), body);
    double t0 = now_s();
    if (write(fd, req, (size_t)n) != n) {
        perror("read: write");
        return 1;
    }
    /* read everything (Connection: close), count item keys on the fly */
    static char buf[1 << 20];
    size_t total = 0, items = 0;
    const char pat[] = "\"object_name\"";
    size_t match = 0;
    char head[2048];
    size_t hl = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < r; i++) {
            if (hl < sizeof head - 1)
                head[hl++] = buf[i];
            if (buf[i] == pat[match]) {
                if (++match == sizeof pat - 1) {
                    items++;
                    match = 0;
                }
            } else {
                match = buf[i] == pat[0];
            }
        }
        total += (size_t)r;
    }
    double dt = now_s() - t0;
    close(fd);
    head[hl] = '\0';
    int status = 0;
    sscanf(head, "HTTP/1.1 %d", &status);
    printf("status=%d bytes=%zu items=%zu ms=%.0f items_per_s=%.0f\n", status, total, items,
           dt * 1000, dt > 0 ? (double)items / dt : 0);
    return status == 200 ? 0 : 1;
}

/* ---- acks ---------------------------------------------------------------- */

static int
acks(const char *endpoint, double seconds, long rate)
{
    tally_client_options_t o = {0};
    o.credential = getenv("TALLY_KEY");
    tally_client_t *c;
    char pid[64];
    snprintf(pid, sizeof pid, "bench-reads-%d", (int)getpid());
    int rc = tally_client_create(endpoint, pid, &o, &c);
    if (rc) {
        fprintf(stderr, "acks: %s\n", tally_strerror(rc));
        return 1;
    }
    double t0 = now_s(), gap = 1.0 / (double)rate;
    long sent = 0;
    while (now_s() - t0 < seconds) {
        double due = t0 + (double)sent * gap;
        double wait = due - now_s();
        if (wait > 0)
            usleep((useconds_t)(wait * 1e6));
        if (tally_emit_int(c, "acks", "cpu", 1) == 0)
            sent++;
        else
            usleep(1000);
    }
    tally_flush(c, 10000);
    printf("acks events=%ld p50_us=%llu p99_us=%llu max_us=%llu\n", sent,
           (unsigned long long)tally_client_ack_latency_us(c, 0.50),
           (unsigned long long)tally_client_ack_latency_us(c, 0.99),
           (unsigned long long)tally_client_ack_latency_us(c, 1.0));
    tally_client_destroy(c);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "load") == 0)
        return load(argv[2], atol(argv[3]), argc > 4 && strcmp(argv[4], "slow") == 0,
                    argc > 5 ? argv[5] : "bench");
    if (argc == 6 && strcmp(argv[1], "read") == 0)
        return read_usage(atoi(argv[2]), argv[3], argv[4], argv[5]);
    if (argc == 5 && strcmp(argv[1], "acks") == 0)
        return acks(argv[2], atof(argv[3]), atol(argv[4]));
    fprintf(stderr, "usage: tally-bench-reads load DIR N [fast|slow [NS]]\n"
                    "       tally-bench-reads read PORT TOKEN PATH BODY\n"
                    "       tally-bench-reads acks ENDPOINT SECONDS RATE\n");
    return 2;
}
