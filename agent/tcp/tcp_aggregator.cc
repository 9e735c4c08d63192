#include "agent/tcp/tcp_aggregator.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "agent/capture/tuple_format.h"
#include "agent/tcp/address_class.h"

namespace sonde::tcp {

std::string_view SideName(Side side) {
  switch (side) {
    case Side::kClient: return "client";
    case Side::kServer: return "server";
    default: return "unknown";
  }
}

void HandshakeHistogram::Observe(uint64_t ns) {
  const double seconds = static_cast<double>(ns) / 1e9;
  size_t i = 0;
  while (i < kHandshakeBucketsSeconds.size() && seconds > kHandshakeBucketsSeconds[i]) ++i;
  ++counts[i];
  ++count;
  sum_ns += ns;
}

void HandshakeHistogram::Merge(const HandshakeHistogram& other) {
  for (size_t i = 0; i < counts.size(); ++i) counts[i] += other.counts[i];
  count += other.count;
  sum_ns += other.sum_ns;
}

void PairCounters::Add(const PairCounters& o) {
  connections_opened += o.connections_opened;
  connections_closed += o.connections_closed;
  failed_refused += o.failed_refused;
  failed_timeout += o.failed_timeout;
  failed_other += o.failed_other;
  retrans_segs += o.retrans_segs;
  syn_retrans += o.syn_retrans;
  synack_retrans += o.synack_retrans;
  zero_window_events += o.zero_window_events;
  resets_sent += o.resets_sent;
  resets_received += o.resets_received;
  bytes_client_to_server += o.bytes_client_to_server;
  bytes_server_to_client += o.bytes_server_to_client;
  handshake.Merge(o.handshake);
}

bool LocalIsClient(const sonde_tcp_sock_stats& s, const std::bitset<65536>* server_ports) {
  if (s.role == SONDE_ROLE_CLIENT) return true;
  if (s.role == SONDE_ROLE_SERVER) return false;
  if (server_ports != nullptr) {
    const bool local_serves = server_ports->test(s.tuple.sport);
    const bool remote_serves = server_ports->test(s.tuple.dport);
    if (local_serves != remote_serves) return remote_serves;
  }
  // Nothing known: the lower port is taken for the server's.
  return s.tuple.sport >= s.tuple.dport;
}

PairKey PairKeyOf(const sonde_tcp_sock_stats& s, const std::string& process,
                  const std::bitset<65536>* server_ports) {
  const auto& t = s.tuple;
  Side side = s.role == SONDE_ROLE_CLIENT   ? Side::kClient
              : s.role == SONDE_ROLE_SERVER ? Side::kServer
                                            : Side::kUnknown;
  const bool local_is_client = LocalIsClient(s, server_ports);
  PairKey key;
  key.side = side;
  key.process = process;
  if (local_is_client) {
    key.client = capture::FormatAddress(t.family, t.saddr);
    key.server = capture::FormatAddress(t.family, t.daddr);
    key.server_port = t.dport;
  } else {
    key.client = capture::FormatAddress(t.family, t.daddr);
    key.server = capture::FormatAddress(t.family, t.saddr);
    key.server_port = t.sport;
  }
  return key;
}

namespace {

std::string CommOf(const sonde_tcp_sock_stats& s) {
  return std::string(s.comm, strnlen(s.comm, sizeof(s.comm)));
}

uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : 0; }

bool NewlySet(uint32_t now, uint32_t before, uint32_t bit) {
  return (now & bit) && !(before & bit);
}

std::string PairKeyBytes(const sonde_tcp_pair_key& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(k));
}

}  // namespace

// Counter deltas of one socket between two reads.
PairCounters TcpAggregator::SocketDelta(const sonde_tcp_sock_stats& cur, const SocketPrev& prev,
                                        bool local_is_client) {
  PairCounters d;
  if (NewlySet(cur.flags, prev.flags, SONDE_TCP_ESTABLISHED) && !(cur.flags & SONDE_TCP_LATE_JOIN)) {
    d.connections_opened = 1;
    if (cur.handshake_ns > 0) d.handshake.Observe(cur.handshake_ns);
  }
  if (NewlySet(cur.flags, prev.flags, SONDE_TCP_CLOSED) && (cur.flags & SONDE_TCP_ESTABLISHED))
    d.connections_closed = 1;
  if (NewlySet(cur.flags, prev.flags, SONDE_TCP_FAILED_REFUSED)) d.failed_refused = 1;
  if (NewlySet(cur.flags, prev.flags, SONDE_TCP_FAILED_TIMEOUT)) d.failed_timeout = 1;
  if (NewlySet(cur.flags, prev.flags, SONDE_TCP_FAILED_OTHER)) d.failed_other = 1;
  d.retrans_segs = Delta(cur.retrans_segs, prev.retrans_segs);
  d.syn_retrans = Delta(cur.syn_retrans, prev.syn_retrans);
  d.zero_window_events = Delta(cur.zero_window_events, prev.zero_window_events);
  d.resets_sent = Delta(cur.resets_sent, prev.resets_sent);
  d.resets_received = Delta(cur.resets_received, prev.resets_received);
  const uint64_t sent = Delta(cur.bytes_acked, prev.bytes_acked);
  const uint64_t received = Delta(cur.bytes_received, prev.bytes_received);
  d.bytes_client_to_server = local_is_client ? sent : received;
  d.bytes_server_to_client = local_is_client ? received : sent;
  return d;
}

PairKey TcpAggregator::AggregationKey(PairKey key, bool client_is_remote) const {
  if (!options_.per_client_ip && client_is_remote) key.client = std::string(AddressClass(key.client));
  return key;
}

uint32_t TcpAggregator::SlotOf(PairKey key) {
  auto [it, inserted] = key_slots_.try_emplace(std::move(key), static_cast<uint32_t>(keys_.size()));
  if (inserted) keys_.push_back(it->first);
  return it->second;
}

TcpWindow TcpAggregator::Update(std::span<const SocketSnapshot> sockets,
                                std::span<const PairSnapshot> pairs, uint64_t now_ns) {
  std::lock_guard lock(mu_);
  TcpWindow window;
  window.start_ns = last_now_ns_ ? last_now_ns_ : now_ns;
  window.end_ns = now_ns;
  last_now_ns_ = now_ns;
  ++counters_.snapshots;

  // Interned keys are bounded: past a few times the series bound, start over.
  if (keys_.size() > 4 * options_.max_pairs + 1024) {
    keys_.clear();
    key_slots_.clear();
    ++key_epoch_;
  }
  for (const auto& snap : sockets) {
    uint16_t port = 0;
    if (snap.stats.role == SONDE_ROLE_SERVER) port = snap.stats.tuple.sport;
    if (snap.stats.role == SONDE_ROLE_CLIENT) port = snap.stats.tuple.dport;
    if (port != 0 && !server_ports_.test(port)) {
      server_ports_.set(port);
      ++key_epoch_;  // a socket of unknown side may now be keyed otherwise
    }
  }
  std::map<PairKey, PairWindow> by_pair;
  const uint64_t update = counters_.snapshots;
  for (const auto& snap : sockets) {
    const auto& cur = snap.stats;
    auto [it, inserted] = previous_.try_emplace(snap.cookie);
    SocketPrev prev = it->second;
    if (inserted) {
      ++counters_.sockets_seen;
      if (cur.flags & SONDE_TCP_LATE_JOIN) {
        // Bytes moved before the agent started are not this window's.
        prev.bytes_acked = cur.bytes_acked;
        prev.bytes_received = cur.bytes_received;
      }
    }
    // A late-joined socket's first byte sample happens after it was first seen.
    if ((cur.flags & SONDE_TCP_LATE_JOIN) && prev.last_sample_ns == 0 && cur.last_sample_ns != 0) {
      prev.bytes_acked = cur.bytes_acked;
      prev.bytes_received = cur.bytes_received;
    }
    const bool local_is_client = LocalIsClient(cur, &server_ports_);
    SocketPrev& entry = it->second;
    if (inserted || entry.key_epoch != key_epoch_ || entry.pid != cur.pid || entry.role != cur.role) {
      entry.key_slot = SlotOf(AggregationKey(PairKeyOf(cur, CommOf(cur), &server_ports_), !local_is_client));
      entry.key_epoch = key_epoch_;
      entry.pid = cur.pid;
      entry.role = cur.role;
    }
    if (slot_windows_.size() < keys_.size()) {
      slot_windows_.resize(keys_.size());
      slot_update_.resize(keys_.size(), 0);
    }
    PairWindow& pw = slot_windows_[entry.key_slot];
    if (slot_update_[entry.key_slot] != update) {  // first socket of this key in this window
      slot_update_[entry.key_slot] = update;
      touched_slots_.push_back(entry.key_slot);
      pw = PairWindow{};
      pw.key = keys_[entry.key_slot];
    }
    pw.delta.Add(SocketDelta(cur, prev, local_is_client));
    const bool open = (cur.flags & SONDE_TCP_ESTABLISHED) && !(cur.flags & SONDE_TCP_CLOSED);
    if (open) ++pw.active_connections;
    if (cur.srtt_us > 0 && (open || NewlySet(cur.flags, prev.flags, SONDE_TCP_CLOSED))) {
      pw.srtt_min_us = pw.srtt_samples ? std::min(pw.srtt_min_us, cur.srtt_us) : cur.srtt_us;
      pw.srtt_max_us = std::max(pw.srtt_max_us, cur.srtt_us);
      pw.srtt_sum_us += cur.srtt_us;
      ++pw.srtt_samples;
      pw.cwnd_last = cur.snd_cwnd;
    }
    if (cur.flags & SONDE_TCP_CLOSED) {
      previous_.erase(it);
    } else {
      SocketPrev& p = it->second;
      p.bytes_acked = cur.bytes_acked;
      p.bytes_received = cur.bytes_received;
      p.last_sample_ns = cur.last_sample_ns;
      p.flags = cur.flags;
      p.retrans_segs = cur.retrans_segs;
      p.syn_retrans = cur.syn_retrans;
      p.zero_window_events = cur.zero_window_events;
      p.resets_sent = cur.resets_sent;
      p.resets_received = cur.resets_received;
      p.update = update;
    }
  }
  // Sockets no longer in the kernel's map.
  absl::erase_if(previous_, [update](const auto& kv) { return kv.second.update != update; });
  // A flat map keeps its capacity when emptied: shrink once the sockets have
  // fallen to an eighth of it.
  if (previous_.capacity() > 8 * previous_.size() + 1024) previous_.rehash(0);
  for (uint32_t slot : touched_slots_) {
    PairWindow& pw = slot_windows_[slot];
    PairKey key = pw.key;
    by_pair.emplace(std::move(key), std::move(pw));
  }
  touched_slots_.clear();

  // Events without a full socket: RSTs for closed ports, SYN/ACK retransmissions.
  std::map<std::string, sonde_tcp_pair_stats> next_pairs;
  for (const auto& p : pairs) {
    const std::string raw = PairKeyBytes(p.key);
    sonde_tcp_pair_stats prev{};
    if (auto it = previous_pairs_.find(raw); it != previous_pairs_.end()) prev = it->second;
    next_pairs.emplace(raw, p.stats);
    PairCounters d;
    d.resets_sent = Delta(p.stats.resets_sent, prev.resets_sent);
    d.synack_retrans = Delta(p.stats.synack_retrans, prev.synack_retrans);
    if (d.resets_sent == 0 && d.synack_retrans == 0) continue;
    PairKey key;
    key.client = capture::FormatAddress(p.key.family, p.key.raddr);
    key.server = capture::FormatAddress(p.key.family, p.key.laddr);
    key.server_port = p.key.lport;
    key.side = Side::kServer;
    key = AggregationKey(std::move(key), true);
    PairWindow& pw = by_pair[key];
    pw.key = key;
    pw.delta.Add(d);
  }
  previous_pairs_ = std::move(next_pairs);

  // Fold into the cumulative series; pairs with no socket left read 0 active.
  for (auto& [key, s] : series_) {
    s.active = 0;
  }
  for (auto& [key, pw] : by_pair) {
    Series& s = series_[key];
    s.totals.Add(pw.delta);
    s.active = pw.active_connections;
    if (pw.srtt_samples) s.srtt_mean_us = pw.srtt_mean_us();
    s.last_update_ns = now_ns;
    window.pairs.push_back(pw);
  }
  EvictIfNeeded();
  return window;
}

void TcpAggregator::EvictIfNeeded() {
  if (series_.size() <= options_.max_pairs) return;
  // One scan evicts down to 7/8 of the bound: a scan per eviction made every
  // update O(pairs) once the bound was reached (tens of thousands of
  // connections: most of the agent's CPU, issue #22).
  const size_t target = options_.max_pairs - options_.max_pairs / 8;
  size_t excess = series_.size() - target;
  std::vector<std::map<PairKey, Series>::iterator> idle;
  idle.reserve(series_.size());
  for (auto it = series_.begin(); it != series_.end(); ++it) {
    if (!it->second.active) idle.push_back(it);
  }
  const size_t from_idle = std::min(excess, idle.size());
  std::nth_element(idle.begin(), idle.begin() + static_cast<std::ptrdiff_t>(from_idle), idle.end(),
                   [](const auto& a, const auto& b) { return a->second.last_update_ns < b->second.last_update_ns; });
  for (size_t i = 0; i < from_idle; ++i) series_.erase(idle[i]);
  counters_.pairs_evicted += from_idle;
  excess -= from_idle;
  // Not enough idle series: active ones go too (oldest keys first).
  for (; excess > 0 && !series_.empty(); --excess) {
    series_.erase(series_.begin());
    ++counters_.pairs_evicted;
  }
}

bool TcpAggregator::Totals(const PairKey& key, PairCounters* out) const {
  std::lock_guard lock(mu_);
  auto it = series_.find(key);
  if (it == series_.end()) return false;
  *out = it->second.totals;
  return true;
}

std::map<PairKey, PairCounters> TcpAggregator::AllTotals() const {
  std::lock_guard lock(mu_);
  std::map<PairKey, PairCounters> out;
  for (const auto& [k, s] : series_) out.emplace(k, s.totals);
  return out;
}

AggregatorCounters TcpAggregator::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

}  // namespace sonde::tcp
