// ClickHouseStorage: ingest. A batch with an agent instance and sequence is
// first claimed in the `batches` table, so that a batch resent to another
// replica after a failover is stored once:
//   1. a stored batch (state 1) with this or a later sequence: a duplicate;
//   2. a live claim (state 0, younger than claim_timeout, not released with
//      state 2) by another replica: that replica is storing it, the agent
//      gets UNAVAILABLE and resends later;
//   3. otherwise this replica inserts its claim and reads the claims again:
//      when another replica claimed too (both arrived at once), both back
//      off, so at most one ever stores it;
//   4. the rows are inserted (RowBinary, one insert per table), then the
//      batch is marked stored.
// ClickHouse 18.16 has no insert deduplication token (22.x) and no
// deduplication for non-replicated MergeTree (20.x): hence the claims. A
// replica dying between 4's inserts leaves a partial batch that the resend
// completes after claim_timeout (its rows may then be there twice).
// Concurrent WriteBatch calls run in parallel (no lock: ClickHouse orders
// inserts).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>
#include <string_view>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "server/ingest/trace_join.h"
#include "server/store/clickhouse_storage.h"
#include "server/store/span_chunk.h"

namespace sonde::server {
namespace {

using span_chunk::DurationOf;
using span_chunk::EndpointOf;
using span_chunk::HasParent;
using span_chunk::IsError;
using span_chunk::ServiceOf;
using span_chunk::StatusClassBit;

uint64_t WallNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

constexpr uint8_t kClaimed = 0, kStored = 1, kReleased = 2;

}  // namespace

// The 24-byte exchange key (address, port, sequence) of TraceJoiner::Key.
std::string ExchangeKeyBytes(const TraceJoiner::Key& k) {
  std::string out(reinterpret_cast<const char*>(k.client_addr.data()), k.client_addr.size());
  for (uint32_t v : {k.client_port, k.seq})
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return out;
}

absl::StatusOr<bool> ClickHouseStorage::WriteBatch(const IngestContext& ctx, const v1::Batch& batch) {
  const uint64_t now = WallNs();
  const bool dedup = batch.sequence() != 0 && !ctx.instance_id.empty();
  if (dedup) {
    auto claim = ClaimBatch(ctx, batch.sequence(), now);
    if (!claim.ok()) return claim.status();
    if (*claim == Claim::kDuplicate) {
      ++duplicates_;
      return false;
    }
    if (*claim == Claim::kBusy) {
      return absl::UnavailableError(
          absl::StrCat("batch ", batch.sequence(), " of instance ", ctx.instance_id,
                       " is being stored by another server replica; resend later"));
    }
  }
  absl::Status st = InsertBatch(ctx, batch, now);
  if (!st.ok()) {
    if (dedup) (void)MarkBatch(ctx, batch.sequence(), kReleased, now);  // others need not wait
    return st;
  }
  if (dedup) {
    st = MarkBatch(ctx, batch.sequence(), kStored, now);
    if (!st.ok()) return st;
  }
  ++batches_;
  spans_ += static_cast<uint64_t>(batch.spans_size());
  return true;
}

absl::Status ClickHouseStorage::MarkBatch(const IngestContext& ctx, uint64_t sequence, uint8_t state,
                                          uint64_t now_ns) {
  clickhouse::RowWriter w;
  w.Date(now_ns);
  w.String(ctx.instance_id);
  w.U64(sequence);
  w.U8(state);
  w.String(replica_id_);
  w.U64(now_ns);
  w.String(ctx.node_id);
  w.String(ctx.host);
  return client_->InsertRowBinary("batches", "day, instance_id, sequence, state, replica, at_ns, node_id, host",
                                  w.data());
}

absl::StatusOr<ClickHouseStorage::Claim> ClickHouseStorage::ClaimBatch(const IngestContext& ctx,
                                                                      uint64_t sequence, uint64_t now_ns) {
  const std::string instance = clickhouse::Quote(ctx.instance_id);
  const uint64_t live_after = now_ns > options_.claim_timeout_ns ? now_ns - options_.claim_timeout_ns : 0;
  // Claims by other replicas still live (not stored, not released, recent).
  auto others_claiming = [&](const std::string& rows, bool* stored) -> bool {
    clickhouse::RowReader r(rows);
    std::vector<std::string> claimed, released;
    *stored = false;
    while (!r.AtEnd()) {
      uint8_t state = 0;
      uint64_t seq = 0, at = 0;
      std::string replica;
      if (!r.U8(&state) || !r.U64(&seq) || !r.String(&replica) || !r.U64(&at)) break;
      if (state == kStored) *stored = true;
      if (seq != sequence || replica == replica_id_) continue;
      if (state == kClaimed && at >= live_after) claimed.push_back(replica);
      if (state == kReleased) released.push_back(replica);
    }
    return std::any_of(claimed.begin(), claimed.end(), [&](const std::string& c) {
      return std::find(released.begin(), released.end(), c) == released.end();
    });
  };

  // 1 + 2: stored at or after this sequence, or claimed by another replica.
  auto rows = client_->Query(absl::StrCat("SELECT state, sequence, replica, at_ns FROM batches WHERE instance_id = ",
                                          instance, " AND sequence >= ", sequence, " FORMAT RowBinary"));
  if (!rows.ok()) return rows.status();
  bool stored = false;
  const bool busy = others_claiming(*rows, &stored);
  if (stored) return Claim::kDuplicate;
  if (busy) return Claim::kBusy;

  // A sequence far past the instance's last stored one would make its real
  // next batches look like duplicates (IngestContext::max_sequence_jump).
  if (ctx.max_sequence_jump != 0 && sequence > ctx.max_sequence_jump) {
    auto last = client_->Query(absl::StrCat("SELECT toUInt64(max(sequence)), toUInt64(count()) FROM batches "
                                            "WHERE instance_id = ", instance, " AND state = 1 FORMAT RowBinary"));
    if (!last.ok()) return last.status();
    clickhouse::RowReader r(*last);
    uint64_t max_seq = 0, n = 0;
    if (r.U64(&max_seq) && r.U64(&n) && n > 0 && sequence > max_seq && sequence - max_seq > ctx.max_sequence_jump) {
      return absl::InvalidArgumentError(absl::StrCat("sequence ", sequence, " jumps more than ",
                                                     ctx.max_sequence_jump, " past the last stored ", max_seq));
    }
  }

  // 3: claim, then look again.
  absl::Status st = MarkBatch(ctx, sequence, kClaimed, now_ns);
  if (!st.ok()) return st;
  rows = client_->Query(absl::StrCat("SELECT state, sequence, replica, at_ns FROM batches WHERE instance_id = ",
                                     instance, " AND sequence = ", sequence, " FORMAT RowBinary"));
  if (!rows.ok()) return rows.status();
  if (others_claiming(*rows, &stored) || stored) {
    (void)MarkBatch(ctx, sequence, kReleased, now_ns);
    return stored ? Claim::kDuplicate : Claim::kBusy;
  }
  return Claim::kMine;
}

absl::Status ClickHouseStorage::InsertBatch(const IngestContext& ctx, const v1::Batch& batch, uint64_t now) {
  clickhouse::RowWriter chunks, index, rollup_rows, exchanges;
  const int n = batch.spans_size();
  if (n > 0) {
    // One span_chunks row per trace id (spans of one trace keep the agent's
    // order), the per-second rollup aggregated in memory first.
    std::vector<uint32_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0u);
    const auto& spans = batch.spans();
    std::stable_sort(order.begin(), order.end(),
                     [&](uint32_t a, uint32_t b) { return spans[a].trace_id() < spans[b].trace_id(); });
    span_chunk::Rollup rollup;
    span_chunk::RowSummary row;
    std::string data, packed;
    std::unique_ptr<ZSTD_CCtx, size_t (*)(ZSTD_CCtx*)> zstd{ZSTD_createCCtx(), ZSTD_freeCCtx};
    for (size_t i = 0; i < order.size();) {
      const std::string& trace_id = spans[order[i]].trace_id();
      size_t j = i;
      while (j < order.size() && spans[order[j]].trace_id() == trace_id) ++j;
      span_chunk::StartData(&data);
      row.Reset();
      for (size_t k = i; k < j; ++k) {
        const v1::Span& sp = spans[order[k]];
        span_chunk::AppendSpan(sp, &data);
        row.Add(sp);
        rollup.Add(sp);
        TraceJoiner::Key xkey;
        if (TraceJoiner::KeyOf(sp, &xkey)) {
          exchanges.Date(sp.start_unix_ns());
          exchanges.String(ExchangeKeyBytes(xkey));
          exchanges.String(sp.trace_id());
          exchanges.String(sp.span_id());
          exchanges.U8(static_cast<uint8_t>(sp.kind()));
          exchanges.U8(HasParent(sp) ? 0 : 1);
          exchanges.U64(sp.start_unix_ns());
        }
      }
      row.Finish();
      const v1::Span* root = row.root;
      const uint64_t start = row.start;
      const std::string_view blob = options_.compress_spans
                                        ? span_chunk::Compress(data, zstd.get(), options_.zstd_level, &packed)
                                        : std::string_view(data);
      chunks.Date(start);
      chunks.String(trace_id);
      chunks.U64(start);
      chunks.U64(row.end);
      chunks.String(ctx.host);
      chunks.U32(static_cast<uint32_t>(j - i));
      chunks.U32(static_cast<uint32_t>(row.errors));
      chunks.U16(static_cast<uint16_t>(row.sources));
      chunks.U16(static_cast<uint16_t>(row.kinds));
      chunks.U16(static_cast<uint16_t>(row.status_classes));
      chunks.U64(row.max_dur);
      chunks.U8(HasParent(*root) ? 1 : 0);
      chunks.U64(root->start_unix_ns());
      chunks.U64(DurationOf(*root));
      chunks.String(ServiceOf(*root));
      chunks.String(EndpointOf(*root));
      chunks.String(row.services);
      chunks.String(row.endpoints);
      chunks.String(row.attrs);
      chunks.String(blob);
      index.Date(start);
      index.String(trace_id);
      index.U64(start);
      i = j;
    }
    for (const auto& [key, r] : rollup.rows()) {
      rollup_rows.Date(r.second * 1'000'000'000);
      rollup_rows.U64(r.second);
      rollup_rows.String(r.service);
      rollup_rows.String(r.endpoint);
      rollup_rows.U8(static_cast<uint8_t>(r.source));
      rollup_rows.U8(static_cast<uint8_t>(r.kind));
      rollup_rows.U64(r.count);
      rollup_rows.U64(r.errors);
      rollup_rows.U64(r.dur_sum);
      rollup_rows.U64(r.dur_max);
    }
  }
  clickhouse::RowWriter requests, red, tcp, stacks, otlp, processes, hosts;
  std::string detail;
  for (const auto& r : batch.requests()) {
    requests.Date(r.start_unix_ns());
    requests.U64(r.start_unix_ns());
    requests.String(r.comm());
    requests.String(r.path());
    requests.U32(r.status());
    requests.String(ctx.host);
    r.SerializeToString(&detail);
    requests.String(detail);
  }
  for (const auto& r : batch.red()) {
    red.Date(r.window_start_unix_ns());
    red.U64(r.window_start_unix_ns());
    red.String(r.service_name().empty() ? r.comm() : r.service_name());
    red.String(r.endpoint());
    red.String(ctx.host);
    r.SerializeToString(&detail);
    red.String(detail);
  }
  for (const auto& t : batch.tcp()) {
    tcp.Date(t.window_start_unix_ns());
    tcp.U64(t.window_start_unix_ns());
    tcp.String(t.server().address());
    tcp.U32(t.server().port());
    tcp.String(ctx.host);
    t.SerializeToString(&detail);
    tcp.String(detail);
  }
  for (const auto& f : batch.profile().stacks()) {
    stacks.Date(f.window_start_unix_ns());
    stacks.U64(f.window_start_unix_ns());
    stacks.U64(f.window_end_unix_ns());
    stacks.String(ctx.host);
    stacks.U32(f.pid());
    stacks.U32(f.tid());
    stacks.String(f.comm());
    stacks.U8(static_cast<uint8_t>(f.kind()));
    stacks.String(f.stack());
    stacks.U64(f.count());
    stacks.U64(f.value() ? f.value() : f.count());
  }
  for (const auto& o : batch.otlp()) {
    const uint64_t at = o.received_unix_ns() ? o.received_unix_ns() : now;
    otlp.Date(at);
    otlp.U64(at);
    otlp.String(ctx.host);
    otlp.U8(static_cast<uint8_t>(o.signal()));
    otlp.String(o.payload());
  }
  for (const auto& p : batch.processes()) {
    processes.Date(now);
    processes.String(ctx.host);
    processes.U32(p.pid());
    processes.U64(now);
    p.SerializeToString(&detail);
    processes.String(detail);
  }
  if (batch.has_host()) {
    hosts.Date(now);
    hosts.String(batch.host().host_name().empty() ? ctx.host : batch.host().host_name());
    hosts.U64(now);
    batch.host().SerializeToString(&detail);
    hosts.String(detail);
  }
  // Data first, the index tables that point at it after.
  const std::pair<const char*, const char*> columns[] = {
      {"span_chunks",
       "day, trace_id, start_ns, end_ns, host, n, errors, sources, kinds, status_classes, max_dur, "
       "root_parented, root_start, root_dur, root_service, root_endpoint, services, endpoints, attrs, data"},
      {"requests", "day, start_ns, comm, path, status, host, detail"},
      {"red", "day, start_ns, service, endpoint, host, detail"},
      {"tcp", "day, start_ns, server_addr, server_port, host, detail"},
      {"stacks", "day, start_ns, end_ns, host, pid, tid, comm, kind, stack, count, value"},
      {"otlp", "day, received_ns, host, signal, payload"},
      {"processes", "day, host, pid, last_seen_ns, detail"},
      {"hosts", "day, host, last_seen_ns, detail"},
      {"trace_index", "day, trace_id, start_ns"},
      {"exchanges", "day, key, trace_id, span_id, kind, root, start_ns"},
      {"span_rollup", "day, second, service, endpoint, source, kind, count, errors, dur_sum, dur_max"},
  };
  const clickhouse::RowWriter* bodies[] = {&chunks, &requests, &red,   &tcp,       &stacks,     &otlp,
                                           &processes, &hosts,  &index, &exchanges, &rollup_rows};
  for (size_t i = 0; i < std::size(columns); ++i) {
    absl::Status st = client_->InsertRowBinary(columns[i].first, columns[i].second, bodies[i]->data());
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("insert into ", columns[i].first, ": ", st.message()));
  }
  return absl::OkStatus();
}

}  // namespace sonde::server
