#!/bin/sh
# test_store_full.sh — a full LMDB map pauses ingest without loss: reads keep
# working, /healthz and /metrics say so, and raising the map size with SIGHUP
# resumes and commits everything that was accepted.
set -eu
. "$(dirname "$0")/lib.sh"
e2e_setup
BENCH=$TALLY_BIN_DIR/tally-bench-ingest
[ -x "$BENCH" ] || fail "no $BENCH"
command -v curl >/dev/null || fail "curl is needed"
# our own config: a 1 MiB map that may not grow
sed 's/^map_size_mb = .*/map_size_mb = 1/; s/^map_max_mb = .*/map_max_mb = 0/' \
    "$TALLY_SOURCE_DIR/config/tallyd.conf" >"$T/small.conf"
CONF=$T/small.conf
export TALLY_AUTH_TOKENS_FILE="$TALLY_SOURCE_DIR/config/tokens"
export TALLY_BILLING_PLANS_FILE="$TALLY_SOURCE_DIR/config/plans.ini"
start_tallyd "$T/tallyd.log"
PORT=$(sed -n 's/.*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/tallyd.log" | head -n 1)
[ -n "$PORT" ] || fail "no HTTP port in the ready line"
URL=http://127.0.0.1:$PORT
# 20,000 series do not fit in 1 MiB: the first flush fails
bg_run bench timeout 8 "$BENCH" --endpoint "$INGEST" --producers 1 --events 20000 \
    --series 20000 --batch 100
wait_log "$T/tallyd.log" "flush failed" 10 || fail "no 'flush failed' in the log within 10 s"
say "store full: $(grep -m1 'flush failed' "$T/tallyd.log" | sed 's/.*msg=//')"
curl -sf "$URL/healthz" | grep -q '"degraded"' || fail "/healthz does not say degraded"
curl -sf "$URL/metrics" | grep -q '^tally_store_full 1$' || fail "/metrics lacks tally_store_full 1"
curl -sf "$URL/metrics" | grep -q '^tally_flush_errors_total [1-9]' || fail "no flush errors counted"
# reads keep working
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: APIToken dev-admin-token' \
    -d '{}' "$URL/api/web/namespaces/system/usage_details")
[ "$code" = 200 ] || fail "usage_details answered $code while the store is full"
dump_json >/dev/null || fail "tallyctl dump failed while the store is full"
# the bench dies unacked; what tallyd accepted stays pending, not lost
while ! bg_done bench; do sleep 0.2; done
# give it room: SIGHUP applies the larger map
sed -i 's/^map_size_mb = .*/map_size_mb = 256/' "$T/small.conf"
kill -HUP "$TALLYD_PID"
wait_log "$T/tallyd.log" "flush succeeded again" 10 ||
    fail "ingest did not resume within 10 s of SIGHUP"
curl -sf "$URL/metrics" | grep -q '^tally_store_full 0$' || fail "tally_store_full did not clear"
"$TALLYCTL" emit --endpoint "$INGEST" --ns after --metric http_requests --value 3 --count 100 \
    --timeout 30 >/dev/null || fail "emit after resume not acked"
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited with status $TALLYD_STATUS"
dump_totals >"$T/totals"
accepted=$(grep -m1 -o 'events_committed=[0-9]*' "$T/tallyd.log" | tail -n 1 || true)
bench_total=$(awk '$1 ~ /^ns-/ && $2 == "http_requests" { s += $4 } END { print s + 0 }' "$T/totals")
after=$(awk '$1 == "after" { print $3 }' "$T/totals")
[ "$after" = 300 ] || fail "after resume: want sum 300, have '$after'"
# every event tallyd accepted before the store filled is committed now
events=$(grep -o 'events_committed=[0-9]*' "$T/tallyd.log" | tail -n 1 | cut -d= -f2)
[ "$bench_total" -gt 0 ] || fail "nothing of the bench was committed"
[ "$((bench_total + 100))" = "$events" ] ||
    fail "committed $events events, the store holds $bench_total + 100"
say "committed after resume: $bench_total bench events + 100 ($accepted)"
e2e_pass
