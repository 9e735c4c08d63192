#include "agent/protocols/http2/grpc_semantics.h"

#include "agent/protocols/http/semantics.h"

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
  a.push_back({"rpc.system", std::string("grpc")});
  a.push_back({"rpc.service", r.rpc_service});
  a.push_back({"rpc.method", r.rpc_method});
  if (r.grpc_status >= 0) a.push_back({"rpc.grpc.status_code", int64_t{r.grpc_status}});
  a.push_back({"sonde.rpc.request_messages", int64_t{r.request_messages}});
  a.push_back({"sonde.rpc.response_messages", int64_t{r.response_messages}});
}

}  // namespace

const RecordSemantics& GrpcSemantics() {
  static const RecordSemantics kGrpcSemantics{&DescribeGrpc, &AppendGrpcAttributes, http::HttpRedMetrics()};
  return kGrpcSemantics;
}

}  // namespace sonde::protocols::http2
