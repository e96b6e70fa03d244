#!/bin/sh
# test_hostile_input.sh — malformed ingest messages (garbage, random bytes,
# truncated or lying msgpack, wrong kind/version, deep nesting, oversize)
# neither crash nor wedge tallyd: it logs `rejected reason=...`, keeps
# counting valid events, counts a replayed batch once, and stops cleanly.
# The raw messages are pushed with nanocat (Debian: nanomsg-utils); without
# it that part is skipped.
# shellcheck disable=SC2015,SC2086,SC2119 # A && B || fail; set -- $rec splits on purpose
set -eu
. "$(dirname "$0")/lib.sh"

e2e_setup
# The hand-made messages below are protocol v1 (no MAC), so the ipc endpoint
# takes them only with require_auth off: this test aims at the v1 decoder.
# test_ingest_auth.sh covers what an unauthenticated sender can do otherwise.
export TALLY_INGEST_REQUIRE_AUTH=false
t_begin=$(now_ms)
start_tallyd "$T/tallyd.log"
say "tallyd ready (pid $TALLYD_PID)"

# push FILE — send one raw message to the ingest endpoint, repeatedly for a
# quarter second (about three copies). A one-shot `nanocat --data` often
# loses its message: nanomsg has no linger, so nanocat's close can beat the
# write (nanocat to nanocat loses about half of them too).
push() {
    _rc=0
    timeout 0.25 nanocat --push --connect "$INGEST" --file "$1" --interval 0.1 \
        >/dev/null 2>"$T/nanocat.err" || _rc=$?
    [ "$_rc" -eq 124 ] || fail "nanocat exited $_rc sending ${1##*/}: $(cat "$T/nanocat.err")"
}

# mp NAME OCTAL-ESCAPED-BYTES — write a message file with printf.
mp() {
    # shellcheck disable=SC2059
    printf "$2" >"$T/msg.$1"
}

# u64 N — msgpack uint64 (0xcf + 8 bytes big-endian) as octal escapes.
u64() {
    awk -v n="$1" 'BEGIN { printf "\\317"; for (i = 7; i >= 0; i--) printf "\\%03o", int(n / 256 ^ i) % 256 }'
}

# oct N — the byte N as an octal escape for printf's format.
oct() {
    printf '\\%03o' "$1"
}

# batch PRODUCER SEQ NS VALUE TS_MS — a valid batch_v1 of one integer event
# of metric http_requests (the fields in protocol order: k, v, p, s, b, e).
# Builds printf escapes, then prints them in one go.
batch() {
    _p=$1 _s=$2 _ns=$3 _x=$4 _t=$5
    _f='\206\241k\001\241v\001\241p'$(oct $((0xa0 + ${#_p})))$_p
    _f=$_f'\241s'$(u64 "$_s")'\241b'$(u64 "$_s")
    _f=$_f'\241e\221\204\241n'$(oct $((0xa0 + ${#_ns})))$_ns
    _f=$_f'\241m\255http_requests\241x'$(oct "$_x")'\241t'$(u64 "$_t")
    # shellcheck disable=SC2059
    printf "$_f"
}

if command -v nanocat >/dev/null 2>&1; then
    now=$(now_ms)
    printf 'garbage' >"$T/msg.text"
    head -c 4096 /dev/urandom >"$T/msg.random"
    head -c 1200000 /dev/urandom >"$T/msg.oversize"
    mp emptymap '\200'
    mp version '\202\241k\001\241v\143'
    mp kind '\202\241k\002\241v\001'
    mp truncmap '\336\377\377'
    mp noevents '\206\241k\001\241v\001\241p\244evil\241s\001\241b\001\241e\220'
    mp manyevents '\206\241k\001\241v\001\241p\244evil\241s\001\241b\001\241e\335\377\377\377\377'
    mp truncevents '\206\241k\001\241v\001\241p\244evil\241s\001\241b\001\241e\335\000\000\020\000\204'
    mp badseq '\206\241k\001\241v\001\241p\244evil\241s\000\241b\001\241e\220'
    mp negseq '\206\241k\001\241v\001\241p\244evil\241s\377\241b\001\241e\220'
    mp hugestr '\206\241k\001\241v\001\241p\333\377\377\377\377evil'
    # 128 KiB of 0x91 (fixarray of one): nesting far deeper than any stack
    printf '\221\221\221\221\221\221\221\221' >"$T/msg.deep"
    i=0
    while [ "$i" -lt 14 ]; do
        cat "$T/msg.deep" "$T/msg.deep" >"$T/msg.deep2"
        mv "$T/msg.deep2" "$T/msg.deep"
        i=$((i + 1))
    done
    batch evil 3 'BAD NS' 4 "$now" >"$T/msg.badname"
    batch evil 4 hx 4 "$((now - 400 * 3600 * 1000))" >"$T/msg.tooold"
    # a well-formed batch, with trailing bytes after it
    { batch evil 5 hx 4 "$now"; printf 'tail'; } >"$T/msg.trailing"
    n=0
    for f in text random oversize emptymap version kind truncmap noevents manyevents \
        truncevents badseq negseq hugestr deep badname tooold trailing; do
        push "$T/msg.$f"
        n=$((n + 1))
    done
    say "pushed $n malformed messages with nanocat"

    # a valid hand-made batch, sent again and again: counted once
    batch nc-replay 7 hx 4 "$now" >"$T/msg.valid"
    push "$T/msg.valid"
    push "$T/msg.valid"
    say "pushed one valid hand-made batch about six times"
    nanocat_ran=1
else
    say "SKIP raw-message part: nanocat not installed (Debian package nanomsg-utils)"
    nanocat_ran=0
fi

# valid traffic after the garbage: counted, acked
"$TALLYCTL" emit --endpoint "$INGEST" --ns good --metric http_requests --value 3 --count 1000 \
    --producer e2e-good --timeout 30 >"$T/emit.out" 2>&1 ||
    fail "valid events after the hostile ones were not acked: $(cat "$T/emit.out")"
kill -0 "$TALLYD_PID" 2>/dev/null && [ ! -f "$T/tallyd.rc" ] || fail "tallyd died"
got=$(dump_totals --ns good | awk '{print $3, $4}')
[ "$got" = "3000 1000" ] || fail "ns good: sum/count '$got', expected '3000 1000'"
say "valid events after the hostile ones: counted (sum 3000, count 1000)"

if [ "$nanocat_ran" = 1 ]; then
    # the replays were pushed before the acked emit, but give stragglers a moment
    i=0
    while [ -z "$(dump_records --ns hx)" ] && [ "$i" -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    got=$(dump_totals --ns hx | awk '{print $3, $4}')
    [ "$got" = "4 1" ] || fail "the replayed valid batch: ns hx sum/count '$got', expected '4 1' (the too-old, bad-name and trailing ones must not count)"
    say "the replayed hand-made batch counted once (sum 4, count 1)"
    grep -q 'rejected reason=' "$T/tallyd.log" || fail "tallyd logged no 'rejected reason=' line"
    say "tallyd logged: $(grep -o 'rejected reason=[a-z_]*' "$T/tallyd.log" | sed 's/rejected reason=//' | sort | uniq -c | awk '{printf "%s%s x%s", (NR > 1 ? ", " : ""), $2, $1}') (at most 5 lines per 10 s are logged)"
fi

stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM after hostile input, expected 0"
say "SIGTERM after hostile input: exit 0; total time $(elapsed_since "$t_begin")s"
if [ "$nanocat_ran" = 1 ]; then
    dups=$(sed -n 's/.*msg=stopped .*duplicates=\([0-9]*\).*/\1/p' "$T/tallyd.log")
    if [ -n "$dups" ]; then
        [ "$dups" -gt 0 ] || fail "tallyd counted no duplicate batch, so the replays never reached it"
        say "tallyd dropped $dups replayed batch(es) as duplicates"
    fi
fi
e2e_pass
