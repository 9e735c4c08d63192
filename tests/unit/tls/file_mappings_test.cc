// ParseExecutableFileMappings on hand-made /proc/PID/maps text, and the
// attacher's scan over a fake /proc.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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

namespace sonde::tls {
namespace {

// The attacher's scan over a fake /proc: each file is looked up once, new
// processes are read on the next scan, every process again on a full one.
// Files without OpenSSL are never probed (no programs needed to test that).
class FakeProc {
 public:
  FakeProc() : root_(std::filesystem::temp_directory_path() / ("sonde-fake-proc-" + std::to_string(getpid()))) {
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  ~FakeProc() { std::filesystem::remove_all(root_); }
  // A process whose executable mappings are `files` (real paths on this machine).
  void AddProcess(uint32_t pid, const std::vector<std::string>& files) {
    const auto dir = root_ / std::to_string(pid);
    std::filesystem::create_directories(dir);
    std::filesystem::create_symlink("/", dir / "root");
    std::ofstream maps(dir / "maps");
    uint64_t addr = 0x7f0000000000;
    for (const auto& f : files) {
      struct stat st {};
      ::stat(f.c_str(), &st);
      maps << std::hex << addr << "-" << addr + 0x1000 << std::dec << " r-xp 00000000 fd:01 " << st.st_ino << " "
           << f << "\n";
      addr += 0x10000;
    }
  }
  std::string path() const { return root_.string(); }

 private:
  std::filesystem::path root_;
};

TEST(TlsAttacherScan, EachFileOnceNewProcessesOnTheNextScan) {
  std::vector<std::string> plain;
  for (const char* f : {"/bin/sh", "/usr/bin/env", "/bin/ls"}) {
    if (std::filesystem::exists(f)) plain.push_back(std::filesystem::canonical(f).string());
  }
  if (plain.size() < 2) GTEST_SKIP() << "no plain binaries to map";
  FakeProc proc;
  proc.AddProcess(100, {plain[0], plain[1]});
  proc.AddProcess(101, {plain[0]});
  TlsAttachOptions options;
  options.proc_root = proc.path();
  options.scan_interval = std::chrono::hours(1);  // scans below are explicit
  auto attacher = TlsAttacher::Start(TlsPrograms{}, options);
  auto c = attacher->counters();
  EXPECT_EQ(c.scans, 1u);
  EXPECT_EQ(c.processes_scanned, 2u);
  EXPECT_EQ(c.files_examined, 2u);  // plain[0] mapped twice, looked up once
  EXPECT_EQ(c.files_probed, 0u);
  EXPECT_EQ(c.attach_failures, 0u);

  attacher->Scan(/*all_processes=*/false);  // nothing new
  EXPECT_EQ(attacher->counters().processes_scanned, 2u);
  proc.AddProcess(102, plain);
  attacher->Scan(/*all_processes=*/false);  // only the new process
  c = attacher->counters();
  EXPECT_EQ(c.processes_scanned, 3u);
  EXPECT_EQ(c.files_examined, plain.size());
  attacher->Scan(/*all_processes=*/true);  // everyone again, no file twice
  c = attacher->counters();
  EXPECT_EQ(c.processes_scanned, 6u);
  EXPECT_EQ(c.files_examined, plain.size());
  EXPECT_TRUE(attacher->probed_files().empty());
}

TEST(TlsAttacherScan, OnlyListedProcessesWhenPidsAreGiven) {
  if (!std::filesystem::exists("/bin/sh")) GTEST_SKIP();
  FakeProc proc;
  proc.AddProcess(200, {std::filesystem::canonical("/bin/sh").string()});
  proc.AddProcess(201, {std::filesystem::canonical("/bin/sh").string()});
  TlsAttachOptions options;
  options.proc_root = proc.path();
  options.scan_interval = std::chrono::hours(1);
  options.only_pids = {201};
  auto attacher = TlsAttacher::Start(TlsPrograms{}, options);
  EXPECT_EQ(attacher->counters().processes_scanned, 1u);
  EXPECT_EQ(attacher->counters().files_examined, 1u);
}

}  // namespace
}  // namespace sonde::tls
