#pragma once
// PostgreSQL (frontend/backend protocol v3) as a protocol: inference, session, semantics.
#include "agent/protocols/protocol.h"

namespace sonde::protocols::postgres {

ProtocolDefinition Definition();

InferResult Infer(std::string_view first_bytes, Direction dir, Role role);
Role InferRole(std::string_view first_bytes, Direction dir);

}  // namespace sonde::protocols::postgres
