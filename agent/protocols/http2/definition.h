#pragma once
// HTTP/2 (and gRPC, which rides on it) for the protocol registry.
#include <string_view>

#include "agent/protocols/protocol.h"

namespace sonde::protocols::http2 {

// Recognises a connection from its client preface, and a connection joined
// mid-way from a chain of valid-looking frame headers.
InferResult Infer(std::string_view first_bytes, Direction dir, Role role);

// Who is the client, from the sender of the preface or of a HEADERS block
// carrying :method (client) / :status (server); kUnknown when undecidable.
Role InferRole(std::string_view first_bytes, Direction dir);

ProtocolDefinition Definition();

}  // namespace sonde::protocols::http2
