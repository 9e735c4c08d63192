#include "agent/core/otel_resource.h"

#include <algorithm>


namespace sonde::core {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

absl::Status Invalid(std::string_view entry, std::string_view why) {
  return absl::InvalidArgumentError("entry '" + std::string(entry) + "' " + std::string(why));
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

absl::StatusOr<std::string> PercentDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    const int hi = i + 2 < in.size() ? HexDigit(in[i + 1]) : -1;
    const int lo = i + 2 < in.size() ? HexDigit(in[i + 2]) : -1;
    if (hi < 0 || lo < 0) return Invalid(in, "has a bad percent escape");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

}  // namespace

absl::StatusOr<ResourceAttributes> ParseResourceAttributes(std::string_view text) {
  ResourceAttributes out;
  if (Trim(text).empty()) return out;
  while (true) {
    const size_t comma = text.find(',');
    const std::string_view entry = Trim(text.substr(0, comma));
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos) return Invalid(entry, "is not key=value");
    const std::string_view key = Trim(entry.substr(0, eq));
    if (key.empty()) return Invalid(entry, "has an empty key");
    auto value = PercentDecode(Trim(entry.substr(eq + 1)));
    if (!value.ok()) return value.status();
    auto same = std::find_if(out.begin(), out.end(), [&](const auto& kv) { return kv.first == key; });
    if (same != out.end()) same->second = std::move(*value);
    else out.emplace_back(std::string(key), std::move(*value));
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

absl::StatusOr<OtelResource> OtelResourceFromEnv(const char* resource_attributes, const char* service_name) {
  OtelResource r;
  if (resource_attributes != nullptr) {
    auto attrs = ParseResourceAttributes(resource_attributes);
    if (!attrs.ok()) {
      return absl::InvalidArgumentError("OTEL_RESOURCE_ATTRIBUTES: " + std::string(attrs.status().message()));
    }
    for (auto& [k, v] : *attrs) {
      if (k == "service.name") r.ignored_service_name = std::move(v);
      else r.attributes.emplace_back(std::move(k), std::move(v));
    }
  }
  // As in the SDKs, OTEL_SERVICE_NAME takes precedence over service.name.
  if (service_name != nullptr && *service_name != '\0') r.ignored_service_name = service_name;
  return r;
}

}  // namespace sonde::core
