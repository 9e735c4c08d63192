#include "agent/profile/elf_symbols.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/status/status.h"

namespace sonde::profile {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct ElfCloser {
  void operator()(Elf* e) const { elf_end(e); }
};
using ElfPtr = std::unique_ptr<Elf, ElfCloser>;

absl::StatusOr<ElfPtr> OpenElf(const Fd& fd, const std::string& path) {
  static std::once_flag once;
  std::call_once(once, [] { elf_version(EV_CURRENT); });
  if (fd.get() < 0) {
    int err = errno;
    return err == ENOENT ? absl::NotFoundError(path + ": " + std::strerror(err))
                         : absl::UnavailableError(path + ": " + std::strerror(err));
  }
  ElfPtr elf(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) {
    return absl::InvalidArgumentError(path + ": not an ELF file");
  }
  return elf;
}

std::string HexBytes(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kHex[p[i] >> 4]);
    s.push_back(kHex[p[i] & 15]);
  }
  return s;
}

// GNU build id from any SHT_NOTE section.
std::string FindBuildId(Elf* elf) {
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_NOTE) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data) continue;
    size_t off = 0, name_off = 0, desc_off = 0;
    GElf_Nhdr nhdr;
    while ((off = gelf_getnote(data, off, &nhdr, &name_off, &desc_off)) > 0) {
      const char* base = static_cast<const char*>(data->d_buf);
      if (nhdr.n_type == NT_GNU_BUILD_ID && nhdr.n_namesz == 4 &&
          std::memcmp(base + name_off, "GNU", 4) == 0) {
        return HexBytes(reinterpret_cast<const unsigned char*>(base + desc_off), nhdr.n_descsz);
      }
    }
  }
  return {};
}

}  // namespace

std::string Demangle(std::string_view name) {
  if (name.size() < 2 || name[0] != '_' || name[1] != 'Z') return std::string(name);
  std::string mangled(name);
  int status = 0;
  char* out = abi::__cxa_demangle(mangled.c_str(), nullptr, nullptr, &status);
  if (status != 0 || out == nullptr) {
    std::free(out);
    return mangled;
  }
  std::string result(out);
  std::free(out);
  return result;
}

absl::StatusOr<std::string> ElfSymbols::ReadBuildId(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto elf = OpenElf(fd, path);
  if (!elf.ok()) return elf.status();
  return FindBuildId(elf->get());
}

absl::StatusOr<std::shared_ptr<const ElfSymbols>> ElfSymbols::Load(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  auto elf_or = OpenElf(fd, path);
  if (!elf_or.ok()) return elf_or.status();
  Elf* elf = elf_or->get();

  auto table = std::make_shared<ElfSymbols>();
  GElf_Ehdr ehdr;
  if (!gelf_getehdr(elf, &ehdr)) return absl::InvalidArgumentError(path + ": no ELF header");
  table->position_independent_ = ehdr.e_type == ET_DYN;
  table->build_id_ = FindBuildId(elf);

  size_t phnum = 0;
  if (elf_getphdrnum(elf, &phnum) == 0) {
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (gelf_getphdr(elf, static_cast<int>(i), &phdr) && phdr.p_type == PT_LOAD) {
        table->segments_.push_back({phdr.p_vaddr, phdr.p_offset, phdr.p_filesz});
      }
    }
  }

  // .symtab when present, .dynsym always (a stripped binary keeps its exports).
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf, scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM))
      continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || shdr.sh_entsize == 0) continue;
    size_t count = shdr.sh_size / shdr.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      int type = GELF_ST_TYPE(sym.st_info);
      if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym.st_shndx == SHN_UNDEF ||
          sym.st_value == 0)
        continue;
      const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
      if (!name || !*name) continue;
      std::string pretty = Demangle(name);
      table->symbols_.push_back({sym.st_value, sym.st_size,
                                 static_cast<uint32_t>(table->names_.size()),
                                 static_cast<uint32_t>(pretty.size())});
      table->names_ += pretty;
    }
  }
  auto& syms = table->symbols_;
  // Sort by address; at one address keep the sized symbol (aliases collapse).
  std::sort(syms.begin(), syms.end(), [](const Symbol& a, const Symbol& b) {
    return a.addr != b.addr ? a.addr < b.addr : a.size > b.size;
  });
  syms.erase(std::unique(syms.begin(), syms.end(),
                         [](const Symbol& a, const Symbol& b) { return a.addr == b.addr; }),
             syms.end());
  syms.shrink_to_fit();
  table->names_.shrink_to_fit();
  return std::shared_ptr<const ElfSymbols>(std::move(table));
}

std::optional<uint64_t> ElfSymbols::FileOffsetToVaddr(uint64_t file_offset) const {
  for (const Segment& s : segments_) {
    if (file_offset >= s.offset && file_offset < s.offset + s.filesz) {
      return file_offset - s.offset + s.vaddr;
    }
  }
  // No program headers (unusual): offsets are addresses for ET_DYN.
  if (segments_.empty()) return file_offset;
  return std::nullopt;
}

std::optional<SymbolHit> ElfSymbols::Lookup(uint64_t vaddr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), vaddr,
                             [](uint64_t a, const Symbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return std::nullopt;
  --it;
  // A sized symbol must contain the address; a zero-sized one (assembly) is
  // accepted up to the next symbol.
  if (it->size != 0 && vaddr >= it->addr + it->size) return std::nullopt;
  return SymbolHit{std::string_view(names_).substr(it->name_offset, it->name_length),
                   vaddr - it->addr};
}

size_t ElfSymbols::MemoryBytes() const {
  return sizeof(*this) + symbols_.capacity() * sizeof(Symbol) + names_.capacity() +
         segments_.capacity() * sizeof(Segment) + build_id_.capacity();
}

}  // namespace sonde::profile
