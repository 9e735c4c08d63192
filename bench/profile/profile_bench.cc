// Profiler figures.
//  1. Overhead: a CPU-bound process does a fixed amount of work with the
//     profiler off and on (99 Hz on-CPU + off-CPU), rounds interleaved. The
//     figure is the work done per CPU-second of the process (its user+sys
//     time from wait4, so other load on a shared machine does not count).
//  2. Symbolisation throughput: frames/s through the Symbolizer (cold memo
//     each batch), ELF symbol table loads, kallsyms parsing.
// Usage: profile_bench [--rounds=N] [--work=N] [google benchmark flags]
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>
#include <bpf/bpf.h>

#include "agent/profile/address_symbols.h"
#include "agent/profile/elf_symbols.h"
#include "agent/profile/proc_maps.h"
#include "agent/profile/profiler.h"
#include "agent/profile/symbolizer.h"

namespace sp = sonde::profile;

namespace {

struct RunResult {
  double cpu_s = 0;
  double wall_s = 0;
};

// Runs the fixed workload; returns its CPU and wall time.
RunResult RunWorkload(unsigned long work) {
  std::string rounds = std::to_string(work);
  timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execl(CPU_BOUND_BIN, CPU_BOUND_BIN, rounds.c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  RunResult r;
  r.cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
            ru.ru_stime.tv_usec / 1e6;
  r.wall_s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  return r;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void OverheadFigure(int rounds, unsigned long work) {
  if (geteuid() != 0) {
    std::printf("overhead: skipped (needs root for BPF and perf events)\n");
    return;
  }
  // Kernel-side cost of the programs: run time per invocation, measured by
  // the kernel itself (independent of other load on the machine).
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  uint64_t on_runs = 0, on_ns = 0, off_runs = 0, off_ns = 0;
  double on_seconds = 0;
  std::vector<double> off_cpu, on_cpu, off_wall, on_wall;
  uint64_t samples = 0, keys = 0, drain_ns_max = 0;
  RunWorkload(work / 4);  // warm caches, page in the binary
  for (int i = 0; i < rounds; ++i) {
    RunResult off = RunWorkload(work);
    sp::ProfilerOptions opt;  // defaults: 99 Hz on-CPU + off-CPU, all processes
    auto profiler = sp::Profiler::Create(opt);
    if (!profiler.ok()) {
      std::printf("overhead: profiler failed: %s\n", profiler.status().ToString().c_str());
      return;
    }
    RunResult on = RunWorkload(work);
    auto windows = (*profiler)->Drain();
    const sp::ProfilerStats st = (*profiler)->stats();
    on_runs += st.oncpu_prog_runs;
    on_ns += st.oncpu_prog_ns;
    off_runs += st.offcpu_prog_runs;
    off_ns += st.offcpu_prog_ns;
    on_seconds += on.wall_s;
    samples += st.samples;
    keys += st.keys_drained;
    drain_ns_max = std::max(drain_ns_max, st.last_drain_ns);
    off_cpu.push_back(off.cpu_s);
    on_cpu.push_back(on.cpu_s);
    off_wall.push_back(off.wall_s);
    on_wall.push_back(on.wall_s);
  }
  const double off_c = Median(off_cpu), on_c = Median(on_cpu);
  const double off_min = *std::min_element(off_cpu.begin(), off_cpu.end());
  const double on_min = *std::min_element(on_cpu.begin(), on_cpu.end());
  const double off_w = Median(off_wall), on_w = Median(on_wall);
  std::printf(
      "overhead (99 Hz on-CPU + off-CPU, %d interleaved rounds, median):\n"
      "  CPU time of fixed work: off %.3f s, on %.3f s -> throughput change %+.2f %%\n"
      "  CPU time of fixed work, best round: off %.3f s, on %.3f s -> %+.2f %%\n"
      "  wall time of fixed work: off %.3f s, on %.3f s -> %+.2f %% (noisy on a shared machine)\n"
      "  samples taken while on: %llu (all processes); drained %llu keys, slowest drain "
      "(swap + read + symbolise + fold) %.1f ms\n",
      rounds, off_c, on_c, 100.0 * (off_c / on_c - 1.0), off_min, on_min,
      100.0 * (off_min / on_min - 1.0), off_w, on_w, 100.0 * (off_w / on_w - 1.0),
      static_cast<unsigned long long>(samples), static_cast<unsigned long long>(keys),
      drain_ns_max / 1e6);
  if (stats_fd >= 0 && on_runs > 0) {
    const int ncpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
    const double on_avg = double(on_ns) / on_runs, off_avg = off_runs ? double(off_ns) / off_runs : 0;
    const double per_cpu_rate = double(on_runs) / on_seconds / ncpu;
    const double off_rate = double(off_runs) / on_seconds / ncpu;
    std::printf(
        "  BPF program cost (kernel run-time stats): on-CPU sample %.0f ns x %.0f/s per CPU = "
        "%.4f %% of a CPU; off-CPU sched_switch %.0f ns x %.0f/s per CPU = %.4f %% of a CPU\n",
        on_avg, per_cpu_rate, 100.0 * on_avg * per_cpu_rate / 1e9, off_avg, off_rate,
        100.0 * off_avg * off_rate / 1e9);
  }
  if (stats_fd >= 0) close(stats_fd);
}

// Addresses inside this process: functions of libc, libstdc++, libelf and
// this binary, spread over each mapping.
std::vector<uint64_t> SelfAddresses() {
  auto maps = sp::ReadProcMaps(static_cast<uint32_t>(getpid()));
  std::vector<uint64_t> out;
  if (!maps.ok()) return out;
  for (const sp::MemoryMapping& m : *maps) {
    if (!m.IsFile()) continue;
    for (uint64_t a = m.start; a < m.end; a += std::max<uint64_t>((m.end - m.start) / 400, 16)) {
      out.push_back(a);
    }
  }
  return out;
}

void BM_SymbolizeUserFrames(benchmark::State& state) {
  sp::Symbolizer sym({});
  const uint32_t pid = static_cast<uint32_t>(getpid());
  sym.NoteProcess(pid);
  const std::vector<uint64_t> addrs = SelfAddresses();
  size_t resolved = 0;
  for (auto _ : state) {
    sym.BeginBatch();  // empty memo: every frame takes the full path
    for (uint64_t a : addrs) {
      std::string f = sym.SymbolizeUser(pid, a);
      resolved += f[0] != '[';
      benchmark::DoNotOptimize(f);
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * addrs.size()));
  state.counters["frames_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * addrs.size()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SymbolizeUserFrames)->Unit(benchmark::kMillisecond);

void BM_SymbolizeUserFramesMemoized(benchmark::State& state) {
  sp::Symbolizer sym({});
  const uint32_t pid = static_cast<uint32_t>(getpid());
  sym.NoteProcess(pid);
  const std::vector<uint64_t> addrs = SelfAddresses();
  sym.BeginBatch();
  for (auto _ : state) {
    for (uint64_t a : addrs) benchmark::DoNotOptimize(sym.SymbolizeUser(pid, a));
  }
  state.counters["frames_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * addrs.size()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SymbolizeUserFramesMemoized)->Unit(benchmark::kMillisecond);

void BM_SymbolizeKernelFrames(benchmark::State& state) {
  sp::Symbolizer sym({});
  if (!sym.kernel_symbols_available()) {
    state.SkipWithError("kallsyms hidden (not root)");
    return;
  }
  std::vector<uint64_t> addrs;
  for (uint64_t i = 0; i < 4096; ++i) addrs.push_back(0xffffffff81000000ULL + i * 4099);
  for (auto _ : state) {
    for (uint64_t a : addrs) benchmark::DoNotOptimize(sym.SymbolizeKernel(a));
  }
  state.counters["frames_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * addrs.size()),
                         benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SymbolizeKernelFrames)->Unit(benchmark::kMillisecond);

std::string LibcPath() {
  Dl_info info{};
  dladdr(reinterpret_cast<void*>(&std::printf), &info);
  return info.dli_fname ? info.dli_fname : "/lib/x86_64-linux-gnu/libc.so.6";
}

void BM_LoadElfSymbols(benchmark::State& state, std::string path) {
  size_t symbols = 0;
  for (auto _ : state) {
    auto s = sp::ElfSymbols::Load(path);
    if (!s.ok()) {
      state.SkipWithError(s.status().ToString().c_str());
      return;
    }
    symbols = (*s)->symbol_count();
  }
  state.counters["symbols"] = static_cast<double>(symbols);
  state.counters["symbols_per_s"] = benchmark::Counter(
      static_cast<double>(symbols * state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_LoadElfSymbols, libc, LibcPath())->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_LoadElfSymbols, nginx, std::string("/usr/sbin/nginx"))
    ->Unit(benchmark::kMillisecond);

void BM_ParseKallsyms(benchmark::State& state) {
  auto text = sp::ReadWholeFile("/proc/kallsyms");
  if (!text.ok()) {
    state.SkipWithError("no /proc/kallsyms");
    return;
  }
  size_t n = 0;
  for (auto _ : state) {
    auto k = sp::AddressSymbols::ParseKallsyms(*text);
    if (!k.ok()) {
      state.SkipWithError("kallsyms hidden (not root)");
      return;
    }
    n = k->size();
  }
  state.counters["symbols"] = static_cast<double>(n);
}
BENCHMARK(BM_ParseKallsyms)->Unit(benchmark::kMillisecond);

}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  unsigned long work = 2500;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--rounds=", 9) == 0) {
      rounds = std::atoi(argv[i] + 9);
    } else if (std::strncmp(argv[i], "--work=", 7) == 0) {
      work = std::strtoul(argv[i] + 7, nullptr, 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  int n = static_cast<int>(rest.size());
  benchmark::Initialize(&n, rest.data());
  OverheadFigure(rounds, work);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
