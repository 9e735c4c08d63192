// ClickHouseStorage: retention by dropping whole day partitions (every
// table is partitioned by `day`), which works on 18.16 and current
// ClickHouse alike; a table TTL clause would need 19.6+. A day goes once all
// of it is older than the cut, so data lives up to one day past its policy.
// Any replica may run it: dropping a partition already gone is a no-op. In a
// cluster every shard's local tables are visited.
#include "absl/strings/str_cat.h"
#include "server/store/clickhouse_storage.h"

namespace sonde::server {

absl::StatusOr<RetentionResult> ClickHouseStorage::EnforceRetention(uint64_t now_ns, const RetentionPolicy& policy) {
  RetentionResult result;
  const uint64_t span_cut = now_ns > policy.spans_ns ? now_ns - policy.spans_ns : 0;
  const uint64_t metric_cut = now_ns > policy.metrics_ns ? now_ns - policy.metrics_ns : 0;
  // Partitions wholly before the cut: day + 1 <= the cut's day.
  const uint64_t span_day = span_cut / 86'400'000'000'000ull, metric_day = metric_cut / 86'400'000'000'000ull;
  // The partitions live where the MergeTree tables are: this server, or
  // every shard's `<table>_local` tables.
  std::vector<clickhouse::Client*> servers;
  if (shards_.empty()) servers.push_back(client_.get());
  for (const auto& shard : shards_) servers.push_back(shard.get());
  const std::string suffix = shards_.empty() ? "" : "_local";
  for (clickhouse::Client* server : servers) {
    auto parts = server->Query(absl::StrCat(
        "SELECT table, partition_id, toUInt64(min(min_date)) FROM system.parts WHERE database = ",
        clickhouse::Quote(client_->endpoint().database), " AND active GROUP BY table, partition_id FORMAT RowBinary"));
    if (!parts.ok()) return parts.status();
    clickhouse::RowReader r(*parts);
    while (!r.AtEnd()) {
      std::string local_table, partition;
      uint64_t day = 0;
      if (!r.String(&local_table) || !r.String(&partition) || !r.U64(&day))
        return absl::DataLossError("clickhouse: short system.parts result");
      if (!local_table.ends_with(suffix)) continue;
      const std::string table = local_table.substr(0, local_table.size() - suffix.size());
      const bool span_data = table == "span_chunks" || table == "trace_index" || table == "span_rollup" ||
                             table == "exchanges" || table == "requests" || table == "stacks";
      const bool metric_data = table == "red" || table == "tcp" || table == "otlp" || table == "processes" ||
                               table == "hosts" || table == "batches";
      if (!(span_data && day < span_day) && !(metric_data && day < metric_day)) continue;
      const std::string where =
          absl::StrCat(" WHERE day = ", clickhouse::DateLiteral(day * 86'400'000'000'000ull), " FORMAT RowBinary");
      uint64_t spans = 0;
      if (table == "span_chunks") {
        auto n = server->Query(absl::StrCat("SELECT toUInt64(sum(n)) FROM ", local_table, where));
        if (n.ok()) (void)clickhouse::RowReader(*n).U64(&spans);
      } else {
        auto n = server->Query(absl::StrCat("SELECT toUInt64(count()) FROM ", local_table, where));
        uint64_t rows = 0;
        if (n.ok() && clickhouse::RowReader(*n).U64(&rows)) result.rows_deleted += rows;
      }
      auto drop = server->Query(
          absl::StrCat("ALTER TABLE ", local_table, " DROP PARTITION ID ", clickhouse::Quote(partition)));
      if (!drop.ok()) return drop.status();
      result.spans_deleted += spans;
      uint64_t cur = spans_.load();
      while (!spans_.compare_exchange_weak(cur, cur > spans ? cur - spans : 0)) {
      }
    }
  }
  return result;
}

}  // namespace sonde::server
