#pragma once
// A Storage decorator that counts every operation of the store behind it —
// calls, errors and a latency histogram per operation — for sonde-server's
// own /metrics (server/api/server_metrics.h). Backend-independent: it wraps
// SQLite and ClickHouse alike (outermost, so the trace join's rewriting is
// inside the measured write).
#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <type_traits>

#include "server/store/storage.h"

namespace sonde::server {

class MeteredStorage final : public Storage {
 public:
  enum Op {
    kWriteBatch,
    kEndpoints,
    kSearchTraces,
    kTrace,
    kRequestLog,
    kRequestRecords,
    kRedWindows,
    kSpanSamples,
    kTcpWindows,
    kStacks,
    kProcesses,
    kRetention,
    kOpCount
  };
  // Upper bounds (seconds) of the latency buckets; the last bucket is +Inf.
  static constexpr std::array<double, 10> kBucketsSeconds = {0.001, 0.0025, 0.005, 0.01, 0.025,
                                                             0.05,  0.1,    0.25,  1.0,  5.0};
  struct OpMetrics {
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> nanos{0};
    std::array<std::atomic<uint64_t>, kBucketsSeconds.size() + 1> buckets{};  // not cumulative
  };
  static const char* OpName(Op op);

  explicit MeteredStorage(std::unique_ptr<Storage> inner) : inner_(std::move(inner)) {}

  absl::StatusOr<bool> WriteBatch(const IngestContext& ctx, const v1::Batch& batch) override {
    return Measure(kWriteBatch, [&] { return inner_->WriteBatch(ctx, batch); });
  }
  absl::StatusOr<std::vector<EndpointSummary>> Endpoints(const EndpointQuery& q) override {
    return Measure(kEndpoints, [&] { return inner_->Endpoints(q); });
  }
  absl::StatusOr<std::vector<TraceSummary>> SearchTraces(const TraceQuery& q) override {
    return Measure(kSearchTraces, [&] { return inner_->SearchTraces(q); });
  }
  absl::StatusOr<std::vector<StoredSpan>> Trace(const std::string& trace_id) override {
    return Measure(kTrace, [&] { return inner_->Trace(trace_id); });
  }
  absl::StatusOr<std::vector<StoredSpan>> RequestLog(const RequestLogQuery& q) override {
    return Measure(kRequestLog, [&] { return inner_->RequestLog(q); });
  }
  absl::StatusOr<std::vector<v1::RequestRecord>> RequestRecords(const RequestLogQuery& q) override {
    return Measure(kRequestRecords, [&] { return inner_->RequestRecords(q); });
  }
  absl::StatusOr<std::vector<StoredRedWindow>> RedWindows(const RedQuery& q) override {
    return Measure(kRedWindows, [&] { return inner_->RedWindows(q); });
  }
  absl::StatusOr<std::vector<SpanSample>> SpanSamples(const RedQuery& q) override {
    return Measure(kSpanSamples, [&] { return inner_->SpanSamples(q); });
  }
  absl::StatusOr<std::vector<StoredTcpWindow>> TcpWindows(const TcpQuery& q) override {
    return Measure(kTcpWindows, [&] { return inner_->TcpWindows(q); });
  }
  absl::StatusOr<std::vector<StackValue>> Stacks(const ProfileQuery& q) override {
    return Measure(kStacks, [&] { return inner_->Stacks(q); });
  }
  absl::StatusOr<std::vector<ProcessRow>> Processes() override {
    return Measure(kProcesses, [&] { return inner_->Processes(); });
  }
  absl::StatusOr<RetentionResult> EnforceRetention(uint64_t now_ns, const RetentionPolicy& policy) override {
    return Measure(kRetention, [&] { return inner_->EnforceRetention(now_ns, policy); });
  }
  StorageStats Stats() override { return inner_->Stats(); }
  int schema_version() const override { return inner_->schema_version(); }

  const OpMetrics& metrics(Op op) const { return ops_[op]; }
  Storage& inner() { return *inner_; }

 private:
  template <typename Fn>
  std::invoke_result_t<Fn&> Measure(Op op, Fn&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    auto result = fn();
    Record(op, !result.ok(), std::chrono::steady_clock::now() - t0);
    return result;
  }
  void Record(Op op, bool error, std::chrono::steady_clock::duration took);

  std::unique_ptr<Storage> inner_;
  std::array<OpMetrics, kOpCount> ops_;
};

}  // namespace sonde::server
