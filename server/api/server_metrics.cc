#include "server/api/server_metrics.h"

#include <memory>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "server/api/api_auth.h"

namespace sonde::server {
namespace {

void Series(std::string* out, const char* name, const char* type, const char* help, uint64_t value) {
  absl::StrAppend(out, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n", name, " ", value, "\n");
}

}  // namespace

std::string RenderServerMetrics(const ServerMetricsSources& s) {
  std::string out;
  if (s.ingest) {
    const IngestCounters& c = *s.ingest;
    Series(&out, "sonde_server_ingest_streams_total", "counter", "Agent streams opened.", c.streams.load());
    Series(&out, "sonde_server_ingest_refused_streams_total", "counter",
           "Agent streams refused (over --max-streams, or the instance already connected).", c.refused_streams.load());
    Series(&out, "sonde_server_ingest_batches_total", "counter", "Batches stored.", c.batches.load());
    Series(&out, "sonde_server_ingest_duplicate_batches_total", "counter",
           "Batches acknowledged without storing: stored before (resends).", c.duplicate_batches.load());
    Series(&out, "sonde_server_ingest_rejected_batches_total", "counter",
           "Batches refused (malformed, over limits).", c.rejected_batches.load());
    Series(&out, "sonde_server_ingest_spans_total", "counter", "Spans received in stored batches.", c.spans.load());
    Series(&out, "sonde_server_ingest_bytes_total", "counter", "Batch bytes received (as sent).", c.bytes.load());
  }
  if (s.storage) {
    const StorageStats st = s.storage->Stats();
    Series(&out, "sonde_server_storage_spans", "gauge", "Spans stored (all replicas for a shared store).", st.spans);
    Series(&out, "sonde_server_storage_duplicate_batches_total", "counter",
           "Resent batches the store dropped (this replica).", st.duplicate_batches);
    absl::StrAppend(&out,
                    "# HELP sonde_server_storage_operations_total Storage operations (writes, the API's queries, "
                    "retention).\n# TYPE sonde_server_storage_operations_total counter\n");
    for (int op = 0; op < MeteredStorage::kOpCount; ++op) {
      const auto& m = s.storage->metrics(static_cast<MeteredStorage::Op>(op));
      absl::StrAppend(&out, "sonde_server_storage_operations_total{op=\"",
                      MeteredStorage::OpName(static_cast<MeteredStorage::Op>(op)), "\"} ", m.calls.load(), "\n");
    }
    absl::StrAppend(&out,
                    "# HELP sonde_server_storage_errors_total Storage operations that failed.\n"
                    "# TYPE sonde_server_storage_errors_total counter\n");
    for (int op = 0; op < MeteredStorage::kOpCount; ++op) {
      const auto& m = s.storage->metrics(static_cast<MeteredStorage::Op>(op));
      absl::StrAppend(&out, "sonde_server_storage_errors_total{op=\"",
                      MeteredStorage::OpName(static_cast<MeteredStorage::Op>(op)), "\"} ", m.errors.load(), "\n");
    }
    absl::StrAppend(&out,
                    "# HELP sonde_server_storage_seconds Storage operation latency.\n"
                    "# TYPE sonde_server_storage_seconds histogram\n");
    for (int op = 0; op < MeteredStorage::kOpCount; ++op) {
      const auto& m = s.storage->metrics(static_cast<MeteredStorage::Op>(op));
      const char* name = MeteredStorage::OpName(static_cast<MeteredStorage::Op>(op));
      uint64_t cumulative = 0;
      for (size_t b = 0; b < m.buckets.size(); ++b) {
        cumulative += m.buckets[b].load();
        const std::string le =
            b < MeteredStorage::kBucketsSeconds.size() ? absl::StrCat(MeteredStorage::kBucketsSeconds[b]) : "+Inf";
        absl::StrAppend(&out, "sonde_server_storage_seconds_bucket{op=\"", name, "\",le=\"", le, "\"} ", cumulative,
                        "\n");
      }
      absl::StrAppend(&out, "sonde_server_storage_seconds_sum{op=\"", name, "\"} ",
                      static_cast<double>(m.nanos.load()) / 1e9, "\n", "sonde_server_storage_seconds_count{op=\"",
                      name, "\"} ", cumulative, "\n");
    }
  }
  if (s.joiner) {
    const TraceJoinCounters& j = s.joiner->counters();
    Series(&out, "sonde_server_trace_join_joins_total", "counter", "Exchanges joined across agents at ingest.",
           j.joins.load());
    Series(&out, "sonde_server_trace_join_renamed_spans_total", "counter", "Spans whose trace id was rewritten.",
           j.renamed_spans.load());
    Series(&out, "sonde_server_trace_join_evicted_total", "counter", "Join index entries dropped at the bound.",
           j.evicted.load());
    Series(&out, "sonde_server_trace_join_entries", "gauge", "Join index entries held.", s.joiner->entries());
  }
  for (const auto& add : s.extra) add(&out);
  return out;
}

void RegisterServerMetrics(httplib::Server& server, ServerMetricsSources sources, std::string token) {
  auto shared = std::make_shared<ServerMetricsSources>(std::move(sources));
  auto auth = std::make_shared<ApiAuth>(std::move(token));
  server.Get("/metrics", [shared, auth](const httplib::Request& req, httplib::Response& res) {
    if (!auth->Authorized(req)) {
      res.status = 401;
      res.set_header("WWW-Authenticate", "Bearer");
      res.set_content("missing or wrong token (Authorization: Bearer)\n", "text/plain");
      return;
    }
    res.set_content(RenderServerMetrics(*shared), "text/plain; version=0.0.4");
  });
  server.Get("/api/ready", [shared](const httplib::Request&, httplib::Response& res) {
    if (!shared->storage) {
      res.set_content("{\"status\":\"ready\"}", "application/json");
      return;
    }
    // The cheapest real query: an empty time range of the endpoints rollup.
    EndpointQuery q;
    q.range = {1, 0};
    auto r = shared->storage->Endpoints(q);
    if (r.ok()) {
      res.set_content("{\"status\":\"ready\"}", "application/json");
      return;
    }
    res.status = 503;
    const nlohmann::json j = {{"status", "storage unavailable"}, {"error", std::string(r.status().message())}};
    res.set_content(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  });
}

}  // namespace sonde::server
