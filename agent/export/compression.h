#pragma once
// zlib (RFC 1950) / gzip (RFC 1952) compression of serialized batches.
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::exporter {

absl::StatusOr<std::string> Compress(std::string_view data, v1::Compression codec, int level = 6);

}  // namespace sonde::exporter
