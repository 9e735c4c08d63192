#pragma once
// AF_PACKET capture through libpcap: one handle per selected interface,
// TPACKET_V3 ring (immediate mode off: libpcap only uses V3 then; the block
// timeout bounds latency instead), a kernel BPF filter so only the TCP/UDP
// of interest reaches user space, and per-interface drop counters.
#include <pcap/pcap.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/packet/packet_parser.h"

namespace sonde::packet {

struct CaptureOptions {
  // Interfaces whose names fully match this regex are captured.
  std::string interface_regex = "(eth|en|veth|cali|lxc).*|lo";
  // Explicit interface names (used instead of the regex when non-empty).
  std::vector<std::string> interfaces;
  int snaplen = 4096;             // bytes kept per packet: headers + the start of the payload
  int buffer_bytes = 8 << 20;     // ring size per interface
  int timeout_ms = 20;            // TPACKET_V3 block retire timeout (latency bound)
  bool immediate = false;         // true: every packet at once (libpcap falls back to TPACKET_V2)
  bool promiscuous = false;
  // Kernel filter (pcap syntax). Empty: "tcp or udp".
  std::string filter;
};

struct InterfaceStats {
  std::string name;
  uint64_t received = 0;   // ps_recv: packets that passed the filter
  uint64_t dropped = 0;    // ps_drop: dropped for lack of ring space
  uint64_t if_dropped = 0; // ps_ifdrop: dropped by the interface
  uint64_t parsed = 0;     // handed to the callback
  uint64_t not_parsed = 0; // failed ParsePacket (non-IP, fragments, short)
};

using PacketCallback = std::function<void(const ParsedPacket&, const std::string& interface)>;

// Builds the filter from ports of interest ("" when empty list: all TCP/UDP).
std::string FilterForPorts(const std::vector<uint16_t>& ports);
// Interface names matching the options (pcap_findalldevs).
absl::StatusOr<std::vector<std::string>> SelectInterfaces(const CaptureOptions& options);

// Replays a pcap/pcapng file through the same parser (recordings, tests).
absl::Status ReadPcapFile(const std::string& path, const PacketCallback& cb,
                          const std::string& interface = "file");

class PacketCapture {
 public:
  static absl::StatusOr<std::unique_ptr<PacketCapture>> Open(const CaptureOptions& options);
  ~PacketCapture();
  PacketCapture(const PacketCapture&) = delete;
  PacketCapture& operator=(const PacketCapture&) = delete;

  // Waits up to timeout_ms for packets, then hands every available one to cb.
  // Returns the number delivered.
  absl::StatusOr<size_t> Poll(int timeout_ms, const PacketCallback& cb);
  std::vector<InterfaceStats> Stats() const;
  std::vector<std::string> interfaces() const;

 private:
  struct Handle {
    std::string name;
    std::unique_ptr<pcap_t, void (*)(pcap_t*)> pcap{nullptr, &pcap_close};
    int fd = -1;
    int linktype = 0;
    uint64_t parsed = 0, not_parsed = 0;
  };
  PacketCapture() = default;
  std::vector<std::unique_ptr<Handle>> handles_;
};

}  // namespace sonde::packet
