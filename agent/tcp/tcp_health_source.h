#pragma once
// Loads bpf/tcp_health.bpf.c, attaches its tracepoints and reads the per-socket
// and per-pair maps. One object owns the skeleton (bpf::Skeleton, and so every
// link and map); the destructor detaches everything.
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/tcp/tcp_types.h"

namespace sonde::tcp {

struct TcpHealthOptions {
  uint32_t max_sockets = 65536;          // per-socket LRU map size
  uint64_t sample_interval_ns = 100'000'000;  // srtt/cwnd sampling per socket, at most
  // The capture's process filter (send/recv sampling skips other processes).
  std::vector<uint32_t> include_pids;  // empty: every process
  std::vector<uint32_t> exclude_pids;
};

struct KernelCounters {
  uint64_t sock_map_full = 0;
  uint64_t pair_map_full = 0;
  uint64_t samples = 0;
};

class TcpHealthSource {
 public:
  static absl::StatusOr<std::unique_ptr<TcpHealthSource>> Open(const TcpHealthOptions& options);
  ~TcpHealthSource();
  TcpHealthSource(const TcpHealthSource&) = delete;
  TcpHealthSource& operator=(const TcpHealthSource&) = delete;

  // Reads every socket and pair entry; entries of closed sockets are deleted
  // after being read (their values are final).
  absl::Status Read(std::vector<SocketSnapshot>& sockets, std::vector<PairSnapshot>& pairs);
  KernelCounters kernel_counters() const;

 private:
  struct Kernel;  // the skeleton (tcp_health_source.cc: its type needs the generated header)
  explicit TcpHealthSource(std::unique_ptr<Kernel> kernel);
  std::unique_ptr<Kernel> kernel_;
  // One batch's read buffers, kept between reads.
  std::vector<uint64_t> sock_keys_;
  std::vector<sonde_tcp_sock_stats> sock_values_;
  std::vector<uint64_t> closed_;
  std::vector<sonde_tcp_pair_key> pair_keys_;
  std::vector<sonde_tcp_pair_stats> pair_values_;
};

}  // namespace sonde::tcp
