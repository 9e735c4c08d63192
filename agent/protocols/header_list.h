#pragma once
// The header fields of one message, stored compactly: all names and values
// live in one byte buffer and fields are offsets into it. A message costs two
// allocations however many fields it has (one per field pair before), which
// is what keeps HTTP parsing near memory speed. Fields are read as views;
// views stay valid until the list is modified, moved or destroyed.
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonde::protocols {

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

  // Room for `fields` fields holding `bytes` bytes of names and values.
  void Reserve(size_t fields, size_t bytes);
  // Appends a field whose name is already lowercase.
  void Add(std::string_view name, std::string_view value, bool unknown = false);
  // Fast path for text protocols: copy a whole message head once with
  // AssignBlock, then add fields that are views into that same `block`
  // (names are lowercased in the copy). One memcpy instead of one per field.
  void AssignBlock(std::string_view block, size_t expected_fields);
  void AddFromBlock(std::string_view block, std::string_view name, std::string_view value);
  // Replaces the value of field `index`; the old bytes are overwritten so a
  // redacted secret does not linger in memory that is shipped or dumped.
  void SetValue(size_t index, std::string_view value);
  void Clear();

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  // const: assigning to a field of the returned view would silently do nothing.
  const HeaderField operator[](size_t index) const;
  // First field named `lowercase_name`, if any.
  std::optional<std::string_view> Find(std::string_view lowercase_name) const;
  // Bytes held for names and values (memory accounting).
  size_t byte_size() const { return bytes_.size(); }

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
  const_iterator end() const { return {this, entries_.size()}; }

 private:
  struct Entry {
    uint32_t name_offset;
    uint32_t name_size;
    uint32_t value_offset;
    uint32_t value_size;
    bool unknown;
  };
  uint32_t Append(std::string_view bytes);

  std::string bytes_;
  std::vector<Entry> entries_;
};

}  // namespace sonde::protocols
