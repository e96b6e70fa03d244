#!/bin/sh
# test_store_integrity.sh — a damaged or replaced store is noticed: tallyd
# refuses a deleted, emptied, foreign or stale data.mdb while tally.id says
# the store held data; tallyctl check finds a page of random bytes; a flush
# that fails shows on /healthz and tally_ingest_paused until it succeeds.
set -eu
. "$(dirname "$0")/lib.sh"
e2e_setup
BENCH=$TALLY_BIN_DIR/tally-bench-ingest
[ -x "$BENCH" ] || fail "no $BENCH"
command -v curl >/dev/null || fail "curl is needed"
S=$T/store
# a small map: tallyd reserves its whole map on disk, and this test copies
# data.mdb around (it grows as the data needs)
export TALLY_STORAGE_MAP_SIZE_MB=8

# refused LOG WHAT — tallyd must exit non-zero before ready, saying WHAT.
refused() {
    # bounded: a tallyd that wrongly starts is stopped by timeout, not waited for
    if timeout 30 "$TALLYD" -c "$CONF" >"$1" 2>&1; then
        fail "tallyd started on $2"
    fi
    grep -q ready "$1" && fail "tallyd said ready on $2"
    grep -q "$3" "$1" || fail "tallyd's refusal of $2 does not say '$3': $(grep level=error "$1")"
    say "refused $2: $(grep -m1 'level=error' "$1" | sed 's/.*msg=//' | cut -c1-150)..."
}

# must_check_fail WHAT — tallyctl check exits 1 and reports DAMAGE.
must_check_fail() {
    if "$TALLYCTL" check -c "$CONF" >"$T/check.out" 2>&1; then
        fail "tallyctl check passed $1: $(cat "$T/check.out")"
    fi
    grep -q '^DAMAGE' "$T/check.out" || fail "check of $1 reports no DAMAGE: $(cat "$T/check.out")"
    grep -q '^result: DAMAGED' "$T/check.out" || fail "check of $1: no DAMAGED result"
}

sum_q() {
    dump_totals | awk '$1 == "q" && $2 == "http_requests" { print $3 }'
}

# ---- a store with data, its marker and a clean check -------------------------
start_tallyd "$T/tallyd.log"
"$TALLYCTL" emit --endpoint "$INGEST" --ns q --metric http_requests --value 1 --count 100 \
    --timeout 30 >/dev/null || fail "emit not acked"
"$TALLYCTL" backup -c "$CONF" --out "$T/bak" >/dev/null || fail "backup failed"
stop_tallyd
[ -s "$S/tally.id" ] || fail "no tally.id beside data.mdb"
grep -q '^data=1$' "$S/tally.id" || fail "tally.id does not say the store held data: $(cat "$S/tally.id")"
ID=$(sed -n 's/^store_id=//p' "$S/tally.id")
"$TALLYCTL" check -c "$CONF" >"$T/check.out" || fail "check of a sound store failed: $(cat "$T/check.out")"
grep -q '^result: ok' "$T/check.out" || fail "check says: $(tail -n 1 "$T/check.out")"
grep -q "^ok      tally.id: store $ID" "$T/check.out" || fail "check did not compare tally.id"
"$TALLYCTL" check --dir "$S" >/dev/null || fail "check --dir failed"
cp "$S/data.mdb" "$T/old.mdb" # a copy by hand, for the stale-copy case below

# ---- (a) data.mdb deleted -------------------------------------------------------
mv "$S/data.mdb" "$T/kept.mdb"
refused "$T/a.log" "a deleted data.mdb" "data.mdb is missing"
[ ! -e "$S/data.mdb" ] || fail "the refusal created a new data.mdb"
must_check_fail "a deleted data.mdb"
mv "$T/kept.mdb" "$S/data.mdb"
start_tallyd "$T/tallyd-a.log"
stop_tallyd
[ "$(sum_q)" = 100 ] || fail "the store put back lost events: $(dump_totals)"

# ---- (b) data.mdb emptied ---------------------------------------------------------
cp "$S/data.mdb" "$T/kept.mdb"
: >"$S/data.mdb"
refused "$T/b.log" "an empty data.mdb" "data.mdb is empty"
must_check_fail "an empty data.mdb"
# tallyctl restore puts a backup in place and rewrites the marker
"$TALLYCTL" restore -c "$CONF" --from "$T/bak" --force >/dev/null || fail "restore failed"
grep -q "^store_id=$ID$" "$S/tally.id" || fail "restore changed the store id: $(cat "$S/tally.id")"
start_tallyd "$T/tallyd-b.log"
stop_tallyd
[ "$(sum_q)" = 100 ] || fail "restored store: $(dump_totals)"
# the operator's way out: a new, empty store on purpose
: >"$S/data.mdb"
refused "$T/b2.log" "an empty data.mdb" "accept-empty-store"
"$TALLYD" -c "$CONF" --accept-empty-store >"$T/b3.log" 2>&1 &
P=$!
wait_log "$T/b3.log" ready 20 || { kill -KILL $P; fail "--accept-empty-store did not start"; }
kill -TERM $P
wait $P || fail "tallyd --accept-empty-store exited non-zero"
grep -q 'starting a new, empty store as asked' "$T/b3.log" || fail "no warning for the new store"
NEWID=$(sed -n 's/^store_id=//p' "$S/tally.id")
[ -n "$NEWID" ] && [ "$NEWID" != "$ID" ] || fail "the new store kept the old id ($NEWID)"
[ -z "$(sum_q)" ] || fail "the new store is not empty"

# ---- another store's data.mdb, and a stale copy of this one --------------------------
cp "$T/kept.mdb" "$S/data.mdb" # store $ID, while tally.id names $NEWID: foreign...
grep -q '^data=0$' "$S/tally.id" || fail "an empty store's marker says data: $(cat "$S/tally.id")"
# ...but the new store never held data, so taking it is no loss: it starts, adopts it
start_tallyd "$T/tallyd-c.log"
stop_tallyd
grep -q "^store_id=$ID$" "$S/tally.id" || fail "marker not moved to the store put in place"
cp "$T/old.mdb" "$S/data.mdb" # the copy taken two generations ago
refused "$T/c.log" "a stale copy" "older than the store last opened here"
must_check_fail "a stale copy"
rm "$S/tally.id" # documented: deleting the marker accepts what data.mdb holds
start_tallyd "$T/tallyd-d.log"
stop_tallyd
[ "$(sum_q)" = 100 ] || fail "the stale copy: $(dump_totals)"
mkdir "$T/other"
TALLY_STORAGE_DIR=$T/other "$TALLYCTL" restore -c "$CONF" --from "$T/bak" >/dev/null
TALLY_STORAGE_DIR=$T/other start_tallyd "$T/tallyd-o.log" # a store of its own...
# (restore copies the backup's id: make one with another id)
stop_tallyd
rm -rf "$T/other"
TALLY_STORAGE_DIR=$T/other start_tallyd "$T/tallyd-o2.log"
TALLY_STORAGE_DIR=$T/other "$TALLYCTL" emit --endpoint "$INGEST" --ns o --metric http_requests \
    --value 1 --count 5 --timeout 30 >/dev/null || fail "emit into the other store"
stop_tallyd
cp "$T/other/data.mdb" "$S/data.mdb"
refused "$T/e.log" "another store's data.mdb" "another store's data.mdb was put here"

# ---- (c) a page of random bytes ------------------------------------------------------------
rm -rf "$S"
start_tallyd "$T/tallyd-big.log"
timeout 60 "$BENCH" --endpoint "$INGEST" --producers 1 --events 20000 --series 20000 \
    --batch 100 >"$T/bench.out" 2>&1 || fail "bench failed: $(tail -n 3 "$T/bench.out")"
stop_tallyd
"$TALLYCTL" check -c "$CONF" >"$T/check.out" || fail "check of the big store failed"
PAGES=$(sed -n 's/.* \([0-9]*\) pages in use.*/\1/p' "$T/check.out")
[ "${PAGES:-0}" -gt 200 ] || fail "the big store has only '$PAGES' pages"
dd if=/dev/urandom of="$S/data.mdb" bs=4096 seek=$((PAGES / 2)) count=1 conv=notrunc 2>/dev/null
must_check_fail "a page of random bytes"
say "check: $(grep -m1 '^DAMAGE' "$T/check.out")"
# tallyd on it either stops with the damage named (LMDB aborts on an
# impossible page), or runs and must not call itself ok while flushes fail
"$TALLYD" -c "$CONF" >"$T/dmg.log" 2>&1 &
P=$!
if wait_log "$T/dmg.log" ready 20; then
    PORT=$(sed -n 's/.*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/dmg.log" | head -n 1)
    timeout 10 "$BENCH" --endpoint "$INGEST" --producers 1 --events 2000 --series 20000 \
        --batch 100 >/dev/null 2>&1 || true
    if kill -0 $P 2>/dev/null; then
        m=$(curl -sf "http://127.0.0.1:$PORT/metrics" || true)
        errs=$(printf '%s\n' "$m" | awk '$1 == "tally_flush_errors_total" { print $2 }')
        if [ "${errs:-0}" -gt 0 ] && printf '%s\n' "$m" | grep -q '^tally_store_stalled 1$'; then
            curl -sf "http://127.0.0.1:$PORT/healthz" | grep -q '"degraded"' ||
                fail "flushes fail on the damaged store and /healthz is not degraded"
            printf '%s\n' "$m" | grep -q '^tally_ingest_paused 1$' ||
                fail "flushes fail on the damaged store and tally_ingest_paused is not 1"
        fi
        say "damaged store: tallyd ran; flush errors ${errs:-0}"
        kill -KILL $P 2>/dev/null || true
    fi
fi
wait $P 2>/dev/null || true
if grep -q 'LMDB met an impossible page' "$T/dmg.log"; then
    say "damaged store: tallyd stopped with: $(grep -m1 'the store is damaged' "$T/dmg.log" | sed 's/.*msg=//' | cut -c1-120)..."
fi

# ---- a flush that fails: degraded, paused, then recovered --------------------------------
rm -rf "$S"
unset TALLY_STORAGE_MAP_SIZE_MB # small.conf's 1 MiB
sed 's/^map_size_mb = .*/map_size_mb = 1/; s/^map_max_mb = .*/map_max_mb = 0/' \
    "$TALLY_SOURCE_DIR/config/tallyd.conf" >"$T/small.conf"
CONF=$T/small.conf
export TALLY_AUTH_TOKENS_FILE="$TALLY_SOURCE_DIR/config/tokens"
export TALLY_BILLING_PLANS_FILE="$TALLY_SOURCE_DIR/config/plans.ini"
start_tallyd "$T/tallyd-full.log"
PORT=$(sed -n 's/.*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/tallyd-full.log" | head -n 1)
URL=http://127.0.0.1:$PORT
curl -sf "$URL/metrics" | grep -q '^tally_ingest_paused 0$' || fail "paused before any load"
bg_run bench timeout 8 "$BENCH" --endpoint "$INGEST" --producers 1 --events 20000 \
    --series 20000 --batch 100
wait_log "$T/tallyd-full.log" "flush failed" 10 || fail "no failing flush within 10 s"
curl -sf "$URL/healthz" >"$T/health" || fail "/healthz failed"
grep -q '"status":"degraded"' "$T/health" || fail "/healthz: $(cat "$T/health")"
grep -q '"error":"storage map full"' "$T/health" || fail "/healthz names no error: $(cat "$T/health")"
curl -sf "$URL/metrics" | grep -q '^tally_ingest_paused 1$' ||
    fail "tally_ingest_paused is not 1 while flushes fail"
say "failing flush: $(cat "$T/health")"
while ! bg_done bench; do sleep 0.2; done
sed -i 's/^map_size_mb = .*/map_size_mb = 256/' "$T/small.conf"
kill -HUP "$TALLYD_PID"
wait_log "$T/tallyd-full.log" "flush succeeded again" 10 || fail "no recovery within 10 s of SIGHUP"
i=0
until curl -sf "$URL/healthz" | grep -q '"status":"ok"'; do
    i=$((i + 1))
    [ $i -le 50 ] || fail "/healthz not ok after recovery: $(curl -s "$URL/healthz")"
    sleep 0.1
done
curl -sf "$URL/metrics" | grep -q '^tally_ingest_paused 0$' || fail "tally_ingest_paused stuck at 1"
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited with status $TALLYD_STATUS"
"$TALLYCTL" check -c "$CONF" >/dev/null || fail "the store is not sound after recovery"
e2e_pass
