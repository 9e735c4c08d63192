#include "agent/otlp/semconv.h"

#include <array>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"

namespace sonde::otlp {
namespace {

using opentelemetry::proto::common::v1::AnyValue;
using opentelemetry::proto::common::v1::KeyValue;
using SpanKind = opentelemetry::proto::trace::v1::Span::SpanKind;

enum class Transform {
  kCopy,
  kTarget,          // http.target -> url.path (+ url.query)
  kTransport,       // net.transport ip_tcp -> network.transport tcp
  kFlavor,          // http.flavor 1.1 -> network.protocol.version (+ name http)
  kIntToString,     // rpc.grpc.status_code 0 -> rpc.response.status_code "0"
  kByKind,          // client_name on CLIENT/PRODUCER spans, server_name otherwise
};

struct Rule {
  std::string_view current;          // kCopy & co.
  Transform transform = Transform::kCopy;
  std::string_view current_server;   // kByKind: name on SERVER/CONSUMER/INTERNAL spans
};

const absl::flat_hash_map<std::string_view, Rule>& Rules() {
  static const auto* rules = new absl::flat_hash_map<std::string_view, Rule>{
      // HTTP (semconv 1.21 -> 1.23 stable HTTP)
      {"http.method", {"http.request.method"}},
      {"http.status_code", {"http.response.status_code"}},
      {"http.url", {"url.full"}},
      {"http.target", {"url.path", Transform::kTarget}},
      {"http.scheme", {"url.scheme"}},
      {"http.host", {"server.address"}},
      {"http.client_ip", {"client.address"}},
      {"http.user_agent", {"user_agent.original"}},
      {"http.flavor", {"network.protocol.version", Transform::kFlavor}},
      {"http.request_content_length", {"http.request.body.size"}},
      {"http.response_content_length", {"http.response.body.size"}},
      {"http.resend_count", {"http.request.resend_count"}},
      // Network
      {"net.host.name", {"server.address"}},
      {"net.host.port", {"server.port"}},
      {"net.peer.ip", {"network.peer.address"}},
      {"net.host.ip", {"network.local.address"}},
      {"net.peer.name", {"server.address", Transform::kByKind, "client.address"}},
      {"net.peer.port", {"server.port", Transform::kByKind, "network.peer.port"}},
      {"net.sock.peer.addr", {"network.peer.address"}},
      {"net.sock.peer.port", {"network.peer.port"}},
      {"net.sock.host.addr", {"network.local.address"}},
      {"net.sock.host.port", {"network.local.port"}},
      {"net.sock.family", {"network.type"}},
      {"net.transport", {"network.transport", Transform::kTransport}},
      {"net.protocol.name", {"network.protocol.name"}},
      {"net.protocol.version", {"network.protocol.version"}},
      // RPC: first generation (rpc.system, rpc.grpc.status_code) -> current
      // (rpc.system.name, rpc.response.status_code). rpc.service/rpc.method are
      // kept as sent: the current rpc.method ("pkg.Svc/Method") reuses the old
      // key with another meaning, so the span model reads both generations.
      {"rpc.system", {"rpc.system.name"}},
      {"rpc.grpc.status_code", {"rpc.response.status_code", Transform::kIntToString}},
      {"rpc.jsonrpc.error_code", {"rpc.response.status_code", Transform::kIntToString}},
      // Other stable renames Kong/older SDKs emit
      {"db.statement", {"db.query.text"}},
      {"db.operation", {"db.operation.name"}},
      {"messaging.destination", {"messaging.destination.name"}},
      {"exception.escaped", {""}},  // deprecated without replacement: nothing added
  };
  return *rules;
}

bool HasKey(const KeyValues& attrs, std::string_view key) {
  for (const KeyValue& kv : attrs) {
    if (kv.key() == key) return true;
  }
  return false;
}

// Emits {key, value} unless the sender already set key (or it was emitted).
class Emitter {
 public:
  Emitter(const KeyValues& attrs, const AddAttributeFn& add) : attrs_(attrs), add_(add) {}
  void Emit(std::string_view key, const AnyValue& value) {
    if (key.empty() || HasKey(attrs_, key)) return;
    for (size_t i = 0; i < emitted_count_; ++i) {
      if (emitted_[i] == key) return;
    }
    if (emitted_count_ < emitted_.size()) emitted_[emitted_count_++] = key;
    add_(key, value);
  }
  void EmitString(std::string_view key, std::string_view value) {
    scratch_.mutable_string_value()->assign(value.data(), value.size());  // reused buffer
    Emit(key, scratch_);
  }

 private:
  const KeyValues& attrs_;
  const AddAttributeFn& add_;
  // Keys point into the static rule table; fixed size: no allocation per span.
  std::array<std::string_view, 64> emitted_{};
  size_t emitted_count_ = 0;
  AnyValue scratch_;
};

bool IsClientSide(SpanKind kind) {
  return kind == opentelemetry::proto::trace::v1::Span::SPAN_KIND_CLIENT ||
         kind == opentelemetry::proto::trace::v1::Span::SPAN_KIND_PRODUCER;
}

void Apply(Emitter& out, const Rule& rule, const AnyValue& value, SpanKind kind) {
  switch (rule.transform) {
    case Transform::kCopy:
      return out.Emit(rule.current, value);
    case Transform::kByKind:
      return out.Emit(IsClientSide(kind) ? rule.current : rule.current_server, value);
    case Transform::kTarget: {
      if (!value.has_string_value()) return out.Emit(rule.current, value);
      std::string_view target = value.string_value();
      size_t q = target.find('?');
      out.EmitString("url.path", target.substr(0, q));
      if (q != std::string_view::npos) out.EmitString("url.query", target.substr(q + 1));
      return;
    }
    case Transform::kTransport: {
      if (!value.has_string_value()) return out.Emit(rule.current, value);
      std::string_view t = value.string_value();
      if (t == "ip_tcp") t = "tcp";
      else if (t == "ip_udp") t = "udp";
      return out.EmitString(rule.current, t);
    }
    case Transform::kFlavor: {
      out.Emit(rule.current, value);
      if (value.has_string_value() &&
          (value.string_value() == "QUIC" || value.string_value() == "SPDY")) {
        return;
      }
      return out.EmitString("network.protocol.name", "http");
    }
    case Transform::kIntToString: {
      if (value.has_int_value()) return out.EmitString(rule.current, std::to_string(value.int_value()));
      return out.Emit(rule.current, value);
    }
  }
}

// Legacy keys start with one of these; cheap filter before the hash lookup.
bool MayBeLegacy(std::string_view key) {
  if (key.size() < 6) return false;
  switch (key[0]) {
    case 'h': case 'n': case 'r': case 'd': case 'm': case 'e': return true;
    default: return false;
  }
}

}  // namespace

void DeriveCurrentSemconvNames(const KeyValues& attributes, SpanKind kind,
                               const AddAttributeFn& add) {
  const auto& rules = Rules();
  std::optional<Emitter> emitter;  // built on the first legacy key only
  if (attributes.empty()) return;
  for (const KeyValue& kv : attributes) {
    if (!MayBeLegacy(kv.key())) continue;
    auto it = rules.find(kv.key());
    if (it == rules.end() || it->second.current.empty()) continue;
    if (!emitter) emitter.emplace(attributes, add);
    Apply(*emitter, it->second, kv.value(), kind);
  }
}

int AddCurrentSemconvNames(KeyValues* attributes, SpanKind kind) {
  std::vector<KeyValue> added;
  DeriveCurrentSemconvNames(*attributes, kind, [&](std::string_view key, const AnyValue& value) {
    KeyValue kv;
    kv.set_key(std::string(key));
    *kv.mutable_value() = value;
    added.push_back(std::move(kv));
  });
  for (KeyValue& kv : added) *attributes->Add() = std::move(kv);
  return static_cast<int>(added.size());
}

std::string_view CurrentNameFor(std::string_view legacy_key) {
  const auto& rules = Rules();
  auto it = rules.find(legacy_key);
  return it == rules.end() ? std::string_view() : it->second.current;
}

}  // namespace sonde::otlp
