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

HeaderList::HeaderList(const HeaderList& other) { *this = other; }

HeaderList& HeaderList::operator=(const HeaderList& other) {
  if (this == &other) return *this;
  Clear();
  Reserve(other.count_, other.used_);
  if (other.used_ > 0) std::memcpy(data_.get(), other.data_.get(), other.used_);
  if (other.count_ > 0) {
    std::memcpy(EntryAt(other.count_ - 1), other.EntryAt(other.count_ - 1), other.count_ * sizeof(Entry));
  }
  used_ = other.used_;
  count_ = other.count_;
  return *this;
}

HeaderList::HeaderList(HeaderList&& other) noexcept
    : data_(std::move(other.data_)), capacity_(other.capacity_), used_(other.used_), count_(other.count_) {
  other.capacity_ = other.used_ = other.count_ = 0;
}

HeaderList& HeaderList::operator=(HeaderList&& other) noexcept {
  if (this == &other) return *this;
  data_ = std::move(other.data_);
  capacity_ = other.capacity_;
  used_ = other.used_;
  count_ = other.count_;
  other.capacity_ = other.used_ = other.count_ = 0;
  return *this;
}

void HeaderList::Reserve(size_t fields, size_t bytes) {
  const size_t need = used_ + bytes + (count_ + fields) * sizeof(Entry);
  if (need <= capacity_) return;
  size_t cap = std::max<size_t>(need, size_t{capacity_} * 2);
  cap = (std::max<size_t>(cap, 64) + 15) & ~size_t{15};
  auto grown = std::make_unique_for_overwrite<char[]>(cap);
  if (used_ > 0) std::memcpy(grown.get(), data_.get(), used_);
  if (count_ > 0) {
    std::memcpy(grown.get() + cap - count_ * sizeof(Entry), EntryAt(count_ - 1), count_ * sizeof(Entry));
  }
  data_ = std::move(grown);
  capacity_ = static_cast<uint32_t>(cap);
}

uint32_t HeaderList::Append(std::string_view bytes) {
  const uint32_t offset = used_;
  if (!bytes.empty()) std::memcpy(data_.get() + used_, bytes.data(), bytes.size());
  used_ += static_cast<uint32_t>(bytes.size());
  return offset;
}

void HeaderList::Add(std::string_view name, std::string_view value, bool unknown) {
  Reserve(1, name.size() + value.size());
  const uint32_t name_offset = Append(name);
  const uint32_t value_offset = Append(value);
  Entry* e = EntryAt(count_++);
  e->name_offset = name_offset;
  e->name_size = static_cast<uint32_t>(name.size());
  e->value_offset = value_offset;
  e->value_size = static_cast<uint32_t>(value.size());
  e->unknown = unknown ? 1 : 0;
}

void HeaderList::SetValue(size_t index, std::string_view value) {
  Entry* e = EntryAt(index);
  if (value.size() <= e->value_size) {
    char* old = data_.get() + e->value_offset;
    std::memcpy(old, value.data(), value.size());
    std::memset(old + value.size(), 0, e->value_size - value.size());
  } else {
    std::memset(data_.get() + e->value_offset, 0, e->value_size);
    Reserve(0, value.size());  // may move the buffer: look the entry up again
    e = EntryAt(index);
    const uint32_t offset = Append(value);
    e->value_offset = offset;
  }
  e->value_size = static_cast<uint32_t>(value.size());
}

void HeaderList::Clear() {
  used_ = 0;
  count_ = 0;
}

const HeaderField HeaderList::operator[](size_t index) const {
  const Entry* e = EntryAt(index);
  const char* base = data_.get();
  return HeaderField{std::string_view(base + e->name_offset, e->name_size),
                     std::string_view(base + e->value_offset, e->value_size), e->unknown != 0};
}

std::optional<std::string_view> HeaderList::Find(std::string_view lowercase_name) const {
  const char* base = data_.get();
  for (size_t i = 0; i < count_; ++i) {
    const Entry* e = EntryAt(i);
    if (e->name_size == lowercase_name.size() &&
        std::memcmp(base + e->name_offset, lowercase_name.data(), e->name_size) == 0) {
      return std::string_view(base + e->value_offset, e->value_size);
    }
  }
  return std::nullopt;
}

}  // namespace sonde::protocols
