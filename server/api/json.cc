#include "server/api/json.h"

#include <map>
#include <tuple>

#include "proto/sonde/v1/enum_names.h"
#include "server/store/storage.h"

namespace sonde::server {

using nlohmann::json;

std::string_view SourceLetter(int source) { return v1::names::SpanSourceLetter(source); }
std::string_view KindName(int kind) { return v1::names::SpanKindName(kind); }
std::string_view ProtocolName(int protocol) { return v1::names::L7ProtocolName(protocol); }

namespace {
double Ms(uint64_t ns) { return static_cast<double>(ns) / 1e6; }

json Addr(const v1::SocketAddress& a) {
  if (a.address().empty() && a.port() == 0) return nullptr;
  json j = json::object();
  j["address"] = a.address();
  j["port"] = a.port();
  return j;
}

json Headers(const google::protobuf::RepeatedPtrField<v1::Header>& hs) {
  json out = json::array();
  for (const auto& h : hs) {
    json j = json::object();
    j["name"] = h.name();
    j["value"] = h.value();
    if (h.unknown()) j["unknown"] = true;
    out.push_back(std::move(j));
  }
  return out;
}

// Captured bytes may be any octets; JSON needs UTF-8. Invalid sequences
// become U+FFFD instead of failing the whole response.
json Text(const std::string& s) {
  return json(s);
}
}  // namespace

json SpanJson(const StoredSpan& st) {
  const auto& s = st.span;
  json attrs = json::object();
  for (const auto& a : s.attributes()) {
    switch (a.value_case()) {
      case v1::Attribute::kStringValue: attrs[a.key()] = a.string_value(); break;
      case v1::Attribute::kIntValue: attrs[a.key()] = a.int_value(); break;
      case v1::Attribute::kDoubleValue: attrs[a.key()] = a.double_value(); break;
      case v1::Attribute::kBoolValue: attrs[a.key()] = a.bool_value(); break;
      default: break;
    }
  }
  // Field by field: an initializer list would build a two-element array per
  // field first (a 40,000-span trace spent most of its JSON time there).
  json j = json::object();
  j["trace_id"] = HexEncode(s.trace_id());
  j["span_id"] = HexEncode(s.span_id());
  j["parent_span_id"] = HexEncode(s.parent_span_id());
  j["parent_reason"] = s.parent_reason() ? LinkReasonName(s.parent_reason()) : "";
  j["source"] = SourceLetter(s.source());
  j["kind"] = KindName(s.kind());
  j["name"] = Text(s.name());
  j["service"] = Text(s.service_name().empty() ? s.comm() : s.service_name());
  j["endpoint"] = Text(s.endpoint().empty() ? s.name() : s.endpoint());
  j["start_ns"] = std::to_string(s.start_unix_ns());
  j["start_ms"] = Ms(s.start_unix_ns());
  j["duration_ms"] = Ms(s.end_unix_ns() > s.start_unix_ns() ? s.end_unix_ns() - s.start_unix_ns() : 0);
  j["status"] = v1::names::StatusCodeName(s.status());
  j["status_message"] = Text(s.status_message());
  j["http_status"] = s.http_status();
  j["grpc_status"] = s.grpc_status();
  j["protocol"] = ProtocolName(s.protocol());
  j["host"] = st.host;
  j["pid"] = s.pid();
  j["tid"] = s.tid();
  j["comm"] = Text(s.comm());
  j["container_id"] = s.container_id();
  j["local"] = Addr(s.local());
  j["peer"] = Addr(s.peer());
  j["client"] = Addr(s.client());
  j["server"] = Addr(s.server());
  j["request_bytes"] = s.request_bytes();
  j["response_bytes"] = s.response_bytes();
  j["request_tcp_seq"] = s.has_request_tcp_seq() ? json(s.request_tcp_seq()) : json(nullptr);
  j["response_tcp_seq"] = s.has_response_tcp_seq() ? json(s.response_tcp_seq()) : json(nullptr);
  j["attributes"] = std::move(attrs);
  j["request_headers"] = Headers(s.request_headers());
  j["response_headers"] = Headers(s.response_headers());
  return j;
}

json TraceJson(const AssembledTrace& t) {
  json spans = json::array();
  for (int i : t.order) {
    const auto& a = t.spans[static_cast<size_t>(i)];
    json j = SpanJson(*a.stored);
    j["index"] = i;
    j["parent_index"] = a.parent;
    j["edge"] = a.edge;
    j["edge_origin"] = a.edge_origin;
    j["missing_parent"] = a.missing_parent;
    j["skew_ns"] = a.skew_ns;
    j["depth"] = a.depth;
    j["offset_ms"] = Ms(a.start_ns - t.start_ns);
    j["adjusted_duration_ms"] = Ms(a.end_ns - a.start_ns);
    spans.push_back(std::move(j));
  }
  json roots = json::array();
  for (int r : t.roots) roots.push_back(r);
  return {{"trace_id", t.spans.empty() ? "" : HexEncode(t.spans[0].stored->span.trace_id())},
          {"start_ns", std::to_string(t.start_ns)},
          {"start_ms", Ms(t.start_ns)},
          {"duration_ms", Ms(t.end_ns - t.start_ns)},
          {"span_count", t.spans.size()},
          {"roots", roots},
          {"spans", spans}};
}

json RedJson(const RedSeries& s) {
  json pts = json::array();
  for (const auto& p : s.points) {
    pts.push_back({{"t_ms", Ms(p.t_ns)},
                   {"requests", p.requests},
                   {"errors", p.errors},
                   {"rate", p.rate},
                   {"error_rate", p.error_rate},
                   {"p50_ms", p.p50_ns / 1e6},
                   {"p90_ms", p.p90_ns / 1e6},
                   {"p99_ms", p.p99_ns / 1e6}});
  }
  return {{"source", s.source}, {"points", pts}};
}

json TcpPairsJson(const std::vector<StoredTcpWindow>& windows) {
  struct Pair {
    std::string host, client, server, comm;
    uint64_t hs_sum = 0, hs_n = 0, retrans = 0, zwin = 0, rst_s = 0, rst_r = 0, fail = 0, tmo = 0,
             tx = 0, rx = 0, opened = 0, closed = 0, windows = 0;
    uint32_t srtt = 0, active = 0;
    uint64_t last = 0;
    json series = json::array();
  };
  std::map<std::tuple<std::string, std::string, std::string>, Pair> pairs;
  for (const auto& sw : windows) {
    const auto& w = sw.window;
    std::string client = w.client().address() + (w.client().port() ? ":" + std::to_string(w.client().port()) : "");
    std::string server = w.server().address() + ":" + std::to_string(w.server().port());
    auto& p = pairs[{sw.host, client, server}];
    p.host = sw.host;
    p.client = client;
    p.server = server;
    p.comm = w.comm();
    p.hs_sum += w.handshake_rtt_sum_us();
    p.hs_n += w.handshake_count();
    p.retrans += w.retransmits();
    p.zwin += w.zero_window_events();
    p.rst_s += w.resets_sent();
    p.rst_r += w.resets_received();
    p.fail += w.connect_failures();
    p.tmo += w.connect_timeouts();
    p.tx += w.bytes_sent();
    p.rx += w.bytes_received();
    p.opened += w.opened_connections();
    p.closed += w.closed_connections();
    ++p.windows;
    if (w.window_start_unix_ns() >= p.last) {
      p.last = w.window_start_unix_ns();
      p.srtt = w.srtt_us();
      p.active = w.active_connections();
    }
    p.series.push_back({{"t_ms", Ms(w.window_start_unix_ns())},
                        {"srtt_us", w.srtt_us()},
                        {"retransmits", w.retransmits()},
                        {"resets", w.resets_sent() + w.resets_received()}});
  }
  json out = json::array();
  for (auto& [k, p] : pairs) {
    out.push_back({{"host", p.host},
                   {"client", p.client},
                   {"server", p.server},
                   {"comm", p.comm},
                   {"handshake_rtt_us", p.hs_n ? static_cast<double>(p.hs_sum) / static_cast<double>(p.hs_n) : 0.0},
                   {"srtt_us", p.srtt},
                   {"retransmits", p.retrans},
                   {"zero_window_events", p.zwin},
                   {"resets_sent", p.rst_s},
                   {"resets_received", p.rst_r},
                   {"connect_failures", p.fail},
                   {"connect_timeouts", p.tmo},
                   {"bytes_sent", p.tx},
                   {"bytes_received", p.rx},
                   {"opened_connections", p.opened},
                   {"closed_connections", p.closed},
                   {"active_connections", p.active},
                   {"windows", p.windows},
                   {"series", std::move(p.series)}});
  }
  return out;
}

json RecordJson(const v1::RequestRecord& r) {
  return {{"protocol", ProtocolName(r.protocol())},
          {"method", r.method()},
          {"path", r.path()},
          {"query", r.query()},
          {"authority", r.authority()},
          {"status", r.status()},
          {"grpc_status", r.grpc_status()},
          {"start_ms", Ms(r.start_unix_ns())},
          {"duration_ms", Ms(r.end_unix_ns() > r.start_unix_ns() ? r.end_unix_ns() - r.start_unix_ns() : 0)},
          {"pid", r.pid()},
          {"tid", r.tid()},
          {"comm", r.comm()},
          {"client", Addr(r.client())},
          {"server", Addr(r.server())},
          {"request_bytes", r.request_bytes()},
          {"response_bytes", r.response_bytes()},
          {"request_headers", Headers(r.request_headers())},
          {"response_headers", Headers(r.response_headers())},
          {"trace_id", HexEncode(r.trace_id())},
          {"span_id", HexEncode(r.span_id())},
          {"is_server", r.is_server()}};
}

}  // namespace sonde::server
