// The otlp and profile YAML sections (agent/run_config.h): each key reaches
// the field its flag sets; unknown keys, wrong types and ranges are named.
#include "agent/run_config.h"

#include <gtest/gtest.h>

namespace sonde::agent {
namespace {

TEST(RunConfig, OtlpKeysReachTheReceiverConfig) {
  otlp::OtlpFlags flags;
  bool enabled = true;
  const auto st = LoadOtlpYaml(YAML::Load("enabled: false\ngrpc_port: 14317\nhttp_port: -1\nbind: 127.0.0.1\n"
                                          "token: t0k\nmax_body_mib: 8\nmax_inflight: 9\nretry_after_s: 3\n"
                                          "http_threads: 4\ntrace_self: true\nsender_lookup: false\n"),
                               "f", flags, enabled);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_FALSE(enabled);
  EXPECT_EQ(flags.config.grpc_port, 14317);
  EXPECT_EQ(flags.config.http_port, -1);
  EXPECT_EQ(flags.bind, "127.0.0.1");
  EXPECT_EQ(flags.config.bearer_token, "t0k");
  EXPECT_EQ(flags.max_body_mib, 8u);
  EXPECT_EQ(flags.config.ingest.max_inflight_requests, 9u);
  EXPECT_EQ(flags.config.ingest.retry_after_s, 3);
  EXPECT_EQ(flags.config.http_threads, 4);
  EXPECT_TRUE(flags.config.trace_self);
  EXPECT_FALSE(flags.config.ingest.resolve_sender);
}

TEST(RunConfig, OtlpMemoryLimiterKeysAndFlagsResolveToBytes) {
  otlp::OtlpFlags flags;
  bool enabled = true;
  ASSERT_TRUE(LoadOtlpYaml(YAML::Load("memory_soft_mib: 100\nmemory_hard_mib: 150\n"), "f", flags, enabled).ok());
  ASSERT_TRUE(otlp::ResolveOtlpFlags(flags).ok());
  EXPECT_EQ(flags.config.ingest.memory.soft_bytes, 100ull << 20);
  EXPECT_EQ(flags.config.ingest.memory.hard_bytes, 150ull << 20);
  otlp::OtlpFlags defaults;  // hard defaults to soft + 25 %
  ASSERT_TRUE(otlp::ResolveOtlpFlags(defaults).ok());
  EXPECT_EQ(defaults.config.ingest.memory.soft_bytes, 256ull << 20);
  EXPECT_EQ(defaults.config.ingest.memory.hard_bytes, 320ull << 20);
  otlp::OtlpFlags inverted;
  CLI::App app;
  otlp::AddOtlpFlags(app, inverted);
  const char* argv[] = {"agent", "--otlp-memory-soft-mib", "64", "--otlp-memory-hard-mib", "32"};
  app.parse(5, const_cast<char**>(argv));
  auto st = otlp::ResolveOtlpFlags(inverted);
  EXPECT_NE(st.message().find("memory_hard_mib"), std::string::npos) << st;
  otlp::OtlpFlags below_body;  // a largest-allowed request could never be admitted
  below_body.max_body_mib = 64;
  below_body.memory_soft_mib = 32;
  st = otlp::ResolveOtlpFlags(below_body);
  EXPECT_NE(st.message().find("max_body_mib"), std::string::npos) << st;
}

TEST(RunConfig, OtlpErrorsNameTheKey) {
  otlp::OtlpFlags flags;
  bool enabled = true;
  auto unknown = LoadOtlpYaml(YAML::Load("grpc_prot: 1\n"), "f", flags, enabled);
  EXPECT_NE(unknown.message().find("grpc_prot"), std::string::npos) << unknown;
  auto type = LoadOtlpYaml(YAML::Load("http_port: many\n"), "f", flags, enabled);
  EXPECT_NE(type.message().find("otlp.http_port"), std::string::npos) << type;
  auto range = LoadOtlpYaml(YAML::Load("grpc_port: 70000\n"), "f", flags, enabled);
  EXPECT_NE(range.message().find("grpc_port"), std::string::npos) << range;
}

TEST(RunConfig, ProfileKeys) {
  profile::ProfileFlags flags;
  ASSERT_TRUE(LoadProfileYaml(YAML::Load("enabled: true\nhz: 49\ninterval_s: 5\noff_cpu: false\npids: [1, 2]\n"),
                              "f", flags)
                  .ok());
  EXPECT_TRUE(flags.enabled);
  EXPECT_EQ(flags.frequency_hz, 49u);
  EXPECT_EQ(flags.drain_interval_s, 5u);
  EXPECT_FALSE(flags.off_cpu);
  EXPECT_EQ(flags.pids, (std::vector<uint32_t>{1, 2}));
  auto range = LoadProfileYaml(YAML::Load("hz: 0\n"), "f", flags);
  EXPECT_NE(range.message().find("profile.hz"), std::string::npos) << range;
  auto unknown = LoadProfileYaml(YAML::Load("frequency: 3\n"), "f", flags);
  EXPECT_NE(unknown.message().find("frequency"), std::string::npos) << unknown;
}

TEST(RunConfig, AbsentSectionsChangeNothing) {
  otlp::OtlpFlags flags;
  bool enabled = true;
  ASSERT_TRUE(LoadOtlpYaml(YAML::Node(), "f", flags, enabled).ok());
  EXPECT_TRUE(enabled);
  EXPECT_EQ(flags.config.grpc_port, 4317);
}

}  // namespace
}  // namespace sonde::agent

namespace sonde::agent {
namespace {

TEST(RunConfig, ServiceRules) {
  trace::ServiceNamingOptions o;
  const auto st = LoadServicesYaml(YAML::Load("builtins: false\nrules:\n"
                                              "  - {name: payments, exe: '/payments-api$'}\n"
                                              "  - {name: admin, port: 8001}\n"
                                              "  - {name: legacy, cmdline: '--legacy', cgroup: 'legacy\\.slice'}\n"),
                                   "f", o);
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_FALSE(o.builtins);
  ASSERT_EQ(o.rules.size(), 3u);
  EXPECT_EQ(o.rules[0].name, "payments");
  EXPECT_EQ(o.rules[0].exe, "/payments-api$");
  EXPECT_EQ(o.rules[1].port, 8001);
  EXPECT_EQ(o.rules[2].cgroup, "legacy\\.slice");
  auto unknown = LoadServicesYaml(YAML::Load("rules:\n  - {name: a, image: x}\n"), "f", o);
  EXPECT_NE(unknown.message().find("services.rules[0]: unknown key 'image'"), std::string::npos) << unknown;
  auto not_list = LoadServicesYaml(YAML::Load("rules: {name: a}\n"), "f", o);
  EXPECT_NE(not_list.message().find("services.rules: expected a list"), std::string::npos) << not_list;
  auto bad_port = LoadServicesYaml(YAML::Load("rules:\n  - {name: a, port: 70000}\n"), "f", o);
  EXPECT_NE(bad_port.message().find("services.rules[0].port"), std::string::npos) << bad_port;
}

}  // namespace
}  // namespace sonde::agent
