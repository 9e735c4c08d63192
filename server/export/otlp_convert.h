#pragma once
// Sonde's stored model -> OTLP, for the OTLP exporter (otlp_exporter.h).
// Pure functions, unit tested.
//   spans (all sources: A, S, N) -> ExportTraceServiceRequest: one
//     ResourceSpans per (host, service, pid); resource service.name,
//     host.name, process.pid, process.executable.name, container.id; span
//     attributes: the span's own plus semconv ones derived from its fields
//     when absent (http.response.status_code, rpc.system.name and
//     rpc.response.status_code for gRPC,
//     server.address/port, client.address/port, network.protocol.name) and
//     sonde.source (A/S/N), sonde.parent_reason;
//   RED windows -> sums (delta, monotonic) sonde.red.requests,
//     sonde.red.errors and histogram sonde.red.duration (seconds, delta);
//   TCP windows -> sums sonde.tcp.* (delta) and gauges
//     sonde.tcp.active_connections, sonde.tcp.srtt (seconds).
#include <string>

#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::server {

opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest ToOtlpTraces(const v1::Batch& batch,
                                                                                   const std::string& host);
opentelemetry::proto::collector::metrics::v1::ExportMetricsServiceRequest ToOtlpMetrics(const v1::Batch& batch,
                                                                                       const std::string& host);

}  // namespace sonde::server
