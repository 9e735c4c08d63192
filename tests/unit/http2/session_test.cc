// HTTP/2 session: frames -> streams -> records, from hand-made byte streams.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/protocols/http2/definition.h"
#include "agent/protocols/http2/session.h"
#include "tests/unit/http2/h2_test_util.h"

namespace sonde::protocols::http2 {
namespace {

using namespace testing;  // NOLINT: test builders
constexpr Direction kOut = Direction::kEgress;
constexpr Direction kIn = Direction::kIngress;

// A client<->server conversation built frame by frame with real HPACK state.
struct Conversation {
  Deflater client_hpack;
  Deflater server_hpack;
  std::string c2s;  // what the client wrote
  std::string s2c;  // what the server wrote
  std::vector<size_t> c2s_frames;  // offsets of frames in c2s

  void Start() {
    c2s += kConnectionPreface;
    AddC(Settings({{settings::kEnablePush, 0}, {settings::kInitialWindowSize, 1 << 20}}));
    AddC(WindowUpdate(0, 1 << 20));
    s2c += Settings({{settings::kMaxConcurrentStreams, 100}, {settings::kHeaderTableSize, 4096}});
    s2c += SettingsAck();
    AddC(SettingsAck());
  }
  void AddC(const std::string& frame) {
    c2s_frames.push_back(c2s.size());
    c2s += frame;
  }
  Headers Request(const std::string& method, const std::string& path,
                  const std::string& authority = "api.example.com") {
    return {{":method", method},
            {":scheme", "http"},
            {":authority", authority},
            {":path", path},
            {"user-agent", "h2-test/1.0"},
            {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}};
  }
  void Get(uint32_t id, const std::string& path, int status, const std::string& body) {
    AddC(HeadersFrame(id, client_hpack.Encode(Request("GET", path)), /*end_stream=*/true));
    s2c += HeadersFrame(id,
                        server_hpack.Encode({{":status", std::to_string(status)},
                                             {"content-type", "text/plain"},
                                             {"server", "test"}}),
                        body.empty());
    if (!body.empty()) s2c += DataFrame(id, body, true);
  }
};

struct Summary {
  uint32_t stream = 0;
  std::string method, path, query, authority;
  int status = 0;
  uint64_t req_body = 0, resp_body = 0, req_bytes = 0, resp_bytes = 0;
  size_t req_headers = 0, resp_headers = 0;
  uint32_t flags = 0;
  L7Protocol protocol = L7Protocol::kUnknown;
  bool operator==(const Summary&) const = default;
};
std::vector<Summary> Summarise(std::vector<L7Record> records) {
  std::vector<Summary> out;
  for (const L7Record& r : records) {
    out.push_back(Summary{r.stream_id, r.method, r.path, r.query, r.authority, r.status,
                          r.request.body_bytes, r.response.body_bytes, r.request.bytes,
                          r.response.bytes, r.request.headers.size(), r.response.headers.size(),
                          r.flags, r.protocol});
  }
  std::sort(out.begin(), out.end(),
            [](const Summary& a, const Summary& b) { return a.stream < b.stream; });
  return out;
}

// A connection exercising CONTINUATION, padding, priority, trailers, PING,
// interleaved streams and an unknown extension frame.
Conversation RichConversation() {
  Conversation c;
  c.Start();
  // Stream 1: GET whose header block is split over HEADERS + 2 CONTINUATION.
  Headers big = c.Request("GET", "/continued?x=1");
  big.emplace_back("x-long", std::string(300, 'z'));
  const std::string block = c.client_hpack.Encode(big);
  const size_t third = block.size() / 3;
  c.AddC(HeadersFrame(1, block.substr(0, third), true, /*end_headers=*/false));
  c.AddC(Frame(FrameType::kContinuation, 0, 1, block.substr(third, third)));
  c.AddC(Frame(FrameType::kContinuation, flags::kEndHeaders, 1, block.substr(2 * third)));
  // Stream 3: POST with padded + prioritised HEADERS and padded DATA.
  const std::string post = c.client_hpack.Encode(c.Request("POST", "/upload"));
  std::string payload;
  payload.push_back(4);                      // pad length
  payload += std::string("\x80\x00\x00\x01\x10", 5);  // exclusive dep on 1, weight
  payload += post;
  payload += std::string(4, '\0');
  c.AddC(Frame(FrameType::kHeaders, flags::kEndHeaders | flags::kPadded | flags::kPriority, 3,
               payload));
  c.AddC(Frame(FrameType::kPriority, 0, 3, std::string("\x00\x00\x00\x00\x20", 5)));
  std::string data;
  data.push_back(7);
  data += "hello world body";
  data += std::string(7, '\0');
  c.AddC(Frame(FrameType::kData, flags::kPadded, 3, data));
  c.AddC(Frame(static_cast<FrameType>(0xb), 0, 0, "ext"));  // unknown type: ignored
  c.AddC(DataFrame(3, "-more", true));
  c.AddC(Ping());
  // Responses interleaved: 3 starts before 1 finishes; 3 ends with trailers.
  c.s2c += HeadersFrame(3, c.server_hpack.Encode({{":status", "201"}, {"server", "t"}}), false);
  c.s2c += HeadersFrame(1, c.server_hpack.Encode({{":status", "100"}}), false);  // 1xx
  c.s2c += HeadersFrame(1, c.server_hpack.Encode({{":status", "200"}, {"server", "t"}}), false);
  c.s2c += DataFrame(3, "created", false);
  c.s2c += DataFrame(1, "part1-", false);
  c.s2c += Ping();
  c.s2c += DataFrame(1, "part2", true);
  c.s2c += HeadersFrame(3, c.server_hpack.Encode({{"x-checksum", "abc"}}), true);  // trailers
  return c;
}

std::vector<L7Record> FeedWhole(const Conversation& c, Role role = Role::kClient) {
  Feeder f(role);
  f.Send(kOut, c.c2s);
  f.Send(kIn, c.s2c);
  return f.Take();
}

TEST(Http2Session, RichConversationRecords) {
  const Conversation c = RichConversation();
  Feeder f(Role::kClient);
  f.Send(kOut, c.c2s, 100);
  f.Send(kIn, c.s2c, 200);
  const auto records = f.Take();
  ASSERT_EQ(records.size(), 2u);
  const auto s = Summarise(records);
  EXPECT_EQ(s[0].stream, 1u);
  EXPECT_EQ(s[0].method, "GET");
  EXPECT_EQ(s[0].path, "/continued");
  EXPECT_EQ(s[0].query, "x=1");
  EXPECT_EQ(s[0].authority, "api.example.com");
  EXPECT_EQ(s[0].status, 200);
  EXPECT_EQ(s[0].resp_body, 11u);
  EXPECT_EQ(s[0].protocol, L7Protocol::kHttp2);
  EXPECT_EQ(s[1].stream, 3u);
  EXPECT_EQ(s[1].method, "POST");
  EXPECT_EQ(s[1].path, "/upload");
  EXPECT_EQ(s[1].status, 201);
  EXPECT_EQ(s[1].req_body, 16u + 5u);  // padding excluded
  EXPECT_EQ(s[1].resp_body, 7u);
  EXPECT_EQ(s[0].flags, 0u);
  EXPECT_EQ(s[1].flags, 0u);
  for (const L7Record& r : records) {
    EXPECT_EQ(r.version, "2");
    EXPECT_TRUE(r.request.complete);
    EXPECT_TRUE(r.response.complete);
    EXPECT_EQ(r.request.first_byte_ns, 100u);
    EXPECT_EQ(r.response.first_byte_ns, 200u);
    EXPECT_TRUE(r.request.first_tcp_seq.has_value());
    ASSERT_TRUE(r.RequestHeader("traceparent").has_value());
    EXPECT_EQ(*r.RequestHeader("user-agent"), "h2-test/1.0");
  }
  const auto& trailer_rec = records[0].stream_id == 3 ? records[0] : records[1];
  ASSERT_TRUE(trailer_rec.ResponseHeader("x-checksum").has_value());
  // The request of stream 1 starts after the preface, SETTINGS, WINDOW_UPDATE, SETTINGS ACK.
  const auto& r1 = records[0].stream_id == 1 ? records[0] : records[1];
  EXPECT_EQ(*r1.request.first_tcp_seq, 1000u + c.c2s_frames[3]);
  const auto& h2 = f.session().http2_counters();
  EXPECT_EQ(h2.frames[static_cast<int>(FrameType::kContinuation)], 2u);
  EXPECT_EQ(h2.unknown_type_frames, 1u);
  EXPECT_EQ(h2.prefaces, 1u);
  EXPECT_EQ(f.session().counters().parse_errors, 0u);
  EXPECT_EQ(f.session().hpack_counters().blocks_degraded, 0u);
}

TEST(Http2Session, SplitAtEveryByteBoundary) {
  const Conversation c = RichConversation();
  const auto expected = Summarise(FeedWhole(c));
  ASSERT_EQ(expected.size(), 2u);
  for (size_t k = 1; k < c.c2s.size(); ++k) {
    Feeder f(Role::kClient);
    f.Send(kOut, c.c2s.substr(0, k));
    f.Send(kOut, c.c2s.substr(k));
    f.Send(kIn, c.s2c);
    ASSERT_EQ(Summarise(f.Take()), expected) << "client split at " << k;
  }
  for (size_t k = 1; k < c.s2c.size(); ++k) {
    Feeder f(Role::kServer);  // the same bytes seen from the server's socket
    f.Send(kIn, c.c2s);
    f.Send(kOut, c.s2c.substr(0, k));
    f.Send(kOut, c.s2c.substr(k));
    ASSERT_EQ(Summarise(f.Take()), expected) << "server split at " << k;
  }
  // And one byte per call in both directions.
  Feeder f(Role::kClient);
  f.SendSplit(kOut, c.c2s, 1);
  f.SendSplit(kIn, c.s2c, 1);
  EXPECT_EQ(Summarise(f.Take()), expected);
}

Conversation ManyGets(int n, std::vector<size_t>* request_frame_index = nullptr) {
  Conversation c;
  c.Start();
  for (int i = 0; i < n; ++i) {
    const uint32_t id = 1 + 2 * static_cast<uint32_t>(i);
    if (request_frame_index) request_frame_index->push_back(c.c2s_frames.size());
    // Each request adds a new indexed header, so the client's table changes.
    Headers h = c.Request("GET", "/items/" + std::to_string(i));
    h.emplace_back("x-request-id", "rid-" + std::to_string(i));
    c.AddC(HeadersFrame(id, c.client_hpack.Encode(h), true));
    c.s2c += HeadersFrame(id, c.server_hpack.Encode({{":status", i % 4 == 3 ? "404" : "200"},
                                                      {"content-type", "text/plain"}}),
                          false);
    c.s2c += DataFrame(id, "body-" + std::to_string(i), true);
  }
  return c;
}

TEST(Http2Session, DroppedFrameLaterStreamsStillDecode) {
  std::vector<size_t> req_frame;
  const Conversation c = ManyGets(10, &req_frame);
  // Drop the HEADERS frame of the 5th request (stream 9), reported as a gap.
  const size_t begin = c.c2s_frames[req_frame[4]];
  const size_t end = c.c2s_frames[req_frame[5]];
  Feeder f(Role::kClient);
  f.Send(kOut, c.c2s.substr(0, begin));
  f.Gap(kOut, end - begin);
  f.Send(kOut, c.c2s.substr(end));
  f.Send(kIn, c.s2c);
  const auto records = Summarise(f.Take());
  ASSERT_EQ(records.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    const Summary& r = records[static_cast<size_t>(i)];
    EXPECT_EQ(r.stream, 1u + 2 * static_cast<uint32_t>(i));
    EXPECT_EQ(r.status, i % 4 == 3 ? 404 : 200) << i;
    if (i == 4) {
      EXPECT_TRUE(r.method.empty());
      EXPECT_NE(r.flags & kRecordTruncated, 0u);
      continue;
    }
    EXPECT_EQ(r.method, "GET") << i;
    EXPECT_EQ(r.path, "/items/" + std::to_string(i)) << i;
    if (i > 4) {
      // Fields that referenced the client's lost table entries are unknown.
      EXPECT_NE(r.flags & kRecordHeadersPartial, 0u) << i;
    } else {
      EXPECT_EQ(r.flags, 0u) << i;
      EXPECT_EQ(r.authority, "api.example.com");
    }
  }
  EXPECT_EQ(f.session().counters().gaps_desynced, 1u);
  EXPECT_GE(f.session().counters().resyncs, 1u);
  EXPECT_GE(f.session().hpack_counters().unknown_fields, 5u);
}

TEST(Http2Session, UnalignedLossResyncsToNextFrame) {
  const Conversation c = ManyGets(12);
  // Lose 40 bytes starting in the middle of some frame, size unknown.
  const size_t begin = c.c2s.size() / 2 + 3;
  Feeder f(Role::kClient);
  f.Send(kOut, c.c2s.substr(0, begin));
  f.Gap(kOut, kUnknownGapBytes);
  f.Send(kOut, c.c2s.substr(begin + 40));
  f.Send(kIn, c.s2c);
  const auto records = Summarise(f.Take());
  ASSERT_EQ(records.size(), 12u);
  // The last requests are decoded again after the resync.
  EXPECT_EQ(records.back().method, "GET");
  EXPECT_EQ(records.back().path, "/items/11");
  EXPECT_GE(f.session().counters().resyncs, 1u);
  EXPECT_GT(f.session().http2_counters().resync_bytes_skipped, 0u);
}

TEST(Http2Session, GapInsideDataIsAbsorbed) {
  Conversation c;
  c.Start();
  c.AddC(HeadersFrame(1, c.client_hpack.Encode(c.Request("POST", "/big")), false));
  const size_t data_at = c.c2s.size();
  c.AddC(DataFrame(1, std::string(5000, 'x'), true));
  c.s2c += HeadersFrame(1, c.server_hpack.Encode({{":status", "204"}}), true);
  Feeder f(Role::kClient);
  f.Send(kOut, c.c2s.substr(0, data_at + 9 + 1000));  // frame header + 1000 body bytes
  f.Gap(kOut, 3000);                                 // prefix-only capture
  f.Send(kOut, c.c2s.substr(data_at + 9 + 4000));
  f.Send(kIn, c.s2c);
  const auto records = f.Take();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].status, 204);
  EXPECT_EQ(records[0].request.body_bytes, 5000u);
  EXPECT_TRUE(records[0].request.complete);
  EXPECT_NE(records[0].flags & kRecordTruncated, 0u);
  EXPECT_EQ(f.session().counters().gaps_absorbed, 1u);
  EXPECT_EQ(f.session().counters().gaps_desynced, 0u);
}

TEST(Http2Session, LateJoinFromMiddleOfConnection) {
  const Conversation c = ManyGets(20);
  // The agent starts mid-frame in both directions.
  const size_t c_from = c.c2s.size() / 2 + 5;
  const size_t s_from = c.s2c.size() / 2 + 3;
  Feeder f(Role::kClient, /*late_join=*/true);
  f.Send(kOut, c.c2s.substr(c_from));
  f.Send(kIn, c.s2c.substr(s_from));
  const auto records = Summarise(f.Take());
  ASSERT_GE(records.size(), 8u);
  int with_path = 0;
  for (const Summary& r : records) {
    EXPECT_NE(r.flags & kRecordLateJoin, 0u);
    if (r.method == "GET") {
      const uint32_t i = (r.stream - 1) / 2;
      EXPECT_EQ(r.path, "/items/" + std::to_string(i));
      if ((r.flags & kRecordNoResponse) == 0) {
        EXPECT_EQ(r.status, i % 4 == 3 ? 404 : 200);
      }
      ++with_path;
    }
  }
  EXPECT_GE(with_path, 8);
  EXPECT_EQ(f.session().counters().late_join, records.size());
}

// --- gRPC -------------------------------------------------------------------

Headers GrpcRequest(const std::string& path) {
  return {{":method", "POST"},      {":scheme", "http"},
          {":path", path},          {":authority", "localhost:50051"},
          {"te", "trailers"},       {"content-type", "application/grpc"},
          {"grpc-accept-encoding", "identity"}};
}

TEST(Http2Grpc, UnaryServerStreamingBidiAndTrailersOnly) {
  Conversation c;
  c.Start();
  auto& ch = c.client_hpack;
  auto& sh = c.server_hpack;
  // 1: unary.
  c.AddC(HeadersFrame(1, ch.Encode(GrpcRequest("/helloworld.Greeter/SayHello")), false));
  c.AddC(DataFrame(1, GrpcMessage("\x0a\x05world"), true));
  c.s2c += HeadersFrame(1, sh.Encode({{":status", "200"}, {"content-type", "application/grpc"}}),
                        false);
  c.s2c += DataFrame(1, GrpcMessage("\x0a\x0bhello world"), false);
  c.s2c += HeadersFrame(1, sh.Encode({{"grpc-status", "0"}, {"grpc-message", ""}}), true);
  // 3: server streaming, 5 messages: one split over two DATA frames, two in one frame.
  c.AddC(HeadersFrame(3, ch.Encode(GrpcRequest("/routeguide.RouteGuide/ListFeatures")), false));
  c.AddC(DataFrame(3, GrpcMessage("rect"), true));
  c.s2c += HeadersFrame(3, sh.Encode({{":status", "200"}, {"content-type", "application/grpc"}}),
                        false);
  const std::string m1 = GrpcMessage(std::string(100, 'a'));
  c.s2c += DataFrame(3, m1.substr(0, 3), false);
  c.s2c += DataFrame(3, m1.substr(3), false);
  c.s2c += DataFrame(3, GrpcMessage("b") + GrpcMessage("cc"), false);
  c.s2c += DataFrame(3, GrpcMessage(""), false);
  c.s2c += DataFrame(3, GrpcMessage("eeee"), false);
  c.s2c += HeadersFrame(3, sh.Encode({{"grpc-status", "0"}}), true);
  // 5: bidi, 3 messages each way, client half-closes with an empty DATA frame.
  c.AddC(HeadersFrame(5, ch.Encode(GrpcRequest("/routeguide.RouteGuide/RouteChat")), false));
  c.s2c += HeadersFrame(5, sh.Encode({{":status", "200"}, {"content-type", "application/grpc"}}),
                        false);
  for (int i = 0; i < 3; ++i) {
    c.AddC(DataFrame(5, GrpcMessage("note" + std::to_string(i)), false));
    c.s2c += DataFrame(5, GrpcMessage("echo" + std::to_string(i)), false);
  }
  c.AddC(DataFrame(5, "", true));
  c.s2c += HeadersFrame(5, sh.Encode({{"grpc-status", "0"}}), true);
  // 7: trailers-only error response.
  c.AddC(HeadersFrame(7, ch.Encode(GrpcRequest("/helloworld.Greeter/SayHello")), false));
  c.AddC(DataFrame(7, GrpcMessage("x"), true));
  c.s2c += HeadersFrame(7,
                        sh.Encode({{":status", "200"},
                                   {"content-type", "application/grpc"},
                                   {"grpc-status", "5"},
                                   {"grpc-message", "not%20found%3A%20x"}}),
                        true);

  for (size_t piece : {size_t{100000}, size_t{7}, size_t{1}}) {
    Feeder f(Role::kServer);
    f.SendSplit(kIn, c.c2s, piece);
    f.SendSplit(kOut, c.s2c, piece);
    auto records = f.Take();
    std::sort(records.begin(), records.end(),
              [](const L7Record& a, const L7Record& b) { return a.stream_id < b.stream_id; });
    ASSERT_EQ(records.size(), 4u) << piece;
    for (const L7Record& r : records) {
      EXPECT_EQ(r.protocol, L7Protocol::kGrpc);
      EXPECT_EQ(r.method, "POST");
      EXPECT_EQ(r.status, 200);
    }
    EXPECT_EQ(records[0].rpc_service, "helloworld.Greeter");
    EXPECT_EQ(records[0].rpc_method, "SayHello");
    EXPECT_EQ(records[0].grpc_status, 0);
    EXPECT_EQ(records[0].request_messages, 1u);
    EXPECT_EQ(records[0].response_messages, 1u);
    EXPECT_EQ(records[1].rpc_service, "routeguide.RouteGuide");
    EXPECT_EQ(records[1].rpc_method, "ListFeatures");
    EXPECT_EQ(records[1].request_messages, 1u);
    EXPECT_EQ(records[1].response_messages, 5u);
    EXPECT_EQ(records[1].grpc_status, 0);
    EXPECT_EQ(records[2].rpc_method, "RouteChat");
    EXPECT_EQ(records[2].request_messages, 3u);
    EXPECT_EQ(records[2].response_messages, 3u);
    EXPECT_EQ(records[3].grpc_status, 5);
    EXPECT_EQ(records[3].grpc_message, "not found: x");
    EXPECT_EQ(records[3].response_messages, 0u);
    EXPECT_TRUE(records[3].response.complete);
  }
}

TEST(Http2Grpc, LateJoinStillRecognisesGrpcByFraming) {
  Conversation c;
  c.Start();
  auto& ch = c.client_hpack;
  auto& sh = c.server_hpack;
  uint32_t id = 1;
  auto call = [&](const std::string& path) {
    c.AddC(HeadersFrame(id, ch.Encode(GrpcRequest(path)), false));
    c.AddC(DataFrame(id, GrpcMessage("req"), true));
    c.s2c += HeadersFrame(id, sh.Encode({{":status", "200"}, {"content-type", "application/grpc"}}),
                          false);
    c.s2c += DataFrame(id, GrpcMessage("resp"), false);
    c.s2c += HeadersFrame(id, sh.Encode({{"grpc-status", "0"}}), true);
    id += 2;
  };
  for (int i = 0; i < 5; ++i) call("/helloworld.Greeter/SayHello");
  const size_t c_from = c.c2s.size();
  const size_t s_from = c.s2c.size();
  for (int i = 0; i < 5; ++i) call("/helloworld.Greeter/SayHello");
  Feeder f(Role::kClient, /*late_join=*/true);
  f.Send(kOut, c.c2s.substr(c_from));
  f.Send(kIn, c.s2c.substr(s_from));
  const auto records = f.Take();
  ASSERT_EQ(records.size(), 5u);
  for (const L7Record& r : records) {
    EXPECT_EQ(r.protocol, L7Protocol::kGrpc);  // content-type was a lost dynamic entry
    EXPECT_EQ(r.path, "/helloworld.Greeter/SayHello");
    EXPECT_EQ(r.rpc_service, "helloworld.Greeter");
    EXPECT_EQ(r.rpc_method, "SayHello");
    EXPECT_EQ(r.request_messages, 1u);
    EXPECT_EQ(r.response_messages, 1u);
    EXPECT_NE(r.flags & kRecordLateJoin, 0u);
    EXPECT_NE(r.flags & kRecordHeadersPartial, 0u);
  }
}

// --- Other frames -------------------------------------------------------------

TEST(Http2Session, RstStreamAndPushPromise) {
  Conversation c;
  c.Start();
  c.AddC(HeadersFrame(1, c.client_hpack.Encode(c.Request("GET", "/index.html")), true));
  c.AddC(HeadersFrame(3, c.client_hpack.Encode(c.Request("GET", "/slow")), true));
  c.AddC(Frame(FrameType::kRstStream, 0, 3, U32(8)));  // CANCEL
  // Server pushes /style.css on stream 2 before answering stream 1.
  const std::string promised =
      c.server_hpack.Encode({{":method", "GET"}, {":scheme", "http"},
                             {":authority", "api.example.com"}, {":path", "/style.css"}});
  c.s2c += Frame(FrameType::kPushPromise, flags::kEndHeaders, 1, U32(2) + promised);
  c.s2c += HeadersFrame(1, c.server_hpack.Encode({{":status", "200"}}), false);
  c.s2c += DataFrame(1, "<html>", true);
  c.s2c += HeadersFrame(2, c.server_hpack.Encode({{":status", "200"}}), false);
  c.s2c += DataFrame(2, "body{}", true);
  c.s2c += Frame(FrameType::kGoaway, 0, 0, U32(3) + U32(0));
  const auto records = Summarise(FeedWhole(c));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].stream, 1u);
  EXPECT_EQ(records[0].path, "/index.html");
  EXPECT_EQ(records[1].stream, 2u);
  EXPECT_EQ(records[1].method, "GET");
  EXPECT_EQ(records[1].path, "/style.css");
  EXPECT_EQ(records[1].status, 200);
  EXPECT_EQ(records[1].resp_body, 6u);
  EXPECT_EQ(records[2].stream, 3u);
  EXPECT_NE(records[2].flags & kRecordStreamReset, 0u);
  EXPECT_NE(records[2].flags & kRecordNoResponse, 0u);
}

TEST(Http2Session, UnknownRoleLearnedFromPreface) {
  const Conversation c = ManyGets(3);
  Feeder f(Role::kUnknown);
  f.Send(kIn, c.c2s);  // the peer is the client
  f.Send(kOut, c.s2c);
  const auto records = Summarise(f.Take());
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[2].method, "GET");
  EXPECT_EQ(records[2].status, 200);
  EXPECT_EQ(records[2].resp_body, 6u);
}

TEST(Http2Session, HeaderTableSizeSettingIsHonoured) {
  // The server allows a 64 KiB table; the client's encoder grows into it.
  Conversation c;
  c.c2s += kConnectionPreface;
  c.AddC(Settings());
  c.s2c += Settings({{settings::kHeaderTableSize, 65536}});
  c.client_hpack = Deflater(65536);
  for (uint32_t i = 0; i < 40; ++i) {
    Headers h = c.Request("GET", "/t");
    h.emplace_back("x-blob-" + std::to_string(i), std::string(1000, 'q'));
    c.AddC(HeadersFrame(1 + 2 * i, c.client_hpack.Encode(h), true));
    c.s2c += HeadersFrame(1 + 2 * i, c.server_hpack.Encode({{":status", "200"}}), true);
  }
  Feeder f(Role::kClient);
  f.Send(kIn, c.s2c.substr(0, 15));  // server SETTINGS first
  f.Send(kOut, c.c2s);
  f.Send(kIn, c.s2c.substr(15));
  const auto records = Summarise(f.Take());
  ASSERT_EQ(records.size(), 40u);
  for (const auto& r : records) EXPECT_EQ(r.flags, 0u);
  EXPECT_EQ(f.session().hpack_counters().blocks_degraded, 0u);
}

// --- Inference -----------------------------------------------------------------

TEST(Http2Infer, PrefaceFramesAndNoise) {
  const std::string preface(kConnectionPreface);
  EXPECT_EQ(Infer(preface + Settings(), kOut, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer(preface.substr(0, 10), kOut, Role::kClient), InferResult::kMaybeNeedMore);
  EXPECT_EQ(Infer(Settings() + SettingsAck(), kIn, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer(Settings({{settings::kMaxFrameSize, 16384}}), kIn, Role::kClient),
            InferResult::kYes);
  EXPECT_EQ(Infer("GET / HTTP/1.1\r\nHost: x\r\n\r\n", kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("HTTP/1.1 200 OK\r\n", kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), kOut,
                  Role::kClient),
            InferResult::kNo);
  // Late join: a HEADERS + DATA pair from the middle of a connection.
  Deflater d;
  const std::string mid = HeadersFrame(41, d.Encode({{":method", "POST"}, {":path", "/a.B/C"}}),
                                       false) +
                          DataFrame(41, GrpcMessage("x"), true);
  EXPECT_EQ(Infer(mid, kOut, Role::kUnknown), InferResult::kYes);
  EXPECT_EQ(InferRole(mid, kOut), Role::kClient);
  EXPECT_EQ(InferRole(mid, kIn), Role::kServer);
  const std::string resp = HeadersFrame(41, d.Encode({{":status", "200"}}), true);
  EXPECT_EQ(InferRole(resp, kIn), Role::kClient);
  EXPECT_EQ(InferRole(preface, kIn), Role::kServer);
  // Registry plumbing.
  const ProtocolDefinition def = Definition();
  EXPECT_EQ(def.protocol, L7Protocol::kHttp2);
  auto session = def.make_session(Role::kClient, true);
  ASSERT_NE(session, nullptr);
}

// --- Robustness ------------------------------------------------------------------

TEST(Http2Session, GarbageAndMutationsNeverCrash) {
  std::mt19937 rng(1234);
  const Conversation c = RichConversation();
  const Conversation g = ManyGets(30);
  for (int iter = 0; iter < 3000; ++iter) {
    const Conversation& src = iter % 2 ? c : g;
    std::string a = src.c2s;
    std::string b = src.s2c;
    const int mutations = static_cast<int>(rng() % 8);
    for (int m = 0; m < mutations; ++m) {
      std::string& t = rng() % 2 ? a : b;
      if (t.empty()) continue;
      switch (rng() % 3) {
        case 0: t[rng() % t.size()] = static_cast<char>(rng()); break;
        case 1: t.erase(rng() % t.size(), rng() % 50); break;
        default: t.insert(rng() % t.size(), std::string(rng() % 20, static_cast<char>(rng())));
      }
    }
    if (iter % 5 == 0) {  // pure noise
      for (char& ch : a) ch = static_cast<char>(rng());
    }
    Feeder f(static_cast<Role>(rng() % 3), /*late_join=*/rng() % 2 == 0);
    size_t pa = 0, pb = 0;
    while (pa < a.size() || pb < b.size()) {
      if (rng() % 17 == 0) f.Gap(rng() % 2 ? kOut : kIn, rng() % 3 ? rng() % 100 : kUnknownGapBytes);
      const size_t na = std::min<size_t>(a.size() - pa, 1 + rng() % 300);
      f.Send(kOut, std::string_view(a).substr(pa, na));
      pa += na;
      const size_t nb = std::min<size_t>(b.size() - pb, 1 + rng() % 300);
      f.Send(kIn, std::string_view(b).substr(pb, nb));
      pb += nb;
    }
    f.Send(kOut, "", 1, /*closed=*/true);
    (void)f.Take();
  }
  SUCCEED();
}

}  // namespace
}  // namespace sonde::protocols::http2

namespace sonde::protocols::http2 {
namespace {

// An idle connection keeps its HTTP/2 session as Freeze()'s few bytes: the
// thawed session decodes what follows exactly as the original does (HPACK
// tables after a table resize, entries referenced by index, the peer's frame
// size, the role). A stream in flight or a lost table does not freeze; bytes
// Freeze did not write do not thaw.
TEST(Http2Session, FreezeThawKeepsWhatLaterBytesNeed) {
  Conversation c;
  c.Start();
  c.AddC(Settings({{settings::kMaxFrameSize, 1 << 15}}));  // the server may send 32 KiB frames
  c.server_hpack.ChangeTableSize(1024);  // a size update in the next response block
  c.Get(1, "/first", 200, "ok");
  Feeder f(Role::kClient);
  f.Send(kOut, c.c2s);
  f.Send(kIn, c.s2c);
  ASSERT_EQ(f.Take(/*closing=*/false).size(), 1u);

  const std::string frozen = f.session().Freeze();
  ASSERT_FALSE(frozen.empty());
  EXPECT_LT(frozen.size(), 400u) << "a few hundred bytes, not a session";
  std::unique_ptr<Http2Session> thawed = Http2Session::Thaw(frozen);
  ASSERT_NE(thawed, nullptr);
  EXPECT_EQ(thawed->Freeze(), frozen) << "same role, framing limits and tables";

  Feeder g(Role::kServer);  // the role comes from the frozen bytes
  g.session() = std::move(*thawed);
  c.c2s.clear();
  c.s2c.clear();
  c.Get(3, "/second", 404, "");
  c.Get(5, "/third", 200, std::string(20000, 'x'));  // one DATA frame above 16 KiB: the raised limit
  for (Feeder* feeder : {&f, &g}) {
    feeder->Send(kOut, c.c2s);
    feeder->Send(kIn, c.s2c);
  }
  const auto original = Summarise(f.Take());
  const auto after_thaw = Summarise(g.Take());
  ASSERT_EQ(original.size(), 2u);
  EXPECT_EQ(after_thaw, original);
  EXPECT_EQ(after_thaw[0].authority, "api.example.com");
  EXPECT_EQ(after_thaw[0].status, 404);
  EXPECT_EQ(after_thaw[0].flags & kRecordHeadersPartial, 0u);
  EXPECT_EQ(after_thaw[1].resp_body, 20000u);
  EXPECT_EQ(g.session().hpack_counters().blocks_degraded, 0u);

  // A request in flight: not frozen.
  c.c2s.clear();
  c.AddC(HeadersFrame(7, c.client_hpack.Encode(c.Request("GET", "/pending")), true));
  f.Send(kOut, c.c2s);
  EXPECT_TRUE(f.session().Freeze().empty());
  // A late-joined session does not know its tables: not frozen.
  Feeder late(Role::kClient, /*late_join=*/true);
  EXPECT_TRUE(late.session().Freeze().empty());
  // Bytes Freeze did not write.
  EXPECT_EQ(Http2Session::Thaw(""), nullptr);
  EXPECT_EQ(Http2Session::Thaw(frozen.substr(0, frozen.size() - 1)), nullptr);
  EXPECT_EQ(Http2Session::Thaw(frozen + "x"), nullptr);
  std::string bad_phase = frozen;
  bad_phase[2] = 9;
  EXPECT_EQ(Http2Session::Thaw(bad_phase), nullptr);
}

}  // namespace
}  // namespace sonde::protocols::http2
