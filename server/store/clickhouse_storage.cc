// ClickHouseStorage: opening (schema, server version, this replica's id) and
// stats.
#include <random>

#include "absl/strings/str_cat.h"
#include "server/store/clickhouse_storage.h"

namespace sonde::server {

ClickHouseStorage::ClickHouseStorage(ClickHouseOptions options, clickhouse::Endpoint endpoint)
    : options_(std::move(options)), client_(std::make_unique<clickhouse::Client>(std::move(endpoint))) {
  client_->SetQueryTimeout(options_.query_timeout);
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  const uint64_t id = gen();
  replica_id_ = HexEncode(std::string_view(reinterpret_cast<const char*>(&id), sizeof id));
}

ClickHouseStorage::~ClickHouseStorage() = default;

absl::StatusOr<std::unique_ptr<ClickHouseStorage>> ClickHouseStorage::Open(const ClickHouseOptions& options) {
  auto endpoint = clickhouse::ParseUrl(options.url);
  if (!endpoint.ok()) return endpoint.status();
  if (!endpoint->cluster.empty() && endpoint->shards.empty())
    return absl::InvalidArgumentError(
        "clickhouse:// ?cluster= needs &shards=HOST:PORT,... (every shard's HTTP interface: local tables)");
  std::unique_ptr<ClickHouseStorage> s(new ClickHouseStorage(options, *endpoint));
  for (const auto& [host, port] : endpoint->shards)
    s->shards_.push_back(std::make_unique<clickhouse::Client>(*endpoint, host, port));
  absl::Status st = s->Init();
  if (!st.ok()) return st;
  return s;
}

absl::Status ClickHouseStorage::Init() {
  auto v = client_->Query("SELECT version() FORMAT TabSeparated", false);
  if (!v.ok()) return v.status();
  server_version_ = *v;
  while (!server_version_.empty() && server_version_.back() == '\n') server_version_.pop_back();
  absl::Status st = CreateSchema();
  if (!st.ok()) return st;
  // Stats count what is stored (all replicas), then this process's writes.
  auto r = client_->Query("SELECT toUInt64(sum(n)), toUInt64(count()) FROM span_chunks FORMAT RowBinary");
  if (!r.ok()) return r.status();
  clickhouse::RowReader rows(*r);
  uint64_t spans = 0, chunks = 0;
  if (rows.U64(&spans) && rows.U64(&chunks)) spans_ = spans;
  return absl::OkStatus();
}

StorageStats ClickHouseStorage::Stats() {
  StorageStats s;
  s.spans = spans_.load();
  s.batches = batches_.load();
  s.duplicate_batches = duplicates_.load();
  return s;
}

}  // namespace sonde::server
