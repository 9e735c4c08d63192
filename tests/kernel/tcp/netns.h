#pragma once
// Two network namespaces joined by a veth pair: two "hosts" on one machine.
// Everything created here is removed in the destructor (deleting a namespace
// also deletes its veth end and nft tables), even when a test fails.
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace sonde::testing {

inline std::string Run(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  int status = pclose(f);
  if (rc) *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Skips (or fails under CI=true) when a prerequisite is missing.
#define SONDE_REQUIRE(cond, why)                                  \
  do {                                                            \
    if (!(cond)) {                                                \
      if (::sonde::testing::InCi()) FAIL() << "missing: " << why; \
      GTEST_SKIP() << "missing: " << why;                         \
    }                                                             \
  } while (0)

class NetnsPair {
 public:
  // `tag` keeps names unique per test; `subnet` picks 10.205.<subnet>.0/24.
  NetnsPair(const std::string& tag, int subnet)
      : client_ns_("sd5c" + tag), server_ns_("sd5s" + tag),
        client_ip_("10.205." + std::to_string(subnet) + ".1"),
        server_ip_("10.205." + std::to_string(subnet) + ".2") {
    Cleanup();
    const std::string vc = "sd5v" + tag + "c", vs = "sd5v" + tag + "s";
    int rc = 0;
    std::string cmds = "set -e; ip netns add " + client_ns_ + "; ip netns add " + server_ns_ +
                       "; ip link add " + vc + " type veth peer name " + vs +
                       "; ip link set " + vc + " netns " + client_ns_ + "; ip link set " + vs +
                       " netns " + server_ns_ + "; ip -n " + client_ns_ + " addr add " +
                       client_ip_ + "/24 dev " + vc + "; ip -n " + server_ns_ + " addr add " +
                       server_ip_ + "/24 dev " + vs + "; ip -n " + client_ns_ + " link set " + vc +
                       " up; ip -n " + server_ns_ + " link set " + vs + " up; ip -n " +
                       client_ns_ + " link set lo up; ip -n " + server_ns_ + " link set lo up";
    setup_output_ = Run("sh -c '" + cmds + "'", &rc);
    ok_ = rc == 0;
  }
  ~NetnsPair() { Cleanup(); }
  NetnsPair(const NetnsPair&) = delete;
  NetnsPair& operator=(const NetnsPair&) = delete;

  bool ok() const { return ok_; }
  const std::string& setup_output() const { return setup_output_; }
  const std::string& client_ns() const { return client_ns_; }
  const std::string& server_ns() const { return server_ns_; }
  const std::string& client_ip() const { return client_ip_; }
  const std::string& server_ip() const { return server_ip_; }

  std::string Exec(const std::string& ns, const std::string& cmd, int* rc = nullptr) const {
    return Run("ip netns exec " + ns + " " + cmd, rc);
  }

 private:
  void Cleanup() {
    Run("ip netns del " + client_ns_);
    Run("ip netns del " + server_ns_);
  }
  std::string client_ns_, server_ns_, client_ip_, server_ip_;
  std::string setup_output_;
  bool ok_ = false;
};

// Runs fn on a thread that joined namespace `ns`: sockets it creates live there.
inline void RunInNetns(const std::string& ns, const std::function<void()>& fn) {
  std::thread t([&] {
    int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "setns " << ns;
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    fn();
  });
  t.join();
}

// Starts fn on a thread in `ns` and returns it (caller joins).
inline std::thread StartInNetns(const std::string& ns, std::function<void()> fn) {
  return std::thread([ns, fn = std::move(fn)] {
    int fd = open(("/var/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
      ADD_FAILURE() << "setns " << ns;
      if (fd >= 0) close(fd);
      return;
    }
    close(fd);
    fn();
  });
}

// A thread joined on destruction even when an assertion returned early; the
// abort callback first unblocks it (e.g. shutdown() of a listening socket).
class ScopedThread {
 public:
  ScopedThread(std::thread t, std::function<void()> abort) : t_(std::move(t)), abort_(std::move(abort)) {}
  ~ScopedThread() {
    if (t_.joinable()) {
      if (abort_) abort_();
      t_.join();
    }
  }
  void join() { t_.join(); }

 private:
  std::thread t_;
  std::function<void()> abort_;
};

}  // namespace sonde::testing
