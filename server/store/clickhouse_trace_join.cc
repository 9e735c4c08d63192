// ClickHouseStorage: the trace join across agents at read time. The write
// side join (server/ingest/trace_join.h) renames traces only when one
// replica sees both sides within its delay; with several replicas the client
// and server sides of one exchange may be stored by different replicas. So
// every system client / root server span's exchange key (client endpoint +
// request TCP sequence, TraceJoiner::KeyOf) is stored in `exchanges`, and a
// trace lookup pulls in the traces holding the other side of its exchanges:
// their spans are returned under the looked-up trace id, a root server span
// gets its client span as parent (LINK_REASON_TCP_SEQUENCE). Chains across
// several nodes are followed up to kMaxHops traces deep.
#include <set>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "server/ingest/trace_join.h"
#include "server/store/clickhouse_storage.h"
#include "server/store/span_chunk.h"

namespace sonde::server {

std::string ExchangeKeyBytes(const TraceJoiner::Key& k);  // clickhouse_writes.cc

namespace {

constexpr int kMaxHops = 4;
constexpr uint64_t kMaxSkewNs = TraceJoinOptions{}.max_skew_ns;

bool CloseInTime(uint64_t a, uint64_t b) { return (a > b ? a - b : b - a) <= kMaxSkewNs; }

struct Side {
  std::string trace_id, span_id;
  uint8_t kind = 0, root = 0;
  uint64_t start_ns = 0;
};

}  // namespace

absl::Status ClickHouseStorage::JoinOtherSides(const std::string& trace_id, std::vector<StoredSpan>* spans) {
  std::set<std::string> traces = {trace_id};
  std::set<std::string> asked;  // keys looked up already
  size_t scanned = 0;           // spans of `*spans` whose keys were collected
  for (int hop = 0; hop < kMaxHops; ++hop) {
    // This round's keys: of the spans added last round.
    std::unordered_map<std::string, size_t> ours;  // key -> index in *spans
    for (; scanned < spans->size(); ++scanned) {
      const v1::Span& sp = (*spans)[scanned].span;
      TraceJoiner::Key key;
      if (!TraceJoiner::KeyOf(sp, &key)) continue;
      std::string bytes = ExchangeKeyBytes(key);
      if (asked.insert(bytes).second) ours.emplace(std::move(bytes), scanned);
    }
    if (ours.empty()) return absl::OkStatus();
    std::string keys, known;
    for (const auto& [k, i] : ours) absl::StrAppend(&keys, keys.empty() ? "" : ", ", clickhouse::Quote(k));
    for (const auto& t : traces) absl::StrAppend(&known, known.empty() ? "" : ", ", clickhouse::Quote(t));
    auto body = client_->Query(absl::StrCat("SELECT key, trace_id, span_id, kind, root, start_ns FROM exchanges "
                                            "WHERE key IN (", keys, ") AND trace_id NOT IN (", known,
                                            ") FORMAT RowBinary"));
    if (!body.ok()) return body.status();
    clickhouse::RowReader r(*body);
    // Other traces to pull in, with the parent edges to set in them.
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> joins;  // trace -> (span, parent)
    while (!r.AtEnd()) {
      std::string key;
      Side other;
      if (!r.String(&key) || !r.String(&other.trace_id) || !r.String(&other.span_id) || !r.U8(&other.kind) ||
          !r.U8(&other.root) || !r.U64(&other.start_ns))
        return absl::DataLossError("clickhouse: short exchanges result");
      auto it = ours.find(key);
      if (it == ours.end()) continue;
      v1::Span& mine = (*spans)[it->second].span;
      if (!CloseInTime(mine.start_unix_ns(), other.start_ns)) continue;
      if (mine.kind() == v1::SPAN_KIND_CLIENT && other.kind == v1::SPAN_KIND_SERVER && other.root) {
        joins[other.trace_id].emplace_back(other.span_id, mine.span_id());
      } else if (mine.kind() == v1::SPAN_KIND_SERVER && other.kind == v1::SPAN_KIND_CLIENT) {
        joins[other.trace_id];
        if (!span_chunk::HasParent(mine)) {
          mine.set_parent_span_id(other.span_id);
          mine.set_parent_reason(v1::LINK_REASON_TCP_SEQUENCE);
        }
      }
    }
    if (joins.empty()) return absl::OkStatus();
    for (auto& [other_trace, edges] : joins) {
      if (!traces.insert(other_trace).second) continue;
      auto more = TraceSpans(other_trace);
      if (!more.ok()) return more.status();
      for (auto& s : *more) {
        s.span.set_trace_id(trace_id);
        for (const auto& [span_id, parent] : edges) {
          if (s.span.span_id() == span_id && !span_chunk::HasParent(s.span)) {
            s.span.set_parent_span_id(parent);
            s.span.set_parent_reason(v1::LINK_REASON_TCP_SEQUENCE);
          }
        }
        spans->push_back(std::move(s));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace sonde::server
