#pragma once
// Maps protocols to their definitions. Inference tries them in order.
#include <span>

#include "agent/protocols/protocol.h"

namespace sonde::protocols {

std::span<const ProtocolDefinition> AllProtocols();
const ProtocolDefinition* FindProtocol(L7Protocol protocol);

}  // namespace sonde::protocols
