#!/bin/sh
# test_install.sh - `cmake --install` lays out tally as documented, and a tiny emitter built with `pkg-config tally` against the installed libtally feeds the installed tallyd.
#
# Installs the build directory this test belongs to ($TALLY_BIN_DIR/..) with
# --prefix $T/prefix, staged with DESTDIR=$T/destdir: paths outside the
# prefix (an absolute TALLY_SYSTEMD_UNITDIR, /etc/tally for a /usr build)
# then land in the stage too, never on the real system. pkg-config reads the
# stage through PKG_CONFIG_SYSROOT_DIR, as when cross-building.
# shellcheck disable=SC2015,SC2034,SC2046,SC2086 # A && B || fail; TALLYCTL is read by lib.sh; $(pkg-config) splits on purpose
set -eu
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "$TALLY_BIN_DIR/.." && pwd)
e2e_setup
command -v pkg-config >/dev/null 2>&1 || fail "pkg-config not installed (Debian package: pkg-config)"
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || fail "no C compiler '$CC'"

# ---- install ------------------------------------------------------------------
PREFIX=$T/prefix
unitdir=$(sed -n 's/^TALLY_SYSTEMD_UNITDIR:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
[ -n "$unitdir" ] || fail "TALLY_SYSTEMD_UNITDIR is not in $BUILD/CMakeCache.txt (cmake/install.cmake not included?)"
DEST=$T/destdir
rc=0
DESTDIR=$DEST cmake --install "$BUILD" --prefix "$PREFIX" >"$T/install.log" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "cmake --install exited $rc: $(tail -n 20 "$T/install.log")"
R=$DEST$PREFIX
case $unitdir in
/*) UNIT=$DEST$unitdir/tallyd.service ;;
*) UNIT=$R/$unitdir/tallyd.service ;;
esac
say "installed into $R ($(grep -c 'Installing:' "$T/install.log") files; unit dir $unitdir)"

# ---- layout ------------------------------------------------------------------
LIBDIR=$(dirname "$(find "$R" -name 'libtally.so' | head -n 1)")
[ -n "$LIBDIR" ] && [ "$LIBDIR" != . ] || fail "no libtally.so under $R: $(cd "$R" && find . -type f | sort)"
for x in sbin/tallyd bin/tallyctl bin/tally-bench-ingest bin/tally-bench-flush; do
    [ -f "$R/$x" ] && [ -x "$R/$x" ] || fail "no executable $x under the prefix"
done
[ ! -e "$R/bin/tallyd" ] || fail "tallyd belongs in sbin, not bin"
ETC=$(find "$DEST" -path '*/etc*/tally/tallyd.conf' | head -n 1)
[ -n "$ETC" ] || fail "no etc/tally/tallyd.conf installed: $(cd "$DEST" && find . -type f | sort)"
ETC=${ETC%/tallyd.conf}
case $ETC in
"$R/etc/tally" | "$DEST/etc/tally" | "$DEST/etc/opt/"*) ;;
*) fail "the configuration went to ${ETC#"$DEST"}, want PREFIX/etc/tally (or /etc/tally for /usr)" ;;
esac
for f in "$LIBDIR/libtally.a" "$LIBDIR/pkgconfig/tally.pc" "$R/include/tally/tally.h" \
    "$ETC/tallyd.conf" "$ETC/metrics.ini" "$ETC/plans.ini" \
    "$ETC/tokens" "$R/share/man/man8/tallyd.8" "$R/share/man/man1/tallyctl.1" \
    "$R/share/man/man5/tally.conf.5" "$UNIT"; do
    [ -f "$f" ] || fail "missing ${f#"$R"/}"
done
soname=$(find "$LIBDIR" -name "libtally.so.[0-9]*" | sort | head -n 1)
[ -n "$soname" ] || fail "no versioned libtally.so.N in $LIBDIR"
say "layout: sbin/tallyd, bin/tallyctl + bench tools, ${LIBDIR#"$R"/}/libtally.{so,a}, tally.pc, headers, etc/tally, man 1/5/8, unit"

# installed programs must not look for libraries in the build tree
for x in "$R/sbin/tallyd" "$R/bin/tallyctl" "$soname"; do
    if readelf -d "$x" 2>/dev/null | grep -E 'R(UN)?PATH' | grep -q "$BUILD"; then
        fail "${x#"$R"/} keeps an RPATH into the build directory"
    fi
done
# the shared library exports the public API only
if command -v nm >/dev/null 2>&1; then
    extra=$(nm -D --defined-only "$soname" | awk '$2 ~ /^[TDBRVW]$/ { print $3 }' |
        grep -v '^tally_' | grep -Ev '^(_init|_fini|_edata|_end|__bss_start)$' || true)
    [ -z "$extra" ] || fail "libtally.so exports non-API symbols: $(echo $extra | head -c 400)"
    nm -D --defined-only "$soname" | grep -q ' T tally_client_create$' ||
        fail "libtally.so does not export tally_client_create"
    say "libtally.so exports only tally_* symbols"
fi

# the unit names the installed paths
grep -q "^ExecStart=$PREFIX/sbin/tallyd --config ${ETC#"$DEST"}/tallyd.conf\$" "$UNIT" ||
    fail "the installed unit's ExecStart is not for this prefix: $(grep '^ExecStart' "$UNIT")"
# so does tally.pc
grep -q "^prefix=$PREFIX\$" "$LIBDIR/pkgconfig/tally.pc" ||
    fail "tally.pc's prefix is not $PREFIX: $(grep '^prefix' "$LIBDIR/pkgconfig/tally.pc")"
# man pages are well-formed roff
if command -v groff >/dev/null 2>&1; then
    for m in man8/tallyd.8 man1/tallyctl.1 man5/tally.conf.5; do
        out=$(groff -man -ww -z "$R/share/man/$m" 2>&1) || fail "groff failed on $m: $out"
        [ -z "$out" ] || fail "groff warns about $m: $out"
    done
    say "man pages render without warnings"
fi

# ---- the installed configuration is valid as shipped --------------------------
TALLYD=$R/sbin/tallyd
TALLYCTL=$R/bin/tallyctl # used by dump_totals (lib.sh)
CONF=$ETC/tallyd.conf
unset TALLY_BILLING_METRICS_FILE # the installed catalogs, not the source tree's
out=$("$TALLYD" --check-config -c "$CONF" 2>&1) || fail "installed tallyd rejects the installed config: $out"
say "installed tallyd --check-config: $out"

# ---- build the emitter with pkg-config against the installed library ----------
export PKG_CONFIG_PATH="$LIBDIR/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$DEST"
flags=$(pkg-config --cflags --libs tally) || fail "pkg-config --cflags --libs tally failed"
# a sanitizer build installs instrumented libraries: link the emitter with
# the same runtime
SAN=$(sed -n 's/^TALLY_SANITIZE:[A-Z]*=//p' "$TALLY_BIN_DIR/../CMakeCache.txt" 2>/dev/null | tr ';' ',')
case $SAN in OFF | off | 0 | FALSE | NO) SAN= ;; esac
if [ -n "$SAN" ]; then
    flags="$flags -fsanitize=$SAN"
    say "sanitizer build: linking the emitter with -fsanitize=$SAN"
fi
say "pkg-config --cflags --libs tally: $flags"
EMITTER_SRC=$TALLY_SOURCE_DIR/tests/e2e/emitter.c
$CC -std=c11 -Wall -Wextra -Werror -o "$T/emitter" "$EMITTER_SRC" $flags \
    -Wl,-rpath,"$LIBDIR" >"$T/cc.log" 2>&1 || fail "cc against the installed libtally failed: $(cat "$T/cc.log")"
ldd "$T/emitter" | grep -q "$LIBDIR/libtally.so" ||
    fail "the emitter does not load the installed libtally.so: $(ldd "$T/emitter")"
# a static link of the same program needs tally.pc's private requirements
sflags=$(pkg-config --static --cflags --libs tally | sed 's/-ltally\b/-l:libtally.a/') ||
    fail "pkg-config --static --libs tally failed"
[ -z "$SAN" ] || sflags="$sflags -fsanitize=$SAN"
$CC -std=c11 -o "$T/emitter-static" "$EMITTER_SRC" $sflags >"$T/cc-static.log" 2>&1 ||
    fail "static link with pkg-config --static failed: $(cat "$T/cc-static.log")"
! ldd "$T/emitter-static" | grep -q libtally.so || fail "emitter-static still loads libtally.so"
say "emitter built shared (pkg-config) and static (pkg-config --static)"

# ---- run the installed tallyd and feed it -------------------------------------
start_tallyd "$T/tallyd.log"
out=$("$T/emitter" "$INGEST" demo http_requests 500 2>&1) || fail "emitter (shared) failed: $out"
printf '%s\n' "$out" | grep -q '^acked 500 ' || fail "emitter (shared) printed '$out', want 'acked 500 ...'"
say "shared emitter: $out"
out=$("$T/emitter-static" "$INGEST" demo http_requests 250 2>&1) || fail "emitter (static) failed: $out"
printf '%s\n' "$out" | grep -q '^acked 250 ' || fail "emitter (static) printed '$out', want 'acked 250 ...'"
say "static emitter: $out"
totals=$(dump_totals --ns demo) || fail "tallyctl dump failed"
printf '%s\n' "$totals" | grep -q '^demo http_requests 750 750 ' ||
    fail "the installed tallyd did not count 750 events of demo/http_requests: $totals"
say "installed tallyctl dump: $totals"
stop_tallyd 30
[ "$TALLYD_STATUS" -eq 0 ] || fail "installed tallyd exited $TALLYD_STATUS after SIGTERM"
e2e_pass
