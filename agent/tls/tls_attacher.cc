#include "agent/tls/tls_attacher.h"

#include <bpf/libbpf.h>
#include <dirent.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "agent/bpf/libbpf_raii.h"
#include "agent/bpf/uprobe_multi.h"
#include "agent/tls/openssl_symbols.h"
#include "agent/tls/probe_sites.h"

namespace sonde::tls {
namespace {

// Next whitespace-separated field of `line` starting at `pos`.
std::string_view NextField(std::string_view line, size_t& pos) {
  while (pos < line.size() && line[pos] == ' ') ++pos;
  const size_t start = pos;
  while (pos < line.size() && line[pos] != ' ') ++pos;
  return line.substr(start, pos - start);
}

bool ReadText(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  out = std::move(ss).str();
  return true;
}

std::string Comm(const std::string& proc_root, uint32_t pid) {
  std::string comm;
  if (!ReadText(absl::StrCat(proc_root, "/", pid, "/comm"), comm)) return "?";
  while (!comm.empty() && comm.back() == '\n') comm.pop_back();
  return comm;
}

}  // namespace

std::vector<FileMapping> ParseExecutableFileMappings(std::string_view text) {
  std::vector<FileMapping> out;
  std::set<std::pair<std::string_view, uint64_t>> seen;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    // address perms offset dev inode path
    size_t pos = 0;
    NextField(line, pos);  // address
    const std::string_view perms = NextField(line, pos);
    NextField(line, pos);  // offset
    const std::string_view dev = NextField(line, pos);
    const std::string_view inode_text = NextField(line, pos);
    while (pos < line.size() && line[pos] == ' ') ++pos;
    const std::string_view path = line.substr(std::min(pos, line.size()));
    if (perms.size() < 3 || perms[2] != 'x' || path.empty() || path[0] != '/') continue;
    if (path.size() >= 10 && path.substr(path.size() - 10) == " (deleted)") continue;
    uint64_t inode = 0;
    bool ok = !inode_text.empty();
    for (char c : inode_text) {
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      inode = inode * 10 + static_cast<uint64_t>(c - '0');
    }
    if (!ok || inode == 0) continue;
    if (!seen.insert({dev, inode}).second) continue;
    out.push_back({std::string(dev), inode, std::string(path)});
  }
  return out;
}

struct TlsAttacher::AttachedProbe {
  bpf::BpfLink pmu_link;     // through the uprobe PMU (libbpf)
  bpf::UniqueFd multi_link;  // or a uprobe_multi link
};

TlsAttacher::ProbeLink TlsAttacher::AttachAt(bpf_program* program, bool return_probe, int pid, const std::string& path,
                                         uint64_t offset) const {
  auto probe = std::make_unique<AttachedProbe>();
  if (options_.uprobe_multi) {
    probe->multi_link = bpf::CreateUprobeMultiLink(bpf_program__fd(program), path, offset, return_probe,
                                                   pid < 0 ? 0 : static_cast<uint32_t>(pid));
    if (!probe->multi_link.valid()) return nullptr;
  } else {
    probe->pmu_link.reset(bpf_program__attach_uprobe(program, return_probe, pid, path.c_str(), offset));
    if (!probe->pmu_link) return nullptr;
  }
  return probe;
}

TlsAttacher::TlsAttacher(const TlsPrograms& programs, TlsAttachOptions options)
    : programs_(programs), options_(std::move(options)) {}

std::unique_ptr<TlsAttacher> TlsAttacher::Start(const TlsPrograms& programs, TlsAttachOptions options) {
  std::unique_ptr<TlsAttacher> a(new TlsAttacher(programs, std::move(options)));
  a->Scan(/*all_processes=*/true);
  a->thread_ = std::thread([raw = a.get()] { raw->Loop(); });
  return a;
}

TlsAttacher::~TlsAttacher() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void TlsAttacher::Loop() {
  uint32_t n = 0;
  std::unique_lock<std::mutex> lock(stop_mu_);
  while (!stop_cv_.wait_for(lock, options_.scan_interval, [this] { return stop_; })) {
    lock.unlock();
    ++n;
    Scan(/*all_processes=*/options_.full_scan_every != 0 && n % options_.full_scan_every == 0);
    lock.lock();
  }
}

void TlsAttacher::Scan(bool all_processes) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(options_.proc_root.c_str()), closedir);
  if (!dir) {
    spdlog::warn("TLS: cannot list {}: {}", options_.proc_root, std::strerror(errno));
    return;
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++counters_.scans;
  std::unordered_set<uint32_t> alive;
  std::string maps;
  while (dirent* e = readdir(dir.get())) {
    char* end = nullptr;
    const unsigned long pid = std::strtoul(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid == 0 || pid == options_.self_pid) continue;
    const auto p = static_cast<uint32_t>(pid);
    const bool per_process = !options_.only_pids.empty();
    if (per_process && std::find(options_.only_pids.begin(), options_.only_pids.end(), p) == options_.only_pids.end())
      continue;
    alive.insert(p);
    if (!all_processes && scanned_pids_.count(p) != 0) continue;
    // Kernel threads have an empty maps file; a process gone meanwhile fails to read.
    if (!ReadText(absl::StrCat(options_.proc_root, "/", p, "/maps"), maps)) continue;
    ++counters_.processes_scanned;
    for (const FileMapping& m : ParseExecutableFileMappings(maps)) {
      if (examined_.insert({m.device, m.inode, per_process ? p : 0}).second) ExamineFile(p, m);
    }
  }
  if (all_processes) {
    scanned_pids_ = std::move(alive);  // forget the dead: their pids may be reused
  } else {
    scanned_pids_.insert(alive.begin(), alive.end());
  }
}

void TlsAttacher::ExamineFile(uint32_t pid, const FileMapping& m) {
  ++counters_.files_examined;
  // Through the process's root: the file as that process sees it (containers).
  const std::string path = absl::StrCat(options_.proc_root, "/", pid, "/root", m.path);
  auto found = FindOpenSslFunctions(path);
  if (!found.ok() || !found->usable()) return;  // not OpenSSL (most files), or unreadable
  struct Probe {
    const char* function;
    const std::optional<uint64_t>& offset;
    uint64_t size;
    bpf_program* entry;
  };
  const Probe probes[] = {{"SSL_read", found->ssl_read, found->ssl_read_size, programs_.read_enter},
                          {"SSL_read_ex", found->ssl_read_ex, found->ssl_read_ex_size, programs_.read_ex_enter},
                          {"SSL_write", found->ssl_write, found->ssl_write_size, programs_.write_enter},
                          {"SSL_write_ex", found->ssl_write_ex, found->ssl_write_ex_size, programs_.write_ex_enter}};
  std::vector<ProbeLink> links;
  std::string hooked;
  const int attach_pid = options_.only_pids.empty() ? -1 : static_cast<int>(pid);
  for (const Probe& p : probes) {
    if (!p.offset) continue;
    const auto offset = static_cast<size_t>(*p.offset);
    // Two emulated instructions when the code has them (no single step, see
    // probe_sites.h); else the function's entry and a return probe.
    std::optional<ProbeSites> sites;
    if (options_.emulated_sites && programs_.exit_site != nullptr) sites = SitesOf(path, offset, p.size);
    ProbeLink entry = AttachAt(p.entry, false, attach_pid, path, offset + (sites ? sites->entry : 0));
    const int entry_err = entry ? 0 : errno;
    ProbeLink ret = sites ? AttachAt(programs_.exit_site, false, attach_pid, path, offset + sites->exit)
                      : AttachAt(programs_.exit, true, attach_pid, path, offset);
    if (!entry || !ret) {
      ++counters_.attach_failures;
      spdlog::warn("TLS: attaching to {} in {} (pid {}, {}) failed: {}; its TLS traffic stays invisible", p.function,
                   m.path, pid, Comm(options_.proc_root, pid), std::strerror(entry_err != 0 ? entry_err : errno));
      return;  // the links made so far detach here
    }
    links.push_back(std::move(entry));
    links.push_back(std::move(ret));
    absl::StrAppend(&hooked, hooked.empty() ? "" : ", ", p.function);
    if (sites) {
      absl::StrAppend(&hooked, " +", sites->entry, "/+", sites->exit);
      ++counters_.functions_on_emulated_sites;
    }
  }
  counters_.probes_attached += links.size();
  ++counters_.files_probed;
  for (auto& l : links) links_.push_back(std::move(l));
  probed_files_.push_back(m.path);
  spdlog::info("TLS: probing {} ({}){} pid {} ({})", m.path, hooked,
               attach_pid < 0 ? ", first seen in" : " in", pid, Comm(options_.proc_root, pid));
}

std::optional<ProbeSites> TlsAttacher::SitesOf(const std::string& path, uint64_t offset, uint64_t size) {
  if (size == 0 || size > (1u << 16)) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> code(size);
  in.seekg(static_cast<std::streamoff>(offset));
  if (!in.read(reinterpret_cast<char*>(code.data()), static_cast<std::streamsize>(size))) return std::nullopt;
  return FindProbeSites(code, offset);
}

TlsAttachCounters TlsAttacher::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

std::vector<std::string> TlsAttacher::probed_files() const {
  std::lock_guard<std::mutex> lock(mu_);
  return probed_files_;
}

}  // namespace sonde::tls
