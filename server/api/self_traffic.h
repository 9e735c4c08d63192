#pragma once
// Which captured calls are the server's own traffic: clients calling its
// listeners (the browser using the UI, agents shipping). The trace search and
// the request log leave them out by default (storage.h, SelfTraffic), like
// the spans of Sonde's components themselves.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sonde::server {

// (address, port) pairs of the server's listeners, as a captured client
// span names its server: "127.0.0.1:8080" -> (127.0.0.1, 8080); "localhost"
// -> 127.0.0.1 and ::1; a listener on every address ("0.0.0.0", "::", "")
// -> one pair per address of this host's interfaces (getifaddrs), so a call
// to the same port on another host is not taken for one. IPv6 hosts may be
// bracketed. Ports outside 1..65535 are skipped.
std::vector<std::pair<std::string, uint32_t>> SelfListeners(const std::vector<std::pair<std::string, int>>& listeners);

// This host's interface addresses, numeric (IPv4 and IPv6, link-local scope
// ids dropped).
std::vector<std::string> LocalAddresses();

}  // namespace sonde::server
