// GuardedHttpServer against hostile clients over real loopback sockets (issue
// #17): every refusal happens before the bytes are held, which the test
// checks on this process's peak RSS (VmHWM), and slow or idle peers do not
// keep others from being served.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "tests/testlib/peak_rss.h"
#include "common/http/guarded_server.h"

namespace sonde::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Peak resident set of this process, KiB.
using sonde::testlib::PeakRssKiB;

// A raw TCP client: hostile inputs need exact control of the bytes.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }
  ~RawClient() { close(fd_); }
  bool connected() const { return connected_; }
  // False once the peer stopped reading / closed.
  bool Send(std::string_view bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  }
  // The server answered (e.g. 503) or closed the connection: not left waiting.
  bool Dismissed() {
    char c;
    return recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK) >= 0;
  }
  void SetReceiveTimeout(std::chrono::milliseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  // The status code of the first response line, 0 when none arrived.
  int Status() {
    std::string got;
    char buf[4096];
    while (got.find("\r\n") == std::string::npos) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    if (got.rfind("HTTP/1.1 ", 0) != 0 || got.size() < 12) return 0;
    return std::atoi(got.c_str() + 9);
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

class GuardedServerTest : public ::testing::Test {
 protected:
  void Start(HttpLimits limits, TlsFiles tls = {}) {
    auto s = GuardedHttpServer::Create(std::move(limits), std::move(tls));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(*s);
    server_->Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server_->Post("/in", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(std::to_string(req.body.size()), "text/plain");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    for (int i = 0; i < 200 && !server_->is_running(); ++i) std::this_thread::sleep_for(5ms);
  }
  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
  }
  static HttpLimits BodyOnIn() {
    HttpLimits l;
    l.max_body_bytes = 1 << 20;
    l.accepts_body = [](const httplib::Request& req) { return req.path == "/in"; };
    return l;
  }
  // GET /health on a fresh connection: status and seconds taken.
  std::pair<int, double> Health() {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(30, 0);
    auto t0 = Clock::now();
    auto r = c.Get("/health");
    return {r ? r->status : 0, std::chrono::duration<double>(Clock::now() - t0).count()};
  }

  std::unique_ptr<GuardedHttpServer> server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_F(GuardedServerTest, DeclaredOversizeBodyIs413BeforeAnyByteIsRead) {
  Start(BodyOnIn());
  const long before = PeakRssKiB();
  RawClient c(port_);
  ASSERT_TRUE(c.Send("POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: 268435456\r\n\r\n"));
  ASSERT_TRUE(c.Send(std::string(64 << 10, 'a')));
  EXPECT_EQ(c.Status(), 413);
  const long after = PeakRssKiB();
  std::printf("POST 256 MiB declared: 413, peak RSS %ld -> %ld KiB\n", before, after);
  EXPECT_LT(after - before, 8 * 1024);
  EXPECT_EQ(server_->counters().oversize_bodies.load(), 1u);
  // A body within the limit on the same route is read.
  httplib::Client ok("127.0.0.1", port_);
  auto r = ok.Post("/in", std::string(1000, 'b'), "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "1000");
}

TEST_F(GuardedServerTest, ChunkedBodyOnAnUnknownPathIs413Unread) {
  Start(BodyOnIn());
  const long before = PeakRssKiB();
  RawClient c(port_);
  ASSERT_TRUE(c.Send("POST /nowhere HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  const std::string chunk = "100000\r\n" + std::string(1 << 20, 'z') + "\r\n";
  size_t sent = 0;
  for (int i = 0; i < 512 && c.Send(chunk); ++i) sent += chunk.size();  // the server stops reading early
  EXPECT_EQ(c.Status(), 413);
  const long after = PeakRssKiB();
  std::printf("chunked POST to unknown path (%zu bytes accepted by the socket): 413, peak RSS %ld -> %ld KiB\n",
              sent, before, after);
  EXPECT_LT(sent, 64u << 20);  // the peer did not swallow it
  EXPECT_LT(after - before, 8 * 1024);
}

TEST_F(GuardedServerTest, GzipBombOnABodylessRouteIs413) {
  Start(BodyOnIn());
  // 1 GiB of zeros deflate to ~1 MiB; httplib would inflate it into memory.
  // Built in a stream so the test itself never holds the inflated size.
  std::string bomb;
  {
    z_stream zs{};
    ASSERT_EQ(deflateInit(&zs, 9), Z_OK);
    std::string zeros(1 << 20, '\0'), out(1 << 16, '\0');
    for (int i = 0; i < 1024; ++i) {
      zs.next_in = reinterpret_cast<Bytef*>(zeros.data());
      zs.avail_in = static_cast<uInt>(zeros.size());
      const int flush = i == 1023 ? Z_FINISH : Z_NO_FLUSH;
      do {
        zs.next_out = reinterpret_cast<Bytef*>(out.data());
        zs.avail_out = static_cast<uInt>(out.size());
        deflate(&zs, flush);
        bomb.append(out.data(), out.size() - zs.avail_out);
      } while (zs.avail_out == 0);
    }
    deflateEnd(&zs);
  }
  const long before = PeakRssKiB();
  RawClient c(port_);
  ASSERT_TRUE(c.Send("POST /health HTTP/1.1\r\nHost: x\r\nContent-Encoding: deflate\r\nContent-Length: " +
                     std::to_string(bomb.size()) + "\r\n\r\n"));
  c.Send(bomb);
  EXPECT_EQ(c.Status(), 413);
  const long after = PeakRssKiB();
  std::printf("deflate bomb (%zu -> 1 GiB): 413, peak RSS %ld -> %ld KiB\n", bomb.size(), before, after);
  EXPECT_LT(after - before, 8 * 1024);
}

TEST_F(GuardedServerTest, EndlessHeadIs431AndTooManyHeadersAre431) {
  HttpLimits l = BodyOnIn();
  l.max_head_bytes = 16 << 10;
  l.max_header_count = 20;
  Start(l);
  const long before = PeakRssKiB();
  {
    RawClient c(port_);
    ASSERT_TRUE(c.Send("GET /health HTTP/1.1\r\nX-Long: "));
    for (int i = 0; i < 256 && c.Send(std::string(64 << 10, 'a')); ++i) {
    }
    EXPECT_EQ(c.Status(), 431);
  }
  {
    RawClient c(port_);
    std::string req = "GET /health HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 50; ++i) req += "X-" + std::to_string(i) + ": v\r\n";
    ASSERT_TRUE(c.Send(req + "\r\n"));
    EXPECT_EQ(c.Status(), 431);
  }
  const long after = PeakRssKiB();
  std::printf("16 MiB header line / 50 headers: 431, peak RSS %ld -> %ld KiB\n", before, after);
  EXPECT_LT(after - before, 8 * 1024);
  EXPECT_EQ(server_->counters().oversize_heads.load(), 2u);
}

TEST_F(GuardedServerTest, SlowClientsAreCutOffAndDoNotDelayOthers) {
  HttpLimits l = BodyOnIn();
  l.threads = 4;
  l.max_connections = 16;
  l.head_timeout = 1500ms;
  l.request_timeout = 2000ms;
  Start(l);
  // More slow peers than threads: heads trickled one header per 200 ms, and
  // bodies trickled one byte per 200 ms.
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 4; ++i) {
    slow.push_back(std::make_unique<RawClient>(port_));
    slow.back()->Send("GET /health HTTP/1.1\r\n");
    slow.push_back(std::make_unique<RawClient>(port_));
    slow.back()->Send("POST /in HTTP/1.1\r\nContent-Length: 1000\r\n\r\n");
  }
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    while (!stop) {
      for (size_t i = 0; i < slow.size(); ++i) slow[i]->Send(i % 2 == 0 ? "X-a: b\r\n" : "x");
      std::this_thread::sleep_for(200ms);
    }
  });
  std::this_thread::sleep_for(300ms);
  auto [status, seconds] = Health();
  EXPECT_EQ(status, 200);
  std::printf("8 slow peers on 4 threads: /health %d in %.3f s\n", status, seconds);
  // Once it waits, slow heads get 1 s and slow bodies fall below the minimum
  // rate after their 2 s grace: never the slow peers' own pace.
  EXPECT_LT(seconds, 2.5);
  std::this_thread::sleep_for(2500ms);
  stop = true;
  trickle.join();
  for (auto& c : slow) EXPECT_EQ(c->Status(), 408);
  EXPECT_GE(server_->counters().timeouts.load(), 8u);
}

TEST_F(GuardedServerTest, IdleConnectionsHoldNoThreadAndExcessIsRefused) {
  HttpLimits l = BodyOnIn();
  l.threads = 4;
  l.max_connections = 8;
  l.max_idle_connections = 1500;
  Start(l);
  const long before = PeakRssKiB();
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 2000; ++i) idle.push_back(std::make_unique<RawClient>(port_));
  std::this_thread::sleep_for(300ms);
  auto [status, seconds] = Health();
  const long after = PeakRssKiB();
  std::printf("2000 idle connections: /health %d in %.3f s, peak RSS %ld -> %ld KiB\n", status, seconds, before,
              after);
  EXPECT_EQ(status, 200);
  EXPECT_LT(seconds, 1.0);
  // At most 1500 stay parked: the others were refused (503) while the pool's
  // backlog was full, or closed to make room (longest idle first).
  int dismissed = 0;
  for (auto& c : idle) dismissed += c->Dismissed();
  const uint64_t counted = server_->counters().rejected_connections + server_->counters().idle_closed;
  std::printf("accepted %lu; dismissed: %d seen by clients, %lu counted (503 or closed idle)\n",
              static_cast<unsigned long>(server_->counters().connections.load()), dismissed,
              static_cast<unsigned long>(counted));
  EXPECT_GE(counted, 500u);
  EXPECT_GE(dismissed, 500);
  EXPECT_LT(after - before, 32 * 1024);
}

TEST_F(GuardedServerTest, BusyPoolAnswers503InsteadOfQueueingForever) {
  HttpLimits l = BodyOnIn();
  l.threads = 2;
  l.max_connections = 2;
  l.head_timeout = 5s;
  Start(l);
  // Two requests whose heads never finish occupy both threads.
  RawClient a(port_), b(port_);
  a.Send("GET /health HTTP/1.1\r\n");
  b.Send("GET /health HTTP/1.1\r\n");
  std::this_thread::sleep_for(300ms);
  auto [status, seconds] = Health();
  EXPECT_EQ(status, 503);
  EXPECT_LT(seconds, 1.0);
  EXPECT_GE(server_->counters().rejected_connections.load(), 1u);
}

// TLS with and without client certificates; certificates made by openssl(1).
class GuardedTlsTest : public GuardedServerTest {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / ("sonde-tls-" + std::to_string(rd()));
    std::filesystem::create_directories(dir_);
    const std::string d = dir_.string();
    const std::string cmd =
        "cd " + d +
        " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca"
        " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1"
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1"
        " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=agent-1"
        " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 1";
    ASSERT_EQ(std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()), 0);
  }
  void TearDown() override {
    GuardedServerTest::TearDown();
    std::filesystem::remove_all(dir_);
  }
  std::string F(const char* name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

TEST_F(GuardedTlsTest, ServesHttpsAndRequiresClientCertificatesWhenConfigured) {
  Start(BodyOnIn(), {F("server.pem"), F("server.key"), F("ca.pem")});
  {
    httplib::SSLClient no_cert("127.0.0.1", port_);
    no_cert.set_ca_cert_path(F("ca.pem").c_str());
    auto r = no_cert.Get("/health");
    EXPECT_FALSE(r && r->status == 200);
  }
  httplib::SSLClient with_cert("127.0.0.1", port_, F("client.pem"), F("client.key"));
  with_cert.set_ca_cert_path(F("ca.pem").c_str());
  with_cert.enable_server_certificate_verification(true);
  auto r = with_cert.Get("/health");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "ok");
  // Limits hold over TLS too.
  auto big = with_cert.Post("/health", std::string(100, 'x'), "text/plain");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  // A plaintext client gets no HTTP answer from a TLS listener.
  RawClient plain(port_);
  plain.Send("GET /health HTTP/1.1\r\n\r\n");
  EXPECT_EQ(plain.Status(), 0);
}

TEST_F(GuardedTlsTest, MissingKeyFileIsAClearError) {
  auto s = GuardedHttpServer::Create(HttpLimits{}, {F("server.pem"), F("nope.key"), ""});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("nope.key"), std::string::npos);
}

}  // namespace
}  // namespace sonde::net
