#pragma once
// Ships spans, metric windows, profiles and metadata to sonde-server over the
// sonde.v1.Ingest stream.
//
//  producers --OnSpan/Add*--> current batch --seal (size or time, on the
//  sender thread: serialising and compressing stay off the pipeline)--> queue
//                                                                     |
//        sender thread: connect, Hello, write every unsent batch  <---+
//        reader thread: acks pop batches off the queue front
//
// A batch leaves the queue only when the server acknowledged it (it is stored
// by then), so a server restart loses nothing still queued: after reconnecting
// the sender writes every unacknowledged batch again, and the server drops the
// ones it had already stored (same instance id, sequence <= stored).
// The queue is bounded by items (spans + records + windows + stacks); when
// full, new items are dropped and counted. Reconnects back off exponentially
// (capped) with jitter.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/export/disk_spool.h"
#include "agent/trace/span.h"
#include <grpcpp/security/credentials.h>

#include "sonde/v1/ingest.grpc.pb.h"

namespace sonde::exporter {

struct ExporterOptions {
  std::string target = "127.0.0.1:7070";
  v1::AgentIdentity identity;  // instance_id is generated when empty
  std::string token;
  // TLS to the server: a CA bundle to verify it (empty with a cert: the
  // system roots), and a client certificate + key when it requires one.
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  bool tls() const { return !tls_ca_file.empty() || !tls_cert_file.empty(); }
  size_t max_batch_items = 2000;
  size_t max_batch_bytes = 1 << 20;  // uncompressed
  std::chrono::milliseconds flush_interval{1000};
  size_t max_queued_items = 200000;
  v1::Compression compression = v1::COMPRESSION_ZLIB;
  // zlib level 1: on span batches 2.3x the speed of the default level 6 for a
  // 11:1 instead of 15:1 ratio (docs/performance.md, "Export").
  int compression_level = 1;
  std::chrono::milliseconds backoff_initial{100};
  std::chrono::milliseconds backoff_max{5000};
  size_t max_in_flight = 64;  // batches written but not yet acknowledged
  // On-disk queue (disk_spool.h): sealed batches survive an agent restart
  // until acknowledged; the instance id and sequence are kept with them.
  // Empty: memory only.
  std::string spool_dir;
  uint64_t spool_max_bytes = 256u << 20;
};

struct ExporterStats {
  uint64_t items_accepted = 0;
  uint64_t items_dropped_queue_full = 0;
  uint64_t items_acked = 0;
  uint64_t batches_sealed = 0;
  uint64_t batches_written = 0;  // including resends
  uint64_t batches_resent = 0;
  uint64_t batches_acked = 0;
  uint64_t batches_rejected = 0;  // acked with an error by the server
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t stream_failures = 0;
  uint64_t bytes_written = 0;
  uint64_t queued_items = 0;
  uint64_t queued_batches = 0;
  uint64_t items_restored = 0;     // loaded from the spool at start
  uint64_t items_not_spooled = 0;  // pushed out of the full spool (lost if the agent restarts)
  uint64_t spool_bytes = 0;
  uint64_t queued_bytes = 0;  // held in memory: open/unsealed batches (serialized size) + sealed requests
  bool connected = false;
};

class ServerExporter final : public trace::SpanSink {
 public:
  explicit ServerExporter(ExporterOptions options);
  ~ServerExporter() override;
  ServerExporter(const ServerExporter&) = delete;
  ServerExporter& operator=(const ServerExporter&) = delete;

  void Start();
  // Seals the open batch, waits up to `drain` for acknowledgements, stops.
  void Stop(std::chrono::milliseconds drain = std::chrono::milliseconds(2000));

  // trace::SpanSink: thread-safe, never blocks on the network.
  void OnSpan(const trace::Span& span) override;

  // Other payloads (already in wire form). Thread-safe.
  bool AddSpan(v1::Span span);
  bool AddRedWindow(v1::RedWindow window);
  bool AddTcpWindow(v1::TcpWindow window);
  bool AddProfileStacks(const v1::ProfileBatch& profile);
  void SetHostInfo(v1::HostInfo host);

  // Seals the open batch and waits until everything queued is acknowledged.
  bool Flush(std::chrono::milliseconds timeout);

  ExporterStats stats() const;
  // Bytes the queue holds in memory now (lock-free: a gauge for the OTLP
  // memory limiter, agent/otlp/memory_limiter.h).
  uint64_t queued_bytes() const { return held_bytes_.load(std::memory_order_relaxed); }
  const std::string& instance_id() const { return options_.identity.instance_id(); }

 private:
  struct Pending {
    uint64_t sequence = 0;
    size_t items = 0;
    v1::IngestRequest request;  // compressed batch, ready to write
    bool written = false;       // on the current stream
  };

  // Adds `items` to the open batch through `fill` (called under the lock).
  template <typename Fill>
  bool Append(size_t items, size_t bytes, Fill&& fill);
  // Serialises and compresses every full batch handed over by producers, and
  // the open batch too when `include_open`, in sequence order.
  void Seal(bool include_open = true);
  void SenderLoop();
  bool RunStream();  // one connection's lifetime; true if any batch was acked
  std::shared_ptr<grpc::ChannelCredentials> Credentials() const;  // TLS when configured
  void SleepBackoff(std::chrono::milliseconds* backoff);

  ExporterOptions options_;
  std::unique_ptr<DiskSpool> spool_;  // null: memory only; used under seal_mu_/mu_

  mutable std::mutex mu_;
  std::condition_variable cv_;
  v1::Batch open_;
  struct Unsealed {
    v1::Batch batch;
    size_t items = 0;
    size_t bytes = 0;
  };
  std::deque<Unsealed> to_seal_;  // full batches waiting for the sender thread
  size_t open_items_ = 0;
  size_t open_bytes_ = 0;
  std::chrono::steady_clock::time_point open_since_;
  bool host_pending_ = false;
  v1::HostInfo host_;
  std::deque<Pending> queue_;
  size_t queued_items_ = 0;  // in open_ + queue_
  uint64_t next_sequence_ = 1;
  ExporterStats stats_;
  bool stopping_ = false;
  bool stream_broken_ = false;

  std::mutex seal_mu_;  // keeps sealed batches in sequence order
  std::thread sender_;
  std::atomic<grpc::ClientContext*> active_context_{nullptr};
  std::atomic<uint64_t> held_bytes_{0};  // see queued_bytes()
};

}  // namespace sonde::exporter
