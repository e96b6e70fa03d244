#!/bin/sh
# scenario_crash_loop.sh — kill -9 tallyd at random moments (before, during, after flush commits) for 20+ rounds under continuous load; totals must equal what was acked, per (namespace, metric, hour).
#
# Four producer slots keep a tallyctl emit running at all times (a slot that
# finishes starts its next wave under the same producer id); each wave sends
# its events spread over 3 hours (--spread-hours 3 from a fixed --ts), so
# the expected count of every (ns, metric, hour) cell is known. Each round
# restarts tallyd with a random flush interval of 5..50 ms and kills it after
# a random 0..900 ms, so kills land before, inside and after commits. Every
# wave must end with exit 0 (all its events acked).
#
# Knobs: FAULTS_CRASH_ROUNDS (default 24), FAULTS_CRASH_RATE events/s per
# producer (default 4000), FAULTS_CRASH_WAVE events per wave (default 8000).
set -eu
. "$(dirname "$0")/lib.sh"

ROUNDS=${FAULTS_CRASH_ROUNDS:-24}
RATE=${FAULTS_CRASH_RATE:-4000}
WAVE=${FAULTS_CRASH_WAVE:-8000}
[ "$ROUNDS" -ge 20 ] || fail "FAULTS_CRASH_ROUNDS must be at least 20"

faults_setup
t_begin=$(now_ms)
now=$(now_s)
BASE=$((now - now % 3600 - 3600 + 61)) # previous hour + 61 s; cells: that hour and the 2 before

# slot K: namespace, metric, value, extra args
slot_args() {
    case $1 in
    1) echo "crash-a http_requests 1" ;;
    2) echo "crash-b http_requests 2" ;;
    3) echo "crash-c bytes_out 7" ;;
    4) echo "crash-d vcpu_seconds 3" ;;
    esac
}
waves=0
wave_list=
start_wave() {
    # shellcheck disable=SC2046
    set -- "$1" $(slot_args "$1")
    waves=$((waves + 1))
    _name=w$waves
    wave_list="$wave_list $_name"
    eval "slot_$1=$_name"
    expect_spread "$2" "$3" "$4" "$WAVE" "$BASE" 3
    if [ "$1" = 4 ]; then
        set -- "$@" --label object=lb-1 --label site=s-1
    fi
    _k=$1 _ns=$2 _m=$3 _v=$4
    shift 4
    bg_run "$_name" "$TALLYCTL" emit --endpoint "$INGEST" --producer "crash-p$_k" --ns "$_ns" \
        --metric "$_m" --value "$_v" --count "$WAVE" --rate "$RATE" --ts "$BASE" \
        --spread-hours 3 --timeout 240 --json "$@"
}
# top_up — every slot whose wave ended (successfully) starts the next one.
top_up() {
    for _k in 1 2 3 4; do
        eval "_w=\${slot_$_k:-}"
        if [ -z "$_w" ]; then
            start_wave "$_k"
        elif bg_done "$_w"; then
            [ "$(bg_status "$_w")" = 0 ] || fail "wave $_w (slot $_k) ended with status $(bg_status "$_w"): $(cat "$T/$_w.out" "$T/$_w.err")"
            start_wave "$_k"
        fi
    done
}

say "$ROUNDS rounds of kill -9; 4 producers x $RATE events/s, waves of $WAVE events over hours $(iso $((BASE - BASE % 3600 - 7200)))..$(iso $((BASE - BASE % 3600)))"
delays=
round=0
while [ "$round" -lt "$ROUNDS" ]; do
    round=$((round + 1))
    TALLY_FLUSH_INTERVAL_MS=$(rand_int 5 50)
    export TALLY_FLUSH_INTERVAL_MS
    start_tallyd "$T/tallyd.$round.log"
    top_up
    delay=$(rand_int 0 900)
    msleep "$delay"
    crash_tallyd
    [ "$TALLYD_STATUS" = 137 ] || fail "tallyd exit status after SIGKILL is $TALLYD_STATUS, expected 137"
    committed=$(grep -o 'producers=[0-9]*' "$T/tallyd.$round.log" | head -n 1)
    say "round $round: flush ${TALLY_FLUSH_INTERVAL_MS} ms, kill -9 after ${delay} ms (${committed:-?} at start), t=$(elapsed_since "$t_begin")s"
    delays="$delays $delay"
    # an outage of random length (sometimes none) so producers must resend
    out=$(rand_int 0 5)
    [ "$out" -ge 3 ] || msleep $((out * 150))
done

export TALLY_FLUSH_INTERVAL_MS=20
start_tallyd "$T/tallyd.final.log"
say "rounds done at t=$(elapsed_since "$t_begin")s; $waves waves started; waiting for every wave to be fully acked"
i=0
for w in $wave_list; do
    while ! bg_done "$w"; do
        check_tallyd_alive
        i=$((i + 1))
        [ "$i" -le 1800 ] || fail "wave $w not finished within 180 s of the last restart"
        sleep 0.1
    done
done
resends=0
events=0
for w in $wave_list; do
    rc=$(bg_status "$w")
    [ "$rc" = 0 ] || fail "wave $w exited $rc: $(cat "$T/$w.out" "$T/$w.err")"
    grep -q '"acked":true' "$T/$w.out" || fail "wave $w not fully acked: $(cat "$T/$w.out")"
    r=$(json_field resends "$T/$w.out")
    e=$(json_field events "$T/$w.out")
    resends=$((resends + ${r:-0}))
    events=$((events + ${e:-0}))
done
dups=$(metric tally_ingest_duplicate_batches_total)
stop_tallyd 60
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
check_exact
[ "$CHECK_EVENTS" = "$events" ] || fail "expected $CHECK_EVENTS events but the waves report $events"
min=$(echo "$delays" | tr ' ' '\n' | sed '/^$/d' | sort -n | head -n 1)
max=$(echo "$delays" | tr ' ' '\n' | sed '/^$/d' | sort -n | tail -n 1)
summary "rounds=$ROUNDS events=$events waves=$waves resends=$resends kill_delay_ms=$min..$max dup_batches_after_last_restart=${dups:-?} seconds=$(elapsed_since "$t_begin")"
e2e_pass
