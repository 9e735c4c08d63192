// Redis reconstruction on live traffic: a private redis-server under
// redis-benchmark, once one command per round trip and once pipelined 16
// deep. Ground truth is the benchmark's request counts: every SET and GET it
// sent must become exactly one server span (redis-server) and one client
// span (redis-benchmark), and the same counts in RED.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "agent/capture/socket_capture.h"
#include "agent/pipeline/pipeline.h"
#include "agent/trace/span_builder.h"
#include "tests/testlib/collect_sink.h"
#include "tests/testlib/in_process_agent.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using testlib::Subprocess;

using testlib::CollectSink;

TEST(RedisKernel, BenchmarkPlainAndPipelined) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(testlib::CommandExists("redis-server"), "redis-server");
  SONDE_REQUIRE(testlib::CommandExists("redis-benchmark"), "redis-benchmark");

  const int port = testlib::FreeTcpPort();
  testlib::TempDir dir("sonde-redis-kernel");

  capture::SocketCaptureOptions co;
  co.filter.include_ports = {static_cast<uint16_t>(port)};
  co.ringbuf_bytes = 64u << 20;
  auto in_process = testlib::InProcessAgent::Start(co);  // every span kept: counts are compared exactly
  SONDE_REQUIRE(in_process.ok(), "socket capture: " + in_process.status().ToString());
  pipeline::Agent& agent = (*in_process)->agent();
  testlib::CollectSink* sink = &(*in_process)->sink();

  auto server = Subprocess::Start({"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no", "--dir", dir.path()},
                                  dir.File("redis.out"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", port, std::chrono::seconds(10)))
      << testlib::ReadFile(dir.File("redis.out"));

  constexpr int kRequests = 2000;
  for (const char* pipeline : {"1", "16"}) {
    auto bench = Subprocess::Start({"redis-benchmark", "-h", "127.0.0.1", "-p", std::to_string(port), "-t",
                                    "set,get", "-n", std::to_string(kRequests), "-P", pipeline, "-q"},
                                   dir.File(std::string("bench") + pipeline + ".out"));
    ASSERT_EQ(bench.Wait(std::chrono::seconds(120)), 0)
        << testlib::ReadFile(dir.File(std::string("bench") + pipeline + ".out"));
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // drain the ring buffer, close connections
  const absl::Status run_status = (*in_process)->Stop();
  ASSERT_TRUE(run_status.ok()) << run_status;

  std::map<std::string, uint64_t> server_spans, client_spans;
  uint64_t errors = 0;
  {
    std::lock_guard<std::mutex> lock(sink->mu);
    for (const auto& s : sink->spans) {
      if (s.protocol != protocols::L7Protocol::kRedis) continue;
      if (s.status == trace::StatusCode::kError) ++errors;
      if (s.kind == trace::SpanKind::kServer && s.local.port == port) ++server_spans[s.name];
      if (s.kind == trace::SpanKind::kClient && s.peer.port == port) ++client_spans[s.name];
    }
  }
  std::map<std::pair<std::string, std::string>, uint64_t> red;  // (kind, method) -> count
  for (const auto& [key, series] : agent.red().Totals()) {
    if (key.protocol == "redis") red[{key.kind, key.method}] += series.count;
  }

  const uint64_t expected = 2 * kRequests;  // per command, both runs
  const auto c = agent.counters();
  std::printf("redis kernel: benchmark SET=%llu GET=%llu | server spans SET=%llu GET=%llu | client spans "
              "SET=%llu GET=%llu | RED server SET=%llu GET=%llu client SET=%llu GET=%llu | errors=%llu\n"
              "  parse_errors=%llu unpaired=%llu kernel_lost=%llu gap_bytes=%llu\n",
              (unsigned long long)expected, (unsigned long long)expected,
              (unsigned long long)server_spans["SET"], (unsigned long long)server_spans["GET"],
              (unsigned long long)client_spans["SET"], (unsigned long long)client_spans["GET"],
              (unsigned long long)(red[{"server", "SET"}]), (unsigned long long)(red[{"server", "GET"}]),
              (unsigned long long)(red[{"client", "SET"}]), (unsigned long long)(red[{"client", "GET"}]),
              (unsigned long long)errors, (unsigned long long)c.tracker.protocol.parse_errors,
              (unsigned long long)c.tracker.protocol.unpaired, (unsigned long long)c.source.kernel_lost,
              (unsigned long long)c.tracker.gap_bytes);
  for (const auto& [name, n] : server_spans) std::printf("  server %s x%llu\n", name.c_str(), (unsigned long long)n);

  for (const char* command : {"SET", "GET"}) {
    EXPECT_EQ(server_spans[command], expected) << command;
    EXPECT_EQ(client_spans[command], expected) << command;
    EXPECT_EQ((red[{"server", command}]), expected) << command;
    EXPECT_EQ((red[{"client", command}]), expected) << command;
  }
  EXPECT_EQ(errors, 0u);
  EXPECT_EQ(c.tracker.protocol.parse_errors, 0u);
}

}  // namespace
}  // namespace sonde
