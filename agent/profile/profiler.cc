#include "agent/profile/profiler.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

// abi.h first: the skeleton's .rodata/.bss structs use its types.
#include "agent/bpf/abi_checks.h"
#include "agent/bpf/libbpf_raii.h"
// clang-format off
#include "profile.skel.h"
// clang-format on

namespace sonde::profile {
namespace {

using ProfileSkeleton = bpf::Skeleton<::profile, profile__open, profile__load, profile__attach,
                                      profile__destroy>;

absl::Status Errno(const std::string& what, int err) {
  return absl::Status(err == EPERM || err == EACCES ? absl::StatusCode::kPermissionDenied
                                                    : absl::StatusCode::kInternal,
                      what + ": " + std::strerror(err));
}

// The loader's own errors read "profile: ..." like the ones above.
absl::Status Prefixed(const std::string& prefix, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(prefix, ": ", s.message()));
}

// "0-3,5,7-8" -> {0,1,2,3,5,7,8}
std::vector<int> OnlineCpus() {
  std::vector<int> cpus;
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string text;
  std::getline(in, text);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string part = text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    size_t dash = part.find('-');
    try {
      int a = std::stoi(part.substr(0, dash));
      int b = dash == std::string::npos ? a : std::stoi(part.substr(dash + 1));
      for (int c = a; c <= b; ++c) cpus.push_back(c);
    } catch (...) {
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  if (cpus.empty()) {
    int n = libbpf_num_possible_cpus();
    for (int c = 0; c < n; ++c) cpus.push_back(c);
  }
  return cpus;
}

std::string CommOf(const char (&comm)[SONDE_COMM_LEN]) {
  return std::string(comm, strnlen(comm, SONDE_COMM_LEN));
}

struct DrainedCount {
  sonde_profile_key key;
  uint64_t value;  // samples, or ns blocked
  uint64_t count;  // samples, or blocks
};

// Reads every entry of a count map, then deletes them (the map is idle).
std::vector<DrainedCount> DrainCounts(int fd, bool off_cpu) {
  std::vector<DrainedCount> out;
  sonde_profile_key key{}, next{};
  const void* prev = nullptr;
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    if (off_cpu) {
      sonde_profile_offcpu_value v{};
      if (bpf_map_lookup_elem(fd, &next, &v) == 0) out.push_back({next, v.blocked_ns, v.blocks});
    } else {
      uint64_t samples = 0;
      if (bpf_map_lookup_elem(fd, &next, &samples) == 0) out.push_back({next, samples, samples});
    }
    key = next;
    prev = &key;
  }
  for (const DrainedCount& c : out) bpf_map_delete_elem(fd, &c.key);
  return out;
}

// Reads every stack of a stack-trace map, then deletes them.
std::unordered_map<uint32_t, std::vector<uint64_t>> DrainStacks(int fd) {
  std::unordered_map<uint32_t, std::vector<uint64_t>> out;
  uint32_t key = 0, next = 0;
  const void* prev = nullptr;
  uint64_t ips[SONDE_PROFILE_MAX_DEPTH];
  while (bpf_map_get_next_key(fd, prev, &next) == 0) {
    std::memset(ips, 0, sizeof(ips));
    if (bpf_map_lookup_elem(fd, &next, ips) == 0) {
      size_t n = 0;
      while (n < SONDE_PROFILE_MAX_DEPTH && ips[n] != 0) ++n;
      out.emplace(next, std::vector<uint64_t>(ips, ips + n));
    }
    key = next;
    prev = &key;
  }
  for (const auto& [id, unused] : out) bpf_map_delete_elem(fd, &id);
  return out;
}

// Off-CPU kernel stacks are taken inside the sched_switch tracepoint: their
// innermost frames are the BPF program and the tracepoint glue, not the
// blocked code. Drop them, up to the last glue frame.
void TrimTracepointFrames(std::vector<std::string>& kernel_innermost_first) {
  size_t cut = 0;
  for (size_t i = 0; i < kernel_innermost_first.size() && i < 8; ++i) {
    const std::string& f = kernel_innermost_first[i];
    if (f.rfind("bpf_trace_run", 0) == 0 || f.rfind("__bpf_trace_", 0) == 0 ||
        f.rfind("__traceiter_", 0) == 0 || f.rfind("bpf_prog_", 0) == 0) {
      cut = i + 1;
    }
  }
  kernel_innermost_first.erase(kernel_innermost_first.begin(),
                               kernel_innermost_first.begin() + static_cast<long>(cut));
}

}  // namespace

// Members are destroyed last to first: the ring buffer and the links go before
// the skeleton whose maps and programs they use.
struct Profiler::Kernel {
  ProfileSkeleton skel;
  std::vector<bpf::BpfLink> links;  // perf events (one per CPU) and sched_switch
  bpf::RingBuffer notices;
};

Profiler::Profiler(const ProfilerOptions& options)
    : options_(options), symbolizer_(options.symbolizer) {}

Profiler::~Profiler() {
  if (notice_thread_.joinable()) {
    notice_thread_.request_stop();
    notice_thread_.join();
  }
}

absl::StatusOr<std::unique_ptr<Profiler>> Profiler::Create(const ProfilerOptions& options) {
  if (!options.on_cpu && !options.off_cpu) {
    return absl::InvalidArgumentError("profiler: neither on-CPU nor off-CPU enabled");
  }
  if (options.on_cpu && (options.frequency_hz == 0 || options.frequency_hz > 10000)) {
    return absl::InvalidArgumentError("profiler: frequency_hz must be in 1..10000");
  }
  if (options.slot.count() <= 0) return absl::InvalidArgumentError("profiler: slot must be > 0");
  std::unique_ptr<Profiler> p(new Profiler(options));
  if (absl::Status s = p->Init(); !s.ok()) return s;
  return p;
}

absl::Status Profiler::Init() {
  auto opened = ProfileSkeleton::Open();
  if (!opened.ok()) return Prefixed("profile", opened.status());
  kernel_ = std::make_unique<Kernel>(std::move(*opened));
  ProfileSkeleton& skel = kernel_->skel;

  sonde_profile_config cfg{};
  cfg.flags = (options_.include_pids.empty() ? 0 : SONDE_PROFILE_PIDS_INCLUDE_ONLY) |
              (options_.offcpu_include_preempted ? SONDE_PROFILE_OFFCPU_PREEMPTED : 0) |
              (options_.include_idle ? SONDE_PROFILE_INCLUDE_IDLE : 0);
  cfg.agent_tgid = options_.exclude_self ? static_cast<uint32_t>(::getpid()) : 0;
  cfg.min_block_ns = static_cast<uint64_t>(options_.min_block.count()) * 1000;
  cfg.slot_ns = static_cast<uint64_t>(options_.slot.count()) * 1000000;
  std::memcpy(const_cast<sonde_profile_config*>(&skel->rodata->profile_config), &cfg, sizeof(cfg));

  for (bpf_map* m : {skel->maps.stacks_0, skel->maps.stacks_1}) {
    bpf_map__set_max_entries(m, options_.stack_map_entries);
  }
  for (bpf_map* m : {skel->maps.oncpu_0, skel->maps.oncpu_1, skel->maps.offcpu_0,
                     skel->maps.offcpu_1}) {
    bpf_map__set_max_entries(m, options_.count_map_entries);
  }
  bpf_program__set_autoload(skel->progs.sonde_oncpu_sample, options_.on_cpu);
  bpf_program__set_autoload(skel->progs.sonde_offcpu_switch, options_.off_cpu);
  if (absl::Status s = skel.Load(); !s.ok()) return Prefixed("profile", s);

  skel->bss->profile_epoch.gen = 0;
  for (uint32_t pid : options_.include_pids) {
    if (absl::Status s = SetPidFilter(pid, SONDE_FILTER_INCLUDE); !s.ok()) return s;
  }
  for (uint32_t pid : options_.exclude_pids) {
    if (absl::Status s = SetPidFilter(pid, SONDE_FILTER_EXCLUDE); !s.ok()) return s;
  }

  kernel_->notices.reset(ring_buffer__new(bpf_map__fd(skel->maps.process_notices), &Profiler::OnNotice,
                                         this, nullptr));
  if (!kernel_->notices) return Errno("profile: ring buffer", errno);

  last_drain_unix_ns_ = core::RealtimeNowNs();
  if (options_.on_cpu) {
    if (absl::Status s = AttachPerfEvents(); !s.ok()) return s;
  }
  if (options_.off_cpu) {
    auto link = bpf::AttachProgram(skel->progs.sonde_offcpu_switch);
    if (!link.ok()) return Prefixed("profile", link.status());
    kernel_->links.push_back(std::move(*link));
  }
  notice_thread_ = std::jthread([this](std::stop_token st) { PollNotices(st); });
  return absl::OkStatus();
}

absl::Status Profiler::AttachPerfEvents() {
  for (int cpu : OnlineCpus()) {
    perf_event_attr attr{};
    attr.size = sizeof(attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.freq = 1;
    attr.sample_freq = options_.frequency_hz;
    bpf::UniqueFd event(static_cast<int>(
        ::syscall(__NR_perf_event_open, &attr, /*pid=*/-1, cpu, /*group_fd=*/-1, PERF_FLAG_FD_CLOEXEC)));
    if (!event.valid()) {
      if (errno == ENODEV) continue;  // CPU went offline
      return Errno("profile: perf_event_open cpu " + std::to_string(cpu), errno);
    }
    auto link = bpf::AttachPerfEvent(kernel_->skel->progs.sonde_oncpu_sample, std::move(event));
    if (!link.ok()) return Prefixed("profile: cpu " + std::to_string(cpu), link.status());
    kernel_->links.push_back(std::move(*link));
    std::lock_guard<std::mutex> lock(stats_mu_);
    ++stats_.perf_events;
  }
  if (stats_.perf_events == 0) return absl::UnavailableError("profile: no CPU to sample");
  return absl::OkStatus();
}

absl::Status Profiler::SetPidFilter(uint32_t pid, uint8_t action) {
  if (bpf_map__update_elem(kernel_->skel->maps.pid_filter, &pid, sizeof(pid), &action, sizeof(action),
                           BPF_ANY) != 0) {
    return Errno("profile: pid filter update", errno);
  }
  return absl::OkStatus();
}

absl::Status Profiler::IncludePid(uint32_t pid) { return SetPidFilter(pid, SONDE_FILTER_INCLUDE); }
absl::Status Profiler::ExcludePid(uint32_t pid) { return SetPidFilter(pid, SONDE_FILTER_EXCLUDE); }

int Profiler::OnNotice(void* ctx, void* data, size_t size) {
  if (size < sizeof(sonde_profile_new_process)) return 0;
  sonde_profile_new_process notice;
  std::memcpy(&notice, data, sizeof(notice));
  static_cast<Profiler*>(ctx)->symbolizer_.NoteProcess(notice.pid);
  return 0;
}

void Profiler::PollNotices(std::stop_token stop) {
  while (!stop.stop_requested()) {
    ring_buffer__poll(kernel_->notices.get(), 100 /* ms */);
  }
}

absl::StatusOr<std::vector<ProfileWindow>> Profiler::Drain() {
  std::lock_guard<std::mutex> drain_lock(drain_mu_);
  const uint64_t t0 = core::MonotonicNowNs();

  // 1. Swap map sets and let programs that read the old generation finish.
  const uint32_t old_gen = gen_;
  gen_ = old_gen + 1;
  kernel_->skel->bss->profile_epoch.gen = gen_;
  std::this_thread::sleep_for(options_.swap_grace);
  const uint64_t window_end = core::RealtimeNowNs();
  const uint64_t window_start = last_drain_unix_ns_;
  last_drain_unix_ns_ = window_end;
  clock_.Refresh();

  // Processes announced in the last poll period (notice thread, 100 ms) are
  // snapshotted lazily on their first address: libbpf's ring buffer must not
  // be consumed from two threads.

  // 2. Read and clear the idle set.
  const bool odd = old_gen & 1;
  saved_stacks_[old_gen] =
      DrainStacks(bpf_map__fd(odd ? kernel_->skel->maps.stacks_1 : kernel_->skel->maps.stacks_0));
  std::vector<DrainedCount> on, off;
  if (options_.on_cpu) on = DrainCounts(bpf_map__fd(odd ? kernel_->skel->maps.oncpu_1 : kernel_->skel->maps.oncpu_0), false);
  if (options_.off_cpu) off = DrainCounts(bpf_map__fd(odd ? kernel_->skel->maps.offcpu_1 : kernel_->skel->maps.offcpu_0), true);

  // 3. Symbolise and fold.
  symbolizer_.BeginBatch();
  uint64_t expired = 0;
  const uint64_t slot_ns = static_cast<uint64_t>(options_.slot.count()) * 1000000;
  auto build = [&](ProfileKind kind, const std::vector<DrainedCount>& counts) {
    ProfileWindow w;
    w.kind = kind;
    w.start_unix_ns = window_start;
    w.end_unix_ns = window_end;
    w.frequency_hz = options_.frequency_hz;
    std::unordered_map<uint32_t, size_t> index;  // pid -> processes[i]
    for (const DrainedCount& c : counts) {
      const sonde_profile_key& k = c.key;
      std::vector<std::string> user, kernel;
      auto gen_it = saved_stacks_.find(k.stack_gen);
      if (gen_it == saved_stacks_.end()) {
        ++expired;
        user.push_back("[stack expired]");
      } else {
        auto frames = [&](int32_t id, bool is_user) {
          std::vector<std::string>& out = is_user ? user : kernel;
          if (id < 0) {
            if (id != -EFAULT) out.push_back(is_user ? "[user stack lost]" : "[kernel stack lost]");
            return;
          }
          auto st = gen_it->second.find(static_cast<uint32_t>(id));
          if (st == gen_it->second.end()) {
            out.push_back("[stack lost]");
            return;
          }
          for (size_t i = 0; i < st->second.size(); ++i) {
            // Return addresses point after the call: look up addr-1 so a call
            // that ends a function is not attributed to the next one.
            uint64_t addr = st->second[i] - (i == 0 ? 0 : 1);
            out.push_back(is_user ? symbolizer_.SymbolizeUser(k.pid, addr)
                                  : symbolizer_.SymbolizeKernel(addr));
          }
        };
        frames(k.user_stack_id, true);
        frames(k.kernel_stack_id, false);
        if (kind == ProfileKind::kOffCpu) TrimTracepointFrames(kernel);
      }
      auto [it, inserted] = index.emplace(k.pid, w.processes.size());
      if (inserted) {
        ProcessProfile p;
        p.pid = k.pid;
        p.process_name = symbolizer_.ProcessName(k.pid);
        p.container_id = symbolizer_.ContainerId(k.pid);
        if (p.process_name.empty() && k.pid == k.tid) p.process_name = CommOf(k.comm);
        w.processes.push_back(std::move(p));
      }
      FoldedStack s;
      s.tid = k.tid;
      s.thread_name = CommOf(k.comm);
      s.slot_start_unix_ns = clock_.ToUnixNs(uint64_t(k.slot) * slot_ns);
      s.slot_end_unix_ns = s.slot_start_unix_ns + slot_ns;
      s.stack = FoldStack(user, kernel);
      s.value = kind == ProfileKind::kOnCpu ? c.value : c.value / 1000;  // off-CPU: ns -> us
      s.count = c.count;
      w.processes[it->second].stacks.push_back(std::move(s));
    }
    for (ProcessProfile& p : w.processes) {
      if (p.process_name.empty() && !p.stacks.empty()) p.process_name = p.stacks.front().thread_name;
    }
    Normalize(w);
    return w;
  };
  std::vector<ProfileWindow> out;
  if (options_.on_cpu) out.push_back(build(ProfileKind::kOnCpu, on));
  if (options_.off_cpu) out.push_back(build(ProfileKind::kOffCpu, off));

  // 4. Keep the stacks of the last generations for off-CPU blocks that
  // started there and end later.
  for (auto it = saved_stacks_.begin(); it != saved_stacks_.end();) {
    if (old_gen - it->first + 1 > options_.stack_generations_kept) {
      it = saved_stacks_.erase(it);
    } else {
      ++it;
    }
  }

  std::lock_guard<std::mutex> lock(stats_mu_);
  ++stats_.drains;
  stats_.keys_drained += on.size() + off.size();
  stats_.expired_stacks += expired;
  stats_.last_drain_ns = core::MonotonicNowNs() - t0;
  return out;
}

void Profiler::Run(std::stop_token stop,
                   const std::function<void(std::vector<ProfileWindow>)>& sink) {
  std::mutex m;
  std::condition_variable_any cv;
  while (!stop.stop_requested()) {
    {
      std::unique_lock<std::mutex> lock(m);
      cv.wait_for(lock, stop, options_.drain_interval, [] { return false; });
    }
    auto windows = Drain();
    if (windows.ok()) sink(std::move(*windows));
  }
}

ProfilerStats Profiler::stats() const {
  ProfilerStats s;
  {
    std::lock_guard<std::mutex> lock(stats_mu_);
    s = stats_;
  }
  const int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> values(ncpu > 0 ? ncpu : 1);
  auto read = [&](uint32_t stat) -> uint64_t {
    uint64_t sum = 0;
    if (bpf_map__lookup_elem(kernel_->skel->maps.profile_stats, &stat, sizeof(stat), values.data(),
                             values.size() * sizeof(uint64_t), 0) == 0) {
      for (uint64_t v : values) sum += v;
    }
    return sum;
  };
  s.samples = read(SONDE_PROFILE_STAT_SAMPLES);
  s.offcpu_blocks = read(SONDE_PROFILE_STAT_SWITCHES);
  s.count_map_full = read(SONDE_PROFILE_STAT_COUNT_MAP_FULL);
  s.stack_errors = read(SONDE_PROFILE_STAT_STACK_ERRORS);
  s.start_map_full = read(SONDE_PROFILE_STAT_START_MAP_FULL);
  s.notices_dropped = read(SONDE_PROFILE_STAT_NOTICE_DROPPED);
  s.short_blocks = read(SONDE_PROFILE_STAT_SHORT_BLOCKS);
  auto prog_stats = [](bpf_program* prog, uint64_t& runs, uint64_t& ns) {
    const int fd = bpf_program__fd(prog);
    if (fd < 0) return;
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0) {
      runs = info.run_cnt;
      ns = info.run_time_ns;
    }
  };
  prog_stats(kernel_->skel->progs.sonde_oncpu_sample, s.oncpu_prog_runs, s.oncpu_prog_ns);
  prog_stats(kernel_->skel->progs.sonde_offcpu_switch, s.offcpu_prog_runs, s.offcpu_prog_ns);
  s.symbolizer = symbolizer_.stats();
  return s;
}

}  // namespace sonde::profile
