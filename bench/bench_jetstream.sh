#!/bin/sh
# bench_jetstream.sh — JetStream publish figures for docs/cluster.md: one nats-server (R1)
# and a three-node cluster (R3), all on loopback with private ports and stores in a
# temporary directory, each measured by tally-bench-jetstream for a bounded time.
#
# usage: bench/bench_jetstream.sh [BUILD_BIN_DIR] [SECONDS] [IN_FLIGHT]
#   BUILD_BIN_DIR  where tally-bench-jetstream is (default build/bin)
#   SECONDS        publish time per run, at most 60 (default 10)
#   IN_FLIGHT      unacknowledged publishes at most (default 4096)
# Needs nats-server (Debian: nats-server) and a build with libnats-dev.
# Everything it starts is stopped on exit; nothing leaves 127.0.0.1.
set -eu
BIN=${1:-$(cd "$(dirname "$0")/.." && pwd)/build/bin}
SECS=${2:-10}
INFL=${3:-4096}
BENCH=$BIN/tally-bench-jetstream
command -v nats-server >/dev/null || { echo "bench_jetstream: nats-server is not installed" >&2; exit 2; }
[ -x "$BENCH" ] || { echo "bench_jetstream: no $BENCH (build with libnats-dev installed)" >&2; exit 2; }
[ "$SECS" -le 60 ] || SECS=60
T=$(mktemp -d /tmp/tally-js.XXXXXX)
PIDS=
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT INT TERM

# free_port — a loopback TCP port no socket uses, below the ephemeral range
# (where outgoing connections would take it between this check and the bind)
free_port() {
    while :; do
        p=$(( ($(od -An -N2 -tu2 /dev/urandom) % 12000) + 20000 ))
        if ! ss -tan 2>/dev/null | grep -q ":$p "; then
            echo "$p"
            return
        fi
    done
}

# start NAME PORT [CLUSTER_PORT ROUTES] — one nats-server with JetStream
start() {
    name=$1 port=$2
    {
        echo "server_name: $name"
        echo "listen: 127.0.0.1:$port"
        echo "jetstream { store_dir: \"$T/$name\", max_memory_store: 64MB, max_file_store: 4GB }"
        if [ $# -gt 2 ]; then
            echo "cluster { name: tally-bench, listen: 127.0.0.1:$3, routes: [$4] }"
        fi
    } >"$T/$name.conf"
    nats-server -c "$T/$name.conf" >"$T/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    i=0
    until grep -q "Server is ready" "$T/$name.log"; do
        i=$((i + 1))
        [ $i -le 100 ] || { echo "bench_jetstream: $name did not start" >&2; cat "$T/$name.log" >&2; exit 1; }
        sleep 0.1
    done
}

echo "# JetStream publish, $(nproc) cores, nats-server $(nats-server --version | sed 's/.*v//'), ${SECS}s a run, $INFL in flight"
P=$(free_port)
start r1 "$P"
"$BENCH" --urls "nats://127.0.0.1:$P" --replicas 1 --seconds "$SECS" --in-flight "$INFL"
for p in $PIDS; do kill "$p"; wait "$p" 2>/dev/null || true; done
PIDS=

P1=$(free_port) P2=$(free_port) P3=$(free_port)
C1=$(free_port) C2=$(free_port) C3=$(free_port)
ROUTES="nats-route://127.0.0.1:$C1,nats-route://127.0.0.1:$C2,nats-route://127.0.0.1:$C3"
start n1 "$P1" "$C1" "$ROUTES"
start n2 "$P2" "$C2" "$ROUTES"
start n3 "$P3" "$C3" "$ROUTES"
"$BENCH" --urls "nats://127.0.0.1:$P1,nats://127.0.0.1:$P2,nats://127.0.0.1:$P3" \
    --replicas 3 --seconds "$SECS" --in-flight "$INFL"
