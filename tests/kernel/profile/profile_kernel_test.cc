// Kernel tests of the continuous profiler against real processes:
//  - a frame-pointer C program spending ~75 % / ~25 % of its CPU in two named
//    functions is attributed 75 ± 10 % / 25 ± 10 %;
//  - a program sleeping in nanosleep from a named function shows that stack
//    off-CPU with the measured total sleep time ± 20 %;
//  - nginx under wrk load shows nginx's own functions (ngx_*).
// Needs root and BTF. With CI=true a missing requirement fails the test.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent/profile/folded.h"
#include "tests/testlib/process.h"
#include "agent/profile/profiler.h"

namespace sonde::profile {
namespace {

using namespace std::chrono_literals;

bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

#define REQUIRE_OR_SKIP(cond, why)                                   \
  do {                                                               \
    if (!(cond)) {                                                   \
      if (InCi()) FAIL() << "missing requirement (CI=true): " << why; \
      GTEST_SKIP() << why;                                           \
    }                                                                \
  } while (0)

// A child with a pipe on stdin (write to start it / close to end it) and one
// on stdout.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = out[0];
  }
  ~Child() {
    CloseStdin();
    if (out_ >= 0) close(out_);
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void Start() { ASSERT_EQ(write(in_, "g", 1), 1); }
  void CloseStdin() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }
  std::string ReadLine() {
    std::string s;
    char c;
    while (read(out_, &c, 1) == 1 && c != '\n') s.push_back(c);
    return s;
  }
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int in_ = -1, out_ = -1;
};

// Sum of values per stack for one pid over windows of one kind.
std::map<std::string, uint64_t> StacksOf(const std::vector<ProfileWindow>& windows,
                                         ProfileKind kind, std::vector<uint32_t> pids) {
  std::map<std::string, uint64_t> out;
  for (const ProfileWindow& w : windows) {
    if (w.kind != kind) continue;
    for (uint32_t pid : pids) {
      FoldedQuery q;
      q.pid = pid;
      for (auto& [stack, v] : MergeFolded({w}, q)) out[stack] += v;
    }
  }
  return out;
}

uint64_t SumMatching(const std::map<std::string, uint64_t>& stacks, const std::string& needle) {
  uint64_t sum = 0;
  for (auto& [stack, v] : stacks) {
    if (stack.find(needle) != std::string::npos) sum += v;
  }
  return sum;
}

uint64_t Total(const std::map<std::string, uint64_t>& stacks) {
  uint64_t sum = 0;
  for (auto& [stack, v] : stacks) sum += v;
  return sum;
}

void PrintTop(const std::map<std::string, uint64_t>& stacks, size_t n) {
  std::vector<std::pair<uint64_t, std::string>> v;
  for (auto& [s, c] : stacks) v.emplace_back(c, s);
  std::sort(v.rbegin(), v.rend());
  for (size_t i = 0; i < v.size() && i < n; ++i) {
    std::printf("  %8llu  %s\n", (unsigned long long)v[i].first, v[i].second.c_str());
  }
}

class ProfileKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_OR_SKIP(geteuid() == 0, "needs root (BPF, perf events)");
    REQUIRE_OR_SKIP(std::filesystem::exists("/sys/kernel/btf/vmlinux"), "needs kernel BTF");
  }
};

TEST_F(ProfileKernelTest, OnCpuSplitsSeventyFiveTwentyFive) {
  Child child({CPU_SPLIT_BIN, "4"});
  ASSERT_GT(child.pid(), 0);
  const uint32_t pid = static_cast<uint32_t>(child.pid());
  ProfilerOptions opt;
  opt.off_cpu = false;
  // More samples than the 99 Hz default: the machine is shared, and the
  // ±10 % bound wants a few hundred samples (binomial sd ~2 % at 500).
  opt.frequency_hz = 499;
  opt.include_pids = {pid};
  auto profiler = Profiler::Create(opt);
  ASSERT_TRUE(profiler.ok()) << profiler.status();
  child.Start();
  int status = child.Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  // The process is gone: symbolisation relies on the snapshot taken at its
  // first sample.
  auto windows = (*profiler)->Drain();
  ASSERT_TRUE(windows.ok()) << windows.status();
  auto stacks = StacksOf(*windows, ProfileKind::kOnCpu, {pid});
  const uint64_t total = Total(stacks), hot = SumMatching(stacks, "sonde_hot_75"),
                 cold = SumMatching(stacks, "sonde_cold_25");
  std::printf("on-CPU samples: total %llu, sonde_hot_75 %llu (%.1f %%), sonde_cold_25 %llu (%.1f %%)\n",
              (unsigned long long)total, (unsigned long long)hot, 100.0 * hot / std::max<uint64_t>(total, 1),
              (unsigned long long)cold, 100.0 * cold / std::max<uint64_t>(total, 1));
  PrintTop(stacks, 5);
  // 4 s at 499 Hz: ~2000 samples on an idle CPU, far fewer on a busy box.
  ASSERT_GT(total, 200u);
  EXPECT_NEAR(100.0 * hot / total, 75.0, 10.0);
  EXPECT_NEAR(100.0 * cold / total, 25.0, 10.0);
  // Stacks run from main down to the named function.
  EXPECT_GT(SumMatching(stacks, "main;sonde_hot_75"), hot * 9 / 10);
  auto st = (*profiler)->stats();
  EXPECT_GE(st.samples, total);
  EXPECT_EQ(st.count_map_full, 0u);
}

TEST_F(ProfileKernelTest, OffCpuNanosleepFromNamedFunction) {
  Child child({SLEEPER_BIN, "100", "20"});  // 100 x 20 ms = ~2 s asleep
  ASSERT_GT(child.pid(), 0);
  const uint32_t pid = static_cast<uint32_t>(child.pid());
  ProfilerOptions opt;
  opt.on_cpu = false;
  opt.include_pids = {pid};
  auto profiler = Profiler::Create(opt);
  ASSERT_TRUE(profiler.ok()) << profiler.status();
  child.Start();
  // Drain once in the middle: blocks that straddle the swap must still
  // resolve (their stacks belong to the previous generation).
  std::this_thread::sleep_for(1s);
  auto first = (*profiler)->Drain();
  ASSERT_TRUE(first.ok()) << first.status();
  const uint64_t measured_us = std::stoull(child.ReadLine());
  auto second = (*profiler)->Drain();
  ASSERT_TRUE(second.ok()) << second.status();
  std::vector<ProfileWindow> all = *first;
  all.insert(all.end(), second->begin(), second->end());

  auto stacks = StacksOf(all, ProfileKind::kOffCpu, {pid});
  const uint64_t named = SumMatching(stacks, "sonde_sleepy_function");
  std::printf("off-CPU: measured sleep %llu us, profile total %llu us, via sonde_sleepy_function %llu us\n",
              (unsigned long long)measured_us, (unsigned long long)Total(stacks),
              (unsigned long long)named);
  PrintTop(stacks, 5);
  ASSERT_GT(measured_us, 1500000u);
  EXPECT_NEAR(static_cast<double>(named), static_cast<double>(measured_us), 0.2 * measured_us);
  // The kernel side of the stack names the sleep.
  EXPECT_GT(SumMatching(stacks, "do_nanosleep_[k]"), named / 2);
  EXPECT_EQ(SumMatching(stacks, "bpf_trace_run"), 0u) << "tracepoint glue is trimmed";
  EXPECT_EQ((*profiler)->stats().expired_stacks, 0u);
  // 100 sleeps -> ~100 blocks under the named function.
  uint64_t blocks = 0;
  for (const ProfileWindow& w : all) {
    for (const ProcessProfile& p : w.processes) {
      if (p.pid != pid) continue;
      for (const FoldedStack& s : p.stacks) {
        if (w.kind == ProfileKind::kOffCpu && s.stack.find("sonde_sleepy_function") != std::string::npos)
          blocks += s.count;
      }
    }
  }
  EXPECT_NEAR(static_cast<double>(blocks), 100.0, 5.0);
}

// nginx under wrk: the profile shows nginx's own functions.
TEST_F(ProfileKernelTest, NginxUnderLoadShowsNgxFunctions) {
  REQUIRE_OR_SKIP(std::filesystem::exists("/usr/sbin/nginx"), "nginx not installed");
  REQUIRE_OR_SKIP(std::filesystem::exists("/usr/bin/wrk"), "wrk not installed");
  char tmpl[] = "/tmp/sonde-profile-nginx-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  // A port the kernel reports free right now (a pid-derived one could fall in
  // the ephemeral range and collide with a live client socket).
  const int port = sonde::testlib::FreeTcpPort();
  {
    std::ofstream conf(dir + "/nginx.conf");
    conf << "daemon off;\nmaster_process on;\nworker_processes 1;\npid " << dir
         << "/nginx.pid;\nerror_log " << dir << "/error.log;\n"
         << "events { worker_connections 256; }\n"
         << "http { access_log " << dir << "/access.log; client_body_temp_path " << dir
         << "; proxy_temp_path " << dir << "; fastcgi_temp_path " << dir << "; uwsgi_temp_path "
         << dir << "; scgi_temp_path " << dir << ";\n"
         << "  server { listen 127.0.0.1:" << port << ";\n"
         << "    location / { add_header X-Sonde profile; return 200 \"hello from nginx\\n\"; } } }\n";
  }
  Child nginx({"/usr/sbin/nginx", "-p", dir, "-c", dir + "/nginx.conf"});
  ASSERT_GT(nginx.pid(), 0);
  // Wait for the worker to be there.
  std::vector<uint32_t> pids = {static_cast<uint32_t>(nginx.pid())};
  for (int i = 0; i < 50 && pids.size() < 2; ++i) {
    std::this_thread::sleep_for(100ms);
    std::ifstream children("/proc/" + std::to_string(nginx.pid()) + "/task/" +
                           std::to_string(nginx.pid()) + "/children");
    uint32_t c;
    while (children >> c) pids.push_back(c);
  }
  ASSERT_GE(pids.size(), 2u) << "nginx worker did not start; see " << dir << "/error.log";

  ProfilerOptions opt;
  opt.frequency_hz = 499;  // enough samples in 3 s on a shared machine
  opt.include_pids = pids;
  auto profiler = Profiler::Create(opt);
  ASSERT_TRUE(profiler.ok()) << profiler.status();
  const std::string wrk = "/usr/bin/wrk -t1 -c16 -d3s http://127.0.0.1:" + std::to_string(port) +
                          "/ > " + dir + "/wrk.txt 2>&1";
  ASSERT_EQ(std::system(wrk.c_str()), 0);
  // Under wrk the worker seldom blocks at all: let it sit in epoll_wait for a
  // moment and wake it with one more request, so a block is certain to end
  // (and be counted) before the drain.
  usleep(300 * 1000);
  const std::string one = "curl -s -o /dev/null http://127.0.0.1:" + std::to_string(port) + "/";
  ASSERT_EQ(std::system(one.c_str()), 0);
  usleep(100 * 1000);
  auto windows = (*profiler)->Drain();
  ASSERT_TRUE(windows.ok()) << windows.status();
  kill(nginx.pid(), SIGQUIT);
  nginx.Wait();

  auto stacks = StacksOf(*windows, ProfileKind::kOnCpu, pids);
  const uint64_t total = Total(stacks), ngx = SumMatching(stacks, "ngx_");
  std::printf("nginx on-CPU samples: total %llu, with ngx_* frames %llu (%.1f %%)\n",
              (unsigned long long)total, (unsigned long long)ngx, 100.0 * ngx / std::max<uint64_t>(total, 1));
  PrintTop(stacks, 8);
  ASSERT_GT(total, 50u);
  EXPECT_GT(ngx, total / 20) << "nginx's own functions should show up";
  auto off = StacksOf(*windows, ProfileKind::kOffCpu, pids);
  EXPECT_GT(SumMatching(off, "epoll_wait"), 0u) << "an idle-ish worker blocks in epoll_wait";
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sonde::profile
