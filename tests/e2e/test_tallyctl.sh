#!/bin/sh
# test_tallyctl.sh — tallyctl against a live tallyd: where the token and the URL come from, the times a person types, human units in tables, errors and exit codes, help.
#
# Token sources in order: --token-file, --token (kept for scripts),
# TALLY_TOKEN, the configuration's [tallyctl] token_file; the URL from --url
# or the configuration's [http] listen. Each source is shown to work alone,
# and to lose to the one before it by giving the later one a wrong token.
. "$(dirname "$0")/lib.sh"

e2e_setup
start_tallyd "$T/tallyd.log"
PORT=$(sed -n 's/.*msg=ready .*http=127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/tallyd.log" | head -n 1)
[ -n "$PORT" ] || fail "no http port in the ready line"
URL=http://127.0.0.1:$PORT
# no token or token file may leak in from the environment the test runs in
unset TALLY_TOKEN
export TALLY_TALLYCTL_TOKEN_FILE=

# ctl NAME [ARGS...] — run tallyctl; stdout in $T/NAME.out, stderr in
# $T/NAME.err, exit status in RC.
ctl() {
    _n=$1
    shift
    RC=0
    "$TALLYCTL" "$@" >"$T/$_n.out" 2>"$T/$_n.err" </dev/null || RC=$?
}

# want_rc NAME CODE — fail unless the last ctl exited CODE.
want_rc() {
    [ "$RC" = "$2" ] ||
        fail "$1: exit $RC, want $2; stdout: $(head -c 400 "$T/$1.out"); stderr: $(head -c 400 "$T/$1.err")"
}

# want_in NAME out|err TEXT — fail unless the stream holds TEXT (fixed string).
want_in() {
    grep -qF -- "$3" "$T/$1.$2" || fail "$1: $2 lacks '$3': $(head -c 600 "$T/$1.$2")"
}

# ---- data: 1000 requests of 3 (3,000) and 1.5 MiB out, this hour ----------
ctl emit1 emit --endpoint "$INGEST" --producer ctl-a --ns demo --metric http_requests \
    --value 3 --count 1000 --label object=lb-1 --timeout 30
want_rc emit1 0
ctl emit2 emit --endpoint "$INGEST" --producer ctl-b --ns demo --metric bytes_out \
    --value 1572864 --label object=lb-1 --timeout 30
want_rc emit2 0

printf '# the viewer token of config/tokens\n\n  dev-demo-viewer-token  \n' >"$T/token"
chmod 600 "$T/token"
printf 'wrong-token-0000\n' >"$T/bad-token"
chmod 600 "$T/bad-token"

# ---- the token ------------------------------------------------------------
ctl tf usage --url "$URL" --token-file "$T/token" --ns demo --json
want_rc tf 0
want_in tf out '"quantity":3000'
[ ! -s "$T/tf.err" ] || fail "a 0600 token file made noise: $(cat "$T/tf.err")"

TALLY_TOKEN=dev-demo-viewer-token ctl env usage --url "$URL" --ns demo --json
want_rc env 0
want_in env out '"quantity":3000'

ctl compat usage --url "$URL" --token dev-demo-viewer-token --ns demo --json
want_rc compat 0

# [tallyctl] token_file, relative to the configuration's directory, and
# [http] listen for the URL: a copy of the shipped config next to the token
sed -e 's/^token_file =.*/token_file = token/' \
    -e "s/^listen = 127.0.0.1:7400/listen = 127.0.0.1:$PORT/" "$CONF" >"$T/ctl.conf"
grep -q "^listen = 127.0.0.1:$PORT" "$T/ctl.conf" || fail "the config copy has no [http] listen"
# the file's token_file and listen, not the harness' overrides
unset TALLY_TALLYCTL_TOKEN_FILE TALLY_HTTP_LISTEN
ctl conf usage --config "$T/ctl.conf" --ns demo
want_rc conf 0
want_in conf out "3,000" # a table with thousands separators ...
want_in conf out "1.50 MiB" # ... and bytes in binary units
want_in conf out "lb-1"

# precedence: --token-file before TALLY_TOKEN before the configuration
TALLY_TOKEN=wrong-token-0000 ctl prec1 usage -c "$T/ctl.conf" --token-file "$T/token" --ns demo
want_rc prec1 0
TALLY_TOKEN=wrong-token-0000 ctl prec2 usage -c "$T/ctl.conf" --ns demo
want_rc prec2 1
want_in prec2 err "HTTP 401"
sed -e 's/^token_file =.*/token_file = bad-token/' "$T/ctl.conf" >"$T/ctl-bad.conf"
TALLY_TOKEN=dev-demo-viewer-token ctl prec3 usage -c "$T/ctl-bad.conf" --ns demo
want_rc prec3 0
ctl prec4 usage -c "$T/ctl-bad.conf" --ns demo
want_rc prec4 1
# the environment override of the key works like any other
TALLY_TALLYCTL_TOKEN_FILE=$T/token ctl prec5 usage -c "$T/ctl-bad.conf" --ns demo
want_rc prec5 0
export TALLY_TALLYCTL_TOKEN_FILE=
export TALLY_HTTP_LISTEN=127.0.0.1:0

# token errors
ctl none usage --url "$URL" --ns demo
want_rc none 2
want_in none err "no API token"
want_in none err "--token-file"
want_in none err "TALLY_TOKEN"
ctl both usage --url "$URL" --token x --token-file "$T/token" --ns demo
want_rc both 2
want_in both err "not both"
ctl missing usage --url "$URL" --token-file "$T/no-such-file" --ns demo
want_rc missing 1
want_in missing err "$T/no-such-file"
printf '# only a comment\n\n' >"$T/empty-token"
chmod 600 "$T/empty-token"
ctl empty usage --url "$URL" --token-file "$T/empty-token" --ns demo
want_rc empty 1
want_in empty err "no secret"
cp "$T/token" "$T/open-token"
chmod 644 "$T/open-token"
ctl open usage --url "$URL" --token-file "$T/open-token" --ns demo --json
want_rc open 0
want_in open err "chmod 600"
printf 'two words\n' >"$T/blank-token"
chmod 600 "$T/blank-token"
ctl blank usage --url "$URL" --token-file "$T/blank-token" --ns demo
want_rc blank 1
want_in blank err "blank or control"
ctl wrong usage --url "$URL" --token-file "$T/bad-token" --ns demo
want_rc wrong 1
want_in wrong err "HTTP 401"
ctl forbidden usage --url "$URL" --token-file "$T/token" --ns other
want_rc forbidden 1
want_in forbidden err "HTTP 403"

# ---- the URL --------------------------------------------------------------
ctl port0 stats -c "$CONF"
want_rc port0 1
want_in port0 err "port 0"
want_in port0 err "--url"
TALLY_HTTP_LISTEN=127.0.0.1:$PORT ctl envurl stats -c "$CONF" --json
want_rc envurl 0
want_in envurl out '"events_committed":1001'
TALLY_HTTP_LISTEN=0.0.0.0:$PORT ctl wildcard stats -c "$CONF" --json
want_rc wildcard 0
ctl nodaemon stats --url http://127.0.0.1:1
want_rc nodaemon 1
want_in nodaemon err "cannot reach"
ctl badscheme stats --url ftp://127.0.0.1:1
want_rc badscheme 1
want_in badscheme err "http://"

# the stats table: counts with separators, bytes in binary units, uptime
ctl stats stats --url "$URL"
want_rc stats 0
grep -Eq '^events committed +1,001$' "$T/stats.out" || fail "stats table: $(cat "$T/stats.out")"
grep -Eq '^store bytes used +[0-9.]+ (B|KiB|MiB|GiB)$' "$T/stats.out" ||
    fail "stats bytes: $(cat "$T/stats.out")"
grep -Eq '^uptime +[0-9.,]+ (s|min|h)$' "$T/stats.out" || fail "stats uptime: $(cat "$T/stats.out")"

# ---- times as a person types them ------------------------------------------
MONTH=$(date -u +%Y-%m)
DAY=$(date -u +%Y-%m-%d)
for t in today -24h -30m "$MONTH" "$DAY"; do
    ctl "from$t" usage --url "$URL" --token-file "$T/token" --ns demo --from "$t" --json
    want_rc "from$t" 0
    want_in "from$t" out '"quantity":3000'
done
# a month or a day given to --to includes all of it
ctl tomonth usage --url "$URL" --token-file "$T/token" --ns demo --from "$MONTH" --to "$MONTH" --json
want_rc tomonth 0
want_in tomonth out '"quantity":3000'
ctl today usage --url "$URL" --token-file "$T/token" --ns demo --from today --to today --json
want_rc today 0
want_in today out '"quantity":3000'
# --to yesterday ends at 00:00 today: nothing emitted today is in it
ctl toyday usage --url "$URL" --token-file "$T/token" --ns demo --from -7d --to yesterday --json
want_rc toyday 0
grep -q '"quantity":3000' "$T/toyday.out" && fail "--to yesterday counted today: $(cat "$T/toyday.out")"
# the window sent is the one asked for: from = today 00:00
want_in today out "\"start_timestamp\":\"${DAY}T00:00:00Z\""

# dump: the same words bound the hour a rollup starts in
ctl dumptoday dump -c "$CONF" --ns demo --from today --json
want_rc dumptoday 0
want_in dumptoday out '"sum":3000'
ctl dumpyday dump -c "$CONF" --ns demo --to yesterday --json
want_rc dumpyday 0
[ "$(cat "$T/dumpyday.out")" = "[]" ] || fail "dump --to yesterday: $(cat "$T/dumpyday.out")"
ctl dumptable dump -c "$CONF" --ns demo
want_rc dumptable 0
want_in dumptable out "3,000"
want_in dumptable out "1.50 MiB"
want_in dumptable out "object=lb-1"

# emit --ts -2h lands two hours back (either side of an hour boundary)
H1=$(date -u -d '2 hours ago' +%Y-%m-%dT%H:00:00Z)
ctl past emit --endpoint "$INGEST" --producer ctl-c --ns past --metric http_requests --value 5 \
    --ts -2h --timeout 30
want_rc past 0
H2=$(date -u -d '2 hours ago' +%Y-%m-%dT%H:00:00Z)
ctl dumppast dump -c "$CONF" --ns past --json
grep -qF "\"start\":\"$H1\"" "$T/dumppast.out" || grep -qF "\"start\":\"$H2\"" "$T/dumppast.out" ||
    fail "emit --ts -2h: want hour $H1, dump says $(cat "$T/dumppast.out")"

# a bad time is a usage error naming the value
ctl badfrom usage --url "$URL" --token-file "$T/token" --ns demo --from "next tuesday"
want_rc badfrom 2
want_in badfrom err "'next tuesday' is not a time"
ctl badto dump -c "$CONF" --to 2026-13
want_rc badto 2
want_in badto err "--to: '2026-13'"
ctl badts emit --endpoint "$INGEST" --ns demo --metric x --value 1 --ts -24
want_rc badts 2
want_in badts err "'-24'"

# ---- usage errors ---------------------------------------------------------
ctl unknown frobnicate
want_rc unknown 2
want_in unknown err "unknown command 'frobnicate'"
ctl badopt usage --frobnicate
want_rc badopt 2
want_in badopt err "unknown option '--frobnicate'"
ctl nons usage --url "$URL" --token-file "$T/token"
want_rc nons 2
want_in nons err "--ns is required"
ctl badns usage --url "$URL" --token-file "$T/token" --ns ../etc
want_rc badns 2
ctl novalue emit --endpoint "$INGEST" --ns demo --metric x --value
want_rc novalue 2
want_in novalue err "needs a value"
ctl badcount emit --endpoint "$INGEST" --ns demo --metric x --value 1 --count many
want_rc badcount 2
want_in badcount err "--count"
ctl extra stats --url "$URL" surplus
want_rc extra 2
want_in extra err "unexpected argument 'surplus'"
# a unique prefix of an option works, as it did with getopt_long
ctl prefix usage --url "$URL" --token-f "$T/token" --ns demo --js
want_rc prefix 0
want_in prefix out '"usage_items"'

# ---- help -----------------------------------------------------------------
ctl help --help
want_rc help 0
for c in emit keygen dump backup restore compact usage stats watch plan invoice; do
    want_in help out "  $c "
    ctl "help-$c" "$c" --help
    want_rc "help-$c" 0
    want_in "help-$c" out "usage: tallyctl $c"
    want_in "help-$c" out "--help"
    awk 'length($0) > 80 { bad = 1 } END { exit bad }' "$T/help-$c.out" ||
        fail "$c --help has lines over 80 columns"
done
want_in help-usage out "--token-file FILE"
tr -s ' \n' '  ' <"$T/help-usage.out" | grep -q "ps and the shell history show it" ||
    fail "usage --help does not say that ps shows --token"

# ---- backup: a progress line on a terminal only ---------------------------
ctl bak backup -c "$CONF" --out "$T/bak"
want_rc bak 0
want_in bak out "backup written to $T/bak"
[ ! -s "$T/bak.err" ] || fail "backup printed progress without a terminal: $(cat "$T/bak.err")"
if command -v script >/dev/null 2>&1; then
    # script(1) gives tallyctl a terminal on stdin, stdout and stderr
    script -qec "'$TALLYCTL' backup -c '$CONF' --out '$T/bak-tty'" /dev/null >"$T/baktty.out" 2>&1 ||
        fail "backup on a terminal failed: $(cat "$T/baktty.out")"
    grep -q "tallyctl backup: copied" "$T/baktty.out" ||
        fail "no progress line on a terminal: $(cat "$T/baktty.out")"
    say "backup on a terminal: $(tr '\r' '\n' <"$T/baktty.out" | grep copied | head -n 1)"
fi

stop_tallyd
[ "$TALLYD_STATUS" = 0 ] || fail "tallyd exited $TALLYD_STATUS"
e2e_pass
