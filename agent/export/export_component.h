#pragma once
// Plugs the ServerExporter into the agent pipeline: every finished span goes
// to the exporter (a SpanSink), and each tick forwards the RED aggregator's
// closed windows. Stop() drains what is queued for a few seconds.
#include <memory>

#include "agent/export/server_exporter.h"
#include "agent/pipeline/pipeline.h"

namespace sonde::exporter {

class ExportComponent final : public pipeline::Component {
 public:
  explicit ExportComponent(std::shared_ptr<ServerExporter> exporter) : exporter_(std::move(exporter)) {}
  absl::Status Start(pipeline::Agent& agent) override;
  void Tick(uint64_t now_unix_ns) override;
  void Stop() override;

 private:
  std::shared_ptr<ServerExporter> exporter_;
  pipeline::Agent* agent_ = nullptr;
};

// One call for main.cc: builds the exporter for `target`, adds it as a sink
// and as a component. Returns the exporter (for counters).
std::shared_ptr<ServerExporter> AttachExporter(pipeline::Agent& agent, const std::string& target,
                                               const std::string& token);

}  // namespace sonde::exporter
