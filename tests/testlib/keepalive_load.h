#pragma once
// Many concurrent keep-alive HTTP/1.1 connections, spread over child
// processes (20,000 open files per process is a hard limit here), each
// connection sending requests one at a time. Children open their
// connections, run their requests, report, and then hold the connections
// open until ExitAll(): they exit without closing a socket, so the kernel
// closes every one of them on process exit (no close() syscall).
//
// Child i connects to 127.0.0.(1 + i % 8): each loopback address has its own
// ephemeral port range, so 50,000 connections fit.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace sonde::testlib {

struct KeepAliveLoadOptions {
  int port = 0;
  int connections = 1000;  // in total
  int processes = 1;
  // Either a fixed number of requests on every connection, or (when
  // duration_s > 0) as many as fit in the duration.
  int requests_per_connection = 1;
  double duration_s = 0;
  // Requests per second over all connections (0: as fast as the server
  // answers): one request on every connection per 1/(rate/connections) s.
  double rate = 0;
  std::string path = "/";
};

struct KeepAliveLoadResult {
  uint64_t connected = 0;  // connections established
  uint64_t requests = 0;   // requests whose complete response was read
  uint64_t failed = 0;     // connections that failed (connect, write, read)
  double seconds = 0;      // the request phase's wall time (longest child)
};

class KeepAliveLoad {
 public:
  KeepAliveLoad() = default;
  ~KeepAliveLoad();
  KeepAliveLoad(const KeepAliveLoad&) = delete;
  KeepAliveLoad& operator=(const KeepAliveLoad&) = delete;

  // Forks the children; they start at once. Call from a single-threaded
  // process (children use only async-signal-safe calls anyway).
  absl::Status Start(const KeepAliveLoadOptions& options);
  // Blocks until every child has reported (its requests are done and its
  // connections are held open), or `timeout_s`.
  absl::Status WaitDone(double timeout_s, KeepAliveLoadResult* result);
  // Every child exits without closing its sockets; reaps them.
  void ExitAll();
  const std::vector<pid_t>& pids() const { return pids_; }

 private:
  std::vector<pid_t> pids_;
  std::vector<int> report_fds_;  // child -> parent: one KeepAliveLoadResult
  std::vector<int> hold_fds_;    // parent -> child: EOF means exit
};

}  // namespace sonde::testlib
