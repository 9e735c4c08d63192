#pragma once
// Cumulative per-pair packet metrics (client -> server:port) from finished and
// live flows, in Prometheus text format.
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "agent/packet/flow_table.h"
#include "agent/packet/pcap_capture.h"

namespace sonde::packet {

struct PacketPairKey {
  std::string client, server;
  uint16_t server_port = 0;
  uint8_t proto = 0;
  auto operator<=>(const PacketPairKey&) const = default;
};

struct PacketPairTotals {
  uint64_t flows = 0;
  DirectionStats to_server, to_client;
  uint64_t syn_retransmissions = 0, synack_retransmissions = 0;
  uint64_t handshakes = 0;
  uint64_t handshake_ns_sum = 0, rtt_server_side_ns_sum = 0, rtt_client_side_ns_sum = 0;
  void Add(const FlowStats& f);
};

class PacketMetrics {
 public:
  explicit PacketMetrics(size_t max_pairs = 4096) : max_pairs_(max_pairs) {}
  void OnFlowEnd(const FlowStats& f);
  // Totals of ended flows plus the current values of `live` ones.
  std::map<PacketPairKey, PacketPairTotals> Snapshot(const FlowTable& live) const;
  void AppendPrometheus(std::string& out, const FlowTable& live,
                        const std::vector<InterfaceStats>& interfaces) const;

 private:
  size_t max_pairs_;
  std::map<PacketPairKey, PacketPairTotals> ended_;
};

PacketPairKey PairOf(const FlowStats& f);

}  // namespace sonde::packet
