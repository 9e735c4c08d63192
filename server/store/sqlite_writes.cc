// SqliteStorage: ingest. One transaction per batch through the writer's
// persistent statements; spans become one span_chunks row per trace id.
#include <algorithm>
#include <chrono>
#include <numeric>
#include <string_view>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "server/store/span_chunk.h"
#include "server/store/sqlite_storage_internal.h"

namespace sonde::server {

// Per-span facts by their short names; row-format operations keep the
// span_chunk:: prefix.
using span_chunk::DurationOf;
using span_chunk::EndpointOf;
using span_chunk::HasParent;
using span_chunk::IsError;
using span_chunk::ServiceOf;
using span_chunk::StatusClassBit;

absl::Status SqliteStorage::PrepareWriteStatementsLocked() {
  stmts_ = std::make_unique<WriteStatements>();
  auto prep = [&](sqlite::Statement* out, const char* sql) -> absl::Status {
    auto p = writer_->Prepare(sql, true);
    if (!p.ok()) return p.status();
    *out = std::move(*p);
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(prep(&stmts_->begin, "BEGIN IMMEDIATE"));
  RETURN_IF_ERROR(prep(&stmts_->commit, "COMMIT"));
  RETURN_IF_ERROR(prep(&stmts_->rollback, "ROLLBACK"));
  RETURN_IF_ERROR(prep(&stmts_->get_progress,
                       "SELECT last_sequence FROM ingest_progress WHERE instance_id = ?"));
  RETURN_IF_ERROR(prep(&stmts_->put_progress,
                       "INSERT INTO ingest_progress(instance_id, node_id, host, last_sequence, "
                       "last_seen_ns) VALUES (?,?,?,?,?) ON CONFLICT(instance_id) DO UPDATE SET "
                       "last_sequence = excluded.last_sequence, last_seen_ns = excluded.last_seen_ns"));
  RETURN_IF_ERROR(prep(&stmts_->chunk,
                       "INSERT INTO span_chunks(trace_id, start_ns, end_ns, host, n, errors, "
                       "sources, kinds, status_classes, max_dur, root_parented, root_start, "
                       "root_dur, root_service, root_endpoint, services, endpoints, attrs, data) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->rollup,
                       "INSERT INTO span_rollup(second, service, endpoint, source, kind, count, "
                       "errors, dur_sum, dur_max) VALUES (?,?,?,?,?,?,?,?,?) "
                       "ON CONFLICT(second, service, endpoint, source, kind) DO UPDATE SET "
                       "count = count + excluded.count, errors = errors + excluded.errors, "
                       "dur_sum = dur_sum + excluded.dur_sum, "
                       "dur_max = max(dur_max, excluded.dur_max)"));
  RETURN_IF_ERROR(prep(&stmts_->count_spans,
                       "UPDATE counters SET value = value + ? WHERE key = 'spans'"));
  RETURN_IF_ERROR(prep(&stmts_->request,
                       "INSERT INTO requests(start_ns, comm, path, status, host, detail) "
                       "VALUES (?,?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->red,
                       "INSERT INTO red(start_ns, service, endpoint, host, detail) VALUES (?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->tcp,
                       "INSERT INTO tcp(start_ns, server_addr, server_port, host, detail) "
                       "VALUES (?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->stack,
                       "INSERT INTO stacks(start_ns, end_ns, host, pid, tid, comm, kind, stack, "
                       "count, value) VALUES (?,?,?,?,?,?,?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->otlp,
                       "INSERT INTO otlp(received_ns, host, signal, payload) VALUES (?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->process,
                       "INSERT OR REPLACE INTO processes(host, pid, last_seen_ns, detail) "
                       "VALUES (?,?,?,?)"));
  RETURN_IF_ERROR(prep(&stmts_->host,
                       "INSERT OR REPLACE INTO hosts(host, last_seen_ns, detail) VALUES (?,?,?)"));
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteStorage::WriteBatch(const IngestContext& ctx, const v1::Batch& batch) {
  std::lock_guard lock(write_mu_);
  auto& s = *stmts_;
  RETURN_IF_ERROR(s.begin.Run());
  if (batch.sequence() != 0 && !ctx.instance_id.empty()) {
    s.get_progress.Bind(1, ctx.instance_id);
    auto row = s.get_progress.Step();
    const bool known = row.ok() && *row;
    const uint64_t last = known ? static_cast<uint64_t>(s.get_progress.Int(0)) : 0;
    bool duplicate = known && last >= batch.sequence();
    s.get_progress.Reset();
    if (known && ctx.max_sequence_jump != 0 && batch.sequence() - last > ctx.max_sequence_jump &&
        batch.sequence() > last) {
      (void)s.rollback.Run();
      return absl::InvalidArgumentError(absl::StrCat("sequence ", batch.sequence(), " jumps more than ",
                                                     ctx.max_sequence_jump, " past the last stored ", last));
    }
    if (!row.ok() || duplicate) {
      (void)s.rollback.Run();
      if (!row.ok()) return row.status();
      ++stats_.duplicate_batches;
      return false;
    }
  }
  absl::Status st = InsertBatchLocked(ctx, batch);
  if (!st.ok()) {
    (void)s.rollback.Run();
    return st;
  }
  st = s.commit.Run();
  if (!st.ok()) {
    (void)s.rollback.Run();
    return st;
  }
  ++stats_.batches;
  stats_.spans += static_cast<uint64_t>(batch.spans_size());
  return true;
}

absl::Status SqliteStorage::InsertBatchLocked(const IngestContext& ctx, const v1::Batch& batch) {
  auto& s = *stmts_;
  const uint64_t now = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(
          std::chrono::system_clock::now().time_since_epoch()).count());
  if (batch.spans_size() > 0) {
    RETURN_IF_ERROR(InsertSpansLocked(ctx.host, batch.spans().data(),
                                      static_cast<size_t>(batch.spans_size())));
    s.count_spans.Bind(1, int64_t{batch.spans_size()});
    RETURN_IF_ERROR(s.count_spans.Run());
  }
  std::string detail;
  for (const auto& r : batch.requests()) {
    auto& st = s.request;
    st.Bind(1, I64(r.start_unix_ns()));
    st.Bind(2, r.comm());
    st.Bind(3, r.path());
    st.Bind(4, r.status());
    st.Bind(5, ctx.host);
    r.SerializeToString(&detail);
    st.BindBlob(6, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& r : batch.red()) {
    auto& st = s.red;
    st.Bind(1, I64(r.window_start_unix_ns()));
    st.Bind(2, r.service_name().empty() ? r.comm() : r.service_name());
    st.Bind(3, r.endpoint());
    st.Bind(4, ctx.host);
    r.SerializeToString(&detail);
    st.BindBlob(5, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& t : batch.tcp()) {
    auto& st = s.tcp;
    st.Bind(1, I64(t.window_start_unix_ns()));
    st.Bind(2, t.server().address());
    st.Bind(3, t.server().port());
    st.Bind(4, ctx.host);
    t.SerializeToString(&detail);
    st.BindBlob(5, detail);
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& f : batch.profile().stacks()) {
    auto& st = s.stack;
    st.Bind(1, I64(f.window_start_unix_ns()));
    st.Bind(2, I64(f.window_end_unix_ns()));
    st.Bind(3, ctx.host);
    st.Bind(4, f.pid());
    st.Bind(5, f.tid());
    st.Bind(6, f.comm());
    st.Bind(7, static_cast<int>(f.kind()));
    st.Bind(8, f.stack());
    st.Bind(9, I64(f.count()));
    st.Bind(10, I64(f.value() ? f.value() : f.count()));
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& o : batch.otlp()) {
    auto& st = s.otlp;
    st.Bind(1, I64(o.received_unix_ns() ? o.received_unix_ns() : now));
    st.Bind(2, ctx.host);
    st.Bind(3, static_cast<int>(o.signal()));
    st.BindBlob(4, o.payload());
    RETURN_IF_ERROR(st.Run());
  }
  for (const auto& p : batch.processes()) {
    auto& st = s.process;
    st.Bind(1, ctx.host);
    st.Bind(2, p.pid());
    st.Bind(3, I64(now));
    p.SerializeToString(&detail);
    st.BindBlob(4, detail);
    RETURN_IF_ERROR(st.Run());
  }
  if (batch.has_host()) {
    auto& st = s.host;
    st.Bind(1, batch.host().host_name().empty() ? ctx.host : batch.host().host_name());
    st.Bind(2, I64(now));
    batch.host().SerializeToString(&detail);
    st.BindBlob(3, detail);
    RETURN_IF_ERROR(st.Run());
  }
  if (batch.sequence() != 0 && !ctx.instance_id.empty()) {
    auto& st = s.put_progress;
    st.Bind(1, ctx.instance_id);
    st.Bind(2, ctx.node_id);
    st.Bind(3, ctx.host);
    st.Bind(4, I64(batch.sequence()));
    st.Bind(5, I64(now));
    RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

// One row per trace id of the batch (spans of one trace keep the agent's
// order), and the per-second rollup aggregated in memory first.
absl::Status SqliteStorage::InsertSpansLocked(const std::string& host, const v1::Span* const* spans,
                                              size_t n) {
  auto& s = *stmts_;
  auto& order = s.order;
  order.resize(n);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    return spans[a]->trace_id() < spans[b]->trace_id();
  });

  span_chunk::Rollup rollup;
  span_chunk::RowSummary row;

  for (size_t i = 0; i < n;) {
    const std::string& trace_id = spans[order[i]]->trace_id();
    size_t j = i;
    while (j < n && spans[order[j]]->trace_id() == trace_id) ++j;

    span_chunk::StartData(&s.data);
    row.Reset();
    for (size_t k = i; k < j; ++k) {
      const v1::Span& sp = *spans[order[k]];
      span_chunk::AppendSpan(sp, &s.data);
      row.Add(sp);
      rollup.Add(sp);
    }
    row.Finish();
    const v1::Span* root = row.root;

    const std::string_view blob =
        options_.compress_spans
            ? span_chunk::Compress(s.data, s.zstd.get(), options_.zstd_level, &s.packed)
            : std::string_view(s.data);

    auto& st = s.chunk;
    st.BindBlobNoCopy(1, trace_id);
    st.Bind(2, I64(row.start));
    st.Bind(3, I64(row.end));
    st.BindTextNoCopy(4, host);
    st.Bind(5, static_cast<int64_t>(j - i));
    st.Bind(6, I64(row.errors));
    st.Bind(7, row.sources);
    st.Bind(8, row.kinds);
    st.Bind(9, row.status_classes);
    st.Bind(10, I64(row.max_dur));
    st.Bind(11, HasParent(*root) ? 1 : 0);
    st.Bind(12, I64(root->start_unix_ns()));
    st.Bind(13, I64(DurationOf(*root)));
    st.BindTextNoCopy(14, ServiceOf(*root));
    st.BindTextNoCopy(15, EndpointOf(*root));
    st.BindTextNoCopy(16, row.services);
    st.BindTextNoCopy(17, row.endpoints);
    st.BindTextNoCopy(18, row.attrs);
    st.BindBlobNoCopy(19, blob);
    RETURN_IF_ERROR(st.Run());
    i = j;
  }

  for (const auto& [key, r] : rollup.rows()) {
    auto& st = s.rollup;
    st.Bind(1, I64(r.second));
    st.BindTextNoCopy(2, r.service);
    st.BindTextNoCopy(3, r.endpoint);
    st.Bind(4, r.source);
    st.Bind(5, r.kind);
    st.Bind(6, I64(r.count));
    st.Bind(7, I64(r.errors));
    st.Bind(8, I64(r.dur_sum));
    st.Bind(9, I64(r.dur_max));
    RETURN_IF_ERROR(st.Run());
  }
  return absl::OkStatus();
}

}  // namespace sonde::server
