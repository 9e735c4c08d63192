#include "agent/profile/proto_convert.h"

#include <gtest/gtest.h>

namespace sonde::profile {
namespace {

TEST(ProtoConvert, OnAndOffCpuWindows) {
  ProfileWindow on;
  on.kind = ProfileKind::kOnCpu;
  on.frequency_hz = 99;
  on.processes = {{7, "nginx", 5, {{8, "nginx-worker", 100, 200, "main;ngx_x", 5}}}};
  ProfileWindow off;
  off.kind = ProfileKind::kOffCpu;
  off.processes = {{7, "nginx", 1500, {{8, "nginx-worker", 100, 200, "main;epoll_wait", 1500, 3}},
                    std::string(64, 'c')}};
  auto batch = ToProfileBatch({on, off});
  EXPECT_EQ(batch.sample_frequency_hz(), 99u);
  ASSERT_EQ(batch.stacks_size(), 2);
  const auto& a = batch.stacks(0);
  EXPECT_EQ(a.kind(), sonde::v1::CPU_KIND_ON_CPU);
  EXPECT_EQ(a.stack(), "main;ngx_x");
  EXPECT_EQ(a.value(), 5u);
  EXPECT_EQ(a.count(), 5u);
  EXPECT_EQ(a.pid(), 7u);
  EXPECT_EQ(a.tid(), 8u);
  EXPECT_EQ(a.comm(), "nginx");
  EXPECT_EQ(a.thread_name(), "nginx-worker");
  EXPECT_EQ(a.window_start_unix_ns(), 100u);
  EXPECT_EQ(a.window_end_unix_ns(), 200u);
  const auto& b = batch.stacks(1);
  EXPECT_EQ(b.kind(), sonde::v1::CPU_KIND_OFF_CPU);
  EXPECT_EQ(b.value(), 1500000u) << "microseconds -> nanoseconds";
  EXPECT_EQ(b.count(), 3u) << "blocks";
  EXPECT_EQ(b.container_id(), std::string(64, 'c'));
  EXPECT_EQ(a.container_id(), "");
}

}  // namespace
}  // namespace sonde::profile
