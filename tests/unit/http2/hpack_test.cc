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

Headers Fields(const DecodedFieldList& list) {
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

// A subset of the hpack-test-case stories, committed with the tests (see its
// README.md): six encoders, 30 stories, 348 header blocks.
fs::path StoriesDir() { return fs::path(SONDE_TEST_DATA_DIR) / "hpack"; }

bool RequireStories() {
  if (fs::is_directory(StoriesDir())) return true;
  ADD_FAILURE() << "HPACK test vectors missing at " << StoriesDir();
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

class HpackBackends : public ::testing::TestWithParam<HpackBackend> {};
INSTANTIATE_TEST_SUITE_P(Both, HpackBackends,
                         ::testing::Values(HpackBackend::kSonde, HpackBackend::kNghttp2),
                         [](const ::testing::TestParamInfo<HpackBackend>& p) {
                           return p.param == HpackBackend::kSonde ? "sonde" : "nghttp2";
                         });

TEST_P(HpackBackends, ExactDecoderMatchesEveryStory) {
  if (!RequireStories()) GTEST_SKIP() << "no HPACK test vectors at " << StoriesDir();
  const auto stories = LoadStories();
  ASSERT_GE(stories.size(), 30u);
  size_t blocks = 0;
  for (const Story& story : stories) {
    HpackDecoder decoder(GetParam());
    DecodedFieldList out;
    for (size_t i = 0; i < story.wires.size(); ++i) {
      ASSERT_TRUE(decoder.Decode(story.wires[i], out).ok()) << story.name << " case " << i;
      ASSERT_EQ(Fields(out), story.expected[i]) << story.name << " case " << i;
      ++blocks;
    }
    EXPECT_EQ(decoder.counters().blocks_degraded, 0u) << story.name;
  }
  EXPECT_GE(blocks, 348u);
}

TEST(HpackStories, TolerantDecoderWithKnownStateMatchesEveryStory) {
  if (!RequireStories()) GTEST_SKIP() << "no HPACK test vectors at " << StoriesDir();
  for (const Story& story : LoadStories()) {
    TolerantHpackDecoder decoder;
    DecodedFieldList out;
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
TEST_P(HpackBackends, DegradedDecodingNeverInventsValues) {
  if (!RequireStories()) GTEST_SKIP() << "no HPACK test vectors at " << StoriesDir();
  uint64_t known = 0, unknown = 0, recoveries = 0;
  for (const Story& story : LoadStories()) {
    const size_t skip = story.wires.size() / 3;
    HpackDecoder decoder(GetParam());
    DecodedFieldList out;
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

TEST_P(HpackBackends, SmallTableEvictsAndSizeUpdatesApply) {
  Deflater deflater(4096);
  HpackDecoder exact(GetParam());
  TolerantHpackDecoder tolerant;
  DecodedFieldList a, b;
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
      EXPECT_LE(tolerant.table().bytes(), 128u);
    }
    if (i >= 100 && i < 150) {
      EXPECT_EQ(tolerant.table().count(), 0u);
    }
  }
  EXPECT_EQ(exact.counters().blocks_degraded, 0u);
}

TEST_P(HpackBackends, RecoversAfterLossOnceTableRefills) {
  Deflater deflater(4096);
  HpackDecoder decoder(GetParam());
  DecodedFieldList out;
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

TEST_P(HpackBackends, NeverIndexedAndSizeUpdateToZeroRecover) {
  Deflater deflater(4096);
  HpackDecoder decoder(GetParam());
  DecodedFieldList out;
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

TEST_P(HpackBackends, GarbageNeverCrashes) {
  std::mt19937 rng(11);
  HpackDecoder decoder(GetParam());
  DecodedFieldList out;
  for (int i = 0; i < 20000; ++i) {
    std::string block(rng() % 40, '\0');
    for (char& c : block) c = static_cast<char>(rng());
    (void)decoder.Decode(block, out);
  }
  SUCCEED();
}

// Differential: random header sets through nghttp2's encoder with changing
// table sizes; both backends must agree with the input and each other.
TEST(Hpack, BackendsAgreeOnRandomHeaderSets) {
  std::mt19937 rng(99);
  for (int conn = 0; conn < 20; ++conn) {
    Deflater deflater(4096);
    HpackDecoder sonde(HpackBackend::kSonde);
    HpackDecoder ng(HpackBackend::kNghttp2);
    DecodedFieldList a, b;
    for (int i = 0; i < 300; ++i) {
      if (rng() % 50 == 0) deflater.ChangeTableSize(rng() % 3 == 0 ? 0 : 64 + rng() % 8000);
      Headers h;
      const int n = 1 + static_cast<int>(rng() % 12);
      for (int k = 0; k < n; ++k) {
        std::string name = "x-h" + std::to_string(rng() % 40);
        std::string value(rng() % 60, '\0');
        for (char& c : value) c = static_cast<char>(rng() % 3 ? 'a' + rng() % 26 : rng() % 256);
        h.emplace_back(std::move(name), std::move(value));
      }
      h.emplace_back(":path", "/p/" + std::to_string(rng() % 100));
      const std::string block = deflater.Encode(h, rng() % 10 == 0);
      ASSERT_TRUE(sonde.Decode(block, a).ok());
      ASSERT_TRUE(ng.Decode(block, b).ok());
      ASSERT_EQ(Fields(a), h);
      ASSERT_EQ(Fields(b), h);
    }
    EXPECT_EQ(sonde.counters().blocks_degraded, 0u);
    EXPECT_EQ(ng.counters().blocks_degraded, 0u);
  }
}

// Fields are views into the dynamic table: a block that references entries
// and then adds enough new ones to evict them and reorganise the table's
// buffer must still return the referenced values (copied out first).
TEST(HpackTolerant, ViewsSurviveEvictionAndBufferReorganisationInOneBlock) {
  for (const size_t table : {4096u, 512u}) {
    Deflater deflater(4096);
    deflater.ChangeTableSize(table);
    TolerantHpackDecoder decoder;
    DecodedFieldList out;
    const Headers first = {{"x-keep-a", std::string(40, 'a')}, {"x-keep-b", std::string(60, 'b')}};
    ASSERT_TRUE(decoder.Decode(deflater.Encode(first), out).ok());
    for (int round = 0; round < 20; ++round) {
      Headers h = first;  // indexed references to the dynamic entries
      for (int i = 0; i < 25; ++i) {
        h.emplace_back("x-new-" + std::to_string(round) + "-" + std::to_string(i),
                       std::string(static_cast<size_t>(50 + (i * 37) % 300),
                                   static_cast<char>('c' + (round + i) % 20)));
      }
      h.push_back(first[1]);  // referenced again at the end (re-added when evicted)
      out.Clear();
      ASSERT_TRUE(decoder.Decode(deflater.Encode(h), out).ok()) << table << " round " << round;
      ASSERT_EQ(Fields(out), h) << table << " round " << round;
      EXPECT_LE(decoder.table().bytes(), table);
    }
  }
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
