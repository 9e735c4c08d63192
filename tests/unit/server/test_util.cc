#include "tests/unit/server/test_util.h"

#include <chrono>
#include <cstdlib>
#include <random>

namespace sonde::server::testing {

TempDir::TempDir() {
  std::random_device rd;
  path_ = std::filesystem::path(SONDE_BINARY_DIR) / "test-output" / "server-unit" /
          ("t" + std::to_string(rd()) + std::to_string(rd()));
  std::filesystem::create_directories(path_);
}
TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

static std::string Bytes(uint64_t n, size_t len) {
  std::string out(len, '\0');
  for (size_t i = 0; i < 8 && i < len; ++i) out[len - 1 - i] = static_cast<char>((n >> (8 * i)) & 0xff);
  if (len > 8) out[0] = 0x5a;  // never all zero
  return out;
}
std::string TestStoragePath(const std::filesystem::path& dir) {
  const char* url = std::getenv("SONDE_TEST_STORAGE_URL");
  if (!url || !*url) return (dir / "sonde.db").string();
  std::random_device rd;
  return std::string(url) + "t" + std::to_string(rd()) + std::to_string(rd());
}

std::string TraceId(uint64_t n) { return Bytes(n, 16); }
std::string SpanId(uint64_t n) { return Bytes(n, 8); }

v1::Span MakeSpan(const SpanSpec& s) {
  v1::Span p;
  p.set_trace_id(TraceId(s.trace));
  p.set_span_id(SpanId(s.id));
  if (s.parent) p.set_parent_span_id(SpanId(s.parent));
  p.set_source(s.source);
  p.set_kind(s.kind);
  p.set_service_name(s.service);
  p.set_endpoint(s.endpoint);
  p.set_name(s.endpoint);
  p.set_start_unix_ns(s.start_ns);
  p.set_end_unix_ns(s.end_ns);
  p.set_pid(s.pid);
  p.set_comm(s.service);
  p.set_http_status(s.http_status);
  return p;
}

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace sonde::server::testing
