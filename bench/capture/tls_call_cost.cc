// Cost of one TLS library call under the TLS uprobes: a child process
// ping-pongs small messages over a loopback TLS connection (OpenSSL 3,
// SSL_write + SSL_read per side, one thread) with the agent's capture off,
// on without TLS (--no-tls: the ciphertext is copied as socket data), on
// with TLS (plaintext copied, ciphertext skipped) with the probes on
// emulated instructions where the code allows (the default,
// agent/tls/probe_sites.h), and on with TLS with entry + return probes. Prints wall-clock ns per SSL call for each and the kernel-
// measured BPF run time per program run (bpf_enable_stats). The wall-clock
// difference includes what the BPF numbers do not: the uprobe/uretprobe
// traps themselves. Run as root; needs the openssl CLI for the certificate.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include <bpf/bpf.h>

#include "agent/capture/socket_capture.h"

namespace {

struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() {
    if (pipe(fds) != 0) std::exit(1);
  }
  ~Pipe() {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  }
};

// Both ends of a TLS connection in one thread: handshake with non-blocking
// sockets stepped alternately, then blocking ping-pong.
struct TlsPair {
  SSL_CTX* server_ctx = nullptr;
  SSL_CTX* client_ctx = nullptr;
  SSL* server = nullptr;
  SSL* client = nullptr;

  bool Setup(const std::string& cert, const std::string& key) {
    server_ctx = SSL_CTX_new(TLS_server_method());
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (SSL_CTX_use_certificate_file(server_ctx, cert.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_use_PrivateKey_file(server_ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
      return false;
    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    listen(listener, 1);
    socklen_t len = sizeof(addr);
    getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len);
    const int a = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(a, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return false;
    const int b = accept(listener, nullptr, nullptr);
    close(listener);
    const int one = 1;
    setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(a, F_SETFL, O_NONBLOCK);
    fcntl(b, F_SETFL, O_NONBLOCK);
    client = SSL_new(client_ctx);
    server = SSL_new(server_ctx);
    SSL_set_fd(client, a);
    SSL_set_fd(server, b);
    for (int step = 0; step < 1000; ++step) {
      const int c = SSL_connect(client), s = SSL_accept(server);
      if (c == 1 && s == 1) {
        fcntl(a, F_SETFL, 0);
        fcntl(b, F_SETFL, 0);
        return true;
      }
      usleep(100);
    }
    return false;
  }
};

// Runs `iterations` round trips (4 SSL calls each) in a forked child after
// `before_go` ran in the parent; returns ns per SSL call.
template <typename BeforeGo>
double MeasureChild(const std::string& cert, const std::string& key, int iterations, size_t bytes,
                    BeforeGo before_go) {
  Pipe ready, go, result;
  const pid_t pid = fork();
  if (pid == 0) {
    TlsPair p;
    const char ok = p.Setup(cert, key) ? 1 : 0;
    if (write(ready.fds[1], &ok, 1) != 1 || !ok) _exit(1);
    char c;
    if (read(go.fds[0], &c, 1) != 1) _exit(1);
    std::vector<char> buf(bytes, 'x');
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < iterations; ++i) {
      if (SSL_write(p.client, buf.data(), static_cast<int>(bytes)) <= 0) _exit(1);
      if (SSL_read(p.server, buf.data(), static_cast<int>(bytes)) <= 0) _exit(1);
      if (SSL_write(p.server, buf.data(), static_cast<int>(bytes)) <= 0) _exit(1);
      if (SSL_read(p.client, buf.data(), static_cast<int>(bytes)) <= 0) _exit(1);
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    const double per_call = ns / (iterations * 4.0);
    if (write(result.fds[1], &per_call, sizeof(per_call)) < 0) _exit(1);
    _exit(0);
  }
  char ok = 0;
  if (read(ready.fds[0], &ok, 1) != 1 || !ok) {
    std::fprintf(stderr, "child TLS setup failed\n");
    std::exit(1);
  }
  before_go();
  const char c = 'g';
  if (write(go.fds[1], &c, 1) != 1) std::exit(1);
  double per_call = -1;
  if (read(result.fds[0], &per_call, sizeof(per_call)) != sizeof(per_call)) per_call = -1;
  waitpid(pid, nullptr, 0);
  return per_call;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct ProgramCost {
  uint64_t runs = 0, ns = 0;
  double per_run() const { return runs ? static_cast<double>(ns) / static_cast<double>(runs) : 0; }
};

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 20000;
  if (geteuid() != 0) {
    std::fprintf(stderr, "run as root (loads BPF programs)\n");
    return 1;
  }
  char dir_template[] = "/tmp/sonde-tls-bench-XXXXXX";
  const char* dir = mkdtemp(dir_template);
  if (dir == nullptr) return 1;
  const std::string key = std::string(dir) + "/key.pem", cert = std::string(dir) + "/cert.pem";
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
                          " -days 1 -subj /CN=localhost >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "openssl CLI failed\n");
    return 1;
  }
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  std::printf("TLS call cost: %d round trips per run (4 SSL calls each: write+read per side), median of 3\n",
              iterations);
  std::printf("%-9s %12s %14s %10s %14s %10s %16s %10s\n", "msg_bytes", "off_ns/call", "no_tls_ns/call",
              "added_ns", "tls_ns/call", "added_ns", "tls_ret_ns/call", "added_ns");
  for (size_t bytes : {64, 1024, 4096}) {
    auto nothing = [] {};
    std::vector<double> off, no_tls, tls, tls_ret;
    for (int r = 0; r < 3; ++r) off.push_back(MeasureChild(cert, key, iterations, bytes, nothing));

    struct Mode {
      bool tls;
      bool emulated_sites;
      std::vector<double>* out;
    };
    ProgramCost exit_cost, enter_cost, ret_cost;
    uint64_t plaintext = 0, ciphertext_skipped = 0, events = 0;
    for (const Mode m : {Mode{false, true, &no_tls}, Mode{true, true, &tls}, Mode{true, false, &tls_ret}}) {
      sonde::capture::SocketCaptureOptions o;
      o.tls = m.tls;
      o.tls_attach.emulated_sites = m.emulated_sites;
      auto capture = sonde::capture::SocketCapture::Create(o);
      if (!capture.ok()) {
        std::fprintf(stderr, "capture: %s\n", std::string(capture.status().message()).c_str());
        return 1;
      }
      std::atomic<bool> stop{false};
      std::atomic<uint64_t> n{0};
      std::thread drain([&] {
        while (!stop.load()) (void)(*capture)->Poll(20, [&](sonde::capture::RawEvent) { ++n; });
      });
      // The child maps libssl like every process: a scan after it exists finds the file.
      auto rescan = [&] { (*capture)->RescanTls(); };
      for (int r = 0; r < 3; ++r) m.out->push_back(MeasureChild(cert, key, iterations, bytes, rescan));
      stop = true;
      drain.join();
      if (m.tls && m.emulated_sites) {
        const auto k = (*capture)->ReadKernelCounters();
        plaintext = k.stats[SONDE_STAT_TLS_PLAINTEXT];
        ciphertext_skipped = k.stats[SONDE_STAT_TLS_CIPHERTEXT];
        events = n.load();
        for (const auto& p : (*capture)->ReadProgramStats()) {
          ProgramCost* c = p.name == "on_sys_exit"                                  ? &exit_cost
                           : p.name == "tls_exit_probe" || p.name == "tls_exit_site" ? &ret_cost
                           : p.name.rfind("tls_", 0) == 0                           ? &enter_cost
                                                                                    : nullptr;
          if (c != nullptr) {
            c->runs += p.run_count;
            c->ns += p.run_time_ns;
          }
        }
      }
    }
    const double o = Median(off), nt = Median(no_tls), t = Median(tls), tr = Median(tls_ret);
    std::printf("%-9zu %12.0f %14.0f %10.0f %14.0f %10.0f %16.0f %10.0f\n", bytes, o, nt, nt - o, t, t - o, tr,
                tr - o);
    if (stats_fd >= 0) {
      std::printf("          BPF per run (TLS, default sites): entry %.0f ns, exit %.0f ns, sys_exit %.0f ns;"
                  " plaintext events %llu, ciphertext calls skipped %llu, events drained %llu\n",
                  enter_cost.per_run(), ret_cost.per_run(), exit_cost.per_run(),
                  static_cast<unsigned long long>(plaintext), static_cast<unsigned long long>(ciphertext_skipped),
                  static_cast<unsigned long long>(events));
    }
  }
  if (stats_fd >= 0) close(stats_fd);
  std::system((std::string("rm -rf ") + dir).c_str());
  return 0;
}
