// The agent's /metrics as Prometheus and dashboards see it, against real
// traffic: curl -> nginx over HTTP/1.1 and HTTP/2 (h2c) with 200, 404 and 500
// answers. `promtool check metrics` (Debian's prometheus) must accept the
// exposition; the RED series carry OpenTelemetry semantic-convention labels
// with counts equal to what curl sent; sonde_build_info names the version
// and the node (SONDE_NODE_NAME).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using testlib::Subprocess;

// One exposition sample: "name{labels}" -> value (labels as printed).
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// Sum of the samples of `metric` whose labels contain every `fragments` entry.
double Sum(const std::map<std::string, double>& samples, const std::string& metric,
           const std::vector<std::string>& fragments) {
  double total = 0;
  for (const auto& [key, value] : samples) {
    if (key.rfind(metric + "{", 0) != 0) continue;
    bool all = true;
    for (const auto& f : fragments) all = all && key.find(f) != std::string::npos;
    if (all) total += value;
  }
  return total;
}

TEST(MetricsConventions, PromtoolAcceptsAndLabelsFollowSemconv) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(testlib::CommandExists("promtool"), "promtool (Debian package prometheus)");
  SONDE_REQUIRE(testlib::CommandExists("curl"), "curl");
  SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
  SONDE_REQUIRE(access(testlib::AgentBinary().c_str(), X_OK) == 0, "sonde-agent binary");

  const int h1 = testlib::FreeTcpPort();
  const int h2 = testlib::FreeTcpPort();
  const int metrics_port = testlib::FreeTcpPort();
  const std::string routes =
      " location /ok { return 200 \"ok\\n\"; } location /fail { return 500; } location / { return 404; } }";
  testlib::Nginx nginx("server { listen 127.0.0.1:" + std::to_string(h1) + ";" + routes + "\nserver { listen 127.0.0.1:" +
                           std::to_string(h2) + " http2;" + routes,
                       h1);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", h2, std::chrono::seconds(5)));

  testlib::TempDir dir("sonde-metrics-conv");
  auto agent = Subprocess::Start({"env", "SONDE_NODE_NAME=conventions-node", testlib::AgentBinary(), "run",
                                  "--no-otlp", "--no-json", "--port", std::to_string(h1), "--port",
                                  std::to_string(h2), "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port),
                                  "--ready-file", dir.File("ready")},
                                 dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30))) << testlib::ReadFile(dir.File("agent.err"));

  auto curl = [](const std::vector<std::string>& extra, const std::string& url, int times) {
    for (int i = 0; i < times; ++i) {
      std::vector<std::string> argv = {"curl", "-s", "-o", "/dev/null"};
      argv.insert(argv.end(), extra.begin(), extra.end());
      argv.push_back(url);
      int code = -1;
      testlib::RunCommand(argv, &code);
      ASSERT_EQ(code, 0) << url;
    }
  };
  const std::string base1 = "http://127.0.0.1:" + std::to_string(h1);
  const std::string base2 = "http://127.0.0.1:" + std::to_string(h2);
  curl({}, base1 + "/ok", 5);
  curl({}, base1 + "/missing", 3);
  curl({}, base1 + "/fail", 2);
  curl({"--http2-prior-knowledge"}, base2 + "/ok", 4);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));

  int code = -1;
  const std::string text =
      testlib::RunCommand({"curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"}, &code);
  ASSERT_EQ(code, 0);
  agent.Stop();
  const std::string path = dir.File("metrics.txt");
  {
    FILE* f = std::fopen(path.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  const std::string lint = testlib::RunCommand({"sh", "-c", "promtool check metrics < '" + path + "' 2>&1"}, &code);
  EXPECT_EQ(code, 0) << lint;
  EXPECT_EQ(lint, "") << "promtool: " << lint;

  const auto s = Samples(text);
  const std::string count = "http_server_request_duration_seconds_count";
  const std::string h11 = "network_protocol_name=\"http\",network_protocol_version=\"1.1\"";
  EXPECT_EQ(Sum(s, count, {"service_name=\"nginx\"", h11, "http_response_status_code=\"200\"", "error_type=\"\""}), 5)
      << text;
  EXPECT_EQ(Sum(s, count, {h11, "http_response_status_code=\"404\"", "error_type=\"\""}), 3);  // not a server error
  EXPECT_EQ(Sum(s, count, {h11, "http_response_status_code=\"500\"", "error_type=\"500\""}), 2);
  EXPECT_EQ(Sum(s, count,
                {"network_protocol_name=\"http\",network_protocol_version=\"2\"", "http_response_status_code=\"200\""}),
            4);
  EXPECT_EQ(Sum(s, count, {"url_scheme=\"http\""}), 14);
  // curl's side: 404 is a client error.
  EXPECT_EQ(Sum(s, "http_client_request_duration_seconds_count", {"http_response_status_code=\"404\"", "error_type=\"404\""}),
            3);
  EXPECT_EQ(Sum(s, "sonde_build_info", {"node_name=\"conventions-node\"", "version=\""}), 1) << text;
  EXPECT_EQ(text.find("http_status_class"), std::string::npos);
  std::printf("promtool check metrics: ok over %zu samples; semconv labels and counts as sent (5+3+2 HTTP/1.1, 4 HTTP/2)\n",
              s.size());
}

}  // namespace
}  // namespace sonde
