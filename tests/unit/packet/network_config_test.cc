#include <yaml-cpp/yaml.h>

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <utility>

#include "agent/packet/network_sources.h"
#include "agent/packet/packet_metrics.h"
#include "tests/unit/packet/packet_builder.h"

namespace sonde::packet {
namespace {

TEST(NetworkConfig, YamlSectionOverridesDefaults) {
  NetworkConfig c;
  auto node = YAML::Load("packet_capture: true\ninterfaces: 'veth.*'\nsnaplen: 512\nports: [80, 8080]\n");
  ASSERT_TRUE(LoadNetworkYaml(node, "agent.yaml", c).ok());
  EXPECT_TRUE(c.packet_capture);
  EXPECT_TRUE(c.tcp_health);  // default kept
  EXPECT_EQ(c.interfaces, "veth.*");
  EXPECT_EQ(c.snaplen, 512);
  EXPECT_EQ(c.ports, (std::vector<uint16_t>{80, 8080}));
  EXPECT_EQ(FilterForPorts(c.ports), "(tcp or udp) and (port 80 or port 8080)");
  auto bad = YAML::Load("snaplenn: 1\n");
  auto st = LoadNetworkYaml(bad, "agent.yaml", c);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(std::string(st.message()), "agent.yaml: network: unknown key 'snaplenn'");
  auto wrong = YAML::Load("snaplen: big\n");
  EXPECT_FALSE(LoadNetworkYaml(wrong, "agent.yaml", c).ok());
}

// A bad value names the file (or "environment"), then network.<key>: the
// section once, not "network: network: bad conversion" without the key.
TEST(NetworkConfig, BadValueErrorNamesTheKeyWithTheSectionOnce) {
  for (const auto& [yaml, key] : {std::pair{"snaplen: big\n", "network.snaplen"},
                                  std::pair{"tcp_health: maybe\n", "network.tcp_health"},
                                  std::pair{"ports: [80, x]\n", "network.ports"},
                                  std::pair{"flow_idle_timeout_s: -5\n", "network.flow_idle_timeout_s"}}) {
    NetworkConfig c;
    const auto st = LoadNetworkYaml(YAML::Load(yaml), "environment", c);
    ASSERT_FALSE(st.ok()) << yaml;
    const std::string m(st.message());
    EXPECT_EQ(m.rfind(std::string("environment: ") + key + ": ", 0), 0u) << m;
    EXPECT_EQ(m.find("network: network"), std::string::npos) << m;
    EXPECT_EQ(m.find("network.network"), std::string::npos) << m;
  }
  NetworkConfig c;
  EXPECT_FALSE(LoadNetworkYaml(YAML::Load("[1, 2]"), "agent.yaml", c).ok());  // not a mapping
  EXPECT_TRUE(LoadNetworkYaml(YAML::Node(), "agent.yaml", c).ok());          // absent section
}

// TCP metrics per client address: off by default (address classes), on by
// the YAML key or the flag.
TEST(NetworkConfig, TcpPerClientIpIsOptIn) {
  NetworkConfig c;
  EXPECT_FALSE(c.tcp_per_client_ip);
  ASSERT_TRUE(LoadNetworkYaml(YAML::Load("tcp_per_client_ip: true\n"), "agent.yaml", c).ok());
  EXPECT_TRUE(c.tcp_per_client_ip);
  EXPECT_FALSE(LoadNetworkYaml(YAML::Load("tcp_per_client_ip: maybe\n"), "agent.yaml", c).ok());
  NetworkConfig f;
  CLI::App app;
  AddNetworkFlags(app, f);
  const char* argv[] = {"run", "--tcp-per-client-ip"};
  ASSERT_NO_THROW(app.parse(2, const_cast<char**>(argv)));
  EXPECT_TRUE(f.tcp_per_client_ip);
}

TEST(PacketMetrics, EndedAndLiveFlowsAddUp) {
  FlowTable table;
  PacketMetrics metrics;
  table.set_on_flow_end([&](const FlowStats& f) { metrics.OnFlowEnd(f); });
  auto send = [&](uint16_t cport, uint8_t flags, uint64_t ts, std::string payload = {}) {
    testing::TcpSeg s;
    s.sport = cport; s.flags = flags; s.payload = std::move(payload); s.seq = 1;
    auto f = testing::Frame(s);
    ParsedPacket p;
    ASSERT_EQ(ParsePacket(1, f, ts, p), ParseStatus::kOk);
    table.OnPacket(p);
  };
  send(40000, kAck, 1, "abc");
  send(40000, kRst, 2);
  table.Expire(10'000'000'000);  // ends the reset flow
  send(40001, kAck, 10'000'000'001, "abcd");  // live
  std::string out;
  metrics.AppendPrometheus(out, table, {InterfaceStats{.name = "veth0", .received = 7, .dropped = 1}});
  const std::string l = R"(client="10.0.0.1",server="10.0.0.2",server_port="80",transport="tcp")";
  EXPECT_NE(out.find("sonde_packet_flows_total{" + l + "} 2\n"), std::string::npos) << out;
  EXPECT_NE(out.find("sonde_packet_bytes_total{" + l + ",direction=\"client_to_server\"} 7\n"), std::string::npos);
  EXPECT_NE(out.find("sonde_packet_resets_total{" + l + ",direction=\"client_to_server\"} 1\n"), std::string::npos);
  EXPECT_NE(out.find("sonde_packet_capture_dropped_total{interface=\"veth0\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace sonde::packet
