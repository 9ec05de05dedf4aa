#!/usr/bin/env bash
# Gateway overhead over a constant upstream: the mock model (`loadtest mock-upstream
# --latency-ms 0`) called directly vs through tollgate's /v1/chat/completions, with the
# semantic cache off (every call goes upstream) and on (the same prompt repeated: cache hits).
#
#   bash benchmarks/run-gateway.sh          # DURATION=10 seconds per run by default
#   SKIP_BUILD=1 bash benchmarks/run-gateway.sh
#
# At 1 connection, overhead p50 = tollgate p50 - direct mock p50. At 16 connections, req/s.
# Auth is on (SUBSCRIPTION_KEYS) and the token budget is set out of the way. Loopback only.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
BASE_PORT="${BASE_PORT:-18100}"
KEY="bench-key"
BODY="$BENCH_DIR/bodies/gateway-chat.json"
EXPECT='"chat.completion"'
HEADERS=("Ocp-Apim-Subscription-Key: $KEY")

command -v wrk >/dev/null || die "wrk is missing: apt-get install -y wrk"
build_release

MOCK_PORT="$BASE_PORT"
OFF_PORT="$((BASE_PORT + 1))"
ON_PORT="$((BASE_PORT + 2))"

start mock "http://127.0.0.1:$MOCK_PORT/v1/models" -- \
    env RUST_LOG=warn "$LOADTEST" mock-upstream --port "$MOCK_PORT" --latency-ms 0
tollgate_env=(env RUST_LOG=warn OPENAI_BASE_URL="http://127.0.0.1:$MOCK_PORT/v1"
    SUBSCRIPTION_KEYS="bench=$KEY" TOKENS_PER_MINUTE=1000000000000 MAX_TOKENS_CAP=2000)
start tollgate-cache-off "http://127.0.0.1:$OFF_PORT/health" -- \
    "${tollgate_env[@]}" PORT="$OFF_PORT" SEMANTIC_CACHE=off "$TOLLGATE"
start tollgate-cache-on "http://127.0.0.1:$ON_PORT/health" -- \
    "${tollgate_env[@]}" PORT="$ON_PORT" SEMANTIC_CACHE=on "$TOLLGATE"

cache_status() {
    curl -s -o /dev/null -D - -X POST "$1" -H 'content-type: application/json' \
        -H "Ocp-Apim-Subscription-Key: $KEY" --data-binary "@$BODY" |
        tr -d '\r' | awk -F': ' 'tolower($1) == "x-llm-cache-status" { print $2 }'
}
[[ "$(cache_status "http://127.0.0.1:$OFF_PORT/v1/chat/completions")" != hit ]] || die "cache off answered a hit"
cache_status "http://127.0.0.1:$ON_PORT/v1/chat/completions" >/dev/null
[[ "$(cache_status "http://127.0.0.1:$ON_PORT/v1/chat/completions")" == hit ]] || die "cache on did not hit on a repeat"
log "cache status: off answers $(cache_status "http://127.0.0.1:$OFF_PORT/v1/chat/completions"), on answers hit for a repeat"

declare -A URL=(
    [mock]="http://127.0.0.1:$MOCK_PORT/v1/chat/completions"
    [off]="http://127.0.0.1:$OFF_PORT/v1/chat/completions"
    [hit]="http://127.0.0.1:$ON_PORT/v1/chat/completions"
)
declare -A RPS P50 P99
for name in mock off hit; do
    verify_wrk "$name" "${URL[$name]}" "$BODY" "$EXPECT" "${HEADERS[@]}"
    for shape in "1 1" "2 16"; do
        read -r threads connections <<<"$shape"
        run_wrk "$threads" "$connections" "$WARMUP" "${URL[$name]}" "$BODY" "$EXPECT" "${HEADERS[@]}" >/dev/null
        line="$(run_wrk "$threads" "$connections" "$DURATION" "${URL[$name]}" "$BODY" "$EXPECT" "${HEADERS[@]}")"
        log "$name c$connections: $line"
        [[ "$(wrk_result non2xx "$line")" == 0 ]] || die "$name: non-2xx answers: $line"
        RPS[$name.$connections]="$(wrk_result rps "$line")"
        P50[$name.$connections]="$(wrk_result p50_us "$line")"
        P99[$name.$connections]="$(wrk_result p99_us "$line")"
    done
done

printf '\nGateway overhead, wrk %ss per run, %s\n\n' "$DURATION" "$(machine)"
printf '| path | p50 ms (1 conn) | p99 ms (1 conn) | req/s (1 conn) | req/s (16 conn) | p99 ms (16 conn) |\n'
printf '|---|---:|---:|---:|---:|---:|\n'
for name in mock off hit; do
    case "$name" in
        mock) label="mock upstream direct" ;;
        off) label="tollgate, cache off (upstream every call)" ;;
        hit) label="tollgate, cache hit (same prompt)" ;;
    esac
    printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$(us_to_ms "${P50[$name.1]}")" \
        "$(us_to_ms "${P99[$name.1]}")" "${RPS[$name.1]}" "${RPS[$name.16]}" "$(us_to_ms "${P99[$name.16]}")"
done
printf '\ngateway overhead p50 (cache off - direct, 1 conn): %s µs; cache hit p50 end to end: %s µs\n' \
    "$((P50[off.1] - P50[mock.1]))" "${P50[hit.1]}"
