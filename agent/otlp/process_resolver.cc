#include "agent/otlp/process_resolver.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "agent/otlp/node_info.h"

namespace sonde::otlp {
namespace {

constexpr size_t kMaxCacheEntries = 4096;

// Reads up to `limit` bytes, growing with the content: sizing the string to
// the limit up front would zero (and page-fault) all of it, 64 MiB for
// /proc/net/tcp on every new connection.
std::string ReadFile(const std::string& path, size_t limit = 1 << 20) {
  std::ifstream in(path, std::ios::binary);
  std::string out;
  if (!in) return out;
  char chunk[16 * 1024];
  while (out.size() < limit && in) {
    in.read(chunk, static_cast<std::streamsize>(std::min(sizeof(chunk), limit - out.size())));
    out.append(chunk, static_cast<size_t>(in.gcount()));
  }
  return out;
}

struct DirCloser {
  void operator()(DIR* d) const { closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

// /proc/net/tcp prints each 32-bit word of the address in host byte order as hex.
std::string HexWordsOf(const void* addr, size_t len) {
  std::string out;
  const auto* words = static_cast<const uint32_t*>(addr);
  for (size_t i = 0; i < len / 4; ++i) absl::StrAppend(&out, absl::Hex(words[i], absl::kZeroPad8));
  for (char& c : out) c = static_cast<char>(toupper(c));
  return out;
}

// Finds "ADDR:PORT" local with remote port in one /proc/net/tcp* table.
std::optional<uint64_t> ScanTable(const std::string& table, const std::string& want_local,
                                  uint16_t remote_port) {
  std::istringstream in(table);
  std::string line;
  std::getline(in, line);  // header
  char remote_port_hex[8];
  snprintf(remote_port_hex, sizeof remote_port_hex, "%04X", remote_port);
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, remote, st, queues, tr, retr, uid, timeout, inode;
    f >> sl >> local >> remote >> st >> queues >> tr >> retr >> uid >> timeout >> inode;
    if (local != want_local) continue;
    size_t colon = remote.rfind(':');
    if (colon == std::string::npos || remote.substr(colon + 1) != remote_port_hex) continue;
    uint64_t value = 0;
    if (!inode.empty() && (value = std::strtoull(inode.c_str(), nullptr, 10)) != 0) return value;
  }
  return std::nullopt;
}

}  // namespace

std::string ContainerIdFromCgroup(const std::string& cgroup_text) {
  // Matches .../docker-<id>.scope, .../cri-containerd-<id>.scope, /docker/<id>,
  // /kubepods/.../<id>, crio-<id>, libpod-<id>.
  static const std::regex kId("(?:^|[/-])([0-9a-f]{64})(?:\\.scope)?(?:$|/|\\n)");
  std::istringstream in(cgroup_text);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, kId)) return m[1].str();
  }
  return "";
}

std::optional<ProcessInfo> ReadProcessInfo(uint32_t pid, const std::string& proc_root) {
  std::string base = absl::StrCat(proc_root, "/", pid);
  std::string comm = ReadFile(base + "/comm", 256);
  if (comm.empty()) return std::nullopt;
  ProcessInfo info;
  info.pid = pid;
  while (!comm.empty() && comm.back() == '\n') comm.pop_back();
  info.comm = comm;
  std::string cmdline = ReadFile(base + "/cmdline", 4096);
  info.command = std::string(cmdline.c_str());  // argv[0]
  for (char& c : cmdline) {
    if (c == '\0') c = ' ';
  }
  while (!cmdline.empty() && cmdline.back() == ' ') cmdline.pop_back();
  info.command_line = cmdline;
  info.container_id = ContainerIdFromCgroup(ReadFile(base + "/cgroup", 64 * 1024));
  return info;
}

std::optional<uint64_t> FindSocketInode(const std::string& proc_net_tcp,
                                        const std::string& proc_net_tcp6, const std::string& ip,
                                        uint16_t port, uint16_t remote_port) {
  char port_hex[8];
  snprintf(port_hex, sizeof port_hex, "%04X", port);
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, ip.c_str(), &a4) == 1) {
    if (auto inode = ScanTable(proc_net_tcp, HexWordsOf(&a4, 4) + ":" + port_hex, remote_port)) {
      return inode;
    }
    // A dual-stack client socket shows the IPv4 peer as ::ffff:a.b.c.d in tcp6.
    in6_addr mapped{};
    mapped.s6_addr[10] = 0xff;
    mapped.s6_addr[11] = 0xff;
    std::memcpy(&mapped.s6_addr[12], &a4, 4);
    return ScanTable(proc_net_tcp6, HexWordsOf(&mapped, 16) + ":" + port_hex, remote_port);
  }
  if (inet_pton(AF_INET6, ip.c_str(), &a6) == 1) {
    return ScanTable(proc_net_tcp6, HexWordsOf(&a6, 16) + ":" + port_hex, remote_port);
  }
  return std::nullopt;
}

ProcessResolver::ProcessResolver(std::string proc_root, std::chrono::seconds ttl)
    : proc_root_(std::move(proc_root)), ttl_(ttl) {}

std::optional<uint32_t> ProcessResolver::PidOwningInode(uint64_t inode) const {
  const std::string want = absl::StrCat("socket:[", inode, "]");
  const uint32_t self = static_cast<uint32_t>(getpid());
  DirPtr proc(opendir(proc_root_.c_str()));
  if (!proc) return std::nullopt;
  std::optional<uint32_t> best;
  while (dirent* de = readdir(proc.get())) {
    char* end = nullptr;
    unsigned long pid = std::strtoul(de->d_name, &end, 10);
    if (end == de->d_name || *end != '\0' || pid == self) continue;
    std::string fd_dir = absl::StrCat(proc_root_, "/", de->d_name, "/fd");
    DirPtr fds(opendir(fd_dir.c_str()));
    if (!fds) continue;
    while (dirent* fe = readdir(fds.get())) {
      if (fe->d_name[0] == '.') continue;
      char target[64];
      std::string link = absl::StrCat(fd_dir, "/", fe->d_name);
      ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      if (std::string_view(target, static_cast<size_t>(n)) == want) {
        // A socket shared after fork(): the lowest pid is the parent/master.
        if (!best || pid < *best) best = static_cast<uint32_t>(pid);
        break;
      }
    }
  }
  return best;
}

std::optional<ProcessInfo> ProcessResolver::Resolve(const std::string& ip, uint16_t port,
                                                    uint16_t receiver_port) {
  const std::string key = absl::StrCat(ip, "|", port, "|", receiver_port);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++lookups_;
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.expires > now) return it->second.info;
  }
  std::optional<ProcessInfo> info;
  if (IsLocalAddress(ip)) {
    auto inode = FindSocketInode(ReadFile(proc_root_ + "/net/tcp", 64 << 20),
                                 ReadFile(proc_root_ + "/net/tcp6", 64 << 20), ip, port,
                                 receiver_port);
    if (inode) {
      if (auto pid = PidOwningInode(*inode)) info = ReadProcessInfo(*pid, proc_root_);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++scans_;
  if (cache_.size() >= kMaxCacheEntries) {
    for (auto it = cache_.begin(); it != cache_.end();) {
      it = it->second.expires <= now ? cache_.erase(it) : std::next(it);
    }
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
  }
  cache_[key] = Entry{info, now + ttl_};
  return info;
}

}  // namespace sonde::otlp
