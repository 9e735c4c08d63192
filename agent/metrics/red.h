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

#include "absl/container/flat_hash_map.h"
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
  std::string status;  // HTTP status code "100".."599", "grpc_<code>", "none"
  std::string scheme;        // "http" / "https" for HTTP-family protocols, "" otherwise
  auto Tie() const { return std::tie(service, protocol, kind, method, route, status, scheme); }
  bool operator<(const RedKey& o) const { return Tie() < o.Tie(); }
};

// A RedKey's fields without owning them: what a span is looked up by, so
// counting a request builds no strings.
struct RedKeyView {
  std::string_view service, protocol, kind, method, route, status, scheme;
};
// Counting every request hashes its key: a word-at-a-time multiply-mix over
// the six fields (~5x fewer instructions than absl::HashOf of the tuple).
size_t HashRedKey(const RedKeyView& k);
// Field by field, short fields (all of them, usually) compared a word at a
// time: seven memcmp calls were ~40 % of finding a request's series.
bool RedKeyViewsEqual(const RedKeyView& a, const RedKeyView& b);
struct RedKeyHash {
  using is_transparent = void;
  size_t operator()(const RedKeyView& k) const { return HashRedKey(k); }
  size_t operator()(const RedKey& k) const {
    return (*this)(RedKeyView{k.service, k.protocol, k.kind, k.method, k.route, k.status, k.scheme});
  }
};
struct RedKeyEq {
  using is_transparent = void;
  static RedKeyView View(const RedKey& k) {
    return {k.service, k.protocol, k.kind, k.method, k.route, k.status, k.scheme};
  }
  static RedKeyView View(const RedKeyView& k) { return k; }
  template <typename A, typename B>
  bool operator()(const A& a, const B& b) const { return RedKeyViewsEqual(View(a), View(b)); }
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
  // Series ids: totals_[id] and keys_[id]; windows count by id.
  struct OpenWindow {
    absl::flat_hash_map<uint32_t, RedSeries> series;
  };
  // The span's key; `status_buf` holds the status class text it points to.
  static RedKeyView KeyOf(const trace::Span& span, char (&status_buf)[16]);
  uint32_t SeriesId(const RedKeyView& key);  // under mu_
  RedWindow Close(uint64_t start, OpenWindow& w) const;

  RedOptions options_;
  mutable std::mutex mu_;
  absl::flat_hash_map<RedKey, uint32_t, RedKeyHash, RedKeyEq> ids_;
  std::vector<RedKey> keys_;
  std::vector<RedSeries> totals_;
  std::map<uint64_t, OpenWindow> open_;  // by window start
  uint64_t last_window_start_ = UINT64_MAX;
  OpenWindow* last_window_ = nullptr;    // open_[last_window_start_]
  std::deque<RedWindow> closed_;
  uint64_t overflowed_ = 0;
};

}  // namespace sonde::metrics
