#pragma once
// Counts the messages inside serialized protobuf bytes without building them
// (issue #17): a parsed message costs 20-50x its wire size when it is empty
// (an empty span or attribute is 2 bytes on the wire), so a hostile peer's
// small body could become gigabytes once parsed. Receivers check the shape
// against limits first and only then parse.
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"

namespace sonde::proto_shape {

struct ShapeLimits {
  uint64_t max_messages = UINT64_MAX;  // nested messages of any type
  // Optionally a field (of any nesting level) counted on its own, e.g. spans.
  const google::protobuf::FieldDescriptor* counted_field = nullptr;
  uint64_t max_counted = UINT64_MAX;
  int max_depth = 64;
};

// kResourceExhausted past a limit, kInvalidArgument when the bytes are not a
// well-formed `type`, OK otherwise.
absl::Status CheckMessageShape(std::string_view serialized, const google::protobuf::Descriptor* type,
                               const ShapeLimits& limits);

}  // namespace sonde::proto_shape
