#pragma once
// Layout of the kernel/user structs as user space relies on it. The structs
// are defined once, in bpf/include/sonde/abi.h; these only pin them.
#include <cstddef>

#include "sonde/abi.h"

static_assert(sizeof(sonde_tuple) == 40);
static_assert(sizeof(sonde_event_header) == 48);
static_assert(offsetof(sonde_data_event, sock_id) == 48);
static_assert(offsetof(sonde_data_event, tuple) == 56);
static_assert(offsetof(sonde_data_event, bytes) == 104);
static_assert(offsetof(sonde_data_event, payload) == 120);
static_assert(sizeof(sonde_data_event) == 120);
static_assert(sizeof(sonde_conn_event) == 128);
static_assert(sizeof(sonde_filter_config) == 16);
static_assert(sizeof(sonde_sock_state) == 48);
static_assert((SONDE_PAYLOAD_MAX & (SONDE_PAYLOAD_MAX - 1)) == 0, "payload max must be a power of two");
