// Trace assembly time against trace size (issue #17): the indexed assembler
// (server/query/trace_assembler.cc) and, up to 40,000 spans, the pairwise one
// it replaced (tests/unit/server/trace_assembler_reference.cc). The trace is
// a busy gateway: per request an ingress S SERVER span, an egress S CLIENT
// span, the backend's S SERVER span (same TCP sequence) and its OTLP A SERVER
// span inside, requests overlapping in time.
//   trace_assembly_bench [max_spans]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <filesystem>
#include <unistd.h>

#include "server/api/json.h"
#include "server/query/trace_assembler.h"
#include "server/store/storage.h"
#include "tests/unit/server/trace_assembler_reference.h"

namespace {

using sonde::server::StoredSpan;
namespace v1 = sonde::v1;
constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t T0 = 1'700'000'000'000'000'000ull;

std::string Id(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, v >>= 8) out[static_cast<size_t>(i)] = static_cast<char>(v & 0xff);
  return out;
}

StoredSpan Make(uint64_t id, v1::SpanSource source, v1::SpanKind kind, uint64_t start, uint64_t end, uint32_t pid,
                const char* host) {
  StoredSpan s;
  s.host = host;
  s.span.set_trace_id(std::string(16, '\x09'));
  s.span.set_span_id(Id(id));
  s.span.set_source(source);
  s.span.set_kind(kind);
  s.span.set_start_unix_ns(start);
  s.span.set_end_unix_ns(end);
  s.span.set_pid(pid);
  return s;
}

std::vector<StoredSpan> GatewayTrace(int requests) {
  std::vector<StoredSpan> spans;
  uint64_t id = 1;
  for (int r = 0; r < requests; ++r) {
    const uint64_t t = T0 + static_cast<uint64_t>(r) * kMs / 4;
    spans.push_back(Make(id++, v1::SPAN_SOURCE_SYSTEM, v1::SPAN_KIND_SERVER, t, t + 10 * kMs, 10, "gw"));
    spans.push_back(Make(id++, v1::SPAN_SOURCE_SYSTEM, v1::SPAN_KIND_CLIENT, t + kMs, t + 9 * kMs, 10, "gw"));
    spans.back().span.set_request_tcp_seq(static_cast<uint32_t>(r + 1));
    spans.push_back(Make(id++, v1::SPAN_SOURCE_SYSTEM, v1::SPAN_KIND_SERVER, t + 2 * kMs, t + 8 * kMs, 20, "be"));
    spans.back().span.set_request_tcp_seq(static_cast<uint32_t>(r + 1));
    spans.push_back(Make(id++, v1::SPAN_SOURCE_APPLICATION, v1::SPAN_KIND_SERVER, t + 3 * kMs, t + 7 * kMs, 20, "be"));
    spans.back().span.set_parent_span_id(Id(999999999));
  }
  return spans;
}

template <typename F>
double Seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const int max_spans = argc > 1 ? std::atoi(argv[1]) : 160'000;
  std::printf("%10s %14s %14s\n", "spans", "indexed (s)", "pairwise (s)");
  for (int spans = 2'500; spans <= max_spans; spans *= 2) {
    const auto trace = GatewayTrace(spans / 4);
    size_t edges = 0;
    const double fast = Seconds([&] { edges = sonde::server::AssembleTrace(trace).order.size(); });
    std::string pairwise = "-";
    if (spans <= 40'000) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.3f",
                    Seconds([&] { sonde::server::reference::ReferenceAssembleTrace(trace); }));
      pairwise = buf;
    }
    std::printf("%10zu %14.3f %14s\n", edges, fast, pairwise.c_str());
  }

  // One GET /api/traces/{id} of the 40,000-span trace, phase by phase, from SQLite.
  const auto dir = std::filesystem::temp_directory_path() / ("sonde-assembly-bench-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  sonde::server::StorageOptions o;
  o.path = (dir / "sonde.db").string();
  auto store = sonde::server::OpenStorage(o);
  if (!store.ok()) return 1;
  const auto trace = GatewayTrace(10'000);
  for (size_t b = 0; b < trace.size() / 2000; ++b) {
    v1::Batch batch;
    batch.set_sequence(b + 1);
    for (size_t i = b * 2000; i < (b + 1) * 2000; ++i) *batch.add_spans() = trace[i].span;
    if (!(*store)->WriteBatch({"h", "n", "i"}, batch).ok()) return 1;
  }
  std::vector<StoredSpan> read;
  const double t_read = Seconds([&] { read = *(*store)->Trace(std::string(16, '\x09')); });
  sonde::server::AssembledTrace assembled;
  const double t_assemble = Seconds([&] { assembled = sonde::server::AssembleTrace(read); });
  nlohmann::json j;
  const double t_json = Seconds([&] { j = sonde::server::TraceJson(assembled); });
  std::string body;
  const double t_dump = Seconds([&] { body = j.dump(); });
  std::printf("GET of a %zu-span trace: read %.3f s, assemble %.3f s, JSON %.3f s, dump %.3f s (%.1f MB)\n",
              read.size(), t_read, t_assemble, t_json, t_dump, static_cast<double>(body.size()) / 1e6);
  std::filesystem::remove_all(dir);
  return 0;
}
