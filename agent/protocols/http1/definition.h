#pragma once
// HTTP/1.x entry in the protocol registry (agent/protocols/registry.cc).
#include "agent/protocols/protocol.h"

namespace sonde::protocols::http1 {

ProtocolDefinition Definition();

// Exposed for tests: the registry's inference rule.
InferResult Infer(std::string_view first_bytes, Direction dir, Role role);
Role InferRole(std::string_view first_bytes, Direction dir);

}  // namespace sonde::protocols::http1
