#include "agent/capture/event_json.h"
#include "agent/capture/tuple_format.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <vector>

namespace sonde::capture {
namespace {

TEST(EventJson, DataEventFields) {
  const std::string payload = "HTTP/1.1 200 OK\r\n\x01\xff";
  std::vector<uint8_t> buf(sizeof(sonde_data_event) + payload.size());
  auto* ev = reinterpret_cast<sonde_data_event*>(buf.data());
  ev->hdr.type = SONDE_EVENT_DATA;
  ev->hdr.size = static_cast<uint32_t>(buf.size());
  ev->hdr.pid = 10;
  ev->hdr.tid = 11;
  std::strcpy(ev->hdr.comm, "nginx");
  ev->tuple.family = AF_INET;
  ev->tuple.l4_protocol = 6;
  inet_pton(AF_INET, "10.1.2.3", ev->tuple.saddr);
  inet_pton(AF_INET, "10.1.2.4", ev->tuple.daddr);
  ev->tuple.sport = 80;
  ev->tuple.dport = 5555;
  ev->direction = SONDE_DIR_EGRESS;
  ev->role = SONDE_ROLE_SERVER;
  ev->syscall = SONDE_SYS_WRITEV;
  ev->flags = SONDE_DATA_SEQ_VALID | SONDE_DATA_TRUNCATED;
  ev->tcp_seq = 1000;
  ev->bytes = 9999;
  ev->payload_len = static_cast<uint32_t>(payload.size());
  std::memcpy(ev->payload, payload.data(), payload.size());

  auto j = EventToJson(buf, 0);
  EXPECT_EQ(j["type"], "data");
  EXPECT_EQ(j["comm"], "nginx");
  EXPECT_EQ(j["local"], "10.1.2.3:80");
  EXPECT_EQ(j["remote"], "10.1.2.4:5555");
  EXPECT_EQ(j["direction"], "egress");
  EXPECT_EQ(j["role"], "server");
  EXPECT_EQ(j["syscall"], "writev");
  EXPECT_EQ(j["tcp_seq"], 1000);
  EXPECT_EQ(j["truncated"], true);
  EXPECT_EQ(j["payload"], "HTTP/1.1 200 OK\r\n\\x01\\xff");
}

TEST(EventJson, MappedIpv6PrintsAsIpv4AndMalformedIsLabelled) {
  sonde_tuple t{};
  t.family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:192.0.2.1", t.saddr);
  inet_pton(AF_INET6, "2001:db8::1", t.daddr);
  EXPECT_EQ(FormatEndpoint(t.family, t.saddr, 80), "192.0.2.1:80");
  EXPECT_EQ(FormatEndpoint(t.family, t.daddr, 443), "[2001:db8::1]:443");
  std::vector<uint8_t> junk(4, 0xff);
  EXPECT_EQ(EventToJson(junk, 0)["type"], "malformed");
}

TEST(EventJson, Ipv4FormattingMatchesInetNtop) {
  // Every octet value in every position, against libc.
  for (unsigned v = 0; v < 256; ++v) {
    for (int at = 0; at < 4; ++at) {
      uint8_t addr[SONDE_ADDR_LEN] = {10, 0, 200, 9};
      addr[at] = static_cast<uint8_t>(v);
      char want[INET_ADDRSTRLEN];
      inet_ntop(AF_INET, addr, want, sizeof(want));
      EXPECT_EQ(FormatAddress(AF_INET, addr), want);
    }
  }
}

TEST(EventJson, Ipv6FormattingMatchesInetNtopAndMappedPrintsIpv4) {
  const uint8_t v6[SONDE_ADDR_LEN] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
  char want[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, v6, want, sizeof(want));
  EXPECT_EQ(FormatAddress(AF_INET6, v6), want);
  const uint8_t mapped[SONDE_ADDR_LEN] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  EXPECT_EQ(FormatAddress(AF_INET6, mapped), "10.1.2.3");
}

}  // namespace
}  // namespace sonde::capture
