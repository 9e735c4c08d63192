#pragma once
// Text forms of the kernel tuple. IPv4-mapped IPv6 addresses print as IPv4.
#include <string>

#include "sonde/abi.h"

namespace sonde::capture {

std::string FormatAddress(uint16_t family, const uint8_t (&addr)[SONDE_ADDR_LEN]);
std::string LocalAddress(const sonde_tuple& t);
std::string RemoteAddress(const sonde_tuple& t);
// "10.0.0.1:80" / "[::1]:80"
std::string FormatEndpoint(uint16_t family, const uint8_t (&addr)[SONDE_ADDR_LEN], uint16_t port);

const char* DirectionName(uint8_t direction);
const char* RoleName(uint8_t role);
const char* SyscallName(uint8_t syscall);

}  // namespace sonde::capture
