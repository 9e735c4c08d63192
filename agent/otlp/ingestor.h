#pragma once
// Transport-independent OTLP ingestion: admission control (overload), sender
// resolution, enrichment, conversion to the agent span model, delivery to
// sinks, counters. The gRPC and HTTP receivers are thin adapters over it.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/metrics/prometheus_text.h"
#include "agent/otlp/body_codec.h"
#include "agent/otlp/memory_limiter.h"
#include "agent/otlp/node_info.h"
#include "agent/otlp/process_resolver.h"
#include "agent/otlp/sink.h"
#include "agent/otlp/trace_batch.h"
#include "agent/trace/span.h"

namespace sonde::otlp {

enum class Signal : uint8_t { kTraces = 0, kMetrics = 1, kLogs = 2 };
enum class Transport : uint8_t { kGrpc = 0, kHttp = 1 };

// Why a request was refused (each has a counter).
enum class RejectReason : uint8_t {
  kBadPayload = 0,        // 400 / INVALID_ARGUMENT
  kTooLarge = 1,          // 413 / RESOURCE_EXHAUSTED
  kOverloaded = 2,        // 503 / UNAVAILABLE
  kUnauthenticated = 3,   // 401 / UNAUTHENTICATED
  kUnsupportedMedia = 4,  // 415
  kMemoryLimit = 5,       // 503 + Retry-After / RESOURCE_EXHAUSTED + RetryInfo (memory_limiter.h)
  kCount = 6,
};

struct IngestOptions {
  size_t max_body_bytes = kDefaultMaxBodyBytes;  // after decompression
  size_t max_inflight_requests = 64;             // concurrent exports being processed
  size_t max_inflight_bytes = 256u << 20;        // their decoded body bytes
  int retry_after_s = 1;                         // Retry-After / RetryInfo on overload
  bool resolve_sender = true;                    // local pid owning the client socket
  bool enrich_resource = true;                   // node + sender attributes on forwarded OTLP
  // Downstream pressure (e.g. the export queue is full): true turns new
  // requests into 503 / UNAVAILABLE instead of queueing without bound.
  std::function<bool()> backpressure;
  // Bytes of OTLP work held in the agent: soft sheds new requests, hard drops.
  MemoryLimits memory;
};

// Who sent a request.
struct PeerInfo {
  std::string address;         // client IP text
  uint16_t port = 0;           // client port
  uint16_t receiver_port = 0;  // our listening port it connected to
  Transport transport = Transport::kHttp;
};

// Outcome of an accepted export: items rejected inside it (partial success).
// Partial-success messages when no sink keeps a signal (every item rejected).
inline constexpr std::string_view kMetricsNotKept =
    "sonde-agent keeps OTLP traces only: metrics are not stored; export them to a metrics backend";
inline constexpr std::string_view kLogsNotKept =
    "sonde-agent keeps OTLP traces only: logs are not stored; export them to a logs backend";

struct ExportResult {
  int64_t rejected = 0;
  std::string error_message;
  // Over the hard memory limit: nothing was delivered (the items are counted
  // as dropped); answer 503 + Retry-After / RESOURCE_EXHAUSTED + RetryInfo.
  bool memory_limited = false;
};

// What a memory-limited request is told.
inline constexpr std::string_view kMemoryLimitMessage =
    "sonde-agent OTLP memory limit reached, retry later";

class IngestStats {
 public:
  void CountRequest(Transport t, Signal s) { requests_[Index(t, s)].fetch_add(1, kRelaxed); }
  void CountReject(RejectReason r) { rejects_[static_cast<size_t>(r)].fetch_add(1, kRelaxed); }
  void CountDropped(Signal s, uint64_t items) { dropped_[static_cast<size_t>(s)].fetch_add(items, kRelaxed); }
  void CountItems(Signal s, uint64_t accepted, uint64_t rejected) {
    accepted_[static_cast<size_t>(s)].fetch_add(accepted, kRelaxed);
    rejected_[static_cast<size_t>(s)].fetch_add(rejected, kRelaxed);
  }
  uint64_t requests(Transport t, Signal s) const { return requests_[Index(t, s)].load(kRelaxed); }
  uint64_t rejects(RejectReason r) const { return rejects_[static_cast<size_t>(r)].load(kRelaxed); }
  uint64_t accepted(Signal s) const { return accepted_[static_cast<size_t>(s)].load(kRelaxed); }
  uint64_t rejected(Signal s) const { return rejected_[static_cast<size_t>(s)].load(kRelaxed); }
  uint64_t dropped(Signal s) const { return dropped_[static_cast<size_t>(s)].load(kRelaxed); }
  // The memory limiter's figures on /metrics (set by the Ingestor).
  void SetMemoryGauges(std::function<uint64_t()> held, MemoryLimits limits) {
    held_bytes_ = std::move(held);
    limits_ = limits;
  }

  struct Sample {
    std::string_view metric;
    metrics::prometheus::Labels labels;
    uint64_t value;
  };
  // Every counter, the samples of one metric together.
  std::vector<Sample> Samples() const;
  // Samples() in Prometheus text, a HELP/TYPE header per metric.
  void AppendPrometheus(std::string& out) const;

 private:
  static constexpr auto kRelaxed = std::memory_order_relaxed;
  static size_t Index(Transport t, Signal s) { return static_cast<size_t>(t) * 3 + static_cast<size_t>(s); }
  std::atomic<uint64_t> requests_[6]{};
  std::atomic<uint64_t> rejects_[static_cast<size_t>(RejectReason::kCount)]{};
  std::atomic<uint64_t> accepted_[3]{};
  std::atomic<uint64_t> rejected_[3]{};
  std::atomic<uint64_t> dropped_[3]{};  // over the hard memory limit
  std::function<uint64_t()> held_bytes_;
  MemoryLimits limits_;
};

class Ingestor {
 public:
  explicit Ingestor(IngestOptions options, NodeInfo node = ReadNodeInfo());

  // Sinks are registered before the receivers start; not owned.
  void AddSpanSink(trace::SpanSink* sink) { span_sinks_.push_back(sink); }
  void AddOtlpSink(OtlpSink* sink) { otlp_sinks_.push_back(sink); }

  // An admission slot for one request of `bytes` decoded bytes; releases on
  // destruction. nullopt (counted, reason in `*why`): kOverloaded -> 503 /
  // UNAVAILABLE; kMemoryLimit (over the soft limit) -> 503 / RESOURCE_EXHAUSTED,
  // both with Retry-After.
  class Ticket {
   public:
    Ticket(Ingestor* owner, size_t bytes) : owner_(owner), bytes_(bytes) {}
    Ticket(Ticket&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)), bytes_(other.bytes_) {}
    Ticket& operator=(Ticket&&) = delete;
    ~Ticket();
    // Accounts for bytes learnt after admission (chunked / compressed bodies).
    // false when they take the request over a limit (reason in `*why`, not counted).
    bool Grow(size_t more, RejectReason* why = nullptr);

   private:
    Ingestor* owner_;
    size_t bytes_;
  };
  std::optional<Ticket> Admit(size_t bytes, RejectReason* why = nullptr);
  // Would Admit(bytes) refuse now, and why? (Nothing counted or taken.)
  std::optional<RejectReason> WouldShed(size_t bytes) const {
    if ((options_.backpressure && options_.backpressure()) ||
        inflight_requests_.load(std::memory_order_relaxed) >= options_.max_inflight_requests)
      return RejectReason::kOverloaded;
    if (limiter_.Check(inflight_bytes_.load(std::memory_order_relaxed) + bytes) != MemoryLevel::kBelow)
      return RejectReason::kMemoryLimit;
    return std::nullopt;
  }

  ExportResult ExportTraces(const ExportTraceRequest& request, const PeerInfo& peer);
  // A binary (protobuf) request body. Without OTLP sinks wanting traces, the
  // spans are converted straight from the wire bytes (no protobuf messages
  // built); otherwise, or when the fast decoder is unsure, protobuf parses.
  // kInvalidArgument (nothing delivered) when the body is malformed.
  absl::StatusOr<ExportResult> ExportTracesProtobuf(std::string_view body, const PeerInfo& peer);
  ExportResult ExportMetrics(std::shared_ptr<ExportMetricsRequest> request, const PeerInfo& peer);
  ExportResult ExportLogs(std::shared_ptr<ExportLogsRequest> request, const PeerInfo& peer);

  IngestStats& stats() { return stats_; }
  const IngestOptions& options() const { return options_; }
  const NodeInfo& node() const { return node_; }
  // Queues downstream register their bytes here before the receivers start.
  MemoryLimiter& memory_limiter() { return limiter_; }

 private:
  std::optional<ProcessInfo> Sender(const PeerInfo& peer);
  bool ForwardsTraces() const;
  void DeliverSpans(const TraceBatch& batch, const std::optional<ProcessInfo>& sender,
                    ExportResult* result);
  void ForwardTraces(const ExportTraceRequest& request, const std::optional<ProcessInfo>& sender);
  void EnrichResource(opentelemetry::proto::resource::v1::Resource* resource,
                      const std::optional<ProcessInfo>& sender) const;

  // Over the hard limit now (with what the receivers hold)?
  bool OverHardLimit() const;

  IngestOptions options_;
  MemoryLimiter limiter_;
  NodeInfo node_;
  ProcessResolver resolver_;
  std::vector<trace::SpanSink*> span_sinks_;
  std::vector<OtlpSink*> otlp_sinks_;
  IngestStats stats_;
  std::atomic<size_t> inflight_requests_{0};
  std::atomic<size_t> inflight_bytes_{0};
};

}  // namespace sonde::otlp
