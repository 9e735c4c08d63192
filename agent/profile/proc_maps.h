#pragma once
// /proc/PID/maps parsing: the executable mappings of a process, used to turn a
// sampled virtual address into (binary, file offset).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace sonde::profile {

struct MemoryMapping {
  uint64_t start = 0;        // first virtual address
  uint64_t end = 0;          // one past the last virtual address
  uint64_t file_offset = 0;  // offset in the file of `start`
  uint32_t dev_major = 0;
  uint32_t dev_minor = 0;
  uint64_t inode = 0;
  bool executable = false;
  std::string path;  // "/usr/bin/x", "[vdso]", "" (anonymous), "/x (deleted)"

  bool IsFile() const { return inode != 0 && !path.empty() && path[0] == '/'; }
  bool Deleted() const;
  // Path without a trailing " (deleted)".
  std::string FilePath() const;
};

// Parses the text of /proc/PID/maps. Keeps only executable mappings when
// executable_only is set. Result is sorted by start address.
absl::StatusOr<std::vector<MemoryMapping>> ParseProcMaps(std::string_view text,
                                                         bool executable_only = true);

// Reads and parses <proc_root>/<pid>/maps.
absl::StatusOr<std::vector<MemoryMapping>> ReadProcMaps(uint32_t pid,
                                                        const std::string& proc_root = "/proc");

// Binary search in a sorted mapping list; nullptr when addr is not mapped.
const MemoryMapping* FindMapping(const std::vector<MemoryMapping>& maps, uint64_t addr);

// Reads a whole (small, possibly procfs) file.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace sonde::profile
