// Redaction for every source (issue #17), end to end with real processes:
//   curl --Authorization/Cookie, ?token=&apikey=--> nginx
//   sonde-agent run (socket capture: S spans and the request log; packet
//     capture with --network-spans: N spans; OTLP/HTTP receiver: A spans
//     whose attributes hold the same secrets) --gRPC--> sonde-server (SQLite)
// Each secret value is unique to the run. The test first proves every source
// delivered its span of this run (the request path, with the parameter that
// is not a secret), then that no secret value is anywhere in what the API
// returns (trace search, every trace, request log with records) nor in what
// the store holds (every stored span and record, read back through the
// storage interface after the server stopped).
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/store/storage.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace fs = std::filesystem;

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

class RedactionE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    SONDE_REQUIRE_ROOT();
    SONDE_REQUIRE(testlib::CommandExists("curl"), "curl");
    SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
    std::random_device rd;
    for (int i = 0; i < 10; ++i) run_ += static_cast<char>('a' + rd() % 26);
    secrets_ = {"authz" + run_, "cookie" + run_, "token" + run_, "apikey" + run_,
                "otlpauthz" + run_, "otlpcookie" + run_, "otlptoken" + run_, "otlpapikey" + run_};
    nginx_port_ = testlib::FreeTcpPort();
    grpc_port_ = testlib::FreeTcpPort();
    http_port_ = testlib::FreeTcpPort();
    otlp_http_port_ = testlib::FreeTcpPort();
    otlp_grpc_port_ = testlib::FreeTcpPort();
    metrics_port_ = testlib::FreeTcpPort();
  }

  json Get(const std::string& path, std::string* raw) {
    httplib::Client c("127.0.0.1", http_port_);
    c.set_read_timeout(30, 0);
    auto r = c.Get(path.c_str());
    if (!r || r->status != 200) return json();
    if (raw != nullptr) *raw += r->body;
    return json::parse(r->body, nullptr, false);
  }

  // Spans of this run by source letter, from the request log (S, N) and the
  // traces (A spans are in traces, not in the request log); every answer
  // body is appended to `raw`.
  std::map<std::string, json> SpansOfThisRun(std::string* raw, int* traces_read = nullptr) {
    std::map<std::string, json> out;
    auto collect = [&](const json& list) {
      for (const auto& s : list) {
        if (s.dump().find("redact-" + run_) != std::string::npos) out[s.value("source", "")] = s;
      }
    };
    json log = Get("/api/requests?last=1h&limit=5000&endpoint=redact-" + run_, raw);
    if (log.is_object()) collect(log["requests"]);
    json traces = Get("/api/traces?last=1h&limit=1000&endpoint=redact-" + run_, raw);
    if (!traces.is_object()) return out;
    for (const auto& t : traces["traces"]) {
      json trace = Get("/api/traces/" + t["trace_id"].get<std::string>(), raw);
      if (!trace.is_object()) continue;
      if (traces_read != nullptr) ++*traces_read;
      collect(trace["spans"]);
    }
    return out;
  }

  std::string run_;
  std::vector<std::string> secrets_;
  int nginx_port_ = 0, grpc_port_ = 0, http_port_ = 0, otlp_http_port_ = 0, otlp_grpc_port_ = 0,
      metrics_port_ = 0;
  testlib::TempDir dir_{"sonde-redaction"};
};

TEST_F(RedactionE2E, NoSecretReachesTheServerFromAnySource) {
  const std::string data_dir = dir_.File("data");
  testlib::Subprocess server = testlib::Subprocess::Start(
      {testlib::ServerBinary(), "--data-dir", data_dir, "--grpc-listen", "127.0.0.1:" + std::to_string(grpc_port_),
       "--http-listen", "127.0.0.1:" + std::to_string(http_port_)},
      dir_.File("server.log"), dir_.File("server.log"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", http_port_, 10s)) << testlib::ReadFile(dir_.File("server.log"));

  testlib::Nginx nginx("server { listen 127.0.0.1:" + std::to_string(nginx_port_) +
                           "; location / { return 200 \"ok\\n\"; } }",
                       nginx_port_);
  ASSERT_TRUE(nginx.ok());

  const std::string ready = dir_.File("agent.ready");
  testlib::Subprocess agent = testlib::Subprocess::Start(
      {testlib::AgentBinary(), "run", "--server", "127.0.0.1:" + std::to_string(grpc_port_), "--ready-file", ready,
       "--span-rate-limit", "0", "--port", std::to_string(nginx_port_), "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port_),
       "--packet-capture", "--network-spans", "--capture-interfaces", "lo", "--capture-ports",
       std::to_string(nginx_port_), "--otlp-bind", "127.0.0.1", "--otlp-http-port", std::to_string(otlp_http_port_),
       "--otlp-grpc-port", std::to_string(otlp_grpc_port_)},
      dir_.File("agent.log"), dir_.File("agent.log"));
  ASSERT_TRUE(testlib::WaitForFile(ready, 60s)) << testlib::ReadFile(dir_.File("agent.log"));
  std::this_thread::sleep_for(1s);

  // S, N and the request log: a real client with the secrets in headers and query.
  const std::string url = "http://127.0.0.1:" + std::to_string(nginx_port_) + "/redact-" + run_ +
                          "?token=" + secrets_[2] + "&apikey=" + secrets_[3] + "&page=2";
  for (int i = 0; i < 3; ++i) {
    int code = -1;
    testlib::RunCommand({"curl", "-sS", "-o", "/dev/null", "-H", "Authorization: Bearer " + secrets_[0], "-H",
                         "Cookie: session=" + secrets_[1], url},
                        &code);
    ASSERT_EQ(code, 0);
  }
  // A: an OTLP span whose attributes carry the same kinds of secrets.
  const std::string trace_id = "7e" + std::string(30, '1');
  const int64_t now_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  json otlp = {{"resourceSpans",
                {{{"resource", {{"attributes", {{{"key", "service.name"}, {"value", {{"stringValue", "shop"}}}}}}}},
                  {"scopeSpans",
                   {{{"spans",
                      {{{"traceId", trace_id},
                        {"spanId", "2222222222222222"},
                        {"name", "GET /redact-" + run_},
                        {"kind", 2},
                        {"startTimeUnixNano", std::to_string(now_ns)},
                        {"endTimeUnixNano", std::to_string(now_ns + 1'000'000)},
                        {"attributes",
                         {{{"key", "http.request.method"}, {"value", {{"stringValue", "GET"}}}},
                          {{"key", "url.path"}, {"value", {{"stringValue", "/redact-" + run_}}}},
                          {{"key", "url.query"},
                           {"value", {{"stringValue", "token=" + secrets_[6] + "&apikey=" + secrets_[7] + "&page=2"}}}},
                          {{"key", "url.full"},
                           {"value",
                            {{"stringValue", "http://shop/redact-" + run_ + "?token=" + secrets_[6] + "&page=2"}}}},
                          {{"key", "http.request.header.authorization"},
                           {"value", {{"arrayValue", {{"values", {{{"stringValue", "Bearer " + secrets_[4]}}}}}}}}},
                          {{"key", "http.request.header.cookie"},
                           {"value", {{"stringValue", "session=" + secrets_[5]}}}}}}}}}}}}}}}};
  {
    httplib::Client c("127.0.0.1", otlp_http_port_);
    auto r = c.Post("/v1/traces", otlp.dump(), "application/json");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
  }

  // Every source delivered this run's span (else the absence of secrets proves nothing).
  std::map<std::string, json> spans;
  ASSERT_TRUE(WaitFor([&] {
    spans = SpansOfThisRun(nullptr);
    return spans.count("S") && spans.count("N") && spans.count("A");
  }, 60s)) << "sources seen: " << [&] {
    std::string s;
    for (const auto& [k, v] : spans) s += k + " ";
    return s;
  }() << "\nagent log: " << testlib::ReadFile(dir_.File("agent.log")).substr(0, 3000);
  std::this_thread::sleep_for(2s);  // the other spans of the exchanges

  // Everything the API answers: trace search, every trace of this run, request log + records.
  std::string api;
  int traces_read = 0;
  spans = SpansOfThisRun(&api, &traces_read);
  EXPECT_GE(traces_read, 2);
  EXPECT_EQ(spans.size(), 3u);
  EXPECT_NE(api.find("page=2"), std::string::npos);      // the query is kept, scrubbed by name
  EXPECT_NE(api.find("[REDACTED]"), std::string::npos);  // values replaced, keys kept
  for (const auto& secret : secrets_) EXPECT_EQ(api.find(secret), std::string::npos) << secret << " in the API";

  // What the store holds, read back after the server stopped.
  server.Stop();
  server::StorageOptions o;
  o.path = (fs::path(data_dir) / "sonde.db").string();
  auto store = server::OpenStorage(o);
  ASSERT_TRUE(store.ok()) << store.status();
  std::string stored;
  size_t stored_spans = 0;
  server::TraceQuery tq;
  tq.limit = 1000;
  tq.self.include = true;
  auto found = (*store)->SearchTraces(tq);
  ASSERT_TRUE(found.ok()) << found.status();
  for (const auto& t : *found) {
    std::string raw_id;
    ASSERT_TRUE(server::HexDecode(t.trace_id, &raw_id));
    auto trace = (*store)->Trace(raw_id);
    ASSERT_TRUE(trace.ok());
    for (const auto& s : *trace) {
      stored += s.span.SerializeAsString();
      ++stored_spans;
    }
  }
  server::RequestLogQuery rq;
  rq.limit = 100000;
  rq.self.include = true;
  auto log = (*store)->RequestLog(rq);
  ASSERT_TRUE(log.ok());
  for (const auto& s : *log) stored += s.span.SerializeAsString();
  auto records = (*store)->RequestRecords(rq);
  ASSERT_TRUE(records.ok());
  for (const auto& r : *records) stored += r.SerializeAsString();
  std::printf("run %s: sources S, N, A delivered; %d traces and %zu API bytes, %zu stored spans and %zu records "
              "(%zu bytes) searched for %zu secrets\n",
              run_.c_str(), traces_read, api.size(), stored_spans, records->size(), stored.size(), secrets_.size());
  EXPECT_NE(stored.find("redact-" + run_), std::string::npos);
  for (const auto& secret : secrets_) EXPECT_EQ(stored.find(secret), std::string::npos) << secret << " in the store";
}

}  // namespace
}  // namespace sonde
