#pragma once
// Command-line flags for the OTLP receivers, shared by every agent command
// that runs them (the pipeline's `run`, and `sonde-agent otlp`, which runs
// the receivers alone and prints what arrives as JSON lines).
#include <atomic>
#include <string>

#include <CLI/CLI.hpp>

#include "agent/otlp/receiver.h"

namespace sonde::otlp {

// Options parsed into `config` by AddOtlpFlags; ResolveOtlpFlags turns the
// textual ones (bind list, size in MiB) into the config after parsing.
struct OtlpFlags {
  OtlpConfig config;
  std::string bind = "default";  // comma-separated IPs; "default" = loopback + primary IPv4
  size_t max_body_mib = 64;
  uint64_t memory_soft_mib = 256;  // OTLP memory limiter (memory_limiter.h); 0: off
  uint64_t memory_hard_mib = 0;    // 0: soft + 25 %
  std::string token_file;        // read the bearer token from a file (keeps it out of ps)
};

// --otlp-grpc-port, --otlp-http-port, --otlp-bind, --otlp-token, --otlp-token-file,
// --otlp-max-body-mib, --otlp-max-inflight, --otlp-memory-soft-mib, --otlp-memory-hard-mib,
// --otlp-trace-self, --otlp-no-sender-lookup.
void AddOtlpFlags(CLI::App& app, OtlpFlags& flags);
absl::Status ResolveOtlpFlags(OtlpFlags& flags);

// `sonde-agent otlp`: receivers only; each received span / metrics batch /
// logs batch is printed as one JSON line on stdout until `stop` is set.
CLI::App* AddOtlpSubcommand(CLI::App& app, OtlpFlags& flags);
int RunOtlpSubcommand(OtlpFlags& flags, const std::atomic<bool>& stop);

}  // namespace sonde::otlp
