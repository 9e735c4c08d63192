#pragma once
// Capture thread: pcap -> parser -> flow table -> FlowConnFeed (the syscall
// path's connection tracker and protocol sessions) -> records for network
// spans, plus the packet metrics. Start() opens the handles; Stop()/destructor
// joins.
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/status/statusor.h"
#include "agent/packet/flow_table.h"
#include "agent/core/clock.h"
#include "agent/packet/flow_conn_feed.h"
#include "agent/packet/packet_metrics.h"
#include "agent/packet/pcap_capture.h"

namespace sonde::packet {

struct PacketCollectorOptions {
  CaptureOptions capture;
  FlowTableOptions flows;
  conn::TrackerOptions tracker = PacketTrackerOptions();
  bool build_spans = true;  // reconstruct exchanges (records for network spans)
  int poll_ms = 100;
  // Converts capture time to the records' CLOCK_MONOTONIC: the agent's clock,
  // so that its span builder turns them back into the same Unix times. Null:
  // the collector's own, re-measured every 10 s. Must outlive the collector.
  const core::MonotonicToRealtime* clock = nullptr;
};

class PacketCollector {
 public:
  // Called on the capture thread, with the collector's lock held.
  using RecordCallback = FlowConnFeed::RecordCallback;
  using FlowEndCallback = FlowTable::FlowEndCallback;
  static absl::StatusOr<std::unique_ptr<PacketCollector>> Start(const PacketCollectorOptions& options,
                                                                RecordCallback on_record,
                                                                FlowEndCallback on_flow_end = nullptr);
  ~PacketCollector();
  void Stop();

  void AppendPrometheus(std::string& out) const;
  std::vector<InterfaceStats> capture_stats() const;
  // Runs fn with the flow table locked (tests, JSON).
  void WithFlows(const std::function<void(const FlowTable&)>& fn) const;
  // Ends every flow now (hands on pending records).
  void FlushFlows();

 private:
  PacketCollector(const PacketCollectorOptions& options, RecordCallback on_record, FlowEndCallback on_end);
  void Run();

  PacketCollectorOptions options_;
  std::unique_ptr<PacketCapture> capture_;
  FlowEndCallback on_flow_end_;
  core::MonotonicToRealtime own_clock_;  // used when options_.clock is null
  FlowConnFeed feed_;
  mutable std::mutex mu_;  // flow table, metrics, capture stats
  FlowTable flows_;
  PacketMetrics metrics_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sonde::packet
