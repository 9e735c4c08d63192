#include "agent/core/config.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <set>

#include "absl/strings/str_cat.h"

namespace sonde::core {
namespace {

absl::Status CheckKeys(const YAML::Node& node, const std::string& where,
                       const std::set<std::string>& allowed) {
  if (!node.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": expected a mapping"));
  for (const auto& kv : node) {
    const auto key = kv.first.as<std::string>();
    if (!allowed.contains(key)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unknown key '", key, "'"));
    }
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status Read(const YAML::Node& parent, const char* key, const std::string& where, T& out) {
  const YAML::Node n = parent[key];
  if (!n) return absl::OkStatus();
  try {
    out = n.as<T>();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ".", key, ": ", e.what()));
  }
  return absl::OkStatus();
}

#define SONDE_RETURN_IF_ERROR(expr)   \
  do {                                \
    absl::Status _st = (expr);        \
    if (!_st.ok()) return _st;        \
  } while (0)

}  // namespace

absl::Status LoadYamlConfig(const std::string& path, AgentConfig& c) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config ", path, ": ", e.what()));
  }
  return LoadConfigTree(root, path, c);
}

absl::Status LoadConfigTree(const YAML::Node& root, const std::string& path, AgentConfig& c) {
  if (!root || root.IsNull()) return absl::OkStatus();
  // Component sections (network, otlp, profile) are read by their components.
  SONDE_RETURN_IF_ERROR(CheckKeys(root, path, {"log_level", "node_name", "capture", "server", "metrics", "network",
                                               "spans", "limits", "otlp", "profile", "services"}));
  SONDE_RETURN_IF_ERROR(Read(root, "log_level", path, c.log_level));
  SONDE_RETURN_IF_ERROR(Read(root, "node_name", path, c.node_name));
  if (const auto cap = root["capture"]) {
    const std::string w = path + ": capture";
    SONDE_RETURN_IF_ERROR(CheckKeys(cap, w,
                                    {"payload_bytes", "ringbuf_mb", "wakeup_fill_percent",
                                     "drain_interval_ms", "drain_nice", "background_nice", "background_idle", "include_pids", "exclude_pids",
                                     "include_ports", "exclude_ports", "include_cgroups",
                                     "exclude_cgroups", "tls", "workers"}));
    auto& k = c.capture;
    SONDE_RETURN_IF_ERROR(Read(cap, "payload_bytes", w, k.payload_bytes));
    SONDE_RETURN_IF_ERROR(Read(cap, "ringbuf_mb", w, k.ringbuf_mb));
    SONDE_RETURN_IF_ERROR(Read(cap, "wakeup_fill_percent", w, k.wakeup_fill_percent));
    SONDE_RETURN_IF_ERROR(Read(cap, "drain_interval_ms", w, k.drain_interval_ms));
    SONDE_RETURN_IF_ERROR(Read(cap, "drain_nice", w, k.drain_nice));
    SONDE_RETURN_IF_ERROR(Read(cap, "background_nice", w, k.background_nice));
    SONDE_RETURN_IF_ERROR(Read(cap, "background_idle", w, k.background_idle));
    SONDE_RETURN_IF_ERROR(Read(cap, "include_pids", w, k.include_pids));
    SONDE_RETURN_IF_ERROR(Read(cap, "exclude_pids", w, k.exclude_pids));
    SONDE_RETURN_IF_ERROR(Read(cap, "include_ports", w, k.include_ports));
    SONDE_RETURN_IF_ERROR(Read(cap, "exclude_ports", w, k.exclude_ports));
    SONDE_RETURN_IF_ERROR(Read(cap, "include_cgroups", w, k.include_cgroups));
    SONDE_RETURN_IF_ERROR(Read(cap, "exclude_cgroups", w, k.exclude_cgroups));
    SONDE_RETURN_IF_ERROR(Read(cap, "tls", w, k.tls));
    SONDE_RETURN_IF_ERROR(Read(cap, "workers", w, k.workers));
  }
  if (const auto srv = root["server"]) {
    const std::string w = path + ": server";
    SONDE_RETURN_IF_ERROR(
        CheckKeys(srv, w, {"address", "token", "token_file", "tls_ca", "tls_cert", "tls_key", "spool_dir",
                           "spool_max_mb"}));
    SONDE_RETURN_IF_ERROR(Read(srv, "address", w, c.server_address));
    SONDE_RETURN_IF_ERROR(Read(srv, "token", w, c.server_token));
    SONDE_RETURN_IF_ERROR(Read(srv, "token_file", w, c.server_token_file));
    SONDE_RETURN_IF_ERROR(Read(srv, "tls_ca", w, c.server_tls_ca));
    SONDE_RETURN_IF_ERROR(Read(srv, "tls_cert", w, c.server_tls_cert));
    SONDE_RETURN_IF_ERROR(Read(srv, "tls_key", w, c.server_tls_key));
    SONDE_RETURN_IF_ERROR(Read(srv, "spool_dir", w, c.server_spool_dir));
    SONDE_RETURN_IF_ERROR(Read(srv, "spool_max_mb", w, c.server_spool_max_mb));
  }
  if (const auto sp = root["spans"]) {
    const std::string w = path + ": spans";
    SONDE_RETURN_IF_ERROR(CheckKeys(sp, w, {"rate_limit", "min_per_service", "slow_ms", "honour_parent_flag", "join_exchanges", "redact_headers",
                                            "redact_query_params"}));
    SONDE_RETURN_IF_ERROR(Read(sp, "redact_headers", w, c.spans.redact_headers));
    SONDE_RETURN_IF_ERROR(Read(sp, "redact_query_params", w, c.spans.redact_query_params));
    SONDE_RETURN_IF_ERROR(Read(sp, "rate_limit", w, c.spans.rate_limit));
    SONDE_RETURN_IF_ERROR(Read(sp, "min_per_service", w, c.spans.min_per_service));
    SONDE_RETURN_IF_ERROR(Read(sp, "slow_ms", w, c.spans.slow_ms));
    SONDE_RETURN_IF_ERROR(Read(sp, "honour_parent_flag", w, c.spans.honour_parent_flag));
    SONDE_RETURN_IF_ERROR(Read(sp, "join_exchanges", w, c.spans.join_exchanges));
  }
  if (const auto l = root["limits"]) {
    const std::string w = path + ": limits";
    SONDE_RETURN_IF_ERROR(CheckKeys(l, w, {"memory_mb"}));
    SONDE_RETURN_IF_ERROR(Read(l, "memory_mb", w, c.memory_limit_mb));
  }
  if (const auto m = root["metrics"]) {
    const std::string w = path + ": metrics";
    SONDE_RETURN_IF_ERROR(CheckKeys(m, w, {"listen", "tls_cert", "tls_key", "tls_client_ca"}));
    SONDE_RETURN_IF_ERROR(Read(m, "listen", w, c.metrics_listen));
    SONDE_RETURN_IF_ERROR(Read(m, "tls_cert", w, c.metrics_tls_cert));
    SONDE_RETURN_IF_ERROR(Read(m, "tls_key", w, c.metrics_tls_key));
    SONDE_RETURN_IF_ERROR(Read(m, "tls_client_ca", w, c.metrics_tls_client_ca));
  }
  return absl::OkStatus();
}

bool IsLogLevel(const std::string& level) {
  for (const char* l : {"trace", "debug", "info", "warn", "error", "critical", "off"}) {
    if (level == l) return true;
  }
  return false;
}

absl::Status ValidateConfig(const AgentConfig& c) {
  if (!IsLogLevel(c.log_level)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "log_level must be one of trace, debug, info, warn, error, critical, off; got '", c.log_level, "'"));
  }
  const auto& k = c.capture;
  if (k.payload_bytes == 0 || k.payload_bytes > 16384) {
    return absl::InvalidArgumentError(
        absl::StrCat("capture.payload_bytes must be 1..16384, got ", k.payload_bytes));
  }
  if (k.ringbuf_mb == 0 || (k.ringbuf_mb & (k.ringbuf_mb - 1)) != 0 || k.ringbuf_mb > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("capture.ringbuf_mb must be a power of two in 1..1024, got ", k.ringbuf_mb));
  }
  if (k.wakeup_fill_percent == 0 || k.wakeup_fill_percent > 100) {
    return absl::InvalidArgumentError("capture.wakeup_fill_percent must be 1..100");
  }
  if (k.drain_interval_ms == 0 || k.drain_interval_ms > 1000) {
    return absl::InvalidArgumentError("capture.drain_interval_ms must be 1..1000");
  }
  if (k.drain_nice < -20 || k.drain_nice > 19) {
    return absl::InvalidArgumentError(absl::StrCat("capture.drain_nice must be -20..19, got ", k.drain_nice));
  }
  if (k.background_nice < -20 || k.background_nice > 19 || k.background_nice < k.drain_nice) {
    return absl::InvalidArgumentError(absl::StrCat("capture.background_nice must be capture.drain_nice (",
                                                   k.drain_nice, ")..19, got ", k.background_nice));
  }
  if (!(c.spans.min_per_service >= 0) || c.spans.min_per_service > 1e6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spans.min_per_service must be 0 (no floor) .. 1000000 spans/s, got ", c.spans.min_per_service));
  }
  if (!(c.spans.rate_limit >= 0) || c.spans.rate_limit > 1e7) {
    return absl::InvalidArgumentError(
        absl::StrCat("spans.rate_limit must be 0 (every span) .. 10000000 spans/s, got ", c.spans.rate_limit));
  }
  if (!k.include_pids.empty() && !k.exclude_pids.empty()) {
    for (auto p : k.include_pids)
      for (auto q : k.exclude_pids)
        if (p == q) return absl::InvalidArgumentError(absl::StrCat("pid ", p, " both included and excluded"));
  }
  if (c.capture.workers < 1 || c.capture.workers > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("capture.workers must be between 1 and 64, got ", c.capture.workers));
  }
  if (c.memory_limit_mb != 0 && c.memory_limit_mb < 64) {
    // Below the agent's fixed footprint (ring buffer, BPF maps, libraries): it would shed forever.
    return absl::InvalidArgumentError(
        absl::StrCat("limits.memory_mb must be 0 (no ceiling) or at least 64 MiB, got ", c.memory_limit_mb));
  }
  if (c.metrics_tls_cert.empty() != c.metrics_tls_key.empty() ||
      (!c.metrics_tls_client_ca.empty() && c.metrics_tls_cert.empty())) {
    return absl::InvalidArgumentError(
        "metrics.tls_cert and metrics.tls_key (--metrics-tls-cert, --metrics-tls-key) go together, and "
        "metrics.tls_client_ca needs them");
  }
  return absl::OkStatus();
}

void AddCaptureFlags(CLI::App& app, AgentConfig& c) {
  auto& k = c.capture;
  app.add_option("--payload-bytes", k.payload_bytes, "Payload prefix captured per syscall (1..16384)")
      ->capture_default_str();
  app.add_option("--ringbuf-mb", k.ringbuf_mb,
                 "Ring buffers of all CPUs together in MiB (power of two; each CPU >= 4 MiB or this)")
      ->capture_default_str();
  app.add_option("--wakeup-fill-percent", k.wakeup_fill_percent,
                 "Kernel wakes the reader only past this ring-buffer fill level")
      ->capture_default_str();
  app.add_option("--drain-interval-ms", k.drain_interval_ms, "Periodic ring-buffer drain interval")
      ->capture_default_str();
  app.add_option("--drain-nice", k.drain_nice,
                 "Nice value of the agent once its ring-buffer drain falls behind (-20..19, 0: unchanged)")
      ->capture_default_str();
  app.add_option("--background-nice", k.background_nice,
                 "Nice value of the agent while its drain keeps up (drain-nice..19; = drain-nice: fixed)")
      ->capture_default_str();
  app.add_flag("--background-idle,!--no-background-idle", k.background_idle,
               "While its drain keeps up the agent is also SCHED_IDLE: only CPUs nothing else wants (default off)");
  app.add_option("--pid", k.include_pids, "Trace only these pids (repeatable)");
  app.add_option("--exclude-pid", k.exclude_pids, "Never trace these pids (repeatable)");
  app.add_option("--port", k.include_ports, "Trace only sockets with these local/remote ports");
  app.add_option("--exclude-port", k.exclude_ports, "Never trace sockets with these ports");
  app.add_option("--cgroup", k.include_cgroups, "Trace only these cgroup v2 ids");
  app.add_option("--exclude-cgroup", k.exclude_cgroups, "Never trace these cgroup v2 ids");
  app.add_flag("--tls,!--no-tls", k.tls, "TLS plaintext through uprobes on OpenSSL (default on)");
  app.add_option("--workers", k.workers,
                 "Threads that track connections, parse and build spans (sharded by socket); "
                 "more than 1 when one core cannot keep up with the node's traffic")
      ->capture_default_str();
  app.add_option("--memory-limit-mb", c.memory_limit_mb,
                 "Resident memory ceiling (MiB, 0: none): past it idle connections, then payload "
                 "buffering are shed (RED keeps counting)")
      ->capture_default_str();
}

void AddMetricsTlsFlags(CLI::App& app, AgentConfig& config) {
  app.add_option("--metrics-tls-cert", config.metrics_tls_cert, "PEM certificate: serve /metrics over HTTPS");
  app.add_option("--metrics-tls-key", config.metrics_tls_key, "PEM key of --metrics-tls-cert");
  app.add_option("--metrics-tls-client-ca", config.metrics_tls_client_ca,
                 "Require /metrics scrapers to present a client certificate signed by this CA");
}

void AddSpanFlags(CLI::App& app, AgentConfig& config) {
  auto& sp = config.spans;
  app.add_option("--span-rate-limit", sp.rate_limit,
                 "Spans shipped per second by budget, decided per trace (0: every span); "
                 "errors, slow and parent-sampled traces are always shipped, RED counts everything")
      ->capture_default_str();
  app.add_option("--span-min-per-service", sp.min_per_service,
                 "Spans/s every service keeps past a budget spent by busier services, so a quiet service "
                 "next to a busy one still ships traces (0: none)")
      ->capture_default_str();
  app.add_option("--span-slow-ms", sp.slow_ms, "Spans at least this long are always shipped")
      ->capture_default_str();
  app.add_flag("!--ignore-parent-sampled", sp.honour_parent_flag,
               "Decide by budget even when an incoming traceparent/b3 carries a sampled flag");
  app.add_flag("--join-exchanges,!--no-join-exchanges", sp.join_exchanges,
               "A server span joins the trace of its client span seen on this node (request TCP sequence or "
               "nested times): one trace per request across processes without headers")
      ->capture_default_str();
  app.add_option("--redact-header", sp.redact_headers,
                 "Also redact this header's value (repeatable; Authorization, Cookie, API keys always are)");
  app.add_option("--redact-query-param", sp.redact_query_params,
                 "Also scrub this query-string parameter's value (repeatable; token, apikey, password... always are)");
}

}  // namespace sonde::core
