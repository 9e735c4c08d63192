// The whole user-space pipeline from an in-memory event stream.
#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "agent/pipeline/pipeline.h"
#include "agent/trace/span_builder.h"
#include "agent/trace/trace_headers.h"
#include "tests/unit/conn/event_builder.h"
#include "tests/unit/pipeline/memory_source.h"

namespace sonde::pipeline {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::MemorySource;
using sonde::testing::SocketSim;

// A gateway (pid 300) serving N downstream requests, each proxied upstream
// over one keepalive connection, plus a garbage client.
std::vector<std::vector<uint8_t>> GatewayEvents(int n) {
  std::vector<std::vector<uint8_t>> ev;
  SocketSim up(300, 300, "nginx", 5000, 50, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", 50000, "127.0.0.1", 9000});
  ev.push_back(up.Open(1));
  uint64_t t = 1'000'000;
  for (int i = 0; i < n; ++i) {
    SocketSim down(300, 300, "nginx", 100 + i, 1000 + i, SONDE_ROLE_SERVER,
                   Endpoints{"127.0.0.1", 8080, "127.0.0.1", static_cast<uint16_t>(40000 + i)});
    std::string path = "/item/" + std::to_string(i) + "/x" + std::to_string(i);
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer s3cret\r\n\r\n";
    int status = i % 10 == 0 ? 502 : 200;
    std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 3\r\n\r\nabc";
    ev.push_back(down.Open(t));
    ev.push_back(down.Read(req, t + 100));
    ev.push_back(up.Write("GET " + path + " HTTP/1.1\r\nHost: backend\r\n\r\n", t + 2000));
    ev.push_back(up.Read(resp, t + 50'000));
    ev.push_back(down.Write(resp, t + 60'000));
    ev.push_back(down.CloseEv(t + 70'000));
    if (i == n / 2) {
      SocketSim bad(300, 300, "nginx", 99999, 999, SONDE_ROLE_SERVER,
                    Endpoints{"127.0.0.1", 8080, "127.0.0.1", 39999});
      ev.push_back(bad.Read(std::string("\x01\x02garbage\xff\r\n\r\n", 15), t + 10));
      ev.push_back(bad.Write("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", t + 20));
      ev.push_back(bad.CloseEv(t + 30));
    }
    t += 100'000;
  }
  return ev;
}

TEST(Pipeline, RecordsSpansLinksAndRed) {
  constexpr int kRequests = 50;
  MemorySource source(GatewayEvents(kRequests));
  std::FILE* out = std::tmpfile();
  ASSERT_NE(out, nullptr);
  PipelineOptions o;
  o.json_out = out;
  o.json_line_buffered = false;
  o.clock_offset_ns = 1'700'000'000'000'000'000ull;
  o.event_time = true;
  std::atomic<bool> stop{false};
  Agent agent(o);
  ASSERT_TRUE(agent.Run(source, stop).ok());

  std::fflush(out);
  std::rewind(out);
  std::map<std::string, nlohmann::json> server_by_id;
  std::vector<nlohmann::json> clients;
  char line[1 << 16];
  int lines = 0;
  while (std::fgets(line, sizeof(line), out) != nullptr) {
    ++lines;
    auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["source"], "S");
    for (const auto& h : j["request_headers"]) {
      if (h[0] == "authorization") {
        EXPECT_EQ(h[1], "[REDACTED]");
      }
    }
    if (j["kind"] == "server") server_by_id[j["span_id"]] = j;
    else clients.push_back(j);
  }
  std::fclose(out);
  EXPECT_EQ(lines, 2 * kRequests);
  ASSERT_EQ(clients.size(), static_cast<size_t>(kRequests));
  int correct = 0;
  for (const auto& c : clients) {
    auto it = server_by_id.find(c["parent_span_id"]);
    if (it != server_by_id.end() &&
        it->second["attributes"]["url.path"] == c["attributes"]["url.path"] &&
        it->second["trace_id"] == c["trace_id"]) {
      ++correct;
    }
  }
  EXPECT_EQ(correct, kRequests);

  auto totals = agent.red().Totals();
  uint64_t server_5xx = 0, server_total = 0;
  for (const auto& [k, s] : totals) {
    if (k.kind != "server") continue;
    server_total += s.count;
    if (k.status.starts_with("5")) server_5xx += s.errors;
  }
  EXPECT_EQ(server_total, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(server_5xx, static_cast<uint64_t>(kRequests / 10));
  const AgentCounters c = agent.counters();
  EXPECT_EQ(c.tracker.records, static_cast<uint64_t>(2 * kRequests));
  EXPECT_EQ(c.open_connections, 0u);
  // The garbage client's 400 answers no parsed request: dropped, counted.
  EXPECT_GE(c.tracker.protocol.unpaired, 1u);
}

class CollectingSink : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& span) override { spans.push_back(span); }
  std::vector<trace::Span> spans;
};

uint64_t RedRequests(Agent& agent, std::string_view kind) {
  uint64_t n = 0;
  for (const auto& [key, series] : agent.red().Totals()) {
    if (key.kind == kind) n += series.count;
  }
  return n;
}

// An egress whose ingress the agent cannot see (TLS it does not decrypt, a
// dropped record) waits seconds in the linker for it; RED counts it at once.
TEST(Pipeline, RedCountsSpansTheLinkerStillHolds) {
  // Peers off the node: the exchange joiner holds nothing here.
  SocketSim down(300, 300, "nginx", 100, 10, SONDE_ROLE_SERVER, Endpoints{"10.0.0.1", 8080, "10.0.0.2", 40000});
  SocketSim up(300, 300, "nginx", 200, 20, SONDE_ROLE_CLIENT, Endpoints{"10.0.0.1", 50000, "10.9.9.9", 9000});
  PipelineOptions o;
  o.event_time = true;
  o.clock_offset_ns = 1'700'000'000'000'000'000ull;
  o.sampler.spans_per_second = 0;  // every span reaches the sink once released
  Agent agent(o);
  auto sink = std::make_shared<CollectingSink>();
  agent.AddSink(sink);
  agent.OnEvent(down.Open(1'000));
  agent.OnEvent(down.Read("GET /seen HTTP/1.1\r\nHost: gw\r\n\r\n", 2'000));  // the process serves
  agent.OnEvent(down.Write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3'000));
  agent.OnEvent(up.Open(10'000));
  agent.OnEvent(up.Write("GET /orphan HTTP/1.1\r\nHost: backend\r\n\r\n", 20'000));
  agent.OnEvent(up.Read("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 30'000));
  ASSERT_EQ(sink->spans.size(), 1u) << "the server span left; the egress waits for an ingress";
  EXPECT_EQ(sink->spans[0].kind, trace::SpanKind::kServer);
  EXPECT_EQ(RedRequests(agent, "client"), 1u);
  EXPECT_EQ(RedRequests(agent, "server"), 1u);
  agent.Finish();
  EXPECT_EQ(sink->spans.size(), 2u);
  EXPECT_EQ(RedRequests(agent, "client"), 1u) << "counted once, not again when released";
}

TEST(Pipeline, ServesSelfMetrics) {
  MemorySource source(GatewayEvents(5));
  PipelineOptions o;
  o.print_json = false;
  o.metrics_listen = "127.0.0.1:0";
  o.event_time = true;
  Agent agent(o);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(agent.Run(source, stop).ok());
  // Run() leaves the server up until Stop(): scrape it.
  httplib::Client cli("127.0.0.1", agent.metrics_server().port());
  auto res = cli.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_NE(res->body.find("sonde_agent_records_total 10"), std::string::npos) << res->body;
  EXPECT_NE(res->body.find("sonde_agent_open_connections 0"), std::string::npos);
  EXPECT_NE(res->body.find("sonde_agent_links_total{reason=\"time_nesting\"} 5"), std::string::npos);
  EXPECT_NE(res->body.find("http_server_request_duration_seconds_bucket{"), std::string::npos);
  EXPECT_NE(res->body.find("sonde_agent_parse_errors_total"), std::string::npos);
  auto health = cli.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->body, "ok\n");
  agent.Stop();
}

// Collects what reaches the span sinks (after the span budget).
// A gateway at 2,000 requests/s of event time for 5 s against a budget of 100
// spans/s: RED counts every request, the sinks get about the budget, every
// kept ingress comes with its linked egress (decision per trace), every error
// is kept, and kept spans are complete (attributes, redacted headers).
TEST(Pipeline, SpanBudgetKeepsWholeTracesAndRedCountsEverything) {
  constexpr int kRequests = 10'000;
  std::vector<std::vector<uint8_t>> ev;
  SocketSim up(300, 300, "nginx", 5000, 50, SONDE_ROLE_CLIENT, Endpoints{"127.0.0.1", 50000, "127.0.0.1", 9000});
  SocketSim down(300, 300, "nginx", 100, 1000, SONDE_ROLE_SERVER,
                 Endpoints{"127.0.0.1", 8080, "127.0.0.1", 40000});
  ev.push_back(up.Open(1));
  ev.push_back(down.Open(1));
  uint64_t t = 1'000'000;
  for (int i = 0; i < kRequests; ++i) {
    const std::string path = "/item/" + std::to_string(i);
    const int status = i % 100 == 0 ? 503 : 200;
    const std::string resp = "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Length: 2\r\n\r\nok";
    ev.push_back(down.Read("GET " + path + " HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer s3cret\r\n\r\n", t));
    ev.push_back(up.Write("GET " + path + " HTTP/1.1\r\nHost: backend\r\n\r\n", t + 20'000));
    ev.push_back(up.Read(resp, t + 100'000));
    ev.push_back(down.Write(resp, t + 120'000));
    t += 500'000;  // 2,000 requests per second
  }
  MemorySource source(std::move(ev));
  PipelineOptions o;
  o.print_json = false;
  o.clock_offset_ns = 1'700'000'000'000'000'000ull;
  o.event_time = true;
  o.sampler.spans_per_second = 100;
  Agent agent(o);
  auto sink = std::make_shared<CollectingSink>();
  agent.AddSink(sink);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(agent.Run(source, stop).ok());

  uint64_t red_server = 0, red_client = 0;
  for (const auto& [key, series] : agent.red().Totals()) {
    (key.kind == "server" ? red_server : red_client) += series.count;
  }
  EXPECT_EQ(red_server, static_cast<uint64_t>(kRequests));
  EXPECT_EQ(red_client, static_cast<uint64_t>(kRequests));

  std::map<std::string, int> per_trace;
  int errors = 0;
  for (const auto& s : sink->spans) {
    per_trace[trace::ToHex(s.trace_id)] += 1;
    if (s.status == trace::StatusCode::kError) ++errors;
    EXPECT_FALSE(s.deferred) << "kept spans are completed";
    EXPECT_NE(trace::StringAttribute(s, "url.path"), nullptr);
    for (const auto h : s.request_headers) {
      if (h.name == "authorization") {
        EXPECT_EQ(h.value, "[REDACTED]");
      }
    }
  }
  // 100 errors (server + client span each), plus about 5 s x 100 spans/s.
  EXPECT_EQ(errors, 2 * kRequests / 100);
  EXPECT_GE(sink->spans.size(), 400u);
  EXPECT_LE(sink->spans.size(), 200u + 5 * 100 + 100);
  for (const auto& [trace_id, n] : per_trace) EXPECT_EQ(n, 2) << "trace " << trace_id << " incomplete";
  const auto c = agent.counters();
  EXPECT_EQ(c.sampler.dropped_budget + sink->spans.size(), 2u * kRequests);
}

// Every signal has its sink: RED windows reach a registered MetricSink (no
// pull by a component), TCP windows and profile batches emitted by their
// producers reach theirs.
TEST(Pipeline, SignalSinksReceiveRedTcpAndProfiles) {
  struct Metrics : MetricSink {
    uint64_t red_requests = 0, tcp_windows = 0;
    void OnRedWindow(const metrics::RedWindow& w) override {
      for (const auto& [k, s] : w.series) red_requests += s.count;
    }
    void OnTcpWindow(const tcp::TcpWindow&) override { ++tcp_windows; }
  };
  struct Profiles : ProfileSink {
    int stacks = 0;
    void OnProfileBatch(const v1::ProfileBatch& b) override { stacks += b.stacks_size(); }
  };
  constexpr int kRequests = 20;
  MemorySource source(GatewayEvents(kRequests));
  PipelineOptions o;
  o.print_json = false;
  o.clock_offset_ns = 1'700'000'000'000'000'000ull;
  o.event_time = true;
  Agent agent(o);
  auto metrics = std::make_shared<Metrics>();
  auto profiles = std::make_shared<Profiles>();
  agent.AddMetricSink(metrics);
  agent.AddProfileSink(profiles);
  std::atomic<bool> stop{false};
  ASSERT_TRUE(agent.Run(source, stop).ok());
  // Every downstream request (server) and its upstream call (client), plus the garbage client's 400.
  EXPECT_GE(metrics->red_requests, 2u * kRequests);
  EXPECT_TRUE(agent.red().TakeClosedWindows().empty()) << "windows went to the sink, not left for pull";
  agent.EmitTcpWindow(tcp::TcpWindow{});
  v1::ProfileBatch batch;
  batch.add_stacks();
  agent.EmitProfile(batch);
  EXPECT_EQ(metrics->tcp_windows, 1u);
  EXPECT_EQ(profiles->stacks, 1);
}

// OTLP app spans take the same chain: kept whatever the budget (their SDK
// sampled them), redacted like every other span, and their trace stays kept
// for the system spans that follow.
TEST(Pipeline, AppSpansAreRedactedAndKeepTheirTrace) {
  PipelineOptions o;
  o.print_json = false;
  o.sampler.spans_per_second = 1e-9;  // no budget at all
  Agent agent(o);
  auto sink = std::make_shared<CollectingSink>();
  agent.AddSink(sink);
  trace::Span app;
  app.source = trace::SpanSource::kApplication;
  app.trace_id[0] = 7;
  app.attributes.push_back({"http.request.header.authorization", std::string("Bearer s3cret")});
  app.attributes.push_back({"http.request.header.accept", std::string("*/*")});
  agent.EmitSpan(std::move(app));
  trace::Span network;  // a later span of the same trace, which the budget alone would leave out
  network.source = trace::SpanSource::kNetwork;
  network.trace_id[0] = 7;
  agent.EmitSpan(std::move(network));
  ASSERT_EQ(sink->spans.size(), 2u);
  EXPECT_EQ(*trace::StringAttribute(sink->spans[0], "http.request.header.authorization"), "[REDACTED]");
  EXPECT_EQ(*trace::StringAttribute(sink->spans[0], "http.request.header.accept"), "*/*");
}

// OTEL_RESOURCE_ATTRIBUTES (options.resource_attributes) reach every shipped
// span, application (A) and network (N) alike; a key the span already has
// (the application's own resource) is not overwritten.
TEST(Pipeline, ResourceAttributesAddedWhereAbsent) {
  PipelineOptions o;
  o.print_json = false;
  o.sampler.spans_per_second = 0;  // every span
  o.resource_attributes = {{"deployment.environment.name", "prod"}, {"k8s.cluster.name", "eu-1"}};
  Agent agent(o);
  auto sink = std::make_shared<CollectingSink>();
  agent.AddSink(sink);
  trace::Span app;
  app.source = trace::SpanSource::kApplication;
  app.trace_id[0] = 9;
  app.attributes.push_back({"deployment.environment.name", std::string("staging")});
  agent.EmitSpan(std::move(app));
  trace::Span network;
  network.source = trace::SpanSource::kNetwork;
  network.trace_id[0] = 10;
  agent.EmitSpan(std::move(network));
  ASSERT_EQ(sink->spans.size(), 2u);
  EXPECT_EQ(*trace::StringAttribute(sink->spans[0], "deployment.environment.name"), "staging");
  EXPECT_EQ(*trace::StringAttribute(sink->spans[0], "k8s.cluster.name"), "eu-1");
  EXPECT_EQ(*trace::StringAttribute(sink->spans[1], "deployment.environment.name"), "prod");
  EXPECT_EQ(*trace::StringAttribute(sink->spans[1], "k8s.cluster.name"), "eu-1");
  size_t env_keys = 0;
  for (const auto& a : sink->spans[0].attributes) env_keys += a.key == "deployment.environment.name";
  EXPECT_EQ(env_keys, 1u);
}

}  // namespace
}  // namespace sonde::pipeline
