#pragma once
// Finds every OpenSSL in use on the node and attaches the TLS uprobes of
// bpf/lib/tls.bpf.h to it. A uprobe is placed on a file (inode), not a
// process: once libssl.so.3 is probed, every process that maps it -- running
// now, started later, or loading it later with dlopen -- is covered. So the
// scan only has to find files not seen before: it reads the executable
// mappings of processes (/proc/PID/maps), looks each new file up once by
// device and inode, and probes it when it defines SSL_read/SSL_write (a
// libssl, or a binary with OpenSSL linked in: OpenResty, Kong, Node).
// Processes are scanned at start, new processes every scan interval, and
// every process again every full_scan_every intervals (libraries dlopen'ed
// from a file not seen before).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "agent/tls/probe_sites.h"

// libbpf is kept out of this header: the agent's main also includes pcap,
// whose struct bpf_insn clashes with the kernel's.
struct bpf_program;
struct bpf_link;

namespace sonde::tls {

// The programs of socket_trace.bpf.c that the attacher places (owned by the
// skeleton, which must outlive the attacher).
struct TlsPrograms {
  bpf_program* read_enter = nullptr;      // SSL_read
  bpf_program* read_ex_enter = nullptr;   // SSL_read_ex
  bpf_program* write_enter = nullptr;     // SSL_write
  bpf_program* write_ex_enter = nullptr;  // SSL_write_ex
  bpf_program* exit = nullptr;            // return probe of all four
  bpf_program* exit_site = nullptr;       // the same at an emulated instruction before `ret` (probe_sites.h)
};

struct TlsAttachOptions {
  std::string proc_root = "/proc";
  uint32_t self_pid = 0;  // not scanned
  // Non-empty (the capture's --pid list): probes are attached to these
  // processes only, so no other process pays for a trap its calls would be
  // filtered out after anyway. Empty: file-wide probes, every process.
  std::vector<uint32_t> only_pids;
  // Probe emulated instructions inside the functions when the code allows
  // (probe_sites.h: no single-step trap); false: entry + return probes always.
  bool emulated_sites = true;
  // Attach as uprobe_multi links (agent/bpf/uprobe_multi.h) instead of
  // through the uprobe PMU, which wants CAP_SYS_ADMIN on kernels with the
  // CVE-2025-38466 fix. The programs must have been loaded for it.
  bool uprobe_multi = false;
  std::chrono::milliseconds scan_interval{1000};
  uint32_t full_scan_every = 10;  // every Nth scan re-reads every process
};

struct TlsAttachCounters {
  uint64_t scans = 0;
  uint64_t processes_scanned = 0;
  uint64_t files_examined = 0;   // distinct executable files looked up
  uint64_t files_probed = 0;     // files with OpenSSL and every probe attached
  uint64_t probes_attached = 0;  // uprobes + uretprobes
  uint64_t attach_failures = 0;  // files with OpenSSL where an attach failed
  uint64_t functions_on_emulated_sites = 0;  // probed without a single step (probe_sites.h)
};

// One executable, file-backed mapping of /proc/PID/maps.
struct FileMapping {
  std::string device;  // "fd:01"
  uint64_t inode = 0;
  std::string path;
};

// Executable file-backed mappings of a /proc/PID/maps text, each file once.
// Anonymous, special ("[vdso]") and deleted mappings are left out.
std::vector<FileMapping> ParseExecutableFileMappings(std::string_view maps_text);

class TlsAttacher {
 public:
  // Scans once before returning (so what runs now is probed when capture
  // starts), then keeps scanning on a thread of its own.
  static std::unique_ptr<TlsAttacher> Start(const TlsPrograms& programs, TlsAttachOptions options);
  ~TlsAttacher();  // stops the thread, detaches every probe
  TlsAttacher(const TlsAttacher&) = delete;
  TlsAttacher& operator=(const TlsAttacher&) = delete;

  // One scan now (new processes, or all), on the caller's thread.
  void Scan(bool all_processes);
  TlsAttachCounters counters() const;
  // Files probed so far (paths as first seen).
  std::vector<std::string> probed_files() const;

 private:
  TlsAttacher(const TlsPrograms& programs, TlsAttachOptions options);
  void Loop();
  void ExamineFile(uint32_t pid, const FileMapping& m);
  static std::optional<ProbeSites> SitesOf(const std::string& path, uint64_t offset, uint64_t size);

  TlsPrograms programs_;
  TlsAttachOptions options_;
  mutable std::mutex mu_;  // guards everything below
  // (device, inode, pid): pid 0 for file-wide probes, the process with only_pids.
  std::set<std::tuple<std::string, uint64_t, uint32_t>> examined_;
  std::unordered_set<uint32_t> scanned_pids_;
  // One attached uprobe, whichever way it was placed (defined in the .cc: libbpf stays out of here).
  struct AttachedProbe;
  using ProbeLink = std::unique_ptr<AttachedProbe>;
  // Places `program` at `offset` of `path`: the uprobe PMU or a uprobe_multi
  // link as options_ say; nullptr with errno set on failure.
  ProbeLink AttachAt(bpf_program* program, bool return_probe, int pid, const std::string& path, uint64_t offset) const;
  std::vector<ProbeLink> links_;
  std::vector<std::string> probed_files_;
  TlsAttachCounters counters_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace sonde::tls
