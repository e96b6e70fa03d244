#!/bin/sh
# bench_http.sh — HTTP benchmark: usage_details over a month of hourly data for
# 10 metrics, driven by wrk -t1 -c50, against the ceiling of nginx (one worker)
# returning a body of the same size; also /metrics latency (and its body size,
# which grows with the routes and quota limits seen). Prints req/s, p50/p99 and
# the ratio to the ceiling.
# Usage: bench/bench_http.sh [BUILD_DIR]   (needs wrk and nginx-light)
set -eu
B=${1:-build}/bin
DUR=${DUR:-10}
T=$(mktemp -d /tmp/tally-bench-http-XXXXXX)
TP=0
NP=0
cleanup() {
    [ "$TP" -ne 0 ] && kill "$TP" 2>/dev/null && wait "$TP" 2>/dev/null || true
    [ "$NP" -ne 0 ] && kill "$NP" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
for tool in wrk nginx; do
    command -v $tool >/dev/null || [ -x /usr/sbin/$tool ] || { echo "bench_http: needs $tool" >&2; exit 2; }
done
SRC=$(cd "$(dirname "$0")/.." && pwd)
PORT=$((10000 + $$ % 20000)) # below the ephemeral range (32768+)
NPORT=$((PORT + 1))
# the plans' api_limits would answer 429 long before the server's ceiling:
# benchmark with a copy of the catalog without them
grep -v '^quota\.api' "$SRC/config/plans.ini" >"$T/plans.ini"
export TALLY_BILLING_PLANS_FILE=$T/plans.ini
export TALLY_STORAGE_DIR=$T/store TALLY_INGEST_LISTEN=ipc://$T/ingest \
    TALLY_INGEST_ACKS=ipc://$T/ingest.acks TALLY_QUOTA_ALERTS=ipc://$T/alerts \
    TALLY_HTTP_LISTEN=127.0.0.1:$PORT TALLY_AUTH_TOKENS_FILE=$SRC/config/tokens \
    TALLY_BILLING_METRICS_FILE=$SRC/config/metrics.ini TALLY_INGEST_LATE_WINDOW_HOURS=800 \
    TALLY_HTTP_RATE_PER_TOKEN=0 TALLY_HTTP_MAX_CONNECTIONS=4096
"$B/tallyd" -c "$SRC/config/tallyd.conf" 2>"$T/tallyd.log" &
TP=$!
i=0
until grep -q "msg=ready" "$T/tallyd.log"; do
    i=$((i + 1)); [ $i -gt 100 ] && { cat "$T/tallyd.log"; exit 1; }; sleep 0.1
done
# a month of hourly data: 10 metrics x 720 hours, 2 events an hour each
for m in http_requests bytes_out bytes_in vcpu_seconds lb_count api_calls storage_bytes \
    active_sites waf_events custom_metric; do
    "$B/tallyctl" emit --endpoint "ipc://$T/ingest" --ns bench --metric $m --value 5 \
        --label object=obj-1 --count 1440 --spread-hours 720 >/dev/null
done
BODY='{"from":"2000-01-01T00:00:00Z","to":"2100-01-01T00:00:00Z"}'
cat >"$T/usage.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "APIToken dev-demo-viewer-token"
LUA
sed -i 's/dev-demo-viewer-token/dev-admin-token/' "$T/usage.lua"
URL=http://127.0.0.1:$PORT/api/web/namespaces/bench/usage_details
SIZE=$(curl -s -X POST -H 'Authorization: APIToken dev-admin-token' -d "$BODY" "$URL" | wc -c)
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: APIToken dev-admin-token' -d "$BODY" "$URL")
[ "$STATUS" = 200 ] || { echo "bench_http: usage_details answered $STATUS" >&2; exit 1; }
# nginx, one worker, return 200 with a body of the same size (nginx caps one
# config token at 4 KiB, so the body is two variables of half the size)
HALF=$((SIZE / 2))
B1=$(head -c "$HALF" /dev/zero | tr '\0' 'x')
B2=$(head -c $((SIZE - HALF)) /dev/zero | tr '\0' 'y')
cat >"$T/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $T/nginx.pid;
error_log $T/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $T;
    server {
        listen 127.0.0.1:$NPORT;
        location / { set \$a '$B1'; set \$b '$B2'; return 200 "\$a\$b"; }
    }
}
NGX
for try in 1 2 3 4 5; do
    /usr/sbin/nginx -c "$T/nginx.conf" -p "$T" 2>"$T/nginx.start" &
    NP=$!
    sleep 0.5
    kill -0 "$NP" 2>/dev/null && break
    NPORT=$((NPORT + 97)) # taken: try another
    sed -i "s/listen 127.0.0.1:[0-9]*;/listen 127.0.0.1:$NPORT;/" "$T/nginx.conf"
    NP=0
done
[ "$NP" -ne 0 ] || { cat "$T/nginx.start" >&2; exit 1; }
run() { # name url [script]
    if [ -n "${3:-}" ]; then out=$(wrk -t1 -c50 -d"${DUR}s" --latency -s "$3" "$2"); else
        out=$(wrk -t1 -c50 -d"${DUR}s" --latency "$2"); fi
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    printf '%-34s %10s req/s  p50 %8s  p99 %8s  %s\n' "$1" "$rps" "$p50" "$p99" "${errs:+non-2xx: $errs}"
    eval "RPS_$4=$rps"
}
echo "body size: $SIZE bytes (usage_details of 10 metrics x 720 hours)"
run "tallyd usage_details" "$URL" "$T/usage.lua" tally
run "nginx return 200 (same size)" "http://127.0.0.1:$NPORT/" "" nginx
echo "/metrics body: $(curl -s "http://127.0.0.1:$PORT/metrics" | wc -c) bytes"
run "tallyd /metrics" "http://127.0.0.1:$PORT/metrics" "" metrics
awk -v a="$RPS_tally" -v b="$RPS_nginx" 'BEGIN { printf "usage_details / nginx ceiling: %.0f%%\n", 100 * a / b }'
