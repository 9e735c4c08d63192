#include "agent/conn/thread_names.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/core/text_file.h"

namespace sonde::conn {

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
  std::string name = core::ReadFirstLine(absl::StrCat(proc_root_, "/", pid, "/task/", tid, "/comm"));
  if (name.empty()) name = core::ReadFirstLine(absl::StrCat(proc_root_, "/", pid, "/comm"));  // the thread has exited
  if (!name.empty()) Store(tid, name);
  return name;
}

}  // namespace sonde::conn
