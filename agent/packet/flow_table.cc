#include "agent/packet/flow_table.h"

#include <cstring>

namespace sonde::packet {
namespace {

bool SeqLt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
bool SeqLe(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }
bool SeqGt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }

}  // namespace

FlowKey FlowKey::Of(const ParsedPacket& p) {
  FlowKey k;
  k.proto = p.l4_protocol;
  const bool src_first = p.src < p.dst || (p.src == p.dst && p.sport <= p.dport);
  if (src_first) {
    k.a = p.src; k.pa = p.sport; k.b = p.dst; k.pb = p.dport;
  } else {
    k.a = p.dst; k.pa = p.dport; k.b = p.src; k.pb = p.sport;
  }
  return k;
}

size_t FlowKeyHash::operator()(const FlowKey& k) const {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const void* data, size_t n) {
    const auto* b = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  mix(k.a.bytes.data(), 16);
  mix(k.b.bytes.data(), 16);
  mix(&k.pa, 2);
  mix(&k.pb, 2);
  mix(&k.proto, 1);
  return h;
}

FlowTable::Flow& FlowTable::CreateFlow(const FlowKey& key, const ParsedPacket& p,
                                       const std::string& interface) {
  if (flows_.size() >= options_.max_flows && !lru_.empty()) {
    auto victim = flows_.find(lru_.front());
    ++counters_.flows_evicted;
    EndFlow(victim, FlowEnd::kEvicted, p.ts_ns);
  }
  auto [it, inserted] = flows_.try_emplace(key);
  Flow& f = it->second;
  f.id = next_id_++;
  ++counters_.flows_created;
  FlowStats& s = f.stats;
  s.proto = p.l4_protocol;
  s.start_ns = s.last_ns = p.ts_ns;
  s.interface = interface;
  // The sender of a bare SYN is the client; otherwise the lower port is the server's.
  bool src_is_client;
  if (p.l4_protocol == 6 && (p.flags & kSyn)) {
    src_is_client = !(p.flags & kAck);
    s.saw_syn = true;
  } else {
    src_is_client = p.sport > p.dport || (p.sport == p.dport && p.src < p.dst);
  }
  s.client = src_is_client ? p.src : p.dst;
  s.client_port = src_is_client ? p.sport : p.dport;
  s.server = src_is_client ? p.dst : p.src;
  s.server_port = src_is_client ? p.dport : p.sport;
  lru_.push_back(key);
  f.lru = std::prev(lru_.end());
  return f;
}

void FlowTable::OnPacket(const ParsedPacket& p, const std::string& interface) {
  if (p.l4_protocol != 6 && p.l4_protocol != 17) return;
  ++counters_.packets;
  const FlowKey key = FlowKey::Of(p);
  auto it = flows_.find(key);
  // A new SYN on a finished flow: the 4-tuple is being reused.
  if (it != flows_.end() && p.l4_protocol == 6 && (p.flags & kSyn) && !(p.flags & kAck) &&
      it->second.stats.end != FlowEnd::kOpen) {
    EndFlow(it, it->second.stats.end, p.ts_ns);
    it = flows_.end();
  }
  Flow& f = it != flows_.end() ? it->second : CreateFlow(key, p, interface);
  if (it != flows_.end()) lru_.splice(lru_.end(), lru_, f.lru);
  FlowStats& s = f.stats;
  s.last_ns = std::max(s.last_ns, p.ts_ns);
  const bool to_server = p.src == s.client && p.sport == s.client_port;
  DirectionStats& d = to_server ? s.to_server : s.to_client;
  ++d.packets;
  d.bytes += p.payload_len;
  if (p.l4_protocol == 6) {
    TrackTcp(f, p, to_server);
  } else if (sink_ && !p.payload.empty()) {
    sink_->OnPayload(f.id, s, to_server, 0, p.payload, p.payload_len, p.ts_ns);
  }
}

void FlowTable::TrackTcp(Flow& f, const ParsedPacket& p, bool to_server) {
  FlowStats& s = f.stats;
  DirState& me = to_server ? f.to_server : f.to_client;
  DirState& peer = to_server ? f.to_client : f.to_server;
  DirectionStats& d = to_server ? s.to_server : s.to_client;

  if (p.flags & kRst) {
    ++d.resets;
    if (s.end == FlowEnd::kOpen) {
      s.end = FlowEnd::kReset;
      s.end_ns = p.ts_ns;
    }
    return;
  }
  if (p.flags & kAck) {
    if (!me.ack_init || SeqGt(p.ack, me.highest_ack)) me.highest_ack = p.ack;
    me.ack_init = true;
  }
  // Zero window: counted as a transition, every such segment also counted.
  if (!(p.flags & kSyn)) {
    if (p.window == 0) {
      ++d.zero_window_packets;
      if (!me.zero_window) ++d.zero_window_events;
      me.zero_window = true;
    } else {
      me.zero_window = false;
    }
  }

  if (p.flags & kSyn) {
    ++d.syns;
    const bool is_synack = (p.flags & kAck) != 0;
    if (me.syns > 0) {
      if (is_synack) ++s.synack_retransmissions; else ++s.syn_retransmissions;
    }
    ++me.syns;
    if (me.first_syn_ts == 0) me.first_syn_ts = p.ts_ns;
    me.last_syn_ts = p.ts_ns;
    me.isn = p.seq;
    (to_server ? s.client_isn : s.server_isn) = p.seq;
    (to_server ? s.client_isn_valid : s.server_isn_valid) = true;
    me.seq_init = true;
    me.next_seq = p.seq + 1;
    if (is_synack && s.rtt_server_side_ns == 0 && peer.last_syn_ts != 0 && p.ts_ns >= peer.last_syn_ts)
      s.rtt_server_side_ns = p.ts_ns - peer.last_syn_ts;
    return;
  }
  // Third step of the handshake: the client's first ACK of the SYN/ACK.
  if (to_server && !s.handshake_done && peer.last_syn_ts != 0 && (p.flags & kAck) &&
      p.ack == peer.isn + 1) {
    s.handshake_done = true;
    if (p.ts_ns >= peer.last_syn_ts) s.rtt_client_side_ns = p.ts_ns - peer.last_syn_ts;
    if (me.first_syn_ts && p.ts_ns >= me.first_syn_ts) s.handshake_ns = p.ts_ns - me.first_syn_ts;
  }

  const uint32_t len = p.payload_len + ((p.flags & kFin) ? 1 : 0);
  if (len > 0) {
    const uint32_t end = p.seq + len;
    if (!me.seq_init) {
      me.seq_init = true;
      me.next_seq = end;
    } else if (p.seq == me.next_seq) {
      me.next_seq = end;
    } else if (SeqGt(p.seq, me.next_seq)) {
      // Bytes before this segment are missing here: remember the gap.
      me.hole = true;
      me.hole_start = me.next_seq;
      me.hole_end = p.seq;
      me.hole_ts = p.ts_ns;
      me.next_seq = end;
    } else if (p.payload_len == 1 && !(p.flags & kFin) && p.seq + 1 == me.next_seq && !me.hole) {
      // Keep-alive (one old byte): neither a retransmission nor reordering.
    } else {
      const bool in_hole = me.hole && SeqLe(me.hole_start, p.seq) && SeqLt(p.seq, me.hole_end);
      if (in_hole && p.ts_ns - me.hole_ts <= options_.reorder_window_ns) {
        ++d.out_of_order;
      } else {
        ++d.retransmissions;
        if (peer.ack_init && SeqLe(end, peer.highest_ack)) ++d.spurious_retransmissions;
      }
      if (in_hole) {
        if (p.seq == me.hole_start) me.hole_start = end;
        if (!SeqLt(me.hole_start, me.hole_end)) me.hole = false;
      }
      if (SeqGt(end, me.next_seq)) me.next_seq = end;
    }
  }
  if (p.flags & kFin) {
    ++d.fins;
    me.fin = true;
    if (peer.fin && s.end == FlowEnd::kOpen) {
      s.end = FlowEnd::kFin;
      s.end_ns = p.ts_ns;
    }
  }
  if (sink_ && !p.payload.empty())
    sink_->OnPayload(f.id, s, to_server, p.seq, p.payload, p.payload_len, p.ts_ns);
}

void FlowTable::EndFlow(std::unordered_map<FlowKey, Flow, FlowKeyHash>::iterator it, FlowEnd why,
                        uint64_t now_ns) {
  Flow& f = it->second;
  if (f.stats.end == FlowEnd::kOpen || why == FlowEnd::kEvicted) {
    f.stats.end = why;
    if (f.stats.end_ns == 0) f.stats.end_ns = f.stats.last_ns;
  }
  ++counters_.flows_ended;
  if (sink_) sink_->OnFlowEnd(f.id, f.stats, now_ns);
  if (on_end_) on_end_(f.stats);
  lru_.erase(f.lru);
  flows_.erase(it);
}

size_t FlowTable::Expire(uint64_t now_ns) {
  size_t n = 0;
  for (auto it = flows_.begin(); it != flows_.end();) {
    const FlowStats& s = it->second.stats;
    const bool closed_long = s.end != FlowEnd::kOpen && now_ns > s.end_ns + options_.close_linger_ns;
    const bool idle = now_ns > s.last_ns + options_.idle_timeout_ns;
    auto next = std::next(it);
    if (closed_long || idle) {
      EndFlow(it, idle && s.end == FlowEnd::kOpen ? FlowEnd::kIdle : s.end, now_ns);
      ++n;
    }
    it = next;
  }
  return n;
}

void FlowTable::Flush(uint64_t now_ns) {
  while (!flows_.empty()) EndFlow(flows_.begin(), FlowEnd::kFlush, now_ns);
}

const FlowStats* FlowTable::Find(const FlowKey& key) const {
  auto it = flows_.find(key);
  return it == flows_.end() ? nullptr : &it->second.stats;
}

void FlowTable::ForEach(const std::function<void(const FlowStats&)>& fn) const {
  for (const auto& [k, f] : flows_) fn(f.stats);
}

}  // namespace sonde::packet
