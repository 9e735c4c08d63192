#include "agent/protocols/header_list.h"

#include <algorithm>
#include <cstring>

namespace sonde::protocols {

HeaderList::HeaderList(std::initializer_list<HeaderField> fields) {
  size_t bytes = 0;
  for (const HeaderField& f : fields) bytes += f.name.size() + f.value.size();
  Reserve(fields.size(), bytes);
  for (const HeaderField& f : fields) Add(f.name, f.value, f.unknown);
}

void HeaderList::Reserve(size_t fields, size_t bytes) {
  entries_.reserve(entries_.size() + fields);
  bytes_.reserve(bytes_.size() + bytes);
}

uint32_t HeaderList::Append(std::string_view bytes) {
  const auto offset = static_cast<uint32_t>(bytes_.size());
  bytes_.append(bytes);
  return offset;
}

void HeaderList::Add(std::string_view name, std::string_view value, bool unknown) {
  Entry& e = entries_.emplace_back();
  e.name_offset = Append(name);
  e.name_size = static_cast<uint32_t>(name.size());
  e.value_offset = Append(value);
  e.value_size = static_cast<uint32_t>(value.size());
  e.unknown = unknown;
}

void HeaderList::AssignBlock(std::string_view block, size_t expected_fields) {
  entries_.clear();
  entries_.reserve(expected_fields);
  bytes_.assign(block);
}

void HeaderList::AddFromBlock(std::string_view block, std::string_view name, std::string_view value) {
  Entry& e = entries_.emplace_back();
  e.name_offset = static_cast<uint32_t>(name.data() - block.data());
  e.name_size = static_cast<uint32_t>(name.size());
  e.value_offset = static_cast<uint32_t>(value.data() - block.data());
  e.value_size = static_cast<uint32_t>(value.size());
  e.unknown = false;
  char* p = bytes_.data() + e.name_offset;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = p[i];
    p[i] = static_cast<char>(c | (static_cast<unsigned char>(c - 'A') < 26 ? 0x20 : 0));
  }
}

void HeaderList::SetValue(size_t index, std::string_view value) {
  Entry& e = entries_[index];
  char* old = bytes_.data() + e.value_offset;
  if (value.size() <= e.value_size) {
    std::memcpy(old, value.data(), value.size());
    std::memset(old + value.size(), 0, e.value_size - value.size());
  } else {
    std::memset(old, 0, e.value_size);
    e.value_offset = Append(value);
  }
  e.value_size = static_cast<uint32_t>(value.size());
}

void HeaderList::Clear() {
  entries_.clear();
  bytes_.clear();
}

const HeaderField HeaderList::operator[](size_t index) const {
  const Entry& e = entries_[index];
  return HeaderField{std::string_view(bytes_).substr(e.name_offset, e.name_size),
                     std::string_view(bytes_).substr(e.value_offset, e.value_size), e.unknown};
}

std::optional<std::string_view> HeaderList::Find(std::string_view lowercase_name) const {
  const std::string_view all(bytes_);
  for (const Entry& e : entries_) {
    if (e.name_size == lowercase_name.size() &&
        std::memcmp(all.data() + e.name_offset, lowercase_name.data(), e.name_size) == 0) {
      return all.substr(e.value_offset, e.value_size);
    }
  }
  return std::nullopt;
}

}  // namespace sonde::protocols
