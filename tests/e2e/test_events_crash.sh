#!/bin/sh
# test_events_crash.sh — exactly once through the HTTP door across kill -9: three emitters
# (tests/e2e/events_emitter.py) POST batches of CloudEvents with unique ids to /api/v1/events,
# each resending a request until it is answered 2xx (and resending some answered ones on
# purpose), while tallyd is killed -9 at random moments and restarted on the same store and
# port. In the end every event, all answered 2xx at last, must be in the store exactly once:
# the hourly and monthly totals equal the emitters' own totals exactly.
#
# Knobs (environment): EVCRASH_KILLS (default 3), EVCRASH_SECONDS that emitters start new
# requests (default 12), EVCRASH_SEED for the kill moments (default: from the pid; printed).
# Bounded: about 20 s; the emitters give up after 60 s. Needs python3.
set -eu
. "$(dirname "$0")/lib.sh"

KILLS=${EVCRASH_KILLS:-3}
SECONDS_SENDING=${EVCRASH_SECONDS:-12}
SEED=${EVCRASH_SEED:-$$}
PY=$(command -v python3 || echo /usr/bin/python3)
[ -x "$PY" ] || fail "python3 is needed"
EMITTER="$TALLY_SOURCE_DIR/tests/e2e/events_emitter.py"
[ -f "$EMITTER" ] || fail "no $EMITTER"

e2e_setup
t_begin=$(now_ms)
export TALLY_FLUSH_INTERVAL_MS=50
# one port for every tallyd of the run, so the emitters keep their URL across restarts
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
[ -n "$PORT" ] || fail "no free tcp port"
export TALLY_HTTP_LISTEN="127.0.0.1:$PORT"
URL="http://127.0.0.1:$PORT"

start_tallyd "$T/tallyd.0.log"
say "tallyd ready (pid $TALLYD_PID) at $URL; emitters send for ${SECONDS_SENDING}s; $KILLS kills, seed $SEED"

# emitter K NS-LIST BATCH — batches of BATCH events over NS-LIST, resending until 2xx.
emitter() {
    bg_run "em$1" "$PY" "$EMITTER" --url "$URL" --count 10000000 --duration "$SECONDS_SENDING" \
        --batch "$3" --namespaces "$2" --metric api_calls --value-kinds int,str --max-value 1000 \
        --resend 0.1 --seed "$((SEED + $1))" --id-prefix "crash-$1-" --source "crash-e2e-$1" \
        --timeout 5 --retry-pause 0.05 --deadline 60
}
emitter 1 c1,c2 100
emitter 2 c3 100
emitter 3 c4,c5 10

emitters_running() {
    _n=0
    for _k in 1 2 3; do
        bg_done "em$_k" || _n=$((_n + 1))
    done
    echo "$_n"
}

# the kill moments: 1.0 to 3.0 s apart (awk's rand, seeded), outages of 0 to 0.5 s
awk -v s="$SEED" -v n="$KILLS" 'BEGIN { srand(s); for (i = 0; i < n; i++)
    printf "%.2f %.2f\n", 1.0 + 2.0 * rand(), 0.5 * rand() }' >"$T/schedule"
kills=0
last_log="$T/tallyd.0.log"
while read -r gap outage; do
    sleep "$gap"
    [ "$(emitters_running)" -gt 0 ] || fail "the emitters ended before kill #$((kills + 1)): the run is too short"
    crash_tallyd
    kills=$((kills + 1))
    [ "$TALLYD_STATUS" = 137 ] || fail "tallyd exit status after SIGKILL is $TALLYD_STATUS, expected 137"
    say "kill -9 #$kills at t=$(elapsed_since "$t_begin")s; down for ${outage}s"
    sleep "$outage"
    last_log="$T/tallyd.$kills.log"
    start_tallyd "$last_log"
done <"$T/schedule"

say "waiting for the emitters (each exits 0 once every request was answered 2xx)"
while [ "$(emitters_running)" -gt 0 ]; do
    check_tallyd_alive
    sleep 0.2
done
: >"$T/expected.raw"
retries=0
interrupted=0
for k in 1 2 3; do
    rc=$(bg_status "em$k")
    say "emitter $k: exit $rc: $(cat "$T/em$k.err")"
    [ "$rc" -eq 0 ] || fail "emitter $k did not get every request answered 2xx (exit $rc)"
    cat "$T/em$k.out" >>"$T/expected.raw"
    r=$(sed -n 's/.* requests (\([0-9]*\) retried.*/\1/p' "$T/em$k.err")
    i=$(sed -n 's/.* \([0-9]*\) interrupted.*/\1/p' "$T/em$k.err")
    retries=$((retries + ${r:-0}))
    interrupted=$((interrupted + ${i:-0}))
done
say "emitters done at t=$(elapsed_since "$t_begin")s; $retries attempts without a 2xx were repeated, $interrupted of them cut off in flight by a kill"
# the kills must have caught requests in flight (accepted, answer pending): each emitter
# spends most of its time waiting for a flush, so nine chances (3 emitters x 3 kills) to miss
# them all would be very unlucky
[ "$interrupted" -gt 0 ] || fail "no request was in flight at any kill: the kills tested only refused connections"

stop_tallyd 60
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM, expected 0"

expected=$(sort "$T/expected.raw")
for period in hour month; do
    dump_records --period "$period" >"$T/records.$period" || exit 1
    got=$(awk '{ k = $1 " " $2; s[k] += $4; c[k] += $5 }
               END { for (k in s) printf "%s %d %d\n", k, s[k], c[k] }' "$T/records.$period" | sort)
    if [ "$got" != "$expected" ]; then
        printf 'got (ns metric sum count):\n%s\nexpected:\n%s\n' "$got" "$expected" >&2
        fail "$period rollups differ from the events answered 2xx: lost or counted twice"
    fi
done
events=$(awk '{ n += $4 } END { print n }' "$T/expected.raw")
say "$events events, each answered 2xx, counted exactly once across $kills kill -9 restarts (hour and month)"
say "total time $(elapsed_since "$t_begin")s"
e2e_pass
