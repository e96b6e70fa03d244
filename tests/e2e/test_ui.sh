#!/bin/sh
# test_ui.sh — the /ui/ capacity dashboard in headless Chromium against a live tallyd holding 12 hours of usage in 4 namespaces: picker, human units, stacked split, top objects, quotas, alerts, bill; screenshots kept as artifacts.
#
# Chromium comes from Debian's `chromium` package (TEST_PKGS in dev.sh);
# without it the test prints a skip message and passes. The page reads its
# token and view from the URL fragment (#token=...&ns=...&range=...), which
# the browser never sends and the page drops from the address bar at once,
# so the token appears in no server log. `--dump-dom` with a virtual time
# budget lets the page's fetches finish before the dump.
#
# Data: the 12 hours before the current hour, sent through the HTTP door
# (POST /api/v1/events) with past event times. Namespace demo has fixed
# hourly values, so its totals are known:
#   bytes_out     web 2e9 + api 5e8 per hour -> 30e9 bytes = "30 GB"
#   vcpu_seconds  web 7200 per hour           -> 86400 s   = "24 vCPU-hours"
#   http_requests web 123456 per hour         -> "1,481,472 requests"
# shop, media and analytics vary by hour (totals computed by the generator).
# A quota of 100000 vCPU-seconds on demo makes an 86 % warning alert when
# the 12 hours lie in the current month. The demo page runs with
# auto-refresh every 30 s and 45 s of virtual time: it must refresh once and
# keep its view.
#
# Artifacts: $TALLY_BIN_DIR/../artifacts/ui-tenant.png (admin, all
# namespaces), ui-namespace.png (demo viewer, namespace demo) — that is
# BUILD_DIR/artifacts/ in CI — and ui-perf.txt (page weight, time to first
# chart).
. "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-chromium}
if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
    say "SKIP: no '$CHROMIUM' on PATH (Debian package chromium); the dashboard was not tested"
    exit 0
fi
command -v python3 >/dev/null 2>&1 || fail "python3 is needed to send the events"
command -v curl >/dev/null 2>&1 || fail "curl is needed"

e2e_setup
export TALLY_BILLING_DEFAULT_PLAN=individual
ART_DIR=$TALLY_BIN_DIR/../artifacts
mkdir -p "$ART_DIR" || fail "cannot create $ART_DIR"

start_tallyd "$T/tallyd.log"
PORT=$(sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/tallyd.log" | head -n 1)
[ -n "$PORT" ] || fail "no http port in the ready line"
BASE="http://127.0.0.1:$PORT"
NOW=$(now_s)
HOUR0=$((NOW / 3600 * 3600))
say "http on $PORT; data in the 12 hours before $(date -u -d "@$HOUR0" +%FT%TZ)"

# ---- the data: 12 hours x 4 namespaces through the HTTP door -------------------------
python3 - "$BASE" "$HOUR0" "$TALLY_KEY" >"$T/expect.txt" <<'EOF' || fail "sending events failed"
import json, math, sys, time, urllib.request
base, hour0, key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
events, totals = [], {}
def ev(ns, metric, obj, v, ts):
    events.append({"specversion": "1.0", "id": "ui-%d" % len(events), "source": "e2e-ui",
                   "type": metric, "subject": ns,
                   "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)),
                   "data": {"value": v, "object": obj}})
    totals[(ns, metric)] = totals.get((ns, metric), 0) + v
for k in range(1, 13):
    ts = hour0 - k * 3600 + 600
    w = 1 + 0.5 * math.sin(k)  # a daily-ish swing
    ev("demo", "bytes_out", "web", 2000000000, ts)
    ev("demo", "bytes_out", "api", 500000000, ts)
    ev("demo", "vcpu_seconds", "web", 7200, ts)
    ev("demo", "http_requests", "web", 123456, ts)
    ev("demo", "storage_bytes", "db", 50000000000, ts)
    ev("shop", "bytes_out", "cart", int(5e8 * w), ts)
    ev("shop", "bytes_out", "checkout", int(3e8 * w), ts)
    ev("shop", "vcpu_seconds", "cart", int(3600 * w), ts)
    ev("shop", "http_requests", "cart", int(50000 * w), ts)
    ev("media", "bytes_out", "cdn-eu", int(4e9 * w), ts)
    ev("media", "bytes_out", "cdn-us", int(2.5e9 * w), ts)
    ev("media", "http_requests", "cdn-eu", int(10000 * w), ts)
    ev("analytics", "bytes_out", "etl", int(2.5e8 * w), ts)
    ev("analytics", "vcpu_seconds", "etl", int(36000 * w), ts)
for i in range(0, len(events), 100):
    req = urllib.request.Request(base + "/api/v1/events", method="POST",
                                 data=json.dumps(events[i:i + 100]).encode(),
                                 headers={"Content-Type": "application/cloudevents-batch+json",
                                          "Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert 200 <= r.status < 300, r.status
for (ns, m), v in sorted(totals.items()):
    print(ns, m, v)
print("tenant bytes_out", sum(v for (ns, m), v in totals.items() if m == "bytes_out"))
EOF
say "sent $(wc -l <"$T/expect.txt") totals: $(tr '\n' ';' <"$T/expect.txt")"
TENANT_BYTES=$(awk '$1 == "tenant" && $2 == "bytes_out" {print $3}' "$T/expect.txt")

api() { # api METHOD PATH [BODY] — as admin; the body on stdout
    if [ -n "${3:-}" ]; then
        curl -s -X "$1" -H 'Authorization: APIToken dev-admin-token' -H 'Content-Type: application/json' \
            --data "$3" "$BASE$2"
    else
        curl -s -X "$1" -H 'Authorization: APIToken dev-admin-token' "$BASE$2"
    fi
}
api POST /api/web/namespaces/demo/quotas \
    '{"metadata":{"name":"ui-vcpu","namespace":"demo"},"spec":{"resource_limits":{"vcpu_seconds":{"maximum":100000}}}}' \
    >"$T/quota.json"
grep -q '"ui-vcpu"' "$T/quota.json" || fail "quota create: $(cat "$T/quota.json")"

# ---- the extension routes, raw -------------------------------------------------------
api GET /api/tally/namespaces >"$T/ns.json"
grep -q '"namespaces":\["analytics","demo","media","shop"\]' "$T/ns.json" || fail "admin namespaces: $(cat "$T/ns.json")"
grep -q '"tenant":true' "$T/ns.json" || fail "admin is tenant-wide: $(cat "$T/ns.json")"
curl -s -H 'Authorization: APIToken dev-demo-viewer-token' "$BASE/api/tally/namespaces" >"$T/ns-viewer.json"
grep -q '"tenant":false,"namespaces":\["demo"\]' "$T/ns-viewer.json" || fail "viewer namespaces: $(cat "$T/ns-viewer.json")"
FROM=$(date -u -d "@$((HOUR0 - 24 * 3600))" +%FT%TZ)
TO=$(date -u -d "@$HOUR0" +%FT%TZ)
api POST /api/tally/namespaces/system/usage_series \
    "{\"from\":\"$FROM\",\"to\":\"$TO\",\"metric\":\"bytes_out\",\"group_by\":\"namespace\",\"step\":\"hour\"}" >"$T/series.json"
python3 - "$T/series.json" "$TENANT_BYTES" <<'EOF' || fail "usage_series by namespace: $(head -c 600 "$T/series.json")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["total"] == int(sys.argv[2]), (r["total"], sys.argv[2])
assert r["buckets"] == 24 and all(len(s["values"]) == 24 for s in r["series"])
assert [s["key"] for s in r["series"]][0] == "media", r["series"]
assert sum(s["total"] for s in r["series"]) == r["total"] and r["other"] is None
assert sum(sum(s["values"]) for s in r["series"]) == r["total"]
assert r["unit"] == "bytes" and r["groups"] == 4
EOF
api POST /api/tally/namespaces/demo/usage_series '{"metric":"bytes_out","group_by":"object","top":1,"step":"day"}' >"$T/series-demo.json"
grep -q '"series":\[{"key":"web","object_name":"web","total":24000000000,' "$T/series-demo.json" ||
    fail "top object of demo: $(cat "$T/series-demo.json")"
grep -q '"other":{"groups":1,"total":6000000000,' "$T/series-demo.json" || fail "other of demo: $(cat "$T/series-demo.json")"
# validation names the field; a demo viewer cannot read the tenant's series
for bad in '{"metric":"bytes_out","step":"week"}|step' '{"metric":"bytes_out","top":0}|top' \
    '{"group_by":"object"}|metric' '{"metric":"bytes_out","group_by":"pod"}|group_by' \
    '{"metric":"bytes_out","from":"2026-13-01T00:00:00Z"}|from' '{"metric":"bytes_out","top":"3"}|top' \
    '{"metric":"bytes_out","from":"2020-01-01T00:00:00Z","to":"2026-01-01T00:00:00Z"}|step' \
    '{"metric":"bytes out"}|metric' '{"metric":"bytes_out","namespace":"shop"}|namespace'; do
    body=${bad%|*}
    field=${bad##*|}
    out=$(api POST /api/tally/namespaces/demo/usage_series "$body")
    case $out in *"\"message\":\"$field"*) ;; *) fail "bad $field: $out" ;; esac
done
st=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: APIToken dev-demo-viewer-token' \
    --data '{"metric":"bytes_out"}' "$BASE/api/tally/namespaces/system/usage_series")
[ "$st" = 403 ] || fail "demo viewer on the tenant's series: $st, want 403"
st=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/api/tally/namespaces")
[ "$st" = 401 ] || fail "namespaces without a token: $st, want 401"
say "extension routes: namespaces, usage_series and validation check out"

# alerts: the warning for demo's vCPU quota, if the data is in this month
MONTH_START=$(date -u -d "$(date -u +%Y-%m-01)" +%s)
ALERT=0
if [ $((HOUR0 - 12 * 3600)) -ge "$MONTH_START" ]; then
    ALERT=1
    i=0
    until api GET /api/tally/namespaces/demo/alerts | grep -q '"key":"vcpu_seconds","level":"warning"'; do
        i=$((i + 1))
        [ "$i" -le 100 ] || fail "no vcpu_seconds warning for demo: $(api GET /api/tally/namespaces/demo/alerts)"
        sleep 0.1
    done
    api GET /api/tally/namespaces/shop/alerts | grep -q '"alerts":\[\]' || fail "demo's alert shown for shop"
fi

# ---- the page itself: public, static, self-contained ---------------------------------
for p in /ui/ /ui; do
    curl -s -D "$T/ui.head" -o "$T/ui.body" "$BASE$p" || fail "GET $p failed"
    grep -q '^HTTP/1.1 200' "$T/ui.head" || fail "GET $p: $(head -n 1 "$T/ui.head")"
    grep -qi '^Content-Type: text/html; charset=utf-8' "$T/ui.head" || fail "GET $p: wrong Content-Type"
done
if grep -Eiq '(src|href)=["'"'"']?(https?:)?//|@import|url\(["'"'"']?(https?:)?//' "$T/ui.body"; then
    fail "the page refers to an external resource: $(grep -Eio '(src|href)=.{0,60}' "$T/ui.body" | head -n 3)"
fi
WEIGHT=$(wc -c <"$T/ui.body")
GZ=$(gzip -9c "$T/ui.body" | wc -c)

# chrome N URL [FLAGS...] — headless Chromium with a fresh profile, stdout in
# $T/N.out. One at a time: on a loaded 2-core machine, parallel runs were
# slower than serial ones.
chrome() {
    _n=$1
    _url=$2
    shift 2
    rm -rf "$T/chrome-$_n"
    timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$T/chrome-$_n" \
        --virtual-time-budget="${BUDGET:-10000}" "$@" "$_url" >"$T/$_n.out" 2>"$T/chrome-$_n.err" || {
        tail -n 20 "$T/chrome-$_n.err" >&2
        fail "chromium ($_n) failed"
    }
}
# want FILE PATTERN WHAT — FILE must match the extended regex PATTERN.
want() {
    grep -Eq "$2" "$1" || fail "$3: no match for /$2/ in the rendered page ($(wc -c <"$1") bytes)"
}

# ---- tenant view (admin) ----------------------------------------------------------------
t0=$(now_ms)
# each run dumps the DOM and takes the screenshot at once (Chromium's
# start-up is most of a run's time)
chrome tenant "$BASE/ui/#token=dev-admin-token&ns=system&range=24h&metric=bytes_out" \
    --window-size=1400,1500 --screenshot="$T/tenant.png" --dump-dom
# the demo page refreshes itself every 30 s: 45 s of virtual time see one
BUDGET=45000 chrome demo "$BASE/ui/#token=dev-demo-viewer-token&ns=demo&range=24h&metric=bytes_out&refresh=30" \
    --window-size=1400,1500 --screenshot="$T/namespace.png" --dump-dom
chrome bad "$BASE/ui/#token=not-a-token&ns=demo" --dump-dom
TENANT_MS=$(elapsed_since "$t0")
D=$T/tenant.out
want "$D" '<div id="status"[^>]*data-state="ready"' "tenant page did not finish ($(grep -o '<div id="status"[^<]*' "$D"))"
for o in '"system">All namespaces \(tenant\)' '"analytics">analytics' '"demo">demo' '"media">media' '"shop">shop'; do
    want "$D" "<option value=$o</option>" "picker option $o"
done
want "$D" 'data-range="24h" aria-pressed="true"' "24 h quick pick pressed"
want "$D" "class=\"chartwrap\" data-metric=\"bytes_out\" data-step=\"hour\" data-total=\"$TENANT_BYTES\"" "tenant bytes_out chart"
for ns in media demo shop analytics; do
    want "$D" "<li data-series=\"$ns\"" "legend entry $ns (split by namespace)"
done
n=$(grep -o 'data-series="[a-z]*" data-bucket=' "$D" | sed 's/ data-bucket=//' | sort -u | wc -l)
[ "$n" -eq 4 ] || fail "want bars of 4 namespaces stacked, got $n"
want "$D" '<text x="4" y="12" class="unit" data-unit="GB">GB per hour</text>' "y-axis in GB"
want "$D" 'text-anchor="end" data-tick="1[05]000000000">1[05]</text>' "a y tick at 10 or 15 GB"
want "$D" '<button type="button" class="card" data-metric="vcpu_seconds" data-total="[0-9]+" aria-pressed="false"><span class="t">vCPU \(vcpu_seconds\)</span><span class="v">[0-9.,]+ vCPU-hours</span>' "vCPU card in vCPU-hours"
want "$D" '<tr data-object="cdn-eu" data-namespace="media" data-total="[0-9]+" data-share="[0-9.]+">' "top object cdn-eu of media"
# quota usage counts the current month: known only when the data lies in it
[ "$ALERT" -eq 0 ] ||
    want "$D" 'data-quota="demo/vcpu_seconds" data-current="86400" data-maximum="100000" data-percent="86.4"' "demo's vCPU quota bar"
want "$D" 'data-quota="demo/vcpu_seconds" data-current="[0-9]+" data-maximum="100000"' "demo's vCPU quota bar"
cents=$(api POST /api/web/namespaces/system/current_usage '{}' | sed -n 's/.*"total_cost":"\([0-9-]*\)".*/\1/p')
[ -n "$cents" ] || fail "no total_cost from current_usage"
want "$D" "<tr id=\"bill-total\" data-cents=\"$cents\">" "running bill = current_usage's total_cost ($cents)"
[ "$ALERT" -eq 0 ] || want "$D" '<tr data-alert="demo/vcpu_seconds" data-level="warning">' "demo's alert in the list"
want "$D" 'data-invoice="inv-' "the running invoice"
FIRST=$(sed -n 's/.*<body[^>]* data-first-chart-ms="\([0-9]*\)".*/\1/p' "$D")
[ -n "$FIRST" ] || fail "no data-first-chart-ms on <body>"
if grep -q 'dev-admin-token' "$D"; then
    fail "the token shows in the page"
fi
say "tenant view: picker, stacked split, GB axis, vCPU-hours, top objects, quota, bill, alerts"

# ---- namespace view (demo viewer): human units, split by object ---------------------------
D=$T/demo.out
want "$D" '<div id="status"[^>]*data-state="ready"' "demo page did not finish ($(grep -o '<div id="status"[^<]*' "$D"))"
want "$D" '<select id="ns"><option value="demo">demo</option></select>' "a demo viewer's picker holds demo only"
want "$D" '<main data-ns="demo" data-from="[^"]*" data-to="[^"]*" data-step="hour" data-metric="bytes_out" data-loads="2">' \
    "auto-refresh ran once and kept the view ($(grep -o '<main[^>]*>' "$D"))"
want "$D" 'updated [0-9:]+ UTC, every 30 s</div>' "the status says how often it refreshes"
want "$D" 'data-metric="bytes_out" data-total="30000000000" aria-pressed="true"><span class="t">Data Transfer Out \(bytes_out\)</span><span class="v">30 GB</span>' "demo bytes_out total 30 GB"
want "$D" 'data-metric="vcpu_seconds" data-total="86400" [^>]*><span class="t">[^<]*</span><span class="v">24 vCPU-hours</span>' "demo vCPU 24 vCPU-hours"
want "$D" 'data-metric="http_requests" data-total="1481472" [^>]*><span class="t">[^<]*</span><span class="v">1,481,472 requests</span>' "demo requests with thousands separators"
want "$D" '<li data-series="web" data-total="24000000000">' "split by object: web"
want "$D" '<tr data-object="web" data-namespace="" data-total="24000000000" data-share="80.0">' "web has 80 % of demo's bytes"
want "$D" 'Invoices are tenant-wide' "no invoices for a namespace viewer"
if grep -Eq 'data-series="(shop|media|analytics)"|cdn-eu' "$D"; then
    fail "another namespace's usage shown to a demo viewer"
fi

# ---- a wrong token: 401 on the page ---------------------------------------------------------
want "$T/bad.out" '<div id="status"[^>]*data-state="error" data-http-status="401"' "401 in the status line"

# ---- screenshots (taken above), kept as artifacts ---------------------------------------------
for f in tenant namespace; do
    [ "$(head -c 4 "$T/$f.png" | od -An -c | tr -d ' \n')" = "211PNG" ] || fail "$f screenshot is not a PNG"
    cp "$T/$f.png" "$ART_DIR/ui-$f.png" || fail "cannot keep the screenshot in $ART_DIR"
done
# The API part of the first chart, on the real clock: the three requests
# the page makes before it draws (namespaces, series by metric, series by
# namespace), one after another as the page does.
API_MS=$(for q in "GET /api/tally/namespaces" \
    "POST /api/tally/namespaces/system/usage_series {\"from\":\"$FROM\",\"to\":\"$TO\",\"group_by\":\"metric\"}" \
    "POST /api/tally/namespaces/system/usage_series {\"from\":\"$FROM\",\"to\":\"$TO\",\"metric\":\"bytes_out\",\"top\":9}"; do
    set -- $q
    curl -s -o /dev/null -w '%{time_total}\n' -X "$1" -H 'Authorization: APIToken dev-admin-token' \
        ${3:+--data "$3"} "$BASE$2"
done | awk '{s += $1} END {printf "%d", s * 1000 + 0.5}')
printf 'first_chart_api_ms %s (the 3 requests before the first chart, curl, real clock)\n' "$API_MS" >"$ART_DIR/ui-perf.txt"
printf 'page_bytes %s\npage_gzip_bytes %s\nfirst_chart_ms %s (performance.now() at the first chart, headless with virtual time)\ndump_wall_s %s (3 chromium runs, start to DOM dump, serial)\n' \
    "$WEIGHT" "$GZ" "$FIRST" "$TENANT_MS" | tee -a "$ART_DIR/ui-perf.txt" >&2
say "screenshots: $ART_DIR/ui-tenant.png, $ART_DIR/ui-namespace.png"

stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited with status $TALLYD_STATUS"
e2e_pass
