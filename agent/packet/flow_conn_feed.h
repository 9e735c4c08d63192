#pragma once
// Packets into the syscall path's connection tracker. Each TCP flow's payload
// (and each UDP flow's datagrams: one event per datagram, the server as its
// peer, for DNS) becomes the capture records the socket BPF program would have written
// (sonde_data_event / sonde_conn_event, bpf/include/sonde/abi.h) and goes to a
// conn::ConnectionTracker of its own: reassembly by TCP sequence, protocol
// inference and the protocol sessions are the syscall path's, and what comes
// out is conn::ConnRecords for the agent's one span path
// (pipeline::Agent::EmitRecord).
//
// One flow is one connection, seen from the client (the client view):
// tuple local = client, remote = server; client -> server bytes are egress,
// server -> client bytes ingress; role = client when the capture saw the
// handshake. A flow joined mid-stream has role unknown (a late join, as for a
// socket first seen mid-life): the protocol infers the role from the bytes,
// which also corrects a wrong client/server guess of the flow table.
// Record times are CLOCK_MONOTONIC like the syscall path's (capture
// timestamps are converted with the agent's clock); the connection's sock_id
// is 0 (there is no socket).
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/conn/tracker.h"
#include "agent/core/clock.h"
#include "agent/packet/flow_table.h"

namespace sonde::packet {

// The tracker's defaults with packet-sized reordering: a segment lost before
// the capture point comes back only after the sender's retransmission
// timeout (>= 200 ms on Linux), and a window of segments can be in flight
// behind the hole.
conn::TrackerOptions PacketTrackerOptions();

struct FlowConnFeedCounters {
  uint64_t segments = 0;          // TCP payload segments fed to the tracker
  uint64_t events = 0;            // data events built (a segment over SONDE_PAYLOAD_MAX makes several)
  uint64_t truncated_segments = 0;  // cut by the snaplen: the missing bytes become a gap
  uint64_t datagrams = 0;         // UDP payloads fed to the tracker, one event each
  uint64_t flows_unclaimed = 0;   // flows no protocol claimed: their later segments are skipped
  uint64_t unclaimed_segments = 0;
  uint64_t records = 0;           // exchanges handed on
};

class FlowConnFeed final : public PayloadSink {
 public:
  using RecordCallback = std::function<void(conn::ConnRecord&&)>;
  // `clock` converts capture (Unix) time to CLOCK_MONOTONIC; it must outlive the feed.
  FlowConnFeed(RecordCallback on_record, const core::MonotonicToRealtime& clock,
               conn::TrackerOptions options = PacketTrackerOptions());

  void OnPayload(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                 std::span<const uint8_t> payload, uint32_t wire_len, uint64_t ts_ns) override;
  void OnFlowEnd(uint64_t flow_id, const FlowStats& flow, uint64_t now_ns) override;
  // Reorder windows and protocol timeouts (the tracker's Tick); CLOCK_MONOTONIC.
  void Tick(uint64_t now_monotonic_ns);

  const FlowConnFeedCounters& counters() const { return counters_; }
  // Gaps, reordering, unknown protocols, parse errors (walks the connections).
  conn::TrackerCounters tracker_counters() const { return tracker_.counters(); }
  // The counters above that say what did not become a record, Prometheus text.
  void AppendPrometheus(std::string& out) const;

 private:
  struct FlowState {
    bool anchored[2] = {false, false};  // stream start told to the tracker (0: to server)
    bool unclaimed = false;
  };
  uint64_t ToMonotonic(uint64_t unix_ns) const;
  // A UDP payload: one data event without sequence number.
  void OnDatagram(uint64_t flow_id, const FlowStats& flow, bool to_server, std::span<const uint8_t> payload,
                  uint32_t wire_len, uint64_t ts_ns);
  // One data event: `captured` bytes of payload out of `bytes` on the wire.
  void FeedData(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                std::span<const uint8_t> captured, uint64_t bytes, uint64_t ts_monotonic_ns);
  // Hands on the tracker's records and remembers the flows it gave up on.
  void Drain();

  RecordCallback on_record_;
  const core::MonotonicToRealtime& clock_;
  conn::ConnectionTracker tracker_;
  std::unordered_map<uint64_t, FlowState> flows_;  // by flow id, erased at the flow's end
  std::vector<uint8_t> event_;                     // scratch record, reused
  std::vector<conn::ConnRecord> records_;
  FlowConnFeedCounters counters_;
};

}  // namespace sonde::packet
