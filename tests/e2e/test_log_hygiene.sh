#!/bin/sh
# test_log_hygiene.sh — tallyd's log after a full run: one `ts=… level=… msg=…` line per event, no token secrets or payment data, request lines only when log.requests is on.
#
# The same exercise runs twice: once at level debug with log.requests on,
# once with the defaults (info, requests off). Each time it authenticates
# with every development token and a wrong one, registers a payment method
# with a provider token and a contact email, tries a card number, asks for
# a plan change with a payment provider token and contacts, and emits
# events; then it greps the whole log.
. "$(dirname "$0")/lib.sh"

command -v curl >/dev/null 2>&1 || fail "curl is needed"
e2e_setup

# What must never reach the log.
PM_TOKEN=tok_provider_8c1f2e9a7b
PLAN_TOKEN=tok_plan_payment_5d0e44c1
EMAIL=billing-contact.hygiene@example.org
PHONE=+47-5550-1234
CARD=4111111111111111
WRONG_TOKEN=wrong-secret-6a2b9c
SECRETS="dev-admin-token dev-demo-editor-token dev-demo-viewer-token $WRONG_TOKEN $PM_TOKEN $PLAN_TOKEN $EMAIL $PHONE $CARD"

# call TOKEN METHOD PATH [BODY] — one request; prints the status code.
call() {
    _tok=$1
    _m=$2
    _p=$3
    set -- -s -o "$T/call.out" -w '%{http_code}' -X "$_m" -H "Authorization: APIToken $_tok"
    if [ -n "${CALL_BODY:-}" ]; then
        set -- "$@" -H 'Content-Type: application/json' --data-binary "$CALL_BODY"
    fi
    curl "$@" "$URL$_p"
}

# expect CODE TOKEN METHOD PATH [BODY]
expect() {
    _want=$1
    shift
    CALL_BODY=${4:-}
    _got=$(call "$1" "$2" "$3")
    CALL_BODY=
    [ "$_got" = "$_want" ] || fail "$2 $3: want $_want, got $_got: $(head -c 300 "$T/call.out")"
    NREQ=$((NREQ + 1))
}

# exercise RUN — start tallyd (the environment says how it logs), do
# everything once, stop it; the log is $T/RUN.log.
exercise() {
    export TALLY_STORAGE_DIR="$T/store-$1"
    start_tallyd "$T/$1.log"
    PORT=$(sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/$1.log" | head -n 1)
    [ -n "$PORT" ] || fail "no http port in the ready line"
    URL=http://127.0.0.1:$PORT
    NREQ=0
    # authentication with every development token, a wrong one and none
    expect 200 dev-admin-token POST /api/web/namespaces/system/usage_details '{}'
    expect 200 dev-demo-editor-token POST /api/web/namespaces/demo/usage_details '{}'
    expect 200 dev-demo-viewer-token POST /api/web/namespaces/demo/usage_details '{}'
    expect 403 dev-demo-viewer-token POST /api/web/namespaces/shop/usage_details '{}'
    expect 401 "$WRONG_TOKEN" POST /api/web/namespaces/demo/usage_details '{}'
    expect 200 dev-admin-token GET /api/web/namespaces/demo/quota/usage
    # a payment method: provider token and contact; then a card number (refused)
    expect 200 dev-admin-token POST /api/web/namespaces/system/billing/payment_methods \
        "{\"token\":\"$PM_TOKEN\",\"role\":\"PAYMENT_METHOD_ROLE_PRIMARY\",\"contact\":{\"address1\":\"1 Main St\",\"address2\":\"$EMAIL\",\"city\":\"Oslo\",\"country\":\"NO\",\"phone_number\":\"$PHONE\",\"contact_type\":\"PAYMENT\",\"email\":\"$EMAIL\"}}"
    expect 400 dev-admin-token POST /api/web/namespaces/system/billing/payment_methods \
        "{\"token\":\"$CARD\",\"contact\":{\"address2\":\"$EMAIL\"}}"
    expect 403 dev-demo-viewer-token POST /api/web/namespaces/demo/billing/payment_methods \
        "{\"token\":\"$PM_TOKEN\"}"
    # a plan change carrying a payment provider token and contacts
    expect 200 dev-admin-token POST /api/web/namespaces/system/billing/plan_transition \
        "{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"$PLAN_TOKEN\",\"billing_address\":{\"address1\":\"1 Main St\",\"address2\":\"$EMAIL\",\"city\":\"Oslo\",\"country\":\"NO\",\"phone_number\":\"$PHONE\",\"contact_type\":\"BILLING\"},\"payment_address\":{\"address1\":\"1 Main St\",\"address2\":\"$EMAIL\",\"city\":\"Oslo\",\"country\":\"NO\",\"phone_number\":\"$PHONE\",\"contact_type\":\"PAYMENT\"}}}"
    expect 400 dev-admin-token POST /api/web/namespaces/system/billing/plan_transition \
        "{\"new_plan\":\"team\",\"payload\":{\"payment_provider_token\":\"$CARD\"}}"
    expect 200 dev-admin-token GET /api/web/namespaces/system/usage/invoices/custom_list
    # events, through libtally
    "$TALLYCTL" emit --endpoint "$INGEST" --producer "e2e-hygiene-$1" --ns demo \
        --metric http_requests --value 5 --count 20 --label object=web >>"$T/emit.out" 2>&1 ||
        fail "tallyctl emit failed: $(tail -n 3 "$T/emit.out")"
    "$TALLYCTL" usage --url "$URL" --token dev-admin-token --ns demo >>"$T/usage.out" 2>&1 ||
        fail "tallyctl usage failed: $(tail -n 3 "$T/usage.out")"
    stop_tallyd
    [ "$TALLYD_STATUS" -eq 0 ] || fail "tallyd ($1) exited with status $TALLYD_STATUS"
}

# check_log RUN — format and secrets.
check_log() {
    _log=$T/$1.log
    [ -s "$_log" ] || fail "$1: empty log"
    if grep -Evq '^ts=[^ ]+ level=(debug|info|warn|error) msg=' "$_log"; then
        fail "$1: lines not in the log format: $(grep -Ev '^ts=[^ ]+ level=(debug|info|warn|error) msg=' "$_log" | head -n 3)"
    fi
    for s in $SECRETS; do
        if grep -Fq -- "$s" "$_log"; then
            fail "$1: the log holds '$s': $(grep -F -- "$s" "$_log" | head -n 2)"
        fi
    done
    say "$1: $(wc -l <"$_log") lines, all in format, no secrets"
}

# ---- run 1: debug, request logs on ------------------------------------------
export TALLY_LOG_LEVEL=debug
export TALLY_LOG_REQUESTS=true
exercise verbose
check_log verbose
nreq=$(grep -c '^ts=[^ ]* level=info msg=request ' "$T/verbose.log")
[ "$nreq" -ge "$NREQ" ] || fail "verbose: want at least $NREQ request lines, got $nreq"
grep -q 'msg=request method=POST path=/api/web/namespaces/system/billing/payment_methods status=200' \
    "$T/verbose.log" || fail "verbose: no request line for the payment method"
grep -q 'msg=request .*status=401' "$T/verbose.log" || fail "verbose: no request line for the 401"
say "verbose: $nreq request lines for $NREQ requests"

# ---- run 2: the defaults (info, request logs off) --------------------------------
unset TALLY_LOG_LEVEL TALLY_LOG_REQUESTS
exercise quiet
check_log quiet
if grep -q 'msg=request ' "$T/quiet.log"; then
    fail "quiet: request lines while log.requests is off: $(grep 'msg=request ' "$T/quiet.log" | head -n 2)"
fi
if grep -q '^ts=[^ ]* level=debug ' "$T/quiet.log"; then
    fail "quiet: debug lines at level info"
fi
grep -q 'level=info msg=ready ' "$T/quiet.log" || fail "quiet: no ready line"
e2e_pass
