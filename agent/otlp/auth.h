#pragma once
// Optional bearer-token check shared by both receivers.
#include <string>
#include <string_view>

namespace sonde::otlp {

// True when no token is configured, or `authorization` is "Bearer <token>"
// (scheme case-insensitive). Constant-time in the token length.
bool BearerTokenMatches(std::string_view configured_token, std::string_view authorization);

}  // namespace sonde::otlp
