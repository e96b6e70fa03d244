#!/bin/sh
# test_ingest_auth.sh — trusted ingest end to end: an attacker who can reach the tcp ingest
# endpoint cannot spoof, blind or inflate a real producer (unauthenticated v1, a bad MAC, another
# emitter's authentic batch under the same producer id, a sequence at 2^64-1), emitters are held
# to their namespaces (scope; `system` reserved) and to ingest.max_producers_per_credential, and
# the tcp ack topic never names a producer.
#
# Well-formed traffic goes through tallyctl emit (libtally, protocol v2 with TALLY_KEY); the
# hand-made batches are built by python3 (standard library only: hashlib.blake2b is the MAC) and
# pushed with nanocat (Debian: nanomsg-utils). Needs curl for /metrics.
# shellcheck disable=SC2015 # A && B || fail
set -eu
. "$(dirname "$0")/lib.sh"

command -v nanocat >/dev/null 2>&1 || fail "nanocat is needed (Debian package nanomsg-utils)"
command -v python3 >/dev/null 2>&1 || fail "python3 is needed"
command -v curl >/dev/null 2>&1 || fail "curl is needed"

e2e_setup

DEV_KEY="dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"   # every namespace
DEMO_KEY="demo-emitter:O7tNEPJEh9nQkqAoh_Vfk1IdSJSnySNKVB9RDoTiTOw" # namespace demo only
export TALLY_FLUSH_INTERVAL_MS=20

# ---- helpers ------------------------------------------------------------------------------------

# free_port_pair — a port P such that P and P + 1 are free on 127.0.0.1 (tallyctl's default ack
# endpoint is the ingest port + 1).
free_port_pair() {
    python3 - <<'EOF'
import socket
for _ in range(200):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1))
    except OSError:
        a.close(); b.close(); continue
    a.close(); b.close(); print(p); break
EOF
}

# The batch builder: python3 mk.py OUT --cred NAME:SECRET|--v1 [--name N] [--tag good|bad|other:NAME:SECRET|trunc|none]
#   --producer P --seq S --base B --event NS:METRIC:VALUE [...]
# writes one batch to OUT: protocol v2 (k, v, a, p, s, b, e + keyed-BLAKE2b tag) or v1.
cat >"$T/mk.py" <<'EOF'
import base64, hashlib, struct, sys, time

def key_of(cred):
    name, secret = cred.split(":", 1)
    raw = base64.urlsafe_b64decode(secret + "=")
    assert len(raw) == 32
    return name, hashlib.blake2b(b"tally emitter mac key v2", key=raw, digest_size=32).digest()

def s(x):
    b = x.encode()
    assert len(b) < 32
    return bytes([0xa0 + len(b)]) + b

def u(n):
    return b"\xcf" + struct.pack(">Q", n)

def i(n):
    return b"\xd3" + struct.pack(">q", n)

args = sys.argv[2:]
out = sys.argv[1]
opt = {"tag": "good", "events": []}
while args:
    a = args.pop(0)
    if a == "--v1":
        opt["v1"] = True
    elif a == "--event":
        opt["events"].append(args.pop(0))
    else:
        opt[a[2:]] = args.pop(0)
now = int(time.time() * 1000)
evs = b""
for e in opt["events"]:
    ns, metric, value = e.split(":")
    evs += b"\x84" + s("n") + s(ns) + s("m") + s(metric) + s("x") + i(int(value)) + s("t") + u(now)
body = s("p") + s(opt["producer"]) + s("s") + u(int(opt["seq"])) + s("b") + u(int(opt["base"]))
body += s("e") + bytes([0x90 + len(opt["events"])]) + evs
if opt.get("v1"):
    msg = b"\x86" + s("k") + b"\x01" + s("v") + b"\x01" + body
else:
    name, key = key_of(opt["cred"])
    name = opt.get("name", name)
    msg = b"\x87" + s("k") + b"\x01" + s("v") + b"\x02" + s("a") + s(name) + body
    t = opt["tag"]
    if t.startswith("other:"):
        msg += hashlib.blake2b(msg, key=key_of(t[6:])[1], digest_size=32).digest()
    elif t == "bad":
        tag = bytearray(hashlib.blake2b(msg, key=key, digest_size=32).digest())
        tag[7] ^= 0x10
        msg += bytes(tag)
    elif t == "trunc":
        msg += hashlib.blake2b(msg, key=key, digest_size=32).digest()[:31]
    elif t == "good":
        msg += hashlib.blake2b(msg, key=key, digest_size=32).digest()
    else:
        assert t == "none"
open(out, "wb").write(msg)
EOF

mk() {
    python3 "$T/mk.py" "$@" || fail "mk.py $* failed"
}

# push FILE [ENDPOINT] — send one raw message, repeatedly for a quarter second (about three
# copies: nanomsg has no linger, so a one-shot nanocat can lose its message).
push() {
    _rc=0
    timeout 0.25 nanocat --push --connect "${2:-$TCP_IN}" --file "$1" --interval 0.1 \
        >/dev/null 2>"$T/nanocat.err" || _rc=$?
    [ "$_rc" -eq 124 ] || fail "nanocat exited $_rc sending ${1##*/}: $(cat "$T/nanocat.err")"
}

# rejects REASON — tally_ingest_rejected_total{reason="REASON"} now.
rejects() {
    curl -sf "$URL/metrics" | awk -v r="tally_ingest_rejected_total{reason=\"$1\"}" \
        '$1 == r { v = $2 } END { print v + 0 }'
}

# wait_rejects REASON MIN — wait (10 s at most) until REASON has counted at least MIN.
wait_rejects() {
    _i=0
    while [ "$(rejects "$1")" -lt "$2" ]; do
        _i=$((_i + 1))
        [ "$_i" -le 100 ] || fail "rejects{reason=$1} is $(rejects "$1"), expected at least $2"
        sleep 0.1
    done
}

# push_refused FILE REASON [ENDPOINT] — push FILE and wait until REASON counts it; then let the
# other copies land, so the next count starts clean.
push_refused() {
    sleep 0.3
    _n0=$(rejects "$2")
    push "$1" "${3:-$TCP_IN}"
    wait_rejects "$2" $((_n0 + 1))
    sleep 0.3
}

# total NS — "SUM COUNT" of metric http_requests in NS ("" when nothing).
total() {
    dump_totals --ns "$1" | awk '$2 == "http_requests" { print $3, $4 }'
}

# emit KEY PRODUCER NS VALUE COUNT [TIMEOUT] — tallyctl emit over tcp; its exit status.
emit() {
    _to=${6:-30}
    TALLY_KEY=$1 "$TALLYCTL" emit --endpoint "$TCP_IN" --producer "$2" --ns "$3" \
        --metric http_requests --value "$4" --count "$5" --batch 7 --timeout "$_to" \
        >"$T/emit.out" 2>&1
}

emit_ok() {
    emit "$@" || fail "tallyctl emit $2 $3 was not acked: $(cat "$T/emit.out")"
}

# emit_refused KEY PRODUCER NS — the events are refused: tallyctl gives up non-zero.
emit_refused() {
    if emit "$1" "$2" "$3" 1 1 3; then
        fail "tallyctl emit by $2 into $3 was acked; it must be refused"
    fi
}

http_port() {
    sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1
}

U64MAX=18446744073709551615

# ---- phase 1: spoofing ----------------------------------------------------------------------------

P=$(free_port_pair)
[ -n "$P" ] || fail "no free pair of tcp ports"
TCP_IN="tcp://127.0.0.1:$P"
TCP_ACKS="tcp://127.0.0.1:$((P + 1))"
export TALLY_INGEST_LISTEN="ipc://$T/ingest,$TCP_IN"
export TALLY_INGEST_ACKS="ipc://$T/ingest.acks,$TCP_ACKS"
start_tallyd "$T/tallyd.log"
URL="http://127.0.0.1:$(http_port "$T/tallyd.log")"
say "tallyd ready (pid $TALLYD_PID), ingest $TALLY_INGEST_LISTEN, acks $TALLY_INGEST_ACKS"

# (g) a stranger subscribes to every topic of the tcp ack endpoint while victim emits
bg_run acksub nanocat --sub --connect "$TCP_ACKS" --subscribe '' --raw
sleep 0.5

emit_ok "$DEV_KEY" victim vic 7 10
[ "$(total vic)" = "70 10" ] || fail "victim's first run: ns vic '$(total vic)', expected '70 10'"
say "victim (dev-emitter) sent 10 events: counted (70 10)"

# (a) unauthenticated v1 batches naming victim, at the end of the sequence space, writing -1000
# into victim's namespace and 10^12 into another: over tcp, and over ipc (require_auth is on);
# and one at a plausible sequence, which would count were it let in
now_us=$(python3 -c 'import time; print(int(time.time() * 1e6))')
mk "$T/a.v1" --v1 --producer victim --seq "$U64MAX" --base "$U64MAX" \
    --event vic:http_requests:-1000 --event loot:http_requests:1000000000000
mk "$T/a.v1now" --v1 --producer victim --seq "$now_us" --base "$now_us" \
    --event vic:http_requests:-1000 --event loot:http_requests:1000000000000
for ep in "$TCP_IN" "$INGEST"; do
    for f in a.v1 a.v1now; do
        push_refused "$T/$f" unauthenticated "$ep"
    done
done
say "(a) unauthenticated v1 as victim, over tcp and ipc: refused (unauthenticated x$(rejects unauthenticated))"

# (b) v2 naming dev-emitter: a flipped tag bit, demo-emitter's key, a 31-byte tag, no tag; and a
# credential nobody holds. Plausible sequences: any of them let in would count.
n00=$(rejects auth)
for t in bad "other:$DEMO_KEY" trunc none nobody; do
    now_us=$(python3 -c 'import time; print(int(time.time() * 1e6))')
    if [ "$t" = nobody ]; then
        mk "$T/b.v2" --cred "$DEV_KEY" --name nobody --producer victim --seq "$now_us" \
            --base "$now_us" --event vic:http_requests:-1000 --event loot:http_requests:1000000000000
    else
        mk "$T/b.v2" --cred "$DEV_KEY" --tag "$t" --producer victim --seq "$now_us" \
            --base "$now_us" --event vic:http_requests:-1000 --event loot:http_requests:1000000000000
    fi
    push_refused "$T/b.v2" auth
done
say "(b) v2 as dev-emitter without its key, or as an unknown credential: refused (auth x$(($(rejects auth) - n00)))"

# (c) demo-emitter's authentic batches naming producer victim: at 2^64-1 (refused: window), and
# 250 s ahead of the clock in microseconds (inside the window rule, so counted in demo). Were the
# producer identity the bare id, the second would lift victim's floor above its real sequences.
mk "$T/c.max" --cred "$DEMO_KEY" --producer victim --seq "$U64MAX" --base "$U64MAX" \
    --event demo:http_requests:5
push_refused "$T/c.max" window
ahead=$(python3 -c 'import time; print(int(time.time() * 1e6) + 250 * 10**6)')
mk "$T/c.ahead" --cred "$DEMO_KEY" --producer victim --seq "$ahead" --base "$ahead" \
    --event demo:http_requests:11
push "$T/c.ahead"
i=0
until [ "$(total demo)" = "11 1" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "(c) demo-emitter's authentic batch: ns demo '$(total demo)', expected '11 1' (counted once)"
    sleep 0.1
done
say "(c) demo-emitter as victim: 2^64-1 refused (window), the authentic one counted once in demo"

# victim again: a new run, the same producer id; every event counts
emit_ok "$DEV_KEY" victim vic 3 20
[ "$(total vic)" = "130 30" ] ||
    fail "victim's second run: ns vic '$(total vic)', expected '130 30' (spoofed, blinded or lost)"
[ -z "$(total loot)" ] || fail "the attacker's namespace loot holds '$(total loot)'"
[ "$(total demo)" = "11 1" ] || fail "ns demo '$(total demo)', expected '11 1'"
say "victim's second run: counted exactly (130 30); nothing in loot; demo untouched"

# (g) what the stranger saw on the tcp ack topic
sleep 0.3
pid=$(cat "$T/acksub.pid")
kill "$pid" 2>/dev/null || true
[ -s "$T/acksub.out" ] || fail "(g) the subscriber received no ack at all (the check would be void)"
if grep -a -q victim "$T/acksub.out"; then
    fail "(g) an ack on $TCP_ACKS names producer victim in the clear"
fi
say "(g) $(wc -c <"$T/acksub.out") bytes of tcp acks, none naming victim"

# (d) demo-emitter into other: refused whole, reason scope; nothing counted
n0=$(rejects scope)
emit_refused "$DEMO_KEY" d-prod other
wait_rejects scope $((n0 + 1))
mk "$T/d.mixed" --cred "$DEMO_KEY" --producer d-mixed --seq 100 --base 100 \
    --event demo:http_requests:1000 --event other:http_requests:1000
push_refused "$T/d.mixed" scope
[ -z "$(total other)" ] || fail "(d) ns other holds '$(total other)'"
[ "$(total demo)" = "11 1" ] || fail "(d) a batch with an out-of-scope event counted in demo: '$(total demo)'"
say "(d) demo-emitter into other: refused whole (scope), tallyctl exit non-zero"

# (e) system: reserved even for an emitter of every namespace
n0=$(rejects reserved)
emit_refused "$DEV_KEY" e-prod system
wait_rejects reserved $((n0 + 1))
[ -z "$(total system)" ] || fail "(e) ns system holds '$(total system)'"
say "(e) dev-emitter into system: refused (reserved)"

# (h) the sequence rule: s = b = 2^64-1 under dev-emitter's own key is refused (window), and the
# producer keeps counting afterwards
emit_ok "$DEV_KEY" hprod hns 1 5
mk "$T/h.max" --cred "$DEV_KEY" --producer hprod --seq "$U64MAX" --base "$U64MAX" \
    --event hns:http_requests:1000
push_refused "$T/h.max" window
emit_ok "$DEV_KEY" hprod hns 1 5
[ "$(total hns)" = "10 10" ] || fail "(h) ns hns '$(total hns)', expected '10 10'"
# the same as the very first batch of a producer (no floor yet: only the clock rule refuses it;
# taken, it would lift the floor to 2^64-2 and the producer's real batches would all be duplicates)
mk "$T/h.new" --cred "$DEV_KEY" --producer hnew --seq "$U64MAX" --base "$U64MAX" \
    --event hns:http_requests:1000
push_refused "$T/h.new" window
emit_ok "$DEV_KEY" hnew hns 1 5
[ "$(total hns)" = "15 15" ] || fail "(h) ns hns '$(total hns)', expected '15 15' (hnew blinded?)"
say "(h) 2^64-1 from an authentic producer: refused (window), as its first batch too; it keeps counting"

# replay: an authentic batch captured and pushed again later counts once
mk "$T/r.v2" --cred "$DEV_KEY" --producer rprod --seq 1000 --base 1000 --event rns:http_requests:9
push "$T/r.v2"
push "$T/r.v2"
sleep 0.3
push "$T/r.v2"
i=0
until [ -n "$(total rns)" ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || fail "the authentic hand-made batch never counted"
    sleep 0.1
done
sleep 0.3
[ "$(total rns)" = "9 1" ] || fail "a replayed authentic batch: ns rns '$(total rns)', expected '9 1'"
say "a replayed authentic batch counted once"

say "rejects: unauthenticated $(rejects unauthenticated), auth $(rejects auth), window $(rejects window), scope $(rejects scope), reserved $(rejects reserved)"
check_tallyd_alive
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"

# ---- phase 2: ingest.max_producers_per_credential = 3 -----------------------------------------------

export TALLY_STORAGE_DIR="$T/store2"
export TALLY_INGEST_MAX_PRODUCERS_PER_CREDENTIAL=3
start_tallyd "$T/tallyd2.log"
URL="http://127.0.0.1:$(http_port "$T/tallyd2.log")"
for p in f1 f2 f3; do
    emit_ok "$DEV_KEY" "$p" fcap 1 1
done
emit_refused "$DEV_KEY" f4 fcap
wait_rejects producers 1
for p in f1 f2 f3; do
    emit_ok "$DEV_KEY" "$p" fcap 1 1
done
# the cap is per credential: demo-emitter's first producer is welcome
emit_ok "$DEMO_KEY" f4 demo 1 1
[ "$(total fcap)" = "6 6" ] || fail "(f) ns fcap '$(total fcap)', expected '6 6'"
say "(f) a 4th producer of dev-emitter: refused (producers x$(rejects producers)); the first 3 keep counting"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
e2e_pass
