#pragma once
// HTTP/1.x message-head parsing and body framing as pure functions over bytes.
// Nothing here owns state across calls except ChunkedDecoder, which tracks
// where it is inside a chunked body so bytes (and capture gaps) can be fed
// incrementally. Views returned point into the caller's buffer.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "agent/protocols/http1/line_scanner.h"

namespace sonde::protocols::http1 {

enum class ParseStatus : uint8_t { kOk, kNeedMoreData, kInvalid };

// Longest head we wait for before declaring the bytes garbage.
inline constexpr size_t kMaxHeadBytes = 64 * 1024;
inline constexpr size_t kMaxHeaders = 128;

struct HeaderView {
  std::string_view name;  // as on the wire (case preserved)
  std::string_view value; // trimmed
};

// A header field as offsets into the parsed buffer (the layout HeaderList's
// AssignParsedOffsets takes, so a head is copied without a pass over views).
struct HeaderOffsets {
  uint32_t name_offset;
  uint32_t name_size;
  uint32_t value_offset;
  uint32_t value_size;
};

// The header fields of a parsed head, in order: at most kMaxHeaders, held
// inline (no allocation, no out-of-line push_back per field). Reads as views
// into the parsed buffer.
class HeaderViews {
 public:
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  HeaderView operator[](size_t i) const {
    const HeaderOffsets& f = fields_[i];
    return {std::string_view(base_ + f.name_offset, f.name_size),
            std::string_view(base_ + f.value_offset, f.value_size)};
  }
  const HeaderOffsets* offsets() const { return fields_; }

  class const_iterator {
   public:
    const_iterator(const HeaderViews* v, size_t i) : v_(v), i_(i) {}
    HeaderView operator*() const { return (*v_)[i_]; }
    const_iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }

   private:
    const HeaderViews* v_;
    size_t i_;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, size_}; }

  // For the parser: fields are offsets from `base`.
  void Reset(const char* base) {
    base_ = base;
    size_ = 0;
  }
  bool full() const { return size_ == kMaxHeaders; }
  void Push(const HeaderOffsets& f) { fields_[size_++] = f; }

 private:
  const char* base_ = nullptr;
  size_t size_ = 0;
  HeaderOffsets fields_[kMaxHeaders];
};

enum class BodyFraming : uint8_t {
  kNone,           // no body (or Content-Length: 0)
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked
  kUntilClose,     // response delimited by connection close
  kTunnel,         // 101 / CONNECT 2xx: the connection stops speaking HTTP
};

struct MessageHead {
  bool is_request = false;
  std::string_view method;  // requests
  std::string_view target;  // requests: request-target as sent
  int status = 0;           // responses
  int version_minor = 1;    // HTTP/1.<minor>
  size_t head_len = 0;      // bytes up to and including the blank line
  HeaderViews headers;

  // Derived from the headers while parsing.
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool chunked = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool expect_continue = false;
  std::string_view host;
};

// Parses one request or response head starting at buf[0], with the widest
// head scanner the CPU supports (chosen once).
ParseStatus ParseRequestHead(std::string_view buf, MessageHead* out);
ParseStatus ParseResponseHead(std::string_view buf, MessageHead* out);

// The same with a given scanner, for tests comparing them: every instruction
// set must give the same results. kInvalid when the CPU lacks `isa`.
bool ScanIsaSupported(ScanIsa isa);
ScanIsa BestScanIsa();
ParseStatus ParseRequestHeadWith(ScanIsa isa, std::string_view buf, MessageHead* out);
ParseStatus ParseResponseHeadWith(ScanIsa isa, std::string_view buf, MessageHead* out);

// Framing of a request body (RFC 9112 section 6).
BodyFraming RequestFraming(const MessageHead& req);
// Framing of a response body given the request method it answers.
BodyFraming ResponseFraming(const MessageHead& resp, std::string_view request_method);

// True when `s` starts with a known method token followed by a space.
bool StartsWithMethod(std::string_view s);
// How `s` compares with a request-line / status-line prefix: 1 yes, 0 no,
// -1 too short to tell.
int LooksLikeRequestStart(std::string_view s);
int LooksLikeResponseStart(std::string_view s);

// Offset of the next plausible message start at or after `from` (a line start
// that looks like a request or a status line), or npos. Used to resync after
// garbage or a capture gap.
size_t FindMessageStart(std::string_view buf, size_t from, bool request);

// Incremental decoder of a chunked body: feed bytes, it says how many it
// consumed and whether the body (with trailers) ended.
class ChunkedDecoder {
 public:
  enum class Result : uint8_t { kNeedMore, kDone, kInvalid };
  void Reset() { *this = ChunkedDecoder(); }
  // Consumes a prefix of `buf` and reports the state after it.
  Result Feed(std::string_view buf, size_t* consumed);
  // `n` bytes were not captured. True when they fall entirely inside chunk
  // data (the decoder stays in sync).
  bool SkipGap(uint64_t n);
  uint64_t data_bytes() const { return data_bytes_; }

 private:
  enum class State : uint8_t { kSize, kData, kDataEnd, kTrailer };
  State state_ = State::kSize;
  uint64_t remaining_ = 0;   // bytes of chunk data left
  uint64_t data_bytes_ = 0;  // decoded body bytes so far
};

}  // namespace sonde::protocols::http1
