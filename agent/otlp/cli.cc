#include "agent/otlp/cli.h"

#include <chrono>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent/otlp/json_codec.h"

namespace sonde::otlp {
namespace {

std::string Hex(const uint8_t* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

// Prints application spans and OTLP metrics/logs as JSON lines.
class JsonLinesSink : public trace::SpanSink, public OtlpSink {
 public:
  void OnSpan(const trace::Span& s) override {
    nlohmann::json j = {{"type", "span"},
                        {"source", std::string(1, static_cast<char>(s.source))},
                        {"trace_id", Hex(s.trace_id.data(), s.trace_id.size())},
                        {"span_id", Hex(s.span_id.data(), s.span_id.size())},
                        {"parent_span_id", Hex(s.parent_span_id.data(), s.parent_span_id.size())},
                        {"kind", static_cast<int>(s.kind)},
                        {"name", s.name},
                        {"service", s.service_name},
                        {"endpoint", s.endpoint},
                        {"start_unix_ns", s.start_unix_ns},
                        {"end_unix_ns", s.end_unix_ns},
                        {"status", static_cast<int>(s.status)},
                        {"http_status", s.http_status},
                        {"pid", s.pid},
                        {"comm", s.comm},
                        {"container_id", s.container_id}};
    nlohmann::json attrs = nlohmann::json::object();
    for (const auto& a : s.attributes) {
      std::visit([&](const auto& v) { attrs[a.key] = v; }, a.value);
    }
    j["attributes"] = std::move(attrs);
    Print(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  void OnMetrics(std::shared_ptr<const ExportMetricsRequest> m) override {
    Print("{\"type\":\"otlp_metrics\",\"data\":" + PrintOtlpJson(*m) + "}");
  }
  void OnLogs(std::shared_ptr<const ExportLogsRequest> l) override {
    Print("{\"type\":\"otlp_logs\",\"data\":" + PrintOtlpJson(*l) + "}");
  }

 private:
  void Print(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::cout << line << '\n' << std::flush;
  }
  std::mutex mu_;
};

}  // namespace

void AddOtlpFlags(CLI::App& app, OtlpFlags& flags) {
  OtlpConfig& c = flags.config;
  app.add_option("--otlp-grpc-port", c.grpc_port, "OTLP/gRPC port (default 4317; -1 disables)");
  app.add_option("--otlp-http-port", c.http_port, "OTLP/HTTP port (default 4318; -1 disables)");
  app.add_option("--otlp-bind", flags.bind,
                 "Comma-separated listen addresses; 'default' = 127.0.0.1 + the primary IPv4 address");
  app.add_option("--otlp-token", c.bearer_token, "Require 'Authorization: Bearer <token>'");
  app.add_option("--otlp-token-file", flags.token_file, "Read the bearer token from this file");
  app.add_option("--otlp-tls-cert", c.tls.cert_file, "PEM certificate: OTLP receivers over TLS");
  app.add_option("--otlp-tls-key", c.tls.key_file, "PEM key of --otlp-tls-cert");
  app.add_option("--otlp-tls-client-ca", c.tls.client_ca_file,
                 "Require OTLP client certificates signed by this CA");
  app.add_option("--otlp-max-body-mib", flags.max_body_mib,
                 "Largest request after decompression, MiB (default 64): 413 / RESOURCE_EXHAUSTED");
  app.add_option("--otlp-max-inflight", c.ingest.max_inflight_requests,
                 "Concurrent exports before 503 / UNAVAILABLE (default 64)");
  app.add_option("--otlp-memory-soft-mib", flags.memory_soft_mib,
                 "OTLP memory limiter: past this many MiB of OTLP work held in the agent (bodies, queued spans) "
                 "new requests get 503 + Retry-After / RESOURCE_EXHAUSTED (default 256; 0: off)");
  app.add_option("--otlp-memory-hard-mib", flags.memory_hard_mib,
                 "Past this many MiB admitted OTLP items are dropped and counted (default: soft + 25 %)");
  app.add_option("--otlp-retry-after", c.ingest.retry_after_s, "Retry-After seconds on overload (default 1)");
  app.add_option("--otlp-http-threads", c.http_threads, "OTLP/HTTP worker threads per address (default 32)");
  app.add_flag("--otlp-trace-self", c.trace_self,
               "Also capture the receivers' own traffic as user requests (off by default)");
  app.add_flag("!--otlp-no-sender-lookup", c.ingest.resolve_sender,
               "Do not resolve the sending local process from the TCP connection");
}

absl::Status ResolveOtlpFlags(OtlpFlags& flags) {
  flags.config.bind = ParseBindList(flags.bind);
  if (flags.max_body_mib == 0 || flags.max_body_mib > 1024) {
    return absl::InvalidArgumentError("--otlp-max-body-mib must be within 1..1024");
  }
  flags.config.ingest.max_body_bytes = flags.max_body_mib << 20;
  if (flags.memory_hard_mib != 0 && flags.memory_hard_mib < flags.memory_soft_mib) {
    return absl::InvalidArgumentError("--otlp-memory-hard-mib (otlp.memory_hard_mib) must be at least "
                                      "--otlp-memory-soft-mib (otlp.memory_soft_mib)");
  }
  if (flags.memory_soft_mib > (1u << 20)) return absl::InvalidArgumentError("--otlp-memory-soft-mib is too large");
  if (flags.memory_soft_mib != 0 && flags.memory_soft_mib < flags.max_body_mib) {
    // A request as large as allowed would never fit under the limit: 503 forever.
    return absl::InvalidArgumentError("--otlp-memory-soft-mib (otlp.memory_soft_mib) must be 0 (off) or at least "
                                      "--otlp-max-body-mib (otlp.max_body_mib)");
  }
  auto& memory = flags.config.ingest.memory;
  memory.soft_bytes = flags.memory_soft_mib << 20;
  memory.hard_bytes = flags.memory_hard_mib != 0 ? flags.memory_hard_mib << 20 : memory.soft_bytes / 4 * 5;
  const auto& tls = flags.config.tls;
  if (tls.cert_file.empty() != tls.key_file.empty() || (!tls.client_ca_file.empty() && tls.cert_file.empty()))
    return absl::InvalidArgumentError("--otlp-tls-cert and --otlp-tls-key go together (and --otlp-tls-client-ca needs them)");
  if (!flags.token_file.empty()) {
    std::ifstream in(flags.token_file);
    if (!in) return absl::NotFoundError("cannot read --otlp-token-file " + flags.token_file);
    std::getline(in, flags.config.bearer_token);
  }
  return absl::OkStatus();
}

CLI::App* AddOtlpSubcommand(CLI::App& app, OtlpFlags& flags) {
  CLI::App* cmd = app.add_subcommand("otlp", "Run only the OTLP receivers; print what arrives as JSON lines");
  AddOtlpFlags(*cmd, flags);
  return cmd;
}

int RunOtlpSubcommand(OtlpFlags& flags, const std::atomic<bool>& stop) {
  if (absl::Status st = ResolveOtlpFlags(flags); !st.ok()) {
    spdlog::error("{}", std::string(st.message()));
    return 2;
  }
  JsonLinesSink sink;
  OtlpReceiver receiver(flags.config);
  receiver.AddSpanSink(&sink);
  receiver.AddOtlpSink(&sink);
  if (absl::Status st = receiver.Start(); !st.ok()) {
    spdlog::error("OTLP receivers failed to start: {}", std::string(st.message()));
    return 1;
  }
  std::string addresses;
  for (const auto& a : receiver.bind_addresses()) addresses += (addresses.empty() ? "" : ",") + a;
  spdlog::info("OTLP receivers on [{}]: gRPC {} HTTP {}", addresses, receiver.grpc_port(),
               receiver.http_port());
  while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  receiver.Stop();
  for (const IngestStats::Sample& s : receiver.stats().Samples()) {
    if (s.value == 0) continue;
    std::string line;
    metrics::prometheus::AppendSample(line, s.metric, s.labels, s.value);
    line.pop_back();  // the newline
    spdlog::info("{}", line);
  }
  return 0;
}

}  // namespace sonde::otlp
