/* tallyctl.c — the tally command-line tool: emit events, dump rollups from the store, back it up. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "rollup.h"
#include "store.h"
#include "tally/tally.h"
#include "timeutil.h"

static void
usage_main(FILE *fp)
{
    fprintf(fp,
            "usage: tallyctl COMMAND [OPTIONS]\n"
            "commands:\n"
            "  emit     send events through libtally and wait for their ack\n"
            "  dump     print rollups straight from the store (read-only)\n"
            "  backup   consistent, compacted copy of the store while tallyd runs\n"
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
            "  --batch N        events per batch (default 100)\n"
            "  --rate N         at most N events per second (default: as fast as acked)\n"
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
        {"json", no_argument, NULL, 'j'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *endpoint = NULL, *acks = NULL, *value = NULL, *producer = NULL;
    tally_event_t ev = {0};
    tally_label_t labels[TALLY_MAX_LABELS];
    char *label_store[TALLY_MAX_LABELS] = {0};
    long long count = 1, batch = 100, rate = 0, timeout_s = 60;
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
            labels[ev.nlabels].value = dup + (eq - optarg) + 1;
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
    tally_client_options_t o = {.ack_endpoint = acks, .batch_events = (uint32_t)batch};
    tally_client_t *c;
    int rc = tally_client_create(endpoint, producer, &o, &c);
    if (rc) {
        fprintf(stderr, "tallyctl emit: %s: %s\n", endpoint, tally_strerror(rc));
        goto out;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    double deadline = (double)t0.tv_sec + t0.tv_nsec / 1e9 + (double)timeout_s;
    long long sent = 0;
    while (sent < count) {
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

static int
open_store_from_config(const char *config, int readonly, tally__config_t **cfg,
                       tally__store_t **store)
{
    char err[1024];
    int rc = tally__config_load(config, cfg, err, sizeof err);
    if (rc) {
        fprintf(stderr, "tallyctl: %s\n", err);
        return rc;
    }
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

/* ---- backup ------------------------------------------------------------ */

static int
cmd_backup(int argc, char **argv)
{
    static const struct option lo[] = {{"config", required_argument, NULL, 'c'},
                                       {"out", required_argument, NULL, 'o'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *config = NULL, *outdir = NULL;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "c:o:h", lo, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config = optarg;
            break;
        case 'o':
            outdir = optarg;
            break;
        case 'h':
            printf("usage: tallyctl backup --config FILE --out DIR\n"
                   "  Consistent, compacted copy of the store (LMDB copy) while tallyd runs.\n");
            return 0;
        default:
            return 2;
        }
    }
    if (!outdir) {
        fprintf(stderr, "usage: tallyctl backup --config FILE --out DIR\n");
        return 2;
    }
    tally__config_t *cfg;
    tally__store_t *store;
    if (open_store_from_config(config, 1, &cfg, &store) != 0)
        return 1;
    int rc = tally__store_backup(store, outdir);
    tally__store_close(store);
    tally__config_destroy(cfg);
    if (rc) {
        fprintf(stderr, "tallyctl backup: %s: %s\n", outdir, tally_strerror(rc));
        return 1;
    }
    printf("backup written to %s\n", outdir);
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
    if (strcmp(cmd, "dump") == 0)
        return cmd_dump(argc - 1, argv + 1);
    if (strcmp(cmd, "backup") == 0)
        return cmd_backup(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("tallyctl %s\n", TALLY_VERSION);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage_main(stdout);
        return 0;
    }
    if (strcmp(cmd, "usage") == 0 || strcmp(cmd, "stats") == 0) {
        fprintf(stderr, "tallyctl %s: needs the HTTP API, which this build does not serve yet\n",
                cmd);
        return 2;
    }
    fprintf(stderr, "tallyctl: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
