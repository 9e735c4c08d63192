// HTTP/2 and gRPC reconstruction with real processes and the real kernel.
//
// Each scenario runs twice:
//  - Agent:     `sonde-agent run` (the full pipeline) as a subprocess, its
//               JSON lines parsed into records;
//  - InProcess: the agent's own capture library (BPF socket capture) drained
//               in this process into the ConnectionTracker + protocol
//               sessions, i.e. everything below the span pipeline.
// Ground truth is what the clients report (h2load's status counts, the gRPC
// client's per-call status and message counts).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent/capture/socket_capture.h"
#include "agent/conn/tracker.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

namespace fs = std::filesystem;
using testlib::Subprocess;

// One exchange as the test sees it, whichever way it was obtained.
struct Rec {
  std::string protocol;  // "http2" | "grpc"
  std::string method, path, service, rpc_method;
  int status = 0;
  int grpc_status = -1;
  int64_t request_messages = -1, response_messages = -1;
  int local_port = 0;
  std::string role;  // "server" | "client" | ""
  bool late_join = false;
};

enum class Mode { kAgent, kInProcess };
std::string ModeName(Mode m) { return m == Mode::kAgent ? "Agent" : "InProcess"; }

// ---- extracting records from `sonde-agent run` JSON lines -----------------
// The pipeline's schema is owned elsewhere; this accepts the shapes it may
// take: fields at the top level, under "record", or OTel-style attributes
// (a map or a list of {key, value}).
const nlohmann::json* Field(const nlohmann::json& j, std::initializer_list<const char*> names) {
  auto lookup = [&](const nlohmann::json& o) -> const nlohmann::json* {
    if (!o.is_object()) return nullptr;
    for (const char* n : names) {
      auto it = o.find(n);
      if (it != o.end() && !it->is_null()) return &*it;
    }
    return nullptr;
  };
  if (const auto* v = lookup(j)) return v;
  for (const char* nested : {"record", "span", "l7", "attributes", "conn", "connection"}) {
    auto it = j.find(nested);
    if (it == j.end()) continue;
    if (const auto* v = lookup(*it)) return v;
    if (it->is_array()) {  // [{key, value}]
      for (const auto& kv : *it) {
        if (!kv.is_object() || !kv.contains("key")) continue;
        for (const char* n : names) {
          if (kv["key"] == n && kv.contains("value")) {
            const auto& v = kv["value"];
            if (v.is_object() && !v.empty()) return &v.begin().value();  // {"stringValue": ...}
            return &v;
          }
        }
      }
    }
  }
  return nullptr;
}
std::string Str(const nlohmann::json* v) {
  if (v == nullptr) return "";
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number()) return std::to_string(v->get<int64_t>());
  return "";
}
int64_t Int(const nlohmann::json* v, int64_t dflt) {
  if (v == nullptr) return dflt;
  if (v->is_number()) return v->get<int64_t>();
  if (v->is_string()) {
    try {
      return std::stoll(v->get<std::string>());
    } catch (...) {
      return dflt;
    }
  }
  return dflt;
}

std::vector<Rec> ParseAgentOutput(const std::string& path) {
  std::vector<Rec> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) continue;
    Rec r;
    r.protocol = Str(Field(j, {"protocol", "l7_protocol", "network.protocol.name"}));
    const std::string rpc_system = Str(Field(j, {"rpc.system.name", "rpc.system", "rpc_system"}));
    if (rpc_system == "grpc") r.protocol = "grpc";
    const std::string version = Str(Field(j, {"version", "network.protocol.version"}));
    if (r.protocol != "grpc" && r.protocol != "http2" && !(r.protocol == "http" && version == "2")) {
      continue;
    }
    if (r.protocol == "http") r.protocol = "http2";
    r.method = Str(Field(j, {"method", "http.request.method"}));
    r.path = Str(Field(j, {"path", "url.path"}));
    r.status = static_cast<int>(Int(Field(j, {"http_status", "http.response.status_code"}), 0));
    r.service = Str(Field(j, {"rpc_service", "rpc.service"}));
    r.rpc_method = Str(Field(j, {"rpc_method", "rpc.method"}));
    // Current conventions: rpc.method is "pkg.Service/Method", no rpc.service.
    if (const size_t slash = r.rpc_method.rfind('/'); r.service.empty() && slash != std::string::npos) {
      r.service = r.rpc_method.substr(0, slash);
      r.rpc_method = r.rpc_method.substr(slash + 1);
    }
    r.grpc_status = static_cast<int>(Int(Field(j, {"grpc_status", "rpc.grpc.status_code"}), -1));
    r.request_messages =
        Int(Field(j, {"request_messages", "sonde.rpc.request_messages"}), -1);
    r.response_messages =
        Int(Field(j, {"response_messages", "sonde.rpc.response_messages"}), -1);
    r.local_port = static_cast<int>(Int(Field(j, {"local_port", "sport"}), 0));
    if (r.local_port == 0) {  // "local": "127.0.0.1:8080"
      const std::string local = Str(Field(j, {"local"}));
      const size_t colon = local.rfind(':');
      if (colon != std::string::npos) r.local_port = std::atoi(local.c_str() + colon + 1);
    }
    r.role = Str(Field(j, {"role"}));
    const std::string kind = Str(Field(j, {"kind", "span.kind"}));
    if (r.role.empty() && (kind == "SERVER" || kind == "server" || kind == "2")) r.role = "server";
    if (r.role.empty() && (kind == "CLIENT" || kind == "client" || kind == "3")) r.role = "client";
    const auto* flags = Field(j, {"flags", "sonde.record.flags"});
    r.late_join = (flags != nullptr && flags->is_number() &&
                   (flags->get<uint32_t>() & protocols::kRecordLateJoin) != 0) ||
                  Str(Field(j, {"late_join"})) == "true" ||
                  (Field(j, {"late_join"}) != nullptr && *Field(j, {"late_join"}) == true);
    out.push_back(std::move(r));
  }
  return out;
}

// ---- the capture library + tracker, in this process ---------------------------
Rec FromConnRecord(const conn::ConnRecord& cr) {
  const auto& l7 = cr.record;
  Rec r;
  r.protocol = std::string(protocols::L7ProtocolName(l7.protocol));
  r.method = l7.method;
  r.path = l7.path;
  r.status = l7.status;
  r.service = l7.rpc_service;
  r.rpc_method = l7.rpc_method;
  r.grpc_status = l7.grpc_status;
  r.request_messages = l7.request_messages;
  r.response_messages = l7.response_messages;
  r.local_port = cr.conn.tuple.sport;
  r.role = cr.conn.role == protocols::Role::kServer   ? "server"
           : cr.conn.role == protocols::Role::kClient ? "client"
                                                      : "";
  r.late_join = (l7.flags & protocols::kRecordLateJoin) != 0;
  return r;
}

class InProcessCapture {
 public:
  explicit InProcessCapture(const std::vector<int>& ports) {
    capture::SocketCaptureOptions options;
    options.capture_bytes = 16384;
    for (int p : ports) options.filter.include_ports.push_back(static_cast<uint16_t>(p));
    auto c = capture::SocketCapture::Create(options);
    if (!c.ok()) {
      error_ = c.status().ToString();
      return;
    }
    capture_ = std::move(*c);
    thread_ = std::thread([this] {
      while (!stop_.load()) Drain(50);
    });
  }
  ~InProcessCapture() { Join(); }
  bool ok() const { return capture_ != nullptr; }
  const std::string& error() const { return error_; }

  std::vector<Rec> StopAndCollect() {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    Join();
    if (capture_ != nullptr) Drain(0);
    tracker_.CloseAll(records_);
    const auto c = tracker_.counters();
    std::printf("tracker: %llu events, %llu records, gaps %llu bytes, protocol parse errors %llu, "
                "resyncs %llu, late-join records %llu\n",
                static_cast<unsigned long long>(c.events),
                static_cast<unsigned long long>(c.records),
                static_cast<unsigned long long>(c.gap_bytes),
                static_cast<unsigned long long>(c.protocol.parse_errors),
                static_cast<unsigned long long>(c.protocol.resyncs),
                static_cast<unsigned long long>(c.protocol.late_join));
    std::vector<Rec> out;
    for (const auto& cr : records_) {
      if (cr.record.protocol == protocols::L7Protocol::kHttp2 ||
          cr.record.protocol == protocols::L7Protocol::kGrpc) {
        out.push_back(FromConnRecord(cr));
      }
    }
    return out;
  }

 private:
  void Drain(int timeout_ms) {
    (void)capture_->Poll(timeout_ms, [this](capture::RawEvent ev) { tracker_.OnEvent(ev, records_); });
  }
  void Join() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }

  std::unique_ptr<capture::SocketCapture> capture_;
  std::string error_;
  conn::ConnectionTracker tracker_;
  std::vector<conn::ConnRecord> records_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// ---- the agent under test ---------------------------------------------------
class AgentUnderTest {
 public:
  AgentUnderTest(Mode mode, const testlib::TempDir& dir, const std::vector<int>& ports)
      : mode_(mode), dir_(dir) {
    if (mode == Mode::kInProcess) {
      in_process_ = std::make_unique<InProcessCapture>(ports);
      ready_ = in_process_->ok();
      return;
    }
    std::vector<std::string> argv = {testlib::AgentBinary(), "run"};
    for (int p : ports) argv.insert(argv.end(), {"--port", std::to_string(p)});
    argv.insert(argv.end(), {"--payload-bytes", "16384", "--ready-file", dir.File("agent.ready")});
    process_ = Subprocess::Start(argv, dir.File("agent.out"), dir.File("agent.err"));
    ready_ = testlib::WaitForFile(dir.File("agent.ready"), std::chrono::seconds(30));
  }
  bool ready() const { return ready_; }
  std::string stderr_text() const {
    return in_process_ ? in_process_->error() : testlib::ReadFile(dir_.File("agent.err"));
  }

  std::vector<Rec> StopAndCollect() {
    if (in_process_) return in_process_->StopAndCollect();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the ring buffer drain
    const int code = process_.Stop(std::chrono::milliseconds(15000));
    EXPECT_EQ(code, 0) << stderr_text();
    return ParseAgentOutput(dir_.File("agent.out"));
  }

 private:
  Mode mode_;
  const testlib::TempDir& dir_;
  Subprocess process_;
  std::unique_ptr<InProcessCapture> in_process_;
  bool ready_ = false;
};

bool AgentRunAvailable() {
  int code = -1;
  testlib::RunCommand({testlib::AgentBinary(), "run", "--help"}, &code);
  return code == 0;
}

// The Node packages, installed once per build tree with `npm ci`.
std::string NodeDir() {
  static const std::string dir = [] {
    const fs::path src = fs::path(SONDE_SOURCE_DIR) / "tests/kernel/http2/node";
    const fs::path dst = fs::path(SONDE_BINARY_DIR) / "tests/kernel/http2/node";
    fs::create_directories(dst);
    for (const char* f : {"package.json", "package-lock.json", "echo.proto", "server.js",
                          "client.js"}) {
      fs::copy_file(src / f, dst / f, fs::copy_options::overwrite_existing);
    }
    if (!fs::exists(dst / "node_modules/@grpc/grpc-js/package.json")) {
      int code = -1;
      testlib::RunCommand({"npm", "ci", "--prefix", dst.string(), "--no-audit", "--no-fund",
                           "--loglevel=error"},
                          &code);
      if (code != 0) return std::string();
    }
    return dst.string();
  }();
  return dir;
}

class Http2Kernel : public ::testing::TestWithParam<Mode> {
 protected:
  void SetUp() override {
    SONDE_REQUIRE_ROOT();
    if (GetParam() == Mode::kAgent) {
      SONDE_REQUIRE(access(testlib::AgentBinary().c_str(), X_OK) == 0, "sonde-agent binary");
      SONDE_REQUIRE(AgentRunAvailable(),
                    "`sonde-agent run` (the record/span pipeline) is not in this build yet");
    }
  }
  void RequireNode() {
    SONDE_REQUIRE(testlib::CommandExists("node") && testlib::CommandExists("npm"), "node + npm");
    SONDE_REQUIRE(!NodeDir().empty(), "npm ci of tests/kernel/http2/node");
  }
};

// ---- h2load against nginx ---------------------------------------------------------

std::map<std::string, int> ParseH2loadStatus(const std::string& out) {
  std::map<std::string, int> counts;
  std::smatch m;
  const std::regex re(
      R"(status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx)");
  if (std::regex_search(out, m, re)) {
    counts["2xx"] = std::stoi(m[1]);
    counts["3xx"] = std::stoi(m[2]);
    counts["4xx"] = std::stoi(m[3]);
    counts["5xx"] = std::stoi(m[4]);
  }
  return counts;
}

TEST_P(Http2Kernel, H2loadAgainstNginxCountsPerStatus) {
  SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
  SONDE_REQUIRE(testlib::CommandExists("h2load"), "h2load (nghttp2-client)");
  const int port = testlib::FreeTcpPort();
  testlib::Nginx nginx("server { listen 127.0.0.1:" + std::to_string(port) +
                           " http2;\n"
                           "  location /ok { return 200 \"ok\\n\"; }\n"
                           "  location /missing { return 404; }\n"
                           "  location /broken { return 503; }\n"
                           "  location /created { return 201 \"made\"; }\n}\n",
                       port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());
  testlib::TempDir dir("sonde-h2");
  AgentUnderTest agent(GetParam(), dir, {port});
  ASSERT_TRUE(agent.ready()) << agent.stderr_text();

  const std::string base = "http://127.0.0.1:" + std::to_string(port);
  // 2 connections x 200 streams, 10 concurrent streams per connection.
  int code = -1;
  const std::string out = testlib::RunCommand(
      {"h2load", "-n", "400", "-c", "2", "-m", "10", base + "/ok", base + "/missing",
       base + "/broken", base + "/created"},
      &code);
  ASSERT_EQ(code, 0) << out;
  const auto expected = ParseH2loadStatus(out);
  ASSERT_EQ(expected.size(), 4u) << out;
  ASSERT_EQ(expected.at("2xx") + expected.at("4xx") + expected.at("5xx"), 400) << out;

  const auto records = agent.StopAndCollect();
  std::map<std::string, int> got;
  std::map<std::string, int> paths;
  for (const Rec& r : records) {
    if (r.protocol != "http2" || r.local_port != port) continue;  // nginx's side
    if (r.status >= 100) got[std::to_string(r.status / 100) + "xx"]++;
    paths[r.path]++;
    EXPECT_EQ(r.method, "GET");
  }
  EXPECT_EQ(got["2xx"], expected.at("2xx")) << out;
  EXPECT_EQ(got["3xx"], expected.at("3xx"));
  EXPECT_EQ(got["4xx"], expected.at("4xx"));
  EXPECT_EQ(got["5xx"], expected.at("5xx"));
  for (const char* p : {"/ok", "/missing", "/broken", "/created"}) EXPECT_EQ(paths[p], 100) << p;
}

// ---- gRPC -------------------------------------------------------------------------------

struct Call {
  std::string method;
  int code = 0;
  int sent = 0, received = 0;
};
std::vector<Call> ParseCalls(const std::string& out) {
  std::vector<Call> calls;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("method")) continue;
    calls.push_back(Call{j["method"], j["code"], j["sent"], j["received"]});
  }
  return calls;
}

class GrpcServer {
 public:
  explicit GrpcServer(const testlib::TempDir& dir) : port_(testlib::FreeTcpPort()) {
    process_ = Subprocess::Start({"node", NodeDir() + "/server.js", std::to_string(port_)},
                                 dir.File("server.out"), dir.File("server.err"));
    ok_ = testlib::WaitForTcpPort("127.0.0.1", port_, std::chrono::seconds(20));
  }
  int port() const { return port_; }
  bool ok() const { return ok_; }

 private:
  int port_;
  Subprocess process_;
  bool ok_ = false;
};

// Every client call must appear once among `records` at `port` (server side)
// with the right service, method, status and message counts.
void ExpectCallsRecorded(const std::vector<Call>& calls, const std::vector<Rec>& records, int port,
                         const std::string& where) {
  std::vector<Rec> seen;
  for (const Rec& r : records) {
    if (r.protocol == "grpc" && r.local_port == port) seen.push_back(r);
  }
  EXPECT_EQ(seen.size(), calls.size()) << where;
  for (const Call& c : calls) {
    auto it = std::find_if(seen.begin(), seen.end(), [&](const Rec& r) {
      return r.rpc_method == c.method && r.grpc_status == c.code &&
             r.request_messages == c.sent && r.response_messages == c.received;
    });
    ASSERT_NE(it, seen.end()) << where << ": no record for " << c.method << " code=" << c.code
                              << " sent=" << c.sent << " received=" << c.received;
    EXPECT_EQ(it->service, "sonde.test.Echo");
    EXPECT_EQ(it->method, "POST");
    EXPECT_EQ(it->path, "/sonde.test.Echo/" + c.method);
    EXPECT_EQ(it->status, 200);
    seen.erase(it);
  }
}

constexpr const char* kPlan = "unary,unary,fail,stream:5,bidi:4,other,stream:1";

TEST_P(Http2Kernel, GrpcDirect) {
  RequireNode();
  testlib::TempDir dir("sonde-grpc");
  GrpcServer server(dir);
  ASSERT_TRUE(server.ok()) << testlib::ReadFile(dir.File("server.err"));
  AgentUnderTest agent(GetParam(), dir, {server.port()});
  ASSERT_TRUE(agent.ready()) << agent.stderr_text();
  int code = -1;
  const std::string out = testlib::RunCommand(
      {"node", NodeDir() + "/client.js", "127.0.0.1:" + std::to_string(server.port()), kPlan},
      &code);
  ASSERT_EQ(code, 0) << out;
  const auto calls = ParseCalls(out);
  ASSERT_EQ(calls.size(), 7u) << out;
  EXPECT_EQ(calls[2].code, 5);  // NOT_FOUND
  ExpectCallsRecorded(calls, agent.StopAndCollect(), server.port(), "grpc server");
}

TEST_P(Http2Kernel, GrpcThroughNginxGrpcPass) {
  RequireNode();
  SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
  testlib::TempDir dir("sonde-grpc-nginx");
  GrpcServer server(dir);
  ASSERT_TRUE(server.ok()) << testlib::ReadFile(dir.File("server.err"));
  const int port = testlib::FreeTcpPort();
  testlib::Nginx nginx("server { listen 127.0.0.1:" + std::to_string(port) +
                           " http2;\n  location / { grpc_pass grpc://127.0.0.1:" +
                           std::to_string(server.port()) + "; }\n}\n",
                       port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());
  AgentUnderTest agent(GetParam(), dir, {port, server.port()});
  ASSERT_TRUE(agent.ready()) << agent.stderr_text();
  int code = -1;
  const std::string out = testlib::RunCommand(
      {"node", NodeDir() + "/client.js", "127.0.0.1:" + std::to_string(port), kPlan}, &code);
  ASSERT_EQ(code, 0) << out;
  const auto calls = ParseCalls(out);
  ASSERT_EQ(calls.size(), 7u) << out;
  const auto records = agent.StopAndCollect();
  ExpectCallsRecorded(calls, records, port, "nginx ingress");
  ExpectCallsRecorded(calls, records, server.port(), "grpc backend behind nginx");
}

TEST_P(Http2Kernel, GrpcLateJoinConnectionOlderThanAgent) {
  RequireNode();
  testlib::TempDir dir("sonde-grpc-late");
  GrpcServer server(dir);
  ASSERT_TRUE(server.ok()) << testlib::ReadFile(dir.File("server.err"));
  // The client opens its connection and makes calls before the agent runs,
  // then waits for the go file and calls again on the same connection.
  const std::string plan = "unary,other,stream:3,bidi:2,unary,fail";
  auto client = Subprocess::Start({"node", NodeDir() + "/client.js",
                                   "127.0.0.1:" + std::to_string(server.port()), plan,
                                   dir.File("go"), dir.File("client.ready")},
                                  dir.File("client.out"), dir.File("client.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("client.ready"), std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("client.err"));
  AgentUnderTest agent(GetParam(), dir, {server.port()});
  ASSERT_TRUE(agent.ready()) << agent.stderr_text();
  std::ofstream(dir.File("go")) << "go";
  ASSERT_EQ(client.Wait(std::chrono::seconds(30)), 0) << testlib::ReadFile(dir.File("client.err"));
  const auto calls = ParseCalls(testlib::ReadFile(dir.File("client.out")));
  ASSERT_EQ(calls.size(), 12u);
  const auto records = agent.StopAndCollect();
  // Only the second half happened while the agent ran.
  std::vector<Rec> seen;
  for (const Rec& r : records) {
    if (r.local_port == server.port() && (r.protocol == "grpc" || r.protocol == "http2")) {
      seen.push_back(r);
    }
  }
  ASSERT_EQ(seen.size(), 6u);
  std::map<std::string, int> by_path;
  for (const Rec& r : seen) {
    EXPECT_EQ(r.method, "POST");
    by_path[r.path]++;
    EXPECT_TRUE(r.late_join);
    if (r.protocol == "grpc") {
      EXPECT_EQ(r.service, "sonde.test.Echo");
    }
  }
  EXPECT_EQ(by_path["/sonde.test.Echo/Unary"], 3);
  EXPECT_EQ(by_path["/sonde.test.Echo/Other"], 1);
  EXPECT_EQ(by_path["/sonde.test.Echo/ServerStream"], 1);
  EXPECT_EQ(by_path["/sonde.test.Echo/Bidi"], 1);
}

INSTANTIATE_TEST_SUITE_P(Modes, Http2Kernel, ::testing::Values(Mode::kAgent, Mode::kInProcess),
                         [](const ::testing::TestParamInfo<Mode>& p) { return ModeName(p.param); });

}  // namespace
}  // namespace sonde
