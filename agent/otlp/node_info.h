#pragma once
// What the agent knows about its node: resource attributes added to every
// OTLP resource, and the addresses the receivers bind by default.
#include <string>
#include <utility>
#include <vector>

namespace sonde::otlp {

struct NodeInfo {
  std::string host_name;     // gethostname()
  std::string host_id;       // /etc/machine-id
  std::string k8s_node_name; // $K8S_NODE_NAME or $NODE_NAME (downward API), when set
  std::vector<std::string> addresses;  // every local interface address (text)

  // Resource attributes to add when absent: host.name, host.id, os.type,
  // k8s.node.name, sonde.node.name.
  std::vector<std::pair<std::string, std::string>> ResourceAttributes() const;
};

NodeInfo ReadNodeInfo();

// The default bind addresses: loopback plus the primary IPv4 address (the one
// on the interface holding the default route), so OTLP is reachable from the
// node and from pods on it, but not on every secondary interface the way
// 0.0.0.0 would be. Falls back to loopback alone when no default route exists.
std::vector<std::string> DefaultBindAddresses();

// True when `address` is loopback or one of this node's interface addresses.
bool IsLocalAddress(const std::string& address);

}  // namespace sonde::otlp
