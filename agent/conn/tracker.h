#pragma once
// ConnectionTracker: one entry per socket, fed by raw capture events. Each
// entry orders its two directions by TCP sequence (DataStream), infers the
// application protocol from the first bytes through the registry, feeds the
// protocol session and collects its records with connection context.
// Bounded: connections (count), bytes buffered per stream and in total; idle
// connections expire. Every drop increments a named counter.
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "agent/capture/event_source.h"
#include "agent/conn/conn_record.h"
#include "agent/conn/data_stream.h"

namespace sonde::conn {

struct TrackerOptions {
  uint64_t idle_timeout_ns = 300'000'000'000ull;  // 5 min without an event
  // A socket-state close (RST, end of the FIN handshake) is raised in softirq
  // context, possibly on another CPU while the owner's last read/write is
  // still on its way into the ring buffer: keep the connection this long
  // after it so those events still land on it. close() of the fd is final.
  uint64_t state_close_grace_ns = 250'000'000ull;
  size_t max_connections = 65536;
  size_t max_memory_bytes = 64u << 20;  // all streams' buffered bytes
  DataStream::Options stream;
  size_t max_infer_bytes = 4096;  // bytes to look at before giving up on inference
  uint32_t max_infer_calls = 8;   // calls to look at before giving up
};

struct TrackerCounters {
  uint64_t events = 0;
  uint64_t data_events = 0;
  uint64_t conn_events = 0;
  uint64_t malformed_events = 0;
  uint64_t connections_opened = 0;
  uint64_t connections_closed = 0;
  uint64_t connections_expired = 0;
  uint64_t connections_replaced = 0;   // fd/tuple reuse without a close seen
  uint64_t connections_rejected = 0;   // over max_connections
  uint64_t unknown_protocol = 0;       // connections no protocol claimed
  uint64_t memory_drops = 0;           // chunks/buffers dropped at the total bound
  uint64_t overflow_drops = 0;         // buffers dropped at the per-stream bound
  uint64_t gap_bytes = 0;
  uint64_t reordered_chunks = 0;
  uint64_t duplicate_bytes = 0;
  uint64_t records = 0;
  protocols::ProtocolCounters protocol;  // summed over closed and live sessions
};

class Connection;

class ConnectionTracker {
 public:
  explicit ConnectionTracker(TrackerOptions options = {});
  ~ConnectionTracker();

  // One raw ring-buffer record. Records produced are appended to `out`.
  void OnEvent(capture::RawEvent ev, std::vector<ConnRecord>& out);
  // Periodic work: reorder windows, stitcher timeouts, idle expiry.
  // `now_ns` is CLOCK_MONOTONIC (event time for recordings).
  void Tick(uint64_t now_ns, std::vector<ConnRecord>& out);
  // Flush and forget every connection (end of a recording, shutdown).
  void CloseAll(std::vector<ConnRecord>& out);

  size_t open_connections() const { return connections_.size(); }
  size_t buffered_bytes() const { return budget_.used; }
  // Live sums (walks the connections; meant for scrapes, not per event).
  TrackerCounters counters() const;
  uint64_t latest_event_ns() const { return latest_ns_; }
  // Sockets no protocol claimed since the last call (their connections are
  // forgotten): the capture source can stop copying their bytes. Cleared by
  // the caller.
  std::vector<uint64_t>& unclaimed_sockets() { return unclaimed_sockets_; }

 private:
  using ConnMap = std::unordered_map<uint64_t, std::unique_ptr<Connection>>;
  void OnData(const sonde_data_event& ev, std::vector<ConnRecord>& out);
  void OnConn(const sonde_conn_event& ev, std::vector<ConnRecord>& out);
  Connection* Find(uint64_t key);
  Connection* Create(uint64_t key, const sonde_event_header& hdr, const sonde_tuple& tuple,
                     int32_t fd, protocols::Role role, bool late_join);
  void Close(ConnMap::iterator it, std::vector<ConnRecord>& out);
  void Retire(const Connection& c);

  TrackerOptions options_;
  std::vector<uint64_t> unclaimed_sockets_;
  MemoryBudget budget_;
  ConnMap connections_;                            // by socket id (or pid+fd when unknown)
  std::unordered_map<uint64_t, uint64_t> by_fd_;   // (pid << 32 | fd) -> key
  TrackerCounters closed_;                         // counters of retired connections
  uint64_t latest_ns_ = 0;
  uint64_t last_sweep_ns_ = 0;
};

}  // namespace sonde::conn
