// Redis session: pairing with pipelining, pub/sub and RESP3 pushes left
// unpaired, errors, garbage, inference; and record -> span through the real
// tracker, registry and span builder.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "agent/conn/tracker.h"
#include "agent/protocols/redis/definition.h"
#include "agent/protocols/redis/semantics.h"
#include "agent/protocols/redis/session.h"
#include "agent/trace/span_builder.h"
#include "tests/unit/conn/event_builder.h"
#include "tests/unit/protocols/stream_feeder.h"

namespace sonde::protocols::redis {
namespace {

// The tracker stand-in shared by the protocol session tests.
using Feeder = sonde::testing::StreamFeeder<RedisSession>;

constexpr auto kIn = Direction::kIngress;
constexpr auto kOut = Direction::kEgress;

std::string Command(std::initializer_list<std::string_view> args) {
  std::string s = "*" + std::to_string(args.size()) + "\r\n";
  for (auto a : args) s += "$" + std::to_string(a.size()) + "\r\n" + std::string(a) + "\r\n";
  return s;
}

TEST(RedisSession, ServerPairsOneCommand) {
  Feeder f(Role::kServer);
  const std::string cmd = Command({"get", "user:42"});
  f.Send(kIn, cmd, 100);
  f.Send(kOut, "$5\r\nhello\r\n", 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  const L7Record& r = recs[0];
  EXPECT_EQ(r.protocol, L7Protocol::kRedis);
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.path, "");  // the key is not recorded
  EXPECT_EQ(r.request.bytes, cmd.size());
  EXPECT_EQ(r.response.bytes, 11u);
  EXPECT_EQ(r.request.first_byte_ns, 101u);  // ingress: read exit
  EXPECT_EQ(r.response.first_byte_ns, 200u);  // egress: write entry
  EXPECT_EQ(r.response.last_byte_ns, 201u);
  EXPECT_EQ(r.request.first_tcp_seq, 1000u);
  EXPECT_EQ(r.flags, 0u);
  EXPECT_TRUE(ErrorCode(r).empty());
}

TEST(RedisSession, PipelinedCommandsPairInOrderAcrossSplits) {
  Feeder f(Role::kClient);
  std::string cmds, replies;
  for (int i = 0; i < 50; ++i) {
    cmds += Command({i % 2 ? "SET" : "GET", "k", "v"});
    replies += i % 2 ? "+OK\r\n" : "$-1\r\n";
  }
  // Odd splits: commands and replies cut anywhere.
  for (size_t at = 0; at < cmds.size(); at += 7) f.Send(kOut, cmds.substr(at, 7), 100 + at);
  for (size_t at = 0; at < replies.size(); at += 3) f.Send(kIn, replies.substr(at, 3), 10000 + at);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(recs[i].method, i % 2 ? "SET" : "GET");
    EXPECT_EQ(recs[i].response.bytes, 5u);
  }
  EXPECT_EQ(f.session().counters().unpaired, 0u);
  EXPECT_EQ(f.session().counters().parse_errors, 0u);
}

TEST(RedisSession, InlineCommands) {
  Feeder f(Role::kServer);
  f.Send(kIn, "PING\r\n\r\necho hi\r\n", 100);
  f.Send(kOut, "+PONG\r\n$2\r\nhi\r\n", 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].method, "PING");
  EXPECT_EQ(recs[1].method, "ECHO");
}

TEST(RedisSession, ErrorsMarkTheRecord) {
  Feeder f(Role::kClient);
  f.Send(kOut, Command({"INCR", "k"}) + Command({"GET", "k"}), 100);
  f.Send(kIn, "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n!21\r\nSYNTAX invalid syntax\r\n", 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(ErrorCode(recs[0]), "WRONGTYPE");
  EXPECT_EQ(ErrorCode(recs[1]), "SYNTAX");
  SpanDescription d;
  RedisSemantics().describe(recs[0], false, d);
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.name, "INCR");
  EXPECT_EQ(d.status_message, "WRONGTYPE");
}

TEST(RedisSession, PubSubMessagesAreNotPaired) {
  Feeder f(Role::kClient);
  f.Send(kOut, Command({"SUBSCRIBE", "a", "b"}), 100);
  f.Send(kIn,
         "*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
         "*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
         "*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$5\r\nhello\r\n",
         200);
  f.Send(kIn, "*4\r\n$8\r\npmessage\r\n$2\r\na*\r\n$2\r\nab\r\n$1\r\nx\r\n", 300);
  f.Send(kOut, Command({"PING"}), 400);
  f.Send(kIn, "*2\r\n$4\r\npong\r\n$0\r\n\r\n", 500);
  auto recs = f.Take(true);
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].method, "SUBSCRIBE");
  EXPECT_EQ(recs[0].flags, 0u);
  EXPECT_EQ(recs[1].method, "PING");
  EXPECT_EQ(recs[1].flags, 0u);
  EXPECT_EQ(f.session().counters().unpaired, 0u);
}

TEST(RedisSession, Resp3PushesAreNotPaired) {
  Feeder f(Role::kClient);
  f.Send(kOut, Command({"GET", "k"}), 100);
  // Client-side caching invalidation arrives before the reply.
  f.Send(kIn, ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n", 150);
  f.Send(kIn, "_\r\n", 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].method, "GET");
  EXPECT_EQ(recs[0].response.bytes, 3u);
}

TEST(RedisSession, GarbageIsCountedAndResynced) {
  Feeder f(Role::kServer);
  f.Send(kIn, "\x16\x03\x01garbage", 100);
  f.Send(kIn, Command({"GET", "k"}), 200);
  f.Send(kOut, ":1\r\n", 300);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].method, "GET");
  EXPECT_TRUE(recs[0].flags & kRecordTruncated);
  EXPECT_GE(f.session().counters().parse_errors, 1u);
  EXPECT_EQ(f.session().counters().resyncs, 1u);
}

TEST(RedisSession, GapInsideBulkIsAbsorbed) {
  Feeder f(Role::kClient);
  f.Send(kOut, Command({"GET", "k"}), 100);
  f.Send(kIn, "$1000\r\n" + std::string(100, 'x'), 200);
  f.Gap(kIn, 800);
  f.Send(kIn, std::string(100, 'x') + "\r\n", 300);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].response.bytes, 1000u + 7 + 2);
  EXPECT_EQ(f.session().counters().gaps_absorbed, 1u);
}

TEST(RedisSession, NoReplyOnClose) {
  Feeder f(Role::kClient);
  f.Send(kOut, Command({"BLPOP", "q", "0"}), 100);
  auto recs = f.Take(true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0].flags & kRecordNoResponse);
}

TEST(RedisInfer, ConservativeAndRoleAware) {
  EXPECT_EQ(Infer(Command({"GET", "k"}), kOut, Role::kUnknown), InferResult::kYes);
  EXPECT_EQ(InferRole(Command({"GET", "k"}), kOut), Role::kClient);
  EXPECT_EQ(InferRole(Command({"GET", "k"}), kIn), Role::kServer);
  EXPECT_EQ(Infer(Command({"GET", "k"}), kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("*2\r", kOut, Role::kUnknown), InferResult::kMaybeNeedMore);
  EXPECT_EQ(Infer("PING\r\n", kOut, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer("GET / HTTP/1.1\r\nHost: x\r\n\r\n", kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("POST /x HTTP/1.1\r\n", kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("HTTP/1.1 200 OK\r\n", kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("+OK POP3 server ready\r\n", kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("SSH-2.0-OpenSSH\r\n", kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("+OK\r\n", kIn, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer("+OK\r\n", kIn, Role::kUnknown), InferResult::kNo);
  EXPECT_EQ(Infer("\x16\x03\x01", kOut, Role::kClient), InferResult::kNo);
}

// Record -> span through the tracker (registry inference) and the span builder.
TEST(RedisSpan, BuiltThroughTheRegistry) {
  core::MonotonicToRealtime clock;
  conn::ConnectionTracker tracker;
  trace::SpanBuilder builder{clock, 1};
  std::vector<trace::Span> spans;
  auto feed = [&](const std::vector<uint8_t>& ev) {
    std::vector<conn::ConnRecord> recs;
    tracker.OnEvent(ev, recs);
    for (auto& r : recs) spans.push_back(builder.Build(r));
  };
  sonde::testing::SocketSim srv(10, 10, "redis-server", 1, 7, SONDE_ROLE_SERVER,
                                sonde::testing::Endpoints{"127.0.0.1", 6379, "127.0.0.1", 40000});
  feed(srv.Open(100));
  feed(srv.Read(Command({"HSET", "h", "f", "v"}), 1000));
  feed(srv.Write("-WRONGTYPE Operation against a key holding the wrong kind of value\r\n", 2000));
  feed(srv.Read(Command({"GET", "k"}), 3000));
  feed(srv.Write("$1\r\nv\r\n", 4000));
  ASSERT_EQ(spans.size(), 2u);
  const trace::Span& err = spans[0];
  EXPECT_EQ(err.protocol, L7Protocol::kRedis);
  EXPECT_EQ(err.kind, trace::SpanKind::kServer);
  EXPECT_EQ(err.name, "HSET");
  EXPECT_EQ(err.endpoint, "HSET");
  EXPECT_EQ(err.status, trace::StatusCode::kError);
  EXPECT_EQ(*trace::StringAttribute(err, "db.system.name"), "redis");
  EXPECT_EQ(*trace::StringAttribute(err, "db.operation.name"), "HSET");
  EXPECT_EQ(*trace::StringAttribute(err, "db.response.status_code"), "WRONGTYPE");
  EXPECT_EQ(trace::IntAttribute(err, "server.port"), 6379);
  EXPECT_EQ(*trace::StringAttribute(err, "network.peer.address"), "127.0.0.1");
  EXPECT_EQ(trace::IntAttribute(err, "network.peer.port"), 40000);
  const trace::Span& ok = spans[1];
  EXPECT_EQ(ok.name, "GET");
  EXPECT_NE(ok.status, trace::StatusCode::kError);
  EXPECT_EQ(trace::StringAttribute(ok, "db.response.status_code"), nullptr);
  for (const auto& s : spans) {
    for (const auto& a : s.attributes) {
      if (const auto* v = std::get_if<std::string>(&a.value)) {
        EXPECT_TRUE(*v != "h" && *v != "k") << a.key << ": keys are not recorded";
      }
    }
  }
}

}  // namespace
}  // namespace sonde::protocols::redis
