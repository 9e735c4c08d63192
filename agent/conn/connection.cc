#include "agent/conn/connection.h"

#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "agent/conn/frozen_session.h"
#include "agent/conn/tracker.h"
#include "agent/protocols/registry.h"

namespace sonde::conn {

void AddProtocolCounters(protocols::ProtocolCounters& to, const protocols::ProtocolCounters& from) {
  to.parse_errors += from.parse_errors;
  to.resyncs += from.resyncs;
  to.gaps_absorbed += from.gaps_absorbed;
  to.gaps_desynced += from.gaps_desynced;
  to.records += from.records;
  to.unpaired += from.unpaired;
  to.late_join += from.late_join;
}

using protocols::Direction;
using protocols::InferResult;
using protocols::Role;

ConnShared::ConnShared(const TrackerOptions& o) : options(o) {
  streams.options = o.stream;
  streams.limit = o.max_memory_bytes;
}

Connection::Connection(ConnContext ctx, bool late_join, ConnShared* shared)
    : ctx_(std::move(ctx)),
      late_join_(late_join),
      shared_(shared),
      egress_(Direction::kEgress, &shared->streams),
      ingress_(Direction::kIngress, &shared->streams) {}

Connection::~Connection() = default;

void Connection::AddData(Direction dir, const DataChunk& chunk) {
  last_activity_ns_ = std::max(last_activity_ns_, chunk.ts_exit_ns);
  (dir == Direction::kEgress ? egress_ : ingress_).Add(chunk, *this);
}

void Connection::FlushExpired(uint64_t now_ns) {
  egress_.FlushExpired(now_ns, *this);
  ingress_.FlushExpired(now_ns, *this);
}

void Connection::Close() {
  egress_.Close(*this);
  ingress_.Close(*this);
}

const protocols::ProtocolDefinition* Connection::Definition() const {
  for (const auto& def : protocols::AllProtocols()) {
    if (def.protocol == protocol_) return &def;
  }
  return nullptr;
}

size_t Connection::OnBytes(Direction dir, const protocols::StreamView& view) {
  if (frozen_) {
    if (view.bytes.empty()) return 0;  // closing with nothing new: stays as it is
    ThawSession();
  }
  if (session_) return session_->OnBytes(dir, view);
  if (protocol_ != protocols::L7Protocol::kUnknown && !gave_up_ && !view.bytes.empty()) {
    // The protocol is known and its session was dropped while idle.
    for (const auto& def : protocols::AllProtocols()) {
      if (def.protocol != protocol_) continue;
      session_ = shared_->sessions.Take(def, ctx_.role, late_join_);
      return session_->OnBytes(dir, view);
    }
  }
  if (gave_up_) return view.bytes.size();
  if (view.bytes.empty()) return 0;
  ++infer_calls_;
  bool maybe = false;
  // Stream protocols are never tried on datagrams, nor DNS-over-UDP on streams.
  const uint8_t transport =
      ctx_.tuple.l4_protocol == IPPROTO_UDP ? protocols::kTransportUdp : protocols::kTransportTcp;
  for (const auto& def : protocols::AllProtocols()) {
    if (!(def.transports & transport)) continue;
    InferResult r = def.infer(view.bytes, dir, ctx_.role);
    if (r == InferResult::kYes) {
      protocol_ = def.protocol;
      if (ctx_.role == Role::kUnknown && def.infer_role != nullptr) {
        ctx_.role = def.infer_role(view.bytes, dir);
      }
      session_ = shared_->sessions.Take(def, ctx_.role, late_join_);
      return session_->OnBytes(dir, view);
    }
    maybe = maybe || r == InferResult::kMaybeNeedMore;
  }
  if (maybe && view.bytes.size() < shared_->options.max_infer_bytes) return 0;
  // Mid-stream bytes of a late-joined connection may not look like anything:
  // try the next few calls' first bytes before giving up.
  late_join_ = true;
  if (infer_calls_ >= shared_->options.max_infer_calls) gave_up_ = true;
  return view.bytes.size();
}

void Connection::OnGap(Direction dir, uint64_t bytes) {
  if (frozen_) ThawSession();
  if (session_) {
    session_->OnGap(dir, bytes);
  } else {
    late_join_ = true;  // the connection's start is gone
  }
}

void Connection::TakeRecords(uint64_t now_ns, bool closing, std::vector<protocols::L7Record>& scratch,
                             std::vector<ConnRecord>& out) {
  if (!session_ || frozen_) return;
  scratch.clear();
  session_->TakeRecords(now_ns, closing, scratch);
  for (auto& r : scratch) {
    ConnRecord& cr = out.emplace_back(std::move(r), ctx_);
    cr.conn.tid = cr.record.request.thread_id != 0 ? cr.record.request.thread_id : cr.record.response.thread_id;
    if (cr.record.peer.family != 0) {
      // A datagram protocol's exchange: its own peer (an unconnected UDP socket has many).
      cr.conn.tuple.family = cr.record.peer.family;
      cr.conn.tuple.dport = cr.record.peer.port;
      std::memcpy(cr.conn.tuple.daddr, cr.record.peer.addr.data(), sizeof(cr.conn.tuple.daddr));
    }
  }
  const bool took = !scratch.empty();
  scratch.clear();
  // Sessions swap their record buffer with this one: a batch-sized buffer
  // kept here would end up parked in the next session (one per busy
  // connection). Keep room for the usual single record only.
  if (scratch.capacity() > 1) std::vector<protocols::L7Record>().swap(scratch);
  // An exchange just completed: between messages, the session goes back to
  // the pool until the next request (keep-alive connections then hold no
  // session while idle, however short the pause).
  if (took && !closing) RetireSession(/*drop=*/false);
}

bool Connection::RetireSession(bool drop) {
  if (frozen_) return false;
  Role role = Role::kUnknown;
  if (egress_.buffered_bytes() != 0 || ingress_.buffered_bytes() != 0 || !session_->Quiescent(&role)) {
    return false;
  }
  // Counters first: Park renews the session (zeroes them).
  protocols::ProtocolCounters counters = session_->counters();
  if (!shared_->sessions.Park(protocol_, session_)) {
    if (!drop) return false;  // kept until the connection goes quiet
    session_.reset();
  }
  AddProtocolCounters(shared_->retired, counters);
  if (ctx_.role == Role::kUnknown) ctx_.role = role;
  // The next request starts a fresh session in sync.
  late_join_ = false;
  return true;
}

void Connection::ReleaseIdleMemory() {
  egress_.ReleaseIdleMemory();
  ingress_.ReleaseIdleMemory();
  if (!session_ || frozen_) return;
  // An idle keep-alive connection then costs its Connection and map
  // entries only.
  if (RetireSession(/*drop=*/true)) return;
  if (egress_.buffered_bytes() == 0 && ingress_.buffered_bytes() == 0 && FreezeSession()) return;
  session_->ReleaseIdleMemory();
}

bool Connection::FreezeSession() {
  const protocols::ProtocolDefinition* def = Definition();
  if (def == nullptr || def->thaw == nullptr) return false;
  const std::string frozen = session_->Freeze();
  if (frozen.empty()) return false;
  AddProtocolCounters(shared_->retired, session_->counters());
  session_ = std::make_unique<FrozenSession>(frozen);
  frozen_ = true;
  return true;
}

void Connection::ThawSession() {
  const protocols::ProtocolDefinition* def = Definition();
  const std::string_view bytes = static_cast<const FrozenSession&>(*session_).bytes();
  std::unique_ptr<protocols::ProtocolSession> thawed = def != nullptr ? def->thaw(bytes) : nullptr;
  // Bytes that do not thaw (cannot happen short of a bug): a late-joined
  // session resyncs on what comes next rather than trusting them.
  if (!thawed && def != nullptr) thawed = def->make_session(ctx_.role, /*late_join=*/true);
  session_ = std::move(thawed);
  frozen_ = false;
}

}  // namespace sonde::conn
