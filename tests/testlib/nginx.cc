#include "tests/testlib/nginx.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>

namespace sonde::testlib {

std::string NginxBinary() {
  for (const char* p : {"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"}) {
    if (access(p, X_OK) == 0) return p;
  }
  return "";
}

Nginx::Nginx(const std::string& http_block, int port, int worker_processes, int worker_connections) {
  const std::string block = std::regex_replace(http_block, std::regex("\\{DIR\\}"), dir_.path());
  {
    std::ofstream conf(dir_.File("nginx.conf"));
    conf << "daemon off;\nmaster_process on;\nworker_processes " << worker_processes << ";\n"
         << "pid " << dir_.File("nginx.pid") << ";\n"
         << "error_log " << dir_.File("error.log") << " warn;\n"
         << "worker_rlimit_nofile " << std::min(worker_connections + 256, 20000) << ";\n"
         << "events { worker_connections " << worker_connections << "; }\n"
         << "http {\n"
         << "  access_log " << dir_.File("access.log") << ";\n"
         << "  client_body_temp_path " << dir_.File("body") << ";\n"
         << "  proxy_temp_path " << dir_.File("proxy") << ";\n"
         << "  fastcgi_temp_path " << dir_.File("fastcgi") << ";\n"
         << "  uwsgi_temp_path " << dir_.File("uwsgi") << ";\n"
         << "  scgi_temp_path " << dir_.File("scgi") << ";\n"
         << block << "\n}\n";
  }
  process_ = Subprocess::Start({NginxBinary(), "-p", dir_.path(), "-c", dir_.File("nginx.conf")},
                               dir_.File("stdout.log"), dir_.File("stderr.log"));
  ok_ = WaitForTcpPort("127.0.0.1", port, std::chrono::seconds(10));
}

Nginx::~Nginx() { process_.Stop(); }

}  // namespace sonde::testlib
