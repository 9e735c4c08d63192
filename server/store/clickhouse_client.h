#pragma once
// A ClickHouse server through its HTTP interface (port 8123): statements as
// POST bodies, inserts as RowBinary bodies, results read as RowBinary. Pooled
// keep-alive connections, so concurrent queries never share one socket.
// Used only by the ClickHouse storage backend (server/store/clickhouse_*).
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace httplib {
class Client;
}

namespace sonde::server::clickhouse {

// clickhouse://[user[:password]@]host[:port]/database
//   [?cluster=NAME&shards=HOST:PORT,HOST:PORT...]
struct Endpoint {
  std::string host;
  int port = 8123;
  std::string database;
  std::string user;
  std::string password;
  std::string cluster;  // non-empty: local tables + Distributed tables over this cluster
  // With a cluster: every shard's HTTP interface (host, port), where the
  // local tables are created and retention drops partitions.
  std::vector<std::pair<std::string, int>> shards;
};
absl::StatusOr<Endpoint> ParseUrl(std::string_view url);

class Client {
 public:
  explicit Client(Endpoint endpoint);
  // The same server credentials and database on another host (a shard).
  Client(const Endpoint& endpoint, const std::string& host, int port);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Runs one statement; returns the response body (the result in the format
  // the statement names, e.g. "... FORMAT RowBinary"). `use_database`: run in
  // the endpoint's database (false for CREATE DATABASE).
  absl::StatusOr<std::string> Query(std::string_view sql, bool use_database = true);
  // SELECTs from now on run with max_execution_time (seconds, rounded up);
  // one that runs out fails with kDeadlineExceeded. 0: no limit.
  void SetQueryTimeout(std::chrono::milliseconds timeout) { query_timeout_ = timeout; }
  // INSERT INTO `table` FORMAT RowBinary with `rows` as the body.
  absl::Status InsertRowBinary(std::string_view table, std::string_view columns, std::string_view rows);

  const Endpoint& endpoint() const { return endpoint_; }
  uint64_t requests() const;
  uint64_t bytes_sent() const;

 private:
  absl::StatusOr<std::string> Post(const std::string& query_param, std::string_view body, bool use_database,
                                   bool distributed_sync = false, bool deadline = false);
  std::unique_ptr<httplib::Client> Acquire();
  void Release(std::unique_ptr<httplib::Client> c);

  Endpoint endpoint_;
  std::chrono::milliseconds query_timeout_{0};
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<httplib::Client>> idle_;
  uint64_t requests_ = 0;
  uint64_t bytes_sent_ = 0;
};

// A SQL string literal: '...' with quotes, backslashes and control bytes
// escaped (ClickHouse 18.16 has no query parameters; every value a statement
// carries goes through here or is a number).
std::string Quote(std::string_view value);
// A Date literal 'YYYY-MM-DD' of the UTC day holding `unix_ns`.
std::string DateLiteral(uint64_t unix_ns);
// Days since 1970-01-01 (a ClickHouse Date in RowBinary) of `unix_ns`.
uint16_t DayNumber(uint64_t unix_ns);

// RowBinary rows for an insert body.
class RowWriter {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Fixed(v); }
  void U32(uint32_t v) { Fixed(v); }
  void U64(uint64_t v) { Fixed(v); }
  void Date(uint64_t unix_ns) { U16(DayNumber(unix_ns)); }
  void String(std::string_view s);
  const std::string& data() const { return out_; }
  bool empty() const { return out_.empty(); }
  void Clear() { out_.clear(); }

 private:
  template <typename T>
  void Fixed(T v) {
    for (size_t i = 0; i < sizeof v; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

// Reads a RowBinary result; every read returns false past the end (the
// result is then treated as damaged, never read out of bounds).
class RowReader {
 public:
  explicit RowReader(std::string_view data) : data_(data) {}
  // It keeps a view: a temporary string would be gone before the first read.
  explicit RowReader(std::string&&) = delete;
  bool AtEnd() const { return pos_ >= data_.size(); }
  bool U8(uint8_t* v) { return Fixed(v); }
  bool U16(uint16_t* v) { return Fixed(v); }
  bool U32(uint32_t* v) { return Fixed(v); }
  bool U64(uint64_t* v) { return Fixed(v); }
  bool String(std::string_view* s);
  bool String(std::string* s);
  bool ArraySize(uint64_t* n) { return Varint(n); }

 private:
  bool Varint(uint64_t* v);
  template <typename T>
  bool Fixed(T* v) {
    if (data_.size() - pos_ < sizeof(T) || pos_ > data_.size()) return false;
    T out = 0;
    for (size_t i = 0; i < sizeof(T); ++i) out |= static_cast<T>(static_cast<uint8_t>(data_[pos_ + i])) << (8 * i);
    pos_ += sizeof(T);
    *v = out;
    return true;
  }
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace sonde::server::clickhouse
