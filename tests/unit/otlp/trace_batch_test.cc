// The wire decoder (DecodeTraceBatchWire) against protobuf's parser: what it
// accepts, protobuf accepts with the same values; what it declines, the
// ingestor hands to protobuf; malformed bodies are refused either way.
#include "agent/otlp/trace_batch.h"

#include <gtest/gtest.h>

#include <random>
#include <variant>

#include "agent/otlp/ingestor.h"
#include "agent/otlp/span_convert.h"
#include "tests/unit/otlp/test_util.h"

namespace sonde::otlp {
namespace {

using opentelemetry::proto::trace::v1::Span;
using testing::AddIntAttr;
using testing::AddStringAttr;
using testing::MakeTraceRequest;

// A request touching every field the decoder reads or validates.
ExportTraceRequest RichRequest() {
  ExportTraceRequest request = MakeTraceRequest(3);
  auto* rs = request.mutable_resource_spans(0);
  rs->set_schema_url("https://opentelemetry.io/schemas/1.21.0");
  AddIntAttr(rs->mutable_resource()->mutable_attributes(), "process.pid", 4242);
  rs->mutable_resource()->set_dropped_attributes_count(2);
  auto* ss = rs->mutable_scope_spans(0);
  ss->mutable_scope()->set_version("1.2.3");
  AddStringAttr(ss->mutable_scope()->mutable_attributes(), "scope.attr", "x");
  ss->set_schema_url("s");
  Span* s = ss->mutable_spans(0);
  s->set_trace_state("vendor=a");
  s->set_flags(0x301);
  s->set_dropped_attributes_count(1);
  s->mutable_status()->set_code(opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  s->mutable_status()->set_message("boom: ünïcode");
  auto* event = s->add_events();
  event->set_name("exception");
  AddStringAttr(event->mutable_attributes(), "exception.message", "bad");
  auto* link = s->add_links();
  link->set_trace_id(testing::kTraceId);
  link->set_span_id(testing::kSpanId);
  auto* attrs = s->mutable_attributes();
  auto* kv = attrs->Add();
  kv->set_key("flag");
  kv->mutable_value()->set_bool_value(true);
  kv = attrs->Add();
  kv->set_key("ratio");
  kv->mutable_value()->set_double_value(0.25);
  kv = attrs->Add();
  kv->set_key("blob");
  kv->mutable_value()->set_bytes_value(std::string("\x00\xff\x10", 3));
  kv = attrs->Add();
  kv->set_key("list");
  kv->mutable_value()->mutable_array_value()->add_values()->set_string_value("a");
  kv->mutable_value()->mutable_array_value()->add_values()->set_int_value(7);
  kv = attrs->Add();
  kv->set_key("map");
  auto* inner = kv->mutable_value()->mutable_kvlist_value()->add_values();
  inner->set_key("k");
  inner->mutable_value()->set_string_value("v");
  attrs->Add()->set_key("no.value");
  AddStringAttr(attrs, "", "empty key");
  AddStringAttr(attrs, "http.flavor", "1.1");
  AddStringAttr(attrs, "net.transport", "ip_tcp");
  AddStringAttr(attrs, "http.target", "/a/b?c=d");
  AddIntAttr(attrs, "rpc.grpc.status_code", 5);
  // A client span, a span without attributes, a second resource without one.
  ss->mutable_spans(1)->set_kind(Span::SPAN_KIND_CLIENT);
  AddStringAttr(ss->mutable_spans(1)->mutable_attributes(), "net.peer.name", "db.internal");
  AddIntAttr(ss->mutable_spans(1)->mutable_attributes(), "net.peer.port", 5432);
  ss->mutable_spans(2)->clear_attributes();
  ss->mutable_spans(2)->clear_parent_span_id();
  auto* rs2 = request.add_resource_spans();
  *rs2->add_scope_spans()->add_spans() = ss->spans(0);
  return request;
}

std::string Text(const trace::AttributeValue& v) {
  return std::visit([](const auto& x) {
    if constexpr (std::is_same_v<std::decay_t<decltype(x)>, std::string>) return "s:" + x;
    else return "n:" + std::to_string(x);
  }, v);
}

std::string Describe(const trace::Span& s) {
  std::string out = s.name + "|" + s.service_name + "|" + std::to_string(static_cast<int>(s.kind)) + "|" +
                    std::to_string(s.start_unix_ns) + "|" + std::to_string(s.end_unix_ns) + "|" +
                    std::to_string(static_cast<int>(s.status)) + "|" + s.status_message + "|" +
                    std::to_string(s.pid) + "|" + s.endpoint + "|" + std::to_string(s.http_status) + "|" +
                    std::to_string(s.grpc_status) + "|" + std::to_string(static_cast<int>(s.protocol)) + "|" +
                    s.peer.address + ":" + std::to_string(s.peer.port) + "|" + s.server.address + ":" +
                    std::to_string(s.server.port) + "|" + s.local.address + "|" + s.client.address + "|";
  for (uint8_t b : s.trace_id) out += std::to_string(b) + ",";
  for (uint8_t b : s.span_id) out += std::to_string(b) + ",";
  for (uint8_t b : s.parent_span_id) out += std::to_string(b) + ",";
  for (const auto& a : s.attributes) out += "\n  " + a.key + "=" + Text(a.value);
  return out;
}

// Every span (or rejection) a batch converts to, as text, through one reused span.
std::vector<std::string> ConvertAll(const TraceBatch& batch) {
  std::vector<std::string> out;
  trace::Span span;
  ResourceContext ctx;
  for (const ResourceView& rv : batch.resources) {
    MakeResourceContext(batch.attrs(rv.attr_begin), rv.attr_count, std::nullopt, &ctx);
    for (uint32_t i = rv.span_begin; i < rv.span_begin + rv.span_count; ++i) {
      const SpanView& in = batch.spans[i];
      absl::Status st = ConvertSpan(in, batch.attrs(in.attr_begin), ctx, &span);
      out.push_back(st.ok() ? Describe(span) : std::string(st.message()));
    }
  }
  return out;
}

// Wire decoding and protobuf parsing agree on `body` (when the wire decoder
// accepts it). Returns whether the wire decoder accepted.
bool ExpectSameAsProtobuf(const std::string& body) {
  TraceBatch wire;
  const bool fast = DecodeTraceBatchWire(body, &wire);
  ExportTraceRequest parsed;
  const bool parsed_ok = parsed.ParseFromString(body);
  if (!fast) return false;
  EXPECT_TRUE(parsed_ok) << "wire decoder accepted a body protobuf refuses";
  if (!parsed_ok) return true;
  TraceBatch from_proto;
  TraceBatchFromProto(parsed, &from_proto);
  EXPECT_EQ(ConvertAll(wire), ConvertAll(from_proto));
  return true;
}

TEST(TraceBatch, WireDecodingMatchesProtobuf) {
  const ExportTraceRequest request = RichRequest();
  const std::string body = request.SerializeAsString();
  ASSERT_TRUE(ExpectSameAsProtobuf(body));
  TraceBatch batch;
  ASSERT_TRUE(DecodeTraceBatchWire(body, &batch));
  EXPECT_EQ(batch.resources.size(), 2u);
  EXPECT_EQ(batch.spans.size(), 4u);
  const std::vector<std::string> spans = ConvertAll(batch);
  // Typed values, structured values as OTLP/JSON, bytes as base64, derived names.
  EXPECT_NE(spans[0].find("flag=n:1"), std::string::npos);
  EXPECT_NE(spans[0].find("blob=s:AP8Q"), std::string::npos);
  EXPECT_NE(spans[0].find("list=s:{\"arrayValue\""), std::string::npos) << spans[0];
  EXPECT_NE(spans[0].find("network.transport=s:tcp"), std::string::npos);
  EXPECT_NE(spans[0].find("url.query=s:c=d"), std::string::npos);
  EXPECT_NE(spans[0].find("rpc.response.status_code=s:NOT_FOUND"), std::string::npos);
  EXPECT_NE(spans[1].find("server.address=s:db.internal"), std::string::npos);
  EXPECT_EQ(spans[0].find("\n  =s:empty key"), std::string::npos);  // empty keys dropped
}

TEST(TraceBatch, ReusedSpanDoesNotCarryFieldsOver) {
  // Span 0 has HTTP fields and endpoints, span 2 none: nothing may leak.
  const std::string body = RichRequest().SerializeAsString();  // the views point into it
  TraceBatch batch;
  ASSERT_TRUE(DecodeTraceBatchWire(body, &batch));
  const std::vector<std::string> spans = ConvertAll(batch);
  trace::Span fresh;
  ResourceContext ctx;
  MakeResourceContext(batch.attrs(batch.resources[0].attr_begin), batch.resources[0].attr_count,
                      std::nullopt, &ctx);
  ASSERT_TRUE(ConvertSpan(batch.spans[2], batch.attrs(batch.spans[2].attr_begin), ctx, &fresh).ok());
  EXPECT_EQ(spans[2], Describe(fresh));
  EXPECT_EQ(fresh.http_status, 0);
  EXPECT_TRUE(fresh.endpoint.empty());
}

TEST(TraceBatch, MutatedBodiesNeverAcceptedWhereProtobufRefuses) {
  const std::string body = RichRequest().SerializeAsString();
  std::mt19937 rng(1234);
  int accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string mutated = body;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % mutated.size();
      switch (rng() % 4) {
        case 0: mutated[at] = static_cast<char>(rng()); break;
        case 1: mutated[at] = static_cast<char>(mutated[at] ^ (1 << (rng() % 8))); break;
        case 2: mutated.resize(at); break;
        default: mutated.insert(at, 1, static_cast<char>(rng())); break;
      }
      if (mutated.empty()) mutated = body;
    }
    accepted += ExpectSameAsProtobuf(mutated) ? 1 : 0;
  }
  EXPECT_GT(accepted, 0);  // some mutations stay valid (values changed)
}

class Collect : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& span) override { spans.push_back(span); }
  std::vector<trace::Span> spans;
};

IngestOptions NoResolve() {
  IngestOptions options;
  options.resolve_sender = false;
  return options;
}

TEST(TraceBatch, IngestorRefusesMalformedAndFallsBackOnUnusualBodies) {
  Ingestor ingestor(NoResolve(), NodeInfo{});
  Collect sink;
  ingestor.AddSpanSink(&sink);
  PeerInfo peer;

  // Truncated, and invalid UTF-8 in a key: refused, nothing delivered.
  const std::string body = MakeTraceRequest(2).SerializeAsString();
  EXPECT_EQ(ingestor.ExportTracesProtobuf(body.substr(0, body.size() - 3), peer).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string bad_utf8 = body;
  const size_t at = bad_utf8.find("http.method");
  ASSERT_NE(at, std::string::npos);
  bad_utf8[at] = static_cast<char>(0xff);
  EXPECT_EQ(ingestor.ExportTracesProtobuf(bad_utf8, peer).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(sink.spans.empty());

  // Two status fields merge in protobuf (message from the first, code from
  // the second): the wire decoder declines, protobuf's reading is used.
  ExportTraceRequest request = MakeTraceRequest(1);
  Span* s = request.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(0);
  s->mutable_status()->set_message("first");
  Span extra;
  extra.mutable_status()->set_code(opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  const std::string span_bytes = s->SerializeAsString() + extra.SerializeAsString();
  Span reparsed;
  ASSERT_TRUE(reparsed.ParseFromString(span_bytes));
  EXPECT_EQ(reparsed.status().message(), "first");
  EXPECT_EQ(reparsed.status().code(), opentelemetry::proto::trace::v1::Status::STATUS_CODE_ERROR);
  // Rebuild by hand: request{1: resource_spans{2: scope_spans{2: span_bytes}}}.
  auto len_field = [](int field, const std::string& payload) {
    std::string out(1, static_cast<char>((field << 3) | 2));
    size_t n = payload.size();
    while (n >= 0x80) {
      out.push_back(static_cast<char>((n & 0x7f) | 0x80));
      n >>= 7;
    }
    out.push_back(static_cast<char>(n));
    return out + payload;
  };
  const std::string dup_status = len_field(1, len_field(2, len_field(2, span_bytes)));
  TraceBatch batch;
  EXPECT_FALSE(DecodeTraceBatchWire(dup_status, &batch));
  auto result = ingestor.ExportTracesProtobuf(dup_status, peer);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(sink.spans.size(), 1u);
  EXPECT_EQ(sink.spans[0].status, trace::StatusCode::kError);
  EXPECT_EQ(sink.spans[0].status_message, "first");

  // A known field with another wire type is an unknown field to protobuf.
  const std::string odd_name = len_field(1, len_field(2, len_field(2, s->SerializeAsString() + "\x28\x01")));
  ExportTraceRequest check;
  ASSERT_TRUE(check.ParseFromString(odd_name));
  ASSERT_TRUE(ingestor.ExportTracesProtobuf(odd_name, peer).ok());
  ASSERT_EQ(sink.spans.size(), 2u);
  EXPECT_EQ(sink.spans[1].name, check.resource_spans(0).scope_spans(0).spans(0).name());

  // Accepted/rejected counters and the partial-success answer on the fast path.
  ExportTraceRequest with_bad = MakeTraceRequest(3);
  with_bad.mutable_resource_spans(0)->mutable_scope_spans(0)->mutable_spans(1)->set_trace_id("short");
  auto partial = ingestor.ExportTracesProtobuf(with_bad.SerializeAsString(), peer);
  ASSERT_TRUE(partial.ok());
  EXPECT_EQ(partial->rejected, 1);
  EXPECT_NE(partial->error_message.find("trace id"), std::string::npos);
  EXPECT_EQ(ingestor.stats().accepted(Signal::kTraces), 4u);
  EXPECT_EQ(ingestor.stats().rejected(Signal::kTraces), 1u);
}

class Forward : public OtlpSink {
 public:
  void OnMetrics(std::shared_ptr<const ExportMetricsRequest>) override {}
  void OnLogs(std::shared_ptr<const ExportLogsRequest>) override {}
  bool WantsTraces() const override { return true; }
  void OnTraces(std::shared_ptr<const ExportTraceRequest> traces) override { forwarded.push_back(traces); }
  std::vector<std::shared_ptr<const ExportTraceRequest>> forwarded;
};

TEST(TraceBatch, ForwardingSinkGetsTheEnrichedRequestAndSpansStillArrive) {
  NodeInfo node;
  node.host_name = "node-a";
  Ingestor ingestor(NoResolve(), node);
  Collect spans;
  Forward forward;
  ingestor.AddSpanSink(&spans);
  ingestor.AddOtlpSink(&forward);
  ASSERT_TRUE(ingestor.ExportTracesProtobuf(MakeTraceRequest(2).SerializeAsString(), PeerInfo{}).ok());
  EXPECT_EQ(spans.spans.size(), 2u);
  ASSERT_EQ(forward.forwarded.size(), 1u);
  const auto& rs = forward.forwarded[0]->resource_spans(0);
  bool has_host = false, has_current = false;
  for (const auto& kv : rs.resource().attributes()) has_host |= kv.key() == "host.name";
  for (const auto& kv : rs.scope_spans(0).spans(0).attributes()) has_current |= kv.key() == "http.request.method";
  EXPECT_TRUE(has_host);
  EXPECT_TRUE(has_current);
}

}  // namespace
}  // namespace sonde::otlp
