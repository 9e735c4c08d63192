#pragma once
// PostgreSQL ProtocolSession. The frontend's messages become a FIFO of
// operations the backend answers in order (the protocol guarantees it, also
// with several Sync batches in flight); a record is one simple Query (up to
// its ReadyForQuery) or one extended-protocol Execute (from the Parse/Bind
// that prepared it to its CommandComplete). After an ErrorResponse the
// backend skips to the next Sync: the failing unit's record carries the
// SQLSTATE and the skipped operations end without a record.
//
// Statement and portal names are mapped to their (normalised) text so an
// Execute of a statement prepared long before still has its query. Password
// and SASL messages are skipped unread; an SSL/GSS upgrade ends parsing.
#include <deque>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/protocols/postgres/wire.h"
#include "agent/protocols/protocol.h"

namespace sonde::protocols::postgres {

// What a frontend operation expects from the backend.
enum class OpKind : uint8_t { kQuery, kParse, kBind, kDescribe, kExecute, kClose, kSync, kFunctionCall };

struct PendingOp {
  OpKind kind = OpKind::kSync;
  std::string query;  // normalised text (kQuery, kParse, kBind, kExecute)
  L7Message wire;     // kQuery / kExecute: the unit's bytes and timing
  bool late_join = false;
  bool truncated = false;
};

class PostgresSession final : public ProtocolSession {
 public:
  static constexpr size_t kMaxPending = 1024;       // operations awaiting an answer, then dropped and counted
  static constexpr size_t kMaxNames = 128;          // prepared statements / portals remembered (each <= 2 KiB)
  static constexpr uint32_t kMaxBodyWait = 32768;   // larger bodies are read from their prefix, the rest skipped

  PostgresSession(Role role, bool late_join);

  size_t OnBytes(Direction dir, const StreamView& view) override;
  void OnGap(Direction dir, uint64_t bytes) override;
  void TakeRecords(uint64_t now_ns, bool closing, std::vector<L7Record>& out) override;
  const ProtocolCounters& counters() const override { return counters_; }
  void ReleaseIdleMemory() override;

  const std::string& database() const { return database_; }
  bool encrypted() const { return encrypted_; }

 private:
  struct DirState {
    bool startup = false;       // frontend: the next bytes are an untyped opening packet
    uint32_t answer_bytes = 0;  // backend: single-byte SSL/GSS answers expected
    uint64_t skip = 0;          // bytes of the current message body left to skip
    bool resync = false;        // looking for a message start
    bool after_desync = false;
    uint64_t last_exit_ns = 0;
  };

  bool IsFrontend(Direction dir) const;
  DirState& State(Direction dir) { return dir == Direction::kEgress ? egress_ : ingress_; }
  void ResolveRole(Direction dir, std::string_view bytes);
  size_t FindResync(bool frontend, const StreamView& view, size_t pos) const;
  void Desync(Direction dir);

  // One whole (or prefix of a large) message body.
  void OnFrontend(char type, std::string_view body, bool partial, const StreamView& view, size_t start, size_t end);
  void OnBackend(char type, std::string_view body, const StreamView& view, size_t start, size_t end);
  void StartUnit(const StreamView& view, size_t pos);
  void Queue(PendingOp&& op);
  void MarkResponseStart(const StreamView& view, size_t pos);
  void Emit(PendingOp&& op, bool answered, std::string_view sqlstate, int64_t rows, uint64_t last_byte_ns);
  void Remember(std::unordered_map<std::string, std::string>& map, std::string_view name, std::string query);
  std::string Lookup(const std::unordered_map<std::string, std::string>& map, std::string_view name) const;

  Role role_;
  bool late_join_;
  bool encrypted_ = false;  // SSL/GSS accepted: the rest is ciphertext
  DirState egress_, ingress_;
  std::string database_;

  // Frontend side: the extended-protocol unit being built (Parse/Bind/Describe before an Execute).
  L7Message unit_;
  bool unit_open_ = false;
  std::unordered_map<std::string, std::string> statements_, portals_;

  // Backend side.
  std::deque<PendingOp> pending_;
  L7Message response_;  // the answer being received for the head operation's unit
  bool response_open_ = false;
  std::string query_sqlstate_;  // first error of the simple Query in progress
  int64_t query_rows_ = -1;
  bool skip_to_sync_ = false;  // an error was reported: the backend ignores up to Sync

  std::vector<L7Record> ready_;
  ProtocolCounters counters_;
};

// Inference helpers (exposed for tests): 1 yes, 0 no, -1 need more bytes.
int LooksLikeStartup(std::string_view bytes);
// A typed frontend message that starts a statement (Query / Parse) with SQL text.
int LooksLikeStatement(std::string_view bytes);

}  // namespace sonde::protocols::postgres
