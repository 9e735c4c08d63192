// The kernel/user structs as user space reads them out of the ring buffer.
#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "agent/bpf/abi_checks.h"
#include "agent/capture/event_source.h"

namespace sonde::capture {
namespace {

TEST(AbiLayout, DataEventPayloadFollowsFixedPart) {
  // The BPF side computes the record size as sizeof(event) + payload_len.
  EXPECT_EQ(offsetof(sonde_data_event, payload), sizeof(sonde_data_event));
  EXPECT_EQ(sizeof(sonde_data_event) % 8, 0u);
  EXPECT_EQ(sizeof(sonde_conn_event) % 8, 0u);
}

TEST(AbiLayout, EnumValuesAreStable) {
  // Recorded files and the server depend on these numbers: never renumber.
  EXPECT_EQ(SONDE_EVENT_DATA, 1);
  EXPECT_EQ(SONDE_EVENT_CONN_OPEN, 2);
  EXPECT_EQ(SONDE_EVENT_CONN_CLOSE, 3);
  EXPECT_EQ(SONDE_DIR_EGRESS, 1);
  EXPECT_EQ(SONDE_DIR_INGRESS, 2);
  EXPECT_EQ(SONDE_SYS_SENDFILE, 11);
  EXPECT_EQ(SONDE_SYS_CLOSE, 15);
  EXPECT_EQ(SONDE_SYS_SSL_READ, 17);
  EXPECT_EQ(SONDE_SYS_SSL_WRITE, 18);
  EXPECT_EQ(SONDE_SYS_TLS_START, 19);
  EXPECT_EQ(SONDE_DATA_TLS, 1 << 4);
}

std::vector<uint8_t> DataEvent(uint32_t payload_len, uint32_t declared_size) {
  std::vector<uint8_t> buf(sizeof(sonde_data_event) + payload_len);
  auto* ev = reinterpret_cast<sonde_data_event*>(buf.data());
  ev->hdr.type = SONDE_EVENT_DATA;
  ev->hdr.size = declared_size;
  ev->payload_len = payload_len;
  return buf;
}

TEST(TypedViews, AcceptWellFormedDataEvent) {
  auto buf = DataEvent(10, sizeof(sonde_data_event) + 10);
  EXPECT_NE(AsDataEvent(buf), nullptr);
  EXPECT_EQ(AsConnEvent(buf), nullptr);
}

TEST(TypedViews, RejectPayloadLongerThanRecord) {
  auto buf = DataEvent(10, sizeof(sonde_data_event) + 10);
  reinterpret_cast<sonde_data_event*>(buf.data())->payload_len = 11;
  EXPECT_EQ(AsDataEvent(buf), nullptr);
}

TEST(TypedViews, RejectShortAndOversizedHeaders) {
  std::vector<uint8_t> tiny(8);
  EXPECT_EQ(AsHeader(tiny), nullptr);
  auto buf = DataEvent(0, sizeof(sonde_data_event) + 100);  // declares more than it has
  EXPECT_EQ(AsHeader(buf), nullptr);
}

}  // namespace
}  // namespace sonde::capture
