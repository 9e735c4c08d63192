#include "absl/strings/str_cat.h"
#include "agent/metrics/prometheus_text.h"
#include "agent/tcp/tcp_aggregator.h"

namespace sonde::tcp {

using metrics::prometheus::AppendMetricHeader;
using metrics::prometheus::AppendSample;
using metrics::prometheus::Labels;

void TcpAggregator::AppendPrometheus(std::string& out) const {
  std::lock_guard lock(mu_);
  auto labels_of = [](const PairKey& k) {
    return Labels{{"client", k.client},
                  {"server", k.server},
                  {"server_port", absl::StrCat(k.server_port)},
                  {"side", std::string(SideName(k.side))},
                  {"process", k.process}};
  };
  struct CounterDef {
    std::string_view name;
    std::string_view help;
    uint64_t PairCounters::*field;
  };
  static constexpr CounterDef kCounters[] = {
      {"sonde_tcp_connections_opened_total", "TCP connections that reached ESTABLISHED (connect or accept).",
       &PairCounters::connections_opened},
      {"sonde_tcp_connections_closed_total", "Established TCP connections that closed.",
       &PairCounters::connections_closed},
      {"sonde_tcp_retransmitted_segments_total", "TCP segments retransmitted (tcp:tcp_retransmit_skb).",
       &PairCounters::retrans_segs},
      {"sonde_tcp_syn_retransmissions_total", "SYN retransmissions of connecting sockets.",
       &PairCounters::syn_retrans},
      {"sonde_tcp_synack_retransmissions_total", "SYN/ACK retransmissions of accepting sockets.",
       &PairCounters::synack_retrans},
      {"sonde_tcp_zero_window_events_total", "Times the peer's receive window dropped to zero.",
       &PairCounters::zero_window_events},
      {"sonde_tcp_resets_sent_total", "TCP RST segments sent.", &PairCounters::resets_sent},
      {"sonde_tcp_resets_received_total", "TCP RST segments received.",
       &PairCounters::resets_received},
  };
  for (const auto& def : kCounters) {
    AppendMetricHeader(out, def.name, "counter", def.help);
    for (const auto& [key, s] : series_) AppendSample(out, def.name, labels_of(key), s.totals.*def.field);
  }

  AppendMetricHeader(out, "sonde_tcp_connect_failures_total", "counter",
                     "Failed TCP connects by reason (refused: RST; timeout: SYN retries exhausted).");
  for (const auto& [key, s] : series_) {
    if (key.side == Side::kServer) continue;
    const std::pair<std::string_view, uint64_t> reasons[] = {
        {"refused", s.totals.failed_refused}, {"timeout", s.totals.failed_timeout},
        {"other", s.totals.failed_other}};
    for (const auto& [reason, v] : reasons) {
      Labels l = labels_of(key);
      l.emplace_back("reason", std::string(reason));
      AppendSample(out, "sonde_tcp_connect_failures_total", l, v);
    }
  }

  AppendMetricHeader(out, "sonde_tcp_bytes_total", "counter",
                     "TCP payload bytes by direction (acked bytes sent / bytes received by the local socket).");
  for (const auto& [key, s] : series_) {
    Labels l = labels_of(key);
    l.emplace_back("direction", "client_to_server");
    AppendSample(out, "sonde_tcp_bytes_total", l, s.totals.bytes_client_to_server);
    l.back().second = "server_to_client";
    AppendSample(out, "sonde_tcp_bytes_total", l, s.totals.bytes_server_to_client);
  }

  AppendMetricHeader(out, "sonde_tcp_active_connections", "gauge",
                     "Established TCP connections open at the last read.");
  for (const auto& [key, s] : series_) AppendSample(out, "sonde_tcp_active_connections", labels_of(key), uint64_t{s.active});

  AppendMetricHeader(out, "sonde_tcp_srtt_seconds", "gauge",
                     "Mean smoothed RTT of the pair's sockets sampled in the last window.");
  for (const auto& [key, s] : series_) {
    if (s.srtt_mean_us > 0) AppendSample(out, "sonde_tcp_srtt_seconds", labels_of(key), s.srtt_mean_us / 1e6);
  }

  AppendMetricHeader(out, "sonde_tcp_handshake_rtt_seconds", "histogram",
                     "TCP handshake time: SYN -> ESTABLISHED for connects, SYN/ACK -> ACK for accepts.");
  for (const auto& [key, s] : series_) {
    const auto& h = s.totals.handshake;
    metrics::prometheus::AppendHistogram(out, "sonde_tcp_handshake_rtt_seconds", labels_of(key),
                                         kHandshakeBucketsSeconds, h.counts, double(h.sum_ns) / 1e9);
  }
}

}  // namespace sonde::tcp
