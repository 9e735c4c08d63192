#include "agent/export/disk_spool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace sonde::exporter {
namespace {

namespace fs = std::filesystem;

std::string ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Written under a temporary name and renamed: a crash leaves the old file or
// the new one, never half of one.
bool WriteAtomically(const fs::path& path, const std::string& data) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out.write(data.data(), static_cast<std::streamsize>(data.size()))) return false;
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DiskSpool>> DiskSpool::Open(const std::string& dir, uint64_t max_bytes) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::UnavailableError("export spool " + dir + ": " + ec.message());
  std::unique_ptr<DiskSpool> spool(new DiskSpool(dir, max_bytes));
  spool->instance_id_ = ReadSmallFile(fs::path(dir) / "instance");
  const std::string next = ReadSmallFile(fs::path(dir) / "next-sequence");
  if (!next.empty()) spool->next_sequence_ = std::max<uint64_t>(1, std::strtoull(next.c_str(), nullptr, 10));
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    uint64_t seq = 0;
    size_t items = 0;
    if (entry.path().extension() != ".batch" ||
        std::sscanf(name.c_str(), "%" SCNu64 "-%zu.batch", &seq, &items) != 2) {
      if (entry.path().extension() == ".tmp") fs::remove(entry.path(), ec);  // an interrupted write
      continue;
    }
    Batch b;
    b.sequence = seq;
    b.items = items;
    const std::string data = ReadSmallFile(entry.path());
    if (!b.request.ParseFromString(data) || !b.request.has_compressed_batch() ||
        b.request.compressed_batch().sequence() != seq) {
      spdlog::warn("export spool: dropping unreadable {}", entry.path().string());
      fs::remove(entry.path(), ec);
      continue;
    }
    spool->files_[seq] = {items, data.size()};
    spool->bytes_ += data.size();
    spool->next_sequence_ = std::max(spool->next_sequence_, seq + 1);
    spool->stored_.push_back(std::move(b));
  }
  std::sort(spool->stored_.begin(), spool->stored_.end(),
            [](const Batch& a, const Batch& b) { return a.sequence < b.sequence; });
  return spool;
}

void DiskSpool::SetInstanceId(const std::string& id) {
  instance_id_ = id;
  WriteAtomically(fs::path(dir_) / "instance", id + "\n");
}

std::vector<DiskSpool::Batch> DiskSpool::TakeStored() { return std::move(stored_); }

std::string DiskSpool::PathOf(uint64_t sequence, size_t items) const {
  char name[64];
  std::snprintf(name, sizeof name, "%020" PRIu64 "-%zu.batch", sequence, items);
  return (fs::path(dir_) / name).string();
}

std::vector<DiskSpool::Batch> DiskSpool::Store(uint64_t sequence, size_t items, const v1::IngestRequest& request) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Batch> evicted;
  const std::string data = request.SerializeAsString();
  next_sequence_ = std::max(next_sequence_, sequence + 1);
  WriteAtomically(fs::path(dir_) / "next-sequence", std::to_string(next_sequence_) + "\n");
  // Oldest first out, until the new batch fits.
  std::error_code ec;
  while (!files_.empty() && bytes_ + data.size() > max_bytes_) {
    auto oldest = files_.begin();
    evicted.push_back({oldest->first, oldest->second.items, {}});
    fs::remove(PathOf(oldest->first, oldest->second.items), ec);
    bytes_ -= oldest->second.bytes;
    files_.erase(oldest);
  }
  if (data.size() > max_bytes_ || !WriteAtomically(PathOf(sequence, items), data)) {
    evicted.push_back({sequence, items, {}});  // kept in memory only; lost on restart
    return evicted;
  }
  files_[sequence] = {items, data.size()};
  bytes_ += data.size();
  return evicted;
}

uint64_t DiskSpool::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

void DiskSpool::Remove(uint64_t sequence) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = files_.find(sequence);
  if (it == files_.end()) return;
  std::error_code ec;
  fs::remove(PathOf(sequence, it->second.items), ec);
  bytes_ -= it->second.bytes;
  files_.erase(it);
}

}  // namespace sonde::exporter
