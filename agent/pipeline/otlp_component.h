#pragma once
// The OTLP receivers as a pipeline component: app spans (source A) reach the
// pipeline's sinks through a SpanInbox, and the receivers' ports are excluded
// from socket capture so exports to the agent are not reported as user traffic.
#include <functional>
#include <memory>

#include "agent/otlp/receiver.h"
#include "agent/pipeline/pipeline.h"
#include "agent/pipeline/span_inbox.h"

namespace sonde::pipeline {

class OtlpComponent final : public Component {
 public:
  // `exclude_port` is called for every receiver port (capture filter hook).
  OtlpComponent(otlp::OtlpConfig config, std::function<void(uint16_t)> exclude_port);
  absl::Status Start(Agent& agent) override;
  void Tick(uint64_t now_unix_ns) override { inbox_.Tick(now_unix_ns); }
  void Stop() override;
  otlp::OtlpReceiver& receiver() { return receiver_; }
  void AddOtlpSink(otlp::OtlpSink* sink) { receiver_.AddOtlpSink(sink); }

 private:
  otlp::OtlpReceiver receiver_;
  SpanInbox inbox_;
  std::function<void(uint16_t)> exclude_port_;
  bool trace_self_;
};

}  // namespace sonde::pipeline
