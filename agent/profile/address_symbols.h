#pragma once
// Text symbol sources that are plain "address -> name" lists: the kernel's
// /proc/kallsyms and JIT maps (/tmp/perf-PID.map, written by V8/Node with
// --perf-basic-prof, the JVM's perf-map-agent, LuaJIT, ...).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/profile/elf_symbols.h"

namespace sonde::profile {

class AddressSymbols {
 public:
  // /proc/kallsyms text ("ffffffff81000000 T _stext [module]"): text symbols
  // only. Fails when every address is zero (kptr_restrict hides them).
  static absl::StatusOr<AddressSymbols> ParseKallsyms(std::string_view text);
  // perf map text ("START SIZE name", hex, optional 0x).
  static absl::StatusOr<AddressSymbols> ParsePerfMap(std::string_view text);

  // Innermost symbol containing addr. Kallsyms entries have no size: a
  // symbol reaches up to the next one (and at most max_gap bytes).
  std::optional<SymbolHit> Lookup(uint64_t addr) const;
  size_t size() const { return symbols_.size(); }
  size_t MemoryBytes() const { return symbols_.capacity() * sizeof(Symbol) + names_.capacity(); }

 private:
  struct Symbol {
    uint64_t addr;
    uint64_t size;  // 0 = unknown (up to the next symbol)
    uint32_t name_offset;
    uint32_t name_length;
  };
  void Add(uint64_t addr, uint64_t size, std::string_view name);
  void Finish();

  std::vector<Symbol> symbols_;
  std::string names_;
};

}  // namespace sonde::profile
