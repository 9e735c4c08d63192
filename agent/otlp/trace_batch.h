#pragma once
// A decoded ExportTraceServiceRequest as flat, non-owning views: the spans and
// attributes point into the request body (wire decoding) or into a parsed
// protobuf message. Conversion to the agent span model and the semconv
// mapping read these views, so both sources share one code path and the hot
// path never builds protobuf message objects.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "google/protobuf/arena.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"
#include "opentelemetry/proto/common/v1/common.pb.h"

namespace sonde::otlp {

// One AnyValue. Strings and bytes are views; array/kvlist values keep the
// parsed protobuf (rare: printed as OTLP/JSON text by the converter).
struct ValueView {
  enum class Type : uint8_t { kEmpty, kString, kBool, kInt, kDouble, kBytes, kStructured };
  Type type = Type::kEmpty;
  union {  // by type: 40 bytes per view instead of 56
    bool b;
    int64_t i = 0;
    double d;
    const opentelemetry::proto::common::v1::AnyValue* structured;
  };
  std::string_view s;  // kString, kBytes

  bool is_string() const { return type == Type::kString; }
  static ValueView String(std::string_view text) {
    ValueView v;
    v.type = Type::kString;
    v.s = text;
    return v;
  }
};

struct AttributeView {
  std::string_view key;
  ValueView value;
};

struct SpanView {
  std::string_view trace_id, span_id, parent_span_id, name, status_message;
  int32_t kind = 0;
  int32_t status_code = 0;
  uint64_t start_unix_ns = 0, end_unix_ns = 0;
  uint32_t attr_begin = 0, attr_count = 0;  // into TraceBatch::attributes
};

struct ResourceView {
  uint32_t attr_begin = 0, attr_count = 0;  // into TraceBatch::attributes
  uint32_t span_begin = 0, span_count = 0;  // into TraceBatch::spans
};

struct TraceBatch {
  std::vector<AttributeView> attributes;
  std::vector<SpanView> spans;
  std::vector<ResourceView> resources;
  // Holds array/kvlist values and validation-only submessages; created on
  // first use, dropped by Clear().
  std::unique_ptr<google::protobuf::Arena> arena;

  void Clear();
  const AttributeView* attrs(uint32_t begin) const { return attributes.data() + begin; }
};

// Decodes a binary ExportTraceServiceRequest straight from its wire bytes.
// Conservative: true only when the body is certainly one protobuf would
// parse, with the same field values; false on anything malformed or unusual
// (groups, repeated singular messages, deep nesting) — the caller then parses
// with protobuf, which decides. `out` views point into `body`.
bool DecodeTraceBatchWire(std::string_view body, TraceBatch* out);

// Views over a parsed request (must outlive `out`).
void TraceBatchFromProto(const opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest& request,
                         TraceBatch* out);
ValueView ViewOf(const opentelemetry::proto::common::v1::AnyValue& value);

}  // namespace sonde::otlp
