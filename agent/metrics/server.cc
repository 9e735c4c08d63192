#include "agent/metrics/server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <chrono>

#include "common/http/guarded_server.h"

namespace sonde::metrics {

MetricsServer::MetricsServer() = default;
MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::AddCollector(Collector c) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(c));
}

std::string MetricsServer::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& c : collectors_) c(out);
  return out;
}

absl::Status MetricsServer::Start(const std::string& host, int port) {
  if (http_) return absl::FailedPreconditionError("metrics server already started");
  // A scrape endpoint takes no body and few connections; slow or idle peers
  // are cut off so a scrape is never starved (net::GuardedHttpServer).
  net::HttpLimits limits;
  limits.threads = 4;
  limits.max_connections = 32;
  limits.max_body_bytes = 0;
  limits.head_timeout = std::chrono::seconds(5);
  limits.request_timeout = std::chrono::seconds(10);
  auto guarded = net::GuardedHttpServer::Create(limits, tls_);
  if (!guarded.ok()) return guarded.status();
  http_ = std::move(*guarded);
  http_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  if (port == 0) {
    port_ = http_->bind_to_any_port(host);
    if (port_ <= 0) return absl::UnavailableError("metrics: cannot bind " + host);
  } else {
    if (!http_->bind_to_port(host, port)) {
      http_.reset();
      return absl::UnavailableError(fmt::format("metrics: cannot bind {}:{}", host, port));
    }
    port_ = port;
  }
  thread_ = std::thread([this] { http_->listen_after_bind(); });
  // stop() is a no-op before the loop runs: wait for it so Stop() cannot hang.
  for (int i = 0; i < 2000 && !http_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return absl::OkStatus();
}

void MetricsServer::Stop() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
  http_.reset();
}

}  // namespace sonde::metrics
