// Two nodes on one machine: network namespaces "node A" (a Node.js client)
// and "node B" (a Node.js server) joined by veth. Each node has its own
// sonde-agent (one traces only the client's pid, the other only the
// server's), both ship to one sonde-server. No trace header is sent. Neither
// agent sees both ends, so only the server's join across agents can make each
// request one trace. One agent is stopped (SIGSTOP) while the requests run
// and resumed 20 s (server side late) or 5 s (client side late) later, so
// its spans arrive that much after the other agent's.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/testlib/process.h"

namespace sonde {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testlib::Subprocess;

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

class TwoNodes {
 public:
  explicit TwoNodes(const std::string& tag) : ns_a_("sdxa" + tag), ns_b_("sdxb" + tag) {
    const int net = static_cast<int>(getpid() % 200);
    ip_a_ = "10.232." + std::to_string(net) + ".1";
    ip_b_ = "10.232." + std::to_string(net) + ".2";
    const std::string v = "sdxv" + tag;
    int rc = 0;
    testlib::RunCommand({"sh", "-c",
                         "set -e; ip netns add " + ns_a_ + "; ip netns add " + ns_b_ + "; ip link add " + v +
                             "a type veth peer name " + v + "b; ip link set " + v + "a netns " + ns_a_ +
                             "; ip link set " + v + "b netns " + ns_b_ + "; ip -n " + ns_a_ + " addr add " + ip_a_ +
                             "/24 dev " + v + "a; ip -n " + ns_b_ + " addr add " + ip_b_ + "/24 dev " + v +
                             "b; ip -n " + ns_a_ + " link set " + v + "a up; ip -n " + ns_b_ + " link set " + v +
                             "b up; ip -n " + ns_a_ + " link set lo up; ip -n " + ns_b_ + " link set lo up"},
                        &rc);
    ok_ = rc == 0;
  }
  ~TwoNodes() {
    testlib::RunCommand({"ip", "netns", "del", ns_a_});
    testlib::RunCommand({"ip", "netns", "del", ns_b_});
  }
  bool ok() const { return ok_; }
  std::string ns_a_, ns_b_, ip_a_, ip_b_;
  bool ok_ = false;
};

class TraceJoinE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    SONDE_REQUIRE_ROOT();
    SONDE_REQUIRE(testlib::CommandExists("node") && testlib::CommandExists("ip"), "node and iproute2");
    std::random_device rd;
    for (int i = 0; i < 8; ++i) run_ += static_cast<char>('a' + rd() % 26);
    start_ms_ = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  }

  json Get(const std::string& path) {
    httplib::Client c("127.0.0.1", http_port_);
    c.set_read_timeout(30, 0);
    auto r = c.Get(path.c_str());
    if (!r || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }

  // Spans of this round's paths, by url.path.
  std::map<std::string, std::vector<json>> SpansByPath(const std::string& prefix) {
    std::map<std::string, std::vector<json>> out;
    json j = Get("/api/requests?endpoint=" + prefix + "&limit=5000&from=" + std::to_string(start_ms_));
    if (!j.is_object()) return out;
    for (const auto& s : j["requests"]) {
      if (s["source"] != "S") continue;
      out[s["attributes"].value("url.path", "")].push_back(s);
    }
    return out;
  }

  // Runs one round of `n` requests with agent `late` stopped while they run
  // and resumed `delay` after them; checks every request is one trace.
  void Round(const std::string& name, int n, Subprocess& late, std::chrono::seconds delay) {
    const std::string prefix = "/xnode/" + run_ + "/" + name;
    std::filesystem::remove(done_);
    ASSERT_EQ(kill(late.pid(), SIGSTOP), 0);
    {
      std::ofstream(go_ + ".tmp") << prefix << " " << n << "\n";
      std::filesystem::rename(go_ + ".tmp", go_);
    }
    ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(done_); }, 60s)) << "client did not finish";
    EXPECT_EQ(testlib::ReadFile(done_), std::to_string(n));
    // The other agent ships now; the stopped one only after `delay`.
    const auto on_time_side = [&] {
      size_t spans = 0;
      for (const auto& [path, v] : SpansByPath(prefix)) spans += v.size();
      return spans >= static_cast<size_t>(n);
    };
    EXPECT_TRUE(WaitFor(on_time_side, 20s)) << name << ": the on-time agent's spans did not arrive";
    std::this_thread::sleep_for(delay);
    ASSERT_EQ(kill(late.pid(), SIGCONT), 0);
    const auto both_sides = [&] {
      size_t spans = 0;
      for (const auto& [path, v] : SpansByPath(prefix)) spans += v.size();
      return spans >= static_cast<size_t>(2 * n);
    };
    EXPECT_TRUE(WaitFor(both_sides, 30s)) << name << ": the late agent's spans did not arrive";

    auto by_path = SpansByPath(prefix);
    EXPECT_EQ(by_path.size(), static_cast<size_t>(n));
    int one_trace = 0;
    std::string sample_trace;
    for (const auto& [path, spans] : by_path) {
      std::set<std::string> traces, kinds;
      for (const auto& s : spans) {
        traces.insert(s["trace_id"]);
        kinds.insert(s["kind"]);
      }
      EXPECT_EQ(spans.size(), 2u) << path;
      EXPECT_EQ(kinds.size(), 2u) << path << ": client and server side";
      EXPECT_EQ(traces.size(), 1u) << path << ": one trace";
      if (spans.size() == 2 && traces.size() == 1) {
        ++one_trace;
        sample_trace = *traces.begin();
      }
    }
    std::printf("%s: %d of %d requests one trace across two agents (%s late by %lld s)\n", name.c_str(),
                one_trace, n, &late == &agent_b_ ? "server side" : "client side",
                static_cast<long long>(delay.count()));
    // Search lists each joined trace once; the trace view is one tree.
    json search = Get("/api/traces?endpoint=" + prefix + "&limit=1000&from=" + std::to_string(start_ms_));
    ASSERT_TRUE(search.is_object());
    EXPECT_EQ(search["traces"].size(), static_cast<size_t>(n)) << name;
    ASSERT_FALSE(sample_trace.empty());
    json trace = Get("/api/traces/" + sample_trace);
    ASSERT_TRUE(trace.is_object());
    EXPECT_EQ(trace["spans"].size(), 2u) << trace.dump(1);
    EXPECT_EQ(trace["roots"].size(), 1u) << trace.dump(1);
    for (const auto& s : trace["spans"]) {
      if (s["kind"] == "server") {
        EXPECT_EQ(s["edge"], "tcp_sequence") << trace.dump(1);
      }
    }
  }

  std::string run_;
  int64_t start_ms_ = 0;
  int http_port_ = 0;
  std::string go_, done_;
  Subprocess agent_a_, agent_b_;
};

TEST_F(TraceJoinE2E, RequestAcrossTwoAgentsIsOneTraceInAnyOrderAndLate) {
  TwoNodes nodes(std::to_string(getpid() % 100000));
  ASSERT_TRUE(nodes.ok()) << "netns setup";
  testlib::TempDir dir("sonde-trace-join-e2e");
  const int grpc_port = testlib::FreeTcpPort();
  http_port_ = testlib::FreeTcpPort();
  const int app_port = testlib::FreeTcpPort();
  go_ = dir.File("go");
  done_ = dir.File("done");

  Subprocess server = Subprocess::Start(
      {SONDE_SERVER_BIN, "--data-dir", dir.File("data"), "--grpc-listen", "127.0.0.1:" + std::to_string(grpc_port),
       "--http-listen", "127.0.0.1:" + std::to_string(http_port_), "--trace-join-delay", "60s"},
      dir.File("server.log"), dir.File("server.log"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", http_port_, 10s)) << testlib::ReadFile(dir.File("server.log"));

  // Node B: the backend. Node A: the client, waiting for rounds.
  Subprocess backend = Subprocess::Start({"ip", "netns", "exec", nodes.ns_b_, "node",
                                          std::string(SONDE_SOURCE_DIR) + "/tests/kernel/trace/backend.js",
                                          std::to_string(app_port), "0.0.0.0"},
                                         dir.File("backend.log"), dir.File("backend.log"));
  Subprocess client = Subprocess::Start(
      {"ip", "netns", "exec", nodes.ns_a_, "node",
       std::string(SONDE_SOURCE_DIR) + "/tests/e2e/trace_join/join_client.js",
       "http://" + nodes.ip_b_ + ":" + std::to_string(app_port), go_, done_},
      dir.File("client.log"), dir.File("client.log"));
  int rc = 1;
  for (int i = 0; i < 50 && rc != 0; ++i) {
    testlib::RunCommand({"ip", "netns", "exec", nodes.ns_a_, "bash", "-c",
                         "exec 3<>/dev/tcp/" + nodes.ip_b_ + "/" + std::to_string(app_port)},
                        &rc);
    if (rc != 0) std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(rc, 0) << "backend not reachable";

  auto start_agent = [&](const char* name, pid_t pid) {
    const std::string ready = dir.File(std::string(name) + ".ready");
    Subprocess agent = Subprocess::Start({SONDE_AGENT_BIN, "run", "--server", "127.0.0.1:" + std::to_string(grpc_port),
                                          "--pid", std::to_string(pid), "--no-otlp", "--ready-file", ready,
                                          // Two agents (and other tests' agents): no fixed metrics port.
                                          "--metrics-listen", "127.0.0.1:" + std::to_string(testlib::FreeTcpPort())},
                                         dir.File(std::string(name) + ".log"), dir.File(std::string(name) + ".log"));
    EXPECT_TRUE(testlib::WaitForFile(ready, 30s)) << testlib::ReadFile(dir.File(std::string(name) + ".log"));
    return agent;
  };
  agent_a_ = start_agent("agent-a", client.pid());   // node A traces the client
  agent_b_ = start_agent("agent-b", backend.pid());  // node B traces the server
  std::this_thread::sleep_for(1s);

  ASSERT_NO_FATAL_FAILURE(Round("serverlate", 30, agent_b_, 20s));
  ASSERT_NO_FATAL_FAILURE(Round("clientlate", 30, agent_a_, 5s));
}

}  // namespace
}  // namespace sonde
