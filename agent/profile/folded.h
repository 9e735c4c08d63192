#pragma once
// Folded stacks ("root;caller;callee count", Brendan Gregg's format), the
// profiler's output unit, and the helpers to merge and query them.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sonde::profile {

enum class ProfileKind {
  kOnCpu,   // value = samples (one sample = 1/frequency_hz s of CPU)
  kOffCpu,  // value = microseconds blocked
};

std::string_view ProfileKindName(ProfileKind kind);  // "on_cpu" / "off_cpu"

// One stack of one thread in one time slot.
struct FoldedStack {
  uint32_t tid = 0;
  std::string thread_name;
  uint64_t slot_start_unix_ns = 0;  // slot = the time resolution of the counts (default 1 s)
  uint64_t slot_end_unix_ns = 0;
  std::string stack;  // outermost frame first, ';' separated, kernel frames end in "_[k]"
  uint64_t value = 0;
  uint64_t count = 0;  // on-CPU: samples (= value); off-CPU: number of blocks
};

struct ProcessProfile {
  uint32_t pid = 0;
  std::string process_name;
  uint64_t total = 0;  // sum of the stacks' values
  std::vector<FoldedStack> stacks;
  std::string container_id;  // "" outside containers
};

// Everything one drain produced for one kind.
struct ProfileWindow {
  ProfileKind kind = ProfileKind::kOnCpu;
  uint64_t start_unix_ns = 0;
  uint64_t end_unix_ns = 0;
  uint32_t frequency_hz = 0;  // on-CPU sampling frequency
  std::vector<ProcessProfile> processes;  // sorted by pid
};

// Builds a folded stack string: user frames then kernel frames, each list
// given innermost first (as the kernel returns them).
std::string FoldStack(const std::vector<std::string>& user_innermost_first,
                      const std::vector<std::string>& kernel_innermost_first);

// Frame names cannot contain the separators of the folded format.
std::string SanitizeFrame(std::string_view name);

// Merges identical (tid, slot, stack) entries of each process, recomputes
// totals and sorts (processes by pid, stacks by value descending).
void Normalize(ProfileWindow& window);

// Filter for MergeFolded; unset fields match everything. A slot matches
// when it overlaps [from, to).
struct FoldedQuery {
  std::optional<uint32_t> pid;
  std::optional<uint32_t> tid;
  uint64_t from_unix_ns = 0;
  uint64_t to_unix_ns = UINT64_MAX;
  bool prefix_process_name = false;  // add "name (pid)" as the root frame
};

// Merge of every matching stack across windows: stack -> summed value.
std::map<std::string, uint64_t> MergeFolded(const std::vector<ProfileWindow>& windows,
                                            const FoldedQuery& query);

// "stack value\n" lines, the input format of flamegraph.pl / speedscope.
std::string ToFoldedText(const std::map<std::string, uint64_t>& merged);

// Parses "stack value" lines back (tests, tools).
std::map<std::string, uint64_t> ParseFoldedText(std::string_view text);

}  // namespace sonde::profile
