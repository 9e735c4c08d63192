#include "agent/protocols/registry.h"

// One line per protocol; each protocol folder exports its definition.
#if __has_include("agent/protocols/http2/definition.h")
#include "agent/protocols/http2/definition.h"
#define SONDE_HAVE_HTTP2 1
#endif
#if __has_include("agent/protocols/http1/definition.h")
#include "agent/protocols/http1/definition.h"
#define SONDE_HAVE_HTTP1 1
#endif

namespace sonde::protocols {
namespace {
// HTTP/2 first: its preface also looks like an HTTP/1 request line ("PRI * HTTP/2.0").
const ProtocolDefinition kProtocols[] = {
#ifdef SONDE_HAVE_HTTP2
    http2::Definition(),
#endif
#ifdef SONDE_HAVE_HTTP1
    http1::Definition(),
#endif
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
