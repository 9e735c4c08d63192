#pragma once
// Recorded event files: the exact ring-buffer records, so every later stage
// can be tested and benchmarked without a kernel.
//
// Format (little-endian):
//   "SONDECAP" | u32 version (1) | u32 header_bytes | header | records...
//   header:  u64 monotonic->realtime offset (ns) | u32 capture_bytes | u32 reserved
//   record:  u32 length | length bytes (one raw ring-buffer record)
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/capture/event_source.h"

namespace sonde::capture {

struct RecordingHeader {
  uint64_t monotonic_to_realtime_ns = 0;
  uint32_t capture_bytes = 0;
};

// Largest record accepted from a file: a data event with the max payload.
inline constexpr uint32_t kMaxRecordBytes = sizeof(sonde_data_event) + SONDE_PAYLOAD_MAX;

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

class RecordingWriter {
 public:
  static absl::StatusOr<std::unique_ptr<RecordingWriter>> Create(const std::string& path,
                                                                 const RecordingHeader& header);
  absl::Status Write(RawEvent ev);
  absl::Status Flush();
  uint64_t records() const { return records_; }

 private:
  explicit RecordingWriter(File f) : file_(std::move(f)) {}
  File file_;
  uint64_t records_ = 0;
};

class RecordedFileSource final : public EventSource {
 public:
  static absl::StatusOr<std::unique_ptr<RecordedFileSource>> Open(const std::string& path);
  // Delivers up to `batch` records per Poll; OutOfRange at the end of file.
  absl::Status Poll(int timeout_ms, const EventCallback& on_event) override;
  SourceCounters counters() const override { return counters_; }
  const RecordingHeader& header() const { return header_; }
  void set_batch(size_t batch) { batch_ = batch; }

 private:
  RecordedFileSource(File f, RecordingHeader h) : file_(std::move(f)), header_(h) {}
  File file_;
  RecordingHeader header_;
  SourceCounters counters_;
  std::vector<uint8_t> buffer_;
  size_t batch_ = 4096;
  bool at_end_ = false;
};

}  // namespace sonde::capture
