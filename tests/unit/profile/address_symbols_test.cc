#include "agent/profile/address_symbols.h"

#include <gtest/gtest.h>

#include "agent/profile/proc_maps.h"
#include "agent/profile/symbolizer.h"

namespace sonde::profile {
namespace {

TEST(Kallsyms, ParsesTextSymbolsAndModules) {
  const char* text =
      "ffffffff81000000 T _stext\n"
      "ffffffff81000100 t do_one_thing\n"
      "ffffffff81000200 D some_data\n"
      "ffffffff81000300 T schedule\n"
      "ffffffffc0001000 t nf_hook_thing\t[nf_tables]\n"
      "garbage line\n";
  auto k = AddressSymbols::ParseKallsyms(text);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->size(), 4u);  // data symbol dropped
  auto hit = k->Lookup(0xffffffff81000150);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "do_one_thing");
  EXPECT_EQ(hit->offset, 0x50u);
  // Past the data symbol the previous text symbol still covers the address.
  hit = k->Lookup(0xffffffff81000250);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "do_one_thing");
  hit = k->Lookup(0xffffffff81000300);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "schedule");
  EXPECT_EQ(hit->offset, 0u);
  hit = k->Lookup(0xffffffffc0001010);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "nf_hook_thing [nf_tables]");
  EXPECT_FALSE(k->Lookup(0xffffffff80000000));
}

TEST(Kallsyms, HiddenAddressesAreAnError) {
  auto k = AddressSymbols::ParseKallsyms(
      "0000000000000000 T _stext\n0000000000000000 T schedule\n");
  EXPECT_EQ(k.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST(Kallsyms, RealFileWhenReadable) {
  auto text = ReadWholeFile("/proc/kallsyms");
  ASSERT_TRUE(text.ok());
  auto k = AddressSymbols::ParseKallsyms(*text);
  if (!k.ok()) GTEST_SKIP() << "kallsyms hidden for this user: " << k.status();
  EXPECT_GT(k->size(), 10000u);
}

TEST(PerfMap, ParsesJitEntries) {
  auto m = AddressSymbols::ParsePerfMap(
      "7f0000001000 40 LazyCompile:~handler /app/server.js:10\n"
      "0x7f0000002000 0x10 Builtin:ArgumentsAdaptorTrampoline\n"
      "bad\n");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->size(), 2u);
  auto hit = m->Lookup(0x7f0000001020);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "LazyCompile:~handler /app/server.js:10");
  EXPECT_FALSE(m->Lookup(0x7f0000001040));  // sized: end is exclusive
  hit = m->Lookup(0x7f000000200f);
  ASSERT_TRUE(hit);
  EXPECT_EQ(hit->name, "Builtin:ArgumentsAdaptorTrampoline");
}

TEST(ContainerId, FromCgroupText) {
  const std::string id(64, 'a');
  EXPECT_EQ(ContainerIdFromCgroup("0::/system.slice/docker-" + id + ".scope\n"), id);
  EXPECT_EQ(ContainerIdFromCgroup("0::/kubepods/besteffort/pod1234/" + id + "\n"), id);
  EXPECT_EQ(ContainerIdFromCgroup("0::/user.slice/user-0.slice/session-1.scope\n"), "");
  EXPECT_EQ(ContainerIdFromCgroup("0::/x/" + std::string(65, 'b') + "\n"), "");
}

TEST(ProcMaps, ParsesAndFinds) {
  const char* text =
      "55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234 /usr/bin/x\n"
      "55d0c0a01000-55d0c0a05000 r-xp 00001000 fd:01 1234 /usr/bin/x\n"
      "7f0000000000-7f0000001000 r-xp 00000000 00:00 0 \n"
      "7ffd1000-7ffd3000 r-xp 00000000 00:00 0                          [vdso]\n"
      "7f1000000000-7f1000010000 r-xp 00002000 08:02 99 /lib/libgone.so (deleted)\n";
  auto maps = ParseProcMaps(text);
  ASSERT_TRUE(maps.ok()) << maps.status();
  ASSERT_EQ(maps->size(), 4u);  // r--p dropped
  const MemoryMapping* m = FindMapping(*maps, 0x55d0c0a01234);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->path, "/usr/bin/x");
  EXPECT_EQ(m->file_offset, 0x1000u);
  EXPECT_EQ(m->dev_major, 0xfdu);
  EXPECT_EQ(m->inode, 1234u);
  EXPECT_TRUE(m->IsFile());
  EXPECT_EQ(FindMapping(*maps, 0x55d0c0a05000), nullptr);
  m = FindMapping(*maps, 0x7ffd1100);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->path, "[vdso]");
  EXPECT_FALSE(m->IsFile());
  m = FindMapping(*maps, 0x7f1000000010);
  ASSERT_NE(m, nullptr);
  EXPECT_TRUE(m->Deleted());
  EXPECT_EQ(m->FilePath(), "/lib/libgone.so");
  EXPECT_FALSE(ParseProcMaps("zzz-1 r-xp\n").ok());
}

}  // namespace
}  // namespace sonde::profile
