# scripts/lib.sh - shared by scripts/run and scripts/test (source it).
# Installs what is missing (Debian packages when root, npm packages from the
# committed lockfile) and builds with CMake. Every step says what it does.

HERALD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Build and runtime dependencies, as Debian 12 names them.
HERALD_DEBS=(build-essential cmake pkg-config libevent-dev libhiredis-dev libsqlite3-dev
             libjwt-dev libjson-c-dev libbsd-dev libssl-dev redis-server redis-tools curl)

step() { printf '\n==> %s\n' "$*"; }

# herald_install_debs PKG...: installs the packages that are not installed.
herald_install_debs() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    step "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

herald_install_node() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        herald_install_debs nodejs npm
    fi
    local stamp="$HERALD_ROOT/node_modules/.herald-lock"
    if [ ! -f "$stamp" ] || ! cmp -s "$HERALD_ROOT/package-lock.json" "$stamp"; then
        step "installing npm packages from package-lock.json"
        (cd "$HERALD_ROOT" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$HERALD_ROOT/package-lock.json" "$stamp"
    fi
}

# herald_build DIR [cmake options...]: configures (once) and builds.
herald_build() {
    local dir=$1
    shift
    step "building in $dir ($*)"
    cmake -S "$HERALD_ROOT" -B "$HERALD_ROOT/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    cmake --build "$HERALD_ROOT/$dir" -j "$(nproc)" -- --no-print-directory 2>&1 | grep -vE '^\[ *[0-9]+%\]' || true
    test "${PIPESTATUS[0]}" -eq 0
}

# free_port: prints a TCP port nobody listens on now.
free_port() {
    python3 - <<'PY' 2>/dev/null || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}
