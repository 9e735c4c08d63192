#include "agent/bpf/ring_consumer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sonde::bpf {
namespace {

uint64_t LoadAcquire(const void* p) { return __atomic_load_n(static_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE); }

}  // namespace

absl::StatusOr<std::unique_ptr<RingConsumer>> RingConsumer::Open(int ring_map_fd, uint64_t size_bytes) {
  auto r = std::make_unique<RingConsumer>(Passkey{});
  r->page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  r->size_ = size_bytes;
  void* cons = mmap(nullptr, r->page_, PROT_READ | PROT_WRITE, MAP_SHARED, ring_map_fd, 0);
  if (cons == MAP_FAILED) return absl::InternalError(absl::StrCat("mapping the ring's consumer page: ", std::strerror(errno)));
  r->consumer_page_ = cons;
  // The data pages are mapped twice in a row by the kernel: a record that
  // wraps around the end reads as one contiguous block.
  void* prod = mmap(nullptr, r->page_ + 2 * size_bytes, PROT_READ, MAP_SHARED, ring_map_fd, static_cast<off_t>(r->page_));
  if (prod == MAP_FAILED) return absl::InternalError(absl::StrCat("mapping the ring's data: ", std::strerror(errno)));
  r->producer_area_ = prod;
  r->data_ = static_cast<const uint8_t*>(prod) + r->page_;
  r->mask_ = size_bytes - 1;
  r->read_pos_ = r->next_pos_ = LoadAcquire(cons);
  return r;
}

RingConsumer::~RingConsumer() {
  if (producer_area_ != nullptr) munmap(producer_area_, page_ + 2 * size_);
  if (consumer_page_ != nullptr) munmap(consumer_page_, page_);
}

uint64_t RingConsumer::waiting_bytes() const {
  const uint64_t consumer = LoadAcquire(consumer_page_);
  const uint64_t producer = LoadAcquire(producer_area_);
  return producer > consumer ? producer - consumer : 0;
}

void RingConsumer::Publish() {
  __atomic_store_n(static_cast<uint64_t*>(consumer_page_), read_pos_, __ATOMIC_RELEASE);
  unpublished_ = 0;
}

}  // namespace sonde::bpf
