#pragma once
// Prometheus text exposition (format 0.0.4) helpers shared by the TCP and
// packet metrics.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sonde::tcp {

using Labels = std::vector<std::pair<std::string_view, std::string>>;

// `# HELP` and `# TYPE` lines.
void AppendMetricHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help);
// `name{k="v",...} value`, label values escaped.
void AppendSample(std::string& out, std::string_view name, const Labels& labels, double value);
void AppendSample(std::string& out, std::string_view name, const Labels& labels, uint64_t value);

}  // namespace sonde::tcp
