#include "agent/conn/tracker.h"

#include <algorithm>
#include <cstring>

#include "agent/conn/connection.h"
#include "agent/conn/socket_probe.h"

namespace sonde::conn {
namespace {

using protocols::Direction;
using protocols::Role;

constexpr uint64_t kFdKeyBit = 1ull << 63;
constexpr uint8_t kIpProtoUdp = 17;

// Sockets are keyed by their inode (unique while the socket lives); without
// one, by pid and fd.
uint64_t KeyOf(uint64_t sock_id, uint32_t pid, int32_t fd) {
  if (sock_id != 0) return sock_id;
  return kFdKeyBit | (static_cast<uint64_t>(pid) << 32) | static_cast<uint32_t>(fd);
}

uint64_t FdKey(uint32_t pid, int32_t fd) {
  return (static_cast<uint64_t>(pid) << 32) | static_cast<uint32_t>(fd);
}

bool SameTuple(const sonde_tuple& a, const sonde_tuple& b) {
  return a.sport == b.sport && a.dport == b.dport && a.family == b.family &&
         std::memcmp(a.daddr, b.daddr, sizeof(a.daddr)) == 0;
}

void AddStream(TrackerCounters& to, const StreamCounters& from) {
  to.gap_bytes += from.gap_bytes;
  to.reordered_chunks += from.reordered;
  to.duplicate_bytes += from.duplicate_bytes;
  to.overflow_drops += from.overflow_drops;
}

}  // namespace

std::string_view ReleaseReasonName(ReleaseReason reason) {
  switch (reason) {
    case ReleaseReason::kClose: return "close";
    case ReleaseReason::kSocketClosed: return "socket_closed";
    case ReleaseReason::kReplaced: return "replaced";
    case ReleaseReason::kIdleTimeout: return "idle_timeout";
    case ReleaseReason::kSocketGone: return "socket_gone";
    case ReleaseReason::kProcessExited: return "process_exited";
    case ReleaseReason::kUnclaimed: return "unclaimed";
    case ReleaseReason::kMemoryShed: return "memory_ceiling";
    case ReleaseReason::kShutdown: return "shutdown";
    case ReleaseReason::kCount: break;
  }
  return "unknown";
}

ConnectionTracker::ConnectionTracker(TrackerOptions options)
    : options_(options),
      thread_names_(options_.thread_names_proc_root),
      shared_(std::make_unique<ConnShared>(options_)), ceiling_(options.memory_ceiling_bytes) {}

ConnectionTracker::~ConnectionTracker() = default;

void ConnectionTracker::OnEvent(capture::RawEvent ev, std::vector<ConnRecord>& out) {
  ++closed_.events;
  if (const sonde_data_event* d = capture::AsDataEvent(ev)) {
    ++closed_.data_events;
    OnData(*d, out);
  } else if (const sonde_conn_event* c = capture::AsConnEvent(ev)) {
    ++closed_.conn_events;
    OnConn(*c, out);
  } else {
    ++closed_.malformed_events;
  }
}

Connection* ConnectionTracker::Find(uint64_t key) {
  auto it = connections_.find(key);
  return it == connections_.end() ? nullptr : it->second.get();
}

Connection* ConnectionTracker::Create(uint64_t key, const sonde_event_header& hdr,
                                      const sonde_tuple& tuple, int32_t fd, Role role,
                                      bool late_join) {
  if (connections_.size() >= options_.max_connections) {
    ++closed_.connections_rejected;
    return nullptr;
  }
  ConnContext ctx;
  ctx.pid = hdr.pid;
  ctx.tid = hdr.tid;
  if (hdr.comm[0] != '\0') {
    ctx.comm.assign(hdr.comm, strnlen(hdr.comm, sizeof(hdr.comm)));
    thread_names_.Learn(hdr.tid, hdr.comm, sizeof(hdr.comm));
  } else {
    ctx.comm = thread_names_.Name(hdr.pid, hdr.tid);  // data events name a socket once
  }
  ctx.tuple = tuple;
  ctx.role = role;
  ctx.sock_id = key & kFdKeyBit ? 0 : key;
  ctx.fd = fd;
  auto conn = std::make_unique<Connection>(std::move(ctx), late_join, shared_.get());
  Connection* raw = conn.get();
  raw->Touch(hdr.ts_exit_ns);
  connections_[key] = std::move(conn);
  if (fd >= 0) by_fd_[FdKey(hdr.pid, fd)] = key;
  ++closed_.connections_opened;
  return raw;
}

void ConnectionTracker::Retire(const Connection& c) {
  if (const auto* pc = c.protocol_counters()) AddProtocolCounters(closed_.protocol, *pc);
  if (c.gave_up()) ++closed_.unknown_protocol;
}

void ConnectionTracker::Release(ConnMap::iterator it, ReleaseReason reason, std::vector<ConnRecord>& out) {
  Connection& c = *it->second;
  c.Close();
  size_t before = out.size();
  c.TakeRecords(latest_ns_, /*closing=*/true, scratch_, out);
  closed_.records += out.size() - before;
  Retire(c);
  const ConnContext& ctx = c.context();
  if (ctx.fd >= 0) {
    auto fd_it = by_fd_.find(FdKey(ctx.pid, ctx.fd));
    if (fd_it != by_fd_.end() && fd_it->second == it->first) by_fd_.erase(fd_it);
  }
  ++closed_.connections_closed;
  ++closed_.released[static_cast<size_t>(reason)];
  if (reason == ReleaseReason::kIdleTimeout) ++closed_.connections_expired;
  if (reason == ReleaseReason::kReplaced) ++closed_.connections_replaced;
  connections_.erase(it);
}

void ConnectionTracker::MarkActive(uint64_t key, Connection& c) {
  if (c.active) return;
  c.active = true;
  active_.push_back(key);
}

void ConnectionTracker::TakeRecords(Connection& c, uint64_t now_ns, std::vector<ConnRecord>& out) {
  size_t before = out.size();
  c.TakeRecords(now_ns, /*closing=*/false, scratch_, out);
  closed_.records += out.size() - before;
}

void ConnectionTracker::OnData(const sonde_data_event& ev, std::vector<ConnRecord>& out) {
  if (ev.direction != SONDE_DIR_EGRESS && ev.direction != SONDE_DIR_INGRESS) {
    ++closed_.malformed_events;
    return;
  }
  const auto& hdr = ev.hdr;
  latest_ns_ = std::max<uint64_t>(latest_ns_, hdr.ts_exit_ns);
  const uint64_t key = KeyOf(ev.sock_id, hdr.pid, ev.fd);
  Connection* conn = Find(key);
  // The usual event: a known socket on the fd it was seen on. Then the fd
  // cannot name another socket (that socket's events would carry its own
  // key), so the fd map is not consulted: one hash lookup per event, not two.
  const bool known_fd = conn != nullptr && ev.fd >= 0 && conn->context().fd == ev.fd &&
                        conn->context().pid == hdr.pid;
  if (ev.fd >= 0 && !known_fd) {
    // The fd now names another socket: the old one closed unseen.
    auto fd_it = by_fd_.find(FdKey(hdr.pid, ev.fd));
    if (fd_it != by_fd_.end() && fd_it->second != key) {
      auto old = connections_.find(fd_it->second);
      if (old != connections_.end() && old->second->context().pid == hdr.pid) {
        Release(old, ReleaseReason::kReplaced, out);
      } else {
        by_fd_.erase(fd_it);
      }
    }
  }
  // A UDP socket's remote end is per datagram (unconnected sockets), not a new socket.
  if (conn != nullptr && ev.tuple.l4_protocol != kIpProtoUdp && ev.tuple.sport != 0 &&
      conn->context().tuple.sport != 0 &&
      !SameTuple(conn->context().tuple, ev.tuple)) {
    // Same inode, different peer: a new socket generation.
    Release(connections_.find(key), ReleaseReason::kReplaced, out);
    conn = nullptr;
  }
  const auto role = static_cast<Role>(ev.role <= SONDE_ROLE_SERVER ? ev.role : 0);
  if (conn == nullptr) {
    if (!given_up_.empty() && ev.sock_id != 0) {
      if (auto g = given_up_.find(ev.sock_id); g != given_up_.end()) {
        if (!(ev.flags & SONDE_DATA_TLS)) {
          ++closed_.given_up_late_events;
          return;
        }
        given_up_.erase(g);  // TLS plaintext: the uprobes took over the ciphertext given up
      }
    }
    conn = Create(key, hdr, ev.tuple, ev.fd, role, /*late_join=*/role == Role::kUnknown);
    if (conn == nullptr) return;
  }
  ConnContext& ctx = conn->context();
  if (ctx.role == Role::kUnknown && role != Role::kUnknown) ctx.role = role;
  if (ctx.tuple.sport == 0 && ev.tuple.sport != 0) ctx.tuple = ev.tuple;
  if (ev.flags & SONDE_DATA_TLS) ctx.tls = true;  // url.scheme https
  if (ctx.fd < 0 && ev.fd >= 0) {
    ctx.fd = ev.fd;
    by_fd_[FdKey(hdr.pid, ev.fd)] = key;
  }
  MarkActive(key, *conn);

  DataChunk chunk;
  chunk.ts_enter_ns = hdr.ts_enter_ns;
  chunk.ts_exit_ns = hdr.ts_exit_ns;
  chunk.thread_id = hdr.tid;
  chunk.bytes = ev.bytes;
  if (ev.tuple.l4_protocol == kIpProtoUdp && ev.tuple.dport != 0) {
    chunk.peer.family = ev.tuple.family;
    chunk.peer.port = ev.tuple.dport;
    std::memcpy(chunk.peer.addr.data(), ev.tuple.daddr, sizeof(ev.tuple.daddr));
  }
  if (ev.flags & SONDE_DATA_SEQ_VALID) chunk.tcp_seq = ev.tcp_seq;
  if (!(ev.flags & SONDE_DATA_NO_PAYLOAD)) {
    chunk.payload = std::string_view(reinterpret_cast<const char*>(ev.payload),
                                     std::min<uint64_t>(ev.payload_len, ev.bytes));
  }
  const auto dir = ev.direction == SONDE_DIR_EGRESS ? Direction::kEgress : Direction::kIngress;
  conn->AddData(dir, chunk);
  TakeRecords(*conn, hdr.ts_exit_ns, out);
  if (!conn->reorder_listed && conn->has_waiting()) {
    conn->reorder_listed = true;
    reordering_.push_back(key);
  }
  if (conn->gave_up() && ev.sock_id != 0) {
    // Not a protocol we reconstruct (or TLS ciphertext): let the kernel stop
    // copying it and free its state now instead of at the idle timeout.
    unclaimed_sockets_.push_back(ev.sock_id);
    if (given_up_.size() >= options_.max_connections) given_up_.clear();  // bounded; at worst tracked anew
    given_up_[ev.sock_id] = hdr.ts_exit_ns;
    Release(connections_.find(key), ReleaseReason::kUnclaimed, out);
  }
}

void ConnectionTracker::OnConn(const sonde_conn_event& ev, std::vector<ConnRecord>& out) {
  const auto& hdr = ev.hdr;
  latest_ns_ = std::max<uint64_t>(latest_ns_, hdr.ts_exit_ns);
  uint64_t key = KeyOf(ev.sock_id, hdr.pid, ev.fd);
  if (hdr.type == SONDE_EVENT_CONN_OPEN) {
    if (ev.syscall != SONDE_SYS_STATE_CHANGE && ev.retval < 0 && ev.retval != -115 /*EINPROGRESS*/) {
      return;  // failed connect/accept: no connection
    }
    auto it = connections_.find(key);
    if (it != connections_.end()) {
      if (it->second->context().tuple.sport == 0 || SameTuple(it->second->context().tuple, ev.tuple)) {
        ConnContext& ctx = it->second->context();
        if (ctx.role == Role::kUnknown) ctx.role = static_cast<Role>(ev.role <= 2 ? ev.role : 0);
        if (ctx.tuple.sport == 0) ctx.tuple = ev.tuple;
        return;
      }
      Release(it, ReleaseReason::kReplaced, out);
    }
    if (ev.fd < 0) return;  // state changes alone do not start tracking
    Create(key, hdr, ev.tuple, ev.fd, static_cast<Role>(ev.role <= 2 ? ev.role : 0),
           /*late_join=*/false);
    return;
  }
  // Close: by fd (close()) or by socket (state change from any context).
  auto it = connections_.find(key);
  if (it == connections_.end() && ev.fd >= 0) {
    auto fd_it = by_fd_.find(FdKey(hdr.pid, ev.fd));
    if (fd_it != by_fd_.end()) it = connections_.find(fd_it->second);
  }
  if (it == connections_.end()) return;
  if (ev.syscall == SONDE_SYS_STATE_CHANGE) {
    Connection& c = *it->second;
    c.MarkClosePending(hdr.ts_exit_ns != 0 ? hdr.ts_exit_ns : latest_ns_);
    if (!c.close_listed) {
      c.close_listed = true;
      close_pending_.push_back(it->first);
    }
    return;
  }
  Release(it, ReleaseReason::kClose, out);
}

void ConnectionTracker::Tick(uint64_t now_ns, std::vector<ConnRecord>& out) {
  latest_ns_ = std::max(latest_ns_, now_ns);
  // Kernel-closed sockets whose grace has passed.
  size_t keep = 0;
  for (uint64_t key : close_pending_) {
    auto it = connections_.find(key);
    if (it == connections_.end() || it->second->close_pending_since_ns() == 0) continue;
    if (it->second->close_pending_since_ns() + options_.state_close_grace_ns < now_ns) {
      Release(it, ReleaseReason::kSocketClosed, out);
      continue;
    }
    close_pending_[keep++] = key;
  }
  close_pending_.resize(keep);

  // Streams with chunks waiting for a hole to fill: their reorder window.
  // Records are otherwise taken as events arrive, so nothing else needs a
  // visit every tick.
  keep = 0;
  for (uint64_t key : reordering_) {
    auto it = connections_.find(key);
    if (it == connections_.end() || !it->second->reorder_listed) continue;
    Connection& c = *it->second;
    c.FlushExpired(now_ns);
    TakeRecords(c, now_ns, out);
    if (!c.has_waiting()) {
      c.reorder_listed = false;
      continue;
    }
    // A key listed twice (released and re-created in between) is kept once.
    c.reorder_listed = false;
    reordering_[keep++] = key;
  }
  reordering_.resize(keep);
  for (uint64_t key : reordering_) connections_.find(key)->second->reorder_listed = true;

  if (last_sweep_ns_ == 0 || now_ns >= last_sweep_ns_ + options_.sweep_interval_ns) {
    Sweep(now_ns, out);
    last_sweep_ns_ = now_ns;
  }
}

void ConnectionTracker::Sweep(uint64_t now_ns, std::vector<ConnRecord>& out) {
  absl::erase_if(given_up_, [&](const auto& kv) { return kv.second + options_.given_up_memory_ns < now_ns; });
  // Connections gone quiet give back their buffers and leave the active list.
  size_t keep = 0;
  for (uint64_t key : active_) {
    auto it = connections_.find(key);
    if (it == connections_.end() || !it->second->active) continue;
    Connection& c = *it->second;
    c.active = false;
    if (c.last_activity_ns() + options_.quiet_after_ns < now_ns) {
      c.ReleaseIdleMemory();
      continue;
    }
    active_[keep++] = key;  // a key listed twice is kept once (`active` is re-set below)
  }
  active_.resize(keep);
  for (uint64_t key : active_) connections_.find(key)->second->active = true;

  shared_->sessions.Trim();
  if (options_.memory_ceiling_bytes != 0) ApplyShedLevel(ceiling_.Check(), now_ns, out);
  size_t probes = 0;
  for (auto it = connections_.begin(); it != connections_.end();) {
    auto next = std::next(it);
    Connection& c = *it->second;
    if (c.last_activity_ns() + options_.idle_timeout_ns < now_ns) {
      Release(it, ReleaseReason::kIdleTimeout, out);
      it = next;
      continue;
    }
    // Protocol timers (requests never answered, stream timeouts).
    TakeRecords(c, now_ns, out);
    if (!c.active) {
      c.ReleaseIdleMemory();
      const uint64_t since = std::max(c.last_activity_ns(), c.checked_ns);
      if (options_.socket_probe != nullptr && probes < options_.max_probes_per_sweep &&
          since + options_.probe_after_ns < now_ns) {
        ++probes;
        c.checked_ns = now_ns;
        const ConnContext& ctx = c.context();
        switch (options_.socket_probe->Check(ctx.pid, ctx.fd, ctx.sock_id)) {
          case SocketLiveness::kGone:
            Release(it, ReleaseReason::kSocketGone, out);
            break;
          case SocketLiveness::kProcessGone:
            Release(it, ReleaseReason::kProcessExited, out);
            break;
          case SocketLiveness::kAlive:
          case SocketLiveness::kUnknown:
            break;
        }
      }
    }
    it = next;
  }
  closed_.socket_probes += probes;
}

void ConnectionTracker::ApplyShedLevel(ShedLevel level, uint64_t now_ns, std::vector<ConnRecord>& out) {
  if (level == ShedLevel::kNone) {
    shared_->streams.limit = options_.max_memory_bytes;
    shed_level_ = level;
    return;
  }
  ++closed_.memory_ceiling_sheds;
  // Least valuable first: connections with nothing in flight.
  for (auto it = connections_.begin(); it != connections_.end();) {
    auto next = std::next(it);
    if (!it->second->active && it->second->last_activity_ns() + options_.quiet_after_ns < now_ns) {
      Release(it, ReleaseReason::kMemoryShed, out);
    }
    it = next;
  }
  if (level == ShedLevel::kPayloadBuffering) {
    // Bytes are no longer kept across calls: a message that does not fit one
    // call becomes a counted gap, one that does still parses (RED counts it).
    shared_->streams.limit = 0;
  }
  shared_->sessions.Clear();
  shed_level_ = level;
  ReturnFreedMemory();
}

void ConnectionTracker::CloseAll(std::vector<ConnRecord>& out) {
  while (!connections_.empty()) Release(connections_.begin(), ReleaseReason::kShutdown, out);
  active_.clear();
  reordering_.clear();
  close_pending_.clear();
  shared_->sessions.Clear();
}

size_t ConnectionTracker::buffered_bytes() const { return shared_->streams.used; }

size_t ConnectionTracker::parked_sessions() const { return shared_->sessions.parked(); }

TrackerCounters ConnectionTracker::counters() const {
  TrackerCounters c = closed_;
  AddStream(c, shared_->streams.counters);
  AddProtocolCounters(c.protocol, shared_->retired);
  for (const auto& [key, conn] : connections_) {
    if (const auto* pc = conn->protocol_counters()) AddProtocolCounters(c.protocol, *pc);
  }
  c.memory_drops = shared_->streams.drops;
  return c;
}

}  // namespace sonde::conn
