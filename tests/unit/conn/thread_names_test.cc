// ThreadNames, and the tracker naming connections whose events carry no
// thread name (the capture sends it on a socket's first data event only).
#include "agent/conn/thread_names.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>

#include "agent/conn/tracker.h"
#include "tests/unit/conn/event_builder.h"

namespace sonde::conn {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::SocketSim;

constexpr std::string_view kReq = "GET /a HTTP/1.1\r\nHost: api\r\n\r\n";
constexpr std::string_view kResp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

std::string FirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

TEST(ThreadNames, LearnsNulPaddedNamesAndIgnoresEmptyOnes) {
  ThreadNames names;
  const char comm[16] = "nginx";
  names.Learn(7, comm, sizeof(comm));
  const char empty[16] = {};
  names.Learn(7, empty, sizeof(empty));  // a later, unnamed event does not erase it
  EXPECT_EQ(names.Name(1, 7), "nginx");
  const char full[16] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p'};
  names.Learn(8, full, sizeof(full));  // no NUL within 16 bytes
  EXPECT_EQ(names.Name(1, 8), "abcdefghijklmnop");
  EXPECT_EQ(names.Name(1, 9), "") << "unknown and no /proc";
}

TEST(ThreadNames, ReadsProcForThreadsNeverSeenNamed) {
  std::string thread_name;
  uint32_t tid = 0;
  std::thread t([&] {
    prctl(PR_SET_NAME, "sonde-tn-probe");
    tid = static_cast<uint32_t>(gettid());
    ThreadNames names("/proc");
    thread_name = names.Name(static_cast<uint32_t>(getpid()), tid);
  });
  t.join();
  EXPECT_EQ(thread_name, "sonde-tn-probe");
  // The thread has exited: its process's name stands in.
  ThreadNames names("/proc");
  EXPECT_EQ(names.Name(static_cast<uint32_t>(getpid()), tid), FirstLine("/proc/self/comm"));
  EXPECT_EQ(names.size(), 1u);
  EXPECT_EQ(ThreadNames("/proc").Name(0x7ffffff0u, 0x7ffffff0u), "") << "no such process";
}

TEST(ThreadNames, ForgetsEverythingPastItsBound) {
  ThreadNames names;
  const char comm[16] = "w";
  for (uint32_t tid = 1; tid <= 65536; ++tid) names.Learn(tid, comm, sizeof(comm));
  EXPECT_EQ(names.size(), 65536u);
  names.Learn(70000, comm, sizeof(comm));
  EXPECT_EQ(names.size(), 1u);
  EXPECT_EQ(names.Name(0, 70000), "w");
}

SocketSim Server(uint64_t sock, int32_t fd, uint32_t pid, uint32_t tid, std::string comm) {
  return SocketSim(pid, tid, std::move(comm), sock, fd, SONDE_ROLE_SERVER,
                   Endpoints{"10.0.0.1", 8080, "10.0.0.2", static_cast<uint16_t>(40000 + fd)});
}

TEST(ConnectionTracker, UnnamedSocketTakesTheNameItsThreadWasSeenWith) {
  ConnectionTracker t;  // a recording: no /proc
  std::vector<ConnRecord> out;
  SocketSim first = Server(70, 5, 100, 101, "nginx");
  t.OnEvent(first.Read(kReq, 1000), out);
  t.OnEvent(first.Write(kResp, 2000), out);
  SocketSim later = Server(71, 6, 100, 101, "");  // its first event was lost, or its tracking released
  t.OnEvent(later.Read(kReq, 3000), out);
  t.OnEvent(later.Write(kResp, 4000), out);
  SocketSim stranger = Server(72, 7, 100, 102, "");  // a thread never seen named
  t.OnEvent(stranger.Read(kReq, 5000), out);
  t.OnEvent(stranger.Write(kResp, 6000), out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].conn.comm, "nginx");
  EXPECT_EQ(out[1].conn.comm, "nginx");
  EXPECT_EQ(out[2].conn.comm, "");
}

TEST(ConnectionTracker, ConnectionEventsNameTheirThread) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  SocketSim accepted = Server(80, 5, 200, 201, "envoy");
  t.OnEvent(accepted.Open(1000), out);  // accept names the thread
  accepted.set_comm("");                // its data events do not
  t.OnEvent(accepted.Read(kReq, 2000), out);
  t.OnEvent(accepted.Write(kResp, 3000), out);
  SocketSim other = Server(81, 6, 200, 201, "");
  t.OnEvent(other.Read(kReq, 4000), out);
  t.OnEvent(other.Write(kResp, 5000), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].conn.comm, "envoy");
  EXPECT_EQ(out[1].conn.comm, "envoy");
}

TEST(ConnectionTracker, LiveUnnamedSocketOfUnknownThreadReadsProc) {
  TrackerOptions o;
  o.thread_names_proc_root = "/proc";
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;
  const auto pid = static_cast<uint32_t>(getpid());
  const auto tid = static_cast<uint32_t>(gettid());
  SocketSim s = Server(90, 5, pid, tid, "");
  t.OnEvent(s.Read(kReq, 1000), out);
  t.OnEvent(s.Write(kResp, 2000), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].conn.comm, FirstLine("/proc/self/task/" + std::to_string(tid) + "/comm"));
  EXPECT_FALSE(out[0].conn.comm.empty());
}

}  // namespace
}  // namespace sonde::conn
