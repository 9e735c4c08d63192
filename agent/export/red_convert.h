#pragma once
// metrics::RedWindow (the agent's 1 s RED windows) -> sonde.v1.RedWindow.
#include <vector>

#include "agent/metrics/red.h"
#include "sonde/v1/metrics.pb.h"

namespace sonde::exporter {

std::vector<v1::RedWindow> RedWindowToProto(const metrics::RedWindow& window);

}  // namespace sonde::exporter
