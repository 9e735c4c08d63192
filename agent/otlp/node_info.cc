#include "agent/otlp/node_info.h"

#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "agent/capture/tuple_format.h"
#include "agent/core/text_file.h"

namespace sonde::otlp {
namespace {

// Interface name of the IPv4 default route (/proc/net/route destination 0).
std::string DefaultRouteInterface() {
  std::ifstream in("/proc/net/route");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string iface, destination, gateway, flags, refcnt, use, metric, mask;
    fields >> iface >> destination >> gateway >> flags >> refcnt >> use >> metric >> mask;
    if (destination == "00000000" && mask == "00000000") return iface;
  }
  return "";
}

struct IfAddrsDeleter {
  void operator()(ifaddrs* p) const { freeifaddrs(p); }
};

// (interface, address) for every configured IPv4/IPv6 address.
std::vector<std::pair<std::string, std::string>> InterfaceAddresses() {
  std::vector<std::pair<std::string, std::string>> out;
  ifaddrs* raw = nullptr;
  if (getifaddrs(&raw) != 0) return out;
  std::unique_ptr<ifaddrs, IfAddrsDeleter> list(raw);
  for (ifaddrs* ifa = raw; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr) continue;
    std::string text;
    if (ifa->ifa_addr->sa_family == AF_INET) {
      const in_addr& a4 = reinterpret_cast<sockaddr_in*>(ifa->ifa_addr)->sin_addr;
      text = capture::FormatAddress(AF_INET, reinterpret_cast<const uint8_t*>(&a4.s_addr));
    } else if (ifa->ifa_addr->sa_family == AF_INET6) {
      auto* a6 = reinterpret_cast<sockaddr_in6*>(ifa->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a6->sin6_addr)) continue;  // needs a scope id to bind
      text = capture::FormatAddress(AF_INET6, a6->sin6_addr.s6_addr);
    } else {
      continue;
    }
    out.emplace_back(ifa->ifa_name, text);
  }
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> NodeInfo::ResourceAttributes() const {
  std::vector<std::pair<std::string, std::string>> attrs;
  if (!host_name.empty()) attrs.emplace_back("host.name", host_name);
  if (!host_id.empty()) attrs.emplace_back("host.id", host_id);
  attrs.emplace_back("os.type", "linux");
  if (!k8s_node_name.empty()) attrs.emplace_back("k8s.node.name", k8s_node_name);
  attrs.emplace_back("sonde.node.name", k8s_node_name.empty() ? host_name : k8s_node_name);
  return attrs;
}

NodeInfo ReadNodeInfo() {
  NodeInfo info;
  char name[256] = {};
  if (gethostname(name, sizeof name - 1) == 0) info.host_name = name;
  info.host_id = core::ReadFirstLine("/etc/machine-id");
  for (const char* var : {"SONDE_NODE_NAME", "K8S_NODE_NAME", "NODE_NAME"}) {
    if (const char* v = std::getenv(var); v != nullptr && *v != '\0') {
      info.k8s_node_name = v;
      break;
    }
  }
  for (auto& [iface, address] : InterfaceAddresses()) info.addresses.push_back(address);
  return info;
}

std::vector<std::string> DefaultBindAddresses() {
  std::vector<std::string> out = {"127.0.0.1"};
  std::string iface = DefaultRouteInterface();
  if (iface.empty()) return out;
  for (auto& [name, address] : InterfaceAddresses()) {
    if (name == iface && address.find(':') == std::string::npos) {
      out.push_back(address);
      break;
    }
  }
  return out;
}

bool IsLocalAddress(const std::string& address) {
  if (address == "::1" || address.rfind("127.", 0) == 0 || address == "::ffff:127.0.0.1") return true;
  for (auto& [iface, local] : InterfaceAddresses()) {
    if (local == address) return true;
  }
  return false;
}

}  // namespace sonde::otlp
