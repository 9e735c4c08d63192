#pragma once
// Continuous on-CPU / off-CPU profiler (bpf/profile.bpf.c) and its drain.
//
//   auto profiler = sonde::profile::Profiler::Create(options);   // loads + attaches
//   auto windows = (*profiler)->Drain();   // every options.drain_interval
//
// Drain() swaps the kernel map set, reads and clears the idle one, and returns
// folded stacks per process, thread and time slot: one on-CPU window (value =
// samples) and one off-CPU window (value = microseconds blocked). Run() calls
// Drain() at the configured interval until stopped.
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/core/clock.h"
#include "agent/profile/folded.h"
#include "agent/profile/symbolizer.h"

namespace sonde::profile {

struct ProfilerOptions {
  bool on_cpu = true;
  bool off_cpu = true;
  uint32_t frequency_hz = 99;  // per CPU, software cpu-clock
  std::chrono::milliseconds drain_interval{10000};
  std::chrono::milliseconds slot{1000};            // time resolution inside a window
  std::chrono::microseconds min_block{1000};       // off-CPU: shorter blocks are ignored
  bool offcpu_include_preempted = false;           // count runnable waits as off-CPU too
  bool include_idle = false;                       // on-CPU samples of the idle task
  std::vector<uint32_t> include_pids;              // non-empty: only these processes
  std::vector<uint32_t> exclude_pids;
  bool exclude_self = true;                        // never profile the agent
  uint32_t stack_map_entries = 16384;              // per map set
  uint32_t count_map_entries = 65536;              // per map set and kind
  std::chrono::milliseconds swap_grace{20};        // wait after swapping map sets
  uint32_t stack_generations_kept = 6;             // resolves off-CPU blocks up to ~this many windows
  SymbolizerOptions symbolizer;
};

struct ProfilerStats {
  uint64_t samples = 0;          // on-CPU samples counted in the kernel
  uint64_t offcpu_blocks = 0;    // off-CPU blocks counted
  uint64_t short_blocks = 0;     // off-CPU blocks under min_block
  uint64_t count_map_full = 0;   // dropped: count map full
  uint64_t stack_errors = 0;     // bpf_get_stackid failures (stack map full/collision)
  uint64_t start_map_full = 0;
  uint64_t notices_dropped = 0;  // new-process notices lost
  uint64_t drains = 0;
  uint64_t keys_drained = 0;
  uint64_t expired_stacks = 0;   // off-CPU blocks older than the kept generations
  uint64_t last_drain_ns = 0;    // wall time the last Drain() took
  uint32_t perf_events = 0;      // CPUs with a sampling event attached
  // Kernel-measured program cost; zero unless BPF run-time stats are on
  // (sysctl kernel.bpf_stats_enabled=1 or bpf_enable_stats()).
  uint64_t oncpu_prog_runs = 0;
  uint64_t oncpu_prog_ns = 0;
  uint64_t offcpu_prog_runs = 0;
  uint64_t offcpu_prog_ns = 0;
  SymbolizerStats symbolizer;
};

class Profiler {
 public:
  static absl::StatusOr<std::unique_ptr<Profiler>> Create(const ProfilerOptions& options);
  ~Profiler();
  Profiler(const Profiler&) = delete;
  Profiler& operator=(const Profiler&) = delete;

  // Windows since the previous drain (or Create): [on_cpu, off_cpu] for the
  // kinds enabled. Thread-safe against the notice thread; one drain at a time.
  absl::StatusOr<std::vector<ProfileWindow>> Drain();

  // Calls Drain() every drain_interval and hands the windows to sink, until
  // stop is requested (then drains once more).
  void Run(std::stop_token stop, const std::function<void(std::vector<ProfileWindow>)>& sink);

  // Pid filter updates at run time.
  absl::Status IncludePid(uint32_t pid);
  absl::Status ExcludePid(uint32_t pid);

  ProfilerStats stats() const;
  const ProfilerOptions& options() const { return options_; }

 private:
  // The skeleton, its links and the notice ring buffer (profiler.cc: their
  // types need the generated skeleton header).
  struct Kernel;
  using StackTable = std::unordered_map<uint32_t, std::vector<uint64_t>>;

  explicit Profiler(const ProfilerOptions& options);
  absl::Status Init();
  absl::Status AttachPerfEvents();
  absl::Status SetPidFilter(uint32_t pid, uint8_t action);
  void PollNotices(std::stop_token stop);
  static int OnNotice(void* ctx, void* data, size_t size);

  ProfilerOptions options_;
  core::MonotonicToRealtime clock_;
  Symbolizer symbolizer_;

  // Declared before the notice thread, so the thread stops before the ring
  // buffer it polls is freed; links detach before the skeleton goes.
  std::unique_ptr<Kernel> kernel_;
  std::jthread notice_thread_;

  std::mutex drain_mu_;
  uint32_t gen_ = 0;
  uint64_t last_drain_unix_ns_ = 0;
  std::unordered_map<uint32_t, StackTable> saved_stacks_;  // by generation
  mutable std::mutex stats_mu_;
  ProfilerStats stats_;
};

}  // namespace sonde::profile
