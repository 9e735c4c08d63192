#include "agent/protocols/postgres/wire.h"

namespace sonde::protocols::postgres {

ParseStatus ParseStartup(std::string_view b, StartupPacket* out) {
  if (b.size() < 8) return ParseStatus::kNeedMore;
  const uint32_t length = ReadBe32(b, 0);
  const uint32_t code = ReadBe32(b, 4);
  if (length < 8 || length > kMaxStartupLength) return ParseStatus::kInvalid;
  *out = StartupPacket{};
  out->length = length;
  switch (code) {
    case kSslRequestCode:
      out->kind = StartupKind::kSslRequest;
      return length == 8 ? ParseStatus::kOk : ParseStatus::kInvalid;
    case kGssEncRequestCode:
      out->kind = StartupKind::kGssEncRequest;
      return length == 8 ? ParseStatus::kOk : ParseStatus::kInvalid;
    case kCancelRequestCode:
      out->kind = StartupKind::kCancel;
      return length == 16 ? (b.size() < 16 ? ParseStatus::kNeedMore : ParseStatus::kOk) : ParseStatus::kInvalid;
    default:
      // 3.x only (the major version is the high 16 bits).
      if ((code >> 16) != 3) return ParseStatus::kInvalid;
      break;
  }
  if (b.size() < length) return ParseStatus::kNeedMore;
  // name\0value\0 ... \0
  const std::string_view params = b.substr(8, length - 8);
  size_t pos = 0;
  while (pos < params.size() && params[pos] != '\0') {
    std::string_view name, value;
    if (!ReadCString(params, &pos, &name) || !ReadCString(params, &pos, &value)) return ParseStatus::kInvalid;
    if (name == "database") {
      out->database.assign(value);
    } else if (name == "user") {
      out->user.assign(value);
    } else if (name == "application_name") {
      out->application_name.assign(value);
    }
  }
  if (pos + 1 != params.size()) return ParseStatus::kInvalid;  // the terminator ends the packet
  if (out->database.empty()) out->database = out->user;
  return ParseStatus::kOk;
}

bool IsFrontendType(char t) {
  switch (t) {
    case 'B': case 'C': case 'D': case 'E': case 'F': case 'H': case 'P': case 'Q': case 'S': case 'X':
    case 'p': case 'd': case 'c': case 'f':
      return true;
    default:
      return false;
  }
}

bool IsBackendType(char t) {
  switch (t) {
    case 'R': case 'K': case 'S': case 'Z': case 'T': case 'D': case 'C': case 'E': case 'N': case 'I':
    case '1': case '2': case '3': case 'n': case 't': case 's': case 'A': case 'G': case 'H': case 'W':
    case 'd': case 'c': case 'v': case 'V':
      return true;
    default:
      return false;
  }
}

ParseStatus ParseMessageHeader(std::string_view b, bool frontend, MessageHeader* out) {
  if (b.empty()) return ParseStatus::kNeedMore;
  if (!(frontend ? IsFrontendType(b[0]) : IsBackendType(b[0]))) return ParseStatus::kInvalid;
  if (b.size() < kHeaderBytes) {
    // The length's high byte is 0 for every message under 16 MiB: reject early garbage.
    return b.size() >= 2 && static_cast<uint8_t>(b[1]) > 0x40 ? ParseStatus::kInvalid : ParseStatus::kNeedMore;
  }
  const uint32_t length = ReadBe32(b, 1);
  if (length < 4 || length > kMaxMessageLength) return ParseStatus::kInvalid;
  // Fixed-size messages: a wrong length means we are not at a message start.
  switch (b[0]) {
    case 'Z':
      if (!frontend && length != 5) return ParseStatus::kInvalid;
      break;
    case '1': case '2': case '3': case 'n': case 'I': case 's':
      if (!frontend && length != 4) return ParseStatus::kInvalid;
      break;
    case 'S': case 'H': case 'c':
      if (frontend && length != 4) return ParseStatus::kInvalid;
      break;
    case 'X':
      if (length != 4) return ParseStatus::kInvalid;
      break;
    case 'K':
      if (!frontend && length != 12) return ParseStatus::kInvalid;
      break;
    default:
      break;
  }
  out->type = b[0];
  out->body_length = length - 4;
  return ParseStatus::kOk;
}

bool ReadCString(std::string_view body, size_t* pos, std::string_view* out) {
  if (*pos > body.size()) {
    *out = {};
    return false;
  }
  const size_t nul = body.find('\0', *pos);
  if (nul == std::string_view::npos) {
    *out = body.substr(*pos);
    *pos = body.size();
    return false;
  }
  *out = body.substr(*pos, nul - *pos);
  *pos = nul + 1;
  return true;
}

bool ParseErrorFields(std::string_view body, ErrorFields* out) {
  *out = ErrorFields{};
  size_t pos = 0;
  std::string_view localized;
  while (pos < body.size() && body[pos] != '\0') {
    const char code = body[pos++];
    std::string_view value;
    if (!ReadCString(body, &pos, &value)) return false;
    if (code == 'C') {
      out->sqlstate = value;
    } else if (code == 'V') {
      out->severity = value;
    } else if (code == 'S') {
      localized = value;
    }
  }
  if (out->severity.empty()) out->severity = localized;
  // SQLSTATE is five characters of [0-9A-Z].
  if (out->sqlstate.size() != 5) return false;
  for (char c : out->sqlstate) {
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'))) return false;
  }
  return true;
}

int64_t RowsFromTag(std::string_view tag) {
  const size_t space = tag.rfind(' ');
  if (space == std::string_view::npos || space + 1 >= tag.size()) return -1;
  int64_t n = 0;
  for (size_t i = space + 1; i < tag.size(); ++i) {
    if (tag[i] < '0' || tag[i] > '9' || n > (int64_t{1} << 56)) return -1;
    n = n * 10 + (tag[i] - '0');
  }
  return n;
}

}  // namespace sonde::protocols::postgres
