#include "agent/trace/linker.h"

#include <algorithm>
#include <vector>

#include "agent/trace/span_builder.h"
#include "agent/trace/trace_headers.h"

namespace sonde::trace {
namespace {

std::string HeaderOr(const protocols::HeaderList& h, std::string_view name) {
  return std::string(FindHeader(h, name).value_or(std::string_view()));
}

std::string_view HostOnly(std::string_view authority) {
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && authority.find(']') == std::string_view::npos) {
    authority = authority.substr(0, colon);
  }
  return authority;
}

// One path is the other with a prefix stripped or added at a segment boundary
// (proxy_pass with a URI, Kong strip_path).
bool SuffixMatch(std::string_view a, std::string_view b) {
  if (a.size() < b.size()) std::swap(a, b);
  if (b.size() < 2 || a.substr(a.size() - b.size()) != b) return false;
  return b.front() == '/' || a[a.size() - b.size() - 1] == '/';
}

}  // namespace


void GatewayLinker::Add(SpanPtr owned, const Emit& emit) {
  Span& span = *owned;
  if (span.kind == SpanKind::kClient) {
    ++counters_.egress;
    Process& proc = processes_[span.pid];
    if (proc.first_seen_ns == 0) proc.first_seen_ns = span.end_unix_ns;
    proc.last_seen_ns = std::max(proc.last_seen_ns, span.end_unix_ns);
    if (!proc.serves && span.end_unix_ns >= proc.first_seen_ns + options_.pure_client_after_ns) {
      ++counters_.unlinked_egress;
      ++counters_.pure_client_egress;
      emit(std::move(owned));
      return;
    }
    const protocols::HeaderList& headers = span.RequestHeaders();
    std::string host(HostOnly(FindHeader(headers, "host").value_or(std::string_view())));
    std::string kong_id = HeaderOr(headers, "x-kong-request-id");
    std::string request_id = HeaderOr(headers, "x-request-id");
    uint64_t hold = proc.serves ? options_.hold_ns : options_.client_only_hold_ns;
    if (proc.serves && !IngressSeen(proc)) {
      hold = std::min(hold, options_.unseen_ingress_hold_ns);
      ++counters_.unseen_ingress_egress;
    }
    const uint64_t deadline = span.end_unix_ns + hold;
    const uint64_t start = span.start_unix_ns, end = span.end_unix_ns;
    proc.egress.push_back(
        Pending{std::move(owned), std::move(host), std::move(kong_id), std::move(request_id), deadline, start, end});
    if (++pending_count_ > options_.max_pending) {
      // Release the globally oldest is costly; release this process's oldest.
      ++counters_.evicted;
      Release(proc.egress.front(), emit);
      proc.egress.pop_front();
      --pending_count_;
    }
    return;
  }
  if (span.kind != SpanKind::kServer) {
    emit(std::move(owned));
    return;
  }
  ++counters_.ingress;
  Process& proc = processes_[span.pid];
  proc.serves = true;
  if (proc.first_seen_ns == 0) proc.first_seen_ns = span.end_unix_ns;
  if (IngressLost(proc) &&
      ++proc.scans_skipped % std::max<uint32_t>(options_.unseen_ingress_scan_every, 1) != 0) {
    ++counters_.unseen_ingress_unscanned;
    emit(std::move(owned));
    return;
  }
  auto& queue = proc.egress;
  // Reused across calls: an ingress span is linked on every request.
  std::vector<size_t>& matched = matched_;
  matched.clear();
  LinkReason reason = LinkReason::kNone;

  // 1-3: exact evidence.
  // Only egress spans that can nest in this ingress are candidates (see
  // Candidates: without a bound every ingress scanned the whole queue, which
  // grows when ingress records are lost -- O(n^2) at the moment the agent can
  // least afford it: 70 % of its CPU in a profile under kernel loss).
  Candidates(queue, span.start_unix_ns);

  const bool ingress_has_context = span.parent_reason == LinkReason::kTraceparent;
  const std::string kong_id = HeaderOr(span.ResponseHeaders(), "x-kong-request-id");
  std::string request_id = HeaderOr(span.RequestHeaders(), "x-request-id");
  if (request_id.empty()) request_id = HeaderOr(span.ResponseHeaders(), "x-request-id");
  for (size_t i : window_) {
    const Pending& e = queue[i];
    LinkReason r = LinkReason::kNone;
    if (ingress_has_context && e.span->parent_reason == LinkReason::kTraceparent &&
        e.span->trace_id == span.trace_id) {
      r = LinkReason::kTraceparent;
    } else if (!kong_id.empty() && e.kong_id == kong_id) {
      r = LinkReason::kKongRequestId;
    } else if (!request_id.empty() && e.request_id == request_id) {
      r = LinkReason::kRequestId;
    }
    if (r == LinkReason::kNone) continue;
    if (reason == LinkReason::kNone || r < reason) {
      matched.clear();
      reason = r;
    }
    if (r == reason) matched.push_back(i);
  }

  // 4: time nesting and path/host similarity.
  if (matched.empty() && !queue.empty()) {
    const std::string* ipath = span.url_path.empty() ? StringAttribute(span, "url.path") : &span.url_path;
    const std::string* iquery = span.url_path.empty() ? StringAttribute(span, "url.query") : &span.url_query;
    const std::string_view ihost = HostOnly(FindHeader(span.RequestHeaders(), "host").value_or(std::string_view()));
    int best = 0;
    for (size_t i : window_) {
      const Pending& e = queue[i];
      if (e.start_ns + options_.nesting_slack_ns < span.start_unix_ns ||
          e.end_ns > span.end_unix_ns + options_.nesting_slack_ns) {
        continue;
      }
      int score = 0;
      if (ipath != nullptr && e.span->url_path == *ipath) {
        score = 4 + ((iquery ? std::string_view(*iquery) : std::string_view()) == e.span->url_query ? 2 : 0);
      } else if (ipath != nullptr && SuffixMatch(*ipath, e.span->url_path)) {
        score = 2;
      }
      if (score > 0 && !ihost.empty() && ihost == e.host) score += 1;
      if (score < 2) continue;
      if (score > best) {
        best = score;
        matched.clear();
      }
      if (score == best) matched.push_back(i);
    }
    // Equal candidates are fine only when they ran one after another (retries);
    // overlapping ones may belong to another request still in flight.
    for (size_t a = 1; a < matched.size(); ++a) {
      const Span& prev = *queue[matched[a - 1]].span;
      const Span& cur = *queue[matched[a]].span;
      if (cur.start_unix_ns < prev.end_unix_ns) {
        ++counters_.ambiguous;
        matched.clear();
        break;
      }
    }
    if (!matched.empty()) reason = LinkReason::kTimeNesting;
  }

  for (size_t idx : matched) Link(span, queue[idx], reason);
  emit(std::move(owned));
  if (matched.empty()) return;
  proc.linked = true;  // egress spans wait the full hold (again)
  proc.timeouts_since_link = 0;
  // Emit linked egress spans (in order), keep the rest waiting, in place.
  size_t m = 0, kept = 0;
  for (size_t i = 0; i < queue.size(); ++i) {
    if (m < matched.size() && matched[m] == i) {
      ++m;
      emit(std::move(queue[i].span));
      --pending_count_;
    } else {
      if (kept != i) queue[kept] = std::move(queue[i]);
      ++kept;
    }
  }
  queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(kept), queue.end());
}

void GatewayLinker::Candidates(const std::deque<Pending>& queue, uint64_t start_ns) {
  // The queue is in arrival (about end-time) order. Walking back from the
  // newest, an egress that ended more than the reorder window before the
  // ingress started cannot be its child; a run of such spans means the rest
  // is older still. A few late arrivals (records completed by a timer) are
  // stepped over, not taken as the end.
  constexpr size_t kOldRunToStop = 64;
  window_.clear();
  size_t old_run = 0;
  for (size_t i = queue.size(); i-- > 0;) {
    if (queue[i].end_ns + options_.reorder_window_ns < start_ns) {
      if (++old_run >= kOldRunToStop) break;
      continue;
    }
    old_run = 0;
    window_.push_back(i);
  }
  std::reverse(window_.begin(), window_.end());
}

void GatewayLinker::Link(Span& ingress, Pending& egress, LinkReason reason) {
  ++counters_.links[static_cast<size_t>(reason)];
  Span& e = *egress.span;
  const bool ingress_has_context = ingress.parent_reason == LinkReason::kTraceparent;
  const bool egress_has_context = e.parent_reason == LinkReason::kTraceparent;
  if (egress_has_context && !ingress_has_context) {
    // The gateway started the trace (e.g. Kong's OpenTelemetry plugin): the
    // ingress joins it instead of keeping a trace of its own.
    ingress.trace_id = e.trace_id;
  }
  if (egress_has_context && e.trace_id == ingress.trace_id &&
      (!ingress_has_context || e.parent_span_id != ingress.parent_span_id)) {
    // An app span of the gateway sits between ingress and egress; keep its edge.
  } else {
    e.trace_id = ingress.trace_id;
    e.parent_span_id = ingress.span_id;
    e.parent_reason = reason;
  }
  e.attributes.push_back({"sonde.link.reason", std::string(LinkReasonName(reason))});
  e.attributes.push_back({"sonde.link.ingress_span_id", ToHex(ingress.span_id)});
}

void GatewayLinker::Release(Pending& p, const Emit& emit) {
  ++counters_.unlinked_egress;
  emit(std::move(p.span));
}

void GatewayLinker::Flush(uint64_t now_unix_ns, const Emit& emit) {
  for (auto it = processes_.begin(); it != processes_.end();) {
    Process& proc = it->second;
    auto& queue = proc.egress;
    // Spans queued under the full hold leave by the short one once the
    // process's ingress turns out unseen (the queue is in about end order).
    auto expired = [&](const Pending& p) {
      if (p.deadline_ns <= now_unix_ns) return true;
      return proc.serves && !IngressSeen(proc) && p.end_ns + options_.unseen_ingress_hold_ns <= now_unix_ns;
    };
    while (!queue.empty() && expired(queue.front())) {
      Release(queue.front(), emit);
      queue.pop_front();
      --pending_count_;
      if (proc.serves && !IngressLost(proc)) ++proc.timeouts_since_link;
    }
    // A client-only process is forgotten once idle (pids are reused); kept
    // while active, so it stays known as a pure client.
    if (queue.empty() && !proc.serves && proc.last_seen_ns + options_.pure_client_after_ns * 10 <= now_unix_ns) {
      it = processes_.erase(it);
    } else {
      ++it;
    }
  }
}

void GatewayLinker::FlushAll(const Emit& emit) {
  for (auto& [pid, proc] : processes_) {
    for (auto& p : proc.egress) Release(p, emit);
    pending_count_ -= proc.egress.size();
    proc.egress.clear();
  }
  processes_.clear();
}

}  // namespace sonde::trace
