#pragma once
// A private clickhouse-server for tests: a plain process with its config,
// data and logs in a temp dir, HTTP and native ports chosen at run time,
// stopped (and its files removed) when the object goes away. Never the
// system service.
#include <memory>
#include <string>
#include <vector>

#include "tests/testlib/process.h"

namespace sonde::testing {

class ClickHouseServer {
 public:
  // Starts the server and waits until it answers (empty `error` on success).
  // `remote_servers`: XML put inside <remote_servers> (shard clusters);
  // ports 0: chosen here (a cluster's config needs them before the start).
  static std::unique_ptr<ClickHouseServer> Start(std::string* error, const std::string& remote_servers = "",
                                                 int http_port = 0, int tcp_port = 0);
  ~ClickHouseServer();

  int http_port() const { return http_port_; }
  int tcp_port() const { return tcp_port_; }
  // clickhouse://127.0.0.1:PORT/database
  std::string Url(const std::string& database) const;
  // Runs a statement over HTTP; returns the body (error text on failure,
  // with *ok false).
  std::string Query(const std::string& sql, bool* ok = nullptr) const;
  // CPU seconds the server process used so far (user + system).
  double CpuSeconds() const;
  pid_t pid() const { return process_.pid(); }

 private:
  ClickHouseServer() = default;
  static std::unique_ptr<ClickHouseServer> StartOnce(std::string* error, const std::string& remote_servers,
                                                     int http_port, int tcp_port);
  std::unique_ptr<testlib::TempDir> dir_;
  testlib::Subprocess process_;
  int http_port_ = 0;
  int tcp_port_ = 0;
};

// Whether clickhouse-server is installed (scripts/setup.sh installs it).
bool ClickHouseInstalled();

}  // namespace sonde::testing
