#include "agent/bpf/libbpf_logging.h"

#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <cstdarg>
#include <cstdio>
#include <string>

namespace sonde::bpf {
namespace {
bool g_verbose = false;

int LibbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG && !g_verbose) return 0;
  char buf[1024];
  const int n = std::vsnprintf(buf, sizeof(buf), format, args);
  std::string msg(buf, n > 0 ? std::min<size_t>(static_cast<size_t>(n), sizeof(buf) - 1) : 0);
  while (!msg.empty() && msg.back() == '\n') msg.pop_back();
  switch (level) {
    case LIBBPF_WARN: spdlog::warn("libbpf: {}", msg); break;
    case LIBBPF_INFO: spdlog::info("libbpf: {}", msg); break;
    default: spdlog::debug("libbpf: {}", msg); break;
  }
  return n;
}
}  // namespace

void RouteLibbpfLogsToSpdlog(bool verbose) {
  g_verbose = verbose;
  libbpf_set_print(LibbpfPrint);
}

}  // namespace sonde::bpf
