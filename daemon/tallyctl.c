/* tallyctl.c — the tally command-line tool: events, store dump/backup/restore/compact, HTTP API. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <getopt.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <jansson.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "codec.h"
#include "config.h"
#include "credential.h"
#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"

static void
usage_main(FILE *fp)
{
    fprintf(fp, "usage: tallyctl COMMAND [OPTIONS]\n"
                "commands:\n"
                "  emit     send events through libtally and wait for their ack\n"
                "  keygen   make an emitter credential: a tokens-file line and NAME:SECRET\n"
                "  dump     print rollups straight from the store (read-only)\n"
                "  backup   consistent, compacted copy of the store while tallyd runs\n"
                "  restore  replace the store with a backup (tallyd stopped)\n"
                "  compact  compact the store offline (tallyd stopped)\n"
                "  check    verify a store's pages and records, read-only\n"
                "  usage    usage of a namespace over a window, from the HTTP API\n"
                "  stats    the daemon's key counters, from /metrics\n"
                "  watch    print quota alerts as tallyd publishes them\n"
                "  plan     approve or reject a plan transition (admin, over HTTP)\n"
                "  invoice  close a month, or pay|cancel|refund an invoice (admin, over HTTP)\n"
                "  version  print the version\n"
                "Run 'tallyctl COMMAND --help' for a command's options.\n");
}

/* ---- emit -------------------------------------------------------------- */

static void
usage_emit(FILE *fp)
{
    fprintf(fp,
            "usage: tallyctl emit --endpoint EP --ns NS --metric M --value V [options]\n"
            "  --endpoint EP    tallyd ingest endpoint (ipc://... or tcp://...)\n"
            "  --acks EP        ack endpoint (default: tcp port + 1, or ipc path + .acks)\n"
            "  --ns NS          namespace\n"
            "  --metric M       metric label\n"
            "  --value V        integer or decimal value\n"
            "  --ts T           event time, RFC 3339 or unix seconds (default: now)\n"
            "  --label k=v      a label; repeat for more (at most %d)\n"
            "  --count N        send N events (default 1)\n"
            "  --producer ID    producer id (default tallyctl-HOST-PID)\n"
            "  --key-file FILE  emitter credential NAME:SECRET (from tallyctl keygen); without\n"
            "                   it, the environment variable TALLY_KEY; without either, an\n"
            "                   unauthenticated v1 batch (ipc endpoints with\n"
            "                   ingest.require_auth = false only)\n"
            "  --batch N        events per batch (default 100)\n"
            "  --rate N         at most N events per second (default: as fast as acked)\n"
            "  --spread-hours H stamp event i at the event time minus (i %% H) hours, so the\n"
            "                   events cover H hourly buckets (for tests and benchmarks)\n"
            "  --timeout S      give up after S seconds without every ack (default 60)\n"
            "  --json           print the result as JSON\n"
            "Exit status 0 only when every event was acknowledged by tallyd.\n",
            TALLY_MAX_LABELS);
}

static int
parse_value(const char *s, tally_event_t *ev)
{
    char *end;
    errno = 0;
    if (strpbrk(s, ".eEnN")) {
        double d = strtod(s, &end);
        if (*end || errno || !isfinite(d))
            return -1;
        ev->is_float = 1;
        ev->fvalue = d;
    } else {
        long long v = strtoll(s, &end, 10);
        if (*end || errno || end == s)
            return -1;
        ev->ivalue = v;
    }
    return 0;
}

/* The emitter credential for emit: from --key-file (its first line that is
 * not blank or a comment), else from TALLY_KEY, else none. Never from the
 * command line itself, where ps shows it. */
static int
read_key(const char *file, char *out, size_t cap)
{
    out[0] = '\0';
    if (!file) {
        const char *env = getenv("TALLY_KEY");
        if (env && *env) {
            if (strlen(env) >= cap) {
                fprintf(stderr, "tallyctl emit: TALLY_KEY is too long\n");
                return -1;
            }
            snprintf(out, cap, "%s", env);
        }
        return 0;
    }
    FILE *fp = fopen(file, "r");
    if (!fp) {
        fprintf(stderr, "tallyctl emit: --key-file %s: %s\n", file, strerror(errno));
        return -1;
    }
    char line[256];
    while (fgets(line, sizeof line, fp)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#' || *p == '\n' || *p == '\0')
            continue;
        snprintf(out, cap, "%s", p);
        break;
    }
    sodium_memzero(line, sizeof line);
    fclose(fp);
    if (!out[0]) {
        fprintf(stderr, "tallyctl emit: --key-file %s: no credential in it\n", file);
        return -1;
    }
    return 0;
}

static int
cmd_emit(int argc, char **argv)
{
    static const struct option lo[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"acks", required_argument, NULL, 'a'},
        {"ns", required_argument, NULL, 'n'},       {"metric", required_argument, NULL, 'm'},
        {"value", required_argument, NULL, 'v'},    {"ts", required_argument, NULL, 't'},
        {"label", required_argument, NULL, 'l'},    {"count", required_argument, NULL, 'c'},
        {"producer", required_argument, NULL, 'p'}, {"batch", required_argument, NULL, 'b'},
        {"rate", required_argument, NULL, 'r'},     {"timeout", required_argument, NULL, 'T'},
        {"spread-hours", required_argument, NULL, 'S'},
        {"key-file", required_argument, NULL, 'K'},
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *endpoint = NULL, *acks = NULL, *value = NULL, *producer = NULL;
    const char *key_file = NULL;
    char key[256] = "";
    tally_event_t ev = {0};
    tally_label_t labels[TALLY_MAX_LABELS];
    char *label_store[TALLY_MAX_LABELS] = {0};
    long long count = 1, batch = 100, rate = 0, timeout_s = 60, spread = 0;
    int json = 0, opt, status = 1;
    char pbuf[TALLY_MAX_PRODUCER_LEN + 1];
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'e':
            endpoint = optarg;
            break;
        case 'a':
            acks = optarg;
            break;
        case 'n':
            ev.ns = optarg;
            break;
        case 'm':
            ev.metric = optarg;
            break;
        case 'v':
            value = optarg;
            break;
        case 't':
            if (tally__time_parse_any(optarg, &ev.ts_ms) != 0 || ev.ts_ms <= 0) {
                fprintf(stderr, "tallyctl emit: --ts: not RFC 3339 or unix seconds: %s\n", optarg);
                goto out;
            }
            break;
        case 'l': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || ev.nlabels >= TALLY_MAX_LABELS) {
                fprintf(stderr, "tallyctl emit: --label: want k=v, at most %d: %s\n",
                        TALLY_MAX_LABELS, optarg);
                goto out;
            }
            char *dup = strdup(optarg);
            label_store[ev.nlabels] = dup;
            dup[eq - optarg] = '\0';
            labels[ev.nlabels].key = dup;
            /* label_store owns dup; out: frees it */
            labels[ev.nlabels].value = dup + (eq - optarg) + 1; // NOLINT(clang-analyzer-unix.Malloc)
            ev.nlabels++;
            break;
        }
        case 'c':
            count = atoll(optarg);
            break;
        case 'p':
            producer = optarg;
            break;
        case 'b':
            batch = atoll(optarg);
            break;
        case 'r':
            rate = atoll(optarg);
            break;
        case 'T':
            timeout_s = atoll(optarg);
            break;
        case 'S':
            spread = atoll(optarg);
            break;
        case 'K':
            key_file = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage_emit(stdout);
            status = 0;
            goto out;
        default:
            usage_emit(stderr);
            status = 2;
            goto out;
        }
    }
    ev.labels = labels;
    if (!endpoint || !ev.ns || !ev.metric || !value || count < 1 || batch < 1 ||
        batch > TALLY_MAX_BATCH_EVENTS || timeout_s < 1 || optind != argc) {
        usage_emit(stderr);
        status = 2;
        goto out;
    }
    if (parse_value(value, &ev) != 0) {
        fprintf(stderr, "tallyctl emit: --value: not a finite number: %s\n", value);
        status = 2;
        goto out;
    }
    int reason;
    if (tally__event_validate(&ev, &reason) != 0) {
        fprintf(stderr, "tallyctl emit: invalid event: namespace [a-z0-9-]{1,64}, metric "
                        "[A-Za-z0-9_.:-]{1,64}, labels k=v with printable values\n");
        status = 2;
        goto out;
    }
    if (!producer) {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(pbuf, sizeof pbuf, "tallyctl-%.40s-%d", host, (int)getpid());
        producer = pbuf;
    }
    if (read_key(key_file, key, sizeof key) != 0) {
        status = 2;
        goto out;
    }
    tally_client_options_t o = {.ack_endpoint = acks,
                                .batch_events = (uint32_t)batch,
                                .credential = key[0] ? key : NULL};
    tally_client_t *c;
    int rc = tally_client_create(endpoint, producer, &o, &c);
    sodium_memzero(key, sizeof key);
    if (rc) {
        fprintf(stderr, "tallyctl emit: %s: %s%s\n", endpoint, tally_strerror(rc),
                rc == TALLY_EINVAL && o.credential ? " (is the key NAME:SECRET?)" : "");
        goto out;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double deadline = (double)t0.tv_sec + t0.tv_nsec / 1e9 + (double)timeout_s;
    long long sent = 0;
    int64_t base_ts = ev.ts_ms;
    if (spread > 0 && !base_ts) {
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        base_ts = (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000;
    }
    while (sent < count) {
        if (spread > 0)
            ev.ts_ms = base_ts - (sent % spread) * 3600000;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double tnow = (double)now.tv_sec + now.tv_nsec / 1e9;
        if (tnow > deadline)
            break;
        if (rate > 0) {
            double elapsed = tnow - ((double)t0.tv_sec + t0.tv_nsec / 1e9);
            if ((double)sent > elapsed * (double)rate) {
                usleep(1000);
                continue;
            }
        }
        rc = tally_emit(c, &ev);
        if (rc == TALLY_EFULL) {
            usleep(1000); /* every batch slot waits for an ack: let them come */
            continue;
        }
        if (rc) {
            fprintf(stderr, "tallyctl emit: %s\n", tally_strerror(rc));
            break;
        }
        sent++;
    }
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double left = deadline - ((double)t1.tv_sec + t1.tv_nsec / 1e9);
    rc = tally_flush(c, left > 0 ? (int)(left * 1000) : 0);
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    tally_client_destroy(c);
    int ok = rc == 0 && sent == count;
    if (json)
        printf("{\"producer\":\"%s\",\"events\":%lld,\"acked\":%s,\"batches\":%llu,"
               "\"resends\":%llu,\"unacked_batches\":%llu}\n",
               producer, sent, ok ? "true" : "false", (unsigned long long)st.batches,
               (unsigned long long)st.resends, (unsigned long long)st.unacked);
    else if (ok)
        printf("%lld events acked (producer %s, %llu batches, %llu resends)\n", sent, producer,
               (unsigned long long)st.batches, (unsigned long long)st.resends);
    else
        fprintf(stderr, "tallyctl emit: %lld of %lld events sent, %llu batches unacked: %s\n",
                sent, count, (unsigned long long)st.unacked,
                rc ? tally_strerror(rc) : "timed out");
    status = ok ? 0 : 1;
out:
    for (int i = 0; i < TALLY_MAX_LABELS; i++)
        free(label_store[i]);
    return status;
}

/* ---- dump -------------------------------------------------------------- */

static void
usage_dump(FILE *fp)
{
    fprintf(fp, "usage: tallyctl dump --config FILE [--ns NS] [--period hour|month]\n"
                "                     [--from T] [--to T] [--json]\n"
                "  Prints rollups straight from the store in a read-only transaction.\n"
                "  --period   hour (default) or month; --from/--to bound the period start\n"
                "             (RFC 3339 or unix seconds, [from, to)).\n"
                "  --json     an array of {ns, metric, period, start, sum, count, max, last, labels}\n");
}

static void
print_num(FILE *fp, double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        fprintf(fp, "%lld", (long long)v);
    else
        fprintf(fp, "%.17g", v);
}

static void
print_sum(FILE *fp, const tally__rollup_t *r)
{
    if (tally__rollup_sum_is_int(r))
        fprintf(fp, "%lld", (long long)r->sum_i);
    else
        print_num(fp, tally__rollup_sum(r));
}

static void
json_str(FILE *fp, const char *s, size_t n)
{
    fputc('"', fp);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

typedef struct dump_ctx {
    int json;
    int monthly;
    size_t n;
} dump_ctx_t;

static int
dump_one(void *ctx, const char *series, size_t series_len, int64_t period_s,
         const tally__rollup_t *r)
{
    dump_ctx_t *d = ctx;
    tally__series_t s;
    char when[TALLY_TIME_RFC3339_LEN];
    if (tally__series_parse(series, series_len, &s) != 0)
        return TALLY_ECORRUPT;
    tally__time_format_rfc3339(period_s, when, sizeof when);
    if (d->json) {
        fputs(d->n ? ",\n " : "[", stdout);
        fputs("{\"ns\":", stdout);
        json_str(stdout, s.ns, s.ns_len);
        fputs(",\"metric\":", stdout);
        json_str(stdout, s.metric, s.metric_len);
        printf(",\"period\":\"%s\",\"start\":\"%s\",\"sum\":", d->monthly ? "month" : "hour", when);
        print_sum(stdout, r);
        printf(",\"count\":%llu,\"max\":", (unsigned long long)r->count);
        print_num(stdout, r->max);
        fputs(",\"last\":", stdout);
        print_num(stdout, r->last);
        if (s.labels_len) {
            fputs(",\"labels\":{", stdout);
            uint32_t pos = 0, kl, vl;
            const char *k, *v;
            int first = 1;
            while (tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl)) {
                if (!first)
                    fputc(',', stdout);
                first = 0;
                json_str(stdout, k, kl);
                fputc(':', stdout);
                json_str(stdout, v, vl);
            }
            fputc('}', stdout);
        }
        fputc('}', stdout);
    } else {
        if (d->n == 0)
            printf("%-20s %-24s %-6s %-20s %20s %12s %14s %14s  %s\n", "NS", "METRIC", "PERIOD",
                   "START", "SUM", "COUNT", "MAX", "LAST", "LABELS");
        printf("%-20.*s %-24.*s %-6s %-20s ", (int)s.ns_len, s.ns, (int)s.metric_len, s.metric,
               d->monthly ? "month" : "hour", when);
        char buf[64];
        FILE *m = fmemopen(buf, sizeof buf, "w");
        print_sum(m, r);
        fclose(m);
        printf("%20s %12llu ", buf, (unsigned long long)r->count);
        m = fmemopen(buf, sizeof buf, "w");
        print_num(m, r->max);
        fclose(m);
        printf("%14s ", buf);
        m = fmemopen(buf, sizeof buf, "w");
        print_num(m, r->last);
        fclose(m);
        printf("%14s  ", buf);
        uint32_t pos = 0, kl, vl;
        const char *k, *v;
        int first = 1;
        while (tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl)) {
            printf("%s%.*s=%.*s", first ? "" : ",", (int)kl, k, (int)vl, v);
            first = 0;
        }
        fputc('\n', stdout);
    }
    d->n++;
    return 0;
}

/* Load the config (defaults, FILE, TALLY_* overrides), or say why not. */
static int
load_config(const char *config, tally__config_t **cfg)
{
    char err[1024];
    int rc = tally__config_load(config, cfg, err, sizeof err);
    if (rc)
        fprintf(stderr, "tallyctl: %s\n", err);
    return rc;
}

static int
open_store_from_config(const char *config, int readonly, tally__config_t **cfg,
                       tally__store_t **store)
{
    int rc = load_config(config, cfg);
    if (rc)
        return rc;
    rc = tally__store_open((*cfg)->storage.dir, (*cfg)->storage.map_size_mb << 20, readonly, store);
    if (rc) {
        fprintf(stderr, "tallyctl: cannot open the store in %s: %s\n", (*cfg)->storage.dir,
                tally_strerror(rc));
        tally__config_destroy(*cfg);
        *cfg = NULL;
    }
    return rc;
}

static int
cmd_dump(int argc, char **argv)
{
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'}, {"ns", required_argument, NULL, 'n'},
        {"period", required_argument, NULL, 'p'}, {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},     {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *ns = NULL;
    int64_t from = INT64_MIN, to = INT64_MAX, ms;
    dump_ctx_t d = {0};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case 'p':
            if (strcmp(optarg, "hour") == 0)
                d.monthly = 0;
            else if (strcmp(optarg, "month") == 0)
                d.monthly = 1;
            else {
                fprintf(stderr, "tallyctl dump: --period: hour or month, not %s\n", optarg);
                return 2;
            }
            break;
        case 'f':
        case 't':
            if (tally__time_parse_any(optarg, &ms) != 0) {
                fprintf(stderr, "tallyctl dump: --%s: not RFC 3339 or unix seconds: %s\n",
                        opt == 'f' ? "from" : "to", optarg);
                return 2;
            }
            *(opt == 'f' ? &from : &to) = ms / 1000;
            break;
        case 'j':
            d.json = 1;
            break;
        case 'h':
            usage_dump(stdout);
            return 0;
        default:
            usage_dump(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage_dump(stderr);
        return 2;
    }
    tally__config_t *cfg;
    tally__store_t *store;
    if (open_store_from_config(config, 1, &cfg, &store) != 0)
        return 1;
    int rc = tally__store_scan(store, d.monthly ? TALLY_STORE_MONTHLY : TALLY_STORE_HOURLY, ns,
                               ns ? strlen(ns) : 0, from, to, dump_one, &d);
    if (d.json)
        puts(d.n ? "]" : "[]");
    tally__store_close(store);
    tally__config_destroy(cfg);
    if (rc) {
        fprintf(stderr, "tallyctl dump: %s\n", tally_strerror(rc));
        return 1;
    }
    return 0;
}

/* ---- backup, restore, compact ------------------------------------------- */

#define MIB (1024.0 * 1024.0)

/* 1 when dir exists and holds an entry, 0 when it is missing or empty, -1
 * when it cannot be read (errno set). */
static int
dir_nonempty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL)
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return found;
}

static double
mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t
data_size(const char *dir)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void
usage_backup(FILE *fp)
{
    fprintf(fp,
            "usage: tallyctl backup --config FILE --out DIR [--force] [--json]\n"
            "  A consistent, compacted copy of the store (LMDB's copy with compaction) in\n"
            "  DIR/data.mdb, taken from one read snapshot while tallyd keeps running: it holds\n"
            "  every flush committed when the copy began and nothing after. On a terminal a\n"
            "  progress line shows the size being copied and the time it took.\n"
            "  --out DIR  the backup directory (created if missing); refused when it exists\n"
            "             and is not empty\n"
            "  --force    write into a non-empty DIR, replacing its data.mdb\n"
            "  --json     print {\"out\", \"bytes\", \"seconds\"}\n"
            "Restore it with 'tallyctl restore --from DIR' while tallyd is stopped.\n");
}

static int
cmd_backup(int argc, char **argv)
{
    static const struct option lo[] = {
        {"config", required_argument, NULL, 'c'}, {"out", required_argument, NULL, 'o'},
        {"force", no_argument, NULL, 'f'},        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = NULL, *outdir = NULL;
    int opt, force = 0, json = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:o:h", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage_backup(stdout);
            return 0;
        default:
            usage_backup(stderr);
            return 2;
        }
    }
    if (!outdir || optind != argc) {
        usage_backup(stderr);
        return 2;
    }
    int ne = dir_nonempty(outdir);
    if (ne < 0) {
        fprintf(stderr, "tallyctl backup: %s: %s\n", outdir, strerror(errno));
        return 1;
    }
    if (ne && !force) {
        fprintf(stderr,
                "tallyctl backup: %s exists and is not empty; choose a new directory "
                "or use --force to replace its data.mdb\n",
                outdir);
        return 1;
    }
    tally__config_t *cfg;
    tally__store_t *store;
    if (open_store_from_config(config, 1, &cfg, &store) != 0)
        return 1;
    int tty = !json && isatty(STDOUT_FILENO);
    if (tty) {
        uint64_t used = 0;
        tally__store_map_info(store, NULL, &used);
        printf("copying store (%.2f MiB)...", (double)used / MIB);
        fflush(stdout);
    }
    if (force) {
        /* LMDB's copy creates data.mdb exclusively: make room */
        char path[4096];
        snprintf(path, sizeof path, "%s/data.mdb", outdir);
        unlink(path);
        snprintf(path, sizeof path, "%s/lock.mdb", outdir);
        unlink(path);
    }
    double t0 = mono_s();
    int rc = tally__store_backup(store, outdir);
    double secs = mono_s() - t0;
    tally__store_close(store);
    tally__config_destroy(cfg);
    if (tty)
        fputc(rc ? '\n' : ' ', stdout);
    if (rc) {
        fflush(stdout);
        fprintf(stderr, "tallyctl backup: %s: %s\n", outdir, tally_strerror(rc));
        return 1;
    }
    uint64_t bytes = data_size(outdir);
    if (json) {
        fputs("{\"out\":", stdout);
        json_str(stdout, outdir, strlen(outdir));
        printf(",\"bytes\":%llu,\"seconds\":%.3f}\n", (unsigned long long)bytes, secs);
    } else if (tty) {
        printf("done: %.2f MiB in %.1f s -> %s\n", (double)bytes / MIB, secs, outdir);
    } else {
        printf("backup written to %s (%.2f MiB in %.1f s)\n", outdir, (double)bytes / MIB, secs);
    }
    return 0;
}

static void
usage_restore(FILE *fp)
{
    fprintf(fp, "usage: tallyctl restore --config FILE --from DIR [--force]\n"
                "  Replace the store in [storage] dir with the backup in DIR (its data.mdb), with\n"
                "  tallyd stopped. The backup is copied into a temporary directory inside the\n"
                "  store directory, checked to open as a tally store of this version, and renamed\n"
                "  over data.mdb in one step: a crash leaves the old store or the new one.\n"
                "  Refused while a tallyd runs on the store (it holds DIR/tally.lock), and when\n"
                "  the store already holds records, unless --force.\n"
                "Exit status 0 when restored, 1 when refused or failed, 2 for bad usage.\n");
}

static int
cmd_restore(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"from", required_argument, NULL, 'F'},
                                       {"force", no_argument, NULL, 'f'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *config = NULL, *from = NULL;
    int opt, force = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:h", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'F':
            from = optarg;
            break;
        case 'f':
            force = 1;
            break;
        case 'h':
            usage_restore(stdout);
            return 0;
        default:
            usage_restore(stderr);
            return 2;
        }
    }
    if (!from || optind != argc) {
        usage_restore(stderr);
        return 2;
    }
    tally__config_t *cfg;
    int rc = load_config(config, &cfg);
    if (rc)
        return 1;
    const char *dir = cfg->storage.dir;
    rc = tally__store_restore(from, dir, force);
    if (rc == 0)
        printf("restored %s into %s (%.2f MiB)\n", from, dir, (double)data_size(dir) / MIB);
    else if (rc == TALLY_EBUSY)
        fprintf(stderr,
                "tallyctl restore: refused: a running tallyd owns %s (%s/tally.lock is "
                "locked); stop it first\n",
                dir, dir);
    else if (rc == TALLY_EEXISTS)
        fprintf(stderr,
                "tallyctl restore: refused: %s already holds a store with records; "
                "use --force to replace it\n",
                dir);
    else if (rc == -ENOENT)
        fprintf(stderr, "tallyctl restore: no backup in %s (%s/data.mdb is missing)\n", from, from);
    else if (rc == TALLY_ECORRUPT)
        fprintf(stderr,
                "tallyctl restore: %s is not a tally store of this version; the store "
                "in %s is unchanged\n",
                from, dir);
    else if (rc == TALLY_EINVAL)
        fprintf(stderr, "tallyctl restore: --from %s is the store directory itself\n", from);
    else
        fprintf(stderr, "tallyctl restore: %s -> %s: %s\n", from, dir, tally_strerror(rc));
    tally__config_destroy(cfg);
    return rc ? 1 : 0;
}

static void
usage_compact(FILE *fp)
{
    fprintf(fp, "usage: tallyctl compact --config FILE [--out DIR] [--json]\n"
                "  Offline compaction, with tallyd stopped (refused while it runs): writes a\n"
                "  compacted copy of the store (free pages dropped) and renames it over\n"
                "  [storage] dir/data.mdb in one step, or with --out writes it to DIR/data.mdb\n"
                "  (DIR must be missing or empty) and leaves the store alone.\n"
                "  --json  print {\"dir\", \"out\", \"bytes_before\", \"bytes_after\"}\n"
                "Exit status 0 when compacted, 1 when refused or failed, 2 for bad usage.\n");
}

static int
cmd_compact(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *config = NULL, *outdir = NULL;
    int opt, json = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:o:h", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage_compact(stdout);
            return 0;
        default:
            usage_compact(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage_compact(stderr);
        return 2;
    }
    if (outdir) {
        int ne = dir_nonempty(outdir);
        if (ne != 0) {
            fprintf(stderr, "tallyctl compact: %s: %s\n", outdir,
                    ne < 0 ? strerror(errno) : "exists and is not empty");
            return 1;
        }
    }
    tally__config_t *cfg;
    int rc = load_config(config, &cfg);
    if (rc)
        return 1;
    const char *dir = cfg->storage.dir;
    uint64_t before = 0, after = 0;
    rc = tally__store_compact(dir, outdir, &before, &after);
    if (rc == 0 && json) {
        fputs("{\"dir\":", stdout);
        json_str(stdout, dir, strlen(dir));
        fputs(",\"out\":", stdout);
        if (outdir)
            json_str(stdout, outdir, strlen(outdir));
        else
            fputs("null", stdout);
        printf(",\"bytes_before\":%llu,\"bytes_after\":%llu}\n", (unsigned long long)before,
               (unsigned long long)after);
    } else if (rc == 0) {
        printf("compacted %s%s%s: %.2f MiB -> %.2f MiB\n", dir, outdir ? " into " : "",
               outdir ? outdir : "", (double)before / MIB, (double)after / MIB);
    } else if (rc == TALLY_EBUSY) {
        fprintf(stderr,
                "tallyctl compact: refused: a running tallyd owns %s (%s/tally.lock is "
                "locked); stop it first, or use tallyctl backup, which works online\n",
                dir, dir);
    } else if (rc == -ENOENT) {
        fprintf(stderr, "tallyctl compact: no store in %s\n", dir);
    } else {
        fprintf(stderr, "tallyctl compact: %s: %s\n", dir, tally_strerror(rc));
    }
    tally__config_destroy(cfg);
    return rc ? 1 : 0;
}

/* ---- check ----------------------------------------------------------------- */

static void
usage_check(FILE *fp)
{
    fprintf(fp, "usage: tallyctl check (--config FILE | --dir DIR)\n"
                "  Verify a store read-only: every page of data.mdb, every record's format,\n"
                "  and data.mdb against DIR/tally.id. Prints one line per finding (DAMAGE,\n"
                "  note, ok) and a result line. Safe while tallyd runs (one read snapshot).\n"
                "  --config FILE  the store of [storage] dir\n"
                "  --dir DIR      the store in DIR\n"
                "Exit status 0 when sound, 1 when damaged or not checkable, 2 for bad usage.\n");
}

static int
cmd_check(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"dir", required_argument, NULL, 'd'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *config = NULL, *dir = NULL;
    int opt, by_config = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:d:h", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            by_config = 1;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'h':
            usage_check(stdout);
            return 0;
        default:
            usage_check(stderr);
            return 2;
        }
    }
    if (optind != argc || (dir && by_config)) {
        usage_check(stderr);
        return 2;
    }
    tally__config_t *cfg = NULL;
    if (!dir) {
        if (load_config(config, &cfg) != 0)
            return 1;
        dir = cfg->storage.dir;
    }
    int rc = tally__store_check(dir, stdout);
    tally__config_destroy(cfg);
    return rc ? 1 : 0;
}

/* ---- a small blocking HTTP/1.1 client for the online commands ----------- */

typedef struct http_resp {
    int status;
    char *body;
    size_t len;
} http_resp_t;

/* url: http://HOST:PORT[/prefix]. Returns 0 or -1 with a message printed. */
static int
http_call(const char *url, const char *method, const char *path, const char *token,
          const char *body, http_resp_t *out)
{
    char host[256], port[16] = "80";
    memset(out, 0, sizeof *out);
    if (strncmp(url, "http://", 7) != 0) {
        fprintf(stderr, "tallyctl: --url must start with http:// (got %s)\n", url);
        return -1;
    }
    const char *h = url + 7, *end = h + strcspn(h, "/");
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= sizeof host) {
        fprintf(stderr, "tallyctl: bad host in --url %s\n", url);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (colon) {
        size_t pl = (size_t)(end - colon - 1);
        if (pl == 0 || pl >= sizeof port) {
            fprintf(stderr, "tallyctl: bad port in --url %s\n", url);
            return -1;
        }
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        fprintf(stderr, "tallyctl: %s: %s\n", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        fprintf(stderr, "tallyctl: cannot connect to %s: %s\n", url, strerror(errno));
        return -1;
    }
    char *req = NULL;
    size_t blen = body ? strlen(body) : 0;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, host, token ? "Authorization: APIToken " : "",
                     token ? token : "", token ? "\r\n" : "", blen, body ? body : "");
    if (n < 0 || write(fd, req, (size_t)n) != n) {
        fprintf(stderr, "tallyctl: cannot send the request: %s\n", strerror(errno));
        free(req);
        close(fd);
        return -1;
    }
    free(req);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !sep) {
        fprintf(stderr, "tallyctl: not an HTTP response from %s\n", url);
        free(buf);
        return -1;
    }
    out->status = atoi(buf + 9);
    out->len = len - (size_t)(sep + 4 - buf);
    out->body = malloc(out->len + 1);
    memcpy(out->body, sep + 4, out->len);
    out->body[out->len] = '\0';
    free(buf);
    return 0;
}

static int
report_http_error(const char *what, const http_resp_t *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
    fprintf(stderr, "tallyctl %s: HTTP %d: %s\n", what, r->status, msg ? msg : r->body);
    json_decref(j);
    return 1;
}

/* ---- usage ---------------------------------------------------------------- */

static int
cmd_usage(int argc, char **argv)
{
    static const struct option lo[] = {
        {"url", required_argument, NULL, 'u'},  {"token", required_argument, NULL, 'T'},
        {"ns", required_argument, NULL, 'n'},   {"from", required_argument, NULL, 'f'},
        {"to", required_argument, NULL, 't'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0}};
    const char *url = NULL, *token = NULL, *ns = NULL, *from = NULL, *to = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'T': token = optarg; break;
        case 'n': ns = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: tallyctl usage --url URL --token T --ns NS [--from T] [--to T] [--json]\n"
                   "  Usage per metric and object over [from, to) (default: month to date),\n"
                   "  from POST /api/web/namespaces/NS/usage_details. NS 'system' = every namespace.\n"
                   "  --from/--to: RFC 3339 or unix seconds.\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!url || !token || !ns || optind != argc) {
        fprintf(stderr, "usage: tallyctl usage --url URL --token T --ns NS [--from T] [--to T] [--json]\n");
        return 2;
    }
    json_t *req = json_object();
    char when[TALLY_TIME_RFC3339_LEN];
    int64_t ms;
    const char *ends[2] = {from, to}, *keys[2] = {"from", "to"};
    for (int i = 0; i < 2; i++) {
        if (!ends[i])
            continue;
        if (tally__time_parse_any(ends[i], &ms) != 0) {
            fprintf(stderr, "tallyctl usage: --%s: not RFC 3339 or unix seconds: %s\n", keys[i], ends[i]);
            json_decref(req);
            return 2;
        }
        tally__time_format_rfc3339(ms / 1000, when, sizeof when);
        json_object_set_new(req, keys[i], json_string(when));
    }
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    char path[256];
    snprintf(path, sizeof path, "/api/web/namespaces/%s/usage_details", ns);
    http_resp_t r;
    int rc = http_call(url, "POST", path, token, body, &r);
    free(body);
    if (rc)
        return 1;
    if (r.status != 200) {
        report_http_error("usage", &r);
        free(r.body);
        return 1;
    }
    if (json) {
        fputs(r.body, stdout);
        fputc('\n', stdout);
        free(r.body);
        return 0;
    }
    json_t *j = json_loads(r.body, 0, NULL);
    free(r.body);
    json_t *items = j ? json_object_get(j, "usage_items") : NULL;
    if (!json_is_array(items)) {
        fprintf(stderr, "tallyctl usage: unexpected response\n");
        json_decref(j);
        return 1;
    }
    printf("%-20s %-24s %-24s %20s  %-12s %-22s %-20s %-20s\n", "NAMESPACE", "METRIC", "OBJECT",
           "QUANTITY", "UNIT", "USAGE TYPE", "FROM", "TO");
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        json_t *q = json_object_get(it, "quantity");
        char qs[64];
        if (json_is_integer(q))
            snprintf(qs, sizeof qs, "%lld", (long long)json_integer_value(q));
        else
            snprintf(qs, sizeof qs, "%.6g", json_number_value(q));
#define S(k) (json_string_value(json_object_get(it, k)) ? json_string_value(json_object_get(it, k)) : "")
        printf("%-20s %-24s %-24s %20s  %-12s %-22s %-20s %-20s\n", S("namespace"),
               S("metric_label"), S("object_name")[0] ? S("object_name") : "-", qs, S("unit_name"),
               S("usage_type"), S("start_timestamp"), S("end_timestamp"));
#undef S
    }
    json_decref(j);
    return 0;
}

/* ---- stats ---------------------------------------------------------------- */

static double
metric_value(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static double
metric_sum(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    double sum = 0;
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, n) == 0 && p[n] == '{') {
            const char *sp = strchr(p, '}');
            if (sp)
                sum += strtod(sp + 1, NULL);
        }
    }
    return sum;
}

static int
cmd_stats(int argc, char **argv)
{
    static const struct option lo[] = {{"url", required_argument, NULL, 'u'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *url = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            printf("usage: tallyctl stats --url URL [--json]\n"
                   "  The daemon's key counters, read from GET /metrics.\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!url || optind != argc) {
        fprintf(stderr, "usage: tallyctl stats --url URL [--json]\n");
        return 2;
    }
    http_resp_t r;
    if (http_call(url, "GET", "/metrics", NULL, NULL, &r))
        return 1;
    if (r.status != 200) {
        report_http_error("stats", &r);
        free(r.body);
        return 1;
    }
    static const struct {
        const char *key, *metric, *label;
        int sum;
    } rows[] = {
        {"events", "tally_ingest_events_total", "events accepted", 0},
        {"events_committed", "tally_ingest_events_committed_total", "events committed", 0},
        {"batches", "tally_ingest_batches_total", "batches accepted", 0},
        {"duplicate_batches", "tally_ingest_duplicate_batches_total", "duplicate batches", 0},
        {"rejected", "tally_ingest_rejected_total", "rejected (all reasons)", 1},
        {"series", "tally_series_active", "series", 0},
        {"producers", "tally_producers", "producers", 0},
        {"producer_lag", "tally_producer_lag", "batches awaiting commit", 0},
        {"flushes", "tally_flushes_total", "flushes", 0},
        {"flush_errors", "tally_flush_errors_total", "flush errors", 0},
        {"ingest_paused", "tally_ingest_paused", "ingest paused", 0},
        {"store_full", "tally_store_full", "store full", 0},
        {"map_used_bytes", "tally_store_map_used_bytes", "store bytes used", 0},
        {"map_size_bytes", "tally_store_map_size_bytes", "store map size", 0},
        {"http_connections", "tally_http_connections", "HTTP connections", 0},
        {"http_requests", "tally_http_requests_total", "HTTP requests", 1},
        {"uptime_seconds", "tally_uptime_seconds", "uptime seconds", 0},
    };
    if (json)
        fputc('{', stdout);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        double v = rows[i].sum ? metric_sum(r.body, rows[i].metric)
                               : metric_value(r.body, rows[i].metric);
        if (json)
            printf("%s\"%s\":%.17g", i ? "," : "", rows[i].key, v);
        else
            printf("%-26s %18.0f\n", rows[i].label, v);
    }
    if (json)
        puts("}");
    free(r.body);
    return 0;
}

/* ---- plan approve|reject ------------------------------------------------- */

static void
usage_plan(FILE *fp)
{
    fprintf(fp,
            "usage: tallyctl plan approve|reject ID --url URL --token T [--json]\n"
            "  Decide a plan transition waiting for approval (STATE_WAITING_FOR_APPROVAL),\n"
            "  through POST /api/tally/namespaces/system/billing/plan_transitions/ID/DECISION\n"
            "  (an admin token). approve applies it; reject ends it in STATE_FAILED with\n"
            "  reason \"rejected by NAME\". Prints the transition's state (--json: the record).\n"
            "Exit status 0 when tallyd accepted the decision, 1 otherwise.\n");
}

static int
cmd_plan(int argc, char **argv)
{
    static const struct option lo[] = {{"url", required_argument, NULL, 'u'},
                                       {"token", required_argument, NULL, 'T'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *url = NULL, *token = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'T': token = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            usage_plan(stdout);
            return 0;
        default:
            return 2;
        }
    }
    /* getopt moved the operands (DECISION ID) after the options */
    if (!url || !token || argc - optind != 2 ||
        (strcmp(argv[optind], "approve") != 0 && strcmp(argv[optind], "reject") != 0)) {
        usage_plan(stderr);
        return 2;
    }
    const char *decision = argv[optind], *id = argv[optind + 1];
    if (!id[0] || strlen(id) > 128 || strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                 "0123456789-_.") != strlen(id)) {
        fprintf(stderr, "tallyctl plan: '%s' is not a transition id\n", id);
        return 2;
    }
    char path[320];
    snprintf(path, sizeof path, "/api/tally/namespaces/system/billing/plan_transitions/%s/%s", id,
             decision);
    http_resp_t r;
    if (http_call(url, "POST", path, token, "{}", &r))
        return 1;
    if (r.status < 200 || r.status > 299) {
        report_http_error("plan", &r);
        free(r.body);
        return 1;
    }
    if (json) {
        fputs(r.body, stdout);
        fputc('\n', stdout);
    } else {
        json_t *j = json_loads(r.body, 0, NULL);
        const char *state = j ? json_string_value(json_object_get(j, "state")) : NULL;
        const char *reason = j ? json_string_value(json_object_get(j, "reason")) : NULL;
        printf("plan transition %s: %s%s%s\n", id, state ? state : "?", reason ? " - " : "",
               reason ? reason : "");
        json_decref(j);
    }
    free(r.body);
    return 0;
}

/* ---- invoice close|pay|cancel|refund --------------------------------------- */

static void
usage_invoice(FILE *fp)
{
    fprintf(fp,
            "usage: tallyctl invoice close --month YYYY-MM --url URL --token T [--json]\n"
            "       tallyctl invoice pay|cancel|refund NAME --url URL --token T [--json]\n"
            "  close: freeze the invoice of a month that has ended (STATUS_ISSUED), through\n"
            "         POST /api/tally/namespaces/system/invoices/close; closing a month again\n"
            "         returns the invoice it already has.\n"
            "  pay|cancel|refund NAME (e.g. inv-2026-10): change an invoice's status through\n"
            "         POST /api/tally/namespaces/system/invoices/NAME/ACTION: pay and cancel\n"
            "         take STATUS_ISSUED or OVERDUE, refund takes STATUS_PAID.\n"
            "  Needs an admin token. Prints the invoice's name, status and amount\n"
            "  (--json: the response).\n"
            "Exit status 0 when tallyd accepted the request, 1 otherwise, 2 for bad usage.\n");
}

static int
cmd_invoice(int argc, char **argv)
{
    static const struct option lo[] = {{"url", required_argument, NULL, 'u'},
                                       {"token", required_argument, NULL, 'T'},
                                       {"month", required_argument, NULL, 'm'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *url = NULL, *token = NULL, *month = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'u': url = optarg; break;
        case 'T': token = optarg; break;
        case 'm': month = optarg; break;
        case 'j': json = 1; break;
        case 'h':
            usage_invoice(stdout);
            return 0;
        default:
            usage_invoice(stderr);
            return 2;
        }
    }
    if (!url || !token || optind >= argc) {
        usage_invoice(stderr);
        return 2;
    }
    const char *action = argv[optind];
    char path[320], *body = NULL;
    if (strcmp(action, "close") == 0) {
        if (!month || argc - optind != 1) {
            usage_invoice(stderr);
            return 2;
        }
        json_t *req = json_pack("{s:s}", "month", month);
        body = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        snprintf(path, sizeof path, "/api/tally/namespaces/system/invoices/close");
    } else if (strcmp(action, "pay") == 0 || strcmp(action, "cancel") == 0 ||
               strcmp(action, "refund") == 0) {
        if (month || argc - optind != 2) {
            usage_invoice(stderr);
            return 2;
        }
        const char *name = argv[optind + 1];
        if (!name[0] || strlen(name) > 64 ||
            strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name)) {
            fprintf(stderr, "tallyctl invoice: '%s' is not an invoice name (inv-YYYY-MM)\n", name);
            return 2;
        }
        snprintf(path, sizeof path, "/api/tally/namespaces/system/invoices/%s/%s", name, action);
        body = strdup("{}");
    } else {
        usage_invoice(stderr);
        return 2;
    }
    if (!body) {
        fprintf(stderr, "tallyctl invoice: out of memory\n");
        return 1;
    }
    http_resp_t r;
    int rc = http_call(url, "POST", path, token, body, &r);
    free(body);
    if (rc)
        return 1;
    if (r.status < 200 || r.status > 299) {
        report_http_error("invoice", &r);
        free(r.body);
        return 1;
    }
    if (json) {
        fputs(r.body, stdout);
        fputc('\n', stdout);
    } else {
        json_t *j = json_loads(r.body, 0, NULL);
        json_t *inv = json_object_get(j, "invoice");
        const char *name = json_string_value(json_object_get(inv, "name"));
        const char *status = json_string_value(json_object_get(inv, "status"));
        const char *amount = json_string_value(json_object_get(inv, "amount"));
        const char *cur = json_string_value(json_object_get(inv, "currency"));
        json_t *created = json_object_get(j, "created");
        printf("invoice %s: %s total_cents=%s %s%s\n", name ? name : "?", status ? status : "?",
               amount ? amount : "?", cur ? cur : "",
               json_is_false(created) ? " (already closed)" : "");
        json_decref(j);
    }
    free(r.body);
    return 0;
}

/* ---- watch ---------------------------------------------------------------- */

static void
usage_watch(FILE *fp)
{
    fprintf(fp,
            "usage: tallyctl watch --endpoint EP [--ns NS] [--json] [--count N] [--timeout S]\n"
            "  Print quota alerts (alert_v1) from tallyd's [quota] alerts PUB socket, one line\n"
            "  per alert, as they arrive.\n"
            "  --endpoint EP  the alerts endpoint (ipc://... or tcp://...)\n"
            "  --ns NS        only alerts of namespace NS (default: every namespace)\n"
            "  --json         one JSON object per line: namespace, key, level, usage, limit,\n"
            "                 timestamp (RFC 3339) and timestamp_ms\n"
            "  --count N      exit 0 after N alerts (default: run until interrupted)\n"
            "  --timeout S    exit 1 when S seconds pass before --count alerts arrived\n"
            "Messages that are not valid alert_v1 are skipped with a note on stderr.\n");
}

static void
print_alert(const tally__wire_alert_t *al, int json)
{
    char ts[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(al->ts_ms / 1000, ts, sizeof ts);
    if (json) {
        json_t *o = json_pack("{s:s%,s:s%,s:s,s:f,s:f,s:s,s:I}", "namespace", al->ns.p,
                              (size_t)al->ns.len, "key", al->key.p, (size_t)al->key.len, "level",
                              tally__alert_level_name(al->level), "usage", al->usage, "limit",
                              al->limit, "timestamp", ts, "timestamp_ms", (json_int_t)al->ts_ms);
        char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (t)
            printf("%s\n", t);
        free(t);
        json_decref(o);
    } else {
        printf("%s %.*s %.*s %s usage=%.17g limit=%.17g", ts, (int)al->ns.len, al->ns.p,
               (int)al->key.len, al->key.p, tally__alert_level_name(al->level), al->usage,
               al->limit);
        if (al->limit > 0)
            printf(" (%.1f%%)", 100.0 * al->usage / al->limit);
        printf("\n");
    }
    fflush(stdout);
}

static int
cmd_watch(int argc, char **argv)
{
    static const struct option lo[] = {{"endpoint", required_argument, NULL, 'e'},
                                       {"ns", required_argument, NULL, 'n'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"count", required_argument, NULL, 'c'},
                                       {"timeout", required_argument, NULL, 't'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *ep = NULL, *ns = NULL;
    int json = 0, opt;
    long long count = 0, timeout_s = 0;
    char *end;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'e':
            ep = optarg;
            break;
        case 'n':
            ns = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'c':
            count = strtoll(optarg, &end, 10);
            if (*end || count < 1) {
                fprintf(stderr, "tallyctl watch: --count wants a positive integer\n");
                return 2;
            }
            break;
        case 't':
            timeout_s = strtoll(optarg, &end, 10);
            if (*end || timeout_s < 1 || timeout_s > 86400 * 365) {
                fprintf(stderr, "tallyctl watch: --timeout wants a positive number of seconds\n");
                return 2;
            }
            break;
        case 'h':
            usage_watch(stdout);
            return 0;
        default:
            usage_watch(stderr);
            return 2;
        }
    }
    if (!ep || optind != argc) {
        usage_watch(stderr);
        return 2;
    }
    if (ns && !tally__valid_ns(ns, strlen(ns))) {
        fprintf(stderr, "tallyctl watch: '%s' is not a namespace ([a-z0-9-], 1..64 bytes)\n", ns);
        return 2;
    }
    int sock = nn_socket(AF_SP, NN_SUB);
    if (sock < 0) {
        fprintf(stderr, "tallyctl watch: socket: %s\n", nn_strerror(nn_errno()));
        return 1;
    }
    int status = 1;
    /* the NUL ends the topic, so "demo" does not also match "demo-2" */
    if (nn_setsockopt(sock, NN_SUB, NN_SUB_SUBSCRIBE, ns ? ns : "", ns ? strlen(ns) + 1 : 0) < 0 ||
        nn_connect(sock, ep) < 0) {
        fprintf(stderr, "tallyctl watch: %s: %s\n", ep, nn_strerror(nn_errno()));
        goto out;
    }
    int tick_ms = 200;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &tick_ms, sizeof tick_ms);
    int64_t deadline = timeout_s ? tally__time_mono_ms() + timeout_s * 1000 : 0;
    long long seen = 0;
    for (;;) {
        if (deadline && tally__time_mono_ms() >= deadline) {
            fprintf(stderr, "tallyctl watch: timed out after %lld alert(s)\n", seen);
            goto out;
        }
        void *msg = NULL;
        int n = nn_recv(sock, &msg, NN_MSG, 0);
        if (n < 0) {
            int e = nn_errno();
            if (e == ETIMEDOUT || e == EAGAIN || e == EINTR)
                continue;
            fprintf(stderr, "tallyctl watch: receive: %s\n", nn_strerror(e));
            goto out;
        }
        tally__wire_alert_t al;
        if (tally__decode_alert(msg, (size_t)n, &al) != 0) {
            fprintf(stderr, "tallyctl watch: skipped a message that is not a valid alert_v1 "
                            "(%d bytes)\n", n);
        } else {
            print_alert(&al, json);
            seen++;
        }
        nn_freemsg(msg);
        if (count && seen >= count)
            break;
    }
    status = 0;
out:
    nn_close(sock);
    return status;
}

/* ---- keygen ------------------------------------------------------------ */

static void
usage_keygen(FILE *fp)
{
    fprintf(fp, "usage: tallyctl keygen NAME --ns NS[,NS...] [--json]\n"
                "  Make a new emitter credential called NAME ([A-Za-z0-9_.-]{1,64}) that may\n"
                "  send events into the namespaces NS (or '*' for all; never 'system').\n"
                "  Prints the line to add to tallyd's tokens file (it holds only a key derived\n"
                "  from the secret) and the credential NAME:SECRET for the emitter: give it to\n"
                "  the emitter in a file of mode 0600 (tallyctl emit --key-file, libtally's\n"
                "  tally_client_options_t.credential) or as TALLY_KEY, and as the HTTP door's\n"
                "  'Authorization: Bearer NAME:SECRET'. tallyd takes the new line on SIGHUP.\n"
                "  --json  print {\"tokens_line\": ..., \"credential\": ...}\n");
}

static int
valid_ns_list(const char *s)
{
    if (strcmp(s, "*") == 0)
        return 1;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (!tally__valid_ns(p, len) || (len == 6 && memcmp(p, "system", 6) == 0))
            return 0;
        p += len;
        if (comma)
            p++;
        if (comma && !*p)
            return 0;
    }
    return p != s;
}

static int
cmd_keygen(int argc, char **argv)
{
    static const struct option lo[] = {{"ns", required_argument, NULL, 'n'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *ns = NULL;
    int json = 0, opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (opt) {
        case 'n':
            ns = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            usage_keygen(stdout);
            return 0;
        default:
            usage_keygen(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || !ns) {
        usage_keygen(stderr);
        return 2;
    }
    const char *name = argv[optind];
    if (!tally__cred_valid_name(name, strlen(name))) {
        fprintf(stderr, "tallyctl keygen: bad name (expected [A-Za-z0-9_.-], 1..%d bytes)\n",
                TALLY__CRED_MAX_NAME);
        return 2;
    }
    if (!valid_ns_list(ns)) {
        fprintf(stderr, "tallyctl keygen: --ns: '*' or namespaces [a-z0-9-]{1,64} separated by "
                        "commas, not 'system'\n");
        return 2;
    }
    char cred[TALLY__CRED_MAX_NAME + 2 + TALLY__CRED_SECRET_B64 + 1];
    uint8_t key[TALLY__CRED_KEY_LEN];
    char hex[2 * TALLY__CRED_KEY_LEN + 1];
    if (tally__cred_generate(name, cred, sizeof cred, key) != 0) {
        fprintf(stderr, "tallyctl keygen: cannot make a credential\n");
        return 1;
    }
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    if (json)
        printf("{\"tokens_line\": \"%s emitter %s mac:%s\", \"credential\": \"%s\"}\n", name, ns,
               hex, cred);
    else
        printf("# add to the tokens file (auth.tokens_file), then: systemctl reload tallyd\n"
               "%s emitter %s mac:%s\n"
               "# the emitter's credential (keep it secret: a file of mode 0600, or TALLY_KEY)\n"
               "%s\n",
               name, ns, hex, cred);
    sodium_memzero(cred, sizeof cred);
    sodium_memzero(key, sizeof key);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "emit") == 0)
        return cmd_emit(argc - 1, argv + 1);
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(argc - 1, argv + 1);
    if (strcmp(cmd, "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0)
        return cmd_backup(argc - 1, argv + 1);
    if (strcmp(cmd, "restore") == 0)
        return cmd_restore(argc - 1, argv + 1);
    if (strcmp(cmd, "compact") == 0)
        return cmd_compact(argc - 1, argv + 1);
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tallyctl %s\n", TALLY_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "usage") == 0)
        return cmd_usage(argc - 1, argv + 1);
    if (strcmp(cmd, "stats") == 0)
        return cmd_stats(argc - 1, argv + 1);
    if (strcmp(cmd, "watch") == 0)
        return cmd_watch(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "invoice") == 0)
        return cmd_invoice(argc - 1, argv + 1);
    fprintf(stderr, "tallyctl: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
