#!/bin/sh
# scenario_disk_full.sh — the store's disk fills up: ingestion pauses, reads keep working, /metrics and the log say so, nothing acked is lost, ingestion resumes when space returns.
#
# tallyd writes its store through the LMDB map (MDB_WRITEMAP) when it can
# reserve the whole map on disk (fallocate), and in LMDB's copy mode when it
# cannot; a full disk reaches each mode differently. Knob: DF_STORE_MODE,
#   map  (default) the store on a 6 MiB tmpfs with map_size_mb 2 and
#        map_max_mb 64: the 2 MiB map is reserved at open (the ready line
#        says store_writes=map); the bench fills it, the aggregator doubles
#        it to 4 MiB (reserved: it fits) and, full again, fails to reserve
#        8 MiB (2 MiB short, whatever LMDB's lock file holds) with ENOSPC.
#        The bench's data needs more than 8 MiB. The flush failure must
#        name the lack of space, and /metrics and /healthz must say the
#        store is full.
#   copy the store on a 2 MiB tmpfs under a 256 MiB map (map_max_mb 0): the
#        map cannot be reserved, so tallyd warns "cannot write through the
#        store's map ... using LMDB's copy mode" and runs in copy mode
#        (store_writes=copy); the disk fills under LMDB's own writes, which
#        report it as EIO (the checks of that path are known_bug).
#        scenario_disk_full_copy.sh runs this.
# Knob DF_FS (DF_STORE_MODE=map only), the filesystem under the store:
#   tmpfs (default) as above.
#   ext4 a 128 MiB ext4 image (mkfs.ext4 -m 0, 4 KiB blocks), loop-mounted,
#        with map_size_mb 8 and map_max_mb 256; scenario_disk_full_ext4.sh
#        runs it. A filler file (fallocate: another process filling the
#        disk) leaves 32 + 22.5 MiB free: the map (8 MiB) doubles to 16 and
#        32 MiB; doubling to 64 MiB does not fit (32 MiB more, 22.5 free),
#        so the failed fallocate must give back what it took (ext4 keeps
#        the blocks of a failed fallocate; tmpfs undoes it by itself) and
#        the map grows by the free space less the 16 MiB margin instead (to
#        38 MiB: not a power of two); the bench (2 x 100,000 series, ~56 MiB
#        of store) fills that too, and the disk is reported full with about
#        16.5 MiB still free. Space returns by deleting the filler.
# We are root; without mount rights (or with FAULTS_NO_MOUNT=1) either mode
# falls back to a 1 MiB LMDB map on the test's own disk, as
# tests/e2e/test_store_full.sh does: the map fills, not the disk, and a map
# that small is always reserved, so the store writes through the map
# whatever DF_STORE_MODE says. DF_FS=ext4 has no such fallback (it is about
# ext4 itself): it fails if it cannot loop-mount its image, and with
# FAULTS_NO_MOUNT=1 it is skipped, loudly.
#
# A bench with 2 x 20,000 series (2 x 100,000 on ext4) fills it; then:
#   - the log says "flush failed ... ingest paused", /metrics tally_store_full 1,
#     /healthz degraded;
#   - ext4: the failed reservation gave its blocks back (the disk keeps
#     about the 16 MiB margin free) and the map grew by the smaller step;
#   - reads work: tallyctl dump and POST usage_details (200) still show the
#     events committed before the disk filled;
#   - a producer started while full gets no ack (ingestion paused);
#   - the tmpfs is remounted larger, the ext4 filler is deleted (or the map
#     raised + SIGHUP): "flush succeeded again", tally_store_full 0, every
#     producer ends fully acked and the store holds exactly every event
#     that was sent.
set -eu
. "$(dirname "$0")/lib.sh"

faults_setup
command -v curl >/dev/null || fail "curl is needed"
[ -x "$BENCH" ] || fail "no $BENCH"
t_begin=$(now_ms)
mkdir -p "$T/fs"
DF_STORE_MODE=${DF_STORE_MODE:-map}
DF_FS=${DF_FS:-tmpfs}
MiB=1048576
SERIES=20000 # per bench producer
# FILLS: what fills up, the disk (a tmpfs, an ext4 image) or the LMDB map
# (no mount rights); WRITES: the store mode the ready line must show
case $DF_STORE_MODE in
map) TMPFS_MB=6 MAP_MB=2 MAP_MAX_MB=64 ;;
copy) TMPFS_MB=2 MAP_MB=256 MAP_MAX_MB=0 ;;
*) fail "DF_STORE_MODE must be map or copy, not '$DF_STORE_MODE'" ;;
esac
case $DF_FS in
tmpfs) ;;
ext4)
    [ "$DF_STORE_MODE" = map ] || fail "DF_FS=ext4 runs with DF_STORE_MODE=map only"
    # EXT4_SPARE_KB: what the filler leaves free beyond the 8 + 8 + 16 MiB
    # the map takes up to 32 MiB. In [17, 32) MiB the doubling to 64 MiB
    # cannot fit and the margin step (spare less 16 MiB, in whole MiB) is
    # at least 1 MiB; 22.5 MiB keeps the step's rounding off a boundary.
    # 2 x 100,000 series take ~56 MiB of store: more than the ~38 MiB map
    # can hold, less than the ~76 MiB it doubles to once space returns.
    EXT4_MB=128 MAP_MB=8 MAP_MAX_MB=256 EXT4_SPARE_KB=23040 SERIES=100000
    ;;
*) fail "DF_FS must be tmpfs or ext4, not '$DF_FS'" ;;
esac

# free_bytes DIR — bytes an unprivileged file may still take on DIR's
# filesystem (f_bavail, as tallyd's margin step reads it)
free_bytes() {
    stat -f -c '%a %S' "$1" | awk '{ printf "%.0f\n", $1 * $2 }'
}

if [ "$DF_FS" = ext4 ]; then
    if [ "${FAULTS_NO_MOUNT:-0}" = 1 ]; then
        say "SKIP: DF_FS=ext4 needs to loop-mount an ext4 image and FAULTS_NO_MOUNT=1 forbids mounts; NOTHING about ext4 WAS TESTED"
        summary "skipped=FAULTS_NO_MOUNT"
        # shellcheck disable=SC2034 # read by e2e_cleanup (tests/e2e/lib.sh): not a failure
        E2E_OK=1
        exit 0
    fi
    command -v mkfs.ext4 >/dev/null || {
        . "$TALLY_SOURCE_DIR/tests/pkgs.sh"
        need_pkgs "$E2E_NAME" e2fsprogs
    }
    EXT4_IMG=$T/ext4.img
    # shellcheck disable=SC2034 # read by faults_cleanup (lib.sh)
    FAULTS_LOOP_IMG=$EXT4_IMG # faults_cleanup detaches its loop device, if still there
    truncate -s "${EXT4_MB}M" "$EXT4_IMG"
    # -m 0: no blocks reserved for root (tallyd runs as root here and would
    # use them); no lazy init, so no kernel thread writes behind our back
    mkfs.ext4 -q -F -m 0 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$EXT4_IMG" \
        >"$T/mkfs.err" 2>&1 || fail "mkfs.ext4 failed: $(cat "$T/mkfs.err")"
    mount -t ext4 -o loop "$EXT4_IMG" "$T/fs" 2>"$T/mount.err" ||
        fail "cannot loop-mount an ext4 image: $(cat "$T/mount.err"). DF_FS=ext4 needs root and loop devices (modprobe loop; in a container: --privileged or a /dev/loop-control); it does not fall back, since its point is ext4 itself"
    # shellcheck disable=SC2034 # read by faults_cleanup (lib.sh)
    FAULTS_UMOUNT=$T/fs
    FILLS=ext4
    WRITES=map
    # the filler: another process's file that leaves the store its map
    # (8 MiB, doubled to 16 and 32 MiB) plus EXT4_SPARE_KB. ext4 keeps a
    # few per cent of the blocks for itself even with -m 0 (f_bavail <
    # f_bfree): only f_bavail counts.
    mkdir -p "$T/fs/store"
    ext4_free=$(free_bytes "$T/fs")
    filler=$((ext4_free - MAP_MB * 4 * MiB - EXT4_SPARE_KB * 1024))
    [ "$filler" -gt 0 ] || fail "the ext4 image is too small: $ext4_free bytes free"
    fallocate -l "$filler" "$T/fs/filler" || fail "cannot write the filler file"
    export TALLY_STORAGE_DIR="$T/fs/store"
    sed -i "s/^map_size_mb = .*/map_size_mb = $MAP_MB/; s/^map_max_mb = .*/map_max_mb = $MAP_MAX_MB/" "$CONF"
    say "store_writes=map on ext4: a $EXT4_MB MiB image at $T/fs ($((ext4_free / MiB)) MiB free after mkfs), filler $((filler / MiB)) MiB, leaving $(($(free_bytes "$T/fs") / 1024)) KiB; map $MAP_MB MiB, map_max $MAP_MAX_MB MiB"
elif [ "${FAULTS_NO_MOUNT:-0}" != 1 ] &&
    mount -t tmpfs -o "size=${TMPFS_MB}m" tmpfs "$T/fs" 2>"$T/mount.err"; then
    FILLS=tmpfs
    WRITES=$DF_STORE_MODE
    # shellcheck disable=SC2034 # read by faults_cleanup (lib.sh)
    FAULTS_UMOUNT=$T/fs # faults_cleanup unmounts it before $T is removed
    export TALLY_STORAGE_DIR="$T/fs/store"
    sed -i "s/^map_size_mb = .*/map_size_mb = $MAP_MB/; s/^map_max_mb = .*/map_max_mb = $MAP_MAX_MB/" "$CONF"
    say "store_writes=$WRITES: store on a $TMPFS_MB MiB tmpfs at $T/fs, map $MAP_MB MiB, map_max $MAP_MAX_MB MiB (the disk fills, not the map)"
else
    FILLS=lmdb_map
    WRITES=map
    say "cannot mount a tmpfs ($(cat "$T/mount.err" 2>/dev/null || echo FAULTS_NO_MOUNT=1)); falling back to a 1 MiB LMDB map (store_writes=map, whatever DF_STORE_MODE=$DF_STORE_MODE says)"
    sed -i 's/^map_size_mb = .*/map_size_mb = 1/; s/^map_max_mb = .*/map_max_mb = 0/' "$CONF"
fi
export TALLY_FLUSH_INTERVAL_MS=50
start_tallyd "$T/tallyd.log"
URL=$(http_url)
ready=$(grep 'msg=ready' "$T/tallyd.log" | tail -n 1)
echo "$ready" | grep -q " store_writes=$WRITES " || fail "the ready line does not say store_writes=$WRITES: $ready"
# both fallback warnings (filesystem not trusted, map not reservable) end so
reserve_warn=$(grep "using LMDB's copy mode" "$T/tallyd.log" || true)
if [ "$WRITES" = copy ]; then
    echo "$reserve_warn" | grep -q 'level=warn' ||
        fail "no warning that the store falls back to copy mode: '$reserve_warn'"
    say "copy mode: $reserve_warn"
else
    [ -z "$reserve_warn" ] || fail "the store fell back to copy mode although the ready line says store_writes=map: $reserve_warn"
fi
TS=$(($(now_s) - 30)) # every df-* event carries this time: its hour is known

# 1. committed before the disk fills
"$TALLYCTL" emit --endpoint "$INGEST" --producer before --ns df-before --metric http_requests \
    --value 3 --count 500 --ts "$TS" --timeout 20 >/dev/null || fail "emit before the disk filled was not acked"
expect_at df-before http_requests 3 500 $((TS * 1000))

# 2. fill it: 2 x SERIES series, unique objects
bg_run bench "$BENCH" --endpoint "$INGEST" --producers 2 --events "$SERIES" --series "$SERIES" --batch 100
wait_log "$T/tallyd.log" "flush failed" 30 || {
    df -h "$T/fs" >&2 || true
    fail "no 'flush failed' in the log within 30 s: the store never filled"
}
t_full=$(now_ms)
logline=$(grep -m1 'flush failed' "$T/tallyd.log")
say "store full: $logline"
echo "$logline" | grep -q 'level=error' || fail "the flush failure is not logged at level error"
echo "$logline" | grep -qi 'ingest paused' || fail "the log line does not say ingest is paused"
case $FILLS/$WRITES in
tmpfs/map)
    # the map grew at least once, then reserving the next size failed
    grep -q 'storage map grown' "$T/tallyd.log" || fail "the map never grew before the disk filled"
    say "map grown: $(grep 'storage map grown' "$T/tallyd.log" | sed -n 's/.*map_size_bytes=\([0-9]*\).*/\1/p' | tr '\n' ' ')bytes; tmpfs: $(df -k "$T/fs" | awk 'NR == 2 { print $3 " KiB used, " $4 " KiB free" }')"
    echo "$logline" | grep -qi 'space' || fail "the flush failure does not name the lack of space: $logline"
    ;;
ext4/map)
    echo "$logline" | grep -q 'err="No space left on device"' ||
        fail "the flush failure does not say err=\"No space left on device\": $logline"
    # the sizes the map grew through before the disk was reported full:
    # doubled to 16 and 32 MiB, then, the doubling to 64 MiB not fitting,
    # by the free space less the margin (16 MiB, or an eighth of a smaller
    # disk) in whole MiB: more than nothing, less than a doubling.
    grown=$(sed -n '/msg=flush failed/q; s/.*msg=storage map grown map_size_bytes=\([0-9]*\).*/\1/p' "$T/tallyd.log")
    say "map grown through: $(echo "$grown" | tr '\n' ' ')bytes"
    last=$(echo "$grown" | tail -n 1)
    [ "$(echo "$grown" | head -n 2 | tr '\n' ' ')" = "$((16 * MiB)) $((32 * MiB)) " ] ||
        fail "the map did not double to 16 and then 32 MiB first: $(echo "$grown" | tr '\n' ' ')"
    step=$((${last:-0} - 32 * MiB))
    if [ "$step" -le 0 ] || [ "$step" -ge $((32 * MiB)) ] || [ $((step % MiB)) -ne 0 ]; then
        fail "the map did not grow from 32 MiB by a whole number of MiB short of a doubling when the doubling did not fit: last grown to ${last:-nothing} bytes"
    fi
    # The disk keeps the margin: tallyd never asks for more than the free
    # space less the margin, so a retry while stalled never takes the disk
    # down even for a moment, and the reservation that would not fit was
    # never tried. A failed one would give its blocks back (ext4 keeps the
    # blocks of a failed fallocate). So: 21 samples over a second, every
    # one at least 8 MiB (the margin here is an eighth of the disk, about
    # 15.5 MiB), and below 18 MiB (the small step did take the disk down to
    # about the margin: without it, 22.5 MiB would be free).
    i=0
    : >"$T/free.samples"
    while [ "$i" -lt 21 ]; do
        free_bytes "$T/fs" >>"$T/free.samples"
        i=$((i + 1))
        sleep 0.05
    done
    free_min=$(sort -n "$T/free.samples" | sed -n 1p)
    free_full=$(sort -n "$T/free.samples" | sed -n 11p)
    say "ext4 free while full: median $free_full bytes ($(sort -n "$T/free.samples" | sed -n '1p;$p' | tr '\n' ' ' | awk '{ printf "min %d, max %d", $1, $2 }')); df: $(df -B1 "$T/fs" | awk 'NR == 2 { print $3 " used, " $4 " available" }')"
    [ "$free_min" -ge $((8 * MiB)) ] ||
        fail "ext4 had $free_min bytes free at one point while the store was full (samples: $(tr '\n' ' ' <"$T/free.samples")): tallyd took the disk's margin"
    [ "$free_full" -lt $((18 * MiB)) ] ||
        fail "ext4 still has $free_full bytes free while the store is full: the map did not grow into the space above the margin"
    ext4_figures=" maps_mb=$(echo "$grown" | awk '{ printf "%s%.2f", sep, $1 / 1048576; sep = "," }') free_while_full_kb=$((free_full / 1024))"
    ;;
tmpfs/copy)
    echo "$logline" | grep -qi 'space' ||
        known_bug "a full disk is logged as err=\"$(echo "$logline" | sed -n 's/.*err="\([^"]*\)".*/\1/p')\", not as lack of space (LMDB reports a short pwrite as EIO)"
    ;;
esac
curl -sf "$URL/metrics" >"$T/metrics.full" || fail "/metrics unreachable while full"
if ! grep -q '^tally_store_full 1$' "$T/metrics.full"; then
    [ "$FILLS/$WRITES" = tmpfs/copy ] || fail "/metrics lacks tally_store_full 1: '$(grep '^tally_store_full ' "$T/metrics.full")'"
    known_bug "disk full (tmpfs ENOSPC surfacing as EIO): /metrics shows '$(grep '^tally_store_full ' "$T/metrics.full")', want 1"
fi
grep -q '^tally_flush_errors_total [1-9]' "$T/metrics.full" || fail "/metrics counts no flush errors"
health=$(curl -s "$URL/healthz")
say "/healthz while full: $health"
if ! echo "$health" | grep -q '"degraded"'; then
    [ "$FILLS/$WRITES" = tmpfs/copy ] || fail "/healthz does not say degraded: $health"
    known_bug "disk full (tmpfs): /healthz answers $health while no flush can commit"
fi

# 3. reads keep working and see what was committed
dump_records --ns df-before >"$T/before.rec" || fail "tallyctl dump failed while full"
sum=$(awk '{ s += $4 } END { print s + 0 }' "$T/before.rec")
[ "$sum" = 1500 ] || fail "dump while full: df-before sum $sum, want 1500"
code=$(curl -s -o "$T/usage.json" -w '%{http_code}' -X POST -H 'Authorization: APIToken dev-admin-token' \
    -d '{}' "$URL/api/web/namespaces/df-before/usage_details")
[ "$code" = 200 ] || fail "usage_details answered $code while the store is full"
grep -q 'http_requests\|usage_items' "$T/usage.json" || fail "usage_details body lacks items: $(head -c 300 "$T/usage.json")"

# 4. ingestion is paused: a new producer gets no ack while full
bg_run during "$TALLYCTL" emit --endpoint "$INGEST" --producer during --ns df-during \
    --metric http_requests --value 5 --count 300 --ts "$TS" --timeout 90 --json
expect_at df-during http_requests 5 300 $((TS * 1000))
sleep 3
bg_done during && fail "a producer was fully acked while the store was full: $(cat "$T/during.out")"
bg_done bench && fail "the bench ended while the store was full (status $(bg_status bench)): $(cat "$T/bench.out" "$T/bench.err")"
flushes_full=$(metric tally_flushes_total)
sleep 1
[ "$(metric tally_flushes_total)" = "$flushes_full" ] || fail "flushes committed while the store was full"

# 5. space returns
if [ "$FILLS" = tmpfs ]; then
    mount -o remount,size=256m "$T/fs" || fail "cannot grow the tmpfs"
    say "tmpfs grown to 256 MiB after $(elapsed_since "$t_full")s full"
elif [ "$FILLS" = ext4 ]; then
    # first an operator raises map_size_mb past the disk (SIGHUP): that
    # reservation fails, and gives back what it took (ext4 keeps the blocks
    # of a failed fallocate, which would leave the disk with 0 bytes free)
    free_before=$(free_bytes "$T/fs")
    sed -i 's/^map_size_mb = .*/map_size_mb = 200/' "$CONF"
    kill -HUP "$TALLYD_PID"
    wait_log "$T/tallyd.log" 'msg=reload: map size' 10 ||
        fail "no 'reload: map size' line within 10 s of SIGHUP"
    reload_line=$(grep -m1 'msg=reload: map size' "$T/tallyd.log")
    echo "$reload_line" | grep -q 'err="No space left on device"' ||
        fail "raising the map past the disk did not fail for lack of space: $reload_line"
    free_after=$(free_bytes "$T/fs")
    [ "$free_after" -ge $((free_before - MiB)) ] ||
        fail "the failed reservation kept its blocks: $free_before bytes free before, $free_after after"
    say "map raised past the disk (SIGHUP): refused, free space $free_before -> $free_after bytes"
    rm -f "$T/fs/filler"
    say "filler deleted after $(elapsed_since "$t_full")s full: $(($(free_bytes "$T/fs") / MiB)) MiB free on the ext4"
else
    sed -i 's/^map_size_mb = .*/map_size_mb = 256/' "$CONF"
    kill -HUP "$TALLYD_PID"
    say "map raised to 256 MiB (SIGHUP) after $(elapsed_since "$t_full")s full"
fi
wait_log "$T/tallyd.log" "flush succeeded again" 20 || fail "ingest did not resume within 20 s"
say "resumed: $(grep -m1 'flush succeeded again' "$T/tallyd.log")"
i=0
while ! bg_done bench || ! bg_done during; do
    i=$((i + 1))
    [ "$i" -le 1200 ] || fail "producers not acked within 120 s of resuming"
    check_tallyd_alive
    sleep 0.1
done
[ "$(bg_status bench)" = 0 ] || fail "bench failed after resume: $(cat "$T/bench.out" "$T/bench.err")"
[ "$(bg_status during)" = 0 ] || fail "producer 'during' not acked after resume: $(cat "$T/during.out" "$T/during.err")"
grep -q '^tally_store_full 0$' <<EOF || fail "tally_store_full did not clear"
$(curl -sf "$URL/metrics")
EOF
"$TALLYCTL" emit --endpoint "$INGEST" --producer after --ns df-after --metric http_requests \
    --value 7 --count 200 --ts "$TS" --timeout 20 >/dev/null || fail "emit after resume not acked"
expect_at df-after http_requests 7 200 $((TS * 1000))
errors=$(metric tally_flush_errors_total)
map_mb=$(($(metric tally_store_map_size_bytes) >> 20))
resends=$(json_field resends "$T/during.out")
bench_resends=$(sed -n 's/^resends: \([0-9]*\).*/\1/p' "$T/bench.out")
stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS"

# 6. nothing acked lost: the bench's 2 x SERIES events (1 each, stamped now) are all there
dump_records --period hour >"$T/all.rec"
bench_sum=$(awk '$1 ~ /^ns-/ && $2 == "http_requests" { s += $4 } END { printf "%.0f", s }' "$T/all.rec")
[ "$bench_sum" = $((2 * SERIES)) ] || fail "bench events in the store: $bench_sum, want $((2 * SERIES)) (2 x $SERIES, all acked)"
# the other producers: exact per (ns, metric, hour)
agg() { awk '$1 !~ /^ns-/ { k = $1 " " $2 " " $3; s[k] += $4; c[k] += $5 }
             END { for (k in s) printf "%s %.0f %.0f\n", k, s[k], c[k] }' "$1" | sort; }
agg "$T/expected.raw" >"$T/e"
agg "$T/all.rec" >"$T/g"
cmp -s "$T/e" "$T/g" || { diff "$T/e" "$T/g" >&2 || true; fail "events of df-* lost or double counted"; }
summary "store_writes=$WRITES fills=$FILLS${ext4_figures:-} map_mb=$map_mb full_for_s=$(elapsed_since "$t_full") flush_errors=$errors events=$((2 * SERIES + 500 + 300 + 200)) resends=$((${resends:-0} + ${bench_resends:-0})) seconds=$(elapsed_since "$t_begin")"
e2e_pass
