#include "agent/protocols/http2/tolerant_hpack.h"

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

TolerantHpackDecoder::TolerantHpackDecoder(uint32_t max_table_size) : max_size_(max_table_size) {}

void TolerantHpackDecoder::LoseState() {
  entries_.clear();
  known_size_ = 0;
  unknown_tail_ = true;
}

bool TolerantHpackDecoder::fully_known() const {
  if (unknown_tail_) return false;
  for (const auto& e : entries_) {
    if (e.name_unknown) return false;
  }
  return true;
}

void TolerantHpackDecoder::EvictToFit() {
  while (!entries_.empty() && known_size_ > max_size_) {
    known_size_ -= entries_.back().size();
    entries_.pop_back();
  }
  // Older (unknown) entries are evicted before known ones: once the known
  // entries leave no room for even an empty entry, nothing unknown remains.
  if (unknown_tail_ && known_size_ + kHpackEntryOverhead > max_size_) unknown_tail_ = false;
}

void TolerantHpackDecoder::SetMaxSize(uint32_t size) {
  max_size_ = size;
  if (size == 0) unknown_tail_ = false;
  EvictToFit();
}

void TolerantHpackDecoder::Add(Entry entry) {
  const size_t size = entry.size();
  if (size > max_size_) {
    // RFC 7541 section 4.4: an entry larger than the table empties it.
    entries_.clear();
    known_size_ = 0;
    unknown_tail_ = false;
    return;
  }
  known_size_ += size;
  entries_.push_front(std::move(entry));
  EvictToFit();
}

bool TolerantHpackDecoder::Lookup(uint64_t index, std::string_view& name, std::string_view& value,
                                  bool& name_unknown) {
  name_unknown = false;
  if (index >= 1 && index <= kStaticTableSize) {
    name = kStaticTable[index - 1].name;
    value = kStaticTable[index - 1].value;
    return true;
  }
  const uint64_t d = index - kStaticTableSize - 1;
  if (index > kStaticTableSize && d < entries_.size()) {
    const Entry& e = entries_[d];
    name = e.name;
    value = e.value;
    name_unknown = e.name_unknown;
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
      std::string_view name, value;
      bool name_unknown = false;
      DecodedField& f = out.Add();
      if (Lookup(index, name, value, name_unknown)) {
        f.name.assign(name);
        f.value.assign(value);
        f.name_unknown = name_unknown;
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
      std::string_view name, value;
      bool name_unknown = false;
      if (Lookup(index, name, value, name_unknown)) {
        f.name.assign(name);
        f.name_unknown = name_unknown;
      } else {
        f.name_unknown = true;
      }
    }
    if (!DecodeString(block, pos, f.value)) return absl::DataLossError("hpack: value");
    if (indexing) Add(Entry{f.name, f.value, f.name_unknown});
  }
  return absl::OkStatus();
}

}  // namespace sonde::protocols::http2
