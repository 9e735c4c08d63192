// sonde-server: receives agent streams on gRPC (7070), stores them (SQLite
// under --data-dir by default), and serves the JSON API and web UI (8080).
#include <csignal>
#include <filesystem>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "server/api/http_api.h"
#include "server/api/params.h"
#include "server/ingest/ingest_service.h"
#include "server/ingest/trace_join.h"
#include "server/store/storage.h"

namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool SplitHostPort(const std::string& s, std::string* host, int* port) {
  auto c = s.rfind(':');
  if (c == std::string::npos) return false;
  *host = s.substr(0, c);
  if (host->size() > 1 && host->front() == '[') *host = host->substr(1, host->size() - 2);
  try {
    *port = std::stoi(s.substr(c + 1));
  } catch (...) {
    return false;
  }
  return *port >= 0 && *port < 65536;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sonde-server: central store, query API and web UI for Sonde agents"};
  std::string data_dir = "./data";
  std::string grpc_listen = "0.0.0.0:7070";
  std::string http_listen = "0.0.0.0:8080";
  std::string token;
  std::string ui_dir;
  std::string retention_spans = "72h";
  std::string retention_metrics = "7d";
  std::string retention_interval = "60s";
  std::string log_level = "info";
  app.add_option("--data-dir", data_dir, "directory of the SQLite database (created if missing)")
      ->capture_default_str();
  app.add_option("--grpc-listen", grpc_listen, "agent ingest address (gRPC)")->capture_default_str();
  app.add_option("--http-listen", http_listen, "UI + JSON API address")->capture_default_str();
  app.add_option("--token", token, "shared secret agents must present (empty: none)");
  app.add_option("--ui-dir", ui_dir, "serve the UI from this directory instead of the embedded copy");
  app.add_option("--retention-spans", retention_spans, "keep spans, requests and profiles this long")
      ->capture_default_str();
  app.add_option("--retention-metrics", retention_metrics, "keep RED/TCP metrics this long")
      ->capture_default_str();
  app.add_option("--retention-interval", retention_interval, "how often retention runs")
      ->capture_default_str();
  std::string trace_join_delay = "60s";
  app.add_option("--trace-join-delay", trace_join_delay,
                 "join the spans of one request shipped by different agents up to this far apart (0: off)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));

  sonde::server::RetentionPolicy policy;
  auto rs = sonde::server::ParseDuration(retention_spans);
  auto rm = sonde::server::ParseDuration(retention_metrics);
  auto ri = sonde::server::ParseDuration(retention_interval);
  if (!rs.ok() || !rm.ok() || !ri.ok() || *ri == 0) {
    spdlog::error("bad retention duration");
    return 2;
  }
  policy.spans_ns = *rs;
  policy.metrics_ns = *rm;

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    spdlog::error("cannot create data dir {}: {}", data_dir, ec.message());
    return 1;
  }
  sonde::server::StorageOptions opts;
  opts.path = (std::filesystem::path(data_dir) / "sonde.db").string();
  auto storage = sonde::server::OpenStorage(opts);
  if (!storage.ok()) {
    spdlog::error("storage: {}", storage.status().ToString());
    return 1;
  }
  spdlog::info("storage: {} (schema v{})", opts.path, (*storage)->schema_version());
  auto join_delay = sonde::server::ParseDuration(trace_join_delay);
  if (!join_delay.ok()) {
    spdlog::error("bad --trace-join-delay: {}", trace_join_delay);
    return 2;
  }
  if (*join_delay > 0) {  // every backend: the join sits in front of the store
    sonde::server::TraceJoinOptions join;
    join.delay_ns = *join_delay;
    *storage = std::make_unique<sonde::server::JoiningStorage>(std::move(*storage), join);
  }

  sonde::server::IngestService ingest(storage->get(), token);
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(grpc_listen, grpc::InsecureServerCredentials(), &grpc_port);
  builder.RegisterService(&ingest);
  builder.SetMaxReceiveMessageSize(64 << 20);
  std::unique_ptr<grpc::Server> ingest_server = builder.BuildAndStart();
  if (!ingest_server || grpc_port == 0) {
    spdlog::error("cannot listen for ingest on {}", grpc_listen);
    return 1;
  }
  spdlog::info("ingest: gRPC on {}", grpc_listen);

  httplib::Server http;
  sonde::server::HttpApi api(storage->get(), &ingest.counters(), {ui_dir, nullptr});
  api.Register(http);
  std::string http_host;
  int http_port = 0;
  if (!SplitHostPort(http_listen, &http_host, &http_port) || !http.bind_to_port(http_host.c_str(), http_port)) {
    spdlog::error("cannot listen for HTTP on {}", http_listen);
    return 1;
  }
  std::thread http_thread([&] { http.listen_after_bind(); });
  spdlog::info("ui: http://{}:{}/", http_host == "0.0.0.0" ? "127.0.0.1" : http_host, http_port);

  std::signal(SIGINT, OnSignal);
  std::signal(SIGTERM, OnSignal);
  uint64_t next_retention = 0;
  while (!g_stop) {
    uint64_t now = NowNs();
    if (now >= next_retention) {
      auto r = (*storage)->EnforceRetention(now, policy);
      if (!r.ok()) spdlog::warn("retention: {}", r.status().ToString());
      else if (r->spans_deleted || r->rows_deleted)
        spdlog::info("retention: deleted {} spans, {} other rows", r->spans_deleted, r->rows_deleted);
      next_retention = now + *ri;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  spdlog::info("shutting down");
  http.stop();
  http_thread.join();
  ingest_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  return 0;
}
