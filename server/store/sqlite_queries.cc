// SqliteStorage: the read queries, each on a pooled read-only connection.
// Span queries prefilter span_chunks rows on their summary columns in SQL,
// then decode the rows and check every span exactly (span_chunk.h).
#include <algorithm>
#include <string_view>
#include <unordered_set>
#include <variant>

#include "absl/strings/str_cat.h"
#include "server/store/span_chunk.h"
#include "server/store/span_filters.h"
#include "server/store/sqlite_storage_internal.h"

namespace sonde::server {
namespace {

using span_chunk::DurationOf;
using span_chunk::EndpointOf;
using span_chunk::IsError;
using span_chunk::ServiceOf;
using span_chunk::StatusClassBit;
using span_filters::EndpointOrPathMatches;
using span_filters::InRange;
using span_filters::Line;
using span_filters::MatchesTraceQuery;
using span_filters::StatusInClass;

// Builds "WHERE ..." clauses whose values are bound in order.
class Where {
 public:
  using Value = std::variant<int64_t, std::string>;
  void Add(std::string clause, std::vector<Value> values = {}) {
    sql_ += sql_.empty() ? " WHERE " : " AND ";
    sql_ += clause;
    for (auto& v : values) values_.push_back(std::move(v));
  }
  const std::string& sql() const { return sql_; }
  // Binds from index `first`; returns the next free index.
  int Bind(sqlite::Statement& st, int first = 1) const {
    int i = first;
    for (const auto& v : values_) {
      if (const auto* n = std::get_if<int64_t>(&v)) st.Bind(i++, *n);
      else st.Bind(i++, std::get<std::string>(v));
    }
    return i;
  }

 private:
  std::string sql_;
  std::vector<Value> values_;
};

void AddRange(Where& w, const char* column, const TimeRange& r) {
  w.Add(absl::StrCat(column, " >= ?"), {I64(r.from_ns)});
  w.Add(absl::StrCat(column, " <= ?"), {I64(r.to_ns)});
}

// Row prefilter: `column` lists `needle` (or is marked full).
void AddListed(Where& w, const char* column, std::string needle) {
  w.Add(absl::StrCat("(instr(", column, ", ?) > 0 OR instr(", column, ", '",
                     std::string(span_chunk::kListFull), "') > 0)"),
        {std::move(needle)});
}

// Rows holding only Sonde's own components' spans (span_filters.h).
void ExcludeSondeOnlyRows(Where& w) {
  const auto& lists = span_filters::SondeOnlyServiceLists();
  w.Add("services NOT IN (?, ?, ?, ?)", {lists[0], lists[1], lists[2], lists[3]});
}

// The "endpoint" search text is what the user typed: it matches the
// templated endpoint ("GET /users/{id}") or the request path ("/users/42").
void AddEndpointOrPath(Where& w, const std::string& text) {
  const std::string full(span_chunk::kListFull);
  w.Add(absl::StrCat("(instr(endpoints, ?) > 0 OR instr(endpoints, '", full, "') > 0 OR instr(attrs, ?) > 0 OR ",
                     "instr(attrs, '", full, "') > 0)"),
        {text, text});  // prefilter only: every span is checked exactly
}

// Runs `st` and decodes every row into a Row with `decode(row, &item)`, which
// returns false to leave a row out (e.g. a damaged proto).
template <typename Row, typename Decode>
absl::StatusOr<std::vector<Row>> DecodeRows(sqlite::Statement& st, Decode&& decode) {
  std::vector<Row> out;
  RETURN_IF_ERROR(ForEachRow(st, [&](const sqlite::Statement& row) {
    Row item;
    if (decode(row, &item)) out.push_back(std::move(item));
    return true;
  }));
  return out;
}

// Row decoder for (detail, host) columns: the agent's window message and the
// host that sent it (StoredRedWindow, StoredTcpWindow).
template <typename StoredWindow>
bool DecodeWindowAndHost(const sqlite::Statement& row, StoredWindow* out) {
  if (!ParseColumn(row, 0, &out->window)) return false;
  out->host = row.Text(1);
  return true;
}

// Runs a span_chunks query whose first columns are (data, host) and hands
// every decoded span to `fn(span, host)`; fn returns false to stop.
template <typename Fn>
absl::Status ForEachChunkSpan(sqlite::Statement& st, Fn&& fn) {
  v1::Batch batch;
  std::string scratch;
  return ForEachRow(st, [&](const sqlite::Statement& row) {
    if (!span_chunk::Decode(row.BlobView(0), &batch, &scratch)) return true;
    const std::string host = row.Text(1);
    for (auto& sp : *batch.mutable_spans())
      if (!fn(sp, host)) return false;
    return true;
  });
}

StoredSpan TakeSpan(v1::Span& span, const std::string& host) {
  StoredSpan s;
  s.span.Swap(&span);
  s.host = host;
  return s;
}

}  // namespace

absl::StatusOr<std::vector<EndpointSummary>> SqliteStorage::Endpoints(const EndpointQuery& q) {
  // From the per-second rollup: the range is widened to whole seconds.
  Where w;
  w.Add("second >= ?", {I64(q.range.from_ns / 1'000'000'000)});
  w.Add("second <= ?", {I64(q.range.to_ns / 1'000'000'000)});
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.source) w.Add("source = ?", {int64_t{*q.source}});
  if (q.kind) w.Add("kind = ?", {int64_t{*q.kind}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat(
      "SELECT service, endpoint, source, kind, SUM(count) AS c, SUM(errors), SUM(dur_sum), "
      "MAX(dur_max) FROM span_rollup", w.sql(),
      " GROUP BY service, endpoint, source, kind ORDER BY c DESC LIMIT 2000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  return DecodeRows<EndpointSummary>(*st, [](const sqlite::Statement& row, EndpointSummary* e) {
    e->service = row.Text(0);
    e->endpoint = row.Text(1);
    e->source = static_cast<int>(row.Int(2));
    e->kind = static_cast<int>(row.Int(3));
    e->count = static_cast<uint64_t>(row.Int(4));
    e->errors = static_cast<uint64_t>(row.Int(5));
    e->duration_sum_ns = static_cast<uint64_t>(row.Int(6));
    e->duration_max_ns = static_cast<uint64_t>(row.Int(7));
    return true;
  });
}

absl::StatusOr<std::vector<TraceSummary>> SqliteStorage::SearchTraces(const TraceQuery& q) {
  // Rows whose first span starts in the range, newest first; rows that cannot
  // hold a matching span are skipped in SQL, the others decoded and checked
  // span by span (all filters must match one span).
  Where w;
  AddRange(w, "start_ns", q.range);
  const bool span_filters = q.service || q.endpoint || q.http_status || q.status_class ||
                            q.error || q.min_duration_ns || !q.attributes.empty() || !q.self.include;
  if (!q.self.include) ExcludeSondeOnlyRows(w);
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddEndpointOrPath(w, *q.endpoint);
  if (q.http_status)
    w.Add("(status_classes & ?) != 0", {int64_t{StatusClassBit(*q.http_status)}});
  if (q.status_class)
    w.Add("(status_classes & ?) != 0", {int64_t{StatusClassBit(*q.status_class * 100)}});
  if (q.error) w.Add(*q.error ? "errors > 0" : "errors < n");
  if (q.min_duration_ns) w.Add("max_dur >= ?", {I64(*q.min_duration_ns)});
  for (const auto& a : q.attributes) AddListed(w, "attrs", Line(absl::StrCat(a.key, "=", a.value)));
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT trace_id", span_filters ? ", data" : "",
                                        " FROM span_chunks", w.sql(), " ORDER BY start_ns DESC"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  const size_t limit = static_cast<size_t>(std::max(q.limit, 0));
  std::vector<std::string> ids;
  std::unordered_set<std::string> seen;
  v1::Batch batch;
  std::string scratch;
  if (limit > 0) {
    RETURN_IF_ERROR(ForEachRow(*st, [&](const sqlite::Statement& row) {
      std::string id = row.Blob(0);
      if (seen.count(id)) return true;
      if (span_filters) {
        if (!span_chunk::Decode(row.BlobView(1), &batch, &scratch)) return true;
        const auto& spans = batch.spans();
        if (std::none_of(spans.begin(), spans.end(),
                         [&](const v1::Span& sp) { return MatchesTraceQuery(sp, q); }))
          return true;
      }
      seen.insert(id);
      ids.push_back(std::move(id));
      return ids.size() < limit;
    }));
  }
  *st = sqlite::Statement();  // finalize before the next statement
  // Summaries from the rows' columns (no decoding).
  auto agg = (*db)->Prepare(
      "SELECT start_ns, end_ns, n, errors, sources, root_parented, root_start, root_dur, "
      "root_service, root_endpoint FROM span_chunks WHERE trace_id = ?");
  if (!agg.ok()) return agg.status();
  std::vector<TraceSummary> out;
  for (const auto& id : ids) {
    TraceSummary t;
    t.trace_id = HexEncode(id);
    t.start_ns = UINT64_MAX;
    int sources = 0;
    bool have_root = false;
    int64_t root_parented = 0, root_start = 0, root_dur = 0;
    agg->BindBlob(1, id);
    RETURN_IF_ERROR(ForEachRow(*agg, [&](const sqlite::Statement& row) {
      t.start_ns = std::min(t.start_ns, static_cast<uint64_t>(row.Int(0)));
      t.end_ns = std::max(t.end_ns, static_cast<uint64_t>(row.Int(1)));
      t.span_count += static_cast<uint64_t>(row.Int(2));
      t.error_count += static_cast<uint64_t>(row.Int(3));
      sources |= static_cast<int>(row.Int(4));
      // Root: no parent first, then earliest, then longest (as at ingest).
      const int64_t p = row.Int(5), s0 = row.Int(6), d = row.Int(7);
      if (!have_root || (p != root_parented ? p < root_parented
                                            : (s0 != root_start ? s0 < root_start : d > root_dur))) {
        have_root = true;
        root_parented = p, root_start = s0, root_dur = d;
        t.root_service = row.Text(8);
        t.root_endpoint = row.Text(9);
      }
      return true;
    }));
    agg->Reset();
    if (t.start_ns == UINT64_MAX) t.start_ns = 0;
    for (int src = 1; src <= 3; ++src)
      if (sources & (1 << src)) t.sources += "?ASN"[src];
    out.push_back(std::move(t));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TraceSummary& a, const TraceSummary& b) { return a.start_ns > b.start_ns; });
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> SqliteStorage::Trace(const std::string& trace_id) {
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare("SELECT data, host FROM span_chunks WHERE trace_id = ?");
  if (!st.ok()) return st.status();
  st->BindBlob(1, trace_id);
  std::vector<StoredSpan> out;
  RETURN_IF_ERROR(ForEachChunkSpan(*st, [&](v1::Span& sp, const std::string& host) {
    out.push_back(TakeSpan(sp, host));
    return true;
  }));
  std::stable_sort(out.begin(), out.end(), [](const StoredSpan& a, const StoredSpan& b) {
    return a.span.start_unix_ns() < b.span.start_unix_ns();
  });
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> SqliteStorage::RequestLog(const RequestLogQuery& q) {
  // Captured exchanges (system and network spans), newest rows first.
  constexpr int kCaptured = (1 << v1::SPAN_SOURCE_SYSTEM) | (1 << v1::SPAN_SOURCE_NETWORK);
  Where w;
  AddRange(w, "start_ns", q.range);
  w.Add("(sources & ?) != 0", {int64_t{kCaptured}});
  if (!q.self.include) ExcludeSondeOnlyRows(w);
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddEndpointOrPath(w, *q.endpoint);
  if (q.status_class)
    w.Add("(status_classes & ?) != 0", {int64_t{StatusClassBit(*q.status_class * 100)}});
  if (q.kind) w.Add("(kinds & ?) != 0", {int64_t{1 << (*q.kind & 15)}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT data, host FROM span_chunks", w.sql(), " ORDER BY start_ns DESC"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  const size_t limit = static_cast<size_t>(std::max(q.limit, 0));
  std::vector<StoredSpan> out;
  RETURN_IF_ERROR(ForEachChunkSpan(*st, [&](v1::Span& sp, const std::string& host) {
    if (out.size() >= limit) return false;  // checked per span: the last row is completed
    if (span_filters::MatchesRequestLog(sp, q)) out.push_back(TakeSpan(sp, host));
    return true;
  }));
  std::stable_sort(out.begin(), out.end(), [](const StoredSpan& a, const StoredSpan& b) {
    return a.span.start_unix_ns() > b.span.start_unix_ns();
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

absl::StatusOr<std::vector<v1::RequestRecord>> SqliteStorage::RequestRecords(
    const RequestLogQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("comm = ?", {*q.service});
  if (!q.self.include) w.Add("comm NOT IN ('sonde-server', 'sonde-agent')");  // span_filters::IsSondeComponent
  if (q.endpoint) w.Add("instr(path, ?) > 0", {*q.endpoint});
  if (q.status_class)
    w.Add("status >= ? AND status < ?",
          {int64_t{*q.status_class} * 100, int64_t{*q.status_class} * 100 + 100});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT detail FROM requests", w.sql(), " ORDER BY start_ns DESC LIMIT ?"));
  if (!st.ok()) return st.status();
  st->Bind(w.Bind(*st), q.limit);
  return DecodeRows<v1::RequestRecord>(
      *st, [](const sqlite::Statement& row, v1::RequestRecord* r) { return ParseColumn(row, 0, r); });
}

absl::StatusOr<std::vector<StoredRedWindow>> SqliteStorage::RedWindows(const RedQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add("service = ?", {*q.service});
  if (q.endpoint) w.Add("endpoint = ?", {*q.endpoint});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT detail, host FROM red", w.sql(),
                                        " ORDER BY start_ns LIMIT 200000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  return DecodeRows<StoredRedWindow>(*st, DecodeWindowAndHost<StoredRedWindow>);
}

absl::StatusOr<std::vector<SpanSample>> SqliteStorage::SpanSamples(const RedQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddListed(w, "endpoints", Line(*q.endpoint));
  if (q.kind) w.Add("(kinds & ?) != 0", {int64_t{1 << (*q.kind & 15)}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT data, host FROM span_chunks", w.sql()));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  std::vector<SpanSample> out;
  RETURN_IF_ERROR(ForEachChunkSpan(*st, [&](v1::Span& sp, const std::string&) {
    if (!InRange(sp, q.range)) return true;
    if (q.service && ServiceOf(sp) != *q.service) return true;
    if (q.endpoint && EndpointOf(sp) != *q.endpoint) return true;
    if (q.kind && static_cast<int>(sp.kind()) != *q.kind) return true;
    out.push_back({sp.start_unix_ns(), DurationOf(sp), IsError(sp)});
    return out.size() < 2'000'000;
  }));
  return out;
}

absl::StatusOr<std::vector<StoredTcpWindow>> SqliteStorage::TcpWindows(const TcpQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.server_address) w.Add("server_addr = ?", {*q.server_address});
  if (q.server_port) w.Add("server_port = ?", {int64_t{*q.server_port}});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(absl::StrCat("SELECT detail, host FROM tcp", w.sql(),
                                        " ORDER BY start_ns LIMIT 200000"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  return DecodeRows<StoredTcpWindow>(*st, DecodeWindowAndHost<StoredTcpWindow>);
}

absl::StatusOr<std::vector<StackValue>> SqliteStorage::Stacks(const ProfileQuery& q) {
  Where w;
  w.Add("kind = ?", {int64_t{q.kind}});
  // A window overlaps the range.
  w.Add("start_ns <= ?", {I64(q.range.to_ns)});
  w.Add("end_ns >= ?", {I64(q.range.from_ns)});
  if (q.pid) w.Add("pid = ?", {int64_t{*q.pid}});
  if (q.host) w.Add("host = ?", {*q.host});
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare(
      absl::StrCat("SELECT stack, SUM(value) FROM stacks", w.sql(), " GROUP BY stack"));
  if (!st.ok()) return st.status();
  w.Bind(*st);
  return DecodeRows<StackValue>(*st, [](const sqlite::Statement& row, StackValue* s) {
    *s = {row.Text(0), static_cast<uint64_t>(row.Int(1))};
    return true;
  });
}

absl::StatusOr<std::vector<ProcessRow>> SqliteStorage::Processes() {
  auto db = AcquireReader();
  if (!db.ok()) return db.status();
  auto st = (*db)->Prepare("SELECT host, detail, last_seen_ns FROM processes ORDER BY host, pid");
  if (!st.ok()) return st.status();
  return DecodeRows<ProcessRow>(*st, [](const sqlite::Statement& row, ProcessRow* p) {
    p->host = row.Text(0);
    (void)ParseColumn(row, 1, &p->info);  // a damaged detail still lists the process
    p->last_seen_ns = static_cast<uint64_t>(row.Int(2));
    return true;
  });
}

}  // namespace sonde::server
