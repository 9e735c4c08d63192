// Service map from stored spans: calls linked by parent id or by the
// exchange key, external clients and servers, databases, gateways, latency
// percentiles and error counts.
#include "server/query/service_map.h"

#include <gtest/gtest.h>

#include "tests/unit/server/test_util.h"

namespace sonde::server {
namespace {

using testing::MakeSpan;
using testing::SpanSpec;

StoredSpan Span(uint64_t trace, uint64_t id, uint64_t parent, v1::SpanKind kind, const std::string& service,
                uint64_t dur_ms, int status = 200) {
  SpanSpec spec;
  spec.trace = trace;
  spec.id = id;
  spec.parent = parent;
  spec.kind = kind;
  spec.service = service;
  spec.start_ns = 1'000'000'000ull * trace;
  spec.end_ns = spec.start_ns + dur_ms * 1'000'000;
  spec.http_status = status;
  StoredSpan s;
  s.span = MakeSpan(spec);
  s.host = "h";
  return s;
}

const MapEdge* FindEdge(const ServiceMap& m, const std::string& from, const std::string& to) {
  for (const auto& e : m.edges)
    if (e.source == from && e.target == to) return &e;
  return nullptr;
}
const MapNode* FindNode(const ServiceMap& m, const std::string& id) {
  for (const auto& n : m.nodes)
    if (n.id == id) return &n;
  return nullptr;
}

TEST(ServiceMap, CallsGatewaysExternalPeersAndDatabases) {
  std::vector<StoredSpan> spans;
  for (uint64_t t = 1; t <= 10; ++t) {
    const uint64_t b = t * 100;
    // curl -> nginx (parent id), nginx -> backend (exchange key only), backend -> redis (uncaptured).
    spans.push_back(Span(t, b + 1, 0, v1::SPAN_KIND_CLIENT, "curl", 50));
    spans.push_back(Span(t, b + 2, b + 1, v1::SPAN_KIND_SERVER, "nginx", 40, t == 10 ? 502 : 200));
    StoredSpan egress = Span(t, b + 3, b + 2, v1::SPAN_KIND_CLIENT, "nginx", t * 3);
    egress.span.mutable_client()->set_address("127.0.0.1");
    egress.span.mutable_client()->set_port(50000);
    egress.span.set_request_tcp_seq(static_cast<uint32_t>(t));
    spans.push_back(egress);
    StoredSpan backend = Span(t, b + 4, 0, v1::SPAN_KIND_SERVER, "backend", 20);
    backend.span.mutable_client()->set_address("127.0.0.1");
    backend.span.mutable_client()->set_port(50000);
    backend.span.set_request_tcp_seq(static_cast<uint32_t>(t));
    spans.push_back(backend);
    StoredSpan redis = Span(t, b + 5, b + 4, v1::SPAN_KIND_CLIENT, "backend", 1);
    redis.span.set_protocol(v1::L7_PROTOCOL_REDIS);
    redis.span.mutable_server()->set_address("10.0.0.9");
    redis.span.mutable_server()->set_port(6379);
    spans.push_back(redis);
    // PostgreSQL on a port no list knows: a database by its protocol.
    StoredSpan pg = Span(t, b + 6, b + 4, v1::SPAN_KIND_CLIENT, "backend", 2);
    pg.span.set_protocol(v1::L7_PROTOCOL_POSTGRESQL);
    pg.span.mutable_server()->set_address("10.0.0.8");
    pg.span.mutable_server()->set_port(15432);
    spans.push_back(pg);
  }
  // A request from a client nobody traced.
  StoredSpan outside = Span(20, 2001, 0, v1::SPAN_KIND_SERVER, "nginx", 5);
  outside.span.mutable_client()->set_address("192.0.2.1");
  outside.span.mutable_client()->set_port(40000);
  spans.push_back(outside);

  const ServiceMap m = BuildServiceMap(spans);
  const MapEdge* curl_nginx = FindEdge(m, "curl", "nginx");
  ASSERT_NE(curl_nginx, nullptr);
  EXPECT_EQ(curl_nginx->count, 10u);
  EXPECT_EQ(curl_nginx->errors, 1u);
  EXPECT_DOUBLE_EQ(curl_nginx->p50_ms, 50);
  const MapEdge* nginx_backend = FindEdge(m, "nginx", "backend");
  ASSERT_NE(nginx_backend, nullptr) << "joined by client endpoint + request sequence";
  EXPECT_EQ(nginx_backend->count, 10u);
  EXPECT_DOUBLE_EQ(nginx_backend->p50_ms, 18);  // the caller's view: 3..30 ms
  EXPECT_DOUBLE_EQ(nginx_backend->p99_ms, 30);
  EXPECT_EQ(nginx_backend->trace_ids.size(), 10u);
  const MapEdge* db = FindEdge(m, "backend", "10.0.0.9:6379");
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(db->count, 10u);
  const MapEdge* ext = FindEdge(m, "192.0.2.1", "nginx");
  ASSERT_NE(ext, nullptr);
  EXPECT_EQ(ext->count, 1u);
  EXPECT_EQ(m.edges.size(), 5u);

  ASSERT_NE(FindNode(m, "nginx"), nullptr);
  EXPECT_EQ(FindNode(m, "nginx")->kind, "gateway");
  EXPECT_EQ(FindNode(m, "nginx")->served, 11u);
  EXPECT_EQ(FindNode(m, "backend")->kind, "service");
  EXPECT_EQ(FindNode(m, "10.0.0.9:6379")->kind, "database");
  EXPECT_EQ(FindNode(m, "10.0.0.8:15432")->kind, "database");
  EXPECT_EQ(FindNode(m, "192.0.2.1")->kind, "external");
}

TEST(ServiceMap, NetworkAndApplicationSpansAreNotCountedTwice) {
  std::vector<StoredSpan> spans = {Span(1, 1, 0, v1::SPAN_KIND_CLIENT, "curl", 5),
                                   Span(1, 2, 1, v1::SPAN_KIND_SERVER, "nginx", 4)};
  StoredSpan app = Span(1, 3, 1, v1::SPAN_KIND_SERVER, "nginx", 4);
  app.span.set_source(v1::SPAN_SOURCE_APPLICATION);
  spans.push_back(app);
  StoredSpan wire = Span(1, 4, 0, v1::SPAN_KIND_SERVER, "lo", 4);
  wire.span.set_source(v1::SPAN_SOURCE_NETWORK);
  spans.push_back(wire);
  const ServiceMap m = BuildServiceMap(spans);
  ASSERT_EQ(m.edges.size(), 1u);
  EXPECT_EQ(m.edges[0].count, 1u);
}

}  // namespace
}  // namespace sonde::server
