#pragma once
// Text forms of addresses and of the kernel tuple: the agent's one address
// formatter (system spans, TCP health pairs, packet flows, node addresses).
// IPv4-mapped IPv6 addresses print as IPv4, so dual-stack sockets group with
// their IPv4 peers.
#include <cstdint>
#include <string>

#include "sonde/abi.h"

namespace sonde::capture {

// `family` AF_INET: 4 bytes at `addr`; otherwise 16 (IPv6).
std::string FormatAddress(uint16_t family, const uint8_t* addr);
std::string LocalAddress(const sonde_tuple& t);
std::string RemoteAddress(const sonde_tuple& t);
// "10.0.0.1:80" / "[::1]:80"
std::string FormatEndpoint(uint16_t family, const uint8_t (&addr)[SONDE_ADDR_LEN], uint16_t port);

const char* DirectionName(uint8_t direction);
const char* RoleName(uint8_t role);
const char* SyscallName(uint8_t syscall);

}  // namespace sonde::capture
