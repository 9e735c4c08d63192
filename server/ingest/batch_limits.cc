#include "server/ingest/batch_limits.h"

#include "absl/strings/str_cat.h"
#include "common/proto/message_shape.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::server {

absl::Status CheckBatchShape(std::string_view serialized, const BatchLimits& limits) {
  const auto* batch = v1::Batch::descriptor();
  proto_shape::ShapeLimits shape;
  shape.max_messages = limits.max_messages;
  shape.counted_field = batch->FindFieldByNumber(v1::Batch::kSpansFieldNumber);
  shape.max_counted = limits.max_spans;
  absl::Status st = proto_shape::CheckMessageShape(serialized, batch, shape);
  if (st.code() == absl::StatusCode::kInvalidArgument) return absl::InvalidArgumentError("batch does not parse");
  if (!st.ok()) return absl::ResourceExhaustedError(absl::StrCat("batch holds ", st.message()));
  return st;
}

}  // namespace sonde::server
