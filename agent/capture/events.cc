#include "agent/capture/event_source.h"

namespace sonde::capture {

const sonde_event_header* AsHeader(RawEvent ev) {
  if (ev.size() < sizeof(sonde_event_header)) return nullptr;
  const auto* h = reinterpret_cast<const sonde_event_header*>(ev.data());
  if (h->size > ev.size() || h->size < sizeof(sonde_event_header)) return nullptr;
  return h;
}

const sonde_data_event* AsDataEvent(RawEvent ev) {
  const auto* h = AsHeader(ev);
  if (h == nullptr || h->type != SONDE_EVENT_DATA || ev.size() < sizeof(sonde_data_event)) return nullptr;
  const auto* d = reinterpret_cast<const sonde_data_event*>(ev.data());
  if (sizeof(sonde_data_event) + d->payload_len > ev.size() || d->payload_len > SONDE_PAYLOAD_MAX)
    return nullptr;
  return d;
}

const sonde_conn_event* AsConnEvent(RawEvent ev) {
  const auto* h = AsHeader(ev);
  if (h == nullptr || (h->type != SONDE_EVENT_CONN_OPEN && h->type != SONDE_EVENT_CONN_CLOSE) ||
      ev.size() < sizeof(sonde_conn_event))
    return nullptr;
  return reinterpret_cast<const sonde_conn_event*>(ev.data());
}

}  // namespace sonde::capture
