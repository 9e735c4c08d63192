// Network spans end to end: curl (root namespace) -> nginx (its own namespace)
// over a veth pair, captured on the root end by PacketCapture, while the
// socket-syscall capture (agent/capture + agent/conn) reconstructs the same
// exchange from curl's syscalls. The packet collector feeds the flows to the
// same tracker and protocol sessions and yields records; built into spans
// (the span builder the pipeline uses), the network span and the system
// record share the TCP sequence numbers of the first request and response
// bytes, and the network span nests inside curl's system span in time.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "agent/capture/socket_capture.h"
#include "agent/conn/tracker.h"
#include "agent/core/clock.h"
#include "agent/packet/network_component.h"
#include "agent/packet/packet_collector.h"
#include "agent/trace/redaction.h"
#include "agent/trace/span_builder.h"
#include "tests/kernel/tcp/netns.h"
#include "tests/kernel/tcp/process.h"

namespace sonde::packet {
namespace {

using namespace std::chrono_literals;
std::string Shell(const std::string& cmd, int* rc = nullptr) { return sonde::testing::Run(cmd, rc); }

class HostVeth {
 public:
  // Namespace `ns` holds `ns_ip`; the peer end `name` stays in the root namespace with `host_ip`.
  HostVeth(std::string ns, std::string name, std::string host_ip, std::string ns_ip)
      : ns_(std::move(ns)), name_(std::move(name)) {
    Cleanup();
    int rc = 0;
    out_ = Shell("sh -c 'set -e; ip netns add " + ns_ + "; ip link add " + name_ +
                   " type veth peer name " + name_ + "p; ip link set " + name_ + "p netns " + ns_ +
                   "; ip addr add " + host_ip + "/30 dev " + name_ + "; ip link set " + name_ +
                   " up; ip -n " + ns_ + " addr add " + ns_ip + "/30 dev " + name_ + "p; ip -n " +
                   ns_ + " link set " + name_ + "p up; ip -n " + ns_ + " link set lo up'",
               &rc);
    ok_ = rc == 0;
  }
  ~HostVeth() { Cleanup(); }
  bool ok() const { return ok_; }
  const std::string& output() const { return out_; }

 private:
  void Cleanup() {
    Shell("ip link del " + name_);
    Shell("ip netns del " + ns_);
  }
  std::string ns_, name_, out_;
  bool ok_ = false;
};

// nginx answering "hello from nginx" on ns_ip:8080 inside namespace `ns`.
sonde::testing::ChildProcess StartNginx(const std::string& ns, const std::string& ns_ip, const std::string& dir) {
  Shell("mkdir -p " + dir);
  {
    std::ofstream conf(dir + "/nginx.conf");
    conf << "daemon off; worker_processes 1; pid " << dir << "/nginx.pid; error_log " << dir
         << "/error.log;\nevents { worker_connections 64; }\nhttp { access_log off; client_body_temp_path "
         << dir << "; proxy_temp_path " << dir << "; fastcgi_temp_path " << dir << "; uwsgi_temp_path " << dir
         << "; scgi_temp_path " << dir << ";\n server { listen " << ns_ip
         << ":8080; location / { return 200 \"hello from nginx\\n\"; } }\n server { listen " << ns_ip
         << ":8081 http2; location / { return 200 \"hello over h2\\n\"; } } }\n";
  }
  return sonde::testing::ChildProcess::Start({"ip", "netns", "exec", ns, "nginx", "-c", dir + "/nginx.conf", "-p", dir});
}

// curl until nginx answers (it starts asynchronously).
std::string WaitForNginx(const std::string& ns_ip) {
  std::string out;
  for (int i = 0; i < 50; ++i) {
    int rc = 0;
    out = Shell("curl -s -m 2 http://" + ns_ip + ":8080/warmup", &rc);
    if (rc == 0) break;
    std::this_thread::sleep_for(100ms);
  }
  return out;
}

TEST(NetworkSpanKernelTest, CurlThroughVethJoinsSystemSpanBySequence) {
  SONDE_REQUIRE(geteuid() == 0, "root (BPF, AF_PACKET, netns)");
  SONDE_REQUIRE(system("command -v nginx >/dev/null && command -v curl >/dev/null") == 0,
                "nginx and curl (scripts/setup.sh)");
  const std::string tag = std::to_string(getpid() % 100000);
  const int net = 40 + getpid() % 200;
  const std::string host_ip = "10.206." + std::to_string(net) + ".1";
  const std::string ns_ip = "10.206." + std::to_string(net) + ".2";
  HostVeth veth("sd5n" + tag, "vsd5" + tag, host_ip, ns_ip);
  ASSERT_TRUE(veth.ok()) << veth.output();

  const std::string dir = ::testing::TempDir() + "/sd5nginx" + tag;
  auto nginx = StartNginx("sd5n" + tag, ns_ip, dir);
  ASSERT_TRUE(nginx.running());

  // Packet side: capture only this veth, records into a vector, timed on
  // `clock` (CLOCK_MONOTONIC, like the system records).
  core::MonotonicToRealtime clock;
  std::mutex mu;
  std::vector<conn::ConnRecord> net_records;
  PacketCollectorOptions popts;
  popts.capture.interfaces = {"vsd5" + tag};
  popts.capture.filter = "tcp port 8080 or tcp port 8081";
  popts.poll_ms = 20;
  popts.clock = &clock;
  auto packets = PacketCollector::Start(popts, [&](conn::ConnRecord&& r) {
    std::lock_guard lock(mu);
    net_records.push_back(std::move(r));
  });
  if (!packets.ok()) {
    if (sonde::testing::InCi()) FAIL() << packets.status();
    GTEST_SKIP() << packets.status();
  }
  // System side.
  capture::SocketCaptureOptions copts;
  copts.filter.include_ports = {8080, 8081};
  auto sockets = capture::SocketCapture::Create(copts);
  if (!sockets.ok()) {
    if (sonde::testing::InCi()) FAIL() << sockets.status();
    GTEST_SKIP() << sockets.status();
  }
  std::string out = WaitForNginx(ns_ip);
  ASSERT_NE(out.find("hello from nginx"), std::string::npos) << out;

  int rc = 0;
  out = Shell("curl -s -m 5 -H 'x-test: sd5' http://" + ns_ip + ":8080/users/42?debug=1", &rc);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_NE(out.find("hello from nginx"), std::string::npos);
  out = Shell("curl -s -m 5 --http2-prior-knowledge http://" + ns_ip + ":8081/h2/path", &rc);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_NE(out.find("hello over h2"), std::string::npos) << out;
  std::this_thread::sleep_for(300ms);

  conn::ConnectionTracker tracker;
  std::vector<conn::ConnRecord> records;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE((*sockets)->Poll(50, [&](capture::RawEvent ev) { tracker.OnEvent(ev, records); }).ok());
  }
  tracker.CloseAll(records);
  (*packets)->FlushFlows();
  (*packets)->Stop();

  // curl's record of the request (client side of the exchange).
  const conn::ConnRecord* sys = nullptr;
  for (const auto& r : records)
    if (r.conn.comm == "curl" && r.record.path == "/users/42") sys = &r;
  ASSERT_NE(sys, nullptr) << records.size() << " system records";
  // The spans the pipeline would build (Agent::EmitRecord) from the packet records.
  std::vector<trace::Span> net_spans;
  {
    trace::SpanBuilder builder(clock);
    std::lock_guard lock(mu);
    for (const auto& r : net_records) net_spans.push_back(builder.Build(r));
  }
  const trace::Span* nspan = nullptr;
  for (const auto& s : net_spans)
    if (s.url_path == "/users/42") nspan = &s;
  ASSERT_NE(nspan, nullptr) << net_spans.size() << " network spans";
  EXPECT_EQ(nspan->endpoint, "GET /users/{id}");
  EXPECT_EQ(nspan->kind, trace::SpanKind::kClient);  // the client view of the flow
  EXPECT_EQ(nspan->http_status, 200);
  EXPECT_EQ(nspan->client.address, host_ip);
  EXPECT_EQ(nspan->server.address, ns_ip);
  EXPECT_EQ(nspan->server.port, 8080);
  ASSERT_TRUE(sys->record.request.first_tcp_seq.has_value());
  ASSERT_TRUE(sys->record.response.first_tcp_seq.has_value());
  ASSERT_TRUE(nspan->request_seq_valid && nspan->response_seq_valid);
  EXPECT_EQ(nspan->request_tcp_seq, *sys->record.request.first_tcp_seq);
  EXPECT_EQ(nspan->response_tcp_seq, *sys->record.response.first_tcp_seq);

  // Nesting: curl wrote before the first request packet and read after the last response packet.
  const uint64_t sys_start = clock.ToUnixNs(sys->record.request.first_byte_ns);
  const uint64_t sys_end = clock.ToUnixNs(sys->record.response.last_byte_ns);
  constexpr uint64_t kSlackNs = 200'000;  // clock-offset estimate
  std::cout << "system span " << sys_start << " .. " << sys_end << " (" << (sys_end - sys_start) / 1000
            << " us), network span " << nspan->start_unix_ns << " .. " << nspan->end_unix_ns << " ("
            << nspan->duration_ns() / 1000 << " us), seq req " << nspan->request_tcp_seq << " resp "
            << nspan->response_tcp_seq << "\n";
  EXPECT_LE(sys_start, nspan->start_unix_ns + kSlackNs);
  EXPECT_LE(nspan->end_unix_ns, sys_end + kSlackNs);
  EXPECT_LE(nspan->start_unix_ns, nspan->end_unix_ns);

  // HTTP/2 (prior knowledge) on 8081: the HTTP/2 parser runs on the packets too.
  {
    const conn::ConnRecord* sys2 = nullptr;
    for (const auto& r : records)
      if (r.conn.comm == "curl" && r.record.path == "/h2/path") sys2 = &r;
    const trace::Span* n2 = nullptr;
    for (const auto& s : net_spans)
      if (s.url_path == "/h2/path") n2 = &s;
    ASSERT_NE(n2, nullptr) << "no HTTP/2 network span";
    EXPECT_EQ(n2->protocol, protocols::L7Protocol::kHttp2);
    EXPECT_EQ(n2->http_status, 200);
    ASSERT_NE(sys2, nullptr) << "no HTTP/2 system record";
    ASSERT_TRUE(sys2->record.request.first_tcp_seq && n2->request_seq_valid);
    EXPECT_EQ(n2->request_tcp_seq, *sys2->record.request.first_tcp_seq);
    if (sys2->record.response.first_tcp_seq && n2->response_seq_valid) {
      EXPECT_EQ(n2->response_tcp_seq, *sys2->record.response.first_tcp_seq);
    }
  }

  // Flow metrics of the same capture: 2 connections (warm-up + request), handshakes seen.
  std::string prom;
  (*packets)->AppendPrometheus(prom);
  EXPECT_NE(prom.find("sonde_packet_flows_total{client=\"" + host_ip + "\",server=\"" + ns_ip +
                      "\",server_port=\"8080\",transport=\"tcp\"} 2"),
            std::string::npos)
      << prom;
  EXPECT_NE(prom.find("sonde_packet_capture_dropped_total{interface=\"vsd5" + tag + "\"} 0"), std::string::npos);
  nginx.Stop();
  Shell("rm -rf " + dir);
}

// The same path through the agent pipeline: NetworkComponent started by
// pipeline::Agent, network spans reach the agent's sinks (redacted like system
// spans), TCP and packet metrics appear in its /metrics text.
class CollectingSink : public trace::SpanSink {
 public:
  void OnSpan(const trace::Span& s) override {
    std::lock_guard lock(mu);
    spans.push_back(s);
  }
  std::mutex mu;
  std::vector<trace::Span> spans;
};

TEST(NetworkSpanKernelTest, NetworkComponentFeedsPipelineSinksAndMetrics) {
  SONDE_REQUIRE(geteuid() == 0, "root (BPF, AF_PACKET, netns)");
  SONDE_REQUIRE(system("command -v nginx >/dev/null && command -v curl >/dev/null") == 0,
                "nginx and curl (scripts/setup.sh)");
  const std::string tag = std::to_string(getpid() % 100000) + "p";
  const int net = 40 + (getpid() + 101) % 200;
  const std::string host_ip = "10.206." + std::to_string(net) + ".1";
  const std::string ns_ip = "10.206." + std::to_string(net) + ".2";
  HostVeth veth("sd5n" + tag, "vsd5" + tag, host_ip, ns_ip);
  ASSERT_TRUE(veth.ok()) << veth.output();
  const std::string dir = ::testing::TempDir() + "/sd5nginx" + tag;
  auto nginx = StartNginx("sd5n" + tag, ns_ip, dir);
  ASSERT_TRUE(nginx.running());

  pipeline::PipelineOptions options;
  options.print_json = false;
  pipeline::Agent agent(options);
  auto sink = std::make_shared<CollectingSink>();
  agent.AddSink(sink);
  NetworkConfig config;
  config.packet_capture = true;
  config.interfaces = "vsd5" + tag;
  config.ports = {8080};
  auto component = std::make_unique<NetworkComponent>(config);
  agent.AddComponent(std::move(component));
  auto st = agent.Start();
  if (!st.ok()) {
    if (sonde::testing::InCi()) FAIL() << st;
    GTEST_SKIP() << st;
  }
  ASSERT_NE(WaitForNginx(ns_ip).find("hello from nginx"), std::string::npos);
  int rc = 0;
  Shell("curl -s -m 5 -H 'Authorization: Bearer kernel-s3cret' http://" + ns_ip + ":8080/orders/7", &rc);
  ASSERT_EQ(rc, 0);
  std::this_thread::sleep_for(1500ms);  // one TCP window and a capture block
  agent.Tick(core::MonotonicNowNs());
  const std::string metrics = agent.metrics_server().Render();
  agent.Stop();
  nginx.Stop();
  Shell("rm -rf " + dir);

  const trace::Span* found = nullptr;
  {
    std::lock_guard lock(sink->mu);
    for (const auto& s : sink->spans)
      if (s.source == trace::SpanSource::kNetwork && s.url_path == "/orders/7") found = &s;
    ASSERT_NE(found, nullptr) << sink->spans.size() << " spans";
    EXPECT_EQ(found->endpoint, "GET /orders/{id}");
    EXPECT_TRUE(found->request_seq_valid);
    EXPECT_EQ(found->http_status, 200);
    EXPECT_EQ(found->server.address, ns_ip);
    EXPECT_EQ(found->request_headers.Find("authorization"), trace::kRedacted);
  }
  const std::string pair = "client=\"" + host_ip + "\",server=\"" + ns_ip + "\",server_port=\"8080\"";
  EXPECT_NE(metrics.find("sonde_tcp_connections_opened_total{" + pair + ",side=\"client\",process=\"curl\"} 2"),
            std::string::npos)
      << metrics.substr(0, 4000);
  // nginx's side: the remote client is its address class by default (10.206.x: private).
  EXPECT_NE(metrics.find("sonde_tcp_connections_opened_total{client=\"private\",server=\"" + ns_ip +
                         "\",server_port=\"8080\",side=\"server\""),
            std::string::npos);
  EXPECT_NE(metrics.find("sonde_packet_flows_total{" + pair + ",transport=\"tcp\"} 2"), std::string::npos);
  EXPECT_NE(metrics.find("sonde_packet_records_total "), std::string::npos);
}

}  // namespace
}  // namespace sonde::packet
