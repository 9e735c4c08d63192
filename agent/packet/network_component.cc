#include "agent/packet/network_component.h"

#include <spdlog/spdlog.h>

#include "agent/metrics/prometheus_text.h"

namespace sonde::packet {

absl::Status NetworkComponent::Start(pipeline::Agent& agent) {
  agent_ = &agent;
  // The agent's clock: record times go back to Unix time through the same offset.
  auto sources = StartNetworkSources(
      config_, [this](conn::ConnRecord&& r) { OnRecord(std::move(r)); },
      [&agent](const tcp::TcpWindow& window) { agent.EmitTcpWindow(window); }, &agent.clock());
  if (!sources.ok()) {
    // Capture was asked for explicitly: failing is right. TCP health is on by
    // default: without BPF rights the agent still runs, without it.
    if (config_.packet_capture) return sources.status();
    spdlog::warn("TCP health metrics off: {}", std::string(sources.status().message()));
    return absl::OkStatus();
  }
  sources_ = std::make_shared<NetworkSources>(std::move(*sources));
  std::weak_ptr<NetworkSources> weak = sources_;
  agent.metrics_server().AddCollector([weak, this](std::string& out) {
    if (auto s = weak.lock()) s->AppendPrometheus(out);
    metrics::prometheus::AppendMetricHeader(out, "sonde_packet_spans_dropped_total", "counter",
                            "Network spans dropped because the pipeline queue was full.");
    metrics::prometheus::AppendSample(out, "sonde_packet_spans_dropped_total", {}, dropped_records());
  });
  return absl::OkStatus();
}

void NetworkComponent::OnRecord(conn::ConnRecord&& record) {
  std::lock_guard lock(mu_);
  if (queue_.size() >= max_queued_) {
    ++dropped_;
    return;
  }
  queue_.push_back(std::move(record));
}

void NetworkComponent::Tick(uint64_t) {
  if (agent_ == nullptr) return;
  {
    std::lock_guard lock(mu_);
    draining_.swap(queue_);
  }
  for (auto& r : draining_) agent_->EmitRecord(std::move(r), trace::SpanSource::kNetwork);
  draining_.clear();
}

void NetworkComponent::Stop() {
  if (sources_ && sources_->packets) {
    sources_->packets->FlushFlows();  // pending exchanges become records
    sources_->packets->Stop();
  }
  if (sources_ && sources_->tcp) sources_->tcp->Stop();
  Tick(0);
}

uint64_t NetworkComponent::dropped_records() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

}  // namespace sonde::packet
