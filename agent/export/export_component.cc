#include "agent/export/export_component.h"

#include <unistd.h>

#include <fstream>

#include "agent/export/red_convert.h"

namespace sonde::exporter {

absl::Status ExportComponent::Start(pipeline::Agent& agent) {
  agent_ = &agent;
  exporter_->Start();
  return absl::OkStatus();
}

void ExportComponent::Tick(uint64_t /*now_unix_ns*/) {
  if (!agent_) return;
  for (const auto& w : agent_->red().TakeClosedWindows()) {
    for (auto& p : RedWindowToProto(w)) exporter_->AddRedWindow(std::move(p));
  }
}

void ExportComponent::Stop() {
  Tick(0);
  exporter_->Stop(std::chrono::milliseconds(3000));
}

std::shared_ptr<ServerExporter> AttachExporter(pipeline::Agent& agent, const std::string& target,
                                               const std::string& token) {
  ExporterOptions o;
  o.target = target;
  o.token = token;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  o.identity.set_host_name(host);
  std::ifstream mid("/etc/machine-id");
  std::string node;
  if (mid >> node) o.identity.set_node_id(node);
  o.identity.set_agent_version("0.1.0");
  v1::HostInfo info;
  info.set_host_name(host);
  info.set_cpus(static_cast<uint32_t>(sysconf(_SC_NPROCESSORS_ONLN)));
  auto exporter = std::make_shared<ServerExporter>(std::move(o));
  exporter->SetHostInfo(std::move(info));
  agent.AddSink(exporter);
  agent.AddComponent(std::make_unique<ExportComponent>(exporter));
  return exporter;
}

}  // namespace sonde::exporter
