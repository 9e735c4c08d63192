#pragma once
// Resolves the local process that sent an OTLP request from its TCP
// connection: the sender's socket is the /proc/net/tcp{,6} entry whose local
// end is the request's peer address and whose remote port is a receiver port;
// its inode leads to the pid owning it via /proc/<pid>/fd -> socket:[inode].
// Results are cached per peer address:port (a connection), so the /proc scan
// runs once per connection, not per request.
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace sonde::otlp {

struct ProcessInfo {
  uint32_t pid = 0;
  std::string comm;          // /proc/<pid>/comm
  std::string command;       // argv[0] from /proc/<pid>/cmdline
  std::string command_line;  // argv joined by spaces
  std::string container_id;  // 64-hex id from /proc/<pid>/cgroup, when in a container
};

// Container id from the text of /proc/<pid>/cgroup (docker, containerd, cri-o
// and podman layouts, cgroup v1 and v2); "" when none.
std::string ContainerIdFromCgroup(const std::string& cgroup_text);

// Reads comm, cmdline and cgroup of a pid under proc_root.
std::optional<ProcessInfo> ReadProcessInfo(uint32_t pid, const std::string& proc_root = "/proc");

// Socket inode of the TCP socket whose local end is (ip, port) and whose remote
// port is remote_port, from /proc/net/tcp and tcp6 text (v4-mapped IPv6 handled).
std::optional<uint64_t> FindSocketInode(const std::string& proc_net_tcp,
                                        const std::string& proc_net_tcp6, const std::string& ip,
                                        uint16_t port, uint16_t remote_port);

class ProcessResolver {
 public:
  explicit ProcessResolver(std::string proc_root = "/proc",
                           std::chrono::seconds ttl = std::chrono::seconds(60));

  // The local process owning the client socket ip:port connected to our
  // receiver_port; nullopt when the peer is remote or not found.
  std::optional<ProcessInfo> Resolve(const std::string& ip, uint16_t port, uint16_t receiver_port);

  uint64_t lookups() const { return lookups_; }
  uint64_t scans() const { return scans_; }

 private:
  struct Entry {
    std::optional<ProcessInfo> info;
    std::chrono::steady_clock::time_point expires;
  };
  std::optional<uint32_t> PidOwningInode(uint64_t inode) const;

  std::string proc_root_;
  std::chrono::seconds ttl_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> cache_;
  uint64_t lookups_ = 0;
  uint64_t scans_ = 0;
};

}  // namespace sonde::otlp
