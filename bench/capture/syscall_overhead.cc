// Cost of one traced syscall: a child process ping-pongs small messages over
// a loopback TCP connection (write + read per side) with socket capture off,
// then on (this process drains the ring buffer as the agent would). Prints ns
// per syscall for both and the added cost. Run as root.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>

#include <bpf/bpf.h>

#include "agent/capture/socket_capture.h"

namespace {

// Runs `iterations` round trips in a forked child; returns ns per syscall.
double MeasureChild(int iterations, size_t message_bytes) {
  int pipefd[2];
  if (pipe(pipefd) != 0) std::exit(1);
  const pid_t pid = fork();
  if (pid == 0) {
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listener, 1);
    socklen_t len = sizeof(addr);
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    const int a = socket(AF_INET, SOCK_STREAM, 0);
    connect(a, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    const int b = accept(listener, nullptr, nullptr);
    const int one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char buf[16384] = {};
    for (size_t i = 0; i < message_bytes; ++i) buf[i] = static_cast<char>('a' + i % 26);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) {
      if (write(a, buf, message_bytes) < 0 || read(b, buf, message_bytes) < 0) _exit(1);
      if (write(b, buf, message_bytes) < 0 || read(a, buf, message_bytes) < 0) _exit(1);
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    const double per_syscall = ns / (iterations * 4.0);
    if (write(pipefd[1], &per_syscall, sizeof(per_syscall)) < 0) _exit(1);
    _exit(0);
  }
  close(pipefd[1]);
  double result = 0;
  if (read(pipefd[0], &result, sizeof(result)) != sizeof(result)) result = -1;
  close(pipefd[0]);
  waitpid(pid, nullptr, 0);
  return result;
}

double Median(double a, double b, double c) {
  return std::max(std::min(a, b), std::min(std::max(a, b), c));
}

}  // namespace

int main(int argc, char** argv) {
  // usage: sonde_bench_syscall_overhead [ITERATIONS] [--no-tls]
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 100000;
  const bool tls = !(argc > 2 && std::string_view(argv[2]) == "--no-tls");
  if (geteuid() != 0) {
    std::fprintf(stderr, "run as root (loads BPF programs)\n");
    return 1;
  }
  // Kernel-measured program run time: independent of scheduling noise on a busy host.
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  std::printf("syscall overhead: %d round trips per run (4 syscalls each), median of 3 runs\n", iterations);
  std::printf("%-10s %14s %14s %14s %10s %12s\n", "msg_bytes", "off_ns/call", "on_ns/call", "added_ns", "ratio",
              "events");
  for (size_t bytes : {64, 1024, 4096}) {
    const double off = Median(MeasureChild(iterations, bytes), MeasureChild(iterations, bytes),
                              MeasureChild(iterations, bytes));
    sonde::capture::SocketCaptureOptions options;
    options.tls = tls;  // off: the data path has no TLS in-flight lookup
    auto capture = sonde::capture::SocketCapture::Create(options);
    if (!capture.ok()) {
      std::fprintf(stderr, "capture: %s\n", std::string(capture.status().message()).c_str());
      return 1;
    }
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> events{0};
    std::thread drain([&] {
      while (!stop.load()) (void)(*capture)->Poll(20, [&](sonde::capture::RawEvent) { ++events; });
    });
    const double on = Median(MeasureChild(iterations, bytes), MeasureChild(iterations, bytes),
                             MeasureChild(iterations, bytes));
    stop = true;
    drain.join();
    const auto k = (*capture)->ReadKernelCounters();
    if (stats_fd >= 0) {
      uint64_t enter_cnt = 0, enter_ns = 0, exit_cnt = 0, exit_ns = 0;
      for (const auto& p : (*capture)->ReadProgramStats()) {
        const std::string n = p.name;
        // One BTF tracepoint pair sees every syscall; during the run nearly all are the reads/writes.
        if (n == "on_sys_enter") {
          enter_cnt += p.run_count;
          enter_ns += p.run_time_ns;
        } else if (n == "on_sys_exit") {
          exit_cnt += p.run_count;
          exit_ns += p.run_time_ns;
        }
      }
      std::printf("  kernel-measured BPF time per syscall: entry %.0f ns, exit %.0f ns (runs %llu/%llu)\n",
                  enter_cnt ? double(enter_ns) / enter_cnt : 0.0, exit_cnt ? double(exit_ns) / exit_cnt : 0.0,
                  static_cast<unsigned long long>(enter_cnt), static_cast<unsigned long long>(exit_cnt));
    }
    std::printf("%-10zu %14.1f %14.1f %14.1f %10.2f %12llu  (kernel drops %llu)\n", bytes, off, on, on - off,
                on / off, static_cast<unsigned long long>(events.load()),
                static_cast<unsigned long long>(k.total_drops()));
  }
  if (stats_fd >= 0) close(stats_fd);
  return 0;
}
