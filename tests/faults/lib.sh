# lib.sh — helpers of the fault-injection scenarios (sourced by tests/faults/scenario_*.sh, not a scenario).
# shellcheck shell=sh disable=SC2034
#
# Builds on tests/e2e/lib.sh (e2e_setup, start_tallyd, crash_tallyd,
# stop_tallyd, bg_run, dump_records, ...). Adds: a minimal tallyd.conf of the
# test's own (every other key comes from the environment or the built-in
# defaults), random numbers, expected per-hour totals and their comparison
# with the store, and the one-line summary tests/faults.sh collects.

case $0 in
*/*) FAULTS_DIR=${0%/*} ;;
*) FAULTS_DIR=. ;;
esac
. "$FAULTS_DIR/../e2e/lib.sh"

BENCH=$TALLY_BIN_DIR/tally-bench-ingest
PERSIST_EMITTER=$TALLY_BIN_DIR/persist_emitter
SLOW_SUB=$TALLY_BIN_DIR/slow_sub
FAULTS_RAND_N=0

FAULTS_UMOUNT=     # a mount point to unmount on exit (tmpfs, loop-mounted image)
FAULTS_LOOP_IMG=   # an image file under $T: its loop devices are detached on exit

# faults_cleanup — the EXIT trap: stop what the scenario started first and
# give the bg_run wrappers a moment to write their status files (otherwise
# they race e2e_cleanup's rm -rf), unmount a tmpfs or image and detach the
# image's loop device, then e2e_cleanup.
faults_cleanup() {
    _st=$?
    # under set -e, "(exit $_st)" below would end the shell before
    # e2e_cleanup prints the logs of a failed scenario and removes $T
    set +e
    trap - EXIT
    if [ -n "$TALLYD_PID" ] && [ ! -f "$T/tallyd.rc" ]; then
        kill -KILL "$TALLYD_PID" 2>/dev/null || true
    fi
    for _n in $E2E_BG_NAMES; do
        if [ -f "$T/$_n.pid" ] && [ ! -f "$T/$_n.rc" ]; then
            kill -KILL "$(cat "$T/$_n.pid")" 2>/dev/null || true
        fi
    done
    sleep 0.3
    if [ -n "$FAULTS_UMOUNT" ]; then
        umount "$FAULTS_UMOUNT" 2>/dev/null || umount -l "$FAULTS_UMOUNT" 2>/dev/null || true
    fi
    # mount -o loop sets autoclear: the device goes with the unmount, but
    # not after a lazy one while busy, nor if the mount failed half-way.
    # Only devices backed by our image (losetup -j), never a reused one.
    if [ -n "$FAULTS_LOOP_IMG" ] && [ -e "$FAULTS_LOOP_IMG" ]; then
        for _d in $(losetup -j "$FAULTS_LOOP_IMG" -O NAME -n 2>/dev/null); do
            losetup -d "$_d" 2>/dev/null || true
        done
    fi
    (exit "$_st")
    e2e_cleanup
}

# faults_setup — e2e_setup, then this test's own config file and catalogs.
faults_setup() {
    e2e_setup
    trap faults_cleanup EXIT
    CONF=$T/tallyd.conf
    printf '# tallyd.conf of %s: defaults, overridden by TALLY_* variables\n[storage]\nmap_size_mb = %s\nmap_max_mb = 0\n' \
        "$E2E_NAME" "${FAULTS_MAP_MB:-256}" >"$CONF"
    export TALLY_AUTH_TOKENS_FILE="$TALLY_SOURCE_DIR/config/tokens"
    export TALLY_BILLING_PLANS_FILE="$TALLY_SOURCE_DIR/config/plans.ini"
    export TALLY_LOG_LEVEL=info
    : >"$T/expected.raw"
}

# rand_int LO HI — a pseudo-random integer in [LO, HI].
rand_int() {
    FAULTS_RAND_N=$((FAULTS_RAND_N + 1))
    awk -v lo="$1" -v hi="$2" -v seed="$(date +%s%N | cut -c8-)$$$FAULTS_RAND_N" \
        'BEGIN { srand(seed % 2147483647); print lo + int(rand() * (hi - lo + 1)) }'
}

# msleep MS — sleep MS milliseconds.
msleep() {
    sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"
}

# iso S — unix seconds as RFC 3339 (UTC, whole seconds).
iso() {
    date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ
}

# http_url — base URL of the running tallyd's HTTP API (from its ready line).
http_url() {
    _p=$(sed -n 's/.*msg=ready.* http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TALLYD_LOG" | tail -n 1)
    [ -n "$_p" ] || fail "no HTTP port in the ready line of ${TALLYD_LOG##*/}"
    echo "http://127.0.0.1:$_p"
}

# metric NAME — the value of an unlabelled /metrics sample of the running tallyd.
metric() {
    curl -sf "$(http_url)/metrics" | awk -v n="$1" '$1 == n { print $2; f = 1 } END { if (!f) print "" }'
}

# expect_spread NS METRIC VALUE COUNT BASE_S HOURS — record what
# `tallyctl emit --ts BASE_S --spread-hours HOURS --count COUNT --value VALUE`
# puts in each hour: event i lands at BASE_S - (i % HOURS) hours.
expect_spread() {
    _b=$(($5 - $5 % 3600))
    _k=0
    while [ "$_k" -lt "$6" ]; do
        _n=$((($4 - _k + $6 - 1) / $6))
        [ "$_n" -le 0 ] || printf '%s %s %s %s %s\n' "$1" "$2" "$(iso $((_b - _k * 3600)))" \
            "$(($3 * _n))" "$_n" >>"$T/expected.raw"
        _k=$((_k + 1))
    done
}

# expect_at NS METRIC VALUE COUNT TS_MS — COUNT events of VALUE at TS_MS.
expect_at() {
    _s=$(($5 / 1000))
    printf '%s %s %s %s %s\n' "$1" "$2" "$(iso $((_s - _s % 3600)))" "$(($3 * $4))" "$4" \
        >>"$T/expected.raw"
}

# check_exact — the store's hourly records, summed per (ns, metric, hour)
# over labels, must equal $T/expected.raw exactly, and the monthly records
# per (ns, metric, month) the same events. Prints the figures; fails on any
# difference (lost or double-counted events).
check_exact() {
    awk '{ k = $1 " " $2 " " $3; s[k] += $4; c[k] += $5 }
         END { for (k in s) printf "%s %.0f %.0f\n", k, s[k], c[k] }' "$T/expected.raw" |
        sort >"$T/expected.hour"
    awk '{ m = substr($3, 1, 7) "-01T00:00:00Z"; k = $1 " " $2 " " m; s[k] += $4; c[k] += $5 }
         END { for (k in s) printf "%s %.0f %.0f\n", k, s[k], c[k] }' "$T/expected.raw" |
        sort >"$T/expected.month"
    for _per in hour month; do
        dump_records --period "$_per" >"$T/got.$_per.records" || fail "tallyctl dump failed"
        awk '{ k = $1 " " $2 " " $3; s[k] += $4; c[k] += $5 }
             END { for (k in s) printf "%s %.0f %.0f\n", k, s[k], c[k] }' \
            "$T/got.$_per.records" | sort >"$T/got.$_per"
        if ! cmp -s "$T/expected.$_per" "$T/got.$_per"; then
            say "$_per rollups differ from what the producers had acked (ns metric start sum count):"
            awk 'NR == FNR { e[$1 " " $2 " " $3] = $4 " " $5; next }
                 { k = $1 " " $2 " " $3; g = $4 " " $5
                   if (!(k in e)) print "  unexpected " k ": " g
                   else if (e[k] != g) {
                       split(e[k], a, " "); split(g, b, " ")
                       printf "  %s: sum %s (expected %s, diff %+d), count %s (expected %s, diff %+d)\n",
                           k, b[1], a[1], b[1] - a[1], b[2], a[2], b[2] - a[2] }
                   delete e[k] }
                 END { for (k in e) print "  missing " k ": " e[k] }' \
                "$T/expected.$_per" "$T/got.$_per" >&2
            fail "$_per rollups: events lost or counted twice"
        fi
    done
    CHECK_EVENTS=$(awk '{ n += $5 } END { printf "%.0f", n }' "$T/expected.hour")
    CHECK_CELLS=$(wc -l <"$T/expected.hour" | tr -d ' ')
    say "exact: $CHECK_EVENTS events in $CHECK_CELLS (ns, metric, hour) cells and $(wc -l <"$T/expected.month" | tr -d ' ') monthly cells, as acked"
}

# summary KEY=VALUE... — the scenario's figures, for tests/faults.sh.
summary() {
    say "SUMMARY $*"
    [ -z "${FAULTS_SUMMARY:-}" ] || printf '%s %s\n' "$E2E_NAME" "$*" >>"$FAULTS_SUMMARY"
}

# json_field NAME FILE — a numeric field of a one-line JSON object.
json_field() {
    sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$2" | head -n 1
}

# known_bug TEXT — a defect of tally this suite found and reported: printed
# loudly and listed in the summary, fatal only with FAULTS_STRICT=1 (set it
# once the defect is fixed so it cannot come back).
known_bug() {
    printf '%s: KNOWN BUG (tally): %s\n' "$E2E_NAME" "$*" >&2
    [ -z "${FAULTS_SUMMARY:-}" ] || printf '%s KNOWN_BUG %s\n' "$E2E_NAME" "$*" >>"$FAULTS_SUMMARY"
    [ "${FAULTS_STRICT:-1}" != 1 ] || fail "$*"
}
