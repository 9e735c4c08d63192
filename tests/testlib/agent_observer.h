#pragma once
// Looking at a running sonde-agent from outside, as an operator would: its
// Prometheus /metrics and its memory in /proc.
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tests/testlib/process.h"

namespace sonde::testlib {

// The sonde-agent binary on one port's traffic (run --no-json --no-otlp
// --no-tls --port P), its /metrics on a free port, started and ready (its
// ready file), or `error` says why not.
struct MetricsAgent {
  Subprocess process;
  int metrics_port = 0;
  std::string error;
  std::string Scrape() const;
};
MetricsAgent StartMetricsAgent(int port, const TempDir& dir, const std::vector<std::string>& extra_args = {});

// GET http://127.0.0.1:<port><path>; the body, or "" on failure.
std::string HttpGet(int port, const std::string& path);

// The value of one sample of a Prometheus text exposition, e.g.
// "sonde_agent_open_connections" or
// "sonde_agent_connections_released_total{reason=\"close\"}"; -1 if absent.
double MetricValue(const std::string& exposition, const std::string& sample);

struct ProcMemory {
  uint64_t rss_bytes = 0;       // VmRSS
  uint64_t peak_rss_bytes = 0;  // VmHWM
};
ProcMemory ReadProcMemory(pid_t pid);

// How many of the process's threads run at each nice value (nice -> count).
std::map<int, int> ThreadNiceValues(pid_t pid);
// How many of its threads have each scheduling policy (field 41: 0 SCHED_OTHER, 5 SCHED_IDLE).
std::map<int, int> ThreadPolicies(pid_t pid);
// How many of its threads have each value of /proc/<pid>/task/*/stat field `field` (1-based, >= 3).
std::map<int, int> ThreadStatCounts(pid_t pid, int field);

// CPU time (user + system) the process has used, in seconds.
double ReadProcCpuSeconds(pid_t pid);

}  // namespace sonde::testlib
