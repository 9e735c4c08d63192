#include "agent/protocols/http/route.h"

namespace sonde::protocols::http {
namespace {

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < 36; ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

// 123, -5, 3.14, 1e5 is not accepted (looks like a word to some APIs).
bool IsNumber(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  if (s.empty() || !IsDigit(s[0])) return false;
  bool dot = false;
  for (char c : s) {
    if (c == '.') {
      if (dot) return false;
      dot = true;
    } else if (!IsDigit(c)) {
      return false;
    }
  }
  return IsDigit(s.back());
}

}  // namespace

bool IsIdSegment(std::string_view s) {
  if (s.empty()) return false;
  // Most segments are short words ("api", "v1", "users"): every rule below
  // needs a leading digit or sign (numbers) or at least 8 characters.
  if (s.size() < 8 && IsAlpha(s[0])) return false;
  if (IsNumber(s) || IsUuid(s)) return true;
  size_t digits = 0, hex = 0, alpha = 0, other = 0;
  for (char c : s) {
    if (IsDigit(c)) ++digits;
    if (IsHex(c)) ++hex;
    if (IsAlpha(c)) ++alpha;
    if (!IsDigit(c) && !IsAlpha(c) && c != '-' && c != '_') ++other;
  }
  if (other != 0) return false;
  // Hashes and object ids: all hex, long enough, with at least one digit.
  if (hex == s.size() && s.size() >= 8 && digits > 0) return true;
  // Random tokens (base62/base64url ids, ULIDs): long and digit-rich.
  if (s.size() >= 16 && digits * 4 >= s.size() && alpha > 0) return true;
  return false;
}

std::string NormaliseRoute(std::string_view path) {
  std::string out;
  NormaliseRouteInto(path, out);
  return out;
}

void NormaliseRouteInto(std::string_view path, std::string& out) {
  out.clear();
  out.reserve(path.size());
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(pos, slash - pos);
    if (IsIdSegment(seg)) {
      out.append(kIdPlaceholder);
    } else {
      out.append(seg);
    }
    if (slash < path.size()) out.push_back('/');
    pos = slash + 1;
  }
}

}  // namespace sonde::protocols::http
