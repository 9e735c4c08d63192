#include "agent/packet/network_sources.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>

#include "agent/core/yaml_read.h"

namespace sonde::packet {

void AddNetworkFlags(CLI::App& app, NetworkConfig& c) {
  app.add_flag("--tcp-health,!--no-tcp-health", c.tcp_health, "Kernel TCP health metrics (tracepoints)");
  app.add_option("--tcp-window-ms", c.tcp_window_ms, "TCP metrics aggregation window");
  app.add_flag("--tcp-per-client-ip,!--no-tcp-per-client-ip", c.tcp_per_client_ip,
               "TCP metrics per remote client address (default: per address class)");
  app.add_flag("--packet-capture,!--no-packet-capture", c.packet_capture,
               "AF_PACKET capture: packet metrics and network spans");
  app.add_flag("--network-spans,!--no-network-spans", c.network_spans, "Parse HTTP on captured packets");
  app.add_option("--capture-interfaces", c.interfaces, "Regex of interfaces to capture (full match)");
  app.add_option("--snaplen", c.snaplen, "Bytes kept per packet");
  app.add_option("--capture-buffer-mb", c.buffer_mb, "Ring buffer per interface (MiB)");
  app.add_option("--capture-block-timeout-ms", c.block_timeout_ms, "TPACKET_V3 block timeout");
  app.add_flag("--capture-immediate", c.immediate, "Deliver every packet at once (TPACKET_V2)");
  app.add_option("--capture-filter", c.filter, "pcap filter expression");
  app.add_option("--capture-ports", c.ports, "Ports of interest for the default filter");
  app.add_option("--max-flows", c.max_flows, "Flow table bound");
}

absl::Status LoadNetworkYaml(const YAML::Node& n, const std::string& where, NetworkConfig& c) {
  if (!n || n.IsNull()) return absl::OkStatus();
  // Errors read "<where>: network.<key>: ...": the section once, then the key.
  const std::string w = where + ": network";
  if (auto st = core::CheckYamlKeys(n, w,
                                    {"tcp_health", "tcp_window_ms", "tcp_max_sockets", "tcp_per_client_ip",
                                     "packet_capture", "network_spans", "interfaces", "snaplen", "buffer_mb",
                                     "block_timeout_ms", "immediate", "filter", "ports", "max_flows",
                                     "flow_idle_timeout_s"});
      !st.ok())
    return st;
  absl::Status st;
  auto read = [&](const char* key, auto& out) {
    if (st.ok()) st = core::ReadYaml(n, key, w, out);
  };
  read("tcp_health", c.tcp_health);
  read("tcp_window_ms", c.tcp_window_ms);
  read("tcp_max_sockets", c.tcp_max_sockets);
  read("tcp_per_client_ip", c.tcp_per_client_ip);
  read("packet_capture", c.packet_capture);
  read("network_spans", c.network_spans);
  read("interfaces", c.interfaces);
  read("snaplen", c.snaplen);
  read("buffer_mb", c.buffer_mb);
  read("block_timeout_ms", c.block_timeout_ms);
  read("immediate", c.immediate);
  read("filter", c.filter);
  read("ports", c.ports);
  read("max_flows", c.max_flows);
  read("flow_idle_timeout_s", c.flow_idle_timeout_s);
  return st;
}

void NetworkSources::AppendPrometheus(std::string& out) const {
  if (tcp) tcp->AppendPrometheus(out);
  if (packets) packets->AppendPrometheus(out);
}

absl::StatusOr<NetworkSources> StartNetworkSources(const NetworkConfig& c,
                                                   PacketCollector::RecordCallback on_record,
                                                   tcp::TcpCollector::WindowCallback on_window,
                                                   const core::MonotonicToRealtime* clock) {
  NetworkSources s;
  if (c.tcp_health) {
    tcp::TcpCollectorOptions o;
    o.kernel.max_sockets = c.tcp_max_sockets;
    o.kernel.include_pids = c.include_pids;
    o.kernel.exclude_pids = c.exclude_pids;
    o.window_ms = c.tcp_window_ms;
    o.aggregator.per_client_ip = c.tcp_per_client_ip;
    auto t = tcp::TcpCollector::Start(o, std::move(on_window));
    if (!t.ok()) return absl::Status(t.status().code(), "tcp health: " + std::string(t.status().message()));
    s.tcp = std::move(*t);
  }
  if (c.packet_capture) {
    PacketCollectorOptions o;
    o.capture.interface_regex = c.interfaces;
    o.capture.snaplen = c.snaplen;
    o.capture.buffer_bytes = c.buffer_mb << 20;
    o.capture.timeout_ms = c.block_timeout_ms;
    o.capture.immediate = c.immediate;
    o.capture.filter = c.filter.empty() ? FilterForPorts(c.ports) : c.filter;
    o.flows.max_flows = c.max_flows;
    o.flows.idle_timeout_ns = c.flow_idle_timeout_s * 1'000'000'000ull;
    o.build_spans = c.network_spans;
    o.clock = clock;
    auto p = PacketCollector::Start(o, std::move(on_record));
    if (!p.ok()) return absl::Status(p.status().code(), "packet capture: " + std::string(p.status().message()));
    s.packets = std::move(*p);
  }
  return s;
}

}  // namespace sonde::packet
