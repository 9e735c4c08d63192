#include "server/store/clickhouse_client.h"

#include <httplib.h>

#include <charconv>
#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace sonde::server::clickhouse {
namespace {

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

bool ValidName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

}  // namespace

absl::StatusOr<Endpoint> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "clickhouse://";
  if (!url.starts_with(kScheme)) return absl::InvalidArgumentError("not a clickhouse:// URL");
  std::string_view rest = url.substr(kScheme.size());
  Endpoint e;
  std::string_view options;
  if (auto q = rest.find('?'); q != std::string_view::npos) {
    options = rest.substr(q + 1);
    rest = rest.substr(0, q);
  }
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos)
    return absl::InvalidArgumentError("clickhouse:// URL needs a database: clickhouse://HOST:8123/DB");
  e.database = std::string(rest.substr(slash + 1));
  rest = rest.substr(0, slash);
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    e.user = std::string(cred.substr(0, colon));
    if (colon != std::string_view::npos) e.password = std::string(cred.substr(colon + 1));
  }
  // host:port, [v6]:port; a bare IPv6 address (several colons) has no port.
  const size_t bracket = rest.find(']'), colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (bracket == std::string_view::npos ? rest.find(':') == colon : colon > bracket)) {
    std::string_view port = rest.substr(colon + 1);
    int p = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (ec != std::errc() || ptr != port.data() + port.size() || p <= 0 || p > 65535)
      return absl::InvalidArgumentError(absl::StrCat("bad port in ", std::string(url)));
    e.port = p;
    rest = rest.substr(0, colon);
  }
  if (rest.size() > 2 && rest.front() == '[' && rest.back() == ']') rest = rest.substr(1, rest.size() - 2);
  e.host = std::string(rest);
  if (e.host.empty()) return absl::InvalidArgumentError(absl::StrCat("no host in ", std::string(url)));
  if (!ValidName(e.database))
    return absl::InvalidArgumentError(absl::StrCat("database name must be [A-Za-z0-9_]+: ", e.database));
  while (!options.empty()) {
    auto amp = options.find('&');
    std::string_view kv = options.substr(0, amp);
    options = amp == std::string_view::npos ? std::string_view() : options.substr(amp + 1);
    auto eq = kv.find('=');
    std::string_view key = kv.substr(0, eq), value = eq == std::string_view::npos ? "" : kv.substr(eq + 1);
    if (key == "cluster") {
      if (!ValidName(value)) return absl::InvalidArgumentError("cluster name must be [A-Za-z0-9_]+");
      e.cluster = std::string(value);
    } else if (key == "shards") {
      std::string_view list = value;
      while (!list.empty()) {
        const auto comma = list.find(',');
        std::string_view hp = list.substr(0, comma);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
        const auto port_colon = hp.rfind(':');
        int p = 0;
        if (port_colon == std::string_view::npos || port_colon == 0)
          return absl::InvalidArgumentError("shards= wants HOST:PORT,HOST:PORT (HTTP ports)");
        auto [ptr, ec] = std::from_chars(hp.data() + port_colon + 1, hp.data() + hp.size(), p);
        if (ec != std::errc() || ptr != hp.data() + hp.size() || p <= 0 || p > 65535)
          return absl::InvalidArgumentError(absl::StrCat("bad shard port in ", std::string(hp)));
        e.shards.emplace_back(std::string(hp.substr(0, port_colon)), p);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown clickhouse:// option ", std::string(key)));
    }
  }
  return e;
}

Client::Client(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}

Client::Client(const Endpoint& endpoint, const std::string& host, int port) : endpoint_(endpoint) {
  endpoint_.host = host;
  endpoint_.port = port;
}
Client::~Client() = default;

std::unique_ptr<httplib::Client> Client::Acquire() {
  {
    std::lock_guard lock(mu_);
    if (!idle_.empty()) {
      auto c = std::move(idle_.back());
      idle_.pop_back();
      return c;
    }
  }
  auto c = std::make_unique<httplib::Client>(endpoint_.host, endpoint_.port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);  // headers and body go out as two writes: no Nagle + delayed-ACK stall (~40 ms)
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(120, 0);
  c->set_write_timeout(60, 0);
  return c;
}

void Client::Release(std::unique_ptr<httplib::Client> c) {
  std::lock_guard lock(mu_);
  if (idle_.size() < 16) idle_.push_back(std::move(c));
}

absl::StatusOr<std::string> Client::Post(const std::string& query_param, std::string_view body,
                                         bool use_database, bool distributed_sync, bool deadline) {
  std::string path = "/?";
  if (distributed_sync) path += "insert_distributed_sync=1&";
  const int64_t timeout_s = (query_timeout_.count() + 999) / 1000;
  if (deadline && timeout_s > 0) absl::StrAppend(&path, "max_execution_time=", timeout_s, "&");
  if (use_database) absl::StrAppend(&path, "database=", UrlEncode(endpoint_.database), "&");
  if (!endpoint_.user.empty()) absl::StrAppend(&path, "user=", UrlEncode(endpoint_.user), "&");
  if (!endpoint_.password.empty()) absl::StrAppend(&path, "password=", UrlEncode(endpoint_.password), "&");
  if (!query_param.empty()) absl::StrAppend(&path, "query=", UrlEncode(query_param));
  {
    std::lock_guard lock(mu_);
    ++requests_;
    bytes_sent_ += body.size();
  }
  // One retry on a fresh connection: a pooled keep-alive socket the server
  // closed meanwhile fails on first use.
  for (int attempt = 0;; ++attempt) {
    auto client = Acquire();
    auto res = client->Post(path.c_str(), body.data(), body.size(), "application/octet-stream");
    if (!res) {
      if (attempt == 0) continue;
      return absl::UnavailableError(absl::StrCat("clickhouse ", endpoint_.host, ":", endpoint_.port, ": ",
                                                 httplib::to_string(res.error())));
    }
    if (res->status != 200) {
      std::string msg = res->body.substr(0, 600);
      while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
      Release(std::move(client));
      if (deadline && msg.find("Code: 159") != std::string::npos) {  // TIMEOUT_EXCEEDED
        return absl::DeadlineExceededError(absl::StrCat("query stopped after ", timeout_s,
                                                        " s (the server's --query-timeout): ", msg));
      }
      return absl::InternalError(absl::StrCat("clickhouse HTTP ", res->status, ": ", msg));
    }
    Release(std::move(client));
    return std::move(res->body);
  }
}

absl::StatusOr<std::string> Client::Query(std::string_view sql, bool use_database) {
  // Reads run under the deadline; DDL, retention and inserts do not.
  size_t first = sql.find_first_not_of(" \t\n(");
  const bool select = first != std::string_view::npos && sql.size() - first >= 6 &&
                      (sql.substr(first, 6) == "SELECT" || sql.substr(first, 6) == "select");
  return Post("", sql, use_database, false, select);
}

absl::Status Client::InsertRowBinary(std::string_view table, std::string_view columns, std::string_view rows) {
  if (rows.empty()) return absl::OkStatus();
  // Through Distributed tables: forwarded to the shards before the insert
  // returns, so a batch is readable (and its claim visible) once stored.
  auto r = Post(absl::StrCat("INSERT INTO ", std::string(table), " (", std::string(columns), ") FORMAT RowBinary"),
                rows, true, !endpoint_.cluster.empty());
  return r.ok() ? absl::OkStatus() : r.status();
}

uint64_t Client::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

uint64_t Client::bytes_sent() const {
  std::lock_guard lock(mu_);
  return bytes_sent_;
}

std::string Quote(std::string_view value) {
  std::string out = "'";
  out.reserve(value.size() + 2);
  for (unsigned char c : value) {
    switch (c) {
      case '\'': out += "\\'"; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      case '\0': out += "\\0"; break;
      default:
        if (c < 0x20 || c >= 0x7f) {  // any other byte as \xHH: binary ids, bad UTF-8
          char buf[5];
          std::snprintf(buf, sizeof buf, "\\x%02X", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out += '\'';
  return out;
}

uint16_t DayNumber(uint64_t unix_ns) {
  const uint64_t day = unix_ns / 86'400'000'000'000ull;
  return day > 65535 ? 65535 : static_cast<uint16_t>(day);
}

std::string DateLiteral(uint64_t unix_ns) {
  const time_t t = static_cast<time_t>(static_cast<uint64_t>(DayNumber(unix_ns)) * 86400);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "'%04d-%02d-%02d'", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

void RowWriter::String(std::string_view s) {
  uint64_t n = s.size();
  while (n >= 0x80) {
    out_.push_back(static_cast<char>(n | 0x80));
    n >>= 7;
  }
  out_.push_back(static_cast<char>(n));
  out_.append(s.data(), s.size());
}

bool RowReader::Varint(uint64_t* v) {
  uint64_t out = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (pos_ >= data_.size()) return false;
    const uint8_t b = static_cast<uint8_t>(data_[pos_++]);
    out |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = out;
      return true;
    }
  }
  return false;
}

bool RowReader::String(std::string_view* s) {
  uint64_t n = 0;
  if (!Varint(&n) || n > data_.size() - pos_) return false;
  *s = data_.substr(pos_, n);
  pos_ += n;
  return true;
}

bool RowReader::String(std::string* s) {
  std::string_view v;
  if (!String(&v)) return false;
  s->assign(v.data(), v.size());
  return true;
}

}  // namespace sonde::server::clickhouse
