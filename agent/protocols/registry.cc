#include "agent/protocols/registry.h"

// Each protocol folder exports its definition: a protocol is one include here
// and one line in kProtocols.
#include "agent/protocols/dns/definition.h"
#include "agent/protocols/http1/definition.h"
#include "agent/protocols/http2/definition.h"
#include "agent/protocols/postgres/definition.h"
#include "agent/protocols/redis/definition.h"

namespace sonde::protocols {
namespace {
// HTTP/2 first: its preface also looks like an HTTP/1 request line ("PRI * HTTP/2.0").
const ProtocolDefinition kProtocols[] = {
    http2::Definition(),
    http1::Definition(),
    redis::Definition(),  // after HTTP: an HTTP request is never taken for an inline command
    postgres::Definition(),
    dns::TcpDefinition(),
    dns::UdpDefinition(),  // the one UDP protocol: tried on UDP sockets only
    {L7Protocol::kUnknown, "unknown", nullptr, nullptr},
};

// Records no definition claims (should not happen): named after the protocol, no attributes.
void DescribeUnknown(const L7Record& r, bool /*server_side*/, SpanDescription& out) {
  out.name = out.endpoint = std::string(L7ProtocolName(r.protocol));
  out.route = out.endpoint;
}
void NoAttributes(const L7Record&, const SpanDescription&, const ExchangeAddresses&, std::vector<Attribute>&) {}
const RecordSemantics kUnknownSemantics{
    &DescribeUnknown, &NoAttributes,
    {"sonde_unknown_server_duration_seconds", "sonde_unknown_client_duration_seconds",
     "sonde_unknown_server_errors_total", "sonde_unknown_client_errors_total", "exchanges"}};
}  // namespace

std::span<const ProtocolDefinition> AllProtocols() {
  return {kProtocols, sizeof(kProtocols) / sizeof(kProtocols[0]) - 1};
}

const ProtocolDefinition* FindProtocol(L7Protocol protocol) {
  for (const auto& p : AllProtocols()) {
    if (p.protocol == protocol) return &p;
  }
  return nullptr;
}

const RecordSemantics& SemanticsFor(std::string_view protocol_name) {
  for (int v = 0; v <= 255; ++v) {
    const auto p = static_cast<L7Protocol>(v);
    if (L7ProtocolName(p) == protocol_name && (p != L7Protocol::kUnknown || v == 0)) return SemanticsFor(p);
  }
  return kUnknownSemantics;
}

const RecordSemantics& SemanticsFor(L7Protocol protocol) {
  for (const auto& p : AllProtocols()) {
    for (const auto& kind : p.record_kinds) {
      if (kind.protocol == protocol) return *kind.semantics;
    }
  }
  return kUnknownSemantics;
}

}  // namespace sonde::protocols
