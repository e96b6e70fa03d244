/* bench_jetstream.c — JetStream publish throughput for docs/cluster.md: how fast a
 * tallyd in cluster mode could put ingest batches on the log.
 *
 * Publishes messages the size of one 100-event ingest batch (--size bytes,
 * default 3072) to a file-storage stream with --replicas copies, each with
 * a message id built as tally's cluster mode would build it, from
 * (credential, producer, sequence), so JetStream's duplicate window works
 * as it would there. Publishes are asynchronous with at most --in-flight
 * unacknowledged (the producer's ack waits for the PubAck), for --seconds
 * or --messages, whichever ends first; then waits for the last PubAcks.
 * Prints messages/s, events/s (messages x --events-per-msg) and the PubAck
 * latency (p50, p99): the time from publish to the quorum's ack.
 *
 * bench/bench_jetstream.sh starts the servers (one, or a three-node
 * cluster on loopback) and runs this. Bounded: --seconds caps the run.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#define LAT_MAX (1u << 22) /* PubAck latencies kept for the percentiles */

static uint64_t
now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

/* Counters of the ack handler's thread; read after js_PublishAsyncComplete. */
static struct {
    uint64_t acked, errors, duplicates;
    uint32_t *lat; /* microseconds */
    size_t nlat;
    char first_error[256];
} g;

static void
on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    if (pae) {
        if (g.errors++ == 0)
            snprintf(g.first_error, sizeof g.first_error, "%s (%d)",
                     pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err),
                     (int)pae->ErrCode);
    } else {
        g.acked++;
        if (pa && pa->Duplicate)
            g.duplicates++;
        const char *d = natsMsg_GetData(msg);
        uint64_t sent;
        if (natsMsg_GetDataLength(msg) >= (int)sizeof sent && g.nlat < LAT_MAX) {
            memcpy(&sent, d, sizeof sent); /* the publish time travels in the payload */
            g.lat[g.nlat++] = (uint32_t)(now_us() - sent);
        }
    }
    natsMsg_Destroy(msg);
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void
usage(FILE *fp)
{
    fprintf(fp, "usage: tally-bench-jetstream --urls URLS [--replicas N] [--size BYTES]\n"
                "         [--events-per-msg N] [--seconds S] [--messages N] [--in-flight N]\n"
                "         [--stream NAME] [--json]\n"
                "  --urls      comma-separated nats:// URLs (loopback)\n"
                "  --replicas  stream replicas (default 1)\n"
                "  --size      bytes a message (default 3072: one 100-event batch)\n"
                "  --seconds   publish for at most S seconds (default 10, max 60)\n"
                "  --messages  stop after N messages (default 1000000)\n"
                "  --in-flight unacknowledged publishes at most (default 4096)\n");
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"urls", required_argument, NULL, 'u'},     {"replicas", required_argument, NULL, 'r'},
        {"size", required_argument, NULL, 's'},     {"events-per-msg", required_argument, NULL, 'e'},
        {"seconds", required_argument, NULL, 't'},  {"messages", required_argument, NULL, 'n'},
        {"in-flight", required_argument, NULL, 'i'}, {"stream", required_argument, NULL, 'S'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *urls = NULL, *stream = "BENCH";
    int replicas = 1, size = 3072, epm = 100, json = 0, opt;
    double seconds = 10;
    long long messages = 1000000, inflight = 4096;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'u': urls = optarg; break;
        case 'r': replicas = atoi(optarg); break;
        case 's': size = atoi(optarg); break;
        case 'e': epm = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 'n': messages = atoll(optarg); break;
        case 'i': inflight = atoll(optarg); break;
        case 'S': stream = optarg; break;
        case 'j': json = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!urls || replicas < 1 || replicas > 5 || size < 16 || seconds <= 0 || seconds > 60 ||
        messages < 1 || inflight < 1) {
        usage(stderr);
        return 2;
    }
    natsOptions *no = NULL;
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    jsOptions jo;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;
    char *buf = calloc(1, (size_t)size);
    g.lat = malloc(LAT_MAX * sizeof *g.lat);
    if (!buf || !g.lat)
        return 1;
    for (int i = 8; i < size; i++)
        buf[i] = (char)(i * 131 + 7); /* not all zeros: no compression flatters it */
    /* the servers one by one: the client then knows every one of them */
    const char *servers[8];
    int nservers = 0;
    char *list = strdup(urls), *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u && nservers < 8; u = strtok_r(NULL, ",", &save))
        servers[nservers++] = u;
    if ((s = natsOptions_Create(&no)) != NATS_OK ||
        (s = natsOptions_SetServers(no, servers, nservers)) != NATS_OK ||
        (s = natsConnection_Connect(&nc, no)) != NATS_OK) {
        fprintf(stderr, "bench_jetstream: cannot connect to %s: %s\n", urls, natsStatus_GetText(s));
        return 1;
    }
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = inflight;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.StallWait = 10000; /* a full window waits for acks, it is no error */
    jo.Wait = 10000;
    if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
        fprintf(stderr, "bench_jetstream: no JetStream context: %s\n", natsStatus_GetText(s));
        return 1;
    }
    /* a fresh stream each run; a new cluster elects its meta leader first */
    const char *subjects[] = {"tally.bench.>"};
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = replicas;
    sc.Duplicates = (int64_t)120 * 1000000000; /* 2 min, JetStream's default window */
    uint64_t t_wait = now_us();
    for (;;) {
        js_DeleteStream(js, stream, NULL, NULL);
        s = js_AddStream(&si, js, &sc, NULL, &jerr);
        if (s == NATS_OK)
            break;
        if (now_us() - t_wait > 20000000u) {
            fprintf(stderr, "bench_jetstream: cannot create stream %s (R%d): %s (%d) %s\n", stream,
                    replicas, natsStatus_GetText(s), (int)jerr, nats_GetLastError(NULL));
            return 1;
        }
        usleep(200000);
    }
    jsStreamInfo_Destroy(si);
    jsPubOptions po;
    char msgid[96], subj[64];
    uint64_t t0 = now_us(), limit = t0 + (uint64_t)(seconds * 1e6), sent = 0;
    for (long long i = 0; i < messages; i++) {
        if ((i & 255) == 0 && now_us() >= limit)
            break;
        jsPubOptions_Init(&po);
        /* (credential, producer, sequence): what tally's cluster mode dedups on */
        snprintf(msgid, sizeof msgid, "bench-cred/producer-%lld/%lld", i % 4, i / 4 + 1);
        snprintf(subj, sizeof subj, "tally.bench.ns%lld", i % 16);
        po.MsgId = msgid;
        uint64_t t = now_us();
        memcpy(buf, &t, sizeof t);
        if ((s = js_PublishAsync(js, subj, buf, size, &po)) != NATS_OK) {
            fprintf(stderr, "bench_jetstream: publish %lld: %s\n", i, natsStatus_GetText(s));
            break;
        }
        sent++;
    }
    uint64_t t_pub = now_us();
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    s = js_PublishAsyncComplete(js, &po);
    uint64_t t_end = now_us();
    if (s != NATS_OK)
        fprintf(stderr, "bench_jetstream: waiting for the last PubAcks: %s\n",
                natsStatus_GetText(s));
    double secs = (double)(t_end - t0) / 1e6;
    qsort(g.lat, g.nlat, sizeof *g.lat, cmp_u32);
    double p50 = g.nlat ? g.lat[g.nlat / 2] / 1000.0 : 0;
    double p99 = g.nlat ? g.lat[(size_t)((double)g.nlat * 0.99)] / 1000.0 : 0;
    double mps = (double)g.acked / secs;
    if (json)
        printf("{\"replicas\":%d,\"size\":%d,\"sent\":%" PRIu64 ",\"acked\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"seconds\":%.3f,\"msgs_per_s\":%.0f,"
               "\"events_per_s\":%.0f,\"mib_per_s\":%.1f,\"puback_p50_ms\":%.2f,"
               "\"puback_p99_ms\":%.2f}\n",
               replicas, size, sent, g.acked, g.errors, secs, mps, mps * epm,
               mps * size / (1024.0 * 1024.0), p50, p99);
    else
        printf("R%d %d-byte messages: %" PRIu64 " sent, %" PRIu64 " acked, %" PRIu64
               " errors in %.2f s (last publish at %.2f s)\n"
               "  %.0f msgs/s = %.0f events/s (%d a message), %.1f MiB/s; PubAck p50 %.2f ms, "
               "p99 %.2f ms\n",
               replicas, size, sent, g.acked, g.errors, secs, (double)(t_pub - t0) / 1e6, mps,
               mps * epm, epm, mps * size / (1024.0 * 1024.0), p50, p99);
    if (g.errors)
        fprintf(stderr, "bench_jetstream: first PubAck error: %s\n", g.first_error);
    if (g.duplicates)
        fprintf(stderr, "bench_jetstream: %" PRIu64 " PubAcks said duplicate\n", g.duplicates);
    js_DeleteStream(js, stream, NULL, NULL);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(no);
    nats_Close();
    free(buf);
    free(list);
    free(g.lat);
    return g.errors || g.acked != sent ? 1 : 0;
}
