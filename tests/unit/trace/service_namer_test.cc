// Service naming: configured rules (exe, command line, cgroup, port) before
// the built-ins (Kong/OpenResty -> kong, nginx -> nginx) before the process
// name; Kubernetes pod UID and container id from cgroup paths of the
// systemd and cgroupfs drivers; one /proc read per process, cached, redone
// on pid reuse (another comm) and after the refresh interval; bad rules
// rejected by name. /proc is a hand-made tree in a temp dir.
#include "agent/trace/service_namer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace sonde::trace {
namespace {

namespace fs = std::filesystem;

std::unique_ptr<ServiceNamer> Make(ServiceNamingOptions o = {}) {
  auto n = ServiceNamer::Create(std::move(o));
  EXPECT_TRUE(n.ok()) << n.status();
  return std::move(*n);
}

constexpr const char* kContainer = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(ServiceNamer, BuiltinsTellKongFromNginx) {
  auto n = Make();
  // Kong's workers: comm nginx, OpenResty's nginx binary.
  EXPECT_EQ(n->Name({"nginx", "/usr/local/openresty/nginx/sbin/nginx", "nginx: worker process", ""}, 8000).name,
            "kong");
  EXPECT_EQ(n->Name({"nginx", "/usr/sbin/nginx",
                     "nginx: master process /usr/sbin/nginx -p /usr/local/kong -c nginx.conf", ""},
                    8000)
                .name,
            "kong");
  EXPECT_EQ(n->Name({"nginx", "/usr/sbin/nginx", "nginx: worker process", ""}, 80).name, "nginx");
  EXPECT_EQ(n->Name({"node", "/usr/bin/node", "node server.js", ""}, 3000).name, "node");
  EXPECT_EQ(n->Name({"", "", "", ""}, 0).name, "unknown");
  ServiceNamingOptions off;
  off.builtins = false;
  EXPECT_EQ(Make(off)->Name({"nginx", "/usr/local/openresty/nginx/sbin/nginx", "", ""}, 80).name, "nginx");  // comm
}

TEST(ServiceNamer, RulesComeFirstAndAllTheirFieldsMustMatch) {
  ServiceNamingOptions o;
  o.rules = {{"payments", "/payments-api$", "", "", 0},
             {"admin", "", "", "", 8001},
             {"legacy", "", "--legacy", "legacy\\.slice", 0},
             {"edge", "openresty", "", "", 0}};
  auto n = Make(o);
  EXPECT_EQ(n->Name({"payments-api", "/opt/bin/payments-api", "", ""}, 443).name, "payments");
  EXPECT_EQ(n->Name({"nginx", "/usr/local/openresty/nginx/sbin/nginx", "", ""}, 8001).name, "admin");  // port first
  EXPECT_EQ(n->Name({"nginx", "/usr/local/openresty/nginx/sbin/nginx", "", ""}, 8000).name, "edge");   // before kong
  EXPECT_EQ(n->Name({"java", "/usr/bin/java", "java -jar x.jar --legacy", "0::/legacy.slice/x.service"}, 1).name,
            "legacy");
  // cmdline matches but cgroup does not: the rule does not apply.
  EXPECT_EQ(n->Name({"java", "/usr/bin/java", "java --legacy", "0::/system.slice/x.service"}, 1).name, "java");
}

TEST(ServiceNamer, BadRulesAreNamed) {
  ServiceNamingOptions no_name;
  no_name.rules = {{"", "x", "", "", 0}};
  EXPECT_NE(ServiceNamer::Create(no_name).status().message().find("services.rules[0]"), std::string::npos);
  ServiceNamingOptions no_match;
  no_match.rules = {{"a", "", "", "", 0}};
  EXPECT_NE(ServiceNamer::Create(no_match).status().message().find("give exe, cmdline, cgroup or port"),
            std::string::npos);
  ServiceNamingOptions bad_regex;
  bad_regex.rules = {{"ok", "fine", "", "", 0}, {"b", "", "([unclosed", "", 0}};
  const auto st = ServiceNamer::Create(bad_regex).status();
  EXPECT_NE(st.message().find("services.rules[1].cmdline"), std::string::npos) << st;
}

TEST(CgroupIdentity, KubernetesAndContainers) {
  const std::string systemd = std::string("0::/kubepods.slice/kubepods-burstable.slice/"
                                          "kubepods-burstable-pod3f2a9c1e_8b7d_4e2f_9a1b_0c3d5e7f9a2b.slice/"
                                          "cri-containerd-") + kContainer + ".scope\n";
  auto id = ParseCgroupIdentity(systemd);
  EXPECT_EQ(id.pod_uid, "3f2a9c1e-8b7d-4e2f-9a1b-0c3d5e7f9a2b");
  EXPECT_EQ(id.container_id, kContainer);
  const std::string cgroupfs =
      std::string("0::/kubepods/besteffort/pod3f2a9c1e-8b7d-4e2f-9a1b-0c3d5e7f9a2b/") + kContainer + "\n";
  id = ParseCgroupIdentity(cgroupfs);
  EXPECT_EQ(id.pod_uid, "3f2a9c1e-8b7d-4e2f-9a1b-0c3d5e7f9a2b");
  EXPECT_EQ(id.container_id, kContainer);
  id = ParseCgroupIdentity(std::string("0::/system.slice/docker-") + kContainer + ".scope\n");
  EXPECT_EQ(id.pod_uid, "");
  EXPECT_EQ(id.container_id, kContainer);
  id = ParseCgroupIdentity("0::/user.slice/user-0.slice/session-1.scope\n");
  EXPECT_EQ(id.pod_uid, "");
  EXPECT_EQ(id.container_id, "");
  // Garbage and truncation: no crash, nothing invented.
  id = ParseCgroupIdentity("kubepods-pod12/\xff\xfe" + std::string(kContainer).substr(0, 40));
  EXPECT_EQ(id.pod_uid, "");
  EXPECT_EQ(id.container_id, "");
  EXPECT_EQ(ParseCgroupIdentity("").container_id, "");
}

class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("sonde_proc_" + std::to_string(getpid()));
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void Process(uint32_t pid, const std::string& exe, const std::string& cmdline, const std::string& cgroup) {
    const fs::path dir = root_ / std::to_string(pid);
    fs::create_directories(dir);
    fs::remove(dir / "exe");
    fs::create_symlink(exe, dir / "exe");
    std::ofstream(dir / "cmdline", std::ios::binary) << cmdline;
    std::ofstream(dir / "cgroup") << cgroup;
  }
  ServiceNamingOptions Options() {
    ServiceNamingOptions o;
    o.proc_root = root_.string();
    o.refresh_ns = 1000;
    return o;
  }
  fs::path root_;
};

TEST_F(FakeProc, ResolvedOncePerProcessThenCached) {
  Process(42, "/usr/local/openresty/nginx/sbin/nginx", std::string("nginx: worker process\0", 22),
          std::string("0::/system.slice/docker-") + kContainer + ".scope\n");
  auto n = Make(Options());
  for (int i = 0; i < 100; ++i) {
    const auto& id = n->Resolve(42, "nginx", 8000, 10 + i);
    EXPECT_EQ(id.name, "kong");
    EXPECT_EQ(id.container_id, kContainer);
  }
  EXPECT_EQ(n->resolutions(), 1u);  // one /proc read for 100 requests
  EXPECT_EQ(n->cached(), 1u);
  // The same pid now another program (pid reuse): re-resolved at once.
  Process(42, "/usr/bin/python3", std::string("python3\0app.py\0", 15), "0::/user.slice\n");
  EXPECT_EQ(n->Resolve(42, "python3", 8000, 200).name, "python3");
  EXPECT_EQ(n->resolutions(), 2u);
  // And after the refresh interval.
  EXPECT_EQ(n->Resolve(42, "python3", 8000, 200 + 1000).name, "python3");
  EXPECT_EQ(n->resolutions(), 3u);
}

TEST_F(FakeProc, PortRulesCacheByPort) {
  Process(7, "/usr/sbin/nginx", std::string("nginx: worker process\0", 22), "0::/\n");
  auto o = Options();
  o.rules = {{"admin-api", "", "", "", 8001}};
  auto n = Make(o);
  EXPECT_EQ(n->Resolve(7, "nginx", 8001, 1).name, "admin-api");
  EXPECT_EQ(n->Resolve(7, "nginx", 80, 2).name, "nginx");
  EXPECT_EQ(n->Resolve(7, "nginx", 8001, 3).name, "admin-api");
  EXPECT_EQ(n->resolutions(), 2u);
}

TEST_F(FakeProc, GoneProcessesAndRecordingsFallBackToTheProcessName) {
  auto n = Make(Options());
  EXPECT_EQ(n->Resolve(999, "curl", 80, 1).name, "curl");  // no /proc entry
  auto o = Options();
  o.read_proc = false;
  Process(43, "/usr/local/openresty/nginx/sbin/nginx", "x", "");
  EXPECT_EQ(Make(o)->Resolve(43, "nginx", 80, 1).name, "nginx");  // recording: /proc not read
}

}  // namespace
}  // namespace sonde::trace
