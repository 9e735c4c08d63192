#include "server/export/remote_write.h"

#include <httplib.h>
#include <snappy.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "absl/strings/str_cat.h"

namespace sonde::server {
namespace {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct SeriesKey {
  std::string name;
  Labels labels;
  int64_t ts_ms;
  bool operator<(const SeriesKey& o) const {
    return std::tie(name, labels, ts_ms) < std::tie(o.name, o.labels, o.ts_ms);
  }
};

// Samples of one request, summed per series and time (or maxed).
class SampleSet {
 public:
  void Add(const std::string& name, const Labels& labels, int64_t ts_ms, double v, bool max = false) {
    double& slot = values_[SeriesKey{name, labels, ts_ms}];
    slot = max ? std::max(slot, v) : slot + v;
  }
  prometheus::WriteRequest Build() const {
    prometheus::WriteRequest req;
    // One TimeSeries per (name, labels), samples in time order.
    const SeriesKey* prev = nullptr;
    prometheus::TimeSeries* ts = nullptr;
    for (const auto& [key, value] : values_) {
      if (!prev || prev->name != key.name || prev->labels != key.labels) {
        ts = req.add_timeseries();
        Labels sorted = key.labels;
        sorted.emplace_back("__name__", key.name);
        std::sort(sorted.begin(), sorted.end());
        for (const auto& [n, v] : sorted) {
          if (v.empty()) continue;  // an empty label is no label
          auto* l = ts->add_labels();
          l->set_name(n);
          l->set_value(v);
        }
      }
      auto* s = ts->add_samples();
      s->set_value(value);
      s->set_timestamp(key.ts_ms);
      prev = &key;
    }
    return req;
  }

 private:
  std::map<SeriesKey, double> values_;
};

// Label values must be UTF-8 for Prometheus: captured bytes may not be.
std::string Utf8(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 2;
    if (ok) {
      out.append(bytes, i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";  // U+FFFD
      ++i;
    }
  }
  return out;
}

// "http1", "grpc", ... from the enum name (L7_PROTOCOL_HTTP1).
std::string ProtocolLabel(v1::L7Protocol p) {
  std::string name = v1::L7Protocol_Name(p);
  if (name.empty()) return absl::StrCat(static_cast<int>(p));
  name = name.substr(std::min(name.size(), sizeof("L7_PROTOCOL_") - 1));
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string Seconds(uint64_t ns) {
  return absl::StrCat(static_cast<double>(ns) / 1e9);
}

}  // namespace

prometheus::WriteRequest ToWriteRequest(const v1::Batch& batch, const std::string& host) {
  SampleSet set;
  for (const auto& w : batch.red()) {
    const int64_t ts = static_cast<int64_t>(w.window_end_unix_ns() / 1'000'000);
    Labels l = {{"service", Utf8(w.service_name().empty() ? w.comm() : w.service_name())},
                {"endpoint", Utf8(w.endpoint())},
                {"method", Utf8(w.method())},
                {"protocol", ProtocolLabel(w.protocol())},
                {"status_class", w.status_class() ? absl::StrCat(w.status_class(), "xx") : ""},
                {"direction", w.is_server() ? "server" : "client"},
                {"url_scheme", Utf8(w.url_scheme())},
                {"host", Utf8(host)}};
    set.Add("sonde_red_requests", l, ts, static_cast<double>(w.requests()));
    set.Add("sonde_red_errors", l, ts, static_cast<double>(w.errors()));
    set.Add("sonde_red_duration_seconds_sum", l, ts, static_cast<double>(w.latency_sum_ns()) / 1e9);
    uint64_t cumulative = 0;
    for (int i = 0; i < w.bucket_counts_size(); ++i) {
      cumulative += w.bucket_counts(i);
      Labels b = l;
      b.emplace_back("le", i < w.bucket_bounds_ns_size() ? Seconds(w.bucket_bounds_ns(i)) : "+Inf");
      set.Add("sonde_red_duration_seconds_bucket", b, ts, static_cast<double>(cumulative));
    }
  }
  for (const auto& w : batch.tcp()) {
    const int64_t ts = static_cast<int64_t>(w.window_end_unix_ns() / 1'000'000);
    Labels l = {{"server_address", w.server().address()},
                {"server_port", absl::StrCat(w.server().port())},
                {"client_address", w.client().address()},
                {"comm", Utf8(w.comm())},
                {"host", Utf8(host)}};
    const std::pair<const char*, uint64_t> counts[] = {
        {"sonde_tcp_retransmits", w.retransmits()},
        {"sonde_tcp_resets_sent", w.resets_sent()},
        {"sonde_tcp_resets_received", w.resets_received()},
        {"sonde_tcp_connect_failures", w.connect_failures()},
        {"sonde_tcp_connect_timeouts", w.connect_timeouts()},
        {"sonde_tcp_zero_window_events", w.zero_window_events()},
        {"sonde_tcp_bytes_sent", w.bytes_sent()},
        {"sonde_tcp_bytes_received", w.bytes_received()},
        {"sonde_tcp_opened_connections", w.opened_connections()},
        {"sonde_tcp_closed_connections", w.closed_connections()},
        {"sonde_tcp_active_connections", w.active_connections()},
        {"sonde_tcp_handshakes", w.handshake_count()},
    };
    for (const auto& [name, v] : counts) set.Add(name, l, ts, static_cast<double>(v));
    set.Add("sonde_tcp_handshake_rtt_seconds_sum", l, ts, static_cast<double>(w.handshake_rtt_sum_us()) / 1e6);
    if (w.srtt_us()) set.Add("sonde_tcp_srtt_seconds", l, ts, static_cast<double>(w.srtt_us()) / 1e6, true);
  }
  return set.Build();
}

absl::StatusOr<std::unique_ptr<RemoteWriteExporter>> RemoteWriteExporter::Create(RemoteWriteOptions options) {
  std::string_view url = options.url;
  if (!url.starts_with("http://"))
    return absl::InvalidArgumentError(absl::StrCat("remote write URL must be http://HOST:PORT/PATH: ", options.url));
  url.remove_prefix(7);
  const auto slash = url.find('/');
  std::string_view hostport = url.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  int port = 80;
  std::string host(hostport);
  if (auto colon = hostport.rfind(':'); colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    auto p = hostport.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
    if (ec != std::errc() || ptr != p.data() + p.size() || port <= 0 || port > 65535)
      return absl::InvalidArgumentError(absl::StrCat("bad port in ", options.url));
    host = std::string(hostport.substr(0, colon));
  }
  if (host.empty()) return absl::InvalidArgumentError(absl::StrCat("no host in ", options.url));
  std::unique_ptr<RemoteWriteExporter> e(new RemoteWriteExporter(std::move(options)));
  e->host_ = host;
  e->port_ = port;
  e->path_ = path;
  e->thread_ = std::thread([p = e.get()] { p->Run(); });
  return e;
}

RemoteWriteExporter::RemoteWriteExporter(RemoteWriteOptions options) : options_(std::move(options)) {}

RemoteWriteExporter::~RemoteWriteExporter() {
  Flush(std::chrono::milliseconds(2000));
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RemoteWriteExporter::Export(const v1::Batch& batch, const std::string& host) {
  if (batch.red_size() == 0 && batch.tcp_size() == 0) return;
  Enqueue(ToWriteRequest(batch, host));
}

void RemoteWriteExporter::Enqueue(prometheus::WriteRequest request) {
  size_t samples = 0;
  for (const auto& ts : request.timeseries()) samples += static_cast<size_t>(ts.samples_size());
  if (samples == 0) return;
  std::string body = request.SerializeAsString();
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.max_queue) {
      ++counters_.dropped_requests;
      counters_.dropped_samples += samples;
      return;
    }
    queue_.emplace_back(std::move(body), samples);
  }
  cv_.notify_all();
}

size_t RemoteWriteExporter::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool RemoteWriteExporter::Flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return queue_.empty() && !in_flight_; });
}

int RemoteWriteExporter::Send(const std::string& body) {
  std::string compressed;
  snappy::Compress(body.data(), body.size(), &compressed);
  httplib::Client c(host_, port_);
  c.set_connection_timeout(options_.timeout_s, 0);
  c.set_read_timeout(options_.timeout_s, 0);
  c.set_write_timeout(options_.timeout_s, 0);
  c.set_tcp_nodelay(true);
  httplib::Headers headers = {{"Content-Encoding", "snappy"},
                              {"X-Prometheus-Remote-Write-Version", "0.1.0"},
                              {"User-Agent", "sonde-server"}};
  for (const auto& [k, v] : options_.headers) headers.emplace(k, v);
  auto res = c.Post(path_.c_str(), headers, compressed, "application/x-protobuf");
  if (!res) return -1;
  return res->status >= 200 && res->status < 300 ? 0 : res->status;
}

void RemoteWriteExporter::Run() {
  uint64_t backoff = options_.initial_backoff_ms;
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) return;
    auto [body, samples] = queue_.front();
    in_flight_ = true;
    lock.unlock();
    const int result = Send(body);
    lock.lock();
    in_flight_ = false;
    if (result == 0 || (result >= 400 && result < 500 && result != 429)) {
      queue_.pop_front();
      if (result == 0) {
        ++counters_.requests_sent;
        counters_.samples_sent += samples;
      } else {  // refused for good (bad samples, out of order, auth): retrying would not help
        ++counters_.dropped_requests;
        counters_.dropped_samples += samples;
      }
      backoff = options_.initial_backoff_ms;
      cv_.notify_all();
      continue;
    }
    ++counters_.retries;  // network, 5xx, 429: the same request again later
    cv_.notify_all();
    cv_.wait_for(lock, std::chrono::milliseconds(backoff), [&] { return stop_; });
    backoff = std::min(backoff * 2, options_.max_backoff_ms);
    if (stop_) return;
  }
}

void RemoteWriteExporter::AppendMetrics(std::string* out) const {
  const std::pair<const char*, uint64_t> series[] = {
      {"sonde_server_remote_write_samples_sent_total", counters_.samples_sent.load()},
      {"sonde_server_remote_write_requests_sent_total", counters_.requests_sent.load()},
      {"sonde_server_remote_write_retries_total", counters_.retries.load()},
      {"sonde_server_remote_write_dropped_requests_total", counters_.dropped_requests.load()},
      {"sonde_server_remote_write_dropped_samples_total", counters_.dropped_samples.load()},
  };
  for (const auto& [name, v] : series) absl::StrAppend(out, "# TYPE ", name, " counter\n", name, " ", v, "\n");
  absl::StrAppend(out, "# TYPE sonde_server_remote_write_queue gauge\nsonde_server_remote_write_queue ", queued(),
                  "\n");
}

}  // namespace sonde::server
