#pragma once
// Plugs the TCP health collector and the packet collector into the agent
// pipeline: started with the agent, their Prometheus text registered with the
// agent's /metrics, network spans handed to the pipeline's sinks on the
// pipeline thread (queued by the capture thread, drained on Tick).
#include <deque>
#include <mutex>

#include "agent/packet/network_sources.h"
#include "agent/pipeline/pipeline.h"

namespace sonde::packet {

class NetworkComponent : public pipeline::Component {
 public:
  // `on_tcp_window` (optional) receives every closed TCP health window, on the
  // collector's thread (e.g. the exporter, which ships them to sonde-server).
  explicit NetworkComponent(NetworkConfig config, tcp::TcpCollector::WindowCallback on_tcp_window = nullptr,
                            size_t max_queued_spans = 65536)
      : config_(std::move(config)), on_tcp_window_(std::move(on_tcp_window)), max_queued_(max_queued_spans) {}
  absl::Status Start(pipeline::Agent& agent) override;
  void Tick(uint64_t now_unix_ns) override;
  void Stop() override;

  uint64_t dropped_spans() const;

 private:
  NetworkConfig config_;
  tcp::TcpCollector::WindowCallback on_tcp_window_;
  size_t max_queued_;
  pipeline::Agent* agent_ = nullptr;
  std::shared_ptr<NetworkSources> sources_;
  mutable std::mutex mu_;
  std::deque<trace::Span> queue_;
  uint64_t dropped_ = 0;
};

}  // namespace sonde::packet
