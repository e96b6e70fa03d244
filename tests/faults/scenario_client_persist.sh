#!/bin/sh
# scenario_client_persist.sh — a producer killed -9 and restarted with the same producer id and its own persisted sequence: no loss, no double count.
#
# tests/faults/persist_emitter.c keeps its outbox position and sequence
# numbers in a state file (see the comment at its top): on restart it resends
# every chunk not known to be acked under the SAME sequence number, so what
# the daemon had already committed is dropped as a duplicate. Two emitters
# run at once; each is killed -9 at random moments several times (once
# together with tallyd) and restarted until it completes. The store must then
# hold every event exactly once per (ns, metric, hour), and the daemon must
# have dropped resent chunks as duplicates (proof that the restarts resent
# something already counted).
#
# Knobs: FAULTS_PERSIST_KILLS (default 6), FAULTS_PERSIST_EVENTS (default 80000).
set -eu
. "$(dirname "$0")/lib.sh"

KILLS=${FAULTS_PERSIST_KILLS:-6}
EVENTS=${FAULTS_PERSIST_EVENTS:-80000}
faults_setup
[ -x "$PERSIST_EMITTER" ] || fail "no $PERSIST_EMITTER (built from tests/faults/CMakeLists.txt)"
t_begin=$(now_ms)
export TALLY_FLUSH_INTERVAL_MS=20
start_tallyd "$T/tallyd.0.log"
tallyd_runs=0

# emitter K: runs RUN of persist emitter K
run_emitter() {
    _k=$1 _run=$2
    case $_k in
    a) _v=1 _m=http_requests ;;
    b) _v=4 _m=api_calls ;;
    esac
    bg_run "em$_k.$_run" "$PERSIST_EMITTER" --state "$T/state.$_k" --endpoint "$INGEST" \
        --producer "persist-$_k" --ns "persist-$_k" --metric "$_m" --events "$EVENTS" \
        --batch 50 --value "$_v" --hours 3 --chunk-delay-ms 4 --timeout 120
}
state_field() {
    awk -v k="$2" '$1 == k { print $2 }' "$T/state.$1" 2>/dev/null
}

run=0
run_emitter a 0
run_emitter b 0
while [ "$run" -lt "$KILLS" ]; do
    msleep "$(rand_int 150 700)"
    # a fast machine may finish before every planned kill: at least 3
    # rounds (one of them with tallyd) must have happened by then
    if bg_done "ema.$run" || bg_done "emb.$run"; then
        [ "$run" -ge 3 ] || fail "an emitter finished after only $run kills: raise FAULTS_PERSIST_EVENTS"
        say "an emitter finished after $run kill rounds (fewer than the $KILLS planned)"
        KILLS=$run
        break
    fi
    run=$((run + 1))
    for k in a b; do
        kill -KILL "$(cat "$T/em$k.$((run - 1)).pid")"
    done
    # once, tallyd dies with them (the producer and the daemon crash together)
    if [ "$run" -eq 3 ]; then
        crash_tallyd
        tallyd_runs=$((tallyd_runs + 1))
        start_tallyd "$T/tallyd.$tallyd_runs.log"
    fi
    for k in a b; do
        while ! bg_done "em$k.$((run - 1))"; do sleep 0.05; done
        say "kill -9 #$run of emitter $k: state says $(state_field "$k" acked_chunks) chunks acked, sequences reserved below $(state_field "$k" reserved) (base $(state_field "$k" seq_base))"
        run_emitter "$k" "$run"
    done
done
for k in a b; do
    while ! bg_done "em$k.$run"; do
        check_tallyd_alive
        sleep 0.1
    done
    [ "$(bg_status "em$k.$run")" = 0 ] || fail "emitter $k did not complete: $(cat "$T/em$k.$run.out" "$T/em$k.$run.err")"
    say "emitter $k completed: $(cat "$T/em$k.$run.out")"
    grep -q '"restarted":true' "$T/em$k.$run.out" || fail "the last run of emitter $k did not resume its state file"
done
dups=$(metric tally_ingest_duplicate_batches_total)
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
for k in a b; do
    ts_base=$(state_field "$k" ts_base)
    case $k in
    a) expect_spread persist-a http_requests 1 "$EVENTS" $((ts_base / 1000)) 3 ;;
    b) expect_spread persist-b api_calls 4 "$EVENTS" $((ts_base / 1000)) 3 ;;
    esac
done
check_exact
resends=0
for f in "$T"/em*.out; do
    r=$(json_field resends "$f")
    resends=$((resends + ${r:-0}))
done
[ "${dups:-0}" -gt 0 ] || say "note: no resent chunk reached the last tallyd as a duplicate (the restarts resent nothing already counted there)"
summary "emitter_kills=$((KILLS * 2)) tallyd_kills=$tallyd_runs events=$CHECK_EVENTS dup_batches_dropped_by_last_tallyd=${dups:-?} resends=$resends seconds=$(elapsed_since "$t_begin")"
e2e_pass
