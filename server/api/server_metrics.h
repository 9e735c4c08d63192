#pragma once
// sonde-server's own health and metrics on the UI/API listener:
//   GET /metrics     Prometheus text: ingest (streams, batches, spans, bytes,
//                    duplicates, rejections), storage (stored spans, every
//                    operation's calls, errors and latency histogram — the
//                    queries the API runs included), the trace join, and
//                    whatever the exporters add (remote write, OTLP). Behind
//                    the UI token when one is set (Authorization: Bearer).
//   GET /api/ready   200 when the storage answers a query, 503 with the error
//                    otherwise (a ClickHouse replica whose database is down is
//                    taken out of a load balancer; /api/health stays liveness).
#include <functional>
#include <string>
#include <vector>

#include <httplib.h>

#include "server/ingest/ingest_service.h"
#include "server/ingest/trace_join.h"
#include "server/store/metered_storage.h"

namespace sonde::server {

struct ServerMetricsSources {
  const IngestCounters* ingest = nullptr;
  MeteredStorage* storage = nullptr;
  const TraceJoiner* joiner = nullptr;  // null: join off
  // Each appends its own series (Prometheus text) to the page.
  std::vector<std::function<void(std::string*)>> extra;
};

std::string RenderServerMetrics(const ServerMetricsSources& sources);

// Registers /metrics and /api/ready; `token` as HttpApiOptions::token.
void RegisterServerMetrics(httplib::Server& server, ServerMetricsSources sources, std::string token);

}  // namespace sonde::server
