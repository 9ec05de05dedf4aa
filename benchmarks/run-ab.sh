#!/usr/bin/env bash
# A/B: two tollgate binaries measured in the same run, alternately, on the same load:
#   1. MCP tools/call echo (auth, rate limiter and metrics on), wrk -t2 -c16;
#   2. gateway chat completions against the mock upstream, cache off, at 1 and 16 connections
#      (overhead = tollgate's latency minus the mock's own, measured in the same round);
#   3. the peer: nginx as a plain reverse proxy (keep-alive upstream, no policies) in front of the
#      same mock, the floor any proxy hop has on this machine.
# Each measurement runs ROUNDS times, A then B, so drift on a shared machine hits both alike;
# the table gives medians and the ratio B/A (req/s) or B-A (overhead).
#
#   TOLLGATE_A=/path/to/old/tollgate TOLLGATE_B=target/release/tollgate bash benchmarks/run-ab.sh
#   (TOLLGATE_A_ENV / TOLLGATE_B_ENV: settings for one side only, e.g. "WORKER_THREADS=1")
#
# Build the "before" binary from a worktree of the older commit:
#   git worktree add --detach /tmp/tollgate-before <commit>
#   (cd /tmp/tollgate-before && cargo build --release -p mcp-server)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DURATION="${DURATION:-8}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-3}"
BASE_PORT="${BASE_PORT:-18200}"
TOLLGATE_A="${TOLLGATE_A:?set TOLLGATE_A to the baseline tollgate binary}"
TOLLGATE_B="${TOLLGATE_B:-$TOLLGATE}"
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

command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
command -v nginx >/dev/null || die "nginx is missing: apt-get install -y nginx-light"
[[ -x "$TOLLGATE_A" && -x "$TOLLGATE_B" && -x "$LOADTEST" ]] || die "binaries missing"

MOCK_PORT="$BASE_PORT"
start mock "http://127.0.0.1:$MOCK_PORT/v1/models" -- \
    env RUST_LOG=warn "$LOADTEST" mock-upstream --port "$MOCK_PORT" --latency-ms 0
MOCK_PID="$START_PID"

# The peer: nginx proxying to the mock, one worker (tollgate's share of the 2 cores is about
# one as well), HTTP/1.1 keep-alive to the upstream as tollgate's pool keeps.
PROXY_PORT="$((BASE_PORT + 3))"
PROXY_DIR="$LOG_DIR/nginx-proxy"
mkdir -p "$PROXY_DIR"
cat >"$PROXY_DIR/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $PROXY_DIR/nginx.pid;
error_log $PROXY_DIR/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $PROXY_DIR/body;
    proxy_temp_path $PROXY_DIR/proxy;
    upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 32; }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
start nginx-proxy "http://127.0.0.1:$PROXY_PORT/v1/models" -- nginx -c "$PROXY_DIR/nginx.conf" -p "$PROXY_DIR"
# Its one worker does the proxying (the master's CPU time would not count it).
PROXY_PID="$(pgrep -P "$START_PID" | head -n 1)"
[[ -n "$PROXY_PID" ]] || die "nginx-proxy: no worker process"

declare -A PORT=([A]="$((BASE_PORT + 1))" [B]="$((BASE_PORT + 2))")
declare -A BIN=([A]="$TOLLGATE_A" [B]="$TOLLGATE_B")
# Settings for one side only, e.g. TOLLGATE_B_ENV="WORKER_THREADS=1" to compare a configuration.
declare -A SIDE_ENV=([A]="${TOLLGATE_A_ENV:-}" [B]="${TOLLGATE_B_ENV:-}")
declare -A SERVER_PID=()
for side in A B; do
    # shellcheck disable=SC2086 # the side's settings split into words on purpose
    start "tollgate-$side" "http://127.0.0.1:${PORT[$side]}/health" -- \
        env ${SIDE_ENV[$side]} RUST_LOG=warn PORT="${PORT[$side]}" SUBSCRIPTION_KEYS="bench=$KEY" \
        MCP_RATE_LIMIT=1000000/1 OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1" \
        TOKENS_PER_MINUTE=1000000000000 SEMANTIC_CACHE=off "${BIN[$side]}"
    SERVER_PID[$side]="$START_PID"
done

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# measure NAME PID URL BODY EXPECT THREADS CONNECTIONS HEADERS...: appends "rps p50_us cpu_us"
# to $LOG_DIR/ab-NAME; cpu_us is server PID's CPU time per request (which, unlike req/s, other
# work on the machine barely moves).
measure() {
    local name="$1" pid="$2" url="$3" body="$4" expect="$5" threads="$6" connections="$7"
    shift 7
    run_wrk "$threads" "$connections" "$WARMUP" "$url" "$body" "$expect" "$@" >/dev/null
    local line ticks
    ticks="$(cpu_ticks "$pid")"
    line="$(run_wrk "$threads" "$connections" "$DURATION" "$url" "$body" "$expect" "$@")"
    ticks=$(( $(cpu_ticks "$pid") - ticks ))
    [[ "$(wrk_result non2xx "$line")" == 0 ]] || die "$name: non-2xx answers: $line"
    local cpu_us
    cpu_us="$(awk -v t="$ticks" -v hz="$CLK_TCK" -v n="$(wrk_result requests "$line")" \
        'BEGIN { printf "%.1f", t * 1000000 / hz / n }')"
    echo "$(wrk_result rps "$line") $(wrk_result p50_us "$line") $cpu_us" >>"$LOG_DIR/ab-$name"
    log "$name: $line"
}

rm -f "$LOG_DIR"/ab-*
for side in A B; do
    verify_wrk "mcp-$side" "http://127.0.0.1:${PORT[$side]}/mcp" "$MCP_BODY" "$MCP_EXPECT" "${MCP_HEADERS[@]}"
    verify_wrk "chat-$side" "http://127.0.0.1:${PORT[$side]}/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "${CHAT_HEADERS[@]}"
done
for round in $(seq 1 "$ROUNDS"); do
    log "round $round of $ROUNDS"
    for side in A B; do
        measure "mcp-$side" "${SERVER_PID[$side]}" "http://127.0.0.1:${PORT[$side]}/mcp" "$MCP_BODY" "$MCP_EXPECT" 2 16 "${MCP_HEADERS[@]}"
    done
    for connections in 1 16; do
        threads=$((connections == 1 ? 1 : 2))
        measure "mock-c$connections" "$MOCK_PID" "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "$threads" "$connections" "${CHAT_HEADERS[@]}"
        measure "nginx-c$connections" "$PROXY_PID" "http://127.0.0.1:$PROXY_PORT/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "$threads" "$connections" "${CHAT_HEADERS[@]}"
        for side in A B; do
            measure "chat-$side-c$connections" "${SERVER_PID[$side]}" "http://127.0.0.1:${PORT[$side]}/v1/chat/completions" "$CHAT_BODY" "$CHAT_EXPECT" "$threads" "$connections" "${CHAT_HEADERS[@]}"
        done
    done
done

rps() { awk '{ print $1 }' "$LOG_DIR/ab-$1" | median; }
p50() { awk '{ print $2 }' "$LOG_DIR/ab-$1" | median; }
printf '\nA/B, medians of %s rounds of wrk %ss, %s\nA: %s\nB: %s\n\n' "$ROUNDS" "$DURATION" "$(machine)" "$TOLLGATE_A" "$TOLLGATE_B"
printf '| measurement | A | B | B vs A |\n|---|---:|---:|---:|\n'
printf '| MCP echo req/s (c16) | %s | %s | %s× |\n' "$(rps mcp-A)" "$(rps mcp-B)" \
    "$(awk -v a="$(rps mcp-A)" -v b="$(rps mcp-B)" 'BEGIN { printf "%.2f", b / a }')"
for connections in 1 16; do
    printf '| gateway req/s (c%s; mock direct %s) | %s | %s | %s× |\n' "$connections" "$(rps "mock-c$connections")" \
        "$(rps "chat-A-c$connections")" "$(rps "chat-B-c$connections")" \
        "$(awk -v a="$(rps "chat-A-c$connections")" -v b="$(rps "chat-B-c$connections")" 'BEGIN { printf "%.2f", b / a }')"
done
cpu() { awk '{ print $3 }' "$LOG_DIR/ab-$1" | median; }
for connections in 1 16; do
    printf '| gateway server CPU µs/request (c%s) | %s | %s | %s× |\n' "$connections" \
        "$(cpu "chat-A-c$connections")" "$(cpu "chat-B-c$connections")" \
        "$(awk -v a="$(cpu "chat-A-c$connections")" -v b="$(cpu "chat-B-c$connections")" 'BEGIN { printf "%.2f", b / a }')"
done
# overhead NAME: the median over rounds of NAME's p50 minus the mock's p50 in the same round (a
# pair measured seconds apart, so a round where the machine was busier counts for both).
overhead() {
    paste -d ' ' <(awk '{ print $2 }' "$LOG_DIR/ab-$1-c1") <(awk '{ print $2 }' "$LOG_DIR/ab-mock-c1") \
        | awk '{ print $1 - $2 }' | median
}
printf '| gateway overhead p50 µs (c1, minus the mock in the same round) | %s | %s | %+d µs |\n' \
    "$(overhead chat-A)" "$(overhead chat-B)" "$(awk -v a="$(overhead chat-A)" -v b="$(overhead chat-B)" 'BEGIN { printf "%d", b - a }')"
# share NAME: the median over rounds of NAME's req/s at c16 over the mock's in the same round.
share() {
    paste -d ' ' <(awk '{ print $1 }' "$LOG_DIR/ab-$1-c16") <(awk '{ print $1 }' "$LOG_DIR/ab-mock-c16") \
        | awk '{ printf "%.3f\n", $1 / $2 }' | median
}
printf '| gateway ÷ mock direct, req/s at c16 | %s× | %s× | |\n' "$(share chat-A)" "$(share chat-B)"
printf '\nThe peer, nginx as a plain reverse proxy over the same mock (medians, same rounds):\n\n'
printf '| measurement | nginx proxy | mock direct |\n|---|---:|---:|\n'
printf '| req/s c1 | %s | %s |\n| req/s c16 | %s (%s× direct) | %s |\n' "$(rps nginx-c1)" "$(rps mock-c1)" \
    "$(rps nginx-c16)" "$(share nginx)" "$(rps mock-c16)"
printf '| overhead p50 µs (c1, minus the mock in the same round) | %s | |\n' "$(overhead nginx)"
printf '| server CPU µs/request (c1 / c16) | %s / %s | %s / %s |\n' "$(cpu nginx-c1)" "$(cpu nginx-c16)" \
    "$(cpu mock-c1)" "$(cpu mock-c16)"
