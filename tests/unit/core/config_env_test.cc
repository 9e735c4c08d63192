// SONDE_* environment overrides laid over the YAML tree, then loaded by the
// same typed loader as a file: values, precedence over the file, sections
// created on demand, lists, empty values, unknown keys named, and variables
// that are not configuration left alone.
#include "agent/core/config_env.h"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "agent/core/config.h"

namespace sonde::core {
namespace {

absl::StatusOr<AgentConfig> Load(const std::string& yaml, const std::vector<std::string>& env,
                                 std::vector<EnvOverride>* applied = nullptr) {
  YAML::Node root = yaml.empty() ? YAML::Node() : YAML::Load(yaml);
  auto overrides = ApplyEnvironment(root, env);
  if (!overrides.ok()) return overrides.status();
  if (applied != nullptr) *applied = *overrides;
  AgentConfig c;
  if (auto st = LoadConfigTree(root, "test", c); !st.ok()) return st;
  if (auto st = ValidateConfig(c); !st.ok()) return st;
  return c;
}

TEST(ConfigEnv, VariableNamesFollowKeys) {
  EXPECT_EQ(EnvVariableFor("capture.payload_bytes"), "SONDE_CAPTURE_PAYLOAD_BYTES");
  EXPECT_EQ(EnvVariableFor("node_name"), "SONDE_NODE_NAME");
}

TEST(ConfigEnv, OverridesWinOverTheFileAndCreateSections) {
  std::vector<EnvOverride> applied;
  auto c = Load("capture:\n  payload_bytes: 1024\n  ringbuf_mb: 8\n",
                {"SONDE_CAPTURE_PAYLOAD_BYTES=8192", "SONDE_NODE_NAME=gw-7", "SONDE_SERVER_ADDRESS=10.0.0.5:7070",
                 "SONDE_SPANS_RATE_LIMIT=0", "PATH=/usr/bin"},
                &applied);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->capture.payload_bytes, 8192u);  // environment over file
  EXPECT_EQ(c->capture.ringbuf_mb, 8u);        // file kept where the environment is silent
  EXPECT_EQ(c->node_name, "gw-7");
  EXPECT_EQ(c->server_address, "10.0.0.5:7070");  // section absent from the file
  EXPECT_EQ(c->spans.rate_limit, 0);
  ASSERT_EQ(applied.size(), 4u);
  EXPECT_EQ(applied[0].variable, "SONDE_CAPTURE_PAYLOAD_BYTES");
  EXPECT_EQ(applied[0].key, "capture.payload_bytes");
}

TEST(ConfigEnv, WithoutAFile) {
  auto c = Load("", {"SONDE_LOG_LEVEL=debug", "SONDE_METRICS_LISTEN=127.0.0.1:9999"});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9999");
}

TEST(ConfigEnv, ListsAndEmptyValues) {
  auto c = Load("metrics:\n  listen: 0.0.0.0:9464\n",
                {"SONDE_CAPTURE_EXCLUDE_PORTS=[22, 7070]", "SONDE_METRICS_LISTEN="});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->capture.exclude_ports, (std::vector<uint16_t>{22, 7070}));
  EXPECT_EQ(c->metrics_listen, "");  // empty disables, as with the flag
}

TEST(ConfigEnv, UnknownKeyInASectionIsNamed) {
  auto c = Load("", {"SONDE_CAPTURE_PAYLOAD_BYTE=10"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("payload_byte"), std::string::npos) << c.status();
}

TEST(ConfigEnv, WrongTypeAndRangeAreNamed) {
  auto bad_type = Load("", {"SONDE_CAPTURE_RINGBUF_MB=lots"});
  ASSERT_FALSE(bad_type.ok());
  EXPECT_NE(bad_type.status().message().find("capture.ringbuf_mb"), std::string::npos) << bad_type.status();
  auto bad_range = Load("", {"SONDE_CAPTURE_RINGBUF_MB=3"});
  ASSERT_FALSE(bad_range.ok());
  EXPECT_NE(bad_range.status().message().find("capture.ringbuf_mb"), std::string::npos) << bad_range.status();
  auto mapping = Load("", {"SONDE_CAPTURE_PAYLOAD_BYTES={a: 1}"});
  ASSERT_FALSE(mapping.ok());
  EXPECT_NE(mapping.status().message().find("SONDE_CAPTURE_PAYLOAD_BYTES"), std::string::npos);
}

TEST(ConfigEnv, BadLogLevelIsAnError) {
  auto c = Load("", {"SONDE_LOG_LEVEL=verbose"});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("log_level"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("verbose"), std::string::npos) << c.status();
}

TEST(ConfigEnv, VariablesThatAreNotConfigurationAreLeftAlone) {
  std::vector<EnvOverride> applied;
  auto c = Load("", {"SONDE_HPACK_BACKEND=nghttp2", "SONDE_KEEP_TEST_DIRS=1", "SONDE_=x", "SONDE_CAPTURE=1", "HOME=/"},
                &applied);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(applied.empty());
}

TEST(ConfigEnv, ASectionThatIsNotAMappingIsRejected) {
  YAML::Node root = YAML::Load("capture: 5\n");
  auto applied = ApplyEnvironment(root, {"SONDE_CAPTURE_PAYLOAD_BYTES=10"});
  ASSERT_FALSE(applied.ok());
  EXPECT_NE(applied.status().message().find("capture"), std::string::npos);
}

}  // namespace
}  // namespace sonde::core
