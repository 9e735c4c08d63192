#include "agent/protocols/http2/tolerant_hpack.h"

#include <algorithm>
#include <cstdint>

#include "agent/protocols/http2/hpack_static.h"
#include "agent/protocols/http2/huffman_fast.h"

namespace sonde::protocols::http2 {
namespace {

bool Inside(std::string_view s, const char* lo, const char* hi) {
  const auto p = reinterpret_cast<uintptr_t>(s.data());
  return !s.empty() && p >= reinterpret_cast<uintptr_t>(lo) && p < reinterpret_cast<uintptr_t>(hi);
}

}  // namespace

// --- DecodedFieldList ----------------------------------------------------------------

void DecodedFieldList::Grow(size_t n) {
  const size_t cap = std::max({cap_ * 2, used_ + n, size_t{256}});  // grows to what blocks use
  auto fresh = std::make_unique_for_overwrite<char[]>(cap);  // no zero-fill: bytes are written before read
  if (used_ > 0) std::memcpy(fresh.get(), arena_.get(), used_);
  const char* lo = arena_.get();
  const char* hi = lo + cap_;
  for (size_t i = 0; i < count; ++i) {
    DecodedField& f = fields[i];
    if (Inside(f.name, lo, hi)) f.name = std::string_view(fresh.get() + (f.name.data() - lo), f.name.size());
    if (Inside(f.value, lo, hi)) {
      f.value = std::string_view(fresh.get() + (f.value.data() - lo), f.value.size());
    }
  }
  arena_ = std::move(fresh);
  cap_ = cap;
}

void DecodedFieldList::Materialize(const char* lo, const char* hi) {
  for (size_t i = 0; i < count; ++i) {
    // Store() may grow the arena, which rebases fields[0, count): re-read each time.
    if (Inside(fields[i].name, lo, hi)) fields[i].name = Store(fields[i].name);
    if (Inside(fields[i].value, lo, hi)) fields[i].value = Store(fields[i].value);
  }
}

// --- integers and strings ---------------------------------------------------------

bool DecodeHpackInteger(std::string_view in, size_t& pos, int prefix_bits, uint64_t& value) {
  if (pos >= in.size()) return false;
  const uint8_t mask = static_cast<uint8_t>((1u << prefix_bits) - 1);
  value = static_cast<uint8_t>(in[pos++]) & mask;
  if (value < mask) return true;
  for (int shift = 0; shift <= 28; shift += 7) {
    if (pos >= in.size()) return false;
    const auto b = static_cast<uint8_t>(in[pos++]);
    value += static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value <= (1u << 28);
  }
  return false;
}

namespace {

// DecodeHpackInteger with the one-byte case inline (`pos` < in.size()).
inline bool ReadInteger(std::string_view in, size_t& pos, int prefix_bits, uint64_t& value) {
  const uint8_t mask = static_cast<uint8_t>((1u << prefix_bits) - 1);
  const uint8_t first = static_cast<uint8_t>(in[pos]) & mask;
  if (__builtin_expect(first < mask, 1)) {
    value = first;
    ++pos;
    return true;
  }
  // Two bytes (names indexed past a 4-bit prefix, strings of 127..254 bytes).
  if (in.size() - pos >= 2 && static_cast<uint8_t>(in[pos + 1]) < 0x80) {
    value = mask + static_cast<uint8_t>(in[pos + 1]);
    pos += 2;
    return true;
  }
  return DecodeHpackInteger(in, pos, prefix_bits, value);
}

// A Huffman string into `out`'s storage. Out of line (a plain call, not the
// ifunc of HuffmanDecodeTo): inlined, the decoder's registers crowded the
// field loop and slowed the indexed fields around it.
__attribute__((noinline)) bool DecodeHuffmanString(std::string_view raw, DecodedFieldList& out,
                                                   std::string_view& s, const uint32_t* huffman_table) {
  char* dst = out.Reserve(HuffmanDecodedBound(raw.size()));
  size_t written = 0;
  const bool ok = HuffmanDecodeFast(raw, dst, written, huffman_table);
  s = out.Commit(written);
  return ok;
}

// String literal (RFC 7541 section 5.2), decoded into `out`'s storage.
inline bool DecodeString(std::string_view in, size_t& pos, DecodedFieldList& out, std::string_view& s,
                         const uint32_t* huffman_table) {
  if (pos >= in.size()) return false;
  const bool huffman = (static_cast<uint8_t>(in[pos]) & 0x80) != 0;
  uint64_t len = 0;
  if (!ReadInteger(in, pos, 7, len) || len > in.size() - pos) return false;
  const std::string_view raw(in.data() + pos, len);
  pos += len;
  if (huffman) return DecodeHuffmanString(raw, out, s, huffman_table);
  s = out.Store(raw);
  return true;
}

}  // namespace

// --- dynamic table -----------------------------------------------------------------

void HpackDynamicTable::AddMakingRoom(std::string_view name, std::string_view value, bool name_unknown,
                                      DecodedFieldList* views) {
  const size_t need = name.size() + value.size();
  std::string keep;
  keep.reserve(need);
  keep.append(name).append(value);
  name = std::string_view(keep).substr(0, name.size());
  value = std::string_view(keep).substr(name.size());
  MakeRoom(need, views);
  Append(name, value, name_unknown);
}

void HpackDynamicTable::MakeRoom(size_t need, DecodedFieldList* views) {
  // Fields of the block being decoded may view any byte of the buffer,
  // evicted entries included: copy them out before anything moves.
  if (views != nullptr && cap_ > 0) views->Materialize(buf_.get(), buf_.get() + cap_);
  // Live entries are contiguous (appended in order, evicted oldest first).
  const size_t start = count() > 0 ? refs_[head_].offset : used_;
  const size_t live = used_ - start;
  if ((live + need) * 2 <= cap_) {
    if (live > 0) std::memmove(buf_.get(), buf_.get() + start, live);
  } else {
    // Sized to what the encoder uses (most peers add a few hundred bytes of
    // entries, far below the 4 KiB the table may hold), doubling as it grows.
    const size_t cap = std::max((live + need) * 2, size_t{128});
    auto fresh = std::make_unique_for_overwrite<char[]>(cap);  // no zero-fill: bytes are written before read
    if (live > 0) std::memcpy(fresh.get(), buf_.get() + start, live);
    buf_ = std::move(fresh);
    cap_ = cap;
  }
  refs_.erase(refs_.begin(), refs_.begin() + static_cast<std::ptrdiff_t>(head_));
  head_ = 0;
  for (Ref& r : refs_) r.offset -= static_cast<uint32_t>(start);
  used_ = live;
}

void HpackDynamicTable::DropEvictedRefs() {
  if (head_ == refs_.size()) {
    refs_.clear();
    head_ = 0;
  } else if (head_ * 2 >= refs_.size()) {
    refs_.erase(refs_.begin(), refs_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
}

void HpackDynamicTable::Clear() {
  refs_.clear();
  head_ = 0;
  bytes_ = 0;
}

// --- decoder -------------------------------------------------------------------------

TolerantHpackDecoder::TolerantHpackDecoder(uint32_t max_table_size)
    : huffman_table_(huffman_internal::ComplementPeekTable()), max_size_(max_table_size) {}

void TolerantHpackDecoder::LoseState() {
  table_.Clear();
  unknown_names_ = 0;
  unknown_tail_ = true;
}

bool TolerantHpackDecoder::fully_known() const { return !unknown_tail_ && unknown_names_ == 0; }

void TolerantHpackDecoder::EvictToFit() {
  while (table_.count() > 0 && table_.bytes() > max_size_) {
    if (table_.oldest_name_unknown()) --unknown_names_;
    table_.EvictOldest();
  }
  // Older (unknown) entries are evicted before known ones: once the known
  // entries leave no room for even an empty entry, nothing unknown remains.
  if (unknown_tail_ && table_.bytes() + kHpackEntryOverhead > max_size_) unknown_tail_ = false;
}

void TolerantHpackDecoder::SetMaxSize(uint32_t size) {
  // Bound memory whatever the encoder claims (nghttp2 caps at the announced
  // SETTINGS value; an observer accepts up to 1 MiB).
  max_size_ = std::min<uint32_t>(size, 1u << 20);
  if (size == 0) unknown_tail_ = false;
  EvictToFit();
}

__attribute__((always_inline)) inline void TolerantHpackDecoder::Add(std::string_view name, std::string_view value, bool name_unknown,
                               DecodedFieldList* views) {
  const size_t size = name.size() + value.size() + kHpackEntryOverhead;
  if (size > max_size_) {
    // RFC 7541 section 4.4: an entry larger than the table empties it.
    table_.Clear();
    unknown_names_ = 0;
    unknown_tail_ = false;
    return;
  }
  // Evict first (RFC 7541 section 4.4); evicted bytes stay readable until
  // the table's buffer is reorganised, which copies `views` out first.
  while (table_.count() > 0 && table_.bytes() + size > max_size_) {
    if (table_.oldest_name_unknown()) --unknown_names_;
    table_.EvictOldest();
  }
  table_.Add(name, value, name_unknown, views);
  if (name_unknown) ++unknown_names_;
  // The table fits (room was made above), so only the unknown tail can change.
  if (unknown_tail_ && table_.bytes() + kHpackEntryOverhead > max_size_) unknown_tail_ = false;
}

inline bool TolerantHpackDecoder::Lookup(uint64_t index, HpackDynamicTable::EntryView& entry) {
  if (index - 1 < kStaticTableSize) {  // index 0 wraps around
    entry = HpackDynamicTable::EntryView{kStaticTable[index - 1].name,
                                         kStaticTable[index - 1].value, false};
    return true;
  }
  const uint64_t d = index - kStaticTableSize - 1;
  if (index > kStaticTableSize && d < table_.count()) {
    entry = table_.Get(static_cast<size_t>(d));
    return true;
  }
  // In the unknown tail, or (index 0 / past the end) an encoding we cannot
  // resolve: either way the field is reported as unknown, never guessed.
  ++unknown_refs_;
  return false;
}

absl::Status TolerantHpackDecoder::Decode(std::string_view block, DecodedFieldList& out) {
  size_t pos = 0;
  while (pos < block.size()) {
    const auto b = static_cast<uint8_t>(block[pos]);
    uint64_t index = 0;
    if (b & 0x80) {  // indexed field: views, no copy
      if (__builtin_expect(b != 0xff, 1)) {
        index = b & 0x7f;
        ++pos;
      } else if (!ReadInteger(block, pos, 7, index)) {
        return absl::DataLossError("hpack: index");
      }
      if (index - 1 < kStaticTableSize) {  // index 0 wraps around
        out.Add(kStaticTable[index - 1].name, kStaticTable[index - 1].value, false, false);
        continue;
      }
      const uint64_t d = index - kStaticTableSize - 1;
      if (index > kStaticTableSize && d < table_.count()) {
        const HpackDynamicTable::EntryView e = table_.Get(static_cast<size_t>(d));
        out.Add(e.name, e.value, e.name_unknown, false);
      } else {
        ++unknown_refs_;  // lost entry (or an index we cannot resolve): never guessed
        out.Add({}, {}, true, true);
      }
      continue;
    }
    if ((b & 0xe0) == 0x20) {  // dynamic table size update
      if (!ReadInteger(block, pos, 5, index)) return absl::DataLossError("hpack: size");
      SetMaxSize(static_cast<uint32_t>(std::min<uint64_t>(index, UINT32_MAX)));
      continue;
    }
    // Literal: with incremental indexing (01), without (0000), never indexed (0001).
    const bool indexing = (b & 0xc0) == 0x40;
    if (!ReadInteger(block, pos, indexing ? 6 : 4, index)) {
      return absl::DataLossError("hpack: name index");
    }
    DecodedField& f = out.Add({}, {}, false, false);
    if (index == 0) {
      if (!DecodeString(block, pos, out, f.name, huffman_table_)) return absl::DataLossError("hpack: name");
    } else {
      HpackDynamicTable::EntryView e;
      if (Lookup(index, e)) {
        f.name = e.name;
        f.name_unknown = e.name_unknown;
      } else {
        f.name_unknown = true;
      }
    }
    // `f` stays a valid reference: nothing is added to `out` until the next field.
    if (!DecodeString(block, pos, out, f.value, huffman_table_)) return absl::DataLossError("hpack: value");
    if (indexing) Add(f.name, f.value, f.name_unknown, &out);
  }
  return absl::OkStatus();
}

}  // namespace sonde::protocols::http2
