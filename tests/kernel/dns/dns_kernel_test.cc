// DNS reconstruction on live traffic. Two private dnsmasq servers answer a
// test zone (ok.sonde.test has A, AAAA and TXT records; other names under
// sonde.test are NXDOMAIN; names outside it are REFUSED):
//  - one on 127.0.0.1 and a port chosen at run time, asked by dig over UDP
//    and TCP: ground truth is dig's own output (id, status, answer count);
//  - one on port 53 of a loopback address chosen at run time (resolv.conf
//    cannot name a port), asked by glibc's getaddrinfo through `getent
//    ahosts` in a private mount namespace whose /etc/resolv.conf points at
//    it, over UDP (A and AAAA in one sendmmsg) and TCP (options use-vc).
// Every lookup must be one client span and one server span (dnsmasq's
// unconnected UDP socket: the peer comes from each datagram's address) with
// its question, type, rcode and answer count; errors are NXDOMAIN / REFUSED.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <random>
#include <regex>
#include <thread>

#include "agent/capture/socket_capture.h"
#include "agent/pipeline/pipeline.h"
#include "agent/trace/span_builder.h"
#include "tests/testlib/collect_sink.h"
#include "tests/testlib/in_process_agent.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using testlib::Subprocess;

using testlib::CollectSink;

struct Lookup {
  std::string name, type, transport;
  int64_t id = -1;
  std::string status;
  int64_t answers = -1;
  pid_t pid = 0;
};

std::string Attr(const trace::Span& s, std::string_view key) {
  const std::string* v = trace::StringAttribute(s, key);
  return v != nullptr ? *v : std::string();
}

Subprocess StartDnsmasq(const std::string& address, int port, const testlib::TempDir& dir, const std::string& tag) {
  return Subprocess::Start({"dnsmasq", "--no-daemon", "--port=" + std::to_string(port), "--listen-address=" + address,
                            "--bind-interfaces", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                            "--user=nobody", "--pid-file=", "--cache-size=0", "--local=/sonde.test/",
                            "--host-record=ok.sonde.test,10.9.8.7,fd00::7", "--txt-record=ok.sonde.test,hello"},
                           dir.File(tag + ".out"), dir.File(tag + ".err"));
}

TEST(DnsKernel, DigAndGetaddrinfoOverUdpAndTcp) {
  SONDE_REQUIRE_ROOT();
  SONDE_REQUIRE(testlib::CommandExists("dnsmasq"), "dnsmasq");
  SONDE_REQUIRE(testlib::CommandExists("dig"), "dig (bind9-dnsutils)");
  SONDE_REQUIRE(testlib::CommandExists("getent") && testlib::CommandExists("unshare"), "getent, unshare");

  testlib::TempDir dir("sonde-dns-kernel");
  const int port = testlib::FreeTcpPort();
  std::mt19937 rng(std::random_device{}());
  const std::string gai_address = "127." + std::to_string(100 + rng() % 100) + "." + std::to_string(rng() % 250) +
                                  "." + std::to_string(2 + rng() % 250);

  capture::SocketCaptureOptions co;
  co.filter.include_ports = {static_cast<uint16_t>(port), 53};
  co.ringbuf_bytes = 16u << 20;
  auto in_process = testlib::InProcessAgent::Start(co);  // every span kept: counts are compared exactly
  SONDE_REQUIRE(in_process.ok(), "socket capture: " + in_process.status().ToString());
  pipeline::Agent& agent = (*in_process)->agent();
  testlib::CollectSink* sink = &(*in_process)->sink();

  auto dig_server = StartDnsmasq("127.0.0.1", port, dir, "dnsmasq-dig");
  auto gai_server = StartDnsmasq(gai_address, 53, dir, "dnsmasq-gai");
  ASSERT_TRUE(testlib::WaitForTcpPort("127.0.0.1", port, std::chrono::seconds(10)))
      << testlib::ReadFile(dir.File("dnsmasq-dig.err"));
  ASSERT_TRUE(testlib::WaitForTcpPort(gai_address, 53, std::chrono::seconds(10)))
      << testlib::ReadFile(dir.File("dnsmasq-gai.err"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  // dig: every name x type x transport, ground truth from its output.
  std::vector<Lookup> digs;
  static const std::regex kHeader(R"(opcode: QUERY, status: ([A-Z]+), id: (\d+))");
  static const std::regex kCounts(R"(QUERY: 1, ANSWER: (\d+))");
  int n = 0;
  for (const char* name : {"ok.sonde.test", "missing.sonde.test", "outside.example"}) {
    for (const char* type : {"A", "AAAA", "TXT"}) {
      for (const char* transport : {"udp", "tcp"}) {
        Lookup l{name, type, transport};
        const std::string out = dir.File("dig" + std::to_string(n++) + ".out");
        std::vector<std::string> argv = {"dig", "@127.0.0.1", "-p", std::to_string(port), name, type,
                                         "+tries=1", "+time=3", "+nocookie"};
        if (l.transport == "tcp") argv.push_back("+tcp");
        auto dig = Subprocess::Start(argv, out);
        l.pid = dig.pid();
        ASSERT_EQ(dig.Wait(std::chrono::seconds(20)), 0) << testlib::ReadFile(out);
        const std::string text = testlib::ReadFile(out);
        std::smatch m;
        ASSERT_TRUE(std::regex_search(text, m, kHeader)) << text;
        l.status = m[1].str();
        l.id = std::stoll(m[2].str());
        ASSERT_TRUE(std::regex_search(text, m, kCounts)) << text;
        l.answers = std::stoll(m[1].str());
        digs.push_back(l);
      }
    }
  }

  // getaddrinfo (getent ahosts: AF_UNSPEC, so A and AAAA) in a mount
  // namespace whose resolv.conf names the second server.
  struct Gai {
    std::string name, transport;
    int exit_code = -1;
    pid_t pid = 0;
  };
  std::vector<Gai> gais;
  for (const char* transport : {"udp", "tcp"}) {
    const std::string conf = dir.File(std::string("resolv-") + transport + ".conf");
    {
      std::ofstream f(conf);
      f << "nameserver " << gai_address << "\noptions attempts:1 timeout:3"
        << (std::string(transport) == "tcp" ? " use-vc" : "") << "\n";
    }
    for (const char* name : {"ok.sonde.test", "missing.sonde.test"}) {
      Gai g{name, transport};
      const std::string out = dir.File(std::string("gai-") + transport + "-" + name + ".out");
      auto proc = Subprocess::Start({"unshare", "-m", "sh", "-c",
                                     "mount --bind " + conf + " /etc/resolv.conf && exec getent ahosts " + g.name},
                                    out, out + ".err");
      g.pid = proc.pid();
      g.exit_code = proc.Wait(std::chrono::seconds(20));
      gais.push_back(g);
    }
  }

  std::this_thread::sleep_for(std::chrono::seconds(2));  // drain the ring buffer
  const absl::Status run_status = (*in_process)->Stop();
  ASSERT_TRUE(run_status.ok()) << run_status;

  std::vector<trace::Span> spans;
  {
    std::lock_guard<std::mutex> lock(sink->mu);
    for (const auto& s : sink->spans) {
      if (s.protocol == protocols::L7Protocol::kDns) spans.push_back(s);
    }
  }
  const auto c = agent.counters();
  std::printf("dns kernel: %zu dns spans, %zu dig lookups, %zu getaddrinfo runs, parse_errors=%llu unpaired=%llu "
              "kernel_lost=%llu\n",
              spans.size(), digs.size(), gais.size(), (unsigned long long)c.tracker.protocol.parse_errors,
              (unsigned long long)c.tracker.protocol.unpaired, (unsigned long long)c.source.kernel_lost);
  for (const auto& s : spans) {
    std::printf("  %-6s pid %-7u %-10s %-5s %-20s %-5s rcode=%-8s answers=%lld id=%lld peer=%s:%u\n",
                s.kind == trace::SpanKind::kServer ? "server" : "client", s.pid, s.comm.c_str(),
                Attr(s, "network.transport").c_str(), Attr(s, "dns.question.name").c_str(),
                Attr(s, "sonde.dns.question.type").c_str(), Attr(s, "sonde.dns.response_code").c_str(),
                (long long)trace::IntAttribute(s, "sonde.dns.answer_count", -1),
                (long long)trace::IntAttribute(s, "sonde.dns.id", -1), s.peer.address.c_str(), s.peer.port);
  }

  auto matching = [&](trace::SpanKind kind, const std::string& name, const std::string& type,
                      const std::string& transport, auto&& extra) {
    std::vector<const trace::Span*> out;
    for (const auto& s : spans) {
      if (s.kind == kind && Attr(s, "dns.question.name") == name && Attr(s, "sonde.dns.question.type") == type &&
          Attr(s, "network.transport") == transport && extra(s)) {
        out.push_back(&s);
      }
    }
    return out;
  };
  for (const Lookup& l : digs) {
    const std::string what = "dig " + l.name + " " + l.type + " " + l.transport;
    auto same_id = [&](const trace::Span& s) { return trace::IntAttribute(s, "sonde.dns.id", -1) == l.id; };
    auto client = matching(trace::SpanKind::kClient, l.name, l.type, l.transport, [&](const trace::Span& s) {
      return same_id(s) && static_cast<pid_t>(s.pid) == l.pid && s.peer.port == port;
    });
    auto server = matching(trace::SpanKind::kServer, l.name, l.type, l.transport, [&](const trace::Span& s) {
      return same_id(s) && s.local.port == port;
    });
    ASSERT_EQ(client.size(), 1u) << what;
    ASSERT_EQ(server.size(), 1u) << what;
    for (const trace::Span* s : {client[0], server[0]}) {
      EXPECT_EQ(Attr(*s, "sonde.dns.response_code"), l.status) << what;
      EXPECT_EQ(trace::IntAttribute(*s, "sonde.dns.answer_count", -1), l.answers) << what;
      EXPECT_EQ(s->status == trace::StatusCode::kError, l.status != "NOERROR") << what;
      EXPECT_EQ(s->name, "DNS " + l.type) << what;
    }
    // The server's peer is dig's socket, taken from the datagram's address on UDP.
    EXPECT_EQ(server[0]->peer.address, "127.0.0.1") << what;
    EXPECT_EQ(server[0]->peer.port, client[0]->local.port) << what;
  }
  for (const Gai& g : gais) {
    const bool found = g.name == "ok.sonde.test";
    EXPECT_EQ(g.exit_code, found ? 0 : 2) << g.name << " " << g.transport;
    for (const char* type : {"A", "AAAA"}) {
      const std::string what = "getaddrinfo " + g.name + " " + type + " " + g.transport;
      auto client = matching(trace::SpanKind::kClient, g.name, type, g.transport, [&](const trace::Span& s) {
        return static_cast<pid_t>(s.pid) == g.pid && s.peer.address == gai_address && s.peer.port == 53;
      });
      auto server = matching(trace::SpanKind::kServer, g.name, type, g.transport, [&](const trace::Span& s) {
        return s.local.port == 53 && s.local.address == gai_address;
      });
      ASSERT_EQ(client.size(), 1u) << what;
      ASSERT_GE(server.size(), 1u) << what;
      for (const trace::Span* s : {client[0], server[0]}) {
        EXPECT_EQ(Attr(*s, "sonde.dns.response_code"), found ? "NOERROR" : "NXDOMAIN") << what;
        EXPECT_EQ(trace::IntAttribute(*s, "sonde.dns.answer_count", -1), found ? 1 : 0) << what;
      }
    }
  }
  // The RED lookup histogram counts the same lookups.
  uint64_t red_client = 0;
  for (const auto& [key, series] : agent.red().Totals()) {
    if (key.protocol == "dns" && key.kind == "client") red_client += series.count;
  }
  uint64_t client_spans = 0;
  for (const auto& s : spans) client_spans += s.kind == trace::SpanKind::kClient;
  EXPECT_EQ(red_client, client_spans);
  EXPECT_EQ(c.tracker.protocol.parse_errors, 0u);
}

}  // namespace
}  // namespace sonde
