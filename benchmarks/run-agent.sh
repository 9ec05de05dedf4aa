#!/usr/bin/env bash
# Agent turn overhead: tollgate's /agent/chat against the mock model (`--latency-ms 0`), with
# tools in-process and over MCP (TOOL_ROUTING=mcp, through tollgate's own /mcp), compared with
# the mock's own time for the same model calls.
#
#   bash benchmarks/run-agent.sh            # DURATION=10 seconds per run by default
#   SKIP_BUILD=1 bash benchmarks/run-agent.sh
#
# The semantic cache is off, so every turn makes the same two model calls (tool calls, then the
# answer). Those two requests are first recorded through a small proxy and then replayed
# directly against the mock, so "model time" is measured on exactly what the agent sends.
# Overhead per turn = turn p50 - (call 1 p50 + call 2 p50), at one connection.
# MCP cost per tool call = (turn p50 over MCP - turn p50 in-process) / tool calls per turn.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
BASE_PORT="${BASE_PORT:-18200}"
KEY="bench-key"
BODY="$BENCH_DIR/bodies/agent-chat.json"
HEADERS=("Ocp-Apim-Subscription-Key: $KEY")

command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
build_release

MOCK_PORT="$BASE_PORT"
PROXY_PORT="$((BASE_PORT + 1))"
INPROC_PORT="$((BASE_PORT + 2))"
MCP_PORT="$((BASE_PORT + 3))"
CAPTURE_PORT="$((BASE_PORT + 4))"

start mock "http://127.0.0.1:$MOCK_PORT/v1/models" -- \
    env RUST_LOG=warn "$LOADTEST" mock-upstream --port "$MOCK_PORT" --latency-ms 0
common_env=(env RUST_LOG=warn SUBSCRIPTION_KEYS="bench=$KEY" TOKENS_PER_MINUTE=1000000000000
    SEMANTIC_CACHE=off MCP_RATE_LIMIT=1000000/1)

# 1. Record the model calls of one turn.
CALLS="$LOG_DIR/agent-calls"
rm -rf "$CALLS"
start capture-proxy "http://127.0.0.1:$PROXY_PORT/" -- \
    python3 "$BENCH_DIR/lib/capture_proxy.py" "$PROXY_PORT" "http://127.0.0.1:$MOCK_PORT/v1" "$CALLS"
PROXY_PID="$START_PID"
start tollgate-capture "http://127.0.0.1:$CAPTURE_PORT/health" -- \
    "${common_env[@]}" PORT="$CAPTURE_PORT" OPENAI_BASE_URL="http://127.0.0.1:$PROXY_PORT/v1" "$TOLLGATE"
CAPTURE_PID="$START_PID"
TURN="$(curl -s -X POST "http://127.0.0.1:$CAPTURE_PORT/agent/chat" -H 'content-type: application/json' \
    -H "Ocp-Apim-Subscription-Key: $KEY" --data-binary "@$BODY")"
stop "$CAPTURE_PID"
stop "$PROXY_PID"
TOOL_CALLS="$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)["tool_calls"]))' <<<"$TURN")"
MODEL_CALLS="$(find "$CALLS" -name 'call-*.json' | wc -l)"
log "one turn: $MODEL_CALLS model calls, $TOOL_CALLS tool calls: $(head -c 300 <<<"$TURN")"
[[ "$MODEL_CALLS" -ge 1 && "$TOOL_CALLS" -ge 1 ]] || die "the recorded turn made no tool call"

# 2. The two routings.
start tollgate-in-process "http://127.0.0.1:$INPROC_PORT/health" -- \
    "${common_env[@]}" PORT="$INPROC_PORT" OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
    TOOL_ROUTING=in-process "$TOLLGATE"
start tollgate-mcp "http://127.0.0.1:$MCP_PORT/health" -- \
    "${common_env[@]}" PORT="$MCP_PORT" OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
    TOOL_ROUTING=mcp "$TOLLGATE"

declare -A P50 P99 RPS
measure() { # NAME URL BODY EXPECT
    local name="$1" url="$2" body="$3" expect="$4" line
    verify_wrk "$name" "$url" "$body" "$expect" "${HEADERS[@]}"
    run_wrk 1 1 "$WARMUP" "$url" "$body" "$expect" "${HEADERS[@]}" >/dev/null
    line="$(run_wrk 1 1 "$DURATION" "$url" "$body" "$expect" "${HEADERS[@]}")"
    log "$name c1: $line"
    [[ "$(wrk_result non2xx "$line")" == 0 ]] || die "$name: non-2xx answers: $line"
    P50[$name]="$(wrk_result p50_us "$line")"
    P99[$name]="$(wrk_result p99_us "$line")"
    line="$(run_wrk 2 16 "$DURATION" "$url" "$body" "$expect" "${HEADERS[@]}")"
    log "$name c16: $line"
    RPS[$name]="$(wrk_result rps "$line")"
}

MODEL_P50=0
for call in $(seq "$MODEL_CALLS"); do
    measure "model-call-$call" "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" \
        "$CALLS/call-$call.json" '"chat.completion"'
    MODEL_P50=$((MODEL_P50 + P50[model-call-$call]))
done
measure in-process "http://127.0.0.1:$INPROC_PORT/agent/chat" "$BODY" '"routed_via":"in-process"'
measure mcp "http://127.0.0.1:$MCP_PORT/agent/chat" "$BODY" '"routed_via":"mcp"'

printf '\nAgent turn overhead (%s model calls and %s tool calls per turn, cache off), wrk %ss per run, %s\n\n' \
    "$MODEL_CALLS" "$TOOL_CALLS" "$DURATION" "$(machine)"
printf '| what | p50 ms (1 conn) | p99 ms (1 conn) | req/s (16 conn) |\n|---|---:|---:|---:|\n'
for call in $(seq "$MODEL_CALLS"); do
    printf '| mock direct, model call %s | %s | %s | %s |\n' "$call" "$(us_to_ms "${P50[model-call-$call]}")" \
        "$(us_to_ms "${P99[model-call-$call]}")" "${RPS[model-call-$call]}"
done
printf '| agent turn, tools in-process | %s | %s | %s |\n' "$(us_to_ms "${P50[in-process]}")" "$(us_to_ms "${P99[in-process]}")" "${RPS[in-process]}"
printf '| agent turn, tools over MCP | %s | %s | %s |\n' "$(us_to_ms "${P50[mcp]}")" "$(us_to_ms "${P99[mcp]}")" "${RPS[mcp]}"
printf '\noverhead per turn beyond the model calls (p50): in-process %s µs, MCP %s µs\n' \
    "$((P50[in-process] - MODEL_P50))" "$((P50[mcp] - MODEL_P50))"
printf 'MCP routing cost per tool call (p50): %s µs\n' \
    "$(awk -v a="${P50[mcp]}" -v b="${P50[in-process]}" -v n="$TOOL_CALLS" 'BEGIN { printf "%.0f", (a - b) / n }')"
