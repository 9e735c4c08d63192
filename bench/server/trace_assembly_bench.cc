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

#include "server/query/trace_assembler.h"
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
  return 0;
}
