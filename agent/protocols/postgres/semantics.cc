#include "agent/protocols/postgres/semantics.h"

#include <charconv>

namespace sonde::protocols::postgres {
namespace {

std::string_view Operation(const L7Record& r) {
  return r.method.empty() ? std::string_view("POSTGRESQL") : std::string_view(r.method);
}

void DescribePostgres(const L7Record& r, bool /*server_side*/, SpanDescription& out) {
  const std::string_view op = Operation(r);
  const std::string_view collection = r.request.headers.Find("collection").value_or("");
  out.name.assign(op);
  if (!collection.empty()) {
    out.name.push_back(' ');
    out.name.append(collection);
  }
  out.endpoint = out.name;
  out.operation.assign(op);
  out.route = out.name;
  if (const std::string_view state = SqlState(r); !state.empty()) {
    out.error = true;
    out.status_message.assign(state);
  } else if (r.flags & kRecordNoResponse) {
    out.error = true;
    out.status_message = "no response";
  }
}

void AppendPostgresAttributes(const L7Record& r, const SpanDescription& /*description*/,
                              const ExchangeAddresses& addr, std::vector<Attribute>& a) {
  a.reserve(a.size() + 12);
  a.push_back({"db.system.name", std::string("postgresql")});
  a.push_back({"db.operation.name", std::string(Operation(r))});
  if (!r.authority.empty()) a.push_back({"db.namespace", r.authority});
  if (!r.path.empty()) a.push_back({"db.query.text", r.path});
  if (auto c = r.request.headers.Find("collection")) a.push_back({"db.collection.name", std::string(*c)});
  a.push_back({"server.address", std::string(addr.server_address)});
  a.push_back({"server.port", int64_t{addr.server_port}});
  a.push_back({"network.peer.address", std::string(addr.peer_address)});
  a.push_back({"network.peer.port", int64_t{addr.peer_port}});
  if (auto rows = r.response.headers.Find("rows")) {
    int64_t n = 0;
    if (std::from_chars(rows->data(), rows->data() + rows->size(), n).ec == std::errc()) {
      a.push_back({"db.response.returned_rows", n});
    }
  }
  if (const std::string_view state = SqlState(r); !state.empty()) {
    a.push_back({"db.response.status_code", std::string(state)});
    a.push_back({"error.type", std::string(state)});
  } else if (r.flags & kRecordNoResponse) {
    a.push_back({"error.type", std::string("no_response")});
  }
  if (r.flags != 0) a.push_back({"sonde.record.flags", int64_t{r.flags}});
}

}  // namespace

std::string_view SqlState(const L7Record& r) { return r.response.headers.Find("sqlstate").value_or(""); }

const RecordSemantics& PostgresSemantics() {
  static const RecordSemantics kPostgres{
      &DescribePostgres, &AppendPostgresAttributes,
      {"sonde_db_server_operation_duration_seconds", "db_client_operation_duration_seconds",
       "sonde_db_server_operation_errors_total", "sonde_db_client_operation_errors_total", "database operations"}};
  return kPostgres;
}

}  // namespace sonde::protocols::postgres
