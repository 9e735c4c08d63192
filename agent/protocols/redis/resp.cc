#include "agent/protocols/redis/resp.h"

#include <algorithm>

namespace sonde::protocols::redis {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// "[-]digits" within int64 range (19 digits at most keeps it simple).
bool ParseInteger(std::string_view s, int64_t* out) {
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (!IsDigit(c)) return false;
    v = v * 10 + (c - '0');
  }
  *out = negative ? -v : v;
  return true;
}

bool IsDoubleText(std::string_view s) {
  if (s == "inf" || s == "-inf" || s == "nan") return true;
  if (s.empty()) return false;
  bool digit = false;
  for (char c : s) {
    if (IsDigit(c)) digit = true;
    else if (c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E') return false;
  }
  return digit;
}

bool IsAggregate(RespType t) {
  return t == RespType::kArray || t == RespType::kMap || t == RespType::kSet || t == RespType::kPush ||
         t == RespType::kAttribute;
}

bool IsBulkLike(RespType t) {
  return t == RespType::kBulkString || t == RespType::kBlobError || t == RespType::kVerbatim;
}

bool IsInlineChar(unsigned char c) { return c >= 0x20 ? c != 0x7f : c == '\t'; }

}  // namespace

bool RespTypeOf(char c, RespType* type) {
  switch (c) {
    case '+': *type = RespType::kSimpleString; return true;
    case '-': *type = RespType::kError; return true;
    case ':': *type = RespType::kInteger; return true;
    case '$': *type = RespType::kBulkString; return true;
    case '*': *type = RespType::kArray; return true;
    case '_': *type = RespType::kNull; return true;
    case ',': *type = RespType::kDouble; return true;
    case '#': *type = RespType::kBoolean; return true;
    case '!': *type = RespType::kBlobError; return true;
    case '=': *type = RespType::kVerbatim; return true;
    case '(': *type = RespType::kBigNumber; return true;
    case '%': *type = RespType::kMap; return true;
    case '~': *type = RespType::kSet; return true;
    case '>': *type = RespType::kPush; return true;
    case '|': *type = RespType::kAttribute; return true;
    default: return false;
  }
}

RespStatus ParseRespHeader(std::string_view bytes, RespHeader* out) {
  if (bytes.empty()) return RespStatus::kNeedMore;
  if (!RespTypeOf(bytes[0], &out->type)) return RespStatus::kInvalid;
  // Numeric lines are short: give up early on garbage without a CRLF.
  const bool numeric = out->type != RespType::kSimpleString && out->type != RespType::kError &&
                       out->type != RespType::kDouble && out->type != RespType::kBigNumber;
  const size_t limit = numeric ? 24 : kMaxLineBytes;
  const size_t scan = std::min(bytes.size(), limit + 3);
  size_t cr = std::string_view::npos;
  for (size_t i = 1; i < scan; ++i) {
    if (bytes[i] == '\r') {
      cr = i;
      break;
    }
    if (bytes[i] == '\n') return RespStatus::kInvalid;  // a bare LF is not RESP
  }
  if (cr == std::string_view::npos) return scan > limit ? RespStatus::kInvalid : RespStatus::kNeedMore;
  if (cr + 1 >= bytes.size()) return RespStatus::kNeedMore;
  if (bytes[cr + 1] != '\n') return RespStatus::kInvalid;
  out->line = bytes.substr(1, cr - 1);
  out->size = cr + 2;
  out->length = 0;
  const std::string_view line = out->line;
  switch (out->type) {
    case RespType::kSimpleString:
    case RespType::kError:
      return RespStatus::kOk;
    case RespType::kInteger:
    case RespType::kBigNumber: {
      if (out->type == RespType::kBigNumber) {
        std::string_view digits = line;
        if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
        return !digits.empty() && std::all_of(digits.begin(), digits.end(), IsDigit) ? RespStatus::kOk
                                                                                      : RespStatus::kInvalid;
      }
      int64_t v = 0;
      return ParseInteger(line, &v) ? RespStatus::kOk : RespStatus::kInvalid;
    }
    case RespType::kNull:
      return line.empty() ? RespStatus::kOk : RespStatus::kInvalid;
    case RespType::kBoolean:
      return line == "t" || line == "f" ? RespStatus::kOk : RespStatus::kInvalid;
    case RespType::kDouble:
      return IsDoubleText(line) ? RespStatus::kOk : RespStatus::kInvalid;
    default:
      break;
  }
  // Lengths and counts: digits only, -1 for RESP2's null bulk string / array.
  int64_t n = 0;
  if (!ParseInteger(line, &n) || (line[0] == '+')) return RespStatus::kInvalid;
  const bool null_allowed = out->type == RespType::kBulkString || out->type == RespType::kArray;
  if (n < 0 && !(n == -1 && null_allowed)) return RespStatus::kInvalid;
  if (IsBulkLike(out->type) && n > kMaxBulkBytes) return RespStatus::kInvalid;
  if (out->type == RespType::kVerbatim && n < 4) return RespStatus::kInvalid;  // "txt:" prefix
  if (IsAggregate(out->type) && n > kMaxElements) return RespStatus::kInvalid;
  if (out->type == RespType::kMap || out->type == RespType::kAttribute) n *= 2;
  out->length = n;
  return RespStatus::kOk;
}

void RespScanner::Reset() {
  started_ = done_ = false;
  stack_.clear();
  payload_left_ = 0;
  crlf_left_ = 0;
  capture_ = nullptr;
  summary_.type = RespType::kNull;
  summary_.elements = 0;
  summary_.error = false;
  summary_.error_text.clear();
  for (auto& w : summary_.words) w.clear();
  summary_.word_count = 0;
  summary_.bulk_strings_only = true;
}

void RespScanner::Capture(std::string* to, std::string_view bytes) {
  if (to == nullptr || to->size() >= kCaptureBytes) return;
  to->append(bytes.substr(0, kCaptureBytes - to->size()));
}

std::string* RespScanner::CaptureFor(RespType type) {
  const bool is_string = type == RespType::kBulkString || type == RespType::kSimpleString ||
                         type == RespType::kVerbatim;
  if (stack_.empty()) {
    return type == RespType::kError || type == RespType::kBlobError ? &summary_.error_text : nullptr;
  }
  // Only the first two direct elements of the top-level value.
  if (stack_.size() != 1 || stack_[0].attribute) return nullptr;
  if (type != RespType::kBulkString) summary_.bulk_strings_only = false;
  if (!is_string || summary_.word_count >= summary_.words.size()) {
    ++summary_.word_count;  // counts positions, so words[i] is element i
    return nullptr;
  }
  return &summary_.words[summary_.word_count++];
}

void RespScanner::ElementDone(bool was_attribute) {
  while (true) {
    if (was_attribute) return;  // an attribute annotates the element after it
    if (stack_.empty()) {
      done_ = true;
      return;
    }
    if (--stack_.back().remaining > 0) return;
    was_attribute = stack_.back().attribute;
    stack_.pop_back();
  }
}

RespScanner::Result RespScanner::FeedInline(std::string_view bytes, size_t* used) {
  const size_t scan = std::min(bytes.size(), kMaxLineBytes);
  size_t lf = std::string_view::npos;
  for (size_t i = 0; i < scan; ++i) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      lf = i;
      break;
    }
    if (c == '\r' && (i + 1 >= bytes.size() || bytes[i + 1] == '\n')) continue;
    if (!IsInlineChar(c)) return Result::kInvalid;
  }
  if (lf == std::string_view::npos) {
    *used = 0;
    return scan >= kMaxLineBytes ? Result::kInvalid : Result::kNeedMore;
  }
  std::string_view line = bytes.substr(0, lf);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  summary_.type = RespType::kInline;
  summary_.bulk_strings_only = false;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t start = line.find_first_not_of(" \t", pos);
    if (start == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = line.size();
    if (summary_.word_count < summary_.words.size()) {
      Capture(&summary_.words[summary_.word_count], line.substr(start, end - start));
    }
    ++summary_.word_count;
    pos = end;
  }
  summary_.elements = static_cast<int64_t>(summary_.word_count);
  *used = lf + 1;
  done_ = true;
  return Result::kDone;
}

RespScanner::Result RespScanner::Feed(std::string_view bytes, size_t* used) {
  size_t pos = 0;
  *used = 0;
  if (done_) Reset();
  while (pos < bytes.size()) {
    if (payload_left_ > 0 || crlf_left_ > 0) {
      // Inside a bulk payload: skip it, keeping only a captured prefix.
      const auto take = static_cast<size_t>(std::min<int64_t>(payload_left_, static_cast<int64_t>(bytes.size() - pos)));
      Capture(capture_, bytes.substr(pos, take));
      pos += take;
      payload_left_ -= static_cast<int64_t>(take);
      while (payload_left_ == 0 && crlf_left_ > 0 && pos < bytes.size()) {
        if (bytes[pos] != (crlf_left_ == 2 ? '\r' : '\n')) return Result::kInvalid;
        --crlf_left_;
        ++pos;
      }
      if (payload_left_ > 0 || crlf_left_ > 0) break;
      capture_ = nullptr;
      ElementDone(false);
    } else {
      if (!started_ && allow_inline_) {
        RespType ignored;
        if (!RespTypeOf(bytes[pos], &ignored)) {
          started_ = true;
          size_t n = 0;
          Result r = FeedInline(bytes.substr(pos), &n);
          pos += n;
          if (r == Result::kNeedMore) started_ = false;  // re-read the whole line next time
          *used = pos;
          return r;
        }
      }
      RespHeader h;
      const RespStatus status = ParseRespHeader(bytes.substr(pos), &h);
      if (status == RespStatus::kInvalid) return Result::kInvalid;
      if (status == RespStatus::kNeedMore) break;
      started_ = true;
      if (stack_.empty() && h.type != RespType::kAttribute) {
        summary_.type = h.type;
        summary_.error = h.type == RespType::kError || h.type == RespType::kBlobError;
        if (IsAggregate(h.type)) summary_.elements = h.length;
      }
      std::string* capture = CaptureFor(h.type);
      pos += h.size;
      if (IsBulkLike(h.type) && h.length >= 0) {
        payload_left_ = h.length;
        crlf_left_ = 2;
        capture_ = capture;
        continue;
      }
      if (IsAggregate(h.type) && h.length > 0) {
        if (stack_.size() >= kMaxDepth) return Result::kInvalid;
        stack_.push_back({h.length, h.type == RespType::kAttribute});
        continue;
      }
      if (h.type == RespType::kSimpleString || h.type == RespType::kError) Capture(capture, h.line);
      ElementDone(h.type == RespType::kAttribute);
    }
    if (done_) break;
  }
  *used = pos;
  return done_ ? Result::kDone : Result::kNeedMore;
}

bool RespScanner::SkipGap(uint64_t n) {
  if (payload_left_ <= 0 || n > static_cast<uint64_t>(payload_left_)) return false;
  payload_left_ -= static_cast<int64_t>(n);
  capture_ = nullptr;  // the captured prefix has a hole now: stop extending it
  return true;
}

}  // namespace sonde::protocols::redis
