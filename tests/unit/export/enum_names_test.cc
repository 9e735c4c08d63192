// The span enums' names, one table (proto/sonde/v1/enum_names.h) for the
// agent's exports and metrics and the server's JSON and query parameters.
// Numbers are pinned by static_asserts in agent/export/span_convert.cc.
#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "agent/protocols/l7_protocol.h"
#include "agent/trace/linker.h"
#include "proto/sonde/v1/enum_names.h"
#include "server/api/json.h"
#include "server/api/params.h"
#include "server/query/trace_assembler.h"

namespace sonde {
namespace {

TEST(EnumNames, AgentLinkReasonsAreTheWireNames) {
  // The agent writes these as sonde.link.reason and as the reason label of
  // sonde_agent_links_total; the server names parent edges with them.
  for (int r = 0; r < v1::LinkReason_ARRAYSIZE; ++r) {
    EXPECT_EQ(trace::LinkReasonName(static_cast<trace::LinkReason>(r)), v1::names::kLinkReason[r]) << r;
  }
  EXPECT_EQ(trace::LinkReasonName(trace::LinkReason::kRequestId), "x_request_id");
}

TEST(EnumNames, ServerEdgesUseTheAgentSpelling) {
  EXPECT_EQ(server::LinkReasonName(v1::LINK_REASON_REQUEST_ID), "x_request_id");
  EXPECT_EQ(server::LinkReasonName(v1::LINK_REASON_TRACEPARENT), "traceparent");
  EXPECT_EQ(server::LinkReasonName(v1::LinkReason_ARRAYSIZE), "parent_id");  // from a newer agent
}

TEST(EnumNames, ServerJsonNames) {
  EXPECT_EQ(server::SourceLetter(v1::SPAN_SOURCE_NETWORK), "N");
  EXPECT_EQ(server::SourceLetter(42), "?");
  EXPECT_EQ(server::KindName(v1::SPAN_KIND_CONSUMER), "consumer");
  EXPECT_EQ(server::KindName(42), "unspecified");
  for (int p = 0; p < v1::L7Protocol_ARRAYSIZE; ++p) {
    EXPECT_EQ(server::ProtocolName(p), protocols::L7ProtocolName(static_cast<protocols::L7Protocol>(p)));
  }
}

TEST(EnumNames, ServerParametersReadTheSameNames) {
  auto param = [](std::string value) {
    return [value](const std::string&) { return std::optional<std::string>(value); };
  };
  EXPECT_EQ(*server::ParseKind(param("server")).value(), v1::SPAN_KIND_SERVER);
  EXPECT_FALSE(server::ParseKind(param("unspecified")).ok());
  EXPECT_EQ(*server::ParseSource(param("S")).value(), v1::SPAN_SOURCE_SYSTEM);
  EXPECT_EQ(*server::ParseSource(param("network")).value(), v1::SPAN_SOURCE_NETWORK);
  EXPECT_FALSE(server::ParseSource(param("")).ok());
  EXPECT_FALSE(server::ParseSource(param("?")).ok());
}

}  // namespace
}  // namespace sonde
