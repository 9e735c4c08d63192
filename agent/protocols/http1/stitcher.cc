#include "agent/protocols/http1/stitcher.h"

#include <algorithm>

namespace sonde::protocols::http1 {
namespace {

HeadSpan SpanOf(std::string_view part, const char* head) {
  return HeadSpan{static_cast<uint32_t>(part.data() - head), static_cast<uint32_t>(part.size())};
}

// Splits a request-target (a view into the head starting at `head`) into
// path and query; absolute-form targets ("http://host/p") give their
// authority too when the head had no Host.
void SplitTarget(std::string_view target, const char* head, Http1Message* msg) {
  // Absolute form only when the target does not start with '/' (origin form, the usual case).
  const size_t scheme = !target.empty() && target[0] != '/' ? target.find("://") : std::string_view::npos;
  if (scheme != std::string_view::npos && scheme < 8) {
    std::string_view rest = target.substr(scheme + 3);
    size_t slash = rest.find_first_of("/?");
    if (msg->authority.size == 0) msg->authority = SpanOf(rest.substr(0, slash), head);
    if (slash == std::string_view::npos) {
      msg->path = msg->query = HeadSpan{};  // path "/"
      return;
    }
    target = rest.substr(slash);
  }
  const size_t q = target.find('?');
  if (q == std::string_view::npos) {
    msg->path = SpanOf(target, head);
    msg->query = HeadSpan{};
  } else {
    msg->path = SpanOf(target.substr(0, q), head);
    msg->query = SpanOf(target.substr(q + 1), head);
  }
}

}  // namespace

void MessageQueue::pop_front() {
  ++head_;
  if (head_ == items_.size()) {
    clear();  // the common case: nothing pending, storage kept for reuse
  } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
    // Pipelined traffic keeps the queue non-empty: drop the consumed prefix.
    items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

Http1Session::Http1Session(Role role, bool late_join) : role_(role), late_join_(late_join) {
  if (late_join) {
    // Joined mid-stream: the first bytes may be the middle of anything.
    egress_.phase = ingress_.phase = Phase::kResync;
    egress_.after_desync = ingress_.after_desync = true;
  }
}

bool Http1Session::IsRequestDir(Direction dir) const {
  return role_ == Role::kServer ? dir == Direction::kIngress : dir == Direction::kEgress;
}

void Http1Session::ResolveRole(Direction dir, std::string_view bytes) {
  if (role_ != Role::kUnknown) return;
  size_t req = FindMessageStart(bytes, 0, true);
  size_t resp = FindMessageStart(bytes, 0, false);
  if (req == std::string_view::npos && resp == std::string_view::npos) return;
  bool request_here = resp == std::string_view::npos || (req != std::string_view::npos && req < resp);
  bool egress = dir == Direction::kEgress;
  role_ = (request_here == egress) ? Role::kClient : Role::kServer;
}

std::string_view Http1Session::NextResponseMethod() const {
  // The response being parsed answers the request after those already answered.
  size_t index = responses_.size();
  if (index >= requests_.size()) return {};
  const Http1Message& req = requests_[index];
  return req.method.In(req.head());
}

void Http1Session::StartMessage(Direction dir, const StreamView& view, size_t pos,
                                const MessageHead& head, Http1Message* msg) {
  const ChunkInfo* chunk = view.ChunkAt(pos);
  L7Message& w = msg->wire;
  // Ingress bytes exist for the process when the read returns; egress bytes
  // leave when the write is entered.
  if (chunk != nullptr) {
    w.first_byte_ns = dir == Direction::kIngress ? chunk->ts_exit_ns : chunk->ts_enter_ns;
    w.thread_id = chunk->thread_id;
  }
  w.first_tcp_seq = view.SeqAt(pos);
  w.bytes = head.head_len;
  // Header views point into this head; the list keeps one copy of it.
  const std::string_view head_bytes = view.bytes.substr(pos, head.head_len);
  w.headers.AssignParsedOffsets(head_bytes, head.headers.offsets(), head.headers.size());
  msg->version_minor = head.version_minor;
  if (head.is_request) {
    // Spans into the copy: the head's views are at the same offsets in it.
    const char* at = head_bytes.data();
    msg->method = SpanOf(head.method, at);
    if (!head.host.empty()) msg->authority = SpanOf(head.host, at);
    SplitTarget(head.target, at, msg);
  } else {
    msg->status = head.status;
  }
}

size_t Http1Session::ParseHead(Direction dir, const StreamView& view, size_t pos,
                               bool* need_more) {
  DirState& st = State(dir);
  bool request = IsRequestDir(dir);
  std::string_view rest = view.bytes.substr(pos);
  // One head is parsed at a time per thread and only within this call: the
  // parse output (a ~2.3 KiB field table) is the thread's, not every
  // session's (20,000 busy connections would hold 50 MB of it).
  thread_local MessageHead scratch;
  ParseStatus status = request ? ParseRequestHead(rest, &scratch) : ParseResponseHead(rest, &scratch);
  *need_more = false;
  if (status == ParseStatus::kNeedMoreData) {
    *need_more = true;
    return 0;
  }
  if (status == ParseStatus::kInvalid) {
    ++counters_.parse_errors;
    st.phase = Phase::kResync;
    st.after_desync = true;
    return 1;  // skip at least one byte so the resync looks further on
  }
  const MessageHead& head = scratch;
  if (!request && head.status >= 100 && head.status < 200 && head.status != 101) {
    // Interim response (100-continue, 103): the final one follows.
    st.interim_bytes += head.head_len;
    return head.head_len;
  }
  Http1Message& msg = st.current;
  msg.Reset();
  StartMessage(dir, view, pos, head, &msg);
  msg.late_join = st.after_desync && late_join_;
  msg.truncated = st.after_desync && !late_join_;
  st.after_desync = false;
  if (!request) {
    msg.interim_bytes = st.interim_bytes;
    msg.wire.bytes += st.interim_bytes;
    st.interim_bytes = 0;
  }
  BodyFraming framing = request ? RequestFraming(head) : ResponseFraming(head, NextResponseMethod());
  size_t end = pos + head.head_len;
  switch (framing) {
    case BodyFraming::kNone: {
      const ChunkInfo* c = view.ChunkAt(end - 1);
      Finish(dir, st, c != nullptr ? c->ts_exit_ns : 0);
      break;
    }
    case BodyFraming::kContentLength:
      st.body_remaining = head.content_length;
      st.phase = Phase::kBody;
      break;
    case BodyFraming::kChunked:
      st.chunked.Reset();
      st.phase = Phase::kChunked;
      break;
    case BodyFraming::kUntilClose:
      st.phase = Phase::kUntilClose;
      break;
    case BodyFraming::kTunnel: {
      const ChunkInfo* c = view.ChunkAt(end - 1);
      Finish(dir, st, c != nullptr ? c->ts_exit_ns : 0);
      // The connection now carries something else (WebSocket, TLS via CONNECT).
      egress_.phase = ingress_.phase = Phase::kTunnel;
      break;
    }
  }
  return head.head_len;
}

void Http1Session::Finish(Direction dir, DirState& st, uint64_t last_byte_ns) {
  Http1Message& msg = st.current;
  msg.wire.complete = true;
  msg.wire.last_byte_ns = last_byte_ns != 0 ? last_byte_ns : st.last_exit_ns;
  if (st.phase == Phase::kChunked) msg.wire.body_bytes = st.chunked.data_bytes();
  if (st.phase != Phase::kTunnel) st.phase = Phase::kHead;
  // `msg` is reset when the next head starts (ParseHead).
  if (IsRequestDir(dir)) {
    requests_.push_back(std::move(msg));
    Pair();
  } else if (responses_.empty() && !requests_.empty()) {
    PairNow(msg);  // the usual case: no need to queue the response
  } else {
    responses_.push_back(std::move(msg));
    Pair();
  }
}

void Http1Session::Desync(Direction dir, DirState& st) {
  ++counters_.gaps_desynced;
  if (st.phase == Phase::kBody || st.phase == Phase::kChunked) {
    // The message's end fell into the gap: keep what we know, flagged.
    st.current.truncated = true;
    Finish(dir, st, 0);
  }
  st.phase = Phase::kResync;
  st.after_desync = true;
}

size_t Http1Session::OnBytes(Direction dir, const StreamView& view) {
  if (role_ == Role::kUnknown) {
    ResolveRole(dir, view.bytes);
    if (role_ == Role::kUnknown) {
      // Nothing recognisable yet: keep only a short tail that may grow into a start line.
      return view.bytes.size() > 16 ? view.bytes.size() - 16 : 0;
    }
  }
  DirState& st = State(dir);
  if (!view.chunks.empty()) st.last_exit_ns = std::max(st.last_exit_ns, view.chunks.back().ts_exit_ns);
  const std::string_view bytes = view.bytes;
  size_t pos = 0;
  while (pos < bytes.size()) {
    switch (st.phase) {
      case Phase::kResync: {
        size_t start = FindMessageStart(bytes, pos, IsRequestDir(dir));
        // A syscall boundary is also a plausible message start.
        for (const ChunkInfo& c : view.chunks) {
          if (c.offset >= pos && c.offset < std::min(start, bytes.size())) {
            std::string_view at = bytes.substr(c.offset);
            int look = IsRequestDir(dir) ? LooksLikeRequestStart(at) : LooksLikeResponseStart(at);
            if (look != 0) {
              start = c.offset;
              break;
            }
          }
        }
        if (start == std::string_view::npos) return bytes.size();
        pos = start;
        st.phase = Phase::kHead;
        ++counters_.resyncs;
        break;
      }
      case Phase::kHead: {
        bool need_more = false;
        size_t used = ParseHead(dir, view, pos, &need_more);
        if (need_more) return pos;
        pos += used;
        break;
      }
      case Phase::kBody: {
        uint64_t take = std::min<uint64_t>(st.body_remaining, bytes.size() - pos);
        pos += take;
        st.body_remaining -= take;
        st.current.wire.bytes += take;
        st.current.wire.body_bytes += take;
        if (st.body_remaining == 0) {
          const ChunkInfo* c = view.ChunkAt(pos - 1);
          Finish(dir, st, c != nullptr ? c->ts_exit_ns : 0);
        }
        break;
      }
      case Phase::kChunked: {
        size_t used = 0;
        auto result = st.chunked.Feed(bytes.substr(pos), &used);
        pos += used;
        st.current.wire.bytes += used;
        if (result == ChunkedDecoder::Result::kDone) {
          const ChunkInfo* c = view.ChunkAt(pos - 1);
          Finish(dir, st, c != nullptr ? c->ts_exit_ns : 0);
        } else if (result == ChunkedDecoder::Result::kInvalid) {
          ++counters_.parse_errors;
          st.current.truncated = true;
          Finish(dir, st, 0);
          st.phase = Phase::kResync;
          st.after_desync = true;
        } else {
          return pos;
        }
        break;
      }
      case Phase::kUntilClose:
      case Phase::kTunnel: {
        uint64_t n = bytes.size() - pos;
        st.current.wire.bytes += n;
        st.current.wire.body_bytes += n;
        pos = bytes.size();
        break;
      }
    }
  }
  if (view.connection_closed && st.phase == Phase::kUntilClose) {
    Finish(dir, st, st.last_exit_ns);
  }
  return pos;
}

void Http1Session::OnGap(Direction dir, uint64_t bytes) {
  if (bytes == 0) return;
  DirState& st = State(dir);
  switch (st.phase) {
    case Phase::kBody:
      if (bytes <= st.body_remaining) {
        ++counters_.gaps_absorbed;
        st.body_remaining -= bytes;
        st.current.wire.bytes += bytes;
        st.current.wire.body_bytes += bytes;
        if (st.body_remaining == 0) Finish(dir, st, 0);
        return;
      }
      Desync(dir, st);
      return;
    case Phase::kChunked:
      if (st.chunked.SkipGap(bytes)) {
        ++counters_.gaps_absorbed;
        st.current.wire.bytes += bytes;
        return;
      }
      Desync(dir, st);
      return;
    case Phase::kUntilClose:
    case Phase::kTunnel:
      if (bytes != kUnknownGapBytes) {
        st.current.wire.bytes += bytes;
        st.current.wire.body_bytes += bytes;
      }
      ++counters_.gaps_absorbed;
      return;
    case Phase::kHead:
      Desync(dir, st);
      return;
    case Phase::kResync:
      ++counters_.gaps_desynced;
      return;
  }
}

void Http1Session::PairNow(Http1Message& resp) {
  // What Pair() does with `resp` at the front of an otherwise empty queue.
  Http1Message& req = requests_.front();
  if (resp.wire.first_byte_ns != 0 && req.wire.first_byte_ns != 0 &&
      resp.wire.first_byte_ns < req.wire.first_byte_ns) {
    ++counters_.unpaired;  // a response cannot start before its request: its request was lost
    return;
  }
  Emit(std::move(req), &resp);
  requests_.pop_front();
}

void Http1Session::Pair() {
  while (!requests_.empty() && !responses_.empty()) {
    Http1Message& resp = responses_.front();
    Http1Message& req = requests_.front();
    if (resp.wire.first_byte_ns != 0 && req.wire.first_byte_ns != 0 &&
        resp.wire.first_byte_ns < req.wire.first_byte_ns) {
      // A response cannot start before its request: its request was lost.
      ++counters_.unpaired;
      responses_.pop_front();
      continue;
    }
    Emit(std::move(req), &resp);
    requests_.pop_front();
    responses_.pop_front();
  }
  while (requests_.size() > kMaxPending) {
    ++counters_.unpaired;
    Emit(std::move(requests_.front()), nullptr);
    requests_.pop_front();
  }
  while (responses_.size() > kMaxPending) {
    ++counters_.unpaired;
    responses_.pop_front();
  }
}

void Http1Session::Emit(Http1Message&& req, Http1Message* resp) {
  // Room for the usual single record: the buffer then travels between this
  // session and the connection's scratch (TakeRecords swaps them) without an
  // allocation per exchange; a batch-sized one would be freed by the
  // connection after every exchange (keeping it costs ~8 KiB per busy
  // connection) and allocated again here. Pipelined batches grow it.
  if (ready_.capacity() == 0) ready_.reserve(1);
  L7Record& r = ready_.emplace_back();
  r.protocol = L7Protocol::kHttp1;
  // The strings are empty: append() fills them without assign()'s generic
  // replace (_M_replace, ~4 % of header-only parsing for six short strings).
  const std::string_view head = req.head();
  const auto fill = [&](std::string& s, HeadSpan span) {
    if (span.size != 0) s.append(head.data() + span.offset, span.size);
  };
  r.version.append(req.version_minor == 0 ? "1.0" : "1.1", 3);
  fill(r.method, req.method);
  fill(r.authority, req.authority);
  if (req.path.size == 0) {
    r.path.push_back('/');
  } else {
    fill(r.path, req.path);
  }
  fill(r.query, req.query);
  r.scheme.append("http", 4);
  r.request = std::move(req.wire);
  bool truncated = req.truncated;
  bool late = req.late_join;
  if (resp != nullptr) {
    r.status = resp->status;
    r.response = std::move(resp->wire);
    truncated = truncated || resp->truncated;
    late = late || resp->late_join;
  } else {
    r.flags |= kRecordNoResponse;
  }
  if (truncated) r.flags |= kRecordTruncated;
  if (late) {
    r.flags |= kRecordLateJoin;
    ++counters_.late_join;
  }
  ++counters_.records;
}

void Http1Session::TakeRecords(uint64_t /*now_ns*/, bool closing, std::vector<L7Record>& out) {
  if (!closing && ready_.empty()) return;  // nothing to hand over: keep both buffers as they are
  if (closing) {
    for (DirState* st : {&egress_, &ingress_}) {
      Direction dir = st == &egress_ ? Direction::kEgress : Direction::kIngress;
      if (st->phase == Phase::kUntilClose) {
        Finish(dir, *st, st->last_exit_ns);
      } else if (st->phase == Phase::kBody || st->phase == Phase::kChunked) {
        st->current.truncated = true;
        Finish(dir, *st, st->last_exit_ns);
      }
    }
    Pair();
    counters_.unpaired += requests_.size() + responses_.size();
    for (auto& req : requests_) Emit(std::move(req), nullptr);
    requests_.clear();
    responses_.clear();
  }
  if (out.empty()) {
    out.swap(ready_);
  } else {
    std::move(ready_.begin(), ready_.end(), std::back_inserter(out));
  }
  ready_.clear();
  // No reserve here: Emit() reserves on the next record. A buffer kept
  // "just in case" is ~8 KiB per busy connection (20,000 of them: 160 MB).
}

bool Http1Session::Quiescent(Role* role) const {
  if (role_ == Role::kUnknown || !requests_.empty() || !responses_.empty() || !ready_.empty()) return false;
  for (const DirState* st : {&egress_, &ingress_}) {
    if (st->phase != Phase::kHead || st->interim_bytes != 0 || st->after_desync) return false;
  }
  *role = role_;
  return true;
}

bool Http1Session::Renew(Role role, bool late_join) {
  role_ = role;
  late_join_ = late_join;
  for (DirState* st : {&egress_, &ingress_}) {
    st->phase = late_join ? Phase::kResync : Phase::kHead;
    st->body_remaining = 0;
    st->chunked.Reset();
    st->current.Reset();  // keeps the head buffer's capacity
    st->interim_bytes = 0;
    st->last_exit_ns = 0;
    st->after_desync = late_join;
  }
  requests_.clear();
  responses_.clear();
  ready_.clear();
  counters_ = ProtocolCounters{};
  return true;
}

void Http1Session::Reassign(Role role, bool late_join) {
  role_ = role;
  late_join_ = late_join;
  if (!late_join) return;  // Renew(kUnknown, false) left both directions at a message head
  for (DirState* st : {&egress_, &ingress_}) {
    st->phase = Phase::kResync;
    st->after_desync = true;
  }
}

void Http1Session::ReleaseIdleMemory() {
  requests_.ReleaseIfEmpty();
  responses_.ReleaseIfEmpty();
  if (ready_.empty()) std::vector<L7Record>().swap(ready_);
}

}  // namespace sonde::protocols::http1
