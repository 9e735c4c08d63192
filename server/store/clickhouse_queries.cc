// ClickHouseStorage: the read queries. Span queries prefilter span_chunks
// rows on their summary columns in SQL (the same row format as SQLite,
// span_chunk.h), then decode the rows and check every span exactly
// (span_filters.h). Results come back as RowBinary.
#include <algorithm>
#include <string_view>
#include <unordered_set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/ingest/trace_join.h"
#include "server/store/clickhouse_storage.h"
#include "server/store/span_chunk.h"
#include "server/store/span_filters.h"

namespace sonde::server {
namespace {

using clickhouse::Quote;
using clickhouse::RowReader;
using span_chunk::StatusClassBit;
using span_filters::Line;

// " WHERE a AND b ..." from conditions whose values are already literals.
class Where {
 public:
  void Add(std::string condition) { parts_.push_back(std::move(condition)); }
  std::string sql() const { return parts_.empty() ? "" : absl::StrCat(" WHERE ", absl::StrJoin(parts_, " AND ")); }

 private:
  std::vector<std::string> parts_;
};

// `column` in the range, and the day partitions that can hold it (an open
// end of the range adds no day bound: far-future dates overflow Date).
void AddRange(Where& w, const char* column, const TimeRange& r) {
  w.Add(absl::StrCat(column, " >= ", r.from_ns));
  w.Add(absl::StrCat(column, " <= ", r.to_ns));
  if (r.from_ns > 0) w.Add(absl::StrCat("day >= ", clickhouse::DateLiteral(r.from_ns)));
  if (r.to_ns < 4'000'000'000ull * 1'000'000'000ull) w.Add(absl::StrCat("day <= ", clickhouse::DateLiteral(r.to_ns)));
}

// The "endpoint" text matches the templated endpoint or the request path
// (span_filters::EndpointOrPathMatches): prefilter on both lists.
void AddEndpointOrPath(Where& w, const std::string& text) {
  const std::string needle = Quote(text), full = Quote(span_chunk::kListFull);
  w.Add(absl::StrCat("(position(endpoints, ", needle, ") > 0 OR position(endpoints, ", full,
                     ") > 0 OR position(attrs, ", needle, ") > 0 OR position(attrs, ", full, ") > 0)"));
}

// Row prefilter: `column` lists `needle` (or is marked full).
void AddListed(Where& w, const char* column, std::string_view needle) {
  w.Add(absl::StrCat("(position(", column, ", ", Quote(needle), ") > 0 OR position(", column, ", ",
                     Quote(span_chunk::kListFull), ") > 0)"));
}

std::string QuotedList(const std::vector<std::string>& values) {
  std::string out = "(";
  for (size_t i = 0; i < values.size(); ++i) absl::StrAppend(&out, i ? ", " : "", Quote(values[i]));
  return out + ")";
}

// Rows holding only Sonde's own components' spans (span_filters.h).
void ExcludeSondeOnlyRows(Where& w) {
  w.Add(absl::StrCat("services NOT IN ", QuotedList(span_filters::SondeOnlyServiceLists())));
}

// Reads rows of (data, host) and hands every decoded span to fn(span, host);
// fn returns false to stop. Returns the number of rows read.
template <typename Fn>
size_t ForEachChunkSpan(const std::string& body, Fn&& fn) {
  RowReader r(body);
  v1::Batch batch;
  std::string scratch, host;
  std::string_view data;
  size_t rows = 0;
  while (!r.AtEnd()) {
    if (!r.String(&data) || !r.String(&host)) break;
    ++rows;
    if (!span_chunk::Decode(data, &batch, &scratch)) continue;
    for (auto& sp : *batch.mutable_spans())
      if (!fn(sp, host)) return rows;
  }
  return rows;
}

StoredSpan TakeSpan(v1::Span& span, const std::string& host) {
  StoredSpan s;
  s.span.Swap(&span);
  s.host = host;
  return s;
}

// Rows of (detail, host) as stored windows.
template <typename StoredWindow>
std::vector<StoredWindow> DecodeWindows(const std::string& body) {
  std::vector<StoredWindow> out;
  RowReader r(body);
  std::string_view detail;
  while (!r.AtEnd()) {
    StoredWindow w;
    if (!r.String(&detail) || !r.String(&w.host)) break;
    if (!w.window.ParseFromArray(detail.data(), static_cast<int>(detail.size()))) continue;
    out.push_back(std::move(w));
  }
  return out;
}

constexpr size_t kPageRows = 2000;
constexpr size_t kMaxScannedRows = 1'000'000;  // a search reads at most this many rows

}  // namespace

absl::StatusOr<std::vector<EndpointSummary>> ClickHouseStorage::Endpoints(const EndpointQuery& q) {
  // From the per-second rollup: the range is widened to whole seconds.
  Where w;
  w.Add(absl::StrCat("second >= ", q.range.from_ns / 1'000'000'000));
  w.Add(absl::StrCat("second <= ", q.range.to_ns / 1'000'000'000));
  if (q.service) w.Add(absl::StrCat("service = ", Quote(*q.service)));
  if (q.source) w.Add(absl::StrCat("source = ", *q.source));
  if (q.kind) w.Add(absl::StrCat("kind = ", *q.kind));
  auto body = client_->Query(absl::StrCat(
      "SELECT service, endpoint, source, kind, toUInt64(sum(count)) AS c, toUInt64(sum(errors)), "
      "toUInt64(sum(dur_sum)), toUInt64(max(dur_max)) FROM span_rollup",
      w.sql(), " GROUP BY service, endpoint, source, kind ORDER BY c DESC LIMIT 2000 FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  std::vector<EndpointSummary> out;
  RowReader r(*body);
  while (!r.AtEnd()) {
    EndpointSummary e;
    uint8_t source = 0, kind = 0;
    if (!r.String(&e.service) || !r.String(&e.endpoint) || !r.U8(&source) || !r.U8(&kind) || !r.U64(&e.count) ||
        !r.U64(&e.errors) || !r.U64(&e.duration_sum_ns) || !r.U64(&e.duration_max_ns))
      return absl::DataLossError("clickhouse: short endpoints result");
    e.source = source;
    e.kind = kind;
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::vector<TraceSummary>> ClickHouseStorage::SearchTraces(const TraceQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  const bool span_filters = q.service || q.endpoint || q.http_status || q.status_class || q.error ||
                            q.min_duration_ns || !q.attributes.empty() || !q.self.include;
  if (!q.self.include) ExcludeSondeOnlyRows(w);
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddEndpointOrPath(w, *q.endpoint);
  if (q.http_status) w.Add(absl::StrCat("bitAnd(status_classes, ", StatusClassBit(*q.http_status), ") != 0"));
  if (q.status_class)
    w.Add(absl::StrCat("bitAnd(status_classes, ", StatusClassBit(*q.status_class * 100), ") != 0"));
  if (q.error) w.Add(*q.error ? "errors > 0" : "errors < n");
  if (q.min_duration_ns) w.Add(absl::StrCat("max_dur >= ", *q.min_duration_ns));
  for (const auto& a : q.attributes) AddListed(w, "attrs", Line(absl::StrCat(a.key, "=", a.value)));

  const size_t limit = static_cast<size_t>(std::max(q.limit, 0));
  std::vector<std::string> ids;
  if (limit == 0) return std::vector<TraceSummary>{};
  if (!span_filters) {
    // Newest traces in the range, in SQL.
    auto body = client_->Query(absl::StrCat("SELECT trace_id, max(start_ns) AS m FROM span_chunks", w.sql(),
                                            " GROUP BY trace_id ORDER BY m DESC LIMIT ", limit, " FORMAT RowBinary"));
    if (!body.ok()) return body.status();
    RowReader r(*body);
    std::string id;
    uint64_t m = 0;
    while (!r.AtEnd() && r.String(&id) && r.U64(&m)) ids.push_back(id);
  } else {
    // Newest rows first, page by page, until `limit` traces have a span
    // matching every filter. Pages grow from a few times `limit` rows: the
    // default search (no filter but Sonde's own traffic left out) usually
    // finds its traces in the first, small page.
    std::unordered_set<std::string> seen;
    v1::Batch batch;
    std::string scratch;
    size_t page = std::min(kPageRows, std::max<size_t>(limit * 4, 200));
    for (size_t offset = 0; ids.size() < limit && offset < kMaxScannedRows;
         offset += page, page = std::min(kPageRows, page * 2)) {
      auto body = client_->Query(absl::StrCat("SELECT trace_id, data FROM span_chunks", w.sql(),
                                              " ORDER BY start_ns DESC LIMIT ", page, " OFFSET ", offset,
                                              " FORMAT RowBinary"));
      if (!body.ok()) return body.status();
      RowReader r(*body);
      size_t rows = 0;
      std::string id;
      std::string_view data;
      while (!r.AtEnd() && ids.size() < limit && r.String(&id) && r.String(&data)) {
        ++rows;
        if (seen.count(id) || !span_chunk::Decode(data, &batch, &scratch)) continue;
        const auto& spans = batch.spans();
        if (std::none_of(spans.begin(), spans.end(),
                         [&](const v1::Span& sp) { return span_filters::MatchesTraceQuery(sp, q); }))
          continue;
        seen.insert(id);
        ids.push_back(id);
      }
      if (rows < page) break;
    }
  }
  if (ids.empty()) return std::vector<TraceSummary>{};
  // A root server span joined at read time into its client's trace (another
  // agent's, maybe stored by another replica) is one trace: listed once,
  // under the client side's id, when both sides matched.
  if (ids.size() > 1) {
    const std::string listed = QuotedList(ids);
    auto joined = client_->Query(absl::StrCat(
        "SELECT DISTINCT st FROM (SELECT key, trace_id AS ct, start_ns AS cs FROM exchanges WHERE kind = ",
        static_cast<int>(v1::SPAN_KIND_CLIENT), " AND trace_id IN ", listed,
        ") ALL INNER JOIN (SELECT key, trace_id AS st, start_ns AS ss FROM exchanges WHERE kind = ",
        static_cast<int>(v1::SPAN_KIND_SERVER), " AND root = 1 AND trace_id IN ", listed,
        ") USING key WHERE st != ct AND (cs > ss ? cs - ss : ss - cs) <= ", TraceJoinOptions{}.max_skew_ns,
        " FORMAT RowBinary"));
    if (!joined.ok()) return joined.status();
    std::unordered_set<std::string> server_sides;
    RowReader jr(*joined);
    std::string st;
    while (!jr.AtEnd() && jr.String(&st)) server_sides.insert(st);
    std::erase_if(ids, [&](const std::string& id) { return server_sides.count(id) != 0; });
  }

  // Summaries from the rows' columns (no decoding), in the traces' window.
  const std::string in = QuotedList(ids);
  auto window = client_->Query(absl::StrCat("SELECT min(start_ns), max(start_ns) FROM trace_index WHERE trace_id IN ",
                                            in, " FORMAT RowBinary"));
  if (!window.ok()) return window.status();
  uint64_t from = 0, to = 0;
  RowReader wr(*window);
  if (!wr.U64(&from) || !wr.U64(&to)) return absl::DataLossError("clickhouse: short trace window");
  Where rows_where;
  AddRange(rows_where, "start_ns", {from, to});
  rows_where.Add(absl::StrCat("trace_id IN ", in));
  auto body = client_->Query(absl::StrCat(
      "SELECT trace_id, start_ns, end_ns, n, errors, sources, root_parented, root_start, root_dur, root_service, "
      "root_endpoint FROM span_chunks",
      rows_where.sql(), " FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  struct Acc {
    TraceSummary t;
    int sources = 0;
    bool have_root = false;
    uint8_t root_parented = 0;
    uint64_t root_start = 0, root_dur = 0;
  };
  std::unordered_map<std::string, Acc> acc;
  RowReader r(*body);
  while (!r.AtEnd()) {
    std::string id, service, endpoint;
    uint64_t start = 0, end = 0, s0 = 0, d = 0;
    uint32_t n = 0, errors = 0;
    uint16_t sources = 0;
    uint8_t p = 0;
    if (!r.String(&id) || !r.U64(&start) || !r.U64(&end) || !r.U32(&n) || !r.U32(&errors) || !r.U16(&sources) ||
        !r.U8(&p) || !r.U64(&s0) || !r.U64(&d) || !r.String(&service) || !r.String(&endpoint))
      return absl::DataLossError("clickhouse: short trace summary result");
    auto [it, fresh] = acc.try_emplace(id);
    Acc& a = it->second;
    if (fresh) a.t.start_ns = UINT64_MAX;
    a.t.start_ns = std::min(a.t.start_ns, start);
    a.t.end_ns = std::max(a.t.end_ns, end);
    a.t.span_count += n;
    a.t.error_count += errors;
    a.sources |= sources;
    // Root: no parent first, then earliest, then longest (as at ingest).
    if (!a.have_root ||
        (p != a.root_parented ? p < a.root_parented : (s0 != a.root_start ? s0 < a.root_start : d > a.root_dur))) {
      a.have_root = true;
      a.root_parented = p, a.root_start = s0, a.root_dur = d;
      a.t.root_service = std::move(service);
      a.t.root_endpoint = std::move(endpoint);
    }
  }
  std::vector<TraceSummary> out;
  for (const auto& id : ids) {
    auto it = acc.find(id);
    if (it == acc.end()) continue;
    TraceSummary t = std::move(it->second.t);
    t.trace_id = HexEncode(id);
    for (int src = 1; src <= 3; ++src)
      if (it->second.sources & (1 << src)) t.sources += "?ASN"[src];
    out.push_back(std::move(t));
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TraceSummary& a, const TraceSummary& b) { return a.start_ns > b.start_ns; });
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> ClickHouseStorage::TraceSpans(const std::string& trace_id) {
  // The trace's time window from the index sorted by trace id, then only
  // that window of span_chunks.
  auto window = client_->Query(absl::StrCat("SELECT min(start_ns), max(start_ns), count() FROM trace_index "
                                            "WHERE trace_id = ", Quote(trace_id), " FORMAT RowBinary"));
  if (!window.ok()) return window.status();
  uint64_t from = 0, to = 0, n = 0;
  RowReader wr(*window);
  if (!wr.U64(&from) || !wr.U64(&to) || !wr.U64(&n)) return absl::DataLossError("clickhouse: short trace window");
  std::vector<StoredSpan> out;
  if (n == 0) return out;
  Where w;
  AddRange(w, "start_ns", {from, to});
  w.Add(absl::StrCat("trace_id = ", Quote(trace_id)));
  auto body = client_->Query(absl::StrCat("SELECT data, host FROM span_chunks", w.sql(), " FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  ForEachChunkSpan(*body, [&](v1::Span& sp, const std::string& host) {
    out.push_back(TakeSpan(sp, host));
    return true;
  });
  return out;
}

absl::StatusOr<std::vector<StoredSpan>> ClickHouseStorage::Trace(const std::string& trace_id) {
  auto spans = TraceSpans(trace_id);
  if (!spans.ok()) return spans.status();
  absl::Status st = JoinOtherSides(trace_id, &*spans);
  if (!st.ok()) return st;
  std::stable_sort(spans->begin(), spans->end(), [](const StoredSpan& a, const StoredSpan& b) {
    return a.span.start_unix_ns() < b.span.start_unix_ns();
  });
  return spans;
}

absl::StatusOr<std::vector<StoredSpan>> ClickHouseStorage::RequestLog(const RequestLogQuery& q) {
  // Captured exchanges (system and network spans), newest rows first.
  constexpr int kCaptured = (1 << v1::SPAN_SOURCE_SYSTEM) | (1 << v1::SPAN_SOURCE_NETWORK);
  Where w;
  AddRange(w, "start_ns", q.range);
  w.Add(absl::StrCat("bitAnd(sources, ", kCaptured, ") != 0"));
  if (!q.self.include) ExcludeSondeOnlyRows(w);
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddEndpointOrPath(w, *q.endpoint);
  if (q.status_class)
    w.Add(absl::StrCat("bitAnd(status_classes, ", StatusClassBit(*q.status_class * 100), ") != 0"));
  if (q.kind) w.Add(absl::StrCat("bitAnd(kinds, ", 1 << (*q.kind & 15), ") != 0"));
  const size_t limit = static_cast<size_t>(std::max(q.limit, 0));
  std::vector<StoredSpan> out;
  for (size_t offset = 0; out.size() < limit && offset < kMaxScannedRows; offset += kPageRows) {
    auto body = client_->Query(absl::StrCat("SELECT data, host FROM span_chunks", w.sql(),
                                            " ORDER BY start_ns DESC LIMIT ", kPageRows, " OFFSET ", offset,
                                            " FORMAT RowBinary"));
    if (!body.ok()) return body.status();
    const size_t rows = ForEachChunkSpan(*body, [&](v1::Span& sp, const std::string& host) {
      if (out.size() >= limit) return false;
      if (span_filters::MatchesRequestLog(sp, q)) out.push_back(TakeSpan(sp, host));
      return true;
    });
    if (rows < kPageRows) break;
  }
  std::stable_sort(out.begin(), out.end(), [](const StoredSpan& a, const StoredSpan& b) {
    return a.span.start_unix_ns() > b.span.start_unix_ns();
  });
  if (out.size() > limit) out.resize(limit);
  return out;
}

absl::StatusOr<std::vector<v1::RequestRecord>> ClickHouseStorage::RequestRecords(const RequestLogQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add(absl::StrCat("comm = ", Quote(*q.service)));
  if (!q.self.include) w.Add("comm NOT IN ('sonde-server', 'sonde-agent')");  // span_filters::IsSondeComponent
  if (q.endpoint) w.Add(absl::StrCat("position(path, ", Quote(*q.endpoint), ") > 0"));
  if (q.status_class)
    w.Add(absl::StrCat("status >= ", *q.status_class * 100, " AND status < ", *q.status_class * 100 + 100));
  auto body = client_->Query(absl::StrCat("SELECT detail FROM requests", w.sql(), " ORDER BY start_ns DESC LIMIT ",
                                          std::max(q.limit, 0), " FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  std::vector<v1::RequestRecord> out;
  RowReader r(*body);
  std::string_view detail;
  while (!r.AtEnd() && r.String(&detail)) {
    v1::RequestRecord rec;
    if (rec.ParseFromArray(detail.data(), static_cast<int>(detail.size()))) out.push_back(std::move(rec));
  }
  return out;
}

absl::StatusOr<std::vector<StoredRedWindow>> ClickHouseStorage::RedWindows(const RedQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) w.Add(absl::StrCat("service = ", Quote(*q.service)));
  if (q.endpoint) w.Add(absl::StrCat("endpoint = ", Quote(*q.endpoint)));
  auto body = client_->Query(
      absl::StrCat("SELECT detail, host FROM red", w.sql(), " ORDER BY start_ns LIMIT 200000 FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  return DecodeWindows<StoredRedWindow>(*body);
}

absl::StatusOr<std::vector<SpanSample>> ClickHouseStorage::SpanSamples(const RedQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.service) AddListed(w, "services", Line(*q.service));
  if (q.endpoint) AddListed(w, "endpoints", Line(*q.endpoint));
  if (q.kind) w.Add(absl::StrCat("bitAnd(kinds, ", 1 << (*q.kind & 15), ") != 0"));
  auto body = client_->Query(absl::StrCat("SELECT data, host FROM span_chunks", w.sql(), " FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  std::vector<SpanSample> out;
  ForEachChunkSpan(*body, [&](v1::Span& sp, const std::string&) {
    if (!span_filters::MatchesRedQuery(sp, q)) return true;
    out.push_back({sp.start_unix_ns(), span_chunk::DurationOf(sp), span_chunk::IsError(sp)});
    return out.size() < 2'000'000;
  });
  return out;
}

absl::StatusOr<std::vector<StoredTcpWindow>> ClickHouseStorage::TcpWindows(const TcpQuery& q) {
  Where w;
  AddRange(w, "start_ns", q.range);
  if (q.server_address) w.Add(absl::StrCat("server_addr = ", Quote(*q.server_address)));
  if (q.server_port) w.Add(absl::StrCat("server_port = ", *q.server_port));
  auto body = client_->Query(
      absl::StrCat("SELECT detail, host FROM tcp", w.sql(), " ORDER BY start_ns LIMIT 200000 FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  return DecodeWindows<StoredTcpWindow>(*body);
}

absl::StatusOr<std::vector<StackValue>> ClickHouseStorage::Stacks(const ProfileQuery& q) {
  Where w;
  w.Add(absl::StrCat("kind = ", q.kind));
  // A window overlaps the range.
  w.Add(absl::StrCat("start_ns <= ", q.range.to_ns));
  w.Add(absl::StrCat("end_ns >= ", q.range.from_ns));
  if (q.pid) w.Add(absl::StrCat("pid = ", *q.pid));
  if (q.host) w.Add(absl::StrCat("host = ", Quote(*q.host)));
  auto body = client_->Query(
      absl::StrCat("SELECT stack, toUInt64(sum(value)) FROM stacks", w.sql(), " GROUP BY stack FORMAT RowBinary"));
  if (!body.ok()) return body.status();
  std::vector<StackValue> out;
  RowReader r(*body);
  while (!r.AtEnd()) {
    StackValue s;
    if (!r.String(&s.stack) || !r.U64(&s.value)) return absl::DataLossError("clickhouse: short stacks result");
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<std::vector<ProcessRow>> ClickHouseStorage::Processes() {
  // The latest row per (host, pid): rows are only ever appended.
  auto body = client_->Query(
      "SELECT host, argMax(detail, last_seen_ns), max(last_seen_ns) FROM processes GROUP BY host, pid "
      "ORDER BY host, pid FORMAT RowBinary");
  if (!body.ok()) return body.status();
  std::vector<ProcessRow> out;
  RowReader r(*body);
  std::string_view detail;
  while (!r.AtEnd()) {
    ProcessRow p;
    if (!r.String(&p.host) || !r.String(&detail) || !r.U64(&p.last_seen_ns))
      return absl::DataLossError("clickhouse: short processes result");
    (void)p.info.ParseFromArray(detail.data(), static_cast<int>(detail.size()));  // a damaged detail still lists it
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace sonde::server
