// DNS header / question parsing: names (with compression), types, rcodes,
// truncation and garbage.
#include <gtest/gtest.h>

#include <random>

#include "agent/protocols/dns/message.h"
#include "tests/unit/dns/dns_messages.h"

namespace sonde::protocols::dns {
namespace {

namespace d = sonde::testing::dns;

TEST(DnsMessage, QueryAndResponse) {
  Message q;
  ASSERT_EQ(ParseMessage(d::Query(0x1234, "Www.Example.TEST", 28), &q), ParseStatus::kOk);
  EXPECT_EQ(q.header.id, 0x1234);
  EXPECT_FALSE(q.header.response);
  EXPECT_TRUE(q.header.recursion_desired);
  EXPECT_EQ(q.name, "www.example.test");
  EXPECT_EQ(q.qtype, 28);
  EXPECT_EQ(TypeName(q.qtype), "AAAA");
  EXPECT_TRUE(PlausibleMessage(q, false));
  EXPECT_FALSE(PlausibleMessage(q, true));

  Message r;
  ASSERT_EQ(ParseMessage(d::Response(0x1234, "www.example.test", 1, 3, 0), &r), ParseStatus::kOk);
  EXPECT_TRUE(r.header.response);
  EXPECT_EQ(r.header.rcode, 3);
  EXPECT_EQ(RcodeName(r.header.rcode), "NXDOMAIN");
  EXPECT_EQ(r.header.answers, 0);
  EXPECT_TRUE(PlausibleMessage(r, true));
  EXPECT_EQ(TypeName(65280), "TYPE65280");
  EXPECT_EQ(RcodeName(15), "RCODE15");
}

TEST(DnsMessage, RootNameAndCompressionPointers) {
  Message m;
  ASSERT_EQ(ParseMessage(d::Query(1, "", 2), &m), ParseStatus::kOk);
  EXPECT_EQ(m.name, ".");
  // A question whose name points backwards is only legal to a known target:
  // a pointer to itself / forward is invalid.
  std::string looping = d::Be16(1) + d::Be16(0x0100) + d::Be16(1) + d::Be16(0) + d::Be16(0) + d::Be16(0) +
                        d::Be16(0xC00C) + d::Be16(1) + d::Be16(1);
  EXPECT_EQ(ParseMessage(looping, &m), ParseStatus::kInvalid);
}

TEST(DnsMessage, TruncatedPrefixesNeedMoreAndNeverCrash) {
  const std::string q = d::Query(7, "api.internal.example", 1, false);
  for (size_t n = 0; n < q.size(); ++n) {
    Message m;
    EXPECT_EQ(ParseMessage(std::string_view(q).substr(0, n), &m), ParseStatus::kNeedMore) << n;
  }
}

TEST(DnsMessage, GarbageIsRejectedOrHarmless) {
  std::mt19937 rng(53);
  int plausible = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string junk(rng() % 80, '\0');
    for (char& c : junk) c = static_cast<char>(rng());
    Message m;
    if (ParseMessage(junk, &m) == ParseStatus::kOk && (PlausibleMessage(m, false) || PlausibleMessage(m, true))) {
      ++plausible;
    }
  }
  EXPECT_EQ(plausible, 0);
  Message http;
  EXPECT_EQ(ParseMessage("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &http), ParseStatus::kInvalid);
}

}  // namespace
}  // namespace sonde::protocols::dns
