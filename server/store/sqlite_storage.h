#pragma once
// Embedded default storage: one SQLite file in WAL mode under --data-dir.
// Writes go through one connection (batched transactions, persistent
// prepared statements); reads use a small pool of read-only connections so
// queries never wait for ingest. Spans are stored as one row per (trace id,
// batch): the trace's spans of that batch as one encoded blob plus the
// per-row facts searches filter on (see docs/server.md, "Storage"). Other
// rows keep filterable fields as columns and the rest as the agent's proto.
//
// Only server/store (and tests of this backend) include this header; everyone
// else opens storage through OpenStorage() in storage.h. The implementation
// is split by concern:
//   sqlite_storage.cc    connections (writer, reader pool), opening, stats
//   sqlite_schema.cc     tables, schema version check, migration from v1
//   sqlite_writes.cc     WriteBatch and its prepared statements
//   sqlite_queries.cc    the read queries
//   sqlite_retention.cc  EnforceRetention
//   span_chunk.{h,cc}    the span_chunks row format shared by writes and queries
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/store/sqlite_db.h"
#include "server/store/storage.h"

namespace sonde::server {

class SqliteStorage final : public Storage {
 public:
  static constexpr int kSchemaVersion = 2;

  using Options = StorageOptions;
  static absl::StatusOr<std::unique_ptr<SqliteStorage>> Open(const Options& options);
  ~SqliteStorage() override;

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
  absl::StatusOr<RetentionResult> EnforceRetention(uint64_t now_ns,
                                                   const RetentionPolicy& policy) override;
  StorageStats Stats() override;

  int schema_version() const override { return schema_version_; }

 private:
  class ReadLease;
  struct WriteStatements;
  explicit SqliteStorage(Options options);
  absl::Status Init();
  // The steps below run inside Init's transaction on the writer.
  absl::Status PrepareSchemaLocked();
  absl::Status PrepareWriteStatementsLocked();
  absl::Status MigrateV1Locked();
  absl::Status InsertBatchLocked(const IngestContext& ctx, const v1::Batch& batch);
  absl::Status InsertSpansLocked(const std::string& host, const v1::Span* const* spans, size_t n);
  absl::StatusOr<ReadLease> AcquireReader();
  void ReleaseReader(std::unique_ptr<sqlite::Database> db);

  Options options_;
  int schema_version_ = 0;

  std::mutex write_mu_;
  std::unique_ptr<sqlite::Database> writer_;
  std::unique_ptr<WriteStatements> stmts_;
  StorageStats stats_;

  std::mutex read_mu_;
  std::vector<std::unique_ptr<sqlite::Database>> readers_;
};

}  // namespace sonde::server
