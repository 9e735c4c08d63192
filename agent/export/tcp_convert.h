#pragma once
// tcp::TcpWindow (the agent's 1 s TCP health windows) -> sonde.v1.TcpWindow.
#include <cstdint>
#include <vector>

#include "agent/tcp/tcp_types.h"
#include "sonde/v1/metrics.pb.h"

namespace sonde::exporter {

// `monotonic_to_unix_ns` converts the window's CLOCK_MONOTONIC bounds.
std::vector<v1::TcpWindow> TcpWindowToProto(const tcp::TcpWindow& window, uint64_t monotonic_to_unix_ns);

}  // namespace sonde::exporter
