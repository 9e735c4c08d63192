#include "agent/protocols/http1/parser.h"

#include "agent/protocols/header_list.h"
#include "agent/protocols/http1/line_scanner.h"

#include <algorithm>
#include <array>
#include <cstring>

namespace sonde::protocols::http1 {
namespace {

constexpr std::string_view kMethods[] = {"GET",     "POST",  "PUT",   "DELETE", "HEAD",
                                         "OPTIONS", "PATCH", "TRACE", "CONNECT"};

inline char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

template <typename Word>
inline bool WordEqualsLower(const char* s, const char* lower) {
  Word a, b;
  std::memcpy(&a, s, sizeof(a));
  std::memcpy(&b, lower, sizeof(b));
  return ::sonde::protocols::header_list_detail::LowerAscii(a) == b;
}

// `s` lowercased equals `lower`. Words at a time (the last one overlapping),
// exact for every byte value.
[[gnu::always_inline]] inline bool EqualsLower(std::string_view s, std::string_view lower) {
  const size_t n = s.size();
  if (n != lower.size()) return false;
  if (n >= 8) {
    for (size_t i = 0; i + 8 < n; i += 8) {
      if (!WordEqualsLower<uint64_t>(s.data() + i, lower.data() + i)) return false;
    }
    return WordEqualsLower<uint64_t>(s.data() + n - 8, lower.data() + n - 8);
  }
  if (n >= 4) {
    return WordEqualsLower<uint32_t>(s.data(), lower.data()) &&
           WordEqualsLower<uint32_t>(s.data() + n - 4, lower.data() + n - 4);
  }
  for (size_t i = 0; i < n; ++i) {
    if (Lower(s[i]) != lower[i]) return false;
  }
  return true;
}

// True when the comma-separated token list `value` contains `token` (lowercase).
bool HasToken(std::string_view value, std::string_view token) {
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view t = value.substr(pos, comma - pos);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (EqualsLower(t, token)) return true;
    pos = comma + 1;
  }
  return false;
}


// Next line of `buf` starting at `pos`: returns the line without CR/LF and
// advances `pos` past the LF; false when no complete line is available.
inline bool NextLine(std::string_view buf, size_t* pos, std::string_view* line) {
  const char* start = buf.data() + *pos;
  const void* lf = std::memchr(start, '\n', buf.size() - *pos);
  if (lf == nullptr) return false;
  size_t len = static_cast<const char*>(lf) - start;
  *pos += len + 1;
  if (len > 0 && start[len - 1] == '\r') --len;
  *line = std::string_view(start, len);
  return true;
}

bool ParseVersion(std::string_view v, int* minor) {
  if (v.size() != 8 || v.substr(0, 7) != "HTTP/1.") return false;
  if (v[7] < '0' || v[7] > '9') return false;
  *minor = v[7] - '0';
  return true;
}

bool ParseDecimal(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  *out = v;
  return true;
}

// Next line of a head through `scanner`: the line without CR/LF, `pos`
// advanced past the LF; false when no complete line is available.
template <typename Scanner>
[[gnu::always_inline]] inline bool NextHeadLine(Scanner& scanner, std::string_view buf, size_t* pos,
                                                std::string_view* line) {
  size_t lf = 0, colon = 0;
  if (!scanner.Line(*pos, &lf, &colon)) return false;
  size_t end = lf;
  if (end > *pos && buf[end - 1] == '\r') --end;
  *line = std::string_view(buf.data() + *pos, end - *pos);
  *pos = lf + 1;
  return true;
}

inline bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// `name` (tchar bytes only) equals `lower` (lowercase letters, digits, '-')
// ignoring case. Within tchar, OR-ing 0x20 maps a byte onto one of those only
// from itself or its uppercase letter, so 8 bytes compare at once.
inline bool TokenEqualsLower(std::string_view name, std::string_view lower) {
  const size_t n = name.size();
  if (n != lower.size()) return false;
  if (n < 8) {
    if (n < 4) return EqualsLower(name, lower);
    constexpr uint32_t kCase4 = 0x20202020u;
    uint32_t a, b, c, d;
    std::memcpy(&a, name.data(), 4);
    std::memcpy(&b, lower.data(), 4);
    std::memcpy(&c, name.data() + n - 4, 4);  // the tail, overlapping
    std::memcpy(&d, lower.data() + n - 4, 4);
    return ((a | kCase4) == b) & ((c | kCase4) == d);
  }
  constexpr uint64_t kCase = 0x2020202020202020ull;
  uint64_t a, b;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    std::memcpy(&a, name.data() + i, 8);
    std::memcpy(&b, lower.data() + i, 8);
    if ((a | kCase) != b) return false;
  }
  std::memcpy(&a, name.data() + n - 8, 8);  // the tail, overlapping
  std::memcpy(&b, lower.data() + n - 8, 8);
  return (a | kCase) == b;
}

// Parses header lines from `pos` until the blank line. Inlined into each
// dispatched parser below, so the scanner's vector code is built for its
// instruction set.
template <typename Scanner>
[[gnu::always_inline]] inline ParseStatus ParseHeaders(Scanner& scanner, std::string_view buf, size_t pos,
                                                       MessageHead* out) {
  const auto incomplete = [&] {
    return buf.size() > kMaxHeadBytes ? ParseStatus::kInvalid : ParseStatus::kNeedMoreData;
  };
  while (true) {
    size_t lf = 0, colon = 0;
    if (!scanner.Line(pos, &lf, &colon)) return incomplete();
    size_t value_end = lf;
    if (value_end > pos && buf[value_end - 1] == '\r') --value_end;
    if (value_end == pos) {  // the blank line ending the head
      pos = lf + 1;
      break;
    }
    if (IsBlank(buf[pos])) {  // obsolete line folding: ignored
      pos = lf + 1;
      continue;
    }
    if (colon == Scanner::npos || colon == pos) return ParseStatus::kInvalid;
    if constexpr (Scanner::kClassifies) {
      if (!scanner.NameIsToken()) return ParseStatus::kInvalid;
    } else {
      if (!scanner.AllTchar(pos, colon)) return ParseStatus::kInvalid;
    }
    const std::string_view name(buf.data() + pos, colon - pos);
    size_t value_begin = colon + 1;
    while (value_begin < value_end && IsBlank(buf[value_begin])) ++value_begin;
    while (value_end > value_begin && IsBlank(buf[value_end - 1])) --value_end;
    const std::string_view value(buf.data() + value_begin, value_end - value_begin);
    if (out->headers.full()) return ParseStatus::kInvalid;
    out->headers.Push({static_cast<uint32_t>(pos), static_cast<uint32_t>(colon - pos),
                       static_cast<uint32_t>(value_begin), static_cast<uint32_t>(value_end - value_begin)});
    pos = lf + 1;
    switch (name.size()) {
      case 4:
        if (TokenEqualsLower(name, "host")) out->host = value;
        break;
      case 6:
        if (TokenEqualsLower(name, "expect") && HasToken(value, "100-continue")) {
          out->expect_continue = true;
        }
        break;
      case 10:
        if (TokenEqualsLower(name, "connection")) {
          // The common values, without a token walk.
          if (EqualsLower(value, "keep-alive")) {
            out->connection_keep_alive = true;
          } else if (EqualsLower(value, "close")) {
            out->connection_close = true;
          } else {
            if (HasToken(value, "close")) out->connection_close = true;
            if (HasToken(value, "keep-alive")) out->connection_keep_alive = true;
          }
        }
        break;
      case 14:
        if (TokenEqualsLower(name, "content-length")) {
          uint64_t len = 0;
          if (!ParseDecimal(value, &len)) return ParseStatus::kInvalid;
          if (out->has_content_length && len != out->content_length) return ParseStatus::kInvalid;
          out->has_content_length = true;
          out->content_length = len;
        }
        break;
      case 17:
        if (TokenEqualsLower(name, "transfer-encoding")) {
          // chunked must be the final coding; anything else is not chunked.
          size_t last = value.rfind(',');
          std::string_view final_coding = last == std::string_view::npos ? value : value.substr(last + 1);
          while (!final_coding.empty() && final_coding.front() == ' ') final_coding.remove_prefix(1);
          out->chunked = EqualsLower(final_coding, "chunked");
          if (!out->chunked) out->connection_close = true;  // body runs to close
        }
        break;
      default:
        break;
    }
  }
  out->head_len = pos;
  return ParseStatus::kOk;
}

void ResetDerived(MessageHead* out) {
  out->has_content_length = out->chunked = out->connection_close = false;
  out->connection_keep_alive = out->expect_continue = false;
  out->content_length = 0;
  out->host = {};
}

}  // namespace

int LooksLikeRequestStart(std::string_view s) {
  for (std::string_view m : kMethods) {
    size_t n = std::min(s.size(), m.size() + 1);
    std::string_view want = m;
    bool match = true;
    for (size_t i = 0; i < n; ++i) {
      char expect = i < want.size() ? want[i] : ' ';
      if (s[i] != expect) {
        match = false;
        break;
      }
    }
    if (match) return n == m.size() + 1 ? 1 : -1;
  }
  return 0;
}

int LooksLikeResponseStart(std::string_view s) {
  static constexpr std::string_view kPrefix = "HTTP/1.";
  size_t n = std::min(s.size(), kPrefix.size());
  if (s.substr(0, n) != kPrefix.substr(0, n)) return 0;
  if (s.size() < 13) {
    // "HTTP/1.x NNN " — check what we have.
    for (size_t i = kPrefix.size(); i < s.size(); ++i) {
      char c = s[i];
      bool ok = (i == 7 || (i >= 9 && i <= 11)) ? (c >= '0' && c <= '9') : c == ' ';
      if (!ok) return 0;
    }
    return -1;
  }
  if (s[7] < '0' || s[7] > '9' || s[8] != ' ') return 0;
  for (int i = 9; i < 12; ++i) {
    if (s[i] < '0' || s[i] > '9') return 0;
  }
  return (s[12] == ' ' || s[12] == '\r' || s[12] == '\n') ? 1 : 0;
}

bool StartsWithMethod(std::string_view s) { return LooksLikeRequestStart(s) == 1; }

namespace {

template <ScanIsa kIsa>
[[gnu::always_inline]] inline ParseStatus RequestHead(std::string_view buf, MessageHead* out) {
  out->headers.Reset(buf.data());
  out->is_request = true;
  BasicLineScanner<kIsa> scanner(buf);
  size_t pos = 0;
  std::string_view line;
  if (!NextHeadLine(scanner, buf, &pos, &line)) {
    if (LooksLikeRequestStart(buf) == 0) return ParseStatus::kInvalid;
    return buf.size() > kMaxHeadBytes ? ParseStatus::kInvalid : ParseStatus::kNeedMoreData;
  }
  size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return ParseStatus::kInvalid;
  size_t sp2 = line.rfind(' ');
  if (sp2 == sp1) return ParseStatus::kInvalid;
  out->method = line.substr(0, sp1);
  for (char c : out->method) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return ParseStatus::kInvalid;
  }
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (out->target.empty() || out->target.find(' ') != std::string_view::npos) {
    return ParseStatus::kInvalid;
  }
  if (!ParseVersion(line.substr(sp2 + 1), &out->version_minor)) return ParseStatus::kInvalid;
  ResetDerived(out);
  return ParseHeaders(scanner, buf, pos, out);
}

template <ScanIsa kIsa>
[[gnu::always_inline]] inline ParseStatus ResponseHead(std::string_view buf, MessageHead* out) {
  out->headers.Reset(buf.data());
  out->is_request = false;
  if (LooksLikeResponseStart(buf) == 0) return ParseStatus::kInvalid;
  BasicLineScanner<kIsa> scanner(buf);
  size_t pos = 0;
  std::string_view line;
  if (!NextHeadLine(scanner, buf, &pos, &line)) {
    return buf.size() > kMaxHeadBytes ? ParseStatus::kInvalid : ParseStatus::kNeedMoreData;
  }
  if (line.size() < 12 || !ParseVersion(line.substr(0, 8), &out->version_minor)) {
    return ParseStatus::kInvalid;
  }
  out->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  ResetDerived(out);
  return ParseHeaders(scanner, buf, pos, out);
}

// One instance per instruction set; the AVX ones are built for it, so the
// scanner's window scans inline into them.
ParseStatus RequestScalar(std::string_view buf, MessageHead* out) {
  return RequestHead<ScanIsa::kScalar>(buf, out);
}
ParseStatus ResponseScalar(std::string_view buf, MessageHead* out) {
  return ResponseHead<ScanIsa::kScalar>(buf, out);
}
#if defined(SONDE_HTTP1_X86)
ParseStatus RequestSse2(std::string_view buf, MessageHead* out) { return RequestHead<ScanIsa::kSse2>(buf, out); }
ParseStatus ResponseSse2(std::string_view buf, MessageHead* out) {
  return ResponseHead<ScanIsa::kSse2>(buf, out);
}
[[gnu::target("avx2")]] ParseStatus RequestAvx2(std::string_view buf, MessageHead* out) {
  return RequestHead<ScanIsa::kAvx2>(buf, out);
}
[[gnu::target("avx2")]] ParseStatus ResponseAvx2(std::string_view buf, MessageHead* out) {
  return ResponseHead<ScanIsa::kAvx2>(buf, out);
}
[[gnu::target("avx512f,avx512bw,avx512vbmi")]] ParseStatus RequestAvx512(std::string_view buf, MessageHead* out) {
  return RequestHead<ScanIsa::kAvx512>(buf, out);
}
[[gnu::target("avx512f,avx512bw,avx512vbmi")]] ParseStatus ResponseAvx512(std::string_view buf,
                                                                          MessageHead* out) {
  return ResponseHead<ScanIsa::kAvx512>(buf, out);
}
#endif

struct HeadParsers {
  ParseStatus (*request)(std::string_view, MessageHead*);
  ParseStatus (*response)(std::string_view, MessageHead*);
};

HeadParsers ParsersFor(ScanIsa isa) {
  switch (isa) {
#if defined(SONDE_HTTP1_X86)
    case ScanIsa::kAvx512:
      return {RequestAvx512, ResponseAvx512};
    case ScanIsa::kAvx2:
      return {RequestAvx2, ResponseAvx2};
    case ScanIsa::kSse2:
      return {RequestSse2, ResponseSse2};
#endif
    default:
      return {RequestScalar, ResponseScalar};
  }
}

const HeadParsers& BestParsers() {
  static const HeadParsers parsers = ParsersFor(BestScanIsa());
  return parsers;
}

}  // namespace

bool ScanIsaSupported(ScanIsa isa) {
  switch (isa) {
    case ScanIsa::kScalar:
      return true;
#if defined(SONDE_HTTP1_X86)
    case ScanIsa::kSse2:
      return true;
    case ScanIsa::kAvx2:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx2");
    case ScanIsa::kAvx512:
      __builtin_cpu_init();
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vbmi");
#endif
    default:
      return false;
  }
}

ScanIsa BestScanIsa() {
  for (ScanIsa isa : {ScanIsa::kAvx512, ScanIsa::kAvx2, ScanIsa::kSse2}) {
    if (ScanIsaSupported(isa)) return isa;
  }
  return ScanIsa::kScalar;
}

ParseStatus ParseRequestHead(std::string_view buf, MessageHead* out) { return BestParsers().request(buf, out); }
ParseStatus ParseResponseHead(std::string_view buf, MessageHead* out) { return BestParsers().response(buf, out); }

ParseStatus ParseRequestHeadWith(ScanIsa isa, std::string_view buf, MessageHead* out) {
  return ScanIsaSupported(isa) ? ParsersFor(isa).request(buf, out) : ParseStatus::kInvalid;
}
ParseStatus ParseResponseHeadWith(ScanIsa isa, std::string_view buf, MessageHead* out) {
  return ScanIsaSupported(isa) ? ParsersFor(isa).response(buf, out) : ParseStatus::kInvalid;
}

BodyFraming RequestFraming(const MessageHead& req) {
  if (req.chunked) return BodyFraming::kChunked;
  if (req.has_content_length && req.content_length > 0) return BodyFraming::kContentLength;
  if (req.method == "CONNECT") return BodyFraming::kTunnel;
  return BodyFraming::kNone;
}

BodyFraming ResponseFraming(const MessageHead& resp, std::string_view request_method) {
  if (resp.status == 101) return BodyFraming::kTunnel;
  if (request_method == "CONNECT" && resp.status >= 200 && resp.status < 300) {
    return BodyFraming::kTunnel;
  }
  if (request_method == "HEAD" || (resp.status >= 100 && resp.status < 200) ||
      resp.status == 204 || resp.status == 304) {
    return BodyFraming::kNone;
  }
  if (resp.chunked) return BodyFraming::kChunked;
  if (resp.has_content_length) {
    return resp.content_length > 0 ? BodyFraming::kContentLength : BodyFraming::kNone;
  }
  return BodyFraming::kUntilClose;
}

size_t FindMessageStart(std::string_view buf, size_t from, bool request) {
  size_t pos = from;
  while (pos < buf.size()) {
    if (pos == 0 || buf[pos - 1] == '\n') {
      std::string_view rest = buf.substr(pos);
      int look = request ? LooksLikeRequestStart(rest) : LooksLikeResponseStart(rest);
      if (look != 0) return pos;
    }
    const void* lf = std::memchr(buf.data() + pos, '\n', buf.size() - pos);
    if (lf == nullptr) break;
    pos = static_cast<size_t>(static_cast<const char*>(lf) - buf.data()) + 1;
  }
  return std::string_view::npos;
}

ChunkedDecoder::Result ChunkedDecoder::Feed(std::string_view buf, size_t* consumed) {
  size_t pos = 0;
  while (true) {
    switch (state_) {
      case State::kData: {
        uint64_t take = std::min<uint64_t>(remaining_, buf.size() - pos);
        pos += take;
        remaining_ -= take;
        data_bytes_ += take;
        if (remaining_ > 0) {
          *consumed = pos;
          return Result::kNeedMore;
        }
        state_ = State::kDataEnd;
        break;
      }
      case State::kDataEnd: {
        if (pos >= buf.size()) {
          *consumed = pos;
          return Result::kNeedMore;
        }
        if (buf[pos] == '\n') {
          pos += 1;
        } else if (buf[pos] == '\r') {
          if (pos + 1 >= buf.size()) {
            *consumed = pos;
            return Result::kNeedMore;
          }
          if (buf[pos + 1] != '\n') return Result::kInvalid;
          pos += 2;
        } else {
          return Result::kInvalid;
        }
        state_ = State::kSize;
        break;
      }
      case State::kSize: {
        size_t line_start = pos;
        std::string_view line;
        if (!NextLine(buf, &pos, &line)) {
          *consumed = line_start;
          return buf.size() - line_start > 1024 ? Result::kInvalid : Result::kNeedMore;
        }
        uint64_t size = 0;
        size_t digits = 0;
        for (char c : line) {
          int d;
          if (c >= '0' && c <= '9') d = c - '0';
          else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
          else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
          else break;
          if (++digits > 15) return Result::kInvalid;
          size = size * 16 + static_cast<uint64_t>(d);
        }
        if (digits == 0) return Result::kInvalid;
        if (digits < line.size() && line[digits] != ';' && line[digits] != ' ' &&
            line[digits] != '\t') {
          return Result::kInvalid;
        }
        if (size == 0) {
          state_ = State::kTrailer;
        } else {
          remaining_ = size;
          state_ = State::kData;
        }
        break;
      }
      case State::kTrailer: {
        size_t line_start = pos;
        std::string_view line;
        if (!NextLine(buf, &pos, &line)) {
          *consumed = line_start;
          return buf.size() - line_start > kMaxHeadBytes ? Result::kInvalid : Result::kNeedMore;
        }
        if (line.empty()) {
          *consumed = pos;
          return Result::kDone;
        }
        break;
      }
    }
  }
}

bool ChunkedDecoder::SkipGap(uint64_t n) {
  if (state_ != State::kData || n > remaining_) return false;
  remaining_ -= n;
  data_bytes_ += n;
  return true;
}

}  // namespace sonde::protocols::http1
