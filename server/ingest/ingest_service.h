#pragma once
// sonde.v1.Ingest: one bidirectional stream per agent connection. The first
// message must be a Hello (identity, optional token); each batch is stored
// atomically and then acknowledged, so an agent may drop a batch from its
// queue only once it is durable here.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "server/ingest/batch_limits.h"
#include "server/store/storage.h"
#include "sonde/v1/ingest.grpc.pb.h"

namespace sonde::server {

// Inflates a CompressedBatch (zlib or gzip) incrementally, never past
// min(limits.max_uncompressed_bytes, kMaxInflateRatio x compressed bytes)
// whatever it claims, checks the batch's shape (batch_limits.h), then parses it.
absl::StatusOr<v1::Batch> DecodeCompressedBatch(const v1::CompressedBatch& c, const BatchLimits& limits = {});

struct IngestCounters {
  std::atomic<uint64_t> streams{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> duplicate_batches{0};
  std::atomic<uint64_t> rejected_batches{0};
  std::atomic<uint64_t> spans{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> refused_streams{0};  // over max_streams, or an instance already connected
  std::atomic<uint64_t> refused_disk_full{0};  // batches not stored below the free-disk watermark
};

struct IngestOptions {
  std::string token;  // shared secret in Hello (empty: none)
  BatchLimits batch;
  uint32_t max_streams = 64;  // concurrent agent streams; each holds a server thread
  // A stream that has not sent its Hello by then is cancelled: an idle
  // connection cannot hold one of the max_streams slots.
  std::chrono::milliseconds hello_timeout{10'000};
  // Free-disk watermark: below it batches are not stored (UNAVAILABLE, the
  // agent keeps and resends them), so the disk never fills completely and
  // retention keeps the room its deletes need (SQLite's WAL grows on DELETE).
  std::string disk_path;  // empty: not checked
  uint64_t min_free_disk_bytes = 512u << 20;
  std::function<uint64_t()> free_disk_bytes;  // tests; default: statvfs(disk_path)
};

class IngestService final : public v1::Ingest::Service {
 public:
  IngestService(Storage* storage, IngestOptions options);
  ~IngestService() override;
  IngestService(Storage* storage, std::string token) : IngestService(storage, IngestOptions{std::move(token)}) {}

  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<v1::IngestResponse, v1::IngestRequest>* stream) override;

  const IngestCounters& counters() const { return counters_; }

 private:
  // An instance id may stream on one connection at a time, and stays bound
  // to the client certificate identity that first used it (when clients
  // present certificates): nobody else can write into its sequence space.
  grpc::Status ClaimInstance(const std::string& instance_id, const std::string& peer_identity);
  void ReleaseInstance(const std::string& instance_id);
  // Free space under the watermark? Sampled at most once a second.
  bool DiskLow();
  std::atomic<int64_t> disk_checked_ns_{0};
  std::atomic<bool> disk_low_{false};

  // Cancels streams whose Hello is late (one thread for all streams).
  void WatchHellos();
  std::mutex hello_mu_;
  std::condition_variable hello_cv_;
  std::map<grpc::ServerContext*, std::chrono::steady_clock::time_point> awaiting_hello_;
  bool stopping_ = false;
  std::thread hello_watch_;

  Storage* storage_;
  IngestOptions options_;
  IngestCounters counters_;
  std::atomic<uint32_t> active_streams_{0};
  std::mutex instances_mu_;
  struct Instance {
    bool connected = false;
    std::string peer_identity;
  };
  std::unordered_map<std::string, Instance> instances_;
};

}  // namespace sonde::server
