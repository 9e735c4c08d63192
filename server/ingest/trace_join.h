#pragma once
// Server-side trace join across agents. When the client of an exchange runs
// on one node and the server on another, no agent sees both ends: each ships
// its side in its own trace. Both sides carry what identifies the exchange:
// the client endpoint (address + port; DNAT rewrites only the server side)
// and the TCP sequence number of the first request byte. Whichever side
// arrives second, in any order and up to `delay` later, joins the trace of
// the side that arrived first:
//   - a server span arriving after its client span: its trace is renamed to
//     the client's and its parent becomes the client span;
//   - a client span arriving after its server span: its trace is renamed to
//     the server's (the stored server span keeps its empty parent; the trace
//     assembler draws the edge from the same evidence, server/query).
// Spans of a renamed trace arriving later (other batches of that agent, late
// flushes) are renamed too while the rename is remembered (`delay`).
//
// Application spans: an instrumented process that received no trace header
// starts a trace of its own (the SDK's root SERVER span). Its A server span
// and the agent's S server span of the same request (same host and pid, the
// A span inside the S span in time, the same url.path) are joined the same
// way (the second to arrive joins the first's trace); the trace assembler
// then puts the A span under the S span.
// Known gap: spans of the second side's trace stored before the joining span
// (another, earlier batch) keep the old trace id.
//
// Backend-independent: JoiningStorage wraps any Storage (SQLite, ClickHouse)
// and rewrites batches before they are written.
#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "server/store/storage.h"

namespace sonde::server {

struct TraceJoinOptions {
  bool enabled = true;
  uint64_t delay_ns = 60'000'000'000ull;   // how long one side waits for the other
  uint64_t max_skew_ns = 5'000'000'000ull;  // node clocks: the two sides' start times differ at most this
  size_t max_entries = 1'000'000;          // indexed sides + remembered renames
};

struct TraceJoinCounters {
  std::atomic<uint64_t> joins{0};          // exchanges joined across agents
  std::atomic<uint64_t> renamed_spans{0};  // spans whose trace id was rewritten
  std::atomic<uint64_t> evicted{0};        // index entries dropped at max_entries
  std::atomic<uint64_t> skewed{0};         // same key, times too far apart: not joined
  std::atomic<uint64_t> app_joins{0};      // A root server spans joined with their S server span
  std::atomic<uint64_t> app_ambiguous{0};  // several S server spans could hold the A span: not joined
};

class TraceJoiner {
 public:
  explicit TraceJoiner(TraceJoinOptions options = {}) : options_(options) {}

  // Joins the batch's spans with those seen before (`now_ns`: wall clock).
  // Returns the batch with trace ids / parents rewritten, or nothing when no
  // span of it changes (the common case: no copy). Thread-safe.
  // `host`: the sending agent's host (application spans join S spans of the
  // same host and process).
  std::optional<v1::Batch> Rewrite(const v1::Batch& batch, uint64_t now_ns, const std::string& host = "");

  const TraceJoinCounters& counters() const { return counters_; }
  const TraceJoinOptions& options() const { return options_; }
  size_t entries() const;

  struct Key {
    std::array<uint8_t, 16> client_addr{};
    uint32_t client_port = 0;
    uint32_t seq = 0;
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.client_addr, k.client_port, k.seq);
    }
  };
  // The exchange key of a system span with a request sequence number and a
  // parsable client endpoint.
  static bool KeyOf(const v1::Span& span, Key* key);

 private:
  // Ids as fixed-size values: indexing a span allocates nothing. Spans whose
  // ids have other lengths (not from an agent) take no part in the join.
  using TraceBytes = std::array<char, 16>;
  using SpanBytes = std::array<char, 8>;
  struct Side {
    TraceBytes trace{};
    SpanBytes span{};
    uint64_t start_ns = 0;
    uint64_t expires_ns = 0;
  };
  struct Rename {
    TraceBytes to{};
    uint64_t expires_ns = 0;
  };
  // A server span of one process, for the application-span join.
  struct ProcessSpan {
    TraceBytes trace{};
    uint64_t path_hash = 0;  // of url.path; 0: unknown
    uint64_t start_ns = 0, end_ns = 0;
    uint64_t expires_ns = 0;
  };
  struct ProcessSpans {
    std::deque<ProcessSpan> system;  // S server spans
    std::deque<ProcessSpan> app;     // A root server spans not joined yet
  };
  using HostProcesses = absl::flat_hash_map<uint32_t, ProcessSpans>;
  void JoinApplicationLocked(const v1::Span& span, HostProcesses& host, const TraceBytes& trace, uint64_t now_ns);
  void SweepProcessesLocked(uint64_t now_ns);
  struct Expiry {
    int table;  // 0 clients, 1 servers, 2 renames
    Key key;
    TraceBytes trace{};  // renames
    uint64_t at_ns;
  };
  void ExpireLocked(uint64_t now_ns);
  TraceBytes ResolveLocked(const TraceBytes& trace) const;
  void AddRenameLocked(const TraceBytes& from, const TraceBytes& to, uint64_t now_ns);
  bool CloseInTime(uint64_t a, uint64_t b) const;

  TraceJoinOptions options_;
  TraceJoinCounters counters_;
  mutable std::mutex mu_;
  absl::flat_hash_map<Key, Side> clients_;   // client sides waiting for their server side
  absl::flat_hash_map<Key, Side> servers_;   // root server sides waiting for their client side
  absl::flat_hash_map<TraceBytes, Rename> renames_;  // trace id -> the trace it joined
  // host -> pid -> recent server spans of that process (bounded per process).
  absl::flat_hash_map<std::string, HostProcesses> hosts_;
  size_t processes_ = 0;  // pids over all hosts
  std::deque<Expiry> expiry_;
};

// A Storage that joins traces across agents before writing (TraceJoiner),
// then delegates everything to `inner`.
class JoiningStorage final : public Storage {
 public:
  JoiningStorage(std::unique_ptr<Storage> inner, TraceJoinOptions options)
      : inner_(std::move(inner)), joiner_(options) {}

  absl::StatusOr<bool> WriteBatch(const IngestContext& ctx, const v1::Batch& batch) override;
  absl::StatusOr<std::vector<EndpointSummary>> Endpoints(const EndpointQuery& q) override {
    return inner_->Endpoints(q);
  }
  absl::StatusOr<std::vector<TraceSummary>> SearchTraces(const TraceQuery& q) override {
    return inner_->SearchTraces(q);
  }
  absl::StatusOr<std::vector<StoredSpan>> Trace(const std::string& trace_id) override {
    return inner_->Trace(trace_id);
  }
  absl::StatusOr<std::vector<StoredSpan>> RequestLog(const RequestLogQuery& q) override {
    return inner_->RequestLog(q);
  }
  absl::StatusOr<std::vector<v1::RequestRecord>> RequestRecords(const RequestLogQuery& q) override {
    return inner_->RequestRecords(q);
  }
  absl::StatusOr<std::vector<StoredRedWindow>> RedWindows(const RedQuery& q) override {
    return inner_->RedWindows(q);
  }
  absl::StatusOr<std::vector<SpanSample>> SpanSamples(const RedQuery& q) override {
    return inner_->SpanSamples(q);
  }
  absl::StatusOr<std::vector<StoredTcpWindow>> TcpWindows(const TcpQuery& q) override {
    return inner_->TcpWindows(q);
  }
  absl::StatusOr<std::vector<StackValue>> Stacks(const ProfileQuery& q) override { return inner_->Stacks(q); }
  absl::StatusOr<std::vector<ProcessRow>> Processes() override { return inner_->Processes(); }
  absl::StatusOr<RetentionResult> EnforceRetention(uint64_t now_ns, const RetentionPolicy& policy) override {
    return inner_->EnforceRetention(now_ns, policy);
  }
  StorageStats Stats() override { return inner_->Stats(); }
  int schema_version() const override { return inner_->schema_version(); }

  const TraceJoiner& joiner() const { return joiner_; }
  Storage& inner() { return *inner_; }

 private:
  std::unique_ptr<Storage> inner_;
  TraceJoiner joiner_;
};

}  // namespace sonde::server
