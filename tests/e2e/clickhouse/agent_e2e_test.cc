// The real agent on ClickHouse storage: sonde-agent (root, BPF) traces curl
// against a Node backend and ships to one sonde-server replica; a second
// replica on the same clickhouse-server answers the queries. All processes
// real and started by the test.
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/e2e/clickhouse/api_json.h"
#include "tests/e2e/clickhouse/clickhouse_server.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using nlohmann::json;

using testing::GetJson;

TEST(ClickHouseAgent, AgentShipsToOneReplicaTheOtherAnswers) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(testing::ClickHouseInstalled(), "clickhouse-server (scripts/setup.sh)");
  SONDE_REQUIRE(testlib::CommandExists("node") && testlib::CommandExists("curl"), "node and curl");
  std::string error;
  auto clickhouse = testing::ClickHouseServer::Start(&error);
  ASSERT_TRUE(clickhouse) << error;
  testlib::TempDir dir("sonde-ch-agent");
  const std::string storage = clickhouse->Url("sonde");
  struct Replica {
    testlib::Subprocess process;
    int grpc_port, http_port;
  };
  auto start = [&](const std::string& name) {
    Replica r{{}, testlib::FreeTcpPort(), testlib::FreeTcpPort()};
    r.process = testlib::Subprocess::Start(
        {SONDE_SERVER_BIN, "--storage", storage, "--data-dir", dir.File(name), "--grpc-listen",
         "127.0.0.1:" + std::to_string(r.grpc_port), "--http-listen", "127.0.0.1:" + std::to_string(r.http_port)},
        dir.File(name + ".out"), dir.File(name + ".err"));
    return r;
  };
  Replica a = start("a"), b = start("b");
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", a.grpc_port, std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("a.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", b.http_port, std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("b.err"));

  const int backend_port = testlib::FreeTcpPort();
  {
    std::ofstream js(dir.File("backend.js"));
    js << "require('http').createServer((q, s) => { s.writeHead(200); s.end('ok'); })"
          ".listen(" << backend_port << ", '127.0.0.1');\n";
  }
  auto backend = testlib::Subprocess::Start({"node", dir.File("backend.js")}, dir.File("backend.out"),
                                            dir.File("backend.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", backend_port, std::chrono::seconds(20)));

  // Only the backend's port: other traffic on the machine (other tests) would
  // take the span budget and leave these requests out of the store.
  auto agent = testlib::Subprocess::Start({SONDE_AGENT_BIN, "run", "--server", "127.0.0.1:" + std::to_string(a.grpc_port),
                                           "--port", std::to_string(backend_port), "--no-json", "--ready-file",
                                           dir.File("agent.ready")},
                                          dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("agent.ready"), std::chrono::seconds(60)))
      << testlib::ReadFile(dir.File("agent.err"));
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // Letters only: numeric path segments may be folded into {id}.
  std::string run;
  std::random_device rd;
  for (int i = 0; i < 8; ++i) run += static_cast<char>('a' + rd() % 26);
  // Warm-up until replica b shows a first captured request: the agent's
  // probes are in place and its stream to replica a is up.
  const std::string warmup = "http://127.0.0.1:" + std::to_string(backend_port) + "/ck" + run + "/warmup";
  bool warm = false;
  for (int i = 0; i < 60 && !warm; ++i) {
    testlib::RunCommand({"curl", "-s", "-o", "/dev/null", warmup});
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    json r = GetJson(b.http_port, "/api/requests?last=5m&kind=server&limit=10&endpoint=/ck" + run);
    warm = r.is_object() && !r["requests"].empty();
  }
  ASSERT_TRUE(warm) << "no warm-up request stored; agent: " << testlib::ReadFile(dir.File("agent.err")).substr(0, 3000)
                    << "\nreplica a: " << testlib::ReadFile(dir.File("a.err")).substr(0, 2000)
                    << "\nspan rows: " << clickhouse->Query("SELECT count() FROM sonde.span_chunks");
  constexpr int kRequests = 20;
  {
    std::ofstream cfg(dir.File("curl.cfg"));
    for (int i = 0; i < kRequests; ++i)
      cfg << "url = \"http://127.0.0.1:" << backend_port << "/ck" << run << "/item" << static_cast<char>('a' + i)
          << "\"\noutput = \"/dev/null\"\n";
  }
  int code = 0;
  testlib::RunCommand({"curl", "-s", "-K", dir.File("curl.cfg")}, &code);
  ASSERT_EQ(code, 0);

  // Replica b (which no agent talks to) sees every request the agent captured.
  int seen = 0;
  for (int i = 0; i < 300 && seen < kRequests; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    json r = GetJson(b.http_port, "/api/requests?last=5m&kind=server&limit=200&endpoint=/ck" + run);
    seen = 0;
    if (r.is_object())
      for (const auto& s : r["requests"])
        seen += s["comm"] == "node" && s["endpoint"].get<std::string>().find("/item") != std::string::npos ? 1 : 0;
  }
  EXPECT_EQ(seen, kRequests) << testlib::ReadFile(dir.File("agent.err")).substr(0, 3000);
  json traces = GetJson(b.http_port, "/api/traces?last=5m&service=node&limit=100&endpoint=/ck" + run + "/item");
  ASSERT_TRUE(traces.is_object());
  EXPECT_EQ(traces["traces"].size(), static_cast<size_t>(kRequests));
  if (!traces["traces"].empty()) {
    const std::string id = traces["traces"][0]["trace_id"];
    json from_a = GetJson(a.http_port, "/api/traces/" + id);
    json from_b = GetJson(b.http_port, "/api/traces/" + id);
    ASSERT_TRUE(from_a.is_object() && from_b.is_object());
    EXPECT_EQ(from_a["span_count"], from_b["span_count"]);
    EXPECT_GE(from_b["span_count"].get<int>(), 1);
  }
  agent.Stop(std::chrono::milliseconds(15000));
  backend.Stop();
  a.process.Stop();
  b.process.Stop();
}

}  // namespace
}  // namespace sonde
