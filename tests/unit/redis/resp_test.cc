// RESP parser on hand-made byte streams: every type, nesting, truncation at
// every byte offset, garbage.
#include <gtest/gtest.h>

#include <string>

#include "agent/protocols/redis/resp.h"

namespace sonde::protocols::redis {
namespace {

// Feeds `bytes` in one go; returns the result and the bytes used.
RespScanner::Result ScanAll(RespScanner& s, std::string_view bytes, size_t* used) {
  return s.Feed(bytes, used);
}

// Feeds `bytes` one prefix at a time the way a session does (unconsumed
// bytes presented again with more appended) and expects one complete value.
void ExpectCompleteAtEveryCut(std::string_view bytes, bool inline_ok = false) {
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    RespScanner s(inline_ok);
    size_t used = 0;
    auto r = s.Feed(bytes.substr(0, cut), &used);
    ASSERT_EQ(r, RespScanner::Result::kNeedMore) << "cut " << cut << " of " << bytes;
    ASSERT_LE(used, cut);
    size_t used2 = 0;
    r = s.Feed(bytes.substr(used), &used2);
    ASSERT_EQ(r, RespScanner::Result::kDone) << "cut " << cut << " of " << bytes;
    ASSERT_EQ(used + used2, bytes.size()) << "cut " << cut;
  }
}

TEST(RespHeader, Types) {
  RespHeader h;
  EXPECT_EQ(ParseRespHeader("+OK\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(h.type, RespType::kSimpleString);
  EXPECT_EQ(h.line, "OK");
  EXPECT_EQ(h.size, 5u);
  EXPECT_EQ(ParseRespHeader("$-1\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(h.length, -1);
  EXPECT_EQ(ParseRespHeader("*-1\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(ParseRespHeader("%2\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(h.length, 4);  // a map counts keys and values
  EXPECT_EQ(ParseRespHeader(",3.14\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(ParseRespHeader(",-inf\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(ParseRespHeader("#t\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(ParseRespHeader("(3492890328409238509324850943850943825024385\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(ParseRespHeader("_\r\n", &h), RespStatus::kOk);
  EXPECT_EQ(ParseRespHeader("$5", &h), RespStatus::kNeedMore);
  EXPECT_EQ(ParseRespHeader("$5\r", &h), RespStatus::kNeedMore);
  // Garbage.
  EXPECT_EQ(ParseRespHeader("GET / HTTP/1.1\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("$abc\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("$-2\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("%-1\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("#x\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("_x\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("+a\nb\r\n", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("$5\rX", &h), RespStatus::kInvalid);
  EXPECT_EQ(ParseRespHeader("$99999999999\r\n", &h), RespStatus::kInvalid);  // above 512 MiB
  EXPECT_EQ(ParseRespHeader("$" + std::string(40, '1'), &h), RespStatus::kInvalid);  // no CRLF in sight
}

const char* const kValues[] = {
    "+OK\r\n",
    "-ERR unknown command\r\n",
    ":1000\r\n",
    ":-5\r\n",
    "$5\r\nhello\r\n",
    "$0\r\n\r\n",
    "$-1\r\n",
    "*-1\r\n",
    "*0\r\n",
    "*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n",
    "*3\r\n*2\r\n:1\r\n:2\r\n*1\r\n+x\r\n$-1\r\n",  // nested
    "_\r\n",
    ",1.5e3\r\n",
    "#f\r\n",
    "!21\r\nSYNTAX invalid syntax\r\n",
    "=15\r\ntxt:Some string\r\n",
    "(12345678901234567890123\r\n",
    "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n",
    "~3\r\n+a\r\n+b\r\n+c\r\n",
    ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
    "|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:2039123\r\n:9543892\r\n",  // attribute then value
};

TEST(RespScanner, EveryTypeCompleteInOneFeed) {
  for (const char* v : kValues) {
    RespScanner s;
    size_t used = 0;
    EXPECT_EQ(ScanAll(s, v, &used), RespScanner::Result::kDone) << v;
    EXPECT_EQ(used, std::string_view(v).size()) << v;
  }
}

TEST(RespScanner, TruncatedAtEveryOffset) {
  for (const char* v : kValues) ExpectCompleteAtEveryCut(v);
  ExpectCompleteAtEveryCut("PING\r\n", /*inline_ok=*/true);
}

TEST(RespScanner, StopsAfterOneValue) {
  RespScanner s;
  size_t used = 0;
  ASSERT_EQ(s.Feed("+OK\r\n:1\r\n", &used), RespScanner::Result::kDone);
  EXPECT_EQ(used, 5u);
  ASSERT_EQ(s.Feed(":1\r\n", &used), RespScanner::Result::kDone);
  EXPECT_EQ(s.summary().type, RespType::kInteger);
}

TEST(RespScanner, SummaryOfCommandErrorAndPush) {
  RespScanner s;
  size_t used = 0;
  ASSERT_EQ(s.Feed("*3\r\n$3\r\nset\r\n$6\r\nsecret\r\n$1\r\nv\r\n", &used), RespScanner::Result::kDone);
  EXPECT_EQ(s.summary().type, RespType::kArray);
  EXPECT_EQ(s.summary().elements, 3);
  EXPECT_TRUE(s.summary().bulk_strings_only);
  EXPECT_EQ(s.summary().words[0], "set");
  ASSERT_EQ(s.Feed("-WRONGTYPE Operation against a key\r\n", &used), RespScanner::Result::kDone);
  EXPECT_TRUE(s.summary().error);
  EXPECT_EQ(s.summary().error_text, "WRONGTYPE Operation against a key");
  ASSERT_EQ(s.Feed("!21\r\nSYNTAX invalid syntax\r\n", &used), RespScanner::Result::kDone);
  EXPECT_TRUE(s.summary().error);
  EXPECT_EQ(s.summary().error_text, "SYNTAX invalid syntax");
  ASSERT_EQ(s.Feed(kValues[19], &used), RespScanner::Result::kDone);
  EXPECT_EQ(s.summary().type, RespType::kPush);
  EXPECT_EQ(s.summary().words[0], "message");
  ASSERT_EQ(s.Feed(kValues[20], &used), RespScanner::Result::kDone);
  EXPECT_EQ(s.summary().type, RespType::kArray);  // the attribute is skipped
}

TEST(RespScanner, InlineOnlyWhenAllowed) {
  RespScanner client(true), server(false);
  size_t used = 0;
  ASSERT_EQ(client.Feed("ping  hello\r\n", &used), RespScanner::Result::kDone);
  EXPECT_EQ(client.summary().type, RespType::kInline);
  EXPECT_EQ(client.summary().words[0], "ping");
  EXPECT_EQ(server.Feed("ping\r\n", &used), RespScanner::Result::kInvalid);
  RespScanner c2(true);
  EXPECT_EQ(c2.Feed(std::string("PI\x01NG\r\n"), &used), RespScanner::Result::kInvalid);
}

TEST(RespScanner, HugeBulkIsSkippedNotBuffered) {
  RespScanner s;
  size_t used = 0;
  const std::string header = "$100000000\r\n";
  ASSERT_EQ(s.Feed(header, &used), RespScanner::Result::kNeedMore);
  EXPECT_EQ(used, header.size());
  const std::string block(1 << 20, 'x');
  for (int i = 0; i < 95; ++i) {
    ASSERT_EQ(s.Feed(block, &used), RespScanner::Result::kNeedMore);
    ASSERT_EQ(used, block.size());  // every payload byte consumed at once
  }
  const uint64_t left = 100000000 - 95 * (1 << 20);
  EXPECT_FALSE(s.SkipGap(left + 1));  // past the payload's end: framing lost
  EXPECT_TRUE(s.SkipGap(left - 100));  // a lost stretch inside the payload
  ASSERT_EQ(s.Feed(std::string(100, 'x') + "\r\n", &used), RespScanner::Result::kDone);
}

TEST(RespScanner, GarbageIsInvalid) {
  const char* const garbage[] = {"\x16\x03\x01\x02\x00", "*2\r\n$3\r\nGETxx\r\n", "*1\r\n@\r\n", "hello\r\n",
                                 "$3\r\nabcd\r\n"};
  for (const char* g : garbage) {
    RespScanner s;
    size_t used = 0;
    EXPECT_EQ(s.Feed(g, &used), RespScanner::Result::kInvalid) << g;
  }
  // Nesting deeper than kMaxDepth.
  std::string deep;
  for (size_t i = 0; i <= kMaxDepth + 1; ++i) deep += "*1\r\n";
  RespScanner s;
  size_t used = 0;
  EXPECT_EQ(s.Feed(deep, &used), RespScanner::Result::kInvalid);
}

}  // namespace
}  // namespace sonde::protocols::redis
