#!/bin/sh
# test_pipeline.sh — the whole ingest pipeline (ingest loop, ck_ring, aggregator
# thread, LMDB, acks, client threads) under concurrent producers; in the TSan
# build any data race aborts tallyd or tallyctl and fails this test.
set -eu
. "$(dirname "$0")/../e2e/lib.sh"
e2e_setup
start_tallyd "$T/tallyd.log"
pids=""
for p in 1 2 3; do
    "$TALLYCTL" emit --endpoint "$INGEST" --ns "race-$p" --metric http_requests --value "$p" \
        --count 20000 --batch 50 --producer "race-$p" --timeout 120 >"$T/emit$p.log" 2>&1 &
    pids="$pids $!"
done
for pid in $pids; do
    wait "$pid" || fail "a producer was not fully acked (see $T/emit*.log)"
done
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited with status $TALLYD_STATUS"
if grep -q "ThreadSanitizer\|AddressSanitizer\|runtime error" "$T"/*.log; then
    fail "a sanitizer reported a problem"
fi
dump_totals >"$T/totals"
for p in 1 2 3; do
    want="race-$p http_requests $((20000 * p)) 20000"
    grep -q "^$want " "$T/totals" || fail "want '$want', have: $(cat "$T/totals")"
done
e2e_pass
