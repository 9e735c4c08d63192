#pragma once
// A small HPACK decoder that keeps working after its dynamic table was lost
// (a dropped HEADERS frame, a connection joined mid-way). nghttp2's inflater
// cannot run without exact state, so the session switches to this one while
// the state is unknown.
//
// The dynamic table is modelled positionally: entries added since the loss
// are known and sit at the newest positions, so references to them resolve
// exactly; anything older is an "unknown tail". A reference that falls into
// the tail yields a field marked unknown, never a guessed value. The tail is
// gone once the known entries fill the table (no room for even an empty
// entry) or a size update to 0 arrives; the table is then fully known and the
// caller can hand it back to an exact decoder.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace sonde::protocols::http2 {

inline constexpr uint32_t kDefaultHeaderTableSize = 4096;
inline constexpr uint32_t kHpackEntryOverhead = 32;  // RFC 7541 section 4.1

struct DecodedField {
  std::string name;
  std::string value;
  bool name_unknown = false;   // name referenced a lost dynamic entry
  bool value_unknown = false;  // whole field referenced a lost dynamic entry
  bool unknown() const { return name_unknown || value_unknown; }
};

// Reusable output: `fields[0, count)` are valid; strings keep their capacity
// across blocks so steady-state decoding does not allocate.
struct HeaderList {
  std::vector<DecodedField> fields;
  size_t count = 0;

  void Clear() { count = 0; }
  DecodedField& Add();
  const DecodedField* begin() const { return fields.data(); }
  const DecodedField* end() const { return fields.data() + count; }
};

// The dynamic table, positional (index 0 = newest). Strings live in one
// arena compacted now and then, so adding an entry does not allocate.
class HpackDynamicTable {
 public:
  struct EntryView {
    std::string_view name;
    std::string_view value;
    bool name_unknown = false;
  };

  size_t count() const { return refs_.size() - head_; }
  // RFC 7541 size: name + value + 32 per entry (a lower bound when a name is unknown).
  size_t bytes() const { return bytes_; }
  EntryView Get(size_t newest_index) const;
  // `name` and `value` must not point into this table.
  void Add(std::string_view name, std::string_view value, bool name_unknown);
  void EvictOldest();
  void Clear();

 private:
  struct Ref {
    size_t offset;
    uint32_t name_len;
    uint32_t value_len;
    bool name_unknown;
  };
  void Compact();

  std::vector<Ref> refs_;  // oldest at head_, newest at the back
  size_t head_ = 0;
  std::string arena_;
  size_t live_bytes_ = 0;  // arena bytes still referenced
  size_t bytes_ = 0;
};

// A complete HPACK decoder (exact while its table is known) that keeps
// working when the table is not.
class TolerantHpackDecoder {
 public:
  explicit TolerantHpackDecoder(uint32_t max_table_size = kDefaultHeaderTableSize);

  // The encoder's table can no longer be trusted: every entry becomes unknown.
  void LoseState();

  // Decodes one complete header block into `out` (appending). Returns an
  // error only for malformed encoding (integer/string overrun, bad Huffman);
  // fields decoded before the error stay in `out`.
  absl::Status Decode(std::string_view block, HeaderList& out);

  // True when no unknown entry can remain in the encoder's table.
  bool fully_known() const;
  const HpackDynamicTable& table() const { return table_; }
  uint32_t max_table_size() const { return max_size_; }
  uint64_t unknown_references() const { return unknown_refs_; }

 private:
  void Add(std::string_view name, std::string_view value, bool name_unknown);
  void SetMaxSize(uint32_t size);
  void EvictToFit();
  // Resolves a 1-based index. Returns false when it points into the unknown tail.
  bool Lookup(uint64_t index, HpackDynamicTable::EntryView& entry);

  HpackDynamicTable table_;
  uint32_t max_size_;
  bool unknown_tail_ = false;
  size_t unknown_names_ = 0;  // entries whose name is unknown
  uint64_t unknown_refs_ = 0;
};

// HPACK integer (RFC 7541 section 5.1) with an N-bit prefix. Advances `pos`.
// Returns false on overrun or a value above 2^28.
bool DecodeHpackInteger(std::string_view in, size_t& pos, int prefix_bits, uint64_t& value);

}  // namespace sonde::protocols::http2
