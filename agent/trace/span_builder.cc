#include "agent/trace/span_builder.h"

#include <cstring>
#include <random>

#include "agent/capture/tuple_format.h"
#include "agent/protocols/registry.h"
#include "agent/trace/trace_headers.h"

namespace sonde::trace {
namespace {

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
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

// Random bytes in whatever byte order the host has: a copy, not a byte loop
// (~130 instructions per trace id before, four ids per proxied request).
TraceId IdGenerator::NewTraceId() {
  TraceId id{};
  uint64_t a = 0, b = 0;
  while ((a | b) == 0) {
    a = Next();
    b = Next();
  }
  std::memcpy(id.data(), &a, sizeof(a));
  std::memcpy(id.data() + sizeof(a), &b, sizeof(b));
  return id;
}


SpanId IdGenerator::NewSpanId() {
  SpanId id{};
  uint64_t a = 0;
  while (a == 0) a = Next();
  std::memcpy(id.data(), &a, sizeof(a));
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
  Span s;
  FillDeferred(std::move(cr), s);
  return s;
}

namespace {

// Empties a string for reuse; a large one gives its memory back (recycled
// spans must not pin the biggest path ever seen).
void ClearKeep(std::string& s) {
  if (s.capacity() > 256) {
    std::string().swap(s);
  } else {
    s.clear();
  }
}

// Every field back to its default, string and vector capacity kept. The
// size check fails when Span gains a field: add it here.
void ClearForReuse(Span& s) {
  static_assert(sizeof(Span) == 712, "Span changed: reset the new field in ClearForReuse");
  s.trace_id = {};
  s.span_id = {};
  s.parent_span_id = {};
  s.parent_reason = LinkReason::kNone;
  s.source = SpanSource::kSystem;
  s.kind = SpanKind::kUnspecified;
  ClearKeep(s.name);
  ClearKeep(s.service_name);
  s.start_unix_ns = s.end_unix_ns = 0;
  s.status = StatusCode::kUnset;
  ClearKeep(s.status_message);
  s.pid = s.tid = 0;
  ClearKeep(s.comm);
  ClearKeep(s.container_id);
  s.sock_id = 0;
  for (Endpoint* e : {&s.local, &s.peer, &s.client, &s.server}) {
    ClearKeep(e->address);
    e->port = 0;
  }
  s.protocol = protocols::L7Protocol::kUnknown;
  ClearKeep(s.endpoint);
  s.http_status = 0;
  s.grpc_status = -1;
  s.request_bytes = s.response_bytes = 0;
  s.request_tcp_seq = s.response_tcp_seq = 0;
  s.request_seq_valid = s.response_seq_valid = false;
  s.tls = false;
  ClearKeep(s.operation);
  ClearKeep(s.route);
  ClearKeep(s.url_path);
  ClearKeep(s.url_query);
  s.parent_sampled = -1;
  if (s.attributes.capacity() > 64) {
    std::vector<Attribute>().swap(s.attributes);
  } else {
    s.attributes.clear();
  }
  s.request_headers = protocols::HeaderList();
  s.response_headers = protocols::HeaderList();
  // s.deferred: kept (FillDeferred replaces its contents).
}

void ClearDescription(protocols::SpanDescription& d) {
  ClearKeep(d.name);
  ClearKeep(d.endpoint);
  ClearKeep(d.operation);
  ClearKeep(d.route);
  d.error = false;
  ClearKeep(d.status_message);
}

}  // namespace

SpanPtr SpanBuilder::BuildDeferredPtr(conn::ConnRecord&& cr) {
  SpanPtr s;
  if (free_.empty()) {
    s = std::make_unique<Span>();
  } else {
    s = std::move(free_.back());
    free_.pop_back();
  }
  FillDeferred(std::move(cr), *s);
  return s;
}

void SpanBuilder::Recycle(SpanPtr span) {
  constexpr size_t kMaxFree = 4096;
  if (!span || free_.size() >= kMaxFree) return;
  ClearForReuse(*span);
  free_.push_back(std::move(span));
}

void SpanBuilder::FillDeferred(conn::ConnRecord&& cr, Span& s) {
  protocols::L7Record& r = cr.record;
  const conn::ConnContext& c = cr.conn;
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

  // The protocol names the span, decides the error and the RED labels. The
  // description and a recycled span both keep their strings' capacity:
  // copying between them allocates nothing once warm.
  protocols::SpanDescription& d = desc_;
  ClearDescription(d);
  protocols::SemanticsFor(r.protocol).describe(r, s.kind == SpanKind::kServer, d);
  s.name = d.name;
  s.endpoint = d.endpoint;
  s.operation = d.operation;
  s.route = d.route;
  if (d.error) s.status = StatusCode::kError;
  s.status_message = d.status_message;
  s.url_path = r.path;
  s.url_query = r.query;
  if (namer_ != nullptr) {
    // Port rules name the service listening on a port: they apply to server
    // spans (our local port), not to the clients calling it.
    const uint16_t server_port = s.kind == SpanKind::kServer ? c.tuple.sport : 0;
    const ServiceIdentity& id = namer_->Resolve(c.pid, c.comm, server_port, r.request.first_byte_ns);
    s.service_name = id.name;
    if (s.container_id.empty()) s.container_id = id.container_id;
  } else {
    s.service_name = c.comm;
  }
  s.protocol = r.protocol;
  s.pid = c.pid;
  s.tid = c.tid;
  s.comm = c.comm;
  s.sock_id = c.sock_id;
  s.tls = c.tls;

  uint64_t start = r.request.first_byte_ns;
  uint64_t end = r.response.complete ? r.response.last_byte_ns : r.request.last_byte_ns;
  if (end < start) end = start;
  s.start_unix_ns = start ? clock_.ToUnixNs(start) : 0;
  s.end_unix_ns = end ? clock_.ToUnixNs(end) : s.start_unix_ns;
  s.local.port = c.tuple.sport;
  s.peer.port = c.tuple.dport;

  s.http_status = r.status;
  s.grpc_status = r.grpc_status;
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
  if (!s.deferred) s.deferred = std::make_unique<DeferredDetail>();
  s.deferred->record = std::move(r);
  s.deferred->tuple = c.tuple;
}

void SpanBuilder::Complete(Span& s) {
  if (!s.deferred) return;
  const protocols::L7Record& r = s.deferred->record;
  const sonde_tuple& tuple = s.deferred->tuple;
  if (s.name.empty()) s.name = s.endpoint;  // SpanDescription: an empty name is the endpoint
  s.local = {capture::LocalAddress(tuple), tuple.sport};
  s.peer = {capture::RemoteAddress(tuple), tuple.dport};
  const bool server = s.kind == SpanKind::kServer;
  s.client = server ? s.peer : s.local;
  s.server = server ? s.local : s.peer;

  protocols::ExchangeAddresses addr;
  addr.server_side = server;
  addr.peer_address = s.peer.address;
  addr.client_address = s.client.address;
  addr.server_address = s.server.address;
  addr.peer_port = s.peer.port;
  addr.client_port = s.client.port;
  addr.server_port = s.server.port;
  protocols::SpanDescription d;  // what the attributes need of the description
  d.route = s.route;
  d.error = s.status == StatusCode::kError;
  protocols::SemanticsFor(r.protocol).attributes(r, d, addr, s.attributes);
  if (const std::string_view scheme = UrlScheme(s); !scheme.empty()) s.attributes.push_back({"url.scheme", std::string(scheme)});
  s.request_headers = std::move(s.deferred->record.request.headers);
  s.response_headers = std::move(s.deferred->record.response.headers);
  s.deferred.reset();
}

std::string_view UrlScheme(const Span& span) {
  switch (span.protocol) {
    case protocols::L7Protocol::kHttp1:
    case protocols::L7Protocol::kHttp2:
    case protocols::L7Protocol::kGrpc:
      return span.tls ? "https" : "http";
    default:
      return {};
  }
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
