#!/bin/sh
# lint.sh — static analysis of tally's own C code (lib/, daemon/): cppcheck and clang-tidy (.clang-tidy); exits non-zero on any finding.
#
# Usage: tests/lint.sh [lib/X.c daemon/Y.c...]   (paths relative to the checkout; default: every .c under lib/ and daemon/)
#
# Configures build-lint (BUILD_DIR) with CMAKE_EXPORT_COMPILE_COMMANDS=ON and
# keeps only the compile commands of lib/ and daemon/ sources (tests, benches
# and generated files are not linted). cppcheck gets a small library file for
# jansson's iteration macros (otherwise it stops at json_object_foreach with
# unknownMacro) and ignores findings in system headers, and readdirCalled (its
# advice, readdir_r, is deprecated by POSIX 2008/glibc; readdir is thread-safe
# per directory stream). Silence a reviewed
# false positive in place: `// cppcheck-suppress ID` or `// NOLINT(check)`
# with a reason.
# Environment: BUILD_DIR (default build-lint), JOBS (default: nproc).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$SRC/build-lint}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}

say() { printf 'lint.sh: %s\n' "$*" >&2; }

. "$SRC/tests/pkgs.sh"
need_pkgs lint.sh cppcheck clang-tidy

start=$(date +%s)
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    >/dev/null
DB=$BUILD/lint
mkdir -p "$DB"
python3 - "$BUILD/compile_commands.json" "$DB/compile_commands.json" "$SRC" <<'EOF'
import json, os, re, sys
src = os.path.realpath(sys.argv[3])
pat = re.compile(re.escape(src) + r"/(lib|daemon)/([^/]+/)?[^/]+\.c$")
db = [e for e in json.load(open(sys.argv[1]))
      if pat.match(os.path.realpath(os.path.join(e["directory"], e["file"])))]
json.dump(db, open(sys.argv[2], "w"), indent=1)
EOF

cat >"$DB/jansson.cfg" <<'EOF'
<?xml version="1.0"?>
<def format="2">
  <define name="json_object_foreach(object, key, value)" value="for (key = json_object_iter_key(json_object_iter(object)); key &amp;&amp; (value = json_object_iter_value(json_object_key_to_iter(key))); key = json_object_iter_key(json_object_iter_next(object, json_object_key_to_iter(key))))"/>
  <define name="json_object_foreach_safe(object, n, key, value)" value="for (key = json_object_iter_key(json_object_iter(object)), n = json_object_iter_next(object, json_object_key_to_iter(key)); key &amp;&amp; (value = json_object_iter_value(json_object_key_to_iter(key))); key = json_object_iter_key(n), n = json_object_iter_next(object, json_object_key_to_iter(key)))"/>
  <define name="json_array_foreach(array, index, value)" value="for (index = 0; index &lt; json_array_size(array) &amp;&amp; (value = json_array_get(array, index)); index++)"/>
</def>
EOF

if [ $# -gt 0 ]; then
    FILES=$*
else
    FILES=$(cd "$SRC" && ls lib/*/*.c daemon/*.c daemon/*/*.c 2>/dev/null)
fi

status=0

say "cppcheck"
if [ $# -gt 0 ]; then
    set --
    # cppcheck matches filters against the absolute paths of the compile database
    for f in $FILES; do
        case $f in /*) ;; *) f=$(cd "$SRC" && realpath "$f") ;; esac
        set -- "$@" "--file-filter=$f"
    done
fi
(cd "$SRC" && cppcheck --enable=warning,performance,portability --inline-suppr \
    --error-exitcode=1 --quiet -j "$JOBS" --library=posix --library="$DB/jansson.cfg" \
    --suppress='*:/usr/include/*' --suppress=readdirCalled --project="$DB/compile_commands.json" "$@") ||
    { status=1; say "cppcheck: findings above"; }

say "clang-tidy ($(echo "$FILES" | wc -w) files)"
OUT=$BUILD/clang-tidy.out
(cd "$SRC" && printf '%s\n' $FILES | xargs -P "$JOBS" -n 1 clang-tidy -p "$DB" --quiet \
    2>/dev/null) >"$OUT" || true
if grep -Eq '(warning|error):' "$OUT"; then
    status=1
    cat "$OUT"
    say "clang-tidy: $(grep -Ec '(warning|error):' "$OUT") findings:"
    grep -E '(warning|error):' "$OUT" | sort -u >&2
fi

end=$(date +%s)
if [ "$status" -eq 0 ]; then
    say "no findings ($((end - start)) s)"
else
    say "FAILED ($((end - start)) s)"
fi
exit "$status"
