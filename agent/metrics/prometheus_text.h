#pragma once
// Prometheus text exposition (format 0.0.4): the one writer behind every
// collector of the agent's /metrics (self metrics, RED, TCP health, packets,
// OTLP receivers). Callers choose names, help texts and label sets; this
// module owns the syntax: HELP/TYPE lines, label escaping, number formatting
// and the cumulative series of a histogram.
//
//   AppendMetricHeader(out, "sonde_x_total", "counter", "Things seen.");
//   AppendSample(out, "sonde_x_total", {{"reason", "budget"}}, n);
//
// Every sample of a metric follows its header: write one metric's samples
// before the next header.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sonde::metrics::prometheus {

// (name, value) in output order; values are escaped when written.
using Labels = std::vector<std::pair<std::string_view, std::string>>;

// `# HELP name help` and `# TYPE name type` (counter, gauge, histogram, summary).
void AppendMetricHeader(std::string& out, std::string_view name, std::string_view type,
                        std::string_view help);

// `name{k="v",...} value`; no braces without labels.
void AppendSample(std::string& out, std::string_view name, const Labels& labels, uint64_t value);
void AppendSample(std::string& out, std::string_view name, const Labels& labels, double value);

// One histogram series: `name_bucket{labels,le="bound"}` with cumulative
// counts for each upper bound and +Inf, then `name_sum` and `name_count`.
// `counts` holds one (non-cumulative) count per bound plus the +Inf bucket.
void AppendHistogram(std::string& out, std::string_view name, const Labels& labels,
                     std::span<const double> upper_bounds, std::span<const uint64_t> counts, double sum);

// A metric with a single series, header included.
void AppendCounter(std::string& out, std::string_view name, std::string_view help, uint64_t value,
                   const Labels& labels = {});
void AppendGauge(std::string& out, std::string_view name, std::string_view help, double value);

// Label value escaping: backslash, double quote and newline.
void AppendEscapedLabelValue(std::string& out, std::string_view value);
std::string EscapeLabelValue(std::string_view value);

// Sample values and `le` bounds: integers as integers, other numbers in the
// shortest form that reads back exactly ("0.005", "2.5", "1").
void AppendNumber(std::string& out, double value);

}  // namespace sonde::metrics::prometheus
