// UDP at the capture layer: an unconnected socket pair in a child process
// exchanges datagrams through sendmmsg/recvmmsg (five messages per call),
// sendto/recvfrom and sendmsg/recvmsg. Every message must be its own event
// with its own bytes and payload, and the peer of each datagram (which an
// unconnected socket does not hold) must be the address the call named.
// Messages of one call past SONDE_MAX_MMSG are counted as lost, not dropped silently.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "agent/capture/socket_capture.h"
#include "tests/testlib/process.h"

namespace sonde {
namespace {

constexpr int kMessages = 5;

sockaddr_in Loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

uint16_t PortOf(int fd) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

// The child's exchange; returns 0 when every call moved what it should.
int Exchange(int go_fd, int ports_fd) {
  const int server = socket(AF_INET, SOCK_DGRAM, 0), client = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in any = Loopback(0);
  if (bind(server, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) return 10;
  if (bind(client, reinterpret_cast<sockaddr*>(&any), sizeof any) != 0) return 11;
  const uint16_t ports[2] = {PortOf(server), PortOf(client)};
  if (write(ports_fd, ports, sizeof ports) != sizeof ports) return 12;
  char go;
  if (read(go_fd, &go, 1) != 1) return 13;  // the parent's capture is attached
  sockaddr_in server_addr = Loopback(ports[0]);

  // Client -> server: one sendmmsg of five datagrams, each naming the server.
  std::string queries[kMessages];
  iovec out_iov[kMessages];
  mmsghdr out[kMessages]{};
  for (int i = 0; i < kMessages; ++i) {
    queries[i] = "query-" + std::to_string(i) + std::string(static_cast<size_t>(i) * 10, 'q');
    out_iov[i] = {queries[i].data(), queries[i].size()};
    out[i].msg_hdr.msg_iov = &out_iov[i];
    out[i].msg_hdr.msg_iovlen = 1;
    out[i].msg_hdr.msg_name = &server_addr;
    out[i].msg_hdr.msg_namelen = sizeof server_addr;
  }
  if (sendmmsg(client, out, kMessages, 0) != kMessages) return 14;

  // Server: one recvmmsg of all five, each with its sender's address.
  char in_buf[kMessages][256];
  iovec in_iov[kMessages];
  sockaddr_in from[kMessages]{};
  mmsghdr in[kMessages]{};
  for (int i = 0; i < kMessages; ++i) {
    in_iov[i] = {in_buf[i], sizeof in_buf[i]};
    in[i].msg_hdr.msg_iov = &in_iov[i];
    in[i].msg_hdr.msg_iovlen = 1;
    in[i].msg_hdr.msg_name = &from[i];
    in[i].msg_hdr.msg_namelen = sizeof from[i];
  }
  int got = 0;
  while (got < kMessages) {
    const int n = recvmmsg(server, in + got, kMessages - got, 0, nullptr);
    if (n <= 0) return 15;
    got += n;
  }
  // Server -> client: sendto each answer; the client reads with recvfrom.
  for (int i = 0; i < kMessages; ++i) {
    const std::string answer = "answer-" + std::to_string(i);
    if (sendto(server, answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from[i]), sizeof from[i]) !=
        static_cast<ssize_t>(answer.size()))
      return 16;
    char buf[256];
    sockaddr_in src{};
    socklen_t len = sizeof src;
    if (recvfrom(client, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&src), &len) <= 0) return 17;
  }
  // More messages than one call reports (SONDE_MAX_MMSG): the rest is counted as lost.
  constexpr int kBulk = SONDE_MAX_MMSG + 4;
  std::string bulk[kBulk];
  iovec bulk_iov[kBulk];
  mmsghdr bulk_out[kBulk]{};
  for (int i = 0; i < kBulk; ++i) {
    bulk[i] = "bulk-" + std::to_string(i);
    bulk_iov[i] = {bulk[i].data(), bulk[i].size()};
    bulk_out[i].msg_hdr.msg_iov = &bulk_iov[i];
    bulk_out[i].msg_hdr.msg_iovlen = 1;
    bulk_out[i].msg_hdr.msg_name = &server_addr;
    bulk_out[i].msg_hdr.msg_namelen = sizeof server_addr;
  }
  if (sendmmsg(client, bulk_out, kBulk, 0) != kBulk) return 20;
  char bulk_buf[kBulk][64];
  iovec bulk_in_iov[kBulk];
  mmsghdr bulk_in[kBulk]{};
  for (int i = 0; i < kBulk; ++i) {
    bulk_in_iov[i] = {bulk_buf[i], sizeof bulk_buf[i]};
    bulk_in[i].msg_hdr.msg_iov = &bulk_in_iov[i];
    bulk_in[i].msg_hdr.msg_iovlen = 1;
  }
  for (int got_bulk = 0; got_bulk < kBulk;) {
    const int n = recvmmsg(server, bulk_in + got_bulk, kBulk - got_bulk, 0, nullptr);
    if (n <= 0) return 21;
    got_bulk += n;
  }
  // sendmsg / recvmsg with msg_name.
  std::string last = "via-sendmsg";
  iovec iov = {last.data(), last.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_name = &server_addr;
  msg.msg_namelen = sizeof server_addr;
  if (sendmsg(client, &msg, 0) != static_cast<ssize_t>(last.size())) return 18;
  char buf[256];
  iovec riov = {buf, sizeof buf};
  sockaddr_in src{};
  msghdr rmsg{};
  rmsg.msg_iov = &riov;
  rmsg.msg_iovlen = 1;
  rmsg.msg_name = &src;
  rmsg.msg_namelen = sizeof src;
  if (recvmsg(server, &rmsg, 0) != static_cast<ssize_t>(last.size())) return 19;
  return 0;
}

struct Seen {
  uint8_t syscall, direction, flags;
  uint16_t local_port, peer_port;
  std::string payload;
};

TEST(UdpCaptureKernel, EveryMmsgMessageWithItsPeer) {
  SONDE_REQUIRE_ROOT();
  int go[2], ports[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(ports), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(Exchange(go[0], ports[1]));
  uint16_t port_pair[2] = {0, 0};
  ASSERT_EQ(read(ports[0], port_pair, sizeof port_pair), static_cast<ssize_t>(sizeof port_pair));
  const uint16_t server_port = port_pair[0], client_port = port_pair[1];

  capture::SocketCaptureOptions co;
  co.filter.include_pids = {static_cast<uint32_t>(child)};
  co.ringbuf_bytes = 4u << 20;
  auto cap = capture::SocketCapture::Create(co);
  if (!cap.ok()) kill(child, SIGKILL);
  SONDE_REQUIRE(cap.ok(), "socket capture: " + cap.status().ToString());
  ASSERT_EQ(write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0) << "the child's exchange failed at step " << WEXITSTATUS(status);

  std::vector<Seen> seen;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE((*cap)->Poll(50, [&](capture::RawEvent raw) {
                         const sonde_data_event* d = capture::AsDataEvent(raw);
                         if (d == nullptr || d->hdr.pid != static_cast<uint32_t>(child)) return;
                         seen.push_back({d->syscall, d->direction, d->flags, d->tuple.sport, d->tuple.dport,
                                         std::string(reinterpret_cast<const char*>(d->payload), d->payload_len)});
                       })
                    .ok());
  }
  auto count = [&](uint8_t syscall, uint16_t local, uint16_t peer, std::string_view prefix) {
    int n = 0;
    for (const Seen& s : seen) {
      if (s.syscall != syscall || s.local_port != local || s.payload.rfind(prefix, 0) != 0) continue;
      EXPECT_EQ(s.peer_port, peer) << "syscall " << int(syscall) << " " << s.payload;
      EXPECT_TRUE(s.flags & SONDE_DATA_PEER_ADDR) << s.payload;
      ++n;
    }
    return n;
  };
  EXPECT_EQ(count(SONDE_SYS_SENDMMSG, client_port, server_port, "query-"), kMessages);
  EXPECT_EQ(count(SONDE_SYS_RECVMMSG, server_port, client_port, "query-"), kMessages);
  EXPECT_EQ(count(SONDE_SYS_SENDTO, server_port, client_port, "answer-"), kMessages);
  EXPECT_EQ(count(SONDE_SYS_RECVFROM, client_port, server_port, "answer-"), kMessages);
  EXPECT_EQ(count(SONDE_SYS_SENDMSG, client_port, server_port, "via-sendmsg"), 1);
  EXPECT_EQ(count(SONDE_SYS_RECVMSG, server_port, client_port, "via-sendmsg"), 1);
  // A call's messages past SONDE_MAX_MMSG are counted, not captured.
  int bulk_sent = 0, bulk_received = 0;
  for (const Seen& s : seen) {
    if (s.payload.rfind("bulk-", 0) != 0) continue;
    bulk_sent += s.syscall == SONDE_SYS_SENDMMSG;
    bulk_received += s.syscall == SONDE_SYS_RECVMMSG;
  }
  const uint64_t excess = (*cap)->ReadKernelCounters().drops[SONDE_DROP_MMSG_EXCESS];
  EXPECT_EQ(bulk_sent, SONDE_MAX_MMSG);
  EXPECT_GE(excess, 4u);
  EXPECT_EQ(static_cast<uint64_t>(bulk_received) + (excess - 4), static_cast<uint64_t>(SONDE_MAX_MMSG + 4));
  // Each mmsg message is its own event with its own size and payload.
  for (const Seen& s : seen) {
    if (s.syscall != SONDE_SYS_SENDMMSG && s.syscall != SONDE_SYS_RECVMMSG) continue;
    EXPECT_TRUE(s.flags & SONDE_DATA_MULTI_MSG);
    if (s.payload.rfind("bulk-", 0) == 0) continue;
    const int i = s.payload[6] - '0';
    EXPECT_EQ(s.payload, "query-" + std::to_string(i) + std::string(static_cast<size_t>(i) * 10, 'q'));
  }
}

}  // namespace
}  // namespace sonde
