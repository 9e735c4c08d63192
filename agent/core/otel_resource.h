#pragma once
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME, read the way OpenTelemetry
// SDKs read them, applied where they make sense for an agent that observes
// many processes:
//   - OTEL_RESOURCE_ATTRIBUTES describes where the agent runs
//     (deployment.environment.name=prod,k8s.cluster.name=eu-1): every span
//     the agent ships (S, N, and ingested A spans) gets these attributes
//     unless it already carries the key (an application's own resource wins).
//   - service.name (OTEL_SERVICE_NAME, or in OTEL_RESOURCE_ATTRIBUTES) names
//     one service; applied to every captured process it would rename them
//     all, so it is not applied (services.rules names services) and the agent
//     says so at start-up. docs/configuration.md, "OpenTelemetry variables".
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace sonde::core {

using ResourceAttributes = std::vector<std::pair<std::string, std::string>>;

// "k1=v1,k2=v%20two": keys and values trimmed of spaces, values
// percent-decoded (W3C Baggage octets), later duplicates replace earlier
// ones. An entry without '=', an empty key or a bad %XX escape is an error.
absl::StatusOr<ResourceAttributes> ParseResourceAttributes(std::string_view text);

struct OtelResource {
  ResourceAttributes attributes;  // without service.name
  std::string ignored_service_name;  // what OTEL_SERVICE_NAME / service.name asked for, not applied
};

// From the two variables' values (nullptr: unset). Errors name the variable.
absl::StatusOr<OtelResource> OtelResourceFromEnv(const char* resource_attributes, const char* service_name);

}  // namespace sonde::core
