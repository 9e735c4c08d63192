#pragma once
// Redis ProtocolSession: a RespScanner per direction and a stitcher pairing
// commands with replies in order (Redis answers every connection's commands
// in order, so pipelining is a FIFO). Out-of-band frames are never paired:
// RESP3 pushes ('>') and, once the client subscribed, RESP2 pub/sub messages
// ("message"/"pmessage"/"smessage" arrays) and extra subscribe confirmations.
#include <deque>
#include <string>
#include <vector>

#include "agent/protocols/protocol.h"
#include "agent/protocols/redis/resp.h"

namespace sonde::protocols::redis {

// What a reply is to the stitcher.
enum class ReplyKind : uint8_t {
  kReply,         // answers the oldest pending command
  kPush,          // out-of-band (RESP3 push, pub/sub message): never paired
  kConfirmation,  // (un)subscribe confirmation: answers a matching pending command once
};

struct RedisMessage {
  L7Message wire;
  std::string name;        // commands: first word, uppercased
  ReplyKind kind = ReplyKind::kReply;
  bool error = false;      // replies: '-' or '!'
  std::string error_code;  // replies: first word of the error ("ERR", "WRONGTYPE")
  bool truncated = false;
  bool late_join = false;
};

// Pure helpers, exposed for tests.
// The command a top-level value carries ("" when it is not a command).
std::string CommandName(const RespSummary& value);
ReplyKind ClassifyReply(const RespSummary& value, bool subscribed);

class RedisSession final : public ProtocolSession {
 public:
  static constexpr size_t kMaxPending = 1024;  // per direction, then dropped and counted

  RedisSession(Role role, bool late_join);

  size_t OnBytes(Direction dir, const StreamView& view) override;
  void OnGap(Direction dir, uint64_t bytes) override;
  void TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) override;
  const ProtocolCounters& counters() const override { return counters_; }
  void ReleaseIdleMemory() override;
  bool Quiescent(Role* role) const override;

  Role role() const { return role_; }

 private:
  struct DirState {
    explicit DirState(bool allow_inline) : scanner(allow_inline) {}
    RespScanner scanner;
    RedisMessage current;
    bool in_value = false;      // `current` has started
    bool resync = false;        // looking for a plausible value start
    bool after_desync = false;  // the next value follows lost or invalid bytes
    uint64_t last_exit_ns = 0;
  };

  bool IsRequestDir(Direction dir) const;
  DirState& State(Direction dir);
  void ResolveRole(Direction dir, std::string_view bytes);
  void StartValue(Direction dir, const StreamView& view, size_t pos, DirState& st);
  void Finish(Direction dir, DirState& st, uint64_t last_byte_ns);
  void Desync(Direction dir, DirState& st);
  // A value start at or after `pos` on a syscall boundary, or npos.
  size_t FindResyncPoint(Direction dir, const StreamView& view, size_t pos) const;
  void Pair();
  void Emit(RedisMessage&& command, RedisMessage* reply);
  void FlushPending(uint32_t flags);

  Role role_;
  bool late_join_;
  bool subscribed_ = false;  // the client sent (P|S)SUBSCRIBE: RESP2 pushes may arrive
  DirState egress_{true};
  DirState ingress_{true};
  std::deque<RedisMessage> commands_;
  std::deque<RedisMessage> replies_;
  std::vector<L7Record> ready_;
  ProtocolCounters counters_;
};

// Does `bytes` start with a command (array of bulk strings, or a known inline
// command on a complete line)? 1 yes, 0 no, -1 not enough bytes to tell.
int LooksLikeCommand(std::string_view bytes);
// A reply a server would send first thing after a command; same return values.
int LooksLikeReply(std::string_view bytes);

}  // namespace sonde::protocols::redis
