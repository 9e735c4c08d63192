#include "tests/e2e/clickhouse/clickhouse_server.h"

#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

namespace sonde::testing {

bool ClickHouseInstalled() { return testlib::CommandExists("clickhouse-server"); }

std::unique_ptr<ClickHouseServer> ClickHouseServer::Start(std::string* error, const std::string& remote_servers,
                                                         int http_port, int tcp_port) {
  // Ports chosen here may be taken by another process between the choice and
  // the bind (tests of other sessions run alongside): one more try on others.
  auto s = StartOnce(error, remote_servers, http_port, tcp_port);
  if (!s && http_port == 0 && tcp_port == 0) {
    std::string first = *error;
    s = StartOnce(error, remote_servers, 0, 0);
    if (!s) *error = first + "\n(second try) " + *error;
  }
  return s;
}

std::unique_ptr<ClickHouseServer> ClickHouseServer::StartOnce(std::string* error, const std::string& remote_servers,
                                                             int http_port, int tcp_port) {
  std::unique_ptr<ClickHouseServer> s(new ClickHouseServer());
  s->dir_ = std::make_unique<testlib::TempDir>("sonde-clickhouse");
  const std::string& d = s->dir_->path();
  s->http_port_ = http_port ? http_port : testlib::FreeTcpPort();
  s->tcp_port_ = tcp_port;
  while (s->tcp_port_ == 0 || s->tcp_port_ == s->http_port_) s->tcp_port_ = testlib::FreeTcpPort();
  {
    // Small caches and two threads: the machine is shared.
    std::ofstream c(d + "/config.xml");
    c << "<yandex>\n"
      << "  <logger><level>warning</level><log>" << d << "/server.log</log><errorlog>" << d
      << "/error.log</errorlog><console>0</console></logger>\n"
      << "  <http_port>" << s->http_port_ << "</http_port>\n"
      << "  <tcp_port>" << s->tcp_port_ << "</tcp_port>\n"
      << "  <listen_host>127.0.0.1</listen_host>\n"
      << "  <path>" << d << "/data/</path>\n  <tmp_path>" << d << "/tmp/</tmp_path>\n"
      << "  <user_files_path>" << d << "/user_files/</user_files_path>\n"
      << "  <format_schema_path>" << d << "/format_schemas/</format_schema_path>\n"
      << "  <users_config>" << d << "/users.xml</users_config>\n"
      << "  <default_profile>default</default_profile>\n  <default_database>default</default_database>\n"
      << "  <mark_cache_size>67108864</mark_cache_size>\n  <uncompressed_cache_size>0</uncompressed_cache_size>\n"
      << "  <max_concurrent_queries>64</max_concurrent_queries>\n"
      << "  <remote_servers>" << remote_servers << "</remote_servers>\n"
      << "</yandex>\n";
    std::ofstream u(d + "/users.xml");
    u << "<yandex><profiles><default><max_memory_usage>1000000000</max_memory_usage><max_threads>2</max_threads>"
         "</default></profiles><users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip>"
         "</networks><profile>default</profile><quota>default</quota></default></users>"
         "<quotas><default></default></quotas></yandex>\n";
  }
  s->process_ = testlib::Subprocess::Start({"clickhouse-server", "--config-file=" + d + "/config.xml"},
                                           d + "/stdout.log", d + "/stderr.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    bool ok = false;
    const std::string v = s->Query("SELECT 1", &ok);
    if (ok && v == "1\n") return s;
    if (!s->process_.running()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  *error = "clickhouse-server did not start: " + testlib::ReadFile(d + "/error.log").substr(0, 2000) +
           testlib::ReadFile(d + "/stderr.log").substr(0, 1000);
  return nullptr;
}

ClickHouseServer::~ClickHouseServer() { process_.Stop(std::chrono::milliseconds(10000)); }

std::string ClickHouseServer::Url(const std::string& database) const {
  return "clickhouse://127.0.0.1:" + std::to_string(http_port_) + "/" + database;
}

std::string ClickHouseServer::Query(const std::string& sql, bool* ok) const {
  httplib::Client c("127.0.0.1", http_port_);
  c.set_read_timeout(60, 0);
  auto res = c.Post("/", sql, "text/plain");
  if (ok) *ok = res && res->status == 200;
  return res ? res->body : std::string("no response");
}

double ClickHouseServer::CpuSeconds() const {
  std::ifstream in("/proc/" + std::to_string(process_.pid()) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace sonde::testing
