// ParseExecutableFileMappings on hand-made /proc/PID/maps text.
#include <gtest/gtest.h>

#include "agent/tls/tls_attacher.h"

namespace sonde::tls {
namespace {

TEST(FileMappings, ExecutableFileBackedOnlyEachFileOnce) {
  const char* maps =
      "55d0c0000000-55d0c0010000 r--p 00000000 fd:01 1234 /usr/sbin/nginx\n"
      "55d0c0010000-55d0c0100000 r-xp 00010000 fd:01 1234 /usr/sbin/nginx\n"
      "7f0000000000-7f0000100000 r-xp 00020000 fd:01 555 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
      "7f0000100000-7f0000110000 r--p 00120000 fd:01 555 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
      "7f0000200000-7f0000300000 r-xp 00001000 fd:01 555 /usr/lib/x86_64-linux-gnu/libssl.so.3\n"
      "7f0000400000-7f0000500000 rw-p 00000000 00:00 0 \n"
      "7f0000500000-7f0000501000 r-xp 00000000 00:00 0 [vdso]\n"
      "7f0000600000-7f0000700000 r-xp 00000000 00:05 99 /memfd:jit (deleted)\n"
      "7f0000700000-7f0000800000 r-xp 00000000 fd:01 777 /opt/old/libssl.so.1.1 (deleted)\n"
      "7f0000800000-7f0000900000 r-xp 00000000 fd:02 555 /other/fs/same-inode.so\n"
      "7f0000900000-7f0000a00000 r-xp 00000000 fd:01 888 /opt/my app/lib with spaces.so\n";
  const auto m = ParseExecutableFileMappings(maps);
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].path, "/usr/sbin/nginx");
  EXPECT_EQ(m[0].device, "fd:01");
  EXPECT_EQ(m[0].inode, 1234u);
  EXPECT_EQ(m[1].path, "/usr/lib/x86_64-linux-gnu/libssl.so.3");
  EXPECT_EQ(m[2].path, "/other/fs/same-inode.so");  // same inode, other device: another file
  EXPECT_EQ(m[3].path, "/opt/my app/lib with spaces.so");
}

TEST(FileMappings, GarbageAndTruncatedLinesAreSkipped) {
  const char* maps =
      "\n"
      "garbage\n"
      "7f0000000000-7f0000100000 r-xp\n"
      "7f0000000000-7f0000100000 r-xp 00000000 fd:01 notanumber /x\n"
      "7f0000000000-7f0000100000 r-xp 00000000 fd:01 0 /inode-zero\n"
      "7f0000000000-7f0000100000 r-xp 00000000 fd:01 42 relative/path\n"
      "7f0000000000-7f0000100000 r-xp 00000000 fd:01 43 /ok/lib.so";  // no trailing newline
  const auto m = ParseExecutableFileMappings(maps);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].path, "/ok/lib.so");
  EXPECT_EQ(m[0].inode, 43u);
  EXPECT_TRUE(ParseExecutableFileMappings("").empty());
}

}  // namespace
}  // namespace sonde::tls
