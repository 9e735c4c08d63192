#include "agent/metrics/prometheus_text.h"

#include <fmt/format.h>

#include <cmath>
#include <iterator>

namespace sonde::metrics::prometheus {
namespace {

// k="v",k="v" (no braces).
void AppendLabelPairs(std::string& out, const Labels& labels) {
  bool first = true;
  for (const auto& [name, value] : labels) {
    if (!first) out += ',';
    first = false;
    out.append(name).append("=\"");
    AppendEscapedLabelValue(out, value);
    out += '"';
  }
}

void AppendLabels(std::string& out, const Labels& labels) {
  if (labels.empty()) return;
  out += '{';
  AppendLabelPairs(out, labels);
  out += '}';
}

void AppendInteger(std::string& out, uint64_t value) { fmt::format_to(std::back_inserter(out), "{}", value); }

// `name{pairs} ` where pairs are already rendered (histograms reuse them).
void AppendSeriesName(std::string& out, std::string_view name, std::string_view suffix,
                      std::string_view pairs) {
  out.append(name).append(suffix);
  if (!pairs.empty()) out.append("{").append(pairs).append("}");
  out += ' ';
}

}  // namespace

void AppendMetricHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help);
  out.append("\n# TYPE ").append(name).append(" ").append(type).append("\n");
}

void AppendSample(std::string& out, std::string_view name, const Labels& labels, uint64_t value) {
  out.append(name);
  AppendLabels(out, labels);
  out += ' ';
  AppendInteger(out, value);
  out += '\n';
}

void AppendSample(std::string& out, std::string_view name, const Labels& labels, double value) {
  out.append(name);
  AppendLabels(out, labels);
  out += ' ';
  AppendNumber(out, value);
  out += '\n';
}

void AppendHistogram(std::string& out, std::string_view name, const Labels& labels,
                     std::span<const double> upper_bounds, std::span<const uint64_t> counts, double sum) {
  std::string pairs;  // rendered once for the bounds + 3 lines of the series
  AppendLabelPairs(pairs, labels);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= upper_bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    out.append(name).append("_bucket{").append(pairs).append(pairs.empty() ? "le=\"" : ",le=\"");
    if (i < upper_bounds.size()) {
      AppendNumber(out, upper_bounds[i]);
    } else {
      out.append("+Inf");
    }
    out.append("\"} ");
    AppendInteger(out, cumulative);
    out += '\n';
  }
  AppendSeriesName(out, name, "_sum", pairs);
  AppendNumber(out, sum);
  out += '\n';
  AppendSeriesName(out, name, "_count", pairs);
  AppendInteger(out, cumulative);
  out += '\n';
}

void AppendCounter(std::string& out, std::string_view name, std::string_view help, uint64_t value,
                   const Labels& labels) {
  AppendMetricHeader(out, name, "counter", help);
  AppendSample(out, name, labels, value);
}

void AppendGauge(std::string& out, std::string_view name, std::string_view help, double value) {
  AppendMetricHeader(out, name, "gauge", help);
  AppendSample(out, name, {}, value);
}

void AppendEscapedLabelValue(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  AppendEscapedLabelValue(out, value);
  return out;
}

void AppendNumber(std::string& out, double value) {
  // fmt would write "nan" / "inf"; the exposition format spells them so.
  if (std::isnan(value)) {
    out += "NaN";
  } else if (std::isinf(value)) {
    out += value > 0 ? "+Inf" : "-Inf";
  } else {
    fmt::format_to(std::back_inserter(out), "{}", value);
  }
}

}  // namespace sonde::metrics::prometheus
