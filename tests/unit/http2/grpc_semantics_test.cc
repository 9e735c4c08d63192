// The agent's gRPC spans carry the current RPC conventions, the generation
// OTLP ingest rewrites spans to: rpc.system.name, a fully qualified
// rpc.method, the status code's name in rpc.response.status_code; none of
// the first generation's keys.
#include "agent/protocols/http2/grpc_semantics.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/semconv/grpc_status.h"

namespace sonde::protocols::http2 {
namespace {

std::map<std::string, AttributeValue> AttributesOf(const L7Record& r, bool server_side) {
  const RecordSemantics& sem = GrpcSemantics();
  SpanDescription d;
  sem.describe(r, server_side, d);
  ExchangeAddresses addr;
  addr.server_side = server_side;
  std::vector<Attribute> attrs;
  sem.attributes(r, d, addr, attrs);
  std::map<std::string, AttributeValue> out;
  for (auto& a : attrs) EXPECT_TRUE(out.emplace(a.key, a.value).second) << "duplicate " << a.key;
  return out;
}

L7Record GrpcCall(int status) {
  L7Record r;
  r.protocol = L7Protocol::kGrpc;
  r.method = "POST";
  r.path = "/helloworld.Greeter/SayHello";
  r.status = 200;
  r.rpc_service = "helloworld.Greeter";
  r.rpc_method = "SayHello";
  r.grpc_status = status;
  return r;
}

TEST(GrpcSemantics, CurrentRpcConventionsOnly) {
  for (bool server_side : {true, false}) {
    const auto a = AttributesOf(GrpcCall(5), server_side);
    EXPECT_EQ(std::get<std::string>(a.at("rpc.system.name")), "grpc");
    EXPECT_EQ(std::get<std::string>(a.at("rpc.method")), "helloworld.Greeter/SayHello");
    EXPECT_EQ(std::get<std::string>(a.at("rpc.response.status_code")), "NOT_FOUND");
    for (const char* old_key : {"rpc.system", "rpc.service", "rpc.grpc.status_code"}) {
      EXPECT_EQ(a.count(old_key), 0u) << old_key;
    }
  }
  EXPECT_EQ(std::get<std::string>(AttributesOf(GrpcCall(0), true).at("rpc.response.status_code")), "OK");
  // No trailers seen (a call cut short): no status attribute rather than a guess.
  EXPECT_EQ(AttributesOf(GrpcCall(-1), true).count("rpc.response.status_code"), 0u);
  // No service parsed from the path: the method alone.
  L7Record bare = GrpcCall(0);
  bare.rpc_service.clear();
  EXPECT_EQ(std::get<std::string>(AttributesOf(bare, true).at("rpc.method")), "SayHello");
}

TEST(GrpcStatus, NamesAndNumbersBothWays) {
  using semconv::GrpcStatusFromString;
  using semconv::GrpcStatusName;
  EXPECT_EQ(GrpcStatusName(0), "OK");
  EXPECT_EQ(GrpcStatusName(4), "DEADLINE_EXCEEDED");
  EXPECT_EQ(GrpcStatusName(14), "UNAVAILABLE");
  EXPECT_EQ(GrpcStatusName(16), "UNAUTHENTICATED");
  EXPECT_EQ(GrpcStatusName(17), "17");
  EXPECT_EQ(GrpcStatusName(-3), "-3");
  for (int code = 0; code <= 16; ++code) EXPECT_EQ(GrpcStatusFromString(GrpcStatusName(code)), code);
  EXPECT_EQ(GrpcStatusFromString("7"), 7);
  EXPECT_EQ(GrpcStatusFromString("42"), 42);
  EXPECT_EQ(GrpcStatusFromString(""), std::nullopt);
  EXPECT_EQ(GrpcStatusFromString("ok"), std::nullopt);  // names are upper case
  EXPECT_EQ(GrpcStatusFromString("5x"), std::nullopt);
  EXPECT_EQ(GrpcStatusFromString("NOT_FOUND "), std::nullopt);
}

}  // namespace
}  // namespace sonde::protocols::http2
