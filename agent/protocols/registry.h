#pragma once
// Maps protocols to their definitions. Inference tries them in order.
#include <span>

#include "agent/protocols/protocol.h"

namespace sonde::protocols {

std::span<const ProtocolDefinition> AllProtocols();
const ProtocolDefinition* FindProtocol(L7Protocol protocol);
// The semantics of records of `protocol` (whichever definition produces
// them); a generic fallback for kUnknown.
const RecordSemantics& SemanticsFor(L7Protocol protocol);
// By protocol name (L7ProtocolName), e.g. for RED series keyed by name.
const RecordSemantics& SemanticsFor(std::string_view protocol_name);

}  // namespace sonde::protocols
