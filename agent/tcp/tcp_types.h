#pragma once
// Per connection-pair TCP health, as aggregated from the kernel's per-socket
// counters (bpf/tcp_health.bpf.c). A pair is client address -> server
// address:port, seen from one local socket side, plus the local process.
#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <vector>

#include "sonde/abi.h"

namespace sonde::tcp {

// Which end of the connection the local socket is.
enum class Side : uint8_t { kUnknown = 0, kClient = 1, kServer = 2 };
std::string_view SideName(Side side);

struct PairKey {
  std::string client;    // client IP text
  std::string server;    // server IP text
  uint16_t server_port = 0;
  Side side = Side::kUnknown;
  std::string process;   // comm of the local process, empty when unknown
  auto operator<=>(const PairKey&) const = default;
};

// Upper bounds (seconds) of the handshake RTT histogram buckets; +Inf implied.
inline constexpr std::array<double, 15> kHandshakeBucketsSeconds = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,   0.1,     0.25,   0.5,   1.0,   2.5,    5.0};

struct HandshakeHistogram {
  std::array<uint64_t, kHandshakeBucketsSeconds.size() + 1> counts{};  // last: +Inf
  uint64_t count = 0;
  uint64_t sum_ns = 0;
  void Observe(uint64_t ns);
  void Merge(const HandshakeHistogram& other);
};

// Counters for one pair: a window's deltas or the cumulative totals.
struct PairCounters {
  uint64_t connections_opened = 0;  // reached ESTABLISHED (connect or accept)
  uint64_t connections_closed = 0;
  uint64_t failed_refused = 0;      // connect got an RST
  uint64_t failed_timeout = 0;      // SYN retries exhausted
  uint64_t failed_other = 0;        // ICMP error / aborted connect
  uint64_t retrans_segs = 0;
  uint64_t syn_retrans = 0;
  uint64_t synack_retrans = 0;
  uint64_t zero_window_events = 0;
  uint64_t resets_sent = 0;
  uint64_t resets_received = 0;
  uint64_t bytes_client_to_server = 0;
  uint64_t bytes_server_to_client = 0;
  HandshakeHistogram handshake;

  uint64_t failed() const { return failed_refused + failed_timeout + failed_other; }
  void Add(const PairCounters& other);
};

// One pair in one window.
struct PairWindow {
  PairKey key;
  PairCounters delta;
  uint32_t active_connections = 0;  // established and not closed at the window's end
  uint32_t srtt_samples = 0;        // sockets whose srtt was averaged
  uint64_t srtt_sum_us = 0;
  uint32_t srtt_min_us = 0;
  uint32_t srtt_max_us = 0;
  uint32_t cwnd_last = 0;
  double srtt_mean_us() const { return srtt_samples ? double(srtt_sum_us) / srtt_samples : 0.0; }
};

struct TcpWindow {
  uint64_t start_ns = 0;  // CLOCK_MONOTONIC
  uint64_t end_ns = 0;
  std::vector<PairWindow> pairs;
};

// What the kernel reader hands to the aggregator each period.
struct SocketSnapshot {
  uint64_t cookie = 0;
  sonde_tcp_sock_stats stats{};
};
struct PairSnapshot {
  sonde_tcp_pair_key key{};
  sonde_tcp_pair_stats stats{};
};

}  // namespace sonde::tcp
