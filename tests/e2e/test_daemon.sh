#!/bin/sh
# test_daemon.sh — tallyd's contract as a Debian daemon: --version,
# --check-config (good config, unknown key named with file:line, bad
# environment override named), ready line, SIGTERM -> flush + exit 0,
# restarts keep the store, late events land in their own hour, events too
# old or in the future are acked but not counted (and logged), a producer id
# reused after a restart is counted again, and tallyctl emit without a
# daemon fails within its timeout.
# shellcheck disable=SC2015,SC2046,SC2086,SC2119 # A && B || fail; set -- $rec splits on purpose
set -eu
. "$(dirname "$0")/lib.sh"

e2e_setup
t_begin=$(now_ms)

# ---- --version ------------------------------------------------------------
out=$("$TALLYD" --version) || fail "tallyd --version exited $?"
printf '%s\n' "$out" | grep -Eq '^tallyd [0-9]+\.[0-9]+' || fail "tallyd --version printed '$out', expected 'tallyd X.Y...'"
say "--version: $out"

# ---- --check-config ---------------------------------------------------------
rc=0
out=$(timeout 20 "$TALLYD" --check-config -c "$CONF" 2>&1) || rc=$?
[ "$rc" -eq 0 ] || fail "tallyd --check-config -c $CONF exited $rc: $out"
say "--check-config on the shipped config: ok ($out)"

cat >"$T/bad.conf" <<EOF
# a config with an unknown key on line 5
[flush]
interval_ms = 100

no_such_key = 1
EOF
rc=0
out=$(timeout 20 "$TALLYD" --check-config -c "$T/bad.conf" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "--check-config accepted an unknown key: $out"
[ "$rc" -ne 124 ] || fail "--check-config hung on a bad config"
printf '%s\n' "$out" | grep -q "bad.conf:5" || fail "the error does not name the file and line (want 'bad.conf:5'): $out"
printf '%s\n' "$out" | grep -q "no_such_key" || fail "the error does not name the key: $out"
say "--check-config on an unknown key: exit $rc, '$out'"

rc=0
out=$(TALLY_FLUSH_INTERVAL_MS=abc timeout 20 "$TALLYD" --check-config -c "$CONF" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "--check-config accepted TALLY_FLUSH_INTERVAL_MS=abc: $out"
printf '%s\n' "$out" | grep -q "TALLY_FLUSH_INTERVAL_MS" || fail "the error does not name TALLY_FLUSH_INTERVAL_MS: $out"
say "--check-config with TALLY_FLUSH_INTERVAL_MS=abc: exit $rc, '$out'"

# the daemon itself (not only --check-config) refuses to start on it
rc=0
out=$(TALLY_FLUSH_INTERVAL_MS=abc timeout 20 "$TALLYD" -c "$CONF" 2>&1) || rc=$?
[ "$rc" -ne 124 ] || fail "tallyd started (ran 20 s) with TALLY_FLUSH_INTERVAL_MS=abc"
[ "$rc" -ne 0 ] || fail "tallyd exited 0 with TALLY_FLUSH_INTERVAL_MS=abc: $out"
printf '%s\n' "$out" | grep -q "TALLY_FLUSH_INTERVAL_MS" || fail "tallyd's error does not name TALLY_FLUSH_INTERVAL_MS: $out"
say "tallyd with TALLY_FLUSH_INTERVAL_MS=abc: exit $rc"

# ---- start, emit, SIGTERM ---------------------------------------------------
emit() {
    "$TALLYCTL" emit --endpoint "$INGEST" --timeout 30 "$@" >"$T/emit.out" 2>&1 ||
        fail "tallyctl emit $* exited non-zero: $(cat "$T/emit.out")"
}

start_tallyd "$T/tallyd.1.log"
say "tallyd ready (pid $TALLYD_PID)"
# writes through its reserved map by default (tests/valgrind.sh's wrapper
# around bin/tallyd.real turns that off)
if [ ! -e "$TALLY_BIN_DIR/tallyd.real" ]; then
    grep -q 'ready .*store_writes=map' "$T/tallyd.1.log" ||
        fail "the ready line does not say store_writes=map: $(grep ready "$T/tallyd.1.log")"
fi
emit --ns web --metric http_requests --value 7 --count 10 --label object=a --label deployment=d1 --producer e2e-prod
say "10 events of 7 acked"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM, expected 0"
grep -q 'stopped' "$T/tallyd.1.log" || fail "no 'stopped' line in the log after SIGTERM"
say "SIGTERM: exit 0, log: $(grep 'stopped' "$T/tallyd.1.log")"

# ---- restart: the events are there --------------------------------------------
start_tallyd "$T/tallyd.2.log"
# the ready line reports the producers whose marks were read back, when it says
if grep -q 'producers=' "$T/tallyd.2.log"; then
    grep -Eq 'producers=1( |$)' "$T/tallyd.2.log" || fail "restarted tallyd does not report 1 known producer: $(grep ready "$T/tallyd.2.log")"
fi
rec=$(dump_records --ns web)
say "dump after restart: $rec"
got=$(dump_totals --ns web | awk '{print $2, $3, $4}')
[ "$got" = "http_requests 70 10" ] || fail "ns web: want 'http_requests 70 10' (metric sum count), got '$got' from: $rec"
# (10 events sent within milliseconds: one record, two if an hour ended between)
set -- $(printf '%s\n' "$rec" | head -n 1)
[ "$#" -eq 6 ] || fail "no hourly record for ns web: $rec"
case ",$6," in
*,object=a,*) ;;
*) fail "labels lack object=a: $6" ;;
esac
case ",$6," in
*,deployment=d1,*) ;;
*) fail "labels lack deployment=d1: $6" ;;
esac
dump_json --ns web | grep -q '"labels":{' || fail "dump --json has no labels object"

# ---- a late event inside the window lands in its own hour ---------------------
now=$(now_s)
late_ts=$((now - 3 * 3600))
late_hour=$(date -u -d "@$((late_ts - late_ts % 3600))" +%Y-%m-%dT%H:%M:%SZ)
emit --ns late --metric bytes_out --value 5 --ts "$late_ts" --producer e2e-late
rec=$(dump_records --ns late)
say "late event (ts $late_ts, 3 h ago): $rec"
set -- $rec
[ "$#" -eq 6 ] || fail "expected one record for ns late, got: $rec"
[ "$3" = "$late_hour" ] || fail "late event landed in hour $3, expected $late_hour"
[ "$4" = 5 ] && [ "$5" = 1 ] || fail "late event: sum $4 count $5, expected 5 and 1"
month_rec=$(dump_records --ns late --period month)
set -- $month_rec
[ "$3" = "$(date -u -d "@$late_ts" +%Y-%m-01T00:00:00Z)" ] && [ "$4" = 5 ] ||
    fail "late event's monthly record is wrong: $month_rec"

# ---- too old / future: acked, not counted, logged ---------------------------------
before=$(dump_json)
old_ts=$((now - 200 * 3600))
future_ts=$((now + 3600))
emit --ns web --metric http_requests --value 7 --count 3 --label object=a --label deployment=d1 --ts "$old_ts" --producer e2e-old
emit --ns web --metric http_requests --value 7 --count 2 --label object=a --label deployment=d1 --ts "$future_ts" --producer e2e-future
emit --ns rejected --metric vcpu_seconds --value 9 --ts "$old_ts" --producer e2e-old2
emit --ns rejected --metric vcpu_seconds --value 9 --ts "$future_ts" --producer e2e-future2
after=$(dump_json)
if [ "$before" != "$after" ]; then
    printf 'before:\n%s\nafter:\n%s\n' "$before" "$after" >&2
    fail "events 200 h old or 1 h in the future changed the store"
fi
[ -z "$(dump_records --ns rejected)" ] || fail "ns rejected has records though all its events were out of the window"
grep -q 'rejected reason=too_old' "$T/tallyd.2.log" || fail "no 'rejected reason=too_old' log line"
grep -q 'rejected reason=future' "$T/tallyd.2.log" || fail "no 'rejected reason=future' log line"
say "too old and future events: acked, not counted; logged: $(grep -c 'rejected reason=' "$T/tallyd.2.log") 'rejected' lines"

# ---- restarting keeps everything -----------------------------------------------
hour_before=$(dump_json)
month_before=$(dump_json --period month)
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM, expected 0"
# the same store in LMDB's copy mode (storage.writemap = false)
TALLY_STORAGE_WRITEMAP=false start_tallyd "$T/tallyd.3.log"
grep -q 'ready .*store_writes=copy' "$T/tallyd.3.log" ||
    fail "TALLY_STORAGE_WRITEMAP=false: the ready line does not say store_writes=copy: $(grep ready "$T/tallyd.3.log")"
[ "$(dump_json)" = "$hour_before" ] || fail "hourly rollups changed across a restart"
[ "$(dump_json --period month)" = "$month_before" ] || fail "monthly rollups changed across a restart"
say "restart in copy mode kept every rollup"

# ---- the same producer id after a restart is counted, not deduplicated away -------
emit --ns web --metric http_requests --value 7 --count 10 --label object=a --label deployment=d1 --producer e2e-prod
got=$(dump_totals --ns web | awk '{print $3, $4}')
[ "$got" = "140 20" ] || fail "after re-using producer e2e-prod: ns web sum/count '$got', expected '140 20' (new sequence numbers were deduplicated away?)"
say "producer e2e-prod re-used after a restart: counted (sum 140, count 20)"

stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on the last SIGTERM"

# ---- no daemon: emit gives up -------------------------------------------------------
e0=$(now_ms)
rc=0
timeout 60 "$TALLYCTL" emit --endpoint "ipc://$T/nobody" --ns web --metric http_requests \
    --value 1 --timeout 2 >"$T/emit.out" 2>&1 || rc=$?
[ "$rc" -ne 124 ] || fail "tallyctl emit --timeout 2 without a daemon still ran after 60 s"
[ "$rc" -ne 0 ] || fail "tallyctl emit without a daemon exited 0: $(cat "$T/emit.out")"
say "emit without a daemon: exit $rc after $(elapsed_since "$e0")s: $(cat "$T/emit.out")"

say "total time $(elapsed_since "$t_begin")s"
e2e_pass
