// Trace assembly at scale (issue #17): the indexed assembler gives exactly
// the edges of the pairwise one on random traces (every source, shared
// processes, TCP sequences, tuples, duplicate ids, missing parents, cycles),
// and a 40,000-span trace of one busy gateway assembles whole.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "server/query/trace_assembler.h"
#include "tests/unit/server/test_util.h"
#include "tests/unit/server/trace_assembler_reference.h"

namespace sonde::server {
namespace {

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t T0 = 1'700'000'000'000'000'000ull;

// A random trace: spans nest in time (each picks an earlier span as its time
// parent) on a few hosts and processes; ids, parent ids, sequences and
// tuples collide on purpose.
std::vector<StoredSpan> RandomTrace(std::mt19937_64& rng, int n) {
  auto pick = [&](int k) { return static_cast<int>(rng() % static_cast<uint64_t>(k)); };
  std::vector<StoredSpan> spans;
  std::vector<std::pair<uint64_t, uint64_t>> times;
  const v1::SpanSource sources[] = {v1::SPAN_SOURCE_SYSTEM, v1::SPAN_SOURCE_SYSTEM, v1::SPAN_SOURCE_NETWORK,
                                    v1::SPAN_SOURCE_APPLICATION};
  const v1::SpanKind kinds[] = {v1::SPAN_KIND_SERVER, v1::SPAN_KIND_CLIENT, v1::SPAN_KIND_INTERNAL};
  const uint32_t pids[] = {0, 10, 20, 30};
  for (int i = 0; i < n; ++i) {
    uint64_t start, end;
    if (i == 0 || pick(6) == 0) {
      start = T0 + static_cast<uint64_t>(pick(1000)) * kMs;
      end = start + static_cast<uint64_t>(1 + pick(500)) * kMs;
    } else {  // inside an earlier span, sometimes a little outside it (tolerance, skew)
      const auto [ps, pe] = times[static_cast<size_t>(pick(i))];
      const uint64_t len = pe - ps;
      start = ps + (len > 0 ? rng() % len : 0) - (pick(8) == 0 ? 3 * kMs : 0);
      end = start + (pe > start ? rng() % (pe - start + 1) : 0) + (pick(8) == 0 ? 3 * kMs : 0);
    }
    times.emplace_back(start, end);
    const uint64_t id = static_cast<uint64_t>(pick(3) == 0 ? 1 + pick(n) : 1000 + i);  // duplicates
    const uint64_t parent = pick(3) == 0 ? 0 : static_cast<uint64_t>(pick(4) == 0 ? 5000 + pick(10) : 1 + pick(n));
    testing::SpanSpec spec{.trace = 7, .id = id, .parent = parent, .source = sources[pick(4)],
                           .kind = kinds[pick(3)], .start_ns = start, .end_ns = end, .pid = pids[pick(4)]};
    StoredSpan s{testing::MakeSpan(spec), pick(4) == 0 ? "h2" : "h1"};
    if (pick(2) == 0) s.span.set_request_tcp_seq(static_cast<uint32_t>(1 + pick(n / 4 + 1)));
    if (pick(2) == 0) {
      s.span.mutable_client()->set_address(pick(2) ? "10.0.0.1" : "10.0.0.2");
      s.span.mutable_client()->set_port(static_cast<uint32_t>(40000 + pick(3)));
      s.span.mutable_server()->set_address("10.0.0.9");
      s.span.mutable_server()->set_port(80);
    }
    const v1::LinkReason reasons[] = {v1::LINK_REASON_NONE, v1::LINK_REASON_TRACEPARENT, v1::LINK_REASON_THREAD};
    s.span.set_parent_reason(reasons[pick(3)]);
    spans.push_back(std::move(s));
  }
  // An id is shared by at most two spans, one of them an application span
  // (an S span adopting an A span's id): which of several others a parent id
  // means is not defined (the reference took hash-table order).
  std::map<std::string, std::vector<size_t>> by_id;
  for (size_t i = 0; i < spans.size(); ++i) by_id[spans[i].span.span_id()].push_back(i);
  uint64_t fresh = 100000;
  for (auto& [id, holders] : by_id) {
    for (size_t k = 1; k < holders.size(); ++k) {
      auto& s = spans[holders[k]].span;
      const bool pair_ok = k == 1 && (s.source() == v1::SPAN_SOURCE_APPLICATION) !=
                                         (spans[holders[0]].span.source() == v1::SPAN_SOURCE_APPLICATION);
      if (!pair_ok) s.set_span_id(testing::MakeSpan({.id = fresh++}).span_id());
    }
  }
  return spans;
}

TEST(TraceAssemblyScale, SameEdgesAsThePairwiseAssemblerOnRandomTraces) {
  std::mt19937_64 rng(17);
  int compared = 0, linked = 0;
  for (int round = 0; round < 400; ++round) {
    const int n = 5 + static_cast<int>(rng() % 200);
    const std::vector<StoredSpan> spans = RandomTrace(rng, n);
    const AssembledTrace fast = AssembleTrace(spans);
    const AssembledTrace ref = reference::ReferenceAssembleTrace(spans);
    ASSERT_EQ(fast.spans.size(), ref.spans.size());
    for (size_t i = 0; i < spans.size(); ++i) {
      const auto& f = fast.spans[i];
      const auto& r = ref.spans[i];
      auto describe = [&](int k) {
        if (k < 0) return std::string("none");
        const auto& x = spans[static_cast<size_t>(k)];
        return "#" + std::to_string(k) + " id=" + HexEncode(x.span.span_id()) + " parent=" +
               HexEncode(x.span.parent_span_id()) + " src=" + std::to_string(x.span.source()) +
               " kind=" + std::to_string(x.span.kind()) + " pid=" + std::to_string(x.span.pid()) + " host=" + x.host +
               " reason=" + std::to_string(x.span.parent_reason()) + " [" + std::to_string(x.span.start_unix_ns() - T0) +
               "," + std::to_string(x.span.end_unix_ns() - T0) + "]";
      };
      ASSERT_EQ(f.parent, r.parent) << "round " << round << " span " << describe(static_cast<int>(i)) << "\n fast "
                                    << f.edge << " " << describe(f.parent) << "\n ref " << r.edge << " "
                                    << describe(r.parent);
      ASSERT_EQ(f.edge, r.edge) << "round " << round << " span " << i;
      ASSERT_EQ(f.edge_origin, r.edge_origin) << "round " << round << " span " << i;
      ASSERT_EQ(f.missing_parent, r.missing_parent) << "round " << round << " span " << i;
      ASSERT_EQ(f.skew_ns, r.skew_ns) << "round " << round << " span " << i;
      ASSERT_EQ(f.depth, r.depth);
      ++compared;
      linked += r.edge_origin == "server";
    }
    ASSERT_EQ(fast.order, ref.order) << "round " << round;
  }
  std::printf("%d spans compared, %d server-inferred edges among them\n", compared, linked);
  EXPECT_GT(linked, compared / 20);  // the random traces do exercise the inferred links
}

// One gateway process: 10,000 requests, each an S SERVER span with an S
// CLIENT span to the backend (same TCP sequence as the backend's S SERVER
// span) and the backend's A SERVER span inside it.
std::vector<StoredSpan> GatewayTrace(int requests) {
  std::vector<StoredSpan> spans;
  uint64_t id = 1;
  for (int r = 0; r < requests; ++r) {
    const uint64_t t = T0 + static_cast<uint64_t>(r) * kMs / 4;  // overlapping requests
    const uint64_t ingress = id++, egress = id++, backend = id++, app = id++;
    spans.push_back({testing::MakeSpan({.trace = 9, .id = ingress, .kind = v1::SPAN_KIND_SERVER,
                                        .start_ns = t, .end_ns = t + 10 * kMs, .pid = 10}), "gw"});
    StoredSpan out{testing::MakeSpan({.trace = 9, .id = egress, .kind = v1::SPAN_KIND_CLIENT,
                                      .start_ns = t + 1 * kMs, .end_ns = t + 9 * kMs, .pid = 10}), "gw"};
    out.span.set_request_tcp_seq(static_cast<uint32_t>(r + 1));
    spans.push_back(std::move(out));
    StoredSpan in{testing::MakeSpan({.trace = 9, .id = backend, .kind = v1::SPAN_KIND_SERVER,
                                     .start_ns = t + 2 * kMs, .end_ns = t + 8 * kMs, .pid = 20}), "be"};
    in.span.set_request_tcp_seq(static_cast<uint32_t>(r + 1));
    spans.push_back(std::move(in));
    spans.push_back({testing::MakeSpan({.trace = 9, .id = app, .parent = 999999, .source = v1::SPAN_SOURCE_APPLICATION,
                                        .kind = v1::SPAN_KIND_SERVER, .start_ns = t + 3 * kMs,
                                        .end_ns = t + 7 * kMs, .pid = 20}), "be"});
  }
  return spans;
}

TEST(TraceAssemblyScale, FortyThousandSpansAssembleWhole) {
  const std::vector<StoredSpan> spans = GatewayTrace(10'000);
  ASSERT_EQ(spans.size(), 40'000u);
  const auto t0 = std::chrono::steady_clock::now();
  const AssembledTrace t = AssembleTrace(spans);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("40,000-span trace assembled in %.3f s\n", s);
  // Every backend span found its caller by sequence, every A span its S span.
  int by_seq = 0, nested = 0;
  for (const auto& a : t.spans) {
    by_seq += a.edge == "tcp_sequence";
    nested += a.edge == "time_nesting";
  }
  EXPECT_EQ(by_seq, 10'000);
  EXPECT_GE(nested, 10'000);
  EXPECT_EQ(t.order.size(), 40'000u);
}

}  // namespace
}  // namespace sonde::server
