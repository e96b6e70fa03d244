#!/bin/sh
# test_ui.sh — the /ui/ dashboard in headless Chromium against a live tallyd with known usage: numbers in the DOM, 401/403 messages, a screenshot kept as an artifact.
#
# Chromium comes from Debian's `chromium` package; without it the test
# prints a skip message and passes. The page takes its token, namespace and
# month from the URL fragment (#token=...&ns=...&month=...), so
# `chromium --headless --dump-dom` renders the data without typing; the
# virtual time budget lets the page's fetches finish before the dump.
#
# Known data, namespace demo, plan individual (the default plan here):
#   http_requests: hour 0: 1e6 (web); hour 1: 2e6 (web); hour 2: 4e6 (web)
#                  + 1e6 (api); hour 3: 4e6 (api) -> 12e6 in 4 hours, max 5e6;
#                  with shop's 999 the tenant bills 13 million, 10 included, 60 cents
#                  each -> 180, allocated by usage: demo's share is all 180
#                  (12e6 of 12,000,999, largest remainder)
#   vcpu_seconds:  hours 1 and 2: 360000 each -> 720000 = 200 vCPU-hours,
#                  100 included, 5 cents each -> 500; quota 3600000 -> 20 %
#   total cost of demo: 680 cents (namespaces carry no flat fee)
# and 999 requests in namespace shop, which the demo page must not show.
. "$(dirname "$0")/lib.sh"

CHROMIUM=${CHROMIUM:-chromium}
if ! command -v "$CHROMIUM" >/dev/null 2>&1; then
    say "SKIP: no '$CHROMIUM' on PATH (Debian package chromium); the dashboard was not tested"
    exit 0
fi

e2e_setup
export TALLY_BILLING_DEFAULT_PLAN=individual
# the known events sit at the start of the month, which may be weeks ago
export TALLY_INGEST_LATE_WINDOW_HOURS=8784
ART_DIR=$TALLY_BIN_DIR/../artifacts
mkdir -p "$ART_DIR" || fail "cannot create $ART_DIR"

start_tallyd "$T/tallyd.log"
PORT=$(sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/tallyd.log" | head -n 1)
[ -n "$PORT" ] || fail "no http port in the ready line"
BASE="http://127.0.0.1:$PORT"

# The month of the data: this month, unless fewer than 4 hours of it have
# passed (the events would be in the future); then the previous month.
NOW=$(now_s)
MONTH_START=$(date -u -d "$(date -u +%Y-%m-01)" +%s)
CURRENT=1
if [ $((NOW - MONTH_START)) -lt $((4 * 3600)) ]; then
    MONTH_START=$(date -u -d "$(date -u +%Y-%m-01) -1 month" +%s)
    CURRENT=0
fi
MONTH=$(date -u -d "@$MONTH_START" +%Y-%m)
say "data in $MONTH (current month: $CURRENT), http on $PORT"

emit() {
    _ts=$1
    shift
    "$TALLYCTL" emit --endpoint "$INGEST" --producer e2e-ui --ts "$_ts" "$@" >>"$T/emit.out" 2>&1 ||
        fail "tallyctl emit --ts $_ts $* failed: $(tail -n 3 "$T/emit.out")"
}
H=3600
emit "$MONTH_START" --ns demo --metric http_requests --value 1000000 --label object=web
emit $((MONTH_START + H)) --ns demo --metric http_requests --value 2000000 --label object=web
emit $((MONTH_START + 2 * H + 60)) --ns demo --metric http_requests --value 4000000 --label object=web
emit $((MONTH_START + 2 * H + 120)) --ns demo --metric http_requests --value 1000000 --label object=api
emit $((MONTH_START + 3 * H)) --ns demo --metric http_requests --value 4000000 --label object=api
emit $((MONTH_START + H)) --ns demo --metric vcpu_seconds --value 360000
emit $((MONTH_START + 2 * H + 1)) --ns demo --metric vcpu_seconds --value 360000
emit "$MONTH_START" --ns shop --metric http_requests --value 999

# ---- the page itself: public, static, HTML -----------------------------------
if command -v curl >/dev/null 2>&1; then
    for p in /ui/ /ui; do
        curl -s -D "$T/ui.head" -o "$T/ui.body" "$BASE$p" || fail "GET $p failed"
        grep -q '^HTTP/1.1 200' "$T/ui.head" || fail "GET $p: $(head -n 1 "$T/ui.head")"
        grep -qi '^Content-Type: text/html; charset=utf-8' "$T/ui.head" ||
            fail "GET $p: wrong Content-Type: $(grep -i '^Content-Type' "$T/ui.head")"
        grep -q '<svg\|createElementNS' "$T/ui.body" || fail "GET $p: not the dashboard"
    done
    # self-contained: nothing loaded from anywhere else
    if grep -Eiq '(src|href)=["'"'"']?(https?:)?//' "$T/ui.body"; then
        fail "the page refers to an external resource: $(grep -Eio '(src|href)=.{0,60}' "$T/ui.body" | head -n 3)"
    fi
else
    say "no curl: skipping the raw GET /ui/ checks"
fi

# chrome N URL [FLAGS...] — run headless Chromium with a fresh profile.
chrome() {
    _n=$1
    _url=$2
    shift 2
    rm -rf "$T/chrome-$_n"
    timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$T/chrome-$_n" \
        --virtual-time-budget=15000 "$@" "$_url" 2>"$T/chrome-$_n.err" || {
        tail -n 20 "$T/chrome-$_n.err" >&2
        fail "chromium ($_n) failed on $_url"
    }
}

# want FILE PATTERN WHAT — FILE must match the extended regex PATTERN.
want() {
    grep -Eq "$2" "$1" || fail "$3: no match for /$2/ in the rendered page ($(wc -c <"$1") bytes)"
}

# ---- admin token: every number -----------------------------------------------
chrome admin "$BASE/ui/#token=dev-admin-token&ns=demo&month=$MONTH&probe=pdf" --dump-dom >"$T/admin.html"
D=$T/admin.html
want "$D" '<div id="status"[^>]*data-state="ready"' "page did not finish loading ($(grep -o '<div id="status"[^<]*' "$D"))"
want "$D" 'data-metric="http_requests" data-total="12000000" data-hours="4" data-max="5000000"' "http_requests chart"
want "$D" 'data-metric="vcpu_seconds" data-total="720000" data-hours="2" data-max="360000"' "vcpu_seconds chart"
n=$(grep -o 'class="chart" data-metric=' "$D" | wc -l)
[ "$n" -eq 2 ] || fail "want 2 charts for demo (shop's usage must not show), got $n"
for h in 0 1 2 3; do
    hour=$(date -u -d "@$((MONTH_START + h * H))" +%Y-%m-%dT%H:00:00Z)
    want "$D" "data-hour=\"$hour\"" "http_requests bar of hour $hour"
done
want "$D" 'data-hour="[^"]*T02:00:00Z" data-quantity="5000000"' "hour 2 adds both objects"
want "$D" 'data-metrics="http_requests" data-cents="180"' "http_requests cost"
want "$D" 'data-metrics="vcpu_seconds" data-cents="500"' "vcpu_seconds cost"
want "$D" '<tr id="cost-total" data-cents="680">' "total cost"
want "$D" '>6\.80 USD<' "total cost as text"
if [ "$CURRENT" -eq 1 ]; then
    want "$D" 'data-quota="resources/vcpu_seconds" data-current="720000" data-maximum="3600000" data-percent="20"' \
        "vcpu_seconds quota bar"
fi
want "$D" 'data-quota="objects/lb_count"[^>]*data-maximum="10"' "lb_count quota bar"
want "$D" "data-invoice=\"inv-$MONTH\"" "invoice of $MONTH"
if command -v curl >/dev/null 2>&1; then
    cents=$(curl -s -H 'Authorization: APIToken dev-admin-token' \
        "$BASE/api/web/namespaces/system/usage/invoices/custom_list" |
        sed -n "s/.*\"name\":\"inv-$MONTH\",[^}]*\"amount\":\"\([0-9-]*\)\".*/\1/p")
    [ -n "$cents" ] || fail "no amount for inv-$MONTH from the API"
    want "$D" "data-invoice=\"inv-$MONTH\" data-cents=\"$cents\"" "invoice amount (API says $cents)"
fi
want "$D" 'data-pdf-bytes="[1-9][0-9]*" data-pdf-magic="%PDF-"' "PDF download decodes to a PDF"
if grep -q 'dev-admin-token' "$D"; then
    fail "the token shows in the page"
fi
say "admin: charts, costs, quotas, invoices and PDF check out"

# ---- a viewer of demo: usage yes, the tenant's invoices no (403) ---------------
chrome viewer "$BASE/ui/#token=dev-demo-viewer-token&ns=demo&month=$MONTH" --dump-dom >"$T/viewer.html"
D=$T/viewer.html
want "$D" '<div id="status"[^>]*data-state="ready"' "viewer page did not finish loading"
want "$D" 'data-metric="http_requests" data-total="12000000"' "viewer sees demo's usage"
want "$D" '<tr id="cost-total" data-cents="680">' "viewer sees demo's cost"
want "$D" 'class="error" data-error-status="403"[^>]*>Not allowed \(403\)' "viewer gets a visible 403 for invoices"

# ---- a viewer of demo asking for another namespace: 403 everywhere ---------------
chrome other "$BASE/ui/#token=dev-demo-viewer-token&ns=shop&month=$MONTH" --dump-dom >"$T/other.html"
n=$(grep -o 'data-error-status="403"' "$T/other.html" | wc -l)
[ "$n" -eq 4 ] || fail "want 4 sections refused with 403 for ns shop, got $n"
if grep -q 'data-metric=' "$T/other.html"; then
    fail "shop's usage shown to a demo viewer"
fi

# ---- a wrong token: 401, said on the page ---------------------------------------
chrome bad "$BASE/ui/#token=not-a-token&ns=demo&month=$MONTH" --dump-dom >"$T/bad.html"
want "$T/bad.html" '<div id="status"[^>]*data-state="error" data-http-status="401"' "401 in the status line"
want "$T/bad.html" 'data-error-status="401"' "401 in the sections"
say "viewer 403 and wrong-token 401 are shown"

# ---- the screenshot, kept as an artifact ---------------------------------------
chrome shot "$BASE/ui/#token=dev-admin-token&ns=demo&month=$MONTH" \
    --window-size=1280,1600 --screenshot="$T/ui.png"
[ -s "$T/ui.png" ] || fail "no screenshot"
[ "$(head -c 4 "$T/ui.png" | od -An -c | tr -d ' \n')" = "211PNG" ] || fail "the screenshot is not a PNG"
cp "$T/ui.png" "$ART_DIR/ui.png" || fail "cannot keep the screenshot in $ART_DIR"
say "screenshot: $ART_DIR/ui.png ($(wc -c <"$ART_DIR/ui.png") bytes)"

stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited with status $TALLYD_STATUS"
e2e_pass
