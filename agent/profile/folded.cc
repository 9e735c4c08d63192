#include "agent/profile/folded.h"

#include <algorithm>
#include <charconv>
#include <tuple>

namespace sonde::profile {

std::string_view ProfileKindName(ProfileKind kind) {
  return kind == ProfileKind::kOnCpu ? "on_cpu" : "off_cpu";
}

std::string SanitizeFrame(std::string_view name) {
  std::string out(name);
  for (char& c : out) {
    if (c == ';') c = ':';
    if (c == '\n' || c == '\r') c = ' ';
  }
  // The count is the last space-separated token of a line; trailing spaces
  // would confuse readers, inner spaces are fine.
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? std::string("[unknown]") : out;
}

std::string FoldStack(const std::vector<std::string>& user, const std::vector<std::string>& kernel) {
  std::string out;
  for (auto it = user.rbegin(); it != user.rend(); ++it) {
    if (!out.empty()) out += ';';
    out += SanitizeFrame(*it);
  }
  for (auto it = kernel.rbegin(); it != kernel.rend(); ++it) {
    if (!out.empty()) out += ';';
    out += SanitizeFrame(*it);
    out += "_[k]";
  }
  return out.empty() ? std::string("[no stack]") : out;
}

void Normalize(ProfileWindow& window) {
  std::sort(window.processes.begin(), window.processes.end(),
            [](const ProcessProfile& a, const ProcessProfile& b) { return a.pid < b.pid; });
  // Processes listed twice are merged into the first.
  std::vector<ProcessProfile> merged;
  for (ProcessProfile& p : window.processes) {
    if (!merged.empty() && merged.back().pid == p.pid) {
      auto& dst = merged.back().stacks;
      dst.insert(dst.end(), std::make_move_iterator(p.stacks.begin()),
                 std::make_move_iterator(p.stacks.end()));
      if (merged.back().process_name.empty()) merged.back().process_name = p.process_name;
    } else {
      merged.push_back(std::move(p));
    }
  }
  for (ProcessProfile& p : merged) {
    auto key = [](const FoldedStack& s) {
      return std::tie(s.tid, s.slot_start_unix_ns, s.stack);
    };
    std::sort(p.stacks.begin(), p.stacks.end(),
              [&](const FoldedStack& a, const FoldedStack& b) { return key(a) < key(b); });
    std::vector<FoldedStack> out;
    for (FoldedStack& s : p.stacks) {
      if (!out.empty() && key(out.back()) == key(s)) {
        out.back().value += s.value;
        out.back().count += s.count;
      } else {
        out.push_back(std::move(s));
      }
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const FoldedStack& a, const FoldedStack& b) { return a.value > b.value; });
    p.total = 0;
    for (const FoldedStack& s : out) p.total += s.value;
    p.stacks = std::move(out);
  }
  window.processes = std::move(merged);
}

std::map<std::string, uint64_t> MergeFolded(const std::vector<ProfileWindow>& windows,
                                            const FoldedQuery& q) {
  std::map<std::string, uint64_t> out;
  for (const ProfileWindow& w : windows) {
    for (const ProcessProfile& p : w.processes) {
      if (q.pid && *q.pid != p.pid) continue;
      for (const FoldedStack& s : p.stacks) {
        if (q.tid && *q.tid != s.tid) continue;
        if (s.slot_end_unix_ns <= q.from_unix_ns || s.slot_start_unix_ns >= q.to_unix_ns) continue;
        std::string stack = s.stack;
        if (q.prefix_process_name) {
          stack = SanitizeFrame(p.process_name.empty() ? "[unknown]" : p.process_name) + " (" +
                  std::to_string(p.pid) + ");" + stack;
        }
        out[stack] += s.value;
      }
    }
  }
  return out;
}

std::string ToFoldedText(const std::map<std::string, uint64_t>& merged) {
  std::string out;
  for (const auto& [stack, value] : merged) {
    out += stack;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
  }
  return out;
}

std::map<std::string, uint64_t> ParseFoldedText(std::string_view text) {
  std::map<std::string, uint64_t> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    size_t sp = line.rfind(' ');
    if (sp == std::string_view::npos) continue;
    uint64_t v = 0;
    std::string_view num = line.substr(sp + 1);
    auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), v);
    if (ec != std::errc() || p != num.data() + num.size()) continue;
    out[std::string(line.substr(0, sp))] += v;
  }
  return out;
}

}  // namespace sonde::profile
