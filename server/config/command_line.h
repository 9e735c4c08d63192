#pragma once
// One configuration for sonde-server: every command-line flag is also a key
// of a YAML file (--config FILE; `--data-dir` is `data_dir:`) and a SONDE_*
// environment variable (SONDE_DATA_DIR). Precedence: defaults < file <
// environment < command line. Unknown keys and bad values are start-up
// errors naming the key; --log-level must be a level; --version prints the
// version.
#include <string>

#include <CLI/CLI.hpp>

namespace sonde::server {

// Call after every option is declared and before parsing.
void ConfigureCommandLine(CLI::App& app, const std::string& program, const std::string& version);

// The YAML key and environment variable of a long flag name ("data-dir").
std::string YamlKeyFor(const std::string& flag_name);
std::string EnvVariableFor(const std::string& flag_name);

// CLI11 config formatter for flat YAML mappings: `key: value` or
// `key: [a, b]`; underscores in keys stand for the flag's dashes.
class YamlConfigFormatter : public CLI::Config {
 public:
  std::string to_config(const CLI::App* app, bool default_also, bool write_description,
                        std::string prefix) const override;
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;
};

}  // namespace sonde::server
