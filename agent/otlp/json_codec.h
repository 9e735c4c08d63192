#pragma once
// OTLP/JSON (the OTLP spec's JSON encoding) <-> protobuf messages.
//
// Why not protobuf's JsonStringToMessage: OTLP/JSON deviates from proto3 JSON
// for trace/span ids (lowercase hex, not base64). A hex id is also valid
// base64, so the stock parser silently yields wrong 12/24-byte ids. This codec
// parses once with nlohmann-json and walks the message descriptor with
// reflection, which gives exact spec control:
//   - bytes fields named *trace_id / *span_id (Span, Link, LogRecord,
//     Exemplar) are hex; every other bytes field (AnyValue.bytesValue) base64;
//   - enums as integers (names accepted too);
//   - 64-bit integers as JSON numbers or decimal strings;
//   - keys in lowerCamelCase (original snake_case names accepted);
//   - unknown keys ignored, null treated as absent;
//   - nesting depth bounded (AnyValue arrays/kvlists), never recursion on input alone.
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace sonde::otlp {

inline constexpr int kMaxJsonDepth = 64;

// Clears `out` and fills it from OTLP/JSON; kInvalidArgument on malformed input.
absl::Status ParseOtlpJson(std::string_view json, google::protobuf::Message* out);

// Prints a message as OTLP/JSON (hex ids, enums as integers, int64 as strings,
// default values omitted).
std::string PrintOtlpJson(const google::protobuf::Message& message);

}  // namespace sonde::otlp
