#!/usr/bin/env bash
# Packaging test: builds the sonde-agent and sonde-server .deb packages with
# CPack from the build tree, checks their metadata, installs them with
# dpkg -i, checks what landed (binaries run, the agent's system user, the
# conffiles, the units pass `systemd-analyze verify`, the installed server
# answers), then purges both and checks the machine is as it was.
#   deb_package_test.sh <build dir>
# Exit 77 (skipped) when a prerequisite is missing, unless CI=true (then 1).
set -euo pipefail

BUILD_DIR=${1:?build dir}
SKIP=77
fail() { echo "FAIL: $*" >&2; exit 1; }
prereq() {
  if [ "${CI:-}" = true ]; then fail "prerequisite missing in CI: $*"; fi
  echo "SKIP: $*"; exit $SKIP
}

[ "$(id -u)" -eq 0 ] || prereq "root (dpkg -i)"
for tool in cpack dpkg dpkg-deb dpkg-shlibdeps systemd-analyze adduser curl; do
  command -v "$tool" >/dev/null || prereq "$tool"
done
[ -x "$BUILD_DIR/agent/sonde-agent" ] && [ -x "$BUILD_DIR/server/sonde-server" ] ||
  prereq "sonde-agent and sonde-server built in $BUILD_DIR"
for pkg in sonde-agent sonde-server; do
  if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q installed; then
    prereq "$pkg is already installed on this machine (the test would replace it)"
  fi
done
getent passwd sonde-agent >/dev/null && prereq "user sonde-agent already exists (the test would delete it)"
had_state_dir=no
[ -e /var/lib/sonde ] || [ -e /var/lib/private/sonde ] && had_state_dir=yes

WORK=$(mktemp -d /tmp/sonde-deb-test.XXXXXX)
SERVER_PID=""
AGENT_PID=""
NGINX_PID=""
cleanup() {
  for pid in $AGENT_PID $NGINX_PID $SERVER_PID; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
  dpkg --purge sonde-agent sonde-server >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- build -------------------------------------------------------------------
(cd "$BUILD_DIR" && cpack -G DEB -B "$WORK/out" --config "$BUILD_DIR/CPackConfig.cmake") > "$WORK/cpack.log" 2>&1 ||
  { cat "$WORK/cpack.log"; fail "cpack -G DEB"; }
AGENT_DEB=$(ls "$WORK"/out/sonde-agent_*.deb 2>/dev/null) || fail "no sonde-agent_*.deb in $(ls "$WORK/out")"
SERVER_DEB=$(ls "$WORK"/out/sonde-server_*.deb 2>/dev/null) || fail "no sonde-server_*.deb"
echo "built: $(basename "$AGENT_DEB") ($(du -k "$AGENT_DEB" | cut -f1) KiB), $(basename "$SERVER_DEB") ($(du -k "$SERVER_DEB" | cut -f1) KiB)"

# --- metadata ----------------------------------------------------------------
field() { dpkg-deb -f "$1" "$2"; }
[ "$(field "$AGENT_DEB" Package)" = sonde-agent ] || fail "agent package name"
[ "$(field "$SERVER_DEB" Package)" = sonde-server ] || fail "server package name"
agent_depends=$(field "$AGENT_DEB" Depends)
server_depends=$(field "$SERVER_DEB" Depends)
echo "sonde-agent Depends: $agent_depends"
echo "sonde-server Depends: $server_depends"
# dpkg-shlibdeps must have found the shared libraries the binaries link.
for lib in libbpf libelf libc6 adduser; do
  grep -q "$lib" <<<"$agent_depends" || fail "sonde-agent does not depend on $lib"
done
for lib in libsqlite3 libc6; do
  grep -q "$lib" <<<"$server_depends" || fail "sonde-server does not depend on $lib"
done
dpkg-deb --ctrl-tarfile "$AGENT_DEB" | tar -t | grep -q conffiles || fail "agent has no conffiles"
agent_files=$(dpkg-deb -c "$AGENT_DEB" | awk '{print $6}')
server_files=$(dpkg-deb -c "$SERVER_DEB" | awk '{print $6}')
for f in ./usr/bin/sonde-agent ./usr/lib/systemd/system/sonde-agent.service ./etc/sonde/agent.yaml \
         ./usr/share/doc/sonde-agent/deploy.md ./usr/share/doc/sonde-agent/configuration.md \
         ./usr/share/doc/sonde-agent/copyright; do
  grep -qx "$f" <<<"$agent_files" || fail "sonde-agent lacks $f"
done
for f in ./usr/bin/sonde-server ./usr/lib/systemd/system/sonde-server.service ./etc/default/sonde-server \
         ./etc/sonde/server.yaml \
         ./usr/share/doc/sonde-server/deploy.md ./usr/share/doc/sonde-server/copyright; do
  grep -qx "$f" <<<"$server_files" || fail "sonde-server lacks $f"
done
grep -q sonde-server <<<"$agent_files" && fail "sonde-agent carries server files"
grep -q sonde-agent <<<"$server_files" && fail "sonde-server carries agent files"

# --- install -----------------------------------------------------------------
dpkg -i "$AGENT_DEB" "$SERVER_DEB" > "$WORK/dpkg.log" 2>&1 || { cat "$WORK/dpkg.log"; fail "dpkg -i"; }
dpkg-query -W -f='${Status}\n' sonde-agent | grep -q "install ok installed" || fail "sonde-agent not installed"
dpkg-query -W -f='${Status}\n' sonde-server | grep -q "install ok installed" || fail "sonde-server not installed"
[ -x /usr/bin/sonde-agent ] && [ -x /usr/bin/sonde-server ] || fail "binaries not in /usr/bin"
file_out=$(file -L /usr/bin/sonde-agent)
grep -q "not stripped" <<<"$file_out" && fail "installed sonde-agent is not stripped: $file_out"
/usr/bin/sonde-agent --help >/dev/null || fail "installed sonde-agent --help"
/usr/bin/sonde-server --help >/dev/null || fail "installed sonde-server --help"

# The agent's dedicated system user: no login, no home, its own group.
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd sonde-agent) || fail "user sonde-agent not created"
[ "$uid" -lt 1000 ] || fail "sonde-agent is not a system user (uid $uid)"
[ "$(getent group "$gid" | cut -d: -f1)" = sonde-agent ] || fail "sonde-agent's primary group"
[ "$home" = /nonexistent ] || fail "sonde-agent home $home"
case "$shell" in */nologin|*/false) ;; *) fail "sonde-agent shell $shell";; esac

# The units: systemd's own checker (unknown keys, bad capabilities, missing
# binaries and users are all reported on stderr).
for unit in sonde-agent.service sonde-server.service; do
  out=$(cd / && systemd-analyze verify "/usr/lib/systemd/system/$unit" 2>&1) || fail "systemd-analyze verify $unit: $out"
  # Ignore complaints about units that are not ours (e.g. the host's own).
  ours=$(grep -i "sonde" <<<"$out" || true)
  [ -z "$ours" ] || fail "systemd-analyze verify $unit: $ours"
  echo "systemd-analyze verify $unit: ok"
done
unit=/usr/lib/systemd/system/sonde-agent.service
grep -qx "User=sonde-agent" "$unit" || fail "agent unit does not run as sonde-agent"
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr ' ' '\n' | sort | tr '\n' ' ')
[ "$caps" = "CAP_BPF CAP_DAC_READ_SEARCH CAP_NET_RAW CAP_PERFMON CAP_SYS_NICE CAP_SYS_PTRACE " ] ||
  fail "agent unit capabilities: $caps"
grep -q "sys-kernel-tracing.mount" "$unit" || fail "agent unit does not pull in tracefs"

# The installed configuration is accepted by the installed agent.
/usr/bin/sonde-agent config check /etc/sonde/agent.yaml > "$WORK/check.log" 2>&1 ||
  { cat "$WORK/check.log"; fail "installed agent rejects /etc/sonde/agent.yaml"; }

/usr/bin/sonde-agent --version | grep -q "^sonde-agent $(field "$AGENT_DEB" Version)" || fail "agent --version != package"
/usr/bin/sonde-server --version | grep -q "^sonde-server $(field "$SERVER_DEB" Version)" || fail "server --version != package"

# The installed pair as the units run them, end to end: the server with its
# packaged config; the agent with its packaged config as the user sonde-agent
# holding exactly the unit's AmbientCapabilities (capsh does what systemd
# does). Ports, data dir and the traced port are moved aside through SONDE_*
# variables (what /etc/default/* would do). curl -> nginx must show up in the
# server's API as the service nginx.
command -v capsh >/dev/null && command -v nginx >/dev/null || prereq "capsh and nginx"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(port); GRPC_PORT=$(port); METRICS_PORT=$(port); NGINX_PORT=$(port)
SONDE_DATA_DIR="$WORK/data" SONDE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" SONDE_GRPC_LISTEN="127.0.0.1:$GRPC_PORT" \
  /usr/bin/sonde-server --config /etc/sonde/server.yaml > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<NGINX
daemon off; pid $WORK/nginx/nginx.pid; error_log $WORK/nginx/error.log;
events {}
http { access_log $WORK/nginx/access.log; client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx;
       fastcgi_temp_path $WORK/nginx; uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
       server { listen 127.0.0.1:$NGINX_PORT; location / { return 200 "ok\\n"; } } }
NGINX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" > /dev/null 2>&1 &
NGINX_PID=$!
caps=$(sed -n 's/^AmbientCapabilities=//p' "$unit" | tr 'A-Z' 'a-z' | tr ' ' ',')
chmod 0755 "$WORK"
SONDE_SERVER_ADDRESS="127.0.0.1:$GRPC_PORT" SONDE_METRICS_LISTEN="127.0.0.1:$METRICS_PORT" \
SONDE_CAPTURE_INCLUDE_PORTS="[$NGINX_PORT]" SONDE_OTLP_ENABLED=false \
  capsh --caps="$caps+eip cap_setpcap,cap_setuid,cap_setgid+ep" --keep=1 --user=sonde-agent --addamb="$caps" \
  -- -c 'exec /usr/bin/sonde-agent --config /etc/sonde/agent.yaml run' > "$WORK/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 150); do
  curl -fsS "http://127.0.0.1:$HTTP_PORT/api/health" >/dev/null 2>&1 &&
    curl -fsS "http://127.0.0.1:$METRICS_PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$METRICS_PORT/healthz" >/dev/null 2>&1 || { cat "$WORK/agent.log"; fail "installed agent not up"; }
grep -q "sonde-agent" <(ps -o user= -p "$AGENT_PID") || fail "agent not running as sonde-agent: $(ps -o user= -p "$AGENT_PID")"
for i in $(seq 20); do curl -fsS -o /dev/null "http://127.0.0.1:$NGINX_PORT/item/$i" || fail "curl nginx"; done
seen=0
for _ in $(seq 60); do
  seen=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/api/services?last=15m" 2>/dev/null |
         python3 -c 'import json,sys; print(sum(s["count"] for s in json.load(sys.stdin)["services"] if s["service"]=="nginx"))' 2>/dev/null || echo 0)
  [ "$seen" -ge 20 ] && break
  sleep 0.5
done
[ "$seen" -ge 20 ] || { tail -20 "$WORK/agent.log"; tail -5 "$WORK/server.log"; fail "server shows $seen nginx requests of 20"; }
echo "installed agent (user sonde-agent, caps $caps) -> installed server: nginx served 20, the API counts $seen"
# HTTPS under the unit's capabilities: where uprobes can be placed without
# CAP_SYS_ADMIN (uprobe_multi links, 6.6+; or an unpatched uprobe PMU), TLS
# capture is on and /metrics says how; else it says why it is off.
uprobes=$(capsh --caps="$caps+eip cap_setpcap,cap_setuid,cap_setgid+ep" --keep=1 --user=sonde-agent \
            --addamb="$caps" -- -c 'exec /usr/bin/sonde-agent probe' 2>/dev/null |
          python3 -c 'import json,sys; print(json.load(sys.stdin)["uprobes"])' 2>/dev/null || echo unknown)
tls_state=$(curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | grep '^sonde_agent_tls_capture_enabled' || true)
echo "TLS capture under the unit's capabilities (probe: uprobes=$uprobes): $tls_state"
case "$uprobes" in
  True) grep -q '} 1$' <<<"$tls_state" || fail "uprobes possible but TLS capture off: $tls_state";;
  False) grep -q 'reason="\(permission_denied\|no_uprobes\)"} 0$' <<<"$tls_state" || fail "TLS state: $tls_state";;
  *) fail "sonde-agent probe as sonde-agent: $uprobes";;
esac
kill "$AGENT_PID" "$NGINX_PID" 2>/dev/null; wait "$AGENT_PID" "$NGINX_PID" 2>/dev/null
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""

# --- remove ------------------------------------------------------------------
dpkg --purge sonde-agent sonde-server > "$WORK/purge.log" 2>&1 || { cat "$WORK/purge.log"; fail "dpkg --purge"; }
for f in /usr/bin/sonde-agent /usr/bin/sonde-server /usr/lib/systemd/system/sonde-agent.service \
         /usr/lib/systemd/system/sonde-server.service /etc/sonde/agent.yaml /etc/sonde/server.yaml \
         /etc/default/sonde-server \
         /usr/share/doc/sonde-agent /usr/share/doc/sonde-server; do
  [ ! -e "$f" ] || fail "$f left after purge"
done
getent passwd sonde-agent >/dev/null && fail "user sonde-agent left after purge"
getent group sonde-agent >/dev/null && fail "group sonde-agent left after purge"
if [ "$had_state_dir" = no ] && { [ -e /var/lib/sonde ] || [ -e /var/lib/private/sonde ]; }; then
  fail "/var/lib/sonde left after purge"
fi
echo "PASS: packages built, installed, verified and purged"
