#pragma once
// Per-5-tuple TCP/UDP flow state built from parsed packets seen at one
// capture point: handshake RTT towards each side, retransmissions (and
// spurious ones), out-of-order, zero-window advertisements, resets, SYN and
// SYN/ACK retransmissions, bytes and packets each way. Bounded (LRU eviction)
// with idle and post-close expiry. Pure: time comes from packet timestamps.
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "agent/packet/packet_parser.h"

namespace sonde::packet {

struct FlowKey {
  IpAddress a, b;  // canonical order: (a, pa) < (b, pb)
  uint16_t pa = 0, pb = 0;
  uint8_t proto = 0;
  bool operator==(const FlowKey&) const = default;
  static FlowKey Of(const ParsedPacket& p);
};
struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const;
};

struct DirectionStats {
  uint64_t packets = 0;
  uint64_t bytes = 0;           // L4 payload bytes (on the wire)
  uint64_t retransmissions = 0; // segments re-sending sequence space already seen
  uint64_t spurious_retransmissions = 0;  // ...that the receiver had already acknowledged
  uint64_t out_of_order = 0;    // segments arriving late inside a recent gap (reordering)
  uint64_t zero_window_events = 0;   // advertised window went to zero
  uint64_t zero_window_packets = 0;  // segments advertising a zero window
  uint64_t resets = 0;
  uint64_t syns = 0;  // SYN (client) or SYN/ACK (server) segments
  uint64_t fins = 0;
};

enum class FlowEnd : uint8_t { kOpen = 0, kFin = 1, kReset = 2, kIdle = 3, kEvicted = 4, kFlush = 5 };

struct FlowStats {
  IpAddress client, server;
  uint16_t client_port = 0, server_port = 0;
  uint8_t proto = 0;
  bool saw_syn = false;          // roles known from the handshake (else guessed: lower port = server)
  bool handshake_done = false;
  uint64_t start_ns = 0, last_ns = 0, end_ns = 0;
  FlowEnd end = FlowEnd::kOpen;
  DirectionStats to_server, to_client;
  uint64_t syn_retransmissions = 0;
  uint64_t synack_retransmissions = 0;
  uint64_t rtt_server_side_ns = 0;  // SYN -> SYN/ACK: capture point to server and back
  uint64_t rtt_client_side_ns = 0;  // SYN/ACK -> ACK: capture point to client and back
  uint64_t handshake_ns = 0;        // SYN -> ACK
  // Initial sequence numbers from the SYN / SYN-ACK (stream reassembly starts at isn + 1).
  bool client_isn_valid = false, server_isn_valid = false;
  uint32_t client_isn = 0, server_isn = 0;
  std::string interface;
};

// Receives in-flow payload (for network spans). `to_server` is the direction.
class PayloadSink {
 public:
  virtual ~PayloadSink() = default;
  virtual void OnPayload(uint64_t flow_id, const FlowStats& flow, bool to_server, uint32_t seq,
                         std::span<const uint8_t> payload, uint32_t wire_len, uint64_t ts_ns) = 0;
  virtual void OnFlowEnd(uint64_t flow_id, const FlowStats& flow, uint64_t now_ns) = 0;
};

struct FlowTableOptions {
  size_t max_flows = 65536;
  uint64_t idle_timeout_ns = 60'000'000'000;   // no packet for this long: expire
  uint64_t close_linger_ns = 2'000'000'000;    // after FIN/RST: keep for late packets
  uint64_t reorder_window_ns = 3'000'000;      // late segment inside a gap this soon: out-of-order
};

struct FlowTableCounters {
  uint64_t packets = 0;
  uint64_t flows_created = 0;
  uint64_t flows_ended = 0;
  uint64_t flows_evicted = 0;  // table full
};

class FlowTable {
 public:
  using FlowEndCallback = std::function<void(const FlowStats&)>;
  explicit FlowTable(FlowTableOptions options = {}, PayloadSink* sink = nullptr)
      : options_(options), sink_(sink) {}

  void OnPacket(const ParsedPacket& p, const std::string& interface = {});
  // Ends flows idle too long or closed long enough; returns how many ended.
  size_t Expire(uint64_t now_ns);
  // Ends every flow (shutdown).
  void Flush(uint64_t now_ns);
  void set_on_flow_end(FlowEndCallback cb) { on_end_ = std::move(cb); }

  size_t size() const { return flows_.size(); }
  const FlowStats* Find(const FlowKey& key) const;
  // Every live flow (tests, metrics).
  void ForEach(const std::function<void(const FlowStats&)>& fn) const;
  const FlowTableCounters& counters() const { return counters_; }

 private:
  struct DirState {
    bool seq_init = false;
    uint32_t next_seq = 0;      // just past the highest sequence seen
    bool ack_init = false;
    uint32_t highest_ack = 0;   // highest ack this side sent (peer's data received)
    bool zero_window = false;
    bool fin = false;
    bool hole = false;          // a gap [hole_start, hole_end) opened at hole_ts
    uint32_t hole_start = 0, hole_end = 0;
    uint64_t hole_ts = 0;
    uint64_t last_syn_ts = 0;
    uint64_t first_syn_ts = 0;
    uint32_t isn = 0;
    uint32_t syns = 0;
  };
  struct Flow {
    uint64_t id = 0;
    FlowStats stats;
    DirState to_server, to_client;
    std::list<FlowKey>::iterator lru;
  };

  void EndFlow(std::unordered_map<FlowKey, Flow, FlowKeyHash>::iterator it, FlowEnd why,
               uint64_t now_ns);
  Flow& CreateFlow(const FlowKey& key, const ParsedPacket& p, const std::string& interface);
  void TrackTcp(Flow& f, const ParsedPacket& p, bool to_server);

  FlowTableOptions options_;
  PayloadSink* sink_;
  FlowEndCallback on_end_;
  std::unordered_map<FlowKey, Flow, FlowKeyHash> flows_;
  std::list<FlowKey> lru_;  // front: least recently used
  uint64_t next_id_ = 1;
  FlowTableCounters counters_;
};

}  // namespace sonde::packet
