// Symbol lookup on test ELFs built at test-build time (PIE, non-PIE, stripped),
// through a live process's mappings, and after that process exited.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

#include "agent/profile/elf_symbols.h"
#include "agent/profile/proc_maps.h"
#include "agent/profile/symbol_cache.h"
#include "agent/profile/symbolizer.h"

namespace sonde::profile {
namespace {

// Runs a test ELF, reads the three addresses it prints; closing stdin ends it.
class Target {
 public:
  explicit Target(const std::string& path) {
    int in[2], out[2];
    EXPECT_EQ(pipe(in), 0);
    EXPECT_EQ(pipe(out), 0);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      close(in[1]);
      close(out[0]);
      execl(path.c_str(), path.c_str(), nullptr);
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    stdin_ = in[1];
    FILE* f = fdopen(out[0], "r");
    void *a = nullptr, *b = nullptr, *l = nullptr;
    ok_ = fscanf(f, "%p %p %p", &a, &b, &l) == 3;
    fclose(f);
    alpha = reinterpret_cast<uint64_t>(a);
    beta = reinterpret_cast<uint64_t>(b);
    local = reinterpret_cast<uint64_t>(l);
  }
  ~Target() { Stop(); }
  void Stop() {
    if (stdin_ >= 0) close(stdin_);
    stdin_ = -1;
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool ok() const { return ok_; }
  pid_t pid() const { return pid_; }
  uint64_t alpha = 0, beta = 0, local = 0;

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  bool ok_ = false;
};

// Address -> (mapping, ELF vaddr) the way the symbolizer does it.
uint64_t ToVaddr(pid_t pid, uint64_t addr, const ElfSymbols& elf) {
  auto maps = ReadProcMaps(static_cast<uint32_t>(pid));
  EXPECT_TRUE(maps.ok());
  const MemoryMapping* m = FindMapping(*maps, addr);
  EXPECT_NE(m, nullptr);
  if (!m) return 0;
  auto v = elf.FileOffsetToVaddr(addr - m->start + m->file_offset);
  EXPECT_TRUE(v.has_value());
  return v.value_or(0);
}

void ExpectResolves(const char* path, bool pie) {
  Target t(path);
  ASSERT_TRUE(t.ok()) << path;
  auto elf = ElfSymbols::Load(path);
  ASSERT_TRUE(elf.ok()) << elf.status();
  EXPECT_EQ((*elf)->position_independent(), pie);
  EXPECT_EQ((*elf)->build_id().size(), 40u);  // 20-byte SHA1 build id (Debian's default)
  EXPECT_GT((*elf)->symbol_count(), 3u);

  for (auto [addr, name] : {std::pair{t.alpha, "sonde_target_alpha"},
                            std::pair{t.beta, "sonde_target_beta"},
                            std::pair{t.local, "sonde_target_local"}}) {
    uint64_t vaddr = ToVaddr(t.pid(), addr, **elf);
    if (!pie) {
      EXPECT_EQ(vaddr, addr) << "non-PIE: run-time address is the link address";
    }
    auto hit = (*elf)->Lookup(vaddr + 2);
    ASSERT_TRUE(hit) << name;
    EXPECT_EQ(hit->name, name);
    EXPECT_EQ(hit->offset, 2u);
  }

  Symbolizer sym({});
  sym.NoteProcess(static_cast<uint32_t>(t.pid()));
  EXPECT_EQ(sym.SymbolizeUser(t.pid(), t.beta + 1), "sonde_target_beta");
  // libc through the same path: main's caller chain lives there.
  auto maps = ReadProcMaps(static_cast<uint32_t>(t.pid()));
  ASSERT_TRUE(maps.ok());
  EXPECT_EQ(sym.SymbolizeUser(t.pid(), 0x10), "[unknown]");
}

TEST(ElfSymbols, PieExecutable) { ExpectResolves(ELF_PIE, true); }
TEST(ElfSymbols, NonPieExecutable) { ExpectResolves(ELF_NOPIE, false); }

TEST(ElfSymbols, StrippedShowsModulePlusOffset) {
  auto full = ElfSymbols::Load(ELF_PIE);
  auto stripped = ElfSymbols::Load(ELF_STRIPPED);
  ASSERT_TRUE(full.ok() && stripped.ok());
  EXPECT_EQ((*full)->build_id(), (*stripped)->build_id()) << "strip keeps the build id";

  Target t(ELF_STRIPPED);
  ASSERT_TRUE(t.ok());
  uint64_t vaddr = ToVaddr(t.pid(), t.alpha, **stripped);
  EXPECT_FALSE((*stripped)->Lookup(vaddr)) << "no symbol for a static function in a stripped ELF";
  auto named = (*full)->Lookup(vaddr);
  ASSERT_TRUE(named);
  EXPECT_EQ(named->name, "sonde_target_alpha") << "same layout as the unstripped build";

  // A cache that has only seen the stripped file must not borrow names from
  // the unstripped one: they share a build id, so use a fresh symbolizer.
  Symbolizer sym({});
  char expected[64];
  std::snprintf(expected, sizeof(expected), "sonde_profile_elf_stripped+0x%" PRIx64, vaddr);
  EXPECT_EQ(sym.SymbolizeUser(t.pid(), t.alpha), expected);
}

TEST(Symbolizer, ProcessThatExitedStillResolves) {
  Symbolizer sym({});
  Target t(ELF_PIE);
  ASSERT_TRUE(t.ok());
  const uint32_t pid = static_cast<uint32_t>(t.pid());
  sym.NoteProcess(pid);  // what the kernel's new-process notice triggers
  const uint64_t alpha = t.alpha;
  t.Stop();
  ASSERT_FALSE(ReadProcMaps(pid).ok()) << "process should be gone";
  sym.BeginBatch();
  EXPECT_EQ(sym.SymbolizeUser(pid, alpha), "sonde_target_alpha");
  EXPECT_EQ(sym.ProcessName(pid), "sonde_profile_e");  // comm is 15 chars
}

TEST(SymbolCache, KeyedByBuildIdAndBounded) {
  SymbolCache cache(1);  // everything but the newest entry is evicted
  auto a = cache.Get(ELF_PIE);
  ASSERT_TRUE(a.ok());
  auto again = cache.Get(ELF_PIE);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(a->get(), again->get());
  EXPECT_EQ(cache.stats().hits, 1u);
  auto b = cache.Get(ELF_NOPIE);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(cache.stats().binaries, 1u);
  EXPECT_EQ(cache.stats().evictions, 1u);
  EXPECT_FALSE(cache.Get("/nonexistent/binary").ok());
}

TEST(Demangle, CxxNames) {
  EXPECT_EQ(Demangle("_ZN3foo3barEv"), "foo::bar()");
  EXPECT_EQ(Demangle("ngx_http_process_request"), "ngx_http_process_request");
  EXPECT_EQ(Demangle("_Znot_valid"), "_Znot_valid");
}

}  // namespace
}  // namespace sonde::profile
