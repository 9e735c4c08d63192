#include "server/export/otlp_exporter.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <charconv>
#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.grpc.pb.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.grpc.pb.h"
#include "server/export/otlp_convert.h"

namespace sonde::server {
namespace {

namespace collector_trace = opentelemetry::proto::collector::trace::v1;
namespace collector_metrics = opentelemetry::proto::collector::metrics::v1;

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out.push_back(static_cast<char>(v));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string Trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return std::string(s);
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

absl::Status ApplyOtlpEnvironment(OtlpExportOptions* o, const char* (*getenv_fn)(const char*)) {
  auto env = [&](const char* name) -> std::string {
    const char* v = getenv_fn ? getenv_fn(name) : std::getenv(name);
    return v ? std::string(v) : std::string();
  };
  if (o->endpoint.empty()) o->endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
  if (const std::string p = env("OTEL_EXPORTER_OTLP_PROTOCOL"); !p.empty()) {
    if (p == "grpc") o->protocol = OtlpExportOptions::Protocol::kGrpc;
    else if (p == "http/protobuf") o->protocol = OtlpExportOptions::Protocol::kHttpProtobuf;
    else return absl::InvalidArgumentError(absl::StrCat("OTEL_EXPORTER_OTLP_PROTOCOL ", p,
                                                        ": grpc or http/protobuf (http/json is not supported)"));
  }
  // "k1=v1,k2=v2", values percent-encoded (W3C baggage format).
  std::string_view headers = "";
  const std::string h = env("OTEL_EXPORTER_OTLP_HEADERS");
  headers = h;
  while (!headers.empty()) {
    const auto comma = headers.find(',');
    std::string_view pair = headers.substr(0, comma);
    headers = comma == std::string_view::npos ? std::string_view() : headers.substr(comma + 1);
    const auto eq = pair.find('=');
    if (eq == std::string_view::npos || Trim(pair.substr(0, eq)).empty())
      return absl::InvalidArgumentError("OTEL_EXPORTER_OTLP_HEADERS wants k=v,k2=v2");
    o->headers.emplace_back(Trim(pair.substr(0, eq)), PercentDecode(Trim(pair.substr(eq + 1))));
  }
  if (o->ca_file.empty()) o->ca_file = env("OTEL_EXPORTER_OTLP_CERTIFICATE");
  if (const std::string t = env("OTEL_EXPORTER_OTLP_TIMEOUT"); !t.empty()) {
    int ms = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), ms);
    if (ec != std::errc() || p != t.data() + t.size() || ms <= 0)
      return absl::InvalidArgumentError("OTEL_EXPORTER_OTLP_TIMEOUT wants milliseconds");
    o->timeout_ms = ms;
  }
  return absl::OkStatus();
}

struct OtlpExporter::Grpc {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<collector_trace::TraceService::Stub> traces;
  std::unique_ptr<collector_metrics::MetricsService::Stub> metrics;
};

absl::StatusOr<std::unique_ptr<OtlpExporter>> OtlpExporter::Create(OtlpExportOptions options) {
  std::string_view url = options.endpoint;
  bool tls = false;
  if (url.starts_with("https://")) {
    tls = true;
    url.remove_prefix(8);
  } else if (url.starts_with("http://")) {
    url.remove_prefix(7);
  } else {
    return absl::InvalidArgumentError(absl::StrCat("OTLP endpoint must be http(s)://HOST:PORT[/PATH]: ", options.endpoint));
  }
  if (tls && options.protocol == OtlpExportOptions::Protocol::kHttpProtobuf)
    return absl::InvalidArgumentError("https:// needs --otlp-protocol grpc (HTTP/protobuf export is plain HTTP here)");
  const auto slash = url.find('/');
  const std::string_view hostport = url.substr(0, slash);
  std::string base = slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  std::string host(hostport);
  int port = tls ? 443 : (options.protocol == OtlpExportOptions::Protocol::kGrpc ? 4317 : 4318);
  if (auto colon = hostport.rfind(':'); colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    auto p = hostport.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port <= 0 || port > 65535)
      return absl::InvalidArgumentError(absl::StrCat("bad port in ", options.endpoint));
    host = std::string(hostport.substr(0, colon));
  }
  if (host.empty()) return absl::InvalidArgumentError(absl::StrCat("no host in ", options.endpoint));
  std::unique_ptr<OtlpExporter> e(new OtlpExporter(std::move(options)));
  e->host_ = host;
  e->port_ = port;
  e->tls_ = tls;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.ends_with("/v1/traces")) {  // a signal URL: metrics next to it
    e->traces_path_ = base;
    e->metrics_path_ = base.substr(0, base.size() - 10) + "/v1/metrics";
  } else {
    e->traces_path_ = base + "/v1/traces";
    e->metrics_path_ = base + "/v1/metrics";
  }
  if (e->options_.protocol == OtlpExportOptions::Protocol::kGrpc) {
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (tls) {
      grpc::SslCredentialsOptions ssl;
      if (!e->options_.ca_file.empty()) {
        ssl.pem_root_certs = ReadAll(e->options_.ca_file);
        if (ssl.pem_root_certs.empty())
          return absl::InvalidArgumentError(absl::StrCat("cannot read CA file ", e->options_.ca_file));
      }
      creds = grpc::SslCredentials(ssl);
    }
    e->grpc_ = std::make_unique<Grpc>();
    e->grpc_->channel = grpc::CreateChannel(absl::StrCat(host, ":", port), creds);
    e->grpc_->traces = collector_trace::TraceService::NewStub(e->grpc_->channel);
    e->grpc_->metrics = collector_metrics::MetricsService::NewStub(e->grpc_->channel);
  }
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

OtlpExporter::OtlpExporter(OtlpExportOptions options) : options_(std::move(options)) {}

OtlpExporter::~OtlpExporter() {
  Flush(std::chrono::milliseconds(2000));
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void OtlpExporter::Export(const v1::Batch& batch, const std::string& host) {
  if (batch.spans_size() > 0) {
    Enqueue({true, ToOtlpTraces(batch, host).SerializeAsString(), static_cast<uint64_t>(batch.spans_size())});
  }
  if (batch.red_size() > 0 || batch.tcp_size() > 0) {
    auto m = ToOtlpMetrics(batch, host);
    uint64_t points = 0;
    for (const auto& rm : m.resource_metrics())
      for (const auto& sm : rm.scope_metrics())
        for (const auto& metric : sm.metrics())
          points += static_cast<uint64_t>(metric.sum().data_points_size() + metric.gauge().data_points_size() +
                                          metric.histogram().data_points_size());
    Enqueue({false, m.SerializeAsString(), points});
  }
}

void OtlpExporter::Enqueue(Item item) {
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queue) {
      ++counters_.dropped_requests;
      return;
    }
    queue_.push_back(std::move(item));
  }
  cv_.notify_all();
}

size_t OtlpExporter::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool OtlpExporter::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !in_flight_; });
}

OtlpExporter::Outcome OtlpExporter::SendHttp(const Item& item) {
  httplib::Client c(host_, port_);
  const int s = options_.timeout_ms / 1000, us = (options_.timeout_ms % 1000) * 1000;
  c.set_connection_timeout(s, us);
  c.set_read_timeout(s, us);
  c.set_write_timeout(s, us);
  c.set_tcp_nodelay(true);
  httplib::Headers headers = {{"User-Agent", "sonde-server"}};
  for (const auto& [k, v] : options_.headers) headers.emplace(k, v);
  auto res = c.Post((item.traces ? traces_path_ : metrics_path_).c_str(), headers, item.body,
                    "application/x-protobuf");
  if (!res) return Outcome::kRetry;
  if (res->status >= 200 && res->status < 300) return Outcome::kSent;
  const int st = res->status;
  return st == 429 || st == 502 || st == 503 || st == 504 ? Outcome::kRetry : Outcome::kDrop;
}

OtlpExporter::Outcome OtlpExporter::SendGrpc(const Item& item) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(options_.timeout_ms));
  for (const auto& [k, v] : options_.headers) {
    std::string key = k;
    for (char& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    ctx.AddMetadata(key, v);
  }
  grpc::Status st;
  if (item.traces) {
    collector_trace::ExportTraceServiceRequest req;
    collector_trace::ExportTraceServiceResponse resp;
    if (!req.ParseFromString(item.body)) return Outcome::kDrop;
    st = grpc_->traces->Export(&ctx, req, &resp);
  } else {
    collector_metrics::ExportMetricsServiceRequest req;
    collector_metrics::ExportMetricsServiceResponse resp;
    if (!req.ParseFromString(item.body)) return Outcome::kDrop;
    st = grpc_->metrics->Export(&ctx, req, &resp);
  }
  if (st.ok()) return Outcome::kSent;
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::CANCELLED:
      return Outcome::kRetry;
    default:
      return Outcome::kDrop;
  }
}

OtlpExporter::Outcome OtlpExporter::Send(const Item& item) {
  return grpc_ ? SendGrpc(item) : SendHttp(item);
}

void OtlpExporter::Run() {
  uint64_t backoff = options_.initial_backoff_ms;
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    Item item = queue_.front();
    in_flight_ = true;
    lock.unlock();
    const Outcome outcome = Send(item);
    lock.lock();
    in_flight_ = false;
    if (outcome != Outcome::kRetry) {
      queue_.pop_front();
      if (outcome == Outcome::kSent) {
        ++counters_.requests_sent;
        (item.traces ? counters_.spans_sent : counters_.metric_points_sent) += item.items;
      } else {
        ++counters_.dropped_requests;
      }
      backoff = options_.initial_backoff_ms;
      cv_.notify_all();
      continue;
    }
    ++counters_.retries;
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::milliseconds(backoff), [&] { return stop_; });
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
    if (stop_) return;
  }
}

void OtlpExporter::AppendMetrics(std::string* out) const {
  const std::pair<const char*, uint64_t> series[] = {
      {"sonde_server_otlp_export_spans_sent_total", counters_.spans_sent.load()},
      {"sonde_server_otlp_export_metric_points_sent_total", counters_.metric_points_sent.load()},
      {"sonde_server_otlp_export_requests_sent_total", counters_.requests_sent.load()},
      {"sonde_server_otlp_export_retries_total", counters_.retries.load()},
      {"sonde_server_otlp_export_dropped_requests_total", counters_.dropped_requests.load()},
  };
  for (const auto& [name, v] : series) absl::StrAppend(out, "# TYPE ", name, " counter\n", name, " ", v, "\n");
  absl::StrAppend(out, "# TYPE sonde_server_otlp_export_queue gauge\nsonde_server_otlp_export_queue ", queued(), "\n");
}

}  // namespace sonde::server
