#include "agent/protocols/header_list.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

namespace sonde::protocols {

namespace header_list_detail {
namespace {

// Size classes 64, 128, ..., 4096 bytes and how many buffers of each a
// thread keeps (at most 32 KiB a class, 128 buffers).
constexpr int kMinShift = 6;
constexpr int kClasses = 7;
static_assert(size_t{1} << (kMinShift + kClasses - 1) == Buffer::kPooledMaxBytes);
constexpr uint32_t kMaxCached[kClasses] = {128, 128, 128, 64, 32, 16, 8};
constexpr uint32_t kFirstSlot[kClasses + 1] = {0, 128, 256, 384, 448, 480, 496, 504};
static_assert([] {
  for (int k = 0; k < kClasses; ++k) {
    if (kFirstSlot[k + 1] - kFirstSlot[k] != kMaxCached[k]) return false;
  }
  return true;
}());

// Trivially destructible, so it stays usable while the thread's other
// thread_local objects (which may own HeaderLists) are destroyed.
struct ThreadCache {
  char* slots[kFirstSlot[kClasses]];
  uint32_t count[kClasses];
  bool drainer_armed;
  bool dead;  // the thread is exiting: frees go straight to operator delete
};
constinit thread_local ThreadCache tl_cache{};

// Frees the cached buffers when the thread exits. Constructed (and its
// destructor registered) the first time the thread caches a buffer.
struct CacheDrainer {
  ~CacheDrainer() {
    ThreadCache& c = tl_cache;
    for (int k = 0; k < kClasses; ++k) {
      for (uint32_t i = 0; i < c.count[k]; ++i) {
        ::operator delete(c.slots[kFirstSlot[k] + i], size_t{1} << (kMinShift + k));
      }
      c.count[k] = 0;
    }
    c.dead = true;
  }
  bool armed = false;
};
thread_local CacheDrainer tl_drainer;

inline int ClassOf(size_t bytes) {
  return bytes <= (size_t{1} << kMinShift) ? 0 : static_cast<int>(std::bit_width(bytes - 1)) - kMinShift;
}

}  // namespace

Buffer Buffer::Allocate(size_t bytes) {
  if (bytes > kPooledMaxBytes) {
    const size_t cap = (bytes + 15) & ~size_t{15};
    return Buffer(static_cast<char*>(::operator new(cap)), static_cast<uint32_t>(cap));
  }
  const int k = ClassOf(bytes);
  const size_t cap = size_t{1} << (kMinShift + k);
  ThreadCache& c = tl_cache;
  if (c.count[k] > 0) return Buffer(c.slots[kFirstSlot[k] + --c.count[k]], static_cast<uint32_t>(cap));
  return Buffer(static_cast<char*>(::operator new(cap)), static_cast<uint32_t>(cap));
}

void Buffer::Release(char* data, uint32_t capacity) {
  ThreadCache& c = tl_cache;
  if (capacity <= kPooledMaxBytes && (capacity & (capacity - 1)) == 0 && !c.dead) {
    const int k = ClassOf(capacity);
    if (c.count[k] < kMaxCached[k]) {
      if (!c.drainer_armed) {
        tl_drainer.armed = true;  // first use constructs it: drained at thread exit
        c.drainer_armed = true;
      }
      c.slots[kFirstSlot[k] + c.count[k]++] = data;
      return;
    }
  }
  ::operator delete(data, capacity);
}

size_t Buffer::CachedOnThisThread() {
  size_t n = 0;
  for (uint32_t k : tl_cache.count) n += k;
  return n;
}

}  // namespace header_list_detail

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
  name_sizes_ = other.name_sizes_;
  return *this;
}

HeaderList::HeaderList(HeaderList&& other) noexcept
    : data_(std::move(other.data_)), used_(other.used_), count_(other.count_), name_sizes_(other.name_sizes_) {
  other.used_ = other.count_ = 0;
  other.name_sizes_ = 0;
}

HeaderList& HeaderList::operator=(HeaderList&& other) noexcept {
  if (this == &other) return *this;
  data_ = std::move(other.data_);
  used_ = other.used_;
  count_ = other.count_;
  name_sizes_ = other.name_sizes_;
  other.used_ = other.count_ = 0;
  other.name_sizes_ = 0;
  return *this;
}

void HeaderList::Reserve(size_t fields, size_t bytes) {
  const size_t need = used_ + bytes + (count_ + fields) * sizeof(Entry);
  if (need <= data_.capacity()) return;
  header_list_detail::Buffer grown =
      header_list_detail::Buffer::Allocate(std::max<size_t>(need, size_t{data_.capacity()} * 2));
  const size_t cap = grown.capacity();
  if (used_ > 0) std::memcpy(grown.get(), data_.get(), used_);
  if (count_ > 0) {
    std::memcpy(grown.get() + cap - count_ * sizeof(Entry), EntryAt(count_ - 1), count_ * sizeof(Entry));
  }
  data_ = std::move(grown);
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
  NoteNameSize(name.size());
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
  name_sizes_ = 0;
}

const HeaderField HeaderList::operator[](size_t index) const {
  const Entry* e = EntryAt(index);
  const char* base = data_.get();
  return HeaderField{std::string_view(base + e->name_offset, e->name_size),
                     std::string_view(base + e->value_offset, e->value_size), e->unknown != 0};
}

std::optional<std::string_view> HeaderList::Find(std::string_view lowercase_name) const {
  if (((name_sizes_ >> (lowercase_name.size() & 63)) & 1) == 0) return std::nullopt;
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
