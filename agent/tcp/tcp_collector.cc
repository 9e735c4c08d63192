#include "agent/tcp/tcp_collector.h"

#include "agent/core/clock.h"
#include "agent/core/logging.h"

namespace sonde::tcp {

absl::StatusOr<std::unique_ptr<TcpCollector>> TcpCollector::Start(
    const TcpCollectorOptions& options, WindowCallback on_window) {
  auto source = TcpHealthSource::Open(options.kernel);
  if (!source.ok()) return source.status();
  std::unique_ptr<TcpCollector> c(new TcpCollector(std::move(*source), options, std::move(on_window)));
  c->thread_ = std::thread([raw = c.get()] { raw->Run(); });
  return c;
}

TcpCollector::TcpCollector(std::unique_ptr<TcpHealthSource> source,
                           const TcpCollectorOptions& options, WindowCallback cb)
    : source_(std::move(source)), aggregator_(options.aggregator), options_(options),
      on_window_(std::move(cb)) {}

TcpCollector::~TcpCollector() { Stop(); }

void TcpCollector::Stop() {
  {
    std::lock_guard lock(stop_mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

TcpWindow TcpCollector::ReadNow() {
  std::lock_guard lock(read_mu_);
  if (auto st = source_->Read(sockets_, pairs_); !st.ok()) return {};
  TcpWindow w = aggregator_.Update(sockets_, pairs_, core::MonotonicNowNs());
  // Reused while the socket count holds; given back once it has fallen to a
  // quarter (a burst of connections does not pin its snapshot's megabytes).
  if (sockets_.capacity() > 4 * sockets_.size() + 4096) std::vector<SocketSnapshot>().swap(sockets_);
  if (pairs_.capacity() > 4 * pairs_.size() + 4096) std::vector<PairSnapshot>().swap(pairs_);
  return w;
}

void TcpCollector::AppendPrometheus(std::string& out) const { aggregator_.AppendPrometheus(out); }

void TcpCollector::Run() {
  std::unique_lock lock(stop_mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, std::chrono::milliseconds(options_.window_ms), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    TcpWindow w = ReadNow();
    if (on_window_) on_window_(w);
    lock.lock();
  }
}

}  // namespace sonde::tcp
