#pragma once
// Plugs the TCP health collector and the packet collector into the agent
// pipeline: started with the agent, their Prometheus text registered with the
// agent's /metrics. Exchanges reconstructed from packets (conn::ConnRecords,
// queued by the capture thread) take the agent's one span path on the
// pipeline thread: Agent::EmitRecord on Tick (span building, RED, sampling,
// redaction, sinks).
#include <mutex>
#include <vector>

#include "agent/packet/network_sources.h"
#include "agent/pipeline/pipeline.h"

namespace sonde::packet {

class NetworkComponent : public pipeline::Component {
 public:
  // Closed TCP health windows go to the agent's metric sinks
  // (Agent::EmitTcpWindow, on the collector's thread).
  explicit NetworkComponent(NetworkConfig config, size_t max_queued_records = 65536)
      : config_(std::move(config)), max_queued_(max_queued_records) {}
  absl::Status Start(pipeline::Agent& agent) override;
  void Tick(uint64_t now_unix_ns) override;
  void Stop() override;

  // Queues one record for the next Tick (any thread; the capture thread in
  // the agent). Over the bound it is dropped and counted.
  void OnRecord(conn::ConnRecord&& record);
  uint64_t dropped_records() const;

 private:
  NetworkConfig config_;
  size_t max_queued_;
  pipeline::Agent* agent_ = nullptr;
  mutable std::mutex mu_;
  std::vector<conn::ConnRecord> queue_;     // guarded by mu_
  uint64_t dropped_ = 0;                    // guarded by mu_
  std::vector<conn::ConnRecord> draining_;  // pipeline thread only
  // Last: destroyed first, so the capture thread (which calls OnRecord) is
  // joined before the queue it writes to goes away.
  std::shared_ptr<NetworkSources> sources_;
};

}  // namespace sonde::packet
