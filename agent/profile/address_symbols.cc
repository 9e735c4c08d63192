#include "agent/profile/address_symbols.h"

#include <algorithm>
#include <charconv>

#include "absl/status/status.h"

namespace sonde::profile {
namespace {

constexpr uint64_t kMaxUnsizedGap = 1 << 20;  // a kernel function is never 1 MiB

bool ParseHex(std::string_view s, uint64_t& out) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

std::string_view NextLine(std::string_view& text) {
  size_t nl = text.find('\n');
  std::string_view line = text.substr(0, nl);
  text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  return line;
}

std::string_view NextToken(std::string_view& line) {
  size_t b = line.find_first_not_of(" \t");
  if (b == std::string_view::npos) {
    line = {};
    return {};
  }
  line.remove_prefix(b);
  size_t e = line.find_first_of(" \t");
  std::string_view tok = line.substr(0, e);
  line.remove_prefix(e == std::string_view::npos ? line.size() : e);
  return tok;
}

}  // namespace

void AddressSymbols::Add(uint64_t addr, uint64_t size, std::string_view name) {
  symbols_.push_back({addr, size, static_cast<uint32_t>(names_.size()),
                      static_cast<uint32_t>(name.size())});
  names_.append(name);
}

void AddressSymbols::Finish() {
  std::stable_sort(symbols_.begin(), symbols_.end(),
                   [](const Symbol& a, const Symbol& b) { return a.addr < b.addr; });
  // Several names at one address (kallsyms aliases, re-JITted code): the
  // last one written wins for perf maps; for kallsyms any alias will do.
  std::vector<Symbol> unique;
  unique.reserve(symbols_.size());
  for (const Symbol& s : symbols_) {
    if (!unique.empty() && unique.back().addr == s.addr) {
      unique.back() = s;
    } else {
      unique.push_back(s);
    }
  }
  symbols_ = std::move(unique);
  symbols_.shrink_to_fit();
}

absl::StatusOr<AddressSymbols> AddressSymbols::ParseKallsyms(std::string_view text) {
  AddressSymbols out;
  bool any_nonzero = false;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    std::string_view addr_s = NextToken(line), type = NextToken(line), name = NextToken(line);
    std::string_view module = NextToken(line);
    uint64_t addr = 0;
    if (name.empty() || type.size() != 1 || !ParseHex(addr_s, addr)) continue;
    if (addr != 0) any_nonzero = true;
    char t = type[0];
    if (t != 't' && t != 'T' && t != 'w' && t != 'W') continue;
    if (module.size() > 2 && module.front() == '[' && module.back() == ']') {
      std::string with_module(name);
      with_module += " ";
      with_module += module;
      out.Add(addr, 0, with_module);
    } else {
      out.Add(addr, 0, name);
    }
  }
  if (!any_nonzero) {
    return absl::PermissionDeniedError("kallsyms addresses are hidden (kptr_restrict, not root?)");
  }
  out.Finish();
  return out;
}

absl::StatusOr<AddressSymbols> AddressSymbols::ParsePerfMap(std::string_view text) {
  AddressSymbols out;
  while (!text.empty()) {
    std::string_view line = NextLine(text);
    std::string_view start_s = NextToken(line), size_s = NextToken(line);
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string_view::npos) continue;
    std::string_view name = line.substr(b);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.remove_suffix(1);
    uint64_t start = 0, size = 0;
    if (!ParseHex(start_s, start) || !ParseHex(size_s, size) || name.empty()) continue;
    out.Add(start, size, name);
  }
  out.Finish();
  return out;
}

std::optional<SymbolHit> AddressSymbols::Lookup(uint64_t addr) const {
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), addr,
                             [](uint64_t a, const Symbol& s) { return a < s.addr; });
  if (it == symbols_.begin()) return std::nullopt;
  --it;
  uint64_t limit = it->size != 0 ? it->size : kMaxUnsizedGap;
  if (addr - it->addr >= limit) return std::nullopt;
  return SymbolHit{std::string_view(names_).substr(it->name_offset, it->name_length),
                   addr - it->addr};
}

}  // namespace sonde::profile
