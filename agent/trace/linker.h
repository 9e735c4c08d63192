#pragma once
// Gateway linker: ties each egress (client) system span to the ingress
// (server) span that caused it, inside one worker process. Gateways serve
// many requests per thread over reused upstream connections, so thread
// identity is no evidence. Evidence, strongest first:
//   1. the egress traceparent trace id equals the ingress one;
//   2. X-Kong-Request-Id on the upstream request equals the one on the
//      downstream response;
//   3. equal x-request-id;
//   4. time nesting (egress inside the ingress lifetime) plus path / host
//      similarity, only when the best candidate is unambiguous.
// An egress finishes before its ingress, so egress spans wait (bounded in
// time and count) for their ingress; ingress spans are never held.
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/trace/span.h"

namespace sonde::trace {

struct LinkerOptions {
  uint64_t hold_ns = 5'000'000'000;          // egress wait in a process that serves requests
  uint64_t client_only_hold_ns = 100'000'000;  // egress wait in a process never seen serving
  // A process seen this long without serving is a pure client (a load
  // generator, curl, a cron job): its egress spans leave at once. Holding
  // them cost memory and CPU for every request of a busy client (and kept
  // the server groups of the exchange joiner waiting with them).
  uint64_t pure_client_after_ns = 100'000'000;
  // Egress spans of a serving process wait hold_ns only once one of them has
  // linked: until then, and again after `unseen_ingress_after` of them in a
  // row waited out their hold unlinked, the process's ingress is not seen
  // (TLS through a library the agent does not hook, --no-tls, a proxy whose
  // own server side is filtered out) and they wait unseen_ingress_hold_ns.
  // Holding each for seconds held every request of such a gateway (~500 MB
  // at 30k req/s), for nothing to link to.
  uint32_t unseen_ingress_after = 64;
  uint64_t unseen_ingress_hold_ns = 250'000'000;
  // Meanwhile only one of this many of its server spans is compared with the
  // waiting egress spans (enough to notice when links come back): an
  // undecrypted HTTPS gateway whose backend serves from the same process
  // spent half of the agent's CPU comparing backend spans with 250 ms of
  // egress spans that could never nest in them.
  uint32_t unseen_ingress_scan_every = 16;
  size_t max_pending = 200'000;               // egress spans waiting, all processes
  uint64_t nesting_slack_ns = 0;              // clock tolerance for time nesting
  // Candidates for an ingress are the waiting egress spans that ended at
  // most this long before the ingress started (a child ends after its parent
  // starts: this is only tolerance). The scan walks back from the newest and
  // stops after a run of older ones, so an egress queue swollen by lost
  // ingress records (overload) costs each ingress this window's worth of
  // spans, not the whole hold time's.
  uint64_t reorder_window_ns = 20'000'000;
};

struct LinkerCounters {
  uint64_t ingress = 0;
  uint64_t egress = 0;
  uint64_t links[kLinkReasonCount] = {};  // by LinkReason
  uint64_t unlinked_egress = 0;
  uint64_t pure_client_egress = 0;  // of those: from a process that never serves, not held
  uint64_t unseen_ingress_egress = 0;  // held briefly: their process's ingress is not seen
  uint64_t unseen_ingress_unscanned = 0;  // server spans of such a process not compared (sampled)
  uint64_t ambiguous = 0;    // nesting candidates too alike to choose: left unlinked
  uint64_t evicted = 0;      // released early at max_pending
};


class GatewayLinker {
 public:
  using Emit = std::function<void(SpanPtr&&)>;
  explicit GatewayLinker(LinkerOptions options = {}) : options_(options) {}

  // Server spans are linked with waiting egress spans and emitted with them;
  // client spans wait; others pass through.
  void Add(SpanPtr span, const Emit& emit);
  // Releases egress spans that waited long enough (`now_unix_ns`: wall clock).
  void Flush(uint64_t now_unix_ns, const Emit& emit);
  void FlushAll(const Emit& emit);

  const LinkerCounters& counters() const { return counters_; }
  size_t pending() const { return pending_count_; }

 private:
  struct Pending {
    SpanPtr span;  // its url_path / url_query are the path evidence
    std::string host, kong_id, request_id;
    uint64_t deadline_ns = 0;
    uint64_t start_ns = 0, end_ns = 0;  // the span's, here so a scan touches no span
  };
  struct Process {
    std::deque<Pending> egress;
    bool serves = false;        // has produced server spans
    bool linked = false;               // one of its egress spans has linked
    uint32_t timeouts_since_link = 0;  // egress spans released by their deadline since the last link
    uint32_t scans_skipped = 0;        // ingress spans not compared while the ingress is unseen
    uint64_t first_seen_ns = 0;  // end of its first span (wall clock)
    uint64_t last_seen_ns = 0;   // end of its latest span: idle clients are forgotten
  };
  void Link(Span& ingress, Pending& egress, LinkReason reason);
  // Its last unseen_ingress_after egress spans all timed out unlinked.
  bool IngressLost(const Process& p) const { return p.timeouts_since_link >= options_.unseen_ingress_after; }
  // Its egress spans wait the full hold: one has linked and the ingress is not lost since.
  bool IngressSeen(const Process& p) const { return p.linked && !IngressLost(p); }
  // Indexes (ascending) of `queue` entries that can belong to an ingress starting at `start_ns`.
  void Candidates(const std::deque<Pending>& queue, uint64_t start_ns);
  void Release(Pending& p, const Emit& emit);

  LinkerOptions options_;
  std::unordered_map<uint32_t, Process> processes_;
  size_t pending_count_ = 0;
  LinkerCounters counters_;
  std::vector<size_t> matched_;
  std::vector<size_t> window_;  // Candidates' result (reused)
};

}  // namespace sonde::trace
