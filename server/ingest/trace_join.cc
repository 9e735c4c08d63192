#include "server/ingest/trace_join.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/hash/hash.h"

namespace sonde::server {
namespace {

bool ParseAddress(const std::string& text, std::array<uint8_t, 16>* out) {
  out->fill(0);
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    (*out)[10] = (*out)[11] = 0xff;  // v4-mapped: dual-stack peers agree
    std::memcpy(out->data() + 12, &v4, 4);
    return true;
  }
  return inet_pton(AF_INET6, text.c_str(), out->data()) == 1;
}

constexpr size_t kMaxPerProcess = 4096;       // remembered server spans per process and source
constexpr uint64_t kStartSlackNs = 1'000'000;   // the SDK starts its span after the request was read
constexpr uint64_t kEndSlackNs = 50'000'000;    // ... and may end it after the response was flushed

std::string_view UrlPath(const v1::Span& s) {
  for (const auto& a : s.attributes()) {
    if ((a.key() == "url.path" || a.key() == "http.target") && a.value_case() == v1::Attribute::kStringValue) {
      std::string_view v = a.string_value();
      return v.substr(0, v.find('?'));
    }
  }
  return {};
}

bool IsRoot(const v1::Span& s) {
  for (char c : s.parent_span_id()) {
    if (c != 0) return false;
  }
  return true;
}

// The S server span `sys` holds the A server span `app` (same process);
// paths compared by hash (0: unknown).
bool Holds(uint64_t sys_start, uint64_t sys_end, uint64_t sys_path, uint64_t app_start, uint64_t app_end,
           uint64_t app_path) {
  if (app_start + kStartSlackNs < sys_start || app_end > sys_end + kEndSlackNs) return false;
  return sys_path == 0 || app_path == 0 || sys_path == app_path;
}

uint64_t PathHash(std::string_view path) {
  if (path.empty()) return 0;
  const uint64_t h = absl::HashOf(path);
  return h == 0 ? 1 : h;
}

template <size_t N>
bool ToBytes(const std::string& s, std::array<char, N>* out) {
  if (s.size() != N) return false;
  std::memcpy(out->data(), s.data(), N);
  return true;
}

}  // namespace

bool TraceJoiner::KeyOf(const v1::Span& span, Key* key) {
  if (span.source() != v1::SPAN_SOURCE_SYSTEM || !span.has_request_tcp_seq() || !span.has_client()) return false;
  if (span.kind() != v1::SPAN_KIND_CLIENT && span.kind() != v1::SPAN_KIND_SERVER) return false;
  if (span.client().port() == 0 || !ParseAddress(span.client().address(), &key->client_addr)) return false;
  key->client_port = span.client().port();
  key->seq = span.request_tcp_seq();
  return true;
}

size_t TraceJoiner::entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return clients_.size() + servers_.size() + renames_.size();
}

bool TraceJoiner::CloseInTime(uint64_t a, uint64_t b) const {
  return (a > b ? a - b : b - a) <= options_.max_skew_ns;
}

TraceJoiner::TraceBytes TraceJoiner::ResolveLocked(const TraceBytes& trace) const {
  TraceBytes id = trace;
  for (int hops = 0; hops < 8; ++hops) {  // renames chain when joined traces join again
    auto it = renames_.find(id);
    if (it == renames_.end()) break;
    id = it->second.to;
  }
  return id;
}

void TraceJoiner::AddRenameLocked(const TraceBytes& from, const TraceBytes& to, uint64_t now_ns) {
  const uint64_t at = now_ns + options_.delay_ns;
  renames_[from] = Rename{to, at};
  expiry_.push_back(Expiry{2, Key{}, from, at});
}

void TraceJoiner::ExpireLocked(uint64_t now_ns) {
  // Entries replaced or joined since leave stale expiry records: skipped.
  auto drop = [this](const Expiry& e) -> bool {
    if (e.table == 2) {
      auto it = renames_.find(e.trace);
      if (it == renames_.end() || it->second.expires_ns != e.at_ns) return false;
      renames_.erase(it);
      return true;
    }
    auto& table = e.table == 0 ? clients_ : servers_;
    auto it = table.find(e.key);
    if (it == table.end() || it->second.expires_ns != e.at_ns) return false;
    table.erase(it);
    return true;
  };
  while (!expiry_.empty() && expiry_.front().at_ns <= now_ns) {
    drop(expiry_.front());
    expiry_.pop_front();
  }
  // At the bound (checked after each batch's inserts) the oldest go first.
  while (!expiry_.empty() && clients_.size() + servers_.size() + renames_.size() > options_.max_entries) {
    if (drop(expiry_.front())) ++counters_.evicted;
    expiry_.pop_front();
  }
}

// Processes come and go: forget those with nothing recent.
void TraceJoiner::SweepProcessesLocked(uint64_t now_ns) {
  processes_ = 0;
  for (auto it = hosts_.begin(); it != hosts_.end();) {
    absl::erase_if(it->second, [now_ns](const auto& p) {
      const ProcessSpans& ps = p.second;
      return (ps.system.empty() || ps.system.back().expires_ns <= now_ns) &&
             (ps.app.empty() || ps.app.back().expires_ns <= now_ns);
    });
    processes_ += it->second.size();
    if (it->second.empty()) {
      hosts_.erase(it++);
    } else {
      ++it;
    }
  }
}

void TraceJoiner::JoinApplicationLocked(const v1::Span& span, HostProcesses& host, const TraceBytes& trace,
                                        uint64_t now_ns) {
  const bool app = span.source() == v1::SPAN_SOURCE_APPLICATION;
  auto [proc_it, added] = host.try_emplace(span.pid());
  if (added) ++processes_;
  ProcessSpans& proc = proc_it->second;
  const uint64_t path = PathHash(UrlPath(span));
  const uint64_t expires = now_ns + options_.delay_ns;
  while (!proc.system.empty() && proc.system.front().expires_ns <= now_ns) proc.system.pop_front();
  while (!proc.app.empty() && proc.app.front().expires_ns <= now_ns) proc.app.pop_front();
  // The other source's spans that could be this request's.
  auto& others = app ? proc.system : proc.app;
  int found = -1, candidates = 0;
  for (size_t i = 0; i < others.size(); ++i) {
    const ProcessSpan& o = others[i];
    const bool holds = app ? Holds(o.start_ns, o.end_ns, o.path_hash, span.start_unix_ns(), span.end_unix_ns(), path)
                           : Holds(span.start_unix_ns(), span.end_unix_ns(), path, o.start_ns, o.end_ns, o.path_hash);
    if (holds) {
      found = static_cast<int>(i);
      ++candidates;
    }
  }
  if (candidates == 1) {
    const TraceBytes target = ResolveLocked(others[static_cast<size_t>(found)].trace);
    if (target != trace) AddRenameLocked(trace, target, now_ns);
    ++counters_.app_joins;
    if (app) return;                                  // joined: not waiting
    others.erase(others.begin() + found);             // an A span is joined once
  } else if (candidates > 1) {
    ++counters_.app_ambiguous;
  }
  auto& mine = app ? proc.app : proc.system;
  mine.push_back(ProcessSpan{trace, path, span.start_unix_ns(), span.end_unix_ns(), expires});
  if (mine.size() > kMaxPerProcess) {
    mine.pop_front();
    ++counters_.evicted;
  }
}

std::optional<v1::Batch> TraceJoiner::Rewrite(const v1::Batch& batch, uint64_t now_ns, const std::string& host) {
  if (!options_.enabled || batch.spans_size() == 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLocked(now_ns);
  const uint64_t expires = now_ns + options_.delay_ns;
  if (processes_ > kMaxPerProcess) SweepProcessesLocked(now_ns);
  HostProcesses& host_processes = hosts_[host];  // one lookup per batch
  std::vector<std::pair<int, SpanBytes>> parents;  // server span index -> its client span id
  for (int i = 0; i < batch.spans_size(); ++i) {
    const v1::Span& span = batch.spans(i);
    TraceBytes own;
    if (!ToBytes(span.trace_id(), &own)) continue;  // not a 16-byte id: no part in the join
    // A request's S server span and the SDK's root A server span of it.
    if (span.kind() == v1::SPAN_KIND_SERVER && span.pid() != 0 &&
        (span.source() == v1::SPAN_SOURCE_SYSTEM ||
         (span.source() == v1::SPAN_SOURCE_APPLICATION && IsRoot(span)))) {
      JoinApplicationLocked(span, host_processes, ResolveLocked(own), now_ns);
    }
    Key key;
    SpanBytes span_id;
    if (!KeyOf(span, &key) || !ToBytes(span.span_id(), &span_id)) continue;
    const TraceBytes trace = ResolveLocked(own);
    if (span.kind() == v1::SPAN_KIND_CLIENT) {
      if (auto it = servers_.find(key); it != servers_.end()) {
        if (CloseInTime(it->second.start_ns, span.start_unix_ns())) {
          // The server side came first: this client's trace joins it (the
          // assembler draws the server span's parent edge).
          const TraceBytes target = ResolveLocked(it->second.trace);
          if (target != trace) AddRenameLocked(trace, target, now_ns);
          servers_.erase(it);
          ++counters_.joins;
          continue;
        }
        ++counters_.skewed;
      }
      clients_.insert_or_assign(key, Side{trace, span_id, span.start_unix_ns(), expires});
      expiry_.push_back(Expiry{0, key, {}, expires});
    } else if (IsRoot(span)) {
      // A server span its agent could not join (the client is elsewhere).
      if (auto it = clients_.find(key); it != clients_.end()) {
        if (CloseInTime(it->second.start_ns, span.start_unix_ns())) {
          const TraceBytes target = ResolveLocked(it->second.trace);
          if (target != trace) {
            AddRenameLocked(trace, target, now_ns);
            parents.emplace_back(i, it->second.span);
          }  // else one trace already: the assembler draws the edge (origin "server")
          clients_.erase(it);
          ++counters_.joins;
          continue;
        }
        ++counters_.skewed;
      }
      servers_.insert_or_assign(key, Side{trace, span_id, span.start_unix_ns(), expires});
      expiry_.push_back(Expiry{1, key, {}, expires});
    }
  }
  ExpireLocked(now_ns);  // enforces max_entries after this batch's inserts

  // Apply: every span and request record of a renamed trace, the new edges.
  auto renamed = [this](const std::string& id, TraceBytes* to) {
    TraceBytes b;
    if (renames_.empty() || !ToBytes(id, &b)) return false;
    *to = ResolveLocked(b);
    return *to != b;
  };
  TraceBytes to;
  bool changed = !parents.empty();
  for (int i = 0; i < batch.spans_size() && !changed; ++i) changed = renamed(batch.spans(i).trace_id(), &to);
  for (int i = 0; i < batch.requests_size() && !changed; ++i) changed = renamed(batch.requests(i).trace_id(), &to);
  if (!changed) return std::nullopt;
  std::optional<v1::Batch> out(batch);
  for (auto& span : *out->mutable_spans()) {
    if (renamed(span.trace_id(), &to)) {
      span.set_trace_id(to.data(), to.size());
      ++counters_.renamed_spans;
    }
  }
  for (auto& r : *out->mutable_requests()) {
    if (renamed(r.trace_id(), &to)) r.set_trace_id(to.data(), to.size());
  }
  for (auto& [index, parent] : parents) {
    v1::Span* s = out->mutable_spans(index);
    s->set_parent_span_id(parent.data(), parent.size());
    s->set_parent_reason(v1::LINK_REASON_TCP_SEQUENCE);
  }
  return out;
}

absl::StatusOr<bool> JoiningStorage::WriteBatch(const IngestContext& ctx, const v1::Batch& batch) {
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::optional<v1::Batch> joined = joiner_.Rewrite(batch, now, ctx.host);
  return inner_->WriteBatch(ctx, joined ? *joined : batch);
}

}  // namespace sonde::server
