#pragma once
// Agent configuration: defaults here, overridden by a YAML file (--config),
// overridden by command-line flags. docs/configuration.md lists every key.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace CLI {
class App;
}
namespace YAML {
class Node;
}

namespace sonde::core {

struct CaptureConfig {
  uint32_t payload_bytes = 4096;     // payload prefix captured per syscall (max 16384)
  uint32_t ringbuf_mb = 16;          // all CPUs' ring buffers together, power of two (per CPU: >= 4 MiB)
  uint32_t wakeup_fill_percent = 25; // kernel wakes the reader only past this fill level
  uint32_t drain_interval_ms = 20;   // periodic drain of the ring buffer
  // Nice value of the agent's threads while the ring-buffer drain keeps up:
  // in the background, the agent does not delay the workload it observes
  // (bench/overhead: 0.69 of nginx's throughput at 19, 0.52 at a fixed -5). Equal to
  // drain_nice: one fixed priority.
  int32_t background_nice = 19;
  // In the background the threads are also SCHED_IDLE: they run only on a
  // CPU nothing else wants, and any workload thread waking up takes it back
  // at once. Off by default: `run --no-json` gained ~6 % (11 of 13
  // alternated pairs ahead), but with export to a server on the node the
  // starved drain fell behind 3-4 times as often (each catch-up puts it
  // ahead of the workload for >= 250 ms) and the ratio did not improve.
  bool background_idle = false;
  // Nice value once the drain falls behind (half the ring buffer waiting), until
  // it has caught up for a while. A drain behind the kernel loses events: under CPU contention a
  // default-priority drain lost ~25% of them (bench/conn_scale, two busy
  // loops on two cores), -5 none. Moving between the two needs CAP_SYS_NICE
  // (without it the agent keeps its priority). 0: leave it as started.
  int32_t drain_nice = -5;
  bool tls = true;                   // TLS plaintext through uprobes on OpenSSL (docs/tls.md)
  // Threads that track connections, parse and build spans (agent/pipeline/capture_shards.h).
  uint32_t workers = 1;
  std::vector<uint32_t> include_pids, exclude_pids;
  std::vector<uint16_t> include_ports, exclude_ports;
  std::vector<uint64_t> include_cgroups, exclude_cgroups;
};

// Span budget (agent/trace/sampler.h). RED counts every request regardless.
struct SpanConfig {
  double rate_limit = 500;      // spans/s shipped by budget; 0: every span (docs/configuration.md: why 500)
  double min_per_service = 10;  // spans/s each service keeps past a budget spent by busier ones; 0: none
  uint32_t slow_ms = 500;       // spans at least this long are always shipped
  bool honour_parent_flag = true;  // incoming traceparent/b3 sampled flag decides when present
  // Server spans join the trace of their client span seen on this node
  // (trace/exchange_joiner.h: request TCP sequence or nested times).
  bool join_exchanges = true;
  // Redacted in every span source (S, N, A) and the request log, on top of
  // the defaults (agent/trace/redaction.h): header names, and query-string
  // parameter names whose values are scrubbed.
  std::vector<std::string> redact_headers;
  std::vector<std::string> redact_query_params;
};

struct AgentConfig {
  std::string log_level = "info";
  std::string node_name;  // default: hostname
  CaptureConfig capture;
  std::string server_address;  // host:port of sonde-server ingest; empty: JSON lines to stdout
  std::string server_token;
  std::string server_token_file;  // read at start (not visible in ps); overrides server_token
  std::string server_tls_ca;      // PEM CA to verify the server: ingest over TLS
  std::string server_tls_cert;    // PEM client certificate (server --tls-client-ca)
  std::string server_tls_key;
  std::string server_spool_dir;     // exporter's on-disk queue; empty: memory only
  uint32_t server_spool_max_mb = 256;
  std::string metrics_listen = "0.0.0.0:9464";  // Prometheus /metrics and /healthz
  std::string metrics_tls_cert;       // PEM certificate: /metrics over HTTPS; empty: plain HTTP
  std::string metrics_tls_key;        // PEM key of metrics_tls_cert
  std::string metrics_tls_client_ca;  // non-empty: scrapers must present a certificate it signed
  SpanConfig spans;
  // Hard ceiling on the agent's resident memory (MiB, 0: none). Past it the
  // connection tracker sheds idle connections, then payload buffering;
  // RED keeps counting (docs/configuration.md).
  uint32_t memory_limit_mb = 768;
};

// Loads `path` into `config`, keeping defaults for absent keys. Unknown keys
// and wrong types are errors that name the key.
absl::Status LoadYamlConfig(const std::string& path, AgentConfig& config);

// The same over an already parsed tree (a file merged with environment
// overrides, agent/core/config_env.h); `where` prefixes error messages.
absl::Status LoadConfigTree(const YAML::Node& root, const std::string& where, AgentConfig& config);

// trace, debug, info, warn, error, critical, off.
bool IsLogLevel(const std::string& level);

// Checks ranges and combinations; the message names the offending setting.
absl::Status ValidateConfig(const AgentConfig& config);

// Flags shared by every subcommand that captures (bound to `config` fields).
void AddCaptureFlags(CLI::App& app, AgentConfig& config);
// Span budget flags of `run`.
void AddSpanFlags(CLI::App& app, AgentConfig& config);
// --metrics-tls-cert, --metrics-tls-key, --metrics-tls-client-ca of `run`.
void AddMetricsTlsFlags(CLI::App& app, AgentConfig& config);

}  // namespace sonde::core
