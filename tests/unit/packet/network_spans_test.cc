#include "agent/packet/network_spans.h"

#include <gtest/gtest.h>

#include "agent/protocols/registry.h"
#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {
using testing::Frame;
using testing::TcpSeg;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kBase = 1'700'000'000'000'000'000ull;  // Unix ns

class NetworkSpansTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!protocols::FindProtocol(protocols::L7Protocol::kHttp1))
      GTEST_SKIP() << "HTTP/1 parser not built into the registry";
  }
  void Send(bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t ts,
            std::string payload = {}) {
    TcpSeg s;
    if (!from_client) {
      s.src = "10.0.0.2"; s.dst = "10.0.0.1"; s.sport = 80; s.dport = 40000;
    }
    s.seq = seq; s.ack = ack; s.flags = flags; s.payload = std::move(payload);
    auto f = Frame(s);
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(1, f, kBase + ts, p), ParseStatus::kOk);
    table_.OnPacket(p, "veth-test");
  }
  std::vector<trace::Span> spans_;
  NetworkSpanBuilder builder_{[this](trace::Span&& s) { spans_.push_back(std::move(s)); }};
  FlowTable table_{FlowTableOptions{}, &builder_};
};

TEST_F(NetworkSpansTest, HttpExchangeFromReorderedSegmentsCarriesSequenceNumbers) {
  const std::string req1 = "GET /users/42?x=1 HTTP/1.1\r\nHost: api\r\n";
  const std::string req2 =
      "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
  const std::string body = "hello world";
  const std::string resp = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\n" + body;
  Send(true, 1000, 0, kSyn, 0);
  Send(false, 5000, 1001, kSyn | kAck, 1 * kMs);
  Send(true, 1001, 5001, kAck, 2 * kMs);
  // The second half of the request arrives first.
  Send(true, 1001 + req1.size(), 5001, kAck | kPsh, 10 * kMs, req2);
  Send(true, 1001, 5001, kAck, 11 * kMs, req1);
  Send(false, 5001, 1001 + req1.size() + req2.size(), kAck | kPsh, 30 * kMs, resp.substr(0, 20));
  Send(false, 5021, 1001 + req1.size() + req2.size(), kAck | kPsh, 31 * kMs, resp.substr(20));
  ASSERT_EQ(spans_.size(), 1u) << builder_.counters().spans;
  const trace::Span& s = spans_[0];
  EXPECT_EQ(s.source, trace::SpanSource::kNetwork);
  EXPECT_EQ(s.protocol, protocols::L7Protocol::kHttp1);
  EXPECT_EQ(s.endpoint, "GET /users/42");
  EXPECT_EQ(s.http_status, 503);
  EXPECT_EQ(s.status, trace::StatusCode::kError);
  EXPECT_TRUE(s.request_seq_valid);
  EXPECT_EQ(s.request_tcp_seq, 1001u);
  EXPECT_TRUE(s.response_seq_valid);
  EXPECT_EQ(s.response_tcp_seq, 5001u);
  EXPECT_EQ(s.start_unix_ns, kBase + 11 * kMs);  // first request byte arrived with the late segment
  EXPECT_EQ(s.end_unix_ns, kBase + 31 * kMs);
  EXPECT_EQ(s.client.address, "10.0.0.1");
  EXPECT_EQ(s.server.port, 80);
  EXPECT_EQ(s.parent_reason, trace::LinkReason::kTraceparent);
  EXPECT_EQ(s.trace_id[0], 0x0a);
  EXPECT_EQ(s.trace_id[15], 0x9c);
  EXPECT_EQ(s.parent_span_id[0], 0xb7);
  EXPECT_EQ(builder_.counters().out_of_order_segments, 1u);
}

TEST_F(NetworkSpansTest, KeepAliveExchangesAndRetransmittedBytesAreNotDuplicated) {
  Send(true, 1000, 0, kSyn, 0);
  Send(false, 5000, 1001, kSyn | kAck, 1 * kMs);
  Send(true, 1001, 5001, kAck, 2 * kMs);
  uint32_t cseq = 1001, sseq = 5001;
  for (int i = 0; i < 3; ++i) {
    const std::string req = "GET /item/" + std::to_string(i) + " HTTP/1.1\r\nHost: a\r\n\r\n";
    const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    Send(true, cseq, sseq, kAck | kPsh, (10 + 10 * i) * kMs, req);
    if (i == 1) Send(true, cseq, sseq, kAck | kPsh, (11 + 10 * i) * kMs, req);  // retransmitted
    Send(false, sseq, cseq + req.size(), kAck | kPsh, (15 + 10 * i) * kMs, resp);
    const uint32_t req_seq = cseq, resp_seq = sseq;
    cseq += req.size();
    sseq += resp.size();
    ASSERT_EQ(spans_.size(), size_t(i + 1));
    EXPECT_EQ(spans_.back().request_tcp_seq, req_seq);
    EXPECT_EQ(spans_.back().response_tcp_seq, resp_seq);
    EXPECT_EQ(spans_.back().endpoint, "GET /item/" + std::to_string(i));
  }
  Send(true, cseq, sseq, kFin | kAck, 100 * kMs);
  table_.Flush(kBase + 200 * kMs);
  EXPECT_EQ(spans_.size(), 3u);
}

TEST_F(NetworkSpansTest, NonHttpFlowIsDroppedQuickly) {
  Send(true, 1000, 0, kSyn, 0);
  Send(false, 5000, 1001, kSyn | kAck, 1 * kMs);
  Send(true, 1001, 5001, kAck, 2 * kMs);
  Send(true, 1001, 5001, kAck, 3 * kMs, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11));
  EXPECT_EQ(builder_.counters().flows_unrecognised, 1u);
  EXPECT_TRUE(spans_.empty());
}

}  // namespace
}  // namespace sonde::packet
