#pragma once
// gRPC semantic conventions: span name "pkg.Service/Method", grpc-status is
// the error signal (any non-zero), rpc.* attributes on top of HTTP's.
#include "agent/protocols/semantics.h"

namespace sonde::protocols::http2 {

const RecordSemantics& GrpcSemantics();

}  // namespace sonde::protocols::http2
