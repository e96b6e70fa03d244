#!/bin/sh
# bench_reads.sh — usage_details at many series: items/s, response size, tallyd's RSS before and
# during a read, and producers' ack p99 with 0 and 4 concurrent heavy reads.
#
# For each N (default 10000 100000 1000000; SIZES overrides) it loads N
# series of one namespace straight into a fresh store (tally-bench-reads
# load: one record each, distinct `object` labels), starts tallyd on it,
# reads VmRSS, resets the peak (clear_refs 5), reads usage_details once
# (all N items, one connection) and prints items/s, bytes and the peak RSS
# (VmHWM) during the read. At the largest N it then runs one producer
# (tally-bench-reads acks: 2,000 events/s for ACK_S seconds) alone and
# again while 4 readers (4 tokens, so the per-token limit does not refuse
# them) loop usage_details, and prints the ack p50/p99/max.
# Targets (docs/performance.md): >= 1M items/s; peak RSS during a read <=
# RSS before + 32 MiB; ack p99 with 4 reads <= 2 x flush.interval_ms.
# Usage: bench/bench_reads.sh [BUILD_DIR]; bounded to about 2 minutes.
set -eu
B=${1:-build}/bin
SIZES=${SIZES:-"10000 100000 1000000"}
ACK_S=${ACK_S:-8}
T=$(mktemp -d /tmp/tally-bench-reads-XXXXXX)
TP=0
RP=""
cleanup() {
    for p in $RP; do kill "$p" 2>/dev/null || true; done
    [ "$TP" -ne 0 ] && kill "$TP" 2>/dev/null && wait "$TP" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
SRC=$(cd "$(dirname "$0")/.." && pwd)
PORT=$((10000 + $$ % 20000))
H=$B/tally-bench-reads
# four viewers of their own for the concurrent reads, plus the admin
cp "$SRC/config/tokens" "$T/tokens"
for i in 1 2 3 4; do echo "reader$i viewer bench plain:bench-reader-$i-token" >>"$T/tokens"; done
grep -v '^quota\.api' "$SRC/config/plans.ini" >"$T/plans.ini"
export TALLY_BILLING_PLANS_FILE=$T/plans.ini TALLY_INGEST_LISTEN=ipc://$T/ingest \
    TALLY_INGEST_ACKS=ipc://$T/ingest.acks TALLY_QUOTA_ALERTS=ipc://$T/alerts \
    TALLY_HTTP_LISTEN=127.0.0.1:$PORT TALLY_AUTH_TOKENS_FILE=$T/tokens \
    TALLY_BILLING_METRICS_FILE=$SRC/config/metrics.ini TALLY_HTTP_RATE_PER_TOKEN=0 \
    TALLY_STORAGE_MAP_SIZE_MB=${TALLY_STORAGE_MAP_SIZE_MB:-2048}
export TALLY_KEY="dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
FLUSH=$(sed -n 's/^interval_ms *= *\([0-9]*\).*/\1/p' "$SRC/config/tallyd.conf" | head -1)
: "${FLUSH:=100}"
BODY='{}'
PATHU=/api/web/namespaces/bench/usage_details
kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$TP/status"; }
# CPU time tallyd used so far, in clock ticks (utime + stime): on a shared
# machine, items per CPU second is what "on one core" means
ticks() { awk '{print $14 + $15}' "/proc/$TP/stat"; }
HZ=$(getconf CLK_TCK)
start() {
    export TALLY_STORAGE_DIR=$1
    "$B/tallyd" -c "$SRC/config/tallyd.conf" 2>"$T/tallyd.log" &
    TP=$!
    i=0
    until grep -q "msg=ready" "$T/tallyd.log"; do
        i=$((i + 1)); [ $i -gt 300 ] && { cat "$T/tallyd.log"; exit 1; }; sleep 0.1
    done
}
stop() { kill "$TP"; wait "$TP" 2>/dev/null || true; TP=0; }
echo "bench_reads: usage_details of one namespace, N series with distinct objects"
for N in $SIZES; do
    rm -rf "$T/store"
    "$H" load "$T/store" "$N" 2>"$T/load.log" || { cat "$T/load.log"; exit 1; }
    start "$T/store"
    # one small read first: first-use allocations are not the read's
    "$H" read "$PORT" dev-admin-token /api/web/namespaces/none/usage_details "$BODY" >/dev/null
    before=$(kb VmRSS)
    echo 5 >"/proc/$TP/clear_refs" 2>/dev/null || true
    c0=$(ticks)
    # VmHWM counts the store's pages mapped by the read (file-backed, the
    # page cache's); the heap is RssAnon, whose peak a sampler keeps
    anon0=$(kb RssAnon)
    ( m=0; while :; do a=$(kb RssAnon 2>/dev/null || echo 0); [ "${a:-0}" -gt $m ] && m=$a && echo $m >"$T/anonpeak"; sleep 0.02; done ) &
    SP=$!
    out=$("$H" read "$PORT" dev-admin-token "$PATHU" "$BODY")
    kill $SP 2>/dev/null; wait $SP 2>/dev/null || true
    c1=$(ticks)
    peak=$(kb VmHWM)
    anonpeak=$(cat "$T/anonpeak" 2>/dev/null || echo 0)
    cpu_ms=$(((c1 - c0) * 1000 / HZ))
    echo "  N=$N $out cpu_ms=$cpu_ms items_per_cpu_s=$([ "$cpu_ms" -gt 0 ] && echo $((N * 1000 / cpu_ms)) || echo -)" \
        "rss_before_kib=$before rss_peak_kib=$peak growth_kib=$((peak - before))" \
        "anon_before_kib=$anon0 anon_peak_kib=$anonpeak anon_growth_kib=$((anonpeak - anon0))"
    LAST=$N
    [ "$N" = "$(echo "$SIZES" | awk '{print $NF}')" ] || stop
done
echo "bench_reads: producer acks (flush.interval_ms=$FLUSH) at N=$LAST"
a0=$("$H" acks "ipc://$T/ingest" "$ACK_S" 2000)
echo "  0 reads: $a0"
for i in 1 2 3 4; do
    ( while :; do "$H" read "$PORT" "bench-reader-$i-token" "$PATHU" "$BODY" >/dev/null 2>&1 || true; done ) &
    RP="$RP $!"
done
sleep 1
peak0=$(kb VmRSS)
echo 5 >"/proc/$TP/clear_refs" 2>/dev/null || true
a4=$("$H" acks "ipc://$T/ingest" "$ACK_S" 2000)
peak=$(kb VmHWM)
for p in $RP; do kill "$p" 2>/dev/null || true; done
RP=""
echo "  4 reads: $a4 (rss_before_kib=$peak0 rss_peak_kib=$peak)"
p99=$(echo "$a4" | sed -n 's/.*p99_us=\([0-9]*\).*/\1/p')
echo "  target: ack p99 <= $((2 * FLUSH * 1000)) us with 4 reads: $([ "$p99" -le $((2 * FLUSH * 1000)) ] && echo met || echo MISSED)"
stop
