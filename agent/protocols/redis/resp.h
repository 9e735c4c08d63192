#pragma once
// RESP2/RESP3 wire format (https://redis.io/docs/latest/develop/reference/protocol-spec/).
// ParseRespHeader is a pure function over one element's header line;
// RespScanner walks whole values incrementally on top of it, skipping bulk
// payloads by count so a huge value costs no memory, and keeps only a short
// summary of each top-level value (command name, error prefix, push kind).
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sonde::protocols::redis {

enum class RespType : uint8_t {
  kSimpleString,  // +
  kError,         // -
  kInteger,       // :
  kBulkString,    // $
  kArray,         // *
  kNull,          // _
  kDouble,        // ,
  kBoolean,       // #
  kBlobError,     // !
  kVerbatim,      // =
  kBigNumber,     // (
  kMap,           // %
  kSet,           // ~
  kPush,          // >
  kAttribute,     // |
  kInline,        // a client's inline command ("PING\r\n"), not a RESP type byte
};

// The RESP type of a leading byte; false when `c` starts no RESP element.
bool RespTypeOf(char c, RespType* type);

enum class RespStatus : uint8_t { kOk, kNeedMore, kInvalid };

// Limits that keep garbage from growing buffers: a header line longer than
// kMaxLineBytes, nesting deeper than kMaxDepth or a bulk length above the
// server's own 512 MiB cap is not RESP.
inline constexpr size_t kMaxLineBytes = 64 * 1024;
inline constexpr size_t kMaxDepth = 32;
inline constexpr int64_t kMaxBulkBytes = int64_t{512} << 20;
inline constexpr int64_t kMaxElements = int64_t{1} << 32;
// Bytes kept of a captured string (command name, error text).
inline constexpr size_t kCaptureBytes = 64;

// One element's header: type byte, line, CRLF ("$5\r\n", "+OK\r\n", "*-1\r\n").
struct RespHeader {
  RespType type = RespType::kNull;
  // Bulk-like types: payload bytes; aggregates: element count (pairs for
  // maps/attributes); -1: RESP2 null ($-1 / *-1).
  int64_t length = 0;
  std::string_view line;  // text after the type byte, without CRLF
  size_t size = 0;        // header bytes including CRLF
};

// Parses the header starting at bytes[0]. kNeedMore: the line is not complete
// yet (and could still be valid); kInvalid: these bytes are not RESP.
RespStatus ParseRespHeader(std::string_view bytes, RespHeader* out);

// What is kept of one complete top-level value.
struct RespSummary {
  RespType type = RespType::kNull;  // of the value (attributes before it skipped)
  int64_t elements = 0;             // top-level aggregate: element count
  bool error = false;               // '-' or '!' at top level
  std::string error_text;           // its first kCaptureBytes bytes
  // First two strings of a top-level aggregate (or inline command words),
  // first kCaptureBytes bytes each: a command's name and subcommand, a pub/sub
  // message's kind. Later elements (keys, values) are never copied.
  std::array<std::string, 2> words;
  size_t word_count = 0;
  bool bulk_strings_only = true;  // top-level array of bulk strings (a command's shape)
};

class RespScanner {
 public:
  enum class Result : uint8_t { kNeedMore, kDone, kInvalid };

  // `allow_inline`: the client side, where "PING\r\n" is a command.
  explicit RespScanner(bool allow_inline = false) : allow_inline_(allow_inline) {}

  // Consumes bytes of at most one top-level value. `*used` is what was
  // consumed (with kNeedMore: up to an incomplete header line, which must be
  // presented again with more bytes appended). kDone: summary() is the value.
  Result Feed(std::string_view bytes, size_t* used);

  void set_allow_inline(bool allow) { allow_inline_ = allow; }

  // The next `n` bytes were lost: absorbed when they fall inside a bulk payload.
  bool SkipGap(uint64_t n);

  // Between values (no partial value buffered in the state).
  bool idle() const { return !started_; }
  const RespSummary& summary() const { return summary_; }
  // Ready for a new value (after kDone, kInvalid or a desync).
  void Reset();

 private:
  struct Level {
    int64_t remaining = 0;
    bool attribute = false;
  };
  Result FeedInline(std::string_view bytes, size_t* used);
  // An element finished: counts it in its parent, pops finished aggregates.
  void ElementDone(bool was_attribute);
  // Where a string element's bytes go (nullptr: not kept).
  std::string* CaptureFor(RespType type);
  static void Capture(std::string* to, std::string_view bytes);

  bool allow_inline_;
  bool started_ = false;
  bool done_ = false;
  std::vector<Level> stack_;
  int64_t payload_left_ = 0;  // bulk payload bytes still to skip
  int crlf_left_ = 0;         // bulk terminator bytes still to check
  std::string* capture_ = nullptr;
  RespSummary summary_;
};

}  // namespace sonde::protocols::redis
