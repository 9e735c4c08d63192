#pragma once
// The TCP metrics are written with agent/metrics/prometheus_text.h. These
// names remain only for agent/packet/network_component.cc, which still spells
// the writer tcp::; new code includes prometheus_text.h.
#include "agent/metrics/prometheus_text.h"

namespace sonde::tcp {

using metrics::prometheus::AppendMetricHeader;
using metrics::prometheus::AppendSample;
using metrics::prometheus::Labels;

}  // namespace sonde::tcp
