#!/bin/sh
# test_usage_stream.sh — usage_details streamed at many series: the answer's items against what was
# loaded, paging (all pages = the unpaged answer), metric and label-selector filters, group_by,
# 400s naming the field, 429 + Retry-After past http.max_heavy_reads_per_token, and tallyd's
# peak RSS during a 200k-series read (bounded, not proportional to the series).
set -eu
. "$(dirname "$0")/lib.sh"
e2e_setup
command -v curl >/dev/null || fail "curl is needed"
command -v python3 >/dev/null || fail "python3 is needed"
H=$TALLY_BIN_DIR/tally-bench-reads
[ -x "$H" ] || fail "no $H (build the benches)"
TOKEN=dev-admin-token
BIG=${BIG:-200000}
# RSS growth allowed during one read (the target is 32 MiB; docs/performance.md)
BOUND_KIB=${BOUND_KIB:-40960}

# fast: one series per object; mixed: 3000 such plus 15000 under a label
# that sorts before "object" (three per object, 5000 objects): the slow path
"$H" load "$T/store" 5000 fast fast 2>/dev/null || fail "load fast"
"$H" load "$T/store" 3000 fast mixed 2>/dev/null || fail "load mixed (fast part)"
"$H" load "$T/store" 15000 slow mixed 2>/dev/null || fail "load mixed (slow part)"
"$H" load "$T/store" "$BIG" fast big 2>/dev/null || fail "load big"

export TALLY_HTTP_MAX_HEAVY_READS_PER_TOKEN=1 TALLY_HTTP_RATE_PER_TOKEN=0
start_tallyd "$T/tallyd.log" 60
PORT=$(sed -n 's/.*ready.* http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/tallyd.log" | head -n 1)
URL=http://127.0.0.1:$PORT

# post NS BODY OUT — usage_details; prints the status
post() {
    curl -s -o "$3" -w '%{http_code}' -X POST -H "Authorization: APIToken $TOKEN" -d "$2" \
        "$URL/api/web/namespaces/$1/usage_details"
}

# ---- whole answers against the loaded data ----------------------------------
for ns in fast mixed; do
    [ "$(post $ns '{}' "$T/$ns.json")" = 200 ] || fail "usage_details $ns: $(cat "$T/$ns.json")"
done
python3 - "$T" <<'PY' || fail "whole answers differ from the loaded data"
import json, sys
T = sys.argv[1]
def expect(parts):
    q = {}
    for n, slow in parts:
        for i in range(n):
            o = "o%07d" % (i // 3 if slow else i)
            q[o] = q.get(o, 0) + 1 + i % 1000
    return q
for ns, parts in (("fast", [(5000, 0)]), ("mixed", [(3000, 0), (15000, 1)])):
    items = json.load(open(f"{T}/{ns}.json"))["usage_items"]
    got = [(i["object_name"], i["quantity"]) for i in items]
    want = sorted(expect(parts).items())
    if got != want:
        print(ns, "got", len(got), got[:3], "want", len(want), want[:3]); sys.exit(1)
PY
say "whole answers match the loaded data (fast and slow groups)"

# ---- paging -------------------------------------------------------------------
for ns in fast mixed; do
    tok=""
    n=0
    : >"$T/pages.$ns"
    while :; do
        body='{"limit":777'${tok:+,\"page_token\":\"$tok\"}'}'
        [ "$(post $ns "$body" "$T/page.json")" = 200 ] || fail "page $n of $ns: $(cat "$T/page.json")"
        cat "$T/page.json" >>"$T/pages.$ns"
        echo >>"$T/pages.$ns"
        tok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("next_page_token",""))' "$T/page.json")
        n=$((n + 1))
        [ -n "$tok" ] || break
        [ $n -lt 100 ] || fail "paging $ns does not end"
    done
    python3 - "$T/$ns.json" "$T/pages.$ns" <<'PY' || fail "pages of $ns differ from the unpaged answer"
import json, sys
whole = json.load(open(sys.argv[1]))["usage_items"]
paged = []
for line in open(sys.argv[2]):
    if line.strip():
        paged += json.loads(line)["usage_items"]
d = lambda v: [json.dumps(i, separators=(",", ":")) for i in v]
if d(whole) != d(paged):
    print(len(whole), len(paged)); sys.exit(1)
PY
    say "$ns: $n pages of 777 = the unpaged answer"
done

# a token is bound to its request: another window, or a forged one, is a 400
tok=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_page_token"])' "$T/page1.json" 2>/dev/null ||
    { post fast '{"limit":10}' "$T/p.json" >/dev/null;
      python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["next_page_token"])' "$T/p.json"; })
# check_400 NS BODY FIELD
check_400() {
    st=$(post "$1" "$2" "$T/bad.json")
    [ "$st" = 400 ] || fail "$2: status $st, want 400 ($(cat "$T/bad.json"))"
    grep -q "\"message\":\"$3" "$T/bad.json" || fail "$2: the 400 does not name $3: $(cat "$T/bad.json")"
}
check_400 fast "{\"limit\":10,\"page_token\":\"$tok\",\"from\":\"2000-01-01T00:00:00Z\"}" page_token
check_400 mixed "{\"limit\":10,\"page_token\":\"$tok\"}" page_token
check_400 fast '{"page_token":"eyJxIjoiMCJ9"}' page_token
check_400 fast '{"page_token":"!!"}' page_token
check_400 fast '{"page_token":7}' page_token
check_400 fast '{"limit":0}' limit
check_400 fast '{"limit":"10"}' limit
check_400 fast '{"limit":100001}' limit
check_400 fast '{"metric_label":"no spaces"}' metric_label
check_400 fast '{"label_selector":"object in ("}' label_selector
check_400 fast '{"group_by":"a b"}' group_by
check_400 fast '{"group_by":"object","page_token":"x"}' page_token
say "bad extension values answer 400 naming the field"

# ---- filters ---------------------------------------------------------------------
[ "$(post fast '{"metric_label":"cpu"}' "$T/f.json")" = 200 ] || fail "metric filter"
cmp -s "$T/f.json" "$T/fast.json" || fail "metric_label=cpu differs from the whole answer"
[ "$(post fast '{"metric_label":"mem"}' "$T/f.json")" = 200 ] || fail "metric filter mem"
grep -q '^{"usage_items":\[\]}$' "$T/f.json" || fail "metric_label=mem is not empty: $(head -c 200 "$T/f.json")"
[ "$(post system '{"metric_label":"cpu","label_selector":"object in (o0000001,o0000002)"}' "$T/f.json")" = 200 ] ||
    fail "system-wide filter: $(cat "$T/f.json")"
python3 - "$T/f.json" <<'PY' || fail "selector over every namespace"
import json, sys
got = [(i["namespace"], i["object_name"], i["quantity"]) for i in json.load(open(sys.argv[1]))["usage_items"]]
# fast/big: one series each (2, 3); mixed: fast series (2, 3) + slow 3..5 (4+5+6), 6..8 (7+8+9)
want = [("big", "o0000001", 2), ("big", "o0000002", 3), ("fast", "o0000001", 2), ("fast", "o0000002", 3),
        ("mixed", "o0000001", 2 + 15), ("mixed", "o0000002", 3 + 24)]
if got != want:
    print(got); sys.exit(1)
PY
[ "$(post mixed '{"label_selector":"deployment=d1"}' "$T/f.json")" = 200 ] || fail "selector deployment"
python3 - "$T/f.json" <<'PY' || fail "selector deployment=d1"
import json, sys
q = {}
for i in range(15000):
    if i % 7 == 1:
        o = "o%07d" % (i // 3); q[o] = q.get(o, 0) + 1 + i % 1000
got = [(i["object_name"], i["quantity"]) for i in json.load(open(sys.argv[1]))["usage_items"]]
if got != sorted(q.items()):
    print(len(got), got[:3]); sys.exit(1)
PY
say "metric_label and label_selector filter the items"

# ---- group_by ----------------------------------------------------------------------
[ "$(post mixed '{"group_by":"deployment","limit":3}' "$T/g.json")" = 200 ] || fail "group_by: $(cat "$T/g.json")"
python3 - "$T/g.json" <<'PY' || fail "group_by deployment"
import json, sys
g = {}
for i in range(3000):
    g[""] = g.get("", 0) + 1 + i % 1000
for i in range(15000):
    d = "d%d" % (i % 7); g[d] = g.get(d, 0) + 1 + i % 1000
want = sorted(g.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
doc = json.load(open(sys.argv[1]))
got = [(x["value"], x["quantity"]) for x in doc["usage_groups"]]
if got != want or doc["total_groups"] != 8 or doc["group_by"] != "deployment":
    print(got, want, doc["total_groups"]); sys.exit(1)
PY
say "group_by sums per label value, top-N by quantity"

# ---- memory bound and the per-token limit -------------------------------------------------
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$TALLYD_PID/status"; }
before=$(kib VmRSS)
echo 5 >"/proc/$TALLYD_PID/clear_refs" || fail "cannot reset VmHWM"
[ "$(post big '{}' "$T/big.json")" = 200 ] || fail "big read"
peak=$(kib VmHWM)
items=$(grep -o '"object_name"' "$T/big.json" | wc -l)
[ "$items" -eq "$BIG" ] || fail "big read gave $items items, want $BIG"
growth=$((peak - before))
say "big: $BIG items, $(wc -c <"$T/big.json") bytes, RSS $before KiB before, peak $peak KiB (+$growth KiB)"
# The bound holds for the real allocator only: AddressSanitizer keeps freed
# memory in quarantine (so RSS grows with everything freed), and a wrapper
# script (valgrind) is not the process measured.
if [ "$(head -c 4 "$TALLYD" | od -An -c | tr -d ' ')" != "177ELF" ] ||
    { command -v readelf >/dev/null && readelf -d "$TALLYD" | grep -q 'libasan'; }; then
    say "memory bound not checked: tallyd runs under a sanitizer or a wrapper"
else
    [ "$growth" -le "$BOUND_KIB" ] || fail "RSS grew by $growth KiB during one read (bound $BOUND_KIB KiB)"
fi
rm -f "$T/big.json"

# a reader that takes its answer slowly holds the token's one heavy read
curl -s -o /dev/null --limit-rate 200k -X POST -H "Authorization: APIToken $TOKEN" -d '{}' \
    "$URL/api/web/namespaces/big/usage_details" &
SLOW=$!
i=0
until curl -s "$URL/metrics" | grep -q '^tally_heavy_reads 1$'; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "the slow read never started"; sleep 0.1
done
curl -s -D "$T/h429" -o "$T/b429" -X POST -H "Authorization: APIToken $TOKEN" -d '{}' \
    "$URL/api/web/namespaces/fast/usage_details"
kill "$SLOW" 2>/dev/null || true
wait "$SLOW" 2>/dev/null || true
head -n 1 "$T/h429" | grep -q ' 429 ' || fail "second heavy read of the token: $(head -n 1 "$T/h429")"
grep -qi '^Retry-After: [1-9]' "$T/h429" || fail "429 without Retry-After"
grep -q 'max_heavy_reads_per_token' "$T/b429" || fail "429 does not say which limit: $(cat "$T/b429")"
curl -s "$URL/metrics" | grep -q '^tally_heavy_reads_refused_total [1-9]' ||
    fail "/metrics does not count the refusal"
# another token is not held up by it, and the slot comes back
curl -sf -o /dev/null -X POST -H "Authorization: APIToken dev-demo-viewer-token" -d '{}' \
    "$URL/api/web/namespaces/demo/usage_details" || fail "another token was refused"
i=0
until curl -s "$URL/metrics" | grep -q '^tally_heavy_reads 0$'; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "the cut-off read kept its slot"; sleep 0.1
done
[ "$(post fast '{"limit":1}' "$T/ok.json")" = 200 ] || fail "the token's slot did not come back"
say "429 + Retry-After past http.max_heavy_reads_per_token, counted; the slot comes back"
check_tallyd_alive
stop_tallyd
e2e_pass
