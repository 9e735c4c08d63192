#pragma once
// One sink interface per signal the agent produces. Producers hand their
// output to the pipeline::Agent (EmitSpan/EmitRecord, the RED aggregator's
// closed windows, EmitTcpWindow, EmitProfile); consumers (the exporter, the
// JSON printer, tests) register a sink per signal at start-up. Nothing is
// wired through a concrete consumer or a lambda built in main.cc.
//
// Threads: spans and RED windows are delivered on the pipeline thread; TCP
// windows on the TCP collector's thread and profile batches on the
// profiler's thread. Sinks are registered before Agent::Start and must be
// thread-safe for the signals they take from other threads.
//
// Logs: the agent produces none of its own, and OTLP logs/metrics it
// receives are refused in the OTLP response (agent/otlp/ingestor.h), so
// there is no log sink.
#include "agent/metrics/red.h"
#include "agent/tcp/tcp_types.h"
#include "agent/trace/span.h"
#include "sonde/v1/profile.pb.h"

namespace sonde::pipeline {

using SpanSink = trace::SpanSink;

class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void OnRedWindow(const metrics::RedWindow& /*window*/) {}
  virtual void OnTcpWindow(const tcp::TcpWindow& /*window*/) {}
};

class ProfileSink {
 public:
  virtual ~ProfileSink() = default;
  virtual void OnProfileBatch(const v1::ProfileBatch& batch) = 0;
};

}  // namespace sonde::pipeline
