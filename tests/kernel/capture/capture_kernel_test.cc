// Kernel test of the socket capture layer with real processes: a private
// nginx on loopback, N separate curl processes, and `sonde-agent capture
// --record`. Ground truth is what curl reports it sent and received.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "agent/capture/recording.h"
#include "agent/capture/tuple_format.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

using testlib::Subprocess;

struct CurlRun {
  pid_t pid = 0;
  std::string path;
  uint64_t request_bytes = 0;   // size_request + size_upload
  uint64_t response_bytes = 0;  // size_header + size_download
  int local_port = 0;
  int status = 0;
};

// Everything the recording holds about one socket of one process.
struct SocketView {
  uint32_t pid = 0;
  std::string comm;          // from the events that carry it (connection events, a socket's first data event)
  int named_data_events = 0;  // data events carrying the thread name
  uint8_t role = 0;
  std::string local, remote;
  uint64_t egress_bytes = 0, ingress_bytes = 0;
  std::string egress_payload, ingress_payload;
  bool egress_truncated = false, ingress_truncated = false;
  std::vector<std::pair<uint32_t, uint64_t>> egress_seq, ingress_seq;  // (seq, bytes) per call
  int opens = 0, closes = 0;
  int events_after_close = 0;  // delivered after this socket's close(): out of order
  int time_regressions = 0;    // an event stamped before the one delivered before it
  uint64_t last_ts = 0;
};

// Delivery-order facts of one socket's event.
void NoteOrder(SocketView& s, const sonde_event_header& hdr, bool is_close) {
  if (s.closes > 0) ++s.events_after_close;
  if (hdr.ts_exit_ns < s.last_ts) ++s.time_regressions;
  s.last_ts = hdr.ts_exit_ns;
  if (is_close) ++s.closes;
}

CurlRun RunCurl(const testlib::TempDir& dir, int port, const std::string& path, int i) {
  const std::string out = dir.File("curl" + std::to_string(i) + ".out");
  auto p = Subprocess::Start({"curl", "-sS", "-o", "/dev/null", "-H", "X-Test-Index: " + std::to_string(i),
                              "-w", "%{http_code} %{size_request} %{size_upload} %{size_header} %{size_download} %{local_port}",
                              "http://127.0.0.1:" + std::to_string(port) + path},
                             out);
  CurlRun run;
  run.pid = p.pid();
  run.path = path;
  EXPECT_EQ(p.Wait(std::chrono::seconds(20)), 0) << "curl failed";
  std::istringstream ss(testlib::ReadFile(out));
  uint64_t req = 0, up = 0, hdr = 0, down = 0;
  ss >> run.status >> req >> up >> hdr >> down >> run.local_port;
  run.request_bytes = req + up;
  run.response_bytes = hdr + down;
  return run;
}

std::map<std::pair<uint32_t, uint64_t>, SocketView> LoadRecording(const std::string& path) {
  std::map<std::pair<uint32_t, uint64_t>, SocketView> sockets;
  auto src = capture::RecordedFileSource::Open(path);
  EXPECT_TRUE(src.ok()) << src.status();
  if (!src.ok()) return sockets;
  for (;;) {
    auto st = (*src)->Poll(0, [&](capture::RawEvent ev) {
      if (const auto* d = capture::AsDataEvent(ev)) {
        auto& s = sockets[{d->hdr.pid, d->sock_id}];
        NoteOrder(s, d->hdr, false);
        s.pid = d->hdr.pid;
        if (d->hdr.comm[0] != '\0') {
          s.comm = d->hdr.comm;
          ++s.named_data_events;
        }
        if (d->role) s.role = d->role;
        s.local = capture::FormatEndpoint(d->tuple.family, d->tuple.saddr, d->tuple.sport);
        s.remote = capture::FormatEndpoint(d->tuple.family, d->tuple.daddr, d->tuple.dport);
        const std::string payload(reinterpret_cast<const char*>(d->payload), d->payload_len);
        const bool truncated = (d->flags & (SONDE_DATA_TRUNCATED | SONDE_DATA_NO_PAYLOAD)) != 0;
        if (d->direction == SONDE_DIR_EGRESS) {
          s.egress_bytes += d->bytes;
          s.egress_payload += payload;
          s.egress_truncated |= truncated;
          if (d->flags & SONDE_DATA_SEQ_VALID) s.egress_seq.emplace_back(d->tcp_seq, d->bytes);
        } else {
          s.ingress_bytes += d->bytes;
          s.ingress_payload += payload;
          s.ingress_truncated |= truncated;
          if (d->flags & SONDE_DATA_SEQ_VALID) s.ingress_seq.emplace_back(d->tcp_seq, d->bytes);
        }
      } else if (const auto* c = capture::AsConnEvent(ev)) {
        auto& s = sockets[{c->hdr.pid, c->sock_id}];
        if (c->role) s.role = c->role;
        if (c->hdr.comm[0] != '\0') s.comm = c->hdr.comm;
        if (c->hdr.type == SONDE_EVENT_CONN_OPEN) ++s.opens;
        if (c->hdr.type != SONDE_EVENT_CONN_CLOSE || c->syscall == SONDE_SYS_CLOSE) {  // not a state change
          NoteOrder(s, c->hdr, c->hdr.type == SONDE_EVENT_CONN_CLOSE);
        }
      }
    });
    if (absl::IsOutOfRange(st)) break;
    EXPECT_TRUE(st.ok()) << st;
  }
  EXPECT_EQ((*src)->counters().malformed, 0u);
  return sockets;
}

// Consecutive calls on one socket carry consecutive sequence numbers.
void ExpectContiguous(const std::vector<std::pair<uint32_t, uint64_t>>& calls, const char* what) {
  for (size_t i = 1; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].first, static_cast<uint32_t>(calls[i - 1].first + calls[i - 1].second))
        << what << " call " << i;
  }
}

// A TCP listener on 127.0.0.1 at a free port; fd < 0 when it could not be made.
struct LoopbackListener {
  int fd = -1;
  sockaddr_in addr{};
  int port = 0;
};

LoopbackListener ListenOnLoopback() {
  LoopbackListener l;
  l.addr.sin_family = AF_INET;
  l.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  socklen_t len = sizeof(l.addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&l.addr), sizeof(l.addr)) != 0 || listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&l.addr), &len) != 0) {
    if (fd >= 0) close(fd);
    return l;
  }
  l.fd = fd;
  l.port = ntohs(l.addr.sin_port);
  return l;
}

// `sonde-agent capture` recording `port`'s sockets into `rec`; ready file and
// stats file in `dir`.
Subprocess StartRecordingAgent(const testlib::TempDir& dir, const std::string& rec, int port) {
  return Subprocess::Start({testlib::AgentBinary(), "capture", "--record", rec, "--port", std::to_string(port),
                            "--ready-file", dir.File("ready"), "--stats-file", dir.File("stats.json")},
                           dir.File("agent.out"), dir.File("agent.err"));
}

class CaptureKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SONDE_REQUIRE_ROOT();
    SONDE_REQUIRE(!testlib::NginxBinary().empty(), "nginx (scripts/setup.sh)");
    SONDE_REQUIRE(testlib::CommandExists("curl"), "curl");
    SONDE_REQUIRE(access(testlib::AgentBinary().c_str(), X_OK) == 0, "sonde-agent binary");
  }
};

TEST_F(CaptureKernelTest, SeesBothSidesOfEveryCurlRequestToNginx) {
  constexpr int kRequests = 20;
  testlib::TempDir dir("sonde-capture");
  const int port = testlib::FreeTcpPort();
  // A static file larger than the capture prefix exercises truncation and,
  // through sendfile, byte accounting without payload.
  {
    std::ofstream big(dir.File("big.bin"));
    big << std::string(50000, 'x');
  }
  chmod(dir.File("big.bin").c_str(), 0644);
  testlib::Nginx nginx(
      "  sendfile on;\n"
      "  server {\n"
      "    listen 127.0.0.1:" + std::to_string(port) + ";\n"
      "    location /small/ { return 200 'hello from nginx\\n'; }\n"
      "    location = /big.bin { root " + dir.path() + "; }\n"
      "  }\n",
      port);
  ASSERT_TRUE(nginx.ok()) << testlib::ReadFile(nginx.error_log());

  const std::string rec = dir.File("events.rec");
  auto agent = Subprocess::Start({testlib::AgentBinary(), "capture", "--record", rec, "--port",
                                  std::to_string(port), "--ready-file", dir.File("ready"),
                                  "--stats-file", dir.File("stats.json")},
                                 dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30)))
      << testlib::ReadFile(dir.File("agent.err"));

  std::vector<CurlRun> runs;
  for (int i = 0; i < kRequests; ++i) {
    runs.push_back(RunCurl(dir, port, i % 4 == 3 ? "/big.bin" : "/small/" + std::to_string(i), i));
    ASSERT_EQ(runs.back().status, 200);
  }
  usleep(200 * 1000);  // let the periodic drain pick up the last events
  ASSERT_EQ(agent.Stop(), 0) << testlib::ReadFile(dir.File("agent.err"));

  const auto stats = nlohmann::json::parse(testlib::ReadFile(dir.File("stats.json")));
  EXPECT_EQ(stats["kernel_drops"], 0) << stats.dump();
  EXPECT_EQ(stats["malformed"], 0);
  EXPECT_GT(stats["sendfile_calls"].get<int>(), 0) << "nginx served /big.bin with sendfile";

  auto sockets = LoadRecording(rec);
  const std::string server_end = "127.0.0.1:" + std::to_string(port);
  for (const auto& run : runs) {
    SCOPED_TRACE("curl pid " + std::to_string(run.pid) + " " + run.path);
    const std::string client_end = "127.0.0.1:" + std::to_string(run.local_port);
    const SocketView* client = nullptr;
    const SocketView* server = nullptr;
    for (const auto& [key, s] : sockets) {
      if (s.pid == static_cast<uint32_t>(run.pid) && s.local == client_end) client = &s;
      if (s.comm == "nginx" && s.local == server_end && s.remote == client_end) server = &s;
    }
    ASSERT_NE(client, nullptr) << "no events from the curl process";
    ASSERT_NE(server, nullptr) << "no events from nginx for this connection";

    // Tuples and roles.
    EXPECT_EQ(client->remote, server_end);
    EXPECT_EQ(client->role, SONDE_ROLE_CLIENT);
    EXPECT_EQ(server->role, SONDE_ROLE_SERVER);
    EXPECT_EQ(client->comm, "curl");
    EXPECT_NE(server->pid, static_cast<uint32_t>(run.pid));
    EXPECT_EQ(client->opens, 1);
    EXPECT_EQ(server->opens, 1);
    // connect/accept named the thread: no data event repeats the name.
    EXPECT_EQ(client->named_data_events, 0);
    EXPECT_EQ(server->named_data_events, 0);

    // Byte counts equal what curl reports, on both sides.
    EXPECT_EQ(client->egress_bytes, run.request_bytes);
    EXPECT_EQ(client->ingress_bytes, run.response_bytes);
    EXPECT_EQ(server->ingress_bytes, run.request_bytes);
    EXPECT_EQ(server->egress_bytes, run.response_bytes);

    // The request bytes themselves, seen by both.
    const std::string request_line = "GET " + run.path + " HTTP/1.1\r\n";
    EXPECT_EQ(client->egress_payload.rfind(request_line, 0), 0u);
    EXPECT_EQ(server->ingress_payload, client->egress_payload);
    EXPECT_EQ(server->ingress_payload.size(), run.request_bytes);
    EXPECT_EQ(client->ingress_payload.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    EXPECT_EQ(server->egress_payload.rfind("HTTP/1.1 200 OK\r\n", 0), 0u);
    if (run.path == "/big.bin") {
      EXPECT_TRUE(server->egress_truncated) << "sendfile body must be counted, not captured";
      EXPECT_LT(server->egress_payload.size(), run.response_bytes);
    } else {
      EXPECT_EQ(client->ingress_payload, server->egress_payload);
    }

    // TCP sequence numbers line up between the two processes.
    ASSERT_FALSE(client->egress_seq.empty());
    ASSERT_FALSE(server->ingress_seq.empty());
    ASSERT_FALSE(server->egress_seq.empty());
    ASSERT_FALSE(client->ingress_seq.empty());
    EXPECT_EQ(client->egress_seq.front().first, server->ingress_seq.front().first);
    EXPECT_EQ(server->egress_seq.front().first, client->ingress_seq.front().first);
    ExpectContiguous(client->egress_seq, "client egress");
    ExpectContiguous(client->ingress_seq, "client ingress");
    ExpectContiguous(server->ingress_seq, "server ingress");
    ExpectContiguous(server->egress_seq, "server egress");
  }
}

TEST_F(CaptureKernelTest, AgentNeverTracesItselfAndHonoursPortFilter) {
  testlib::TempDir dir("sonde-capture-filter");
  const int port = testlib::FreeTcpPort();
  const int other_port = testlib::FreeTcpPort();
  testlib::Nginx nginx("  server { listen 127.0.0.1:" + std::to_string(port) +
                           "; listen 127.0.0.1:" + std::to_string(other_port) +
                           "; location / { return 204; } }\n",
                       port);
  ASSERT_TRUE(nginx.ok());
  const std::string rec = dir.File("events.rec");
  auto agent = Subprocess::Start({testlib::AgentBinary(), "capture", "--record", rec, "--exclude-port",
                                  std::to_string(other_port), "--ready-file", dir.File("ready")},
                                 dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30)));
  RunCurl(dir, port, "/seen", 0);
  RunCurl(dir, other_port, "/excluded", 1);
  usleep(200 * 1000);
  const pid_t agent_pid = agent.pid();
  ASSERT_EQ(agent.Stop(), 0);
  bool saw_port = false;
  for (const auto& [key, s] : LoadRecording(rec)) {
    EXPECT_NE(s.pid, static_cast<uint32_t>(agent_pid)) << "agent traced itself";
    EXPECT_EQ(s.local.find(":" + std::to_string(other_port)), std::string::npos) << s.local;
    EXPECT_EQ(s.remote.find(":" + std::to_string(other_port)), std::string::npos) << s.remote;
    if (s.remote == "127.0.0.1:" + std::to_string(port)) saw_port = true;
  }
  EXPECT_TRUE(saw_port);
}

// One TCP connection inside this process (the agent runs as a subprocess, so
// this process is traced): every iovec/msghdr syscall flavour, over IPv6.
struct Ipv6Pair {
  int listener = -1, client = -1, server = -1;
  int port = 0;
  Ipv6Pair() {
    listener = socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listener, 1);
    socklen_t len = sizeof(addr);
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin6_port);
    client = socket(AF_INET6, SOCK_STREAM, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    server = accept(listener, nullptr, nullptr);
  }
  ~Ipv6Pair() {
    close(client);
    close(server);
    close(listener);
  }
};

TEST_F(CaptureKernelTest, IovecAndMsghdrSyscallsOverIpv6) {
  testlib::TempDir dir("sonde-capture-iov");
  const std::string rec = dir.File("events.rec");
  auto agent = Subprocess::Start({testlib::AgentBinary(), "capture", "--record", rec, "--pid",
                                  std::to_string(getpid()), "--ready-file", dir.File("ready"),
                                  "--stats-file", dir.File("stats.json")},
                                 dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30)));
  std::string server_got;
  int port = 0;
  {
    Ipv6Pair pair;
    port = pair.port;
    // writev: request split over three buffers.
    std::string a = "POST /iov HTTP/1.1\r\n", b = "Content-Length: 5\r\n\r\n", c = "hello";
    iovec out[3] = {{a.data(), a.size()}, {b.data(), b.size()}, {c.data(), c.size()}};
    ASSERT_EQ(writev(pair.client, out, 3), static_cast<ssize_t>(a.size() + b.size() + c.size()));
    // readv: into two buffers of which the first is small.
    char in1[10], in2[100];
    iovec in[2] = {{in1, sizeof(in1)}, {in2, sizeof(in2)}};
    usleep(20000);
    const ssize_t n = readv(pair.server, in, 2);
    ASSERT_GT(n, 10);
    server_got = std::string(in1, 10) + std::string(in2, static_cast<size_t>(n - 10));
    // sendmsg/recvmsg: the response.
    std::string h = "HTTP/1.1 200 OK\r\n", body = "Content-Length: 0\r\n\r\n";
    iovec resp[2] = {{h.data(), h.size()}, {body.data(), body.size()}};
    msghdr msg{};
    msg.msg_iov = resp;
    msg.msg_iovlen = 2;
    ASSERT_EQ(sendmsg(pair.server, &msg, 0), static_cast<ssize_t>(h.size() + body.size()));
    char rbuf[200];
    iovec rin[1] = {{rbuf, sizeof(rbuf)}};
    msghdr rmsg{};
    rmsg.msg_iov = rin;
    rmsg.msg_iovlen = 1;
    usleep(20000);
    ASSERT_EQ(recvmsg(pair.client, &rmsg, 0), static_cast<ssize_t>(h.size() + body.size()));
  }
  usleep(200 * 1000);
  ASSERT_EQ(agent.Stop(), 0);
  const auto stats = nlohmann::json::parse(testlib::ReadFile(dir.File("stats.json")));
  EXPECT_EQ(stats["kernel_drops"], 0);

  const std::string listen_end = "[::1]:" + std::to_string(port);
  const SocketView* client = nullptr;
  const SocketView* server = nullptr;
  auto sockets = LoadRecording(rec);
  for (const auto& [key, s] : sockets) {
    if (s.remote == listen_end) client = &s;
    if (s.local == listen_end) server = &s;
  }
  ASSERT_NE(client, nullptr);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(client->role, SONDE_ROLE_CLIENT);
  EXPECT_EQ(server->role, SONDE_ROLE_SERVER);
  EXPECT_EQ(client->egress_payload, "POST /iov HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello");
  EXPECT_EQ(server->ingress_payload, client->egress_payload);
  EXPECT_EQ(server_got, client->egress_payload);
  EXPECT_EQ(server->egress_payload, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(client->ingress_payload, server->egress_payload);
  ASSERT_FALSE(client->egress_seq.empty());
  ASSERT_FALSE(server->ingress_seq.empty());
  EXPECT_EQ(client->egress_seq.front().first, server->ingress_seq.front().first);
  EXPECT_EQ(server->egress_seq.front().first, client->ingress_seq.front().first);
}

// A connection older than the agent has no connect/accept to name its
// thread: its first data event does, once, and no later one repeats it.
TEST_F(CaptureKernelTest, SocketOlderThanTheAgentIsNamedByItsFirstDataEventOnly) {
  testlib::TempDir dir("sonde-capture-name");
  Ipv6Pair pair;  // connected before the agent starts
  const std::string rec = dir.File("events.rec");
  auto agent = Subprocess::Start({testlib::AgentBinary(), "capture", "--record", rec, "--pid",
                                  std::to_string(getpid()), "--ready-file", dir.File("ready")},
                                 dir.File("agent.out"), dir.File("agent.err"));
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30)));
  const std::string req = "GET /old HTTP/1.1\r\n\r\n";
  char buf[100];
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(write(pair.client, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    usleep(10000);
    ASSERT_EQ(read(pair.server, buf, sizeof(buf)), static_cast<ssize_t>(req.size()));
  }
  usleep(200 * 1000);
  ASSERT_EQ(agent.Stop(), 0);
  const std::string listen_end = "[::1]:" + std::to_string(pair.port);
  std::string self_comm = testlib::ReadFile("/proc/self/comm");
  while (!self_comm.empty() && self_comm.back() == '\n') self_comm.pop_back();
  int sockets_seen = 0;
  for (const auto& [key, s] : LoadRecording(rec)) {
    if (s.remote != listen_end && s.local != listen_end) continue;
    ++sockets_seen;
    SCOPED_TRACE(s.local + " -> " + s.remote);
    EXPECT_EQ(s.opens, 0);
    EXPECT_EQ(s.named_data_events, 1);
    EXPECT_EQ(s.comm, self_comm);
  }
  EXPECT_EQ(sockets_seen, 2);
}

// The client closes before the answer; the server's write draws an RST that
// loopback delivers while the write is still in the kernel, so the socket
// reaches TCP_CLOSE (and loses its bound port) before the syscall exits. The
// write must still be reported, under the socket's real local port, so a port
// filter keeps it. nginx answering a request wrk gave up on does exactly this.
TEST_F(CaptureKernelTest, WriteThatDrawsAResetKeepsItsTuple) {
  testlib::TempDir dir("sonde-capture-reset");
  auto [listener, addr, port] = ListenOnLoopback();
  ASSERT_GE(listener, 0);

  const std::string rec = dir.File("events.rec");
  auto agent = StartRecordingAgent(dir, rec, port);
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30)));

  const std::string request = "GET /gone HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  int client = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  int server = accept(listener, nullptr, nullptr);
  ASSERT_GE(server, 0);
  ASSERT_EQ(write(client, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  close(client);  // nothing unread: a FIN, the peer stays in FIN_WAIT2
  usleep(20000);
  char buf[256];
  ASSERT_EQ(read(server, buf, sizeof(buf)), static_cast<ssize_t>(request.size()));
  ASSERT_EQ(write(server, response.data(), response.size()), static_cast<ssize_t>(response.size()));
  usleep(20000);
  int err = 0;
  socklen_t err_len = sizeof(err);
  getsockopt(server, SOL_SOCKET, SO_ERROR, &err, &err_len);
  // A reset in CLOSE_WAIT reports EPIPE.
  EXPECT_TRUE(err == ECONNRESET || err == EPIPE) << "the write should have drawn a reset, SO_ERROR " << err;
  close(server);
  close(listener);
  usleep(200 * 1000);
  ASSERT_EQ(agent.Stop(), 0) << testlib::ReadFile(dir.File("agent.err"));

  const std::string listen_end = "127.0.0.1:" + std::to_string(port);
  const SocketView* server_view = nullptr;
  const auto sockets = LoadRecording(rec);
  for (const auto& [key, s] : sockets) {
    if (s.ingress_payload == request && s.pid == static_cast<uint32_t>(getpid())) server_view = &s;
  }
  ASSERT_NE(server_view, nullptr);
  EXPECT_EQ(server_view->egress_payload, response) << "the write that drew the reset was dropped";
  EXPECT_EQ(server_view->local, listen_end);
  EXPECT_EQ(server_view->closes, 1) << "close() after the reset was dropped";
}

// Each CPU has its own ring buffer: a thread that moves between CPUs leaves
// its events in several rings, and they must still arrive in the order the
// thread made its calls (the merge by time in agent/bpf/ring_set.h). Here
// every call of client and server runs on the other CPU than the previous.
TEST_F(CaptureKernelTest, ThreadHoppingBetweenCpusKeepsItsOrder) {
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "one CPU: one ring buffer, nothing to merge";
  testlib::TempDir dir("sonde-capture-hop");
  auto [listener, addr, port] = ListenOnLoopback();
  ASSERT_GE(listener, 0);

  const std::string rec = dir.File("events.rec");
  auto agent = StartRecordingAgent(dir, rec, port);
  ASSERT_TRUE(testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30)));

  cpu_set_t saved;
  ASSERT_EQ(sched_getaffinity(0, sizeof(saved), &saved), 0);
  int hops = 0;
  auto hop = [&] {  // the next call runs on the other CPU
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(++hops % 2, &one);
    ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  };
  constexpr int kConnections = 40;
  const std::vector<std::string> request_parts = {"GET /hop HTTP/1.1\r\n", "Host: x\r\n", "X-A: 1\r\n",
                                                  "X-B: 2\r\n", "\r\n"};
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  std::string request;
  for (const auto& part : request_parts) request += part;
  for (int i = 0; i < kConnections; ++i) {
    hop();
    int client = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    hop();
    int server = accept(listener, nullptr, nullptr);
    ASSERT_GE(server, 0);
    for (const auto& part : request_parts) {
      hop();
      ASSERT_EQ(write(client, part.data(), part.size()), static_cast<ssize_t>(part.size()));
    }
    std::string got(request.size(), '\0');
    for (size_t have = 0; have < got.size();) {  // a byte or two per read, each on another CPU
      hop();
      const ssize_t n = read(server, got.data() + have, std::min<size_t>(7, got.size() - have));
      ASSERT_GT(n, 0);
      have += static_cast<size_t>(n);
    }
    ASSERT_EQ(got, request);
    hop();
    ASSERT_EQ(write(server, response.data(), response.size()), static_cast<ssize_t>(response.size()));
    char buf[256];
    hop();
    ASSERT_EQ(read(client, buf, sizeof(buf)), static_cast<ssize_t>(response.size()));
    hop();
    close(client);
    hop();
    close(server);
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof(saved), &saved), 0);
  close(listener);
  usleep(200 * 1000);
  ASSERT_EQ(agent.Stop(), 0) << testlib::ReadFile(dir.File("agent.err"));
  const auto stats = nlohmann::json::parse(testlib::ReadFile(dir.File("stats.json")));
  EXPECT_EQ(stats["kernel_drops"], 0) << stats.dump();

  int clients = 0, servers = 0;
  for (const auto& [key, s] : LoadRecording(rec)) {
    if (s.pid != static_cast<uint32_t>(getpid())) continue;
    SCOPED_TRACE(s.local + " -> " + s.remote);
    const bool is_client = s.egress_payload == request;
    const bool is_server = s.ingress_payload == request;  // in call order: the parts joined up
    EXPECT_TRUE(is_client || is_server) << "egress '" << s.egress_payload << "' ingress '" << s.ingress_payload << "'";
    clients += is_client;
    servers += is_server;
    EXPECT_EQ(is_client ? s.ingress_payload : s.egress_payload, response);
    EXPECT_EQ(s.opens, 1);
    EXPECT_EQ(s.closes, 1);
    EXPECT_EQ(s.events_after_close, 0);
    EXPECT_EQ(s.time_regressions, 0);
    ExpectContiguous(is_client ? s.egress_seq : s.ingress_seq, "request calls");
  }
  EXPECT_EQ(clients, kConnections);
  EXPECT_EQ(servers, kConnections);
}

}  // namespace
}  // namespace sonde
