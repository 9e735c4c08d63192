#pragma once
// Redis (RESP2/RESP3) as a protocol: inference, session, semantics.
#include "agent/protocols/protocol.h"

namespace sonde::protocols::redis {

ProtocolDefinition Definition();

InferResult Infer(std::string_view first_bytes, Direction dir, Role role);
Role InferRole(std::string_view first_bytes, Direction dir);

}  // namespace sonde::protocols::redis
