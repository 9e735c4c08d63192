#pragma once
// ConnectionTracker: one entry per socket, fed by raw capture events. Each
// entry orders its two directions by TCP sequence (DataStream), infers the
// application protocol from the first bytes through the registry, feeds the
// protocol session and collects its records with connection context.
//
// Memory follows traffic, not connections: a connection that has been quiet
// for `quiet_after_ns` gives back its reuse buffers (an idle HTTP/1
// connection then costs ~1.25 KB) and leaves the active list. Records are
// taken as events arrive; the per-tick work covers only streams waiting for
// a hole to fill, and a sweep once a second visits every connection for the
// slow timers (protocol timeouts, idle expiry, existence checks).
//
// Nothing leaks: a connection is released when its fd is closed, when the
// kernel closes the socket (RST, FIN both ways, process exit), when its fd
// or inode turns out to name another socket, after the idle timeout, when
// the periodic check against the kernel (SocketProbe) finds it gone, when no
// protocol claims it, or when the memory ceiling sheds it -- each reason
// counted. Bounded: connections (count), bytes buffered per stream and in
// total, the process's resident memory (MemoryCeiling).
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

#include "agent/capture/event_source.h"
#include "agent/conn/conn_record.h"
#include "agent/conn/data_stream.h"
#include "agent/conn/memory_ceiling.h"
#include "agent/conn/thread_names.h"

namespace sonde::conn {

class SocketProbe;

// Why a tracked connection was let go (sonde_agent_connections_released_total).
enum class ReleaseReason : uint8_t {
  kClose = 0,      // close() of its fd
  kSocketClosed,   // the kernel closed the socket (RST, FIN both ways, process exit)
  kReplaced,       // its fd or inode now names another socket: closed unseen
  kIdleTimeout,    // no event for idle_timeout_ns
  kSocketGone,     // periodic check: the fd no longer holds the socket
  kProcessExited,  // periodic check: the process is gone
  kUnclaimed,      // no protocol claimed it
  kMemoryShed,     // released to get back under the memory ceiling
  kShutdown,       // end of a recording / agent stop
  kCount,
};
std::string_view ReleaseReasonName(ReleaseReason reason);
inline constexpr size_t kReleaseReasonCount = static_cast<size_t>(ReleaseReason::kCount);

struct TrackerOptions {
  uint64_t idle_timeout_ns = 300'000'000'000ull;  // 5 min without an event
  // A socket-state close (RST, end of the FIN handshake) is raised in softirq
  // context, possibly on another CPU while the owner's last read/write is
  // still on its way into the ring buffer: keep the connection this long
  // after it so those events still land on it. close() of the fd is final.
  uint64_t state_close_grace_ns = 250'000'000ull;
  // No bytes for this long: reuse buffers are released and the connection
  // leaves the active list.
  uint64_t quiet_after_ns = 1'000'000'000ull;
  // Every connection is visited this often (idle timeout, protocol timers,
  // existence checks, the memory ceiling).
  uint64_t sweep_interval_ns = 1'000'000'000ull;
  // Quiet connections are checked against the kernel (socket_probe) after
  // this long without an event, and again every this long; at most
  // max_probes_per_sweep checks per sweep.
  uint64_t probe_after_ns = 10'000'000'000ull;
  size_t max_probes_per_sweep = 4096;
  SocketProbe* socket_probe = nullptr;  // not owned; null: no existence checks (recordings, packets)
  // Where a connection whose first event carries no thread name looks it up
  // (ThreadNames); empty: only names seen in events (recordings, packets).
  std::string thread_names_proc_root;
  // Resident set size ceiling of the process (bytes, 0: none), checked every sweep.
  uint64_t memory_ceiling_bytes = 0;
  // As many sockets as the kernel keeps state for (sock_states): memory is
  // bounded by the memory ceiling, not by refusing connections.
  size_t max_connections = 262144;
  size_t max_memory_bytes = 64u << 20;  // all streams' buffered bytes
  DataStream::Options stream;
  size_t max_infer_bytes = 4096;  // bytes to look at before giving up on inference
  // A socket given up (no protocol) is ignored by the kernel from then on,
  // but its events already in the ring buffers still arrive: for this long
  // they are dropped (counted) instead of tracking the socket anew -- such a
  // connection got no close event (the kernel reports none for ignored
  // sockets) and lingered until the existence checks.
  uint64_t given_up_memory_ns = 2'000'000'000ull;
  uint32_t max_infer_calls = 8;   // calls to look at before giving up
};

struct TrackerCounters {
  uint64_t events = 0;
  uint64_t data_events = 0;
  uint64_t conn_events = 0;
  uint64_t malformed_events = 0;
  uint64_t connections_opened = 0;
  uint64_t connections_closed = 0;     // released, any reason
  uint64_t connections_expired = 0;    // = released[kIdleTimeout]
  uint64_t connections_replaced = 0;   // = released[kReplaced]
  uint64_t connections_rejected = 0;   // over max_connections
  uint64_t released[kReleaseReasonCount] = {};
  uint64_t unknown_protocol = 0;       // connections no protocol claimed
  uint64_t given_up_late_events = 0;   // events of a socket given up, still in flight: dropped
  uint64_t memory_drops = 0;           // chunks/buffers dropped at the total bound
  uint64_t overflow_drops = 0;         // buffers dropped at the per-stream bound
  uint64_t memory_ceiling_sheds = 0;   // checks that found the process above the ceiling
  uint64_t socket_probes = 0;          // existence checks made
  uint64_t gap_bytes = 0;
  uint64_t reordered_chunks = 0;
  uint64_t duplicate_bytes = 0;
  uint64_t records = 0;
  protocols::ProtocolCounters protocol;  // summed over closed and live sessions
};

class Connection;
struct ConnShared;

class ConnectionTracker {
 public:
  explicit ConnectionTracker(TrackerOptions options = {});
  ~ConnectionTracker();

  // One raw ring-buffer record. Records produced are appended to `out`.
  void OnEvent(capture::RawEvent ev, std::vector<ConnRecord>& out);
  // Periodic work: reorder windows and close grace every call; every
  // sweep_interval_ns the sweep (protocol timers, quiet connections, idle
  // expiry, existence checks, memory ceiling). `now_ns` is CLOCK_MONOTONIC (event
  // time for recordings).
  void Tick(uint64_t now_ns, std::vector<ConnRecord>& out);
  // Flush and forget every connection (end of a recording, shutdown).
  void CloseAll(std::vector<ConnRecord>& out);

  size_t open_connections() const { return connections_.size(); }
  size_t active_connections() const { return active_.size(); }
  size_t buffered_bytes() const;
  // Sessions parked between messages (SessionPool), for tests and benches.
  size_t parked_sessions() const;
  ShedLevel shed_level() const { return shed_level_; }
  // Live sums (walks the connections; meant for scrapes, not per event).
  TrackerCounters counters() const;
  uint64_t latest_event_ns() const { return latest_ns_; }
  // Sockets no protocol claimed since the last call (their connections are
  // forgotten): the capture source can stop copying their bytes. Cleared by
  // the caller.
  std::vector<uint64_t>& unclaimed_sockets() { return unclaimed_sockets_; }

 private:
  // Open addressing: one probe into a flat array per event, no node per
  // entry (~20-35 bytes a connection instead of ~60).
  using ConnMap = absl::flat_hash_map<uint64_t, std::unique_ptr<Connection>>;
  void OnData(const sonde_data_event& ev, std::vector<ConnRecord>& out);
  void OnConn(const sonde_conn_event& ev, std::vector<ConnRecord>& out);
  Connection* Find(uint64_t key);
  Connection* Create(uint64_t key, const sonde_event_header& hdr, const sonde_tuple& tuple,
                     int32_t fd, protocols::Role role, bool late_join);
  void Release(ConnMap::iterator it, ReleaseReason reason, std::vector<ConnRecord>& out);
  void Retire(const Connection& c);
  void MarkActive(uint64_t key, Connection& c);
  void TakeRecords(Connection& c, uint64_t now_ns, std::vector<ConnRecord>& out);
  void Sweep(uint64_t now_ns, std::vector<ConnRecord>& out);
  void ApplyShedLevel(ShedLevel level, uint64_t now_ns, std::vector<ConnRecord>& out);

  TrackerOptions options_;
  ThreadNames thread_names_;                       // for connections first seen without a name
  std::vector<uint64_t> unclaimed_sockets_;
  std::unique_ptr<ConnShared> shared_;             // stream budget, session pool, retired counters
  ConnMap connections_;                            // by socket id (or pid+fd when unknown)
  absl::flat_hash_map<uint64_t, uint64_t> by_fd_;  // (pid << 32 | fd) -> key
  absl::flat_hash_map<uint64_t, uint64_t> given_up_;  // socket id -> when it was given up
  std::vector<uint64_t> active_;                   // keys with events since they were last quiet
  std::vector<uint64_t> close_pending_;            // keys waiting out state_close_grace_ns
  std::vector<uint64_t> reordering_;               // keys with chunks waiting for a hole (ticked)
  std::vector<protocols::L7Record> scratch_;       // session output, shared by all connections
  TrackerCounters closed_;                         // counters of retired connections
  MemoryCeiling ceiling_;
  ShedLevel shed_level_ = ShedLevel::kNone;
  uint64_t latest_ns_ = 0;
  uint64_t last_sweep_ns_ = 0;
};

}  // namespace sonde::conn
