# Shared helpers of the benchmark scripts (sourced, not run).
#
# Every server a script starts is recorded and stopped by pid on exit; only loopback addresses
# are used; every load run is bounded by a duration.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
LOG_DIR="${LOG_DIR:-/tmp/tollgate-bench}"
mkdir -p "$LOG_DIR"

TOLLGATE="${TOLLGATE:-$REPO_DIR/target/release/tollgate}"
LOADTEST="${LOADTEST:-$REPO_DIR/target/release/loadtest}"

STARTED_PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

stop_all() {
    local pid
    for pid in "${STARTED_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${STARTED_PIDS[@]}"; do
        # Wait up to 5 s for each to go, then insist.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    STARTED_PIDS=()
}
trap stop_all EXIT

# build_release: the release binaries, unless SKIP_BUILD=1.
build_release() {
    if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
        log "cargo build --release (thin LTO; several minutes from scratch)"
        (cd "$REPO_DIR" && cargo build --release -p mcp-server -p loadtest) >&2
    fi
    [[ -x "$TOLLGATE" && -x "$LOADTEST" ]] || die "release binaries missing: $TOLLGATE, $LOADTEST"
}

# start NAME HEALTH_URL -- COMMAND...: starts a server, waits for a 200 on HEALTH_URL, records
# its pid. Sets START_PID and START_READY_MS.
start() {
    local name="$1" url="$2"
    shift 3
    local out
    out="$(python3 "$BENCH_DIR/lib/start.py" "$url" "$LOG_DIR/$name.log" 30 -- "$@")" \
        || die "$name did not start; see $LOG_DIR/$name.log"
    START_PID="${out%% *}"
    START_READY_MS="${out##* }"
    STARTED_PIDS+=("$START_PID")
    log "$name: pid $START_PID, ready in $START_READY_MS ms"
}

# stop PID: stops one server this script started.
stop() {
    local pid="$1"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    local kept=() other
    for other in "${STARTED_PIDS[@]}"; do
        [[ "$other" == "$pid" ]] || kept+=("$other")
    done
    STARTED_PIDS=("${kept[@]}")
}

# rss_kb PID [FIELD]: VmRSS (or another /proc status field, e.g. VmHWM) in kB.
rss_kb() {
    awk -v field="${2:-VmRSS}:" '$1 == field { print $2 }' "/proc/$1/status"
}

# cpu_ticks PID: user + system CPU time the process has used, in clock ticks (CLK_TCK).
cpu_ticks() {
    # Fields 14 and 15 of /proc/PID/stat, counted after the parenthesised command name.
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
CLK_TCK="$(getconf CLK_TCK)"

# wrk_result KEY LINE: a value from a RESULT line printed by wrk/post-json.lua.
wrk_result() {
    local key="$1" line="$2"
    sed -n "s/.*\b$key=\([^ ]*\).*/\1/p" <<<"$line"
}

# run_wrk THREADS CONNECTIONS SECONDS URL BODY_FILE EXPECT [HEADER...]: one bounded wrk run;
# prints its RESULT line. With CHECK=1 every answer is checked (see wrk/post-json.lua).
run_wrk() {
    local threads="$1" connections="$2" seconds="$3" url="$4"
    shift 4
    local line
    line="$(WRK_CHECK="${CHECK:-0}" wrk -t"$threads" -c"$connections" -d"${seconds}s" --timeout 10s \
        -s "$BENCH_DIR/wrk/post-json.lua" "$url" -- "$@" | grep -E '^(RESULT|FIRST_BAD)')"
    printf '%s\n' "$line"
}

# verify_wrk NAME URL BODY EXPECT [HEADER...]: a 2 s checked run; dies unless every answer was a
# 200 carrying EXPECT.
verify_wrk() {
    local name="$1" url="$2"
    shift 2
    local line
    line="$(CHECK=1 run_wrk 2 16 2 "$url" "$@")"
    local checked bad non2xx
    checked="$(wrk_result checked "$line")"
    bad="$(wrk_result bad "$line")"
    non2xx="$(wrk_result non2xx "$line")"
    if [[ -z "$checked" || "$checked" == 0 || "$bad" != 0 || "$non2xx" != 0 ]]; then
        die "$name: answers are not all 200 with the expected result: $line"
    fi
    log "$name: verified $checked answers (all 200 with the expected result)"
}

# machine: one line describing this machine.
machine() {
    local model mem
    model="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
    mem="$(free -g | awk '/^Mem:/ { print $2 }')"
    printf '%s cores (nproc), %s, %s GiB RAM, %s' "$(nproc)" "$model" "$mem" "$(uname -sr)"
}

us_to_ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "n/a" }'; }
