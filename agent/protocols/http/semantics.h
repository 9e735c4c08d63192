#pragma once
// HTTP semantic conventions (HTTP/1.1 and HTTP/2 records): span name
// "METHOD /route", error = 5xx (server) or >= 400 (client) or no response,
// http.* / url.* / server.* / client.* / network.* attributes.
#include "agent/protocols/semantics.h"

namespace sonde::protocols::http {

const RecordSemantics& HttpSemantics();
// gRPC keeps HTTP's families (semconv: rpc metrics are a later step).
RedMetricNames HttpRedMetrics();

// The HTTP parts, for protocols layered on HTTP (gRPC).
void DescribeHttp(const L7Record& record, bool server_side, SpanDescription& out);
void AppendHttpAttributes(const L7Record& record, const SpanDescription& description,
                          const ExchangeAddresses& addresses, std::vector<Attribute>& out);

}  // namespace sonde::protocols::http
