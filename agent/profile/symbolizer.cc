#include "agent/profile/symbolizer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>

namespace sonde::profile {
namespace {

std::string Basename(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string ModuleOffset(const std::string& module, uint64_t offset) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "+0x%" PRIx64, offset);
  return module + buf;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

std::string ContainerIdFromCgroup(std::string_view text) {
  // Take the last run of exactly 64 hex digits (the innermost cgroup).
  std::string found;
  size_t run = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    const bool hex = i < text.size() && std::isxdigit(static_cast<unsigned char>(text[i])) &&
                     !std::isupper(static_cast<unsigned char>(text[i]));
    if (hex) {
      ++run;
      continue;
    }
    if (run == 64) found = std::string(text.substr(i - 64, 64));
    run = 0;
  }
  return found;
}

Symbolizer::Symbolizer(SymbolizerOptions options)
    : options_(std::move(options)), cache_(options_.symbol_cache_bytes) {
  auto text = ReadWholeFile(options_.kallsyms_path);
  if (text.ok()) {
    auto parsed = AddressSymbols::ParseKallsyms(*text);
    if (parsed.ok()) kernel_ = std::move(*parsed);
  }
}

void Symbolizer::NoteProcess(uint32_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  SnapshotLocked(pid);
}

void Symbolizer::BeginBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  ++batch_;
  memo_.clear();
  PruneLocked();
}

Symbolizer::Process* Symbolizer::SnapshotLocked(uint32_t pid) {
  ++stats_.maps_reads;
  auto maps = ReadProcMaps(pid, options_.proc_root);
  if (!maps.ok()) {
    auto it = processes_.find(pid);
    if (it != processes_.end()) it->second.exited = true;
    return nullptr;
  }
  Process& p = processes_[pid];
  p.maps = std::move(*maps);
  p.exited = false;
  p.refreshed_batch = batch_;
  if (p.last_used_batch == 0) p.last_used_batch = batch_;
  if (auto cg = ReadWholeFile(options_.proc_root + "/" + std::to_string(pid) + "/cgroup"); cg.ok()) {
    p.container_id = ContainerIdFromCgroup(*cg);
  }
  auto comm = ReadWholeFile(options_.proc_root + "/" + std::to_string(pid) + "/comm");
  if (comm.ok()) {
    p.comm = *comm;
    while (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
  }
  // Load symbols now, while the files are reachable through this pid.
  p.mapping_symbols.assign(p.maps.size(), nullptr);
  p.mapping_tried.assign(p.maps.size(), 0);
  for (size_t i = 0; i < p.maps.size(); ++i) {
    if (!p.maps[i].IsFile()) continue;
    p.mapping_symbols[i] = LoadMappingLocked(pid, p, p.maps[i]);
    p.mapping_tried[i] = 1;
  }
  memo_.erase(pid);
  return &p;
}

void Symbolizer::PruneLocked() {
  if (processes_.size() <= options_.max_processes) return;
  // Drop the least recently used snapshots (exited ones first at equal age).
  std::vector<std::pair<uint64_t, uint32_t>> order;
  order.reserve(processes_.size());
  for (auto& [pid, p] : processes_) order.emplace_back(p.last_used_batch * 2 + (p.exited ? 0 : 1), pid);
  std::sort(order.begin(), order.end());
  size_t drop = processes_.size() - options_.max_processes;
  for (size_t i = 0; i < drop; ++i) processes_.erase(order[i].second);
}

std::shared_ptr<const ElfSymbols> Symbolizer::LoadMappingLocked(uint32_t pid, const Process& p,
                                                                const MemoryMapping& m) {
  const std::string file = m.FilePath();
  // Live process: its own view of the file system (containers), or the
  // mapping itself when the file was deleted or replaced. Gone: host path.
  if (!p.exited) {
    const std::string pid_dir = options_.proc_root + "/" + std::to_string(pid);
    char range[64];
    std::snprintf(range, sizeof(range), "/map_files/%" PRIx64 "-%" PRIx64, m.start, m.end);
    for (const std::string& candidate : {pid_dir + "/root" + file, pid_dir + range}) {
      if (!Exists(candidate)) continue;
      auto s = cache_.Get(candidate);
      if (s.ok()) return *s;
    }
  }
  auto s = cache_.Get(file);
  return s.ok() ? *s : nullptr;
}

std::string Symbolizer::ResolveFileLocked(uint32_t pid, Process& p, size_t index, uint64_t addr) {
  const MemoryMapping& m = p.maps[index];
  if (!p.mapping_tried[index]) {
    p.mapping_symbols[index] = LoadMappingLocked(pid, p, m);
    p.mapping_tried[index] = 1;
  }
  const ElfSymbols* symbols = p.mapping_symbols[index].get();
  const uint64_t file_offset = addr - m.start + m.file_offset;
  const std::string module = Basename(m.FilePath());
  if (!symbols) return ModuleOffset(module, file_offset);
  auto vaddr = symbols->FileOffsetToVaddr(file_offset);
  if (!vaddr) return ModuleOffset(module, file_offset);
  auto hit = symbols->Lookup(*vaddr);
  if (!hit) return ModuleOffset(module, *vaddr);
  ++stats_.user_resolved;
  return std::string(hit->name);
}

std::optional<std::string> Symbolizer::ResolvePerfMapLocked(uint32_t pid, Process& p,
                                                            uint64_t addr) {
  const std::string path = options_.perf_map_dir + "/perf-" + std::to_string(pid) + ".map";
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) {
    int64_t mtime = int64_t(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    if (mtime != p.perf_map.mtime_ns) {
      auto text = ReadWholeFile(path);
      if (text.ok()) {
        auto parsed = AddressSymbols::ParsePerfMap(*text);
        if (parsed.ok()) {
          p.perf_map.symbols = std::make_shared<const AddressSymbols>(std::move(*parsed));
          p.perf_map.mtime_ns = mtime;
        }
      }
    }
  }
  if (!p.perf_map.symbols) return std::nullopt;
  auto hit = p.perf_map.symbols->Lookup(addr);
  if (!hit) return std::nullopt;
  ++stats_.user_resolved;
  return std::string(hit->name);
}

std::string Symbolizer::SymbolizeUser(uint32_t pid, uint64_t addr) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.user_frames;
  if (auto memo = memo_.find(pid); memo != memo_.end()) {
    if (auto hit = memo->second.find(addr); hit != memo->second.end()) {
      if (hit->second[0] != '[' && hit->second.find("+0x") == std::string::npos) {
        ++stats_.user_resolved;
      }
      return hit->second;
    }
  }
  std::string frame = SymbolizeUserLocked(pid, addr);  // may reset memo_[pid]
  memo_[pid].emplace(addr, frame);
  return frame;
}

std::string Symbolizer::SymbolizeUserLocked(uint32_t pid, uint64_t addr) {
  auto it = processes_.find(pid);
  Process* p = it == processes_.end() ? SnapshotLocked(pid) : &it->second;
  if (!p) return "[unknown]";
  p->last_used_batch = batch_;
  const MemoryMapping* m = FindMapping(p->maps, addr);
  // Outside the snapshot: the process may have exec'd, dlopen'd or JIT'd
  // since. Re-read once per batch while it is alive.
  if (!m && !p->exited && p->refreshed_batch != batch_) {
    if (Process* fresh = SnapshotLocked(pid)) {
      p = fresh;
      m = FindMapping(p->maps, addr);
    } else {
      p = &processes_[pid];
    }
  }
  if (p->exited) ++stats_.exited_process_lookups;
  if (m && m->IsFile()) return ResolveFileLocked(pid, *p, static_cast<size_t>(m - p->maps.data()), addr);
  if (auto jit = ResolvePerfMapLocked(pid, *p, addr)) return *jit;
  if (m && !m->path.empty()) return ModuleOffset(m->path, addr - m->start);  // [vdso] etc.
  return "[unknown]";
}

std::string Symbolizer::SymbolizeKernel(uint64_t addr) {
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.kernel_frames;
  if (kernel_) {
    if (auto hit = kernel_->Lookup(addr)) {
      ++stats_.kernel_resolved;
      return std::string(hit->name);
    }
  }
  return "[unknown]";
}

std::string Symbolizer::ProcessName(uint32_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = processes_.find(pid);
  return it == processes_.end() ? std::string() : it->second.comm;
}

std::string Symbolizer::ContainerId(uint32_t pid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = processes_.find(pid);
  return it == processes_.end() ? std::string() : it->second.container_id;
}

SymbolizerStats Symbolizer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  SymbolizerStats s = stats_;
  s.cache = cache_.stats();
  return s;
}

}  // namespace sonde::profile
