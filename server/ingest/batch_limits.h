#pragma once
// Bounds on what one ingest batch may make the server hold (issue #17). A
// batch is checked on its wire bytes, before protobuf builds it: 4M empty
// spans are 8 MB of wire (7.8 KB compressed) but 1.26 GB as messages.
#include <cstdint>
#include <string_view>

#include "absl/status/status.h"

namespace sonde::server {

struct BatchLimits {
  // Inflated size; also never more than zlib's best ratio (1032:1) allows
  // for the compressed bytes received, whatever uncompressed_size claims.
  uint64_t max_uncompressed_bytes = 16u << 20;
  uint64_t max_spans = 20'000;        // the agent seals batches at 2,000 items
  uint64_t max_messages = 500'000;    // every nested message (spans, headers, attributes, frames...)
  uint64_t max_sequence_jump = 1u << 20;  // over the instance's last stored sequence
};

// zlib cannot expand data more than this (deflate's maximum ratio is ~1032:1).
inline constexpr uint64_t kMaxInflateRatio = 1032;

// Walks a serialized sonde.v1.Batch without materialising it and fails with
// kResourceExhausted when it holds more spans or messages than `limits`
// allow, kInvalidArgument when the wire format is malformed.
absl::Status CheckBatchShape(std::string_view serialized, const BatchLimits& limits);

}  // namespace sonde::server
