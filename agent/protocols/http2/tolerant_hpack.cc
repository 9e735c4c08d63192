#include "agent/protocols/http2/tolerant_hpack.h"

#include <algorithm>

#include "agent/protocols/http2/hpack_static.h"
#include "agent/protocols/http2/huffman.h"

namespace sonde::protocols::http2 {

DecodedField& HeaderList::Add() {
  if (count == fields.size()) fields.emplace_back();
  DecodedField& f = fields[count++];
  f.name.clear();
  f.value.clear();
  f.name_unknown = false;
  f.value_unknown = false;
  return f;
}

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
// String literal (RFC 7541 section 5.2) appended to `out`.
bool DecodeString(std::string_view in, size_t& pos, std::string& out) {
  if (pos >= in.size()) return false;
  const bool huffman = (static_cast<uint8_t>(in[pos]) & 0x80) != 0;
  uint64_t len = 0;
  if (!DecodeHpackInteger(in, pos, 7, len) || len > in.size() - pos) return false;
  const std::string_view raw = in.substr(pos, len);
  pos += len;
  if (huffman) return HuffmanDecode(raw, out);
  out.append(raw);
  return true;
}
}  // namespace

HpackDynamicTable::EntryView HpackDynamicTable::Get(size_t newest_index) const {
  const Ref& r = refs_[refs_.size() - 1 - newest_index];
  const std::string_view all(arena_);
  return EntryView{all.substr(r.offset, r.name_len), all.substr(r.offset + r.name_len, r.value_len),
                   r.name_unknown};
}

void HpackDynamicTable::Add(std::string_view name, std::string_view value, bool name_unknown) {
  if (arena_.size() > 8192 && arena_.size() > 2 * live_bytes_) Compact();
  refs_.push_back(Ref{arena_.size(), static_cast<uint32_t>(name.size()),
                      static_cast<uint32_t>(value.size()), name_unknown});
  arena_.append(name);
  arena_.append(value);
  live_bytes_ += name.size() + value.size();
  bytes_ += name.size() + value.size() + kHpackEntryOverhead;
}

void HpackDynamicTable::EvictOldest() {
  const Ref& r = refs_[head_++];
  live_bytes_ -= r.name_len + r.value_len;
  bytes_ -= r.name_len + r.value_len + kHpackEntryOverhead;
  if (head_ == refs_.size()) Clear();
}

void HpackDynamicTable::Clear() {
  refs_.clear();
  head_ = 0;
  arena_.clear();
  live_bytes_ = 0;
  bytes_ = 0;
}

void HpackDynamicTable::Compact() {
  std::string fresh;
  fresh.reserve(live_bytes_ * 2 + 1024);
  std::vector<Ref> refs;
  refs.reserve(count() + 16);
  for (size_t i = head_; i < refs_.size(); ++i) {
    Ref r = refs_[i];
    const size_t len = r.name_len + r.value_len;
    fresh.append(arena_, r.offset, len);
    r.offset = fresh.size() - len;
    refs.push_back(r);
  }
  arena_ = std::move(fresh);
  refs_ = std::move(refs);
  head_ = 0;
}

TolerantHpackDecoder::TolerantHpackDecoder(uint32_t max_table_size) : max_size_(max_table_size) {}

void TolerantHpackDecoder::LoseState() {
  table_.Clear();
  unknown_names_ = 0;
  unknown_tail_ = true;
}

bool TolerantHpackDecoder::fully_known() const { return !unknown_tail_ && unknown_names_ == 0; }

void TolerantHpackDecoder::EvictToFit() {
  while (table_.count() > 0 && table_.bytes() > max_size_) {
    if (table_.Get(table_.count() - 1).name_unknown) --unknown_names_;
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

void TolerantHpackDecoder::Add(std::string_view name, std::string_view value, bool name_unknown) {
  const size_t size = name.size() + value.size() + kHpackEntryOverhead;
  if (size > max_size_) {
    // RFC 7541 section 4.4: an entry larger than the table empties it.
    table_.Clear();
    unknown_names_ = 0;
    unknown_tail_ = false;
    return;
  }
  // Evict first (RFC 7541 section 4.4); the caller's strings are not in the table.
  while (table_.count() > 0 && table_.bytes() + size > max_size_) {
    if (table_.Get(table_.count() - 1).name_unknown) --unknown_names_;
    table_.EvictOldest();
  }
  table_.Add(name, value, name_unknown);
  if (name_unknown) ++unknown_names_;
  EvictToFit();
}

bool TolerantHpackDecoder::Lookup(uint64_t index, HpackDynamicTable::EntryView& entry) {
  if (index >= 1 && index <= kStaticTableSize) {
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

absl::Status TolerantHpackDecoder::Decode(std::string_view block, HeaderList& out) {
  size_t pos = 0;
  while (pos < block.size()) {
    const auto b = static_cast<uint8_t>(block[pos]);
    uint64_t index = 0;
    if (b & 0x80) {  // indexed field
      if (!DecodeHpackInteger(block, pos, 7, index)) return absl::DataLossError("hpack: index");
      HpackDynamicTable::EntryView e;
      DecodedField& f = out.Add();
      if (Lookup(index, e)) {
        f.name.assign(e.name);
        f.value.assign(e.value);
        f.name_unknown = e.name_unknown;
      } else {
        f.name_unknown = true;
        f.value_unknown = true;
      }
      continue;
    }
    if ((b & 0xe0) == 0x20) {  // dynamic table size update
      if (!DecodeHpackInteger(block, pos, 5, index)) return absl::DataLossError("hpack: size");
      SetMaxSize(static_cast<uint32_t>(index));
      continue;
    }
    // Literal: with incremental indexing (01), without (0000), never indexed (0001).
    const bool indexing = (b & 0xc0) == 0x40;
    if (!DecodeHpackInteger(block, pos, indexing ? 6 : 4, index)) {
      return absl::DataLossError("hpack: name index");
    }
    DecodedField& f = out.Add();
    if (index == 0) {
      if (!DecodeString(block, pos, f.name)) return absl::DataLossError("hpack: name");
    } else {
      HpackDynamicTable::EntryView e;
      if (Lookup(index, e)) {
        f.name.assign(e.name);
        f.name_unknown = e.name_unknown;
      } else {
        f.name_unknown = true;
      }
    }
    if (!DecodeString(block, pos, f.value)) return absl::DataLossError("hpack: value");
    if (indexing) Add(f.name, f.value, f.name_unknown);
  }
  return absl::OkStatus();
}

}  // namespace sonde::protocols::http2
