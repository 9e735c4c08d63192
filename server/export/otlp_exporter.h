#pragma once
// OTLP export from sonde-server (--otlp-export URL): every stored batch's
// spans as traces and its RED/TCP windows as metrics (otlp_convert.h), to an
// OpenTelemetry Collector, Tempo, Jaeger, another OTLP receiver...
//   - http/protobuf (default): POST URL/v1/traces and URL/v1/metrics
//     (a URL already ending in /v1/traces is used as is for traces);
//   - grpc: the collector TraceService/MetricsService on URL's host:port,
//     TLS when the URL is https:// (CA from --otlp-ca /
//     OTEL_EXPORTER_OTLP_CERTIFICATE, else the system roots);
//   - headers (--otlp-header 'Name: value', OTEL_EXPORTER_OTLP_HEADERS
//     k=v,k2=v2) on every request;
//   - the standard variables fill what flags leave unset:
//     OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
//     OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_CERTIFICATE,
//     OTEL_EXPORTER_OTLP_TIMEOUT (ms).
// A bounded queue feeds one sender thread; retryable failures (network,
// HTTP 429/502/503/504, gRPC UNAVAILABLE/RESOURCE_EXHAUSTED/DEADLINE_EXCEEDED/
// ABORTED) are retried with exponential backoff, others and a full queue
// drop the request, counted on /metrics.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::server {

struct OtlpExportOptions {
  std::string endpoint;  // http(s)://host:port[/base]
  enum class Protocol { kHttpProtobuf, kGrpc } protocol = Protocol::kHttpProtobuf;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string ca_file;  // grpc over https://: PEM roots (empty: system roots)
  int timeout_ms = 10'000;
  size_t max_queue = 512;
  uint64_t initial_backoff_ms = 250;
  uint64_t max_backoff_ms = 30'000;
};

// Fills the unset fields of `options` from the OTEL_EXPORTER_OTLP_* variables
// (`getenv`: injectable for tests) and checks the result.
absl::Status ApplyOtlpEnvironment(OtlpExportOptions* options, const char* (*getenv)(const char*) = nullptr);

struct OtlpExportCounters {
  std::atomic<uint64_t> spans_sent{0};
  std::atomic<uint64_t> metric_points_sent{0};
  std::atomic<uint64_t> requests_sent{0};
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> dropped_requests{0};
};

class OtlpExporter {
 public:
  static absl::StatusOr<std::unique_ptr<OtlpExporter>> Create(OtlpExportOptions options);
  ~OtlpExporter();  // sends what is queued for up to 2 s, then stops

  void Export(const v1::Batch& batch, const std::string& host);
  bool Flush(std::chrono::milliseconds timeout);
  const OtlpExportCounters& counters() const { return counters_; }
  size_t queued() const;
  void AppendMetrics(std::string* out) const;

 private:
  struct Item {
    bool traces;
    std::string body;  // serialized Export*ServiceRequest
    uint64_t items;    // spans or data points
  };
  enum class Outcome { kSent, kRetry, kDrop };
  explicit OtlpExporter(OtlpExportOptions options);
  void Run();
  Outcome Send(const Item& item);
  Outcome SendHttp(const Item& item);
  Outcome SendGrpc(const Item& item);
  void Enqueue(Item item);

  OtlpExportOptions options_;
  std::string host_, traces_path_, metrics_path_;
  int port_ = 0;
  bool tls_ = false;
  struct Grpc;
  std::unique_ptr<Grpc> grpc_;
  OtlpExportCounters counters_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool in_flight_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sonde::server
