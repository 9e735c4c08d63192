#pragma once
// Real processes for kernel/e2e tests, owned RAII-style: a Subprocess is
// killed (SIGTERM, then SIGKILL) and reaped when it goes out of scope.
#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace sonde::testlib {

class Subprocess {
 public:
  // argv[0] is looked up in PATH. stdout/stderr go to the given files
  // (empty: inherit).
  static Subprocess Start(const std::vector<std::string>& argv, const std::string& stdout_path = "",
                          const std::string& stderr_path = "");
  Subprocess() = default;
  Subprocess(Subprocess&& other) noexcept;
  Subprocess& operator=(Subprocess&& other) noexcept;
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  ~Subprocess();

  pid_t pid() const { return pid_; }
  bool running();
  // SIGTERM then wait; returns the exit code (128+signal if signalled).
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  // Waits for a normal exit; -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
};

// Runs a command to completion and returns its stdout; exit code in *code.
std::string RunCommand(const std::vector<std::string>& argv, int* code = nullptr);

// A fresh directory removed at scope exit.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "sonde-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

bool WaitForFile(const std::string& path, std::chrono::milliseconds timeout);
bool WaitForTcpPort(const std::string& host, int port, std::chrono::milliseconds timeout);
int FreeTcpPort();
bool CommandExists(const std::string& name);
std::string ReadFile(const std::string& path);

// Kernel/e2e prerequisites: outside CI a missing prerequisite skips the test;
// with CI=true it fails it (a skipped kernel test in CI is a failure).
bool InCi();
#define SONDE_REQUIRE(cond, what)                                                     \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      if (::sonde::testlib::InCi()) FAIL() << "prerequisite missing in CI: " << what; \
      GTEST_SKIP() << "prerequisite missing: " << what;                               \
    }                                                                                 \
  } while (0)
#define SONDE_REQUIRE_ROOT() SONDE_REQUIRE(::geteuid() == 0, "root (BPF)")

// Path of a binary built by this tree, e.g. AgentBinary() -> build/agent/sonde-agent.
std::string AgentBinary();
std::string ServerBinary();

}  // namespace sonde::testlib
