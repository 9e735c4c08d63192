#pragma once
// Where received OTLP telemetry goes besides spans. Spans are converted to the
// agent span model and delivered to trace::SpanSink; metrics and logs stay
// OTLP (already enriched: node, sending process) and are handed to an
// OtlpSink so the exporter can ship them unchanged. Logs keep their
// trace_id/span_id so the server can join them to traces.
//
// Threading: receivers call sinks concurrently from their worker threads;
// implementations must be thread-safe and should not block for long (a slow
// sink holds an admission slot, which is what turns into 503/UNAVAILABLE).
#include <memory>

#include "opentelemetry/proto/collector/logs/v1/logs_service.pb.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

namespace sonde::otlp {

using ExportTraceRequest = opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
using ExportMetricsRequest = opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest;
using ExportLogsRequest = opentelemetry::proto::collector::logs::v1::ExportLogsServiceRequest;

class OtlpSink {
 public:
  virtual ~OtlpSink() = default;
  virtual void OnMetrics(std::shared_ptr<const ExportMetricsRequest> metrics) = 0;
  virtual void OnLogs(std::shared_ptr<const ExportLogsRequest> logs) = 0;
  // The enriched OTLP traces themselves, for sinks that forward OTLP as is
  // (spans also reach every trace::SpanSink in the agent span model).
  // Only called when WantsTraces() (it costs a copy of the request).
  virtual bool WantsTraces() const { return false; }
  virtual void OnTraces(std::shared_ptr<const ExportTraceRequest> /*traces*/) {}
};

}  // namespace sonde::otlp
