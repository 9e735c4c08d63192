#pragma once
// Service map: services as nodes, client -> server calls as edges, from the
// stored system (S) spans of a time range. A call is a server span and the
// client span it answered: the client is the server span's parent, or (when
// the agents did not link them) the client span with the same client
// endpoint and request TCP sequence number, the evidence the trace assembler
// uses. A server span whose client was not captured comes from an external
// peer (its client address); a client span no server span answered goes to
// an external peer or a database (its server address). Per edge: count,
// errors and the caller's latency (client span; the server span when the
// caller is external) as p50 / p99.
#include <cstdint>
#include <string>
#include <vector>

#include "server/store/storage.h"

namespace sonde::server {

struct MapNode {
  std::string id;    // service name, or "addr:port" / address of a peer
  // "service"; "gateway" (forwards: an egress child of its ingress with the
  // same protocol and endpoint); "database" (Redis, or a well-known database
  // port, seen only as a peer); "external" (a peer nobody traced).
  std::string kind;
  uint64_t served = 0;  // server spans (requests it answered)
  uint64_t errors = 0;  // of those, failed
};

struct MapEdge {
  std::string source, target;
  std::string protocol;
  uint64_t count = 0;
  uint64_t errors = 0;
  double p50_ms = 0, p99_ms = 0;
  std::vector<std::string> trace_ids;  // hex, the most recent first, at most 20
};

struct ServiceMap {
  std::vector<MapNode> nodes;  // sorted by id
  std::vector<MapEdge> edges;  // sorted by (source, target)
};

ServiceMap BuildServiceMap(const std::vector<StoredSpan>& spans);

}  // namespace sonde::server
