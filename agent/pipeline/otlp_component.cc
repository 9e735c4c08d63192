#include "agent/pipeline/otlp_component.h"

#include <spdlog/spdlog.h>

#include "agent/metrics/prometheus_text.h"

namespace sonde::pipeline {

OtlpComponent::OtlpComponent(otlp::OtlpConfig config, std::function<void(uint16_t)> exclude_port)
    : receiver_(config), exclude_port_(std::move(exclude_port)), trace_self_(config.trace_self) {
  receiver_.AddSpanSink(&inbox_);
  // Spans waiting for the pipeline count against the OTLP memory limit.
  receiver_.memory_limiter().AddGauge([this] { return inbox_.pending_bytes(); });
}

absl::Status OtlpComponent::Start(Agent& agent) {
  if (auto st = inbox_.Start(agent); !st.ok()) return st;
  if (auto st = receiver_.Start(); !st.ok()) return st;
  if (!trace_self_ && exclude_port_) {
    for (uint16_t port : receiver_.capture_exclusion().ports) exclude_port_(port);
  }
  agent.metrics_server().AddCollector([this](std::string& out) {
    receiver_.stats().AppendPrometheus(out);
    metrics::prometheus::AppendCounter(out, "sonde_otlp_inbox_dropped_total",
                                       "OTLP spans dropped: the pipeline's inbox was full.", inbox_.dropped());
  });
  spdlog::info("OTLP receivers: gRPC port {}, HTTP port {}", receiver_.grpc_port(), receiver_.http_port());
  return absl::OkStatus();
}

void OtlpComponent::Stop() {
  receiver_.Stop();
  inbox_.Stop();
}

}  // namespace sonde::pipeline
