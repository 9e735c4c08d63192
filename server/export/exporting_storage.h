#pragma once
// A Storage decorator that hands every newly stored batch (not resends the
// store dropped as duplicates) to the exporters: Prometheus remote write,
// OTLP. It wraps the backend directly, inside the trace join, so exporters
// see the batch as stored (trace ids joined). Queries pass through.
#include <functional>
#include <memory>
#include <vector>

#include "server/store/storage.h"

namespace sonde::server {

class ExportingStorage final : public Storage {
 public:
  using Sink = std::function<void(const IngestContext& ctx, const v1::Batch& batch)>;
  ExportingStorage(std::unique_ptr<Storage> inner, std::vector<Sink> sinks)
      : inner_(std::move(inner)), sinks_(std::move(sinks)) {}

  absl::StatusOr<bool> WriteBatch(const IngestContext& ctx, const v1::Batch& batch) override {
    auto stored = inner_->WriteBatch(ctx, batch);
    if (stored.ok() && *stored)
      for (const auto& sink : sinks_) sink(ctx, batch);
    return stored;
  }
  absl::StatusOr<std::vector<EndpointSummary>> Endpoints(const EndpointQuery& q) override { return inner_->Endpoints(q); }
  absl::StatusOr<std::vector<TraceSummary>> SearchTraces(const TraceQuery& q) override {
    return inner_->SearchTraces(q);
  }
  absl::StatusOr<std::vector<StoredSpan>> Trace(const std::string& trace_id) override { return inner_->Trace(trace_id); }
  absl::StatusOr<std::vector<StoredSpan>> RequestLog(const RequestLogQuery& q) override {
    return inner_->RequestLog(q);
  }
  absl::StatusOr<std::vector<v1::RequestRecord>> RequestRecords(const RequestLogQuery& q) override {
    return inner_->RequestRecords(q);
  }
  absl::StatusOr<std::vector<StoredRedWindow>> RedWindows(const RedQuery& q) override { return inner_->RedWindows(q); }
  absl::StatusOr<std::vector<SpanSample>> SpanSamples(const RedQuery& q) override { return inner_->SpanSamples(q); }
  absl::StatusOr<std::vector<StoredTcpWindow>> TcpWindows(const TcpQuery& q) override { return inner_->TcpWindows(q); }
  absl::StatusOr<std::vector<StackValue>> Stacks(const ProfileQuery& q) override { return inner_->Stacks(q); }
  absl::StatusOr<std::vector<ProcessRow>> Processes() override { return inner_->Processes(); }
  absl::StatusOr<RetentionResult> EnforceRetention(uint64_t now_ns, const RetentionPolicy& policy) override {
    return inner_->EnforceRetention(now_ns, policy);
  }
  StorageStats Stats() override { return inner_->Stats(); }
  int schema_version() const override { return inner_->schema_version(); }

 private:
  std::unique_ptr<Storage> inner_;
  std::vector<Sink> sinks_;
};

}  // namespace sonde::server
