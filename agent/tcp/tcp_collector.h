#pragma once
// Runs the kernel reader and the aggregator on a background thread: one read
// per window (1 s by default), each window handed to a callback. Stop() (or
// the destructor) joins the thread; the BPF programs detach with the source.
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/tcp/tcp_aggregator.h"
#include "agent/tcp/tcp_health_source.h"

namespace sonde::tcp {

struct TcpCollectorOptions {
  TcpHealthOptions kernel;
  AggregatorOptions aggregator;
  uint64_t window_ms = 1000;
};

class TcpCollector {
 public:
  using WindowCallback = std::function<void(const TcpWindow&)>;
  static absl::StatusOr<std::unique_ptr<TcpCollector>> Start(const TcpCollectorOptions& options,
                                                             WindowCallback on_window = nullptr);
  ~TcpCollector();
  void Stop();

  // Reads the kernel now (outside the timer) and returns the window; tests use
  // it to avoid waiting for the timer.
  TcpWindow ReadNow();
  const TcpAggregator& aggregator() const { return aggregator_; }
  KernelCounters kernel_counters() const { return source_->kernel_counters(); }
  // Appends the TCP metrics in Prometheus text format.
  void AppendPrometheus(std::string& out) const;

 private:
  TcpCollector(std::unique_ptr<TcpHealthSource> source, const TcpCollectorOptions& options,
               WindowCallback cb);
  void Run();

  std::unique_ptr<TcpHealthSource> source_;
  TcpAggregator aggregator_;
  TcpCollectorOptions options_;
  WindowCallback on_window_;
  std::mutex read_mu_;
  std::vector<SocketSnapshot> sockets_;  // under read_mu_: reused every window
  std::vector<PairSnapshot> pairs_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace sonde::tcp
