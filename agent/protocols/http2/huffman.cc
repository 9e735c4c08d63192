#include "agent/protocols/http2/huffman.h"
#include "agent/protocols/http2/huffman_fast.h"

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

namespace sonde::protocols::http2 {
namespace {

struct Code {
  uint32_t code;
  uint8_t bits;
};
constexpr Code kCodes[257] = {
#include "agent/protocols/http2/huffman_table.inc"
};

using huffman_internal::EntryConsumed;
using huffman_internal::EntryCount;
using huffman_internal::EntrySymbols;
using huffman_internal::kCountShift;
using huffman_internal::kPeekBits;
using huffman_internal::LoadBigEndian64;

struct Machine {
  struct Node {
    int16_t child[2] = {-1, -1};  // >= 0: node id; <= -2: leaf symbol -(sym + 2)
  };
  std::vector<Node> nodes;
  std::array<uint32_t, 1u << kPeekBits> peek{};
  // peek indexed by the complement of the peeked bits (HuffmanDecodeFast).
  std::array<uint32_t, 1u << kPeekBits> complement_peek{};

  Machine() : nodes(1) {
    for (int sym = 0; sym < 257; ++sym) {
      int cur = 0;
      for (int b = kCodes[sym].bits - 1; b >= 0; --b) {
        const int bit = (kCodes[sym].code >> b) & 1;
        if (b == 0) {
          nodes[static_cast<size_t>(cur)].child[bit] = static_cast<int16_t>(-(sym + 2));
        } else {
          if (nodes[static_cast<size_t>(cur)].child[bit] == -1) {
            nodes[static_cast<size_t>(cur)].child[bit] = static_cast<int16_t>(nodes.size());
            nodes.emplace_back();
          }
          cur = nodes[static_cast<size_t>(cur)].child[bit];
        }
      }
    }
    for (uint32_t v = 0; v < peek.size(); ++v) {
      uint32_t syms = 0;
      uint32_t count = 0;
      uint32_t consumed = 0;
      int cur = 0;
      for (int b = kPeekBits - 1; b >= 0 && count < 3; --b) {
        const int next = nodes[static_cast<size_t>(cur)].child[(v >> b) & 1];
        if (next >= 0) {
          cur = next;
          continue;
        }
        const int sym = -next - 2;
        if (sym == 256) break;  // EOS (30 bits) never fits; left to the slow path
        syms |= static_cast<uint32_t>(sym) << (8 + 8 * count);
        ++count;
        consumed = static_cast<uint32_t>(kPeekBits - b);
        cur = 0;
      }
      peek[v] = syms | consumed | (count << kCountShift);
    }
    for (uint32_t v = 0; v < peek.size(); ++v) complement_peek[v] = peek[~v & (peek.size() - 1)];
  }
};

__attribute__((always_inline)) inline const Machine& GetMachine() {
  static const Machine machine;
  return machine;
}

}  // namespace

const uint32_t* huffman_internal::ComplementPeekTable() { return GetMachine().complement_peek.data(); }

namespace {

// Walks the code tree from the top of `buf` over at most `bits` bits. Returns
// the symbol (256: EOS) and sets `used`, or -1 when no code ends within them.
inline int WalkLongCode(const Machine& m, uint64_t buf, int bits, int& used) {
  int cur = 0;
  for (used = 0; used < bits;) {
    const int next = m.nodes[static_cast<size_t>(cur)].child[(buf >> (63 - used)) & 1];
    ++used;
    if (next < 0) return -next - 2;
    cur = next;
  }
  return -1;
}

}  // namespace

__attribute__((target_clones("arch=x86-64-v3", "default")))
bool HuffmanDecodeTo(std::string_view in, char* out, size_t& written) {
  const Machine& m = GetMachine();
  const uint32_t* const peek = m.peek.data();
  char* dst = out;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* const end = p + in.size();
  // The valid bits are the top `bits` bits of `buf`; below them are zeros or
  // the next input bits.
  uint64_t buf = 0;
  int bits = 0;
  bool ok = true;

  // One lookup: every symbol the entry names lies within the peeked bits.
  // The chain from one lookup to the next is a shift, a load and a shift.
#define SONDE_HUFFMAN_STEP(on_long)                                        \
  do {                                                                     \
    const uint32_t e = peek[buf >> (64 - kPeekBits)];                      \
    if (__builtin_expect(EntryCount(e) == 0, 0)) on_long;                  \
    const uint32_t syms = EntrySymbols(e);                                 \
    std::memcpy(dst, &syms, 4); /* symbols in order; the rest is slack */ \
    dst += EntryCount(e);                                                  \
    buf <<= EntryConsumed(e);                                              \
    bits -= EntryConsumed(e);                                              \
  } while (0)

  // Bulk: while 8 input bytes remain, refill without branches (bits below
  // the valid ones are the next input bytes, so loading them again ORs
  // identical values) and take 4 lookups: a refill leaves >= 56 bits.
  static_assert(4 * kPeekBits <= 56);
  while (end - p >= 8) {
    buf |= LoadBigEndian64(p) >> bits;
    p += (63 - bits) >> 3;
    bits |= 56;
    SONDE_HUFFMAN_STEP(goto long_code);
    SONDE_HUFFMAN_STEP(goto long_code);
    SONDE_HUFFMAN_STEP(goto long_code);
    SONDE_HUFFMAN_STEP(goto long_code);
    continue;
  long_code:
    // A code longer than kPeekBits; the longest is 30 bits.
    if (bits < 30) continue;  // refill first (or finish in the tail)
    {
      int used = 0;
      const int sym = WalkLongCode(m, buf, bits, used);
      if (sym == 256) {  // EOS inside a string is an error
        ok = false;
        goto done;
      }
      *dst++ = static_cast<char>(sym);  // 30 valid bits always hold a code
      buf <<= used;
      bits -= used;
    }
  }

  // Tail: fewer than 8 input bytes left. Short strings (the common case)
  // land here with an empty buffer: load them whole with overlapping loads.
  if (const auto left = static_cast<int>(end - p); left > 0 && bits + 8 * left <= 64) {
    buf |= huffman_internal::LoadShortBigEndian(p, static_cast<size_t>(left)) >> bits;
    bits += 8 * left;
    p = end;
  }
  for (;;) {
    while (bits <= 56 && p < end) {
      buf |= static_cast<uint64_t>(*p++) << (56 - bits);
      bits += 8;
    }
    if (p < end) {  // bits > 56: room for whole lookups
      while (bits >= kPeekBits) SONDE_HUFFMAN_STEP(goto tail_long_code);
      continue;
    tail_long_code:
      if (bits < 30) continue;
    } else {
      // All input is in `buf` and zeros follow: an entry may name symbols
      // decoded from those zeros; keep only codes that end within the input.
      for (;;) {
        if (bits <= 0) goto done;
        const uint32_t e = peek[buf >> (64 - kPeekBits)];
        if (EntryCount(e) == 0) break;  // long code, EOS or padding
        if (EntryConsumed(e) > bits) {
          uint32_t syms = EntrySymbols(e);
          for (uint32_t i = 0; i < EntryCount(e); ++i, syms >>= 8) {
            const int len = kCodes[syms & 0xff].bits;
            if (len > bits) break;
            *dst++ = static_cast<char>(syms & 0xff);
            buf <<= len;
            bits -= len;
          }
          goto done;  // the rest is padding, checked below
        }
        const uint32_t syms = EntrySymbols(e);
        std::memcpy(dst, &syms, 4);
        dst += EntryCount(e);
        buf <<= EntryConsumed(e);
        bits -= EntryConsumed(e);
      }
      if (bits < 8) goto done;  // padding, checked below
    }
    int used = 0;
    const int sym = WalkLongCode(m, buf, bits, used);
    if (sym < 0) goto done;  // no code ends within the input: bad padding
    if (sym == 256) {
      ok = false;
      goto done;
    }
    *dst++ = static_cast<char>(sym);
    buf <<= used;
    bits -= used;
  }
#undef SONDE_HUFFMAN_STEP

done:
  written = static_cast<size_t>(dst - out);
  if (!ok) return false;
  // Padding: fewer than 8 bits, all ones (a prefix of EOS), and nothing unread.
  if (p != end || bits >= 8) return false;
  const uint64_t mask = bits == 0 ? 0 : ~uint64_t{0} << (64 - bits);
  return (buf & mask) == mask;
}

bool HuffmanDecode(std::string_view in, std::string& out) {
  const size_t base = out.size();
  out.resize(base + HuffmanDecodedBound(in.size()));
  size_t written = 0;
  const bool ok = HuffmanDecodeTo(in, out.data() + base, written);
  out.resize(base + written);
  return ok;
}

std::string HuffmanEncode(std::string_view in) {
  std::string out;
  uint64_t acc = 0;
  int bits = 0;
  for (const char c : in) {
    const Code& code = kCodes[static_cast<uint8_t>(c)];
    acc = (acc << code.bits) | code.code;
    bits += code.bits;
    while (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0) {
    acc = (acc << (8 - bits)) | ((1u << (8 - bits)) - 1);  // pad with EOS prefix
    out.push_back(static_cast<char>(acc & 0xff));
  }
  return out;
}

}  // namespace sonde::protocols::http2
