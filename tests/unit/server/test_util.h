#pragma once
// Helpers shared by the server unit tests: temp directories and span builders.
#include <cstdint>
#include <filesystem>
#include <string>

#include "sonde/v1/ingest.pb.h"

namespace sonde::server::testing {

// A fresh directory under the build tree's test output, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Where a storage-generic test opens its store: `dir`/sonde.db, or a fresh
// database under SONDE_TEST_STORAGE_URL when set (e.g. "clickhouse://
// 127.0.0.1:8123/": tests/e2e/clickhouse runs these tests on ClickHouse).
std::string TestStoragePath(const std::filesystem::path& dir);

std::string TraceId(uint64_t n);  // 16 bytes
std::string SpanId(uint64_t n);   // 8 bytes

struct SpanSpec {
  uint64_t trace = 1;
  uint64_t id = 0;
  uint64_t parent = 0;
  v1::SpanSource source = v1::SPAN_SOURCE_SYSTEM;
  v1::SpanKind kind = v1::SPAN_KIND_SERVER;
  std::string service = "svc";
  std::string endpoint = "GET /";
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  uint32_t pid = 100;
  int http_status = 200;
};
v1::Span MakeSpan(const SpanSpec& s);

uint64_t NowNs();

}  // namespace sonde::server::testing
