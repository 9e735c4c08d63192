#pragma once
// The agent's hard memory ceiling (resident set size). Past it the tracker
// sheds the least valuable state first: idle connections, then payload
// buffering (multi-call messages are dropped as counted gaps; messages that
// fit one call still parse, so RED keeps counting). Buffering comes back
// once the agent is below 90 % of the ceiling.
#include <cstdint>
#include <functional>

namespace sonde::conn {

enum class ShedLevel : uint8_t {
  kNone = 0,
  kIdleConnections = 1,  // quiet connections released at every check
  kPayloadBuffering = 2, // and no stream buffers bytes across calls
};

// Resident set size of this process in bytes (/proc/self/statm); 0 if unreadable.
uint64_t ReadSelfRss();

// Bytes the allocator has handed out and not got back (jemalloc's
// stats.allocated); 0 when the allocator does not tell.
uint64_t HeapAllocatedBytes();

// Gives freed heap pages back to the kernel now (jemalloc: purge every
// arena; glibc: malloc_trim) instead of at the allocator's own pace.
void ReturnFreedMemory();

class MemoryCeiling {
 public:
  // `limit_bytes` 0: no ceiling. `rss` reads the current resident set size.
  explicit MemoryCeiling(uint64_t limit_bytes, std::function<uint64_t()> rss = ReadSelfRss)
      : limit_(limit_bytes), rss_(std::move(rss)) {}

  // One check (about once a second): the level to apply now. Escalates one
  // level per check while above the ceiling, back to kNone below 90 %.
  ShedLevel Check();
  uint64_t limit() const { return limit_; }
  uint64_t last_rss() const { return last_rss_; }

 private:
  uint64_t limit_;
  std::function<uint64_t()> rss_;
  ShedLevel level_ = ShedLevel::kNone;
  uint64_t last_rss_ = 0;
};

}  // namespace sonde::conn
