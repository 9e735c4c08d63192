#pragma once
// The span-level filters of the storage queries, exactly as every backend
// (SQLite, ClickHouse) applies them after decoding a span_chunks row (rows
// are only prefiltered on their summary columns).
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/store/span_chunk.h"
#include "server/store/storage.h"

namespace sonde::server::span_filters {

inline bool InRange(const v1::Span& s, const TimeRange& r) {
  return s.start_unix_ns() >= r.from_ns && s.start_unix_ns() <= r.to_ns;
}

inline bool StatusInClass(int status, int cls) { return status >= cls * 100 && status < cls * 100 + 100; }

// One entry of a summary list as it appears in the list: "\nvalue\n".
inline std::string Line(std::string_view v) {
  std::string out = "\n";
  out.append(v.data(), v.size());
  out += '\n';
  return out;
}

// The url.path attribute, else "".
inline std::string_view UrlPathOf(const v1::Span& s) {
  for (const auto& a : s.attributes()) {
    if (a.key() == "url.path" && a.value_case() == v1::Attribute::kStringValue) return a.string_value();
  }
  return {};
}

// The "endpoint" search text is what the user typed: it matches the
// templated endpoint ("GET /users/{id}") or the request path ("/users/42").
inline bool EndpointOrPathMatches(const v1::Span& s, const std::string& text) {
  return span_chunk::EndpointOf(s).find(text) != std::string_view::npos ||
         UrlPathOf(s).find(text) != std::string_view::npos;
}

// Sonde's own components, by service name.
inline bool IsSondeComponent(std::string_view service) {
  return service == "sonde-server" || service == "sonde-agent";
}

// The span is Sonde's own traffic (storage.h, SelfTraffic): a Sonde
// component's, or a client's call to one of the server's listeners.
inline bool IsSelfTraffic(const v1::Span& s, const SelfTraffic& self) {
  if (IsSondeComponent(span_chunk::ServiceOf(s))) return true;
  if (s.kind() != v1::SPAN_KIND_CLIENT || !s.has_server()) return false;
  for (const auto& [address, port] : self.listeners) {
    if (s.server().port() == port && (address.empty() || s.server().address() == address)) return true;
  }
  return false;
}

// span_chunks rows whose services are Sonde's components only, as the
// row's services column spells them ("\nsonde-server\n", both orders): the
// backends skip them in SQL before decoding anything.
inline const std::vector<std::string>& SondeOnlyServiceLists() {
  static const std::vector<std::string> kLists = {"\nsonde-server\n", "\nsonde-agent\n",
                                                  "\nsonde-server\nsonde-agent\n", "\nsonde-agent\nsonde-server\n"};
  return kLists;
}

// All filters of a trace search on one span.
inline bool MatchesTraceQuery(const v1::Span& s, const TraceQuery& q) {
  using namespace span_chunk;
  if (!InRange(s, q.range)) return false;
  if (!q.self.include && IsSelfTraffic(s, q.self)) return false;
  if (q.service && ServiceOf(s) != *q.service) return false;
  if (q.endpoint && !EndpointOrPathMatches(s, *q.endpoint)) return false;
  if (q.http_status && static_cast<int>(s.http_status()) != *q.http_status) return false;
  if (q.status_class && !StatusInClass(static_cast<int>(s.http_status()), *q.status_class)) return false;
  if (q.error && IsError(s) != *q.error) return false;
  if (q.min_duration_ns && DurationOf(s) < *q.min_duration_ns) return false;
  if (!q.attributes.empty()) {
    const std::string text = AttributeText(s);
    for (const auto& a : q.attributes)
      if (text.find(Line(absl::StrCat(a.key, "=", a.value))) == std::string::npos) return false;
  }
  return true;
}

// A request log entry: a captured (system or network) span matching `q`.
inline bool MatchesRequestLog(const v1::Span& sp, const RequestLogQuery& q) {
  using namespace span_chunk;
  const int src = static_cast<int>(sp.source());
  if (src != v1::SPAN_SOURCE_SYSTEM && src != v1::SPAN_SOURCE_NETWORK) return false;
  if (!InRange(sp, q.range)) return false;
  if (!q.self.include && IsSelfTraffic(sp, q.self)) return false;
  if (q.service && ServiceOf(sp) != *q.service) return false;
  if (q.endpoint && !EndpointOrPathMatches(sp, *q.endpoint)) return false;
  if (q.status_class && !StatusInClass(static_cast<int>(sp.http_status()), *q.status_class)) return false;
  if (q.kind && static_cast<int>(sp.kind()) != *q.kind) return false;
  return true;
}

// A span feeding RED series built from spans.
inline bool MatchesRedQuery(const v1::Span& sp, const RedQuery& q) {
  using namespace span_chunk;
  if (!InRange(sp, q.range)) return false;
  if (q.service && ServiceOf(sp) != *q.service) return false;
  if (q.endpoint && EndpointOf(sp) != *q.endpoint) return false;
  if (q.kind && static_cast<int>(sp.kind()) != *q.kind) return false;
  return true;
}

}  // namespace sonde::server::span_filters
