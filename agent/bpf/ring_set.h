// One BPF ring buffer per CPU, read as one stream ordered by time.
//
// A ring shared by every CPU made each reserve in the kernel take the same
// spinlock and move the producer position and record headers between the
// producing CPUs' caches; with a ring per CPU each producer stays on its
// own cache lines. The price is the merge here: records of one socket can be
// written on different CPUs (its thread migrated), so they are delivered in
// timestamp order across the rings.
//
// Why a cut is enough: a drain takes the time T first and delivers only
// records stamped before T. A thread's next syscall starts after its
// previous record was committed, so if a record stamped before T is visible
// in one ring, the same thread's earlier records are visible in theirs. A
// ring whose oldest record is still being written (reserved, not committed)
// stops the whole drain for a moment: records behind it may be older than
// what the other rings hold.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/bpf/libbpf_raii.h"
#include "agent/bpf/ring_consumer.h"

namespace sonde::bpf {

class RingSet {
 public:
  using Callback = int (*)(void* ctx, const uint8_t* data, size_t size);  // < 0 stops the drain

  // Creates `count` ring-buffer maps of `ring_bytes` each (a power of two,
  // >= page size). Records are ordered by the CLOCK_MONOTONIC nanoseconds (a
  // u64) at `timestamp_offset` in each record; shorter records count as time 0.
  static absl::StatusOr<std::unique_ptr<RingSet>> Create(size_t count, uint64_t ring_bytes, size_t timestamp_offset,
                                                         Callback callback, void* ctx);
  ~RingSet();
  RingSet(const RingSet&) = delete;
  RingSet& operator=(const RingSet&) = delete;

  int ring_fd(size_t i) const { return fds_[i].get(); }

  // Waits at most timeout_ms for a wake-up from any ring. 1 woken, 0 timed out, or -errno.
  int Wait(int timeout_ms);
  // Every record committed now, in time order. Records delivered, or the callback's negative result.
  int Consume();
  // The fullest ring's waiting bytes over its size; safe from any thread.
  double MaxFillFraction() const;

 private:
  struct Passkey {};

 public:
  explicit RingSet(Passkey) {}

 private:
  enum class Refill { kQueued, kDone, kBusy };
  // Peeks ring's oldest record into heads_[ring] when it is stamped before the cut.
  Refill Queue(size_t ring, uint64_t cut_ns, bool* past_cut);

  std::vector<UniqueFd> fds_;
  std::vector<std::unique_ptr<RingConsumer>> rings_;
  UniqueFd epoll_;
  uint64_t ring_bytes_ = 0;
  size_t timestamp_offset_ = 0;
  Callback callback_ = nullptr;
  void* ctx_ = nullptr;
  struct HeadRecord {
    uint64_t ts = 0;
    const uint8_t* data = nullptr;
    uint32_t size = 0;
  };
  std::vector<HeadRecord> heads_;  // per ring: its oldest record, when queued
  std::vector<size_t> queued_;     // rings with a record below the cut
};

}  // namespace sonde::bpf
