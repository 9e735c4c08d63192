#include "agent/metrics/red.h"

#include "agent/protocols/registry.h"

#include <fmt/format.h>

#include <cstring>

#include "agent/metrics/prometheus_text.h"
#include "agent/trace/span_builder.h"

namespace sonde::metrics {
namespace {

// The status part of a series key: the HTTP status code itself ("404": the
// semconv label http_response_status_code; a handful of values per route),
// "grpc_<code>" for gRPC, "none" when there is none.
std::string_view StatusOf(const trace::Span& s, char (&buf)[16]) {
  if (s.grpc_status >= 0) {
    auto r = fmt::format_to_n(buf, sizeof buf, "grpc_{}", s.grpc_status);
    return {buf, r.size < sizeof buf ? r.size : sizeof buf};
  }
  if (s.http_status >= 100 && s.http_status < 600) {
    buf[0] = static_cast<char>('0' + s.http_status / 100);
    buf[1] = static_cast<char>('0' + s.http_status / 10 % 10);
    buf[2] = static_cast<char>('0' + s.http_status % 10);
    return {buf, 3};
  }
  return "none";
}

bool IsHttpStatus(std::string_view status) {
  return status.size() == 3 && status[0] >= '1' && status[0] <= '5' && status[1] >= '0' && status[1] <= '9' &&
         status[2] >= '0' && status[2] <= '9';
}

// The labels of a RED series, in exposition order, named as OpenTelemetry's
// semantic conventions name the attributes of these metrics:
// - HTTP (http1, http2): network_protocol_name="http" + network_protocol_version,
//   http_request_method, http_route, http_response_status_code, url_scheme,
//   error_type (the status code when the request failed: 5xx on the server
//   side, 4xx/5xx on the client side; empty otherwise);
// - gRPC: rpc_system="grpc", rpc_service, rpc_method (from the route
//   "/pkg.Service/Method"), rpc_grpc_status_code;
// - databases (redis, postgresql): db_system_name, db_operation_name and, when
//   it says more than the operation, db_query_summary ("SELECT pgbench_accounts");
// - DNS: dns_question_type (A, AAAA...) and dns_question_name;
// - other protocols: their name and what the key holds.
prometheus::Labels SeriesLabels(const RedKey& k) {
  if (k.protocol == "grpc") {
    std::string_view route = k.route;
    if (!route.empty() && route.front() == '/') route.remove_prefix(1);
    const size_t slash = route.find('/');
    const std::string_view service = slash == std::string_view::npos ? route : route.substr(0, slash);
    const std::string_view method = slash == std::string_view::npos ? std::string_view() : route.substr(slash + 1);
    const std::string_view code =
        std::string_view(k.status).starts_with("grpc_") ? std::string_view(k.status).substr(5) : std::string_view();
    return {{"service_name", k.service},          {"rpc_system", "grpc"},
            {"rpc_service", std::string(service)}, {"rpc_method", std::string(method)},
            {"rpc_grpc_status_code", std::string(code)}};
  }
  if (k.protocol == "http1" || k.protocol == "http2") {
    const bool failed = IsHttpStatus(k.status) && (k.status[0] == '5' || (k.kind == "client" && k.status[0] == '4'));
    return {{"service_name", k.service},
            {"network_protocol_name", "http"},
            {"network_protocol_version", k.protocol == "http1" ? "1.1" : "2"},
            {"http_request_method", k.method},
            {"http_route", k.route},
            {"http_response_status_code", IsHttpStatus(k.status) ? k.status : ""},
            {"url_scheme", k.scheme},
            {"error_type", failed ? k.status : ""}};
  }
  if (k.protocol == "redis" || k.protocol == "postgresql") {
    prometheus::Labels labels = {{"service_name", k.service},
                                 {"db_system_name", k.protocol},
                                 {"db_operation_name", k.method}};
    if (k.route != k.method) labels.push_back({"db_query_summary", k.route});
    return labels;
  }
  if (k.protocol == "dns") {
    return {{"service_name", k.service}, {"dns_question_type", k.method}, {"dns_question_name", k.route}};
  }
  prometheus::Labels labels = {{"service_name", k.service},
                               {"network_protocol_name", k.protocol},
                               {"http_request_method", k.method},
                               {"http_route", k.route},
                               {"status", k.status}};
  if (!k.scheme.empty()) labels.push_back({"url_scheme", k.scheme});
  return labels;
}

// gRPC is its own family (semconv rpc.server.duration / rpc.client.duration),
// not HTTP's, although it is parsed by the HTTP/2 parser.
const protocols::RedMetricNames kGrpcRedMetrics{"rpc_server_duration_seconds", "rpc_client_duration_seconds",
                                                "sonde_rpc_server_errors_total", "sonde_rpc_client_errors_total",
                                                "gRPC calls"};

// The Prometheus family a series belongs to: its protocol's (protocols/semantics.h).
const protocols::RedMetricNames& FamilyOf(const RedKey& k) {
  if (k.protocol == "grpc") return kGrpcRedMetrics;
  return protocols::SemanticsFor(std::string_view(k.protocol)).red_metrics;
}

void AppendHistogram(std::string& out, std::string_view name, std::string_view help,
                     const std::map<RedKey, RedSeries>& totals, std::string_view kind) {
  bool header = false;
  for (const auto& [k, s] : totals) {
    if (k.kind != kind) continue;
    if ((kind == "server" ? FamilyOf(k).server_duration : FamilyOf(k).client_duration) != name) continue;
    if (!header) {
      prometheus::AppendMetricHeader(out, name, "histogram", help);
      header = true;
    }
    prometheus::AppendHistogram(out, name, SeriesLabels(k), kDurationBuckets, s.buckets, s.sum_seconds);
  }
}

void AppendErrors(std::string& out, std::string_view name, const std::map<RedKey, RedSeries>& totals,
                  std::string_view kind) {
  bool header = false;
  for (const auto& [k, s] : totals) {
    if (k.kind != kind) continue;
    if ((kind == "server" ? FamilyOf(k).server_errors : FamilyOf(k).client_errors) != name) continue;
    if (!header) {
      prometheus::AppendMetricHeader(out, name, "counter",
                                     "Requests counted as errors (semconv span status).");
      header = true;
    }
    prometheus::AppendSample(out, name, SeriesLabels(k), s.errors);
  }
}

}  // namespace

void RedSeries::Add(double seconds, bool error) {
  ++count;
  if (error) ++errors;
  sum_seconds += seconds;
  size_t i = 0;
  while (i < kDurationBuckets.size() && seconds > kDurationBuckets[i]) ++i;
  ++buckets[i];
}

void RedSeries::Merge(const RedSeries& o) {
  count += o.count;
  errors += o.errors;
  sum_seconds += o.sum_seconds;
  for (size_t i = 0; i < buckets.size(); ++i) buckets[i] += o.buckets[i];
}

namespace {

inline uint64_t Mix(uint64_t a, uint64_t b) {
  const __uint128_t m = static_cast<__uint128_t>(a ^ 0x9e3779b97f4a7c15ull) * (b ^ 0xd6e8feb86659fd93ull);
  return static_cast<uint64_t>(m) ^ static_cast<uint64_t>(m >> 64);
}

uint64_t HashField(uint64_t h, std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Mix(h, w);
    p += 8;
    n -= 8;
  }
  // The last 0-7 bytes without a variable-length memcpy (a library call per
  // field, 7 fields per span): two overlapping 4-byte loads, or three bytes.
  uint64_t tail = 0;
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    tail = (static_cast<uint64_t>(hi) << 32) | lo;
  } else if (n > 0) {
    const auto* u = reinterpret_cast<const unsigned char*>(p);
    tail = (static_cast<uint64_t>(u[0]) << 16) | (static_cast<uint64_t>(u[n >> 1]) << 8) | u[n - 1];
  }
  return Mix(h, tail ^ (static_cast<uint64_t>(s.size()) << 56));
}

// a == b; fields up to 16 bytes without a library call (two overlapping
// loads of the widest word that fits).
inline bool FieldEquals(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  const char* p = a.data();
  const char* q = b.data();
  const auto load8 = [](const char* x) {
    uint64_t w;
    std::memcpy(&w, x, 8);
    return w;
  };
  const auto load4 = [](const char* x) {
    uint32_t w;
    std::memcpy(&w, x, 4);
    return w;
  };
  if (n > 16) return std::memcmp(p, q, n) == 0;
  if (n >= 8) return ((load8(p) ^ load8(q)) | (load8(p + n - 8) ^ load8(q + n - 8))) == 0;
  if (n >= 4) return ((load4(p) ^ load4(q)) | (load4(p + n - 4) ^ load4(q + n - 4))) == 0;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] != q[i]) return false;
  }
  return true;
}

}  // namespace

bool RedKeyViewsEqual(const RedKeyView& a, const RedKeyView& b) {
  return FieldEquals(a.route, b.route) && FieldEquals(a.status, b.status) && FieldEquals(a.method, b.method) &&
         FieldEquals(a.service, b.service) && FieldEquals(a.kind, b.kind) && FieldEquals(a.protocol, b.protocol) &&
         FieldEquals(a.scheme, b.scheme);
}

size_t HashRedKey(const RedKeyView& k) {
  uint64_t h = 0;
  h = HashField(h, k.service);
  h = HashField(h, k.protocol);
  h = HashField(h, k.kind);
  h = HashField(h, k.method);
  h = HashField(h, k.route);
  h = HashField(h, k.status);
  h = HashField(h, k.scheme);
  return static_cast<size_t>(h);
}

RedKeyView RedAggregator::KeyOf(const trace::Span& s, char (&status_buf)[16]) {
  RedKeyView k;
  k.service = s.service_name.empty() ? s.comm : s.service_name;
  k.protocol = protocols::L7ProtocolName(s.protocol);
  k.kind = s.kind == trace::SpanKind::kServer || s.kind == trace::SpanKind::kClient ? trace::SpanKindName(s.kind)
                                                                                    : std::string_view("unknown");
  if (!s.route.empty()) {
    k.method = s.operation;
    k.route = s.route;
  } else {
    const std::string* method = trace::StringAttribute(s, "http.request.method");
    const std::string* route = trace::StringAttribute(s, "http.route");
    k.method = method ? std::string_view(*method) : std::string_view();
    k.route = route ? std::string_view(*route) : std::string_view(s.endpoint);
  }
  k.status = StatusOf(s, status_buf);
  k.scheme = trace::UrlScheme(s);
  return k;
}

uint32_t RedAggregator::SeriesId(const RedKeyView& key) {
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  RedKey owned{std::string(key.service), std::string(key.protocol), std::string(key.kind),
               std::string(key.method), std::string(key.route), std::string(key.status),
               std::string(key.scheme)};
  if (keys_.size() >= options_.max_series) {
    ++overflowed_;
    owned.route = "{overflow}";
    owned.method.clear();
    if (auto it = ids_.find(owned); it != ids_.end()) return it->second;
  }
  const auto id = static_cast<uint32_t>(keys_.size());
  ids_.emplace(owned, id);
  keys_.push_back(std::move(owned));
  totals_.emplace_back();
  return id;
}

void RedAggregator::OnSpan(const trace::Span& span) {
  if (span.source != trace::SpanSource::kSystem && span.source != trace::SpanSource::kNetwork) return;
  char status_buf[16];
  const RedKeyView key = KeyOf(span, status_buf);
  const double seconds = static_cast<double>(span.duration_ns()) / 1e9;
  const bool error = span.status == trace::StatusCode::kError;
  const uint64_t window = span.end_unix_ns - span.end_unix_ns % options_.window_ns;
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t id = SeriesId(key);
  totals_[id].Add(seconds, error);
  if (window != last_window_start_) {
    last_window_ = &open_[window];
    last_window_start_ = window;
  }
  last_window_->series[id].Add(seconds, error);
}

RedWindow RedAggregator::Close(uint64_t start, OpenWindow& w) const {
  RedWindow out;
  out.start_unix_ns = start;
  out.duration_ns = options_.window_ns;
  for (auto& [id, series] : w.series) out.series.emplace(keys_[id], series);
  return out;
}

void RedAggregator::Tick(uint64_t now_unix_ns) {
  std::lock_guard<std::mutex> lock(mu_);
  while (!open_.empty() &&
         open_.begin()->first + options_.window_ns + options_.late_grace_ns <= now_unix_ns) {
    if (open_.begin()->first == last_window_start_) {
      last_window_start_ = UINT64_MAX;
      last_window_ = nullptr;
    }
    closed_.push_back(Close(open_.begin()->first, open_.begin()->second));
    open_.erase(open_.begin());
    if (closed_.size() > options_.max_closed_windows) closed_.pop_front();
  }
}

std::vector<RedWindow> RedAggregator::TakeClosedWindows() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RedWindow> out(std::make_move_iterator(closed_.begin()),
                             std::make_move_iterator(closed_.end()));
  closed_.clear();
  return out;
}

std::map<RedKey, RedSeries> RedAggregator::Totals() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<RedKey, RedSeries> out;
  for (size_t id = 0; id < keys_.size(); ++id) out.emplace(keys_[id], totals_[id]);
  return out;
}

uint64_t RedAggregator::overflowed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return overflowed_;
}

void RedAggregator::AppendPrometheus(std::string& out) const {
  const std::map<RedKey, RedSeries> totals = Totals();  // sorted: stable output
  // One set of families per distinct protocol family, in first-seen order.
  std::vector<const protocols::RedMetricNames*> families;
  for (const auto& [k, s] : totals) {
    const protocols::RedMetricNames* f = &FamilyOf(k);
    bool seen = false;
    for (const auto* g : families) seen = seen || g->server_duration == f->server_duration;
    if (!seen) families.push_back(f);
  }
  for (const auto* f : families) {
    AppendHistogram(out, f->server_duration, fmt::format("Duration of {}, server side (system spans).", f->what),
                    totals, "server");
    AppendHistogram(out, f->client_duration, fmt::format("Duration of {}, client side (system spans).", f->what),
                    totals, "client");
    AppendErrors(out, f->server_errors, totals, "server");
    AppendErrors(out, f->client_errors, totals, "client");
  }
}

}  // namespace sonde::metrics
