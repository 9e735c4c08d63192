#include "agent/tcp/tcp_health_source.h"

#include <unistd.h>

#include <cerrno>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "absl/status/status.h"
#include "agent/bpf/abi_checks.h"
#include "agent/bpf/libbpf_raii.h"
#include "tcp_health.skel.h"

namespace sonde::tcp {

using TcpHealthSkeleton = bpf::Skeleton<tcp_health, tcp_health__open, tcp_health__load,
                                        tcp_health__attach, tcp_health__destroy>;

struct TcpHealthSource::Kernel {
  TcpHealthSkeleton skel;
};

TcpHealthSource::TcpHealthSource(std::unique_ptr<Kernel> kernel) : kernel_(std::move(kernel)) {}
TcpHealthSource::~TcpHealthSource() = default;

absl::StatusOr<std::unique_ptr<TcpHealthSource>> TcpHealthSource::Open(
    const TcpHealthOptions& options) {
  auto opened = TcpHealthSkeleton::Open();
  if (!opened.ok()) return opened.status();
  TcpHealthSkeleton skel = std::move(*opened);
  skel->rodata->sample_interval_ns = options.sample_interval_ns;
  skel->rodata->agent_tgid = static_cast<uint32_t>(getpid());
  skel->rodata->pids_include_only = options.include_pids.empty() ? 0 : 1;
  skel->rodata->has_pid_entries = options.include_pids.empty() && options.exclude_pids.empty() ? 0 : 1;
  if (int err = bpf_map__set_max_entries(skel->maps.tcp_socks, options.max_sockets); err != 0)
    return absl::ErrnoToStatus(-err, "resizing tcp_socks");
  if (auto st = skel.Load(); !st.ok()) return st;
  const int filter_fd = bpf_map__fd(skel->maps.tcp_pid_filter);
  auto put = [&](uint32_t pid, uint8_t action) -> absl::Status {
    if (bpf_map_update_elem(filter_fd, &pid, &action, BPF_ANY) != 0) return absl::ErrnoToStatus(errno, "tcp pid filter");
    return absl::OkStatus();
  };
  for (uint32_t pid : options.include_pids)
    if (auto st = put(pid, SONDE_FILTER_INCLUDE); !st.ok()) return st;
  for (uint32_t pid : options.exclude_pids)
    if (auto st = put(pid, SONDE_FILTER_EXCLUDE); !st.ok()) return st;
  if (auto st = skel.Attach(); !st.ok()) return st;
  return std::unique_ptr<TcpHealthSource>(new TcpHealthSource(std::make_unique<Kernel>(std::move(skel))));
}

namespace {

// Hands every entry of a hash map to `emit(key, value)`: read in batches of
// a few thousand entries per system call into `keys`/`values` (one
// get_next_key and one lookup per entry cost two calls per socket, ~200k a
// second at 100k sockets), or one entry at a time where the kernel cannot
// batch this map.
template <typename Key, typename Value, typename Emit>
void ReadAll(int fd, std::vector<Key>& keys, std::vector<Value>& values, Emit&& emit) {
  constexpr uint32_t kBatch = 4096;
  keys.resize(kBatch);
  values.resize(kBatch);
  Key token{};  // opaque position (the hash bucket); key-sized is large enough
  bool first = true;
  for (;;) {
    uint32_t count = kBatch;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    const int err = bpf_map_lookup_batch(fd, first ? nullptr : &token, &token, keys.data(), values.data(), &count,
                                         &opts);
    const int error = errno;
    if (err == 0 || error == ENOENT) {
      for (uint32_t i = 0; i < count && i < kBatch; ++i) emit(keys[i], values[i]);
    }
    if (err == 0) {
      first = false;
      continue;
    }
    if (error == ENOENT) return;  // that was the last batch
    if (first) break;             // batches not supported for this map: one by one
    return;                       // failed mid-way: what was read
  }
  Key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    Value v{};
    if (bpf_map_lookup_elem(fd, &next, &v) == 0) emit(next, v);
    key = next;
    prev = &key;
  }
}

}  // namespace

absl::Status TcpHealthSource::Read(std::vector<SocketSnapshot>& sockets,
                                   std::vector<PairSnapshot>& pairs) {
  sockets.clear();
  pairs.clear();
  const int socks_fd = bpf_map__fd(kernel_->skel->maps.tcp_socks);
  closed_.clear();
  ReadAll(socks_fd, sock_keys_, sock_values_, [&](uint64_t cookie, const sonde_tcp_sock_stats& stats) {
    if (stats.flags & SONDE_TCP_CLOSED) closed_.push_back(cookie);
    sockets.push_back(SocketSnapshot{cookie, stats});
  });
  if (!closed_.empty()) {
    uint32_t count = static_cast<uint32_t>(closed_.size());
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    if (bpf_map_delete_batch(socks_fd, closed_.data(), &count, &opts) != 0) {
      // Not batchable, or an entry already evicted (the batch stops there).
      for (uint64_t cookie : closed_) bpf_map_delete_elem(socks_fd, &cookie);
    }
  }

  const int pairs_fd = bpf_map__fd(kernel_->skel->maps.tcp_pairs);
  ReadAll(pairs_fd, pair_keys_, pair_values_, [&](const sonde_tcp_pair_key& key, const sonde_tcp_pair_stats& stats) {
    pairs.push_back(PairSnapshot{key, stats});
  });
  return absl::OkStatus();
}

KernelCounters TcpHealthSource::kernel_counters() const {
  KernelCounters c;
  const int fd = bpf_map__fd(kernel_->skel->maps.tcp_stats);
  const int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return c;
  std::vector<uint64_t> values(static_cast<size_t>(ncpu));
  uint64_t* out[] = {&c.sock_map_full, &c.pair_map_full, &c.samples};
  for (uint32_t i = 0; i < SONDE_TCP_STAT_COUNT; ++i) {
    if (bpf_map_lookup_elem(fd, &i, values.data()) != 0) continue;
    for (uint64_t v : values) *out[i] += v;
  }
  return c;
}

}  // namespace sonde::tcp
