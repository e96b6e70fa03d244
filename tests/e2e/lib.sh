# shellcheck shell=sh disable=SC2034
# lib.sh — helpers shared by the end-to-end tests (sourced by tests/e2e/test_*.sh, not a test).
#
# POSIX sh plus coreutils, grep, sed and awk: nothing a minimal Debian 12
# lacks. CTest sets TALLY_BIN_DIR (build/bin) and TALLY_SOURCE_DIR; run by
# hand, they default to this checkout and its build/bin.
#
# After e2e_setup every test has its own temporary directory $T holding the
# store, the ipc endpoints and the logs, and tallyd / tallyctl find them
# through TALLY_SECTION_KEY environment overrides. The EXIT trap kills what
# the test started and removes $T (kept when TALLY_E2E_KEEP=1); on failure
# it prints the tail of every tallyd log first.

case $0 in
*/*) E2E_DIR=${0%/*} ;;
*) E2E_DIR=. ;;
esac
: "${TALLY_SOURCE_DIR:=$(cd "$E2E_DIR/../.." && pwd)}"
: "${TALLY_BIN_DIR:=$TALLY_SOURCE_DIR/build/bin}"
E2E_NAME=${0##*/}
E2E_NAME=${E2E_NAME%.sh}
CONF=$TALLY_SOURCE_DIR/config/tallyd.conf
TALLYD=$TALLY_BIN_DIR/tallyd
TALLYCTL=$TALLY_BIN_DIR/tallyctl
TALLYD_PID=
TALLYD_LOG=
E2E_BG_NAMES=
E2E_OK=0
T=

say() {
    printf '%s: %s\n' "$E2E_NAME" "$*"
}

fail() {
    printf '%s: FAIL: %s\n' "$E2E_NAME" "$*" >&2
    exit 1
}

# now_s — the wall clock in whole seconds (UTC).
now_s() {
    date -u +%s
}

# now_ms — the wall clock in milliseconds (GNU date).
now_ms() {
    date -u +%s%3N
}

# elapsed_since START_MS — seconds since START_MS (from now_ms), as S.mmm.
elapsed_since() {
    _ms=$(($(now_ms) - $1))
    printf '%d.%03d\n' $((_ms / 1000)) $((_ms % 1000))
}

# wait_log FILE PATTERN SECONDS — wait until FILE has a line matching
# PATTERN (grep); status 1 when SECONDS pass first.
wait_log() {
    _i=0
    until grep -q "$2" "$1" 2>/dev/null; do
        _i=$((_i + 1))
        [ "$_i" -le $(($3 * 10)) ] || return 1
        sleep 0.1
    done
}

e2e_cleanup() {
    status=$?
    trap - EXIT INT TERM
    if [ -n "$TALLYD_PID" ] && [ ! -f "$T/tallyd.rc" ]; then
        kill -KILL "$TALLYD_PID" 2>/dev/null || true
    fi
    for _n in $E2E_BG_NAMES; do
        if [ -f "$T/$_n.pid" ] && [ ! -f "$T/$_n.rc" ]; then
            kill -KILL "$(cat "$T/$_n.pid")" 2>/dev/null || true
        fi
    done
    if [ "$status" -ne 0 ] || [ "$E2E_OK" -ne 1 ]; then
        [ "$status" -ne 0 ] || status=1
        if [ -n "$T" ] && [ -d "$T" ]; then
            for f in "$T"/*.log; do
                [ -f "$f" ] || continue
                printf '%s: ---- last lines of %s ----\n' "$E2E_NAME" "${f##*/}" >&2
                tail -n 25 "$f" >&2
            done
        fi
        printf '%s: FAILED (status %s)\n' "$E2E_NAME" "$status" >&2
    fi
    if [ -n "$T" ] && [ -d "$T" ]; then
        if [ "${TALLY_E2E_KEEP:-0}" = 1 ]; then
            printf '%s: kept %s\n' "$E2E_NAME" "$T" >&2
        else
            rm -rf "$T"
        fi
    fi
    exit "$status"
}

# e2e_setup — temp dir, environment overrides, traps.
e2e_setup() {
    [ -x "$TALLYD" ] || fail "no tallyd at $TALLYD (build first, or set TALLY_BIN_DIR)"
    [ -x "$TALLYCTL" ] || fail "no tallyctl at $TALLYCTL"
    [ -f "$CONF" ] || fail "no config at $CONF"
    # Under /tmp, not $TMPDIR: ipc:// paths must fit in a sockaddr_un (108 bytes).
    T=$(mktemp -d /tmp/tally-e2e.XXXXXX) || fail "mktemp -d failed"
    trap e2e_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    export TALLY_STORAGE_DIR="$T/store"
    export TALLY_INGEST_LISTEN="ipc://$T/ingest"
    export TALLY_INGEST_ACKS="ipc://$T/ingest.acks"
    export TALLY_QUOTA_ALERTS="ipc://$T/alerts"
    export TALLY_HTTP_LISTEN=127.0.0.1:0
    export TALLY_BILLING_METRICS_FILE="$TALLY_SOURCE_DIR/config/metrics.ini"
    INGEST="ipc://$T/ingest"
    # the development emitter of config/tokens: every namespace
    export TALLY_KEY="dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
    say "temp dir $T; binaries from $TALLY_BIN_DIR"
}

# e2e_pass — mark the test as passed (the EXIT trap then stays quiet).
e2e_pass() {
    E2E_OK=1
    say "PASS"
}

# bg_run NAME COMMAND [ARGS...] — run COMMAND in the background with stdout
# in $T/NAME.out and stderr in $T/NAME.err; its pid lands in $T/NAME.pid and
# its exit status in $T/NAME.rc when it ends (see bg_done, bg_status). The
# EXIT trap kills it if it is still running.
bg_run() {
    _name=$1
    shift
    rm -f "$T/$_name.pid" "$T/$_name.rc"
    (
        _rc=0
        # shellcheck disable=SC2016
        sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$T/$_name.pid" "$@" \
            </dev/null >"$T/$_name.out" 2>"$T/$_name.err" || _rc=$?
        echo "$_rc" >"$T/$_name.rc.tmp"
        mv "$T/$_name.rc.tmp" "$T/$_name.rc"
    ) &
    E2E_BG_NAMES="$E2E_BG_NAMES $_name"
}

# bg_done NAME — true once NAME has ended.
bg_done() {
    [ -f "$T/$1.rc" ]
}

# bg_status NAME — NAME's exit status (empty while it runs).
bg_status() {
    cat "$T/$1.rc" 2>/dev/null || true
}

# start_tallyd LOG [TIMEOUT_S] — start tallyd in the background, logging to
# LOG, and wait for its `ready` line. Sets TALLYD_PID. A wrapper subshell
# writes tallyd's exit status to $T/tallyd.rc when it ends, so its end can
# be polled without racing for zombies.
start_tallyd() {
    _log=$1
    TALLYD_LOG=$1
    _timeout=${2:-20}
    rm -f "$T/tallyd.pid" "$T/tallyd.rc" "$T/tallyd.rc.tmp"
    (
        _rc=0
        # shellcheck disable=SC2016
        sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$T/tallyd.pid" \
            "$TALLYD" -c "$CONF" </dev/null >"$_log" 2>&1 || _rc=$?
        echo "$_rc" >"$T/tallyd.rc.tmp"
        mv "$T/tallyd.rc.tmp" "$T/tallyd.rc"
    ) &
    _i=0
    _limit=$((_timeout * 10))
    while :; do
        if [ -f "$T/tallyd.pid" ] && grep -q 'ready' "$_log" 2>/dev/null; then
            break
        fi
        if [ -f "$T/tallyd.rc" ]; then
            TALLYD_PID=
            fail "tallyd exited with status $(cat "$T/tallyd.rc") before ready (log ${_log##*/})"
        fi
        _i=$((_i + 1))
        [ "$_i" -le "$_limit" ] || fail "tallyd not ready within ${_timeout}s (log ${_log##*/})"
        sleep 0.1
    done
    TALLYD_PID=$(cat "$T/tallyd.pid")
}

# wait_tallyd_exit TIMEOUT_S — wait for tallyd to end; sets TALLYD_STATUS.
# Returns 1 on timeout.
wait_tallyd_exit() {
    _i=0
    _limit=$(($1 * 10))
    while [ ! -f "$T/tallyd.rc" ]; do
        _i=$((_i + 1))
        [ "$_i" -le "$_limit" ] || return 1
        sleep 0.1
    done
    TALLYD_STATUS=$(cat "$T/tallyd.rc")
    TALLYD_PID=
    return 0
}

# check_tallyd_alive — fail when tallyd ended without this test asking it to
# (a crash, or a signal from outside the test).
check_tallyd_alive() {
    [ -n "$TALLYD_PID" ] || fail "tallyd is not running"
    if [ -f "$T/tallyd.rc" ]; then
        _st=$(cat "$T/tallyd.rc")
        TALLYD_PID=
        _why=$(grep -h "stopping signal=" "$TALLYD_LOG" 2>/dev/null | tail -n 1)
        fail "tallyd ended on its own with status $_st${_why:+ after: $_why} (this test sent no such signal: a crash, or another process signalled it)"
    fi
}

# stop_tallyd [TIMEOUT_S] — SIGTERM and wait; sets TALLYD_STATUS.
stop_tallyd() {
    check_tallyd_alive
    kill -TERM "$TALLYD_PID" || fail "cannot signal tallyd pid $TALLYD_PID"
    if ! wait_tallyd_exit "${1:-30}"; then
        kill -KILL "$TALLYD_PID" 2>/dev/null || true
        fail "tallyd did not exit within ${1:-30}s of SIGTERM (hang)"
    fi
}

# crash_tallyd — SIGKILL and wait for it to be gone.
crash_tallyd() {
    check_tallyd_alive
    kill -KILL "$TALLYD_PID" || fail "cannot SIGKILL tallyd pid $TALLYD_PID"
    wait_tallyd_exit 30 || fail "tallyd still there 30s after SIGKILL"
}

# dump_json [ARGS...] — tallyctl dump --json of this test's store to stdout.
dump_json() {
    "$TALLYCTL" dump -c "$CONF" --json "$@"
}

# dump_records [ARGS...] — one line per rollup record:
# "NS METRIC START SUM COUNT LABELS" (LABELS as k=v,k=v or "-").
dump_records() {
    dump_json "$@" >"$T/dump.out" || fail "tallyctl dump $* failed"
    sed -n 's/^[[,]\{0,1\} *{"ns":"\([^"]*\)","metric":"\([^"]*\)","period":"[a-z]*","start":"\([^"]*\)","sum":\([^,]*\),"count":\([0-9]*\),.*/\1 \2 \3 \4 \5 &/p' \
        "$T/dump.out" |
        awk '{
            labels = "-"
            if (match($0, /"labels":\{[^}]*\}/)) {
                labels = substr($0, RSTART + 10, RLENGTH - 11)
                gsub(/"/, "", labels); gsub(/:/, "=", labels)
            }
            print $1, $2, $3, $4, $5, labels
        }'
}

# dump_totals [ARGS...] — per namespace and metric, over all records:
# "NS METRIC SUM COUNT NRECORDS", sorted.
dump_totals() {
    dump_records "$@" >"$T/records.out" || exit 1
    awk '{ k = $1 " " $2; s[k] += $4; c[k] += $5; n[k]++ }
         END { for (k in s) printf "%s %.0f %.0f %d\n", k, s[k], c[k], n[k] }' \
        "$T/records.out" | sort
}
