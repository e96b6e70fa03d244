#!/bin/sh
# scenario_clock.sh — timestamps on hour, month and year boundaries, and a daemon whose wall clock jumps: rollups follow event time, flushes follow the monotonic clock.
#
# Part A (real clock): events at HH:59:59.999 and HH+1:00:00.000 of the
# current hour, at the last millisecond of last month and the first of this
# month (late window raised to 1000 h so last month is accepted), land in
# exactly the hour and month buckets of their event time.
# Part B (libfaketime, skipped with a message when it is not installed):
# tallyd runs with a wall clock read from a file (FAKETIME_TIMESTAMP_FILE,
# monotonic clock NOT faked, as with an NTP step), which the test rewrites:
# +3 h, then -2 h (a 5 h step backwards), then "@2026-12-31 23:58:00". After
# every jump the daemon's log shows the new wall clock, producers are still
# acked promptly (flush timer = monotonic), events land in their event-time
# buckets, and the year boundary (23:59:59.999 / 00:00:00.000) splits
# correctly. Events the jumped clock calls "future" are rejected and counted
# in /metrics, never silently dropped.
set -eu
. "$(dirname "$0")/lib.sh"

faults_setup
t_begin=$(now_ms)
export TALLY_FLUSH_INTERVAL_MS=50
export TALLY_INGEST_LATE_WINDOW_HOURS=1000
start_tallyd "$T/tallyd.a.log"

ms_iso() { # MS -> RFC 3339 with milliseconds
    printf '%s.%03dZ\n' "$(date -u -d "@$(($1 / 1000))" +%Y-%m-%dT%H:%M:%S)" $(($1 % 1000))
}
emit_at() { # NS VALUE COUNT TS_MS [--expect-none]
    "$TALLYCTL" emit --endpoint "$INGEST" --producer "clock-$1" --ns "$1" --metric http_requests \
        --value "$2" --count "$3" --ts "$(ms_iso "$4")" --timeout 15 >/dev/null ||
        fail "emit $3 x $2 at $(ms_iso "$4") to $1 not acked within 15 s"
    [ "${5:-}" = --expect-none ] || expect_at "$1" http_requests "$2" "$3" "$4"
}

# ---- part A ----
now=$(now_s)
[ $((now % 3600)) -ge 3 ] || { sleep 3; now=$(now_s); }
H=$(((now - now % 3600) * 1000))
M=$(($(date -u -d "$(date -u +%Y-%m-01)" +%s) * 1000))
emit_at clock-hour 1 3 $((H - 1))
emit_at clock-hour 10 5 "$H"
emit_at clock-hour 100 2 $((H - 3600000))
emit_at clock-month 7 2 $((M - 1))
emit_at clock-month 11 4 "$M"
say "hour boundary $(ms_iso $((H - 1))) | $(ms_iso "$H"); month boundary $(ms_iso $((M - 1))) | $(ms_iso "$M")"
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS"
check_exact
# the exact cells, spelled out (not only sums): the boundary millisecond
# belongs to the later bucket, the one before it to the earlier
dump_records --ns clock-month --period month >"$T/m.rec"
grep -q "^clock-month http_requests $(iso $((M / 1000))) 44 4 " "$T/m.rec" ||
    fail "month $(iso $((M / 1000))) of clock-month should hold 4 events (sum 44): $(cat "$T/m.rec")"
grep -q "^clock-month http_requests $(date -u -d "@$(((M - 1) / 1000))" +%Y-%m-01T00:00:00Z) 14 2 " "$T/m.rec" ||
    fail "the month before should hold 2 events (sum 14): $(cat "$T/m.rec")"
dump_records --ns clock-hour --period hour >"$T/h.rec"
grep -q "^clock-hour http_requests $(iso $((H / 1000))) 50 5 " "$T/h.rec" || fail "hour $(iso $((H / 1000))): $(cat "$T/h.rec")"
grep -q "^clock-hour http_requests $(iso $((H / 1000 - 3600))) 203 5 " "$T/h.rec" || fail "hour before: $(cat "$T/h.rec")"
part_a_events=$CHECK_EVENTS

# ---- part B ----
FTLIB=
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 /usr/lib/*/faketime/libfaketimeMT.so.1 \
    /usr/lib/faketime/libfaketimeMT.so.1; do
    [ -f "$f" ] && { FTLIB=$f; break; }
done
if [ -z "$FTLIB" ]; then
    say "SKIP wall-clock jumps: libfaketime is not installed (apt-get install faketime)"
    summary "boundaries=hour,month events=$part_a_events clock_jumps=skipped seconds=$(elapsed_since "$t_begin")"
    e2e_pass
    exit 0
fi
export TALLY_INGEST_LATE_WINDOW_HOURS=168
echo "+0" >"$T/faketime"
(
    export LD_PRELOAD="$FTLIB" FAKETIME_TIMESTAMP_FILE="$T/faketime" FAKETIME_NO_CACHE=1 \
        FAKETIME_DONT_FAKE_MONOTONIC=1
    start_tallyd "$T/tallyd.b.log"
    echo "$TALLYD_PID" >"$T/tallyd.b.pid"
) || exit 1
TALLYD_PID=$(cat "$T/tallyd.b.pid")
TALLYD_LOG=$T/tallyd.b.log

# daemon_clock — the daemon's wall clock (seconds): the ts of a fresh log line
daemon_clock() {
    _i=0
    _n=$(grep -c 'msg=reloaded' "$TALLYD_LOG" || true)
    kill -HUP "$TALLYD_PID"
    while [ "$(grep -c 'msg=reloaded' "$TALLYD_LOG" || true)" = "$_n" ]; do
        _i=$((_i + 1))
        [ "$_i" -le 50 ] || fail "no 'reloaded' log line after SIGHUP"
        sleep 0.1
    done
    date -u -d "$(grep 'msg=reloaded' "$TALLYD_LOG" | tail -n 1 | sed 's/^ts=\([^ ]*\) .*/\1/')" +%s
}
# jump SPEC WANT_OFFSET_S — set the daemon's clock and check it took
jump() {
    echo "$1" >"$T/faketime"
    sleep 0.3
    _d=$(daemon_clock)
    _off=$((_d - $(now_s)))
    say "daemon wall clock now $(iso "$_d") (offset ${_off} s, FAKETIME '$1')"
    if [ -n "$2" ]; then
        if [ "$_off" -lt $(($2 - 5)) ] || [ "$_off" -gt $(($2 + 5)) ]; then
            fail "the daemon's clock is off by $_off s, want $2 (libfaketime not in effect?)"
        fi
    fi
}
# acked_fast NS — a producer is acked within 3 s: flushes follow the monotonic clock
acked_fast() {
    _f0=$(metric tally_flushes_total)
    _t=$(now_ms)
    emit_at "$1" 1 100 "$2"
    _el=$(($(now_ms) - _t))
    _f1=$(metric tally_flushes_total)
    say "  $1: 100 events acked in ${_el} ms; flushes $_f0 -> $_f1"
    [ "$_el" -le 3000 ] || fail "acks took ${_el} ms after the clock jump: the flush timer follows the wall clock?"
    [ "$_f1" -gt "$_f0" ] || fail "no flush committed after the clock jump"
}
now=$(now_s)
R=$(((now - now % 3600 - 3 * 3600) * 1000 + 1234)) # real time: 3 hours ago, a fixed bucket

jump "+0" 0
acked_fast clock-jump-0 "$R"
jump "+3h" 10800
acked_fast clock-jump-fwd "$R"
emit_at clock-jump-fwd 2 20 $((R + 3600000))
jump "-2h" -7200
acked_fast clock-jump-back "$R"
# stamped at the real now = 2 h ahead of this daemon: rejected as future, and counted
rej0=$(curl -sf "$(http_url)/metrics" | awk -F' ' '/^tally_ingest_rejected_total\{reason="future"\}/ { print $2 }')
emit_at clock-jump-back 5 30 "$(now_ms)" --expect-none
rej1=$(curl -sf "$(http_url)/metrics" | awk -F' ' '/^tally_ingest_rejected_total\{reason="future"\}/ { print $2 }')
[ "$((${rej1:-0} - ${rej0:-0}))" = 30 ] ||
    fail "30 events 2 h ahead of the daemon's clock: rejected{future} went $rej0 -> $rej1, want +30"
say "  30 events 2 h ahead of the stepped-back clock: rejected as future and counted ($rej0 -> $rej1)"

# the year boundary, by the daemon's own clock
jump "@2026-12-31 23:58:00" ""
Y=1798761600000 # 2027-01-01T00:00:00Z
dnow=$(daemon_clock)
if [ "$dnow" -ge $((Y / 1000)) ] || [ "$dnow" -le $((Y / 1000 - 300)) ]; then
    fail "the daemon's clock is $(iso "$dnow"), want just before 2027-01-01 (the @ form of FAKETIME)"
fi
acked_fast clock-year-pre $((Y - 60000))
emit_at clock-year 1 6 $((Y - 1))
emit_at clock-year 1000 9 "$Y"
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS"
check_exact
dump_records --ns clock-year --period hour >"$T/y.rec"
dump_records --ns clock-year --period month >>"$T/y.rec"
for want in "2026-12-31T23:00:00Z 6 6" "2027-01-01T00:00:00Z 9000 9" "2026-12-01T00:00:00Z 6 6"; do
    # shellcheck disable=SC2086 # split into bucket, sum, count
    set -- $want
    grep -q "^clock-year http_requests $1 $2 $3 " "$T/y.rec" || fail "clock-year: no bucket $1 with sum $2 count $3: $(cat "$T/y.rec")"
done
[ "$(grep -c '^clock-year http_requests 2027-01-01T00:00:00Z 9000 9 ' "$T/y.rec")" = 2 ] ||
    fail "clock-year: want hour and month 2027-01-01 with sum 9000 count 9: $(cat "$T/y.rec")"
summary "boundaries=hour,month,year clock_jumps=+3h,-5h,@2026-12-31T23:58 events=$CHECK_EVENTS future_rejected_counted=30 seconds=$(elapsed_since "$t_begin")"
e2e_pass
