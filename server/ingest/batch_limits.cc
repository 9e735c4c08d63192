#include "server/ingest/batch_limits.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

constexpr int kMaxDepth = 64;

struct Walk {
  const BatchLimits& limits;
  const FieldDescriptor* spans_field;
  uint64_t spans = 0;
  uint64_t messages = 0;
  absl::Status status;

  // Reads fields of `type` until the current limit; recurses into message fields.
  bool Message(CodedInputStream* in, const Descriptor* type, int depth) {
    if (depth > kMaxDepth) return Fail(absl::InvalidArgumentError("batch nests too deeply"));
    for (;;) {
      uint32_t tag = in->ReadTag();
      if (tag == 0) return in->ConsumedEntireMessage() || Fail(absl::InvalidArgumentError("batch does not parse"));
      const FieldDescriptor* field =
          type != nullptr ? type->FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag)) : nullptr;
      if (field != nullptr && field->type() == FieldDescriptor::TYPE_MESSAGE &&
          WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        uint32_t length = 0;
        if (!in->ReadVarint32(&length)) return Fail(absl::InvalidArgumentError("batch does not parse"));
        if (++messages > limits.max_messages)
          return Fail(absl::ResourceExhaustedError(
              absl::StrCat("batch holds more than ", limits.max_messages, " messages")));
        if (field == spans_field && ++spans > limits.max_spans)
          return Fail(absl::ResourceExhaustedError(
              absl::StrCat("batch holds more than ", limits.max_spans, " spans")));
        auto limit = in->PushLimit(static_cast<int>(length));
        if (!Message(in, field->message_type(), depth + 1)) return false;
        in->PopLimit(limit);
        continue;
      }
      if (!WireFormatLite::SkipField(in, tag)) return Fail(absl::InvalidArgumentError("batch does not parse"));
    }
  }

  bool Fail(absl::Status s) {
    status = std::move(s);
    return false;
  }
};

}  // namespace

absl::Status CheckBatchShape(std::string_view serialized, const BatchLimits& limits) {
  if (serialized.size() > static_cast<size_t>(INT32_MAX)) return absl::ResourceExhaustedError("batch too large");
  CodedInputStream in(reinterpret_cast<const uint8_t*>(serialized.data()), static_cast<int>(serialized.size()));
  const Descriptor* batch = v1::Batch::descriptor();
  Walk walk{limits, batch->FindFieldByNumber(v1::Batch::kSpansFieldNumber)};
  if (!walk.Message(&in, batch, 0)) return walk.status;
  return absl::OkStatus();
}

}  // namespace sonde::server
