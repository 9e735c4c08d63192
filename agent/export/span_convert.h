#pragma once
// sonde::trace::Span -> sonde.v1.Span (the wire form the server stores).
#include "agent/trace/span.h"
#include "sonde/v1/span.pb.h"

namespace sonde::exporter {

void SpanToProto(const trace::Span& span, v1::Span* out);

}  // namespace sonde::exporter
