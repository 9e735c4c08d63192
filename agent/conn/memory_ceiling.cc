#include "agent/conn/memory_ceiling.h"

#include <malloc.h>
#include <unistd.h>

#include <cstdio>

// jemalloc's control interface when the binary links it (sonde-agent does);
// null otherwise.
extern "C" int mallctl(const char* name, void* oldp, size_t* oldlenp, void* newp, size_t newlen)
    __attribute__((weak));

namespace sonde::conn {

uint64_t ReadSelfRss() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long long size = 0, resident = 0;
  const int n = std::fscanf(f, "%llu %llu", &size, &resident);
  std::fclose(f);
  if (n != 2) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

uint64_t HeapAllocatedBytes() {
  if (mallctl == nullptr) return 0;
  uint64_t epoch = 1;
  size_t len = sizeof(epoch);
  mallctl("epoch", &epoch, &len, &epoch, len);  // refresh the statistics
  size_t allocated = 0;
  len = sizeof(allocated);
  if (mallctl("stats.allocated", &allocated, &len, nullptr, 0) != 0) return 0;
  return allocated;
}

void ReturnFreedMemory() {
  if (mallctl != nullptr) {
    // "arena.<MALLCTL_ARENAS_ALL>.purge"
    mallctl("arena.4096.purge", nullptr, nullptr, nullptr, 0);
    return;
  }
  ::malloc_trim(0);
}

ShedLevel MemoryCeiling::Check() {
  if (limit_ == 0) return ShedLevel::kNone;
  last_rss_ = rss_();
  if (last_rss_ > limit_) {
    if (level_ != ShedLevel::kPayloadBuffering) {
      level_ = static_cast<ShedLevel>(static_cast<uint8_t>(level_) + 1);
    }
  } else if (last_rss_ < limit_ / 10 * 9) {
    level_ = ShedLevel::kNone;
  }
  return level_;
}

}  // namespace sonde::conn
