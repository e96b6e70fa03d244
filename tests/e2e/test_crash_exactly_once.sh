#!/bin/sh
# test_crash_exactly_once.sh — the core promise: kill -9 tallyd again and
# again while four producers stream events; every producer must end with all
# its events acked, and the store must hold each event exactly once (hourly
# and monthly rollups), nothing lost, nothing counted twice.
#
# Knobs (environment): CRASH_KILLS (default 4), CRASH_EVENTS per producer
# (default 250000), CRASH_RATE events/s per producer (default 20000:
# about 12.5 s of sending, so four kills fit while producers run),
# CRASH_GAP_MS between kills (default: about 2.3-2.9 s).
set -eu
. "$(dirname "$0")/lib.sh"

KILLS=${CRASH_KILLS:-4}
EVENTS=${CRASH_EVENTS:-250000}
RATE=${CRASH_RATE:-20000}
GAP_MS=${CRASH_GAP_MS:-}

e2e_setup
t_begin=$(now_ms)

start_tallyd "$T/tallyd.0.log"
say "tallyd ready (pid $TALLYD_PID); starting 4 producers x $EVENTS events at $RATE/s"

# producer K: namespace pK, value VK; p4 carries labels.
start_producer() {
    _k=$1 _v=$2
    shift 2
    bg_run "prod$_k" "$TALLYCTL" emit --endpoint "$INGEST" --ns "p$_k" --metric http_requests \
        --value "$_v" --count "$EVENTS" --producer "prod$_k" --rate "$RATE" --timeout 300 \
        --json "$@"
}
start_producer 1 1
start_producer 2 2
start_producer 3 3
start_producer 4 5 --label object=lb-1 --label deployment=d-crash

# producers_running — how many have not ended yet.
producers_running() {
    _n=0
    for _k in 1 2 3 4; do
        bg_done "prod$_k" || _n=$((_n + 1))
    done
    echo "$_n"
}

# Kill at spaced, slightly irregular moments: 1.7 s, then every ~2.3-2.9 s,
# as long as producers are still sending; at least 3 kills must land while
# they run.
MIN_KILLS=3
[ "$KILLS" -ge "$MIN_KILLS" ] || MIN_KILLS=$KILLS
kills=0
last_log="$T/tallyd.0.log"
sleep 1.7
while [ "$kills" -lt "$KILLS" ]; do
    running=$(producers_running)
    if [ "$running" -eq 0 ]; then
        [ "$kills" -ge "$MIN_KILLS" ] || fail "every producer finished after only $kills kill(s): the run is too short to test crashes (raise CRASH_EVENTS or lower CRASH_RATE)"
        say "producers finished; stopping after $kills kills"
        break
    fi
    crash_tallyd
    kills=$((kills + 1))
    say "kill -9 #$kills at t=$(elapsed_since "$t_begin")s (tallyd exit status $TALLYD_STATUS, producers running: $running/4)"
    [ "$TALLYD_STATUS" = 137 ] || fail "tallyd exit status after SIGKILL is $TALLYD_STATUS, expected 137"
    # a short outage, varying per round, so producers must resend
    case $((kills % 3)) in
    0) sleep 0.2 ;;
    1) sleep 0.7 ;;
    2) : ;;
    esac
    last_log="$T/tallyd.$kills.log"
    start_tallyd "$last_log"
    say "restarted tallyd (pid $TALLYD_PID): $(grep -o 'producers=[0-9]*' "$last_log" | head -n 1) known from the store"
    [ "$kills" -lt "$KILLS" ] || break
    if [ -n "$GAP_MS" ]; then
        sleep "$((GAP_MS / 1000)).$(printf %03d $((GAP_MS % 1000)))"
    else
        case $((kills % 3)) in
        0) sleep 2.3 ;;
        1) sleep 2.6 ;;
        2) sleep 2.9 ;;
        esac
    fi
done

say "waiting for the producers to finish (each exits 0 only when every event is acked)"
# Meanwhile tallyd must stay up (one that died now would leave them waiting
# out --timeout).
w=0
while [ "$(producers_running)" -gt 0 ]; do
    check_tallyd_alive
    w=$((w + 1))
    if [ $((w % 150)) -eq 0 ]; then
        say "still waiting at t=$(elapsed_since "$t_begin")s: $(producers_running) producer(s) running; last tallyd log line: $(tail -n 1 "$last_log")"
    fi
    sleep 0.2
done
bad=0
total_resends=0
for k in 1 2 3 4; do
    rc=$(bg_status "prod$k")
    out=$(cat "$T/prod$k.out")
    resends=$(printf '%s\n' "$out" | sed -n 's/.*"resends":\([0-9]*\).*/\1/p')
    say "producer prod$k: exit $rc, resends ${resends:-?}: $out"
    if [ "$rc" -ne 0 ]; then
        printf '%s: producer prod%s stderr: %s\n' "$E2E_NAME" "$k" "$(cat "$T/prod$k.err")" >&2
        bad=1
    fi
    printf '%s\n' "$out" | grep -q '"acked":true' || bad=1
    total_resends=$((total_resends + ${resends:-0}))
done
say "producers done at t=$(elapsed_since "$t_begin")s; total resends after ack timeouts: $total_resends"
if [ "$bad" -ne 0 ]; then
    say "committed so far (ns metric sum count records):"
    dump_totals | sed "s/^/    /"
    fail "a producer did not get every event acked"
fi

stop_tallyd 60
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM, expected 0"
grep -q "stopped" "$last_log" || fail "no 'stopped' line in the last tallyd log after SIGTERM"

expected=$(for kv in 1:1 2:2 3:3 4:5; do
    k=${kv%%:*} v=${kv#*:}
    printf 'p%s http_requests %s %s\n' "$k" $((EVENTS * v)) "$EVENTS"
done)

check_period() {
    _period=$1
    got=$(dump_totals --period "$_period" | awk '{print $1, $2, $3, $4}')
    say "$_period rollups (ns metric sum count):"
    printf '%s\n' "$got" | sed "s/^/    /"
    if [ "$got" != "$expected" ]; then
        say "expected:"
        printf '%s\n' "$expected" | sed "s/^/    /"
        printf '%s\n' "$expected" >"$T/expected.txt"
        printf '%s\n' "$got" >"$T/got.txt"
        awk 'NR == FNR { e[$1 " " $2] = $3 " " $4; next }
             { k = $1 " " $2; g = $3 " " $4
               if (!(k in e)) print "  unexpected " k ": sum/count " g
               else if (e[k] != g) {
                   split(e[k], a, " "); split(g, b, " ")
                   printf "  %s: sum %s (expected %s, diff %+d), count %s (expected %s, diff %+d)\n",
                       k, b[1], a[1], b[1] - a[1], b[2], a[2], b[2] - a[2] }
               delete e[k] }
             END { for (k in e) print "  missing " k }' "$T/expected.txt" "$T/got.txt" >&2
        fail "$_period rollups differ from what was acked: events lost or counted twice"
    fi
}
check_period hour
check_period month

# p4's labels survive the crashes
dump_records --ns p4 | grep -q 'object=lb-1' || fail "p4 records lost their labels"

say "exactly once across $kills kill -9 restarts; total time $(elapsed_since "$t_begin")s"
e2e_pass
