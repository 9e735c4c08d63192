#pragma once
// Builders for HTTP/2 byte streams (frames, HPACK blocks from nghttp2's
// deflater, gRPC messages) and a feeder that plays the connection tracker.
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/session.h"
#include "agent/protocols/protocol.h"

namespace sonde::protocols::http2::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

// nghttp2's HPACK encoder, RAII.
class Deflater {
 public:
  explicit Deflater(size_t max_table = 4096) {
    nghttp2_hd_deflater* raw = nullptr;
    nghttp2_hd_deflate_new(&raw, max_table);
    deflater_.reset(raw);
  }
  std::string Encode(const Headers& headers, bool no_index = false) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : headers) {
      nghttp2_nv nv;
      nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(n.data()));
      nv.namelen = n.size();
      nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(v.data()));
      nv.valuelen = v.size();
      nv.flags = no_index ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
      nva.push_back(nv);
    }
    std::string out(nghttp2_hd_deflate_bound(deflater_.get(), nva.data(), nva.size()), '\0');
    const ssize_t n = nghttp2_hd_deflate_hd(deflater_.get(), reinterpret_cast<uint8_t*>(out.data()),
                                            out.size(), nva.data(), nva.size());
    out.resize(n < 0 ? 0 : static_cast<size_t>(n));
    return out;
  }
  void ChangeTableSize(size_t size) { nghttp2_hd_deflate_change_table_size(deflater_.get(), size); }

 private:
  struct Del {
    void operator()(nghttp2_hd_deflater* p) const { nghttp2_hd_deflate_del(p); }
  };
  std::unique_ptr<nghttp2_hd_deflater, Del> deflater_;
};

inline std::string Frame(FrameType type, uint8_t flags, uint32_t stream, std::string_view payload) {
  std::string f;
  const auto len = static_cast<uint32_t>(payload.size());
  f.push_back(static_cast<char>((len >> 16) & 0xff));
  f.push_back(static_cast<char>((len >> 8) & 0xff));
  f.push_back(static_cast<char>(len & 0xff));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>((stream >> 24) & 0x7f));
  f.push_back(static_cast<char>((stream >> 16) & 0xff));
  f.push_back(static_cast<char>((stream >> 8) & 0xff));
  f.push_back(static_cast<char>(stream & 0xff));
  f.append(payload);
  return f;
}

inline std::string U32(uint32_t v) {
  std::string s(4, '\0');
  s[0] = static_cast<char>(v >> 24);
  s[1] = static_cast<char>(v >> 16);
  s[2] = static_cast<char>(v >> 8);
  s[3] = static_cast<char>(v);
  return s;
}

inline std::string Settings(std::vector<std::pair<uint16_t, uint32_t>> params = {}) {
  std::string p;
  for (auto [id, v] : params) {
    p.push_back(static_cast<char>(id >> 8));
    p.push_back(static_cast<char>(id & 0xff));
    p += U32(v);
  }
  return Frame(FrameType::kSettings, 0, 0, p);
}
inline std::string SettingsAck() { return Frame(FrameType::kSettings, flags::kAck, 0, ""); }
inline std::string WindowUpdate(uint32_t stream, uint32_t inc) {
  return Frame(FrameType::kWindowUpdate, 0, stream, U32(inc));
}
inline std::string Ping() { return Frame(FrameType::kPing, 0, 0, std::string(8, 'p')); }

inline std::string HeadersFrame(uint32_t stream, std::string_view block, bool end_stream,
                                bool end_headers = true) {
  return Frame(FrameType::kHeaders,
               static_cast<uint8_t>((end_stream ? flags::kEndStream : 0) |
                                    (end_headers ? flags::kEndHeaders : 0)),
               stream, block);
}
inline std::string DataFrame(uint32_t stream, std::string_view data, bool end_stream) {
  return Frame(FrameType::kData, end_stream ? flags::kEndStream : 0, stream, data);
}
inline std::string GrpcMessage(std::string_view payload) {
  std::string m(1, '\0');
  m += U32(static_cast<uint32_t>(payload.size()));
  m.append(payload);
  return m;
}

// Plays the connection tracker: keeps unconsumed bytes per direction and
// presents them again with the next call's bytes; a gap drops them.
class Feeder {
 public:
  Feeder(Role role, bool late_join = false) : session_(role, late_join) {}

  void Send(Direction dir, std::string_view bytes, uint64_t ts = 1000, bool closed = false) {
    Pending& p = dir == Direction::kEgress ? egress_ : ingress_;
    ChunkInfo c;
    c.offset = p.bytes.size();
    c.ts_enter_ns = ts;
    c.ts_exit_ns = ts + 1;
    c.tcp_seq = p.seq;
    c.thread_id = 7;
    p.seq += static_cast<uint32_t>(bytes.size());
    p.chunks.push_back(c);
    p.bytes.append(bytes);
    StreamView view;
    view.bytes = p.bytes;
    view.chunks = p.chunks;
    view.connection_closed = closed;
    const size_t used = session_.OnBytes(dir, view);
    if (used > p.bytes.size()) throw std::runtime_error("consumed more than presented");
    p.bytes.erase(0, used);
    // Rebase chunks onto the remaining bytes.
    std::vector<ChunkInfo> rest;
    for (size_t i = 0; i < p.chunks.size(); ++i) {
      const uint64_t start = p.chunks[i].offset;
      const uint64_t stop = i + 1 < p.chunks.size() ? p.chunks[i + 1].offset : used + p.bytes.size();
      if (stop <= used) continue;
      ChunkInfo ci = p.chunks[i];
      if (start < used) {
        if (ci.tcp_seq) ci.tcp_seq = *ci.tcp_seq + static_cast<uint32_t>(used - start);
        ci.offset = 0;
      } else {
        ci.offset = start - used;
      }
      rest.push_back(ci);
    }
    p.chunks = std::move(rest);
  }
  // Sends `bytes` split into pieces of `piece` bytes.
  void SendSplit(Direction dir, std::string_view bytes, size_t piece, uint64_t ts = 1000) {
    for (size_t i = 0; i < bytes.size(); i += piece) Send(dir, bytes.substr(i, piece), ts + i);
  }
  void Gap(Direction dir, uint64_t n) {
    Pending& p = dir == Direction::kEgress ? egress_ : ingress_;
    session_.OnGap(dir, n == kUnknownGapBytes ? n : n + p.bytes.size());
    p.bytes.clear();
    p.chunks.clear();
    p.seq += static_cast<uint32_t>(n);
  }
  std::vector<L7Record> Take(bool closing = true) {
    std::vector<L7Record> out;
    session_.TakeRecords(0, closing, out);
    return out;
  }
  Http2Session& session() { return session_; }

 private:
  struct Pending {
    std::string bytes;
    std::vector<ChunkInfo> chunks;
    uint32_t seq = 1000;
  };
  Http2Session session_;
  Pending egress_;
  Pending ingress_;
};

}  // namespace sonde::protocols::http2::testing
