#include "agent/tls/openssl_symbols.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace sonde::tls {
namespace {

struct ElfCloser {
  void operator()(Elf* e) const { elf_end(e); }
};

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct LoadSegment {
  uint64_t vaddr, offset, filesz;
};

// A symbol's virtual address -> its offset in the file (PT_LOAD segments).
std::optional<uint64_t> VaddrToFileOffset(const std::vector<LoadSegment>& segments, uint64_t vaddr) {
  for (const LoadSegment& s : segments) {
    if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) return vaddr - s.vaddr + s.offset;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<OpenSslFunctions> FindOpenSslFunctions(const std::string& path) {
  if (elf_version(EV_CURRENT) == EV_NONE) return absl::InternalError("libelf initialisation failed");
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return absl::ErrnoToStatus(errno, absl::StrCat("opening ", path));
  std::unique_ptr<Elf, ElfCloser> elf(elf_begin(fd.get(), ELF_C_READ_MMAP, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not an ELF file"));
  }
  std::vector<LoadSegment> segments;
  size_t phnum = 0;
  if (elf_getphdrnum(elf.get(), &phnum) == 0) {
    for (size_t i = 0; i < phnum; ++i) {
      GElf_Phdr phdr;
      if (gelf_getphdr(elf.get(), static_cast<int>(i), &phdr) && phdr.p_type == PT_LOAD) {
        segments.push_back({phdr.p_vaddr, phdr.p_offset, phdr.p_filesz});
      }
    }
  }
  OpenSslFunctions out;
  bool any_table = false;
  Elf_Scn* scn = nullptr;
  while ((scn = elf_nextscn(elf.get(), scn)) != nullptr) {
    GElf_Shdr shdr;
    if (!gelf_getshdr(scn, &shdr) || (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM)) continue;
    Elf_Data* data = elf_getdata(scn, nullptr);
    if (!data || shdr.sh_entsize == 0) continue;
    any_table = true;
    const size_t count = shdr.sh_size / shdr.sh_entsize;
    for (size_t i = 0; i < count; ++i) {
      GElf_Sym sym;
      if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
      if (GELF_ST_TYPE(sym.st_info) != STT_FUNC || sym.st_shndx == SHN_UNDEF || sym.st_value == 0) continue;
      const char* raw = elf_strptr(elf.get(), shdr.sh_link, sym.st_name);
      if (raw == nullptr || raw[0] != 'S' || raw[1] != 'S' || raw[2] != 'L') continue;  // cheap filter
      const std::string_view name(raw);
      std::optional<uint64_t>* slot = name == "SSL_read"       ? &out.ssl_read
                                      : name == "SSL_read_ex"  ? &out.ssl_read_ex
                                      : name == "SSL_write"    ? &out.ssl_write
                                      : name == "SSL_write_ex" ? &out.ssl_write_ex
                                                               : nullptr;
      if (slot == nullptr || slot->has_value()) continue;
      uint64_t* size = name == "SSL_read"      ? &out.ssl_read_size
                       : name == "SSL_read_ex" ? &out.ssl_read_ex_size
                       : name == "SSL_write"   ? &out.ssl_write_size
                                               : &out.ssl_write_ex_size;
      *size = sym.st_size;
      // No program headers: offsets are addresses (relocatable objects never get here).
      *slot = segments.empty() ? std::optional<uint64_t>(sym.st_value) : VaddrToFileOffset(segments, sym.st_value);
    }
  }
  if (!any_table) return absl::NotFoundError(absl::StrCat(path, ": no symbol table"));
  return out;
}

}  // namespace sonde::tls
