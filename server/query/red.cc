#include "server/query/red.h"

#include <algorithm>
#include <map>

namespace sonde::server {

double HistogramQuantile(const std::vector<uint64_t>& bounds, const std::vector<uint64_t>& counts,
                         double q) {
  uint64_t total = 0;
  for (auto c : counts) total += c;
  if (total == 0 || bounds.empty()) return 0;
  const double target = q * static_cast<double>(total);
  double cum = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double next = cum + static_cast<double>(counts[i]);
    if (next >= target && counts[i] > 0) {
      if (i >= bounds.size()) return static_cast<double>(bounds.back());
      const double lo = i == 0 ? 0.0 : static_cast<double>(bounds[i - 1]);
      const double hi = static_cast<double>(bounds[i]);
      return lo + (hi - lo) * (target - cum) / static_cast<double>(counts[i]);
    }
    cum = next;
  }
  return static_cast<double>(bounds.back());
}

namespace {
uint64_t StepOf(uint64_t t, const TimeRange& r, uint64_t step) {
  return t < r.from_ns ? r.from_ns : r.from_ns + (t - r.from_ns) / step * step;
}
}  // namespace

RedSeries SeriesFromWindows(const std::vector<StoredRedWindow>& windows, const TimeRange& range,
                            uint64_t step_ns) {
  struct Acc {
    uint64_t requests = 0, errors = 0;
    std::vector<uint64_t> bounds, counts;
  };
  std::map<uint64_t, Acc> steps;
  for (const auto& sw : windows) {
    const auto& w = sw.window;
    auto& acc = steps[StepOf(w.window_start_unix_ns(), range, step_ns)];
    acc.requests += w.requests();
    acc.errors += w.errors();
    std::vector<uint64_t> b(w.bucket_bounds_ns().begin(), w.bucket_bounds_ns().end());
    if (w.bucket_counts_size() != static_cast<int>(b.size()) + 1) continue;
    if (acc.bounds.empty()) {
      acc.bounds = b;
      acc.counts.assign(b.size() + 1, 0);
    }
    if (acc.bounds == b) {
      for (size_t i = 0; i < acc.counts.size(); ++i) acc.counts[i] += w.bucket_counts(static_cast<int>(i));
    } else {
      // Different layouts: re-bucket each count at its upper bound.
      for (size_t i = 0; i < b.size() + 1; ++i) {
        uint64_t v = i < b.size() ? b[i] : b.back() + 1;
        size_t k = static_cast<size_t>(std::lower_bound(acc.bounds.begin(), acc.bounds.end(), v) - acc.bounds.begin());
        acc.counts[k] += w.bucket_counts(static_cast<int>(i));
      }
    }
  }
  RedSeries out;
  const double secs = static_cast<double>(step_ns) / 1e9;
  for (const auto& [t, acc] : steps) {
    RedPoint p;
    p.t_ns = t;
    p.requests = acc.requests;
    p.errors = acc.errors;
    p.rate = static_cast<double>(acc.requests) / secs;
    p.error_rate = acc.requests ? static_cast<double>(acc.errors) / static_cast<double>(acc.requests) : 0;
    p.p50_ns = HistogramQuantile(acc.bounds, acc.counts, 0.50);
    p.p90_ns = HistogramQuantile(acc.bounds, acc.counts, 0.90);
    p.p99_ns = HistogramQuantile(acc.bounds, acc.counts, 0.99);
    out.points.push_back(p);
  }
  return out;
}

RedSeries SeriesFromSamples(const std::vector<SpanSample>& samples, const TimeRange& range,
                            uint64_t step_ns) {
  std::map<uint64_t, std::vector<const SpanSample*>> steps;
  for (const auto& s : samples) steps[StepOf(s.start_ns, range, step_ns)].push_back(&s);
  RedSeries out;
  out.source = "spans";
  const double secs = static_cast<double>(step_ns) / 1e9;
  for (auto& [t, v] : steps) {
    std::vector<uint64_t> d;
    d.reserve(v.size());
    RedPoint p;
    p.t_ns = t;
    for (const auto* s : v) {
      d.push_back(s->duration_ns);
      p.errors += s->error ? 1 : 0;
    }
    std::sort(d.begin(), d.end());
    p.requests = d.size();
    p.rate = static_cast<double>(p.requests) / secs;
    p.error_rate = static_cast<double>(p.errors) / static_cast<double>(p.requests);
    auto q = [&](double f) {
      size_t k = static_cast<size_t>(f * static_cast<double>(d.size() - 1) + 0.5);
      return static_cast<double>(d[std::min(k, d.size() - 1)]);
    };
    p.p50_ns = q(0.50);
    p.p90_ns = q(0.90);
    p.p99_ns = q(0.99);
    out.points.push_back(p);
  }
  return out;
}

}  // namespace sonde::server
