#!/bin/sh
# bench_events.sh — HTTP door benchmark: POST /api/v1/events driven by wrk on one thread, (a)
# one CloudEvent per request and (b) batches of 100, every event with a unique id
# (bench/events_single.lua, bench/events_batch.lua), each answered 204 once committed. Prints
# req/s, events/s and latency p50/p99 against the targets (>= 25k req/s single, >= 250k
# events/s batched, p99 <= 2 x flush.interval_ms), then checks offline that the store holds at
# least every event wrk saw answered (wrk drops the answers still pending when it stops).
# Usage: bench/bench_events.sh [BUILD_DIR]   (needs wrk; installs the Debian package if root)
# Knobs: DUR seconds per run (10), FLUSH_MS (flush.interval_ms, 10), C_SINGLE connections for
# single events (1000), C_BATCH connections for batches (32), BATCH events per request (100).
set -eu
B=${1:-build}/bin
DUR=${DUR:-10}
FLUSH_MS=${FLUSH_MS:-10}
C_SINGLE=${C_SINGLE:-1000}
C_BATCH=${C_BATCH:-32}
BATCH=${BATCH:-100}
T=$(mktemp -d /tmp/tally-bench-events-XXXXXX)
TP=0
cleanup() {
    [ "$TP" -ne 0 ] && kill "$TP" 2>/dev/null && wait "$TP" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
if ! command -v wrk >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench_events: installing wrk (apt-get install -y wrk)" >&2
        apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null 2>&1 && apt-get install -y wrk >/dev/null 2>&1; } || true
    fi
    command -v wrk >/dev/null || { echo "bench_events: needs wrk (Debian package wrk)" >&2; exit 2; }
fi
SRC=$(cd "$(dirname "$0")/.." && pwd)
PORT=$((10000 + $$ % 20000)) # below the ephemeral range (32768+)
export TALLY_STORAGE_DIR=$T/store TALLY_INGEST_LISTEN=ipc://$T/ingest \
    TALLY_INGEST_ACKS=ipc://$T/ingest.acks TALLY_QUOTA_ALERTS=ipc://$T/alerts \
    TALLY_HTTP_LISTEN=127.0.0.1:$PORT TALLY_AUTH_TOKENS_FILE=$SRC/config/tokens \
    TALLY_BILLING_METRICS_FILE=$SRC/config/metrics.ini TALLY_FLUSH_INTERVAL_MS=$FLUSH_MS \
    TALLY_HTTP_MAX_CONNECTIONS=4096 TALLY_HTTP_MAX_CONNECTIONS_PER_ADDRESS=0
# the development emitter of config/tokens (every namespace)
export TALLY_KEY="dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
"$B/tallyd" -c "$SRC/config/tallyd.conf" 2>"$T/tallyd.log" &
TP=$!
i=0
until grep -q "msg=ready" "$T/tallyd.log"; do
    i=$((i + 1)); [ $i -gt 100 ] && { cat "$T/tallyd.log"; exit 1; }; sleep 0.1
done
URL=http://127.0.0.1:$PORT
# one event by curl first: the door answers 204
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $TALLY_KEY" \
    -H 'Content-Type: application/cloudevents+json' \
    -d '{"specversion":"1.0","id":"warm-1","source":"bench","type":"api_calls","subject":"warm","data":{"value":1}}' \
    "$URL/api/v1/events")
[ "$STATUS" = 204 ] || { echo "bench_events: POST /api/v1/events answered $STATUS" >&2; exit 1; }

ANSWERED=0
run() { # name script connections events-per-request
    out=$(EV_PREFIX="$1-$$" EV_BATCH=$4 wrk -t1 -c"$3" -d"${DUR}s" --timeout 10s --latency -s "$2" "$URL")
    echo "$out" >"$T/wrk.$1.out"
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    nreq=$(echo "$out" | awk '/requests in/ {print $1}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    errs=$(echo "$out" | awk '/Socket errors/ {print}')
    eps=$(awk -v r="$rps" -v n="$4" 'BEGIN { printf "%.0f", r * n }')
    printf '%-26s c=%-5s %9s req/s %10s events/s  p50 %8s  p99 %8s  %s%s\n' "$1" "$3" "$rps" "$eps" \
        "$p50" "$p99" "${non2xx:+non-2xx: $non2xx }" "$errs"
    ANSWERED=$((ANSWERED + (nreq - ${non2xx:-0}) * $4))
    eval "RPS_$1=$rps EPS_$1=$eps P99_$1=$p99"
}
echo "tallyd $(sed -n 's/.*msg=ready version=\([^ ]*\).*/\1/p' "$T/tallyd.log"), flush.interval_ms=$FLUSH_MS, wrk -t1 for ${DUR}s, $(nproc) cores shared by wrk and tallyd"
run single "$SRC/bench/events_single.lua" "$C_SINGLE" 1
run batch "$SRC/bench/events_batch.lua" "$C_BATCH" "$BATCH"
flush=$(curl -s "$URL/metrics" | awk '/^tally_flush_duration_seconds_sum/ {s = $2} /^tally_flush_duration_seconds_count/ {n = $2}
    END { if (n) printf "%d flushes, mean %.1f ms", n, 1000 * s / n }')
echo "flushes: $flush"

# targets; p99 in ms (wrk prints us, ms or s)
ms() { echo "$1" | awk '/us$/ { printf "%.3f", $1 / 1000; next } /ms$/ { printf "%.3f", $1 + 0; next } /s$/ { printf "%.3f", $1 * 1000 }'; }
verdict() { awk -v a="$2" -v b="$3" -v w="$4" -v what="$1" 'BEGIN {
    ok = (w == "ge") ? (a + 0 >= b + 0) : (a + 0 <= b + 0)
    printf "  %-44s %12s %s %-10s %s\n", what, a, (w == "ge" ? ">=" : "<="), b, (ok ? "met" : "NOT met") }'; }
echo "targets:"
verdict "single events: req/s" "$RPS_single" 25000 ge
verdict "batches of $BATCH: events/s" "$EPS_batch" 250000 ge
verdict "single events: p99 ms (2 x flush)" "$(ms "$P99_single")" $((2 * FLUSH_MS)) le
verdict "batches: p99 ms (2 x flush)" "$(ms "$P99_batch")" $((2 * FLUSH_MS)) le

# offline: every event answered 204 is in the store (plus those whose answer wrk dropped)
kill "$TP"
wait "$TP" 2>/dev/null || true
TP=0
committed=$("$B/tallyctl" dump -c "$SRC/config/tallyd.conf" --json |
    sed -n 's/.*"ns":"bench-[0-9]*".*"count":\([0-9]*\).*/\1/p' | awk '{ n += $1 } END { print n + 0 }')
echo "store: $committed events committed; wrk saw $ANSWERED answered 204"
[ "$committed" -ge "$ANSWERED" ] || { echo "bench_events: events answered 204 are missing from the store" >&2; exit 1; }
