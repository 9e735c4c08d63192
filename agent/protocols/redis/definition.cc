#include "agent/protocols/redis/definition.h"

#include "agent/protocols/redis/semantics.h"
#include "agent/protocols/redis/session.h"

namespace sonde::protocols::redis {
namespace {
std::unique_ptr<ProtocolSession> MakeSession(Role role, bool late_join) {
  return std::make_unique<RedisSession>(role, late_join);
}
}  // namespace

// Conservative: commands must travel client -> server and replies the other
// way when the role is known, and only Redis's own reply shapes count (a
// "+OK " greeting is POP3). HTTP is tried before Redis in the registry.
InferResult Infer(std::string_view first_bytes, Direction dir, Role role) {
  const int command = LooksLikeCommand(first_bytes);
  if (command == 1) {
    if (role == Role::kClient && dir != Direction::kEgress) return InferResult::kNo;
    if (role == Role::kServer && dir != Direction::kIngress) return InferResult::kNo;
    return InferResult::kYes;
  }
  const int reply = LooksLikeReply(first_bytes);
  if (reply == 1) {
    // A reply needs a known role: alone, its shape is too weak a signal.
    if (role == Role::kClient && dir == Direction::kIngress) return InferResult::kYes;
    if (role == Role::kServer && dir == Direction::kEgress) return InferResult::kYes;
    return InferResult::kNo;
  }
  return (command == -1 || reply == -1) ? InferResult::kMaybeNeedMore : InferResult::kNo;
}

Role InferRole(std::string_view first_bytes, Direction dir) {
  const bool egress = dir == Direction::kEgress;
  if (LooksLikeCommand(first_bytes) == 1) return egress ? Role::kClient : Role::kServer;
  if (LooksLikeReply(first_bytes) == 1) return egress ? Role::kServer : Role::kClient;
  return Role::kUnknown;
}

ProtocolDefinition Definition() {
  static const RecordKind kRecordKinds[] = {{L7Protocol::kRedis, &RedisSemantics()}};
  return ProtocolDefinition{L7Protocol::kRedis, "redis", &Infer, &MakeSession, &InferRole, kRecordKinds};
}

}  // namespace sonde::protocols::redis
