# tests/pkgs.sh — sourced by dev.sh and the suite scripts: install the Debian packages a step
# needs when they are missing.
#
#   need_pkgs WHO PKG...   WHO names the caller in messages. Installs what
#                          dpkg does not list as installed (apt-get, as
#                          root); without root, says what is missing and
#                          exits 1.

need_pkgs() {
    _who=$1
    shift
    _missing=""
    for _p in "$@"; do
        dpkg-query -W -f='${Status}' "$_p" 2>/dev/null | grep -q "install ok installed" ||
            _missing="$_missing $_p"
    done
    [ -n "$_missing" ] || return 0
    echo "$_who: installing:$_missing"
    if [ "$(id -u)" -ne 0 ]; then
        echo "$_who: need root to install packages (or install them yourself):$_missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || true
    # shellcheck disable=SC2086
    apt-get install -y -qq $_missing >/dev/null
}
