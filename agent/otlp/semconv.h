#pragma once
// Legacy -> current OpenTelemetry semantic-convention attribute names.
//
// Kong's opentelemetry plugin and older SDKs emit the pre-1.21 names
// (http.method, http.status_code, http.url, net.peer.ip, ...). The receiver
// adds the current name next to the legacy one: the original attribute is
// never removed or modified, and a current name the sender already set wins.
#include <string_view>

#include "absl/functional/function_ref.h"
#include "agent/otlp/trace_batch.h"

#include "opentelemetry/proto/common/v1/common.pb.h"
#include "opentelemetry/proto/trace/v1/trace.pb.h"

namespace sonde::otlp {

using KeyValues = google::protobuf::RepeatedPtrField<opentelemetry::proto::common::v1::KeyValue>;

// Calls add(current_key, value) for every current-semconv attribute derivable
// from a legacy one in `attributes` and not already present there. Used to
// extend the agent span model without copying the OTLP request. `value` may
// point to a scratch buffer valid only during the call.
using AddAttributeFn = absl::FunctionRef<void(std::string_view key, const ValueView& value)>;
void DeriveCurrentSemconvNames(const AttributeView* attributes, size_t count, int kind,
                               AddAttributeFn add);

// Appends current-semconv attributes derived from legacy ones. `kind` picks
// the side for names whose meaning depends on it (net.peer.name is the server
// on a CLIENT span). Returns the number of attributes added.
int AddCurrentSemconvNames(KeyValues* attributes,
                           opentelemetry::proto::trace::v1::Span::SpanKind kind);

// The current name for a legacy attribute key, or "" when the key is current
// or unknown (documentation and tests; kind-dependent keys report CLIENT side).
std::string_view CurrentNameFor(std::string_view legacy_key);

}  // namespace sonde::otlp
