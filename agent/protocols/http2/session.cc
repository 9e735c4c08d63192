#include "agent/protocols/http2/session.h"

#include <algorithm>
#include <charconv>

namespace sonde::protocols::http2 {
namespace {

constexpr size_t kRecentlyClosedStreams = 256;

// Walks the view's chunks forward as frames are parsed (positions only grow
// within one OnBytes call).
class ChunkCursor {
 public:
  explicit ChunkCursor(const StreamView& view) : view_(view) {}

  const ChunkInfo* At(uint64_t pos) {
    const auto& chunks = view_.chunks;
    if (chunks.empty()) return nullptr;
    if (idx_ >= chunks.size() || chunks[idx_].offset > pos) idx_ = 0;
    while (idx_ + 1 < chunks.size() && chunks[idx_ + 1].offset <= pos) ++idx_;
    return &chunks[idx_];
  }

  // Context of the bytes [begin, end).
  template <typename Ctx>
  Ctx Context(uint64_t begin, uint64_t end) {
    Ctx ctx;
    if (const ChunkInfo* a = At(begin)) {
      ctx.first_ns = a->ts_enter_ns;
      ctx.thread_id = a->thread_id;
      if (a->tcp_seq) ctx.seq = static_cast<uint32_t>(*a->tcp_seq + (begin - a->offset));
    }
    if (const ChunkInfo* b = At(end > begin ? end - 1 : begin)) ctx.last_ns = b->ts_exit_ns;
    return ctx;
  }

 private:
  const StreamView& view_;
  size_t idx_ = 0;
};

bool IsSensitiveHeader(std::string_view name) {
  return name == "authorization" || name == "proxy-authorization" || name == "cookie" ||
         name == "set-cookie";
}

int ParseStatus(std::string_view v) {
  int status = 0;
  const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), status);
  if (ec != std::errc() || p != v.data() + v.size() || status < 100 || status > 999) return 0;
  return status;
}

}  // namespace

Http2Session::Http2Session(Role role, bool late_join) : role_(role), late_join_(late_join) {
  if (role == Role::kClient) client_dir_ = Direction::kEgress;
  if (role == Role::kServer) client_dir_ = Direction::kIngress;
  for (DirState& ds : dirs_) {
    if (late_join) {
      // The first bytes may sit anywhere in a frame, and the encoder's table
      // was built before we started listening.
      ds.phase = Phase::kResync;
      ds.hpack.LoseState();
    }
  }
}

HpackCounters Http2Session::hpack_counters() const {
  HpackCounters sum;
  for (const DirState& ds : dirs_) {
    const HpackCounters& c = ds.hpack.counters();
    sum.blocks_exact += c.blocks_exact;
    sum.blocks_degraded += c.blocks_degraded;
    sum.state_losses += c.state_losses;
    sum.exact_failures += c.exact_failures;
    sum.malformed += c.malformed;
    sum.unknown_fields += c.unknown_fields;
    sum.recoveries += c.recoveries;
  }
  return sum;
}

void Http2Session::LearnClientDir(Direction client_dir) {
  if (!client_dir_) client_dir_ = client_dir;
}

void Http2Session::EnterResync(DirState& ds, bool lose_hpack) {
  ds.phase = Phase::kResync;
  if (ds.block_active) {
    ds.block_active = false;
    ds.block.clear();
  }
  if (lose_hpack) ds.hpack.LoseState();
}

size_t Http2Session::OnBytes(Direction dir, const StreamView& view) {
  DirState& ds = dirs_[Index(dir)];
  const std::string_view b = view.bytes;
  ChunkCursor cursor(view);
  size_t pos = 0;
  while (pos < b.size()) {
    switch (ds.phase) {
      case Phase::kPreface: {
        const size_t n = std::min(b.size() - pos, kConnectionPreface.size());
        if (b.substr(pos, n) == kConnectionPreface.substr(0, n)) {
          if (n < kConnectionPreface.size()) return view.connection_closed ? b.size() : pos;
          pos += n;
          ++h2_.prefaces;
          LearnClientDir(dir);
        }
        ds.phase = Phase::kFrames;
        break;
      }
      case Phase::kResync: {
        size_t need_more_at = b.size();
        const auto at =
            FindFrameBoundary(b, pos, ds.max_frame_size, view.connection_closed, &need_more_at);
        if (!at) {
          h2_.resync_bytes_skipped += need_more_at - pos;
          return need_more_at;
        }
        h2_.resync_bytes_skipped += *at - pos;
        ++counters_.resyncs;
        pos = *at;
        ds.phase = Phase::kFrames;
        break;
      }
      case Phase::kDataPayload: {
        if (ds.data_need_pad_len) {
          const auto pad = static_cast<uint8_t>(b[pos]);
          ds.data_need_pad_len = false;
          ds.data_left -= 1;
          if (pad > ds.data_left) {
            ++h2_.malformed_frames;  // padding longer than the payload
            ds.body_left = 0;
          } else {
            ds.body_left = ds.data_left - pad;
          }
          const auto ctx = cursor.Context<FrameContext>(pos, pos + 1);
          OnDataBytes(dir, ds, {}, 1, ctx);
          pos += 1;
        } else {
          const size_t n = static_cast<size_t>(std::min<uint64_t>(ds.data_left, b.size() - pos));
          const size_t body = static_cast<size_t>(std::min<uint64_t>(ds.body_left, n));
          const auto ctx = cursor.Context<FrameContext>(pos, pos + n);
          OnDataBytes(dir, ds, b.substr(pos, body), n, ctx);
          ds.body_left -= body;
          ds.data_left -= n;
          pos += n;
        }
        if (ds.data_left == 0) FinishDataFrame(dir, ds);
        break;
      }
      case Phase::kFrames: {
        if (b.size() - pos < kFrameHeaderSize) return view.connection_closed ? b.size() : pos;
        const FrameHeader h = ParseFrameHeader(b.substr(pos));
        if (!h.is_known_type() && !h.reserved_bit && h.length <= ds.max_frame_size) {
          // Extension frames are legal and must be ignored (RFC 9113 5.5).
          if (b.size() - pos < h.total_size()) return view.connection_closed ? b.size() : pos;
          ++h2_.unknown_type_frames;
          pos += h.total_size();
          break;
        }
        if (!IsPlausibleFrameHeader(h, ds.max_frame_size)) {
          ++counters_.parse_errors;
          EnterResync(ds, /*lose_hpack=*/true);
          pos += 1;
          break;
        }
        if (ds.block_active && h.frame_type() != FrameType::kContinuation) {
          ++h2_.continuation_errors;
          EnterResync(ds, /*lose_hpack=*/true);
          ds.phase = Phase::kFrames;  // the frame itself is plausible: keep going from here
        }
        if (h.frame_type() == FrameType::kData) {
          ++h2_.frames[h.type];
          ds.data_stream = h.stream_id;
          ds.data_end_stream = (h.flags & flags::kEndStream) != 0;
          ds.data_need_pad_len = (h.flags & flags::kPadded) != 0;
          ds.data_left = h.length;
          ds.body_left = h.length;
          if (ds.data_need_pad_len && h.length == 0) {
            ++h2_.malformed_frames;
            ds.data_need_pad_len = false;
          }
          const auto ctx = cursor.Context<FrameContext>(pos, pos + kFrameHeaderSize);
          if (FindOrCreateStream(h.stream_id, ctx.first_ns) != nullptr) {
            OnDataBytes(dir, ds, {}, kFrameHeaderSize, ctx);
          }
          pos += kFrameHeaderSize;
          ds.phase = Phase::kDataPayload;
          if (ds.data_left == 0) FinishDataFrame(dir, ds);
          break;
        }
        if (b.size() - pos < h.total_size()) return view.connection_closed ? b.size() : pos;
        const auto ctx = cursor.Context<FrameContext>(pos, pos + h.total_size());
        HandleFrame(dir, ds, h, b.substr(pos + kFrameHeaderSize, h.length), ctx);
        pos += h.total_size();
        break;
      }
    }
  }
  return pos;
}

void Http2Session::OnGap(Direction dir, uint64_t bytes) {
  DirState& ds = dirs_[Index(dir)];
  if (bytes == 0) return;
  if (ds.phase == Phase::kDataPayload && bytes != kUnknownGapBytes && bytes <= ds.data_left) {
    // Inside a DATA payload: frame sync survives, only body bytes are missing.
    ++counters_.gaps_absorbed;
    if (ds.data_need_pad_len) {  // the pad length itself was lost: assume no padding
      ds.data_need_pad_len = false;
      ds.body_left = ds.data_left - 1;
    }
    const uint64_t body = std::min(bytes, ds.body_left);
    ds.body_left -= body;
    ds.data_left -= bytes;
    auto it = streams_.find(ds.data_stream);
    if (it != streams_.end()) {
      Stream& s = it->second;
      const bool is_request = IsRequestDir(dir, s);
      L7Message& m = is_request ? s.rec.request : s.rec.response;
      m.bytes += bytes;
      m.body_bytes += body;
      (is_request ? s.request_grpc : s.response_grpc).Skip(body);
      s.rec.flags |= kRecordTruncated;
    }
    if (ds.data_left == 0) FinishDataFrame(dir, ds);
    return;
  }
  ++counters_.gaps_desynced;
  if (ds.phase == Phase::kDataPayload) {
    auto it = streams_.find(ds.data_stream);
    if (it != streams_.end()) {
      it->second.rec.flags |= kRecordTruncated;
      (IsRequestDir(dir, it->second) ? it->second.request_grpc : it->second.response_grpc)
          .Skip(kUnknownGapBytes);
    }
  }
  // The lost bytes may have carried header blocks that changed the table.
  EnterResync(ds, /*lose_hpack=*/true);
}

void Http2Session::HandleFrame(Direction dir, DirState& ds, const FrameHeader& h,
                               std::string_view payload, const FrameContext& ctx) {
  ++h2_.frames[h.type];
  switch (h.frame_type()) {
    case FrameType::kHeaders:
    case FrameType::kPushPromise: {
      const auto stripped = StripPayload(h, payload);
      if (!stripped) {
        ++h2_.malformed_frames;
        ds.hpack.LoseState();  // an undecodable block may have changed the table
        return;
      }
      StartHeaderBlock(ds, h, stripped->fragment, stripped->promised_stream, ctx);
      if (h.flags & flags::kEndHeaders) FinishHeaderBlock(dir, ds, ctx);
      return;
    }
    case FrameType::kContinuation:
      if (!ds.block_active || ds.block_stream != h.stream_id) {
        ++h2_.continuation_errors;  // its HEADERS was lost: the block cannot be decoded
        ds.block_active = false;
        ds.hpack.LoseState();
        return;
      }
      if (ds.block.size() + payload.size() > kMaxHeaderBlockBytes) {
        ++h2_.malformed_frames;
        ds.block_active = false;
        ds.hpack.LoseState();
        return;
      }
      ds.block.append(payload);
      ds.block_wire_bytes += h.total_size();
      if (h.flags & flags::kEndHeaders) FinishHeaderBlock(dir, ds, ctx);
      return;
    case FrameType::kRstStream: {
      auto it = streams_.find(h.stream_id);
      if (it == streams_.end()) return;
      ++h2_.streams_reset;
      it->second.rec.flags |= kRecordStreamReset;
      it->second.last_ns = std::max(it->second.last_ns, ctx.last_ns);
      L7Message& m = IsRequestDir(dir, it->second) ? it->second.rec.request
                                                   : it->second.rec.response;
      m.bytes += h.total_size();
      m.last_byte_ns = std::max(m.last_byte_ns, ctx.last_ns);
      CompleteStream(h.stream_id);
      return;
    }
    case FrameType::kSettings: {
      if (h.flags & flags::kAck) return;
      // Settings constrain what the other side sends.
      DirState& peer = dirs_[Index(Other(dir))];
      ForEachSetting(payload, [&](uint16_t id, uint32_t value) {
        if (id == settings::kHeaderTableSize) peer.hpack.AllowTableSize(value);
        if (id == settings::kMaxFrameSize && value >= kDefaultMaxFrameSize &&
            value <= kMaxAllowedFrameSize) {
          peer.max_frame_size = std::max(peer.max_frame_size, value);
        }
      });
      return;
    }
    case FrameType::kGoaway:
      ++h2_.goaways;
      return;
    case FrameType::kData:  // streamed by OnBytes
    case FrameType::kPriority:
    case FrameType::kPing:
    case FrameType::kWindowUpdate:
      return;
  }
}

void Http2Session::StartHeaderBlock(DirState& ds, const FrameHeader& h, std::string_view fragment,
                                    uint32_t promised, const FrameContext& ctx) {
  ds.block_active = true;
  ds.block_stream = h.stream_id;
  ds.block_promised = promised;
  ds.block_end_stream =
      h.frame_type() == FrameType::kHeaders && (h.flags & flags::kEndStream) != 0;
  ds.block_wire_bytes = h.total_size();
  ds.block_ctx = ctx;
  ds.block.assign(fragment);
}

void Http2Session::FinishHeaderBlock(Direction dir, DirState& ds, const FrameContext& last_ctx) {
  ds.block_active = false;
  ++h2_.header_blocks;
  const uint64_t degraded_before = ds.hpack.counters().blocks_degraded;
  // Decode output, used within this call only: one per thread, not two per
  // connection (112 bytes of every HTTP/2 session, idle ones included).
  thread_local DecodedFieldList fields;
  // A malformed block still yields the fields decoded before the error.
  (void)ds.hpack.Decode(ds.block, fields);
  // A rare huge block does not leave its arena parked on the thread.
  struct ReleaseIfLarge {
    const std::string& block;
    ~ReleaseIfLarge() {
      if (block.size() > 16 * 1024) fields.Release();
    }
  } release_if_large{ds.block};
  const bool degraded = ds.hpack.counters().blocks_degraded != degraded_before;
  FrameContext ctx = ds.block_ctx;
  ctx.last_ns = last_ctx.last_ns;

  if (ds.block_promised != 0) {
    // PUSH_PROMISE: the block is the request of the promised stream, sent by
    // the server on the client's behalf.
    Stream* s = FindOrCreateStream(ds.block_promised, ctx.first_ns);
    if (s == nullptr) return;
    s->request_dir = Other(dir);
    s->degraded |= degraded;
    ApplyHeaders(Other(dir), *s, /*is_request=*/true, /*end_stream=*/true, fields, ctx,
                 ds.block_wire_bytes);
    return;
  }
  Stream* s = FindOrCreateStream(ds.block_stream, ctx.first_ns);
  if (s == nullptr) return;
  s->degraded |= degraded;
  bool has_method = false;
  bool has_status = false;
  for (const DecodedField& f : fields) {
    if (f.unknown()) continue;
    if (f.name == ":method") has_method = true;
    if (f.name == ":status") has_status = true;
  }
  bool is_request;
  if (has_method || has_status) {
    is_request = has_method;
    LearnClientDir(is_request ? dir : Other(dir));
    if (!s->request_dir) s->request_dir = is_request ? dir : Other(dir);
  } else {
    is_request = IsRequestDir(dir, *s);
  }
  ApplyHeaders(dir, *s, is_request, ds.block_end_stream, fields, ctx, ds.block_wire_bytes);
}

void Http2Session::ApplyHeaders(Direction dir, Stream& s, bool is_request, bool end_stream,
                                const DecodedFieldList& fields, const FrameContext& ctx,
                                uint64_t wire_bytes) {
  (void)dir;
  L7Record& rec = s.rec;
  L7Message& m = is_request ? rec.request : rec.response;
  if (m.bytes == 0) {
    m.first_byte_ns = ctx.first_ns;
    m.first_tcp_seq = ctx.seq;
    m.thread_id = ctx.thread_id;
  }
  m.bytes += wire_bytes;
  m.last_byte_ns = std::max(m.last_byte_ns, ctx.last_ns);
  s.last_ns = std::max(s.last_ns, ctx.last_ns);

  if (is_request) {
    s.request_headers = true;
  } else {
    for (const DecodedField& f : fields) {
      if (!f.unknown() && f.name == ":status") {
        const int status = ParseStatus(f.value);
        if (status >= 100 && status < 200 && !end_stream) return;  // informational
        rec.status = status;
      }
    }
    s.response_headers = true;
  }
  for (const DecodedField& f : fields) {
    if (f.unknown()) {
      rec.flags |= kRecordHeadersPartial;
      if (m.headers.size() < kMaxHeadersPerMessage) {
        m.headers.Add(f.name_unknown ? std::string_view() : std::string_view(f.name),
                      f.value_unknown ? std::string_view() : std::string_view(f.value), true);
      }
      continue;
    }
    if (!f.name.empty() && f.name[0] == ':') {
      if (!is_request) continue;
      if (f.name == ":method") {
        rec.method = f.value;
      } else if (f.name == ":path") {
        const size_t q = f.value.find('?');
        rec.path = f.value.substr(0, q);
        rec.query = q == std::string::npos ? std::string() : f.value.substr(q + 1);
      } else if (f.name == ":authority") {
        rec.authority = f.value;
      } else if (f.name == ":scheme") {
        rec.scheme = f.value;
      }
      continue;
    }
    if (is_request && rec.authority.empty() && f.name == "host") rec.authority = f.value;
    if (m.headers.size() < kMaxHeadersPerMessage) {
      m.headers.Add(f.name, IsSensitiveHeader(f.name) ? std::string_view("[REDACTED]")
                                                      : std::string_view(f.value));
    }
  }
  if (end_stream) EndMessage(is_request ? Direction::kEgress : Direction::kIngress, s,
                             rec.stream_id);
}

void Http2Session::OnDataBytes(Direction dir, DirState& ds, std::string_view body,
                               uint64_t wire_bytes, const FrameContext& ctx) {
  auto it = streams_.find(ds.data_stream);
  if (it == streams_.end()) return;
  Stream& s = it->second;
  const bool is_request = IsRequestDir(dir, s);
  L7Message& m = is_request ? s.rec.request : s.rec.response;
  if (m.bytes == 0) {
    m.first_byte_ns = ctx.first_ns;
    m.first_tcp_seq = ctx.seq;
    m.thread_id = ctx.thread_id;
  }
  m.bytes += wire_bytes;
  m.body_bytes += body.size();
  m.last_byte_ns = std::max(m.last_byte_ns, ctx.last_ns);
  s.last_ns = std::max(s.last_ns, ctx.last_ns);
  if (!body.empty()) (is_request ? s.request_grpc : s.response_grpc).Feed(body);
}

void Http2Session::FinishDataFrame(Direction dir, DirState& ds) {
  ds.phase = Phase::kFrames;
  if (!ds.data_end_stream) return;
  auto it = streams_.find(ds.data_stream);
  if (it == streams_.end()) return;
  const bool is_request = IsRequestDir(dir, it->second);
  EndMessage(is_request ? Direction::kEgress : Direction::kIngress, it->second, ds.data_stream);
}

bool Http2Session::IsRequestDir(Direction dir, Stream& s) {
  if (s.request_dir) return dir == *s.request_dir;
  if (client_dir_) return dir == *client_dir_;
  s.request_dir = dir;  // first frame seen on a stream of unknown roles: assume the request
  return true;
}

// `which` is kEgress for the request, kIngress for the response (not a wire direction).
void Http2Session::EndMessage(Direction which, Stream& s, uint32_t stream_id) {
  if (which == Direction::kEgress) {
    s.request_end = true;
    s.rec.request.complete = true;
    return;
  }
  s.response_end = true;
  s.rec.response.complete = true;
  CompleteStream(stream_id);  // the response ending ends the exchange
}

Http2Session::Stream* Http2Session::FindOrCreateStream(uint32_t id, uint64_t ts_ns) {
  auto it = streams_.find(id);
  if (it != streams_.end()) return &it->second;
  if (std::find(recently_closed_.begin(), recently_closed_.end(), id) != recently_closed_.end()) {
    ++h2_.closed_stream_frames;
    return nullptr;
  }
  if (streams_.size() >= kMaxOpenStreams) {
    auto oldest = std::min_element(streams_.begin(), streams_.end(), [](const auto& a,
                                                                         const auto& b) {
      return a.second.last_ns < b.second.last_ns;
    });
    ++h2_.streams_evicted;
    CompleteStream(oldest->first);
  }
  Stream& s = streams_[id];
  s.rec.stream_id = id;
  s.last_ns = ts_ns;
  return &s;
}

void Http2Session::CompleteStream(uint32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Emit(it->second);
  streams_.erase(it);
  if (recently_closed_.size() < kRecentlyClosedStreams) {
    recently_closed_.push_back(id);
  } else {
    recently_closed_[recently_closed_next_] = id;
    recently_closed_next_ = (recently_closed_next_ + 1) % kRecentlyClosedStreams;
  }
}

void Http2Session::Emit(Stream& s) {
  if (!s.request_headers && !s.response_headers) {
    ++counters_.unpaired;  // only DATA / resets seen: nothing to report
    return;
  }
  L7Record& rec = s.rec;
  rec.protocol = L7Protocol::kHttp2;
  rec.version = "2";
  if (!s.request_headers) {
    ++h2_.streams_start_unseen;
    rec.flags |= late_join_ ? kRecordLateJoin : kRecordTruncated;
  } else if (late_join_ && s.degraded) {
    rec.flags |= kRecordLateJoin;
  }
  if (!s.response_headers) rec.flags |= kRecordNoResponse;
  if (!s.request_headers || !s.response_headers) ++counters_.unpaired;
  if (rec.flags & kRecordLateJoin) ++counters_.late_join;
  ApplyGrpc(rec, s.request_grpc, s.response_grpc);
  ++counters_.records;
  done_.push_back(std::move(rec));
}

void Http2Session::TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) {
  if (closing) {
    while (!streams_.empty()) CompleteStream(streams_.begin()->first);
  } else if (now_ns > kStreamIdleTimeoutNs) {
    std::vector<uint32_t> idle;
    for (const auto& [id, s] : streams_) {
      if (s.last_ns != 0 && s.last_ns < now_ns - kStreamIdleTimeoutNs) idle.push_back(id);
    }
    for (uint32_t id : idle) CompleteStream(id);
  }
  for (L7Record& r : done_) out.push_back(std::move(r));
  done_.clear();
}

std::string Http2Session::Freeze() const {
  // Between frames, no stream open, nothing to report: what is left is the
  // role, each direction's framing limits and its HPACK table.
  if (!streams_.empty() || !done_.empty()) return {};
  std::string out;
  out.push_back(static_cast<char>(role_));
  out.push_back(static_cast<char>(client_dir_ ? static_cast<uint8_t>(*client_dir_) : 0));
  for (const DirState& ds : dirs_) {
    if ((ds.phase != Phase::kFrames && ds.phase != Phase::kPreface) || ds.block_active || ds.data_left != 0) {
      return {};
    }
    out.push_back(static_cast<char>(ds.phase));
    for (int shift : {0, 8, 16, 24}) out.push_back(static_cast<char>(ds.max_frame_size >> shift));
    if (!ds.hpack.Freeze(out)) return {};
  }
  return out;
}

std::unique_ptr<Http2Session> Http2Session::Thaw(std::string_view in) {
  if (in.size() < 2) return nullptr;
  const auto role = static_cast<Role>(in[0]);
  const auto client_dir = static_cast<uint8_t>(in[1]);
  if (role > Role::kServer || client_dir > static_cast<uint8_t>(Direction::kIngress)) return nullptr;
  in.remove_prefix(2);
  auto s = std::make_unique<Http2Session>(role, /*late_join=*/false);
  if (client_dir != 0) s->client_dir_ = static_cast<Direction>(client_dir);
  for (DirState& ds : s->dirs_) {
    if (in.size() < 5) return nullptr;
    const auto phase = static_cast<Phase>(in[0]);
    if (phase != Phase::kFrames && phase != Phase::kPreface) return nullptr;
    ds.phase = phase;
    ds.max_frame_size = 0;
    for (int i = 0; i < 4; ++i) {
      ds.max_frame_size |= static_cast<uint32_t>(static_cast<uint8_t>(in[1 + static_cast<size_t>(i)])) << (8 * i);
    }
    in.remove_prefix(5);
    if (!ds.hpack.Thaw(in)) return nullptr;
  }
  if (!in.empty()) return nullptr;
  return s;
}

void Http2Session::ReleaseIdleMemory() {
  if (done_.empty()) std::vector<L7Record>().swap(done_);
  for (DirState& ds : dirs_) {
    if (ds.block_active) continue;  // a header block is being assembled
    std::string().swap(ds.block);
  }
}

}  // namespace sonde::protocols::http2
