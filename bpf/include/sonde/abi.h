/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every struct and enum that crosses the kernel/user boundary, and nothing else.
 * Plain C with fixed-width types and explicit padding, included by the BPF
 * programs (with vmlinux.h) and by user space (with <linux/types.h>). Enum
 * values are fixed and never reused. User space adds static_asserts on sizes;
 * nothing here is mirrored anywhere.
 */
#ifndef SONDE_ABI_H
#define SONDE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define SONDE_COMM_LEN 16
#define SONDE_ADDR_LEN 16 /* IPv4 in the first 4 bytes, IPv6 uses all 16 */

/* Payload capture: first N bytes of each call. N is set at load time. */
#define SONDE_PAYLOAD_DEFAULT 4096
#define SONDE_PAYLOAD_MAX 16384 /* power of two: the BPF side masks offsets with MAX-1 */
#define SONDE_MAX_IOVECS 16     /* iovecs read per readv/writev/sendmsg/recvmsg */
#define SONDE_MAX_MMSG 16       /* messages reported per sendmmsg/recvmmsg (one event each; the rest
                                   count as SONDE_DROP_MMSG_EXCESS) */

enum sonde_event_type {
  SONDE_EVENT_DATA = 1,       /* bytes moved by a socket syscall */
  SONDE_EVENT_CONN_OPEN = 2,  /* connect()/accept() returned, or a TCP state change opened it */
  SONDE_EVENT_CONN_CLOSE = 3, /* close() on a socket fd or TCP_CLOSE state */
};

enum sonde_direction {
  SONDE_DIR_UNKNOWN = 0,
  SONDE_DIR_EGRESS = 1,  /* this process sent the bytes */
  SONDE_DIR_INGRESS = 2, /* this process received the bytes */
};

enum sonde_role {
  SONDE_ROLE_UNKNOWN = 0, /* socket seen first mid-life (late join) */
  SONDE_ROLE_CLIENT = 1,  /* connect() */
  SONDE_ROLE_SERVER = 2,  /* accept() */
};

enum sonde_syscall {
  SONDE_SYS_UNKNOWN = 0,
  SONDE_SYS_READ = 1,
  SONDE_SYS_WRITE = 2,
  SONDE_SYS_READV = 3,
  SONDE_SYS_WRITEV = 4,
  SONDE_SYS_SENDTO = 5,
  SONDE_SYS_RECVFROM = 6,
  SONDE_SYS_SENDMSG = 7,
  SONDE_SYS_RECVMSG = 8,
  SONDE_SYS_SENDMMSG = 9,
  SONDE_SYS_RECVMMSG = 10,
  SONDE_SYS_SENDFILE = 11,
  SONDE_SYS_CONNECT = 12,
  SONDE_SYS_ACCEPT = 13,
  SONDE_SYS_ACCEPT4 = 14,
  SONDE_SYS_CLOSE = 15,
  SONDE_SYS_STATE_CHANGE = 16, /* sock:inet_sock_set_state, not a syscall */
  SONDE_SYS_SSL_READ = 17,     /* plaintext returned by SSL_read / SSL_read_ex (uretprobe) */
  SONDE_SYS_SSL_WRITE = 18,    /* plaintext passed to SSL_write / SSL_write_ex (uretprobe) */
  SONDE_SYS_TLS_START = 19,    /* user space: close marker before a socket's first plaintext
                                  (agent/capture/tls_transition.h), never from the kernel */
};

/* Bits of sonde_data_event.flags */
enum sonde_data_flags {
  SONDE_DATA_TRUNCATED = 1 << 0,     /* payload_len < bytes: only a prefix was captured */
  SONDE_DATA_NO_PAYLOAD = 1 << 1,    /* bytes counted, payload not readable (sendfile) */
  SONDE_DATA_SEQ_VALID = 1 << 2,     /* tcp_seq holds the TCP sequence of the first byte */
  SONDE_DATA_MULTI_MSG = 1 << 3,     /* one message of a sendmmsg/recvmmsg (each has its own event) */
  SONDE_DATA_TLS = 1 << 4,           /* plaintext of a TLS library call, not socket bytes (no tcp_seq) */
  SONDE_DATA_PEER_ADDR = 1 << 5,     /* UDP: tuple.daddr/dport is this datagram's peer, from the call's
                                        sockaddr (sendto/recvfrom address, msg_name) */
};

/* Why an event or part of one was not delivered (index into the lost-events map). */
enum sonde_drop_reason {
  SONDE_DROP_RINGBUF_FULL = 0,   /* bpf_ringbuf_output failed */
  SONDE_DROP_STASH_FULL = 1,     /* no task storage for the syscall entry record */
  SONDE_DROP_SCRATCH = 2,        /* per-CPU scratch buffer unavailable */
  SONDE_DROP_PAYLOAD_READ = 3,   /* bpf_probe_read_user of the payload failed */
  SONDE_DROP_CONN_MAP_FULL = 4,  /* socket state map insert failed */
  SONDE_DROP_MMSG_EXCESS = 5,    /* sendmmsg/recvmmsg messages past SONDE_MAX_MMSG (one count each) */
  SONDE_DROP_REASON_COUNT = 6,
};

/* Bits of sonde_sock_state.flags */
enum sonde_sock_flags {
  SONDE_SOCK_NOT_INET = 1 << 0,     /* not TCP/UDP over IPv4/IPv6: never captured */
  SONDE_SOCK_FILTERED = 1 << 1,     /* dropped by the port filter of generation filter_gen */
  SONDE_SOCK_IGNORED = 1 << 2,      /* user space: not a protocol it reconstructs (set by the agent) */
  SONDE_SOCK_TUPLE_CACHED = 1 << 3, /* tuple holds the connected TCP tuple */
  SONDE_SOCK_TLS = 1 << 4,          /* a TLS library call moved its bytes: ciphertext is not copied,
                                       plaintext comes from the TLS uprobes (IGNORED then means the
                                       plaintext is of no use) */
  SONDE_SOCK_COMM_SENT = 1 << 5,    /* an event of this socket carried the thread name (data events
                                       carry it once per socket: user space keeps it per connection) */
};


/* Counters of things seen but not turned into events (index into the stats map). */
enum sonde_stat {
  SONDE_STAT_EVENTS = 0,         /* events submitted */
  SONDE_STAT_MMSG_CALLS = 1,     /* sendmmsg/recvmmsg calls seen */
  SONDE_STAT_SENDFILE_CALLS = 2, /* sendfile calls on sockets */
  SONDE_STAT_WAKEUPS = 3,        /* forced ring-buffer wake-ups */
  SONDE_STAT_FILTERED = 4,       /* calls dropped by the pid/port/cgroup filters */
  SONDE_STAT_IGNORED = 5,        /* calls on sockets user space asked not to capture */
  SONDE_STAT_TLS_PLAINTEXT = 6,  /* TLS library calls turned into plaintext events */
  SONDE_STAT_TLS_CIPHERTEXT = 7, /* socket calls on TLS sockets not copied (ciphertext) */
  SONDE_STAT_TLS_NO_SOCKET = 8,  /* TLS library calls whose socket could not be found (memory BIO) */
  SONDE_STAT_TLS_STASH_FULL = 9, /* TLS call entry not recorded: in-flight call map full */
  SONDE_STAT_COUNT = 10,
};

/* Filter map values (pid/port/cgroup filter maps). */
enum sonde_filter_action {
  SONDE_FILTER_INCLUDE = 1,
  SONDE_FILTER_EXCLUDE = 2,
};

/* Bits of sonde_filter_config.mode: which include lists are active. An include
 * list that is active means "only these"; exclude entries always apply. */
enum sonde_filter_mode {
  SONDE_FILTER_PIDS_INCLUDE_ONLY = 1 << 0,
  SONDE_FILTER_PORTS_INCLUDE_ONLY = 1 << 1,
  SONDE_FILTER_CGROUPS_INCLUDE_ONLY = 1 << 2,
  SONDE_FILTER_HAS_PID_ENTRIES = 1 << 3,    /* pid map non-empty: look it up */
  SONDE_FILTER_HAS_CGROUP_ENTRIES = 1 << 4, /* cgroup map non-empty: look it up */
};

/* Single-entry array map set from user space. */
struct sonde_filter_config {
  __u32 mode;       /* enum sonde_filter_mode bits */
  __u32 agent_tgid; /* never traced */
  __u32 generation; /* bumped on every port filter change: cached per-socket decisions expire */
  __u32 _pad;
};

/* Connection 4/5-tuple as seen from the traced process: local = s*, remote = d*. */
struct sonde_tuple {
  __u8 saddr[SONDE_ADDR_LEN];
  __u8 daddr[SONDE_ADDR_LEN];
  __u16 sport;  /* host byte order */
  __u16 dport;  /* host byte order */
  __u16 family; /* AF_INET / AF_INET6 */
  __u8 l4_protocol; /* IPPROTO_TCP / IPPROTO_UDP */
  __u8 _pad;
};

/* Per-socket state (LRU hash keyed by socket inode), created at connect/accept
 * or at the first data call. A socket that is not wanted (not inet, filtered
 * out by port, or ignored by user space) costs one lookup per call after that;
 * a connected TCP socket's tuple is read from the kernel socket once. */
struct sonde_sock_state {
  struct sonde_tuple tuple; /* valid when SONDE_SOCK_TUPLE_CACHED */
  __u8 role;                /* enum sonde_role */
  __u8 flags;               /* enum sonde_sock_flags bits */
  __u16 _pad;
  __u32 filter_gen;         /* sonde_filter_config.generation the decision was made with */
};

/* Common prefix of every ring-buffer record. */
struct sonde_event_header {
  __u32 type; /* enum sonde_event_type */
  __u32 size; /* bytes of this record including the header and payload */
  __u64 ts_enter_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) at syscall entry */
  __u64 ts_exit_ns;  /* CLOCK_MONOTONIC at syscall exit / event */
  __u32 pid;  /* tgid */
  __u32 tid;
  /* Thread name. Connection events always carry it; data events only on a
   * socket's first one (SONDE_SOCK_COMM_SENT), empty after: reading it is
   * ~4 % of a captured call, and user space names the connection once. */
  char comm[SONDE_COMM_LEN];
};

/* SONDE_EVENT_DATA: followed by payload_len bytes of payload. */
struct sonde_data_event {
  struct sonde_event_header hdr;
  __u64 sock_id;   /* socket inode number: unique for the life of the socket */
  struct sonde_tuple tuple;
  __s32 fd;
  __u8 direction;  /* enum sonde_direction */
  __u8 role;       /* enum sonde_role */
  __u8 syscall;    /* enum sonde_syscall */
  __u8 flags;      /* enum sonde_data_flags bits */
  __u64 bytes;     /* bytes the call moved (its return value) */
  __u32 tcp_seq;   /* TCP sequence number of the first byte (write_seq/copied_seq) */
  __u32 payload_len; /* bytes of payload that follow, <= configured capture size */
#if defined(__cplusplus)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic" /* flexible array member: C99, a GNU extension in C++ */
#endif
  __u8 payload[];
#if defined(__cplusplus)
#pragma GCC diagnostic pop
#endif
};

/* SONDE_EVENT_CONN_OPEN / SONDE_EVENT_CONN_CLOSE */
struct sonde_conn_event {
  struct sonde_event_header hdr;
  __u64 sock_id;
  struct sonde_tuple tuple;
  __s32 fd;       /* -1 when the event comes from a state change */
  __s32 retval;   /* syscall return value (0 / -errno), or new state for state changes */
  __u8 role;      /* enum sonde_role */
  __u8 syscall;   /* enum sonde_syscall */
  __u8 _pad[6];
  __u64 bytes_sent;     /* TCP bytes_sent/bytes_received at close, 0 if unknown */
  __u64 bytes_received;
};

/* ------------------------------------------------------------------------- */
/* profiler (bpf/profile.bpf.c <-> agent/profile/). Counts live in kernel     */
/* maps, drained by user space; only "new process" notices use a ring buffer. */
/* ------------------------------------------------------------------------- */

#define SONDE_PROFILE_MAX_DEPTH 127 /* frames per stack (PERF_MAX_STACK_DEPTH) */

/* Bits of sonde_profile_config.flags */
enum sonde_profile_flags {
  SONDE_PROFILE_PIDS_INCLUDE_ONLY = 1 << 0, /* only tgids in the pid filter map */
  SONDE_PROFILE_OFFCPU_PREEMPTED = 1 << 1,  /* also count runnable (preempted) waits */
  SONDE_PROFILE_INCLUDE_IDLE = 1 << 2,      /* on-CPU: keep samples of the idle task */
};

/* Read-only config (.rodata of profile.bpf.c), set by user space before load. */
struct sonde_profile_config {
  __u32 flags;        /* enum sonde_profile_flags bits */
  __u32 agent_tgid;   /* never profiled */
  __u64 min_block_ns; /* off-CPU: shorter blocks are not counted */
  __u64 slot_ns;      /* time resolution of the counts (key.slot = ktime / slot_ns) */
};

/* Key of the on-CPU and off-CPU count maps. The stack ids index the stack map
 * of generation stack_gen (two map sets alternate; see profile.bpf.c). */
struct sonde_profile_key {
  __u32 pid; /* tgid */
  __u32 tid;
  __s32 user_stack_id;   /* < 0: none (kernel thread) or -errno of bpf_get_stackid */
  __s32 kernel_stack_id; /* < 0: none or -errno */
  __u32 stack_gen;       /* generation whose stack map holds the ids */
  __u32 slot;            /* CLOCK_MONOTONIC ns / config.slot_ns at sample (on) or wake (off) */
  char comm[SONDE_COMM_LEN]; /* thread name */
};
/* On-CPU count map value: __u64 samples. Off-CPU count map value: */
struct sonde_profile_offcpu_value {
  __u64 blocked_ns; /* total time off CPU, ns */
  __u64 blocks;     /* number of blocks (switch-outs) summed */
};

/* The active generation (.bss of profile.bpf.c, written by user space through
 * the mmapped skeleton). The BPF side writes to map set (gen & 1). */
struct sonde_profile_epoch {
  __u32 gen;
  __u32 _pad;
};

/* Ring-buffer notice, once per process (tgid + start time): lets user space
 * snapshot /proc/PID/maps before a short-lived process exits. */
struct sonde_profile_new_process {
  __u32 pid;
  __u32 _pad;
  __u64 start_time_ns; /* task start (CLOCK_MONOTONIC ns) */
};

/* Counters (index into the per-CPU profile stats map). */
enum sonde_profile_stat {
  SONDE_PROFILE_STAT_SAMPLES = 0,         /* on-CPU samples counted */
  SONDE_PROFILE_STAT_SWITCHES = 1,        /* off-CPU blocks counted */
  SONDE_PROFILE_STAT_COUNT_MAP_FULL = 2,  /* count map insert failed */
  SONDE_PROFILE_STAT_STACK_ERRORS = 3,    /* bpf_get_stackid failed (map full / collision) */
  SONDE_PROFILE_STAT_START_MAP_FULL = 4,  /* off-CPU start map insert failed */
  SONDE_PROFILE_STAT_NOTICE_DROPPED = 5,  /* new-process notice lost (ring buffer full) */
  SONDE_PROFILE_STAT_SHORT_BLOCKS = 6,    /* off-CPU blocks under min_block_ns */
  SONDE_PROFILE_STAT_COUNT = 7,
};

/* ------------------------------------------------------------------------
 * TCP health (bpf/tcp_health.bpf.c -> agent/tcp). Per-socket counters kept in
 * an LRU hash keyed by the socket cookie (never reused); user space reads them
 * periodically, computes deltas and deletes entries of closed sockets. No
 * per-packet or per-retransmission events cross the boundary.
 * ------------------------------------------------------------------------ */

enum sonde_tcp_sock_flags {
  SONDE_TCP_ESTABLISHED = 1 << 0,    /* reached ESTABLISHED (handshake_ns valid) */
  SONDE_TCP_CLOSED = 1 << 1,         /* reached TCP_CLOSE: final values, delete after reading */
  SONDE_TCP_FAILED_REFUSED = 1 << 2, /* SYN_SENT -> CLOSE after an RST (ECONNREFUSED) */
  SONDE_TCP_FAILED_TIMEOUT = 1 << 3, /* SYN_SENT -> CLOSE after SYN retries ran out (ETIMEDOUT) */
  SONDE_TCP_FAILED_OTHER = 1 << 4,   /* SYN_SENT -> CLOSE for another reason (ICMP, abort) */
  SONDE_TCP_ZERO_WINDOW = 1 << 5,    /* peer's window is currently zero */
  SONDE_TCP_LATE_JOIN = 1 << 6,      /* first seen after the handshake (role guessed) */
};

/* Value of the per-socket map. All counters are cumulative for the socket. */
struct sonde_tcp_sock_stats {
  struct sonde_tuple tuple; /* local = s*, remote = d* */
  __u64 sock_inode;         /* socket inode (joins sonde_data_event.sock_id), 0 if unknown */
  __u64 start_ns;           /* CLOCK_MONOTONIC: SYN_SENT (client) / SYN_RECV (server) / first seen */
  __u64 established_ns;     /* CLOCK_MONOTONIC when ESTABLISHED was reached, 0 if never */
  __u64 closed_ns;          /* CLOCK_MONOTONIC when TCP_CLOSE was reached, 0 if open */
  __u64 last_sample_ns;     /* CLOCK_MONOTONIC of the last srtt/cwnd/bytes sample */
  __u64 handshake_ns;       /* client: SYN_SENT -> ESTABLISHED; server: SYN/ACK RTT (srtt at accept) */
  __u64 bytes_acked;        /* tcp_sock.bytes_acked at the last sample (bytes sent and acked) */
  __u64 bytes_received;     /* tcp_sock.bytes_received at the last sample */
  __u32 srtt_us;            /* smoothed RTT at the last sample, us (tcp_sock.srtt_us >> 3) */
  __u32 rttvar_us;          /* tcp_sock.mdev_us >> 2 at the last sample, us */
  __u32 snd_cwnd;           /* congestion window at the last sample, segments */
  __u32 retrans_segs;       /* segments retransmitted (tcp:tcp_retransmit_skb, err == 0) */
  __u32 syn_retrans;        /* of which SYN retransmissions (state SYN_SENT) */
  __u32 zero_window_events; /* peer window went from non-zero to zero (tcp:tcp_probe) */
  __u32 resets_sent;        /* tcp:tcp_send_reset on this socket */
  __u32 resets_received;    /* tcp:tcp_receive_reset on this socket */
  __u32 pid;                /* tgid that connected / first moved data, 0 if unknown */
  __u32 flags;              /* enum sonde_tcp_sock_flags bits */
  __u8 role;                /* enum sonde_role */
  __u8 state;               /* last TCP state (TCP_ESTABLISHED = 1 ...) */
  __u8 _pad[6];
  char comm[SONDE_COMM_LEN];
};

/* Events not attributable to a full socket (RST for a closed port, SYN/ACK
 * retransmissions of a request socket) are counted per 4-tuple. */
struct sonde_tcp_pair_key {
  __u8 laddr[SONDE_ADDR_LEN]; /* local address */
  __u8 raddr[SONDE_ADDR_LEN]; /* remote address */
  __u16 lport;                /* host byte order */
  __u16 rport;                /* host byte order */
  __u16 family;
  __u16 _pad;
};

struct sonde_tcp_pair_stats {
  __u64 resets_sent;    /* RSTs sent without a socket (connect to a closed port) */
  __u64 synack_retrans; /* SYN/ACK retransmissions (tcp:tcp_retransmit_synack) */
};

/* Index into the tcp_health stats array. */
enum sonde_tcp_stat {
  SONDE_TCP_STAT_SOCK_MAP_FULL = 0, /* socket map insert failed */
  SONDE_TCP_STAT_PAIR_MAP_FULL = 1, /* pair map insert failed */
  SONDE_TCP_STAT_SAMPLES = 2,       /* srtt/cwnd samples taken */
  SONDE_TCP_STAT_COUNT = 3,
};

#endif /* SONDE_ABI_H */
