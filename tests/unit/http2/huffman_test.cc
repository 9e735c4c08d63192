// HPACK Huffman decoder (agent/protocols/http2/huffman.cc) against a
// reference encoder written here from the RFC 7541 Appendix B table and
// against nghttp2's inflater: every symbol at every bit alignment, the
// padding/EOS rules, and random strings and garbage (differential). Every
// input also goes through the inline fast path, which must agree with the
// exact decoder byte for byte.
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include "agent/protocols/http2/huffman.h"
#include "agent/protocols/http2/huffman_fast.h"

namespace sonde::protocols::http2 {
namespace {

struct Code {
  uint32_t code;
  uint8_t bits;
};
// RFC 7541 Appendix B, indexed by symbol (256 = EOS).
constexpr Code kRfcCodes[257] = {
#include "agent/protocols/http2/huffman_table.inc"
};

// Reference bit writer: MSB first, as HPACK packs codes.
class BitWriter {
 public:
  void Put(uint32_t code, int bits) {
    for (int b = bits - 1; b >= 0; --b) PutBit((code >> b) & 1);
  }
  void PutSymbol(uint8_t sym) { Put(kRfcCodes[sym].code, kRfcCodes[sym].bits); }
  void PutBit(uint32_t bit) {
    if (nbits_ % 8 == 0) out_.push_back('\0');
    if (bit) out_.back() = static_cast<char>(out_.back() | (0x80 >> (nbits_ % 8)));
    ++nbits_;
  }
  int pad_bits() const { return (8 - nbits_ % 8) % 8; }
  // Fills the last byte with `pattern`'s top bits (all ones: the EOS prefix).
  std::string Finish(uint8_t pattern = 0xff) {
    const int pad = pad_bits();
    for (int i = 0; i < pad; ++i) PutBit((pattern >> (7 - i)) & 1);
    return out_;
  }

 private:
  std::string out_;
  int nbits_ = 0;
};

std::string ReferenceEncode(std::string_view s) {
  BitWriter w;
  for (const char c : s) w.PutSymbol(static_cast<uint8_t>(c));
  return w.Finish();
}

std::optional<std::string> Decode(std::string_view in) {
  // Sentinels after the documented bound catch stores past it.
  const size_t bound = HuffmanDecodedBound(in.size());
  std::string buf(bound + 16, '\x5a');
  size_t written = 0;
  const bool ok = HuffmanDecodeTo(in, buf.data(), written);
  EXPECT_LE(written + 4, bound + 4);
  EXPECT_EQ(buf.substr(bound), std::string(16, '\x5a')) << "wrote past HuffmanDecodedBound";
  // The std::string flavour agrees.
  std::string appended = "prefix";
  EXPECT_EQ(HuffmanDecode(in, appended), ok);
  EXPECT_EQ(appended, "prefix" + buf.substr(0, written));
  // So does the inline fast path the HPACK decoder uses (verdict, size and
  // bytes, the decoded prefix of a rejected string included), reading the
  // string from a buffer that ends where it ends.
  const auto exact = std::make_unique<char[]>(in.size() + 1);
  if (!in.empty()) std::memcpy(exact.get(), in.data(), in.size());
  std::string fast(bound + 16, '\x5a');
  size_t fast_written = 0;
  EXPECT_EQ(HuffmanDecodeFast(std::string_view(exact.get(), in.size()), fast.data(), fast_written,
                              huffman_internal::ComplementPeekTable()),
            ok);
  EXPECT_EQ(fast.substr(0, fast_written), buf.substr(0, written));
  EXPECT_EQ(fast.substr(bound), std::string(16, '\x5a')) << "fast path wrote past HuffmanDecodedBound";
  if (!ok) return std::nullopt;
  return buf.substr(0, written);
}

// nghttp2's inflater on one literal field whose value is `huffman` with the
// H bit set. nullopt when nghttp2 rejects it.
std::optional<std::string> NghttpDecode(std::string_view huffman) {
  std::string block = {'\x00', '\x01', 'x'};  // literal without indexing, new name "x"
  uint64_t len = huffman.size();
  if (len < 127) {
    block.push_back(static_cast<char>(0x80 | len));
  } else {
    block.push_back(static_cast<char>(0xff));
    len -= 127;
    while (len >= 128) {
      block.push_back(static_cast<char>(0x80 | (len & 0x7f)));
      len >>= 7;
    }
    block.push_back(static_cast<char>(len));
  }
  block.append(huffman);
  nghttp2_hd_inflater* raw = nullptr;
  if (nghttp2_hd_inflate_new(&raw) != 0) return std::nullopt;
  std::unique_ptr<nghttp2_hd_inflater, decltype(&nghttp2_hd_inflate_del)> inflater(
      raw, &nghttp2_hd_inflate_del);
  auto* in = reinterpret_cast<uint8_t*>(block.data());
  size_t left = block.size();
  std::optional<std::string> value;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t rv = nghttp2_hd_inflate_hd2(inflater.get(), &nv, &flags, in, left, 1);
    if (rv < 0) return std::nullopt;
    in += rv;
    left -= static_cast<size_t>(rv);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      value = std::string(reinterpret_cast<const char*>(nv.value), nv.valuelen);
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) break;
    if (rv == 0 && (flags & NGHTTP2_HD_INFLATE_EMIT) == 0) return std::nullopt;
  }
  return value;
}

TEST(HuffmanDecoder, EverySymbolAtEveryBitAlignment) {
  // Prefixes of 0..7 five-bit codes ('0') and one 6-bit code shift each
  // symbol across every bit position of a byte and of the 12-bit peek.
  for (int sym = 0; sym < 256; ++sym) {
    for (int prefix = 0; prefix < 16; ++prefix) {
      std::string s(static_cast<size_t>(prefix % 8), '0');
      if (prefix >= 8) s.insert(0, "3");  // 6-bit code
      s.push_back(static_cast<char>(sym));
      for (int reps : {1, 2, 5, 11}) {
        std::string text = s;
        for (int r = 1; r < reps; ++r) text.push_back(static_cast<char>(sym));
        const std::string wire = ReferenceEncode(text);
        ASSERT_EQ(HuffmanEncode(text), wire) << "sym " << sym;
        const auto got = Decode(wire);
        ASSERT_TRUE(got.has_value()) << "sym " << sym << " prefix " << prefix << " reps " << reps;
        ASSERT_EQ(*got, text) << "sym " << sym << " prefix " << prefix << " reps " << reps;
      }
    }
    // The table itself, checked by nghttp2's decoder.
    const std::string text(3, static_cast<char>(sym));
    ASSERT_EQ(NghttpDecode(ReferenceEncode(text)), text) << "sym " << sym;
  }
}

TEST(HuffmanDecoder, PaddingAndEosRules) {
  EXPECT_EQ(Decode(""), std::string());
  const std::vector<std::string> texts = {"a", "ab", "abc", "www.example.com", "x-request-id",
                                          "/index.html", std::string(1, '\x00'),
                                          std::string(2, '\xff'), "a\x01z"};
  for (const std::string& text : texts) {
    BitWriter w;
    for (const char c : text) w.PutSymbol(static_cast<uint8_t>(c));
    const int pad = w.pad_bits();
    BitWriter ok_copy = w;
    EXPECT_EQ(Decode(ok_copy.Finish(0xff)), text) << text;  // padding = EOS prefix
    if (pad > 0) {
      // A zero among the padding bits: never `text` again. With fewer than 5
      // padding bits (the shortest code) it is an error; with more, the bits
      // may form one more symbol, exactly as nghttp2 decodes them.
      for (int zero = 0; zero < pad; ++zero) {
        BitWriter bad = w;
        const auto pattern = static_cast<uint8_t>(0xff & ~(0x80 >> zero));
        const std::string wire = bad.Finish(pattern);
        const auto got = Decode(wire);
        if (pad < 5) {
          EXPECT_FALSE(got.has_value()) << text << " zero at " << zero;
        }
        EXPECT_NE(got, std::optional<std::string>(text)) << text << " zero at " << zero;
        EXPECT_EQ(got, NghttpDecode(wire)) << text << " zero at " << zero;
      }
    }
    // Padding of 8 or more bits (a whole extra byte of ones) is an error.
    BitWriter longer = w;
    EXPECT_FALSE(Decode(longer.Finish(0xff) + '\xff').has_value()) << text;
    // EOS inside the string is an error, wherever it falls.
    BitWriter eos = w;
    eos.PutSymbol('a');
    eos.Put(kRfcCodes[256].code, kRfcCodes[256].bits);
    eos.PutSymbol('b');
    EXPECT_FALSE(Decode(eos.Finish()).has_value()) << text;
    BitWriter eos_end = w;
    eos_end.Put(kRfcCodes[256].code, kRfcCodes[256].bits);
    EXPECT_FALSE(Decode(eos_end.Finish()).has_value()) << text;
  }
  // A long code cut short: the remaining bits are not a prefix of EOS.
  BitWriter cut;
  cut.PutSymbol('a');
  cut.Put(kRfcCodes[0].code >> 5, kRfcCodes[0].bits - 5);  // symbol 0 (13 bits), first 8 bits
  EXPECT_FALSE(Decode(cut.Finish()).has_value());
  // Seven padding bits are the most allowed.
  EXPECT_EQ(Decode(std::string(1, '\xfe')), std::nullopt);  // '\xfe' = 7 ones + a zero
  EXPECT_EQ(Decode(std::string(1, '\xff')), std::nullopt);  // 8 bits of padding
  EXPECT_EQ(Decode(std::string(1, '\x7f')), std::string("9"));  // 011111 + "11"
  EXPECT_EQ(Decode(std::string(4, '\xff')), std::nullopt);  // EOS (30 ones) + 2 bits
}

// Random strings (lengths crossing the 8-byte bulk/tail boundary many times)
// through the reference encoder; ours and nghttp2's decoder must agree.
TEST(HuffmanDecoder, RandomStringsMatchNghttp2) {
  std::mt19937 rng(2026);
  const std::string common = "abcdefghijklmnopqrstuvwxyz0123456789-_./:;=?&%, ";
  for (int iter = 0; iter < 6000; ++iter) {
    std::string text(rng() % (iter % 10 == 0 ? 600 : 48), '\0');
    const int mode = iter % 3;
    for (char& c : text) {
      if (mode == 0) {
        c = common[rng() % common.size()];
      } else if (mode == 1) {
        c = static_cast<char>(rng() % 256);
      } else {
        c = rng() % 8 == 0 ? static_cast<char>(rng() % 256) : common[rng() % common.size()];
      }
    }
    const std::string wire = ReferenceEncode(text);
    const auto ours = Decode(wire);
    ASSERT_TRUE(ours.has_value()) << iter;
    ASSERT_EQ(*ours, text) << iter;
    ASSERT_EQ(NghttpDecode(wire), text) << iter;
  }
}

// Garbage: wherever nghttp2 accepts, we accept the same bytes; wherever it
// rejects, so do we.
TEST(HuffmanDecoder, GarbageAgreesWithNghttp2) {
  std::mt19937 rng(404);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string wire(1 + rng() % 24, '\0');
    for (char& c : wire) c = static_cast<char>(rng() % 4 == 0 ? 0xff : rng() % 256);
    const auto ours = Decode(wire);
    const auto theirs = NghttpDecode(wire);
    ASSERT_EQ(ours.has_value(), theirs.has_value()) << iter;
    if (ours) {
      ASSERT_EQ(*ours, *theirs) << iter;
      ++accepted;
    }
  }
  EXPECT_GT(accepted, 100);  // both outcomes are exercised
}

}  // namespace
}  // namespace sonde::protocols::http2
