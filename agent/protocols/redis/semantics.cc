#include "agent/protocols/redis/semantics.h"

namespace sonde::protocols::redis {
namespace {

bool IsError(const L7Record& r) { return r.response.headers.Find("error").has_value(); }

void DescribeRedis(const L7Record& r, bool /*server_side*/, SpanDescription& out) {
  const std::string_view command = r.method.empty() ? std::string_view("REDIS") : std::string_view(r.method);
  out.name.assign(command);
  out.endpoint.assign(command);
  out.operation.assign(command);
  out.route.assign(command);
  if (r.flags & kRecordNoResponse) {
    out.error = true;
    out.status_message = "no response";
  } else if (IsError(r)) {
    out.error = true;
    // Only the prefix: the rest of an error message may quote arguments (keys).
    out.status_message.assign(ErrorCode(r));
  }
}

void AppendRedisAttributes(const L7Record& r, const SpanDescription& /*description*/, const ExchangeAddresses& addr,
                           std::vector<Attribute>& a) {
  a.reserve(a.size() + 10);
  a.push_back({"db.system.name", std::string("redis")});
  a.push_back({"db.operation.name", r.method.empty() ? std::string("REDIS") : r.method});
  a.push_back({"server.address", std::string(addr.server_address)});
  a.push_back({"server.port", int64_t{addr.server_port}});
  a.push_back({"network.peer.address", std::string(addr.peer_address)});
  a.push_back({"network.peer.port", int64_t{addr.peer_port}});
  if (IsError(r)) {
    const std::string code(ErrorCode(r));
    a.push_back({"db.response.status_code", code});
    a.push_back({"error.type", code.empty() ? std::string("error") : code});
  } else if (r.flags & kRecordNoResponse) {
    a.push_back({"error.type", std::string("no_response")});
  }
  if (r.flags != 0) a.push_back({"sonde.record.flags", int64_t{r.flags}});
}

}  // namespace

std::string_view ErrorCode(const L7Record& r) { return r.response.headers.Find("error").value_or(""); }

const RecordSemantics& RedisSemantics() {
  static const RecordSemantics kRedis{
      &DescribeRedis, &AppendRedisAttributes,
      {"sonde_db_server_operation_duration_seconds", "db_client_operation_duration_seconds",
       "sonde_db_server_operation_errors_total", "sonde_db_client_operation_errors_total", "Redis commands"}};
  return kRedis;
}

}  // namespace sonde::protocols::redis
