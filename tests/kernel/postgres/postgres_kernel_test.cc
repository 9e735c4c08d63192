// PostgreSQL reconstruction on live traffic: a private cluster under pgbench's
// built-in TPC-B-like script in each query mode (simple, extended, prepared).
// Ground truth is pgbench's own count of processed transactions: each of the
// script's seven statements must become exactly that many server spans
// (postgres backends) and client spans (pgbench), and the same counts in RED.
// A statement that fails (pgbench, extended protocol; psql, simple protocol)
// must carry its SQLSTATE.
#include <gtest/gtest.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "agent/capture/socket_capture.h"
#include "agent/pipeline/pipeline.h"
#include "agent/trace/span_builder.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using testlib::Subprocess;

constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";

class CollectSink final : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& s) override {
    std::lock_guard<std::mutex> lock(mu);
    spans.push_back(s);
  }
  std::mutex mu;
  std::vector<trace::Span> spans;
};

// pgbench's "number of transactions actually processed: N/M".
long ProcessedTransactions(const std::string& output) {
  std::smatch m;
  static const std::regex kProcessed(R"(number of transactions actually processed: (\d+))");
  return std::regex_search(output, m, kProcessed) ? std::stol(m[1].str()) : -1;
}

TEST(PostgresKernel, PgbenchSimpleExtendedPrepared) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(::access((std::string(kPgBin) + "/postgres").c_str(), X_OK) == 0, "postgresql (server)");
  SONDE_REQUIRE(testlib::CommandExists("pgbench") && testlib::CommandExists("psql"), "pgbench, psql");
  SONDE_REQUIRE(testlib::CommandExists("runuser"), "runuser");
  SONDE_REQUIRE(::getpwnam("postgres") != nullptr, "postgres user");

  testlib::TempDir dir("sonde-pg-kernel");
  testlib::RunCommand({"chown", "-R", "postgres:postgres", dir.path()});
  const std::string data = dir.File("data");
  int code = -1;
  const std::string init_out = testlib::RunCommand(
      {"runuser", "-u", "postgres", "--", std::string(kPgBin) + "/initdb", "-D", data, "-A", "trust", "-U",
       "postgres", "--no-sync"},
      &code);
  ASSERT_EQ(code, 0) << init_out;

  const int port = testlib::FreeTcpPort();
  const std::string p = std::to_string(port);
  auto server = Subprocess::Start({"runuser", "-u", "postgres", "--", std::string(kPgBin) + "/postgres", "-D", data,
                                   "-p", p, "-k", dir.path(), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                                   "-c", "ssl=off"},
                                  dir.File("postgres.out"), dir.File("postgres.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", port, std::chrono::seconds(20)))
      << testlib::ReadFile(dir.File("postgres.err"));
  const std::vector<std::string> conn = {"-h", "127.0.0.1", "-p", p, "-U", "postgres"};
  auto with = [&](std::vector<std::string> argv, const std::vector<std::string>& tail) {
    argv.insert(argv.end(), conn.begin(), conn.end());
    argv.insert(argv.end(), tail.begin(), tail.end());
    return argv;
  };
  // Tables first, outside the capture.
  const std::string init_bench = testlib::RunCommand(with({"pgbench", "-i", "-s", "1", "-q"}, {"postgres"}), &code);
  ASSERT_EQ(code, 0) << init_bench;

  capture::SocketCaptureOptions co;
  co.filter.include_ports = {static_cast<uint16_t>(port)};
  co.ringbuf_bytes = 64u << 20;
  auto cap = capture::SocketCapture::Create(co);
  SONDE_REQUIRE(cap.ok(), "socket capture: " + cap.status().ToString());

  pipeline::PipelineOptions po;
  po.print_json = false;
  po.poll_timeout_ms = 20;
  po.sampler.spans_per_second = 0;  // every span: counts are compared exactly
  pipeline::Agent agent(po);
  auto sink = std::make_shared<CollectSink>();
  agent.AddSink(sink);
  std::atomic<bool> stop{false};
  absl::Status run_status;
  std::thread agent_thread([&] { run_status = agent.Run(**cap, stop); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // probes attached

  long transactions = 0;
  for (const char* mode : {"simple", "extended", "prepared"}) {
    const std::string out =
        testlib::RunCommand(with({"pgbench", "-n", "-M", mode, "-c", "2", "-j", "1", "-t", "150"}, {"postgres"}), &code);
    ASSERT_EQ(code, 0) << mode << ": " << out;
    const long n = ProcessedTransactions(out);
    ASSERT_GT(n, 0) << out;
    std::printf("pgbench -M %s: %ld transactions\n", mode, n);
    transactions += n;
  }
  // Failing statements: division by zero through pgbench's extended protocol
  // (the client aborts: exit code 2), an unknown table through psql's simple query.
  {
    std::ofstream script(dir.File("fail.sql"));
    script << "SELECT 1 / 0;\n";
  }
  testlib::RunCommand({"chmod", "644", dir.File("fail.sql")});
  testlib::RunCommand(with({"pgbench", "-n", "-M", "extended", "-t", "1", "-f", dir.File("fail.sql")}, {"postgres"}),
                      &code);
  EXPECT_NE(code, 0);
  testlib::RunCommand(with({"psql", "-X", "-c", "SELECT * FROM sonde_no_such_table"}, {"postgres"}), &code);
  EXPECT_NE(code, 0);

  std::this_thread::sleep_for(std::chrono::seconds(2));  // drain the ring buffer, close connections
  stop = true;
  agent_thread.join();
  ASSERT_TRUE(run_status.ok()) << run_status;

  std::map<std::string, uint64_t> server_spans, client_spans;
  std::map<std::string, std::string> failures;  // span name -> SQLSTATE (server side)
  uint64_t without_namespace = 0;  // db.namespace comes from the startup packet, on both sides
  {
    std::lock_guard<std::mutex> lock(sink->mu);
    for (const auto& s : sink->spans) {
      if (s.protocol != protocols::L7Protocol::kPostgres) continue;
      const bool server_side = s.kind == trace::SpanKind::kServer && s.local.port == port;
      if (server_side) ++server_spans[s.name];
      if (s.kind == trace::SpanKind::kClient && s.peer.port == port) ++client_spans[s.name];
      if (server_side && s.status == trace::StatusCode::kError) failures[s.name] = s.status_message;
      const std::string* ns = trace::StringAttribute(s, "db.namespace");
      if (ns == nullptr || *ns != "postgres") ++without_namespace;
    }
  }
  std::map<std::pair<std::string, std::string>, uint64_t> red;  // (kind, route) -> count
  for (const auto& [key, series] : agent.red().Totals()) {
    if (key.protocol == "postgresql") red[{key.kind, key.route}] += series.count;
  }
  const auto c = agent.counters();
  std::printf("postgres kernel: pgbench transactions=%ld parse_errors=%llu unpaired=%llu kernel_lost=%llu "
              "gap_bytes=%llu\n",
              transactions, (unsigned long long)c.tracker.protocol.parse_errors,
              (unsigned long long)c.tracker.protocol.unpaired, (unsigned long long)c.source.kernel_lost,
              (unsigned long long)c.tracker.gap_bytes);
  for (const auto& [name, n] : server_spans) {
    std::printf("  %-28s server %6llu client %6llu red server %6llu client %6llu\n", name.c_str(),
                (unsigned long long)n, (unsigned long long)client_spans[name],
                (unsigned long long)red[{"server", name}], (unsigned long long)red[{"client", name}]);
  }
  for (const char* statement : {"BEGIN", "UPDATE pgbench_accounts", "SELECT pgbench_accounts",
                                "UPDATE pgbench_tellers", "UPDATE pgbench_branches", "INSERT pgbench_history",
                                "END"}) {
    EXPECT_EQ(server_spans[statement], static_cast<uint64_t>(transactions)) << statement;
    EXPECT_EQ(client_spans[statement], static_cast<uint64_t>(transactions)) << statement;
    EXPECT_EQ((red[{"server", statement}]), static_cast<uint64_t>(transactions)) << statement;
    EXPECT_EQ((red[{"client", statement}]), static_cast<uint64_t>(transactions)) << statement;
    EXPECT_EQ(failures.count(statement), 0u) << statement;
  }
  EXPECT_EQ(failures["SELECT"], "22012");  // SELECT 1 / 0 has no table
  EXPECT_EQ(failures["SELECT sonde_no_such_table"], "42P01");
  EXPECT_EQ(without_namespace, 0u);
  EXPECT_EQ(c.tracker.protocol.parse_errors, 0u);
}

}  // namespace
}  // namespace sonde
