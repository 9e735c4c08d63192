#include "agent/protocols/http2/grpc_semantics.h"

#include "agent/protocols/http/semantics.h"
#include "common/semconv/grpc_status.h"

namespace sonde::protocols::http2 {
namespace {

void DescribeGrpc(const L7Record& r, bool server_side, SpanDescription& out) {
  http::DescribeHttp(r, server_side, out);
  if (!r.rpc_service.empty()) {
    out.name = r.rpc_service + "/" + r.rpc_method;
  }
  if (r.grpc_status > 0) {
    out.error = true;
    out.status_message = r.grpc_message;
  }
}

void AppendGrpcAttributes(const L7Record& r, const SpanDescription& d, const ExchangeAddresses& addr,
                          std::vector<Attribute>& a) {
  http::AppendHttpAttributes(r, d, addr, a);
  // The current RPC conventions, the generation OTLP ingest rewrites spans to
  // (agent/otlp/semconv.cc), so one trace does not mix both: rpc.system.name,
  // a fully qualified rpc.method ("pkg.Service/Method"; no rpc.service) and
  // the status code's name in rpc.response.status_code.
  a.push_back({"rpc.system.name", std::string("grpc")});
  a.push_back({"rpc.method", r.rpc_service.empty() ? r.rpc_method : r.rpc_service + "/" + r.rpc_method});
  if (r.grpc_status >= 0) a.push_back({"rpc.response.status_code", semconv::GrpcStatusName(r.grpc_status)});
  a.push_back({"sonde.rpc.request_messages", int64_t{r.request_messages}});
  a.push_back({"sonde.rpc.response_messages", int64_t{r.response_messages}});
}

}  // namespace

const RecordSemantics& GrpcSemantics() {
  static const RecordSemantics kGrpcSemantics{&DescribeGrpc, &AppendGrpcAttributes, http::HttpRedMetrics()};
  return kGrpcSemantics;
}

}  // namespace sonde::protocols::http2
