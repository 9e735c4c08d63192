// Test helper: holds every packet of an NFQUEUE queue for a fixed delay, then
// accepts it. This kernel has no netem; this gives the kernel tests real,
// measurable RTT. Usage: nfq_delay <queue-num> <delay-us>. Prints "ready"
// once bound; runs until killed.
#include <arpa/inet.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>

namespace {
using Clock = std::chrono::steady_clock;
struct Held {
  uint32_t id;
  Clock::time_point release;
};
std::deque<Held> g_held;
std::chrono::microseconds g_delay;

int OnPacket(nfq_q_handle*, nfgenmsg*, nfq_data* nfa, void*) {
  nfqnl_msg_packet_hdr* ph = nfq_get_msg_packet_hdr(nfa);
  if (ph) g_held.push_back({ntohl(ph->packet_id), Clock::now() + g_delay});
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s <queue-num> <delay-us>\n", argv[0]);
    return 2;
  }
  const int queue = std::atoi(argv[1]);
  g_delay = std::chrono::microseconds(std::atol(argv[2]));
  nfq_handle* h = nfq_open();
  if (!h) { std::perror("nfq_open"); return 1; }
  nfq_q_handle* qh = nfq_create_queue(h, static_cast<uint16_t>(queue), &OnPacket, nullptr);
  if (!qh) { std::perror("nfq_create_queue"); return 1; }
  if (nfq_set_mode(qh, NFQNL_COPY_META, 0) < 0) { std::perror("nfq_set_mode"); return 1; }
  nfq_set_queue_maxlen(qh, 65536);
  const int fd = nfq_fd(h);
  int rcvbuf = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
  std::printf("ready\n");
  std::fflush(stdout);
  char buf[65536];
  for (;;) {
    int timeout_ms = -1;
    if (!g_held.empty()) {
      auto wait = std::chrono::duration_cast<std::chrono::microseconds>(g_held.front().release - Clock::now());
      timeout_ms = wait.count() <= 0 ? 0 : static_cast<int>((wait.count() + 999) / 1000);
    }
    pollfd p{fd, POLLIN, 0};
    // Sub-millisecond precision: poll for the coarse part, spin the rest.
    if (timeout_ms > 1) ::poll(&p, 1, timeout_ms - 1);
    else if (timeout_ms < 0) ::poll(&p, 1, -1);
    else ::poll(&p, 1, 0);
    if (p.revents & POLLIN) {
      const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
      if (n > 0) nfq_handle_packet(h, buf, static_cast<int>(n));
    }
    const auto now = Clock::now();
    while (!g_held.empty() && g_held.front().release <= now) {
      nfq_set_verdict(qh, g_held.front().id, NF_ACCEPT, 0, nullptr);
      g_held.pop_front();
    }
  }
}
