#include "agent/core/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sonde::core {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& yaml) {
    path_ = (std::filesystem::temp_directory_path() / ("sonde_cfg_" + std::to_string(getpid()) + ".yaml")).string();
    std::ofstream(path_) << yaml;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::string path_;
};

TEST_F(ConfigTest, DefaultsAreValid) { EXPECT_TRUE(ValidateConfig(AgentConfig{}).ok()); }

TEST_F(ConfigTest, SpanBudgetFromYamlAndItsRange) {
  AgentConfig c;
  auto st = LoadYamlConfig(
      Write("spans:\n  rate_limit: 0\n  slow_ms: 250\n  honour_parent_flag: false\n  join_exchanges: false\n"), c);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.spans.rate_limit, 0.0);
  EXPECT_EQ(c.spans.slow_ms, 250u);
  EXPECT_FALSE(c.spans.honour_parent_flag);
  EXPECT_FALSE(c.spans.join_exchanges);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.spans.rate_limit = -1;
  const auto bad = ValidateConfig(c);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("spans.rate_limit"), std::string_view::npos);
  EXPECT_FALSE(LoadYamlConfig(Write("spans:\n  rate_limt: 5\n"), c).ok()) << "unknown key named";
}

TEST_F(ConfigTest, YamlOverridesDefaults) {
  AgentConfig c;
  auto st = LoadYamlConfig(Write(R"(
log_level: debug
capture:
  payload_bytes: 8192
  exclude_ports: [22, 7070]
  include_pids: [1, 2]
server:
  address: sonde-server:7070
)"),
                           c);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.capture.payload_bytes, 8192u);
  EXPECT_EQ(c.capture.exclude_ports, (std::vector<uint16_t>{22, 7070}));
  EXPECT_EQ(c.capture.include_pids, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(c.server_address, "sonde-server:7070");
  EXPECT_EQ(c.capture.ringbuf_mb, 16u);  // untouched default
  EXPECT_TRUE(ValidateConfig(c).ok());
}

// Issue #22: the drain thread's nice value (default -5), from YAML, range checked.
TEST_F(ConfigTest, DrainNiceFromYamlAndItsRange) {
  AgentConfig c;
  EXPECT_EQ(c.capture.drain_nice, -5);
  ASSERT_TRUE(LoadYamlConfig(Write("capture:\n  drain_nice: 0\n"), c).ok());
  EXPECT_EQ(c.capture.drain_nice, 0);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.capture.drain_nice = -21;
  const auto bad = ValidateConfig(c);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("capture.drain_nice"), std::string_view::npos);
  c.capture.drain_nice = 20;
  EXPECT_FALSE(ValidateConfig(c).ok());
}

// Issue #14: the background priority (default 19), never ahead of the catch-up one.
TEST_F(ConfigTest, BackgroundNiceFromYamlAndItsRange) {
  AgentConfig c;
  EXPECT_EQ(c.capture.background_nice, 19);
  ASSERT_TRUE(LoadYamlConfig(Write("capture:\n  background_nice: 10\n  drain_nice: -2\n"), c).ok());
  EXPECT_EQ(c.capture.background_nice, 10);
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.capture.background_nice = -2;  // = drain_nice: one fixed priority
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.capture.background_nice = -3;
  const auto bad = ValidateConfig(c);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("capture.background_nice"), std::string_view::npos) << bad.message();
  c.capture.background_nice = 20;
  EXPECT_FALSE(ValidateConfig(c).ok());
  EXPECT_FALSE(c.capture.background_idle);
  ASSERT_TRUE(LoadYamlConfig(Write("capture:\n  background_idle: true\n"), c).ok());
  EXPECT_TRUE(c.capture.background_idle);
}

// Issue #17: the redaction lists and the exporter's spool are configuration.
TEST_F(ConfigTest, RedactionListsAndSpoolFromYaml) {
  AgentConfig c;
  auto st = LoadYamlConfig(Write(R"(
spans:
  redact_headers: [x-tenant-secret]
  redact_query_params: [tenant_key, sso]
server:
  spool_dir: /var/lib/sonde/spool
  spool_max_mb: 64
)"),
                           c);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.spans.redact_headers, (std::vector<std::string>{"x-tenant-secret"}));
  EXPECT_EQ(c.spans.redact_query_params, (std::vector<std::string>{"tenant_key", "sso"}));
  EXPECT_EQ(c.server_spool_dir, "/var/lib/sonde/spool");
  EXPECT_EQ(c.server_spool_max_mb, 64u);
}

TEST_F(ConfigTest, UnknownKeyIsNamed) {
  AgentConfig c;
  auto st = LoadYamlConfig(Write("capture:\n  payload_byts: 10\n"), c);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("payload_byts"), absl::string_view::npos) << st;
}

TEST_F(ConfigTest, WrongTypeIsNamed) {
  AgentConfig c;
  auto st = LoadYamlConfig(Write("capture:\n  payload_bytes: lots\n"), c);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("payload_bytes"), absl::string_view::npos) << st;
}

TEST_F(ConfigTest, SyntaxErrorIsReported) {
  AgentConfig c;
  EXPECT_FALSE(LoadYamlConfig(Write("capture: [unclosed\n"), c).ok());
}

TEST_F(ConfigTest, RangesAreValidated) {
  AgentConfig c;
  c.capture.payload_bytes = 20000;
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = AgentConfig{};
  c.capture.ringbuf_mb = 12;  // not a power of two
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = AgentConfig{};
  c.capture.include_pids = {5};
  c.capture.exclude_pids = {5};
  EXPECT_FALSE(ValidateConfig(c).ok());
}

}  // namespace
}  // namespace sonde::core
