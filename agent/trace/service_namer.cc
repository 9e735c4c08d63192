#include "agent/trace/service_namer.h"

#include <unistd.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"

namespace sonde::trace {
namespace {

std::string ReadSmallFile(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary);
  std::string out;
  out.resize(max_bytes);
  in.read(out.data(), static_cast<std::streamsize>(max_bytes));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

bool Search(const std::unique_ptr<std::regex>& re, const std::string& text) {
  return !re || std::regex_search(text, *re);
}

std::string_view Basename(std::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool IsHex(std::string_view s) { return s.find_first_not_of("0123456789abcdef") == std::string_view::npos; }

}  // namespace

CgroupIdentity ParseCgroupIdentity(std::string_view text) {
  CgroupIdentity id;
  // Pod: ".../kubepods-burstable-pod<uid with _>.slice/..." (systemd driver) or
  // ".../kubepods/burstable/pod<uid>/..." (cgroupfs driver).
  if (const size_t kp = text.find("kubepods"); kp != std::string_view::npos) {
    for (size_t at = text.find("pod", kp + 8); at != std::string_view::npos; at = text.find("pod", at + 3)) {
      std::string_view rest = text.substr(at + 3);
      const size_t end = rest.find_first_of("./\n");
      std::string uid(rest.substr(0, end));
      for (char& c : uid) {
        if (c == '_') c = '-';
      }
      if (uid.size() == 36 && uid[8] == '-' && uid[13] == '-') {
        id.pod_uid = uid;
        break;
      }
    }
  }
  // Container: the last 64-hex path element, after an optional runtime prefix
  // ("docker-", "cri-containerd-", "crio-", "libpod-") and before ".scope".
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find_first_of("/\n", pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view part = text.substr(pos, end - pos);
    if (part.ends_with(".scope")) part.remove_suffix(6);
    if (const size_t dash = part.rfind('-'); dash != std::string_view::npos) part = part.substr(dash + 1);
    if (part.size() == 64 && IsHex(part)) id.container_id = std::string(part);
    pos = end + 1;
  }
  return id;
}

absl::StatusOr<std::unique_ptr<ServiceNamer>> ServiceNamer::Create(ServiceNamingOptions options) {
  std::unique_ptr<ServiceNamer> namer(new ServiceNamer(std::move(options)));
  for (size_t i = 0; i < namer->options_.rules.size(); ++i) {
    const ServiceRule& r = namer->options_.rules[i];
    const std::string where = absl::StrCat("services.rules[", i, "]");
    if (r.name.empty()) return absl::InvalidArgumentError(where + ": name is required");
    if (r.exe.empty() && r.cmdline.empty() && r.cgroup.empty() && r.port == 0) {
      return absl::InvalidArgumentError(where + " (" + r.name + "): give exe, cmdline, cgroup or port");
    }
    Compiled c{r, nullptr, nullptr, nullptr};
    for (auto [pattern, out, field] : {std::tuple{&r.exe, &c.exe, "exe"}, std::tuple{&r.cmdline, &c.cmdline, "cmdline"},
                                       std::tuple{&r.cgroup, &c.cgroup, "cgroup"}}) {
      if (pattern->empty()) continue;
      try {
        *out = std::make_unique<std::regex>(*pattern, std::regex::ECMAScript | std::regex::optimize);
      } catch (const std::regex_error& e) {
        return absl::InvalidArgumentError(absl::StrCat(where, ".", field, ": bad regex '", *pattern, "': ", e.what()));
      }
    }
    namer->port_rules_ = namer->port_rules_ || r.port != 0;
    namer->compiled_.push_back(std::move(c));
  }
  return namer;
}

ServiceIdentity ServiceNamer::Name(const ProcessFacts& f, uint16_t server_port) const {
  ServiceIdentity id;
  const CgroupIdentity cg = ParseCgroupIdentity(f.cgroup);
  id.container_id = cg.container_id;
  id.pod_uid = cg.pod_uid;
  for (const Compiled& c : compiled_) {
    if (c.rule.port != 0 && c.rule.port != server_port) continue;
    if (Search(c.exe, f.exe) && Search(c.cmdline, f.cmdline) && Search(c.cgroup, f.cgroup)) {
      id.name = c.rule.name;
      return id;
    }
  }
  if (options_.builtins) {
    // Kong runs OpenResty's nginx: workers are "nginx: worker process" with
    // the comm "nginx", so the executable's path (or the master's command
    // line, -p /usr/local/kong) tells it apart from a plain nginx.
    const bool openresty = f.exe.find("openresty") != std::string::npos;
    const bool kong = f.cmdline.find("kong") != std::string::npos || f.exe.find("kong") != std::string::npos;
    if (openresty || kong) {
      id.name = "kong";
      return id;
    }
    if (f.comm == "nginx" || Basename(f.exe) == "nginx") {
      id.name = "nginx";
      return id;
    }
  }
  id.name = f.comm.empty() ? "unknown" : f.comm;
  return id;
}

ProcessFacts ServiceNamer::ReadFacts(uint32_t pid, std::string_view comm) const {
  ProcessFacts f;
  f.comm = std::string(comm);
  if (!options_.read_proc) return f;
  const std::string base = absl::StrCat(options_.proc_root, "/", pid);
  char exe[4096];
  const ssize_t n = readlink((base + "/exe").c_str(), exe, sizeof exe - 1);
  if (n > 0) f.exe.assign(exe, static_cast<size_t>(n));
  f.cmdline = ReadSmallFile(base + "/cmdline", 4096);
  for (char& c : f.cmdline) {
    if (c == '\0') c = ' ';
  }
  while (!f.cmdline.empty() && f.cmdline.back() == ' ') f.cmdline.pop_back();
  f.cgroup = ReadSmallFile(base + "/cgroup", 16 * 1024);
  return f;
}

const ServiceIdentity& ServiceNamer::Resolve(uint32_t pid, std::string_view comm, uint16_t server_port,
                                             uint64_t now_ns) {
  const uint64_t key = (static_cast<uint64_t>(pid) << 16) | (port_rules_ ? server_port : 0);
  if (cache_.size() >= kMaxCached && !cache_.contains(key)) cache_.clear();  // dead pids: start over
  auto [it, inserted] = cache_.try_emplace(key);
  Entry& e = it->second;
  if (inserted || e.comm != comm || now_ns - e.resolved_ns >= options_.refresh_ns) {
    e.identity = Name(ReadFacts(pid, comm), server_port);
    e.comm = std::string(comm);
    e.resolved_ns = now_ns;
    ++resolutions_;
  }
  return e.identity;
}

}  // namespace sonde::trace
