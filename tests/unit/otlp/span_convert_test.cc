#include "agent/otlp/span_convert.h"

#include <gtest/gtest.h>

#include <utility>

#include "test_util.h"

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;

const trace::AttributeValue* Find(const trace::Span& span, const std::string& key) {
  for (const auto& a : span.attributes) {
    if (a.key == key) return &a.value;
  }
  return nullptr;
}

TEST(SpanConvert, KongServerSpanBecomesAnApplicationSpan) {
  ExportTraceRequest request = MakeTraceRequest(1);
  const auto& rs = request.resource_spans(0);
  ProcessInfo sender{4242, "nginx", "nginx: worker process", "", "abc"};
  ResourceContext ctx = MakeResourceContext(rs.resource(), sender);
  trace::Span span;
  ASSERT_TRUE(ConvertSpan(rs.scope_spans(0).spans(0), ctx, &span).ok());
  EXPECT_EQ(span.source, trace::SpanSource::kApplication);
  EXPECT_EQ(span.kind, trace::SpanKind::kServer);
  EXPECT_EQ(std::string(span.trace_id.begin(), span.trace_id.end()), kTraceId);
  EXPECT_EQ(std::string(span.parent_span_id.begin(), span.parent_span_id.end()), kParentId);
  EXPECT_EQ(span.parent_reason, trace::LinkReason::kOtlpParent);
  EXPECT_EQ(span.service_name, "kong");
  EXPECT_EQ(span.pid, 4242u);
  EXPECT_EQ(span.comm, "nginx");
  EXPECT_EQ(span.container_id, "abc");
  EXPECT_EQ(span.protocol, protocols::L7Protocol::kHttp1);
  EXPECT_EQ(span.endpoint, "GET /users/42");
  EXPECT_EQ(span.http_status, 200);
  EXPECT_EQ(span.peer.address, "10.0.0.7");
  EXPECT_EQ(span.duration_ns(), 5000000u);
  // Legacy names kept, current names added.
  ASSERT_NE(Find(span, "http.method"), nullptr);
  ASSERT_NE(Find(span, "http.request.method"), nullptr);
  EXPECT_EQ(std::get<std::string>(*Find(span, "http.request.method")), "GET");
  EXPECT_EQ(std::get<int64_t>(*Find(span, "http.response.status_code")), 200);
}

TEST(SpanConvert, GrpcBothGenerations) {
  opentelemetry::proto::trace::v1::Span in;
  in.set_trace_id(kTraceId);
  in.set_span_id(kSpanId);
  in.set_kind(opentelemetry::proto::trace::v1::Span::SPAN_KIND_CLIENT);
  AddStringAttr(in.mutable_attributes(), "rpc.system", "grpc");
  AddStringAttr(in.mutable_attributes(), "rpc.service", "helloworld.Greeter");
  AddStringAttr(in.mutable_attributes(), "rpc.method", "SayHello");
  AddIntAttr(in.mutable_attributes(), "rpc.grpc.status_code", 14);
  AddStringAttr(in.mutable_attributes(), "net.peer.name", "greeter");
  AddIntAttr(in.mutable_attributes(), "net.peer.port", 50051);
  trace::Span span;
  ASSERT_TRUE(ConvertSpan(in, {}, &span).ok());
  EXPECT_EQ(span.protocol, protocols::L7Protocol::kGrpc);
  EXPECT_EQ(span.endpoint, "helloworld.Greeter/SayHello");
  EXPECT_EQ(span.grpc_status, 14);
  EXPECT_EQ(span.server.address, "greeter");
  EXPECT_EQ(span.server.port, 50051);
  EXPECT_EQ(span.parent_reason, trace::LinkReason::kNone);

  opentelemetry::proto::trace::v1::Span current;
  current.set_trace_id(kTraceId);
  current.set_span_id(kSpanId);
  AddStringAttr(current.mutable_attributes(), "rpc.system.name", "grpc");
  AddStringAttr(current.mutable_attributes(), "rpc.method", "helloworld.Greeter/SayHello");
  AddStringAttr(current.mutable_attributes(), "rpc.response.status_code", "3");
  ASSERT_TRUE(ConvertSpan(current, {}, &span).ok());
  EXPECT_EQ(span.endpoint, "helloworld.Greeter/SayHello");
  EXPECT_EQ(span.grpc_status, 3);

  // The current convention's value is the code's name (what agent spans and
  // the ingest rewrite carry); an unreadable value is no status, not OK.
  for (const auto& [text, code] : {std::pair{"INVALID_ARGUMENT", 3}, std::pair{"OK", 0},
                                   std::pair{"UNAUTHENTICATED", 16}, std::pair{"BOGUS", -1}}) {
    current.clear_attributes();
    AddStringAttr(current.mutable_attributes(), "rpc.system.name", "grpc");
    AddStringAttr(current.mutable_attributes(), "rpc.method", "helloworld.Greeter/SayHello");
    AddStringAttr(current.mutable_attributes(), "rpc.response.status_code", text);
    ASSERT_TRUE(ConvertSpan(current, {}, &span).ok());
    EXPECT_EQ(span.grpc_status, code) << text;
  }
}

TEST(SpanConvert, RejectsInvalidIds) {
  opentelemetry::proto::trace::v1::Span in;
  trace::Span span;
  in.set_span_id(kSpanId);
  EXPECT_FALSE(ConvertSpan(in, {}, &span).ok());  // no trace id
  in.set_trace_id(std::string(16, '\0'));
  EXPECT_FALSE(ConvertSpan(in, {}, &span).ok());  // all-zero trace id
  in.set_trace_id(kTraceId.substr(0, 12));
  EXPECT_FALSE(ConvertSpan(in, {}, &span).ok());  // 12 bytes: base64-decoded hex, say
  in.set_trace_id(kTraceId);
  in.set_parent_span_id("abc");
  EXPECT_FALSE(ConvertSpan(in, {}, &span).ok());
  in.set_parent_span_id("");
  EXPECT_TRUE(ConvertSpan(in, {}, &span).ok());
}

}  // namespace
}  // namespace sonde::otlp
