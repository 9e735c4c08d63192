#!/usr/bin/env bash
# The main job: build, start sonde-server (SQLite under a local data dir) and
# sonde-agent on this node pointed at it, and print the UI address.
#   scripts/run.sh [--demo] [--data-dir DIR] [--build-dir DIR] [--no-setup] [--no-build]
#                  [--ui-port PORT] [--ingest-port PORT]
# --demo also starts a small gateway scene: nginx proxy (127.0.0.1:18081)
# -> backend (node, 127.0.0.1:18082) and light curl load, so traces show up
# in the UI within a minute. Ctrl-C stops everything this script started.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${SONDE_BUILD_DIR:-$root/build}"
data="./data"
demo=0 setup=1 do_build=1 ui_port=8080 ingest_port=7070
while [ $# -gt 0 ]; do
  case "$1" in
    --demo) demo=1 ;;
    --data-dir) data="$2"; shift ;;
    --build-dir) build="$2"; shift ;;
    --no-setup) setup=0 ;;
    --no-build) do_build=0 ;;
    --ui-port) ui_port="$2"; shift ;;
    --ingest-port) ingest_port="$2"; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$(id -u)" -ne 0 ]; then
  echo "run.sh: sonde-agent loads eBPF programs: run as root" >&2
  exit 1
fi
[ "$setup" = 1 ] && "$root/scripts/setup.sh"

if [ "$do_build" = 1 ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j"$(nproc)" --target sonde-server sonde-agent
fi

mkdir -p "$data/logs"
data="$(cd "$data" && pwd)"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

wait_http() {  # url, what
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "run.sh: $2 did not come up ($1)" >&2; return 1
}

# The UI listens beyond loopback, so it needs a credential (sonde-server
# refuses otherwise): a random token kept in the data dir, readable by root only.
if [ ! -s "$data/ui-token" ]; then
  (umask 077; head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$data/ui-token")
fi
"$build/server/sonde-server" --data-dir "$data" --grpc-listen "127.0.0.1:$ingest_port" \
  --http-listen "0.0.0.0:$ui_port" --ui-token-file "$data/ui-token" >"$data/logs/server.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ui_port/api/health" "sonde-server" || { tail "$data/logs/server.log"; exit 1; }

# The first five minutes: CPU profiles and TCP health on, and the browser's
# own requests to the UI not shown as traffic (the ingest port is excluded by
# the agent itself).
"$build/agent/sonde-agent" run --server "127.0.0.1:$ingest_port" --profile --tcp-health \
  --exclude-port "$ui_port" >"$data/logs/agent.log" 2>&1 &
pids+=($!)
sleep 1
kill -0 "${pids[-1]}" 2>/dev/null || { echo "run.sh: sonde-agent exited:" >&2; tail "$data/logs/agent.log" >&2; exit 1; }

if [ "$demo" = 1 ]; then
  demo_dir="$data/demo"
  mkdir -p "$demo_dir/tmp"
  cat >"$demo_dir/backend.js" <<'JS'
// Demo backend: JSON items, a little latency, ~5 % errors.
const http = require('http');
http.createServer((req, res) => {
  const delay = 2 + Math.floor(Math.random() * 20);
  setTimeout(() => {
    const fail = Math.random() < 0.05;
    res.writeHead(fail ? 500 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, ok: !fail }));
  }, delay);
}).listen(18082, '127.0.0.1');
JS
  node "$demo_dir/backend.js" >"$data/logs/demo-backend.log" 2>&1 &
  pids+=($!)
  cat >"$demo_dir/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $demo_dir/nginx.pid;
error_log $demo_dir/error.log;
events { worker_connections 256; }
http {
  access_log $demo_dir/access.log;
  client_body_temp_path $demo_dir/tmp; proxy_temp_path $demo_dir/tmp;
  fastcgi_temp_path $demo_dir/tmp; uwsgi_temp_path $demo_dir/tmp; scgi_temp_path $demo_dir/tmp;
  upstream backend { server 127.0.0.1:18082; keepalive 16; }
  server {
    listen 127.0.0.1:18081;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
NGINX
  nginx -c "$demo_dir/nginx.conf" >"$data/logs/demo-nginx.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:18081/health" "demo nginx" || true
  (
    i=0
    while true; do
      i=$((i + 1))
      # A W3C traceparent per request (as an instrumented client would send):
      # nginx forwards it, so client, gateway and backend spans share a trace.
      tp="00-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')-$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')-01"
      curl -s -o /dev/null -H "x-tenant: demo" -H "traceparent: $tp" "http://127.0.0.1:18081/api/items/$((i % 50))" || true
      [ $((i % 7)) = 0 ] && curl -s -o /dev/null -X POST -d '{"n":1}' "http://127.0.0.1:18081/api/orders" || true
      sleep 0.2
    done
  ) >/dev/null 2>&1 &
  pids+=($!)
  echo "demo: curl -> nginx 127.0.0.1:18081 -> backend 127.0.0.1:18082 (5 req/s)"
fi

echo
echo "Sonde UI: http://127.0.0.1:$ui_port/  (sign in with the token in $data/ui-token;"
echo "          API clients: -H \"Authorization: Bearer \$(cat $data/ui-token)\")"
echo "data: $data   logs: $data/logs   (Ctrl-C to stop)"
wait -n "${pids[@]}" || true
echo "run.sh: a process exited; see $data/logs" >&2
