#include "common/proto/message_shape.h"

#include <climits>

#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace sonde::proto_shape {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

struct Walk {
  const ShapeLimits& limits;
  uint64_t messages = 0;
  uint64_t counted = 0;
  absl::Status status;

  bool Fail(absl::Status s) {
    status = std::move(s);
    return false;
  }
  bool Malformed() { return Fail(absl::InvalidArgumentError("malformed protobuf")); }

  // Reads the fields of one `type` message up to the current limit.
  bool Message(CodedInputStream* in, const Descriptor* type, int depth) {
    if (depth > limits.max_depth) return Fail(absl::InvalidArgumentError("protobuf nests too deeply"));
    for (;;) {
      const uint32_t tag = in->ReadTag();
      if (tag == 0) return in->ConsumedEntireMessage() || Malformed();
      const FieldDescriptor* field =
          type != nullptr ? type->FindFieldByNumber(WireFormatLite::GetTagFieldNumber(tag)) : nullptr;
      if (field == nullptr || field->type() != FieldDescriptor::TYPE_MESSAGE ||
          WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
        if (!WireFormatLite::SkipField(in, tag)) return Malformed();
        continue;
      }
      uint32_t length = 0;
      if (!in->ReadVarint32(&length) || length > static_cast<uint32_t>(INT_MAX)) return Malformed();
      if (++messages > limits.max_messages)
        return Fail(absl::ResourceExhaustedError(absl::StrCat("more than ", limits.max_messages, " messages")));
      if (field == limits.counted_field && ++counted > limits.max_counted)
        return Fail(absl::ResourceExhaustedError(
            absl::StrCat("more than ", limits.max_counted, " ", field->name())));
      const auto limit = in->PushLimit(static_cast<int>(length));
      if (!Message(in, field->message_type(), depth + 1)) return false;
      if (in->BytesUntilLimit() != 0) return Malformed();
      in->PopLimit(limit);
    }
  }
};

}  // namespace

absl::Status CheckMessageShape(std::string_view serialized, const Descriptor* type, const ShapeLimits& limits) {
  if (serialized.size() > static_cast<size_t>(INT_MAX)) return absl::ResourceExhaustedError("message too large");
  CodedInputStream in(reinterpret_cast<const uint8_t*>(serialized.data()), static_cast<int>(serialized.size()));
  Walk walk{limits};
  if (!walk.Message(&in, type, 0)) return walk.status;
  return absl::OkStatus();
}

}  // namespace sonde::proto_shape
