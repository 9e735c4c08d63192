#include "agent/otlp/semconv.h"

#include <array>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "common/semconv/grpc_status.h"

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
  kIntToString,     // rpc.jsonrpc.error_code -32602 -> rpc.response.status_code "-32602"
  kGrpcStatusName,  // rpc.grpc.status_code 5 -> rpc.response.status_code "NOT_FOUND"
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
      {"rpc.grpc.status_code", {"rpc.response.status_code", Transform::kGrpcStatusName}},
      {"rpc.jsonrpc.error_code", {"rpc.response.status_code", Transform::kIntToString}},
      // Other stable renames Kong/older SDKs emit
      {"db.statement", {"db.query.text"}},
      {"db.operation", {"db.operation.name"}},
      {"messaging.destination", {"messaging.destination.name"}},
      {"exception.escaped", {""}},  // deprecated without replacement: nothing added
  };
  return *rules;
}

// Every name a rule can emit gets a bit: presence in a span and "already
// emitted" are then two 64-bit masks, one pass over the attributes.
constexpr int kNoBit = -1;
struct KeyInfo {
  const Rule* rule = nullptr;  // legacy key with a rule
  int bit = kNoBit;            // current name a rule can emit
  int rule_bit = kNoBit, rule_server_bit = kNoBit;  // bits of rule->current, ->current_server
};

// Open-addressed table over the keys (all 8+ characters): the hash reads the
// first and last 8 bytes, one probe and one compare in the common case.
class KeyIndex {
 public:
  static constexpr size_t kMinKeySize = 8;
  void Insert(std::string_view key, const KeyInfo& info) {
    size_t i = Hash(key);
    while (slots_[i].used) i = (i + 1) & kMask;
    slots_[i] = {key, info, true};
  }
  const KeyInfo* Find(std::string_view key) const {
    if (key.size() < kMinKeySize) return nullptr;
    for (size_t i = Hash(key);; i = (i + 1) & kMask) {
      const Slot& slot = slots_[i];
      if (!slot.used) return nullptr;
      if (slot.key.size() == key.size() && std::memcmp(slot.key.data(), key.data(), key.size()) == 0) {
        return &slot.info;
      }
    }
  }

 private:
  static constexpr size_t kMask = 255;
  static size_t Hash(std::string_view key) {
    uint64_t head, tail;
    std::memcpy(&head, key.data(), 8);
    std::memcpy(&tail, key.data() + key.size() - 8, 8);
    uint64_t h = (head * 0x9E3779B97F4A7C15ull) ^ (tail * 0xC2B2AE3D27D4EB4Full) ^ key.size();
    return static_cast<size_t>(h >> 56) & kMask;
  }
  struct Slot {
    std::string_view key;
    KeyInfo info;
    bool used = false;
  };
  std::array<Slot, kMask + 1> slots_{};
};

struct Table {
  absl::flat_hash_map<std::string_view, KeyInfo> keys;  // construction; lookups use `index`
  KeyIndex index;
  int url_path = kNoBit, url_query = kNoBit, protocol_name = kNoBit;
};

Table BuildTable() {
  Table t;
  int next = 0;
  auto bit_of = [&](std::string_view name) {
    if (name.empty()) return kNoBit;
    KeyInfo& info = t.keys[name];
    if (info.bit == kNoBit) info.bit = next++;
    return info.bit;
  };
  for (const auto& [legacy, rule] : Rules()) {  // Rules() is never modified: &rule is stable
    const int bit = bit_of(rule.current), server_bit = bit_of(rule.current_server);
    KeyInfo& info = t.keys[legacy];  // after bit_of: no rehash invalidates it
    info.rule = &rule;
    info.rule_bit = bit;
    info.rule_server_bit = server_bit;
  }
  t.url_path = bit_of("url.path");
  t.url_query = bit_of("url.query");
  t.protocol_name = bit_of("network.protocol.name");
  if (next > 64) std::abort();  // the masks below are 64 bits
  for (const auto& [key, info] : t.keys) {
    if (key.size() < KeyIndex::kMinKeySize) std::abort();  // KeyIndex::Hash reads 8 bytes
    t.index.Insert(key, info);
  }
  return t;
}

const Table& KeyTable() {
  static const Table table = BuildTable();
  return table;
}

// Keys worth a table lookup: rule keys and the names they emit start with one
// of these letters and have at least 8 characters.
bool MayBeInTable(std::string_view key) {
  if (key.size() < KeyIndex::kMinKeySize) return false;
  switch (key[0]) {
    case 'h': case 'n': case 'r': case 'd': case 'm': case 'e': case 'u': case 's': case 'c':
      return true;
    default:
      return false;
  }
}

// Emits {key, value} unless the sender already set key (or it was emitted).
class Emitter {
 public:
  Emitter(uint64_t present, AddAttributeFn add) : blocked_(present), add_(add) {}
  void Emit(int bit, std::string_view key, const ValueView& value) {
    if (bit == kNoBit || (blocked_ >> bit) & 1) return;
    blocked_ |= uint64_t{1} << bit;
    add_(key, value);
  }
  void EmitString(int bit, std::string_view key, std::string_view value) {
    Emit(bit, key, ValueView::String(value));
  }

 private:
  uint64_t blocked_;
  AddAttributeFn add_;
};

bool IsClientSide(int kind) {
  return kind == opentelemetry::proto::trace::v1::Span::SPAN_KIND_CLIENT ||
         kind == opentelemetry::proto::trace::v1::Span::SPAN_KIND_PRODUCER;
}

void Apply(const Table& t, Emitter& out, const KeyInfo& info, const ValueView& value, int kind) {
  const Rule& rule = *info.rule;
  const int bit = info.rule_bit, server_bit = info.rule_server_bit;
  switch (rule.transform) {
    case Transform::kCopy:
      return out.Emit(bit, rule.current, value);
    case Transform::kByKind:
      return IsClientSide(kind) ? out.Emit(bit, rule.current, value)
                                : out.Emit(server_bit, rule.current_server, value);
    case Transform::kTarget: {
      if (!value.is_string()) return out.Emit(bit, rule.current, value);
      std::string_view target = value.s;
      size_t q = target.find('?');
      out.EmitString(t.url_path, "url.path", target.substr(0, q));
      if (q != std::string_view::npos) out.EmitString(t.url_query, "url.query", target.substr(q + 1));
      return;
    }
    case Transform::kTransport: {
      if (!value.is_string()) return out.Emit(bit, rule.current, value);
      std::string_view tr = value.s;
      if (tr == "ip_tcp") tr = "tcp";
      else if (tr == "ip_udp") tr = "udp";
      return out.EmitString(bit, rule.current, tr);
    }
    case Transform::kFlavor: {
      out.Emit(bit, rule.current, value);
      if (value.is_string() && (value.s == "QUIC" || value.s == "SPDY")) return;
      return out.EmitString(t.protocol_name, "network.protocol.name", "http");
    }
    case Transform::kIntToString: {
      if (value.type == ValueView::Type::kInt) {
        char buf[24];
        auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value.i);
        return out.EmitString(bit, rule.current, std::string_view(buf, static_cast<size_t>(end - buf)));
      }
      return out.Emit(bit, rule.current, value);
    }
    case Transform::kGrpcStatusName: {
      // The code's name, as the agent's own gRPC spans carry it (common/semconv/grpc_status.h).
      if (value.type == ValueView::Type::kInt) {
        return out.EmitString(bit, rule.current, semconv::GrpcStatusName(static_cast<int>(value.i)));
      }
      return out.Emit(bit, rule.current, value);
    }
  }
}

}  // namespace

void DeriveCurrentSemconvNames(const AttributeView* attributes, size_t count, int kind,
                               AddAttributeFn add) {
  const Table& t = KeyTable();
  // One lookup per candidate key: which emittable names the sender set, and
  // which legacy keys (with their values) it used, in order.
  uint64_t present = 0;
  const KeyInfo* found[64];
  const ValueView* values[64];
  size_t n_found = 0;
  bool overflow = false;
  for (size_t i = 0; i < count; ++i) {
    const std::string_view key = attributes[i].key;
    if (!MayBeInTable(key)) continue;
    const KeyInfo* info = t.index.Find(key);
    if (info == nullptr) continue;
    if (info->bit != kNoBit) present |= uint64_t{1} << info->bit;
    if (info->rule == nullptr || info->rule->current.empty()) continue;
    if (n_found == std::size(found)) {
      overflow = true;  // > 64 legacy keys: a second pass applies them all
      continue;
    }
    found[n_found] = info;
    values[n_found++] = &attributes[i].value;
  }
  if (n_found == 0) return;
  Emitter emitter(present, add);
  if (!overflow) {
    for (size_t i = 0; i < n_found; ++i) Apply(t, emitter, *found[i], *values[i], kind);
    return;
  }
  for (size_t i = 0; i < count; ++i) {
    if (!MayBeInTable(attributes[i].key)) continue;
    const KeyInfo* info = t.index.Find(attributes[i].key);
    if (info == nullptr || info->rule == nullptr || info->rule->current.empty()) continue;
    Apply(t, emitter, *info, attributes[i].value, kind);
  }
}

int AddCurrentSemconvNames(KeyValues* attributes, SpanKind kind) {
  std::vector<AttributeView> views;
  views.reserve(static_cast<size_t>(attributes->size()));
  for (const KeyValue& kv : *attributes) views.push_back({kv.key(), ViewOf(kv.value())});
  std::vector<KeyValue> added;
  DeriveCurrentSemconvNames(views.data(), views.size(), kind,
                            [&](std::string_view key, const ValueView& value) {
    KeyValue kv;
    kv.set_key(std::string(key));
    AnyValue* out = kv.mutable_value();
    switch (value.type) {
      case ValueView::Type::kString: out->set_string_value(std::string(value.s)); break;
      case ValueView::Type::kBool: out->set_bool_value(value.b); break;
      case ValueView::Type::kInt: out->set_int_value(value.i); break;
      case ValueView::Type::kDouble: out->set_double_value(value.d); break;
      case ValueView::Type::kBytes: out->set_bytes_value(std::string(value.s)); break;
      case ValueView::Type::kStructured: *out = *value.structured; break;
      case ValueView::Type::kEmpty: break;
    }
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
