#pragma once
// Where the OpenSSL functions the TLS uprobes hook live in one ELF file: a
// shared libssl (.dynsym) or a binary with OpenSSL linked in statically
// (.symtab or exported .dynsym). Offsets are file offsets, what a uprobe
// takes. Imports (undefined symbols, e.g. curl's reference to libssl's
// SSL_read) do not count.
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace sonde::tls {

struct OpenSslFunctions {
  // File offsets of the entry points; nullopt when absent (OpenSSL 1.0 has no _ex).
  std::optional<uint64_t> ssl_read;
  std::optional<uint64_t> ssl_read_ex;
  std::optional<uint64_t> ssl_write;
  std::optional<uint64_t> ssl_write_ex;
  // Their sizes in bytes (the symbols' st_size; 0 when unknown), same order.
  uint64_t ssl_read_size = 0, ssl_read_ex_size = 0, ssl_write_size = 0, ssl_write_ex_size = 0;

  // SSL_read and SSL_write are the minimum that makes a file worth probing.
  bool usable() const { return ssl_read.has_value() && ssl_write.has_value(); }
};

// Reads the ELF symbol tables of `path`. Not an ELF file, or no symbol
// tables: an error. An ELF file without OpenSSL: a result that is not usable().
absl::StatusOr<OpenSslFunctions> FindOpenSslFunctions(const std::string& path);

}  // namespace sonde::tls
