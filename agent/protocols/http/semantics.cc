#include "agent/protocols/http/semantics.h"

#include "agent/protocols/http/route.h"

namespace sonde::protocols::http {
namespace {

// "host:port" -> host, port (0 when absent); IPv6 literals keep their brackets off.
void SplitAuthority(std::string_view authority, std::string_view* host, uint16_t* port) {
  *port = 0;
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    uint32_t p = 0;
    bool ok = colon + 1 < authority.size();
    for (char c : authority.substr(colon + 1)) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      p = p * 10 + static_cast<uint32_t>(c - '0');
    }
    if (ok && p <= 65535) *port = static_cast<uint16_t>(p);
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);
  }
  *host = authority;
}

}  // namespace

void DescribeHttp(const L7Record& r, bool server_side, SpanDescription& out) {
  NormaliseRouteInto(r.path, out.route);
  out.operation = r.method;
  const std::string_view method = r.method.empty() ? std::string_view("HTTP") : std::string_view(r.method);
  out.endpoint.reserve(method.size() + 1 + out.route.size());
  out.endpoint.append(method);
  out.endpoint.push_back(' ');
  out.endpoint.append(out.route);
  // name stays empty: it equals the endpoint, filled in when a kept span is
  // completed (most spans are left out by sampling and never need it).
  if (r.flags & kRecordNoResponse) {
    out.error = true;
    out.status_message = "no response";
  } else if (r.status >= 500 || (!server_side && r.status >= 400)) {
    out.error = true;
  }
}

void AppendHttpAttributes(const L7Record& r, const SpanDescription& d, const ExchangeAddresses& addr,
                          std::vector<Attribute>& a) {
  std::string_view host;
  uint16_t host_port = 0;
  SplitAuthority(r.authority, &host, &host_port);
  a.reserve(a.size() + 22);
  a.push_back({"http.request.method", r.method});
  a.push_back({"url.path", r.path});
  if (!r.query.empty()) a.push_back({"url.query", r.query});
  a.push_back({"http.route", d.route});
  if (r.status != 0) a.push_back({"http.response.status_code", int64_t{r.status}});
  a.push_back({"server.address", std::string(host.empty() ? addr.server_address : host)});
  a.push_back({"server.port", int64_t{host_port != 0 && !addr.server_side ? host_port : addr.server_port}});
  a.push_back({"client.address", std::string(addr.client_address)});
  a.push_back({"client.port", int64_t{addr.client_port}});
  a.push_back({"network.peer.address", std::string(addr.peer_address)});
  a.push_back({"network.peer.port", int64_t{addr.peer_port}});
  a.push_back({"network.protocol.name", std::string("http")});
  a.push_back({"network.protocol.version", r.version});
  if (const auto ua = r.request.headers.Find("user-agent")) {
    a.push_back({"user_agent.original", std::string(*ua)});
  }
  a.push_back({"http.request.body.size", static_cast<int64_t>(r.request.body_bytes)});
  a.push_back({"http.response.body.size", static_cast<int64_t>(r.response.body_bytes)});
  if (d.error && r.status != 0) a.push_back({"error.type", std::to_string(r.status)});
  if (r.flags != 0) a.push_back({"sonde.record.flags", int64_t{r.flags}});
}

RedMetricNames HttpRedMetrics() {
  return {"http_server_request_duration_seconds", "http_client_request_duration_seconds",
          "sonde_http_server_request_errors_total", "sonde_http_client_request_errors_total", "HTTP requests"};
}

const RecordSemantics& HttpSemantics() {
  static const RecordSemantics kHttp{&DescribeHttp, &AppendHttpAttributes, HttpRedMetrics()};
  return kHttp;
}

}  // namespace sonde::protocols::http
