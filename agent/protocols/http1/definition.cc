#include "agent/protocols/http1/definition.h"

#include "agent/protocols/http/semantics.h"

#include "agent/protocols/http1/parser.h"
#include "agent/protocols/http1/stitcher.h"

namespace sonde::protocols::http1 {
namespace {
std::unique_ptr<ProtocolSession> MakeSession(Role role, bool late_join) {
  return std::make_unique<Http1Session>(role, late_join);
}
}  // namespace

InferResult Infer(std::string_view first_bytes, Direction dir, Role role) {
  int request = LooksLikeRequestStart(first_bytes);
  if (request == 1) {
    // A request must travel from the client to the server.
    if (role == Role::kClient && dir != Direction::kEgress) return InferResult::kNo;
    if (role == Role::kServer && dir != Direction::kIngress) return InferResult::kNo;
    return InferResult::kYes;
  }
  int response = LooksLikeResponseStart(first_bytes);
  if (response == 1) {
    if (role == Role::kClient && dir != Direction::kIngress) return InferResult::kNo;
    if (role == Role::kServer && dir != Direction::kEgress) return InferResult::kNo;
    return InferResult::kYes;
  }
  return (request == -1 || response == -1) ? InferResult::kMaybeNeedMore : InferResult::kNo;
}

Role InferRole(std::string_view first_bytes, Direction dir) {
  bool egress = dir == Direction::kEgress;
  if (LooksLikeRequestStart(first_bytes) == 1) return egress ? Role::kClient : Role::kServer;
  if (LooksLikeResponseStart(first_bytes) == 1) return egress ? Role::kServer : Role::kClient;
  return Role::kUnknown;
}

ProtocolDefinition Definition() {
  static const RecordKind kRecordKinds[] = {{L7Protocol::kHttp1, &http::HttpSemantics()}};
  return ProtocolDefinition{L7Protocol::kHttp1, "http1", &Infer, &MakeSession, &InferRole, kRecordKinds};
}

}  // namespace sonde::protocols::http1
