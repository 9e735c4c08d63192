#pragma once
// The server's storage interface. OpenStorage() opens the embedded default (a
// SQLite file); a networked backend implements the same interface. Callers
// outside server/store see only this header. Rows that the UI shows in
// detail are returned as the proto messages the agent sent (plus the host
// that sent them), so every backend shares one row model.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::server {

// Who sent a batch (from the stream's Hello).
struct IngestContext {
  std::string host;
  std::string node_id;
  std::string instance_id;  // scopes batch sequence numbers
  // A batch more than this over the instance's last stored sequence is
  // refused (kInvalidArgument): it would make the real agent's next batches
  // look like duplicates. 0: unchecked.
  uint64_t max_sequence_jump = 0;
};

struct TimeRange {
  uint64_t from_ns = 0;
  uint64_t to_ns = UINT64_MAX;
};

// A span as stored: the agent's message plus the host that sent it.
struct StoredSpan {
  v1::Span span;
  std::string host;
};

struct EndpointSummary {
  std::string service;
  std::string endpoint;
  int source = 0;  // v1::SpanSource
  int kind = 0;    // v1::SpanKind
  uint64_t count = 0;
  uint64_t errors = 0;
  uint64_t duration_sum_ns = 0;
  uint64_t duration_max_ns = 0;
};

struct EndpointQuery {
  TimeRange range;
  std::optional<std::string> service;
  std::optional<int> source;
  std::optional<int> kind;
};

// An attribute filter "key=value" (exact match on the text of the value).
struct AttributeFilter {
  std::string key;
  std::string value;
};

// Sonde's own traffic in the trace search and the request log: its
// components' spans (services sonde-server, sonde-agent) and clients' calls
// to the server's own listeners (the browser using the UI, agents shipping
// to it). Left out unless `include` (the UI's "Sonde's own", ?self=1).
struct SelfTraffic {
  bool include = false;
  // The server's listeners: address ("" = any address) and port.
  std::vector<std::pair<std::string, uint32_t>> listeners;
};

struct TraceQuery {
  TimeRange range;
  std::optional<std::string> service;
  std::optional<std::string> endpoint;  // substring match
  std::optional<int> http_status;       // exact status (e.g. 502)
  std::optional<int> status_class;      // 2..5 (e.g. 5 = 5xx)
  std::optional<bool> error;            // only spans that failed / succeeded
  std::optional<uint64_t> min_duration_ns;
  std::vector<AttributeFilter> attributes;  // all must match on one span
  SelfTraffic self;                         // a span of Sonde's own traffic never matches unless included
  int limit = 50;
};

struct TraceSummary {
  std::string trace_id;  // hex
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
  uint64_t span_count = 0;
  uint64_t error_count = 0;
  std::string root_service;  // the earliest span's service and endpoint
  std::string root_endpoint;
  std::string sources;  // e.g. "ASN"
};

struct RequestLogQuery {
  TimeRange range;
  std::optional<std::string> service;
  std::optional<std::string> endpoint;
  std::optional<int> status_class;
  std::optional<int> kind;
  SelfTraffic self;  // Sonde's own exchanges left out unless included
  int limit = 100;
};

struct RedQuery {
  TimeRange range;
  std::optional<std::string> service;
  std::optional<std::string> endpoint;
  std::optional<int> kind;  // span fallback only: v1::SpanKind
};

struct StoredRedWindow {
  v1::RedWindow window;
  std::string host;
};

// Per-span facts enough to build RED series when no agent sent RED windows.
struct SpanSample {
  uint64_t start_ns = 0;
  uint64_t duration_ns = 0;
  bool error = false;
};

struct TcpQuery {
  TimeRange range;
  std::optional<std::string> server_address;
  std::optional<uint32_t> server_port;
};

struct StoredTcpWindow {
  v1::TcpWindow window;
  std::string host;
};

struct ProfileQuery {
  TimeRange range;
  std::optional<uint32_t> pid;
  std::optional<std::string> host;
  int kind = v1::CPU_KIND_ON_CPU;
};

struct StackValue {
  std::string stack;
  uint64_t value = 0;
};

struct ProcessRow {
  std::string host;
  v1::ProcessInfo info;
  uint64_t last_seen_ns = 0;
};

struct RetentionPolicy {
  uint64_t spans_ns = 72ull * 3600 * 1000000000;    // spans, requests, profiles
  uint64_t metrics_ns = 7ull * 24 * 3600 * 1000000000;  // RED, TCP, OTLP metrics
};

struct RetentionResult {
  uint64_t spans_deleted = 0;
  uint64_t rows_deleted = 0;  // everything else
};

struct StorageStats {
  uint64_t spans = 0;
  uint64_t batches = 0;
  uint64_t duplicate_batches = 0;
};

class Storage {
 public:
  virtual ~Storage() = default;

  // Stores one batch atomically. Returns false when this (instance, sequence)
  // was stored before (a resend after a lost ack): nothing is written twice.
  virtual absl::StatusOr<bool> WriteBatch(const IngestContext& ctx, const v1::Batch& batch) = 0;

  virtual absl::StatusOr<std::vector<EndpointSummary>> Endpoints(const EndpointQuery& q) = 0;
  virtual absl::StatusOr<std::vector<TraceSummary>> SearchTraces(const TraceQuery& q) = 0;
  // trace_id: 16 raw bytes.
  virtual absl::StatusOr<std::vector<StoredSpan>> Trace(const std::string& trace_id) = 0;
  virtual absl::StatusOr<std::vector<StoredSpan>> RequestLog(const RequestLogQuery& q) = 0;
  virtual absl::StatusOr<std::vector<v1::RequestRecord>> RequestRecords(const RequestLogQuery& q) = 0;
  virtual absl::StatusOr<std::vector<StoredRedWindow>> RedWindows(const RedQuery& q) = 0;
  virtual absl::StatusOr<std::vector<SpanSample>> SpanSamples(const RedQuery& q) = 0;
  virtual absl::StatusOr<std::vector<StoredTcpWindow>> TcpWindows(const TcpQuery& q) = 0;
  virtual absl::StatusOr<std::vector<StackValue>> Stacks(const ProfileQuery& q) = 0;
  virtual absl::StatusOr<std::vector<ProcessRow>> Processes() = 0;

  virtual absl::StatusOr<RetentionResult> EnforceRetention(uint64_t now_ns,
                                                           const RetentionPolicy& policy) = 0;
  virtual StorageStats Stats() = 0;
  // Layout version of the stored data (logged at start).
  virtual int schema_version() const = 0;
};

// The embedded store: one SQLite file in WAL mode.
struct StorageOptions {
  std::string path;  // database file
  int read_connections = 4;
  bool synchronous_full = false;  // NORMAL is durable in WAL except on power loss
  bool compress_spans = true;     // zstd on each (trace, batch) span blob
  int zstd_level = -1;            // fast levels: same size as 1 here, ~25 % less CPU
  // Every read query's deadline (--query-timeout); past it the query fails
  // with kDeadlineExceeded (the API answers 504). 0: none.
  std::chrono::milliseconds query_timeout{30'000};
};

// Opens (creating or upgrading) the embedded store at options.path.
absl::StatusOr<std::unique_ptr<Storage>> OpenStorage(const StorageOptions& options);

// Hex text of raw id bytes (trace and span ids), and back; HexDecode returns
// false on bad input.
std::string HexEncode(std::string_view bytes);
bool HexDecode(std::string_view hex, std::string* out);

}  // namespace sonde::server
