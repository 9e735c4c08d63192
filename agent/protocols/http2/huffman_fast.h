#pragma once
// The inline fast path of the HPACK Huffman decoder, for callers that decode
// many header-sized strings in a loop (the HPACK decoder): at ~10 bytes a
// string, the call, the prologue and the branchy end of HuffmanDecodeTo cost
// as much as the lookups. HuffmanDecodeTo (huffman.h) stays the exact
// decoder; this path hands it every string that does not end cleanly.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "agent/protocols/http2/huffman.h"

namespace sonde::protocols::http2 {
namespace huffman_internal {

#ifndef SONDE_HUFFMAN_PEEK_BITS
#define SONDE_HUFFMAN_PEEK_BITS 12
#endif
// Bits peeked per lookup. 12 bits keep the table (16 KiB) in L1 and decode
// ~2 symbols of typical header text per lookup.
inline constexpr int kPeekBits = SONDE_HUFFMAN_PEEK_BITS;
static_assert(kPeekBits >= 8 && kPeekBits <= 16);

// A lookup entry: bits 0..4 hold the code bits the decoded symbols used (so
// the entry itself is the shift count: x86 masks it to 6 bits), bits 6..7
// how many symbols there are (0: the first code is longer than kPeekBits, or
// is EOS; such an entry consumes nothing), bits 8..31 up to three symbols,
// first symbol lowest, so a little-endian 4-byte store of `e >> 8` writes
// them in order.
inline constexpr int kCountShift = 6;
constexpr uint32_t EntryCount(uint32_t e) { return (e >> kCountShift) & 3; }
constexpr int EntryConsumed(uint32_t e) { return static_cast<int>(e & 63); }
constexpr uint32_t EntrySymbols(uint32_t e) { return e >> 8; }

// The lookup table indexed by the *complement* of the peeked bits (built once).
const uint32_t* ComplementPeekTable();

inline uint64_t LoadBigEndian64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof(v));
  return __builtin_bswap64(v);
}

// 1..7 bytes from `p` as the top of a big-endian word (zeros below), read
// with overlapping loads and never a byte outside [p, p + n).
inline uint64_t LoadShortBigEndian(const uint8_t* p, size_t n) {
  if (n >= 4) {
    uint32_t head, tail;
    std::memcpy(&head, p, 4);
    std::memcpy(&tail, p + n - 4, 4);
    return static_cast<uint64_t>(__builtin_bswap32(head)) << 32 |
           static_cast<uint64_t>(__builtin_bswap32(tail)) << (64 - 8 * n);
  }
  return static_cast<uint64_t>(p[0]) << 56 | static_cast<uint64_t>(p[n / 2]) << (56 - 8 * (n / 2)) |
         static_cast<uint64_t>(p[n - 1]) << (56 - 8 * (n - 1));
}

}  // namespace huffman_internal

// Same results as HuffmanDecodeTo (same room rule at `out`); `table` is
// huffman_internal::ComplementPeekTable(), fetched once by the caller.
//
// The bit buffer holds the complement of the stream, so the zeros a left
// shift brings in read as one-bits, and everything past the end of the
// string reads as ones without code to fill it. A valid string ends with at
// most 7 one-bits of padding, and no code but EOS (30 bits, never in the
// table) is all ones, so decoding never yields a symbol made of padding: it
// stalls (an entry with no symbol consumes nothing) at the start of the
// padding. Where it stalls tells the rest: fewer than 8 bits before the end,
// all ones, is a valid end. Anything else (a code longer than the peek
// width, EOS, bad padding, a symbol reaching past the end) goes to
// HuffmanDecodeTo, so results match it by construction. No load reads a byte
// outside the string.
__attribute__((always_inline)) inline bool HuffmanDecodeFast(std::string_view in, char* out, size_t& written,
                                                             const uint32_t* table) {
  using namespace huffman_internal;
  const auto* const start = reinterpret_cast<const uint8_t*>(in.data());
  const size_t n = in.size();
  const uint8_t* const end = start + n;
  const uint8_t* p = end;
  char* dst = out;
  uint64_t nbuf = 0;  // complement of the stream from the current bit on
  int64_t bits = 0;   // valid bits at the top of nbuf: position = 8 * (p - start) - bits
  uint32_t last = 0;

#define SONDE_HUFFMAN_FAST_STEP()                                          \
  do {                                                                     \
    last = table[nbuf >> (64 - kPeekBits)];                                \
    const uint32_t syms = EntrySymbols(last);                              \
    std::memcpy(dst, &syms, 4); /* symbols in order; the rest is slack */ \
    dst += EntryCount(last);                                               \
    nbuf <<= EntryConsumed(last);                                          \
    bits -= EntryConsumed(last);                                           \
  } while (0)

  if (n >= 8) {
    // Refill (>= 56 valid bits, so four lookups fit) without a branch: bits
    // below the valid ones are zeros or the same next input bits, so loading
    // them again ORs identical values. The bulk loop leaves on a test of `p`
    // alone, known a whole group ahead, so the CPU runs on past a long
    // string's end instead of waiting for its last lookup.
    p = start;
    for (;;) {
      nbuf |= ~LoadBigEndian64(p) >> bits;
      p += (63 - bits) >> 3;
      bits |= 56;
      SONDE_HUFFMAN_FAST_STEP();
      SONDE_HUFFMAN_FAST_STEP();
      SONDE_HUFFMAN_FAST_STEP();
      SONDE_HUFFMAN_FAST_STEP();
      if (end - p < 8) break;
      if (__builtin_expect(EntryCount(last) == 0, 0)) break;  // a long code: resolved below
    }
    // The last bytes: the load is the string's last 8 bytes shifted so `p`
    // comes first; a shift of 4k twice is 0 for k = 8 (all input consumed).
    // Each lookup here may be the one that stalls: leave at once rather than
    // wait on lookups that decode nothing.
    while (EntryCount(last) != 0) {
      const uint8_t* const at = std::min(p, end - 8);
      const auto k = static_cast<unsigned>(std::min<std::ptrdiff_t>(p - at, 8));
      const uint64_t v = (~LoadBigEndian64(at) << (4 * k)) << (4 * k);
      nbuf |= v >> bits;
      p += (63 - bits) >> 3;
      bits |= 56;
      SONDE_HUFFMAN_FAST_STEP();
      if (EntryCount(last) == 0) break;
      SONDE_HUFFMAN_FAST_STEP();
      if (EntryCount(last) == 0) break;
      SONDE_HUFFMAN_FAST_STEP();
      if (EntryCount(last) == 0) break;
      SONDE_HUFFMAN_FAST_STEP();
    }
  } else if (n > 0) {
    // The whole string in one word.
    nbuf = ~LoadShortBigEndian(start, n) & (~uint64_t{0} << (64 - 8 * n));
    bits = static_cast<int64_t>(8 * n);
    do SONDE_HUFFMAN_FAST_STEP();
    while (EntryCount(last) != 0);
  }
#undef SONDE_HUFFMAN_FAST_STEP

  const int64_t left = static_cast<int64_t>(8 * n) - (8 * (p - start) - bits);
  if (__builtin_expect(left >= 0 && left <= 7 && (left == 0 || (nbuf >> (64 - left)) == 0), 1)) {
    written = static_cast<size_t>(dst - out);
    return true;
  }
  return HuffmanDecodeTo(in, out, written);
}

}  // namespace sonde::protocols::http2
