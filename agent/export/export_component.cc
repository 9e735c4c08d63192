#include "agent/export/export_component.h"

#include <unistd.h>

#include <fstream>

#include "agent/export/red_convert.h"
#include "agent/metrics/prometheus_text.h"
#include "agent/export/tcp_convert.h"

namespace sonde::exporter {

void ExporterSinks::OnRedWindow(const metrics::RedWindow& window) {
  for (auto& p : RedWindowToProto(window)) exporter_->AddRedWindow(std::move(p));
}

void ExporterSinks::OnTcpWindow(const tcp::TcpWindow& window) {
  for (auto& w : TcpWindowToProto(window, static_cast<uint64_t>(clock_.offset_ns()))) {
    exporter_->AddTcpWindow(std::move(w));
  }
}

void ExporterSinks::OnProfileBatch(const v1::ProfileBatch& batch) { exporter_->AddProfileStacks(batch); }

absl::Status ExportComponent::Start(pipeline::Agent& agent) {
  // What the exporter sent, resent and lost is visible on /metrics (#17).
  std::weak_ptr<ServerExporter> weak = exporter_;
  agent.metrics_server().AddCollector([weak](std::string& out) {
    auto exporter = weak.lock();
    if (!exporter) return;
    namespace prom = metrics::prometheus;
    const ExporterStats s = exporter->stats();
    prom::AppendCounter(out, "sonde_export_items_accepted_total", "Items (spans, windows, stacks) queued for the server.",
                        s.items_accepted);
    prom::AppendCounter(out, "sonde_export_items_dropped_total",
                        "Items dropped because the export queue was full (server down or slow).",
                        s.items_dropped_queue_full);
    prom::AppendCounter(out, "sonde_export_items_acked_total", "Items the server acknowledged as stored.",
                        s.items_acked);
    prom::AppendCounter(out, "sonde_export_batches_acked_total", "Batches the server acknowledged.", s.batches_acked);
    prom::AppendCounter(out, "sonde_export_batches_rejected_total",
                        "Batches the server refused with an error (not retried).", s.batches_rejected);
    prom::AppendCounter(out, "sonde_export_batches_resent_total", "Batches written again after a reconnect.",
                        s.batches_resent);
    prom::AppendCounter(out, "sonde_export_connect_failures_total", "Failed connections to the server.",
                        s.connect_failures);
    prom::AppendCounter(out, "sonde_export_stream_failures_total", "Ingest streams that ended with an error.",
                        s.stream_failures);
    prom::AppendCounter(out, "sonde_export_bytes_written_total", "Compressed bytes written to the server.",
                        s.bytes_written);
    prom::AppendGauge(out, "sonde_export_queued_items", "Items waiting for an acknowledgement.",
                      static_cast<double>(s.queued_items));
    prom::AppendGauge(out, "sonde_export_queued_bytes",
                      "Bytes of the export queue in memory (open batches serialized, sealed batches compressed).",
                      static_cast<double>(s.queued_bytes));
    prom::AppendCounter(out, "sonde_export_items_not_spooled_total",
                        "Items pushed out of the full on-disk queue (lost if the agent restarts before the server acks).",
                        s.items_not_spooled);
    prom::AppendCounter(out, "sonde_export_items_restored_total", "Items loaded from the on-disk queue at start.",
                        s.items_restored);
    prom::AppendGauge(out, "sonde_export_spool_bytes", "Bytes in the on-disk export queue.",
                      static_cast<double>(s.spool_bytes));
    prom::AppendGauge(out, "sonde_export_connected", "1 while a stream to the server is open.", s.connected ? 1.0 : 0.0);
  });
  exporter_->Start();
  return absl::OkStatus();
}

void ExportComponent::Stop() { exporter_->Stop(std::chrono::milliseconds(3000)); }

std::shared_ptr<ServerExporter> AttachExporter(pipeline::Agent& agent, const ServerConnection& server) {
  ExporterOptions o;
  o.target = server.target;
  o.token = server.token;
  o.tls_ca_file = server.tls_ca_file;
  o.tls_cert_file = server.tls_cert_file;
  o.tls_key_file = server.tls_key_file;
  o.spool_dir = server.spool_dir;
  o.spool_max_bytes = server.spool_max_bytes;
  std::string host = server.node_name;
  if (host.empty()) {
    char name[256] = {};
    gethostname(name, sizeof name - 1);
    host = name;
  }
  o.identity.set_host_name(host);
  std::ifstream mid("/etc/machine-id");
  std::string node;
  if (mid >> node) o.identity.set_node_id(node);
  o.identity.set_agent_version(server.agent_version.empty() ? "unknown" : server.agent_version);
  v1::HostInfo info;
  info.set_host_name(host);
  info.set_cpus(static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  auto exporter = std::make_shared<ServerExporter>(std::move(o));
  exporter->SetHostInfo(std::move(info));
  agent.AddSink(exporter);
  auto sinks = std::make_shared<ExporterSinks>(exporter, agent.clock());
  agent.AddMetricSink(sinks);
  agent.AddProfileSink(sinks);
  agent.AddComponent(std::make_unique<ExportComponent>(exporter));
  return exporter;
}

}  // namespace sonde::exporter
