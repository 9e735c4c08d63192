#pragma once
// RED time series: request rate, error rate and latency percentiles per step,
// from the agents' RED windows (merged histograms) or, when no agent sent RED
// windows for the selection, from the stored spans themselves.
#include <cstdint>
#include <vector>

#include "server/store/storage.h"

namespace sonde::server {

struct RedPoint {
  uint64_t t_ns = 0;  // step start
  uint64_t requests = 0;
  uint64_t errors = 0;
  double rate = 0;        // requests per second
  double error_rate = 0;  // errors / requests (0..1)
  double p50_ns = 0, p90_ns = 0, p99_ns = 0;
};

struct RedSeries {
  std::vector<RedPoint> points;
  const char* source = "red";  // "red" (agent windows) or "spans"
};

// Cumulative histogram quantile with linear interpolation inside a bucket.
// counts.size() == bounds.size() + 1 (the last is the overflow bucket, whose
// quantiles report the last bound).
double HistogramQuantile(const std::vector<uint64_t>& bounds, const std::vector<uint64_t>& counts,
                         double q);

RedSeries SeriesFromWindows(const std::vector<StoredRedWindow>& windows, const TimeRange& range,
                            uint64_t step_ns);
RedSeries SeriesFromSamples(const std::vector<SpanSample>& samples, const TimeRange& range,
                            uint64_t step_ns);

}  // namespace sonde::server
