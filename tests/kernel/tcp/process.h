#pragma once
// A child process started by a test and stopped (by its own pid) when the
// object goes away, even when the test fails.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

extern char** environ;

namespace sonde::testing {

class ChildProcess {
 public:
  // Starts argv with stdout on a pipe.
  static ChildProcess Start(const std::vector<std::string>& argv) {
    ChildProcess c;
    int fds[2];
    if (pipe(fds) != 0) return c;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    if (posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ) == 0) c.pid_ = pid;
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    c.out_ = fdopen(fds[0], "r");
    return c;
  }
  ChildProcess() = default;
  ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_), out_(o.out_) { o.pid_ = -1; o.out_ = nullptr; }
  ChildProcess& operator=(ChildProcess&& o) noexcept {
    Stop();
    pid_ = o.pid_; out_ = o.out_; o.pid_ = -1; o.out_ = nullptr;
    return *this;
  }
  ~ChildProcess() { Stop(); }
  bool running() const { return pid_ > 0; }
  // Reads one line of the child's stdout (blocking); empty at EOF.
  std::string ReadLine() {
    if (!out_) return {};
    char buf[512];
    if (!fgets(buf, sizeof(buf), out_)) return {};
    return buf;
  }
  void Stop() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int st;
      waitpid(pid_, &st, 0);
      pid_ = -1;
    }
    if (out_) { fclose(out_); out_ = nullptr; }
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
};

}  // namespace sonde::testing
