/* bench_producers.c — tallyd's memory per live producer: ΔRssAnon over N distinct producers, each
 * sending one-event v2 batches over one nanomsg PUSH socket.
 *
 * The benchmark starts its own tallyd (temp store, ipc endpoints, an HTTP
 * port of its own, ingest.max_producers_per_credential raised above N) for
 * each mode, warms it up with a few producers (first-use allocations: rings,
 * decoder, the first LMDB transaction), reads RssAnon from /proc/PID/status,
 * then sends from N more producers at a bounded rate and waits until /metrics
 * shows every producer known and every event committed. The batches are built
 * here with the wire codec (tally__encode_event, tally__encode_batch_v2) under
 * one emitter credential, so no libtally client per producer skews the
 * figure. Modes:
 *   once     one batch per producer (seq 1)
 *   inorder  --batches in-order batches per producer (seq 1..K), interleaved
 *            across producers: still no window bitmap
 *   gap      batches 1 and 3 per producer: a missing batch 2 keeps a window
 *            bitmap set (the worst case the table allows)
 * Target: at most 512 bytes per live producer in the common case (once,
 * inorder). A gap costs a window bitmap on both sides (ingest and
 * aggregator), about 1 KiB more, until it fills.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/pipeline.h>

#include "codec.h"
#include "credential.h"
#include "tally/tally.h"

enum { MODE_ONCE, MODE_INORDER, MODE_GAP, MODE_COUNT };
static const char *const mode_names[MODE_COUNT] = {"once", "inorder", "gap"};

typedef struct opts {
    long producers;
    long warmup;
    long rate;   /* batches per second */
    int batches; /* per producer, inorder mode */
    int interval_ms;
    int modes; /* bit per mode */
    const char *key;
    const char *tallyd;
    const char *config;
    int json;
} opts_t;

typedef struct run {
    char dir[64];
    char endpoint[128];
    char log[128];
    pid_t pid;
    int http_port;
} run_t;

typedef struct result {
    long anon0_kb, anon1_kb, rss0_kb, rss1_kb;
    double producers_metric;
    double seconds;
    int ok;
} result_t;

static double
mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t
wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A "Name: N kB" line of /proc/PID/status, in KiB; -1 when absent. */
static long
status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    long kb = -1;
    size_t fl = strlen(field);
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, fl) == 0 && line[fl] == ':') {
            kb = strtol(line + fl + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* Start tallyd on its own store and endpoints, logging to run->log; wait
 * for its ready line and take the HTTP port from it. */
static int
spawn_tallyd(const opts_t *o, run_t *r, long max_producers)
{
    snprintf(r->dir, sizeof r->dir, "/tmp/tally-bench-prod-XXXXXX");
    if (!mkdtemp(r->dir))
        return -1;
    snprintf(r->endpoint, sizeof r->endpoint, "ipc://%s/ingest", r->dir);
    snprintf(r->log, sizeof r->log, "%s/tallyd.log", r->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char buf[1024];
        FILE *lf = fopen(r->log, "w");
        if (!lf)
            _exit(127);
        dup2(fileno(lf), 1);
        dup2(fileno(lf), 2);
        snprintf(buf, sizeof buf, "%s/store", r->dir);
        setenv("TALLY_STORAGE_DIR", buf, 1);
        setenv("TALLY_INGEST_LISTEN", r->endpoint, 1);
        snprintf(buf, sizeof buf, "%s.acks", r->endpoint);
        setenv("TALLY_INGEST_ACKS", buf, 1);
        snprintf(buf, sizeof buf, "ipc://%s/alerts", r->dir);
        setenv("TALLY_QUOTA_ALERTS", buf, 1);
        snprintf(buf, sizeof buf, "%d", o->interval_ms);
        setenv("TALLY_FLUSH_INTERVAL_MS", buf, 1);
        snprintf(buf, sizeof buf, "%ld", max_producers);
        setenv("TALLY_INGEST_MAX_PRODUCERS_PER_CREDENTIAL", buf, 1);
        setenv("TALLY_STORAGE_MAP_SIZE_MB", "1024", 1);
        setenv("TALLY_HTTP_LISTEN", "127.0.0.1:0", 1);
        char conf[4096];
        snprintf(conf, sizeof conf, "%s", o->tallyd);
        char *slash = strrchr(conf, '/');
        if (slash)
            snprintf(slash + 1, sizeof conf - (size_t)(slash + 1 - conf),
                     "../../config/tallyd.conf");
        if (o->config)
            execl(o->tallyd, "tallyd", "-c", o->config, (char *)NULL);
        else if (slash && access(conf, R_OK) == 0)
            execl(o->tallyd, "tallyd", "-c", conf, (char *)NULL);
        else
            execl(o->tallyd, "tallyd", (char *)NULL);
        perror("exec tallyd");
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 300; i++) {
        char line[2048];
        FILE *f = fopen(r->log, "r");
        while (f && fgets(line, sizeof line, f)) {
            const char *h = strstr(line, "msg=ready");
            if (h && (h = strstr(h, " http=")) && (h = strchr(h + 6, ':'))) {
                r->http_port = atoi(h + 1);
                fclose(f);
                return r->http_port > 0 ? 0 : -1;
            }
        }
        if (f)
            fclose(f);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            r->pid = -1;
            break;
        }
        sleep_s(0.1);
    }
    fprintf(stderr, "tally-bench-producers: tallyd did not become ready (log %s)\n", r->log);
    return -1;
}

static void
stop_tallyd(run_t *r, int keep)
{
    if (r->pid > 0) {
        kill(r->pid, SIGTERM);
        int status;
        waitpid(r->pid, &status, 0);
        r->pid = -1;
    }
    if (keep)
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", r->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", r->dir);
}

/* GET /metrics; the value of each of n metric names (-1 when absent). */
static int
metrics(int port, const char *const *names, double *vals, int n)
{
    for (int i = 0; i < n; i++)
        vals[i] = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    static const char req[] =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t k;
    while (buf && (k = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)k;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0';
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        for (int i = 0; i < n; i++) {
            size_t nlen = strlen(names[i]);
            if (strncmp(line, names[i], nlen) == 0 && line[nlen] == ' ')
                vals[i] = strtod(line + nlen + 1, NULL);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return 0;
}

enum { M_PRODUCERS, M_COMMITTED, M_LAG, M_REJECTED_PRODUCERS, M_COUNT };
static const char *const metric_names[M_COUNT] = {
    "tally_producers", "tally_ingest_events_committed_total", "tally_producer_lag",
    "tally_ingest_rejected_total{reason=\"producers\"}"};

/* Wait until /metrics shows want_producers producers and want_events
 * events committed, nothing in flight. */
static int
wait_settled(const run_t *r, double want_producers, double want_events, double timeout_s,
             double *vals)
{
    double t0 = mono_s();
    while (mono_s() - t0 < timeout_s) {
        if (metrics(r->http_port, metric_names, vals, M_COUNT) == 0 &&
            vals[M_PRODUCERS] == want_producers && vals[M_COMMITTED] == want_events &&
            vals[M_LAG] == 0)
            return 0;
        sleep_s(0.1);
    }
    fprintf(stderr,
            "tally-bench-producers: not settled after %.0f s: tally_producers %.0f (want %.0f), "
            "events committed %.0f (want %.0f), lag %.0f, rejected{producers} %.0f\n",
            timeout_s, vals[M_PRODUCERS], want_producers, vals[M_COMMITTED], want_events,
            vals[M_LAG], vals[M_REJECTED_PRODUCERS]);
    return -1;
}

typedef struct sender {
    int sock;
    tally__cred_t cred;
    msgpack_sbuffer ev, out;
    long rate;
    long sent;
    double t0;
} sender_t;

/* One batch of one event from producer name, paced to the rate. */
static int
send_batch(sender_t *s, const char *name, uint64_t seq, uint64_t base)
{
    tally_event_t e = {.ns = "bench", .metric = "http_requests", .ivalue = 1};
    s->ev.size = 0;
    s->out.size = 0;
    if (tally__encode_event(&s->ev, &e, wall_ms()) != 0 ||
        tally__encode_batch_v2(&s->out, &s->cred, name, seq, base, 1, s->ev.data, s->ev.size) != 0)
        return -ENOMEM;
    if (nn_send(s->sock, s->out.data, s->out.size, 0) < 0) {
        fprintf(stderr, "nn_send: %s\n", nn_strerror(nn_errno()));
        return -1;
    }
    s->sent++;
    if (s->rate > 0 && s->sent % 64 == 0) {
        double ahead = s->t0 + (double)s->sent / (double)s->rate - mono_s();
        if (ahead > 0)
            sleep_s(ahead);
    }
    return 0;
}

/* Batches of producers [from, from + n), named prefix-I: per mode. */
static int
send_producers(sender_t *s, const char *prefix, long from, long n, int mode, int batches,
               long *events)
{
    char name[64];
    int rounds = mode == MODE_ONCE ? 1 : mode == MODE_GAP ? 2 : batches;
    for (int k = 0; k < rounds; k++) {
        uint64_t seq = mode == MODE_GAP ? (uint64_t)(k == 0 ? 1 : 3) : (uint64_t)k + 1;
        for (long i = from; i < from + n; i++) {
            snprintf(name, sizeof name, "%s-%07ld", prefix, i);
            if (send_batch(s, name, seq, 1) != 0)
                return -1;
            (*events)++;
        }
    }
    return 0;
}

static int
run_mode(const opts_t *o, int mode, result_t *res)
{
    memset(res, 0, sizeof *res);
    run_t r = {.pid = -1};
    sender_t s = {.sock = -1, .rate = o->rate};
    msgpack_sbuffer_init(&s.ev);
    msgpack_sbuffer_init(&s.out);
    double vals[M_COUNT];
    long events = 0;
    int rc = -1;
    if (tally__cred_parse(o->key, strlen(o->key), &s.cred) != 0) {
        fprintf(stderr, "tally-bench-producers: bad credential\n");
        goto out;
    }
    if (spawn_tallyd(o, &r, o->producers + o->warmup + 1) != 0)
        goto out;
    if ((s.sock = nn_socket(AF_SP, NN_PUSH)) < 0 || nn_connect(s.sock, r.endpoint) < 0) {
        fprintf(stderr, "nanomsg: %s\n", nn_strerror(nn_errno()));
        goto out;
    }
    int sndbuf = 4 << 20;
    nn_setsockopt(s.sock, NN_SOL_SOCKET, NN_SNDBUF, &sndbuf, sizeof sndbuf);
    sleep_s(0.2); /* the ipc connection up before the first send */
    s.t0 = mono_s();
    if (o->warmup > 0) {
        if (send_producers(&s, "warm", 0, o->warmup, mode, o->batches, &events) != 0 ||
            wait_settled(&r, (double)o->warmup, (double)events, 60, vals) != 0)
            goto out;
    }
    sleep_s(0.5 + 2.0 * o->interval_ms / 1000.0);
    res->anon0_kb = status_kb(r.pid, "RssAnon");
    res->rss0_kb = status_kb(r.pid, "VmRSS");
    double t0 = mono_s();
    s.t0 = t0;
    s.sent = 0;
    if (send_producers(&s, "bench", 0, o->producers, mode, o->batches, &events) != 0)
        goto out;
    if (wait_settled(&r, (double)(o->producers + o->warmup), (double)events, 300, vals) != 0)
        goto out;
    res->seconds = mono_s() - t0;
    /* a few flushes more: what stays is what the producers hold */
    sleep_s(0.5 + 3.0 * o->interval_ms / 1000.0);
    res->anon1_kb = status_kb(r.pid, "RssAnon");
    res->rss1_kb = status_kb(r.pid, "VmRSS");
    metrics(r.http_port, metric_names, vals, M_COUNT);
    res->producers_metric = vals[M_PRODUCERS];
    res->ok = 1;
    rc = 0;
out:
    if (s.sock >= 0)
        nn_close(s.sock);
    msgpack_sbuffer_destroy(&s.ev);
    msgpack_sbuffer_destroy(&s.out);
    if (r.pid > 0 || r.dir[0])
        stop_tallyd(&r, rc != 0);
    if (rc != 0 && r.dir[0])
        fprintf(stderr, "tally-bench-producers: kept %s for its log\n", r.dir);
    return rc;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: tally-bench-producers [--producers N] [--mode once|inorder|gap|all]\n"
            "                             [--batches K] [--rate R] [--warmup W] [--json]\n"
            "  --producers   distinct producers measured (default 50000)\n"
            "  --mode        once: one batch each; inorder: K in-order batches each;\n"
            "                gap: batches 1 and 3 each (a window bitmap held);\n"
            "                all (default): each mode against its own tallyd\n"
            "  --batches     batches per producer in inorder mode (default 4)\n"
            "  --rate        batches per second, 0 for no limit (default 20000)\n"
            "  --warmup      producers sent before the baseline is read (default 1000)\n"
            "  --interval-ms tallyd flush interval (default 100)\n"
            "  --tallyd      tallyd binary (default: beside this program)\n"
            "  --config      tallyd config (default: ../../config/tallyd.conf from tallyd)\n"
            "  The credential: TALLY_KEY, else config/tokens' dev-emitter.\n");
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"producers", required_argument, NULL, 'p'},
                                       {"mode", required_argument, NULL, 'm'},
                                       {"batches", required_argument, NULL, 'b'},
                                       {"rate", required_argument, NULL, 'r'},
                                       {"warmup", required_argument, NULL, 'w'},
                                       {"interval-ms", required_argument, NULL, 'i'},
                                       {"tallyd", required_argument, NULL, 't'},
                                       {"config", required_argument, NULL, 'C'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    opts_t o = {.producers = 50000,
                .warmup = 1000,
                .rate = 20000,
                .batches = 4,
                .interval_ms = 100,
                .modes = (1 << MODE_COUNT) - 1};
    o.key = getenv("TALLY_KEY") ? getenv("TALLY_KEY")
                                : "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo";
    char tallyd_path[4096];
    int opt;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'p':
            o.producers = atol(optarg);
            break;
        case 'm':
            o.modes = 0;
            for (int m = 0; m < MODE_COUNT; m++)
                if (strcmp(optarg, mode_names[m]) == 0)
                    o.modes = 1 << m;
            if (strcmp(optarg, "all") == 0)
                o.modes = (1 << MODE_COUNT) - 1;
            break;
        case 'b':
            o.batches = atoi(optarg);
            break;
        case 'r':
            o.rate = atol(optarg);
            break;
        case 'w':
            o.warmup = atol(optarg);
            break;
        case 'i':
            o.interval_ms = atoi(optarg);
            break;
        case 't':
            o.tallyd = optarg;
            break;
        case 'C':
            o.config = optarg;
            break;
        case 'j':
            o.json = 1;
            break;
        default:
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    /* the config allows at most 1,000,000 producers per credential */
    if (o.producers < 1 || o.warmup < 0 || o.producers + o.warmup >= 1000000 || o.batches < 1 ||
        o.batches > 1000 || o.rate < 0 || o.modes == 0 || o.interval_ms < 1) {
        usage();
        return 2;
    }
    if (!o.tallyd) {
        ssize_t n = readlink("/proc/self/exe", tallyd_path, sizeof tallyd_path - 16);
        if (n <= 0)
            return 1;
        tallyd_path[n] = '\0';
        char *slash = strrchr(tallyd_path, '/');
        strcpy(slash + 1, "tallyd");
        o.tallyd = tallyd_path;
    }
    if (tally__cred_init() != 0)
        return 1;
    int failed = 0;
    for (int m = 0; m < MODE_COUNT; m++) {
        if (!(o.modes & (1 << m)))
            continue;
        result_t res;
        if (run_mode(&o, m, &res) != 0) {
            fprintf(stderr, "tally-bench-producers: mode %s failed\n", mode_names[m]);
            failed = 1;
            continue;
        }
        long batches = m == MODE_ONCE ? 1 : m == MODE_GAP ? 2 : o.batches;
        double per = (double)(res.anon1_kb - res.anon0_kb) * 1024.0 / (double)o.producers;
        double per_rss = (double)(res.rss1_kb - res.rss0_kb) * 1024.0 / (double)o.producers;
        if (o.json) {
            printf("{\"mode\":\"%s\",\"producers\":%ld,\"batches_per_producer\":%ld,"
                   "\"warmup\":%ld,\"rate\":%ld,\"seconds\":%.3f,\"tally_producers\":%.0f,"
                   "\"rss_anon_kb\":[%ld,%ld],\"vm_rss_kb\":[%ld,%ld],"
                   "\"bytes_per_producer\":%.0f,\"rss_bytes_per_producer\":%.0f}\n",
                   mode_names[m], o.producers, batches, o.warmup, o.rate, res.seconds,
                   res.producers_metric, res.anon0_kb, res.anon1_kb, res.rss0_kb, res.rss1_kb, per,
                   per_rss);
        } else {
            printf("mode=%s producers=%ld batches/producer=%ld (warm-up %ld, %ld batches/s): "
                   "settled in %.1f s, tally_producers %.0f\n",
                   mode_names[m], o.producers, batches, o.warmup, o.rate, res.seconds,
                   res.producers_metric);
            printf("  RssAnon %ld -> %ld KiB, VmRSS %ld -> %ld KiB: %.0f bytes per producer "
                   "(VmRSS %.0f)%s\n",
                   res.anon0_kb, res.anon1_kb, res.rss0_kb, res.rss1_kb, per, per_rss,
                   m == MODE_GAP ? ""
                   : per <= 512  ? " [<= 512: ok]"
                                 : " [> 512: over target]");
        }
        fflush(stdout);
    }
    return failed;
}
