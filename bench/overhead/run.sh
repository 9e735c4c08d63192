#!/usr/bin/env bash
# What the agent costs a proxied gateway, measured as users meet it.
#
# One nginx worker is a reverse proxy (upstream keepalive pool) in front of a
# backend `return 200`; wrk -t1 -c64 sends a unique path per request. A
# sonde-server runs on the node throughout, as in the documented deployment.
# The agent is started in each mode in turn, rounds alternate so every mode
# sees the same machine, and medians are printed per mode:
#
#   off       no agent
#   filtered  sonde-agent run with every process filtered out (--pid 999999)
#   capture   sonde-agent capture --record /dev/null (kernel side + ring-buffer drain only)
#   export    sonde-agent run --server (the documented deployment)
#   json      sonde-agent run, spans as JSON lines to /dev/null
#
# Per mode: proxied req/s and ratio to off, agent CPU µs per proxied request,
# agent peak RSS, kernel drops, RED server requests vs 2x wrk's count (the
# proxy and the backend each serve every request), and, from one extra
# round with BPF stats enabled, BPF run time per program and per call.
# Then an HTTP/2 mode (h2load, off vs export), an HTTPS mode (the proxy
# terminates TLS, wrk over https: off, export with TLS uprobes, export with
# --no-tls) and a latency mode at a fixed rate (open loop, off vs export):
# p50/p99 added.
#
#   bench/overhead/run.sh [--build-dir DIR] [--rounds N] [--seconds S] [--modes "off export ..."]
#                         [--rate R] [--no-h2] [--no-https] [--no-latency] [--no-bpf-stats]
#                         [--baseline AGENT_BINARY] [-- AGENT_ARGS...]
# AGENT_ARGS are appended to every `sonde-agent run` (e.g. --span-rate-limit 0).
# --baseline adds the modes filtered@base, capture@base, export@base and json@base run with another
# agent binary (e.g. one built from an earlier commit), in the same rounds: a
# before/after table from one run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build="$root/build"
rounds=3 secs=10 rate=10000 do_h2=1 do_https=1 do_latency=1 do_stats=1 baseline=
modes="off filtered capture export json"
agent_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --modes) modes=$2; shift ;;
    --rate) rate=$2; shift ;;
    --no-h2) do_h2=0 ;;
    --no-https) do_https=0 ;;
    --no-latency) do_latency=0 ;;
    --no-bpf-stats) do_stats=0 ;;
    --baseline) baseline=$2; shift ;;
    --) shift; agent_args=("$@"); break ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: needs root (the agent loads BPF programs)" >&2; exit 2; }
AGENT="$build/agent/sonde-agent"
SERVER="$build/server/sonde-server"
FIXED="$build/bench/overhead/sonde_bench_fixed_rate"
for b in "$AGENT" "$SERVER" "$FIXED"; do
  [ -x "$b" ] || { echo "run.sh: $b missing: cmake --build $build first" >&2; exit 2; }
done
for c in nginx wrk h2load curl openssl; do
  command -v $c > /dev/null || { echo "run.sh: $c missing (bash scripts/setup.sh installs it)" >&2; exit 2; }
done
[ -d /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
if [ -n "$baseline" ]; then
  [ -x "$baseline" ] || { echo "run.sh: baseline agent $baseline is not executable" >&2; exit 2; }
  for m in filtered capture export json; do case " $modes " in *" $m "*) modes+=" $m@base" ;; esac; done
fi

T=$(mktemp -d /tmp/sonde-overhead.XXXXXX)
PROXY=18996 BACKEND=18997 H2=18998 HTTPS=18999 GRPC=17070 UI=18090 METRICS=19464
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  sysctl -q -w kernel.bpf_stats_enabled=0 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT

mkdir -p "$T/ngx"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/tls.key" -out "$T/tls.crt" -subj /CN=localhost \
  -days 1 2> /dev/null || { echo "run.sh: openssl could not make a certificate" >&2; exit 1; }
cat > "$T/nginx.conf" <<NG
worker_processes 1; daemon off; pid $T/nginx.pid; error_log $T/nginx-error.log;
events { worker_connections 4096; }
http { access_log off;
  client_body_temp_path $T/ngx; proxy_temp_path $T/ngx; fastcgi_temp_path $T/ngx;
  uwsgi_temp_path $T/ngx; scgi_temp_path $T/ngx;
  upstream be { server 127.0.0.1:$BACKEND; keepalive 32; }
  server { listen 127.0.0.1:$PROXY;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  # h2load -D does not reconnect when nginx ends a connection after keepalive_requests.
  server { listen 127.0.0.1:$H2 http2; keepalive_requests 100000000;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  # The gateway terminates TLS (OpenSSL in nginx: the agent's uprobes), plain HTTP upstream.
  server { listen 127.0.0.1:$HTTPS ssl; ssl_certificate $T/tls.crt; ssl_certificate_key $T/tls.key;
    keepalive_requests 100000000;
    location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "ok\n"; } } }
NG
cat > "$T/uniq.lua" <<'LUA'
local n = 0
request = function() n = n + 1; return wrk.format("GET", "/item/" .. math.random(1, 1e9) .. "/" .. n) end
LUA

nginx -c "$T/nginx.conf" & pids+=($!)
"$SERVER" --data-dir "$T/data" --grpc-listen 127.0.0.1:$GRPC --http-listen 127.0.0.1:$UI \
  --log-level warn > "$T/server.log" 2>&1 & pids+=($!)
for i in $(seq 50); do
  curl -sf -o /dev/null http://127.0.0.1:$PROXY/ && curl -sf -o /dev/null http://127.0.0.1:$UI/api/health && break
  sleep 0.2
done
curl -sf -o /dev/null http://127.0.0.1:$PROXY/ || { echo "run.sh: nginx did not start" >&2; cat "$T/nginx-error.log"; exit 1; }
wrk -t1 -c64 -d2s -s "$T/uniq.lua" http://127.0.0.1:$PROXY/ > /dev/null  # warm up

# --- helpers ----------------------------------------------------------------
clk=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
metric_sum() {  # sum of a Prometheus metric (all label sets matching the regex) from the agent
  curl -s --max-time 2 "http://127.0.0.1:$METRICS/metrics" | awk -v re="$1" '$1 ~ re {s += $2} END {printf "%.0f", s}'
}
prog_ids() { bpftool prog show -j 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin)))'; }
bpf_snapshot() {  # "name run_cnt run_time_ns" per program not in the id list $1 (loaded by the agent)
  bpftool prog show -j 2>/dev/null | python3 -c '
import json, sys
before = set(sys.argv[1].split())
for p in json.load(sys.stdin):
    if str(p["id"]) not in before:
        print(p.get("name", "?") + "#" + str(p["id"]), p.get("run_cnt", 0), p.get("run_time_ns", 0))' "$1"
}

agent_cmd() {  # the command line of a mode ("MODE@base": the baseline binary, its default flags)
  local ready=$T/ready
  case "$1" in
    *@base) echo "$(agent_cmd "${1%@base}" | sed "s|^$AGENT|$baseline|; s| ${agent_args[*]}\$||")" ; return ;;
  esac
  case "$1" in
    filtered) echo "$AGENT run --no-json --pid 999999 --metrics-listen 127.0.0.1:$METRICS --ready-file $ready ${agent_args[*]}" ;;
    capture) echo "$AGENT capture --record /dev/null --ready-file $ready" ;;
    export) echo "$AGENT run --server 127.0.0.1:$GRPC --metrics-listen 127.0.0.1:$METRICS --ready-file $ready ${agent_args[*]}" ;;
    export-notls) echo "$AGENT run --no-tls --server 127.0.0.1:$GRPC --metrics-listen 127.0.0.1:$METRICS --ready-file $ready ${agent_args[*]}" ;;
    json) echo "$AGENT run --json-out /dev/null --metrics-listen 127.0.0.1:$METRICS --ready-file $ready ${agent_args[*]}" ;;
  esac
}

start_agent() {  # mode -> sets agent_pid (empty for off)
  agent_pid=
  [ "$1" = off ] && return 0
  rm -f "$T/ready"
  $(agent_cmd "$1") > "$T/agent-${1//@/-}.log" 2>&1 &
  agent_pid=$!
  for i in $(seq 100); do [ -e "$T/ready" ] && break; sleep 0.1; done
  sleep 1
  kill -0 "$agent_pid" 2>/dev/null || { echo "agent ($1) died:"; tail -5 "$T/agent-${1//@/-}.log"; agent_pid=; return 1; }
}

stop_agent() {
  [ -n "$agent_pid" ] || return 0
  kill -INT "$agent_pid" 2>/dev/null
  wait "$agent_pid" 2>/dev/null
  agent_pid=
}

declare -A rps cpu rss drops red catchups
# One measured phase: mode, load command (prints "requests rps"), result prefix.
phase() {
  local mode=$1 key=$2; shift 2
  start_agent "$mode" || { rps[$key]+="fail "; return; }
  local t0=0 red0=0
  if [ -n "$agent_pid" ]; then
    t0=$(cpu_ticks "$agent_pid")
    [ "${mode%@base}" != capture ] && red0=$(metric_sum '^http_server_request_duration_seconds_count')
  fi
  local out; out=$("$@")
  local n=${out% *} r=${out#* }
  rps[$key]+="$r "
  if [ -n "$agent_pid" ]; then
    local t1; t1=$(cpu_ticks "$agent_pid")
    cpu[$key]+="$(awk -v a=$t0 -v b=$t1 -v n=$n -v c=$clk 'BEGIN{printf "%.2f", n ? (b-a)/c*1e6/n : 0}') "
    if [ "${mode%@base}" != capture ]; then
      sleep 1.5  # records of the last requests reach RED on the next ticks
      local red1; red1=$(metric_sum '^http_server_request_duration_seconds_count')
      red[$key]+="$(awk -v a=$red0 -v b=$red1 -v n=$n 'BEGIN{printf "%.4f", n ? (b-a)/(2*n) : 0}') "
      drops[$key]+="$(metric_sum '^sonde_agent_kernel_lost_events_total') "
    fi
    # times the agent left the background priority (capture.background_nice) to catch up
    catchups[$key]+="$(metric_sum '^sonde_agent_drain_catch_ups_total') "
    rss[$key]+="$(awk '/VmHWM/ {printf "%.0f", $2/1024}' /proc/$agent_pid/status) "
  fi
  stop_agent
}

wrk_load() {  # prints "requests req/s"
  wrk -t1 -c64 -d${secs}s -s "$T/uniq.lua" http://127.0.0.1:$PROXY/ |
    awk '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {print n, r}'
}
https_load() {  # wrk over TLS (keep-alive: the handshake is not what is measured)
  wrk -t1 -c64 -d${secs}s -s "$T/uniq.lua" https://127.0.0.1:$HTTPS/ |
    awk '/requests in/ {n=$1} /Requests\/sec/ {r=$2} END {print n, r}'
}
h2_load() {
  local out; out=$(h2load -c64 -m1 -D $secs http://127.0.0.1:$H2/h2/item 2>&1)
  # "requests: N total, N started, N done, N succeeded, ..." / "finished in 10.00s, R req/s, ..."
  echo "$(echo "$out" | awk '/^requests:/ {print $8}') $(echo "$out" | awk '/^finished in/ {gsub(",","",$4); print $4}')"
}

med() { printf '%s\n' $1 | grep -v fail | sort -g | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }

echo "# sonde overhead: $(nproc) cores, $(uname -r), nginx $(nginx -v 2>&1 | sed 's/.*\///'), ${secs}s per phase, $rounds rounds"
echo "# agent: $AGENT ${agent_args[*]}"

# --- HTTP/1.1 throughput -------------------------------------------------------
for r in $(seq 1 "$rounds"); do
  for m in $modes; do phase "$m" "$m" wrk_load; done
  echo "# round $r done: $(for m in $modes; do printf '%s=%s ' $m "$(echo ${rps[$m]} | awk '{print $NF}')"; done)" >&2
done

base=$(med "${rps[off]:-0}")
echo
echo "## HTTP/1.1 proxied throughput (wrk -t1 -c64, unique paths; medians of $rounds)"
printf '| %-14s | %9s | %6s | %12s | %9s | %12s | %12s |\n' mode "req/s" ratio "agent µs/req" "RSS MB" "kernel drops" "RED/2×wrk"
printf '|%s|\n' "----------------|-----------|--------|--------------|-----------|--------------|--------------"
for m in $modes; do
  v=$(med "${rps[$m]}")
  printf '| %-14s | %9.0f | %6.3f | %12s | %9s | %12s | %12s |\n' "$m" "$v" \
    "$(awk -v a=$v -v b=$base 'BEGIN{print (b ? a/b : 0)}')" \
    "$(med "${cpu[$m]:-}")" "$(med "${rss[$m]:-}")" "$(med "${drops[$m]:-}")" "$(med "${red[$m]:-}")"
done
for m in $modes; do echo "# runs $m: ${rps[$m]} (catch-ups: ${catchups[$m]:-})"; done

# --- BPF run time per program (one extra round with BPF stats on) -----------------
if [ "$do_stats" = 1 ]; then
  echo
  echo "## BPF run time per program (kernel.bpf_stats_enabled=1, wrk ${secs}s; stats themselves add ~20-40 ns per run)"
  for m in filtered capture export; do
    case " $modes " in *" $m "*) ;; *) continue ;; esac
    sysctl -q -w kernel.bpf_stats_enabled=1
    ids=$(prog_ids)
    start_agent "$m" || continue
    bpf_snapshot "$ids" > "$T/bpf0"
    out=$(wrk_load)
    bpf_snapshot "$ids" > "$T/bpf1"
    stop_agent
    sysctl -q -w kernel.bpf_stats_enabled=0
    n=${out% *}
    echo "### $m ($n requests, ${out#* } req/s)"
    echo "| program | runs | ns/run | runs/request | ns/request |"
    echo "|---|---|---|---|---|"
    join <(sort "$T/bpf0") <(sort "$T/bpf1") | awk -v n=$n '
      { cnt = $4 - $2; ns = $5 - $3; if (cnt > 0) { printf "| %s | %d | %.0f | %.2f | %.0f |\n", $1, cnt, ns/cnt, cnt/n, ns/n; tc += cnt; tn += ns } }
      END { if (tc) printf "| **all** | %d | %.0f | %.2f | %.0f |\n", tc, tn/tc, tc/n, tn/n }'
  done
fi

# --- HTTP/2 -------------------------------------------------------------------------
if [ "$do_h2" = 1 ]; then
  for r in $(seq 1 "$rounds"); do
    phase off h2off h2_load
    phase export h2export h2_load
  done
  b=$(med "${rps[h2off]}"); e=$(med "${rps[h2export]}")
  echo
  echo "## HTTP/2 (h2load -c64 -m1 to an h2c proxy listener, export mode; medians of $rounds)"
  echo "| mode | req/s | ratio | agent µs/req | RSS MB |"
  echo "|---|---|---|---|---|"
  printf '| off | %.0f | 1.000 | | |\n' "$b"
  printf '| export | %.0f | %.3f | %s | %s |\n' "$e" "$(awk -v a=$e -v b=$b 'BEGIN{print (b ? a/b : 0)}')" \
    "$(med "${cpu[h2export]:-}")" "$(med "${rss[h2export]:-}")"
fi

# --- HTTPS --------------------------------------------------------------------------
if [ "$do_https" = 1 ]; then
  for r in $(seq 1 "$rounds"); do
    phase off tlsoff https_load
    phase export tlsexport https_load
    phase export-notls tlsnotls https_load
  done
  b=$(med "${rps[tlsoff]}")
  echo
  echo "## HTTPS (wrk -t1 -c64 over TLS to the proxy, plain upstream; medians of $rounds)"
  echo "RED/2×wrk 1.000: the TLS ingress (uprobe plaintext) and the plain backend both counted; 0.5 without TLS capture."
  echo "| mode | req/s | ratio | agent µs/req | RSS MB | kernel drops | RED/2×wrk |"
  echo "|---|---|---|---|---|---|---|"
  printf '| off | %.0f | 1.000 | | | | |\n' "$b"
  for k in tlsexport tlsnotls; do
    e=$(med "${rps[$k]}")
    printf '| %s | %.0f | %.3f | %s | %s | %s | %s |\n' "$([ $k = tlsexport ] && echo export || echo 'export --no-tls')" "$e" \
      "$(awk -v a=$e -v b=$b 'BEGIN{print (b ? a/b : 0)}')" "$(med "${cpu[$k]:-}")" "$(med "${rss[$k]:-}")" \
      "$(med "${drops[$k]:-}")" "$(med "${red[$k]:-}")"
  done
fi

# --- latency at a fixed rate ---------------------------------------------------------
if [ "$do_latency" = 1 ]; then
  declare -A p50 p99
  lat_modes="off export"
  [ -n "$baseline" ] && lat_modes+=" export@base"  # the same host minutes for both binaries
  for r in $(seq 1 "$rounds"); do
    for m in $lat_modes; do
      start_agent $m || continue
      out=$("$FIXED" 127.0.0.1 $PROXY "$rate" "$secs" 64)
      p50[$m]+="$(echo "$out" | awk '{for (i=1;i<NF;i++) if ($i=="p50_us") print $(i+1)}') "
      p99[$m]+="$(echo "$out" | awk '{for (i=1;i<NF;i++) if ($i=="p99_us") print $(i+1)}') "
      stop_agent
    done
  done
  echo
  echo "## Latency at a fixed $rate req/s (open loop, 64 connections; medians of $rounds)"
  echo "| mode | p50 µs | p99 µs |"
  echo "|---|---|---|"
  for m in $lat_modes; do printf '| %s | %s | %s |\n' $m "$(med "${p50[$m]:-}")" "$(med "${p99[$m]:-}")"; done
  for m in $lat_modes; do
    [ "$m" = off ] && continue
    printf '| **added** (%s) | %.1f | %.1f |\n' $m \
      "$(awk -v a="$(med "${p50[$m]:-}")" -v b="$(med "${p50[off]:-}")" 'BEGIN{print a-b}')" \
      "$(awk -v a="$(med "${p99[$m]:-}")" -v b="$(med "${p99[off]:-}")" 'BEGIN{print a-b}')"
  done
  echo "# runs p99:$(for m in $lat_modes; do printf ' %s: %s;' $m "${p99[$m]:-}"; done)"
fi
