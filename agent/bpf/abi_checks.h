#pragma once
// Layout of the kernel/user structs as user space relies on it. The structs
// are defined once, in bpf/include/sonde/abi.h; these only pin them. Every
// user-space reader of a BPF map or ring buffer includes this header, so a
// change to abi.h that moves a field fails the build instead of misreading.
#include <cstddef>

#include "sonde/abi.h"

// Socket capture (bpf/socket_trace.bpf.c -> agent/capture).
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

// Profiler (bpf/profile.bpf.c -> agent/profile).
static_assert(sizeof(sonde_profile_key) == 40);
static_assert(sizeof(sonde_profile_config) == 24);
static_assert(sizeof(sonde_profile_new_process) == 16);
static_assert(sizeof(sonde_profile_offcpu_value) == 16);
static_assert(sizeof(sonde_profile_epoch) == 8);

// TCP health (bpf/tcp_health.bpf.c -> agent/tcp).
static_assert(offsetof(sonde_tcp_sock_stats, sock_inode) == 40);
static_assert(offsetof(sonde_tcp_sock_stats, srtt_us) == 104);
static_assert(offsetof(sonde_tcp_sock_stats, role) == 144);
static_assert(offsetof(sonde_tcp_sock_stats, comm) == 152);
static_assert(sizeof(sonde_tcp_sock_stats) == 168);
static_assert(sizeof(sonde_tcp_pair_key) == 40);
static_assert(sizeof(sonde_tcp_pair_stats) == 16);
