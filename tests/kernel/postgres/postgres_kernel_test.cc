// PostgreSQL reconstruction on live traffic: a private cluster under pgbench's
// built-in TPC-B-like script in each query mode (simple, extended, prepared).
// Ground truth is pgbench's own count of processed transactions: each of the
// script's seven statements must become exactly that many server spans
// (postgres backends) and client spans (pgbench), and the same counts in RED.
// A statement that fails (pgbench, extended protocol; psql, simple protocol)
// must carry its SQLSTATE. The same over TLS-upgraded connections.
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
#include "tests/testlib/collect_sink.h"
#include "tests/testlib/in_process_agent.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using testlib::Subprocess;

constexpr const char* kPgBin = "/usr/lib/postgresql/15/bin";

using testlib::CollectSink;

// pgbench's "number of transactions actually processed: N/M".
long ProcessedTransactions(const std::string& output) {
  std::smatch m;
  static const std::regex kProcessed(R"(number of transactions actually processed: (\d+))");
  return std::regex_search(output, m, kProcessed) ? std::stol(m[1].str()) : -1;
}

// A private cluster: initdb in a temp dir, a run-time port, the postgres user
// (the server refuses root); pgbench's tables created before any capture.
// `tls`: ssl=on with a throw-away self-signed certificate.
class Cluster {
 public:
  explicit Cluster(bool tls) : tls_(tls), dir_("sonde-pg-kernel") {}

  void Start() {
    testlib::RunCommand({"chown", "-R", "postgres:postgres", dir_.path()});
    int code = -1;
    const std::string init_out = testlib::RunCommand(
        {"runuser", "-u", "postgres", "--", std::string(kPgBin) + "/initdb", "-D", dir_.File("data"), "-A", "trust",
         "-U", "postgres", "--no-sync"},
        &code);
    ASSERT_EQ(code, 0) << init_out;
    std::vector<std::string> ssl = {"-c", "ssl=off"};
    if (tls_) {
      const std::string out = testlib::RunCommand(
          {"sh", "-c",
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " + dir_.File("server.key") +
               " -out " + dir_.File("server.crt") + " 2>&1"},
          &code);
      ASSERT_EQ(code, 0) << out;
      testlib::RunCommand({"chown", "postgres:postgres", dir_.File("server.key"), dir_.File("server.crt")});
      testlib::RunCommand({"chmod", "600", dir_.File("server.key")});
      ssl = {"-c", "ssl=on", "-c", "ssl_cert_file=" + dir_.File("server.crt"), "-c",
             "ssl_key_file=" + dir_.File("server.key")};
    }
    port_ = testlib::FreeTcpPort();
    std::vector<std::string> argv = {"runuser", "-u", "postgres", "--", std::string(kPgBin) + "/postgres", "-D",
                                     dir_.File("data"), "-p", std::to_string(port_), "-k", dir_.path(), "-c",
                                     "listen_addresses=127.0.0.1", "-c", "fsync=off"};
    argv.insert(argv.end(), ssl.begin(), ssl.end());
    server_ = Subprocess::Start(argv, dir_.File("postgres.out"), dir_.File("postgres.err"));
    ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", port_, std::chrono::seconds(20)))
        << testlib::ReadFile(dir_.File("postgres.err"));
    const std::string init_bench = testlib::RunCommand(Client({"pgbench", "-i", "-s", "1", "-q"}), &code);
    ASSERT_EQ(code, 0) << init_bench;
  }

  // A client command line: libpq's sslmode through the environment (prefer
  // against ssl=off: an SSLRequest refused with 'N' before the startup packet).
  std::vector<std::string> Client(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"env", tls_ ? "PGSSLMODE=require" : "PGSSLMODE=prefer"});
    for (const char* a : {"-h", "127.0.0.1", "-p"}) argv.push_back(a);
    argv.push_back(std::to_string(port_));
    for (const char* a : {"-U", "postgres", "postgres"}) argv.push_back(a);
    return argv;
  }
  int port() const { return port_; }
  const testlib::TempDir& dir() const { return dir_; }

 private:
  bool tls_;
  testlib::TempDir dir_;
  int port_ = 0;
  Subprocess server_;
};

bool PrerequisitesMissing() {
  return ::geteuid() != 0 || ::access((std::string(kPgBin) + "/postgres").c_str(), X_OK) != 0 ||
         !testlib::CommandExists("pgbench") || !testlib::CommandExists("psql") || !testlib::CommandExists("runuser") ||
         ::getpwnam("postgres") == nullptr;
}

TEST(PostgresKernel, PgbenchSimpleExtendedPrepared) {
  SONDE_REQUIRE(!PrerequisitesMissing(), "root, postgresql (server), pgbench, psql, runuser, postgres user");
  Cluster cluster(/*tls=*/false);
  ASSERT_NO_FATAL_FAILURE(cluster.Start());
  const int port = cluster.port();
  const testlib::TempDir& dir = cluster.dir();
  int code = -1;

  capture::SocketCaptureOptions co;
  co.filter.include_ports = {static_cast<uint16_t>(port)};
  co.ringbuf_bytes = 64u << 20;
  auto in_process = testlib::InProcessAgent::Start(co);  // every span kept: counts are compared exactly
  SONDE_REQUIRE(in_process.ok(), "socket capture: " + in_process.status().ToString());
  pipeline::Agent& agent = (*in_process)->agent();
  testlib::CollectSink* sink = &(*in_process)->sink();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // probes attached

  long transactions = 0;
  for (const char* mode : {"simple", "extended", "prepared"}) {
    const std::string out =
        testlib::RunCommand(cluster.Client({"pgbench", "-n", "-M", mode, "-c", "2", "-j", "1", "-t", "150"}), &code);
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
  testlib::RunCommand(cluster.Client({"pgbench", "-n", "-M", "extended", "-t", "1", "-f", dir.File("fail.sql")}), &code);
  EXPECT_NE(code, 0);
  testlib::RunCommand(cluster.Client({"psql", "-X", "-c", "SELECT * FROM sonde_no_such_table"}), &code);
  EXPECT_NE(code, 0);

  std::this_thread::sleep_for(std::chrono::seconds(2));  // drain the ring buffer, close connections
  const absl::Status run_status = (*in_process)->Stop();
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

// TLS-upgraded connections (SSLRequest answered 'S'): the socket carries
// ciphertext, the TLS capture hands over libpq's and the backend's plaintext
// (OpenSSL uprobes), and the PostgreSQL session reads it like a plain
// connection, startup packet included.
TEST(PostgresKernel, TlsUpgradedConnections) {
  SONDE_REQUIRE(!PrerequisitesMissing() && testlib::CommandExists("openssl"),
                "root, postgresql (server), pgbench, psql, runuser, postgres user, openssl");
  Cluster cluster(/*tls=*/true);
  ASSERT_NO_FATAL_FAILURE(cluster.Start());
  const int port = cluster.port();
  int code = -1;
  const std::string ssl_in_use =
      testlib::RunCommand(cluster.Client({"psql", "-X", "-A", "-t", "-c",
                                          "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"}),
                          &code);
  ASSERT_EQ(code, 0);
  ASSERT_EQ(ssl_in_use.substr(0, 1), "t") << "the connection is not TLS";

  capture::SocketCaptureOptions co;
  co.filter.include_ports = {static_cast<uint16_t>(port)};
  co.ringbuf_bytes = 32u << 20;
  co.tls = true;
  auto in_process = testlib::InProcessAgent::Start(co);  // every span kept: counts are compared exactly
  SONDE_REQUIRE(in_process.ok(), "socket capture: " + in_process.status().ToString());
  testlib::CollectSink* sink = &(*in_process)->sink();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // uprobes attached

  const std::string out = testlib::RunCommand(
      cluster.Client({"pgbench", "-n", "-M", "extended", "-c", "2", "-j", "1", "-t", "100"}), &code);
  ASSERT_EQ(code, 0) << out;
  const long transactions = ProcessedTransactions(out);
  ASSERT_GT(transactions, 0) << out;
  testlib::RunCommand(cluster.Client({"psql", "-X", "-c", "SELECT * FROM sonde_no_such_table"}), &code);
  EXPECT_NE(code, 0);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  const absl::Status run_status = (*in_process)->Stop();
  ASSERT_TRUE(run_status.ok()) << run_status;

  std::map<std::string, uint64_t> server_spans, client_spans;
  std::map<std::string, std::string> failures;
  uint64_t without_namespace = 0;
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
  const auto k = (*in_process)->capture().ReadKernelCounters();
  std::printf("postgres over TLS: pgbench transactions=%ld, TLS plaintext events=%llu\n", transactions,
              (unsigned long long)k.stats[SONDE_STAT_TLS_PLAINTEXT]);
  for (const auto& [name, n] : server_spans) {
    std::printf("  %-28s server %6llu client %6llu\n", name.c_str(), (unsigned long long)n,
                (unsigned long long)client_spans[name]);
  }
  for (const char* statement : {"BEGIN", "UPDATE pgbench_accounts", "SELECT pgbench_accounts",
                                "UPDATE pgbench_tellers", "UPDATE pgbench_branches", "INSERT pgbench_history",
                                "END"}) {
    EXPECT_EQ(server_spans[statement], static_cast<uint64_t>(transactions)) << statement;
    EXPECT_EQ(client_spans[statement], static_cast<uint64_t>(transactions)) << statement;
  }
  EXPECT_GT(k.stats[SONDE_STAT_TLS_PLAINTEXT], 0u);
  EXPECT_EQ(failures["SELECT sonde_no_such_table"], "42P01");
  EXPECT_EQ(without_namespace, 0u);
}

}  // namespace
}  // namespace sonde
