#pragma once
// Capture thread: pcap -> parser -> flow table -> network spans, plus the
// packet metrics. Start() opens the handles; Stop()/destructor joins.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/packet/flow_table.h"
#include "agent/packet/network_spans.h"
#include "agent/packet/packet_metrics.h"
#include "agent/packet/pcap_capture.h"

namespace sonde::packet {

struct PacketCollectorOptions {
  CaptureOptions capture;
  FlowTableOptions flows;
  NetworkSpanOptions spans;
  bool build_spans = true;
  int poll_ms = 100;
};

class PacketCollector {
 public:
  using SpanCallback = NetworkSpanBuilder::SpanCallback;
  using FlowEndCallback = FlowTable::FlowEndCallback;
  static absl::StatusOr<std::unique_ptr<PacketCollector>> Start(const PacketCollectorOptions& options,
                                                                SpanCallback on_span,
                                                                FlowEndCallback on_flow_end = nullptr);
  ~PacketCollector();
  void Stop();

  void AppendPrometheus(std::string& out) const;
  std::vector<InterfaceStats> capture_stats() const;
  // Runs fn with the flow table locked (tests, JSON).
  void WithFlows(const std::function<void(const FlowTable&)>& fn) const;
  // Ends every flow now (emits pending spans).
  void FlushFlows();

 private:
  PacketCollector(const PacketCollectorOptions& options, SpanCallback on_span, FlowEndCallback on_end);
  void Run();

  PacketCollectorOptions options_;
  std::unique_ptr<PacketCapture> capture_;
  FlowEndCallback on_flow_end_;
  NetworkSpanBuilder spans_;
  mutable std::mutex mu_;  // flow table, metrics, capture stats
  FlowTable flows_;
  PacketMetrics metrics_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sonde::packet
