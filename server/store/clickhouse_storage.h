#pragma once
// ClickHouse storage (sonde-server --storage clickhouse://HOST:8123/DB):
// several stateless sonde-server replicas may share one database. Rows use
// the same model as the SQLite store (span_chunk.h: one row per trace and
// batch with summary columns and the spans as one blob); tables are
// MergeTree partitioned by UTC day (retention drops whole days) with sort
// keys for the searches they serve; trace-by-id goes through a small table
// sorted by trace id that gives the time window to read (docs/scale-out.md).
// With ?cluster=NAME&shards=...: MergeTree tables `<table>_local` on every
// shard, Distributed tables `<table>` over them (trace rows sharded by trace
// id); queries and inserts go through the Distributed tables.
//
// Only server/store (and tests of this backend) include this header. The
// implementation is split by concern:
//   clickhouse_client.{h,cc}    HTTP interface, RowBinary, literals
//   clickhouse_storage.cc       opening, stats
//   clickhouse_schema.cc        tables and schema version
//   clickhouse_writes.cc        WriteBatch: batch claims (dedup across replicas) and inserts
//   clickhouse_queries.cc       the read queries
//   clickhouse_trace_join.cc    joining traces split across agents and replicas at read time
//   clickhouse_retention.cc     EnforceRetention (dropping day partitions)
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "server/store/clickhouse_client.h"
#include "server/store/storage.h"

namespace sonde::server {

struct ClickHouseOptions {
  std::string url;  // clickhouse://[user[:password]@]host[:port]/database
  // A batch claimed by another replica this recently is left to it (the
  // agent retries); older claims are taken over (that replica died).
  uint64_t claim_timeout_ns = 20'000'000'000ull;
  bool compress_spans = true;
  int zstd_level = -1;
  // Every SELECT's deadline, as ClickHouse's max_execution_time (whole
  // seconds, rounded up); past it the query fails with kDeadlineExceeded. 0: none.
  std::chrono::milliseconds query_timeout{30'000};
};

class ClickHouseStorage final : public Storage {
 public:
  static constexpr int kSchemaVersion = 1;

  static absl::StatusOr<std::unique_ptr<ClickHouseStorage>> Open(const ClickHouseOptions& options);
  ~ClickHouseStorage() override;

  absl::StatusOr<bool> WriteBatch(const IngestContext& ctx, const v1::Batch& batch) override;
  absl::StatusOr<std::vector<EndpointSummary>> Endpoints(const EndpointQuery& q) override;
  absl::StatusOr<std::vector<TraceSummary>> SearchTraces(const TraceQuery& q) override;
  absl::StatusOr<std::vector<StoredSpan>> Trace(const std::string& trace_id) override;
  absl::StatusOr<std::vector<StoredSpan>> RequestLog(const RequestLogQuery& q) override;
  absl::StatusOr<std::vector<v1::RequestRecord>> RequestRecords(const RequestLogQuery& q) override;
  absl::StatusOr<std::vector<StoredRedWindow>> RedWindows(const RedQuery& q) override;
  absl::StatusOr<std::vector<SpanSample>> SpanSamples(const RedQuery& q) override;
  absl::StatusOr<std::vector<StoredTcpWindow>> TcpWindows(const TcpQuery& q) override;
  absl::StatusOr<std::vector<StackValue>> Stacks(const ProfileQuery& q) override;
  absl::StatusOr<std::vector<ProcessRow>> Processes() override;
  absl::StatusOr<RetentionResult> EnforceRetention(uint64_t now_ns, const RetentionPolicy& policy) override;
  StorageStats Stats() override;
  int schema_version() const override { return kSchemaVersion; }

  // This process's id in batch claims (random per start).
  const std::string& replica_id() const { return replica_id_; }
  const std::string& server_version() const { return server_version_; }
  clickhouse::Client& client() { return *client_; }

 private:
  explicit ClickHouseStorage(ClickHouseOptions options, clickhouse::Endpoint endpoint);
  absl::Status Init();
  absl::Status CreateSchema();
  enum class Claim { kMine, kDuplicate, kBusy };
  absl::StatusOr<Claim> ClaimBatch(const IngestContext& ctx, uint64_t sequence, uint64_t now_ns);
  absl::Status MarkBatch(const IngestContext& ctx, uint64_t sequence, uint8_t state, uint64_t now_ns);
  absl::Status InsertBatch(const IngestContext& ctx, const v1::Batch& batch, uint64_t now_ns);
  // Spans of `trace_id` (raw bytes) with the hosts that sent them.
  absl::StatusOr<std::vector<StoredSpan>> TraceSpans(const std::string& trace_id);
  // The spans of other traces that hold the far side of an exchange in
  // `spans`, renamed into `trace_id` (clickhouse_trace_join.cc).
  absl::Status JoinOtherSides(const std::string& trace_id, std::vector<StoredSpan>* spans);

  ClickHouseOptions options_;
  std::unique_ptr<clickhouse::Client> client_;
  // With ?cluster=: one client per shard (local tables, retention); empty
  // otherwise, and the tables are local to client_'s server.
  std::vector<std::unique_ptr<clickhouse::Client>> shards_;
  std::string replica_id_;
  std::string server_version_;

  std::atomic<uint64_t> spans_{0};
  std::atomic<uint64_t> batches_{0};
  std::atomic<uint64_t> duplicates_{0};
};

}  // namespace sonde::server
