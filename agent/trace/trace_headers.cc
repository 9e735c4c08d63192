#include "agent/trace/trace_headers.h"

#include <algorithm>

namespace sonde::trace {
namespace {

int HexVal(char c, bool lowercase_only) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (!lowercase_only && c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes exactly out_len bytes of hex; false on a bad digit or all-zero id.
bool DecodeId(std::string_view hex, uint8_t* out, size_t out_len, bool lowercase_only = true) {
  if (hex.size() != out_len * 2) return false;
  bool nonzero = false;
  for (size_t i = 0; i < out_len; ++i) {
    int hi = HexVal(hex[2 * i], lowercase_only);
    int lo = HexVal(hex[2 * i + 1], lowercase_only);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
    nonzero = nonzero || out[i] != 0;
  }
  return nonzero;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ValidKey(std::string_view key) {
  auto simple = [](std::string_view k, size_t max, bool first_digit_ok) {
    if (k.empty() || k.size() > max) return false;
    char f = k[0];
    if (!((f >= 'a' && f <= 'z') || (first_digit_ok && f >= '0' && f <= '9'))) return false;
    return std::all_of(k.begin(), k.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
             c == '*' || c == '/';
    });
  };
  size_t at = key.find('@');
  if (at == std::string_view::npos) return simple(key, 256, false);
  return simple(key.substr(0, at), 241, true) && simple(key.substr(at + 1), 14, false);
}

bool ValidValue(std::string_view v) {
  if (v.empty() || v.size() > 256 || v.back() == ' ') return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; });
}

}  // namespace

std::string ToHex(const uint8_t* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

std::optional<TraceContext> ParseTraceparent(std::string_view v) {
  v = Trim(v);
  if (v.size() < 55) return std::nullopt;
  int ver_hi = HexVal(v[0], true), ver_lo = HexVal(v[1], true);
  if (ver_hi < 0 || ver_lo < 0 || v[2] != '-') return std::nullopt;
  int version = ver_hi << 4 | ver_lo;
  if (version == 0xff) return std::nullopt;
  if (version == 0 && v.size() != 55) return std::nullopt;
  if (v.size() > 55 && v[55] != '-') return std::nullopt;
  if (v[35] != '-' || v[52] != '-') return std::nullopt;
  TraceContext ctx;
  if (!DecodeId(v.substr(3, 32), ctx.trace_id.data(), 16)) return std::nullopt;
  if (!DecodeId(v.substr(36, 16), ctx.parent_span_id.data(), 8)) return std::nullopt;
  int f_hi = HexVal(v[53], true), f_lo = HexVal(v[54], true);
  if (f_hi < 0 || f_lo < 0) return std::nullopt;
  ctx.sampled = ((f_hi << 4 | f_lo) & 1) != 0;
  ctx.format = ContextFormat::kW3C;
  return ctx;
}

bool ValidTracestate(std::string_view value) {
  std::vector<std::string_view> keys;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view member = Trim(value.substr(pos, comma - pos));
    pos = comma + 1;
    if (member.empty()) continue;
    size_t eq = member.find('=');
    if (eq == std::string_view::npos) return false;
    std::string_view key = member.substr(0, eq);
    if (!ValidKey(key) || !ValidValue(member.substr(eq + 1))) return false;
    if (std::find(keys.begin(), keys.end(), key) != keys.end()) return false;
    keys.push_back(key);
    if (keys.size() > 32) return false;
  }
  return true;
}

std::optional<TraceContext> ParseB3Single(std::string_view v) {
  v = Trim(v);
  std::vector<std::string_view> parts;
  size_t pos = 0;
  while (pos <= v.size() && parts.size() < 5) {
    size_t dash = v.find('-', pos);
    if (dash == std::string_view::npos) dash = v.size();
    parts.push_back(v.substr(pos, dash - pos));
    pos = dash + 1;
  }
  if (parts.size() < 2 || parts.size() > 4) return std::nullopt;  // sampling-only: no context
  TraceContext ctx;
  ctx.format = ContextFormat::kB3Single;
  std::string_view trace = parts[0];
  if (trace.size() == 16) {
    if (!DecodeId(trace, ctx.trace_id.data() + 8, 8)) return std::nullopt;
  } else if (!DecodeId(trace, ctx.trace_id.data(), 16)) {
    return std::nullopt;
  }
  if (!DecodeId(parts[1], ctx.parent_span_id.data(), 8)) return std::nullopt;
  ctx.sampled = true;
  if (parts.size() >= 3) {
    std::string_view s = parts[2];
    if (s == "0") ctx.sampled = false;
    else if (s != "1" && s != "d") return std::nullopt;
  }
  if (parts.size() == 4) {
    SpanId parent{};
    if (!DecodeId(parts[3], parent.data(), 8)) return std::nullopt;
  }
  return ctx;
}

std::optional<TraceContext> ParseB3Multi(std::string_view trace_id, std::string_view span_id,
                                         std::string_view sampled, std::string_view flags) {
  TraceContext ctx;
  ctx.format = ContextFormat::kB3Multi;
  trace_id = Trim(trace_id);
  // B3 multi-header ids are case-insensitive hex in practice.
  if (trace_id.size() == 16) {
    if (!DecodeId(trace_id, ctx.trace_id.data() + 8, 8, false)) return std::nullopt;
  } else if (!DecodeId(trace_id, ctx.trace_id.data(), 16, false)) {
    return std::nullopt;
  }
  if (!DecodeId(Trim(span_id), ctx.parent_span_id.data(), 8, false)) return std::nullopt;
  sampled = Trim(sampled);
  ctx.sampled = sampled.empty() || sampled == "1" || sampled == "true" || Trim(flags) == "1";
  return ctx;
}

std::optional<std::string_view> FindHeader(const protocols::HeaderList& headers,
                                           std::string_view lowercase_name) {
  return headers.Find(lowercase_name);
}

std::optional<TraceContext> ExtractTraceContext(const protocols::HeaderList& headers) {
  if (const auto tp = FindHeader(headers, "traceparent")) {
    if (auto ctx = ParseTraceparent(*tp)) {
      if (const auto ts = FindHeader(headers, "tracestate")) {
        if (ValidTracestate(*ts)) ctx->tracestate = std::string(*ts);
      }
      return ctx;
    }
  }
  if (const auto b3 = FindHeader(headers, "b3")) {
    if (auto ctx = ParseB3Single(*b3)) return ctx;
  }
  const auto tid = FindHeader(headers, "x-b3-traceid");
  const auto sid = FindHeader(headers, "x-b3-spanid");
  if (tid && sid) {
    const auto sampled = FindHeader(headers, "x-b3-sampled");
    const auto flags = FindHeader(headers, "x-b3-flags");
    return ParseB3Multi(*tid, *sid, sampled.value_or(std::string_view()),
                        flags.value_or(std::string_view()));
  }
  return std::nullopt;
}

}  // namespace sonde::trace
