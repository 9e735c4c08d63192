#pragma once
// Live socket capture: loads bpf/socket_trace.bpf.c, sets its filters and
// drains its ring buffer on a timer (the kernel side submits without wake-ups).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/capture/event_source.h"
#include "agent/tls/tls_attacher.h"

namespace sonde::capture {

struct FilterOptions {
  std::vector<uint32_t> include_pids;   // empty: all processes
  std::vector<uint32_t> exclude_pids;
  std::vector<uint16_t> include_ports;  // empty: all ports
  std::vector<uint16_t> exclude_ports;
  std::vector<uint64_t> include_cgroups;  // cgroup v2 ids; empty: all
  std::vector<uint64_t> exclude_cgroups;
};

// Each CPU has its own ring buffer (agent/bpf/ring_set.h): its size is the
// total's share rounded up to a power of two, but at least 4 MiB (a burst
// lands on one CPU), or the whole total when that is smaller.
inline constexpr uint64_t kMinPerCpuRingBytes = 4u << 20;
uint64_t PerCpuRingBytes(uint32_t total_bytes, uint32_t cpus);

struct SocketCaptureOptions {
  uint32_t capture_bytes = SONDE_PAYLOAD_DEFAULT;  // payload prefix per call, <= SONDE_PAYLOAD_MAX
  uint32_t ringbuf_bytes = 16u << 20;              // all CPUs' rings together: power of two, >= page size
  uint32_t wakeup_fill_percent = 25;  // force a wake-up past this fill level (of one CPU's ring)
  FilterOptions filter;
  // TLS plaintext through uprobes on OpenSSL (bpf/lib/tls.bpf.h, agent/tls).
  bool tls = true;
  tls::TlsAttachOptions tls_attach;  // self_pid is filled in
};

struct KernelCounters {
  uint64_t drops[SONDE_DROP_REASON_COUNT] = {};
  uint64_t stats[SONDE_STAT_COUNT] = {};
  uint64_t total_drops() const {
    uint64_t sum = 0;
    for (auto d : drops) sum += d;
    return sum;
  }
};

// Kernel-measured cost of one BPF program (needs BPF stats enabled).
struct ProgramStats {
  std::string name;
  uint64_t run_count = 0;
  uint64_t run_time_ns = 0;
};

class SocketCapture final : public EventSource {
 public:
  // Loads and attaches the programs. Fails with a clear message when the
  // kernel cannot do socket capture (run the feature probe first for detail).
  static absl::StatusOr<std::unique_ptr<SocketCapture>> Create(const SocketCaptureOptions& options);
  ~SocketCapture() override;

  absl::Status Poll(int timeout_ms, const EventCallback& on_event) override;
  SourceCounters counters() const override;
  KernelCounters ReadKernelCounters() const;
  // Per-program run counts and time; zero unless BPF stats are enabled
  // (bpf_enable_stats / kernel.bpf_stats_enabled).
  std::vector<ProgramStats> ReadProgramStats() const;

  // Runtime filter changes (e.g. exclude a receiver port once it is bound).
  absl::Status ExcludePort(uint16_t port);
  absl::Status ExcludePid(uint32_t pid);
  // EventSource: the kernel stops copying this socket's bytes (one map
  // lookup per call from now on).
  void IgnoreSocket(uint64_t sock_id) override;
  // The TLS uprobe attacher's counters; nullopt when TLS capture is off.
  std::optional<tls::TlsAttachCounters> tls_counters() const;
  // Rescan processes for OpenSSL now (tests; the attacher also rescans on its own).
  void RescanTls();
  // The fraction of the ring buffer waiting to be drained; safe from any
  // thread (agent/capture/drain_priority.h).
  double RingFillFraction() const;

 private:
  struct Impl;
  explicit SocketCapture(std::unique_ptr<Impl> impl);
  absl::Status UpdateFilterConfig(const std::function<void(sonde_filter_config&)>& change);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sonde::capture
