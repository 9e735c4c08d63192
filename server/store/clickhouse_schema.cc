// ClickHouseStorage: the tables. SQL here runs on ClickHouse 18.16 (Debian
// 12) and current releases: MergeTree() with PARTITION BY / ORDER BY, no TTL
// clause (19.6+; retention drops day partitions instead), no query
// parameters (19.x+; literals are quoted by clickhouse::Quote). Every table
// has a `day` Date column (UTC day of the row's time) as its partition key.
#include "absl/strings/str_cat.h"
#include "server/store/clickhouse_storage.h"

namespace sonde::server {
namespace {

struct TableDef {
  const char* name;
  const char* columns;
  const char* engine;  // with PARTITION BY / ORDER BY
  const char* shard_key;  // Distributed sharding expression (clusters)
};

// Spans: one row per (trace id, batch) as in span_chunk.h, sorted by time
// (searches read a time window); `data` is the spans blob.
constexpr TableDef kTables[] = {
    {"span_chunks",
     "day Date, trace_id String, start_ns UInt64, end_ns UInt64, host String, n UInt32, errors UInt32, "
     "sources UInt16, kinds UInt16, status_classes UInt16, max_dur UInt64, root_parented UInt8, "
     "root_start UInt64, root_dur UInt64, root_service String, root_endpoint String, services String, "
     "endpoints String, attrs String, data String",
     "MergeTree() PARTITION BY day ORDER BY start_ns", "cityHash64(trace_id)"},
    // trace id -> the start times of its rows: a trace lookup reads this
    // (sorted by trace id), then only that time window of span_chunks.
    {"trace_index", "day Date, trace_id String, start_ns UInt64",
     "MergeTree() PARTITION BY day ORDER BY (trace_id, start_ns)", "cityHash64(trace_id)"},
    // Per second, service, endpoint, source, kind (services/endpoints lists).
    {"span_rollup",
     "day Date, second UInt64, service String, endpoint String, source UInt8, kind UInt8, count UInt64, "
     "errors UInt64, dur_sum UInt64, dur_max UInt64",
     "MergeTree() PARTITION BY day ORDER BY (second, service, endpoint)", "rand()"},
    // The exchange key of every system client/server span (client endpoint +
    // request TCP sequence, TraceJoiner::KeyOf): joins traces across agents
    // whichever replica stored which side.
    {"exchanges",
     "day Date, key String, trace_id String, span_id String, kind UInt8, root UInt8, start_ns UInt64",
     "MergeTree() PARTITION BY day ORDER BY key", "cityHash64(key)"},
    {"requests", "day Date, start_ns UInt64, comm String, path String, status UInt32, host String, detail String",
     "MergeTree() PARTITION BY day ORDER BY start_ns", "rand()"},
    {"red", "day Date, start_ns UInt64, service String, endpoint String, host String, detail String",
     "MergeTree() PARTITION BY day ORDER BY (service, endpoint, start_ns)", "rand()"},
    {"tcp", "day Date, start_ns UInt64, server_addr String, server_port UInt32, host String, detail String",
     "MergeTree() PARTITION BY day ORDER BY (server_addr, server_port, start_ns)", "rand()"},
    {"stacks",
     "day Date, start_ns UInt64, end_ns UInt64, host String, pid UInt32, tid UInt32, comm String, kind UInt8, "
     "stack String, count UInt64, value UInt64",
     "MergeTree() PARTITION BY day ORDER BY (kind, start_ns)", "rand()"},
    {"otlp", "day Date, received_ns UInt64, host String, signal UInt8, payload String",
     "MergeTree() PARTITION BY day ORDER BY received_ns", "rand()"},
    // Latest row per (host, pid) wins at read time (argMax), so replicas
    // never update in place.
    {"processes", "day Date, host String, pid UInt32, last_seen_ns UInt64, detail String",
     "MergeTree() PARTITION BY day ORDER BY (host, pid)", "rand()"},
    {"hosts", "day Date, host String, last_seen_ns UInt64, detail String",
     "MergeTree() PARTITION BY day ORDER BY host", "rand()"},
    // Batch claims (state 0) and stored batches (state 1) by agent instance
    // and sequence: deduplication across replicas (clickhouse_writes.cc).
    {"batches",
     "day Date, instance_id String, sequence UInt64, state UInt8, replica String, at_ns UInt64, "
     "node_id String, host String",
     "MergeTree() PARTITION BY day ORDER BY (instance_id, sequence)", "cityHash64(instance_id)"},
};

}  // namespace

absl::Status ClickHouseStorage::CreateSchema() {
  const std::string& db = client_->endpoint().database;
  auto r = client_->Query(absl::StrCat("CREATE DATABASE IF NOT EXISTS ", db), false);
  if (!r.ok()) return r.status();
  // Layout version: a database written by a newer server is refused.
  r = client_->Query(
      "CREATE TABLE IF NOT EXISTS meta (key String, value String) ENGINE = MergeTree() ORDER BY key");
  if (!r.ok()) return r.status();
  r = client_->Query("SELECT toUInt64(max(toUInt64OrZero(value))) FROM meta WHERE key = 'schema_version' "
                     "FORMAT RowBinary");
  if (!r.ok()) return r.status();
  clickhouse::RowReader rows(*r);
  uint64_t version = 0;
  (void)rows.U64(&version);
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("ClickHouse database ", db, " has schema version ", version,
                                                      ", newer than this server (", kSchemaVersion,
                                                      "): run a newer sonde-server"));
  }
  const std::string& cluster = client_->endpoint().cluster;
  for (const auto& shard : shards_) {
    r = shard->Query(absl::StrCat("CREATE DATABASE IF NOT EXISTS ", db), false);
    if (!r.ok()) return r.status();
  }
  for (const auto& t : kTables) {
    if (cluster.empty()) {
      r = client_->Query(absl::StrCat("CREATE TABLE IF NOT EXISTS ", t.name, " (", t.columns, ") ENGINE = ",
                                      t.engine));
    } else {
      // Local tables on every shard, then the Distributed table here.
      for (const auto& shard : shards_) {
        r = shard->Query(absl::StrCat("CREATE TABLE IF NOT EXISTS ", t.name, "_local (", t.columns, ") ENGINE = ",
                                      t.engine));
        if (!r.ok()) break;
      }
      if (r.ok())
        r = client_->Query(absl::StrCat("CREATE TABLE IF NOT EXISTS ", t.name, " (", t.columns,
                                        ") ENGINE = Distributed(", cluster, ", ", db, ", ", t.name, "_local, ",
                                        t.shard_key, ")"));
    }
    if (!r.ok()) return absl::Status(r.status().code(), absl::StrCat("creating ", t.name, ": ", r.status().message()));
  }
  if (version != kSchemaVersion) {
    r = client_->Query(absl::StrCat("INSERT INTO meta (key, value) VALUES ('schema_version', '", kSchemaVersion,
                                    "')"));
    if (!r.ok()) return r.status();
  }
  return absl::OkStatus();
}

}  // namespace sonde::server
