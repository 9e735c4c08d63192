#include "agent/packet/pcap_capture.h"

#include <poll.h>

#include <regex>

#include "absl/status/status.h"

namespace sonde::packet {
namespace {

absl::Status PcapError(const std::string& what, pcap_t* p) {
  return absl::InternalError(what + ": " + (p ? pcap_geterr(p) : "?"));
}

struct DispatchContext {
  const PacketCallback* cb;
  const std::string* name;
  int linktype;
  uint64_t* parsed;
  uint64_t* not_parsed;
  int precision;
};

void OnPacket(u_char* user, const pcap_pkthdr* h, const u_char* bytes) {
  auto* ctx = reinterpret_cast<DispatchContext*>(user);
  const uint64_t frac = static_cast<uint64_t>(h->ts.tv_usec);
  const uint64_t ts = static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ull +
                      (ctx->precision == PCAP_TSTAMP_PRECISION_NANO ? frac : frac * 1000);
  ParsedPacket p;
  if (ParsePacket(ctx->linktype, {bytes, h->caplen}, ts, p) == ParseStatus::kOk) {
    ++*ctx->parsed;
    (*ctx->cb)(p, *ctx->name);
  } else {
    ++*ctx->not_parsed;
  }
}

}  // namespace

std::string FilterForPorts(const std::vector<uint16_t>& ports) {
  if (ports.empty()) return "tcp or udp";
  std::string f = "(tcp or udp) and (";
  for (size_t i = 0; i < ports.size(); ++i) {
    if (i) f += " or ";
    f += "port " + std::to_string(ports[i]);
  }
  return f + ")";
}

absl::StatusOr<std::vector<std::string>> SelectInterfaces(const CaptureOptions& options) {
  if (!options.interfaces.empty()) return options.interfaces;
  char err[PCAP_ERRBUF_SIZE] = {};
  pcap_if_t* all = nullptr;
  if (pcap_findalldevs(&all, err) != 0) return absl::InternalError(std::string("pcap_findalldevs: ") + err);
  std::unique_ptr<pcap_if_t, void (*)(pcap_if_t*)> guard(all, &pcap_freealldevs);
  std::regex re;
  try {
    re = std::regex(options.interface_regex);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError("interface regex: " + std::string(e.what()));
  }
  std::vector<std::string> out;
  for (pcap_if_t* d = all; d; d = d->next) {
    const std::string name = d->name;
    if (name == "any") continue;
    if (std::regex_match(name, re)) out.push_back(name);
  }
  return out;
}

absl::StatusOr<std::unique_ptr<PacketCapture>> PacketCapture::Open(const CaptureOptions& options) {
  auto names = SelectInterfaces(options);
  if (!names.ok()) return names.status();
  if (names->empty()) return absl::NotFoundError("no interface matches " + options.interface_regex);
  std::unique_ptr<PacketCapture> cap(new PacketCapture());
  const std::string filter = options.filter.empty() ? "tcp or udp" : options.filter;
  for (const auto& name : *names) {
    char err[PCAP_ERRBUF_SIZE] = {};
    auto h = std::make_unique<Handle>();
    h->name = name;
    h->pcap.reset(pcap_create(name.c_str(), err));
    if (!h->pcap) return absl::InternalError("pcap_create " + name + ": " + err);
    pcap_t* p = h->pcap.get();
    pcap_set_snaplen(p, options.snaplen);
    pcap_set_promisc(p, options.promiscuous ? 1 : 0);
    pcap_set_timeout(p, options.timeout_ms);
    pcap_set_buffer_size(p, options.buffer_bytes);
    pcap_set_immediate_mode(p, options.immediate ? 1 : 0);
    pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO);
    const int rc = pcap_activate(p);
    if (rc < 0) return PcapError("pcap_activate " + name, p);
    bpf_program prog{};
    if (pcap_compile(p, &prog, filter.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0)
      return PcapError("pcap_compile '" + filter + "'", p);
    const int set = pcap_setfilter(p, &prog);  // attaches the classic BPF filter in the kernel
    pcap_freecode(&prog);
    if (set != 0) return PcapError("pcap_setfilter " + name, p);
    if (pcap_setnonblock(p, 1, err) != 0) return absl::InternalError("pcap_setnonblock: " + std::string(err));
    h->fd = pcap_get_selectable_fd(p);
    h->linktype = pcap_datalink(p);
    cap->handles_.push_back(std::move(h));
  }
  return cap;
}

absl::Status ReadPcapFile(const std::string& path, const PacketCallback& cb,
                          const std::string& interface) {
  char err[PCAP_ERRBUF_SIZE] = {};
  std::unique_ptr<pcap_t, void (*)(pcap_t*)> p(
      pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, err),
      &pcap_close);
  if (!p) return absl::NotFoundError("pcap_open_offline " + path + ": " + err);
  uint64_t parsed = 0, not_parsed = 0;
  DispatchContext ctx{&cb, &interface, pcap_datalink(p.get()), &parsed, &not_parsed,
                      PCAP_TSTAMP_PRECISION_NANO};
  if (pcap_loop(p.get(), -1, &OnPacket, reinterpret_cast<u_char*>(&ctx)) == PCAP_ERROR)
    return PcapError("pcap_loop " + path, p.get());
  return absl::OkStatus();
}

PacketCapture::~PacketCapture() = default;

absl::StatusOr<size_t> PacketCapture::Poll(int timeout_ms, const PacketCallback& cb) {
  std::vector<pollfd> fds;
  fds.reserve(handles_.size());
  for (const auto& h : handles_) fds.push_back({h->fd, POLLIN, 0});
  const int n = ::poll(fds.data(), fds.size(), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    return absl::InternalError("poll failed");
  }
  size_t delivered = 0;
  for (size_t i = 0; i < handles_.size(); ++i) {
    // Dispatch even without POLLIN: libpcap may hold a partly read block.
    Handle& h = *handles_[i];
    DispatchContext ctx{&cb, &h.name, h.linktype, &h.parsed, &h.not_parsed,
                        pcap_get_tstamp_precision(h.pcap.get())};
    const uint64_t before = h.parsed;
    const int r = pcap_dispatch(h.pcap.get(), -1, &OnPacket, reinterpret_cast<u_char*>(&ctx));
    if (r == PCAP_ERROR) return PcapError("pcap_dispatch " + h.name, h.pcap.get());
    delivered += h.parsed - before;
  }
  return delivered;
}

std::vector<InterfaceStats> PacketCapture::Stats() const {
  std::vector<InterfaceStats> out;
  for (const auto& h : handles_) {
    InterfaceStats s;
    s.name = h->name;
    pcap_stat ps{};
    if (pcap_stats(h->pcap.get(), &ps) == 0) {
      s.received = ps.ps_recv;
      s.dropped = ps.ps_drop;
      s.if_dropped = ps.ps_ifdrop;
    }
    s.parsed = h->parsed;
    s.not_parsed = h->not_parsed;
    out.push_back(s);
  }
  return out;
}

std::vector<std::string> PacketCapture::interfaces() const {
  std::vector<std::string> out;
  for (const auto& h : handles_) out.push_back(h->name);
  return out;
}

}  // namespace sonde::packet
