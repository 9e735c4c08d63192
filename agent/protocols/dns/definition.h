#pragma once
// DNS as a protocol, once per transport: over UDP (datagrams) and over TCP
// (length-prefixed). Both produce kDns records with the same semantics.
#include "agent/protocols/protocol.h"

namespace sonde::protocols::dns {

ProtocolDefinition UdpDefinition();
ProtocolDefinition TcpDefinition();

InferResult InferUdp(std::string_view first_bytes, Direction dir, Role role);
InferResult InferTcp(std::string_view first_bytes, Direction dir, Role role);
Role InferRole(std::string_view first_bytes, Direction dir);

}  // namespace sonde::protocols::dns
