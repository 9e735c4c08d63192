// PostgreSQL session: startup (no credentials kept), simple and extended
// query pairing with several batches in flight, prepared statements, errors
// with SQLSTATE, SSL negotiation, splits at every byte, gaps, garbage and
// inference.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "agent/protocols/postgres/definition.h"
#include "agent/protocols/postgres/semantics.h"
#include "agent/protocols/postgres/session.h"
#include "tests/unit/postgres/pg_messages.h"
#include "tests/unit/protocols/stream_feeder.h"

namespace sonde::protocols::postgres {
namespace {

namespace pg = sonde::testing::pg;
using Feeder = sonde::testing::StreamFeeder<PostgresSession>;

constexpr auto kIn = Direction::kIngress;
constexpr auto kOut = Direction::kEgress;

std::string Handshake() {
  return pg::AuthOk() + pg::ParameterStatus("server_version", "15.8") + pg::Message('K', pg::Be32(1) + pg::Be32(2)) +
         pg::Ready();
}

// Client side: startup, then the caller's exchanges.
Feeder ConnectedClient() {
  Feeder f(Role::kClient);
  f.Send(kOut, pg::Startup({{"user", "alice"}, {"database", "shop"}}), 10);
  f.Send(kIn, pg::Message('R', pg::Be32(5) + "salt"), 20);
  f.Send(kOut, pg::Password("md5secretdigest"), 30);
  f.Send(kIn, Handshake(), 40);
  return f;
}

std::string AllText(const L7Record& r) {
  std::string s = r.method + "|" + r.path + "|" + r.authority + "|" + r.query;
  for (const auto& h : r.request.headers) s += "|" + std::string(h.name) + "=" + std::string(h.value);
  for (const auto& h : r.response.headers) s += "|" + std::string(h.name) + "=" + std::string(h.value);
  return s;
}

TEST(PostgresSession, SimpleQueryAfterStartupWithoutCredentials) {
  Feeder f = ConnectedClient();
  EXPECT_TRUE(f.Take().empty());  // the startup and authentication are no operation
  EXPECT_EQ(f.session().database(), "shop");
  const std::string q = pg::Query("SELECT abalance FROM accounts WHERE aid = 17 AND name = 'bob'");
  f.Send(kOut, q, 100);
  f.Send(kIn, pg::RowDescription() + pg::DataRow("123") + pg::Complete("SELECT 1") + pg::Ready(), 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  const L7Record& r = recs[0];
  EXPECT_EQ(r.protocol, L7Protocol::kPostgres);
  EXPECT_EQ(r.method, "SELECT");
  EXPECT_EQ(r.path, "SELECT abalance FROM accounts WHERE aid = ? AND name = ?");
  EXPECT_EQ(r.authority, "shop");
  EXPECT_EQ(r.request.headers.Find("collection").value_or(""), "accounts");
  EXPECT_EQ(r.response.headers.Find("rows").value_or(""), "1");
  EXPECT_EQ(r.request.bytes, q.size());
  EXPECT_EQ(r.request.first_byte_ns, 100u);  // egress: write entry
  EXPECT_EQ(r.response.first_byte_ns, 201u);  // ingress: read exit
  EXPECT_EQ(r.response.last_byte_ns, 201u);
  EXPECT_EQ(r.flags, 0u);
  EXPECT_TRUE(SqlState(r).empty());
  for (const char* secret : {"md5secretdigest", "alice", "salt", "bob", "17"}) {
    EXPECT_EQ(AllText(r).find(secret), std::string::npos) << secret;
  }
}

TEST(PostgresSession, ExtendedBatchesInFlightPairInOrder) {
  Feeder f(Role::kServer);
  f.Send(kIn, pg::Startup({{"user", "u"}}), 1);
  f.Send(kOut, Handshake(), 2);
  // Three Sync batches sent before any answer (pipeline mode), in one write.
  const char* sqls[] = {"UPDATE t SET v = v + $1 WHERE id = $2", "SELECT v FROM t WHERE id = $1",
                        "INSERT INTO h (v) VALUES ($1)"};
  std::string batch;
  for (const char* sql : sqls) {
    batch += pg::Parse("", sql) + pg::Bind("", "") + pg::DescribePortal("") + pg::Execute("") + pg::Sync();
  }
  f.Send(kIn, batch, 100);
  std::string answers;
  answers += pg::ParseComplete() + pg::BindComplete() + pg::NoData() + pg::Complete("UPDATE 1") + pg::Ready('I');
  answers += pg::ParseComplete() + pg::BindComplete() + pg::RowDescription() + pg::DataRow("5") +
             pg::Complete("SELECT 1") + pg::Ready('I');
  answers += pg::ParseComplete() + pg::BindComplete() + pg::NoData() + pg::Complete("INSERT 0 1") + pg::Ready('I');
  // Answers split at arbitrary points over several writes.
  for (size_t at = 0; at < answers.size(); at += 7) f.Send(kOut, answers.substr(at, 7), 200 + at);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0].method, "UPDATE");
  EXPECT_EQ(recs[0].path, sqls[0]);
  EXPECT_EQ(recs[1].method, "SELECT");
  EXPECT_EQ(recs[1].request.headers.Find("collection").value_or(""), "t");
  EXPECT_EQ(recs[2].method, "INSERT");
  EXPECT_EQ(recs[2].response.headers.Find("rows").value_or(""), "1");
  EXPECT_EQ(recs[0].authority, "u");  // database defaults to the user name
  for (const auto& r : recs) {
    EXPECT_EQ(r.flags, 0u);
    EXPECT_EQ(r.request.first_byte_ns, 101u);  // ingress: read exit
    EXPECT_GE(r.response.first_byte_ns, 200u);
    EXPECT_GE(r.response.last_byte_ns, r.response.first_byte_ns);
  }
  EXPECT_LT(recs[0].response.last_byte_ns, recs[2].response.last_byte_ns);
  EXPECT_EQ(f.session().counters().parse_errors, 0u);
}

TEST(PostgresSession, PreparedStatementKeepsItsTextAcrossExecutions) {
  Feeder f = ConnectedClient();
  f.Send(kOut, pg::Parse("P0_1", "UPDATE accounts SET abalance = abalance + $1 WHERE aid = $2") + pg::Sync(), 100);
  f.Send(kIn, pg::ParseComplete() + pg::Ready(), 110);
  EXPECT_TRUE(f.Take().empty());  // preparing is no operation of its own
  for (int i = 0; i < 5; ++i) {
    f.Send(kOut, pg::Bind("", "P0_1") + pg::DescribePortal("") + pg::Execute("") + pg::Sync(), 200 + 100 * i);
    f.Send(kIn, pg::BindComplete() + pg::NoData() + pg::Complete("UPDATE 1") + pg::Ready('T'), 250 + 100 * i);
  }
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 5u);
  for (const auto& r : recs) {
    EXPECT_EQ(r.method, "UPDATE");
    EXPECT_EQ(r.path, "UPDATE accounts SET abalance = abalance + $1 WHERE aid = $2");
    EXPECT_EQ(r.authority, "shop");
  }
  EXPECT_EQ(recs[3].request.first_byte_ns, 500u);
  EXPECT_EQ(recs[3].response.last_byte_ns, 551u);
}

TEST(PostgresSession, SimpleQueryErrorCarriesSqlstateNotTheMessage) {
  Feeder f = ConnectedClient();
  f.Send(kOut, pg::Query("SELECT * FROM secret_42"), 100);
  f.Send(kIn, pg::Error("42P01") + pg::Ready(), 200);
  f.Send(kOut, pg::Query("SELECT 1"), 300);
  f.Send(kIn, pg::RowDescription() + pg::DataRow("1") + pg::Complete("SELECT 1") + pg::Ready(), 400);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(SqlState(recs[0]), "42P01");
  EXPECT_EQ(AllText(recs[0]).find("does not exist"), std::string::npos);
  EXPECT_TRUE(SqlState(recs[1]).empty());
  SpanDescription d;
  PostgresSemantics().describe(recs[0], false, d);
  EXPECT_TRUE(d.error);
  EXPECT_EQ(d.status_message, "42P01");
  EXPECT_EQ(d.name, "SELECT secret_42");
  EXPECT_EQ(d.operation, "SELECT");
  std::vector<Attribute> attrs;
  PostgresSemantics().attributes(recs[0], d, ExchangeAddresses{}, attrs);
  auto find = [&](std::string_view key) -> std::string {
    for (const auto& a : attrs) {
      if (a.key == key) return std::holds_alternative<std::string>(a.value) ? std::get<std::string>(a.value) : "#";
    }
    return "";
  };
  EXPECT_EQ(find("db.system.name"), "postgresql");
  EXPECT_EQ(find("db.namespace"), "shop");
  EXPECT_EQ(find("db.response.status_code"), "42P01");
  EXPECT_EQ(find("db.query.text"), "SELECT * FROM secret_42");
  EXPECT_EQ(find("db.collection.name"), "secret_42");
}

TEST(PostgresSession, ExtendedErrorSkipsToSyncAndTheNextBatchPairs) {
  Feeder f = ConnectedClient();
  // Batch 1 fails at Bind (division by zero at execution is the same path);
  // batch 2, already sent, succeeds.
  f.Send(kOut,
         pg::Parse("", "SELECT 1/$1") + pg::Bind("", "") + pg::Execute("") + pg::Sync() +
             pg::Parse("", "SELECT 2") + pg::Bind("", "") + pg::Execute("") + pg::Sync(),
         100);
  f.Send(kIn, pg::ParseComplete() + pg::BindComplete() + pg::Error("22012") + pg::Ready(), 200);
  f.Send(kIn, pg::ParseComplete() + pg::BindComplete() + pg::DataRow("2") + pg::Complete("SELECT 1") + pg::Ready(), 300);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(recs[0].path, "SELECT ?/$1");
  EXPECT_EQ(SqlState(recs[0]), "22012");
  EXPECT_EQ(recs[1].path, "SELECT ?");
  EXPECT_TRUE(SqlState(recs[1]).empty());
  EXPECT_EQ(recs[1].response.first_byte_ns, 301u);
}

TEST(PostgresSession, ParseErrorWithoutExecuteStillReported) {
  Feeder f = ConnectedClient();
  f.Send(kOut, pg::Parse("s1", "SELEC broken") + pg::Sync(), 100);
  f.Send(kIn, pg::Error("42601") + pg::Ready(), 200);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(SqlState(recs[0]), "42601");
  EXPECT_EQ(recs[0].method, "SELEC");
}

TEST(PostgresSession, SslRefusedThenPlainStartup) {
  Feeder f(Role::kClient);
  f.Send(kOut, pg::SslRequest(), 1);
  f.Send(kIn, "N", 2);
  f.Send(kOut, pg::Startup({{"user", "u"}, {"database", "d"}}), 3);
  f.Send(kIn, Handshake(), 4);
  f.Send(kOut, pg::Query("BEGIN"), 5);
  f.Send(kIn, pg::Complete("BEGIN") + pg::Ready('T'), 6);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].method, "BEGIN");
  EXPECT_EQ(recs[0].authority, "d");
  EXPECT_FALSE(f.session().encrypted());
}

TEST(PostgresSession, ServerSideSslRefusedThenPlainStartup) {
  Feeder f(Role::kServer);
  f.Send(kIn, pg::SslRequest(), 1);
  f.Send(kOut, "N", 2);
  f.Send(kIn, pg::Startup({{"user", "u"}, {"database", "d"}}), 3);
  f.Send(kOut, Handshake(), 4);
  f.Send(kIn, pg::Query("BEGIN"), 5);
  f.Send(kOut, pg::Complete("BEGIN") + pg::Ready('T'), 6);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].authority, "d");
}

// A forking server: the parent's close() of its copy of the socket ended the
// tracked connection, so the child's bytes arrive as a "late join" -- that
// still starts with the startup packet.
TEST(PostgresSession, LateJoinThatIsReallyTheStart) {
  Feeder f(Role::kServer, /*late_join=*/true);
  f.Send(kIn, pg::SslRequest(), 1);
  f.Send(kOut, "N", 2);
  f.Send(kIn, pg::Startup({{"user", "u"}, {"database", "shop"}}), 3);
  f.Send(kOut, Handshake(), 4);
  f.Send(kIn, pg::Query("SELECT 1"), 5);
  f.Send(kOut, pg::DataRow("1") + pg::Complete("SELECT 1") + pg::Ready(), 6);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].authority, "shop");
  EXPECT_EQ(recs[0].flags, 0u);
  EXPECT_EQ(f.session().counters().parse_errors, 0u);
}

TEST(PostgresSession, SslAcceptedStopsParsing) {
  Feeder f(Role::kClient);
  f.Send(kOut, pg::SslRequest(), 1);
  f.Send(kIn, "S", 2);
  f.Send(kOut, std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 3);
  f.Send(kIn, std::string("\x16\x03\x03\x00\x7a\x02", 6), 4);
  EXPECT_TRUE(f.session().encrypted());
  EXPECT_TRUE(f.Take(true).empty());
  EXPECT_EQ(f.session().counters().parse_errors, 0u);
}

TEST(PostgresSession, EveryByteSplitGivesTheSameRecords) {
  const std::string requests = pg::Query("SELECT 1") + pg::Parse("", "UPDATE t SET a = $1") + pg::Bind("", "") +
                               pg::Execute("") + pg::Sync();
  const std::string answers = pg::RowDescription() + pg::DataRow("1") + pg::Complete("SELECT 1") + pg::Ready() +
                              pg::ParseComplete() + pg::BindComplete() + pg::Complete("UPDATE 3") + pg::Ready();
  for (size_t split = 1; split < answers.size(); ++split) {
    Feeder f(Role::kClient, /*late_join=*/false);
    f.Send(kOut, pg::Startup({{"user", "u"}}), 1);
    f.Send(kIn, Handshake(), 2);
    const size_t rsplit = split % requests.size();
    f.Send(kOut, requests.substr(0, rsplit), 10);
    f.Send(kOut, requests.substr(rsplit), 11);
    f.Send(kIn, answers.substr(0, split), 20);
    f.Send(kIn, answers.substr(split), 21);
    auto recs = f.Take();
    ASSERT_EQ(recs.size(), 2u) << split;
    EXPECT_EQ(recs[0].method, "SELECT");
    EXPECT_EQ(recs[1].method, "UPDATE");
    EXPECT_EQ(recs[1].response.headers.Find("rows").value_or(""), "3");
    EXPECT_EQ(f.session().counters().parse_errors, 0u);
  }
}

TEST(PostgresSession, GapInsideRowsIsAbsorbed) {
  Feeder f = ConnectedClient();
  f.Send(kOut, pg::Query("SELECT payload FROM blobs"), 100);
  const std::string big = pg::DataRow(std::string(100000, 'x'));
  f.Send(kIn, pg::RowDescription() + big.substr(0, 4096), 200);
  f.Gap(kIn, big.size() - 4096 - 10);
  f.Send(kIn, big.substr(big.size() - 10) + pg::Complete("SELECT 1") + pg::Ready(), 300);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].flags, 0u);
  EXPECT_EQ(f.session().counters().gaps_absorbed, 1u);
  EXPECT_EQ(recs[0].response.last_byte_ns, 301u);
}

TEST(PostgresSession, GapAcrossMessagesResyncsOnReadyForQuery) {
  Feeder f = ConnectedClient();
  f.Send(kOut, pg::Query("SELECT a FROM t"), 100);
  std::string rows;
  for (int i = 0; i < 200; ++i) rows += pg::DataRow("row" + std::to_string(i));
  f.Send(kIn, pg::RowDescription() + rows.substr(0, 100), 200);
  f.Gap(kIn, rows.size() - 200);  // lands mid-message: framing is lost
  f.Send(kIn, rows.substr(rows.size() - 100) + pg::Complete("SELECT 200") + pg::Ready(), 300);
  f.Send(kOut, pg::Query("SELECT 1"), 400);
  f.Send(kIn, pg::DataRow("1") + pg::Complete("SELECT 1") + pg::Ready(), 500);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_TRUE(recs[0].flags & kRecordTruncated);
  EXPECT_EQ(recs[1].flags, 0u);
  EXPECT_EQ(recs[1].response.first_byte_ns, 501u);
}

TEST(PostgresSession, GarbageCountsErrorsAndMakesNoRecords) {
  std::mt19937 rng(20);
  uint64_t errors = 0;
  for (int round = 0; round < 200; ++round) {
    Feeder f(round % 2 ? Role::kClient : Role::kServer, round % 3 == 0);
    std::string junk(1 + rng() % 3000, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    const Direction a = round % 2 ? kOut : kIn, b = round % 2 ? kIn : kOut;
    for (size_t at = 0; at < junk.size(); at += 1 + rng() % 500) {
      f.Send(rng() % 2 ? a : b, junk.substr(at, 1 + rng() % 500), at);
    }
    auto recs = f.Take(true);
    // Random bytes do not form a Query/Execute answered in order.
    EXPECT_TRUE(recs.empty()) << round;
    errors += f.session().counters().parse_errors;
  }
  EXPECT_GT(errors, 100u);  // counted, not silently skipped
}

TEST(PostgresSession, TruncatedStreamEndsWithoutResponse) {
  Feeder f = ConnectedClient();
  f.Send(kOut, pg::Query("SELECT pg_sleep(10)"), 100);
  f.Send(kIn, pg::RowDescription().substr(0, 6), 200);
  auto recs = f.Take(/*closing=*/true);
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_TRUE(recs[0].flags & kRecordNoResponse);
  EXPECT_EQ(f.session().counters().unpaired, 1u);
}

// Joined mid-way with the tail of an old answer (no ReadyForQuery in view):
// it must not be taken for the start of the next query's answer.
TEST(PostgresSession, OldAnswerTailDoesNotShiftPairing) {
  Feeder f(Role::kClient, /*late_join=*/true);
  f.Send(kIn, pg::Complete("SELECT 3"), 1);
  for (int i = 0; i < 3; ++i) {
    f.Send(kOut, pg::Query("SELECT " + std::to_string(i)), 10 + 10 * i);
    f.Send(kIn, pg::DataRow("x") + pg::Complete("SELECT 1") + pg::Ready(), 15 + 10 * i);
  }
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(recs[i].request.first_byte_ns, 10u + 10 * i) << i;
    EXPECT_EQ(recs[i].response.first_byte_ns, 16u + 10 * i) << i;
  }
}

TEST(PostgresInfer, StartupAndStatementsFromTheClientOnly) {
  const std::string startup = pg::Startup({{"user", "u"}, {"database", "d"}});
  EXPECT_EQ(Infer(startup, kOut, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer(startup, kIn, Role::kServer), InferResult::kYes);
  EXPECT_EQ(Infer(startup, kIn, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer(startup.substr(0, 5), kOut, Role::kClient), InferResult::kMaybeNeedMore);
  EXPECT_EQ(Infer(pg::SslRequest(), kOut, Role::kClient), InferResult::kYes);
  EXPECT_EQ(Infer(pg::Query("SELECT 1"), kOut, Role::kUnknown), InferResult::kYes);
  EXPECT_EQ(InferRole(pg::Query("SELECT 1"), kIn), Role::kServer);
  EXPECT_EQ(Infer("GET / HTTP/1.1\r\n", kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer("*1\r\n$4\r\nPING\r\n", kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer(pg::Query("\x01\x02\x03 binary"), kOut, Role::kClient), InferResult::kNo);
  EXPECT_EQ(Infer(pg::Ready(), kIn, Role::kClient), InferResult::kNo);
}

TEST(PostgresSession, LateJoinPicksUpAtTheNextStatement) {
  Feeder f(Role::kClient, /*late_join=*/true);
  f.Send(kIn, pg::DataRow("tail of an old answer"), 1);
  f.Send(kIn, pg::Complete("SELECT 9") + pg::Ready(), 2);
  f.Send(kOut, pg::Query("DELETE FROM t WHERE id = 3"), 10);
  f.Send(kIn, pg::Complete("DELETE 1") + pg::Ready(), 20);
  auto recs = f.Take();
  ASSERT_EQ(recs.size(), 1u);
  EXPECT_EQ(recs[0].method, "DELETE");
  EXPECT_TRUE(recs[0].flags & kRecordLateJoin);
}

}  // namespace
}  // namespace sonde::protocols::postgres
