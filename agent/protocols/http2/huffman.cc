#include "agent/protocols/http2/huffman.h"

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

// Decoding peeks kPeekBits at a time: one table lookup yields up to two
// symbols whose codes fit (the common characters have 5..8-bit codes).
// Longer codes walk the code tree bit by bit.
constexpr int kPeekBits = 11;

struct PeekEntry {
  uint8_t sym0 = 0;
  uint8_t sym1 = 0;
  uint8_t len0 = 0;  // 0: the first code is longer than kPeekBits
  uint8_t len2 = 0;  // 0: no second symbol fits; else bits of both codes
};

struct Machine {
  struct Node {
    int16_t child[2] = {-1, -1};  // >= 0: node id; <= -2: leaf symbol -(sym + 2)
  };
  std::vector<Node> nodes;
  std::array<PeekEntry, 1u << kPeekBits> peek{};

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
      PeekEntry e;
      int cur = 0;
      int found = 0;
      for (int b = kPeekBits - 1; b >= 0 && found < 2; --b) {
        const int next = nodes[static_cast<size_t>(cur)].child[(v >> b) & 1];
        if (next >= 0) {
          cur = next;
          continue;
        }
        const int sym = -next - 2;
        if (sym == 256) break;  // EOS (30 bits) never fits; kept for the slow path
        const auto len = static_cast<uint8_t>(kPeekBits - b);
        if (found == 0) {
          e.sym0 = static_cast<uint8_t>(sym);
          e.len0 = len;
        } else {
          e.sym1 = static_cast<uint8_t>(sym);
          e.len2 = len;
        }
        ++found;
        cur = 0;
      }
      peek[v] = e;
    }
  }
};

const Machine& GetMachine() {
  static const Machine machine;
  return machine;
}

inline uint64_t LoadBigEndian64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return __builtin_bswap64(v);
}

}  // namespace

bool HuffmanDecode(std::string_view in, std::string& out) {
  const Machine& m = GetMachine();
  const size_t base = out.size();
  // Shortest code is 5 bits: at most 8/5 symbols per byte, plus slack for
  // the unconditional two-symbol store below.
  out.resize(base + in.size() * 8 / 5 + 3);
  char* dst = out.data() + base;
  const auto* p = reinterpret_cast<const uint8_t*>(in.data());
  const uint8_t* const end = p + in.size();
  uint64_t buf = 0;  // valid bits are the top `bits` bits
  int bits = 0;
  bool ok = true;
  for (;;) {
    if (end - p >= 8) {
      // Branch-free refill: bits below the valid ones are the next stream
      // bytes, so re-loading them later ORs identical values.
      buf |= LoadBigEndian64(p) >> bits;
      p += (63 - bits) >> 3;
      bits |= 56;
    } else {
      while (bits <= 56 && p < end) {
        buf |= static_cast<uint64_t>(*p++) << (56 - bits);
        bits += 8;
      }
    }
    // Hot loop: every short code fits in the peeked bits, so the only
    // data-dependent choice (one or two symbols) is made without a branch,
    // and refills stay off the dependency chain.
    while (bits >= kPeekBits) {
      const PeekEntry e = m.peek[buf >> (64 - kPeekBits)];
      if (__builtin_expect(e.len0 == 0, 0)) break;
      const bool two = e.len2 != 0;
      dst[0] = static_cast<char>(e.sym0);
      dst[1] = static_cast<char>(e.sym1);
      dst += 1 + static_cast<int>(two);
      const int consume = two ? e.len2 : e.len0;
      buf <<= consume;
      bits -= consume;
    }
    if (bits >= kPeekBits) {
      // A code longer than kPeekBits: make sure the longest (30 bits) fits,
      // then walk the tree.
      if (bits < 30 && p < end) continue;
      int cur = 0;
      int used = 0;
      int sym = -1;
      while (used < bits) {
        const int next = m.nodes[static_cast<size_t>(cur)].child[(buf >> (63 - used)) & 1];
        ++used;
        if (next < 0) {
          sym = -next - 2;
          break;
        }
        cur = next;
      }
      if (sym < 0) break;  // ran out of bits: padding, checked below
      if (sym == 256) {
        ok = false;  // EOS inside a string is an error
        break;
      }
      *dst++ = static_cast<char>(sym);
      buf <<= used;
      bits -= used;
      continue;
    }
    if (p < end) continue;
    // Tail: fewer than kPeekBits bits and no more input.
    while (bits > 0) {
      const PeekEntry e = m.peek[buf >> (64 - kPeekBits)];
      if (e.len0 == 0 || e.len0 > bits) break;  // padding, checked below
      const bool two = e.len2 != 0 && e.len2 <= bits;
      dst[0] = static_cast<char>(e.sym0);
      dst[1] = static_cast<char>(e.sym1);
      dst += 1 + static_cast<int>(two);
      const int consume = two ? e.len2 : e.len0;
      buf <<= consume;
      bits -= consume;
    }
    break;
  }
  out.resize(static_cast<size_t>(dst - out.data()));
  if (!ok) return false;
  // Padding: fewer than 8 bits, all ones (a prefix of EOS), and nothing unread.
  if (p != end || bits >= 8) return false;
  const uint64_t mask = bits == 0 ? 0 : ~uint64_t{0} << (64 - bits);
  return (buf & mask) == mask;
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
