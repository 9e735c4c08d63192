#include "agent/otlp/auth.h"

#include "agent/otlp/text_util.h"

namespace sonde::otlp {

bool BearerTokenMatches(std::string_view configured_token, std::string_view authorization) {
  if (configured_token.empty()) return true;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() < kScheme.size() ||
      !StartsWithIgnoreCase(authorization, kScheme)) {
    return false;
  }
  std::string_view given = authorization.substr(kScheme.size());
  // Compare every byte whatever the first mismatch, so timing does not leak a prefix.
  unsigned diff = given.size() == configured_token.size() ? 0u : 1u;
  for (size_t i = 0; i < configured_token.size(); ++i) {
    char g = i < given.size() ? given[i] : '\0';
    diff |= static_cast<unsigned char>(g ^ configured_token[i]);
  }
  return diff == 0;
}

}  // namespace sonde::otlp
