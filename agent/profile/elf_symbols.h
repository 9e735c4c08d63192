#pragma once
// Symbols of one ELF file (executable or shared object), read with libelf:
// function symbols from .symtab and .dynsym, the PT_LOAD segments that map
// file offsets to ELF virtual addresses (which makes PIE and non-PIE the same
// case), and the GNU build id. Immutable after Load(), shared between threads.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sonde::profile {

struct SymbolHit {
  std::string_view name;
  uint64_t offset = 0;  // address - symbol start
};

class ElfSymbols {
 public:
  // Loads everything (symbols included).
  static absl::StatusOr<std::shared_ptr<const ElfSymbols>> Load(const std::string& path);
  // Reads only the build id (hex); empty string when the file has none.
  static absl::StatusOr<std::string> ReadBuildId(const std::string& path);

  const std::string& build_id() const { return build_id_; }
  // True for ET_DYN (PIE executables and shared objects).
  bool position_independent() const { return position_independent_; }
  // File offset (from /proc/PID/maps) -> ELF virtual address.
  std::optional<uint64_t> FileOffsetToVaddr(uint64_t file_offset) const;
  // Function containing vaddr, if any.
  std::optional<SymbolHit> Lookup(uint64_t vaddr) const;
  size_t symbol_count() const { return symbols_.size(); }
  // Approximate heap bytes held (for the cache bound).
  size_t MemoryBytes() const;

 private:
  struct Symbol {
    uint64_t addr;
    uint64_t size;
    uint32_t name_offset;
    uint32_t name_length;
  };
  struct Segment {
    uint64_t vaddr;
    uint64_t offset;
    uint64_t filesz;
  };
  std::string build_id_;
  bool position_independent_ = false;
  std::vector<Segment> segments_;
  std::vector<Symbol> symbols_;  // sorted by addr
  std::string names_;            // concatenated symbol names
};

// "_ZN3foo3barEv" -> "foo::bar()"; other names unchanged.
std::string Demangle(std::string_view name);

}  // namespace sonde::profile
