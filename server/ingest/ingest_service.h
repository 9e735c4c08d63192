#pragma once
// sonde.v1.Ingest: one bidirectional stream per agent connection. The first
// message must be a Hello (identity, optional token); each batch is stored
// atomically and then acknowledged, so an agent may drop a batch from its
// queue only once it is durable here.
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/store/storage.h"
#include "sonde/v1/ingest.grpc.pb.h"

namespace sonde::server {

// Inflates a CompressedBatch (zlib or gzip) and parses the Batch inside.
absl::StatusOr<v1::Batch> DecodeCompressedBatch(const v1::CompressedBatch& c,
                                                uint64_t max_uncompressed = 256u << 20);

struct IngestCounters {
  std::atomic<uint64_t> streams{0};
  std::atomic<uint64_t> batches{0};
  std::atomic<uint64_t> duplicate_batches{0};
  std::atomic<uint64_t> rejected_batches{0};
  std::atomic<uint64_t> spans{0};
  std::atomic<uint64_t> bytes{0};
};

class IngestService final : public v1::Ingest::Service {
 public:
  IngestService(Storage* storage, std::string token) : storage_(storage), token_(std::move(token)) {}

  grpc::Status Stream(grpc::ServerContext* context,
                      grpc::ServerReaderWriter<v1::IngestResponse, v1::IngestRequest>* stream) override;

  const IngestCounters& counters() const { return counters_; }

 private:
  Storage* storage_;
  std::string token_;
  IngestCounters counters_;
};

}  // namespace sonde::server
