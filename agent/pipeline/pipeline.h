#pragma once
// The agent pipeline: EventSource -> ConnectionTracker -> protocol sessions
// -> SpanBuilder (deferred) -> GatewayLinker -> ExchangeJoiner (a server
// span joins its client span's trace when both ends are on this node) -> RED (every span) -> sampler
// (span budget, per trace) -> redaction + span completion -> span sinks (JSON
// lines and whatever components add: exporter...). Spans left out by the
// sampler are counted in RED and never completed, serialised or shipped.
//
// Modular on purpose: other components plug in as SpanSinks (receive every
// finished span) or Components (started with the agent, ticked, stopped),
// and can add Prometheus collectors through metrics_server().
#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/capture/event_source.h"
#include "agent/conn/tracker.h"
#include "agent/core/clock.h"
#include "agent/metrics/red.h"
#include "agent/metrics/server.h"
#include "agent/pipeline/capture_shards.h"
#include "agent/pipeline/signal_sinks.h"
#include "agent/trace/exchange_joiner.h"
#include "agent/trace/linker.h"
#include "agent/trace/redaction.h"
#include "agent/trace/sampler.h"
#include "agent/trace/span_builder.h"

namespace sonde::pipeline {

struct PipelineOptions {
  conn::TrackerOptions tracker;
  trace::LinkerOptions linker;
  trace::JoinerOptions joiner;
  metrics::RedOptions red;
  trace::SamplerOptions sampler;
  std::vector<std::string> redact_headers = trace::DefaultSensitiveHeaders();
  std::vector<std::string> redact_query_params = trace::DefaultSensitiveQueryParams();
  // OTEL_RESOURCE_ATTRIBUTES (core/otel_resource.h): added to every shipped
  // span that does not carry the key already.
  std::vector<std::pair<std::string, std::string>> resource_attributes;
  bool print_json = true;          // JSON lines of spans (when no server is configured)
  std::FILE* json_out = stdout;    // not owned
  bool json_line_buffered = true;
  std::string metrics_listen;      // "host:port" for /metrics and /healthz; empty: none
  // Service names (trace/service_namer.h); null: the process name.
  std::shared_ptr<trace::ServiceNamer> service_namer;
  // Connection tracking, parsing and span building on this many threads
  // (capture_shards.h); 1: all on the pipeline thread.
  size_t workers = 1;
  int poll_timeout_ms = 100;
  uint64_t tick_interval_ns = 100'000'000;
  // Recordings: a fixed monotonic->realtime offset and event time as "now".
  std::optional<uint64_t> clock_offset_ns;
  bool event_time = false;
};

// Something that lives as long as the pipeline (exporter, receiver, ...).
class Agent;
class Component {
 public:
  virtual ~Component() = default;
  virtual absl::Status Start(Agent& /*agent*/) { return absl::OkStatus(); }
  virtual void Tick(uint64_t /*now_unix_ns*/) {}
  virtual void Stop() {}
};

struct AgentCounters {
  conn::TrackerCounters tracker;
  trace::LinkerCounters linker;
  trace::JoinerCounters joiner;
  uint64_t join_held_groups = 0;
  uint64_t linker_pending = 0;  // egress spans waiting for their ingress
  trace::SamplerCounters sampler;
  capture::SourceCounters source;
  uint64_t spans = 0;
  uint64_t open_connections = 0;
  uint64_t buffered_bytes = 0;
};

class Agent {
 public:
  explicit Agent(PipelineOptions options);
  ~Agent();

  // Consumers, one interface per signal (signal_sinks.h); register before Start.
  void AddSink(std::shared_ptr<trace::SpanSink> sink);
  void AddMetricSink(std::shared_ptr<MetricSink> sink);
  void AddProfileSink(std::shared_ptr<ProfileSink> sink);
  void AddComponent(std::unique_ptr<Component> component);
  bool has_profile_sinks() const { return !profile_sinks_.empty(); }

  // Starts the metrics server (if configured) and the components.
  absl::Status Start();
  // Polls `source` until `stop` or the end of a recording, then flushes.
  absl::Status Run(capture::EventSource& source, std::atomic<bool>& stop);
  void Stop();

  // Individual steps, for tests and benchmarks.
  void OnEvent(capture::RawEvent ev);
  void Tick(uint64_t now_monotonic_ns);
  void Finish();  // closes every connection and releases held spans
  // Spans produced elsewhere (OTLP app spans, complete network spans) take
  // the same chain: RED (S/N only), sampler (app spans were sampled by the
  // app: always kept), redaction, sinks.
  void EmitSpan(trace::Span&& span);
  // A record reconstructed elsewhere (network spans from packets: source N)
  // takes the same path as syscall records after linking: span building, RED,
  // sampling, redaction and completion, the sinks.
  void EmitRecord(conn::ConnRecord&& record, trace::SpanSource source);
  // Other signals' producers (any thread: see signal_sinks.h).
  void EmitTcpWindow(const tcp::TcpWindow& window);
  void EmitProfile(const v1::ProfileBatch& batch);

  core::MonotonicToRealtime& clock() { return clock_; }
  metrics::RedAggregator& red() { return *red_; }
  metrics::MetricsServer& metrics_server() { return metrics_server_; }
  AgentCounters counters() const;  // snapshot taken at the last tick (thread-safe)

 private:
  void Process();
  // A built span's way into the trace stages: joiner index, linker, joiner.
  void Route(trace::SpanPtr span);
  // Spans and unclaimed sockets the workers handed back (workers > 1); `all`:
  // every span, not only those every worker has caught up with.
  void DrainShards(bool all = false);
  // "Now" for timers: event time for recordings (never ahead of spans the
  // workers are still building), the monotonic clock otherwise.
  uint64_t EventNow() const;
  // RED for every span of a group, then one sampling decision for the group,
  // then completion and the sinks for the kept spans.
  void Deliver(trace::SpanGroup& group);
  void AddResourceAttributes(trace::Span& span) const;  // options_.resource_attributes
  void FlushLinker(uint64_t now_unix_ns, bool all);
  void DeliverRedWindows();
  void Snapshot(const capture::SourceCounters* source);
  uint64_t last_tracker_counters_ns_ = 0;  // when Snapshot last walked the tracker
  void AppendSelfMetrics(std::string& out) const;

  PipelineOptions options_;
  core::MonotonicToRealtime clock_;
  conn::ConnectionTracker tracker_;
  trace::Redactor redactor_;
  trace::SpanBuilder builder_;
  trace::GatewayLinker linker_;
  trace::ExchangeJoiner joiner_;
  trace::ExchangeJoiner::Deliver deliver_;
  std::shared_ptr<metrics::RedAggregator> red_;
  std::vector<std::shared_ptr<trace::SpanSink>> sinks_;
  std::vector<std::shared_ptr<MetricSink>> metric_sinks_;
  std::vector<std::shared_ptr<ProfileSink>> profile_sinks_;
  std::vector<std::unique_ptr<Component>> components_;
  metrics::MetricsServer metrics_server_;
  std::vector<conn::ConnRecord> records_;
  std::unique_ptr<CaptureShards> shards_;  // workers > 1
  std::vector<std::deque<trace::SpanPtr>> drained_;  // per worker: taken, not yet routed
  std::vector<uint64_t> unclaimed_;        // sockets taken from the workers (reused)
  uint64_t dispatched_since_drain_ = 0;    // events handed to the workers since the last drain
  trace::TraceSampler sampler_;
  trace::SpanGroup group_;   // spans the linker emitted for one Add / Flush
  trace::SpanGroup single_;  // a group of one (reused: no allocation per span)
  std::vector<bool> keep_;
  trace::GatewayLinker::Emit emit_;
  capture::EventSource* source_ = nullptr;  // during Run: told about unclaimed sockets
  uint64_t spans_ = 0;
  uint64_t last_tick_ns_ = 0;
  uint64_t last_clock_refresh_ns_ = 0;
  mutable std::mutex snapshot_mu_;
  AgentCounters snapshot_;
  bool started_ = false;
};

// One call for main.cc: builds the agent with the default sinks (JSON lines
// when print_json, RED aggregator, /metrics when metrics_listen) and runs it.
absl::Status RunPipeline(const PipelineOptions& options, capture::EventSource& source,
                         std::atomic<bool>& stop);

}  // namespace sonde::pipeline
