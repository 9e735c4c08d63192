#pragma once
// The YAML sections of `sonde-agent run` owned by components without a
// loader of their own: otlp (the receivers' flags) and profile (the CPU
// profiler's flags). Every key mirrors a flag (docs/configuration.md).
#include <string>

#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "agent/otlp/cli.h"
#include "agent/profile/profile_component.h"
#include "agent/trace/service_namer.h"

namespace sonde::agent {

// otlp: {enabled, grpc_port, http_port, bind, token, token_file, max_body_mib,
//        max_inflight, retry_after_s, http_threads, trace_self, sender_lookup,
//        tls_cert, tls_key, tls_client_ca}
// `enabled` is the inverse of --no-otlp.
absl::Status LoadOtlpYaml(const YAML::Node& otlp, const std::string& where, otlp::OtlpFlags& flags, bool& enabled);

// profile: {enabled, hz, interval_s, off_cpu, pids}
absl::Status LoadProfileYaml(const YAML::Node& profile, const std::string& where, profile::ProfileFlags& flags);

// services: {builtins: bool, rules: [{name, exe, cmdline, cgroup, port}, ...]}
// (regexes are checked when the namer is created).
absl::Status LoadServicesYaml(const YAML::Node& services, const std::string& where,
                              trace::ServiceNamingOptions& options);

}  // namespace sonde::agent
