#pragma once
// Finds line ends (LF) and name/value separators (':') in an HTTP head 64
// bytes at a time. Each 64-byte window of the head is scanned once into bit
// masks of their positions; a line's end and its first ':' are then counts of
// trailing zeros. A head of ~15 short lines costs ~8 vector compares instead
// of 15 memchr calls and a byte loop per header name, which is where
// header-only HTTP/1 parsing spent its time.
//
// The AVX2 and AVX-512 scanners also classify every byte of the window as
// tchar or not (a third mask), so checking that a header name is a token is a
// mask test instead of a vector check per line. Their window scans carry
// target attributes: they are inlined only into functions compiled for that
// instruction set (the dispatched parsers in parser.cc), and run only when the
// CPU has it. SSE2 (the x86-64 baseline) and scalar scanners check names with
// AllTchar.
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SONDE_HTTP1_X86 1
#endif

namespace sonde::protocols::http1 {

// Instruction sets of the head scanner, from plainest to widest.
enum class ScanIsa : uint8_t { kScalar, kSse2, kAvx2, kAvx512 };

// RFC 9110 tchar: the bytes of a header name or a method.
inline constexpr auto kTokenCharTable = [] {
  std::array<bool, 256> t{};
  for (int ch = '0'; ch <= '9'; ++ch) t[ch] = true;
  for (int ch = 'a'; ch <= 'z'; ++ch) t[ch] = true;
  for (int ch = 'A'; ch <= 'Z'; ++ch) t[ch] = true;
  for (char ch : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(ch)] = true;
  return t;
}();

inline bool IsTokenChar(unsigned char c) { return kTokenCharTable[c]; }

// One 64-byte window: bit i of each mask describes byte i.
struct WindowMasks {
  uint64_t lf = 0;
  uint64_t colon = 0;
  uint64_t non_tchar = 0;  // only from the classifying (AVX2, AVX-512) scans
};

namespace scan_detail {

// For the AVX2 nibble lookup: byte c (< 0x80) is a tchar exactly when
// kLowNibbleTchar[c & 15] has bit (c >> 4) set; kHighNibbleBit[h] is 1 << h
// for h < 8 and 0 above, so bytes >= 0x80 never are.
inline constexpr auto kLowNibbleTchar = [] {
  std::array<uint8_t, 32> t{};  // twice: one copy per 128-bit lane
  for (int c = 0; c < 128; ++c) {
    if (kTokenCharTable[static_cast<size_t>(c)]) {
      t[static_cast<size_t>(c & 15)] |= static_cast<uint8_t>(1u << (c >> 4));
    }
  }
  for (size_t i = 0; i < 16; ++i) t[16 + i] = t[i];
  return t;
}();
inline constexpr auto kHighNibbleBit = [] {
  std::array<uint8_t, 32> t{};
  for (size_t h = 0; h < 8; ++h) t[h] = t[16 + h] = static_cast<uint8_t>(1u << h);
  return t;
}();
// For the AVX-512 VBMI lookup: 0x80 for the non-tchar bytes among 0..127.
inline constexpr auto kNonTcharHigh = [] {
  std::array<uint8_t, 128> t{};
  for (size_t c = 0; c < 128; ++c) t[c] = kTokenCharTable[c] ? 0 : 0x80;
  return t;
}();

inline void ScanScalar(const char* p, WindowMasks* m) {
  uint64_t lfs = 0, colons = 0;
  for (int i = 0; i < 64; ++i) {
    lfs |= static_cast<uint64_t>(p[i] == '\n') << i;
    colons |= static_cast<uint64_t>(p[i] == ':') << i;
  }
  m->lf = lfs;
  m->colon = colons;
}

#if defined(SONDE_HTTP1_X86)
inline void ScanSse2(const char* p, WindowMasks* m) {
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i colon = _mm_set1_epi8(':');
  uint64_t lfs = 0, colons = 0;
  for (int i = 0; i < 4; ++i) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    const auto bits = [](__m128i x) {
      return static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(x)));
    };
    lfs |= bits(_mm_cmpeq_epi8(v, lf)) << (16 * i);
    colons |= bits(_mm_cmpeq_epi8(v, colon)) << (16 * i);
  }
  m->lf = lfs;
  m->colon = colons;
}

// 0xff in each byte that is not a tchar: controls, space, DEL, bytes >=
// 0x80 and the separators "(),/:;<=>?@[\]{} (SSE2 signed compares).
inline __m128i NonTcharSse2(__m128i v) {
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

// Not always_inline: GCC inlines these once their caller has been inlined
// into a function built for the same target (an always_inline one would be
// rejected in the generic template bodies).
[[gnu::target("avx2")]] inline void ScanAvx2(const char* p, WindowMasks* m) {
  const __m256i lf = _mm256_set1_epi8('\n');
  const __m256i colon = _mm256_set1_epi8(':');
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i low_table = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLowNibbleTchar.data()));
  const __m256i high_table = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kHighNibbleBit.data()));
  uint64_t lfs = 0, colons = 0, bad = 0;
  for (int i = 0; i < 2; ++i) {
    // (No lambdas here: they would not inherit the target attribute.)
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i));
    const __m256i lo = _mm256_and_si256(v, low_nibble);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibble);
    const __m256i tchar = _mm256_and_si256(_mm256_shuffle_epi8(low_table, lo), _mm256_shuffle_epi8(high_table, hi));
    const int shift = 32 * i;
    lfs |= uint64_t{static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, lf)))} << shift;
    colons |= uint64_t{static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, colon)))} << shift;
    bad |= uint64_t{static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(tchar, _mm256_setzero_si256())))}
           << shift;
  }
  m->lf = lfs;
  m->colon = colons;
  m->non_tchar = bad;
}

[[gnu::target("avx512f,avx512bw,avx512vbmi")]] inline void ScanAvx512(const char* p, WindowMasks* m) {
  const __m512i v = _mm512_loadu_si512(p);
  // Masks move to general registers at once: the line walk is scalar bit
  // arithmetic, slower on mask registers (kandn, kmov round trips).
  m->lf = _cvtmask64_u64(_mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\n')));
  m->colon = _cvtmask64_u64(_mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(':')));
  // Bytes 0..127 look their class up in 128 bytes; bytes >= 0x80 carry
  // their own high bit.
  const __m512i table_lo = _mm512_loadu_si512(kNonTcharHigh.data());
  const __m512i table_hi = _mm512_loadu_si512(kNonTcharHigh.data() + 64);
  const __m512i cls = _mm512_permutex2var_epi8(table_lo, v, table_hi);
  m->non_tchar = _cvtmask64_u64(_mm512_movepi8_mask(_mm512_or_si512(cls, v)));
}
#endif

}  // namespace scan_detail

template <ScanIsa kIsa>
class BasicLineScanner {
 public:
  static constexpr size_t npos = std::string_view::npos;
  // Whether Line() also tells if the bytes before the line's first ':' are
  // all tchar (NameIsToken); without it, names are checked with AllTchar.
  static constexpr bool kClassifies = kIsa == ScanIsa::kAvx2 || kIsa == ScanIsa::kAvx512;

  explicit BasicLineScanner(std::string_view buf) : buf_(buf) { Scan(0); }

  // The line that starts at `pos`: its LF and its first ':' (npos when the
  // line has none). False when no LF follows `pos` yet. Lines must be asked
  // for front to back (windows already passed are not kept).
  [[gnu::always_inline]] bool Line(size_t pos, size_t* lf, size_t* colon) {
    while (pos >= base_ + 64) {
      if (base_ + 64 >= buf_.size()) return false;
      Scan(base_ + 64);
    }
    uint64_t from = ~uint64_t{0} << (pos - base_);  // bytes of the line in this window
    uint64_t lfs = m_.lf & from;
    uint64_t colons = m_.colon & from;
    size_t first_colon = npos;
    uint64_t bad_name = 0;  // non-tchar bytes seen before the first ':'
    while (lfs == 0) {  // the line runs past this window
      if (first_colon == npos) {
        if (colons != 0) {
          const int at = __builtin_ctzll(colons);
          first_colon = base_ + static_cast<size_t>(at);
          if constexpr (kClassifies) bad_name |= m_.non_tchar & from & LowBits(at);
        } else {
          if constexpr (kClassifies) bad_name |= m_.non_tchar & from;
        }
      }
      if (base_ + 64 >= buf_.size()) return false;
      Scan(base_ + 64);
      from = ~uint64_t{0};
      lfs = m_.lf;
      colons = m_.colon;
    }
    const int at = __builtin_ctzll(lfs);
    *lf = base_ + static_cast<size_t>(at);
    if (first_colon == npos) {
      const uint64_t before_lf = colons & LowBits(at);
      if (before_lf != 0) {
        const int c = __builtin_ctzll(before_lf);
        first_colon = base_ + static_cast<size_t>(c);
        if constexpr (kClassifies) bad_name |= m_.non_tchar & from & LowBits(c);
      }
    }
    *colon = first_colon;
    if constexpr (kClassifies) name_is_token_ = bad_name == 0;
    return true;
  }

  // Classifying scanners: after Line() found a ':', whether the bytes from
  // the line's start to it are all tchar.
  bool NameIsToken() const {
    static_assert(kClassifies, "use AllTchar");
    return name_is_token_;
  }

  // Whether buf[begin, end) holds only tchar bytes (RFC 9110 token
  // characters). Names up to 32 bytes take one or two vector checks, so the
  // per-name cost does not depend on a branch per byte.
  bool AllTchar(size_t begin, size_t end) const {
#if defined(SONDE_HTTP1_X86)
    if constexpr (kIsa != ScanIsa::kScalar) {
      const size_t n = end - begin;
      if (n <= 32 && begin + 32 <= buf_.size()) {
        const char* p = buf_.data() + begin;
        const auto bad = [](const char* at) {
          const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(at));
          return static_cast<uint32_t>(_mm_movemask_epi8(scan_detail::NonTcharSse2(v)));
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
  static uint64_t LowBits(int n) { return (uint64_t{1} << n) - 1; }  // n < 64

  // Scans the window [start, start + 64); bytes past the buffer read as 0.
  [[gnu::always_inline]] void Scan(size_t start) {
    base_ = start;
    const size_t left = start < buf_.size() ? buf_.size() - start : 0;
    const char* p = buf_.data() + start;
    if (left < 64) [[unlikely]] {
      // Never read past the caller's buffer: the tail goes through a padded copy.
      std::memset(tail_, 0, sizeof(tail_));
      if (left > 0) std::memcpy(tail_, p, left);
      p = tail_;
    }
    ScanBlock(p);  // one call site, so it inlines
  }

  [[gnu::always_inline]] void ScanBlock(const char* p) {
#if defined(SONDE_HTTP1_X86)
    if constexpr (kIsa == ScanIsa::kAvx512) {
      scan_detail::ScanAvx512(p, &m_);
      return;
    } else if constexpr (kIsa == ScanIsa::kAvx2) {
      scan_detail::ScanAvx2(p, &m_);
      return;
    } else if constexpr (kIsa == ScanIsa::kSse2) {
      scan_detail::ScanSse2(p, &m_);
      return;
    }
#endif
    scan_detail::ScanScalar(p, &m_);
  }

  std::string_view buf_;
  size_t base_ = 0;  // start of the window the masks describe
  WindowMasks m_;
  bool name_is_token_ = false;
  char tail_[64];
};

#if defined(SONDE_HTTP1_X86)
inline constexpr ScanIsa kBaselineScanIsa = ScanIsa::kSse2;
#else
inline constexpr ScanIsa kBaselineScanIsa = ScanIsa::kScalar;
#endif

}  // namespace sonde::protocols::http1
