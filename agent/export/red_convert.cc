#include "agent/export/red_convert.h"

#include "proto/sonde/v1/enum_names.h"

namespace sonde::exporter {

std::vector<v1::RedWindow> RedWindowToProto(const metrics::RedWindow& w) {
  std::vector<v1::RedWindow> out;
  out.reserve(w.series.size());
  for (const auto& [key, s] : w.series) {
    v1::RedWindow p;
    p.set_window_start_unix_ns(w.start_unix_ns);
    p.set_window_end_unix_ns(w.start_unix_ns + w.duration_ns);
    p.set_service_name(key.service);
    // The key holds protocols::L7ProtocolName, the shared names (span_convert.cc).
    p.set_protocol(static_cast<v1::L7Protocol>(
        v1::names::NumberOf(v1::names::kL7Protocol, key.protocol).value_or(v1::L7_PROTOCOL_UNKNOWN)));
    p.set_method(key.method);
    p.set_endpoint(key.method.empty() ? key.route : key.method + " " + key.route);
    // The key holds the HTTP status code ("404"); the server stores its class.
    if (key.status.size() == 3 && key.status[0] >= '1' && key.status[0] <= '5' &&
        key.status.find_first_not_of("0123456789") == std::string::npos)
      p.set_status_class(static_cast<uint32_t>(key.status[0] - '0'));
    p.set_is_server(key.kind == "server");
    p.set_url_scheme(key.scheme);
    p.set_requests(s.count);
    p.set_errors(s.errors);
    p.set_latency_sum_ns(static_cast<uint64_t>(s.sum_seconds * 1e9));
    for (double b : metrics::kDurationBuckets) p.add_bucket_bounds_ns(static_cast<uint64_t>(b * 1e9));
    for (uint64_t c : s.buckets) p.add_bucket_counts(c);  // per bucket, last = +Inf
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace sonde::exporter
