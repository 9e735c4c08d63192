// Open-loop HTTP/1.1 load at a fixed request rate, for the latency mode of
// bench/overhead. wrk and h2load (1.52) are closed-loop: a slow response
// delays the next request, so added latency hides as lost throughput
// ("coordinated omission"). Here request i is due at start + i/rate whatever
// happened before, and its latency is measured from that due time.
//
//   sonde_bench_fixed_rate HOST PORT RATE SECONDS [CONNECTIONS]
// prints one line: "reconnects N sent N done N errors N p50_us X p90_us X p99_us X p999_us X max_us X"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Connection {
  int fd = -1;
  bool busy = false;
  Clock::time_point due;  // of the request in flight
  std::string in;
};

int Connect(const char* host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host, &addr.sin_addr);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

// Length of one complete response at the front of `in`, 0 if incomplete.
size_t CompleteResponse(std::string_view in) {
  const size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string_view::npos) return 0;
  size_t body = 0;
  std::string_view head = in.substr(0, head_end);
  for (size_t pos = 0; pos < head.size();) {
    size_t eol = head.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = head.size();
    std::string_view line = head.substr(pos, eol - pos);
    if (line.size() > 15 && strncasecmp(line.data(), "content-length:", 15) == 0) {
      body = std::strtoull(std::string(line.substr(15)).c_str(), nullptr, 10);
    }
    pos = eol + 2;
  }
  const size_t total = head_end + 4 + body;
  return in.size() >= total ? total : 0;
}

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s HOST PORT RATE SECONDS [CONNECTIONS]\n", argv[0]);
    return 2;
  }
  const char* host = argv[1];
  const int port = std::atoi(argv[2]);
  const double rate = std::atof(argv[3]);
  const double seconds = std::atof(argv[4]);
  const int nconn = argc > 5 ? std::atoi(argv[5]) : 64;
  if (rate <= 0 || seconds <= 0 || nconn <= 0) {
    std::fprintf(stderr, "rate, seconds and connections must be positive\n");
    return 2;
  }

  const int ep = epoll_create1(0);
  std::vector<Connection> conns(static_cast<size_t>(nconn));
  for (int i = 0; i < nconn; ++i) {
    conns[static_cast<size_t>(i)].fd = Connect(host, port);
    if (conns[static_cast<size_t>(i)].fd < 0) {
      std::perror("connect");
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = static_cast<uint32_t>(i);
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[static_cast<size_t>(i)].fd, &ev);
  }
  usleep(100'000);  // let the handshakes finish

  std::vector<double> latencies_us;
  latencies_us.reserve(static_cast<size_t>(rate * seconds) + 16);
  std::deque<Clock::time_point> backlog;  // due requests waiting for an idle connection
  std::vector<int> idle;
  for (int i = nconn - 1; i >= 0; --i) idle.push_back(i);
  const uint64_t total = static_cast<uint64_t>(rate * seconds);
  const auto start = Clock::now();
  uint64_t scheduled = 0, done = 0, errors = 0, reconnects = 0;
  char buf[16384];
  std::string request;

  auto send_on = [&](int i, Clock::time_point due) {
    Connection& c = conns[static_cast<size_t>(i)];
    request = "GET /fixed/" + std::to_string(scheduled) + "/" + std::to_string(rand()) +
              " HTTP/1.1\r\nHost: bench\r\nUser-Agent: sonde-fixed-rate\r\n\r\n";
    if (write(c.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
      ++errors;
      idle.push_back(i);
      return;
    }
    c.busy = true;
    c.due = due;
  };

  while (done + errors < total) {
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    if (elapsed > seconds + 10) break;  // responses stopped coming
    const uint64_t due_count = std::min<uint64_t>(total, static_cast<uint64_t>(elapsed * rate) + 1);
    while (scheduled < due_count) {
      backlog.push_back(start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(static_cast<double>(scheduled) / rate)));
      ++scheduled;
    }
    while (!backlog.empty() && !idle.empty()) {
      const int i = idle.back();
      idle.pop_back();
      send_on(i, backlog.front());
      backlog.pop_front();
    }
    // Sleep until the next request is due (ns resolution: a 1 ms epoll_wait
    // tick would add up to 1 ms to every measured latency).
    const auto next_due = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(static_cast<double>(scheduled) / rate));
    auto wait = next_due - Clock::now();
    if (!backlog.empty() || wait < Clock::duration::zero()) wait = Clock::duration::zero();
    if (wait > std::chrono::milliseconds(1)) wait = std::chrono::milliseconds(1);
    const auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(wait).count();
    timespec timeout{0, static_cast<long>(wait_ns)};
    epoll_event events[64];
    const int n = epoll_pwait2(ep, events, 64, &timeout, nullptr);
    for (int k = 0; k < n; ++k) {
      const int i = static_cast<int>(events[k].data.u32);
      Connection& c = conns[static_cast<size_t>(i)];
      const ssize_t got = read(c.fd, buf, sizeof buf);
      if (got <= 0) {
        if (got < 0 && errno == EAGAIN) continue;
        // nginx closes a keep-alive connection after keepalive_requests
        // (after answering): reconnect; a request lost on it is an error.
        epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
        close(c.fd);
        c.in.clear();
        const bool was_busy = c.busy;
        if (was_busy) {
          ++errors;
          c.busy = false;
        }
        c.fd = Connect(host, port);
        if (c.fd < 0) {
          std::perror("reconnect");
          return 1;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u32 = static_cast<uint32_t>(i);
        epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
        ++reconnects;
        if (was_busy) idle.push_back(i);  // an idle connection is already listed
        continue;
      }
      c.in.append(buf, static_cast<size_t>(got));
      while (size_t len = CompleteResponse(c.in)) {
        c.in.erase(0, len);
        if (!c.busy) continue;
        c.busy = false;
        latencies_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - c.due).count());
        ++done;
        idle.push_back(i);
      }
    }
  }
  for (auto& c : conns) close(c.fd);
  std::vector<double> v = latencies_us;
  const double max = v.empty() ? 0 : *std::max_element(v.begin(), v.end());
  std::printf("reconnects %llu sent %llu done %llu errors %llu p50_us %.1f p90_us %.1f p99_us %.1f p999_us %.1f max_us %.1f\n",
              static_cast<unsigned long long>(reconnects), static_cast<unsigned long long>(scheduled),
              static_cast<unsigned long long>(done),
              static_cast<unsigned long long>(errors), Percentile(v, 0.50), Percentile(v, 0.90),
              Percentile(v, 0.99), Percentile(v, 0.999), max);
  return done + errors == total ? 0 : 1;
}
