#include "agent/protocols/registry.h"

// Each protocol folder exports its definition: a protocol is one include here
// and one line in kProtocols.
#include "agent/protocols/http1/definition.h"
#include "agent/protocols/http2/definition.h"

namespace sonde::protocols {
namespace {
// HTTP/2 first: its preface also looks like an HTTP/1 request line ("PRI * HTTP/2.0").
const ProtocolDefinition kProtocols[] = {
    http2::Definition(),
    http1::Definition(),
    {L7Protocol::kUnknown, "unknown", nullptr, nullptr},
};
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

}  // namespace sonde::protocols
