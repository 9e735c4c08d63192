#pragma once
// Turns periodic snapshots of the kernel's cumulative per-socket counters into
// per-pair deltas (1 s windows by default) and cumulative per-pair totals for
// Prometheus. Pure user space: tests feed it hand-made snapshots.
#include <bitset>
#include <cstdint>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "agent/tcp/tcp_types.h"

namespace sonde::tcp {

struct AggregatorOptions {
  size_t max_pairs = 4096;  // cumulative series kept; idle ones are evicted first
  // Off (default): where the client is the remote end (the local socket
  // accepted, or a late-joined socket taken as the server), its address is
  // replaced by its class (address_class.h) in windows and series, so an
  // internet-facing server has a bounded number of pairs. On: one pair per
  // client address (--tcp-per-client-ip).
  bool per_client_ip = false;
};

struct AggregatorCounters {
  uint64_t snapshots = 0;
  uint64_t sockets_seen = 0;
  uint64_t pairs_evicted = 0;
};

class TcpAggregator {
 public:
  explicit TcpAggregator(AggregatorOptions options = {}) : options_(options) {}

  // One read of the kernel maps, taken at `now_ns` (CLOCK_MONOTONIC). Sockets
  // absent from `sockets` are forgotten (closed and deleted, or evicted).
  TcpWindow Update(std::span<const SocketSnapshot> sockets, std::span<const PairSnapshot> pairs,
                   uint64_t now_ns);

  // Appends the cumulative metrics in Prometheus text format (0.0.4).
  void AppendPrometheus(std::string& out) const;

  // Cumulative totals of one pair (tests, JSON output).
  bool Totals(const PairKey& key, PairCounters* out) const;
  std::map<PairKey, PairCounters> AllTotals() const;
  AggregatorCounters counters() const;

 private:
  struct Series {
    PairCounters totals;
    uint32_t active = 0;
    double srtt_mean_us = 0;
    uint64_t last_update_ns = 0;
  };
  void EvictIfNeeded();
  // The key counters are aggregated under: the client's address class when
  // the client is the remote end, unless per_client_ip.
  PairKey AggregationKey(PairKey key, bool client_is_remote) const;

  AggregatorOptions options_;
  mutable std::mutex mu_;
  // Ports seen serving (the local port of a server-side socket, the remote
  // port of a client-side one): a socket of unknown side -- joined late, or
  // its kernel entry evicted and re-created under more sockets than
  // tcp_max_sockets -- is keyed by them rather than by its ephemeral port.
  std::bitset<65536> server_ports_;
  // What the next delta of a socket needs from its previous read (not the
  // whole 184-byte entry: tens of thousands of sockets), updated in place.
  struct SocketPrev {
    uint64_t bytes_acked = 0;
    uint64_t bytes_received = 0;
    uint64_t last_sample_ns = 0;
    uint32_t flags = 0;
    uint32_t retrans_segs = 0;
    uint32_t syn_retrans = 0;
    uint32_t zero_window_events = 0;
    uint32_t resets_sent = 0;
    uint32_t resets_received = 0;
    uint64_t update = 0;  // the Update that read it last
    // Its series key, interned (keys_), while key_epoch matches and the
    // key's inputs that can change (pid and comm arrive together) have not:
    // no strings built and compared per socket per window.
    uint32_t key_slot = 0;
    uint32_t key_epoch = 0;
    uint32_t pid = 0;
    uint8_t role = 0;
  };
  // The interned slot of a key, added when new.
  uint32_t SlotOf(PairKey key);
  static PairCounters SocketDelta(const sonde_tcp_sock_stats& cur, const SocketPrev& prev, bool local_is_client);
  absl::flat_hash_map<uint64_t, SocketPrev> previous_;  // by cookie
  std::vector<PairKey> keys_;                  // interned series keys, by slot
  std::map<PairKey, uint32_t> key_slots_;      // key -> slot
  uint32_t key_epoch_ = 1;                     // bumped when slots or side hints change
  std::vector<PairWindow> slot_windows_;       // this window's sums, by slot
  std::vector<uint64_t> slot_update_;          // the Update that last reset a slot's window
  std::vector<uint32_t> touched_slots_;
  std::map<std::string, sonde_tcp_pair_stats> previous_pairs_;   // by raw key bytes
  std::map<PairKey, Series> series_;
  uint64_t last_now_ns_ = 0;
  AggregatorCounters counters_;
};

// Pair key of a socket from its stats (role decides which end is the client),
// with the client's address as is.
// `server_ports` (optional): ports known to serve, which decide the side of a
// socket whose role is unknown; without a hint the lower port is the server's.
PairKey PairKeyOf(const sonde_tcp_sock_stats& stats, const std::string& process,
                  const std::bitset<65536>* server_ports = nullptr);
bool LocalIsClient(const sonde_tcp_sock_stats& stats, const std::bitset<65536>* server_ports = nullptr);

}  // namespace sonde::tcp
