// The agent as an unprivileged user with exactly the capabilities the
// systemd unit and the DaemonSet grant (CAP_BPF, CAP_PERFMON, CAP_NET_RAW,
// CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_SYS_NICE), started through capsh like
// AmbientCapabilities= does: it must attach and see real traffic (curl ->
// nginx, every request the access log records, with its path and status),
// run with no other capability, see HTTPS too (TLS uprobes without
// CAP_SYS_ADMIN), and without CAP_BPF refuse to start with an error rather
// than run blind.
#include <gtest/gtest.h>
#include <cerrno>
#include <cstring>
#include <sys/resource.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testlib/agent_observer.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"
#include "tests/testlib/test_certs.h"

namespace sonde {
namespace {

using testlib::Subprocess;

constexpr const char* kUser = "nobody";
constexpr const char* kCaps = "cap_bpf,cap_perfmon,cap_net_raw,cap_sys_ptrace,cap_dac_read_search,cap_sys_nice";
// The same set as a capability mask (linux/capability.h bit numbers).
constexpr uint64_t kCapMask =
    (1ULL << 39) | (1ULL << 38) | (1ULL << 13) | (1ULL << 19) | (1ULL << 2) | (1ULL << 23);

// capsh: keep `caps` across the switch to `user` and raise them as ambient,
// so the exec'd agent holds exactly them (what systemd's User= +
// AmbientCapabilities= do).
std::vector<std::string> AsUnprivileged(const std::string& caps, const std::vector<std::string>& argv) {
  std::string cmd = "exec";
  for (const auto& a : argv) cmd += " '" + a + "'";
  return {"capsh", "--caps=" + caps + "+eip cap_setpcap,cap_setuid,cap_setgid+ep", "--keep=1",
          std::string("--user=") + kUser, "--addamb=" + caps, "--", "-c", cmd};
}

// "Name:\tvalue" lines of /proc/<pid>/status.
std::map<std::string, std::string> ProcStatus(pid_t pid) {
  std::map<std::string, std::string> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    out[line.substr(0, colon)] = value;
  }
  return out;
}

// (path, status) -> count, from nginx's access log: the ground truth.
std::map<std::pair<std::string, int>, int> AccessLogCounts(const std::string& path) {
  std::map<std::pair<std::string, int>, int> counts;
  std::ifstream in(path);
  std::string line;
  const std::regex re(R"re("GET (\S+) HTTP/1\.1" (\d{3}) )re");
  std::smatch m;
  while (std::getline(in, line)) {
    if (std::regex_search(line, m, re)) ++counts[{m[1].str(), std::stoi(m[2].str())}];
  }
  return counts;
}

// (path, status) -> count of nginx's server spans on `port` (only those with
// url.scheme `scheme` when given).
std::map<std::pair<std::string, int>, int> ServerSpanCounts(const std::string& path, int port,
                                                            const std::string& scheme = "") {
  std::map<std::pair<std::string, int>, int> counts;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || j.value("kind", "") != "server") continue;
    const auto& a = j["attributes"];
    if (!a.is_object() || a.value("server.port", 0) != port) continue;
    if (!scheme.empty() && a.value("url.scheme", "") != scheme) continue;
    ++counts[{a.value("url.path", ""), a.value("http.response.status_code", 0)}];
  }
  return counts;
}

class LeastPrivilege : public ::testing::Test {
 protected:
  void SetUp() override {
    SONDE_REQUIRE_ROOT();
    SONDE_REQUIRE(testlib::CommandExists("capsh"), "capsh (libcap2-bin)");
    SONDE_REQUIRE(testlib::CommandExists("curl"), "curl");
    SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx");
    SONDE_REQUIRE(getpwnam(kUser) != nullptr, "user nobody");
    SONDE_REQUIRE(access(testlib::AgentBinary().c_str(), X_OK) == 0, "sonde-agent binary");
    // The unprivileged agent cannot mount tracefs; the unit's
    // sys-kernel-tracing.mount (here: the test) does it first.
    struct stat st {};
    if (stat("/sys/kernel/tracing/events", &st) != 0) {
      testlib::RunCommand({"mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"});
    }
    SONDE_REQUIRE(stat("/sys/kernel/tracing/events", &st) == 0, "tracefs at /sys/kernel/tracing");
    // The unprivileged agent writes its spans here.
    chmod(dir_.path().c_str(), 0777);
  }

  // sonde-agent run as the unprivileged user with the unit's capabilities,
  // following `port`, spans as JSON lines to `spans`; ready-file in the test dir.
  Subprocess StartAgent(int port, int metrics_port, const std::string& spans) {
    return Subprocess::Start(
        AsUnprivileged(kCaps, {testlib::AgentBinary(), "run", "--port", std::to_string(port), "--no-otlp",
                               "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port), "--json-out",
                               spans, "--ready-file", dir_.File("ready")}),
        dir_.File("agent.out"), dir_.File("agent.err"));
  }

  testlib::TempDir dir_{"sonde-least-priv"};
};

TEST_F(LeastPrivilege, UnprivilegedAgentWithFiveCapabilitiesCapturesCurlToNginx) {
  const int port = testlib::FreeTcpPort();
  const int metrics_port = testlib::FreeTcpPort();
  testlib::Nginx nginx("server { listen 127.0.0.1:" + std::to_string(port) +
                           "; location / { return 200 \"ok\\n\"; } location /missing { return 404; } }",
                       port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());

  const std::string spans = dir_.File("spans.json");
  auto agent = StartAgent(port, metrics_port, spans);
  ASSERT_TRUE(testlib::WaitForFile(dir_.File("ready"), std::chrono::seconds(30)))
      << testlib::ReadFile(dir_.File("agent.err"));

  // Who the running agent is: the unprivileged user, exactly these capabilities.
  const auto status = ProcStatus(agent.pid());
  const std::string uid = std::to_string(getpwnam(kUser)->pw_uid);
  EXPECT_EQ(status.at("Uid").substr(0, status.at("Uid").find_first_of(" \t")), uid);
  EXPECT_EQ(std::stoull(status.at("CapEff"), nullptr, 16), kCapMask) << status.at("CapEff");
  EXPECT_EQ(std::stoull(status.at("CapPrm"), nullptr, 16), kCapMask) << status.at("CapPrm");
  // CAP_SYS_NICE is what lets the agent run in the background
  // (capture.background_nice, 19) and regain capture.drain_nice (-5) when
  // its drain falls behind as an unprivileged user: its watchdog thread runs
  // at -5, the main thread (the drain) at 19.
  errno = 0;
  EXPECT_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(agent.pid())), 19) << std::strerror(errno);
  EXPECT_EQ(testlib::ThreadNiceValues(agent.pid())[-5], 1);

  // Traffic: distinct paths, some 404s.
  int sent = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string path = (i % 5 == 4) ? "/missing/" + std::to_string(i) : "/item/" + std::to_string(i);
    int code = -1;
    testlib::RunCommand({"curl", "-s", "-o", "/dev/null", "http://127.0.0.1:" + std::to_string(port) + path}, &code);
    ASSERT_EQ(code, 0);
    ++sent;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the ring buffer drains
  // The metrics endpoint answers for the unprivileged agent too.
  int code = -1;
  const std::string metrics =
      testlib::RunCommand({"curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(metrics.find("http_server_request_duration_seconds"), std::string::npos);
  EXPECT_EQ(agent.Stop(std::chrono::milliseconds(15000)), 0) << testlib::ReadFile(dir_.File("agent.err"));

  const auto truth = AccessLogCounts(nginx.access_log());
  const auto seen = ServerSpanCounts(spans, port);
  int truth_total = 0;
  for (const auto& [key, n] : truth) truth_total += n;
  ASSERT_EQ(truth_total, sent) << "nginx logged " << truth_total << " of " << sent;
  EXPECT_EQ(seen, truth) << "server spans per (path, status) differ from nginx's access log";
  std::printf("unprivileged agent (uid %s, CapEff %s): %d requests, %zu distinct (path, status) seen as in the log\n",
              uid.c_str(), status.at("CapEff").c_str(), sent, seen.size());
}

// HTTPS with the same six capabilities and no CAP_SYS_ADMIN. Kernels with
// the CVE-2025-38466 fix (this one) refuse the uprobe PMU without
// CAP_SYS_ADMIN; the agent then places the TLS probes as uprobe_multi links
// (CAP_BPF + CAP_PERFMON), says so on /metrics, and sees every request nginx
// logged, in plaintext.
TEST_F(LeastPrivilege, UnprivilegedAgentCapturesHttpsWithoutCapSysAdmin) {
  SONDE_REQUIRE(testlib::CommandExists("openssl"), "openssl CLI");
  // What the unprivileged agent may do here decides the expected attach mode.
  int probe_code = -1;
  const std::string probe_text =
      testlib::RunCommand(AsUnprivileged(kCaps, {testlib::AgentBinary(), "probe"}), &probe_code);
  const auto probe = nlohmann::json::parse(probe_text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(probe.is_object()) << probe_text;
  SONDE_REQUIRE(probe.value("uprobes", false), "uprobes for an agent with CAP_BPF + CAP_PERFMON (kernel >= 6.6 or "
                                               "without the CVE-2025-38466 fix)");
  const std::string attach = probe.value("uprobe_pmu", false) ? "uprobe_pmu" : "uprobe_multi";

  testing::TestCertificates certs;
  ASSERT_TRUE(certs.ok());
  for (const char* f : {"server.pem", "server.key"}) chmod(certs.File(f).c_str(), 0644);
  const int port = testlib::FreeTcpPort();
  const int metrics_port = testlib::FreeTcpPort();
  testlib::Nginx nginx("server { listen 127.0.0.1:" + std::to_string(port) + " ssl;\n ssl_certificate " +
                           certs.File("server.pem") + "; ssl_certificate_key " + certs.File("server.key") +
                           ";\n location / { return 200 \"ok\\n\"; } location /missing { return 404; } }",
                       port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());

  const std::string spans = dir_.File("spans.json");
  auto agent = StartAgent(port, metrics_port, spans);
  ASSERT_TRUE(testlib::WaitForFile(dir_.File("ready"), std::chrono::seconds(30)))
      << testlib::ReadFile(dir_.File("agent.err"));
  const auto status = ProcStatus(agent.pid());
  EXPECT_EQ(std::stoull(status.at("CapEff"), nullptr, 16), kCapMask) << status.at("CapEff");

  int sent = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string path = (i % 5 == 4) ? "/missing/" + std::to_string(i) : "/secure/" + std::to_string(i);
    int code = -1;
    testlib::RunCommand({"curl", "-s", "--cacert", certs.File("ca.pem"), "-o", "/dev/null",
                         "https://127.0.0.1:" + std::to_string(port) + path},
                        &code);
    ASSERT_EQ(code, 0);
    ++sent;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the ring buffer drains
  int code = -1;
  const std::string metrics =
      testlib::RunCommand({"curl", "-sf", "http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"}, &code);
  EXPECT_EQ(code, 0);
  EXPECT_NE(metrics.find("sonde_agent_tls_capture_enabled{attach=\"" + attach + "\",reason=\"\"} 1"),
            std::string::npos)
      << metrics;
  EXPECT_EQ(agent.Stop(std::chrono::milliseconds(15000)), 0) << testlib::ReadFile(dir_.File("agent.err"));
  const std::string log = testlib::ReadFile(dir_.File("agent.err"));
  EXPECT_NE(log.find("TLS capture on: "), std::string::npos) << log;
  EXPECT_EQ(log.find("TLS capture off"), std::string::npos) << log;

  const auto truth = AccessLogCounts(nginx.access_log());
  const auto seen = ServerSpanCounts(spans, port, "https");
  int truth_total = 0;
  for (const auto& [key, n] : truth) truth_total += n;
  ASSERT_EQ(truth_total, sent) << "nginx logged " << truth_total << " of " << sent;
  EXPECT_EQ(seen, truth) << "HTTPS server spans per (path, status) differ from nginx's access log";
  std::printf("unprivileged agent, no CAP_SYS_ADMIN, TLS probes as %s: %d HTTPS requests, %zu distinct "
              "(path, status) seen as in the log\n",
              attach.c_str(), sent, seen.size());
}

TEST_F(LeastPrivilege, WithoutCapBpfTheAgentRefusesToStart) {
  auto agent = Subprocess::Start(
      AsUnprivileged("cap_perfmon,cap_net_raw,cap_sys_ptrace,cap_dac_read_search",
                     {testlib::AgentBinary(), "run", "--no-otlp", "--metrics-listen", "", "--no-json",
                      "--ready-file", dir_.File("ready")}),
      dir_.File("agent.out"), dir_.File("agent.err"));
  const int code = agent.Wait(std::chrono::seconds(30));
  const std::string err = testlib::ReadFile(dir_.File("agent.err"));
  EXPECT_NE(code, 0) << err;
  EXPECT_NE(code, -1) << "still running without CAP_BPF: " << err;
  EXPECT_FALSE(testlib::WaitForFile(dir_.File("ready"), std::chrono::milliseconds(10)));
  // The refusal names the missing privilege, not an old kernel.
  EXPECT_NE(err.find("lacks CAP_BPF"), std::string::npos) << err;
  EXPECT_EQ(err.find("kernel < 5.8"), std::string::npos) << err;
}

}  // namespace
}  // namespace sonde
