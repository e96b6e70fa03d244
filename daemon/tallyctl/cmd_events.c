/* cmd_events.c — tallyctl's commands on tallyd's nanomsg sockets: emit (events in, through
 * libtally) and watch (quota alerts out). */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "codec.h"
#include "ctl.h"
#include "tally/tally.h"
#include "timeparse.h"
#include "timeutil.h"

#define STR(x) #x
#define XSTR(x) STR(x)

/* ---- emit ------------------------------------------------------------------- */

static const ctl_opt_t emit_opts[] = {
    {"endpoint", 0, CTL_ARG, "EP", "tallyd ingest endpoint (ipc://... or tcp://...)", 1},
    {"acks", 0, CTL_ARG, "EP", "ack endpoint (default: tcp port + 1, or ipc path + .acks)", 0},
    {"ns", 0, CTL_ARG, "NS", "namespace", 1},
    {"metric", 0, CTL_ARG, "M", "metric label", 1},
    {"value", 0, CTL_ARG, "V", "integer or decimal value", 1},
    {"ts", 0, CTL_ARG, "T", "event time (default: now); see TIMES below", 0},
    {"label", 0, CTL_LIST, "k=v", "a label; repeat for more (at most " XSTR(TALLY_MAX_LABELS) ")",
     0},
    {"count", 0, CTL_ARG, "N", "send N events (default 1)", 0},
    {"producer", 0, CTL_ARG, "ID", "producer id (default tallyctl-HOST-PID)", 0},
    {"key-file", 0, CTL_ARG, "FILE",
     "emitter credential NAME:SECRET (from tallyctl keygen); without it, "
     "the environment variable TALLY_KEY; without either, an "
     "unauthenticated v1 batch (ipc endpoints with "
     "ingest.require_auth = false only)",
     0},
    {"batch", 0, CTL_ARG, "N", "events per batch (default 100, at most 4096)", 0},
    {"rate", 0, CTL_ARG, "N", "at most N events per second (default: as fast as acked)", 0},
    {"spread-hours", 0, CTL_ARG, "H",
     "stamp event i at the event time minus (i % H) hours, so the "
     "events cover H hourly buckets (for tests and benchmarks)",
     0},
    {"timeout", 0, CTL_ARG, "S", "give up after S seconds without every ack (default 60)", 0},
    {"json", 0, CTL_FLAG, NULL, "print the result as JSON", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int
parse_value(const char *s, tally_event_t *ev)
{
    char *end;
    errno = 0;
    if (strpbrk(s, ".eEnN")) {
        double d = strtod(s, &end);
        if (end == s || *end || errno || !isfinite(d))
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

/* The emitter credential: from --key-file, else TALLY_KEY, else none ("").
 * Never from the command line itself, where ps shows it. */
static int
read_key(const ctl_args_t *a, char *out)
{
    const char *file = ctl_opt_str(a, "key-file");
    out[0] = '\0';
    if (file)
        return ctl_read_secret(a, "--key-file", file, out);
    const char *env = getenv("TALLY_KEY");
    if (env && *env) {
        if (strlen(env) >= CTL_SECRET_MAX)
            return ctl_fail(a, "TALLY_KEY is too long");
        snprintf(out, CTL_SECRET_MAX, "%s", env);
    }
    return 0;
}

static double
mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Send and wait; returns the exit status. The event is checked already. */
static int
emit_run(const ctl_args_t *a, const char *producer, tally_event_t *ev, long long count,
         long long batch, long long rate, long long timeout_s, long long spread)
{
    char key[CTL_SECRET_MAX];
    if (read_key(a, key) != 0)
        return CTL_EXIT_USAGE;
    const char *endpoint = ctl_opt_str(a, "endpoint");
    tally_client_options_t o = {.ack_endpoint = ctl_opt_str(a, "acks"),
                                .batch_events = (uint32_t)batch,
                                .credential = key[0] ? key : NULL};
    tally_client_t *c;
    int rc = tally_client_create(endpoint, producer, &o, &c);
    sodium_memzero(key, sizeof key);
    if (rc)
        return ctl_fail(a, "%s: %s%s", endpoint, tally_strerror(rc),
                        rc == TALLY_EINVAL && o.credential ? " (is the key NAME:SECRET?)" : "");
    double t0 = mono_s(), deadline = t0 + (double)timeout_s;
    long long sent = 0;
    int64_t base_ts = ev->ts_ms;
    if (spread > 0 && !base_ts)
        base_ts = tally__time_now_ms();
    while (sent < count) {
        if (spread > 0)
            ev->ts_ms = base_ts - (sent % spread) * 3600000;
        double tnow = mono_s();
        if (tnow > deadline)
            break;
        if (rate > 0 && (double)sent > (tnow - t0) * (double)rate) {
            usleep(1000);
            continue;
        }
        rc = tally_emit(c, ev);
        if (rc == TALLY_EFULL) {
            usleep(1000); /* every batch slot waits for an ack: let them come */
            continue;
        }
        if (rc) {
            ctl_fail(a, "%s", tally_strerror(rc));
            break;
        }
        sent++;
    }
    double left = deadline - mono_s();
    rc = tally_flush(c, left > 0 ? (int)(left * 1000) : 0);
    tally_client_stats_t st;
    tally_client_stats(c, &st);
    tally_client_destroy(c);
    int ok = rc == 0 && sent == count;
    if (ctl_opt_flag(a, "json")) {
        json_t *j =
            json_pack("{s:s,s:I,s:b,s:I,s:I,s:I}", "producer", producer, "events", (json_int_t)sent,
                      "acked", ok, "batches", (json_int_t)st.batches, "resends",
                      (json_int_t)st.resends, "unacked_batches", (json_int_t)st.unacked);
        if (ctl_json_print(a, j, JSON_COMPACT) != 0)
            return CTL_EXIT_FAIL;
    } else if (ok) {
        printf("%lld events acked (producer %s, %llu batches, %llu resends)\n", sent, producer,
               (unsigned long long)st.batches, (unsigned long long)st.resends);
    } else {
        ctl_fail(a, "%lld of %lld events sent, %llu batches unacked: %s", sent, count,
                 (unsigned long long)st.unacked, rc ? tally_strerror(rc) : "timed out");
    }
    return ok ? CTL_EXIT_OK : CTL_EXIT_FAIL;
}

static int
run_emit(const ctl_args_t *a)
{
    tally_event_t ev = {0};
    tally_label_t labels[TALLY_MAX_LABELS];
    char *label_store[TALLY_MAX_LABELS] = {0};
    long long count = 1, batch = 100, rate = 0, timeout_s = 60, spread = 0;
    char pbuf[TALLY_MAX_PRODUCER_LEN + 1];
    int status = CTL_EXIT_USAGE;
    const char *l, *value = ctl_opt_str(a, "value"), *producer = ctl_opt_str(a, "producer");
    ev.ns = ctl_opt_str(a, "ns");
    ev.metric = ctl_opt_str(a, "metric");
    ev.labels = labels;
    if (ctl_opt_time(a, "ts", CTL_TIME_START, &ev.ts_ms, NULL) != 0 ||
        ctl_opt_int(a, "count", 1, INT64_MAX, &count) != 0 ||
        ctl_opt_int(a, "batch", 1, TALLY_MAX_BATCH_EVENTS, &batch) != 0 ||
        ctl_opt_int(a, "rate", 0, INT64_MAX, &rate) != 0 ||
        ctl_opt_int(a, "timeout", 1, 86400 * 365, &timeout_s) != 0 ||
        ctl_opt_int(a, "spread-hours", 0, 1000000, &spread) != 0)
        goto out;
    if (ctl_opt_str(a, "ts") && ev.ts_ms <= 0) {
        status = ctl_usage_error(a, "--ts: %s is not after 1970", ctl_opt_str(a, "ts"));
        goto out;
    }
    for (size_t pos = 0; (l = ctl_opt_next(a, "label", &pos)) != NULL;) {
        const char *eq = strchr(l, '=');
        if (!eq || eq == l || ev.nlabels >= TALLY_MAX_LABELS) {
            status = ctl_usage_error(a, "--label: want k=v, at most %d: %s", TALLY_MAX_LABELS, l);
            goto out;
        }
        char *dup = strdup(l);
        if (dup == NULL) {
            status = ctl_fail(a, "out of memory");
            goto out;
        }
        /* label_store owns dup and out: frees it; the analyzer loses track
         * of it through the labels array */
        // NOLINTBEGIN(clang-analyzer-unix.Malloc)
        label_store[ev.nlabels] = dup;
        dup[eq - l] = '\0';
        labels[ev.nlabels].key = dup;
        labels[ev.nlabels].value = dup + (eq - l) + 1;
        ev.nlabels++;
        // NOLINTEND(clang-analyzer-unix.Malloc)
    }
    if (parse_value(value, &ev) != 0) {
        status = ctl_usage_error(a, "--value: not a finite number: %s", value);
        goto out;
    }
    int reason;
    if (tally__event_validate(&ev, &reason) != 0) {
        status = ctl_usage_error(a, "invalid event: namespace [a-z0-9-]{1,64}, metric "
                                    "[A-Za-z0-9_.:-]{1,64}, labels k=v with printable values");
        goto out;
    }
    if (!producer) {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(pbuf, sizeof pbuf, "tallyctl-%.40s-%d", host, (int)getpid());
        producer = pbuf;
    }
    status = emit_run(a, producer, &ev, count, batch, rate, timeout_s, spread);
out:
    for (int i = 0; i < TALLY_MAX_LABELS; i++)
        free(label_store[i]);
    return status;
}

const ctl_cmd_t ctl_cmd_emit = {
    .name = "emit",
    .summary = "send events through libtally and wait for their ack",
    .synopsis = "emit --endpoint EP --ns NS --metric M --value V [options]",
    .description = "  Send events through libtally (signed with an emitter credential when there\n"
                   "  is one) and wait until tallyd has committed and acknowledged every one.\n",
    .epilog = "TIMES: RFC 3339, unix seconds, 2026-11 or 2026-11-05 (its first instant),\n"
              "  today, yesterday, now, or an offset from now such as -30m, -24h, -7d (UTC).\n"
              "Exit status 0 only when every event was acknowledged by tallyd, 1 when not,\n"
              "2 for bad usage.\n",
    .opts = emit_opts,
    .run = run_emit,
};

/* ---- watch ------------------------------------------------------------------ */

static const ctl_opt_t watch_opts[] = {
    {"endpoint", 0, CTL_ARG, "EP", "the alerts endpoint ([quota] alerts: ipc://... or tcp://...)",
     1},
    {"ns", 0, CTL_ARG, "NS", "only alerts of namespace NS (default: every namespace)", 0},
    {"json", 0, CTL_FLAG, NULL,
     "one JSON object per line: namespace, key, level, usage, limit, "
     "timestamp (RFC 3339) and timestamp_ms",
     0},
    {"count", 0, CTL_ARG, "N", "exit 0 after N alerts (default: run until interrupted)", 0},
    {"timeout", 0, CTL_ARG, "S", "exit 1 when S seconds pass before --count alerts arrived", 0},
    {NULL, 0, 0, NULL, NULL, 0},
};

static int
print_alert(const ctl_args_t *a, const tally__wire_alert_t *al)
{
    char ts[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(al->ts_ms / 1000, ts, sizeof ts);
    if (ctl_opt_flag(a, "json")) {
        json_t *o = json_pack("{s:o,s:o,s:s,s:f,s:f,s:s,s:I}", "namespace",
                              ctl_json_stringn(al->ns.p, al->ns.len), "key",
                              ctl_json_stringn(al->key.p, al->key.len), "level",
                              tally__alert_level_name(al->level), "usage", al->usage, "limit",
                              al->limit, "timestamp", ts, "timestamp_ms", (json_int_t)al->ts_ms);
        if (ctl_json_print(a, o, JSON_COMPACT) != 0)
            return -1;
    } else {
        printf("%s %.*s %.*s %s usage=%.17g limit=%.17g", ts, (int)al->ns.len, al->ns.p,
               (int)al->key.len, al->key.p, tally__alert_level_name(al->level), al->usage,
               al->limit);
        if (al->limit > 0)
            printf(" (%.1f%%)", 100.0 * al->usage / al->limit);
        printf("\n");
    }
    fflush(stdout);
    return 0;
}

static int
run_watch(const ctl_args_t *a)
{
    const char *ep = ctl_opt_str(a, "endpoint"), *ns = ctl_opt_str(a, "ns");
    long long count = 0, timeout_s = 0;
    if (ctl_opt_int(a, "count", 1, INT64_MAX, &count) != 0 ||
        ctl_opt_int(a, "timeout", 1, 86400 * 365, &timeout_s) != 0)
        return CTL_EXIT_USAGE;
    if (ns && !tally__valid_ns(ns, strlen(ns)))
        return ctl_usage_error(a, "--ns: '%s' is not a namespace ([a-z0-9-], 1..64 bytes)", ns);
    int sock = nn_socket(AF_SP, NN_SUB);
    if (sock < 0)
        return ctl_fail(a, "socket: %s", nn_strerror(nn_errno()));
    int status = CTL_EXIT_FAIL;
    /* the NUL ends the topic, so "demo" does not also match "demo-2" */
    if (nn_setsockopt(sock, NN_SUB, NN_SUB_SUBSCRIBE, ns ? ns : "", ns ? strlen(ns) + 1 : 0) < 0 ||
        nn_connect(sock, ep) < 0) {
        ctl_fail(a, "%s: %s", ep, nn_strerror(nn_errno()));
        goto out;
    }
    int tick_ms = 200;
    nn_setsockopt(sock, NN_SOL_SOCKET, NN_RCVTIMEO, &tick_ms, sizeof tick_ms);
    int64_t deadline = timeout_s ? tally__time_mono_ms() + timeout_s * 1000 : 0;
    long long seen = 0;
    for (;;) {
        if (deadline && tally__time_mono_ms() >= deadline) {
            ctl_fail(a, "timed out after %lld alert(s)", seen);
            goto out;
        }
        void *msg = NULL;
        int n = nn_recv(sock, &msg, NN_MSG, 0);
        if (n < 0) {
            int e = nn_errno();
            if (e == ETIMEDOUT || e == EAGAIN || e == EINTR)
                continue;
            ctl_fail(a, "receive: %s", nn_strerror(e));
            goto out;
        }
        tally__wire_alert_t al;
        int bad = 0;
        if (tally__decode_alert(msg, (size_t)n, &al) != 0) {
            fprintf(stderr,
                    "tallyctl watch: skipped a message that is not a valid alert_v1 (%d bytes)\n",
                    n);
        } else {
            bad = print_alert(a, &al) != 0;
            seen++;
        }
        nn_freemsg(msg);
        if (bad)
            goto out;
        if (count && seen >= count)
            break;
    }
    status = CTL_EXIT_OK;
out:
    nn_close(sock);
    return status;
}

const ctl_cmd_t ctl_cmd_watch = {
    .name = "watch",
    .summary = "print quota alerts as tallyd publishes them",
    .synopsis = "watch --endpoint EP [--ns NS] [--json] [--count N] [--timeout S]",
    .description = "  Print quota alerts (alert_v1) from tallyd's [quota] alerts PUB socket, one\n"
                   "  line per alert, as they arrive.\n",
    .epilog = "Messages that are not valid alert_v1 are skipped with a note on stderr.\n",
    .opts = watch_opts,
    .run = run_watch,
};
