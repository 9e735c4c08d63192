#pragma once
// The agent's Prometheus endpoint (:9464/metrics) and /healthz. Producers
// register collectors that append text-format lines (written with
// agent/metrics/prometheus_text.h); the server calls them on every scrape.
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "common/http/guarded_server.h"

namespace httplib {
class Server;
}

namespace sonde::metrics {

using Collector = std::function<void(std::string& out)>;

class MetricsServer {
 public:
  MetricsServer();
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void AddCollector(Collector c);
  // Serve HTTPS (optionally requiring client certificates); before Start.
  void SetTls(net::TlsFiles tls) { tls_ = std::move(tls); }
  // Binds and serves on a background thread. Port 0 picks a free port.
  absl::Status Start(const std::string& host, int port);
  void Stop();
  int port() const { return port_; }
  // What a scrape returns (also used by tests without sockets).
  std::string Render() const;

 private:
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Collector> collectors_;
  int port_ = 0;
  net::TlsFiles tls_;
};

}  // namespace sonde::metrics
