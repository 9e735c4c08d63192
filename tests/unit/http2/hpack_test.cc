// HPACK: Huffman, the public interoperability stories, table eviction and
// size updates, and decoding after the dynamic table was lost.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "agent/protocols/http2/hpack.h"
#include "agent/protocols/http2/huffman.h"
#include "agent/protocols/http2/tolerant_hpack.h"
#include "tests/unit/http2/h2_test_util.h"

namespace sonde::protocols::http2 {
namespace {

namespace fs = std::filesystem;
using testing::Deflater;
using testing::Headers;

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Headers Fields(const HeaderList& list) {
  Headers out;
  for (const DecodedField& f : list) out.emplace_back(f.name, f.value);
  return out;
}

// --- Huffman ---------------------------------------------------------------

TEST(Huffman, RoundTripsEveryByteValue) {
  std::mt19937 rng(7);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string decoded;
    ASSERT_TRUE(HuffmanDecode(HuffmanEncode(s), decoded)) << iter;
    EXPECT_EQ(decoded, s);
  }
}

TEST(Huffman, Rfc7541AppendixC4Examples) {
  std::string out;
  ASSERT_TRUE(HuffmanDecode(Unhex("f1e3c2e5f23a6ba0ab90f4ff"), out));
  EXPECT_EQ(out, "www.example.com");
  out.clear();
  ASSERT_TRUE(HuffmanDecode(Unhex("a8eb10649cbf"), out));
  EXPECT_EQ(out, "no-cache");
  EXPECT_EQ(HuffmanEncode("custom-value"), Unhex("25a849e95bb8e8b4bf"));
}

TEST(Huffman, RejectsEosAndBadPadding) {
  std::string out;
  EXPECT_FALSE(HuffmanDecode(Unhex("ffffffff"), out));  // contains EOS (30 ones)
  out.clear();
  // 'a' is 00011 (5 bits); padding with zeros is invalid.
  EXPECT_FALSE(HuffmanDecode(std::string(1, '\x18'), out));
  out.clear();
  EXPECT_TRUE(HuffmanDecode(std::string(1, '\x1f'), out));
  EXPECT_EQ(out, "a");
  out.clear();
  // A whole byte of padding is too long.
  EXPECT_FALSE(HuffmanDecode(std::string("\x1f\xff", 2), out));
}

// --- Public stories --------------------------------------------------------

fs::path StoriesDir() { return fs::path(SONDE_SOURCE_DIR) / ".." / "shared" / "testdata" / "hpack"; }

bool RequireStories() {
  if (fs::is_directory(StoriesDir())) return true;
  const char* ci = std::getenv("CI");
  if (ci != nullptr && std::string(ci) == "true") {
    ADD_FAILURE() << "HPACK test vectors missing at " << StoriesDir();
  }
  return false;
}

struct Story {
  std::string name;
  std::vector<std::string> wires;
  std::vector<Headers> expected;
};

std::vector<Story> LoadStories() {
  std::vector<Story> stories;
  for (const auto& dir : fs::directory_iterator(StoriesDir())) {
    if (!dir.is_directory() || dir.path().filename() == "raw-data") continue;
    for (const auto& file : fs::directory_iterator(dir.path())) {
      if (file.path().extension() != ".json") continue;
      std::ifstream in(file.path());
      const auto json = nlohmann::json::parse(in);
      Story story;
      story.name = dir.path().filename().string() + "/" + file.path().filename().string();
      for (const auto& c : json.at("cases")) {
        story.wires.push_back(Unhex(c.at("wire").get<std::string>()));
        Headers h;
        for (const auto& kv : c.at("headers")) {
          for (auto it = kv.begin(); it != kv.end(); ++it) {
            h.emplace_back(it.key(), it.value().get<std::string>());
          }
        }
        story.expected.push_back(std::move(h));
      }
      stories.push_back(std::move(story));
    }
  }
  std::sort(stories.begin(), stories.end(),
            [](const Story& a, const Story& b) { return a.name < b.name; });
  return stories;
}

TEST(HpackStories, ExactDecoderMatchesEveryStory) {
  if (!RequireStories()) GTEST_SKIP() << "no HPACK test vectors at " << StoriesDir();
  const auto stories = LoadStories();
  ASSERT_GE(stories.size(), 150u);
  size_t blocks = 0;
  for (const Story& story : stories) {
    HpackDecoder decoder;
    HeaderList out;
    for (size_t i = 0; i < story.wires.size(); ++i) {
      ASSERT_TRUE(decoder.Decode(story.wires[i], out).ok()) << story.name << " case " << i;
      ASSERT_EQ(Fields(out), story.expected[i]) << story.name << " case " << i;
      ++blocks;
    }
    EXPECT_EQ(decoder.counters().blocks_degraded, 0u) << story.name;
  }
  EXPECT_GT(blocks, 3000u);
}

TEST(HpackStories, TolerantDecoderWithKnownStateMatchesEveryStory) {
  if (!RequireStories()) GTEST_SKIP() << "no HPACK test vectors at " << StoriesDir();
  for (const Story& story : LoadStories()) {
    TolerantHpackDecoder decoder;
    HeaderList out;
    for (size_t i = 0; i < story.wires.size(); ++i) {
      out.Clear();
      ASSERT_TRUE(decoder.Decode(story.wires[i], out).ok()) << story.name << " case " << i;
      ASSERT_EQ(Fields(out), story.expected[i]) << story.name << " case " << i;
    }
    EXPECT_EQ(decoder.unknown_references(), 0u) << story.name;
  }
}

// Lose the table in the middle of every story: known fields must never be
// wrong, positions must line up, and the decoder must recover where the
// encoder's behaviour allows it.
TEST(HpackStories, DegradedDecodingNeverInventsValues) {
  if (!RequireStories()) GTEST_SKIP() << "no HPACK test vectors at " << StoriesDir();
  uint64_t known = 0, unknown = 0, recoveries = 0;
  for (const Story& story : LoadStories()) {
    const size_t skip = story.wires.size() / 3;
    HpackDecoder decoder;
    HeaderList out;
    for (size_t i = 0; i < skip; ++i) ASSERT_TRUE(decoder.Decode(story.wires[i], out).ok());
    decoder.LoseState();
    for (size_t i = skip + 1; i < story.wires.size(); ++i) {  // block `skip` is lost
      ASSERT_TRUE(decoder.Decode(story.wires[i], out).ok()) << story.name << " case " << i;
      ASSERT_EQ(out.count, story.expected[i].size()) << story.name << " case " << i;
      for (size_t f = 0; f < out.count; ++f) {
        const DecodedField& got = out.fields[f];
        if (!got.name_unknown) {
          EXPECT_EQ(got.name, story.expected[i][f].first) << story.name << " case " << i;
        }
        if (!got.value_unknown) {
          EXPECT_EQ(got.value, story.expected[i][f].second) << story.name << " case " << i;
          ++known;
        } else {
          ++unknown;
        }
      }
    }
    recoveries += decoder.counters().recoveries;
  }
  EXPECT_GT(known, unknown);  // most fields survive a lost table
  EXPECT_GT(unknown, 0u);     // and the lost ones are reported, not guessed
  EXPECT_GT(recoveries, 0u);  // some stories refill the table and go back to nghttp2
  std::printf("degraded decoding: %llu known, %llu unknown fields, %llu recoveries\n",
              static_cast<unsigned long long>(known), static_cast<unsigned long long>(unknown),
              static_cast<unsigned long long>(recoveries));
}

// --- Eviction, size updates, recovery --------------------------------------

Headers NumberedHeaders(int i) {
  return {{":method", "GET"},
          {":path", "/item/" + std::to_string(i)},
          {"x-request-id", "req-" + std::to_string(i * 7919)},
          {"x-tenant", "tenant-" + std::to_string(i % 5)}};
}

TEST(Hpack, SmallTableEvictsAndSizeUpdatesApply) {
  Deflater deflater(4096);
  HpackDecoder exact;
  TolerantHpackDecoder tolerant;
  HeaderList a, b;
  for (int i = 0; i < 200; ++i) {
    if (i == 50) deflater.ChangeTableSize(128);  // forces evictions on every block
    if (i == 100) deflater.ChangeTableSize(0);   // clears the table
    if (i == 150) deflater.ChangeTableSize(4096);
    const Headers h = NumberedHeaders(i);
    const std::string block = deflater.Encode(h);
    ASSERT_TRUE(exact.Decode(block, a).ok()) << i;
    b.Clear();
    ASSERT_TRUE(tolerant.Decode(block, b).ok()) << i;
    EXPECT_EQ(Fields(a), h) << i;
    EXPECT_EQ(Fields(b), h) << i;
    if (i >= 50 && i < 100) {
      size_t size = 0;
      for (const auto& e : tolerant.entries()) size += e.size();
      EXPECT_LE(size, 128u);
    }
    if (i >= 100 && i < 150) {
      EXPECT_TRUE(tolerant.entries().empty());
    }
  }
  EXPECT_EQ(exact.counters().blocks_degraded, 0u);
}

TEST(Hpack, RecoversAfterLossOnceTableRefills) {
  Deflater deflater(4096);
  HpackDecoder decoder;
  HeaderList out;
  // Common headers get indexed early and referenced forever after.
  const Headers common = {{":method", "POST"},
                          {":path", "/svc/Call"},
                          {"content-type", "application/grpc"},
                          {"user-agent", "grpc-node-js/1.10.0"}};
  ASSERT_TRUE(decoder.Decode(deflater.Encode(common), out).ok());
  decoder.LoseState();
  ASSERT_TRUE(decoder.Decode(deflater.Encode(common), out).ok());
  ASSERT_EQ(out.count, 4u);
  EXPECT_EQ(out.fields[0].value, "POST");       // static table
  EXPECT_EQ(out.fields[1].value, "/svc/Call");  // literal (nghttp2 never indexes :path)
  EXPECT_TRUE(out.fields[2].unknown());         // lost dynamic entry
  EXPECT_TRUE(out.fields[3].unknown());
  EXPECT_TRUE(decoder.degraded());
  // New literal-with-indexing entries fill the 4096-byte table: the unknown
  // tail is pushed out and the decoder returns to nghttp2.
  int i = 0;
  while (decoder.degraded() && i < 200) {
    const Headers h = {{"x-fill-" + std::to_string(i), std::string(100, 'a' + i % 26)}};
    ASSERT_TRUE(decoder.Decode(deflater.Encode(h), out).ok());
    EXPECT_EQ(Fields(out), h);
    ++i;
  }
  EXPECT_FALSE(decoder.degraded());
  EXPECT_EQ(decoder.counters().recoveries, 1u);
  // Exact again: a block referencing the rebuilt entries decodes fully.
  const Headers again = {{"x-fill-" + std::to_string(i - 1),
                          std::string(100, 'a' + (i - 1) % 26)},
                         {":method", "GET"}};
  ASSERT_TRUE(decoder.Decode(deflater.Encode(again), out).ok());
  EXPECT_EQ(Fields(out), again);
  EXPECT_EQ(decoder.counters().unknown_fields, 2u);
}

TEST(Hpack, NeverIndexedAndSizeUpdateToZeroRecover) {
  Deflater deflater(4096);
  HpackDecoder decoder;
  HeaderList out;
  ASSERT_TRUE(decoder.Decode(deflater.Encode({{"x-a", "1"}, {"x-b", "2"}}), out).ok());
  decoder.LoseState();
  deflater.ChangeTableSize(0);  // next block starts with a size update to 0
  deflater.ChangeTableSize(4096);
  ASSERT_TRUE(decoder.Decode(deflater.Encode({{"x-a", "1"}, {"authorization", "secret"}},
                                             /*no_index=*/true),
                             out)
                  .ok());
  EXPECT_EQ(Fields(out), (Headers{{"x-a", "1"}, {"authorization", "secret"}}));
  EXPECT_FALSE(decoder.degraded());  // a table emptied by the encoder is fully known
}

TEST(Hpack, GarbageNeverCrashes) {
  std::mt19937 rng(11);
  HpackDecoder decoder;
  HeaderList out;
  for (int i = 0; i < 20000; ++i) {
    std::string block(rng() % 40, '\0');
    for (char& c : block) c = static_cast<char>(rng());
    (void)decoder.Decode(block, out);
  }
  SUCCEED();
}

TEST(HpackInteger, DecodesPrefixesAndRejectsOverflow) {
  size_t pos = 0;
  uint64_t v = 0;
  ASSERT_TRUE(DecodeHpackInteger(std::string("\x1f\x9a\x0a", 3), pos, 5, v));
  EXPECT_EQ(v, 1337u);  // RFC 7541 C.1.2
  pos = 0;
  EXPECT_FALSE(DecodeHpackInteger(std::string("\x1f\xff\xff\xff\xff\xff\x01", 7), pos, 5, v));
  pos = 0;
  EXPECT_FALSE(DecodeHpackInteger(std::string("\x1f\x9a", 2), pos, 5, v));
}

}  // namespace
}  // namespace sonde::protocols::http2
