#include "agent/otlp/ingestor.h"

#include "absl/strings/str_cat.h"
#include "agent/otlp/semconv.h"
#include "agent/otlp/span_convert.h"
#include "agent/otlp/trace_batch.h"
#include "google/protobuf/arena.h"

namespace sonde::otlp {
namespace {

using opentelemetry::proto::common::v1::KeyValue;
using opentelemetry::proto::resource::v1::Resource;

constexpr const char* kSignalNames[] = {"traces", "metrics", "logs"};
constexpr const char* kTransportNames[] = {"grpc", "http"};
constexpr const char* kReasonNames[] = {"bad_payload",     "too_large",
                                        "overloaded",      "unauthenticated",
                                        "unsupported_media_type", "memory_limit"};

bool HasAttribute(const Resource& r, std::string_view key) {
  for (const KeyValue& kv : r.attributes()) {
    if (kv.key() == key) return true;
  }
  return false;
}

void AddString(Resource* r, std::string_view key, std::string_view value) {
  if (value.empty() || HasAttribute(*r, key)) return;
  KeyValue* kv = r->add_attributes();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_string_value(std::string(value));
}

void AddInt(Resource* r, std::string_view key, int64_t value) {
  if (HasAttribute(*r, key)) return;
  KeyValue* kv = r->add_attributes();
  kv->set_key(std::string(key));
  kv->mutable_value()->set_int_value(value);
}

int64_t ResourcePid(const Resource& r) {
  for (const KeyValue& kv : r.attributes()) {
    if (kv.key() == "process.pid" && kv.value().has_int_value()) return kv.value().int_value();
  }
  return 0;
}

uint64_t CountDataPoints(const ExportMetricsRequest& request) {
  uint64_t n = 0;
  for (const auto& rm : request.resource_metrics()) {
    for (const auto& sm : rm.scope_metrics()) {
      for (const auto& m : sm.metrics()) {
        n += static_cast<uint64_t>(m.gauge().data_points_size() + m.sum().data_points_size() +
                                   m.histogram().data_points_size() +
                                   m.exponential_histogram().data_points_size() +
                                   m.summary().data_points_size());
      }
    }
  }
  return n;
}

}  // namespace

std::vector<IngestStats::Sample> IngestStats::Samples() const {
  std::vector<Sample> out;
  for (size_t t = 0; t < 2; ++t) {
    for (size_t s = 0; s < 3; ++s) {
      out.push_back({"sonde_otlp_requests_total",
                     {{"transport", kTransportNames[t]}, {"signal", kSignalNames[s]}},
                     requests_[t * 3 + s].load(kRelaxed)});
    }
  }
  for (size_t s = 0; s < 3; ++s) {
    out.push_back(
        {"sonde_otlp_items_accepted_total", {{"signal", kSignalNames[s]}}, accepted_[s].load(kRelaxed)});
  }
  for (size_t s = 0; s < 3; ++s) {
    out.push_back(
        {"sonde_otlp_items_rejected_total", {{"signal", kSignalNames[s]}}, rejected_[s].load(kRelaxed)});
  }
  for (size_t r = 0; r < static_cast<size_t>(RejectReason::kCount); ++r) {
    out.push_back(
        {"sonde_otlp_requests_rejected_total", {{"reason", kReasonNames[r]}}, rejects_[r].load(kRelaxed)});
  }
  for (size_t s = 0; s < 3; ++s) {
    out.push_back({"sonde_otlp_items_dropped_total",
                   {{"signal", kSignalNames[s]}, {"reason", "memory_limit"}},
                   dropped_[s].load(kRelaxed)});
  }
  return out;
}

void IngestStats::AppendPrometheus(std::string& out) const {
  auto help = [](std::string_view metric) -> std::string_view {
    if (metric == "sonde_otlp_requests_total") return "OTLP export requests, by transport and signal.";
    if (metric == "sonde_otlp_items_accepted_total") return "Spans, metric points and log records accepted.";
    if (metric == "sonde_otlp_items_rejected_total") return "Items rejected inside accepted exports.";
    if (metric == "sonde_otlp_items_dropped_total")
      return "Items of admitted exports dropped over the OTLP hard memory limit (the sender was told 503 / "
             "RESOURCE_EXHAUSTED).";
    return "OTLP export requests refused, by reason.";
  };
  std::string_view current;
  for (const Sample& s : Samples()) {
    if (s.metric != current) {
      metrics::prometheus::AppendMetricHeader(out, s.metric, "counter", help(s.metric));
      current = s.metric;
    }
    metrics::prometheus::AppendSample(out, s.metric, s.labels, s.value);
  }
  if (!held_bytes_) return;
  metrics::prometheus::AppendMetricHeader(out, "sonde_otlp_memory_held_bytes", "gauge",
                                          "Bytes of OTLP work held in the agent (bodies being decoded, queued spans).");
  metrics::prometheus::AppendSample(out, "sonde_otlp_memory_held_bytes", {}, held_bytes_());
  metrics::prometheus::AppendMetricHeader(out, "sonde_otlp_memory_limit_bytes", "gauge",
                                          "The OTLP memory limits: soft sheds new requests, hard drops (0: off).");
  metrics::prometheus::AppendSample(out, "sonde_otlp_memory_limit_bytes", {{"limit", "soft"}}, limits_.soft_bytes);
  metrics::prometheus::AppendSample(out, "sonde_otlp_memory_limit_bytes", {{"limit", "hard"}}, limits_.hard_bytes);
}

Ingestor::Ingestor(IngestOptions options, NodeInfo node)
    : options_(std::move(options)), limiter_(options_.memory), node_(std::move(node)) {
  stats_.SetMemoryGauges([this] { return limiter_.Held(inflight_bytes_.load(std::memory_order_relaxed)); },
                         limiter_.limits());
}

Ingestor::Ticket::~Ticket() {
  if (owner_ == nullptr) return;
  owner_->inflight_requests_.fetch_sub(1, std::memory_order_relaxed);
  owner_->inflight_bytes_.fetch_sub(bytes_, std::memory_order_relaxed);
}

bool Ingestor::Ticket::Grow(size_t more, RejectReason* why) {
  size_t now = owner_->inflight_bytes_.fetch_add(more, std::memory_order_relaxed) + more;
  bytes_ += more;
  if (now > owner_->options_.max_inflight_bytes) {
    if (why != nullptr) *why = RejectReason::kOverloaded;
    return false;
  }
  if (owner_->limiter_.Check(now) != MemoryLevel::kBelow) {
    if (why != nullptr) *why = RejectReason::kMemoryLimit;
    return false;
  }
  return true;
}

bool Ingestor::OverHardLimit() const {
  return limiter_.Check(inflight_bytes_.load(std::memory_order_relaxed)) == MemoryLevel::kHard;
}

std::optional<Ingestor::Ticket> Ingestor::Admit(size_t bytes, RejectReason* why) {
  RejectReason unused;
  if (why == nullptr) why = &unused;
  *why = RejectReason::kOverloaded;
  if (options_.backpressure && options_.backpressure()) {
    stats_.CountReject(RejectReason::kOverloaded);
    return std::nullopt;
  }
  // Soft memory limit: shed before the body is read.
  if (limiter_.Check(inflight_bytes_.load(std::memory_order_relaxed) + bytes) != MemoryLevel::kBelow) {
    *why = RejectReason::kMemoryLimit;
    stats_.CountReject(RejectReason::kMemoryLimit);
    return std::nullopt;
  }
  size_t requests = inflight_requests_.fetch_add(1, std::memory_order_relaxed) + 1;
  size_t total = inflight_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  Ticket ticket(this, bytes);  // releases both counters on every path below
  if (requests > options_.max_inflight_requests ||
      (total > options_.max_inflight_bytes && requests > 1)) {
    stats_.CountReject(RejectReason::kOverloaded);
    return std::nullopt;
  }
  return ticket;
}

std::optional<ProcessInfo> Ingestor::Sender(const PeerInfo& peer) {
  if (!options_.resolve_sender || peer.address.empty()) return std::nullopt;
  return resolver_.Resolve(peer.address, peer.port, peer.receiver_port);
}

void Ingestor::EnrichResource(Resource* resource, const std::optional<ProcessInfo>& sender) const {
  if (!options_.enrich_resource) return;
  for (const auto& [key, value] : node_.ResourceAttributes()) AddString(resource, key, value);
  if (!sender) return;
  // The SDK's own process.pid wins (it may be a container-namespace pid); the
  // host pid the agent's system spans use is added under its own name then.
  int64_t declared = ResourcePid(*resource);
  if (declared != 0 && declared != static_cast<int64_t>(sender->pid)) {
    AddInt(resource, "sonde.process.host_pid", sender->pid);
  }
  AddInt(resource, "process.pid", sender->pid);
  AddString(resource, "process.executable.name", sender->comm);
  AddString(resource, "process.command", sender->command);
  AddString(resource, "process.command_line", sender->command_line);
  AddString(resource, "container.id", sender->container_id);
}

bool Ingestor::ForwardsTraces() const {
  for (OtlpSink* sink : otlp_sinks_) {
    if (sink->WantsTraces()) return true;
  }
  return false;
}

namespace {
// Per-thread conversion state, reused across requests: no allocation per
// span once warm. Bounded: an unusually large batch does not pin its memory.
struct Scratch {
  TraceBatch batch;
  trace::Span span;
  ResourceContext resource;
};
Scratch& ThreadScratch() {
  thread_local Scratch scratch;
  return scratch;
}
void TrimScratch(Scratch& s) {
  constexpr size_t kKeepAttributes = 64u << 10, kKeepSpans = 8u << 10;
  if (s.batch.attributes.capacity() > kKeepAttributes) std::vector<AttributeView>().swap(s.batch.attributes);
  if (s.batch.spans.capacity() > kKeepSpans) std::vector<SpanView>().swap(s.batch.spans);
  s.batch.Clear();
}
}  // namespace

void Ingestor::DeliverSpans(const TraceBatch& batch, const std::optional<ProcessInfo>& sender,
                            ExportResult* result) {
  if (OverHardLimit()) {  // admitted under the soft limit, but the queues filled since
    stats_.CountDropped(Signal::kTraces, batch.spans.size());
    result->memory_limited = true;
    return;
  }
  Scratch& scratch = ThreadScratch();
  trace::Span& span = scratch.span;
  ResourceContext& ctx = scratch.resource;
  uint64_t accepted = 0;
  for (const ResourceView& rv : batch.resources) {
    MakeResourceContext(batch.attrs(rv.attr_begin), rv.attr_count, sender, &ctx);
    for (uint32_t i = rv.span_begin; i < rv.span_begin + rv.span_count; ++i) {
      const SpanView& in = batch.spans[i];
      if (absl::Status st = ConvertSpan(in, batch.attrs(in.attr_begin), ctx, &span); !st.ok()) {
        if (result->rejected++ == 0) result->error_message = std::string(st.message());
        continue;
      }
      ++accepted;
      for (trace::SpanSink* sink : span_sinks_) sink->OnSpan(span);
    }
  }
  stats_.CountItems(Signal::kTraces, accepted, static_cast<uint64_t>(result->rejected));
}

void Ingestor::ForwardTraces(const ExportTraceRequest& request, const std::optional<ProcessInfo>& sender) {
  auto copy = std::make_shared<ExportTraceRequest>(request);
  for (auto& rs : *copy->mutable_resource_spans()) {
    EnrichResource(rs.mutable_resource(), sender);
    for (auto& ss : *rs.mutable_scope_spans()) {
      for (auto& s : *ss.mutable_spans()) AddCurrentSemconvNames(s.mutable_attributes(), s.kind());
    }
  }
  for (OtlpSink* sink : otlp_sinks_) {
    if (sink->WantsTraces()) sink->OnTraces(copy);
  }
}

ExportResult Ingestor::ExportTraces(const ExportTraceRequest& request, const PeerInfo& peer) {
  stats_.CountRequest(peer.transport, Signal::kTraces);
  const std::optional<ProcessInfo> sender = Sender(peer);
  ExportResult result;
  Scratch& scratch = ThreadScratch();
  TraceBatchFromProto(request, &scratch.batch);
  DeliverSpans(scratch.batch, sender, &result);
  TrimScratch(scratch);
  if (ForwardsTraces() && !result.memory_limited) ForwardTraces(request, sender);
  return result;
}

absl::StatusOr<ExportResult> Ingestor::ExportTracesProtobuf(std::string_view body, const PeerInfo& peer) {
  if (!ForwardsTraces()) {
    Scratch& scratch = ThreadScratch();
    if (DecodeTraceBatchWire(body, &scratch.batch)) {
      stats_.CountRequest(peer.transport, Signal::kTraces);
      ExportResult result;
      DeliverSpans(scratch.batch, Sender(peer), &result);
      TrimScratch(scratch);
      return result;
    }
  }
  // Forwarding needs the message; a body the fast decoder was unsure about
  // gets protobuf's verdict.
  google::protobuf::Arena arena;
  auto* request = google::protobuf::Arena::CreateMessage<ExportTraceRequest>(&arena);
  if (absl::Status st = DecodeBody(body, BodyFormat::kProtobuf, request); !st.ok()) return st;
  return ExportTraces(*request, peer);
}

ExportResult Ingestor::ExportMetrics(std::shared_ptr<ExportMetricsRequest> request,
                                     const PeerInfo& peer) {
  stats_.CountRequest(peer.transport, Signal::kMetrics);
  if (otlp_sinks_.empty()) {
    // Nothing here keeps metrics (`sonde-agent run` ships traces): refuse them
    // in the response instead of accepting and dropping them.
    const auto points = static_cast<int64_t>(CountDataPoints(*request));
    stats_.CountItems(Signal::kMetrics, 0, static_cast<uint64_t>(points));
    return {points, std::string(kMetricsNotKept)};
  }
  if (OverHardLimit()) {
    stats_.CountDropped(Signal::kMetrics, CountDataPoints(*request));
    ExportResult dropped;
    dropped.memory_limited = true;
    return dropped;
  }
  const std::optional<ProcessInfo> sender = Sender(peer);
  for (auto& rm : *request->mutable_resource_metrics()) EnrichResource(rm.mutable_resource(), sender);
  stats_.CountItems(Signal::kMetrics, CountDataPoints(*request), 0);
  std::shared_ptr<const ExportMetricsRequest> shared = std::move(request);
  for (OtlpSink* sink : otlp_sinks_) sink->OnMetrics(shared);
  return {};
}

ExportResult Ingestor::ExportLogs(std::shared_ptr<ExportLogsRequest> request, const PeerInfo& peer) {
  stats_.CountRequest(peer.transport, Signal::kLogs);
  if (otlp_sinks_.empty()) {
    int64_t records = 0;
    for (const auto& rl : request->resource_logs())
      for (const auto& sl : rl.scope_logs()) records += sl.log_records_size();
    stats_.CountItems(Signal::kLogs, 0, static_cast<uint64_t>(records));
    return {records, std::string(kLogsNotKept)};
  }
  ExportResult result;
  if (OverHardLimit()) {
    uint64_t records = 0;
    for (const auto& rl : request->resource_logs())
      for (const auto& sl : rl.scope_logs()) records += static_cast<uint64_t>(sl.log_records_size());
    stats_.CountDropped(Signal::kLogs, records);
    result.memory_limited = true;
    return result;
  }
  const std::optional<ProcessInfo> sender = Sender(peer);
  uint64_t accepted = 0;
  for (auto& rl : *request->mutable_resource_logs()) {
    EnrichResource(rl.mutable_resource(), sender);
    for (auto& sl : *rl.mutable_scope_logs()) {
      for (auto& record : *sl.mutable_log_records()) {
        // A log's trace context must be a valid id or absent; a wrong length
        // cannot be joined to any trace, so it is dropped (the record is kept).
        if ((!record.trace_id().empty() && record.trace_id().size() != 16) ||
            (!record.span_id().empty() && record.span_id().size() != 8)) {
          record.clear_trace_id();
          record.clear_span_id();
          if (result.rejected == 0) result.error_message = "log record with a malformed trace/span id: trace context dropped";
        }
        AddCurrentSemconvNames(record.mutable_attributes(),
                               opentelemetry::proto::trace::v1::Span::SPAN_KIND_UNSPECIFIED);
        ++accepted;
      }
    }
  }
  stats_.CountItems(Signal::kLogs, accepted, 0);
  std::shared_ptr<const ExportLogsRequest> shared = std::move(request);
  for (OtlpSink* sink : otlp_sinks_) sink->OnLogs(shared);
  return result;
}

}  // namespace sonde::otlp
