#include "agent/conn/socket_probe.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace sonde::conn {

SocketLiveness ProcSocketProbe::Check(uint32_t pid, int32_t fd, uint64_t sock_id) {
  if (pid == 0) return SocketLiveness::kUnknown;
  char path[96];
  if (fd < 0) {
    std::snprintf(path, sizeof(path), "%s/%u", proc_root_.c_str(), pid);
    struct stat st {};
    if (::stat(path, &st) == 0) return SocketLiveness::kUnknown;
    return errno == ENOENT ? SocketLiveness::kProcessGone : SocketLiveness::kUnknown;
  }
  std::snprintf(path, sizeof(path), "%s/%u/fd/%d", proc_root_.c_str(), pid, fd);
  char target[64];
  const ssize_t n = ::readlink(path, target, sizeof(target) - 1);
  if (n < 0) {
    if (errno != ENOENT) return SocketLiveness::kUnknown;  // EACCES...: cannot tell
    std::snprintf(path, sizeof(path), "%s/%u", proc_root_.c_str(), pid);
    struct stat st {};
    if (::stat(path, &st) != 0 && errno == ENOENT) return SocketLiveness::kProcessGone;
    return SocketLiveness::kGone;
  }
  target[n] = '\0';
  if (sock_id == 0) return SocketLiveness::kUnknown;
  char expected[48];
  std::snprintf(expected, sizeof(expected), "socket:[%llu]", static_cast<unsigned long long>(sock_id));
  return std::string_view(target) == expected ? SocketLiveness::kAlive : SocketLiveness::kGone;
}

}  // namespace sonde::conn
