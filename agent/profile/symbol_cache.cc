#include "agent/profile/symbol_cache.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"

namespace sonde::profile {

absl::StatusOr<std::shared_ptr<const ElfSymbols>> SymbolCache::Get(const std::string& open_path) {
  struct stat st;
  if (::stat(open_path.c_str(), &st) != 0) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.failures;
    return absl::NotFoundError(open_path + ": " + std::strerror(errno));
  }
  FileKey fk{st.st_dev, st.st_ino, st.st_size,
             int64_t(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec};
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto fit = file_keys_.find(fk);
    if (fit != file_keys_.end()) {
      auto eit = entries_.find(fit->second);
      if (eit != entries_.end()) {
        ++stats_.hits;
        TouchLocked(eit->second, eit->first);
        return eit->second.symbols;
      }
    }
  }

  // Slow path outside the lock: build id, then maybe the full table.
  auto build_id = ElfSymbols::ReadBuildId(open_path);
  if (!build_id.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.failures;
    return build_id.status();
  }
  std::string key = build_id->empty()
                        ? "file:" + std::to_string(fk.dev) + ":" + std::to_string(fk.ino) + ":" +
                              std::to_string(fk.size) + ":" + std::to_string(fk.mtime_ns)
                        : *build_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (file_keys_.size() > 65536) file_keys_.clear();  // identities are cheap to rebuild
    file_keys_[fk] = key;
    auto eit = entries_.find(key);
    if (eit != entries_.end()) {
      ++stats_.hits;
      TouchLocked(eit->second, eit->first);
      return eit->second.symbols;
    }
  }
  auto loaded = ElfSymbols::Load(open_path);
  std::lock_guard<std::mutex> lock(mu_);
  if (!loaded.ok()) {
    ++stats_.failures;
    return loaded.status();
  }
  ++stats_.loads;
  auto eit = entries_.find(key);
  if (eit != entries_.end()) return eit->second.symbols;  // another thread loaded it meanwhile
  lru_.push_front(key);
  Entry e{*loaded, (*loaded)->MemoryBytes(), lru_.begin()};
  stats_.bytes += e.bytes;
  entries_.emplace(key, std::move(e));
  EvictLocked();
  return *loaded;
}

void SymbolCache::TouchLocked(Entry& e, const std::string& /*key*/) {
  lru_.splice(lru_.begin(), lru_, e.lru_it);
}

void SymbolCache::EvictLocked() {
  // Keep at least the most recent entry even when it alone exceeds the bound.
  while (stats_.bytes > max_bytes_ && lru_.size() > 1) {
    auto it = entries_.find(lru_.back());
    stats_.bytes -= it->second.bytes;
    entries_.erase(it);
    lru_.pop_back();
    ++stats_.evictions;
  }
}

SymbolCacheStats SymbolCache::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SymbolCacheStats s = stats_;
  s.binaries = entries_.size();
  return s;
}

}  // namespace sonde::profile
