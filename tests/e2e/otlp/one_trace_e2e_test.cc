// One trace across application and system spans (issue #6), end to end with
// real processes on loopback:
//   curl (traceparent) --> nginx (proxy) --> Node backend (OpenTelemetry SDK,
//   http instrumentation, OTLP exporter --> the agent's OTLP receiver)
//   sonde-agent run (live BPF capture + OTLP) --gRPC--> sonde-server (SQLite)
// For every request the trace assembled by the server (GET /api/traces/{id})
// must be one tree:
//   nginx S SERVER (root; its parent is curl's span, not in the trace)
//     nginx S CLIENT            (agent: gateway link by traceparent)
//       node S SERVER           (server: same request by TCP sequence / tuple)
//         node A SERVER         (server: time nesting in the same process;
//                                still carrying curl's parent id)
#include <gtest/gtest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/e2e/otlp/node_backend.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde::otlp {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testlib::CommandExists;
using testlib::RunCommand;

std::string RandomHex(std::mt19937_64& rng, size_t bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const auto b = static_cast<uint8_t>(rng() | (i == 0 ? 1 : 0));  // never all zero
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(200ms);
  }
  return pred();
}

std::string Tail(const std::string& path, size_t n = 4000) {
  std::string s = testlib::ReadFile(path);
  return s.size() > n ? s.substr(s.size() - n) : s;
}

// The four spans of one request, found in an assembled trace (index into
// trace["spans"], -1 when absent).
struct RequestSpans {
  int nginx_server = -1, nginx_client = -1, node_server = -1, node_app = -1;
  bool complete() const { return nginx_server >= 0 && nginx_client >= 0 && node_server >= 0 && node_app >= 0; }
};

RequestSpans Find(const json& trace) {
  RequestSpans r;
  const auto& spans = trace["spans"];
  for (size_t i = 0; i < spans.size(); ++i) {
    const auto& s = spans[i];
    const int at = static_cast<int>(i);
    const std::string source = s.value("source", ""), kind = s.value("kind", ""), comm = s.value("comm", "");
    if (source == "S" && kind == "server" && comm == "nginx") r.nginx_server = at;
    if (source == "S" && kind == "client" && comm == "nginx") r.nginx_client = at;
    if (source == "S" && kind == "server" && comm == "node") r.node_server = at;
    if (source == "A" && kind == "server" && s.value("service", "") == "e2e-backend") r.node_app = at;
  }
  return r;
}

int Count(const json& trace, const std::string& source, const std::string& kind) {
  int n = 0;
  for (const auto& s : trace["spans"]) n += s.value("source", "") == source && s.value("kind", "") == kind;
  return n;
}

TEST(OneTraceE2E, NginxIngressEgressBackendSystemAndAppSpansAreOneTree) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(CommandExists("node") && CommandExists("npm"), "node and npm");
  SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
  SONDE_REQUIRE(CommandExists("curl"), "curl");
  SONDE_REQUIRE(access(testlib::ServerBinary().c_str(), X_OK) == 0, testlib::ServerBinary());
  SONDE_REQUIRE(access(testlib::AgentBinary().c_str(), X_OK) == 0, testlib::AgentBinary());
  std::string why;
  SONDE_REQUIRE(e2e::InstallNodeModules(&why), why);

  testlib::TempDir dir("sonde-one-trace");
  const int ingest_port = testlib::FreeTcpPort(), api_port = testlib::FreeTcpPort();
  const int otlp_port = testlib::FreeTcpPort(), otlp_grpc_port = testlib::FreeTcpPort();
  const int metrics_port = testlib::FreeTcpPort();
  const int backend_port = testlib::FreeTcpPort(), nginx_port = testlib::FreeTcpPort();

  // sonde-server on a fresh data dir.
  auto server = testlib::Subprocess::Start(
      {testlib::ServerBinary(), "--data-dir", dir.File("data"), "--grpc-listen",
       "127.0.0.1:" + std::to_string(ingest_port), "--http-listen", "127.0.0.1:" + std::to_string(api_port)},
      dir.File("server.out"), dir.File("server.log"));
  httplib::Client api("127.0.0.1", api_port);
  api.set_read_timeout(10, 0);
  ASSERT_TRUE(WaitFor([&] { auto r = api.Get("/api/health"); return r && r->status == 200; }, 20s))
      << Tail(dir.File("server.log"));

  // sonde-agent: live capture of the proxy's and the backend's sockets, OTLP
  // receivers on free ports, everything exported to the server.
  const std::string ready = dir.File("agent.ready");
  auto agent = testlib::Subprocess::Start(
      {testlib::AgentBinary(), "run", "--server", "127.0.0.1:" + std::to_string(ingest_port), "--no-json",
       "--ready-file", ready, "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port), "--otlp-bind",
       "127.0.0.1", "--otlp-http-port", std::to_string(otlp_port), "--otlp-grpc-port",
       std::to_string(otlp_grpc_port), "--port", std::to_string(nginx_port), "--port",
       std::to_string(backend_port)},
      dir.File("agent.out"), dir.File("agent.log"));
  ASSERT_TRUE(testlib::WaitForFile(ready, 60s)) << Tail(dir.File("agent.log"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", otlp_port, 20s)) << Tail(dir.File("agent.log"));

  // The Node SDK backend (http/protobuf exporter) behind nginx.
  auto backend = testlib::Subprocess::Start(
      {"sh", "-c", e2e::NodeBackendCommand("proto", "http://127.0.0.1:" + std::to_string(otlp_port), backend_port)},
      dir.File("backend.log"), dir.File("backend.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", backend_port, 30s)) << Tail(dir.File("backend.err"));
  testlib::Nginx nginx("upstream be { server 127.0.0.1:" + std::to_string(backend_port) +
                           "; keepalive 8; }\n"
                           "server { listen 127.0.0.1:" + std::to_string(nginx_port) + ";\n"
                           "  location / { proxy_pass http://be; proxy_http_version 1.1;\n"
                           "               proxy_set_header Connection \"\"; } }",
                       nginx_port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());

  // curl requests through nginx, each with its own trace id and parent id.
  std::mt19937_64 rng(std::random_device{}());
  std::map<std::string, std::string> parent_of_trace;  // trace id -> curl's span id
  constexpr int kRequests = 10;
  for (int i = 0; i < kRequests; ++i) {
    const std::string trace_id = RandomHex(rng, 16), parent = RandomHex(rng, 8);
    parent_of_trace[trace_id] = parent;
    int code = 0;
    const std::string status = RunCommand(
        {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "traceparent: 00-" + trace_id + "-" + parent + "-01",
         "http://127.0.0.1:" + std::to_string(nginx_port) + "/one-trace/item/" + std::to_string(i)},
        &code);
    ASSERT_EQ(status, "200") << "request " << i;
  }

  // Poll the API until every trace holds its four spans.
  std::map<std::string, json> traces;
  auto fetch_all = [&] {
    bool all = true;
    for (const auto& [trace_id, parent] : parent_of_trace) {
      auto r = api.Get(("/api/traces/" + trace_id).c_str());
      if (!r || r->status != 200) {
        all = false;
        continue;
      }
      json j = json::parse(r->body, nullptr, false);
      if (j.is_discarded()) {
        all = false;
        continue;
      }
      traces[trace_id] = j;
      all = all && Find(j).complete();
    }
    return all;
  };
  const bool arrived = WaitFor(fetch_all, 60s);
  if (!arrived) {
    ADD_FAILURE() << "not every trace holds the 4 spans after 60 s; agent log:\n"
                  << Tail(dir.File("agent.log")) << "\nbackend log:\n" << Tail(dir.File("backend.log"));
  }
  // Late duplicates would show up as extra spans: give the pipeline a moment
  // and read the final state once more.
  std::this_thread::sleep_for(2s);
  fetch_all();

  int complete = 0;
  std::map<std::string, int> app_edges;  // how each A span found its S parent (printed)
  for (const auto& [trace_id, parent] : parent_of_trace) {
    SCOPED_TRACE("trace " + trace_id);
    auto it = traces.find(trace_id);
    if (it == traces.end()) {
      ADD_FAILURE() << "trace not returned by the API";
      continue;
    }
    const json& trace = it->second;
    const json& spans = trace["spans"];
    const RequestSpans r = Find(trace);
    if (!r.complete()) {
      ADD_FAILURE() << "incomplete trace: " << trace.dump(1);
      continue;
    }
    ++complete;
    const json& ingress = spans[static_cast<size_t>(r.nginx_server)];
    const json& egress = spans[static_cast<size_t>(r.nginx_client)];
    const json& node_s = spans[static_cast<size_t>(r.node_server)];
    const json& node_a = spans[static_cast<size_t>(r.node_app)];
    const std::string dump = trace.dump(1);

    // Exactly one span of each role: no duplicate, no stray span of this trace.
    // The agent also captures curl's side of the connection to nginx (its S
    // CLIENT span), the only other span the trace may hold.
    EXPECT_EQ(Count(trace, "S", "server"), 2) << dump;
    EXPECT_EQ(Count(trace, "A", "server"), 1) << dump;
    int curl_client = -1;
    for (size_t k = 0; k < spans.size(); ++k) {
      if (spans[k].value("source", "") == "S" && spans[k].value("kind", "") == "client" &&
          spans[k].value("comm", "") == "curl")
        curl_client = static_cast<int>(k);
    }
    EXPECT_EQ(spans.size(), curl_client >= 0 ? 5u : 4u) << dump;
    EXPECT_EQ(trace.value("trace_id", ""), trace_id);
    for (const auto& s : spans) EXPECT_EQ(s.value("trace_id", ""), trace_id);

    // One tree. Its root is curl's S CLIENT span when captured (nginx's
    // ingress under it: the same request on the wire), else nginx's ingress.
    // Either way the ingress carries curl's span id from the traceparent.
    ASSERT_EQ(trace["roots"].size(), 1u) << dump;
    const int ingress_depth = curl_client >= 0 ? 1 : 0;
    if (curl_client >= 0) {
      const json& c = spans[static_cast<size_t>(curl_client)];
      EXPECT_EQ(trace["roots"][0], c["index"]) << dump;
      EXPECT_EQ(c["missing_parent"], true) << "curl's parent is not in the trace";
      EXPECT_EQ(ingress["parent_index"], c["index"]) << dump;
      const std::string e = ingress.value("edge", "");
      EXPECT_TRUE(e == "tcp_sequence" || e == "tuple") << e;
      EXPECT_EQ(ingress["missing_parent"], false);
    } else {
      EXPECT_EQ(trace["roots"][0], ingress["index"]) << dump;
      EXPECT_EQ(ingress["parent_index"], -1);
      EXPECT_EQ(ingress["missing_parent"], true);
    }
    EXPECT_EQ(ingress["depth"], ingress_depth);
    if (curl_client >= 0) {
      // The agent saw both ends of that exchange and joined them (request TCP
      // sequence): curl's S client span, itself a child of the traceparent's
      // parent, is the ingress's parent.
      EXPECT_EQ(ingress["parent_span_id"], spans[static_cast<size_t>(curl_client)]["span_id"]) << dump;
      EXPECT_EQ(ingress["parent_reason"], "tcp_sequence");
      EXPECT_EQ(spans[static_cast<size_t>(curl_client)]["parent_span_id"], parent);
    } else {
      EXPECT_EQ(ingress["parent_span_id"], parent);
      EXPECT_EQ(ingress["parent_reason"], "traceparent");
    }
    EXPECT_EQ(ingress["http_status"], 200);
    EXPECT_NE(ingress.value("endpoint", "").find("/one-trace/item/"), std::string::npos) << ingress.dump();

    // nginx egress: child of the ingress, linked by the agent's gateway
    // linker (same traceparent on both sides of nginx).
    EXPECT_EQ(egress["parent_index"], ingress["index"]) << dump;
    EXPECT_EQ(egress["parent_span_id"], ingress["span_id"]);
    EXPECT_EQ(egress["edge"], "traceparent") << dump;
    EXPECT_EQ(egress["edge_origin"], "agent");
    EXPECT_EQ(egress["depth"], ingress_depth + 1);
    EXPECT_EQ(egress["pid"], ingress["pid"]) << "same nginx worker";
    EXPECT_EQ(egress["server"]["port"], backend_port) << egress.dump();

    // Backend ingress S span: child of nginx's egress, the same request on
    // the wire (the server matches TCP sequence numbers or the connection).
    EXPECT_EQ(node_s["parent_index"], egress["index"]) << dump;
    const std::string wire_edge = node_s.value("edge", "");
    EXPECT_TRUE(wire_edge == "tcp_sequence" || wire_edge == "tuple") << wire_edge << "\n" << dump;
    // Joined by the agent on the node (both ends captured); the server's
    // join by sequence is the fallback when the agent could not.
    const std::string wire_origin = node_s.value("edge_origin", "");
    EXPECT_TRUE(wire_origin == "agent" || wire_origin == "server") << wire_origin;
    EXPECT_EQ(node_s["missing_parent"], false);
    EXPECT_EQ(node_s["depth"], ingress_depth + 2);
    if (wire_origin == "agent") {
      EXPECT_EQ(node_s["parent_span_id"], egress["span_id"]);
    } else {
      EXPECT_EQ(node_s["parent_span_id"], parent) << "traceparent forwarded unchanged by nginx";
    }
    EXPECT_EQ(node_s["client"], egress["client"]);
    EXPECT_EQ(node_s["server"], egress["server"]);
    EXPECT_EQ(node_s["pid"], static_cast<int>(backend.pid()));

    // The backend's A SERVER span nests under the backend's S server span
    // (same process; contained in time, or overlapping it with the same
    // traceparent parent id), keeping curl's parent id.
    EXPECT_EQ(node_a["parent_index"], node_s["index"]) << dump;
    const std::string app_edge = node_a.value("edge", "");
    ++app_edges[app_edge];
    EXPECT_TRUE(app_edge == "time_nesting" || app_edge == "traceparent") << app_edge << "\n" << dump;
    EXPECT_EQ(node_a["edge_origin"], "server");
    EXPECT_EQ(node_a["missing_parent"], false);
    EXPECT_EQ(node_a["depth"], ingress_depth + 3);
    EXPECT_EQ(node_a["parent_span_id"], parent);
    EXPECT_EQ(node_a["pid"], static_cast<int>(backend.pid())) << "sender resolved from the connection";
    EXPECT_EQ(node_a["http_status"], 200);
    EXPECT_EQ(node_a["host"], node_s["host"]);

    // Depth-first order: parents before children.
    EXPECT_LT(r.nginx_server, r.nginx_client);
    EXPECT_LT(r.nginx_client, r.node_server);
    EXPECT_LT(r.node_server, r.node_app);
  }
  EXPECT_EQ(complete, kRequests);
  std::printf("backend A SERVER span edges:");
  for (const auto& [edge, n] : app_edges) std::printf(" %s=%d", edge.c_str(), n);
  std::printf("\n");
  if (HasFailure()) {
    ADD_FAILURE() << "agent log:\n" << Tail(dir.File("agent.log")) << "\nserver log:\n"
                  << Tail(dir.File("server.log"));
  }
}

}  // namespace
}  // namespace sonde::otlp
