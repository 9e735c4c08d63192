#include "agent/conn/thread_names.h"

#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace sonde::conn {
namespace {

// The first line of a small /proc file; empty when it cannot be read.
std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return {};
  return line;
}

}  // namespace

void ThreadNames::Store(uint32_t tid, std::string_view name) {
  if (by_tid_.size() >= kMaxThreads && !by_tid_.contains(tid)) by_tid_.clear();
  std::string& slot = by_tid_[tid];
  if (slot != name) slot.assign(name);
}

void ThreadNames::Learn(uint32_t tid, const char* comm, size_t size) {
  const size_t len = strnlen(comm, size);
  if (len == 0) return;
  Store(tid, std::string_view(comm, len));
}

std::string ThreadNames::Name(uint32_t pid, uint32_t tid) {
  if (auto it = by_tid_.find(tid); it != by_tid_.end()) return it->second;
  if (proc_root_.empty()) return {};
  std::string name = ReadFirstLine(absl::StrCat(proc_root_, "/", pid, "/task/", tid, "/comm"));
  if (name.empty()) name = ReadFirstLine(absl::StrCat(proc_root_, "/", pid, "/comm"));  // the thread has exited
  if (!name.empty()) Store(tid, name);
  return name;
}

}  // namespace sonde::conn
