#pragma once
// The class of an IP address, which stands for a remote client's address in
// the TCP metrics by default: an internet-facing server sees one client
// address per visitor, and a label per address would make one Prometheus
// series per visitor. Four classes keep the series count bounded whatever
// the traffic (docs/tcp-metrics.md, "Labels and cardinality").
#include <string_view>

namespace sonde::tcp {

// "loopback" (127/8, ::1), "link_local" (169.254/16, fe80::/10), "private"
// (10/8, 172.16/12, 192.168/16, 100.64/10 shared address space, fc00::/7
// unique local), "public" otherwise. IPv4-mapped IPv6 (::ffff:a.b.c.d) is
// classed as its IPv4 address. Text that is not an address: "unknown".
std::string_view AddressClass(std::string_view ip);

}  // namespace sonde::tcp
