#!/usr/bin/env bash
# Starts a private sonde-server (temp data dir, free loopback ports), seeds it
# through the real exporter, and runs browser_test.js in headless Chromium.
# Env: SONDE_SERVER, SONDE_SEED, SONDE_TEST_OUTPUT, SONDE_NODE_DIR. Arg 1: this folder.
set -euo pipefail
src="$1"
out="${SONDE_TEST_OUTPUT:?}"
node_dir="${SONDE_NODE_DIR:?}"
mkdir -p "$out" "$node_dir"

fail_or_skip() {
  if [ "${CI:-}" = "true" ]; then echo "FAIL: $1" >&2; exit 1; fi
  echo "SKIP: $1" >&2; exit 0
}
[ -x /usr/bin/chromium ] || fail_or_skip "/usr/bin/chromium missing"

# playwright-core pinned by the committed package-lock.json.
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ] || ! cmp -s "$src/package-lock.json" "$node_dir/package-lock.json"; then
  cp "$src/package.json" "$src/package-lock.json" "$node_dir/"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error) || fail_or_skip "npm ci failed"
fi

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'; }
grpc_port=$(free_port)
http_port=$(free_port)
data="$out/data"
rm -rf "$data"
"$SONDE_SERVER" --data-dir "$data" --grpc-listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" \
  > "$out/server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true; wait $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$http_port/api/health" >/dev/null 2>&1 && break
  sleep 0.1
done
"$SONDE_SEED" --server "127.0.0.1:$grpc_port" --traces 4 > "$out/trace_ids.txt"
SONDE_UI="http://127.0.0.1:$http_port" SONDE_TEST_OUTPUT="$out" NODE_PATH="$node_dir/node_modules" \
  node "$src/browser_test.js"
