#pragma once
// Finds line ends (LF) and name/value separators (':') in an HTTP head 64
// bytes at a time. Each 64-byte window of the head is scanned once into bit
// masks of their positions; a line's end and its first ':' are then counts of
// trailing zeros. A head of ~15 short lines costs ~8 vector compares instead
// of 15 memchr calls and a byte loop per header name, which is where
// header-only HTTP/1 parsing spent its time.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sonde::protocols::http1 {

// RFC 9110 tchar: the bytes of a header name or a method.
inline bool IsTokenChar(unsigned char c) {
  static constexpr auto kTable = [] {
    std::array<bool, 256> t{};
    for (int ch = '0'; ch <= '9'; ++ch) t[ch] = true;
    for (int ch = 'a'; ch <= 'z'; ++ch) t[ch] = true;
    for (int ch = 'A'; ch <= 'Z'; ++ch) t[ch] = true;
    for (char ch : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(ch)] = true;
    return t;
  }();
  return kTable[c];
}

template <bool kVector>
class BasicLineScanner {
 public:
  static constexpr size_t npos = std::string_view::npos;

  explicit BasicLineScanner(std::string_view buf) : buf_(buf) { Scan(0); }

  // The line that starts at `pos`: its LF and its first ':' (npos when the
  // line has none). False when no LF follows `pos` yet. Lines must be asked
  // for front to back (windows already passed are not kept).
  bool Line(size_t pos, size_t* lf, size_t* colon) {
    while (pos >= base_ + 64) {
      if (base_ + 64 >= buf_.size()) return false;
      Scan(base_ + 64);
    }
    const uint64_t from_pos = ~uint64_t{0} << (pos - base_);
    uint64_t lfs = lf_mask_ & from_pos;
    uint64_t colons = colon_mask_ & from_pos;
    size_t first_colon = npos;
    while (lfs == 0) {  // the line runs past this window
      if (colons != 0 && first_colon == npos) {
        first_colon = base_ + static_cast<size_t>(__builtin_ctzll(colons));
      }
      if (base_ + 64 >= buf_.size()) return false;
      Scan(base_ + 64);
      lfs = lf_mask_;
      colons = colon_mask_;
    }
    const size_t at = static_cast<size_t>(__builtin_ctzll(lfs));
    *lf = base_ + at;
    if (first_colon == npos) {
      const uint64_t before_lf = colons & ((uint64_t{1} << at) - 1);
      if (before_lf != 0) first_colon = base_ + static_cast<size_t>(__builtin_ctzll(before_lf));
    }
    *colon = first_colon;
    return true;
  }

  // Whether buf[begin, end) holds only tchar bytes (RFC 9110 token
  // characters). Names up to 32 bytes take one or two vector checks, so the
  // per-name cost does not depend on a branch per byte.
  bool AllTchar(size_t begin, size_t end) const {
#if defined(__SSE2__)
    if constexpr (kVector) {
      const size_t n = end - begin;
      if (n <= 32 && begin + 32 <= buf_.size()) {
        const char* p = buf_.data() + begin;
        const auto bad = [](const char* at) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
          return static_cast<uint32_t>(_mm_movemask_epi8(NonTchar(v)));
        };
        const uint32_t keep = n >= 32 ? ~uint32_t{0} : ((uint32_t{1} << n) - 1);
        uint32_t found = bad(p);
        if (n > 16) found |= bad(p + 16) << 16;
        return (found & keep) == 0;
      }
    }
#endif
    for (size_t i = begin; i < end; ++i) {
      if (!IsTokenChar(static_cast<unsigned char>(buf_[i]))) return false;
    }
    return true;
  }

 private:
  // Scans the window [start, start + 64); bytes past the buffer read as 0.
  void Scan(size_t start) {
    base_ = start;
    const size_t left = start < buf_.size() ? buf_.size() - start : 0;
    if (left >= 64) {
      ScanBlock(buf_.data() + start);
      return;
    }
    // Never read past the caller's buffer: the tail goes through a padded copy.
    char tail[64] = {};
    if (left > 0) std::memcpy(tail, buf_.data() + start, left);
    ScanBlock(tail);
  }

  void ScanBlock(const char* p) {
#if defined(__SSE2__)
    if constexpr (kVector) {
      const __m128i lf = _mm_set1_epi8('\n');
      const __m128i colon = _mm_set1_epi8(':');
      uint64_t lfs = 0, colons = 0;
      for (int i = 0; i < 4; ++i) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
        const auto bits = [](__m128i m) {
          return static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(m)));
        };
        lfs |= bits(_mm_cmpeq_epi8(v, lf)) << (16 * i);
        colons |= bits(_mm_cmpeq_epi8(v, colon)) << (16 * i);
      }
      lf_mask_ = lfs;
      colon_mask_ = colons;
      return;
    }
#endif
    uint64_t lfs = 0, colons = 0;
    for (int i = 0; i < 64; ++i) {
      lfs |= static_cast<uint64_t>(p[i] == '\n') << i;
      colons |= static_cast<uint64_t>(p[i] == ':') << i;
    }
    lf_mask_ = lfs;
    colon_mask_ = colons;
  }

#if defined(__SSE2__)
  // 0xff in each byte that is not a tchar: controls, space, DEL, bytes >=
  // 0x80 and the separators "(),/:;<=>?@[\]{} (SSE2 signed compares).
  static __m128i NonTchar(__m128i v) {
    const auto eq = [&](char c) { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); };
    const auto between = [&](char lo, char hi) {  // lo <= v <= hi, both in 0x01..0x7e
      return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8(static_cast<char>(lo - 1))),
                           _mm_cmplt_epi8(v, _mm_set1_epi8(static_cast<char>(hi + 1))));
    };
    __m128i bad = _mm_cmplt_epi8(v, _mm_set1_epi8(0x21));  // 0x00..0x20 and 0x80..0xff
    bad = _mm_or_si128(bad, eq(0x7f));
    bad = _mm_or_si128(bad, eq('"'));
    bad = _mm_or_si128(bad, between('(', ')'));
    bad = _mm_or_si128(bad, eq(','));
    bad = _mm_or_si128(bad, eq('/'));
    bad = _mm_or_si128(bad, between(':', '@'));
    bad = _mm_or_si128(bad, between('[', ']'));
    bad = _mm_or_si128(bad, eq('{'));
    bad = _mm_or_si128(bad, eq('}'));
    return bad;
  }
#endif

  std::string_view buf_;
  size_t base_ = 0;  // start of the window the masks describe
  uint64_t lf_mask_ = 0;
  uint64_t colon_mask_ = 0;
};

#if defined(__SSE2__)
using LineScanner = BasicLineScanner<true>;
#else
using LineScanner = BasicLineScanner<false>;
#endif

}  // namespace sonde::protocols::http1
