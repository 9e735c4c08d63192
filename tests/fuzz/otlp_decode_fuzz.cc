// libFuzzer target: OTLP request bodies as the HTTP receiver decodes them:
// the wire-shape check, the zero-copy trace decoder, protobuf and OTLP/JSON.
#include <cstddef>
#include <cstdint>

#include <google/protobuf/stubs/logging.h>
#include <string_view>

#include "agent/otlp/body_codec.h"
#include "agent/otlp/json_codec.h"
#include "agent/otlp/trace_batch.h"
#include "common/proto/message_shape.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb.h"

using opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;

// Invalid UTF-8 in string fields is an expected parse failure: not logged.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  sonde::proto_shape::ShapeLimits limits;
  limits.max_messages = 4096 + size / 8;
  if (sonde::proto_shape::CheckMessageShape(body, ExportTraceServiceRequest::descriptor(), limits).ok()) {
    sonde::otlp::TraceBatch batch;
    (void)sonde::otlp::DecodeTraceBatchWire(body, &batch);
    ExportTraceServiceRequest request;
    if (sonde::otlp::DecodeBody(body, sonde::otlp::BodyFormat::kProtobuf, &request).ok()) {
      sonde::otlp::TraceBatch from_proto;
      sonde::otlp::TraceBatchFromProto(request, &from_proto);
    }
  }
  ExportTraceServiceRequest from_json;
  if (sonde::otlp::ParseOtlpJson(body, &from_json).ok()) (void)sonde::otlp::PrintOtlpJson(from_json);
  (void)sonde::otlp::InflateBounded(body, 1 << 20);
  return 0;
}
