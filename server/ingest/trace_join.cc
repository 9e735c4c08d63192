#include "server/ingest/trace_join.h"

#include <arpa/inet.h>

#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

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

bool IsRoot(const v1::Span& s) {
  for (char c : s.parent_span_id()) {
    if (c != 0) return false;
  }
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

const std::string& TraceJoiner::ResolveLocked(const std::string& trace_id) const {
  const std::string* id = &trace_id;
  for (int hops = 0; hops < 8; ++hops) {  // renames chain when joined traces join again
    auto it = renames_.find(*id);
    if (it == renames_.end()) break;
    id = &it->second.to;
  }
  return *id;
}

void TraceJoiner::AddRenameLocked(const std::string& from, const std::string& to, uint64_t now_ns) {
  const uint64_t at = now_ns + options_.delay_ns;
  renames_[from] = Rename{to, at};
  expiry_.push_back(Expiry{2, Key{}, from, at});
}

void TraceJoiner::ExpireLocked(uint64_t now_ns) {
  // Entries replaced or joined since leave stale expiry records: skipped.
  auto drop = [this](const Expiry& e) -> bool {
    if (e.table == 2) {
      auto it = renames_.find(e.trace_id);
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

std::optional<v1::Batch> TraceJoiner::Rewrite(const v1::Batch& batch, uint64_t now_ns) {
  if (!options_.enabled || batch.spans_size() == 0) return std::nullopt;
  std::lock_guard<std::mutex> lock(mu_);
  ExpireLocked(now_ns);
  const uint64_t expires = now_ns + options_.delay_ns;
  std::vector<std::pair<int, std::string>> parents;  // server span index -> its client span id
  for (int i = 0; i < batch.spans_size(); ++i) {
    const v1::Span& span = batch.spans(i);
    Key key;
    if (!KeyOf(span, &key)) continue;
    const std::string& trace = ResolveLocked(span.trace_id());
    if (span.kind() == v1::SPAN_KIND_CLIENT) {
      if (auto it = servers_.find(key); it != servers_.end()) {
        if (CloseInTime(it->second.start_ns, span.start_unix_ns())) {
          // The server side came first: this client's trace joins it (the
          // assembler draws the server span's parent edge).
          const std::string target = ResolveLocked(it->second.trace_id);
          if (target != trace) AddRenameLocked(std::string(trace), target, now_ns);
          servers_.erase(it);
          ++counters_.joins;
          continue;
        }
        ++counters_.skewed;
      }
      clients_.insert_or_assign(key, Side{trace, span.span_id(), span.start_unix_ns(), expires});
      expiry_.push_back(Expiry{0, key, {}, expires});
    } else if (IsRoot(span)) {
      // A server span its agent could not join (the client is elsewhere).
      if (auto it = clients_.find(key); it != clients_.end()) {
        if (CloseInTime(it->second.start_ns, span.start_unix_ns())) {
          const std::string target = ResolveLocked(it->second.trace_id);
          if (target != trace) {
            AddRenameLocked(std::string(trace), target, now_ns);
            parents.emplace_back(i, it->second.span_id);
          }  // else one trace already: the assembler draws the edge (origin "server")
          clients_.erase(it);
          ++counters_.joins;
          continue;
        }
        ++counters_.skewed;
      }
      servers_.insert_or_assign(key, Side{trace, span.span_id(), span.start_unix_ns(), expires});
      expiry_.push_back(Expiry{1, key, {}, expires});
    }
  }
  ExpireLocked(now_ns);  // enforces max_entries after this batch's inserts

  // Apply: every span and request record of a renamed trace, the new edges.
  bool changed = !parents.empty();
  for (int i = 0; i < batch.spans_size() && !changed; ++i) {
    changed = ResolveLocked(batch.spans(i).trace_id()) != batch.spans(i).trace_id();
  }
  for (int i = 0; i < batch.requests_size() && !changed; ++i) {
    changed = !batch.requests(i).trace_id().empty() &&
              ResolveLocked(batch.requests(i).trace_id()) != batch.requests(i).trace_id();
  }
  if (!changed) return std::nullopt;
  std::optional<v1::Batch> out(batch);
  for (auto& span : *out->mutable_spans()) {
    const std::string& to = ResolveLocked(span.trace_id());
    if (to != span.trace_id()) {
      span.set_trace_id(to);
      ++counters_.renamed_spans;
    }
  }
  for (auto& r : *out->mutable_requests()) {
    if (r.trace_id().empty()) continue;
    const std::string& to = ResolveLocked(r.trace_id());
    if (to != r.trace_id()) r.set_trace_id(to);
  }
  for (auto& [index, parent] : parents) {
    v1::Span* s = out->mutable_spans(index);
    s->set_parent_span_id(parent);
    s->set_parent_reason(v1::LINK_REASON_TCP_SEQUENCE);
  }
  return out;
}

absl::StatusOr<bool> JoiningStorage::WriteBatch(const IngestContext& ctx, const v1::Batch& batch) {
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
  std::optional<v1::Batch> joined = joiner_.Rewrite(batch, now);
  return inner_->WriteBatch(ctx, joined ? *joined : batch);
}

}  // namespace sonde::server
