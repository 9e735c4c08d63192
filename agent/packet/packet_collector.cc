#include "agent/packet/packet_collector.h"

#include "agent/core/clock.h"

namespace sonde::packet {

absl::StatusOr<std::unique_ptr<PacketCollector>> PacketCollector::Start(
    const PacketCollectorOptions& options, RecordCallback on_record, FlowEndCallback on_flow_end) {
  // The constructor is private: make_unique cannot reach it.
  std::unique_ptr<PacketCollector> c(
      new PacketCollector(options, std::move(on_record), std::move(on_flow_end)));
  auto cap = PacketCapture::Open(options.capture);
  if (!cap.ok()) return cap.status();
  c->capture_ = std::move(*cap);
  c->thread_ = std::thread([raw = c.get()] { raw->Run(); });
  return c;
}

PacketCollector::PacketCollector(const PacketCollectorOptions& options, RecordCallback on_record,
                                 FlowEndCallback on_end)
    : options_(options),
      on_flow_end_(std::move(on_end)),
      feed_(std::move(on_record), options.clock != nullptr ? *options.clock : own_clock_, options.tracker),
      flows_(options.flows, options.build_spans ? &feed_ : nullptr) {
  flows_.set_on_flow_end([this](const FlowStats& f) {
    metrics_.OnFlowEnd(f);
    if (on_flow_end_) on_flow_end_(f);
  });
}

PacketCollector::~PacketCollector() { Stop(); }

void PacketCollector::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void PacketCollector::Run() {
  uint64_t last_expire = 0;
  uint64_t last_feed_tick = 0;
  uint64_t last_clock_refresh = core::MonotonicNowNs();
  while (!stop_) {
    std::unique_lock lock(mu_, std::defer_lock);
    auto r = capture_->Poll(options_.poll_ms, [&](const ParsedPacket& p, const std::string& ifname) {
      if (!lock.owns_lock()) lock.lock();
      flows_.OnPacket(p, ifname);
    });
    if (!r.ok()) break;
    const uint64_t now = core::RealtimeNowNs();
    if (now - last_expire > 1'000'000'000ull) {
      if (!lock.owns_lock()) lock.lock();
      flows_.Expire(now);
      last_expire = now;
    }
    // The pipeline's cadence: reorder windows and protocol timeouts.
    const uint64_t monotonic = core::MonotonicNowNs();
    if (options_.build_spans && monotonic - last_feed_tick >= 100'000'000ull) {
      if (!lock.owns_lock()) lock.lock();
      feed_.Tick(monotonic);
      last_feed_tick = monotonic;
    }
    if (options_.clock == nullptr && monotonic - last_clock_refresh >= 10'000'000'000ull) {
      own_clock_.Refresh();  // NTP slews move the offset
      last_clock_refresh = monotonic;
    }
  }
}

void PacketCollector::AppendPrometheus(std::string& out) const {
  auto stats = capture_stats();
  std::lock_guard lock(mu_);
  metrics_.AppendPrometheus(out, flows_, stats);
  if (options_.build_spans) feed_.AppendPrometheus(out);
}

std::vector<InterfaceStats> PacketCollector::capture_stats() const {
  // pcap_stats is safe to call while another thread dispatches (it reads socket stats).
  return capture_->Stats();
}

void PacketCollector::WithFlows(const std::function<void(const FlowTable&)>& fn) const {
  std::lock_guard lock(mu_);
  fn(flows_);
}

void PacketCollector::FlushFlows() {
  std::lock_guard lock(mu_);
  flows_.Flush(core::RealtimeNowNs());
}

}  // namespace sonde::packet
