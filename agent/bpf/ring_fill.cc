#include "agent/bpf/ring_fill.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace sonde::bpf {
namespace {

const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

uint64_t LoadPosition(const void* page) {
  return std::atomic_ref<const uint64_t>(*static_cast<const uint64_t*>(page)).load(std::memory_order_acquire);
}

}  // namespace

absl::StatusOr<RingFill> RingFill::Map(int ring_map_fd, uint64_t capacity_bytes) {
  void* consumer = mmap(nullptr, kPage, PROT_READ, MAP_SHARED, ring_map_fd, 0);
  if (consumer == MAP_FAILED) {
    return absl::InternalError(absl::StrCat("mapping the ring buffer's consumer page: ", std::strerror(errno)));
  }
  void* producer = mmap(nullptr, kPage, PROT_READ, MAP_SHARED, ring_map_fd, static_cast<off_t>(kPage));
  if (producer == MAP_FAILED) {
    const int err = errno;
    munmap(consumer, kPage);
    return absl::InternalError(absl::StrCat("mapping the ring buffer's producer page: ", std::strerror(err)));
  }
  return RingFill(consumer, producer, capacity_bytes == 0 ? 1 : capacity_bytes);
}

RingFill::RingFill(const void* consumer_page, const void* producer_page, uint64_t capacity)
    : consumer_page_(consumer_page), producer_page_(producer_page), capacity_(capacity) {}

RingFill::RingFill(RingFill&& other) noexcept
    : consumer_page_(std::exchange(other.consumer_page_, nullptr)),
      producer_page_(std::exchange(other.producer_page_, nullptr)),
      capacity_(other.capacity_) {}

RingFill& RingFill::operator=(RingFill&& other) noexcept {
  if (this != &other) {
    Unmap();
    consumer_page_ = std::exchange(other.consumer_page_, nullptr);
    producer_page_ = std::exchange(other.producer_page_, nullptr);
    capacity_ = other.capacity_;
  }
  return *this;
}

RingFill::~RingFill() { Unmap(); }

void RingFill::Unmap() {
  if (consumer_page_ != nullptr) munmap(const_cast<void*>(consumer_page_), kPage);
  if (producer_page_ != nullptr) munmap(const_cast<void*>(producer_page_), kPage);
  consumer_page_ = producer_page_ = nullptr;
}

uint64_t RingFill::waiting_bytes() const {
  if (consumer_page_ == nullptr) return 0;
  const uint64_t consumer = LoadPosition(consumer_page_);
  const uint64_t producer = LoadPosition(producer_page_);
  return producer > consumer ? producer - consumer : 0;
}

}  // namespace sonde::bpf
