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
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace sonde::protocols::http2 {

inline constexpr uint32_t kDefaultHeaderTableSize = 4096;
inline constexpr uint32_t kHpackEntryOverhead = 32;  // RFC 7541 section 4.1

// memcpy for header-sized strings without a library call: most names and
// values are under 32 bytes, and a call per string (two per table insert)
// cost more than the copy. `src` and `dst` must not overlap.
inline void CopyShort(char* dst, std::string_view src) {
  const size_t n = src.size();
  const char* s = src.data();
  if (n >= 16 && n <= 32) {
    char a[16], b[16];
    std::memcpy(a, s, 16);
    std::memcpy(b, s + n - 16, 16);
    std::memcpy(dst, a, 16);
    std::memcpy(dst + n - 16, b, 16);
  } else if (n >= 8 && n < 16) {
    uint64_t a, b;
    std::memcpy(&a, s, 8);
    std::memcpy(&b, s + n - 8, 8);
    std::memcpy(dst, &a, 8);
    std::memcpy(dst + n - 8, &b, 8);
  } else if (n >= 4 && n < 8) {
    uint32_t a, b;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + n - 4, 4);
    std::memcpy(dst, &a, 4);
    std::memcpy(dst + n - 4, &b, 4);
  } else if (n > 32) {
    std::memcpy(dst, s, n);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = s[i];
  }
}

// One decoded field. The strings are views: into the static table, into the
// decoder's dynamic table, or into the DecodedFieldList's own storage. They stay
// valid until the DecodedFieldList is cleared or the decoder that filled it decodes
// its next block (or is destroyed); copy what must live longer.
struct DecodedField {
  std::string_view name;
  std::string_view value;
  bool name_unknown = false;   // name referenced a lost dynamic entry
  bool value_unknown = false;  // whole field referenced a lost dynamic entry
  bool unknown() const { return name_unknown || value_unknown; }
};

// Reusable output: `fields[0, count)` are valid. Decoded literals live in one
// arena kept across blocks, so steady-state decoding does not allocate.
// Move-only (the fields may point into the arena).
struct DecodedFieldList {
  std::vector<DecodedField> fields;
  size_t count = 0;

  DecodedFieldList() = default;
  DecodedFieldList(const DecodedFieldList&) = delete;
  DecodedFieldList& operator=(const DecodedFieldList&) = delete;
  DecodedFieldList(DecodedFieldList&&) noexcept = default;
  DecodedFieldList& operator=(DecodedFieldList&&) noexcept = default;

  void Clear() {
    count = 0;
    used_ = 0;
  }
  // Clear() and give the storage back (an idle connection).
  void Release() {
    Clear();
    std::vector<DecodedField>().swap(fields);
    arena_.reset();
    cap_ = 0;
  }
  DecodedField& Add() { return Add({}, {}, false, false); }
  __attribute__((always_inline)) DecodedField& Add(std::string_view name, std::string_view value,
                                                   bool name_unknown, bool value_unknown) {
    if (__builtin_expect(count == fields.size(), 0)) GrowFields();
    DecodedField& f = fields[count++];
    f.name = name;
    f.value = value;
    f.name_unknown = name_unknown;
    f.value_unknown = value_unknown;
    return f;
  }
  const DecodedField* begin() const { return fields.data(); }
  const DecodedField* end() const { return fields.data() + count; }

  // Storage for field strings, valid until Clear(): Reserve(n) gives room for
  // n bytes (moving the arena rebases every field already added), Commit(k)
  // keeps the first k of them and returns their view.
  char* Reserve(size_t n) {
    if (__builtin_expect(cap_ - used_ < n, 0)) Grow(n);
    return arena_.get() + used_;
  }
  std::string_view Commit(size_t n) {
    const std::string_view v(arena_.get() + used_, n);
    used_ += n;
    return v;
  }
  std::string_view Store(std::string_view s) {
    char* dst = Reserve(s.size());
    CopyShort(dst, s);
    return Commit(s.size());
  }
  // Copies every field string lying in [lo, hi) into this list's storage
  // (the memory there is about to change).
  void Materialize(const char* lo, const char* hi);

 private:
  void Grow(size_t n);
  __attribute__((noinline)) void GrowFields() { fields.emplace_back(); }

  std::unique_ptr<char[]> arena_;
  size_t cap_ = 0;
  size_t used_ = 0;
};

// The dynamic table, positional (index 0 = newest). Strings are appended to
// one buffer and never overwritten in place while a block is decoded, so
// fields may view them; when the buffer must be compacted or grown, the
// fields of the block being decoded are copied out first.
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
  EntryView Get(size_t newest_index) const {
    const Ref& r = refs_[refs_.size() - 1 - newest_index];
    const char* base = buf_.get() + r.offset;
    return EntryView{std::string_view(base, r.name_len),
                     std::string_view(base + r.name_len, r.value_len), r.name_unknown};
  }
  bool oldest_name_unknown() const { return refs_[head_].name_unknown; }
  // `name` and `value` may point anywhere (this table included). `views`
  // (may be null): fields to copy out before the buffer changes.
  __attribute__((always_inline)) void Add(std::string_view name, std::string_view value, bool name_unknown,
                                          DecodedFieldList* views) {
    const size_t need = name.size() + value.size();
    if (__builtin_expect(cap_ - used_ < need, 0)) return AddMakingRoom(name, value, name_unknown, views);
    Append(name, value, name_unknown);
  }
  __attribute__((always_inline)) void EvictOldest() {
    const Ref& r = refs_[head_++];
    bytes_ -= r.name_len + r.value_len + kHpackEntryOverhead;
    if (__builtin_expect(head_ == refs_.size() || head_ >= 256, 0)) DropEvictedRefs();
  }
  // Drops every entry (their bytes stay until a later Add needs the room).
  void Clear();

 private:
  struct Ref {  // 16 bytes: the buffer stays far below 4 GiB (table size <= 1 MiB)
    uint32_t offset;
    uint32_t name_len;
    uint32_t value_len;
    bool name_unknown;
  };
  void MakeRoom(size_t need, DecodedFieldList* views);
  // Add() when the buffer has no room: `name`/`value` may lie in this buffer
  // or in `views`' storage, and both can move.
  __attribute__((noinline)) void AddMakingRoom(std::string_view name, std::string_view value,
                                               bool name_unknown, DecodedFieldList* views);
  __attribute__((always_inline)) void Append(std::string_view name, std::string_view value, bool name_unknown) {
    char* dst = buf_.get() + used_;
    CopyShort(dst, name);
    CopyShort(dst + name.size(), value);
    refs_.push_back(Ref{static_cast<uint32_t>(used_), static_cast<uint32_t>(name.size()),
                        static_cast<uint32_t>(value.size()), name_unknown});
    used_ += name.size() + value.size();
    bytes_ += name.size() + value.size() + kHpackEntryOverhead;
  }
  // Forgets refs of evicted entries (all of them, or a long prefix).
  void DropEvictedRefs();

  std::vector<Ref> refs_;  // oldest at head_, newest at the back
  size_t head_ = 0;
  std::unique_ptr<char[]> buf_;
  size_t cap_ = 0;
  size_t used_ = 0;
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
  absl::Status Decode(std::string_view block, DecodedFieldList& out);

  // True when no unknown entry can remain in the encoder's table.
  bool fully_known() const;
  const HpackDynamicTable& table() const { return table_; }
  uint32_t max_table_size() const { return max_size_; }
  uint64_t unknown_references() const { return unknown_refs_; }

 private:
  void Add(std::string_view name, std::string_view value, bool name_unknown, DecodedFieldList* views);
  void SetMaxSize(uint32_t size);
  void EvictToFit();
  // Resolves a 1-based index. Returns false when it points into the unknown tail.
  bool Lookup(uint64_t index, HpackDynamicTable::EntryView& entry);

  HpackDynamicTable table_;
  const uint32_t* huffman_table_;  // huffman_internal::ComplementPeekTable()
  uint32_t max_size_;
  bool unknown_tail_ = false;
  size_t unknown_names_ = 0;  // entries whose name is unknown
  uint64_t unknown_refs_ = 0;
};

// HPACK integer (RFC 7541 section 5.1) with an N-bit prefix. Advances `pos`.
// Returns false on overrun or a value above 2^28.
bool DecodeHpackInteger(std::string_view in, size_t& pos, int prefix_bits, uint64_t& value);

}  // namespace sonde::protocols::http2
