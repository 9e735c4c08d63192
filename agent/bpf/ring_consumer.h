// Reads a BPF ring buffer like libbpf's ring_buffer, but publishes how far
// it has read once per batch of records instead of after every record:
// every producer reads that position when it reserves, so a per-record
// store made the cache line travel to the traced processes' CPUs for each
// event while the agent drained.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace sonde::bpf {

class RingConsumer {
 public:
  using Callback = int (*)(void* ctx, void* data, size_t size);  // < 0 stops the drain

  static absl::StatusOr<std::unique_ptr<RingConsumer>> Open(int ring_map_fd, uint64_t size_bytes, Callback callback,
                                                            void* ctx);
  ~RingConsumer();
  RingConsumer(const RingConsumer&) = delete;
  RingConsumer& operator=(const RingConsumer&) = delete;

  // Waits at most timeout_ms for a wake-up and consumes if there was one. Records consumed, or -errno.
  int Poll(int timeout_ms);
  // Every record available now. Records consumed, or the callback's negative result.
  int Consume();

 private:
  RingConsumer() = default;

  static constexpr unsigned kPublishEvery = 64;
  int epoll_fd_ = -1;
  size_t page_ = 0;
  uint64_t size_ = 0;
  void* consumer_page_ = nullptr;  // RW: consumer position
  void* producer_area_ = nullptr;  // RO: producer position page, then the data twice
  Callback callback_ = nullptr;
  void* ctx_ = nullptr;
};

}  // namespace sonde::bpf
