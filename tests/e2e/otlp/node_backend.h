#pragma once
// The Node.js backend shared by the OTLP e2e tests (tests/e2e/otlp/node/):
// an HTTP service instrumented with @opentelemetry/sdk-node + http
// instrumentation, exporting OTLP with the exporter named by EXPORTER
// (grpc | proto | proto-gzip | http). Targets including this header define
// SONDE_OTLP_NODE_SRC (the committed sources) and SONDE_OTLP_NODE_DIR (the
// copy in the build tree where node_modules is installed).
#include <unistd.h>

#include <string>

#include "tests/testlib/process.h"

namespace sonde::otlp::e2e {

// npm ci of the committed lockfile into the build tree, once. Serialised with
// flock so that test binaries started in parallel do not install over each other.
inline bool InstallNodeModules(std::string* why) {
  const std::string dir = SONDE_OTLP_NODE_DIR;
  const std::string marker = "/node_modules/@opentelemetry/sdk-node/package.json";
  if (access((dir + marker).c_str(), F_OK) == 0) return true;
  int code = 0;
  testlib::RunCommand({"mkdir", "-p", dir}, &code);
  for (const char* f : {"package.json", "package-lock.json", "backend.js"}) {
    testlib::RunCommand({"cp", std::string(SONDE_OTLP_NODE_SRC) + "/" + f, dir + "/" + f}, &code);
  }
  std::string out = testlib::RunCommand(
      {"sh", "-c",
       "cd '" + dir + "' && flock .npm-install.lock sh -c '[ -f ." + marker +
           " ] || npm ci --no-audit --no-fund --loglevel=error' 2>&1"},
      &code);
  if (code != 0) *why = "npm ci failed: " + out;
  return code == 0;
}

// Shell command running the backend on 127.0.0.1:port, exporting to
// otlp_endpoint ("http://127.0.0.1:PORT") with the given exporter.
inline std::string NodeBackendCommand(const std::string& exporter, const std::string& otlp_endpoint,
                                      int port) {
  return "cd '" + std::string(SONDE_OTLP_NODE_DIR) + "' && EXPORTER=" + exporter +
         " OTLP_ENDPOINT=" + otlp_endpoint + " PORT=" + std::to_string(port) + " exec node backend.js";
}

}  // namespace sonde::otlp::e2e
