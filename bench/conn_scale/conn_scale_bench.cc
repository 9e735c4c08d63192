// Connection scale on live traffic, as an operator would see it: nginx
// (`return 200`) with N concurrent keep-alive connections from client
// processes (each connection one request in flight at a time, for the
// duration), watched by the sonde-agent binary at its default settings. Per
// N prints: sockets tracked, agent peak RSS, RSS 5 s after the clients
// exited (closing nothing: the kernel closes their sockets), seconds until
// the tracked count was back to the baseline, kernel lost events, records,
// req/s. Needs root (BPF).
//   conn_scale_bench [--connections 2000,8000,20000,50000] [--duration 10]
//                    [--rate 32000] [--agent build/agent/sonde-agent] [--agent-arg X]...
// --rate: requests per second over all connections, paced (0: closed loop,
// as fast as nginx answers).
//   conn_scale_bench --soak-minutes 30 --connections 20000
//     one size, load for the whole soak, RSS and tracked printed every minute
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/testlib/agent_observer.h"
#include "tests/testlib/keepalive_load.h"
#include "tests/testlib/nginx.h"
#include "tests/testlib/process.h"

namespace {

using sonde::testlib::MetricValue;

struct Args {
  std::vector<int> connections = {2000, 8000, 20000, 50000};
  double duration_s = 10;
  double rate = 32'000;  // requests/s over all connections (0: as fast as nginx answers)
  double soak_minutes = 0;
  bool timeline = false;  // --timeline: the agent's figures every 0.5 s during the load
  std::string agent = sonde::testlib::AgentBinary();
  std::vector<std::string> agent_args;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

struct Row {
  int connections = 0;
  double agent_us_per_request = 0;  // agent CPU during the load (connects included) per request
  double tracked = 0, peak_rss_mb = 0, peak_heap_mb = 0, rss_after_mb = 0, back_s = -1, lost = 0, records = 0, rps = 0;
  double lost_during_load = 0;  // kernel lost events before the clients exited
  uint64_t requests = 0, failed = 0;
  std::string released;  // connections released, by reason
};

Row RunOne(const Args& a, int n, double duration_s, bool soak) {
  Row row;
  row.connections = n;
  const int port = sonde::testlib::FreeTcpPort();
  const int metrics_port = sonde::testlib::FreeTcpPort();
  sonde::testlib::TempDir dir("sonde-conn-scale-bench");
  std::vector<std::string> argv = {a.agent, "run", "--no-json", "--no-otlp", "--port", std::to_string(port),
                                   "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port),
                                   "--ready-file", dir.File("ready")};
  argv.insert(argv.end(), a.agent_args.begin(), a.agent_args.end());
  auto agent = sonde::testlib::Subprocess::Start(argv, dir.File("agent.out"), dir.File("agent.err"));
  if (!sonde::testlib::WaitForFile(dir.File("ready"), std::chrono::seconds(30))) {
    std::fprintf(stderr, "agent did not start: %s\n", sonde::testlib::ReadFile(dir.File("agent.err")).c_str());
    std::exit(1);
  }
  auto scrape = [&] { return sonde::testlib::HttpGet(metrics_port, "/metrics"); };
  // ~12,000 connections per worker (20,000 files per process at most).
  const int workers = std::max(2, (n + 11'999) / 12'000);
  sonde::testlib::Nginx nginx("access_log off;\nkeepalive_requests 100000000;\nkeepalive_timeout 600s;\n"
                              "server { listen " + std::to_string(port) + " reuseport backlog=65535;\n"
                              "  location / { return 200 \"ok\"; } }\n",
                              port, workers, std::min(19'000, n / workers * 3 / 2 + 1000));
  if (!nginx.ok()) {
    std::fprintf(stderr, "nginx did not start: %s\n", sonde::testlib::ReadFile(nginx.error_log()).c_str());
    std::exit(1);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const double baseline = MetricValue(scrape(), "sonde_agent_open_connections");

  sonde::testlib::KeepAliveLoad load;
  sonde::testlib::KeepAliveLoadOptions lo;
  lo.port = port;
  lo.connections = n;
  lo.processes = std::max(1, (n + 12'499) / 12'500);
  lo.duration_s = duration_s;
  lo.rate = a.rate;
  lo.path = "/scale";
  const double cpu_before = sonde::testlib::ReadProcCpuSeconds(agent.pid());
  if (!load.Start(lo).ok()) std::exit(1);
  const auto start = std::chrono::steady_clock::now();
  if (soak) {
    std::printf("minute  agent_rss_mb  heap_mb  tracked  records  kernel_lost\n");
    for (int minute = 1; Seconds(start) + 60 <= duration_s + 1; ++minute) {
      std::this_thread::sleep_for(std::chrono::seconds(60));
      // RSS before the scrape: rendering /metrics for us is transient memory
      // of its own (the page, a few MB with many TCP series).
      const double rss_mb = sonde::testlib::ReadProcMemory(agent.pid()).rss_bytes / 1e6;
      const std::string m = scrape();
      std::printf("%6d  %12.1f  %7.1f  %7.0f  %7.0f  %11.0f\n", minute, rss_mb,
                  MetricValue(m, "sonde_agent_heap_bytes") / 1e6, MetricValue(m, "sonde_agent_open_connections"),
                  MetricValue(m, "sonde_agent_records_total"), MetricValue(m, "sonde_agent_kernel_lost_events_total"));
      std::fflush(stdout);
    }
  }
  // Heap in use at its peak (the agent's own jemalloc figure), sampled.
  std::atomic<bool> sampling{true};
  std::thread sampler([&] {
    while (sampling.load()) {
      const std::string m = scrape();
      row.peak_heap_mb = std::max(row.peak_heap_mb, MetricValue(m, "sonde_agent_heap_bytes") / 1e6);
      if (a.timeline) {
        std::printf("  t=%5.1f s tracked %7.0f heap %6.1f MB rss %6.1f MB lost %7.0f records %8.0f\n", Seconds(start),
                    MetricValue(m, "sonde_agent_open_connections"), MetricValue(m, "sonde_agent_heap_bytes") / 1e6,
                    MetricValue(m, "sonde_agent_resident_bytes") / 1e6,
                    MetricValue(m, "sonde_agent_kernel_lost_events_total"), MetricValue(m, "sonde_agent_records_total"));
        std::fflush(stdout);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  });
  sonde::testlib::KeepAliveLoadResult r;
  if (!load.WaitDone(duration_s + 300, &r).ok()) std::fprintf(stderr, "load did not finish\n");
  sampling = false;
  sampler.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the agent drains
  row.agent_us_per_request =
      r.requests > 0 ? (sonde::testlib::ReadProcCpuSeconds(agent.pid()) - cpu_before) * 1e6 / r.requests : 0;
  std::string m = scrape();
  row.tracked = MetricValue(m, "sonde_agent_open_connections");
  row.lost_during_load = MetricValue(m, "sonde_agent_kernel_lost_events_total");
  row.requests = r.requests;
  row.failed = r.failed;
  row.rps = r.seconds > 0 ? static_cast<double>(r.requests) / r.seconds : 0;

  const auto exit_start = std::chrono::steady_clock::now();
  load.ExitAll();
  for (int i = 0; i < 300; ++i) {
    const double now = MetricValue(scrape(), "sonde_agent_open_connections");
    if (now >= 0 && now <= baseline) {
      row.back_s = Seconds(exit_start);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, 5.0 - Seconds(exit_start))));
  m = scrape();
  const sonde::testlib::ProcMemory mem = sonde::testlib::ReadProcMemory(agent.pid());
  row.peak_rss_mb = mem.peak_rss_bytes / 1e6;
  row.rss_after_mb = mem.rss_bytes / 1e6;
  row.lost = MetricValue(m, "sonde_agent_kernel_lost_events_total");
  row.records = MetricValue(m, "sonde_agent_records_total");
  for (const char* reason : {"close", "socket_closed", "replaced", "idle_timeout", "socket_gone", "process_exited",
                             "unclaimed", "memory_ceiling"}) {
    const double count = MetricValue(m, std::string("sonde_agent_connections_released_total{reason=\"") + reason + "\"}");
    if (count > 0) {
      row.released += std::string(row.released.empty() ? "" : ", ") + reason + " " +
                      std::to_string(static_cast<long long>(count));
    }
  }
  agent.Stop();
  return row;
}

}  // namespace

int main(int argc, char** argv) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "needs root (BPF)\n");
    return 1;
  }
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (arg == "--connections") {
      a.connections.clear();
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) a.connections.push_back(std::atoi(item.c_str()));
    } else if (arg == "--duration") {
      a.duration_s = std::atof(next().c_str());
    } else if (arg == "--rate") {
      a.rate = std::atof(next().c_str());
    } else if (arg == "--soak-minutes") {
      a.soak_minutes = std::atof(next().c_str());
    } else if (arg == "--timeline") {
      a.timeline = true;
    } else if (arg == "--agent") {
      a.agent = next();
    } else if (arg == "--agent-arg") {
      a.agent_args.push_back(next());
    } else {
      std::fprintf(stderr, "unknown argument %s\n", arg.c_str());
      return 2;
    }
  }
  if (a.soak_minutes > 0) {
    const Row r = RunOne(a, a.connections.front(), a.soak_minutes * 60, /*soak=*/true);
    std::printf("soak %d connections, %.0f min: %.0f req/s, peak RSS %.1f MB, RSS after close %.1f MB\n",
                r.connections, a.soak_minutes, r.rps, r.peak_rss_mb, r.rss_after_mb);
    return 0;
  }
  std::printf("| connections | sockets tracked | agent peak RSS | peak heap | RSS 5 s after close | back to baseline | "
              "kernel lost events | records | req/s | agent CPU/req |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (int n : a.connections) {
    const Row r = RunOne(a, n, a.duration_s, /*soak=*/false);
    std::printf("| %d | %.0f | %.1f MB | %.1f MB | %.1f MB | %s | %.0f | %.0f | %.0f | %.1f us |\n", r.connections, r.tracked,
                r.peak_rss_mb, r.peak_heap_mb, r.rss_after_mb,
                r.back_s >= 0 ? (std::to_string(r.back_s).substr(0, 4) + " s").c_str() : "not in 30 s", r.lost,
                r.records, r.rps, r.agent_us_per_request);
    std::printf("  released: %s; kernel lost during the load %.0f, when the clients exited %.0f\n",
                r.released.c_str(), r.lost_during_load, r.lost - r.lost_during_load);
    if (r.failed != 0) std::printf("  (%llu client connections failed)\n", static_cast<unsigned long long>(r.failed));
    std::fflush(stdout);
  }
  return 0;
}
