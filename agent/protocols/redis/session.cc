#include "agent/protocols/redis/session.h"

#include <algorithm>
#include <array>

namespace sonde::protocols::redis {
namespace {

char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c; }
char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool IsSubscribeCommand(std::string_view name) {
  return name == "SUBSCRIBE" || name == "PSUBSCRIBE" || name == "SSUBSCRIBE";
}

constexpr std::array<std::string_view, 6> kConfirmations = {"subscribe",   "psubscribe",   "ssubscribe",
                                                            "unsubscribe", "punsubscribe", "sunsubscribe"};
constexpr std::array<std::string_view, 3> kMessages = {"message", "pmessage", "smessage"};

bool OneOf(std::string_view word, std::span<const std::string_view> set) {
  return std::any_of(set.begin(), set.end(), [&](std::string_view s) { return EqualsIgnoreCase(word, s); });
}

// Commands recognised inline on a connection's first bytes (redis-cli and
// health checks send these; anything else must be RESP).
constexpr std::array<std::string_view, 14> kInlineCommands = {
    "PING", "ECHO", "INFO", "QUIT", "AUTH", "HELLO", "SELECT", "DBSIZE", "MONITOR", "SUBSCRIBE",
    "FLUSHALL", "FLUSHDB", "COMMAND", "CLIENT"};

int ParsesAsDigitsLine(std::string_view s, size_t from, bool allow_minus_one) {
  size_t i = from;
  if (allow_minus_one && i < s.size() && s[i] == '-') {
    ++i;
    if (i >= s.size()) return -1;
    if (s[i] != '1') return 0;
    ++i;
  } else {
    const size_t start = i;
    while (i < s.size() && i - start < 12 && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == s.size()) return -1;
    if (i == start) return 0;
  }
  if (i >= s.size()) return -1;
  if (s[i] != '\r') return 0;
  if (i + 1 >= s.size()) return -1;
  return s[i + 1] == '\n' ? 1 : 0;
}

}  // namespace

int LooksLikeCommand(std::string_view b) {
  if (b.empty()) return -1;
  if (b[0] == '*') {
    // "*<n>\r\n$": an array whose first element is a bulk string.
    if (b.size() < 2) return -1;
    if (b[1] < '1' || b[1] > '9') return 0;
    size_t i = 1;
    while (i < b.size() && i < 8 && b[i] >= '0' && b[i] <= '9') ++i;
    if (i + 3 > b.size()) return i >= 8 ? 0 : -1;
    return b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '$' ? 1 : 0;
  }
  // Inline: a known command on a complete line that is not an HTTP request line.
  size_t end = 0;
  while (end < b.size() && end < 10 && ((b[end] >= 'A' && b[end] <= 'Z') || (b[end] >= 'a' && b[end] <= 'z'))) ++end;
  if (end == b.size()) return end < 10 ? -1 : 0;
  if (end == 0 || (b[end] != ' ' && b[end] != '\r' && b[end] != '\n')) return 0;
  const std::string_view word = b.substr(0, end);
  const bool known = std::any_of(kInlineCommands.begin(), kInlineCommands.end(),
                                 [&](std::string_view c) { return EqualsIgnoreCase(word, c); });
  if (!known) return 0;
  const size_t lf = b.find('\n');
  if (lf == std::string_view::npos) return b.size() < 256 ? -1 : 0;
  const std::string_view line = b.substr(0, lf);
  if (line.find("HTTP/") != std::string_view::npos || line.find(" /") != std::string_view::npos) return 0;
  return 1;
}

int LooksLikeReply(std::string_view b) {
  if (b.empty()) return -1;
  auto exact = [&](std::string_view want) {
    if (b.size() < want.size()) return want.substr(0, b.size()) == b ? -1 : 0;
    return b.substr(0, want.size()) == want ? 1 : 0;
  };
  switch (b[0]) {
    case '+':  // "+OK " with text is POP3's greeting: only Redis's exact short replies
      if (exact("+OK\r\n") != 0) return exact("+OK\r\n");
      return exact("+PONG\r\n");
    case '-':
      for (std::string_view e : {"-ERR ", "-WRONGTYPE ", "-NOAUTH ", "-NOPERM ", "-MOVED ", "-READONLY "}) {
        const int r = exact(e);
        if (r != 0) return r;
      }
      return 0;
    case '$':
    case '*':
      return ParsesAsDigitsLine(b, 1, true);
    case ':':
    case '%':
      return ParsesAsDigitsLine(b, 1, false);
    default:
      return 0;
  }
}

std::string CommandName(const RespSummary& v) {
  const bool command_shape = (v.type == RespType::kArray && v.bulk_strings_only && v.elements > 0) ||
                             (v.type == RespType::kInline && v.word_count > 0);
  if (!command_shape) return {};
  std::string name = v.words[0];
  for (char& c : name) c = Upper(c);
  return name;
}

ReplyKind ClassifyReply(const RespSummary& v, bool subscribed) {
  const bool push = v.type == RespType::kPush;
  if (!push && !(subscribed && v.type == RespType::kArray)) return ReplyKind::kReply;
  if (v.word_count == 0) return push ? ReplyKind::kPush : ReplyKind::kReply;
  if (OneOf(v.words[0], kConfirmations)) return ReplyKind::kConfirmation;
  if (push || OneOf(v.words[0], kMessages)) return ReplyKind::kPush;
  return ReplyKind::kReply;
}

RedisSession::RedisSession(Role role, bool late_join) : role_(role), late_join_(late_join) {
  egress_.scanner.set_allow_inline(role_ == Role::kClient);
  ingress_.scanner.set_allow_inline(role_ == Role::kServer);
  if (late_join) {
    // Joined mid-stream: the first bytes may be the middle of a value.
    egress_.resync = ingress_.resync = true;
    egress_.after_desync = ingress_.after_desync = true;
  }
}

bool RedisSession::IsRequestDir(Direction dir) const {
  return role_ == Role::kServer ? dir == Direction::kIngress : dir == Direction::kEgress;
}

RedisSession::DirState& RedisSession::State(Direction dir) {
  return dir == Direction::kEgress ? egress_ : ingress_;
}

void RedisSession::ResolveRole(Direction dir, std::string_view bytes) {
  // Whoever sends commands is the client.
  const bool egress = dir == Direction::kEgress;
  if (LooksLikeCommand(bytes) == 1) {
    role_ = egress ? Role::kClient : Role::kServer;
  } else if (LooksLikeReply(bytes) == 1) {
    role_ = egress ? Role::kServer : Role::kClient;
  } else {
    return;
  }
  egress_.scanner.set_allow_inline(role_ == Role::kClient);
  ingress_.scanner.set_allow_inline(role_ == Role::kServer);
}

void RedisSession::StartValue(Direction dir, const StreamView& view, size_t pos, DirState& st) {
  st.current = RedisMessage{};
  L7Message& w = st.current.wire;
  // Ingress bytes exist for the process when the read returns; egress bytes
  // leave when the write is entered (as HTTP/1 times them).
  if (const ChunkInfo* chunk = view.ChunkAt(pos)) {
    w.first_byte_ns = dir == Direction::kIngress ? chunk->ts_exit_ns : chunk->ts_enter_ns;
    w.thread_id = chunk->thread_id;
  }
  w.first_tcp_seq = view.SeqAt(pos);
  st.current.late_join = st.after_desync && late_join_;
  st.current.truncated = st.after_desync && !late_join_;
  st.after_desync = false;
  st.in_value = true;
}

void RedisSession::Finish(Direction dir, DirState& st, uint64_t last_byte_ns) {
  RedisMessage& msg = st.current;
  const RespSummary& value = st.scanner.summary();
  msg.wire.complete = !msg.truncated;
  msg.wire.last_byte_ns = last_byte_ns != 0 ? last_byte_ns : st.last_exit_ns;
  st.in_value = false;
  if (IsRequestDir(dir)) {
    msg.name = CommandName(value);
    if (msg.name.empty()) {
      // An empty inline line (ignored by Redis) or a non-command value: nothing to pair.
      if (value.type != RespType::kInline) ++counters_.parse_errors;
      return;
    }
    if (IsSubscribeCommand(msg.name)) subscribed_ = true;
    commands_.push_back(std::move(msg));
  } else {
    msg.kind = ClassifyReply(value, subscribed_);
    msg.error = value.error;
    if (msg.error) {
      const std::string_view text = value.error_text;
      msg.error_code = std::string(text.substr(0, text.find(' ')));
    }
    if (msg.kind == ReplyKind::kPush) return;  // out of band: no command waits for it
    if (msg.kind == ReplyKind::kConfirmation) {
      // Keep the word to match it against the pending command.
      msg.name = value.words[0];
      for (char& c : msg.name) c = Upper(c);
    }
    replies_.push_back(std::move(msg));
  }
  Pair();
}

size_t RedisSession::FindResyncPoint(Direction dir, const StreamView& view, size_t pos) const {
  const bool request = IsRequestDir(dir);
  for (const ChunkInfo& c : view.chunks) {
    if (c.offset < pos || c.offset >= view.bytes.size()) continue;
    const std::string_view at = view.bytes.substr(c.offset);
    if ((request ? LooksLikeCommand(at) : LooksLikeReply(at)) != 0) return c.offset;
    RespType type;
    if (!request && RespTypeOf(at[0], &type)) {
      RespHeader h;
      if (ParseRespHeader(at, &h) != RespStatus::kInvalid) return c.offset;
    }
  }
  return std::string_view::npos;
}

void RedisSession::Desync(Direction dir, DirState& st) {
  if (st.in_value) {
    // The value's end is lost: a command whose name was read is kept, flagged.
    st.current.truncated = true;
    if (!IsRequestDir(dir) || !st.scanner.summary().words[0].empty()) Finish(dir, st, 0);
  }
  st.in_value = false;
  st.scanner.Reset();
  st.resync = true;
  st.after_desync = true;
  // Lost replies shift the FIFO: pairing later replies with the commands
  // still pending would misattribute them, so those commands end unanswered.
  if (!IsRequestDir(dir)) FlushPending(kRecordTruncated);
}

size_t RedisSession::OnBytes(Direction dir, const StreamView& view) {
  if (role_ == Role::kUnknown) {
    ResolveRole(dir, view.bytes);
    // Nothing recognisable yet: keep only a short tail that may grow into a value start.
    if (role_ == Role::kUnknown) return view.bytes.size() > 16 ? view.bytes.size() - 16 : 0;
  }
  DirState& st = State(dir);
  if (!view.chunks.empty()) st.last_exit_ns = std::max(st.last_exit_ns, view.chunks.back().ts_exit_ns);
  const std::string_view bytes = view.bytes;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (st.resync) {
      const size_t start = FindResyncPoint(dir, view, pos);
      if (start == std::string_view::npos) return bytes.size();
      pos = start;
      st.resync = false;
      ++counters_.resyncs;
    }
    if (!st.in_value) StartValue(dir, view, pos, st);
    size_t used = 0;
    const RespScanner::Result r = st.scanner.Feed(bytes.substr(pos), &used);
    pos += used;
    st.current.wire.bytes += used;
    if (r == RespScanner::Result::kNeedMore) return pos;
    if (r == RespScanner::Result::kInvalid) {
      ++counters_.parse_errors;
      st.in_value = false;
      st.scanner.Reset();
      st.resync = true;
      st.after_desync = true;
      pos = std::min(pos + 1, bytes.size());  // look for a start past the bad byte
      continue;
    }
    const ChunkInfo* c = view.ChunkAt(pos - 1);
    Finish(dir, st, c != nullptr ? c->ts_exit_ns : 0);
  }
  return pos;
}

void RedisSession::OnGap(Direction dir, uint64_t bytes) {
  if (bytes == 0) return;
  DirState& st = State(dir);
  if (st.in_value && bytes != kUnknownGapBytes && st.scanner.SkipGap(bytes)) {
    ++counters_.gaps_absorbed;  // inside a bulk payload: the framing still holds
    st.current.wire.bytes += bytes;
    return;
  }
  ++counters_.gaps_desynced;
  Desync(dir, st);
}

void RedisSession::Pair() {
  while (!replies_.empty()) {
    RedisMessage& reply = replies_.front();
    if (reply.kind == ReplyKind::kConfirmation &&
        (commands_.empty() || !EqualsIgnoreCase(commands_.front().name, reply.name))) {
      // SUBSCRIBE a b gets one confirmation per channel: the first answered the command.
      replies_.pop_front();
      continue;
    }
    if (commands_.empty()) break;
    RedisMessage& command = commands_.front();
    if (reply.wire.first_byte_ns != 0 && command.wire.first_byte_ns != 0 &&
        reply.wire.first_byte_ns < command.wire.first_byte_ns) {
      ++counters_.unpaired;  // a reply cannot start before its command: its command was lost
      replies_.pop_front();
      continue;
    }
    Emit(std::move(command), &reply);
    commands_.pop_front();
    replies_.pop_front();
  }
  while (commands_.size() > kMaxPending) {
    ++counters_.unpaired;
    Emit(std::move(commands_.front()), nullptr);
    commands_.pop_front();
  }
  while (replies_.size() > kMaxPending) {
    ++counters_.unpaired;
    replies_.pop_front();
  }
}

void RedisSession::FlushPending(uint32_t flags) {
  counters_.unpaired += commands_.size();
  for (auto& command : commands_) {
    Emit(std::move(command), nullptr);
    ready_.back().flags |= flags;
  }
  commands_.clear();
}

void RedisSession::Emit(RedisMessage&& command, RedisMessage* reply) {
  if (ready_.capacity() == 0) ready_.reserve(16);
  L7Record& r = ready_.emplace_back();
  r.protocol = L7Protocol::kRedis;
  r.method = std::move(command.name);  // never a key: keys are not recorded
  r.request = std::move(command.wire);
  bool truncated = command.truncated;
  bool late = command.late_join;
  if (reply != nullptr) {
    r.response = std::move(reply->wire);
    // The error prefix travels as a response field (records have no Redis-specific slot).
    if (reply->error) r.response.headers.Add("error", reply->error_code);
    truncated = truncated || reply->truncated;
    late = late || reply->late_join;
  } else {
    r.flags |= kRecordNoResponse;
  }
  if (truncated) r.flags |= kRecordTruncated;
  if (late) r.flags |= kRecordLateJoin;
  ++counters_.records;
  if (late) ++counters_.late_join;
}

void RedisSession::TakeRecords(uint64_t /*now_ns*/, bool closing, std::vector<L7Record>& out) {
  if (closing) {
    Pair();
    counters_.unpaired += replies_.size();
    replies_.clear();
    FlushPending(0);
  }
  if (out.empty()) {
    out.swap(ready_);
  } else {
    std::move(ready_.begin(), ready_.end(), std::back_inserter(out));
  }
  ready_.clear();
}

bool RedisSession::Quiescent(Role* role) const {
  if (role_ == Role::kUnknown || subscribed_ || !commands_.empty() || !replies_.empty() || !ready_.empty()) {
    return false;
  }
  for (const DirState* st : {&egress_, &ingress_}) {
    if (st->in_value || st->resync || st->after_desync) return false;
  }
  *role = role_;
  return true;
}

void RedisSession::ReleaseIdleMemory() {
  if (ready_.empty()) std::vector<L7Record>().swap(ready_);
}

}  // namespace sonde::protocols::redis
