#pragma once
// Which of a set of intervals contain a given one, in O(log n) per answer:
// the intervals sorted by start, with a max-of-ends segment tree over that
// order. "The latest-starting interval that starts before S and ends after
// E" is the rightmost position in a prefix whose end reaches E, found by one
// descent. Trace assembly uses it to nest spans in time without comparing
// every pair (server/query/trace_assembler.cc).
#include <algorithm>
#include <cstdint>
#include <vector>

namespace sonde::server {

class ContainmentIndex {
 public:
  struct Interval {
    uint64_t start = 0;
    uint64_t end = 0;
    int id = 0;  // the caller's index
  };

  void Add(const Interval& iv) { items_.push_back(iv); }

  // After every Add: sorts by (start, id) and builds the tree.
  void Build() {
    std::sort(items_.begin(), items_.end(), [](const Interval& a, const Interval& b) {
      return a.start != b.start ? a.start < b.start : a.id < b.id;
    });
    size_ = 1;
    while (size_ < items_.size()) size_ <<= 1;
    max_end_.assign(2 * size_, 0);
    for (size_t i = 0; i < items_.size(); ++i) max_end_[size_ + i] = items_[i].end;
    for (size_t i = size_ - 1; i >= 1; --i) max_end_[i] = std::max(max_end_[2 * i], max_end_[2 * i + 1]);
  }

  size_t size() const { return items_.size(); }
  const Interval& at(size_t pos) const { return items_[pos]; }

  // Number of intervals starting at or before `start` (a prefix bound).
  size_t PrefixUpTo(uint64_t start) const {
    return static_cast<size_t>(
        std::upper_bound(items_.begin(), items_.end(), start,
                         [](uint64_t s, const Interval& iv) { return s < iv.start; }) -
        items_.begin());
  }

  // The largest position < `prefix` whose interval ends at or after
  // `min_end`; -1 if none.
  int RightmostEndingAfter(size_t prefix, uint64_t min_end) const {
    if (prefix == 0 || items_.empty()) return -1;
    return Descend(1, 0, size_, std::min(prefix, items_.size()), min_end);
  }

 private:
  int Descend(size_t node, size_t lo, size_t hi, size_t prefix, uint64_t min_end) const {
    if (lo >= prefix || max_end_[node] < min_end) return -1;
    if (hi - lo == 1) return static_cast<int>(lo);
    const size_t mid = (lo + hi) / 2;
    const int right = Descend(2 * node + 1, mid, hi, prefix, min_end);
    return right >= 0 ? right : Descend(2 * node, lo, mid, prefix, min_end);
  }

  std::vector<Interval> items_;
  std::vector<uint64_t> max_end_;
  size_t size_ = 1;
};

}  // namespace sonde::server
