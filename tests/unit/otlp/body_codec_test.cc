#include "agent/otlp/body_codec.h"

#include <gtest/gtest.h>

#include "agent/otlp/rpc_status.h"
#include "google/protobuf/unknown_field_set.h"
#include "google/protobuf/empty.pb.h"
#include "test_util.h"

namespace sonde::otlp {
namespace {

using namespace sonde::otlp::testing;

TEST(BodyCodec, ContentTypes) {
  EXPECT_EQ(*ParseContentType("application/x-protobuf"), BodyFormat::kProtobuf);
  EXPECT_EQ(*ParseContentType("Application/JSON; charset=utf-8"), BodyFormat::kJson);
  EXPECT_FALSE(ParseContentType("text/plain").ok());
  EXPECT_FALSE(ParseContentType("").ok());
}

TEST(BodyCodec, GzipRoundTripAndConcatenatedMembers) {
  std::string plain = MakeTraceRequest(50).SerializeAsString();
  auto out = InflateBounded(GzipCompress(plain), kDefaultMaxBodyBytes);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, plain);
  auto two = InflateBounded(GzipCompress("ab") + GzipCompress("cd"), 100);
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(*two, "abcd");
}

TEST(BodyCodec, InflateStopsAtTheBound) {
  // 64 MiB of zeros compresses to ~64 KiB: a zip bomb against a 1 MiB bound.
  std::string bomb = GzipCompress(std::string(64u << 20, '\0'));
  ASSERT_LT(bomb.size(), 200u * 1024);
  auto out = InflateBounded(bomb, 1u << 20);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(BodyCodec, CorruptAndTruncatedGzip) {
  std::string gz = GzipCompress(std::string(1000, 'x'));
  EXPECT_EQ(InflateBounded(gz.substr(0, gz.size() / 2), 1 << 20).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string bad = gz;
  bad[12] ^= 0x55;
  bad[13] ^= 0x55;
  EXPECT_FALSE(InflateBounded(bad, 1 << 20).ok());
  EXPECT_FALSE(InflateBounded("not gzip at all", 1 << 20).ok());
}

TEST(BodyCodec, DecodesProtobufAndRejectsGarbage) {
  ExportTraceRequest in = MakeTraceRequest(3);
  ExportTraceRequest out;
  ASSERT_TRUE(DecodeBody(in.SerializeAsString(), BodyFormat::kProtobuf, &out).ok());
  EXPECT_EQ(out.resource_spans(0).scope_spans(0).spans_size(), 3);
  EXPECT_EQ(out.resource_spans(0).scope_spans(0).spans(0).trace_id(), kTraceId);
  EXPECT_FALSE(DecodeBody("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", BodyFormat::kProtobuf, &out).ok());
  EXPECT_FALSE(DecodeBody("\x0a\x05\x01", BodyFormat::kProtobuf, &out).ok());  // truncated length
  // Unknown fields in protobuf are kept, not rejected (forward compatibility).
  std::string with_unknown = in.SerializeAsString() + std::string("\xf8\x3e\x01", 3);  // field 1000+ varint
  EXPECT_TRUE(DecodeBody(with_unknown, BodyFormat::kProtobuf, &out).ok());
}

TEST(BodyCodec, EncodesPartialSuccessInBothFormats) {
  opentelemetry::proto::collector::trace::v1::ExportTraceServiceResponse response;
  EXPECT_EQ(EncodeBody(response, BodyFormat::kJson), "{}");
  EXPECT_EQ(EncodeBody(response, BodyFormat::kProtobuf), "");
  response.mutable_partial_success()->set_rejected_spans(2);
  response.mutable_partial_success()->set_error_message("bad ids");
  EXPECT_EQ(EncodeBody(response, BodyFormat::kJson),
            R"({"partialSuccess":{"rejectedSpans":"2","errorMessage":"bad ids"}})");
}

TEST(RpcStatus, ProtoEncodingIsAGoogleRpcStatus) {
  std::string bytes = EncodeRpcStatusProto(RpcCode::kUnavailable, "busy", 3);
  google::protobuf::UnknownFieldSet fields;
  ASSERT_TRUE(fields.ParseFromString(bytes));
  ASSERT_EQ(fields.field_count(), 3);
  EXPECT_EQ(fields.field(0).number(), 1);
  EXPECT_EQ(fields.field(0).varint(), 14u);
  EXPECT_EQ(fields.field(1).length_delimited(), "busy");
  google::protobuf::UnknownFieldSet any;
  ASSERT_TRUE(any.ParseFromString(fields.field(2).length_delimited()));
  EXPECT_EQ(any.field(0).length_delimited(), "type.googleapis.com/google.rpc.RetryInfo");
  EXPECT_EQ(EncodeRpcStatusJson(RpcCode::kInvalidArgument, "bad"), R"({"code":3,"message":"bad"})");
}

}  // namespace
}  // namespace sonde::otlp
