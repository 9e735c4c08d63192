#pragma once
// Plugs the ServerExporter into the agent pipeline as its span, metric and
// profile sink (agent/pipeline/signal_sinks.h).
#include <memory>

#include "agent/export/server_exporter.h"
#include "agent/pipeline/pipeline.h"

namespace sonde::exporter {

// The exporter as the agent's metric and profile sink (it is its span sink
// itself): converts windows and batches to their wire form.
class ExporterSinks final : public pipeline::MetricSink, public pipeline::ProfileSink {
 public:
  ExporterSinks(std::shared_ptr<ServerExporter> exporter, const core::MonotonicToRealtime& clock)
      : exporter_(std::move(exporter)), clock_(clock) {}
  void OnRedWindow(const metrics::RedWindow& window) override;
  void OnTcpWindow(const tcp::TcpWindow& window) override;
  void OnProfileBatch(const v1::ProfileBatch& batch) override;

 private:
  std::shared_ptr<ServerExporter> exporter_;
  const core::MonotonicToRealtime& clock_;
};

// Starts the exporter with the agent; Stop() drains what is queued for a few seconds.
class ExportComponent final : public pipeline::Component {
 public:
  explicit ExportComponent(std::shared_ptr<ServerExporter> exporter) : exporter_(std::move(exporter)) {}
  absl::Status Start(pipeline::Agent& agent) override;
  void Stop() override;

 private:
  std::shared_ptr<ServerExporter> exporter_;
};

// One call for main.cc: builds the exporter for `target`, registers it as
// every sink and as a component. Returns the exporter (for counters).
struct ServerConnection {
  std::string target;
  std::string token;
  std::string tls_ca_file, tls_cert_file, tls_key_file;  // see ExporterOptions
  std::string node_name;      // the host this agent reports as (config node_name); empty: the host name
  std::string agent_version;  // empty: "unknown"
  std::string spool_dir;      // on-disk queue (ExporterOptions::spool_dir); empty: memory only
  uint64_t spool_max_bytes = 256u << 20;
};
std::shared_ptr<ServerExporter> AttachExporter(pipeline::Agent& agent, const ServerConnection& server);

}  // namespace sonde::exporter
