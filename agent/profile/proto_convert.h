#pragma once
// Drain() output -> sonde.v1.ProfileBatch (proto/sonde/v1/profile.proto), the
// exporter's unit. One FoldedStack message per (process, thread, slot, stack).
#include <vector>

#include "agent/profile/folded.h"
#include "sonde/v1/profile.pb.h"

namespace sonde::profile {

// Appends the stacks of windows to batch. Off-CPU values are converted from
// microseconds to the proto's nanoseconds and count is the number of blocks;
// on-CPU count == value == samples.
void AppendToBatch(const std::vector<ProfileWindow>& windows, sonde::v1::ProfileBatch& batch);

sonde::v1::ProfileBatch ToProfileBatch(const std::vector<ProfileWindow>& windows);

}  // namespace sonde::profile
