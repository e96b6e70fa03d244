#!/bin/sh
# test_month_end.sh — money across a month boundary (issue 15), with tallyd under libfaketime and
# five namespaces on the individual plan:
#
#   1. 2026-11-20: every surface agrees to the cent on the month to date — current_usage,
#      monthly_usage, the running invoice (JSON) and its PDF (pdftotext) — and the five
#      namespaces' current_usage figures add up exactly to the tenant's usage charges (the 10 M
#      included requests and 100 GB apply once, to the tenant).
#   2. 2026-12-01 10:00, inside the 48 h grace: November is not closed; November usage still
#      arriving lands on it; `invoice close` refuses 1999-01 (before the tenant: 400) and 2026-12
#      (not ended: 409).
#   3. 2026-12-03 11:00, past the grace: November is closed with the grace's usage; usage for
#      November arriving after that (inside the 168 h late window) is not lost: December's running
#      invoice carries "Late usage for 2026-11: Data Transfer Out", and monthly_usage of November
#      says what was invoiced and what came late.
#
# Needs libfaketime (Debian: faketime; dev.sh installs it), pdftotext (poppler-utils), python3 and
# curl. Bounded: about 25 s of tallyd time; 60-90 s on a loaded machine (one python3 per check).
# shellcheck disable=SC2015 # A && B || fail
set -eu
. "$(dirname "$0")/lib.sh"

command -v python3 >/dev/null 2>&1 || fail "python3 is needed"
command -v curl >/dev/null 2>&1 || fail "curl is needed"
command -v pdftotext >/dev/null 2>&1 || fail "pdftotext is needed (Debian package poppler-utils)"
FT_LIB=$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n 1 || true)
[ -n "$FT_LIB" ] || fail "libfaketime is needed (Debian package faketime; dev.sh installs it)"

e2e_setup

export TALLY_FLUSH_INTERVAL_MS=20
export TALLY_BILLING_DEFAULT_PLAN=individual
export TALLY_BILLING_CLOSE_GRACE_HOURS=48
export TALLY_INGEST_LATE_WINDOW_HOURS=168
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
ADMIN="Authorization: APIToken dev-admin-token"
DEV_KEY="dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"

http_port() {
    sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -n 1
}

# start_at LOG WHEN — tallyd alone on a clock starting at WHEN ("2026-11-20 12:00:00", UTC).
start_at() {
    export LD_PRELOAD="$FT_LIB" FAKETIME="@$2" TZ=UTC
    start_tallyd "$1"
    unset LD_PRELOAD FAKETIME
    BASE="http://127.0.0.1:$(http_port "$1")"
}

# event ID NS METRIC VALUE [TIME] — one CloudEvent through the HTTP door (204 expected).
event() {
    _t=${5:+,\"time\":\"$5\"}
    _st=$(curl -s -o "$T/ev.out" -w '%{http_code}' -X POST --max-time 30 \
        -H "Content-Type: application/cloudevents+json" -H "Authorization: Bearer $DEV_KEY" \
        --data-binary "{\"specversion\":\"1.0\",\"id\":\"$1\",\"source\":\"e2e\",\"type\":\"$3\",\"subject\":\"$2\"$_t,\"data\":{\"value\":$4}}" \
        "$BASE/api/v1/events") || _st=curl-failed
    [ "$_st" = 204 ] || fail "event $1: status $_st: $(cat "$T/ev.out")"
}

# api METHOD PATH [BODY] — the answer's body in $T/api.out, its status in ST.
api() {
    ST=$(curl -s -o "$T/api.out" -w '%{http_code}' -X "$1" --max-time 30 -H "$ADMIN" \
        -H "Content-Type: application/json" ${3:+--data-binary "$3"} "$BASE$2") || ST=curl-failed
}

# json EXPR — evaluate a Python expression over the last answer (as j).
json() {
    python3 -c "import json,sys; j=json.load(open('$T/api.out')); print($1)"
}

# pdf_text NAME — the invoice's PDF as text (pdftotext -layout) in $T/NAME.txt.
pdf_text() {
    api GET "/api/web/namespaces/system/usage/invoice_pdf?name=$1"
    [ "$ST" = 200 ] || fail "invoice_pdf $1: $ST $(cat "$T/api.out")"
    json "j['pdf']" | base64 -d >"$T/$1.pdf" || fail "invoice_pdf $1: not base64"
    pdftotext -layout "$T/$1.pdf" "$T/$1.txt" || fail "pdftotext $1 failed"
}

# dollars CENTS — "$1,234.56" as the PDF prints it.
dollars() {
    python3 -c "c=int('$1'); print('%s\$%s.%02d' % ('-' if c < 0 else '', format(abs(c)//100, ','), abs(c)%100))"
}

NSS="ns-a ns-b ns-c ns-d ns-e"

# ---- 1: the month to date, every surface ----------------------------------------------------------

start_at "$T/tallyd-1.log" "2026-11-20 12:00:00"
i=0
for ns in $NSS; do
    i=$((i + 1))
    event "r-$ns" "$ns" http_requests 3000001
    event "b-$ns" "$ns" bytes_out "$((i * 10))000000000"
done
api POST /api/web/namespaces/system/current_usage '{}'
[ "$ST" = 200 ] || fail "current_usage: $ST $(cat "$T/api.out")"
cu=$(json "j['total_cost']")
usage=$(json "sum(int(x['amount']) for x in j['usage_items'] if not x['fixed'])")
# 16 M requests billed, 10 included: 6 x 60 c; 150 GB out, 100 included: 50 x 9 c; the fee for
# 20 of 30 days: 2000 x 20 / 30 = 1333.33 -> 1333
[ "$usage" = 810 ] || fail "tenant usage charges $usage, expected 360 + 450 = 810: $(cat $T/api.out)"
[ "$cu" = $((1333 + 810)) ] || fail "current_usage total $cu, expected 2143"
api POST /api/web/namespaces/system/monthly_usage '{}'
mu=$(json "j['monthly_usage_items'][0]['amount']")
api GET /api/web/namespaces/system/usage/invoices/custom_list
run=$(json "[x['amount'] for x in j['invoices'] if x['name'] == 'inv-2026-11'][0]")
pdf_text inv-2026-11
# no tax configured: the amount due is the total
grep -q "Amount due *$(dollars "$cu")" "$T/inv-2026-11.txt" ||
    fail "the running invoice's PDF does not total $(dollars "$cu"): $(grep -i "total\|amount due" "$T/inv-2026-11.txt")"
grep -q "Plan fee: Individual *- *20 days *\$20.00 / month *\$13.33" "$T/inv-2026-11.txt" ||
    fail "the PDF's fee line is not 20 days for \$13.33: $(grep -i 'plan fee' "$T/inv-2026-11.txt")"
[ "$cu" = "$mu" ] && [ "$cu" = "$run" ] ||
    fail "month-to-date totals differ: current_usage $cu, monthly_usage $mu, running invoice $run"
say "month to date: current_usage = monthly_usage = running invoice = PDF = $cu cents"
sum=0
for ns in $NSS; do
    api POST "/api/web/namespaces/$ns/current_usage" '{}'
    [ "$ST" = 200 ] || fail "current_usage of $ns: $ST $(cat "$T/api.out")"
    sum=$((sum + $(json "j['total_cost']")))
done
[ "$sum" = "$usage" ] || fail "the five namespaces add up to $sum cents, the tenant's usage to $usage"
say "five namespaces: their shares add up to the tenant's $usage cents"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"

# ---- 2: inside the grace -------------------------------------------------------------------------

start_at "$T/tallyd-2.log" "2026-12-01 10:00:00"
sleep 2.5 # the invoicer's first pass runs a second after start
! grep -q "invoices: closed" "$T/tallyd-2.log" || fail "a month was closed inside the grace"
event late-1 ns-a bytes_out 5000000000 "2026-11-30T23:00:00Z"
api POST /api/tally/namespaces/system/invoices/close '{"month":"1999-01"}'
[ "$ST" = 400 ] && grep -q "before the tenant" "$T/api.out" ||
    fail "close 1999-01: $ST $(cat "$T/api.out"), expected 400 naming the tenant's first month"
api POST /api/tally/namespaces/system/invoices/close '{"month":"2026-12"}'
[ "$ST" = 409 ] && grep -q "not ended" "$T/api.out" ||
    fail "close 2026-12: $ST $(cat "$T/api.out"), expected 409"
say "inside the grace: November open; close refuses 1999-01 (400) and 2026-12 (409)"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"

# ---- 3: past the grace, then late usage ----------------------------------------------------------

start_at "$T/tallyd-3.log" "2026-12-03 11:00:00"
wait_log "$T/tallyd-3.log" "invoices: closed name=inv-2026-11" 10 2>/dev/null ||
    { sleep 3; grep -q "invoices: closed name=inv-2026-11" "$T/tallyd-3.log" || fail "November was not closed after the grace"; }
api GET /api/web/namespaces/system/usage/invoices/custom_list
nov=$(json "[x['amount'] for x in j['invoices'] if x['name'] == 'inv-2026-11'][0]")
# the whole fee, 360 c of requests, 155 GB: 55 x 9 c
[ "$nov" = $((2000 + 360 + 495)) ] || fail "November's invoice is $nov cents, expected 2855"
pdf_text inv-2026-11
grep -q "Grace *closed 48 h after month end" "$T/inv-2026-11.txt" ||
    fail "November's invoice does not state its grace: $(head -n 20 "$T/inv-2026-11.txt")"
event late-2 ns-c bytes_out 3000000000 "2026-11-29T10:00:00Z"
api POST /api/web/namespaces/system/monthly_usage '{}'
[ "$(json "[x.get('tally_invoiced_amount') for x in j['monthly_usage_items'] if x['start_timestamp'].startswith('2026-11')][0]")" = 2855 ] ||
    fail "monthly_usage of November does not say what was invoiced: $(cat "$T/api.out")"
[ "$(json "[x.get('tally_late_amount') for x in j['monthly_usage_items'] if x['start_timestamp'].startswith('2026-11')][0]")" = 27 ] ||
    fail "monthly_usage of November does not say what came late (3 GB x 9 c): $(cat "$T/api.out")"
api POST /api/web/namespaces/system/current_usage '{}'
dec=$(json "j['total_cost']")
api GET /api/web/namespaces/system/usage/invoices/custom_list
decinv=$(json "[x['amount'] for x in j['invoices'] if x['name'] == 'inv-2026-12'][0]")
[ "$decinv" = $((dec + 27)) ] ||
    fail "December's running invoice is $decinv cents, expected its month to date $dec + 27 late"
pdf_text inv-2026-12
# the PDF's description column shortens long names ("Data ..."); the line's month and amount
# must be there
grep -q "Late usage for 2026-11: Data.* \$0.27" "$T/inv-2026-12.txt" ||
    fail "December's PDF has no late-usage line: $(cat "$T/inv-2026-12.txt")"
say "past the grace: November closed at $nov cents; 27 cents of late November usage on December ($decinv)"
stop_tallyd
[ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd exited $TALLYD_STATUS on SIGTERM"
e2e_pass
