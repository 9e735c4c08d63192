// How full a BPF ring buffer is, read from its position pages without
// consuming anything: the kernel maps the consumer position at offset 0 and
// the producer position one page further; the bytes between them are
// waiting. libbpf 1.1 has no accessor for this (ring__avail_data_size came
// in 1.3), so the two pages are mapped read-only here.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace sonde::bpf {

class RingFill {
 public:
  static absl::StatusOr<RingFill> Map(int ring_map_fd, uint64_t capacity_bytes);
  RingFill(RingFill&& other) noexcept;
  RingFill& operator=(RingFill&& other) noexcept;
  RingFill(const RingFill&) = delete;
  RingFill& operator=(const RingFill&) = delete;
  ~RingFill();

  uint64_t waiting_bytes() const;
  double fraction() const { return static_cast<double>(waiting_bytes()) / static_cast<double>(capacity_); }

 private:
  RingFill(const void* consumer_page, const void* producer_page, uint64_t capacity);
  void Unmap();

  const void* consumer_page_ = nullptr;
  const void* producer_page_ = nullptr;
  uint64_t capacity_ = 1;
};

}  // namespace sonde::bpf
