#pragma once
// Query-string parsing for the JSON API. Every parser rejects malformed input
// with InvalidArgument (the API answers 400 with the message).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/store/storage.h"

namespace sonde::server {

// "250ms", "30s", "15m", "72h", "7d", "500us", "100ns"; a bare number is
// seconds.
absl::StatusOr<uint64_t> ParseDuration(std::string_view text);

// Looks up one query parameter; nullopt when absent.
using ParamLookup = std::function<std::optional<std::string>(const std::string&)>;

// from/to: unix milliseconds; or last=<duration> (default 1h) ending now.
absl::StatusOr<TimeRange> ParseTimeRange(const ParamLookup& get, uint64_t now_ns,
                                         std::string_view default_last = "1h");
absl::StatusOr<std::optional<int64_t>> ParseInt(const ParamLookup& get, const std::string& name,
                                                int64_t min, int64_t max);
// "A"/"S"/"N" or application/system/network -> v1::SpanSource.
absl::StatusOr<std::optional<int>> ParseSource(const ParamLookup& get);
// server/client/internal/producer/consumer -> v1::SpanKind.
absl::StatusOr<std::optional<int>> ParseKind(const ParamLookup& get);
// A text parameter, length-limited.
absl::StatusOr<std::optional<std::string>> ParseText(const ParamLookup& get, const std::string& name,
                                                     size_t max_len = 1024);
// "key=value".
absl::StatusOr<AttributeFilter> ParseAttributeFilter(std::string_view text);

}  // namespace sonde::server
