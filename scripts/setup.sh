#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the demo need.
# Idempotent: safe to run on every invocation of the README commands.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: must run as root (apt-get, BPF)" >&2
  exit 1
fi

PACKAGES=(
  # toolchain
  build-essential cmake pkg-config git clang llvm clang-14 libfuzzer-14-dev
  # eBPF
  libbpf-dev bpftool libelf-dev zlib1g-dev libzstd-dev linux-perf libcapstone-dev
  # agent/server libraries
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc libabsl-dev
  libjemalloc-dev libpcap-dev libspdlog-dev libfmt-dev libcli11-dev libyaml-cpp-dev nlohmann-json3-dev
  libcpp-httplib-dev libsqlite3-dev sqlite3 libnghttp2-dev libssl-dev
  libnetfilter-queue-dev libmnl-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # real peers for kernel and e2e tests and the demo
  nginx libnginx-mod-http-lua curl wrk nghttp2-client iproute2 nftables iptables
  chromium procps psmisc redis-server redis-tools
  postgresql postgresql-client dnsmasq-base bind9-dnsutils openssl util-linux
  # test drivers and least-privilege/packaging checks (capsh, systemd-analyze)
  python3 python3-yaml libcap2-bin systemd
  # scale-out backends and exits (issue 18): tests run private instances
  clickhouse-server clickhouse-client prometheus victoria-metrics libsnappy-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js may come from another channel (its own npm bundled); only add Debian's when absent.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The distro nginx service is not ours; tests start private instances.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now nginx >/dev/null 2>&1 || true
  # Same for the backends: tests start clickhouse-server, prometheus and
  # victoria-metrics as plain processes on run-time ports.
  for unit in clickhouse-server prometheus victoria-metrics; do
    systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
pkill -f 'nginx: master process /usr/sbin/nginx' >/dev/null 2>&1 || true

# tracefs is needed by libbpf to resolve classic tracepoint ids.
if [ ! -d /sys/kernel/tracing/events ]; then
  mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
fi
echo "setup.sh: dependencies ready"
