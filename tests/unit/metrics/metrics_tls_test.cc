// /metrics over HTTPS (issue #17): the agent's metrics.tls_* settings (YAML,
// SONDE_METRICS_TLS_* environment, --metrics-tls-* flags) reach the metrics
// server, which curl then scrapes with --cacert, and with a client
// certificate when metrics.tls_client_ca is set.
#include <CLI/CLI.hpp>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>

#include "agent/core/config.h"
#include "agent/core/config_env.h"
#include "agent/metrics/prometheus_text.h"
#include "agent/metrics/server.h"
#include "tests/testlib/test_certs.h"

namespace sonde::metrics {
namespace {

// curl's exit code and body; `args` go before the URL.
std::pair<int, std::string> Curl(const std::string& args, int port) {
  const std::string cmd = "curl -sS --max-time 10 " + args + " https://127.0.0.1:" + std::to_string(port) +
                          "/metrics 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return {-1, out};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

net::TlsFiles TlsOf(const core::AgentConfig& c) {
  return {c.metrics_tls_cert, c.metrics_tls_key, c.metrics_tls_client_ca};
}

class MetricsTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!certs_.ok()) GTEST_SKIP() << "openssl not available";
  }
  void Serve(const net::TlsFiles& tls) {
    server_.AddCollector([](std::string& out) { prometheus::AppendCounter(out, "sonde_agent_events_total", "Events.", 42); });
    server_.SetTls(tls);
    ASSERT_TRUE(server_.Start("127.0.0.1", 0).ok());
  }
  testing::TestCertificates certs_;
  MetricsServer server_;
};

TEST_F(MetricsTlsTest, YamlKeysServeHttpsThatCurlVerifies) {
  YAML::Node root = YAML::Load("metrics:\n  tls_cert: " + certs_.File("server.pem") +
                               "\n  tls_key: " + certs_.File("server.key") + "\n");
  core::AgentConfig config;
  ASSERT_TRUE(core::LoadConfigTree(root, "test.yaml", config).ok());
  ASSERT_TRUE(core::ValidateConfig(config).ok());
  Serve(TlsOf(config));
  auto [rc, body] = Curl("--cacert " + certs_.File("ca.pem"), server_.port());
  EXPECT_EQ(rc, 0) << body;
  EXPECT_NE(body.find("sonde_agent_events_total 42"), std::string::npos) << body;
  // Without the CA the certificate is not trusted; plain HTTP gets no metrics.
  EXPECT_NE(Curl("", server_.port()).first, 0);
  const std::string plain = "curl -sS --max-time 5 http://127.0.0.1:" + std::to_string(server_.port()) +
                            "/metrics 2>/dev/null | grep -q sonde_agent_events_total";
  EXPECT_NE(std::system(plain.c_str()), 0);
}

TEST_F(MetricsTlsTest, EnvironmentAndClientCertificates) {
  YAML::Node root;
  auto applied = core::ApplyEnvironment(root, {"SONDE_METRICS_TLS_CERT=" + certs_.File("server.pem"),
                                               "SONDE_METRICS_TLS_KEY=" + certs_.File("server.key"),
                                               "SONDE_METRICS_TLS_CLIENT_CA=" + certs_.File("ca.pem")});
  ASSERT_TRUE(applied.ok()) << applied.status();
  core::AgentConfig config;
  ASSERT_TRUE(core::LoadConfigTree(root, "environment", config).ok());
  ASSERT_EQ(config.metrics_tls_client_ca, certs_.File("ca.pem"));
  Serve(TlsOf(config));
  const std::string ca = "--cacert " + certs_.File("ca.pem");
  EXPECT_NE(Curl(ca, server_.port()).first, 0);  // no client certificate: handshake refused
  auto [rc, body] = Curl(ca + " --cert " + certs_.File("client.pem") + " --key " + certs_.File("client.key"),
                         server_.port());
  EXPECT_EQ(rc, 0) << body;
  EXPECT_NE(body.find("sonde_agent_events_total 42"), std::string::npos) << body;
}

TEST(MetricsTlsConfig, FlagsAndHalfConfigurationsAreCaught) {
  core::AgentConfig config;
  CLI::App app;
  core::AddMetricsTlsFlags(app, config);
  const char* argv[] = {"agent", "--metrics-tls-cert", "/c.pem", "--metrics-tls-key", "/k.pem"};
  app.parse(5, const_cast<char**>(argv));
  EXPECT_EQ(config.metrics_tls_cert, "/c.pem");
  EXPECT_EQ(config.metrics_tls_key, "/k.pem");
  EXPECT_TRUE(core::ValidateConfig(config).ok());
  config.metrics_tls_key.clear();
  auto st = core::ValidateConfig(config);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("metrics.tls_key"), std::string::npos) << st;
  config = {};
  config.metrics_tls_client_ca = "/ca.pem";
  EXPECT_FALSE(core::ValidateConfig(config).ok());
}

}  // namespace
}  // namespace sonde::metrics
