// HTTP/2 frame headers, plausibility, boundary search and payload stripping.
#include <random>
#include <string>

#include <gtest/gtest.h>

#include "agent/protocols/http2/frame.h"
#include "agent/protocols/http2/grpc.h"
#include "tests/unit/http2/h2_test_util.h"

namespace sonde::protocols::http2 {
namespace {

using testing::DataFrame;
using testing::Frame;
using testing::HeadersFrame;
using testing::Ping;
using testing::Settings;

TEST(Frame, ParsesHeaderFields) {
  const std::string f = Frame(FrameType::kHeaders, flags::kEndHeaders | flags::kEndStream,
                              0x7ffffffe, std::string(300, 'h'));
  const FrameHeader h = ParseFrameHeader(f);
  EXPECT_EQ(h.length, 300u);
  EXPECT_EQ(h.frame_type(), FrameType::kHeaders);
  EXPECT_EQ(h.flags, flags::kEndHeaders | flags::kEndStream);
  EXPECT_EQ(h.stream_id, 0x7ffffffeu);
  EXPECT_FALSE(h.reserved_bit);
  EXPECT_EQ(h.total_size(), 309u);
}

TEST(Frame, PlausibilityRules) {
  auto plausible = [](const std::string& f) {
    return IsPlausibleFrameHeader(ParseFrameHeader(f), kDefaultMaxFrameSize);
  };
  EXPECT_TRUE(plausible(Settings()));
  EXPECT_TRUE(plausible(Ping()));
  EXPECT_TRUE(plausible(DataFrame(1, "x", true)));
  EXPECT_FALSE(plausible(DataFrame(0, "x", true)));                     // DATA on stream 0
  EXPECT_FALSE(plausible(Frame(FrameType::kSettings, 0, 1, "")));        // SETTINGS on a stream
  EXPECT_FALSE(plausible(Frame(FrameType::kSettings, 0, 0, "12345")));   // not a multiple of 6
  EXPECT_FALSE(plausible(Frame(FrameType::kPing, 0, 0, "1234")));        // PING is 8 bytes
  EXPECT_FALSE(plausible(Frame(FrameType::kRstStream, 0, 1, "123")));    // RST is 4 bytes
  EXPECT_FALSE(plausible(Frame(FrameType::kData, 0x40, 1, "x")));        // undefined flag
  EXPECT_FALSE(plausible(Frame(static_cast<FrameType>(0x20), 0, 1, "")));  // unknown type
  EXPECT_FALSE(plausible(DataFrame(1, std::string(16385, 'x'), false)));  // above max size
  EXPECT_TRUE(IsPlausibleFrameHeader(ParseFrameHeader(DataFrame(1, std::string(16385, 'x'), false)),
                                     1 << 20));
}

TEST(Frame, FindsBoundaryAfterGarbage) {
  const std::string frames = HeadersFrame(5, "\x82\x84", true) + DataFrame(5, "abc", true) + Ping();
  std::mt19937 rng(3);
  for (int iter = 0; iter < 500; ++iter) {
    std::string garbage(rng() % 64, '\0');
    for (char& c : garbage) c = static_cast<char>(rng() | 0x80);  // never a zero length byte
    const std::string bytes = garbage + frames;
    size_t need = 0;
    const auto at = FindFrameBoundary(bytes, 0, kDefaultMaxFrameSize, false, &need);
    ASSERT_TRUE(at.has_value()) << iter;
    EXPECT_EQ(*at, garbage.size());
  }
  // Not enough bytes to confirm a candidate: wait, keeping bytes from it.
  const std::string partial = std::string("\xff\xff", 2) + HeadersFrame(5, "\x82", true).substr(0, 7);
  size_t need = 0;
  EXPECT_FALSE(FindFrameBoundary(partial, 0, kDefaultMaxFrameSize, false, &need).has_value());
  EXPECT_EQ(need, 2u);
}

TEST(Frame, StripsPaddingPriorityAndPromisedId) {
  std::string payload;
  payload.push_back(3);
  payload += std::string("\x00\x00\x00\x03\x0f", 5);
  payload += "BLOCK";
  payload += std::string(3, '\0');
  const std::string f =
      Frame(FrameType::kHeaders, flags::kPadded | flags::kPriority | flags::kEndHeaders, 1, payload);
  const FrameHeader h = ParseFrameHeader(f);
  const auto p = StripPayload(h, std::string_view(f).substr(kFrameHeaderSize));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->fragment, "BLOCK");
  EXPECT_EQ(p->padding, 4u);
  // Pad length larger than the payload is malformed.
  const std::string bad = Frame(FrameType::kData, flags::kPadded, 1, std::string("\x09xy", 3));
  EXPECT_FALSE(StripPayload(ParseFrameHeader(bad), std::string_view(bad).substr(9)).has_value());
  const std::string pp =
      Frame(FrameType::kPushPromise, flags::kEndHeaders, 1, testing::U32(4) + "HB");
  const auto pr = StripPayload(ParseFrameHeader(pp), std::string_view(pp).substr(9));
  ASSERT_TRUE(pr.has_value());
  EXPECT_EQ(pr->promised_stream, 4u);
  EXPECT_EQ(pr->fragment, "HB");
}

TEST(Grpc, PathContentTypeAndPercentDecoding) {
  std::string svc, method;
  EXPECT_TRUE(SplitGrpcPath("/grpc.health.v1.Health/Check", svc, method));
  EXPECT_EQ(svc, "grpc.health.v1.Health");
  EXPECT_EQ(method, "Check");
  EXPECT_FALSE(SplitGrpcPath("/a/b/c", svc, method));
  EXPECT_FALSE(SplitGrpcPath("/index.html", svc, method));
  EXPECT_TRUE(IsGrpcContentType("application/grpc"));
  EXPECT_TRUE(IsGrpcContentType("application/grpc+proto"));
  EXPECT_TRUE(IsGrpcContentType("Application/GRPC; charset=utf-8"));
  EXPECT_FALSE(IsGrpcContentType("application/grpcx"));
  EXPECT_FALSE(IsGrpcContentType("application/json"));
  EXPECT_EQ(PercentDecode("a%20b%3a%zz%"), "a b:%zz%");
  GrpcMessageCounter counter;
  const std::string two = testing::GrpcMessage("abc") + testing::GrpcMessage("");
  for (char c : two) counter.Feed(std::string_view(&c, 1));
  EXPECT_EQ(counter.messages(), 2u);
  EXPECT_TRUE(counter.aligned());
  counter.Feed(std::string("\x07\x00", 2));  // not a valid compressed flag
  EXPECT_TRUE(counter.framing_lost());
}

}  // namespace
}  // namespace sonde::protocols::http2
