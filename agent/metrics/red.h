#pragma once
// RED metrics per (service, protocol, kind, method, route, status class):
// request count, error count and a latency histogram with the OTel semconv
// HTTP duration buckets. Cumulative totals for Prometheus, plus closed 1 s
// windows for exporters. Thread-safe: spans come from the pipeline thread,
// scrapes from the HTTP server thread.
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "agent/trace/span.h"

namespace sonde::metrics {

// OTel semantic conventions, http.server/client.request.duration (seconds).
inline constexpr std::array<double, 14> kDurationBuckets = {
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10};

struct RedKey {
  std::string service;
  std::string protocol;
  std::string kind;  // "server" / "client"
  std::string method;
  std::string route;
  std::string status_class;  // "2xx".."5xx", "grpc_<code>", "none"
  auto Tie() const { return std::tie(service, protocol, kind, method, route, status_class); }
  bool operator<(const RedKey& o) const { return Tie() < o.Tie(); }
};

struct RedSeries {
  uint64_t count = 0;
  uint64_t errors = 0;
  double sum_seconds = 0;
  std::array<uint64_t, kDurationBuckets.size() + 1> buckets{};  // last: +Inf
  void Add(double seconds, bool error);
  void Merge(const RedSeries& o);
};

struct RedWindow {
  uint64_t start_unix_ns = 0;
  uint64_t duration_ns = 0;
  std::map<RedKey, RedSeries> series;
};

struct RedOptions {
  uint64_t window_ns = 1'000'000'000;
  uint64_t late_grace_ns = 2'000'000'000;  // spans may arrive this late for a window
  size_t max_series = 10000;               // beyond: route "{overflow}"
  size_t max_closed_windows = 300;
};

class RedAggregator final : public trace::SpanSink {
 public:
  explicit RedAggregator(RedOptions options = {}) : options_(options) {}
  void OnSpan(const trace::Span& span) override;
  // Closes windows older than now - grace (`now_unix_ns`: wall clock).
  void Tick(uint64_t now_unix_ns);
  std::vector<RedWindow> TakeClosedWindows();
  // Cumulative totals in the Prometheus text format.
  void AppendPrometheus(std::string& out) const;
  std::map<RedKey, RedSeries> Totals() const;
  uint64_t overflowed() const;

 private:
  static RedKey KeyOf(const trace::Span& span);
  RedOptions options_;
  mutable std::mutex mu_;
  std::map<RedKey, RedSeries> totals_;
  std::map<uint64_t, RedWindow> open_;  // by window start
  std::deque<RedWindow> closed_;
  uint64_t overflowed_ = 0;
};

// Text-format helpers shared with other metric producers.
std::string EscapeLabelValue(std::string_view v);

}  // namespace sonde::metrics
