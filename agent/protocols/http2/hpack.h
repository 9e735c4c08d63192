#pragma once
// Per-direction HPACK decoding with two interchangeable backends:
//  - kSonde (default): TolerantHpackDecoder throughout. It is exact while its
//    table is known, verified against every public HPACK story and against
//    nghttp2 in tests, and 3x faster than nghttp2 1.52's inflater (fields are
//    views, no per-field copies; see docs/hpack.md for figures).
//  - kNghttp2: nghttp2's inflater while the table is known exactly, the
//    tolerant decoder while it is not (lost frames, late join), and back to
//    nghttp2 once the tolerant decoder has rebuilt a fully known table.
// SONDE_HPACK_BACKEND=nghttp2 in the environment selects nghttp2.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nghttp2/nghttp2.h>

#include "absl/status/status.h"
#include "agent/protocols/http2/tolerant_hpack.h"

namespace sonde::protocols::http2 {

struct HpackCounters {
  uint64_t blocks_exact = 0;     // blocks decoded with a fully known table
  uint64_t blocks_degraded = 0;  // blocks decoded while the table was not fully known
  uint64_t state_losses = 0;     // times the dynamic table was declared lost
  uint64_t exact_failures = 0;   // nghttp2 backend rejected a block (then decoded tolerantly)
  uint64_t malformed = 0;        // blocks even the tolerant decoder could not finish
  uint64_t unknown_fields = 0;   // fields that referenced lost dynamic entries
  uint64_t recoveries = 0;       // returns to exact decoding after a loss
};

enum class HpackBackend : uint8_t { kSonde, kNghttp2 };
HpackBackend DefaultHpackBackend();

class HpackDecoder {
 public:
  explicit HpackDecoder(HpackBackend backend = DefaultHpackBackend());
  HpackDecoder(HpackDecoder&&) noexcept = default;
  HpackDecoder& operator=(HpackDecoder&&) noexcept = default;

  // Decodes one complete header block into `out` (cleared first). Always
  // leaves every decodable field in `out`; the status reports malformed
  // input, after which the table is treated as lost.
  absl::Status Decode(std::string_view block, DecodedFieldList& out);

  // The encoder's dynamic table is no longer known (bytes were lost).
  void LoseState();

  // SETTINGS_HEADER_TABLE_SIZE announced by the decoding side: the encoder
  // may grow its table up to this size. Limits are only ever raised: a
  // passive observer must accept whatever the encoder actually did.
  void AllowTableSize(uint32_t size);

  bool degraded() const { return degraded_; }

  // An idle connection's decoder as a few bytes (the allowed size, then a
  // header block that rebuilds the dynamic table: a size update and every
  // entry, oldest first, as a literal with incremental indexing). False when
  // the state is not exactly known here (nghttp2 backend, a lost table).
  bool Freeze(std::string& out) const;
  // Rebuilds a fresh decoder from what Freeze wrote, consuming it from `in`.
  // Counters restart. False on bytes Freeze did not write.
  bool Thaw(std::string_view& in);
  HpackBackend backend() const { return backend_; }
  const HpackCounters& counters() const { return counters_; }

 private:
  struct InflaterDeleter {
    void operator()(nghttp2_hd_inflater* p) const { nghttp2_hd_inflate_del(p); }
  };
  using Inflater = std::unique_ptr<nghttp2_hd_inflater, InflaterDeleter>;

  Inflater NewInflater() const;
  absl::Status DecodeExact(std::string_view block, DecodedFieldList& out);
  void TryRecover();

  HpackBackend backend_;
  Inflater inflater_;
  TolerantHpackDecoder tolerant_;
  uint32_t allowed_size_;
  bool degraded_ = false;
  HpackCounters counters_;
};

}  // namespace sonde::protocols::http2
