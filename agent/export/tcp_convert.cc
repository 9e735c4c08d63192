#include "agent/export/tcp_convert.h"

namespace sonde::exporter {

std::vector<v1::TcpWindow> TcpWindowToProto(const tcp::TcpWindow& window, uint64_t offset) {
  std::vector<v1::TcpWindow> out;
  out.reserve(window.pairs.size());
  for (const auto& pair : window.pairs) {
    v1::TcpWindow w;
    w.set_window_start_unix_ns(window.start_ns + offset);
    w.set_window_end_unix_ns(window.end_ns + offset);
    w.mutable_client()->set_address(pair.key.client);
    w.mutable_client()->set_port(0);  // aggregated over ephemeral client ports
    w.mutable_server()->set_address(pair.key.server);
    w.mutable_server()->set_port(pair.key.server_port);
    w.set_comm(pair.key.process);
    const auto& d = pair.delta;
    w.set_handshake_rtt_sum_us(d.handshake.sum_ns / 1000);
    w.set_handshake_count(d.handshake.count);
    w.set_srtt_us(static_cast<uint32_t>(pair.srtt_mean_us()));
    w.set_retransmits(d.retrans_segs);
    w.set_zero_window_events(d.zero_window_events);
    w.set_resets_sent(d.resets_sent);
    w.set_resets_received(d.resets_received);
    w.set_connect_failures(d.failed());
    w.set_connect_timeouts(d.failed_timeout);
    // Bytes from the local side's point of view: a server sends server->client.
    const bool local_is_server = pair.key.side == tcp::Side::kServer;
    w.set_bytes_sent(local_is_server ? d.bytes_server_to_client : d.bytes_client_to_server);
    w.set_bytes_received(local_is_server ? d.bytes_client_to_server : d.bytes_server_to_client);
    w.set_active_connections(pair.active_connections);
    w.set_opened_connections(d.connections_opened);
    w.set_closed_connections(d.connections_closed);
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace sonde::exporter
