#pragma once
// Thread names for connections. The capture sends a thread's name (comm) on
// connection events and on a socket's first data event only (reading it was
// ~4 % of a captured call): a connection first seen through a later event
// (its tracking was released while the socket lived on, or the event that
// named it was lost) takes the name this thread was last seen with, else,
// live, /proc/<pid>/task/<tid>/comm. Recordings never read /proc (their pids
// are another host's).
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace sonde::conn {

class ThreadNames {
 public:
  // `proc_root` empty: names come from events only.
  explicit ThreadNames(std::string proc_root = {}) : proc_root_(std::move(proc_root)) {}

  // A name an event carried (NUL-padded, at most `size` bytes). Empty: ignored.
  void Learn(uint32_t tid, const char* comm, size_t size);
  // The name of thread `tid` of process `pid`; empty when unknown.
  std::string Name(uint32_t pid, uint32_t tid);

  size_t size() const { return by_tid_.size(); }

 private:
  static constexpr size_t kMaxThreads = 65536;  // then forgotten at once and learned again
  void Store(uint32_t tid, std::string_view name);

  std::string proc_root_;
  absl::flat_hash_map<uint32_t, std::string> by_tid_;
};

}  // namespace sonde::conn
