#pragma once
// JSON form of raw capture events (`sonde-agent capture --json`).
#include <nlohmann/json.hpp>

#include "agent/capture/event_source.h"

namespace sonde::capture {

// `realtime_offset_ns` converts monotonic timestamps to Unix time (0: omit).
// Payload bytes print as text with non-printable bytes as \xNN.
nlohmann::json EventToJson(RawEvent ev, uint64_t realtime_offset_ns);
std::string EscapePayload(const uint8_t* data, size_t len);

}  // namespace sonde::capture
