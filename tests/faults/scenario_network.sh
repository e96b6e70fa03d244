#!/bin/sh
# scenario_network.sh — ingest connections dropped and restored (tallyd restarted on the same tcp:// and ipc:// endpoints): clients reconnect and resend; no loss, no duplicates.
#
# tallyd listens on an ipc:// and a tcp:// endpoint at once (acks likewise).
# Two producers send over tcp, two over ipc, spread over 3 hours. tallyd is
# restarted 6 times, alternately with SIGTERM (clean: the connections close)
# and kill -9 (the peer vanishes), with outages of 0.2..1.5 s during which
# nothing listens. Every producer must end fully acked, and the store must
# hold each event exactly once per (ns, metric, hour).
#
# Knobs: FAULTS_NET_RESTARTS (default 6), FAULTS_NET_EVENTS per producer
# (default 60000), FAULTS_NET_RATE events/s per producer (default 4000).
set -eu
. "$(dirname "$0")/lib.sh"

RESTARTS=${FAULTS_NET_RESTARTS:-6}
EVENTS=${FAULTS_NET_EVENTS:-60000}
RATE=${FAULTS_NET_RATE:-4000}
faults_setup
t_begin=$(now_ms)
PORT=$(rand_int 20000 50000)
TCP=tcp://127.0.0.1:$PORT
export TALLY_INGEST_LISTEN="ipc://$T/ingest, $TCP"
export TALLY_INGEST_ACKS="ipc://$T/ingest.acks, tcp://127.0.0.1:$((PORT + 1))"
export TALLY_FLUSH_INTERVAL_MS=25
now=$(now_s)
BASE=$((now - now % 3600 - 3600 + 125))
start_tallyd "$T/tallyd.0.log"
grep -q "ingest=ipc://$T/ingest,$TCP" "$T/tallyd.0.log" ||
    say "note: ready line shows $(grep -o 'ingest=[^ ]*' "$T/tallyd.0.log")"

start_producer() { # NAME ENDPOINT NS VALUE
    expect_spread "$3" http_requests "$4" "$EVENTS" "$BASE" 3
    bg_run "$1" "$TALLYCTL" emit --endpoint "$2" --producer "net-$1" --ns "$3" \
        --metric http_requests --value "$4" --count "$EVENTS" --rate "$RATE" --ts "$BASE" \
        --spread-hours 3 --timeout 240 --json
}
start_producer tcp1 "$TCP" net-tcp 1
start_producer tcp2 "$TCP" net-tcp 10
start_producer ipc1 "$INGEST" net-ipc 1
start_producer ipc2 "$INGEST" net-ipc 10
all="tcp1 tcp2 ipc1 ipc2"
running() {
    _n=0
    for _p in $all; do bg_done "$_p" || _n=$((_n + 1)); done
    echo "$_n"
}

r=0
while [ "$r" -lt "$RESTARTS" ]; do
    msleep "$(rand_int 600 1200)"
    [ "$(running)" -gt 0 ] || fail "producers finished after $r restarts: raise FAULTS_NET_EVENTS"
    r=$((r + 1))
    if [ $((r % 2)) = 1 ]; then
        how=SIGTERM
        stop_tallyd 30
        [ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
    else
        how=SIGKILL
        crash_tallyd
    fi
    out=$(rand_int 200 1500)
    msleep "$out"
    start_tallyd "$T/tallyd.$r.log"
    say "restart $r: $how, ${out} ms with nothing listening on $TCP and ipc://$T/ingest; producers running $(running)/4"
done

i=0
while [ "$(running)" -gt 0 ]; do
    check_tallyd_alive
    i=$((i + 1))
    [ "$i" -le 1800 ] || fail "producers not done within 180 s"
    sleep 0.1
done
resends=0
for p in $all; do
    [ "$(bg_status "$p")" = 0 ] || fail "producer $p not fully acked: $(cat "$T/$p.out" "$T/$p.err")"
    rs=$(json_field resends "$T/$p.out")
    say "producer $p: $(cat "$T/$p.out")"
    resends=$((resends + ${rs:-0}))
done
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS"
check_exact
[ "$resends" -gt 0 ] || say "note: no producer had to resend (outages too short to matter?)"
summary "restarts=$RESTARTS transports=tcp+ipc events=$CHECK_EVENTS resends=$resends seconds=$(elapsed_since "$t_begin")"
e2e_pass
