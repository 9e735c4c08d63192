// HTTP/1 session: parsing and pairing from literal byte streams.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent/protocols/http1/definition.h"
#include "agent/protocols/http1/parser.h"
#include "agent/protocols/http1/stitcher.h"
#include "tests/unit/protocols/stream_feeder.h"

namespace sonde::protocols::http1 {
namespace {

// The tracker stand-in shared by the protocol session tests.
using Feeder = sonde::testing::StreamFeeder<Http1Session>;

constexpr auto kIn = Direction::kIngress;
constexpr auto kOut = Direction::kEgress;

TEST(Http1Session, SimpleServerExchange) {
  Feeder f(Role::kServer);
  f.Send(kIn, "GET /users/42?x=1 HTTP/1.1\r\nHost: api.example\r\nTraceparent: abc\r\n\r\n", 100);
  f.Send(kOut, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  const L7Record& r = recs[0];
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "/users/42");
  EXPECT_EQ(r.query, "x=1");
  EXPECT_EQ(r.authority, "api.example");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.version, "1.1");
  EXPECT_EQ(r.response.body_bytes, 5u);
  EXPECT_EQ(r.response.bytes, 43u);
  EXPECT_EQ(r.request.first_byte_ns, 101u);  // ingress: read exit
  EXPECT_EQ(r.response.first_byte_ns, 200u); // egress: write entry
  EXPECT_EQ(r.response.last_byte_ns, 201u);
  ASSERT_TRUE(r.request.first_tcp_seq.has_value());
  EXPECT_EQ(*r.request.first_tcp_seq, 1000u);
  ASSERT_TRUE(r.RequestHeader("traceparent").has_value());
  EXPECT_EQ(r.request.headers[1].name, "traceparent");  // lowercased
  EXPECT_EQ(r.flags, 0u);
}

TEST(Http1Session, KeepAliveAndPipelining) {
  Feeder f(Role::kClient);
  f.Send(kOut,
         "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n"
         "POST /c HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
         100);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA", 200);
  f.Send(kIn, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 201 Created\r\nContent-", 300);
  f.Send(kIn, "Length: 2\r\n\r\nok", 400);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].path, "/a");
  EXPECT_EQ(recs[0].status, 200);
  EXPECT_EQ(recs[1].path, "/b");
  EXPECT_EQ(recs[1].status, 404);
  EXPECT_EQ(recs[2].path, "/c");
  EXPECT_EQ(recs[2].status, 201);
  EXPECT_EQ(recs[2].request.body_bytes, 3u);
  EXPECT_EQ(recs[2].response.first_byte_ns, 301u);  // ingress: exit of the call with byte 0
  EXPECT_EQ(recs[2].response.last_byte_ns, 401u);
}

TEST(Http1Session, ChunkedSplitAcrossCalls) {
  Feeder f(Role::kClient);
  f.Send(kOut, "GET /c HTTP/1.1\r\nHost: h\r\n\r\n", 10);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", 20);
  EXPECT_TRUE(f.Take().empty());
  f.Send(kIn, "lo\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n", 30);
  f.Send(kOut, "GET /next HTTP/1.1\r\n\r\n", 40);
  f.Send(kIn, "HTTP/1.1 204 No Content\r\n\r\n", 50);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].response.body_bytes, 11u);
  EXPECT_EQ(recs[0].response.last_byte_ns, 31u);
  EXPECT_EQ(recs[1].status, 204);
}

TEST(Http1Session, HeadResponseHasNoBody) {
  Feeder f(Role::kClient);
  f.Send(kOut, "HEAD /big HTTP/1.1\r\nHost: h\r\n\r\nGET /x HTTP/1.1\r\n\r\n", 10);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 20);
  f.Send(kIn, "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n", 30);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].method, "HEAD");
  EXPECT_EQ(recs[0].response.body_bytes, 0u);
  EXPECT_EQ(recs[1].status, 304);
}

TEST(Http1Session, ContinueInterimResponse) {
  Feeder f(Role::kServer);
  f.Send(kIn, "PUT /up HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", 10);
  f.Send(kOut, "HTTP/1.1 100 Continue\r\n\r\n", 20);
  f.Send(kIn, "data", 30);
  f.Send(kOut, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 40);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, 201);
  EXPECT_EQ(recs[0].request.body_bytes, 4u);
  EXPECT_EQ(recs[0].response.bytes, 25u + 43u);
}

TEST(Http1Session, CloseDelimitedResponse) {
  Feeder f(Role::kClient);
  f.Send(kOut, "GET /old HTTP/1.0\r\n\r\n", 10);
  f.Send(kIn, "HTTP/1.0 200 OK\r\nConnection: close\r\n\r\npart1", 20);
  f.Send(kIn, "part2", 30);
  EXPECT_TRUE(f.Take().empty());
  f.Send(kIn, "", 40, /*closed=*/true);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].version, "1.0");
  EXPECT_EQ(recs[0].response.body_bytes, 10u);
}

TEST(Http1Session, BodyBeyondCapturedPrefixAccountedByGap) {
  Feeder f(Role::kClient);
  f.Send(kOut, "GET /file HTTP/1.1\r\n\r\n", 10);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789", 20);
  f.Gap(kIn, 100000 - 10);
  f.Send(kOut, "GET /after HTTP/1.1\r\n\r\n", 30);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 40);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].response.body_bytes, 100000u);
  EXPECT_EQ(recs[0].flags & kRecordTruncated, 0u);
  EXPECT_EQ(recs[1].path, "/after");
  EXPECT_EQ(f.session().counters().gaps_absorbed, 1u);
}

TEST(Http1Session, GarbageResyncCountsErrorAndKeepsPairing) {
  Feeder f(Role::kServer);
  f.Send(kIn, "GET /ok1 HTTP/1.1\r\n\r\n", 10);
  f.Send(kOut, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20);
  f.Send(kIn, "\x16\x03\x01garbage\x00\xff\r\nmore junk\r\n", 30);
  f.Send(kIn, "GET /ok2 HTTP/1.1\r\n\r\n", 40);
  f.Send(kOut, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 50);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].path, "/ok1");
  EXPECT_EQ(recs[1].path, "/ok2");
  EXPECT_GE(f.session().counters().parse_errors, 1u);
  EXPECT_GE(f.session().counters().resyncs, 1u);
}

TEST(Http1Session, LostRequestNeverMispairs) {
  Feeder f(Role::kServer);
  f.Send(kIn, "GET /one HTTP/1.1\r\n\r\n", 10);
  f.Send(kOut, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20);
  // Request /two lost entirely (ring-buffer loss): only a gap is known.
  f.Gap(kIn, 24);
  f.Send(kOut, "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n", 40);
  f.Send(kIn, "GET /three HTTP/1.1\r\n\r\n", 50);
  f.Send(kOut, "HTTP/1.1 201 OK\r\nContent-Length: 0\r\n\r\n", 60);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].path, "/one");
  EXPECT_EQ(recs[1].path, "/three");
  EXPECT_EQ(recs[1].status, 201);
  EXPECT_EQ(f.session().counters().unpaired, 1u);
}

TEST(Http1Session, RequestWithoutResponseFlushedOnClose) {
  Feeder f(Role::kClient);
  f.Send(kOut, "GET /hang HTTP/1.1\r\n\r\n", 10);
  EXPECT_TRUE(f.Take().empty());
  auto recs = f.Take(/*closing=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0].flags & kRecordNoResponse);
  EXPECT_EQ(recs[0].status, 0);
}

TEST(Http1Session, UpgradeStopsParsing) {
  Feeder f(Role::kServer);
  f.Send(kIn, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 10);
  f.Send(kOut, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 20);
  f.Send(kIn, "\x81\x85garbage-ws-frame", 30);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].status, 101);
  EXPECT_EQ(f.session().counters().parse_errors, 0u);
}

TEST(Http1Session, LateJoinSkipsToFirstMessage) {
  Feeder f(Role::kUnknown, /*late_join=*/true);
  f.Send(kIn, "tail of some body\r\nGET /late HTTP/1.1\r\n\r\n", 10);
  f.Send(kOut, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].path, "/late");
  EXPECT_EQ(f.session().role(), Role::kServer);
}

// The pool's path: a session that served an exchange, renewed unassigned
// (parked) and then reassigned, parses like a new one of that role --
// late-joined (resync to the first message start) or in sync.
TEST(Http1Session, RenewedThenReassignedParsesLikeANewSession) {
  for (const bool late : {true, false}) {
    Feeder f(Role::kClient);
    f.Send(kOut, "GET /first HTTP/1.1\r\nHost: h\r\n\r\n", 10);
    f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 20);
    ASSERT_EQ(f.Take().size(), 1u);
    Role role = Role::kUnknown;
    ASSERT_TRUE(f.session().Quiescent(&role));
    ASSERT_TRUE(f.session().Renew(Role::kUnknown, /*late_join=*/false));
    f.session().Reassign(Role::kServer, late);
    EXPECT_EQ(f.session().role(), Role::kServer);
    const std::string lead = late ? "tail of some body\r\n" : "";
    f.Send(kIn, lead + "GET /second HTTP/1.1\r\n\r\n", 30);
    f.Send(kOut, "HTTP/1.1 204 No Content\r\n\r\n", 40);
    auto recs = f.Take();
    ASSERT_EQ(recs.size(), 1u) << "late=" << late;
    EXPECT_EQ(recs[0].path, "/second");
    EXPECT_EQ(recs[0].status, 204);
    EXPECT_EQ((recs[0].flags & kRecordLateJoin) != 0, late);
    EXPECT_EQ(f.session().counters().parse_errors, 0u) << "late=" << late;
    EXPECT_EQ(f.session().counters().records, 1u) << "counters restart at Renew";
  }
}

TEST(Http1Session, AbsoluteFormTarget) {
  Feeder f(Role::kClient);
  f.Send(kOut, "GET http://proxy.example:8080/p/q?z HTTP/1.1\r\n\r\n", 10);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 20);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].path, "/p/q");
  EXPECT_EQ(recs[0].query, "z");
  EXPECT_EQ(recs[0].authority, "proxy.example:8080");
}

// Request-line parts and Host are kept as offsets into the head copy until the
// record is built: every shape of target and Host gives the strings it did.
TEST(Http1Session, TargetShapesAndHostPrecedence) {
  struct Case {
    const char* target;
    const char* host_line;
    const char* path;
    const char* query;
    const char* authority;
  };
  const Case cases[] = {
      {"/", "", "/", "", ""},
      {"?q=1", "", "/", "q=1", ""},
      {"/p?", "Host: h\r\n", "/p", "", "h"},
      {"http://up.example", "", "/", "", "up.example"},
      {"http://up.example?x", "", "/", "x", "up.example"},
      {"http://up.example/a/b?c", "Host: h\r\n", "/a/b", "c", "h"},  // Host wins
      {"http://up.example/a", "Host:\r\n", "/a", "", "up.example"},  // empty Host: the target's
      {"*", "Host: h\r\nHost: second\r\n", "*", "", "second"},
      {"/a-path-longer-than-the-small-string-buffer/x?y=z", "HOST: Mixed.Case\r\n",
       "/a-path-longer-than-the-small-string-buffer/x", "y=z", "Mixed.Case"},
  };
  for (const Case& c : cases) {
    Feeder f(Role::kClient);
    f.Send(kOut, std::string("DELETE ") + c.target + " HTTP/1.0\r\n" + c.host_line + "\r\n", 10);
    f.Send(kIn, "HTTP/1.1 204 No Content\r\n\r\n", 20);
    auto recs = f.Take();
    ASSERT_EQ(recs.size(), 1u) << c.target;
    EXPECT_EQ(recs[0].method, "DELETE");
    EXPECT_EQ(recs[0].path, c.path) << c.target;
    EXPECT_EQ(recs[0].query, c.query) << c.target;
    EXPECT_EQ(recs[0].authority, c.authority) << c.target;
    EXPECT_EQ(recs[0].version, "1.0");
    EXPECT_EQ(recs[0].scheme, "http");
    EXPECT_EQ(recs[0].status, 204);
  }
}

// A response finished while no other response waits pairs at once; one that
// would precede its request is dropped (and counted) the same way.
TEST(Http1Session, ResponseBeforeItsRequestIsDroppedWhenPairedAtOnce) {
  Feeder f(Role::kClient);
  f.Send(kOut, "GET /a HTTP/1.1\r\nHost: h\r\n\r\n", 100);
  f.Send(kIn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 50);  // started before the request
  EXPECT_TRUE(f.Take().empty());
  EXPECT_EQ(f.session().counters().unpaired, 1u);
  f.Send(kIn, "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].path, "/a");
  EXPECT_EQ(recs[0].status, 201);
}

TEST(Http1Session, RandomGarbageNeverCrashes) {
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    Feeder f(round % 2 ? Role::kServer : Role::kUnknown, round % 3 == 0);
    for (int i = 0; i < 20; ++i) {
      std::string junk;
      size_t len = rng() % 200;
      for (size_t k = 0; k < len; ++k) junk.push_back(static_cast<char>(rng()));
      if (rng() % 4 == 0) junk += "GET / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n";
      if (rng() % 4 == 0) junk += "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
      f.Send(rng() % 2 ? kIn : kOut, junk, 10 + i);
      if (rng() % 5 == 0) f.Gap(rng() % 2 ? kIn : kOut, rng() % 1000);
    }
    f.Take(true);
  }
  SUCCEED();
}

TEST(Http1Infer, Rules) {
  EXPECT_EQ(Infer("GET / HTTP/1.1\r\n", Direction::kEgress, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer("GET / HTTP/1.1\r\n", Direction::kIngress, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("GE", Direction::kEgress, Role::kUnknown), InferResult::kMaybeNeedMore);
  EXPECT_EQ(Infer("HTTP/1.1 200 OK\r\n", Direction::kIngress, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer("PRI * HTTP/2.0\r\n", Direction::kEgress, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("\x16\x03\x01\x02", Direction::kEgress, Role::kClient), InferResult::kNo);
  EXPECT_EQ(InferRole("POST /x HTTP/1.1", Direction::kIngress), Role::kServer);
  EXPECT_EQ(InferRole("HTTP/1.1 200 OK\r\n", Direction::kIngress), Role::kClient);
}

TEST(Http1Parser, RejectsBadHeads) {
  MessageHead h;
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nBad Header\r\n\r\n", &h), ParseStatus::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &h),
            ParseStatus::kInvalid);
  EXPECT_EQ(ParseRequestHead("GET / HTTP/1.1\r\nHost: x\r\n", &h), ParseStatus::kNeedMoreData);
  EXPECT_EQ(ParseResponseHead("HTTP/1.1 2x0 OK\r\n\r\n", &h), ParseStatus::kInvalid);
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.1\nHost: lf-only\n\n", &h), ParseStatus::kOk);
  EXPECT_EQ(h.host, "lf-only");
}

}  // namespace
}  // namespace sonde::protocols::http1
