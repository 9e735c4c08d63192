// HeaderList: compact header storage shared by every protocol's records.
#include "agent/protocols/header_list.h"

#include <gtest/gtest.h>

#include <string>

namespace sonde::protocols {
namespace {

TEST(HeaderList, AddFindIterate) {
  HeaderList h;
  h.Add("content-type", "text/html");
  h.Add("x-request-id", "abc", false);
  h.Add("", "", true);
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].name, "content-type");
  EXPECT_EQ(h[0].value, "text/html");
  EXPECT_TRUE(h[2].unknown);
  EXPECT_EQ(h.Find("x-request-id").value_or(""), "abc");
  EXPECT_FALSE(h.Find("X-Request-Id").has_value()) << "Find takes lowercase names";
  EXPECT_FALSE(h.Find("missing").has_value());
  std::string joined;
  for (const HeaderField f : h) joined += std::string(f.name) + "=" + std::string(f.value) + ";";
  EXPECT_EQ(joined, "content-type=text/html;x-request-id=abc;=;");
}

TEST(HeaderList, BlockFieldsAreViewsIntoOneCopy) {
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-Kong-Request-Id: K1\r\n\r\n";
  const std::string_view block(head);
  HeaderList h;
  h.AssignBlock(block, 2);
  h.AddFromBlock(block, block.substr(16, 4), block.substr(22, 1));
  h.AddFromBlock(block, block.substr(25, 17), block.substr(44, 2));
  head.assign(head.size(), '#');  // the list must not point into the caller's buffer
  EXPECT_EQ(h[0].name, "host");
  EXPECT_EQ(h[0].value, "a");
  EXPECT_EQ(h.Find("x-kong-request-id").value_or(""), "K1");
  h.SetValue(1, "[REDACTED]");
  EXPECT_EQ(h[1].value, "[REDACTED]");
  EXPECT_EQ(h[0].value, "a");
}

TEST(HeaderList, SetValueOverwritesTheOldBytes) {
  HeaderList h = {{"authorization", "Bearer secret-token-value"}, {"cookie", "a"}};
  h.SetValue(0, "[REDACTED]");  // shorter: in place
  h.SetValue(1, "[REDACTED]");  // longer: appended, old bytes wiped
  EXPECT_EQ(h[0].value, "[REDACTED]");
  EXPECT_EQ(h[1].value, "[REDACTED]");
  EXPECT_EQ(h[1].name, "cookie");
  // No byte of the secrets is reachable any more; the shipped views never
  // show them and neither does the buffer.
  for (const HeaderField f : h) EXPECT_EQ(f.value.find("secret"), std::string_view::npos);
}

TEST(HeaderList, CopiesAndMovesKeepViewsValid) {
  HeaderList a;
  for (int i = 0; i < 50; ++i) a.Add("h" + std::to_string(i), std::string(i, 'v'));
  HeaderList b = a;
  HeaderList c = std::move(a);
  ASSERT_EQ(b.size(), 50u);
  ASSERT_EQ(c.size(), 50u);
  for (size_t i = 0; i < 50; ++i) {
    EXPECT_EQ(b[i].name, "h" + std::to_string(i));
    EXPECT_EQ(c[i].value, std::string(i, 'v'));
  }
  c.Clear();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.byte_size(), 0u);
}

}  // namespace
}  // namespace sonde::protocols
