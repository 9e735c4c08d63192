#pragma once
// The agent's OTLP endpoint: one Ingestor behind a gRPC receiver (4317) and
// an HTTP receiver (4318). This is what the pipeline and main.cc use.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/otlp/grpc_receiver.h"
#include "agent/otlp/http_receiver.h"
#include "agent/otlp/ingestor.h"

namespace sonde::otlp {

struct OtlpConfig {
  int grpc_port = 4317;            // 0: any free port; -1: gRPC receiver off
  int http_port = 4318;            // 0: any free port; -1: HTTP receiver off
  std::vector<std::string> bind;   // empty: DefaultBindAddresses() (loopback + primary IPv4)
  std::string bearer_token;        // empty: no authentication
  net::TlsFiles tls;               // both receivers; empty cert: plaintext
  bool trace_self = false;         // capture the receivers' own traffic as user requests
  int http_threads = 32;
  IngestOptions ingest;
};

// What the capture filter must ignore so OTLP exports to the agent are not
// reported as user requests: connections with one of these local or remote
// ports on this node, and any socket of this pid (the agent). Empty when
// trace_self is set.
struct CaptureExclusion {
  uint32_t pid = 0;
  std::vector<uint16_t> ports;
};

class OtlpReceiver {
 public:
  explicit OtlpReceiver(OtlpConfig config);
  ~OtlpReceiver();

  // Register sinks before Start(); they are not owned and must outlive Stop().
  void AddSpanSink(trace::SpanSink* sink) { ingestor_.AddSpanSink(sink); }
  void AddOtlpSink(OtlpSink* sink) { ingestor_.AddOtlpSink(sink); }

  absl::Status Start();
  void Stop();

  int grpc_port() const { return grpc_ ? grpc_->port() : -1; }
  int http_port() const { return http_ ? http_->port() : -1; }
  const std::vector<std::string>& bind_addresses() const { return bind_; }
  CaptureExclusion capture_exclusion() const;
  IngestStats& stats() { return ingestor_.stats(); }
  // Queues fed by these receivers register their bytes here, before Start().
  MemoryLimiter& memory_limiter() { return ingestor_.memory_limiter(); }

 private:
  OtlpConfig config_;
  std::vector<std::string> bind_;
  Ingestor ingestor_;
  std::unique_ptr<GrpcReceiver> grpc_;
  std::unique_ptr<HttpReceiver> http_;
};

// Parses "a,b,c" into addresses ("" or "default" -> DefaultBindAddresses()).
std::vector<std::string> ParseBindList(const std::string& text);

}  // namespace sonde::otlp
