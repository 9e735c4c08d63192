// Reads a BPF ring buffer like libbpf's ring_buffer, but publishes how far
// it has read once per batch of records instead of after every record:
// every producer reads that position when it reserves, so a per-record
// store made the cache line travel to the traced processes' CPUs for each
// event while the agent drained. Also says how much is waiting, from any
// thread (libbpf 1.1 has no accessor for that; ring__avail_data_size came
// in 1.3).
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
  // Bytes committed or reserved but not yet consumed; safe from any thread.
  uint64_t waiting_bytes() const;
  uint64_t size_bytes() const { return size_; }

 private:
  struct Passkey {};  // only Open constructs

 public:
  explicit RingConsumer(Passkey) {}

 private:

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
