#pragma once
// A private nginx instance (daemon off, own prefix/pid/logs) for tests.
#include <string>

#include "tests/testlib/process.h"

namespace sonde::testlib {

class Nginx {
 public:
  // `http_block` is placed inside http { }. The instance's directory is
  // available as {DIR} inside the text. Waits until `port` accepts.
  // `worker_connections` above the default also raises worker_rlimit_nofile
  // (one fd per client connection, capped at the 20,000-file hard limit).
  Nginx(const std::string& http_block, int port, int worker_processes = 1, int worker_connections = 4096);
  ~Nginx();
  const std::string& dir() const { return dir_.path(); }
  std::string access_log() const { return dir_.File("access.log"); }
  std::string error_log() const { return dir_.File("error.log"); }
  pid_t master_pid() const { return process_.pid(); }
  bool ok() const { return ok_; }

 private:
  TempDir dir_{"sonde-nginx"};
  Subprocess process_;
  bool ok_ = false;
};

// Absolute path of the nginx binary, or "" when not installed.
std::string NginxBinary();

}  // namespace sonde::testlib
