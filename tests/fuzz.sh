#!/bin/sh
# tests/fuzz.sh — build the libFuzzer harnesses (clang, ASan + UBSan), replay the regression inputs, fuzz each harness for a bounded time.
#
#   sh tests/fuzz.sh                 every harness, FUZZ_SECONDS (default 40) each
#   FUZZ_SECONDS=300 sh tests/fuzz.sh http config    longer, only some harnesses
#
#   FUZZ_SEED (default 1): a fixed seed makes a CI run explore the inputs that
#   passed before landing; FUZZ_SEED=0 picks a random one for longer hunts.
# Environment: FUZZ_SECONDS (per harness), FUZZ_JOBS (harnesses fuzzed at
# once; default: the number of CPUs), FUZZ_BUILD (build dir; build-fuzz).
# Fails on any crash, leak, timeout, out-of-memory or sanitizer report, and
# on any input of tests/fuzz/regressions/<harness>/ that still fails.
# Findings are kept in $FUZZ_BUILD/findings/<harness>/ (crash-*, leak-*...);
# the new corpus entries of a run stay in $FUZZ_BUILD/corpus/<harness>/.
set -eu
cd "$(dirname "$0")/.."

HARNESSES="batch http routes_json hourly_query selector config tokens catalog plans cloudevents"
SECONDS_EACH=${FUZZ_SECONDS:-40}
BUILD=${FUZZ_BUILD:-build-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc)}
[ $# -gt 0 ] && HARNESSES="$*"

# ---- tools -----------------------------------------------------------------
. tests/pkgs.sh
need_pkgs fuzz.sh clang libclang-rt-14-dev

# ---- build -----------------------------------------------------------------
CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_WERROR=OFF >/dev/null
targets=""
for h in $HARNESSES; do targets="$targets fuzz_$h"; done
# only the harnesses: the rest of the tree is gcc's business
# shellcheck disable=SC2086
cmake --build "$BUILD" -j"$(nproc)" --target $targets >"$BUILD/fuzz-build.log" 2>&1 || {
    tail -40 "$BUILD/fuzz-build.log"
    echo "fuzz.sh: build failed (log: $BUILD/fuzz-build.log)" >&2
    exit 1
}
BIN="$(pwd)/$BUILD/bin"
TALLY_SOURCE_DIR="$(pwd)"
export TALLY_SOURCE_DIR
# abort_on_error: a report is a crash libFuzzer saves; detect_leaks: leaks fail
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
# scratch files (temp configs, the LMDB store) on tmpfs when there is one
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=${TMPDIR:-/tmp}
TALLY_FUZZ_TMPDIR=$(mktemp -d "$shm/tally-fuzz-run.XXXXXX")
export TALLY_FUZZ_TMPDIR
trap 'rm -rf "$TALLY_FUZZ_TMPDIR"' EXIT
FLAGS="-rss_limit_mb=2048 -timeout=10 -malloc_limit_mb=2048"

# does a libFuzzer log hold a finding?
report_in() {
    grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:\|ERROR: libFuzzer\|SUMMARY: \|==ERROR\|deadly signal\|out-of-memory\|timeout after" "$1"
}

# ---- regressions: every saved input must pass now ---------------------------
fail=0
for h in $HARNESSES; do
    dir=tests/fuzz/regressions/$h
    [ -d "$dir" ] || continue
    files=$(find "$dir" -type f ! -name 'README*' ! -name '.*' | sort)
    [ -n "$files" ] || continue
    n=$(echo "$files" | wc -l)
    log="$BUILD/regress-$h.log"
    # shellcheck disable=SC2086
    if "$BIN/fuzz_$h" $FLAGS $files >"$log" 2>&1 && ! report_in "$log"; then
        echo "fuzz.sh: regressions $h: $n inputs pass"
    else
        echo "fuzz.sh: regressions $h: FAILED (log: $log)" >&2
        grep -m 20 "ERROR\|runtime error\|SUMMARY\|Running:" "$log" >&2 || true
        fail=1
    fi
done

# ---- fuzz ------------------------------------------------------------------
run_one() { # run_one HARNESS: fuzz over a copy of the seed corpus
    h=$1
    work="$BUILD/corpus/$h"
    out="$BUILD/findings/$h"
    rm -rf "$work" "$out" "$BUILD/fuzz-$h.rc"
    mkdir -p "$work" "$out"
    cp tests/fuzz/corpus/"$h"/* "$work"/
    dict=""
    [ -f "tests/fuzz/dict/$h.dict" ] && dict="-dict=tests/fuzz/dict/$h.dict"
    # -fork=0, one process: the summary line and the exit status are its own
    rc=0
    # shellcheck disable=SC2086
    "$BIN/fuzz_$h" $FLAGS $dict -seed="${FUZZ_SEED:-1}" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -artifact_prefix="$out/" "$work" >"$BUILD/fuzz-$h.log" 2>&1 || rc=$?
    echo "$rc" >"$BUILD/fuzz-$h.rc"
}

echo "fuzz.sh: fuzzing $(echo "$HARNESSES" | wc -w) harnesses, ${SECONDS_EACH}s each, $JOBS at a time"
running=0
for h in $HARNESSES; do
    run_one "$h" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait
        running=0
    fi
done
wait

total=0
for h in $HARNESSES; do
    log="$BUILD/fuzz-$h.log"
    rc=$(cat "$BUILD/fuzz-$h.rc" 2>/dev/null || echo 1)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    total=$((total + ${execs:-0}))
    if [ "$rc" -ne 0 ] || report_in "$log"; then
        echo "fuzz.sh: $h: FAILED after ${execs:-?} executions (exit $rc; log: $log)" >&2
        grep -m 30 "ERROR\|runtime error\|SUMMARY\|Test unit written\|#0 \|#1 \|#2 \|#3 " "$log" >&2 || true
        echo "fuzz.sh: keep the input as tests/fuzz/regressions/$h/<name> once fixed" >&2
        fail=1
    else
        echo "fuzz.sh: $h: ok, ${execs:-?} executions, coverage ${cov:-?}"
    fi
done
echo "fuzz.sh: $total executions in all"
[ "$fail" -eq 0 ] || {
    echo "fuzz.sh: FAILED" >&2
    exit 1
}
echo "fuzz.sh: ok"
