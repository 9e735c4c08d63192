#pragma once
// EventSource over events held in memory (tests and benchmarks).
#include <vector>

#include "agent/capture/event_source.h"

namespace sonde::testing {

class MemorySource final : public capture::EventSource {
 public:
  explicit MemorySource(std::vector<std::vector<uint8_t>> events, size_t batch = 256)
      : events_(std::move(events)), batch_(batch) {}
  absl::Status Poll(int, const capture::EventCallback& cb) override {
    if (next_ >= events_.size()) return absl::OutOfRangeError("end of events");
    for (size_t n = 0; n < batch_ && next_ < events_.size(); ++n, ++next_) {
      cb(events_[next_]);
      ++counters_.events;
    }
    return absl::OkStatus();
  }
  capture::SourceCounters counters() const override { return counters_; }
  void Rewind() { next_ = 0; }

 private:
  std::vector<std::vector<uint8_t>> events_;
  size_t batch_;
  size_t next_ = 0;
  capture::SourceCounters counters_;
};

}  // namespace sonde::testing
