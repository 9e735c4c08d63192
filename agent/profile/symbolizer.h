#pragma once
// Address -> frame name for user and kernel stacks.
//
// User addresses resolve through a snapshot of the process's executable
// mappings, taken when the kernel first reports the process (so a process
// that exits before the drain still resolves: the snapshot and the symbol
// tables outlive it) and refreshed when an address falls outside it (exec,
// dlopen, JIT). Binaries go through the build-id keyed SymbolCache; files of
// a live process are opened through /proc/PID/root (containers) or
// /proc/PID/map_files (deleted files). Unresolvable addresses become
// "module+0xoffset" (stripped binaries) or "[unknown]".
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "agent/profile/address_symbols.h"
#include "agent/profile/proc_maps.h"
#include "agent/profile/symbol_cache.h"

namespace sonde::profile {

struct SymbolizerOptions {
  std::string proc_root = "/proc";
  std::string kallsyms_path = "/proc/kallsyms";
  std::string perf_map_dir = "/tmp";  // perf-PID.map
  size_t symbol_cache_bytes = 64u << 20;
  size_t max_processes = 8192;  // process snapshots kept (oldest unused dropped first)
};

struct SymbolizerStats {
  uint64_t user_frames = 0;
  uint64_t user_resolved = 0;  // to a function name
  uint64_t kernel_frames = 0;
  uint64_t kernel_resolved = 0;
  uint64_t maps_reads = 0;
  uint64_t exited_process_lookups = 0;  // resolved from a snapshot of a gone process
  SymbolCacheStats cache;
};

// The 64-hex-digit container id in a /proc/PID/cgroup text (docker, containerd,
// cri-o, podman layouts), or "" for a process outside containers.
std::string ContainerIdFromCgroup(std::string_view cgroup_text);

class Symbolizer {
 public:
  explicit Symbolizer(SymbolizerOptions options);

  // Snapshot /proc/PID/maps now. Called from the new-process notice.
  void NoteProcess(uint32_t pid);
  // Marks the start of a drain: refreshed-maps budget and the recency clock.
  void BeginBatch();
  // Frame name for one user address of pid.
  std::string SymbolizeUser(uint32_t pid, uint64_t addr);
  // Frame name for one kernel address ("name", or "[unknown]").
  std::string SymbolizeKernel(uint64_t addr);
  // Process name (/proc/PID/comm at snapshot time), empty if never seen.
  std::string ProcessName(uint32_t pid);
  // Container id from /proc/PID/cgroup at snapshot time, empty if none.
  std::string ContainerId(uint32_t pid);

  SymbolizerStats stats() const;
  bool kernel_symbols_available() const { return kernel_.has_value(); }

 private:
  struct PerfMapState {
    int64_t mtime_ns = -1;
    std::shared_ptr<const AddressSymbols> symbols;
  };
  struct Process {
    std::vector<MemoryMapping> maps;
    // Symbols per mapping (same index as maps), looked up once: they keep a
    // gone process resolvable even after the cache evicted its binaries.
    std::vector<std::shared_ptr<const ElfSymbols>> mapping_symbols;
    std::vector<uint8_t> mapping_tried;
    std::string comm;
    std::string container_id;
    uint64_t last_used_batch = 0;
    uint64_t refreshed_batch = 0;  // batch of the last maps re-read
    bool exited = false;
    PerfMapState perf_map;
  };

  Process* SnapshotLocked(uint32_t pid);
  std::string SymbolizeUserLocked(uint32_t pid, uint64_t addr);  // (re)reads maps; nullptr if the process is gone
  std::string ResolveFileLocked(uint32_t pid, Process& p, size_t mapping_index, uint64_t addr);
  std::shared_ptr<const ElfSymbols> LoadMappingLocked(uint32_t pid, const Process& p,
                                                      const MemoryMapping& m);
  std::optional<std::string> ResolvePerfMapLocked(uint32_t pid, Process& p, uint64_t addr);
  void PruneLocked();

  SymbolizerOptions options_;
  SymbolCache cache_;
  std::optional<AddressSymbols> kernel_;
  mutable std::mutex mu_;
  std::unordered_map<uint32_t, Process> processes_;
  uint64_t batch_ = 1;
  // (pid, address) -> frame, reset every batch: stacks repeat a lot.
  std::unordered_map<uint64_t, std::unordered_map<uint64_t, std::string>> memo_;
  SymbolizerStats stats_;
};

}  // namespace sonde::profile
