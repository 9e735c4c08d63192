#include "server/api/self_traffic.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <memory>

namespace sonde::server {

std::vector<std::string> LocalAddresses() {
  std::vector<std::string> out;
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return out;
  const std::unique_ptr<ifaddrs, void (*)(ifaddrs*)> list(raw, freeifaddrs);
  for (const ifaddrs* i = raw; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char text[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof(text));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr, text, sizeof(text));
    } else {
      continue;
    }
    if (text[0] != '\0' && std::find(out.begin(), out.end(), text) == out.end()) out.emplace_back(text);
  }
  return out;
}

std::vector<std::pair<std::string, uint32_t>> SelfListeners(const std::vector<std::pair<std::string, int>>& listeners) {
  std::vector<std::pair<std::string, uint32_t>> out;
  auto add = [&out](const std::string& address, uint32_t port) {
    const std::pair<std::string, uint32_t> p{address, port};
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  for (const auto& [raw_host, port] : listeners) {
    if (port <= 0 || port > 65535) continue;
    std::string host = raw_host;
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    const auto p = static_cast<uint32_t>(port);
    if (host.empty() || host == "0.0.0.0" || host == "::" || host == "*") {
      for (const auto& a : LocalAddresses()) add(a, p);
    } else if (host == "localhost") {
      add("127.0.0.1", p);
      add("::1", p);
    } else {
      add(host, p);
    }
  }
  return out;
}

}  // namespace sonde::server
