#pragma once
// Does a tracked socket still exist? The tracker's safety net for close
// events it never saw (a lost ring-buffer record, an fd closed by the kernel
// on process exit without a state change the capture reports, a path the
// probes do not hook): quiet connections are checked now and then and
// released when their socket is gone.
#include <cstdint>
#include <string>

namespace sonde::conn {

enum class SocketLiveness : uint8_t {
  kAlive,        // the process still holds the socket under that fd
  kGone,         // the fd is closed or names another file
  kProcessGone,  // the process has exited
  kUnknown,      // cannot tell (no fd, no permission): keep it
};

class SocketProbe {
 public:
  virtual ~SocketProbe() = default;
  // `sock_id` is the socket's inode; `fd` < 0 when unknown.
  virtual SocketLiveness Check(uint32_t pid, int32_t fd, uint64_t sock_id) = 0;
};

// Reads /proc/<pid>/fd/<fd> (a symlink "socket:[<inode>]"). Pids are the
// capture's, i.e. of the initial pid namespace: the agent runs with the
// host's /proc (hostPID in Kubernetes).
class ProcSocketProbe final : public SocketProbe {
 public:
  explicit ProcSocketProbe(std::string proc_root = "/proc") : proc_root_(std::move(proc_root)) {}
  SocketLiveness Check(uint32_t pid, int32_t fd, uint64_t sock_id) override;

 private:
  std::string proc_root_;
};

}  // namespace sonde::conn
