#include "tests/testlib/agent_observer.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

namespace sonde::testlib {

MetricsAgent StartMetricsAgent(int port, const TempDir& dir, const std::vector<std::string>& extra_args) {
  MetricsAgent a;
  a.metrics_port = FreeTcpPort();
  if (a.metrics_port == port) a.metrics_port = FreeTcpPort();
  std::vector<std::string> argv = {AgentBinary(), "run", "--no-json", "--no-otlp", "--no-tls", "--port",
                                   std::to_string(port), "--metrics-listen", "127.0.0.1:" + std::to_string(a.metrics_port),
                                   "--ready-file", dir.File("ready")};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  a.process = Subprocess::Start(argv, dir.File("agent.out"), dir.File("agent.err"));
  if (!WaitForFile(dir.File("ready"), std::chrono::seconds(30))) a.error = "agent not ready: " + ReadFile(dir.File("agent.err"));
  return a;
}

std::string MetricsAgent::Scrape() const { return HttpGet(metrics_port, "/metrics"); }

std::string HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    const std::string req = "GET " + path + " HTTP/1.0\r\nHost: localhost\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  const size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

double MetricValue(const std::string& exposition, const std::string& sample) {
  std::istringstream in(exposition);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > sample.size() && line.compare(0, sample.size(), sample) == 0 && line[sample.size()] == ' ') {
      return std::strtod(line.c_str() + sample.size() + 1, nullptr);
    }
  }
  return -1;
}

std::map<int, int> ThreadNiceValues(pid_t pid) { return ThreadStatCounts(pid, 19); }

std::map<int, int> ThreadPolicies(pid_t pid) { return ThreadStatCounts(pid, 41); }

std::map<int, int> ThreadStatCounts(pid_t pid, int field) {
  std::map<int, int> out;
  const std::string task = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(task.c_str());
  if (dir == nullptr) return out;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(task + "/" + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t comm_end = stat.rfind(')');
    if (comm_end == std::string::npos) continue;
    std::istringstream fields(stat.substr(comm_end + 2));  // field 3 (state) onwards
    std::string f;
    for (int i = 3; i <= field && fields >> f; ++i) {
      if (i == field) ++out[std::stoi(f)];
    }
  }
  closedir(dir);
  return out;
}

ProcMemory ReadProcMemory(pid_t pid) {
  ProcMemory m;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t kb = 0;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ls >> key >> kb;
    if (key == "VmRSS:") m.rss_bytes = kb << 10;
    if (key == "VmHWM:") m.peak_rss_bytes = kb << 10;
  }
  return m;
}

double ReadProcCpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  double ticks = 0;
  // Fields after the command: state is #3; utime #14 and stime #15.
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace sonde::testlib
