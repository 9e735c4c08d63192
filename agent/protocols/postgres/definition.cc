#include "agent/protocols/postgres/definition.h"

#include "agent/protocols/postgres/semantics.h"
#include "agent/protocols/postgres/session.h"

namespace sonde::protocols::postgres {
namespace {
std::unique_ptr<ProtocolSession> MakeSession(Role role, bool late_join) {
  return std::make_unique<PostgresSession>(role, late_join);
}
}  // namespace

// The frontend speaks first: a startup packet (or SSL/GSS/cancel request)
// from the client. A connection joined mid-way is recognised from a Query or
// Parse carrying SQL text. The server never speaks first, so backend bytes
// alone are not enough.
InferResult Infer(std::string_view first_bytes, Direction dir, Role role) {
  const bool from_client = role == Role::kClient   ? dir == Direction::kEgress
                           : role == Role::kServer ? dir == Direction::kIngress
                                                   : true;
  if (!from_client) return InferResult::kNo;
  const int startup = LooksLikeStartup(first_bytes);
  if (startup == 1) return InferResult::kYes;
  const int statement = LooksLikeStatement(first_bytes);
  if (statement == 1) return InferResult::kYes;
  return (startup == -1 || statement == -1) ? InferResult::kMaybeNeedMore : InferResult::kNo;
}

Role InferRole(std::string_view first_bytes, Direction dir) {
  if (LooksLikeStartup(first_bytes) == 1 || LooksLikeStatement(first_bytes) == 1) {
    return dir == Direction::kEgress ? Role::kClient : Role::kServer;
  }
  return Role::kUnknown;
}

ProtocolDefinition Definition() {
  static const RecordKind kRecordKinds[] = {{L7Protocol::kPostgres, &PostgresSemantics()}};
  return ProtocolDefinition{L7Protocol::kPostgres, "postgresql", &Infer, &MakeSession, &InferRole, kRecordKinds};
}

}  // namespace sonde::protocols::postgres
