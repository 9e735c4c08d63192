#include "agent/capture/drain_priority.h"

#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>

#include <spdlog/spdlog.h>

#include "agent/core/clock.h"

namespace sonde::capture {

std::optional<DrainLevel> DrainPriorityPolicy::Observe(uint64_t now_ns, double fill) {
  if (fill >= o_.behind_fill) {
    last_behind_ns_ = now_ns;
    if (level_ == DrainLevel::kCatchUp) return std::nullopt;
    level_ = DrainLevel::kCatchUp;
    const bool soon_again = been_back_ && now_ns - back_ns_ < calm_ns_;
    calm_ns_ = soon_again ? std::min(calm_ns_ * 2, o_.max_calm_ns) : o_.calm_ns;
    return level_;
  }
  if (level_ == DrainLevel::kCatchUp && now_ns - last_behind_ns_ >= calm_ns_) {
    level_ = DrainLevel::kBackground;
    back_ns_ = now_ns;
    been_back_ = true;
    return level_;
  }
  return std::nullopt;
}

namespace {

// Policy first: leaving SCHED_IDLE is what needs the right, and a thread at
// SCHED_OTHER takes its nice value as set.
bool SetThreadPriority(pid_t tid, int nice, bool idle) {
  const sched_param none{};
  if (sched_setscheduler(tid, idle ? SCHED_IDLE : SCHED_OTHER, &none) != 0) return errno == ESRCH;
  return setpriority(PRIO_PROCESS, static_cast<id_t>(tid), nice) == 0 || errno == ESRCH;
}

}  // namespace

bool SetProcessNice(int nice, pid_t skip, bool idle) {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return false;
  bool ok = true;
  while (const dirent* e = readdir(dir)) {
    const pid_t tid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
    if (tid <= 0 || tid == skip) continue;
    if (!SetThreadPriority(tid, nice, idle)) ok = false;
  }
  closedir(dir);
  return ok;
}

bool CanRegainNice(int nice, bool from_idle) {
  bool ok = false;
  std::thread probe([&] {  // a throwaway thread: its priority does not matter afterwards
    const pid_t self = gettid();
    ok = SetThreadPriority(self, 19, from_idle) && SetThreadPriority(self, nice, false);
  });
  probe.join();
  return ok;
}

std::unique_ptr<DrainPriority> DrainPriority::Start(const DrainPriorityOptions& o, ReadFill read_fill) {
  if (o.background_nice == o.catch_up_nice) {  // one fixed priority
    if (o.catch_up_nice != 0 && !SetProcessNice(o.catch_up_nice, 0)) {
      spdlog::warn("capture.drain_nice {}: {} (needs CAP_SYS_NICE to go below 0); the agent keeps its priority",
                   o.catch_up_nice, std::strerror(errno));
    }
    return nullptr;
  }
  if (!CanRegainNice(o.catch_up_nice)) {
    spdlog::warn("the agent cannot raise its priority back to nice {} after yielding (needs CAP_SYS_NICE): it "
                 "stays at its priority instead of running in the background (capture.background_nice)",
                 o.catch_up_nice);
    return nullptr;
  }
  DrainPriorityOptions options = o;
  if (options.background_idle && !CanRegainNice(options.catch_up_nice, /*from_idle=*/true)) {
    spdlog::warn("the agent cannot leave SCHED_IDLE once behind: it stays SCHED_OTHER in the background "
                 "(capture.background_idle)");
    options.background_idle = false;
  }
  auto p = std::make_unique<DrainPriority>(options, [](int nice) { return SetProcessNice(nice, 0); });
  std::promise<pid_t> watchdog_tid;
  auto started = watchdog_tid.get_future();
  p->watchdog_ = std::jthread([raw = p.get(), &watchdog_tid, read_fill = std::move(read_fill)](std::stop_token stop) {
    // The watchdog itself always runs at the catch-up priority: it must get
    // the CPU when the agent's other threads do not.
    const pid_t self = gettid();
    setpriority(PRIO_PROCESS, static_cast<id_t>(self), raw->o_.catch_up_nice);
    watchdog_tid.set_value(self);
    raw->Watch(stop, read_fill);
  });
  const pid_t watchdog = started.get();
  std::lock_guard<std::mutex> lock(p->mu_);
  p->set_nice_ = [watchdog, idle = options.background_idle, background = options.background_nice](int nice) {
    return SetProcessNice(nice, watchdog, idle && nice == background);
  };
  p->set_nice_(options.background_nice);
  p->nice_ = options.background_nice;
  spdlog::info("the agent runs at nice {}{} while it keeps up and at nice {} when it falls behind "
               "(capture.background_nice, capture.background_idle, capture.drain_nice)",
               options.background_nice, options.background_idle ? " and SCHED_IDLE" : "", options.catch_up_nice);
  return p;
}

DrainPriority::DrainPriority(const DrainPriorityOptions& o, SetNice set_nice)
    : o_(o), set_nice_(std::move(set_nice)), policy_(o), nice_(o.background_nice) {}

DrainPriority::~DrainPriority() {
  if (watchdog_.joinable()) {
    watchdog_.request_stop();
    wake_.notify_all();
    watchdog_.join();
  }
}

void DrainPriority::Apply(std::optional<DrainLevel> to) {
  if (!to) return;
  const int nice = *to == DrainLevel::kCatchUp ? o_.catch_up_nice : o_.background_nice;
  if (!set_nice_(nice)) spdlog::warn("setting the agent's threads to nice {} failed: {}", nice, std::strerror(errno));
  nice_.store(nice, std::memory_order_relaxed);
  if (*to == DrainLevel::kCatchUp) catch_ups_.fetch_add(1, std::memory_order_relaxed);
}

void DrainPriority::Observe(uint64_t now_ns, double fill) {
  std::lock_guard<std::mutex> lock(mu_);
  Apply(policy_.Observe(now_ns, fill));
}

void DrainPriority::Watch(std::stop_token stop, const ReadFill& read_fill) {
  const auto period = std::chrono::nanoseconds(o_.watch_period_ns);
  std::mutex sleep_mu;
  std::unique_lock<std::mutex> sleep_lock(sleep_mu);
  while (!stop.stop_requested()) {
    wake_.wait_for(sleep_lock, stop, period, [] { return false; });
    if (stop.stop_requested()) break;
    Observe(core::MonotonicNowNs(), read_fill());
  }
}

}  // namespace sonde::capture
