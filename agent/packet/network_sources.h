#pragma once
// One place to start the TCP health collector (kernel tracepoints) and the
// packet collector (libpcap) from configuration, so the agent's `run` wires
// both with a few lines: start, register AppendPrometheus with the metrics
// server, route records (network spans) and TCP windows to the pipeline.
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/packet/packet_collector.h"
#include "agent/tcp/tcp_collector.h"

namespace CLI {
class App;
}
namespace YAML {
class Node;
}

namespace sonde::packet {

struct NetworkConfig {
  bool tcp_health = true;         // kernel TCP health (tracepoints, no per-packet events)
  uint64_t tcp_window_ms = 1000;  // aggregation window of the TCP metrics
  uint32_t tcp_max_sockets = 65536;
  // TCP metrics per client address instead of its class (loopback, private,
  // link_local, public) where the client is the remote end: opt-in, since an
  // internet-facing server would get one series per visitor.
  bool tcp_per_client_ip = false;
  // The capture's process filter (set from --pid / --exclude-pid by `run`).
  std::vector<uint32_t> include_pids, exclude_pids;
  bool packet_capture = false;    // AF_PACKET capture: packet metrics and network spans
  bool network_spans = true;      // run the HTTP parsers on captured payloads
  std::string interfaces = "(eth|en|veth|cali|lxc).*|lo";  // regex, full match
  int snaplen = 4096;
  int buffer_mb = 8;
  int block_timeout_ms = 20;
  bool immediate = false;
  std::string filter;             // pcap filter; empty: "tcp or udp" (or the ports below)
  std::vector<uint16_t> ports;    // ports of interest for the default filter
  size_t max_flows = 65536;
  uint64_t flow_idle_timeout_s = 60;
};

// --tcp-health, --packet-capture, --capture-interfaces, --snaplen, ... (docs/tcp-metrics.md).
void AddNetworkFlags(CLI::App& app, NetworkConfig& config);
// Reads the `network:` section of the agent's YAML file (keys as in
// docs/tcp-metrics.md); `where` (the file, or "environment") starts every
// error, which then names network.<key>.
absl::Status LoadNetworkYaml(const YAML::Node& network, const std::string& where, NetworkConfig& config);

struct NetworkSources {
  std::unique_ptr<tcp::TcpCollector> tcp;
  std::unique_ptr<PacketCollector> packets;
  // TCP + packet metrics in Prometheus text format (a metrics::Collector).
  void AppendPrometheus(std::string& out) const;
};

// Starts what the configuration enables. A source that cannot start (no BTF,
// no CAP_NET_RAW, no matching interface) is an error naming it. `clock`
// (optional, must outlive the sources) times the records: the agent's clock.
absl::StatusOr<NetworkSources> StartNetworkSources(const NetworkConfig& config,
                                                   PacketCollector::RecordCallback on_record,
                                                   tcp::TcpCollector::WindowCallback on_window,
                                                   const core::MonotonicToRealtime* clock = nullptr);

}  // namespace sonde::packet
