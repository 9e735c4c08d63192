#include "agent/packet/packet_metrics.h"

#include "agent/metrics/prometheus_text.h"

namespace sonde::packet {
namespace {
void AddDir(DirectionStats& a, const DirectionStats& b) {
  a.packets += b.packets;
  a.bytes += b.bytes;
  a.retransmissions += b.retransmissions;
  a.spurious_retransmissions += b.spurious_retransmissions;
  a.out_of_order += b.out_of_order;
  a.zero_window_events += b.zero_window_events;
  a.zero_window_packets += b.zero_window_packets;
  a.resets += b.resets;
  a.syns += b.syns;
  a.fins += b.fins;
}
}  // namespace

PacketPairKey PairOf(const FlowStats& f) {
  return {f.client.ToString(), f.server.ToString(), f.server_port, f.proto};
}

void PacketPairTotals::Add(const FlowStats& f) {
  ++flows;
  AddDir(to_server, f.to_server);
  AddDir(to_client, f.to_client);
  syn_retransmissions += f.syn_retransmissions;
  synack_retransmissions += f.synack_retransmissions;
  if (f.handshake_done) {
    ++handshakes;
    handshake_ns_sum += f.handshake_ns;
    rtt_server_side_ns_sum += f.rtt_server_side_ns;
    rtt_client_side_ns_sum += f.rtt_client_side_ns;
  }
}

void PacketMetrics::OnFlowEnd(const FlowStats& f) {
  auto key = PairOf(f);
  if (ended_.size() >= max_pairs_ && !ended_.count(key)) return;  // bounded: new pairs dropped
  ended_[key].Add(f);
}

std::map<PacketPairKey, PacketPairTotals> PacketMetrics::Snapshot(const FlowTable& live) const {
  auto out = ended_;
  live.ForEach([&](const FlowStats& f) { out[PairOf(f)].Add(f); });
  return out;
}

void PacketMetrics::AppendPrometheus(std::string& out, const FlowTable& live,
                                     const std::vector<InterfaceStats>& interfaces) const {
  using metrics::prometheus::AppendMetricHeader;
  using metrics::prometheus::AppendSample;
  using metrics::prometheus::Labels;
  const auto snap = Snapshot(live);
  auto labels = [](const PacketPairKey& k) {
    return Labels{{"client", k.client},
                  {"server", k.server},
                  {"server_port", std::to_string(k.server_port)},
                  {"transport", k.proto == 6 ? "tcp" : "udp"}};
  };
  struct Def {
    std::string_view name, help;
    uint64_t DirectionStats::*field;
  };
  static constexpr Def kDir[] = {
      {"sonde_packet_packets_total", "Packets seen on the capture interfaces.", &DirectionStats::packets},
      {"sonde_packet_bytes_total", "L4 payload bytes seen on the capture interfaces.", &DirectionStats::bytes},
      {"sonde_packet_retransmissions_total", "Segments re-sending sequence space already seen.",
       &DirectionStats::retransmissions},
      {"sonde_packet_spurious_retransmissions_total",
       "Retransmitted segments the receiver had already acknowledged.",
       &DirectionStats::spurious_retransmissions},
      {"sonde_packet_out_of_order_total", "Segments that arrived late inside a recent sequence gap.",
       &DirectionStats::out_of_order},
      {"sonde_packet_zero_window_events_total", "Advertised receive window dropped to zero.",
       &DirectionStats::zero_window_events},
      {"sonde_packet_resets_total", "TCP RST segments, by sender.", &DirectionStats::resets},
  };
  for (const auto& def : kDir) {
    AppendMetricHeader(out, def.name, "counter", def.help);
    for (const auto& [k, t] : snap) {
      Labels l = labels(k);
      l.emplace_back("direction", "client_to_server");
      AppendSample(out, def.name, l, t.to_server.*def.field);
      l.back().second = "server_to_client";
      AppendSample(out, def.name, l, t.to_client.*def.field);
    }
  }
  AppendMetricHeader(out, "sonde_packet_flows_total", "counter", "Flows seen (5-tuples).");
  for (const auto& [k, t] : snap) AppendSample(out, "sonde_packet_flows_total", labels(k), t.flows);
  AppendMetricHeader(out, "sonde_packet_syn_retransmissions_total", "counter", "Repeated SYNs.");
  for (const auto& [k, t] : snap) AppendSample(out, "sonde_packet_syn_retransmissions_total", labels(k), t.syn_retransmissions);
  AppendMetricHeader(out, "sonde_packet_synack_retransmissions_total", "counter", "Repeated SYN/ACKs.");
  for (const auto& [k, t] : snap) AppendSample(out, "sonde_packet_synack_retransmissions_total", labels(k), t.synack_retransmissions);
  AppendMetricHeader(out, "sonde_packet_handshake_seconds", "summary",
                     "Handshake time at the capture point (SYN -> ACK); side=server: SYN -> SYN/ACK, side=client: SYN/ACK -> ACK.");
  for (const auto& [k, t] : snap) {
    if (!t.handshakes) continue;
    const std::pair<std::string_view, uint64_t> parts[] = {
        {"total", t.handshake_ns_sum}, {"server", t.rtt_server_side_ns_sum}, {"client", t.rtt_client_side_ns_sum}};
    for (const auto& [side, sum] : parts) {
      Labels l = labels(k);
      l.emplace_back("side", std::string(side));
      AppendSample(out, "sonde_packet_handshake_seconds_sum", l, double(sum) / 1e9);
      AppendSample(out, "sonde_packet_handshake_seconds_count", l, t.handshakes);
    }
  }
  AppendMetricHeader(out, "sonde_packet_capture_received_total", "counter", "Packets that passed the kernel filter (pcap_stats ps_recv).");
  for (const auto& i : interfaces) AppendSample(out, "sonde_packet_capture_received_total", Labels{{"interface", i.name}}, i.received);
  AppendMetricHeader(out, "sonde_packet_capture_dropped_total", "counter", "Packets dropped for lack of ring space (pcap_stats ps_drop).");
  for (const auto& i : interfaces) AppendSample(out, "sonde_packet_capture_dropped_total", Labels{{"interface", i.name}}, i.dropped);
  AppendMetricHeader(out, "sonde_packet_capture_interface_dropped_total", "counter", "Packets dropped by the interface (pcap_stats ps_ifdrop).");
  for (const auto& i : interfaces) AppendSample(out, "sonde_packet_capture_interface_dropped_total", Labels{{"interface", i.name}}, i.if_dropped);
}

}  // namespace sonde::packet
