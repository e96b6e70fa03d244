#!/bin/sh
# dev.sh — one entry point for a fresh Debian 12 machine: install what is
# missing, build, then run tallyd or the tests.
#   ./dev.sh run        build and run tallyd on config/tallyd.conf (foreground)
#   ./dev.sh test       build and run every test (unit + end-to-end) with CTest
#   ./dev.sh test-asan  the whole suite under AddressSanitizer + UBSan
#   ./dev.sh test-tsan  the concurrency tests under ThreadSanitizer
#   ./dev.sh bench      build (release) and run the benchmarks
#   ./dev.sh EXTRA      tests/EXTRA.sh if present: fuzz, faults, valgrind, lint
set -eu
cd "$(dirname "$0")"

PKGS="build-essential cmake pkg-config libuv1-dev libnanomsg-dev nanomsg-utils liblmdb-dev
      lmdb-utils libmsgpack-dev libcriterion-dev libhttp-parser-dev libjansson-dev libck-dev
      libhpdf-dev libinih-dev libsystemd-dev libsodium-dev libcurl4-openssl-dev libnats-dev"
# what only the tests use: HTTP client, unit checks, PDF text, the dashboard's browser,
# libfaketime (the retention part of the backup test), promtool (/metrics is checked with
# it), nats-server (bench_jetstream.sh, the cluster tests of docs/cluster.md)
TEST_PKGS="curl systemd poppler-utils chromium faketime prometheus nats-server"

. tests/pkgs.sh
deps() { need_pkgs dev.sh $PKGS; }

build() { # build DIR [cmake args...]
    dir=$1
    shift
    cmake -S . -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$(nproc)"
}

jobs=$(nproc)
case "${1:-}" in
run)
    deps
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    exec ./build/bin/tallyd --config config/tallyd.conf
    ;;
test)
    PKGS="$PKGS $TEST_PKGS"
    deps
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ctest --test-dir build --output-on-failure -j"$jobs"
    ;;
test-asan)
    PKGS="$PKGS $TEST_PKGS"
    deps
    build build-asan -DCMAKE_BUILD_TYPE=Debug "-DTALLY_SANITIZE=address;undefined"
    # Criterion counts a test as passed even when LeakSanitizer reports at
    # the worker's exit, so every test's output is kept and searched.
    rc=0
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir build-asan --output-on-failure -j"$jobs" -V >build-asan/ctest.log 2>&1 || rc=$?
    sed -n '/tests passed/,$p' build-asan/ctest.log
    if grep -n "LeakSanitizer\|AddressSanitizer\|runtime error:" build-asan/ctest.log; then
        echo "dev.sh: sanitizer reports above (full log: build-asan/ctest.log)" >&2
        exit 1
    fi
    [ "$rc" -eq 0 ] || { grep -n "Failed\|FAILED\|\*\*\*" build-asan/ctest.log | tail -40; exit "$rc"; }
    ;;
test-tsan)
    deps
    build build-tsan -DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=thread
    # Criterion cannot start under TSan; the concurrency tests are plain
    # programs and scripts (tests/concurrency/). tallyd runs LMDB in copy
    # mode here: readers hand pages back to the writer through LMDB's
    # reader table, which TSan cannot see, so writing through the map looks
    # like a race with every earlier read of a reused page. In copy mode the
    # writes happen in the kernel (pwrite) and TSan's model holds.
    TALLY_STORAGE_WRITEMAP=false TSAN_OPTIONS="suppressions=$(pwd)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1" \
        ctest --test-dir build-tsan --output-on-failure -L concurrency
    ;;
bench)
    PKGS="$PKGS wrk nginx-light"
    deps
    build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    ./build/bin/tally-bench-ingest --producers 2 --events 2000000 --batch 100 --interval-ms 50 --in-flight 640
    ./build/bin/tally-bench-ingest --producers 4 --events 500000 --batch 1 --interval-ms 50 --in-flight 3500
    ./build/bin/tally-bench-ingest --producers 2 --events 2000000 --series 50000 --interval-ms 100
    ./build/bin/tally-bench-flush --series 100000
    ./build/bin/tally-bench-flush --series 100000 --history-hours 30
    sh bench/bench_http.sh build
    ;;
fuzz | faults | valgrind | lint)
    # the reliability suites keep their own scripts (tests/<name>.sh), which
    # install what they need and build into their own directories
    deps
    [ -f "tests/$1.sh" ] || { echo "dev.sh: tests/$1.sh is not here yet" >&2; exit 2; }
    exec sh "tests/$1.sh"
    ;;
*)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
