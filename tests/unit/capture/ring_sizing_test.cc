// How --ringbuf-mb is split into one ring buffer per CPU.
#include <gtest/gtest.h>

#include "agent/capture/socket_capture.h"

namespace sonde::capture {
namespace {

constexpr uint32_t kMiB = 1u << 20;

TEST(PerCpuRingBytes, ShareOfTheTotalRoundedUpToAPowerOfTwo) {
  EXPECT_EQ(PerCpuRingBytes(16 * kMiB, 2), 8u * kMiB);
  EXPECT_EQ(PerCpuRingBytes(64 * kMiB, 3), 32u * kMiB);  // 21.3 MiB -> 32
  EXPECT_EQ(PerCpuRingBytes(256 * kMiB, 8), 32u * kMiB);
}

TEST(PerCpuRingBytes, AtLeastTheFloorOnManyCpus) {
  EXPECT_EQ(PerCpuRingBytes(16 * kMiB, 16), kMinPerCpuRingBytes);
  EXPECT_EQ(PerCpuRingBytes(16 * kMiB, 256), kMinPerCpuRingBytes);
}

TEST(PerCpuRingBytes, ASmallTotalIsEachRingsSize) {
  // Tests and small hosts ask for little: each CPU then gets the whole of it.
  EXPECT_EQ(PerCpuRingBytes(1 * kMiB, 4), 1u * kMiB);
  EXPECT_EQ(PerCpuRingBytes(4096, 2), 4096u);
  EXPECT_EQ(PerCpuRingBytes(8 * kMiB, 1), 8u * kMiB);
}

}  // namespace
}  // namespace sonde::capture
