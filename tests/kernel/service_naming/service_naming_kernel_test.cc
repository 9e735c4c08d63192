// Service names on real spans: the same nginx binary installed as OpenResty
// (Kong's layout: .../openresty/nginx/sbin/nginx) is named "kong", a plain
// nginx "nginx", a port rule from the agent's YAML names one server block,
// and curl keeps its process name. The agent resolves names from /proc once
// per process.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

namespace fs = std::filesystem;
using testlib::Subprocess;

// An nginx from `binary` serving `ports` (each answering 200), in `dir`.
Subprocess StartNginx(const std::string& binary, const std::string& dir, const std::vector<int>& ports) {
  std::ofstream conf(dir + "/nginx.conf");
  conf << "daemon off;\npid " << dir << "/nginx.pid;\nerror_log " << dir << "/error.log;\nevents {}\nhttp {\n"
       << "access_log " << dir << "/access.log;\nclient_body_temp_path " << dir << ";\nproxy_temp_path " << dir
       << ";\nfastcgi_temp_path " << dir << ";\nuwsgi_temp_path " << dir << ";\nscgi_temp_path " << dir << ";\n";
  for (int p : ports) conf << "server { listen 127.0.0.1:" << p << "; location / { return 200 \"ok\\n\"; } }\n";
  conf << "}\n";
  conf.close();
  return Subprocess::Start({binary, "-p", dir, "-c", dir + "/nginx.conf"}, dir + "/stdout", dir + "/stderr");
}

TEST(ServiceNaming, KongNginxPortRuleAndProcessName) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
  SONDE_REQUIRE(testlib::CommandExists("curl"), "curl");
  SONDE_REQUIRE(access(testlib::AgentBinary().c_str(), X_OK) == 0, "sonde-agent binary");

  testlib::TempDir dir("sonde-naming");
  // Kong's layout: OpenResty's nginx under .../openresty/nginx/sbin/.
  const std::string kong_bin = dir.path() + "/usr/local/openresty/nginx/sbin/nginx";
  fs::create_directories(fs::path(kong_bin).parent_path());
  fs::copy_file(testlib::NginxBinary(), kong_bin);
  fs::create_directories(dir.path() + "/kong");
  fs::create_directories(dir.path() + "/plain");

  const int kong_port = testlib::FreeTcpPort();
  const int plain_port = testlib::FreeTcpPort();
  const int admin_port = testlib::FreeTcpPort();
  auto kong = StartNginx(kong_bin, dir.path() + "/kong", {kong_port});
  auto plain = StartNginx(testlib::NginxBinary(), dir.path() + "/plain", {plain_port, admin_port});
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", kong_port, std::chrono::seconds(10)));
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", admin_port, std::chrono::seconds(10)));

  std::ofstream(dir.File("agent.yaml")) << "services:\n  rules:\n    - name: plain-admin\n      port: " << admin_port
                                         << "\n";
  const std::string spans = dir.File("spans.json");
  auto agent = Subprocess::Start(
      {testlib::AgentBinary(), "--config", dir.File("agent.yaml"), "run", "--no-otlp", "--metrics-listen", "",
       "--port", std::to_string(kong_port), "--port", std::to_string(plain_port), "--port",
       std::to_string(admin_port), "--json-out", spans, "--ready-file", dir.File("ready")},
      dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30))) << testlib::ReadFile(dir.File("agent.err"));

  for (int port : {kong_port, plain_port, admin_port}) {
    for (int i = 0; i < 3; ++i) {
      int code = -1;
      testlib::RunCommand({"curl", "-s", "-o", "/dev/null", "http://127.0.0.1:" + std::to_string(port) + "/x"}, &code);
      ASSERT_EQ(code, 0);
    }
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(agent.Stop(std::chrono::milliseconds(15000)), 0) << testlib::ReadFile(dir.File("agent.err"));

  std::map<std::pair<int, std::string>, int> server_names;  // (port, service) -> spans
  std::map<std::string, int> client_names;
  std::ifstream in(spans);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) continue;
    const int port = j["attributes"].value("server.port", 0);
    if (j.value("kind", "") == "server") ++server_names[{port, j.value("service", "")}];
    if (j.value("kind", "") == "client") ++client_names[j.value("service", "")];
  }
  EXPECT_EQ((server_names[{kong_port, "kong"}]), 3) << line;
  EXPECT_EQ((server_names[{plain_port, "nginx"}]), 3);
  EXPECT_EQ((server_names[{admin_port, "plain-admin"}]), 3);
  EXPECT_EQ(server_names.size(), 3u) << "every server span named by exactly one of the three";
  EXPECT_EQ(client_names["curl"], 9);
}

}  // namespace
}  // namespace sonde
