#!/bin/sh
# test_backup_restore.sh — tallyctl backup under load, restore (refused on a live store, then into a second tallyd that answers the same usage) and offline compact.
set -eu
. "$(dirname "$0")/lib.sh"
e2e_setup
command -v curl >/dev/null || fail "curl is needed"
TOKEN=dev-admin-token

# http_port LOG — the HTTP port from a tallyd ready line.
http_port() {
    sed -n 's/.*ready.* http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1
}

# sum_of TOTALS_FILE NS METRIC — the sum column of dump_totals output.
sum_of() {
    awk -v ns="$2" -v m="$3" '$1 == ns && $2 == m { print $3 }' "$1"
}

# usage_qty URL NS — quantity of NS/http_requests from usage_details over the
# last two days (one fixed window for both daemons).
usage_qty() {
    curl -sf -X POST -H "Authorization: APIToken $TOKEN" \
        -d "{\"from\":\"$FROM\",\"to\":\"$TO\"}" \
        "$1/api/web/namespaces/$2/usage_details" >"$T/usage.json" ||
        fail "usage_details on $1 failed"
    tr '{' '\n' <"$T/usage.json" | grep '"metric_label":"http_requests"' |
        sed -n 's/.*"quantity":\([0-9.e+]*\).*/\1/p' | head -n 1
}

FROM=$(date -u -d "@$(($(now_s) / 3600 * 3600 - 2 * 86400))" +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d "@$(($(now_s) / 3600 * 3600 + 2 * 3600))" +%Y-%m-%dT%H:%M:%SZ)

start_tallyd "$T/tallyd.log"
PORT=$(http_port "$T/tallyd.log")
[ -n "$PORT" ] || fail "no HTTP port in the ready line"
URL=http://127.0.0.1:$PORT
curl -sf "$URL/metrics" | grep -q '^tally_retention_pruned_total 0$' ||
    fail "/metrics lacks tally_retention_pruned_total"

# ---- backup while producers run -------------------------------------------
for p in 1 2 3; do
    bg_run "emit$p" "$TALLYCTL" emit --endpoint "$INGEST" --ns bk --metric http_requests \
        --value 1 --count 4000 --rate 2000 --batch 50 --producer "bk-$p" --timeout 60
done
# back up once some of it is committed (not after a fixed sleep: under
# valgrind the first flush can take longer), while the rest still flows
i=0
until [ "$(curl -sf "$URL/metrics" | awk '$1 == "tally_ingest_events_committed_total" { print $2 }')" \
    -gt 0 ] 2>/dev/null; do
    i=$((i + 1))
    [ "$i" -le 300 ] || fail "no events committed within 30 s of starting the producers"
    sleep 0.1
done
"$TALLYCTL" backup -c "$CONF" --out "$T/bak" >"$T/backup.out" 2>&1 ||
    fail "backup under load failed: $(cat "$T/backup.out")"
grep -q "backup written to $T/bak" "$T/backup.out" || fail "backup said: $(cat "$T/backup.out")"
[ -s "$T/bak/data.mdb" ] || fail "no data.mdb in the backup"
for p in 1 2 3; do
    while ! bg_done "emit$p"; do sleep 0.1; done
    [ "$(bg_status "emit$p")" = 0 ] || fail "producer $p not acked: $(cat "$T/emit$p.err")"
done
say "backup under load: $(cat "$T/backup.out")"

# a second backup into the same (non-empty) directory is refused, --force replaces it
if "$TALLYCTL" backup -c "$CONF" --out "$T/bak" >/dev/null 2>"$T/err"; then
    fail "backup into a non-empty directory succeeded"
fi
grep -q "not empty" "$T/err" || fail "refusal says: $(cat "$T/err")"
"$TALLYCTL" backup -c "$CONF" --out "$T/bak-force" >/dev/null || fail "second backup failed"
"$TALLYCTL" backup -c "$CONF" --out "$T/bak-force" --force >/dev/null ||
    fail "backup --force into a used directory failed"

dump_totals >"$T/live.totals"
live=$(sum_of "$T/live.totals" bk http_requests)
[ "$live" = 12000 ] || fail "live store: want 12000 acked events, have '$live'"

# ---- restore ----------------------------------------------------------------
# into the live first store: refused, the store untouched
if "$TALLYCTL" restore -c "$CONF" --from "$T/bak" --force >/dev/null 2>"$T/err"; then
    fail "restore into the live store succeeded"
fi
grep -q "running tallyd" "$T/err" || fail "refusal says: $(cat "$T/err")"
check_tallyd_alive

# into a fresh directory
TALLY_STORAGE_DIR=$T/restored "$TALLYCTL" restore -c "$CONF" --from "$T/bak" >"$T/restore.out" ||
    fail "restore into a fresh directory failed"
say "$(cat "$T/restore.out")"
# once it holds data, only with --force
if TALLY_STORAGE_DIR=$T/restored "$TALLYCTL" restore -c "$CONF" --from "$T/bak" \
    >/dev/null 2>"$T/err"; then
    fail "restore over a store with data succeeded without --force"
fi
grep -q "force" "$T/err" || fail "refusal says: $(cat "$T/err")"
TALLY_STORAGE_DIR=$T/restored "$TALLYCTL" restore -c "$CONF" --from "$T/bak" --force \
    >/dev/null || fail "restore --force failed"
# a directory that is not a backup
mkdir "$T/notabackup"
echo "garbage garbage garbage garbage" >"$T/notabackup/data.mdb"
if TALLY_STORAGE_DIR=$T/restored "$TALLYCTL" restore -c "$CONF" --from "$T/notabackup" --force \
    >/dev/null 2>"$T/err"; then
    fail "restore of a file that is not a store succeeded"
fi
grep -q "not a tally store" "$T/err" || fail "refusal says: $(cat "$T/err")"

TALLY_STORAGE_DIR=$T/bak dump_totals >"$T/bak.totals"
bak=$(sum_of "$T/bak.totals" bk http_requests)
[ -n "$bak" ] && [ "$bak" -gt 0 ] || fail "the backup holds no bk events ('$bak')"
[ "$bak" -le "$live" ] || fail "the backup holds $bak events, more than the $live acked"

# ---- a second tallyd on the restored store ---------------------------------
bg_run tallyd2 env TALLY_STORAGE_DIR="$T/restored" TALLY_INGEST_LISTEN="ipc://$T/ingest2" \
    TALLY_INGEST_ACKS="ipc://$T/ingest2.acks" TALLY_QUOTA_ALERTS="ipc://$T/alerts2" \
    "$TALLYD" -c "$CONF"
i=0
until grep -q ready "$T/tallyd2.err" 2>/dev/null; do
    bg_done tallyd2 && fail "second tallyd exited: $(tail -n 5 "$T/tallyd2.err")"
    i=$((i + 1))
    [ $i -le 200 ] || fail "second tallyd not ready within 20 s"
    sleep 0.1
done
PORT2=$(http_port "$T/tallyd2.err")
[ -n "$PORT2" ] || fail "no HTTP port in the second ready line"
URL2=http://127.0.0.1:$PORT2
cp "$T/tallyd2.err" "$T/tallyd2.log"

TALLY_STORAGE_DIR=$T/restored dump_totals >"$T/restored.totals"
cmp -s "$T/restored.totals" "$T/bak.totals" ||
    fail "restored store differs from the backup: $(diff "$T/bak.totals" "$T/restored.totals")"
q1=$(usage_qty "$URL" bk)
q2=$(usage_qty "$URL2" bk)
[ "$q1" = "$live" ] || fail "first tallyd: usage_details says '$q1', its dump $live"
[ "$q2" = "$bak" ] || fail "restored tallyd: usage_details says '$q2', its dump $bak"
say "acked $live; backup and restored tallyd hold $bak (usage_details $q1 / $q2)"

# ---- compact ----------------------------------------------------------------
if "$TALLYCTL" compact -c "$CONF" >/dev/null 2>"$T/err"; then
    fail "compact succeeded while tallyd runs"
fi
grep -q "running tallyd" "$T/err" || fail "refusal says: $(cat "$T/err")"
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited with status $TALLYD_STATUS"
dump_json >"$T/before.json" || fail "dump before compact failed"
dump_json --period month >"$T/before.month.json" || fail "dump before compact failed"
"$TALLYCTL" compact -c "$CONF" --out "$T/compacted" >"$T/compact.out" ||
    fail "compact --out failed"
TALLY_STORAGE_DIR=$T/compacted dump_json >"$T/out.json" || fail "dump of compact --out failed"
cmp -s "$T/before.json" "$T/out.json" || fail "compact --out copy differs"
"$TALLYCTL" compact -c "$CONF" >"$T/compact.out" || fail "compact failed"
say "$(cat "$T/compact.out")"
dump_json >"$T/after.json" || fail "dump after compact failed"
dump_json --period month >"$T/after.month.json" || fail "dump after compact failed"
cmp -s "$T/before.json" "$T/after.json" || fail "hourly dump changed by compact"
cmp -s "$T/before.month.json" "$T/after.month.json" || fail "monthly dump changed by compact"
ls -a "$T/store" | grep -q '^\.compact-' && fail "compact left its temporary directory"
# the compacted store still serves
start_tallyd "$T/tallyd-after.log"
"$TALLYCTL" emit --endpoint "$INGEST" --ns bk --metric http_requests --value 1 --count 10 \
    --timeout 30 >/dev/null || fail "emit after compact not acked"
stop_tallyd
dump_totals >"$T/final.totals"
[ "$(sum_of "$T/final.totals" bk http_requests)" = $((live + 10)) ] ||
    fail "after compact and 10 more events: $(cat "$T/final.totals")"

kill -TERM "$(cat "$T/tallyd2.pid")"
i=0
while ! bg_done tallyd2; do
    i=$((i + 1))
    [ $i -le 300 ] || fail "second tallyd did not stop"
    sleep 0.1
done
[ "$(bg_status tallyd2)" = 0 ] || fail "second tallyd exited with $(bg_status tallyd2)"

# ---- retention ----------------------------------------------------------------
# Hourly rollups 420 days old can only be made by a tallyd whose clock says
# so (ingest refuses events past late_window_hours): libfaketime, when
# installed, runs one in the past; a tallyd on the real clock then prunes
# them at start, keeping the monthly rollups.
FT_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
if [ -z "$FT_LIB" ]; then
    say "retention: skipped (no libfaketime; apt-get install faketime)"
else
    export TALLY_STORAGE_DIR="$T/ret"
    OLD=$(($(now_s) - 420 * 86400))
    export LD_PRELOAD="$FT_LIB" FAKETIME="@$(date -u -d "@$OLD" '+%Y-%m-%d %H:%M:%S')"
    # an ASan tallyd must not insist on coming first in the library list
    export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
    start_tallyd "$T/tallyd-past.log"
    # the emitter shares the host's (faked) clock: tallyd refuses a sequence
    # number past its own clock in microseconds (proto/PROTOCOL.md §7), and
    # libtally starts at its clock in microseconds
    "$TALLYCTL" emit --endpoint "$INGEST" --ns old --metric http_requests --value 1 \
        --count 480 --ts "$OLD" --spread-hours 48 --timeout 30 >/dev/null ||
        fail "emit into the past tallyd not acked"
    unset LD_PRELOAD FAKETIME
    stop_tallyd
    dump_totals >"$T/ret.totals"
    [ "$(awk '$1 == "old" { print $5 }' "$T/ret.totals")" = 48 ] ||
        fail "want 48 hourly records 420 days old: $(cat "$T/ret.totals")"
    start_tallyd "$T/tallyd-now.log"
    PORT=$(http_port "$T/tallyd-now.log")
    wait_log "$T/tallyd-now.log" "retention pruned hourly rollups records=48 " 10 ||
        fail "no retention log line within 10 s"
    curl -sf "http://127.0.0.1:$PORT/metrics" | grep -q '^tally_retention_pruned_total 48$' ||
        fail "/metrics: tally_retention_pruned_total is not 48"
    stop_tallyd
    dump_totals >"$T/ret.totals"
    [ ! -s "$T/ret.totals" ] || fail "hourly rollups left after retention: $(cat "$T/ret.totals")"
    dump_totals --period month >"$T/ret.month"
    [ "$(sum_of "$T/ret.month" old http_requests)" = 480 ] ||
        fail "monthly rollups changed by retention: $(cat "$T/ret.month")"
    say "retention: 48 hourly rollups 420 days old pruned, monthly sum 480 kept"
fi
e2e_pass
