// The pairwise (O(n^2)) trace assembler as it was before the indexed one
// (server/query/trace_assembler.cc), kept as the reference the randomized
// differential test compares against: the index must not change a single edge.
#include "tests/unit/server/trace_assembler_reference.h"

#include <algorithm>
#include <functional>
#include <unordered_map>

#include "proto/sonde/v1/enum_names.h"

namespace sonde::server::reference {
namespace {

bool IsZeroId(const std::string& id) {
  return std::all_of(id.begin(), id.end(), [](char c) { return c == 0; });
}

bool SameAddr(const v1::SocketAddress& a, const v1::SocketAddress& b) {
  return !a.address().empty() && a.port() != 0 && a.address() == b.address() && a.port() == b.port();
}

class Builder {
 public:
  Builder(const std::vector<StoredSpan>& in, const AssemblerOptions& opt) : in_(in), opt_(opt) {
    out_.spans.resize(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
      auto& a = out_.spans[i];
      a.stored = &in[i];
      a.start_ns = in[i].span.start_unix_ns();
      a.end_ns = std::max(in[i].span.end_unix_ns(), a.start_ns);
      by_id_.emplace(in[i].span.span_id(), static_cast<int>(i));
    }
  }

  AssembledTrace Run() {
    ApplyExplicitParents();
    // Wire-level evidence (sequence numbers, tuples) first, so that a server
    // span tied to its client keeps that edge when an A span moves under it.
    LinkNetworkSpans();
    LinkServerSideSpans();
    ReparentAppServerSpans();
    NestClientSpans();
    BuildChildren();
    AdjustSkew();
    return std::move(out_);
  }

 private:
  const v1::Span& S(int i) const { return in_[static_cast<size_t>(i)].span; }
  const std::string& Host(int i) const { return in_[static_cast<size_t>(i)].host; }
  AssembledSpan& A(int i) { return out_.spans[static_cast<size_t>(i)]; }
  int N() const { return static_cast<int>(in_.size()); }

  // True when `ancestor` is `node` or above it.
  bool IsAncestor(int ancestor, int node) {
    for (int guard = 0; node >= 0 && guard <= N(); ++guard) {
      if (node == ancestor) return true;
      node = A(node).parent;
    }
    return false;
  }

  bool SetParent(int child, int parent, std::string edge, const char* origin) {
    if (parent == child || IsAncestor(child, parent)) return false;  // would make a cycle
    A(child).parent = parent;
    A(child).edge = std::move(edge);
    A(child).edge_origin = origin;
    return true;
  }

  bool Contains(int outer, int inner, uint64_t tol) const {
    const auto& o = S(outer);
    const auto& i = S(inner);
    return o.start_unix_ns() <= i.start_unix_ns() + tol && i.end_unix_ns() <= o.end_unix_ns() + tol;
  }

  uint64_t StartGap(int a, int b) const {
    const uint64_t x = S(a).start_unix_ns(), y = S(b).start_unix_ns();
    return x > y ? x - y : y - x;
  }

  bool SameProcess(int a, int b) const {
    return Host(a) == Host(b) && (S(a).pid() == 0 || S(b).pid() == 0 || S(a).pid() == S(b).pid());
  }

  void ApplyExplicitParents() {
    for (int i = 0; i < N(); ++i) {
      const auto& pid = S(i).parent_span_id();
      if (pid.empty() || IsZeroId(pid)) continue;
      int best = -1;
      auto [lo, hi] = by_id_.equal_range(pid);
      for (auto it = lo; it != hi; ++it) {
        if (it->second == i) continue;
        // Several spans may share an id (an S span adopting an A span's id):
        // prefer the application span, it is the one the sender referred to.
        if (best < 0 || S(it->second).source() == v1::SPAN_SOURCE_APPLICATION) best = it->second;
      }
      if (best < 0) {
        A(i).missing_parent = true;
        continue;
      }
      int reason = S(i).parent_reason();
      std::string edge = reason != v1::LINK_REASON_NONE ? LinkReasonName(reason)
                         : S(i).source() == v1::SPAN_SOURCE_APPLICATION ? "otlp_parent"
                                                                         : "parent_id";
      SetParent(i, best, std::move(edge), "agent");
    }
  }

  // A callee's A SERVER span belongs under the S SERVER span that the agent
  // saw for the same request in the same process: that S span contains it in
  // time. The A span's old parent (usually the caller's client span) becomes
  // the S span's parent when the S span has none.
  void ReparentAppServerSpans() {
    for (int i = 0; i < N(); ++i) {
      const auto& s = S(i);
      if (s.source() != v1::SPAN_SOURCE_APPLICATION || s.kind() != v1::SPAN_KIND_SERVER) continue;
      int best = -1;
      int twin = -1;  // same process, same captured traceparent parent id, overlapping in time
      for (int j = 0; j < N(); ++j) {
        const auto& c = S(j);
        if (j == i || c.source() != v1::SPAN_SOURCE_SYSTEM || c.kind() != v1::SPAN_KIND_SERVER) continue;
        if (!SameProcess(i, j) || IsAncestor(i, j)) continue;
        if (!Contains(j, i, opt_.same_host_tolerance_ns)) {
          // An SDK ends its server span after the response is flushed, often
          // later than the last write syscall by more than the tolerance; the
          // shared traceparent parent id says it is the same request.
          if (c.parent_reason() == v1::LINK_REASON_TRACEPARENT && !IsZeroId(s.parent_span_id()) &&
              c.parent_span_id() == s.parent_span_id() &&
              c.start_unix_ns() <= s.end_unix_ns() + opt_.same_host_tolerance_ns &&
              s.start_unix_ns() <= c.end_unix_ns() + opt_.same_host_tolerance_ns &&
              (twin < 0 || StartGap(j, i) < StartGap(twin, i)))
            twin = j;
          continue;
        }
        if (best < 0 || S(j).end_unix_ns() - S(j).start_unix_ns() <
                            S(best).end_unix_ns() - S(best).start_unix_ns())
          best = j;
      }
      const char* edge = "time_nesting";
      if (best < 0) {
        best = twin;
        edge = "traceparent";
      }
      if (best < 0) continue;
      const int old_parent = A(i).parent;
      const std::string old_edge = A(i).edge;
      const std::string old_origin = A(i).edge_origin;
      if (old_parent == best) {
        continue;
      }
      // Detach i first so the S span may take i's old parent without a cycle.
      A(i).parent = -1;
      if (A(best).parent < 0 && old_parent >= 0) {
        SetParent(best, old_parent, old_edge.empty() ? "otlp_parent" : old_edge, "server");
      }
      if (!SetParent(i, best, edge, "server")) {
        A(i).parent = old_parent;
        A(i).edge = old_edge;
        A(i).edge_origin = old_origin;
      } else if (A(i).missing_parent) {
        A(i).missing_parent = false;
      }
    }
  }

  // Best client-side span for a server-side span of the same request: equal
  // request TCP sequence first, then the same connection tuple close in time.
  int FindClientSide(int i, bool allow_network) {
    const auto& s = S(i);
    int by_seq = -1;
    int by_tuple = -1;
    uint64_t tuple_gap = UINT64_MAX;
    for (int j = 0; j < N(); ++j) {
      if (j == i) continue;
      const auto& c = S(j);
      const bool network = c.source() == v1::SPAN_SOURCE_NETWORK;
      const bool client_side =
          (c.source() == v1::SPAN_SOURCE_SYSTEM && c.kind() == v1::SPAN_KIND_CLIENT) ||
          (allow_network && network);
      if (!client_side || IsAncestor(i, j)) continue;
      if (s.has_request_tcp_seq() && c.has_request_tcp_seq() &&
          s.request_tcp_seq() == c.request_tcp_seq()) {
        // The packet span is nearer to the server than the client's syscall.
        if (by_seq < 0 || network) by_seq = j;
        continue;
      }
      if (SameAddr(s.client(), c.client()) && SameAddr(s.server(), c.server())) {
        uint64_t gap = s.start_unix_ns() > c.start_unix_ns() ? s.start_unix_ns() - c.start_unix_ns()
                                                             : c.start_unix_ns() - s.start_unix_ns();
        if (gap <= opt_.tuple_match_window_ns && gap < tuple_gap) {
          tuple_gap = gap;
          by_tuple = j;
        }
      }
    }
    if (by_seq >= 0) {
      last_edge_ = "tcp_sequence";
      return by_seq;
    }
    last_edge_ = "tuple";
    return by_tuple;
  }

  // N spans (the request on the wire) hang under the S CLIENT span that wrote it.
  void LinkNetworkSpans() {
    for (int i = 0; i < N(); ++i) {
      if (S(i).source() != v1::SPAN_SOURCE_NETWORK || A(i).parent >= 0) continue;
      int j = FindClientSide(i, false);
      if (j >= 0) SetParent(i, j, last_edge_, "server");
    }
  }

  // S SERVER spans without a parent: the client side of the same request.
  void LinkServerSideSpans() {
    for (int i = 0; i < N(); ++i) {
      const auto& s = S(i);
      if (s.source() != v1::SPAN_SOURCE_SYSTEM || s.kind() != v1::SPAN_KIND_SERVER) continue;
      if (A(i).parent >= 0) continue;
      int j = FindClientSide(i, true);
      if (j >= 0 && SetParent(i, j, last_edge_, "server")) A(i).missing_parent = false;
    }
  }

  // S CLIENT spans without a parent: the A CLIENT span (the app's outbound
  // call) or the S SERVER span (the gateway's ingress) of the same process
  // that contains them in time.
  void NestClientSpans() {
    for (int i = 0; i < N(); ++i) {
      const auto& s = S(i);
      if (s.source() != v1::SPAN_SOURCE_SYSTEM || s.kind() != v1::SPAN_KIND_CLIENT) continue;
      if (A(i).parent >= 0) continue;
      int best = -1;
      int best_rank = 3;
      for (int j = 0; j < N(); ++j) {
        if (j == i || !SameProcess(i, j) || !Contains(j, i, opt_.same_host_tolerance_ns)) continue;
        const auto& c = S(j);
        int rank = (c.source() == v1::SPAN_SOURCE_APPLICATION && c.kind() == v1::SPAN_KIND_CLIENT) ? 0
                   : (c.source() == v1::SPAN_SOURCE_SYSTEM && c.kind() == v1::SPAN_KIND_SERVER) ? 1
                                                                                                : 3;
        if (rank >= 3 || IsAncestor(i, j)) continue;
        if (rank < best_rank || (rank == best_rank && S(j).start_unix_ns() > S(best).start_unix_ns())) {
          best = j;
          best_rank = rank;
        }
      }
      if (best >= 0 && SetParent(i, best, "time_nesting", "server")) A(i).missing_parent = false;
    }
  }

  void BuildChildren() {
    auto by_start = [&](int a, int b) {
      if (S(a).start_unix_ns() != S(b).start_unix_ns()) return S(a).start_unix_ns() < S(b).start_unix_ns();
      return a < b;
    };
    for (int i = 0; i < N(); ++i) {
      if (A(i).parent >= 0) A(A(i).parent).children.push_back(i);
      else out_.roots.push_back(i);
    }
    for (auto& a : out_.spans) std::sort(a.children.begin(), a.children.end(), by_start);
    std::sort(out_.roots.begin(), out_.roots.end(), by_start);
  }

  // Depth-first from each root; children from another host that do not fit in
  // their parent are shifted, and the shift carries to their same-host subtree.
  void AdjustSkew() {
    std::vector<int> stack(out_.roots.rbegin(), out_.roots.rend());
    while (!stack.empty()) {
      int i = stack.back();
      stack.pop_back();
      out_.order.push_back(i);
      auto& a = A(i);
      const auto& s = S(i);
      if (a.parent >= 0) {
        const auto& p = A(a.parent);
        a.depth = p.depth + 1;
        int64_t shift = Host(a.parent) == Host(i) ? p.skew_ns : 0;
        if (Host(a.parent) != Host(i) && !Host(i).empty() && !Host(a.parent).empty()) {
          const uint64_t dur = s.end_unix_ns() - std::min(s.end_unix_ns(), s.start_unix_ns());
          const uint64_t pdur = p.end_ns - p.start_ns;
          const int64_t st = static_cast<int64_t>(s.start_unix_ns());
          const bool fits = static_cast<int64_t>(p.start_ns) <= st &&
                            st + static_cast<int64_t>(dur) <= static_cast<int64_t>(p.end_ns);
          if (!fits) {
            const int64_t target = static_cast<int64_t>(p.start_ns) +
                                   (dur <= pdur ? static_cast<int64_t>((pdur - dur) / 2) : 0);
            shift = target - st;
          }
        }
        a.skew_ns = shift;
      }
      a.start_ns = static_cast<uint64_t>(static_cast<int64_t>(s.start_unix_ns()) + a.skew_ns);
      a.end_ns = static_cast<uint64_t>(static_cast<int64_t>(std::max(s.end_unix_ns(), s.start_unix_ns())) +
                                       a.skew_ns);
      if (out_.order.size() == 1 || a.start_ns < out_.start_ns) out_.start_ns = a.start_ns;
      out_.end_ns = std::max(out_.end_ns, a.end_ns);
      for (auto it = a.children.rbegin(); it != a.children.rend(); ++it) stack.push_back(*it);
    }
  }

  const std::vector<StoredSpan>& in_;
  AssemblerOptions opt_;
  AssembledTrace out_;
  std::unordered_multimap<std::string, int> by_id_;
  std::string last_edge_;
};

}  // namespace

AssembledTrace ReferenceAssembleTrace(const std::vector<StoredSpan>& spans, const AssemblerOptions& options) {
  return Builder(spans, options).Run();
}

}  // namespace sonde::server::reference
