// Connection lifecycle in the tracker: every way a connection ends is a
// counted release, quiet connections give their buffers back and still parse
// what comes next, the existence check against /proc (real sockets, a real
// exited process) and the memory ceiling.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/conn/socket_probe.h"
#include "agent/conn/tracker.h"
#include "tests/unit/conn/event_builder.h"

namespace sonde::conn {
namespace {

using sonde::testing::Endpoints;
using sonde::testing::SocketSim;
using protocols::Role;

constexpr std::string_view kReq = "GET /users/1 HTTP/1.1\r\nHost: api\r\n\r\n";
constexpr std::string_view kResp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
constexpr uint64_t kSec = 1'000'000'000ull;

SocketSim Server(uint64_t sock, int32_t fd, uint32_t pid = 100) {
  return SocketSim(pid, pid, "nginx", sock, fd, SONDE_ROLE_SERVER,
                   Endpoints{"10.0.0.1", 8080, "10.0.0.2", static_cast<uint16_t>(40000 + sock % 1000)});
}

uint64_t Released(const ConnectionTracker& t, ReleaseReason r) {
  return t.counters().released[static_cast<size_t>(r)];
}

TEST(TrackerLifecycle, EveryReleaseHasItsReason) {
  TrackerOptions o;
  o.idle_timeout_ns = 60 * kSec;
  o.state_close_grace_ns = 100'000'000;
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;

  SocketSim closed = Server(1, 10);  // close() of the fd
  t.OnEvent(closed.Open(kSec), out);
  t.OnEvent(closed.CloseEv(kSec + 10), out);

  SocketSim reset = Server(2, 11);  // the kernel closed it (RST, FIN both ways, process exit)
  t.OnEvent(reset.Open(kSec), out);
  t.OnEvent(reset.StateCloseEv(kSec + 10), out);

  SocketSim old_gen = Server(3, 12);  // fd reused for another socket, close unseen
  t.OnEvent(old_gen.Open(kSec), out);
  SocketSim new_gen = Server(4, 12);
  t.OnEvent(new_gen.Read(kReq, kSec + 20), out);

  SocketSim tls = Server(5, 13);  // no protocol claims it
  // max_infer_calls (8) calls of TLS records: given up, released.
  for (int i = 0; i < 8; ++i) t.OnEvent(tls.Read(std::string("\x16\x03\x01\x02\x00garbage", 12), kSec + 30 + i), out);

  SocketSim idle = Server(6, 14);  // nothing for longer than the idle timeout
  t.OnEvent(idle.Open(kSec), out);

  EXPECT_EQ(Released(t, ReleaseReason::kClose), 1u);
  EXPECT_EQ(Released(t, ReleaseReason::kReplaced), 1u);
  EXPECT_EQ(Released(t, ReleaseReason::kUnclaimed), 1u);
  EXPECT_EQ(Released(t, ReleaseReason::kSocketClosed), 0u) << "not before the grace period";
  t.Tick(kSec + 200'000'000, out);
  EXPECT_EQ(Released(t, ReleaseReason::kSocketClosed), 1u);
  // new_gen keeps its request open; refresh it so only `idle` times out.
  t.OnEvent(new_gen.Write(kResp, 50 * kSec), out);
  t.Tick(62 * kSec, out);
  EXPECT_EQ(Released(t, ReleaseReason::kIdleTimeout), 1u);
  EXPECT_EQ(t.open_connections(), 1u);
  t.CloseAll(out);
  EXPECT_EQ(Released(t, ReleaseReason::kShutdown), 1u);
  const TrackerCounters c = t.counters();
  uint64_t sum = 0;
  for (uint64_t n : c.released) sum += n;
  EXPECT_EQ(sum, c.connections_opened) << "every connection opened was released exactly once";
  EXPECT_EQ(c.connections_closed, c.connections_opened);
}

// Monotonic time is large (time since boot): a connection opened and not
// yet used must not look idle since time 0.
// TLS records on `tls` until the tracker gives the socket up (max_infer_calls).
const std::string kCiphertext("\x16\x03\x01\x02\x00garbage", 12);
void GiveUp(ConnectionTracker& t, SocketSim& tls, std::vector<ConnRecord>& out) {
  for (int i = 0; i < 8; ++i) t.OnEvent(tls.Read(kCiphertext, kSec + i), out);
  ASSERT_EQ(Released(t, ReleaseReason::kUnclaimed), 1u);
}

// A socket given up (no protocol: here TLS ciphertext) is ignored by the
// kernel from then on; its events already in flight are dropped and counted,
// not tracked as a new connection that no close event would end.
TEST(TrackerLifecycle, LateEventsOfAGivenUpSocketAreDroppedForAWhile) {
  TrackerOptions o;
  o.given_up_memory_ns = 2 * kSec;
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;
  SocketSim tls = Server(5, 13);
  GiveUp(t, tls, out);
  const std::string& record = kCiphertext;
  ASSERT_EQ(t.unclaimed_sockets().size(), 1u);
  t.OnEvent(tls.Read(record, kSec + 100), out);  // still in a ring buffer when the kernel was told
  t.OnEvent(tls.Write(record, kSec + 200), out);
  EXPECT_EQ(t.open_connections(), 0u);
  EXPECT_EQ(t.counters().given_up_late_events, 2u);
  t.Tick(kSec + 500'000'000, out);
  t.Tick(4 * kSec, out);  // the sweep forgets it after given_up_memory_ns
  t.OnEvent(tls.Read(record, 4 * kSec + 1), out);
  EXPECT_EQ(t.open_connections(), 1u) << "an event after that is tracked again";
  EXPECT_EQ(t.counters().given_up_late_events, 2u);
}

// The ciphertext of a TLS handshake can be given up before the first SSL
// call; the plaintext the uprobes then report for that socket is tracked.
TEST(TrackerLifecycle, PlaintextOfAGivenUpCiphertextSocketIsTracked) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  SocketSim tls = Server(6, 14);
  GiveUp(t, tls, out);
  auto plain = tls.Read("GET /secure HTTP/1.1\r\nHost: a\r\n\r\n", kSec + 100);
  reinterpret_cast<sonde_data_event*>(plain.data())->flags |= SONDE_DATA_TLS;
  t.OnEvent(plain, out);
  EXPECT_EQ(t.open_connections(), 1u);
  EXPECT_EQ(t.counters().given_up_late_events, 0u);
}

TEST(TrackerLifecycle, OpenedConnectionWithoutBytesIsNotIdle) {
  TrackerOptions o;
  o.idle_timeout_ns = 60 * kSec;
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;
  SocketSim s = Server(9, 10);
  t.OnEvent(s.Open(100'000 * kSec), out);
  t.Tick(100'002 * kSec, out);
  EXPECT_EQ(t.open_connections(), 1u);
  t.Tick(100'061 * kSec, out);
  EXPECT_EQ(Released(t, ReleaseReason::kIdleTimeout), 1u);
}

TEST(TrackerLifecycle, QuietConnectionLeavesActiveListAndStillParses) {
  ConnectionTracker t;  // quiet after 1 s
  std::vector<ConnRecord> out;
  SocketSim s = Server(7, 10);
  t.OnEvent(s.Open(kSec), out);
  t.OnEvent(s.Read(kReq, kSec + 10'000), out);
  t.OnEvent(s.Write(kResp, kSec + 20'000), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(t.active_connections(), 1u);
  t.Tick(kSec + 500'000'000, out);
  EXPECT_EQ(t.active_connections(), 1u) << "not quiet yet";
  t.Tick(3 * kSec, out);
  EXPECT_EQ(t.active_connections(), 0u);
  EXPECT_EQ(t.open_connections(), 1u) << "quiet is not closed";
  // Keep-alive: the next exchange on the same connection after its buffers
  // were given back, split over two calls (so it is buffered again).
  t.OnEvent(s.Read(kReq.substr(0, 10), 4 * kSec), out);
  t.OnEvent(s.Read(kReq.substr(10), 4 * kSec + 10'000), out);
  t.OnEvent(s.Write(kResp, 4 * kSec + 20'000), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].record.path, "/users/1");
  EXPECT_EQ(out[1].record.status, 200);
  EXPECT_EQ(t.active_connections(), 1u);
}

// An idle HTTP/1 session (nothing in flight) is dropped and made afresh on
// the next request, counters kept; one with a request in flight is kept, so
// its response still pairs after the quiet period.
TEST(TrackerLifecycle, IdleSessionDroppedOnlyWhenNothingInFlight) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  SocketSim s = Server(10, 10);
  t.OnEvent(s.Open(kSec), out);
  t.OnEvent(s.Read(kReq, kSec + 10'000), out);
  t.OnEvent(s.Write(kResp, kSec + 20'000), out);
  t.Tick(3 * kSec, out);  // quiet, nothing in flight: session dropped
  EXPECT_EQ(t.counters().protocol.records, 1u);
  // A request whose response comes only after the quiet period.
  t.OnEvent(s.Read(kReq, 4 * kSec), out);
  t.Tick(6 * kSec, out);  // quiet, request in flight: session kept
  t.OnEvent(s.Write(kResp, 7 * kSec), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].record.status, 200);
  EXPECT_EQ(out[1].record.path, "/users/1");
  EXPECT_EQ(out[1].record.flags & protocols::kRecordLateJoin, 0u) << "the fresh session is in sync";
  EXPECT_EQ(out[1].conn.role, Role::kServer);
  EXPECT_EQ(t.counters().protocol.records, 2u) << "counters survive the dropped session";
  EXPECT_EQ(t.counters().protocol.unpaired, 0u);
  t.CloseAll(out);
  EXPECT_EQ(t.counters().protocol.records, 2u);
}

// Busy keep-alive connections hold a session only while a message is in
// flight: after each exchange the session is parked and the next request
// (on any connection) renews it. Parked sessions carry nothing over: a
// pipelined pair split over calls, a late-joined connection and a client
// socket all parse as if the session were new; counters add up; a pool
// nobody drew from for a sweep period is given back.
TEST(TrackerLifecycle, SessionsParkedBetweenExchangesAndRenewed) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  std::vector<SocketSim> socks;
  for (uint64_t i = 0; i < 3; ++i) socks.push_back(Server(20 + i, static_cast<int32_t>(20 + i)));
  uint64_t ts = kSec;
  for (auto& s : socks) t.OnEvent(s.Open(ts += 10'000), out);
  for (auto& s : socks) t.OnEvent(s.Read(kReq, ts += 10'000), out);
  EXPECT_EQ(t.parked_sessions(), 0u) << "three requests in flight";
  for (auto& s : socks) t.OnEvent(s.Write(kResp, ts += 10'000), out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(t.parked_sessions(), 3u) << "every exchange done: no connection holds a session";
  EXPECT_EQ(t.active_connections(), 3u) << "still busy connections";

  // The next request arrives in two calls and its response in two: the
  // renewed session buffers and pairs as a new one would.
  t.OnEvent(socks[1].Read(kReq.substr(0, 7), ts += 10'000), out);
  EXPECT_EQ(t.parked_sessions(), 2u);
  t.OnEvent(socks[1].Read(kReq.substr(7), ts += 10'000), out);
  t.OnEvent(socks[1].Write(kResp.substr(0, 20), ts += 10'000), out);
  EXPECT_EQ(t.parked_sessions(), 2u) << "response half read: session still held";
  t.OnEvent(socks[1].Write(kResp.substr(20), ts += 10'000), out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3].record.path, "/users/1");
  EXPECT_EQ(out[3].record.status, 200);
  EXPECT_EQ(out[3].record.flags & protocols::kRecordLateJoin, 0u);
  EXPECT_EQ(out[3].conn.role, Role::kServer);
  EXPECT_EQ(t.parked_sessions(), 3u);

  // A client socket takes a session renewed for its own role.
  SocketSim client(300, 300, "curl", 99, 5, SONDE_ROLE_CLIENT, Endpoints{"10.0.0.2", 41000, "10.0.0.1", 8080});
  t.OnEvent(client.Open(ts += 10'000), out);
  t.OnEvent(client.Write(kReq, ts += 10'000), out);
  t.OnEvent(client.Read(kResp, ts += 10'000), out);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[4].conn.role, Role::kClient);
  EXPECT_EQ(out[4].record.path, "/users/1");
  EXPECT_EQ(t.counters().protocol.records, 5u) << "parked sessions' counters are kept";
  EXPECT_EQ(t.counters().protocol.unpaired, 0u);

  // A request left without its response keeps its session across sweeps.
  t.OnEvent(socks[2].Read(kReq, ts += 10'000), out);
  t.Tick(ts + 2 * kSec, out);  // first sweep: the pool was drawn down to 2
  t.Tick(ts + 4 * kSec, out);  // nobody took one since: given back
  EXPECT_EQ(t.parked_sessions(), 0u);
  t.OnEvent(socks[2].Write(kResp, ts + 5 * kSec), out);
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(out[5].record.status, 200);
  t.CloseAll(out);
  EXPECT_EQ(t.counters().protocol.records, 6u);
}

// HTTP/2 keeps its HPACK tables across ReleaseIdleMemory: a header sent
// once with incremental indexing and referenced by index after the quiet
// period still decodes.
std::string H2Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f.push_back(static_cast<char>(payload.size() >> 16));
  f.push_back(static_cast<char>(payload.size() >> 8));
  f.push_back(static_cast<char>(payload.size()));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift : {24, 16, 8, 0}) f.push_back(static_cast<char>(stream >> shift));
  return f + payload;
}

TEST(TrackerLifecycle, Http2HpackStateSurvivesQuietPeriod) {
  ConnectionTracker t;
  std::vector<ConnRecord> out;
  SocketSim s = Server(8, 10);
  t.OnEvent(s.Open(kSec), out);
  const std::string settings = H2Frame(4, 0, 0, "");
  t.OnEvent(s.Read("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings, kSec + 10), out);
  t.OnEvent(s.Write(settings + H2Frame(4, 1, 0, ""), kSec + 20), out);
  // :method GET, :scheme http, :path / (static), :authority literal indexed (dynamic 62).
  const std::string authority = std::string("\x41\x0f", 2) + "api.example.com";
  t.OnEvent(s.Read(H2Frame(1, 5, 1, std::string("\x82\x86\x84", 3) + authority), kSec + 30), out);
  t.OnEvent(s.Write(H2Frame(1, 5, 1, std::string("\x88", 1)), kSec + 40), out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].record.authority, "api.example.com");
  t.Tick(5 * kSec, out);
  ASSERT_EQ(t.active_connections(), 0u);
  // Same request, :authority now by index 62 (0xbe).
  t.OnEvent(s.Read(H2Frame(1, 5, 3, std::string("\x82\x86\x84\xbe", 4)), 6 * kSec), out);
  t.OnEvent(s.Write(H2Frame(1, 5, 3, std::string("\x88", 1)), 6 * kSec + 10), out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].record.authority, "api.example.com");
  EXPECT_EQ(out[1].record.flags & protocols::kRecordHeadersPartial, 0u);
}

// A real socket this process holds, one it closed, and a process that exited.
TEST(TrackerLifecycle, ProbeReleasesSocketsThatNoLongerExist) {
  ProcSocketProbe probe;
  TrackerOptions o;
  o.socket_probe = &probe;
  o.probe_after_ns = 5 * kSec;
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;

  auto inode_of = [](int fd) {
    struct stat st {};
    EXPECT_EQ(fstat(fd, &st), 0);
    return static_cast<uint64_t>(st.st_ino);
  };
  const uint32_t self = static_cast<uint32_t>(getpid());
  const int live_fd = socket(AF_INET, SOCK_STREAM, 0);
  const int gone_fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(live_fd, 0);
  ASSERT_GE(gone_fd, 0);
  const uint64_t live_inode = inode_of(live_fd);
  const uint64_t gone_inode = inode_of(gone_fd);
  close(gone_fd);
  const pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(waitpid(child, nullptr, 0), child);  // reaped: /proc/<child> is gone

  SocketSim live = Server(live_inode, live_fd, self);
  SocketSim gone = Server(gone_inode, gone_fd, self);
  SocketSim exited = Server(999'999'999, 3, static_cast<uint32_t>(child));
  for (SocketSim* s : {&live, &gone, &exited}) t.OnEvent(s->Open(kSec), out);

  t.Tick(3 * kSec, out);  // quiet, but not long enough to be checked
  EXPECT_EQ(t.counters().socket_probes, 0u);
  EXPECT_EQ(t.open_connections(), 3u);
  t.Tick(7 * kSec, out);
  EXPECT_EQ(t.counters().socket_probes, 3u);
  EXPECT_EQ(Released(t, ReleaseReason::kSocketGone), 1u);
  EXPECT_EQ(Released(t, ReleaseReason::kProcessExited), 1u);
  EXPECT_EQ(t.open_connections(), 1u) << "the socket this process holds is kept";
  t.Tick(9 * kSec, out);
  EXPECT_EQ(t.counters().socket_probes, 3u) << "checked again only probe_after_ns later";
  t.Tick(13 * kSec, out);
  EXPECT_EQ(t.counters().socket_probes, 4u);
  EXPECT_EQ(t.open_connections(), 1u);
  close(live_fd);
  t.Tick(19 * kSec, out);
  EXPECT_EQ(Released(t, ReleaseReason::kSocketGone), 2u);
  EXPECT_EQ(t.open_connections(), 0u);
}

TEST(ProcSocketProbe, ReadsProcFd) {
  ProcSocketProbe probe;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  const uint32_t self = static_cast<uint32_t>(getpid());
  EXPECT_EQ(probe.Check(self, fd, st.st_ino), SocketLiveness::kAlive);
  EXPECT_EQ(probe.Check(self, fd, st.st_ino + 1), SocketLiveness::kGone) << "fd names another socket";
  EXPECT_EQ(probe.Check(self, 0, st.st_ino), SocketLiveness::kGone) << "fd 0 is not that socket";
  close(fd);
  EXPECT_EQ(probe.Check(self, fd, st.st_ino), SocketLiveness::kGone);
  EXPECT_EQ(probe.Check(0, fd, st.st_ino), SocketLiveness::kUnknown);
  EXPECT_EQ(probe.Check(self, -1, st.st_ino), SocketLiveness::kUnknown);
}

// Past the ceiling: quiet connections go first, then buffering across calls
// stops -- but a message that fits one call still becomes a record.
TEST(TrackerLifecycle, MemoryCeilingShedsIdleThenBuffering) {
  TrackerOptions o;
  o.memory_ceiling_bytes = 1;  // any process is above it
  ConnectionTracker t(o);
  std::vector<ConnRecord> out;
  SocketSim quiet = Server(20, 10);
  t.OnEvent(quiet.Open(kSec), out);
  t.Tick(3 * kSec, out);  // first sweep: shed idle connections
  EXPECT_EQ(t.shed_level(), ShedLevel::kIdleConnections);
  EXPECT_EQ(Released(t, ReleaseReason::kMemoryShed), 1u);
  EXPECT_EQ(t.open_connections(), 0u);

  SocketSim busy = Server(21, 11);
  t.OnEvent(busy.Open(4 * kSec), out);
  t.OnEvent(busy.Read(kReq, 4 * kSec + 10'000), out);
  t.Tick(4 * kSec + 20'000, out);  // second sweep: buffering off; `busy` is active, kept
  EXPECT_EQ(t.shed_level(), ShedLevel::kPayloadBuffering);
  EXPECT_EQ(t.open_connections(), 1u);
  t.OnEvent(busy.Write(kResp, 4 * kSec + 30'000), out);
  ASSERT_EQ(out.size(), 1u) << "single-call messages still parse: RED keeps counting";
  // A request split over two calls cannot be buffered: dropped, counted.
  const uint64_t drops_before = t.counters().memory_drops;
  t.OnEvent(busy.Read(kReq.substr(0, 10), 5 * kSec), out);
  EXPECT_EQ(t.buffered_bytes(), 0u);
  EXPECT_GT(t.counters().memory_drops, drops_before);
  EXPECT_GE(t.counters().memory_ceiling_sheds, 2u);
}

TEST(MemoryCeiling, EscalatesAndRecoversWithHysteresis) {
  uint64_t rss = 0;
  MemoryCeiling ceiling(1000, [&] { return rss; });
  rss = 900;
  EXPECT_EQ(ceiling.Check(), ShedLevel::kNone);
  rss = 1100;
  EXPECT_EQ(ceiling.Check(), ShedLevel::kIdleConnections);
  EXPECT_EQ(ceiling.Check(), ShedLevel::kPayloadBuffering);
  EXPECT_EQ(ceiling.Check(), ShedLevel::kPayloadBuffering);
  rss = 950;  // below the ceiling, above 90 %: stay
  EXPECT_EQ(ceiling.Check(), ShedLevel::kPayloadBuffering);
  rss = 800;
  EXPECT_EQ(ceiling.Check(), ShedLevel::kNone);
  MemoryCeiling off(0, [] { return uint64_t{1} << 40; });
  EXPECT_EQ(off.Check(), ShedLevel::kNone);
  EXPECT_GT(ReadSelfRss(), 0u);
}

}  // namespace
}  // namespace sonde::conn
