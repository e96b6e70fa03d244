#!/bin/sh
# test_events_evict.sh - the HTTP door's exactly-once set at ingest.http_dedup_max_events: the
# oldest identities are forgotten early (counted, logged, the window kept shown in /metrics)
# and the door stays open; identities still held keep resends from counting twice.
set -eu
. "$(dirname "$0")/lib.sh"

e2e_setup
http_port() { sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1; }
export TALLY_INGEST_HTTP_DEDUP_MAX_EVENTS=1000 TALLY_FLUSH_INTERVAL_MS=20
start_tallyd "$T/tallyd.log"
PORT=$(http_port "$T/tallyd.log")
URL=http://127.0.0.1:$PORT
EMIT=$TALLY_SOURCE_DIR/tests/e2e/events_emitter.py

emit() { # PREFIX COUNT OUT
    python3 "$EMIT" --url "$URL" --count "$2" --batch 100 --namespaces evict --id-prefix "$1" \
        --seed 1 --quiet >"$T/$3.out" 2>"$T/$3.err" ||
        fail "the door refused events ($3): $(cat "$T/$3.err")"
}
scrape() { curl -sf "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
counted() { curl -sf "$URL/metrics" | awk '$1 == "tally_events_http_accepted_total" { print $2 }'; }

# 3,000 distinct events, three times the maximum: 2,000 "a-" then 1,000 "b-"
emit a- 2000 first
emit b- 1000 second
i=0
while [ "$(scrape tally_events_http_dedup_evicted_total)" -lt 2000 ] && [ "$i" -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
evicted=$(scrape tally_events_http_dedup_evicted_total)
[ "$evicted" -ge 2000 ] || fail "want at least 2000 identities evicted, /metrics says $evicted"
[ "$(scrape tally_events_http_dedup_full_total)" = 0 ] || fail "a request was refused as full"
window=$(scrape tally_events_http_dedup_window_seconds)
[ -n "$window" ] || fail "no tally_events_http_dedup_window_seconds in /metrics"
grep -q "oldest identities forgotten early" "$T/tallyd.log" || fail "no eviction warning logged"
[ "$(counted)" = 3000 ] || fail "want 3000 events counted, /metrics says $(counted)"
say "3000 events over a maximum of 1000: $evicted identities evicted, window kept ${window}s, door open"

# the newest 1,000 are still held: sending them again counts nothing
emit b- 1000 again
[ "$(counted)" = 3000 ] || fail "a resend of identities still held counted again: $(counted)"
[ "$(scrape tally_events_http_duplicates_total)" = 1000 ] || fail "want 1000 duplicates"
say "resend of the 1000 identities still held: 1000 duplicates, nothing counted again"
# an evicted one is new again (the documented cost of the bound)
emit a- 100 late
[ "$(counted)" = 3100 ] || fail "want the 100 evicted identities counted again, got $(counted)"
stop_tallyd
total=$(dump_totals --ns evict | awk '{ s += $4 } END { print s + 0 }')
[ "$total" = 3100 ] || fail "the store holds $total events, /metrics said 3100"
say "resend of 100 evicted identities: counted again, as documented; store holds $total"
e2e_pass
