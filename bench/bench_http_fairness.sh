#!/bin/sh
# bench_http_fairness.sh — the silent-connection attack of issue 16 against tallyd's defaults:
# 1,088 connections that never send a byte, 64 from each of 17 loopback addresses (more than
# http.max_connections + the 8 reserved), then /healthz, /metrics and an ordinary request.
# Prints how long each takes and its status, and when ordinary requests are served again
# (target: /healthz and /metrics answer 200 throughout; the rest within
# http.request_timeout_ms, 10 s). Then 200 connections from one address: how many the
# per-address limit (64) lets in. Bounded: about 15 s.
# Usage: bench/bench_http_fairness.sh [BUILD_DIR]   (needs python3)
set -eu
B=${1:-build}/bin
T=$(mktemp -d /tmp/tally-bench-fair-XXXXXX)
TP=0
cleanup() {
    [ "$TP" -ne 0 ] && kill "$TP" 2>/dev/null && wait "$TP" 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
SRC=$(cd "$(dirname "$0")/.." && pwd)
PORT=$((10000 + $$ % 20000)) # below the ephemeral range (32768+)
export TALLY_STORAGE_DIR=$T/store TALLY_INGEST_LISTEN=ipc://$T/ingest \
    TALLY_INGEST_ACKS=ipc://$T/ingest.acks TALLY_QUOTA_ALERTS=ipc://$T/alerts \
    TALLY_HTTP_LISTEN=127.0.0.1:$PORT TALLY_AUTH_TOKENS_FILE=$SRC/config/tokens \
    TALLY_BILLING_METRICS_FILE=$SRC/config/metrics.ini
"$B/tallyd" -c "$SRC/config/tallyd.conf" 2>"$T/tallyd.log" &
TP=$!
i=0
until grep -q "msg=ready" "$T/tallyd.log"; do
    i=$((i + 1)); [ $i -gt 100 ] && { cat "$T/tallyd.log"; exit 1; }; sleep 0.1
done
python3 - "$PORT" <<'PY'
import http.client, socket, sys, time
port = int(sys.argv[1])
def get(path, src="127.0.0.1"):
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(src, 0))
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        st = r.status
    except Exception as e:
        st = type(e).__name__
    return st, (time.monotonic() - t) * 1000
held = []
t0 = time.monotonic()
for a in range(17):
    for k in range(64):
        s = socket.socket()
        s.bind(("127.0.10.%d" % (a + 1), 0))
        s.connect(("127.0.0.1", port))
        held.append(s)
print("silent connections: %d from 17 addresses, opened in %.0f ms" %
      (len(held), (time.monotonic() - t0) * 1000))
time.sleep(0.5)
for path in ("/healthz", "/metrics", "/openapi.json"):
    runs = [get(path) for _ in range(5)]
    print("%-14s status %-18s ms %s" % (path, sorted(set(str(r[0]) for r in runs)),
                                        " ".join("%.1f" % r[1] for r in runs)))
while get("/openapi.json")[0] != 200 and time.monotonic() - t0 < 40:
    time.sleep(0.1)
print("ordinary requests served again %.1f s after the silent connections opened "
      "(http.request_timeout_ms 10 s)" % (time.monotonic() - t0))
for s in held:
    s.close()
time.sleep(0.5)
one, ok = [], 0
for k in range(200):
    s = socket.socket()
    s.bind(("127.0.20.1", 0))
    s.connect(("127.0.0.1", port))
    one.append(s)
time.sleep(0.3)
for s in one:
    s.settimeout(0.05)
    try:
        ok += s.recv(64) == b""  # never a 429: still open
    except socket.timeout:
        ok += 1
print("one address, 200 connections: %d kept open, %d answered 429 "
      "(http.max_connections_per_address 64)" % (ok, len(one) - ok))
PY
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^tally_http_(connections_refused|reserve|request_timeouts)' || true
