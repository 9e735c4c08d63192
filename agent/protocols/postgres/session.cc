#include "agent/protocols/postgres/session.h"

#include <algorithm>
#include <charconv>

#include "agent/protocols/postgres/query_text.h"

namespace sonde::protocols::postgres {
namespace {

// ReadyForQuery: 'Z', length 5, transaction status: a strong resync anchor.
bool IsReadyForQueryAt(std::string_view b, size_t i) {
  return i + 6 <= b.size() && b[i] == 'Z' && b[i + 1] == 0 && b[i + 2] == 0 && b[i + 3] == 0 && b[i + 4] == 5 &&
         (b[i + 5] == 'I' || b[i + 5] == 'T' || b[i + 5] == 'E');
}

bool FrontendNeedsBody(char type) {
  return type == 'Q' || type == 'P' || type == 'B' || type == 'E' || type == 'C';
}
bool BackendNeedsBody(char type) { return type == 'C' || type == 'E'; }
// Backend messages that do not answer an operation.
bool OutOfBand(char type) { return type == 'R' || type == 'S' || type == 'K' || type == 'N' || type == 'A' || type == 'v'; }

bool PlausibleSqlStart(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r' || text[i] == '(')) ++i;
  if (i >= text.size()) return false;
  size_t j = i;
  while (j < text.size() && ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= 'A' && text[j] <= 'Z'))) ++j;
  return j - i >= 3 && (j == text.size() || text[j] == ' ' || text[j] == '\n' || text[j] == ';' || text[j] == '\t' ||
                        text[j] == '(' || text[j] == '\0' || text[j] == '\r');
}

}  // namespace

int LooksLikeStartup(std::string_view b) {
  if (b.size() < 8) {
    // Lengths are under 10000: the first two bytes are zero.
    for (size_t i = 0; i < b.size() && i < 2; ++i) {
      if (b[i] != 0) return 0;
    }
    return -1;
  }
  StartupPacket p;
  switch (ParseStartup(b, &p)) {
    case ParseStatus::kOk:
      return 1;
    case ParseStatus::kNeedMore:
      return -1;
    default:
      return 0;
  }
}

int LooksLikeStatement(std::string_view b) {
  if (b.empty()) return -1;
  if (b[0] != 'Q' && b[0] != 'P') return 0;
  MessageHeader h;
  const ParseStatus s = ParseMessageHeader(b, true, &h);
  if (s != ParseStatus::kOk) return s == ParseStatus::kNeedMore ? -1 : 0;
  if (h.body_length < 4 || h.body_length > (1u << 24)) return 0;
  std::string_view body = b.substr(kHeaderBytes, h.body_length);
  size_t pos = 0;
  if (h.type == 'P') {
    std::string_view name;
    if (!ReadCString(body, &pos, &name)) return body.size() < h.body_length ? -1 : 0;
  }
  const std::string_view text = body.substr(std::min(pos, body.size()));
  if (text.size() < 8 && body.size() < h.body_length) return -1;
  return PlausibleSqlStart(text) ? 1 : 0;
}

PostgresSession::PostgresSession(Role role, bool late_join) : role_(role), late_join_(late_join) {
  // The frontend's first bytes are the startup packet (or an SSL/GSS request).
  // Also when "joined mid-way": a forking server (postgres) gets the socket
  // from a parent whose close() of its copy looked like the end of the
  // connection, so its child's first bytes may well be the real start.
  egress_.startup = ingress_.startup = true;
  if (late_join) {
    egress_.resync = ingress_.resync = true;
    egress_.after_desync = ingress_.after_desync = true;
  }
}

bool PostgresSession::IsFrontend(Direction dir) const {
  return role_ == Role::kServer ? dir == Direction::kIngress : dir == Direction::kEgress;
}

void PostgresSession::ResolveRole(Direction dir, std::string_view bytes) {
  const bool egress = dir == Direction::kEgress;
  if (LooksLikeStartup(bytes) == 1 || LooksLikeStatement(bytes) == 1) {
    role_ = egress ? Role::kClient : Role::kServer;
  } else if (IsReadyForQueryAt(bytes, 0)) {
    role_ = egress ? Role::kServer : Role::kClient;
  }
}

size_t PostgresSession::FindResync(bool frontend, const StreamView& view, size_t pos) const {
  size_t best = std::string_view::npos;
  for (const ChunkInfo& c : view.chunks) {
    if (c.offset < pos || c.offset >= view.bytes.size()) continue;
    const std::string_view at = view.bytes.substr(c.offset);
    MessageHeader h;
    if (ParseMessageHeader(at, frontend, &h) != ParseStatus::kOk) continue;
    if (frontend) {
      // Weak types (copy data, password) are no anchor; a statement must carry SQL.
      if (h.type == 'Q' || h.type == 'P') {
        if (LooksLikeStatement(at) == 0) continue;
      } else if (h.type != 'B' && h.type != 'E' && h.type != 'S' && h.type != 'D' && h.type != 'X') {
        continue;
      }
    } else if (h.type == 'd' || h.type == 'D' || h.type == 'c') {
      continue;
    }
    best = c.offset;
    break;
  }
  if (!frontend) {
    // ReadyForQuery anywhere: answers are always aligned right after it.
    for (size_t i = view.bytes.find('Z', pos); i != std::string_view::npos && i < best;
         i = view.bytes.find('Z', i + 1)) {
      if (IsReadyForQueryAt(view.bytes, i)) return i;
    }
  }
  return best;
}

void PostgresSession::Desync(Direction dir) {
  DirState& st = State(dir);
  st.skip = 0;
  st.resync = true;
  st.after_desync = true;
  if (IsFrontend(dir)) {
    unit_open_ = false;
  } else {
    // Part of an answer is lost: the operation it answered ends flagged.
    if (!pending_.empty()) pending_.front().truncated = true;
    response_.complete = false;
  }
}

void PostgresSession::StartUnit(const StreamView& view, size_t pos) {
  unit_ = L7Message{};
  unit_open_ = true;
  const bool ingress = !(role_ == Role::kClient);  // the frontend's bytes arrive (server) or leave (client)
  if (const ChunkInfo* c = view.ChunkAt(pos)) {
    unit_.first_byte_ns = ingress ? c->ts_exit_ns : c->ts_enter_ns;
    unit_.thread_id = c->thread_id;
  }
  unit_.first_tcp_seq = view.SeqAt(pos);
}

void PostgresSession::MarkResponseStart(const StreamView& view, size_t pos) {
  if (response_open_) return;
  response_ = L7Message{};
  response_.complete = true;
  response_open_ = true;
  const bool ingress = role_ == Role::kClient;
  if (const ChunkInfo* c = view.ChunkAt(pos)) {
    response_.first_byte_ns = ingress ? c->ts_exit_ns : c->ts_enter_ns;
    response_.thread_id = c->thread_id;
  }
  response_.first_tcp_seq = view.SeqAt(pos);
}

void PostgresSession::Queue(PendingOp&& op) {
  pending_.push_back(std::move(op));
  while (pending_.size() > kMaxPending) {
    PendingOp& old = pending_.front();
    if (old.kind == OpKind::kQuery || old.kind == OpKind::kExecute) {
      ++counters_.unpaired;
      Emit(std::move(old), false, {}, -1, 0);
    }
    pending_.pop_front();
  }
}

void PostgresSession::Remember(std::unordered_map<std::string, std::string>& map, std::string_view name,
                               std::string query) {
  auto it = map.find(std::string(name));
  if (it != map.end()) {
    it->second = std::move(query);
    return;
  }
  if (map.size() >= kMaxNames) map.erase(map.begin());  // bounded: an unknown name later reads as no text
  map.emplace(std::string(name), std::move(query));
}

std::string PostgresSession::Lookup(const std::unordered_map<std::string, std::string>& map,
                                    std::string_view name) const {
  auto it = map.find(std::string(name));
  return it == map.end() ? std::string() : it->second;
}

void PostgresSession::OnFrontend(char type, std::string_view body, bool partial, const StreamView& view,
                                 size_t start, size_t end) {
  const ChunkInfo* last = view.ChunkAt(end - 1);
  const uint64_t end_ns = last != nullptr ? last->ts_exit_ns : 0;
  const uint64_t bytes = end - start;
  DirState& st = State(role_ == Role::kServer ? Direction::kIngress : Direction::kEgress);
  auto own_wire = [&](PendingOp& op) {
    const bool ingress = role_ == Role::kServer;
    if (const ChunkInfo* c = view.ChunkAt(start)) {
      op.wire.first_byte_ns = ingress ? c->ts_exit_ns : c->ts_enter_ns;
      op.wire.thread_id = c->thread_id;
    }
    op.wire.first_tcp_seq = view.SeqAt(start);
    op.wire.last_byte_ns = end_ns;
    op.wire.bytes = bytes;
    op.wire.complete = !partial;
    op.late_join = st.after_desync && late_join_;
    op.truncated = (st.after_desync && !late_join_) || partial;
  };
  size_t pos = 0;
  switch (type) {
    case 'Q': {
      std::string_view text;
      ReadCString(body, &pos, &text);
      PendingOp op;
      op.kind = OpKind::kQuery;
      op.query = NormalizeQuery(text);
      own_wire(op);
      unit_open_ = false;
      st.after_desync = false;
      Queue(std::move(op));
      return;
    }
    case 'P': {
      std::string_view name, text;
      ReadCString(body, &pos, &name);
      ReadCString(body, &pos, &text);
      PendingOp op;
      op.kind = OpKind::kParse;
      op.query = NormalizeQuery(text);
      own_wire(op);
      Remember(statements_, name, op.query);
      if (!unit_open_) StartUnit(view, start);
      unit_.bytes += bytes;
      Queue(std::move(op));
      return;
    }
    case 'B': {
      std::string_view portal, statement;
      ReadCString(body, &pos, &portal);
      ReadCString(body, &pos, &statement);
      PendingOp op;
      op.kind = OpKind::kBind;
      op.query = Lookup(statements_, statement);
      own_wire(op);
      Remember(portals_, portal, op.query);
      if (!unit_open_) StartUnit(view, start);
      unit_.bytes += bytes;
      Queue(std::move(op));
      return;
    }
    case 'E': {
      std::string_view portal;
      ReadCString(body, &pos, &portal);
      PendingOp op;
      op.kind = OpKind::kExecute;
      op.query = Lookup(portals_, portal);
      own_wire(op);
      if (unit_open_) {
        unit_.bytes += bytes;
        unit_.last_byte_ns = end_ns;
        unit_.complete = !partial;
        op.wire = unit_;
      }
      unit_open_ = false;
      st.after_desync = false;
      Queue(std::move(op));
      return;
    }
    case 'D': {
      if (!unit_open_) StartUnit(view, start);
      unit_.bytes += bytes;
      PendingOp op;
      op.kind = OpKind::kDescribe;
      own_wire(op);
      Queue(std::move(op));
      return;
    }
    case 'C': {
      // Close 'S'tatement / 'P'ortal: forget its name.
      if (!body.empty()) {
        std::string_view name;
        pos = 1;
        ReadCString(body, &pos, &name);
        (body[0] == 'S' ? statements_ : portals_).erase(std::string(name));
      }
      PendingOp op;
      op.kind = OpKind::kClose;
      own_wire(op);
      Queue(std::move(op));
      return;
    }
    case 'S': {
      PendingOp op;
      op.kind = OpKind::kSync;
      own_wire(op);
      unit_open_ = false;  // a Parse + Sync alone prepares a statement: no record
      Queue(std::move(op));
      return;
    }
    case 'F': {
      PendingOp op;
      op.kind = OpKind::kFunctionCall;
      own_wire(op);
      Queue(std::move(op));
      return;
    }
    default:
      return;  // Flush, Terminate, copy data, password/SASL (never read)
  }
}

void PostgresSession::OnBackend(char type, std::string_view body, const StreamView& view, size_t start,
                                size_t end) {
  if (OutOfBand(type)) return;
  const ChunkInfo* last = view.ChunkAt(end - 1);
  const uint64_t end_ns = last != nullptr ? last->ts_exit_ns : 0;
  if (pending_.empty()) {
    // The startup's ReadyForQuery, or an answer whose request was not seen:
    // it must not open the next operation's response.
    response_open_ = false;
    return;
  }
  MarkResponseStart(view, start);
  response_.bytes += end - start;
  response_.last_byte_ns = end_ns;
  PendingOp& head = pending_.front();
  // An answer cannot start before its request: the request was lost.
  const bool stale = head.wire.first_byte_ns != 0 && response_.first_byte_ns != 0 &&
                     response_.first_byte_ns < head.wire.first_byte_ns;
  auto pop_if = [&](OpKind kind) {
    if (head.kind == kind) {
      pending_.pop_front();
    } else {
      ++counters_.unpaired;  // out of step (joined mid-way, lost bytes): ReadyForQuery realigns
    }
  };
  switch (type) {
    case 'Z': {
      if (stale) {
        response_open_ = false;
        return;
      }
      if (head.kind == OpKind::kQuery) {
        PendingOp op = std::move(head);
        pending_.pop_front();
        Emit(std::move(op), true, query_sqlstate_, query_rows_, end_ns);
      } else {
        // Everything up to the Sync is answered (or was skipped after an error).
        while (!pending_.empty()) {
          PendingOp op = std::move(pending_.front());
          pending_.pop_front();
          if (op.kind == OpKind::kSync || op.kind == OpKind::kFunctionCall) break;
          if (op.kind == OpKind::kExecute && !skip_to_sync_) {
            op.truncated = true;  // its completion was not seen
            Emit(std::move(op), true, {}, -1, end_ns);
          }
        }
      }
      query_sqlstate_.clear();
      query_rows_ = -1;
      skip_to_sync_ = false;
      response_open_ = false;
      return;
    }
    case 'E': {
      ErrorFields fields;
      const bool ok = ParseErrorFields(body, &fields);
      if (!ok) ++counters_.parse_errors;
      const std::string_view sqlstate = ok ? fields.sqlstate : std::string_view("XX000");
      if (head.kind == OpKind::kQuery || head.kind == OpKind::kFunctionCall) {
        if (query_sqlstate_.empty()) query_sqlstate_.assign(sqlstate);
        return;
      }
      if (skip_to_sync_ || stale) return;
      // The failing unit: the first Execute before the next Sync, else the failing message itself.
      auto sync = std::find_if(pending_.begin(), pending_.end(), [](const PendingOp& o) { return o.kind == OpKind::kSync; });
      auto exec = std::find_if(pending_.begin(), sync, [](const PendingOp& o) { return o.kind == OpKind::kExecute; });
      PendingOp failed = std::move(exec != sync ? *exec : head);
      pending_.erase(pending_.begin(), sync);
      skip_to_sync_ = true;
      Emit(std::move(failed), true, sqlstate, -1, end_ns);
      return;
    }
    case 'C':
    case 'I':
    case 's': {
      if (head.kind == OpKind::kQuery) {
        if (type == 'C') {
          std::string_view tag;
          size_t pos = 0;
          ReadCString(body, &pos, &tag);
          query_rows_ = RowsFromTag(tag);
        }
        return;
      }
      if (stale || head.kind != OpKind::kExecute) {
        ++counters_.unpaired;
        return;
      }
      int64_t rows = -1;
      if (type == 'C') {
        std::string_view tag;
        size_t pos = 0;
        ReadCString(body, &pos, &tag);
        rows = RowsFromTag(tag);
      }
      PendingOp op = std::move(head);
      pending_.pop_front();
      Emit(std::move(op), true, {}, rows, end_ns);
      return;
    }
    case '1':
      if (!stale) pop_if(OpKind::kParse);
      return;
    case '2':
      if (!stale) pop_if(OpKind::kBind);
      return;
    case '3':
      if (!stale) pop_if(OpKind::kClose);
      return;
    case 'n':
    case 'T':
      if (!stale && head.kind == OpKind::kDescribe) pending_.pop_front();
      return;
    default:
      return;  // rows, parameter descriptions, copy, function results: part of the head's answer
  }
}

void PostgresSession::Emit(PendingOp&& op, bool answered, std::string_view sqlstate, int64_t rows,
                           uint64_t last_byte_ns) {
  if (op.kind != OpKind::kQuery && op.kind != OpKind::kExecute && sqlstate.empty()) return;
  if (ready_.capacity() == 0) ready_.reserve(16);
  L7Record& r = ready_.emplace_back();
  r.protocol = L7Protocol::kPostgres;
  r.method = OperationName(op.query);
  r.path = std::move(op.query);
  r.authority = database_;
  r.request = std::move(op.wire);
  if (const std::string collection = CollectionName(r.path, r.method); !collection.empty()) {
    r.request.headers.Add("collection", collection);
  }
  if (answered) {
    r.response = response_;
    r.response.headers = HeaderList();
    if (last_byte_ns != 0) r.response.last_byte_ns = last_byte_ns;
    if (!sqlstate.empty()) r.response.headers.Add("sqlstate", sqlstate);
    if (rows >= 0) {
      char buf[24];
      const auto res = std::to_chars(buf, buf + sizeof buf, rows);
      r.response.headers.Add("rows", std::string_view(buf, static_cast<size_t>(res.ptr - buf)));
    }
    response_open_ = false;
  } else {
    r.flags |= kRecordNoResponse;
  }
  if (op.truncated || (answered && !r.response.complete)) r.flags |= kRecordTruncated;
  if (op.late_join) {
    r.flags |= kRecordLateJoin;
    ++counters_.late_join;
  }
  ++counters_.records;
}

size_t PostgresSession::OnBytes(Direction dir, const StreamView& view) {
  if (encrypted_) return view.bytes.size();
  if (role_ == Role::kUnknown) {
    ResolveRole(dir, view.bytes);
    if (role_ == Role::kUnknown) return view.bytes.size() > 16 ? view.bytes.size() - 16 : 0;
  }
  DirState& st = State(dir);
  if (!view.chunks.empty()) st.last_exit_ns = std::max(st.last_exit_ns, view.chunks.back().ts_exit_ns);
  const bool frontend = IsFrontend(dir);
  const std::string_view bytes = view.bytes;
  size_t pos = 0;
  while (pos < bytes.size()) {
    if (st.skip != 0) {
      const uint64_t n = std::min<uint64_t>(st.skip, bytes.size() - pos);
      pos += n;
      st.skip -= n;
      if (!frontend && response_open_) response_.last_byte_ns = st.last_exit_ns;
      continue;
    }
    if (st.resync && st.startup && frontend && pos == 0) {
      // Joined "mid-way" but at the very start after all?
      const int startup = LooksLikeStartup(bytes);
      if (startup == -1) return 0;
      if (startup == 1) {
        late_join_ = false;
        for (DirState* d : {&egress_, &ingress_}) d->resync = d->after_desync = false;
        continue;
      }
    }
    if (st.resync) {
      const size_t at = FindResync(frontend, view, pos);
      if (at == std::string_view::npos) return bytes.size();
      pos = at;
      st.resync = false;
      st.startup = false;
      ++counters_.resyncs;
    }
    if (!frontend && st.answer_bytes > 0) {
      // The single-byte answer to SSLRequest / GSSENCRequest.
      const char c = bytes[pos];
      if (c == 'S' || c == 'G') {
        encrypted_ = true;  // TLS / GSS from here on: nothing readable
        return bytes.size();
      }
      --st.answer_bytes;
      if (c == 'N') {
        ++pos;
        continue;
      }
      // An ErrorResponse instead (server without SSL support): read it as a message.
    }
    if (frontend && st.startup) {
      StartupPacket packet;
      const ParseStatus s = ParseStartup(bytes.substr(pos), &packet);
      if (s == ParseStatus::kNeedMore) return pos;
      if (s == ParseStatus::kInvalid) {
        // Not an opening packet: typed messages, then (the connection was older than it looked).
        st.startup = false;
        continue;
      }
      pos += packet.length;
      if (packet.kind == StartupKind::kSslRequest || packet.kind == StartupKind::kGssEncRequest) {
        ++State(dir == Direction::kEgress ? Direction::kIngress : Direction::kEgress).answer_bytes;
        continue;  // a startup packet follows a refusal
      }
      if (packet.kind == StartupKind::kStartup) database_ = std::move(packet.database);
      st.startup = false;
      continue;
    }
    MessageHeader h;
    const ParseStatus s = ParseMessageHeader(bytes.substr(pos), frontend, &h);
    if (s == ParseStatus::kNeedMore) return pos;
    if (s == ParseStatus::kInvalid) {
      ++counters_.parse_errors;
      Desync(dir);
      pos = std::min(pos + 1, bytes.size());
      continue;
    }
    const uint64_t total = kHeaderBytes + uint64_t{h.body_length};
    const size_t available = bytes.size() - pos;
    const bool needs_body = frontend ? FrontendNeedsBody(h.type) : BackendNeedsBody(h.type);
    if (!needs_body) {
      // Only the type matters: handle it, skip the body by count.
      const size_t here = static_cast<size_t>(std::min<uint64_t>(total, available));
      if (frontend) {
        OnFrontend(h.type, {}, false, view, pos, pos + here);
      } else {
        OnBackend(h.type, {}, view, pos, pos + here);
      }
      pos += here;
      st.skip = total - here;
      continue;
    }
    if (available >= total) {
      const std::string_view body = bytes.substr(pos + kHeaderBytes, h.body_length);
      if (frontend) {
        OnFrontend(h.type, body, false, view, pos, pos + total);
      } else {
        OnBackend(h.type, body, view, pos, pos + total);
      }
      pos += total;
      continue;
    }
    if (h.body_length > kMaxBodyWait && available >= kHeaderBytes + kMaxBodyWait) {
      // A large statement: its prefix is enough for the text we keep.
      const std::string_view body = bytes.substr(pos + kHeaderBytes, kMaxBodyWait);
      const size_t here = kHeaderBytes + kMaxBodyWait;
      if (frontend) {
        OnFrontend(h.type, body, true, view, pos, pos + here);
      } else {
        OnBackend(h.type, body, view, pos, pos + here);
      }
      pos += here;
      st.skip = total - here;
      continue;
    }
    return pos;  // wait for the rest of the message
  }
  return pos;
}

void PostgresSession::OnGap(Direction dir, uint64_t bytes) {
  if (bytes == 0 || encrypted_) return;
  DirState& st = State(dir);
  if (st.skip != 0 && bytes != kUnknownGapBytes && bytes <= st.skip) {
    st.skip -= bytes;  // inside a body we skip anyway: the framing holds
    ++counters_.gaps_absorbed;
    return;
  }
  ++counters_.gaps_desynced;
  Desync(dir);
}

void PostgresSession::TakeRecords(uint64_t /*now_ns*/, bool closing, std::vector<L7Record>& out) {
  if (closing) {
    while (!pending_.empty()) {
      PendingOp op = std::move(pending_.front());
      pending_.pop_front();
      if (op.kind == OpKind::kQuery || (op.kind == OpKind::kExecute && !skip_to_sync_)) {
        ++counters_.unpaired;
        Emit(std::move(op), false, {}, -1, 0);
      }
    }
  }
  if (out.empty()) {
    out.swap(ready_);
  } else {
    std::move(ready_.begin(), ready_.end(), std::back_inserter(out));
  }
  ready_.clear();
}

void PostgresSession::ReleaseIdleMemory() {
  if (ready_.empty()) std::vector<L7Record>().swap(ready_);
  if (pending_.empty()) std::deque<PendingOp>().swap(pending_);
  if (!response_open_) response_ = L7Message{};
}

}  // namespace sonde::protocols::postgres
