#include "agent/packet/flow_conn_feed.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "agent/metrics/prometheus_text.h"

namespace sonde::packet {
namespace {

// Client view: the client's address is the local end (abi.h: local = s*).
sonde_tuple ClientViewTuple(const FlowStats& flow) {
  sonde_tuple t{};
  static_assert(sizeof(t.saddr) == sizeof(flow.client.bytes));
  std::memcpy(t.saddr, flow.client.bytes.data(), sizeof(t.saddr));
  std::memcpy(t.daddr, flow.server.bytes.data(), sizeof(t.daddr));
  t.sport = flow.client_port;
  t.dport = flow.server_port;
  t.family = flow.client.family == 6 ? AF_INET6 : AF_INET;
  t.l4_protocol = flow.proto;  // TCP or UDP: a UDP flow's datagrams carry the server as their peer
  return t;
}

// Without the handshake the flow table only guessed who the client is.
uint8_t RoleOf(const FlowStats& flow) { return flow.saw_syn ? SONDE_ROLE_CLIENT : SONDE_ROLE_UNKNOWN; }

}  // namespace

conn::TrackerOptions PacketTrackerOptions() {
  conn::TrackerOptions options;
  options.stream.reorder_window_ns = 1'000'000'000;
  options.stream.max_reorder_chunks = 256;
  return options;
}

FlowConnFeed::FlowConnFeed(RecordCallback on_record, const core::MonotonicToRealtime& clock,
                           conn::TrackerOptions options)
    : on_record_(std::move(on_record)), clock_(clock), tracker_(options) {}

uint64_t FlowConnFeed::ToMonotonic(uint64_t unix_ns) const {
  const int64_t monotonic = static_cast<int64_t>(unix_ns) - clock_.offset_ns();
  // A timestamp from before boot is garbage; 0 would read as "no time" downstream.
  return monotonic > 0 ? static_cast<uint64_t>(monotonic) : 1;
}

void FlowConnFeed::OnPayload(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                             std::span<const uint8_t> payload, uint32_t wire_len, uint64_t ts_ns) {
  if (flow.proto != IPPROTO_TCP) {
    OnDatagram(flow_id, flow, to_server, payload, wire_len, ts_ns);
    return;
  }
  FlowState& state = flows_[flow_id];
  if (state.unclaimed) {
    ++counters_.unclaimed_segments;
    return;
  }
  ++counters_.segments;
  const uint64_t ts = ToMonotonic(ts_ns);
  const int side = to_server ? 0 : 1;
  if (!state.anchored[side]) {
    state.anchored[side] = true;
    // The stream starts right after the SYN: an empty event at isn + 1 lets
    // the tracker hold a first segment that arrives ahead of its predecessor.
    const bool isn_valid = to_server ? flow.client_isn_valid : flow.server_isn_valid;
    const uint32_t isn = to_server ? flow.client_isn : flow.server_isn;
    if (isn_valid) FeedData(flow_id, flow, to_server, isn + 1, {}, 0, ts);
    if (state.unclaimed) return;
  }
  // A longer payload than the IP header announces is padding, not data.
  const size_t captured = std::min<size_t>(payload.size(), wire_len);
  if (captured < wire_len) ++counters_.truncated_segments;
  // A data event carries at most SONDE_PAYLOAD_MAX bytes (GRO/TSO segments on
  // lo and veth are larger): split, the last piece also counting the bytes
  // the snaplen cut.
  size_t offset = 0;
  do {
    const size_t piece = std::min<size_t>(captured - offset, SONDE_PAYLOAD_MAX);
    const bool last = offset + piece == captured;
    const uint64_t bytes = last ? wire_len - offset : piece;
    FeedData(flow_id, flow, to_server, seq + static_cast<uint32_t>(offset), payload.subspan(offset, piece),
             bytes, ts);
    offset += piece;
  } while (offset < captured && !state.unclaimed);
}

void FlowConnFeed::OnDatagram(uint64_t flow_id, const FlowStats& flow, bool to_server,
                              std::span<const uint8_t> payload, uint32_t wire_len, uint64_t ts_ns) {
  // One datagram, one event (a datagram protocol reads each call whole); no
  // sequence numbers, nothing to reorder.
  FlowState& state = flows_[flow_id];
  if (state.unclaimed) {
    ++counters_.unclaimed_segments;
    return;
  }
  ++counters_.datagrams;
  const size_t captured = std::min<size_t>({payload.size(), wire_len, SONDE_PAYLOAD_MAX});
  if (captured < wire_len) ++counters_.truncated_segments;
  FeedData(flow_id, flow, to_server, 0, payload.first(captured), wire_len, ToMonotonic(ts_ns));
}

void FlowConnFeed::FeedData(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                            std::span<const uint8_t> captured, uint64_t bytes, uint64_t ts_monotonic_ns) {
  sonde_data_event ev{};
  ev.hdr.type = SONDE_EVENT_DATA;
  ev.hdr.size = static_cast<uint32_t>(sizeof(ev) + captured.size());
  ev.hdr.ts_enter_ns = ts_monotonic_ns;
  ev.hdr.ts_exit_ns = ts_monotonic_ns;
  ev.sock_id = flow_id;
  ev.tuple = ClientViewTuple(flow);
  ev.fd = -1;
  ev.direction = to_server ? SONDE_DIR_EGRESS : SONDE_DIR_INGRESS;
  ev.role = RoleOf(flow);
  ev.syscall = SONDE_SYS_UNKNOWN;
  ev.flags = flow.proto == IPPROTO_TCP ? SONDE_DATA_SEQ_VALID : 0;
  if (captured.size() < bytes) ev.flags |= SONDE_DATA_TRUNCATED;
  ev.bytes = bytes;
  ev.tcp_seq = seq;
  ev.payload_len = static_cast<uint32_t>(captured.size());
  event_.resize(sizeof(ev) + captured.size());
  std::memcpy(event_.data(), &ev, sizeof(ev));
  if (!captured.empty()) std::memcpy(event_.data() + sizeof(ev), captured.data(), captured.size());
  ++counters_.events;
  tracker_.OnEvent(event_, records_);
  Drain();
}

void FlowConnFeed::OnFlowEnd(uint64_t flow_id, const FlowStats& flow, uint64_t) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return;  // no payload: the tracker never saw it
  const bool unclaimed = it->second.unclaimed;
  flows_.erase(it);
  if (unclaimed) return;  // the tracker already let it go
  sonde_conn_event ev{};
  ev.hdr.type = SONDE_EVENT_CONN_CLOSE;
  ev.hdr.size = sizeof(ev);
  ev.hdr.ts_enter_ns = ev.hdr.ts_exit_ns = ToMonotonic(flow.last_ns);
  ev.sock_id = flow_id;
  ev.tuple = ClientViewTuple(flow);
  ev.fd = -1;
  ev.role = RoleOf(flow);
  ev.syscall = SONDE_SYS_CLOSE;  // final, unlike a state change (no events can follow)
  event_.resize(sizeof(ev));
  std::memcpy(event_.data(), &ev, sizeof(ev));
  tracker_.OnEvent(event_, records_);
  Drain();
}

void FlowConnFeed::Tick(uint64_t now_monotonic_ns) {
  tracker_.Tick(now_monotonic_ns, records_);
  Drain();
}

void FlowConnFeed::AppendPrometheus(std::string& out) const {
  using metrics::prometheus::AppendMetricHeader;
  using metrics::prometheus::AppendSample;
  const conn::TrackerCounters t = tracker_.counters();
  AppendMetricHeader(out, "sonde_packet_records_total", "counter",
                     "Exchanges reconstructed from packets (each becomes a network span before sampling).");
  AppendSample(out, "sonde_packet_records_total", {}, counters_.records);
  AppendMetricHeader(out, "sonde_packet_gap_bytes_total", "counter",
                     "Flow bytes the protocol parsers never saw (loss before the capture point, snaplen, bounds).");
  AppendSample(out, "sonde_packet_gap_bytes_total", {}, t.gap_bytes);
  AppendMetricHeader(out, "sonde_packet_unclaimed_flows_total", "counter",
                     "TCP/UDP flows no protocol parser claimed (their later segments/datagrams are skipped).");
  AppendSample(out, "sonde_packet_unclaimed_flows_total", {}, counters_.flows_unclaimed);
  AppendMetricHeader(out, "sonde_packet_parse_errors_total", "counter",
                     "Protocol parse errors on packet payload (each followed by a resync).");
  AppendSample(out, "sonde_packet_parse_errors_total", {}, t.protocol.parse_errors);
}

void FlowConnFeed::Drain() {
  for (auto& record : records_) {
    record.conn.sock_id = 0;  // the tracker keyed the flow by its id; there is no socket inode
    ++counters_.records;
    if (on_record_) on_record_(std::move(record));
  }
  records_.clear();
  auto& unclaimed = tracker_.unclaimed_sockets();
  for (const uint64_t flow_id : unclaimed) {
    auto it = flows_.find(flow_id);
    if (it != flows_.end() && !it->second.unclaimed) {
      it->second.unclaimed = true;
      ++counters_.flows_unclaimed;
    }
  }
  unclaimed.clear();
}

}  // namespace sonde::packet
