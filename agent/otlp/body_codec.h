#pragma once
// OTLP/HTTP body handling shared by the receivers and the tests: content
// types, bounded decompression, request decoding and response encoding.
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace sonde::otlp {

// 64 MiB after decompression (issue #6); larger bodies get 413 / RESOURCE_EXHAUSTED.
inline constexpr size_t kDefaultMaxBodyBytes = 64u << 20;

enum class BodyFormat { kProtobuf, kJson };

// Maps a Content-Type header ("application/x-protobuf", "application/json;
// charset=utf-8", ...) to the body format; kInvalidArgument when unsupported.
absl::StatusOr<BodyFormat> ParseContentType(std::string_view content_type);
std::string_view ContentTypeOf(BodyFormat format);

// Inflates a gzip (or zlib) body, refusing to produce more than max_out bytes:
// kResourceExhausted when the output would exceed the bound (zip bombs stop
// at the bound, not after inflating), kInvalidArgument on corrupt input.
absl::StatusOr<std::string> InflateBounded(std::string_view compressed, size_t max_out);
// Compresses with gzip framing (tests and benchmarks build gzip bodies with it).
std::string GzipCompress(std::string_view plain);

// Decodes an OTLP request body in either format into `out`. Errors are
// kInvalidArgument with a message suitable for the google.rpc.Status body.
absl::Status DecodeBody(std::string_view body, BodyFormat format, google::protobuf::Message* out);
// Encodes an OTLP response (ExportXServiceResponse) in the given format.
std::string EncodeBody(const google::protobuf::Message& message, BodyFormat format);

}  // namespace sonde::otlp
