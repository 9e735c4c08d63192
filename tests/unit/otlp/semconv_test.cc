#include "agent/otlp/semconv.h"

#include <gtest/gtest.h>

#include <map>

#include "test_util.h"

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;
using Span = opentelemetry::proto::trace::v1::Span;

std::map<std::string, std::string> AsMap(const KeyValues& attrs) {
  std::map<std::string, std::string> out;
  for (const auto& kv : attrs) {
    out[kv.key()] = kv.value().has_int_value() ? "int:" + std::to_string(kv.value().int_value())
                                               : kv.value().string_value();
  }
  return out;
}

TEST(Semconv, KongLegacyHttpNamesGetCurrentNamesAndKeepOriginals) {
  KeyValues attrs;
  AddStringAttr(&attrs, "http.method", "POST");
  AddIntAttr(&attrs, "http.status_code", 502);
  AddStringAttr(&attrs, "http.url", "https://api.test/v1/orders?id=7");
  AddStringAttr(&attrs, "net.peer.ip", "10.1.2.3");
  AddStringAttr(&attrs, "http.target", "/v1/orders?id=7");
  AddStringAttr(&attrs, "http.scheme", "https");
  AddStringAttr(&attrs, "net.host.name", "api.test");
  AddIntAttr(&attrs, "net.peer.port", 51234);
  AddStringAttr(&attrs, "http.flavor", "1.1");
  AddStringAttr(&attrs, "net.transport", "ip_tcp");
  AddStringAttr(&attrs, "http.user_agent", "curl/8");
  EXPECT_EQ(AddCurrentSemconvNames(&attrs, Span::SPAN_KIND_SERVER), 13);
  auto m = AsMap(attrs);
  EXPECT_EQ(m["http.method"], "POST");  // original kept
  EXPECT_EQ(m["http.request.method"], "POST");
  EXPECT_EQ(m["http.status_code"], "int:502");
  EXPECT_EQ(m["http.response.status_code"], "int:502");
  EXPECT_EQ(m["url.full"], "https://api.test/v1/orders?id=7");
  EXPECT_EQ(m["network.peer.address"], "10.1.2.3");
  EXPECT_EQ(m["url.path"], "/v1/orders");
  EXPECT_EQ(m["url.query"], "id=7");
  EXPECT_EQ(m["url.scheme"], "https");
  EXPECT_EQ(m["server.address"], "api.test");
  EXPECT_EQ(m["network.peer.port"], "int:51234");  // SERVER span: the peer is the client
  EXPECT_EQ(m["network.protocol.version"], "1.1");
  EXPECT_EQ(m["network.protocol.name"], "http");
  EXPECT_EQ(m["network.transport"], "tcp");
  EXPECT_EQ(m["user_agent.original"], "curl/8");
}

TEST(Semconv, KindDependentNamesAndSenderValuesWin) {
  KeyValues attrs;
  AddStringAttr(&attrs, "net.peer.name", "backend.svc");
  AddIntAttr(&attrs, "net.peer.port", 8080);
  AddStringAttr(&attrs, "http.method", "GET");
  AddStringAttr(&attrs, "http.request.method", "HEAD");  // the sender's current value wins
  AddCurrentSemconvNames(&attrs, Span::SPAN_KIND_CLIENT);
  auto m = AsMap(attrs);
  EXPECT_EQ(m["server.address"], "backend.svc");
  EXPECT_EQ(m["server.port"], "int:8080");
  EXPECT_EQ(m["http.request.method"], "HEAD");
  int count = 0;
  for (const auto& kv : attrs) count += kv.key() == "http.request.method";
  EXPECT_EQ(count, 1);
}

TEST(Semconv, BothRpcGenerations) {
  KeyValues old_gen;
  AddStringAttr(&old_gen, "rpc.system", "grpc");
  AddStringAttr(&old_gen, "rpc.service", "helloworld.Greeter");
  AddStringAttr(&old_gen, "rpc.method", "SayHello");
  AddIntAttr(&old_gen, "rpc.grpc.status_code", 5);
  AddCurrentSemconvNames(&old_gen, Span::SPAN_KIND_CLIENT);
  auto m = AsMap(old_gen);
  EXPECT_EQ(m["rpc.system.name"], "grpc");
  EXPECT_EQ(m["rpc.response.status_code"], "NOT_FOUND");  // the code's name, as agent spans carry it
  EXPECT_EQ(m["rpc.method"], "SayHello");  // kept as sent (see semconv.cc)

  KeyValues new_gen;
  AddStringAttr(&new_gen, "rpc.system.name", "grpc");
  AddStringAttr(&new_gen, "rpc.method", "helloworld.Greeter/SayHello");
  AddStringAttr(&new_gen, "rpc.response.status_code", "OK");
  EXPECT_EQ(AddCurrentSemconvNames(&new_gen, Span::SPAN_KIND_CLIENT), 0);

  // A code gRPC does not define keeps its number; JSON-RPC codes are numbers.
  KeyValues odd;
  AddIntAttr(&odd, "rpc.grpc.status_code", 42);
  AddCurrentSemconvNames(&odd, Span::SPAN_KIND_SERVER);
  EXPECT_EQ(AsMap(odd)["rpc.response.status_code"], "42");
  KeyValues jsonrpc;
  AddIntAttr(&jsonrpc, "rpc.jsonrpc.error_code", -32602);
  AddCurrentSemconvNames(&jsonrpc, Span::SPAN_KIND_SERVER);
  EXPECT_EQ(AsMap(jsonrpc)["rpc.response.status_code"], "-32602");
}

TEST(Semconv, CurrentNameTable) {
  EXPECT_EQ(CurrentNameFor("http.method"), "http.request.method");
  EXPECT_EQ(CurrentNameFor("http.status_code"), "http.response.status_code");
  EXPECT_EQ(CurrentNameFor("http.url"), "url.full");
  EXPECT_EQ(CurrentNameFor("net.peer.ip"), "network.peer.address");
  EXPECT_EQ(CurrentNameFor("net.sock.peer.addr"), "network.peer.address");
  EXPECT_EQ(CurrentNameFor("http.request.method"), "");
}

}  // namespace
}  // namespace sonde::otlp
