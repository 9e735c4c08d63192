#include "agent/trace/span_builder.h"

#include <random>

#include "agent/capture/tuple_format.h"
#include "agent/trace/route.h"
#include "agent/trace/trace_headers.h"

namespace sonde::trace {
namespace {

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// "host:port" -> host, port (0 when absent); IPv6 literals keep their brackets off.
void SplitAuthority(std::string_view authority, std::string* host, uint16_t* port) {
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
  host->assign(authority);
}

}  // namespace

IdGenerator::IdGenerator(uint64_t seed) {
  if (seed == 0) seed = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
  for (auto& s : s_) s = SplitMix(seed);
}

uint64_t IdGenerator::Next() {
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

TraceId IdGenerator::NewTraceId() {
  TraceId id{};
  while (true) {
    uint64_t a = Next(), b = Next();
    for (int i = 0; i < 8; ++i) {
      id[i] = static_cast<uint8_t>(a >> (8 * i));
      id[8 + i] = static_cast<uint8_t>(b >> (8 * i));
    }
    if ((a | b) != 0) return id;
  }
}


SpanId IdGenerator::NewSpanId() {
  SpanId id{};
  uint64_t a = 0;
  while (a == 0) a = Next();
  for (int i = 0; i < 8; ++i) id[i] = static_cast<uint8_t>(a >> (8 * i));
  return id;
}

SpanBuilder::SpanBuilder(const core::MonotonicToRealtime& clock, uint64_t seed)
    : clock_(clock), ids_(seed) {}

Span SpanBuilder::Build(const conn::ConnRecord& cr) {
  conn::ConnRecord copy = cr;
  Span s = BuildDeferred(std::move(copy));
  Complete(s);
  return s;
}

Span SpanBuilder::BuildDeferred(conn::ConnRecord&& cr) {
  protocols::L7Record& r = cr.record;
  const conn::ConnContext& c = cr.conn;
  Span s;
  s.source = SpanSource::kSystem;
  s.kind = c.role == protocols::Role::kServer   ? SpanKind::kServer
           : c.role == protocols::Role::kClient ? SpanKind::kClient
                                                : SpanKind::kUnspecified;
  s.span_id = ids_.NewSpanId();
  if (auto ctx = ExtractTraceContext(r.request.headers)) {
    s.trace_id = ctx->trace_id;
    s.parent_span_id = ctx->parent_span_id;
    s.parent_reason = LinkReason::kTraceparent;
    s.parent_sampled = ctx->sampled ? 1 : 0;
  } else {
    s.trace_id = ids_.NewTraceId();
  }

  s.http_route = NormaliseRoute(r.path);
  s.http_method = r.method;
  s.endpoint.reserve((r.method.empty() ? 4 : r.method.size()) + 1 + s.http_route.size());
  s.endpoint.append(r.method.empty() ? std::string_view("HTTP") : std::string_view(r.method));
  s.endpoint.push_back(' ');
  s.endpoint.append(s.http_route);
  s.name = s.endpoint;
  s.url_path = r.path;
  s.url_query = r.query;
  s.service_name = c.comm;
  s.protocol = r.protocol;
  s.pid = c.pid;
  s.tid = c.tid;
  s.comm = c.comm;
  s.sock_id = c.sock_id;

  uint64_t start = r.request.first_byte_ns;
  uint64_t end = r.response.complete ? r.response.last_byte_ns : r.request.last_byte_ns;
  if (end < start) end = start;
  s.start_unix_ns = start ? clock_.ToUnixNs(start) : 0;
  s.end_unix_ns = end ? clock_.ToUnixNs(end) : s.start_unix_ns;
  s.local.port = c.tuple.sport;
  s.peer.port = c.tuple.dport;

  s.http_status = r.status;
  s.request_bytes = r.request.bytes;
  s.response_bytes = r.response.bytes;
  if (r.request.first_tcp_seq) {
    s.request_tcp_seq = *r.request.first_tcp_seq;
    s.request_seq_valid = true;
  }
  if (r.response.first_tcp_seq) {
    s.response_tcp_seq = *r.response.first_tcp_seq;
    s.response_seq_valid = true;
  }

  const bool server = s.kind == SpanKind::kServer;
  if (r.flags & protocols::kRecordNoResponse) {
    s.status = StatusCode::kError;
    s.status_message = "no response";
  } else if (r.status >= 500 || (!server && r.status >= 400)) {
    s.status = StatusCode::kError;
  }
  if (r.protocol == protocols::L7Protocol::kGrpc) {
    if (!r.rpc_service.empty()) s.name = r.rpc_service + "/" + r.rpc_method;
    s.grpc_status = r.grpc_status;
    if (r.grpc_status > 0) {
      s.status = StatusCode::kError;
      s.status_message = r.grpc_message;
    }
  }
  s.deferred = std::make_unique<DeferredDetail>();
  s.deferred->record = std::move(r);
  s.deferred->tuple = c.tuple;
  return s;
}

void SpanBuilder::Complete(Span& s) {
  if (!s.deferred) return;
  const protocols::L7Record& r = s.deferred->record;
  const sonde_tuple& tuple = s.deferred->tuple;
  s.local = {capture::LocalAddress(tuple), tuple.sport};
  s.peer = {capture::RemoteAddress(tuple), tuple.dport};
  const bool server = s.kind == SpanKind::kServer;
  s.client = server ? s.peer : s.local;
  s.server = server ? s.local : s.peer;

  std::string host;
  uint16_t host_port = 0;
  SplitAuthority(r.authority, &host, &host_port);
  auto& a = s.attributes;
  // Room for every attribute below plus those already there (the linker's).
  a.reserve(a.size() + (r.protocol == protocols::L7Protocol::kGrpc ? 28 : 22));
  a.push_back({"http.request.method", r.method});
  a.push_back({"url.path", r.path});
  if (!r.query.empty()) a.push_back({"url.query", r.query});
  a.push_back({"http.route", s.http_route});
  if (r.status != 0) a.push_back({"http.response.status_code", int64_t{r.status}});
  a.push_back({"server.address", host.empty() ? s.server.address : host});
  a.push_back({"server.port", int64_t{host_port != 0 && !server ? host_port : s.server.port}});
  a.push_back({"client.address", s.client.address});
  a.push_back({"client.port", int64_t{s.client.port}});
  a.push_back({"network.peer.address", s.peer.address});
  a.push_back({"network.peer.port", int64_t{s.peer.port}});
  a.push_back({"network.protocol.name", std::string("http")});
  a.push_back({"network.protocol.version", r.version});
  if (const auto ua = FindHeader(r.request.headers, "user-agent")) {
    a.push_back({"user_agent.original", std::string(*ua)});
  }
  a.push_back({"http.request.body.size", static_cast<int64_t>(r.request.body_bytes)});
  a.push_back({"http.response.body.size", static_cast<int64_t>(r.response.body_bytes)});
  if (s.status == StatusCode::kError && r.status != 0) {
    a.push_back({"error.type", std::to_string(r.status)});
  }
  if (r.flags != 0) a.push_back({"sonde.record.flags", int64_t{r.flags}});
  if (r.protocol == protocols::L7Protocol::kGrpc) {
    // gRPC: rpc.* semconv; grpc-status is the error signal.
    a.push_back({"rpc.system", std::string("grpc")});
    a.push_back({"rpc.service", r.rpc_service});
    a.push_back({"rpc.method", r.rpc_method});
    if (r.grpc_status >= 0) a.push_back({"rpc.grpc.status_code", int64_t{r.grpc_status}});
    a.push_back({"sonde.rpc.request_messages", int64_t{r.request_messages}});
    a.push_back({"sonde.rpc.response_messages", int64_t{r.response_messages}});
  }
  s.request_headers = std::move(s.deferred->record.request.headers);
  s.response_headers = std::move(s.deferred->record.response.headers);
  s.deferred.reset();
}

const std::string* StringAttribute(const Span& span, std::string_view key) {
  for (const auto& a : span.attributes) {
    if (a.key == key) return std::get_if<std::string>(&a.value);
  }
  return nullptr;
}

int64_t IntAttribute(const Span& span, std::string_view key, int64_t fallback) {
  for (const auto& a : span.attributes) {
    if (a.key == key) {
      if (const auto* v = std::get_if<int64_t>(&a.value)) return *v;
    }
  }
  return fallback;
}

}  // namespace sonde::trace
