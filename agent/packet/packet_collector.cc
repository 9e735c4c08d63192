#include "agent/packet/packet_collector.h"

#include "agent/core/clock.h"

namespace sonde::packet {

absl::StatusOr<std::unique_ptr<PacketCollector>> PacketCollector::Start(
    const PacketCollectorOptions& options, SpanCallback on_span, FlowEndCallback on_flow_end) {
  std::unique_ptr<PacketCollector> c(
      new PacketCollector(options, std::move(on_span), std::move(on_flow_end)));
  auto cap = PacketCapture::Open(options.capture);
  if (!cap.ok()) return cap.status();
  c->capture_ = std::move(*cap);
  c->thread_ = std::thread([raw = c.get()] { raw->Run(); });
  return c;
}

PacketCollector::PacketCollector(const PacketCollectorOptions& options, SpanCallback on_span,
                                 FlowEndCallback on_end)
    : options_(options), on_flow_end_(std::move(on_end)), spans_(std::move(on_span), options.spans),
      flows_(options.flows, options.build_spans ? &spans_ : nullptr) {
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
  }
}

void PacketCollector::AppendPrometheus(std::string& out) const {
  auto stats = capture_stats();
  std::lock_guard lock(mu_);
  metrics_.AppendPrometheus(out, flows_, stats);
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
