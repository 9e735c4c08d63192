#pragma once
// HTTP/1.x message-head parsing and body framing as pure functions over bytes.
// Nothing here owns state across calls except ChunkedDecoder, which tracks
// where it is inside a chunked body so bytes (and capture gaps) can be fed
// incrementally. Views returned point into the caller's buffer.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sonde::protocols::http1 {

enum class ParseStatus : uint8_t { kOk, kNeedMoreData, kInvalid };

// Longest head we wait for before declaring the bytes garbage.
inline constexpr size_t kMaxHeadBytes = 64 * 1024;
inline constexpr size_t kMaxHeaders = 128;

struct HeaderView {
  std::string_view name;  // as on the wire (case preserved)
  std::string_view value; // trimmed
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
  std::vector<HeaderView> headers;

  // Derived from the headers while parsing.
  bool has_content_length = false;
  uint64_t content_length = 0;
  bool chunked = false;
  bool connection_close = false;
  bool connection_keep_alive = false;
  bool expect_continue = false;
  std::string_view host;
};

// Parses one request or response head starting at buf[0].
ParseStatus ParseRequestHead(std::string_view buf, MessageHead* out);
ParseStatus ParseResponseHead(std::string_view buf, MessageHead* out);

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
