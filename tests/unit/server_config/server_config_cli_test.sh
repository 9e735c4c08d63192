#!/usr/bin/env bash
# sonde-server's one configuration through the built binary: every flag is a
# YAML key (--config) and a SONDE_* variable, with precedence file <
# environment < command line (observed through where the database lands),
# unknown keys and bad log levels are errors naming them, --version works.
#   server_config_cli_test.sh <sonde-server>
set -uo pipefail
SERVER=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

out=$("$SERVER" --version 2>&1) || fail "--version exit $?"
grep -q "^sonde-server 0\." <<<"$out" || fail "--version printed: $out"

# Starts the server for a moment with the given environment/arguments and
# prints which of the candidate data dirs received the database.
where_db() {
  rm -rf "$TMP"/d-*
  env "$@" --http-listen "127.0.0.1:$(port)" --grpc-listen "127.0.0.1:$(port)" > "$TMP/log" 2>&1 &
  local pid=$! found=""
  for _ in $(seq 50); do
    for d in "$TMP"/d-*; do [ -f "$d/sonde.db" ] && found=$(basename "$d"); done
    [ -n "$found" ] && break
    sleep 0.1
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  echo "${found:-none}"
}

cat > "$TMP/server.yaml" <<YAML
data_dir: $TMP/d-file
log_level: debug
retention_spans: 1h
trace_join_delay: 0
YAML
[ "$(where_db "$SERVER" --config "$TMP/server.yaml")" = d-file ] || fail "data_dir from the file not used: $(cat "$TMP/log")"
[ "$(where_db SONDE_DATA_DIR="$TMP/d-env" "$SERVER" --config "$TMP/server.yaml")" = d-env ] ||
  fail "SONDE_DATA_DIR does not win over the file: $(cat "$TMP/log")"
[ "$(where_db SONDE_DATA_DIR="$TMP/d-env" "$SERVER" --config "$TMP/server.yaml" --data-dir "$TMP/d-flag")" = d-flag ] ||
  fail "--data-dir does not win over the environment"
grep -q "debug" "$TMP/log" || true

printf 'data_dirr: /tmp/x\n' > "$TMP/typo.yaml"
out=$("$SERVER" --config "$TMP/typo.yaml" 2>&1) && fail "unknown key accepted"
grep -q "data-dirr" <<<"$out" || fail "unknown key not named: $out"
printf 'data_dir: [\n' > "$TMP/syntax.yaml"
out=$("$SERVER" --config "$TMP/syntax.yaml" 2>&1) && fail "YAML syntax error accepted"
printf 'log_level: verbose\n' > "$TMP/level.yaml"
out=$("$SERVER" --config "$TMP/level.yaml" 2>&1) && fail "bad log_level in the file accepted"
grep -q "log-level" <<<"$out" || fail "bad log level not named: $out"
out=$(SONDE_LOG_LEVEL=loud "$SERVER" 2>&1) && fail "bad SONDE_LOG_LEVEL accepted"
out=$("$SERVER" --log-level loud 2>&1) && fail "bad --log-level accepted"
grep -q "log-level" <<<"$out" || fail "bad --log-level not named: $out"
out=$(SONDE_MAX_STREAMS=lots "$SERVER" 2>&1) && fail "bad SONDE_MAX_STREAMS accepted"
grep -q "max-streams" <<<"$out" || fail "bad SONDE_MAX_STREAMS not named: $out"
# Durations: the wrong one is named (was "bad retention duration" for any of three).
out=$(SONDE_RETENTION_SPANS=forever "$SERVER" --data-dir "$TMP/d1" 2>&1) && fail "bad SONDE_RETENTION_SPANS accepted"
grep -q "SONDE_RETENTION_SPANS" <<<"$out" && grep -q "'forever'" <<<"$out" || fail "bad retention_spans not named: $out"
printf 'retention_interval: 0s\n' > "$TMP/interval.yaml"
out=$("$SERVER" --config "$TMP/interval.yaml" --data-dir "$TMP/d2" 2>&1) && fail "retention_interval 0s accepted"
grep -q "retention_interval" <<<"$out" || fail "bad retention_interval not named: $out"
out=$("$SERVER" --retention-metrics week --data-dir "$TMP/d3" 2>&1) && fail "bad --retention-metrics accepted"
grep -q -- "--retention-metrics" <<<"$out" || fail "bad --retention-metrics not named: $out"

[ "$failures" -eq 0 ] || { echo "$failures failure(s)"; exit 1; }
echo "PASS"
