// Network spans end to end without a capture device: hand-made frames ->
// flow table -> FlowConnFeed (the syscall path's tracker and protocol
// sessions) -> NetworkComponent's queue -> Agent::EmitRecord on Tick (span
// building, RED, sampling, redaction, completion) -> a sink.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/core/clock.h"
#include "agent/packet/flow_conn_feed.h"
#include "agent/packet/network_component.h"
#include "agent/protocols/registry.h"
#include "agent/trace/redaction.h"
#include "tests/unit/dns/dns_messages.h"
#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {
using testing::Frame;
using testing::TcpSeg;

constexpr uint64_t kMs = 1'000'000;
constexpr uint64_t kBase = 1'700'000'000'000'000'000ull;  // Unix ns
// Fixed realtime - monotonic offset: capture time kBase is monotonic 5 s.
constexpr uint64_t kClockOffset = kBase - 5'000 * kMs;

class CollectingSink : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& s) override { spans.push_back(s); }
  std::vector<trace::Span> spans;
};

std::unique_ptr<pipeline::Agent> MakeAgent() {
  pipeline::PipelineOptions options;
  options.print_json = false;
  options.clock_offset_ns = kClockOffset;
  options.sampler.spans_per_second = 0;  // keep every span
  return std::make_unique<pipeline::Agent>(options);
}

class NetworkSpansTest : public ::testing::Test {
 protected:
  NetworkSpansTest() {
    NetworkConfig config;
    config.tcp_health = false;      // no BPF, no capture: records come from the test
    config.packet_capture = false;
    auto component = std::make_unique<NetworkComponent>(config, /*max_queued_records=*/4);
    component_ = component.get();
    agent_->AddComponent(std::move(component));
    agent_->AddSink(sink_);
  }
  void SetUp() override {
    if (!protocols::FindProtocol(protocols::L7Protocol::kHttp1))
      GTEST_SKIP() << "HTTP/1 parser not built into the registry";
    ASSERT_TRUE(agent_->Start().ok());
  }

  // A segment from the client (10.0.0.1:40000) or the server (10.0.0.2:80),
  // `cut` bytes short of its end as a snaplen would cut it.
  void Send(bool from_client, uint32_t seq, uint32_t ack, uint8_t flags, uint64_t ts,
            std::string payload = {}, size_t cut = 0) {
    TcpSeg s;
    if (!from_client) {
      s.src = "10.0.0.2"; s.dst = "10.0.0.1"; s.sport = 80; s.dport = 40000;
    }
    s.seq = seq; s.ack = ack; s.flags = flags; s.payload = std::move(payload);
    auto f = Frame(s);
    f.resize(f.size() - cut);
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(1, f, kBase + ts, p), ParseStatus::kOk);
    table_.OnPacket(p, "veth-test");
  }
  void Handshake() {
    Send(true, 1000, 0, kSyn, 0);
    Send(false, 5000, 1001, kSyn | kAck, 1 * kMs);
    Send(true, 1001, 5001, kAck, 2 * kMs);
  }
  // What the pipeline thread does: the component hands its queue to the agent.
  const std::vector<trace::Span>& Spans() {
    agent_->Tick(core::MonotonicNowNs());
    return sink_->spans;
  }

  std::shared_ptr<CollectingSink> sink_ = std::make_shared<CollectingSink>();
  std::unique_ptr<pipeline::Agent> agent_ = MakeAgent();
  NetworkComponent* component_ = nullptr;
  FlowConnFeed feed_{[this](conn::ConnRecord&& r) { component_->OnRecord(std::move(r)); },
                     agent_->clock()};
  FlowTable table_{FlowTableOptions{}, &feed_};
};

TEST_F(NetworkSpansTest, HttpExchangeFromReorderedSegmentsCarriesSequenceNumbers) {
  const std::string req1 = "GET /users/42?x=1 HTTP/1.1\r\nHost: api\r\n";
  const std::string req2 =
      "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n";
  const std::string body = "hello world";
  const std::string resp = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\n\r\n" + body;
  Handshake();
  // The second half of the request arrives first.
  Send(true, 1001 + req1.size(), 5001, kAck | kPsh, 10 * kMs, req2);
  Send(true, 1001, 5001, kAck, 11 * kMs, req1);
  Send(false, 5001, 1001 + req1.size() + req2.size(), kAck | kPsh, 30 * kMs, resp.substr(0, 20));
  Send(false, 5021, 1001 + req1.size() + req2.size(), kAck | kPsh, 31 * kMs, resp.substr(20));
  const auto& spans = Spans();
  ASSERT_EQ(spans.size(), 1u) << feed_.counters().records;
  const trace::Span& s = spans[0];
  EXPECT_EQ(s.source, trace::SpanSource::kNetwork);
  EXPECT_EQ(s.kind, trace::SpanKind::kClient);  // the client view of the flow
  EXPECT_EQ(s.protocol, protocols::L7Protocol::kHttp1);
  EXPECT_EQ(s.endpoint, "GET /users/{id}");  // the syscall path's route normalisation
  EXPECT_EQ(s.url_path, "/users/42");
  EXPECT_EQ(s.http_status, 503);
  EXPECT_EQ(s.status, trace::StatusCode::kError);
  EXPECT_TRUE(s.request_seq_valid);
  EXPECT_EQ(s.request_tcp_seq, 1001u);
  EXPECT_TRUE(s.response_seq_valid);
  EXPECT_EQ(s.response_tcp_seq, 5001u);
  EXPECT_EQ(s.start_unix_ns, kBase + 11 * kMs);  // first request byte arrived with the late segment
  EXPECT_EQ(s.end_unix_ns, kBase + 31 * kMs);
  EXPECT_EQ(s.client.address, "10.0.0.1");
  EXPECT_EQ(s.client.port, 40000);
  EXPECT_EQ(s.server.address, "10.0.0.2");
  EXPECT_EQ(s.server.port, 80);
  EXPECT_EQ(s.local.address, "10.0.0.1");
  EXPECT_EQ(s.peer.port, 80);
  EXPECT_EQ(s.sock_id, 0u);  // no socket behind a packet flow
  EXPECT_EQ(s.parent_reason, trace::LinkReason::kTraceparent);
  EXPECT_EQ(s.trace_id[0], 0x0a);
  EXPECT_EQ(s.trace_id[15], 0x9c);
  EXPECT_EQ(s.parent_span_id[0], 0xb7);
  EXPECT_EQ(feed_.tracker_counters().reordered_chunks, 1u);
}

TEST_F(NetworkSpansTest, KeepAliveExchangesAndRetransmittedBytesAreNotDuplicated) {
  Handshake();
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
    const auto& spans = Spans();
    ASSERT_EQ(spans.size(), size_t(i + 1));
    EXPECT_EQ(spans.back().request_tcp_seq, req_seq);
    EXPECT_EQ(spans.back().response_tcp_seq, resp_seq);
    EXPECT_EQ(spans.back().url_path, "/item/" + std::to_string(i));
    EXPECT_EQ(spans.back().status, trace::StatusCode::kUnset);
  }
  Send(true, cseq, sseq, kFin | kAck, 100 * kMs);
  table_.Flush(kBase + 200 * kMs);
  EXPECT_EQ(Spans().size(), 3u);
  EXPECT_GT(feed_.tracker_counters().duplicate_bytes, 0u);
}

// Network spans used to skip the redactor: credentials reached the server
// from packets. They now pass through the pipeline's redaction like system spans.
TEST_F(NetworkSpansTest, AuthorizationAndCookiesAreRedacted) {
  Handshake();
  const std::string req =
      "GET /account HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer s3cr3t-token\r\n"
      "Cookie: session=c00kie-value\r\nX-Trace: keep-me\r\n\r\n";
  const std::string resp =
      "HTTP/1.1 200 OK\r\nSet-Cookie: session=n3w-c00kie\r\nContent-Length: 2\r\n\r\nok";
  Send(true, 1001, 5001, kAck | kPsh, 10 * kMs, req);
  Send(false, 5001, 1001 + req.size(), kAck | kPsh, 20 * kMs, resp);
  const auto& spans = Spans();
  ASSERT_EQ(spans.size(), 1u);
  const trace::Span& s = spans[0];
  EXPECT_EQ(s.request_headers.Find("authorization"), trace::kRedacted);
  EXPECT_EQ(s.request_headers.Find("cookie"), trace::kRedacted);
  EXPECT_EQ(s.response_headers.Find("set-cookie"), trace::kRedacted);
  EXPECT_EQ(s.request_headers.Find("x-trace"), "keep-me");
  for (const std::string_view secret : {"s3cr3t-token", "c00kie-value", "n3w-c00kie"}) {
    EXPECT_EQ(s.request_headers.bytes().find(secret), std::string_view::npos) << secret;
    EXPECT_EQ(s.response_headers.bytes().find(secret), std::string_view::npos) << secret;
    for (const auto& a : s.attributes) {
      if (const auto* v = std::get_if<std::string>(&a.value)) {
        EXPECT_EQ(v->find(secret), std::string::npos) << a.key;
      }
    }
  }
}

// The syscall path's error rule: client spans count 4xx as errors.
TEST_F(NetworkSpansTest, StatusFollowsTheClientSpanRule) {
  Handshake();
  const std::string req = "GET /missing HTTP/1.1\r\nHost: api\r\n\r\n";
  const std::string resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
  Send(true, 1001, 5001, kAck | kPsh, 10 * kMs, req);
  Send(false, 5001, 1001 + req.size(), kAck | kPsh, 20 * kMs, resp);
  const auto& spans = Spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].kind, trace::SpanKind::kClient);
  EXPECT_EQ(spans[0].status, trace::StatusCode::kError);
}

// Joined mid-stream (no handshake): a late join, the role comes from the bytes.
TEST_F(NetworkSpansTest, FlowWithoutHandshakeIsALateJoin) {
  const std::string req = "GET /late HTTP/1.1\r\nHost: api\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  Send(true, 77'000, 99'000, kAck | kPsh, 10 * kMs, req);
  Send(false, 99'000, 77'000 + req.size(), kAck | kPsh, 20 * kMs, resp);
  const auto& spans = Spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].url_path, "/late");
  EXPECT_EQ(spans[0].kind, trace::SpanKind::kClient);
  EXPECT_EQ(spans[0].client.address, "10.0.0.1");
  EXPECT_EQ(spans[0].server.port, 80);
  EXPECT_EQ(spans[0].request_tcp_seq, 77'000u);
}

TEST_F(NetworkSpansTest, UnclaimedFlowIsSkippedOnceInferenceGivesUp) {
  Handshake();
  const std::string tls("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11);
  const uint32_t calls = PacketTrackerOptions().max_infer_calls;
  uint32_t seq = 1001;
  for (uint32_t i = 0; i < calls; ++i, seq += tls.size()) Send(true, seq, 5001, kAck, (3 + i) * kMs, tls);
  EXPECT_EQ(feed_.counters().flows_unclaimed, 1u);
  Send(true, seq, 5001, kAck, 50 * kMs, tls);
  EXPECT_EQ(feed_.counters().unclaimed_segments, 1u);
  EXPECT_TRUE(Spans().empty());
  table_.Flush(kBase + 100 * kMs);
  EXPECT_TRUE(Spans().empty());
}

// A GRO/TSO super-segment is larger than a data event's payload: split, same exchange.
TEST_F(NetworkSpansTest, SegmentLargerThanAnEventIsSplit) {
  Handshake();
  const std::string req = "GET /big HTTP/1.1\r\nHost: api\r\n\r\n";
  const std::string body(40'000, 'b');
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 40000\r\n\r\n" + body;
  Send(true, 1001, 5001, kAck | kPsh, 10 * kMs, req);
  Send(false, 5001, 1001 + req.size(), kAck | kPsh, 20 * kMs, resp);
  const auto& spans = Spans();
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0].http_status, 200);
  EXPECT_EQ(spans[0].response_bytes, resp.size());
  EXPECT_EQ(feed_.counters().segments, 2u);
  EXPECT_GT(feed_.counters().events, 2u + 3u);  // two anchors, the response in three pieces
}

// Bad input: a segment the snaplen cut. The missing bytes are a counted gap, no crash.
TEST_F(NetworkSpansTest, SnaplenCutBecomesACountedGap) {
  Handshake();
  const std::string req = "GET /cut HTTP/1.1\r\nHost: api\r\nX-Pad: " + std::string(300, 'p') + "\r\n\r\n";
  Send(true, 1001, 5001, kAck | kPsh, 10 * kMs, req, /*cut=*/200);
  EXPECT_EQ(feed_.counters().truncated_segments, 1u);
  EXPECT_EQ(feed_.tracker_counters().gap_bytes, 200u);
  // The connection goes on: the next exchange is reconstructed.
  const std::string req2 = "GET /next HTTP/1.1\r\nHost: api\r\n\r\n";
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  Send(true, 1001 + req.size(), 5001, kAck | kPsh, 20 * kMs, req2);
  Send(false, 5001, 1001 + req.size() + req2.size(), kAck | kPsh, 30 * kMs, resp);
  table_.Flush(kBase + 100 * kMs);
  bool next = false;
  for (const auto& s : Spans()) next = next || s.url_path == "/next";
  EXPECT_TRUE(next);
}

TEST_F(NetworkSpansTest, QueueIsBoundedAndDropsAreCounted) {
  Handshake();
  uint32_t cseq = 1001, sseq = 5001;
  for (int i = 0; i < 6; ++i) {  // the component queues at most 4 between ticks
    const std::string req = "GET /q HTTP/1.1\r\nHost: a\r\n\r\n";
    const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    Send(true, cseq, sseq, kAck | kPsh, (10 + 10 * i) * kMs, req);
    Send(false, sseq, cseq + req.size(), kAck | kPsh, (15 + 10 * i) * kMs, resp);
    cseq += req.size();
    sseq += resp.size();
  }
  EXPECT_EQ(Spans().size(), 4u);
  EXPECT_EQ(component_->dropped_records(), 2u);
}


// A DNS lookup over UDP seen on the wire: the datagrams go through the same
// tracker and DNS session as the syscall path's, one network span per lookup.
TEST_F(NetworkSpansTest, DnsOverUdpBecomesANetworkSpan) {
  if (!protocols::FindProtocol(protocols::L7Protocol::kDns)) GTEST_SKIP() << "DNS not in the registry";
  auto datagram = [&](bool from_client, const std::string& payload, uint64_t ts) {
    TcpSeg s;
    s.proto = 17;
    s.sport = from_client ? 40053 : 53;
    s.dport = from_client ? 53 : 40053;
    if (!from_client) std::swap(s.src, s.dst);
    s.payload = payload;
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(1, Frame(s), kBase + ts, p), ParseStatus::kOk);
    table_.OnPacket(p, "veth-test");
  };
  datagram(true, sonde::testing::dns::Query(0x0102, "kong.example.test"), 1 * kMs);
  datagram(false, sonde::testing::dns::Response(0x0102, "kong.example.test", 1, /*NXDOMAIN*/ 3, 0), 3 * kMs);
  const auto& spans = Spans();
  ASSERT_EQ(spans.size(), 1u) << feed_.counters().datagrams;
  const trace::Span& s = spans[0];
  EXPECT_EQ(s.source, trace::SpanSource::kNetwork);
  EXPECT_EQ(s.protocol, protocols::L7Protocol::kDns);
  EXPECT_EQ(s.kind, trace::SpanKind::kClient);
  EXPECT_EQ(s.name, "DNS A");
  EXPECT_EQ(s.endpoint, "kong.example.test");
  EXPECT_EQ(s.status, trace::StatusCode::kError);
  EXPECT_EQ(s.server.port, 53);
  EXPECT_EQ(s.client.port, 40053);
  EXPECT_EQ(s.start_unix_ns, kBase + 1 * kMs);
  EXPECT_EQ(s.end_unix_ns, kBase + 3 * kMs);
  EXPECT_EQ(feed_.counters().datagrams, 2u);
}
}  // namespace
}  // namespace sonde::packet
