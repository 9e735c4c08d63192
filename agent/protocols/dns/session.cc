#include "agent/protocols/dns/session.h"

#include <algorithm>

namespace sonde::protocols::dns {
namespace {

uint16_t Be16(std::string_view b, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(b[at]) << 8) | static_cast<uint8_t>(b[at + 1]));
}

}  // namespace

DnsSession::DnsSession(Role role, bool late_join, Transport transport) : role_(role), transport_(transport) {
  // A TCP connection joined mid-way may start inside a frame. A UDP socket
  // has no such state: every datagram stands alone.
  if (late_join && transport_ == Transport::kTcp) resync_[0] = resync_[1] = true;
}

bool DnsSession::IsQueryDir(Direction dir) const {
  return role_ == Role::kServer ? dir == Direction::kIngress : dir == Direction::kEgress;
}

void DnsSession::OnMessage(Direction dir, std::string_view bytes, uint64_t wire_bytes, const ChunkInfo& first,
                           const ChunkInfo& last) {
  Message m;
  const ParseStatus s = ParseMessage(bytes, &m);
  if (s != ParseStatus::kOk) {
    // kNeedMore here means a datagram cut short (capture limit inside the question).
    ++counters_.parse_errors;
    return;
  }
  if (role_ == Role::kUnknown) {
    // Whoever sends the query is the client.
    const bool egress = dir == Direction::kEgress;
    role_ = m.header.response == egress ? Role::kServer : Role::kClient;
  }
  L7Message wire;
  wire.first_byte_ns = dir == Direction::kIngress ? first.ts_exit_ns : first.ts_enter_ns;
  wire.last_byte_ns = last.ts_exit_ns;
  wire.bytes = wire_bytes;
  wire.thread_id = first.thread_id;
  wire.first_tcp_seq = first.tcp_seq;
  wire.complete = true;
  const bool query_dir = IsQueryDir(dir);
  if (m.header.response == query_dir) {
    ++counters_.unpaired;  // a query where answers flow (or the reverse): not ours to pair
    return;
  }
  const Key key{m.header.id, first.peer.port, first.peer.family, first.peer.addr};
  if (!m.header.response) {
    if (pending_.size() >= kMaxPending) {
      auto oldest = std::min_element(pending_.begin(), pending_.end(), [](const auto& a, const auto& b) {
        return a.second.wire.first_byte_ns < b.second.wire.first_byte_ns;
      });
      ++counters_.unpaired;
      Emit(std::move(oldest->second), nullptr, nullptr);
      pending_.erase(oldest);
    }
    auto [it, inserted] = pending_.try_emplace(key);
    if (!inserted) {
      // A retransmission (same id, same peer): the lookup started with the first copy.
      if (it->second.message.name == m.name && it->second.message.qtype == m.qtype) return;
      ++counters_.unpaired;
      Emit(std::move(it->second), nullptr, nullptr);
    }
    it->second = Query{std::move(m), std::move(wire), first.peer};
    return;
  }
  auto it = pending_.find(key);
  if (it == pending_.end() || (m.header.questions != 0 && (it->second.message.name != m.name ||
                                                           it->second.message.qtype != m.qtype))) {
    ++counters_.unpaired;  // the query was not seen (or this answers another question)
    return;
  }
  Query q = std::move(it->second);
  pending_.erase(it);
  Emit(std::move(q), &m, &wire);
}

void DnsSession::Emit(Query&& q, const Message* response, const L7Message* response_wire) {
  L7Record& r = ready_.emplace_back();
  r.protocol = L7Protocol::kDns;
  r.scheme = transport_ == Transport::kUdp ? "udp" : "tcp";
  r.method = TypeName(q.message.qtype);
  r.path = q.message.name;
  r.stream_id = q.message.header.id;
  r.peer = q.peer;
  r.request = std::move(q.wire);
  if (response != nullptr) {
    r.response = *response_wire;
    r.response.headers.Add("rcode", RcodeName(response->header.rcode));
    r.response.headers.Add("answers", std::to_string(response->header.answers));
    if (response->header.truncated) r.response.headers.Add("truncated", "1");
  } else {
    r.flags |= kRecordNoResponse;
  }
  ++counters_.records;
}

size_t DnsSession::FindTcpResync(const StreamView& view, size_t pos) const {
  for (const ChunkInfo& c : view.chunks) {
    if (c.offset < pos || c.offset + 2 + kHeaderBytes > view.bytes.size()) continue;
    const uint16_t length = Be16(view.bytes, c.offset);
    if (length < kHeaderBytes) continue;
    Message m;
    const std::string_view frame = view.bytes.substr(c.offset + 2, length);
    if (ParseMessage(frame, &m) == ParseStatus::kOk &&
        (PlausibleMessage(m, false) || PlausibleMessage(m, true))) {
      return c.offset;
    }
  }
  return std::string_view::npos;
}

size_t DnsSession::OnBytes(Direction dir, const StreamView& view) {
  if (view.bytes.empty() || view.chunks.empty()) return view.bytes.size();
  if (transport_ == Transport::kUdp) {
    // Each call is one datagram; a datagram is never continued by the next call.
    for (size_t i = 0; i < view.chunks.size(); ++i) {
      const uint64_t start = view.chunks[i].offset;
      const uint64_t end = i + 1 < view.chunks.size() ? view.chunks[i + 1].offset : view.bytes.size();
      if (start >= end) continue;
      OnMessage(dir, view.bytes.substr(start, end - start), end - start, view.chunks[i], view.chunks[i]);
    }
    return view.bytes.size();
  }
  bool& resync = resync_[dir == Direction::kEgress ? 0 : 1];
  size_t pos = 0;
  while (pos < view.bytes.size()) {
    if (resync) {
      const size_t at = FindTcpResync(view, pos);
      if (at == std::string_view::npos) return view.bytes.size();
      pos = at;
      resync = false;
      ++counters_.resyncs;
    }
    if (view.bytes.size() - pos < 2) return pos;
    const uint16_t length = Be16(view.bytes, pos);
    if (length < kHeaderBytes) {
      ++counters_.parse_errors;
      resync = true;
      ++pos;
      continue;
    }
    if (view.bytes.size() - pos < 2u + length) return pos;  // wait for the whole frame (<= 64 KiB)
    const ChunkInfo* first = view.ChunkAt(pos);
    const ChunkInfo* last = view.ChunkAt(pos + 2 + length - 1);
    OnMessage(dir, view.bytes.substr(pos + 2, length), 2u + length, *first, *last);
    pos += 2u + length;
  }
  return pos;
}

void DnsSession::OnGap(Direction dir, uint64_t bytes) {
  if (bytes == 0) return;
  if (transport_ == Transport::kUdp) {
    // The tail of a datagram beyond the capture limit: header and question
    // were in the captured prefix; the next datagram starts afresh.
    ++counters_.gaps_absorbed;
    return;
  }
  ++counters_.gaps_desynced;
  resync_[dir == Direction::kEgress ? 0 : 1] = true;
}

void DnsSession::TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    const uint64_t started = it->second.wire.first_byte_ns;
    if (closing || (now_ns > started && now_ns - started > kQueryTimeoutNs)) {
      ++counters_.unpaired;
      Emit(std::move(it->second), nullptr, nullptr);
      it = pending_.erase(it);
    } else {
      ++it;
    }
  }
  if (out.empty()) {
    out.swap(ready_);
  } else {
    std::move(ready_.begin(), ready_.end(), std::back_inserter(out));
  }
  ready_.clear();
}

void DnsSession::ReleaseIdleMemory() {
  if (ready_.empty()) std::vector<L7Record>().swap(ready_);
}

}  // namespace sonde::protocols::dns
