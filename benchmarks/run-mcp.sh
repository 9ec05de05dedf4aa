#!/usr/bin/env bash
# MCP tools/call echo: tollgate vs the official TypeScript and Python SDK servers, same load
# generator (wrk, 2 threads, 16 connections), same request, same run. Also records tollgate's
# readiness time and idle/loaded RSS.
#
#   bash benchmarks/run-mcp.sh            # DURATION=15 seconds per server by default
#   SKIP_BUILD=1 DURATION=20 bash benchmarks/run-mcp.sh
#
# Needs: wrk (apt-get install -y wrk), python3, npm; Node 22 comes from .ci/install-node.sh and
# the Python SDK goes into a venv under /tmp. Loopback only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DURATION="${DURATION:-15}"
WARMUP="${WARMUP:-3}"
THREADS="${THREADS:-2}"
CONNECTIONS="${CONNECTIONS:-16}"
BASE_PORT="${BASE_PORT:-18000}"
VENV="${VENV:-/tmp/tollgate-bench-venv}"
KEY="bench-key"
BODY="$BENCH_DIR/bodies/mcp-echo.json"
EXPECT='"message":"benchmark echo"'
# The same headers to every server: a 2025-11-25 stateless call with no initialize, which all
# three accept (the TypeScript SDK refuses 2026-07-28). The peers ignore the key.
HEADERS=(
    "Accept: application/json, text/event-stream"
    "Mcp-Protocol-Version: 2025-11-25"
    "Ocp-Apim-Subscription-Key: $KEY"
)

command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
build_release

# --- peers' runtimes -----------------------------------------------------------------------
NODE_BIN="$(bash "$REPO_DIR/.ci/install-node.sh" | tail -n1)"
export PATH="$NODE_BIN:$PATH"
if [[ ! -d "$BENCH_DIR/peers/ts/node_modules/@modelcontextprotocol/sdk" ]]; then
    log "npm install (peers/ts)"
    (cd "$BENCH_DIR/peers/ts" && npm install --no-audit --no-fund) >&2
fi
if [[ ! -x "$VENV/bin/python" ]]; then
    log "python venv at $VENV"
    python3 -m venv "$VENV"
fi
"$VENV/bin/pip" install -q -r "$BENCH_DIR/peers/python/requirements.txt" >&2

# --- servers -------------------------------------------------------------------------------
TG_PORT="$BASE_PORT"
TS_PORT="$((BASE_PORT + 1))"
PY_PORT="$((BASE_PORT + 2))"

start tollgate "http://127.0.0.1:$TG_PORT/health" -- \
    env RUST_LOG=warn PORT="$TG_PORT" SUBSCRIPTION_KEYS="bench=$KEY" MCP_RATE_LIMIT=1000000/1 \
    INSTANCE_ID=bench-tollgate "$TOLLGATE"
TG_PID="$START_PID"
TG_READY_MS="$START_READY_MS"
sleep 1
TG_IDLE_KB="$(rss_kb "$TG_PID")"

start peer-ts "http://127.0.0.1:$TS_PORT/health" -- \
    env PORT="$TS_PORT" INSTANCE_ID=bench-ts node "$BENCH_DIR/peers/ts/server.mjs"
TS_PID="$START_PID"
start peer-python "http://127.0.0.1:$PY_PORT/health" -- \
    env PORT="$PY_PORT" INSTANCE_ID=bench-python "$VENV/bin/python" "$BENCH_DIR/peers/python/server.py"
PY_PID="$START_PID"

# --- runs ----------------------------------------------------------------------------------
declare -A RPS P50 P99 MAXL PID_OF CPU_PER_REQ
PID_OF=([tollgate]="$TG_PID" [ts]="$TS_PID" [python]="$PY_PID")
TG_LOADED_KB=0
for name in tollgate ts python; do
    case "$name" in
        tollgate) port="$TG_PORT" ;;
        ts) port="$TS_PORT" ;;
        python) port="$PY_PORT" ;;
    esac
    url="http://127.0.0.1:$port/mcp"
    verify_wrk "$name" "$url" "$BODY" "$EXPECT" "${HEADERS[@]}"
    run_wrk "$THREADS" "$CONNECTIONS" "$WARMUP" "$url" "$BODY" "$EXPECT" "${HEADERS[@]}" >/dev/null
    if [[ "$name" == tollgate ]]; then
        # Sample tollgate's RSS halfway through its measured run.
        (sleep "$((DURATION / 2))"; rss_kb "$TG_PID" >"$LOG_DIR/tollgate-loaded-rss") &
    fi
    log "$name: measuring ${DURATION}s at $CONNECTIONS connections, $THREADS threads"
    ticks_before="$(cpu_ticks "${PID_OF[$name]}")"
    line="$(run_wrk "$THREADS" "$CONNECTIONS" "$DURATION" "$url" "$BODY" "$EXPECT" "${HEADERS[@]}")"
    ticks_after="$(cpu_ticks "${PID_OF[$name]}")"
    log "$name: $line"
    # Server CPU time per request, in microseconds: independent of how the two cores were
    # shared between the server and wrk.
    CPU_PER_REQ[$name]="$(awk -v t="$((ticks_after - ticks_before))" -v hz="$CLK_TCK" \
        -v n="$(wrk_result requests "$line")" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    [[ "$(wrk_result non2xx "$line")" == 0 ]] || die "$name: non-2xx answers during the run: $line"
    RPS[$name]="$(wrk_result rps "$line")"
    P50[$name]="$(wrk_result p50_us "$line")"
    P99[$name]="$(wrk_result p99_us "$line")"
    MAXL[$name]="$(wrk_result max_us "$line")"
    if [[ "$name" == tollgate ]]; then
        wait
        TG_LOADED_KB="$(cat "$LOG_DIR/tollgate-loaded-rss")"
        TG_PEAK_KB="$(rss_kb "$TG_PID" VmHWM)"
    fi
done

# --- report --------------------------------------------------------------------------------
printf '\nMCP tools/call echo, wrk -t%s -c%s -d%ss, %s\n\n' "$THREADS" "$CONNECTIONS" "$DURATION" "$(machine)"
printf '| server | req/s | p50 ms | p99 ms | max ms | server CPU µs/request | tollgate throughput ratio | tollgate CPU-efficiency ratio |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for name in tollgate ts python; do
    case "$name" in
        tollgate) label="tollgate (auth, rate limiter, metrics on)" ;;
        ts) label="TypeScript SDK @modelcontextprotocol/sdk 1.32.2 (node $(node --version))" ;;
        python) label="Python SDK mcp 2.3.0 (uvicorn, $("$VENV/bin/python" --version 2>&1))" ;;
    esac
    printf '| %s | %s | %s | %s | %s | %s | %s× | %s× |\n' "$label" "${RPS[$name]}" \
        "$(us_to_ms "${P50[$name]}")" "$(us_to_ms "${P99[$name]}")" "$(us_to_ms "${MAXL[$name]}")" \
        "${CPU_PER_REQ[$name]}" "$(ratio "${RPS[tollgate]}" "${RPS[$name]}")" \
        "$(ratio "${CPU_PER_REQ[$name]}" "${CPU_PER_REQ[tollgate]}")"
done
printf '\ntollgate: ready in %s ms (start to first 200 from /health); RSS idle %s MB, loaded %s MB (peak %s MB)\n' \
    "$TG_READY_MS" "$(awk -v k="$TG_IDLE_KB" 'BEGIN{printf "%.1f", k/1024}')" \
    "$(awk -v k="$TG_LOADED_KB" 'BEGIN{printf "%.1f", k/1024}')" \
    "$(awk -v k="$TG_PEAK_KB" 'BEGIN{printf "%.1f", k/1024}')"
