#include "agent/pipeline/pipeline.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "agent/metrics/prometheus_text.h"
#include "agent/pipeline/json_sink.h"

namespace sonde::pipeline {
namespace {

// "host:port" -> parts; "[::]:9464" keeps the brackets off.
bool SplitListen(const std::string& listen, std::string* host, int* port) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return false;
  *host = listen.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  try {
    *port = std::stoi(listen.substr(colon + 1));
  } catch (...) {
    return false;
  }
  return *port >= 0 && *port <= 65535;
}

}  // namespace

Agent::Agent(PipelineOptions options)
    : options_(std::move(options)),
      tracker_(options_.tracker),
      redactor_(options_.redact_headers, options_.redact_query_params),
      builder_(clock_),
      linker_(options_.linker),
      joiner_(options_.joiner),
      red_(std::make_shared<metrics::RedAggregator>(options_.red)),
      sampler_(options_.sampler) {
  if (options_.clock_offset_ns) clock_.SetOffset(*options_.clock_offset_ns);
  builder_.set_service_namer(options_.service_namer.get());
  if (options_.workers > 1) {
    CaptureShardOptions so;
    so.workers = options_.workers;
    so.tracker = options_.tracker;
    so.tick_interval_ns = options_.tick_interval_ns;
    so.event_time = options_.event_time;
    CaptureShards::NamerFactory namers;
    if (options_.service_namer) {
      // Each worker resolves and caches names on its own (the cache is not shared).
      namers = [template_namer = options_.service_namer]() -> std::unique_ptr<trace::ServiceNamer> {
        auto n = trace::ServiceNamer::Create(template_namer->options());
        return n.ok() ? std::move(*n) : nullptr;
      };
    }
    shards_ = std::make_unique<CaptureShards>(so, clock_, namers);
  }
  emit_ = [this](trace::SpanPtr&& span) { group_.push_back(std::move(span)); };
  deliver_ = [this](trace::SpanGroup& group) { Deliver(group); };
  if (options_.print_json && options_.json_out != nullptr) {
    sinks_.push_back(std::make_shared<JsonLinesSink>(options_.json_out, options_.json_line_buffered));
  }
  metrics_server_.AddCollector([this](std::string& out) {
    red_->AppendPrometheus(out);
    AppendSelfMetrics(out);
  });
}

Agent::~Agent() { Stop(); }

void Agent::AddSink(std::shared_ptr<trace::SpanSink> sink) { sinks_.push_back(std::move(sink)); }

void Agent::AddMetricSink(std::shared_ptr<MetricSink> sink) { metric_sinks_.push_back(std::move(sink)); }

void Agent::AddProfileSink(std::shared_ptr<ProfileSink> sink) { profile_sinks_.push_back(std::move(sink)); }

void Agent::EmitTcpWindow(const tcp::TcpWindow& window) {
  for (auto& sink : metric_sinks_) sink->OnTcpWindow(window);
}

void Agent::EmitProfile(const v1::ProfileBatch& batch) {
  for (auto& sink : profile_sinks_) sink->OnProfileBatch(batch);
}

void Agent::AddComponent(std::unique_ptr<Component> component) {
  components_.push_back(std::move(component));
}

absl::Status Agent::Start() {
  if (started_) return absl::OkStatus();
  if (!options_.metrics_listen.empty()) {
    std::string host;
    int port = 0;
    if (!SplitListen(options_.metrics_listen, &host, &port)) {
      return absl::InvalidArgumentError("metrics_listen: want host:port, got " + options_.metrics_listen);
    }
    if (auto st = metrics_server_.Start(host, port); !st.ok()) return st;
    spdlog::info("metrics on http://{}:{}/metrics", host, metrics_server_.port());
  }
  for (auto& c : components_) {
    if (auto st = c->Start(*this); !st.ok()) return st;
  }
  started_ = true;
  return absl::OkStatus();
}

void Agent::Stop() {
  for (auto& c : components_) c->Stop();
  metrics_server_.Stop();
  started_ = false;
}

void Agent::OnEvent(capture::RawEvent ev) {
  if (shards_) {
    shards_->Dispatch(ev);
    ++dispatched_since_drain_;
    return;
  }
  tracker_.OnEvent(ev, records_);
  if (!records_.empty()) Process();
  if (auto& unclaimed = tracker_.unclaimed_sockets(); !unclaimed.empty()) {
    if (source_ != nullptr) {
      for (uint64_t sock_id : unclaimed) source_->IgnoreSocket(sock_id);
    }
    unclaimed.clear();
  }
}

void Agent::Process() {
  for (auto& r : records_) Route(builder_.BuildDeferredPtr(std::move(r)));
  records_.clear();
}

void Agent::Route(trace::SpanPtr span) {
  // RED counts a system span as soon as it is built: the linker and the
  // joiner may hold it (an egress waits up to seconds for its ingress), and
  // nothing they change is part of a RED key. Other spans are counted in
  // Deliver.
  red_->OnSpan(*span);
  joiner_.Observe(*span);  // a client span is findable before the linker holds it
  linker_.Add(std::move(span), emit_);
  if (!group_.empty()) joiner_.Add(group_, deliver_);
}

void Agent::DrainShards(bool all) {
  // Workers finish spans in their own order; the linker wants them in the
  // order one thread would have finished them (an egress span before the
  // ingress it nests in). Spans are released by end time once every worker
  // has processed events up to that time.
  // The watermark is read before the spans are taken: a worker publishes its
  // spans before its progress, so every span that ends by the watermark is
  // in hand. Ring-buffer records are not strictly in time order across CPUs
  // (a loaded 2-core machine showed records more than 5 ms out of order:
  // 0.1-0.7 % of traces broken with 5 ms of slack, none with 50 ms).
  constexpr uint64_t kReorderSlackNs = 50'000'000;
  const uint64_t progress = shards_->ProgressEventNs();
  uint64_t watermark = all ? UINT64_MAX : clock_.ToUnixNs(progress > kReorderSlackNs ? progress - kReorderSlackNs : 0);
  // Traffic stopped (live: a poll brought nothing, the workers are done):
  // nothing older can still arrive once the slack has passed on the clock, so
  // the last spans are not held until the next event. (A drain running behind
  // under overload still brings events: then the watermark holds.)
  const bool poll_was_empty = dispatched_since_drain_ == 0;
  dispatched_since_drain_ = 0;
  if (!options_.event_time && poll_was_empty && shards_->AllCaughtUp() &&
      core::MonotonicNowNs() > shards_->latest_dispatched_ns() + kReorderSlackNs) {
    watermark = UINT64_MAX;
  }
  shards_->TakeSpans(drained_);
  // Each worker's spans come in about end-time order: merge the queues'
  // fronts (a sort of everything held on every drain was quadratic under load).
  while (true) {
    std::deque<trace::SpanPtr>* next = nullptr;
    for (auto& q : drained_) {
      if (!q.empty() && q.front()->end_unix_ns <= watermark &&
          (next == nullptr || q.front()->end_unix_ns < next->front()->end_unix_ns)) {
        next = &q;
      }
    }
    if (next == nullptr) break;
    trace::SpanPtr span = std::move(next->front());
    next->pop_front();
    Route(std::move(span));
  }
  shards_->TakeUnclaimed(unclaimed_);
  if (source_ != nullptr) {
    for (uint64_t sock_id : unclaimed_) source_->IgnoreSocket(sock_id);
  }
  unclaimed_.clear();
}

uint64_t Agent::EventNow() const {
  if (!options_.event_time) return core::MonotonicNowNs();
  return shards_ ? shards_->ProgressEventNs() : tracker_.latest_event_ns();
}

void Agent::Deliver(trace::SpanGroup& group) {
  for (const auto& span : group) {
    if (span->source != trace::SpanSource::kSystem) red_->OnSpan(*span);  // system spans: in Route
  }
  // Recordings replay faster than real time: their budget follows event time.
  sampler_.Decide(group, EventNow(), keep_);
  for (size_t i = 0; i < group.size(); ++i) {
    if (!keep_[i]) continue;
    trace::Span& span = *group[i];
    if (span.deferred) {
      redactor_.Apply(span.deferred->record);
      trace::SpanBuilder::Complete(span);
    } else {
      redactor_.Apply(span.attributes, span.request_headers, span.response_headers);
    }
    AddResourceAttributes(span);
    ++spans_;
    for (auto& sink : sinks_) sink->OnSpan(span);
  }
  // Sinks copy what they keep: the storage goes back to the builder. With
  // workers the spans were built on their threads (their builders are not
  // this thread's to feed).
  if (!shards_) {
    for (auto& span : group) builder_.Recycle(std::move(span));
  }
  group.clear();
}

void Agent::AddResourceAttributes(trace::Span& span) const {
  for (const auto& [key, value] : options_.resource_attributes) {
    const bool present = std::any_of(span.attributes.begin(), span.attributes.end(),
                                     [&](const trace::Attribute& a) { return a.key == key; });
    if (!present) span.attributes.push_back({key, value});
  }
}

void Agent::EmitSpan(trace::Span&& span) {
  single_.push_back(std::make_unique<trace::Span>(std::move(span)));
  Deliver(single_);
}

void Agent::DeliverRedWindows() {
  // Closed windows are kept for pull (TakeClosedWindows) when nobody takes them.
  if (metric_sinks_.empty()) return;
  for (const auto& w : red_->TakeClosedWindows()) {
    for (auto& sink : metric_sinks_) sink->OnRedWindow(w);
  }
}

void Agent::EmitRecord(conn::ConnRecord&& record, trace::SpanSource source) {
  single_.push_back(builder_.BuildDeferredPtr(std::move(record)));
  single_.back()->source = source;
  Deliver(single_);
}

void Agent::FlushLinker(uint64_t now_unix_ns, bool all) {
  // The linker emits into group_ (empty between records). Released egress
  // spans are unrelated to one another: one group each.
  if (all) {
    linker_.FlushAll(emit_);
  } else {
    linker_.Flush(now_unix_ns, emit_);
  }
  trace::SpanGroup released = std::move(group_);
  group_.clear();
  for (auto& span : released) {
    single_.push_back(std::move(span));
    joiner_.Add(single_, deliver_);
  }
  if (all) {
    joiner_.FlushAll(deliver_);
  } else {
    joiner_.Flush(now_unix_ns, deliver_);
  }
}

void Agent::Tick(uint64_t now_ns) {
  if (shards_) {
    DrainShards();  // the workers tick their own trackers
  } else {
    tracker_.Tick(now_ns, records_);
    Process();
  }
  if (!options_.clock_offset_ns && now_ns - last_clock_refresh_ns_ > 10'000'000'000ull) {
    clock_.Refresh();
    last_clock_refresh_ns_ = now_ns;
  }
  const uint64_t now_unix = clock_.ToUnixNs(now_ns);
  FlushLinker(now_unix, /*all=*/false);
  red_->Tick(now_unix);
  DeliverRedWindows();
  for (auto& c : components_) c->Tick(now_unix);
  Snapshot(nullptr);
}

void Agent::Finish() {
  if (shards_) {
    shards_->Finish();
    DrainShards(/*all=*/true);
  } else {
    tracker_.CloseAll(records_);
    Process();
  }
  FlushLinker(0, /*all=*/true);
  red_->Tick(UINT64_MAX);
  DeliverRedWindows();
  Snapshot(nullptr);
}

void Agent::Snapshot(const capture::SourceCounters* source) {
  // The tracker's counters walk every connection: at most once a second
  // (with 100,000 connections, twice per tick was 11% of the agent's CPU),
  // and whenever no connection is left (the final snapshot is exact).
  const uint64_t now = core::MonotonicNowNs();
  const size_t open = shards_ ? shards_->open_connections() : tracker_.open_connections();
  const bool tracker_due = open == 0 || now >= last_tracker_counters_ns_ + 1'000'000'000;
  conn::TrackerCounters tracker;
  if (tracker_due) {
    if (shards_) {
      tracker = shards_->counters();  // each worker publishes its walk once a second
      tracker.malformed_events += shards_->malformed();
    } else {
      tracker = tracker_.counters();
    }
    last_tracker_counters_ns_ = now;
  }
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  if (tracker_due) snapshot_.tracker = tracker;
  snapshot_.linker = linker_.counters();
  snapshot_.joiner = joiner_.counters();
  snapshot_.join_held_groups = joiner_.held_groups();
  snapshot_.linker_pending = linker_.pending();
  snapshot_.sampler = sampler_.counters();
  if (source != nullptr) snapshot_.source = *source;
  snapshot_.spans = spans_;
  snapshot_.open_connections = open;
  snapshot_.buffered_bytes = shards_ ? shards_->buffered_bytes() : tracker_.buffered_bytes();
}

AgentCounters Agent::counters() const {
  std::lock_guard<std::mutex> lock(snapshot_mu_);
  return snapshot_;
}

void Agent::AppendSelfMetrics(std::string& out) const {
  const AgentCounters c = counters();
  using metrics::prometheus::AppendCounter;
  using metrics::prometheus::AppendMetricHeader;
  using metrics::prometheus::AppendSample;
  AppendCounter(out, "sonde_agent_events_total", "Capture events delivered to the pipeline.", c.tracker.events);
  AppendCounter(out, "sonde_agent_events_malformed_total", "Events too short or inconsistent.",
                c.tracker.malformed_events + c.source.malformed);
  AppendCounter(out, "sonde_agent_kernel_lost_events_total", "Events the kernel could not deliver.",
                c.source.kernel_lost);
  AppendMetricHeader(out, "sonde_agent_drops_total", "counter", "Data dropped in user space, by reason.");
  AppendSample(out, "sonde_agent_drops_total", {{"reason", "memory_budget"}}, c.tracker.memory_drops);
  AppendSample(out, "sonde_agent_drops_total", {{"reason", "stream_bound"}}, c.tracker.overflow_drops);
  AppendSample(out, "sonde_agent_drops_total", {{"reason", "max_connections"}}, c.tracker.connections_rejected);
  AppendSample(out, "sonde_agent_drops_total", {{"reason", "linker_evicted"}}, c.linker.evicted);
  AppendSample(out, "sonde_agent_drops_total", {{"reason", "join_evicted"}}, c.joiner.evicted);
  AppendCounter(out, "sonde_agent_parse_errors_total", "Protocol parse errors (each followed by a resync).",
                c.tracker.protocol.parse_errors);
  AppendCounter(out, "sonde_agent_unpaired_messages_total", "Requests/responses without a partner.",
                c.tracker.protocol.unpaired);
  AppendCounter(out, "sonde_agent_gap_bytes_total", "Stream bytes not captured.", c.tracker.gap_bytes);
  AppendCounter(out, "sonde_agent_records_total", "L7 records reconstructed.", c.tracker.records);
  AppendCounter(out, "sonde_agent_spans_total", "Spans emitted to sinks.", c.spans);
  AppendCounter(out, "sonde_agent_connections_opened_total", "Connections tracked.", c.tracker.connections_opened);
  AppendCounter(out, "sonde_agent_unknown_protocol_connections_total", "Connections no protocol claimed.",
                c.tracker.unknown_protocol);
  AppendCounter(out, "sonde_agent_given_up_socket_late_events_total",
                "Events of sockets no protocol claimed that were already on their way when the kernel was told "
                "to ignore them (dropped).",
                c.tracker.given_up_late_events);
  AppendMetricHeader(out, "sonde_agent_connections_released_total", "counter",
                     "Tracked connections let go, by reason (agent/conn/tracker.h).");
  for (size_t r = 0; r < conn::kReleaseReasonCount; ++r) {
    AppendSample(out, "sonde_agent_connections_released_total",
                 {{"reason", std::string(conn::ReleaseReasonName(static_cast<conn::ReleaseReason>(r)))}},
                 c.tracker.released[r]);
  }
  AppendCounter(out, "sonde_agent_socket_checks_total",
                "Quiet connections checked against /proc for a close the capture missed.", c.tracker.socket_probes);
  metrics::prometheus::AppendGauge(out, "sonde_agent_resident_bytes", "Resident memory of the agent (RSS).",
                                   static_cast<double>(conn::ReadSelfRss()));
  metrics::prometheus::AppendGauge(out, "sonde_agent_heap_bytes", "Heap bytes in use (jemalloc stats.allocated).",
                                   static_cast<double>(conn::HeapAllocatedBytes()));
  AppendCounter(out, "sonde_agent_memory_ceiling_sheds_total",
                "Checks that found the agent above its memory ceiling (state was shed).",
                c.tracker.memory_ceiling_sheds);
  AppendMetricHeader(out, "sonde_agent_links_total", "counter",
                     "Spans linked to a parent span on this node (gateway egress -> ingress, "
                     "server -> client of the same exchange), by evidence.");
  for (size_t r = 1; r < trace::kLinkReasonCount; ++r) {  // 0 is "none": not a link
    uint64_t n = c.linker.links[r];
    if (r == static_cast<size_t>(trace::LinkReason::kTcpSequence)) n += c.joiner.links_tcp_sequence;
    if (r == static_cast<size_t>(trace::LinkReason::kTimeNesting)) n += c.joiner.links_time_nesting;
    AppendSample(out, "sonde_agent_links_total",
                 {{"reason", std::string(trace::LinkReasonName(static_cast<trace::LinkReason>(r)))}}, n);
  }
  AppendCounter(out, "sonde_agent_join_timeouts_total",
                "Server span groups released without their client span (the client was not seen in time).",
                c.joiner.timeouts);
  metrics::prometheus::AppendGauge(out, "sonde_agent_join_held_groups",
                                   "Server span groups waiting for their client span.",
                                   static_cast<double>(c.join_held_groups));
  AppendCounter(out, "sonde_agent_link_unseen_ingress_egress_total",
                "Egress spans held briefly because their process's ingress is not seen: none of its egress "
                "spans has linked yet, or the last ones all timed out unlinked (e.g. TLS the agent does not decrypt).",
                c.linker.unseen_ingress_egress);
  metrics::prometheus::AppendGauge(out, "sonde_agent_link_pending_egress",
                                   "Egress spans waiting in the gateway linker for their ingress span.",
                                   static_cast<double>(c.linker_pending));
  AppendMetricHeader(out, "sonde_agent_spans_sampled_total", "counter", "Spans kept by the span budget, by reason.");
  for (size_t r = 0; r < static_cast<size_t>(trace::SampleReason::kCount); ++r) {
    AppendSample(out, "sonde_agent_spans_sampled_total",
                 {{"reason", std::string(trace::SampleReasonName(static_cast<trace::SampleReason>(r)))}},
                 c.sampler.kept[r]);
  }
  AppendMetricHeader(out, "sonde_agent_spans_left_out_total", "counter",
                     "Spans not shipped (still counted in RED), by reason.");
  AppendSample(out, "sonde_agent_spans_left_out_total", {{"reason", "budget"}}, c.sampler.dropped_budget);
  AppendSample(out, "sonde_agent_spans_left_out_total", {{"reason", "parent_not_sampled"}},
               c.sampler.dropped_parent_flag);
  AppendCounter(out, "sonde_agent_sockets_ignored_total",
                "Sockets no protocol claimed, no longer copied by the kernel.", c.source.ignored_sockets);
  metrics::prometheus::AppendGauge(out, "sonde_agent_open_connections", "Connections currently tracked.",
                                   static_cast<double>(c.open_connections));
  metrics::prometheus::AppendGauge(out, "sonde_agent_buffered_bytes", "Stream bytes buffered in user space.",
                                   static_cast<double>(c.buffered_bytes));
}

absl::Status Agent::Run(capture::EventSource& source, std::atomic<bool>& stop) {
  if (auto st = Start(); !st.ok()) return st;
  source_ = &source;
  absl::Status result = absl::OkStatus();
  auto on_event = [this](capture::RawEvent ev) { OnEvent(ev); };
  while (!stop.load(std::memory_order_relaxed)) {
    absl::Status st = source.Poll(options_.poll_timeout_ms, on_event);
    if (absl::IsOutOfRange(st)) break;  // end of a recording
    if (!st.ok()) {
      result = st;
      break;
    }
    if (shards_) {
      shards_->Flush();
      DrainShards();
    }
    const uint64_t now = EventNow();
    if (now >= last_tick_ns_ + options_.tick_interval_ns) {
      Tick(now);
      const capture::SourceCounters sc = source.counters();
      Snapshot(&sc);
      last_tick_ns_ = now;
    }
  }
  Finish();
  const capture::SourceCounters sc = source.counters();
  Snapshot(&sc);
  source_ = nullptr;
  return result;
}

absl::Status RunPipeline(const PipelineOptions& options, capture::EventSource& source,
                         std::atomic<bool>& stop) {
  Agent agent(options);
  absl::Status st = agent.Run(source, stop);
  agent.Stop();
  return st;
}

}  // namespace sonde::pipeline
