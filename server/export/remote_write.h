#pragma once
// Prometheus remote write (protobuf + snappy, remote-write 1.0) of the RED
// and TCP windows sonde-server stores, to Prometheus
// (--web.enable-remote-write-receiver), VictoriaMetrics, Mimir, Thanos
// receive... Every window becomes samples stamped with its end time, one
// value per window (gauges: stateless, so any replica may send any window;
// a rate is sum_over_time(x[5m]) / 300):
//   sonde_red_requests, sonde_red_errors, sonde_red_duration_seconds_sum,
//   sonde_red_duration_seconds_bucket{le} (cumulative within the window)
//     labels: service, endpoint, method, protocol, status_class ("2xx"),
//     direction ("server"/"client"), url_scheme, host (the agent's);
//   sonde_tcp_{retransmits, resets_sent, resets_received, connect_failures,
//     connect_timeouts, zero_window_events, bytes_sent, bytes_received,
//     opened_connections, closed_connections, active_connections,
//     handshakes, handshake_rtt_seconds_sum, srtt_seconds}
//     labels: server_address, server_port, client_address, comm, host.
// Windows of one series and end time (several pids of one service) are
// summed (srtt: the largest). Requests go through a bounded queue to one
// sender thread that retries 5xx and network errors with backoff; 4xx and a
// full queue drop the request, counted.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "prometheus/prompb/remote.pb.h"
#include "sonde/v1/ingest.pb.h"

namespace sonde::server {

struct RemoteWriteOptions {
  std::string url;  // http://host:port/path
  std::vector<std::pair<std::string, std::string>> headers;  // e.g. Authorization, X-Scope-OrgID
  size_t max_queue = 512;               // requests waiting to be sent
  uint64_t initial_backoff_ms = 250;
  uint64_t max_backoff_ms = 30'000;
  int timeout_s = 10;
};

struct RemoteWriteCounters {
  std::atomic<uint64_t> samples_sent{0};
  std::atomic<uint64_t> requests_sent{0};
  std::atomic<uint64_t> retries{0};          // failed attempts retried
  std::atomic<uint64_t> dropped_requests{0};  // queue full or refused (4xx)
  std::atomic<uint64_t> dropped_samples{0};
};

// The samples of one batch's RED and TCP windows (pure; `host`: the agent's).
prometheus::WriteRequest ToWriteRequest(const v1::Batch& batch, const std::string& host);

class RemoteWriteExporter {
 public:
  static absl::StatusOr<std::unique_ptr<RemoteWriteExporter>> Create(RemoteWriteOptions options);
  ~RemoteWriteExporter();  // sends what is queued for up to 2 s, then stops

  // Converts and queues (never blocks on the network).
  void Export(const v1::Batch& batch, const std::string& host);
  // Queues a ready request (tests, other sources).
  void Enqueue(prometheus::WriteRequest request);
  // Waits until the queue is empty and nothing is in flight (tests).
  bool Flush(std::chrono::milliseconds timeout);

  const RemoteWriteCounters& counters() const { return counters_; }
  size_t queued() const;
  // Prometheus text of the counters (sonde-server /metrics).
  void AppendMetrics(std::string* out) const;

 private:
  explicit RemoteWriteExporter(RemoteWriteOptions options);
  void Run();
  // 0: sent; >0: HTTP status; -1: network error.
  int Send(const std::string& body);

  RemoteWriteOptions options_;
  std::string host_, path_;
  int port_ = 0;
  RemoteWriteCounters counters_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::string, size_t>> queue_;  // serialized request, samples
  bool in_flight_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sonde::server
