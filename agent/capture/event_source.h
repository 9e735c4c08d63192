#pragma once
// Where socket events come from: the live BPF ring buffer, or a recorded file.
// Every later stage consumes this interface only, so the whole user-space
// pipeline runs without a kernel from a recording.
#include <cstdint>
#include <functional>
#include <span>

#include "absl/status/status.h"
#include "sonde/abi.h"

namespace sonde::capture {

// One raw ring-buffer record: starts with sonde_event_header. Valid only for
// the duration of the callback.
using RawEvent = std::span<const uint8_t>;
using EventCallback = std::function<void(RawEvent)>;

struct SourceCounters {
  uint64_t events = 0;          // records delivered
  uint64_t malformed = 0;       // records too short / bad size (dropped, counted)
  uint64_t kernel_lost = 0;     // sum of the kernel's lost-event counters
  uint64_t ignored_sockets = 0; // sockets the kernel was told to stop capturing
};

class EventSource {
 public:
  virtual ~EventSource() = default;
  // Deliver available events, waiting at most timeout_ms for the first.
  // Returns OutOfRange at the end of a recording, other errors on failure.
  virtual absl::Status Poll(int timeout_ms, const EventCallback& on_event) = 0;
  virtual SourceCounters counters() const = 0;
  // A socket whose bytes are of no use (no protocol claimed it, TLS
  // ciphertext): a live source stops capturing it; recordings ignore this.
  virtual void IgnoreSocket(uint64_t /*sock_id*/) {}
};

// Typed views over a RawEvent; nullptr when the record is not of that type or
// too short. The payload of a data event is payload_len bytes after the struct.
const sonde_event_header* AsHeader(RawEvent ev);
const sonde_data_event* AsDataEvent(RawEvent ev);
const sonde_conn_event* AsConnEvent(RawEvent ev);

}  // namespace sonde::capture
