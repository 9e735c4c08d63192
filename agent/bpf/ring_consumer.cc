#include "agent/bpf/ring_consumer.h"

#include <linux/bpf.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sonde::bpf {
namespace {

uint64_t LoadAcquire(const void* p) { return __atomic_load_n(static_cast<const uint64_t*>(p), __ATOMIC_ACQUIRE); }

}  // namespace

absl::StatusOr<std::unique_ptr<RingConsumer>> RingConsumer::Open(int ring_map_fd, uint64_t size_bytes,
                                                                  Callback callback, void* ctx) {
  auto r = std::make_unique<RingConsumer>(Passkey{});
  r->page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  r->size_ = size_bytes;
  r->callback_ = callback;
  r->ctx_ = ctx;
  void* cons = mmap(nullptr, r->page_, PROT_READ | PROT_WRITE, MAP_SHARED, ring_map_fd, 0);
  if (cons == MAP_FAILED) return absl::InternalError(absl::StrCat("mapping the ring's consumer page: ", std::strerror(errno)));
  r->consumer_page_ = cons;
  // The data pages are mapped twice in a row by the kernel: a record that
  // wraps around the end reads as one contiguous block.
  void* prod = mmap(nullptr, r->page_ + 2 * size_bytes, PROT_READ, MAP_SHARED, ring_map_fd, static_cast<off_t>(r->page_));
  if (prod == MAP_FAILED) return absl::InternalError(absl::StrCat("mapping the ring's data: ", std::strerror(errno)));
  r->producer_area_ = prod;
  r->epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (r->epoll_fd_ < 0) return absl::InternalError(absl::StrCat("epoll_create1: ", std::strerror(errno)));
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (epoll_ctl(r->epoll_fd_, EPOLL_CTL_ADD, ring_map_fd, &ev) != 0) {
    return absl::InternalError(absl::StrCat("epoll on the ring: ", std::strerror(errno)));
  }
  return r;
}

RingConsumer::~RingConsumer() {
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (producer_area_ != nullptr) munmap(producer_area_, page_ + 2 * size_);
  if (consumer_page_ != nullptr) munmap(consumer_page_, page_);
}

int RingConsumer::Poll(int timeout_ms) {
  epoll_event ev{};
  const int ready = epoll_wait(epoll_fd_, &ev, 1, timeout_ms);
  if (ready < 0) return errno == EINTR ? 0 : -errno;
  return ready > 0 ? Consume() : 0;  // like libbpf: the records of a wake-up at once
}

uint64_t RingConsumer::waiting_bytes() const {
  const uint64_t consumer = LoadAcquire(consumer_page_);
  const uint64_t producer = LoadAcquire(producer_area_);
  return producer > consumer ? producer - consumer : 0;
}

int RingConsumer::Consume() {
  auto* consumer_pos = static_cast<uint64_t*>(consumer_page_);
  const uint8_t* data = static_cast<const uint8_t*>(producer_area_) + page_;
  const uint64_t mask = size_ - 1;
  uint64_t cons = *consumer_pos;  // this thread is the only writer
  int consumed = 0;
  unsigned unpublished = 0;
  int result = 0;
  for (bool more = true; more;) {
    const uint64_t prod = LoadAcquire(producer_area_);
    more = false;
    while (cons < prod) {
      const void* hdr = data + (cons & mask);
      const uint32_t len = __atomic_load_n(static_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
      if (len & BPF_RINGBUF_BUSY_BIT) break;  // reserved, not committed yet
      const uint32_t sample = len & ~static_cast<uint32_t>(BPF_RINGBUF_DISCARD_BIT);
      cons += (static_cast<uint64_t>(sample) + BPF_RINGBUF_HDR_SZ + 7) & ~7ull;
      if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
        const int rc = callback_(ctx_, const_cast<uint8_t*>(static_cast<const uint8_t*>(hdr)) + BPF_RINGBUF_HDR_SZ,
                                 sample);
        if (rc < 0) {
          result = rc;
          break;
        }
        ++consumed;
      }
      if (++unpublished == kPublishEvery) {
        __atomic_store_n(consumer_pos, cons, __ATOMIC_RELEASE);
        unpublished = 0;
      }
      more = true;
    }
    if (result < 0) break;
  }
  __atomic_store_n(consumer_pos, cons, __ATOMIC_RELEASE);
  return result < 0 ? result : consumed;
}

}  // namespace sonde::bpf
