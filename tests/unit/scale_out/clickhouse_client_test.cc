// The ClickHouse client's pure parts: URL parsing, SQL literals, RowBinary
// written and read back, and reads of truncated and garbage results.
#include <gtest/gtest.h>

#include <random>

#include "server/store/clickhouse_client.h"

namespace sonde::server::clickhouse {
namespace {

TEST(ClickHouseUrl, Parses) {
  auto e = ParseUrl("clickhouse://ch.example:9123/sonde");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "ch.example");
  EXPECT_EQ(e->port, 9123);
  EXPECT_EQ(e->database, "sonde");
  e = ParseUrl("clickhouse://u:p%w@[::1]/db_2");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->host, "::1");
  EXPECT_EQ(e->port, 8123);
  EXPECT_EQ(e->user, "u");
  EXPECT_EQ(e->password, "p%w");
  e = ParseUrl("clickhouse://h1:8123/db?cluster=c1&shards=h1:8123,h2:8124");
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->cluster, "c1");
  ASSERT_EQ(e->shards.size(), 2u);
  EXPECT_EQ(e->shards[1].first, "h2");
  EXPECT_EQ(e->shards[1].second, 8124);
}

TEST(ClickHouseUrl, RefusesBadInputWithAReason) {
  for (const char* bad : {"http://h/db", "clickhouse://h", "clickhouse://h:0/db", "clickhouse://h:99999/db",
                          "clickhouse://h:12x/db", "clickhouse:///db", "clickhouse://h/db;drop", "clickhouse://h/",
                          "clickhouse://h/db?cluster=a b", "clickhouse://h/db?shards=h", "clickhouse://h/db?x=1"}) {
    auto e = ParseUrl(bad);
    EXPECT_FALSE(e.ok()) << bad;
    if (!e.ok()) {
      EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    }
  }
}

TEST(ClickHouseLiterals, QuoteEscapesEverythingThatCouldEndTheLiteral) {
  EXPECT_EQ(Quote("plain"), "'plain'");
  EXPECT_EQ(Quote("it's"), "'it\\'s'");
  EXPECT_EQ(Quote("a\\b"), "'a\\\\b'");
  EXPECT_EQ(Quote(std::string("\0\n\x01\xff", 4)), "'\\0\\n\\x01\\xFF'");
  // Only escaped quotes inside: the literal ends at the last character.
  const std::string q = Quote("x' OR 1=1 --");
  for (size_t i = 1; i + 1 < q.size(); ++i) {
    if (q[i] == '\'') {
      EXPECT_EQ(q[i - 1], '\\') << q;
    }
  }
}

TEST(ClickHouseLiterals, Dates) {
  EXPECT_EQ(DateLiteral(0), "'1970-01-01'");
  EXPECT_EQ(DateLiteral(1'700'000'000'000'000'000ull), "'2023-11-14'");
  EXPECT_EQ(DayNumber(86'400'000'000'000ull * 3 + 5), 3);
}

TEST(RowBinary, RoundTrip) {
  RowWriter w;
  w.U8(7);
  w.U16(65000);
  w.U32(4'000'000'000u);
  w.U64(UINT64_MAX - 1);
  w.String("");
  w.String(std::string(300, 'x'));  // a two-byte length
  w.Date(86'400'000'000'000ull * 20000);
  RowReader r(w.data());
  uint8_t a = 0;
  uint16_t b = 0, d = 0;
  uint32_t c = 0;
  uint64_t e = 0;
  std::string s1, s2;
  ASSERT_TRUE(r.U8(&a) && r.U16(&b) && r.U32(&c) && r.U64(&e) && r.String(&s1) && r.String(&s2) && r.U16(&d));
  EXPECT_EQ(a, 7);
  EXPECT_EQ(b, 65000);
  EXPECT_EQ(c, 4'000'000'000u);
  EXPECT_EQ(e, UINT64_MAX - 1);
  EXPECT_EQ(s1, "");
  EXPECT_EQ(s2, std::string(300, 'x'));
  EXPECT_EQ(d, 20000);
  EXPECT_TRUE(r.AtEnd());
  EXPECT_FALSE(r.U8(&a));  // past the end
}

TEST(RowBinary, TruncatedAndGarbageResultsNeverReadOutOfBounds) {
  RowWriter w;
  w.String("hello world");
  w.U64(42);
  const std::string& full = w.data();
  for (size_t cut = 0; cut < full.size(); ++cut) {
    RowReader r(std::string_view(full).substr(0, cut));
    std::string s;
    uint64_t v = 0;
    EXPECT_FALSE(r.String(&s) && r.U64(&v)) << cut;
  }
  // A length far past the data, and a varint that never ends.
  const std::string huge_length("\xff\xff\xff\xff\x0f" "abc", 8);
  RowReader huge(huge_length);
  std::string_view view;
  EXPECT_FALSE(huge.String(&view));
  const std::string endless_varint(20, '\x80');
  RowReader endless(endless_varint);
  EXPECT_FALSE(endless.String(&view));
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 40, '\0');
    for (char& ch : junk) ch = static_cast<char>(rng());
    RowReader r(junk);
    std::string_view sv;
    uint64_t v = 0;
    while (!r.AtEnd() && r.String(&sv) && r.U64(&v)) {
      EXPECT_LE(sv.size(), junk.size());
    }
  }
}

}  // namespace
}  // namespace sonde::server::clickhouse
