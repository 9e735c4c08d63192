#include "agent/conn/tracker.h"

#include <cstring>

#include "agent/conn/connection.h"

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

void AddProtocol(protocols::ProtocolCounters& to, const protocols::ProtocolCounters& from) {
  to.parse_errors += from.parse_errors;
  to.resyncs += from.resyncs;
  to.gaps_absorbed += from.gaps_absorbed;
  to.gaps_desynced += from.gaps_desynced;
  to.records += from.records;
  to.unpaired += from.unpaired;
  to.late_join += from.late_join;
}

void AddStream(TrackerCounters& to, const StreamCounters& from) {
  to.gap_bytes += from.gap_bytes;
  to.reordered_chunks += from.reordered;
  to.duplicate_bytes += from.duplicate_bytes;
  to.overflow_drops += from.overflow_drops;
}

}  // namespace

ConnectionTracker::ConnectionTracker(TrackerOptions options) : options_(options) {
  budget_.limit = options_.max_memory_bytes;
}

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
  ctx.comm.assign(hdr.comm, strnlen(hdr.comm, sizeof(hdr.comm)));
  ctx.tuple = tuple;
  ctx.role = role;
  ctx.sock_id = key & kFdKeyBit ? 0 : key;
  ctx.fd = fd;
  auto conn = std::make_unique<Connection>(std::move(ctx), late_join, options_, &budget_);
  Connection* raw = conn.get();
  connections_[key] = std::move(conn);
  if (fd >= 0) by_fd_[FdKey(hdr.pid, fd)] = key;
  ++closed_.connections_opened;
  return raw;
}

void ConnectionTracker::Retire(const Connection& c) {
  AddStream(closed_, c.egress().counters());
  AddStream(closed_, c.ingress().counters());
  if (const auto* pc = c.protocol_counters()) AddProtocol(closed_.protocol, *pc);
  if (c.gave_up()) ++closed_.unknown_protocol;
}

void ConnectionTracker::Close(ConnMap::iterator it, std::vector<ConnRecord>& out) {
  Connection& c = *it->second;
  c.Close();
  size_t before = out.size();
  c.TakeRecords(latest_ns_, /*closing=*/true, out);
  closed_.records += out.size() - before;
  Retire(c);
  const ConnContext& ctx = c.context();
  if (ctx.fd >= 0) {
    auto fd_it = by_fd_.find(FdKey(ctx.pid, ctx.fd));
    if (fd_it != by_fd_.end() && fd_it->second == it->first) by_fd_.erase(fd_it);
  }
  ++closed_.connections_closed;
  connections_.erase(it);
}

void ConnectionTracker::OnData(const sonde_data_event& ev, std::vector<ConnRecord>& out) {
  if (ev.direction != SONDE_DIR_EGRESS && ev.direction != SONDE_DIR_INGRESS) {
    ++closed_.malformed_events;
    return;
  }
  const auto& hdr = ev.hdr;
  latest_ns_ = std::max<uint64_t>(latest_ns_, hdr.ts_exit_ns);
  const uint64_t key = KeyOf(ev.sock_id, hdr.pid, ev.fd);
  if (ev.fd >= 0) {
    // The fd now names another socket: the old one closed unseen.
    auto fd_it = by_fd_.find(FdKey(hdr.pid, ev.fd));
    if (fd_it != by_fd_.end() && fd_it->second != key) {
      auto old = connections_.find(fd_it->second);
      if (old != connections_.end() && old->second->context().pid == hdr.pid) {
        ++closed_.connections_replaced;
        Close(old, out);
      } else {
        by_fd_.erase(fd_it);
      }
    }
  }
  Connection* conn = Find(key);
  // A UDP socket's remote end is per datagram (unconnected sockets), not a new socket.
  if (conn != nullptr && ev.tuple.l4_protocol != kIpProtoUdp && ev.tuple.sport != 0 &&
      conn->context().tuple.sport != 0 &&
      !SameTuple(conn->context().tuple, ev.tuple)) {
    // Same inode, different peer: a new socket generation.
    ++closed_.connections_replaced;
    Close(connections_.find(key), out);
    conn = nullptr;
  }
  const auto role = static_cast<Role>(ev.role <= SONDE_ROLE_SERVER ? ev.role : 0);
  if (conn == nullptr) {
    conn = Create(key, hdr, ev.tuple, ev.fd, role, /*late_join=*/role == Role::kUnknown);
    if (conn == nullptr) return;
  }
  ConnContext& ctx = conn->context();
  if (ctx.role == Role::kUnknown && role != Role::kUnknown) ctx.role = role;
  if (ctx.tuple.sport == 0 && ev.tuple.sport != 0) ctx.tuple = ev.tuple;
  if (ctx.fd < 0 && ev.fd >= 0) {
    ctx.fd = ev.fd;
    by_fd_[FdKey(hdr.pid, ev.fd)] = key;
  }

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
  size_t before = out.size();
  conn->TakeRecords(hdr.ts_exit_ns, /*closing=*/false, out);
  closed_.records += out.size() - before;
  if (conn->gave_up() && ev.sock_id != 0) {
    // Not a protocol we reconstruct (or TLS ciphertext): let the kernel stop
    // copying it and free its state now instead of at the idle timeout.
    unclaimed_sockets_.push_back(ev.sock_id);
    Close(connections_.find(key), out);
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
      ++closed_.connections_replaced;
      Close(it, out);
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
    it->second->MarkClosePending(hdr.ts_exit_ns != 0 ? hdr.ts_exit_ns : latest_ns_);
    return;
  }
  Close(it, out);
}

void ConnectionTracker::Tick(uint64_t now_ns, std::vector<ConnRecord>& out) {
  latest_ns_ = std::max(latest_ns_, now_ns);
  for (auto it = connections_.begin(); it != connections_.end();) {
    Connection& c = *it->second;
    if (c.last_activity_ns() + options_.idle_timeout_ns < now_ns) {
      ++closed_.connections_expired;
      auto next = std::next(it);
      Close(it, out);
      it = next;
      continue;
    }
    if (c.close_pending_since_ns() != 0 &&
        c.close_pending_since_ns() + options_.state_close_grace_ns < now_ns) {
      auto next = std::next(it);
      Close(it, out);
      it = next;
      continue;
    }
    c.FlushExpired(now_ns);
    size_t before = out.size();
    c.TakeRecords(now_ns, /*closing=*/false, out);
    closed_.records += out.size() - before;
    ++it;
  }
}

void ConnectionTracker::CloseAll(std::vector<ConnRecord>& out) {
  while (!connections_.empty()) Close(connections_.begin(), out);
}

TrackerCounters ConnectionTracker::counters() const {
  TrackerCounters c = closed_;
  for (const auto& [key, conn] : connections_) {
    AddStream(c, conn->egress().counters());
    AddStream(c, conn->ingress().counters());
    if (const auto* pc = conn->protocol_counters()) AddProtocol(c.protocol, *pc);
  }
  c.memory_drops = budget_.drops;
  return c;
}

}  // namespace sonde::conn
