#include "server/config/command_line.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <sstream>

namespace sonde::server {

std::string YamlKeyFor(const std::string& flag_name) {
  std::string key = flag_name;
  std::replace(key.begin(), key.end(), '-', '_');
  return key;
}

std::string EnvVariableFor(const std::string& flag_name) {
  std::string var = "SONDE_";
  for (char c : flag_name) var.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  return var;
}

std::vector<CLI::ConfigItem> YamlConfigFormatter::from_config(std::istream& input) const {
  YAML::Node root;
  try {
    root = YAML::Load(input);
  } catch (const YAML::Exception& e) {
    throw CLI::ConversionError("--config", e.what());
  }
  std::vector<CLI::ConfigItem> parsed;
  if (!root || root.IsNull()) return parsed;
  if (!root.IsMap()) throw CLI::ConversionError("--config", "the file is not a mapping of flag names to values");
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    CLI::ConfigItem item;
    item.name = key;
    std::replace(item.name.begin(), item.name.end(), '_', '-');
    // CLI11 applies the file before the environment and lets the first
    // value stand: leave out keys the environment sets, so that it wins.
    if (std::getenv(EnvVariableFor(item.name).c_str()) != nullptr) continue;
    const YAML::Node& v = kv.second;
    if (v.IsSequence()) {
      for (const auto& e : v) {
        if (!e.IsScalar()) throw CLI::ConversionError(key, "list items must be scalars");
        item.inputs.push_back(e.as<std::string>());
      }
    } else if (v.IsScalar()) {
      item.inputs.push_back(v.as<std::string>());
    } else if (v.IsNull()) {
      item.inputs.push_back("");
    } else {
      throw CLI::ConversionError(key, "a value or a list is expected, not a mapping");
    }
    parsed.push_back(std::move(item));
  }
  return parsed;
}

std::string YamlConfigFormatter::to_config(const CLI::App* app, bool default_also, bool /*write_description*/,
                                           std::string /*prefix*/) const {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const CLI::Option* opt : app->get_options()) {
    if (opt->get_lnames().empty() || !opt->get_configurable()) continue;
    const std::string name = opt->get_lnames().front();
    const auto results = opt->results();
    std::string value = results.empty() ? (default_also ? opt->get_default_str() : "") : results.back();
    if (results.empty() && !default_also) continue;
    out << YAML::Key << YamlKeyFor(name) << YAML::Value << value;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

void ConfigureCommandLine(CLI::App& app, const std::string& program, const std::string& version) {
  app.set_version_flag("--version", program + " " + version);
  for (CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty()) continue;
    const std::string name = opt->get_lnames().front();
    if (name == "help" || name == "version") continue;
    opt->envname(EnvVariableFor(name));
  }
  if (CLI::Option* level = app.get_option_no_throw("--log-level")) {
    level->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  }
  app.config_formatter(std::make_shared<YamlConfigFormatter>());
  app.set_config("--config", "", "YAML file: every flag as a key (--data-dir is data_dir:)");
  app.allow_config_extras(CLI::config_extras_mode::error);
}

}  // namespace sonde::server
