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
#include "tests/unit/protocols/stream_feeder.h"

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

// The tracker stand-in shared by the protocol session tests, with HTTP/2's
// test defaults: a timestamp when none is given, Take() flushes.
class Feeder : public sonde::testing::StreamFeeder<Http2Session> {
 public:
  Feeder(Role role, bool late_join = false) : StreamFeeder(role, late_join) {}
  void Send(Direction dir, std::string_view bytes, uint64_t ts = 1000, bool closed = false) {
    StreamFeeder::Send(dir, bytes, ts, closed);
  }
  // Sends `bytes` split into pieces of `piece` bytes.
  void SendSplit(Direction dir, std::string_view bytes, size_t piece, uint64_t ts = 1000) {
    for (size_t i = 0; i < bytes.size(); i += piece) Send(dir, bytes.substr(i, piece), ts + i);
  }
  std::vector<L7Record> Take(bool closing = true) { return StreamFeeder::Take(closing); }
};

}  // namespace sonde::protocols::http2::testing
