// Reads one BPF ring buffer like libbpf's ring_buffer, a record at a time
// (peek, then advance), and publishes how far it has read once per batch of
// records instead of after every record: every producer reads that position
// when it reserves, so a per-record store made the cache line travel to the
// traced processes' CPUs for each event while the agent drained. Also says
// how much is waiting, from any thread (libbpf 1.1 has no accessor for that;
// ring__avail_data_size came in 1.3). RingSet (ring_set.h) merges several.
#pragma once

#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"

namespace sonde::bpf {

class RingConsumer {
 public:
  // Maps the ring of `ring_map_fd` (not owned; must outlive the consumer).
  static absl::StatusOr<std::unique_ptr<RingConsumer>> Open(int ring_map_fd, uint64_t size_bytes);
  ~RingConsumer();
  RingConsumer(const RingConsumer&) = delete;
  RingConsumer& operator=(const RingConsumer&) = delete;

  enum class Head {
    kRecord,  // *data / *size: the oldest committed record, not consumed yet
    kEmpty,   // nothing committed past the read position
    kBusy,    // the oldest record is reserved but not committed yet
  };
  // The oldest unread record (discarded ones are skipped). Calling it again
  // without Advance() returns the same record. Inline: it runs per record.
  Head Peek(const uint8_t** data, uint32_t* size) {
    for (;;) {
      if (read_pos_ >= producer_seen_) {
        producer_seen_ = __atomic_load_n(static_cast<const uint64_t*>(producer_area_), __ATOMIC_ACQUIRE);
        if (read_pos_ >= producer_seen_) return Head::kEmpty;
      }
      const uint8_t* hdr = data_ + (read_pos_ & mask_);
      const uint32_t len = __atomic_load_n(reinterpret_cast<const uint32_t*>(hdr), __ATOMIC_ACQUIRE);
      if (len & BPF_RINGBUF_BUSY_BIT) return Head::kBusy;
      const uint32_t sample = len & ~static_cast<uint32_t>(BPF_RINGBUF_DISCARD_BIT);
      next_pos_ = read_pos_ + ((static_cast<uint64_t>(sample) + BPF_RINGBUF_HDR_SZ + 7) & ~7ull);
      if (len & BPF_RINGBUF_DISCARD_BIT) {
        Advance();
        continue;
      }
      *data = hdr + BPF_RINGBUF_HDR_SZ;
      *size = sample;
      // The next record was written on another CPU (or long ago): start
      // fetching its head now, while this one is processed.
      const uint8_t* next = data_ + (next_pos_ & mask_);
      __builtin_prefetch(next);
      __builtin_prefetch(next + 64);
      return Head::kRecord;
    }
  }
  // Past the record Peek returned.
  void Advance() {
    read_pos_ = next_pos_;
    if (++unpublished_ == kPublishEvery) Publish();
  }
  // Tells the producers how far this consumer has read (Advance does it every
  // kPublishEvery records; call once a drain is over).
  void Publish();

  // Bytes committed or reserved but not yet consumed; safe from any thread.
  uint64_t waiting_bytes() const;

 private:
  struct Passkey {};  // only Open constructs

 public:
  explicit RingConsumer(Passkey) {}

 private:
  static constexpr unsigned kPublishEvery = 64;
  size_t page_ = 0;
  uint64_t size_ = 0;
  void* consumer_page_ = nullptr;  // RW: consumer position
  void* producer_area_ = nullptr;  // RO: producer position page, then the data twice
  const uint8_t* data_ = nullptr;  // the data pages (inside producer_area_)
  uint64_t mask_ = 0;
  uint64_t read_pos_ = 0;          // this thread's position, ahead of the published one
  uint64_t producer_seen_ = 0;     // last producer position loaded
  uint64_t next_pos_ = 0;          // past the peeked record (== read_pos_: none peeked)
  unsigned unpublished_ = 0;
};

}  // namespace sonde::bpf
