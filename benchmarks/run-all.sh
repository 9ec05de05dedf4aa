#!/usr/bin/env bash
# Every benchmark of benchmarks/README.md in one go: MCP vs the SDK peers (with tollgate's
# readiness and RSS), gateway overhead, agent turn overhead, and the cache lookup bench.
#
#   bash benchmarks/run-all.sh 2>&1 | tee /tmp/tollgate-bench/all.txt
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
bash "$here/run-mcp.sh"
SKIP_BUILD=1 bash "$here/run-gateway.sh"
SKIP_BUILD=1 bash "$here/run-agent.sh"
(cd "$here/.." && cargo bench -p gateway-client --bench cache_lookup 2>&1) |
    grep -E 'time:|^cache_lookup|entries|phase|posting|tied|response|approximate|re-storing|^ +(paraphrase|new)'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
