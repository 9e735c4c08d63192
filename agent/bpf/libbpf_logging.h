#pragma once
namespace sonde::bpf {
// Routes libbpf's messages to spdlog (warnings and errors; debug when verbose).
void RouteLibbpfLogsToSpdlog(bool verbose);
}  // namespace sonde::bpf
