#!/usr/bin/env bash
# sonde-agent's configuration as an operator meets it, through the built
# binary: --version, `config check` on the shipped files, SONDE_* overrides,
# and start-up errors that name the key (or the variable that set it).
#   agent_config_cli_test.sh <sonde-agent> <source dir>
set -uo pipefail
AGENT=$1
SRC=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect <exit code> <text the output must contain> -- command...
expect() {
  local want_code=$1 want_text=$2
  shift 3
  local out code
  out=$("$@" 2>&1)
  code=$?
  [ "$code" -eq "$want_code" ] || fail "$* -> exit $code, want $want_code: $out"
  grep -qF -- "$want_text" <<<"$out" || fail "$* -> output lacks '$want_text': $out"
}

expect 0 "sonde-agent 0." -- "$AGENT" --version
for f in "$SRC/deploy/systemd/agent.yaml" "$SRC/deploy/k8s/base/agent.yaml"; do
  expect 0 ": ok" -- "$AGENT" config check "$f"
done

printf 'capture:\n  payload_byte: 100\n' > "$TMP/unknown.yaml"
expect 2 "unknown key 'payload_byte'" -- "$AGENT" config check "$TMP/unknown.yaml"
printf 'capture:\n  payload_bytes: 100000\n' > "$TMP/range.yaml"
expect 2 "capture.payload_bytes must be 1..16384" -- "$AGENT" config check "$TMP/range.yaml"
printf 'log_level: chatty\n' > "$TMP/level.yaml"
expect 2 "log_level must be one of" -- "$AGENT" config check "$TMP/level.yaml"
printf 'otlp:\n  grpc_port: many\n' > "$TMP/otlp.yaml"
expect 2 "otlp.grpc_port" -- "$AGENT" config check "$TMP/otlp.yaml"
printf 'profile:\n  hz: 0\n' > "$TMP/profile.yaml"
expect 2 "profile.hz" -- "$AGENT" config check "$TMP/profile.yaml"
printf 'network:\n  no_such_key: 1\n' > "$TMP/network.yaml"
expect 2 "no_such_key" -- "$AGENT" config check "$TMP/network.yaml"
printf 'capture: [\n' > "$TMP/syntax.yaml"
expect 2 "syntax.yaml" -- "$AGENT" config check "$TMP/syntax.yaml"

# Environment: applied, reported, and its errors name the variable.
expect 0 "SONDE_CAPTURE_PAYLOAD_BYTES=>capture.payload_bytes" -- \
  env SONDE_CAPTURE_PAYLOAD_BYTES=8192 "$AGENT" config check "$SRC/deploy/systemd/agent.yaml"
expect 2 "(set by SONDE_CAPTURE_RINGBUF_MB)" -- \
  env SONDE_CAPTURE_RINGBUF_MB=3 "$AGENT" config check "$SRC/deploy/systemd/agent.yaml"
expect 2 "(set by SONDE_LOG_LEVEL)" -- env SONDE_LOG_LEVEL=loud "$AGENT" config check "$SRC/deploy/systemd/agent.yaml"
expect 0 ": ok" -- env SONDE_HPACK_BACKEND=nghttp2 "$AGENT" config check "$SRC/deploy/systemd/agent.yaml"
# A bad value names the section once, then the key, then the variable (was
# "network: network: bad conversion", without key or variable).
for case in "SONDE_NETWORK_SNAPLEN=big network.snaplen" "SONDE_SPANS_SLOW_MS=abc spans.slow_ms" \
            "SONDE_CAPTURE_TLS=maybe capture.tls" "SONDE_OTLP_GRPC_PORT=70000 otlp.grpc_port" \
            "SONDE_PROFILE_HZ=fast profile.hz" "SONDE_NETWORK_TCP_HEALTH=maybe network.tcp_health"; do
  set -- $case
  out=$(env "$1" "$AGENT" config check "$SRC/deploy/systemd/agent.yaml" 2>&1)
  section=${2%%.*}
  grep -qF -- "agent.yaml: $2" <<<"$out" || fail "$1: error lacks 'agent.yaml: $2': $out"
  grep -qF -- "(set by ${1%%=*})" <<<"$out" || fail "$1: error lacks the variable: $out"
  grep -qE -- "$section[.:] $section[.:]|$section\.$section\." <<<"$out" && fail "$1: section repeated: $out"
done

# A mistyped --log-level stops the agent before it does anything.
expect 2 "must be one of" -- "$AGENT" --log-level=verbose probe
# A bad environment value stops `run` too (not only `config check`).
expect 2 "(set by SONDE_SPANS_RATE_LIMIT)" -- env SONDE_SPANS_RATE_LIMIT=fast "$AGENT" run --no-otlp

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS"
