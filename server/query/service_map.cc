#include "server/query/service_map.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "proto/sonde/v1/enum_names.h"

namespace sonde::server {
namespace {

std::string ServiceOf(const v1::Span& s) { return s.service_name().empty() ? s.comm() : s.service_name(); }

bool Failed(const v1::Span& s) {
  return s.status() == v1::STATUS_CODE_ERROR || s.http_status() >= 500 || s.grpc_status() > 0;
}

uint64_t DurationNs(const v1::Span& s) {
  return s.end_unix_ns() > s.start_unix_ns() ? s.end_unix_ns() - s.start_unix_ns() : 0;
}

bool HasParent(const v1::Span& s) {
  for (char c : s.parent_span_id())
    if (c != 0) return true;
  return false;
}

// The exchange as both ends name it (see the header).
std::string ExchangeKey(const v1::Span& s) {
  if (!s.has_request_tcp_seq() || !s.has_client() || s.client().port() == 0) return {};
  return s.client().address() + "|" + std::to_string(s.client().port()) + "|" + std::to_string(s.request_tcp_seq());
}

bool DatabasePort(uint32_t port) {
  switch (port) {
    case 3306: case 5432: case 6379: case 9042: case 11211: case 27017: return true;
    default: return false;
  }
}

std::string Endpoint(const v1::SocketAddress& a) { return a.address() + ":" + std::to_string(a.port()); }

std::string HexId(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

double Percentile(std::vector<uint64_t>& v, double p) {
  if (v.empty()) return 0;
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return static_cast<double>(v[i]) / 1e6;
}

struct EdgeAcc {
  MapEdge edge;
  std::vector<uint64_t> durations;
  std::vector<std::pair<uint64_t, std::string>> traces;  // (start, trace id)
};

}  // namespace

ServiceMap BuildServiceMap(const std::vector<StoredSpan>& stored) {
  std::vector<const v1::Span*> spans;
  for (const auto& st : stored) {
    if (st.span.source() == v1::SPAN_SOURCE_SYSTEM) spans.push_back(&st.span);
  }
  std::unordered_map<std::string, const v1::Span*> by_id;      // "trace|span" -> span
  std::unordered_map<std::string, const v1::Span*> client_by_key;
  for (const v1::Span* s : spans) {
    by_id[s->trace_id() + s->span_id()] = s;
    if (s->kind() == v1::SPAN_KIND_CLIENT) {
      if (std::string k = ExchangeKey(*s); !k.empty()) client_by_key[k] = s;
    }
  }

  std::map<std::string, MapNode> nodes;
  std::map<std::pair<std::string, std::string>, EdgeAcc> edges;
  auto node = [&](const std::string& id, const char* kind) -> MapNode& {
    MapNode& n = nodes[id];
    if (n.id.empty()) {
      n.id = id;
      n.kind = kind;
    } else if (std::string_view(kind) == "gateway" && n.kind == "service") {
      n.kind = kind;
    }
    return n;
  };
  auto add_edge = [&](const std::string& from, const std::string& to, const v1::Span& measured, bool failed,
                      const v1::Span& any) {
    EdgeAcc& e = edges[{from, to}];
    e.edge.source = from;
    e.edge.target = to;
    e.edge.protocol = std::string(v1::names::Lookup(v1::names::kL7Protocol, any.protocol()).value_or("unknown"));
    ++e.edge.count;
    if (failed) ++e.edge.errors;
    e.durations.push_back(DurationNs(measured));
    e.traces.emplace_back(any.start_unix_ns(), HexId(any.trace_id()));
  };

  std::unordered_set<const v1::Span*> answered;  // client spans a server span answered
  for (const v1::Span* s : spans) {
    if (s->kind() != v1::SPAN_KIND_SERVER) continue;
    const std::string service = ServiceOf(*s);
    MapNode& n = node(service, "service");
    ++n.served;
    if (Failed(*s)) ++n.errors;
    const v1::Span* caller = nullptr;
    if (HasParent(*s)) {
      auto it = by_id.find(s->trace_id() + s->parent_span_id());
      if (it != by_id.end() && it->second->kind() == v1::SPAN_KIND_CLIENT) caller = it->second;
    }
    if (caller == nullptr) {
      auto it = client_by_key.find(ExchangeKey(*s));
      if (it != client_by_key.end() && !ExchangeKey(*s).empty()) caller = it->second;
    }
    if (caller != nullptr) {
      answered.insert(caller);
      node(ServiceOf(*caller), "service");
      add_edge(ServiceOf(*caller), service, *caller, Failed(*s) || Failed(*caller), *s);
    } else {
      const std::string peer = s->client().address().empty() ? "unknown client" : s->client().address();
      node(peer, "external");
      add_edge(peer, service, *s, Failed(*s), *s);
    }
  }
  for (const v1::Span* c : spans) {
    if (c->kind() != v1::SPAN_KIND_CLIENT) continue;
    const std::string service = ServiceOf(*c);
    node(service, "service");
    // A gateway forwards: its egress is the child of its own ingress and
    // carries the same request (protocol and endpoint).
    if (HasParent(*c)) {
      auto it = by_id.find(c->trace_id() + c->parent_span_id());
      const v1::Span* in = it == by_id.end() ? nullptr : it->second;
      if (in != nullptr && in->kind() == v1::SPAN_KIND_SERVER && ServiceOf(*in) == service &&
          in->protocol() == c->protocol() && in->endpoint() == c->endpoint()) {
        node(service, "gateway");
      }
    }
    if (answered.count(c)) continue;
    const bool database = c->protocol() == v1::L7_PROTOCOL_REDIS || c->protocol() == v1::L7_PROTOCOL_POSTGRESQL ||
                          DatabasePort(c->server().port());
    const std::string peer = c->server().address().empty() ? "unknown server" : Endpoint(c->server());
    node(peer, database ? "database" : "external");
    add_edge(service, peer, *c, Failed(*c), *c);
  }

  ServiceMap out;
  for (auto& [id, n] : nodes) out.nodes.push_back(std::move(n));
  for (auto& [key, acc] : edges) {
    acc.edge.p50_ms = Percentile(acc.durations, 0.50);
    acc.edge.p99_ms = Percentile(acc.durations, 0.99);
    std::sort(acc.traces.begin(), acc.traces.end(), std::greater<>());
    for (size_t i = 0; i < acc.traces.size() && acc.edge.trace_ids.size() < 20; ++i) {
      if (std::find(acc.edge.trace_ids.begin(), acc.edge.trace_ids.end(), acc.traces[i].second) ==
          acc.edge.trace_ids.end()) {
        acc.edge.trace_ids.push_back(acc.traces[i].second);
      }
    }
    out.edges.push_back(std::move(acc.edge));
  }
  return out;
}

}  // namespace sonde::server
