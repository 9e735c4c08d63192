// FindOpenSslFunctions on real files of this machine: the system libssl
// (exports), a program that only imports SSL_read (curl), a binary with
// OpenSSL linked in (node, when installed), and files that are not ELF.
#include "agent/tls/openssl_symbols.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "tests/testlib/process.h"

namespace sonde::tls {
namespace {

namespace fs = std::filesystem;

std::string SystemLibssl() {
  for (const char* p : {"/usr/lib/x86_64-linux-gnu/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3",
                        "/usr/lib/aarch64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.1.1"}) {
    if (fs::exists(p)) return p;
  }
  return "";
}

// The first bytes at a function's file offset are code: the offset lies in
// the file and the four entry points are distinct.
void ExpectOffsetsInFile(const OpenSslFunctions& f, const std::string& path) {
  const auto size = fs::file_size(path);
  for (const auto& o : {f.ssl_read, f.ssl_read_ex, f.ssl_write, f.ssl_write_ex}) {
    if (o) {
      EXPECT_GT(*o, 0u);
      EXPECT_LT(*o, size);
    }
  }
  EXPECT_NE(*f.ssl_read, *f.ssl_write);
}

TEST(OpenSslSymbols, SystemLibsslExportsAllFour) {
  const std::string lib = SystemLibssl();
  if (lib.empty()) GTEST_SKIP() << "no libssl installed";
  auto f = FindOpenSslFunctions(lib);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->usable());
  ExpectOffsetsInFile(*f, lib);
  if (lib.find(".so.3") != std::string::npos) {  // OpenSSL 3 has the _ex calls
    ASSERT_TRUE(f->ssl_read_ex.has_value());
    ASSERT_TRUE(f->ssl_write_ex.has_value());
    EXPECT_NE(*f->ssl_read, *f->ssl_read_ex);
  }
}

TEST(OpenSslSymbols, ImportsDoNotCount) {
  const std::string curl = "/usr/bin/curl";
  if (!fs::exists(curl)) GTEST_SKIP() << "no curl";
  auto f = FindOpenSslFunctions(curl);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_FALSE(f->usable());  // curl references SSL_read, libcurl/libssl define it
  EXPECT_FALSE(f->ssl_read.has_value());
}

TEST(OpenSslSymbols, StaticallyLinkedOpenSslFoundInTheBinary) {
  const std::string node = "/usr/bin/node";
  if (!fs::exists(node)) GTEST_SKIP() << "no node";
  auto f = FindOpenSslFunctions(node);
  ASSERT_TRUE(f.ok()) << f.status();
  if (!f->usable()) GTEST_SKIP() << "this node links the system libssl";
  ExpectOffsetsInFile(*f, node);
}

TEST(OpenSslSymbols, NotElfOrMissingIsAnError) {
  testlib::TempDir dir;
  const std::string text = dir.File("notes.txt");
  std::ofstream(text) << "SSL_read SSL_write, but not an ELF file\n";
  EXPECT_FALSE(FindOpenSslFunctions(text).ok());
  const std::string truncated = dir.File("truncated.so");
  std::ofstream(truncated) << "\x7f" "ELF\x02\x01\x01";
  EXPECT_FALSE(FindOpenSslFunctions(truncated).ok());
  EXPECT_FALSE(FindOpenSslFunctions(dir.File("absent.so")).ok());
  EXPECT_FALSE(FindOpenSslFunctions(dir.path()).ok());  // a directory
}

TEST(OpenSslSymbols, LibraryWithoutOpenSslIsNotUsable) {
  for (const char* libc : {"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6",
                           "/lib/aarch64-linux-gnu/libc.so.6"}) {
    if (!fs::exists(libc)) continue;
    auto f = FindOpenSslFunctions(libc);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_FALSE(f->usable());
    return;
  }
  GTEST_SKIP() << "no libc found";
}

}  // namespace
}  // namespace sonde::tls
