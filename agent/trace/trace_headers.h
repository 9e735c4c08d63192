#pragma once
// Trace-context headers found in captured requests: W3C traceparent /
// tracestate, B3 single and multi header forms, and request ids.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/protocols/record.h"
#include "agent/trace/span.h"

namespace sonde::trace {

enum class ContextFormat : uint8_t { kW3C, kB3Single, kB3Multi };

struct TraceContext {
  TraceId trace_id{};
  SpanId parent_span_id{};  // the caller's span: our span's parent
  bool sampled = false;
  ContextFormat format = ContextFormat::kW3C;
  std::string tracestate;  // W3C only, when valid
};

// W3C Trace Context level 1: lowercase hex, version ff invalid, zero ids
// invalid, future versions may append "-..." after the 55 known characters.
std::optional<TraceContext> ParseTraceparent(std::string_view value);
// tracestate list-members (max 32, keys unique, key/value grammar).
bool ValidTracestate(std::string_view value);
// "b3: {trace}-{span}[-{sampling}[-{parent}]]"; 64-bit trace ids are left-padded.
std::optional<TraceContext> ParseB3Single(std::string_view value);
std::optional<TraceContext> ParseB3Multi(std::string_view trace_id, std::string_view span_id,
                                         std::string_view sampled, std::string_view flags);

// The strongest valid context in a header list (lowercase names):
// traceparent (+tracestate), then b3, then X-B3-*.
std::optional<TraceContext> ExtractTraceContext(const protocols::HeaderList& headers);

// First value of a header (lowercase name), if any.
std::optional<std::string_view> FindHeader(const protocols::HeaderList& headers,
                              std::string_view lowercase_name);

std::string ToHex(const uint8_t* data, size_t n);
inline std::string ToHex(const TraceId& id) { return ToHex(id.data(), id.size()); }
inline std::string ToHex(const SpanId& id) { return ToHex(id.data(), id.size()); }

}  // namespace sonde::trace
