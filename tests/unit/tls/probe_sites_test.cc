// FindProbeSites on hand-assembled x86-64 functions and on this machine's
// libssl: where the TLS probes can sit without a single step, and when they
// cannot.
#include "agent/tls/probe_sites.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "agent/tls/openssl_symbols.h"

namespace sonde::tls {
namespace {

std::optional<ProbeSites> Sites(const std::vector<uint8_t>& code) { return FindProbeSites(code, 0x1000); }

// Debian 12's SSL_read (OpenSSL 3.0): sub rsp; canary; xor eax; test edx;
// js error; ... call ssl_read_internal; ...; canary check jne; add rsp; xor
// the argument registers; ret; error path jumping back; __stack_chk_fail.
const std::vector<uint8_t> kSslRead = {
    0x48, 0x83, 0xec, 0x18,                                // 00 sub $0x18,%rsp
    0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00,  // 04 mov %fs:0x28,%rax
    0x48, 0x89, 0x44, 0x24, 0x08,                          // 0d mov %rax,0x8(%rsp)
    0x31, 0xc0,                                            // 12 xor %eax,%eax
    0x85, 0xd2,                                            // 14 test %edx,%edx
    0x78, 0x2f,                                            // 16 js 0x47
    0x48, 0x89, 0xe1,                                      // 18 mov %rsp,%rcx
    0x48, 0x63, 0xd2,                                      // 1b movslq %edx,%rdx
    0xe8, 0x00, 0x00, 0x00, 0x00,                          // 1e call (next)
    0x85, 0xc0,                                            // 23 test %eax,%eax
    0x7e, 0x03,                                            // 25 jle 0x2a
    0x8b, 0x04, 0x24,                                      // 27 mov (%rsp),%eax
    0x48, 0x8b, 0x54, 0x24, 0x08,                          // 2a mov 0x8(%rsp),%rdx
    0x64, 0x48, 0x2b, 0x14, 0x25, 0x28, 0x00, 0x00, 0x00,  // 2f sub %fs:0x28,%rdx
    0x75, 0x44,                                            // 38 jne 0x7e
    0x48, 0x83, 0xc4, 0x18,                                // 3a add $0x18,%rsp
    0x31, 0xd2,                                            // 3e xor %edx,%edx
    0x31, 0xc9,                                            // 40 xor %ecx,%ecx
    0x31, 0xf6,                                            // 42 xor %esi,%esi
    0x31, 0xff,                                            // 44 xor %edi,%edi
    0xc3,                                                  // 46 ret
    0xe8, 0x00, 0x00, 0x00, 0x00,                          // 47 call (error path)
    0xb8, 0xff, 0xff, 0xff, 0xff,                          // 4c mov $-1,%eax
    0xeb, 0xd7,                                            // 51 jmp 0x2a
    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,
    0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90, 0x90,  // 53..7d padding
    0xe8, 0x00, 0x00, 0x00, 0x00,                          // 7e call __stack_chk_fail
};

TEST(ProbeSites, OpenSsl3SslReadShape) {
  const auto s = Sites(kSslRead);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->entry, 0x16u);  // js: rdi/rsi/rcx still the caller's
  EXPECT_EQ(s->exit, 0x38u);   // jne: %eax is the result on every return
}

TEST(ProbeSites, TailCallHasNoExitSite) {
  // test %edx,%edx; js +2; jmp <elsewhere>; ret
  EXPECT_FALSE(Sites({0x85, 0xd2, 0x78, 0x05, 0xe9, 0x00, 0x10, 0x00, 0x00, 0xc3}).has_value());
}

TEST(ProbeSites, ResultWrittenAfterTheLastJump) {
  // test; je +2; xor %eax,%eax (writes the result after the jump); ret
  EXPECT_FALSE(Sites({0x85, 0xd2, 0x74, 0x00, 0x74, 0x02, 0x31, 0xc0, 0xc3}).has_value());
}

TEST(ProbeSites, ArgumentRegisterWrittenBeforeTheFirstJump) {
  // mov %rsp,%rdi; test; je; ...; jne; ret
  EXPECT_FALSE(Sites({0x48, 0x89, 0xe7, 0x85, 0xd2, 0x74, 0x02, 0x90, 0x90, 0x75, 0x00, 0xc3}).has_value());
}

TEST(ProbeSites, TwoReturnsOrIndirectJumpsOrGarbage) {
  EXPECT_FALSE(Sites({0x85, 0xd2, 0x74, 0x01, 0xc3, 0x75, 0x00, 0xc3}).has_value());  // two rets
  EXPECT_FALSE(Sites({0x85, 0xd2, 0x74, 0x02, 0xff, 0xe0, 0x75, 0x00, 0xc3}).has_value());  // jmp *%rax
  EXPECT_FALSE(Sites({0x0f, 0x0b, 0x06, 0x07}).has_value());  // ud2 + invalid in 64-bit mode
  EXPECT_FALSE(Sites({}).has_value());
}

TEST(ProbeSites, ExitJumpThatLoopsBackIsRefused) {
  // 00 test; 02 je 06; 04 jmp 00?? -> entry target 0 refused anyway; use a loop:
  // 00 sub $8,%rsp; 04 test; 06 je 0a; 08 nop; 09 nop; 0a cmp; 0c jne 04 (loops); 0e ret
  const std::vector<uint8_t> code = {0x48, 0x83, 0xec, 0x08, 0x85, 0xd2, 0x74, 0x02, 0x90, 0x90,
                                     0x39, 0xd0, 0x75, 0xf6, 0xc3};
  EXPECT_FALSE(Sites(code).has_value());
}

TEST(ProbeSites, ThisMachinesLibssl) {
  const std::string lib = "/usr/lib/x86_64-linux-gnu/libssl.so.3";
  if (!std::filesystem::exists(lib)) GTEST_SKIP() << "no x86-64 libssl.so.3";
  auto f = FindOpenSslFunctions(lib);
  ASSERT_TRUE(f.ok());
  std::ifstream in(lib, std::ios::binary);
  int found = 0;
  for (auto [offset, size] : {std::pair{f->ssl_read, f->ssl_read_size}, std::pair{f->ssl_write, f->ssl_write_size},
                              std::pair{f->ssl_read_ex, f->ssl_read_ex_size},
                              std::pair{f->ssl_write_ex, f->ssl_write_ex_size}}) {
    ASSERT_TRUE(offset.has_value());
    ASSERT_GT(size, 0u);
    std::vector<uint8_t> code(size);
    in.seekg(static_cast<std::streamoff>(*offset));
    ASSERT_TRUE(in.read(reinterpret_cast<char*>(code.data()), static_cast<std::streamsize>(size)));
    if (const auto s = FindProbeSites(code, *offset)) {
      EXPECT_LT(s->entry, s->exit);
      EXPECT_LT(s->exit, size);
      ++found;
    }
  }
  std::printf("libssl functions with emulated probe sites: %d of 4\n", found);
}

}  // namespace
}  // namespace sonde::tls
