#pragma once
// OTLP span -> agent span model (trace::Span, source A).
#include <string>

#include "absl/status/status.h"
#include "agent/otlp/process_resolver.h"
#include "agent/otlp/trace_batch.h"
#include "agent/trace/span.h"
#include "opentelemetry/proto/resource/v1/resource.pb.h"
#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace sonde::otlp {

// Per-resource facts shared by every span of one ResourceSpans.
struct ResourceContext {
  std::string service_name;
  uint32_t pid = 0;  // host pid: the resolved sender, else the resource's process.pid
  std::string comm;
  std::string container_id;
};

ResourceContext MakeResourceContext(const opentelemetry::proto::resource::v1::Resource& resource,
                                    const std::optional<ProcessInfo>& sender);
// Same, from the resource's attribute views; fills `ctx` in place (reusing its strings).
void MakeResourceContext(const AttributeView* attributes, size_t count,
                         const std::optional<ProcessInfo>& sender, ResourceContext* ctx);

// Fills `out` from an OTLP span (attributes already normalised). kInvalidArgument
// when the span cannot be used: trace id not 16 non-zero bytes, span id not 8
// non-zero bytes, parent id neither empty nor 8 bytes.
absl::Status ConvertSpan(const opentelemetry::proto::trace::v1::Span& in,
                         const ResourceContext& resource, trace::Span* out);
// Same, from views (`attributes` = the span's own attributes). `out` may be a
// span reused across calls: its strings and vectors keep their capacity.
absl::Status ConvertSpan(const SpanView& in, const AttributeView* attributes,
                         const ResourceContext& resource, trace::Span* out);

}  // namespace sonde::otlp
