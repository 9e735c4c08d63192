#pragma once
// The exporter's on-disk queue (issue #17): every sealed batch is written to
// a directory until the server acknowledges it, so a server outage and an
// agent restart in between lose nothing up to `max_bytes`. The directory also
// keeps the agent's instance id and next sequence number: after a restart
// the agent resumes its own sequence space and the server drops what it
// already stored. Thread-safe.
//   <dir>/instance             instance id
//   <dir>/next-sequence        first sequence not yet used
//   <dir>/<seq>-<items>.batch  a serialized IngestRequest (compressed batch)
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::exporter {

class DiskSpool {
 public:
  struct Batch {
    uint64_t sequence = 0;
    size_t items = 0;
    v1::IngestRequest request;
  };

  // Creates `dir` when missing; reads what a previous run left.
  static absl::StatusOr<std::unique_ptr<DiskSpool>> Open(const std::string& dir, uint64_t max_bytes);

  const std::string& instance_id() const { return instance_id_; }  // empty: none stored yet
  void SetInstanceId(const std::string& id);
  uint64_t next_sequence() const { return next_sequence_; }
  // Batches left by a previous run, oldest first (read once, at start).
  std::vector<Batch> TakeStored();

  // Writes one sealed batch (and the next sequence after it). Returns the
  // batches removed, oldest first, to stay within max_bytes: their items are lost.
  std::vector<Batch> Store(uint64_t sequence, size_t items, const v1::IngestRequest& request);
  // After the server acknowledged `sequence`.
  void Remove(uint64_t sequence);
  uint64_t bytes() const;

 private:
  DiskSpool(std::string dir, uint64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {}
  std::string PathOf(uint64_t sequence, size_t items) const;

  std::string dir_;
  uint64_t max_bytes_;
  std::string instance_id_;
  uint64_t next_sequence_ = 1;
  struct File {
    size_t items = 0;
    uint64_t bytes = 0;
  };
  mutable std::mutex mu_;  // Store (sealing thread) and Remove (ack reader) race
  std::map<uint64_t, File> files_;  // by sequence
  uint64_t bytes_ = 0;
  std::vector<Batch> stored_;
};

}  // namespace sonde::exporter
