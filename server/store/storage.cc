#include "server/store/storage.h"

#include "server/store/clickhouse_storage.h"
#include "server/store/sqlite_storage.h"

namespace sonde::server {

absl::StatusOr<std::unique_ptr<Storage>> OpenStorage(const StorageOptions& options) {
  // A clickhouse:// URL instead of a file: the networked backend replicas share.
  if (options.path.starts_with("clickhouse://")) {
    ClickHouseOptions ch;
    ch.url = options.path;
    ch.compress_spans = options.compress_spans;
    ch.zstd_level = options.zstd_level;
    ch.query_timeout = options.query_timeout;
    auto clickhouse = ClickHouseStorage::Open(ch);
    if (!clickhouse.ok()) return clickhouse.status();
    return std::unique_ptr<Storage>(std::move(*clickhouse));
  }
  auto sqlite = SqliteStorage::Open(options);
  if (!sqlite.ok()) return sqlite.status();
  return std::unique_ptr<Storage>(std::move(*sqlite));
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool HexDecode(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi << 4 | lo));
  }
  return true;
}

}  // namespace sonde::server
