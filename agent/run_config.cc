#include "agent/run_config.h"

#include <utility>

#include "agent/core/yaml_read.h"

namespace sonde::agent {

#define SONDE_RETURN_IF_ERROR(expr) \
  do {                              \
    absl::Status _st = (expr);      \
    if (!_st.ok()) return _st;      \
  } while (0)

absl::Status LoadOtlpYaml(const YAML::Node& otlp, const std::string& where, otlp::OtlpFlags& flags, bool& enabled) {
  if (!otlp || otlp.IsNull()) return absl::OkStatus();
  const std::string w = where + ": otlp";
  SONDE_RETURN_IF_ERROR(core::CheckYamlKeys(otlp, w,
                                            {"enabled", "grpc_port", "http_port", "bind", "token", "token_file",
                                             "max_body_mib", "max_inflight", "retry_after_s", "http_threads",
                                             "trace_self", "sender_lookup", "tls_cert", "tls_key",
                                             "tls_client_ca", "memory_soft_mib", "memory_hard_mib"}));
  auto& c = flags.config;
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "enabled", w, enabled));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "grpc_port", w, c.grpc_port));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "http_port", w, c.http_port));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "bind", w, flags.bind));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "token", w, c.bearer_token));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "token_file", w, flags.token_file));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "max_body_mib", w, flags.max_body_mib));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "max_inflight", w, c.ingest.max_inflight_requests));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "retry_after_s", w, c.ingest.retry_after_s));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "http_threads", w, c.http_threads));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "trace_self", w, c.trace_self));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "sender_lookup", w, c.ingest.resolve_sender));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "tls_cert", w, c.tls.cert_file));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "tls_key", w, c.tls.key_file));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "tls_client_ca", w, c.tls.client_ca_file));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "memory_soft_mib", w, flags.memory_soft_mib));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(otlp, "memory_hard_mib", w, flags.memory_hard_mib));
  for (const auto& [key, port] : {std::pair{"grpc_port", c.grpc_port}, std::pair{"http_port", c.http_port}}) {
    if (port < -1 || port > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat(w, ".", key, " must be -1 (off), 0 (any) or 1..65535, got ", port));
    }
  }
  return absl::OkStatus();
}

absl::Status LoadProfileYaml(const YAML::Node& profile, const std::string& where, profile::ProfileFlags& flags) {
  if (!profile || profile.IsNull()) return absl::OkStatus();
  const std::string w = where + ": profile";
  SONDE_RETURN_IF_ERROR(core::CheckYamlKeys(profile, w, {"enabled", "hz", "interval_s", "off_cpu", "pids"}));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(profile, "enabled", w, flags.enabled));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(profile, "hz", w, flags.frequency_hz));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(profile, "interval_s", w, flags.drain_interval_s));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(profile, "off_cpu", w, flags.off_cpu));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(profile, "pids", w, flags.pids));
  if (flags.frequency_hz == 0 || flags.frequency_hz > 10000) {
    return absl::InvalidArgumentError(w + ".hz must be 1..10000");
  }
  if (flags.drain_interval_s == 0) return absl::InvalidArgumentError(w + ".interval_s must be at least 1");
  return absl::OkStatus();
}

absl::Status LoadServicesYaml(const YAML::Node& services, const std::string& where,
                              trace::ServiceNamingOptions& options) {
  if (!services || services.IsNull()) return absl::OkStatus();
  const std::string w = where + ": services";
  SONDE_RETURN_IF_ERROR(core::CheckYamlKeys(services, w, {"builtins", "rules"}));
  SONDE_RETURN_IF_ERROR(core::ReadYaml(services, "builtins", w, options.builtins));
  const YAML::Node rules = services["rules"];
  if (!rules || rules.IsNull()) return absl::OkStatus();
  if (!rules.IsSequence()) return absl::InvalidArgumentError(w + ".rules: expected a list");
  options.rules.clear();
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string rw = w + ".rules[" + std::to_string(i) + "]";
    trace::ServiceRule r;
    SONDE_RETURN_IF_ERROR(core::CheckYamlKeys(rules[i], rw, {"name", "exe", "cmdline", "cgroup", "port"}));
    SONDE_RETURN_IF_ERROR(core::ReadYaml(rules[i], "name", rw, r.name));
    SONDE_RETURN_IF_ERROR(core::ReadYaml(rules[i], "exe", rw, r.exe));
    SONDE_RETURN_IF_ERROR(core::ReadYaml(rules[i], "cmdline", rw, r.cmdline));
    SONDE_RETURN_IF_ERROR(core::ReadYaml(rules[i], "cgroup", rw, r.cgroup));
    SONDE_RETURN_IF_ERROR(core::ReadYaml(rules[i], "port", rw, r.port));
    options.rules.push_back(std::move(r));
  }
  return absl::OkStatus();
}

}  // namespace sonde::agent
