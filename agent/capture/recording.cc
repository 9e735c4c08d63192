#include "agent/capture/recording.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sonde::capture {
namespace {
constexpr char kMagic[8] = {'S', 'O', 'N', 'D', 'E', 'C', 'A', 'P'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kHeaderBytes = 16;

bool WriteAll(std::FILE* f, const void* p, size_t n) { return std::fwrite(p, 1, n, f) == n; }
}  // namespace

absl::StatusOr<std::unique_ptr<RecordingWriter>> RecordingWriter::Create(const std::string& path,
                                                                         const RecordingHeader& h) {
  File f(std::fopen(path.c_str(), "wb"));
  if (!f) return absl::NotFoundError(absl::StrCat("cannot create ", path, ": ", std::strerror(errno)));
  const uint32_t reserved = 0;
  if (!WriteAll(f.get(), kMagic, sizeof(kMagic)) || !WriteAll(f.get(), &kVersion, 4) ||
      !WriteAll(f.get(), &kHeaderBytes, 4) || !WriteAll(f.get(), &h.monotonic_to_realtime_ns, 8) ||
      !WriteAll(f.get(), &h.capture_bytes, 4) || !WriteAll(f.get(), &reserved, 4)) {
    return absl::DataLossError(absl::StrCat("writing header of ", path, " failed"));
  }
  return std::unique_ptr<RecordingWriter>(new RecordingWriter(std::move(f)));
}

absl::Status RecordingWriter::Write(RawEvent ev) {
  const auto len = static_cast<uint32_t>(ev.size());
  if (!WriteAll(file_.get(), &len, 4) || !WriteAll(file_.get(), ev.data(), ev.size())) {
    return absl::DataLossError(absl::StrCat("writing record failed: ", std::strerror(errno)));
  }
  ++records_;
  return absl::OkStatus();
}

absl::Status RecordingWriter::Flush() {
  if (std::fflush(file_.get()) != 0) return absl::DataLossError("flushing recording failed");
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<RecordedFileSource>> RecordedFileSource::Open(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) return absl::NotFoundError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  char magic[8];
  uint32_t version = 0, header_bytes = 0;
  if (std::fread(magic, 1, 8, f.get()) != 8 || std::memcmp(magic, kMagic, 8) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a sonde recording (bad magic)"));
  }
  if (std::fread(&version, 4, 1, f.get()) != 1 || version != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported recording version ", version));
  }
  if (std::fread(&header_bytes, 4, 1, f.get()) != 1 || header_bytes < kHeaderBytes || header_bytes > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad header length ", header_bytes));
  }
  std::vector<uint8_t> raw(header_bytes);
  if (std::fread(raw.data(), 1, header_bytes, f.get()) != header_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated header"));
  }
  RecordingHeader h;
  std::memcpy(&h.monotonic_to_realtime_ns, raw.data(), 8);
  std::memcpy(&h.capture_bytes, raw.data() + 8, 4);
  return std::unique_ptr<RecordedFileSource>(new RecordedFileSource(std::move(f), h));
}

absl::Status RecordedFileSource::Poll(int /*timeout_ms*/, const EventCallback& on_event) {
  if (at_end_) return absl::OutOfRangeError("end of recording");
  buffer_.resize(kMaxRecordBytes);
  for (size_t i = 0; i < batch_; ++i) {
    uint32_t len = 0;
    const size_t got = std::fread(&len, 1, 4, file_.get());
    if (got == 0) {
      at_end_ = true;
      return absl::OkStatus();
    }
    if (got != 4 || len > kMaxRecordBytes || len < sizeof(sonde_event_header)) {
      // A torn or corrupt tail (e.g. the recorder was killed): count it, stop.
      ++counters_.malformed;
      at_end_ = true;
      return absl::OkStatus();
    }
    if (std::fread(buffer_.data(), 1, len, file_.get()) != len) {
      ++counters_.malformed;
      at_end_ = true;
      return absl::OkStatus();
    }
    RawEvent ev(buffer_.data(), len);
    if (AsHeader(ev) == nullptr) {
      ++counters_.malformed;
      continue;
    }
    ++counters_.events;
    on_event(ev);
  }
  return absl::OkStatus();
}

}  // namespace sonde::capture
