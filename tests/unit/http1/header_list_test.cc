// HeaderList: compact header storage shared by every protocol's records.
#include "agent/protocols/header_list.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

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
  struct Field {
    std::string_view name, value;
  };
  const std::vector<Field> fields = {{block.substr(16, 4), block.substr(22, 1)},
                                     {block.substr(25, 17), block.substr(44, 2)}};
  h.AssignParsedBlock(block, fields);
  head.assign(head.size(), '#');  // the list must not point into the caller's buffer
  EXPECT_EQ(h[0].name, "host");
  EXPECT_EQ(h[0].value, "a");
  EXPECT_EQ(h.Find("x-kong-request-id").value_or(""), "K1");
  h.SetValue(1, "[REDACTED]");
  EXPECT_EQ(h[1].value, "[REDACTED]");
  EXPECT_EQ(h[0].value, "a");
}

TEST(HeaderList, NamesOfEveryLengthLowercaseExactly) {
  // Short names take 4-byte words, longer ones 8-byte words with an
  // overlapping last word; the value right after must stay untouched.
  for (size_t n = 0; n <= 40; ++n) {
    std::string head;
    for (size_t i = 0; i < n; ++i) head.push_back(static_cast<char>("AbZz@[`{-Q"[i % 10]));
    head += ":VALUE";
    struct Field {
      std::string_view name, value;
    };
    const std::string_view block(head);
    const std::vector<Field> fields = {{block.substr(0, n), block.substr(n + 1)}};
    HeaderList h;
    h.AssignParsedBlock(block, fields);
    std::string want(head.substr(0, n));
    for (char& c : want) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    EXPECT_EQ(h[0].name, want) << "length " << n;
    EXPECT_EQ(h[0].value, "VALUE") << "length " << n;
  }
}

TEST(HeaderList, GrowsInOneBufferAndKeepsEveryField) {
  HeaderList h;
  for (int i = 0; i < 500; ++i) h.Add("name-" + std::to_string(i), std::string(static_cast<size_t>(i % 50), 'v'), i % 7 == 0);
  ASSERT_EQ(h.size(), 500u);
  h.SetValue(3, std::string(300, 'w'));  // longer: appended after growth
  for (int i = 0; i < 500; ++i) {
    EXPECT_EQ(h[static_cast<size_t>(i)].name, "name-" + std::to_string(i));
    EXPECT_EQ(h[static_cast<size_t>(i)].unknown, i % 7 == 0);
    if (i != 3) {
      EXPECT_EQ(h[static_cast<size_t>(i)].value.size(), static_cast<size_t>(i % 50));
    }
  }
  EXPECT_EQ(h[3].value, std::string(300, 'w'));
  HeaderList copy = h;
  h.Clear();
  EXPECT_TRUE(h.empty());
  EXPECT_EQ(copy.Find("name-499").value_or("?"), std::string(499 % 50, 'v'));
}

TEST(HeaderList, BlockNamesAreLowercasedWholeWordsAtATime) {
  // Names longer than 8 bytes take the word-at-a-time path; every byte value
  // around the letter ranges must come out as the byte-wise rule says.
  std::string head;
  for (int c = 1; c < 256; ++c) head.push_back(static_cast<char>(c));
  head += ": v";
  struct Field {
    std::string_view name, value;
  };
  const std::string_view block(head);
  const std::vector<Field> fields = {{block.substr(0, 255), block.substr(257, 1)}};
  HeaderList h;
  h.AssignParsedBlock(block, fields);
  ASSERT_EQ(h[0].name.size(), 255u);
  for (int c = 1; c < 256; ++c) {
    const char want = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c);
    EXPECT_EQ(h[0].name[static_cast<size_t>(c - 1)], want) << "byte " << c;
  }
  EXPECT_EQ(h[0].value, "v");
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

// Find skips lists holding no name of the asked size: names of every size
// (including 64 and more, which share a size bit) are still found after
// copies, moves, Clear and block assignment.
TEST(HeaderList, FindByNameSizeAfterEveryMutation) {
  HeaderList h;
  for (size_t n = 1; n <= 130; n += 7) h.Add(std::string(n, 'a'), std::to_string(n));
  for (size_t n = 1; n <= 130; n += 7) {
    EXPECT_EQ(h.Find(std::string(n, 'a')).value_or(""), std::to_string(n)) << n;
    EXPECT_FALSE(h.Find(std::string(n, 'b')).has_value()) << n;
  }
  EXPECT_FALSE(h.Find(std::string(2, 'a')).has_value());
  HeaderList copy;
  copy = h;
  EXPECT_EQ(copy.Find(std::string(71, 'a')).value_or(""), "71");
  HeaderList moved(std::move(copy));
  EXPECT_EQ(moved.Find(std::string(127, 'a')).value_or(""), "127");
  EXPECT_FALSE(copy.Find(std::string(127, 'a')).has_value());  // NOLINT(bugprone-use-after-move): moved-from is empty
  HeaderList assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.Find(std::string(8, 'a')).value_or(""), "8");
  assigned.Clear();
  EXPECT_FALSE(assigned.Find(std::string(8, 'a')).has_value());
  assigned.Add("traceparent", "00-x");
  EXPECT_EQ(assigned.Find("traceparent").value_or(""), "00-x");

  const std::string block = "Host: a\r\nX-Request-Id: r1\r\n";
  struct Field {
    std::string_view name, value;
  };
  const std::string_view b = block;
  const Field fields[] = {{b.substr(0, 4), b.substr(6, 1)}, {b.substr(9, 12), b.substr(23, 2)}};
  HeaderList parsed;
  parsed.Add("content-length", "1");
  parsed.AssignParsedBlock(b, fields);
  EXPECT_EQ(parsed.Find("x-request-id").value_or(""), "r1");
  EXPECT_EQ(parsed.Find("host").value_or(""), "a");
  EXPECT_FALSE(parsed.Find("content-length").has_value()) << "assignment replaced the earlier fields";
}

using header_list_detail::Buffer;

TEST(HeaderListBuffer, SizeClassesAndReuseOnTheSameThread) {
  std::thread([] {  // a fresh thread: its cache starts empty
    EXPECT_EQ(Buffer::CachedOnThisThread(), 0u);
    Buffer a = Buffer::Allocate(1);
    EXPECT_EQ(a.capacity(), 64u);
    EXPECT_EQ(Buffer::Allocate(65).capacity(), 128u);  // freed at once: cached
    EXPECT_EQ(Buffer::CachedOnThisThread(), 1u);
    Buffer b = Buffer::Allocate(100);  // the cached 128-byte one
    EXPECT_EQ(Buffer::CachedOnThisThread(), 0u);
    EXPECT_EQ(b.capacity(), 128u);
    EXPECT_EQ(Buffer::Allocate(4096).capacity(), 4096u);
    const Buffer big = Buffer::Allocate(4097);  // not pooled: 16-byte granularity
    EXPECT_EQ(big.capacity(), 4112u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(big.get()) % 16, 0u);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.get()) % 16, 0u);
    char* const reused = b.get();
    b = Buffer();
    EXPECT_EQ(Buffer::Allocate(128).get(), reused);  // the most recently freed comes back first
  }).join();
}

TEST(HeaderListBuffer, TheCacheIsBounded) {
  std::thread([] {
    std::vector<Buffer> many;
    for (int i = 0; i < 1000; ++i) many.push_back(Buffer::Allocate(500));  // 512-byte class
    many.clear();
    EXPECT_EQ(Buffer::CachedOnThisThread(), 64u);  // the rest went back to operator delete
    for (int i = 0; i < 1000; ++i) many.push_back(Buffer::Allocate(4000));
    many.clear();
    EXPECT_EQ(Buffer::CachedOnThisThread(), 64u + 8u);
    for (int i = 0; i < 1000; ++i) many.push_back(Buffer::Allocate(10000));  // never cached
    many.clear();
    EXPECT_EQ(Buffer::CachedOnThisThread(), 72u);
  }).join();
}

TEST(HeaderListBuffer, ListsFreedOnAnotherThreadJoinThatThreadsCache) {
  std::vector<HeaderList> lists(10);
  for (HeaderList& h : lists) h.Add("name", std::string(300, 'v'));
  std::thread([&] {
    EXPECT_EQ(Buffer::CachedOnThisThread(), 0u);
    lists.clear();
    EXPECT_EQ(Buffer::CachedOnThisThread(), 10u);
    HeaderList h;
    h.Add("x", "y");  // from the 64-byte class: not one of the cached 512-byte buffers
    EXPECT_EQ(Buffer::CachedOnThisThread(), 10u);
    h.Add("name", std::string(300, 'v'));  // grows into a cached 512-byte buffer
    EXPECT_EQ(Buffer::CachedOnThisThread(), 10u);  // and the 64-byte one is cached instead
    EXPECT_EQ(h[1].value, std::string(300, 'v'));
  }).join();  // the thread's cache is freed as it exits (leak checkers see it)
}

// A list that outlives the thread's cache (a thread_local constructed before
// the cache was first used) is freed with operator delete.
TEST(HeaderListBuffer, ListsDestroyedAfterTheThreadsCacheAreFreedPlainly) {
  std::thread([] {
    thread_local HeaderList early;  // destroyed after the cache's drainer
    early.Add("a", std::string(200, 'b'));
    HeaderList{{"warm", "up"}};  // first cached buffer: the drainer is constructed now
    EXPECT_GE(Buffer::CachedOnThisThread(), 1u);
  }).join();
  SUCCEED();
}

TEST(HeaderList, BytesAreTheAssignedBlock) {
  const std::string head = "GET /x HTTP/1.1\r\nHost: H\r\n\r\n";
  struct Field {
    std::string_view name, value;
  };
  const std::string_view block(head);
  const std::vector<Field> fields = {{block.substr(17, 4), block.substr(23, 1)}};
  HeaderList h;
  h.AssignParsedBlock(block, fields);
  EXPECT_EQ(h.bytes(), "GET /x HTTP/1.1\r\nhost: H\r\n\r\n");
  EXPECT_EQ(h[0].name, "host");
  EXPECT_EQ(h[0].value, "H");
}

}  // namespace
}  // namespace sonde::protocols
