// The agent's CPU priority follows the drain: in the background while it
// keeps up, ahead of the workload once it falls behind.
//
// On a busy gateway every cycle the agent takes at the workload's priority
// delays a request: a drain that preempts nginx stalls nginx's clients too
// (bench/overhead, 2 cores, nginx + wrk: the agent at nice 0 or -5 left 0.52
// of the throughput with 30 % of the CPUs idle; at nice 19 0.70, 0 events
// lost). A background agent still runs in the gaps between requests, but
// under sustained contention it would starve and the kernel would drop
// events, so a watchdog at the catch-up priority watches the ring buffer's
// fill and moves the agent ahead once half of it is waiting, and back once
// it has stayed below that for a while. Optionally the threads are also
// SCHED_IDLE in the background (capture.background_idle): nice 19 still
// takes a share of a contended CPU; an idle-policy thread gives way to any
// waking workload thread at once, but falls behind more often.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace sonde::capture {

struct DrainPriorityOptions {
  int background_nice = 19;          // while the drain keeps up
  bool background_idle = false;      // and SCHED_IDLE then (capture.background_idle)
  int catch_up_nice = -5;            // once it is behind
  double behind_fill = 0.5;          // this much of the ring buffer waiting: behind
  uint64_t calm_ns = 250'000'000;    // below that this long: back to the background
  // Behind again within the calm period after going back: the period
  // doubles up to this (sustained contention: each return to the background
  // starves the drain until the watchdog sees the fill).
  uint64_t max_calm_ns = 60'000'000'000;
  uint64_t watch_period_ns = 10'000'000;
};

enum class DrainLevel { kBackground, kCatchUp };

// When to move: a pure function of what the drain and the watchdog saw.
class DrainPriorityPolicy {
 public:
  explicit DrainPriorityPolicy(const DrainPriorityOptions& o) : o_(o), calm_ns_(o.calm_ns) {}

  // The fraction of the ring buffer waiting at now_ns; the level to move to
  // when it changes.
  std::optional<DrainLevel> Observe(uint64_t now_ns, double fill);

  DrainLevel level() const { return level_; }
  uint64_t calm_ns() const { return calm_ns_; }

 private:
  DrainPriorityOptions o_;
  DrainLevel level_ = DrainLevel::kBackground;
  uint64_t calm_ns_;
  uint64_t last_behind_ns_ = 0;
  uint64_t back_ns_ = 0;  // when it last went back to the background
  bool been_back_ = false;
};

// Applies the policy to every thread of the agent (setpriority per thread:
// on Linux a nice value belongs to a thread). Thread-safe.
class DrainPriority {
 public:
  using SetNice = std::function<bool(int nice)>;  // every thread but the watchdog
  using ReadFill = std::function<double()>;       // fraction of the ring buffer waiting

  // The real thing: probes that the process may regain catch_up_nice after
  // lowering itself (CAP_SYS_NICE or RLIMIT_NICE); without that right the
  // agent stays at its priority (one warning) and nullptr is returned.
  // Starts the watchdog thread, which reads the fill every watch period.
  static std::unique_ptr<DrainPriority> Start(const DrainPriorityOptions& o, ReadFill read_fill);

  // For tests: no watchdog thread, the caller drives Observe.
  DrainPriority(const DrainPriorityOptions& o, SetNice set_nice);
  ~DrainPriority();
  DrainPriority(const DrainPriority&) = delete;
  DrainPriority& operator=(const DrainPriority&) = delete;

  void Observe(uint64_t now_ns, double fill);

  int nice() const { return nice_.load(std::memory_order_relaxed); }
  uint64_t catch_ups() const { return catch_ups_.load(std::memory_order_relaxed); }

 private:
  void Apply(std::optional<DrainLevel> to);  // under mu_
  void Watch(std::stop_token stop, const ReadFill& read_fill);

  const DrainPriorityOptions o_;
  SetNice set_nice_;  // under mu_
  std::mutex mu_;
  DrainPriorityPolicy policy_;
  std::atomic<int> nice_;
  std::atomic<uint64_t> catch_ups_{0};
  std::condition_variable_any wake_;
  std::jthread watchdog_;  // last: stops before the rest goes
};

// Sets the nice value of every thread of this process except `skip` (0: none),
// and its policy: SCHED_IDLE when `idle`, else SCHED_OTHER.
bool SetProcessNice(int nice, pid_t skip, bool idle = false);
// Whether this process may go back to `nice` (and SCHED_OTHER) after lowering
// its priority (to nice 19, or SCHED_IDLE when `from_idle`).
bool CanRegainNice(int nice, bool from_idle = false);

}  // namespace sonde::capture
