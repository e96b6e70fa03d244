#!/bin/sh
# test_producer_idle.sh — idle producers are dropped from memory and store, and safely: a resend
# of an old batch is a duplicate while its producer is known, and counts nothing once it is gone.
#
# With ingest.late_window_hours = 0 and ingest.future_skew_s = 0 a producer idles out after
# 0 + 1 h + 0 s. Producers p1 and p2 emit (tallyctl emit, protocol v2), plus one hand-made batch
# of p1's (python3, standard library only, pushed by nanocat) that is pushed again: a duplicate.
# tallyd then restarts under libfaketime three hours ahead: it loads both producers with their
# stored last-seen times and drops them within a tick (tally_producers_dropped_total 2,
# tally_producers 0); a restart on the real clock finds none (ready line producers=0). Last, the
# hand-made batch is pushed once more into a tallyd three hours ahead: p1 is new again, so the
# batch is no duplicate, and its event is too old to count (reason too_old): nothing counts twice.
#
# Needs libfaketime (Debian: faketime; dev.sh installs it), nanocat (nanomsg-utils), python3 and
# curl. Bounded: about 15 s.
# shellcheck disable=SC2015 # A && B || fail
set -eu
. "$(dirname "$0")/lib.sh"

command -v nanocat >/dev/null 2>&1 || fail "nanocat is needed (Debian package nanomsg-utils)"
command -v python3 >/dev/null 2>&1 || fail "python3 is needed"
command -v curl >/dev/null 2>&1 || fail "curl is needed"
FT_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
# dev.sh installs faketime for the tests: its absence is a broken setup, not a reason to skip
[ -n "$FT_LIB" ] || fail "libfaketime is needed (Debian package faketime; dev.sh installs it)"

e2e_setup

export TALLY_INGEST_LATE_WINDOW_HOURS=0
export TALLY_INGEST_FUTURE_SKEW_S=0
export TALLY_FLUSH_INTERVAL_MS=20
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# ---- helpers ------------------------------------------------------------------------------------

http_port() {
    sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1
}

ready_producers() {
    sed -n 's/.*msg=ready .* producers=\([0-9]*\) .*/\1/p' "$1" | head -n 1
}

# metric NAME — its value on /metrics now (0 when absent).
metric() {
    curl -sf "$URL/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}

# wait_metric NAME VALUE SECONDS — until NAME is VALUE; fail after SECONDS.
wait_metric() {
    _i=0
    while [ "$(metric "$1")" != "$2" ]; do
        _i=$((_i + 1))
        [ "$_i" -le $(($3 * 10)) ] || fail "$1 is $(metric "$1") after $3 s, expected $2"
        sleep 0.1
    done
}

# start_faked LOG — tallyd three hours ahead (only tallyd: curl, nanocat and tallyctl keep the
# real clock).
start_faked() {
    export LD_PRELOAD="$FT_LIB" FAKETIME="+3h"
    start_tallyd "$1"
    unset LD_PRELOAD FAKETIME
    URL="http://127.0.0.1:$(http_port "$1")"
}

start_real() {
    start_tallyd "$1"
    URL="http://127.0.0.1:$(http_port "$1")"
}

# total — "SUM COUNT" of ns idle, metric http_requests, in the store ("" when nothing).
total() {
    dump_totals --ns idle | awk '$2 == "http_requests" { print $3, $4 }'
}

# One protocol v2 batch by hand: k, v, a, p, s, b, e and the keyed-BLAKE2b tag (see
# test_ingest_auth.sh for the fuller builder). python3 mk.py OUT CRED PRODUCER SEQ VALUE
cat >"$T/mk.py" <<'EOF'
import base64, hashlib, struct, sys, time
out, cred, producer, seq, value = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
name, secret = cred.split(":", 1)
key = hashlib.blake2b(b"tally emitter mac key v2", key=base64.urlsafe_b64decode(secret + "="),
                      digest_size=32).digest()
def s(x):
    b = x.encode(); assert len(b) < 32
    return bytes([0xa0 + len(b)]) + b
u = lambda n: b"\xcf" + struct.pack(">Q", n)
i = lambda n: b"\xd3" + struct.pack(">q", n)
ev = b"\x84" + s("n") + s("idle") + s("m") + s("http_requests") + s("x") + i(value) + s("t") + u(int(time.time() * 1000))
msg = b"\x87" + s("k") + b"\x01" + s("v") + b"\x02" + s("a") + s(name) + s("p") + s(producer)
msg += s("s") + u(seq) + s("b") + u(seq) + s("e") + b"\x91" + ev
open(out, "wb").write(msg + hashlib.blake2b(msg, key=key, digest_size=32).digest())
EOF

# push FILE — send one raw message, repeatedly for a quarter second (about three copies: nanomsg
# has no linger, so a one-shot nanocat can lose its message).
push() {
    _rc=0
    timeout 0.25 nanocat --push --connect "$INGEST" --file "$1" --interval 0.1 \
        >/dev/null 2>"$T/nanocat.err" || _rc=$?
    [ "$_rc" -eq 124 ] || fail "nanocat exited $_rc sending ${1##*/}: $(cat "$T/nanocat.err")"
}

# With a late window of 0 h an event stamped just before an hour starts and received after is
# too old: keep the hand-made batch clear of that edge.
into_hour=$(($(now_s) % 3600))
if [ "$into_hour" -ge 3570 ]; then
    say "waiting $((3602 - into_hour)) s for the hour to turn"
    sleep $((3602 - into_hour))
fi

# ---- 1: producers p1 and p2 on the real clock; a resend is a duplicate ---------------------------

start_real "$T/tallyd-1.log"
say "tallyd ready (pid $TALLYD_PID), idle period 1 h"
for p in p1 p2; do
    "$TALLYCTL" emit --endpoint "$INGEST" --producer "$p" --ns idle --metric http_requests \
        --value 1 --count 5 --batch 2 --timeout 20 >"$T/emit.out" 2>&1 ||
        fail "tallyctl emit --producer $p was not acked: $(cat "$T/emit.out")"
done
# a batch of p1's own, later in its sequence than tallyctl's (which start at its clock in µs)
seq=$(python3 -c 'import time; print(int(time.time() * 1e6))')
python3 "$T/mk.py" "$T/old.v2" "$TALLY_KEY" p1 "$seq" 9 || fail "mk.py failed"
d0=$(metric tally_ingest_duplicate_batches_total)
push "$T/old.v2"
wait_metric tally_ingest_events_committed_total 11 10
push "$T/old.v2"
sleep 0.3
d1=$(metric tally_ingest_duplicate_batches_total)
[ "$d1" -ge $((d0 + 2)) ] ||
    fail "resends of a counted batch: duplicates $d0 -> $d1, expected at least 2 more"
[ "$(metric tally_ingest_events_total)" = 11 ] ||
    fail "a resent batch was counted again: tally_ingest_events_total $(metric tally_ingest_events_total)"
[ "$(metric tally_producers)" = 2 ] || fail "tally_producers $(metric tally_producers), expected 2"
[ "$(metric tally_producers_dropped_total)" = 0 ] || fail "a producer dropped within the hour"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
[ "$(total)" = "19 11" ] || fail "ns idle: '$(total)', expected '19 11'"
say "p1, p2: 11 events counted (19 11); p1's batch resent: $((d1 - d0)) duplicates, counted once"

# ---- 2: three hours later both have idled out ----------------------------------------------------

start_faked "$T/tallyd-2.log"
[ "$(ready_producers "$T/tallyd-2.log")" = 2 ] ||
    fail "the faked tallyd loaded $(ready_producers "$T/tallyd-2.log") producers, expected 2"
t0=$(now_ms)
wait_metric tally_producers_dropped_total 2 10
wait_metric tally_producers 0 5
say "3 h later: both dropped within $(elapsed_since "$t0") s (tally_producers 0)"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "the faked tallyd exited $TALLYD_STATUS on SIGTERM"

# ---- 3: gone from the store too -----------------------------------------------------------------

start_real "$T/tallyd-3.log"
[ "$(ready_producers "$T/tallyd-3.log")" = 0 ] ||
    fail "after the drop tallyd loaded $(ready_producers "$T/tallyd-3.log") producers, expected 0"
[ "$(metric tally_producers)" = 0 ] || fail "tally_producers $(metric tally_producers), expected 0"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
[ "$(total)" = "19 11" ] || fail "the drop changed the usage: '$(total)', expected '19 11'"
say "restart on the real clock: ready with producers=0; usage unchanged (19 11)"

# ---- 4: the drop is safe: the old batch again, to a tallyd for whom it is 3 h old ---------------

start_faked "$T/tallyd-4.log"
o0=$(curl -sf "$URL/metrics" | awk '$1 == "tally_ingest_rejected_total{reason=\"too_old\"}" { print $2 }')
push "$T/old.v2"
wait_metric tally_producers 1 10
i=0
while :; do
    o1=$(curl -sf "$URL/metrics" | awk '$1 == "tally_ingest_rejected_total{reason=\"too_old\"}" { print $2 }')
    [ "${o1:-0}" -gt "${o0:-0}" ] && break
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "the resent batch's event was not refused as too old (too_old ${o0:-0} -> ${o1:-0})"
    sleep 0.1
done
[ "$(metric tally_ingest_events_total)" = 0 ] ||
    fail "the resent batch counted $(metric tally_ingest_events_total) events after its producer was dropped"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "the faked tallyd exited $TALLYD_STATUS on SIGTERM"
[ "$(total)" = "19 11" ] || fail "a resend after the drop counted: '$(total)', expected '19 11'"
say "p1's old batch after the drop: p1 new again, its event too old (too_old ${o0:-0} -> $o1); usage unchanged"
e2e_pass
