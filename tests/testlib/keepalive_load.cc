#include "tests/testlib/keepalive_load.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace sonde::testlib {
namespace {

double Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void SleepUntil(double due) {
  for (double now = Now(); due - now > 50e-6; now = Now()) {
    const double left = due - now;
    timespec ts{static_cast<time_t>(left),
                static_cast<long>((left - static_cast<double>(static_cast<time_t>(left))) * 1e9)};
    nanosleep(&ts, nullptr);
  }
}

bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads one response: head up to the blank line, then Content-Length bytes.
bool ReadResponse(int fd, char* buf, size_t cap) {
  size_t have = 0;
  for (;;) {
    const ssize_t n = read(fd, buf + have, cap - have - 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    have += static_cast<size_t>(n);
    buf[have] = '\0';
    const char* end = strstr(buf, "\r\n\r\n");
    if (end == nullptr) {
      if (have + 1 >= cap) return false;
      continue;
    }
    const char* cl = strcasestr(buf, "\r\ncontent-length:");
    const size_t body = cl != nullptr && cl < end ? strtoul(cl + 17, nullptr, 10) : 0;
    const size_t total = static_cast<size_t>(end - buf) + 4 + body;
    if (have >= total) return have == total;  // keep-alive: nothing else may follow
    if (total + 1 >= cap) return false;
  }
}

// The child's whole life; never returns.
[[noreturn]] void RunChild(const KeepAliveLoadOptions& o, int index, int count, int report_fd, int hold_fd) {
  rlimit lim{};
  getrlimit(RLIMIT_NOFILE, &lim);
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(o.port));
  addr.sin_addr.s_addr = htonl(0x7f000001u + static_cast<uint32_t>(index % 8));
  KeepAliveLoadResult r;
  // Connections live in a plain array: no allocation after fork beyond this.
  int* fds = new int[static_cast<size_t>(count)];
  int open = 0;
  for (int i = 0; i < count; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      if (fd >= 0) close(fd);
      ++r.failed;
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fds[open++] = fd;
  }
  r.connected = static_cast<uint64_t>(open);
  char request[512];
  const int req_len = snprintf(request, sizeof(request),
                               "GET %s HTTP/1.1\r\nHost: sonde-test\r\nUser-Agent: keepalive-load\r\n\r\n",
                               o.path.c_str());
  char response[8192];
  const double start = Now();
  const double deadline = start + o.duration_s;
  // Waves: one request on every live connection, written and read back in
  // groups of kGroup connections (every connection busy within the wave,
  // while each request's response is read at once: no client-side delay
  // makes the spans look slow).
  constexpr int kGroup = 64;
  const double wave_interval = o.rate > 0 ? o.connections / o.rate : 0;
  for (int wave = 0;; ++wave) {
    if (wave_interval > 0) SleepUntil(start + wave * wave_interval);
    if (o.duration_s > 0 ? Now() >= deadline : wave >= o.requests_per_connection) break;
    for (int first = 0; first < open; first += kGroup) {
      const int last = std::min(open, first + kGroup);
      // Paced: the wave's requests spread over its interval, not one burst.
      if (wave_interval > 0) SleepUntil(start + (wave + static_cast<double>(first) / open) * wave_interval);
      for (int i = first; i < last; ++i) {
        if (fds[i] >= 0 && !WriteAll(fds[i], request, static_cast<size_t>(req_len))) {
          ++r.failed;
          fds[i] = -1;  // left open on purpose: closed by the kernel at exit
        }
      }
      for (int i = first; i < last; ++i) {
        if (fds[i] < 0) continue;
        if (ReadResponse(fds[i], response, sizeof(response))) {
          ++r.requests;
        } else {
          ++r.failed;
          fds[i] = -1;
        }
      }
    }
  }
  r.seconds = Now() - start;
  WriteAll(report_fd, reinterpret_cast<const char*>(&r), sizeof(r));
  char b;
  while (read(hold_fd, &b, 1) < 0 && errno == EINTR) {
  }
  _exit(0);  // every socket still open: the kernel closes them
}

}  // namespace

KeepAliveLoad::~KeepAliveLoad() { ExitAll(); }

absl::Status KeepAliveLoad::Start(const KeepAliveLoadOptions& o) {
  if (o.processes <= 0 || o.connections < o.processes) return absl::InvalidArgumentError("bad load shape");
  if (o.connections / o.processes > 19'000) {
    return absl::InvalidArgumentError("more than 19,000 connections per process: add processes");
  }
  for (int p = 0; p < o.processes; ++p) {
    int report[2], hold[2];
    if (pipe(report) != 0 || pipe(hold) != 0) return absl::InternalError("pipe failed");
    const int count = o.connections / o.processes + (p < o.connections % o.processes ? 1 : 0);
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError(absl::StrCat("fork failed: ", std::strerror(errno)));
    if (pid == 0) {
      close(report[0]);
      close(hold[1]);
      // Earlier children's pipe ends must not keep them alive through us.
      for (int fd : hold_fds_) close(fd);
      for (int fd : report_fds_) close(fd);
      RunChild(o, p, count, report[1], hold[0]);
    }
    close(report[1]);
    close(hold[0]);
    pids_.push_back(pid);
    report_fds_.push_back(report[0]);
    hold_fds_.push_back(hold[1]);
  }
  return absl::OkStatus();
}

absl::Status KeepAliveLoad::WaitDone(double timeout_s, KeepAliveLoadResult* result) {
  *result = {};
  const double deadline = Now() + timeout_s;
  for (size_t i = 0; i < report_fds_.size(); ++i) {
    pollfd p{report_fds_[i], POLLIN, 0};
    const int left_ms = static_cast<int>((deadline - Now()) * 1000);
    if (left_ms <= 0 || poll(&p, 1, left_ms) != 1) return absl::DeadlineExceededError("load children did not finish");
    KeepAliveLoadResult r;
    if (read(report_fds_[i], &r, sizeof(r)) != static_cast<ssize_t>(sizeof(r))) {
      return absl::InternalError(absl::StrCat("load child ", pids_[i], " died before reporting"));
    }
    result->connected += r.connected;
    result->requests += r.requests;
    result->failed += r.failed;
    result->seconds = std::max(result->seconds, r.seconds);
  }
  return absl::OkStatus();
}

void KeepAliveLoad::ExitAll() {
  for (int fd : hold_fds_) close(fd);
  for (int fd : report_fds_) close(fd);
  hold_fds_.clear();
  report_fds_.clear();
  for (pid_t pid : pids_) {
    int status = 0;
    // A child still busy with requests (timeout) would not read its pipe.
    if (waitpid(pid, &status, WNOHANG) == 0) {
      const double deadline = Now() + 10;
      while (waitpid(pid, &status, WNOHANG) == 0) {
        if (Now() > deadline) {
          kill(pid, SIGKILL);
          waitpid(pid, &status, 0);
          break;
        }
        usleep(10'000);
      }
    }
  }
  pids_.clear();
}

}  // namespace sonde::testlib
