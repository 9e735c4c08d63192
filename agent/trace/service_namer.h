#pragma once
// Service names for system spans, resolved once per process (and cached),
// never per request. Order: the configured rules (services.rules: by
// executable, command line, cgroup, or the span's server port), then the
// built-ins (Kong/OpenResty -> "kong", nginx -> "nginx"), then the process
// name. The process's container id and Kubernetes pod UID come from its
// cgroup path where present.
#include <cstdint>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace sonde::trace {

// One configured rule; every field given must match (regexes search).
struct ServiceRule {
  std::string name;
  std::string exe;      // regex on /proc/<pid>/exe's target
  std::string cmdline;  // regex on the command line (arguments joined by spaces)
  std::string cgroup;   // regex on /proc/<pid>/cgroup
  uint16_t port = 0;    // the listening port of a server span (clients of that port keep their own name)
};

struct ServiceNamingOptions {
  std::vector<ServiceRule> rules;
  bool builtins = true;            // kong / nginx detection
  bool read_proc = true;           // off for recordings: their pids are not this host's
  std::string proc_root = "/proc";
  uint64_t refresh_ns = 30'000'000'000;  // re-resolve a process this often (pid reuse, exec)
};

// What a process is, as read from /proc.
struct ProcessFacts {
  std::string comm, exe, cmdline, cgroup;
};

// Kubernetes and container identity from a /proc/<pid>/cgroup text:
// kubepods...pod<uid>... and a 64-hex container id (docker, containerd, cri-o).
struct CgroupIdentity {
  std::string pod_uid;       // "3f2a...-..." (dashes restored), "" outside Kubernetes
  std::string container_id;  // 64 hex digits, "" outside containers
};
CgroupIdentity ParseCgroupIdentity(std::string_view cgroup_text);

struct ServiceIdentity {
  std::string name;
  std::string container_id;
  std::string pod_uid;
};

class ServiceNamer {
 public:
  // Rules are checked (regexes compiled) here: an invalid one is an error naming it.
  static absl::StatusOr<std::unique_ptr<ServiceNamer>> Create(ServiceNamingOptions options);

  // The pure decision, for tests and tools.
  ServiceIdentity Name(const ProcessFacts& facts, uint16_t server_port) const;

  // Cached per process (per process and port when port rules exist);
  // `comm` guards against pid reuse, `now_ns` (any monotonic clock) ages entries.
  const ServiceIdentity& Resolve(uint32_t pid, std::string_view comm, uint16_t server_port, uint64_t now_ns);

  const ServiceNamingOptions& options() const { return options_; }
  size_t cached() const { return cache_.size(); }
  uint64_t resolutions() const { return resolutions_; }

 private:
  struct Compiled {
    ServiceRule rule;
    std::unique_ptr<std::regex> exe, cmdline, cgroup;
  };
  struct Entry {
    ServiceIdentity identity;
    std::string comm;
    uint64_t resolved_ns = 0;
  };
  explicit ServiceNamer(ServiceNamingOptions options) : options_(std::move(options)) {}
  ProcessFacts ReadFacts(uint32_t pid, std::string_view comm) const;

  static constexpr size_t kMaxCached = 65536;

  ServiceNamingOptions options_;
  std::vector<Compiled> compiled_;
  bool port_rules_ = false;
  absl::flat_hash_map<uint64_t, Entry> cache_;  // pid << 16 | port (port 0 without port rules)
  uint64_t resolutions_ = 0;
};

}  // namespace sonde::trace
