#include "agent/profile/proc_maps.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"

namespace sonde::profile {
namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

bool ParseHex(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size();
}

bool ParseDec(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 10);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits off the next space-separated field.
std::string_view NextField(std::string_view& line) {
  size_t b = line.find_first_not_of(' ');
  if (b == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(b);
  size_t e = line.find(' ');
  std::string_view field = line.substr(0, e);
  line.remove_prefix(e == std::string_view::npos ? line.size() : e);
  return field;
}

}  // namespace

bool MemoryMapping::Deleted() const {
  return path.size() > kDeletedSuffix.size() &&
         std::string_view(path).substr(path.size() - kDeletedSuffix.size()) == kDeletedSuffix;
}

std::string MemoryMapping::FilePath() const {
  return Deleted() ? path.substr(0, path.size() - kDeletedSuffix.size()) : path;
}

absl::StatusOr<std::vector<MemoryMapping>> ParseProcMaps(std::string_view text,
                                                         bool executable_only) {
  std::vector<MemoryMapping> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty()) continue;

    std::string_view range = NextField(line), perms = NextField(line), off = NextField(line),
                     dev = NextField(line), inode = NextField(line);
    size_t dash = range.find('-'), colon = dev.find(':');
    MemoryMapping m;
    uint64_t major = 0, minor = 0;
    if (dash == std::string_view::npos || colon == std::string_view::npos || perms.size() < 4 ||
        !ParseHex(range.substr(0, dash), m.start) || !ParseHex(range.substr(dash + 1), m.end) ||
        !ParseHex(off, m.file_offset) || !ParseHex(dev.substr(0, colon), major) ||
        !ParseHex(dev.substr(colon + 1), minor) || !ParseDec(inode, m.inode)) {
      return absl::InvalidArgumentError("malformed maps line: " + std::string(line));
    }
    m.dev_major = static_cast<uint32_t>(major);
    m.dev_minor = static_cast<uint32_t>(minor);
    m.executable = perms[2] == 'x';
    if (executable_only && !m.executable) continue;
    size_t b = line.find_first_not_of(' ');
    if (b != std::string_view::npos) m.path = std::string(line.substr(b));
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(),
            [](const MemoryMapping& a, const MemoryMapping& b) { return a.start < b.start; });
  return out;
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    return err == ENOENT || err == ESRCH
               ? absl::NotFoundError(path + ": " + std::strerror(err))
               : absl::UnavailableError(path + ": " + std::strerror(err));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<std::vector<MemoryMapping>> ReadProcMaps(uint32_t pid,
                                                        const std::string& proc_root) {
  auto text = ReadWholeFile(proc_root + "/" + std::to_string(pid) + "/maps");
  if (!text.ok()) return text.status();
  return ParseProcMaps(*text, true);
}

const MemoryMapping* FindMapping(const std::vector<MemoryMapping>& maps, uint64_t addr) {
  auto it = std::upper_bound(maps.begin(), maps.end(), addr,
                             [](uint64_t a, const MemoryMapping& m) { return a < m.start; });
  if (it == maps.begin()) return nullptr;
  --it;
  return addr < it->end ? &*it : nullptr;
}

}  // namespace sonde::profile
