#include "agent/protocols/http2/hpack.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace sonde::protocols::http2 {
namespace {
// Ceiling for size updates accepted from an encoder, whatever SETTINGS said.
constexpr uint32_t kMinAllowedTableSize = 65536;
constexpr uint32_t kMaxAllowedTableSize = 1u << 20;

void AppendInteger(std::string& out, uint8_t first_bits, int prefix_bits, uint64_t value) {
  const uint64_t mask = (1u << prefix_bits) - 1;
  if (value < mask) {
    out.push_back(static_cast<char>(first_bits | value));
    return;
  }
  out.push_back(static_cast<char>(first_bits | mask));
  value -= mask;
  while (value >= 128) {
    out.push_back(static_cast<char>(0x80 | (value & 0x7f)));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
}  // namespace

HpackBackend DefaultHpackBackend() {
  static const HpackBackend backend = [] {
    const char* env = std::getenv("SONDE_HPACK_BACKEND");
    return env != nullptr && std::string_view(env) == "nghttp2" ? HpackBackend::kNghttp2
                                                                : HpackBackend::kSonde;
  }();
  return backend;
}

HpackDecoder::HpackDecoder(HpackBackend backend)
    : backend_(backend), allowed_size_(kMinAllowedTableSize) {
  if (backend_ == HpackBackend::kNghttp2) {
    inflater_ = NewInflater();
    // Out of memory: the tolerant decoder (exact while its table is known) takes over.
    if (inflater_ == nullptr) backend_ = HpackBackend::kSonde;
  }
}

HpackDecoder::Inflater HpackDecoder::NewInflater() const {
  nghttp2_hd_inflater* raw = nullptr;
  if (nghttp2_hd_inflate_new(&raw) != 0) return nullptr;
  Inflater inflater(raw);
  // Raising the ceiling does not change the table (4096 until the encoder
  // sends a size update) and does not make nghttp2 demand an update.
  if (nghttp2_hd_inflate_change_table_size(inflater.get(), allowed_size_) != 0) return nullptr;
  return inflater;
}

void HpackDecoder::AllowTableSize(uint32_t size) {
  size = std::min(size, kMaxAllowedTableSize);
  if (size <= allowed_size_) return;
  allowed_size_ = size;
  if (inflater_ != nullptr) nghttp2_hd_inflate_change_table_size(inflater_.get(), size);
}

void HpackDecoder::LoseState() {
  ++counters_.state_losses;
  if (backend_ == HpackBackend::kSonde) {
    tolerant_.LoseState();
    degraded_ = true;
    return;
  }
  if (!degraded_) {
    // Keep the table size the exact decoder had reached: the best guess.
    tolerant_ = TolerantHpackDecoder(
        inflater_ != nullptr
            ? static_cast<uint32_t>(nghttp2_hd_inflate_get_max_dynamic_table_size(inflater_.get()))
            : kDefaultHeaderTableSize);
  }
  tolerant_.LoseState();
  inflater_.reset();
  degraded_ = true;
}

absl::Status HpackDecoder::DecodeExact(std::string_view block, DecodedFieldList& out) {
  auto* in = reinterpret_cast<uint8_t*>(const_cast<char*>(block.data()));
  size_t left = block.size();
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t rv = nghttp2_hd_inflate_hd2(inflater_.get(), &nv, &flags, in, left, 1);
    if (rv < 0) return absl::DataLossError(nghttp2_strerror(static_cast<int>(rv)));
    in += rv;
    left -= static_cast<size_t>(rv);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      // nghttp2's buffers change with the next call: copy into `out`.
      DecodedField& f = out.Add();
      f.name = out.Store(std::string_view(reinterpret_cast<const char*>(nv.name), nv.namelen));
      f.value = out.Store(std::string_view(reinterpret_cast<const char*>(nv.value), nv.valuelen));
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_.get());
      return absl::OkStatus();
    }
    if (rv == 0 && (flags & NGHTTP2_HD_INFLATE_EMIT) == 0) {
      return absl::DataLossError("hpack: inflater made no progress");
    }
  }
}

namespace {
void PutU32(std::string& out, uint32_t v) {
  for (int shift : {0, 8, 16, 24}) out.push_back(static_cast<char>(v >> shift));
}
bool GetU32(std::string_view& in, uint32_t& v) {
  if (in.size() < 4) return false;
  v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(in[static_cast<size_t>(i)])) << (8 * i);
  in.remove_prefix(4);
  return true;
}
}  // namespace

namespace {

// The known dynamic table as one header block that rebuilds it in a fresh
// decoder: a size update to the current capacity, then every entry oldest
// first as a literal with incremental indexing.
std::string ReplayBlock(const TolerantHpackDecoder& known) {
  std::string block;
  AppendInteger(block, 0x20, 5, known.max_table_size());
  const HpackDynamicTable& table = known.table();
  for (size_t i = table.count(); i-- > 0;) {
    const HpackDynamicTable::EntryView e = table.Get(i);
    block.push_back(0x40);
    AppendInteger(block, 0x00, 7, e.name.size());
    block += e.name;
    AppendInteger(block, 0x00, 7, e.value.size());
    block += e.value;
  }
  return block;
}

}  // namespace

bool HpackDecoder::Freeze(std::string& out) const {
  if (backend_ != HpackBackend::kSonde || degraded_ || !tolerant_.fully_known()) return false;
  const std::string block = ReplayBlock(tolerant_);
  PutU32(out, allowed_size_);
  PutU32(out, static_cast<uint32_t>(block.size()));
  out += block;
  return true;
}

bool HpackDecoder::Thaw(std::string_view& in) {
  uint32_t allowed = 0, size = 0;
  if (backend_ != HpackBackend::kSonde || !GetU32(in, allowed) || !GetU32(in, size) || in.size() < size) {
    return false;
  }
  AllowTableSize(allowed);
  DecodedFieldList scratch;
  const absl::Status st = Decode(in.substr(0, size), scratch);
  in.remove_prefix(size);
  counters_ = HpackCounters{};
  return st.ok() && !degraded_;
}

absl::Status HpackDecoder::Decode(std::string_view block, DecodedFieldList& out) {
  out.Clear();
  if (backend_ == HpackBackend::kNghttp2 && !degraded_) {
    const absl::Status st = DecodeExact(block, out);
    if (st.ok()) {
      ++counters_.blocks_exact;
      return st;
    }
    // nghttp2 refuses to continue after an error; whatever it applied to its
    // table before failing is unknowable, so the table is lost.
    ++counters_.exact_failures;
    out.Clear();
    LoseState();
  }
  const bool known_before = !degraded_;
  const uint64_t unknown_before = tolerant_.unknown_references();
  const absl::Status st = tolerant_.Decode(block, out);
  ++(known_before ? counters_.blocks_exact : counters_.blocks_degraded);
  if (tolerant_.unknown_references() != unknown_before) {
    for (const DecodedField& f : out) {
      if (f.unknown()) ++counters_.unknown_fields;
    }
  }
  if (!st.ok()) {
    ++counters_.malformed;
    LoseState();
    return st;
  }
  if (degraded_) TryRecover();
  return absl::OkStatus();
}

void HpackDecoder::TryRecover() {
  if (!tolerant_.fully_known()) return;
  if (backend_ == HpackBackend::kSonde) {
    degraded_ = false;
    ++counters_.recoveries;
    return;
  }
  // Replay the known table into a fresh nghttp2 inflater: a size update to
  // the current capacity, then every entry oldest first as a literal with
  // incremental indexing.
  Inflater fresh = NewInflater();
  if (fresh == nullptr) return;
  const std::string block = ReplayBlock(tolerant_);
  std::swap(inflater_, fresh);
  DecodedFieldList scratch;
  if (!DecodeExact(block, scratch).ok()) {
    inflater_.reset();  // stay degraded; the tolerant decoder is still exact
    return;
  }
  degraded_ = false;
  ++counters_.recoveries;
}

}  // namespace sonde::protocols::http2
