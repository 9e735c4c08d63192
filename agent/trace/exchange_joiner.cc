#include "agent/trace/exchange_joiner.h"

#include <sys/socket.h>

#include <cstring>

namespace sonde::trace {
namespace {

uint64_t IdKey(const SpanId& id) {
  uint64_t v;
  std::memcpy(&v, id.data(), sizeof(v));
  return v;
}

// IPv4 as v4-mapped IPv6, so a dual-stack socket and an IPv4 one agree.
std::array<uint8_t, 16> Normalised(uint16_t family, const uint8_t* addr) {
  std::array<uint8_t, 16> out{};
  if (family == AF_INET) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, addr, 4);
  } else {
    std::memcpy(out.data(), addr, 16);
  }
  return out;
}

bool Loopback(const std::array<uint8_t, 16>& a) {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a.data(), kMappedPrefix, 12) == 0) return a[12] == 127;
  for (size_t i = 0; i < 15; ++i) {
    if (a[i] != 0) return false;
  }
  return a[15] == 1;
}

bool SystemSpanWithTuple(const Span& s) { return s.source == SpanSource::kSystem && s.deferred; }

}  // namespace

bool ExchangeKeyOf(const Span& span, ExchangeJoiner::Key* key) {
  if (!SystemSpanWithTuple(span)) return false;
  const sonde_tuple& t = span.deferred->tuple;
  // The tuple is the socket's: s = this end, d = the peer.
  if (span.kind == SpanKind::kClient) {
    key->client_addr = Normalised(t.family, t.saddr);
    key->client_port = t.sport;
  } else if (span.kind == SpanKind::kServer) {
    key->client_addr = Normalised(t.family, t.daddr);
    key->client_port = t.dport;
  } else {
    return false;
  }
  key->seq_valid = span.request_seq_valid;
  key->seq = span.request_seq_valid ? span.request_tcp_seq : 0;
  return true;
}

bool ExchangeJoiner::Candidate(const Span& s) const {
  // A server span with an incoming context still joins: its client sent the
  // same context, and the edge to the client span is what is missing.
  return s.kind == SpanKind::kServer && SystemSpanWithTuple(s) &&
         (s.parent_reason == LinkReason::kNone || s.parent_reason == LinkReason::kTraceparent);
}

bool ExchangeJoiner::OnNode(const Span& server) const {
  const sonde_tuple& t = server.deferred->tuple;
  const auto peer = Normalised(t.family, t.daddr);
  return Loopback(peer) || node_addresses_.contains(peer);
}

bool ExchangeJoiner::Matches(const Client& c, const Span& server) const {
  if (server.request_seq_valid) return true;  // the key holds the sequence number
  // Same client endpoint (one connection) and the server span inside the
  // client span: under keep-alive only the current exchange nests.
  return c.start_ns <= server.start_unix_ns + options_.nesting_slack_ns &&
         server.end_unix_ns <= c.end_ns + options_.nesting_slack_ns;
}

void ExchangeJoiner::Learn(const Span& span) {
  if (node_addresses_.size() >= options_.max_node_addresses) return;
  const sonde_tuple& t = span.deferred->tuple;
  node_addresses_.insert(Normalised(t.family, t.saddr));
}

void ExchangeJoiner::Observe(const Span& span) {
  if (!options_.enabled || !SystemSpanWithTuple(span)) return;
  Learn(span);
  Key key;
  if (span.kind != SpanKind::kClient || !ExchangeKeyOf(span, &key)) return;
  Client c{span.span_id, span.trace_id, span.start_unix_ns, span.end_unix_ns, false};
  if (!waiting_.empty()) {
    auto w = waiting_.find(key);
    if (w != waiting_.end() && Matches(c, *w->second.group.front())) {
      // The server group was waiting for this span: it now waits inside the
      // linker with it (held_groups_ unchanged).
      Attach(span.span_id, w->second.group, key.seq_valid ? LinkReason::kTcpSequence : LinkReason::kTimeNesting);
      waiting_.erase(w);
      // With a sequence number the key names this one exchange, now joined:
      // nothing else will look the client up, so it is not indexed. (The
      // usual order -- a server finishes before its client -- then costs no
      // index insert; at 50k req/s a 500 ms index was the joiner's main cost.)
      if (key.seq_valid) return;
    }
  }
  while (clients_.size() >= options_.max_clients && !client_expiry_.empty()) {
    const Expiry& e = client_expiry_.front();
    auto it = clients_.find(e.key);
    if (it != clients_.end() && IdKey(it->second.span_id) == e.id) {
      clients_.erase(it);
      ++counters_.evicted;
    }
    client_expiry_.pop_front();
  }
  clients_.insert_or_assign(key, c);
  client_expiry_.push_back(Expiry{key, IdKey(span.span_id), span.end_unix_ns + options_.client_ttl_ns});
}

void ExchangeJoiner::Attach(const SpanId& client, SpanGroup& group, LinkReason reason) {
  Span& root = *group.front();
  root.parent_span_id = client;
  root.parent_reason = reason;
  ++(reason == LinkReason::kTcpSequence ? counters_.links_tcp_sequence : counters_.links_time_nesting);
  attached_[IdKey(client)].push_back(std::move(group));
  group.clear();
}

// Moves a joined server group into its client's trace. Client spans of the
// group were indexed with the old trace id: a late server span attaching to
// them must find the new one.
void ExchangeJoiner::Retrace(SpanGroup& group, const TraceId& trace) {
  const TraceId old = group.front()->trace_id;
  if (old == trace) return;
  for (auto& owned : group) {
    Span& s = *owned;
    if (s.trace_id != old) continue;  // an egress carrying its own context keeps it
    s.trace_id = trace;
    Key key;
    if (s.kind == SpanKind::kClient && ExchangeKeyOf(s, &key)) {
      auto it = clients_.find(key);
      if (it != clients_.end() && it->second.span_id == s.span_id) it->second.trace_id = trace;
    }
  }
}

void ExchangeJoiner::Add(SpanGroup& group, const Deliver& deliver) {
  if (group.empty()) return;
  if (!options_.enabled) {
    deliver(group);
    return;
  }
  // 1. Client spans leaving the linker: their trace id is final now, and the
  //    server groups attached to them join the group.
  const size_t n = group.size();
  for (size_t i = 0; i < n; ++i) {
    const Span& client = *group[i];
    if (client.kind != SpanKind::kClient || !SystemSpanWithTuple(client)) continue;
    const SpanId span_id = client.span_id;
    const TraceId trace_id = client.trace_id;
    Key key;
    if (ExchangeKeyOf(client, &key)) {
      auto it = clients_.find(key);
      if (it != clients_.end() && it->second.span_id == span_id) {
        it->second.left = true;
        it->second.trace_id = trace_id;
      }
    }
    if (attached_.empty()) continue;
    auto a = attached_.find(IdKey(span_id));
    if (a == attached_.end()) continue;
    for (auto& g : a->second) {
      Retrace(g, trace_id);
      for (auto& s : g) group.push_back(std::move(s));
      --held_groups_;
    }
    attached_.erase(a);
  }

  // 2. A server root: join its client's trace, or wait for the client.
  const Span& root = *group.front();
  Key key;
  if (!Candidate(root) || !ExchangeKeyOf(root, &key)) {
    deliver(group);
    return;
  }
  const LinkReason reason = key.seq_valid ? LinkReason::kTcpSequence : LinkReason::kTimeNesting;
  if (auto it = clients_.find(key); it != clients_.end() && Matches(it->second, root)) {
    const Client c = it->second;
    if (!c.left) {
      if (held_groups_ >= options_.max_held_groups) {
        ++counters_.evicted;
        deliver(group);
        return;
      }
      ++held_groups_;
      Attach(c.span_id, group, reason);
      return;
    }
    // The client span already left (records reached us out of order): join
    // its trace; the sampler remembers the trace's decision.
    group.front()->parent_span_id = c.span_id;
    group.front()->parent_reason = reason;
    ++(reason == LinkReason::kTcpSequence ? counters_.links_tcp_sequence : counters_.links_time_nesting);
    ++counters_.late_links;
    Retrace(group, c.trace_id);
    deliver(group);
    return;
  }
  if (!OnNode(root)) {
    ++counters_.not_held;
    deliver(group);
    return;
  }
  if (held_groups_ >= options_.max_held_groups) {
    ++counters_.evicted;
    deliver(group);
    return;
  }
  const uint64_t deadline = root.end_unix_ns + options_.hold_ns;
  auto [w, inserted] = waiting_.try_emplace(key);
  if (!inserted) {
    // Same key while one waits: no sequence number on a keep-alive
    // connection whose previous client span never came. The older leaves.
    ++counters_.replaced;
    SpanGroup old = std::move(w->second.group);
    w->second.group.clear();
    --held_groups_;
    deliver(old);
  }
  w->second.group = std::move(group);
  group.clear();
  w->second.deadline_ns = deadline;
  ++held_groups_;
  waiting_expiry_.push_back(Expiry{key, deadline, deadline});
}

void ExchangeJoiner::Flush(uint64_t now_unix_ns, const Deliver& deliver) {
  while (!waiting_expiry_.empty() && waiting_expiry_.front().at_ns <= now_unix_ns) {
    const Expiry e = waiting_expiry_.front();
    waiting_expiry_.pop_front();
    auto it = waiting_.find(e.key);
    if (it == waiting_.end() || it->second.deadline_ns != e.id) continue;  // joined or replaced
    SpanGroup group = std::move(it->second.group);
    waiting_.erase(it);
    --held_groups_;
    ++counters_.timeouts;
    deliver(group);
  }
  while (!client_expiry_.empty() && client_expiry_.front().at_ns <= now_unix_ns) {
    const Expiry& e = client_expiry_.front();
    auto it = clients_.find(e.key);
    if (it != clients_.end() && IdKey(it->second.span_id) == e.id) clients_.erase(it);
    client_expiry_.pop_front();
  }
}

void ExchangeJoiner::FlushAll(const Deliver& deliver) {
  std::vector<SpanGroup> rest;
  for (auto& [key, w] : waiting_) {
    ++counters_.timeouts;
    rest.push_back(std::move(w.group));
  }
  for (auto& [id, groups] : attached_) {
    for (auto& g : groups) rest.push_back(std::move(g));
  }
  waiting_.clear();
  attached_.clear();
  waiting_expiry_.clear();
  clients_.clear();
  client_expiry_.clear();
  held_groups_ = 0;
  for (auto& g : rest) deliver(g);
}

}  // namespace sonde::trace
