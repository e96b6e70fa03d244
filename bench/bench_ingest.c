/* bench_ingest.c — load generator: N libtally producers against a real tallyd; prints events/s
 * through commit, ack p50/p99 and RSS.
 *
 * The benchmark starts its own tallyd (on a temp store and ipc endpoints)
 * unless --endpoint is given, so one command measures the whole pipeline:
 * encode, transport, decode, rings, aggregation, LMDB commit and acks.
 * "Through commit" means the clock stops when every event is acked, and an
 * ack is only sent after the flush that holds the batch has committed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tally/tally.h"

typedef struct opts {
    int producers;
    long long events; /* per producer */
    int batch;
    int series; /* distinct series per producer */
    int interval_ms;
    int in_flight; /* batches a producer keeps unacked */
    const char *key; /* emitter credential; NULL: unauthenticated v1 (--no-auth) */
    const char *endpoint;
    const char *tallyd;
    const char *config; /* tallyd config (default: config/tallyd.conf of the source tree) */
    int json;
} opts_t;

typedef struct worker {
    pthread_t thread;
    int id;
    const opts_t *o;
    const char *endpoint;
    long long sent;
    uint64_t p50, p99, resends, full_waits;
    int rc;
} worker_t;

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    const opts_t *o = w->o;
    char producer[64];
    snprintf(producer, sizeof producer, "bench-%d-%d", (int)getpid(), w->id);
    tally_client_options_t co = {.batch_events = (uint32_t)o->batch,
                                 .batch_delay_ms = 5,
                                 .max_unacked = (uint32_t)o->in_flight,
                                 .credential = o->key};
    tally_client_t *c;
    if ((w->rc = tally_client_create(w->endpoint, producer, &co, &c)) != 0)
        return NULL;
    /* series: namespace x object label, interned by the daemon; the names
     * are made up front so that the load generator spends its share of
     * the two cores on libtally, not on snprintf */
    typedef char name_t[32];
    name_t *nss = malloc(sizeof *nss * (size_t)o->series);
    name_t *objs = malloc(sizeof *objs * (size_t)o->series);
    if (!nss || !objs) {
        free(nss);
        free(objs);
        tally_client_destroy(c);
        w->rc = TALLY_EFULL;
        return NULL;
    }
    int nsn = o->series < 100 ? o->series : 100;
    for (int s = 0; s < o->series; s++) {
        snprintf(nss[s], sizeof nss[s], "ns-%d", s % nsn);
        snprintf(objs[s], sizeof objs[s], "p%d-o%d", w->id, s);
    }
    tally_label_t label = {"object", NULL};
    tally_event_t ev = {.metric = "http_requests", .ivalue = 1, .labels = &label, .nlabels = 1};
    for (long long i = 0; i < o->events; i++) {
        int s = (int)(i % o->series);
        ev.ns = nss[s];
        label.value = objs[s];
        int rc;
        while ((rc = tally_emit(c, &ev)) == TALLY_EFULL) {
            w->full_waits++;
            usleep(200);
        }
        if (rc) {
            w->rc = rc;
            break;
        }
        w->sent++;
    }
    free(nss);
    free(objs);
    int rc = tally_flush(c, 120000);
    if (!w->rc)
        w->rc = rc;
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    w->resends = st.resends;
    w->p50 = tally_client_ack_latency_us(c, 0.50);
    w->p99 = tally_client_ack_latency_us(c, 0.99);
    tally_client_destroy(c);
    return NULL;
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

/* Start tallyd with its own store and endpoints; wait for "ready". */
static pid_t
spawn_tallyd(const opts_t *o, const char *dir, char *endpoint, size_t cap, FILE **log)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    snprintf(endpoint, cap, "ipc://%s/ingest", dir);
    pid_t pid = fork();
    if (pid == 0) {
        char buf[1024];
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        snprintf(buf, sizeof buf, "%s/store", dir);
        setenv("TALLY_STORAGE_DIR", buf, 1);
        setenv("TALLY_INGEST_LISTEN", endpoint, 1);
        snprintf(buf, sizeof buf, "%s.acks", endpoint);
        setenv("TALLY_INGEST_ACKS", buf, 1);
        snprintf(buf, sizeof buf, "ipc://%s/alerts", dir);
        setenv("TALLY_QUOTA_ALERTS", buf, 1);
        snprintf(buf, sizeof buf, "%d", o->interval_ms);
        setenv("TALLY_FLUSH_INTERVAL_MS", buf, 1);
        setenv("TALLY_STORAGE_MAP_SIZE_MB", "1024", 1);
        setenv("TALLY_HTTP_LISTEN", "127.0.0.1:0", 0);
        /* the shipped config beside the build (catalogs, tokens); the
         * environment above gives this run its own store and endpoints */
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
    close(pfd[1]);
    *log = fdopen(pfd[0], "r");
    char line[1024];
    while (fgets(line, sizeof line, *log)) {
        if (strstr(line, "msg=ready"))
            return pid;
        fputs(line, stderr);
    }
    fprintf(stderr, "tally-bench-ingest: tallyd did not become ready\n");
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: tally-bench-ingest [--producers N] [--events N] [--batch N] [--series N]\n"
            "                          [--interval-ms N] [--endpoint EP] [--tallyd PATH] [--json]\n"
            "  --producers  producer threads, one libtally client each (default 2)\n"
            "  --events     events per producer (default 2000000)\n"
            "  --batch      events per batch (default 100; 1 = one event per message)\n"
            "  --series     distinct series per producer (default 1000)\n"
            "  --interval-ms tallyd flush interval (default 100)\n"
            "  --in-flight  batches each producer keeps unacked (default 1024, max 4096)\n"
            "  --endpoint   use a running tallyd instead of starting one\n"
            "  --tallyd     tallyd binary (default: beside this program)\n"
            "  --config     tallyd config (default: ../../config/tallyd.conf from tallyd)\n"
            "  --no-auth    unauthenticated v1 batches (the started tallyd gets\n"
            "               ingest.require_auth = false); default: protocol v2 with the\n"
            "               credential in TALLY_KEY, else config/tokens' dev-emitter\n");
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"producers", required_argument, NULL, 'p'},
                                       {"events", required_argument, NULL, 'e'},
                                       {"batch", required_argument, NULL, 'b'},
                                       {"series", required_argument, NULL, 's'},
                                       {"interval-ms", required_argument, NULL, 'i'},
                                       {"endpoint", required_argument, NULL, 'E'},
                                       {"tallyd", required_argument, NULL, 't'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"in-flight", required_argument, NULL, 'F'},
                                       {"config", required_argument, NULL, 'C'},
                                       {"no-auth", no_argument, NULL, 'N'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    opts_t o = {
        .producers = 2, .events = 2000000, .batch = 100, .series = 1000, .interval_ms = 100};
    o.key = getenv("TALLY_KEY") ? getenv("TALLY_KEY")
                                : "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo";
    char tallyd_path[4096];
    int opt;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'p':
            o.producers = atoi(optarg);
            break;
        case 'e':
            o.events = atoll(optarg);
            break;
        case 'b':
            o.batch = atoi(optarg);
            break;
        case 's':
            o.series = atoi(optarg);
            break;
        case 'i':
            o.interval_ms = atoi(optarg);
            break;
        case 'E':
            o.endpoint = optarg;
            break;
        case 't':
            o.tallyd = optarg;
            break;
        case 'j':
            o.json = 1;
            break;
        case 'F':
            o.in_flight = atoi(optarg);
            break;
        case 'C':
            o.config = optarg;
            break;
        case 'N':
            o.key = NULL;
            setenv("TALLY_INGEST_REQUIRE_AUTH", "false", 1);
            break;
        default:
            usage();
            return opt == 'h' ? 0 : 2;
        }
    }
    if (o.producers < 1 || o.events < 1 || o.batch < 1 || o.batch > TALLY_MAX_BATCH_EVENTS ||
        o.series < 1) {
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
    char dir[] = "/tmp/tally-bench-XXXXXX", endpoint[512];
    pid_t pid = -1;
    FILE *log = NULL;
    long rss0 = 0, anon0 = 0;
    if (o.endpoint) {
        snprintf(endpoint, sizeof endpoint, "%s", o.endpoint);
    } else {
        if (!mkdtemp(dir))
            return 1;
        if ((pid = spawn_tallyd(&o, dir, endpoint, sizeof endpoint, &log)) < 0)
            return 1;
        rss0 = status_kb(pid, "VmRSS");
        anon0 = status_kb(pid, "RssAnon");
    }
    worker_t *w = calloc((size_t)o.producers, sizeof *w);
    double t0 = now_s();
    for (int i = 0; i < o.producers; i++) {
        w[i] = (worker_t){.id = i, .o = &o, .endpoint = endpoint};
        pthread_create(&w[i].thread, NULL, worker_main, &w[i]);
    }
    long long total = 0;
    uint64_t p50 = 0, p99 = 0, resends = 0, waits = 0;
    int failed = 0;
    for (int i = 0; i < o.producers; i++) {
        pthread_join(w[i].thread, NULL);
        total += w[i].sent;
        p50 = w[i].p50 > p50 ? w[i].p50 : p50;
        p99 = w[i].p99 > p99 ? w[i].p99 : p99;
        resends += w[i].resends;
        waits += w[i].full_waits;
        if (w[i].rc) {
            fprintf(stderr, "producer %d: %s\n", i, tally_strerror(w[i].rc));
            failed = 1;
        }
    }
    double el = now_s() - t0;
    long rss1 = pid > 0 ? status_kb(pid, "VmRSS") : 0,
         anon1 = pid > 0 ? status_kb(pid, "RssAnon") : 0;
    long long series = (long long)o.series * o.producers;
    char stopline[1024] = "";
    if (pid > 0) {
        kill(pid, SIGTERM);
        char line[1024];
        while (fgets(line, sizeof line, log))
            if (strstr(line, "msg=stopped"))
                snprintf(stopline, sizeof stopline, "%s", line);
        int status;
        waitpid(pid, &status, 0);
        fclose(log);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    const char *fm = strstr(stopline, "flush_max_us=");
    long long flush_max_us = fm ? atoll(fm + 13) : -1;
    double eps = (double)total / el;
    if (o.json) {
        printf("{\"producers\":%d,\"batch\":%d,\"events\":%lld,\"seconds\":%.3f,"
               "\"events_per_s\":%.0f,\"ack_p50_us\":%llu,\"ack_p99_us\":%llu,"
               "\"resends\":%llu,\"series\":%lld,\"rss_kb_empty\":%ld,\"rss_kb\":%ld,"
               "\"rss_anon_kb_empty\":%ld,\"rss_anon_kb\":%ld,\"flush_max_us\":%lld}\n",
               o.producers, o.batch, total, el, eps, (unsigned long long)p50,
               (unsigned long long)p99, (unsigned long long)resends, series, rss0, rss1, anon0,
               anon1, flush_max_us);
    } else {
        printf("producers=%d batch=%d events=%lld seconds=%.3f\n", o.producers, o.batch, total, el);
        printf("events/s through commit: %.0f\n", eps);
        printf("ack latency: p50 %.2f ms, p99 %.2f ms (flush interval %d ms)\n", p50 / 1000.0,
               p99 / 1000.0, o.interval_ms);
        printf("resends: %llu, emit waits for acks: %llu\n", (unsigned long long)resends,
               (unsigned long long)waits);
        if (pid > 0) {
            printf("tallyd RSS: empty %ld KiB, after %ld KiB (anon %ld -> %ld KiB); "
                   "%lld series -> %.0f bytes/series (anon %.0f)\n",
                   rss0, rss1, anon0, anon1, series,
                   (double)(rss1 - rss0) * 1024.0 / (double)series,
                   (double)(anon1 - anon0) * 1024.0 / (double)series);
            printf("longest flush commit: %.2f ms\n", flush_max_us / 1000.0);
        }
    }
    free(w);
    return failed;
}
