// Prometheus remote write from sonde-server into real Prometheus (remote-write
// receiver on) and VictoriaMetrics processes started by the test: an agent's
// batch of RED and TCP windows goes in over gRPC, the series come back
// through PromQL with the values sent (windows of two pids summed, histogram
// buckets cumulative), and the agent's resend of the same batch is not
// exported twice.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <fstream>
#include <thread>

#include "tests/e2e/clickhouse/agent_stream.h"
#include "tests/testlib/process.h"
#include "tests/testlib/wire_ids.h"

namespace sonde {
namespace {

using nlohmann::json;

uint64_t NowNs() { return testlib::WallClockNs(); }

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

struct Backend {
  const char* name;
  std::string write_path;
};

void PrintTo(const Backend& b, std::ostream* os) { *os << b.name; }

class RemoteWriteE2E : public ::testing::TestWithParam<Backend> {};

// Starts the backend; returns its HTTP port (0 on failure).
int StartBackend(const Backend& b, const testlib::TempDir& dir, testlib::Subprocess* out) {
  const int port = testlib::FreeTcpPort();
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  if (std::string(b.name) == "prometheus") {
    {
      std::ofstream cfg(dir.File("prometheus.yml"));
      cfg << "global:\n  scrape_interval: 1m\n";
    }
    *out = testlib::Subprocess::Start({"prometheus", "--config.file=" + dir.File("prometheus.yml"),
                                       "--storage.tsdb.path=" + dir.File("tsdb"), "--web.listen-address=" + listen,
                                       "--web.enable-remote-write-receiver"},
                                      dir.File("backend.out"), dir.File("backend.err"));
  } else {
    *out = testlib::Subprocess::Start({"victoria-metrics", "-httpListenAddr=" + listen,
                                       "-storageDataPath=" + dir.File("vm"), "-search.latencyOffset=1s",
                                       "-search.disableCache"},
                                      dir.File("backend.out"), dir.File("backend.err"));
  }
  return testlib::WaitForTcpPort("127.0.0.1", port, std::chrono::seconds(60)) ? port : 0;
}

// The value of a one-element PromQL result, or -1 while there is none.
double QueryValue(int port, const std::string& promql) {
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(10, 0);
  auto res = c.Get(("/api/v1/query?query=" + UrlEncode(promql)).c_str());
  if (!res || res->status != 200) return -1;
  json j = json::parse(res->body, nullptr, false);
  if (!j.is_object() || j["status"] != "success" || j["data"]["result"].size() != 1) return -1;
  return std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
}

double WaitForValue(int port, const std::string& promql, double want) {
  double v = -1;
  for (int i = 0; i < 150; ++i) {
    v = QueryValue(port, promql);
    if (v == want) return v;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return v;
}

TEST_P(RemoteWriteE2E, RedAndTcpWindowsComeBackThroughPromQL) {
  const Backend& backend = GetParam();
  SONDE_REQUIRE(testlib::CommandExists(backend.name), std::string(backend.name) + " (scripts/setup.sh)");
  testlib::TempDir dir("sonde-remote-write");
  testlib::Subprocess backend_process;
  const int backend_port = StartBackend(backend, dir, &backend_process);
  ASSERT_GT(backend_port, 0) << testlib::ReadFile(dir.File("backend.err"));

  const int grpc_port = testlib::FreeTcpPort(), http_port = testlib::FreeTcpPort();
  auto server = testlib::Subprocess::Start(
      {SONDE_SERVER_BIN, "--data-dir", dir.File("data"), "--grpc-listen", "127.0.0.1:" + std::to_string(grpc_port),
       "--http-listen", "127.0.0.1:" + std::to_string(http_port), "--remote-write",
       "http://127.0.0.1:" + std::to_string(backend_port) + backend.write_path, "--remote-write-header",
       "X-Scope-OrgID: sonde-test"},
      dir.File("server.out"), dir.File("server.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", grpc_port, std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("server.err"));

  const uint64_t end = NowNs() - 5'000'000'000ull, start = end - 10'000'000'000ull;
  v1::Batch batch;
  batch.set_sequence(1);
  for (uint32_t pid : {101u, 102u}) {  // two workers of one service: summed
    auto* ok = batch.add_red();
    ok->set_window_start_unix_ns(start);
    ok->set_window_end_unix_ns(end);
    ok->set_service_name("checkout");
    ok->set_pid(pid);
    ok->set_protocol(v1::L7_PROTOCOL_HTTP1);
    ok->set_method("POST");
    ok->set_endpoint("/pay");
    ok->set_status_class(2);
    ok->set_is_server(true);
    ok->set_requests(pid == 101 ? 25 : 15);
    ok->set_latency_sum_ns(pid == 101 ? 250'000'000 : 150'000'000);
    for (uint64_t bound : {5'000'000ull, 50'000'000ull}) ok->add_bucket_bounds_ns(bound);
    for (uint64_t count : {pid == 101 ? 20ull : 10ull, 5ull, 0ull}) ok->add_bucket_counts(count);
  }
  auto* failed = batch.add_red();
  *failed = batch.red(0);
  failed->set_status_class(5);
  failed->set_requests(2);
  failed->set_errors(2);
  auto* tcp = batch.add_tcp();
  tcp->set_window_start_unix_ns(start);
  tcp->set_window_end_unix_ns(end);
  tcp->mutable_server()->set_address("10.9.0.5");
  tcp->mutable_server()->set_port(5432);
  tcp->mutable_client()->set_address("10.9.0.1");
  tcp->set_comm("checkout");
  tcp->set_retransmits(3);
  tcp->set_srtt_us(1500);
  {
    testing::AgentStream agent(grpc_port, "rw-agent");
    ASSERT_EQ(agent.Send(batch), 1u) << agent.error();
  }
  {
    testing::AgentStream again(grpc_port, "rw-agent");  // a resend after a reconnect
    ASSERT_EQ(again.Send(batch), 1u) << again.error();
  }

  const std::string red = "sonde_red_requests{service=\"checkout\",endpoint=\"/pay\",method=\"POST\","
                          "protocol=\"http1\",direction=\"server\",host=\"node-rw-agent\"";
  EXPECT_EQ(WaitForValue(backend_port, "sum(" + red + ",status_class=\"2xx\"})", 40), 40);
  EXPECT_EQ(WaitForValue(backend_port, "sum(sonde_red_errors{service=\"checkout\",status_class=\"5xx\"})", 2), 2);
  EXPECT_EQ(WaitForValue(backend_port,
                         "sum(sonde_red_duration_seconds_bucket{service=\"checkout\",status_class=\"2xx\",le=\"0.005\"})",
                         30),
            30);
  EXPECT_EQ(WaitForValue(backend_port,
                         "sum(sonde_red_duration_seconds_bucket{service=\"checkout\",status_class=\"2xx\",le=\"+Inf\"})",
                         40),
            40);
  EXPECT_DOUBLE_EQ(WaitForValue(backend_port, "sum(sonde_red_duration_seconds_sum{status_class=\"2xx\"})", 0.4), 0.4);
  EXPECT_EQ(WaitForValue(backend_port, "sonde_tcp_retransmits{server_address=\"10.9.0.5\",server_port=\"5432\"}", 3),
            3);
  EXPECT_DOUBLE_EQ(WaitForValue(backend_port, "sonde_tcp_srtt_seconds{server_port=\"5432\"}", 0.0015), 0.0015);
  // One sample per series: the resend was not exported again.
  EXPECT_EQ(WaitForValue(backend_port, "count_over_time(" + red + ",status_class=\"2xx\"}[10m])", 1), 1);

  httplib::Client c("127.0.0.1", http_port);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sonde_server_remote_write_requests_sent_total 1\n"), std::string::npos)
      << metrics->body;
  EXPECT_NE(metrics->body.find("sonde_server_remote_write_dropped_requests_total 0\n"), std::string::npos);
  server.Stop();
  backend_process.Stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, RemoteWriteE2E,
                         ::testing::Values(Backend{"prometheus", "/api/v1/write"},
                                           Backend{"victoria-metrics", "/api/v1/write"}),
                         [](const auto& p) { return std::string(p.param.name) == "prometheus" ? "Prometheus"
                                                                                                    : "VictoriaMetrics"; });

}  // namespace
}  // namespace sonde
