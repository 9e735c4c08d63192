#include "agent/export/export_component.h"

#include <unistd.h>

#include <fstream>

#include "agent/export/red_convert.h"
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

absl::Status ExportComponent::Start(pipeline::Agent& /*agent*/) {
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
