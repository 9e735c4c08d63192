#pragma once
// The header fields of one message, stored compactly: one allocation holds
// the names and values (growing from the front) and the fields as offsets
// (growing from the back). A message costs one allocation however many
// fields it has (two per field before), which is what keeps HTTP parsing near
// memory speed. Fields are read as views;
// views stay valid until the list is modified, moved or destroyed.
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sonde::protocols {

namespace header_list_detail {

// Owning handle on the one buffer of a HeaderList. Buffers of up to
// kPooledMaxBytes are rounded up to a power-of-two size class and recycled
// through a small per-thread cache (a bounded number per class, ~184 KiB at
// most per thread); larger ones are plain operator new/delete. Records are
// created and dropped in batches (tens of exchanges per TakeRecords), which
// overflows glibc's tcache (7 chunks a bin) into _int_malloc/_int_free and
// chunk consolidation: ~13 % of header-only HTTP/1 parsing. A buffer freed
// on another thread simply joins that thread's cache.
class Buffer {
 public:
  static constexpr size_t kPooledMaxBytes = 4096;

  Buffer() = default;
  // At least `bytes` bytes (16-byte aligned); capacity() says how many.
  static Buffer Allocate(size_t bytes);
  Buffer(Buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = std::exchange(other.data_, nullptr);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { Reset(); }

  char* get() const { return data_; }
  uint32_t capacity() const { return capacity_; }

  // Buffers cached by the calling thread (tests).
  static size_t CachedOnThisThread();

 private:
  Buffer(char* data, uint32_t capacity) : data_(data), capacity_(capacity) {}
  void Reset() {
    if (data_ != nullptr) Release(data_, capacity_);
    data_ = nullptr;
    capacity_ = 0;
  }
  static void Release(char* data, uint32_t capacity);

  char* data_ = nullptr;
  uint32_t capacity_ = 0;
};

}  // namespace header_list_detail

// A header field as read from a HeaderList (or written into one).
struct HeaderField {
  std::string_view name;   // lowercase
  std::string_view value;  // redacted values read "[REDACTED]"
  bool unknown = false;    // HTTP/2: referenced a lost HPACK dynamic-table entry
};

class HeaderList {
 public:
  HeaderList() = default;
  HeaderList(std::initializer_list<HeaderField> fields);
  HeaderList(const HeaderList& other);
  HeaderList& operator=(const HeaderList& other);
  HeaderList(HeaderList&& other) noexcept;
  HeaderList& operator=(HeaderList&& other) noexcept;
  ~HeaderList() = default;

  // Room for `fields` more fields holding `bytes` more bytes of names and values.
  void Reserve(size_t fields, size_t bytes);
  // Appends a field whose name is already lowercase.
  void Add(std::string_view name, std::string_view value, bool unknown = false);
  // Fast path for text protocols: copies a whole message head once and takes
  // `fields` (items with `.name`/`.value` views into `block`) as offsets into
  // that copy, lowercasing names there. One memcpy instead of one per field.
  template <typename Fields>
  void AssignParsedBlock(std::string_view block, const Fields& fields);
  // The same with the fields as offsets into `block` (items with
  // name_offset, name_size, value_offset and value_size).
  template <typename OffsetField>
  void AssignParsedOffsets(std::string_view block, const OffsetField* fields, size_t count);
  // Replaces the value of field `index`; the old bytes are overwritten so a
  // redacted secret does not linger in memory that is shipped or dumped.
  void SetValue(size_t index, std::string_view value);
  void Clear();

  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // const: assigning to a field of the returned view would silently do nothing.
  const HeaderField operator[](size_t index) const;
  // First field named `lowercase_name`, if any.
  std::optional<std::string_view> Find(std::string_view lowercase_name) const;
  // Bytes held for names and values (memory accounting).
  size_t byte_size() const { return used_; }
  // Those bytes. After AssignParsedBlock they are the block as given (names
  // lowercased), so offsets into the block stay valid in the copy.
  std::string_view bytes() const { return {data_.get(), used_}; }

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = HeaderField;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = HeaderField;
    const_iterator(const HeaderList* list, size_t index) : list_(list), index_(index) {}
    HeaderField operator*() const { return (*list_)[index_]; }
    const_iterator& operator++() {
      ++index_;
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator before = *this;
      ++index_;
      return before;
    }
    bool operator==(const const_iterator& other) const { return index_ == other.index_; }
    bool operator!=(const const_iterator& other) const { return index_ != other.index_; }

   private:
    const HeaderList* list_;
    size_t index_;
  };
  const_iterator begin() const { return {this, 0}; }
  const_iterator end() const { return {this, count_}; }

 private:
  struct Entry {
    uint32_t name_offset;
    uint32_t name_size;
    uint32_t value_offset;
    uint32_t value_size : 31;
    uint32_t unknown : 1;
  };
  static_assert(sizeof(Entry) == 16);

  // Entry i lives at the back of the buffer, i+1 entries from its end.
  Entry* EntryAt(size_t i) {
    return reinterpret_cast<Entry*>(data_.get() + data_.capacity()) - (i + 1);
  }
  const Entry* EntryAt(size_t i) const {
    return reinterpret_cast<const Entry*>(data_.get() + data_.capacity()) - (i + 1);
  }
  // Copies `bytes` after the used ones; the caller has reserved room.
  uint32_t Append(std::string_view bytes);
  // ASCII-lowercased copy of `size` bytes (dst may equal src).
  static void LowercaseCopy(char* dst, const char* src, size_t size);
  // Lowercases the name at `offset` of a block copied to `dst` from `src`
  // (`limit` bytes long), reading `src`.
  static void LowercaseName(char* dst, const char* src, size_t offset, size_t size, size_t limit);

  header_list_detail::Buffer data_;  // 16-byte aligned, capacity a multiple of 16
  uint32_t used_ = 0;             // bytes of names and values at the front
  uint32_t count_ = 0;            // entries at the back
  // Bit (size % 64) set for every name's size: Find of a name no field can
  // have (most lookups: trace context, request ids) is one test, not a walk.
  uint64_t name_sizes_ = 0;

  void NoteNameSize(size_t size) { name_sizes_ |= uint64_t{1} << (size & 63); }
};

namespace header_list_detail {

// ASCII-lowercase of a whole word at once (SWAR): a byte gets 0x20 when it
// is in 'A'..'Z'.
template <typename Word>
inline Word LowerAscii(Word x) {
  constexpr Word kOnes = static_cast<Word>(~Word{0}) / 0xff, kHigh = kOnes * 0x80;
  const Word low7 = x & static_cast<Word>(~kHigh);
  const Word at_least_a = low7 + kOnes * (0x80 - 'A');
  const Word above_z = low7 + kOnes * (0x80 - 'Z' - 1);
  return x | static_cast<Word>((at_least_a & ~above_z & ~x & kHigh) >> 2);
}

template <typename Word>
inline void LowerWord(char* dst, const char* src) {
  Word w;
  std::memcpy(&w, src, sizeof(w));
  w = LowerAscii(w);
  std::memcpy(dst, &w, sizeof(w));
}

}  // namespace header_list_detail

inline void HeaderList::LowercaseCopy(char* dst, const char* src, size_t size) {
  using header_list_detail::LowerWord;
  // Reads come from `src`, never from bytes just written: a load overlapping
  // a recent store would stall on store forwarding. Lowercasing is
  // idempotent, so the last word may overlap the one before it.
  if (size >= 8) {
    for (size_t i = 0; i + 8 <= size; i += 8) LowerWord<uint64_t>(dst + i, src + i);
    LowerWord<uint64_t>(dst + size - 8, src + size - 8);
  } else if (size >= 4) {
    LowerWord<uint32_t>(dst, src);
    LowerWord<uint32_t>(dst + size - 4, src + size - 4);
  } else {
    for (size_t i = 0; i < size; ++i) {
      const char c = src[i];
      dst[i] = static_cast<char>(c | (static_cast<unsigned char>(c - 'A') < 26 ? 0x20 : 0));
    }
  }
}

inline void HeaderList::LowercaseName(char* dst, const char* src, size_t offset, size_t size, size_t limit) {
#if defined(__SSE2__)
  // 16 bytes at a time, names within the block: bytes past the name are
  // stored back unchanged (they were copied from `src` already).
  if (offset + ((size + 15) & ~size_t{15}) <= limit) {
    static constexpr char kPrefix[32] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    const __m128i before_a = _mm_set1_epi8('A' - 1), after_z = _mm_set1_epi8('Z' + 1);
    const __m128i case_bit = _mm_set1_epi8(0x20);
    for (size_t i = 0; i < size; i += 16) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + offset + i));
      // Signed compares: bytes >= 0x80 are below 'A'.
      __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(v, before_a), _mm_cmplt_epi8(v, after_z));
      const size_t left = size - i;
      if (left < 16) {
        upper = _mm_and_si128(upper, _mm_loadu_si128(reinterpret_cast<const __m128i*>(kPrefix + 16 - left)));
      }
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + offset + i),
                       _mm_or_si128(v, _mm_and_si128(upper, case_bit)));
    }
    return;
  }
#else
  (void)limit;
#endif
  LowercaseCopy(dst + offset, src + offset, size);
}

template <typename Fields>
void HeaderList::AssignParsedBlock(std::string_view block, const Fields& fields) {
  Clear();
  const size_t n = std::size(fields);
  Reserve(n, block.size());
  std::memcpy(data_.get(), block.data(), block.size());
  used_ = static_cast<uint32_t>(block.size());
  for (const auto& f : fields) {
    Entry* e = EntryAt(count_++);
    e->name_offset = static_cast<uint32_t>(f.name.data() - block.data());
    e->name_size = static_cast<uint32_t>(f.name.size());
    e->value_offset = static_cast<uint32_t>(f.value.data() - block.data());
    e->value_size = static_cast<uint32_t>(f.value.size());
    e->unknown = 0;
    NoteNameSize(f.name.size());
    LowercaseName(data_.get(), block.data(), e->name_offset, f.name.size(), block.size());
  }
}

template <typename OffsetField>
void HeaderList::AssignParsedOffsets(std::string_view block, const OffsetField* fields, size_t count) {
  Clear();
  Reserve(count, block.size());
  char* const base = data_.get();
  std::memcpy(base, block.data(), block.size());
  used_ = static_cast<uint32_t>(block.size());
  Entry* e = EntryAt(0);
  for (size_t i = 0; i < count; ++i, --e) {
    const OffsetField& f = fields[i];
    e->name_offset = f.name_offset;
    e->name_size = f.name_size;
    e->value_offset = f.value_offset;
    e->value_size = f.value_size;
    e->unknown = 0;
    NoteNameSize(f.name_size);
    LowercaseName(base, block.data(), f.name_offset, f.name_size, block.size());
  }
  count_ = static_cast<uint32_t>(count);
}

}  // namespace sonde::protocols
