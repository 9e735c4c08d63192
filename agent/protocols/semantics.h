#pragma once
// What a protocol's records mean as spans: each protocol owns its semantic
// conventions (span name, error rule, RED operation/route, attributes), so the
// span builder, RED and the exporters stay protocol-agnostic. A protocol
// folder exports one RecordSemantics per record kind it produces and lists
// them in its ProtocolDefinition (agent/protocols/protocol.h).
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/protocols/record.h"

namespace sonde::protocols {

using AttributeValue = std::variant<std::string, int64_t, double, bool>;
struct Attribute {
  std::string key;
  AttributeValue value;
};

// The cheap part, taken for every record before sampling: enough to name
// the span, count it in RED and decide whether it is an error.
struct SpanDescription {
  std::string name;       // span name: "pkg.Service/Method"; empty = the endpoint
  std::string endpoint;   // what the UI and RED group by
  std::string operation;  // RED operation label (HTTP method, RPC method)
  std::string route;      // RED route label (normalised path, RPC service/method)
  bool error = false;
  std::string status_message;
};

// Addresses of the exchange as text, for attributes (filled by the builder).
struct ExchangeAddresses {
  bool server_side = false;  // the span is the server's view
  std::string_view peer_address, client_address, server_address;
  uint16_t peer_port = 0, client_port = 0, server_port = 0;
};

// The Prometheus families RED is exported under for a record kind (the
// semconv duration histogram of its kind, plus Sonde's error counters).
struct RedMetricNames {
  std::string_view server_duration;  // e.g. http_server_request_duration_seconds
  std::string_view client_duration;  // e.g. http_client_request_duration_seconds
  std::string_view server_errors;    // e.g. sonde_http_server_request_errors_total
  std::string_view client_errors;
  std::string_view what;             // for HELP texts: "HTTP requests", "Redis commands"
};

struct RecordSemantics {
  // Every record. `server_side`: the span is the server's view of the exchange.
  void (*describe)(const L7Record& record, bool server_side, SpanDescription& out);
  // Kept spans only (after sampling): semconv attributes appended to `out`.
  void (*attributes)(const L7Record& record, const SpanDescription& description,
                     const ExchangeAddresses& addresses, std::vector<Attribute>& out);
  RedMetricNames red_metrics;
};

// Which semantics apply to records of one L7Protocol value.
struct RecordKind {
  L7Protocol protocol;
  const RecordSemantics* semantics;
};

}  // namespace sonde::protocols
