#pragma once
// Assembles the stored spans of one trace id (A, S and N spans from any
// number of hosts) into one tree. Every edge says how it was derived:
//   agent   - the parent id the agent (or the OTLP sender) put on the span,
//             with the agent's reason (traceparent, thread, ...);
//   server  - inferred here: a callee's A SERVER span re-parented under the S
//             SERVER span of the same process that contains it in time; an
//             S/N server-side span tied to the client-side span of the same
//             request by TCP sequence number or by connection tuple; an S
//             CLIENT span nested in time under the A CLIENT / S SERVER span of
//             the same process.
// Only spans of the one trace id are considered: no edge crosses trace ids.
// Clocks of different hosts may be skewed: a child from another host that
// does not fit inside its parent is shifted (with its same-host subtree) to
// sit centred in the parent; the shift is reported per span.
#include <cstdint>
#include <string>
#include <vector>

#include "server/store/storage.h"

namespace sonde::server {

struct AssembledSpan {
  const StoredSpan* stored = nullptr;
  int parent = -1;            // index into AssembledTrace::spans, -1: root
  std::string edge;           // "traceparent", "otlp_parent", "time_nesting", "tcp_sequence", ...
  std::string edge_origin;    // "agent" | "server" | "" (root)
  bool missing_parent = false;  // carried a parent id not present in the trace
  int64_t skew_ns = 0;        // added to start/end to correct another host's clock
  uint64_t start_ns = 0;      // adjusted
  uint64_t end_ns = 0;        // adjusted
  int depth = 0;
  std::vector<int> children;  // sorted by start
};

struct AssembledTrace {
  std::vector<AssembledSpan> spans;  // in the order of the input
  std::vector<int> roots;            // sorted by start
  std::vector<int> order;            // depth-first order (parents before children)
  uint64_t start_ns = 0;
  uint64_t end_ns = 0;
};

struct AssemblerOptions {
  uint64_t same_host_tolerance_ns = 2'000'000;  // containment slack on one host's clock
  uint64_t tuple_match_window_ns = 60'000'000'000;  // tuple match: starts this close (skew)
};

// `spans` must outlive the result (AssembledSpan points into it).
AssembledTrace AssembleTrace(const std::vector<StoredSpan>& spans,
                             const AssemblerOptions& options = {});

std::string LinkReasonName(int reason);

}  // namespace sonde::server
