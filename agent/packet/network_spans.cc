#include "agent/packet/network_spans.h"

#include <algorithm>
#include <random>

#include "agent/protocols/registry.h"

namespace sonde::packet {
namespace {

using protocols::Direction;

bool SeqLt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

// Client -> server bytes are the "egress" of a client-role session.
Direction DirOf(int d) { return d == 0 ? Direction::kEgress : Direction::kIngress; }

int HexNibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

template <size_t N>
bool ParseHex(std::string_view s, std::array<uint8_t, N>& out) {
  if (s.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = HexNibble(s[2 * i]), lo = HexNibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
void RandomId(std::array<uint8_t, N>& id) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (size_t i = 0; i < N; i += 8) {
    uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < N; ++j) id[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
}

}  // namespace

trace::Span SpanFromRecord(const protocols::L7Record& r, const FlowStats& flow) {
  trace::Span s;
  s.source = trace::SpanSource::kNetwork;
  s.kind = trace::SpanKind::kUnspecified;
  s.protocol = r.protocol;
  if (r.protocol == protocols::L7Protocol::kGrpc && !r.rpc_service.empty()) {
    s.endpoint = r.rpc_service + "/" + r.rpc_method;
  } else {
    s.endpoint = r.method + " " + r.path;
  }
  s.name = s.endpoint;
  s.start_unix_ns = r.request.first_byte_ns;
  s.end_unix_ns = std::max({r.response.last_byte_ns, r.request.last_byte_ns, r.request.first_byte_ns});
  s.client = {flow.client.ToString(), flow.client_port};
  s.server = {flow.server.ToString(), flow.server_port};
  s.local = s.client;
  s.peer = s.server;
  s.http_status = r.status;
  s.grpc_status = r.grpc_status;
  s.request_bytes = r.request.bytes;
  s.response_bytes = r.response.bytes;
  if (r.request.first_tcp_seq) {
    s.request_tcp_seq = *r.request.first_tcp_seq;
    s.request_seq_valid = true;
  }
  if (r.response.first_tcp_seq) {
    s.response_tcp_seq = *r.response.first_tcp_seq;
    s.response_seq_valid = true;
  }
  s.request_headers = r.request.headers;
  s.response_headers = r.response.headers;
  const bool error = (r.flags & protocols::kRecordNoResponse) || r.status >= 500 ||
                     (r.grpc_status > 0);
  s.status = error ? trace::StatusCode::kError : trace::StatusCode::kUnset;
  // W3C traceparent: 00-<trace id>-<parent span id>-<flags>.
  if (const auto tp = r.RequestHeader("traceparent"); tp && tp->size() >= 55) {
    if (ParseHex(std::string_view(*tp).substr(3, 32), s.trace_id) &&
        ParseHex(std::string_view(*tp).substr(36, 16), s.parent_span_id)) {
      s.parent_reason = trace::LinkReason::kTraceparent;
    }
  }
  if (s.parent_reason == trace::LinkReason::kNone) RandomId(s.trace_id);
  RandomId(s.span_id);
  s.attributes.push_back({"network.interface", flow.interface});
  s.attributes.push_back({"sonde.record_flags", static_cast<int64_t>(r.flags)});
  return s;
}

void NetworkSpanBuilder::Append(Stream& s, const uint8_t* data, size_t n, uint32_t seq, uint64_t ts) {
  if (n == 0) return;
  protocols::ChunkInfo c;
  c.offset = s.buf.size();
  c.ts_enter_ns = c.ts_exit_ns = ts;
  c.tcp_seq = seq;
  s.chunks.push_back(c);
  s.buf.append(reinterpret_cast<const char*>(data), n);
}

void NetworkSpanBuilder::Gap(FlowL7& f, int d, uint64_t bytes) {
  Stream& s = f.dir[d];
  counters_.gaps += bytes;
  // Unconsumed bytes cannot be completed any more: they are part of the gap.
  const uint64_t lost = bytes + s.buf.size();
  s.buf.clear();
  s.chunks.clear();
  if (f.session) f.session->OnGap(DirOf(d), lost);
}

void NetworkSpanBuilder::OnPayload(uint64_t flow_id, const FlowStats& flow, bool to_server,
                                   uint32_t seq, std::span<const uint8_t> payload,
                                   uint32_t wire_len, uint64_t ts_ns) {
  if (flow.proto != 6) return;  // UDP protocols are not parsed here (yet)
  FlowL7& f = flows_[flow_id];
  if (f.unrecognised) return;
  const int d = to_server ? 0 : 1;
  Stream& s = f.dir[d];
  if (!s.init) {
    s.init = true;
    const bool isn_valid = to_server ? flow.client_isn_valid : flow.server_isn_valid;
    const uint32_t isn = to_server ? flow.client_isn : flow.server_isn;
    s.next_seq = isn_valid ? isn + 1 : seq;
  }
  const uint32_t end = seq + wire_len;
  if (SeqLt(s.next_seq, seq)) {
    // Ahead of what we have: hold it until the hole is filled.
    if (s.pending.size() >= options_.max_pending_segments ||
        s.pending_bytes + payload.size() > options_.max_buffered_bytes) {
      Gap(f, d, seq - s.next_seq);
      s.next_seq = seq;
    } else {
      ++counters_.out_of_order_segments;
      auto [it, inserted] = s.pending.try_emplace(
          seq, std::string(reinterpret_cast<const char*>(payload.data()), payload.size()), ts_ns);
      if (inserted) s.pending_bytes += payload.size();
      // A snaplen-truncated segment is stored truncated; the gap is found when it is used.
      return;
    }
  }
  if (!SeqLt(s.next_seq, end)) return;  // nothing new (pure retransmission)
  const uint32_t skip = s.next_seq - seq;  // already-seen prefix of a retransmission
  if (skip < payload.size()) Append(s, payload.data() + skip, payload.size() - skip, seq + skip, ts_ns);
  if (payload.size() < wire_len) {  // snaplen cut the segment
    const uint32_t have = static_cast<uint32_t>(std::max<size_t>(payload.size(), skip));
    Feed(f, flow, d, false, ts_ns);
    if (f.unrecognised) return;
    Gap(f, d, wire_len - have);
  }
  s.next_seq = end;
  // Drain held segments that are now in order.
  while (!s.pending.empty()) {
    auto it = s.pending.begin();
    // Smallest sequence relative to next_seq (handles wrap for small windows).
    for (auto j = s.pending.begin(); j != s.pending.end(); ++j)
      if (SeqLt(j->first, it->first)) it = j;
    const uint32_t pseq = it->first;
    const std::string& bytes = it->second.first;
    const uint32_t pend = pseq + static_cast<uint32_t>(bytes.size());
    if (SeqLt(s.next_seq, pseq)) break;
    if (SeqLt(s.next_seq, pend)) {
      const uint32_t k = s.next_seq - pseq;
      Append(s, reinterpret_cast<const uint8_t*>(bytes.data()) + k, bytes.size() - k, pseq + k,
             it->second.second);
      s.next_seq = pend;
    }
    s.pending_bytes -= bytes.size();
    s.pending.erase(it);
  }
  if (s.buf.size() > options_.max_buffered_bytes) Gap(f, d, 0);
  Feed(f, flow, d, false, ts_ns);
}

void NetworkSpanBuilder::Infer(FlowL7& f, const FlowStats& flow) {
  // Try the first bytes the client sent, then the server's (late join).
  for (int d = 0; d < 2 && !f.session; ++d) {
    const std::string& b = f.dir[d].buf;
    if (b.empty()) continue;
    bool maybe = false;
    for (const auto& def : protocols::AllProtocols()) {
      if (!def.infer || !def.make_session) continue;
      auto r = def.infer(b, DirOf(d), protocols::Role::kClient);
      if (r == protocols::InferResult::kYes) {
        f.protocol = &def;
        const bool late = !flow.saw_syn || d == 1;
        f.session = def.make_session(protocols::Role::kClient, late);
        ++counters_.flows_with_protocol;
        return;
      }
      if (r == protocols::InferResult::kMaybeNeedMore) maybe = true;
    }
    if (maybe && b.size() < options_.max_inference_bytes) return;
  }
  if (!f.session && (f.dir[0].buf.size() + f.dir[1].buf.size() > 0)) {
    const bool undecided = f.dir[0].buf.size() < options_.max_inference_bytes &&
                           f.dir[0].buf.size() < 8 && f.dir[1].buf.empty();
    if (!undecided) {
      f.unrecognised = true;
      ++counters_.flows_unrecognised;
      for (auto& s : f.dir) {
        s = Stream{};
      }
    }
  }
}

void NetworkSpanBuilder::Feed(FlowL7& f, const FlowStats& flow, int d, bool closed, uint64_t now_ns) {
  if (!f.session) Infer(f, flow);
  if (!f.session) return;
  // Feed both directions: a request waiting in one may unblock the other.
  for (int k = 0; k < 2; ++k) {
    const int dd = k == 0 ? d : 1 - d;
    Stream& s = f.dir[dd];
    if (s.buf.empty() && !closed) continue;
    protocols::StreamView view;
    view.bytes = s.buf;
    view.chunks = s.chunks;
    view.connection_closed = closed;
    const size_t consumed = std::min(f.session->OnBytes(DirOf(dd), view), s.buf.size());
    if (consumed == 0) continue;
    s.buf.erase(0, consumed);
    std::vector<protocols::ChunkInfo> rest;
    for (size_t i = 0; i < s.chunks.size(); ++i) {
      const uint64_t begin = s.chunks[i].offset;
      const uint64_t end = i + 1 < s.chunks.size() ? s.chunks[i + 1].offset : consumed + s.buf.size();
      if (end <= consumed) continue;
      protocols::ChunkInfo c = s.chunks[i];
      if (begin < consumed) {
        if (c.tcp_seq) c.tcp_seq = static_cast<uint32_t>(*c.tcp_seq + (consumed - begin));
        c.offset = 0;
      } else {
        c.offset = begin - consumed;
      }
      rest.push_back(c);
    }
    s.chunks = std::move(rest);
  }
  Emit(f, flow, now_ns, false);
}

void NetworkSpanBuilder::Emit(FlowL7& f, const FlowStats& flow, uint64_t now_ns, bool closing) {
  std::vector<protocols::L7Record> records;
  f.session->TakeRecords(now_ns, closing, records);
  for (const auto& r : records) {
    ++counters_.spans;
    if (on_span_) on_span_(SpanFromRecord(r, flow));
  }
}

void NetworkSpanBuilder::OnFlowEnd(uint64_t flow_id, const FlowStats& flow, uint64_t now_ns) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return;
  FlowL7& f = it->second;
  if (f.session) {
    Feed(f, flow, 0, /*closed=*/true, now_ns);
    Emit(f, flow, now_ns, /*closing=*/true);
  }
  flows_.erase(it);
}

}  // namespace sonde::packet
