// sonde-server: receives agent streams on gRPC (7070), stores them (SQLite
// under --data-dir by default), and serves the JSON API and web UI (8080).
#include <cctype>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>
#include <tuple>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include "common/http/guarded_server.h"
#include "server/api/http_api.h"
#include "server/api/params.h"
#include "server/api/self_traffic.h"
#include "server/api/server_metrics.h"
#include "server/export/exporting_storage.h"
#include "server/export/otlp_exporter.h"
#include "server/export/remote_write.h"
#include "server/config/command_line.h"
#include "server/ingest/ingest_grpc_server.h"
#include "server/ingest/ingest_service.h"
#include "server/ingest/trace_join.h"
#include "server/store/metered_storage.h"
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

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1" || host == "[::1]";
}

// A secret from a file (first line, surrounding whitespace trimmed), so it
// does not show in `ps`. Empty path: keep `*value`.
bool ReadSecretFile(const std::string& path, std::string* value) {
  if (path.empty()) return true;
  std::ifstream in(path);
  if (!in) return false;
  std::string line;
  std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t start = 0;
  while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
  *value = line.substr(start);
  return !value->empty();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sonde-server: central store, query API and web UI for Sonde agents"};
  std::string data_dir = "./data";
  std::string grpc_listen = "127.0.0.1:7070";
  std::string http_listen = "127.0.0.1:8080";
  std::string token;
  std::string token_file;
  std::string ui_token;
  std::string ui_token_file;
  sonde::net::TlsFiles tls;
  bool insecure = false;
  sonde::server::IngestOptions ingest_options;
  uint32_t max_message_mib = 8;
  std::string ui_dir;
  std::string retention_spans = "72h";
  std::string retention_metrics = "7d";
  std::string retention_interval = "60s";
  std::string query_timeout = "30s";
  std::string log_level = "info";
  app.add_option("--data-dir", data_dir, "directory of the SQLite database (created if missing)")
      ->capture_default_str();
  std::string storage_url;
  app.add_option("--storage", storage_url,
                 "clickhouse://[USER[:PASSWORD]@]HOST:8123/DB: store in ClickHouse, shared by server replicas "
                 "(default: SQLite under --data-dir)");
  app.add_option("--grpc-listen", grpc_listen, "agent ingest address (gRPC)")->capture_default_str();
  app.add_option("--http-listen", http_listen, "UI + JSON API address")->capture_default_str();
  app.add_option("--token", token, "shared secret agents must present (empty: none)");
  app.add_option("--token-file", token_file, "read the agent token from this file (not visible in ps)");
  app.add_option("--ui-token", ui_token, "token the UI/API requires (Bearer header or /login cookie)");
  app.add_option("--ui-token-file", ui_token_file, "read the UI/API token from this file");
  app.add_option("--tls-cert", tls.cert_file, "PEM certificate chain: serve ingest and UI/API over TLS");
  app.add_option("--tls-key", tls.key_file, "PEM private key for --tls-cert");
  app.add_option("--tls-client-ca", tls.client_ca_file,
                 "require client certificates signed by this CA (binds agent instances to certificates)");
  app.add_flag("--insecure", insecure,
               "allow listening beyond loopback without a token or client certificates");
  app.add_option("--max-streams", ingest_options.max_streams, "concurrent agent streams")->capture_default_str();
  app.add_option("--max-batch-spans", ingest_options.batch.max_spans, "spans per batch")->capture_default_str();
  app.add_option("--max-message-mib", max_message_mib, "largest ingest message (MiB)")->capture_default_str();
  uint64_t min_free_disk_mb = ingest_options.min_free_disk_bytes >> 20;
  app.add_option("--min-free-disk-mb", min_free_disk_mb,
                 "stop storing batches (agents keep them) below this much free space under --data-dir")
      ->capture_default_str();
  std::string sync = "normal";
  app.add_option("--sync", sync, "normal: durable except on power loss; full: fsync before every ack")
      ->check(CLI::IsMember({"normal", "full"}))
      ->capture_default_str();
  app.add_option("--ui-dir", ui_dir, "serve the UI from this directory instead of the embedded copy");
  app.add_option("--retention-spans", retention_spans, "keep spans, requests and profiles this long")
      ->capture_default_str();
  app.add_option("--retention-metrics", retention_metrics, "keep RED/TCP metrics this long")
      ->capture_default_str();
  app.add_option("--query-timeout", query_timeout,
                 "deadline of every API query (e.g. 30s; 0: none): past it the query stops and the API answers 504")
      ->capture_default_str();
  app.add_option("--retention-interval", retention_interval, "how often retention runs")
      ->capture_default_str();
  std::string remote_write_url;
  std::vector<std::string> remote_write_headers;
  app.add_option("--remote-write", remote_write_url,
                 "Prometheus remote-write URL (http://HOST:PORT/api/v1/write): RED and TCP windows as samples");
  app.add_option("--remote-write-header", remote_write_headers,
                 "header of every remote-write request, 'Name: value' (repeatable; e.g. Authorization, X-Scope-OrgID)");
  std::string otlp_export, otlp_protocol, otlp_ca;
  std::vector<std::string> otlp_headers;
  app.add_option("--otlp-export", otlp_export,
                 "OTLP endpoint for spans and RED/TCP metrics, http(s)://HOST:PORT (default: "
                 "OTEL_EXPORTER_OTLP_ENDPOINT; none: no export)");
  app.add_option("--otlp-protocol", otlp_protocol,
                 "grpc or http/protobuf (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)");
  app.add_option("--otlp-header", otlp_headers,
                 "header of every OTLP export, 'Name: value' (repeatable; adds to OTEL_EXPORTER_OTLP_HEADERS)");
  app.add_option("--otlp-ca", otlp_ca,
                 "PEM roots for an https:// OTLP endpoint (default: OTEL_EXPORTER_OTLP_CERTIFICATE, else system)");
  std::string trace_join_delay = "60s";
  app.add_option("--trace-join-delay", trace_join_delay,
                 "join the spans of one request shipped by different agents up to this far apart (0: off)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")->capture_default_str();
  sonde::server::ConfigureCommandLine(app, "sonde-server", SONDE_VERSION);
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));

  sonde::server::RetentionPolicy policy;
  auto rs = sonde::server::ParseDuration(retention_spans);
  auto rm = sonde::server::ParseDuration(retention_metrics);
  auto ri = sonde::server::ParseDuration(retention_interval);
  // Name the setting that is wrong (flag, variable, key), not just "a duration".
  for (const auto& [ok, names, value] :
       {std::tuple{rs.ok(), "--retention-spans / SONDE_RETENTION_SPANS / retention_spans", retention_spans},
        std::tuple{rm.ok(), "--retention-metrics / SONDE_RETENTION_METRICS / retention_metrics", retention_metrics},
        std::tuple{ri.ok() && *ri != 0, "--retention-interval / SONDE_RETENTION_INTERVAL / retention_interval",
                   retention_interval}}) {
    if (!ok) {
      spdlog::error("{}: '{}' is not a duration such as 90s, 15m, 72h or 7d (the interval above 0)", names, value);
      return 2;
    }
  }
  policy.spans_ns = *rs;
  policy.metrics_ns = *rm;

  if (!ReadSecretFile(token_file, &token) || !ReadSecretFile(ui_token_file, &ui_token)) {
    spdlog::error("cannot read a non-empty token from {}", !token_file.empty() ? token_file : ui_token_file);
    return 2;
  }
  if (tls.enabled() != !tls.key_file.empty() || (!tls.client_ca_file.empty() && !tls.enabled())) {
    spdlog::error("--tls-cert and --tls-key go together (and --tls-client-ca needs them)");
    return 2;
  }
  std::string grpc_host, http_host;
  int grpc_port_wanted = 0, http_port = 0;
  if (!SplitHostPort(grpc_listen, &grpc_host, &grpc_port_wanted) ||
      !SplitHostPort(http_listen, &http_host, &http_port)) {
    spdlog::error("listen addresses are host:port");
    return 2;
  }
  // Nobody is let in by accident: a listener reachable from other hosts needs
  // a credential, or an explicit --insecure.
  const bool client_certs = !tls.client_ca_file.empty();
  if (!insecure && !IsLoopback(grpc_host) && token.empty() && !client_certs) {
    spdlog::error("refusing to accept agents on {} without --token/--token-file or --tls-client-ca "
                  "(or pass --insecure)", grpc_listen);
    return 2;
  }
  if (!insecure && !IsLoopback(http_host) && ui_token.empty() && !client_certs) {
    spdlog::error("refusing to serve the UI/API on {} without --ui-token/--ui-token-file or --tls-client-ca "
                  "(or pass --insecure)", http_listen);
    return 2;
  }
  ingest_options.token = token;
  // The free-space guard watches the SQLite file's disk; a ClickHouse store
  // manages its own disks (its inserts fail when full: batches stay unacked).
  ingest_options.disk_path = storage_url.empty() ? data_dir : "";
  ingest_options.min_free_disk_bytes = min_free_disk_mb << 20;

  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    spdlog::error("cannot create data dir {}: {}", data_dir, ec.message());
    return 1;
  }
  sonde::server::StorageOptions opts;
  opts.path = storage_url.empty() ? (std::filesystem::path(data_dir) / "sonde.db").string() : storage_url;
  opts.synchronous_full = sync == "full";
  auto query_timeout_ns = sonde::server::ParseDuration(query_timeout);
  if (!query_timeout_ns.ok()) {
    spdlog::error("--query-timeout / SONDE_QUERY_TIMEOUT / query_timeout: '{}' is not a duration such as 30s or 2m "
                  "(0: none)", query_timeout);
    return 2;
  }
  opts.query_timeout = std::chrono::milliseconds(*query_timeout_ns / 1'000'000);
  auto storage = sonde::server::OpenStorage(opts);
  if (!storage.ok()) {
    spdlog::error("storage: {}", storage.status().ToString());
    return 1;
  }
  // Credentials in a clickhouse:// URL stay out of the log.
  const auto at = opts.path.rfind('@');
  spdlog::info("storage: {} (schema v{})",
               at == std::string::npos ? opts.path : "clickhouse://***" + opts.path.substr(at),
               (*storage)->schema_version());
  auto join_delay = sonde::server::ParseDuration(trace_join_delay);
  if (!join_delay.ok()) {
    spdlog::error("bad --trace-join-delay: {}", trace_join_delay);
    return 2;
  }
  // Exporters see each batch once, as stored (inside the join, which
  // rewrites trace ids before the store).
  std::unique_ptr<sonde::server::RemoteWriteExporter> remote_write;
  std::vector<sonde::server::ExportingStorage::Sink> sinks;
  if (!remote_write_url.empty()) {
    sonde::server::RemoteWriteOptions rw;
    rw.url = remote_write_url;
    for (const auto& h : remote_write_headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0) {
        spdlog::error("--remote-write-header wants 'Name: value', got '{}'", h);
        return 2;
      }
      std::string value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      rw.headers.emplace_back(h.substr(0, colon), std::move(value));
    }
    auto created = sonde::server::RemoteWriteExporter::Create(std::move(rw));
    if (!created.ok()) {
      spdlog::error("--remote-write: {}", created.status().ToString());
      return 2;
    }
    remote_write = std::move(*created);
    sinks.push_back([rw = remote_write.get()](const sonde::server::IngestContext& ctx, const sonde::v1::Batch& b) {
      rw->Export(b, ctx.host);
    });
    spdlog::info("remote write: {}", remote_write_url);
  }
  std::unique_ptr<sonde::server::OtlpExporter> otlp;
  {
    sonde::server::OtlpExportOptions ox;
    if (auto st = sonde::server::ApplyOtlpEnvironment(&ox); !st.ok()) {
      spdlog::error("OTLP export: {}", st.ToString());
      return 2;
    }
    if (!otlp_export.empty()) ox.endpoint = otlp_export;
    if (otlp_protocol == "grpc") ox.protocol = sonde::server::OtlpExportOptions::Protocol::kGrpc;
    else if (otlp_protocol == "http/protobuf") ox.protocol = sonde::server::OtlpExportOptions::Protocol::kHttpProtobuf;
    else if (!otlp_protocol.empty()) {
      spdlog::error("--otlp-protocol: grpc or http/protobuf, got '{}'", otlp_protocol);
      return 2;
    }
    for (const auto& h : otlp_headers) {
      const auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0) {
        spdlog::error("--otlp-header wants 'Name: value', got '{}'", h);
        return 2;
      }
      std::string value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      ox.headers.emplace_back(h.substr(0, colon), std::move(value));
    }
    if (!otlp_ca.empty()) ox.ca_file = otlp_ca;
    if (!ox.endpoint.empty()) {
      const std::string endpoint = ox.endpoint;
      auto created = sonde::server::OtlpExporter::Create(std::move(ox));
      if (!created.ok()) {
        spdlog::error("OTLP export: {}", created.status().ToString());
        return 2;
      }
      otlp = std::move(*created);
      sinks.push_back([e = otlp.get()](const sonde::server::IngestContext& ctx, const sonde::v1::Batch& b) {
        e->Export(b, ctx.host);
      });
      spdlog::info("OTLP export: {}", endpoint);
    }
  }
  if (!sinks.empty())
    *storage = std::make_unique<sonde::server::ExportingStorage>(std::move(*storage), std::move(sinks));
  const sonde::server::TraceJoiner* joiner = nullptr;
  if (*join_delay > 0) {  // every backend: the join sits in front of the store
    sonde::server::TraceJoinOptions join;
    join.delay_ns = *join_delay;
    auto joining = std::make_unique<sonde::server::JoiningStorage>(std::move(*storage), join);
    joiner = &joining->joiner();
    *storage = std::move(joining);
  }
  // Outermost: /metrics times every storage operation, the join included.
  auto metered_owner = std::make_unique<sonde::server::MeteredStorage>(std::move(*storage));
  sonde::server::MeteredStorage* metered = metered_owner.get();
  *storage = std::move(metered_owner);

  sonde::server::IngestService ingest(storage->get(), ingest_options);
  int grpc_port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (tls.enabled()) {
    grpc::SslServerCredentialsOptions ssl(tls.client_ca_file.empty()
                                              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_key_cert_pairs.push_back({ReadFile(tls.key_file), ReadFile(tls.cert_file)});
    if (!tls.client_ca_file.empty()) ssl.pem_root_certs = ReadFile(tls.client_ca_file);
    credentials = grpc::SslServerCredentials(ssl);
  }
  sonde::server::IngestServerConfig ingest_server_config;
  ingest_server_config.listen = grpc_listen;
  ingest_server_config.credentials = credentials;
  ingest_server_config.max_message_bytes = static_cast<size_t>(max_message_mib) << 20;
  ingest_server_config.max_streams = ingest_options.max_streams;
  std::unique_ptr<grpc::Server> ingest_server =
      sonde::server::StartIngestServer(&ingest, ingest_server_config, &grpc_port);
  if (!ingest_server) {
    spdlog::error("cannot listen for ingest on {}", grpc_listen);
    return 1;
  }
  spdlog::info("ingest: gRPC on {}", grpc_listen);

  // The UI/API takes no request body but the login form's; slow or idle
  // clients are cut off so /api/health always answers (GuardedHttpServer).
  sonde::net::HttpLimits limits;
  limits.threads = 16;
  limits.max_connections = 128;
  limits.max_body_bytes = 4096;
  limits.accepts_body = [](const httplib::Request& req) { return req.method == "POST" && req.path == "/api/login"; };
  auto guarded = sonde::net::GuardedHttpServer::Create(limits, tls);
  if (!guarded.ok()) {
    spdlog::error("HTTP: {}", guarded.status().ToString());
    return 1;
  }
  httplib::Server& http = **guarded;
  sonde::server::HttpApiOptions api_options{ui_dir, nullptr, ui_token};
  // Clients' calls to these are Sonde's own traffic (the browser using the UI): hidden unless asked.
  api_options.self_listeners = sonde::server::SelfListeners({{http_host, http_port}, {grpc_host, grpc_port}});
  sonde::server::HttpApi api(storage->get(), &ingest.counters(), std::move(api_options));
  // Before the API: its catch-all answers unknown /api/ paths with 404.
  sonde::server::ServerMetricsSources metric_sources{&ingest.counters(), metered, joiner, {}};
  if (remote_write)
    metric_sources.extra.push_back([rw = remote_write.get()](std::string* out) { rw->AppendMetrics(out); });
  if (otlp) metric_sources.extra.push_back([e = otlp.get()](std::string* out) { e->AppendMetrics(out); });
  sonde::server::RegisterServerMetrics(http, std::move(metric_sources), ui_token);
  api.Register(http);
  if (!http.bind_to_port(http_host.c_str(), http_port)) {
    spdlog::error("cannot listen for HTTP on {}", http_listen);
    return 1;
  }
  std::thread http_thread([&] { http.listen_after_bind(); });
  spdlog::info("ui: {}://{}:{}/", tls.enabled() ? "https" : "http", http_host == "0.0.0.0" ? "127.0.0.1" : http_host,
               http_port);

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
