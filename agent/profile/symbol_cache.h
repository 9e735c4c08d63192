#pragma once
// Per-binary symbol tables, keyed by GNU build id (so the same libc in 200
// processes or containers is loaded once), bounded in memory with LRU
// eviction. Files without a build id are keyed by device, inode, size and
// mtime. Thread-safe.
#include <sys/types.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "agent/profile/elf_symbols.h"

namespace sonde::profile {

struct SymbolCacheStats {
  uint64_t hits = 0;
  uint64_t loads = 0;
  uint64_t evictions = 0;
  uint64_t failures = 0;
  size_t bytes = 0;
  size_t binaries = 0;
};

class SymbolCache {
 public:
  explicit SymbolCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Symbols of the file at open_path (which may be /proc/PID/root/... or
  // /proc/PID/map_files/...). The build id is read first (cheap) so a file
  // whose content is cached under another path is not parsed again.
  absl::StatusOr<std::shared_ptr<const ElfSymbols>> Get(const std::string& open_path);

  SymbolCacheStats stats() const;

 private:
  struct Entry {
    std::shared_ptr<const ElfSymbols> symbols;
    size_t bytes;
    std::list<std::string>::iterator lru_it;
  };
  // File identity -> cache key, so a hot path does not even read the build id.
  struct FileKey {
    dev_t dev;
    ino_t ino;
    off_t size;
    int64_t mtime_ns;
    bool operator==(const FileKey&) const = default;
  };
  struct FileKeyHash {
    size_t operator()(const FileKey& k) const {
      return std::hash<uint64_t>()(k.dev * 1000003ULL ^ k.ino ^ (uint64_t(k.size) << 20) ^
                                   uint64_t(k.mtime_ns));
    }
  };

  void TouchLocked(Entry& e, const std::string& key);
  void EvictLocked();

  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;  // by build id (or file identity)
  std::list<std::string> lru_;                      // front = most recent
  std::unordered_map<FileKey, std::string, FileKeyHash> file_keys_;
  SymbolCacheStats stats_;
};

}  // namespace sonde::profile
