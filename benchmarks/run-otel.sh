#!/usr/bin/env bash
# What OpenTelemetry export and the access log cost, in one run, sides measured alternately:
#   A  a baseline tollgate (TOLLGATE_A: a build from before telemetry);
#   B  this build, export off (no OTEL_EXPORTER_OTLP_ENDPOINT), access log filtered out
#      (RUST_LOG=warn, as the other scripts run);
#   C  this build, export on with full sampling (parentbased_always_on) to a loopback OTLP
#      sink (nginx answering 200 to every POST), access log filtered out;
#   D  this build, export off, access log on (RUST_LOG=info, lines to a file).
# Loads: MCP tools/call echo (c16) and gateway chat completions over the mock (c1, c16).
#
#   TOLLGATE_A=/path/to/old/tollgate bash benchmarks/run-otel.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-3}"
BASE_PORT="${BASE_PORT:-18300}"
TOLLGATE_A="${TOLLGATE_A:?set TOLLGATE_A to the baseline tollgate binary}"
KEY="bench-key"
MCP_BODY="$BENCH_DIR/bodies/mcp-echo.json"
MCP_EXPECT='"message":"benchmark echo"'
MCP_HEADERS=(
    "Accept: application/json, text/event-stream"
    "Mcp-Protocol-Version: 2025-11-25"
    "Ocp-Apim-Subscription-Key: $KEY"
)
CHAT_BODY="$BENCH_DIR/bodies/gateway-chat.json"
CHAT_EXPECT='"chat.completion"'
CHAT_HEADERS=("Ocp-Apim-Subscription-Key: $KEY")
SIDES=(A B C D)

command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
command -v nginx >/dev/null || die "nginx is missing: apt-get install -y nginx-light"
[[ -x "$TOLLGATE_A" && -x "$TOLLGATE" && -x "$LOADTEST" ]] || die "binaries missing"

# The OTLP sink: nginx on loopback, 200 to everything, nothing kept.
SINK_PORT="$BASE_PORT"
SINK_DIR="$LOG_DIR/otlp-sink"
mkdir -p "$SINK_DIR"
cat >"$SINK_DIR/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $SINK_DIR/nginx.pid;
error_log $SINK_DIR/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $SINK_DIR/body;
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:$SINK_PORT;
        location / { return 200 ''; }
    }
}
EOF
start otlp-sink "http://127.0.0.1:$SINK_PORT/" -- nginx -c "$SINK_DIR/nginx.conf" -p "$SINK_DIR"

MOCK_PORT="$((BASE_PORT + 1))"
start mock "http://127.0.0.1:$MOCK_PORT/v1/models" -- \
    env RUST_LOG=warn "$LOADTEST" mock-upstream --port "$MOCK_PORT" --latency-ms 0
declare -A PORT=([A]="$((BASE_PORT + 2))" [B]="$((BASE_PORT + 3))" [C]="$((BASE_PORT + 4))" [D]="$((BASE_PORT + 5))")
declare -A BIN=([A]="$TOLLGATE_A" [B]="$TOLLGATE" [C]="$TOLLGATE" [D]="$TOLLGATE")
declare -A EXTRA=(
    [A]="RUST_LOG=warn"
    [B]="RUST_LOG=warn"
    [C]="RUST_LOG=warn OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$SINK_PORT OTEL_TRACES_SAMPLER=parentbased_always_on"
    [D]="RUST_LOG=info LOG_FORMAT=json"
)
for side in "${SIDES[@]}"; do
    # shellcheck disable=SC2086 # EXTRA holds several NAME=value words
    start "tollgate-$side" "http://127.0.0.1:${PORT[$side]}/health" -- \
        env ${EXTRA[$side]} PORT="${PORT[$side]}" SUBSCRIPTION_KEYS="bench=$KEY" \
        MCP_RATE_LIMIT=1000000/1 OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
        TOKENS_PER_MINUTE=1000000000000 SEMANTIC_CACHE=off "${BIN[$side]}"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure NAME URL BODY EXPECT THREADS CONNECTIONS HEADERS...: appends "rps p50_us" to $LOG_DIR/otel-NAME
measure() {
    local name="$1" url="$2" body="$3" expect="$4" threads="$5" connections="$6"
    shift 6
    run_wrk "$threads" "$connections" "$WARMUP" "$url" "$body" "$expect" "$@" >/dev/null
    local line
    line="$(run_wrk "$threads" "$connections" "$DURATION" "$url" "$body" "$expect" "$@")"
    [[ "$(wrk_result non2xx "$line")" == 0 ]] || die "$name: non-2xx answers: $line"
    echo "$(wrk_result rps "$line") $(wrk_result p50_us "$line")" >>"$LOG_DIR/otel-$name"
    log "$name: $line"
}

rm -f "$LOG_DIR"/otel-*
for side in "${SIDES[@]}"; do
    verify_wrk "mcp-$side" "http://127.0.0.1:${PORT[$side]}/mcp" "$MCP_BODY" "$MCP_EXPECT" "${MCP_HEADERS[@]}"
    verify_wrk "chat-$side" "http://127.0.0.1:${PORT[$side]}/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "${CHAT_HEADERS[@]}"
done
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for side in "${SIDES[@]}"; do
        measure "mcp-$side" "http://127.0.0.1:${PORT[$side]}/mcp" "$MCP_BODY" "$MCP_EXPECT" 2 16 "${MCP_HEADERS[@]}"
    done
    for connections in 1 16; do
        threads=$((connections == 1 ? 1 : 2))
        measure "mock-c$connections" "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "$threads" "$connections" "${CHAT_HEADERS[@]}"
        for side in "${SIDES[@]}"; do
            measure "chat-$side-c$connections" "http://127.0.0.1:${PORT[$side]}/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "$threads" "$connections" "${CHAT_HEADERS[@]}"
        done
    done
done

rps() { awk '{ print $1 }' "$LOG_DIR/otel-$1" | median; }
p50() { awk '{ print $2 }' "$LOG_DIR/otel-$1" | median; }
vs_a() { awk -v a="$(rps "$1")" -v b="$(rps "$2")" 'BEGIN { printf "%.2f", b / a }'; }
overhead() { awk -v t="$(p50 "chat-$1-c1")" -v m="$(p50 mock-c1)" 'BEGIN { print t - m }'; }
printf '\nTelemetry cost, medians of %s rounds of wrk %ss, %s\nA: %s\nB, C, D: %s\n\n' \
    "$ROUNDS" "$DURATION" "$(machine)" "$TOLLGATE_A" "$TOLLGATE"
printf '| measurement | A (before) | B (export off) | C (export on) | D (access log) | B/A | C/A | D/A |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
printf '| MCP echo req/s (c16) | %s | %s | %s | %s | %s× | %s× | %s× |\n' \
    "$(rps mcp-A)" "$(rps mcp-B)" "$(rps mcp-C)" "$(rps mcp-D)" \
    "$(vs_a mcp-A mcp-B)" "$(vs_a mcp-A mcp-C)" "$(vs_a mcp-A mcp-D)"
for connections in 1 16; do
    printf '| gateway req/s (c%s; mock direct %s) | %s | %s | %s | %s | %s× | %s× | %s× |\n' \
        "$connections" "$(rps "mock-c$connections")" \
        "$(rps "chat-A-c$connections")" "$(rps "chat-B-c$connections")" \
        "$(rps "chat-C-c$connections")" "$(rps "chat-D-c$connections")" \
        "$(vs_a "chat-A-c$connections" "chat-B-c$connections")" \
        "$(vs_a "chat-A-c$connections" "chat-C-c$connections")" \
        "$(vs_a "chat-A-c$connections" "chat-D-c$connections")"
done
minus() { awk -v b="$1" -v a="$2" 'BEGIN { printf "%+.0f", b - a }'; }
printf '| gateway overhead p50 µs (c1, minus the mock) | %s | %s | %s | %s | %s µs | %s µs | %s µs |\n' \
    "$(overhead A)" "$(overhead B)" "$(overhead C)" "$(overhead D)" \
    "$(minus "$(overhead B)" "$(overhead A)")" "$(minus "$(overhead C)" "$(overhead A)")" \
    "$(minus "$(overhead D)" "$(overhead A)")"
